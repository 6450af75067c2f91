//! Test & Enable (`exsync test-mailbox`): checks each configured workload of a mailbox with
//! one real request (incoming: the Inbox's first change; outgoing: a test message to the
//! mailbox itself, or with `--no-send` a look into Sent Items; ACT: the calendar, contacts
//! and tasks folders), names the reason of each failure, writes the three statuses and
//! enables what passed (blocks and failure counters cleared, due at once).
//!
//! It signs in afresh (a new client cache, whose first request goes alone: a rejected password
//! costs one failed sign-in), holds the mailbox's lease while it tests (so its requests count
//! against the profile's `max_concurrent_connections` together with the daemon's, and no pass
//! syncs the mailbox meanwhile), never blocks credentials and never changes the approval: like
//! Dynamics' Test & Enable it reports approval, it does not grant it. Must not decide how the
//! daemon reacts to failures: that stays in [`crate::sync`].

use crate::domain::{AlertLevel, AlertTarget, Mailbox, MailboxId, Profile, SyncMethod, Workload};
use crate::store::operate::{self, TestedWorkload};
use crate::store::outgoing::OutgoingEmail;
use crate::store::{alerts, scheduling, MailboxRow, Store, StoreError};
use crate::sync::plan::{connection_for, ConnectionPlan, CredentialSource};
use crate::sync::port::{
    ChangeHint, Connector, Failure, Folder, MailServer, NoJournal, SendOutcome, ServerError,
    SessionSettings,
};
use crate::sync::{SyncEngine, SyncError};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::Instrument;
use uuid::Uuid;

/// Why Test & Enable could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No mailbox has this address (bad input).
    #[error("no mailbox {0:?}: declare it with `exsync apply` first")]
    UnknownMailbox(String),
    /// No profile has this name (bad input).
    #[error("no email server profile named {0:?}")]
    UnknownProfile(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a Test & Enable run does.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeOptions {
    /// Check outgoing access without sending the test message.
    pub no_send: bool,
}

/// How one workload's test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The request succeeded: the workload was enabled.
    Passed,
    /// The request failed (or the workload may not run): see the reason.
    Failed,
    /// The workload's method is `none`: nothing to test.
    NotConfigured,
}

/// The named reason of a failed test, what the operator fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Exchange refused the credentials (wrong or expired password, bad OAuth secret).
    Authentication,
    /// The service account may not impersonate the mailbox.
    ImpersonationDenied,
    /// Exchange has no such mailbox.
    MailboxMissing,
    /// The account lacks rights on the mailbox's folders (delegation).
    AccessDenied,
    /// Exchange could not be reached, or answered with a server error.
    Unreachable,
    /// Exchange is throttling the account.
    Throttled,
    /// The mailbox does not allow its credentials to be used for email processing.
    NotAllowedToUseCredentials,
    /// The credentials the profile needs are not configured.
    CredentialsMissing,
    /// ACT needs impersonation; the profile uses delegation.
    Delegation,
    /// The mailbox's email address is not approved (email workloads only).
    NotApproved,
    /// Exchange refused this test message (e.g. the recipient).
    SendRefused,
    /// The account may not send as (or on behalf of) the mailbox (ErrorSendAsDenied).
    SendAsDenied,
    /// The mailbox is over a quota (ErrorQuotaExceeded, ErrorSubmissionQuotaExceeded).
    QuotaExceeded,
    /// Exchange Online answered HTTP 401 for this mailbox only (unlicensed or mismatched
    /// mailbox); the credentials work for others.
    MailboxUnauthorized,
    /// The database failed while testing.
    Database,
    /// The OAuth token endpoint is throttling, failing or unreachable (not a bad secret).
    TokenEndpointUnavailable,
    /// The OAuth token endpoint refused the request for a setting (tenant, scope, URL).
    OAuthRequestRefused,
    /// The profile's server type does not allow this sign-in (Exchange Online retired it).
    ServerTypeUnsupported,
    /// No connection of the profile came free (the daemon used them all) in time.
    Busy,
}

impl Reason {
    /// Words for humans.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Authentication => "authentication failed",
            Reason::ImpersonationDenied => "impersonation denied",
            Reason::MailboxMissing => "mailbox missing",
            Reason::AccessDenied => "access denied",
            Reason::Unreachable => "Exchange unreachable",
            Reason::Throttled => "throttled by Exchange",
            Reason::NotAllowedToUseCredentials => "not allowed to use the mailbox's credentials",
            Reason::CredentialsMissing => "credentials missing",
            Reason::Delegation => "delegation does not support ACT",
            Reason::NotApproved => "email address not approved",
            Reason::SendRefused => "test message refused",
            Reason::SendAsDenied => "no right to send as the mailbox",
            Reason::QuotaExceeded => "mailbox over a quota",
            Reason::MailboxUnauthorized => "mailbox refused (HTTP 401) while the credentials work",
            Reason::Database => "database error",
            Reason::TokenEndpointUnavailable => "OAuth token endpoint unavailable",
            Reason::OAuthRequestRefused => "OAuth token request refused (tenant, scope or URL)",
            Reason::ServerTypeUnsupported => "not allowed by the profile's server type",
            Reason::Busy => "no free connection in time",
        }
    }

    fn of_refusal(code: &str) -> Reason {
        match code {
            "act.delegation_unsupported" => Reason::Delegation,
            "mailbox.not_approved" => Reason::NotApproved,
            "mailbox.credentials_not_allowed" => Reason::NotAllowedToUseCredentials,
            _ => Reason::CredentialsMissing,
        }
    }

    fn of_error(error: &ServerError) -> Reason {
        match error.failure {
            Failure::TokenEndpointUnavailable { .. } => Reason::TokenEndpointUnavailable,
            Failure::TokenRequestRefused => Reason::OAuthRequestRefused,
            Failure::CredentialsRefused => Reason::Authentication,
            Failure::ImpersonationDenied => Reason::ImpersonationDenied,
            Failure::MailboxNotFound => Reason::MailboxMissing,
            Failure::AccessDenied => Reason::AccessDenied,
            Failure::Throttled { .. } => Reason::Throttled,
            Failure::MailboxUnauthorized => Reason::MailboxUnauthorized,
            Failure::SendAsDenied => Reason::SendAsDenied,
            Failure::QuotaExceeded => Reason::QuotaExceeded,
            Failure::RequestRefused => Reason::SendRefused,
            Failure::SyncStateExpired | Failure::Unavailable | Failure::ServiceRefused => {
                Reason::Unreachable
            }
        }
    }
}

/// One workload's test result (`--json`: one object of `workloads`).
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadProbe {
    /// `incoming`, `outgoing` or `act`.
    pub workload: Workload,
    /// `passed`, `failed` or `not_configured`.
    pub verdict: Verdict,
    /// Why it failed (snake_case name), when it did.
    pub reason: Option<Reason>,
    /// The stable error or refusal code (as in alerts), when it failed.
    pub code: Option<String>,
    /// What was checked, or what went wrong, in words.
    pub message: String,
}

/// The result for one mailbox (`--json`: one object; `--profile`: an array of them).
#[derive(Debug, Clone, Serialize)]
pub struct MailboxProbe {
    /// The mailbox's address.
    pub address: String,
    /// The mailbox's id.
    pub mailbox_id: Uuid,
    /// Its profile's name.
    pub profile: String,
    /// Whether the profile is enabled (a disabled profile is tested but not synced).
    pub profile_enabled: bool,
    /// The approval status, reported and left as it is.
    pub approval: String,
    /// One result per workload, in the order incoming, outgoing, act.
    pub workloads: Vec<WorkloadProbe>,
    /// No workload failed.
    pub passed: bool,
    /// What the profile's server type warns about (it still works), e.g. EWS in Exchange
    /// Online going away.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl MailboxProbe {
    /// The result of one workload.
    pub fn workload(&self, workload: Workload) -> Option<&WorkloadProbe> {
        self.workloads.iter().find(|w| w.workload == workload)
    }
}

impl std::fmt::Display for MailboxProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} (profile {:?}{}; approval: {})",
            self.address,
            self.profile,
            if self.profile_enabled {
                ""
            } else {
                ", DISABLED"
            },
            self.approval
        )?;
        for warning in &self.warnings {
            writeln!(f, "  warning: {warning}")?;
        }
        for w in &self.workloads {
            let verdict = match w.verdict {
                Verdict::Passed => "PASSED".to_owned(),
                Verdict::Failed => format!(
                    "FAILED ({})",
                    w.reason.map(Reason::describe).unwrap_or("failed")
                ),
                Verdict::NotConfigured => "not configured".to_owned(),
            };
            writeln!(f, "  {:<9} {verdict}: {}", w.workload.as_str(), w.message)?;
        }
        Ok(())
    }
}

/// Test & Enable one mailbox by address.
pub async fn test_mailbox(
    engine: &SyncEngine,
    address: &str,
    options: ProbeOptions,
) -> Result<MailboxProbe, ProbeError> {
    let row = operate::mailbox_by_address(engine.store(), address)
        .await?
        .ok_or_else(|| ProbeError::UnknownMailbox(address.to_owned()))?;
    let profile = load_profile(engine, row.profile_id).await?;
    let clients = engine.connector().fresh();
    Ok(probe_row(engine, clients.as_ref(), &profile, row, options).await)
}

/// Test & Enable every mailbox of a profile, concurrently but never more at once than the
/// profile's `max_concurrent_connections` (each mailbox's test holds one permit).
pub async fn test_profile(
    engine: &SyncEngine,
    name: &str,
    options: ProbeOptions,
) -> Result<Vec<MailboxProbe>, ProbeError> {
    let id = operate::profile_id_by_name(engine.store(), name)
        .await?
        .ok_or_else(|| ProbeError::UnknownProfile(name.to_owned()))?;
    let profile = load_profile(engine, id).await?;
    let rows = operate::mailboxes_of_profile(engine.store(), id).await?;
    let permits = Arc::new(Semaphore::new(
        profile.max_concurrent_connections.max(1) as usize
    ));
    let clients = engine.connector().fresh();
    let probes = rows.into_iter().map(|row| {
        let permits = permits.clone();
        let (clients, profile) = (clients.as_ref(), &profile);
        async move {
            // The semaphore is never closed, so acquiring cannot fail; if it ever did, the
            // test would still run (unbounded) rather than be lost.
            let _permit = permits.acquire_owned().await.ok();
            probe_row(engine, clients, profile, row, options).await
        }
    });
    Ok(futures::future::join_all(probes).await)
}

async fn load_profile(engine: &SyncEngine, id: Uuid) -> Result<Profile, ProbeError> {
    let row = crate::store::profiles::list_rows(engine.store())
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| StoreError::NotFound(format!("profile {id} is gone")))?;
    Ok(row.into_profile(engine.cipher())?)
}

async fn probe_row(
    engine: &SyncEngine,
    clients: &dyn Connector,
    profile: &Profile,
    row: MailboxRow,
    options: ProbeOptions,
) -> MailboxProbe {
    let span = tracing::info_span!("test_mailbox", profile.id = %profile.id, mailbox.id = %row.id);
    probe_in_span(engine, clients, profile, row, options)
        .instrument(span)
        .await
}

async fn probe_in_span(
    engine: &SyncEngine,
    clients: &dyn Connector,
    profile: &Profile,
    row: MailboxRow,
    options: ProbeOptions,
) -> MailboxProbe {
    let mut probe = MailboxProbe {
        address: row.email_address.clone(),
        mailbox_id: row.id,
        profile: profile.name.clone(),
        profile_enabled: profile.enabled,
        approval: row.approval_status.clone(),
        workloads: Vec::new(),
        passed: true,
        warnings: Vec::new(),
    };
    // What the server type allows: a refused sign-in is not attempted (no lock-out risk).
    let mut refused = None;
    for finding in crate::domain::server_type::findings(
        profile.server_type,
        profile.protocol,
        profile.auth,
        profile.password_scheme,
        profile.use_impersonation,
        chrono::Utc::now().date_naive(),
    ) {
        match finding.severity {
            crate::domain::server_type::Severity::Refuse => refused = Some(finding),
            crate::domain::server_type::Severity::Warn => probe
                .warnings
                .push(format!("{} ({})", finding.reason, finding.code)),
        }
    }
    let mailbox = match row.into_mailbox(engine.cipher()) {
        Ok(mailbox) => mailbox,
        Err(e) => {
            for workload in Workload::ALL.iter().copied() {
                probe.workloads.push(failed(
                    workload,
                    Reason::Database,
                    "mailbox.invalid_row",
                    e.to_string(),
                ));
            }
            probe.passed = false;
            return probe;
        }
    };
    // The test's requests count against the profile's connection limit like a pass: it holds
    // the mailbox's lease while it runs (the daemon claims fewer meanwhile, and no pass syncs
    // this mailbox at the same time).
    let lease = match TestLease::acquire(engine, profile, mailbox.id.0).await {
        Ok(lease) => lease,
        Err((reason, code, text)) => {
            for workload in Workload::ALL.iter().copied() {
                probe
                    .workloads
                    .push(failed(workload, reason, code, text.clone()));
            }
            probe.passed = false;
            return probe;
        }
    };
    let mut proven = Vec::new();
    for workload in [Workload::Incoming, Workload::Outgoing, Workload::Act] {
        let (result, plan) = match &refused {
            Some(finding) if mailbox.method(workload) == SyncMethod::ServerSideSync => (
                failed(
                    workload,
                    Reason::ServerTypeUnsupported,
                    finding.code,
                    finding.reason.clone(),
                ),
                None,
            ),
            _ => probe_workload(clients, profile, &mailbox, workload, options).await,
        };
        if result.verdict == Verdict::Passed {
            if let Some(plan) = plan {
                proven.push(plan.credentials);
            }
        }
        tracing::info!(
            workload = workload.as_str(),
            verdict = ?result.verdict,
            reason = ?result.reason,
            "test-mailbox checked a workload"
        );
        probe.workloads.push(result);
    }
    probe.passed = probe.workloads.iter().all(|w| w.verdict != Verdict::Failed);
    if let Err(e) = record(engine.store(), profile, &mailbox, &probe, &proven).await {
        tracing::warn!(error = %e, "could not record the test results");
    }
    lease.release(engine.store()).await;
    probe
}

/// The lease a test holds on its mailbox (renewed while it runs, released at the end).
struct TestLease {
    mailbox_id: Uuid,
    token: Uuid,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl TestLease {
    /// Wait for a free connection of the profile and the mailbox's lease (up to twice the
    /// lease duration, at least 10 s: a pass in flight renews its lease, a crashed one's
    /// expires).
    async fn acquire(
        engine: &SyncEngine,
        profile: &Profile,
        mailbox_id: Uuid,
    ) -> Result<TestLease, (Reason, &'static str, String)> {
        let lease = engine.scheduler_settings().lease_duration;
        let owner = format!("test-mailbox/{}", std::process::id());
        let deadline =
            std::time::Instant::now() + (lease * 2).max(std::time::Duration::from_secs(10));
        loop {
            match scheduling::lease_for_test(engine.store(), profile.id.0, mailbox_id, &owner, lease)
                .await
            {
                Ok(Some(token)) => {
                    let store = engine.store().clone();
                    let heartbeat = tokio::spawn(async move {
                        let every = (lease / 3).max(std::time::Duration::from_millis(100));
                        loop {
                            tokio::time::sleep(every).await;
                            if !matches!(
                                scheduling::renew_lease(&store, mailbox_id, token, lease).await,
                                Ok(true)
                            ) {
                                return;
                            }
                        }
                    });
                    return Ok(TestLease {
                        mailbox_id,
                        token,
                        heartbeat,
                    });
                }
                Ok(None) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Ok(None) => {
                    return Err((
                        Reason::Busy,
                        "test.busy",
                        format!(
                            "profile {:?} had no free connection (max_concurrent_connections = {}) or a pass held this mailbox for too long; try again",
                            profile.name, profile.max_concurrent_connections
                        ),
                    ))
                }
                Err(e) => return Err((Reason::Database, "database.error", e.to_string())),
            }
        }
    }

    /// Give the lease back.
    async fn release(self, store: &Store) {
        self.heartbeat.abort();
        if let Err(e) = scheduling::release_lease(store, self.mailbox_id, self.token).await {
            tracing::warn!(error = %e, "could not release the test's lease; it expires by itself");
        }
    }
}

fn failed(workload: Workload, reason: Reason, code: &str, message: String) -> WorkloadProbe {
    WorkloadProbe {
        workload,
        verdict: Verdict::Failed,
        reason: Some(reason),
        code: Some(code.to_owned()),
        message,
    }
}

async fn probe_workload(
    clients: &dyn Connector,
    profile: &Profile,
    mailbox: &Mailbox,
    workload: Workload,
    options: ProbeOptions,
) -> (WorkloadProbe, Option<ConnectionPlan>) {
    if mailbox.method(workload) != SyncMethod::ServerSideSync {
        return (
            WorkloadProbe {
                workload,
                verdict: Verdict::NotConfigured,
                reason: None,
                code: None,
                message: "method is none: not synchronised, nothing to test".into(),
            },
            None,
        );
    }
    let plan = match connection_for(profile, mailbox, workload) {
        Ok(plan) => plan,
        Err(refusal) => {
            let reason = Reason::of_refusal(refusal.code);
            return (
                failed(workload, reason, refusal.code, refusal.message),
                None,
            );
        }
    };
    let settings = SessionSettings {
        max_changes: 1,
        batch: 1,
        tracking_category: None,
        log_payloads: mailbox.payload_logging,
    };
    let conn = match clients.open(profile, mailbox, &plan, &settings) {
        Ok(conn) => conn,
        Err(e) => {
            return (
                failed(
                    workload,
                    Reason::CredentialsMissing,
                    "credentials.missing",
                    e.to_string(),
                ),
                None,
            )
        }
    };
    let result = check(conn.as_ref(), mailbox, workload, options).await;
    let probe = match result {
        Ok(Ok(message)) => WorkloadProbe {
            workload,
            verdict: Verdict::Passed,
            reason: None,
            code: None,
            message,
        },
        Ok(Err(refused)) => failed(workload, Reason::SendRefused, "outgoing.refused", refused),
        Err(e) => {
            let reason = Reason::of_error(&e);
            let error = SyncError::from(e);
            failed(workload, reason, &error.code(), error.to_string())
        }
    };
    (probe, Some(plan))
}

/// One real request per workload; `Ok(Err(text))`: Exchange refused the test message.
async fn check(
    conn: &dyn MailServer,
    mailbox: &Mailbox,
    workload: Workload,
    options: ProbeOptions,
) -> Result<Result<String, String>, ServerError> {
    match workload {
        Workload::Incoming => {
            conn.changes(Folder::Inbox, None, ChangeHint::default())
                .await?;
            Ok(Ok("read the Inbox (SyncFolderItems, 1 change)".into()))
        }
        Workload::Outgoing if options.no_send => {
            conn.find_sent(Uuid::nil()).await?;
            Ok(Ok(
                "read Sent Items; no test message sent (--no-send)".into()
            ))
        }
        Workload::Outgoing => {
            let id = Uuid::new_v4();
            let domain = mailbox
                .address
                .split('@')
                .nth(1)
                .unwrap_or("exsync.invalid");
            let email = OutgoingEmail {
                id,
                mailbox_id: mailbox.id.0,
                to_recipients: vec![mailbox.address.clone()],
                cc_recipients: Vec::new(),
                bcc_recipients: Vec::new(),
                subject: "exsync test message".into(),
                body: "This message was sent by `exsync test-mailbox` to check that this mailbox can send email. It can be deleted.".into(),
                body_type: "text".into(),
                internet_message_id: format!("<{id}.test-mailbox@{domain}>"),
                attempts: 1,
                send_issued_at: None,
            };
            Ok(match conn.send(&email, &NoJournal).await? {
                SendOutcome::Accepted => Ok(format!(
                    "sent a test message to {} (ExsyncOutgoingId {id})",
                    mailbox.address
                )),
                SendOutcome::Refused(refused) | SendOutcome::Unconfirmed(refused) => Err(refused),
            })
        }
        Workload::Act => {
            for folder in [Folder::Calendar, Folder::Contacts, Folder::Tasks] {
                conn.changes(folder, None, ChangeHint::default()).await?;
            }
            Ok(Ok("read the calendar, contacts and tasks".into()))
        }
    }
}

/// Write the statuses, enable what passed, clear what healed, raise alerts for failures.
async fn record(
    store: &Store,
    profile: &Profile,
    mailbox: &Mailbox,
    probe: &MailboxProbe,
    proven: &[CredentialSource],
) -> Result<(), StoreError> {
    let target = AlertTarget::Mailbox(MailboxId(probe.mailbox_id));
    let results: Vec<TestedWorkload> = probe
        .workloads
        .iter()
        .filter_map(|w| match w.verdict {
            Verdict::Passed => Some(TestedWorkload::Passed(w.workload)),
            Verdict::Failed => Some(TestedWorkload::Failed(
                w.workload,
                w.code.clone().unwrap_or_else(|| "test.failed".into()),
                w.message.clone(),
            )),
            Verdict::NotConfigured => None,
        })
        .collect();
    operate::record_test(
        store,
        probe.mailbox_id,
        &results,
        probe.passed,
        proven.contains(&CredentialSource::Mailbox),
    )
    .await?;
    let profile_credentials_proven = proven.iter().any(|c| *c != CredentialSource::Mailbox);
    if profile_credentials_proven {
        scheduling::unblock_profile_credentials(store, profile.id.0).await?;
        alerts::resolve(store, AlertTarget::Profile(profile.id), None, &[]).await?;
    }
    if proven.contains(&CredentialSource::Mailbox) {
        alerts::resolve(store, target, None, &[]).await?;
    }
    for w in &probe.workloads {
        match w.verdict {
            Verdict::Passed => {
                alerts::resolve(store, target, Some(w.workload), &["item.failed"]).await?;
            }
            Verdict::Failed => {
                let level = if w.reason == Some(Reason::Delegation) {
                    AlertLevel::Warning
                } else {
                    AlertLevel::Error
                };
                let code = w.code.as_deref().unwrap_or("test.failed");
                let text = format!(
                    "test-mailbox: {} of {} failed ({}): {}",
                    w.workload,
                    mailbox.address,
                    w.reason.map(Reason::describe).unwrap_or("failed"),
                    w.message
                );
                alerts::raise(store, target, level, code, Some(w.workload), &text).await?;
            }
            Verdict::NotConfigured => {}
        }
    }
    Ok(())
}

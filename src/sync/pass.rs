//! One pass over one claimed mailbox: each due workload runs (outgoing first, so queued mail
//! is not held up by a long import), each failure gets the reaction its type calls for, and
//! the pass's outcome is recorded with the lease released. A heartbeat renews the lease; a
//! pass whose lease is taken over stops writing at once (every write is fenced by the token).

use super::context::PassContext;
pub use super::context::{ReportedItems, WorkloadSummary};
use super::plan::{self, connection_for, ConnectionPlan, CredentialSource, Refusal};
use super::port::{Connector, SessionSettings};
use super::reaction::{react, Scope};
use super::{act, incoming, outgoing, FailureKind, SyncError};
use crate::config::{SchedulerSettings, SyncSettings};
use crate::crypto::CredentialCipher;
use crate::domain::rules::effective_process_from;
use crate::domain::WorkloadStatus;
use crate::domain::{AlertLevel, AlertTarget, Mailbox, MailboxId, Profile, SyncMethod, Workload};
use crate::metrics::{labels, metrics};
use crate::store::scheduling::{
    self, ClaimedMailbox, ErrorCorrelation, ErrorRecord, PassRecord, WorkloadRecord,
};
use crate::store::{alerts, Store};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// How many times a pass's record is written again after a dropped database connection.
const FINISH_RETRIES: u32 = 3;

/// How a workload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran to the end.
    Success,
    /// It failed; the code says why and `kind` how it is treated.
    Failed {
        /// Stable error code.
        code: String,
        /// Operator-facing message.
        message: String,
        /// The reaction class.
        kind: FailureKind,
    },
    /// It may not run for this mailbox (delegation, not approved, credentials not allowed).
    Refused {
        /// Stable refusal code.
        code: String,
        /// Why.
        message: String,
    },
}

/// One workload's result within a pass.
#[derive(Debug, Clone)]
pub struct WorkloadReport {
    /// Which workload.
    pub workload: Workload,
    /// How it ended.
    pub outcome: Outcome,
    /// What it did.
    pub summary: WorkloadSummary,
    /// How long it took.
    pub duration: Duration,
}

/// The result of a pass, for the scheduler, `exsync demo` and tests.
#[derive(Debug, Clone)]
pub struct PassSummary {
    /// The pass's id: every log line of the pass carries it (`pass.id`).
    pub pass_id: Uuid,
    /// The mailbox.
    pub mailbox_id: Uuid,
    /// Its address.
    pub address: String,
    /// Its profile.
    pub profile_id: Uuid,
    /// One report per workload that was due.
    pub reports: Vec<WorkloadReport>,
    /// The lease was lost (another process owns the mailbox): nothing more was written.
    pub lease_lost: bool,
}

impl PassSummary {
    /// The report of one workload, if it was due.
    pub fn report(&self, workload: Workload) -> Option<&WorkloadReport> {
        self.reports.iter().find(|r| r.workload == workload)
    }
}

/// Runs passes: owns the settings, the credential cipher and the mail-server connector.
pub struct SyncEngine {
    store: Store,
    cipher: Arc<CredentialCipher>,
    scheduler: SchedulerSettings,
    sync: SyncSettings,
    connector: Arc<dyn Connector>,
}

impl SyncEngine {
    /// An engine over `store` with these settings, reaching mail servers through `connector`.
    pub fn new(
        store: Store,
        cipher: Arc<CredentialCipher>,
        scheduler: SchedulerSettings,
        sync: SyncSettings,
        connector: Arc<dyn Connector>,
    ) -> Self {
        Self {
            store,
            cipher,
            scheduler,
            sync,
            connector,
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The credential cipher (profiles and mailboxes are decrypted with it).
    pub fn cipher(&self) -> &CredentialCipher {
        &self.cipher
    }

    /// The daemon's mail-server connector (operator tools derive fresh ones from it).
    pub fn connector(&self) -> &dyn Connector {
        self.connector.as_ref()
    }

    /// The scheduler settings in force.
    pub fn scheduler_settings(&self) -> &SchedulerSettings {
        &self.scheduler
    }

    /// The `[sync]` settings (the folders streaming subscribes to).
    pub fn sync_settings(&self) -> &SyncSettings {
        &self.sync
    }

    /// Claim one mailbox by address and run a pass over all its configured workloads now
    /// (operator tools and tests). `Ok(None)`: another process holds its lease.
    pub async fn run_mailbox_now(
        &self,
        address: &str,
        owner: &str,
    ) -> Result<Option<PassSummary>, SyncError> {
        let found = crate::store::mailboxes::ids_by_address(&self.store, address).await?;
        let Some((mailbox_id, profile_id)) = found else {
            return Err(SyncError::Store(crate::store::StoreError::NotFound(
                format!("no mailbox {address:?}: declare it with `exsync apply` first"),
            )));
        };
        let row = crate::store::profiles::list_rows(&self.store)
            .await?
            .into_iter()
            .find(|p| p.id == profile_id)
            .ok_or_else(|| {
                SyncError::Store(crate::store::StoreError::NotFound(format!(
                    "the profile of {address:?} is gone"
                )))
            })?;
        let profile = row.into_profile(&self.cipher)?;
        let Some(claimed) = scheduling::claim_mailbox(
            &self.store,
            mailbox_id,
            owner,
            self.scheduler.lease_duration,
        )
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(
            self.run_pass(claimed, &profile, CancellationToken::new())
                .await,
        ))
    }

    /// Run one pass over a claimed mailbox of `profile`; `cancel` is shutdown's hard stop.
    pub async fn run_pass(
        &self,
        claimed: ClaimedMailbox,
        profile: &Profile,
        cancel: CancellationToken,
    ) -> PassSummary {
        // Every log line of the pass carries its id, the EWS client's included; it is a fresh
        // UUID rather than the lease token, which is the fencing secret of the claim.
        let pass_id = Uuid::new_v4();
        let span = tracing::info_span!(
            "pass",
            pass.id = %pass_id,
            profile.id = %profile.id,
            mailbox.id = %claimed.row.id,
        );
        let started = Instant::now();
        let mut summary = self
            .pass(claimed, profile, cancel)
            .instrument(span.clone())
            .await;
        summary.pass_id = pass_id;
        // The one summary line of the pass (the workload lines carry the details).
        span.in_scope(|| {
            let failed = summary
                .reports
                .iter()
                .filter(|r| r.outcome != Outcome::Success)
                .count();
            let processed: usize = summary.reports.iter().map(|r| r.summary.processed).sum();
            let items_failed: usize = summary.reports.iter().map(|r| r.summary.failed).sum();
            tracing::info!(
                outcome = if summary.lease_lost {
                    "lease_lost"
                } else if failed == 0 {
                    "success"
                } else {
                    "failure"
                },
                workloads = summary.reports.len(),
                workloads_failed = failed,
                processed,
                failed = items_failed,
                duration_ms = started.elapsed().as_millis() as u64,
                "pass finished"
            );
        });
        summary
    }

    async fn pass(
        &self,
        claimed: ClaimedMailbox,
        profile: &Profile,
        cancel: CancellationToken,
    ) -> PassSummary {
        let mailbox_id = claimed.row.id;
        let token = claimed.lease_token;
        let mut summary = PassSummary {
            pass_id: Uuid::nil(),
            mailbox_id,
            address: claimed.row.email_address.clone(),
            profile_id: profile.id.0,
            reports: Vec::new(),
            lease_lost: false,
        };
        let lease_lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.heartbeat(mailbox_id, token, lease_lost.clone());
        let mut record = PassRecord {
            succeeded: true,
            clear_error: true,
            ..PassRecord::default()
        };
        match claimed.row.clone().into_mailbox(&self.cipher) {
            Err(e) => {
                // A bad row stops only this mailbox: named error, alert, slow retry (a fix
                // to the row makes it due at once).
                let message = e.to_string();
                tracing::error!(error = %message, "mailbox row cannot be used");
                self.alert(
                    AlertTarget::Mailbox(MailboxId(mailbox_id)),
                    AlertLevel::Error,
                    "mailbox.invalid_row",
                    None,
                    &message,
                )
                .await;
                for workload in Workload::ALL.iter().copied() {
                    if claimed.is_due(workload) {
                        record.workloads.push(WorkloadRecord {
                            workload,
                            status: WorkloadStatus::Failure,
                            failures: claimed.failures(workload),
                            next_due: after(self.scheduler.outage_retry_interval),
                            blocked_code: Some("mailbox.invalid_row".into()),
                        });
                    }
                }
                record.succeeded = false;
                record.error = Some(ErrorRecord {
                    code: "mailbox.invalid_row".into(),
                    text: message,
                    workload: Workload::Incoming,
                    correlation: None,
                });
            }
            Ok(mailbox) => {
                let ctx = PassContext {
                    store: &self.store,
                    mailbox_id,
                    profile_id: profile.id.0,
                    lease_token: token,
                    sync: &self.sync,
                    scheduler: &self.scheduler,
                    cancel: &cancel,
                    lease_lost: &lease_lost,
                };
                for workload in [Workload::Outgoing, Workload::Incoming, Workload::Act] {
                    if !claimed.is_due(workload)
                        || mailbox.method(workload) != SyncMethod::ServerSideSync
                    {
                        continue;
                    }
                    if ctx.check().is_err() {
                        break;
                    }
                    let span = tracing::info_span!("workload", workload = workload.as_str());
                    let report = self
                        .workload(&ctx, &claimed, profile, &mailbox, workload, &mut record)
                        .instrument(span)
                        .await;
                    summary.reports.push(report);
                }
            }
        }
        heartbeat.abort();
        if !summary
            .reports
            .iter()
            .any(|report| matches!(report.outcome, Outcome::Success))
        {
            record.succeeded = false;
        }
        if lease_lost.load(Ordering::SeqCst) {
            summary.lease_lost = true;
            return summary;
        }
        // A dropped connection (a database restart) is retried a few times: the statement is
        // fenced by the lease token, so a retry after a commit whose reply was lost matches no
        // row and reports the lease as gone instead of recording the pass twice.
        let mut attempt = 0;
        loop {
            match scheduling::finish_pass(&self.store, mailbox_id, token, &record).await {
                Ok(true) => {}
                Ok(false) => summary.lease_lost = true,
                Err(e) if e.is_transient() && attempt < FINISH_RETRIES => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "could not record the pass; retrying");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                    continue;
                }
                Err(e) => {
                    // The lease expires and the mailbox is claimed again; nothing half-written.
                    tracing::error!(error = %e, "could not record the pass; the lease will expire");
                }
            }
            break;
        }
        summary
    }

    fn heartbeat(
        &self,
        mailbox_id: Uuid,
        token: Uuid,
        lost: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let lease = self.scheduler.lease_duration;
        // The heartbeat's lines belong to the pass: it runs in the pass's span.
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                let every = (lease / 3).max(Duration::from_millis(100));
                loop {
                    tokio::time::sleep(every).await;
                    match scheduling::renew_lease(&store, mailbox_id, token, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(
                                "lease taken over by another process; stopping the pass"
                            );
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "could not renew the lease; retrying"),
                    }
                }
            }
            .instrument(span),
        )
    }

    /// One workload of a pass, in three steps: decide how it connects (or why it may not
    /// run), run it through the mail-server port, record what it leaves behind (success,
    /// or the reaction its failure's type calls for).
    async fn workload(
        &self,
        ctx: &PassContext<'_>,
        claimed: &ClaimedMailbox,
        profile: &Profile,
        mailbox: &Mailbox,
        workload: Workload,
        record: &mut PassRecord,
    ) -> WorkloadReport {
        let step = WorkloadStep {
            claimed,
            profile,
            mailbox,
            workload,
            started: Instant::now(),
        };
        let plan = match connection_for(profile, mailbox, workload) {
            Ok(plan) => plan,
            Err(refusal) => return self.refused(&step, refusal, record).await,
        };
        match self.run_workload(ctx, &step, &plan).await {
            Err(missing) => self.credentials_missing(&step, missing, record).await,
            Ok(Ran {
                result: Ok(done), ..
            }) => self.succeeded(&step, &plan, done, record).await,
            Ok(Ran {
                result: Err(error),
                failed_request,
            }) => {
                self.failed(&step, &plan, error, failed_request, record)
                    .await
            }
        }
    }

    /// The workload may not run for this mailbox (a setting, not a failed sync): alert,
    /// disable it with the refusal's code, slow retry.
    async fn refused(
        &self,
        step: &WorkloadStep<'_>,
        refusal: Refusal,
        record: &mut PassRecord,
    ) -> WorkloadReport {
        let workload = step.workload;
        let level = if refusal.is_warning {
            AlertLevel::Warning
        } else {
            AlertLevel::Error
        };
        self.alert(
            AlertTarget::Mailbox(step.mailbox.id),
            level,
            refusal.code,
            Some(workload),
            &refusal.message,
        )
        .await;
        record.workloads.push(WorkloadRecord {
            workload,
            status: WorkloadStatus::Failure,
            failures: step.claimed.failures(workload),
            next_due: after(self.scheduler.outage_retry_interval),
            blocked_code: Some(refusal.code.to_owned()),
        });
        // A refusal is a setting, not a failed sync: the workloads that did run can
        // still make this a successful pass (a delegation mailbox's email syncs).
        record.error = Some(ErrorRecord {
            code: refusal.code.to_owned(),
            text: refusal.message.clone(),
            workload,
            correlation: None,
        });
        self.finish(
            workload,
            Outcome::Refused {
                code: refusal.code.to_owned(),
                message: refusal.message,
            },
            WorkloadSummary::default(),
            step.started,
        )
    }

    /// Open the mailbox through the connector and run the workload's module over it.
    /// `Err`: no session could be opened (the credentials the plan needs are missing).
    async fn run_workload(
        &self,
        ctx: &PassContext<'_>,
        step: &WorkloadStep<'_>,
        plan: &ConnectionPlan,
    ) -> Result<Ran, String> {
        let (profile, mailbox) = (step.profile, step.mailbox);
        let settings = SessionSettings {
            max_changes: self.sync.max_changes_per_request,
            batch: self.sync.get_item_batch_size as usize,
            tracking_category: Some(self.sync.tracking_category.clone()),
            log_payloads: mailbox.payload_logging,
        };
        let conn = self
            .connector
            .open(profile, mailbox, plan, &settings)
            .map_err(|e| e.to_string())?;
        let conn = conn.as_ref();
        let scope =
            crate::store::scope::settings(&self.store, mailbox.id.0, &self.sync.tracking_category)
                .await;
        let result = match scope {
            Err(e) => Err(SyncError::Store(e)),
            Ok(scope) => match step.workload {
                Workload::Incoming => {
                    let from = effective_process_from(
                        profile.process_emails_from,
                        mailbox.process_email_received_after,
                    );
                    incoming::run(ctx, conn, from, &scope).await
                }
                Workload::Outgoing => outgoing::run(ctx, conn, &scope).await,
                Workload::Act => act::run(ctx, conn, &scope).await,
            },
        };
        Ok(Ran {
            result,
            failed_request: conn.failed_request(),
        })
    }

    /// No session could be opened: alert `credentials.missing`, disable, slow retry.
    async fn credentials_missing(
        &self,
        step: &WorkloadStep<'_>,
        missing: String,
        record: &mut PassRecord,
    ) -> WorkloadReport {
        let workload = step.workload;
        let code = "credentials.missing";
        let target = AlertTarget::Mailbox(step.mailbox.id);
        self.alert(target, AlertLevel::Error, code, Some(workload), &missing)
            .await;
        record.workloads.push(WorkloadRecord {
            workload,
            status: WorkloadStatus::Failure,
            failures: step.claimed.failures(workload),
            next_due: after(self.scheduler.outage_retry_interval),
            blocked_code: Some(code.into()),
        });
        record.succeeded = false;
        self.finish(
            workload,
            Outcome::Refused {
                code: code.into(),
                message: missing,
            },
            WorkloadSummary::default(),
            step.started,
        )
    }

    /// The workload ran to the end: clear what healed, next due by its cadence (at once
    /// when more is waiting).
    async fn succeeded(
        &self,
        step: &WorkloadStep<'_>,
        plan: &ConnectionPlan,
        done: WorkloadSummary,
        record: &mut PassRecord,
    ) -> WorkloadReport {
        let workload = step.workload;
        self.on_success(
            step.claimed,
            step.profile,
            step.mailbox,
            workload,
            &plan.credentials,
            &done,
        )
        .await;
        let activity = plan::activity(done.processed, done.newest, Utc::now());
        let next = if done.more_waiting {
            Duration::ZERO
        } else {
            plan::cadence(
                &self.scheduler,
                workload,
                activity,
                step.profile.min_polling_interval,
            )
        };
        record.workloads.push(WorkloadRecord {
            workload,
            status: WorkloadStatus::Success,
            failures: 0,
            next_due: after(next),
            blocked_code: None,
        });
        record.items_processed += done.processed as i32;
        record.items_failed += done.failed as i32;
        self.finish(workload, Outcome::Success, done, step.started)
    }

    /// The workload failed: the reaction its failure's type calls for (see
    /// [`super::reaction`]), its alert, a credential block, the error kept with its
    /// request's ids.
    async fn failed(
        &self,
        step: &WorkloadStep<'_>,
        plan: &ConnectionPlan,
        error: SyncError,
        failed_request: Option<ErrorCorrelation>,
        record: &mut PassRecord,
    ) -> WorkloadReport {
        let (claimed, profile, workload, started) =
            (step.claimed, step.profile, step.workload, step.started);
        let target = AlertTarget::Mailbox(step.mailbox.id);
        let kind = error.kind();
        let code = error.code();
        let message = error.to_string();
        if kind == FailureKind::Abandoned {
            return self.finish(
                workload,
                Outcome::Failed {
                    code,
                    message,
                    kind,
                },
                WorkloadSummary::default(),
                started,
            );
        }
        let reaction = react(
            kind,
            &code,
            claimed.failures(workload),
            Some(plan.credentials),
            error.server_back_off(),
            &self.scheduler,
            plan::random_jitter(),
        );
        if kind == FailureKind::Throttled {
            metrics()
                .throttled
                .get_or_create(&labels([("profile", &profile.id.to_string())]))
                .inc();
        }
        if let Some(alert) = &reaction.alert {
            let alert_target = match alert.scope {
                Scope::Profile => AlertTarget::Profile(profile.id),
                Scope::Mailbox => target,
            };
            let text = guidance(kind, &message, &reaction, &self.scheduler);
            let workload_tag = (alert.scope == Scope::Mailbox).then_some(workload);
            self.alert(alert_target, alert.level, &alert.code, workload_tag, &text)
                .await;
        }
        match reaction.block_credentials {
            Some(Scope::Profile) => {
                if let Err(e) =
                    scheduling::block_profile_credentials(&self.store, profile.id.0, &message).await
                {
                    tracing::warn!(error = %e, "could not record the profile's credential block");
                }
            }
            Some(Scope::Mailbox) => record.block_mailbox_credentials = Some(message.clone()),
            None => {}
        }
        record.workloads.push(WorkloadRecord {
            workload,
            status: reaction.status,
            failures: reaction.failures,
            next_due: after(reaction.retry_in),
            blocked_code: reaction.blocked_code.clone(),
        });
        record.succeeded = false;
        record.clear_error = false;
        // Only a mail-server (or token) failure has a request to correlate with the
        // server's logs.
        let correlation = match &error {
            SyncError::Server(_) => failed_request,
            _ => None,
        };
        record.error = Some(ErrorRecord {
            code: code.clone(),
            text: message.clone(),
            workload,
            correlation,
        });
        self.finish(
            workload,
            Outcome::Failed {
                code,
                message,
                kind,
            },
            WorkloadSummary::default(),
            started,
        )
    }

    /// Clear what healed (with an information alert) and report item failures.
    async fn on_success(
        &self,
        claimed: &ClaimedMailbox,
        profile: &Profile,
        mailbox: &Mailbox,
        workload: Workload,
        credentials: &CredentialSource,
        done: &WorkloadSummary,
    ) {
        let target = AlertTarget::Mailbox(mailbox.id);
        // An unconfirmed send needs the operator's decision: no later pass heals it.
        let keep: &[&str] = if done.failed > 0 {
            &["item.failed", crate::sync::outgoing::UNCONFIRMED_ALERT]
        } else {
            &[crate::sync::outgoing::UNCONFIRMED_ALERT]
        };
        let was_unhealthy = claimed.failures(workload) > 0
            || claimed.blocked_code(workload).is_some()
            || claimed.credentials_blocked_at.is_some();
        if was_unhealthy || done.failed == 0 {
            match alerts::resolve(&self.store, target, Some(workload), keep).await {
                Ok(closed) if !closed.is_empty() => {
                    let text = format!(
                        "{} of {} works again (cleared: {})",
                        workload,
                        mailbox.address,
                        closed.join(", ")
                    );
                    self.alert(
                        target,
                        AlertLevel::Information,
                        "workload.resumed",
                        Some(workload),
                        &text,
                    )
                    .await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not clear healed alerts"),
            }
        }
        // Proof that the credentials work needs a request: an outgoing pass with nothing
        // queued sends none, so it clears no credential alert.
        let proved = workload != Workload::Outgoing || done.processed > 0;
        if !proved {
        } else if matches!(credentials, CredentialSource::Mailbox) {
            // Credential alerts of the mailbox are raised without a workload.
            self.clear(target, &mailbox.address).await;
        } else {
            let profile_target = AlertTarget::Profile(profile.id);
            let _ = scheduling::unblock_profile_credentials(&self.store, profile.id.0).await;
            self.clear(profile_target, &profile.name).await;
        }
        if done.failed > 0 {
            let first = done.item_errors.first().cloned().unwrap_or_default();
            let text = format!(
                "{} item(s) of {} failed in this {} pass and will be retried on later passes (up to {} attempts): {}",
                done.failed, mailbox.address, workload, self.sync.item_max_attempts, first
            );
            self.alert(
                target,
                AlertLevel::Warning,
                "item.failed",
                Some(workload),
                &text,
            )
            .await;
        }
    }

    async fn clear(&self, target: AlertTarget, name: &str) {
        match alerts::resolve(&self.store, target, None, &[]).await {
            Ok(closed) if !closed.is_empty() => {
                let text = format!("{name} works again (cleared: {})", closed.join(", "));
                self.alert(
                    target,
                    AlertLevel::Information,
                    "credentials.accepted",
                    None,
                    &text,
                )
                .await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not clear healed alerts"),
        }
    }

    async fn alert(
        &self,
        target: AlertTarget,
        level: AlertLevel,
        code: &str,
        workload: Option<Workload>,
        message: &str,
    ) {
        if let Err(e) = alerts::raise(&self.store, target, level, code, workload, message).await {
            tracing::warn!(error = %e, code, "could not record an alert");
        }
    }

    fn finish(
        &self,
        workload: Workload,
        outcome: Outcome,
        summary: WorkloadSummary,
        started: Instant,
    ) -> WorkloadReport {
        let duration = started.elapsed();
        let name = workload.as_str();
        let outcome_label = match &outcome {
            Outcome::Success => "success",
            Outcome::Failed { .. } => "failure",
            Outcome::Refused { .. } => "refused",
        };
        let m = metrics();
        m.passes
            .get_or_create(&labels([("workload", name), ("outcome", outcome_label)]))
            .inc();
        let result = super::progress::processed_label(workload);
        // What a long workload reported page by page is not counted twice.
        let unreported = |total: usize, reported: usize| total.saturating_sub(reported) as u64;
        m.items
            .get_or_create(&labels([("workload", name), ("result", result)]))
            .inc_by(unreported(summary.processed, summary.reported.processed));
        m.items
            .get_or_create(&labels([("workload", name), ("result", "failed")]))
            .inc_by(unreported(summary.failed, summary.reported.failed));
        m.items
            .get_or_create(&labels([("workload", name), ("result", "skipped")]))
            .inc_by(unreported(summary.skipped, summary.reported.skipped));
        let duration_ms = duration.as_millis() as u64;
        match &outcome {
            Outcome::Success => tracing::info!(
                outcome = outcome_label,
                processed = summary.processed,
                failed = summary.failed,
                skipped = summary.skipped,
                already_present = summary.already_present,
                duration_ms,
                "workload pass finished"
            ),
            Outcome::Refused { code, message } => tracing::info!(
                outcome = outcome_label,
                error.code = %code,
                error = %message,
                duration_ms,
                "workload pass finished"
            ),
            Outcome::Failed { code, message, .. } => {
                tracing::warn!(
                    outcome = outcome_label,
                    error.code = %code,
                    error = %message,
                    duration_ms,
                    "workload pass finished"
                )
            }
        }
        WorkloadReport {
            workload,
            outcome,
            summary,
            duration,
        }
    }
}

/// One workload of one claimed mailbox, as the steps of a workload see it.
struct WorkloadStep<'a> {
    claimed: &'a ClaimedMailbox,
    profile: &'a Profile,
    mailbox: &'a Mailbox,
    workload: Workload,
    started: Instant,
}

/// What running a workload gave: its result, and the failed request's ids, if one failed.
struct Ran {
    result: Result<WorkloadSummary, SyncError>,
    failed_request: Option<ErrorCorrelation>,
}

/// Operator-facing alert text: what happened and what exsync does about it.
fn guidance(
    kind: FailureKind,
    message: &str,
    reaction: &super::reaction::Reaction,
    settings: &SchedulerSettings,
) -> String {
    let retry = humanize(settings.outage_retry_interval);
    match kind {
        FailureKind::Authentication => format!(
            "{message}. These credentials are not used again until they are updated (then sync resumes by itself), or once every {retry} to check"
        ),
        FailureKind::Permanent => format!(
            "{message}. The workload is paused; it resumes by itself when the mailbox or profile row changes (e.g. rights granted), and is retried every {retry}"
        ),
        FailureKind::MailboxRefused => format!(
            "{message}. Nothing is wrong with the items themselves: they stay queued and the mailbox is tried again with backoff ({} consecutive failures); fix the mailbox (quota, Send As right) and they go out",
            reaction.failures
        ),
        FailureKind::Transient if reaction.blocked_code.is_some() => format!(
            "{message}. {} consecutive failures: the workload is paused and retried every {retry}; no action is needed when Exchange recovers",
            reaction.failures
        ),
        _ => format!("{message} ({} consecutive failures; retrying with backoff)", reaction.failures),
    }
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{} s", secs.max(1))
    }
}

fn after(delay: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::hours(1))
}

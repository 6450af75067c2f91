//! `exsync explain ADDRESS [--item ID]`: answers "why isn't this syncing?" from the database
//! alone — the effective settings (credentials, impersonation or delegation, the effective
//! Process-From date and its source), each workload's state and why, next due time, current
//! backoff, failures, open alerts, last error and approval; for one item, whether it was
//! imported, skipped, failed or is pending. Reads only; talks to no Exchange server. The
//! rules it explains are the engine's own ([`crate::sync::plan::connection_for`],
//! [`crate::domain::rules::effective_process_from`]), called, not re-implemented.

use crate::config::{SchedulerSettings, SyncSettings};
use crate::crypto::CredentialCipher;
use crate::domain::rules::{effective_process_from, EffectiveProcessFrom, ProcessFromSource};
use crate::domain::scope::{ScopeSettings, SettingSource};
use crate::domain::{AlertTarget, MailboxId, ProfileId, SyncMethod, Workload};
use crate::store::operate::{self, FailureRecord, OutgoingRecord, SkippedRecord, WorkloadHealth};
use crate::store::{alerts, Store, StoreError};
use crate::sync::plan::{connection_for, Access, CredentialSource};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Why an explanation could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// No mailbox has this address (bad input).
    #[error("no mailbox {0:?}: declare it with `exsync apply` first")]
    UnknownMailbox(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state of one workload, most blocking first (`--json`: snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadState {
    /// Its method is `none`: not synchronised by exsync.
    Off,
    /// The profile is disabled: none of its mailboxes sync.
    ProfileDisabled,
    /// It may not run (not approved, delegation for ACT, credentials not allowed/missing).
    Refused,
    /// Exchange rejected the credentials; no request until they change or the slow retry.
    CredentialBlocked,
    /// Disabled after a permanent error or too many failures; retried slowly.
    Paused,
    /// Failing transiently; retried with backoff.
    BackingOff,
    /// A pass holds the mailbox's lease right now.
    Running,
    /// Healthy; due now or at `next_due_at`.
    Scheduled,
}

impl WorkloadState {
    /// The snake_case name (as in `--json`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadState::Off => "off",
            WorkloadState::ProfileDisabled => "profile_disabled",
            WorkloadState::Refused => "refused",
            WorkloadState::CredentialBlocked => "credential_blocked",
            WorkloadState::Paused => "paused",
            WorkloadState::BackingOff => "backing_off",
            WorkloadState::Running => "running",
            WorkloadState::Scheduled => "scheduled",
        }
    }
}

/// One workload, explained.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadExplanation {
    /// `incoming`, `outgoing` or `act`.
    pub workload: Workload,
    /// `server_side_sync` or `none`.
    pub method: String,
    /// Last status: `not_run`, `success` or `failure`.
    pub status: String,
    /// Its state now.
    pub state: WorkloadState,
    /// Why, in words.
    pub why: String,
    /// Stable code of the block or refusal, if any.
    pub code: Option<String>,
    /// Whose credentials it uses: `profile`, `profile_outgoing`, `oauth_app`, `mailbox`.
    pub credentials: Option<String>,
    /// How it reaches the mailbox: `impersonation`, `delegation`, `own`.
    pub access: Option<String>,
    /// When it is next due.
    pub next_due_at: DateTime<Utc>,
    /// Seconds until the retry while failing (the current backoff), else null.
    pub backoff_seconds: Option<i64>,
    /// Consecutive failures.
    pub consecutive_failures: i32,
}

/// An alert still open.
#[derive(Debug, Clone, Serialize)]
pub struct OpenAlert {
    /// `profile` or `mailbox`.
    pub on: String,
    /// `warning` or `error`.
    pub level: String,
    /// Stable code.
    pub code: String,
    /// Workload, if the alert concerns one.
    pub workload: Option<String>,
    /// Text.
    pub message: String,
    /// How often it occurred.
    pub occurrences: i32,
    /// When it was last seen.
    pub last_seen_at: DateTime<Utc>,
}

/// The mailbox's last recorded error.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    /// Stable code.
    pub code: String,
    /// Text.
    pub text: Option<String>,
    /// Workload.
    pub workload: Option<String>,
    /// When.
    pub at: Option<DateTime<Utc>>,
    /// The `client-request-id` exsync sent with the failed request.
    pub client_request_id: Option<Uuid>,
    /// Exchange's `request-id` for it (the identity platform's, for a token request).
    pub request_id: Option<String>,
    /// Exchange's `X-BEServer` (the mailbox server that answered).
    pub be_server: Option<String>,
}

/// What happened to one item (`--item`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemFate {
    /// Imported into `emails` (row `email_id`) at `imported_at`.
    Imported {
        /// The `emails` row.
        email_id: Uuid,
        /// The EWS item id of this mailbox's copy.
        ews_item_id: String,
        /// Folder it came from.
        folder: String,
        /// When.
        imported_at: DateTime<Utc>,
        /// Deleted in Exchange since (the row is kept).
        deleted_in_exchange_at: Option<DateTime<Utc>>,
    },
    /// Stored from another mailbox's copy (each message is stored once), not from this one.
    ImportedFromAnotherMailbox {
        /// The `emails` row.
        email_id: Uuid,
    },
    /// Deliberately not imported.
    Skipped {
        /// `before_process_from` or `not_an_email`.
        reason: String,
        /// Words.
        why: String,
        /// Its DateTimeReceived, if known.
        received_at: Option<DateTime<Utc>>,
        /// When it was skipped.
        skipped_at: DateTime<Utc>,
    },
    /// Failed to import.
    Failed {
        /// The last error.
        error: String,
        /// Attempts so far.
        attempts: i32,
        /// Set when exsync stopped retrying it.
        gave_up_at: Option<DateTime<Utc>>,
        /// Last attempt.
        last_failed_at: DateTime<Utc>,
    },
    /// An outgoing email queued through exsync.
    Outgoing {
        /// `pending`, `sending`, `sent` or `failed`.
        status: String,
        /// Attempts.
        attempts: i32,
        /// The last error, if any.
        last_error: Option<String>,
        /// When sent.
        sent_at: Option<DateTime<Utc>>,
    },
    /// exsync has no record of it: pending (not synced yet) or not in this mailbox.
    Unknown {
        /// Words.
        why: String,
    },
}

/// The item asked about and its fate.
#[derive(Debug, Clone, Serialize)]
pub struct ItemExplanation {
    /// The id as given.
    pub id: String,
    /// What happened.
    pub fate: ItemFate,
}

/// The whole answer (`--json`: this object).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The mailbox.
    pub address: String,
    /// Its id.
    pub mailbox_id: Uuid,
    /// Its profile's name.
    pub profile: String,
    /// Whether the profile is enabled.
    pub profile_enabled: bool,
    /// The profile's authentication: `profile_credentials`, `mailbox_credentials`, `oauth_client_credentials`.
    pub auth: String,
    /// The protocol the profile speaks: `ews`, or `graph` (Microsoft Graph) and its URL.
    pub protocol: String,
    /// Impersonation or delegation (profile credentials), or own credentials.
    pub access: String,
    /// Approval of the mailbox's email address.
    pub approval: String,
    /// Effective Process-From date and the setting it came from (`profile`, `mailbox`, `unrestricted`).
    pub process_from: EffectiveProcessFrom,
    /// Newest DateTimeReceived imported.
    pub incoming_watermark: Option<DateTime<Utc>>,
    /// Why the credentials are blocked (profile's or mailbox's), if they are.
    pub credentials_blocked: Option<String>,
    /// Who holds the lease now, if anyone.
    pub lease_owner: Option<String>,
    /// Last successful pass.
    pub last_successful_sync: Option<DateTime<Utc>>,
    /// One entry per workload.
    pub workloads: Vec<WorkloadExplanation>,
    /// Open alerts on the mailbox and its profile.
    pub open_alerts: Vec<OpenAlert>,
    /// Last error.
    pub last_error: Option<LastError>,
    /// The item asked about.
    pub item: Option<ItemExplanation>,
    /// The mailbox's row cannot be used (e.g. a secret that does not decrypt).
    pub row_error: Option<String>,
    /// What syncs: the incoming filter and ACT scope in force (and where they come from), the
    /// tracking category and token prefix.
    pub scope: Option<ScopeSettings>,
    /// Whether it streams or polls, and why.
    pub notifications: Option<crate::streaming::explain::NotificationExplanation>,
}

impl Explanation {
    /// One workload's explanation.
    pub fn workload(&self, workload: Workload) -> Option<&WorkloadExplanation> {
        self.workloads.iter().find(|w| w.workload == workload)
    }
}

/// Explain a mailbox (and optionally one item) from what the database holds, with the
/// default `[sync]` settings (the tracking category).
pub async fn explain(
    store: &Store,
    cipher: &CredentialCipher,
    scheduler: &SchedulerSettings,
    address: &str,
    item: Option<&str>,
) -> Result<Explanation, ExplainError> {
    explain_with(
        store,
        cipher,
        scheduler,
        &SyncSettings::default(),
        address,
        item,
    )
    .await
}

/// Explain a mailbox (and optionally one item) under the daemon's `[sync]` settings.
pub async fn explain_with(
    store: &Store,
    cipher: &CredentialCipher,
    scheduler: &SchedulerSettings,
    sync: &SyncSettings,
    address: &str,
    item: Option<&str>,
) -> Result<Explanation, ExplainError> {
    let row = operate::mailbox_by_address(store, address)
        .await?
        .ok_or_else(|| ExplainError::UnknownMailbox(address.to_owned()))?;
    let health = operate::mailbox_health(store, row.id).await?;
    let profile_row = crate::store::profiles::list_rows(store)
        .await?
        .into_iter()
        .find(|p| p.id == row.profile_id)
        .ok_or_else(|| StoreError::NotFound(format!("the profile of {address:?} is gone")))?;
    let now = Utc::now();
    let mailbox_id = row.id;
    let profile_id = row.profile_id;
    let mut out = Explanation {
        address: row.email_address.clone(),
        mailbox_id,
        profile: profile_row.name.clone(),
        profile_enabled: profile_row.enabled,
        auth: profile_row.auth.clone(),
        protocol: match profile_row.protocol.as_str() {
            "graph" => format!("graph ({})", profile_row.graph_url),
            other => other.to_owned(),
        },
        access: match (profile_row.auth.as_str(), profile_row.use_impersonation) {
            ("mailbox_credentials", _) => "own credentials".into(),
            (_, true) => "impersonation".into(),
            (_, false) => "delegation".into(),
        },
        approval: row.approval_status.clone(),
        process_from: effective_process_from(
            profile_row.process_emails_from,
            row.process_email_received_after,
        ),
        incoming_watermark: health.incoming_watermark,
        credentials_blocked: health
            .profile_credentials_blocked_reason
            .as_ref()
            .map(|r| format!("the profile's credentials: {r}"))
            .or_else(|| {
                health
                    .credentials_blocked_reason
                    .as_ref()
                    .map(|r| format!("the mailbox's credentials: {r}"))
            }),
        lease_owner: health.lease_owner.clone(),
        last_successful_sync: health.last_successful_sync,
        workloads: Vec::new(),
        open_alerts: Vec::new(),
        last_error: health.last_error_code.clone().map(|code| LastError {
            code,
            text: health.last_error_text.clone(),
            workload: health.last_error_workload.clone(),
            at: health.last_error_at,
            client_request_id: health.last_error_client_request_id,
            request_id: health.last_error_request_id.clone(),
            be_server: health.last_error_be_server.clone(),
        }),
        item: None,
        row_error: None,
        scope: crate::store::scope::settings(store, row.id, &sync.tracking_category)
            .await
            .ok(),
        notifications: if profile_row.protocol == "graph" {
            crate::graph_notify::explain::describe(store, row.id)
                .await
                .ok()
        } else {
            crate::streaming::explain::describe(store, row.id, row.profile_id)
                .await
                .ok()
        },
    };
    let profile = profile_row.into_profile(cipher);
    let mailbox = row.into_mailbox(cipher);
    let decoded = match (profile, mailbox) {
        (Ok(p), Ok(m)) => Some((p, m)),
        (Err(e), _) | (_, Err(e)) => {
            out.row_error = Some(e.to_string());
            None
        }
    };
    for workload in [Workload::Incoming, Workload::Outgoing, Workload::Act] {
        let WorkloadHealth {
            status,
            next_due_at,
            failures,
            blocked_code: blocked,
        } = health.of(workload);
        let method = decoded
            .as_ref()
            .map(|(_, m)| m.method(workload))
            .unwrap_or(SyncMethod::None);
        let plan = decoded
            .as_ref()
            .map(|(p, m)| connection_for(p, m, workload));
        let mut w = WorkloadExplanation {
            workload,
            method: method.as_str().to_owned(),
            status: status.to_owned(),
            state: WorkloadState::Scheduled,
            why: String::new(),
            code: blocked.map(str::to_owned),
            credentials: None,
            access: None,
            next_due_at,
            backoff_seconds: ((failures > 0 || status == "failure") && next_due_at > now)
                .then(|| (next_due_at - now).num_seconds()),
            consecutive_failures: failures,
        };
        if let Some(Ok(plan)) = &plan {
            w.credentials = Some(credentials_name(plan.credentials).into());
            w.access = Some(access_name(plan.access).into());
        }
        let due = if next_due_at <= now {
            "due now".to_owned()
        } else {
            format!("next due {}", next_due_at.format("%Y-%m-%d %H:%M:%S UTC"))
        };
        if let Some(error) = &out.row_error {
            w.state = WorkloadState::Paused;
            w.code = Some("mailbox.invalid_row".into());
            w.why = format!("the mailbox's or profile's row cannot be used: {error}");
        } else if method != SyncMethod::ServerSideSync {
            w.state = WorkloadState::Off;
            w.why = "its synchronisation method is none".into();
        } else if !out.profile_enabled {
            w.state = WorkloadState::ProfileDisabled;
            w.why = format!("profile {:?} is disabled", out.profile);
        } else if let Some(Err(refusal)) = &plan {
            w.state = WorkloadState::Refused;
            w.code = Some(refusal.code.to_owned());
            w.why = refusal.message.clone();
        } else if let Some(reason) = &out.credentials_blocked {
            let retry = chrono::Duration::from_std(scheduler.outage_retry_interval)
                .unwrap_or_else(|_| chrono::Duration::hours(1));
            w.state = WorkloadState::CredentialBlocked;
            w.why = format!(
                "Exchange rejected {reason}; no request until the credentials change (sync then resumes by itself) or the retry every {} s",
                retry.num_seconds()
            );
        } else if let Some(code) = blocked {
            w.state = WorkloadState::Paused;
            w.why = format!(
                "paused after {code} ({failures} consecutive failure(s)); retried slowly, {due}; `exsync test-mailbox` re-enables it once the cause is fixed"
            );
        } else if failures > 0 {
            w.state = WorkloadState::BackingOff;
            w.why = format!("{failures} consecutive failure(s); retrying with backoff, {due}");
        } else if status == "failure" && next_due_at > now {
            // Throttling is not counted as a failure: the run waits what Exchange asked.
            w.state = WorkloadState::BackingOff;
            w.why = format!(
                "the last run failed ({}); waiting as Exchange asked, {due}",
                out.last_error
                    .as_ref()
                    .map(|e| e.code.as_str())
                    .unwrap_or("see the last error")
            );
        } else if out.lease_owner.is_some() {
            w.state = WorkloadState::Running;
            w.why = format!(
                "a pass is running in {}",
                out.lease_owner.as_deref().unwrap_or("?")
            );
        } else {
            w.why = format!("healthy, {due}");
        }
        out.workloads.push(w);
    }
    for (on, target) in [
        ("mailbox", AlertTarget::Mailbox(MailboxId(mailbox_id))),
        ("profile", AlertTarget::Profile(ProfileId(profile_id))),
    ] {
        for a in alerts::list(store, target, true, 50).await? {
            out.open_alerts.push(OpenAlert {
                on: on.into(),
                level: a.level,
                code: a.code,
                workload: a.workload,
                message: a.message,
                occurrences: a.occurrences,
                last_seen_at: a.last_seen_at,
            });
        }
    }
    if let Some(id) = item {
        out.item = Some(ItemExplanation {
            id: id.to_owned(),
            fate: item_fate(store, mailbox_id, id, &out).await?,
        });
    }
    Ok(out)
}

/// The tracking category in quotes, for explanations.
fn tracked_category(explanation: &Explanation) -> String {
    format!(
        "{:?}",
        explanation
            .scope
            .as_ref()
            .map(|s| s.tracking_category.as_str())
            .unwrap_or(crate::domain::scope::DEFAULT_TRACKING_CATEGORY)
    )
}

fn source_name(source: SettingSource) -> &'static str {
    match source {
        SettingSource::Profile => "from the profile",
        SettingSource::Mailbox => "the mailbox's own",
    }
}

fn credentials_name(source: CredentialSource) -> &'static str {
    match source {
        CredentialSource::Profile => "profile",
        CredentialSource::ProfileOutgoing => "profile_outgoing",
        CredentialSource::OAuthApp => "oauth_app",
        CredentialSource::Mailbox => "mailbox",
    }
}

fn access_name(access: Access) -> &'static str {
    match access {
        Access::Impersonate => "impersonation",
        Access::Delegate => "delegation",
        Access::Own => "own",
    }
}

async fn item_fate(
    store: &Store,
    mailbox_id: Uuid,
    id: &str,
    explanation: &Explanation,
) -> Result<ItemFate, StoreError> {
    let id = id.trim();
    let message_id = if id.contains('@') {
        Some(if id.starts_with('<') {
            id.to_owned()
        } else {
            format!("<{id}>")
        })
    } else {
        None
    };
    let copy = operate::copy_of_item(store, mailbox_id, id, message_id.as_deref()).await?;
    if let Some(c) = copy {
        return Ok(ItemFate::Imported {
            email_id: c.email_id,
            ews_item_id: c.ews_item_id,
            folder: c.folder,
            imported_at: c.imported_at,
            deleted_in_exchange_at: c.deleted_in_exchange_at,
        });
    }
    let skipped = operate::skipped_item(store, mailbox_id, id).await?;
    if let Some(SkippedRecord {
        reason,
        received_at,
        skipped_at,
    }) = skipped
    {
        let why = match reason.as_str() {
            "before_process_from" => {
                let limit = explanation
                    .process_from
                    .after
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "the Process-From date".into());
                let source = match explanation.process_from.source {
                    ProcessFromSource::Profile => "the profile's Process Emails From",
                    ProcessFromSource::Mailbox => "the mailbox's Process Email Received After",
                    ProcessFromSource::Unrestricted => "a Process-From date since removed",
                };
                format!(
                    "received before {limit} ({source}): older than the watermark, not imported"
                )
            }
            "not_an_email" => {
                "not an email message (e.g. a meeting request or a report): filtered".into()
            }
            "filter_responses" => format!(
                "left out by the incoming filter \"responses\": not a reply to mail sent through exsync (no In-Reply-To or References naming one of its messages, no tracking token in the subject), and not categorised {}",
                tracked_category(explanation)
            ),
            "filter_known_senders" => format!(
                "left out by the incoming filter \"known_senders\": the sender is neither a contact in the database nor a mailbox, and it is not categorised {}",
                tracked_category(explanation)
            ),
            "filter_none" => format!(
                "left out by the incoming filter \"none\": only mail categorised {} comes in",
                tracked_category(explanation)
            ),
            "not_tracked" => format!(
                "left out by act_scope \"tracked\": the item is not categorised {} and exsync did not create it",
                tracked_category(explanation)
            ),
            other => format!("skipped: {other}"),
        };
        return Ok(ItemFate::Skipped {
            reason,
            why,
            received_at,
            skipped_at,
        });
    }
    let failed = operate::item_failure(store, mailbox_id, id).await?;
    if let Some(FailureRecord {
        last_error: error,
        attempts,
        gave_up_at,
        last_failed_at,
    }) = failed
    {
        return Ok(ItemFate::Failed {
            error,
            attempts,
            gave_up_at,
            last_failed_at,
        });
    }
    if let Some(message_id) = &message_id {
        let elsewhere = operate::email_by_message_id(store, message_id).await?;
        let outgoing = operate::outgoing_by_message_id(store, mailbox_id, message_id).await?;
        if let Some(OutgoingRecord {
            status,
            attempts,
            last_error,
            sent_at,
        }) = outgoing
        {
            return Ok(ItemFate::Outgoing {
                status,
                attempts,
                last_error,
                sent_at,
            });
        }
        if let Some(email_id) = elsewhere {
            return Ok(ItemFate::ImportedFromAnotherMailbox { email_id });
        }
    }
    let incoming = explanation.workload(Workload::Incoming);
    let why = match incoming {
        Some(w) if w.state == WorkloadState::Scheduled || w.state == WorkloadState::Running => {
            format!(
                "exsync has no record of it: pending if it is in this mailbox (incoming is {}), or not in this mailbox",
                w.why
            )
        }
        Some(w) => format!(
            "exsync has no record of it; incoming email is not syncing: {}",
            w.why
        ),
        None => "exsync has no record of it".into(),
    };
    Ok(ItemFate::Unknown { why })
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "-".into())
        };
        writeln!(f, "{} (mailbox {})", self.address, self.mailbox_id)?;
        writeln!(
            f,
            "  profile:       {:?} ({})",
            self.profile,
            if self.profile_enabled {
                "enabled"
            } else {
                "DISABLED: nothing syncs"
            }
        )?;
        writeln!(f, "  protocol:      {}", self.protocol)?;
        writeln!(f, "  credentials:   {} via {}", self.auth, self.access)?;
        writeln!(f, "  approval:      {}", self.approval)?;
        let source = match self.process_from.source {
            ProcessFromSource::Unrestricted => "no date set: everything is imported",
            ProcessFromSource::Profile => "from the profile",
            ProcessFromSource::Mailbox => "from the mailbox",
        };
        writeln!(
            f,
            "  process from:  {} ({source})",
            when(self.process_from.after)
        )?;
        writeln!(f, "  watermark:     {}", when(self.incoming_watermark))?;
        if let Some(scope) = &self.scope {
            writeln!(
                f,
                "  incoming:      filter {} ({}); mail categorised {:?} always comes in",
                scope.incoming_filter,
                source_name(scope.incoming_filter_source),
                scope.tracking_category
            )?;
            writeln!(
                f,
                "  act scope:     {} ({}); deleting an attended meeting: {}",
                scope.act_scope,
                source_name(scope.act_scope_source),
                scope.attendee_delete
            )?;
            writeln!(
                f,
                "  tracking token: {}",
                scope
                    .tracking_token_prefix
                    .as_deref()
                    .map(|p| format!("{p}<number> at the end of outgoing subjects"))
                    .unwrap_or_else(|| "off".into())
            )?;
        }
        writeln!(f, "  last success:  {}", when(self.last_successful_sync))?;
        if let Some(n) = &self.notifications {
            writeln!(f, "  changes:       {}", n.why)?;
        }
        if let Some(reason) = &self.credentials_blocked {
            writeln!(f, "  CREDENTIALS BLOCKED: {reason}")?;
        }
        if let Some(error) = &self.row_error {
            writeln!(f, "  ROW UNUSABLE: {error}")?;
        }
        for w in &self.workloads {
            writeln!(
                f,
                "  {:<9} {:<17} status {:<8} failures {}{}  {}",
                w.workload.as_str(),
                w.state.as_str(),
                w.status,
                w.consecutive_failures,
                w.backoff_seconds
                    .map(|s| format!(" (retry in {s} s)"))
                    .unwrap_or_default(),
                w.why
            )?;
        }
        if let Some(e) = &self.last_error {
            writeln!(
                f,
                "  last error:    {} [{}] at {}: {}",
                e.code,
                e.workload.as_deref().unwrap_or("-"),
                when(e.at),
                e.text.as_deref().unwrap_or("")
            )?;
            if let Some(id) = e.client_request_id {
                writeln!(
                    f,
                    "                 client-request-id {id}, request-id {}, X-BEServer {}",
                    e.request_id.as_deref().unwrap_or("-"),
                    e.be_server.as_deref().unwrap_or("-")
                )?;
            }
        }
        if self.open_alerts.is_empty() {
            writeln!(f, "  open alerts:   none")?;
        } else {
            writeln!(f, "  open alerts:")?;
            for a in &self.open_alerts {
                writeln!(
                    f,
                    "    {} {} on {}{} (x{}): {}",
                    a.level,
                    a.code,
                    a.on,
                    a.workload
                        .as_deref()
                        .map(|w| format!("/{w}"))
                        .unwrap_or_default(),
                    a.occurrences,
                    a.message
                )?;
            }
        }
        if let Some(item) = &self.item {
            let text = match &item.fate {
                ItemFate::Imported {
                    email_id,
                    folder,
                    imported_at,
                    ..
                } => format!(
                    "imported at {} from {folder} into emails row {email_id}",
                    when(Some(*imported_at))
                ),
                ItemFate::ImportedFromAnotherMailbox { email_id } => {
                    format!("stored once as emails row {email_id}, from another mailbox's copy")
                }
                ItemFate::Skipped { why, .. } => format!("skipped: {why}"),
                ItemFate::Failed {
                    error,
                    attempts,
                    gave_up_at,
                    ..
                } => format!(
                    "failed after {attempts} attempt(s){}: {error}",
                    if gave_up_at.is_some() {
                        " (given up)"
                    } else {
                        " (retried on later passes)"
                    }
                ),
                ItemFate::Outgoing {
                    status,
                    attempts,
                    last_error,
                    ..
                } => format!(
                    "outgoing email, {status} after {attempts} attempt(s){}",
                    last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                ItemFate::Unknown { why } => why.clone(),
            };
            writeln!(f, "  item {}: {text}", item.id)?;
        }
        Ok(())
    }
}

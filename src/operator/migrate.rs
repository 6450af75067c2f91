//! `exsync migrate-profile NAME --to graph [--dry-run] [--json]`: moves an EWS profile to
//! Microsoft Graph without importing anything again and keeping every ACT link.
//!
//! While it runs the profile is disabled (no pass may import by EWS id once some ids are
//! translated); each mailbox is leased while its ids are rewritten. Stored EWS ids (email
//! copies, skipped and failed items, appointments, contacts and their tombstones) are
//! translated with `translateExchangeIds` in batches of 1,000, each batch written in one
//! transaction; To Do tasks have no EWS id to translate and are matched by subject and due
//! date. Then, in one transaction, the profile speaks Graph, is enabled again as it was, and
//! its EWS sync states are dropped: the first Graph delta round reports every item, and the
//! translated ids are recognised. A crash resumes where it stopped (each id's outcome is
//! kept); a finished move run again changes nothing. SQL lives in `store::migration`.

use crate::app::{graph_options, transport_settings};
use crate::config::Settings;
use crate::crypto::CredentialCipher;
use crate::domain::server_type::{findings, Severity};
use crate::domain::{default_oauth_scope, Profile, Protocol, DEFAULT_EWS_OAUTH_SCOPE};
use crate::providers::graph::GraphConnector;
use crate::store::migration::{self, IdKind, IdOutcome, PendingTask};
use crate::store::{operate, profiles, scheduling, Store, StoreError};
use exsync_ews::transport::Transport;
use exsync_graph::model::{DateTimeTimeZone, DeltaEntry, DeltaNext, ExchangeIdFormat, TodoTask};
use exsync_graph::{GraphClient, GraphError, Target, MAX_IDS_PER_TRANSLATION};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a mailbox is leased while its ids are rewritten (renewed per batch).
const LEASE: Duration = Duration::from_secs(600);

/// How long to wait for a pass that holds a mailbox's lease to end.
const LEASE_WAIT: Duration = Duration::from_secs(60);

/// Why a move could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No profile has this name (bad input).
    #[error("no email server profile named {0:?}")]
    UnknownProfile(String),
    /// The profile cannot speak Graph as configured (bad input).
    #[error("profile {name:?} cannot move to Microsoft Graph: {reason}")]
    NotEligible {
        /// The profile.
        name: String,
        /// Why, and what to change.
        reason: String,
    },
    /// A pass held a mailbox longer than the move waits; run it again.
    #[error("mailbox {0} is being synchronised right now; run migrate-profile again (it resumes)")]
    Busy(String),
    /// Graph failed (the move resumes when run again).
    #[error("Microsoft Graph failed for {mailbox}: {error}")]
    Graph {
        /// The mailbox.
        mailbox: String,
        /// What Graph answered.
        error: GraphError,
    },
    /// The Graph client could not be set up.
    #[error("cannot set up the Graph client: {0}")]
    Setup(String),
    /// The database failed (the move resumes when run again).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one mailbox's move did (ids kept from earlier runs included).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MailboxMigration {
    /// The mailbox.
    pub address: String,
    /// Ids translated with translateExchangeIds.
    pub translated: i64,
    /// To Do tasks matched by their stored properties.
    pub matched: i64,
    /// Ids neither translated nor matched (kept unlinked; see docs/graph.md).
    pub failed: i64,
    /// Per kind and outcome (`email.translated`, `task.failed`, …).
    pub by_kind: BTreeMap<String, i64>,
}

/// What `migrate-profile` did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The profile.
    pub profile: String,
    /// Nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// The profile speaks Graph now.
    pub switched: bool,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxMigration>,
    /// Totals.
    pub translated: i64,
    /// Totals.
    pub matched: i64,
    /// Totals.
    pub failed: i64,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for m in &self.mailboxes {
            writeln!(
                f,
                "{}: {} translated, {} matched, {} failed",
                m.address, m.translated, m.matched, m.failed
            )?;
        }
        let verb = if self.dry_run { "would move" } else { "moved" };
        writeln!(
            f,
            "profile {:?} {verb} to Microsoft Graph: {} translated, {} matched, {} failed{}",
            self.profile,
            self.translated,
            self.matched,
            self.failed,
            if self.switched {
                " (now protocol = \"graph\")"
            } else {
                ""
            }
        )
    }
}

/// Move profile `name` to Graph (or, with `dry_run`, say what would be translated without
/// writing anything).
pub async fn migrate_profile(
    store: &Store,
    cipher: &CredentialCipher,
    settings: &Settings,
    name: &str,
    dry_run: bool,
) -> Result<MigrationReport, MigrateError> {
    let row = profiles::list_rows(store)
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| MigrateError::UnknownProfile(name.to_owned()))?;
    let explicit_scope = row.oauth_scope.clone();
    let mut profile = row.into_profile(cipher)?;
    let mailboxes = operate::mailboxes_of_profile(store, profile.id.0).await?;
    let mut report = MigrationReport {
        profile: name.to_owned(),
        dry_run,
        switched: false,
        mailboxes: Vec::new(),
        translated: 0,
        matched: 0,
        failed: 0,
    };
    if profile.protocol == Protocol::Graph {
        // Already moved: report what the move did, change nothing.
        for mailbox in &mailboxes {
            report
                .mailboxes
                .push(recorded(store, mailbox.id, &mailbox.email_address).await?);
        }
        report.switched = true;
        return Ok(totals(report));
    }
    graph_view(&mut profile, explicit_scope.as_deref())?;
    let transport = Transport::new(transport_settings(&settings.http))
        .map_err(|e| MigrateError::Setup(e.to_string()))?;
    let connector = GraphConnector::new(
        &transport,
        graph_options(&settings.sync),
        settings.scheduler.outage_retry_interval,
    )
    .map_err(|e| MigrateError::Setup(e.to_string()))?;
    let (client, _) = connector
        .client_for(&profile)
        .map_err(|e| MigrateError::Setup(e.to_string()))?;
    if dry_run {
        for mailbox in &mailboxes {
            report
                .mailboxes
                .push(dry_run_mailbox(store, &client, mailbox.id, &mailbox.email_address).await?);
        }
        return Ok(totals(report));
    }
    migration::begin(store, profile.id.0).await?;
    for mailbox in &mailboxes {
        let token = lease(store, mailbox.id, &mailbox.email_address).await?;
        let moved = migrate_mailbox(store, &client, mailbox.id, &mailbox.email_address).await;
        if let Err(e) = scheduling::release_lease(store, mailbox.id, token).await {
            tracing::warn!(error = %e, "could not release a mailbox after its move; the lease expires");
        }
        moved?;
        report
            .mailboxes
            .push(recorded(store, mailbox.id, &mailbox.email_address).await?);
    }
    migration::finish(store, profile.id.0).await?;
    report.switched = true;
    Ok(totals(report))
}

/// The profile as Graph sees it (refused when Graph cannot serve it): protocol Graph and,
/// unless the operator set a scope of their own, Graph's default token scope.
fn graph_view(profile: &mut Profile, explicit_scope: Option<&str>) -> Result<(), MigrateError> {
    let refusals: Vec<String> = findings(
        profile.server_type,
        Protocol::Graph,
        profile.auth,
        profile.password_scheme,
        profile.use_impersonation,
        chrono::Utc::now().date_naive(),
    )
    .into_iter()
    .filter(|f| f.severity == Severity::Refuse)
    .map(|f| format!("{} ({})", f.reason, f.code))
    .collect();
    if !refusals.is_empty() {
        return Err(MigrateError::NotEligible {
            name: profile.name.clone(),
            reason: refusals.join("; "),
        });
    }
    profile.protocol = Protocol::Graph;
    if let Some(oauth) = profile.oauth.as_mut() {
        if explicit_scope.is_none_or(|s| s == DEFAULT_EWS_OAUTH_SCOPE) {
            oauth.scope = default_oauth_scope(Protocol::Graph, &profile.graph_url);
        }
    }
    Ok(())
}

fn totals(mut report: MigrationReport) -> MigrationReport {
    report.translated = report.mailboxes.iter().map(|m| m.translated).sum();
    report.matched = report.mailboxes.iter().map(|m| m.matched).sum();
    report.failed = report.mailboxes.iter().map(|m| m.failed).sum();
    report
}

/// Lease a mailbox, waiting for a running pass to end.
async fn lease(
    store: &Store,
    mailbox_id: uuid::Uuid,
    address: &str,
) -> Result<uuid::Uuid, MigrateError> {
    let started = std::time::Instant::now();
    loop {
        if let Some(claimed) =
            scheduling::claim_mailbox(store, mailbox_id, "migrate-profile", LEASE).await?
        {
            return Ok(claimed.lease_token);
        }
        if started.elapsed() > LEASE_WAIT {
            return Err(MigrateError::Busy(address.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the recorded outcomes say about a mailbox.
async fn recorded(
    store: &Store,
    mailbox_id: uuid::Uuid,
    address: &str,
) -> Result<MailboxMigration, MigrateError> {
    let mut out = MailboxMigration {
        address: address.to_owned(),
        ..MailboxMigration::default()
    };
    for (kind, outcome, count) in migration::counts(store, mailbox_id).await? {
        match outcome.as_str() {
            "translated" => out.translated += count,
            "matched" => out.matched += count,
            _ => out.failed += count,
        }
        out.by_kind.insert(format!("{kind}.{outcome}"), count);
    }
    Ok(out)
}

/// Translate `ids` (one mailbox, at most 1,000 per call): one outcome per id.
async fn translate(
    client: &GraphClient,
    address: &str,
    ids: &[String],
) -> Result<Vec<(String, IdOutcome)>, MigrateError> {
    let answers = client
        .translate_exchange_ids(
            &Target::new(address),
            ids,
            ExchangeIdFormat::EwsId,
            ExchangeIdFormat::RestImmutableEntryId,
        )
        .await
        .map_err(|error| MigrateError::Graph {
            mailbox: address.to_owned(),
            error,
        })?;
    let mut by_source: BTreeMap<String, IdOutcome> = BTreeMap::new();
    for answer in answers {
        let Some(source) = answer.source_id else {
            continue;
        };
        let outcome = match (answer.target_id, answer.error_details) {
            (Some(target), _) if !target.is_empty() => IdOutcome::Translated(target),
            (_, Some(details)) => IdOutcome::Failed(format!(
                "{}: {}",
                details.code.unwrap_or_else(|| "error".into()),
                details.message.unwrap_or_default()
            )),
            _ => IdOutcome::Failed("translateExchangeIds answered no id".into()),
        };
        by_source.insert(source, outcome);
    }
    Ok(ids
        .iter()
        .map(|id| {
            let outcome = by_source
                .remove(id)
                .unwrap_or_else(|| IdOutcome::Failed("translateExchangeIds left it out".into()));
            (id.clone(), outcome)
        })
        .collect())
}

async fn migrate_mailbox(
    store: &Store,
    client: &GraphClient,
    mailbox_id: uuid::Uuid,
    address: &str,
) -> Result<(), MigrateError> {
    for kind in [IdKind::Email, IdKind::Appointment, IdKind::Contact] {
        loop {
            let ids =
                migration::pending_ids(store, mailbox_id, kind, MAX_IDS_PER_TRANSLATION as i64)
                    .await?;
            if ids.is_empty() {
                break;
            }
            let outcomes = translate(client, address, &ids).await?;
            migration::record(store, mailbox_id, kind, &outcomes).await?;
        }
    }
    let tasks = migration::pending_tasks(store, mailbox_id).await?;
    if !tasks.is_empty() {
        let todo = todo_tasks(client, address).await?;
        let outcomes = match_tasks(&tasks, todo);
        migration::record(store, mailbox_id, IdKind::Task, &outcomes).await?;
    }
    Ok(())
}

async fn dry_run_mailbox(
    store: &Store,
    client: &GraphClient,
    mailbox_id: uuid::Uuid,
    address: &str,
) -> Result<MailboxMigration, MigrateError> {
    let mut out = recorded(store, mailbox_id, address).await?;
    let mut add = |kind: IdKind, outcomes: &[(String, IdOutcome)]| {
        for (_, outcome) in outcomes {
            let label = match outcome {
                IdOutcome::Translated(_) => {
                    out.translated += 1;
                    "translated"
                }
                IdOutcome::Matched { .. } => {
                    out.matched += 1;
                    "matched"
                }
                IdOutcome::Failed(_) => {
                    out.failed += 1;
                    "failed"
                }
            };
            *out.by_kind
                .entry(format!("{}.{label}", kind.as_str()))
                .or_default() += 1;
        }
    };
    for kind in [IdKind::Email, IdKind::Appointment, IdKind::Contact] {
        let ids = migration::pending_ids(store, mailbox_id, kind, i64::MAX).await?;
        if !ids.is_empty() {
            add(kind, &translate(client, address, &ids).await?);
        }
    }
    let tasks = migration::pending_tasks(store, mailbox_id).await?;
    if !tasks.is_empty() {
        let todo = todo_tasks(client, address).await?;
        add(IdKind::Task, &match_tasks(&tasks, todo));
    }
    Ok(out)
}

/// Every task of the mailbox's default To Do list (one whole delta round).
async fn todo_tasks(client: &GraphClient, address: &str) -> Result<Vec<TodoTask>, MigrateError> {
    let target = Target::new(address);
    let failed = |error| MigrateError::Graph {
        mailbox: address.to_owned(),
        error,
    };
    let lists = client.todo_lists(&target).await.map_err(failed)?;
    let Some(list) = lists
        .into_iter()
        .find(|l| {
            l.wellknown_list_name == Some(exsync_graph::model::WellknownListName::DefaultList)
        })
        .and_then(|l| l.id)
    else {
        return Ok(Vec::new());
    };
    let mut page = client
        .todo_task_delta(&target, &list)
        .await
        .map_err(failed)?;
    let mut tasks = Vec::new();
    loop {
        for entry in page.entries {
            if let DeltaEntry::Changed(task) = entry {
                tasks.push(task);
            }
        }
        match page.next {
            DeltaNext::NextPage(link) => {
                page = client
                    .todo_task_delta_next(&target, &link)
                    .await
                    .map_err(failed)?
            }
            DeltaNext::Done(_) => return Ok(tasks),
        }
    }
}

/// Each stored task matched to at most one To Do task of the same title and due day (each To
/// Do task used once); the rest fail.
fn match_tasks(stored: &[PendingTask], mut todo: Vec<TodoTask>) -> Vec<(String, IdOutcome)> {
    stored
        .iter()
        .map(|row| {
            let due = row.due_at.map(|d| d.date_naive());
            let found = todo.iter().position(|t| {
                t.title.as_deref() == Some(row.subject.as_str())
                    && t.due_date_time
                        .as_ref()
                        .and_then(DateTimeTimeZone::to_utc)
                        .map(|d| d.date_naive())
                        == due
            });
            let outcome = match found {
                Some(index) => {
                    let task = todo.swap_remove(index);
                    match task.id {
                        Some(id) => IdOutcome::Matched {
                            id,
                            version: task.etag,
                        },
                        None => IdOutcome::Failed("the To Do task has no id".into()),
                    }
                }
                None => IdOutcome::Failed(format!(
                    "no To Do task titled {:?} due {} in the default list",
                    row.subject,
                    due.map_or("never".to_owned(), |d| d.to_string())
                )),
            };
            (row.ews_item_id.clone(), outcome)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn tasks_match_by_title_and_due_day_each_to_do_task_once() {
        let due = Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap();
        let stored = vec![
            PendingTask {
                ews_item_id: "ews-1".into(),
                subject: "Call".into(),
                due_at: Some(due),
                status: "not_started".into(),
            },
            PendingTask {
                ews_item_id: "ews-2".into(),
                subject: "Call".into(),
                due_at: Some(due),
                status: "not_started".into(),
            },
            PendingTask {
                ews_item_id: "ews-3".into(),
                subject: "Write".into(),
                due_at: None,
                status: "not_started".into(),
            },
        ];
        let todo = vec![
            TodoTask {
                id: Some("todo-a".into()),
                title: Some("Call".into()),
                due_date_time: Some(DateTimeTimeZone::utc(due)),
                etag: Some("W/\"e\"".into()),
                ..TodoTask::default()
            },
            TodoTask {
                id: Some("todo-b".into()),
                title: Some("Write".into()),
                ..TodoTask::default()
            },
        ];
        let outcomes = match_tasks(&stored, todo);
        assert_eq!(
            outcomes[0].1,
            IdOutcome::Matched {
                id: "todo-a".into(),
                version: Some("W/\"e\"".into())
            }
        );
        assert!(matches!(outcomes[1].1, IdOutcome::Failed(_)), "used once");
        assert!(matches!(outcomes[2].1, IdOutcome::Matched { ref id, .. } if id == "todo-b"));
    }
}

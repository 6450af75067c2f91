//! Appointments, contacts and tasks, both ways: Exchange's changes are pulled first (with
//! conflicts resolved by the configured rule), then the database's changes and deletions are
//! pushed with change keys, so a stale write never overwrites a newer version in Exchange.
//!
//! Creates are idempotent: `create` gets the row's [`CreateKey`] (EWS stamps the row id on the
//! item and looks for it before every CreateItem; Graph events carry a `transactionId`), and
//! pull never imports an item carrying the create key of an existing row as another row.
//!
//! Echoes are suppressed: the Update that Exchange reports for our own write carries the change
//! key we stored when pushing, and is skipped.
//!
//! By scope (`act_scope`): with `tracked`, only items carrying the tracking category, and the
//! items exsync created, come in; an imported item the user untracks is unlinked (kept, no
//! longer synchronised). A database delete touches only an item exsync created or synchronised,
//! never removes a meeting from an attendee's calendar without a decline, and cancels an
//! organizer's meeting (see `domain::scope::delete_action`).

use super::context::{PassContext, WorkloadSummary};
use super::incoming::short;
use super::port::{
    Change, ChangeHint, CreateKey, Folder, ItemRef, MailServer, RemoteActivity, Removal,
    WriteOutcome,
};
use super::progress::{PageCounts, Progress};
use super::SyncError;
use crate::config::ConflictPolicy;
use crate::domain::scope::{
    delete_action, pull_decision, DeleteAction, ExchangeLink, PullDecision, ScopeSettings,
};
use crate::domain::Workload;
use crate::store::activities::{self, ActKind, ActRow, ExchangeChange};
use crate::store::emails;
use std::collections::{HashMap, HashSet};

/// Rows pushed per kind in one pass.
const PUSH_BATCH: i64 = 200;

/// Synchronise every kind of activity of the mailbox.
pub async fn run(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    scope: &ScopeSettings,
) -> Result<WorkloadSummary, SyncError> {
    let mut summary = WorkloadSummary::default();
    for kind in [ActKind::Appointment, ActKind::Contact, ActKind::Task] {
        pull(ctx, conn, kind, scope, &mut summary).await?;
        push(ctx, conn, kind, &mut summary).await?;
        delete(ctx, conn, kind, scope, &mut summary).await?;
    }
    Ok(summary)
}

/// Which side wins when both changed the same item since the last sync.
pub fn exchange_wins(policy: ConflictPolicy, row: &ActRow, theirs: &RemoteActivity) -> bool {
    match policy {
        ConflictPolicy::ExchangeWins => true,
        ConflictPolicy::DatabaseWins => false,
        ConflictPolicy::NewerWins => match theirs.modified_at {
            Some(modified) => modified > row.db_modified_at,
            None => false,
        },
    }
}

async fn pull(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    kind: ActKind,
    scope: &ScopeSettings,
    summary: &mut WorkloadSummary,
) -> Result<(), SyncError> {
    let folder = Folder::of(kind);
    let key = folder.as_str();
    let mut progress = Progress::new(Workload::Act, key, ctx.profile_id.to_string());
    let mut state = emails::sync_state(ctx.store, ctx.mailbox_id, key).await?;
    let mut restarted = false;
    loop {
        ctx.check()?;
        let page = match conn
            .changes(folder, state.clone(), ChangeHint::default())
            .await
        {
            Ok(page) => page,
            Err(e) if e.is_sync_state_expired() && !restarted => {
                emails::reset_sync_state(ctx.store, ctx.mailbox_id, ctx.lease_token, key).await?;
                state = None;
                restarted = true;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut changed: Vec<ItemRef> = Vec::new();
        let mut out: Vec<ExchangeChange> = Vec::new();
        for change in &page.changes {
            match change {
                Change::Created(item) | Change::Updated(item) => changed.push(item.clone()),
                Change::Deleted(id) => out.push(ExchangeChange::Delete {
                    item_id: id.clone(),
                }),
                Change::ReadFlag(..) => {}
            }
        }
        let ids: Vec<String> = changed.iter().map(|c| c.id.clone()).collect();
        let rows: HashMap<String, ActRow> =
            activities::rows_by_items(ctx.store, ctx.mailbox_id, kind, &ids)
                .await?
                .into_iter()
                .filter_map(|r| r.item_id.clone().map(|id| (id, r)))
                .collect();
        // Our own writes come back as updates with the change key we stored: skip them.
        let to_fetch: Vec<String> = changed
            .iter()
            .filter(|c| {
                rows.get(&c.id)
                    .is_none_or(|row| c.version.is_none() || row.change_key != c.version)
            })
            .map(|c| c.id.clone())
            .collect();
        let mut skipped = 0;
        let fetched_page = conn.activities(kind, &to_fetch).await?;
        let keys: Vec<_> = fetched_page
            .iter()
            .filter_map(|f| f.as_ref().ok())
            .filter(|theirs| !rows.contains_key(&theirs.item.id))
            .filter_map(|theirs| theirs.created_for)
            .collect();
        let created_for_rows: HashSet<_> =
            activities::existing_rows(ctx.store, ctx.mailbox_id, kind, &keys)
                .await?
                .into_iter()
                .collect();
        for fetched in fetched_page {
            match fetched {
                Ok(theirs) => {
                    let row = rows.get(&theirs.item.id);
                    if row.is_none()
                        && theirs
                            .created_for
                            .is_some_and(|id| created_for_rows.contains(&id))
                    {
                        // Created by exsync for a row that exists (a create whose answer was
                        // lost, or a copy): never a second row. The push links it to its row
                        // when the row has no item yet; else it stays in Exchange, not stored.
                        tracing::info!(
                            kind = kind.as_str(),
                            item = %short(&theirs.item.id),
                            "created by exsync for an existing row: not imported as another row"
                        );
                        skipped += 1;
                        continue;
                    }
                    let tracked = scope.is_tracked(&theirs.categories);
                    match pull_decision(scope.act_scope, row.map(|r| r.link), tracked) {
                        PullDecision::Apply => {}
                        PullDecision::Skip => {
                            skipped += 1;
                            out.push(ExchangeChange::Skip {
                                item_id: theirs.item.id.clone(),
                            });
                            continue;
                        }
                        PullDecision::Unlink => {
                            tracing::info!(
                                kind = kind.as_str(),
                                item = %short(&theirs.item.id),
                                "untracked in Exchange: the row stays, no longer synchronised"
                            );
                            out.push(ExchangeChange::Unlink {
                                item_id: theirs.item.id.clone(),
                            });
                            continue;
                        }
                        PullDecision::Ignore => continue,
                    }
                    match row {
                        Some(row)
                            if row.is_dirty()
                                && !exchange_wins(ctx.sync.conflict_policy, row, &theirs) =>
                        {
                            // The database's newer version is pushed below, over this change key.
                            out.push(ExchangeChange::KeepDatabaseVersion {
                                item_id: theirs.item.id.clone(),
                                change_key: theirs.item.version.clone(),
                                modified_at: theirs.modified_at,
                            });
                        }
                        _ => out.push(ExchangeChange::Upsert {
                            item_id: theirs.item.id.clone(),
                            change_key: theirs.item.version.clone(),
                            modified_at: theirs.modified_at,
                            fields: theirs.fields,
                        }),
                    }
                }
                // Deleted since the sync reported it: the next sync reports the delete.
                Err(e) if e.is_gone() => {}
                Err(e) => {
                    summary.failed += 1;
                    summary.item_errors.push(format!(
                        "{} {} could not be read: {}",
                        kind.as_str(),
                        short(&e.id),
                        e.error
                    ));
                }
            }
        }
        let written = activities::apply_exchange_page(
            ctx.store,
            ctx.mailbox_id,
            ctx.lease_token,
            kind,
            &out,
            Some(&page.sync_state),
        )
        .await?;
        summary.processed += written;
        summary.skipped += skipped;
        progress.page(
            PageCounts {
                processed: written,
                skipped,
                ..PageCounts::default()
            },
            summary,
        );
        state = Some(page.sync_state);
        if page.last {
            return Ok(());
        }
    }
}

async fn push(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    kind: ActKind,
    summary: &mut WorkloadSummary,
) -> Result<(), SyncError> {
    let rows = activities::dirty_rows(ctx.store, ctx.mailbox_id, kind, PUSH_BATCH).await?;
    summary.more_waiting |= rows.len() as i64 >= PUSH_BATCH;
    for row in rows {
        ctx.check()?;
        // What the schema would refuse fails the row here, without a request; the others go on.
        if let Some(problem) = conn.write_problem(&row.fields) {
            activities::mark_push_failed(ctx.store, kind, row.id, &problem).await?;
            summary.failed += 1;
            summary.item_errors.push(format!(
                "{} {} cannot be written to Exchange: {problem}",
                kind.as_str(),
                row.id
            ));
            continue;
        }
        let outcome = match &row.item_id {
            None => conn.create(create_key(&row), &row.fields).await?,
            Some(id) => {
                let item = ItemRef {
                    id: id.clone(),
                    version: row.change_key.clone(),
                    received_at: None,
                };
                match conn.update(&item, &row.fields).await? {
                    // Gone in Exchange while changed here: the database's version lives on.
                    WriteOutcome::Missing => conn.create(create_key(&row), &row.fields).await?,
                    other => other,
                }
            }
        };
        match outcome {
            WriteOutcome::Written(item) => {
                activities::mark_pushed(
                    ctx.store,
                    kind,
                    row.id,
                    row.version,
                    &item.id,
                    item.version.as_deref(),
                )
                .await?;
                summary.processed += 1;
            }
            WriteOutcome::Conflict => {
                // Exchange changed it since our last pull: the next pull resolves it.
                summary.more_waiting = true;
            }
            WriteOutcome::Missing => {}
            WriteOutcome::Refused(error) => {
                activities::mark_push_failed(ctx.store, kind, row.id, &error).await?;
                summary.failed += 1;
                summary.item_errors.push(format!(
                    "{} {} refused by Exchange: {error}",
                    kind.as_str(),
                    row.id
                ));
            }
        }
    }
    Ok(())
}

/// The idempotency key of creating `row` as it is now.
fn create_key(row: &ActRow) -> CreateKey {
    CreateKey {
        row_id: row.id,
        version: row.version,
    }
}

async fn delete(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    kind: ActKind,
    scope: &ScopeSettings,
    summary: &mut WorkloadSummary,
) -> Result<(), SyncError> {
    for tombstone in activities::tombstones(ctx.store, ctx.mailbox_id, kind, PUSH_BATCH).await? {
        ctx.check()?;
        let id = &tombstone.item_id;
        // Judged against the item as Exchange holds it now (tracked? organizer or attendee?).
        let facts = match conn.item_facts(kind, id).await {
            Ok(facts) => facts,
            Err(e) if e.is_item_level() => {
                activities::tombstone_failed(ctx.store, tombstone.id, &e.to_string()).await?;
                summary.failed += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(facts) = facts else {
            // Already gone in Exchange.
            activities::tombstone_done(ctx.store, tombstone.id).await?;
            continue;
        };
        let link = tombstone
            .exchange_link
            .parse()
            .unwrap_or(ExchangeLink::Imported);
        let action = delete_action(
            scope.act_scope,
            link,
            scope.is_tracked(&facts.categories),
            facts.role,
            scope.attendee_delete,
        );
        let result = match action {
            DeleteAction::Delete => conn.remove(kind, id, Removal::Delete).await,
            DeleteAction::Cancel => conn.remove(kind, id, Removal::CancelMeeting).await,
            DeleteAction::Decline => {
                let note = "Removed from the business database.";
                conn.remove(kind, id, Removal::DeclineMeeting(note)).await
            }
            DeleteAction::Leave(reason) => {
                tracing::info!(
                    kind = kind.as_str(),
                    item = %short(id),
                    "deleted in the database; {reason}"
                );
                summary.skipped += 1;
                activities::tombstone_done(ctx.store, tombstone.id).await?;
                continue;
            }
        };
        match result {
            Ok(_) => {
                activities::tombstone_done(ctx.store, tombstone.id).await?;
                summary.processed += 1;
            }
            Err(e) if e.is_item_level() => {
                activities::tombstone_failed(ctx.store, tombstone.id, &e.to_string()).await?;
                summary.failed += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

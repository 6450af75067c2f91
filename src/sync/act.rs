//! Appointments, contacts and tasks, both ways: Exchange's changes are pulled first (with
//! conflicts resolved by the configured rule), then the database's changes and deletions are
//! pushed with change keys, so a stale write never overwrites a newer version in Exchange.
//!
//! Echoes are suppressed: the Update that Exchange reports for our own write carries the change
//! key we stored when pushing, and is skipped.

use super::exchange::{folder_of, ExchangeActivity, ItemRef, MailboxConnection, WriteOutcome};
use super::incoming::short;
use super::pass::{PassContext, WorkloadSummary};
use super::SyncError;
use crate::config::ConflictPolicy;
use crate::ews::EwsError;
use crate::store::activities::{self, ActKind, ActRow, ExchangeChange};
use crate::store::emails;
use std::collections::HashMap;

/// Rows pushed per kind in one pass.
const PUSH_BATCH: i64 = 200;

/// Synchronise every kind of activity of the mailbox.
pub async fn run(
    ctx: &PassContext<'_>,
    conn: &MailboxConnection,
) -> Result<WorkloadSummary, SyncError> {
    let mut summary = WorkloadSummary::default();
    for kind in [ActKind::Appointment, ActKind::Contact, ActKind::Task] {
        pull(ctx, conn, kind, &mut summary).await?;
        push(ctx, conn, kind, &mut summary).await?;
        delete(ctx, conn, kind, &mut summary).await?;
    }
    Ok(summary)
}

/// Which side wins when both changed the same item since the last sync.
pub fn exchange_wins(policy: ConflictPolicy, row: &ActRow, theirs: &ExchangeActivity) -> bool {
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
    conn: &MailboxConnection,
    kind: ActKind,
    summary: &mut WorkloadSummary,
) -> Result<(), SyncError> {
    let folder = folder_of(kind);
    let key = folder.as_str();
    let mut state = emails::sync_state(ctx.store, ctx.mailbox_id, key).await?;
    let mut restarted = false;
    loop {
        ctx.check()?;
        let page = match conn.folder_changes(folder, state.clone()).await {
            Ok(page) => page,
            Err(EwsError::InvalidSyncState) if !restarted => {
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
                super::exchange::Change::Created(item) | super::exchange::Change::Updated(item) => {
                    changed.push(item.clone())
                }
                super::exchange::Change::Deleted(id) => out.push(ExchangeChange::Delete {
                    item_id: id.clone(),
                }),
                super::exchange::Change::ReadFlag(..) => {}
            }
        }
        let ids: Vec<String> = changed.iter().map(|c| c.id.clone()).collect();
        let rows: HashMap<String, ActRow> =
            activities::rows_by_items(ctx.store, ctx.mailbox_id, kind, &ids)
                .await?
                .into_iter()
                .filter_map(|r| r.ews_item_id.clone().map(|id| (id, r)))
                .collect();
        // Our own writes come back as updates with the change key we stored: skip them.
        let to_fetch: Vec<String> = changed
            .iter()
            .filter(|c| {
                rows.get(&c.id).map_or(true, |row| {
                    c.change_key.is_none() || row.ews_change_key != c.change_key
                })
            })
            .map(|c| c.id.clone())
            .collect();
        for fetched in conn.fetch_activities(kind, &to_fetch).await? {
            match fetched {
                Ok(theirs) => {
                    let row = rows.get(&theirs.item.id);
                    match row {
                        Some(row)
                            if row.is_dirty()
                                && !exchange_wins(ctx.sync.conflict_policy, row, &theirs) =>
                        {
                            // The database's newer version is pushed below, over this change key.
                            out.push(ExchangeChange::KeepDatabaseVersion {
                                item_id: theirs.item.id.clone(),
                                change_key: theirs.item.change_key.clone(),
                                modified_at: theirs.modified_at,
                            });
                        }
                        _ => out.push(ExchangeChange::Upsert {
                            item_id: theirs.item.id.clone(),
                            change_key: theirs.item.change_key.clone(),
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
        state = Some(page.sync_state);
        if page.last {
            return Ok(());
        }
    }
}

async fn push(
    ctx: &PassContext<'_>,
    conn: &MailboxConnection,
    kind: ActKind,
    summary: &mut WorkloadSummary,
) -> Result<(), SyncError> {
    let rows = activities::dirty_rows(ctx.store, ctx.mailbox_id, kind, PUSH_BATCH).await?;
    summary.more_waiting |= rows.len() as i64 >= PUSH_BATCH;
    for row in rows {
        ctx.check()?;
        // What the schema would refuse fails the row here, without a request; the others go on.
        if let Some(problem) = super::exchange::activity_problem(&row.fields) {
            activities::mark_push_failed(ctx.store, kind, row.id, &problem).await?;
            summary.failed += 1;
            summary.item_errors.push(format!(
                "{} {} cannot be written to Exchange: {problem}",
                kind.as_str(),
                row.id
            ));
            continue;
        }
        let outcome = match &row.ews_item_id {
            None => conn.create_activity(&row.fields).await?,
            Some(id) => {
                let item = ItemRef {
                    id: id.clone(),
                    change_key: row.ews_change_key.clone(),
                    received_at: None,
                };
                match conn.update_activity(&item, &row.fields).await? {
                    // Gone in Exchange while changed here: the database's version lives on.
                    WriteOutcome::Missing => conn.create_activity(&row.fields).await?,
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
                    item.change_key.as_deref(),
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

async fn delete(
    ctx: &PassContext<'_>,
    conn: &MailboxConnection,
    kind: ActKind,
    summary: &mut WorkloadSummary,
) -> Result<(), SyncError> {
    for tombstone in activities::tombstones(ctx.store, ctx.mailbox_id, kind, PUSH_BATCH).await? {
        ctx.check()?;
        match conn.delete_item(&tombstone.ews_item_id).await {
            Ok(_) => {
                activities::tombstone_done(ctx.store, tombstone.id).await?;
                summary.processed += 1;
            }
            Err(e) if matches!(e, EwsError::Request { .. }) => {
                activities::tombstone_failed(ctx.store, tombstone.id, &e.to_string()).await?;
                summary.failed += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

//! Incoming email: each tracked folder's changes, page by page, imported with the page's
//! SyncState in one transaction; only mail received after the effective Process-From date.
//!
//! A crash between pages loses nothing and duplicates nothing: a page is committed with the
//! state that covers it, and a replayed page finds its copies already stored.

use super::context::{PassContext, WorkloadSummary};
use super::port::{Change, ChangeHint, Folder, MailServer};
use super::progress::{PageCounts, Progress};
use super::SyncError;
use crate::domain::rules::EffectiveProcessFrom;
use crate::domain::scope::ScopeSettings;
use crate::domain::Workload;
use crate::store::emails::{self, EmailPage, FailedItem, SkipReason, SkippedItem};
use std::collections::HashSet;

/// Most items skipped as too old that one pass fetches again per folder after the
/// Process-From date moved earlier (the rest follow in the next passes, due at once).
const ADMITTED: i64 = 500;

/// Import a mailbox's new email from every tracked folder, as its incoming filter allows.
pub async fn run(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    process_from: EffectiveProcessFrom,
    scope: &ScopeSettings,
) -> Result<WorkloadSummary, SyncError> {
    let mut summary = WorkloadSummary::default();
    for folder_name in &ctx.sync.tracked_folders {
        let folder: Folder = match folder_name.parse() {
            Ok(f) => f,
            Err(_) => {
                tracing::warn!(folder = %folder_name, "unknown tracked folder ignored");
                continue;
            }
        };
        sync_folder(ctx, conn, folder, process_from, scope, &mut summary).await?;
    }
    Ok(summary)
}

async fn sync_folder(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    folder: Folder,
    process_from: EffectiveProcessFrom,
    scope: &ScopeSettings,
    summary: &mut WorkloadSummary,
) -> Result<(), SyncError> {
    let key = folder.as_str();
    let mut progress = Progress::new(Workload::Incoming, key, ctx.profile_id.to_string());
    let mut state = emails::sync_state(ctx.store, ctx.mailbox_id, key).await?;
    let mut restarted = false;
    // Items that failed earlier are fetched again (a bounded number of times), and so are
    // items skipped as too old that an earlier Process-From date now admits.
    let mut retry: Vec<String> = emails::items_to_retry(
        ctx.store,
        ctx.mailbox_id,
        key,
        ctx.sync.item_max_attempts as i32,
        ctx.sync.get_item_batch_size as i64,
    )
    .await?;
    let admitted =
        emails::skipped_now_admitted(ctx.store, ctx.mailbox_id, key, process_from.after, ADMITTED)
            .await?;
    summary.more_waiting |= admitted.len() as i64 >= ADMITTED;
    retry.extend(admitted);
    loop {
        ctx.check()?;
        let hint = ChangeHint {
            received_after: process_from.after,
        };
        let page = match conn.changes(folder, state.clone(), hint).await {
            Ok(page) => page,
            Err(e) if e.is_sync_state_expired() && !restarted => {
                // The server forgot our position: start the folder over; the copies already
                // stored are recognised, so nothing is imported twice.
                tracing::warn!(folder = key, "sync state refused; starting the folder over");
                emails::reset_sync_state(ctx.store, ctx.mailbox_id, ctx.lease_token, key).await?;
                state = None;
                restarted = true;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut reported: Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> = Vec::new();
        let mut out = EmailPage::default();
        for change in &page.changes {
            match change {
                Change::Created(item) | Change::Updated(item) => {
                    reported.push((item.id.clone(), item.received_at))
                }
                Change::Deleted(id) => out.deleted.push(id.clone()),
                Change::ReadFlag(id, read) => out.read_flags.push((id.clone(), *read)),
            }
        }
        let ids: Vec<String> = reported.iter().map(|(id, _)| id.clone()).collect();
        // Known: a stored copy, or skipped on purpose before (after ErrorInvalidSyncStateData
        // the whole folder is reported again; none of these is downloaded again).
        let known: HashSet<String> = emails::known_items(ctx.store, ctx.mailbox_id, &ids)
            .await?
            .into_iter()
            .collect();
        let mut wanted: Vec<String> = Vec::new();
        for (id, received) in reported {
            if known.contains(&id) {
                summary.already_present += 1;
                continue;
            }
            match received {
                // SyncFolderItems gave the date: older mail is left out before any GetItem.
                Some(received) if !process_from.admits(received) => {
                    out.skipped.push(SkippedItem {
                        item_id: id,
                        reason: SkipReason::BeforeProcessFrom,
                        received_at: Some(received),
                    });
                }
                _ => wanted.push(id),
            }
        }
        wanted.append(&mut retry);
        let mut seen = HashSet::new();
        wanted.retain(|id| seen.insert(id.clone()));
        let fetched = conn.emails(&wanted).await?;
        // The incoming filter judges what the Process-From date admits, one query per page.
        let admitted: Vec<_> = fetched
            .iter()
            .filter_map(|(_, f)| match f {
                Ok(Some(mail))
                    if mail
                        .email
                        .received_at
                        .is_none_or(|r| process_from.admits(r)) =>
                {
                    Some(mail)
                }
                _ => None,
            })
            .collect();
        let mut verdicts = super::scope::incoming_verdicts(ctx.store, scope, &admitted)
            .await?
            .into_iter();
        let mut gone: Vec<String> = Vec::new();
        for (id, fetched) in fetched {
            match fetched {
                Ok(Some(mail)) => match mail.email.received_at {
                    Some(received) if !process_from.admits(received) => {
                        out.skipped.push(SkippedItem {
                            item_id: id,
                            reason: SkipReason::BeforeProcessFrom,
                            received_at: Some(received),
                        });
                    }
                    received => match verdicts.next().flatten() {
                        Some(reason) => out.skipped.push(SkippedItem {
                            item_id: id,
                            reason,
                            received_at: received,
                        }),
                        None => out.emails.push(mail.email),
                    },
                },
                Ok(None) => out.skipped.push(SkippedItem {
                    item_id: id,
                    reason: SkipReason::NotAnEmail,
                    received_at: None,
                }),
                // Deleted since the sync reported it: skipped, no retry, no alert.
                Err(e) if e.is_gone() => gone.push(id),
                Err(e) => out.failed.push(FailedItem {
                    item_id: id,
                    error: e.error,
                }),
            }
        }
        emails::forget_items(ctx.store, ctx.mailbox_id, ctx.lease_token, &gone).await?;
        // A message imported by this page carries its read flag as fetched, which is newer
        // than the change's (Graph reports the flag with every changed message): updating
        // the copy just inserted would only write its row a second time.
        let imported: HashSet<&str> = out.emails.iter().map(|e| e.item_id.as_str()).collect();
        out.read_flags
            .retain(|(id, _)| !imported.contains(id.as_str()));
        out.sync_state = Some(page.sync_state.clone());
        let newest = out.emails.iter().filter_map(|e| e.received_at).max();
        let written = emails::write_page(
            ctx.store,
            ctx.mailbox_id,
            ctx.lease_token,
            key,
            &out,
            ctx.sync.item_max_attempts as i32,
        )
        .await?;
        summary.processed += written.imported;
        summary.already_present += written.already_present;
        summary.failed += written.failed;
        summary.skipped += out.skipped.len();
        summary.newest = summary.newest.max(newest);
        progress.page(
            PageCounts {
                processed: written.imported,
                skipped: out.skipped.len(),
                failed: written.failed,
                already_present: written.already_present,
            },
            summary,
        );
        for failed in &out.failed {
            summary.item_errors.push(format!(
                "item {} in {key}: {}",
                short(&failed.item_id),
                failed.error
            ));
        }
        state = Some(page.sync_state);
        if page.last {
            return Ok(());
        }
    }
}

/// A short, stable form of an EWS id for messages (ids are long base64).
pub fn short(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

//! Notifications become hints: the notified mailbox's workloads are made due at once and the
//! schedulers woken. A mailbox a pass holds right now is hinted again once the pass releases
//! it (a pass that started before the change could have missed it). Each hint is followed to
//! the end of the pass it caused, for the notification-to-database latency histogram.

use crate::metrics::metrics;
use crate::store::{streaming as db, Store};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where group runners send the mailboxes notifications named.
#[derive(Debug, Clone)]
pub struct HintSender {
    tx: mpsc::UnboundedSender<(Uuid, Instant)>,
}

impl HintSender {
    /// A notification for `mailbox` arrived now.
    pub fn notify(&self, mailbox: Uuid) {
        let _ = self.tx.send((mailbox, Instant::now()));
    }
}

/// How often pending hints are tried again and hinted mailboxes checked for their pass.
const RETRY: Duration = Duration::from_millis(100);
/// A hinted mailbox whose pass has not ended after this long is no longer followed.
const FOLLOW_AT_MOST: Duration = Duration::from_secs(3600);

/// Start the hint loop; it ends when `shutdown` is cancelled.
pub fn start(
    store: Store,
    shutdown: CancellationToken,
) -> (HintSender, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(store, rx, shutdown));
    (HintSender { tx }, task)
}

async fn run(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<(Uuid, Instant)>,
    shutdown: CancellationToken,
) {
    // Mailbox → when its first unapplied notification arrived.
    let mut pending: HashMap<Uuid, Instant> = HashMap::new();
    // Mailbox → (arrival, database time the hint was applied).
    let mut following: HashMap<Uuid, (Instant, DateTime<Utc>)> = HashMap::new();
    let mut fresh: Vec<Uuid> = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = rx.recv() => match received {
                Some((mailbox, at)) => {
                    pending.entry(mailbox).or_insert(at);
                    fresh.push(mailbox);
                    // Take whatever else is queued, then apply them together.
                    while let Ok((mailbox, at)) = rx.try_recv() {
                        pending.entry(mailbox).or_insert(at);
                        fresh.push(mailbox);
                    }
                }
                None => return,
            },
            _ = tokio::time::sleep(RETRY) => {}
        }
        if !fresh.is_empty() {
            fresh.sort();
            fresh.dedup();
            if let Err(e) = db::notified(&store, &fresh).await {
                tracing::debug!(error = %e, "could not record notifications");
            }
            fresh.clear();
        }
        let mut applied = false;
        let ids: Vec<Uuid> = pending.keys().copied().collect();
        for mailbox in ids {
            match db::hint(&store, mailbox).await {
                Ok(Some(at)) => {
                    if let Some(arrived) = pending.remove(&mailbox) {
                        following.entry(mailbox).or_insert((arrived, at));
                    }
                    applied = true;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "could not apply a notification hint; retrying");
                    break;
                }
            }
        }
        // A mailbox deleted meanwhile is never released: stop trying after a while.
        pending.retain(|_, arrived| arrived.elapsed() < FOLLOW_AT_MOST);
        if applied {
            if let Err(e) = db::wake_schedulers(&store).await {
                tracing::debug!(error = %e, "could not wake the schedulers");
            }
        }
        if !following.is_empty() {
            let ids: Vec<Uuid> = following.keys().copied().collect();
            if let Ok(rows) = db::last_synced(&store, &ids).await {
                for (mailbox, synced) in rows {
                    let Some((arrived, hinted)) = following.get(&mailbox).copied() else {
                        continue;
                    };
                    if synced.is_some_and(|s| s >= hinted) {
                        metrics()
                            .streaming
                            .notification_to_database
                            .observe(arrived.elapsed().as_secs_f64());
                        following.remove(&mailbox);
                    }
                }
            }
            following.retain(|_, (arrived, _)| arrived.elapsed() < FOLLOW_AT_MOST);
        }
    }
}

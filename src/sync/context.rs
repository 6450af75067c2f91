//! What the steps of a pass share: the context every workload runs in (the database, the
//! mailbox, the claim's fencing token, the settings, the stop signals) and the summary each
//! workload returns. The workload modules and `pass` import this; it imports neither.

use super::SyncError;
use crate::config::{SchedulerSettings, SyncSettings};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What one workload of a pass did.
#[derive(Debug, Clone, Default)]
pub struct WorkloadSummary {
    /// Items imported, sent, written or deleted.
    pub processed: usize,
    /// Items that failed (skipped this time, retried later a bounded number of times).
    pub failed: usize,
    /// Items left out on purpose (older than the Process-From date, not email).
    pub skipped: usize,
    /// Items found already stored (a replay after a reset or a crash).
    pub already_present: usize,
    /// Newest DateTimeReceived imported.
    pub newest: Option<DateTime<Utc>>,
    /// More work is waiting than one pass does: due again at once.
    pub more_waiting: bool,
    /// Operator-facing descriptions of item failures (for the warning alert).
    pub item_errors: Vec<String>,
    /// Items already counted in the metrics page by page (not counted again at the end).
    pub reported: ReportedItems,
}

/// Item counts a workload already reported to the metrics while it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportedItems {
    /// Processed items reported.
    pub processed: usize,
    /// Skipped items reported.
    pub skipped: usize,
    /// Failed items reported.
    pub failed: usize,
}

/// What every step of a pass needs.
pub struct PassContext<'a> {
    /// The database.
    pub store: &'a Store,
    /// The mailbox.
    pub mailbox_id: Uuid,
    /// Its profile.
    pub profile_id: Uuid,
    /// The claim's fencing token.
    pub lease_token: Uuid,
    /// `[sync]` settings.
    pub sync: &'a SyncSettings,
    /// `[scheduler]` settings.
    pub scheduler: &'a SchedulerSettings,
    /// Shutdown's hard stop.
    pub(super) cancel: &'a CancellationToken,
    /// Set by the heartbeat when another process took the lease.
    pub(super) lease_lost: &'a AtomicBool,
}

impl PassContext<'_> {
    /// Stop here if the lease was lost or shutdown's deadline passed.
    pub fn check(&self) -> Result<(), SyncError> {
        if self.lease_lost.load(Ordering::SeqCst) {
            Err(SyncError::LeaseLost)
        } else if self.cancel.is_cancelled() {
            Err(SyncError::Cancelled)
        } else {
            Ok(())
        }
    }
}

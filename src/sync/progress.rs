//! Progress during long work: a first import of 50,000 messages takes many pages, and an
//! operator watching the logs or `/metrics` must see it move page by page — items so far,
//! rate, folder — not only when the workload ends.

use super::context::WorkloadSummary;
use crate::domain::Workload;
use crate::metrics::{labels, metrics};
use std::time::Instant;

/// Counts one folder's pages and reports each as it is committed.
#[derive(Debug)]
pub struct Progress {
    workload: Workload,
    folder: &'static str,
    profile: String,
    started: Instant,
    pages: u64,
    items: u64,
}

/// What one committed page did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Items imported or written.
    pub processed: usize,
    /// Items left out on purpose.
    pub skipped: usize,
    /// Items that failed.
    pub failed: usize,
    /// Items found already stored.
    pub already_present: usize,
}

impl Progress {
    /// Start counting `folder` of a `workload` for a mailbox of profile `profile`.
    pub fn new(workload: Workload, folder: &'static str, profile: String) -> Self {
        Progress {
            workload,
            folder,
            profile,
            started: Instant::now(),
            pages: 0,
            items: 0,
        }
    }

    /// A page was committed: log a progress line and move the metrics now. The counts are
    /// added to `summary` as already reported, so the end of the workload does not count
    /// them twice.
    pub fn page(&mut self, page: PageCounts, summary: &mut WorkloadSummary) {
        self.pages += 1;
        let seen = page.processed + page.skipped + page.failed + page.already_present;
        self.items += seen as u64;
        let elapsed = self.started.elapsed();
        let rate = if elapsed.as_secs_f64() > 0.0 {
            self.items as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        let workload = self.workload.as_str();
        let m = metrics();
        for (result, n) in [
            (processed_label(self.workload), page.processed),
            ("skipped", page.skipped),
            ("failed", page.failed),
        ] {
            m.items
                .get_or_create(&labels([("workload", workload), ("result", result)]))
                .inc_by(n as u64);
            m.profile_items
                .get_or_create(&labels([
                    ("profile", &self.profile),
                    ("workload", workload),
                    ("result", result),
                ]))
                .inc_by(n as u64);
        }
        summary.reported.processed += page.processed;
        summary.reported.skipped += page.skipped;
        summary.reported.failed += page.failed;
        if seen == 0 {
            // An idle poll's empty page is no progress: no line (passes stay one summary).
            return;
        }
        tracing::info!(
            folder = self.folder,
            page = self.pages,
            items = self.items,
            imported = summary.processed,
            skipped = summary.skipped,
            failed = summary.failed,
            already_present = summary.already_present,
            rate_per_s = (rate * 10.0).round() / 10.0,
            elapsed_ms = elapsed.as_millis() as u64,
            "sync progress"
        );
    }
}

/// The `result` label of the items a workload processes.
pub fn processed_label(workload: Workload) -> &'static str {
    match workload {
        Workload::Incoming => "imported",
        Workload::Outgoing => "sent",
        Workload::Act => "written",
    }
}

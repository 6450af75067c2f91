//! Graph's limits held on our side: at most 4 requests in flight per application and mailbox,
//! and nothing sent to a mailbox before a `Retry-After` it received has elapsed.
//!
//! Scope decision (graph.md §6): Outlook's limits are documented per application + mailbox
//! (10,000 requests per 10 minutes, 4 concurrent: GD-THRL, I-THR20833); the older "per app
//! regardless of mailbox" wording (GD-THRL rev 0135174, I-THR9428) is covered because the
//! 429 that would follow is honoured too. A 429 or 503 therefore pauses **that mailbox for
//! that application**, never the whole application: one hot mailbox must not stall thousands
//! of others, and the per-app global limit (130,000 requests per 10 s, I-THR1019) is orders of
//! magnitude above what exsync sends. If Graph ever throttled the whole application, each
//! mailbox would learn it from its own first 429 and wait as told.
//!
//! One [`ThrottleRegistry`] serves a process; every client of one application shares the
//! gate of each mailbox through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// Graph's per-mailbox concurrency (`MailboxConcurrency`, I-MBXC-CORSO, I-MBXC-TF).
pub const MAILBOX_CONCURRENCY: usize = 4;

/// Longest wait believed from an answer: a garbage `Retry-After` must not park a mailbox
/// for years or overflow `Instant + wait`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// Read a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to
/// `now`; `None` when it is neither (the caller then backs off exponentially). A date in the
/// past means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Exponential back-off when a 429/503 carries no usable `Retry-After` (GD-THR, GD-BP):
/// `initial`, doubled per consecutive throttled answer, at most `max` (evolution-ews doubles up
/// to 120 s, EVO-CONN).
pub fn exponential_back_off(consecutive: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 1u32 << consecutive.saturating_sub(1).min(16);
    initial.saturating_mul(factor).min(max)
}

#[derive(Debug, Default)]
struct GateState {
    /// Nothing is sent before this instant.
    not_before: Option<Instant>,
    /// Throttled answers in a row (for the exponential back-off).
    consecutive_throttles: u32,
}

/// The gate of one application + mailbox.
#[derive(Debug)]
pub(crate) struct MailboxGate {
    pub(crate) permits: Semaphore,
    state: Mutex<GateState>,
}

impl MailboxGate {
    fn new(concurrency: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrency),
            state: Mutex::new(GateState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // Two plain fields: a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long requests must still wait, if at all.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let not_before = self.lock().not_before?;
        not_before
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Record a throttled answer received now; returns the wait from now (the later of the
    /// one already in force and `retry_after`, or the exponential back-off).
    pub(crate) fn throttled(
        &self,
        retry_after: Option<Duration>,
        initial: Duration,
        max: Duration,
    ) -> Duration {
        let mut state = self.lock();
        state.consecutive_throttles = state.consecutive_throttles.saturating_add(1);
        let wait = retry_after
            .unwrap_or_else(|| exponential_back_off(state.consecutive_throttles, initial, max));
        let now = Instant::now();
        let until = now + wait;
        let until = state.not_before.map_or(until, |t| t.max(until));
        state.not_before = Some(until);
        until.saturating_duration_since(now)
    }

    /// A request was answered without throttling.
    pub(crate) fn succeeded(&self) {
        self.lock().consecutive_throttles = 0;
    }
}

/// Per-process registry of gates, keyed by application id and mailbox address.
#[derive(Debug)]
pub struct ThrottleRegistry {
    concurrency: usize,
    gates: Mutex<HashMap<(String, String), Arc<MailboxGate>>>,
}

impl Default for ThrottleRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl ThrottleRegistry {
    /// A registry holding each application + mailbox to [`MAILBOX_CONCURRENCY`].
    pub fn new() -> Self {
        Self {
            concurrency: MAILBOX_CONCURRENCY,
            gates: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn gate(&self, client_id: &str, mailbox: &str) -> Arc<MailboxGate> {
        let key = (client_id.to_ascii_lowercase(), normalise(mailbox));
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry(key)
            .or_insert_with(|| Arc::new(MailboxGate::new(self.concurrency)))
            .clone()
    }

    /// How long `mailbox` must still wait for `client_id` after a throttled answer, if at all
    /// (for `status` and the scheduler's next due time).
    pub fn back_off_remaining(&self, client_id: &str, mailbox: &str) -> Option<Duration> {
        let key = (client_id.to_ascii_lowercase(), normalise(mailbox));
        let gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.get(&key)?.remaining()
    }
}

/// Addresses are case-insensitive: `A@x.com` and `a@x.com` are one mailbox and one gate.
fn normalise(mailbox: &str) -> String {
    mailbox.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_is_read() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_as_an_http_date_is_read_relative_to_now() {
        let now = httpdate::parse_http_date("Sun, 06 Dec 2026 10:00:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(
            parse_retry_after("Sunday, 06-Dec-26 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun Dec  6 10:00:05 2026", now),
            Some(Duration::from_secs(5))
        );
        // A date already past means "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_retry_after_is_no_retry_after_and_huge_ones_are_capped() {
        let now = SystemTime::now();
        for garbage in ["", "soon", "-5", "1.5", "12abc", "Thu, 99 Foo 2026"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
        assert_eq!(
            parse_retry_after("999999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn back_off_without_retry_after_doubles_up_to_the_cap() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(120);
        let waits: Vec<u64> = (1..=9)
            .map(|n| exponential_back_off(n, initial, max).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 120, 120]);
        assert_eq!(exponential_back_off(u32::MAX, initial, max), max);
    }

    #[test]
    fn a_gate_keeps_the_later_of_two_waits_and_forgets_the_streak_on_success() {
        let gate = MailboxGate::new(4);
        let long = gate.throttled(
            Some(Duration::from_secs(60)),
            Duration::from_secs(1),
            Duration::from_secs(120),
        );
        assert!(long > Duration::from_secs(59));
        // A shorter Retry-After arriving later does not shorten the wait in force.
        let still = gate.throttled(
            Some(Duration::from_secs(1)),
            Duration::from_secs(1),
            Duration::from_secs(120),
        );
        assert!(still > Duration::from_secs(58), "{still:?}");
        gate.succeeded();
        assert_eq!(gate.lock().consecutive_throttles, 0);
    }

    #[test]
    fn mailboxes_are_one_gate_whatever_their_case_and_apps_are_separate() {
        let registry = ThrottleRegistry::new();
        let a = registry.gate("app", "User@Contoso.com");
        let b = registry.gate("APP", " user@contoso.com");
        assert!(Arc::ptr_eq(&a, &b));
        let other_app = registry.gate("other-app", "user@contoso.com");
        assert!(!Arc::ptr_eq(&a, &other_app));
        a.throttled(
            Some(Duration::from_secs(30)),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        assert!(registry
            .back_off_remaining("app", "USER@contoso.com")
            .is_some());
        assert!(registry
            .back_off_remaining("other-app", "user@contoso.com")
            .is_none());
    }
}

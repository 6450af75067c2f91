//! What a failed workload leaves behind, decided once from the failure's type: its next due
//! time, whether it is disabled, which alert it raises and whether credentials are blocked.
//! Pure, so every rule of the failure taxonomy is tested here without I/O.

use super::plan::{backoff, CredentialSource};
use super::port::Failure;
use super::FailureKind;
use crate::config::SchedulerSettings;
use crate::domain::{AlertLevel, WorkloadStatus};
use std::time::Duration;

/// Who an alert or a credential block concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The profile (its credentials serve all its mailboxes).
    Profile,
    /// This mailbox only.
    Mailbox,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPlan {
    /// Where it goes.
    pub scope: Scope,
    /// Warning or error.
    pub level: AlertLevel,
    /// Stable code (dedupe key together with the target and workload).
    pub code: String,
}

/// The outcome of one failed workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// Status to show.
    pub status: WorkloadStatus,
    /// Consecutive failures after this one.
    pub failures: i32,
    /// When to try again.
    pub retry_in: Duration,
    /// Disable the workload with this code (healed by a row change or the slow retry).
    pub blocked_code: Option<String>,
    /// Alert to raise, if any.
    pub alert: Option<AlertPlan>,
    /// Block these credentials (no request with them until they change or the slow retry).
    pub block_credentials: Option<Scope>,
}

/// The reaction class of a mail-server failure (the port's [`Failure`], whichever provider
/// reported it): a failure that may pass is transient, a server's "wait" is throttling, a
/// refused credential blocks it, what only the operator can fix pauses the workload, and
/// what the mailbox refuses for now (quota, Send As) keeps its items queued.
pub fn classify(failure: Failure) -> FailureKind {
    match failure {
        Failure::Unavailable
        | Failure::TokenEndpointUnavailable { .. }
        | Failure::SyncStateExpired => FailureKind::Transient,
        Failure::Throttled { .. } => FailureKind::Throttled,
        Failure::CredentialsRefused => FailureKind::Authentication,
        Failure::TokenRequestRefused
        | Failure::ImpersonationDenied
        | Failure::MailboxNotFound
        | Failure::AccessDenied
        | Failure::MailboxUnauthorized
        | Failure::RequestRefused
        | Failure::ServiceRefused => FailureKind::Permanent,
        Failure::QuotaExceeded | Failure::SendAsDenied => FailureKind::MailboxRefused,
    }
}

/// Code of a workload disabled after too many consecutive transient failures.
pub const TOO_MANY_FAILURES: &str = "workload.too_many_failures";

/// Decide how a failed workload is treated.
///
/// - transient: retry with exponential backoff and jitter; after
///   `max_consecutive_failures` in a row the workload is disabled with an error alert and
///   retried every `outage_retry_interval` (so it heals by itself after an outage);
/// - throttled: retry exactly when Exchange allows, not counted as a failure;
/// - authentication: block the credentials (profile's or mailbox's), error alert there;
/// - permanent: disable the workload, error alert on the mailbox, slow retry.
pub fn react(
    kind: FailureKind,
    code: &str,
    failures_before: i32,
    credentials: Option<CredentialSource>,
    server_back_off: Option<Duration>,
    settings: &SchedulerSettings,
    jitter: f64,
) -> Reaction {
    let failures = failures_before.saturating_add(1);
    let slow = settings.outage_retry_interval;
    match kind {
        FailureKind::Transient => {
            let limit = i32::try_from(settings.max_consecutive_failures).unwrap_or(i32::MAX);
            if failures >= limit {
                Reaction {
                    status: WorkloadStatus::Failure,
                    failures,
                    retry_in: slow,
                    blocked_code: Some(TOO_MANY_FAILURES.to_owned()),
                    alert: Some(AlertPlan {
                        scope: Scope::Mailbox,
                        level: AlertLevel::Error,
                        code: TOO_MANY_FAILURES.to_owned(),
                    }),
                    block_credentials: None,
                }
            } else {
                // A server's Retry-After (the token endpoint's) is a floor, never shortened.
                let retry_in = backoff(settings, failures.max(1) as u32, None, jitter)
                    .max(server_back_off.unwrap_or_default());
                Reaction {
                    status: WorkloadStatus::Failure,
                    failures,
                    retry_in,
                    blocked_code: None,
                    alert: (failures >= 3).then(|| AlertPlan {
                        scope: Scope::Mailbox,
                        level: AlertLevel::Warning,
                        code: code.to_owned(),
                    }),
                    block_credentials: None,
                }
            }
        }
        FailureKind::Throttled => Reaction {
            status: WorkloadStatus::Failure,
            failures: failures_before,
            retry_in: server_back_off.unwrap_or(settings.backoff_initial),
            blocked_code: None,
            alert: None,
            block_credentials: None,
        },
        FailureKind::Authentication => {
            let scope = match credentials {
                Some(CredentialSource::Mailbox) => Scope::Mailbox,
                _ => Scope::Profile,
            };
            Reaction {
                status: WorkloadStatus::Failure,
                failures,
                retry_in: slow,
                blocked_code: None,
                alert: Some(AlertPlan {
                    scope,
                    level: AlertLevel::Error,
                    code: code.to_owned(),
                }),
                block_credentials: Some(scope),
            }
        }
        FailureKind::Permanent => Reaction {
            status: WorkloadStatus::Failure,
            failures,
            retry_in: slow,
            blocked_code: Some(code.to_owned()),
            alert: Some(AlertPlan {
                scope: Scope::Mailbox,
                level: AlertLevel::Error,
                code: code.to_owned(),
            }),
            block_credentials: None,
        },
        FailureKind::MailboxRefused => Reaction {
            // Quota, submission quota, Send As right: nothing is wrong with the items, which
            // stay queued; the mailbox is tried again with backoff (capped at backoff_max),
            // never paused, and the operator is told at once.
            status: WorkloadStatus::Failure,
            failures,
            retry_in: backoff(settings, failures.max(1) as u32, None, jitter),
            blocked_code: None,
            alert: Some(AlertPlan {
                scope: Scope::Mailbox,
                level: AlertLevel::Error,
                code: code.to_owned(),
            }),
            block_credentials: None,
        },
        FailureKind::Abandoned => Reaction {
            status: WorkloadStatus::NotRun,
            failures: failures_before,
            retry_in: Duration::ZERO,
            blocked_code: None,
            alert: None,
            block_credentials: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SchedulerSettings {
        SchedulerSettings::default()
    }

    #[test]
    fn transient_failures_back_off_and_disable_after_the_limit() {
        let s = settings();
        let first = react(
            FailureKind::Transient,
            "ews.unreachable",
            0,
            None,
            None,
            &s,
            0.5,
        );
        assert_eq!(first.failures, 1);
        assert!(first.blocked_code.is_none());
        assert!(first.alert.is_none());
        let limit = s.max_consecutive_failures as i32;
        let last = react(
            FailureKind::Transient,
            "ews.unreachable",
            limit - 1,
            None,
            None,
            &s,
            0.5,
        );
        assert_eq!(last.blocked_code.as_deref(), Some(TOO_MANY_FAILURES));
        assert_eq!(last.retry_in, s.outage_retry_interval);
        assert_eq!(last.alert.map(|a| a.level), Some(AlertLevel::Error));
    }

    #[test]
    fn a_transient_failure_with_retry_after_waits_at_least_that_long() {
        let s = settings();
        let r = react(
            FailureKind::Transient,
            "oauth.token_endpoint_unavailable",
            0,
            Some(CredentialSource::OAuthApp),
            Some(Duration::from_secs(120)),
            &s,
            0.5,
        );
        assert!(r.retry_in >= Duration::from_secs(120), "{:?}", r.retry_in);
        assert!(r.block_credentials.is_none());
        assert!(r.alert.is_none());
    }

    #[test]
    fn throttling_waits_exactly_the_server_back_off_and_is_not_a_failure() {
        let s = settings();
        let r = react(
            FailureKind::Throttled,
            "ews.server_busy",
            2,
            None,
            Some(Duration::from_millis(4321)),
            &s,
            0.9,
        );
        assert_eq!(r.retry_in, Duration::from_millis(4321));
        assert_eq!(r.failures, 2);
        assert!(r.alert.is_none());
    }

    #[test]
    fn rejected_profile_credentials_block_the_profile_and_mailbox_credentials_the_mailbox() {
        let s = settings();
        let p = react(
            FailureKind::Authentication,
            "ews.unauthorized",
            0,
            Some(CredentialSource::Profile),
            None,
            &s,
            0.0,
        );
        assert_eq!(p.block_credentials, Some(Scope::Profile));
        assert_eq!(p.alert.map(|a| a.scope), Some(Scope::Profile));
        let m = react(
            FailureKind::Authentication,
            "ews.unauthorized",
            0,
            Some(CredentialSource::Mailbox),
            None,
            &s,
            0.0,
        );
        assert_eq!(m.block_credentials, Some(Scope::Mailbox));
    }

    #[test]
    fn a_mailbox_that_cannot_send_is_retried_with_backoff_and_an_alert_never_paused() {
        let s = settings();
        let limit = s.max_consecutive_failures as i32;
        for before in [0, limit + 5] {
            let r = react(
                FailureKind::MailboxRefused,
                "ews.send_as_denied",
                before,
                Some(CredentialSource::Profile),
                None,
                &s,
                0.5,
            );
            assert_eq!(r.blocked_code, None);
            assert_eq!(r.block_credentials, None);
            assert!(r.retry_in <= s.backoff_max);
            let alert = r.alert.expect("an alert at once");
            assert_eq!(
                (alert.scope, alert.level),
                (Scope::Mailbox, AlertLevel::Error)
            );
        }
    }

    #[test]
    fn permanent_errors_disable_the_workload_with_an_error_alert() {
        let s = settings();
        let r = react(
            FailureKind::Permanent,
            "ews.impersonation_denied",
            0,
            Some(CredentialSource::Profile),
            None,
            &s,
            0.0,
        );
        assert_eq!(r.blocked_code.as_deref(), Some("ews.impersonation_denied"));
        assert_eq!(r.retry_in, s.outage_retry_interval);
        assert_eq!(r.alert.map(|a| a.level), Some(AlertLevel::Error));
    }

    #[test]
    fn a_mailbox_refusal_keeps_items_queued_and_an_expired_sync_state_is_transient() {
        use std::time::Duration;
        assert_eq!(
            classify(Failure::QuotaExceeded),
            FailureKind::MailboxRefused
        );
        assert_eq!(classify(Failure::SendAsDenied), FailureKind::MailboxRefused);
        assert_eq!(classify(Failure::SyncStateExpired), FailureKind::Transient);
        assert_eq!(
            classify(Failure::Throttled {
                back_off: Duration::from_secs(5)
            }),
            FailureKind::Throttled
        );
        assert_eq!(
            classify(Failure::CredentialsRefused),
            FailureKind::Authentication
        );
        // A token endpoint in trouble never blocks the credentials.
        assert_eq!(
            classify(Failure::TokenEndpointUnavailable { retry_after: None }),
            FailureKind::Transient
        );
        assert_eq!(
            classify(Failure::ImpersonationDenied),
            FailureKind::Permanent
        );
    }
}

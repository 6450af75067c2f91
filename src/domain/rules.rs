//! Rules of the product that decide what is synchronised, written once and tested here.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Which setting produced the effective "process email from" date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessFromSource {
    /// Neither the profile nor the mailbox sets a date: everything is imported.
    Unrestricted,
    /// The profile's Process Emails From (applies to all its mailboxes).
    Profile,
    /// The mailbox's own Process Email Received After.
    Mailbox,
}

/// The earliest receipt time that may be imported for a mailbox, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EffectiveProcessFrom {
    /// Mail received at or before this instant is never imported (`None`: no limit).
    pub after: Option<DateTime<Utc>>,
    /// The setting that decided it.
    pub source: ProcessFromSource,
}

impl EffectiveProcessFrom {
    /// Whether a message received at `received` may be imported under this rule.
    pub fn admits(&self, received: DateTime<Utc>) -> bool {
        match self.after {
            None => true,
            Some(after) => received >= after,
        }
    }
}

/// Profile's Process Emails From vs mailbox's Process Email Received After: the later applies.
pub fn effective_process_from(
    profile_from: Option<DateTime<Utc>>,
    mailbox_after: Option<DateTime<Utc>>,
) -> EffectiveProcessFrom {
    match (profile_from, mailbox_after) {
        (None, None) => EffectiveProcessFrom {
            after: None,
            source: ProcessFromSource::Unrestricted,
        },
        (Some(p), None) => EffectiveProcessFrom {
            after: Some(p),
            source: ProcessFromSource::Profile,
        },
        (None, Some(m)) => EffectiveProcessFrom {
            after: Some(m),
            source: ProcessFromSource::Mailbox,
        },
        (Some(p), Some(m)) if m > p => EffectiveProcessFrom {
            after: Some(m),
            source: ProcessFromSource::Mailbox,
        },
        (Some(p), Some(_)) => EffectiveProcessFrom {
            after: Some(p),
            source: ProcessFromSource::Profile,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn the_later_of_profile_and_mailbox_dates_applies() {
        let rule = effective_process_from(Some(day(1)), Some(day(10)));
        assert_eq!(rule.after, Some(day(10)));
        assert_eq!(rule.source, ProcessFromSource::Mailbox);

        let rule = effective_process_from(Some(day(20)), Some(day(10)));
        assert_eq!(rule.after, Some(day(20)));
        assert_eq!(rule.source, ProcessFromSource::Profile);
    }

    #[test]
    fn profile_date_applies_to_mailboxes_without_their_own() {
        let rule = effective_process_from(Some(day(5)), None);
        assert!(!rule.admits(day(4)));
        assert!(rule.admits(day(5)));
        assert_eq!(rule.source, ProcessFromSource::Profile);
    }

    #[test]
    fn without_any_date_everything_is_admitted() {
        let rule = effective_process_from(None, None);
        assert!(rule.admits(day(1)));
        assert_eq!(rule.source, ProcessFromSource::Unrestricted);
    }
}

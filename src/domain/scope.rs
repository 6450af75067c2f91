//! What syncs, and what a delete may touch: the incoming filter (Dynamics' "Track incoming
//! email" option), the ACT scope (tracked items or all), the tracking category and token, and
//! the rules that decide, item by item, whether it comes in, stays linked, or may be deleted,
//! cancelled or declined in Exchange.
//!
//! Pure: the sync engine gathers the facts (categories, In-Reply-To matches, known senders,
//! meeting roles) and asks these functions; `explain` words their answers.

use super::enums::text_enum;
use super::ParseEnumError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

text_enum!(
    /// Which incoming mail is imported (per mailbox, defaulting to the profile's).
    IncomingFilter, "incoming filter" {
        /// Every message (the behaviour before filters existed).
        All => "all",
        /// Replies to mail sent through exsync (In-Reply-To / References, or its tracking token).
        Responses => "responses",
        /// Mail from an address the database knows (a contact or a mailbox).
        KnownSenders => "known_senders",
        /// Nothing but what users mark tracked.
        None => "none",
    }
);

text_enum!(
    /// Which appointments, contacts and tasks come in from Exchange.
    ActScope, "ACT scope" {
        /// Items marked tracked (the tracking category) and items exsync created.
        Tracked => "tracked",
        /// Every item (the behaviour before scopes existed).
        All => "all",
    }
);

text_enum!(
    /// What a database delete of a meeting the mailbox only attends does in Exchange.
    AttendeeDelete, "attendee delete" {
        /// Nothing: the meeting stays in the attendee's calendar (as Dynamics does).
        Keep => "keep",
        /// Decline it: the organizer is told, and it leaves the calendar.
        Decline => "decline",
    }
);

text_enum!(
    /// How a stored appointment, contact or task is tied to its Exchange item.
    ExchangeLink, "exchange link" {
        /// The database's row (created by an application, or synchronised before scopes):
        /// synchronised both ways whatever its categories.
        Owned => "owned",
        /// Brought in from Exchange: synchronised while in scope.
        Imported => "imported",
        /// Untracked by the user: kept, never synchronised again, never deleted in Exchange.
        Unlinked => "unlinked",
    }
);

/// Which setting decided a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// The profile's value (the mailbox sets none).
    Profile,
    /// The mailbox's own value.
    Mailbox,
}

/// Where Dynamics' own tracking category is named "Tracked to Dynamics 365", exsync's is this
/// (configurable with `sync.tracking_category`).
pub const DEFAULT_TRACKING_CATEGORY: &str = "Tracked to exsync";

/// The effective scope settings of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeSettings {
    /// The incoming filter in force.
    pub incoming_filter: IncomingFilter,
    /// Where it came from.
    pub incoming_filter_source: SettingSource,
    /// The ACT scope in force.
    pub act_scope: ActScope,
    /// Where it came from.
    pub act_scope_source: SettingSource,
    /// What deleting an attended meeting does.
    pub attendee_delete: AttendeeDelete,
    /// The tracking token prefix for outgoing mail (`None`: no token).
    pub tracking_token_prefix: Option<String>,
    /// The category that marks an item tracked.
    pub tracking_category: String,
}

impl ScopeSettings {
    /// The settings of a mailbox: its own filter and scope where set, else the profile's.
    pub fn resolve(
        profile_filter: IncomingFilter,
        mailbox_filter: Option<IncomingFilter>,
        profile_scope: ActScope,
        mailbox_scope: Option<ActScope>,
        attendee_delete: AttendeeDelete,
        tracking_token_prefix: Option<String>,
        tracking_category: &str,
    ) -> ScopeSettings {
        fn pick<T>(own: Option<T>, default: T) -> (T, SettingSource) {
            match own {
                Some(v) => (v, SettingSource::Mailbox),
                None => (default, SettingSource::Profile),
            }
        }
        let (incoming_filter, incoming_filter_source) = pick(mailbox_filter, profile_filter);
        let (act_scope, act_scope_source) = pick(mailbox_scope, profile_scope);
        ScopeSettings {
            incoming_filter,
            incoming_filter_source,
            act_scope,
            act_scope_source,
            attendee_delete,
            tracking_token_prefix,
            tracking_category: tracking_category.to_owned(),
        }
    }

    /// Whether `categories` mark an item tracked (category names compare case-insensitively,
    /// as in Outlook).
    pub fn is_tracked(&self, categories: &[String]) -> bool {
        let wanted = self.tracking_category.trim();
        categories
            .iter()
            .any(|c| c.trim().eq_ignore_ascii_case(wanted))
    }
}

/// What the engine found out about one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailFacts {
    /// It carries the tracking category.
    pub tracked: bool,
    /// It answers mail sent through exsync (In-Reply-To, References or tracking token).
    pub response: bool,
    /// Its sender is a contact in the database or a mailbox.
    pub known_sender: bool,
}

/// Whether an incoming message comes in: `None` imports it, `Some(filter)` names the filter
/// rule that leaves it out. Tracked mail always comes in.
pub fn mail_left_out_by(filter: IncomingFilter, facts: MailFacts) -> Option<IncomingFilter> {
    if facts.tracked {
        return None;
    }
    let admitted = match filter {
        IncomingFilter::All => true,
        IncomingFilter::Responses => facts.response,
        IncomingFilter::KnownSenders => facts.known_sender,
        IncomingFilter::None => false,
    };
    (!admitted).then_some(filter)
}

/// What a pull does with a changed Exchange item of appointments, contacts or tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Import or update the row (relinking an unlinked one).
    Apply,
    /// Not in scope and not stored: leave it out (recorded as skipped, not tracked).
    Skip,
    /// The user untracked an imported item: keep the row, stop synchronising it.
    Unlink,
    /// An unlinked row's item, still untracked: nothing to do.
    Ignore,
}

/// Decide a pulled item under `scope`: `link` is how its row is tied (`None`: no row).
pub fn pull_decision(scope: ActScope, link: Option<ExchangeLink>, tracked: bool) -> PullDecision {
    let in_scope = tracked || scope == ActScope::All;
    match link {
        Some(ExchangeLink::Owned) => PullDecision::Apply,
        Some(ExchangeLink::Imported) if in_scope => PullDecision::Apply,
        Some(ExchangeLink::Imported) => PullDecision::Unlink,
        Some(ExchangeLink::Unlinked) if in_scope => PullDecision::Apply,
        Some(ExchangeLink::Unlinked) => PullDecision::Ignore,
        None if in_scope => PullDecision::Apply,
        None => PullDecision::Skip,
    }
}

/// The mailbox's part in a calendar item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingRole {
    /// An appointment (no attendees), a contact or a task.
    NotAMeeting,
    /// The mailbox organises the meeting.
    Organizer {
        /// The attendees were invited (MeetingRequestWasSent), so they must hear of a cancel.
        invitations_sent: bool,
    },
    /// The mailbox is invited to someone else's meeting.
    Attendee,
}

/// What a database delete does in Exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAction {
    /// Delete the item (to Deleted Items), telling nobody.
    Delete,
    /// The organizer's meeting: delete it and send the attendees a cancellation.
    Cancel,
    /// An attended meeting: decline it (the organizer is told; it leaves the calendar).
    Decline,
    /// Touch nothing in Exchange.
    Leave(LeaveReason),
}

/// Why a database delete leaves the Exchange item alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The item is no longer tracked and exsync did not create it: it is the user's.
    NotTracked,
    /// A meeting the mailbox only attends, with `act_attendee_delete = keep`.
    AttendeeMeeting,
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeaveReason::NotTracked => {
                "the item is not tracked and exsync did not create it: left in Exchange"
            }
            LeaveReason::AttendeeMeeting => {
                "a meeting the mailbox attends is never removed without a decline (act_attendee_delete = \"keep\"): left in the calendar"
            }
        })
    }
}

/// Decide a database delete: only an item exsync created or synchronised may be touched (the
/// tombstone exists only for those), an untracked one is left alone under the tracked scope,
/// an attended meeting is never removed without a decline, an organizer's meeting is cancelled.
pub fn delete_action(
    scope: ActScope,
    link: ExchangeLink,
    tracked: bool,
    role: MeetingRole,
    attendee_delete: AttendeeDelete,
) -> DeleteAction {
    let ours = match link {
        ExchangeLink::Owned => true,
        ExchangeLink::Imported => tracked || scope == ActScope::All,
        ExchangeLink::Unlinked => false,
    };
    if !ours {
        return DeleteAction::Leave(LeaveReason::NotTracked);
    }
    match role {
        MeetingRole::NotAMeeting => DeleteAction::Delete,
        MeetingRole::Organizer {
            invitations_sent: true,
        } => DeleteAction::Cancel,
        MeetingRole::Organizer {
            invitations_sent: false,
        } => DeleteAction::Delete,
        MeetingRole::Attendee => match attendee_delete {
            AttendeeDelete::Keep => DeleteAction::Leave(LeaveReason::AttendeeMeeting),
            AttendeeDelete::Decline => DeleteAction::Decline,
        },
    }
}

/// Every tracking token (`prefix` followed by digits) in a subject, in order.
pub fn tracking_tokens(subject: &str, prefix: &str) -> Vec<String> {
    if prefix.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut rest = subject;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            out.push(format!("{prefix}{digits}"));
        }
        rest = &after[digits.len()..];
    }
    out
}

/// The subject with the token at its end (once: a retry or a reply keeps it as it is).
pub fn subject_with_token(subject: &str, token: &str) -> String {
    if subject.contains(token) {
        subject.to_owned()
    } else if subject.trim().is_empty() {
        token.to_owned()
    } else {
        format!("{} {token}", subject.trim_end())
    }
}

/// Message-IDs named by In-Reply-To and References (angle-bracketed, whitespace-separated).
pub fn referenced_message_ids(in_reply_to: Option<&str>, references: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in [in_reply_to, references].into_iter().flatten() {
        for part in text.split(|c: char| c.is_whitespace() || c == ',') {
            let part = part.trim();
            let is_id = part.len() > 2 && part.starts_with('<') && part.ends_with('>');
            if is_id && !out.iter().any(|known| known == part) {
                out.push(part.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ScopeSettings {
        ScopeSettings::resolve(
            IncomingFilter::Responses,
            Some(IncomingFilter::KnownSenders),
            ActScope::Tracked,
            None,
            AttendeeDelete::Keep,
            Some("EXS:".into()),
            DEFAULT_TRACKING_CATEGORY,
        )
    }

    #[test]
    fn a_mailbox_setting_overrides_the_profile_default() {
        let s = settings();
        assert_eq!(s.incoming_filter, IncomingFilter::KnownSenders);
        assert_eq!(s.incoming_filter_source, SettingSource::Mailbox);
        assert_eq!(s.act_scope, ActScope::Tracked);
        assert_eq!(s.act_scope_source, SettingSource::Profile);
    }

    #[test]
    fn tracked_mail_always_comes_in_and_each_filter_names_itself() {
        let tracked = MailFacts {
            tracked: true,
            ..MailFacts::default()
        };
        for filter in IncomingFilter::ALL {
            assert_eq!(mail_left_out_by(*filter, tracked), None);
        }
        let nothing = MailFacts::default();
        assert_eq!(mail_left_out_by(IncomingFilter::All, nothing), None);
        assert_eq!(
            mail_left_out_by(IncomingFilter::Responses, nothing),
            Some(IncomingFilter::Responses)
        );
        assert_eq!(
            mail_left_out_by(
                IncomingFilter::Responses,
                MailFacts {
                    response: true,
                    ..nothing
                }
            ),
            None
        );
        assert_eq!(
            mail_left_out_by(
                IncomingFilter::KnownSenders,
                MailFacts {
                    known_sender: true,
                    ..nothing
                }
            ),
            None
        );
        assert_eq!(
            mail_left_out_by(
                IncomingFilter::None,
                MailFacts {
                    response: true,
                    known_sender: true,
                    tracked: false
                }
            ),
            Some(IncomingFilter::None)
        );
    }

    #[test]
    fn the_tracking_category_compares_like_outlook() {
        let s = settings();
        assert!(s.is_tracked(&["  tracked TO exsync ".into()]));
        assert!(!s.is_tracked(&["Red".into()]));
    }

    #[test]
    fn pulls_follow_the_scope_and_untracking_unlinks() {
        use ExchangeLink::*;
        use PullDecision::*;
        let t = ActScope::Tracked;
        assert_eq!(pull_decision(t, None, false), Skip);
        assert_eq!(pull_decision(t, None, true), PullDecision::Apply);
        assert_eq!(pull_decision(t, Some(Owned), false), PullDecision::Apply);
        assert_eq!(pull_decision(t, Some(Imported), false), Unlink);
        assert_eq!(pull_decision(t, Some(Unlinked), false), Ignore);
        assert_eq!(pull_decision(t, Some(Unlinked), true), PullDecision::Apply);
        assert_eq!(
            pull_decision(ActScope::All, None, false),
            PullDecision::Apply
        );
        assert_eq!(
            pull_decision(ActScope::All, Some(Imported), false),
            PullDecision::Apply
        );
    }

    #[test]
    fn deletes_touch_only_our_items_cancel_as_organizer_and_never_drop_an_attended_meeting() {
        use DeleteAction::*;
        let t = ActScope::Tracked;
        let keep = AttendeeDelete::Keep;
        assert_eq!(
            delete_action(
                t,
                ExchangeLink::Imported,
                false,
                MeetingRole::Attendee,
                keep
            ),
            Leave(LeaveReason::NotTracked)
        );
        assert_eq!(
            delete_action(t, ExchangeLink::Imported, true, MeetingRole::Attendee, keep),
            Leave(LeaveReason::AttendeeMeeting)
        );
        assert_eq!(
            delete_action(
                t,
                ExchangeLink::Imported,
                true,
                MeetingRole::Attendee,
                AttendeeDelete::Decline
            ),
            Decline
        );
        assert_eq!(
            delete_action(
                t,
                ExchangeLink::Owned,
                false,
                MeetingRole::Organizer {
                    invitations_sent: true
                },
                keep
            ),
            Cancel
        );
        assert_eq!(
            delete_action(
                t,
                ExchangeLink::Owned,
                false,
                MeetingRole::Organizer {
                    invitations_sent: false
                },
                keep
            ),
            Delete
        );
        assert_eq!(
            delete_action(
                ActScope::All,
                ExchangeLink::Imported,
                false,
                MeetingRole::NotAMeeting,
                keep
            ),
            Delete
        );
        assert_eq!(
            delete_action(
                ActScope::All,
                ExchangeLink::Unlinked,
                true,
                MeetingRole::NotAMeeting,
                keep
            ),
            Leave(LeaveReason::NotTracked)
        );
    }

    #[test]
    fn tracking_tokens_are_found_in_replies_and_added_once() {
        assert_eq!(
            tracking_tokens("RE: Your order EXS:0000042 (fwd EXS:7)", "EXS:"),
            vec!["EXS:0000042".to_owned(), "EXS:7".to_owned()]
        );
        assert!(tracking_tokens("EXS: no digits", "EXS:").is_empty());
        assert_eq!(
            subject_with_token("Your order ", "EXS:0000042"),
            "Your order EXS:0000042"
        );
        assert_eq!(
            subject_with_token("Your order EXS:0000042", "EXS:0000042"),
            "Your order EXS:0000042"
        );
        assert_eq!(subject_with_token("", "EXS:1"), "EXS:1");
    }

    #[test]
    fn references_are_read_as_message_ids() {
        assert_eq!(
            referenced_message_ids(Some("<a@x>"), Some("<b@x>\r\n <a@x> junk <c@x>")),
            vec!["<a@x>".to_owned(), "<b@x>".to_owned(), "<c@x>".to_owned()]
        );
        assert!(referenced_message_ids(None, None).is_empty());
    }
}

//! EWS data types from types.xsd (items, ids, shapes, restrictions) with their XML readers/writers.
//!
//! Owns the mapping between the typed model and the `t:` elements: writers emit the schema's
//! `xs:sequence` order and omit absent fields; readers accept any prefix and any order and skip
//! unknown elements. It knows nothing of operations, envelopes or HTTP.
//!
//! One file per subject (ids, addresses, items, folders, shapes, responses, attribute enums);
//! everything is re-exported here, so `types::X` names every type.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::recurrence::Recurrence;
use super::wire::TYPES_NS;
use super::xml::{Element, XmlWriter};

pub(crate) use super::wire::invalid;
pub use super::wire::WireError;

// ---------------------------------------------------------------------------------------------
// Scalar helpers
// ---------------------------------------------------------------------------------------------

/// Format a time the way Exchange writes `xs:dateTime`: UTC, whole seconds, `Z`
/// (`2026-12-06T10:51:52Z`). Fractions are cut, not rounded, so a written time is never later
/// than the stored one (some clients read nine fractional digits as a missing value).
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `t` without its fraction of a second: the precision Exchange keeps and writes.
pub fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(0)
}

/// Parse an `xs:dateTime`; a value without offset is taken as UTC (EWS does that for some fields).
pub fn parse_time(element: &'static str, text: &str) -> Result<DateTime<Utc>, WireError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|n| n.and_utc())
        .map_err(|_| invalid(element, text))
}

pub(crate) fn parse_bool(element: &'static str, text: &str) -> Result<bool, WireError> {
    match text.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(invalid(element, other)),
    }
}

pub(crate) fn parse_u32(element: &'static str, text: &str) -> Result<u32, WireError> {
    text.trim().parse().map_err(|_| invalid(element, text))
}

pub(super) fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

pub(crate) fn t_text(el: &Element, name: &str) -> Option<String> {
    el.child_text(TYPES_NS, name).map(str::to_owned)
}

pub(super) fn t_time(el: &Element, name: &'static str) -> Result<Option<DateTime<Utc>>, WireError> {
    el.child_text(TYPES_NS, name)
        .map(|t| parse_time(name, t))
        .transpose()
}

pub(super) fn t_bool(el: &Element, name: &'static str) -> Result<Option<bool>, WireError> {
    el.child_text(TYPES_NS, name)
        .map(|t| parse_bool(name, t))
        .transpose()
}

pub(super) fn leaf_opt(w: &mut XmlWriter, qname: &str, value: Option<&str>) {
    if let Some(v) = value {
        w.leaf(qname, v);
    }
}

pub(super) fn time_opt(w: &mut XmlWriter, qname: &str, value: Option<&DateTime<Utc>>) {
    if let Some(v) = value {
        w.leaf(qname, &format_time(v));
    }
}

pub(super) fn bool_opt(w: &mut XmlWriter, qname: &str, value: Option<bool>) {
    if let Some(v) = value {
        w.leaf(qname, bool_str(v));
    }
}

mod addresses;
mod attributes;
mod folders;
mod ids;
mod items;
mod responses;
mod shapes;

pub use addresses::*;
pub use attributes::*;
pub use folders::*;
pub use ids::*;
pub use items::*;
pub use responses::*;
pub use shapes::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::TYPES_NS;
    use crate::xml::{parse, XmlLimits};
    use chrono::TimeZone;

    fn roundtrip(item: &Item) -> Item {
        let mut w = XmlWriter::new();
        w.start("t:Items").attr("xmlns:t", TYPES_NS);
        item.write(&mut w);
        let xml = w.finish();
        let root = parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        let mut items = Item::all_in(&root).unwrap();
        assert_eq!(items.len(), 1, "{xml}");
        items.remove(0)
    }

    #[test]
    fn every_item_kind_round_trips() {
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 10, 30, 0).unwrap();
        let base = ItemBase {
            item_id: Some(ItemId::with_change_key("AAMk=", "CQAA")),
            parent_folder_id: Some(FolderId::new("inbox-id")),
            item_class: Some("IPM.Note".into()),
            subject: Some("Q1 <numbers> & \"plans\"".into()),
            body: Some(Body {
                body_type: BodyType::Html,
                content: "<p>hi</p>".into(),
            }),
            date_time_received: Some(t),
            size: Some(1234),
            categories: vec!["Red".into(), "Blue".into()],
            in_reply_to: Some("<a@b>".into()),
            date_time_sent: Some(t),
            date_time_created: Some(t),
            last_modified_time: Some(t),
            conversation_id: Some("conv".into()),
            other_elements: Vec::new(),
            extended_properties: vec![crate::extended::ExtendedProperty::new(
                crate::extended::ExtendedFieldUri::tagged("0x1035", "String"),
                "<a@b>",
            )],
        };
        let items = [
            Item::Message(Message {
                base: base.clone(),
                sender: Some(EmailAddress::new(Some("Ann"), "ann@x.test")),
                to_recipients: vec![EmailAddress::new(None, "bob@x.test")],
                cc_recipients: vec![EmailAddress::new(Some("C"), "c@x.test")],
                bcc_recipients: vec![EmailAddress::new(None, "d@x.test")],
                from: Some(EmailAddress::new(Some("Ann"), "ann@x.test")),
                internet_message_id: Some("<m1@x.test>".into()),
                is_read: Some(false),
                references: Some("<r@x>".into()),
            }),
            Item::CalendarItem(CalendarItem {
                base: base.clone(),
                uid: Some("uid-1".into()),
                start: Some(t),
                end: Some(t + chrono::Duration::hours(1)),
                is_all_day_event: Some(false),
                location: Some("Room 1".into()),
                organizer: Some(EmailAddress::new(Some("Ann"), "ann@x.test")),
                required_attendees: vec![EmailAddress::new(None, "bob@x.test")],
                is_meeting: Some(true),
                is_cancelled: Some(false),
                is_recurring: Some(true),
                meeting_request_was_sent: Some(true),
                calendar_item_type: Some(CalendarItemKind::RecurringMaster),
                my_response_type: Some(ResponseType::Organizer),
                recurrence: Some(crate::recurrence::Recurrence {
                    pattern: crate::recurrence::RecurrencePattern::Weekly {
                        interval: 1,
                        days_of_week: vec![crate::recurrence::DayOfWeek::Friday],
                        first_day_of_week: None,
                    },
                    range: crate::recurrence::RecurrenceRange::Numbered {
                        start_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
                        occurrences: 4,
                    },
                }),
            }),
            Item::Contact(Contact {
                base: base.clone(),
                display_name: Some("Bob B".into()),
                given_name: Some("Bob".into()),
                surname: Some("B".into()),
                company_name: Some("ACME".into()),
                email_addresses: vec![("EmailAddress1".into(), "bob@x.test".into())],
                phone_numbers: vec![("MobilePhone".into(), "+1 555".into())],
                job_title: Some("Boss".into()),
            }),
            Item::Task(Task {
                base,
                due_date: Some(t),
                start_date: Some(t),
                status: Some(TaskStatus::InProgress),
                percent_complete: Some(50.0),
                complete_date: None,
            }),
        ];
        for item in &items {
            assert_eq!(&roundtrip(item), item);
        }
    }

    #[test]
    fn field_uris_encode_indexed_paths() {
        let f = FieldUri::indexed(FieldUri::EMAIL_ADDRESS_DICTIONARY, "EmailAddress1");
        assert_eq!(
            f.split_index(),
            ("contacts:EmailAddress", Some("EmailAddress1"))
        );
        assert_eq!(FieldUri::SUBJECT.split_index(), ("item:Subject", None));
    }

    #[test]
    fn times_parse_with_and_without_offset() {
        let want = Utc.with_ymd_and_hms(2006, 10, 28, 1, 37, 5).unwrap();
        assert_eq!(parse_time("x", "2006-10-28T01:37:05Z").unwrap(), want);
        assert_eq!(parse_time("x", "2006-10-28T03:37:05+02:00").unwrap(), want);
        assert_eq!(parse_time("x", "2006-10-28T01:37:05").unwrap(), want);
        assert!(parse_time("x", "yesterday").is_err());
        assert_eq!(format_time(&want), "2006-10-28T01:37:05Z");
        let fractional = want + chrono::Duration::nanoseconds(999_999_999);
        assert_eq!(format_time(&fractional), "2006-10-28T01:37:05Z");
        assert_eq!(whole_seconds(fractional), want);
    }

    #[test]
    fn distinguished_names_round_trip() {
        for n in DistinguishedFolderName::ALL {
            assert_eq!(n.as_str().parse::<DistinguishedFolderName>().unwrap(), n);
        }
        assert!("nowhere".parse::<DistinguishedFolderName>().is_err());
    }
}

//! One mailbox, two wire shapes: the fake Exchange's stored items (the EWS codec's types) as
//! Graph resources (`exsync_graph::model`) and back.
//!
//! Owns the mapping of each property and what Graph derives (`@odata.etag` from the change
//! key, `isDraft` from the folder, `bodyPreview`, `type` of an event, …). Writes map only what
//! a request carries; server-assigned properties are never taken from a client.

use chrono::{DateTime, NaiveDate, Utc};
use exsync_graph::model::{
    self as gm, Attendee, AttendeeType, BodyType, DateTimeTimeZone, EmailAddress as GEmail,
    EventType, Importance, InternetMessageHeader, ItemBody, Location, PatternedRecurrence,
    Recipient, RecurrencePatternType, RecurrenceRangeType, ResponseStatus, ResponseType as GResp,
    SingleValueExtendedProperty, TaskStatus as GTaskStatus,
};
use serde_json::Value;

use super::ids;
use super::query::property_id_string;
use super::wire::GraphErr;
use exsync_ews::extended::{ExtendedFieldUri, ExtendedProperty};
use exsync_ews::recurrence::{
    DayOfWeek as EDay, Month, Recurrence, RecurrencePattern as EPattern, RecurrenceRange as ERange,
    WeekIndex as EWeek,
};
use exsync_ews::types::{
    Body, BodyType as EBodyType, CalendarItem, CalendarItemKind, Contact, DistinguishedFolderName,
    EmailAddress, Message, ResponseType, Task, TaskStatus,
};

/// How one item is shown.
pub(crate) struct View<'a> {
    /// The mailbox (canonical address).
    pub(crate) address: &'a str,
    /// The item's number.
    pub(crate) n: u64,
    /// Where it is.
    pub(crate) folder: DistinguishedFolderName,
    /// `Prefer: IdType="ImmutableId"`.
    pub(crate) immutable: bool,
    /// `Prefer: outlook.body-content-type`.
    pub(crate) body_type: Option<BodyType>,
    /// The extended property `$expand`ed, if any.
    pub(crate) expand: Option<&'a ExtendedFieldUri>,
}

impl View<'_> {
    fn id(&self) -> String {
        ids::rest_id(self.address, self.n, self.immutable)
    }
}

/// `W/"<changeKey>"` (GD-MGET).
pub(crate) fn etag(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

/// The folder id Graph shows (folders have no immutable ids and need none, GD-IMM).
pub(crate) fn folder_id(address: &str, folder: DistinguishedFolderName) -> String {
    crate::state::folder_id_string(address, folder)
}

fn recipient(a: &EmailAddress) -> Recipient {
    Recipient {
        email_address: Some(GEmail {
            name: a.name.clone(),
            address: Some(a.address.clone()),
        }),
    }
}

fn from_recipient(r: &Recipient) -> EmailAddress {
    let email = r.email_address.clone().unwrap_or_default();
    EmailAddress {
        name: email.name,
        address: email.address.unwrap_or_default(),
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body as asked for (`wanted`, default HTML: Graph converts text to HTML).
fn body(stored: Option<&Body>, wanted: Option<BodyType>) -> ItemBody {
    let (kind, content) = match stored {
        Some(b) => (b.body_type, b.content.as_str()),
        None => (EBodyType::Text, ""),
    };
    match (wanted.unwrap_or(BodyType::Html), kind) {
        (BodyType::Text, EBodyType::Html) => ItemBody::text(strip_tags(content)),
        (BodyType::Text, EBodyType::Text) => ItemBody::text(content),
        (BodyType::Html, EBodyType::Html) => ItemBody::html(content),
        (BodyType::Html, EBodyType::Text) => ItemBody::html(format!(
            "<html><body>{}</body></html>",
            escape_html(content).replace('\n', "<br>")
        )),
    }
}

fn preview(stored: Option<&Body>) -> String {
    let text = match stored {
        Some(b) if b.body_type == EBodyType::Html => strip_tags(&b.content),
        Some(b) => b.content.clone(),
        None => String::new(),
    };
    text.chars().take(255).collect()
}

fn expanded(
    properties: &[ExtendedProperty],
    wanted: Option<&ExtendedFieldUri>,
) -> Option<Vec<SingleValueExtendedProperty>> {
    let wanted = wanted?;
    Some(
        properties
            .iter()
            .filter(|p| super::query::same_property(&p.field, wanted))
            .map(|p| SingleValueExtendedProperty {
                id: property_id_string(&p.field),
                value: p.value.first().map(str::to_owned),
            })
            .collect(),
    )
}

/// A stored message as `microsoft.graph.message`.
pub(crate) fn message(m: &Message, v: &View<'_>) -> gm::Message {
    let base = &m.base;
    let change_key = base
        .item_id
        .as_ref()
        .and_then(|i| i.change_key.clone())
        .unwrap_or_default();
    let mut headers = vec![InternetMessageHeader {
        name: Some("Subject".into()),
        value: base.subject.clone(),
    }];
    if let Some(id) = &m.internet_message_id {
        headers.push(InternetMessageHeader {
            name: Some("Message-ID".into()),
            value: Some(id.clone()),
        });
    }
    if let Some(from) = &m.from {
        headers.push(InternetMessageHeader {
            name: Some("From".into()),
            value: Some(from.address.clone()),
        });
    }
    if let Some(r) = &base.in_reply_to {
        headers.push(InternetMessageHeader {
            name: Some("In-Reply-To".into()),
            value: Some(r.clone()),
        });
    }
    if let Some(r) = &m.references {
        headers.push(InternetMessageHeader {
            name: Some("References".into()),
            value: Some(r.clone()),
        });
    }
    // Meeting requests and responses are eventMessages in a message collection; Graph names
    // the derived type of such an item.
    let is_meeting_message = base
        .item_class
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("ipm.schedule.meeting"));
    gm::Message {
        id: Some(v.id()),
        etag: Some(etag(&change_key)),
        removed: None,
        odata_type: is_meeting_message.then(|| "#microsoft.graph.eventMessage".to_owned()),
        change_key: Some(change_key),
        categories: Some(base.categories.clone()),
        created_date_time: base.date_time_created,
        last_modified_date_time: base.last_modified_time,
        received_date_time: base.date_time_received.or(base.date_time_created),
        sent_date_time: base.date_time_sent,
        internet_message_id: m.internet_message_id.clone(),
        internet_message_headers: Some(headers),
        subject: Some(base.subject.clone().unwrap_or_default()),
        body: Some(body(base.body.as_ref(), v.body_type)),
        body_preview: Some(preview(base.body.as_ref())),
        sender: m.sender.as_ref().map(recipient),
        from: m.from.as_ref().map(recipient),
        to_recipients: Some(m.to_recipients.iter().map(recipient).collect()),
        cc_recipients: Some(m.cc_recipients.iter().map(recipient).collect()),
        bcc_recipients: Some(m.bcc_recipients.iter().map(recipient).collect()),
        reply_to: Some(Vec::new()),
        conversation_id: base.conversation_id.clone(),
        is_read: Some(m.is_read.unwrap_or(false)),
        is_draft: Some(v.folder == DistinguishedFolderName::Drafts),
        has_attachments: Some(false),
        importance: Some(Importance::Normal),
        parent_folder_id: Some(folder_id(v.address, v.folder)),
        single_value_extended_properties: expanded(&base.extended_properties, v.expand),
    }
}

/// Properties of `microsoft.graph.message` a `$select` may name.
pub(crate) const MESSAGE_PROPERTIES: &[&str] = &[
    "id",
    "changeKey",
    "categories",
    "createdDateTime",
    "lastModifiedDateTime",
    "receivedDateTime",
    "sentDateTime",
    "internetMessageId",
    "internetMessageHeaders",
    "subject",
    "body",
    "bodyPreview",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "conversationId",
    "isRead",
    "isDraft",
    "hasAttachments",
    "importance",
    "parentFolderId",
];

/// Message properties Graph returns only when selected.
pub(crate) const MESSAGE_ON_REQUEST: &[&str] = &["internetMessageHeaders"];

fn ews_body(b: &ItemBody) -> Body {
    Body {
        body_type: match b.content_type {
            Some(BodyType::Html) => EBodyType::Html,
            _ => EBodyType::Text,
        },
        content: b.content.clone().unwrap_or_default(),
    }
}

fn ews_properties(list: &[SingleValueExtendedProperty]) -> Result<Vec<ExtendedProperty>, GraphErr> {
    list.iter()
        .map(|p| {
            let field = super::query::parse_property_id(&p.id).ok_or_else(|| {
                GraphErr::invalid_request(format!(
                    "The extended property id '{}' is not valid.",
                    p.id
                ))
            })?;
            Ok(ExtendedProperty::new(
                field,
                p.value.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

/// Apply the writable properties a message request carries (a draft's create or update).
pub(crate) fn apply_message(target: &mut Message, m: &gm::Message) -> Result<(), GraphErr> {
    let base = &mut target.base;
    if let Some(s) = &m.subject {
        base.subject = Some(s.clone());
    }
    if let Some(b) = &m.body {
        base.body = Some(ews_body(b));
    }
    if let Some(c) = &m.categories {
        base.categories = c.clone();
    }
    if let Some(list) = &m.to_recipients {
        target.to_recipients = list.iter().map(from_recipient).collect();
    }
    if let Some(list) = &m.cc_recipients {
        target.cc_recipients = list.iter().map(from_recipient).collect();
    }
    if let Some(list) = &m.bcc_recipients {
        target.bcc_recipients = list.iter().map(from_recipient).collect();
    }
    if let Some(f) = &m.from {
        target.from = Some(from_recipient(f));
    }
    if let Some(s) = &m.sender {
        target.sender = Some(from_recipient(s));
    }
    if let Some(r) = m.is_read {
        target.is_read = Some(r);
    }
    if let Some(id) = &m.internet_message_id {
        target.internet_message_id = Some(id.clone());
    }
    if let Some(list) = &m.single_value_extended_properties {
        for p in ews_properties(list)? {
            target
                .base
                .extended_properties
                .retain(|q| !super::query::same_property(&q.field, &p.field));
            target.base.extended_properties.push(p);
        }
    }
    Ok(())
}

fn response(r: Option<ResponseType>) -> GResp {
    match r {
        Some(ResponseType::Organizer) => GResp::Organizer,
        Some(ResponseType::Accept) => GResp::Accepted,
        Some(ResponseType::Tentative) => GResp::TentativelyAccepted,
        Some(ResponseType::Decline) => GResp::Declined,
        Some(ResponseType::NoResponseReceived) => GResp::NotResponded,
        _ => GResp::None,
    }
}

fn camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn graph_days(day: EDay) -> Vec<gm::DayOfWeek> {
    let names: Vec<&str> = match day {
        EDay::Day => vec![
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ],
        EDay::Weekday => vec!["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
        EDay::WeekendDay => vec!["Saturday", "Sunday"],
        single => vec![single.as_str()],
    };
    names
        .into_iter()
        .filter_map(|n| serde_json::from_value(Value::String(camel(n))).ok())
        .collect()
}

fn graph_week(week: EWeek) -> Option<gm::WeekIndex> {
    serde_json::from_value(Value::String(camel(week.as_str()))).ok()
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month_number(m: Month) -> i32 {
    MONTHS
        .iter()
        .position(|n| *n == m.as_str())
        .and_then(|p| i32::try_from(p + 1).ok())
        .unwrap_or(1)
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// An EWS recurrence as Graph's `patternedRecurrence`.
fn graph_recurrence(r: &Recurrence) -> PatternedRecurrence {
    let mut p = gm::RecurrencePattern::default();
    match &r.pattern {
        EPattern::Daily { interval } => {
            p.pattern_type = Some(RecurrencePatternType::Daily);
            p.interval = Some(to_i32(*interval));
        }
        EPattern::Weekly {
            interval,
            days_of_week,
            first_day_of_week,
        } => {
            p.pattern_type = Some(RecurrencePatternType::Weekly);
            p.interval = Some(to_i32(*interval));
            p.days_of_week = Some(days_of_week.iter().flat_map(|d| graph_days(*d)).collect());
            p.first_day_of_week = first_day_of_week.and_then(|d| graph_days(d).first().copied());
        }
        EPattern::AbsoluteMonthly {
            interval,
            day_of_month,
        } => {
            p.pattern_type = Some(RecurrencePatternType::AbsoluteMonthly);
            p.interval = Some(to_i32(*interval));
            p.day_of_month = Some(to_i32(*day_of_month));
        }
        EPattern::RelativeMonthly {
            interval,
            day_of_week,
            week,
        } => {
            p.pattern_type = Some(RecurrencePatternType::RelativeMonthly);
            p.interval = Some(to_i32(*interval));
            p.days_of_week = Some(graph_days(*day_of_week));
            p.index = graph_week(*week);
        }
        EPattern::AbsoluteYearly {
            day_of_month,
            month,
        } => {
            p.pattern_type = Some(RecurrencePatternType::AbsoluteYearly);
            p.interval = Some(1);
            p.day_of_month = Some(to_i32(*day_of_month));
            p.month = Some(month_number(*month));
        }
        EPattern::RelativeYearly {
            day_of_week,
            week,
            month,
        } => {
            p.pattern_type = Some(RecurrencePatternType::RelativeYearly);
            p.interval = Some(1);
            p.days_of_week = Some(graph_days(*day_of_week));
            p.index = graph_week(*week);
            p.month = Some(month_number(*month));
        }
    }
    let mut range = gm::RecurrenceRange {
        start_date: Some(r.range.start_date()),
        recurrence_time_zone: Some("UTC".into()),
        ..gm::RecurrenceRange::default()
    };
    match &r.range {
        ERange::NoEnd { .. } => range.range_type = Some(RecurrenceRangeType::NoEnd),
        ERange::EndDate { end_date, .. } => {
            range.range_type = Some(RecurrenceRangeType::EndDate);
            range.end_date = Some(*end_date);
        }
        ERange::Numbered { occurrences, .. } => {
            range.range_type = Some(RecurrenceRangeType::Numbered);
            range.number_of_occurrences = Some(to_i32(*occurrences));
        }
    }
    PatternedRecurrence {
        pattern: Some(p),
        range: Some(range),
    }
}

fn ews_day(d: gm::DayOfWeek) -> Option<EDay> {
    let name = serde_json::to_value(d).ok()?;
    let name = name.as_str()?;
    [
        EDay::Sunday,
        EDay::Monday,
        EDay::Tuesday,
        EDay::Wednesday,
        EDay::Thursday,
        EDay::Friday,
        EDay::Saturday,
    ]
    .into_iter()
    .find(|e| e.as_str().eq_ignore_ascii_case(name))
}

fn ews_week(w: gm::WeekIndex) -> Option<EWeek> {
    let name = serde_json::to_value(w).ok()?;
    let name = name.as_str()?;
    [
        EWeek::First,
        EWeek::Second,
        EWeek::Third,
        EWeek::Fourth,
        EWeek::Last,
    ]
    .into_iter()
    .find(|e| e.as_str().eq_ignore_ascii_case(name))
}

fn ews_month(n: i32) -> Option<Month> {
    let name = MONTHS.get(usize::try_from(n.checked_sub(1)?).ok()?)?;
    name.parse().ok()
}

/// Graph's `patternedRecurrence` as an EWS recurrence (what the fake can keep).
fn ews_recurrence(r: &PatternedRecurrence) -> Result<Recurrence, GraphErr> {
    let bad = |what: &str| GraphErr::invalid_request(format!("Invalid recurrence: {what}."));
    let p = r
        .pattern
        .as_ref()
        .ok_or_else(|| bad("pattern is required"))?;
    let range = r.range.as_ref().ok_or_else(|| bad("range is required"))?;
    let interval = u32::try_from(p.interval.unwrap_or(1))
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| bad("interval must be at least 1"))?;
    let days: Vec<EDay> = p
        .days_of_week
        .iter()
        .flatten()
        .map(|d| ews_day(*d).ok_or_else(|| bad("unknown day")))
        .collect::<Result<_, _>>()?;
    // A relative pattern's days: one day, or a whole group ("the first weekday"), which is
    // what Exchange's DayOfWeekType holds; the fake keeps nothing else.
    let one_day = || {
        let mut given: Vec<&str> = days.iter().map(|d| d.as_str()).collect();
        given.sort_unstable();
        given.dedup();
        match given.as_slice() {
            [] => Err(bad("daysOfWeek is required")),
            [_] => Ok(days[0]),
            _ => [EDay::Day, EDay::Weekday, EDay::WeekendDay]
                .into_iter()
                .find(|group| {
                    let mut names: Vec<String> = graph_days(*group)
                        .into_iter()
                        .filter_map(ews_day)
                        .map(|d| d.as_str().to_owned())
                        .collect();
                    names.sort_unstable();
                    names == given
                })
                .ok_or_else(|| {
                    bad("the fake Graph keeps a relative pattern on one day or a whole group (all days, weekdays, weekend days) only")
                }),
        }
    };
    let yearly = || match p.interval.unwrap_or(1) {
        1 => Ok(()),
        _ => Err(bad(
            "the fake Graph keeps yearly patterns with interval 1 only",
        )),
    };
    let week = || {
        p.index
            .and_then(ews_week)
            .ok_or_else(|| bad("index is required"))
    };
    let day_of_month = || {
        p.day_of_month
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| bad("dayOfMonth is required"))
    };
    let month = || {
        p.month
            .and_then(ews_month)
            .ok_or_else(|| bad("month is required"))
    };
    let pattern = match p.pattern_type {
        Some(RecurrencePatternType::Daily) => EPattern::Daily { interval },
        Some(RecurrencePatternType::Weekly) => EPattern::Weekly {
            interval,
            days_of_week: if days.is_empty() {
                return Err(bad("daysOfWeek is required"));
            } else {
                days.clone()
            },
            first_day_of_week: p.first_day_of_week.and_then(ews_day),
        },
        Some(RecurrencePatternType::AbsoluteMonthly) => EPattern::AbsoluteMonthly {
            interval,
            day_of_month: day_of_month()?,
        },
        Some(RecurrencePatternType::RelativeMonthly) => EPattern::RelativeMonthly {
            interval,
            day_of_week: one_day()?,
            week: week()?,
        },
        Some(RecurrencePatternType::AbsoluteYearly) => {
            yearly()?;
            EPattern::AbsoluteYearly {
                day_of_month: day_of_month()?,
                month: month()?,
            }
        }
        Some(RecurrencePatternType::RelativeYearly) => {
            yearly()?;
            EPattern::RelativeYearly {
                day_of_week: one_day()?,
                week: week()?,
                month: month()?,
            }
        }
        _ => return Err(bad("pattern type is required")),
    };
    let start_date: NaiveDate = range
        .start_date
        .ok_or_else(|| bad("startDate is required"))?;
    let range = match range.range_type {
        Some(RecurrenceRangeType::NoEnd) => ERange::NoEnd { start_date },
        Some(RecurrenceRangeType::EndDate) => ERange::EndDate {
            start_date,
            end_date: range.end_date.ok_or_else(|| bad("endDate is required"))?,
        },
        Some(RecurrenceRangeType::Numbered) => ERange::Numbered {
            start_date,
            occurrences: range
                .number_of_occurrences
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("numberOfOccurrences is required"))?,
        },
        _ => return Err(bad("range type is required")),
    };
    let recurrence = Recurrence { pattern, range };
    recurrence
        .validate()
        .map_err(|e| GraphErr::invalid_request(e.to_string()))?;
    Ok(recurrence)
}

/// A stored calendar item as `microsoft.graph.event` (times in UTC).
pub(crate) fn event(c: &CalendarItem, v: &View<'_>, transaction_id: Option<String>) -> gm::Event {
    let base = &c.base;
    let change_key = base
        .item_id
        .as_ref()
        .and_then(|i| i.change_key.clone())
        .unwrap_or_default();
    let organizer = c.organizer.clone();
    gm::Event {
        id: Some(v.id()),
        etag: Some(etag(&change_key)),
        removed: None,
        change_key: Some(change_key),
        categories: Some(base.categories.clone()),
        created_date_time: base.date_time_created,
        last_modified_date_time: base.last_modified_time,
        transaction_id,
        ical_uid: c.uid.clone(),
        subject: Some(base.subject.clone().unwrap_or_default()),
        body: Some(body(base.body.as_ref(), v.body_type)),
        body_preview: Some(preview(base.body.as_ref())),
        start: c.start.map(DateTimeTimeZone::utc),
        end: c.end.map(DateTimeTimeZone::utc),
        is_all_day: Some(c.is_all_day_event.unwrap_or(false)),
        location: Some(Location {
            display_name: Some(c.location.clone().unwrap_or_default()),
            address: None,
            location_email_address: None,
        }),
        show_as: Some(gm::FreeBusyStatus::Busy),
        importance: Some(Importance::Normal),
        sensitivity: Some(gm::Sensitivity::Normal),
        is_reminder_on: Some(false),
        reminder_minutes_before_start: Some(15),
        recurrence: c.recurrence.as_ref().map(graph_recurrence),
        series_master_id: None,
        event_type: Some(match c.calendar_item_type {
            Some(CalendarItemKind::RecurringMaster) => EventType::SeriesMaster,
            Some(CalendarItemKind::Occurrence) => EventType::Occurrence,
            Some(CalendarItemKind::Exception) => EventType::Exception,
            _ => EventType::SingleInstance,
        }),
        organizer: organizer.as_ref().map(recipient),
        is_organizer: Some(c.my_response_type == Some(ResponseType::Organizer)),
        attendees: Some(
            c.required_attendees
                .iter()
                .map(|a| Attendee {
                    email_address: Some(GEmail {
                        name: a.name.clone(),
                        address: Some(a.address.clone()),
                    }),
                    attendee_type: Some(AttendeeType::Required),
                    status: Some(ResponseStatus {
                        response: Some(GResp::None),
                        time: None,
                    }),
                })
                .collect(),
        ),
        is_cancelled: Some(c.is_cancelled.unwrap_or(false)),
        response_requested: Some(true),
        response_status: Some(ResponseStatus {
            response: Some(response(c.my_response_type)),
            time: None,
        }),
        single_value_extended_properties: expanded(&base.extended_properties, v.expand),
    }
}

/// Properties of `microsoft.graph.event` a `$select` may name.
pub(crate) const EVENT_PROPERTIES: &[&str] = &[
    "id",
    "changeKey",
    "categories",
    "createdDateTime",
    "lastModifiedDateTime",
    "transactionId",
    "iCalUId",
    "subject",
    "body",
    "bodyPreview",
    "start",
    "end",
    "isAllDay",
    "location",
    "showAs",
    "importance",
    "sensitivity",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "recurrence",
    "seriesMasterId",
    "type",
    "organizer",
    "isOrganizer",
    "attendees",
    "isCancelled",
    "responseRequested",
    "responseStatus",
];

fn utc(value: &DateTimeTimeZone, name: &str) -> Result<DateTime<Utc>, GraphErr> {
    value.to_utc().ok_or_else(|| {
        GraphErr::invalid_request(format!(
            "{name}: the fake Graph reads times in UTC only (timeZone \"UTC\"); got {:?} in {:?}.",
            value.date_time, value.time_zone
        ))
    })
}

/// Apply the writable properties of an event request (create or update).
pub(crate) fn apply_event(target: &mut CalendarItem, e: &gm::Event) -> Result<(), GraphErr> {
    if let Some(s) = &e.subject {
        target.base.subject = Some(s.clone());
    }
    if let Some(b) = &e.body {
        target.base.body = Some(ews_body(b));
    }
    if let Some(c) = &e.categories {
        target.base.categories = c.clone();
    }
    if let Some(s) = &e.start {
        target.start = Some(utc(s, "start")?);
    }
    if let Some(s) = &e.end {
        target.end = Some(utc(s, "end")?);
    }
    if let Some(a) = e.is_all_day {
        target.is_all_day_event = Some(a);
    }
    if let Some(l) = &e.location {
        target.location = l.display_name.clone();
    }
    if let Some(list) = &e.attendees {
        target.required_attendees = list
            .iter()
            .filter_map(|a| a.email_address.as_ref())
            .map(|m| EmailAddress {
                name: m.name.clone(),
                address: m.address.clone().unwrap_or_default(),
            })
            .collect();
    }
    if let Some(r) = &e.recurrence {
        target.recurrence = Some(ews_recurrence(r)?);
    }
    if let Some(list) = &e.single_value_extended_properties {
        for p in ews_properties(list)? {
            target
                .base
                .extended_properties
                .retain(|q| !super::query::same_property(&q.field, &p.field));
            target.base.extended_properties.push(p);
        }
    }
    if let (Some(start), Some(end)) = (target.start, target.end) {
        if end < start {
            return Err(GraphErr::invalid_request(
                "The event's end is before its start.",
            ));
        }
    }
    Ok(())
}

fn keyed<'a>(list: &'a [(String, String)], key: &str) -> Option<&'a String> {
    list.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A stored contact as `microsoft.graph.contact`.
pub(crate) fn contact(c: &Contact, v: &View<'_>) -> gm::Contact {
    let base = &c.base;
    let change_key = base
        .item_id
        .as_ref()
        .and_then(|i| i.change_key.clone())
        .unwrap_or_default();
    gm::Contact {
        id: Some(v.id()),
        etag: Some(etag(&change_key)),
        removed: None,
        change_key: Some(change_key),
        categories: Some(base.categories.clone()),
        created_date_time: base.date_time_created,
        last_modified_date_time: base.last_modified_time,
        parent_folder_id: Some(folder_id(v.address, v.folder)),
        display_name: c.display_name.clone(),
        given_name: c.given_name.clone(),
        middle_name: None,
        surname: c.surname.clone(),
        title: None,
        file_as: Some(String::new()),
        company_name: c.company_name.clone(),
        department: None,
        job_title: c.job_title.clone(),
        email_addresses: Some(
            c.email_addresses
                .iter()
                .map(|(_, a)| GEmail {
                    name: c.display_name.clone(),
                    address: Some(a.clone()),
                })
                .collect(),
        ),
        business_phones: Some(
            keyed(&c.phone_numbers, "BusinessPhone")
                .cloned()
                .into_iter()
                .collect(),
        ),
        home_phones: Some(
            keyed(&c.phone_numbers, "HomePhone")
                .cloned()
                .into_iter()
                .collect(),
        ),
        mobile_phone: keyed(&c.phone_numbers, "MobilePhone").cloned(),
        business_address: None,
        home_address: None,
        personal_notes: Some(
            base.body
                .as_ref()
                .map(|b| b.content.clone())
                .unwrap_or_default(),
        ),
        birthday: None,
        single_value_extended_properties: expanded(&base.extended_properties, v.expand),
    }
}

/// Properties of `microsoft.graph.contact` a `$select` may name.
pub(crate) const CONTACT_PROPERTIES: &[&str] = &[
    "id",
    "changeKey",
    "categories",
    "createdDateTime",
    "lastModifiedDateTime",
    "parentFolderId",
    "displayName",
    "givenName",
    "middleName",
    "surname",
    "title",
    "fileAs",
    "companyName",
    "department",
    "jobTitle",
    "emailAddresses",
    "businessPhones",
    "homePhones",
    "mobilePhone",
    "businessAddress",
    "homeAddress",
    "personalNotes",
    "birthday",
];

fn set_phone(list: &mut Vec<(String, String)>, key: &str, value: Option<&String>) {
    list.retain(|(k, _)| k != key);
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        list.push((key.to_owned(), v.clone()));
    }
}

/// Apply the writable properties of a contact request (create or update).
pub(crate) fn apply_contact(target: &mut Contact, c: &gm::Contact) -> Result<(), GraphErr> {
    if let Some(v) = &c.display_name {
        target.display_name = Some(v.clone());
    }
    if let Some(v) = &c.given_name {
        target.given_name = Some(v.clone());
    }
    if let Some(v) = &c.surname {
        target.surname = Some(v.clone());
    }
    if let Some(v) = &c.company_name {
        target.company_name = Some(v.clone());
    }
    if let Some(v) = &c.job_title {
        target.job_title = Some(v.clone());
    }
    if let Some(v) = &c.categories {
        target.base.categories = v.clone();
    }
    if let Some(list) = &c.email_addresses {
        if list.len() > 3 {
            return Err(GraphErr::invalid_request(
                "A contact has at most three e-mail addresses.",
            ));
        }
        target.email_addresses = list
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.address
                    .clone()
                    .map(|a| (format!("EmailAddress{}", i + 1), a))
            })
            .collect();
    }
    if let Some(list) = &c.business_phones {
        set_phone(&mut target.phone_numbers, "BusinessPhone", list.first());
    }
    if let Some(list) = &c.home_phones {
        set_phone(&mut target.phone_numbers, "HomePhone", list.first());
    }
    if let Some(v) = &c.mobile_phone {
        set_phone(&mut target.phone_numbers, "MobilePhone", Some(v));
    }
    if let Some(v) = &c.personal_notes {
        target.base.body = Some(Body {
            body_type: EBodyType::Text,
            content: v.clone(),
        });
    }
    if let Some(list) = &c.single_value_extended_properties {
        for p in ews_properties(list)? {
            target
                .base
                .extended_properties
                .retain(|q| !super::query::same_property(&q.field, &p.field));
            target.base.extended_properties.push(p);
        }
    }
    if target.base.subject.is_none() {
        target.base.subject = target.display_name.clone();
    }
    Ok(())
}

fn graph_status(s: Option<TaskStatus>) -> GTaskStatus {
    match s.unwrap_or_default() {
        TaskStatus::NotStarted => GTaskStatus::NotStarted,
        TaskStatus::InProgress => GTaskStatus::InProgress,
        TaskStatus::Completed => GTaskStatus::Completed,
        TaskStatus::WaitingOnOthers => GTaskStatus::WaitingOnOthers,
        TaskStatus::Deferred => GTaskStatus::Deferred,
    }
}

/// A stored task as a To Do `microsoft.graph.todoTask` (ids of its own, GD-IMM).
pub(crate) fn todo_task(t: &Task, address: &str, n: u64) -> gm::TodoTask {
    let base = &t.base;
    let change_key = base
        .item_id
        .as_ref()
        .and_then(|i| i.change_key.clone())
        .unwrap_or_default();
    gm::TodoTask {
        id: Some(ids::todo_task_id(address, n)),
        etag: Some(etag(&change_key)),
        removed: None,
        title: Some(base.subject.clone().unwrap_or_default()),
        body: Some(match &base.body {
            Some(b) if b.body_type == EBodyType::Html => ItemBody::html(b.content.clone()),
            Some(b) => ItemBody::text(b.content.clone()),
            None => ItemBody::text(""),
        }),
        categories: Some(base.categories.clone()),
        status: Some(graph_status(t.status)),
        importance: Some(Importance::Normal),
        is_reminder_on: Some(false),
        reminder_date_time: None,
        start_date_time: t.start_date.map(DateTimeTimeZone::utc),
        due_date_time: t.due_date.map(DateTimeTimeZone::utc),
        completed_date_time: t.complete_date.map(DateTimeTimeZone::utc),
        recurrence: None,
        created_date_time: base.date_time_created,
        last_modified_date_time: base.last_modified_time,
        body_last_modified_date_time: base.last_modified_time,
        has_attachments: Some(false),
    }
}

/// Properties of `microsoft.graph.todoTask` a `$select` may name.
pub(crate) const TODO_TASK_PROPERTIES: &[&str] = &[
    "id",
    "title",
    "body",
    "categories",
    "status",
    "importance",
    "isReminderOn",
    "reminderDateTime",
    "startDateTime",
    "dueDateTime",
    "completedDateTime",
    "recurrence",
    "createdDateTime",
    "lastModifiedDateTime",
    "bodyLastModifiedDateTime",
    "hasAttachments",
];

/// Apply the writable properties of a To Do task request (create or update).
pub(crate) fn apply_todo_task(target: &mut Task, t: &gm::TodoTask) -> Result<(), GraphErr> {
    if let Some(v) = &t.title {
        target.base.subject = Some(v.clone());
    }
    if let Some(b) = &t.body {
        target.base.body = Some(ews_body(b));
    }
    if let Some(c) = &t.categories {
        target.base.categories = c.clone();
    }
    if let Some(s) = t.status {
        target.status = Some(match s {
            GTaskStatus::NotStarted => TaskStatus::NotStarted,
            GTaskStatus::InProgress => TaskStatus::InProgress,
            GTaskStatus::Completed => TaskStatus::Completed,
            GTaskStatus::WaitingOnOthers => TaskStatus::WaitingOnOthers,
            GTaskStatus::Deferred => TaskStatus::Deferred,
            GTaskStatus::UnknownFutureValue => {
                return Err(GraphErr::invalid_request("Unknown task status."))
            }
        });
        target.percent_complete = Some(if s == GTaskStatus::Completed {
            100.0
        } else {
            0.0
        });
        if s == GTaskStatus::Completed {
            target
                .complete_date
                .get_or_insert_with(|| exsync_ews::types::whole_seconds(Utc::now()));
        } else {
            target.complete_date = None;
        }
    }
    if let Some(d) = &t.due_date_time {
        target.due_date = Some(utc(d, "dueDateTime")?);
    }
    if let Some(d) = &t.start_date_time {
        target.start_date = Some(utc(d, "startDateTime")?);
    }
    if let Some(d) = &t.completed_date_time {
        target.complete_date = Some(utc(d, "completedDateTime")?);
    }
    if t.recurrence.is_some() {
        return Err(GraphErr::invalid_request(
            "The fake Graph keeps no To Do recurrence.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative(days: Vec<gm::DayOfWeek>, interval: i32) -> PatternedRecurrence {
        PatternedRecurrence {
            pattern: Some(gm::RecurrencePattern {
                pattern_type: Some(RecurrencePatternType::RelativeYearly),
                interval: Some(interval),
                month: Some(11),
                days_of_week: Some(days),
                index: Some(gm::WeekIndex::Last),
                ..gm::RecurrencePattern::default()
            }),
            range: Some(gm::RecurrenceRange {
                range_type: Some(RecurrenceRangeType::NoEnd),
                start_date: NaiveDate::from_ymd_opt(2026, 11, 30),
                ..gm::RecurrenceRange::default()
            }),
        }
    }

    #[test]
    fn a_relative_pattern_keeps_a_whole_group_of_days_and_refuses_other_lists() {
        let weekdays = graph_days(EDay::Weekday);
        let kept = ews_recurrence(&relative(weekdays, 1)).unwrap();
        assert!(matches!(
            kept.pattern,
            EPattern::RelativeYearly {
                day_of_week: EDay::Weekday,
                ..
            }
        ));
        assert_eq!(graph_recurrence(&kept), {
            let mut back = relative(graph_days(EDay::Weekday), 1);
            if let Some(r) = back.range.as_mut() {
                r.recurrence_time_zone = Some("UTC".into());
            }
            back
        });
        let two = vec![gm::DayOfWeek::Monday, gm::DayOfWeek::Tuesday];
        assert!(ews_recurrence(&relative(two, 1)).is_err());
        assert!(
            ews_recurrence(&relative(vec![gm::DayOfWeek::Friday], 2)).is_err(),
            "every second year cannot be kept"
        );
    }
}

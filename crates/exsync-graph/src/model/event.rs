//! `microsoft.graph.event` and its recurrence and attendee types
//! (learn.microsoft.com/graph/api/resources/event, …/patternedrecurrence, …/attendee).
//!
//! Enums read from Graph end in `UnknownFutureValue`, which also catches any value Microsoft
//! adds later, so a new spelling never fails a whole delta page.

use super::common::{
    DateTimeTimeZone, Importance, ItemBody, PhysicalAddress, Recipient, Removed,
    SingleValueExtendedProperty,
};
use super::EmailAddress;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// An appointment or meeting in the mailbox's calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Immutable id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `W/"<changeKey>"`, sent back as `If-Match`.
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    /// Set on a delta entry for an event that left the window or was deleted. A calendarView
    /// delta also reports changed events outside the window this way (GD-EDELTA, I-CAL6599):
    /// the caller ignores removals of ids it does not know.
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    /// Version of the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    /// Categories (exsync's "tracked" category among them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    /// Last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    /// Client-chosen id that makes a retried POST idempotent; cannot change after creation
    /// (META event type; TP-EVENT-DESC). The dedup window is UNVERIFIED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// iCalendar UID, shared by all copies of one meeting.
    #[serde(rename = "iCalUId", default, skip_serializing_if = "Option::is_none")]
    pub ical_uid: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    /// First 255 characters of the body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    /// Start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTimeTimeZone>,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTimeTimeZone>,
    /// All-day event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_all_day: Option<bool>,
    /// Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Free/busy status shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as: Option<FreeBusyStatus>,
    /// Importance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    /// Sensitivity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Sensitivity>,
    /// Reminder set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_reminder_on: Option<bool>,
    /// Reminder lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_minutes_before_start: Option<i32>,
    /// Recurrence of a series master (kept as a series, never flattened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<PatternedRecurrence>,
    /// Series master of an occurrence or exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_master_id: Option<String>,
    /// Single instance, occurrence, exception or series master.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    /// Organizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Recipient>,
    /// The mailbox owner organised it (only an organiser's delete cancels a meeting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_organizer: Option<bool>,
    /// Attendees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<Attendee>>,
    /// Cancelled by the organiser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_cancelled: Option<bool>,
    /// Responses requested from attendees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_requested: Option<bool>,
    /// The mailbox owner's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// Extended properties, when set or `$expand`ed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<SingleValueExtendedProperty>>,
}

/// `microsoft.graph.location` (the parts exsync keeps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Shown name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PhysicalAddress>,
    /// Room mailbox address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_email_address: Option<String>,
}

/// `microsoft.graph.attendee`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
    /// Required, optional or resource.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub attendee_type: Option<AttendeeType>,
    /// Their response (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
}

/// `microsoft.graph.responseStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseStatus {
    /// The response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseType>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

/// `microsoft.graph.patternedRecurrence`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternedRecurrence {
    /// How often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<RecurrencePattern>,
    /// For how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RecurrenceRange>,
}

/// `microsoft.graph.recurrencePattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrencePattern {
    /// Daily, weekly, absolute/relative monthly or yearly.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub pattern_type: Option<RecurrencePatternType>,
    /// Every `interval` units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
    /// Month (1–12) of a yearly pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<i32>,
    /// Day of the month of an absolute pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<i32>,
    /// Days of a weekly or relative pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_of_week: Option<Vec<DayOfWeek>>,
    /// First day of the week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_day_of_week: Option<DayOfWeek>,
    /// Which week of a relative pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<WeekIndex>,
}

/// `microsoft.graph.recurrenceRange`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceRange {
    /// End date, no end, or numbered.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub range_type: Option<RecurrenceRangeType>,
    /// First day (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// Last day (Graph writes `0001-01-01` for a series without end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    /// Occurrences of a numbered range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_occurrences: Option<i32>,
    /// Zone the dates are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_time_zone: Option<String>,
}

macro_rules! graph_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A value this crate does not know (Graph's evolvable-enum sentinel, or newer).
            #[serde(other)]
            UnknownFutureValue,
        }
    };
}
pub(crate) use graph_enum;

graph_enum!(
    /// `microsoft.graph.freeBusyStatus`.
    FreeBusyStatus {
        /// Unknown.
        Unknown,
        /// Free.
        Free,
        /// Tentative.
        Tentative,
        /// Busy.
        Busy,
        /// Out of office.
        Oof,
        /// Working elsewhere.
        WorkingElsewhere,
    }
);

graph_enum!(
    /// `microsoft.graph.sensitivity`.
    Sensitivity {
        /// Normal.
        Normal,
        /// Personal.
        Personal,
        /// Private.
        Private,
        /// Confidential.
        Confidential,
    }
);

graph_enum!(
    /// `microsoft.graph.eventType`.
    EventType {
        /// A single appointment.
        SingleInstance,
        /// One occurrence of a series.
        Occurrence,
        /// A changed occurrence.
        Exception,
        /// The series itself.
        SeriesMaster,
    }
);

graph_enum!(
    /// `microsoft.graph.attendeeType`.
    AttendeeType {
        /// Required.
        Required,
        /// Optional.
        Optional,
        /// A room or equipment.
        Resource,
    }
);

graph_enum!(
    /// `microsoft.graph.responseType`.
    ResponseType {
        /// No response.
        None,
        /// The organiser.
        Organizer,
        /// Tentative.
        TentativelyAccepted,
        /// Accepted.
        Accepted,
        /// Declined.
        Declined,
        /// Not responded.
        NotResponded,
    }
);

graph_enum!(
    /// `microsoft.graph.recurrencePatternType`.
    RecurrencePatternType {
        /// Daily.
        Daily,
        /// Weekly.
        Weekly,
        /// On a day of the month.
        AbsoluteMonthly,
        /// On a weekday of a week of the month.
        RelativeMonthly,
        /// On a date of the year.
        AbsoluteYearly,
        /// On a weekday of a week of a month of the year.
        RelativeYearly,
    }
);

graph_enum!(
    /// `microsoft.graph.recurrenceRangeType`.
    RecurrenceRangeType {
        /// Until `endDate`.
        EndDate,
        /// Without end.
        NoEnd,
        /// `numberOfOccurrences` times.
        Numbered,
    }
);

graph_enum!(
    /// `microsoft.graph.dayOfWeek`.
    DayOfWeek {
        /// Sunday.
        Sunday,
        /// Monday.
        Monday,
        /// Tuesday.
        Tuesday,
        /// Wednesday.
        Wednesday,
        /// Thursday.
        Thursday,
        /// Friday.
        Friday,
        /// Saturday.
        Saturday,
    }
);

graph_enum!(
    /// `microsoft.graph.weekIndex`.
    WeekIndex {
        /// First.
        First,
        /// Second.
        Second,
        /// Third.
        Third,
        /// Fourth.
        Fourth,
        /// Last.
        Last,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enum_value_graph_adds_later_does_not_fail_the_item() {
        let event: Event =
            serde_json::from_str(r#"{"id":"e1","showAs":"somethingNew","type":"seriesMaster"}"#)
                .unwrap();
        assert_eq!(event.show_as, Some(FreeBusyStatus::UnknownFutureValue));
        assert_eq!(event.event_type, Some(EventType::SeriesMaster));
    }
}

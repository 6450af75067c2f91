//! The Graph v1.0 wire model: the JSON shapes exsync sends and reads, as serde types.
//!
//! Owns field names, enum spellings and date formats exactly as Microsoft's description
//! (`../shared/graph-openapi/graph-v1.0-mail-subset.json`, cut from the v1.0 CSDL) writes
//! them; tests validate every request body and every canned response with `check-json`.
//! It knows nothing of HTTP or of exsync's database. Every field is optional because Graph
//! returns only what `$select` asked for (and a delta replay may carry only changed
//! properties); unknown properties are ignored on read (Graph's Outlook types are open types).

mod common;
mod contact;
mod delta;
mod event;
mod message;
mod subscription;
mod todo;
mod translate;

pub use common::{
    BodyType, DateTimeTimeZone, EmailAddress, GenericError, Importance, InternetMessageHeader,
    ItemBody, PhysicalAddress, Recipient, Removed, SingleValueExtendedProperty,
};
pub use contact::Contact;
pub use delta::{Collection, DeltaEntry, DeltaItem, DeltaNext, DeltaPage, DeltaResponse};
pub use event::{
    Attendee, AttendeeType, DayOfWeek, Event, EventType, FreeBusyStatus, Location,
    PatternedRecurrence, RecurrencePattern, RecurrencePatternType, RecurrenceRange,
    RecurrenceRangeType, ResponseStatus, ResponseType, Sensitivity, WeekIndex,
};
pub use message::{MailFolder, Message};
pub use subscription::Subscription;
pub use todo::{TaskStatus, TodoTask, TodoTaskList, WellknownListName};
pub use translate::{ConvertIdResult, ExchangeIdFormat, TranslateExchangeIdsRequest};

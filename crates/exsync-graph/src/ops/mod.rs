//! The operations exsync needs, one file per subject, each a typed function on
//! [`GraphClient`](crate::GraphClient). Paths, query options and headers follow the v1.0
//! reference pages named beside each function; request bodies and canned answers are
//! validated against Microsoft's description in the tests.

mod calendar;
mod contacts;
mod ids;
mod mail;
mod mail_list;
mod subscriptions;
mod todo;

pub use calendar::CalendarWindow;
pub use contacts::{activity_key, ACTIVITY_KEY_PROPERTY, DEFAULT_CONTACT_FOLDER};
pub use ids::MAX_IDS_PER_TRANSLATION;
pub use mail::{
    outgoing_marker, MessageDeltaQuery, MessageSelect, OutgoingCopies, OUTGOING_ID_PROPERTY,
};
pub use mail_list::MessageListQuery;

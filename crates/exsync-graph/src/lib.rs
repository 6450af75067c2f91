//! exsync-graph: the Microsoft Graph (Exchange Online) wire model and client for exsync.
//!
//! The Graph counterpart of exsync's EWS client. It knows nothing of exsync's database,
//! configuration or sync rules: the daemon adapts its token source to [`TokenSource`], builds
//! one [`GraphClient`] per application credential and calls typed operations for one
//! mailbox ([`Target`]) at a time. Failures are [`GraphError`]s whose [`ErrorKind`] says what
//! to do next, in the same taxonomy as EWS.
//!
//! - [`model`]: serde types for messages, folders, events, contacts, To Do, delta pages,
//!   `translateExchangeIds`, subscriptions.
//! - [`GraphClient`] (`client`): request machinery (gates, throttling, tokens, correlation).
//! - operations (`ops`): mail, calendar, contacts, To Do, id translation, subscriptions.
//! - [`error`]: the error type and its classification.
//! - [`throttle`]: per-application-and-mailbox gates, `Retry-After`.
//! - [`token`]: the token source trait.
//! - [`transport`]: bounded HTTP without redirects.
//!
//! `$batch` is deliberately not used: Outlook runs at most 4 requests of a batch in parallel
//! and counts each against the same limits (GD-BATCH, GD-THRL), so within the 4-per-mailbox
//! cap it saves round trips only, and Microsoft's API description has no `$batch` path to
//! validate against. See docs/graph.md.

pub mod client;
pub mod error;
pub mod model;
mod ops;
pub mod throttle;
pub mod token;
pub mod transport;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use client::{
    ClientOptions, ClientSetupError, GraphClient, RequestEvent, RequestObserver, Target,
    DEFAULT_GRAPH_URL,
};
pub use error::{Correlation, ErrorKind, GraphError, GraphFailure};
pub use ops::{
    activity_key, outgoing_marker, CalendarWindow, MessageDeltaQuery, MessageListQuery,
    MessageSelect, OutgoingCopies, ACTIVITY_KEY_PROPERTY, DEFAULT_CONTACT_FOLDER,
    MAX_IDS_PER_TRANSLATION, OUTGOING_ID_PROPERTY,
};
pub use throttle::{ThrottleRegistry, MAILBOX_CONCURRENCY};
pub use token::{TokenError, TokenSource};
pub use transport::{Transport, TransportError, TransportSettings};

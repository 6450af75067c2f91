//! The Microsoft Graph provider: `sync::port` spoken as REST to Exchange Online through
//! `exsync-graph`, for profiles with `protocol = "graph"`. Every Graph type stops here;
//! `sync` sees domain words only.

pub mod backfill;
pub mod connector;
pub mod mailbox;
mod send;
mod series;
pub mod tokens;

pub use connector::{GraphConnector, GraphOptions};
pub use mailbox::{CalendarSpan, GraphMailbox};

//! Pure domain types: profiles, mailboxes, workloads, alerts and the rules that relate them.
//!
//! Owns the vocabulary every other module speaks. Must not do I/O and imports nothing above it
//! (no `store`, no `ews`, no `config`).

mod alert;
mod enums;
mod ids;
mod mailbox;
mod profile;
pub mod rules;
pub mod scope;
pub mod server_type;

pub use alert::{AlertLevel, AlertTarget};
pub use enums::{
    ApprovalStatus, AssertionSigning, AuthMethod, ParseEnumError, PasswordScheme, Protocol,
    ServerType, SyncMethod, Workload, WorkloadStatus,
};
pub use ids::{MailboxId, ProfileId};
pub use mailbox::Mailbox;
pub use profile::{
    default_oauth_scope, OAuthCredential, OAuthSettings, OutgoingSettings, Profile,
    DEFAULT_EWS_OAUTH_SCOPE, DEFAULT_GRAPH_URL,
};

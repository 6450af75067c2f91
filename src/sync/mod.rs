//! One pass for one mailbox: incoming email, outgoing email, appointments / contacts / tasks.
//!
//! Owns the sync decisions (what to import, what to send, how to resolve conflicts) and the
//! reaction to every failure, decided by error type. Must not let SOAP types leak into its
//! decisions: it speaks to Exchange through a narrow adapter in domain words ([`exchange`]).

pub mod act;
pub mod clients;
pub mod exchange;
pub mod incoming;
pub mod outgoing;
pub mod pass;
pub mod plan;
pub mod progress;
pub mod reaction;
pub mod scope;

use crate::store::StoreError;
use exsync_ews::{ErrorKind, EwsError};
use std::time::Duration;

pub use pass::{PassSummary, SyncEngine, WorkloadSummary};

/// Why a workload of a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Exchange (or the way to it) failed.
    #[error(transparent)]
    Ews(#[from] EwsError),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Another process took the mailbox's lease: stop without writing.
    #[error("the mailbox's lease was lost to another process")]
    LeaseLost,
    /// The process is shutting down.
    #[error("cancelled by shutdown")]
    Cancelled,
}

/// How a failed workload is treated, decided by the error's type (never its text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Network, timeouts, 5xx, a broken reply, a database blip: retry with backoff.
    Transient,
    /// Exchange asked us to wait (BackOffMilliseconds): wait exactly that long.
    Throttled,
    /// The credentials were refused: stop using them until they change.
    Authentication,
    /// Impersonation denied, mailbox missing, access denied: disable the workload.
    Permanent,
    /// The mailbox cannot send or write for now (quota, submission quota, Send As right): the
    /// items stay queued, the workload retries with backoff and an alert says why.
    MailboxRefused,
    /// Lease lost or shutdown: nothing to record.
    Abandoned,
}

impl SyncError {
    /// The reaction class of this error.
    pub fn kind(&self) -> FailureKind {
        match self {
            SyncError::Ews(e) => match e.kind() {
                ErrorKind::Transient | ErrorKind::SyncState => FailureKind::Transient,
                ErrorKind::Throttled => FailureKind::Throttled,
                ErrorKind::Authentication => FailureKind::Authentication,
                ErrorKind::Permanent => FailureKind::Permanent,
                ErrorKind::Mailbox => FailureKind::MailboxRefused,
            },
            SyncError::Store(e) if is_lease_lost(e) => FailureKind::Abandoned,
            SyncError::Store(_) => FailureKind::Transient,
            SyncError::LeaseLost | SyncError::Cancelled => FailureKind::Abandoned,
        }
    }

    /// A stable code for alerts, `last_error_code` and metrics.
    pub fn code(&self) -> String {
        match self {
            SyncError::Ews(e) => match e {
                EwsError::ServerBusy { .. } => "ews.server_busy".into(),
                EwsError::Unauthorized => "ews.unauthorized".into(),
                EwsError::ImpersonationDenied { .. } => "ews.impersonation_denied".into(),
                EwsError::MailboxNotFound { .. } => "ews.mailbox_not_found".into(),
                EwsError::InvalidSyncState => "ews.invalid_sync_state".into(),
                EwsError::AccessDenied { .. } => "ews.access_denied".into(),
                EwsError::MailboxUnauthorized { .. } => "ews.mailbox_unauthorized".into(),
                EwsError::MailboxRefused { code, .. } => mailbox_refusal_code(code),
                EwsError::ServerError { .. } => "ews.server_error".into(),
                EwsError::Http { status } => format!("ews.http_{status}"),
                EwsError::Malformed { .. } => "ews.malformed_response".into(),
                EwsError::Transport(_) => "ews.unreachable".into(),
                EwsError::Token(exsync_ews::oauth::TokenError::Unavailable { .. })
                | EwsError::Token(exsync_ews::oauth::TokenError::Malformed(_)) => {
                    "oauth.token_endpoint_unavailable".into()
                }
                EwsError::Token(exsync_ews::oauth::TokenError::Refused { .. }) => {
                    "oauth.token_request_refused".into()
                }
                EwsError::Token(_) => "ews.oauth_token".into(),
                EwsError::Ntlm(_) => "ews.ntlm".into(),
                EwsError::Request { .. } => "ews.request_refused".into(),
            },
            SyncError::Store(_) => "database.error".into(),
            SyncError::LeaseLost => "lease.lost".into(),
            SyncError::Cancelled => "shutdown".into(),
        }
    }

    /// The back-off Exchange asked for (throttling), or the token endpoint's `Retry-After`.
    pub fn server_back_off(&self) -> Option<Duration> {
        match self {
            SyncError::Ews(EwsError::ServerBusy { back_off }) => Some(*back_off),
            SyncError::Ews(EwsError::Token(e)) => e.retry_after(),
            _ => None,
        }
    }
}

/// `ErrorSendAsDenied` → `ews.send_as_denied`, `ErrorQuotaExceeded` → `ews.quota_exceeded`, …
fn mailbox_refusal_code(code: &str) -> String {
    let name = code.strip_prefix("Error").unwrap_or(code);
    let mut out = String::from("ews.");
    for (i, c) in name.chars().filter(char::is_ascii_alphanumeric).enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.truncate(100);
    out
}

fn is_lease_lost(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(text) if text == crate::store::emails::LEASE_LOST)
}

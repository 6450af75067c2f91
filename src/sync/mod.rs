//! One pass for one mailbox: incoming email, outgoing email, appointments / contacts / tasks.
//!
//! Owns the sync decisions (what to import, what to send, how to resolve conflicts) and the
//! reaction to every failure, decided by error type. Speaks to the mail server through its
//! own narrow port in domain words ([`port`]); the protocol adapters live in `providers`.

pub mod act;
pub mod context;
pub mod incoming;
pub mod outgoing;
pub mod pass;
pub mod plan;
pub mod port;
pub mod progress;
pub mod reaction;
pub mod scope;

use crate::store::StoreError;
use port::{Failure, ServerError};
use std::time::Duration;

pub use context::{PassContext, WorkloadSummary};
pub use pass::{PassSummary, SyncEngine};

/// Why a workload of a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The mail server (or the way to it) failed.
    #[error(transparent)]
    Server(#[from] ServerError),
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
            SyncError::Server(e) => reaction::classify(e.failure),
            SyncError::Store(StoreError::LeaseLost) => FailureKind::Abandoned,
            SyncError::Store(_) => FailureKind::Transient,
            SyncError::LeaseLost | SyncError::Cancelled => FailureKind::Abandoned,
        }
    }

    /// A stable code for alerts, `last_error_code` and metrics.
    pub fn code(&self) -> String {
        match self {
            SyncError::Server(e) => e.code.clone(),
            SyncError::Store(_) => "database.error".into(),
            SyncError::LeaseLost => "lease.lost".into(),
            SyncError::Cancelled => "shutdown".into(),
        }
    }

    /// The back-off the server asked for (throttling), or the token endpoint's `Retry-After`.
    pub fn server_back_off(&self) -> Option<Duration> {
        match self {
            SyncError::Server(ServerError {
                failure: Failure::Throttled { back_off },
                ..
            }) => Some(*back_off),
            SyncError::Server(ServerError {
                failure: Failure::TokenEndpointUnavailable { retry_after },
                ..
            }) => *retry_after,
            _ => None,
        }
    }
}

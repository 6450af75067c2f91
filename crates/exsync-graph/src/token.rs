//! Where bearer tokens come from: a trait the caller implements.
//!
//! App-only OAuth (client secret or certificate assertion) lives outside this crate; the
//! daemon adapts its token source to [`TokenSource`]. The client asks for a token before each
//! request and reports a token Graph refused, so the source can drop it and fetch a fresh one.
//! Tokens are [`SecretString`]s: they never reach a log line or an error.

use futures::future::BoxFuture;
use secrecy::SecretString;
use std::time::Duration;

/// Hands out bearer tokens for one application (one client id in one tenant).
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// The application (client) id: Graph's Outlook limits count per application and
    /// mailbox, so clients of one application share their per-mailbox gates.
    fn client_id(&self) -> &str;

    /// A token valid for at least the next request (cached or freshly fetched).
    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenError>>;

    /// Graph answered 401 to `rejected`: forget it if it is still the cached one, so the next
    /// [`TokenSource::token`] fetches a new one (a token already replaced is left alone, so
    /// concurrent 401s cause one fetch, not one each).
    fn invalidate<'a>(&'a self, rejected: &'a SecretString) -> BoxFuture<'a, ()>;
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused the application's credentials (`invalid_client`,
    /// `unauthorized_client`, …): stop using them until they change.
    #[error("the token endpoint rejected the application ({code})")]
    Rejected {
        /// The OAuth error code, never the secret.
        code: String,
    },
    /// The token endpoint could not be reached, timed out, throttled or failed (retry later;
    /// after `retry_after` when it said so).
    #[error("the token endpoint is unavailable: {reason}")]
    Unavailable {
        /// What happened (bounded, no secret).
        reason: String,
        /// The endpoint's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The token endpoint answered something that is not a token.
    #[error("the token endpoint answered an unreadable response: {0}")]
    Malformed(String),
}

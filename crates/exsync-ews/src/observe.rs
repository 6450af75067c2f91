//! The observer hook: how whoever runs the client (the daemon, with its Prometheus metrics)
//! learns of every finished EWS request without this crate knowing of metrics.
//!
//! A leaf module: the client calls [`RequestObserver::request_finished`] once per request with
//! bounded values only (the operation name, a code label, the time taken), never a payload or a
//! secret. The default observer does nothing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One finished EWS request, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOutcome<'a> {
    /// The operation name (SOAPAction), e.g. `GetItem`.
    pub operation: &'static str,
    /// `NoError`, the EWS response code, `HTTP_nnn`, or the failure's class (bounded, at most
    /// 64 characters).
    pub code: &'a str,
    /// Time from the request's start to its judged answer (sign-in and retries included).
    pub elapsed: Duration,
}

/// Receives every finished request of the clients it is installed in (through
/// [`ClientOptions::observer`](crate::client::ClientOptions::observer)).
pub trait RequestObserver: Send + Sync {
    /// Called once per request, after its outcome is known; must not block.
    fn request_finished(&self, outcome: &RequestOutcome<'_>);
}

/// The default observer: records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl RequestObserver for NoObserver {
    fn request_finished(&self, _outcome: &RequestOutcome<'_>) {}
}

/// A shared observer, cloned into every client that should report to it.
#[derive(Clone)]
pub struct SharedObserver(pub Arc<dyn RequestObserver>);

impl SharedObserver {
    /// Wrap an observer for [`ClientOptions`](crate::client::ClientOptions).
    pub fn new(observer: impl RequestObserver + 'static) -> Self {
        SharedObserver(Arc::new(observer))
    }
}

impl Default for SharedObserver {
    fn default() -> Self {
        SharedObserver::new(NoObserver)
    }
}

impl fmt::Debug for SharedObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedObserver")
    }
}

impl std::ops::Deref for SharedObserver {
    type Target = dyn RequestObserver;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

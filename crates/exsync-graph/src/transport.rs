//! HTTP for Graph: one connection pool, bounded reads, no redirects, no secret in errors.
//!
//! Owns how a request travels (method, headers, body, timeouts, size cap) and what of the
//! answer is kept. It knows nothing of mailboxes, throttling or JSON: the client decides.

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use std::time::Duration;
use url::Url;

/// Transport limits.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: u64,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

pub use exsync_http::TransportError;

/// One request as the client built it.
#[derive(Debug)]
pub(crate) struct HttpRequest {
    pub method: Method,
    pub url: Url,
    /// Headers, the Authorization value marked sensitive.
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// All response headers (request-id, Retry-After, ETag, Location, …). Never logged whole.
    pub headers: HeaderMap,
    /// The body (at most `max_response_bytes`).
    pub body: Bytes,
}

/// A connection pool with the limits; cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    settings: TransportSettings,
}

impl Transport {
    /// A pool with reqwest's defaults and no trusted roots of its own (plain HTTP, tests); a
    /// daemon passes its trust store through [`Transport::from_builder`].
    pub fn new(settings: TransportSettings) -> Result<Transport, TransportError> {
        Self::from_builder(reqwest::Client::builder(), settings)
    }

    /// A pool from a caller-prepared builder (e.g. with the operator's CA bundle); timeouts,
    /// the user agent and "never follow a redirect" are applied on top. Redirects are refused
    /// because a redirect would carry the bearer token to wherever the answer points.
    pub fn from_builder(
        builder: reqwest::ClientBuilder,
        settings: TransportSettings,
    ) -> Result<Transport, TransportError> {
        let http = builder
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("exsync-graph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        Ok(Transport { http, settings })
    }

    /// The limits in force.
    pub fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    /// Send a request and read the whole (bounded) response.
    pub(crate) async fn send(&self, request: HttpRequest) -> Result<RawResponse, TransportError> {
        let host = request.url.host_str().unwrap_or("?").to_owned();
        let mut builder = self
            .http
            .request(request.method, request.url)
            .headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| exsync_http::failure(&host, &e))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body =
            exsync_http::read_bounded(&mut response, &host, self.settings.max_response_bytes)
                .await?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

//! HTTP for EWS: one shared connection pool, bounded response reads, no secret in errors.
//!
//! Owns how a SOAP envelope travels (POST, headers, timeouts, size cap). It knows nothing of
//! accounts, throttling or XML: the client above decides those.

use super::tls::{Trust, TrustSettings};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Transport limits, from `[http]`.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: u64,
    /// Which server certificates are trusted (system store, `http.ca_file`, or none checked).
    pub trust: TrustSettings,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            max_response_bytes: 64 * 1024 * 1024,
            trust: TrustSettings::default(),
        }
    }
}

pub use exsync_http::TransportError;

/// One SOAP POST.
#[derive(Debug)]
pub struct SoapPost<'a> {
    /// EWS endpoint.
    pub url: &'a Url,
    /// The envelope.
    pub body: Vec<u8>,
    /// Operation name, for the SOAPAction header.
    pub operation: &'static str,
    /// `X-AnchorMailbox` (the impersonated mailbox), for routing in Exchange.
    pub anchor_mailbox: Option<&'a str>,
    /// `Authorization` header value (never logged).
    pub authorization: Option<HeaderValue>,
    /// `client-request-id` sent (with `return-client-request-id: true`), so Exchange's logs
    /// and exsync's can be matched.
    pub client_request_id: Option<uuid::Uuid>,
}

/// What Exchange says about a request in its response headers, for support cases
/// ("Instrumenting client requests for EWS and REST in Exchange").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseIds {
    /// `request-id` (EWS) or `x-ms-request-id` (the Microsoft identity platform): the server's
    /// own id for the request.
    pub request_id: Option<String>,
    /// `X-BEServer`: the mailbox (back-end) server that handled it.
    pub be_server: Option<String>,
    /// `client-request-id` echoed back (sent when `return-client-request-id: true`).
    pub client_request_id: Option<String>,
}

impl ResponseIds {
    /// The ids from response headers (bounded, printable ASCII only).
    pub fn from_headers(headers: &http::HeaderMap) -> ResponseIds {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(100)
                        .collect::<String>()
                })
                .filter(|v| !v.is_empty())
        };
        ResponseIds {
            request_id: get("request-id").or_else(|| get("x-ms-request-id")),
            be_server: get("x-beserver"),
            client_request_id: get("client-request-id"),
        }
    }
}

/// One request as Exchange and exsync can both find it again: the id exsync sent, and what
/// the server answered (status and its own ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTrace {
    /// The `client-request-id` sent.
    pub client_request_id: uuid::Uuid,
    /// The HTTP status answered, if an answer came.
    pub status: Option<u16>,
    /// The answer was Exchange's own verdict on the request: a readable EWS response, a
    /// SOAP fault (whatever the HTTP status), or HTTP 401. A failure with this set is a
    /// definite answer; without it (a body-less 5xx, a cut answer) what the server did is
    /// unknown.
    pub ews_answer: bool,
    /// Exchange's (or the identity platform's) ids from the answer.
    pub ids: ResponseIds,
}

impl RequestTrace {
    /// A request sent with `client_request_id`, not answered (yet).
    pub fn new(client_request_id: uuid::Uuid) -> RequestTrace {
        RequestTrace {
            client_request_id,
            status: None,
            ews_answer: false,
            ids: ResponseIds::default(),
        }
    }
}

/// The two correlation headers every request carries.
pub fn correlation_headers(client_request_id: uuid::Uuid) -> [(&'static str, HeaderValue); 2] {
    // A hyphenated UUID is always a valid header value.
    let id = HeaderValue::from_str(&client_request_id.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    [
        ("client-request-id", id),
        ("return-client-request-id", HeaderValue::from_static("true")),
    ]
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Content-Type, if any.
    pub content_type: Option<String>,
    /// `WWW-Authenticate` values (NTLM challenges, Bearer errors).
    pub www_authenticate: Vec<String>,
    /// The body (at most `max_response_bytes`).
    pub body: Bytes,
    /// Exchange's correlation headers.
    pub ids: ResponseIds,
    /// `Retry-After`, in seconds (429 / 503 answers).
    pub retry_after: Option<Duration>,
}

/// `Retry-After` as delta-seconds (an HTTP date is not used by Exchange or Entra: ignored).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs.min(3600)))
}

/// A connection pool with the limits; cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    settings: TransportSettings,
    trust: Trust,
    http1_tls: Arc<rustls::ClientConfig>,
}

impl Transport {
    /// A shared pool for Basic and OAuth accounts (and the OAuth token endpoint); loads the
    /// trusted roots once, for this pool and for the NTLM connections built from it.
    pub fn new(settings: TransportSettings) -> Result<Transport, TransportError> {
        let trust =
            Trust::load(&settings.trust).map_err(|e| TransportError::Setup(e.to_string()))?;
        // HTTP/2 where the server offers it (IIS does over TLS), else HTTP/1.1.
        let pooled = trust
            .client_config(&[b"h2", b"http/1.1"])
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        // NTLM authenticates a connection: HTTP/1.1 only (IIS does not do it over HTTP/2).
        let http1_tls = Arc::new(
            trust
                .client_config(&[b"http/1.1"])
                .map_err(|e| TransportError::Setup(e.to_string()))?,
        );
        let http = Self::builder(&settings)
            .use_preconfigured_tls(pooled)
            .build()
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        Ok(Transport {
            http,
            settings,
            trust,
            http1_tls,
        })
    }

    /// A pool of its own with at most one idle connection, for connection-bound
    /// authentication: sequential requests reuse the one authenticated connection.
    pub fn dedicated(&self) -> Result<Transport, TransportError> {
        let http = Self::builder(&self.settings)
            .use_preconfigured_tls((*self.http1_tls).clone())
            .http1_only()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        Ok(Transport {
            http,
            settings: self.settings.clone(),
            trust: self.trust.clone(),
            http1_tls: self.http1_tls.clone(),
        })
    }

    fn builder(settings: &TransportSettings) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("exsync/", env!("CARGO_PKG_VERSION")))
    }

    /// The limits in force.
    pub fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    /// The trusted roots (for the start-up log line and `check-config`).
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The TLS configuration of HTTP/1.1-only connections (NTLM), same roots as the pool.
    pub fn http1_tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.http1_tls.clone()
    }

    /// POST an envelope and read the whole (bounded) response.
    pub async fn post(&self, post: SoapPost<'_>) -> Result<RawResponse, TransportError> {
        let host = post.url.host_str().unwrap_or("?").to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        if let Ok(action) = HeaderValue::from_str(&format!(
            "\"http://schemas.microsoft.com/exchange/services/2006/messages/{}\"",
            post.operation
        )) {
            headers.insert("SOAPAction", action);
        }
        if let Some(anchor) = post.anchor_mailbox {
            if let Ok(value) = HeaderValue::from_str(anchor) {
                headers.insert("X-AnchorMailbox", value);
            }
        }
        if let Some(mut authorization) = post.authorization {
            authorization.set_sensitive(true);
            headers.insert(AUTHORIZATION, authorization);
        }
        if let Some(id) = post.client_request_id {
            for (name, value) in correlation_headers(id) {
                headers.insert(name, value);
            }
        }
        let response = self
            .http
            .post(post.url.clone())
            .headers(headers)
            .body(post.body)
            .send()
            .await
            .map_err(|e| exsync_http::failure(&host, &e))?;
        self.read(response, &host).await
    }

    /// POST a form (OAuth token requests) and read the bounded response.
    pub async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        client_request_id: uuid::Uuid,
    ) -> Result<RawResponse, TransportError> {
        let host = url.host_str().unwrap_or("?").to_owned();
        let mut request = self.http.post(url.clone()).form(form);
        for (name, value) in correlation_headers(client_request_id) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| exsync_http::failure(&host, &e))?;
        self.read(response, &host).await
    }

    async fn read(
        &self,
        mut response: reqwest::Response,
        host: &str,
    ) -> Result<RawResponse, TransportError> {
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let www_authenticate = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let ids = ResponseIds::from_headers(response.headers());
        let retry_after = retry_after(response.headers());
        let body = exsync_http::read_bounded(&mut response, host, self.settings.max_response_bytes)
            .await?;
        Ok(RawResponse {
            status,
            content_type,
            www_authenticate,
            body,
            ids,
            retry_after,
        })
    }
}

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

/// Why an HTTP exchange failed below the EWS level.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// Connecting, sending or receiving failed.
    #[error("connection to {host} failed: {reason}")]
    Connect {
        /// Host contacted.
        host: String,
        /// What happened (no headers, no credentials).
        reason: String,
    },
    /// The request took longer than `http.request_timeout`.
    #[error("request to {host} timed out")]
    Timeout {
        /// Host contacted.
        host: String,
    },
    /// The response was larger than `http.max_response_bytes`.
    #[error("response larger than the {limit}-byte limit")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
}

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
        let response = self
            .http
            .post(post.url.clone())
            .headers(headers)
            .body(post.body)
            .send()
            .await
            .map_err(|e| classify(&host, &e))?;
        self.read(response, &host).await
    }

    /// POST a form (OAuth token requests) and read the bounded response.
    pub async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<RawResponse, TransportError> {
        let host = url.host_str().unwrap_or("?").to_owned();
        let response = self
            .http
            .post(url.clone())
            .form(form)
            .send()
            .await
            .map_err(|e| classify(&host, &e))?;
        self.read(response, &host).await
    }

    async fn read(
        &self,
        mut response: reqwest::Response,
        host: &str,
    ) -> Result<RawResponse, TransportError> {
        let limit = self.settings.max_response_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(TransportError::TooLarge { limit });
        }
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
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(host, &e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(TransportError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            content_type,
            www_authenticate,
            body: Bytes::from(body),
        })
    }
}

fn classify(host: &str, error: &reqwest::Error) -> TransportError {
    if error.is_timeout() {
        TransportError::Timeout {
            host: host.to_owned(),
        }
    } else {
        // reqwest's Display names the URL; keep only the kind of failure and its cause.
        let mut reason = if error.is_connect() {
            "could not connect".to_owned()
        } else if error.is_body() || error.is_decode() {
            "broken response body".to_owned()
        } else {
            "request failed".to_owned()
        };
        let mut source = std::error::Error::source(error);
        let mut depth = 0;
        while let Some(cause) = source {
            if depth == 0 {
                reason.push_str(": ");
            } else {
                reason.push_str(" / ");
            }
            reason.push_str(&cause.to_string().chars().take(120).collect::<String>());
            source = cause.source();
            depth += 1;
            if depth >= 3 {
                break;
            }
        }
        TransportError::Connect {
            host: host.to_owned(),
            reason,
        }
    }
}

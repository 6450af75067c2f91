//! The Graph client: one per application credential, shared by every mailbox it serves.
//!
//! Owns the rules that protect a mailbox and the application on Exchange Online:
//! - never more than [`MAILBOX_CONCURRENCY`] requests in flight per application + mailbox
//!   (shared by all clients of one application through the [`ThrottleRegistry`]), and never
//!   more than the caller's cap ([`ClientOptions::max_in_flight`], the profile's
//!   MaximumConcurrentConnections) for this client;
//! - a 429 or 503 sets the mailbox's not-before instant (`Retry-After` in seconds or as an
//!   HTTP-date, else exponential back-off) and no request leaves for that mailbox before it;
//! - a token endpoint that refuses the application is never asked again by this client (at
//!   most one refused sign-in per credential until the credential changes);
//! - `Prefer: IdType="ImmutableId"` on every request, a fresh `client-request-id` with
//!   `return-client-request-id: true`, Graph's `request-id` kept for logs and errors;
//! - paging links are followed only when they point into `graph_url` (a link elsewhere
//!   would carry the bearer token with it).
//!
//! Operations are typed functions in `ops/`; this module is the request machinery.

use crate::error::{
    classify, excerpt, Addressing, CallFacts, Correlation, DeltaRole, GraphError, GraphFailure,
    ServiceError,
};
use crate::model::{DeltaItem, DeltaPage, DeltaResponse};
use crate::throttle::{parse_retry_after, MailboxGate, ThrottleRegistry, MAILBOX_CONCURRENCY};
use crate::token::{TokenError, TokenSource};
use crate::transport::{HttpRequest, RawResponse, Transport};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use url::Url;
use uuid::Uuid;

/// Graph's global endpoint; national clouds have their own (e.g. `https://graph.microsoft.us/v1.0`).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

/// How a request is addressed and logged for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The mailbox's user principal name, SMTP address or object id (`/users/{mailbox}`).
    pub mailbox: String,
    /// Log request and response bodies of this mailbox at debug level.
    pub log_payloads: bool,
}

impl Target {
    /// A target for `mailbox` without payload logging.
    pub fn new(mailbox: impl Into<String>) -> Self {
        Self {
            mailbox: mailbox.into(),
            log_payloads: false,
        }
    }
}

/// One finished request, for metrics (the crate knows no metrics registry).
#[derive(Debug)]
pub struct RequestEvent<'a> {
    /// Operation label (`message.delta`, `message.send`, …).
    pub operation: &'static str,
    /// The mailbox.
    pub mailbox: &'a str,
    /// HTTP status, absent when nothing came back.
    pub status: Option<u16>,
    /// `OK`, Graph's code, `HTTP_nnn` or the failure's class (bounded).
    pub code: &'a str,
    /// Time from sending to the whole answer.
    pub elapsed: Duration,
    /// Correlation ids.
    pub correlation: &'a Correlation,
}

/// Receives every finished request (a metrics hook).
pub trait RequestObserver: Send + Sync + std::fmt::Debug {
    /// Called once per HTTP exchange, including the retried ones.
    fn observe(&self, event: &RequestEvent<'_>);
}

/// Behaviour knobs of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Most requests this client has in flight at once, over all mailboxes (the profile's
    /// MaximumConcurrentConnections). At least 1.
    pub max_in_flight: usize,
    /// A throttling wait at most this long is waited out inside the call and the request
    /// sent again; a longer one is returned as [`GraphFailure::Throttled`].
    pub max_inline_wait: Duration,
    /// How many times one request is sent again after a short throttling wait.
    pub inline_retries: u32,
    /// First back-off when a 429/503 has no usable `Retry-After`.
    pub back_off_initial: Duration,
    /// Longest back-off without `Retry-After`.
    pub back_off_max: Duration,
    /// `Prefer: odata.maxpagesize` on delta calls (Graph's default and maximum are
    /// UNVERIFIED, graph.md §2).
    pub page_size: u32,
    /// Metrics hook.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_in_flight: MAILBOX_CONCURRENCY,
            max_inline_wait: Duration::from_secs(2),
            inline_retries: 3,
            back_off_initial: Duration::from_secs(1),
            back_off_max: Duration::from_secs(120),
            page_size: 100,
            observer: None,
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// `graph_url` is not an absolute http(s) URL.
    #[error("graph_url '{0}' is not an absolute http(s) URL")]
    BadGraphUrl(String),
}

/// One request as an operation describes it.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub operation: &'static str,
    pub target: &'a Target,
    pub method: Method,
    pub url: Url,
    pub body: Option<Vec<u8>>,
    /// Preferences besides `IdType="ImmutableId"`.
    pub prefer: Vec<String>,
    pub if_match: Option<&'a str>,
    pub permission: &'static str,
    pub delta: DeltaRole,
    pub addressing: Addressing,
    /// Sending it twice is harmless (a 503 may then be retried inline; a 429 always may,
    /// because a throttled request was not carried out).
    pub idempotent: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        operation: &'static str,
        target: &'a Target,
        method: Method,
        url: Url,
        permission: &'static str,
    ) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::PUT | Method::DELETE | Method::PATCH
        );
        Self {
            operation,
            target,
            method,
            url,
            body: None,
            prefer: Vec::new(),
            if_match: None,
            permission,
            delta: DeltaRole::None,
            addressing: Addressing::Mailbox,
            idempotent,
        }
    }

    pub(crate) fn json<B: serde::Serialize>(mut self, body: &B) -> Result<Self, GraphError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| GraphFailure::malformed(&format!("cannot encode the request: {e}")))?;
        self.body = Some(bytes);
        Ok(self)
    }

    pub(crate) fn item(mut self) -> Self {
        self.addressing = Addressing::Item;
        self
    }

    pub(crate) fn delta(mut self, role: DeltaRole) -> Self {
        self.delta = role;
        self
    }

    pub(crate) fn prefer(mut self, preference: impl Into<String>) -> Self {
        self.prefer.push(preference.into());
        self
    }

    pub(crate) fn if_match(mut self, etag: Option<&'a str>) -> Self {
        self.if_match = etag;
        self
    }

    pub(crate) fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    fn facts(&self) -> CallFacts<'_> {
        CallFacts {
            mailbox: &self.target.mailbox,
            permission: self.permission,
            delta: self.delta,
            addressing: self.addressing,
            is_read: self.method == Method::GET,
            writes_item: self.body.is_some(),
        }
    }
}

/// A successful answer and its correlation ids.
#[derive(Debug)]
pub(crate) struct Answer {
    pub raw: RawResponse,
    pub correlation: Correlation,
}

/// Characters escaped in query values: everything but unreserved characters and the OData
/// punctuation Graph reads literally (`$ ' ( ) , : / @ !`); a space is `%20`, never `+`.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Quote a string literal for an OData `$filter` (`'` doubled).
pub(crate) fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A Microsoft Graph client for one application credential.
#[derive(Debug)]
pub struct GraphClient {
    base: Url,
    tokens: Arc<dyn TokenSource>,
    transport: Transport,
    throttle: Arc<ThrottleRegistry>,
    cap: Semaphore,
    options: ClientOptions,
    /// The token endpoint refused the application: its code, and nothing more is sent.
    rejected: Mutex<Option<String>>,
}

impl GraphClient {
    /// A client for `graph_url` (e.g. [`DEFAULT_GRAPH_URL`]) with tokens from `tokens`, over
    /// `transport`, sharing per-mailbox gates through `throttle` (one registry per process).
    pub fn new(
        graph_url: &str,
        tokens: Arc<dyn TokenSource>,
        transport: Transport,
        throttle: Arc<ThrottleRegistry>,
        options: ClientOptions,
    ) -> Result<Self, ClientSetupError> {
        let base = Url::parse(graph_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .filter(|u| u.query().is_none() && u.fragment().is_none())
            .ok_or_else(|| ClientSetupError::BadGraphUrl(excerpt(graph_url)))?;
        Ok(Self {
            base,
            tokens,
            transport,
            throttle,
            cap: Semaphore::new(options.max_in_flight.max(1)),
            options,
            rejected: Mutex::new(None),
        })
    }

    /// The Graph base URL in use.
    pub fn graph_url(&self) -> &Url {
        &self.base
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Whether the token endpoint refused this client's application (it sends nothing more).
    pub fn credentials_rejected(&self) -> bool {
        self.rejected_code().is_some()
    }

    /// How long `mailbox` must still wait after a throttled answer, if at all.
    pub fn back_off_remaining(&self, mailbox: &str) -> Option<Duration> {
        self.throttle
            .back_off_remaining(self.tokens.client_id(), mailbox)
    }

    fn rejected_code(&self) -> Option<String> {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `{graph_url}/users/{mailbox}/{segments…}`, each segment percent-encoded.
    pub(crate) fn user_url(&self, mailbox: &str, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .push("users")
                .push(mailbox)
                .extend(segments);
        }
        url
    }

    /// `{graph_url}/{segments…}`.
    pub(crate) fn root_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `url` with the query options, values escaped for OData.
    pub(crate) fn with_query(mut url: Url, pairs: &[(&str, String)]) -> Url {
        if pairs.is_empty() {
            return url;
        }
        let query = pairs
            .iter()
            .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
        url
    }

    /// A paging link from Graph, accepted only when it points into `graph_url`.
    pub(crate) fn link(&self, link: &str) -> Result<Url, GraphError> {
        let url = Url::parse(link)
            .map_err(|_| GraphFailure::malformed("a paging link Graph sent is not a URL"))?;
        let same_origin = url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default();
        let base_path = self.base.path().trim_end_matches('/');
        let inside = url.path() == base_path || url.path().starts_with(&format!("{base_path}/"));
        if !(same_origin && inside) {
            return Err(GraphFailure::malformed(
                "a paging link points outside graph_url and was not followed (it would carry the token)",
            )
            .into());
        }
        Ok(url)
    }

    /// Send `call` (waiting for the mailbox's gate, the client's cap and any throttling wait)
    /// and return the successful answer, or the classified failure.
    pub(crate) async fn execute(&self, call: &Call<'_>) -> Result<Answer, GraphError> {
        let gate = self
            .throttle
            .gate(self.tokens.client_id(), &call.target.mailbox);
        let mut throttle_retries = 0;
        let mut token_refreshed = false;
        loop {
            if let Some(code) = self.rejected_code() {
                return Err(GraphFailure::Token(TokenError::Rejected { code }).into());
            }
            // Mailbox first, then the cap: a request waiting for its busy mailbox never holds
            // one of the cap's permits that other mailboxes could use.
            let _mailbox_permit = gate
                .permits
                .acquire()
                .await
                .map_err(|_| GraphFailure::malformed("mailbox gate closed"))?;
            let _cap_permit = match self.wait_until_allowed(&gate, call).await? {
                Some(permit) => permit,
                None => continue,
            };
            let token = match self.tokens.token().await {
                Ok(token) => token,
                Err(error) => {
                    if let TokenError::Rejected { code } = &error {
                        *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(code.clone());
                    }
                    return Err(GraphFailure::Token(error).into());
                }
            };
            let client_request_id = Uuid::new_v4();
            let request = self.http_request(call, &token, client_request_id);
            if call.target.log_payloads {
                if let Some(body) = &call.body {
                    tracing::debug!(
                        operation = call.operation,
                        mailbox = %call.target.mailbox,
                        %client_request_id,
                        request = %String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]),
                        "Graph request payload"
                    );
                }
            }
            let started = Instant::now();
            let raw = match self.transport.send(request).await {
                Ok(raw) => raw,
                Err(error) => {
                    let correlation = Correlation {
                        client_request_id,
                        request_id: None,
                        date: None,
                        diagnostic: None,
                    };
                    self.observe(call, None, "transport", started, &correlation);
                    tracing::warn!(
                        operation = call.operation,
                        mailbox = %call.target.mailbox,
                        %client_request_id,
                        error = %error,
                        "Graph request failed"
                    );
                    return Err(GraphError::new(error.into(), Some(correlation)));
                }
            };
            let correlation = correlation_of(&raw, client_request_id);
            let status = raw.status.as_u16();
            if call.target.log_payloads {
                tracing::debug!(
                    operation = call.operation,
                    mailbox = %call.target.mailbox,
                    %client_request_id,
                    request_id = correlation.request_id.as_deref().unwrap_or(""),
                    status,
                    response = %String::from_utf8_lossy(&raw.body[..raw.body.len().min(64 * 1024)]),
                    "Graph response payload"
                );
            }
            if raw.status.is_success() {
                gate.succeeded();
                self.observe(call, Some(status), "OK", started, &correlation);
                tracing::debug!(
                    operation = call.operation,
                    mailbox = %call.target.mailbox,
                    %client_request_id,
                    request_id = correlation.request_id.as_deref().unwrap_or(""),
                    status,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Graph request"
                );
                return Ok(Answer { raw, correlation });
            }
            let code = ServiceError::parse(&raw.body)
                .and_then(|s| s.codes.last().cloned())
                .unwrap_or_else(|| format!("HTTP_{status}"));
            self.observe(call, Some(status), &code, started, &correlation);
            tracing::warn!(
                operation = call.operation,
                mailbox = %call.target.mailbox,
                %client_request_id,
                request_id = correlation.request_id.as_deref().unwrap_or(""),
                date = correlation.date.as_deref().unwrap_or(""),
                status,
                code = %code,
                "Graph request refused"
            );
            if status == 401 && !token_refreshed {
                // An expired or revoked token: ask the source for a new one, once.
                self.tokens.invalidate(&token).await;
                token_refreshed = true;
                continue;
            }
            if status == 429 || status == 503 {
                // GD-THR, GD-BP: wait Retry-After (else back off exponentially); treat 503
                // like 429. The wait is recorded on the mailbox's gate before anything else
                // can be sent to it.
                let retry_after = raw
                    .headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let wait = gate.throttled(
                    retry_after,
                    self.options.back_off_initial,
                    self.options.back_off_max,
                );
                let may_resend = status == 429 || call.idempotent;
                if may_resend
                    && wait <= self.options.max_inline_wait
                    && throttle_retries < self.options.inline_retries
                {
                    throttle_retries += 1;
                    continue;
                }
                return Err(GraphError::new(
                    GraphFailure::Throttled {
                        mailbox: call.target.mailbox.clone(),
                        code,
                        retry_after: wait,
                    },
                    Some(correlation),
                ));
            }
            let failure = classify(status, &raw.body, &call.facts());
            return Err(GraphError::new(failure, Some(correlation)));
        }
    }

    /// Wait out the mailbox's throttling (if short) and take a cap permit; `None` when a new
    /// wait appeared meanwhile (the caller loops), an error when the wait is too long to sit out.
    async fn wait_until_allowed(
        &self,
        gate: &MailboxGate,
        call: &Call<'_>,
    ) -> Result<Option<tokio::sync::SemaphorePermit<'_>>, GraphError> {
        if let Some(wait) = gate.remaining() {
            if wait > self.options.max_inline_wait {
                return Err(GraphFailure::Throttled {
                    mailbox: call.target.mailbox.clone(),
                    code: "waiting".to_owned(),
                    retry_after: wait,
                }
                .into());
            }
            tokio::time::sleep(wait).await;
            return Ok(None);
        }
        let permit = self
            .cap
            .acquire()
            .await
            .map_err(|_| GraphFailure::malformed("client cap closed"))?;
        // A throttled answer may have arrived while this request waited for the cap.
        if gate.remaining().is_some() {
            return Ok(None);
        }
        Ok(Some(permit))
    }

    fn http_request(
        &self,
        call: &Call<'_>,
        token: &SecretString,
        client_request_id: Uuid,
    ) -> HttpRequest {
        let mut headers = HeaderMap::new();
        if let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        {
            bearer.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, bearer);
        }
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        // One Prefer header, preferences comma-separated (RFC 7240 `1#preference`; what
        // evolution-ews sends, EVO-CONN). IdType applies only to the request carrying it (GD-IMM).
        let mut prefer = vec!["IdType=\"ImmutableId\"".to_owned()];
        prefer.extend(call.prefer.iter().cloned());
        if let Ok(value) = HeaderValue::from_str(&prefer.join(", ")) {
            headers.insert(HeaderName::from_static("prefer"), value);
        }
        if let Ok(value) = HeaderValue::from_str(&client_request_id.to_string()) {
            headers.insert(HeaderName::from_static("client-request-id"), value);
        }
        headers.insert(
            HeaderName::from_static("return-client-request-id"),
            HeaderValue::from_static("true"),
        );
        if let Some(etag) = call.if_match.and_then(|e| HeaderValue::from_str(e).ok()) {
            headers.insert(reqwest::header::IF_MATCH, etag);
        }
        let body = match (&call.body, &call.method) {
            (Some(body), _) => {
                headers.insert(
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Some(body.clone())
            }
            // `POST …/send` wants `Content-Length: 0` (GD-SEND); HTTP/1 clients leave it out
            // for an empty body unless told, and IIS front ends answer 411 without it.
            (None, &Method::POST) => {
                headers.insert(
                    reqwest::header::CONTENT_LENGTH,
                    HeaderValue::from_static("0"),
                );
                Some(Vec::new())
            }
            (None, _) => None,
        };
        HttpRequest {
            method: call.method.clone(),
            url: call.url.clone(),
            headers,
            body,
        }
    }

    fn observe(
        &self,
        call: &Call<'_>,
        status: Option<u16>,
        code: &str,
        started: Instant,
        correlation: &Correlation,
    ) {
        if let Some(observer) = &self.options.observer {
            observer.observe(&RequestEvent {
                operation: call.operation,
                mailbox: &call.target.mailbox,
                status,
                code,
                elapsed: started.elapsed(),
                correlation,
            });
        }
    }

    /// Send `call` and read a JSON answer.
    pub(crate) async fn fetch<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
    ) -> Result<T, GraphError> {
        let answer = self.execute(call).await?;
        serde_json::from_slice(&answer.raw.body).map_err(|e| {
            GraphError::new(
                GraphFailure::malformed(&format!("{} answer: {e}", call.operation)),
                Some(answer.correlation),
            )
        })
    }

    /// Send `call` whose success has no body (202, 204).
    pub(crate) async fn fetch_empty(&self, call: &Call<'_>) -> Result<(), GraphError> {
        self.execute(call).await.map(|_| ())
    }

    /// Read one delta page of `T` from `call`.
    pub(crate) async fn delta_page<T: DeltaItem>(
        &self,
        call: &Call<'_>,
    ) -> Result<DeltaPage<T>, GraphError> {
        let answer = self.execute(call).await?;
        let response: DeltaResponse<T> = serde_json::from_slice(&answer.raw.body).map_err(|e| {
            GraphError::new(
                GraphFailure::malformed(&format!("{} page: {e}", call.operation)),
                Some(answer.correlation.clone()),
            )
        })?;
        response.into_page().ok_or_else(|| {
            GraphError::new(
                GraphFailure::malformed(&format!(
                    "{} page has neither @odata.nextLink nor @odata.deltaLink",
                    call.operation
                )),
                Some(answer.correlation),
            )
        })
    }

    /// `Prefer: odata.maxpagesize=N` for delta calls (paging by `$top` misbehaves, I-DQ7946).
    pub(crate) fn page_size_preference(&self) -> String {
        format!("odata.maxpagesize={}", self.options.page_size.max(1))
    }
}

fn correlation_of(raw: &RawResponse, client_request_id: Uuid) -> Correlation {
    let header = |name: &str| {
        raw.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(excerpt)
    };
    Correlation {
        client_request_id,
        request_id: header("request-id").or_else(|| {
            // Error bodies repeat it in innerError; success bodies are not parsed for it.
            (!raw.status.is_success())
                .then(|| ServiceError::parse(&raw.body).and_then(|s| s.request_id))
                .flatten()
        }),
        date: header("date"),
        diagnostic: header("x-ms-ags-diagnostic"),
    }
}

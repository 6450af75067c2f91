//! The client side of streaming notifications: Subscribe and Unsubscribe with the affinity
//! headers a subscription group needs, and GetStreamingEvents read as a stream of envelopes.
//!
//! Owns how a group keeps its subscriptions and its connection on one Exchange server:
//! every request names the group's anchor mailbox (`X-AnchorMailbox`), Subscribe asks for
//! affinity (`X-PreferServerAffinity: true`), and the `X-BackEndOverrideCookie` Exchange
//! answers is sent back with every later request of the group. The account rules of the
//! client hold here too: refused credentials send nothing, a back-off is honoured, answers
//! prove or refuse the credentials. Basic and OAuth only: NTLM authenticates a connection,
//! which a long-lived response would hold for its whole life.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use secrecy::ExposeSecret;

use super::{EwsAuth, EwsClient, EwsOperation, Target};
use crate::error::EwsError;
use crate::ops::get_streaming_events::{EnvelopeSplitter, GetStreamingEventsResponse};
use crate::ops::{
    GetStreamingEventsRequest, SubscribeRequest, SubscribeResponse, UnsubscribeRequest,
    UnsubscribeResponse,
};
use crate::soap::RequestHeader;
use crate::transport::{correlation_headers, TransportError};

/// The code of the error returned when the client's authentication cannot stream (NTLM).
pub const STREAMING_UNSUPPORTED: &str = "exsync.streaming_unsupported_auth";

/// Largest single envelope accepted from a stream (notifications for 200 subscriptions).
const MAX_STREAM_ENVELOPE: usize = 8 * 1024 * 1024;

/// What keeps a subscription group on one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affinity {
    /// The group's anchor mailbox, sent as `X-AnchorMailbox` with every request.
    pub anchor_mailbox: String,
    /// The `X-BackEndOverrideCookie` value Exchange answered, once it has.
    pub back_end_cookie: Option<String>,
}

impl Affinity {
    /// A group anchored on `mailbox`, no cookie yet.
    pub fn anchored(mailbox: impl Into<String>) -> Self {
        Affinity {
            anchor_mailbox: mailbox.into(),
            back_end_cookie: None,
        }
    }
}

/// An open GetStreamingEvents response, read envelope by envelope.
pub struct EventStream {
    response: reqwest::Response,
    splitter: EnvelopeSplitter,
    ready: VecDeque<Vec<u8>>,
    limits: crate::xml::XmlLimits,
    host: String,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventStream({})", self.host)
    }
}

impl EventStream {
    /// The next envelope; `None` when the server ended the response.
    pub async fn next(&mut self) -> Option<Result<GetStreamingEventsResponse, EwsError>> {
        loop {
            if let Some(bytes) = self.ready.pop_front() {
                return Some(GetStreamingEventsResponse::parse(&bytes, &self.limits));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => match self.splitter.push(&chunk) {
                    Ok(envelopes) => self.ready.extend(envelopes),
                    Err(e) => {
                        return Some(Err(EwsError::Malformed {
                            excerpt: crate::error::excerpt(&e.to_string()),
                        }))
                    }
                },
                Ok(None) => return None,
                Err(e) => {
                    return Some(Err(EwsError::Transport(TransportError::Connect {
                        host: self.host.clone(),
                        reason: format!(
                            "the event stream broke: {}",
                            std::error::Error::source(&e)
                                .map(|s| s.to_string())
                                .unwrap_or_else(|| "connection closed".into())
                                .chars()
                                .take(120)
                                .collect::<String>()
                        ),
                    })))
                }
            }
        }
    }
}

impl EwsClient {
    /// Subscribe `target` with the group's affinity; a cookie Exchange answers is kept in
    /// `affinity` for the group's later requests.
    pub async fn subscribe_in_group(
        &self,
        target: &Target,
        request: &SubscribeRequest,
        affinity: &mut Affinity,
    ) -> Result<SubscribeResponse, EwsError> {
        let (response, headers) = self
            .grouped_call(Some(target), request, affinity, true)
            .await?;
        if let Some(cookie) = back_end_cookie(&headers) {
            affinity.back_end_cookie = Some(cookie);
        }
        let response = response?;
        Ok(response)
    }

    /// Unsubscribe, on the group's server.
    pub async fn unsubscribe_in_group(
        &self,
        target: &Target,
        request: &UnsubscribeRequest,
        affinity: &Affinity,
    ) -> Result<UnsubscribeResponse, EwsError> {
        let (response, _) = self
            .grouped_call(Some(target), request, affinity, false)
            .await?;
        response
    }

    /// Open GetStreamingEvents for the group (as `target`, the anchor, when impersonating):
    /// the stream of envelopes, or why it could not be opened.
    pub async fn open_event_stream(
        &self,
        target: Option<&Target>,
        request: &GetStreamingEventsRequest,
        affinity: &Affinity,
    ) -> Result<EventStream, EwsError> {
        self.ready_to_send()?;
        let header = self.header_for(target);
        let body = request.to_xml(&header);
        let started = Instant::now();
        let response = self
            .send_streaming("GetStreamingEvents", body, affinity, false)
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let e = self.judge_credentials::<()>(Err(e), target).unwrap_err();
                self.count("GetStreamingEvents", Some(&e), started);
                return Err(e);
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            let error = EwsError::from_http_status(status.as_u16(), &body);
            let error = self
                .judge_credentials::<()>(Err(error), target)
                .unwrap_err();
            self.note_busy(&error);
            self.count("GetStreamingEvents", Some(&error), started);
            return Err(error);
        }
        let _ = self.judge_credentials(Ok(()), target);
        self.count("GetStreamingEvents", None, started);
        Ok(EventStream {
            host: self.url.host_str().unwrap_or("?").to_owned(),
            response,
            splitter: EnvelopeSplitter::new(MAX_STREAM_ENVELOPE),
            ready: VecDeque::new(),
            limits: self.options.limits.clone(),
        })
    }

    fn header_for(&self, target: Option<&Target>) -> RequestHeader {
        match target {
            Some(t) if t.impersonate => {
                RequestHeader::impersonating(self.options.version, t.mailbox.clone())
            }
            _ => RequestHeader::new(self.options.version),
        }
    }

    /// Refused credentials and a running back-off stop a request before it is sent.
    fn ready_to_send(&self) -> Result<(), EwsError> {
        if self.credentials_rejected() {
            return Err(EwsError::Unauthorized);
        }
        if let EwsAuth::Ntlm(_) = self.auth {
            return Err(EwsError::Request {
                code: STREAMING_UNSUPPORTED.into(),
                message: "streaming notifications need Basic or OAuth authentication".into(),
            });
        }
        if let Some(wait) = self.back_off_remaining() {
            return Err(EwsError::ServerBusy { back_off: wait });
        }
        Ok(())
    }

    fn note_busy(&self, error: &EwsError) {
        if let EwsError::ServerBusy { back_off } = error {
            let mut state = self.lock();
            let until = Instant::now() + *back_off;
            state.not_before = Some(state.not_before.map_or(until, |t| t.max(until)));
        }
    }

    fn count(&self, operation: &'static str, error: Option<&EwsError>, started: Instant) {
        let code = match error {
            None => "NoError".to_owned(),
            Some(e) => super::error_label(e),
        };
        self.options
            .observer
            .request_finished(&crate::observe::RequestOutcome {
                operation,
                code: &code,
                elapsed: started.elapsed(),
            });
    }

    /// One Subscribe or Unsubscribe with the group's headers; the parsed response (or the
    /// error it means) and the response headers.
    async fn grouped_call<O: EwsOperation>(
        &self,
        target: Option<&Target>,
        request: &O,
        affinity: &Affinity,
        prefer_affinity: bool,
    ) -> Result<(Result<O::Response, EwsError>, HeaderMap), EwsError> {
        self.ready_to_send()?;
        let header = self.header_for(target);
        let body = request.envelope(&header);
        let started = Instant::now();
        let outcome = async {
            let response = self
                .send_streaming(O::NAME, body, affinity, prefer_affinity)
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = read_bounded(response, self.transport.settings().max_response_bytes)
                .await
                .map_err(|e| {
                    EwsError::Transport(TransportError::Connect {
                        host: self.url.host_str().unwrap_or("?").to_owned(),
                        reason: e,
                    })
                })?;
            if !status.is_success() {
                return Err(EwsError::from_http_status(status.as_u16(), &bytes));
            }
            let parsed = O::parse(&bytes, &self.options.limits)?;
            if let Some(back_off) = O::busy(&parsed) {
                return Err(EwsError::ServerBusy { back_off });
            }
            Ok((parsed, headers))
        }
        .await;
        let outcome = self.judge_credentials(outcome, target);
        if let Err(e) = &outcome {
            self.note_busy(e);
        }
        self.count(O::NAME, outcome.as_ref().err(), started);
        match outcome {
            Ok((parsed, headers)) => Ok((Ok(parsed), headers)),
            Err(e) => Err(e),
        }
    }

    /// POST for the streaming operations: no whole-request timeout (the event stream lasts
    /// minutes), the group's affinity headers, the client's authentication.
    async fn send_streaming(
        &self,
        operation: &'static str,
        body: String,
        affinity: &Affinity,
        prefer_affinity: bool,
    ) -> Result<reqwest::Response, EwsError> {
        let http = match self.streaming_http.get() {
            Some(http) => http.clone(),
            None => {
                let made = streaming_http(&self.transport)?;
                self.streaming_http.get_or_init(|| made).clone()
            }
        };
        let host = self.url.host_str().unwrap_or("?").to_owned();
        for attempt in 0..2 {
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/xml; charset=utf-8"),
            );
            if let Ok(action) = HeaderValue::from_str(&format!(
                "\"http://schemas.microsoft.com/exchange/services/2006/messages/{operation}\""
            )) {
                headers.insert("SOAPAction", action);
            }
            if let Ok(anchor) = HeaderValue::from_str(&affinity.anchor_mailbox) {
                headers.insert("X-AnchorMailbox", anchor);
            }
            if prefer_affinity {
                headers.insert("X-PreferServerAffinity", HeaderValue::from_static("true"));
            }
            if let Some(cookie) = &affinity.back_end_cookie {
                if let Ok(v) = HeaderValue::from_str(&format!("X-BackEndOverrideCookie={cookie}")) {
                    headers.insert(COOKIE, v);
                }
            }
            for (name, value) in correlation_headers(uuid::Uuid::new_v4()) {
                headers.insert(name, value);
            }
            let mut authorization = match &self.auth {
                EwsAuth::Basic { username, password } => {
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose_secret()));
                    HeaderValue::from_str(&format!("Basic {token}")).ok()
                }
                EwsAuth::OAuth(source) => {
                    let token = source.token(&self.transport).await?;
                    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).ok()
                }
                EwsAuth::Ntlm(_) => None,
            };
            if let Some(value) = authorization.as_mut() {
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value.clone());
            }
            let response = http
                .post(self.url.clone())
                .headers(headers)
                .body(body.clone())
                .send()
                .await
                .map_err(|e| {
                    EwsError::Transport(if e.is_timeout() {
                        TransportError::Timeout { host: host.clone() }
                    } else {
                        TransportError::Connect {
                            host: host.clone(),
                            reason: if e.is_connect() {
                                "could not connect".into()
                            } else {
                                "request failed".into()
                            },
                        }
                    })
                })?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                if let EwsAuth::OAuth(source) = &self.auth {
                    // An expired or revoked token: a new one, one more try.
                    source.invalidate().await;
                    continue;
                }
            }
            return Ok(response);
        }
        Err(EwsError::Unauthorized)
    }
}

/// An HTTP client for streaming requests: the transport's trust and connect timeout, no
/// whole-request timeout.
fn streaming_http(transport: &crate::transport::Transport) -> Result<reqwest::Client, EwsError> {
    let tls = transport
        .trust()
        .client_config(&[b"http/1.1"])
        .map_err(|e| EwsError::Transport(TransportError::Setup(e.to_string())))?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(transport.settings().connect_timeout)
        .http1_only()
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("exsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| EwsError::Transport(TransportError::Setup(e.to_string())))?;
    Ok(client)
}

async fn read_bounded(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "broken response body".to_owned())?
    {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(format!("response larger than the {limit}-byte limit"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `X-BackEndOverrideCookie` value among `Set-Cookie` headers.
fn back_end_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.trim().strip_prefix("X-BackEndOverrideCookie="))
        .map(|v| {
            v.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(200)
                .collect()
        })
        .find(|v: &String| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_end_cookie_is_read_from_set_cookie() {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("other=1; path=/"));
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("X-BackEndOverrideCookie=MBX02~abc; path=/"),
        );
        assert_eq!(back_end_cookie(&headers).as_deref(), Some("MBX02~abc"));
        assert_eq!(back_end_cookie(&HeaderMap::new()), None);
    }
}

//! The HTTP side: binding (plain or TLS with a self-signed certificate made at start), and the
//! EWS endpoint's pipeline: size limit, sign-in, concurrency budget, throttling and back-off
//! bookkeeping, latency and fault injection, dispatch to `ews_ops`, and the request log.
//!
//! Owns how answers travel (status codes, headers, fault shapes); the per-operation rules live
//! in `ews_ops`, the `/_fake/` API in `routes`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::auth::{self, AuthError};
use super::ews_ops::{self, Answer};
use super::state::{FakeState, RequestLogEntry};
use super::traffic::Direction;
use super::{BusyShape, FakeError, OneShotFault};
use exsync_ews::ops::{error_response_xml, parse_request, EwsRequest};
use exsync_ews::soap::SoapFault;
use exsync_ews::types::ResponseCode;

/// A started server.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// Bind and serve (HTTPS with `tls`, else plain HTTP) until `shutdown` is cancelled.
pub(crate) async fn serve(
    listen: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    state: Arc<FakeState>,
    extra: Option<axum::Router>,
    shutdown: CancellationToken,
) -> Result<Running, FakeError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| FakeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let app = match extra {
        // The fake Graph (`/v1.0`, `/_fake/graph/`) beside EWS, over the same state.
        Some(extra) => super::routes::router(state).merge(extra),
        None => super::routes::router(state),
    }
    .into_make_service_with_connect_info::<ConnId>();
    let stop = shutdown.clone();
    if let Some(config) = tls {
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let connections = Connections::start(listener, addr, shutdown, move |stream| {
            let acceptor = acceptor.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                    .await
                    .ok()?
                    .ok()
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(connections, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Running { addr, task })
    } else {
        let connections =
            Connections::start(
                listener,
                addr,
                shutdown,
                |stream| async move { Some(stream) },
            );
        let task = tokio::spawn(async move {
            let _ = axum::serve(connections, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Running { addr, task })
    }
}

/// One accepted connection: the peer and a number never reused, because NTLM authenticates
/// a connection (a peer port can be reused by a later connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnId {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Unique per accepted connection.
    pub(crate) id: u64,
}

/// Accepts TCP connections, prepares them (TLS handshake or nothing) concurrently, and hands
/// them to axum with a [`ConnId`] (one slow handshake cannot block the others).
struct Connections<I> {
    addr: SocketAddr,
    rx: mpsc::Receiver<(I, ConnId)>,
}

impl<I: Send + 'static> Connections<I> {
    fn start<F, Fut>(
        listener: TcpListener,
        addr: SocketAddr,
        shutdown: CancellationToken,
        prepare: F,
    ) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Option<I>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut next_id = 0u64;
            loop {
                let accepted = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                next_id += 1;
                let conn = ConnId { peer, id: next_id };
                let ready = prepare(stream);
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(io) = ready.await {
                        let _ = tx.send((io, conn)).await;
                    }
                });
            }
        });
        Connections { addr, rx }
    }
}

impl<I> axum::serve::Listener for Connections<I>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Io = I;
    type Addr = ConnId;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnId {
            peer: self.addr,
            id: 0,
        })
    }
}

impl<I> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Connections<I>>>
    for ConnId
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Connections<I>>) -> Self {
        *stream.remote_addr()
    }
}

/// Counts a request in flight (globally, or for one account) for as long as it lives.
struct InFlight {
    state: Arc<FakeState>,
    account: Option<String>,
    started: Instant,
}

impl InFlight {
    fn global(state: &Arc<FakeState>) -> Self {
        let mut inner = state.lock();
        inner.stats.in_flight += 1;
        inner.stats.peak = inner.stats.peak.max(inner.stats.in_flight);
        InFlight {
            state: state.clone(),
            account: None,
            started: Instant::now(),
        }
    }

    /// Enter for an account; returns the guard and how many requests it now has in flight.
    fn account(state: &Arc<FakeState>, username: &str) -> (Self, u32) {
        let mut inner = state.lock();
        let count = match inner.account_mut(username) {
            Some(a) => {
                a.in_flight += 1;
                a.in_flight
            }
            None => 1,
        };
        let stats = inner.account_stats(username);
        stats.requests += 1;
        stats.peak_concurrent_requests = stats.peak_concurrent_requests.max(u64::from(count));
        (
            InFlight {
                state: state.clone(),
                account: Some(username.to_owned()),
                started: Instant::now(),
            },
            count,
        )
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.state.lock();
        match &self.account {
            None => inner.stats.in_flight = inner.stats.in_flight.saturating_sub(1),
            Some(name) => {
                if let Some(a) = inner.account_mut(name) {
                    a.in_flight = a.in_flight.saturating_sub(1);
                }
                let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let stats = inner.account_stats(name);
                stats.request_micros = stats.request_micros.saturating_add(micros);
            }
        }
    }
}

/// A SOAP answer, recorded for the traffic check when the fake records.
fn soap(state: &FakeState, status: StatusCode, body: String) -> Response {
    if let Some(traffic) = &state.traffic {
        traffic.record(Direction::Response, body.as_bytes());
    }
    xml(status, body)
}

fn xml(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn html(status: StatusCode, title: &str) -> Response {
    (
        status,
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html"),
        )],
        format!("<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"),
    )
        .into_response()
}

/// HTTP 401 with the schemes the fake accepts, as IIS sends it.
fn unauthorized(e: &AuthError) -> Response {
    let mut response = html(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    let h = response.headers_mut();
    if let AuthError::NtlmChallenge(challenge) = e {
        if let Ok(v) = HeaderValue::from_str(&exsync_ews::ntlm::to_header(challenge)) {
            h.append(http::header::WWW_AUTHENTICATE, v);
        }
        return response;
    }
    h.append(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("NTLM"),
    );
    h.append(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"fake-exchange\""),
    );
    h.append(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(if *e == AuthError::BadToken {
            "Bearer error=\"invalid_token\""
        } else {
            "Bearer"
        }),
    );
    response
}

fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::thread_rng().gen::<f64>() < rate
}

/// The mailbox (back-end) server the fake names in `X-BEServer` once a request is signed in.
pub(crate) const BE_SERVER: &str = "FAKEEXCH-MBX01.contoso.test";

/// The log line being built for one request.
struct LogLine {
    operation: Option<String>,
    account: Option<String>,
    impersonated: Option<String>,
    /// The `client-request-id` sent, echoed when `return-client-request-id: true`.
    client_request_id: Option<String>,
    echo_client_request_id: bool,
    /// This request's `request-id`.
    request_id: String,
}

impl LogLine {
    fn new(headers: &HeaderMap) -> LogLine {
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(100).collect());
        let echo_client_request_id = headers
            .get("return-client-request-id")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        LogLine {
            operation: None,
            account: None,
            impersonated: None,
            client_request_id,
            echo_client_request_id,
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Add Exchange's correlation headers (`request-id` always, `X-BEServer` once signed in,
    /// `client-request-id` when asked), record the request, and answer.
    fn finish(self, state: &FakeState, mut response: Response, code: Option<&str>) -> Response {
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.insert("request-id", v);
        }
        if self.account.is_some() {
            headers.insert("X-BEServer", HeaderValue::from_static(BE_SERVER));
        }
        if self.echo_client_request_id {
            if let Some(v) = self
                .client_request_id
                .as_deref()
                .and_then(|id| HeaderValue::from_str(id).ok())
            {
                headers.insert("client-request-id", v);
            }
        }
        state.lock().record(RequestLogEntry {
            operation: self.operation,
            account: self.account,
            impersonated: self.impersonated,
            status: response.status().as_u16(),
            response_code: code.map(str::to_owned),
            client_request_id: self.client_request_id,
            request_id: self.request_id,
        });
        response
    }
}

/// POST /EWS/Exchange.asmx.
pub(crate) async fn ews_endpoint(
    State(state): State<Arc<FakeState>>,
    axum::extract::ConnectInfo(conn): axum::extract::ConnectInfo<ConnId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _global = InFlight::global(&state);
    let mut line = LogLine::new(&headers);
    let bytes = match http_body_util::Limited::new(body, state.max_request_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return line.finish(
                &state,
                html(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "413 Request Entity Too Large",
                ),
                None,
            );
        }
        Err(_) => {
            return line.finish(
                &state,
                html(StatusCode::BAD_REQUEST, "400 Bad Request"),
                None,
            )
        }
    };
    if let Some(traffic) = &state.traffic {
        // Every request exsync sends is checked against the schema after the suite.
        let from_exsync = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|agent| agent.starts_with("exsync/"));
        if from_exsync {
            traffic.record(Direction::Request, &bytes);
        }
    }
    let signed_in = auth::authenticate(&mut state.lock(), &headers, conn.id);
    let who = match signed_in {
        Ok(who) => who,
        Err(e) => {
            // A refused sign-in takes its round trip too (clients see it no sooner).
            let latency = state.faults().latency_ms;
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            return line.finish(&state, unauthorized(&e), None);
        }
    };
    line.account = Some(who.username.clone());
    let (_account, in_flight) = InFlight::account(&state, &who.username);

    let (header, request) = match parse_request(&bytes, &state.xml_limits) {
        Ok(parsed) => parsed,
        Err(e) => {
            let fault = e.to_fault();
            let code = fault.response_code.as_ref().map(|c| c.as_str().to_owned());
            return line.finish(
                &state,
                soap(&state, StatusCode::INTERNAL_SERVER_ERROR, fault.to_xml()),
                code.as_deref(),
            );
        }
    };
    let operation = request.operation_name();
    line.operation = Some(operation.to_owned());
    line.impersonated = header.impersonation.clone();
    // Exchange Online answers 401 for an unlicensed or mismatched mailbox although the
    // caller's token is fine (no failed sign-in).
    let mailbox = header
        .impersonation
        .clone()
        .or_else(|| {
            headers
                .get("x-anchormailbox")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .or_else(|| who.address.clone());
    if mailbox.is_some_and(|m| state.mailbox_unauthorized(&m)) {
        return line.finish(&state, unauthorized(&AuthError::BadToken), None);
    }
    let faults = state.faults();
    let one_shot = state.take_one_shot(operation, request_items(&request));
    match one_shot {
        Some(OneShotFault::Unauthorized) => {
            return line.finish(&state, unauthorized(&AuthError::Missing), None)
        }
        Some(OneShotFault::Http500) => {
            return line.finish(
                &state,
                html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error",
                ),
                None,
            )
        }
        Some(OneShotFault::Http503) => {
            return line.finish(
                &state,
                html(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"),
                None,
            )
        }
        _ => {}
    }

    // Throttling: a back-off still running, the concurrency budget, then the random rate.
    let busy = {
        let mut inner = state.lock();
        *inner
            .stats
            .operations
            .entry(operation.to_owned())
            .or_default() += 1;
        let now = Instant::now();
        let back_off = Duration::from_millis(faults.back_off_ms);
        let not_before = inner.account_mut(&who.username).and_then(|a| a.not_before);
        let decision = match not_before {
            Some(t) if now < t => {
                inner.account_stats(&who.username).early_requests += 1;
                Some(t - now)
            }
            _ if in_flight > faults.max_concurrency_per_account
                || one_shot == Some(OneShotFault::ServerBusy)
                || chance(faults.throttle_rate) =>
            {
                if let Some(a) = inner.account_mut(&who.username) {
                    a.not_before = Some(now + back_off);
                }
                Some(back_off)
            }
            _ => None,
        };
        if decision.is_some() {
            inner.account_stats(&who.username).throttled += 1;
        }
        decision
    };
    if let Some(back_off) = busy {
        // Round up so a client waiting exactly the advertised time is never early.
        let back_off = Duration::from_millis(
            u64::try_from(back_off.as_micros().div_ceil(1000)).unwrap_or(u64::MAX),
        );
        let code = Some(ResponseCode::ERROR_SERVER_BUSY.as_str());
        let response = match faults.busy_shape {
            BusyShape::Fault500 => soap(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                SoapFault::server_busy(back_off).to_xml(),
            ),
            BusyShape::Http503 => soap(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                SoapFault::server_busy(back_off).to_xml(),
            ),
            BusyShape::Message200 => soap(
                &state,
                StatusCode::OK,
                error_response_xml(
                    operation,
                    &ResponseCode::ERROR_SERVER_BUSY,
                    "The server cannot service this request right now. Try again later.",
                    Some(back_off),
                ),
            ),
        };
        return line.finish(&state, response, code);
    }

    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if chance(faults.http_500_rate) {
        return line.finish(
            &state,
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error",
            ),
            None,
        );
    }
    if chance(faults.http_503_rate) {
        return line.finish(
            &state,
            html(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"),
            None,
        );
    }

    if super::streaming::owns(&request) {
        let (response, code) = super::streaming::handle(&state, &who, &header, &headers, request);
        return line.finish(&state, response, Some(&code));
    }
    let answer = {
        let mut inner = state.lock();
        let stop_after = match one_shot {
            Some(OneShotFault::BatchStoppedAfter(n)) => usize::try_from(n).ok(),
            _ => None,
        };
        ews_ops::handle(&state, &mut inner, &who, &header, request, stop_after)
    };
    let answered = match answer {
        Answer::Fault(fault) => {
            let code = fault.response_code.as_ref().map(|c| c.as_str().to_owned());
            line.finish(
                &state,
                soap(&state, StatusCode::INTERNAL_SERVER_ERROR, fault.to_xml()),
                code.as_deref(),
            )
        }
        Answer::Xml { xml: body, code } => {
            let response =
                if one_shot == Some(OneShotFault::Malformed) || chance(faults.malformed_rate) {
                    xml(StatusCode::OK, garble(body))
                } else {
                    soap(&state, StatusCode::OK, body)
                };
            line.finish(&state, response, Some(&code))
        }
    };
    if matches!(
        one_shot,
        Some(OneShotFault::LoseReply | OneShotFault::LoseCreateReply)
    ) {
        // The work is done (and logged); the client never reads the answer.
        return lost_reply(answered);
    }
    answered
}

/// An answer that never arrives: its status line and headers leave, then the connection
/// drops before the body (what a client sees when the network or a proxy fails after the
/// server did the work).
fn lost_reply(answered: Response) -> Response {
    let (parts, _) = answered.into_parts();
    let dropped = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the fake lost this reply (fail_next lose_reply)",
        ))
    });
    Response::from_parts(parts, Body::from_stream(dropped))
}

/// How many items a request carries (what a batch stop counts).
fn request_items(request: &EwsRequest) -> usize {
    match request {
        EwsRequest::GetItem(r) => r.item_ids.len(),
        EwsRequest::CreateItem(r) => r.items.len(),
        EwsRequest::UpdateItem(r) => r.item_changes.len(),
        EwsRequest::DeleteItem(r) => r.item_ids.len(),
        _ => 0,
    }
}

/// Cut a response mid-element, the way a dropped proxy connection or a buggy filter does.
fn garble(body: String) -> String {
    let mut cut = body.len() / 2;
    while cut > 0 && !body.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}<t:Brok", &body[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use exsync_ews::xml::{parse, XmlLimits};

    #[test]
    fn garbled_answers_are_not_well_formed() {
        let body = error_response_xml("GetItem", &ResponseCode::NO_ERROR, "x", None);
        assert!(parse(body.as_bytes(), &XmlLimits::default()).is_ok());
        assert!(parse(garble(body).as_bytes(), &XmlLimits::default()).is_err());
    }
}

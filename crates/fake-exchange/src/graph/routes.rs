//! The fake Graph's HTTP side: `/v1.0/…` requests through sign-in, mailbox checks (unknown
//! user, REST disabled, the application's scope), the per-application-and-mailbox concurrency
//! limit and `Retry-After` bookkeeping, faults and latency, then dispatch to the operations;
//! and the `/_fake/graph/` control API (docs/fake-exchange.md).
//!
//! Owns paths, methods, correlation headers, the request log and traffic recording; the
//! operations live in `mail`, `items` and `delta`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use percent_encoding::percent_decode_str;
use rand::Rng;
use serde_json::json;

use super::query::{Prefer, Query};
use super::wire::{GraphErr, OpResult};
use super::{
    delta, items, key, mail, subscriptions, AppScope, GraphFault, GraphLogEntry,
    GraphMailboxSettings, GraphState, LifecycleEvent,
};
use crate::state::AccountKind;
use crate::FakeError;

/// Graph caps request bodies at 4 MB (I-4MB682).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The Graph endpoint and its control API, to be merged into the fake Exchange's router.
pub(crate) fn router(state: Arc<GraphState>) -> Router {
    Router::new()
        .route("/v1.0/{*path}", any(graph_endpoint))
        .route("/_fake/graph/faults", get(get_faults).put(put_faults))
        .route("/_fake/graph/stats", get(stats))
        .route("/_fake/graph/stats/reset", post(reset_stats))
        .route("/_fake/graph/requests", get(requests))
        .route(
            "/_fake/graph/apps/{client_id}/scope",
            get(get_scope).put(put_scope),
        )
        .route(
            "/_fake/graph/mailboxes/{address}/settings",
            get(get_settings).put(put_settings),
        )
        .route(
            "/_fake/graph/mailboxes/{address}/expire-delta-tokens",
            post(expire_delta_tokens),
        )
        .route("/_fake/graph/subscriptions", get(list_subscriptions))
        .route(
            "/_fake/graph/subscriptions/{id}/lifecycle",
            post(send_lifecycle),
        )
        .route(
            "/_fake/graph/subscriptions/{id}/expire",
            post(expire_subscription),
        )
        .with_state(state)
}

/// What an operation gets to work with.
pub(crate) struct Ctx {
    /// The mailbox's canonical address.
    pub(crate) mailbox: String,
    pub(crate) prefer: Prefer,
    pub(crate) query: Query,
    /// `If-Match`, when sent.
    pub(crate) if_match: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) content_type: Option<String>,
    /// `http://host:port/v1.0`.
    pub(crate) base: String,
    /// The request's path after `/v1.0/`, as sent (for paging links).
    pub(crate) path: String,
}

impl Ctx {
    /// The request body as `T`, refusing unknown properties (Graph's `RequestBodyRead`).
    pub(crate) fn json<T: serde::de::DeserializeOwned + serde::Serialize>(
        &self,
        type_name: &str,
    ) -> Result<T, GraphErr> {
        if self.body.is_empty() {
            return Err(GraphErr::body_read("The request body is empty."));
        }
        let raw: serde_json::Value = serde_json::from_slice(&self.body)
            .map_err(|e| GraphErr::body_read(format!("The request body is not JSON: {e}")))?;
        typed(raw, type_name)
    }
}

/// `raw` as `T`, refusing properties `T` does not have (Graph's `RequestBodyRead`).
pub(crate) fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    raw: serde_json::Value,
    type_name: &str,
) -> Result<T, GraphErr> {
    let typed: T = serde_json::from_value(raw.clone()).map_err(|e| {
        GraphErr::body_read(format!(
            "The request body does not fit microsoft.graph.{type_name}: {e}"
        ))
    })?;
    let back = serde_json::to_value(&typed).unwrap_or_default();
    if let Some(path) = unknown_property(&raw, &back, "") {
        return Err(GraphErr::body_read(format!(
            "The property '{path}' does not exist on type 'microsoft.graph.{type_name}'."
        )));
    }
    Ok(typed)
}

/// A property of `sent` (not an annotation, not null) that the typed round trip lost.
fn unknown_property(
    sent: &serde_json::Value,
    kept: &serde_json::Value,
    at: &str,
) -> Option<String> {
    use serde_json::Value;
    match (sent, kept) {
        (Value::Object(s), Value::Object(k)) => {
            for (name, value) in s {
                if name.contains('@') || value.is_null() {
                    continue;
                }
                let path = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                match k.get(name) {
                    None => return Some(path),
                    Some(inner) => {
                        if let Some(p) = unknown_property(value, inner, &path) {
                            return Some(p);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(s), Value::Array(k)) => s
            .iter()
            .zip(k)
            .find_map(|(a, b)| unknown_property(a, b, at)),
        _ => None,
    }
}

/// Path segments with OData key syntax unfolded: `messages('x')` → `messages`, `x`;
/// `delta()` and `microsoft.graph.delta()` → `delta`.
pub(crate) fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_decode_str(raw).decode_utf8_lossy().into_owned();
        let seg = seg
            .strip_prefix("microsoft.graph.")
            .unwrap_or(&seg)
            .to_owned();
        if let Some((name, rest)) = seg.split_once('(') {
            if let Some(inner) = rest.strip_suffix(')') {
                out.push(name.to_owned());
                let inner = inner.trim_matches(|c| c == '\'' || c == '"');
                if !inner.is_empty() {
                    out.push(inner.to_owned());
                }
                continue;
            }
        }
        out.push(seg);
    }
    out
}

/// The operation a path and method name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    FolderList,
    FolderGet(String),
    MessageDelta(String),
    MessageList(Option<String>),
    MessageCreate(Option<String>),
    MessageGet(String),
    MessageMime(String),
    MessageUpdate(String),
    MessageDelete(String),
    MessageSend(String),
    SendMail,
    Translate,
    EventDelta,
    EventList,
    EventCreate,
    EventGet(String),
    EventUpdate(String),
    EventDelete(String),
    ContactDelta(String),
    ContactList,
    ContactCreate,
    ContactGet(String),
    ContactUpdate(String),
    ContactDelete(String),
    TodoLists,
    TodoList(String),
    TaskDelta(String),
    TaskList(String),
    TaskCreate(String),
    TaskGet(String, String),
    TaskUpdate(String, String),
    TaskDelete(String, String),
}

impl Op {
    /// Label for stats and logs.
    fn name(&self) -> &'static str {
        match self {
            Op::FolderList => "mailFolder.list",
            Op::FolderGet(_) => "mailFolder.get",
            Op::MessageDelta(_) => "message.delta",
            Op::MessageList(_) => "message.list",
            Op::MessageCreate(_) => "message.create",
            Op::MessageGet(_) => "message.get",
            Op::MessageMime(_) => "message.mime",
            Op::MessageUpdate(_) => "message.update",
            Op::MessageDelete(_) => "message.delete",
            Op::MessageSend(_) => "message.send",
            Op::SendMail => "user.sendMail",
            Op::Translate => "user.translateExchangeIds",
            Op::EventDelta => "event.delta",
            Op::EventList => "event.list",
            Op::EventCreate => "event.create",
            Op::EventGet(_) => "event.get",
            Op::EventUpdate(_) => "event.update",
            Op::EventDelete(_) => "event.delete",
            Op::ContactDelta(_) => "contact.delta",
            Op::ContactList => "contact.list",
            Op::ContactCreate => "contact.create",
            Op::ContactGet(_) => "contact.get",
            Op::ContactUpdate(_) => "contact.update",
            Op::ContactDelete(_) => "contact.delete",
            Op::TodoLists => "todoTaskList.list",
            Op::TodoList(_) => "todoTaskList.get",
            Op::TaskDelta(_) => "todoTask.delta",
            Op::TaskList(_) => "todoTask.list",
            Op::TaskCreate(_) => "todoTask.create",
            Op::TaskGet(..) => "todoTask.get",
            Op::TaskUpdate(..) => "todoTask.update",
            Op::TaskDelete(..) => "todoTask.delete",
        }
    }

    /// To Do is outside RBAC for Applications (`Tasks.*` cannot be scoped, GD-LIMIT,
    /// EXO-RBAC): a Tasks grant reaches every mailbox.
    fn scoped(&self) -> bool {
        !matches!(
            self,
            Op::TodoLists
                | Op::TodoList(_)
                | Op::TaskDelta(_)
                | Op::TaskList(_)
                | Op::TaskCreate(_)
                | Op::TaskGet(..)
                | Op::TaskUpdate(..)
                | Op::TaskDelete(..)
        )
    }
}

fn not_found_segment(segment: &str) -> GraphErr {
    GraphErr::bad_request(format!("Resource not found for the segment '{segment}'."))
}

fn method_not_allowed() -> GraphErr {
    GraphErr::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "The HTTP method is not allowed on this resource.",
    )
}

/// The user segment and the operation of a path.
fn route(method: &Method, segs: &[String]) -> Result<(String, Op), GraphErr> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["me", ..] => Err(GraphErr::bad_request(
            "/me request is only valid with delegated authentication flow.",
        )),
        ["users", user, rest @ ..] => {
            let user = (*user).to_owned();
            let get = method == Method::GET;
            let post = method == Method::POST;
            let patch = method == Method::PATCH;
            let delete = method == Method::DELETE;
            let own = |x: &&str| (*x).to_owned();
            let op = match rest {
                ["mailFolders"] if get => Op::FolderList,
                ["mailFolders", f] if get => Op::FolderGet(own(f)),
                ["mailFolders", f, "messages", "delta"] if get => Op::MessageDelta(own(f)),
                ["mailFolders", f, "messages"] if get => Op::MessageList(Some(own(f))),
                ["mailFolders", f, "messages"] if post => Op::MessageCreate(Some(own(f))),
                ["messages"] if get => Op::MessageList(None),
                ["messages"] if post => Op::MessageCreate(None),
                ["messages", "delta"] => {
                    return Err(GraphErr::bad_request(
                        "Change tracking is not supported against 'microsoft.graph.message'; use a mail folder's messages/delta.",
                    ))
                }
                ["messages", id] if get => Op::MessageGet(own(id)),
                ["messages", id] if patch => Op::MessageUpdate(own(id)),
                ["messages", id] if delete => Op::MessageDelete(own(id)),
                ["messages", id, "$value"] if get => Op::MessageMime(own(id)),
                ["messages", id, "send"] if post => Op::MessageSend(own(id)),
                ["sendMail"] if post => Op::SendMail,
                ["translateExchangeIds"] if post => Op::Translate,
                ["calendarView", "delta"] if get => Op::EventDelta,
                ["events"] if get => Op::EventList,
                ["events"] if post => Op::EventCreate,
                ["events", id] if get => Op::EventGet(own(id)),
                ["events", id] if patch => Op::EventUpdate(own(id)),
                ["events", id] if delete => Op::EventDelete(own(id)),
                ["contacts", "delta"] if get => Op::ContactDelta("contacts".into()),
                ["contactFolders", f, "contacts", "delta"] if get => Op::ContactDelta(own(f)),
                ["contacts"] if get => Op::ContactList,
                ["contacts"] if post => Op::ContactCreate,
                ["contacts", id] if get => Op::ContactGet(own(id)),
                ["contacts", id] if patch => Op::ContactUpdate(own(id)),
                ["contacts", id] if delete => Op::ContactDelete(own(id)),
                ["todo", "lists"] if get => Op::TodoLists,
                ["todo", "lists", l] if get => Op::TodoList(own(l)),
                ["todo", "lists", l, "tasks", "delta"] if get => Op::TaskDelta(own(l)),
                ["todo", "lists", l, "tasks"] if get => Op::TaskList(own(l)),
                ["todo", "lists", l, "tasks"] if post => Op::TaskCreate(own(l)),
                ["todo", "lists", l, "tasks", id] if get => Op::TaskGet(own(l), own(id)),
                ["todo", "lists", l, "tasks", id] if patch => Op::TaskUpdate(own(l), own(id)),
                ["todo", "lists", l, "tasks", id] if delete => Op::TaskDelete(own(l), own(id)),
                [] => return Err(method_not_allowed()),
                other => {
                    let known = [
                        "mailFolders",
                        "messages",
                        "sendMail",
                        "translateExchangeIds",
                        "calendarView",
                        "events",
                        "contacts",
                        "contactFolders",
                        "todo",
                    ];
                    return Err(match other.first() {
                        Some(first) if !known.contains(first) => not_found_segment(first),
                        _ => method_not_allowed(),
                    });
                }
            };
            Ok((user, op))
        }
        [first, ..] => Err(not_found_segment(first)),
        [] => Err(not_found_segment("")),
    }
}

/// Counts a request in flight for one application and mailbox while it lives.
pub(crate) struct Slot {
    /// Carry the request out, then answer 504 as if the reply were lost (`LoseReply`).
    pub(crate) lose_reply: bool,
    state: Arc<GraphState>,
    gate: (String, String),
    app: String,
    admitted: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let micros = u64::try_from(self.admitted.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut inner = self.state.lock();
        if let Some(gate) = inner.gates.get_mut(&self.gate) {
            gate.in_flight = gate.in_flight.saturating_sub(1);
        }
        if let Some(count) = inner.app_in_flight.get_mut(&self.app) {
            *count = count.saturating_sub(1);
        }
        let totals = inner.stats.app_totals.entry(self.app.clone()).or_default();
        totals.request_micros = totals.request_micros.saturating_add(micros);
    }
}

fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::thread_rng().gen::<f64>() < rate
}

/// Throttling and faults for one request that reached a mailbox: a slot, or the answer.
pub(crate) fn admit(
    g: &Arc<GraphState>,
    app: &str,
    mailbox: &str,
    operation: &str,
) -> Result<Slot, GraphErr> {
    let mut inner = g.lock();
    let faults = inner.faults.clone();
    let mut aimed = None;
    if let Some(i) = inner
        .faults
        .fail_operation
        .iter()
        .position(|f| f.operation == operation)
    {
        let entry = &mut inner.faults.fail_operation[i];
        if entry.after == 0 {
            aimed = Some(inner.faults.fail_operation.remove(i).fault);
        } else {
            entry.after -= 1;
        }
    }
    let gate_key = (key(app), key(mailbox));
    let now = Instant::now();
    let retry_after = faults.retry_after_secs;
    let with_retry = |e: GraphErr, secs: u64| {
        if secs > 0 {
            e.header("Retry-After", secs.to_string())
        } else {
            e
        }
    };
    let one_shot = if aimed.is_some() || inner.faults.fail_next.is_empty() {
        aimed
    } else {
        Some(inner.faults.fail_next.remove(0))
    };
    let gate = inner.gates.entry(gate_key.clone()).or_default();
    let in_flight = gate.in_flight;
    let early = gate.not_before.filter(|t| now < *t);
    let set_not_before = |inner: &mut super::GraphInner, secs: u64| {
        if let Some(gate) = inner.gates.get_mut(&gate_key) {
            gate.not_before = Some(now + Duration::from_secs(secs));
        }
    };
    fn stats_for<'a>(
        inner: &'a mut super::GraphInner,
        app: &str,
        mailbox: &str,
    ) -> &'a mut super::GraphMailboxStats {
        inner
            .stats
            .apps
            .entry(app.to_owned())
            .or_default()
            .entry(mailbox.to_owned())
            .or_default()
    }
    stats_for(&mut inner, app, mailbox).requests += 1;
    if let Some(until) = early {
        let stats = stats_for(&mut inner, app, mailbox);
        stats.early_requests += 1;
        stats.throttled += 1;
        let secs = (until - now).as_millis().div_ceil(1000);
        let secs = u64::try_from(secs).unwrap_or(u64::MAX).max(1);
        return Err(with_retry(
            GraphErr::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests; wait for Retry-After before sending again.",
            ),
            secs,
        ));
    }
    match one_shot {
        Some(GraphFault::Throttled) => {
            stats_for(&mut inner, app, mailbox).throttled += 1;
            set_not_before(&mut inner, retry_after);
            return Err(with_retry(
                GraphErr::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests; wait for Retry-After before sending again.",
                ),
                retry_after,
            ));
        }
        Some(GraphFault::ServiceUnavailable) => {
            stats_for(&mut inner, app, mailbox).unavailable += 1;
            set_not_before(&mut inner, retry_after);
            return Err(with_retry(
                GraphErr::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable.",
                ),
                retry_after,
            ));
        }
        Some(GraphFault::InternalError) => {
            return Err(GraphErr::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An internal server error occurred.",
            ))
        }
        Some(GraphFault::GatewayTimeout) => return Err(gateway_timeout()),
        Some(GraphFault::Unauthorized) => return Err(unauthenticated()),
        Some(GraphFault::LoseReply) | None => {}
    }
    if in_flight >= faults.mailbox_concurrency {
        let stats = stats_for(&mut inner, app, mailbox);
        stats.throttled += 1;
        stats.over_concurrency += 1;
        set_not_before(&mut inner, retry_after);
        return Err(with_retry(
            GraphErr::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            ),
            retry_after,
        ));
    }
    if chance(faults.throttle_rate) {
        stats_for(&mut inner, app, mailbox).throttled += 1;
        set_not_before(&mut inner, retry_after);
        return Err(with_retry(
            GraphErr::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests; wait for Retry-After before sending again.",
            ),
            retry_after,
        ));
    }
    if chance(faults.http_503_rate) {
        stats_for(&mut inner, app, mailbox).unavailable += 1;
        set_not_before(&mut inner, retry_after);
        return Err(with_retry(
            GraphErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
            ),
            retry_after,
        ));
    }
    let gate = inner.gates.entry(gate_key.clone()).or_default();
    gate.in_flight += 1;
    let now_in_flight = u64::from(gate.in_flight);
    let stats = stats_for(&mut inner, app, mailbox);
    stats.peak_in_flight = stats.peak_in_flight.max(now_in_flight);
    let app_count = inner.app_in_flight.entry(app.to_owned()).or_default();
    *app_count += 1;
    let app_in_flight = u64::from(*app_count);
    let totals = inner.stats.app_totals.entry(app.to_owned()).or_default();
    totals.peak_in_flight = totals.peak_in_flight.max(app_in_flight);
    Ok(Slot {
        lose_reply: one_shot == Some(GraphFault::LoseReply),
        state: g.clone(),
        gate: gate_key,
        app: app.to_owned(),
        admitted: now,
    })
}

fn gateway_timeout() -> GraphErr {
    GraphErr::new(
        StatusCode::GATEWAY_TIMEOUT,
        "GatewayTimeout",
        "The request timed out at the gateway.",
    )
}

fn unauthenticated() -> GraphErr {
    GraphErr::new(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        "Access token is empty, expired or not valid.",
    )
    .header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
}

/// The application a bearer token was issued to.
pub(crate) fn sign_in(g: &GraphState, headers: &HeaderMap) -> Result<String, GraphErr> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthenticated)?;
    let (scheme, token) = value.split_once(' ').ok_or_else(unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthenticated());
    }
    let exchange = g.exchange.lock();
    let issued = exchange
        .tokens
        .get(token.trim())
        .ok_or_else(unauthenticated)?;
    if issued.expires <= Instant::now() {
        return Err(unauthenticated());
    }
    let account = exchange
        .find_login(&issued.username)
        .filter(|a| a.kind == AccountKind::App)
        .ok_or_else(unauthenticated)?;
    Ok(account.username.clone())
}

/// The mailbox a user segment names, if Graph may reach it for `app`.
fn mailbox_for(g: &GraphState, app: &str, user: &str, op: &Op) -> Result<String, GraphErr> {
    reach_mailbox(g, app, user, op.scoped())
}

/// The mailbox a user segment names, if Graph may reach it for `app` (`scoped`: the
/// application's RBAC scope applies).
pub(crate) fn reach_mailbox(
    g: &GraphState,
    app: &str,
    user: &str,
    scoped: bool,
) -> Result<String, GraphErr> {
    let canonical = g
        .exchange
        .lock()
        .mailbox(user)
        .map(|m| m.address.clone())
        .ok_or_else(|| {
            GraphErr::new(
                StatusCode::NOT_FOUND,
                "ErrorInvalidUser",
                format!("The requested user '{user}' is invalid."),
            )
        })?;
    let inner = g.lock();
    if inner
        .mailbox_settings
        .get(&key(&canonical))
        .is_some_and(|s| !s.rest_enabled)
    {
        return Err(GraphErr::new(
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is inactive, soft-deleted, hosted on-premises or not licensed for REST.",
        ));
    }
    if scoped {
        if let Some(scope) = inner.scopes.get(&key(app)) {
            if !scope.contains(&key(&canonical)) {
                return Err(GraphErr::new(
                    StatusCode::FORBIDDEN,
                    "ErrorAccessDenied",
                    "Access to OData is disabled for this application on this mailbox (outside its management scope).",
                ));
            }
        }
    }
    Ok(canonical)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
}

/// `/v1.0/…`.
async fn graph_endpoint(
    State(g): State<Arc<GraphState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = header(&headers, "client-request-id");
    let path = uri.path().trim_start_matches("/v1.0").to_owned();
    let mut entry = GraphLogEntry {
        method: method.to_string(),
        path: path.clone(),
        operation: None,
        app: None,
        mailbox: None,
        status: 0,
        code: None,
        client_request_id: client_request_id.clone(),
        request_id: request_id.clone(),
    };
    let outcome = serve(&g, &method, &uri, &headers, body, &mut entry).await;
    let (status, json_body, raw, extra, code) = match outcome {
        Ok(reply) => (reply.status, reply.body, reply.raw, reply.headers, None),
        Err(e) => {
            let body = e.body(&request_id, client_request_id.as_deref());
            (e.status, Some(body), None, e.headers, Some(e.code))
        }
    };
    let bytes = match (&json_body, &raw) {
        (Some(v), _) => serde_json::to_vec(v).unwrap_or_default(),
        (None, Some((_, raw))) => raw.clone(),
        (None, None) => Vec::new(),
    };
    if let Some(traffic) = &g.traffic {
        // Only answers on paths Microsoft's description has (a refused unknown path, and the
        // MIME of `$value`, have no JSON operation to be checked against).
        let described = entry
            .operation
            .as_deref()
            .is_some_and(|op| op != "message.mime");
        if raw.is_none() && described {
            traffic.response(method.as_str(), &path, status.as_u16(), &bytes);
        }
    }
    let mut response = Response::builder().status(status);
    if let Some(h) = response.headers_mut() {
        match (&json_body, &raw) {
            (Some(_), _) => {
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
                    ),
                );
            }
            (None, Some((content_type, _))) => {
                if let Ok(v) = HeaderValue::from_str(content_type) {
                    h.insert(http::header::CONTENT_TYPE, v);
                }
            }
            _ => {}
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("request-id", v);
        }
        if let Some(v) = client_request_id
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            h.insert("client-request-id", v);
        }
        h.insert(
            "x-ms-ags-diagnostic",
            HeaderValue::from_static(
                r#"{"ServerInfo":{"DataCenter":"Fake","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"FAKEGRAPH01"}}"#,
            ),
        );
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(name, v);
            }
        }
    }
    entry.status = status.as_u16();
    entry.code = code.map(str::to_owned);
    g.record(entry);
    response
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `scheme://host/v1.0` as the client reached the fake (links are built on it).
fn link_base(g: &GraphState, headers: &HeaderMap) -> String {
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|host| {
            let base = g.base_url();
            let scheme = base.split("://").next().unwrap_or("http").to_owned();
            format!("{scheme}://{host}/v1.0")
        })
        .unwrap_or_else(|| g.base_url())
}

async fn serve(
    g: &Arc<GraphState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    entry: &mut GraphLogEntry,
) -> OpResult {
    let body = match http_body_util::Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(GraphErr::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "The request is larger than the 4 MB Graph accepts.",
            ))
        }
        Err(_) => return Err(GraphErr::bad_request("The request body could not be read.")),
    };
    let refused_early = |g: &GraphState| g.lock().stats.refused_before_mailbox += 1;
    let segs = segments(uri.path().trim_start_matches("/v1.0"));
    if segs.first().map(String::as_str) == Some("subscriptions") {
        let base = link_base(g, headers);
        return subscriptions::serve(g, method, &segs, headers, body, &base, entry).await;
    }
    let (user, op) = match route(method, &segs) {
        Ok(found) => found,
        Err(e) => {
            refused_early(g);
            return Err(e);
        }
    };
    entry.operation = Some(op.name().to_owned());
    let app = match sign_in(g, headers) {
        Ok(app) => app,
        Err(e) => {
            refused_early(g);
            return Err(e);
        }
    };
    entry.app = Some(app.clone());
    let mailbox = match mailbox_for(g, &app, &user, &op) {
        Ok(m) => m,
        Err(e) => {
            refused_early(g);
            return Err(e);
        }
    };
    entry.mailbox = Some(mailbox.clone());
    *g.lock()
        .stats
        .operations
        .entry(op.name().to_owned())
        .or_default() += 1;
    let slot = admit(g, &app, &mailbox, op.name())?;
    let latency = g.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let scheme_host = link_base(g, headers);
    let ctx = Ctx {
        mailbox,
        prefer: Prefer::parse(headers),
        query: Query::parse(uri.query()),
        if_match: header(headers, "if-match"),
        body: body.clone(),
        content_type: header(headers, "content-type"),
        base: scheme_host,
        path: segs.join("/"),
    };
    let delta_path = |segs: &[String]| segs.join("/");
    let result = match &op {
        Op::MessageDelta(_) | Op::EventDelta | Op::ContactDelta(_) | Op::TaskDelta(_) => {
            delta_op(g, &ctx, &op, &delta_path(&segs))
        }
        Op::FolderList => mail::folder_list(g, &ctx),
        Op::FolderGet(f) => mail::folder_get(g, &ctx, f),
        Op::MessageList(f) => mail::list(g, &ctx, f.as_deref()),
        Op::MessageCreate(f) => mail::create(g, &ctx, f.as_deref()),
        Op::MessageGet(id) => mail::get(g, &ctx, id),
        Op::MessageMime(id) => mail::mime(g, &ctx, id),
        Op::MessageUpdate(id) => mail::update(g, &ctx, id),
        Op::MessageDelete(id) => items::delete(g, &ctx, items::Kind::Message, id),
        Op::MessageSend(id) => mail::send_draft(g, &ctx, id),
        Op::SendMail => mail::send_mail(g, &ctx),
        Op::Translate => items::translate(g, &ctx),
        Op::EventList => items::event_list(g, &ctx),
        Op::EventCreate => items::event_create(g, &ctx),
        Op::EventGet(id) => items::event_get(g, &ctx, id),
        Op::EventUpdate(id) => items::event_update(g, &ctx, id),
        Op::EventDelete(id) => items::delete(g, &ctx, items::Kind::Event, id),
        Op::ContactList => items::contact_list(g, &ctx),
        Op::ContactCreate => items::contact_create(g, &ctx),
        Op::ContactGet(id) => items::contact_get(g, &ctx, id),
        Op::ContactUpdate(id) => items::contact_update(g, &ctx, id),
        Op::ContactDelete(id) => items::delete(g, &ctx, items::Kind::Contact, id),
        Op::TodoLists => items::todo_lists(g, &ctx),
        Op::TodoList(l) => items::todo_list(g, &ctx, l),
        Op::TaskList(l) => items::task_list(g, &ctx, l),
        Op::TaskCreate(l) => items::task_create(g, &ctx, l),
        Op::TaskGet(l, id) => items::task_get(g, &ctx, l, id),
        Op::TaskUpdate(l, id) => items::task_update(g, &ctx, l, id),
        Op::TaskDelete(l, id) => items::task_delete(g, &ctx, l, id),
    };
    let reply = result?;
    if slot.lose_reply {
        return Err(gateway_timeout());
    }
    if let Some(traffic) = &g.traffic {
        if !body.is_empty() && reply.status.is_success() {
            traffic.request(
                method.as_str(),
                uri.path().trim_start_matches("/v1.0"),
                &body,
            );
        }
    }
    let mut reply = if ctx.prefer.immutable {
        reply.header("Preference-Applied", "IdType=\"ImmutableId\"")
    } else {
        reply
    };
    if let Some(kind) = ctx.prefer.body_type {
        // Echoed as Graph does (GD-MGET).
        let name = match kind {
            exsync_graph::model::BodyType::Text => "text",
            exsync_graph::model::BodyType::Html => "html",
        };
        reply = reply.header(
            "Preference-Applied",
            format!("outlook.body-content-type=\"{name}\""),
        );
    }
    Ok(reply)
}

fn delta_op(g: &GraphState, ctx: &Ctx, op: &Op, path: &str) -> OpResult {
    let resource = match op {
        Op::MessageDelta(folder) => {
            delta::Resource::Messages(mail::mail_folder(&ctx.mailbox, folder)?)
        }
        Op::EventDelta => {
            if delta::has_token(ctx) {
                // The window is in the token; a placeholder until the state is read.
                delta::Resource::Events {
                    start: chrono::DateTime::<chrono::Utc>::MIN_UTC,
                    end: chrono::DateTime::<chrono::Utc>::MAX_UTC,
                }
            } else {
                let at = |name: &str| {
                    let raw = ctx.query.get(name).ok_or_else(|| {
                        GraphErr::bad_request(format!(
                            "calendarView/delta needs startDateTime and endDateTime ({name} is missing)."
                        ))
                    })?;
                    chrono::DateTime::parse_from_rfc3339(raw)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .or_else(|_| {
                            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                                .map(|n| n.and_utc())
                        })
                        .map_err(|_| {
                            GraphErr::bad_request(format!("{name} is not a date and time: {raw}"))
                        })
                };
                let (start, end) = (at("startDateTime")?, at("endDateTime")?);
                if end <= start {
                    return Err(GraphErr::bad_request(
                        "endDateTime must be after startDateTime.",
                    ));
                }
                delta::Resource::Events { start, end }
            }
        }
        Op::ContactDelta(folder) => {
            items::contact_folder(&ctx.mailbox, folder)?;
            delta::Resource::Contacts
        }
        Op::TaskDelta(list) => {
            items::todo_list_folder(&ctx.mailbox, list)?;
            delta::Resource::Tasks
        }
        _ => return Err(method_not_allowed()),
    };
    let state = if delta::has_token(ctx) {
        delta::follow(g, ctx, path)?
    } else {
        delta::first_call(g, ctx, path, resource)?
    };
    delta::page(g, ctx, state)
}

// ---------------------------------------------------------------------------------------------
// /_fake/graph/ control API

struct ApiError(StatusCode, String);

impl From<FakeError> for ApiError {
    fn from(e: FakeError) -> Self {
        let status = match e {
            FakeError::Invalid(_) | FakeError::Seed { .. } => StatusCode::BAD_REQUEST,
            FakeError::NotFound(_) => StatusCode::NOT_FOUND,
            FakeError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn get_faults(State(g): State<Arc<GraphState>>) -> Response {
    Json(g.faults()).into_response()
}

async fn put_faults(State(g): State<Arc<GraphState>>, bytes: Bytes) -> Result<Response, ApiError> {
    let patch: serde_json::Value = parse(&bytes)?;
    Ok(Json(g.update_faults(&patch)?).into_response())
}

async fn stats(State(g): State<Arc<GraphState>>) -> Response {
    Json(g.stats()).into_response()
}

async fn reset_stats(State(g): State<Arc<GraphState>>) -> Response {
    g.reset_stats();
    StatusCode::NO_CONTENT.into_response()
}

async fn requests(State(g): State<Arc<GraphState>>) -> Response {
    Json(g.requests()).into_response()
}

async fn get_scope(State(g): State<Arc<GraphState>>, Path(client_id): Path<String>) -> Response {
    Json(g.scope(&client_id)).into_response()
}

async fn put_scope(
    State(g): State<Arc<GraphState>>,
    Path(client_id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let scope: AppScope = parse(&bytes)?;
    Ok(Json(g.set_scope(&client_id, &scope)?).into_response())
}

async fn get_settings(
    State(g): State<Arc<GraphState>>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(g.mailbox_settings(&address)?).into_response())
}

async fn put_settings(
    State(g): State<Arc<GraphState>>,
    Path(address): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let settings: GraphMailboxSettings = parse(&bytes)?;
    Ok(Json(g.set_mailbox_settings(&address, &settings)?).into_response())
}

async fn expire_delta_tokens(
    State(g): State<Arc<GraphState>>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    let expired = g.expire_delta_tokens(&address)?;
    Ok(Json(json!({ "expired": expired })).into_response())
}

async fn list_subscriptions(State(g): State<Arc<GraphState>>) -> Response {
    Json(json!({
        "subscriptions": g.subscriptions(),
        "validations_failed": g.validations_failed(),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleRequest {
    event: LifecycleEvent,
}

async fn send_lifecycle(
    State(g): State<Arc<GraphState>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: LifecycleRequest = parse(&bytes)?;
    Ok(Json(g.lifecycle(&id, request.event).await?).into_response())
}

async fn expire_subscription(
    State(g): State<Arc<GraphState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    g.set_subscription_expiry(&id, chrono::Utc::now())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_key_syntax_and_function_names_are_unfolded() {
        assert_eq!(
            segments("/users('a%40b.test')/mailFolders('Inbox')/messages/microsoft.graph.delta()"),
            [
                "users",
                "a@b.test",
                "mailFolders",
                "Inbox",
                "messages",
                "delta"
            ]
        );
        let (user, op) = route(&Method::GET, &segments("/users/a@b.test/messages/m1")).unwrap();
        assert_eq!(
            (user.as_str(), op),
            ("a@b.test", Op::MessageGet("m1".into()))
        );
        assert!(route(&Method::GET, &segments("/me/messages")).is_err());
        assert!(route(&Method::PUT, &segments("/users/a/messages/m1")).is_err());
    }

    #[test]
    fn unknown_body_properties_are_found_at_any_depth() {
        let sent = json!({"subject": "s", "body": {"content": "x", "colour": "red"}});
        let kept = json!({"subject": "s", "body": {"content": "x"}});
        assert_eq!(
            unknown_property(&sent, &kept, "").as_deref(),
            Some("body.colour")
        );
        let fine = json!({"subject": null, "@odata.type": "#microsoft.graph.message"});
        assert_eq!(unknown_property(&fine, &json!({}), ""), None);
    }
}

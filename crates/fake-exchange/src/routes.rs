//! The router: the EWS endpoint and the `/_fake/` JSON control API (accounts, apps and OAuth
//! tokens, rights, items, faults, stats, request log), a contract used by tests and external
//! checks (documented in `docs/fake-exchange.md`).
//!
//! Owns JSON parsing and HTTP status mapping; the work is done by `FakeState`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::state::{FakeState, ItemPatch, MailboxSettings, NewAccount, NewApp, NewItems, Rights};
use super::{FakeError, FaultsPatch, TokenFault};

/// The whole application: EWS plus `/_fake/`.
pub(crate) fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/EWS/Exchange.asmx", post(super::server::ews_endpoint))
        .route("/ews/exchange.asmx", post(super::server::ews_endpoint))
        .route("/_fake/accounts", post(add_account))
        .route("/_fake/accounts/{username}/password", put(set_password))
        .route("/_fake/accounts/{username}/expire", post(expire))
        .route("/_fake/apps", post(add_app))
        .route("/_fake/oauth2/token", post(token))
        .route("/_fake/rights", put(set_rights))
        .route("/_fake/faults", get(get_faults).put(put_faults))
        .route("/_fake/stats", get(stats))
        .route("/_fake/stats/reset", post(reset_stats))
        .route("/_fake/requests", get(requests))
        .route("/_fake/sent", get(sent))
        .route(
            "/_fake/mailboxes/{address}/items",
            post(add_items).get(list_items),
        )
        .route(
            "/_fake/mailboxes/{address}/items/{id}",
            patch(patch_item).delete(delete_item),
        )
        .route(
            "/_fake/mailboxes/{address}/reset-sync-states",
            post(reset_sync_states),
        )
        .route(
            "/_fake/mailboxes/{address}/settings",
            get(get_mailbox_settings).put(put_mailbox_settings),
        )
        .route(
            "/_fake/mailboxes/{address}/items/{id}/delete-after-sync",
            post(delete_after_sync),
        )
        .with_state(state.clone())
        .merge(super::streaming::router(state))
}

/// A refused control request, as JSON `{"error": "..."}`.
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

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: serde_json::Value) -> ApiResult {
    Ok(Json(value).into_response())
}

async fn add_account(State(s): State<Arc<FakeState>>, bytes: Bytes) -> ApiResult {
    let new: NewAccount = body(&bytes)?;
    s.add_account(&new)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "username": new.username.clone().or_else(|| new.address.as_deref().and_then(|a| a.split('@').next()).map(str::to_owned)), "address": new.address })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn set_password(
    State(s): State<Arc<FakeState>>,
    Path(username): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let b: PasswordBody = body(&bytes)?;
    s.set_password(&username, &b.password)?;
    ok(json!({ "username": username, "expired": false }))
}

async fn expire(State(s): State<Arc<FakeState>>, Path(username): Path<String>) -> ApiResult {
    s.expire_password(&username)?;
    ok(json!({ "username": username, "expired": true }))
}

async fn add_app(State(s): State<Arc<FakeState>>, bytes: Bytes) -> ApiResult {
    let app: NewApp = body(&bytes)?;
    s.add_app(&app)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "client_id": app.client_id, "tenant": app.tenant })),
    )
        .into_response())
}

/// OAuth2 client credentials (RFC 6749 §4.4), form-encoded like the Microsoft identity
/// platform's v2 endpoint: a client secret, or a client assertion signed with a registered
/// certificate (RFC 7523). Answers carry `x-ms-request-id`, and `client-request-id` when the
/// client asks with `return-client-request-id: true`; `token_fail_next`,
/// `token_retry_after_secs` and `token_latency_ms` inject the endpoint's own trouble.
async fn token(State(s): State<Arc<FakeState>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let mut response = token_answer(&s, &bytes).await;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v);
    }
    let echo = headers
        .get("return-client-request-id")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if echo {
        if let Some(v) = headers.get("client-request-id") {
            h.insert("client-request-id", v.clone());
        }
    }
    response
}

async fn token_answer(s: &Arc<FakeState>, bytes: &Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(bytes).into_owned().collect();
    let error = |status: StatusCode, code: &str, description: &str| {
        (
            status,
            Json(json!({ "error": code, "error_description": description })),
        )
            .into_response()
    };
    let faults = s.faults();
    if faults.token_latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.token_latency_ms)).await;
    }
    if let Some(id) = form.get("client_id") {
        let mut inner = s.lock();
        if let Some(name) = inner.find_login(id).map(|a| a.username.clone()) {
            inner.account_stats(&name).token_requests += 1;
        }
    }
    if let Some(fault) = s.take_token_fault() {
        let retry_after = (faults.token_retry_after_secs > 0)
            .then(|| HeaderValue::from_str(&faults.token_retry_after_secs.to_string()).ok())
            .flatten();
        let (status, code, description) = match fault {
            TokenFault::Http429 => (
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "AADSTS50196: the server is throttling this client",
            ),
            TokenFault::Http500 => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "AADSTS90100: internal error",
            ),
            TokenFault::Http503 => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "AADSTS90033: a transient error has occurred",
            ),
            TokenFault::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000222: the provided client secret keys are expired",
            ),
            TokenFault::UnauthorizedClient => (
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "AADSTS7000112: application is disabled",
            ),
            TokenFault::InvalidRequest => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS90002: tenant not found",
            ),
        };
        let mut response = error(status, code, description);
        if matches!(fault, TokenFault::Http429 | TokenFault::Http503) {
            if let Some(v) = retry_after {
                response.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        return response;
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: the grant type is not supported",
        );
    }
    // The client is authenticated first; then the request is checked.
    let client = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(_), Some(_)) => Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS700025: give a client secret or a client assertion, not both".to_owned(),
        )),
        (Some(secret), None) => match form.get("client_id") {
            None => Err((
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS900144: the request body must contain client_id".to_owned(),
            )),
            Some(id) if s.check_secret(id, secret) => Ok(id.clone()),
            Some(_) => Err((
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215: invalid client secret provided".to_owned(),
            )),
        },
        (None, Some(assertion)) => {
            if form.get("client_assertion_type").map(String::as_str)
                != Some(exsync_ews::oauth::JWT_BEARER)
            {
                Err((
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "AADSTS50027: client_assertion_type must be jwt-bearer".to_owned(),
                ))
            } else {
                let audience = s.lock().token_url.clone().unwrap_or_default();
                s.check_assertion(
                    form.get("client_id").map(String::as_str),
                    assertion,
                    &audience,
                )
                .map_err(|(code, description)| {
                    let status = if code == "invalid_client" {
                        StatusCode::UNAUTHORIZED
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    (status, code, description)
                })
            }
        }
        (None, None) => Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS7000218: the request body must contain client_secret or client_assertion"
                .to_owned(),
        )),
    };
    let client = match client {
        Ok(client) => client,
        Err((status, code, description)) => return error(status, code, &description),
    };
    // Client credentials need a `/.default` scope on the v2 endpoint.
    if !form
        .get("scope")
        .is_some_and(|scope| scope.ends_with("/.default"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: client credential flows must have a scope value with /.default suffixed",
        );
    }
    match s.token_for(&client) {
        Some(token) => Json(token).into_response(),
        None => error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: application not found in the directory",
        ),
    }
}

async fn set_rights(State(s): State<Arc<FakeState>>, bytes: Bytes) -> ApiResult {
    let rights: Rights = body(&bytes)?;
    s.set_rights(&rights)?;
    ok(serde_json::to_value(&rights).unwrap_or_default())
}

async fn get_faults(State(s): State<Arc<FakeState>>) -> ApiResult {
    ok(serde_json::to_value(s.faults()).unwrap_or_default())
}

async fn put_faults(State(s): State<Arc<FakeState>>, bytes: Bytes) -> ApiResult {
    let patch: FaultsPatch = body(&bytes)?;
    let faults = s.update_faults(&patch)?;
    ok(serde_json::to_value(faults).unwrap_or_default())
}

async fn stats(State(s): State<Arc<FakeState>>) -> ApiResult {
    ok(serde_json::to_value(s.stats()).unwrap_or_default())
}

async fn reset_stats(State(s): State<Arc<FakeState>>) -> ApiResult {
    s.reset_stats();
    ok(json!({ "reset": true }))
}

async fn requests(State(s): State<Arc<FakeState>>) -> ApiResult {
    ok(serde_json::to_value(s.requests()).unwrap_or_default())
}

/// `GET /_fake/sent[?from=address]`: what the transport sent, oldest first.
async fn sent(
    State(s): State<Arc<FakeState>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    ok(json!(s.sent_messages(query.get("from").map(String::as_str))))
}

async fn add_items(
    State(s): State<Arc<FakeState>>,
    Path(address): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let new: NewItems = if bytes.is_empty() {
        NewItems::default()
    } else {
        body(&bytes)?
    };
    let ids = s.add_items(&address, &new)?;
    Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))).into_response())
}

async fn list_items(
    State(s): State<Arc<FakeState>>,
    Path(address): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let folder = q.get("folder").map(String::as_str).unwrap_or("inbox");
    let items = s.list_items(&address, folder)?;
    ok(serde_json::to_value(items).unwrap_or_default())
}

async fn patch_item(
    State(s): State<Arc<FakeState>>,
    Path((address, id)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let p: ItemPatch = body(&bytes)?;
    s.patch_item(&address, &id, &p)?;
    ok(json!({ "id": id }))
}

async fn delete_item(
    State(s): State<Arc<FakeState>>,
    Path((address, id)): Path<(String, String)>,
) -> ApiResult {
    s.delete_item(&address, &id)?;
    ok(json!({ "id": id, "deleted": true }))
}

async fn reset_sync_states(
    State(s): State<Arc<FakeState>>,
    Path(address): Path<String>,
) -> ApiResult {
    s.reset_sync_states(&address)?;
    ok(json!({ "address": address, "reset": true }))
}

async fn get_mailbox_settings(
    State(s): State<Arc<FakeState>>,
    Path(address): Path<String>,
) -> ApiResult {
    let settings = s.mailbox_settings(&address)?;
    ok(serde_json::to_value(settings).unwrap_or_default())
}

async fn put_mailbox_settings(
    State(s): State<Arc<FakeState>>,
    Path(address): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let settings: MailboxSettings = body(&bytes)?;
    let settings = s.set_mailbox_settings(&address, &settings)?;
    ok(serde_json::to_value(settings).unwrap_or_default())
}

async fn delete_after_sync(
    State(s): State<Arc<FakeState>>,
    Path((address, id)): Path<(String, String)>,
) -> ApiResult {
    s.delete_after_sync(&address, &id)?;
    ok(json!({ "id": id, "delete_after_sync": true }))
}

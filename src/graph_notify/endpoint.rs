//! `POST /graph/notifications` and `POST /graph/lifecycle` on exsync's HTTP server: the
//! validation handshake (the token echoed as `text/plain` with 200), and notifications
//! answered `202 Accepted` at once and queued (Graph wants a 2xx within 3 s, GD-WH); the
//! queue's worker checks each item's `clientState` before anything becomes due. Bodies are
//! size-bounded; nothing here logs a `clientState`.

use crate::metrics::{labels, metrics};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The path Graph POSTs change notifications to (under `public_url`).
pub const NOTIFICATIONS_PATH: &str = "/graph/notifications";
/// The path Graph POSTs lifecycle notifications to (under `public_url`).
pub const LIFECYCLE_PATH: &str = "/graph/lifecycle";
/// Notifications waiting for the worker; when full, Graph is answered 503 and retries.
pub const QUEUE_LEN: usize = 10_000;
/// Longest validation token echoed (Graph's are far shorter).
const MAX_TOKEN_CHARS: usize = 1024;
/// Longest subscription id accepted.
const MAX_ID_CHARS: usize = 200;

/// Which endpoint an item came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A change notification.
    Change,
    /// A lifecycle notification.
    Lifecycle,
}

/// One notification item, queued for the worker.
pub struct Incoming {
    /// Where it came in.
    pub channel: Channel,
    /// The subscription it names.
    pub subscription_id: String,
    /// The secret it carries (checked against the stored hash; never logged).
    pub client_state: Option<SecretString>,
    /// `reauthorizationRequired`, `subscriptionRemoved` or `missed` (lifecycle only).
    pub lifecycle_event: Option<String>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("channel", &self.channel)
            .field("subscription_id", &self.subscription_id)
            .field("lifecycle_event", &self.lifecycle_event)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Envelope {
    value: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    subscription_id: Option<String>,
    client_state: Option<String>,
    lifecycle_event: Option<String>,
}

#[derive(Clone)]
struct EndpointState {
    queue: mpsc::Sender<Incoming>,
    channel: Channel,
}

/// The two endpoints, feeding `queue`, refusing bodies over `max_body_bytes` (413).
pub fn router(queue: mpsc::Sender<Incoming>, max_body_bytes: usize) -> Router {
    let change = Router::new()
        .route(NOTIFICATIONS_PATH, post(receive))
        .with_state(Arc::new(EndpointState {
            queue: queue.clone(),
            channel: Channel::Change,
        }));
    let lifecycle = Router::new()
        .route(LIFECYCLE_PATH, post(receive))
        .with_state(Arc::new(EndpointState {
            queue,
            channel: Channel::Lifecycle,
        }));
    change
        .merge(lifecycle)
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

fn rejected(reason: &str) {
    metrics()
        .graph_notify
        .rejected
        .get_or_create(&labels([("reason", reason)]))
        .inc();
}

async fn receive(
    State(state): State<Arc<EndpointState>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(token) = query.get("validationToken") {
        if token.chars().count() > MAX_TOKEN_CHARS {
            return StatusCode::BAD_REQUEST.into_response();
        }
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            token.clone(),
        )
            .into_response();
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&body) else {
        rejected("malformed");
        return StatusCode::BAD_REQUEST.into_response();
    };
    for item in envelope.value {
        let Some(subscription_id) = item
            .subscription_id
            .filter(|id| !id.is_empty() && id.chars().count() <= MAX_ID_CHARS)
        else {
            rejected("malformed");
            continue;
        };
        let incoming = Incoming {
            channel: state.channel,
            subscription_id,
            client_state: item.client_state.map(SecretString::from),
            lifecycle_event: item.lifecycle_event,
        };
        if state.queue.try_send(incoming).is_err() {
            rejected("queue_full");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    StatusCode::ACCEPTED.into_response()
}

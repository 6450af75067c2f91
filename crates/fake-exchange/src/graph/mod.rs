//! The fake Graph: Microsoft Graph v1.0 (mail, calendar, contacts, To Do, id translation) over
//! the **same mailboxes** as the fake Exchange, for tests, the demo and
//! `exsync fake-exchange --graph`. An item created through EWS is visible through Graph under
//! its translated id and the other way round.
//!
//! Owns what is Graph's alone: app-only bearer tokens (issued by the fake's token endpoint),
//! the per-application mailbox scope (RBAC for Applications), REST-disabled mailboxes, delta
//! tokens that can expire, `transactionId`s, the per-application-and-mailbox concurrency limit
//! and `Retry-After` bookkeeping, Graph faults and statistics, and the `/_fake/graph/` control
//! API (docs/fake-exchange.md). Items, change logs and rights stay in [`FakeState`]; the wire
//! shapes are `exsync_graph::model`, shared with the client. Every JSON body it answers (and
//! every request body it accepts) can be recorded for `scripts/check-graph-traffic.sh`.

mod convert;
mod delta;
mod ids;
mod items;
mod mail;
mod query;
mod routes;
mod series;
mod subscriptions;
mod traffic;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::state::FakeState;
use super::FakeError;

pub use ids::GraphIdFormat;
pub(crate) use routes::router;
pub(crate) use subscriptions::{start_delivery, ChangeSender, GraphChange, ItemChange};
pub use subscriptions::{
    LifecycleEvent, LifecycleOutcome, SubCounters, SubscriptionView, FAKE_TENANT_ID,
    MAX_LIFETIME_MINUTES, MAX_PER_MAILBOX,
};

/// Graph's Outlook limit of requests in flight per application and mailbox
/// (`MailboxConcurrency`, graph.md §6).
pub const DEFAULT_MAILBOX_CONCURRENCY: u32 = 4;

/// A one-shot answer for the next Graph request that reaches a mailbox (after sign-in and
/// scope), queued with `fail_next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphFault {
    /// 429 `TooManyRequests` with `Retry-After: retry_after_secs`.
    Throttled,
    /// 503 `ServiceUnavailable` with `Retry-After: retry_after_secs`.
    ServiceUnavailable,
    /// 500 `InternalServerError`.
    InternalError,
    /// 504 `GatewayTimeout` (Graph documents it beside 503).
    GatewayTimeout,
    /// 401 `InvalidAuthenticationToken`, as if the token had just been revoked.
    Unauthorized,
    /// The request is carried out, then answered 504 `GatewayTimeout`: the reply is lost on
    /// its way back (like the EWS fake's `lose_create_reply`), so the client cannot know
    /// its write happened. Not applied to subscription requests.
    LoseReply,
}

/// A one-shot answer for one operation (`GraphFaults::fail_operation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationFault {
    /// The operation's label as `/_fake/graph/stats` counts it (`message.list`, …).
    pub operation: String,
    /// Requests of that operation answered normally first.
    #[serde(default)]
    pub after: u32,
    /// The answer then.
    pub fault: GraphFault,
}

/// How an expired or unknown delta token is answered (Graph uses both, graph.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeltaExpiryShape {
    /// `410 Gone`, code `SyncStateNotFound`, `Location` naming a fresh round (I-DQ2350, GD-DQO).
    #[default]
    Gone410,
    /// `400 Bad Request`, code `syncStateNotFound` (GD-DQO, TP-DEVBLOG-7D).
    BadRequest400,
}

/// Fault and load knobs of the fake Graph (`PUT /_fake/graph/faults` changes them partially).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphFaults {
    /// Sleep this long (holding the request's concurrency slot) before answering.
    pub latency_ms: u64,
    /// Requests one application may have in flight per mailbox; one more gets 429
    /// `ApplicationThrottled` "…MailboxConcurrency limit".
    pub mailbox_concurrency: u32,
    /// Fraction (0..=1) of requests answered 429 `TooManyRequests`.
    pub throttle_rate: f64,
    /// Fraction (0..=1) of requests answered 503 `ServiceUnavailable`.
    pub http_503_rate: f64,
    /// `Retry-After` seconds sent with 429 and 503 (0 sends none: the client backs off).
    pub retry_after_secs: u64,
    /// One-shot answers for the next requests, in order.
    pub fail_next: Vec<GraphFault>,
    /// One-shot answers for one operation: its request after `after` more of them gets
    /// `fault` (a failure in the middle of a paged walk, e.g. the third `message.list`).
    pub fail_operation: Vec<OperationFault>,
    /// How an expired delta token is answered.
    pub delta_expiry: DeltaExpiryShape,
    /// Delta tokens kept per mailbox; older ones are evicted (Graph's cache, GD-DQO) and
    /// answered as expired.
    pub max_delta_tokens_per_mailbox: usize,
    /// Page size of delta and list answers without `Prefer: odata.maxpagesize` / `$top`.
    pub default_page_size: u32,
    /// Largest page the fake answers, whatever is asked.
    pub max_page_size: u32,
    /// The Sent Items copy of a sent message appears this long after the 202 (the move happens
    /// after the answer on the real service, GD-SENDSTEPS); the draft leaves Drafts at once.
    pub sent_items_delay_ms: u64,
    /// Most messages one round of a message delta with `$filter` returns (GD-MDELTA: 5,000);
    /// the round then ends, and its delta link continues after what exists now.
    pub filtered_round_limit: usize,
    /// Accept `http://` notification and lifecycle URLs (real Graph requires HTTPS; tests
    /// serve their endpoint over plain HTTP).
    pub allow_http_notification_urls: bool,
    /// Wait this long before the first attempt to deliver a change notification.
    pub notification_delay_ms: u64,
    /// Drop every change notification (counted per subscription as `dropped`).
    pub drop_notifications: bool,
    /// How long a change notification is retried (with back-off) before it is given up
    /// (Graph: up to 4 hours, GD-WH).
    pub notification_retry_ms: u64,
}

impl Default for GraphFaults {
    fn default() -> Self {
        GraphFaults {
            latency_ms: 0,
            mailbox_concurrency: DEFAULT_MAILBOX_CONCURRENCY,
            throttle_rate: 0.0,
            http_503_rate: 0.0,
            retry_after_secs: 1,
            fail_next: Vec::new(),
            fail_operation: Vec::new(),
            delta_expiry: DeltaExpiryShape::default(),
            max_delta_tokens_per_mailbox: 1000,
            default_page_size: 10,
            max_page_size: 1000,
            sent_items_delay_ms: 0,
            filtered_round_limit: 5000,
            allow_http_notification_urls: false,
            notification_delay_ms: 0,
            drop_notifications: false,
            notification_retry_ms: 4 * 3600 * 1000,
        }
    }
}

impl GraphFaults {
    fn validate(&self) -> Result<(), FakeError> {
        for (name, rate) in [
            ("throttle_rate", self.throttle_rate),
            ("http_503_rate", self.http_503_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FakeError::Invalid(format!(
                    "{name} must be between 0 and 1, got {rate}"
                )));
            }
        }
        if self.mailbox_concurrency == 0 {
            return Err(FakeError::Invalid(
                "mailbox_concurrency must be at least 1".into(),
            ));
        }
        if self.default_page_size == 0 || self.max_page_size == 0 {
            return Err(FakeError::Invalid("page sizes must be at least 1".into()));
        }
        if self.max_delta_tokens_per_mailbox == 0 {
            return Err(FakeError::Invalid(
                "max_delta_tokens_per_mailbox must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Graph-only answers of one mailbox (`PUT /_fake/graph/mailboxes/{address}/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphMailboxSettings {
    /// `false`: every Graph request for it answers 404 `MailboxNotEnabledForRESTAPI` (an
    /// inactive, soft-deleted, on-premises or unlicensed mailbox). EWS is not affected.
    pub rest_enabled: bool,
}

impl Default for GraphMailboxSettings {
    fn default() -> Self {
        GraphMailboxSettings { rest_enabled: true }
    }
}

/// Which mailboxes an application reaches (`PUT /_fake/graph/apps/{client_id}/scope`): RBAC
/// for Applications. `mailboxes: null` is the unscoped Entra consent (every mailbox).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppScope {
    /// The mailboxes in the application's management scope; `None` means all.
    pub mailboxes: Option<Vec<String>>,
}

/// Counters for one application and one mailbox (`GET /_fake/graph/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphMailboxStats {
    /// Requests that reached the mailbox (signed in, mailbox known).
    pub requests: u64,
    /// Most requests in flight at once.
    pub peak_in_flight: u64,
    /// Requests answered 429 (rate, concurrency or a running `Retry-After`).
    pub throttled: u64,
    /// Requests sent before a `Retry-After` given to this application for this mailbox had
    /// elapsed (a client honouring it sends none).
    pub early_requests: u64,
    /// Requests answered 429 because the application already had `mailbox_concurrency`
    /// requests in flight.
    pub over_concurrency: u64,
    /// Requests answered 503.
    pub unavailable: u64,
}

/// The whole `/_fake/graph/stats` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphStats {
    /// Requests per operation (`message.delta`, `message.send`, …).
    pub operations: BTreeMap<String, u64>,
    /// Per application (client id), per mailbox address.
    pub apps: BTreeMap<String, BTreeMap<String, GraphMailboxStats>>,
    /// Requests refused before a mailbox was known (401, unknown paths).
    pub refused_before_mailbox: u64,
    /// Per application over all its mailboxes (what `exsync bench` compares with a profile's
    /// connection limit).
    #[serde(default)]
    pub app_totals: BTreeMap<String, GraphAppStats>,
}

/// Counters for one application over all mailboxes (`app_totals` in `/_fake/graph/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphAppStats {
    /// Most admitted requests in flight at once, all mailboxes together.
    pub peak_in_flight: u64,
    /// Sum of the admitted requests' durations (latency included), in microseconds.
    pub request_micros: u64,
}

/// One line of the recent Graph request log (`GET /_fake/graph/requests`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphLogEntry {
    /// HTTP method.
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The operation, when the path was understood.
    pub operation: Option<String>,
    /// The application's client id, when signed in.
    pub app: Option<String>,
    /// The mailbox, when known.
    pub mailbox: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The error code answered, if any.
    pub code: Option<String>,
    /// The `client-request-id` sent.
    pub client_request_id: Option<String>,
    /// The `request-id` answered.
    pub request_id: String,
}

/// One application's requests to one mailbox, for the concurrency limit and `Retry-After`.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    pub(crate) in_flight: u32,
    pub(crate) not_before: Option<Instant>,
}

/// Everything Graph-only behind one lock. Lock order: the fake Exchange's lock may be held
/// while this one is taken, never the other way round.
#[derive(Default)]
pub(crate) struct GraphInner {
    pub(crate) faults: GraphFaults,
    /// Client id (lowercase) → scope; absent means unscoped.
    pub(crate) scopes: HashMap<String, BTreeSet<String>>,
    pub(crate) mailbox_settings: HashMap<String, GraphMailboxSettings>,
    pub(crate) deltas: delta::DeltaTokens,
    pub(crate) gates: HashMap<(String, String), Gate>,
    /// Admitted requests in flight per application (client id as signed in).
    pub(crate) app_in_flight: HashMap<String, u32>,
    pub(crate) stats: GraphStats,
    /// (mailbox, transactionId) → the event's item number.
    pub(crate) transactions: HashMap<(String, String), u64>,
    /// Item number → its transactionId (read back on the event).
    pub(crate) transaction_of: HashMap<u64, String>,
    pub(crate) log: VecDeque<GraphLogEntry>,
    /// Change-notification subscriptions.
    pub(crate) subscriptions: subscriptions::Subscriptions,
}

const LOG_LEN: usize = 1000;

fn key(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// The fake Graph's state: a handle to the fake Exchange's mailboxes plus Graph's own.
pub struct GraphState {
    pub(crate) exchange: Arc<FakeState>,
    inner: Mutex<GraphInner>,
    base_url: Mutex<String>,
    pub(crate) traffic: Option<traffic::GraphTraffic>,
    /// Calls the notification and lifecycle URLs of subscriptions.
    pub(crate) http: reqwest::Client,
}

impl GraphState {
    /// Graph over `exchange`'s mailboxes, recording its traffic into `traffic_dir` if given.
    pub fn new(exchange: Arc<FakeState>, traffic_dir: Option<PathBuf>) -> Self {
        GraphState {
            exchange,
            inner: Mutex::new(GraphInner::default()),
            base_url: Mutex::new("http://127.0.0.1/v1.0".to_owned()),
            traffic: traffic_dir.map(traffic::GraphTraffic::new),
            http: subscriptions::http_client(),
        }
    }

    /// The lock on Graph's own state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, GraphInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the URL links are built on (`http://host:port/v1.0`), once the port is known.
    pub(crate) fn set_base_url(&self, url: String) {
        *self.base_url.lock().unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// `http://host:port/v1.0`: what a client takes as `graph_url`.
    pub fn base_url(&self) -> String {
        self.base_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Current fault knobs.
    pub fn faults(&self) -> GraphFaults {
        self.lock().faults.clone()
    }

    /// Change the knobs named in `patch` (a JSON object of [`GraphFaults`] fields); nothing
    /// changes when a field is unknown or a value invalid.
    pub fn update_faults(&self, patch: &serde_json::Value) -> Result<GraphFaults, FakeError> {
        let mut inner = self.lock();
        let serde_json::Value::Object(changes) = patch else {
            return Err(FakeError::Invalid("faults must be a JSON object".into()));
        };
        let mut current =
            serde_json::to_value(&inner.faults).map_err(|e| FakeError::Invalid(e.to_string()))?;
        if let serde_json::Value::Object(fields) = &mut current {
            for (name, value) in changes {
                if !fields.contains_key(name) {
                    return Err(FakeError::Invalid(format!("unknown fault {name:?}")));
                }
                fields.insert(name.clone(), value.clone());
            }
        }
        let next: GraphFaults =
            serde_json::from_value(current).map_err(|e| FakeError::Invalid(e.to_string()))?;
        next.validate()?;
        inner.faults = next.clone();
        Ok(next)
    }

    /// Replace an application's mailbox scope (RBAC for Applications).
    pub fn set_scope(&self, client_id: &str, scope: &AppScope) -> Result<AppScope, FakeError> {
        let exists = self
            .exchange
            .lock()
            .find_login(client_id)
            .is_some_and(|a| a.kind == super::state::AccountKind::App);
        if !exists {
            return Err(FakeError::NotFound(format!("app {client_id}")));
        }
        {
            let mut inner = self.lock();
            match &scope.mailboxes {
                None => {
                    inner.scopes.remove(&key(client_id));
                }
                Some(list) => {
                    inner
                        .scopes
                        .insert(key(client_id), list.iter().map(|m| key(m)).collect());
                }
            }
        }
        // The lock is not reentrant: the block above let it go before the scope is read back.
        Ok(self.scope(client_id))
    }

    /// An application's mailbox scope.
    pub fn scope(&self, client_id: &str) -> AppScope {
        AppScope {
            mailboxes: self
                .lock()
                .scopes
                .get(&key(client_id))
                .map(|s| s.iter().cloned().collect()),
        }
    }

    /// Replace a mailbox's Graph-only settings.
    pub fn set_mailbox_settings(
        &self,
        address: &str,
        settings: &GraphMailboxSettings,
    ) -> Result<GraphMailboxSettings, FakeError> {
        if self.exchange.lock().mailbox(address).is_none() {
            return Err(FakeError::NotFound(format!("mailbox {address}")));
        }
        self.lock()
            .mailbox_settings
            .insert(key(address), settings.clone());
        Ok(settings.clone())
    }

    /// A mailbox's Graph-only settings.
    pub fn mailbox_settings(&self, address: &str) -> Result<GraphMailboxSettings, FakeError> {
        if self.exchange.lock().mailbox(address).is_none() {
            return Err(FakeError::NotFound(format!("mailbox {address}")));
        }
        Ok(self
            .lock()
            .mailbox_settings
            .get(&key(address))
            .cloned()
            .unwrap_or_default())
    }

    /// Forget every delta token issued for a mailbox (Graph's cache evicted them): the next
    /// use of any answers as `delta_expiry` says. Returns how many there were.
    pub fn expire_delta_tokens(&self, address: &str) -> Result<usize, FakeError> {
        if self.exchange.lock().mailbox(address).is_none() {
            return Err(FakeError::NotFound(format!("mailbox {address}")));
        }
        Ok(self.lock().deltas.expire_mailbox(&key(address)))
    }

    /// The statistics document.
    pub fn stats(&self) -> GraphStats {
        self.lock().stats.clone()
    }

    /// Zero the counters and the request log.
    pub fn reset_stats(&self) {
        let mut inner = self.lock();
        inner.stats = GraphStats::default();
        inner.log.clear();
    }

    /// The recent request log, oldest first (at most 1000 entries).
    pub fn requests(&self) -> Vec<GraphLogEntry> {
        self.lock().log.iter().cloned().collect()
    }

    pub(crate) fn record(&self, entry: GraphLogEntry) {
        let mut inner = self.lock();
        if inner.log.len() == LOG_LEN {
            inner.log.pop_front();
        }
        inner.log.push_back(entry);
    }
}

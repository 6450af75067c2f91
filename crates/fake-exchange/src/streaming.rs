//! Streaming notifications in the fake Exchange: Subscribe (streaming), GetStreamingEvents as a
//! long-lived chunked response of whole envelopes (notifications, `ConnectionStatus` OK
//! keep-alives, `Closed` at `ConnectionTimeout`), Unsubscribe, and the events item changes
//! raise (created, modified, deleted, moved; new mail in the Inbox).
//!
//! Owns the subscriptions, their event queues and expiry, the open connections, the
//! affinity model (mailboxes live on one of two back-end servers; `X-PreferServerAffinity`
//! on Subscribe answers an `X-BackEndOverrideCookie`, a connection serves only the
//! subscriptions of the back end it is routed to), the streaming limits (subscriptions per
//! connection, open connections per account) and the `/_fake/streaming` controls.
//! Time is scaled by `minute_ms`, so tests can see a 1-minute ConnectionTimeout end quickly.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Principal;
use super::state::{
    folder_id_string, item_id_string, parse_folder_id, parse_item_id, AccountKind, FakeState,
    Inner, MAILBOX_FOLDERS,
};
use super::traffic::Direction;
use super::FakeError;
use exsync_ews::ops::get_streaming_events::{
    ChangedObject, ConnectionStatus, Notification, NotificationEvent, OldLocation, StreamingEvents,
};
use exsync_ews::ops::subscribe::{EventType, Subscription as SubscriptionPayload};
use exsync_ews::ops::{
    EwsRequest, GetStreamingEventsRequest, GetStreamingEventsResponse, SubscribeRequest,
    SubscribeResponse, UnsubscribeRequest, UnsubscribeResponse,
};
use exsync_ews::soap::{RequestHeader, SoapFault};
use exsync_ews::types::{
    BaseFolderId, DistinguishedFolderName, FolderId, ItemId, ResponseCode, ResponseMessage,
};

/// The two back-end (mailbox) servers of the fake; a mailbox lives on one of them.
pub const BACK_ENDS: [&str; 2] = ["FAKEEXCH-MBX01", "FAKEEXCH-MBX02"];

/// The back end a mailbox lives on (stable: a hash of its address).
pub fn back_end_of(address: &str) -> &'static str {
    let sum: u32 = address
        .trim()
        .to_ascii_lowercase()
        .bytes()
        .map(u32::from)
        .sum();
    BACK_ENDS[(sum % 2) as usize]
}

/// `/_fake/streaming` settings (`PUT` updates them partially).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingSettings {
    /// How long one "minute" of ConnectionTimeout and subscription lifetime lasts.
    pub minute_ms: u64,
    /// A `ConnectionStatus` OK keep-alive after this long without notifications.
    pub keep_alive_ms: u64,
    /// A subscription with no open connection expires after this many (scaled) minutes.
    pub subscription_lifetime_minutes: u64,
    /// Most subscriptions one GetStreamingEvents may name (Exchange: 200).
    pub max_subscriptions_per_connection: usize,
    /// Most open GetStreamingEvents connections per account (Exchange Online's
    /// HangingConnectionLimit: 10); more are refused ErrorExceededConnectionCount.
    pub max_connections_per_account: u32,
    /// Answer every Subscribe with this error code (ErrorServerBusy carries the faults'
    /// back-off), until cleared with `null`.
    pub refuse_subscribe: Option<String>,
    /// Lose every event raised while true (a server that misses notifications).
    pub drop_events: bool,
    /// Deliver every event twice while true (a server that repeats notifications).
    pub repeat_events: bool,
}

impl Default for StreamingSettings {
    fn default() -> Self {
        StreamingSettings {
            minute_ms: 60_000,
            keep_alive_ms: 30_000,
            subscription_lifetime_minutes: 30,
            max_subscriptions_per_connection: 200,
            max_connections_per_account: 10,
            refuse_subscribe: None,
            drop_events: false,
            repeat_events: false,
        }
    }
}

/// A partial update of [`StreamingSettings`] (`PUT /_fake/streaming`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingPatch {
    minute_ms: Option<u64>,
    keep_alive_ms: Option<u64>,
    subscription_lifetime_minutes: Option<u64>,
    max_subscriptions_per_connection: Option<usize>,
    max_connections_per_account: Option<u32>,
    #[serde(default, with = "double_option")]
    refuse_subscribe: Option<Option<String>>,
    drop_events: Option<bool>,
    repeat_events: Option<bool>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

/// What `/_fake/streaming` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamingStats {
    /// Subscriptions alive now.
    pub subscriptions: usize,
    /// GetStreamingEvents connections open now.
    pub open_connections: u64,
    /// Most connections ever open at once.
    pub peak_open_connections: u64,
    /// Most subscriptions one accepted connection carried.
    pub peak_subscriptions_per_connection: usize,
    /// Subscribe requests answered with a subscription.
    pub subscribed: u64,
    /// Unsubscribe requests that ended a subscription.
    pub unsubscribed: u64,
    /// GetStreamingEvents connections accepted.
    pub connections_opened: u64,
    /// Events put on a connection.
    pub events_sent: u64,
    /// Subscribe and GetStreamingEvents requests without `X-AnchorMailbox`.
    pub requests_without_anchor: u64,
    /// Subscriptions per mailbox alive now (lower-case address).
    pub subscriptions_by_mailbox: std::collections::BTreeMap<String, usize>,
}

struct QueuedEvent {
    kind: EventType,
    item_id: String,
    parent: String,
    old: Option<(String, String)>,
}

struct Sub {
    owner: String,
    mailbox: String,
    folders: Option<HashSet<DistinguishedFolderName>>,
    events: BTreeSet<EventType>,
    back_end: &'static str,
    queue: VecDeque<QueuedEvent>,
    watermark: u64,
    connection: Option<u64>,
    idle_since: Instant,
}

/// The streaming part of the fake's state (inside its lock).
pub(crate) struct Streaming {
    subs: HashMap<String, Sub>,
    next_id: u64,
    next_connection: u64,
    settings: StreamingSettings,
    /// Open connections: id → (account, whether it must stop now).
    open: HashMap<u64, (String, bool)>,
    /// Errors to put on a connection: id → (code, subscription ids).
    errors: HashMap<u64, Vec<(ResponseCode, Vec<String>)>>,
    stats: StreamingStats,
    wake: Arc<tokio::sync::Notify>,
    /// Set while an item is moved, so its removal and insertion raise one MovedEvent.
    moving: bool,
}

impl Default for Streaming {
    fn default() -> Self {
        Streaming {
            subs: HashMap::new(),
            next_id: 0,
            next_connection: 0,
            settings: StreamingSettings::default(),
            open: HashMap::new(),
            errors: HashMap::new(),
            stats: StreamingStats::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            moving: false,
        }
    }
}

impl Streaming {
    /// An item was created: CreatedEvent, and NewMailEvent for a message in the Inbox.
    pub(crate) fn item_created(&mut self, address: &str, folder: DistinguishedFolderName, n: u64) {
        self.item_event(address, folder, EventType::Created, n, None);
        if folder == DistinguishedFolderName::Inbox {
            self.item_event(address, folder, EventType::NewMail, n, None);
        }
    }

    /// An item changed: queue the event on every subscription that watches it.
    pub(crate) fn item_event(
        &mut self,
        address: &str,
        folder: DistinguishedFolderName,
        kind: EventType,
        n: u64,
        old: Option<(u64, DistinguishedFolderName)>,
    ) {
        if self.moving || self.settings.drop_events {
            return;
        }
        let key = address.to_ascii_lowercase();
        let copies = if self.settings.repeat_events { 2 } else { 1 };
        for sub in self.subs.values_mut() {
            if sub.mailbox != key
                || !sub.events.contains(&kind)
                || sub.folders.as_ref().is_some_and(|f| {
                    !f.contains(&folder) && !old.is_some_and(|(_, from)| f.contains(&from))
                })
            {
                continue;
            }
            for _ in 0..copies {
                if sub.queue.len() >= 10_000 {
                    sub.queue.pop_front();
                }
                sub.queue.push_back(QueuedEvent {
                    kind,
                    item_id: item_id_string(address, n),
                    parent: folder_id_string(address, folder),
                    old: old
                        .map(|(o, f)| (item_id_string(address, o), folder_id_string(address, f))),
                });
            }
        }
        self.wake.notify_waiters();
    }

    fn expire_idle(&mut self) {
        let lifetime = Duration::from_millis(
            self.settings
                .minute_ms
                .saturating_mul(self.settings.subscription_lifetime_minutes),
        );
        self.subs
            .retain(|_, s| s.connection.is_some() || s.idle_since.elapsed() < lifetime);
    }

    fn snapshot(&mut self) -> StreamingStats {
        self.expire_idle();
        let mut stats = self.stats.clone();
        stats.subscriptions = self.subs.len();
        stats.open_connections = self.open.len() as u64;
        stats.subscriptions_by_mailbox.clear();
        for sub in self.subs.values() {
            *stats
                .subscriptions_by_mailbox
                .entry(sub.mailbox.clone())
                .or_default() += 1;
        }
        stats
    }

    /// End subscriptions (all, or those of one mailbox) as if they had expired: the next use
    /// answers ErrorSubscriptionNotFound, and an open connection carrying them gets that error.
    fn expire(&mut self, mailbox: Option<&str>) -> usize {
        let key = mailbox.map(str::to_ascii_lowercase);
        let gone: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, s)| key.as_ref().is_none_or(|k| *k == s.mailbox))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            if let Some(sub) = self.subs.remove(id) {
                if let Some(conn) = sub.connection {
                    self.errors.entry(conn).or_default().push((
                        ResponseCode::new("ErrorSubscriptionNotFound"),
                        vec![id.clone()],
                    ));
                }
            }
        }
        self.wake.notify_waiters();
        gone.len()
    }

    /// Cut every open connection (a network drop): they end without `Closed`.
    fn drop_connections(&mut self) -> usize {
        for (_, stop) in self.open.values_mut() {
            *stop = true;
        }
        self.wake.notify_waiters();
        self.open.len()
    }
}

impl Inner {
    /// Move item `n` of `address` to `to`: a new id there, one MovedEvent (not a deletion and
    /// a creation).
    pub(crate) fn move_item(
        &mut self,
        address: &str,
        n: u64,
        to: DistinguishedFolderName,
    ) -> Result<ItemId, FakeError> {
        let from = self
            .mailbox(address)
            .and_then(|m| m.item(n).map(|(f, _)| f))
            .ok_or_else(|| FakeError::NotFound(format!("item {n} in {address}")))?;
        self.streaming.moving = true;
        let moved = self
            .remove_item(address, n)
            .ok_or_else(|| FakeError::NotFound(format!("item {n} in {address}")));
        let result = moved.and_then(|item| self.insert_item(address, to, item));
        self.streaming.moving = false;
        let id = result?;
        if let Some((_, new_n)) = parse_item_id(&id.id) {
            let canonical = self
                .mailbox(address)
                .map(|m| m.address.clone())
                .unwrap_or_else(|| address.to_owned());
            self.streaming
                .item_event(&canonical, to, EventType::Moved, new_n, Some((n, from)));
        }
        Ok(id)
    }
}

impl Inner {
    /// File an item just removed from `from` into `to` (a delete that moves it to Deleted
    /// Items): its DeletedEvent becomes one MovedEvent, as Exchange reports a move.
    pub(crate) fn refile_removed(
        &mut self,
        address: &str,
        old_n: u64,
        from: Option<DistinguishedFolderName>,
        to: DistinguishedFolderName,
        item: exsync_ews::types::Item,
    ) -> Result<ItemId, FakeError> {
        let Some(from) = from else {
            return self.insert_item(address, to, item);
        };
        let old_id = item_id_string(address, old_n);
        for sub in self.streaming.subs.values_mut() {
            sub.queue
                .retain(|e| !(e.kind == EventType::Deleted && e.item_id == old_id));
        }
        self.streaming.moving = true;
        let result = self.insert_item(address, to, item);
        self.streaming.moving = false;
        let id = result?;
        if let Some((_, new_n)) = parse_item_id(&id.id) {
            let canonical = self
                .mailbox(address)
                .map(|m| m.address.clone())
                .unwrap_or_else(|| address.to_owned());
            self.streaming
                .item_event(&canonical, to, EventType::Moved, new_n, Some((old_n, from)));
        }
        Ok(id)
    }
}

impl FakeState {
    /// `POST /_fake/mailboxes/{address}/items/{id}/move`: move an item to another folder.
    pub fn move_item(&self, address: &str, id: &str, folder: &str) -> Result<String, FakeError> {
        let to: DistinguishedFolderName = folder
            .parse()
            .map_err(|_| FakeError::Invalid(format!("unknown folder {folder:?}")))?;
        let (_, n) =
            parse_item_id(id).ok_or_else(|| FakeError::Invalid(format!("bad item id {id:?}")))?;
        let mut inner = self.lock();
        Ok(inner.move_item(address, n, to)?.id)
    }

    /// The streaming settings and counters.
    pub fn streaming_stats(&self) -> (StreamingSettings, StreamingStats) {
        let mut inner = self.lock();
        (inner.streaming.settings.clone(), inner.streaming.snapshot())
    }

    /// Change streaming settings.
    pub fn update_streaming(&self, patch: &StreamingPatch) -> Result<StreamingSettings, FakeError> {
        let mut inner = self.lock();
        let s = &mut inner.streaming.settings;
        let mut next = s.clone();
        if let Some(v) = patch.minute_ms {
            next.minute_ms = v;
        }
        if let Some(v) = patch.keep_alive_ms {
            next.keep_alive_ms = v;
        }
        if let Some(v) = patch.subscription_lifetime_minutes {
            next.subscription_lifetime_minutes = v;
        }
        if let Some(v) = patch.max_subscriptions_per_connection {
            next.max_subscriptions_per_connection = v;
        }
        if let Some(v) = patch.max_connections_per_account {
            next.max_connections_per_account = v;
        }
        if let Some(v) = &patch.refuse_subscribe {
            next.refuse_subscribe = v.clone();
        }
        if let Some(v) = patch.drop_events {
            next.drop_events = v;
        }
        if let Some(v) = patch.repeat_events {
            next.repeat_events = v;
        }
        if next.minute_ms == 0 || next.keep_alive_ms == 0 {
            return Err(FakeError::Invalid(
                "minute_ms and keep_alive_ms must be at least 1".into(),
            ));
        }
        *s = next.clone();
        Ok(next)
    }
}

/// Whether the streaming module answers this request (the server routes it here).
pub(crate) fn owns(request: &EwsRequest) -> bool {
    matches!(
        request,
        EwsRequest::Subscribe(_) | EwsRequest::GetStreamingEvents(_) | EwsRequest::Unsubscribe(_)
    )
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The back end named by an `X-BackEndOverrideCookie` cookie, if the request carries one.
fn cookie_back_end(headers: &HeaderMap) -> Option<&'static str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("X-BackEndOverrideCookie="))
        .find_map(|value| {
            BACK_ENDS
                .iter()
                .copied()
                .find(|b| value.trim().starts_with(b))
        })
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

fn record(state: &FakeState, body: &str) {
    if let Some(traffic) = &state.traffic {
        traffic.record(Direction::Response, body.as_bytes());
    }
}

fn answer(state: &FakeState, status: StatusCode, body: String) -> Response {
    record(state, &body);
    xml(status, body)
}

fn fault(state: &FakeState, code: ResponseCode, text: &str) -> (Response, String) {
    let body = SoapFault::for_code(code.clone(), text).to_xml();
    (
        answer(state, StatusCode::INTERNAL_SERVER_ERROR, body),
        code.as_str().to_owned(),
    )
}

/// The mailbox a request acts on (impersonated, else the caller's own), checked like the
/// other operations check it.
fn acting_mailbox(
    inner: &Inner,
    who: &Principal,
    header: &RequestHeader,
) -> Result<String, (ResponseCode, String)> {
    if let Some(target) = &header.impersonation {
        let Some(mailbox) = inner.mailbox(target) else {
            return Err((
                ResponseCode::ERROR_NON_EXISTENT_MAILBOX,
                format!("The SMTP address {target} has no mailbox associated with it."),
            ));
        };
        let canonical = mailbox.address.to_ascii_lowercase();
        let allowed = inner
            .find_login(&who.username)
            .is_some_and(|a| a.impersonate_all || a.impersonate.contains(&canonical));
        if !allowed {
            return Err((
                ResponseCode::ERROR_IMPERSONATE_USER_DENIED,
                "The account does not have permission to impersonate the requested user.".into(),
            ));
        }
        return Ok(canonical);
    }
    if who.kind == AccountKind::App {
        return Err((
            ResponseCode::ERROR_INVALID_EXCHANGE_IMPERSONATION_HEADER_DATA,
            "ExchangeImpersonation SOAP header must be present for this type of OAuth token."
                .into(),
        ));
    }
    who.address
        .as_deref()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            (
                ResponseCode::ERROR_NON_EXISTENT_MAILBOX,
                "The account has no mailbox.".into(),
            )
        })
}

/// Answer Subscribe, GetStreamingEvents or Unsubscribe; the response code for the log.
pub(crate) fn handle(
    state: &Arc<FakeState>,
    who: &Principal,
    header: &RequestHeader,
    headers: &HeaderMap,
    request: EwsRequest,
) -> (Response, String) {
    let back_off = Duration::from_millis(state.faults().back_off_ms);
    let mut inner = state.lock();
    inner.streaming.expire_idle();
    let mailbox = match acting_mailbox(&inner, who, header) {
        Ok(m) => m,
        Err((code, text)) => {
            drop(inner);
            return fault(state, code, &text);
        }
    };
    let anchor = header_anchor(headers);
    if anchor.is_none() {
        inner.streaming.stats.requests_without_anchor += 1;
    }
    match request {
        EwsRequest::Subscribe(r) => {
            let (response, code, back_end) =
                subscribe(&mut inner, who, &mailbox, anchor, headers, &r, back_off);
            drop(inner);
            let body = response.to_xml();
            let mut http = answer(state, StatusCode::OK, body);
            if code == "NoError"
                && header_value(headers, "X-PreferServerAffinity")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "X-BackEndOverrideCookie={back_end}~{}; path=/",
                    uuid::Uuid::new_v4().simple()
                )) {
                    http.headers_mut().append(http::header::SET_COOKIE, v);
                }
            }
            (http, code)
        }
        EwsRequest::Unsubscribe(r) => {
            let message = unsubscribe(&mut inner, who, &r);
            drop(inner);
            let code = message.code.as_str().to_owned();
            let body = UnsubscribeResponse {
                messages: vec![message],
            }
            .to_xml();
            (answer(state, StatusCode::OK, body), code)
        }
        EwsRequest::GetStreamingEvents(r) => {
            let routed = cookie_back_end(headers)
                .or_else(|| anchor.map(back_end_of))
                .unwrap_or_else(|| back_end_of(&mailbox));
            open_connection(state, inner, who, routed, &r, back_off)
        }
        _ => {
            drop(inner);
            fault(
                state,
                ResponseCode::ERROR_INVALID_REQUEST,
                "not a notification operation",
            )
        }
    }
}

fn header_anchor(headers: &HeaderMap) -> Option<&str> {
    header_value(headers, "X-AnchorMailbox")
}

fn subscribe(
    inner: &mut Inner,
    who: &Principal,
    mailbox: &str,
    anchor: Option<&str>,
    headers: &HeaderMap,
    r: &SubscribeRequest,
    back_off: Duration,
) -> (SubscribeResponse, String, &'static str) {
    let refuse = |code: ResponseCode, text: &str, back_off: Option<Duration>| {
        let mut message = ResponseMessage::error(code.clone(), text);
        message.back_off = back_off;
        (
            SubscribeResponse {
                messages: vec![message],
            },
            code.as_str().to_owned(),
            BACK_ENDS[0],
        )
    };
    if let Some(code) = inner.streaming.settings.refuse_subscribe.clone() {
        let code = ResponseCode::new(code);
        let wait = (code == ResponseCode::ERROR_SERVER_BUSY).then_some(back_off);
        if wait.is_some() {
            // As for any throttled request: the account's next request before the back-off
            // ends is early (counted in its stats, and refused busy again).
            if let Some(account) = inner.account_mut(&who.username) {
                account.not_before = Some(Instant::now() + back_off);
            }
        }
        return refuse(code, "The server refused the subscription.", wait);
    }
    let mut folders = HashSet::new();
    for id in &r.folder_ids {
        let (address, name) = match id {
            BaseFolderId::Distinguished { name, mailbox: m } => (
                m.as_deref()
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| mailbox.to_owned()),
                *name,
            ),
            BaseFolderId::Folder(f) => match parse_folder_id(&f.id) {
                Some((a, name)) => (a.to_ascii_lowercase(), name),
                None => {
                    return refuse(
                        ResponseCode::ERROR_INVALID_ID_MALFORMED,
                        "Id is malformed.",
                        None,
                    )
                }
            },
        };
        if address != mailbox {
            // Streaming subscriptions to another mailbox through delegate access: refused.
            return refuse(
                ResponseCode::new("ErrorSubscriptionDelegateAccessNotSupported"),
                "Subscriptions are not supported for delegate user access.",
                None,
            );
        }
        if !MAILBOX_FOLDERS.contains(&name) {
            return refuse(
                ResponseCode::ERROR_FOLDER_NOT_FOUND,
                "The specified folder could not be found in the store.",
                None,
            );
        }
        folders.insert(name);
    }
    let all = r.subscribe_to_all_folders == Some(true);
    if all != folders.is_empty() {
        return refuse(
            ResponseCode::new("ErrorInvalidSubscriptionRequest"),
            "Name folders or SubscribeToAllFolders, not both and not neither.",
            None,
        );
    }
    let back_end = cookie_back_end(headers)
        .or_else(|| anchor.map(back_end_of))
        .unwrap_or_else(|| back_end_of(mailbox));
    let s = &mut inner.streaming;
    s.next_id += 1;
    let id = format!(
        "Jg{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{back_end}\0sub\0{}", s.next_id)
        )
    );
    s.subs.insert(
        id.clone(),
        Sub {
            owner: who.username.to_ascii_lowercase(),
            mailbox: mailbox.to_owned(),
            folders: (!all).then_some(folders),
            events: r.event_types.iter().copied().collect(),
            back_end,
            queue: VecDeque::new(),
            watermark: 0,
            connection: None,
            idle_since: Instant::now(),
        },
    );
    s.stats.subscribed += 1;
    (
        SubscribeResponse {
            messages: vec![ResponseMessage::success(SubscriptionPayload {
                subscription_id: id,
                watermark: None,
            })],
        },
        "NoError".into(),
        back_end,
    )
}

fn unsubscribe(inner: &mut Inner, who: &Principal, r: &UnsubscribeRequest) -> ResponseMessage<()> {
    let s = &mut inner.streaming;
    match s.subs.get(&r.subscription_id) {
        Some(sub) if sub.owner == who.username.to_ascii_lowercase() => {
            if let Some(sub) = s.subs.remove(&r.subscription_id) {
                if let Some(conn) = sub.connection {
                    s.errors.entry(conn).or_default().push((
                        ResponseCode::new("ErrorSubscriptionUnsubscribed"),
                        vec![r.subscription_id.clone()],
                    ));
                    s.wake.notify_waiters();
                }
            }
            s.stats.unsubscribed += 1;
            ResponseMessage::success(())
        }
        Some(_) => ResponseMessage::error(
            ResponseCode::new("ErrorSubscriptionAccessDenied"),
            "Only the creator of a subscription may use it.",
        ),
        None => ResponseMessage::error(
            ResponseCode::new("ErrorSubscriptionNotFound"),
            "The specified subscription was not found.",
        ),
    }
}

fn envelope(message: ResponseMessage<StreamingEvents>) -> String {
    GetStreamingEventsResponse {
        messages: vec![message],
    }
    .to_xml()
}

fn error_envelope(code: ResponseCode, text: &str, ids: Vec<String>) -> String {
    let mut message = ResponseMessage::error(code, text);
    message.payload = Some(StreamingEvents {
        error_subscription_ids: ids,
        ..StreamingEvents::default()
    });
    envelope(message)
}

fn open_connection(
    state: &Arc<FakeState>,
    mut inner: std::sync::MutexGuard<'_, Inner>,
    who: &Principal,
    routed: &'static str,
    r: &GetStreamingEventsRequest,
    back_off: Duration,
) -> (Response, String) {
    let owner = who.username.to_ascii_lowercase();
    let s = &mut inner.streaming;
    if r.subscription_ids.len() > s.settings.max_subscriptions_per_connection {
        let body = error_envelope(
            ResponseCode::new("ErrorInvalidArgument"),
            &format!(
                "A connection may carry at most {} subscriptions.",
                s.settings.max_subscriptions_per_connection
            ),
            vec![],
        );
        drop(inner);
        return (
            answer(state, StatusCode::OK, body),
            "ErrorInvalidArgument".into(),
        );
    }
    let open_for_owner = s.open.values().filter(|(o, _)| *o == owner).count();
    if open_for_owner >= s.settings.max_connections_per_account as usize {
        let mut message = ResponseMessage::<StreamingEvents>::error(
            ResponseCode::ERROR_EXCEEDED_CONNECTION_COUNT,
            "You have exceeded the maximum number of open streaming connections.",
        );
        message.back_off = Some(back_off);
        let body = envelope(message);
        drop(inner);
        return (
            answer(state, StatusCode::OK, body),
            "ErrorExceededConnectionCount".into(),
        );
    }
    let mut accepted = Vec::new();
    let mut missing = Vec::new();
    let mut denied = Vec::new();
    for id in &r.subscription_ids {
        match s.subs.get(id) {
            Some(sub) if sub.owner != owner => denied.push(id.clone()),
            Some(sub) if sub.back_end == routed => accepted.push(id.clone()),
            // Routed to a back end that does not hold it: Exchange cannot find it there.
            _ => missing.push(id.clone()),
        }
    }
    s.next_connection += 1;
    let conn = s.next_connection;
    let mut first = Vec::new();
    if !missing.is_empty() {
        first.push(error_envelope(
            ResponseCode::new("ErrorSubscriptionNotFound"),
            "The specified subscription was not found.",
            missing,
        ));
    }
    if !denied.is_empty() {
        first.push(error_envelope(
            ResponseCode::new("ErrorSubscriptionAccessDenied"),
            "Only the creator of a subscription may use it.",
            denied,
        ));
    }
    if accepted.is_empty() {
        let code = if first.is_empty() {
            "ErrorSubscriptionNotFound"
        } else {
            "NoError"
        };
        let body = first.join("");
        drop(inner);
        for b in &first {
            record(state, b);
        }
        return (xml(StatusCode::OK, body), code.into());
    }
    // A subscription moves to the newest connection; the older one is told so.
    for id in &accepted {
        if let Some(sub) = s.subs.get_mut(id) {
            if let Some(old) = sub.connection.replace(conn) {
                s.errors.entry(old).or_default().push((
                    ResponseCode::new("ErrorNewEventStreamConnectionOpened"),
                    vec![id.clone()],
                ));
            }
        }
    }
    s.open.insert(conn, (owner, false));
    s.stats.connections_opened += 1;
    s.stats.peak_open_connections = s.stats.peak_open_connections.max(s.open.len() as u64);
    s.stats.peak_subscriptions_per_connection = s
        .stats
        .peak_subscriptions_per_connection
        .max(accepted.len());
    let minute = Duration::from_millis(s.settings.minute_ms);
    let deadline = Instant::now() + minute * u32::from(r.connection_timeout_minutes);
    let keep_alive = Duration::from_millis(s.settings.keep_alive_ms);
    let wake = s.wake.clone();
    s.wake.notify_waiters();
    drop(inner);

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let state = state.clone();
    tokio::spawn(async move {
        let mut pending: Vec<String> = first;
        let mut last_sent = Instant::now();
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (envelopes, stop, finished) = {
                let mut inner = state.lock();
                collect(&mut inner, conn)
            };
            pending.extend(envelopes);
            if stop {
                // A dropped connection: end the body with an error, no Closed.
                let _ = tx
                    .send(Err(std::io::Error::other("connection dropped")))
                    .await;
                break;
            }
            let now = Instant::now();
            let closing = now >= deadline || finished;
            if pending.is_empty() && !closing && now.duration_since(last_sent) >= keep_alive {
                pending.push(envelope(ResponseMessage::success(StreamingEvents {
                    connection_status: Some(ConnectionStatus::Ok),
                    ..StreamingEvents::default()
                })));
            }
            if closing {
                pending.push(envelope(ResponseMessage::success(StreamingEvents {
                    connection_status: Some(ConnectionStatus::Closed),
                    ..StreamingEvents::default()
                })));
            }
            let mut gone = false;
            for body in pending.drain(..) {
                record(&state, &body);
                if tx.send(Ok(Bytes::from(body))).await.is_err() {
                    gone = true;
                    break;
                }
                last_sent = Instant::now();
            }
            if gone || closing {
                break;
            }
            let next_keep_alive = last_sent + keep_alive;
            let until = next_keep_alive.min(deadline);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
                _ = tx.closed() => break,
            }
        }
        let mut inner = state.lock();
        detach(&mut inner, conn);
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let response = (
        StatusCode::OK,
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        body,
    )
        .into_response();
    (response, "NoError".into())
}

/// The envelopes due on connection `conn`: queued events, errors; whether it must stop
/// (dropped) and whether it has nothing left to carry.
fn collect(inner: &mut Inner, conn: u64) -> (Vec<String>, bool, bool) {
    let s = &mut inner.streaming;
    let stop = s.open.get(&conn).is_none_or(|(_, stop)| *stop);
    let mut out = Vec::new();
    for (code, ids) in s.errors.remove(&conn).unwrap_or_default() {
        out.push(error_envelope(
            code,
            "The subscription is no longer served on this connection.",
            ids,
        ));
    }
    let mut notifications = Vec::new();
    let mut sent = 0u64;
    for (id, sub) in s
        .subs
        .iter_mut()
        .filter(|(_, s)| s.connection == Some(conn))
    {
        if sub.queue.is_empty() {
            continue;
        }
        let previous = sub.watermark;
        let events: Vec<NotificationEvent> = sub
            .queue
            .drain(..)
            .map(|e| {
                sub.watermark += 1;
                NotificationEvent::Object {
                    kind: e.kind,
                    watermark: Some(format!("W{:010}", sub.watermark)),
                    time_stamp: exsync_ews::types::whole_seconds(Utc::now()),
                    object: ChangedObject::Item(ItemId::new(e.item_id)),
                    parent_folder_id: FolderId::new(e.parent),
                    old: e.old.map(|(item, parent)| {
                        Box::new(OldLocation {
                            object: ChangedObject::Item(ItemId::new(item)),
                            parent_folder_id: FolderId::new(parent),
                        })
                    }),
                    unread_count: None,
                }
            })
            .collect();
        sent += events.len() as u64;
        notifications.push(Notification {
            subscription_id: id.clone(),
            previous_watermark: Some(format!("W{previous:010}")),
            more_events: Some(false),
            events,
        });
    }
    s.stats.events_sent += sent;
    if !notifications.is_empty() {
        notifications.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        out.push(envelope(ResponseMessage::success(StreamingEvents {
            notifications,
            ..StreamingEvents::default()
        })));
    }
    let finished = !s.subs.values().any(|sub| sub.connection == Some(conn));
    (out, stop, finished)
}

fn detach(inner: &mut Inner, conn: u64) {
    let s = &mut inner.streaming;
    s.open.remove(&conn);
    s.errors.remove(&conn);
    for sub in s.subs.values_mut().filter(|s| s.connection == Some(conn)) {
        sub.connection = None;
        sub.idle_since = Instant::now();
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `/_fake/streaming` routes.
pub(crate) fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/_fake/streaming", get(get_streaming).put(put_streaming))
        .route("/_fake/streaming/expire", post(expire))
        .route("/_fake/streaming/drop", post(drop_connections))
        .route(
            "/_fake/mailboxes/{address}/items/{id}/move",
            post(move_item),
        )
        .with_state(state)
}

fn api_error(e: FakeError) -> Response {
    let status = match e {
        FakeError::Invalid(_) => StatusCode::BAD_REQUEST,
        FakeError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({ "error": e.to_string() }))).into_response()
}

async fn get_streaming(State(s): State<Arc<FakeState>>) -> Response {
    let (settings, stats) = s.streaming_stats();
    Json(json!({ "settings": settings, "stats": stats })).into_response()
}

async fn put_streaming(State(s): State<Arc<FakeState>>, bytes: Bytes) -> Response {
    let patch: StreamingPatch = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => return api_error(FakeError::Invalid(format!("bad JSON body: {e}"))),
    };
    match s.update_streaming(&patch) {
        Ok(settings) => Json(json!({ "settings": settings })).into_response(),
        Err(e) => api_error(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExpireBody {
    #[serde(default)]
    mailbox: Option<String>,
}

async fn expire(State(s): State<Arc<FakeState>>, bytes: Bytes) -> Response {
    let body: ExpireBody = if bytes.is_empty() {
        ExpireBody::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(b) => b,
            Err(e) => return api_error(FakeError::Invalid(format!("bad JSON body: {e}"))),
        }
    };
    let expired = s.lock().streaming.expire(body.mailbox.as_deref());
    Json(json!({ "expired": expired })).into_response()
}

async fn drop_connections(State(s): State<Arc<FakeState>>) -> Response {
    let dropped = s.lock().streaming.drop_connections();
    Json(json!({ "dropped": dropped })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    folder: String,
}

async fn move_item(
    State(s): State<Arc<FakeState>>,
    axum::extract::Path((address, id)): axum::extract::Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    let body: MoveBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return api_error(FakeError::Invalid(format!("bad JSON body: {e}"))),
    };
    match s.move_item(&address, &id, &body.folder) {
        Ok(new_id) => Json(json!({ "id": new_id })).into_response(),
        Err(e) => api_error(e),
    }
}

//! Change-notification subscriptions of the fake Graph (GD-SUB, GD-WH, GD-ONO, GD-LC), as
//! strict as Graph: `POST /subscriptions` (the validation handshake with the notification and
//! lifecycle URLs first, within 10 s; HTTPS only unless `allow_http_notification_urls`; at
//! most 4,230 minutes ahead; `clientState` at most 128 characters; at most 1,000 per mailbox;
//! the mailbox reached as any other Graph call: unknown user 404, outside the application's
//! scope 403), `GET /subscriptions`, and `GET`/`PATCH`/`DELETE /subscriptions/{id}` (an
//! application sees only its own; an expired one is gone).
//!
//! Owns the subscriptions, the delivery of change notifications (POSTed asynchronously for
//! every created, updated or deleted item of a subscribed resource, whichever side changed it:
//! EWS, Graph or the control API; 3 s per attempt, retried with back-off for
//! `notification_retry_ms`), lifecycle notifications sent on request of the control API, and
//! the counters `GET /_fake/graph/subscriptions` shows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use exsync_ews::types::DistinguishedFolderName;
use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::routes::{admit, reach_mailbox, sign_in};
use super::wire::{GraphErr, OpResult, Reply};
use super::{ids, key, GraphLogEntry, GraphState};
use crate::FakeError;

/// The longest lifetime of a message, event or contact subscription (GD-LIFE-TBL).
pub const MAX_LIFETIME_MINUTES: i64 = 4230;
/// Subscriptions one mailbox may have, all applications together (GD-ONO).
pub const MAX_PER_MAILBOX: usize = 1000;
/// Graph waits this long for the validation answer (GD-WH-VALID).
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Graph waits this long for a notification's answer (GD-WH).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// `clientState` is at most this long (GD-SUB).
const MAX_CLIENT_STATE: usize = 128;
/// The fake tenant's id in notifications.
pub const FAKE_TENANT_ID: &str = "f4ce0000-0000-4000-8000-00000000fa4e";

/// What happened to an item, as a subscription's `changeType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum GraphChange {
    Created,
    Updated,
    Deleted,
}

impl GraphChange {
    fn as_str(self) -> &'static str {
        match self {
            GraphChange::Created => "created",
            GraphChange::Updated => "updated",
            GraphChange::Deleted => "deleted",
        }
    }

    fn parse(text: &str) -> Option<GraphChange> {
        match text {
            "created" => Some(GraphChange::Created),
            "updated" => Some(GraphChange::Updated),
            "deleted" => Some(GraphChange::Deleted),
            _ => None,
        }
    }
}

/// One item change of the fake Exchange's store.
#[derive(Debug, Clone)]
pub(crate) struct ItemChange {
    pub(crate) mailbox: String,
    pub(crate) folder: DistinguishedFolderName,
    pub(crate) item: u64,
    pub(crate) change: GraphChange,
    pub(crate) change_key: Option<String>,
}

/// Where the store sends its item changes (never blocks: the store's lock is held).
#[derive(Debug, Clone)]
pub(crate) struct ChangeSender(mpsc::UnboundedSender<ItemChange>);

impl ChangeSender {
    pub(crate) fn send(&self, change: ItemChange) {
        let _ = self.0.send(change);
    }
}

/// What a subscription watches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watched {
    /// `users/{id}/messages`: every mail folder.
    Messages,
    /// `users/{id}/mailFolders/{id}/messages`.
    MailFolder(DistinguishedFolderName),
    /// `users/{id}/events`.
    Events,
    /// `users/{id}/contacts` or `users/{id}/contactFolders/{id}/contacts`.
    Contacts,
}

impl Watched {
    fn covers(&self, folder: DistinguishedFolderName) -> bool {
        use DistinguishedFolderName as F;
        match self {
            Watched::Messages => !matches!(
                folder,
                F::Calendar | F::Contacts | F::Tasks | F::MsgFolderRoot | F::Root
            ),
            Watched::MailFolder(f) => *f == folder,
            Watched::Events => folder == F::Calendar,
            Watched::Contacts => folder == F::Contacts,
        }
    }

    /// `@odata.type` and the collection name in a notification's `resource`.
    fn entity(&self) -> (&'static str, &'static str) {
        match self {
            Watched::Messages | Watched::MailFolder(_) => ("#Microsoft.Graph.Message", "Messages"),
            Watched::Events => ("#Microsoft.Graph.Event", "Events"),
            Watched::Contacts => ("#Microsoft.Graph.Contact", "Contacts"),
        }
    }
}

/// One subscription.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    id: String,
    app: String,
    mailbox: String,
    /// The user segment as subscribed (it names the user in notifications).
    user: String,
    resource: String,
    watched: Watched,
    changes: Vec<GraphChange>,
    notification_url: String,
    lifecycle_url: Option<String>,
    expiration: DateTime<Utc>,
    client_state: Option<String>,
    /// Created with `Prefer: IdType="ImmutableId"`: notifications carry immutable ids.
    immutable: bool,
    created: DateTime<Utc>,
    counters: SubCounters,
}

/// What happened to one subscription's notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubCounters {
    /// PATCHes that moved its expiry.
    pub renewals: u64,
    /// Change notifications answered 2xx.
    pub delivered: u64,
    /// Delivery attempts that failed (non-2xx, timeout, unreachable).
    pub failed_attempts: u64,
    /// Change notifications given up after `notification_retry_ms`.
    pub abandoned: u64,
    /// Change notifications dropped by `drop_notifications`.
    pub dropped: u64,
    /// Lifecycle notifications sent.
    pub lifecycle_sent: u64,
}

/// One subscription as `GET /_fake/graph/subscriptions` lists it (no `clientState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// Its id.
    pub id: String,
    /// The application (client id) that created it.
    pub app: String,
    /// The mailbox it watches.
    pub mailbox: String,
    /// The resource as subscribed.
    pub resource: String,
    /// `created,updated,deleted` as subscribed.
    pub change_type: String,
    /// Where notifications go.
    pub notification_url: String,
    /// Where lifecycle notifications go.
    pub lifecycle_notification_url: Option<String>,
    /// When it lapses.
    pub expiration_date_time: DateTime<Utc>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Whether notifications carry immutable ids.
    pub immutable_ids: bool,
    /// Its counters.
    pub counters: SubCounters,
}

/// The subscriptions of the fake Graph and its refusals.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    subs: BTreeMap<String, Sub>,
    /// Creations refused because the validation handshake failed.
    pub(crate) validations_failed: u64,
}

impl Subscriptions {
    /// Forget the expired ones (they stop delivering and vanish).
    fn purge(&mut self, now: DateTime<Utc>) {
        self.subs.retain(|_, s| s.expiration > now);
    }
}

/// A lifecycle event the control API can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    /// The app must renew (or reauthorize) the subscription.
    ReauthorizationRequired,
    /// The subscription was removed: create it again.
    SubscriptionRemoved,
    /// Notifications were missed: resynchronise by delta.
    Missed,
}

impl LifecycleEvent {
    fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::ReauthorizationRequired => "reauthorizationRequired",
            LifecycleEvent::SubscriptionRemoved => "subscriptionRemoved",
            LifecycleEvent::Missed => "missed",
        }
    }
}

/// What a lifecycle request of the control API did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleOutcome {
    /// Whether the lifecycle URL answered 2xx.
    pub delivered: bool,
    /// Its status, when it answered.
    pub status: Option<u16>,
    /// Whether the subscription was removed (`subscriptionRemoved`).
    pub removed: bool,
}

/// The request body of `POST` and `PATCH /subscriptions`: every property of
/// `microsoft.graph.subscription` (any other is refused).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creator_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption_certificate_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiration_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    include_resource_data: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latest_supported_tls_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lifecycle_notification_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notification_query_options: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notification_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notification_url_app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
}

fn invalid(message: impl Into<String>) -> GraphErr {
    GraphErr::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

fn not_found(id: &str) -> GraphErr {
    GraphErr::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The subscription '{id}' was not found."),
    )
}

fn format_time(at: DateTime<Utc>) -> String {
    // Graph writes seven fractional digits (100 ns ticks).
    use chrono::Timelike;
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.nanosecond() % 1_000_000_000 / 100
    )
}

/// A subscription as Graph answers it.
fn to_json(sub: &Sub, base: &str) -> Value {
    json!({
        "@odata.context": format!("{base}/$metadata#subscriptions/$entity"),
        "id": sub.id,
        "resource": sub.resource,
        "applicationId": sub.app,
        "changeType": sub.changes.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","),
        "clientState": sub.client_state,
        "notificationUrl": sub.notification_url,
        "notificationQueryOptions": null,
        "lifecycleNotificationUrl": sub.lifecycle_url,
        "expirationDateTime": format_time(sub.expiration),
        "creatorId": sub.app,
        "includeResourceData": false,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": null,
        "encryptionCertificateId": null,
        "notificationUrlAppId": null,
    })
}

fn view(sub: &Sub) -> SubscriptionView {
    SubscriptionView {
        id: sub.id.clone(),
        app: sub.app.clone(),
        mailbox: sub.mailbox.clone(),
        resource: sub.resource.clone(),
        change_type: sub
            .changes
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(","),
        notification_url: sub.notification_url.clone(),
        lifecycle_notification_url: sub.lifecycle_url.clone(),
        expiration_date_time: sub.expiration,
        created: sub.created,
        immutable_ids: sub.immutable,
        counters: sub.counters.clone(),
    }
}

/// The user segment and what a `resource` watches.
fn parse_resource(resource: &str) -> Result<(String, Watched, String), GraphErr> {
    if resource.contains('?') {
        return Err(invalid(
            "Query options in a subscription's resource are not supported by the fake Graph.",
        ));
    }
    let segs = super::routes::segments(resource);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let unsupported = || {
        invalid(format!(
            "Unsupported resource '{resource}': the fake Graph subscribes to users/{{id}}/messages, \
             users/{{id}}/mailFolders/{{id}}/messages, users/{{id}}/events, users/{{id}}/contacts \
             and users/{{id}}/contactFolders/{{id}}/contacts."
        ))
    };
    match s.as_slice() {
        ["me", ..] => Err(GraphErr::bad_request(
            "/me request is only valid with delegated authentication flow.",
        )),
        ["users", user, rest @ ..] => {
            let user = (*user).to_owned();
            let (watched, folder) = match rest {
                ["messages"] => (Watched::Messages, None),
                ["mailFolders", f, "messages"] => (Watched::Messages, Some(("mail", *f))),
                ["events"] => (Watched::Events, None),
                ["contacts"] => (Watched::Contacts, None),
                ["contactFolders", f, "contacts"] => (Watched::Contacts, Some(("contacts", *f))),
                _ => return Err(unsupported()),
            };
            Ok((
                user,
                watched,
                folder.map(|(k, f)| format!("{k}:{f}")).unwrap_or_default(),
            ))
        }
        _ => Err(unsupported()),
    }
}

/// An absolute URL Graph may call: HTTPS (HTTP only with `allow_http_notification_urls`).
fn check_url(name: &str, value: &str, allow_http: bool) -> Result<(), GraphErr> {
    let url = url::Url::parse(value)
        .map_err(|_| invalid(format!("{name} '{value}' is not an absolute URL.")))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http => Ok(()),
        _ => Err(invalid(format!(
            "{name} must be an https URL; '{value}' is not."
        ))),
    }
}

fn check_expiration(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, GraphErr> {
    let at = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            invalid(format!(
                "expirationDateTime '{raw}' is not a date and time."
            ))
        })?;
    if at <= now {
        return Err(invalid(
            "Subscription expiration must be in the future (expirationDateTime is in the past).",
        ));
    }
    if at > now + chrono::Duration::minutes(MAX_LIFETIME_MINUTES) {
        return Err(invalid(format!(
            "Subscription expiration can only be {MAX_LIFETIME_MINUTES} minutes in the future."
        )));
    }
    Ok(at)
}

fn parse_changes(raw: &str) -> Result<Vec<GraphChange>, GraphErr> {
    let mut out = Vec::new();
    for part in raw.split(',') {
        let change = GraphChange::parse(part.trim()).ok_or_else(|| {
            invalid(format!(
                "changeType '{raw}' is not valid: use created, updated and deleted, comma-separated."
            ))
        })?;
        if out.contains(&change) {
            return Err(invalid(format!("changeType '{raw}' names a change twice.")));
        }
        out.push(change);
    }
    out.sort();
    Ok(out)
}

fn body_of(body: &Bytes) -> Result<SubscriptionBody, GraphErr> {
    if body.is_empty() {
        return Err(GraphErr::body_read("The request body is empty."));
    }
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| GraphErr::body_read(format!("The request body is not JSON: {e}")))?;
    super::routes::typed(raw, "subscription")
}

/// A client for the notification and lifecycle URLs (trusting the system's CAs).
pub(crate) fn http_client() -> reqwest::Client {
    let trust = exsync_ews::tls::Trust::load(&exsync_ews::tls::TrustSettings {
        system: exsync_ews::tls::SystemRoots::Native,
        ca_file: None,
        accept_invalid_certs: false,
    });
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    let builder = match trust.and_then(|t| t.client_config(&[b"http/1.1"])) {
        Ok(config) => builder.use_preconfigured_tls(config),
        Err(_) => builder,
    };
    builder.build().unwrap_or_default()
}

/// The validation handshake: POST `url?validationToken=…`, a 200 `text/plain` answer whose
/// body is the token within 10 s (GD-WH-VALID). `Err` says what went wrong.
async fn validate(client: &reqwest::Client, url: &str, request_id: &str) -> Result<(), String> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {request_id}"
    );
    let mut target = url::Url::parse(url).map_err(|e| e.to_string())?;
    target
        .query_pairs_mut()
        .append_pair("validationToken", &token);
    let answer = client
        .post(target)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .timeout(VALIDATION_TIMEOUT)
        .body(Vec::new())
        .send()
        .await
        .map_err(|e| format!("the endpoint could not be reached ({e})"))?;
    let status = answer.status();
    let content_type = answer
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = answer.text().await.unwrap_or_default();
    if status != StatusCode::OK {
        return Err(format!("the endpoint answered {status}"));
    }
    if !content_type.starts_with("text/plain") {
        return Err(format!(
            "the endpoint answered Content-Type '{content_type}', not text/plain"
        ));
    }
    if body != token {
        return Err("the endpoint did not answer the validation token".into());
    }
    Ok(())
}

/// `/v1.0/subscriptions…`: sign in, then the operation.
pub(crate) async fn serve(
    g: &Arc<GraphState>,
    method: &Method,
    segs: &[String],
    headers: &HeaderMap,
    body: Bytes,
    base: &str,
    entry: &mut GraphLogEntry,
) -> OpResult {
    // Created with `Prefer: IdType="ImmutableId"`, its notifications carry immutable ids.
    let immutable = super::query::Prefer::parse(headers).immutable;
    let operation = match (method.as_str(), segs.len()) {
        ("POST", 1) => "subscription.create",
        ("GET", 1) => "subscription.list",
        ("GET", 2) => "subscription.get",
        ("PATCH", 2) => "subscription.update",
        ("DELETE", 2) => "subscription.delete",
        _ => {
            g.lock().stats.refused_before_mailbox += 1;
            return Err(GraphErr::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "The HTTP method is not allowed on this resource.",
            ));
        }
    };
    entry.operation = Some(operation.to_owned());
    let app = match sign_in(g, headers) {
        Ok(app) => app,
        Err(e) => {
            g.lock().stats.refused_before_mailbox += 1;
            return Err(e);
        }
    };
    entry.app = Some(app.clone());
    let count = |g: &GraphState| {
        *g.lock()
            .stats
            .operations
            .entry(operation.to_owned())
            .or_default() += 1;
    };
    let reply = match operation {
        "subscription.create" => {
            let request: SubscriptionBody = body_of(&body)?;
            create(g, &app, request, base, immutable, entry, count).await?
        }
        "subscription.list" => {
            count(g);
            let now = Utc::now();
            let mut inner = g.lock();
            inner.subscriptions.purge(now);
            let own: Vec<Value> = inner
                .subscriptions
                .subs
                .values()
                .filter(|s| key(&s.app) == key(&app))
                .map(|s| {
                    let mut v = to_json(s, base);
                    if let Value::Object(map) = &mut v {
                        map.remove("@odata.context");
                    }
                    v
                })
                .collect();
            Reply::ok(json!({
                "@odata.context": format!("{base}/$metadata#subscriptions"),
                "value": own,
            }))
        }
        _ => {
            let id = segs[1].clone();
            let sub = {
                let mut inner = g.lock();
                inner.subscriptions.purge(Utc::now());
                inner
                    .subscriptions
                    .subs
                    .get(&id)
                    .filter(|s| key(&s.app) == key(&app))
                    .cloned()
            };
            let sub = match sub {
                Some(sub) => sub,
                None => {
                    g.lock().stats.refused_before_mailbox += 1;
                    return Err(not_found(&id));
                }
            };
            entry.mailbox = Some(sub.mailbox.clone());
            count(g);
            let _slot = admit(g, &app, &sub.mailbox, operation)?;
            match operation {
                "subscription.get" => Reply::ok(to_json(&sub, base)),
                "subscription.delete" => {
                    g.lock().subscriptions.subs.remove(&id);
                    Reply::empty(StatusCode::NO_CONTENT)
                }
                _ => renew(g, &sub, body_of(&body)?, base).await?,
            }
        }
    };
    if let Some(traffic) = &g.traffic {
        if !body.is_empty() && reply.status.is_success() {
            let path = format!("/{}", segs.join("/"));
            traffic.request(method.as_str(), &path, &body);
        }
    }
    Ok(reply)
}

async fn create(
    g: &Arc<GraphState>,
    app: &str,
    request: SubscriptionBody,
    base: &str,
    immutable: bool,
    entry: &mut GraphLogEntry,
    count: impl Fn(&GraphState),
) -> OpResult {
    let required = |value: &Option<String>, name: &str| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("The subscription's {name} is required.")))
    };
    let change_type = required(&request.change_type, "changeType")?;
    let notification_url = required(&request.notification_url, "notificationUrl")?;
    let resource = required(&request.resource, "resource")?;
    let expiration = required(&request.expiration_date_time, "expirationDateTime")?;
    if request.id.is_some() || request.application_id.is_some() || request.creator_id.is_some() {
        return Err(invalid(
            "id, applicationId and creatorId are assigned by the service.",
        ));
    }
    if request.include_resource_data == Some(true) {
        return Err(invalid(
            "Notifications with resource data need an encryption certificate; the fake Graph \
             does not offer them.",
        ));
    }
    let changes = parse_changes(&change_type)?;
    if let Some(state) = &request.client_state {
        if state.chars().count() > MAX_CLIENT_STATE {
            return Err(invalid(format!(
                "clientState is longer than {MAX_CLIENT_STATE} characters."
            )));
        }
    }
    let allow_http = g.faults().allow_http_notification_urls;
    check_url("notificationUrl", &notification_url, allow_http)?;
    if let Some(url) = &request.lifecycle_notification_url {
        check_url("lifecycleNotificationUrl", url, allow_http)?;
    }
    let expiration = check_expiration(&expiration, Utc::now())?;
    let (user, watched, folder) = parse_resource(&resource)?;
    let mailbox = reach_mailbox(g, app, &user, true)?;
    entry.mailbox = Some(mailbox.clone());
    let watched = match folder.split_once(':') {
        Some(("mail", f)) => Watched::MailFolder(super::mail::mail_folder(&mailbox, f)?),
        Some(("contacts", f)) => {
            super::items::contact_folder(&mailbox, f)?;
            Watched::Contacts
        }
        _ => watched,
    };
    count(g);
    let _slot = admit(g, app, &mailbox, "subscription.create")?;
    let request_id = entry.request_id.clone();
    let client = g.http.clone();
    let mut failure = validate(&client, &notification_url, &request_id)
        .await
        .err()
        .map(|e| format!("notificationUrl: {e}"));
    if failure.is_none() {
        if let Some(url) = &request.lifecycle_notification_url {
            failure = validate(&client, url, &request_id)
                .await
                .err()
                .map(|e| format!("lifecycleNotificationUrl: {e}"));
        }
    }
    if let Some(reason) = failure {
        g.lock().subscriptions.validations_failed += 1;
        return Err(invalid(format!(
            "Subscription validation request failed. Notification endpoint must respond with \
             200 OK to validation request. ({reason})"
        )));
    }
    let mut inner = g.lock();
    let now = Utc::now();
    inner.subscriptions.purge(now);
    let on_mailbox = inner
        .subscriptions
        .subs
        .values()
        .filter(|s| s.mailbox == mailbox)
        .count();
    if on_mailbox >= MAX_PER_MAILBOX {
        return Err(invalid(format!(
            "The mailbox already has the maximum of {MAX_PER_MAILBOX} subscriptions."
        )));
    }
    let sub = Sub {
        id: uuid::Uuid::new_v4().to_string(),
        app: app.to_owned(),
        mailbox,
        user,
        resource,
        watched,
        changes,
        notification_url,
        lifecycle_url: request.lifecycle_notification_url.clone(),
        expiration,
        client_state: request.client_state.clone(),
        immutable,
        created: now,
        counters: SubCounters::default(),
    };
    let answer = to_json(&sub, base);
    inner.subscriptions.subs.insert(sub.id.clone(), sub);
    Ok(Reply::created(answer))
}

async fn renew(g: &Arc<GraphState>, sub: &Sub, request: SubscriptionBody, base: &str) -> OpResult {
    let SubscriptionBody {
        expiration_date_time,
        notification_url,
        ..
    } = request.clone();
    let others = SubscriptionBody {
        expiration_date_time: None,
        notification_url: None,
        ..request
    };
    if serde_json::to_value(&others).unwrap_or_default() != json!({}) {
        return Err(invalid(
            "Only expirationDateTime and notificationUrl of a subscription can be updated.",
        ));
    }
    let expiration = expiration_date_time
        .as_deref()
        .map(|raw| check_expiration(raw, Utc::now()))
        .transpose()?;
    if let Some(url) = &notification_url {
        check_url(
            "notificationUrl",
            url,
            g.faults().allow_http_notification_urls,
        )?;
        if let Err(reason) = validate(&g.http, url, &uuid::Uuid::new_v4().to_string()).await {
            g.lock().subscriptions.validations_failed += 1;
            return Err(invalid(format!(
                "Subscription validation request failed. Notification endpoint must respond \
                 with 200 OK to validation request. (notificationUrl: {reason})"
            )));
        }
    }
    let mut inner = g.lock();
    let Some(stored) = inner.subscriptions.subs.get_mut(&sub.id) else {
        return Err(not_found(&sub.id));
    };
    if let Some(at) = expiration {
        stored.expiration = at;
        stored.counters.renewals += 1;
    }
    if let Some(url) = notification_url {
        stored.notification_url = url;
    }
    Ok(Reply::ok(to_json(stored, base)))
}

/// Start delivering change notifications for the store's item changes, until `shutdown`.
pub(crate) fn start_delivery(g: &Arc<GraphState>, shutdown: CancellationToken) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    g.exchange.lock().graph_changes = Some(ChangeSender(tx));
    let g = g.clone();
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                change = rx.recv() => match change {
                    Some(change) => change,
                    None => return,
                },
            };
            dispatch(&g, &change, &shutdown);
        }
    });
}

/// Queue one notification per subscription that watches the change.
fn dispatch(g: &Arc<GraphState>, change: &ItemChange, shutdown: &CancellationToken) {
    let faults = g.faults();
    let now = Utc::now();
    let mut inner = g.lock();
    inner.subscriptions.purge(now);
    let mut deliveries = Vec::new();
    for sub in inner.subscriptions.subs.values_mut() {
        if key(&sub.mailbox) != key(&change.mailbox)
            || !sub.watched.covers(change.folder)
            || !sub.changes.contains(&change.change)
        {
            continue;
        }
        if faults.drop_notifications {
            sub.counters.dropped += 1;
            continue;
        }
        let id = ids::rest_id(&change.mailbox, change.item, sub.immutable);
        let (odata_type, collection) = sub.watched.entity();
        let resource = format!("Users/{}/{collection}/{id}", sub.user);
        let mut data = serde_json::Map::new();
        data.insert("@odata.type".into(), json!(odata_type));
        data.insert("@odata.id".into(), json!(resource));
        if let Some(ck) = &change.change_key {
            data.insert("@odata.etag".into(), json!(format!("W/\"{ck}\"")));
        }
        data.insert("id".into(), json!(id));
        let payload = json!({"value": [{
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": format_time(sub.expiration),
            "changeType": change.change.as_str(),
            "resource": resource,
            "resourceData": Value::Object(data),
            "clientState": sub.client_state,
            "tenantId": FAKE_TENANT_ID,
        }]});
        deliveries.push((sub.id.clone(), sub.notification_url.clone(), payload));
    }
    drop(inner);
    for (id, url, payload) in deliveries {
        let g = g.clone();
        let shutdown = shutdown.clone();
        let delay = Duration::from_millis(faults.notification_delay_ms);
        let retry_for = Duration::from_millis(faults.notification_retry_ms);
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = deliver(&g, &id, &url, &payload, delay, retry_for) => {}
            }
        });
    }
}

/// POST one notification until a 2xx, retrying with back-off for `retry_for`.
async fn deliver(
    g: &Arc<GraphState>,
    id: &str,
    url: &str,
    payload: &Value,
    delay: Duration,
    retry_for: Duration,
) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        let alive = {
            let mut inner = g.lock();
            inner.subscriptions.purge(Utc::now());
            inner.subscriptions.subs.contains_key(id)
        };
        if !alive {
            return;
        }
        let answer = g
            .http
            .post(url)
            .timeout(DELIVERY_TIMEOUT)
            .json(payload)
            .send()
            .await;
        let ok = answer.is_ok_and(|a| a.status().is_success());
        let again = {
            let mut inner = g.lock();
            match inner.subscriptions.subs.get_mut(id) {
                None => false,
                Some(sub) if ok => {
                    sub.counters.delivered += 1;
                    false
                }
                Some(sub) => {
                    sub.counters.failed_attempts += 1;
                    let give_up = started.elapsed() + wait > retry_for;
                    if give_up {
                        sub.counters.abandoned += 1;
                    }
                    !give_up
                }
            }
        };
        if !again {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

impl GraphState {
    /// Every live subscription (all applications), for tests (`GET /_fake/graph/subscriptions`).
    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        let mut inner = self.lock();
        inner.subscriptions.purge(Utc::now());
        inner.subscriptions.subs.values().map(view).collect()
    }

    /// Subscription creations refused because the validation handshake failed.
    pub fn validations_failed(&self) -> u64 {
        self.lock().subscriptions.validations_failed
    }

    /// Send a lifecycle notification for subscription `id` to its lifecycle URL (one attempt,
    /// 3 s); `subscriptionRemoved` removes the subscription whether or not it was delivered.
    pub async fn lifecycle(
        &self,
        id: &str,
        event: LifecycleEvent,
    ) -> Result<LifecycleOutcome, FakeError> {
        let sub = {
            let mut inner = self.lock();
            inner.subscriptions.purge(Utc::now());
            let sub = inner
                .subscriptions
                .subs
                .get_mut(id)
                .ok_or_else(|| FakeError::NotFound(format!("subscription {id}")))?;
            sub.counters.lifecycle_sent += 1;
            sub.clone()
        };
        let removed = event == LifecycleEvent::SubscriptionRemoved;
        if removed {
            self.lock().subscriptions.subs.remove(id);
        }
        let Some(url) = &sub.lifecycle_url else {
            return Ok(LifecycleOutcome {
                delivered: false,
                status: None,
                removed,
            });
        };
        let payload = json!({"value": [{
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": format_time(sub.expiration),
            "tenantId": FAKE_TENANT_ID,
            "clientState": sub.client_state,
            "lifecycleEvent": event.as_str(),
        }]});
        let answer = self
            .http
            .post(url)
            .timeout(DELIVERY_TIMEOUT)
            .json(&payload)
            .send()
            .await;
        let status = answer.as_ref().ok().map(|a| a.status().as_u16());
        Ok(LifecycleOutcome {
            delivered: status.is_some_and(|s| (200..300).contains(&s)),
            status,
            removed,
        })
    }

    /// Move a subscription's expiry (to make it lapse in tests); `NotFound` when unknown.
    pub fn set_subscription_expiry(
        &self,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<(), FakeError> {
        let mut inner = self.lock();
        let sub = inner
            .subscriptions
            .subs
            .get_mut(id)
            .ok_or_else(|| FakeError::NotFound(format!("subscription {id}")))?;
        sub.expiration = expiration;
        inner.subscriptions.purge(Utc::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_name_the_user_and_what_is_watched() {
        let (user, watched, folder) =
            parse_resource("/users/a@b.test/mailFolders('inbox')/messages").unwrap();
        assert_eq!(user, "a@b.test");
        assert_eq!(folder, "mail:inbox");
        assert_eq!(
            watched,
            Watched::Messages,
            "the folder is resolved against the mailbox later"
        );
        let (_, watched, _) = parse_resource("users/a@b.test/events").unwrap();
        assert_eq!(watched, Watched::Events);
        assert!(parse_resource("users/a@b.test/calendar").is_err());
        assert!(parse_resource("me/messages").is_err());
        assert!(parse_resource("users/a@b.test/messages?$filter=isRead eq false").is_err());
    }

    #[test]
    fn change_types_are_the_three_graph_names_once_each() {
        assert_eq!(
            parse_changes("updated, created").unwrap(),
            [GraphChange::Created, GraphChange::Updated]
        );
        assert!(parse_changes("created,created").is_err());
        assert!(parse_changes("moved").is_err());
        assert!(parse_changes("").is_err());
    }

    #[test]
    fn expiry_must_lie_within_the_maximum_lifetime() {
        let now = Utc::now();
        let within = format_time(now + chrono::Duration::minutes(MAX_LIFETIME_MINUTES - 1));
        assert!(check_expiration(&within, now).is_ok());
        let beyond = format_time(now + chrono::Duration::minutes(MAX_LIFETIME_MINUTES + 1));
        assert!(check_expiration(&beyond, now).is_err());
        let past = format_time(now - chrono::Duration::minutes(1));
        assert!(check_expiration(&past, now).is_err());
    }

    #[test]
    fn times_are_written_with_seven_fractional_digits() {
        let at = DateTime::parse_from_rfc3339("2026-12-09T10:11:12.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(at), "2026-12-09T10:11:12.1234567Z");
    }

    #[test]
    fn notification_urls_must_be_https_unless_allowed() {
        assert!(check_url("notificationUrl", "https://x.test/n", false).is_ok());
        assert!(check_url("notificationUrl", "http://x.test/n", false).is_err());
        assert!(check_url("notificationUrl", "http://x.test/n", true).is_ok());
        assert!(check_url("notificationUrl", "/relative", true).is_err());
    }
}

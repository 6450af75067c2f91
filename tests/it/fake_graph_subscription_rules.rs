//! The fake Graph's change-notification subscriptions, rule by rule, over real HTTP: the
//! validation handshake, the refusals Graph gives, delivery of notifications for changes made
//! through any side, renewal, expiry, lifecycle notifications and the per-mailbox limit. A
//! small HTTP server in the test plays the subscriber's endpoint. Every subscription request
//! and answer is validated with `check-json` (the notification payloads themselves are not in
//! Microsoft's API description).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fake_exchange::state::{NewAccount, NewApp};
use fake_exchange::{FakeConfig, FakeExchange, Seed};
use serde_json::{json, Value};
use std::collections::HashMap;

const A: &str = "alice@contoso.test";
const B: &str = "bob@contoso.test";
const PATIENCE: Duration = Duration::from_secs(30);

/// How the test's endpoint answers Graph's validation requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validation {
    /// 200 `text/plain` with the token: what Graph wants.
    Echo,
    /// 200 `text/plain` with something else.
    WrongToken,
    /// 200 with the token as JSON.
    WrongType,
}

/// The subscriber's endpoint: answers validations as told, records notifications, and
/// refuses the first `fail_next` of them with 500.
#[derive(Debug)]
struct Endpoint {
    validation: Validation,
    fail_next: u32,
    received: Vec<Value>,
}

type Shared = Arc<Mutex<Endpoint>>;

async fn endpoint(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut e = shared.lock().unwrap();
    if let Some(token) = query.get("validationToken") {
        return match e.validation {
            Validation::Echo => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain")],
                token.clone(),
            )
                .into_response(),
            Validation::WrongToken => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain")],
                "not the token",
            )
                .into_response(),
            Validation::WrongType => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                json!(token).to_string(),
            )
                .into_response(),
        };
    }
    if e.fail_next > 0 {
        e.fail_next -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    e.received
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    StatusCode::ACCEPTED.into_response()
}

/// The fake (recording its traffic), the app's token, the endpoint and its URL.
struct Sx {
    fake: FakeExchange,
    traffic: tempfile::TempDir,
    http: reqwest::Client,
    token: String,
    shared: Shared,
    url: String,
}

async fn token(http: &reqwest::Client, url: &str, app: &str, secret: &str) -> String {
    let answer: Value = http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("token JSON");
    answer["access_token"].as_str().expect("a token").to_owned()
}

impl Sx {
    async fn start() -> Sx {
        crate::support::world::capture_suite_logs();
        let traffic = tempfile::tempdir().unwrap();
        let app = |id: &str, secret: &str| NewApp {
            client_id: id.into(),
            client_secret: Some(secret.into()),
            certificate: None,
            tenant: None,
            impersonate: None,
        };
        let seed = Seed {
            accounts: [A, B]
                .iter()
                .map(|a| NewAccount {
                    address: Some((*a).to_owned()),
                    username: None,
                    password: "pw".into(),
                })
                .collect(),
            apps: vec![app("graph-app", "s1"), app("other-app", "s2")],
            ..Seed::default()
        };
        let fake = FakeExchange::start(FakeConfig {
            seed: Some(seed),
            graph: true,
            traffic_dir: Some(traffic.path().to_owned()),
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let token = token(&http, &fake.token_url(), "graph-app", "s1").await;
        let shared: Shared = Arc::new(Mutex::new(Endpoint {
            validation: Validation::Echo,
            fail_next: 0,
            received: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/hook", post(endpoint))
            .route("/lifecycle", post(endpoint))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Sx {
            fake,
            traffic,
            http,
            token,
            shared,
            url,
        }
    }

    fn lifecycle_url(&self) -> String {
        self.url.replace("/hook", "/lifecycle")
    }

    async fn graph(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.fake.graph_url().unwrap());
        let mut request = self.http.request(method, url).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    async fn create(&self, body: Value) -> (u16, Value) {
        self.graph(
            reqwest::Method::POST,
            "/subscriptions",
            Some(body),
            &self.token,
            &[("Prefer", "IdType=\"ImmutableId\"")],
        )
        .await
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.fake.base_url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn allow_http(&self) {
        self.control(
            reqwest::Method::PUT,
            "/_fake/graph/faults",
            Some(json!({"allow_http_notification_urls": true})),
        )
        .await;
    }

    async fn listed(&self) -> Vec<Value> {
        self.control(reqwest::Method::GET, "/_fake/graph/subscriptions", None)
            .await["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn received(&self) -> Vec<Value> {
        self.shared.lock().unwrap().received.clone()
    }

    async fn wait_received(&self, n: usize) -> Vec<Value> {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let got = self.received();
                if got.len() >= n {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("gave up waiting for {n} notifications"))
    }

    fn check_traffic(&self) {
        crate::fake_graph_rules::check_graph_traffic(self.traffic.path());
        let suite = crate::support::world::traffic_dir();
        if std::fs::create_dir_all(&suite).is_ok() {
            for entry in std::fs::read_dir(self.traffic.path()).unwrap().flatten() {
                let _ = std::fs::copy(entry.path(), suite.join(entry.file_name()));
            }
        }
    }
}

fn in_minutes(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

fn subscription(sx: &Sx, resource: &str, changes: &str) -> Value {
    json!({
        "changeType": changes,
        "notificationUrl": sx.url,
        "lifecycleNotificationUrl": sx.lifecycle_url(),
        "resource": resource,
        "expirationDateTime": in_minutes(60),
        "clientState": "secret-state-1",
    })
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_subscription_is_created_only_after_the_endpoint_echoes_the_validation_token() {
    let sx = Sx::start().await;
    sx.allow_http().await;
    let inbox = format!("users/{A}/mailFolders('inbox')/messages");
    let (status, created) = sx.create(subscription(&sx, &inbox, "created")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(created["clientState"], "secret-state-1");
    assert_eq!(created["resource"], inbox.as_str());
    let listed = sx.listed().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["mailbox"], A);
    let (status, read) = sx
        .graph(
            reqwest::Method::GET,
            &format!("/subscriptions/{id}"),
            None,
            &sx.token,
            &[],
        )
        .await;
    assert_eq!((status, read["id"].as_str()), (200, Some(id.as_str())));
    let (status, all) = sx
        .graph(reqwest::Method::GET, "/subscriptions", None, &sx.token, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(all["value"].as_array().map(Vec::len), Some(1));

    for wrong in [Validation::WrongToken, Validation::WrongType] {
        sx.shared.lock().unwrap().validation = wrong;
        let (status, refused) = sx.create(subscription(&sx, &inbox, "created")).await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(code(&refused), "InvalidRequest");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("Subscription validation request failed"),
            "{refused}"
        );
    }
    assert_eq!(
        sx.listed().await.len(),
        1,
        "a failed handshake creates nothing"
    );
    sx.check_traffic();
}

#[tokio::test]
async fn subscription_requests_graph_would_refuse_are_refused() {
    let sx = Sx::start().await;
    let inbox = format!("users/{A}/mailFolders('inbox')/messages");
    let good = subscription(&sx, &inbox, "created,updated");
    let (status, body) = sx.create(good.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (400, "InvalidRequest"),
        "http refused: {body}"
    );
    sx.allow_http().await;
    let with = |name: &str, value: Value| {
        let mut body = good.clone();
        body[name] = value;
        body
    };
    let without = |name: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(name);
        body
    };
    for (what, body) in [
        ("no changeType", without("changeType")),
        ("no notificationUrl", without("notificationUrl")),
        ("no resource", without("resource")),
        ("no expirationDateTime", without("expirationDateTime")),
        ("expired", with("expirationDateTime", json!(in_minutes(-5)))),
        (
            "beyond 4230 minutes",
            with("expirationDateTime", json!(in_minutes(4231))),
        ),
        (
            "a clientState of 129",
            with("clientState", json!("x".repeat(129))),
        ),
        (
            "an unknown change",
            with("changeType", json!("created,moved")),
        ),
        (
            "an unsupported resource",
            with("resource", json!(format!("users/{A}/calendar"))),
        ),
        ("a relative URL", with("notificationUrl", json!("/hook"))),
    ] {
        let (status, body) = sx.create(body).await;
        assert_eq!(status, 400, "{what}: {body}");
    }
    let (status, body) = sx.create(with("colour", json!("red"))).await;
    assert_eq!((status, code(&body)), (400, "RequestBodyRead"), "{body}");
    let (status, body) = sx
        .create(with(
            "resource",
            json!("users/nobody@contoso.test/messages"),
        ))
        .await;
    assert_eq!((status, code(&body)), (404, "ErrorInvalidUser"), "{body}");
    sx.control(
        reqwest::Method::PUT,
        "/_fake/graph/apps/graph-app/scope",
        Some(json!({"mailboxes": [A]})),
    )
    .await;
    let (status, body) = sx
        .create(with("resource", json!(format!("users/{B}/events"))))
        .await;
    assert_eq!((status, code(&body)), (403, "ErrorAccessDenied"), "{body}");
    let (status, body) = sx.create(good).await;
    assert_eq!(status, 201, "inside the scope: {body}");
    assert_eq!(sx.listed().await.len(), 1);
    sx.check_traffic();
}

#[tokio::test]
async fn a_change_is_delivered_to_the_subscriptions_that_watch_it_whatever_side_made_it() {
    let sx = Sx::start().await;
    sx.allow_http().await;
    let (status, inbox) = sx
        .create(subscription(
            &sx,
            &format!("users/{A}/mailFolders('inbox')/messages"),
            "created,updated,deleted",
        ))
        .await;
    assert_eq!(status, 201, "{inbox}");
    let (status, events) = sx
        .create(subscription(&sx, &format!("users/{A}/events"), "created"))
        .await;
    assert_eq!(status, 201, "{events}");
    // Bob's mail and Alice's contacts are watched by neither.
    sx.control(
        reqwest::Method::POST,
        &format!("/_fake/mailboxes/{B}/items"),
        Some(json!({"folder": "inbox"})),
    )
    .await;
    sx.control(
        reqwest::Method::POST,
        &format!("/_fake/mailboxes/{A}/items"),
        Some(json!({"folder": "contacts"})),
    )
    .await;
    let made = sx
        .control(
            reqwest::Method::POST,
            &format!("/_fake/mailboxes/{A}/items"),
            Some(json!({"folder": "inbox"})),
        )
        .await;
    let got = sx.wait_received(1).await;
    let note = &got[0]["value"][0];
    assert_eq!(note["subscriptionId"], inbox["id"]);
    assert_eq!(note["changeType"], "created");
    assert_eq!(note["clientState"], "secret-state-1");
    assert_eq!(note["tenantId"], fake_exchange::graph::FAKE_TENANT_ID);
    assert_eq!(
        note["resourceData"]["@odata.type"],
        "#Microsoft.Graph.Message"
    );
    let id = note["resourceData"]["id"].as_str().expect("an id");
    assert!(
        id.starts_with("AAkALgAA"),
        "an immutable id, as asked: {id}"
    );
    assert!(
        note["resource"].as_str().unwrap_or("").ends_with(id),
        "{note}"
    );

    let ews_id = made["ids"][0].as_str().expect("EWS id");
    let response = sx
        .http
        .delete(format!(
            "{}/_fake/mailboxes/{A}/items/{ews_id}",
            sx.fake.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let got = sx.wait_received(2).await;
    assert_eq!(got[1]["value"][0]["changeType"], "deleted");
    assert_eq!(got[1]["value"][0]["resourceData"]["id"], id);

    sx.control(
        reqwest::Method::POST,
        &format!("/_fake/mailboxes/{A}/items"),
        Some(json!({"folder": "calendar"})),
    )
    .await;
    let got = sx.wait_received(3).await;
    assert_eq!(got[2]["value"][0]["subscriptionId"], events["id"]);
    assert_eq!(
        got[2]["value"][0]["resourceData"]["@odata.type"],
        "#Microsoft.Graph.Event"
    );
    let listed = sx.listed().await;
    let delivered: u64 = listed
        .iter()
        .map(|s| s["counters"]["delivered"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(delivered, 3, "nothing else was delivered: {listed:?}");
    sx.check_traffic();
}

#[tokio::test]
async fn a_refused_notification_is_retried_until_the_endpoint_takes_it() {
    let sx = Sx::start().await;
    sx.allow_http().await;
    let (status, created) = sx
        .create(subscription(&sx, &format!("users/{A}/messages"), "created"))
        .await;
    assert_eq!(status, 201, "{created}");
    sx.shared.lock().unwrap().fail_next = 2;
    sx.control(
        reqwest::Method::POST,
        &format!("/_fake/mailboxes/{A}/items"),
        Some(json!({"folder": "inbox"})),
    )
    .await;
    let got = sx.wait_received(1).await;
    assert_eq!(got.len(), 1);
    let counters = &sx.listed().await[0]["counters"];
    assert_eq!(counters["failed_attempts"], 2, "{counters}");
    assert_eq!(counters["delivered"], 1, "{counters}");
}

#[tokio::test]
async fn renewal_moves_the_expiry_and_only_the_owner_sees_a_live_subscription() {
    let sx = Sx::start().await;
    sx.allow_http().await;
    let (_, created) = sx
        .create(subscription(&sx, &format!("users/{A}/events"), "created"))
        .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    let path = format!("/subscriptions/{id}");
    let later = in_minutes(4000);
    let (status, renewed) = sx
        .graph(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"expirationDateTime": later})),
            &sx.token,
            &[],
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(renewed["expirationDateTime"], created["expirationDateTime"]);
    assert_eq!(sx.listed().await[0]["counters"]["renewals"], 1);
    for body in [
        json!({"expirationDateTime": in_minutes(5000)}),
        json!({"changeType": "deleted"}),
    ] {
        let (status, refused) = sx
            .graph(reqwest::Method::PATCH, &path, Some(body), &sx.token, &[])
            .await;
        assert_eq!(status, 400, "{refused}");
    }
    let other = token(&sx.http, &sx.fake.token_url(), "other-app", "s2").await;
    let (status, _) = sx
        .graph(reqwest::Method::GET, &path, None, &other, &[])
        .await;
    assert_eq!(status, 404, "another application does not see it");
    let (_, theirs) = sx
        .graph(reqwest::Method::GET, "/subscriptions", None, &other, &[])
        .await;
    assert_eq!(theirs["value"], json!([]));
    let (status, _) = sx
        .graph(reqwest::Method::DELETE, &path, None, &other, &[])
        .await;
    assert_eq!(status, 404);

    // Expired: it vanishes, and a change is no longer delivered.
    sx.control(
        reqwest::Method::POST,
        &format!("/_fake/graph/subscriptions/{id}/expire"),
        None,
    )
    .await;
    for method in [reqwest::Method::GET, reqwest::Method::PATCH] {
        let body = (method == reqwest::Method::PATCH)
            .then(|| json!({"expirationDateTime": in_minutes(60)}));
        let (status, gone) = sx.graph(method, &path, body, &sx.token, &[]).await;
        assert_eq!(status, 404, "{gone}");
    }
    assert!(sx.listed().await.is_empty());

    let (_, second) = sx
        .create(subscription(&sx, &format!("users/{A}/events"), "created"))
        .await;
    let second_path = format!("/subscriptions/{}", second["id"].as_str().unwrap());
    let (status, _) = sx
        .graph(reqwest::Method::DELETE, &second_path, None, &sx.token, &[])
        .await;
    assert_eq!(status, 204);
    let (status, _) = sx
        .graph(reqwest::Method::GET, &second_path, None, &sx.token, &[])
        .await;
    assert_eq!(status, 404);
    sx.check_traffic();
}

#[tokio::test]
async fn lifecycle_notifications_go_to_the_lifecycle_url_and_subscription_removed_removes_it() {
    let sx = Sx::start().await;
    sx.allow_http().await;
    let (_, created) = sx
        .create(subscription(&sx, &format!("users/{A}/messages"), "created"))
        .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    let lifecycle = |event: &'static str| {
        let id = id.clone();
        let sx = &sx;
        async move {
            sx.control(
                reqwest::Method::POST,
                &format!("/_fake/graph/subscriptions/{id}/lifecycle"),
                Some(json!({ "event": event })),
            )
            .await
        }
    };
    let sent = lifecycle("reauthorizationRequired").await;
    assert_eq!(sent["delivered"], true, "{sent}");
    let got = sx.received();
    assert_eq!(got.len(), 1);
    let note = &got[0]["value"][0];
    assert_eq!(note["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(note["subscriptionId"], id.as_str());
    assert_eq!(note["clientState"], "secret-state-1");
    assert_eq!(sx.listed().await.len(), 1, "still there");
    let sent = lifecycle("subscriptionRemoved").await;
    assert_eq!(
        (sent["delivered"].clone(), sent["removed"].clone()),
        (json!(true), json!(true))
    );
    assert!(sx.listed().await.is_empty(), "removed");
    let (status, _) = sx
        .graph(
            reqwest::Method::GET,
            &format!("/subscriptions/{id}"),
            None,
            &sx.token,
            &[],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_mailbox_takes_at_most_a_thousand_subscriptions() {
    let sx = Sx::start().await;
    sx.allow_http().await;
    let body = subscription(&sx, &format!("users/{A}/messages"), "created");
    for n in 0..fake_exchange::graph::MAX_PER_MAILBOX {
        let (status, created) = sx.create(body.clone()).await;
        assert_eq!(status, 201, "subscription {n}: {created}");
    }
    let (status, refused) = sx.create(body).await;
    assert_eq!(status, 400, "{refused}");
    let (status, other_mailbox) = sx
        .create(subscription(&sx, &format!("users/{B}/messages"), "created"))
        .await;
    assert_eq!(status, 201, "the limit is per mailbox: {other_mailbox}");
}

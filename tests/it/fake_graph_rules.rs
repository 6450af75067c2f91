//! The fake Graph, rule by rule, over real HTTP (`fake-exchange --graph` on port 0), driven
//! by exsync's own Graph client (`exsync_graph::GraphClient`) and, where a test needs the raw
//! answer, by plain HTTP. It serves the same mailboxes as the fake Exchange, so what EWS (or
//! the fake's control API) creates Graph sees under a translated id, and the other way round.
//! Every exchange of every test is validated with `../shared/graph-openapi/check-json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exsync_graph::model::{
    BodyType, Contact, DateTimeTimeZone, DeltaEntry, DeltaNext, Event, ExchangeIdFormat, ItemBody,
    Message, Recipient, TaskStatus, TodoTask,
};
use exsync_graph::{
    CalendarWindow, ClientOptions, ErrorKind, GraphClient, MessageDeltaQuery, MessageSelect,
    Target, ThrottleRegistry, TokenError, TokenSource, Transport, DEFAULT_CONTACT_FOLDER,
    OUTGOING_ID_PROPERTY,
};
use fake_exchange::state::{NewAccount, NewApp, NewItems, Rights};
use fake_exchange::{FakeConfig, FakeExchange, Seed};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

const APP: &str = "graph-app";
const SECRET: &str = "graph-secret";
const A: &str = "alice@contoso.test";
const B: &str = "bob@contoso.test";

/// An application's tokens from the fake's token endpoint (client secret).
#[derive(Debug)]
struct FakeTokens {
    url: String,
    http: reqwest::Client,
    cached: Mutex<Option<SecretString>>,
}

impl TokenSource for FakeTokens {
    fn client_id(&self) -> &str {
        APP
    }

    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenError>> {
        Box::pin(async move {
            if let Some(t) = self.cached.lock().unwrap().clone() {
                return Ok(t);
            }
            let token = fetch_token(&self.http, &self.url).await;
            *self.cached.lock().unwrap() = Some(token.clone());
            Ok(token)
        })
    }

    fn invalidate<'a>(&'a self, _rejected: &'a SecretString) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            *self.cached.lock().unwrap() = None;
        })
    }
}

async fn fetch_token(http: &reqwest::Client, url: &str) -> SecretString {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .finish();
    let answer: Value = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("token JSON");
    SecretString::from(answer["access_token"].as_str().expect("a token").to_owned())
}

/// A fake Exchange serving Graph, its traffic recorded for `check-json`, and a client.
struct Gx {
    fake: FakeExchange,
    traffic: tempfile::TempDir,
    http: reqwest::Client,
    token: SecretString,
}

impl Gx {
    async fn start() -> Gx {
        let traffic = tempfile::tempdir().unwrap();
        let seed = Seed {
            accounts: [A, B]
                .iter()
                .map(|a| NewAccount {
                    address: Some((*a).to_owned()),
                    username: None,
                    password: "pw".into(),
                })
                .collect(),
            apps: vec![NewApp {
                client_id: APP.into(),
                client_secret: Some(SECRET.into()),
                certificate: None,
                tenant: None,
                impersonate: None,
            }],
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
        let token = fetch_token(&http, &fake.token_url()).await;
        Gx {
            fake,
            traffic,
            http,
            token,
        }
    }

    fn client(&self, options: ClientOptions) -> GraphClient {
        let tokens = Arc::new(FakeTokens {
            url: self.fake.token_url(),
            http: self.http.clone(),
            cached: Mutex::new(None),
        });
        GraphClient::new(
            &self.fake.graph_url().unwrap(),
            tokens,
            Transport::new(Default::default()).unwrap(),
            Arc::new(ThrottleRegistry::new()),
            options,
        )
        .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fake.graph_url().unwrap())
    }

    /// A raw Graph request with the app's token; status, headers and JSON body.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.token.expose_secret());
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
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, headers, body)
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.fake.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_fake/graph/stats", self.fake.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Validate everything this fake recorded with `check-json`, then hand it to the suite's
    /// traffic check.
    fn check_traffic(&self) {
        check_graph_traffic(self.traffic.path());
        let suite = crate::support::world::traffic_dir();
        if std::fs::create_dir_all(&suite).is_ok() {
            for entry in std::fs::read_dir(self.traffic.path()).unwrap().flatten() {
                let _ = std::fs::copy(entry.path(), suite.join(entry.file_name()));
            }
        }
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

fn openapi_dir() -> PathBuf {
    std::env::var_os("EXSYNC_GRAPH_OPENAPI")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/graph-openapi"))
}

/// Run `check-json` on every recorded body, grouped by method, path and status.
pub(crate) fn check_graph_traffic(dir: &Path) {
    let script = openapi_dir().join("check-json");
    if !script.exists() {
        assert!(
            !in_ci(),
            "check-json is required in CI: {} is missing",
            script.display()
        );
        eprintln!(
            "!!! SKIPPING Graph conformance checks: {} not found",
            script.display()
        );
        return;
    }
    let mut groups: BTreeMap<(String, String, String), Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("args") {
            continue;
        }
        let args = std::fs::read_to_string(&path).unwrap();
        let mut lines = args.lines();
        let key = (
            lines.next().unwrap().to_owned(),
            lines.next().unwrap().to_owned(),
            lines.next().unwrap().to_owned(),
        );
        groups
            .entry(key)
            .or_default()
            .push(path.with_extension("json"));
    }
    assert!(!groups.is_empty(), "the fake Graph recorded no traffic");
    for ((method, path, what), files) in groups {
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .args(["--method", &method, "--path", &path]);
        if what == "request" {
            command.arg("--request");
        } else {
            command.args(["--status", &what]);
        }
        let out = command.args(&files).output().expect("python3");
        match out.status.code() {
            Some(0) => {}
            Some(3) => {
                assert!(!in_ci(), "jsonschema is required in CI");
                eprintln!("!!! SKIPPING Graph conformance checks: jsonschema missing");
                return;
            }
            _ => {
                let bodies: Vec<String> = files
                    .iter()
                    .map(|f| std::fs::read_to_string(f).unwrap_or_default())
                    .collect();
                panic!(
                    "{method} {path} ({what}) does not conform to Graph v1.0:\n{}{}\n{bodies:#?}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

fn fast() -> ClientOptions {
    ClientOptions {
        page_size: 3,
        ..ClientOptions::default()
    }
}

/// Every entry of a whole message delta round, and the link to keep.
async fn message_round(
    client: &GraphClient,
    target: &Target,
    query: &MessageDeltaQuery,
) -> (Vec<DeltaEntry<Message>>, String) {
    let mut page = client.message_delta(target, "inbox", query).await.unwrap();
    let mut entries = Vec::new();
    loop {
        entries.extend(page.entries);
        match page.next {
            DeltaNext::NextPage(link) => {
                page = client
                    .message_delta_next(target, &link, None)
                    .await
                    .unwrap()
            }
            DeltaNext::Done(link) => return (entries, link),
        }
    }
}

fn changed_ids(entries: &[DeltaEntry<Message>]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            DeltaEntry::Changed(m) => m.id.clone(),
            DeltaEntry::Removed { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn mail_created_in_exchange_is_seen_through_graph_delta_under_its_translated_id() {
    let gx = Gx::start().await;
    let ews_ids = gx
        .fake
        .state()
        .add_items(
            A,
            &NewItems {
                count: Some(7),
                subject: Some("Order".into()),
                ..NewItems::default()
            },
        )
        .unwrap();
    let client = gx.client(fast());
    let target = Target::new(A);
    let (entries, _) = message_round(&client, &target, &MessageDeltaQuery::default()).await;
    let seen = changed_ids(&entries);
    assert_eq!(seen.len(), 7, "each message once in the first round");

    let translated = client
        .translate_exchange_ids(
            &target,
            &ews_ids,
            ExchangeIdFormat::EwsId,
            ExchangeIdFormat::RestImmutableEntryId,
        )
        .await
        .unwrap();
    let immutable: BTreeSet<String> = translated
        .iter()
        .map(|r| r.target_id.clone().expect("every id translates"))
        .collect();
    assert_eq!(immutable, seen, "delta ids are the EWS ids translated");

    // And back: a draft made through Graph is the item EWS sees in Drafts.
    let draft = client
        .create_draft(
            &target,
            &Message {
                subject: Some("Quote".into()),
                to_recipients: Some(vec![Recipient::address(B)]),
                ..Message::default()
            },
            "row-1",
        )
        .await
        .unwrap();
    let back = client
        .translate_exchange_ids(
            &target,
            &[draft.id.clone().unwrap()],
            ExchangeIdFormat::RestImmutableEntryId,
            ExchangeIdFormat::EwsId,
        )
        .await
        .unwrap();
    let drafts = gx.fake.state().list_items(A, "drafts").unwrap();
    assert_eq!(drafts.len(), 1);
    assert_eq!(back[0].target_id.as_deref(), Some(drafts[0].id.as_str()));
    assert_eq!(
        drafts[0]
            .extended_properties
            .get("ExsyncOutgoingId")
            .map(String::as_str),
        Some("row-1"),
        "the marker is the EWS extended property"
    );

    // An id of another mailbox or of another format is refused per item, inside the 200.
    let others = client
        .translate_exchange_ids(
            &target,
            &["garbage".to_owned()],
            ExchangeIdFormat::EwsId,
            ExchangeIdFormat::RestId,
        )
        .await
        .unwrap();
    assert!(others[0].target_id.is_none() && others[0].error_details.is_some());
    gx.check_traffic();
}

#[tokio::test]
async fn select_returns_only_what_was_asked_and_the_filter_keeps_older_mail_out() {
    let gx = Gx::start().await;
    let old = chrono::Utc::now() - chrono::Duration::days(30);
    let state = gx.fake.state();
    state
        .add_items(
            A,
            &NewItems {
                count: Some(2),
                received: Some(old),
                ..NewItems::default()
            },
        )
        .unwrap();
    state
        .add_items(
            A,
            &NewItems {
                count: Some(3),
                ..NewItems::default()
            },
        )
        .unwrap();
    let (status, headers, body) = gx
        .raw(
            reqwest::Method::GET,
            &format!(
                "/users/{A}/mailFolders/inbox/messages/delta?$select=subject,receivedDateTime&$filter=receivedDateTime%20ge%20{}",
                (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ")
            ),
            None,
            &[("Prefer", "IdType=\"ImmutableId\", odata.maxpagesize=10")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 3, "only mail received after the filter's date");
    for message in value {
        let keys: BTreeSet<&str> = message
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["@odata.etag", "id", "receivedDateTime", "subject"]),
            "only the selected properties, the id and the ETag"
        );
    }
    assert!(body["@odata.deltaLink"].is_string());
    let applied: Vec<&str> = headers
        .get_all("preference-applied")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        applied.iter().any(|v| v.contains("odata.maxpagesize=10")),
        "{applied:?}"
    );
    assert!(
        applied.iter().any(|v| v.contains("ImmutableId")),
        "{applied:?}"
    );

    // Bodies come as HTML unless text is preferred; the raw MIME is there too.
    let id = value[0]["id"].as_str().unwrap().to_owned();
    let (_, _, html) = gx
        .raw(
            reqwest::Method::GET,
            &format!("/users/{A}/messages/{id}?$select=body"),
            None,
            &[],
        )
        .await;
    assert_eq!(html["body"]["contentType"], "html");
    let (_, headers, text) = gx
        .raw(
            reqwest::Method::GET,
            &format!("/users/{A}/messages/{id}?$select=body"),
            None,
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    assert_eq!(text["body"]["contentType"], "text");
    let applied: Vec<&str> = headers
        .get_all("preference-applied")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        applied
            .iter()
            .any(|v| v.contains("outlook.body-content-type")),
        "{applied:?}"
    );
    let client = gx.client(fast());
    let mime = client.get_message_mime(&Target::new(A), &id).await.unwrap();
    let mime = String::from_utf8_lossy(&mime).into_owned();
    assert!(
        mime.contains("Subject: ") && mime.contains("Message-ID: <"),
        "{mime}"
    );

    // What Graph refuses, the fake refuses.
    for refused in [
        "/mailFolders/inbox/messages/delta?$filter=subject%20eq%20'x'",
        "/mailFolders/inbox/messages/delta?$select=colour",
        "/mailFolders/inbox/messages/delta?$orderby=subject",
        "/messages/delta",
    ] {
        let (status, _, body) = gx
            .raw(
                reqwest::Method::GET,
                &format!("/users/{A}{refused}"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 400, "{refused}: {body}");
    }
    gx.check_traffic();
}

#[tokio::test]
async fn an_expired_delta_token_answers_gone_and_a_new_round_brings_each_message_once() {
    let gx = Gx::start().await;
    gx.fake
        .state()
        .add_items(
            A,
            &NewItems {
                count: Some(4),
                ..NewItems::default()
            },
        )
        .unwrap();
    let client = gx.client(fast());
    let target = Target::new(A);
    let (first, link) = message_round(&client, &target, &MessageDeltaQuery::default()).await;
    assert_eq!(changed_ids(&first).len(), 4);

    // Later changes come through the kept link: one new, one deleted.
    let new = gx.fake.state().add_items(A, &NewItems::default()).unwrap();
    let gone = gx.fake.state().list_items(A, "inbox").unwrap()[0]
        .id
        .clone();
    gx.fake.state().delete_item(A, &gone).unwrap();
    let page = client
        .message_delta_next(&target, &link, None)
        .await
        .unwrap();
    let removed = page
        .entries
        .iter()
        .filter(|e| matches!(e, DeltaEntry::Removed { .. }))
        .count();
    assert_eq!((changed_ids(&page.entries).len(), removed), (1, 1));
    assert_eq!(new.len(), 1);
    let DeltaNext::Done(link) = page.next else {
        panic!("one page")
    };

    let expired = gx
        .control(
            reqwest::Method::POST,
            &format!("/_fake/graph/mailboxes/{A}/expire-delta-tokens"),
            json!({}),
        )
        .await;
    assert!(expired["expired"].as_u64().unwrap() >= 1);
    let error = client
        .message_delta_next(&target, &link, None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::SyncStateExpired);
    let (status, headers, body) = gx
        .raw(
            reqwest::Method::GET,
            link.trim_start_matches(&gx.url("")),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "SyncStateNotFound");
    assert!(headers.get("location").is_some());

    // The other shape Graph uses: 400 syncStateNotFound.
    gx.control(
        reqwest::Method::PUT,
        "/_fake/graph/faults",
        json!({"delta_expiry": "bad_request400"}),
    )
    .await;
    let (status, _, body) = gx
        .raw(
            reqwest::Method::GET,
            link.trim_start_matches(&gx.url("")),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("syncStateNotFound"))
    );

    let (again, _) = message_round(&client, &target, &MessageDeltaQuery::default()).await;
    assert_eq!(
        changed_ids(&again).len(),
        4,
        "a new round lists each message once"
    );
    gx.check_traffic();
}

#[tokio::test]
async fn contacts_are_found_by_their_create_key_and_filtered_by_nothing_else() {
    let gx = Gx::start().await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let ada = Contact {
        display_name: Some("Ada Lovelace".into()),
        ..Contact::default()
    };
    let created = client.create_contact(&target, &ada, "Row-1").await.unwrap();
    assert_eq!(
        created.extended_property(exsync_graph::ACTIVITY_KEY_PROPERTY),
        None,
        "as Graph, the create does not echo the extended property it was given"
    );
    client.create_contact(&target, &ada, "row-2").await.unwrap();
    let found = client
        .find_contact_for_row(&target, "Row-1")
        .await
        .unwrap()
        .expect("found by its key");
    assert_eq!(found.id, created.id);
    // Graph compares values without case; the client keeps only the exact row.
    assert!(client
        .find_contact_for_row(&target, "ROW-1")
        .await
        .unwrap()
        .is_none());
    assert!(client
        .find_contact_for_row(&target, "row-3")
        .await
        .unwrap()
        .is_none());
    let read = client
        .get_contact(&target, created.id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        read.extended_property(exsync_graph::ACTIVITY_KEY_PROPERTY),
        Some("Row-1")
    );
    // Any other filter on contacts is refused, never ignored.
    let (status, _, _) = gx
        .raw(
            reqwest::Method::GET,
            &format!("/users/{A}/contacts?$filter=displayName%20eq%20'Ada%20Lovelace'"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 400);
    gx.check_traffic();
}

#[tokio::test]
async fn a_stale_etag_is_refused_with_412_and_changes_nothing() {
    let gx = Gx::start().await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let created = client
        .create_contact(
            &target,
            &Contact {
                given_name: Some("Ada".into()),
                surname: Some("Lovelace".into()),
                display_name: Some("Ada Lovelace".into()),
                ..Contact::default()
            },
            "row-1",
        )
        .await
        .unwrap();
    let id = created.id.clone().unwrap();
    let first_etag = created.etag.clone().unwrap();
    let updated = client
        .update_contact(
            &target,
            &id,
            &Contact {
                job_title: Some("Analyst".into()),
                ..Contact::default()
            },
            Some(&first_etag),
        )
        .await
        .unwrap();
    assert_ne!(
        updated.etag, created.etag,
        "every change has a new change key"
    );
    let error = client
        .update_contact(
            &target,
            &id,
            &Contact {
                job_title: Some("Poet".into()),
                ..Contact::default()
            },
            Some(&first_etag),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(error.code(), "ErrorIrresolvableConflict");
    let now = client.get_contact(&target, &id).await.unwrap();
    assert_eq!(now.job_title.as_deref(), Some("Analyst"));
    let error = client
        .delete_contact(&target, &id, Some(&first_etag))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    client
        .delete_contact(&target, &id, now.etag.as_deref())
        .await
        .unwrap();

    // The contact delta reports it gone.
    let page = client
        .contact_delta(&target, DEFAULT_CONTACT_FOLDER, &["displayName"])
        .await
        .unwrap();
    assert!(
        page.entries.is_empty(),
        "a first round lists what exists now"
    );
    gx.check_traffic();
}

#[tokio::test]
async fn a_fifth_concurrent_request_to_a_mailbox_gets_429_and_retry_after_is_enforced() {
    let gx = Gx::start().await;
    gx.control(
        reqwest::Method::PUT,
        "/_fake/graph/faults",
        json!({"latency_ms": 600, "retry_after_secs": 1}),
    )
    .await;
    let path = format!("/users/{A}/mailFolders/inbox");
    let answers =
        futures::future::join_all((0..5).map(|_| gx.raw(reqwest::Method::GET, &path, None, &[])))
            .await;
    let throttled: Vec<&(u16, reqwest::header::HeaderMap, Value)> =
        answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(throttled.len(), 1, "four in flight, the fifth refused");
    let (_, headers, body) = throttled[0];
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert_eq!(headers.get("retry-after").unwrap(), "1");

    // Before Retry-After has elapsed: refused again, and counted as early.
    let (status, _, _) = gx.raw(reqwest::Method::GET, &path, None, &[]).await;
    assert_eq!(status, 429);
    let stats = gx.stats().await;
    let mine = &stats["apps"][APP][A];
    assert_eq!(mine["early_requests"], 1);
    assert_eq!(mine["over_concurrency"], 1);
    assert_eq!(mine["peak_in_flight"], 4);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = gx.raw(reqwest::Method::GET, &path, None, &[]).await;
    assert_eq!(status, 200, "after Retry-After the mailbox answers again");

    // exsync's client keeps to four in flight and never sends early, whatever it is asked.
    gx.control(reqwest::Method::POST, "/_fake/graph/stats/reset", json!({}))
        .await;
    gx.control(
        reqwest::Method::PUT,
        "/_fake/graph/faults",
        json!({"latency_ms": 150}),
    )
    .await;
    let ids = gx
        .fake
        .state()
        .add_items(
            A,
            &NewItems {
                count: Some(10),
                ..NewItems::default()
            },
        )
        .unwrap();
    let client = gx.client(ClientOptions {
        max_in_flight: 16,
        ..fast()
    });
    let target = Target::new(A);
    let translated = client
        .translate_exchange_ids(
            &target,
            &ids,
            ExchangeIdFormat::EwsId,
            ExchangeIdFormat::RestImmutableEntryId,
        )
        .await
        .unwrap();
    let graph_ids: Vec<String> = translated.into_iter().filter_map(|r| r.target_id).collect();
    let select = MessageSelect::default();
    let lookups: Vec<_> = (0..3)
        .map(|_| client.get_messages(&target, &graph_ids, &select))
        .collect();
    for results in futures::future::join_all(lookups).await {
        assert!(results.iter().all(|(_, r)| r.is_ok()));
    }
    let stats = gx.stats().await;
    let mine = &stats["apps"][APP][A];
    assert!(mine["peak_in_flight"].as_u64().unwrap() <= 4, "{mine}");
    assert_eq!(mine["throttled"], 0);
    assert_eq!(mine["early_requests"], 0);
    gx.check_traffic();
}

#[tokio::test]
async fn throttling_and_unavailability_are_waited_out_never_early() {
    let gx = Gx::start().await;
    gx.control(
        reqwest::Method::PUT,
        "/_fake/graph/faults",
        json!({"fail_next": ["throttled", "service_unavailable"], "retry_after_secs": 1}),
    )
    .await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let started = Instant::now();
    let folder = client.mail_folder(&target, "inbox").await.unwrap();
    assert_eq!(folder.display_name.as_deref(), Some("Inbox"));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two Retry-After waits"
    );
    let stats = gx.stats().await;
    let mine = &stats["apps"][APP][A];
    assert_eq!(
        (mine["throttled"].as_u64(), mine["unavailable"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(mine["early_requests"], 0);
    gx.check_traffic();
}

#[tokio::test]
async fn mailboxes_graph_cannot_reach_are_refused_each_in_its_own_way() {
    let gx = Gx::start().await;
    gx.control(
        reqwest::Method::PUT,
        &format!("/_fake/graph/apps/{APP}/scope"),
        json!({"mailboxes": [A]}),
    )
    .await;
    let client = gx.client(fast());
    client.mail_folder(&Target::new(A), "inbox").await.unwrap();
    let out_of_scope = client
        .mail_folder(&Target::new(B), "inbox")
        .await
        .unwrap_err();
    assert_eq!(out_of_scope.kind(), ErrorKind::MailboxLevel);
    assert_eq!(out_of_scope.code(), "ErrorAccessDenied");
    // To Do cannot be scoped with RBAC for Applications: a Tasks grant reaches every mailbox.
    let lists = client.todo_lists(&Target::new(B)).await.unwrap();
    assert_eq!(lists.len(), 1);

    let unknown = client
        .mail_folder(&Target::new("nobody@contoso.test"), "inbox")
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::MailboxLevel);
    assert_eq!(unknown.code(), "ErrorInvalidUser");

    gx.control(
        reqwest::Method::PUT,
        &format!("/_fake/graph/mailboxes/{A}/settings"),
        json!({"rest_enabled": false}),
    )
    .await;
    let disabled = client
        .mail_folder(&Target::new(A), "inbox")
        .await
        .unwrap_err();
    assert_eq!(disabled.kind(), ErrorKind::MailboxLevel);
    assert_eq!(disabled.code(), "MailboxNotEnabledForRESTAPI");

    // No token, or a token Graph does not know: 401.
    let answer = gx
        .http
        .get(gx.url(&format!("/users/{B}/mailFolders/inbox")))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    gx.check_traffic();
}

#[tokio::test]
async fn a_sent_draft_leaves_one_sent_items_copy_found_by_its_marker() {
    let gx = Gx::start().await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let draft = client
        .create_draft(
            &target,
            &Message {
                subject: Some("Invoice 7".into()),
                body: Some(ItemBody::text("Please pay.")),
                to_recipients: Some(vec![Recipient::address(B)]),
                internet_message_id: Some("<client-chosen@contoso.test>".into()),
                ..Message::default()
            },
            "row-42",
        )
        .await
        .unwrap();
    assert_eq!(draft.is_draft, Some(true));
    assert_eq!(
        draft.extended_property(OUTGOING_ID_PROPERTY),
        None,
        "as Graph, the create does not echo the extended property: it is found by $filter"
    );
    let before = client.find_outgoing(&target, "row-42").await.unwrap();
    assert_eq!((before.sent.len(), before.drafts.len()), (0, 1));
    // The value is compared without case by Graph; the client keeps exact matches only.
    let other_case = client.find_outgoing(&target, "ROW-42").await.unwrap();
    assert_eq!((other_case.sent.len(), other_case.drafts.len()), (0, 0));

    client
        .send_draft(&target, draft.id.as_deref().unwrap())
        .await
        .unwrap();
    let after = client.find_outgoing(&target, "row-42").await.unwrap();
    assert_eq!((after.sent.len(), after.drafts.len()), (1, 0));
    let sent = &after.sent[0];
    assert_ne!(sent.id, draft.id, "the Sent Items copy is a new item");
    assert_eq!(sent.is_draft, Some(false));
    let message_id = sent.internet_message_id.clone().unwrap();
    assert_ne!(
        message_id, "<client-chosen@contoso.test>",
        "the server assigns it"
    );

    let again = client
        .send_draft(&target, draft.id.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        again.kind(),
        ErrorKind::ItemNotFound,
        "a sent draft is gone"
    );
    assert_eq!(gx.fake.state().list_items(A, "sentitems").unwrap().len(), 1);

    let received = gx.fake.state().list_items(B, "inbox").unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].internet_message_id.as_deref(),
        Some(message_id.as_str())
    );
    assert!(
        received[0].extended_properties.is_empty(),
        "the marker stays home"
    );

    // sendMail: one copy when asked to save it, none otherwise.
    for (save, copies) in [(true, 2), (false, 2)] {
        let (status, _, body) = gx
            .raw(
                reqwest::Method::POST,
                &format!("/users/{A}/sendMail"),
                Some(json!({
                    "message": {
                        "subject": "Hello",
                        "body": {"contentType": "text", "content": "Hi"},
                        "toRecipients": [{"emailAddress": {"address": B}}]
                    },
                    "saveToSentItems": save
                })),
                &[],
            )
            .await;
        assert_eq!((status, body), (202, Value::Null));
        assert_eq!(
            gx.fake.state().list_items(A, "sentitems").unwrap().len(),
            copies
        );
    }
    // Without a recipient Graph refuses to send.
    let (status, _, body) = gx
        .raw(
            reqwest::Method::POST,
            &format!("/users/{A}/sendMail"),
            Some(json!({"message": {"subject": "Nobody"}})),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("ErrorInvalidRecipients"))
    );
    gx.check_traffic();
}

#[tokio::test]
async fn sending_as_another_mailbox_needs_the_right() {
    let gx = Gx::start().await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let draft = |from: &str| Message {
        subject: Some("On behalf".into()),
        from: Some(Recipient::address(from)),
        to_recipients: Some(vec![Recipient::address("customer@fabrikam.test")]),
        ..Message::default()
    };
    let d = client
        .create_draft(&target, &draft(B), "row-sa")
        .await
        .unwrap();
    let denied = client
        .send_draft(&target, d.id.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), "ErrorSendAsDenied");
    assert_eq!(denied.kind(), ErrorKind::MailboxLevel);
    gx.fake
        .state()
        .set_rights(&Rights {
            account: "alice".into(),
            send_as: vec![B.into()],
            ..Rights::default()
        })
        .unwrap();
    client
        .send_draft(&target, d.id.as_deref().unwrap())
        .await
        .unwrap();
    let sent = gx.fake.state().list_items(A, "sentitems").unwrap();
    assert_eq!(sent[0].from.as_deref(), Some(B));
    gx.check_traffic();
}

#[tokio::test]
async fn events_are_created_once_per_transaction_id_and_seen_in_the_window() {
    let gx = Gx::start().await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    let event = Event {
        subject: Some("Review".into()),
        start: Some(DateTimeTimeZone::utc(start)),
        end: Some(DateTimeTimeZone::utc(start + chrono::Duration::hours(1))),
        ..Event::default()
    };
    let first = client.create_event(&target, &event, "tx-1").await.unwrap();
    let retried = client.create_event(&target, &event, "tx-1").await.unwrap();
    assert_eq!(
        first.id, retried.id,
        "a retried POST creates no second event"
    );
    assert_eq!(first.transaction_id.as_deref(), Some("tx-1"));
    assert_eq!(gx.fake.state().list_items(A, "calendar").unwrap().len(), 1);

    let window = CalendarWindow {
        start: chrono::Utc::now(),
        end: chrono::Utc::now() + chrono::Duration::days(7),
    };
    let page = client.event_delta(&target, &window).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    let DeltaNext::Done(link) = page.next else {
        panic!("one page")
    };
    let DeltaEntry::Changed(seen) = &page.entries[0] else {
        panic!("a change")
    };
    let seen_start = seen.start.as_ref().and_then(|s| s.to_utc()).unwrap();
    assert!(
        (seen_start - start).num_milliseconds().abs() < 1,
        "times in UTC"
    );

    // An update with the event's ETag, then one with the old ETag.
    let moved = Event {
        subject: Some("Review (moved)".into()),
        ..Event::default()
    };
    let updated = client
        .update_event(
            &target,
            first.id.as_deref().unwrap(),
            &moved,
            first.etag.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(updated.subject.as_deref(), Some("Review (moved)"));
    let stale = client
        .update_event(
            &target,
            first.id.as_deref().unwrap(),
            &moved,
            first.etag.as_deref(),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let page = client.event_delta_next(&target, &link).await.unwrap();
    assert_eq!(
        page.entries.len(),
        1,
        "the update comes through the delta link"
    );

    // The window is required.
    let (status, _, _) = gx
        .raw(
            reqwest::Method::GET,
            &format!("/users/{A}/calendarView/delta"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 400);
    gx.check_traffic();
}

#[tokio::test]
async fn to_do_tasks_live_in_the_mailboxs_tasks_folder() {
    let gx = Gx::start().await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let lists = client.todo_lists(&target).await.unwrap();
    assert_eq!(lists.len(), 1);
    let list = lists[0].id.clone().unwrap();
    let existing = gx
        .fake
        .state()
        .add_items(
            A,
            &NewItems {
                folder: Some("tasks".into()),
                subject: Some("Call back".into()),
                ..NewItems::default()
            },
        )
        .unwrap();
    assert_eq!(existing.len(), 1);
    let task = client
        .create_todo_task(
            &target,
            &list,
            &TodoTask {
                title: Some("Send the quote".into()),
                body: Some(ItemBody {
                    content_type: Some(BodyType::Text),
                    content: Some("By Friday".into()),
                }),
                due_date_time: Some(DateTimeTimeZone::utc(
                    chrono::Utc::now() + chrono::Duration::days(3),
                )),
                ..TodoTask::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(task.status, Some(TaskStatus::NotStarted));
    let ews = gx.fake.state().list_items(A, "tasks").unwrap();
    assert_eq!(
        ews.len(),
        2,
        "To Do's default list is the Tasks folder EWS sees"
    );

    let page = client.todo_task_delta(&target, &list).await.unwrap();
    let DeltaNext::Done(link) = page.next else {
        panic!("one page")
    };
    assert_eq!(page.entries.len(), 2);

    let done = client
        .update_todo_task(
            &target,
            &list,
            task.id.as_deref().unwrap(),
            &TodoTask {
                status: Some(TaskStatus::Completed),
                ..TodoTask::default()
            },
            task.etag.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(done.status, Some(TaskStatus::Completed));
    assert!(done.completed_date_time.is_some());
    client
        .delete_todo_task(
            &target,
            &list,
            task.id.as_deref().unwrap(),
            done.etag.as_deref(),
        )
        .await
        .unwrap();
    let page = client.todo_task_delta_next(&target, &link).await.unwrap();
    assert!(
        page.entries
            .iter()
            .any(|e| matches!(e, DeltaEntry::Removed { id, .. } if Some(id) == task.id.as_ref())),
        "{:?}",
        page.entries
    );
    gx.check_traffic();
}

#[tokio::test]
async fn request_bodies_graph_would_refuse_are_refused() {
    let gx = Gx::start().await;
    for (path, body) in [
        (
            format!("/users/{A}/messages"),
            json!({"subject": "x", "colour": "red"}),
        ),
        (format!("/users/{A}/events"), json!({"subject": "no times"})),
        (
            format!("/users/{A}/translateExchangeIds"),
            json!({"inputIds": ["x"], "sourceIdType": "ewsId", "targetIdType": "nonsense"}),
        ),
    ] {
        let (status, _, answer) = gx.raw(reqwest::Method::POST, &path, Some(body), &[]).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer["error"]["code"].is_string());
    }
    // A foreign id format is malformed, not "not found".
    let (status, _, answer) = gx
        .raw(
            reqwest::Method::GET,
            &format!("/users/{A}/messages/AAMkNotOurs"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("ErrorInvalidIdMalformed"))
    );
    gx.check_traffic();
}

#[tokio::test]
async fn an_app_signing_in_with_a_certificate_assertion_reads_graph() {
    let gx = Gx::start().await;
    let fixture = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    };
    gx.fake
        .state()
        .add_app(&NewApp {
            client_id: "graph-cert-app".into(),
            client_secret: None,
            certificate: Some(fixture("oauth-app.crt")),
            tenant: None,
            impersonate: None,
        })
        .unwrap();
    let certificate = exsync_ews::oauth::ClientCertificate::from_pem(
        &fixture("oauth-app.crt"),
        SecretString::from(fixture("oauth-app.key")),
        exsync_ews::oauth::AssertionSigning::Ps256,
    )
    .unwrap();
    let assertion = certificate
        .assertion(
            "graph-cert-app",
            &gx.fake.token_url(),
            std::time::SystemTime::now(),
        )
        .unwrap();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", "graph-cert-app"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.expose_secret()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .finish();
    let answer: Value = gx
        .http
        .post(gx.fake.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"]
        .as_str()
        .expect("a token for the certificate");
    let response = gx
        .http
        .get(gx.url(&format!("/users/{A}/mailFolders/inbox")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stats = gx.stats().await;
    assert_eq!(stats["apps"]["graph-cert-app"][A]["requests"], 1);
    gx.check_traffic();
}

#[tokio::test]
async fn a_filtered_message_round_stops_at_its_limit_and_goes_on_after_what_exists() {
    let gx = Gx::start().await;
    gx.control(
        reqwest::Method::PUT,
        "/_fake/graph/faults",
        json!({"filtered_round_limit": 5}),
    )
    .await;
    gx.fake
        .state()
        .add_items(
            A,
            &NewItems {
                count: Some(8),
                ..NewItems::default()
            },
        )
        .unwrap();
    let client = gx.client(fast());
    let target = Target::new(A);
    let query = MessageDeltaQuery {
        received_since: Some(chrono::Utc::now() - chrono::Duration::days(1)),
        ..MessageDeltaQuery::default()
    };
    let (first, link) = message_round(&client, &target, &query).await;
    assert_eq!(
        changed_ids(&first).len(),
        5,
        "a filtered round returns at most the limit, and says it is done"
    );
    gx.fake.state().add_items(A, &NewItems::default()).unwrap();
    let page = client
        .message_delta_next(&target, &link, None)
        .await
        .unwrap();
    assert_eq!(
        changed_ids(&page.entries).len(),
        1,
        "the next round brings only what came after, never the three left out"
    );
    // Without the filter a round has no such limit.
    let (all, _) = message_round(&client, &target, &MessageDeltaQuery::default()).await;
    assert_eq!(changed_ids(&all).len(), 9);
    gx.check_traffic();
}

#[tokio::test]
async fn right_after_a_send_the_message_can_be_in_neither_drafts_nor_sent_items() {
    let gx = Gx::start().await;
    gx.control(
        reqwest::Method::PUT,
        "/_fake/graph/faults",
        json!({"sent_items_delay_ms": 700}),
    )
    .await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let draft = client
        .create_draft(
            &target,
            &Message {
                subject: Some("In flight".into()),
                to_recipients: Some(vec![Recipient::address(B)]),
                ..Message::default()
            },
            "row-9",
        )
        .await
        .unwrap();
    client
        .send_draft(&target, draft.id.as_deref().unwrap())
        .await
        .unwrap();
    let during = client.find_outgoing(&target, "row-9").await.unwrap();
    assert_eq!(
        (during.sent.len(), during.drafts.len()),
        (0, 0),
        "still moving"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = client.find_outgoing(&target, "row-9").await.unwrap();
    assert_eq!((after.sent.len(), after.drafts.len()), (1, 0));
    gx.check_traffic();
}

#[tokio::test]
async fn the_calendar_view_expands_a_series_into_its_occurrences_beside_the_master() {
    let gx = Gx::start().await;
    let client = gx.client(fast());
    let target = Target::new(A);
    let first = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    let start = first.and_hms_opt(9, 0, 0).unwrap().and_utc();
    let series: Event = serde_json::from_value(json!({
        "subject": "Stand-up",
        "start": {"dateTime": start.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
        "end": {"dateTime": (start + chrono::Duration::minutes(15)).format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "startDate": first.to_string(), "numberOfOccurrences": 5}
        }
    }))
    .unwrap();
    let master = client
        .create_event(&target, &series, "tx-series")
        .await
        .unwrap();
    assert!(master.recurrence.is_some());
    let window = CalendarWindow {
        start: start - chrono::Duration::hours(1),
        end: start + chrono::Duration::days(3),
    };
    let page = client.event_delta(&target, &window).await.unwrap();
    let events: Vec<&Event> = page
        .entries
        .iter()
        .filter_map(|e| match e {
            DeltaEntry::Changed(ev) => Some(ev),
            DeltaEntry::Removed { .. } => None,
        })
        .collect();
    let occurrences: Vec<&&Event> = events
        .iter()
        .filter(|e| e.series_master_id.is_some())
        .collect();
    assert_eq!(
        events.len(),
        4,
        "the master and three occurrences in three days"
    );
    assert_eq!(occurrences.len(), 3);
    assert!(occurrences
        .iter()
        .all(|o| o.series_master_id == master.id && o.subject.is_none()));
    gx.check_traffic();
}

#[tokio::test]
async fn a_folder_listing_filters_orders_and_pages_by_received_date_and_selects_only_what_was_asked(
) {
    let gx = Gx::start().await;
    let state = gx.fake.state();
    let at = |day: u32| {
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 6, day, 10, 0, 0).unwrap()
    };
    for (count, day) in [(2, 1), (3, 12), (4, 10)] {
        state
            .add_items(
                A,
                &NewItems {
                    count: Some(count),
                    received: Some(at(day)),
                    ..NewItems::default()
                },
            )
            .unwrap();
    }
    let client = gx.client(fast());
    let target = Target::new(A);
    let query = exsync_graph::MessageListQuery {
        select: MessageSelect {
            properties: vec!["receivedDateTime".into()],
            body_type: None,
            expand_outgoing_marker: false,
        },
        received_since: Some(at(5)),
        page_size: 3,
    };
    let mut page = client
        .list_messages(&target, "inbox", &query)
        .await
        .unwrap();
    let mut dates = Vec::new();
    let mut pages = 1;
    loop {
        dates.extend(page.value.iter().map(|m| m.received_date_time.unwrap()));
        assert!(page.value.iter().all(|m| m.subject.is_none()));
        match page.next_link {
            Some(link) => {
                pages += 1;
                page = client.list_messages_next(&target, &link).await.unwrap();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3, "7 messages in pages of 3");
    assert_eq!(
        dates.len(),
        7,
        "only mail received at or after the filter's date"
    );
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    let (status, _, body) = gx
        .raw(
            reqwest::Method::GET,
            &format!("/users/{A}/mailFolders/inbox/messages?$select=receivedDateTime&$top=2"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for message in body["value"].as_array().unwrap() {
        let keys: BTreeSet<&str> = message
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.iter()
                .all(|k| ["id", "receivedDateTime", "@odata.etag"].contains(k)),
            "{keys:?}"
        );
    }
    assert!(body["@odata.nextLink"].as_str().unwrap().contains("skip"));

    // What Graph refuses: ordering by a property that does not open the filter (in the
    // filter's order), and a delta option on a plain listing.
    for (query, code) in [
        (
            "$filter=isRead%20eq%20false&$orderby=receivedDateTime%20asc",
            "InefficientFilter",
        ),
        (
            "$filter=isRead%20eq%20false%20and%20receivedDateTime%20ge%202026-06-01T00:00:00Z&$orderby=receivedDateTime",
            "InefficientFilter",
        ),
        ("$deltatoken=x", "BadRequest"),
    ] {
        let (status, _, body) = gx
            .raw(
                reqwest::Method::GET,
                &format!("/users/{A}/mailFolders/inbox/messages?{query}"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        if code != "BadRequest" {
            assert_eq!(body["error"]["code"], code, "{query}");
        }
    }
    gx.check_traffic();
}

//! The fake Exchange's streaming notifications, over real HTTP with exsync's own client:
//! Subscribe (streaming), GetStreamingEvents as a long-lived response of whole envelopes
//! (notifications, keep-alives, `Closed` at ConnectionTimeout), Unsubscribe, events for
//! created / modified / deleted / moved items, expiry and ErrorSubscriptionNotFound on demand,
//! affinity between a group's subscriptions and its connection, the per-connection and
//! per-account limits, and dropped connections. Every answer is recorded for the schema check.

use std::time::Duration;

use exsync_ews::client::{Affinity, ClientOptions, EventStream, EwsAuth, EwsClient, Target};
use exsync_ews::ops::get_streaming_events::{
    ChangedObject, ConnectionStatus, GetStreamingEventsResponse, NotificationEvent,
};
use exsync_ews::ops::subscribe::EventType;
use exsync_ews::ops::{GetStreamingEventsRequest, SubscribeRequest, UnsubscribeRequest};
use exsync_ews::transport::{Transport, TransportSettings};
use exsync_ews::types::{BaseFolderId, DistinguishedFolderName};
use exsync_ews::EwsError;
use fake_exchange::streaming::back_end_of;
use fake_exchange::FakeExchange;
use secrecy::SecretString;
use serde_json::{json, Value};

/// A generous bound for anything the fake does asynchronously (never a timing assertion).
const PATIENCE: Duration = Duration::from_secs(30);

struct Streams {
    fake: FakeExchange,
    http: reqwest::Client,
    client: EwsClient,
}

impl Streams {
    /// A fake with `mailboxes` and a service account allowed to impersonate them; a scaled
    /// minute of `minute_ms` and keep-alives every `keep_alive_ms`.
    async fn start(mailboxes: &[&str], minute_ms: u64, keep_alive_ms: u64) -> Streams {
        let fake = FakeExchange::start(crate::support::world::recording_fake())
            .await
            .expect("fake starts");
        let http = reqwest::Client::new();
        let s = Streams {
            client: EwsClient::new(
                url::Url::parse(&fake.ews_url()).unwrap(),
                EwsAuth::Basic {
                    username: "svc".into(),
                    password: SecretString::from("Svc-Pw1!"),
                },
                Transport::new(TransportSettings::default()).unwrap(),
                ClientOptions::default(),
            ),
            fake,
            http,
        };
        for (i, address) in mailboxes.iter().enumerate() {
            s.api(
                "POST",
                "/_fake/accounts",
                json!({"address": address, "username": format!("user{i}"), "password": "Pw-1!x"}),
            )
            .await;
        }
        s.api(
            "POST",
            "/_fake/accounts",
            json!({"username": "svc", "password": "Svc-Pw1!"}),
        )
        .await;
        s.api(
            "PUT",
            "/_fake/rights",
            json!({"account": "svc", "impersonate": mailboxes, "delegate": []}),
        )
        .await;
        s.api(
            "PUT",
            "/_fake/streaming",
            json!({"minute_ms": minute_ms, "keep_alive_ms": keep_alive_ms}),
        )
        .await;
        s
    }

    async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method, format!("{}{path}", self.fake.base_url()))
            .json(&body)
            .send()
            .await
            .expect("control API reachable");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn stats(&self) -> Value {
        let v: Value = self
            .http
            .get(format!("{}/_fake/streaming", self.fake.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["stats"].clone()
    }

    async fn deliver(&self, address: &str) -> String {
        let v = self
            .api(
                "POST",
                &format!("/_fake/mailboxes/{address}/items"),
                json!({"folder": "inbox", "count": 1}),
            )
            .await;
        v["ids"][0].as_str().expect("an item id").to_owned()
    }

    async fn subscribe(&self, mailbox: &str, affinity: &mut Affinity) -> Result<String, EwsError> {
        let response = self
            .client
            .subscribe_in_group(&target(mailbox), &inbox_subscription(), affinity)
            .await?;
        Ok(response.first()?.subscription_id.clone())
    }

    async fn open(
        &self,
        anchor: &str,
        ids: Vec<String>,
        minutes: u8,
        affinity: &Affinity,
    ) -> EventStream {
        self.client
            .open_event_stream(
                Some(&target(anchor)),
                &GetStreamingEventsRequest {
                    subscription_ids: ids,
                    connection_timeout_minutes: minutes,
                },
                affinity,
            )
            .await
            .expect("the event stream opens")
    }
}

fn target(mailbox: &str) -> Target {
    Target {
        mailbox: mailbox.into(),
        impersonate: true,
        log_payloads: false,
    }
}

fn inbox_subscription() -> SubscribeRequest {
    SubscribeRequest {
        subscribe_to_all_folders: None,
        folder_ids: vec![BaseFolderId::distinguished(DistinguishedFolderName::Inbox)],
        event_types: EventType::SYNC_RELEVANT.to_vec(),
    }
}

/// The next envelope, within the patience bound.
async fn next(stream: &mut EventStream) -> Option<Result<GetStreamingEventsResponse, EwsError>> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("the stream answers within the patience bound")
}

/// Read envelopes until `want` holds for one; all envelopes read.
async fn read_until(
    stream: &mut EventStream,
    want: impl Fn(&GetStreamingEventsResponse) -> bool,
) -> Vec<GetStreamingEventsResponse> {
    let mut seen = Vec::new();
    loop {
        let envelope = next(stream)
            .await
            .expect("the stream ended before the expected envelope")
            .expect("a readable envelope");
        let done = want(&envelope);
        seen.push(envelope);
        if done {
            return seen;
        }
    }
}

fn events_of(envelope: &GetStreamingEventsResponse) -> Vec<(String, EventType, String)> {
    let mut out = Vec::new();
    for message in &envelope.messages {
        for n in message.payload.iter().flat_map(|p| &p.notifications) {
            for e in &n.events {
                if let NotificationEvent::Object {
                    kind,
                    object: ChangedObject::Item(id),
                    ..
                } = e
                {
                    out.push((n.subscription_id.clone(), *kind, id.id.clone()));
                }
            }
        }
    }
    out
}

fn status_of(envelope: &GetStreamingEventsResponse) -> Option<ConnectionStatus> {
    envelope
        .messages
        .iter()
        .find_map(|m| m.payload.as_ref().and_then(|p| p.connection_status))
}

fn error_ids(envelope: &GetStreamingEventsResponse, code: &str) -> Vec<String> {
    envelope
        .messages
        .iter()
        .filter(|m| m.code.as_str() == code)
        .flat_map(|m| {
            m.payload
                .iter()
                .flat_map(|p| p.error_subscription_ids.clone())
        })
        .collect()
}

/// Two addresses on different back ends of the fake.
fn split_pair() -> (String, String) {
    let first = "ann@contoso.test".to_owned();
    let other = (0..50)
        .map(|i| format!("bob{i}@contoso.test"))
        .find(|a| back_end_of(a) != back_end_of(&first))
        .expect("some address lives on the other back end");
    (first, other)
}

#[tokio::test]
async fn new_mail_reaches_an_open_stream_keep_alives_flow_and_the_server_closes_at_the_timeout() {
    let s = Streams::start(&["ann@contoso.test"], 1500, 200).await;
    let mut affinity = Affinity::anchored("ann@contoso.test");
    let id = s
        .subscribe("ann@contoso.test", &mut affinity)
        .await
        .unwrap();
    let mut stream = s
        .open("ann@contoso.test", vec![id.clone()], 1, &affinity)
        .await;
    read_until(&mut stream, |e| status_of(e) == Some(ConnectionStatus::Ok)).await;
    let item = s.deliver("ann@contoso.test").await;
    let seen = read_until(&mut stream, |e| !events_of(e).is_empty()).await;
    let events = events_of(seen.last().unwrap());
    assert!(
        events.contains(&(id.clone(), EventType::Created, item.clone())),
        "{events:?}"
    );
    assert!(
        events.contains(&(id.clone(), EventType::NewMail, item.clone())),
        "{events:?}"
    );
    // One scaled minute later the server says Closed and ends the response.
    read_until(&mut stream, |e| {
        status_of(e) == Some(ConnectionStatus::Closed)
    })
    .await;
    assert!(
        next(&mut stream).await.is_none(),
        "the response ends after Closed"
    );
}

#[tokio::test]
async fn modified_deleted_and_moved_items_raise_their_events_even_while_disconnected() {
    let s = Streams::start(&["ann@contoso.test"], 60_000, 60_000).await;
    let mut affinity = Affinity::anchored("ann@contoso.test");
    let id = s
        .subscribe("ann@contoso.test", &mut affinity)
        .await
        .unwrap();
    let first = s.deliver("ann@contoso.test").await;
    let second = s.deliver("ann@contoso.test").await;
    let third = s.deliver("ann@contoso.test").await;
    // Through EWS: DeleteItem to Deleted Items is a move too.
    s.client
        .call(
            Some(&target("ann@contoso.test")),
            &exsync_ews::ops::DeleteItemRequest {
                delete_type: exsync_ews::types::DeleteType::MoveToDeletedItems,
                send_meeting_cancellations: None,
                affected_task_occurrences: None,
                item_ids: vec![exsync_ews::types::ItemId::new(third.clone())],
            },
        )
        .await
        .unwrap()
        .first()
        .unwrap();
    s.api(
        "PATCH",
        &format!("/_fake/mailboxes/ann@contoso.test/items/{first}"),
        json!({"subject": "changed"}),
    )
    .await;
    let moved = s
        .api(
            "POST",
            &format!("/_fake/mailboxes/ann@contoso.test/items/{second}/move"),
            json!({"folder": "deleteditems"}),
        )
        .await;
    let moved = moved["id"].as_str().unwrap().to_owned();
    s.api(
        "DELETE",
        &format!("/_fake/mailboxes/ann@contoso.test/items/{first}"),
        json!({}),
    )
    .await;
    // Events wait for the connection (the subscription keeps them until it expires).
    let mut stream = s
        .open("ann@contoso.test", vec![id.clone()], 1, &affinity)
        .await;
    let mut events = Vec::new();
    while !events.iter().any(|(_, k, _)| *k == EventType::Deleted) {
        let e = next(&mut stream).await.expect("open").expect("readable");
        events.extend(events_of(&e));
    }
    let kinds: Vec<(EventType, String)> = events.into_iter().map(|(_, k, i)| (k, i)).collect();
    assert!(
        kinds.contains(&(EventType::Modified, first.clone())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(EventType::Moved, moved.clone())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(EventType::Deleted, first)), "{kinds:?}");
    assert!(
        !kinds.contains(&(EventType::Deleted, second)),
        "a move is one MovedEvent, not a deletion: {kinds:?}"
    );
    assert!(
        !kinds.contains(&(EventType::Deleted, third)),
        "DeleteItem to Deleted Items is one MovedEvent: {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|(k, _)| *k == EventType::Moved).count(),
        2,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn an_expired_subscription_is_reported_not_found_on_the_open_stream_and_on_the_next() {
    let s = Streams::start(&["ann@contoso.test"], 60_000, 60_000).await;
    let mut affinity = Affinity::anchored("ann@contoso.test");
    let id = s
        .subscribe("ann@contoso.test", &mut affinity)
        .await
        .unwrap();
    let mut stream = s
        .open("ann@contoso.test", vec![id.clone()], 1, &affinity)
        .await;
    s.api(
        "POST",
        "/_fake/streaming/expire",
        json!({"mailbox": "ann@contoso.test"}),
    )
    .await;
    let seen = read_until(&mut stream, |e| {
        !error_ids(e, "ErrorSubscriptionNotFound").is_empty()
    })
    .await;
    assert_eq!(
        error_ids(seen.last().unwrap(), "ErrorSubscriptionNotFound"),
        vec![id.clone()]
    );
    let mut again = s
        .open("ann@contoso.test", vec![id.clone()], 1, &affinity)
        .await;
    let first = next(&mut again).await.unwrap().unwrap();
    assert_eq!(error_ids(&first, "ErrorSubscriptionNotFound"), vec![id]);
}

#[tokio::test]
async fn a_group_keeps_its_subscriptions_on_one_server_only_with_the_affinity_headers() {
    let (ann, bob) = split_pair();
    let s = Streams::start(&[&ann, &bob], 60_000, 60_000).await;
    // The group's way: both subscribed anchored on ann, with the cookie Exchange answered.
    let mut group = Affinity::anchored(ann.as_str());
    let a = s.subscribe(&ann, &mut group).await.unwrap();
    assert!(
        group.back_end_cookie.is_some(),
        "Subscribe answered X-BackEndOverrideCookie"
    );
    let b = s.subscribe(&bob, &mut group).await.unwrap();
    let mut stream = s.open(&ann, vec![a.clone(), b.clone()], 1, &group).await;
    let item = s.deliver(&bob).await;
    let seen = read_until(&mut stream, |e| !events_of(e).is_empty()).await;
    assert!(seen
        .iter()
        .all(|e| error_ids(e, "ErrorSubscriptionNotFound").is_empty()));
    assert!(events_of(seen.last().unwrap()).contains(&(b, EventType::Created, item)));

    // Without affinity, bob's subscription lands on bob's server: ann's connection lacks it.
    let mut own = Affinity::anchored(bob.as_str());
    let stray = s.subscribe(&bob, &mut own).await.unwrap();
    let mut anchored = Affinity::anchored(ann.as_str());
    let c = s.subscribe(&ann, &mut anchored).await.unwrap();
    anchored.back_end_cookie = None;
    let mut mixed = s.open(&ann, vec![c, stray.clone()], 1, &anchored).await;
    let first = next(&mut mixed).await.unwrap().unwrap();
    assert_eq!(error_ids(&first, "ErrorSubscriptionNotFound"), vec![stray]);
    assert!(s.stats().await["requests_without_anchor"].as_u64() == Some(0));
}

#[tokio::test]
async fn unsubscribe_ends_a_subscription_and_limits_are_enforced() {
    let s = Streams::start(&["ann@contoso.test"], 60_000, 60_000).await;
    let mut affinity = Affinity::anchored("ann@contoso.test");
    let id = s
        .subscribe("ann@contoso.test", &mut affinity)
        .await
        .unwrap();
    s.client
        .unsubscribe_in_group(
            &target("ann@contoso.test"),
            &UnsubscribeRequest {
                subscription_id: id.clone(),
            },
            &affinity,
        )
        .await
        .unwrap()
        .first()
        .unwrap();
    let again = s
        .client
        .unsubscribe_in_group(
            &target("ann@contoso.test"),
            &UnsubscribeRequest {
                subscription_id: id.clone(),
            },
            &affinity,
        )
        .await
        .unwrap();
    assert!(
        matches!(again.first(), Err(EwsError::Request { code, .. }) if code == "ErrorSubscriptionNotFound")
    );

    // More than 200 subscriptions on one connection are refused.
    let many: Vec<String> = (0..201).map(|i| format!("sub-{i}")).collect();
    let mut stream = s.open("ann@contoso.test", many, 1, &affinity).await;
    let first = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(first.messages[0].code.as_str(), "ErrorInvalidArgument");

    // Beyond the per-account connection limit: ErrorExceededConnectionCount.
    s.api(
        "PUT",
        "/_fake/streaming",
        json!({"max_connections_per_account": 1}),
    )
    .await;
    let live = s
        .subscribe("ann@contoso.test", &mut affinity)
        .await
        .unwrap();
    let _open = s
        .open("ann@contoso.test", vec![live.clone()], 1, &affinity)
        .await;
    let second = tokio::time::timeout(PATIENCE, async {
        loop {
            if s.stats().await["open_connections"].as_u64() == Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(second.is_ok(), "the first connection opened");
    let mut refused = s.open("ann@contoso.test", vec![live], 1, &affinity).await;
    let first = next(&mut refused).await.unwrap().unwrap();
    assert_eq!(
        first.messages[0].code.as_str(),
        "ErrorExceededConnectionCount"
    );
    assert!(first.messages[0].back_off.is_some());
}

#[tokio::test]
async fn refused_subscriptions_and_dropped_connections_are_what_the_client_sees() {
    let s = Streams::start(&["ann@contoso.test"], 60_000, 60_000).await;
    s.api(
        "PUT",
        "/_fake/streaming",
        json!({"refuse_subscribe": "ErrorServerBusy"}),
    )
    .await;
    let mut affinity = Affinity::anchored("ann@contoso.test");
    let refused = s.subscribe("ann@contoso.test", &mut affinity).await;
    assert!(
        matches!(refused, Err(EwsError::ServerBusy { .. })),
        "{refused:?}"
    );
    s.api("PUT", "/_fake/streaming", json!({"refuse_subscribe": null}))
        .await;
    // The client honours the back-off before the next request.
    if let Some(wait) = s.client.back_off_remaining() {
        tokio::time::sleep(wait).await;
    }
    let id = s
        .subscribe("ann@contoso.test", &mut affinity)
        .await
        .unwrap();
    let mut stream = s.open("ann@contoso.test", vec![id], 1, &affinity).await;
    tokio::time::timeout(PATIENCE, async {
        while s.stats().await["open_connections"].as_u64() != Some(1) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the connection is open");
    s.api("POST", "/_fake/streaming/drop", json!({})).await;
    let end = next(&mut stream).await;
    assert!(
        matches!(end, None | Some(Err(EwsError::Transport(_)))),
        "a dropped connection ends without Closed: {end:?}"
    );
}

#[tokio::test]
async fn malformed_notification_requests_are_refused_with_schema_validation() {
    let s = Streams::start(&["ann@contoso.test"], 60_000, 60_000).await;
    let request = format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header><t:RequestServerVersion Version="Exchange2013_SP1"/><t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>ann@contoso.test</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></s:Header><s:Body>{}</s:Body></s:Envelope>"#,
        r#"<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>x</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>45</m:ConnectionTimeout></m:GetStreamingEvents>"#
    );
    let response = s
        .http
        .post(s.fake.ews_url())
        .basic_auth("svc", Some("Svc-Pw1!"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        reqwest::StatusCode::INTERNAL_SERVER_ERROR
    );
    let body = response.text().await.unwrap();
    assert!(body.contains("ErrorSchemaValidation"), "{body}");
}

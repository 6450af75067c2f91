//! How the client behaves on the wire: headers, the 4-per-mailbox and caller caps, never
//! sending before `Retry-After`, tokens, and links it refuses to follow. Proven against a
//! real HTTP server; no assertion is about speed (only lower bounds on waits Graph asked for).

use super::fixtures::{self, MAILBOX};
use super::{setup, setup_with};
use crate::client::{ClientOptions, RequestEvent, RequestObserver, Target};
use crate::model::Message;
use crate::testing::{client_for, Canned, CannedGraph, TestTokens};
use crate::throttle::ThrottleRegistry;
use crate::{ErrorKind, GraphFailure, MessageSelect};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const OK_MESSAGE: &str = r#"{"id":"m1","subject":"hello"}"#;

fn too_many(retry_after: Option<&str>) -> Canned {
    let canned = Canned::json(
        429,
        r#"{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}"#,
    );
    match retry_after {
        Some(value) => canned.header("retry-after", value),
        None => canned,
    }
}

#[tokio::test]
async fn every_request_asks_for_immutable_ids_and_carries_a_fresh_client_request_id() {
    let (server, client, target) = setup().await;
    server.otherwise(
        Canned::json(200, OK_MESSAGE).header("request-id", "11111111-2222-3333-4444-555555555555"),
    );
    for _ in 0..3 {
        client
            .get_message(&target, "m1", &MessageSelect::default())
            .await
            .unwrap();
    }
    let seen = server.seen();
    let mut ids = std::collections::HashSet::new();
    for request in &seen {
        assert!(request
            .header("prefer")
            .unwrap()
            .contains("IdType=\"ImmutableId\""));
        assert_eq!(request.header("return-client-request-id"), Some("true"));
        assert_eq!(request.header("authorization"), Some("Bearer token-1"));
        let id = request.header("client-request-id").unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        ids.insert(id.to_owned());
    }
    assert_eq!(ids.len(), 3, "one client-request-id per request");
}

#[tokio::test]
async fn graphs_request_id_travels_in_the_error() {
    let (server, client, target) = setup().await;
    server.push(
        Canned::json(
            404,
            r#"{"error":{"code":"ErrorItemNotFound","message":"gone"}}"#,
        )
        .header("request-id", "aaaaaaaa-0000-0000-0000-000000000001")
        .header("date", "Sun, 06 Dec 2026 10:00:00 GMT"),
    );
    let error = client
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap_err();
    let correlation = error.correlation().unwrap();
    assert_eq!(
        correlation.request_id.as_deref(),
        Some("aaaaaaaa-0000-0000-0000-000000000001")
    );
    let sent = server.seen()[0]
        .header("client-request-id")
        .unwrap()
        .to_owned();
    assert_eq!(correlation.client_request_id.to_string(), sent);
    let text = error.to_string();
    assert!(
        text.contains("request-id aaaaaaaa-0000-0000-0000-000000000001"),
        "{text}"
    );
    assert!(!text.contains("token-1"));
}

#[tokio::test]
async fn never_more_than_four_requests_in_flight_per_mailbox_across_clients_of_one_app() {
    let server = CannedGraph::start().await;
    let registry = Arc::new(ThrottleRegistry::new());
    let options = ClientOptions {
        max_in_flight: 20,
        ..Default::default()
    };
    // Two clients of the same application (two profiles on one app registration).
    let first = Arc::new(client_for(
        &server,
        TestTokens::new("app-1"),
        registry.clone(),
        options.clone(),
    ));
    let second = Arc::new(client_for(
        &server,
        TestTokens::new("app-1"),
        registry.clone(),
        options,
    ));
    server.otherwise(Canned::json(200, OK_MESSAGE));
    server.hold();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            client
                .get_message(
                    &Target::new(MAILBOX),
                    &format!("m{i}"),
                    &MessageSelect::default(),
                )
                .await
        }));
    }
    server.wait_in_flight(4).await;
    // Give a fifth request every chance to arrive if the gate leaked (not a speed assertion).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.in_flight(), 4);
    // Another mailbox is not held up by the busy one.
    let other = first.clone();
    let other_task = tokio::spawn(async move {
        other
            .get_message(
                &Target::new("bob@contoso.com"),
                "x",
                &MessageSelect::default(),
            )
            .await
    });
    server.wait_in_flight(5).await;
    server.release();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    other_task.await.unwrap().unwrap();
    assert_eq!(server.seen().len(), 11);
    assert_eq!(
        server.max_in_flight(),
        5,
        "4 for the busy mailbox + 1 for the other"
    );
}

#[tokio::test]
async fn never_more_requests_in_flight_than_the_callers_cap() {
    let (server, client, _) = setup_with(ClientOptions {
        max_in_flight: 2,
        ..Default::default()
    })
    .await;
    let client = Arc::new(client);
    server.otherwise(Canned::json(200, OK_MESSAGE));
    server.hold();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .get_message(
                    &Target::new(format!("user{i}@contoso.com")),
                    "m",
                    &MessageSelect::default(),
                )
                .await
        }));
    }
    server.wait_in_flight(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.in_flight(), 2);
    server.release();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(server.max_in_flight(), 2);
}

#[tokio::test]
async fn a_short_retry_after_in_seconds_is_waited_out_before_the_request_is_sent_again() {
    let (server, client, target) = setup().await;
    server.push(too_many(Some("1")));
    server.push(Canned::json(200, OK_MESSAGE));
    let message = client
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap();
    assert_eq!(message.subject.as_deref(), Some("hello"));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(gap >= Duration::from_secs(1), "resent after {gap:?}");
}

#[tokio::test]
async fn a_retry_after_given_as_an_http_date_is_honoured() {
    let (server, client, target) = setup_with(ClientOptions {
        max_inline_wait: Duration::from_secs(4),
        ..Default::default()
    })
    .await;
    let not_before = SystemTime::now() + Duration::from_secs(3);
    server.push(too_many(Some(&httpdate::fmt_http_date(not_before))));
    server.push(Canned::json(200, OK_MESSAGE));
    client
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap();
    let seen = server.seen();
    // HTTP-dates have whole seconds: the date written is at most 1 s before `not_before`.
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(gap >= Duration::from_secs(1), "resent after {gap:?}");
    assert!(SystemTime::now() + Duration::from_secs(1) >= not_before);
}

#[tokio::test]
async fn nothing_is_sent_to_a_throttled_mailbox_before_its_retry_after_by_any_client_of_the_app() {
    let server = CannedGraph::start().await;
    let registry = Arc::new(ThrottleRegistry::new());
    let first = client_for(
        &server,
        TestTokens::new("app-1"),
        registry.clone(),
        ClientOptions::default(),
    );
    let second = client_for(
        &server,
        TestTokens::new("app-1"),
        registry.clone(),
        ClientOptions::default(),
    );
    let other_app = client_for(
        &server,
        TestTokens::new("app-2"),
        registry.clone(),
        ClientOptions::default(),
    );
    server.push(too_many(Some("30")));
    server.otherwise(Canned::json(200, OK_MESSAGE));
    let target = Target::new(MAILBOX);

    let error = first
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Throttled);
    let wait = error.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    assert!(first.back_off_remaining(MAILBOX).is_some());

    // The other client of the same application does not send anything to that mailbox …
    let waiting = second
        .get_message(
            &Target::new("ANNA@contoso.com"),
            "m2",
            &MessageSelect::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(waiting.failure(), GraphFailure::Throttled { code, .. } if code == "waiting"));
    assert!(waiting.correlation().is_none(), "nothing was sent");
    assert_eq!(server.seen().len(), 1);

    // … while another mailbox, and another application on this mailbox, go on.
    second
        .get_message(
            &Target::new("bob@contoso.com"),
            "m3",
            &MessageSelect::default(),
        )
        .await
        .unwrap();
    other_app
        .get_message(&target, "m4", &MessageSelect::default())
        .await
        .unwrap();
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn without_retry_after_the_wait_doubles() {
    let (server, client, target) = setup_with(ClientOptions {
        back_off_initial: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    server.push(Canned::json(
        503,
        r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#,
    ));
    server.push(Canned::json(
        503,
        r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#,
    ));
    server.push(Canned::json(200, OK_MESSAGE));
    client
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(200));
    assert!(seen[2].at.duration_since(seen[1].at) >= Duration::from_millis(400));
}

#[tokio::test]
async fn a_send_answered_503_is_not_sent_again_but_a_throttled_429_is() {
    let (server, client, target) = setup().await;
    server.push(
        Canned::json(
            503,
            r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#,
        )
        .header("retry-after", "0"),
    );
    server.otherwise(Canned::empty(202));
    // The outcome of a send answered 503 is unknown: the caller looks for the marker first.
    let error = client.send_draft(&target, "d1").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Throttled);
    assert_eq!(server.seen().len(), 1);
    // A 429 means the request was refused before anything happened: sending again is safe.
    server.push(too_many(Some("0")));
    client.send_draft(&target, "d1").await.unwrap();
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_then_reported() {
    let server = CannedGraph::start().await;
    let tokens = TestTokens::new("app-1");
    let client = client_for(
        &server,
        tokens.clone(),
        Arc::new(ThrottleRegistry::new()),
        ClientOptions::default(),
    );
    let expired = Canned::json(
        401,
        r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}"#,
    );
    server.push(expired.clone());
    server.push(Canned::json(200, OK_MESSAGE));
    let target = Target::new(MAILBOX);
    client
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].header("authorization"), Some("Bearer token-1"));
    assert_eq!(seen[1].header("authorization"), Some("Bearer token-2"));
    assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1);

    server.push(expired.clone());
    server.push(expired);
    let error = client
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Authentication);
    assert_eq!(
        server.seen().len(),
        4,
        "one fresh token, one more try, no storm"
    );
    assert!(
        !client.credentials_rejected(),
        "a 401 is not a refused sign-in"
    );
}

#[tokio::test]
async fn an_application_the_token_endpoint_refused_is_never_tried_again_by_this_client() {
    let server = CannedGraph::start().await;
    let tokens = TestTokens::refusing("app-1");
    let client = client_for(
        &server,
        tokens.clone(),
        Arc::new(ThrottleRegistry::new()),
        ClientOptions::default(),
    );
    let target = Target::new(MAILBOX);
    for _ in 0..3 {
        let error = client
            .get_message(&target, "m1", &MessageSelect::default())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Authentication);
    }
    assert_eq!(
        tokens.fetched.load(Ordering::SeqCst),
        1,
        "one refused sign-in, no more"
    );
    assert!(client.credentials_rejected());
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_paging_link_to_another_origin_is_not_followed() {
    let (server, client, target) = setup().await;
    let elsewhere = CannedGraph::start().await;
    elsewhere.otherwise(Canned::json(200, r#"{"value":[],"@odata.deltaLink":"x"}"#));
    let link = format!(
        "{}/users/{MAILBOX}/mailFolders/inbox/messages/delta?$skiptoken=1",
        elsewhere.url
    );
    let error = client
        .message_delta_next(&target, &link, None)
        .await
        .unwrap_err();
    assert!(matches!(error.failure(), GraphFailure::Malformed { .. }));
    // Same host and port but outside the versioned base path is refused too.
    let base = server.url.trim_end_matches("/v1.0");
    let beta = format!("{base}/beta/users/{MAILBOX}/mailFolders/inbox/messages/delta");
    assert!(client
        .message_delta_next(&target, &beta, None)
        .await
        .is_err());
    assert!(
        elsewhere.seen().is_empty(),
        "the token never left for another origin"
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (server, client, target) = setup().await;
    let elsewhere = CannedGraph::start().await;
    server.push(
        Canned::empty(302).header("location", format!("{}/users/x/messages/m1", elsewhere.url)),
    );
    let error = client
        .get_message(&target, "m1", &MessageSelect::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert!(elsewhere.seen().is_empty());
}

#[tokio::test]
async fn a_delta_page_without_links_or_with_bad_json_is_malformed_not_empty() {
    let (server, client, target) = setup().await;
    server.push(Canned::json(200, r#"{"value":[]}"#));
    server.push(Canned::json(200, r#"{"value":[{"id": 5}]"#));
    let query = crate::MessageDeltaQuery::default();
    for _ in 0..2 {
        let error = client
            .message_delta(&target, "inbox", &query)
            .await
            .unwrap_err();
        assert!(matches!(error.failure(), GraphFailure::Malformed { .. }));
        assert_eq!(error.kind(), ErrorKind::Transient);
        assert!(error.correlation().is_some());
    }
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(String, Option<u16>, String)>>);

impl RequestObserver for Recorder {
    fn observe(&self, event: &RequestEvent<'_>) {
        self.0.lock().unwrap().push((
            event.operation.to_owned(),
            event.status,
            event.code.to_owned(),
        ));
    }
}

#[tokio::test]
async fn every_exchange_reaches_the_observer_with_its_outcome() {
    let recorder = Arc::new(Recorder::default());
    let (server, client, target) = setup_with(ClientOptions {
        observer: Some(recorder.clone()),
        ..Default::default()
    })
    .await;
    server.push(too_many(Some("0")));
    server.push(Canned::json(201, fixtures::CREATED_DRAFT));
    client
        .create_draft(&target, &Message::default(), "7")
        .await
        .unwrap();
    let events = recorder.0.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            (
                "message.createDraft".to_owned(),
                Some(429),
                "ApplicationThrottled".to_owned()
            ),
            ("message.createDraft".to_owned(), Some(201), "OK".to_owned()),
        ]
    );
    let _ = Instant::now();
}

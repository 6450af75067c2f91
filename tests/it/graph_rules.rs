//! Issue 10: the Microsoft Graph provider against the fake Graph over real HTTP (the same
//! mailboxes as the fake Exchange), by rule.

use crate::support::graph::{self, graph_org};
use crate::support::world::{fast_settings, World};
use serde_json::json;
use sqlx::PgPool;

/// The Graph profile with `{limit}` connections, alice on it without ACT.
fn graph_org_text() -> String {
    graph_org("max_concurrent_connections = {limit}", "none")
}

/// A world whose fake serves Graph too, with alice and the app registered.
async fn graph_world(pool: PgPool) -> World {
    graph::graph_world(pool, fast_settings()).await
}

/// Apply the Graph profile with `limit` connections (and `extra` apply text appended).
async fn graph_profile(world: &World, limit: u32, extra: &str) {
    let graph = world.fake.graph_url().expect("graph served");
    let text = format!("{}{extra}", graph_org_text())
        .replace("{graph}", &graph)
        .replace("{limit}", &limit.to_string());
    world.apply(&text).await;
}

#[sqlx::test]
async fn incoming_mail_comes_in_through_message_delta_once(pool: PgPool) {
    let world = graph_world(pool).await;
    graph_profile(&world, 10, "").await;
    world
        .deliver("alice@contoso.test", 12, "2026-06-01T10:00:00Z")
        .await;
    let pass = world.pass("alice@contoso.test").await;
    let report = pass
        .reports
        .iter()
        .map(|r| format!("{:?}", r.outcome))
        .collect::<Vec<_>>();
    assert_eq!(
        world.count("SELECT count(*) FROM emails").await,
        12,
        "{report:?}"
    );
    // Nothing new: nothing imported again.
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 12);
    world
        .deliver("alice@contoso.test", 3, "2026-06-02T10:00:00Z")
        .await;
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 15);
    let stats = world.fake_get("/_fake/graph/stats").await;
    assert!(
        stats["operations"]["message.delta"].as_u64().unwrap_or(0) >= 3,
        "{stats}"
    );
}

async fn enqueue(world: &World, to: &str, subject: &str) -> uuid::Uuid {
    exsync::store::outgoing::enqueue(
        &world.store,
        "alice@contoso.test",
        &[to.to_owned()],
        &[],
        subject,
        "body",
    )
    .await
    .unwrap()
    .0
}

async fn items(world: &World, address: &str, folder: &str) -> Vec<serde_json::Value> {
    world
        .fake_get(&format!("/_fake/mailboxes/{address}/items?folder={folder}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn graph_stats(world: &World) -> serde_json::Value {
    world.fake_get("/_fake/graph/stats").await
}

fn operations(stats: &serde_json::Value, operation: &str) -> u64 {
    stats["operations"][operation].as_u64().unwrap_or(0)
}

fn mailbox_stat(stats: &serde_json::Value, mailbox: &str, counter: &str) -> u64 {
    stats["apps"]["graph-app"][mailbox][counter]
        .as_u64()
        .unwrap_or(0)
}

fn outcome(pass: &exsync::sync::PassSummary, workload: exsync::domain::Workload) -> String {
    format!("{:?}", pass.report(workload).expect("workload ran").outcome)
}

#[sqlx::test]
async fn a_queued_email_is_sent_once_as_a_marked_draft_and_its_message_id_read_back(pool: PgPool) {
    let world = graph_world(pool).await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    graph_profile(&world, 10, "").await;
    let id = enqueue(&world, "bob@contoso.test", "Graph hello").await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&pass, exsync::domain::Workload::Outgoing),
        "Success"
    );
    let (status, sent_id): (String, Option<String>) =
        sqlx::query_as("SELECT status, sent_message_id FROM outgoing_emails WHERE id = $1")
            .bind(id)
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert_eq!(status, "sent");
    let sent = items(&world, "alice@contoso.test", "sentitems").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 1);
    assert!(items(&world, "alice@contoso.test", "drafts")
        .await
        .is_empty());
    assert_eq!(
        sent_id.as_deref(),
        sent[0]["internet_message_id"].as_str(),
        "the Message-ID Exchange assigned is read back"
    );
    let stats = graph_stats(&world).await;
    assert_eq!(operations(&stats, "message.create"), 1, "{stats}");
    assert_eq!(operations(&stats, "message.send"), 1, "{stats}");
}

#[sqlx::test]
async fn a_send_graph_accepted_before_a_crash_is_found_by_its_marker_and_never_sent_twice(
    pool: PgPool,
) {
    let world = graph_world(pool).await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    graph_profile(&world, 10, "").await;
    let id = enqueue(&world, "bob@contoso.test", "Once").await;
    world.pass("alice@contoso.test").await;
    // As if the process died after Graph accepted the send but before anything committed.
    sqlx::query(
        "UPDATE outgoing_emails SET status = 'sending', sent_at = NULL, sent_message_id = NULL
          WHERE id = $1",
    )
    .bind(id)
    .execute(world.store.pool())
    .await
    .unwrap();
    world.fake_post("/_fake/graph/stats/reset", json!({})).await;
    let retry = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&retry, exsync::domain::Workload::Outgoing),
        "Success"
    );
    let stats = graph_stats(&world).await;
    assert_eq!(operations(&stats, "message.create"), 0, "{stats}");
    assert_eq!(operations(&stats, "message.send"), 0, "{stats}");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 1);
    let status: String = sqlx::query_scalar("SELECT status FROM outgoing_emails WHERE id = $1")
        .bind(id)
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    assert_eq!(status, "sent");
}

/// The row's status, last error and whether a send was recorded as issued.
async fn send_row(world: &World, id: uuid::Uuid) -> (String, Option<String>, bool) {
    sqlx::query_as(
        "SELECT status, last_error, send_issued_at IS NOT NULL FROM outgoing_emails WHERE id = $1",
    )
    .bind(id)
    .fetch_one(world.store.pool())
    .await
    .unwrap()
}

/// Graph files the Sent Items copy `delay_ms` after the 202; the first pass sends, then the
/// process "dies" before it records anything (as if the 202 was lost).
async fn a_send_whose_answer_was_lost(world: &World, delay_ms: u64) -> uuid::Uuid {
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    graph_profile(world, 10, "").await;
    world
        .fake_put(
            "/_fake/graph/faults",
            json!({ "sent_items_delay_ms": delay_ms }),
        )
        .await;
    let id = enqueue(world, "bob@contoso.test", "Lost answer").await;
    world.pass("alice@contoso.test").await;
    sqlx::query(
        "UPDATE outgoing_emails
            SET status = 'sending', sent_at = NULL, sent_message_id = NULL, message_id_lookups = 0
          WHERE id = $1",
    )
    .bind(id)
    .execute(world.store.pool())
    .await
    .unwrap();
    world.fake_post("/_fake/graph/stats/reset", json!({})).await;
    id
}

#[sqlx::test]
async fn a_retry_while_the_sent_items_copy_lags_sends_nothing_twice(pool: PgPool) {
    let world = graph_world(pool).await;
    let id = a_send_whose_answer_was_lost(&world, 60_000).await;
    // The draft left Drafts with the send and its copy is not in Sent Items yet: neither
    // marker is found, but the send was issued, so no new draft is made.
    let retry = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&retry, exsync::domain::Workload::Outgoing),
        "Success"
    );
    let stats = graph_stats(&world).await;
    assert_eq!(operations(&stats, "message.create"), 0, "{stats}");
    assert_eq!(operations(&stats, "message.send"), 0, "{stats}");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 1);
    let (status, error, issued) = send_row(&world, id).await;
    assert_eq!(status, "pending", "still queued, retried with backoff");
    assert!(issued);
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .starts_with("waiting for the Sent Items copy"),
        "{error:?}"
    );
}

#[sqlx::test]
async fn once_the_sent_items_copy_appears_the_row_is_sent_with_its_message_id(pool: PgPool) {
    let world = graph_world(pool).await;
    let id = a_send_whose_answer_was_lost(&world, 1_500).await;
    world.pass("alice@contoso.test").await;
    assert_eq!(send_row(&world, id).await.0, "pending");
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    sqlx::query("UPDATE outgoing_emails SET next_attempt_at = now() WHERE id = $1")
        .bind(id)
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("alice@contoso.test").await;
    let (status, sent_id): (String, Option<String>) =
        sqlx::query_as("SELECT status, sent_message_id FROM outgoing_emails WHERE id = $1")
            .bind(id)
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert_eq!(status, "sent");
    let sent = items(&world, "alice@contoso.test", "sentitems").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent_id.as_deref(), sent[0]["internet_message_id"].as_str());
    let stats = graph_stats(&world).await;
    assert_eq!(operations(&stats, "message.create"), 0, "{stats}");
    assert_eq!(operations(&stats, "message.send"), 0, "{stats}");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 1);
}

#[sqlx::test]
async fn a_send_unconfirmed_past_the_bound_fails_with_an_alert_and_is_never_sent_again(
    pool: PgPool,
) {
    let world = graph_world(pool).await;
    let id = a_send_whose_answer_was_lost(&world, 600_000).await;
    // The default bound is 15 minutes: the send was issued an hour ago.
    sqlx::query(
        "UPDATE outgoing_emails SET send_issued_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(id)
    .execute(world.store.pool())
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    let (status, error, _) = send_row(&world, id).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap_or_default().contains("unconfirmed"));
    let stats = graph_stats(&world).await;
    assert_eq!(operations(&stats, "message.create"), 0, "{stats}");
    assert_eq!(operations(&stats, "message.send"), 0, "{stats}");
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT a.code FROM alerts a JOIN mailboxes m ON m.id = a.mailbox_id
          WHERE m.email_address = 'alice@contoso.test' AND a.resolved_at IS NULL",
    )
    .fetch_all(world.store.pool())
    .await
    .unwrap();
    assert!(
        open.contains(&"outgoing.unconfirmed".to_owned()),
        "{open:?}"
    );
    // A later pass neither sends it nor heals the operator's alert.
    enqueue(&world, "bob@contoso.test", "Another").await;
    world.pass("alice@contoso.test").await;
    let still_open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE code = 'outgoing.unconfirmed' AND resolved_at IS NULL",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    assert_eq!(still_open, 1);
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 2);
}

/// App-only tokens from the fake's token endpoint, for driving Graph directly in a test.
#[derive(Debug)]
struct TestTokens {
    token_url: String,
}

impl exsync_graph::TokenSource for TestTokens {
    fn client_id(&self) -> &str {
        "graph-app"
    }

    fn token(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<secrecy::SecretString, exsync_graph::TokenError>>
    {
        Box::pin(async move {
            let answer: serde_json::Value = reqwest::Client::new()
                .post(&self.token_url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "graph-app"),
                    ("client_secret", "Graph-Secret-1"),
                    ("scope", "https://graph.microsoft.com/.default"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            Ok(secrecy::SecretString::from(
                answer["access_token"].as_str().unwrap().to_owned(),
            ))
        })
    }

    fn invalidate<'a>(
        &'a self,
        _rejected: &'a secrecy::SecretString,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

fn test_client(world: &World) -> exsync_graph::GraphClient {
    exsync_graph::GraphClient::new(
        &world.fake.graph_url().unwrap(),
        std::sync::Arc::new(TestTokens {
            token_url: world.fake.token_url(),
        }),
        exsync_graph::Transport::new(exsync_graph::TransportSettings::default()).unwrap(),
        std::sync::Arc::new(exsync_graph::ThrottleRegistry::new()),
        exsync_graph::ClientOptions::default(),
    )
    .unwrap()
}

#[sqlx::test]
async fn a_draft_left_by_a_crash_is_sent_and_not_duplicated(pool: PgPool) {
    let world = graph_world(pool).await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    graph_profile(&world, 10, "").await;
    let id = enqueue(&world, "bob@contoso.test", "Left over").await;
    // The first attempt created its draft, then the process died before `send`.
    let client = test_client(&world);
    let draft = exsync_graph::model::Message {
        subject: Some("Left over".into()),
        to_recipients: Some(vec![exsync_graph::model::Recipient::address(
            "bob@contoso.test",
        )]),
        ..Default::default()
    };
    client
        .create_draft(
            &exsync_graph::Target::new("alice@contoso.test"),
            &draft,
            &id.to_string(),
        )
        .await
        .unwrap();
    sqlx::query("UPDATE outgoing_emails SET status = 'sending', attempts = 1 WHERE id = $1")
        .bind(id)
        .execute(world.store.pool())
        .await
        .unwrap();
    world.fake_post("/_fake/graph/stats/reset", json!({})).await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&pass, exsync::domain::Workload::Outgoing),
        "Success"
    );
    let stats = graph_stats(&world).await;
    assert_eq!(operations(&stats, "message.create"), 0, "{stats}");
    assert_eq!(operations(&stats, "message.send"), 1, "{stats}");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 1);
    assert!(items(&world, "alice@contoso.test", "drafts")
        .await
        .is_empty());
}

#[sqlx::test]
async fn an_expired_delta_token_starts_the_folder_over_without_duplicates(pool: PgPool) {
    let world = graph_world(pool).await;
    graph_profile(&world, 10, "").await;
    world
        .deliver("alice@contoso.test", 12, "2026-06-01T10:00:00Z")
        .await;
    world.pass("alice@contoso.test").await;
    for (shape, more) in [("gone410", 2), ("bad_request400", 3)] {
        world
            .fake_put("/_fake/graph/faults", json!({"delta_expiry": shape}))
            .await;
        world
            .fake_post(
                "/_fake/graph/mailboxes/alice@contoso.test/expire-delta-tokens",
                json!({}),
            )
            .await;
        world
            .deliver("alice@contoso.test", more, "2026-06-03T10:00:00Z")
            .await;
        let pass = world.pass("alice@contoso.test").await;
        assert_eq!(
            outcome(&pass, exsync::domain::Workload::Incoming),
            "Success",
            "{shape}"
        );
    }
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 17);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 17);
}

#[sqlx::test]
async fn requests_never_exceed_four_in_flight_per_mailbox(pool: PgPool) {
    let world = graph_world(pool).await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    graph_profile(
        &world,
        10,
        "\n[[mailbox]]\naddress = \"bob@contoso.test\"\nprofile = \"Contoso Online\"\napproval = \"approved\"\nact = \"none\"\n",
    )
    .await;
    for address in ["alice@contoso.test", "bob@contoso.test"] {
        world.deliver(address, 30, "2026-06-01T10:00:00Z").await;
    }
    world
        .fake_put("/_fake/graph/faults", json!({"latency_ms": 30}))
        .await;
    let (a, b) = tokio::join!(
        world.pass("alice@contoso.test"),
        world.pass("bob@contoso.test")
    );
    for pass in [a, b] {
        assert_eq!(
            outcome(&pass, exsync::domain::Workload::Incoming),
            "Success"
        );
    }
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 60);
    let stats = graph_stats(&world).await;
    for address in ["alice@contoso.test", "bob@contoso.test"] {
        assert_eq!(
            mailbox_stat(&stats, address, "over_concurrency"),
            0,
            "{stats}"
        );
        // The client keeps 4 in flight when it has work for 4, never more.
        assert_eq!(
            mailbox_stat(&stats, address, "peak_in_flight"),
            4,
            "{stats}"
        );
    }
}

#[sqlx::test]
async fn a_throttled_mailbox_waits_as_told_and_nothing_is_sent_early(pool: PgPool) {
    let world = graph_world(pool).await;
    // One request at a time: every request after a 429 is sent after its answer arrived.
    graph_profile(&world, 1, "").await;
    world
        .deliver("alice@contoso.test", 20, "2026-06-01T10:00:00Z")
        .await;
    world
        .fake_put(
            "/_fake/graph/faults",
            json!({
                "throttle_rate": 0.2,
                "retry_after_secs": 1,
                "fail_next": ["throttled", "service_unavailable", "throttled"]
            }),
        )
        .await;
    for _ in 0..15 {
        world.pass("alice@contoso.test").await;
        if world.count("SELECT count(*) FROM email_copies").await == 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 20);
    let stats = graph_stats(&world).await;
    assert!(
        mailbox_stat(&stats, "alice@contoso.test", "throttled") > 0,
        "{stats}"
    );
    assert_eq!(
        mailbox_stat(&stats, "alice@contoso.test", "early_requests"),
        0,
        "{stats}"
    );
}

#[sqlx::test]
async fn the_profile_limit_caps_graph_requests_below_the_mailbox_limit(pool: PgPool) {
    let world = graph_world(pool).await;
    graph_profile(&world, 2, "").await;
    world
        .deliver("alice@contoso.test", 30, "2026-06-01T10:00:00Z")
        .await;
    world
        .fake_put("/_fake/graph/faults", json!({"latency_ms": 30}))
        .await;
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 30);
    let stats = graph_stats(&world).await;
    let peak = mailbox_stat(&stats, "alice@contoso.test", "peak_in_flight");
    assert!((1..=2).contains(&peak), "{stats}");
}

#[sqlx::test]
async fn a_mailbox_outside_the_apps_rbac_scope_is_refused_alone_with_what_to_grant(pool: PgPool) {
    let world = graph_world(pool).await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    graph_profile(
        &world,
        10,
        "\n[[mailbox]]\naddress = \"bob@contoso.test\"\nprofile = \"Contoso Online\"\napproval = \"approved\"\nact = \"none\"\n",
    )
    .await;
    world
        .fake_put(
            "/_fake/graph/apps/graph-app/scope",
            json!({"mailboxes": ["alice@contoso.test"]}),
        )
        .await;
    world
        .deliver("bob@contoso.test", 2, "2026-06-01T10:00:00Z")
        .await;
    world
        .deliver("alice@contoso.test", 2, "2026-06-01T10:00:00Z")
        .await;
    let bob = world.pass("bob@contoso.test").await;
    let text = outcome(&bob, exsync::domain::Workload::Incoming);
    assert!(text.contains("graph.access_denied"), "{text}");
    assert!(text.contains("New-ManagementRoleAssignment"), "{text}");
    let alerts = world.open_alerts("graph.access_denied").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (target, blocked): (Option<uuid::Uuid>, Option<String>) = sqlx::query_as(
        "SELECT a.mailbox_id, m.incoming_blocked_code FROM alerts a JOIN mailboxes m ON m.id = a.mailbox_id
          WHERE a.code = 'graph.access_denied'",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    assert!(target.is_some());
    assert_eq!(blocked.as_deref(), Some("graph.access_denied"));
    // The refused request is stored with its ids: what exsync sent and what Graph answered.
    let (client_request_id, request_id): (Option<uuid::Uuid>, Option<String>) = sqlx::query_as(
        "SELECT last_error_client_request_id, last_error_request_id FROM mailboxes
          WHERE email_address = 'bob@contoso.test'",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    let logged = world.fake_get("/_fake/graph/requests").await;
    let refused = logged
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 403)
        .expect("the refused request is in the fake's log");
    assert_eq!(
        client_request_id.map(|id| id.to_string()).as_deref(),
        refused["client_request_id"].as_str()
    );
    assert_eq!(request_id.as_deref(), refused["request_id"].as_str());
    // The profile's other mailbox goes on.
    let alice = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&alice, exsync::domain::Workload::Incoming),
        "Success"
    );
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 2);
}

#[sqlx::test]
async fn graph_errors_get_their_reactions(pool: PgPool) {
    let world = graph_world(pool).await;
    graph_profile(
        &world,
        10,
        "\n[[mailbox]]\naddress = \"ghost@contoso.test\"\nprofile = \"Contoso Online\"\napproval = \"approved\"\nact = \"none\"\n",
    )
    .await;
    world
        .deliver("alice@contoso.test", 1, "2026-06-01T10:00:00Z")
        .await;
    // An unknown user.
    let ghost = world.pass("ghost@contoso.test").await;
    let text = outcome(&ghost, exsync::domain::Workload::Incoming);
    assert!(text.contains("graph.mailbox_not_found"), "{text}");
    // A revoked token: one fresh token heals it without a failure.
    world
        .fake_put(
            "/_fake/graph/faults",
            json!({"fail_next": ["unauthorized"]}),
        )
        .await;
    let healed = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&healed, exsync::domain::Workload::Incoming),
        "Success"
    );
    // A mailbox not enabled for REST: mailbox-level, with its code.
    world
        .fake_put(
            "/_fake/graph/mailboxes/alice@contoso.test/settings",
            json!({"rest_enabled": false}),
        )
        .await;
    let off = world.pass("alice@contoso.test").await;
    let text = outcome(&off, exsync::domain::Workload::Incoming);
    assert!(
        text.contains("graph.mailbox_not_enabled_for_rest"),
        "{text}"
    );
    // A 503 with Retry-After is throttling: retried when allowed, not counted as a failure.
    world
        .fake_put(
            "/_fake/graph/mailboxes/alice@contoso.test/settings",
            json!({"rest_enabled": true}),
        )
        .await;
    world
        .fake_put(
            "/_fake/graph/faults",
            json!({"fail_next": ["service_unavailable"], "retry_after_secs": 30}),
        )
        .await;
    let busy = world.pass("alice@contoso.test").await;
    let text = outcome(&busy, exsync::domain::Workload::Incoming);
    assert!(text.contains("Throttled"), "{text}");
}

#[sqlx::test]
async fn a_refused_client_secret_blocks_the_profile_credentials_after_one_sign_in(pool: PgPool) {
    let world = graph_world(pool).await;
    let graph = world.fake.graph_url().unwrap();
    let text = graph_org_text()
        .replace("{graph}", &graph)
        .replace("{limit}", "10")
        .replace("Graph-Secret-1", "Wrong-Secret");
    world.apply(&text).await;
    let pass = world.pass("alice@contoso.test").await;
    let text = outcome(&pass, exsync::domain::Workload::Incoming);
    assert!(text.contains("Authentication"), "{text}");
    let blocked: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT credentials_blocked_at FROM email_server_profiles")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert!(blocked.is_some());
}

/// The Graph profile with appointments, contacts and tasks synchronised (every item).
const ACT: &str = "act_scope = \"all\"\n";

async fn act_counts(world: &World) -> (i64, i64, i64) {
    (
        world.count("SELECT count(*) FROM appointments").await,
        world.count("SELECT count(*) FROM contacts").await,
        world.count("SELECT count(*) FROM tasks").await,
    )
}

#[sqlx::test]
async fn appointments_contacts_and_tasks_sync_both_ways_through_graph(pool: PgPool) {
    let world = graph_world(pool).await;
    let graph = world.fake.graph_url().unwrap();
    let text = graph_org_text()
        .replace("{graph}", &graph)
        .replace("{limit}", "10")
        .replace("act = \"none\"", "act = \"server_side_sync\"")
        .replace(
            "max_concurrent_connections",
            &format!("{ACT}max_concurrent_connections"),
        );
    world.apply(&text).await;
    for folder in ["calendar", "contacts", "tasks"] {
        world.create_items("alice@contoso.test", folder, 2).await;
    }
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(outcome(&pass, exsync::domain::Workload::Act), "Success");
    assert_eq!(act_counts(&world).await, (2, 2, 2));
    // Nothing changed: nothing comes in twice.
    world.pass("alice@contoso.test").await;
    assert_eq!(act_counts(&world).await, (2, 2, 2));
    // The database's side: a new contact and task, an edited appointment.
    sqlx::query(
        "INSERT INTO contacts (mailbox_id, display_name, given_name, surname)
         SELECT id, 'Dana Scully', 'Dana', 'Scully' FROM mailboxes",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tasks (mailbox_id, subject) SELECT id, 'Call the client' FROM mailboxes",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE appointments SET subject = 'Moved by the business'
          WHERE id = (SELECT id FROM appointments ORDER BY start_at LIMIT 1)",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(outcome(&pass, exsync::domain::Workload::Act), "Success");
    let contacts = items(&world, "alice@contoso.test", "contacts").await;
    assert_eq!(contacts.len(), 3, "{contacts:?}");
    let tasks = items(&world, "alice@contoso.test", "tasks").await;
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    let calendar = items(&world, "alice@contoso.test", "calendar").await;
    assert!(
        calendar
            .iter()
            .any(|i| i["subject"] == "Moved by the business"),
        "{calendar:?}"
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM contacts WHERE ews_item_id IS NULL OR synced_version <> version")
            .await,
        0
    );
    // Our own writes come back through delta without importing anything twice.
    world.pass("alice@contoso.test").await;
    assert_eq!(act_counts(&world).await, (2, 3, 3));
    let stats = graph_stats(&world).await;
    assert!(operations(&stats, "event.delta") >= 1, "{stats}");
    assert!(operations(&stats, "contact.delta") >= 1, "{stats}");
    assert!(operations(&stats, "todoTask.delta") >= 1, "{stats}");
}

#[sqlx::test]
async fn a_contact_whose_create_reply_was_lost_is_in_the_mailbox_once_and_linked_to_its_row(
    pool: PgPool,
) {
    let world = graph_world(pool).await;
    let graph = world.fake.graph_url().unwrap();
    let text = graph_org_text()
        .replace("{graph}", &graph)
        .replace("{limit}", "10")
        .replace("act = \"none\"", "act = \"server_side_sync\"")
        .replace(
            "max_concurrent_connections",
            &format!("{ACT}max_concurrent_connections"),
        );
    world.apply(&text).await;
    world.pass("alice@contoso.test").await;
    let row: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO contacts (mailbox_id, display_name, given_name, surname)
         SELECT id, 'Fox Mulder', 'Fox', 'Mulder' FROM mailboxes RETURNING id",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    // Graph carries the POST out, and its answer never arrives.
    world
        .fake_put(
            "/_fake/graph/faults",
            json!({"fail_operation": [{"operation": "contact.create", "fault": "lose_reply"}]}),
        )
        .await;
    world.pass("alice@contoso.test").await;
    let mulders = |contacts: &[serde_json::Value]| {
        contacts
            .iter()
            .filter(|c| c.to_string().contains("Fox Mulder"))
            .count()
    };
    assert_eq!(
        mulders(&items(&world, "alice@contoso.test", "contacts").await),
        1,
        "the lost create happened"
    );
    for _ in 0..3 {
        world.pass("alice@contoso.test").await;
    }
    let contacts = items(&world, "alice@contoso.test", "contacts").await;
    assert_eq!(mulders(&contacts), 1, "{contacts:?}");
    let linked: (Option<String>, bool) =
        sqlx::query_as("SELECT ews_item_id, synced_version = version FROM contacts WHERE id = $1")
            .bind(row)
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert!(linked.0.is_some() && linked.1, "{linked:?}");
    assert_eq!(
        world
            .count("SELECT count(*) FROM contacts WHERE display_name = 'Fox Mulder'")
            .await,
        1
    );
    let stats = graph_stats(&world).await;
    assert_eq!(operations(&stats, "contact.create"), 1, "{stats}");
    assert!(operations(&stats, "contact.list") >= 2, "{stats}");
}

/// The same organisation on EWS (app-only OAuth, Exchange Online), before its move.
const EWS_ORG: &str = r#"
[[profile]]
name = "Contoso Online"
server_type = "exchange_online"
ews_url = "{ews}"
graph_url = "{graph}"
auth = "oauth_client_credentials"
oauth_client_id = "graph-app"
oauth_client_secret = "Graph-Secret-1"
oauth_token_url = "{token}"
act_scope = "all"

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso Online"
approval = "approved"
act = "server_side_sync"
"#;

#[sqlx::test]
async fn a_profile_moved_from_ews_mid_life_imports_nothing_twice_and_keeps_every_act_link(
    pool: PgPool,
) {
    let world = graph_world(pool).await;
    let graph = world.fake.graph_url().unwrap();
    world.apply(&EWS_ORG.replace("{graph}", &graph)).await;
    world
        .deliver("alice@contoso.test", 6, "2026-06-01T10:00:00Z")
        .await;
    for folder in ["calendar", "contacts", "tasks"] {
        world.create_items("alice@contoso.test", folder, 2).await;
    }
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&pass, exsync::domain::Workload::Incoming),
        "Success"
    );
    assert_eq!(outcome(&pass, exsync::domain::Workload::Act), "Success");
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 6);
    assert_eq!(act_counts(&world).await, (2, 2, 2));
    let links_before: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, ews_item_id FROM appointments ORDER BY id")
            .fetch_all(world.store.pool())
            .await
            .unwrap();

    let dry = exsync::operator::migrate::migrate_profile(
        &world.store,
        &world.cipher,
        &world.settings,
        "Contoso Online",
        true,
    )
    .await
    .unwrap();
    assert!(!dry.switched);
    assert_eq!(dry.translated, 10, "{dry}");
    let unchanged: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, ews_item_id FROM appointments ORDER BY id")
            .fetch_all(world.store.pool())
            .await
            .unwrap();
    assert_eq!(unchanged, links_before, "a dry run writes nothing");

    let report = exsync::operator::migrate::migrate_profile(
        &world.store,
        &world.cipher,
        &world.settings,
        "Contoso Online",
        false,
    )
    .await
    .unwrap();
    assert!(report.switched, "{report}");
    assert_eq!(report.translated, 10, "{report}");
    assert_eq!(report.matched, 2, "{report}");
    assert_eq!(report.failed, 0, "{report}");
    let (protocol, enabled): (String, bool) =
        sqlx::query_as("SELECT protocol, enabled FROM email_server_profiles")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert_eq!((protocol.as_str(), enabled), ("graph", true));
    let links_after: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, ews_item_id FROM appointments ORDER BY id")
            .fetch_all(world.store.pool())
            .await
            .unwrap();
    assert_eq!(links_after.len(), 2);
    for ((id_before, ews), (id_after, graph_id)) in links_before.iter().zip(&links_after) {
        assert_eq!(id_before, id_after);
        assert_ne!(ews, graph_id, "translated");
    }

    // Life goes on over Graph: nothing imported twice, new mail comes in, links hold.
    world.fake_post("/_fake/graph/stats/reset", json!({})).await;
    world
        .deliver("alice@contoso.test", 2, "2026-06-02T10:00:00Z")
        .await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(
        outcome(&pass, exsync::domain::Workload::Incoming),
        "Success"
    );
    assert_eq!(outcome(&pass, exsync::domain::Workload::Act), "Success");
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 8);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 8);
    assert_eq!(act_counts(&world).await, (2, 2, 2));
    assert!(operations(&graph_stats(&world).await, "message.delta") >= 1);
    sqlx::query(
        "UPDATE appointments SET subject = 'Edited after the move'
          WHERE id = (SELECT id FROM appointments ORDER BY start_at LIMIT 1)",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(outcome(&pass, exsync::domain::Workload::Act), "Success");
    let calendar = items(&world, "alice@contoso.test", "calendar").await;
    assert_eq!(
        calendar.len(),
        2,
        "an edit, not a new appointment: {calendar:?}"
    );
    assert!(calendar
        .iter()
        .any(|i| i["subject"] == "Edited after the move"));

    // Run again: nothing left to do, nothing changes.
    let again = exsync::operator::migrate::migrate_profile(
        &world.store,
        &world.cipher,
        &world.settings,
        "Contoso Online",
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        (again.translated, again.matched, again.failed),
        (10, 2, 0),
        "{again}"
    );
}

async fn apply_result(
    world: &World,
    text: &str,
) -> Result<exsync::operator::apply::ApplyReport, exsync::operator::apply::ApplyError> {
    exsync::operator::apply::apply_text(
        &world.store,
        &world.cipher,
        text,
        std::path::Path::new("org.toml"),
        std::path::Path::new("."),
        false,
    )
    .await
}

#[sqlx::test]
async fn apply_takes_protocol_and_graph_url_and_refuses_what_graph_cannot_serve(pool: PgPool) {
    let world = graph_world(pool).await;
    let graph = |extra: &str| {
        format!(
            "[[profile]]\nname = \"Online\"\nprotocol = \"graph\"\n{extra}\noauth_client_id = \"a\"\noauth_client_secret = \"s\"\noauth_tenant = \"contoso\"\n"
        )
    };
    let on_premises = apply_result(
        &world,
        &graph("server_type = \"exchange_server\"\nauth = \"oauth_client_credentials\""),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(on_premises.contains("protocol"), "{on_premises}");
    assert!(
        on_premises.contains("graph.exchange_online_only"),
        "{on_premises}"
    );
    let passwords = apply_result(
        &world,
        "[[profile]]\nname = \"Online\"\nprotocol = \"graph\"\nserver_type = \"exchange_online\"\nauth = \"profile_credentials\"\nusername = \"u\"\npassword = \"p\"\n",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        passwords.contains("graph.app_only_oauth_required"),
        "{passwords}"
    );
    // No ews_url needed; the token scope follows graph_url's host.
    let report = apply_result(
        &world,
        &graph("server_type = \"exchange_online\"\nauth = \"oauth_client_credentials\"\ngraph_url = \"https://graph.microsoft.us/v1.0/\""),
    )
    .await
    .unwrap();
    assert!(
        report.warnings.is_empty(),
        "no EWS retirement warning: {report}"
    );
    let row = exsync::store::profiles::list_rows(&world.store)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(row.protocol, "graph");
    assert_eq!(row.graph_url, "https://graph.microsoft.us/v1.0");
    let profile = row.into_profile(&world.cipher).unwrap();
    assert_eq!(
        profile.oauth.unwrap().scope,
        "https://graph.microsoft.us/.default"
    );
    // An EWS profile still needs its endpoint.
    let no_endpoint = apply_result(
        &world,
        "[[profile]]\nname = \"Onprem\"\nserver_type = \"exchange_server\"\nauth = \"profile_credentials\"\nusername = \"u\"\npassword = \"p\"\n",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(no_endpoint.contains("ews_url"), "{no_endpoint}");
}

#[sqlx::test]
async fn migrate_profile_refuses_a_profile_graph_cannot_serve_and_changes_nothing(pool: PgPool) {
    let world = graph_world(pool).await;
    world
        .apply(
            "[[profile]]\nname = \"Onprem\"\nserver_type = \"exchange_server\"\news_url = \"{ews}\"\nauth = \"profile_credentials\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .await;
    let error = exsync::operator::migrate::migrate_profile(
        &world.store,
        &world.cipher,
        &world.settings,
        "Onprem",
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            exsync::operator::migrate::MigrateError::NotEligible { .. }
        ),
        "{error}"
    );
    let (protocol, enabled): (String, bool) =
        sqlx::query_as("SELECT protocol, enabled FROM email_server_profiles")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert_eq!((protocol.as_str(), enabled), ("ews", true));
    let unknown = exsync::operator::migrate::migrate_profile(
        &world.store,
        &world.cipher,
        &world.settings,
        "Nobody",
        false,
    )
    .await
    .unwrap_err();
    assert!(matches!(
        unknown,
        exsync::operator::migrate::MigrateError::UnknownProfile(_)
    ));
}

#[sqlx::test]
async fn test_mailbox_tests_a_graph_mailbox_like_an_ews_one(pool: PgPool) {
    let world = graph_world(pool).await;
    graph_profile(&world, 10, "").await;
    let probe = exsync::operator::probe::test_mailbox(
        &world.engine,
        "alice@contoso.test",
        exsync::operator::probe::ProbeOptions { no_send: true },
    )
    .await
    .unwrap();
    assert!(probe.passed, "{probe}");
    assert!(
        operations(&graph_stats(&world).await, "message.delta") >= 1,
        "it asked Graph"
    );
    // Outside the app's scope: the test fails with the reason, nothing else changes.
    world
        .fake_put(
            "/_fake/graph/apps/graph-app/scope",
            json!({"mailboxes": []}),
        )
        .await;
    let refused = exsync::operator::probe::test_mailbox(
        &world.engine,
        "alice@contoso.test",
        exsync::operator::probe::ProbeOptions { no_send: true },
    )
    .await
    .unwrap();
    assert!(!refused.passed, "{refused}");
    assert!(
        refused.to_string().contains("New-ManagementRoleAssignment"),
        "{refused}"
    );
}

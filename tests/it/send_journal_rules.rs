//! Sending over EWS when Exchange's answer is lost (issue 10): the send is journalled before
//! CreateItem leaves, so a retry that finds no Sent Items copy never sends a second time;
//! a definite "not sent" answer withdraws the mark and the email goes out once.

use crate::support::world::{fast_settings, World};
use exsync::domain::Workload;
use exsync::sync::pass::Outcome;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const ORG: &str = r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Passw0rd!"
use_impersonation = true

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"
"#;

/// alice (impersonated by svc) sends to bob; an unconfirmed send is given up after one
/// minute (a tiny bound).
async fn world(pool: PgPool) -> World {
    let mut settings = fast_settings();
    settings.sync.unconfirmed_send_alert_minutes = 1;
    let world = World::with_settings(pool, settings).await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    world
        .service_account("svc", "Svc-Passw0rd!", &["alice@contoso.test"])
        .await;
    world.apply(ORG).await;
    world
}

async fn enqueue(world: &World, subject: &str) -> Uuid {
    exsync::store::outgoing::enqueue(
        &world.store,
        "alice@contoso.test",
        &["bob@contoso.test".to_owned()],
        &[],
        subject,
        "x",
    )
    .await
    .unwrap()
    .0
}

/// The row: status, last error, the Message-ID read back, whether a send is marked issued.
async fn row(world: &World, id: Uuid) -> (String, Option<String>, Option<String>, bool) {
    sqlx::query_as(
        "SELECT status, last_error, sent_message_id, send_issued_at IS NOT NULL
           FROM outgoing_emails WHERE id = $1",
    )
    .bind(id)
    .fetch_one(world.store.pool())
    .await
    .unwrap()
}

/// Make the row due now (its retry backoff skipped).
async fn due_now(world: &World, id: Uuid) {
    sqlx::query("UPDATE outgoing_emails SET next_attempt_at = now() WHERE id = $1")
        .bind(id)
        .execute(world.store.pool())
        .await
        .unwrap();
}

/// How many messages the fake's transport sent from alice (deliveries, whoever receives).
async fn sent_by_alice(world: &World) -> usize {
    world
        .fake_get("/_fake/sent?from=alice@contoso.test")
        .await
        .as_array()
        .unwrap()
        .len()
}

async fn sent_items(world: &World) -> Vec<serde_json::Value> {
    world
        .fake_get("/_fake/mailboxes/alice@contoso.test/items?folder=sentitems")
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn outgoing(summary: &exsync::sync::PassSummary) -> &Outcome {
    &summary
        .report(Workload::Outgoing)
        .expect("outgoing ran")
        .outcome
}

/// The first pass sends; Exchange does the work but its answer never arrives.
async fn a_send_whose_reply_is_lost(world: &World, sent_items_delay_ms: u64) -> Uuid {
    world
        .faults(json!({"fail_next": ["lose_reply"], "sent_items_delay_ms": sent_items_delay_ms}))
        .await;
    let id = enqueue(world, "Lost reply").await;
    world.pass("alice@contoso.test").await;
    let (status, _, _, issued) = row(world, id).await;
    assert_eq!(status, "pending", "an unknown outcome is retried later");
    assert!(issued, "the mark stays when the outcome is unknown");
    assert_eq!(sent_by_alice(world).await, 1, "Exchange sent it once");
    due_now(world, id).await;
    id
}

#[sqlx::test]
async fn a_lost_reply_while_the_sent_items_copy_lags_is_never_sent_twice_and_fails_unconfirmed_after_the_bound(
    pool: PgPool,
) {
    let world = world(pool).await;
    let id = a_send_whose_reply_is_lost(&world, 600_000).await;
    // The retry finds no copy in Sent Items, and the send was issued: nothing is sent.
    let retry = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&retry), &Outcome::Success, "{retry:?}");
    assert_eq!(sent_by_alice(&world).await, 1, "never sent twice");
    let (status, error, _, issued) = row(&world, id).await;
    assert_eq!(status, "pending", "still waiting for its copy");
    assert!(issued);
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .starts_with("waiting for the Sent Items copy"),
        "{error:?}"
    );
    // Past the bound (one minute here) it fails with the operator's alert, still unsent again.
    sqlx::query(
        "UPDATE outgoing_emails SET send_issued_at = now() - interval '2 minutes',
                next_attempt_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(world.store.pool())
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    let (status, error, _, _) = row(&world, id).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap_or_default().contains("unconfirmed"));
    assert_eq!(world.open_alerts("outgoing.unconfirmed").await.len(), 1);
    assert_eq!(sent_by_alice(&world).await, 1, "never sent twice");
    assert_eq!(
        world
            .fake_get("/_fake/mailboxes/bob@contoso.test/items?folder=inbox")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[sqlx::test]
async fn a_lost_reply_whose_sent_items_copy_appears_is_marked_sent_once_with_the_message_id_read_back(
    pool: PgPool,
) {
    let world = world(pool).await;
    let id = a_send_whose_reply_is_lost(&world, 1_000).await;
    // Before the copy is filed: waiting, nothing sent again.
    world.pass("alice@contoso.test").await;
    assert_eq!(row(&world, id).await.0, "pending");
    assert!(sent_items(&world).await.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    due_now(&world, id).await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&pass), &Outcome::Success, "{pass:?}");
    let copies = sent_items(&world).await;
    assert_eq!(copies.len(), 1, "{copies:?}");
    let (status, _, sent_message_id, _) = row(&world, id).await;
    assert_eq!(status, "sent");
    assert_eq!(
        sent_message_id.as_deref(),
        copies[0]["internet_message_id"].as_str()
    );
    assert_eq!(sent_by_alice(&world).await, 1, "sent exactly once");
    assert!(world.open_alerts("outgoing.unconfirmed").await.is_empty());
}

#[sqlx::test]
async fn a_definite_server_busy_answer_withdraws_the_mark_and_the_email_is_sent_exactly_once(
    pool: PgPool,
) {
    let world = world(pool).await;
    // Longer than the client waits inline: the pass gives up for now.
    world
        .faults(json!({"fail_next": ["server_busy"], "back_off_ms": 2_500}))
        .await;
    let id = enqueue(&world, "Busy").await;
    let busy = world.pass("alice@contoso.test").await;
    assert!(
        matches!(outgoing(&busy), Outcome::Failed { code, .. } if code == "ews.server_busy"),
        "{busy:?}"
    );
    let (status, _, _, issued) = row(&world, id).await;
    assert_eq!(status, "pending");
    assert!(
        !issued,
        "Exchange said it sent nothing: no mark blocks the retry"
    );
    assert_eq!(sent_by_alice(&world).await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(2_700)).await;
    let retry = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&retry), &Outcome::Success, "{retry:?}");
    let (status, _, sent_message_id, _) = row(&world, id).await;
    assert_eq!(status, "sent");
    assert!(sent_message_id.is_some());
    assert_eq!(sent_by_alice(&world).await, 1, "sent exactly once");
}

#[sqlx::test]
async fn an_error_response_message_to_a_send_withdraws_the_mark_and_the_retry_sends_once(
    pool: PgPool,
) {
    let world = world(pool).await;
    // ErrorSubmissionQuotaExceeded in the CreateItem response message: a mailbox-level
    // refusal, Exchange's own answer.
    world
        .fake_put(
            "/_fake/mailboxes/alice@contoso.test/settings",
            json!({"submission_quota": 0}),
        )
        .await;
    let id = enqueue(&world, "Over quota").await;
    world.pass("alice@contoso.test").await;
    let (status, error, _, issued) = row(&world, id).await;
    assert_eq!(status, "pending");
    assert!(error
        .unwrap_or_default()
        .contains("ErrorSubmissionQuotaExceeded"));
    assert!(!issued);
    world
        .fake_put("/_fake/mailboxes/alice@contoso.test/settings", json!({}))
        .await;
    let retry = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&retry), &Outcome::Success, "{retry:?}");
    assert_eq!(row(&world, id).await.0, "sent");
    assert_eq!(sent_by_alice(&world).await, 1);
}

#[sqlx::test]
async fn a_500_without_an_ews_body_to_a_send_is_an_unknown_outcome_and_the_email_is_not_sent_again(
    pool: PgPool,
) {
    let world = world(pool).await;
    // A plain HTML 500 (no EWS body): a proxy may have answered after Exchange sent it.
    world.faults(json!({"fail_next": ["http500"]})).await;
    let id = enqueue(&world, "Unknown").await;
    world.pass("alice@contoso.test").await;
    let (_, _, _, issued) = row(&world, id).await;
    assert!(issued, "the outcome is unknown: the mark stays");
    due_now(&world, id).await;
    world.pass("alice@contoso.test").await;
    let (status, error, _, _) = row(&world, id).await;
    assert_eq!(status, "pending");
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .starts_with("waiting for the Sent Items copy"),
        "{error:?}"
    );
    assert_eq!(
        sent_by_alice(&world).await,
        0,
        "no second request was risked"
    );
}

#[sqlx::test]
async fn the_last_attempt_lost_after_an_issued_send_says_the_email_may_have_been_sent(
    pool: PgPool,
) {
    let mut settings = fast_settings();
    settings.sync.outgoing_max_attempts = 1;
    let world = World::with_settings(pool, settings).await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    world
        .service_account("svc", "Svc-Passw0rd!", &["alice@contoso.test"])
        .await;
    world.apply(ORG).await;
    world
        .faults(json!({"fail_next": ["lose_reply"], "sent_items_delay_ms": 600_000}))
        .await;
    let id = enqueue(&world, "Maybe").await;
    world.pass("alice@contoso.test").await;
    let (status, error, _, _) = row(&world, id).await;
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    assert!(error.contains("MAY HAVE BEEN SENT"), "{error}");
    assert_eq!(world.open_alerts("outgoing.unconfirmed").await.len(), 1);
    assert!(world.open_alerts("item.failed").await.is_empty());
    assert_eq!(sent_by_alice(&world).await, 1);
}

//! Sending as Exchange really behaves (issue 7): exactly once without a client-set
//! Message-ID, delegation sends as the mailbox, and mailbox-level refusals (quota, submission
//! quota, Send As) keep the mail queued while message-level ones fail that one email.

use crate::support::world::World;
use exsync::domain::Workload;
use exsync::sync::pass::Outcome;
use exsync::sync::FailureKind;
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

[[mailbox]]
address = "bob@contoso.test"
profile = "Contoso"
approval = "approved"

[[profile]]
name = "Fabrikam"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
username = "delegate-svc"
password = "Deleg-Pw1!"
use_impersonation = false

[[mailbox]]
address = "carol@fabrikam.test"
profile = "Fabrikam"
approval = "approved"
"#;

/// alice and bob (impersonated by svc), carol (reached by delegate-svc with delegate rights;
/// `send_as` decides whether it may send as her).
async fn world(pool: PgPool, send_as: bool) -> World {
    let world = World::new(pool).await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    world
        .mailbox("carol@fabrikam.test", "carol", "Carol-Pw1!")
        .await;
    world
        .service_account(
            "svc",
            "Svc-Passw0rd!",
            &["alice@contoso.test", "bob@contoso.test"],
        )
        .await;
    world
        .fake_post(
            "/_fake/accounts",
            json!({"username": "delegate-svc", "password": "Deleg-Pw1!"}),
        )
        .await;
    let send_as: Vec<&str> = if send_as {
        vec!["carol@fabrikam.test"]
    } else {
        vec![]
    };
    world
        .fake_put(
            "/_fake/rights",
            json!({"account": "delegate-svc", "delegate": ["carol@fabrikam.test"], "send_as": send_as}),
        )
        .await;
    world.apply(ORG).await;
    world
}

async fn enqueue(world: &World, from: &str, to: &str, subject: &str, body: &str) -> Uuid {
    exsync::store::outgoing::enqueue(&world.store, from, &[to.to_owned()], &[], subject, body)
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

async fn row(world: &World, id: Uuid) -> (String, i32, Option<String>, Option<String>, String) {
    sqlx::query_as(
        "SELECT status, attempts, sent_message_id, last_error, internet_message_id
           FROM outgoing_emails WHERE id = $1",
    )
    .bind(id)
    .fetch_one(world.store.pool())
    .await
    .unwrap()
}

fn outgoing(summary: &exsync::sync::PassSummary) -> &Outcome {
    &summary
        .report(Workload::Outgoing)
        .expect("outgoing ran")
        .outcome
}

async fn create_items(world: &World) -> usize {
    world
        .fake_get("/_fake/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "CreateItem")
        .count()
}

#[sqlx::test]
async fn a_send_carries_its_idempotency_key_and_stores_the_message_id_exchange_assigned(
    pool: PgPool,
) {
    let world = world(pool, true).await;
    let id = enqueue(
        &world,
        "alice@contoso.test",
        "bob@contoso.test",
        "Offer",
        "Hi",
    )
    .await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&pass), &Outcome::Success, "{pass:?}");
    let sent = items(&world, "alice@contoso.test", "sentitems").await;
    assert_eq!(sent.len(), 1);
    // One fixed custom property carries the row's id.
    assert_eq!(
        sent[0]["extended_properties"]["ExsyncOutgoingId"],
        id.to_string()
    );
    let assigned = sent[0]["internet_message_id"].as_str().unwrap().to_owned();
    let (status, _, sent_message_id, _, own_reference) = row(&world, id).await;
    assert_eq!(status, "sent");
    assert_eq!(sent_message_id.as_deref(), Some(assigned.as_str()));
    assert_ne!(
        own_reference, assigned,
        "exsync's reference never went on the wire"
    );
    // The message is stored once under the assigned id, and bob's copy is recognised as it.
    world.pass("bob@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 1);
    assert_eq!(
        world
            .count(&format!(
                "SELECT count(*) FROM emails WHERE internet_message_id = '{assigned}'"
            ))
            .await,
        1
    );
}

#[sqlx::test]
async fn a_send_exchange_accepted_before_a_crash_is_found_by_its_key_and_never_sent_twice(
    pool: PgPool,
) {
    let world = world(pool, true).await;
    let id = enqueue(
        &world,
        "alice@contoso.test",
        "bob@contoso.test",
        "Once",
        "x",
    )
    .await;
    world.pass("alice@contoso.test").await;
    // As if the process died after Exchange accepted the send but before anything committed.
    sqlx::query(
        "UPDATE outgoing_emails SET status = 'sending', sent_at = NULL, sent_message_id = NULL
          WHERE id = $1",
    )
    .bind(id)
    .execute(world.store.pool())
    .await
    .unwrap();
    sqlx::query("DELETE FROM emails")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.fake_post("/_fake/stats/reset", json!({})).await;
    let retry = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&retry), &Outcome::Success, "{retry:?}");
    assert_eq!(create_items(&world).await, 0, "no second CreateItem");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 1);
    let assigned = items(&world, "alice@contoso.test", "sentitems").await[0]["internet_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, attempts, sent_message_id, _, _) = row(&world, id).await;
    assert_eq!((status.as_str(), attempts), ("sent", 2));
    assert_eq!(sent_message_id, Some(assigned));
}

#[sqlx::test]
async fn delegation_sends_as_the_mailbox_with_from_set_to_it(pool: PgPool) {
    let world = world(pool, true).await;
    enqueue(
        &world,
        "carol@fabrikam.test",
        "bob@contoso.test",
        "From Carol",
        "x",
    )
    .await;
    let pass = world.pass("carol@fabrikam.test").await;
    assert_eq!(outgoing(&pass), &Outcome::Success, "{pass:?}");
    let delivered = items(&world, "bob@contoso.test", "inbox").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["from"], "carol@fabrikam.test");
    assert_eq!(delivered[0]["sender"], "carol@fabrikam.test");
    assert_eq!(
        items(&world, "carol@fabrikam.test", "sentitems")
            .await
            .len(),
        1
    );
}

#[sqlx::test]
async fn a_missing_send_as_right_is_a_mailbox_error_with_an_alert_and_the_mail_stays_queued(
    pool: PgPool,
) {
    let world = world(pool, false).await;
    let id = enqueue(
        &world,
        "carol@fabrikam.test",
        "bob@contoso.test",
        "Held",
        "x",
    )
    .await;
    let pass = world.pass("carol@fabrikam.test").await;
    match outgoing(&pass) {
        Outcome::Failed {
            code,
            kind,
            message,
        } => {
            assert_eq!(code, "ews.send_as_denied");
            assert_eq!(*kind, FailureKind::MailboxRefused);
            assert!(message.contains("ErrorSendAsDenied"), "{message}");
        }
        other => panic!("expected a mailbox-level failure, got {other:?}"),
    }
    let (status, attempts, _, last_error, _) = row(&world, id).await;
    assert_eq!((status.as_str(), attempts), ("pending", 0), "still queued");
    assert!(last_error.unwrap().contains("ErrorSendAsDenied"));
    assert_eq!(world.open_alerts("ews.send_as_denied").await.len(), 1);
    assert!(items(&world, "bob@contoso.test", "inbox").await.is_empty());
    // Retried later with backoff (a failure counted), not paused.
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM mailboxes WHERE email_address = 'carol@fabrikam.test'
                   AND outgoing_failures = 1 AND outgoing_blocked_code IS NULL
                   AND outgoing_next_due_at > now() - interval '1 minute'"
            )
            .await,
        1
    );
    // The right granted, the mail goes out and the alert closes.
    world
        .fake_put(
            "/_fake/rights",
            json!({"account": "delegate-svc", "delegate": ["carol@fabrikam.test"], "send_as": ["carol@fabrikam.test"]}),
        )
        .await;
    let pass = world.pass("carol@fabrikam.test").await;
    assert_eq!(outgoing(&pass), &Outcome::Success, "{pass:?}");
    assert_eq!(row(&world, id).await.0, "sent");
    assert!(world.open_alerts("ews.send_as_denied").await.is_empty());
}

#[sqlx::test]
async fn quota_and_submission_quota_keep_the_mail_queued_and_retry_with_backoff_and_an_alert(
    pool: PgPool,
) {
    let world = world(pool, true).await;
    let first = enqueue(&world, "alice@contoso.test", "bob@contoso.test", "One", "x").await;
    let settings = "/_fake/mailboxes/alice@contoso.test/settings";
    world
        .fake_put(settings, json!({"storage_quota_exceeded": true}))
        .await;
    let pass = world.pass("alice@contoso.test").await;
    assert!(
        matches!(outgoing(&pass), Outcome::Failed { code, kind: FailureKind::MailboxRefused, .. } if code == "ews.quota_exceeded"),
        "{pass:?}"
    );
    assert_eq!(row(&world, first).await.0, "pending");
    assert_eq!(world.open_alerts("ews.quota_exceeded").await.len(), 1);
    // Over the submission quota after one more message: the second waits.
    world
        .fake_put(settings, json!({"submission_quota": 1}))
        .await;
    let second = enqueue(&world, "alice@contoso.test", "bob@contoso.test", "Two", "x").await;
    let pass = world.pass("alice@contoso.test").await;
    assert!(
        matches!(outgoing(&pass), Outcome::Failed { code, .. } if code == "ews.submission_quota_exceeded"),
        "{pass:?}"
    );
    assert_eq!(row(&world, first).await.0, "sent");
    assert_eq!(row(&world, second).await.0, "pending");
    assert_eq!(
        world
            .open_alerts("ews.submission_quota_exceeded")
            .await
            .len(),
        1
    );
    // The quota renewed: it goes out, nothing was failed, nothing sent twice.
    world.fake_put(settings, json!({})).await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&pass), &Outcome::Success, "{pass:?}");
    assert_eq!(row(&world, second).await.0, "sent");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 2);
    assert_eq!(
        world
            .count("SELECT count(*) FROM outgoing_emails WHERE status = 'failed'")
            .await,
        0
    );
}

#[sqlx::test]
async fn a_message_too_large_fails_alone_and_the_others_are_sent(pool: PgPool) {
    let world = world(pool, true).await;
    world
        .fake_put(
            "/_fake/mailboxes/alice@contoso.test/settings",
            json!({"max_message_bytes": 500}),
        )
        .await;
    let big = enqueue(
        &world,
        "alice@contoso.test",
        "bob@contoso.test",
        "Big",
        &"x".repeat(2000),
    )
    .await;
    let small = enqueue(
        &world,
        "alice@contoso.test",
        "bob@contoso.test",
        "Small",
        "x",
    )
    .await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(outgoing(&pass), &Outcome::Success, "{pass:?}");
    let (status, _, _, error, _) = row(&world, big).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("ErrorMessageSizeExceeded"));
    assert_eq!(row(&world, small).await.0, "sent");
    assert_eq!(items(&world, "bob@contoso.test", "inbox").await.len(), 1);
}

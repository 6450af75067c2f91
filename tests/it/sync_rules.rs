//! The sync engine's rules, each checked end to end: real Postgres, the fake Exchange over
//! HTTP, the engine as `exsync run` wires it.

use crate::support::world::World;
use exsync::domain::Workload;
use exsync::sync::pass::Outcome;
use exsync::sync::FailureKind;
use serde_json::json;
use sqlx::PgPool;

const ORG: &str = r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Passw0rd!"
use_impersonation = true
max_concurrent_connections = 4
# These rules predate scopes: every item syncs both ways.
act_scope = "all"

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"
act = "server_side_sync"

[[mailbox]]
address = "bob@contoso.test"
profile = "Contoso"
approval = "approved"
"#;

async fn contoso(pool: PgPool) -> World {
    let world = World::new(pool).await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world.mailbox("bob@contoso.test", "bob", "Bob-Pw1!").await;
    world
        .service_account(
            "svc",
            "Svc-Passw0rd!",
            &["alice@contoso.test", "bob@contoso.test"],
        )
        .await;
    world.apply(ORG).await;
    world
}

fn succeeded(summary: &exsync::sync::PassSummary, workload: Workload) -> bool {
    matches!(
        summary.report(workload).map(|r| &r.outcome),
        Some(Outcome::Success)
    )
}

#[sqlx::test]
async fn incoming_pages_through_every_change_and_imports_each_message_once(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .deliver("alice@contoso.test", 45, "2026-06-01T10:00:00Z")
        .await;
    let first = world.pass("alice@contoso.test").await;
    assert!(succeeded(&first, Workload::Incoming), "{first:?}");
    let report = first.report(Workload::Incoming).unwrap();
    assert_eq!(report.summary.processed, 45);
    // 45 changes with MaxChangesReturned = 10 take five SyncFolderItems calls.
    let calls = world.stats().await["operations"]["SyncFolderItems"]
        .as_u64()
        .unwrap();
    assert!(calls >= 5, "SyncFolderItems calls: {calls}");
    let again = world.pass("alice@contoso.test").await;
    assert_eq!(
        again.report(Workload::Incoming).unwrap().summary.processed,
        0
    );
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 45);
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 45);
    world
        .deliver("alice@contoso.test", 3, "2026-06-02T10:00:00Z")
        .await;
    let incremental = world.pass("alice@contoso.test").await;
    assert_eq!(
        incremental
            .report(Workload::Incoming)
            .unwrap()
            .summary
            .processed,
        3
    );
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 48);
}

#[sqlx::test]
async fn only_mail_received_after_the_later_of_the_profile_and_mailbox_dates_is_imported(
    pool: PgPool,
) {
    let world = contoso(pool).await;
    world
        .apply(&ORG.replace(
            "use_impersonation = true",
            "use_impersonation = true\nprocess_emails_from = 2026-03-01T00:00:00Z",
        ))
        .await;
    world
        .apply(
            r#"
[[mailbox]]
address = "bob@contoso.test"
profile = "Contoso"
approval = "approved"
process_email_received_after = 2026-05-01T00:00:00Z
"#,
        )
        .await;
    for address in ["alice@contoso.test", "bob@contoso.test"] {
        world.deliver(address, 2, "2026-02-01T00:00:00Z").await; // before both dates
        world.deliver(address, 3, "2026-04-01T00:00:00Z").await; // between them
        world.deliver(address, 4, "2026-06-01T00:00:00Z").await; // after both
    }
    world.pass("alice@contoso.test").await;
    world.pass("bob@contoso.test").await;
    let imported = |address: &'static str| {
        let world = &world;
        async move {
            world
                .count(&format!(
                    "SELECT count(*) FROM email_copies c JOIN mailboxes m ON m.id = c.mailbox_id
                      WHERE m.email_address = '{address}'"
                ))
                .await
        }
    };
    // Alice: the profile's date applies (her own is unset).
    assert_eq!(imported("alice@contoso.test").await, 7);
    // Bob: his later date wins over the profile's.
    assert_eq!(imported("bob@contoso.test").await, 4);
    assert_eq!(
        world
            .count("SELECT count(*) FROM skipped_items WHERE reason = 'before_process_from'")
            .await,
        2 + 5
    );
    // The watermark is the newest mail imported.
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM mailboxes WHERE incoming_watermark = '2026-06-01T00:00:00Z'"
            )
            .await,
        2
    );
}

#[sqlx::test]
async fn an_invalid_sync_state_starts_the_folder_over_without_duplicates(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .deliver("alice@contoso.test", 12, "2026-06-01T10:00:00Z")
        .await;
    world.pass("alice@contoso.test").await;
    world
        .fake_post(
            "/_fake/mailboxes/alice@contoso.test/reset-sync-states",
            json!({}),
        )
        .await;
    world
        .deliver("alice@contoso.test", 2, "2026-06-03T10:00:00Z")
        .await;
    let after = world.pass("alice@contoso.test").await;
    assert!(succeeded(&after, Workload::Incoming), "{after:?}");
    let report = after.report(Workload::Incoming).unwrap();
    assert_eq!(report.summary.processed, 2);
    assert_eq!(report.summary.already_present, 12);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 14);
}

#[sqlx::test]
async fn queued_mail_is_sent_as_the_mailbox_once_with_a_copy_in_sent_items(pool: PgPool) {
    let world = contoso(pool).await;
    exsync::store::outgoing::enqueue(
        &world.store,
        "alice@contoso.test",
        &["bob@contoso.test".to_owned()],
        &[],
        "Quarterly figures",
        "Attached.",
    )
    .await
    .unwrap();
    let pass = world.pass("alice@contoso.test").await;
    assert!(succeeded(&pass, Workload::Outgoing), "{pass:?}");
    assert_eq!(
        world
            .count("SELECT count(*) FROM outgoing_emails WHERE status = 'sent'")
            .await,
        1
    );
    assert_eq!(
        world.folder_count("alice@contoso.test", "sentitems").await,
        1
    );
    assert_eq!(world.folder_count("bob@contoso.test", "inbox").await, 1);
    // Bob's copy is recognised as the same message: stored once, two references.
    world.pass("bob@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 1);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 1);
}

#[sqlx::test]
async fn a_send_interrupted_after_exchange_accepted_it_is_not_sent_again(pool: PgPool) {
    let world = contoso(pool).await;
    exsync::store::outgoing::enqueue(
        &world.store,
        "alice@contoso.test",
        &["bob@contoso.test".to_owned()],
        &[],
        "Once only",
        "body",
    )
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    // As if the process died after Exchange accepted but before the commit.
    sqlx::query("UPDATE outgoing_emails SET status = 'sending', sent_at = NULL")
        .execute(world.store.pool())
        .await
        .unwrap();
    let retry = world.pass("alice@contoso.test").await;
    assert!(succeeded(&retry, Workload::Outgoing), "{retry:?}");
    assert_eq!(
        world
            .count("SELECT count(*) FROM outgoing_emails WHERE status = 'sent' AND attempts = 2")
            .await,
        1
    );
    assert_eq!(world.folder_count("bob@contoso.test", "inbox").await, 1);
    assert_eq!(
        world.folder_count("alice@contoso.test", "sentitems").await,
        1
    );
}

#[sqlx::test]
async fn delegation_gets_an_act_warning_while_its_email_still_syncs(pool: PgPool) {
    let world = World::new(pool).await;
    world
        .mailbox("carol@fabrikam.test", "carol", "Carol-Pw1!")
        .await;
    world
        .fake_post(
            "/_fake/accounts",
            json!({"username": "delegate-svc", "password": "Deleg-Pw1!"}),
        )
        .await;
    world
        .rights("delegate-svc", &[], &["carol@fabrikam.test"])
        .await;
    world
        .apply(
            r#"
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
act = "server_side_sync"
"#,
        )
        .await;
    world
        .deliver("carol@fabrikam.test", 5, "2026-06-01T00:00:00Z")
        .await;
    let pass = world.pass("carol@fabrikam.test").await;
    assert!(succeeded(&pass, Workload::Incoming), "{pass:?}");
    assert_eq!(
        pass.report(Workload::Incoming).unwrap().summary.processed,
        5
    );
    assert!(matches!(
        &pass.report(Workload::Act).unwrap().outcome,
        Outcome::Refused { code, .. } if code == "act.delegation_unsupported"
    ));
    assert_eq!(
        world.open_alerts("act.delegation_unsupported").await,
        vec![("warning".to_owned(), 1)]
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE act_status = 'failure' AND incoming_status = 'success'")
            .await,
        1
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE last_successful_sync IS NOT NULL")
            .await,
        1,
        "the refused ACT does not hide that the mailbox's email synced"
    );
    // A second pass does not flood: the one alert counts the repeat.
    sqlx::query("UPDATE mailboxes SET act_next_due_at = now()")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("carol@fabrikam.test").await;
    assert_eq!(
        world.open_alerts("act.delegation_unsupported").await,
        vec![("warning".to_owned(), 2)]
    );
}

#[sqlx::test]
async fn activities_flow_both_ways_with_change_keys(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .create_items("alice@contoso.test", "contacts", 3)
        .await;
    world
        .create_items("alice@contoso.test", "calendar", 2)
        .await;
    let pulled = world.pass("alice@contoso.test").await;
    assert!(succeeded(&pulled, Workload::Act), "{pulled:?}");
    assert_eq!(world.count("SELECT count(*) FROM contacts").await, 3);
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 2);

    // A task written by the application appears in Exchange.
    sqlx::query(
        "INSERT INTO tasks (mailbox_id, subject, body, status, percent_complete)
         SELECT id, 'Call the customer', 'about the renewal', 'not_started', 0
           FROM mailboxes WHERE email_address = 'alice@contoso.test'",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    assert_eq!(world.folder_count("alice@contoso.test", "tasks").await, 1);
    assert_eq!(
        world
            .count("SELECT count(*) FROM tasks WHERE ews_item_id IS NOT NULL AND version = synced_version")
            .await,
        1
    );
    // Its own write is not pulled back as a change (echo suppression): still one row.
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM tasks").await, 1);

    // An update in the database reaches Exchange; a deletion deletes it there.
    sqlx::query("UPDATE tasks SET subject = 'Call the customer today', percent_complete = 50")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("alice@contoso.test").await;
    let items = world
        .fake_get("/_fake/mailboxes/alice@contoso.test/items?folder=tasks")
        .await;
    assert!(
        items.to_string().contains("Call the customer today"),
        "{items}"
    );
    sqlx::query("DELETE FROM tasks")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("alice@contoso.test").await;
    assert_eq!(world.folder_count("alice@contoso.test", "tasks").await, 0);
    assert_eq!(world.count("SELECT count(*) FROM act_deletions").await, 0);
}

#[sqlx::test]
async fn an_expired_password_costs_one_request_raises_an_alert_and_heals_after_apply(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .fake_post("/_fake/accounts/svc/expire", json!({}))
        .await;
    let first = world.pass("alice@contoso.test").await;
    assert!(matches!(
        &first.report(Workload::Incoming).unwrap().outcome,
        Outcome::Failed {
            kind: FailureKind::Authentication,
            ..
        }
    ));
    // Bob's pass uses the same (refused) credentials: no new request reaches Exchange.
    let second = world.pass("bob@contoso.test").await;
    assert!(matches!(
        &second.report(Workload::Incoming).unwrap().outcome,
        Outcome::Failed {
            kind: FailureKind::Authentication,
            ..
        }
    ));
    assert_eq!(
        world.stats().await["accounts"]["svc"]["failed_logins"],
        json!(1)
    );
    let open = world.open_alerts("ews.unauthorized").await;
    assert_eq!(
        open.len(),
        1,
        "one alert on the profile, repeats counted: {open:?}"
    );
    assert_eq!(open[0].0, "error");
    assert_eq!(
        world
            .count("SELECT count(*) FROM email_server_profiles WHERE credentials_blocked_at IS NOT NULL")
            .await,
        1
    );
    // The operator sets the new password in Exchange and in exsync: sync resumes by itself.
    world
        .fake_put(
            "/_fake/accounts/svc/password",
            json!({"password": "New-Passw0rd!"}),
        )
        .await;
    world
        .apply(&ORG.replace("Svc-Passw0rd!", "New-Passw0rd!"))
        .await;
    world
        .deliver("alice@contoso.test", 2, "2026-06-01T00:00:00Z")
        .await;
    let healed = world.pass("alice@contoso.test").await;
    assert!(succeeded(&healed, Workload::Incoming), "{healed:?}");
    assert!(world.open_alerts("ews.unauthorized").await.is_empty());
    assert_eq!(
        world
            .count("SELECT count(*) FROM alerts WHERE level = 'information' AND code = 'credentials.accepted'")
            .await,
        1
    );
}

#[sqlx::test]
async fn throttling_is_waited_out_and_no_request_arrives_early(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .deliver("alice@contoso.test", 20, "2026-06-01T00:00:00Z")
        .await;
    world
        .faults(json!({"throttle_rate": 0.5, "back_off_ms": 300}))
        .await;
    let mut done = false;
    for _ in 0..40 {
        let pass = world.pass("alice@contoso.test").await;
        match &pass.report(Workload::Incoming).unwrap().outcome {
            Outcome::Success => {
                done = true;
                break;
            }
            Outcome::Failed { kind, .. } => assert_eq!(*kind, FailureKind::Throttled),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(done, "never got through the throttling");
    let stats = world.stats().await;
    assert!(stats["accounts"]["svc"]["throttled"].as_u64().unwrap() > 0);
    assert_eq!(stats["accounts"]["svc"]["early_requests"], json!(0));
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 20);
}

#[sqlx::test]
async fn revoked_impersonation_disables_the_workload_and_restored_rights_heal_it(pool: PgPool) {
    let world = contoso(pool).await;
    world.rights("svc", &["alice@contoso.test"], &[]).await;
    let denied = world.pass("bob@contoso.test").await;
    assert!(matches!(
        &denied.report(Workload::Incoming).unwrap().outcome,
        Outcome::Failed { kind: FailureKind::Permanent, code, .. } if code == "ews.impersonation_denied"
    ));
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE incoming_blocked_code = 'ews.impersonation_denied'")
            .await,
        1
    );
    assert_eq!(world.open_alerts("ews.impersonation_denied").await.len(), 1);
    // Alice is unaffected.
    let alice = world.pass("alice@contoso.test").await;
    assert!(succeeded(&alice, Workload::Incoming));
    // Rights restored in Exchange: the slow retry finds it working, with no manual step.
    world
        .rights("svc", &["alice@contoso.test", "bob@contoso.test"], &[])
        .await;
    let healed = world.pass("bob@contoso.test").await;
    assert!(succeeded(&healed, Workload::Incoming), "{healed:?}");
    assert!(world
        .open_alerts("ews.impersonation_denied")
        .await
        .is_empty());
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE incoming_blocked_code IS NOT NULL")
            .await,
        0
    );
}

#[sqlx::test]
async fn a_mailbox_missing_in_exchange_gets_a_permanent_error_and_others_go_on(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .apply(
            r#"
[[mailbox]]
address = "ghost@contoso.test"
profile = "Contoso"
approval = "approved"
"#,
        )
        .await;
    let ghost = world.pass("ghost@contoso.test").await;
    assert!(
        matches!(
            &ghost.report(Workload::Incoming).unwrap().outcome,
            Outcome::Failed {
                kind: FailureKind::Permanent,
                ..
            }
        ),
        "{ghost:?}"
    );
    world
        .deliver("alice@contoso.test", 1, "2026-06-01T00:00:00Z")
        .await;
    let alice = world.pass("alice@contoso.test").await;
    assert!(succeeded(&alice, Workload::Incoming));
}

#[sqlx::test]
async fn malformed_responses_are_transient_and_lose_nothing(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .deliver("alice@contoso.test", 15, "2026-06-01T00:00:00Z")
        .await;
    world.faults(json!({"malformed_rate": 1.0})).await;
    let broken = world.pass("alice@contoso.test").await;
    assert!(
        matches!(
            &broken.report(Workload::Incoming).unwrap().outcome,
            Outcome::Failed { kind: FailureKind::Transient, code, .. } if code == "ews.malformed_response"
        ),
        "{broken:?}"
    );
    world.faults(json!({"malformed_rate": 0.0})).await;
    let ok = world.pass("alice@contoso.test").await;
    assert!(succeeded(&ok, Workload::Incoming), "{ok:?}");
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 15);
}

#[sqlx::test]
async fn an_outage_disables_after_the_failure_limit_and_heals_without_manual_action(pool: PgPool) {
    let world = contoso(pool).await;
    world.faults(json!({"http_500_rate": 1.0})).await;
    let limit = world.settings.scheduler.max_consecutive_failures as usize;
    for _ in 0..limit {
        world.pass("bob@contoso.test").await;
    }
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE email_address = 'bob@contoso.test' AND incoming_blocked_code = 'workload.too_many_failures'")
            .await,
        1
    );
    assert_eq!(
        world.open_alerts("workload.too_many_failures").await.len(),
        1
    );
    // Exchange comes back; the slow retry (not an operator) resumes the mailbox.
    world.faults(json!({"http_500_rate": 0.0})).await;
    world
        .deliver("bob@contoso.test", 4, "2026-06-01T00:00:00Z")
        .await;
    let healed = world.pass("bob@contoso.test").await;
    assert!(succeeded(&healed, Workload::Incoming), "{healed:?}");
    assert!(world
        .open_alerts("workload.too_many_failures")
        .await
        .is_empty());
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE incoming_failures = 0 AND incoming_blocked_code IS NULL AND email_address = 'bob@contoso.test'")
            .await,
        1
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM alerts WHERE code = 'workload.resumed'")
            .await,
        1
    );
}

#[sqlx::test]
async fn a_conflict_is_won_by_the_side_changed_last(pool: PgPool) {
    let world = contoso(pool).await;
    world.create_items("alice@contoso.test", "tasks", 1).await;
    world.pass("alice@contoso.test").await;
    let items = world
        .fake_get("/_fake/mailboxes/alice@contoso.test/items?folder=tasks")
        .await;
    let id = items[0]["id"].as_str().unwrap().to_owned();

    // Database first, Exchange later: Exchange's version wins and overwrites the row.
    sqlx::query("UPDATE tasks SET subject = 'edited in the database'")
        .execute(world.store.pool())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    world
        .fake(
            reqwest::Method::PATCH,
            &format!("/_fake/mailboxes/alice@contoso.test/items/{id}"),
            Some(json!({"subject": "edited in Outlook"})),
        )
        .await;
    world.pass("alice@contoso.test").await;
    let subject: String = sqlx::query_scalar("SELECT subject FROM tasks")
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    assert_eq!(subject, "edited in Outlook");
    assert_eq!(
        world
            .count("SELECT count(*) FROM tasks WHERE version = synced_version")
            .await,
        1
    );

    // Exchange first, database later: the database's version is written over the newer key.
    world
        .fake(
            reqwest::Method::PATCH,
            &format!("/_fake/mailboxes/alice@contoso.test/items/{id}"),
            Some(json!({"subject": "edited in Outlook again"})),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sqlx::query("UPDATE tasks SET subject = 'edited in the database last'")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("alice@contoso.test").await;
    let items = world
        .fake_get("/_fake/mailboxes/alice@contoso.test/items?folder=tasks")
        .await;
    assert_eq!(
        items[0]["subject"],
        json!("edited in the database last"),
        "{items}"
    );
    let subject: String = sqlx::query_scalar("SELECT subject FROM tasks")
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    assert_eq!(subject, "edited in the database last");
}

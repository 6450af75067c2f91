//! exsync against the answers Exchange really gives (issue 7): `Warning` is not success, an
//! item gone before GetItem, Process-From filtering before any download, a 401 for one
//! mailbox, no lock-out storm, test-mailbox within the connection limit, one bad ACT row.

use crate::support::world::{fast_settings, World};
use exsync::domain::Workload;
use exsync::operator::probe::{test_profile, ProbeOptions, Reason, Verdict};
use exsync::sync::pass::Outcome;
use exsync::sync::FailureKind;
use exsync_ews::ops::CreateItemRequest;
use exsync_ews::soap::{ExchangeVersion, RequestHeader};
use exsync_ews::types::{
    BaseFolderId, CalendarItem, DistinguishedFolderName, EmailAddress, Item, ItemBase,
    SendMeetingInvitations,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ORG: &str = r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Passw0rd!"
use_impersonation = true
max_concurrent_connections = 5
"#;

/// `count` mailboxes m0@… of the Contoso profile, impersonated by svc; `extra` is appended
/// to every mailbox entry.
async fn org(world: &World, count: usize, extra: &str) -> Vec<String> {
    let addresses: Vec<String> = (0..count).map(|i| format!("m{i}@contoso.test")).collect();
    let mut text = ORG.to_owned();
    for address in &addresses {
        let user = address.split('@').next().unwrap();
        world.mailbox(address, user, &format!("{user}-Pw1!")).await;
        text.push_str(&format!(
            "\n[[mailbox]]\naddress = \"{address}\"\nprofile = \"Contoso\"\napproval = \"approved\"\n{extra}\n"
        ));
    }
    world.service_account("svc", "Svc-Passw0rd!", &["*"]).await;
    world.apply(&text).await;
    addresses
}

fn incoming(summary: &exsync::sync::PassSummary) -> &exsync::sync::pass::WorkloadReport {
    summary.report(Workload::Incoming).expect("incoming ran")
}

async fn operations(world: &World, operation: &str) -> u64 {
    world.stats().await["operations"][operation]
        .as_u64()
        .unwrap_or(0)
}

async fn failed_logins(world: &World, account: &str) -> u64 {
    world.stats().await["accounts"][account]["failed_logins"]
        .as_u64()
        .unwrap_or(0)
}

#[sqlx::test]
async fn items_of_a_batch_exchange_stopped_are_fetched_again_not_failed(pool: PgPool) {
    let world = World::new(pool).await;
    let m = org(&world, 1, "").await.remove(0);
    world.deliver(&m, 10, "2026-06-01T00:00:00Z").await;
    // The first GetItem of 7 processes 3 items; 4 come back Warning/ErrorBatchProcessingStopped.
    world
        .faults(json!({"fail_next": [{"batch_stopped_after": 3}]}))
        .await;
    let pass = world.pass(&m).await;
    let report = incoming(&pass);
    assert_eq!(report.outcome, Outcome::Success, "{pass:?}");
    assert_eq!(report.summary.processed, 10);
    assert_eq!(report.summary.failed, 0);
    assert_eq!(world.count("SELECT count(*) FROM item_failures").await, 0);
    assert!(world.open_alerts("item.failed").await.is_empty());
    let stopped = world.fake_get("/_fake/requests").await;
    assert!(stopped
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["operation"] == "GetItem"));
}

#[sqlx::test]
async fn an_item_deleted_after_the_sync_reported_it_is_skipped_without_retries_or_alerts(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    let m = org(&world, 1, "").await.remove(0);
    let ids = world.deliver(&m, 3, "2026-06-01T00:00:00Z").await;
    let gone = ids["ids"][1].as_str().unwrap();
    world
        .fake_post(
            &format!("/_fake/mailboxes/{m}/items/{gone}/delete-after-sync"),
            json!({}),
        )
        .await;
    let pass = world.pass(&m).await;
    let report = incoming(&pass);
    assert_eq!(report.outcome, Outcome::Success, "{pass:?}");
    assert_eq!(report.summary.processed, 2);
    assert_eq!(report.summary.failed, 0);
    assert_eq!(world.count("SELECT count(*) FROM item_failures").await, 0);
    assert!(world.open_alerts("item.failed").await.is_empty());
    // The next pass sees the delete and has nothing to retry.
    world.fake_post("/_fake/stats/reset", json!({})).await;
    let next = world.pass(&m).await;
    assert_eq!(incoming(&next).summary.failed, 0);
    assert_eq!(operations(&world, "GetItem").await, 0);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 2);
}

/// A pass with big pages and batches, as a real deployment configures it.
fn big_pages() -> exsync::config::Settings {
    let mut s = fast_settings();
    s.sync.max_changes_per_request = 512;
    s.sync.get_item_batch_size = 50;
    s
}

/// A meeting request in `address`'s inbox (not an email exsync tracks), sent by `organizer`.
async fn meeting_request(world: &World, organizer: (&str, &str), address: &str) {
    let request = CreateItemRequest {
        message_disposition: None,
        send_meeting_invitations: Some(SendMeetingInvitations::SendToAllAndSaveCopy),
        saved_item_folder_id: Some(BaseFolderId::distinguished(
            DistinguishedFolderName::Calendar,
        )),
        items: vec![Item::CalendarItem(CalendarItem {
            base: ItemBase {
                subject: Some("Review".into()),
                ..ItemBase::default()
            },
            start: Some("2026-06-03T10:00:00Z".parse().unwrap()),
            end: Some("2026-06-03T11:00:00Z".parse().unwrap()),
            required_attendees: vec![EmailAddress::new(None, address)],
            ..CalendarItem::default()
        })],
    }
    .to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
    let status = reqwest::Client::new()
        .post(world.fake.ews_url())
        .basic_auth(organizer.0, Some(organizer.1))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(request)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
}

#[sqlx::test]
async fn process_from_filters_on_date_time_received_before_get_item_so_old_mail_is_never_downloaded(
    pool: PgPool,
) {
    let world = World::with_settings(pool, big_pages()).await;
    let m = org(
        &world,
        1,
        "process_email_received_after = 2026-06-01T00:00:00Z",
    )
    .await
    .remove(0);
    // A big old Inbox and yesterday's mail.
    world.deliver(&m, 3000, "2026-01-15T08:00:00Z").await;
    world.deliver(&m, 5, "2026-06-02T08:00:00Z").await;
    let pass = world.pass(&m).await;
    let report = incoming(&pass);
    assert_eq!(report.outcome, Outcome::Success, "{pass:?}");
    assert_eq!(report.summary.processed, 5);
    assert_eq!(report.summary.skipped, 3000);
    // SyncFolderItems said how old each item is: only yesterday's mail was downloaded.
    assert_eq!(operations(&world, "GetItem").await, 1);
    assert_eq!(
        world
            .count("SELECT count(*) FROM skipped_items WHERE reason = 'before_process_from'")
            .await,
        3000
    );
}

#[sqlx::test]
async fn skipped_items_count_as_known_after_an_invalid_sync_state(pool: PgPool) {
    let world = World::with_settings(pool, big_pages()).await;
    let m = org(
        &world,
        1,
        "process_email_received_after = 2026-06-01T00:00:00Z",
    )
    .await
    .remove(0);
    world.mailbox("org@contoso.test", "org", "Org-Pw1!").await;
    world.deliver(&m, 40, "2026-01-15T08:00:00Z").await;
    world.deliver(&m, 5, "2026-06-02T08:00:00Z").await;
    meeting_request(&world, ("org", "Org-Pw1!"), &m).await;
    world.pass(&m).await;
    assert_eq!(
        world
            .count("SELECT count(*) FROM skipped_items WHERE reason = 'not_an_email'")
            .await,
        1
    );
    // Exchange forgets the sync state: the whole Inbox is reported again.
    world
        .fake_post(
            &format!("/_fake/mailboxes/{m}/reset-sync-states"),
            json!({}),
        )
        .await;
    world.fake_post("/_fake/stats/reset", json!({})).await;
    let again = world.pass(&m).await;
    let report = incoming(&again);
    assert_eq!(report.outcome, Outcome::Success, "{again:?}");
    assert_eq!(report.summary.processed, 0);
    assert_eq!(
        operations(&world, "GetItem").await,
        0,
        "nothing downloaded again"
    );
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 5);
}

#[sqlx::test]
async fn moving_the_process_from_date_earlier_brings_the_older_mail_in(pool: PgPool) {
    let world = World::new(pool).await;
    let m = org(
        &world,
        1,
        "process_email_received_after = 2026-06-01T00:00:00Z",
    )
    .await
    .remove(0);
    world.deliver(&m, 12, "2026-03-10T08:00:00Z").await; // admitted once the date moves
    world.deliver(&m, 4, "2025-10-10T08:00:00Z").await; // still too old afterwards
    world.deliver(&m, 3, "2026-06-02T08:00:00Z").await;
    world.pass(&m).await;
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 3);
    // The operator sets the date to what should be processed.
    let text = format!(
        "{ORG}\n[[mailbox]]\naddress = \"{m}\"\nprofile = \"Contoso\"\napproval = \"approved\"\nprocess_email_received_after = 2026-03-01T00:00:00Z\n"
    );
    world.apply(&text).await;
    let pass = world.pass(&m).await;
    assert_eq!(incoming(&pass).outcome, Outcome::Success, "{pass:?}");
    assert_eq!(incoming(&pass).summary.processed, 12);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 15);
    assert_eq!(
        world.count("SELECT count(*) FROM skipped_items").await,
        4,
        "the still-older mail stays skipped"
    );
    // Nothing is fetched twice afterwards.
    world.fake_post("/_fake/stats/reset", json!({})).await;
    world.pass(&m).await;
    assert_eq!(operations(&world, "GetItem").await, 0);
}

const ONLINE: &str = r#"
[[profile]]
name = "Online"
server_type = "exchange_online"
ews_url = "{ews}"
auth = "oauth_client_credentials"
oauth_token_url = "{token}"
oauth_client_id = "app-1"
oauth_client_secret = "App-S3cret!"
"#;

#[sqlx::test]
async fn a_401_for_one_mailbox_is_that_mailbox_s_problem_until_a_second_mailbox_gets_one(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    world
        .fake_post(
            "/_fake/apps",
            json!({"client_id": "app-1", "client_secret": "App-S3cret!"}),
        )
        .await;
    let mut text = ONLINE.to_owned();
    for user in ["a", "b", "c"] {
        world
            .mailbox(&format!("{user}@online.test"), user, "Pw-1!")
            .await;
        text.push_str(&format!(
            "\n[[mailbox]]\naddress = \"{user}@online.test\"\nprofile = \"Online\"\napproval = \"approved\"\n"
        ));
    }
    world.apply(&text).await;
    let unlicensed = |address: &'static str| {
        let world = &world;
        async move {
            world
                .fake_put(
                    &format!("/_fake/mailboxes/{address}/settings"),
                    json!({"unauthorized": true}),
                )
                .await;
        }
    };
    let profile_blocked = || {
        world.count(
            "SELECT count(*) FROM email_server_profiles WHERE credentials_blocked_at IS NOT NULL",
        )
    };
    unlicensed("a@online.test").await;
    let a = world.pass("a@online.test").await;
    match &incoming(&a).outcome {
        Outcome::Failed { code, kind, .. } => {
            assert_eq!(code, "ews.mailbox_unauthorized");
            assert_eq!(*kind, FailureKind::Permanent);
        }
        other => panic!("expected a mailbox-level 401, got {other:?}"),
    }
    assert_eq!(profile_blocked().await, 0, "the profile goes on");
    assert_eq!(world.open_alerts("ews.mailbox_unauthorized").await.len(), 1);
    let b = world.pass("b@online.test").await;
    assert_eq!(incoming(&b).outcome, Outcome::Success, "{b:?}");
    // Then two mailboxes in a row get a 401: the credential itself is refused.
    unlicensed("b@online.test").await;
    unlicensed("c@online.test").await;
    let b = world.pass("b@online.test").await;
    assert!(
        matches!(&incoming(&b).outcome, Outcome::Failed { code, .. } if code == "ews.mailbox_unauthorized")
    );
    let c = world.pass("c@online.test").await;
    assert!(
        matches!(
            &incoming(&c).outcome,
            Outcome::Failed {
                kind: FailureKind::Authentication,
                ..
            }
        ),
        "{c:?}"
    );
    assert_eq!(profile_blocked().await, 1);
}

#[sqlx::test]
async fn test_mailbox_for_a_profile_with_a_rejected_password_makes_one_failed_sign_in(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    org(&world, 5, "").await;
    world.faults(json!({"latency_ms": 50})).await;
    world
        .fake_put(
            "/_fake/accounts/svc/password",
            json!({"password": "Changed-1!"}),
        )
        .await;
    let probes = test_profile(&world.engine, "Contoso", ProbeOptions { no_send: true })
        .await
        .unwrap();
    assert_eq!(probes.len(), 5);
    for probe in &probes {
        let incoming = probe.workload(Workload::Incoming).unwrap();
        assert_eq!(incoming.verdict, Verdict::Failed);
        assert_eq!(incoming.reason, Some(Reason::Authentication));
    }
    assert_eq!(failed_logins(&world, "svc").await, 1);
}

#[sqlx::test]
async fn after_a_credential_block_the_first_retry_is_one_request_and_the_others_wait_for_it(
    pool: PgPool,
) {
    let mut settings = fast_settings();
    settings.scheduler.outage_retry_interval = Duration::from_millis(300);
    let world = World::with_settings(pool, settings).await;
    let mailboxes = org(&world, 5, "").await;
    world.faults(json!({"latency_ms": 50})).await;
    world
        .fake_post("/_fake/accounts/svc/expire", json!({}))
        .await;
    let all_at_once = || async {
        let passes = mailboxes.iter().map(|m| world.pass(m));
        futures::future::join_all(passes).await
    };
    // Five mailboxes start at once: one failed sign-in, the others wait and do not try.
    let first = all_at_once().await;
    assert!(first.iter().all(|p| matches!(
        &incoming(p).outcome,
        Outcome::Failed {
            kind: FailureKind::Authentication,
            ..
        }
    )));
    assert_eq!(failed_logins(&world, "svc").await, 1);
    // Within the retry interval: no request at all.
    all_at_once().await;
    assert_eq!(failed_logins(&world, "svc").await, 1);
    // The retry: one request, still refused.
    tokio::time::sleep(Duration::from_millis(400)).await;
    all_at_once().await;
    assert_eq!(failed_logins(&world, "svc").await, 2);
    // The password renewed: the first retry succeeds and the others follow it.
    world
        .fake_put(
            "/_fake/accounts/svc/password",
            json!({"password": "Svc-Passw0rd!"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let healed = all_at_once().await;
    assert!(
        healed
            .iter()
            .all(|p| incoming(p).outcome == Outcome::Success),
        "{healed:?}"
    );
    assert_eq!(failed_logins(&world, "svc").await, 2);
}

#[sqlx::test]
async fn test_mailbox_counts_against_the_profile_connection_limit_while_the_daemon_runs(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    let mailboxes = org(&world, 6, "").await;
    sqlx::query("UPDATE email_server_profiles SET max_concurrent_connections = 2")
        .execute(world.store.pool())
        .await
        .unwrap();
    for m in &mailboxes {
        world.deliver(m, 15, "2026-06-01T00:00:00Z").await;
    }
    world.faults(json!({"latency_ms": 40})).await;
    let app = world.app(world.settings.clone());
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(app.run(shutdown.clone()));
    // The daemon is busy with its two connections when the operator tests the profile.
    tokio::time::timeout(Duration::from_secs(30), async {
        while world
            .count("SELECT count(*) FROM mailboxes WHERE lease_expires_at > now()")
            .await
            == 0
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the daemon started");
    let probes = test_profile(&world.engine, "Contoso", ProbeOptions { no_send: true })
        .await
        .unwrap();
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    assert!(probes.iter().all(|p| p.passed), "{probes:?}");
    let peak = world.stats().await["accounts"]["svc"]["peak_concurrent_requests"]
        .as_u64()
        .unwrap();
    assert!(
        peak <= 2,
        "daemon and test-mailbox together used {peak} connections"
    );
}

#[sqlx::test]
async fn one_bad_act_row_fails_alone_and_the_rest_of_act_goes_on(pool: PgPool) {
    let world = World::new(pool).await;
    let m = org(&world, 1, "act = \"server_side_sync\"").await.remove(0);
    for (name, phones) in [
        ("Ann Good", json!({"BusinessPhone": "+49 1"})),
        ("Bad Key", json!({"CarPhone2": "+49 2"})),
        ("Cid Good", json!({"MobilePhone": "+49 3"})),
    ] {
        sqlx::query(
            "INSERT INTO contacts (mailbox_id, display_name, phone_numbers)
             SELECT id, $2, $3 FROM mailboxes WHERE email_address = $1",
        )
        .bind(&m)
        .bind(name)
        .bind(phones)
        .execute(world.store.pool())
        .await
        .unwrap();
    }
    let pass = world.pass(&m).await;
    let act = pass.report(Workload::Act).unwrap();
    assert_eq!(act.outcome, Outcome::Success, "{pass:?}");
    assert_eq!(act.summary.failed, 1);
    assert_eq!(world.folder_count(&m, "contacts").await, 2);
    let error: String =
        sqlx::query_scalar("SELECT sync_error FROM contacts WHERE display_name = 'Bad Key'")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert!(error.contains("CarPhone2"), "{error}");
    assert_eq!(
        world
            .count("SELECT count(*) FROM contacts WHERE ews_item_id IS NOT NULL")
            .await,
        2
    );
    assert_eq!(world.open_alerts("item.failed").await.len(), 1);
}

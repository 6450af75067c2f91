//! Operating exsync: Test & Enable (`test-mailbox`), `explain`, the health and metrics
//! endpoints, and the log lines — each rule checked on real states built with real Postgres
//! and the fake Exchange over HTTP.

use crate::support::world::World;
use crate::support::{all_output, database_url, exsync};
use exsync::domain::Workload;
use exsync::operator::explain::{explain, ItemFate, WorkloadState};
use exsync::operator::probe::{test_mailbox, test_profile, ProbeOptions, Reason, Verdict};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
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
max_concurrent_connections = 2

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"
act = "server_side_sync"
"#;

const SEND: ProbeOptions = ProbeOptions { no_send: false };
const NO_SEND: ProbeOptions = ProbeOptions { no_send: true };

async fn contoso(pool: PgPool) -> World {
    let world = World::new(pool).await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world
        .service_account("svc", "Svc-Passw0rd!", &["alice@contoso.test"])
        .await;
    world.apply(ORG).await;
    world
}

async fn statuses(world: &World, address: &str) -> (String, String, String) {
    sqlx::query_as(
        "SELECT incoming_status, outgoing_status, act_status FROM mailboxes WHERE email_address = $1",
    )
    .bind(address)
    .fetch_one(world.store.pool())
    .await
    .unwrap()
}

async fn explained(
    world: &World,
    address: &str,
    item: Option<&str>,
) -> exsync::operator::explain::Explanation {
    explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        address,
        item,
    )
    .await
    .expect("explain")
}

// ----------------------------------------------------------------------------- test-mailbox

#[sqlx::test]
async fn test_mailbox_passes_each_workload_sends_itself_a_message_and_writes_the_statuses(
    pool: PgPool,
) {
    let world = contoso(pool).await;
    let probe = test_mailbox(&world.engine, "alice@contoso.test", SEND)
        .await
        .unwrap();
    assert!(probe.passed, "{probe}");
    for workload in Workload::ALL {
        assert_eq!(probe.workload(*workload).unwrap().verdict, Verdict::Passed);
    }
    assert_eq!(
        statuses(&world, "alice@contoso.test").await,
        ("success".into(), "success".into(), "success".into())
    );
    // The test message went to the mailbox itself, with a copy in Sent Items.
    assert_eq!(world.folder_count("alice@contoso.test", "inbox").await, 1);
    assert_eq!(
        world.folder_count("alice@contoso.test", "sentitems").await,
        1
    );
    assert_eq!(probe.approval, "approved", "approval is reported");
}

#[sqlx::test]
async fn test_mailbox_with_no_send_checks_outgoing_without_sending_anything(pool: PgPool) {
    let world = contoso(pool).await;
    let probe = test_mailbox(&world.engine, "alice@contoso.test", NO_SEND)
        .await
        .unwrap();
    assert_eq!(
        probe.workload(Workload::Outgoing).unwrap().verdict,
        Verdict::Passed
    );
    let stats = world.stats().await;
    assert!(stats["operations"].get("CreateItem").is_none(), "{stats}");
    assert_eq!(world.folder_count("alice@contoso.test", "inbox").await, 0);
    assert_eq!(
        world.folder_count("alice@contoso.test", "sentitems").await,
        0
    );
}

#[sqlx::test]
async fn an_expired_password_fails_every_workload_for_authentication(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .fake_post("/_fake/accounts/svc/expire", json!({}))
        .await;
    let probe = test_mailbox(&world.engine, "alice@contoso.test", NO_SEND)
        .await
        .unwrap();
    assert!(!probe.passed);
    for w in &probe.workloads {
        assert_eq!(w.verdict, Verdict::Failed);
        assert_eq!(w.reason, Some(Reason::Authentication), "{probe}");
    }
    assert_eq!(
        statuses(&world, "alice@contoso.test").await,
        ("failure".into(), "failure".into(), "failure".into())
    );
    assert!(!probe.to_string().contains("Svc-Passw0rd!"));
}

#[sqlx::test]
async fn revoked_impersonation_fails_for_impersonation_denied(pool: PgPool) {
    let world = contoso(pool).await;
    world.rights("svc", &[], &[]).await;
    let probe = test_mailbox(&world.engine, "alice@contoso.test", NO_SEND)
        .await
        .unwrap();
    let incoming = probe.workload(Workload::Incoming).unwrap();
    assert_eq!(
        incoming.reason,
        Some(Reason::ImpersonationDenied),
        "{probe}"
    );
    assert_eq!(incoming.code.as_deref(), Some("ews.impersonation_denied"));
}

#[sqlx::test]
async fn a_mailbox_exchange_does_not_have_fails_as_missing(pool: PgPool) {
    let world = contoso(pool).await;
    world.rights("svc", &["*"], &[]).await;
    world
        .apply(&format!(
            "{ORG}\n[[mailbox]]\naddress = \"ghost@contoso.test\"\nprofile = \"Contoso\"\napproval = \"approved\"\n"
        ))
        .await;
    let probe = test_mailbox(&world.engine, "ghost@contoso.test", NO_SEND)
        .await
        .unwrap();
    assert_eq!(
        probe.workload(Workload::Incoming).unwrap().reason,
        Some(Reason::MailboxMissing),
        "{probe}"
    );
    assert_eq!(
        probe.workload(Workload::Act).unwrap().verdict,
        Verdict::NotConfigured
    );
}

const FABRIKAM: &str = r#"
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
"#;

async fn fabrikam(world: &World) {
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
    world.apply(FABRIKAM).await;
}

#[sqlx::test]
async fn delegation_passes_email_and_fails_act_with_the_delegation_reason(pool: PgPool) {
    let world = World::new(pool).await;
    fabrikam(&world).await;
    let probe = test_mailbox(&world.engine, "carol@fabrikam.test", NO_SEND)
        .await
        .unwrap();
    assert_eq!(
        probe.workload(Workload::Incoming).unwrap().verdict,
        Verdict::Passed,
        "{probe}"
    );
    assert_eq!(
        probe.workload(Workload::Outgoing).unwrap().verdict,
        Verdict::Passed
    );
    let act = probe.workload(Workload::Act).unwrap();
    assert_eq!(act.reason, Some(Reason::Delegation));
    assert!(act.message.contains("delegation"), "{}", act.message);
}

#[sqlx::test]
async fn test_mailbox_enables_a_paused_workload_once_rights_are_restored(pool: PgPool) {
    let world = contoso(pool).await;
    world.rights("svc", &[], &[]).await;
    world.pass("alice@contoso.test").await;
    let paused: (Option<String>, i32, bool) = sqlx::query_as(
        "SELECT incoming_blocked_code, incoming_failures, incoming_next_due_at > now()
           FROM mailboxes WHERE email_address = 'alice@contoso.test'",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    assert_eq!(paused, (Some("ews.impersonation_denied".into()), 1, true));
    let before = explained(&world, "alice@contoso.test", None).await;
    assert_eq!(
        before.workload(Workload::Incoming).unwrap().state,
        WorkloadState::Paused
    );

    world.rights("svc", &["alice@contoso.test"], &[]).await;
    let probe = test_mailbox(&world.engine, "alice@contoso.test", NO_SEND)
        .await
        .unwrap();
    assert!(probe.passed, "{probe}");
    let enabled: (Option<String>, i32, bool, String) = sqlx::query_as(
        "SELECT incoming_blocked_code, incoming_failures, incoming_next_due_at <= now(), incoming_status
           FROM mailboxes WHERE email_address = 'alice@contoso.test'",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    assert_eq!(enabled, (None, 0, true, "success".into()));
    assert!(world
        .open_alerts("ews.impersonation_denied")
        .await
        .is_empty());
    let after = explained(&world, "alice@contoso.test", None).await;
    assert_eq!(
        after.workload(Workload::Incoming).unwrap().state,
        WorkloadState::Scheduled
    );
}

#[sqlx::test]
async fn test_profile_tests_every_mailbox_within_the_profile_connection_limit(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses: Vec<String> = (0..6).map(|i| format!("m{i}@contoso.test")).collect();
    let mut text = ORG.to_owned();
    for address in &addresses {
        let user = address.split('@').next().unwrap();
        world.mailbox(address, user, "Mbox-Pw1!").await;
        text.push_str(&format!(
            "\n[[mailbox]]\naddress = \"{address}\"\nprofile = \"Contoso\"\napproval = \"approved\"\n"
        ));
    }
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world.service_account("svc", "Svc-Passw0rd!", &["*"]).await;
    world.apply(&text).await;
    world.faults(json!({"latency_ms": 40})).await;
    let probes = test_profile(&world.engine, "Contoso", NO_SEND)
        .await
        .unwrap();
    assert_eq!(probes.len(), 7);
    assert!(probes.iter().all(|p| p.passed));
    let stats = world.stats().await;
    let peak = stats["accounts"]["svc"]["peak_concurrent_requests"]
        .as_u64()
        .unwrap();
    assert!(
        peak <= 2,
        "at most max_concurrent_connections at once, saw {peak}"
    );
}

#[sqlx::test]
async fn the_cli_exits_0_when_all_pass_1_when_any_fails_and_2_for_an_unknown_mailbox(pool: PgPool) {
    let world = contoso(pool.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("credential.key");
    std::fs::write(&key, &world.key_text).unwrap();
    let url = database_url(&pool);
    let key_text = key.display().to_string();
    let run = |args: Vec<&'static str>| {
        let (dir, url, key) = (dir.path().to_owned(), url.clone(), key_text.clone());
        tokio::task::spawn_blocking(move || {
            exsync(
                &dir,
                &args,
                &[
                    ("EXSYNC__DATABASE__URL", url.as_str()),
                    ("EXSYNC__SECURITY__CREDENTIAL_KEY_FILE", key.as_str()),
                    ("EXSYNC__LOG__LEVEL", "warn"),
                ],
            )
        })
    };
    let ok = run(vec![
        "test-mailbox",
        "alice@contoso.test",
        "--no-send",
        "--json",
    ])
    .await
    .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", all_output(&ok));
    let json: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["workloads"][0]["workload"], "incoming");
    assert_eq!(json["workloads"][0]["verdict"], "passed");

    world.rights("svc", &[], &[]).await;
    let failed = run(vec![
        "test-mailbox",
        "--profile",
        "Contoso",
        "--no-send",
        "--json",
    ])
    .await
    .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", all_output(&failed));
    let json: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(json[0]["workloads"][0]["reason"], "impersonation_denied");

    let unknown = run(vec!["test-mailbox", "nobody@contoso.test"])
        .await
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{}", all_output(&unknown));
    let unknown = run(vec!["test-mailbox", "--profile", "Nope"])
        .await
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{}", all_output(&unknown));

    let text = run(vec!["explain", "alice@contoso.test"]).await.unwrap();
    assert_eq!(text.status.code(), Some(0), "{}", all_output(&text));
    assert!(String::from_utf8_lossy(&text.stdout).contains("incoming"));
    let unknown = run(vec!["explain", "nobody@contoso.test", "--json"])
        .await
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------- explain

#[sqlx::test]
async fn explain_says_an_unapproved_mailbox_syncs_neither_email_nor_act(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .apply(&ORG.replace("approval = \"approved\"", "approval = \"pending\""))
        .await;
    let e = explained(&world, "alice@contoso.test", None).await;
    assert_eq!(e.approval, "pending");
    for workload in [Workload::Incoming, Workload::Act] {
        let w = e.workload(workload).unwrap();
        assert_eq!(w.state, WorkloadState::Refused, "{workload}");
        assert_eq!(w.code.as_deref(), Some("mailbox.not_approved"));
        assert!(w.why.contains("approval is pending"), "{}", w.why);
    }
    assert!(e
        .workload(Workload::Act)
        .unwrap()
        .why
        .contains("appointments, contacts and tasks"));
}

#[sqlx::test]
async fn explain_says_a_disabled_profile_stops_every_workload(pool: PgPool) {
    let world = contoso(pool).await;
    sqlx::query("UPDATE email_server_profiles SET enabled = false")
        .execute(world.store.pool())
        .await
        .unwrap();
    let e = explained(&world, "alice@contoso.test", None).await;
    assert!(!e.profile_enabled);
    for w in &e.workloads {
        assert_eq!(w.state, WorkloadState::ProfileDisabled);
    }
}

#[sqlx::test]
async fn explain_shows_repeated_failures_with_their_backoff_and_next_retry(pool: PgPool) {
    let mut settings = crate::support::world::fast_settings();
    settings.scheduler.backoff_initial = Duration::from_secs(60);
    settings.scheduler.backoff_max = Duration::from_secs(600);
    settings.scheduler.max_consecutive_failures = 2;
    let world = World::with_settings(pool, settings).await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world
        .service_account("svc", "Svc-Passw0rd!", &["alice@contoso.test"])
        .await;
    world.apply(ORG).await;
    world
        .faults(json!({"fail_next": ["http500", "http500", "http500"]}))
        .await;
    world.pass("alice@contoso.test").await;
    let e = explained(&world, "alice@contoso.test", None).await;
    let failing: Vec<_> = e
        .workloads
        .iter()
        .filter(|w| w.state == WorkloadState::BackingOff)
        .collect();
    assert!(!failing.is_empty(), "{e}");
    for w in failing {
        assert_eq!(w.consecutive_failures, 1);
        let backoff = w.backoff_seconds.expect("a backoff while failing");
        assert!((30..=600).contains(&backoff), "{backoff}");
        assert!(w.next_due_at > chrono::Utc::now());
    }
    assert!(e.last_error.is_some(), "{e}");
    assert!(e.to_string().contains("backing_off"), "{e}");

    // A second failure in a row reaches the limit: paused, retried slowly.
    world.faults(json!({"http_500_rate": 1.0})).await;
    world.pass("alice@contoso.test").await;
    let e = explained(&world, "alice@contoso.test", None).await;
    let incoming = e.workload(Workload::Incoming).unwrap();
    assert_eq!(incoming.state, WorkloadState::Paused, "{e}");
    assert_eq!(incoming.code.as_deref(), Some("workload.too_many_failures"));
    assert_eq!(incoming.consecutive_failures, 2);
    let retry = world.settings.scheduler.outage_retry_interval.as_secs() as i64;
    assert!(incoming.backoff_seconds.is_some_and(|s| s <= retry), "{e}");
    assert!(e
        .open_alerts
        .iter()
        .any(|a| a.code == "workload.too_many_failures" && a.level == "error"));
}

#[sqlx::test]
async fn explain_says_rejected_credentials_block_the_mailbox_until_they_change(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .fake_post("/_fake/accounts/svc/expire", json!({}))
        .await;
    world.pass("alice@contoso.test").await;
    let e = explained(&world, "alice@contoso.test", None).await;
    assert!(e.credentials_blocked.is_some(), "{e}");
    for w in &e.workloads {
        assert_eq!(w.state, WorkloadState::CredentialBlocked, "{e}");
    }
    assert!(e
        .open_alerts
        .iter()
        .any(|a| a.code == "ews.unauthorized" && a.on == "profile"));
    let text = e.to_string();
    assert!(text.contains("CREDENTIALS BLOCKED"), "{text}");
    assert!(!text.contains("Svc-Passw0rd!"));
}

#[sqlx::test]
async fn explain_says_act_is_refused_under_delegation(pool: PgPool) {
    let world = World::new(pool).await;
    fabrikam(&world).await;
    let e = explained(&world, "carol@fabrikam.test", None).await;
    assert_eq!(e.access, "delegation");
    let act = e.workload(Workload::Act).unwrap();
    assert_eq!(act.state, WorkloadState::Refused);
    assert_eq!(act.code.as_deref(), Some("act.delegation_unsupported"));
    let incoming = e.workload(Workload::Incoming).unwrap();
    assert_eq!(incoming.access.as_deref(), Some("delegation"));
    assert_eq!(incoming.credentials.as_deref(), Some("profile"));
}

#[sqlx::test]
async fn explain_names_where_the_process_from_date_comes_from(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .apply(&ORG.replace(
            "use_impersonation = true",
            "use_impersonation = true\nprocess_emails_from = 2026-03-01T00:00:00Z",
        ))
        .await;
    let e = explained(&world, "alice@contoso.test", None).await;
    assert_eq!(
        serde_json::to_value(e.process_from).unwrap(),
        json!({"after": "2026-03-01T00:00:00Z", "source": "profile"})
    );
    world
        .apply(&ORG.replace(
            "act = \"server_side_sync\"",
            "act = \"server_side_sync\"\nprocess_email_received_after = 2026-05-01T00:00:00Z",
        ))
        .await;
    let e = explained(&world, "alice@contoso.test", None).await;
    assert_eq!(
        serde_json::to_value(e.process_from).unwrap(),
        json!({"after": "2026-05-01T00:00:00Z", "source": "mailbox"})
    );
}

#[sqlx::test]
async fn explain_item_tells_imported_skipped_failed_and_unknown_apart(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .apply(&ORG.replace(
            "use_impersonation = true",
            "use_impersonation = true\nprocess_emails_from = 2026-03-01T00:00:00Z",
        ))
        .await;
    let old = world
        .deliver("alice@contoso.test", 1, "2026-02-01T00:00:00Z")
        .await;
    let new = world
        .deliver("alice@contoso.test", 1, "2026-06-01T00:00:00Z")
        .await;
    sqlx::query(
        "INSERT INTO item_failures (mailbox_id, ews_item_id, folder, last_error)
         SELECT id, 'AAMkADoesNotExist', 'inbox', 'earlier failure' FROM mailboxes",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;

    let new_id = new["ids"][0].as_str().unwrap();
    let e = explained(&world, "alice@contoso.test", Some(new_id)).await;
    let imported_email = match &e.item.as_ref().unwrap().fate {
        ItemFate::Imported {
            email_id, folder, ..
        } => {
            assert_eq!(folder, "inbox");
            *email_id
        }
        other => panic!("expected imported, got {other:?}"),
    };
    // The same message found by its Internet Message-ID.
    let message_id: String =
        sqlx::query_scalar("SELECT internet_message_id FROM emails WHERE id = $1")
            .bind(imported_email)
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    let by_message_id = explained(&world, "alice@contoso.test", Some(&message_id)).await;
    assert!(matches!(
        by_message_id.item.unwrap().fate,
        ItemFate::Imported { email_id, .. } if email_id == imported_email
    ));

    let old_id = old["ids"][0].as_str().unwrap();
    let e = explained(&world, "alice@contoso.test", Some(old_id)).await;
    match &e.item.as_ref().unwrap().fate {
        ItemFate::Skipped { reason, why, .. } => {
            assert_eq!(reason, "before_process_from");
            assert!(why.contains("2026-03-01"), "{why}");
            assert!(why.contains("profile"), "{why}");
        }
        other => panic!("expected skipped, got {other:?}"),
    }

    let e = explained(&world, "alice@contoso.test", Some("AAMkADoesNotExist")).await;
    match &e.item.as_ref().unwrap().fate {
        ItemFate::Failed {
            error, attempts, ..
        } => {
            assert_eq!(*attempts, 2);
            assert!(
                error.contains("ErrorInvalidIdMalformed"),
                "the error Exchange gave: {error}"
            );
        }
        other => panic!("expected failed, got {other:?}"),
    }

    let e = explained(&world, "alice@contoso.test", Some("AAMkNeverSeen")).await;
    assert!(matches!(
        e.item.as_ref().unwrap().fate,
        ItemFate::Unknown { .. }
    ));
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["item"]["fate"]["state"], "unknown");
}

// ------------------------------------------------------------------------- endpoints, logs

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("reach the endpoint");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn counter(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[sqlx::test]
async fn healthz_is_200_and_metrics_move_with_real_passes(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .deliver("alice@contoso.test", 3, "2026-06-01T00:00:00Z")
        .await;
    let readiness = Arc::new(exsync::health::Readiness::default());
    readiness.set_scheduler_running(true);
    let shutdown = CancellationToken::new();
    let (addr, server) = exsync::health::serve(
        "127.0.0.1:0".parse().unwrap(),
        world.store.clone(),
        readiness,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://{addr}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);
    let (_, before) = get(&format!("{base}/metrics")).await;
    world.pass("alice@contoso.test").await;
    let (status, after) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    let passes = |text: &str| {
        counter(
            text,
            "exsync_passes_total",
            &["workload=\"incoming\"", "outcome=\"success\""],
        )
    };
    assert!(passes(&after) >= passes(&before) + 1.0, "{after}");
    let imported = |text: &str| {
        counter(
            text,
            "exsync_items_total",
            &["workload=\"incoming\"", "result=\"imported\""],
        )
    };
    assert!(imported(&after) >= imported(&before) + 3.0);
    let requests = |text: &str| counter(text, "exsync_ews_requests_total", &[]);
    assert!(requests(&after) > requests(&before));

    // The healthcheck command answers from the same endpoint.
    let healthy = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        exsync(
            dir.path(),
            &["healthcheck", "--url", &format!("http://{addr}/healthz")],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(healthy.status.code(), Some(0), "{}", all_output(&healthy));
    shutdown.cancel();
    server.await.unwrap();
    let down = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        exsync(
            dir.path(),
            &["healthcheck", "--url", &format!("http://{addr}/healthz")],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(down.status.code(), Some(1), "{}", all_output(&down));
}

#[sqlx::test]
async fn readyz_turns_503_when_the_database_goes_away(pool: PgPool) {
    let name = format!("exsync_ready_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&database_url(&pool)).unwrap();
    url.set_path(&name);
    let mut settings = exsync::config::Settings::default();
    settings.database.url = url.to_string().into();
    settings.database.acquire_timeout = Duration::from_secs(1);
    let store = exsync::store::Store::connect(&settings.database)
        .await
        .unwrap();
    let readiness = Arc::new(exsync::health::Readiness::default());
    readiness.set_scheduler_running(true);
    let shutdown = CancellationToken::new();
    let (addr, server) = exsync::health::serve(
        "127.0.0.1:0".parse().unwrap(),
        store,
        readiness,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let (status, body) = get(&format!("http://{addr}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = get(&format!("http://{addr}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database: unreachable"), "{body}");
    assert_eq!(
        get(&format!("http://{addr}/healthz")).await.0,
        200,
        "alive all the same"
    );
    shutdown.cancel();
    server.await.unwrap();
}

#[sqlx::test]
async fn log_lines_are_json_with_ids_inside_a_pass_one_summary_and_no_secret(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .deliver("alice@contoso.test", 2, "2026-06-01T00:00:00Z")
        .await;
    let logs = exsync::telemetry::CapturedLogs::default();
    let dispatch = logs.dispatch("exsync=debug");
    let summary = {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        world.pass("alice@contoso.test").await
    };
    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let profile_id = summary.profile_id.to_string();
    let mailbox_id = summary.mailbox_id.to_string();
    let in_pass: Vec<&Value> = lines
        .iter()
        .filter(|l| l["mailbox.id"] == mailbox_id.as_str())
        .collect();
    assert!(in_pass.len() >= 4, "{text}");
    for line in &in_pass {
        assert_eq!(line["profile.id"], profile_id.as_str(), "{line}");
    }
    let workload_lines: Vec<&&Value> = in_pass
        .iter()
        .filter(|l| l["message"] == "workload pass finished")
        .collect();
    assert_eq!(workload_lines.len(), 3);
    for line in workload_lines {
        assert!(line["workload"].is_string(), "{line}");
    }
    let summaries: Vec<&&Value> = in_pass
        .iter()
        .filter(|l| l["message"] == "pass finished")
        .collect();
    assert_eq!(summaries.len(), 1, "one summary line per pass");
    assert_eq!(summaries[0]["outcome"], "success");
    assert_eq!(summaries[0]["processed"], 2);
    for secret in ["Svc-Passw0rd!", "Alice-Pw1!", &world.key_text] {
        assert!(!text.contains(secret), "a secret leaked into the logs");
    }
}

// ------------------------------------------------------------------------------ key rotation

#[sqlx::test]
async fn rotate_key_rewrites_every_secret_under_the_new_key_and_is_idempotent(pool: PgPool) {
    use exsync::crypto::{CredentialCipher, CredentialKey};
    let world = contoso(pool).await;
    let old = || CredentialKey::parse(&world.key_text, "old").unwrap();
    let new_text = {
        use secrecy::ExposeSecret;
        CredentialKey::generate()
            .to_base64()
            .expose_secret()
            .to_owned()
    };
    let new = || CredentialKey::parse(&new_text, "new").unwrap();
    let rotating = CredentialCipher::with_previous(new(), old());
    let report = exsync::store::secrets::reencrypt_all(&world.store, &rotating)
        .await
        .unwrap();
    assert_eq!(report.reencrypted, 1, "the profile's password");
    // The new key alone now reads every secret; the old key alone reads none.
    let rows = exsync::store::profiles::list_rows(&world.store)
        .await
        .unwrap();
    let profile = rows[0]
        .clone()
        .into_profile(&CredentialCipher::new(new()))
        .unwrap();
    assert_eq!(profile.name, "Contoso");
    assert!(rows[0]
        .clone()
        .into_profile(&CredentialCipher::new(old()))
        .is_err());
    let again = exsync::store::secrets::reencrypt_all(&world.store, &rotating)
        .await
        .unwrap();
    assert_eq!((again.reencrypted, again.already_current), (0, 1));
}

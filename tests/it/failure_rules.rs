//! Failures and bad input: the daemon keeps working under what a real Exchange and a real
//! database throw at it, and loses nothing. Real Postgres, the fake Exchange's fault
//! injection, a hostile EWS server, and the `exsync` binary killed with SIGKILL.

use crate::support::key_file;
use crate::support::world::{fast_settings, World};
use exsync::domain::Workload;
use exsync::sync::pass::Outcome;
use exsync::sync::{FailureKind, PassSummary};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::mpsc;
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
max_concurrent_connections = 4
"#;

async fn org(world: &World, mailboxes: usize, messages: u32) -> Vec<String> {
    let addresses: Vec<String> = (0..mailboxes).map(|i| format!("m{i}@fail.test")).collect();
    let mut text = ORG.to_owned();
    for address in &addresses {
        let user = address.split('@').next().unwrap();
        world.mailbox(address, user, &format!("{user}-Pw1!")).await;
        if messages > 0 {
            world
                .deliver(address, messages, "2026-06-01T00:00:00Z")
                .await;
        }
        text.push_str(&format!(
            "\n[[mailbox]]\naddress = \"{address}\"\nprofile = \"Contoso\"\napproval = \"approved\"\n"
        ));
    }
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    world.service_account("svc", "Svc-Passw0rd!", &refs).await;
    world.apply(&text).await;
    addresses
}

/// Run the daemon in-process until `done(copies)` holds (checked every 100 ms), then stop it.
async fn run_until_copies(world: &World, settings: exsync::config::Settings, want: i64) {
    let app = world.app(settings);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let reached = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            // The test's own connections are cut too when it simulates a restart: retry.
            let copies = world.try_count("SELECT count(*) FROM email_copies").await;
            if copies.is_ok_and(|copies| copies >= want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert!(reached.is_ok(), "did not reach {want} copies");
}

#[sqlx::test]
async fn a_lost_database_connection_is_survived_and_nothing_is_lost_or_duplicated(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses = org(&world, 6, 30).await;
    world.faults(json!({"latency_ms": 15})).await;
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    // What a Postgres restart does to its clients: every connection to the database is cut.
    let admin = sqlx::PgPool::connect(&std::env::var("DATABASE_URL").unwrap())
        .await
        .unwrap();
    let cutter = tokio::spawn(async move {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let _ = sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&database)
            .execute(&admin)
            .await;
        }
    });
    run_until_copies(&world, fast_settings(), 180).await;
    cutter.await.unwrap();
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 180);
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 180);
    for address in &addresses {
        assert_eq!(world.folder_count(address, "inbox").await, 30);
    }
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE lease_owner IS NOT NULL")
            .await,
        0
    );
}

#[sqlx::test]
async fn a_process_killed_mid_pass_loses_nothing_and_sends_nothing_twice(pool: PgPool) {
    let world = World::new(pool.clone()).await;
    let addresses = org(&world, 5, 40).await;
    for (i, from) in addresses.iter().enumerate() {
        let to = addresses[(i + 1) % addresses.len()].clone();
        for n in 0..3 {
            exsync::store::outgoing::enqueue(
                &world.store,
                from,
                std::slice::from_ref(&to),
                &[],
                &format!("kill test {n}"),
                "body",
            )
            .await
            .unwrap();
        }
    }
    // Slow answers, so the kill lands in the middle of passes.
    world.faults(json!({"latency_ms": 60})).await;
    let dir = tempfile::tempdir().unwrap();
    let (key_path, _) = key_file(dir.path());
    std::fs::write(&key_path, format!("{}\n", world.key_text)).unwrap();
    let url = crate::support::database_url(&pool);
    let key = key_path.to_str().unwrap().to_owned();
    let env = [
        ("EXSYNC__DATABASE__URL", url.as_str()),
        ("EXSYNC__SECURITY__CREDENTIAL_KEY_FILE", key.as_str()),
        ("EXSYNC__SCHEDULER__TICK_INTERVAL", "50ms"),
        ("EXSYNC__SCHEDULER__LEASE_DURATION", "10s"),
        ("EXSYNC__SYNC__MAX_CHANGES_PER_REQUEST", "10"),
        ("EXSYNC__SYNC__GET_ITEM_BATCH_SIZE", "5"),
        ("EXSYNC__LOG__LEVEL", "warn"),
    ];
    let log_path = dir.path().join("exsync.log");
    let spawn = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_exsync"));
        command.current_dir(dir.path()).arg("run");
        for (key, _) in std::env::vars() {
            if key.starts_with("EXSYNC__") || key == "DATABASE_URL" {
                command.env_remove(key);
            }
        }
        command
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
                    .expect("log file"),
            );
        command.spawn().expect("start exsync run")
    };
    let mut first = spawn();
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let copies = world.count("SELECT count(*) FROM email_copies").await;
            if copies >= 30 {
                return copies;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the first process made no progress: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    });
    first.kill().expect("SIGKILL"); // kill -9: no drain, no lease release
    first.wait().unwrap();
    assert!(started < 200, "killed mid-run, not after it finished");
    let mut second = spawn();
    let finished = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let copies = world.count("SELECT count(*) FROM email_copies").await;
            let sent = world
                .count("SELECT count(*) FROM outgoing_emails WHERE status = 'sent'")
                .await;
            if copies >= 200 && sent >= 15 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // SIGTERM: the second process drains and releases its leases, exiting 0.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(term.success());
    let status = second.wait().unwrap();
    assert!(
        finished.is_ok(),
        "the restarted process did not finish the work: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    // A lease the killed process held expires by itself (never held forever).
    tokio::time::timeout(Duration::from_secs(30), async {
        while world
            .count("SELECT count(*) FROM mailboxes WHERE lease_expires_at > now()")
            .await
            > 0
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("every lease expired or was released");
    // Import what the sends delivered, then compare exactly with the fake's counts.
    for address in &addresses {
        world.pass(address).await;
    }
    let mut in_inboxes = 0;
    for address in &addresses {
        assert_eq!(
            world.folder_count(address, "sentitems").await,
            3,
            "{address}"
        );
        in_inboxes += world.folder_count(address, "inbox").await as i64;
    }
    assert_eq!(
        in_inboxes,
        200 + 15,
        "each queued email delivered exactly once"
    );
    assert_eq!(
        world.count("SELECT count(*) FROM email_copies").await,
        in_inboxes
    );
    assert_eq!(world.count("SELECT count(*) FROM emails").await, in_inboxes);
    assert_eq!(
        world
            .count("SELECT count(*) FROM outgoing_emails WHERE status = 'sent'")
            .await,
        15
    );
}

#[sqlx::test]
async fn an_undecryptable_profile_or_mailbox_row_is_named_and_every_other_mailbox_goes_on(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    let addresses = org(&world, 3, 4).await;
    world
        .apply(
            r#"
[[profile]]
name = "Broken"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
username = "other"
password = "Other-Passw0rd!"

[[mailbox]]
address = "x@broken.test"
profile = "Broken"
approval = "approved"
"#,
        )
        .await;
    // Garbage where ciphertext should be (as after restoring a backup with another key).
    sqlx::query("UPDATE email_server_profiles SET password_enc = '\\x00010203'::bytea WHERE name = 'Broken'")
        .execute(world.store.pool())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE mailboxes SET username = 'm0', password_enc = '\\x0badc0de'::bytea
          WHERE email_address = $1",
    )
    .bind(&addresses[0])
    .execute(world.store.pool())
    .await
    .unwrap();
    run_until_copies(&world, fast_settings(), 8).await;
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 8);
    assert_eq!(world.open_alerts("profile.invalid_row").await.len(), 1);
    assert_eq!(world.open_alerts("mailbox.invalid_row").await.len(), 1);
    let text: String =
        sqlx::query_scalar("SELECT message FROM alerts WHERE code = 'mailbox.invalid_row'")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert!(text.contains("password"), "names the field: {text}");
}

/// A hostile "Exchange": answers every request with the same body and content type.
async fn hostile_server(body: Vec<u8>, content_type: &'static str) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/EWS/Exchange.asmx",
        post(move || {
            let body = body.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, content_type)], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/EWS/Exchange.asmx")
}

fn hostile_bodies() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let envelope = |inner: &str| {
        format!(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{inner}</s:Body></s:Envelope>"#
        )
    };
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol3;</s:Body></s:Envelope>"#;
    let deep = envelope(&format!(
        "{}{}",
        "<a>".repeat(50_000),
        "</a>".repeat(50_000)
    ));
    vec![
        ("entity expansion", laughs.as_bytes().to_vec(), "text/xml"),
        ("deep nesting", deep.into_bytes(), "text/xml"),
        (
            "truncated",
            envelope("<m:SyncFolderItemsResponse xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\"><m:ResponseMessages>")
                .as_bytes()[..150]
                .to_vec(),
            "text/xml",
        ),
        ("html error page", b"<html><body>Service unavailable</body></html>".to_vec(), "text/html"),
        ("not xml at all", vec![0xff, 0xfe, 0x00, 0x41, 0x42], "application/octet-stream"),
        (
            "oversized",
            envelope(&"<x>padding</x>".repeat(2_000_000)).into_bytes(),
            "text/xml",
        ),
    ]
}

#[sqlx::test]
async fn hostile_or_malformed_responses_fail_the_pass_with_a_named_error_and_nothing_else(
    pool: PgPool,
) {
    let mut settings = fast_settings();
    settings.http.max_response_bytes = 8 * 1024 * 1024;
    let world = World::with_settings(pool, settings).await;
    org(&world, 1, 3).await;
    for (i, (what, body, content_type)) in hostile_bodies().into_iter().enumerate() {
        let url = hostile_server(body, content_type).await;
        let address = format!("victim{i}@hostile.test");
        world
            .apply(&format!(
                r#"
[[profile]]
name = "Hostile {i}"
server_type = "exchange_server"
ews_url = "{url}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Passw0rd!"

[[mailbox]]
address = "{address}"
profile = "Hostile {i}"
approval = "approved"
"#
            ))
            .await;
        let pass = world.pass(&address).await;
        let report = pass.report(Workload::Incoming).expect("incoming ran");
        match &report.outcome {
            Outcome::Failed {
                kind,
                code,
                message,
            } => {
                assert_eq!(*kind, FailureKind::Transient, "{what}: {code} {message}");
                assert!(
                    code == "ews.malformed_response"
                        || code == "ews.unreachable"
                        || code.starts_with("ews.http_"),
                    "{what}: {code} {message}"
                );
                assert!(message.chars().count() < 600, "{what}: error text bounded");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // The well-behaved mailbox is untouched by all of that.
    let good = world.pass("m0@fail.test").await;
    assert!(matches!(
        good.report(Workload::Incoming).unwrap().outcome,
        Outcome::Success
    ));
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 3);
}

#[sqlx::test]
async fn an_item_that_fails_to_import_is_skipped_with_a_warning_and_retried_a_bounded_number_of_times(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    org(&world, 1, 6).await;
    // An item that failed before and no longer exists: its retry fails again, alone.
    sqlx::query(
        "INSERT INTO item_failures (mailbox_id, ews_item_id, folder, last_error)
         SELECT id, 'AAMkADoesNotExist', 'inbox', 'earlier failure' FROM mailboxes",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    let first = world.pass("m0@fail.test").await;
    let report = first.report(Workload::Incoming).unwrap();
    assert!(matches!(report.outcome, Outcome::Success), "{first:?}");
    assert_eq!(report.summary.processed, 6, "the rest of the pass went on");
    assert_eq!(report.summary.failed, 1);
    assert_eq!(
        world.open_alerts("item.failed").await,
        vec![("warning".to_owned(), 1)]
    );
    let max = world.settings.sync.item_max_attempts as usize;
    for _ in 0..max {
        world.pass("m0@fail.test").await;
    }
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM item_failures WHERE gave_up_at IS NOT NULL AND attempts = 5"
            )
            .await,
        1,
        "given up after the bounded number of attempts, error kept"
    );
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 6);
}

#[sqlx::test]
async fn payload_logging_never_writes_a_credential(pool: PgPool) {
    let world = World::new(pool).await;
    org(&world, 2, 3).await;
    sqlx::query("UPDATE mailboxes SET payload_logging = true")
        .execute(world.store.pool())
        .await
        .unwrap();
    world
        .fake_post("/_fake/accounts/svc/expire", json!({}))
        .await;
    let logs = exsync::telemetry::CapturedLogs::default();
    let dispatch = logs.dispatch("exsync=debug");
    let (tx, mut rx) = mpsc::unbounded_channel::<PassSummary>();
    {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let summary = world.pass("m0@fail.test").await;
        let _ = tx.send(summary);
        world
            .fake_put(
                "/_fake/accounts/svc/password",
                json!({"password": "Svc-Passw0rd!"}),
            )
            .await;
        world
            .apply(&ORG.replace(
                "max_concurrent_connections = 4",
                "max_concurrent_connections = 5",
            ))
            .await;
        let summary = world.pass("m1@fail.test").await;
        let _ = tx.send(summary);
    }
    drop(tx);
    while rx.recv().await.is_some() {}
    let text = logs.text();
    assert!(
        text.contains("EWS request payload"),
        "payloads were logged: {}",
        &text[..text.len().min(500)]
    );
    for secret in ["Svc-Passw0rd!", "m0-Pw1!", "m1-Pw1!", "U3ZjLVBhc3N3MHJkIQ"] {
        assert!(!text.contains(secret), "a secret leaked into the logs");
    }
}

//! When something goes wrong, the logs and metrics must tell one pass and one mailbox apart:
//! payload logging for one mailbox only (even when its credential's client is shared), a pass
//! id on every log line of a pass (the EWS client's included), and progress page by page
//! during a long import, in the logs and in the metrics while it runs.

use crate::support::world::World;
use exsync::telemetry::CapturedLogs;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;

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
payload_logging = true

[[mailbox]]
address = "bob@contoso.test"
profile = "Contoso"
approval = "approved"
"#;

/// Alice (payload logging on) and Bob (off), both reached through svc's one client.
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

async fn mailbox_id(world: &World, address: &str) -> String {
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM mailboxes WHERE email_address = $1")
        .bind(address)
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    id.to_string()
}

/// The lines exsync itself logged (the fake Exchange runs in the same process: its own lines
/// are the server's, not the pass's).
fn exsync_lines(logs: &CapturedLogs) -> Vec<Value> {
    logs.lines()
        .into_iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("exsync") && !t.starts_with("exsync::fake_exchange"))
        })
        .collect()
}

#[sqlx::test]
async fn payload_logging_logs_the_payloads_of_that_mailbox_only(pool: PgPool) {
    let world = contoso(pool).await;
    for address in ["alice@contoso.test", "bob@contoso.test"] {
        world.deliver(address, 2, "2026-11-02T09:00:00Z").await;
    }
    let logs = CapturedLogs::default();
    let dispatch = logs.dispatch("exsync=debug");
    {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        // Bob's pass creates the shared client; Alice's and Bob's passes then share it.
        world.pass("bob@contoso.test").await;
        world.pass("alice@contoso.test").await;
        world.pass("bob@contoso.test").await;
    }
    let alice = mailbox_id(&world, "alice@contoso.test").await;
    let payloads: Vec<Value> = exsync_lines(&logs)
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("EWS") && m.ends_with("payload"))
        })
        .collect();
    assert!(
        payloads
            .iter()
            .any(|l| l["message"] == "EWS request payload")
            && payloads
                .iter()
                .any(|l| l["message"] == "EWS response payload"),
        "Alice's payloads are logged: {}",
        logs.text()
    );
    for line in &payloads {
        assert_eq!(line["mailbox.id"], alice.as_str(), "{line}");
        let text = line.to_string();
        assert!(!text.contains("bob@contoso.test"), "{line}");
    }
}

#[sqlx::test]
async fn every_log_line_of_a_pass_carries_the_pass_id(pool: PgPool) {
    let world = contoso(pool).await;
    world
        .deliver("alice@contoso.test", 3, "2026-11-02T09:00:00Z")
        .await;
    let logs = CapturedLogs::default();
    let dispatch = logs.dispatch("exsync=debug");
    let (first, second) = {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let first = world.pass("alice@contoso.test").await;
        let second = world.pass("alice@contoso.test").await;
        (first, second)
    };
    assert_ne!(first.pass_id, second.pass_id, "one id per pass");
    let lines = exsync_lines(&logs);
    assert!(lines.len() >= 6, "{}", logs.text());
    let ids = [first.pass_id.to_string(), second.pass_id.to_string()];
    for line in &lines {
        let id = line["pass.id"].as_str().unwrap_or_default();
        assert!(ids.contains(&id.to_owned()), "no pass id on {line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "exsync::ews::client" && l["pass.id"] == ids[0].as_str()),
        "the EWS client's lines carry it too: {}",
        logs.text()
    );
    let first_pass_lines = lines.iter().filter(|l| l["pass.id"] == ids[0].as_str());
    assert!(first_pass_lines.count() >= 3);
}

/// The value of one series of a counter in a Prometheus text exposition.
fn series(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[sqlx::test]
async fn a_multi_page_import_logs_progress_every_page_and_moves_the_metrics_while_it_runs(
    pool: PgPool,
) {
    let world = contoso(pool).await;
    // 30 messages at 10 changes per page: three pages and more requests than one.
    world
        .deliver("bob@contoso.test", 30, "2026-11-02T09:00:00Z")
        .await;
    let profile: uuid::Uuid = sqlx::query_scalar("SELECT id FROM email_server_profiles")
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    let profile_label = format!("profile=\"{profile}\"");
    let imported = |text: &str| {
        series(
            text,
            "exsync_profile_items_total",
            &[
                &profile_label,
                "workload=\"incoming\"",
                "result=\"imported\"",
            ],
        )
    };
    // Slow answers, so the import takes a while to watch.
    world.faults(serde_json::json!({"latency_ms": 120})).await;
    let logs = CapturedLogs::default();
    let dispatch = logs.dispatch("exsync=info");
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let engine = world.engine.clone();
    let pass = tokio::spawn(async move {
        engine
            .run_mailbox_now("bob@contoso.test", "test")
            .await
            .expect("pass")
            .expect("not leased")
    });
    let mut seen_while_running = Vec::new();
    while !pass.is_finished() {
        seen_while_running.push(imported(&exsync::metrics::metrics().render()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = pass.await.unwrap();
    let after = imported(&exsync::metrics::metrics().render());
    assert_eq!(after, 30.0);
    assert!(
        seen_while_running.iter().any(|v| *v > 0.0 && *v < 30.0),
        "the metrics moved before the import ended: {seen_while_running:?}"
    );
    let progress: Vec<Value> = exsync_lines(&logs)
        .into_iter()
        .filter(|l| l["message"] == "sync progress" && l["folder"] == "inbox")
        .collect();
    assert!(progress.len() >= 3, "one line per page: {}", logs.text());
    let items: Vec<u64> = progress
        .iter()
        .map(|l| l["items"].as_u64().unwrap())
        .collect();
    assert!(items.windows(2).all(|w| w[0] < w[1]), "{items:?}");
    assert_eq!(items.last(), Some(&30));
    for line in &progress {
        assert!(line["rate_per_s"].is_number(), "{line}");
        assert!(line["imported"].is_number(), "{line}");
        assert_eq!(line["pass.id"], summary.pass_id.to_string().as_str());
    }
}

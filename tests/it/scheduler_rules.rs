//! The scheduler's rules: connection limits per profile, several processes on one database,
//! live changes, wake-ups and graceful shutdown — with real passes against the fake Exchange.

use crate::support::world::{fast_settings, World};
use exsync::domain::Workload;
use exsync::sync::PassSummary;
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn org(name: &str, auth: &str, limit: u32, mailboxes: &[String]) -> String {
    let mut text = format!(
        r#"
[[profile]]
name = "{name}"
server_type = "exchange_server"
ews_url = "{{ews}}"
auth = "{auth}"
max_concurrent_connections = {limit}
"#
    );
    if auth == "profile_credentials" {
        text.push_str(
            "username = \"svc\"\npassword = \"Svc-Passw0rd!\"\nuse_impersonation = true\n",
        );
    }
    for address in mailboxes {
        let user = address.split('@').next().unwrap();
        text.push_str(&format!(
            "\n[[mailbox]]\naddress = \"{address}\"\nprofile = \"{name}\"\napproval = \"approved\"\n"
        ));
        if auth == "mailbox_credentials" {
            text.push_str(&format!(
                "allow_credentials_for_email_processing = true\nusername = \"{user}\"\npassword = \"{user}-Pw1!\"\n"
            ));
        }
    }
    text
}

async fn populate(world: &World, domain: &str, count: usize, messages: u32) -> Vec<String> {
    let addresses: Vec<String> = (0..count).map(|i| format!("user{i}@{domain}")).collect();
    for address in &addresses {
        let user = address.split('@').next().unwrap();
        world.mailbox(address, user, &format!("{user}-Pw1!")).await;
        world
            .deliver(address, messages, "2026-06-01T00:00:00Z")
            .await;
    }
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    world
        .fake_post(
            "/_fake/accounts",
            json!({"username": "svc", "password": "Svc-Passw0rd!"}),
        )
        .await;
    world.rights("svc", &refs, &[]).await;
    addresses
}

/// Run apps until `done` says so (or fail after a generous timeout); returns the passes seen.
async fn run_until(
    apps: Vec<exsync::app::App>,
    mut done: impl FnMut(&[PassSummary]) -> bool,
) -> Vec<PassSummary> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let mut handles = Vec::new();
    for app in apps {
        let app = app.with_events(tx.clone());
        handles.push(tokio::spawn(app.run(shutdown.clone())));
    }
    let mut seen = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        if done(&seen) {
            return;
        }
        while let Some(summary) = rx.recv().await {
            seen.push(summary);
            if done(&seen) {
                return;
            }
        }
    })
    .await;
    shutdown.cancel();
    for handle in handles {
        handle.await.expect("join").expect("run");
    }
    assert!(waited.is_ok(), "timed out; passes seen: {}", seen.len());
    seen
}

fn imported(passes: &[PassSummary]) -> usize {
    passes
        .iter()
        .filter_map(|p| p.report(Workload::Incoming))
        .map(|r| r.summary.processed)
        .sum()
}

#[sqlx::test]
async fn a_profile_never_has_more_concurrent_requests_than_its_limit_and_uses_all_of_it(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    let addresses = populate(&world, "limit.test", 12, 5).await;
    world
        .apply(&org("Limited", "profile_credentials", 3, &addresses))
        .await;
    world.faults(json!({"latency_ms": 40})).await;
    let passes = run_until(vec![world.app(fast_settings())], |seen| {
        imported(seen) >= 60
    })
    .await;
    assert_eq!(imported(&passes), 60);
    let stats = world.stats().await;
    let peak = stats["accounts"]["svc"]["peak_concurrent_requests"]
        .as_u64()
        .unwrap();
    assert!(peak <= 3, "peak {peak} above the limit of 3");
    assert_eq!(peak, 3, "under a backlog the whole limit is used");
}

#[sqlx::test]
async fn mailboxes_with_their_own_credentials_count_against_the_profile_limit(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses = populate(&world, "own.test", 8, 3).await;
    world
        .apply(&org("Own", "mailbox_credentials", 2, &addresses))
        .await;
    world.faults(json!({"latency_ms": 40})).await;
    let passes = run_until(vec![world.app(fast_settings())], |seen| {
        imported(seen) >= 24
    })
    .await;
    assert_eq!(imported(&passes), 24);
    let peak = world.stats().await["peak_concurrent_requests"]
        .as_u64()
        .unwrap();
    assert!(peak <= 2, "peak {peak} above the profile's limit of 2");
}

#[sqlx::test]
async fn two_processes_on_one_database_never_sync_the_same_mailbox_twice(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses = populate(&world, "two.test", 10, 8).await;
    world
        .apply(&org("Shared", "profile_credentials", 10, &addresses))
        .await;
    world.faults(json!({"latency_ms": 10})).await;
    let mut first = fast_settings();
    first.scheduler.instance_id = Some("one".into());
    let mut second = fast_settings();
    second.scheduler.instance_id = Some("two".into());
    let passes = run_until(vec![world.app(first), world.app(second)], |seen| {
        imported(seen) >= 80
    })
    .await;
    // Had two passes imported one mailbox at once, the sum would exceed the 80 messages.
    assert_eq!(imported(&passes), 80);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 80);
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE lease_owner IS NOT NULL")
            .await,
        0,
        "leases released at shutdown"
    );
}

#[sqlx::test]
async fn two_processes_together_never_exceed_the_profile_limit(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses = populate(&world, "pair.test", 10, 4).await;
    world
        .apply(&org("Pair", "profile_credentials", 2, &addresses))
        .await;
    world.faults(json!({"latency_ms": 30})).await;
    let mut first = fast_settings();
    first.scheduler.instance_id = Some("one".into());
    let mut second = fast_settings();
    second.scheduler.instance_id = Some("two".into());
    let passes = run_until(vec![world.app(first), world.app(second)], |seen| {
        imported(seen) >= 40
    })
    .await;
    assert_eq!(imported(&passes), 40);
    let peak = world.stats().await["accounts"]["svc"]["peak_concurrent_requests"]
        .as_u64()
        .unwrap();
    assert!(
        peak <= 2,
        "two processes together made {peak} concurrent requests; limit 2"
    );
}

#[sqlx::test]
async fn a_changed_limit_takes_effect_without_restart(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses = populate(&world, "live.test", 2, 1).await;
    world
        .apply(&org("LiveLimit", "profile_credentials", 2, &addresses))
        .await;
    let app = world.app(fast_settings());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let gauge =
        |limit: u32| format!("exsync_profile_connections_limit{{profile=\"LiveLimit\"}} {limit}");
    let wait_for = |text: String| async move {
        tokio::time::timeout(Duration::from_secs(20), async {
            while !exsync::metrics::metrics().render().contains(&text) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok()
    };
    assert!(wait_for(gauge(2)).await);
    world
        .apply(&org("LiveLimit", "profile_credentials", 7, &addresses))
        .await;
    assert!(wait_for(gauge(7)).await, "new limit not picked up");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[sqlx::test]
async fn newly_queued_mail_wakes_the_scheduler_at_once(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses = populate(&world, "wake.test", 2, 0).await;
    world
        .apply(&org("Wake", "profile_credentials", 2, &addresses))
        .await;
    let mut settings = fast_settings();
    // Only the NOTIFY can bring the email out within the test's time.
    settings.scheduler.tick_interval = Duration::from_secs(600);
    settings.scheduler.outgoing_interval = Duration::from_secs(3600);
    let store = world.store.clone();
    let from = addresses[0].clone();
    let to = addresses[1].clone();
    let mut queued = false;
    let passes = run_until(vec![world.app(settings)], move |seen| {
        if !queued && seen.len() >= 2 {
            queued = true;
            let store = store.clone();
            let (from, to) = (from.clone(), to.clone());
            tokio::spawn(async move {
                exsync::store::outgoing::enqueue(&store, &from, &[to], &[], "wake", "up")
                    .await
                    .unwrap();
            });
        }
        seen.iter()
            .filter_map(|p| p.report(Workload::Outgoing))
            .any(|r| r.summary.processed == 1)
    })
    .await;
    assert!(!passes.is_empty());
    assert_eq!(
        world
            .count("SELECT count(*) FROM outgoing_emails WHERE status = 'sent'")
            .await,
        1
    );
}

#[sqlx::test]
async fn shutdown_lets_passes_finish_and_releases_every_lease(pool: PgPool) {
    let world = World::new(pool).await;
    let addresses = populate(&world, "drain.test", 6, 20).await;
    world
        .apply(&org("Drain", "profile_credentials", 6, &addresses))
        .await;
    world.faults(json!({"latency_ms": 30})).await;
    let app = world.app(fast_settings());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("shutdown within the deadline")
        .unwrap()
        .unwrap();
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE lease_owner IS NOT NULL")
            .await,
        0
    );
    // Whatever was imported was committed with its sync state: a later run goes on from there
    // and every message ends up stored exactly once.
    let before = world.count("SELECT count(*) FROM email_copies").await as usize;
    let passes = run_until(vec![world.app(fast_settings())], |seen| {
        before + imported(seen) >= 120
    })
    .await;
    assert_eq!(before + imported(&passes), 120);
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 120);
}

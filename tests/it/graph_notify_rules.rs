//! Microsoft Graph change notifications, end to end over HTTP: the daemon (its own HTTP server
//! serving `/graph/notifications` and `/graph/lifecycle`) against the fake Graph, which
//! validates the endpoint, delivers notifications and sends lifecycle events. Polling is slowed
//! to once an hour, so only a notification brings mail in quickly. No timed assertions: every
//! wait is for a condition, with a generous bound.

use crate::support::daemon::{wait_for, Instance};
use crate::support::graph::{self, apply_graph, graph_org, ALICE};
use crate::support::world::{fast_settings, World};
use exsync::config::Settings;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

/// A loopback port free right now (the daemon's HTTP server binds it).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Settings where only a notification brings mail in quickly: polls every hour, the HTTP
/// server on `port`, notifications on with `public_url` (a plain-HTTP stand-in for the
/// operator's HTTPS reverse proxy; the fake is told to accept it).
fn notify_settings(port: u16, public_url: &str) -> Settings {
    let mut s = fast_settings();
    s.server.listen = Some(format!("127.0.0.1:{port}").parse().expect("address"));
    s.graph_notifications.enabled = true;
    s.graph_notifications.public_url = Some(public_url.to_owned());
    s.graph_notifications.plan_interval = Duration::from_millis(100);
    s.graph_notifications.retry_initial = Duration::from_millis(200);
    s.graph_notifications.retry_max = Duration::from_secs(1);
    s.scheduler.incoming_interval = Duration::from_secs(3600);
    s.scheduler.incoming_min_interval = Duration::from_secs(3600);
    s.scheduler.incoming_max_interval = Duration::from_secs(3600);
    s.scheduler.outgoing_interval = Duration::from_secs(3600);
    s.scheduler.act_min_interval = Duration::from_secs(3600);
    s.scheduler.act_max_interval = Duration::from_secs(3600);
    s
}

/// A world whose fake serves Graph (accepting http notification URLs), alice and the app
/// registered and the profile applied.
async fn graph_world(pool: PgPool, settings: Settings) -> World {
    let world = graph::graph_world(pool, settings).await;
    world
        .fake_put(
            "/_fake/graph/faults",
            json!({"allow_http_notification_urls": true}),
        )
        .await;
    apply_graph(&world, &graph_org("max_concurrent_connections = 4", "none")).await;
    world
}

/// The fake's live subscriptions.
async fn subscriptions(world: &World) -> Vec<Value> {
    world.fake_get("/_fake/graph/subscriptions").await["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn emails(world: &World) -> i64 {
    world.count("SELECT count(*) FROM emails").await
}

async fn deliver_now(world: &World, count: u32) {
    world
        .fake_post(
            &format!("/_fake/mailboxes/{ALICE}/items"),
            json!({"folder": "inbox", "count": count}),
        )
        .await;
}

/// The mailbox's Inbox subscription is active in the database and at the fake, and its first
/// pass is done; returns the subscription's id.
async fn subscribed_after_first_pass(world: &World) -> String {
    wait_for("the Inbox subscription is active after the first pass", || async {
        world
            .count("SELECT count(*) FROM graph_subscriptions WHERE state = 'active'")
            .await
            == 1
            && world
                .count("SELECT count(*) FROM mailboxes WHERE last_successful_sync IS NOT NULL AND lease_owner IS NULL")
                .await
                == 1
    })
    .await;
    let id: String = sqlx::query_scalar(
        "SELECT subscription_id FROM graph_subscriptions WHERE state = 'active'",
    )
    .fetch_one(world.store.pool())
    .await
    .expect("subscription id");
    let at_fake = subscriptions(world).await;
    assert_eq!(at_fake.len(), 1, "{at_fake:?}");
    assert_eq!(at_fake[0]["id"], id.as_str());
    id
}

async fn lifecycle(world: &World, id: &str, event: &str) -> Value {
    world
        .fake_post(
            &format!("/_fake/graph/subscriptions/{id}/lifecycle"),
            json!({ "event": event }),
        )
        .await
}

async fn explain(world: &World) -> exsync::streaming::explain::NotificationExplanation {
    exsync::operator::explain::explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        ALICE,
        None,
    )
    .await
    .expect("explain")
    .notifications
    .expect("a notification answer")
}

/// Seconds until the mailbox's incoming email is due.
async fn seconds_until_due(world: &World) -> i64 {
    world
        .count("SELECT extract(epoch FROM incoming_next_due_at - now())::bigint FROM mailboxes")
        .await
}

#[sqlx::test]
async fn the_handshake_creates_a_subscription_and_new_mail_is_imported_long_before_the_poll_interval(
    pool: PgPool,
) {
    let port = free_port();
    let settings = notify_settings(port, &format!("http://127.0.0.1:{port}"));
    let world = graph_world(pool, settings.clone()).await;
    let instance = Instance::start(&world, settings);
    subscribed_after_first_pass(&world).await;
    let sub = &subscriptions(&world).await[0];
    assert_eq!(sub["mailbox"], ALICE);
    assert_eq!(
        sub["resource"],
        "users/alice@contoso.test/mailFolders('inbox')/messages"
    );
    assert_eq!(
        sub["notification_url"],
        format!("http://127.0.0.1:{port}/graph/notifications").as_str()
    );
    assert_eq!(
        sub["lifecycle_notification_url"],
        format!("http://127.0.0.1:{port}/graph/lifecycle").as_str()
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM graph_subscriptions WHERE resource_kind = 'events'")
            .await,
        0,
        "ACT is off: no calendar subscription"
    );
    let hash_len: i64 = world
        .count("SELECT length(client_state_sha256)::bigint FROM graph_subscriptions")
        .await;
    assert_eq!(hash_len, 32, "only a SHA-256 of the clientState is kept");
    assert!(
        seconds_until_due(&world).await > 600,
        "the next poll is an hour away"
    );
    let explained = explain(&world).await;
    assert_eq!(explained.mode, "notified", "{}", explained.why);

    deliver_now(&world, 2).await;
    wait_for("the new mail is in the database", || async {
        emails(&world).await == 2
    })
    .await;
    assert!(
        explain(&world).await.last_notification_at.is_some(),
        "the notification is recorded"
    );
    instance.stop().await;
}

#[sqlx::test]
async fn a_notification_with_a_wrong_client_state_or_an_unknown_subscription_is_discarded(
    pool: PgPool,
) {
    let port = free_port();
    let settings = notify_settings(port, &format!("http://127.0.0.1:{port}"));
    let world = graph_world(pool, settings.clone()).await;
    let instance = Instance::start(&world, settings);
    let id = subscribed_after_first_pass(&world).await;
    let rejected = |reason: &'static str| {
        let text = exsync::metrics::metrics().render();
        text.lines()
            .find(|l| {
                l.starts_with("exsync_graph_notifications_rejected_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before_state = rejected("client_state");
    let before_unknown = rejected("unknown_subscription");
    let http = reqwest::Client::new();
    let forged = |subscription: &str, state: Option<&str>| {
        json!({"value": [{
            "subscriptionId": subscription,
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            "changeType": "created",
            "resource": "Users/alice@contoso.test/Messages/AAkALgAAforged",
            "clientState": state,
            "tenantId": "f4ce0000-0000-4000-8000-00000000fa4e",
        }]})
    };
    for body in [
        forged(&id, Some("not-the-secret")),
        forged(&id, None),
        forged("00000000-0000-0000-0000-000000000000", Some("whatever")),
    ] {
        let answer = http
            .post(format!("http://127.0.0.1:{port}/graph/notifications"))
            .json(&body)
            .send()
            .await
            .expect("reach the endpoint");
        assert_eq!(
            answer.status().as_u16(),
            202,
            "answered at once, checked later"
        );
    }
    wait_for(
        "the forged notifications are counted as rejected",
        || async {
            rejected("client_state") >= before_state + 2.0
                && rejected("unknown_subscription") >= before_unknown + 1.0
        },
    )
    .await;
    assert!(
        seconds_until_due(&world).await > 600,
        "a discarded notification makes nothing due"
    );
    assert!(explain(&world).await.last_notification_at.is_none());
    let oversized = http
        .post(format!("http://127.0.0.1:{port}/graph/notifications"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .expect("reach the endpoint");
    assert_eq!(oversized.status().as_u16(), 413, "bodies are size-bounded");
    instance.stop().await;
}

#[sqlx::test]
async fn a_subscription_is_renewed_by_patch_before_it_expires(pool: PgPool) {
    let port = free_port();
    let mut settings = notify_settings(port, &format!("http://127.0.0.1:{port}"));
    // Renewed once fewer than 115 s of its 2 minutes are left: about 5 s after each renewal.
    settings.graph_notifications.lifetime = Duration::from_secs(120);
    settings.graph_notifications.renew_before = Duration::from_secs(115);
    let world = graph_world(pool, settings.clone()).await;
    let instance = Instance::start(&world, settings);
    let id = subscribed_after_first_pass(&world).await;
    let first_expiry = subscriptions(&world).await[0]["expiration_date_time"].clone();
    wait_for("the fake saw a renewal", || async {
        subscriptions(&world)
            .await
            .first()
            .is_some_and(|s| s["counters"]["renewals"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    let after = &subscriptions(&world).await[0];
    assert_eq!(after["id"], id.as_str(), "renewed, not recreated");
    assert_ne!(after["expiration_date_time"], first_expiry);
    wait_for("the renewal is recorded", || async {
        world
            .count("SELECT renewals FROM graph_subscriptions WHERE state = 'active'")
            .await
            >= 1
    })
    .await;
    let stats = world.fake_get("/_fake/graph/stats").await;
    assert!(
        stats["operations"]["subscription.update"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{stats}"
    );
    instance.stop().await;
}

#[sqlx::test]
async fn reauthorization_required_renews_the_subscription(pool: PgPool) {
    let port = free_port();
    let settings = notify_settings(port, &format!("http://127.0.0.1:{port}"));
    let world = graph_world(pool, settings.clone()).await;
    let instance = Instance::start(&world, settings);
    let id = subscribed_after_first_pass(&world).await;
    let sent = lifecycle(&world, &id, "reauthorizationRequired").await;
    assert_eq!(sent["delivered"], true, "{sent}");
    wait_for("the subscription was renewed", || async {
        subscriptions(&world)
            .await
            .first()
            .is_some_and(|s| s["id"] == id.as_str() && s["counters"]["renewals"] == 1)
    })
    .await;
    instance.stop().await;
}

#[sqlx::test]
async fn subscription_removed_creates_the_subscription_again(pool: PgPool) {
    let port = free_port();
    let settings = notify_settings(port, &format!("http://127.0.0.1:{port}"));
    let world = graph_world(pool, settings.clone()).await;
    let instance = Instance::start(&world, settings);
    let id = subscribed_after_first_pass(&world).await;
    let sent = lifecycle(&world, &id, "subscriptionRemoved").await;
    assert_eq!(sent["removed"], true, "{sent}");
    wait_for("a new subscription replaces the removed one", || async {
        let subs = subscriptions(&world).await;
        subs.len() == 1 && subs[0]["id"] != id.as_str()
    })
    .await;
    let new_id = subscriptions(&world).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for("the database holds the new subscription", || async {
        world
            .count(&format!(
                "SELECT count(*) FROM graph_subscriptions WHERE state = 'active' AND subscription_id = '{new_id}'"
            ))
            .await
            == 1
    })
    .await;
    // Notifications of the new subscription are verified and acted on.
    deliver_now(&world, 1).await;
    wait_for("mail after the recreation arrives", || async {
        emails(&world).await == 1
    })
    .await;
    instance.stop().await;
}

#[sqlx::test]
async fn missed_notifications_make_the_mailbox_due(pool: PgPool) {
    let port = free_port();
    let settings = notify_settings(port, &format!("http://127.0.0.1:{port}"));
    let world = graph_world(pool, settings.clone()).await;
    let instance = Instance::start(&world, settings);
    let id = subscribed_after_first_pass(&world).await;
    world
        .fake_put("/_fake/graph/faults", json!({"drop_notifications": true}))
        .await;
    deliver_now(&world, 3).await;
    wait_for("the fake dropped the change notifications", || async {
        subscriptions(&world)
            .await
            .first()
            .is_some_and(|s| s["counters"]["dropped"].as_u64().unwrap_or(0) >= 3)
    })
    .await;
    assert_eq!(emails(&world).await, 0, "nothing told exsync yet");
    assert!(seconds_until_due(&world).await > 600);
    let sent = lifecycle(&world, &id, "missed").await;
    assert_eq!(sent["delivered"], true, "{sent}");
    wait_for("the missed mail is imported by a delta pass", || async {
        emails(&world).await == 3
    })
    .await;
    instance.stop().await;
}

#[sqlx::test]
async fn a_failed_handshake_leaves_no_subscription_raises_the_alert_and_polling_continues(
    pool: PgPool,
) {
    let port = free_port();
    // The proxy forwards nothing under this prefix: Graph's validation request gets a 404.
    let mut settings = notify_settings(port, &format!("http://127.0.0.1:{port}/not-forwarded"));
    settings.scheduler.incoming_interval = Duration::from_secs(60);
    settings.scheduler.incoming_min_interval = Duration::from_secs(60);
    settings.scheduler.incoming_max_interval = Duration::from_secs(60);
    let world = graph_world(pool, settings.clone()).await;
    let instance = Instance::start(&world, settings);
    wait_for(
        "the mailbox alert about notifications is raised",
        || async {
            !world
                .open_alerts("graph.notifications_unavailable")
                .await
                .is_empty()
        },
    )
    .await;
    assert!(
        subscriptions(&world).await.is_empty(),
        "no subscription was created"
    );
    let refused = world.fake_get("/_fake/graph/subscriptions").await;
    assert!(
        refused["validations_failed"].as_u64().unwrap_or(0) >= 1,
        "{refused}"
    );
    let message: String = sqlx::query_scalar(
        "SELECT message FROM alerts WHERE code = 'graph.notifications_unavailable' AND resolved_at IS NULL",
    )
    .fetch_one(world.store.pool())
    .await
    .expect("alert");
    assert!(message.contains("validation"), "{message}");
    assert!(message.contains("keeps polling"), "{message}");
    let explained = explain(&world).await;
    assert_eq!(explained.mode, "polling", "{}", explained.why);
    // The next poll stays on the profile's cadence (its 1-minute minimum here) …
    wait_for("the first pass is done", || async {
        world
            .count("SELECT count(*) FROM mailboxes WHERE last_successful_sync IS NOT NULL AND lease_owner IS NULL")
            .await
            == 1
    })
    .await;
    let due_in = seconds_until_due(&world).await;
    assert!(
        due_in <= 61,
        "polled at the profile's interval, due in {due_in} s"
    );
    // … and when it comes round (the clock moved on), delta brings the mail in.
    deliver_now(&world, 2).await;
    sqlx::query("UPDATE mailboxes SET incoming_next_due_at = now()")
        .execute(world.store.pool())
        .await
        .expect("time passes");
    wait_for("polling still brings the mail in", || async {
        emails(&world).await == 2
    })
    .await;
    instance.stop().await;
}

#[sqlx::test]
async fn two_instances_keep_one_subscription_per_mailbox_and_renew_it_one_at_a_time(pool: PgPool) {
    let ports = [free_port(), free_port()];
    let settings = |port: u16| {
        let mut s = notify_settings(port, &format!("http://127.0.0.1:{port}"));
        s.graph_notifications.lifetime = Duration::from_secs(120);
        s.graph_notifications.renew_before = Duration::from_secs(115);
        s.scheduler.instance_id = Some(format!("instance-{port}"));
        s
    };
    let world = graph_world(pool, settings(ports[0])).await;
    let first = Instance::start(&world, settings(ports[0]));
    let second = Instance::start(&world, settings(ports[1]));
    let id = subscribed_after_first_pass(&world).await;
    wait_for("several renewals went by", || async {
        subscriptions(&world)
            .await
            .first()
            .is_some_and(|s| s["counters"]["renewals"].as_u64().unwrap_or(0) >= 2)
    })
    .await;
    let subs = subscriptions(&world).await;
    assert_eq!(subs.len(), 1, "never a second subscription: {subs:?}");
    assert_eq!(subs[0]["id"], id.as_str(), "renewed, never recreated");
    assert_eq!(
        world
            .count("SELECT count(*) FROM graph_subscriptions")
            .await,
        1
    );
    first.stop().await;
    second.stop().await;
}

#[sqlx::test]
async fn the_calendar_is_subscribed_when_appointments_sync_and_a_mailbox_leaving_sync_is_unsubscribed(
    pool: PgPool,
) {
    let port = free_port();
    let settings = notify_settings(port, &format!("http://127.0.0.1:{port}"));
    let world = graph_world(pool, settings.clone()).await;
    let with_act = graph_org("max_concurrent_connections = 4", "server_side_sync");
    apply_graph(&world, &with_act).await;
    let instance = Instance::start(&world, settings);
    wait_for("Inbox and calendar subscriptions are active", || async {
        world
            .count("SELECT count(*) FROM graph_subscriptions WHERE state = 'active'")
            .await
            == 2
    })
    .await;
    let mut resources: Vec<String> = subscriptions(&world)
        .await
        .iter()
        .map(|s| s["resource"].as_str().unwrap_or("").to_owned())
        .collect();
    resources.sort();
    assert_eq!(
        resources,
        [
            "users/alice@contoso.test/events",
            "users/alice@contoso.test/mailFolders('inbox')/messages"
        ]
    );
    let explained = explain(&world).await;
    assert!(
        explained.why.contains("Inbox and calendar"),
        "{}",
        explained.why
    );

    apply_graph(
        &world,
        &with_act.replace("approval = \"approved\"", "approval = \"rejected\""),
    )
    .await;
    wait_for(
        "both subscriptions are deleted at Graph and forgotten",
        || async {
            subscriptions(&world).await.is_empty()
                && world
                    .count("SELECT count(*) FROM graph_subscriptions")
                    .await
                    == 0
        },
    )
    .await;
    let stats = world.fake_get("/_fake/graph/stats").await;
    assert_eq!(stats["operations"]["subscription.delete"], 2, "{stats}");
    assert_eq!(explain(&world).await.mode, "polling");
    instance.stop().await;
}

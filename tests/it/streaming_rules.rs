//! Streaming notifications, end to end over HTTP with the fake Exchange and real Postgres: new
//! mail is in the database without waiting for the poll interval; a lost connection, an
//! expired subscription and a server that refuses subscriptions each recover; the connection
//! limit holds with streaming connections and passes together; two instances never
//! double-subscribe; nothing is lost or duplicated when notifications are dropped or repeated.
//! No timed assertions: every wait is for a condition, with a generous bound.

use crate::support::daemon::{wait_for, Instance};
use crate::support::world::{fast_settings, World};
use exsync::config::Settings;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

/// Settings where only streaming can bring mail in quickly: polls every hour.
fn streaming_settings() -> Settings {
    let mut s = fast_settings();
    s.streaming.enabled = true;
    s.streaming.plan_interval = Duration::from_millis(100);
    s.streaming.idle_timeout = Duration::from_secs(20);
    s.streaming.reconnect_initial = Duration::from_millis(50);
    s.streaming.reconnect_max = Duration::from_millis(500);
    s.streaming.safety_poll_interval = Duration::from_secs(3600);
    s.streaming.connection_timeout = Duration::from_secs(60);
    s.streaming.max_failures = 2;
    s.streaming.fallback_retry = Duration::from_millis(500);
    s.scheduler.incoming_interval = Duration::from_secs(3600);
    s.scheduler.incoming_min_interval = Duration::from_secs(3600);
    s.scheduler.incoming_max_interval = Duration::from_secs(3600);
    s.scheduler.outgoing_interval = Duration::from_secs(3600);
    s.scheduler.act_min_interval = Duration::from_secs(3600);
    s.scheduler.act_max_interval = Duration::from_secs(3600);
    s
}

/// A profile (`auth`) with `limit` connections over `addresses`, and the fake's accounts.
async fn organisation(world: &World, auth: &str, limit: u32, addresses: &[&str]) {
    let mut text = format!(
        r#"
[[profile]]
name = "org"
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
    for address in addresses {
        let user = address.split('@').next().unwrap();
        world.mailbox(address, user, &format!("{user}-Pw1!")).await;
        text.push_str(&format!(
            "\n[[mailbox]]\naddress = \"{address}\"\nprofile = \"org\"\napproval = \"approved\"\n"
        ));
        if auth == "mailbox_credentials" {
            text.push_str(&format!(
                "allow_credentials_for_email_processing = true\nusername = \"{user}\"\npassword = \"{user}-Pw1!\"\n"
            ));
        }
    }
    if auth == "profile_credentials" {
        world
            .fake_post(
                "/_fake/accounts",
                json!({"username": "svc", "password": "Svc-Passw0rd!"}),
            )
            .await;
        world.rights("svc", addresses, &[]).await;
    }
    world.apply(&text).await;
    // One scaled minute is 2 s: connections are closed (and reopened) every 2 s.
    world
        .fake_put(
            "/_fake/streaming",
            json!({"minute_ms": 2000, "keep_alive_ms": 300}),
        )
        .await;
}

async fn streaming_stats(world: &World) -> Value {
    world.fake_get("/_fake/streaming").await["stats"].clone()
}

async fn emails(world: &World) -> i64 {
    world.count("SELECT count(*) FROM emails").await
}

async fn deliver_now(world: &World, address: &str, count: u32) {
    world
        .fake_post(
            &format!("/_fake/mailboxes/{address}/items"),
            json!({"folder": "inbox", "count": count}),
        )
        .await;
}

/// Every mailbox streams and has had its first pass.
async fn all_streaming(world: &World, n: i64) {
    wait_for("every mailbox streams after its first pass", || async {
        world
            .count("SELECT count(*) FROM streaming_mailboxes WHERE state = 'streaming'")
            .await
            == n
            && world
                .count("SELECT count(*) FROM mailboxes WHERE last_successful_sync IS NOT NULL AND lease_owner IS NULL")
                .await
                == n
    })
    .await;
}

#[sqlx::test]
async fn new_mail_is_in_the_database_without_waiting_for_the_poll_interval(pool: PgPool) {
    let world = World::with_settings(pool, streaming_settings()).await;
    let addresses = ["ann@stream.test", "ben@stream.test"];
    organisation(&world, "profile_credentials", 10, &addresses).await;
    let instance = Instance::start(&world, streaming_settings());
    all_streaming(&world, 2).await;
    assert_eq!(emails(&world).await, 0);

    deliver_now(&world, "ann@stream.test", 1).await;
    wait_for("the new mail is in the database", || async {
        emails(&world).await == 1
    })
    .await;

    // The connection is closed at ConnectionTimeout and reopened (keeping the subscriptions
    // alive); mail still arrives at once afterwards.
    let opened = streaming_stats(&world).await["connections_opened"]
        .as_u64()
        .unwrap();
    wait_for("the connection was reopened after Closed", || async {
        streaming_stats(&world).await["connections_opened"]
            .as_u64()
            .unwrap()
            > opened
    })
    .await;
    deliver_now(&world, "ben@stream.test", 2).await;
    wait_for("mail after a reopened connection arrives", || async {
        emails(&world).await == 3
    })
    .await;

    let stats = streaming_stats(&world).await;
    assert_eq!(stats["subscriptions_by_mailbox"]["ann@stream.test"], 1);
    assert_eq!(stats["subscriptions_by_mailbox"]["ben@stream.test"], 1);
    assert_eq!(
        stats["peak_open_connections"], 1,
        "both mailboxes share one connection (one impersonation group)"
    );
    assert_eq!(stats["requests_without_anchor"], 0);
    let explained = exsync::operator::explain::explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        "ann@stream.test",
        None,
    )
    .await
    .unwrap();
    let notifications = explained.notifications.unwrap();
    assert_eq!(notifications.mode, "streaming", "{}", notifications.why);
    assert!(notifications.last_notification_at.is_some());
    instance.stop().await;
}

#[sqlx::test]
async fn a_lost_connection_an_expired_subscription_and_a_refusing_server_each_recover(
    pool: PgPool,
) {
    let world = World::with_settings(pool, streaming_settings()).await;
    organisation(&world, "profile_credentials", 10, &["cal@stream.test"]).await;
    let instance = Instance::start(&world, streaming_settings());
    all_streaming(&world, 1).await;

    // A dropped connection: reconnected with backoff, mail arrives.
    let opened = streaming_stats(&world).await["connections_opened"]
        .as_u64()
        .unwrap();
    world.fake_post("/_fake/streaming/drop", json!({})).await;
    wait_for("reconnected after the drop", || async {
        streaming_stats(&world).await["connections_opened"]
            .as_u64()
            .unwrap()
            > opened
    })
    .await;
    deliver_now(&world, "cal@stream.test", 1).await;
    wait_for("mail after a dropped connection", || async {
        emails(&world).await == 1
    })
    .await;

    // An expired subscription (ErrorSubscriptionNotFound): created again, mail arrives.
    let subscribed = streaming_stats(&world).await["subscribed"]
        .as_u64()
        .unwrap();
    world
        .fake_post(
            "/_fake/streaming/expire",
            json!({"mailbox": "cal@stream.test"}),
        )
        .await;
    wait_for("subscribed again after expiry", || async {
        streaming_stats(&world).await["subscribed"]
            .as_u64()
            .unwrap()
            > subscribed
    })
    .await;
    deliver_now(&world, "cal@stream.test", 1).await;
    wait_for("mail after an expired subscription", || async {
        emails(&world).await == 2
    })
    .await;

    // A server that refuses subscriptions: the mailbox falls back to polling with an
    // information alert, and streams again once the server accepts them.
    world
        .fake_put(
            "/_fake/streaming",
            json!({"refuse_subscribe": "ErrorSubscriptionAccessDenied"}),
        )
        .await;
    world
        .fake_post(
            "/_fake/streaming/expire",
            json!({"mailbox": "cal@stream.test"}),
        )
        .await;
    wait_for("the mailbox fell back to polling", || async {
        world
            .count("SELECT count(*) FROM streaming_mailboxes WHERE state = 'polling' AND fallback_until IS NOT NULL")
            .await
            == 1
    })
    .await;
    assert!(
        world
            .count("SELECT count(*) FROM alerts WHERE code = 'streaming.fallback_to_polling' AND level = 'information'")
            .await
            >= 1
    );
    let explained = exsync::operator::explain::explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        "cal@stream.test",
        None,
    )
    .await
    .unwrap();
    let n = explained.notifications.unwrap();
    assert_eq!(n.mode, "polling");
    assert!(n.why.contains("failed"), "{}", n.why);
    world
        .fake_put("/_fake/streaming", json!({"refuse_subscribe": null}))
        .await;
    wait_for("streaming again after the fallback", || async {
        world
            .count("SELECT count(*) FROM streaming_mailboxes WHERE state = 'streaming'")
            .await
            == 1
    })
    .await;
    deliver_now(&world, "cal@stream.test", 1).await;
    wait_for("mail once subscriptions are accepted again", || async {
        emails(&world).await == 3
    })
    .await;
    instance.stop().await;
}

#[sqlx::test]
async fn the_limit_holds_with_streaming_connections_and_passes_together(pool: PgPool) {
    let mut settings = streaming_settings();
    // Passes run all the time here, so they compete with streaming for the connections.
    settings.scheduler.incoming_interval = Duration::from_secs(1);
    settings.scheduler.incoming_min_interval = Duration::from_secs(1);
    settings.scheduler.incoming_max_interval = Duration::from_secs(1);
    let world = World::with_settings(pool, settings.clone()).await;
    let addresses = [
        "d1@stream.test",
        "d2@stream.test",
        "d3@stream.test",
        "d4@stream.test",
    ];
    // Own credentials: one connection per mailbox; a limit of 3 leaves at most 2 for streams.
    organisation(&world, "mailbox_credentials", 3, &addresses).await;
    let instance = Instance::start(&world, settings);
    let samples = std::sync::atomic::AtomicU32::new(0);
    wait_for("two mailboxes stream and two poll for want of connections", || async {
        let in_use = world
            .count(
                "SELECT (SELECT count(*) FROM mailboxes WHERE lease_expires_at >= now())
                      + (SELECT count(*) FROM streaming_groups
                          WHERE connection_open AND lease_expires_at >= now())",
            )
            .await;
        assert!(in_use <= 3, "{in_use} connections in use with a limit of 3");
        samples.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        world
            .count("SELECT count(*) FROM streaming_mailboxes WHERE state = 'streaming'")
            .await
            == 2
            && world
                .count("SELECT count(*) FROM streaming_mailboxes WHERE state = 'polling' AND reason LIKE '%MaximumConcurrentConnections%'")
                .await
                == 2
    })
    .await;
    assert!(samples.load(std::sync::atomic::Ordering::SeqCst) > 0);
    let stats = streaming_stats(&world).await;
    assert!(
        stats["peak_open_connections"].as_u64().unwrap() <= 2,
        "{stats}"
    );
    // Mail still arrives everywhere (streams for two, polls for the others).
    for address in addresses {
        deliver_now(&world, address, 1).await;
    }
    // The polling ones at their next poll: the profile's minimum interval (1 minute) is
    // taken as elapsed, so the wait does not race it.
    sqlx::query(
        "UPDATE mailboxes SET incoming_next_due_at = now()
          WHERE id IN (SELECT mailbox_id FROM streaming_mailboxes WHERE state = 'polling')",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    wait_for("mail of every mailbox is in the database", || async {
        emails(&world).await == 4
    })
    .await;
    instance.stop().await;
}

#[sqlx::test]
async fn two_instances_never_double_subscribe_and_a_stopped_one_is_taken_over(pool: PgPool) {
    let mut settings = streaming_settings();
    settings.streaming.group_size = 2;
    let world = World::with_settings(pool, settings.clone()).await;
    let addresses = [
        "e1@stream.test",
        "e2@stream.test",
        "e3@stream.test",
        "e4@stream.test",
    ];
    organisation(&world, "profile_credentials", 10, &addresses).await;
    let mut first = settings.clone();
    first.scheduler.instance_id = Some("first".into());
    let mut second = settings.clone();
    second.scheduler.instance_id = Some("second".into());
    let a = Instance::start(&world, first);
    let b = Instance::start(&world, second);
    all_streaming(&world, 4).await;
    let stats = streaming_stats(&world).await;
    for address in addresses {
        assert_eq!(
            stats["subscriptions_by_mailbox"][address], 1,
            "{address} is subscribed once: {stats}"
        );
    }
    assert_eq!(stats["subscribed"], 4, "no mailbox was subscribed twice");
    assert_eq!(
        world
            .count("SELECT count(DISTINCT lease_owner) FROM streaming_groups WHERE lease_expires_at >= now()")
            .await
            .min(2),
        world
            .count("SELECT count(DISTINCT lease_owner) FROM streaming_groups WHERE lease_expires_at >= now()")
            .await
    );
    // The first instance stops: the second takes its groups over, adopting the subscriptions.
    a.stop().await;
    wait_for("every group is held by the second instance", || async {
        world
            .count("SELECT count(*) FROM streaming_groups WHERE lease_owner = 'second' AND connection_open")
            .await
            == 2
    })
    .await;
    for address in addresses {
        deliver_now(&world, address, 1).await;
    }
    wait_for(
        "mail of every mailbox arrives through the second instance",
        || async { emails(&world).await == 4 },
    )
    .await;
    let stats = streaming_stats(&world).await;
    for address in addresses {
        assert_eq!(stats["subscriptions_by_mailbox"][address], 1, "{stats}");
    }
    b.stop().await;
}

#[sqlx::test]
async fn a_crashed_instances_group_is_taken_over_only_after_its_lease_expires(pool: PgPool) {
    let world = World::with_settings(pool, streaming_settings()).await;
    organisation(&world, "profile_credentials", 10, &["f1@stream.test"]).await;
    let store = &world.store;
    let profile: uuid::Uuid = sqlx::query_scalar("SELECT id FROM email_server_profiles")
        .fetch_one(store.pool())
        .await
        .unwrap();
    exsync::store::streaming::plan_profile(
        store,
        profile,
        &exsync::store::streaming::GroupMode::Impersonation { size: 200 },
    )
    .await
    .unwrap();
    let held = exsync::store::streaming::claim_groups(store, "crashed", Duration::from_secs(2), 10)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(exsync::store::streaming::reserve_connection(
        store,
        &held[0].key(),
        held[0].lease_token,
        10
    )
    .await
    .unwrap());
    // While the lease lives nobody else gets the group.
    let other =
        exsync::store::streaming::claim_groups(store, "survivor", Duration::from_secs(30), 10)
            .await
            .unwrap();
    assert!(other.is_empty());
    wait_for(
        "the crashed owner's lease expires and the group is taken over",
        || async {
            let taken = exsync::store::streaming::claim_groups(
                store,
                "survivor",
                Duration::from_secs(30),
                10,
            )
            .await
            .unwrap();
            !taken.is_empty()
        },
    )
    .await;
    // The crashed owner's fencing token no longer works.
    assert!(!exsync::store::streaming::renew_group(
        store,
        &held[0].key(),
        held[0].lease_token,
        Duration::from_secs(30)
    )
    .await
    .unwrap());
}

#[sqlx::test]
async fn nothing_is_lost_or_duplicated_when_notifications_are_dropped_or_repeated(pool: PgPool) {
    let mut settings = streaming_settings();
    settings.streaming.safety_poll_interval = Duration::from_secs(2);
    let world = World::with_settings(pool, settings.clone()).await;
    organisation(&world, "profile_credentials", 10, &["g1@stream.test"]).await;
    let instance = Instance::start(&world, settings);
    all_streaming(&world, 1).await;

    // Repeated notifications: each mail once.
    world
        .fake_put("/_fake/streaming", json!({"repeat_events": true}))
        .await;
    deliver_now(&world, "g1@stream.test", 3).await;
    wait_for("three mails", || async { emails(&world).await >= 3 }).await;
    // Dropped notifications: the safety poll brings them, once.
    world
        .fake_put(
            "/_fake/streaming",
            json!({"repeat_events": false, "drop_events": true}),
        )
        .await;
    deliver_now(&world, "g1@stream.test", 2).await;
    wait_for(
        "the safety poll brings the mails whose notifications were lost",
        || async { emails(&world).await >= 5 },
    )
    .await;
    instance.stop().await;
    assert_eq!(emails(&world).await, 5, "every mail exactly once");
    assert_eq!(
        world
            .count("SELECT count(*) FROM (SELECT internet_message_id FROM emails GROUP BY 1 HAVING count(*) > 1) d")
            .await,
        0
    );
}

#[sqlx::test]
async fn profiles_that_cannot_stream_poll_and_explain_says_why(pool: PgPool) {
    let world = World::with_settings(pool, streaming_settings()).await;
    for (address, user) in [
        ("one@poll.test", "one"),
        ("ntlm@poll.test", "ntlm"),
        ("dele@poll.test", "dele"),
        ("off@poll.test", "off"),
    ] {
        world.mailbox(address, user, &format!("{user}-Pw1!")).await;
    }
    let profile = |name: &str, extra: &str, mailbox: &str| {
        format!(
            r#"
[[profile]]
name = "{name}"
server_type = "exchange_server"
ews_url = "{{ews}}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Passw0rd!"
{extra}

[[mailbox]]
address = "{mailbox}"
profile = "{name}"
approval = "approved"
"#
        )
    };
    let text = [
        profile(
            "single",
            "use_impersonation = true\nmax_concurrent_connections = 1",
            "one@poll.test",
        ),
        profile(
            "ntlm",
            "use_impersonation = true\npassword_scheme = \"ntlm\"",
            "ntlm@poll.test",
        ),
        profile("delegation", "use_impersonation = false", "dele@poll.test"),
        profile(
            "off",
            "use_impersonation = true\nstreaming = false",
            "off@poll.test",
        ),
    ]
    .concat();
    world.apply(&text).await;
    let instance = Instance::start(&world, streaming_settings());
    wait_for(
        "the three profiles that cannot stream are planned",
        || async {
            world
                .count("SELECT count(*) FROM streaming_mailboxes WHERE state = 'polling'")
                .await
                == 3
        },
    )
    .await;
    instance.stop().await;
    for (address, expected) in [
        ("one@poll.test", "MaximumConcurrentConnections is 1"),
        ("ntlm@poll.test", "NTLM"),
        ("dele@poll.test", "delegation"),
        ("off@poll.test", "`streaming` key is false"),
    ] {
        let explained = exsync::operator::explain::explain(
            &world.store,
            &world.cipher,
            &world.settings.scheduler,
            address,
            None,
        )
        .await
        .unwrap();
        let n = explained
            .notifications
            .clone()
            .expect("a streaming explanation");
        assert_eq!(n.mode, "polling", "{address}: {}", n.why);
        assert!(n.why.contains(expected), "{address}: {}", n.why);
        assert!(explained.to_string().contains(&n.why));
    }
    assert_eq!(
        world.count("SELECT count(*) FROM streaming_groups").await,
        0,
        "no group, hence no connection, for profiles that poll"
    );
}

#[sqlx::test]
async fn a_busy_server_is_not_asked_again_before_its_back_off_ends(pool: PgPool) {
    let world = World::with_settings(pool, streaming_settings()).await;
    organisation(&world, "profile_credentials", 10, &["h1@stream.test"]).await;
    let instance = Instance::start(&world, streaming_settings());
    all_streaming(&world, 1).await;
    // Hold the mailbox as a pass would, so no pass's request races the Subscribe requests
    // (two requests already on their way can both arrive after a back-off was given).
    sqlx::query(
        "UPDATE mailboxes SET lease_owner = 'test', lease_token = gen_random_uuid(),
                lease_expires_at = now() + interval '1 hour'",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    world.faults(json!({"back_off_ms": 1500})).await;
    world
        .fake_put(
            "/_fake/streaming",
            json!({"refuse_subscribe": "ErrorServerBusy"}),
        )
        .await;
    let stats = world.stats().await;
    let refused_before = stats["operations"]["Subscribe"].as_u64().unwrap_or(0);
    world
        .fake_post(
            "/_fake/streaming/expire",
            json!({"mailbox": "h1@stream.test"}),
        )
        .await;
    // Two refused Subscribe requests: the second came after the first's back-off.
    wait_for("Subscribe was refused busy twice", || async {
        world.stats().await["operations"]["Subscribe"]
            .as_u64()
            .unwrap_or(0)
            >= refused_before + 2
    })
    .await;
    world
        .fake_put("/_fake/streaming", json!({"refuse_subscribe": null}))
        .await;
    wait_for("streaming again once the server accepts", || async {
        streaming_stats(&world).await["subscriptions_by_mailbox"]["h1@stream.test"] == 1
    })
    .await;
    let svc = &world.stats().await["accounts"]["svc"];
    assert_eq!(
        svc["early_requests"], 0,
        "no request of the account arrived before a back-off ended: {svc}"
    );
    instance.stop().await;
}

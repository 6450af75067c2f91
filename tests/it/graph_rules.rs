//! Issue 10: the Microsoft Graph provider against the fake Graph over real HTTP (the same
//! mailboxes as the fake Exchange), by rule.

use crate::support::world::{fast_settings, World};
use exsync::fake_exchange::FakeConfig;
use serde_json::json;
use sqlx::PgPool;

/// An Exchange Online profile on Graph, app `graph-app` with a client secret.
const GRAPH_ORG: &str = r#"
[[profile]]
name = "Contoso Online"
server_type = "exchange_online"
protocol = "graph"
graph_url = "{graph}"
auth = "oauth_client_credentials"
oauth_client_id = "graph-app"
oauth_client_secret = "Graph-Secret-1"
oauth_token_url = "{token}"
max_concurrent_connections = {limit}

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso Online"
approval = "approved"
act = "none"
"#;

/// A world whose fake serves Graph too, with alice and the app registered.
async fn graph_world(pool: PgPool) -> World {
    let world = World::with_fake(
        pool,
        fast_settings(),
        FakeConfig {
            graph: true,
            ..FakeConfig::default()
        },
    )
    .await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world
        .fake_post(
            "/_fake/apps",
            json!({"client_id": "graph-app", "client_secret": "Graph-Secret-1"}),
        )
        .await;
    world
}

/// Apply the Graph profile with `limit` connections (and `extra` apply text appended).
async fn graph_profile(world: &World, limit: u32, extra: &str) {
    let graph = world.fake.graph_url().expect("graph served");
    let text = format!("{GRAPH_ORG}{extra}")
        .replace("{graph}", &graph)
        .replace("{limit}", &limit.to_string());
    world.apply(&text).await;
}

#[sqlx::test]
async fn incoming_mail_comes_in_through_message_delta_once(pool: PgPool) {
    let world = graph_world(pool).await;
    graph_profile(&world, 10, "").await;
    world
        .deliver("alice@contoso.test", 12, "2026-06-01T10:00:00Z")
        .await;
    let pass = world.pass("alice@contoso.test").await;
    let report = pass
        .reports
        .iter()
        .map(|r| format!("{:?}", r.outcome))
        .collect::<Vec<_>>();
    assert_eq!(
        world.count("SELECT count(*) FROM emails").await,
        12,
        "{report:?}"
    );
    // Nothing new: nothing imported again.
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 12);
    world
        .deliver("alice@contoso.test", 3, "2026-06-02T10:00:00Z")
        .await;
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 15);
    let stats = world.fake_get("/_fake/graph/stats").await;
    assert!(
        stats["operations"]["message.delta"].as_u64().unwrap_or(0) >= 3,
        "{stats}"
    );
}

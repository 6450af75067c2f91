//! What the Graph tests share: a world whose fake also serves Microsoft Graph, with alice's
//! mailbox and the application `graph-app` registered, and the Exchange Online profile they
//! apply.

use super::world::World;
use exsync::config::Settings;
use fake_exchange::FakeConfig;
use serde_json::json;
use sqlx::PgPool;

/// The mailbox every Graph test syncs.
pub const ALICE: &str = "alice@contoso.test";

/// The Graph profile "Contoso Online" (app `graph-app` with a client secret, its token from
/// the fake) with `profile_lines` added, and alice on it with ACT `act`. `{graph}` and
/// `{token}` are left for [`apply_graph`] and `World::apply` to fill in.
pub fn graph_org(profile_lines: &str, act: &str) -> String {
    format!(
        r#"
[[profile]]
name = "Contoso Online"
server_type = "exchange_online"
protocol = "graph"
graph_url = "{{graph}}"
auth = "oauth_client_credentials"
oauth_client_id = "graph-app"
oauth_client_secret = "Graph-Secret-1"
oauth_token_url = "{{token}}"
{profile_lines}

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso Online"
approval = "approved"
act = "{act}"
"#
    )
}

/// A world with `settings` whose fake serves Graph too, alice and `graph-app` registered.
pub async fn graph_world(pool: PgPool, settings: Settings) -> World {
    let world = World::with_fake(
        pool,
        settings,
        FakeConfig {
            graph: true,
            ..FakeConfig::default()
        },
    )
    .await;
    world.mailbox(ALICE, "alice", "Alice-Pw1!").await;
    world
        .fake_post(
            "/_fake/apps",
            json!({"client_id": "graph-app", "client_secret": "Graph-Secret-1"}),
        )
        .await;
    world
}

/// Apply `text` with `{graph}` replaced by the fake's Graph URL.
pub async fn apply_graph(world: &World, text: &str) {
    let graph = world.fake.graph_url().expect("graph served");
    world.apply(&text.replace("{graph}", &graph)).await;
}

//! Graph's cap on a filtered message delta round (5,000 messages, GD-MDELTA), by rule: a
//! first round that reaches it is completed by listing the folder, so every message after the
//! Process-From date comes in exactly once, none older, across a crash in the middle of the
//! listing too; afterwards new mail arrives by delta. The cap is lowered to 7 on both sides
//! (the fake's `filtered_round_limit`, exsync's `sync.graph_filtered_delta_limit`).

use crate::support::graph::{apply_graph, graph_org, graph_world, ALICE};
use crate::support::world::{fast_settings, World};
use exsync::providers::graph::backfill::STATE_PREFIX;
use serde_json::json;
use sqlx::PgPool;

const CAP: u32 = 7;

/// A world whose fake serves Graph with the round cap lowered, and alice on a profile with a
/// Process-From date of 1 May 2026.
async fn capped_world(pool: PgPool) -> World {
    let mut settings = fast_settings();
    settings.sync.graph_filtered_delta_limit = CAP;
    let world = graph_world(pool, settings).await;
    world
        .fake_put("/_fake/graph/faults", json!({"filtered_round_limit": CAP}))
        .await;
    let profile = "max_concurrent_connections = 10\nprocess_emails_from = 2026-05-01T00:00:00Z";
    apply_graph(&world, &graph_org(profile, "none")).await;
    world
}

/// 4 messages before the Process-From date, then 10 + 10 + 3 after it, each batch sharing
/// one received date (a run of equal dates as long as a listing page, 10 in fast settings).
async fn deliver_window(world: &World) -> i64 {
    world.deliver(ALICE, 4, "2026-04-20T10:00:00Z").await;
    world.deliver(ALICE, 10, "2026-06-01T10:00:00Z").await;
    world.deliver(ALICE, 10, "2026-06-02T10:00:00Z").await;
    world.deliver(ALICE, 3, "2026-06-03T10:00:00Z").await;
    23
}

async fn operations(world: &World, operation: &str) -> u64 {
    world.fake_get("/_fake/graph/stats").await["operations"][operation]
        .as_u64()
        .unwrap_or(0)
}

async fn inbox_state(world: &World) -> String {
    sqlx::query_scalar("SELECT sync_state FROM folder_sync_states WHERE folder = 'inbox'")
        .fetch_one(world.store.pool())
        .await
        .expect("the inbox has a stored state")
}

/// Every window message once, none before the Process-From date, one copy each.
async fn assert_window_imported_once(world: &World, window: i64) {
    assert_eq!(world.count("SELECT count(*) FROM emails").await, window);
    assert_eq!(
        world.count("SELECT count(*) FROM email_copies").await,
        window
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM emails WHERE received_at < '2026-05-01T00:00:00Z'")
            .await,
        0,
        "nothing received before the Process-From date"
    );
    assert_eq!(
        world
            .count(
                "SELECT count(*) FROM (SELECT internet_message_id FROM emails
                  GROUP BY internet_message_id HAVING count(*) > 1) d"
            )
            .await,
        0
    );
}

#[sqlx::test]
async fn a_capped_filtered_round_is_completed_by_a_listing_and_every_message_comes_in_once(
    pool: PgPool,
) {
    let world = capped_world(pool).await;
    let window = deliver_window(&world).await;
    let pass = world.pass(ALICE).await;
    assert_eq!(
        format!(
            "{:?}",
            pass.report(exsync::domain::Workload::Incoming)
                .expect("incoming ran")
                .outcome
        ),
        "Success"
    );
    assert_window_imported_once(&world, window).await;
    assert!(
        operations(&world, "message.list").await >= 3,
        "the window was listed page by page"
    );
    assert!(
        !inbox_state(&world).await.starts_with(STATE_PREFIX),
        "after the listing the capped round's delta link is the state"
    );
    // Nothing new: nothing listed or imported again.
    let listed = operations(&world, "message.list").await;
    world.pass(ALICE).await;
    assert_window_imported_once(&world, window).await;
    assert_eq!(operations(&world, "message.list").await, listed);
    // Later mail arrives by delta.
    world.deliver(ALICE, 2, "2026-06-05T10:00:00Z").await;
    world.pass(ALICE).await;
    assert_window_imported_once(&world, window + 2).await;
    assert_eq!(operations(&world, "message.list").await, listed);
}

#[sqlx::test]
async fn a_crash_in_the_middle_of_the_listing_resumes_it_and_loses_or_duplicates_nothing(
    pool: PgPool,
) {
    let world = capped_world(pool).await;
    let window = deliver_window(&world).await;
    // The third listing page fails: the pass ends there, as a crash would after two pages.
    world
        .fake_put(
            "/_fake/graph/faults",
            json!({"fail_operation": [
                {"operation": "message.list", "after": 2, "fault": "internal_error"}
            ]}),
        )
        .await;
    let pass = world.pass(ALICE).await;
    assert_ne!(
        format!(
            "{:?}",
            pass.report(exsync::domain::Workload::Incoming)
                .expect("incoming ran")
                .outcome
        ),
        "Success"
    );
    let so_far = world.count("SELECT count(*) FROM emails").await;
    assert!(
        so_far > i64::from(CAP) && so_far < window,
        "the round and two listing pages were committed: {so_far}"
    );
    assert!(
        inbox_state(&world).await.starts_with(STATE_PREFIX),
        "the listing's position is stored"
    );
    let rounds = operations(&world, "message.delta").await;
    world.pass(ALICE).await;
    assert_window_imported_once(&world, window).await;
    assert_eq!(
        operations(&world, "message.delta").await,
        rounds,
        "the listing resumed where it stopped; the folder did not start over"
    );
    world.deliver(ALICE, 1, "2026-06-06T10:00:00Z").await;
    world.pass(ALICE).await;
    assert_window_imported_once(&world, window + 1).await;
}

#[sqlx::test]
async fn a_round_below_the_cap_lists_nothing(pool: PgPool) {
    let world = capped_world(pool).await;
    world.deliver(ALICE, 2, "2026-04-20T10:00:00Z").await;
    world.deliver(ALICE, 6, "2026-06-01T10:00:00Z").await;
    world.pass(ALICE).await;
    assert_window_imported_once(&world, 6).await;
    assert_eq!(operations(&world, "message.list").await, 0);
}

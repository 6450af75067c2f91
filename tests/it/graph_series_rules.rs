//! Issue 10: recurring series over Microsoft Graph with parity to EWS: a series is one row
//! (its master with its recurrence) both ways, never one row per occurrence, and never
//! imported twice.

use crate::support::graph::{apply_graph, graph_org, graph_world};
use crate::support::world::{fast_settings, World};
use chrono::{Datelike, Duration, Timelike, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

/// alice on Graph with appointments synchronised (every item).
async fn world(pool: PgPool) -> World {
    let world = graph_world(pool, fast_settings()).await;
    apply_graph(
        &world,
        &graph_org("act_scope = \"all\"", "server_side_sync"),
    )
    .await;
    world
}

/// Tomorrow at the whole hour (UTC), inside the calendar window.
fn tomorrow() -> chrono::DateTime<Utc> {
    let t = Utc::now() + Duration::days(1);
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
}

/// Every week on `start`'s weekday, five times (the database's and the fake's JSON).
fn weekly_five_times(start: chrono::DateTime<Utc>) -> Value {
    let day = start.weekday().to_string().to_lowercase();
    let day = match day.as_str() {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    };
    json!({
        "pattern": {"type": "weekly", "interval": 1, "days_of_week": [day]},
        "range": {"type": "numbered", "start_date": start.date_naive().to_string(), "occurrences": 5}
    })
}

async fn calendar(world: &World) -> Vec<Value> {
    world
        .fake_get("/_fake/mailboxes/alice@contoso.test/items?folder=calendar")
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// The appointment rows: subject, recurrence, linked item id.
async fn rows(world: &World) -> Vec<(String, Option<Value>, Option<String>)> {
    sqlx::query_as("SELECT subject, recurrence, ews_item_id FROM appointments ORDER BY subject")
        .fetch_all(world.store.pool())
        .await
        .unwrap()
}

fn act_outcome(pass: &exsync::sync::PassSummary) -> String {
    format!(
        "{:?}",
        pass.report(exsync::domain::Workload::Act)
            .expect("ACT ran")
            .outcome
    )
}

#[sqlx::test]
async fn a_recurring_appointment_from_the_database_becomes_a_graph_series_and_comes_back_as_one_row(
    pool: PgPool,
) {
    let world = world(pool).await;
    world.pass("alice@contoso.test").await;
    let start = tomorrow();
    let recurrence = weekly_five_times(start);
    sqlx::query(
        "INSERT INTO appointments (mailbox_id, subject, start_at, end_at, recurrence)
         SELECT id, 'Weekly review', $1, $2, $3 FROM mailboxes",
    )
    .bind(start)
    .bind(start + Duration::hours(1))
    .bind(&recurrence)
    .execute(world.store.pool())
    .await
    .unwrap();
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(act_outcome(&pass), "Success", "{pass:?}");
    // In the mailbox: one series master with the pattern, not five items.
    let items = calendar(&world).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["recurrence"], recurrence, "{items:?}");
    // Its occurrences come back through calendarView delta: still one row, unchanged.
    for _ in 0..2 {
        let pass = world.pass("alice@contoso.test").await;
        assert_eq!(act_outcome(&pass), "Success", "{pass:?}");
    }
    let back = rows(&world).await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].1.as_ref(), Some(&recurrence));
    assert!(back[0].2.is_some(), "linked to the series master");
    assert_eq!(
        world
            .count("SELECT count(*) FROM appointments WHERE synced_version <> version")
            .await,
        0
    );
    // The database changes the series: the master is updated with the new pattern.
    let mut shorter = recurrence.clone();
    shorter["range"]["occurrences"] = json!(3);
    sqlx::query("UPDATE appointments SET subject = 'Weekly review, shorter', recurrence = $1")
        .bind(&shorter)
        .execute(world.store.pool())
        .await
        .unwrap();
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(act_outcome(&pass), "Success", "{pass:?}");
    let items = calendar(&world).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["subject"], "Weekly review, shorter");
    assert_eq!(items[0]["recurrence"], shorter);
    world.pass("alice@contoso.test").await;
    let after = rows(&world).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1.as_ref(), Some(&shorter));
}

#[sqlx::test]
async fn a_recurrence_exchange_would_refuse_fails_its_row_alone_before_any_request(pool: PgPool) {
    let world = world(pool).await;
    world.pass("alice@contoso.test").await;
    let start = tomorrow();
    let mut bad = weekly_five_times(start);
    bad["pattern"]["interval"] = json!(0);
    sqlx::query(
        "INSERT INTO appointments (mailbox_id, subject, start_at, end_at, recurrence)
         SELECT id, s, $1, $2, r FROM mailboxes,
                (VALUES ('Broken series', $3::jsonb), ('Fine series', $4::jsonb)) AS v(s, r)",
    )
    .bind(start)
    .bind(start + Duration::hours(1))
    .bind(&bad)
    .bind(weekly_five_times(start))
    .execute(world.store.pool())
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    let items = calendar(&world).await;
    assert_eq!(items.len(), 1, "only the fine series is written: {items:?}");
    assert_eq!(items[0]["subject"], "Fine series");
    let stats = world.fake_get("/_fake/graph/stats").await;
    assert_eq!(
        stats["operations"]["event.create"].as_u64(),
        Some(1),
        "no request spent on the broken one: {stats}"
    );
    let error: Option<String> =
        sqlx::query_scalar("SELECT sync_error FROM appointments WHERE subject = 'Broken series'")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert!(error.unwrap_or_default().contains("interval"));
}

#[sqlx::test]
async fn a_series_created_in_the_mailbox_imports_once_as_its_master_with_its_recurrence(
    pool: PgPool,
) {
    let world = world(pool).await;
    let start = tomorrow();
    let recurrence = weekly_five_times(start);
    let created = world
        .fake_post(
            "/_fake/mailboxes/alice@contoso.test/items",
            json!({
                "folder": "calendar",
                "subject": "Standup",
                "received": (start - Duration::days(1)).to_rfc3339(),
                "recurrence": recurrence,
            }),
        )
        .await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(act_outcome(&pass), "Success", "{pass:?}");
    let rows_now = rows(&world).await;
    assert_eq!(
        rows_now.len(),
        1,
        "one row for the series, not one per occurrence: {rows_now:?}"
    );
    assert_eq!(rows_now[0].0, "Standup");
    assert_eq!(rows_now[0].1.as_ref(), Some(&recurrence));
    // Later passes import nothing twice.
    world.pass("alice@contoso.test").await;
    world.pass("alice@contoso.test").await;
    assert_eq!(rows(&world).await.len(), 1);
    assert_eq!(
        calendar(&world).await.len(),
        1,
        "nothing written back as a copy"
    );
    // Deleting the master in the mailbox deletes the series' row.
    let id = created["ids"][0].as_str().unwrap().to_owned();
    world
        .fake(
            reqwest::Method::DELETE,
            &format!("/_fake/mailboxes/alice@contoso.test/items/{id}"),
            None,
        )
        .await;
    world.pass("alice@contoso.test").await;
    assert!(rows(&world).await.is_empty(), "{:?}", rows(&world).await);
}

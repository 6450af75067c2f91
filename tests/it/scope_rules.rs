//! What syncs, and what a delete may touch (issue 8), end to end: real Postgres, the fake
//! Exchange over HTTP, the engine as `exsync run` wires it. The ACT scope (tracked items and the
//! items exsync created), deletes that touch only exsync's items and never drop an attended
//! meeting without a decline, organizers' cancellations, recurring series, the incoming filter
//! (Dynamics' Track option) and approval gating appointments, contacts and tasks.

use crate::support::world::World;
use exsync::domain::Workload;
use exsync::operator::explain::{explain, ItemFate, WorkloadState};
use exsync::sync::pass::Outcome;
use serde_json::{json, Value};
use sqlx::PgPool;

const TRACKED: &str = "Tracked to exsync";

/// Alice and Bob, impersonated by svc; `profile` and `alice` add keys to their entries.
async fn org(pool: PgPool, profile: &str, alice: &str) -> World {
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
    world.apply(&org_text(profile, alice)).await;
    world
}

fn org_text(profile: &str, alice: &str) -> String {
    format!(
        r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "{{ews}}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Passw0rd!"
use_impersonation = true
{profile}

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"
act = "server_side_sync"
{alice}

[[mailbox]]
address = "bob@contoso.test"
profile = "Contoso"
approval = "approved"
act = "server_side_sync"
"#
    )
}

async fn items(world: &World, address: &str, folder: &str) -> Vec<Value> {
    world
        .fake_get(&format!("/_fake/mailboxes/{address}/items?folder={folder}"))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn create(world: &World, address: &str, body: Value) -> String {
    world
        .fake_post(&format!("/_fake/mailboxes/{address}/items"), body)
        .await["ids"][0]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn patch(world: &World, address: &str, id: &str, body: Value) {
    world
        .fake(
            reqwest::Method::PATCH,
            &format!("/_fake/mailboxes/{address}/items/{id}"),
            Some(body),
        )
        .await;
}

/// The EWS operations the fake received since the last reset.
async fn operations(world: &World) -> Vec<String> {
    world
        .fake_get("/_fake/requests")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["operation"].as_str().map(str::to_owned))
        .collect()
}

async fn reset_request_log(world: &World) {
    world.fake_post("/_fake/stats/reset", json!({})).await;
}

fn act_succeeded(summary: &exsync::sync::PassSummary) -> bool {
    matches!(
        summary.report(Workload::Act).map(|r| &r.outcome),
        Some(Outcome::Success)
    )
}

/// Alice organises "subject" with Bob (the invitation reaches him); returns the id of Bob's copy.
async fn alice_invites_bob(world: &World, subject: &str, alice_categories: &[&str]) -> String {
    create(
        world,
        "alice@contoso.test",
        json!({"folder": "calendar", "subject": subject, "to": ["bob@contoso.test"],
               "categories": alice_categories}),
    )
    .await;
    items(world, "bob@contoso.test", "calendar")
        .await
        .into_iter()
        .find(|i| i["subject"] == subject)
        .and_then(|i| i["id"].as_str().map(str::to_owned))
        .expect("Bob's copy of the meeting")
}

// ---------------------------------------------------------------------------------- ACT scope

#[sqlx::test]
async fn an_untracked_calendar_item_stays_out_and_a_tracked_one_comes_in(pool: PgPool) {
    let world = org(pool, "", "").await;
    let tracked = create(
        &world,
        "alice@contoso.test",
        json!({"folder": "calendar", "subject": "Customer visit", "categories": [TRACKED]}),
    )
    .await;
    let private = create(
        &world,
        "alice@contoso.test",
        json!({"folder": "calendar", "subject": "Dentist"}),
    )
    .await;
    let pass = world.pass("alice@contoso.test").await;
    assert!(act_succeeded(&pass), "{pass:?}");
    let subjects: Vec<String> = sqlx::query_scalar("SELECT subject FROM appointments")
        .fetch_all(world.store.pool())
        .await
        .unwrap();
    assert_eq!(subjects, vec!["Customer visit".to_owned()]);
    assert_eq!(
        world
            .count(&format!(
                "SELECT count(*) FROM appointments WHERE ews_item_id = '{tracked}' AND exchange_link = 'imported'"
            ))
            .await,
        1
    );
    // The untracked one is recorded as left out, and explain says by which rule.
    let e = explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        "alice@contoso.test",
        Some(&private),
    )
    .await
    .unwrap();
    match e.item.unwrap().fate {
        ItemFate::Skipped { reason, why, .. } => {
            assert_eq!(reason, "not_tracked");
            assert!(why.contains("act_scope"), "{why}");
            assert!(why.contains(TRACKED), "{why}");
        }
        other => panic!("not skipped: {other:?}"),
    }
    assert_eq!(
        e.scope.as_ref().unwrap().act_scope.as_str(),
        "tracked",
        "the default scope"
    );
}

#[sqlx::test]
async fn tracking_an_item_later_brings_it_in_and_untracking_it_unlinks_the_row(pool: PgPool) {
    let world = org(pool, "", "").await;
    let id = create(
        &world,
        "alice@contoso.test",
        json!({"folder": "tasks", "subject": "Call the supplier"}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM tasks").await, 0);

    // The user marks it tracked in Outlook: it comes in, no longer skipped.
    patch(
        &world,
        "alice@contoso.test",
        &id,
        json!({"categories": [TRACKED]}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    assert_eq!(
        world
            .count("SELECT count(*) FROM tasks WHERE exchange_link = 'imported'")
            .await,
        1
    );
    assert_eq!(world.count("SELECT count(*) FROM skipped_items").await, 0);

    // The user untracks it: the row stays but is unlinked; later edits flow nowhere.
    patch(
        &world,
        "alice@contoso.test",
        &id,
        json!({"categories": [], "subject": "Call the supplier (private)"}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    let (link, subject): (String, String) =
        sqlx::query_as("SELECT exchange_link, subject FROM tasks")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert_eq!(link, "unlinked");
    assert_eq!(
        subject, "Call the supplier",
        "Exchange's later edit stays out"
    );
    sqlx::query("UPDATE tasks SET subject = 'edited in the database'")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("alice@contoso.test").await;
    assert_eq!(
        items(&world, "alice@contoso.test", "tasks").await[0]["subject"],
        "Call the supplier (private)",
        "the database's edit of an unlinked row is not written to Exchange"
    );
}

#[sqlx::test]
async fn a_database_delete_of_an_untracked_attendee_meeting_touches_nothing_in_exchange(
    pool: PgPool,
) {
    let world = org(pool, "", "").await;
    let bobs_copy = alice_invites_bob(&world, "Budget review", &[]).await;
    // Bob tracks the meeting, it comes in; then he untracks it: the row is unlinked.
    patch(
        &world,
        "bob@contoso.test",
        &bobs_copy,
        json!({"categories": [TRACKED]}),
    )
    .await;
    world.pass("bob@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 1);
    patch(
        &world,
        "bob@contoso.test",
        &bobs_copy,
        json!({"categories": []}),
    )
    .await;
    world.pass("bob@contoso.test").await;
    let before = items(&world, "bob@contoso.test", "calendar").await;

    sqlx::query("DELETE FROM appointments")
        .execute(world.store.pool())
        .await
        .unwrap();
    assert_eq!(
        world.count("SELECT count(*) FROM act_deletions").await,
        0,
        "an unlinked row leaves no tombstone"
    );
    reset_request_log(&world).await;
    let pass = world.pass("bob@contoso.test").await;
    assert!(act_succeeded(&pass), "{pass:?}");
    let ops = operations(&world).await;
    assert!(
        !ops.iter()
            .any(|o| o == "DeleteItem" || o == "CreateItem" || o == "UpdateItem"),
        "{ops:?}"
    );
    assert_eq!(items(&world, "bob@contoso.test", "calendar").await, before);
    assert!(
        items(&world, "alice@contoso.test", "inbox")
            .await
            .is_empty(),
        "the organizer heard nothing"
    );
}

#[sqlx::test]
async fn after_narrowing_the_scope_a_delete_of_an_untracked_item_leaves_it_in_exchange(
    pool: PgPool,
) {
    // Synchronised under act_scope = "all" (as before scopes existed), then narrowed.
    let world = org(pool, "act_scope = \"all\"", "").await;
    alice_invites_bob(&world, "Weekly sync", &[]).await;
    create(
        &world,
        "bob@contoso.test",
        json!({"folder": "contacts", "subject": "A private contact"}),
    )
    .await;
    world.pass("bob@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 1);
    assert_eq!(world.count("SELECT count(*) FROM contacts").await, 1);
    world.apply(&org_text("act_scope = \"tracked\"", "")).await;

    sqlx::query("DELETE FROM appointments")
        .execute(world.store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM contacts")
        .execute(world.store.pool())
        .await
        .unwrap();
    reset_request_log(&world).await;
    let pass = world.pass("bob@contoso.test").await;
    assert!(act_succeeded(&pass), "{pass:?}");
    let ops = operations(&world).await;
    assert!(
        !ops.iter().any(|o| o == "DeleteItem" || o == "CreateItem"),
        "{ops:?}"
    );
    assert_eq!(items(&world, "bob@contoso.test", "calendar").await.len(), 1);
    assert_eq!(items(&world, "bob@contoso.test", "contacts").await.len(), 1);
    assert_eq!(world.count("SELECT count(*) FROM act_deletions").await, 0);
}

#[sqlx::test]
async fn a_database_delete_of_a_tracked_attendee_meeting_never_removes_it_without_a_decline(
    pool: PgPool,
) {
    let world = org(pool, "", "").await;
    let first = alice_invites_bob(&world, "Planning", &[]).await;
    patch(
        &world,
        "bob@contoso.test",
        &first,
        json!({"categories": [TRACKED]}),
    )
    .await;
    world.pass("bob@contoso.test").await;
    sqlx::query("DELETE FROM appointments")
        .execute(world.store.pool())
        .await
        .unwrap();
    reset_request_log(&world).await;
    world.pass("bob@contoso.test").await;
    // act_attendee_delete = "keep" (the default): the meeting stays, nobody is told.
    let ops = operations(&world).await;
    assert!(
        !ops.iter().any(|o| o == "DeleteItem" || o == "CreateItem"),
        "{ops:?}"
    );
    assert_eq!(items(&world, "bob@contoso.test", "calendar").await.len(), 1);
    assert!(items(&world, "alice@contoso.test", "inbox")
        .await
        .is_empty());

    // With act_attendee_delete = "decline", the delete declines: Alice is told, it leaves.
    world
        .apply(&org_text("act_attendee_delete = \"decline\"", ""))
        .await;
    let second = alice_invites_bob(&world, "Offsite", &[]).await;
    patch(
        &world,
        "bob@contoso.test",
        &second,
        json!({"categories": [TRACKED]}),
    )
    .await;
    world.pass("bob@contoso.test").await;
    sqlx::query("DELETE FROM appointments WHERE subject = 'Offsite'")
        .execute(world.store.pool())
        .await
        .unwrap();
    let pass = world.pass("bob@contoso.test").await;
    assert!(act_succeeded(&pass), "{pass:?}");
    let calendar = items(&world, "bob@contoso.test", "calendar").await;
    assert_eq!(calendar.len(), 1);
    assert_eq!(calendar[0]["subject"], "Planning");
    let answers = items(&world, "alice@contoso.test", "inbox").await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["item_class"], "IPM.Schedule.Meeting.Resp.Neg");
    assert_eq!(answers[0]["subject"], "Declined: Offsite");
    assert_eq!(
        items(&world, "bob@contoso.test", "sentitems").await[0]["item_class"],
        "IPM.Schedule.Meeting.Resp.Neg"
    );
    assert_eq!(world.count("SELECT count(*) FROM act_deletions").await, 0);
}

#[sqlx::test]
async fn an_organizers_database_delete_cancels_the_meeting_for_its_attendees(pool: PgPool) {
    let world = org(pool, "", "").await;
    alice_invites_bob(&world, "Quarterly review", &[TRACKED]).await;
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 1);
    sqlx::query("DELETE FROM appointments")
        .execute(world.store.pool())
        .await
        .unwrap();
    let pass = world.pass("alice@contoso.test").await;
    assert!(act_succeeded(&pass), "{pass:?}");
    assert!(items(&world, "alice@contoso.test", "calendar")
        .await
        .is_empty());
    let bobs_inbox = items(&world, "bob@contoso.test", "inbox").await;
    let cancellations: Vec<&Value> = bobs_inbox
        .iter()
        .filter(|m| m["item_class"] == "IPM.Schedule.Meeting.Canceled")
        .collect();
    assert_eq!(cancellations.len(), 1, "{bobs_inbox:?}");
    assert_eq!(cancellations[0]["subject"], "Canceled: Quarterly review");
    assert_eq!(
        items(&world, "bob@contoso.test", "calendar").await[0]["is_cancelled"],
        true
    );

    // A meeting the database created invited bob when it was written, so its delete
    // cancels it for him too.
    sqlx::query(
        "INSERT INTO appointments (mailbox_id, subject, start_at, end_at, attendees)
         SELECT id, 'Draft meeting', '2026-12-10T09:00:00Z', '2026-12-10T10:00:00Z',
                '[\"bob@contoso.test\"]'
           FROM mailboxes WHERE email_address = 'alice@contoso.test'",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    assert_eq!(
        items(&world, "alice@contoso.test", "calendar").await.len(),
        1
    );
    let requests = items(&world, "bob@contoso.test", "inbox")
        .await
        .into_iter()
        .filter(|m| m["subject"] == "Draft meeting")
        .count();
    assert_eq!(requests, 1, "the meeting request went out once");
    sqlx::query("DELETE FROM appointments")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("alice@contoso.test").await;
    assert!(items(&world, "alice@contoso.test", "calendar")
        .await
        .is_empty());
    let cancellations = items(&world, "bob@contoso.test", "inbox")
        .await
        .into_iter()
        .filter(|m| m["item_class"] == "IPM.Schedule.Meeting.Canceled")
        .count();
    assert_eq!(cancellations, 2, "the invited attendee hears of the cancel");
}

#[sqlx::test]
async fn a_recurring_series_stays_recurring_both_ways(pool: PgPool) {
    let world = org(pool, "", "").await;
    let weekly = json!({
        "pattern": {"type": "weekly", "interval": 1, "days_of_week": ["monday", "wednesday"]},
        "range": {"type": "numbered", "start_date": "2026-12-07", "occurrences": 12}
    });
    let id = create(
        &world,
        "alice@contoso.test",
        json!({"folder": "calendar", "subject": "Stand-up", "categories": [TRACKED],
               "recurrence": weekly}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    let stored: Value = sqlx::query_scalar("SELECT recurrence FROM appointments")
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    assert_eq!(stored, weekly, "the series is stored with its recurrence");

    // An edit in the database keeps the series a series in Exchange.
    sqlx::query("UPDATE appointments SET subject = 'Daily stand-up'")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.pass("alice@contoso.test").await;
    let exchange = items(&world, "alice@contoso.test", "calendar").await;
    let series = exchange.iter().find(|i| i["id"] == id.as_str()).unwrap();
    assert_eq!(series["subject"], "Daily stand-up");
    assert_eq!(series["recurrence"], weekly);

    // A series written by the database arrives in Exchange as a series; an impossible one is
    // refused for its row alone.
    let monthly = json!({
        "pattern": {"type": "relative_monthly", "interval": 1, "day_of_week": "tuesday", "week": "second"},
        "range": {"type": "end_date", "start_date": "2026-12-08", "end_date": "2027-12-31"}
    });
    for (subject, recurrence) in [
        ("Board meeting", monthly.clone()),
        (
            "Impossible",
            json!({"pattern": {"type": "daily", "interval": 0},
                   "range": {"type": "no_end", "start_date": "2026-12-07"}}),
        ),
    ] {
        sqlx::query(
            "INSERT INTO appointments (mailbox_id, subject, start_at, end_at, recurrence)
             SELECT id, $1, '2026-12-08T15:00:00Z', '2026-12-08T16:00:00Z', $2
               FROM mailboxes WHERE email_address = 'alice@contoso.test'",
        )
        .bind(subject)
        .bind(recurrence)
        .execute(world.store.pool())
        .await
        .unwrap();
    }
    world.pass("alice@contoso.test").await;
    let exchange = items(&world, "alice@contoso.test", "calendar").await;
    let board = exchange
        .iter()
        .find(|i| i["subject"] == "Board meeting")
        .expect("the database's series in Exchange");
    assert_eq!(board["recurrence"], monthly);
    assert!(board["categories"]
        .as_array()
        .unwrap()
        .contains(&json!(TRACKED)));
    let error: Option<String> =
        sqlx::query_scalar("SELECT sync_error FROM appointments WHERE subject = 'Impossible'")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert!(
        error.unwrap_or_default().contains("recurrence"),
        "the impossible series is refused with its reason"
    );
    assert!(!exchange.iter().any(|i| i["subject"] == "Impossible"));
}

#[sqlx::test]
async fn items_exsync_created_stay_synchronised_even_without_the_category(pool: PgPool) {
    let world = org(pool, "", "").await;
    sqlx::query(
        "INSERT INTO tasks (mailbox_id, subject) SELECT id, 'Send the contract'
           FROM mailboxes WHERE email_address = 'alice@contoso.test'",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    let task = &items(&world, "alice@contoso.test", "tasks").await[0];
    assert_eq!(
        task["categories"],
        json!([TRACKED]),
        "users see it as tracked"
    );
    let id = task["id"].as_str().unwrap().to_owned();
    // Even with the category removed, an item exsync created belongs to the database.
    patch(
        &world,
        "alice@contoso.test",
        &id,
        json!({"categories": [], "subject": "Send the signed contract"}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    let (subject, link): (String, String) =
        sqlx::query_as("SELECT subject, exchange_link FROM tasks")
            .fetch_one(world.store.pool())
            .await
            .unwrap();
    assert_eq!(
        (subject.as_str(), link.as_str()),
        ("Send the signed contract", "owned")
    );
}

#[sqlx::test]
async fn a_mailbox_act_scope_overrides_its_profile(pool: PgPool) {
    let world = org(pool, "", "act_scope = \"all\"").await;
    for address in ["alice@contoso.test", "bob@contoso.test"] {
        create(&world, address, json!({"folder": "contacts"})).await;
        world.pass(address).await;
    }
    let per_mailbox: Vec<(String, i64)> = sqlx::query_as(
        "SELECT m.email_address, count(c.id) FROM mailboxes m
           LEFT JOIN contacts c ON c.mailbox_id = m.id
          GROUP BY m.email_address ORDER BY 1",
    )
    .fetch_all(world.store.pool())
    .await
    .unwrap();
    assert_eq!(
        per_mailbox,
        vec![
            ("alice@contoso.test".to_owned(), 1),
            ("bob@contoso.test".to_owned(), 0)
        ]
    );
}

// ---------------------------------------------------------------------------------- approval

#[sqlx::test]
async fn approval_gates_appointments_contacts_and_tasks_and_explain_says_so(pool: PgPool) {
    let world = org(pool, "", "").await;
    let pending = org_text("", "").replacen("approval = \"approved\"", "approval = \"pending\"", 1);
    world.apply(&pending).await;
    create(
        &world,
        "alice@contoso.test",
        json!({"folder": "calendar", "categories": [TRACKED]}),
    )
    .await;
    reset_request_log(&world).await;
    let pass = world.pass("alice@contoso.test").await;
    match pass.report(Workload::Act).map(|r| &r.outcome) {
        Some(Outcome::Refused { code, message }) => {
            assert_eq!(code, "mailbox.not_approved");
            assert!(
                message.contains("appointments, contacts and tasks"),
                "{message}"
            );
        }
        other => panic!("ACT was not refused: {other:?}"),
    }
    assert!(
        operations(&world).await.is_empty(),
        "no request to Exchange"
    );
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 0);
    let e = explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        "alice@contoso.test",
        None,
    )
    .await
    .unwrap();
    let act = e.workload(Workload::Act).unwrap();
    assert_eq!(act.state, WorkloadState::Refused);
    assert_eq!(act.code.as_deref(), Some("mailbox.not_approved"));
    assert!(act.why.contains("approval is pending"), "{}", act.why);
    assert!(e.to_string().contains("approval is pending"), "{e}");

    // Approved: it syncs.
    world.apply(&org_text("", "")).await;
    let pass = world.pass("alice@contoso.test").await;
    assert!(act_succeeded(&pass), "{pass:?}");
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 1);
}

// ------------------------------------------------------------------------- incoming filter

/// Deliver one message to `address` with these fields; returns its EWS id.
async fn deliver_one(world: &World, address: &str, fields: Value) -> String {
    let mut body = json!({"folder": "inbox", "received": "2026-11-02T09:00:00Z"});
    if let (Some(target), Some(extra)) = (body.as_object_mut(), fields.as_object()) {
        target.extend(extra.clone());
    }
    create(world, address, body).await
}

async fn skipped_reason(world: &World, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT reason FROM skipped_items WHERE ews_item_id = $1")
        .bind(id)
        .fetch_optional(world.store.pool())
        .await
        .unwrap()
}

async fn imported(world: &World, id: &str) -> bool {
    world
        .count(&format!(
            "SELECT count(*) FROM email_copies WHERE ews_item_id = '{id}'"
        ))
        .await
        == 1
}

#[sqlx::test]
async fn incoming_filter_all_is_the_default_and_imports_every_message(pool: PgPool) {
    let world = org(pool, "", "").await;
    world
        .deliver("alice@contoso.test", 3, "2026-11-02T09:00:00Z")
        .await;
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM email_copies").await, 3);
    let e = explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        "alice@contoso.test",
        None,
    )
    .await
    .unwrap();
    assert_eq!(e.scope.unwrap().incoming_filter.as_str(), "all");
}

#[sqlx::test]
async fn incoming_filter_responses_imports_replies_to_exsync_mail_and_tracked_mail_only(
    pool: PgPool,
) {
    let world = org(
        pool,
        "incoming_filter = \"responses\"\ntracking_token_prefix = \"EXS:\"",
        "",
    )
    .await;
    exsync::store::outgoing::enqueue(
        &world.store,
        "alice@contoso.test",
        &["buyer@fabrikam.test".to_owned()],
        &[],
        "Your offer",
        "Attached.",
    )
    .await
    .unwrap();
    world.pass("alice@contoso.test").await;
    let (imid, token): (String, String) = sqlx::query_as(
        "SELECT internet_message_id, tracking_token FROM outgoing_emails WHERE status = 'sent'",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    assert!(token.starts_with("EXS:"), "{token}");
    let sent = items(&world, "alice@contoso.test", "sentitems").await;
    assert_eq!(
        sent[0]["subject"],
        format!("Your offer {token}"),
        "the token ends the sent subject"
    );

    let by_in_reply_to = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "buyer@fabrikam.test", "subject": "RE: Your offer", "in_reply_to": imid}),
    )
    .await;
    let by_references = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "boss@fabrikam.test", "subject": "FW: RE: Your offer",
               "references": format!("<older@fabrikam.test> {imid}")}),
    )
    .await;
    let by_token = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "buyer@fabrikam.test", "subject": format!("Re: Your offer {token}")}),
    )
    .await;
    let unrelated = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "friend@private.test", "subject": "Dinner?"}),
    )
    .await;
    let marked = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "friend@private.test", "subject": "Lead for you", "categories": [TRACKED]}),
    )
    .await;
    let pass = world.pass("alice@contoso.test").await;
    assert_eq!(
        pass.report(Workload::Incoming).unwrap().summary.skipped,
        1,
        "{pass:?}"
    );
    for id in [&by_in_reply_to, &by_references, &by_token, &marked] {
        assert!(imported(&world, id).await, "{id} not imported");
    }
    assert!(!imported(&world, &unrelated).await);
    assert_eq!(
        skipped_reason(&world, &unrelated).await.as_deref(),
        Some("filter_responses")
    );
    let e = explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        "alice@contoso.test",
        Some(&unrelated),
    )
    .await
    .unwrap();
    match e.item.unwrap().fate {
        ItemFate::Skipped { reason, why, .. } => {
            assert_eq!(reason, "filter_responses");
            assert!(why.contains("\"responses\""), "{why}");
        }
        other => panic!("not skipped: {other:?}"),
    }
}

#[sqlx::test]
async fn incoming_filter_known_senders_imports_mail_from_contacts_and_mailboxes(pool: PgPool) {
    // Alice's own setting overrides the profile's default ("all", which Bob keeps).
    let world = org(pool, "", "incoming_filter = \"known_senders\"").await;
    sqlx::query(
        "INSERT INTO contacts (mailbox_id, display_name, email_addresses)
         SELECT id, 'A buyer', '[\"Buyer@Fabrikam.test\"]'
           FROM mailboxes WHERE email_address = 'bob@contoso.test'",
    )
    .execute(world.store.pool())
    .await
    .unwrap();
    let contact = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "buyer@fabrikam.test"}),
    )
    .await;
    let colleague = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "bob@contoso.test"}),
    )
    .await;
    let stranger = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "stranger@spam.test"}),
    )
    .await;
    let marked = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "stranger@spam.test", "categories": [TRACKED]}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    for id in [&contact, &colleague, &marked] {
        assert!(imported(&world, id).await, "{id} not imported");
    }
    assert_eq!(
        skipped_reason(&world, &stranger).await.as_deref(),
        Some("filter_known_senders")
    );
    // Bob keeps the profile's filter: everything comes in.
    let bobs = deliver_one(
        &world,
        "bob@contoso.test",
        json!({"from": "stranger@spam.test"}),
    )
    .await;
    world.pass("bob@contoso.test").await;
    assert!(imported(&world, &bobs).await);
}

#[sqlx::test]
async fn incoming_filter_none_imports_only_mail_marked_tracked(pool: PgPool) {
    let world = org(pool, "incoming_filter = \"none\"", "").await;
    let plain = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "buyer@fabrikam.test"}),
    )
    .await;
    let marked = deliver_one(
        &world,
        "alice@contoso.test",
        json!({"from": "buyer@fabrikam.test", "categories": [TRACKED]}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    assert!(imported(&world, &marked).await);
    assert!(!imported(&world, &plain).await);
    assert_eq!(
        skipped_reason(&world, &plain).await.as_deref(),
        Some("filter_none")
    );
    // The user tracks it later: it comes in and is no longer recorded as skipped.
    patch(
        &world,
        "alice@contoso.test",
        &plain,
        json!({"categories": [TRACKED]}),
    )
    .await;
    world.pass("alice@contoso.test").await;
    assert!(imported(&world, &plain).await);
    assert_eq!(skipped_reason(&world, &plain).await, None);
}

#[sqlx::test]
async fn the_tracking_category_is_the_configured_one(pool: PgPool) {
    let mut settings = crate::support::world::fast_settings();
    settings.sync.tracking_category = "Tracked to Dynamics 365".into();
    let world = World::with_settings(pool, settings).await;
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
    world.apply(&org_text("", "")).await;
    for category in ["tracked to dynamics 365", TRACKED] {
        create(
            &world,
            "alice@contoso.test",
            json!({"folder": "contacts", "categories": [category], "subject": category}),
        )
        .await;
    }
    world.pass("alice@contoso.test").await;
    assert_eq!(world.count("SELECT count(*) FROM contacts").await, 1);
}

#[test]
fn a_tracking_category_that_is_no_category_name_is_refused_naming_the_key() {
    for bad in ["", "   ", "Red, Blue"] {
        let error = exsync::config::Settings::load_with_env(
            Some(std::path::Path::new("/dev/null")),
            vec![("EXSYNC__SYNC__TRACKING_CATEGORY".to_owned(), bad.to_owned())],
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(error.contains("sync.tracking_category"), "{bad:?}: {error}");
    }
}

#[sqlx::test]
async fn apply_keys_for_what_syncs_are_validated_reported_by_field_and_idempotent(pool: PgPool) {
    let world = org(pool, "", "").await;
    let apply = |text: String| {
        let store = world.store.clone();
        let cipher = world.cipher_copy();
        let ews = world.fake.ews_url();
        async move {
            exsync::operator::apply::apply_text(
                &store,
                &cipher,
                &text.replace("{ews}", &ews),
                std::path::Path::new("org.toml"),
                std::path::Path::new("."),
                false,
            )
            .await
        }
    };
    for (profile, alice, field) in [
        (
            "tracking_token_prefix = \"EXS1\"",
            "",
            "tracking_token_prefix",
        ),
        ("incoming_filter = \"everything\"", "", "incoming_filter"),
        ("", "act_scope = \"some\"", "act_scope"),
        (
            "act_attendee_delete = \"cancel\"",
            "",
            "act_attendee_delete",
        ),
    ] {
        let error = apply(org_text(profile, alice))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(&format!("field `{field}`")), "{error}");
    }
    let text = org_text(
        "incoming_filter = \"responses\"\ntracking_token_prefix = \"EXS:\"",
        "act_scope = \"all\"",
    );
    let report = apply(text.clone()).await.unwrap();
    let changed: Vec<String> = report
        .entries
        .iter()
        .filter_map(|e| match &e.outcome {
            exsync::operator::apply::Outcome::Changed { fields } => {
                Some(format!("{} {}", e.key, fields.join(",")))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            "Contoso incoming_filter,tracking_token_prefix".to_owned(),
            "alice@contoso.test act_scope".to_owned()
        ]
    );
    assert!(
        apply(text).await.unwrap().is_noop(),
        "applying twice changes nothing"
    );
}

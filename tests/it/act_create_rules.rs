//! Creating activities from the database is idempotent on EWS: every item exsync creates
//! carries its row id (`ExsyncActivityKey`), and a create looks for an earlier one first, so a
//! CreateItem whose answer was lost after Exchange created the item never leaves a second item
//! in Exchange nor a second row in the database.

use crate::support::world::World;
use exsync::domain::Workload;
use exsync::sync::pass::Outcome;
use serde_json::json;
use sqlx::PgPool;

const ORG: &str = r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Passw0rd!"
use_impersonation = true
act_scope = "all"

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"
act = "server_side_sync"
"#;

const ALICE: &str = "alice@contoso.test";
const BOB: &str = "bob@contoso.test";

async fn contoso(pool: PgPool) -> World {
    let world = World::new(pool).await;
    world.mailbox(ALICE, "alice", "Alice-Pw1!").await;
    world
        .service_account("svc", "Svc-Passw0rd!", &[ALICE])
        .await;
    world.apply(ORG).await;
    // A first pass: the folders are in sync, nothing to push.
    world.pass(ALICE).await;
    world
}

fn act_outcome(summary: &exsync::sync::PassSummary) -> Outcome {
    summary
        .report(Workload::Act)
        .map(|r| r.outcome.clone())
        .expect("act ran")
}

async fn execute(world: &World, sql: &str) {
    sqlx::query(sql)
        .bind(ALICE)
        .execute(world.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn an_appointment_written_by_the_application(world: &World) {
    execute(
        world,
        "INSERT INTO appointments (mailbox_id, subject, start_at, end_at)
         SELECT id, 'Quarterly review', now() + interval '1 day', now() + interval '25 hours'
           FROM mailboxes WHERE email_address = $1",
    )
    .await;
}

async fn a_contact_written_by_the_application(world: &World) {
    execute(
        world,
        "INSERT INTO contacts (mailbox_id, display_name, given_name, surname)
         SELECT id, 'Dana Scully', 'Dana', 'Scully' FROM mailboxes WHERE email_address = $1",
    )
    .await;
}

/// The next CreateItem is carried out by Exchange, and its answer never arrives.
async fn the_next_create_reply_is_lost(world: &World) {
    world
        .faults(json!({"fail_next": ["lose_create_reply"]}))
        .await;
}

async fn linked_rows(world: &World, table: &str) -> i64 {
    world
        .count(&format!(
            "SELECT count(*) FROM {table} WHERE ews_item_id IS NOT NULL AND version = synced_version"
        ))
        .await
}

#[sqlx::test]
async fn an_appointment_whose_create_reply_is_lost_is_in_exchange_once_linked_to_its_row(
    pool: PgPool,
) {
    let world = contoso(pool).await;
    an_appointment_written_by_the_application(&world).await;
    the_next_create_reply_is_lost(&world).await;
    let lost = world.pass(ALICE).await;
    assert_ne!(act_outcome(&lost), Outcome::Success, "{lost:?}");
    assert_eq!(
        world.folder_count(ALICE, "calendar").await,
        1,
        "Exchange created it"
    );
    assert_eq!(
        linked_rows(&world, "appointments").await,
        0,
        "its id never arrived"
    );

    // Changed in the database before the retry: the key is the row, not its version.
    execute(
        &world,
        "UPDATE appointments SET subject = 'Quarterly review (moved)'
          WHERE mailbox_id = (SELECT id FROM mailboxes WHERE email_address = $1)",
    )
    .await;
    let retry = world.pass(ALICE).await;
    assert_eq!(act_outcome(&retry), Outcome::Success, "{retry:?}");
    assert_eq!(
        world.folder_count(ALICE, "calendar").await,
        1,
        "no second item"
    );
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 1);
    assert_eq!(
        linked_rows(&world, "appointments").await,
        1,
        "linked to its row"
    );
    let items = world
        .fake_get("/_fake/mailboxes/alice@contoso.test/items?folder=calendar")
        .await;
    assert!(
        items.to_string().contains("Quarterly review (moved)"),
        "the retry wrote the row's current version: {items}"
    );

    for _ in 0..2 {
        world.pass(ALICE).await;
    }
    assert_eq!(world.folder_count(ALICE, "calendar").await, 1);
    assert_eq!(
        world.count("SELECT count(*) FROM appointments").await,
        1,
        "no second row from incoming sync"
    );
    assert_eq!(linked_rows(&world, "appointments").await, 1);
}

#[sqlx::test]
async fn a_contact_whose_create_reply_is_lost_is_in_exchange_once_linked_to_its_row(pool: PgPool) {
    let world = contoso(pool).await;
    a_contact_written_by_the_application(&world).await;
    the_next_create_reply_is_lost(&world).await;
    let lost = world.pass(ALICE).await;
    assert_ne!(act_outcome(&lost), Outcome::Success, "{lost:?}");
    assert_eq!(
        world.folder_count(ALICE, "contacts").await,
        1,
        "Exchange created it"
    );
    assert_eq!(linked_rows(&world, "contacts").await, 0);

    for _ in 0..3 {
        world.pass(ALICE).await;
    }
    assert_eq!(
        world.folder_count(ALICE, "contacts").await,
        1,
        "no second item"
    );
    assert_eq!(
        world.count("SELECT count(*) FROM contacts").await,
        1,
        "no second row"
    );
    assert_eq!(
        linked_rows(&world, "contacts").await,
        1,
        "linked to its row"
    );
}

#[sqlx::test]
async fn a_normal_create_makes_one_item_and_no_second_row(pool: PgPool) {
    let world = contoso(pool).await;
    an_appointment_written_by_the_application(&world).await;
    a_contact_written_by_the_application(&world).await;
    let created = world.pass(ALICE).await;
    assert_eq!(act_outcome(&created), Outcome::Success, "{created:?}");
    for _ in 0..2 {
        world.pass(ALICE).await;
    }
    assert_eq!(world.folder_count(ALICE, "calendar").await, 1);
    assert_eq!(world.folder_count(ALICE, "contacts").await, 1);
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 1);
    assert_eq!(world.count("SELECT count(*) FROM contacts").await, 1);
    assert_eq!(linked_rows(&world, "appointments").await, 1);
    assert_eq!(linked_rows(&world, "contacts").await, 1);
}

/// The user copies an appointment exsync created (Outlook keeps custom properties on a copy).
async fn a_copy_carrying_the_key_of(world: &World, row_id: &str) {
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1" /></soap:Header>
<soap:Body><m:CreateItem SendMeetingInvitations="SendToNone">
<m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar" /></m:SavedItemFolderId>
<m:Items><t:CalendarItem><t:Subject>Quarterly review (copy)</t:Subject>
<t:ExtendedProperty><t:ExtendedFieldURI PropertySetId="d0925a5d-722f-42f0-882e-a816636fa020" PropertyName="ExsyncActivityKey" PropertyType="String" /><t:Value>{row_id}</t:Value></t:ExtendedProperty>
<t:Start>2030-01-07T10:00:00Z</t:Start><t:End>2030-01-07T11:00:00Z</t:End>
</t:CalendarItem></m:Items></m:CreateItem></soap:Body></soap:Envelope>"#
    );
    let response = reqwest::Client::new()
        .post(world.fake.ews_url())
        .basic_auth("alice", Some("Alice-Pw1!"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(xml)
        .send()
        .await
        .expect("EWS reachable");
    let body = response.text().await.expect("an answer");
    assert!(body.contains(r#"ResponseClass="Success""#), "{body}");
}

#[sqlx::test]
async fn an_item_carrying_the_key_of_a_row_linked_elsewhere_is_not_imported_as_a_second_row(
    pool: PgPool,
) {
    let world = contoso(pool).await;
    an_appointment_written_by_the_application(&world).await;
    world.pass(ALICE).await;
    let (row_id, item_id): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, ews_item_id FROM appointments")
            .fetch_one(world.store.pool())
            .await
            .expect("the linked row");
    a_copy_carrying_the_key_of(&world, &row_id.to_string()).await;

    let pulled = world.pass(ALICE).await;
    assert_eq!(act_outcome(&pulled), Outcome::Success, "{pulled:?}");
    assert_eq!(
        world.folder_count(ALICE, "calendar").await,
        2,
        "the copy stays"
    );
    assert_eq!(world.count("SELECT count(*) FROM appointments").await, 1);
    let still: String = sqlx::query_scalar("SELECT ews_item_id FROM appointments")
        .fetch_one(world.store.pool())
        .await
        .expect("the row");
    assert_eq!(
        still, item_id,
        "the row stays linked to the item created for it"
    );
}

#[sqlx::test]
async fn a_meeting_written_by_the_application_invites_its_attendees_once_even_when_the_create_reply_is_lost(
    pool: PgPool,
) {
    let world = contoso(pool).await;
    world.mailbox(BOB, "bob", "Bob-Pw1!").await;
    execute(
        &world,
        "INSERT INTO appointments (mailbox_id, subject, start_at, end_at, attendees)
         SELECT id, 'Design review', now() + interval '1 day', now() + interval '25 hours',
                '[\"bob@contoso.test\"]'::jsonb
           FROM mailboxes WHERE email_address = $1",
    )
    .await;
    the_next_create_reply_is_lost(&world).await;
    world.pass(ALICE).await;
    world.pass(ALICE).await;
    assert_eq!(world.folder_count(ALICE, "calendar").await, 1);
    assert_eq!(linked_rows(&world, "appointments").await, 1);
    assert_eq!(
        world.folder_count(BOB, "inbox").await,
        1,
        "bob got one meeting request, not one per attempt"
    );
    assert_eq!(
        world.folder_count(BOB, "calendar").await,
        1,
        "the meeting is in bob's calendar"
    );
}

#[sqlx::test]
async fn an_appointment_without_attendees_invites_nobody(pool: PgPool) {
    let world = contoso(pool).await;
    world.mailbox(BOB, "bob", "Bob-Pw1!").await;
    an_appointment_written_by_the_application(&world).await;
    world.pass(ALICE).await;
    assert_eq!(world.folder_count(ALICE, "calendar").await, 1);
    assert_eq!(world.folder_count(BOB, "inbox").await, 0);
}

//! Store rules that the sync engine relies on: exclusive claims with leases, fenced writes,
//! messages stored once, alerts deduplicated and resolved.

use crate::support::{key_file, SMALL_ORG};
use exsync::domain::{AlertLevel, AlertTarget, MailboxId, Workload, WorkloadStatus};
use exsync::operator::apply::apply_text;
use exsync::store::emails::{self, EmailPage, NewEmail};
use exsync::store::scheduling::{self, PassRecord, WorkloadRecord};
use exsync::store::{alerts, Store};
use sqlx::PgPool;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

async fn org(pool: &PgPool) -> (Store, Uuid) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    apply_text(
        &store,
        &cipher,
        SMALL_ORG,
        Path::new("f"),
        dir.path(),
        false,
    )
    .await
    .unwrap();
    let profile: Uuid = sqlx::query_scalar("SELECT id FROM email_server_profiles")
        .fetch_one(pool)
        .await
        .unwrap();
    (store, profile)
}

const LEASE: Duration = Duration::from_secs(60);
const RETRY: Duration = Duration::from_secs(3600);

#[sqlx::test]
async fn a_claimed_mailbox_is_not_claimed_again_until_its_lease_expires(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let first = scheduling::claim_due(&store, profile, "a", LEASE, 10, RETRY)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|c| c.incoming_due && c.outgoing_due));
    let second = scheduling::claim_due(&store, profile, "b", LEASE, 10, RETRY)
        .await
        .unwrap();
    assert!(second.is_empty(), "leased mailboxes are not claimable");

    // A crashed owner's lease expires and is taken over.
    sqlx::query("UPDATE mailboxes SET lease_expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let taken = scheduling::claim_due(&store, profile, "b", LEASE, 10, RETRY)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    // The old owner's token no longer renews or records.
    let stale = &first[0];
    assert!(
        !scheduling::renew_lease(&store, stale.row.id, stale.lease_token, LEASE)
            .await
            .unwrap()
    );
    assert!(!scheduling::finish_pass(
        &store,
        stale.row.id,
        stale.lease_token,
        &PassRecord::default()
    )
    .await
    .unwrap());
}

#[sqlx::test]
async fn concurrent_claimers_split_the_due_mailboxes_without_overlap_or_passing_the_limit(
    pool: PgPool,
) {
    let (store, profile) = org(&pool).await;
    sqlx::query("UPDATE email_server_profiles SET max_concurrent_connections = 25")
        .execute(&pool)
        .await
        .unwrap();
    for i in 0..40 {
        sqlx::query(
            "INSERT INTO mailboxes (email_address, profile_id, approval_status) VALUES ($1, $2, 'approved')",
        )
        .bind(format!("user{i}@contoso.test"))
        .bind(profile)
        .execute(&pool)
        .await
        .unwrap();
    }
    let claims = futures::future::join_all((0..6).map(|n| {
        let store = store.clone();
        async move {
            scheduling::claim_due(&store, profile, &format!("p{n}"), LEASE, 10, RETRY)
                .await
                .unwrap()
        }
    }))
    .await;
    let mut ids: Vec<Uuid> = claims.iter().flatten().map(|c| c.row.id).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no mailbox claimed twice");
    assert_eq!(
        total, 25,
        "six claimers asking for 10 each get the profile's limit of 25 between them"
    );
}

#[sqlx::test]
async fn a_finished_pass_records_statuses_and_schedules_the_next_one(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let claim = scheduling::claim_due(&store, profile, "a", LEASE, 1, RETRY)
        .await
        .unwrap()
        .remove(0);
    let next = chrono::Utc::now() + chrono::Duration::minutes(5);
    let record = PassRecord {
        workloads: vec![WorkloadRecord {
            workload: Workload::Incoming,
            status: WorkloadStatus::Success,
            failures: 0,
            next_due: next,
            blocked_code: None,
        }],
        clear_error: true,
        succeeded: true,
        items_processed: 7,
        ..PassRecord::default()
    };
    assert!(
        scheduling::finish_pass(&store, claim.row.id, claim.lease_token, &record)
            .await
            .unwrap()
    );
    let (status, processed, lease): (String, i32, Option<String>) = sqlx::query_as(
        "SELECT incoming_status, items_processed_last_pass, lease_owner FROM mailboxes WHERE id = $1",
    )
    .bind(claim.row.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), processed, lease), ("success", 7, None));
}

fn message(item: &str, imid: &str) -> NewEmail {
    NewEmail {
        item_id: item.to_owned(),
        change_key: Some("CK".to_owned()),
        internet_message_id: Some(imid.to_owned()),
        subject: "Quarterly numbers".to_owned(),
        body: "See attached.".to_owned(),
        body_type: "text",
        sender_address: Some("carol@fabrikam.test".to_owned()),
        sender_name: Some("Carol".to_owned()),
        to_recipients: vec![
            "alice@contoso.test".to_owned(),
            "bob@contoso.test".to_owned(),
        ],
        cc_recipients: vec![],
        in_reply_to: None,
        conversation_id: Some("conv-1".to_owned()),
        received_at: Some(chrono::Utc::now()),
        sent_at: None,
        is_read: Some(false),
    }
}

#[sqlx::test]
async fn a_message_received_by_two_mailboxes_is_stored_once_and_replays_add_nothing(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let claims = scheduling::claim_due(&store, profile, "a", LEASE, 10, RETRY)
        .await
        .unwrap();
    for claim in &claims {
        let page = EmailPage {
            emails: vec![message(
                &format!("item-{}", claim.row.email_address),
                "<q1@fabrikam.test>",
            )],
            sync_state: Some("S1".to_owned()),
            ..EmailPage::default()
        };
        let outcome =
            emails::write_page(&store, claim.row.id, claim.lease_token, "inbox", &page, 5)
                .await
                .unwrap();
        assert_eq!(outcome.imported, 1);
        // The same page again (a crash before the next state was saved) adds nothing.
        let again = emails::write_page(&store, claim.row.id, claim.lease_token, "inbox", &page, 5)
            .await
            .unwrap();
        assert_eq!((again.imported, again.already_present), (0, 1));
    }
    let (messages, copies): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM emails), (SELECT count(*) FROM email_copies)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((messages, copies), (1, 2));
    let state = emails::sync_state(&store, claims[0].row.id, "inbox")
        .await
        .unwrap();
    assert_eq!(state.as_deref(), Some("S1"));
}

#[sqlx::test]
async fn a_page_write_with_a_stale_lease_writes_nothing(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let claim = scheduling::claim_due(&store, profile, "a", LEASE, 1, RETRY)
        .await
        .unwrap()
        .remove(0);
    let page = EmailPage {
        emails: vec![message("item-1", "<x@y>")],
        sync_state: Some("S1".to_owned()),
        ..EmailPage::default()
    };
    let error = emails::write_page(&store, claim.row.id, Uuid::new_v4(), "inbox", &page, 5)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("lease lost"), "{error}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM email_copies")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test]
async fn a_failing_item_is_retried_a_bounded_number_of_times(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let claim = scheduling::claim_due(&store, profile, "a", LEASE, 1, RETRY)
        .await
        .unwrap()
        .remove(0);
    let page = EmailPage {
        failed: vec![emails::FailedItem {
            item_id: "poison".to_owned(),
            error: "ErrorCorruptData".to_owned(),
        }],
        ..EmailPage::default()
    };
    let mut gave_up = 0;
    for _ in 0..3 {
        let outcome =
            emails::write_page(&store, claim.row.id, claim.lease_token, "inbox", &page, 3)
                .await
                .unwrap();
        gave_up += outcome.gave_up;
    }
    assert_eq!(gave_up, 1, "given up on the third attempt");
    let retry = emails::items_to_retry(&store, claim.row.id, "inbox", 3, 10)
        .await
        .unwrap();
    assert!(retry.is_empty());
}

#[sqlx::test]
async fn a_repeating_condition_is_one_alert_and_healing_closes_it_with_information(pool: PgPool) {
    let (store, _) = org(&pool).await;
    let mailbox: Uuid = sqlx::query_scalar("SELECT id FROM mailboxes LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let target = AlertTarget::Mailbox(MailboxId(mailbox));
    for n in 0..3 {
        let new = alerts::raise(
            &store,
            target,
            AlertLevel::Error,
            "ews.unauthorized",
            Some(Workload::Incoming),
            "password rejected",
        )
        .await
        .unwrap();
        assert_eq!(new, n == 0);
    }
    let open = alerts::list(&store, target, true, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].occurrences, 3);

    let closed = alerts::resolve(&store, target, Some(Workload::Incoming), &[])
        .await
        .unwrap();
    assert_eq!(closed, ["ews.unauthorized"]);
    assert!(alerts::list(&store, target, true, 10)
        .await
        .unwrap()
        .is_empty());
    let all = alerts::list(&store, target, false, 10).await.unwrap();
    assert!(all
        .iter()
        .any(|a| a.level == "information" && a.code == "ews.unauthorized.resolved"));
}

#[sqlx::test]
async fn a_queued_email_is_claimed_once_and_its_retry_knows_it_may_have_been_sent(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let (_, imid) = exsync::store::outgoing::enqueue(
        &store,
        "alice@contoso.test",
        &["carol@fabrikam.test".to_owned()],
        &[],
        "Hello",
        "Body",
    )
    .await
    .unwrap();
    let claim = scheduling::claim_due(&store, profile, "a", LEASE, 10, RETRY)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.row.email_address == "alice@contoso.test")
        .unwrap();
    let first = exsync::store::outgoing::claim(&store, claim.row.id, claim.lease_token, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].internet_message_id, imid);
    assert!(!first[0].may_have_been_sent());
    // Crash: the row stays 'sending'; the next claim counts a second attempt.
    let second = exsync::store::outgoing::claim(&store, claim.row.id, claim.lease_token, 10)
        .await
        .unwrap();
    assert!(second[0].may_have_been_sent());
}

#[sqlx::test]
async fn a_page_mixing_repeated_and_missing_message_ids_stores_every_copy_once(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let claim = scheduling::claim_due(&store, profile, "a", LEASE, 1, RETRY)
        .await
        .unwrap()
        .remove(0);
    let mut without_id = message("item-c", "unused");
    without_id.internet_message_id = None;
    let mut also_without = message("item-d", "unused");
    also_without.internet_message_id = None;
    let page = EmailPage {
        emails: vec![
            message("item-a", "<same@fabrikam.test>"),
            message("item-b", "<same@fabrikam.test>"),
            without_id,
            also_without,
        ],
        sync_state: Some("S1".to_owned()),
        ..EmailPage::default()
    };
    let outcome = emails::write_page(&store, claim.row.id, claim.lease_token, "inbox", &page, 5)
        .await
        .unwrap();
    assert_eq!((outcome.imported, outcome.already_present), (4, 0));
    let (messages, copies, linked): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM emails), (SELECT count(*) FROM email_copies),
                (SELECT count(DISTINCT email_id) FROM email_copies)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((messages, copies, linked), (3, 4, 3));
    let again = emails::write_page(&store, claim.row.id, claim.lease_token, "inbox", &page, 5)
        .await
        .unwrap();
    assert_eq!((again.imported, again.already_present), (0, 4));
}

#[sqlx::test]
async fn a_read_flag_equal_to_the_stored_one_writes_no_row(pool: PgPool) {
    let (store, profile) = org(&pool).await;
    let claim = scheduling::claim_due(&store, profile, "a", LEASE, 1, RETRY)
        .await
        .unwrap()
        .remove(0);
    let write = |page: EmailPage| {
        let store = store.clone();
        let (id, token) = (claim.row.id, claim.lease_token);
        async move {
            emails::write_page(&store, id, token, "inbox", &page, 5)
                .await
                .unwrap()
        }
    };
    // Graph reports the read flag with every changed message, imported or not.
    write(EmailPage {
        emails: vec![message("item-1", "<r1@fabrikam.test>")],
        read_flags: vec![("item-1".to_owned(), false)],
        ..EmailPage::default()
    })
    .await;
    let version = || async {
        sqlx::query_as::<_, (String, Option<bool>)>(
            "SELECT xmin::text, is_read FROM email_copies WHERE ews_item_id = 'item-1'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let (written, read) = version().await;
    assert_eq!(read, Some(false));
    // The same flag again (a replayed change) leaves the row as it is.
    write(EmailPage {
        read_flags: vec![("item-1".to_owned(), false)],
        ..EmailPage::default()
    })
    .await;
    assert_eq!(version().await, (written.clone(), Some(false)));
    // A changed flag is written.
    write(EmailPage {
        read_flags: vec![("item-1".to_owned(), true)],
        ..EmailPage::default()
    })
    .await;
    let (rewritten, read) = version().await;
    assert_eq!(read, Some(true));
    assert_ne!(rewritten, written);
}

//! Imported email: sync states, emails (stored once), their mailbox copies, skipped and
//! failed items — written page by page, each page with its sync state in one transaction.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// One message to store, as the sync engine extracted it from Exchange.
#[derive(Debug, Clone, Serialize)]
pub struct NewEmail {
    /// EWS item id of this mailbox's copy.
    pub item_id: String,
    /// EWS change key of the copy.
    pub change_key: Option<String>,
    /// Internet Message-ID (the dedupe key across mailboxes), when present.
    pub internet_message_id: Option<String>,
    /// Subject.
    pub subject: String,
    /// Body text or HTML.
    pub body: String,
    /// `text` or `html`.
    pub body_type: &'static str,
    /// Sender address.
    pub sender_address: Option<String>,
    /// Sender display name.
    pub sender_name: Option<String>,
    /// To recipients (addresses).
    pub to_recipients: Vec<String>,
    /// Cc recipients (addresses).
    pub cc_recipients: Vec<String>,
    /// In-Reply-To header.
    pub in_reply_to: Option<String>,
    /// Exchange conversation id.
    pub conversation_id: Option<String>,
    /// DateTimeReceived.
    pub received_at: Option<DateTime<Utc>>,
    /// DateTimeSent.
    pub sent_at: Option<DateTime<Utc>>,
    /// Read flag of the copy.
    pub is_read: Option<bool>,
}

/// Why an item was deliberately not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Received before the effective Process Emails From date.
    BeforeProcessFrom,
    /// Not an email message (e.g. a meeting request or a report in the inbox).
    NotAnEmail,
    /// Left out by `incoming_filter = "responses"`: not a reply to mail sent through exsync.
    FilterResponses,
    /// Left out by `incoming_filter = "known_senders"`: the sender is not known.
    FilterKnownSenders,
    /// Left out by `incoming_filter = "none"`: only tracked mail comes in.
    FilterNone,
    /// Left out by `act_scope = "tracked"`: an appointment, contact or task not tracked.
    NotTracked,
}

impl SkipReason {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::BeforeProcessFrom => "before_process_from",
            SkipReason::NotAnEmail => "not_an_email",
            SkipReason::FilterResponses => "filter_responses",
            SkipReason::FilterKnownSenders => "filter_known_senders",
            SkipReason::FilterNone => "filter_none",
            SkipReason::NotTracked => "not_tracked",
        }
    }
}

/// An item left out on purpose.
#[derive(Debug, Clone)]
pub struct SkippedItem {
    /// EWS item id.
    pub item_id: String,
    /// Why.
    pub reason: SkipReason,
    /// Its DateTimeReceived, when known.
    pub received_at: Option<DateTime<Utc>>,
}

/// An item that could not be imported this time.
#[derive(Debug, Clone)]
pub struct FailedItem {
    /// EWS item id.
    pub item_id: String,
    /// What went wrong (never a secret).
    pub error: String,
}

/// Everything one page of SyncFolderItems changes in the database.
#[derive(Debug, Clone, Default)]
pub struct EmailPage {
    /// Messages to import.
    pub emails: Vec<NewEmail>,
    /// Items skipped on purpose.
    pub skipped: Vec<SkippedItem>,
    /// Items that failed (kept for bounded retries).
    pub failed: Vec<FailedItem>,
    /// Items deleted in Exchange.
    pub deleted: Vec<String>,
    /// Read-flag changes.
    pub read_flags: Vec<(String, bool)>,
    /// The SyncState after this page (`None`: leave the stored one as it is).
    pub sync_state: Option<String>,
}

/// What a page write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// New copies stored (a message already stored for another mailbox counts here too).
    pub imported: usize,
    /// Copies that were already stored (a replay after a reset or a crash).
    pub already_present: usize,
    /// Items that failed.
    pub failed: usize,
    /// Items that gave up after too many attempts during this write.
    pub gave_up: usize,
}

/// Lock the mailbox row's lease for this transaction, failing if it is no longer ours.
pub(crate) async fn fence(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    mailbox_id: Uuid,
    token: Uuid,
) -> Result<(), StoreError> {
    let ours: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM mailboxes WHERE id = $1 AND lease_token = $2 FOR SHARE")
            .bind(mailbox_id)
            .bind(token)
            .fetch_optional(&mut **tx)
            .await?;
    match ours {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost),
    }
}

/// The stored SyncState of a folder (`None`: never synced, or reset).
pub async fn sync_state(
    store: &Store,
    mailbox_id: Uuid,
    folder: &str,
) -> Result<Option<String>, StoreError> {
    let state: Option<Option<String>> = sqlx::query_scalar(
        "SELECT sync_state FROM folder_sync_states WHERE mailbox_id = $1 AND folder = $2",
    )
    .bind(mailbox_id)
    .bind(folder)
    .fetch_optional(store.pool())
    .await?;
    Ok(state.flatten())
}

/// Forget a folder's SyncState (after ErrorInvalidSyncStateData), fenced by the lease.
pub async fn reset_sync_state(
    store: &Store,
    mailbox_id: Uuid,
    token: Uuid,
    folder: &str,
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    fence(&mut tx, mailbox_id, token).await?;
    sqlx::query("DELETE FROM folder_sync_states WHERE mailbox_id = $1 AND folder = $2")
        .bind(mailbox_id)
        .bind(folder)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Which of `item_ids` this mailbox already knows: a stored copy, or an item skipped on
/// purpose (not an email, or older than the Process-From date: those come back by
/// [`skipped_now_admitted`] when the date moves earlier). After ErrorInvalidSyncStateData the
/// folder is reported afresh, and none of these is fetched again. Mail the incoming filter
/// left out is not known: reported again (a user may have tracked it since), it is fetched
/// and judged again.
pub async fn known_items(
    store: &Store,
    mailbox_id: Uuid,
    item_ids: &[String],
) -> Result<Vec<String>, StoreError> {
    if item_ids.is_empty() {
        return Ok(Vec::new());
    }
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT ews_item_id FROM email_copies WHERE mailbox_id = $1 AND ews_item_id = ANY($2)
         UNION
         SELECT ews_item_id FROM skipped_items WHERE mailbox_id = $1 AND ews_item_id = ANY($2)
           AND reason IN ('before_process_from', 'not_an_email')",
    )
    .bind(mailbox_id)
    .bind(item_ids)
    .fetch_all(store.pool())
    .await?;
    Ok(known)
}

/// Items of a folder skipped as older than the Process-From date that the date now admits
/// (it was moved earlier): fetched again and imported. `after`: the effective date (`None`:
/// every such item).
pub async fn skipped_now_admitted(
    store: &Store,
    mailbox_id: Uuid,
    folder: &str,
    after: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT ews_item_id FROM skipped_items
          WHERE mailbox_id = $1 AND folder = $2 AND reason = 'before_process_from'
            AND ($3::timestamptz IS NULL OR received_at >= $3)
          ORDER BY received_at DESC LIMIT $4",
    )
    .bind(mailbox_id)
    .bind(folder)
    .bind(after)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(ids)
}

/// Forget items Exchange no longer has (ErrorItemNotFound after a sync reported them): their
/// failure and skip records go, nothing is retried or alerted. Fenced by the lease.
pub async fn forget_items(
    store: &Store,
    mailbox_id: Uuid,
    token: Uuid,
    item_ids: &[String],
) -> Result<(), StoreError> {
    if item_ids.is_empty() {
        return Ok(());
    }
    let mut tx = store.pool().begin().await?;
    fence(&mut tx, mailbox_id, token).await?;
    for table in ["item_failures", "skipped_items"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE mailbox_id = $1 AND ews_item_id = ANY($2)"
        ))
        .bind(mailbox_id)
        .bind(item_ids)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Failed items of a mailbox still worth retrying (fewer than `max_attempts` attempts).
pub async fn items_to_retry(
    store: &Store,
    mailbox_id: Uuid,
    folder: &str,
    max_attempts: i32,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT ews_item_id FROM item_failures
          WHERE mailbox_id = $1 AND folder = $2 AND gave_up_at IS NULL AND attempts < $3
          ORDER BY last_failed_at LIMIT $4",
    )
    .bind(mailbox_id)
    .bind(folder)
    .bind(max_attempts)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(ids)
}

/// Write one page (emails, copies, skips, failures, deletes, read flags, sync state) in one
/// transaction fenced by the lease. `max_attempts` decides when a failing item is given up.
pub async fn write_page(
    store: &Store,
    mailbox_id: Uuid,
    token: Uuid,
    folder: &str,
    page: &EmailPage,
    max_attempts: i32,
) -> Result<PageOutcome, StoreError> {
    let mut outcome = PageOutcome::default();
    let mut tx = store.pool().begin().await?;
    fence(&mut tx, mailbox_id, token).await?;

    if !page.emails.is_empty() {
        let (imported, present) = insert_emails(&mut tx, mailbox_id, folder, &page.emails).await?;
        outcome.imported = imported;
        outcome.already_present = present;
        let ids: Vec<&str> = page.emails.iter().map(|e| e.item_id.as_str()).collect();
        for table in ["item_failures", "skipped_items"] {
            // Imported now: no longer failed, nor skipped (a Process-From date moved earlier).
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE mailbox_id = $1 AND ews_item_id = ANY($2)"
            ))
            .bind(mailbox_id)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        }
        let newest = page.emails.iter().filter_map(|e| e.received_at).max();
        if let Some(newest) = newest {
            sqlx::query(
                "UPDATE mailboxes SET incoming_watermark = GREATEST(incoming_watermark, $2)
                  WHERE id = $1",
            )
            .bind(mailbox_id)
            .bind(newest)
            .execute(&mut *tx)
            .await?;
        }
    }
    if !page.skipped.is_empty() {
        let ids: Vec<&str> = page.skipped.iter().map(|s| s.item_id.as_str()).collect();
        let reasons: Vec<&str> = page.skipped.iter().map(|s| s.reason.as_str()).collect();
        let received: Vec<Option<DateTime<Utc>>> =
            page.skipped.iter().map(|s| s.received_at).collect();
        sqlx::query(
            "INSERT INTO skipped_items (mailbox_id, ews_item_id, folder, reason, received_at)
             SELECT $1, t.id, $2, t.reason, t.received
               FROM UNNEST($3::text[], $4::text[], $5::timestamptz[]) AS t(id, reason, received)
             ON CONFLICT (mailbox_id, ews_item_id) DO UPDATE
                SET reason = EXCLUDED.reason, received_at = EXCLUDED.received_at,
                    skipped_at = now()",
        )
        .bind(mailbox_id)
        .bind(folder)
        .bind(&ids)
        .bind(&reasons)
        .bind(&received)
        .execute(&mut *tx)
        .await?;
    }
    if !page.failed.is_empty() {
        let ids: Vec<&str> = page.failed.iter().map(|f| f.item_id.as_str()).collect();
        let errors: Vec<String> = page
            .failed
            .iter()
            .map(|f| super::scheduling::truncate(&f.error, 2000))
            .collect();
        let gave_up: i64 = sqlx::query_scalar(
            "WITH upserted AS (
                INSERT INTO item_failures (mailbox_id, ews_item_id, folder, last_error)
                SELECT $1, t.id, $2, t.error FROM UNNEST($3::text[], $4::text[]) AS t(id, error)
                ON CONFLICT (mailbox_id, ews_item_id) DO UPDATE
                   SET attempts = item_failures.attempts + 1,
                       last_error = EXCLUDED.last_error,
                       last_failed_at = now(),
                       gave_up_at = CASE WHEN item_failures.attempts + 1 >= $5
                                         THEN COALESCE(item_failures.gave_up_at, now())
                                         END
                RETURNING gave_up_at)
             SELECT count(*) FROM upserted WHERE gave_up_at IS NOT NULL",
        )
        .bind(mailbox_id)
        .bind(folder)
        .bind(&ids)
        .bind(&errors)
        .bind(max_attempts)
        .fetch_one(&mut *tx)
        .await?;
        outcome.failed = page.failed.len();
        outcome.gave_up = usize::try_from(gave_up).unwrap_or(0);
    }
    if !page.deleted.is_empty() {
        sqlx::query(
            "UPDATE email_copies SET deleted_in_exchange_at = COALESCE(deleted_in_exchange_at, now())
              WHERE mailbox_id = $1 AND ews_item_id = ANY($2)",
        )
        .bind(mailbox_id)
        .bind(&page.deleted)
        .execute(&mut *tx)
        .await?;
    }
    if !page.read_flags.is_empty() {
        let ids: Vec<&str> = page.read_flags.iter().map(|(id, _)| id.as_str()).collect();
        let flags: Vec<bool> = page.read_flags.iter().map(|(_, read)| *read).collect();
        // Only flags that differ: a replayed change writes no row.
        sqlx::query(
            "UPDATE email_copies c SET is_read = t.read
               FROM UNNEST($2::text[], $3::bool[]) AS t(id, read)
              WHERE c.mailbox_id = $1 AND c.ews_item_id = t.id
                AND c.is_read IS DISTINCT FROM t.read",
        )
        .bind(mailbox_id)
        .bind(&ids)
        .bind(&flags)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(state) = &page.sync_state {
        sqlx::query(
            "INSERT INTO folder_sync_states (mailbox_id, folder, sync_state, updated_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (mailbox_id, folder) DO UPDATE
                SET sync_state = EXCLUDED.sync_state, updated_at = now()",
        )
        .bind(mailbox_id)
        .bind(folder)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Insert messages (once per Internet Message-ID) and this mailbox's copies of them.
/// Returns (new copies, copies already present).
async fn insert_emails(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    mailbox_id: Uuid,
    folder: &str,
    emails: &[NewEmail],
) -> Result<(usize, usize), StoreError> {
    // One row per distinct message: copies with the same Message-ID share it.
    let mut email_id_of_imid: HashMap<&str, Uuid> = HashMap::new();
    let mut copy_email_ids = Vec::with_capacity(emails.len());
    let mut rows: Vec<&NewEmail> = Vec::with_capacity(emails.len());
    let mut proposed: Vec<Uuid> = Vec::with_capacity(emails.len());
    for email in emails {
        let known = email
            .internet_message_id
            .as_deref()
            .and_then(|imid| email_id_of_imid.get(imid).copied());
        let id = match known {
            Some(id) => id,
            None => {
                let id = Uuid::new_v4();
                if let Some(imid) = email.internet_message_id.as_deref() {
                    email_id_of_imid.insert(imid, id);
                }
                rows.push(email);
                proposed.push(id);
                id
            }
        };
        copy_email_ids.push(id);
    }

    let imids: Vec<Option<&str>> = rows
        .iter()
        .map(|e| e.internet_message_id.as_deref())
        .collect();
    let subjects: Vec<&str> = rows.iter().map(|e| e.subject.as_str()).collect();
    let bodies: Vec<&str> = rows.iter().map(|e| e.body.as_str()).collect();
    let body_types: Vec<&str> = rows.iter().map(|e| e.body_type).collect();
    let senders: Vec<Option<&str>> = rows.iter().map(|e| e.sender_address.as_deref()).collect();
    let sender_names: Vec<Option<&str>> = rows.iter().map(|e| e.sender_name.as_deref()).collect();
    let tos: Vec<serde_json::Value> = rows
        .iter()
        .map(|e| serde_json::json!(e.to_recipients))
        .collect();
    let ccs: Vec<serde_json::Value> = rows
        .iter()
        .map(|e| serde_json::json!(e.cc_recipients))
        .collect();
    let in_reply_to: Vec<Option<&str>> = rows.iter().map(|e| e.in_reply_to.as_deref()).collect();
    let conversations: Vec<Option<&str>> =
        rows.iter().map(|e| e.conversation_id.as_deref()).collect();
    let received: Vec<Option<DateTime<Utc>>> = rows.iter().map(|e| e.received_at).collect();
    let sent: Vec<Option<DateTime<Utc>>> = rows.iter().map(|e| e.sent_at).collect();

    // Existing messages keep their row: the no-op update makes RETURNING give its id.
    let stored: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "WITH input AS (
            SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::jsonb[], $9::jsonb[], $10::text[],
                                 $11::text[], $12::timestamptz[], $13::timestamptz[])
                AS t(id, imid, subject, body, body_type, sender, sender_name, tos, ccs,
                     in_reply_to, conversation, received, sent)),
         stored AS (
            INSERT INTO emails (id, internet_message_id, direction, subject, body, body_type,
                                sender_address, sender_name, to_recipients, cc_recipients,
                                in_reply_to, conversation_id, received_at, sent_at)
            SELECT id, imid, 'incoming', subject, body, body_type, sender, sender_name, tos, ccs,
                   in_reply_to, conversation, received, sent
              FROM input
            ON CONFLICT (internet_message_id) DO UPDATE
               SET internet_message_id = EXCLUDED.internet_message_id
            RETURNING id, internet_message_id)
         -- Two equi-joins rather than one OR join: the planner hash-joins each, where the OR
         -- made a nested loop, quadratic in the page size (1,000 emails: 650 ms -> see
         -- docs/performance.md). Rows with a Message-ID match on it (new or existing row),
         -- rows without one can only be new and match on the proposed id.
         SELECT input.id, stored.id
           FROM input JOIN stored ON stored.internet_message_id = input.imid
         UNION ALL
         SELECT input.id, stored.id
           FROM input JOIN stored ON stored.id = input.id
          WHERE input.imid IS NULL",
    )
    .bind(&proposed)
    .bind(&imids)
    .bind(&subjects)
    .bind(&bodies)
    .bind(&body_types)
    .bind(&senders)
    .bind(&sender_names)
    .bind(&tos)
    .bind(&ccs)
    .bind(&in_reply_to)
    .bind(&conversations)
    .bind(&received)
    .bind(&sent)
    .fetch_all(&mut **tx)
    .await?;
    let actual: HashMap<Uuid, Uuid> = stored.into_iter().collect();

    let item_ids: Vec<&str> = emails.iter().map(|e| e.item_id.as_str()).collect();
    let email_ids: Vec<Uuid> = copy_email_ids
        .iter()
        .map(|id| actual.get(id).copied().unwrap_or(*id))
        .collect();
    let change_keys: Vec<Option<&str>> = emails.iter().map(|e| e.change_key.as_deref()).collect();
    let read: Vec<Option<bool>> = emails.iter().map(|e| e.is_read).collect();
    let inserted = sqlx::query(
        "INSERT INTO email_copies (mailbox_id, ews_item_id, email_id, folder, change_key, is_read)
         SELECT $1, t.item, t.email, $2, t.ck, t.read
           FROM UNNEST($3::text[], $4::uuid[], $5::text[], $6::bool[]) AS t(item, email, ck, read)
         ON CONFLICT (mailbox_id, ews_item_id) DO NOTHING",
    )
    .bind(mailbox_id)
    .bind(folder)
    .bind(&item_ids)
    .bind(&email_ids)
    .bind(&change_keys)
    .bind(&read)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let inserted = usize::try_from(inserted).unwrap_or(0);
    Ok((inserted, emails.len() - inserted))
}

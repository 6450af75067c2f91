//! The statements of the operator tools: Test & Enable (`exsync test-mailbox`) looks mailboxes
//! up and records its results; `exsync explain` reads a mailbox's health and what became of
//! one item. Reads and small updates only; the decisions stay in `probe` and `explain`.

use super::{MailboxRow, Store, StoreError, MAILBOX_COLUMNS};
use crate::domain::Workload;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A mailbox row by address (case-insensitive).
pub async fn mailbox_by_address(
    store: &Store,
    address: &str,
) -> Result<Option<MailboxRow>, StoreError> {
    Ok(sqlx::query_as::<_, MailboxRow>(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE email_address = lower($1)"
    ))
    .bind(address.trim())
    .fetch_optional(store.pool())
    .await?)
}

/// A profile's id by name.
pub async fn profile_id_by_name(store: &Store, name: &str) -> Result<Option<Uuid>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM email_server_profiles WHERE name = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await?,
    )
}

/// Every mailbox row of a profile, by address.
pub async fn mailboxes_of_profile(
    store: &Store,
    profile_id: Uuid,
) -> Result<Vec<MailboxRow>, StoreError> {
    Ok(sqlx::query_as::<_, MailboxRow>(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE profile_id = $1 ORDER BY email_address"
    ))
    .bind(profile_id)
    .fetch_all(store.pool())
    .await?)
}

/// One workload's Test & Enable result, as recorded.
#[derive(Debug, Clone)]
pub enum TestedWorkload {
    /// Passed: enable it (status success, no block, no failures, due now).
    Passed(Workload),
    /// Failed: status failure and the last error (code, operator-facing text).
    Failed(Workload, String, String),
}

/// Record a Test & Enable run on the mailbox row (one transaction). `all_passed` clears the
/// last error; `own_credentials_proven` lifts the mailbox's credential block.
pub async fn record_test(
    store: &Store,
    mailbox_id: Uuid,
    results: &[TestedWorkload],
    all_passed: bool,
    own_credentials_proven: bool,
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    for result in results {
        match result {
            TestedWorkload::Passed(workload) => {
                let name = workload.as_str();
                sqlx::query(&format!(
                    "UPDATE mailboxes SET {name}_status = 'success', {name}_failures = 0,
                            {name}_blocked_code = NULL, {name}_blocked_at = NULL,
                            {name}_next_due_at = now()
                      WHERE id = $1"
                ))
                .bind(mailbox_id)
                .execute(&mut *tx)
                .await?;
            }
            TestedWorkload::Failed(workload, code, text) => {
                let name = workload.as_str();
                sqlx::query(&format!(
                    "UPDATE mailboxes SET {name}_status = 'failure', last_error_code = $2,
                            last_error_text = $3, last_error_workload = $4, last_error_at = now(),
                            last_error_client_request_id = NULL, last_error_request_id = NULL,
                            last_error_be_server = NULL
                      WHERE id = $1"
                ))
                .bind(mailbox_id)
                .bind(code)
                .bind(super::scheduling::truncate(text, 2000))
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    if all_passed {
        sqlx::query(
            "UPDATE mailboxes SET last_error_code = NULL, last_error_text = NULL,
                    last_error_workload = NULL, last_error_at = NULL,
                    last_error_client_request_id = NULL, last_error_request_id = NULL,
                    last_error_be_server = NULL
              WHERE id = $1",
        )
        .bind(mailbox_id)
        .execute(&mut *tx)
        .await?;
    }
    if own_credentials_proven {
        sqlx::query(
            "UPDATE mailboxes SET credentials_blocked_at = NULL, credentials_blocked_reason = NULL
              WHERE id = $1",
        )
        .bind(mailbox_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A mailbox's scheduling and health columns (and its profile's credential block).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailboxHealth {
    /// Incoming status.
    pub incoming_status: String,
    /// Outgoing status.
    pub outgoing_status: String,
    /// ACT status.
    pub act_status: String,
    /// Incoming next due.
    pub incoming_next_due_at: DateTime<Utc>,
    /// Outgoing next due.
    pub outgoing_next_due_at: DateTime<Utc>,
    /// ACT next due.
    pub act_next_due_at: DateTime<Utc>,
    /// Incoming consecutive failures.
    pub incoming_failures: i32,
    /// Outgoing consecutive failures.
    pub outgoing_failures: i32,
    /// ACT consecutive failures.
    pub act_failures: i32,
    /// Why incoming is paused.
    pub incoming_blocked_code: Option<String>,
    /// Why outgoing is paused.
    pub outgoing_blocked_code: Option<String>,
    /// Why ACT is paused.
    pub act_blocked_code: Option<String>,
    /// The lease owner, when the lease is live.
    pub lease_owner: Option<String>,
    /// Why the mailbox's own credentials are blocked.
    pub credentials_blocked_reason: Option<String>,
    /// Why the profile's credentials are blocked.
    pub profile_credentials_blocked_reason: Option<String>,
    /// Last error code.
    pub last_error_code: Option<String>,
    /// Last error text.
    pub last_error_text: Option<String>,
    /// Last error's workload.
    pub last_error_workload: Option<String>,
    /// Last error's time.
    pub last_error_at: Option<DateTime<Utc>>,
    /// The `client-request-id` of the last error's request.
    pub last_error_client_request_id: Option<Uuid>,
    /// Exchange's `request-id` for it.
    pub last_error_request_id: Option<String>,
    /// Exchange's `X-BEServer` for it.
    pub last_error_be_server: Option<String>,
    /// Last successful pass.
    pub last_successful_sync: Option<DateTime<Utc>>,
    /// Newest DateTimeReceived imported.
    pub incoming_watermark: Option<DateTime<Utc>>,
}

/// One workload's columns of [`MailboxHealth`].
#[derive(Debug, Clone, Copy)]
pub struct WorkloadHealth<'a> {
    /// `not_run`, `success` or `failure`.
    pub status: &'a str,
    /// When next due.
    pub next_due_at: DateTime<Utc>,
    /// Consecutive failures.
    pub failures: i32,
    /// Why paused, if it is.
    pub blocked_code: Option<&'a str>,
}

impl MailboxHealth {
    /// The columns of one workload.
    pub fn of(&self, w: Workload) -> WorkloadHealth<'_> {
        let (status, next_due_at, failures, blocked) = match w {
            Workload::Incoming => (
                &self.incoming_status,
                self.incoming_next_due_at,
                self.incoming_failures,
                &self.incoming_blocked_code,
            ),
            Workload::Outgoing => (
                &self.outgoing_status,
                self.outgoing_next_due_at,
                self.outgoing_failures,
                &self.outgoing_blocked_code,
            ),
            Workload::Act => (
                &self.act_status,
                self.act_next_due_at,
                self.act_failures,
                &self.act_blocked_code,
            ),
        };
        WorkloadHealth {
            status,
            next_due_at,
            failures,
            blocked_code: blocked.as_deref(),
        }
    }
}

/// The health columns of a mailbox.
pub async fn mailbox_health(store: &Store, mailbox_id: Uuid) -> Result<MailboxHealth, StoreError> {
    Ok(sqlx::query_as::<_, MailboxHealth>(
        "SELECT m.incoming_status, m.outgoing_status, m.act_status,
                m.incoming_next_due_at, m.outgoing_next_due_at, m.act_next_due_at,
                m.incoming_failures, m.outgoing_failures, m.act_failures,
                m.incoming_blocked_code, m.outgoing_blocked_code, m.act_blocked_code,
                CASE WHEN m.lease_expires_at > now() THEN m.lease_owner END AS lease_owner,
                m.credentials_blocked_reason,
                p.credentials_blocked_reason AS profile_credentials_blocked_reason,
                m.last_error_code, m.last_error_text, m.last_error_workload, m.last_error_at,
                m.last_error_client_request_id, m.last_error_request_id, m.last_error_be_server,
                m.last_successful_sync, m.incoming_watermark
           FROM mailboxes m JOIN email_server_profiles p ON p.id = m.profile_id
          WHERE m.id = $1",
    )
    .bind(mailbox_id)
    .fetch_one(store.pool())
    .await?)
}

/// A stored copy of an email in one mailbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCopy {
    /// The `emails` row.
    pub email_id: Uuid,
    /// EWS item id of the copy.
    pub ews_item_id: String,
    /// Folder.
    pub folder: String,
    /// When imported.
    pub imported_at: DateTime<Utc>,
    /// When deleted in Exchange, if it was.
    pub deleted_in_exchange_at: Option<DateTime<Utc>>,
}

/// This mailbox's copy of an item, by EWS item id or Internet Message-ID.
pub async fn copy_of_item(
    store: &Store,
    mailbox_id: Uuid,
    id: &str,
    message_id: Option<&str>,
) -> Result<Option<StoredCopy>, StoreError> {
    Ok(sqlx::query_as::<_, StoredCopy>(
        "SELECT c.email_id, c.ews_item_id, c.folder, c.imported_at, c.deleted_in_exchange_at
           FROM email_copies c JOIN emails e ON e.id = c.email_id
          WHERE c.mailbox_id = $1
            AND (c.ews_item_id = $2 OR e.internet_message_id = $3 OR e.internet_message_id = $2)
          ORDER BY c.imported_at LIMIT 1",
    )
    .bind(mailbox_id)
    .bind(id)
    .bind(message_id)
    .fetch_optional(store.pool())
    .await?)
}

/// An item deliberately not imported.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SkippedRecord {
    /// `before_process_from` or `not_an_email`.
    pub reason: String,
    /// Its DateTimeReceived, if known.
    pub received_at: Option<DateTime<Utc>>,
    /// When skipped.
    pub skipped_at: DateTime<Utc>,
}

/// Why an item of this mailbox was skipped, if it was.
pub async fn skipped_item(
    store: &Store,
    mailbox_id: Uuid,
    ews_item_id: &str,
) -> Result<Option<SkippedRecord>, StoreError> {
    Ok(sqlx::query_as::<_, SkippedRecord>(
        "SELECT reason, received_at, skipped_at FROM skipped_items
          WHERE mailbox_id = $1 AND ews_item_id = $2",
    )
    .bind(mailbox_id)
    .bind(ews_item_id)
    .fetch_optional(store.pool())
    .await?)
}

/// An item that failed to import.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailureRecord {
    /// The last error.
    pub last_error: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When exsync gave up, if it did.
    pub gave_up_at: Option<DateTime<Utc>>,
    /// The last attempt.
    pub last_failed_at: DateTime<Utc>,
}

/// The failure record of an item of this mailbox, if any.
pub async fn item_failure(
    store: &Store,
    mailbox_id: Uuid,
    ews_item_id: &str,
) -> Result<Option<FailureRecord>, StoreError> {
    Ok(sqlx::query_as::<_, FailureRecord>(
        "SELECT last_error, attempts, gave_up_at, last_failed_at FROM item_failures
          WHERE mailbox_id = $1 AND ews_item_id = $2",
    )
    .bind(mailbox_id)
    .bind(ews_item_id)
    .fetch_optional(store.pool())
    .await?)
}

/// The `emails` row holding a message, by Internet Message-ID.
pub async fn email_by_message_id(
    store: &Store,
    message_id: &str,
) -> Result<Option<Uuid>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM emails WHERE internet_message_id = $1")
            .bind(message_id)
            .fetch_optional(store.pool())
            .await?,
    )
}

/// An outgoing email's state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutgoingRecord {
    /// `pending`, `sending`, `sent` or `failed`.
    pub status: String,
    /// Attempts.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// An outgoing email of this mailbox, by Internet Message-ID: the one Exchange assigned
/// (`sent_message_id`) or exsync's own reference for the row.
pub async fn outgoing_by_message_id(
    store: &Store,
    mailbox_id: Uuid,
    message_id: &str,
) -> Result<Option<OutgoingRecord>, StoreError> {
    Ok(sqlx::query_as::<_, OutgoingRecord>(
        "SELECT status, attempts, last_error, sent_at FROM outgoing_emails
          WHERE mailbox_id = $1 AND (internet_message_id = $2 OR sent_message_id = $2)
          LIMIT 1",
    )
    .bind(mailbox_id)
    .bind(message_id)
    .fetch_optional(store.pool())
    .await?)
}

//! The outgoing email queue: applications insert `pending` rows; a pass claims them
//! (`sending`, attempt counted before anything reaches Exchange), and records `sent` or a
//! retry or `failed`. The row's id travels with the message as its idempotency key (the
//! `ExsyncOutgoingId` extended property): that is how a retry after a crash finds out whether
//! Exchange already sent it (exactly once), and how the Message-ID Exchange assigned is read
//! back into `sent_message_id`.

use super::emails::fence;
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One queued email, claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutgoingEmail {
    /// Row id.
    pub id: Uuid,
    /// Sending mailbox.
    pub mailbox_id: Uuid,
    /// To recipients.
    pub to_recipients: Vec<String>,
    /// Cc recipients.
    pub cc_recipients: Vec<String>,
    /// Bcc recipients.
    pub bcc_recipients: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// `text` or `html`.
    pub body_type: String,
    /// exsync's own reference id for the message (set by the database at insert; not sent:
    /// Exchange assigns the Message-ID, recorded in `sent_message_id`).
    pub internet_message_id: String,
    /// Attempts including this one.
    pub attempts: i32,
    /// When exsync last asked the server to send it (a send request left, its answer maybe
    /// lost); `None`: no send request was ever issued.
    pub send_issued_at: Option<DateTime<Utc>>,
}

impl OutgoingEmail {
    /// Whether an earlier attempt may already have reached Exchange (so check Sent Items).
    pub fn may_have_been_sent(&self) -> bool {
        self.attempts > 1 || self.send_issued_at.is_some()
    }
}

/// Claim up to `limit` due emails of a mailbox: they become `sending` with the attempt counted.
pub async fn claim(
    store: &Store,
    mailbox_id: Uuid,
    token: Uuid,
    limit: i64,
) -> Result<Vec<OutgoingEmail>, StoreError> {
    let mut tx = store.pool().begin().await?;
    fence(&mut tx, mailbox_id, token).await?;
    let claimed = sqlx::query_as::<_, OutgoingEmail>(
        "UPDATE outgoing_emails o SET status = 'sending', attempts = o.attempts + 1
           FROM (SELECT id FROM outgoing_emails
                  WHERE mailbox_id = $1 AND status IN ('pending', 'sending')
                    AND next_attempt_at <= now()
                  ORDER BY queued_at, id
                  LIMIT $2
                  FOR UPDATE SKIP LOCKED) due
          WHERE o.id = due.id
         RETURNING o.id, o.mailbox_id, o.to_recipients, o.cc_recipients, o.bcc_recipients,
                   o.subject, o.body, o.body_type, o.internet_message_id, o.attempts,
                   o.send_issued_at",
    )
    .bind(mailbox_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut claimed = claimed;
    claimed.sort_by_key(|e| e.attempts);
    Ok(claimed)
}

/// Read-backs of a sent email's Message-ID before exsync stops looking (Sent Items is
/// filed asynchronously; each outgoing pass tries again).
pub const MESSAGE_ID_LOOKUPS: i32 = 5;

/// Record a send Exchange accepted: the row becomes `sent`; with the Message-ID Exchange
/// assigned (when already read back) the message is also stored once in `emails`.
pub async fn mark_sent(
    store: &Store,
    email: &OutgoingEmail,
    sent_message_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outgoing_emails SET status = 'sent', sent_at = now(), last_error = NULL
          WHERE id = $1",
    )
    .bind(email.id)
    .execute(store.pool())
    .await?;
    if let Some(id) = sent_message_id {
        record_message_id(store, email.id, id).await?;
    }
    Ok(())
}

/// Record the Message-ID Exchange assigned to a sent email, and store the message once in
/// `emails` under it (so its copy arriving in another tracked mailbox is recognised).
pub async fn record_message_id(
    store: &Store,
    outgoing_id: Uuid,
    message_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH o AS (
            UPDATE outgoing_emails SET sent_message_id = $2 WHERE id = $1 AND status = 'sent'
            RETURNING mailbox_id, subject, body, body_type, to_recipients, cc_recipients, sent_at)
         INSERT INTO emails (internet_message_id, direction, subject, body, body_type,
                             sender_address, to_recipients, cc_recipients, sent_at)
         SELECT $2, 'outgoing', o.subject, o.body, o.body_type, m.email_address,
                to_jsonb(o.to_recipients), to_jsonb(o.cc_recipients), o.sent_at
           FROM o JOIN mailboxes m ON m.id = o.mailbox_id
         ON CONFLICT (internet_message_id) DO NOTHING",
    )
    .bind(outgoing_id)
    .bind(super::scheduling::truncate(message_id, 2000))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A read-back that did not find the sent copy yet. After [`MESSAGE_ID_LOOKUPS`] misses the
/// message is stored in `emails` under exsync's own reference id (nothing is lost; a copy of
/// it imported later from another mailbox would then be a second row).
pub async fn note_message_id_missing(store: &Store, outgoing_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "WITH o AS (
            UPDATE outgoing_emails SET message_id_lookups = message_id_lookups + 1
             WHERE id = $1 AND status = 'sent' AND sent_message_id IS NULL
            RETURNING mailbox_id, internet_message_id, subject, body, body_type, to_recipients,
                      cc_recipients, sent_at, message_id_lookups)
         INSERT INTO emails (internet_message_id, direction, subject, body, body_type,
                             sender_address, to_recipients, cc_recipients, sent_at)
         SELECT o.internet_message_id, 'outgoing', o.subject, o.body, o.body_type,
                m.email_address, to_jsonb(o.to_recipients), to_jsonb(o.cc_recipients), o.sent_at
           FROM o JOIN mailboxes m ON m.id = o.mailbox_id
          WHERE o.message_id_lookups >= $2
         ON CONFLICT (internet_message_id) DO NOTHING",
    )
    .bind(outgoing_id)
    .bind(MESSAGE_ID_LOOKUPS)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Sent emails of a mailbox whose Message-ID has not been read back yet (oldest first).
pub async fn awaiting_message_id(
    store: &Store,
    mailbox_id: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let ids = sqlx::query_scalar(
        "SELECT id FROM outgoing_emails
          WHERE mailbox_id = $1 AND status = 'sent' AND sent_message_id IS NULL
            AND message_id_lookups < $2
          ORDER BY sent_at LIMIT $3",
    )
    .bind(mailbox_id)
    .bind(MESSAGE_ID_LOOKUPS)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(ids)
}

/// Record, just before the request leaves, that the server is asked to send this email: a
/// retry that then finds no trace of it knows the send may have happened.
pub async fn note_send_issued(store: &Store, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE outgoing_emails SET send_issued_at = now() WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Withdraw the mark of [`note_send_issued`]: the server answered definitely that it did not
/// send the email (an error answer of its own), so a normal retry may send it.
pub async fn note_send_not_issued(store: &Store, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE outgoing_emails SET send_issued_at = NULL WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// When a send request for this email last left with its outcome unknown (`None`: never,
/// or the server said it sent nothing).
pub async fn send_issued_at(store: &Store, id: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
    let issued = sqlx::query_scalar("SELECT send_issued_at FROM outgoing_emails WHERE id = $1")
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    Ok(issued.flatten())
}

/// Keep why an email is waiting (a mailbox-level refusal) without changing its status.
pub async fn note_error(store: &Store, id: Uuid, error: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE outgoing_emails SET last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(super::scheduling::truncate(error, 2000))
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Put an email back in the queue after a failed attempt.
pub async fn mark_retry(
    store: &Store,
    id: Uuid,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outgoing_emails SET status = 'pending', last_error = $2, next_attempt_at = $3
          WHERE id = $1",
    )
    .bind(id)
    .bind(super::scheduling::truncate(error, 2000))
    .bind(next_attempt_at)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Give an email up for good, keeping the error.
pub async fn mark_failed(store: &Store, id: Uuid, error: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE outgoing_emails SET status = 'failed', last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(super::scheduling::truncate(error, 2000))
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Release emails a pass claimed but did not get to (shutdown): back to `pending`, the
/// unused attempt not counted.
pub async fn unclaim(store: &Store, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE outgoing_emails SET status = 'pending', attempts = GREATEST(attempts - 1, 0)
          WHERE id = ANY($1) AND status = 'sending'",
    )
    .bind(ids)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Queue an email from a mailbox (what `exsync enqueue` and applications do).
pub async fn enqueue(
    store: &Store,
    from_address: &str,
    to: &[String],
    cc: &[String],
    subject: &str,
    body: &str,
) -> Result<(Uuid, String), StoreError> {
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "INSERT INTO outgoing_emails (mailbox_id, to_recipients, cc_recipients, subject, body)
         SELECT id, $2, $3, $4, $5 FROM mailboxes WHERE email_address = lower($1)
         RETURNING id, internet_message_id",
    )
    .bind(from_address)
    .bind(to)
    .bind(cc)
    .bind(subject)
    .bind(body)
    .fetch_optional(store.pool())
    .await?;
    row.ok_or_else(|| {
        StoreError::NotFound(format!(
            "no mailbox {from_address:?}: declare it with `exsync apply` first"
        ))
    })
}

//! Claiming due mailboxes with leases, renewing and releasing them, and recording a pass.
//!
//! A claim is a lease on one mailbox row (`lease_owner`, `lease_expires_at`) with a fencing
//! token (`lease_token`): every later write of the pass names the token, so a pass whose
//! lease was taken over (after a crash or a stall) can no longer write. Claims use
//! `FOR UPDATE SKIP LOCKED`, so several processes on one database never claim the same
//! mailbox, and an expired lease is claimable again.

use super::{MailboxRow, Store, StoreError, MAILBOX_COLUMNS};
use crate::domain::{Workload, WorkloadStatus};
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use std::time::Duration;
use uuid::Uuid;

/// A mailbox claimed for one pass: its settings, which workloads are due, and its health.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedMailbox {
    /// The mailbox's settings row.
    #[sqlx(flatten)]
    pub row: MailboxRow,
    /// Fencing token of this claim.
    pub lease_token: Uuid,
    /// Incoming email is due.
    pub incoming_due: bool,
    /// Outgoing email is due.
    pub outgoing_due: bool,
    /// Appointments, contacts and tasks are due.
    pub act_due: bool,
    /// Consecutive failures of incoming email.
    pub incoming_failures: i32,
    /// Consecutive failures of outgoing email.
    pub outgoing_failures: i32,
    /// Consecutive failures of ACT.
    pub act_failures: i32,
    /// Why incoming is blocked, if it is.
    pub incoming_blocked_code: Option<String>,
    /// Why outgoing is blocked, if it is.
    pub outgoing_blocked_code: Option<String>,
    /// Why ACT is blocked, if it is.
    pub act_blocked_code: Option<String>,
    /// When the mailbox's own credentials were rejected (mailbox credentials only).
    pub credentials_blocked_at: Option<DateTime<Utc>>,
    /// Newest DateTimeReceived imported.
    pub incoming_watermark: Option<DateTime<Utc>>,
}

impl ClaimedMailbox {
    /// Whether a workload is due in this pass.
    pub fn is_due(&self, workload: Workload) -> bool {
        match workload {
            Workload::Incoming => self.incoming_due,
            Workload::Outgoing => self.outgoing_due,
            Workload::Act => self.act_due,
        }
    }

    /// Consecutive failures of a workload before this pass.
    pub fn failures(&self, workload: Workload) -> i32 {
        match workload {
            Workload::Incoming => self.incoming_failures,
            Workload::Outgoing => self.outgoing_failures,
            Workload::Act => self.act_failures,
        }
    }

    /// Block code of a workload before this pass.
    pub fn blocked_code(&self, workload: Workload) -> Option<&str> {
        match workload {
            Workload::Incoming => self.incoming_blocked_code.as_deref(),
            Workload::Outgoing => self.outgoing_blocked_code.as_deref(),
            Workload::Act => self.act_blocked_code.as_deref(),
        }
    }
}

/// SQL: a workload is due when its method is on and its due time has come.
const DUE: &str = "(m.{w}_method = 'server_side_sync' AND m.{w}_next_due_at <= now())";

fn due(workload: &str) -> String {
    DUE.replace("{w}", workload)
}

/// Claim up to `limit` due mailboxes of one profile for `owner`, leased for `lease`.
///
/// Mailboxes whose credentials (or whose profile's credentials) were rejected are skipped
/// until `credential_retry` has passed since, or until their row changes (which lifts the
/// block). Leases of crashed processes are taken over once expired.
///
/// The profile's `max_concurrent_connections` holds across processes too: live leases of the
/// profile, whoever holds them, are subtracted from it (a pass holds one lease and makes one
/// request at a time), so N instances on one database never exceed the limit together.
pub async fn claim_due(
    store: &Store,
    profile_id: Uuid,
    owner: &str,
    lease: Duration,
    limit: u32,
    credential_retry: Duration,
) -> Result<Vec<ClaimedMailbox>, StoreError> {
    let (incoming, outgoing, act) = (due("incoming"), due("outgoing"), due("act"));
    let columns = MAILBOX_COLUMNS
        .split(", ")
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        r#"
        WITH candidates AS (
            SELECT m.id
              FROM mailboxes m
              JOIN email_server_profiles p ON p.id = m.profile_id
             WHERE m.profile_id = $1
               AND p.enabled
               AND (m.lease_expires_at IS NULL OR m.lease_expires_at < now())
               AND (p.credentials_blocked_at IS NULL
                    OR p.credentials_blocked_at < now() - $5 * interval '1 millisecond')
               AND (m.credentials_blocked_at IS NULL
                    OR m.credentials_blocked_at < now() - $5 * interval '1 millisecond')
               AND ({incoming} OR {outgoing} OR {act})
             ORDER BY LEAST(m.incoming_next_due_at, m.outgoing_next_due_at, m.act_next_due_at)
             LIMIT LEAST($4, GREATEST(0,
                   (SELECT max_concurrent_connections FROM email_server_profiles WHERE id = $1)
                 - (SELECT count(*) FROM mailboxes l
                     WHERE l.profile_id = $1 AND l.lease_expires_at >= now())))
             FOR UPDATE OF m SKIP LOCKED
        )
        UPDATE mailboxes m
           SET lease_owner = $2,
               lease_expires_at = now() + $3 * interval '1 millisecond',
               lease_token = gen_random_uuid()
          FROM candidates c
         WHERE m.id = c.id
        RETURNING {columns}, m.lease_token,
                  {incoming} AS incoming_due, {outgoing} AS outgoing_due, {act} AS act_due,
                  m.incoming_failures, m.outgoing_failures, m.act_failures,
                  m.incoming_blocked_code, m.outgoing_blocked_code, m.act_blocked_code,
                  m.credentials_blocked_at, m.incoming_watermark
        "#
    );
    // Claimers of one profile take turns (a transaction-scoped advisory lock), so that the
    // count of live leases they subtract from the limit cannot be read by two at once.
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7013))")
        .bind(profile_id)
        .execute(&mut *tx)
        .await?;
    let claimed = sqlx::query_as::<_, ClaimedMailbox>(&sql)
        .bind(profile_id)
        .bind(owner)
        .bind(millis(lease))
        .bind(i64::from(limit))
        .bind(millis(credential_retry))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Claim one mailbox now, whatever its due times (operator tools and tests): every workload
/// whose method is on counts as due. `None` when another process holds its lease.
pub async fn claim_mailbox(
    store: &Store,
    mailbox_id: Uuid,
    owner: &str,
    lease: Duration,
) -> Result<Option<ClaimedMailbox>, StoreError> {
    let on = |w: &str| format!("(m.{w}_method = 'server_side_sync')");
    let columns = MAILBOX_COLUMNS
        .split(", ")
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        r#"
        UPDATE mailboxes m
           SET lease_owner = $2,
               lease_expires_at = now() + $3 * interval '1 millisecond',
               lease_token = gen_random_uuid()
         WHERE m.id = $1 AND (m.lease_expires_at IS NULL OR m.lease_expires_at < now())
        RETURNING {columns}, m.lease_token,
                  {i} AS incoming_due, {o} AS outgoing_due, {a} AS act_due,
                  m.incoming_failures, m.outgoing_failures, m.act_failures,
                  m.incoming_blocked_code, m.outgoing_blocked_code, m.act_blocked_code,
                  m.credentials_blocked_at, m.incoming_watermark
        "#,
        i = on("incoming"),
        o = on("outgoing"),
        a = on("act"),
    );
    let claimed = sqlx::query_as::<_, ClaimedMailbox>(&sql)
        .bind(mailbox_id)
        .bind(owner)
        .bind(millis(lease))
        .fetch_optional(store.pool())
        .await?;
    Ok(claimed)
}

/// Lease one mailbox for an operator's test (`exsync test-mailbox`) if its profile has a free
/// connection: like a claim, it counts against `max_concurrent_connections` across processes
/// (the daemon's claims subtract it), and no pass runs on the mailbox meanwhile. `None`: the
/// mailbox is leased or the profile's connections are all in use; try again shortly.
pub async fn lease_for_test(
    store: &Store,
    profile_id: Uuid,
    mailbox_id: Uuid,
    owner: &str,
    lease: Duration,
) -> Result<Option<Uuid>, StoreError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7013))")
        .bind(profile_id)
        .execute(&mut *tx)
        .await?;
    let token: Option<Uuid> = sqlx::query_scalar(
        "UPDATE mailboxes m
            SET lease_owner = $3,
                lease_expires_at = now() + $4 * interval '1 millisecond',
                lease_token = gen_random_uuid()
          WHERE m.id = $2 AND m.profile_id = $1
            AND (m.lease_expires_at IS NULL OR m.lease_expires_at < now())
            AND (SELECT count(*) FROM mailboxes l
                  WHERE l.profile_id = $1 AND l.lease_expires_at >= now())
                < (SELECT max_concurrent_connections FROM email_server_profiles WHERE id = $1)
         RETURNING m.lease_token",
    )
    .bind(profile_id)
    .bind(mailbox_id)
    .bind(owner)
    .bind(millis(lease))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Extend a lease; `false` when it is no longer ours (taken over or released).
pub async fn renew_lease(
    store: &Store,
    mailbox_id: Uuid,
    token: Uuid,
    lease: Duration,
) -> Result<bool, StoreError> {
    let renewed = sqlx::query(
        "UPDATE mailboxes SET lease_expires_at = now() + $3 * interval '1 millisecond'
          WHERE id = $1 AND lease_token = $2",
    )
    .bind(mailbox_id)
    .bind(token)
    .bind(millis(lease))
    .execute(store.pool())
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Give a lease back without recording a pass (shutdown before the pass started).
pub async fn release_lease(store: &Store, mailbox_id: Uuid, token: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mailboxes SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
          WHERE id = $1 AND lease_token = $2",
    )
    .bind(mailbox_id)
    .bind(token)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// What one workload's run in a pass leaves behind.
#[derive(Debug, Clone)]
pub struct WorkloadRecord {
    /// Which workload.
    pub workload: Workload,
    /// Status to show.
    pub status: WorkloadStatus,
    /// Consecutive failures after this run.
    pub failures: i32,
    /// When it is next due.
    pub next_due: DateTime<Utc>,
    /// `Some(code)` blocks the workload (until its row changes or it is retried);
    /// `None` lifts any block.
    pub blocked_code: Option<String>,
}

/// The last error of a pass, as stored on the mailbox.
#[derive(Debug, Clone)]
pub struct ErrorRecord {
    /// Stable code, e.g. `ews.unauthorized`.
    pub code: String,
    /// Operator-facing text (never a secret).
    pub text: String,
    /// Workload it happened in.
    pub workload: Workload,
    /// The failed request's ids, when Exchange (or the token endpoint) was asked.
    pub correlation: Option<ErrorCorrelation>,
}

/// The ids that tie a failed request to Exchange's own logs (Microsoft support asks for them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCorrelation {
    /// The `client-request-id` exsync sent.
    pub client_request_id: Option<Uuid>,
    /// Exchange's `request-id` (or the identity platform's `x-ms-request-id`).
    pub request_id: Option<String>,
    /// Exchange's `X-BEServer`.
    pub be_server: Option<String>,
}

/// Everything a finished pass writes to its mailbox row (and the lease it releases).
#[derive(Debug, Clone, Default)]
pub struct PassRecord {
    /// One record per workload that ran (or was refused) in the pass.
    pub workloads: Vec<WorkloadRecord>,
    /// The pass's error, if any; `None` with `clear_error` wipes the last error.
    pub error: Option<ErrorRecord>,
    /// Wipe the stored last error (every workload succeeded).
    pub clear_error: bool,
    /// Every workload that ran succeeded.
    pub succeeded: bool,
    /// Items imported, sent or written in the pass.
    pub items_processed: i32,
    /// Items that failed in the pass.
    pub items_failed: i32,
    /// The mailbox's own credentials were rejected: block them.
    pub block_mailbox_credentials: Option<String>,
}

/// Record a finished pass and release its lease; `false` when the lease was no longer ours.
pub async fn finish_pass(
    store: &Store,
    mailbox_id: Uuid,
    token: Uuid,
    record: &PassRecord,
) -> Result<bool, StoreError> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
        "UPDATE mailboxes SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL",
    );
    for w in &record.workloads {
        let name = w.workload.as_str();
        query.push(format!(", {name}_status = "));
        query.push_bind(w.status.as_str());
        query.push(format!(", {name}_failures = "));
        query.push_bind(w.failures);
        query.push(format!(", {name}_next_due_at = "));
        query.push_bind(w.next_due);
        match &w.blocked_code {
            Some(code) => {
                query.push(format!(", {name}_blocked_code = "));
                query.push_bind(code.clone());
                query.push(format!(
                    ", {name}_blocked_at = COALESCE({name}_blocked_at, now())"
                ));
            }
            None => {
                query.push(format!(
                    ", {name}_blocked_code = NULL, {name}_blocked_at = NULL"
                ));
            }
        }
    }
    if let Some(error) = &record.error {
        query.push(", last_error_code = ");
        query.push_bind(error.code.clone());
        query.push(", last_error_text = ");
        query.push_bind(truncate(&error.text, 2000));
        query.push(", last_error_workload = ");
        query.push_bind(error.workload.as_str());
        query.push(", last_error_at = now()");
        let correlation = error.correlation.clone().unwrap_or_default();
        query.push(", last_error_client_request_id = ");
        query.push_bind(correlation.client_request_id);
        query.push(", last_error_request_id = ");
        query.push_bind(correlation.request_id.map(|t| truncate(&t, 200)));
        query.push(", last_error_be_server = ");
        query.push_bind(correlation.be_server.map(|t| truncate(&t, 200)));
    } else if record.clear_error {
        query.push(
            ", last_error_code = NULL, last_error_text = NULL, last_error_workload = NULL, last_error_at = NULL, \
               last_error_client_request_id = NULL, last_error_request_id = NULL, last_error_be_server = NULL",
        );
    }
    if record.succeeded {
        query.push(", last_successful_sync = now()");
    }
    if let Some(reason) = &record.block_mailbox_credentials {
        query.push(", credentials_blocked_at = now(), credentials_blocked_reason = ");
        query.push_bind(truncate(reason, 2000));
    } else if record.succeeded {
        query.push(", credentials_blocked_at = NULL, credentials_blocked_reason = NULL");
    }
    query.push(", items_processed_last_pass = ");
    query.push_bind(record.items_processed.max(0));
    query.push(", items_failed_last_pass = ");
    query.push_bind(record.items_failed.max(0));
    query.push(" WHERE id = ");
    query.push_bind(mailbox_id);
    query.push(" AND lease_token = ");
    query.push_bind(token);
    let done = query.build().execute(store.pool()).await?;
    Ok(done.rows_affected() == 1)
}

/// Mark a profile's credentials as rejected by Exchange (all its mailboxes then wait).
pub async fn block_profile_credentials(
    store: &Store,
    profile_id: Uuid,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE email_server_profiles
            SET credentials_blocked_at = now(), credentials_blocked_reason = $2
          WHERE id = $1",
    )
    .bind(profile_id)
    .bind(truncate(reason, 2000))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Lift a profile's credentials block after its credentials worked again.
pub async fn unblock_profile_credentials(
    store: &Store,
    profile_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE email_server_profiles
            SET credentials_blocked_at = NULL, credentials_blocked_reason = NULL
          WHERE id = $1 AND credentials_blocked_at IS NOT NULL",
    )
    .bind(profile_id)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cut text to at most `max` characters (on a character boundary).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A `LISTEN` on `exsync_outgoing` (a trigger notifies it when mail is queued), so the
/// scheduler wakes at once instead of at its next tick.
pub struct OutgoingListener(sqlx::postgres::PgListener);

impl OutgoingListener {
    /// Open a connection of its own and listen.
    pub async fn connect(store: &Store) -> Result<OutgoingListener, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(store.pool()).await?;
        listener.listen("exsync_outgoing").await?;
        Ok(OutgoingListener(listener))
    }

    /// Wait for the next notification; `Err`: the connection broke (connect again).
    pub async fn next(&mut self) -> Result<(), StoreError> {
        self.0.recv().await?;
        Ok(())
    }
}

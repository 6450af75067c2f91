//! Read-only reports over mailboxes, for `exsync status` and operators' scripts.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One mailbox's line of `exsync status`: settings, statuses, health and stored counts.
/// Never holds a secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MailboxStatus {
    /// Primary SMTP address.
    pub address: String,
    /// Profile name.
    pub profile: String,
    /// Incoming email method.
    pub incoming: String,
    /// Outgoing email method.
    pub outgoing: String,
    /// Appointments, contacts and tasks method.
    pub act: String,
    /// Approval status.
    pub approval: String,
    /// Incoming email status.
    pub incoming_status: String,
    /// Outgoing email status.
    pub outgoing_status: String,
    /// Appointments, contacts and tasks status.
    pub act_status: String,
    /// Last pass that completed without error.
    pub last_successful_sync: Option<DateTime<Utc>>,
    /// Earliest time a wanted workload is due (none when nothing is synchronised).
    pub next_due: Option<DateTime<Utc>>,
    /// Highest consecutive failure count among the workloads.
    pub consecutive_failures: i32,
    /// Code of the last error (e.g. `ews.unauthorized`).
    pub last_error_code: Option<String>,
    /// The last error, as an operator reads it (never a secret).
    pub last_error: Option<String>,
    /// Emails stored for the mailbox.
    pub emails: i64,
    /// Appointments stored for the mailbox.
    pub appointments: i64,
    /// Contacts stored for the mailbox.
    pub contacts: i64,
    /// Tasks stored for the mailbox.
    pub tasks: i64,
    /// Outgoing emails waiting to be sent (pending or being sent).
    pub outgoing_pending: i64,
    /// Outgoing emails sent.
    pub outgoing_sent: i64,
    /// Outgoing emails that failed for good.
    pub outgoing_failed: i64,
}

/// Every mailbox's status, ordered by address.
pub async fn mailbox_statuses(store: &Store) -> Result<Vec<MailboxStatus>, StoreError> {
    let rows = sqlx::query_as::<_, MailboxStatus>(
        r#"
        SELECT m.email_address AS address,
               p.name AS profile,
               m.incoming_method AS incoming,
               m.outgoing_method AS outgoing,
               m.act_method AS act,
               m.approval_status AS approval,
               m.incoming_status, m.outgoing_status, m.act_status,
               m.last_successful_sync,
               LEAST(
                   CASE WHEN m.incoming_method = 'server_side_sync'
                             AND m.approval_status = 'approved' THEN m.incoming_next_due_at END,
                   CASE WHEN m.outgoing_method = 'server_side_sync'
                             AND m.approval_status = 'approved' THEN m.outgoing_next_due_at END,
                   CASE WHEN m.act_method = 'server_side_sync' THEN m.act_next_due_at END
               ) AS next_due,
               GREATEST(m.incoming_failures, m.outgoing_failures, m.act_failures)
                   AS consecutive_failures,
               m.last_error_code,
               m.last_error_text AS last_error,
               (SELECT count(DISTINCT c.email_id) FROM email_copies c
                 WHERE c.mailbox_id = m.id) AS emails,
               (SELECT count(*) FROM appointments a WHERE a.mailbox_id = m.id) AS appointments,
               (SELECT count(*) FROM contacts c WHERE c.mailbox_id = m.id) AS contacts,
               (SELECT count(*) FROM tasks t WHERE t.mailbox_id = m.id) AS tasks,
               (SELECT count(*) FROM outgoing_emails o
                 WHERE o.mailbox_id = m.id AND o.status IN ('pending', 'sending'))
                   AS outgoing_pending,
               (SELECT count(*) FROM outgoing_emails o
                 WHERE o.mailbox_id = m.id AND o.status = 'sent') AS outgoing_sent,
               (SELECT count(*) FROM outgoing_emails o
                 WHERE o.mailbox_id = m.id AND o.status = 'failed') AS outgoing_failed
          FROM mailboxes m
          JOIN email_server_profiles p ON p.id = m.profile_id
         ORDER BY m.email_address
        "#,
    )
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

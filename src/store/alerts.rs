//! The alert trail on profiles and mailboxes: raised once per condition and deduplicated
//! (occurrences, last seen), resolved with an information alert when the condition heals.

use super::{Store, StoreError};
use crate::domain::{AlertLevel, AlertTarget, Workload};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// One alert as an operator reads it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Alert {
    /// Row id.
    pub id: Uuid,
    /// Profile it is about (profile alerts).
    pub profile_id: Option<Uuid>,
    /// Mailbox it is about (mailbox alerts).
    pub mailbox_id: Option<Uuid>,
    /// `information` | `warning` | `error`.
    pub level: String,
    /// Stable code, e.g. `ews.unauthorized`.
    pub code: String,
    /// Workload concerned, if any.
    pub workload: Option<String>,
    /// What happened and what to do.
    pub message: String,
    /// How many times the condition was seen while open.
    pub occurrences: i32,
    /// First seen.
    pub first_seen_at: DateTime<Utc>,
    /// Last seen.
    pub last_seen_at: DateTime<Utc>,
    /// When it healed (`None`: still open).
    pub resolved_at: Option<DateTime<Utc>>,
}

fn target_ids(target: AlertTarget) -> (Option<Uuid>, Option<Uuid>) {
    match target {
        AlertTarget::Profile(id) => (Some(id.0), None),
        AlertTarget::Mailbox(id) => (None, Some(id.0)),
    }
}

/// Raise (or repeat) a warning or error condition; returns `true` when it is new.
pub async fn raise(
    store: &Store,
    target: AlertTarget,
    level: AlertLevel,
    code: &str,
    workload: Option<Workload>,
    message: &str,
) -> Result<bool, StoreError> {
    if level == AlertLevel::Information {
        inform(store, target, code, workload, message).await?;
        return Ok(true);
    }
    let (profile_id, mailbox_id) = target_ids(target);
    let inserted: bool = sqlx::query_scalar(
        "INSERT INTO alerts (profile_id, mailbox_id, level, code, workload, message)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT ((coalesce(mailbox_id, profile_id)), code, (coalesce(workload, '')))
            WHERE resolved_at IS NULL
         DO UPDATE SET occurrences = alerts.occurrences + 1, last_seen_at = now(),
                       level = EXCLUDED.level, message = EXCLUDED.message
         RETURNING (xmax = 0)",
    )
    .bind(profile_id)
    .bind(mailbox_id)
    .bind(level.as_str())
    .bind(code)
    .bind(workload.map(Workload::as_str))
    .bind(super::scheduling::truncate(message, 4000))
    .fetch_one(store.pool())
    .await?;
    Ok(inserted)
}

/// Record a one-off information alert (born resolved: it describes, it does not stay open).
pub async fn inform(
    store: &Store,
    target: AlertTarget,
    code: &str,
    workload: Option<Workload>,
    message: &str,
) -> Result<(), StoreError> {
    let (profile_id, mailbox_id) = target_ids(target);
    sqlx::query(
        "INSERT INTO alerts (profile_id, mailbox_id, level, code, workload, message, resolved_at)
         VALUES ($1, $2, 'information', $3, $4, $5, now())",
    )
    .bind(profile_id)
    .bind(mailbox_id)
    .bind(code)
    .bind(workload.map(Workload::as_str))
    .bind(super::scheduling::truncate(message, 4000))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Close the open alerts of a target (for one workload, or the target-wide ones when
/// `workload` is `None`) whose code is not in `keep`; each closed condition gets an
/// information alert saying it healed. Returns the codes closed.
pub async fn resolve(
    store: &Store,
    target: AlertTarget,
    workload: Option<Workload>,
    keep: &[&str],
) -> Result<Vec<String>, StoreError> {
    let (profile_id, mailbox_id) = target_ids(target);
    let closed: Vec<(String, String)> = sqlx::query_as(
        "UPDATE alerts SET resolved_at = now()
          WHERE resolved_at IS NULL
            AND coalesce(mailbox_id, profile_id) = coalesce($2, $1)
            AND coalesce(workload, '') = coalesce($3, '')
            AND NOT (code = ANY($4))
         RETURNING code, message",
    )
    .bind(profile_id)
    .bind(mailbox_id)
    .bind(workload.map(Workload::as_str))
    .bind(keep)
    .fetch_all(store.pool())
    .await?;
    for (code, message) in &closed {
        let text = format!("resolved: {message}");
        inform(store, target, &format!("{code}.resolved"), workload, &text).await?;
    }
    Ok(closed.into_iter().map(|(code, _)| code).collect())
}

/// Alerts of one target, newest first (`open_only`: unresolved conditions only).
pub async fn list(
    store: &Store,
    target: AlertTarget,
    open_only: bool,
    limit: i64,
) -> Result<Vec<Alert>, StoreError> {
    let (profile_id, mailbox_id) = target_ids(target);
    let alerts = sqlx::query_as::<_, Alert>(
        "SELECT id, profile_id, mailbox_id, level, code, workload, message, occurrences,
                first_seen_at, last_seen_at, resolved_at
           FROM alerts
          WHERE coalesce(mailbox_id, profile_id) = coalesce($2, $1)
            AND (NOT $3 OR resolved_at IS NULL)
          ORDER BY last_seen_at DESC, first_seen_at DESC
          LIMIT $4",
    )
    .bind(profile_id)
    .bind(mailbox_id)
    .bind(open_only)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(alerts)
}

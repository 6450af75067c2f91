//! A profile's move from EWS to Microsoft Graph (`exsync migrate-profile`): which stored EWS
//! ids are still to translate, writing what `translateExchangeIds` answered (every place the
//! id is stored, in one transaction per batch), To Do matches, and the switch itself.
//!
//! Resumable and idempotent: each stored id's outcome is kept in `id_migrations`; an id
//! already translated (its source or target there) is never asked for again, and a batch is
//! written whole or not at all.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where a stored EWS id lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// Email copies, skipped items, item failures.
    Email,
    /// Appointment rows and their tombstones.
    Appointment,
    /// Contact rows and their tombstones.
    Contact,
    /// Task rows (matched by properties, not translated).
    Task,
}

impl IdKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Email => "email",
            IdKind::Appointment => "appointment",
            IdKind::Contact => "contact",
            IdKind::Task => "task",
        }
    }

    /// Tables holding this kind of id (`ews_item_id`) for a mailbox.
    fn tables(self) -> &'static [&'static str] {
        match self {
            IdKind::Email => &["email_copies", "skipped_items", "item_failures"],
            IdKind::Appointment => &["appointments"],
            IdKind::Contact => &["contacts"],
            IdKind::Task => &["tasks"],
        }
    }

    /// The `act_deletions.kind` of the same ids, if tombstones hold them too.
    fn tombstone_kind(self) -> Option<&'static str> {
        match self {
            IdKind::Appointment => Some("appointment"),
            IdKind::Contact => Some("contact"),
            IdKind::Task => Some("task"),
            IdKind::Email => None,
        }
    }
}

/// What became of one stored id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOutcome {
    /// Translated to this Graph id.
    Translated(String),
    /// Matched by its properties to this Graph item (id and version).
    Matched {
        /// The Graph id.
        id: String,
        /// Its ETag.
        version: Option<String>,
    },
    /// Not translated (the service's reason).
    Failed(String),
}

/// Start (or resume) moving `profile_id` to Graph: the profile is disabled until the move
/// ends, and its enabled state before the first start is remembered. `false`: it was not
/// enabled before.
pub async fn begin(store: &Store, profile_id: Uuid) -> Result<bool, StoreError> {
    let mut tx = store.pool().begin().await?;
    let was_enabled: bool = sqlx::query_scalar(
        "INSERT INTO profile_migrations (profile_id, target, was_enabled)
         SELECT id, 'graph', enabled FROM email_server_profiles WHERE id = $1
         ON CONFLICT (profile_id) DO UPDATE SET finished_at = NULL
         RETURNING was_enabled",
    )
    .bind(profile_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE email_server_profiles SET enabled = FALSE WHERE id = $1 AND enabled")
        .bind(profile_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(was_enabled)
}

/// Stored ids of `kind` of a mailbox not migrated yet (neither a source nor a target in
/// `id_migrations`), at most `limit`.
pub async fn pending_ids(
    store: &Store,
    mailbox_id: Uuid,
    kind: IdKind,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let mut sources: Vec<String> = kind
        .tables()
        .iter()
        .map(|t| {
            format!("SELECT ews_item_id FROM {t} WHERE mailbox_id = $1 AND ews_item_id IS NOT NULL")
        })
        .collect();
    if let Some(tombstone) = kind.tombstone_kind() {
        sources.push(format!(
            "SELECT ews_item_id FROM act_deletions WHERE mailbox_id = $1 AND kind = '{tombstone}'"
        ));
    }
    let sql = format!(
        "SELECT DISTINCT s.ews_item_id FROM ({}) AS s(ews_item_id)
          WHERE NOT EXISTS (SELECT 1 FROM id_migrations g
                             WHERE g.mailbox_id = $1 AND g.kind = $2
                               AND (g.source_id = s.ews_item_id OR g.target_id = s.ews_item_id))
          ORDER BY 1 LIMIT $3",
        sources.join(" UNION ")
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(mailbox_id)
        .bind(kind.as_str())
        .bind(limit)
        .fetch_all(store.pool())
        .await?)
}

/// Write one batch's outcomes: every stored copy of a translated or matched id takes its
/// Graph id (an ACT row's change key becomes the ETag Graph compares, `W/"<changeKey>"`), and
/// each outcome is recorded. One transaction: a crash leaves the batch untouched.
pub async fn record(
    store: &Store,
    mailbox_id: Uuid,
    kind: IdKind,
    outcomes: &[(String, IdOutcome)],
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    // Writes on Exchange's behalf: an ACT row is not made dirty by a changed id.
    sqlx::query("SELECT set_config('exsync.origin', 'exchange', true)")
        .execute(&mut *tx)
        .await?;
    for (source, outcome) in outcomes {
        let (target, version, label, error) = match outcome {
            IdOutcome::Translated(target) => (Some(target.as_str()), None, "translated", None),
            IdOutcome::Matched { id, version } => {
                (Some(id.as_str()), version.as_deref(), "matched", None)
            }
            IdOutcome::Failed(error) => (None, None, "failed", Some(error.as_str())),
        };
        if let Some(target) = target {
            for table in kind.tables() {
                let set_key = match (table, label) {
                    (&"appointments" | &"contacts", _) => {
                        ", ews_change_key = CASE WHEN ews_change_key IS NULL OR ews_change_key LIKE 'W/%' \
                         THEN ews_change_key ELSE 'W/\"' || ews_change_key || '\"' END"
                    }
                    (&"tasks", _) => ", ews_change_key = $4",
                    _ => "",
                };
                let sql = format!(
                    "UPDATE {table} SET ews_item_id = $3{set_key}
                      WHERE mailbox_id = $1 AND ews_item_id = $2"
                );
                let mut query = sqlx::query(&sql).bind(mailbox_id).bind(source).bind(target);
                if *table == "tasks" {
                    query = query.bind(version);
                }
                query.execute(&mut *tx).await?;
            }
            if let Some(tombstone) = kind.tombstone_kind() {
                sqlx::query(
                    "UPDATE act_deletions SET ews_item_id = $3
                      WHERE mailbox_id = $1 AND kind = $4 AND ews_item_id = $2",
                )
                .bind(mailbox_id)
                .bind(source)
                .bind(target)
                .bind(tombstone)
                .execute(&mut *tx)
                .await?;
            }
        } else if kind == IdKind::Task {
            // No To Do task matches: the row stays, no longer linked (never a second task).
            sqlx::query(
                "UPDATE tasks SET ews_item_id = NULL, ews_change_key = NULL, exchange_link = 'unlinked'
                  WHERE mailbox_id = $1 AND ews_item_id = $2",
            )
            .bind(mailbox_id)
            .bind(source)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO id_migrations (mailbox_id, kind, source_id, target_id, outcome, error)
             VALUES ($1, $2, $3, $4, $5, left($6, 2000))
             ON CONFLICT (mailbox_id, kind, source_id) DO UPDATE
                SET target_id = EXCLUDED.target_id, outcome = EXCLUDED.outcome,
                    error = EXCLUDED.error, migrated_at = now()",
        )
        .bind(mailbox_id)
        .bind(kind.as_str())
        .bind(source)
        .bind(target)
        .bind(label)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A stored task still linked by its EWS id: what To Do matching compares.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingTask {
    /// Its EWS id.
    pub ews_item_id: String,
    /// Subject.
    pub subject: String,
    /// Due date.
    pub due_at: Option<DateTime<Utc>>,
    /// Status (snake case).
    pub status: String,
}

/// Task rows of a mailbox still linked by an EWS id not migrated yet.
pub async fn pending_tasks(
    store: &Store,
    mailbox_id: Uuid,
) -> Result<Vec<PendingTask>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.ews_item_id, t.subject, t.due_at, t.status FROM tasks t
          WHERE t.mailbox_id = $1 AND t.ews_item_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM id_migrations g
                             WHERE g.mailbox_id = $1 AND g.kind = 'task'
                               AND (g.source_id = t.ews_item_id OR g.target_id = t.ews_item_id))
          ORDER BY t.created_at",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?)
}

/// Finish the move: the profile speaks Graph (an explicit EWS token scope is dropped so the
/// Graph default applies), is enabled again as it was, and its mailboxes' EWS sync states
/// are forgotten (Graph starts each folder with a delta round; stored copies are recognised
/// by their translated ids). One transaction.
pub async fn finish(store: &Store, profile_id: Uuid) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "DELETE FROM folder_sync_states
          WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE profile_id = $1)",
    )
    .bind(profile_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE email_server_profiles p
            SET protocol = 'graph',
                oauth_scope = CASE WHEN p.oauth_scope = $2 THEN NULL ELSE p.oauth_scope END,
                enabled = m.was_enabled
           FROM profile_migrations m
          WHERE p.id = $1 AND m.profile_id = p.id",
    )
    .bind(profile_id)
    .bind(crate::domain::DEFAULT_EWS_OAUTH_SCOPE)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE profile_migrations SET finished_at = now() WHERE profile_id = $1")
        .bind(profile_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Give the profile back as it was (a dry run, or a move that could not start): enabled as
/// before, no migration in progress.
pub async fn abandon(store: &Store, profile_id: Uuid) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "UPDATE email_server_profiles p SET enabled = m.was_enabled
           FROM profile_migrations m WHERE p.id = $1 AND m.profile_id = p.id",
    )
    .bind(profile_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM profile_migrations WHERE profile_id = $1 AND finished_at IS NULL")
        .bind(profile_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Outcomes recorded for a mailbox: (kind, outcome, count).
pub async fn counts(
    store: &Store,
    mailbox_id: Uuid,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT kind, outcome, count(*) FROM id_migrations WHERE mailbox_id = $1
          GROUP BY kind, outcome ORDER BY kind, outcome",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?)
}

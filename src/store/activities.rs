//! Appointments, contacts and tasks, synchronised both ways.
//!
//! An application's change bumps a row's `version` (trigger), so the row is *dirty* while
//! `version > synced_version` and the next pass writes it to Exchange. Writes made here on
//! Exchange's behalf run with `exsync.origin = 'exchange'` and never mark a row dirty.
//! Deleting a row that exists in Exchange leaves a tombstone in `act_deletions`, which the
//! next pass turns into a DeleteItem.

use super::emails::fence;
use super::{Store, StoreError};
use crate::domain::scope::ExchangeLink;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The three kinds of activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActKind {
    /// Calendar items.
    Appointment,
    /// Contacts.
    Contact,
    /// Tasks.
    Task,
}

impl ActKind {
    /// All kinds, in sync order.
    pub const ALL: [ActKind; 3] = [ActKind::Appointment, ActKind::Contact, ActKind::Task];

    /// Stored spelling (`act_deletions.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActKind::Appointment => "appointment",
            ActKind::Contact => "contact",
            ActKind::Task => "task",
        }
    }

    /// The table holding rows of this kind.
    pub fn table(self) -> &'static str {
        match self {
            ActKind::Appointment => "appointments",
            ActKind::Contact => "contacts",
            ActKind::Task => "tasks",
        }
    }

    /// The distinguished Exchange folder of this kind.
    pub fn folder(self) -> &'static str {
        match self {
            ActKind::Appointment => "calendar",
            ActKind::Contact => "contacts",
            ActKind::Task => "tasks",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            ActKind::Appointment => &[
                "subject",
                "body",
                "location",
                "start_at",
                "end_at",
                "is_all_day",
                "organizer",
                "attendees",
                "recurrence",
            ],
            ActKind::Contact => &[
                "display_name",
                "given_name",
                "surname",
                "company_name",
                "job_title",
                "email_addresses",
                "phone_numbers",
            ],
            ActKind::Task => &[
                "subject",
                "body",
                "status",
                "start_at",
                "due_at",
                "completed_at",
                "percent_complete",
            ],
        }
    }
}

/// An appointment's synchronised fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppointmentFields {
    /// Subject.
    pub subject: String,
    /// Body (text).
    pub body: String,
    /// Location.
    pub location: String,
    /// Start.
    pub start_at: DateTime<Utc>,
    /// End.
    pub end_at: DateTime<Utc>,
    /// All-day event.
    pub is_all_day: bool,
    /// Organizer address.
    pub organizer: Option<String>,
    /// Attendee addresses.
    pub attendees: Vec<String>,
    /// A series' pattern and range (JSON as documented in docs/operations.md), `None` for a
    /// single appointment.
    pub recurrence: Option<serde_json::Value>,
}

/// A contact's synchronised fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactFields {
    /// Display name.
    pub display_name: String,
    /// Given name.
    pub given_name: String,
    /// Surname.
    pub surname: String,
    /// Company.
    pub company_name: String,
    /// Job title.
    pub job_title: String,
    /// Email addresses (up to three in Exchange).
    pub email_addresses: Vec<String>,
    /// Phone numbers by Exchange key (BusinessPhone, MobilePhone, HomePhone, …).
    pub phone_numbers: BTreeMap<String, String>,
}

/// A task's synchronised fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskFields {
    /// Subject.
    pub subject: String,
    /// Body (text).
    pub body: String,
    /// `not_started` | `in_progress` | `completed` | `waiting_on_others` | `deferred`.
    pub status: String,
    /// Start date.
    pub start_at: Option<DateTime<Utc>>,
    /// Due date.
    pub due_at: Option<DateTime<Utc>>,
    /// Completion date.
    pub completed_at: Option<DateTime<Utc>>,
    /// Percent complete (0..=100).
    pub percent_complete: i32,
}

/// The synchronised fields of one activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActFields {
    /// An appointment.
    Appointment(AppointmentFields),
    /// A contact.
    Contact(ContactFields),
    /// A task.
    Task(TaskFields),
}

impl ActFields {
    /// Which kind these fields belong to.
    pub fn kind(&self) -> ActKind {
        match self {
            ActFields::Appointment(_) => ActKind::Appointment,
            ActFields::Contact(_) => ActKind::Contact,
            ActFields::Task(_) => ActKind::Task,
        }
    }

    /// Push the fields as comma-separated bound values, in `ActKind::columns` order.
    fn bind_into(&self, query: &mut QueryBuilder<'_, Postgres>) {
        let mut list = query.separated(", ");
        match self {
            ActFields::Appointment(a) => {
                list.push_bind(a.subject.clone());
                list.push_bind(a.body.clone());
                list.push_bind(a.location.clone());
                list.push_bind(a.start_at);
                list.push_bind(a.end_at);
                list.push_bind(a.is_all_day);
                list.push_bind(a.organizer.clone());
                list.push_bind(serde_json::json!(a.attendees));
                list.push_bind(a.recurrence.clone());
            }
            ActFields::Contact(c) => {
                list.push_bind(c.display_name.clone());
                list.push_bind(c.given_name.clone());
                list.push_bind(c.surname.clone());
                list.push_bind(c.company_name.clone());
                list.push_bind(c.job_title.clone());
                list.push_bind(serde_json::json!(c.email_addresses));
                list.push_bind(serde_json::json!(c.phone_numbers));
            }
            ActFields::Task(t) => {
                list.push_bind(t.subject.clone());
                list.push_bind(t.body.clone());
                list.push_bind(t.status.clone());
                list.push_bind(t.start_at);
                list.push_bind(t.due_at);
                list.push_bind(t.completed_at);
                list.push_bind(t.percent_complete);
            }
        }
    }

    fn from_row(kind: ActKind, row: &sqlx::postgres::PgRow) -> Result<ActFields, sqlx::Error> {
        Ok(match kind {
            ActKind::Appointment => ActFields::Appointment(AppointmentFields {
                subject: row.try_get("subject")?,
                body: row.try_get("body")?,
                location: row.try_get("location")?,
                start_at: row.try_get("start_at")?,
                end_at: row.try_get("end_at")?,
                is_all_day: row.try_get("is_all_day")?,
                organizer: row.try_get("organizer")?,
                attendees: json_list(row.try_get("attendees")?),
                recurrence: row.try_get("recurrence")?,
            }),
            ActKind::Contact => ActFields::Contact(ContactFields {
                display_name: row.try_get("display_name")?,
                given_name: row.try_get("given_name")?,
                surname: row.try_get("surname")?,
                company_name: row.try_get("company_name")?,
                job_title: row.try_get("job_title")?,
                email_addresses: json_list(row.try_get("email_addresses")?),
                phone_numbers: row
                    .try_get::<serde_json::Value, _>("phone_numbers")?
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            ActKind::Task => ActFields::Task(TaskFields {
                subject: row.try_get("subject")?,
                body: row.try_get("body")?,
                status: row.try_get("status")?,
                start_at: row.try_get("start_at")?,
                due_at: row.try_get("due_at")?,
                completed_at: row.try_get("completed_at")?,
                percent_complete: row.try_get("percent_complete")?,
            }),
        })
    }
}

fn json_list(value: serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One stored activity with its sync bookkeeping.
#[derive(Debug, Clone)]
pub struct ActRow {
    /// Row id.
    pub id: Uuid,
    /// The server's item id (`None`: created in the database, not yet in the mailbox);
    /// column `ews_item_id`.
    pub item_id: Option<String>,
    /// The server's version token (change key) last seen or written; column `ews_change_key`.
    pub change_key: Option<String>,
    /// The fields.
    pub fields: ActFields,
    /// Bumped by every application change.
    pub version: i64,
    /// The version last written to or read from Exchange.
    pub synced_version: i64,
    /// When an application last changed it.
    pub db_modified_at: DateTime<Utc>,
    /// Exchange's LastModifiedTime when last synchronised.
    pub exchange_modified_at: Option<DateTime<Utc>>,
    /// How the row is tied to its Exchange item (owned, imported, unlinked).
    pub link: ExchangeLink,
}

impl ActRow {
    /// Whether the row holds changes not yet written to Exchange.
    pub fn is_dirty(&self) -> bool {
        self.version > self.synced_version
    }
}

fn select_sql(kind: ActKind) -> String {
    format!(
        "SELECT id, ews_item_id, ews_change_key, version, synced_version, db_modified_at,
                exchange_modified_at, exchange_link, {} FROM {}",
        kind.columns().join(", "),
        kind.table()
    )
}

fn act_row(kind: ActKind, row: &sqlx::postgres::PgRow) -> Result<ActRow, sqlx::Error> {
    Ok(ActRow {
        id: row.try_get("id")?,
        item_id: row.try_get("ews_item_id")?,
        change_key: row.try_get("ews_change_key")?,
        fields: ActFields::from_row(kind, row)?,
        version: row.try_get("version")?,
        synced_version: row.try_get("synced_version")?,
        db_modified_at: row.try_get("db_modified_at")?,
        exchange_modified_at: row.try_get("exchange_modified_at")?,
        link: row.try_get::<String, _>("exchange_link")?.parse().map_err(
            |e: crate::domain::ParseEnumError| sqlx::Error::ColumnDecode {
                index: "exchange_link".into(),
                source: Box::new(e),
            },
        )?,
    })
}

/// Rows of a mailbox changed by applications and not yet written to Exchange (an unlinked
/// row is the database's alone: it is never written).
pub async fn dirty_rows(
    store: &Store,
    mailbox_id: Uuid,
    kind: ActKind,
    limit: i64,
) -> Result<Vec<ActRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "{} WHERE mailbox_id = $1 AND version > synced_version AND exchange_link <> 'unlinked'
            ORDER BY db_modified_at LIMIT $2",
        select_sql(kind)
    ))
    .bind(mailbox_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| act_row(kind, r).map_err(StoreError::from))
        .collect()
}

/// The stored rows for some Exchange item ids.
pub async fn rows_by_items(
    store: &Store,
    mailbox_id: Uuid,
    kind: ActKind,
    item_ids: &[String],
) -> Result<Vec<ActRow>, StoreError> {
    if item_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "{} WHERE mailbox_id = $1 AND ews_item_id = ANY($2)",
        select_sql(kind)
    ))
    .bind(mailbox_id)
    .bind(item_ids)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| act_row(kind, r).map_err(StoreError::from))
        .collect()
}

/// The ids among `row_ids` that are rows of this mailbox (an item carrying one of them as
/// its create key was created by exsync for that row).
pub async fn existing_rows(
    store: &Store,
    mailbox_id: Uuid,
    kind: ActKind,
    row_ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    if row_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM {} WHERE mailbox_id = $1 AND id = ANY($2)",
        kind.table()
    ))
    .bind(mailbox_id)
    .bind(row_ids)
    .fetch_all(store.pool())
    .await?)
}

/// A change from Exchange to apply to the database.
#[derive(Debug, Clone)]
pub enum ExchangeChange {
    /// Create or overwrite the row of this item with Exchange's fields.
    Upsert {
        /// EWS item id.
        item_id: String,
        /// EWS change key.
        change_key: Option<String>,
        /// Exchange's LastModifiedTime.
        modified_at: Option<DateTime<Utc>>,
        /// The fields.
        fields: ActFields,
    },
    /// The database's version wins a conflict: keep its fields, remember Exchange's change
    /// key so that the write-back is accepted.
    KeepDatabaseVersion {
        /// EWS item id.
        item_id: String,
        /// Exchange's new change key.
        change_key: Option<String>,
        /// Exchange's LastModifiedTime.
        modified_at: Option<DateTime<Utc>>,
    },
    /// The item was deleted in Exchange.
    Delete {
        /// EWS item id.
        item_id: String,
    },
    /// The user untracked the item: the row stays, unlinked (nothing flows either way).
    Unlink {
        /// EWS item id.
        item_id: String,
    },
    /// Out of scope and not stored: recorded as skipped (not tracked) for `explain --item`.
    Skip {
        /// EWS item id.
        item_id: String,
    },
}

async fn as_exchange(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('exsync.origin', 'exchange', true)")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Apply Exchange's changes of one page and the folder's new SyncState in one transaction.
pub async fn apply_exchange_page(
    store: &Store,
    mailbox_id: Uuid,
    token: Uuid,
    kind: ActKind,
    changes: &[ExchangeChange],
    sync_state: Option<&str>,
) -> Result<usize, StoreError> {
    let mut tx = store.pool().begin().await?;
    fence(&mut tx, mailbox_id, token).await?;
    as_exchange(&mut tx).await?;
    let mut written = 0;
    for change in changes {
        match change {
            ExchangeChange::Upsert {
                item_id,
                change_key,
                modified_at,
                fields,
            } => {
                let columns = kind.columns().join(", ");
                let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
                    "INSERT INTO {} (mailbox_id, ews_item_id, ews_change_key, exchange_modified_at, version, synced_version, sync_error, exchange_link, {columns}) VALUES (",
                    kind.table()
                ));
                query.push_bind(mailbox_id);
                query.push(", ");
                query.push_bind(item_id.clone());
                query.push(", ");
                query.push_bind(change_key.clone());
                query.push(", ");
                query.push_bind(*modified_at);
                query.push(", 1, 1, NULL, 'imported', ");
                fields.bind_into(&mut query);
                let updates = kind
                    .columns()
                    .iter()
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                query.push(format!(
                    ") ON CONFLICT (mailbox_id, ews_item_id) DO UPDATE SET {updates},
                       ews_change_key = EXCLUDED.ews_change_key,
                       exchange_modified_at = EXCLUDED.exchange_modified_at,
                       synced_version = {table}.version, sync_error = NULL,
                       exchange_link = CASE {table}.exchange_link
                           WHEN 'owned' THEN 'owned' ELSE 'imported' END",
                    table = kind.table()
                ));
                written += query.build().execute(&mut *tx).await?.rows_affected() as usize;
                forget_skip(&mut tx, mailbox_id, item_id).await?;
            }
            ExchangeChange::KeepDatabaseVersion {
                item_id,
                change_key,
                modified_at,
            } => {
                sqlx::query(&format!(
                    "UPDATE {} SET ews_change_key = $3, exchange_modified_at = $4
                      WHERE mailbox_id = $1 AND ews_item_id = $2",
                    kind.table()
                ))
                .bind(mailbox_id)
                .bind(item_id)
                .bind(change_key)
                .bind(modified_at)
                .execute(&mut *tx)
                .await?;
            }
            ExchangeChange::Delete { item_id } => {
                // An unlinked row is the database's own now: Exchange's delete leaves it.
                written += sqlx::query(&format!(
                    "DELETE FROM {} WHERE mailbox_id = $1 AND ews_item_id = $2
                        AND exchange_link <> 'unlinked'",
                    kind.table()
                ))
                .bind(mailbox_id)
                .bind(item_id)
                .execute(&mut *tx)
                .await?
                .rows_affected() as usize;
                forget_skip(&mut tx, mailbox_id, item_id).await?;
            }
            ExchangeChange::Unlink { item_id } => {
                written += sqlx::query(&format!(
                    "UPDATE {} SET exchange_link = 'unlinked'
                      WHERE mailbox_id = $1 AND ews_item_id = $2 AND exchange_link = 'imported'",
                    kind.table()
                ))
                .bind(mailbox_id)
                .bind(item_id)
                .execute(&mut *tx)
                .await?
                .rows_affected() as usize;
            }
            ExchangeChange::Skip { item_id } => {
                sqlx::query(
                    "INSERT INTO skipped_items (mailbox_id, ews_item_id, folder, reason)
                     VALUES ($1, $2, $3, 'not_tracked')
                     ON CONFLICT (mailbox_id, ews_item_id) DO UPDATE
                        SET reason = EXCLUDED.reason, folder = EXCLUDED.folder, skipped_at = now()",
                )
                .bind(mailbox_id)
                .bind(item_id)
                .bind(kind.folder())
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    if let Some(state) = sync_state {
        sqlx::query(
            "INSERT INTO folder_sync_states (mailbox_id, folder, sync_state, updated_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (mailbox_id, folder) DO UPDATE
                SET sync_state = EXCLUDED.sync_state, updated_at = now()",
        )
        .bind(mailbox_id)
        .bind(kind.folder())
        .bind(state)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(written)
}

/// An item stored (or gone) is no longer a skipped one.
async fn forget_skip(
    tx: &mut Transaction<'_, Postgres>,
    mailbox_id: Uuid,
    item_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM skipped_items WHERE mailbox_id = $1 AND ews_item_id = $2")
        .bind(mailbox_id)
        .bind(item_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Record that `pushed_version` of a row was written to Exchange as `item_id`/`change_key`.
pub async fn mark_pushed(
    store: &Store,
    kind: ActKind,
    row_id: Uuid,
    pushed_version: i64,
    item_id: &str,
    change_key: Option<&str>,
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    as_exchange(&mut tx).await?;
    sqlx::query(&format!(
        "UPDATE {} SET ews_item_id = $2, ews_change_key = $3,
                synced_version = GREATEST(synced_version, LEAST($4, version)),
                exchange_modified_at = now(), sync_error = NULL
          WHERE id = $1",
        kind.table()
    ))
    .bind(row_id)
    .bind(item_id)
    .bind(change_key)
    .bind(pushed_version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Keep the error of a row that could not be written to Exchange (it stays dirty).
pub async fn mark_push_failed(
    store: &Store,
    kind: ActKind,
    row_id: Uuid,
    error: &str,
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    as_exchange(&mut tx).await?;
    sqlx::query(&format!(
        "UPDATE {} SET sync_error = $2 WHERE id = $1",
        kind.table()
    ))
    .bind(row_id)
    .bind(super::scheduling::truncate(error, 2000))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A row deleted by an application, still to be deleted in Exchange.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tombstone {
    /// Tombstone id.
    pub id: Uuid,
    /// The server's item to delete (column `ews_item_id`).
    #[sqlx(rename = "ews_item_id")]
    pub item_id: String,
    /// Attempts so far.
    pub attempts: i32,
    /// How the deleted row was tied (`owned` or `imported`).
    pub exchange_link: String,
}

/// Tombstones of one kind for a mailbox.
pub async fn tombstones(
    store: &Store,
    mailbox_id: Uuid,
    kind: ActKind,
    limit: i64,
) -> Result<Vec<Tombstone>, StoreError> {
    let rows = sqlx::query_as::<_, Tombstone>(
        "SELECT id, ews_item_id, attempts, exchange_link FROM act_deletions
          WHERE mailbox_id = $1 AND kind = $2 ORDER BY deleted_at LIMIT $3",
    )
    .bind(mailbox_id)
    .bind(kind.as_str())
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// The deletion reached Exchange (or the item was already gone): forget the tombstone.
pub async fn tombstone_done(store: &Store, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM act_deletions WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The deletion failed this time: count it and keep the error.
pub async fn tombstone_failed(store: &Store, id: Uuid, error: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE act_deletions SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(super::scheduling::truncate(error, 2000))
        .execute(store.pool())
        .await?;
    Ok(())
}

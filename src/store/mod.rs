//! Postgres persistence: one file per table family, rows turned into domain types.
//!
//! Owns every SQL statement of exsync. Bad rows become named errors (`InvalidRow` with the
//! table, row id and field), never panics. Must not call Exchange or read configuration files.

pub mod activities;
pub mod alerts;
pub mod bench;
pub mod declare;
pub mod demo;
pub mod emails;
pub mod graph_subscriptions;
pub mod mailboxes;
pub mod migration;
pub mod operate;
pub mod outgoing;
pub mod profiles;
mod report;
pub mod scheduling;
pub mod scope;
pub mod secrets;
pub mod streaming;

pub use mailboxes::{MailboxRow, MAILBOX_COLUMNS};
pub use profiles::{ProfileRow, PROFILE_COLUMNS};
pub use report::{mailbox_statuses, MailboxStatus};

use crate::config::DatabaseSettings;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use uuid::Uuid;

/// Why a database operation failed, in terms the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the connection broke (transient: retry later).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement was rejected (syntax, type, a value out of range).
    #[error("database error: {0}")]
    Database(String),
    /// A statement broke a named constraint (a check, a unique key, a foreign key): the
    /// caller reacts by the constraint's name, never by the message.
    #[error("database error: {message} (constraint \"{constraint}\")")]
    Constraint {
        /// The constraint's name, as in `migrations/`.
        constraint: String,
        /// The database's message.
        message: String,
    },
    /// A fenced write found the mailbox's lease token changed: another process owns the
    /// mailbox now, and this one must stop writing.
    #[error("database error: lease lost: another process owns this mailbox now")]
    LeaseLost,
    /// A row the caller named does not exist (says which, and how to make it).
    #[error("database error: {0}")]
    NotFound(String),
    /// A row holds a value exsync cannot use; names the row and the field.
    #[error("invalid {table} row {id}: field `{field}`: {reason}")]
    InvalidRow {
        /// Table of the row.
        table: &'static str,
        /// Row id.
        id: Uuid,
        /// Column at fault.
        field: &'static str,
        /// What is wrong (never the value of a secret).
        reason: String,
    },
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The database URL is not usable.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
}

impl StoreError {
    /// Whether retrying later may succeed (lost connection, pool timeout, restart).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// The constraint a rejected statement broke, if that is why it failed.
    pub fn violated_constraint(&self) -> Option<&str> {
        match self {
            StoreError::Constraint { constraint, .. } => Some(constraint),
            _ => None,
        }
    }

    /// Why the database refused what the caller asked for (a statement it rejected, a
    /// constraint, a row that does not exist), as text for the operator; `None` when the
    /// failure is the database's, not the input's (unreachable, a bad row, a lost lease).
    pub fn refusal(&self) -> Option<String> {
        match self {
            StoreError::Database(reason) | StoreError::NotFound(reason) => Some(reason.clone()),
            StoreError::Constraint {
                constraint,
                message,
            } => Some(format!("{message} (constraint \"{constraint}\")")),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            sqlx::Error::Database(db) => {
                // Admin shutdown, crash recovery, connection failure classes are transient.
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
                    StoreError::Unavailable(db.message().to_owned())
                } else {
                    match db.constraint() {
                        Some(constraint) => StoreError::Constraint {
                            constraint: constraint.to_owned(),
                            message: db.message().to_owned(),
                        },
                        None => StoreError::Database(db.message().to_owned()),
                    }
                }
            }
            sqlx::Error::Configuration(_) => StoreError::BadUrl(error.to_string()),
            _ => StoreError::Database(error.to_string()),
        }
    }
}

/// The embedded schema migrations (`migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Handle to the database: a connection pool, cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connect a pool (lazily: the first use opens connections).
    pub fn connect_lazy(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(settings.url.expose_secret())
            .map_err(|e| StoreError::BadUrl(redacted_reason(&e)))?
            .application_name("exsync");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        Ok(Store { pool })
    }

    /// Connect and check the database answers.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        let store = Self::connect_lazy(settings)?;
        store.ping().await?;
        Ok(store)
    }

    /// A store over an existing pool (tests, `sqlx::test`).
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    /// The underlying pool, for modules that run their own statements through `store`.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Whether exsync's schema is there (`exsync migrate` ran): commands other than `migrate`
    /// and `run` refuse to work on an empty database.
    pub async fn has_schema(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 'mailboxes')",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn redacted_reason(error: &sqlx::Error) -> String {
    // sqlx's URL errors describe the problem, not the URL; keep them short regardless.
    error.to_string().chars().take(200).collect()
}

/// Create the database named in `settings.url` if it does not exist (used by `demo`).
pub async fn ensure_database_exists(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(settings.url.expose_secret())
        .map_err(|e| StoreError::BadUrl(redacted_reason(&e)))?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options.database("postgres"))
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&admin)
            .await
        {
            Ok(_) => {}
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await;
    Ok(())
}

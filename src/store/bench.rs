//! Statements only `exsync bench` runs: a throw-away database's life cycle, bulk seeding of
//! mailboxes and outgoing email, making every mailbox due, and the server's write counters.
//!
//! Must not be used by the daemon's own paths (they never create or drop databases).

use super::StoreError;
use super::{redacted_reason, Store};
use crate::config::DatabaseSettings;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// The same settings, pointing at database `name` on the same server (same user, options).
pub fn settings_for_database(
    settings: &DatabaseSettings,
    name: &str,
) -> Result<DatabaseSettings, StoreError> {
    let mut url = url::Url::parse(settings.url.expose_secret())
        .map_err(|e| StoreError::BadUrl(format!("database.url: {e}")))?;
    url.set_path(&format!("/{name}"));
    Ok(DatabaseSettings {
        url: SecretString::from(url.to_string()),
        ..settings.clone()
    })
}

async fn admin_pool(settings: &DatabaseSettings) -> Result<(PgPool, String), StoreError> {
    let options = PgConnectOptions::from_str(settings.url.expose_secret())
        .map_err(|e| StoreError::BadUrl(redacted_reason(&e)))?;
    let name = options
        .get_database()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::BadUrl("database.url names no database".into()))?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(
            options
                .database("postgres")
                .application_name("exsync-bench"),
        )
        .await?;
    Ok((admin, name))
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Create the (new, empty) database named in `settings.url`.
pub async fn create_database(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let (admin, name) = admin_pool(settings).await?;
    let created = sqlx::query(&format!("CREATE DATABASE {}", quoted(&name)))
        .execute(&admin)
        .await;
    admin.close().await;
    created?;
    Ok(())
}

/// Drop the database named in `settings.url`, ending any session still connected to it.
pub async fn drop_database(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let (admin, name) = admin_pool(settings).await?;
    let dropped = sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quoted(&name)
    ))
    .execute(&admin)
    .await;
    admin.close().await;
    dropped?;
    Ok(())
}

/// Rows inserted plus rows updated in the database named in `settings.url`, as the server's
/// statistics count them, once no session is connected to it any more (a session reports its
/// counts when it ends, so read this after closing every pool on the database).
pub async fn rows_written(settings: &DatabaseSettings) -> Result<i64, StoreError> {
    let (admin, name) = admin_pool(settings).await?;
    let result = async {
        for _ in 0..50 {
            let sessions: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                    .bind(&name)
                    .fetch_one(&admin)
                    .await?;
            if sessions == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Statistics reach shared memory with a short delay after a session ends.
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&admin)
            .await?;
        let rows: i64 = sqlx::query_scalar(
            "SELECT (tup_inserted + tup_updated)::bigint FROM pg_stat_database WHERE datname = $1",
        )
        .bind(&name)
        .fetch_one(&admin)
        .await?;
        Ok::<i64, StoreError>(rows)
    }
    .await;
    admin.close().await;
    result
}

/// Insert approved mailboxes (incoming and outgoing on, ACT off) in bulk: `(address, profile
/// name)` pairs; returns how many were inserted.
pub async fn insert_mailboxes(
    store: &Store,
    mailboxes: &[(String, String)],
) -> Result<u64, StoreError> {
    let (addresses, profiles): (Vec<String>, Vec<String>) = mailboxes.iter().cloned().unzip();
    let done = sqlx::query(
        "INSERT INTO mailboxes (email_address, profile_id, approval_status,
                                incoming_method, outgoing_method, act_method)
         SELECT t.address, p.id, 'approved', 'server_side_sync', 'server_side_sync', 'none'
           FROM unnest($1::text[], $2::text[]) AS t(address, profile)
           JOIN email_server_profiles p ON p.name = t.profile",
    )
    .bind(&addresses)
    .bind(&profiles)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected())
}

/// Make the incoming and outgoing workloads of every mailbox due now and wake the schedulers;
/// returns how many mailboxes.
pub async fn make_all_due(store: &Store) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE mailboxes SET incoming_next_due_at = now(), outgoing_next_due_at = now()",
    )
    .execute(store.pool())
    .await?;
    wake_schedulers(store).await?;
    Ok(done.rows_affected())
}

/// Queue `count` outgoing emails, spread round-robin over every mailbox, to `recipient`
/// (the queue's insert trigger wakes the schedulers); returns how many were queued.
pub async fn enqueue_round_robin(
    store: &Store,
    count: i64,
    recipient: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "INSERT INTO outgoing_emails (mailbox_id, to_recipients, subject, body)
         SELECT m.id, ARRAY[$2], 'exsync bench ' || g, 'A benchmark message, number ' || g || '.'
           FROM (SELECT id, row_number() OVER (ORDER BY email_address) - 1 AS n,
                        count(*) OVER () AS total
                   FROM mailboxes) m
           JOIN generate_series(0, $1 - 1) AS g ON g % m.total = m.n",
    )
    .bind(count)
    .bind(recipient)
    .execute(store.pool())
    .await?;
    wake_schedulers(store).await?;
    Ok(done.rows_affected())
}

async fn wake_schedulers(store: &Store) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify('exsync_outgoing', '')")
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The pids of the Postgres backends serving `database` (the streaming benchmark's CPU).
pub async fn backend_pids(store: &Store, database: &str) -> Result<Vec<i32>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
            .bind(database)
            .fetch_all(store.pool())
            .await?,
    )
}

/// How many mailboxes are subscribed and streaming.
pub async fn streaming_mailboxes(store: &Store) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM streaming_mailboxes WHERE state = 'streaming'")
            .fetch_one(store.pool())
            .await?,
    )
}

/// How many mailboxes have synced once and hold no lease.
pub async fn synced_idle_mailboxes(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM mailboxes
          WHERE last_successful_sync IS NOT NULL AND lease_owner IS NULL",
    )
    .fetch_one(store.pool())
    .await?)
}

/// How many mailboxes are in a pass or due for their incoming workload.
pub async fn busy_mailboxes(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM mailboxes
          WHERE lease_owner IS NOT NULL OR incoming_next_due_at <= now()",
    )
    .fetch_one(store.pool())
    .await?)
}

/// The stored emails whose Message-ID matches `pattern` (SQL LIKE), with when each was stored.
pub async fn emails_like(
    store: &Store,
    pattern: &str,
) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT internet_message_id, created_at FROM emails WHERE internet_message_id LIKE $1",
    )
    .bind(pattern)
    .fetch_all(store.pool())
    .await?)
}

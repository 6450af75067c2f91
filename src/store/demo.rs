//! The statements of `exsync demo`: its own rows (the `.demo` domains and the `Demo …`
//! profiles) wiped before a run, and its open alerts counted after.

use super::{Store, StoreError};

/// Remove the rows an earlier demo run left (only the demo's own domains and profiles).
pub async fn wipe_demo_rows(store: &Store) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let demo_mailboxes = "SELECT id FROM mailboxes WHERE email_address LIKE '%.demo'";
    for statement in [
        format!("DELETE FROM outgoing_emails WHERE mailbox_id IN ({demo_mailboxes})"),
        "DELETE FROM mailboxes WHERE email_address LIKE '%.demo'".to_owned(),
        "DELETE FROM email_server_profiles WHERE name LIKE 'Demo %'".to_owned(),
        "DELETE FROM emails e WHERE NOT EXISTS (SELECT 1 FROM email_copies c WHERE c.email_id = e.id)
            AND e.sender_address LIKE '%.demo'"
            .to_owned(),
    ] {
        sqlx::query(&statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The demo's open alerts: (level, code, how many), by level and code.
pub async fn open_alert_counts(store: &Store) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT level, code, count(*) FROM alerts a
           LEFT JOIN mailboxes m ON m.id = a.mailbox_id
           LEFT JOIN email_server_profiles p ON p.id = a.profile_id
          WHERE a.resolved_at IS NULL
            AND (m.email_address LIKE '%.demo' OR p.name LIKE 'Demo %')
          GROUP BY level, code ORDER BY level, code",
    )
    .fetch_all(store.pool())
    .await?)
}

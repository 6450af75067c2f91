//! Re-encrypting stored secrets under the current credential key (`exsync rotate-key`).
//!
//! Every encrypted column (profiles' passwords, OAuth client secrets and certificate keys, mailboxes' own
//! passwords) is read with the cipher — which knows the current key and, during a rotation,
//! the previous one — and rewritten with the current key, all in one transaction. Values
//! already under the current key are left alone, so running it twice changes nothing.

use super::{Store, StoreError};
use crate::crypto::{CredentialCipher, SecretSlot};
use serde::Serialize;
use uuid::Uuid;

/// The encrypted columns: (table, column).
pub const ENCRYPTED_COLUMNS: [(&str, &str); 5] = [
    ("email_server_profiles", "password_enc"),
    ("email_server_profiles", "oauth_client_secret_enc"),
    ("email_server_profiles", "oauth_private_key_enc"),
    ("email_server_profiles", "outgoing_password_enc"),
    ("mailboxes", "password_enc"),
];

/// What a re-encryption did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RekeyReport {
    /// Values rewritten under the current key.
    pub reencrypted: usize,
    /// Values already under the current key.
    pub already_current: usize,
}

/// Rewrite every stored secret that is not under the cipher's current key (one transaction;
/// any value that does not decrypt aborts it with the slot named, and nothing is written).
pub async fn reencrypt_all(
    store: &Store,
    cipher: &CredentialCipher,
) -> Result<RekeyReport, StoreError> {
    let mut report = RekeyReport::default();
    let mut tx = store.pool().begin().await?;
    for (table, column) in ENCRYPTED_COLUMNS {
        let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY id FOR UPDATE"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (id, stored) in rows {
            if !cipher.needs_reencryption(&stored) {
                report.already_current += 1;
                continue;
            }
            let slot = || SecretSlot::new(table, column, id);
            let invalid = |reason: String| StoreError::Database(format!("{}: {reason}", slot()));
            let secret = cipher
                .decrypt(&stored, slot())
                .map_err(|e| invalid(e.to_string()))?;
            let fresh = cipher
                .encrypt(&secret, slot())
                .map_err(|e| invalid(e.to_string()))?;
            sqlx::query(&format!("UPDATE {table} SET {column} = $2 WHERE id = $1"))
                .bind(id)
                .bind(fresh)
                .execute(&mut *tx)
                .await?;
            report.reencrypted += 1;
        }
    }
    tx.commit().await?;
    Ok(report)
}

//! The statements of `exsync apply`: declared profiles and mailboxes read for update and
//! written in one transaction. The caller (`operator::apply`) decides what changed and
//! encrypts the secrets; this module only reads and writes the rows.

use super::{MailboxRow, ProfileRow, Store, StoreError, MAILBOX_COLUMNS, PROFILE_COLUMNS};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One apply run's transaction (committed, or rolled back for `--dry-run`).
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Postgres>;

/// Start an apply run's transaction.
pub async fn begin(store: &Store) -> Result<Tx<'static>, StoreError> {
    Ok(store.pool().begin().await?)
}

/// Make the run's writes permanent.
pub async fn commit(tx: Tx<'_>) -> Result<(), StoreError> {
    Ok(tx.commit().await?)
}

/// Undo the run's writes (`--dry-run`).
pub async fn rollback(tx: Tx<'_>) -> Result<(), StoreError> {
    Ok(tx.rollback().await?)
}

/// Every stored profile's name and authentication method (a mailbox may name a profile
/// stored earlier, whose method decides which of its keys are required).
pub async fn profile_auths(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT name, auth FROM email_server_profiles")
            .fetch_all(store.pool())
            .await?,
    )
}

/// The stored profile named `name`, locked until the run ends.
pub async fn lock_profile(tx: &mut Tx<'_>, name: &str) -> Result<Option<ProfileRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PROFILE_COLUMNS} FROM email_server_profiles WHERE name = $1 FOR UPDATE"
    ))
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Every column `apply` writes of a profile (secrets already encrypted for their slot).
#[derive(Debug)]
pub struct ProfileValues<'a> {
    /// The row's id (new, or the stored row's).
    pub id: Uuid,
    /// `name`.
    pub name: &'a str,
    /// `server_type`.
    pub server_type: &'a str,
    /// `ews_url`.
    pub ews_url: &'a str,
    /// `auth`.
    pub auth: &'a str,
    /// `password_scheme`.
    pub password_scheme: &'a str,
    /// `username`.
    pub username: Option<&'a str>,
    /// `password_enc`.
    pub password_enc: Option<Vec<u8>>,
    /// `oauth_tenant`.
    pub oauth_tenant: Option<&'a str>,
    /// `oauth_client_id`.
    pub oauth_client_id: Option<&'a str>,
    /// `oauth_client_secret_enc`.
    pub oauth_client_secret_enc: Option<Vec<u8>>,
    /// `oauth_token_url`.
    pub oauth_token_url: Option<&'a str>,
    /// `oauth_scope`.
    pub oauth_scope: Option<&'a str>,
    /// `use_impersonation`.
    pub use_impersonation: bool,
    /// `use_same_settings_for_outgoing`.
    pub use_same_settings_for_outgoing: bool,
    /// `outgoing_ews_url`.
    pub outgoing_ews_url: Option<&'a str>,
    /// `outgoing_username`.
    pub outgoing_username: Option<&'a str>,
    /// `outgoing_password_enc`.
    pub outgoing_password_enc: Option<Vec<u8>>,
    /// `process_emails_from`.
    pub process_emails_from: Option<DateTime<Utc>>,
    /// `max_concurrent_connections`.
    pub max_concurrent_connections: i32,
    /// `min_polling_interval_minutes`.
    pub min_polling_interval_minutes: i32,
    /// `enabled`.
    pub enabled: bool,
    /// `oauth_certificate_pem`.
    pub oauth_certificate_pem: Option<&'a str>,
    /// `oauth_private_key_enc`.
    pub oauth_private_key_enc: Option<Vec<u8>>,
    /// `oauth_assertion_signing`.
    pub oauth_assertion_signing: &'a str,
    /// `protocol` (`ews` | `graph`).
    pub protocol: &'a str,
    /// `graph_url`.
    pub graph_url: &'a str,
}

/// Insert or overwrite a profile (a changed profile's mailboxes become due at the next tick:
/// a trigger does it).
pub async fn write_profile(tx: &mut Tx<'_>, p: &ProfileValues<'_>) -> Result<(), StoreError> {
    sqlx::query(
        r#"
        INSERT INTO email_server_profiles (
            id, name, server_type, ews_url, auth, password_scheme, username, password_enc,
            oauth_tenant, oauth_client_id, oauth_client_secret_enc, oauth_token_url, oauth_scope,
            use_impersonation, use_same_settings_for_outgoing, outgoing_ews_url,
            outgoing_username, outgoing_password_enc, process_emails_from,
            max_concurrent_connections, min_polling_interval_minutes, enabled,
            oauth_certificate_pem, oauth_private_key_enc, oauth_assertion_signing, protocol,
            graph_url)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                $19, $20, $21, $22, $23, $24, $25, $26, $27)
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, server_type = EXCLUDED.server_type,
            ews_url = EXCLUDED.ews_url, auth = EXCLUDED.auth,
            password_scheme = EXCLUDED.password_scheme, username = EXCLUDED.username,
            password_enc = EXCLUDED.password_enc, oauth_tenant = EXCLUDED.oauth_tenant,
            oauth_client_id = EXCLUDED.oauth_client_id,
            oauth_client_secret_enc = EXCLUDED.oauth_client_secret_enc,
            oauth_token_url = EXCLUDED.oauth_token_url, oauth_scope = EXCLUDED.oauth_scope,
            use_impersonation = EXCLUDED.use_impersonation,
            use_same_settings_for_outgoing = EXCLUDED.use_same_settings_for_outgoing,
            outgoing_ews_url = EXCLUDED.outgoing_ews_url,
            outgoing_username = EXCLUDED.outgoing_username,
            outgoing_password_enc = EXCLUDED.outgoing_password_enc,
            process_emails_from = EXCLUDED.process_emails_from,
            max_concurrent_connections = EXCLUDED.max_concurrent_connections,
            min_polling_interval_minutes = EXCLUDED.min_polling_interval_minutes,
            enabled = EXCLUDED.enabled,
            oauth_certificate_pem = EXCLUDED.oauth_certificate_pem,
            oauth_private_key_enc = EXCLUDED.oauth_private_key_enc,
            oauth_assertion_signing = EXCLUDED.oauth_assertion_signing,
            protocol = EXCLUDED.protocol, graph_url = EXCLUDED.graph_url
        "#,
    )
    .bind(p.id)
    .bind(p.name)
    .bind(p.server_type)
    .bind(p.ews_url)
    .bind(p.auth)
    .bind(p.password_scheme)
    .bind(p.username)
    .bind(&p.password_enc)
    .bind(p.oauth_tenant)
    .bind(p.oauth_client_id)
    .bind(&p.oauth_client_secret_enc)
    .bind(p.oauth_token_url)
    .bind(p.oauth_scope)
    .bind(p.use_impersonation)
    .bind(p.use_same_settings_for_outgoing)
    .bind(p.outgoing_ews_url)
    .bind(p.outgoing_username)
    .bind(&p.outgoing_password_enc)
    .bind(p.process_emails_from)
    .bind(p.max_concurrent_connections)
    .bind(p.min_polling_interval_minutes)
    .bind(p.enabled)
    .bind(p.oauth_certificate_pem)
    .bind(&p.oauth_private_key_enc)
    .bind(p.oauth_assertion_signing)
    .bind(p.protocol)
    .bind(p.graph_url)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether a profile may use streaming notifications (the `streaming` apply key).
pub async fn profile_streaming(tx: &mut Tx<'_>, id: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT streaming FROM email_server_profiles WHERE id = $1")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Set a profile's `streaming` key.
pub async fn set_profile_streaming(
    tx: &mut Tx<'_>,
    id: Uuid,
    streaming: bool,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE email_server_profiles SET streaming = $2 WHERE id = $1")
        .bind(id)
        .bind(streaming)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The id of the profile named `name` (stored, or written earlier in this run).
pub async fn profile_id(tx: &mut Tx<'_>, name: &str) -> Result<Option<Uuid>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM email_server_profiles WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// The stored mailbox with this address, locked until the run ends.
pub async fn lock_mailbox(
    tx: &mut Tx<'_>,
    address: &str,
) -> Result<Option<MailboxRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE email_address = $1 FOR UPDATE"
    ))
    .bind(address)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Every column `apply` writes of a mailbox (the password already encrypted for its slot).
#[derive(Debug)]
pub struct MailboxValues<'a> {
    /// The row's id (new, or the stored row's).
    pub id: Uuid,
    /// `email_address`.
    pub address: &'a str,
    /// `profile_id`.
    pub profile_id: Uuid,
    /// `allow_credentials_for_email_processing`.
    pub allow_credentials_for_email_processing: bool,
    /// `username`.
    pub username: Option<&'a str>,
    /// `password_enc`.
    pub password_enc: Option<Vec<u8>>,
    /// `process_email_received_after`.
    pub process_email_received_after: Option<DateTime<Utc>>,
    /// `incoming_method`.
    pub incoming_method: &'a str,
    /// `outgoing_method`.
    pub outgoing_method: &'a str,
    /// `act_method`.
    pub act_method: &'a str,
    /// `approval_status`.
    pub approval_status: &'a str,
    /// `payload_logging`.
    pub payload_logging: bool,
}

/// Insert or overwrite a mailbox.
pub async fn write_mailbox(tx: &mut Tx<'_>, m: &MailboxValues<'_>) -> Result<(), StoreError> {
    sqlx::query(
        r#"
        INSERT INTO mailboxes (
            id, email_address, profile_id, allow_credentials_for_email_processing, username,
            password_enc, process_email_received_after, incoming_method, outgoing_method,
            act_method, approval_status, payload_logging)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (id) DO UPDATE SET
            profile_id = EXCLUDED.profile_id,
            allow_credentials_for_email_processing = EXCLUDED.allow_credentials_for_email_processing,
            username = EXCLUDED.username, password_enc = EXCLUDED.password_enc,
            process_email_received_after = EXCLUDED.process_email_received_after,
            incoming_method = EXCLUDED.incoming_method,
            outgoing_method = EXCLUDED.outgoing_method, act_method = EXCLUDED.act_method,
            approval_status = EXCLUDED.approval_status,
            payload_logging = EXCLUDED.payload_logging
        "#,
    )
    .bind(m.id)
    .bind(m.address)
    .bind(m.profile_id)
    .bind(m.allow_credentials_for_email_processing)
    .bind(m.username)
    .bind(&m.password_enc)
    .bind(m.process_email_received_after)
    .bind(m.incoming_method)
    .bind(m.outgoing_method)
    .bind(m.act_method)
    .bind(m.approval_status)
    .bind(m.payload_logging)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A profile's scope keys as stored (snake_case names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProfileScope {
    /// `incoming_filter`.
    pub incoming_filter: String,
    /// `act_scope`.
    pub act_scope: String,
    /// `act_attendee_delete`.
    pub act_attendee_delete: String,
    /// `tracking_token_prefix`.
    pub tracking_token_prefix: Option<String>,
}

/// The scope keys of the profile named `name`, locked until the run ends.
pub async fn lock_profile_scope(
    tx: &mut Tx<'_>,
    name: &str,
) -> Result<StoredProfileScope, StoreError> {
    let (incoming_filter, act_scope, act_attendee_delete, tracking_token_prefix) = sqlx::query_as(
        "SELECT incoming_filter, act_scope, act_attendee_delete, tracking_token_prefix
               FROM email_server_profiles WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut **tx)
    .await?;
    Ok(StoredProfileScope {
        incoming_filter,
        act_scope,
        act_attendee_delete,
        tracking_token_prefix,
    })
}

/// Write the scope keys of the profile named `name`.
pub async fn write_profile_scope(
    tx: &mut Tx<'_>,
    name: &str,
    scope: &StoredProfileScope,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE email_server_profiles
            SET incoming_filter = $2, act_scope = $3, act_attendee_delete = $4,
                tracking_token_prefix = $5
          WHERE name = $1",
    )
    .bind(name)
    .bind(&scope.incoming_filter)
    .bind(&scope.act_scope)
    .bind(&scope.act_attendee_delete)
    .bind(&scope.tracking_token_prefix)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A mailbox's own scope keys as stored (`None`: the profile's value applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMailboxScope {
    /// `incoming_filter`.
    pub incoming_filter: Option<String>,
    /// `act_scope`.
    pub act_scope: Option<String>,
}

/// The scope keys of the mailbox with this address, locked until the run ends.
pub async fn lock_mailbox_scope(
    tx: &mut Tx<'_>,
    address: &str,
) -> Result<StoredMailboxScope, StoreError> {
    let (incoming_filter, act_scope) = sqlx::query_as(
        "SELECT incoming_filter, act_scope FROM mailboxes WHERE email_address = $1 FOR UPDATE",
    )
    .bind(address)
    .fetch_one(&mut **tx)
    .await?;
    Ok(StoredMailboxScope {
        incoming_filter,
        act_scope,
    })
}

/// Write the scope keys of the mailbox with this address.
pub async fn write_mailbox_scope(
    tx: &mut Tx<'_>,
    address: &str,
    scope: &StoredMailboxScope,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mailboxes SET incoming_filter = $2, act_scope = $3 WHERE email_address = $1",
    )
    .bind(address)
    .bind(&scope.incoming_filter)
    .bind(&scope.act_scope)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

//! `mailboxes`: reading rows and turning them into [`Mailbox`]es.

use super::{Store, StoreError};
use crate::crypto::{CredentialCipher, SecretSlot};
use crate::domain::{Mailbox, MailboxId, ParseEnumError, ProfileId};
use chrono::{DateTime, Utc};
use std::str::FromStr;
use uuid::Uuid;

/// Columns selected into a [`MailboxRow`].
pub const MAILBOX_COLUMNS: &str = "id, email_address, profile_id, \
    allow_credentials_for_email_processing, username, password_enc, \
    process_email_received_after, incoming_method, outgoing_method, act_method, \
    approval_status, payload_logging, updated_at";

/// A mailbox's settings as stored (password still encrypted).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailboxRow {
    /// Row id.
    pub id: Uuid,
    /// Primary SMTP address.
    pub email_address: String,
    /// Owning profile.
    pub profile_id: Uuid,
    /// Allow to use credentials for email processing.
    pub allow_credentials_for_email_processing: bool,
    /// Own user name.
    pub username: Option<String>,
    /// Encrypted own password.
    pub password_enc: Option<Vec<u8>>,
    /// Process Email Received After.
    pub process_email_received_after: Option<DateTime<Utc>>,
    /// `none` | `server_side_sync`.
    pub incoming_method: String,
    /// `none` | `server_side_sync`.
    pub outgoing_method: String,
    /// `none` | `server_side_sync`.
    pub act_method: String,
    /// `empty` | `pending` | `approved` | `rejected`.
    pub approval_status: String,
    /// Log EWS payloads (redacted) for this mailbox.
    pub payload_logging: bool,
    /// Last settings change.
    pub updated_at: DateTime<Utc>,
}

const TABLE: &str = "mailboxes";

impl MailboxRow {
    fn invalid(&self, field: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError::InvalidRow {
            table: TABLE,
            id: self.id,
            field,
            reason: reason.into(),
        }
    }

    fn parse<T: FromStr<Err = ParseEnumError>>(
        &self,
        field: &'static str,
        text: &str,
    ) -> Result<T, StoreError> {
        text.parse()
            .map_err(|e: ParseEnumError| self.invalid(field, e.to_string()))
    }

    /// Validate the row and decrypt its password.
    pub fn into_mailbox(self, cipher: &CredentialCipher) -> Result<Mailbox, StoreError> {
        let password = self
            .password_enc
            .as_deref()
            .map(|bytes| {
                cipher
                    .decrypt(bytes, SecretSlot::new(TABLE, "password_enc", self.id))
                    .map_err(|e| self.invalid("password_enc", e.to_string()))
            })
            .transpose()?;
        Ok(Mailbox {
            id: MailboxId(self.id),
            profile_id: ProfileId(self.profile_id),
            allow_credentials_for_email_processing: self.allow_credentials_for_email_processing,
            username: self.username.clone(),
            password,
            process_email_received_after: self.process_email_received_after,
            incoming: self.parse("incoming_method", &self.incoming_method)?,
            outgoing: self.parse("outgoing_method", &self.outgoing_method)?,
            act: self.parse("act_method", &self.act_method)?,
            approval: self.parse("approval_status", &self.approval_status)?,
            payload_logging: self.payload_logging,
            address: self.email_address,
        })
    }
}

/// A mailbox's id and its profile's id, by address (`None`: not declared).
pub async fn ids_by_address(
    store: &Store,
    address: &str,
) -> Result<Option<(Uuid, Uuid)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, profile_id FROM mailboxes WHERE email_address = lower($1)")
            .bind(address)
            .fetch_optional(store.pool())
            .await?,
    )
}

//! `email_server_profiles`: reading rows and turning them into [`Profile`]s.

use super::StoreError;
use crate::crypto::{CredentialCipher, SecretSlot};
use crate::domain::{
    default_oauth_scope, OAuthCredential, OAuthSettings, OutgoingSettings, Profile, ProfileId,
};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::str::FromStr;
use std::time::Duration;
use url::Url;
use uuid::Uuid;

/// Columns selected into a [`ProfileRow`].
pub const PROFILE_COLUMNS: &str = "id, name, server_type, ews_url, auth, password_scheme, \
    username, password_enc, oauth_tenant, oauth_client_id, oauth_client_secret_enc, \
    oauth_token_url, oauth_scope, oauth_certificate_pem, oauth_private_key_enc, \
    oauth_assertion_signing, use_impersonation, use_same_settings_for_outgoing, \
    outgoing_ews_url, outgoing_username, outgoing_password_enc, process_emails_from, \
    max_concurrent_connections, min_polling_interval_minutes, enabled, \
    credentials_blocked_at, credentials_blocked_reason, created_at, updated_at, protocol, \
    graph_url";

/// A profile row as stored (secrets still encrypted).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    /// Row id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// `exchange_server` | `exchange_online`.
    pub server_type: String,
    /// EWS endpoint.
    pub ews_url: String,
    /// `profile_credentials` | `mailbox_credentials` | `oauth_client_credentials`.
    pub auth: String,
    /// `basic` | `ntlm`.
    pub password_scheme: String,
    /// Service account.
    pub username: Option<String>,
    /// Encrypted service account password.
    pub password_enc: Option<Vec<u8>>,
    /// OAuth tenant.
    pub oauth_tenant: Option<String>,
    /// OAuth client id.
    pub oauth_client_id: Option<String>,
    /// Encrypted OAuth client secret.
    pub oauth_client_secret_enc: Option<Vec<u8>>,
    /// OAuth token endpoint.
    pub oauth_token_url: Option<String>,
    /// OAuth scope.
    pub oauth_scope: Option<String>,
    /// OAuth certificate credential: the certificate (PEM).
    pub oauth_certificate_pem: Option<String>,
    /// Encrypted private key of that certificate (PEM).
    pub oauth_private_key_enc: Option<Vec<u8>>,
    /// `ps256` | `rs256`.
    pub oauth_assertion_signing: String,
    /// Impersonation (else delegation, for profile credentials).
    pub use_impersonation: bool,
    /// Use Same Settings for Outgoing Connections.
    pub use_same_settings_for_outgoing: bool,
    /// Outgoing EWS endpoint.
    pub outgoing_ews_url: Option<String>,
    /// Outgoing account.
    pub outgoing_username: Option<String>,
    /// Encrypted outgoing password.
    pub outgoing_password_enc: Option<Vec<u8>>,
    /// Process Emails From.
    pub process_emails_from: Option<DateTime<Utc>>,
    /// MaximumConcurrentConnections.
    pub max_concurrent_connections: i32,
    /// Minimum polling interval in minutes.
    pub min_polling_interval_minutes: i32,
    /// Enabled.
    pub enabled: bool,
    /// When Exchange last rejected the profile's credentials (cleared by a row change).
    pub credentials_blocked_at: Option<DateTime<Utc>>,
    /// Why.
    pub credentials_blocked_reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last settings change.
    pub updated_at: DateTime<Utc>,
    /// `ews` | `graph`.
    pub protocol: String,
    /// Microsoft Graph base URL.
    pub graph_url: String,
}

const TABLE: &str = "email_server_profiles";

impl ProfileRow {
    fn invalid(&self, field: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError::InvalidRow {
            table: TABLE,
            id: self.id,
            field,
            reason: reason.into(),
        }
    }

    fn url(&self, field: &'static str, text: &str) -> Result<Url, StoreError> {
        let url = Url::parse(text).map_err(|e| self.invalid(field, format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.invalid(field, "must be an http or https URL"));
        }
        Ok(url)
    }

    fn secret(
        &self,
        cipher: &CredentialCipher,
        field: &'static str,
        stored: &Option<Vec<u8>>,
    ) -> Result<Option<SecretString>, StoreError> {
        stored
            .as_deref()
            .map(|bytes| {
                cipher
                    .decrypt(bytes, SecretSlot::new(TABLE, field, self.id))
                    .map_err(|e| self.invalid(field, e.to_string()))
            })
            .transpose()
    }

    /// Validate the row and decrypt its secrets.
    pub fn into_profile(self, cipher: &CredentialCipher) -> Result<Profile, StoreError> {
        let server_type =
            FromStr::from_str(&self.server_type).map_err(|e: crate::domain::ParseEnumError| {
                self.invalid("server_type", e.to_string())
            })?;
        let auth = FromStr::from_str(&self.auth)
            .map_err(|e: crate::domain::ParseEnumError| self.invalid("auth", e.to_string()))?;
        let password_scheme = FromStr::from_str(&self.password_scheme).map_err(
            |e: crate::domain::ParseEnumError| self.invalid("password_scheme", e.to_string()),
        )?;
        let protocol = FromStr::from_str(&self.protocol)
            .map_err(|e: crate::domain::ParseEnumError| self.invalid("protocol", e.to_string()))?;
        let ews_url = self.url("ews_url", &self.ews_url)?;
        let graph_url = self.url("graph_url", &self.graph_url)?;
        let password = self.secret(cipher, "password_enc", &self.password_enc)?;
        let credential = match (&self.oauth_client_secret_enc, &self.oauth_certificate_pem) {
            (Some(_), _) => Some(OAuthCredential::Secret(
                self.secret(
                    cipher,
                    "oauth_client_secret_enc",
                    &self.oauth_client_secret_enc,
                )?
                .ok_or_else(|| self.invalid("oauth_client_secret_enc", "missing"))?,
            )),
            (None, Some(pem)) => Some(OAuthCredential::Certificate {
                certificate_pem: pem.clone(),
                private_key_pem: self
                    .secret(cipher, "oauth_private_key_enc", &self.oauth_private_key_enc)?
                    .ok_or_else(|| self.invalid("oauth_private_key_enc", "missing"))?,
                signing: FromStr::from_str(&self.oauth_assertion_signing).map_err(
                    |e: crate::domain::ParseEnumError| {
                        self.invalid("oauth_assertion_signing", e.to_string())
                    },
                )?,
            }),
            (None, None) => None,
        };
        let oauth = match (&self.oauth_client_id, credential) {
            (Some(client_id), Some(credential)) => {
                let token_url = match (&self.oauth_token_url, &self.oauth_tenant) {
                    (Some(url), _) => self.url("oauth_token_url", url)?,
                    (None, Some(tenant)) => self.url(
                        "oauth_tenant",
                        &format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
                    )?,
                    (None, None) => {
                        return Err(
                            self.invalid("oauth_token_url", "neither a token URL nor a tenant")
                        )
                    }
                };
                Some(OAuthSettings {
                    tenant: self.oauth_tenant.clone(),
                    client_id: client_id.clone(),
                    credential,
                    token_url,
                    scope: self
                        .oauth_scope
                        .clone()
                        .unwrap_or_else(|| default_oauth_scope(protocol, &graph_url)),
                })
            }
            _ => None,
        };
        let outgoing = if self.use_same_settings_for_outgoing {
            OutgoingSettings::SameAsIncoming
        } else {
            let url = self
                .outgoing_ews_url
                .as_deref()
                .ok_or_else(|| self.invalid("outgoing_ews_url", "missing"))?;
            OutgoingSettings::Separate {
                ews_url: self.url("outgoing_ews_url", url)?,
                username: self.outgoing_username.clone(),
                password: self.secret(
                    cipher,
                    "outgoing_password_enc",
                    &self.outgoing_password_enc,
                )?,
            }
        };
        let max_concurrent_connections = u32::try_from(self.max_concurrent_connections)
            .ok()
            .filter(|n| (1..=300).contains(n))
            .ok_or_else(|| self.invalid("max_concurrent_connections", "must be 1..=300"))?;
        let minutes = u64::try_from(self.min_polling_interval_minutes)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| self.invalid("min_polling_interval_minutes", "must be at least 1"))?;
        Ok(Profile {
            id: ProfileId(self.id),
            name: self.name,
            server_type,
            protocol,
            ews_url,
            graph_url,
            auth,
            password_scheme,
            username: self.username,
            password,
            oauth,
            use_impersonation: self.use_impersonation,
            outgoing,
            process_emails_from: self.process_emails_from,
            max_concurrent_connections,
            min_polling_interval: Duration::from_secs(minutes * 60),
            enabled: self.enabled,
            updated_at: self.updated_at,
        })
    }
}

/// Scope of app-only EWS tokens for Exchange Online.
pub const DEFAULT_OAUTH_SCOPE: &str = crate::domain::DEFAULT_EWS_OAUTH_SCOPE;

/// Every profile row, in name order (the scheduler reloads them each tick).
pub async fn list_rows(store: &super::Store) -> Result<Vec<ProfileRow>, StoreError> {
    let rows = sqlx::query_as::<_, ProfileRow>(&format!(
        "SELECT {PROFILE_COLUMNS} FROM email_server_profiles ORDER BY name"
    ))
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// Mailboxes with a workload due now, and with a workload disabled now (for metrics).
pub async fn due_and_disabled_counts(store: &super::Store) -> Result<(i64, i64), StoreError> {
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE (incoming_method = 'server_side_sync' AND incoming_next_due_at <= now())
                                    OR (outgoing_method = 'server_side_sync' AND outgoing_next_due_at <= now())
                                    OR (act_method = 'server_side_sync' AND act_next_due_at <= now())),
                count(*) FILTER (WHERE incoming_blocked_code IS NOT NULL OR outgoing_blocked_code IS NOT NULL
                                    OR act_blocked_code IS NOT NULL OR credentials_blocked_at IS NOT NULL)
           FROM mailboxes",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(counts)
}

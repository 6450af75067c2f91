//! An email server profile: how to reach one Exchange organisation and with whose credentials.

use crate::domain::{AssertionSigning, AuthMethod, PasswordScheme, ProfileId, ServerType};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::time::Duration;
use url::Url;

/// OAuth2 client-credentials (app-only) settings of a profile.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// Azure AD tenant, when the token URL is derived from it.
    pub tenant: Option<String>,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret or certificate, secrets decrypted only in memory.
    pub credential: OAuthCredential,
    /// Token endpoint (explicit, or derived from the tenant).
    pub token_url: Url,
    /// Scope requested for the token (default `https://outlook.office365.com/.default`).
    pub scope: String,
}

/// How an OAuth application proves who it is.
#[derive(Debug, Clone)]
pub enum OAuthCredential {
    /// A client secret.
    Secret(SecretString),
    /// A certificate (PEM, public) and its private key (PEM, decrypted only in memory).
    Certificate {
        /// The certificate (and possibly its chain), PEM.
        certificate_pem: String,
        /// The private key, PEM.
        private_key_pem: SecretString,
        /// How the client assertion is signed.
        signing: AssertionSigning,
    },
}

/// Where outgoing mail goes when the profile does not use the same settings for it.
#[derive(Debug, Clone)]
pub enum OutgoingSettings {
    /// "Use Same Settings for Outgoing Connections" = yes.
    SameAsIncoming,
    /// A separate EWS URL and (for profile credentials) a separate account.
    Separate {
        /// EWS endpoint for sending.
        ews_url: Url,
        /// Account for sending, when the profile uses its own credentials.
        username: Option<String>,
        /// Password of that account, decrypted only in memory.
        password: Option<SecretString>,
    },
}

/// One email server profile row, validated and with its secrets decrypted.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Row id.
    pub id: ProfileId,
    /// Unique human name (the key `apply` files use).
    pub name: String,
    /// Exchange Server or Exchange Online.
    pub server_type: ServerType,
    /// The EWS endpoint, e.g. `https://mail.contoso.com/EWS/Exchange.asmx`.
    pub ews_url: Url,
    /// Whose credentials connect.
    pub auth: AuthMethod,
    /// Basic or NTLM for user name / password authentication.
    pub password_scheme: PasswordScheme,
    /// Service account user name (profile credentials).
    pub username: Option<String>,
    /// Service account password (profile credentials), decrypted only in memory.
    pub password: Option<SecretString>,
    /// OAuth settings (OAuth client credentials).
    pub oauth: Option<OAuthSettings>,
    /// Whether the service account impersonates each mailbox (otherwise: delegation).
    pub use_impersonation: bool,
    /// Outgoing connection settings.
    pub outgoing: OutgoingSettings,
    /// Process Emails From: applies to every mailbox of the profile.
    pub process_emails_from: Option<DateTime<Utc>>,
    /// MaximumConcurrentConnections: the bound on concurrent EWS requests for this profile.
    pub max_concurrent_connections: u32,
    /// No mailbox of this profile is polled more often than this.
    pub min_polling_interval: Duration,
    /// A disabled profile's mailboxes are not synchronised.
    pub enabled: bool,
    /// Last change of the row (credential changes heal blocked mailboxes).
    pub updated_at: DateTime<Utc>,
}

impl Profile {
    /// Delegation = the profile's own account reaching other mailboxes without impersonation;
    /// Dynamics (and exsync) do not support it for appointments, contacts and tasks.
    pub fn uses_delegation(&self) -> bool {
        self.auth == AuthMethod::ProfileCredentials && !self.use_impersonation
    }
}

//! An email server profile: how to reach one Exchange organisation and with whose credentials.

use crate::domain::{
    AssertionSigning, AuthMethod, PasswordScheme, ProfileId, Protocol, ServerType,
};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::time::Duration;
use url::Url;

/// Microsoft Graph's global endpoint, the default `graph_url` (national clouds have their
/// own, e.g. `https://graph.microsoft.us/v1.0`).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

/// Scope of app-only EWS tokens for Exchange Online.
pub const DEFAULT_EWS_OAUTH_SCOPE: &str = "https://outlook.office365.com/.default";

/// The OAuth scope a profile asks for when `oauth_scope` is not set: every consented
/// application permission of the resource it talks to (EWS: Exchange Online; Graph:
/// `graph_url`'s scheme and host + `/.default`, so a national cloud gets its own).
pub fn default_oauth_scope(protocol: Protocol, graph_url: &Url) -> String {
    match protocol {
        Protocol::Ews => DEFAULT_EWS_OAUTH_SCOPE.to_owned(),
        Protocol::Graph => {
            let mut origin = graph_url.origin().ascii_serialization();
            if origin == "null" {
                origin = format!("https://{}", graph_url.host_str().unwrap_or_default());
            }
            format!("{origin}/.default")
        }
    }
}

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
    /// Scope requested for the token (default `https://outlook.office365.com/.default` for
    /// EWS, `graph_url`'s host + `/.default` for Graph).
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
    /// The protocol its mailboxes are reached with (EWS or Microsoft Graph).
    pub protocol: Protocol,
    /// The EWS endpoint, e.g. `https://mail.contoso.com/EWS/Exchange.asmx`.
    pub ews_url: Url,
    /// The Microsoft Graph base URL (`https://graph.microsoft.com/v1.0`, a national cloud's,
    /// or a test server's), used when `protocol` is Graph.
    pub graph_url: Url,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_scope_follows_the_graph_host_and_ews_keeps_exchange_online() {
        let global = Url::parse(DEFAULT_GRAPH_URL).unwrap();
        assert_eq!(
            default_oauth_scope(Protocol::Graph, &global),
            "https://graph.microsoft.com/.default"
        );
        let us = Url::parse("https://graph.microsoft.us/v1.0").unwrap();
        assert_eq!(
            default_oauth_scope(Protocol::Graph, &us),
            "https://graph.microsoft.us/.default"
        );
        let test = Url::parse("http://127.0.0.1:8123/v1.0").unwrap();
        assert_eq!(
            default_oauth_scope(Protocol::Graph, &test),
            "http://127.0.0.1:8123/.default"
        );
        assert_eq!(
            default_oauth_scope(Protocol::Ews, &global),
            DEFAULT_EWS_OAUTH_SCOPE
        );
    }
}

//! OAuth2 client-credentials (app-only) tokens for EWS, cached and refreshed before expiry.
//!
//! One [`TokenSource`] per application; concurrent passes share its token and at most one
//! of them fetches a new one at a time. The client secret and the token never appear in an
//! error or a log line.

use super::transport::{Transport, TransportError};
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use url::Url;

/// Refresh a token when less than this much of its life is left.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// An application registration allowed to call EWS app-only.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// Token endpoint.
    pub token_url: Url,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretString,
    /// Requested scope, e.g. `https://outlook.office365.com/.default`.
    pub scope: String,
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint rejected the application's credentials (invalid_client, …).
    #[error("the token endpoint rejected the application ({code})")]
    Rejected {
        /// The OAuth error code (e.g. `invalid_client`), never the secret.
        code: String,
    },
    /// The token endpoint could not be reached or failed (retry later).
    #[error("the token endpoint failed: {0}")]
    Unavailable(String),
    /// The token endpoint answered something that is not a token.
    #[error("the token endpoint answered an unreadable response: {0}")]
    Malformed(String),
}

impl From<TransportError> for TokenError {
    fn from(error: TransportError) -> Self {
        TokenError::Unavailable(error.to_string())
    }
}

struct CachedToken {
    value: SecretString,
    refresh_after: Instant,
}

/// Hands out a valid bearer token for one application.
pub struct TokenSource {
    app: OAuthApp,
    cached: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSource({})", self.app.client_id)
    }
}

impl TokenSource {
    /// A source for `app` with nothing cached yet.
    pub fn new(app: OAuthApp) -> Self {
        Self {
            app,
            cached: Mutex::new(None),
        }
    }

    /// A token valid for at least a few more minutes (fetched if needed).
    pub async fn token(&self, transport: &Transport) -> Result<SecretString, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.refresh_after {
                return Ok(token.value.clone());
            }
        }
        let fresh = self.fetch(transport).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Forget the cached token (Exchange rejected it): the next call fetches a new one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self, transport: &Transport) -> Result<CachedToken, TokenError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.expose_secret()),
            ("scope", self.app.scope.as_str()),
        ];
        let response = transport.post_form(&self.app.token_url, &form).await?;
        let json: serde_json::Value = serde_json::from_slice(&response.body).map_err(|_| {
            TokenError::Malformed(format!("HTTP {} without a JSON body", response.status))
        })?;
        if !response.status.is_success() {
            let code = json
                .get("error")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown_error")
                .chars()
                .take(64)
                .collect::<String>();
            return if response.status.is_server_error() {
                Err(TokenError::Unavailable(format!(
                    "HTTP {} ({code})",
                    response.status
                )))
            } else {
                Err(TokenError::Rejected { code })
            };
        }
        let value = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| TokenError::Malformed("no access_token".to_owned()))?;
        let lifetime = json
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(3600);
        let lifetime = Duration::from_secs(lifetime);
        // Refresh with a margin, but never sooner than half the lifetime of a short token.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(CachedToken {
            value: SecretString::from(value.to_owned()),
            refresh_after: Instant::now() + lifetime - margin,
        })
    }
}

//! Bearer tokens for Microsoft Graph from the daemon's OAuth client-credentials code (the same
//! secret or certificate assertion as EWS app-only, issue 8), behind exsync-graph's
//! [`TokenSource`] trait.

use exsync_ews::oauth::{self, TokenError as OAuthError};
use exsync_ews::transport::Transport;
use exsync_graph::{TokenError, TokenSource};
use futures::future::BoxFuture;
use secrecy::SecretString;
use std::sync::{Arc, Mutex};

/// One application's tokens for Graph, fetched over the daemon's HTTP transport (its trust
/// store, proxies, timeouts) from the profile's token endpoint.
pub struct AppTokens {
    source: Arc<oauth::TokenSource>,
    transport: Transport,
    client_id: String,
    /// The token endpoint refused the request for a setting (tenant, scope, URL), not the
    /// credential: told apart when the failure is classified.
    refused_setting: Mutex<Option<String>>,
}

impl std::fmt::Debug for AppTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppTokens({})", self.client_id)
    }
}

impl AppTokens {
    /// Tokens of `source` (application `client_id`) fetched over `transport`.
    pub fn new(source: Arc<oauth::TokenSource>, transport: Transport, client_id: &str) -> Self {
        Self {
            source,
            transport,
            client_id: client_id.to_owned(),
            refused_setting: Mutex::new(None),
        }
    }

    /// The token endpoint refused the request as configured (e.g. `invalid_scope`, an
    /// unknown tenant): its code. A setting to fix, not a refused credential.
    pub fn refused_setting(&self) -> Option<String> {
        self.refused_setting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last failed token request (its correlation ids), for the stored last error.
    pub async fn last_failure(&self) -> Option<exsync_ews::transport::RequestTrace> {
        self.source.last_failure().await
    }
}

/// The daemon's token failure in exsync-graph's terms. A refused credential or an unusable
/// certificate is `Rejected` (the client sends nothing more with it); a request the endpoint
/// refuses for a setting is `Rejected` too (retrying changes nothing), remembered apart.
fn graph_token_error(error: OAuthError) -> (TokenError, Option<String>) {
    match error {
        OAuthError::Rejected { code } => (TokenError::Rejected { code }, None),
        OAuthError::Credential(e) => (
            TokenError::Rejected {
                code: format!("unusable certificate: {e}"),
            },
            None,
        ),
        OAuthError::Refused { status, code } => (
            TokenError::Rejected {
                code: format!("{code} (HTTP {status})"),
            },
            Some(code),
        ),
        OAuthError::Unavailable {
            reason,
            retry_after,
        } => (
            TokenError::Unavailable {
                reason,
                retry_after,
            },
            None,
        ),
        OAuthError::Malformed(text) => (TokenError::Malformed(text), None),
    }
}

impl TokenSource for AppTokens {
    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenError>> {
        Box::pin(async move {
            match self.source.token(&self.transport).await {
                Ok(token) => Ok(token),
                Err(error) => {
                    let (error, refused) = graph_token_error(error);
                    if refused.is_some() {
                        *self
                            .refused_setting
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = refused;
                    }
                    Err(error)
                }
            }
        })
    }

    fn invalidate<'a>(&'a self, _rejected: &'a SecretString) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.source.invalidate().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_failures_keep_their_meaning_for_graph() {
        let (rejected, setting) = graph_token_error(OAuthError::Rejected {
            code: "invalid_client".into(),
        });
        assert!(matches!(rejected, TokenError::Rejected { .. }));
        assert_eq!(setting, None);
        let (refused, setting) = graph_token_error(OAuthError::Refused {
            status: 400,
            code: "invalid_scope".into(),
        });
        assert!(matches!(refused, TokenError::Rejected { .. }));
        assert_eq!(setting.as_deref(), Some("invalid_scope"));
        let (busy, _) = graph_token_error(OAuthError::Unavailable {
            reason: "429".into(),
            retry_after: Some(Duration::from_secs(7)),
        });
        assert!(matches!(
            busy,
            TokenError::Unavailable {
                retry_after: Some(d),
                ..
            } if d == Duration::from_secs(7)
        ));
    }
}

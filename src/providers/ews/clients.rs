//! One EWS client per credential, shared by every mailbox those credentials reach, so that an
//! account's throttling back-off and a refused password hold for all of them at once.
//!
//! Clients are keyed by a salted fingerprint of the credential (never the secret itself): a
//! changed password gives a new key, hence a fresh client that is allowed to try again.

use crate::domain::{
    AssertionSigning, Mailbox, OAuthCredential, OutgoingSettings, PasswordScheme, Profile,
};
use crate::providers::ews::adapter::MailboxConnection;
use crate::sync::plan::{ConnectionPlan, CredentialSource};
use crate::sync::port::{Connector, MailServer, OpenError, SessionSettings};
use exsync_ews::client::{ClientOptions, EwsAuth, EwsClient};
use exsync_ews::ntlm::NtlmCredentials;
use exsync_ews::ntlm_http::NtlmSessionPool;
use exsync_ews::oauth::{self, ClientCertificate, ClientCredential, OAuthApp, TokenSource};
use exsync_ews::transport::Transport;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Cached {
    client: Arc<EwsClient>,
}

/// The process's EWS clients.
pub struct ClientCache {
    transport: Transport,
    options: ClientOptions,
    salt: [u8; 16],
    retry_rejected_after: Duration,
    clients: Mutex<HashMap<[u8; 32], Cached>>,
    tokens: Mutex<HashMap<[u8; 32], Arc<TokenSource>>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCache")
    }
}

impl ClientCache {
    /// An empty cache; a client whose credentials were refused is replaced (one new try)
    /// after `retry_rejected_after`.
    pub fn new(
        transport: Transport,
        options: ClientOptions,
        retry_rejected_after: Duration,
    ) -> Self {
        Self {
            transport,
            options,
            salt: rand::random(),
            retry_rejected_after,
            clients: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// An empty cache with the same transport and options: a Test & Enable run signs in
    /// afresh instead of reusing a client whose credentials were refused earlier.
    pub fn empty_like(&self) -> ClientCache {
        ClientCache::new(
            self.transport.clone(),
            self.options.clone(),
            self.retry_rejected_after,
        )
    }

    /// The client for `plan` (created on first use).
    pub fn client_for(
        &self,
        profile: &Profile,
        mailbox: &Mailbox,
        plan: &ConnectionPlan,
    ) -> Result<Arc<EwsClient>, OpenError> {
        let (username, password) = match plan.credentials {
            CredentialSource::Profile => (profile.username.as_deref(), profile.password.as_ref()),
            CredentialSource::ProfileOutgoing => match &profile.outgoing {
                OutgoingSettings::Separate {
                    username, password, ..
                } => (
                    username.as_deref().or(profile.username.as_deref()),
                    password.as_ref().or(profile.password.as_ref()),
                ),
                OutgoingSettings::SameAsIncoming => {
                    (profile.username.as_deref(), profile.password.as_ref())
                }
            },
            CredentialSource::Mailbox => (mailbox.username.as_deref(), mailbox.password.as_ref()),
            CredentialSource::OAuthApp => (None, None),
        };
        let key = match plan.credentials {
            CredentialSource::OAuthApp => {
                let oauth = profile.oauth.as_ref().ok_or(OpenError::MissingOAuth)?;
                let (kind, secret, public) = match &oauth.credential {
                    OAuthCredential::Secret(secret) => ("secret", secret.expose_secret(), ""),
                    OAuthCredential::Certificate {
                        certificate_pem,
                        private_key_pem,
                        signing,
                    } => (
                        signing.as_str(),
                        private_key_pem.expose_secret(),
                        certificate_pem.as_str(),
                    ),
                };
                self.fingerprint(&[
                    "oauth",
                    plan.endpoint.as_str(),
                    oauth.token_url.as_str(),
                    &oauth.client_id,
                    &oauth.scope,
                    kind,
                    secret,
                    public,
                ])
            }
            _ => {
                let who = match plan.credentials {
                    CredentialSource::Mailbox => "the mailbox",
                    _ => "the profile",
                };
                let (Some(user), Some(pass)) = (username, password) else {
                    return Err(OpenError::MissingCredentials(who));
                };
                self.fingerprint(&[
                    profile.password_scheme.as_str(),
                    plan.endpoint.as_str(),
                    user,
                    pass.expose_secret(),
                ])
            }
        };
        // Payload logging is the mailbox's, per request (`MailboxConnection::with_payload_logging`):
        // this client may serve every mailbox of the credential.
        let options = self.options.clone();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = clients.get(&key) {
            // Refused: keep answering "refused" without a request, until the slow retry
            // (counted from the refusal); then a fresh client, whose first request goes alone.
            match cached.client.rejected_since() {
                None => return Ok(cached.client.clone()),
                Some(since) if since.elapsed() < self.retry_rejected_after => {
                    return Ok(cached.client.clone())
                }
                Some(_) => {}
            }
        }
        let auth = match plan.credentials {
            CredentialSource::OAuthApp => {
                let oauth = profile.oauth.as_ref().ok_or(OpenError::MissingOAuth)?;
                let source = {
                    let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
                    match tokens.get(&key) {
                        Some(source) => source.clone(),
                        None => {
                            let source = Arc::new(TokenSource::new(OAuthApp {
                                token_url: oauth.token_url.clone(),
                                client_id: oauth.client_id.clone(),
                                credential: client_credential(&oauth.credential)?,
                                scope: oauth.scope.clone(),
                            }));
                            tokens.insert(key, source.clone());
                            source
                        }
                    }
                };
                EwsAuth::OAuth(source)
            }
            _ => {
                let (Some(user), Some(pass)) = (username, password) else {
                    return Err(OpenError::MissingCredentials("the profile"));
                };
                match profile.password_scheme {
                    PasswordScheme::Basic => EwsAuth::Basic {
                        username: user.to_owned(),
                        password: SecretString::from(pass.expose_secret().to_owned()),
                    },
                    PasswordScheme::Ntlm => EwsAuth::Ntlm(Arc::new(NtlmSessionPool::new(
                        NtlmCredentials::from_account(
                            user,
                            SecretString::from(pass.expose_secret().to_owned()),
                        ),
                        &self.transport,
                    ))),
                }
            }
        };
        let client = Arc::new(EwsClient::new(
            plan.endpoint.clone(),
            auth,
            self.transport.clone(),
            options,
        ));
        clients.insert(
            key,
            Cached {
                client: client.clone(),
            },
        );
        Ok(client)
    }

    fn fingerprint(&self, parts: &[&str]) -> [u8; 32] {
        fingerprint(&self.salt, parts)
    }
}

impl Connector for ClientCache {
    fn open(
        &self,
        profile: &Profile,
        mailbox: &Mailbox,
        plan: &ConnectionPlan,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn MailServer>, OpenError> {
        let client = self.client_for(profile, mailbox, plan)?;
        let mut connection = MailboxConnection::new(
            client,
            &mailbox.address,
            plan.access,
            settings.max_changes,
            settings.batch,
        )
        .with_payload_logging(settings.log_payloads);
        if let Some(category) = &settings.tracking_category {
            connection = connection.with_tracking_category(category);
        }
        Ok(Arc::new(connection))
    }

    fn fresh(&self) -> Arc<dyn Connector> {
        Arc::new(self.empty_like())
    }
}

/// The token endpoint credential for a profile's OAuth settings (a certificate is checked
/// against its key here, once per credential).
pub fn client_credential(credential: &OAuthCredential) -> Result<ClientCredential, OpenError> {
    Ok(match credential {
        OAuthCredential::Secret(secret) => ClientCredential::Secret(secret.clone()),
        OAuthCredential::Certificate {
            certificate_pem,
            private_key_pem,
            signing,
        } => ClientCredential::Certificate(
            ClientCertificate::from_pem(
                certificate_pem,
                private_key_pem.clone(),
                match signing {
                    AssertionSigning::Ps256 => oauth::AssertionSigning::Ps256,
                    AssertionSigning::Rs256 => oauth::AssertionSigning::Rs256,
                },
            )
            .map_err(|e| OpenError::Certificate(e.to_string()))?,
        ),
    })
}

fn fingerprint(salt: &[u8; 16], parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(salt);
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

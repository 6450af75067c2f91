//! One Graph client per application credential (and profile limit), shared by every mailbox
//! that credential reaches: the per-mailbox gates of exsync-graph (at most 4 requests in
//! flight per application + mailbox, `Retry-After` honoured by every client of the
//! application) are process-wide through one [`ThrottleRegistry`]; the profile's
//! MaximumConcurrentConnections caps each client.
//!
//! Clients are keyed by a salted fingerprint of the credential (never the secret itself): a
//! changed secret or certificate gives a new key, hence a fresh client that may try again. A
//! client whose credential the token endpoint refused keeps answering "refused" without a
//! request until the slow retry comes round.

use super::mailbox::{CalendarSpan, GraphMailbox};
use super::tokens::AppTokens;
use crate::domain::{Mailbox, OAuthCredential, Profile};
use crate::providers::ews::clients::client_credential;
use crate::sync::plan::ConnectionPlan;
use crate::sync::port::{Connector, MailServer, OpenError, SessionSettings};
use exsync_ews::oauth::{OAuthApp, TokenSource as OAuthTokenSource};
use exsync_ews::transport::Transport as EwsTransport;
use exsync_graph::{
    ClientOptions, GraphClient, ThrottleRegistry, Transport, TransportError, TransportSettings,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the Graph provider is tuned with (from `[sync]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphOptions {
    /// `Prefer: odata.maxpagesize` on delta calls.
    pub page_size: u32,
    /// The calendar window of a delta round.
    pub calendar: CalendarSpan,
    /// Most messages a filtered message delta round returns (Graph: 5,000); a first round
    /// that returns this many is completed by a listing (`super::backfill`).
    pub filtered_delta_limit: u32,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            page_size: 100,
            calendar: CalendarSpan::default(),
            filtered_delta_limit: super::backfill::GRAPH_FILTERED_ROUND_LIMIT,
        }
    }
}

/// A client, its tokens, and when its credential was first seen refused.
struct Cached {
    client: Arc<GraphClient>,
    tokens: Arc<AppTokens>,
    refused_since: Mutex<Option<Instant>>,
}

/// The process's Graph clients.
pub struct GraphConnector {
    /// The token endpoint is reached with the daemon's own transport (trust, timeouts).
    token_transport: EwsTransport,
    transport: Transport,
    throttle: Arc<ThrottleRegistry>,
    options: GraphOptions,
    salt: [u8; 16],
    retry_rejected_after: Duration,
    clients: Mutex<HashMap<[u8; 32], Arc<Cached>>>,
}

impl std::fmt::Debug for GraphConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GraphConnector")
    }
}

impl GraphConnector {
    /// Clients over a Graph transport trusting what `transport` trusts (the operator's CAs,
    /// the system store, `http.accept_invalid_certs`), with its timeouts and size cap.
    pub fn new(
        transport: &EwsTransport,
        options: GraphOptions,
        retry_rejected_after: Duration,
    ) -> Result<Self, TransportError> {
        let tls = transport
            .trust()
            .client_config(&[b"h2", b"http/1.1"])
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        let settings = transport.settings();
        let graph = Transport::from_builder(
            reqwest::Client::builder().use_preconfigured_tls(tls),
            TransportSettings {
                connect_timeout: settings.connect_timeout,
                request_timeout: settings.request_timeout,
                max_response_bytes: settings.max_response_bytes,
            },
        )?;
        Ok(Self {
            token_transport: transport.clone(),
            transport: graph,
            throttle: Arc::new(ThrottleRegistry::new()),
            options,
            salt: rand::random(),
            retry_rejected_after,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// An empty connector with the same transport, gates and options: a Test & Enable run
    /// signs in afresh, while the per-mailbox gates (and any `Retry-After`) still hold.
    pub fn empty_like(&self) -> GraphConnector {
        GraphConnector {
            token_transport: self.token_transport.clone(),
            transport: self.transport.clone(),
            throttle: self.throttle.clone(),
            options: self.options,
            salt: rand::random(),
            retry_rejected_after: self.retry_rejected_after,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client (and its tokens) for `profile`, created on first use.
    pub fn client_for(
        &self,
        profile: &Profile,
    ) -> Result<(Arc<GraphClient>, Arc<AppTokens>), OpenError> {
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
        let limit = profile.max_concurrent_connections.to_string();
        let key = fingerprint(
            &self.salt,
            &[
                "graph",
                profile.graph_url.as_str(),
                oauth.token_url.as_str(),
                &oauth.client_id,
                &oauth.scope,
                kind,
                secret,
                public,
                &limit,
            ],
        );
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = clients.get(&key) {
            if !cached.client.credentials_rejected() {
                return Ok((cached.client.clone(), cached.tokens.clone()));
            }
            // Refused: keep answering "refused" without a request until the slow retry
            // (counted from when the refusal was first seen); then a fresh client.
            let mut since = cached
                .refused_since
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let first_seen = *since.get_or_insert_with(Instant::now);
            if first_seen.elapsed() < self.retry_rejected_after {
                return Ok((cached.client.clone(), cached.tokens.clone()));
            }
        }
        let source = Arc::new(OAuthTokenSource::new(OAuthApp {
            token_url: oauth.token_url.clone(),
            client_id: oauth.client_id.clone(),
            credential: client_credential(&oauth.credential)?,
            scope: oauth.scope.clone(),
        }));
        let tokens = Arc::new(AppTokens::new(
            source,
            self.token_transport.clone(),
            &oauth.client_id,
        ));
        let options = ClientOptions {
            max_in_flight: profile.max_concurrent_connections.max(1) as usize,
            page_size: self.options.page_size,
            ..ClientOptions::default()
        };
        let client = GraphClient::new(
            profile.graph_url.as_str(),
            tokens.clone(),
            self.transport.clone(),
            self.throttle.clone(),
            options,
        )
        .map_err(|e| OpenError::Setting(e.to_string()))?;
        let client = Arc::new(client);
        clients.insert(
            key,
            Arc::new(Cached {
                client: client.clone(),
                tokens: tokens.clone(),
                refused_since: Mutex::new(None),
            }),
        );
        Ok((client, tokens))
    }
}

impl Connector for GraphConnector {
    fn open(
        &self,
        profile: &Profile,
        mailbox: &Mailbox,
        _plan: &ConnectionPlan,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn MailServer>, OpenError> {
        let (client, tokens) = self.client_for(profile)?;
        Ok(Arc::new(
            GraphMailbox::new(
                client,
                tokens,
                &mailbox.address,
                settings,
                self.options.calendar,
            )
            .with_mail_listing(super::backfill::MailListing {
                filtered_delta_limit: self.options.filtered_delta_limit,
                page_size: self.options.page_size,
            }),
        ))
    }

    fn fresh(&self) -> Arc<dyn Connector> {
        Arc::new(self.empty_like())
    }
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

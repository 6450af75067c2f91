//! The fake Exchange: an EWS server built on exsync's own codec (`exsync_ews`), for tests,
//! `exsync demo`, `exsync bench` and `exsync fake-exchange`.
//!
//! Owns accounts, mailboxes, items, rights, sync states, throttling and fault injection, and the
//! `/_fake/` JSON control API (see `docs/fake-exchange.md`). Every EWS request is read with
//! `parse_request` and every answer is written by the codec: no hand-written SOAP here.
//! It depends on `exsync-ews` only (Cargo refuses it `store`, `sync` or `config`).

mod assertion;
mod auth;
mod ews_ops;
pub mod graph;
mod properties;
mod routes;
pub mod seed;
mod server;
pub mod state;
pub mod streaming;
pub mod tls;
mod traffic;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use exsync_ews::xml::XmlLimits;

pub use seed::Seed;
pub use state::FakeState;
pub use tls::{CertificateSignature, ExtendedProtection, FakeTls};
pub use traffic::TRAFFIC_DIR_ENV;

/// Why the fake Exchange could not start or be configured.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The self-signed certificate or the TLS configuration could not be made.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The seed file could not be read or is invalid.
    #[error("seed file {path}: {reason}")]
    Seed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A control request was refused (bad value, unknown account, duplicate, …).
    #[error("{0}")]
    Invalid(String),
    /// The named account, mailbox or item does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The account or mailbox already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// The server stopped with an I/O error.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// How an ErrorServerBusy answer is sent (Exchange uses all three, clients must handle each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusyShape {
    /// A SOAP fault with HTTP 500 (Exchange's usual throttling answer).
    #[default]
    Fault500,
    /// An Error-class response message with HTTP 200.
    Message200,
    /// HTTP 503 with the SOAP fault as body.
    Http503,
}

/// A one-shot fault for the next EWS request (after sign-in), queued with `fail_next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OneShotFault {
    /// `{"batch_stopped_after": N}`: the next request with more than N items (GetItem,
    /// CreateItem, UpdateItem, DeleteItem) processes only the first N; the others are answered
    /// `ResponseClass="Warning"` with ErrorBatchProcessingStopped and left untouched. Requests
    /// with fewer items pass it by (it waits at the head of the queue).
    BatchStoppedAfter(u32),
    /// ErrorServerBusy with `back_off_ms`, in the current `busy_shape`.
    ServerBusy,
    /// A plain HTTP 500 HTML page.
    Http500,
    /// A plain HTTP 503.
    Http503,
    /// A truncated answer with HTTP 200.
    Malformed,
    /// HTTP 401, as if the credentials had just been revoked.
    Unauthorized,
    /// The request is processed in full (a send is sent and its Sent Items copy filed, on
    /// time or after `sent_items_delay_ms`), but the answer is lost: the response starts
    /// and the connection drops before its body, as when a proxy or the network fails after
    /// Exchange did the work. The client cannot tell whether anything happened.
    LoseReply,
    /// `lose_reply` for the next CreateItem: it waits at the head of the queue (other
    /// requests pass it by), so a test can lose the answer of one create in a whole pass.
    LoseCreateReply,
}

/// A one-shot answer of the OAuth token endpoint, queued with `token_fail_next` (the
/// answers the Microsoft identity platform gives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFault {
    /// HTTP 429 with `Retry-After: token_retry_after_secs` (throttled).
    Http429,
    /// HTTP 500 (`server_error`).
    Http500,
    /// HTTP 503 with `Retry-After: token_retry_after_secs` (`temporarily_unavailable`).
    Http503,
    /// HTTP 401 `invalid_client` (a wrong or expired secret or certificate).
    InvalidClient,
    /// HTTP 400 `unauthorized_client` (the application is disabled or not in the tenant).
    UnauthorizedClient,
    /// HTTP 400 `invalid_request` (a malformed request, an unknown tenant).
    InvalidRequest,
}

/// Fault and load injection knobs (`PUT /_fake/faults` updates them partially).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Sleep this long before answering each EWS request.
    pub latency_ms: u64,
    /// Fraction (0..=1) of EWS requests answered ErrorServerBusy.
    pub throttle_rate: f64,
    /// BackOffMilliseconds sent with ErrorServerBusy.
    pub back_off_ms: u64,
    /// Fraction (0..=1) of EWS requests answered with a plain HTTP 500 HTML page.
    pub http_500_rate: f64,
    /// Fraction (0..=1) of EWS requests answered with HTTP 503.
    pub http_503_rate: f64,
    /// Fraction (0..=1) of EWS answers truncated into malformed XML (HTTP 200).
    pub malformed_rate: f64,
    /// Concurrent EWS requests one account may have in flight (EWSMaxConcurrency).
    pub max_concurrency_per_account: u32,
    /// How ErrorServerBusy is sent.
    pub busy_shape: BusyShape,
    /// One-shot faults for the next EWS requests, in order (deterministic tests).
    pub fail_next: Vec<OneShotFault>,
    /// One-shot answers for the next token requests, in order.
    pub token_fail_next: Vec<TokenFault>,
    /// `Retry-After` (seconds) sent with the token endpoint's 429 and 503; 0 sends none.
    pub token_retry_after_secs: u64,
    /// Sleep this long before answering each token request (a slow or hanging endpoint).
    pub token_latency_ms: u64,
    /// A message sent with CreateItem `SendAndSaveCopy` gets its Sent Items copy this long
    /// after the answer (Exchange's transport files it asynchronously); 0 files it at once.
    pub sent_items_delay_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            throttle_rate: 0.0,
            back_off_ms: 2000,
            http_500_rate: 0.0,
            http_503_rate: 0.0,
            malformed_rate: 0.0,
            max_concurrency_per_account: 27,
            busy_shape: BusyShape::Fault500,
            fail_next: Vec::new(),
            token_fail_next: Vec::new(),
            token_retry_after_secs: 1,
            token_latency_ms: 0,
            sent_items_delay_ms: 0,
        }
    }
}

/// A partial update of [`Faults`]: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    /// See [`Faults::latency_ms`].
    pub latency_ms: Option<u64>,
    /// See [`Faults::throttle_rate`].
    pub throttle_rate: Option<f64>,
    /// See [`Faults::back_off_ms`].
    pub back_off_ms: Option<u64>,
    /// See [`Faults::http_500_rate`].
    pub http_500_rate: Option<f64>,
    /// See [`Faults::http_503_rate`].
    pub http_503_rate: Option<f64>,
    /// See [`Faults::malformed_rate`].
    pub malformed_rate: Option<f64>,
    /// See [`Faults::max_concurrency_per_account`].
    pub max_concurrency_per_account: Option<u32>,
    /// See [`Faults::busy_shape`].
    pub busy_shape: Option<BusyShape>,
    /// Replaces [`Faults::fail_next`].
    pub fail_next: Option<Vec<OneShotFault>>,
    /// Replaces [`Faults::token_fail_next`].
    pub token_fail_next: Option<Vec<TokenFault>>,
    /// See [`Faults::token_retry_after_secs`].
    pub token_retry_after_secs: Option<u64>,
    /// See [`Faults::token_latency_ms`].
    pub token_latency_ms: Option<u64>,
    /// See [`Faults::sent_items_delay_ms`].
    pub sent_items_delay_ms: Option<u64>,
}

impl Faults {
    /// Refuse rates outside 0..=1 (and NaN), so a typo cannot silently disable a test.
    pub fn validate(&self) -> Result<(), FakeError> {
        for (name, rate) in [
            ("throttle_rate", self.throttle_rate),
            ("http_500_rate", self.http_500_rate),
            ("http_503_rate", self.http_503_rate),
            ("malformed_rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FakeError::Invalid(format!(
                    "{name} must be between 0 and 1, got {rate}"
                )));
            }
        }
        if self.max_concurrency_per_account == 0 {
            return Err(FakeError::Invalid(
                "max_concurrency_per_account must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// These faults with `patch` applied, validated.
    pub fn patched(&self, patch: &FaultsPatch) -> Result<Faults, FakeError> {
        let mut f = self.clone();
        if let Some(v) = patch.latency_ms {
            f.latency_ms = v;
        }
        if let Some(v) = patch.throttle_rate {
            f.throttle_rate = v;
        }
        if let Some(v) = patch.back_off_ms {
            f.back_off_ms = v;
        }
        if let Some(v) = patch.http_500_rate {
            f.http_500_rate = v;
        }
        if let Some(v) = patch.http_503_rate {
            f.http_503_rate = v;
        }
        if let Some(v) = patch.malformed_rate {
            f.malformed_rate = v;
        }
        if let Some(v) = patch.max_concurrency_per_account {
            f.max_concurrency_per_account = v;
        }
        if let Some(v) = patch.busy_shape {
            f.busy_shape = v;
        }
        if let Some(v) = &patch.fail_next {
            f.fail_next = v.clone();
        }
        if let Some(v) = &patch.token_fail_next {
            f.token_fail_next = v.clone();
        }
        if let Some(v) = patch.token_retry_after_secs {
            f.token_retry_after_secs = v;
        }
        if let Some(v) = patch.token_latency_ms {
            f.token_latency_ms = v;
        }
        if let Some(v) = patch.sent_items_delay_ms {
            f.sent_items_delay_ms = v;
        }
        f.validate()?;
        Ok(f)
    }
}

/// How to start a fake Exchange.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Serve HTTPS with a certificate generated at start.
    pub tls: bool,
    /// How that certificate is made (self-signed or from a private CA, which signature).
    pub tls_certificate: FakeTls,
    /// Whether NTLM over TLS must carry the certificate's channel binding.
    pub extended_protection: ExtendedProtection,
    /// Accounts, mailboxes, rights, items and faults to start with.
    pub seed: Option<Seed>,
    /// Initial fault knobs (a seed's faults are applied on top).
    pub faults: Faults,
    /// Larger EWS request bodies are refused with HTTP 413.
    pub max_request_bytes: usize,
    /// Limits applied while parsing request XML.
    pub xml_limits: XmlLimits,
    /// Record the requests exsync sends and every SOAP answer here, one file per distinct
    /// document shape, for `scripts/check-traffic.sh` (default: `$EXSYNC_FAKE_TRAFFIC_DIR`).
    pub traffic_dir: Option<PathBuf>,
    /// Also serve Microsoft Graph at `/v1.0` over the same mailboxes (`graph::GraphState`).
    pub graph: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            tls_certificate: FakeTls::default(),
            extended_protection: ExtendedProtection::default(),
            seed: None,
            faults: Faults::default(),
            max_request_bytes: 4 * 1024 * 1024,
            xml_limits: XmlLimits::default(),
            traffic_dir: std::env::var_os(TRAFFIC_DIR_ENV)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            graph: false,
        }
    }
}

/// A running fake Exchange (in-process); dropping it without `shutdown` leaves it running
/// until the runtime ends.
pub struct FakeExchange {
    addr: SocketAddr,
    tls: bool,
    certificate_pem: Option<String>,
    ca_certificate_pem: Option<String>,
    state: Arc<FakeState>,
    graph: Option<Arc<graph::GraphState>>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl FakeExchange {
    /// Bind, seed and start serving EWS and `/_fake/` in the background.
    pub async fn start(config: FakeConfig) -> Result<FakeExchange, FakeError> {
        config.faults.validate()?;
        let state = Arc::new(
            FakeState::new(
                config.faults.clone(),
                config.max_request_bytes,
                config.xml_limits.clone(),
            )
            .recording_traffic(config.traffic_dir.clone()),
        );
        if let Some(seed) = &config.seed {
            seed.apply(&state)?;
        }
        let shutdown = CancellationToken::new();
        let made = if config.tls {
            Some(tls::make(&config.tls_certificate)?)
        } else {
            None
        };
        {
            let mut inner = state.lock();
            inner.channel_binding = made.as_ref().map(|m| m.channel_binding);
            inner.extended_protection = config.extended_protection;
        }
        let certificate_pem = made.as_ref().map(|m| m.certificate_pem.clone());
        let ca_certificate_pem = made.as_ref().and_then(|m| m.ca_certificate_pem.clone());
        let graph = config.graph.then(|| {
            Arc::new(graph::GraphState::new(
                state.clone(),
                config.traffic_dir.clone(),
            ))
        });
        let running = server::serve(
            config.listen,
            made.map(|m| m.config),
            state.clone(),
            graph.clone().map(graph::router),
            shutdown.clone(),
        )
        .await?;
        let scheme = if config.tls { "https" } else { "http" };
        if let Some(g) = &graph {
            g.set_base_url(format!("{scheme}://{}/v1.0", running.addr));
            graph::start_delivery(g, shutdown.clone());
        }
        state.lock().token_url = Some(format!("{scheme}://{}/_fake/oauth2/token", running.addr));
        Ok(FakeExchange {
            addr: running.addr,
            tls: config.tls,
            certificate_pem,
            ca_certificate_pem,
            state,
            graph,
            shutdown,
            task: running.task,
        })
    }

    /// Start on a free loopback port with the given seed and default faults.
    pub async fn start_seeded(seed: Seed) -> Result<FakeExchange, FakeError> {
        FakeExchange::start(FakeConfig {
            seed: Some(seed),
            ..FakeConfig::default()
        })
        .await
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS): where `/_fake/` lives.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The EWS endpoint, `base_url() + /EWS/Exchange.asmx`.
    pub fn ews_url(&self) -> String {
        format!("{}/EWS/Exchange.asmx", self.base_url())
    }

    /// The OAuth2 client-credentials token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/_fake/oauth2/token", self.base_url())
    }

    /// The fake Graph's state, when started with `graph: true`.
    pub fn graph(&self) -> Option<&graph::GraphState> {
        self.graph.as_deref()
    }

    /// The fake Graph's state, shareable with another thread (when started with `graph: true`).
    pub fn shared_graph(&self) -> Option<Arc<graph::GraphState>> {
        self.graph.clone()
    }

    /// `base_url() + /v1.0`: what a Graph client takes as `graph_url` (when Graph is served).
    pub fn graph_url(&self) -> Option<String> {
        self.graph.as_ref().map(|g| g.base_url())
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server certificate (PEM) when serving TLS; a client trusts it directly when it
    /// is self-signed.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }

    /// The private CA's certificate (PEM) when the server certificate was issued by one: what
    /// a client must trust (`http.ca_file`, or a bundle `SSL_CERT_FILE` points at).
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca_certificate_pem.as_deref()
    }

    /// Accounts, mailboxes, rights, faults and stats: the same operations as the HTTP API.
    pub fn state(&self) -> &FakeState {
        &self.state
    }

    /// The same state, shared: for a caller that runs the fake on another runtime or thread
    /// (`exsync bench` keeps the fake on its own thread to measure its CPU apart).
    pub fn shared_state(&self) -> Arc<FakeState> {
        self.state.clone()
    }

    /// Stop accepting, finish in-flight requests, and wait for the server task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Read a seed file: JSON when it ends in `.json`, TOML otherwise.
pub fn load_seed(path: &Path) -> Result<Seed, FakeError> {
    Seed::load(path)
}

/// How `exsync fake-exchange` serves: the command line's choices, in one place.
#[derive(Debug, Clone, Default)]
pub struct StandaloneOptions {
    /// Where to listen.
    pub listen: Option<SocketAddr>,
    /// Seed file (TOML, or JSON by extension).
    pub seed: Option<PathBuf>,
    /// Serve HTTPS (implied by a private CA).
    pub tls: bool,
    /// How the certificate is made (self-signed or from a private CA, which signature).
    pub tls_certificate: FakeTls,
    /// Whether NTLM over TLS must carry the certificate's channel binding.
    pub extended_protection: ExtendedProtection,
    /// Write what a client must trust (the private CA's certificate, or the self-signed
    /// certificate) here, for exsync's `http.ca_file`.
    pub trust_out: Option<PathBuf>,
    /// Also serve Microsoft Graph at `/v1.0`.
    pub graph: bool,
}

/// `exsync fake-exchange`: serve until ctrl-c, printing the EWS URL (and with `graph` the
/// Graph URL) on start, and with TLS the certificate a client must trust.
pub async fn run_standalone(options: StandaloneOptions) -> Result<(), FakeError> {
    let seed = options.seed.as_deref().map(load_seed).transpose()?;
    let defaults = FakeConfig::default();
    let fake = FakeExchange::start(FakeConfig {
        listen: options.listen.unwrap_or(defaults.listen),
        tls: options.tls || options.tls_certificate.private_ca,
        tls_certificate: options.tls_certificate,
        extended_protection: options.extended_protection,
        seed,
        graph: options.graph,
        ..defaults
    })
    .await?;
    let trusted = fake.ca_certificate_pem().or(fake.certificate_pem());
    if let (Some(path), Some(pem)) = (&options.trust_out, trusted) {
        if let Err(e) = std::fs::write(path, pem) {
            fake.shutdown().await;
            return Err(FakeError::Tls(format!(
                "cannot write the certificate to trust to {}: {e}",
                path.display()
            )));
        }
    }
    // A closed stdout (the reader went away) must not stop the server: ignore write errors.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "fake Exchange serving EWS at {}", fake.ews_url());
    if let Some(url) = fake.graph_url() {
        let _ = writeln!(out, "fake Graph serving Microsoft Graph at {url}");
    }
    let _ = writeln!(out, "control API at {}/_fake/", fake.base_url());
    if let Some(path) = &options.trust_out {
        let _ = writeln!(out, "certificate to trust written to {}", path.display());
    }
    if let Some(pem) = fake.ca_certificate_pem() {
        let _ = writeln!(out, "private CA certificate (trust this one):\n{pem}");
    } else if let Some(pem) = fake.certificate_pem() {
        let _ = writeln!(out, "self-signed certificate:\n{pem}");
    }
    let _ = out.flush();
    let _ = tokio::signal::ctrl_c().await;
    fake.shutdown().await;
    Ok(())
}

//! The running service: wires the database, the credential cipher, the EWS clients, the sync
//! engine, the scheduler and the health server, and runs them until shutdown.

use crate::config::{HttpSettings, Settings};
use crate::crypto::{CredentialCipher, CryptoError};
use crate::health::{self, HealthError, Readiness};
use crate::metrics::EwsRequestMetrics;
use crate::providers::ews::clients::ClientCache;
use crate::providers::graph::{CalendarSpan, GraphConnector, GraphOptions};
use crate::providers::Providers;
use crate::scheduler::{Scheduler, SchedulerError};
use crate::store::{Store, StoreError};
use crate::sync::{PassSummary, SyncEngine};
use exsync_ews::client::ClientOptions;
use exsync_ews::observe::SharedObserver;
use exsync_ews::tls::{SystemRoots, TrustSettings};
use exsync_ews::transport::{Transport, TransportError, TransportSettings};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credential key is missing or wrong.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The health server could not start.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// The scheduler failed.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// A built service, ready to run.
pub struct App {
    settings: Settings,
    store: Store,
    engine: Arc<SyncEngine>,
    /// The EWS clients the engine's connector uses; streaming subscribes through the same ones.
    clients: Arc<ClientCache>,
    readiness: Arc<Readiness>,
    events: Option<mpsc::UnboundedSender<PassSummary>>,
    /// The Graph clients (shared with the engine); Graph subscriptions are made through them.
    graph: Arc<GraphConnector>,
}

impl App {
    /// Connect to the database (migrating it), load the credential key, build the engine.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        let cipher = CredentialCipher::from_settings(&settings.security)?;
        let store = Store::connect(&settings.database).await?;
        store.migrate().await?;
        App::build_with(settings, store, cipher)
    }

    /// Build over an existing database pool and cipher (tests, demo, bench).
    pub fn build_with(
        settings: Settings,
        store: Store,
        cipher: CredentialCipher,
    ) -> Result<App, AppError> {
        let transport = Transport::new(transport_settings(&settings.http))?;
        announce_trust(&transport);
        // The mail-server providers, one per protocol, each with one client per credential.
        let graph = GraphConnector::new(
            &transport,
            graph_options(&settings.sync),
            settings.scheduler.outage_retry_interval,
        )
        .map_err(|e| TransportError::Setup(e.to_string()))?;
        // Every EWS client records its requests into the process's metrics.
        let options = ClientOptions {
            observer: SharedObserver::new(EwsRequestMetrics),
            ..ClientOptions::default()
        };
        let ews = Arc::new(ClientCache::new(
            transport,
            options,
            settings.scheduler.outage_retry_interval,
        ));
        let graph = Arc::new(graph);
        let providers = Arc::new(Providers::new(ews.clone(), graph.clone()));
        let engine = Arc::new(SyncEngine::new(
            store.clone(),
            Arc::new(cipher),
            settings.scheduler.clone(),
            settings.sync.clone(),
            providers,
        ));
        Ok(App {
            settings,
            store,
            engine,
            clients: ews,
            readiness: Arc::new(Readiness::default()),
            events: None,
            graph,
        })
    }

    /// Also report every finished pass here.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<PassSummary>) -> Self {
        self.events = Some(events);
        self
    }

    /// The sync engine (for one-off passes in tools and tests).
    pub fn engine(&self) -> Arc<SyncEngine> {
        self.engine.clone()
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The lease owner name of this process (configured, or host name + process id).
    pub fn instance_id(&self) -> String {
        self.settings.instance_id()
    }

    /// Run the scheduler (and the health server when `server.listen` is set) until
    /// `shutdown`; in-flight passes drain within `scheduler.shutdown_deadline`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let notify = &self.settings.graph_notifications;
        let queue = notify
            .enabled
            .then(crate::graph_notify::NotificationQueue::new);
        let extra = match &queue {
            Some(queue) => crate::graph_notify::endpoint::router(
                queue.sender.clone(),
                usize::try_from(notify.max_body_bytes).unwrap_or(usize::MAX),
            ),
            None => axum::Router::new(),
        };
        let health = match self.settings.server.listen {
            Some(addr) => {
                let (bound, handle) = health::serve_with(
                    addr,
                    self.store.clone(),
                    self.readiness.clone(),
                    extra,
                    shutdown.clone(),
                )
                .await?;
                tracing::info!(listen = %bound, "health and metrics endpoints up");
                Some(handle)
            }
            None => None,
        };
        let mut scheduler = Scheduler::new(self.engine.clone(), self.instance_id());
        if let Some(events) = self.events.clone() {
            scheduler = scheduler.with_events(events);
        }
        self.readiness.set_scheduler_running(true);
        let streaming = tokio::spawn(
            crate::streaming::StreamingService::new(
                self.engine.clone(),
                self.clients.clone(),
                self.settings.streaming.clone(),
                self.instance_id(),
            )
            .run(shutdown.clone()),
        );
        let graph_notify = match queue {
            Some(queue) if health.is_some() => Some(tokio::spawn(
                crate::graph_notify::GraphNotifyService::new(
                    self.engine.clone(),
                    self.graph.clone(),
                    self.settings.graph_notifications.clone(),
                    self.instance_id(),
                )
                .run(queue, shutdown.clone()),
            )),
            _ => None,
        };
        let result = scheduler.run(shutdown.clone()).await;
        shutdown.cancel();
        let _ = streaming.await;
        if let Some(task) = graph_notify {
            let _ = task.await;
        }
        self.readiness.set_scheduler_running(false);
        shutdown.cancel();
        if let Some(handle) = health {
            let _ = handle.await;
        }
        result.map_err(AppError::from)
    }
}

/// How the Graph provider is tuned by `[sync]` (page size, calendar window, the filtered
/// delta round's cap).
pub fn graph_options(sync: &crate::config::SyncSettings) -> GraphOptions {
    GraphOptions {
        page_size: sync.max_changes_per_request.clamp(1, 1000),
        calendar: CalendarSpan {
            past_days: sync.calendar_past_days,
            future_days: sync.calendar_future_days,
        },
        filtered_delta_limit: sync.graph_filtered_delta_limit.max(1),
    }
}

/// The transport limits and trust `[http]` asks for (the system store read as OpenSSL does,
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` included, plus `http.ca_file`).
pub fn transport_settings(http: &HttpSettings) -> TransportSettings {
    TransportSettings {
        connect_timeout: http.connect_timeout,
        request_timeout: http.request_timeout,
        max_response_bytes: http.max_response_bytes,
        trust: TrustSettings {
            system: SystemRoots::Native,
            ca_file: http.ca_file.clone(),
            accept_invalid_certs: http.accept_invalid_certs,
        },
    }
}

/// Log where the trusted roots came from, and warn loudly when verification is off or
/// nothing is trusted.
fn announce_trust(transport: &Transport) {
    let trust = transport.trust();
    let summary = trust.summary();
    tracing::info!(
        system_roots = summary.system_roots,
        ca_file_roots = summary.ca_file_roots,
        "TLS trust loaded"
    );
    for skipped in &summary.skipped {
        tracing::warn!(reason = %skipped, "a system CA certificate was skipped");
    }
    if let Some(warning) = trust.warning() {
        tracing::warn!("{warning}");
    }
}

/// Resolves on SIGTERM or SIGINT (what container runtimes and Ctrl-C send).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

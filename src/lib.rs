//! exsync: server-side synchronization of Exchange mailboxes (EWS) with a Postgres database.
//!
//! Module map (dependency direction is one-way, see `docs/conventions.md`):
//! `main → cli → {app, operator}`; `app → {scheduler, health, telemetry, config, providers}`;
//! `operator → {sync, store, domain}` (`apply` also `providers::ews::clients`);
//! `scheduler → {sync, store, domain}`; `providers → {sync::port, exsync_ews, store, domain}`;
//! `sync → {store, domain}` (mail servers only through `sync::port`); `store → domain`;
//! `domain` imports nothing above it.
//!
//! Workspace crates (Cargo enforces their direction: none of them can import this crate):
//! `exsync_ews` (crates/exsync-ews: the EWS wire model, codec, client, transport, Basic / NTLM /
//! OAuth; metrics reach the daemon through its `observe` hook), `fake_exchange`
//! (crates/fake-exchange: the EWS server for tests, `demo`, `bench` and `exsync fake-exchange`;
//! depends on `exsync_ews` only) and `exsync_graph` (crates/exsync-graph).
//!
//! - [`config`]: typed settings from TOML + `EXSYNC__*` environment overrides.
//! - [`crypto`]: credentials at rest (AES-256-GCM), the credential key.
//! - [`domain`]: pure types and product rules (profiles, mailboxes, workloads, alerts).
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: Prometheus metrics (a leaf: anything records into it; the EWS clients through
//!   [`metrics::EwsRequestMetrics`], the observer `app` installs).
//! - [`operator`]: the operator commands: `apply`, `test-mailbox` (`probe`), `explain`,
//!   `demo`, `bench`.
//! - [`providers`]: the mail-server adapters implementing `sync::port` (`providers::ews`).
//! - [`scheduler`]: claiming due mailboxes, connection limits per profile.
//! - [`store`]: every SQL statement; rows become domain types with named errors.
//! - [`app`]: the running service (scheduler + health server) and its shutdown.
//! - [`sync`]: one pass for one mailbox (incoming, outgoing, ACT) and its mail-server port.
//! - [`streaming`]: EWS streaming notifications: subscription groups whose notifications make
//!   mailboxes due at once.
//! - [`telemetry`]: tracing subscriber (JSON or pretty).
//! - [`cli`]: the command line (the only place besides `main` that uses `anyhow`).

pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod graph_notify;
pub mod health;
pub mod metrics;
pub mod operator;
pub mod providers;
pub mod scheduler;
pub mod store;
pub mod streaming;
pub mod sync;
pub mod telemetry;

//! exsync: server-side synchronization of Exchange mailboxes (EWS) with a Postgres database.
//!
//! Module map (dependency direction is one-way, see `docs/conventions.md`):
//! `main → cli → app → {scheduler, health, telemetry, config}`; `cli → {probe, explain}`;
//! `probe → {sync, store, domain}`; `explain → {sync::plan, store, domain}`; `scheduler → {sync, store, domain}`;
//! `sync → {ews, store, domain}`; `store → domain`; `fake_exchange → ews`;
//! `ews` and `domain` import nothing above them.
//!
//! - [`config`]: typed settings from TOML + `EXSYNC__*` environment overrides.
//! - [`crypto`]: credentials at rest (AES-256-GCM), the credential key.
//! - [`ews`]: the EWS wire model, codec, client (Basic, NTLM, OAuth) and their errors.
//! - [`explain`]: `exsync explain`: why a mailbox or an item is (not) syncing, from the database.
//! - [`fake_exchange`]: an EWS server on the same codec, for tests, demos and `exsync fake-exchange`.
//! - [`bench`]: `exsync bench`, the end-to-end benchmark (fake Exchange + the real daemon).
//! - [`demo`]: `exsync demo`, the fake Exchange + the real daemon, seeded and narrated.
//! - [`domain`]: pure types and product rules (profiles, mailboxes, workloads, alerts).
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: Prometheus metrics (a leaf: anything records into it).
//! - [`probe`]: `exsync test-mailbox` (Test & Enable): one real request per workload, statuses, enable.
//! - [`scheduler`]: claiming due mailboxes, connection limits per profile.
//! - [`store`]: every SQL statement; rows become domain types with named errors.
//! - [`app`]: the running service (scheduler + health server) and its shutdown.
//! - [`apply`]: declarative, transactional upsert of profiles and mailboxes from TOML.
//! - [`sync`]: one pass for one mailbox (incoming, outgoing, ACT).
//! - [`streaming`]: EWS streaming notifications: subscription groups whose notifications make
//!   mailboxes due at once.
//! - [`telemetry`]: tracing subscriber (JSON or pretty).
//! - [`cli`]: the command line (the only place besides `main` that uses `anyhow`).

pub mod app;
pub mod apply;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod ews;
pub mod explain;
pub mod fake_exchange;
pub mod health;
pub mod metrics;
pub mod probe;
pub mod scheduler;
pub mod store;
pub mod streaming;
pub mod sync;
pub mod telemetry;

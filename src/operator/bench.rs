//! `exsync bench`: an end-to-end benchmark of the real daemon against the in-process fake
//! Exchange, printing figures (never failing on a number).
//!
//! Creates a throw-away database `exsync_bench_<random>` on the server of `database.url`
//! (dropped at the end, also on error or Ctrl-C), starts the fake Exchange on its own thread
//! (so its CPU time can be told apart from exsync's), seeds it directly through
//! [`FakeState`], declares K profiles and M mailboxes, and runs the real [`App`] (scheduler +
//! engine) through three phases: the initial import, one incremental cycle with no change,
//! and a burst of outgoing email. See `docs/performance.md` for the method and results.
//! Must not change how the daemon works: it only configures, observes and times it.

use crate::app::{App, AppError};
use crate::config::Settings;
use crate::crypto::{CredentialCipher, CredentialKey};
use crate::domain::Workload;
use crate::store::{self, Store, StoreError};
use crate::sync::pass::Outcome;
use crate::sync::PassSummary;
use chrono::{Duration as Days, Utc};
use fake_exchange::graph::GraphState;
use fake_exchange::state::{NewAccount, NewApp, NewItems, Rights};
use fake_exchange::{FakeConfig, FakeExchange, FakeState, Faults};
use rand::Rng;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub mod streaming;

/// Why a benchmark run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options make no sense (zero mailboxes, …).
    #[error("invalid benchmark options: {0}")]
    Options(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service could not be built or failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The fake Exchange failed to start or to take the seed.
    #[error("fake Exchange: {0}")]
    Fake(String),
    /// The profiles could not be declared.
    #[error("declaring the benchmark profiles failed: {0}")]
    Apply(String),
    /// A phase did not finish in time.
    #[error("phase {phase} did not finish within {limit:?} ({done} of {total} done)")]
    Timeout {
        /// Which phase.
        phase: &'static str,
        /// The time limit.
        limit: Duration,
        /// How far it got.
        done: u64,
        /// What it needed.
        total: u64,
    },
    /// The scheduler stopped reporting passes (it ended).
    #[error("the scheduler stopped during phase {0}")]
    SchedulerStopped(&'static str),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

/// A preset scenario (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// 20 mailboxes × 500 items, 2 profiles × 4 connections, 5 ms latency.
    Small,
    /// 10,000 mailboxes × 5 items, 1 profile × 100 connections, 10 ms latency.
    Wide,
    /// 10 mailboxes × 50,000 items, 1 profile × 5 connections, 5 ms latency (over Graph past the 5,000 cap of a filtered delta round: the rest comes by listing).
    Deep,
}

/// Which protocol the benchmark profiles speak (`--protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// EWS with an impersonating service account per profile (`exchange_server`).
    #[default]
    Ews,
    /// Microsoft Graph with an app-only OAuth application per profile (`exchange_online`).
    Graph,
}

/// What one run does: the scenario's preset with any overrides applied.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    /// The preset the other values started from.
    pub scenario: Scenario,
    /// The protocol every profile speaks.
    pub protocol: Protocol,
    /// Mailboxes (M), spread round-robin over the profiles.
    pub mailboxes: u32,
    /// Inbox messages per mailbox (N).
    pub items: u32,
    /// Profiles (K), each with its own service account (impersonation).
    pub profiles: u32,
    /// MaximumConcurrentConnections of every profile (C).
    pub limit: u32,
    /// The fake's latency per EWS or Graph request, in milliseconds.
    pub latency_ms: u64,
    /// Outgoing emails queued in the sending phase (S).
    pub sends: u32,
    /// Each phase fails after this long.
    #[serde(skip)]
    pub phase_timeout: Duration,
}

impl BenchOptions {
    /// The preset values of a scenario.
    pub fn preset(scenario: Scenario) -> BenchOptions {
        // Every preset has some latency: no Exchange answers in 0 ms, and without it the
        // in-process fake answers each request before the next arrives, so requests never
        // overlap and the connection figures mean nothing.
        let (mailboxes, items, profiles, limit, latency_ms, sends) = match scenario {
            Scenario::Small => (20, 500, 2, 4, 5, 200),
            Scenario::Wide => (10_000, 5, 1, 100, 10, 2_000),
            Scenario::Deep => (10, 50_000, 1, 5, 5, 200),
        };
        BenchOptions {
            scenario,
            protocol: Protocol::Ews,
            mailboxes,
            items,
            profiles,
            limit,
            latency_ms,
            sends,
            phase_timeout: Duration::from_secs(1800),
        }
    }

    fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: &str| Err(BenchError::Options(what.to_owned()));
        if self.mailboxes == 0 || self.items == 0 || self.profiles == 0 {
            return bad("--mailboxes, --items and --profiles must be at least 1");
        }
        if self.items > 100_000 {
            return bad("--items is at most 100000 (the fake's batch limit)");
        }
        if !(1..=300).contains(&self.limit) {
            return bad("--limit must be between 1 and 300 (MaximumConcurrentConnections)");
        }
        if self.profiles > self.mailboxes {
            return bad("--profiles must not exceed --mailboxes");
        }
        Ok(())
    }
}

/// The figures of one run (`--json` prints exactly this object).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The options the run used.
    #[serde(flatten)]
    pub options: BenchOptions,
    /// Messages imported in the initial import (should equal mailboxes × items).
    pub items_imported: u64,
    /// Wall-clock seconds of the initial import (app start to the last mailbox imported).
    pub import_s: f64,
    /// Initial import throughput, messages per second.
    pub import_items_per_s: f64,
    /// Seconds from making every mailbox due until each completed one more pass (no change).
    pub idle_cycle_s: f64,
    /// Passes in the no-change cycle.
    pub idle_passes: u64,
    /// exsync's CPU time per pass in the no-change cycle (process CPU minus the fake's thread).
    pub cpu_ms_per_pass: f64,
    /// The in-process fake's CPU time per pass in the same cycle (not part of exsync's cost).
    pub fake_cpu_ms_per_pass: f64,
    /// Outgoing emails sent in the sending phase.
    pub sent: u64,
    /// Sending phase throughput, emails per second (queue to last sent).
    pub sends_per_s: f64,
    /// Time-averaged EWS (or Graph) requests in flight at the fake ÷ the connections the import could use
    /// (per profile: min(unfinished mailboxes, limit)), over the initial import.
    pub request_utilisation: f64,
    /// Time-averaged connection permits held by passes ÷ the same capacity (scheduler view).
    pub permit_utilisation: f64,
    /// Most concurrent EWS (or Graph) requests any one profile's account (or application) had,
    /// over the whole run.
    pub peak_concurrent_requests: u64,
    /// The connection utilisation: `peak_concurrent_requests` ÷ the profile limit.
    pub utilisation: f64,
    /// Whether any account ever had more requests in flight than its profile's limit.
    pub limit_exceeded: bool,
    /// Peak resident memory of the process (exsync and the in-process fake), MiB.
    pub peak_rss_mb: f64,
    /// Resident memory after seeding the fake and before the daemon started, MiB.
    pub rss_after_seed_mb: f64,
    /// Rows inserted plus updated in the database by the daemon (Postgres statistics).
    pub rows_written: i64,
    /// Passes that ended in failure (retried later; should be 0).
    pub failed_passes: u64,
    /// Total wall-clock seconds, seeding and clean-up included.
    pub total_s: f64,
    /// The throw-away database the run used (dropped at its end).
    pub database: String,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "scenario {} over {}: {} mailboxes × {} items, {} profile(s) × {} connections, {} ms latency, {} sends",
            format!("{:?}", o.scenario).to_lowercase(),
            protocol_name(o.protocol),
            o.mailboxes, o.items, o.profiles, o.limit, o.latency_ms, o.sends
        )?;
        writeln!(
            f,
            "initial import       {} items in {:.2} s = {:.0} items/s",
            self.items_imported, self.import_s, self.import_items_per_s
        )?;
        writeln!(
            f,
            "no-change cycle      {} passes in {:.2} s; exsync CPU {:.3} ms/pass (fake {:.3} ms/pass)",
            self.idle_passes, self.idle_cycle_s, self.cpu_ms_per_pass, self.fake_cpu_ms_per_pass
        )?;
        writeln!(
            f,
            "outgoing             {} sent at {:.0} emails/s",
            self.sent, self.sends_per_s
        )?;
        writeln!(
            f,
            "connections          time-averaged {:.1} % ({} requests in flight), {:.1} % (permits held); utilisation: peak {} of {} per account ({:.0} %); limit exceeded: {}",
            self.request_utilisation * 100.0,
            protocol_name(o.protocol),
            self.permit_utilisation * 100.0,
            self.peak_concurrent_requests,
            o.limit,
            self.utilisation * 100.0,
            if self.limit_exceeded { "YES" } else { "no" }
        )?;
        writeln!(
            f,
            "memory               peak RSS {:.1} MiB (after seeding the fake: {:.1} MiB)",
            self.peak_rss_mb, self.rss_after_seed_mb
        )?;
        writeln!(
            f,
            "database             {} rows written; {} failed passes",
            self.rows_written, self.failed_passes
        )?;
        write!(f, "total                {:.1} s", self.total_s)
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Ews => "EWS",
        Protocol::Graph => "Graph",
    }
}

/// Run one benchmark: create the throw-away database, measure, and always drop it again.
pub async fn run(settings: Settings, options: BenchOptions) -> Result<BenchReport, BenchError> {
    options.validate()?;
    let started = Instant::now();
    let options = &options;
    let result = in_throwaway_database(settings, |settings, name| async move {
        measure(settings, options, started, &name).await
    })
    .await;
    result.map(|mut report| {
        report.total_s = started.elapsed().as_secs_f64();
        report
    })
}

/// Create a throw-away database on the configured server, run `measure` against it (until it
/// ends or Ctrl-C), and always drop the database again: every benchmark leaves nothing behind.
pub(crate) async fn in_throwaway_database<R, Fut>(
    settings: Settings,
    measure: impl FnOnce(Settings, String) -> Fut,
) -> Result<R, BenchError>
where
    Fut: std::future::Future<Output = Result<R, BenchError>>,
{
    let name = format!("exsync_bench_{:08x}", rand::thread_rng().gen::<u32>());
    let database = store::bench::settings_for_database(&settings.database, &name)?;
    store::bench::create_database(&database).await?;
    progress(format!("created throw-away database {name}"));
    let mut settings = settings;
    settings.database = database.clone();
    let result = tokio::select! {
        result = measure(settings, name.clone()) => result,
        _ = crate::app::shutdown_signal() => Err(BenchError::Interrupted),
    };
    let dropped = store::bench::drop_database(&database).await;
    match (&result, dropped) {
        (_, Ok(())) => progress(format!("dropped {name}")),
        (Ok(_), Err(e)) => return Err(e.into()),
        (Err(_), Err(e)) => progress(format!("could not drop {name}: {e}")),
    }
    result
}

fn progress(text: impl AsRef<str>) {
    eprintln!("bench: {}", text.as_ref());
}

/// The fake Exchange on its own thread and single-threaded runtime.
struct FakeThread {
    state: Arc<FakeState>,
    /// The fake Graph, when started with `graph: true`.
    graph: Option<Arc<GraphState>>,
    ews_url: String,
    /// Where a Graph client points (`…/v1.0`), when Graph is served.
    graph_url: Option<String>,
    /// The OAuth2 token endpoint (for the Graph profiles' app-only tokens).
    token_url: String,
    /// The thread's id, for its CPU time in `/proc/self/task/<tid>/stat`.
    tid: Option<u32>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// What the fake's thread hands back once it listens.
struct Started {
    state: Arc<FakeState>,
    graph: Option<Arc<GraphState>>,
    ews_url: String,
    graph_url: Option<String>,
    token_url: String,
}

impl FakeThread {
    async fn start(config: FakeConfig) -> Result<FakeThread, BenchError> {
        type Ready = Result<(Started, Option<u32>), String>;
        let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("exsync-fake".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match FakeExchange::start(config).await {
                        Ok(fake) => {
                            let tid = current_thread_id();
                            let started = Started {
                                state: fake.shared_state(),
                                graph: fake.shared_graph(),
                                ews_url: fake.ews_url(),
                                graph_url: fake.graph_url(),
                                token_url: fake.token_url(),
                            };
                            let _ = ready_tx.send(Ok((started, tid)));
                            let _ = stop_rx.await;
                            fake.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                });
            })
            .map_err(|e| BenchError::Fake(e.to_string()))?;
        let (started, tid) = ready_rx
            .await
            .map_err(|_| BenchError::Fake("the fake's thread ended".into()))?
            .map_err(BenchError::Fake)?;
        Ok(FakeThread {
            state: started.state,
            graph: started.graph,
            ews_url: started.ews_url,
            graph_url: started.graph_url,
            token_url: started.token_url,
            tid,
            stop: Some(stop_tx),
            handle: Some(handle),
        })
    }

    /// Zero the request counters (EWS and Graph).
    fn reset_stats(&self) {
        self.state.reset_stats();
        if let Some(graph) = &self.graph {
            graph.reset_stats();
        }
    }

    /// Seconds spent in requests so far, summed over every account or application.
    fn request_seconds(&self) -> f64 {
        let micros: u64 = match &self.graph {
            Some(graph) => graph
                .stats()
                .app_totals
                .values()
                .map(|a| a.request_micros)
                .sum(),
            None => self
                .state
                .stats()
                .accounts
                .values()
                .map(|a| a.request_micros)
                .sum(),
        };
        micros as f64 / 1e6
    }

    /// Most requests any one profile's account (EWS) or application (Graph) had in flight.
    fn peak_concurrent_requests(&self, options: &BenchOptions) -> u64 {
        match &self.graph {
            Some(graph) => {
                let stats = graph.stats();
                (0..options.profiles)
                    .filter_map(|p| stats.app_totals.get(&graph_app(p)))
                    .map(|a| a.peak_in_flight)
                    .max()
                    .unwrap_or(0)
            }
            None => {
                let stats = self.state.stats();
                (0..options.profiles)
                    .filter_map(|p| stats.accounts.get(&service_account(p)))
                    .map(|a| a.peak_concurrent_requests)
                    .max()
                    .unwrap_or(0)
            }
        }
    }

    /// CPU time of the fake's thread so far.
    fn cpu(&self) -> Duration {
        self.tid
            .and_then(|tid| cpu_from_stat(&format!("/proc/self/task/{tid}/stat")))
            .unwrap_or_default()
    }
}

impl Drop for FakeThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The calling thread's kernel id (from `/proc/thread-self`, Linux only).
fn current_thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// utime + stime of a `/proc/.../stat` file (in USER_HZ = 1/100 s ticks).
fn cpu_from_stat(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU time of the whole process so far.
fn process_cpu() -> Duration {
    cpu_from_stat("/proc/self/stat").unwrap_or_default()
}

/// A `/proc/self/status` memory figure (`VmHWM`, `VmRSS`) in MiB.
fn memory_mb(field: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(field)?.strip_prefix(':')?;
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn address(index: u32) -> String {
    format!("user{index:05}@bench.example")
}

fn profile_name(index: u32) -> String {
    format!("Bench profile {index}")
}

fn service_account(index: u32) -> String {
    format!("svc-bench-{index}")
}

const SERVICE_PASSWORD: &str = "Bench-Service-Pw1!";

/// The Graph application (client id) of profile `index`.
fn graph_app(index: u32) -> String {
    format!("bench-app-{index}")
}

const APP_SECRET: &str = "Bench-App-Secret-1";

/// Seed the fake: one service account per profile (impersonating its mailboxes), and M
/// mailboxes with N inbox messages each.
fn seed_fake(state: &FakeState, options: &BenchOptions) -> Result<(), BenchError> {
    let fake = |e: fake_exchange::FakeError| BenchError::Fake(e.to_string());
    let received = Utc::now() - Days::hours(1);
    let mut per_profile: Vec<Vec<String>> = vec![Vec::new(); options.profiles as usize];
    for i in 0..options.mailboxes {
        let address = address(i);
        state
            .add_account(&NewAccount {
                address: Some(address.clone()),
                username: Some(format!("user{i:05}")),
                password: format!("User-{i}-Pw1!"),
            })
            .map_err(fake)?;
        state
            .add_items(
                &address,
                &NewItems {
                    count: Some(options.items),
                    received: Some(received),
                    ..NewItems::default()
                },
            )
            .map_err(fake)?;
        per_profile[(i % options.profiles) as usize].push(address);
        if (i + 1) % 1000 == 0 {
            progress(format!(
                "seeded {} of {} mailboxes",
                i + 1,
                options.mailboxes
            ));
        }
    }
    for (p, addresses) in per_profile.into_iter().enumerate() {
        if options.protocol == Protocol::Graph {
            // App-only: the application reaches every mailbox (unscoped consent).
            state
                .add_app(&NewApp {
                    client_id: graph_app(p as u32),
                    client_secret: Some(APP_SECRET.to_owned()),
                    certificate: None,
                    tenant: None,
                    impersonate: None,
                })
                .map_err(fake)?;
            continue;
        }
        let account = service_account(p as u32);
        state
            .add_account(&NewAccount {
                address: None,
                username: Some(account.clone()),
                password: SERVICE_PASSWORD.to_owned(),
            })
            .map_err(fake)?;
        state
            .set_rights(&Rights {
                account,
                impersonate: addresses,
                ..Rights::default()
            })
            .map_err(fake)?;
    }
    Ok(())
}

/// Declare the profiles (through `apply`, which encrypts their passwords) and the mailboxes
/// (in bulk).
async fn declare(
    store: &Store,
    cipher: &CredentialCipher,
    fake: &FakeThread,
    options: &BenchOptions,
) -> Result<(), BenchError> {
    let process_from =
        (Utc::now() - Days::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ews_url = &fake.ews_url;
    let mut text = String::new();
    for p in 0..options.profiles {
        if options.protocol == Protocol::Graph {
            let graph_url = fake
                .graph_url
                .as_deref()
                .ok_or_else(|| BenchError::Fake("the fake does not serve Graph".into()))?;
            text.push_str(&format!(
                "[[profile]]\nname = \"{}\"\nserver_type = \"exchange_online\"\nprotocol = \"graph\"\n\
                 graph_url = \"{graph_url}\"\nauth = \"oauth_client_credentials\"\n\
                 oauth_client_id = \"{}\"\noauth_client_secret = \"{APP_SECRET}\"\n\
                 oauth_token_url = \"{}\"\nmax_concurrent_connections = {}\n\
                 process_emails_from = {process_from}\n\n",
                profile_name(p),
                graph_app(p),
                fake.token_url,
                options.limit
            ));
            continue;
        }
        text.push_str(&format!(
            "[[profile]]\nname = \"{}\"\nserver_type = \"exchange_server\"\news_url = \"{ews_url}\"\n\
             auth = \"profile_credentials\"\nusername = \"{}\"\npassword = \"{SERVICE_PASSWORD}\"\n\
             use_impersonation = true\nmax_concurrent_connections = {}\nprocess_emails_from = {process_from}\n\n",
            profile_name(p),
            service_account(p),
            options.limit
        ));
    }
    crate::operator::apply::apply_text(
        store,
        cipher,
        &text,
        Path::new("bench.toml"),
        Path::new("."),
        false,
    )
    .await
    .map_err(|e| BenchError::Apply(e.to_string()))?;
    let mailboxes: Vec<(String, String)> = (0..options.mailboxes)
        .map(|i| (address(i), profile_name(i % options.profiles)))
        .collect();
    let inserted = store::bench::insert_mailboxes(store, &mailboxes).await?;
    if inserted != u64::from(options.mailboxes) {
        return Err(BenchError::Apply(format!(
            "{inserted} of {} mailboxes were inserted",
            options.mailboxes
        )));
    }
    Ok(())
}

/// Piecewise-constant integral of the connections the work could use:
/// Σ over profiles of min(unfinished mailboxes × requests per mailbox, limit), in
/// connection-seconds. An EWS pass has one request in flight at a time; a Graph pass up to
/// the service's mailbox concurrency (4).
struct Capacity {
    limit: u64,
    per_mailbox: u64,
    unfinished: Vec<u64>,
    since: Instant,
    integral: f64,
}

impl Capacity {
    fn new(options: &BenchOptions, start: Instant) -> Capacity {
        let k = u64::from(options.profiles);
        let m = u64::from(options.mailboxes);
        let unfinished = (0..k).map(|p| m / k + u64::from(p < m % k)).collect();
        let per_mailbox = match options.protocol {
            Protocol::Ews => 1,
            Protocol::Graph => exsync_graph::MAILBOX_CONCURRENCY as u64,
        };
        Capacity {
            limit: u64::from(options.limit),
            per_mailbox,
            unfinished,
            since: start,
            integral: 0.0,
        }
    }

    fn current(&self) -> u64 {
        self.unfinished
            .iter()
            .map(|u| (u * self.per_mailbox).min(self.limit))
            .sum()
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.since).as_secs_f64();
        self.integral += dt * self.current() as f64;
        self.since = now;
    }

    fn finished(&mut self, profile: usize, now: Instant) {
        self.advance(now);
        if let Some(u) = self.unfinished.get_mut(profile) {
            *u = u.saturating_sub(1);
        }
    }
}

fn incoming_processed(summary: &PassSummary) -> Option<u64> {
    summary
        .report(Workload::Incoming)
        .filter(|r| matches!(r.outcome, Outcome::Success))
        .map(|r| (r.summary.processed + r.summary.already_present) as u64)
}

fn failed(summary: &PassSummary) -> bool {
    summary.lease_lost
        || summary
            .reports
            .iter()
            .any(|r| !matches!(r.outcome, Outcome::Success))
}

fn pass_time(summary: &PassSummary) -> Duration {
    summary.reports.iter().map(|r| r.duration).sum()
}

/// Wait for the next pass, within the phase's deadline.
async fn next_pass(
    events: &mut mpsc::UnboundedReceiver<PassSummary>,
    phase: &'static str,
    deadline: tokio::time::Instant,
    limit: Duration,
    done: u64,
    total: u64,
) -> Result<PassSummary, BenchError> {
    match tokio::time::timeout_at(deadline, events.recv()).await {
        Ok(Some(summary)) => Ok(summary),
        Ok(None) => Err(BenchError::SchedulerStopped(phase)),
        Err(_) => Err(BenchError::Timeout {
            phase,
            limit,
            done,
            total,
        }),
    }
}

async fn measure(
    mut settings: Settings,
    options: &BenchOptions,
    started: Instant,
    database: &str,
) -> Result<BenchReport, BenchError> {
    let fake = FakeThread::start(FakeConfig {
        faults: Faults {
            latency_ms: options.latency_ms,
            // Never throttle: the fake counts concurrency, exsync's limit is what is measured.
            max_concurrency_per_account: u32::MAX,
            ..Faults::default()
        },
        graph: options.protocol == Protocol::Graph,
        ..FakeConfig::default()
    })
    .await?;
    if let Some(graph) = &fake.graph {
        // The same latency per Graph request; the 4-per-mailbox limit stays as the service
        // has it (exsync's client never exceeds it, the fake counts any excess).
        graph
            .update_faults(&serde_json::json!({ "latency_ms": options.latency_ms }))
            .map_err(|e| BenchError::Fake(e.to_string()))?;
    }
    progress(format!(
        "seeding the fake Exchange: {} mailboxes × {} items",
        options.mailboxes, options.items
    ));
    seed_fake(&fake.state, options)?;
    let rss_after_seed_mb = memory_mb("VmRSS");
    progress(format!("  RSS after seeding {rss_after_seed_mb:.1} MiB"));

    let key = CredentialKey::generate();
    let key_text = {
        use secrecy::ExposeSecret;
        key.to_base64().expose_secret().to_owned()
    };
    let cipher = || {
        CredentialKey::parse(&key_text, "bench")
            .map(CredentialCipher::new)
            .map_err(|e| BenchError::Options(e.to_string()))
    };
    {
        // Schema and rows through a pool that is closed again, so that the rows the daemon
        // writes can be told apart in the server's statistics.
        let seeding = Store::connect(&settings.database).await?;
        seeding.migrate().await?;
        declare(&seeding, &cipher()?, &fake, options).await?;
        seeding.pool().close().await;
    }
    let rows_before = store::bench::rows_written(&settings.database).await?;

    let store = Store::connect(&settings.database).await?;
    settings.server.listen = None;
    // The polling figures: streaming has its own benchmark (`--streaming`).
    settings.streaming.enabled = false;
    let app = App::build_with(settings.clone(), store.clone(), cipher()?)?;
    let (tx, mut events) = mpsc::unbounded_channel();
    let app = app.with_events(tx);
    let shutdown = CancellationToken::new();
    let _stop_app = shutdown.clone().drop_guard();
    fake.reset_stats();

    // (a) Initial import.
    let m = u64::from(options.mailboxes);
    let n = u64::from(options.items);
    let profile_of: HashMap<String, usize> = (0..options.mailboxes)
        .map(|i| (address(i), (i % options.profiles) as usize))
        .collect();
    progress("phase 1/3: initial import");
    let import_start = Instant::now();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + options.phase_timeout;
    let mut capacity = Capacity::new(options, import_start);
    let mut imported: HashMap<String, u64> = HashMap::new();
    let mut complete = 0u64;
    let mut items_imported = 0u64;
    let mut failed_passes = 0u64;
    let mut permit_time = Duration::ZERO;
    let mut last_progress = Instant::now();
    while complete < m {
        let summary = next_pass(
            &mut events,
            "import",
            deadline,
            options.phase_timeout,
            items_imported,
            m * n,
        )
        .await?;
        permit_time += pass_time(&summary);
        if failed(&summary) {
            failed_passes += 1;
        }
        if let Some(count) = incoming_processed(&summary) {
            let total = imported.entry(summary.address.clone()).or_default();
            let was_complete = *total >= n;
            // Copies recognised as stored count (a failed pass's committed pages are replayed
            // as already present), but no mailbox counts more than its N: over Graph a capped
            // delta round's listing meets the round's messages again.
            items_imported += count.min(n.saturating_sub(*total));
            *total += count;
            if !was_complete && *total >= n {
                complete += 1;
                let profile = profile_of.get(&summary.address).copied().unwrap_or(0);
                capacity.finished(profile, Instant::now());
            }
        }
        if last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            progress(format!(
                "  {complete} of {m} mailboxes imported ({items_imported} items)"
            ));
        }
    }
    let import_s = import_start.elapsed().as_secs_f64();
    capacity.advance(Instant::now());
    let request_seconds = fake.request_seconds();
    let request_utilisation = ratio(request_seconds, capacity.integral);
    let permit_utilisation = ratio(permit_time.as_secs_f64(), capacity.integral);
    progress(format!(
        "  imported {items_imported} items in {import_s:.2} s; RSS {:.1} MiB",
        memory_mb("VmRSS")
    ));

    // (b) One incremental cycle with no change.
    progress("phase 2/3: no-change cycle over every mailbox");
    let cpu_before = process_cpu();
    let fake_cpu_before = fake.cpu();
    let idle_start = Instant::now();
    store::bench::make_all_due(&store).await?;
    let deadline = tokio::time::Instant::now() + options.phase_timeout;
    let mut cycled: HashSet<String> = HashSet::new();
    let mut idle_passes = 0u64;
    while (cycled.len() as u64) < m {
        let summary = next_pass(
            &mut events,
            "no-change cycle",
            deadline,
            options.phase_timeout,
            cycled.len() as u64,
            m,
        )
        .await?;
        idle_passes += 1;
        if failed(&summary) {
            failed_passes += 1;
        }
        if summary.report(Workload::Incoming).is_some() && !summary.lease_lost {
            cycled.insert(summary.address.clone());
        }
    }
    let idle_cycle_s = idle_start.elapsed().as_secs_f64();
    let fake_cpu = fake.cpu().saturating_sub(fake_cpu_before);
    let own_cpu = process_cpu()
        .saturating_sub(cpu_before)
        .saturating_sub(fake_cpu);
    let per_pass = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / idle_passes.max(1) as f64;
    progress(format!(
        "  {idle_passes} passes in {idle_cycle_s:.2} s; RSS {:.1} MiB",
        memory_mb("VmRSS")
    ));

    // (c) Outgoing email.
    progress(format!("phase 3/3: sending {} emails", options.sends));
    let s = u64::from(options.sends);
    let send_start = Instant::now();
    let queued = store::bench::enqueue_round_robin(
        &store,
        i64::from(options.sends),
        "sink@elsewhere.example",
    )
    .await?;
    let deadline = tokio::time::Instant::now() + options.phase_timeout;
    let mut sent = 0u64;
    let mut send_failed = 0u64;
    while sent + send_failed < queued {
        let summary = next_pass(
            &mut events,
            "send",
            deadline,
            options.phase_timeout,
            sent,
            s,
        )
        .await?;
        if failed(&summary) {
            failed_passes += 1;
        }
        if let Some(report) = summary.report(Workload::Outgoing) {
            sent += report.summary.processed as u64;
            send_failed += report.summary.failed as u64;
        }
    }
    let send_s = send_start.elapsed().as_secs_f64();
    progress(format!(
        "  {sent} sent in {send_s:.2} s; RSS {:.1} MiB",
        memory_mb("VmRSS")
    ));

    shutdown.cancel();
    if let Ok(Err(e)) = running.await {
        return Err(e.into());
    }
    store.pool().close().await;
    let rows_written = store::bench::rows_written(&settings.database).await? - rows_before;

    let peak = fake.peak_concurrent_requests(options);
    drop(fake);
    Ok(BenchReport {
        options: options.clone(),
        items_imported,
        import_s,
        import_items_per_s: ratio(items_imported as f64, import_s),
        idle_cycle_s,
        idle_passes,
        cpu_ms_per_pass: per_pass(own_cpu),
        fake_cpu_ms_per_pass: per_pass(fake_cpu),
        sent,
        sends_per_s: ratio(sent as f64, send_s),
        request_utilisation,
        permit_utilisation,
        peak_concurrent_requests: peak,
        utilisation: ratio(peak as f64, f64::from(options.limit)),
        limit_exceeded: peak > u64::from(options.limit),
        peak_rss_mb: memory_mb("VmHWM"),
        rss_after_seed_mb,
        rows_written,
        failed_passes,
        total_s: started.elapsed().as_secs_f64(),
        database: database.to_owned(),
    })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_counts_min_of_unfinished_and_limit_per_profile() {
        let mut options = BenchOptions::preset(Scenario::Small);
        options.mailboxes = 5;
        options.profiles = 2;
        options.limit = 2;
        let start = Instant::now();
        let mut c = Capacity::new(&options, start);
        // Profiles hold 3 and 2 mailboxes: min(3,2) + min(2,2) = 4.
        assert_eq!(c.current(), 4);
        c.finished(0, start + Duration::from_secs(1));
        c.finished(0, start + Duration::from_secs(2));
        assert_eq!(c.current(), 3);
        c.advance(start + Duration::from_secs(3));
        assert!((c.integral - (4.0 + 4.0 + 3.0)).abs() < 1e-9);
    }

    #[test]
    fn a_graph_mailbox_can_use_up_to_four_connections_of_its_profile() {
        let mut options = BenchOptions::preset(Scenario::Small);
        options.protocol = Protocol::Graph;
        options.mailboxes = 3;
        options.profiles = 1;
        options.limit = 10;
        let start = Instant::now();
        let mut c = Capacity::new(&options, start);
        // min(3 × 4, 10) while three are left, min(1 × 4, 10) when one is.
        assert_eq!(c.current(), 10);
        c.finished(0, start);
        c.finished(0, start);
        assert_eq!(c.current(), 4);
    }

    #[test]
    fn stat_line_with_spaces_in_the_name_is_read() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("stat");
        let mut line = String::from("42 (a b) S");
        for i in 4..=20 {
            line.push_str(&format!(
                " {}",
                if i == 14 {
                    7
                } else if i == 15 {
                    3
                } else {
                    0
                }
            ));
        }
        std::fs::write(&path, line).expect("write");
        assert_eq!(
            cpu_from_stat(path.to_str().expect("utf-8")),
            Some(Duration::from_millis(100))
        );
    }
}

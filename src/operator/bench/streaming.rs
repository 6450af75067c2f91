//! `exsync bench --streaming`: M subscribed mailboxes (default 1,000) receive mail at a steady
//! rate; the figure is the latency from an item's creation in the fake Exchange to its row in
//! the database (p50, p99, max), and the CPU an idle subscribed mailbox costs per hour, for
//! exsync and for Postgres (the backends serving the benchmark's database).
//!
//! Polling is slowed to once an hour, so only notifications bring mail in quickly. Uses the
//! same throw-away database, in-process fake (on its own thread) and real daemon as the
//! polling benchmark; see `docs/performance.md`.

use super::{
    cpu_from_stat, declare, process_cpu, progress, seed_fake, BenchError, BenchOptions, FakeThread,
    Scenario,
};
use crate::app::App;
use crate::config::Settings;
use crate::crypto::{CredentialCipher, CredentialKey};
use crate::store::{self, Store};
use chrono::{DateTime, Utc};
use fake_exchange::state::NewItems;
use fake_exchange::{FakeConfig, Faults};
use rand::Rng;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What one streaming run does.
#[derive(Debug, Clone, Serialize)]
pub struct StreamingBenchOptions {
    /// Subscribed mailboxes (M).
    pub mailboxes: u32,
    /// MaximumConcurrentConnections of the profile (one is kept for passes).
    pub limit: u32,
    /// Mails created per second, spread over random mailboxes.
    pub rate_per_s: u32,
    /// How long mail keeps arriving.
    pub mail_seconds: u64,
    /// How long the idle CPU is measured (no mail at all).
    pub idle_seconds: u64,
    /// The fake's latency per EWS request, in milliseconds.
    pub latency_ms: u64,
    /// Each phase fails after this long.
    #[serde(skip)]
    pub phase_timeout: Duration,
}

impl Default for StreamingBenchOptions {
    fn default() -> Self {
        StreamingBenchOptions {
            mailboxes: 1000,
            limit: 10,
            rate_per_s: 20,
            mail_seconds: 30,
            idle_seconds: 60,
            latency_ms: 5,
            phase_timeout: Duration::from_secs(1800),
        }
    }
}

/// The figures (`--json` prints exactly this object).
#[derive(Debug, Clone, Serialize)]
pub struct StreamingBenchReport {
    /// The options the run used.
    #[serde(flatten)]
    pub options: StreamingBenchOptions,
    /// Mailboxes that were streaming when the measurement started.
    pub subscribed: i64,
    /// Streaming connections open then.
    pub connections: i64,
    /// Seconds from the daemon's start until every mailbox was subscribed and synced once.
    pub subscribe_s: f64,
    /// Mails created in the fake during the mail phase.
    pub mails: u64,
    /// Median seconds from creation in the fake to the row in the database.
    pub p50_s: f64,
    /// 99th percentile of the same.
    pub p99_s: f64,
    /// Slowest of the same.
    pub max_s: f64,
    /// exsync's CPU per idle subscribed mailbox and hour, milliseconds (process minus the
    /// fake's thread).
    pub exsync_cpu_ms_per_mailbox_hour: f64,
    /// Postgres's CPU (the backends of the benchmark database) per idle mailbox and hour, ms.
    pub postgres_cpu_ms_per_mailbox_hour: f64,
    /// The fake's CPU per idle mailbox and hour, ms (not part of exsync's cost).
    pub fake_cpu_ms_per_mailbox_hour: f64,
    /// Total wall-clock seconds.
    pub total_s: f64,
}

impl std::fmt::Display for StreamingBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "streaming: {} mailboxes, limit {}, {} mails/s for {} s, {} ms latency",
            o.mailboxes, o.limit, o.rate_per_s, o.mail_seconds, o.latency_ms
        )?;
        writeln!(
            f,
            "subscribed           {} mailboxes on {} connections after {:.1} s",
            self.subscribed, self.connections, self.subscribe_s
        )?;
        writeln!(
            f,
            "creation → row       {} mails: p50 {:.2} s, p99 {:.2} s, max {:.2} s (goal p99 ≤ 5 s)",
            self.mails, self.p50_s, self.p99_s, self.max_s
        )?;
        writeln!(
            f,
            "idle CPU             exsync {:.2} ms, Postgres {:.2} ms per mailbox-hour (fake {:.2} ms) over {} s",
            self.exsync_cpu_ms_per_mailbox_hour,
            self.postgres_cpu_ms_per_mailbox_hour,
            self.fake_cpu_ms_per_mailbox_hour,
            o.idle_seconds
        )?;
        write!(f, "total                {:.1} s", self.total_s)
    }
}

/// Run the streaming benchmark in a throw-away database (always dropped again).
pub async fn run(
    settings: Settings,
    options: StreamingBenchOptions,
) -> Result<StreamingBenchReport, BenchError> {
    if options.mailboxes == 0 || options.rate_per_s == 0 || options.mail_seconds == 0 {
        return Err(BenchError::Options(
            "--mailboxes, --rate and --mail-secs must be at least 1".into(),
        ));
    }
    if !(2..=300).contains(&options.limit) {
        return Err(BenchError::Options(
            "--limit must be between 2 and 300 (one connection is kept for passes)".into(),
        ));
    }
    let started = Instant::now();
    let options = &options;
    let result = super::in_throwaway_database(settings, |settings, name| async move {
        measure(settings, options, started, &name).await
    })
    .await;
    result.map(|mut report| {
        report.total_s = started.elapsed().as_secs_f64();
        report
    })
}

/// CPU of the Postgres backends serving `database` (by pid from pg_stat_activity).
async fn postgres_cpu(store: &Store, database: &str, pids: &mut HashSet<i32>) -> Duration {
    if let Ok(now) = store::bench::backend_pids(store, database).await {
        pids.extend(now);
    }
    pids.iter()
        .filter_map(|pid| cpu_from_stat(&format!("/proc/{pid}/stat")))
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn measure(
    mut settings: Settings,
    options: &StreamingBenchOptions,
    started: Instant,
    database: &str,
) -> Result<StreamingBenchReport, BenchError> {
    let fake = FakeThread::start(FakeConfig {
        faults: Faults {
            latency_ms: options.latency_ms,
            max_concurrency_per_account: u32::MAX,
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await?;
    let base = BenchOptions {
        scenario: Scenario::Small,
        protocol: super::Protocol::Ews,
        mailboxes: options.mailboxes,
        items: 1,
        profiles: 1,
        limit: options.limit,
        latency_ms: options.latency_ms,
        sends: 0,
        phase_timeout: options.phase_timeout,
    };
    progress(format!(
        "seeding the fake Exchange: {} mailboxes",
        options.mailboxes
    ));
    seed_fake(&fake.state, &base)?;
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
        let seeding = Store::connect(&settings.database).await?;
        seeding.migrate().await?;
        declare(&seeding, &cipher()?, &fake, &base).await?;
        seeding.pool().close().await;
    }
    let store = Store::connect(&settings.database).await?;
    settings.server.listen = None;
    settings.streaming.enabled = true;
    // Five groups of 200 need five connections of the service account.
    settings.streaming.max_connections_per_account = Some(options.limit.saturating_sub(1).max(1));
    let hour = Duration::from_secs(3600);
    settings.scheduler.incoming_interval = hour;
    settings.scheduler.incoming_min_interval = hour;
    settings.scheduler.incoming_max_interval = hour;
    settings.scheduler.outgoing_interval = hour;
    let app = App::build_with(settings.clone(), store.clone(), cipher()?)?;
    let shutdown = CancellationToken::new();
    let _stop_app = shutdown.clone().drop_guard();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let m = i64::from(options.mailboxes);

    progress("phase 1/3: subscribing every mailbox");
    let subscribe_start = Instant::now();
    let deadline = Instant::now() + options.phase_timeout;
    let (subscribed, connections) = loop {
        let streaming = store::bench::streaming_mailboxes(&store).await?;
        let synced = store::bench::synced_idle_mailboxes(&store).await?;
        if streaming == m && synced == m {
            let (connections, subscribed) = store::streaming::totals(&store).await?;
            break (subscribed, connections);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                phase: "subscribe",
                limit: options.phase_timeout,
                done: u64::try_from(streaming.min(synced)).unwrap_or(0),
                total: u64::try_from(m).unwrap_or(0),
            });
        }
        if running.is_finished() {
            return Err(BenchError::SchedulerStopped("subscribe"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let subscribe_s = subscribe_start.elapsed().as_secs_f64();
    progress(format!(
        "  {subscribed} mailboxes on {connections} connections after {subscribe_s:.1} s"
    ));

    // Subscribing made every mailbox due once (what changed before is unknown): let those
    // passes finish before measuring the idle cost.
    let deadline = Instant::now() + options.phase_timeout;
    loop {
        let busy = store::bench::busy_mailboxes(&store).await?;
        if busy == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                phase: "settle",
                limit: options.phase_timeout,
                done: 0,
                total: u64::try_from(busy).unwrap_or(0),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress(format!("phase 2/3: idle for {} s", options.idle_seconds));
    let mut pids = HashSet::new();
    let pg_before = postgres_cpu(&store, database, &mut pids).await;
    let cpu_before = process_cpu();
    let fake_before = fake.cpu();
    tokio::time::sleep(Duration::from_secs(options.idle_seconds)).await;
    let pg_after = postgres_cpu(&store, database, &mut pids).await;
    let fake_cpu = fake.cpu().saturating_sub(fake_before);
    let exsync_cpu = process_cpu()
        .saturating_sub(cpu_before)
        .saturating_sub(fake_cpu);
    let mailbox_hours = f64::from(options.mailboxes) * options.idle_seconds as f64 / 3600.0;
    let per_hour = |d: Duration| d.as_secs_f64() * 1000.0 / mailbox_hours;

    progress(format!(
        "phase 3/3: {} mails/s for {} s",
        options.rate_per_s, options.mail_seconds
    ));
    let total = u64::from(options.rate_per_s) * options.mail_seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.rate_per_s));
    let mut created: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut ticker = tokio::time::interval(interval);
    for n in 0..total {
        ticker.tick().await;
        let index = rand::thread_rng().gen_range(0..options.mailboxes);
        let id = format!("<streaming-bench-{n}@bench.example>");
        let at = Utc::now();
        fake.state
            .add_items(
                &super::address(index),
                &NewItems {
                    count: Some(1),
                    internet_message_id: Some(id.clone()),
                    subject: Some(format!("streaming bench {n}")),
                    ..NewItems::default()
                },
            )
            .map_err(|e| BenchError::Fake(e.to_string()))?;
        created.insert(id, at);
    }
    let deadline = Instant::now() + options.phase_timeout;
    let rows = loop {
        let rows = store::bench::emails_like(&store, "<streaming-bench-%").await?;
        if rows.len() as u64 >= total {
            break rows;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                phase: "mail",
                limit: options.phase_timeout,
                done: rows.len() as u64,
                total,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut latencies: Vec<f64> = rows
        .iter()
        .filter_map(|(id, row_at)| {
            let made = created.get(id)?;
            Some(((*row_at - *made).num_milliseconds().max(0) as f64) / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    shutdown.cancel();
    let _ = running.await;
    Ok(StreamingBenchReport {
        options: options.clone(),
        subscribed,
        connections,
        subscribe_s,
        mails: total,
        p50_s: percentile(&latencies, 0.50),
        p99_s: percentile(&latencies, 0.99),
        max_s: latencies.last().copied().unwrap_or(0.0),
        exsync_cpu_ms_per_mailbox_hour: per_hour(exsync_cpu),
        postgres_cpu_ms_per_mailbox_hour: per_hour(pg_after.saturating_sub(pg_before)),
        fake_cpu_ms_per_mailbox_hour: per_hour(fake_cpu),
        total_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}

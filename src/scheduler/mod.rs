//! Who runs when: claiming due mailboxes, per-profile connection limits, worker lifecycle.
//!
//! Owns the scheduling loop and the limiters. Must not speak EWS itself (it hands claimed
//! mailboxes to `sync`) and must never wait on one profile's full budget.
//!
//! The profiles are reloaded once per tick interval (a changed limit, a new or disabled
//! profile or mailbox takes effect within one tick), and every loop turn claims, for every
//! enabled profile, at most as many due mailboxes as it has free connection permits (and as
//! its limit allows across processes). A pass holds one permit from claim to end. A finished
//! pass, a NOTIFY on `exsync_outgoing` (newly queued mail) or the next reload wakes the loop. Shutdown stops claiming, lets passes finish within the deadline, then
//! cancels the rest (they stop between pages and release their leases).

pub mod limits;

use crate::domain::{AlertLevel, AlertTarget, Profile, ProfileId};
use crate::metrics::{labels, metrics};
use crate::store::{self, alerts, scheduling, Store, StoreError};
use crate::sync::{PassSummary, SyncEngine};
use limits::ConnectionLimiter;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why the scheduler stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The database failed in a way waiting does not cure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The scheduling loop of one process.
pub struct Scheduler {
    engine: Arc<SyncEngine>,
    owner: String,
    limiters: HashMap<Uuid, Arc<ConnectionLimiter>>,
    invalid_profiles: HashMap<Uuid, String>,
    events: Option<mpsc::UnboundedSender<PassSummary>>,
    /// When the due / disabled gauges were last counted (a full scan of `mailboxes`).
    counted_at: Option<std::time::Instant>,
    profiles: Vec<Arc<Profile>>,
    profiles_loaded_at: Option<std::time::Instant>,
}

impl Scheduler {
    /// A scheduler whose leases carry `owner` (unique per process).
    pub fn new(engine: Arc<SyncEngine>, owner: impl Into<String>) -> Self {
        Self {
            engine,
            owner: owner.into(),
            limiters: HashMap::new(),
            invalid_profiles: HashMap::new(),
            events: None,
            counted_at: None,
            profiles: Vec::new(),
            profiles_loaded_at: None,
        }
    }

    /// Also send every finished pass's summary here (for `exsync demo` and tests).
    pub fn with_events(mut self, events: mpsc::UnboundedSender<PassSummary>) -> Self {
        self.events = Some(events);
        self
    }

    /// The limiter of a profile, if it has run (for tests and metrics).
    pub fn limiter(&self, profile: Uuid) -> Option<Arc<ConnectionLimiter>> {
        self.limiters.get(&profile).cloned()
    }

    /// Run until `shutdown` is cancelled, then drain within the configured deadline.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), SchedulerError> {
        let settings = self.engine.scheduler_settings().clone();
        let hard_stop = CancellationToken::new();
        let mut passes: JoinSet<()> = JoinSet::new();
        let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
        let listener = tokio::spawn(listen_for_outgoing(
            self.engine.store().clone(),
            wake_tx,
            shutdown.clone(),
        ));
        metrics().scheduler_running.set(1);
        tracing::info!(owner = %self.owner, "scheduler started");
        while !shutdown.is_cancelled() {
            // Reap every finished pass: a finished task keeps its (large) allocation until it
            // is joined, and one join per loop turn falls behind when passes end faster than
            // ticks run (10,000 mailboxes: +190 MB before this).
            while passes.try_join_next().is_some() {}
            if let Err(e) = self.tick(&mut passes, &hard_stop).await {
                // Database away (restart, network): wait and try again; nothing is lost.
                tracing::warn!(error = %e, "scheduler tick failed; retrying");
            }
            // Sleep until the profiles are due to be read again (so a changed profile takes
            // effect within one tick interval), unless something wakes the loop earlier.
            let until_reload = self
                .profiles_loaded_at
                .map_or(settings.tick_interval, |at| {
                    settings.tick_interval.saturating_sub(at.elapsed())
                });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(until_reload.max(Duration::from_millis(1))) => {}
                Some(_) = wake_rx.recv() => {}
                Some(_) = passes.join_next(), if !passes.is_empty() => {}
            }
        }
        tracing::info!(
            in_flight = passes.len(),
            "shutting down: waiting for passes in flight"
        );
        let drained = tokio::time::timeout(settings.shutdown_deadline, async {
            while passes.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = passes.len(),
                "shutdown deadline passed; cancelling passes in flight"
            );
            hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while passes.join_next().await.is_some() {}
            })
            .await;
            passes.abort_all();
        }
        listener.abort();
        metrics().scheduler_running.set(0);
        tracing::info!("scheduler stopped");
        Ok(())
    }

    /// One round: reload profiles, claim what each profile's free permits allow, start passes.
    pub async fn tick(
        &mut self,
        passes: &mut JoinSet<()>,
        hard_stop: &CancellationToken,
    ) -> Result<(), SchedulerError> {
        let store = self.engine.store().clone();
        let settings = self.engine.scheduler_settings().clone();
        // Profiles are read once per tick interval, not on every wake-up: a finished pass
        // wakes the loop, and with thousands of passes a second the reload was a large share
        // of the loop's time while freed permits waited. Changes still apply within a tick.
        let stale = self
            .profiles_loaded_at
            .is_none_or(|at| at.elapsed() >= settings.tick_interval);
        if stale {
            self.reload_profiles(&store).await?;
        }
        for profile in self.profiles.clone() {
            let id = profile.id.0;
            let limiter = self
                .limiters
                .entry(id)
                .or_insert_with(|| ConnectionLimiter::new(profile.max_concurrent_connections))
                .clone();
            limiter.set_limit(profile.max_concurrent_connections);
            let profile_label = labels([("profile", &profile.name)]);
            metrics()
                .permits_limit
                .get_or_create(&profile_label)
                .set(i64::from(limiter.limit()));
            metrics()
                .permits_in_use
                .get_or_create(&profile_label)
                .set(i64::from(limiter.in_use()));
            if !profile.enabled {
                continue;
            }
            let free = limiter.available().min(settings.claim_batch_size);
            if free == 0 {
                continue;
            }
            let claimed = scheduling::claim_due(
                &store,
                id,
                &self.owner,
                settings.lease_duration,
                free,
                settings.outage_retry_interval,
            )
            .await?;
            for mailbox in claimed {
                let Some(permit) = limiter.try_acquire() else {
                    // The limit shrank meanwhile: give the claim back untouched.
                    scheduling::release_lease(&store, mailbox.row.id, mailbox.lease_token).await?;
                    continue;
                };
                let engine = self.engine.clone();
                let profile = profile.clone();
                let events = self.events.clone();
                let cancel = hard_stop.clone();
                passes.spawn(async move {
                    let summary = engine.run_pass(mailbox, &profile, cancel).await;
                    drop(permit);
                    if let Some(events) = events {
                        let _ = events.send(summary);
                    }
                });
            }
        }
        // The gauges scan every mailbox: count them once per tick interval, not on every
        // wake-up (a finished pass wakes the loop; with thousands of mailboxes the scan
        // doubled the database work of each claim).
        let stale = match self.counted_at {
            Some(at) => at.elapsed() >= settings.tick_interval,
            None => true,
        };
        if stale {
            self.counted_at = Some(std::time::Instant::now());
            if let Ok((due, disabled)) = store::profiles::due_and_disabled_counts(&store).await {
                metrics().mailboxes_due.set(due);
                metrics().mailboxes_disabled.set(disabled);
            }
        }
        Ok(())
    }

    /// Read the profiles again; a row that cannot be used is alerted and left out.
    async fn reload_profiles(&mut self, store: &Store) -> Result<(), SchedulerError> {
        let rows = store::profiles::list_rows(store).await?;
        let mut profiles = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            let name = row.name.clone();
            match row.into_profile(self.engine.cipher()) {
                Ok(profile) => {
                    if self.invalid_profiles.remove(&id).is_some() {
                        tracing::info!(profile = %name, "profile row is usable again");
                    }
                    profiles.push(Arc::new(profile));
                }
                Err(e) => {
                    self.invalid_profile(store, id, &name, &e.to_string()).await;
                }
            }
        }
        self.profiles = profiles;
        self.profiles_loaded_at = Some(std::time::Instant::now());
        Ok(())
    }

    async fn invalid_profile(&mut self, store: &Store, id: Uuid, name: &str, error: &str) {
        let first = self.invalid_profiles.insert(id, error.to_owned()).is_none();
        if first {
            tracing::error!(profile = %name, error, "profile row cannot be used; its mailboxes wait until it is fixed");
        }
        let text = format!("profile {name:?} cannot be used: {error}");
        if let Err(e) = alerts::raise(
            store,
            AlertTarget::Profile(ProfileId(id)),
            AlertLevel::Error,
            "profile.invalid_row",
            None,
            &text,
        )
        .await
        {
            tracing::warn!(error = %e, "could not record an alert");
        }
    }
}

/// Keep a LISTEN on `exsync_outgoing` and wake the loop on each notification; reconnects
/// after a database restart.
async fn listen_for_outgoing(store: Store, wake: mpsc::Sender<()>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match scheduling::OutgoingListener::connect(&store).await {
            Ok(mut listener) => loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    message = listener.next() => match message {
                        Ok(()) => { let _ = wake.try_send(()); }
                        Err(_) => break,
                    }
                }
            },
            Err(e) => tracing::debug!(error = %e, "LISTEN unavailable; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

//! Microsoft Graph change notifications on the daemon side (issue 16's optional path): where
//! the operator exposes exsync's HTTP server over public HTTPS (`[graph_notifications]`),
//! each Graph mailbox gets a subscription for its Inbox (and its events when appointments
//! are synchronised); a notification makes the mailbox due at once. Notifications are hints:
//! the pass still runs delta from its stored state, and polling continues at the profile's
//! interval, so a lost or forged notification never loses or duplicates anything.
//!
//! Owns planning which subscriptions should exist, creating them (Graph validates the
//! endpoint first), renewing them before expiry, recreating them when Graph removed them,
//! reacting to lifecycle events, and checking every notification's `clientState` against
//! the stored SHA-256. Every Graph request goes through the profile's Graph client (its
//! per-mailbox gates and MaximumConcurrentConnections). Work on a subscription is leased
//! with `SKIP LOCKED`, so with several instances each is renewed by one owner.

pub mod endpoint;
pub mod explain;

use crate::config::GraphNotificationSettings;
use crate::domain::{AlertLevel, AlertTarget, MailboxId, Profile};
use crate::metrics::{labels, metrics};
use crate::providers::graph::GraphConnector;
use crate::store::graph_subscriptions::{self as db, SubscriptionWork, ALERT_CODE};
use crate::store::{self, Store, StoreError};
use crate::streaming::hints::{self, HintSender};
use crate::sync::SyncEngine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use endpoint::{Channel, Incoming};
use exsync_graph::model::Subscription;
use exsync_graph::{ErrorKind, Target};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a round of the notification service failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphNotifyError {
    /// The database failed (the round is retried).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows worked on at once (each is one or two Graph requests through the mailbox's gate).
const CONCURRENT_WORK: usize = 8;
/// How long a claimed row is held (a validation handshake takes at most 10 s).
const WORK_LEASE: Duration = Duration::from_secs(120);
/// What each subscription asks to be told about.
const CHANGE_TYPES: &str = "created,updated,deleted";

/// The queue between the endpoints and the service, and how the service is woken early.
pub struct NotificationQueue {
    /// Where the endpoints put notifications.
    pub sender: mpsc::Sender<Incoming>,
    receiver: mpsc::Receiver<Incoming>,
    wake: Arc<Notify>,
}

impl NotificationQueue {
    /// An empty queue.
    pub fn new() -> Self {
        let (sender, receiver) = mpsc::channel(endpoint::QUEUE_LEN);
        NotificationQueue {
            sender,
            receiver,
            wake: Arc::new(Notify::new()),
        }
    }
}

impl Default for NotificationQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// `public_url` joined with an endpoint path (a path prefix of the proxy is kept).
pub fn endpoint_url(public_url: &str, path: &str) -> String {
    format!("{}{path}", public_url.trim_end_matches('/'))
}

/// The Graph resource a row subscribes to.
fn resource(kind: &str, address: &str) -> String {
    match kind {
        "events" => format!("users/{address}/events"),
        _ => format!("users/{address}/mailFolders('inbox')/messages"),
    }
}

fn what(kind: &str) -> &'static str {
    match kind {
        "events" => "calendar",
        _ => "Inbox",
    }
}

/// The notification service of one process.
pub struct GraphNotifyService {
    engine: Arc<SyncEngine>,
    graph: Arc<GraphConnector>,
    settings: GraphNotificationSettings,
    owner: String,
}

impl GraphNotifyService {
    /// A service whose work leases carry `owner` (the scheduler's instance id).
    pub fn new(
        engine: Arc<SyncEngine>,
        graph: Arc<GraphConnector>,
        settings: GraphNotificationSettings,
        owner: String,
    ) -> Self {
        GraphNotifyService {
            engine,
            graph,
            settings,
            owner,
        }
    }

    /// Check queued notifications, and plan, create and renew subscriptions, until `shutdown`.
    pub async fn run(self, queue: NotificationQueue, shutdown: CancellationToken) {
        let store = self.engine.store().clone();
        let (hints, hint_task) = hints::start(store.clone(), shutdown.clone());
        let NotificationQueue { receiver, wake, .. } = queue;
        let checker = tokio::spawn(check_notifications(
            store.clone(),
            receiver,
            hints,
            wake.clone(),
            shutdown.clone(),
        ));
        let public_url = self.settings.public_url.as_deref().unwrap_or("");
        tracing::info!(public_url, "Graph change notifications service started");
        if public_url.starts_with("http://") {
            tracing::warn!(
                public_url,
                "graph_notifications.public_url is not HTTPS: Microsoft Graph refuses such                  endpoints (only a test fake accepts them)"
            );
        }
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "Graph notifications round failed; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.settings.plan_interval) => {}
            }
        }
        let _ = checker.await;
        let _ = hint_task.await;
        tracing::info!("Graph change notifications service stopped");
    }

    async fn round(&self) -> Result<(), GraphNotifyError> {
        let store = self.engine.store();
        db::plan(store, true).await?;
        let work = db::claim_work(
            store,
            &self.owner,
            WORK_LEASE,
            self.settings.renew_before,
            200,
        )
        .await?;
        if !work.is_empty() {
            let mut profiles: HashMap<Uuid, Arc<Profile>> = HashMap::new();
            for row in store::profiles::list_rows(store).await? {
                let id = row.id;
                if let Ok(profile) = row.into_profile(self.engine.cipher()) {
                    profiles.insert(id, Arc::new(profile));
                }
            }
            futures::stream::iter(work)
                .for_each_concurrent(CONCURRENT_WORK, |row| {
                    let profile = profiles.get(&row.profile_id).cloned();
                    async move {
                        if let Err(e) = self.work_on(&row, profile).await {
                            tracing::warn!(error = %e, mailbox = %row.address, "Graph subscription work failed");
                            let _ = db::release(self.engine.store(), &row, &self.owner).await;
                        }
                    }
                })
                .await;
        }
        if let Ok(active) = db::active_count(store).await {
            metrics().graph_notify.active.set(active);
        }
        Ok(())
    }

    async fn work_on(
        &self,
        row: &SubscriptionWork,
        profile: Option<Arc<Profile>>,
    ) -> Result<(), StoreError> {
        let store = self.engine.store();
        let Some(profile) = profile else {
            // An unusable profile row: the scheduler alerts it; try again later.
            return db::release(store, row, &self.owner).await;
        };
        let client = match self.graph.client_for(&profile) {
            Ok((client, _)) => client,
            Err(e) => {
                if row.state == "obsolete" {
                    return db::remove(store, row, &self.owner).await;
                }
                return self
                    .failed(row, &e.to_string(), row.state == "active")
                    .await;
            }
        };
        let target = Target::new(row.address.clone());
        let lapsed = row.expires_at.is_none_or(|at| at <= Utc::now());
        match (row.state.as_str(), &row.subscription_id) {
            ("obsolete", id) => {
                if let Some(id) = id {
                    if let Err(e) = client.delete_subscription(&target, id).await {
                        tracing::debug!(error = %e, mailbox = %row.address, "could not delete a Graph subscription no longer wanted (it lapses on its own)");
                    }
                }
                db::remove(store, row, &self.owner).await
            }
            ("active", Some(id)) if !lapsed => {
                let expiration = Utc::now() + self.lifetime();
                match client.renew_subscription(&target, id, expiration).await {
                    Ok(renewed) => {
                        metrics().graph_notify.renewals.inc();
                        db::renewed(
                            store,
                            row,
                            &self.owner,
                            renewed.expiration_date_time.unwrap_or(expiration),
                        )
                        .await?;
                        tracing::debug!(mailbox = %row.address, kind = %row.resource_kind, "Graph subscription renewed");
                        Ok(())
                    }
                    Err(e) if e.kind() == ErrorKind::ItemNotFound => {
                        tracing::info!(mailbox = %row.address, kind = %row.resource_kind, "Graph no longer knows the subscription; creating it again");
                        db::forget(store, row, &self.owner).await?;
                        self.create(row, &client, &target).await
                    }
                    Err(e) => self.failed(row, &e.to_string(), true).await,
                }
            }
            _ => self.create(row, &client, &target).await,
        }
    }

    fn lifetime(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.lifetime).unwrap_or(chrono::Duration::hours(70))
    }

    async fn create(
        &self,
        row: &SubscriptionWork,
        client: &exsync_graph::GraphClient,
        target: &Target,
    ) -> Result<(), StoreError> {
        let store = self.engine.store();
        let Some(public_url) = self.settings.public_url.as_deref() else {
            return db::release(store, row, &self.owner).await;
        };
        let secret: [u8; 32] = rand::random();
        let client_state = SecretString::from(URL_SAFE_NO_PAD.encode(secret));
        let hash: [u8; 32] = Sha256::digest(client_state.expose_secret().as_bytes()).into();
        let expiration = Utc::now() + self.lifetime();
        let request = Subscription {
            resource: Some(resource(&row.resource_kind, &row.address)),
            change_type: Some(CHANGE_TYPES.to_owned()),
            notification_url: Some(endpoint_url(public_url, endpoint::NOTIFICATIONS_PATH)),
            lifecycle_notification_url: Some(endpoint_url(public_url, endpoint::LIFECYCLE_PATH)),
            expiration_date_time: Some(expiration),
            client_state: Some(client_state),
            ..Subscription::default()
        };
        match client.create_subscription(target, &request).await {
            Ok(created) => {
                let Some(id) = created.id.filter(|id| !id.is_empty()) else {
                    return self
                        .failed(
                            row,
                            "Graph answered the new subscription without an id",
                            false,
                        )
                        .await;
                };
                let expires = created.expiration_date_time.unwrap_or(expiration);
                if db::created(store, row, &self.owner, &id, &hash, expires).await? {
                    metrics().graph_notify.created.inc();
                    db::resolve_alert(store, row.mailbox_id).await?;
                    tracing::info!(mailbox = %row.address, kind = %row.resource_kind, subscription = %id, "Graph change notifications subscribed");
                } else if let Err(e) = client.delete_subscription(target, &id).await {
                    tracing::debug!(error = %e, "could not delete a subscription made for a row no longer wanted");
                }
                Ok(())
            }
            Err(e) => self.failed(row, &e.to_string(), false).await,
        }
    }

    async fn failed(
        &self,
        row: &SubscriptionWork,
        reason: &str,
        keep_subscription: bool,
    ) -> Result<(), StoreError> {
        let store = self.engine.store();
        metrics().graph_notify.failures.inc();
        let exponent = u32::try_from(row.failures.clamp(0, 16)).unwrap_or(16);
        let retry_in = self
            .settings
            .retry_initial
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.settings.retry_max);
        let action = if keep_subscription {
            "renewed"
        } else {
            "set up"
        };
        let public = self.settings.public_url.as_deref().unwrap_or("");
        let text = format!(
            "Microsoft Graph change notifications for the {} of {} could not be {action}: {reason}. \
             exsync keeps polling at the profile's interval and tries again in {} s. Check that \
             {} answers Graph from the internet over HTTPS (the validation handshake needs an \
             answer within 10 s) and that the application may read the mailbox.",
            what(&row.resource_kind),
            row.address,
            retry_in.as_secs(),
            endpoint_url(public, endpoint::NOTIFICATIONS_PATH),
        );
        tracing::warn!(mailbox = %row.address, kind = %row.resource_kind, reason = %reason, "Graph subscription failed; the mailbox polls");
        db::failed(store, row, &self.owner, reason, retry_in, keep_subscription).await?;
        store::alerts::raise(
            store,
            AlertTarget::Mailbox(MailboxId(row.mailbox_id)),
            AlertLevel::Warning,
            ALERT_CODE,
            None,
            &text,
        )
        .await?;
        Ok(())
    }
}

/// Check each queued notification's subscription and `clientState`; a verified change (or a
/// `missed` lifecycle event) makes its mailbox due, `reauthorizationRequired` renews and
/// `subscriptionRemoved` recreates the subscription. Anything else is discarded and counted.
async fn check_notifications(
    store: Store,
    mut receiver: mpsc::Receiver<Incoming>,
    hints: HintSender,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let rejected = |reason: &str| {
        metrics()
            .graph_notify
            .rejected
            .get_or_create(&labels([("reason", reason)]))
            .inc();
    };
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => return,
            incoming = receiver.recv() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
        };
        let known = match db::find(&store, &incoming.subscription_id).await {
            Ok(known) => known,
            Err(e) => {
                // Polling covers a notification lost here.
                tracing::warn!(error = %e, "could not check a Graph notification");
                continue;
            }
        };
        let Some(known) = known else {
            rejected("unknown_subscription");
            tracing::debug!(subscription = %incoming.subscription_id, "Graph notification for an unknown subscription discarded");
            continue;
        };
        let verified = incoming.client_state.as_ref().is_some_and(|state| {
            Sha256::digest(state.expose_secret().as_bytes()).as_slice()
                == known.client_state_sha256.as_slice()
        });
        if !verified {
            rejected("client_state");
            tracing::warn!(subscription = %incoming.subscription_id, "Graph notification with a wrong or missing clientState discarded");
            continue;
        }
        let kind = match incoming.channel {
            Channel::Change => "change",
            Channel::Lifecycle => "lifecycle",
        };
        metrics()
            .graph_notify
            .received
            .get_or_create(&labels([("kind", kind)]))
            .inc();
        let _ = db::notified(&store, &incoming.subscription_id).await;
        let outcome = match (incoming.channel, incoming.lifecycle_event.as_deref()) {
            (Channel::Change, _) | (Channel::Lifecycle, Some("missed")) => {
                hints.notify(known.mailbox_id);
                Ok(())
            }
            (Channel::Lifecycle, Some("reauthorizationRequired")) => {
                let done = db::request_renewal(&store, &incoming.subscription_id).await;
                wake.notify_one();
                done
            }
            (Channel::Lifecycle, Some("subscriptionRemoved")) => {
                let done = db::removed_by_graph(&store, &incoming.subscription_id).await;
                // Changes may have been missed meanwhile.
                hints.notify(known.mailbox_id);
                wake.notify_one();
                done
            }
            (Channel::Lifecycle, other) => {
                tracing::debug!(event = ?other, "unknown Graph lifecycle event ignored");
                Ok(())
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "could not act on a Graph lifecycle notification");
        }
    }
}

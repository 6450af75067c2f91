//! One subscription group's runner: it owns the group's lease, keeps each member subscribed
//! (subscribe new members, unsubscribe members that left, recreate subscriptions Exchange lost
//! or expired), holds one GetStreamingEvents connection for all of them with the affinity
//! headers, reopens it when Exchange closes it at ConnectionTimeout (which also keeps the
//! subscriptions alive), reconnects with backoff when it drops, honours ErrorServerBusy's
//! back-off, and turns notifications into hints.
//!
//! A mailbox whose subscription keeps failing falls back to polling (with an information
//! alert) and tries again later; while the profile's connections are all used by passes, the
//! group's mailboxes poll.

use super::hints::HintSender;
use super::Profiles;
use crate::config::StreamingSettings;
use crate::domain::{AlertTarget, MailboxId, Profile, Workload};
use crate::metrics::metrics;
use crate::providers::ews::clients::ClientCache;
use crate::store::streaming::{self as db, GroupClaim, GroupKey, Member};
use crate::store::{alerts, Store};
use crate::sync::plan::connection_for;
use crate::sync::SyncEngine;
use chrono::Utc;
use exsync_ews::client::{Affinity, EwsClient, Target, STREAMING_UNSUPPORTED};
use exsync_ews::ops::get_streaming_events::ConnectionStatus;
use exsync_ews::ops::subscribe::EventType;
use exsync_ews::ops::{GetStreamingEventsRequest, SubscribeRequest, UnsubscribeRequest};
use exsync_ews::types::{BaseFolderId, DistinguishedFolderName, ResponseClass};
use exsync_ews::EwsError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Subscription codes that mean "this subscription is gone: create it again".
const LOST: [&str; 5] = [
    "ErrorSubscriptionNotFound",
    "ErrorExpiredSubscription",
    "ErrorInvalidSubscription",
    "ErrorSubscriptionUnsubscribed",
    "ErrorNewEventStreamConnectionOpened",
];

/// How a connection ended, deciding what comes next.
enum Ended {
    /// Exchange closed it at ConnectionTimeout, or membership changed: reopen at once.
    Again,
    /// It dropped or failed: reconnect after the backoff.
    Dropped(String),
    /// Exchange asked to wait this long.
    Busy(Duration),
    /// Shutdown or the lease was lost.
    Stop,
}

/// The runner of one group.
pub struct GroupRunner {
    engine: Arc<SyncEngine>,
    clients: Arc<ClientCache>,
    settings: StreamingSettings,
    group: GroupKey,
    token: Uuid,
    affinity: Affinity,
    profiles: Profiles,
    hints: HintSender,
    /// Mailbox → (subscription, address) for the members subscribed (or adopted).
    subscribed: HashMap<Uuid, (String, String)>,
    renew_at: Instant,
    lost: bool,
}

impl GroupRunner {
    /// A runner for a claimed group.
    pub fn new(
        engine: Arc<SyncEngine>,
        clients: Arc<ClientCache>,
        settings: StreamingSettings,
        claim: GroupClaim,
        profiles: Profiles,
        hints: HintSender,
    ) -> Self {
        GroupRunner {
            group: claim.key(),
            token: claim.lease_token,
            affinity: Affinity {
                anchor_mailbox: String::new(),
                back_end_cookie: claim.back_end_cookie,
            },
            engine,
            clients,
            settings,
            profiles,
            hints,
            subscribed: HashMap::new(),
            renew_at: Instant::now(),
            lost: false,
        }
    }

    fn store(&self) -> &Store {
        self.engine.store()
    }

    fn lease(&self) -> Duration {
        self.engine.scheduler_settings().lease_duration
    }

    /// Renew the lease when due; `false` once it is lost.
    async fn keep_lease(&mut self) -> bool {
        if self.lost {
            return false;
        }
        if Instant::now() >= self.renew_at {
            match db::renew_group(self.store(), &self.group, self.token, self.lease()).await {
                Ok(true) => self.renew_at = Instant::now() + self.lease() / 3,
                Ok(false) => {
                    tracing::info!(group = %self.group.key, "streaming group taken over or removed");
                    self.lost = true;
                    return false;
                }
                Err(e) => tracing::warn!(error = %e, "could not renew a streaming group's lease"),
            }
        }
        true
    }

    /// Sleep, renewing the lease; `false` when stopped or the lease is lost.
    async fn pause(&mut self, how_long: Duration, cancel: &CancellationToken) -> bool {
        let until = Instant::now() + how_long;
        loop {
            if !self.keep_lease().await {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let step = (until - now).min(self.renew_at.saturating_duration_since(now));
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(step.max(Duration::from_millis(5))) => {}
            }
        }
    }

    /// Run until cancelled or the lease is lost; releases the group when it stops by itself.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = self.settings.reconnect_initial;
        while !cancel.is_cancelled() {
            if !self.keep_lease().await {
                break;
            }
            let profile = self
                .profiles
                .read()
                .ok()
                .and_then(|p| p.get(&self.group.profile_id).cloned());
            let Some(profile) = profile else {
                if !self.pause(self.settings.plan_interval, &cancel).await {
                    break;
                }
                continue;
            };
            let members = match db::members(self.store(), &self.group).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a streaming group's members");
                    if !self.pause(self.settings.plan_interval, &cancel).await {
                        break;
                    }
                    continue;
                }
            };
            if members.is_empty() {
                break;
            }
            let cap = if self.group.key.starts_with("own:") {
                i64::MAX
            } else {
                super::account_cap(&profile, &self.settings)
            };
            match db::reserve_connection(self.store(), &self.group, self.token, cap).await {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!(
                        "polling: the profile's {} connections (MaximumConcurrentConnections, one kept for passes, at most {} streaming per account) are in use",
                        profile.max_concurrent_connections,
                        if cap == i64::MAX { "one".to_owned() } else { cap.to_string() }
                    );
                    self.all_polling(&members, &reason).await;
                    if !self.pause(self.settings.plan_interval, &cancel).await {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not reserve a streaming connection");
                    if !self.pause(self.settings.plan_interval, &cancel).await {
                        break;
                    }
                    continue;
                }
            }
            let ended = match self.serve(&profile, &members, &cancel).await {
                Ok(ended) => ended,
                Err(reason) => Ended::Dropped(reason),
            };
            match ended {
                Ended::Stop => break,
                Ended::Again => {
                    backoff = self.settings.reconnect_initial;
                }
                Ended::Busy(wait) => {
                    let _ = db::close_connection(self.store(), &self.group, self.token).await;
                    metrics().streaming.reconnects.inc();
                    if !self.pause(wait, &cancel).await {
                        break;
                    }
                }
                Ended::Dropped(reason) => {
                    tracing::info!(group = %self.group.key, reason, "streaming connection dropped; reconnecting after a backoff");
                    let _ = db::close_connection(self.store(), &self.group, self.token).await;
                    metrics().streaming.reconnects.inc();
                    let jitter = 0.5 + rand::random::<f64>() * 0.5;
                    if !self.pause(backoff.mul_f64(jitter), &cancel).await {
                        break;
                    }
                    backoff = (backoff * 2).min(self.settings.reconnect_max);
                }
            }
        }
        metrics()
            .streaming
            .subscribed_mailboxes
            .dec_by(self.subscribed.len() as i64);
        if !self.lost {
            let _ = db::release_group(self.store(), &self.group, self.token).await;
        }
    }

    async fn all_polling(&self, members: &[Member], reason: &str) {
        for m in members {
            if m.state != "polling" {
                let _ = db::set_polling(
                    self.store(),
                    m.mailbox_id,
                    reason,
                    m.failures,
                    m.fallback_until,
                    false,
                )
                .await;
            }
        }
    }

    /// The client of the group (the profile's, or the one member's own credentials).
    async fn client(&self, profile: &Profile) -> Result<Arc<EwsClient>, String> {
        let rows = db::member_rows(self.store(), &self.group)
            .await
            .map_err(|e| e.to_string())?;
        let row = rows.into_iter().next().ok_or("no members")?;
        let mailbox = row
            .into_mailbox(self.engine.cipher())
            .map_err(|e| e.to_string())?;
        let workload = if mailbox.wants(Workload::Incoming) {
            Workload::Incoming
        } else {
            Workload::Act
        };
        let plan = connection_for(profile, &mailbox, workload).map_err(|r| r.message)?;
        self.clients
            .client_for(profile, &mailbox, &plan)
            .map_err(|e| e.to_string())
    }

    fn target(&self, mailbox: &str) -> Target {
        Target {
            mailbox: mailbox.to_owned(),
            impersonate: !self.group.key.starts_with("own:"),
            log_payloads: false,
        }
    }

    fn subscription_for(&self, member: &Member) -> SubscribeRequest {
        let mut folders: Vec<DistinguishedFolderName> = Vec::new();
        if member.incoming_on {
            for name in &self.engine.sync_settings().tracked_folders {
                if let Ok(f) = name.parse::<DistinguishedFolderName>() {
                    folders.push(f);
                }
            }
            if folders.is_empty() {
                folders.push(DistinguishedFolderName::Inbox);
            }
        }
        if member.act_on {
            folders.extend([
                DistinguishedFolderName::Calendar,
                DistinguishedFolderName::Contacts,
                DistinguishedFolderName::Tasks,
            ]);
        }
        folders.dedup();
        SubscribeRequest {
            subscribe_to_all_folders: None,
            folder_ids: folders
                .into_iter()
                .map(BaseFolderId::distinguished)
                .collect(),
            event_types: EventType::SYNC_RELEVANT.to_vec(),
        }
    }

    /// Bring subscriptions in line with `members`, then hold the connection until it ends.
    async fn serve(
        &mut self,
        profile: &Profile,
        members: &[Member],
        cancel: &CancellationToken,
    ) -> Result<Ended, String> {
        let client = match self.client(profile).await {
            Ok(c) => c,
            Err(reason) => {
                self.all_polling(members, &format!("polling: {reason}"))
                    .await;
                let _ = db::close_connection(self.store(), &self.group, self.token).await;
                return Ok(Ended::Busy(self.settings.plan_interval));
            }
        };
        if let Some(first) = members.first() {
            if self.affinity.anchor_mailbox.is_empty()
                || !members
                    .iter()
                    .any(|m| m.address == self.affinity.anchor_mailbox)
            {
                // A new anchor names a server of its own: the old cookie no longer applies.
                if !self.affinity.anchor_mailbox.is_empty() {
                    self.affinity.back_end_cookie = None;
                }
                self.affinity.anchor_mailbox = first.address.clone();
            }
        }
        // Members that left: end their subscriptions.
        let present: HashMap<Uuid, &Member> = members.iter().map(|m| (m.mailbox_id, m)).collect();
        let gone: Vec<(Uuid, String, String)> = self
            .subscribed
            .iter()
            .filter(|(id, _)| !present.contains_key(id))
            .map(|(id, (sub, address))| (*id, sub.clone(), address.clone()))
            .collect();
        for (id, sub, address) in gone {
            self.subscribed.remove(&id);
            metrics().streaming.subscribed_mailboxes.dec();
            let _ = client
                .unsubscribe_in_group(
                    &self.target(&address),
                    &UnsubscribeRequest {
                        subscription_id: sub,
                    },
                    &self.affinity,
                )
                .await;
        }
        // Members without a subscription: adopt a stored one (a takeover), or subscribe.
        let now = Utc::now();
        for member in members {
            if self.subscribed.contains_key(&member.mailbox_id) {
                continue;
            }
            if member.fallback_until.is_some_and(|t| t > now) {
                continue;
            }
            if let Some(sub) = &member.subscription_id {
                self.subscribed
                    .insert(member.mailbox_id, (sub.clone(), member.address.clone()));
                metrics().streaming.subscribed_mailboxes.inc();
                continue;
            }
            if !self.keep_lease().await || cancel.is_cancelled() {
                return Ok(Ended::Stop);
            }
            let cookie_before = self.affinity.back_end_cookie.clone();
            let outcome = client
                .subscribe_in_group(
                    &self.target(&member.address),
                    &self.subscription_for(member),
                    &mut self.affinity,
                )
                .await
                .and_then(|r| r.first().map(|s| s.subscription_id.clone()));
            if self.affinity.back_end_cookie != cookie_before {
                let _ = db::set_cookie(
                    self.store(),
                    &self.group,
                    self.token,
                    self.affinity.back_end_cookie.as_deref(),
                )
                .await;
            }
            match outcome {
                Ok(sub) => {
                    db::set_streaming(
                        self.store(),
                        member.mailbox_id,
                        &sub,
                        self.settings.safety_poll_interval,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    self.subscribed
                        .insert(member.mailbox_id, (sub, member.address.clone()));
                    metrics().streaming.subscribed_mailboxes.inc();
                    // What changed before the subscription existed is unknown: sync now.
                    self.hints.notify(member.mailbox_id);
                }
                Err(EwsError::ServerBusy { back_off }) => return Ok(Ended::Busy(back_off)),
                Err(e) => self.member_failed(member, &e).await,
            }
        }
        if self.subscribed.is_empty() {
            let _ = db::close_connection(self.store(), &self.group, self.token).await;
            return Ok(Ended::Busy(self.settings.plan_interval));
        }
        // Members that polled while the connection was unavailable stream again.
        for member in members {
            if member.state == "streaming" {
                continue;
            }
            if let Some((sub, _)) = self.subscribed.get(&member.mailbox_id) {
                db::set_streaming(
                    self.store(),
                    member.mailbox_id,
                    sub,
                    self.settings.safety_poll_interval,
                )
                .await
                .map_err(|e| e.to_string())?;
            }
        }
        self.listen(&client, members, cancel).await
    }

    /// A member's subscription failed: count it; after `max_failures`, poll for a while and
    /// say so with an information alert.
    async fn member_failed(&self, member: &Member, error: &EwsError) {
        let failures = member.failures + 1;
        let unsupported =
            matches!(error, EwsError::Request { code, .. } if code == STREAMING_UNSUPPORTED);
        let give_up = unsupported
            || failures >= i32::try_from(self.settings.max_failures).unwrap_or(i32::MAX);
        if give_up {
            let until = Utc::now()
                + chrono::Duration::from_std(self.settings.fallback_retry)
                    .unwrap_or_else(|_| chrono::Duration::hours(1));
            let reason = format!(
                "polling: its streaming subscription failed {failures} times in a row ({error}); streaming is tried again after {}",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            );
            let _ = db::set_polling(
                self.store(),
                member.mailbox_id,
                &reason,
                failures,
                Some(until),
                true,
            )
            .await;
            metrics().streaming.fallbacks.inc();
            let _ = alerts::inform(
                self.store(),
                AlertTarget::Mailbox(MailboxId(member.mailbox_id)),
                "streaming.fallback_to_polling",
                None,
                &format!("{}: {reason}", member.address),
            )
            .await;
        } else {
            let reason = format!("polling: its streaming subscription failed ({error}); retrying");
            let _ = db::set_polling(
                self.store(),
                member.mailbox_id,
                &reason,
                failures,
                None,
                true,
            )
            .await;
        }
    }

    /// Hold GetStreamingEvents for the subscribed members until it ends.
    async fn listen(
        &mut self,
        client: &EwsClient,
        members: &[Member],
        cancel: &CancellationToken,
    ) -> Result<Ended, String> {
        let by_subscription: HashMap<String, Uuid> = self
            .subscribed
            .iter()
            .map(|(id, (sub, _))| (sub.clone(), *id))
            .collect();
        let minutes = u8::try_from((self.settings.connection_timeout.as_secs() / 60).clamp(1, 30))
            .unwrap_or(30);
        let anchor = self.affinity.anchor_mailbox.clone();
        let request = GetStreamingEventsRequest {
            subscription_ids: by_subscription.keys().cloned().collect(),
            connection_timeout_minutes: minutes,
        };
        let target = self.target(&anchor);
        let mut stream = match client
            .open_event_stream(Some(&target), &request, &self.affinity)
            .await
        {
            Ok(s) => s,
            Err(EwsError::ServerBusy { back_off }) => return Ok(Ended::Busy(back_off)),
            Err(e) => return Ok(Ended::Dropped(e.to_string())),
        };
        let _open = OpenGauge::new();
        let member_ids: Vec<Uuid> = members.iter().map(|m| m.mailbox_id).collect();
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(Ended::Stop),
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(self.renew_at)) => {
                    if !self.keep_lease().await {
                        return Ok(Ended::Stop);
                    }
                    // Membership changed (a mailbox added, disabled or deleted): re-plan.
                    let now: Vec<Uuid> = db::members(self.store(), &self.group)
                        .await
                        .map_err(|e| e.to_string())?
                        .iter()
                        .map(|m| m.mailbox_id)
                        .collect();
                    if now != member_ids {
                        return Ok(Ended::Again);
                    }
                    continue;
                }
                next = tokio::time::timeout(self.settings.idle_timeout, stream.next()) => next,
            };
            let envelope = match next {
                Err(_) => return Ok(Ended::Dropped("no envelope within the idle timeout".into())),
                Ok(None) => {
                    return Ok(Ended::Dropped(
                        "the server ended the response without Closed".into(),
                    ))
                }
                Ok(Some(Err(e))) => return Ok(Ended::Dropped(e.to_string())),
                Ok(Some(Ok(envelope))) => envelope,
            };
            let mut lost_any = false;
            for message in &envelope.messages {
                let payload = message.payload.clone().unwrap_or_default();
                if message.class == ResponseClass::Error {
                    let code = message.code.as_str();
                    if LOST.contains(&code) && !payload.error_subscription_ids.is_empty() {
                        for sub in &payload.error_subscription_ids {
                            let Some(mailbox) = by_subscription.get(sub).copied() else {
                                continue;
                            };
                            if self.subscribed.remove(&mailbox).is_some() {
                                metrics().streaming.subscribed_mailboxes.dec();
                            }
                            let _ = db::set_polling(
                                self.store(),
                                mailbox,
                                &format!("pending: its subscription was lost ({code}) and is being created again"),
                                0,
                                None,
                                true,
                            )
                            .await;
                            // Events may have been missed while it was gone: sync now.
                            self.hints.notify(mailbox);
                            lost_any = true;
                        }
                        continue;
                    }
                    if let Some(EwsError::ServerBusy { back_off }) = message.to_error() {
                        return Ok(Ended::Busy(back_off));
                    }
                    return Ok(Ended::Dropped(format!(
                        "GetStreamingEvents answered {code}"
                    )));
                }
                for notification in &payload.notifications {
                    metrics().streaming.notifications.inc();
                    if let Some(mailbox) = by_subscription.get(&notification.subscription_id) {
                        self.hints.notify(*mailbox);
                    }
                }
                if payload.connection_status == Some(ConnectionStatus::Closed) {
                    return Ok(Ended::Again);
                }
            }
            if lost_any {
                return Ok(Ended::Again);
            }
        }
    }
}

/// Counts one open connection in the gauge while it lives.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics().streaming.open_connections.inc();
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics().streaming.open_connections.dec();
    }
}

//! EWS streaming notifications on the daemon side: Exchange tells exsync when a mailbox
//! changes, and the mailbox's workloads become due at once. Notifications are hints only: the
//! pass still runs SyncFolderItems from its stored state, so a lost or repeated notification
//! never loses or duplicates an item, and a slow safety poll still runs for every mailbox.
//!
//! Owns the planning of subscription groups (up to 200 impersonated mailboxes per connection,
//! or one connection per mailbox credential), their ownership through leases (two processes
//! never both hold a group; a crashed process's groups are taken over after the lease expires),
//! and the group runners ([`group`]). Each open connection counts against its profile's
//! MaximumConcurrentConnections; when passes use the limit, the group's mailboxes poll.

pub mod explain;
pub mod group;
pub mod hints;

use crate::config::StreamingSettings;
use crate::domain::{AuthMethod, PasswordScheme, Profile, Protocol, ServerType};
use crate::metrics::metrics;
use crate::providers::ews::clients::ClientCache;
use crate::store::streaming::{self as db, GroupKey, GroupMode};
use crate::store::{self, StoreError};
use crate::sync::SyncEngine;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why the streaming service could not run a round.
#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    /// The database failed (the round is retried).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The profiles as last read, shared with the group runners.
pub type Profiles = Arc<RwLock<HashMap<Uuid, Arc<Profile>>>>;

/// How a profile's mailboxes take part in streaming, and why not when they do not.
pub fn mode_for(profile: &Profile, settings: &StreamingSettings) -> GroupMode {
    // EWS streaming is an EWS feature: a Graph profile's mailboxes are made due by Graph
    // change notifications (`graph_notify`) when those are on, else polled by delta.
    if !settings.enabled || !profile.enabled || profile.protocol != Protocol::Ews {
        return GroupMode::Off;
    }
    if profile.password_scheme == PasswordScheme::Ntlm
        && profile.auth != AuthMethod::OauthClientCredentials
    {
        return GroupMode::Unsupported(
            "the profile signs in with NTLM, which authenticates one connection: a streaming \
             connection would hold it for minutes, so exsync polls (use Basic or OAuth to stream)"
                .into(),
        );
    }
    if profile.max_concurrent_connections < 2 {
        return GroupMode::Unsupported(
            "the profile's MaximumConcurrentConnections is 1 and that connection is kept for \
             sync passes"
                .into(),
        );
    }
    match profile.auth {
        AuthMethod::ProfileCredentials if !profile.use_impersonation => GroupMode::Unsupported(
            "the profile uses delegation, and Exchange offers no streaming subscriptions through \
             delegate access"
                .into(),
        ),
        AuthMethod::ProfileCredentials | AuthMethod::OauthClientCredentials => {
            GroupMode::Impersonation {
                size: usize::try_from(settings.group_size).unwrap_or(200),
            }
        }
        AuthMethod::MailboxCredentials => GroupMode::OwnCredentials,
    }
}

/// Open streaming connections one service account may hold (Exchange's HangingConnectionLimit).
pub fn account_cap(profile: &Profile, settings: &StreamingSettings) -> i64 {
    let cap = settings
        .max_connections_per_account
        .unwrap_or(match profile.server_type {
            ServerType::ExchangeOnline => 10,
            ServerType::ExchangeServer => 3,
        });
    i64::from(cap)
}

/// The streaming service of one process.
pub struct StreamingService {
    engine: Arc<SyncEngine>,
    clients: Arc<ClientCache>,
    settings: StreamingSettings,
    owner: String,
}

impl StreamingService {
    /// A service whose group leases carry `owner` (the scheduler's instance id).
    pub fn new(
        engine: Arc<SyncEngine>,
        clients: Arc<ClientCache>,
        settings: StreamingSettings,
        owner: String,
    ) -> Self {
        StreamingService {
            engine,
            clients,
            settings,
            owner,
        }
    }

    /// Plan, claim and run groups until `shutdown`; then stop every runner (their leases are
    /// released, so another process takes their groups over at once).
    pub async fn run(self, shutdown: CancellationToken) {
        let store = self.engine.store().clone();
        let profiles: Profiles = Arc::new(RwLock::new(HashMap::new()));
        let (hints, hint_task) = hints::start(store.clone(), shutdown.clone());
        let mut runners: HashMap<GroupKey, (JoinHandle<()>, CancellationToken)> = HashMap::new();
        tracing::info!(
            enabled = self.settings.enabled,
            "streaming notifications service started"
        );
        loop {
            runners.retain(|_, (task, _)| !task.is_finished());
            if let Err(e) = self.round(&profiles, &hints, &mut runners, &shutdown).await {
                tracing::warn!(error = %e, "streaming round failed; retrying");
            }
            let open = runners.len();
            tracing::debug!(groups = open, "streaming groups held");
            if let Ok((connections, subscribed)) = db::totals(&store).await {
                tracing::debug!(connections, subscribed, "streaming totals (all instances)");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.settings.plan_interval) => {}
            }
        }
        for (_, (_, cancel)) in runners.iter() {
            cancel.cancel();
        }
        for (_, (task, _)) in runners {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let _ = hint_task.await;
        metrics().streaming.open_connections.set(0);
        metrics().streaming.subscribed_mailboxes.set(0);
        tracing::info!("streaming notifications service stopped");
    }

    async fn round(
        &self,
        profiles: &Profiles,
        hints: &hints::HintSender,
        runners: &mut HashMap<GroupKey, (JoinHandle<()>, CancellationToken)>,
        shutdown: &CancellationToken,
    ) -> Result<(), StreamingError> {
        let store = self.engine.store();
        let rows = store::profiles::list_rows(store).await?;
        let mut loaded = HashMap::new();
        for row in rows {
            let id = row.id;
            let Ok(profile) = row.into_profile(self.engine.cipher()) else {
                // The scheduler alerts an unusable profile row; its mailboxes do not stream.
                db::plan_profile(store, id, &GroupMode::Off).await?;
                continue;
            };
            let mode = mode_for(&profile, &self.settings);
            db::plan_profile(store, id, &mode).await?;
            loaded.insert(id, Arc::new(profile));
        }
        if let Ok(mut shared) = profiles.write() {
            *shared = loaded;
        }
        if !self.settings.enabled || shutdown.is_cancelled() {
            return Ok(());
        }
        let claims = db::claim_groups(
            store,
            &self.owner,
            self.engine.scheduler_settings().lease_duration,
            100,
        )
        .await?;
        for claim in claims {
            let key = claim.key();
            let cancel = shutdown.child_token();
            let runner = group::GroupRunner::new(
                self.engine.clone(),
                self.clients.clone(),
                self.settings.clone(),
                claim,
                profiles.clone(),
                hints.clone(),
            );
            let stop = cancel.clone();
            let task = tokio::spawn(async move { runner.run(stop).await });
            runners.insert(key, (task, cancel));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OutgoingSettings, ProfileId, DEFAULT_GRAPH_URL};
    use chrono::Utc;
    use url::Url;

    fn oauth_profile(protocol: Protocol) -> Profile {
        Profile {
            id: ProfileId(Uuid::nil()),
            name: "Contoso Online".to_owned(),
            server_type: ServerType::ExchangeOnline,
            protocol,
            ews_url: Url::parse("https://outlook.office365.com/EWS/Exchange.asmx").unwrap(),
            graph_url: Url::parse(DEFAULT_GRAPH_URL).unwrap(),
            auth: AuthMethod::OauthClientCredentials,
            password_scheme: PasswordScheme::Basic,
            username: None,
            password: None,
            oauth: None,
            use_impersonation: true,
            outgoing: OutgoingSettings::SameAsIncoming,
            process_emails_from: None,
            max_concurrent_connections: 10,
            min_polling_interval: Duration::from_secs(60),
            enabled: true,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn only_ews_profiles_stream_a_graph_profile_is_never_grouped() {
        let settings = StreamingSettings {
            enabled: true,
            ..StreamingSettings::default()
        };
        assert!(matches!(
            mode_for(&oauth_profile(Protocol::Ews), &settings),
            GroupMode::Impersonation { .. }
        ));
        assert_eq!(
            mode_for(&oauth_profile(Protocol::Graph), &settings),
            GroupMode::Off
        );
    }
}

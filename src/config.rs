//! Typed settings: a TOML file layered with `EXSYNC__SECTION__KEY` environment overrides.
//!
//! Owns loading, validating and redacting the daemon's configuration. Every key has a default
//! (listed with a comment in `config/exsync.example.toml`); unknown keys, wrong types and
//! out-of-range values are errors that name the key. Must not touch the database or network.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "config/exsync.toml";
/// Prefix of environment overrides: `EXSYNC__DATABASE__MAX_CONNECTIONS=20`.
pub const ENV_PREFIX: &str = "EXSYNC";
/// Separator between prefix, section and key in environment overrides.
pub const ENV_SEPARATOR: &str = "__";

/// Why a configuration could not be loaded; every variant names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` does not exist or cannot be read.
    #[error("cannot read configuration file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// Syntax error, unknown key or wrong type (the message names the key).
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A value of the right type but outside what exsync accepts.
    #[error("invalid configuration: key `{key}` = {value}: {reason}")]
    OutOfRange {
        /// Dotted key, e.g. `database.max_connections`.
        key: &'static str,
        /// The value as configured (never a secret).
        value: String,
        /// What is allowed.
        reason: String,
    },
}

/// All settings of one exsync process.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Postgres connection.
    pub database: DatabaseSettings,
    /// Logging.
    pub log: LogSettings,
    /// Outbound HTTP (EWS) client.
    pub http: HttpSettings,
    /// Who runs when.
    pub scheduler: SchedulerSettings,
    /// What one pass does.
    pub sync: SyncSettings,
    /// Credentials at rest.
    pub security: SecuritySettings,
    /// Health and metrics endpoints.
    pub server: ServerSettings,
    /// EWS streaming notifications (changes pushed by Exchange instead of polling).
    pub streaming: StreamingSettings,
    /// Microsoft Graph change notifications (Graph profiles; needs a public HTTPS endpoint).
    pub graph_notifications: GraphNotificationSettings,
}

/// `[graph_notifications]`: Microsoft Graph change notifications for Graph profiles. Graph
/// POSTs to `public_url` + `/graph/notifications` (and `/graph/lifecycle`), which the
/// operator's reverse proxy forwards to `[server] listen`; a notification makes the mailbox
/// due at once, delta stays the source of truth and polling continues at the usual interval.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphNotificationSettings {
    /// Subscribe Graph mailboxes to change notifications (off by default).
    pub enabled: bool,
    /// The public HTTPS base URL that reaches exsync's HTTP server (required when enabled),
    /// e.g. `https://exsync.contoso.com` or `https://gw.contoso.com/exsync`.
    pub public_url: Option<String>,
    /// How far ahead each subscription's expiry is set (at most 4,230 minutes, Graph's
    /// maximum for messages and events).
    #[serde(with = "duration_text")]
    pub lifetime: Duration,
    /// A subscription is renewed this long before it expires.
    #[serde(with = "duration_text")]
    pub renew_before: Duration,
    /// How often subscriptions are planned, created and renewed.
    #[serde(with = "duration_text")]
    pub plan_interval: Duration,
    /// First delay before a failed subscription is tried again (doubles up to `retry_max`).
    #[serde(with = "duration_text")]
    pub retry_initial: Duration,
    /// Longest delay before a failed subscription is tried again.
    #[serde(with = "duration_text")]
    pub retry_max: Duration,
    /// Larger notification bodies are refused (413).
    pub max_body_bytes: u64,
}

/// Graph's maximum lifetime of a message, event or contact subscription (GD-LIFE-TBL).
pub const GRAPH_MAX_SUBSCRIPTION_MINUTES: u64 = 4230;

impl Default for GraphNotificationSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            public_url: None,
            lifetime: Duration::from_secs(4200 * 60),
            renew_before: Duration::from_secs(12 * 3600),
            plan_interval: Duration::from_secs(30),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// `[streaming]`: EWS streaming notifications. A notification makes a mailbox's workloads due
/// at once; the pass still syncs from its stored state, and a slow safety poll still runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingSettings {
    /// Use streaming notifications where a profile allows it (its `streaming` key).
    pub enabled: bool,
    /// A streaming mailbox is still polled this often (a lost notification costs at most this).
    #[serde(with = "duration_text")]
    pub safety_poll_interval: Duration,
    /// How long one GetStreamingEvents connection is asked to stay open (whole minutes, 1..=30);
    /// it is reopened at once when Exchange closes it.
    #[serde(with = "duration_text")]
    pub connection_timeout: Duration,
    /// No envelope (not even a keep-alive) for this long: the connection is presumed dead.
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// How often mailboxes are (re)assigned to subscription groups and groups are claimed.
    #[serde(with = "duration_text")]
    pub plan_interval: Duration,
    /// Mailboxes per impersonation group, one GetStreamingEvents connection each (at most 200).
    pub group_size: u32,
    /// Open streaming connections per service account (Exchange's HangingConnectionLimit);
    /// unset: 10 for Exchange Online, 3 for Exchange Server, their documented defaults.
    pub max_connections_per_account: Option<u32>,
    /// First delay before reconnecting a dropped connection (doubles, with jitter).
    #[serde(with = "duration_text")]
    pub reconnect_initial: Duration,
    /// Longest delay before reconnecting.
    #[serde(with = "duration_text")]
    pub reconnect_max: Duration,
    /// Consecutive failed subscriptions of a mailbox before it falls back to polling.
    pub max_failures: u32,
    /// A mailbox that fell back to polling tries streaming again after this long.
    #[serde(with = "duration_text")]
    pub fallback_retry: Duration,
}

impl Default for StreamingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            safety_poll_interval: Duration::from_secs(30 * 60),
            connection_timeout: Duration::from_secs(30 * 60),
            idle_timeout: Duration::from_secs(5 * 60),
            plan_interval: Duration::from_secs(15),
            group_size: 200,
            max_connections_per_account: None,
            reconnect_initial: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(5 * 60),
            max_failures: 5,
            fallback_retry: Duration::from_secs(60 * 60),
        }
    }
}

/// `[database]`: the Postgres that holds profiles, mailboxes and synchronised data.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL (may carry a password, so it is a secret; `DATABASE_URL` overrides).
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing an operation.
    #[serde(with = "duration_text")]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/exsync"),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable, coloured when on a terminal.
    Pretty,
}

/// `[log]`: structured logs on standard error.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (default) or `pretty`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,exsync::ews=debug`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".to_owned(),
        }
    }
}

/// `[http]`: the EWS client's transport limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// TCP + TLS connect timeout.
    #[serde(with = "duration_text")]
    pub connect_timeout: Duration,
    /// Whole-request timeout (send + wait + read).
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Responses larger than this are rejected, not buffered.
    pub max_response_bytes: u64,
    /// Accept any TLS certificate (development against a test server only; warned loudly).
    pub accept_invalid_certs: bool,
    /// A PEM bundle of CA certificates trusted in addition to the operating system's store
    /// (an organisation's own CA), for EWS, NTLM and the OAuth token endpoint.
    pub ca_file: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            max_response_bytes: 64 * 1024 * 1024,
            accept_invalid_certs: false,
            ca_file: None,
        }
    }
}

/// `[scheduler]`: cadences, leases, backoff and shutdown.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Name of this process in leases (default: host name and process id).
    pub instance_id: Option<String>,
    /// How often the scheduler looks for due mailboxes.
    #[serde(with = "duration_text")]
    pub tick_interval: Duration,
    /// How long a claimed mailbox stays leased without renewal.
    #[serde(with = "duration_text")]
    pub lease_duration: Duration,
    /// Most mailboxes claimed per tick.
    pub claim_batch_size: u32,
    /// Incoming email: the usual interval after a pass.
    #[serde(with = "duration_text")]
    pub incoming_interval: Duration,
    /// Incoming email: shortest adaptive interval (busy mailboxes).
    #[serde(with = "duration_text")]
    pub incoming_min_interval: Duration,
    /// Incoming email: longest adaptive interval (quiet mailboxes).
    #[serde(with = "duration_text")]
    pub incoming_max_interval: Duration,
    /// Outgoing email: interval (a newly queued email also wakes the scheduler).
    #[serde(with = "duration_text")]
    pub outgoing_interval: Duration,
    /// Appointments, contacts, tasks: shortest interval.
    #[serde(with = "duration_text")]
    pub act_min_interval: Duration,
    /// Appointments, contacts, tasks: longest interval.
    #[serde(with = "duration_text")]
    pub act_max_interval: Duration,
    /// First retry delay after a transient failure (doubles, with jitter).
    #[serde(with = "duration_text")]
    pub backoff_initial: Duration,
    /// Longest retry delay after transient failures.
    #[serde(with = "duration_text")]
    pub backoff_max: Duration,
    /// Consecutive transient failures after which a workload is disabled with an error alert.
    pub max_consecutive_failures: u32,
    /// How often a workload disabled by an outage is retried anyway (self-healing).
    #[serde(with = "duration_text")]
    pub outage_retry_interval: Duration,
    /// In-flight passes get this long to finish after SIGTERM / SIGINT.
    #[serde(with = "duration_text")]
    pub shutdown_deadline: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            instance_id: None,
            tick_interval: Duration::from_secs(1),
            lease_duration: Duration::from_secs(300),
            claim_batch_size: 200,
            incoming_interval: Duration::from_secs(300),
            incoming_min_interval: Duration::from_secs(120),
            incoming_max_interval: Duration::from_secs(720),
            outgoing_interval: Duration::from_secs(60),
            act_min_interval: Duration::from_secs(300),
            act_max_interval: Duration::from_secs(900),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(1800),
            max_consecutive_failures: 10,
            outage_retry_interval: Duration::from_secs(3600),
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}

/// How Appointment / contact / task conflicts (changed on both sides) are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The side changed most recently wins (default).
    NewerWins,
    /// Exchange's version always wins.
    ExchangeWins,
    /// The database's version always wins.
    DatabaseWins,
}

/// `[sync]`: what one pass does.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Distinguished folders whose email is imported (default: inbox).
    pub tracked_folders: Vec<String>,
    /// MaxChangesReturned per SyncFolderItems call (1..=512).
    pub max_changes_per_request: u32,
    /// Items per GetItem call.
    pub get_item_batch_size: u32,
    /// Attempts before an outgoing email is marked failed.
    pub outgoing_max_attempts: u32,
    /// Minutes a send whose answer was lost waits for its Sent Items copy before it is
    /// marked failed with an `outgoing.unconfirmed` alert (never sent a second time).
    pub unconfirmed_send_alert_minutes: u32,
    /// Attempts before an item that fails to import is given up (with its error kept).
    pub item_max_attempts: u32,
    /// Conflict rule for appointments, contacts and tasks.
    pub conflict_policy: ConflictPolicy,
    /// The Outlook category that marks an item tracked (always imported, whatever the filter).
    pub tracking_category: String,
    /// Microsoft Graph profiles: the calendar window starts this many days before a delta
    /// round begins (Graph's calendar delta needs a window; EWS profiles ignore it).
    pub calendar_past_days: u32,
    /// Microsoft Graph profiles: the calendar window ends this many days after a delta round
    /// begins.
    pub calendar_future_days: u32,
    /// Microsoft Graph profiles: most messages Graph returns in one message delta round with
    /// a `$filter` (documented: 5,000). A filtered first round that returns this many is
    /// completed by listing the folder by received date. Lower only to test the listing.
    pub graph_filtered_delta_limit: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            tracked_folders: vec!["inbox".to_owned()],
            max_changes_per_request: 512,
            get_item_batch_size: 100,
            outgoing_max_attempts: 5,
            unconfirmed_send_alert_minutes: 15,
            item_max_attempts: 5,
            conflict_policy: ConflictPolicy::NewerWins,
            tracking_category: crate::domain::scope::DEFAULT_TRACKING_CATEGORY.to_owned(),
            calendar_past_days: 90,
            calendar_future_days: 365,
            graph_filtered_delta_limit: 5000,
        }
    }
}

/// `[security]`: where the credential encryption key comes from.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// File holding the 32-byte key (base64 or hex); see `exsync gen-key`.
    pub credential_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the key (base64 or hex).
    pub credential_key_env: Option<String>,
    /// A previous key still accepted for reading, during key rotation.
    pub previous_credential_key_file: Option<PathBuf>,
}

/// `[server]`: the HTTP endpoints for health and metrics.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address for `/healthz`, `/readyz`, `/metrics` (off when unset).
    pub listen: Option<SocketAddr>,
}

impl Settings {
    /// Load from `path` (or the default file when present) and the environment, then validate.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Same as [`Settings::load`] with an explicit environment (tests pass their own).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        let file = match path {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        if let Some(file) = &file {
            let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Unreadable {
                path: file.clone(),
                reason: e.to_string(),
            })?;
            builder = builder
                .add_source(config::File::from_str(&text, config::FileFormat::Toml).required(true));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        // DATABASE_URL beats the file but not EXSYNC__DATABASE__URL (overrides beat all sources,
        // so it is only applied when the more specific variable is absent).
        let specific = format!("{ENV_PREFIX}{ENV_SEPARATOR}DATABASE{ENV_SEPARATOR}URL");
        let database_url = env
            .iter()
            .find(|(k, _)| k == "DATABASE_URL")
            .filter(|_| !env.iter().any(|(k, _)| k.eq_ignore_ascii_case(&specific)));
        if let Some((_, url)) = database_url {
            builder = builder
                .set_override("database.url", url.clone())
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let overrides = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("sync.tracked_folders")
            .source(Some(env.into_iter().collect()));
        builder = builder.add_source(overrides);
        let built = builder.build().map_err(|e| describe(e, file.as_deref()))?;
        let settings: Settings = built
            .try_deserialize()
            .map_err(|e| describe(e, file.as_deref()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Check every value's range and the relations between values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.database;
        let url = d.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(out_of_range(
                "database.url",
                redact_url(url),
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        in_range("database.max_connections", d.max_connections, 1, 1000)?;
        duration_in_range("database.acquire_timeout", d.acquire_timeout, 1, 600)?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(out_of_range(
                "log.level",
                format!("{:?}", self.log.level),
                &format!("not a log filter ({e})"),
            ));
        }
        let h = &self.http;
        duration_in_range("http.connect_timeout", h.connect_timeout, 1, 300)?;
        duration_in_range("http.request_timeout", h.request_timeout, 1, 1800)?;
        in_range(
            "http.max_response_bytes",
            h.max_response_bytes,
            64 * 1024,
            1024 * 1024 * 1024,
        )?;
        if let Some(path) = &h.ca_file {
            check_ca_file(path)?;
        }
        let s = &self.scheduler;
        if let Some(id) = &s.instance_id {
            if id.trim().is_empty() || id.len() > 200 {
                return Err(out_of_range(
                    "scheduler.instance_id",
                    format!("{id:?}"),
                    "must be 1 to 200 characters",
                ));
            }
        }
        millis_in_range("scheduler.tick_interval", s.tick_interval, 10, 60_000)?;
        duration_in_range("scheduler.lease_duration", s.lease_duration, 10, 3600)?;
        in_range("scheduler.claim_batch_size", s.claim_batch_size, 1, 10_000)?;
        duration_in_range(
            "scheduler.incoming_interval",
            s.incoming_interval,
            1,
            86_400,
        )?;
        duration_in_range(
            "scheduler.incoming_min_interval",
            s.incoming_min_interval,
            1,
            86_400,
        )?;
        duration_in_range(
            "scheduler.incoming_max_interval",
            s.incoming_max_interval,
            1,
            86_400,
        )?;
        if !(s.incoming_min_interval <= s.incoming_interval
            && s.incoming_interval <= s.incoming_max_interval)
        {
            return Err(out_of_range(
                "scheduler.incoming_interval",
                duration_text::format(s.incoming_interval),
                "must lie between scheduler.incoming_min_interval and scheduler.incoming_max_interval",
            ));
        }
        duration_in_range(
            "scheduler.outgoing_interval",
            s.outgoing_interval,
            1,
            86_400,
        )?;
        duration_in_range("scheduler.act_min_interval", s.act_min_interval, 1, 86_400)?;
        duration_in_range("scheduler.act_max_interval", s.act_max_interval, 1, 86_400)?;
        if s.act_min_interval > s.act_max_interval {
            return Err(out_of_range(
                "scheduler.act_min_interval",
                duration_text::format(s.act_min_interval),
                "must not exceed scheduler.act_max_interval",
            ));
        }
        millis_in_range(
            "scheduler.backoff_initial",
            s.backoff_initial,
            10,
            3_600_000,
        )?;
        duration_in_range("scheduler.backoff_max", s.backoff_max, 1, 86_400)?;
        if s.backoff_initial > s.backoff_max {
            return Err(out_of_range(
                "scheduler.backoff_initial",
                duration_text::format(s.backoff_initial),
                "must not exceed scheduler.backoff_max",
            ));
        }
        in_range(
            "scheduler.max_consecutive_failures",
            s.max_consecutive_failures,
            1,
            1000,
        )?;
        duration_in_range(
            "scheduler.outage_retry_interval",
            s.outage_retry_interval,
            1,
            7 * 86_400,
        )?;
        millis_in_range(
            "scheduler.shutdown_deadline",
            s.shutdown_deadline,
            0,
            3_600_000,
        )?;
        let st = &self.streaming;
        duration_in_range(
            "streaming.safety_poll_interval",
            st.safety_poll_interval,
            1,
            7 * 86_400,
        )?;
        duration_in_range(
            "streaming.connection_timeout",
            st.connection_timeout,
            60,
            30 * 60,
        )?;
        millis_in_range("streaming.idle_timeout", st.idle_timeout, 100, 3_600_000)?;
        millis_in_range("streaming.plan_interval", st.plan_interval, 10, 3_600_000)?;
        in_range("streaming.group_size", st.group_size, 1, 200)?;
        if let Some(n) = st.max_connections_per_account {
            in_range("streaming.max_connections_per_account", n, 1, 1000)?;
        }
        millis_in_range(
            "streaming.reconnect_initial",
            st.reconnect_initial,
            10,
            3_600_000,
        )?;
        millis_in_range("streaming.reconnect_max", st.reconnect_max, 10, 86_400_000)?;
        in_range("streaming.max_failures", st.max_failures, 1, 1000)?;
        millis_in_range(
            "streaming.fallback_retry",
            st.fallback_retry,
            10,
            7 * 86_400_000,
        )?;
        self.validate_graph_notifications()?;
        let y = &self.sync;
        let category = y.tracking_category.trim();
        if category.is_empty() || category.chars().count() > 255 || category.contains(',') {
            return Err(out_of_range(
                "sync.tracking_category",
                format!("{:?}", y.tracking_category),
                "must be 1..=255 characters without a comma (an Outlook category name)",
            ));
        }
        if y.tracked_folders.is_empty() {
            return Err(out_of_range(
                "sync.tracked_folders",
                "[]".to_owned(),
                "must name at least one folder (e.g. \"inbox\")",
            ));
        }
        for folder in &y.tracked_folders {
            if !TRACKABLE_FOLDERS.contains(&folder.as_str()) {
                return Err(out_of_range(
                    "sync.tracked_folders",
                    format!("{folder:?}"),
                    &format!("not a trackable folder (one of {TRACKABLE_FOLDERS:?})"),
                ));
            }
        }
        in_range(
            "sync.max_changes_per_request",
            y.max_changes_per_request,
            1,
            512,
        )?;
        in_range("sync.get_item_batch_size", y.get_item_batch_size, 1, 512)?;
        in_range(
            "sync.outgoing_max_attempts",
            y.outgoing_max_attempts,
            1,
            100,
        )?;
        in_range(
            "sync.unconfirmed_send_alert_minutes",
            y.unconfirmed_send_alert_minutes,
            1,
            10080,
        )?;
        in_range("sync.item_max_attempts", y.item_max_attempts, 1, 100)?;
        in_range("sync.calendar_past_days", y.calendar_past_days, 0, 3650)?;
        in_range("sync.calendar_future_days", y.calendar_future_days, 1, 3650)?;
        in_range(
            "sync.graph_filtered_delta_limit",
            y.graph_filtered_delta_limit,
            1,
            5000,
        )?;
        let k = &self.security;
        if k.credential_key_file.is_some() && k.credential_key_env.is_some() {
            return Err(out_of_range(
                "security.credential_key_env",
                format!("{:?}", k.credential_key_env.as_deref().unwrap_or_default()),
                "set either security.credential_key_file or security.credential_key_env, not both",
            ));
        }
        if let Some(name) = &k.credential_key_env {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(out_of_range(
                    "security.credential_key_env",
                    format!("{name:?}"),
                    "must be an environment variable name (letters, digits, _)",
                ));
            }
        }
        Ok(())
    }

    fn validate_graph_notifications(&self) -> Result<(), ConfigError> {
        let n = &self.graph_notifications;
        duration_in_range(
            "graph_notifications.lifetime",
            n.lifetime,
            60,
            GRAPH_MAX_SUBSCRIPTION_MINUTES * 60,
        )?;
        if n.renew_before >= n.lifetime || n.renew_before.is_zero() {
            return Err(out_of_range(
                "graph_notifications.renew_before",
                duration_text::format(n.renew_before),
                "must be more than 0 and less than graph_notifications.lifetime",
            ));
        }
        millis_in_range(
            "graph_notifications.plan_interval",
            n.plan_interval,
            10,
            3_600_000,
        )?;
        millis_in_range(
            "graph_notifications.retry_initial",
            n.retry_initial,
            10,
            86_400_000,
        )?;
        millis_in_range(
            "graph_notifications.retry_max",
            n.retry_max,
            10,
            7 * 86_400_000,
        )?;
        in_range(
            "graph_notifications.max_body_bytes",
            n.max_body_bytes,
            16 * 1024,
            64 * 1024 * 1024,
        )?;
        if let Some(raw) = &n.public_url {
            let usable = url::Url::parse(raw).ok().filter(|u| {
                matches!(u.scheme(), "https" | "http")
                    && u.host_str().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if usable.is_none() {
                return Err(out_of_range(
                    "graph_notifications.public_url",
                    format!("{raw:?}"),
                    "must be an absolute https URL without query (the public base that reaches exsync's HTTP server)",
                ));
            }
        }
        if n.enabled {
            if n.public_url.is_none() {
                return Err(out_of_range(
                    "graph_notifications.public_url",
                    "(unset)".to_owned(),
                    "is required when graph_notifications.enabled = true (Microsoft Graph must reach exsync over public HTTPS)",
                ));
            }
            if self.server.listen.is_none() {
                return Err(out_of_range(
                    "server.listen",
                    "(unset)".to_owned(),
                    "is required when graph_notifications.enabled = true (notifications arrive at exsync's HTTP server)",
                ));
            }
        }
        Ok(())
    }

    /// The effective settings as TOML, with every secret redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// This process's name in leases: the configured one, else host name and process id.
    pub fn instance_id(&self) -> String {
        match &self.scheduler.instance_id {
            Some(id) => id.clone(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .or_else(|| std::env::var("HOSTNAME").ok())
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "exsync".to_owned());
                format!("{host}-{}", std::process::id())
            }
        }
    }
}

/// Folders whose email `sync.tracked_folders` may name.
pub const TRACKABLE_FOLDERS: &[&str] = &["inbox", "sentitems", "junkemail", "drafts"];

fn describe(error: config::ConfigError, file: Option<&Path>) -> ConfigError {
    let origin = file
        .map(|f| format!(" (file {})", f.display()))
        .unwrap_or_default();
    ConfigError::Invalid(format!("{error}{origin}"))
}

/// `http.ca_file` must be a readable PEM file holding at least one certificate.
fn check_ca_file(path: &Path) -> Result<(), ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let shown = format!("{:?}", path.display().to_string());
    let bytes = std::fs::read(path).map_err(|e| {
        out_of_range(
            "http.ca_file",
            shown.clone(),
            &format!("cannot be read ({e})"),
        )
    })?;
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        if cert.is_err() {
            return Err(out_of_range(
                "http.ca_file",
                shown,
                "is not a valid PEM file",
            ));
        }
        count += 1;
    }
    if count == 0 {
        return Err(out_of_range(
            "http.ca_file",
            shown,
            "holds no certificate (expected PEM blocks -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(())
}

fn out_of_range(key: &'static str, value: String, reason: &str) -> ConfigError {
    ConfigError::OutOfRange {
        key,
        value,
        reason: reason.to_owned(),
    }
}

fn in_range<T>(key: &'static str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(out_of_range(
            key,
            value.to_string(),
            &format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

fn duration_in_range(
    key: &'static str,
    value: Duration,
    min_secs: u64,
    max_secs: u64,
) -> Result<(), ConfigError> {
    millis_in_range(key, value, min_secs * 1000, max_secs * 1000)
}

fn millis_in_range(
    key: &'static str,
    value: Duration,
    min_ms: u64,
    max_ms: u64,
) -> Result<(), ConfigError> {
    let ms = value.as_millis();
    if ms < u128::from(min_ms) || ms > u128::from(max_ms) {
        return Err(out_of_range(
            key,
            duration_text::format(value),
            &format!(
                "must be between {} and {}",
                duration_text::format(Duration::from_millis(min_ms)),
                duration_text::format(Duration::from_millis(max_ms))
            ),
        ));
    }
    Ok(())
}

/// A database URL with its password replaced by `***`, safe to print.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Setting a password only fails for URLs that cannot have one.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

fn serialize_redacted_url<S: Serializer>(url: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url.expose_secret()))
}

/// Durations as text: `250ms`, `30s`, `5m`, `2h`, `1d`; a bare number means seconds.
pub mod duration_text {
    use super::*;

    /// Parse `250ms`, `30s`, `5m`, `2h`, `1d` or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (e.g. 250ms, 30s, 5m, 2h)"))?;
        let millis = match unit.trim() {
            "ms" => Some(amount),
            "" | "s" => amount.checked_mul(1000),
            "m" => amount.checked_mul(60_000),
            "h" => amount.checked_mul(3_600_000),
            "d" => amount.checked_mul(86_400_000),
            other => {
                return Err(format!(
                    "{text:?} has unknown unit {other:?} (use ms, s, m, h or d)"
                ))
            }
        };
        millis
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{text:?} is too long a duration"))
    }

    /// The shortest exact spelling of a duration.
    pub fn format(value: Duration) -> String {
        let ms = value.as_millis();
        if ms == 0 {
            "0s".to_owned()
        } else if ms.is_multiple_of(86_400_000) {
            format!("{}d", ms / 86_400_000)
        } else if ms.is_multiple_of(3_600_000) {
            format!("{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            format!("{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }

    /// Serde: write a duration as text.
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*value))
    }

    /// Serde: read a duration from text or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(secs) => Ok(Duration::from_secs(secs)),
            Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(
            duration_text::parse("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(duration_text::parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration_text::parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration_text::parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(duration_text::parse("45"), Ok(Duration::from_secs(45)));
        assert!(duration_text::parse("5 fortnights").is_err());
        assert!(duration_text::parse("").is_err());
    }

    #[test]
    fn durations_format_to_their_shortest_exact_spelling() {
        assert_eq!(duration_text::format(Duration::from_secs(300)), "5m");
        assert_eq!(duration_text::format(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn graph_notifications_need_a_public_url_and_the_http_server() {
        let mut s = Settings::default();
        s.graph_notifications.enabled = true;
        let error = s.validate().unwrap_err().to_string();
        assert!(error.contains("graph_notifications.public_url"), "{error}");
        s.graph_notifications.public_url = Some("https://exsync.contoso.test".into());
        let error = s.validate().unwrap_err().to_string();
        assert!(error.contains("server.listen"), "{error}");
        s.server.listen = Some("127.0.0.1:9090".parse().unwrap());
        assert!(s.validate().is_ok());
        s.graph_notifications.public_url = Some("exsync.contoso.test/x?y".into());
        assert!(s.validate().is_err(), "not an absolute URL");
        s.graph_notifications.public_url = Some("https://exsync.contoso.test".into());
        s.graph_notifications.lifetime = Duration::from_secs(4231 * 60);
        let error = s.validate().unwrap_err().to_string();
        assert!(error.contains("graph_notifications.lifetime"), "{error}");
        s.graph_notifications.lifetime = Duration::from_secs(3600);
        s.graph_notifications.renew_before = Duration::from_secs(3600);
        let error = s.validate().unwrap_err().to_string();
        assert!(
            error.contains("graph_notifications.renew_before"),
            "{error}"
        );
    }

    #[test]
    fn graph_notification_keys_have_environment_overrides() {
        let env = [
            ("EXSYNC__SERVER__LISTEN", "127.0.0.1:9090"),
            ("EXSYNC__GRAPH_NOTIFICATIONS__ENABLED", "true"),
            (
                "EXSYNC__GRAPH_NOTIFICATIONS__PUBLIC_URL",
                "https://exsync.contoso.test/sync",
            ),
            ("EXSYNC__GRAPH_NOTIFICATIONS__LIFETIME", "48h"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let s = Settings::load_with_env(None, env).unwrap();
        assert!(s.graph_notifications.enabled);
        assert_eq!(
            s.graph_notifications.public_url.as_deref(),
            Some("https://exsync.contoso.test/sync")
        );
        assert_eq!(
            s.graph_notifications.lifetime,
            Duration::from_secs(48 * 3600)
        );
    }

    #[test]
    fn redacted_url_hides_only_the_password() {
        let shown = redact_url("postgres://app:hunter2@db.example:5432/exsync");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("app:***@db.example"));
    }
}

//! A test world: a fresh database (from `sqlx::test`), the fake Exchange on a loopback port,
//! and an engine wired like `exsync run`, plus helpers that speak the fake's `/_fake/` API.

#![allow(dead_code)]

use exsync::app::App;
use exsync::config::Settings;
use exsync::crypto::{CredentialCipher, CredentialKey};
use exsync::store::Store;
use exsync::sync::{PassSummary, SyncEngine};
use fake_exchange::{FakeConfig, FakeExchange};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Every test's logs (exsync at debug, payload logging included where a mailbox enables it)
/// go as JSON lines to `$CARGO_TARGET_TMPDIR/test-logs/it-<pid>.jsonl`; `scripts/test.sh`
/// scans them for secrets after the suite (`scripts/scan-logs.sh`).
pub fn capture_suite_logs() {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let file = std::fs::File::create(dir.join(format!("it-{}.jsonl", std::process::id())))
            .expect("log file");
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("exsync=debug,warn"))
            .with(exsync::telemetry::json_layer(std::sync::Mutex::new(file)));
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// An HTTP client for the fake's `/_fake/` API that trusts its certificate or private CA.
fn control_client(fake: &FakeExchange) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = fake.ca_certificate_pem().or(fake.certificate_pem()) {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(pem.as_bytes()).expect("fake certificate"),
        );
    }
    builder.build().expect("control client")
}

/// Where the suite's fakes record the EWS traffic (exsync's requests and their answers) that
/// `scripts/check-traffic.sh` validates with `check-soap` after the suite:
/// `$EXSYNC_FAKE_TRAFFIC_DIR` (set by `scripts/test.sh`), else `<target>/tmp/ews-traffic`.
pub fn traffic_dir() -> std::path::PathBuf {
    std::env::var_os(fake_exchange::TRAFFIC_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ews-traffic"))
}

/// A fake Exchange configuration that records its traffic into [`traffic_dir`].
pub fn recording_fake() -> FakeConfig {
    FakeConfig {
        traffic_dir: Some(traffic_dir()),
        ..FakeConfig::default()
    }
}

/// Settings tuned so tests run in seconds: short ticks, backoffs and slow retries.
pub fn fast_settings() -> Settings {
    let mut s = Settings::default();
    s.scheduler.tick_interval = Duration::from_millis(50);
    s.scheduler.lease_duration = Duration::from_secs(30);
    s.scheduler.backoff_initial = Duration::from_millis(50);
    s.scheduler.backoff_max = Duration::from_millis(200);
    s.scheduler.outage_retry_interval = Duration::from_secs(2);
    s.scheduler.shutdown_deadline = Duration::from_secs(10);
    s.http.request_timeout = Duration::from_secs(10);
    s.sync.max_changes_per_request = 10;
    s.sync.get_item_batch_size = 7;
    s
}

/// Database + fake Exchange + engine.
pub struct World {
    /// The test's database.
    pub store: Store,
    /// The cipher secrets are written with.
    pub cipher: CredentialCipher,
    /// The fake Exchange.
    pub fake: FakeExchange,
    /// Settings the engine runs with.
    pub settings: Settings,
    /// The engine.
    pub engine: Arc<SyncEngine>,
    /// A key (base64) equal to the cipher's, for building more apps.
    pub key_text: String,
    http: reqwest::Client,
}

impl World {
    /// A world with default fast settings.
    pub async fn new(pool: PgPool) -> World {
        World::with_settings(pool, fast_settings()).await
    }

    /// A world with the given settings.
    pub async fn with_settings(pool: PgPool, settings: Settings) -> World {
        World::with_fake(pool, settings, FakeConfig::default()).await
    }

    /// A world whose fake Exchange starts with `config` (TLS, certificates, faults); the
    /// control API client trusts the fake's certificate (or its private CA).
    pub async fn with_fake(pool: PgPool, settings: Settings, config: FakeConfig) -> World {
        capture_suite_logs();
        let traffic_dir = config.traffic_dir.clone().or_else(|| Some(traffic_dir()));
        let fake = FakeExchange::start(FakeConfig {
            traffic_dir,
            ..config
        })
        .await
        .expect("start the fake Exchange");
        let store = Store::from_pool(pool);
        store.migrate().await.expect("migrate");
        let key = CredentialKey::generate();
        let key_text = {
            use secrecy::ExposeSecret;
            key.to_base64().expose_secret().to_owned()
        };
        let cipher = CredentialCipher::new(CredentialKey::parse(&key_text, "test").expect("key"));
        let engine = App::build_with(
            settings.clone(),
            store.clone(),
            CredentialCipher::new(CredentialKey::parse(&key_text, "test").expect("key")),
        )
        .expect("build app")
        .engine();
        let http = control_client(&fake);
        World {
            store,
            cipher,
            fake,
            settings,
            engine,
            key_text,
            http,
        }
    }

    /// A fresh cipher with the same key (App takes ownership of one).
    pub fn cipher_copy(&self) -> CredentialCipher {
        CredentialCipher::new(CredentialKey::parse(&self.key_text, "test").expect("key"))
    }

    /// An app over this world's database and fake (for scheduler tests).
    pub fn app(&self, settings: Settings) -> App {
        App::build_with(settings, self.store.clone(), self.cipher_copy()).expect("build app")
    }

    /// Apply an apply file's text; `{ews}` is replaced by the fake's EWS URL.
    pub async fn apply(&self, text: &str) {
        let text = text
            .replace("{ews}", &self.fake.ews_url())
            .replace("{token}", &self.fake.token_url());
        exsync::operator::apply::apply_text(
            &self.store,
            &self.cipher,
            &text,
            std::path::Path::new("test.toml"),
            std::path::Path::new("."),
            false,
        )
        .await
        .expect("apply");
    }

    /// Any request to the fake's control API (asserts success; JSON answer or null).
    pub async fn fake(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{}", self.fake.base_url(), path);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("reach /_fake/");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path} → {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// POST to the fake's control API.
    pub async fn fake_post(&self, path: &str, body: Value) -> Value {
        self.fake(reqwest::Method::POST, path, Some(body)).await
    }

    /// PUT to the fake's control API.
    pub async fn fake_put(&self, path: &str, body: Value) -> Value {
        self.fake(reqwest::Method::PUT, path, Some(body)).await
    }

    /// GET from the fake's control API.
    pub async fn fake_get(&self, path: &str) -> Value {
        self.fake(reqwest::Method::GET, path, None).await
    }

    /// A mailbox with its own login in the fake.
    pub async fn mailbox(&self, address: &str, username: &str, password: &str) {
        self.fake_post(
            "/_fake/accounts",
            json!({"address": address, "username": username, "password": password}),
        )
        .await;
    }

    /// A service account (no mailbox) allowed to impersonate `mailboxes`.
    pub async fn service_account(&self, username: &str, password: &str, mailboxes: &[&str]) {
        self.fake_post(
            "/_fake/accounts",
            json!({"username": username, "password": password}),
        )
        .await;
        self.rights(username, mailboxes, &[]).await;
    }

    /// Replace an account's impersonation and delegate rights.
    pub async fn rights(&self, username: &str, impersonate: &[&str], delegate: &[&str]) {
        self.fake_put(
            "/_fake/rights",
            json!({"account": username, "impersonate": impersonate, "delegate": delegate}),
        )
        .await;
    }

    /// Deliver `count` generated messages to a mailbox's inbox, received at `received`.
    pub async fn deliver(&self, address: &str, count: u32, received: &str) -> Value {
        self.fake_post(
            &format!("/_fake/mailboxes/{address}/items"),
            json!({"folder": "inbox", "count": count, "received": received}),
        )
        .await
    }

    /// Create items in another folder of a mailbox (calendar, contacts, tasks, …).
    pub async fn create_items(&self, address: &str, folder: &str, count: u32) -> Value {
        self.fake_post(
            &format!("/_fake/mailboxes/{address}/items"),
            json!({"folder": folder, "count": count}),
        )
        .await
    }

    /// Set fault injection (a partial update).
    pub async fn faults(&self, faults: Value) {
        self.fake_put("/_fake/faults", faults).await;
    }

    /// The fake's statistics.
    pub async fn stats(&self) -> Value {
        self.fake_get("/_fake/stats").await
    }

    /// Item count of one folder of a mailbox, as the fake reports it.
    pub async fn folder_count(&self, address: &str, folder: &str) -> u64 {
        self.stats().await["mailboxes"][address][folder]
            .as_u64()
            .unwrap_or(0)
    }

    /// Run one pass over a mailbox now (all configured workloads).
    pub async fn pass(&self, address: &str) -> PassSummary {
        self.engine
            .run_mailbox_now(address, "test")
            .await
            .expect("run a pass")
            .expect("mailbox not leased elsewhere")
    }

    /// A number from one SQL query, or the database's error (for observers that must ride
    /// out a simulated database restart).
    pub async fn try_count(&self, sql: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(self.store.pool())
            .await
    }

    /// A number from one SQL query.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(self.store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Open alerts of a mailbox or profile with `code`: (level, occurrences).
    pub async fn open_alerts(&self, code: &str) -> Vec<(String, i32)> {
        sqlx::query_as(
            "SELECT level, occurrences FROM alerts WHERE code = $1 AND resolved_at IS NULL",
        )
        .bind(code)
        .fetch_all(self.store.pool())
        .await
        .expect("alerts")
    }
}

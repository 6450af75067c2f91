//! `exsync demo`: the one command that shows a newcomer the daemon at work.
//!
//! Starts the fake Exchange in-process on loopback, seeds an organisation through its
//! `/_fake/` API (three profiles: impersonation, per-mailbox credentials, delegation; dozens
//! of mailboxes with email, appointments, contacts and tasks), applies the matching rows to
//! the configured database (created if missing; earlier demo rows replaced), queues some
//! outgoing mail, runs the real scheduler and prints progress and a summary.

use crate::app::{App, AppError};
use crate::config::Settings;
use crate::crypto::{CredentialCipher, CredentialKey, CryptoError};
use crate::domain::Workload;
use crate::store::{self, Store, StoreError};
use crate::sync::pass::Outcome;
use crate::sync::PassSummary;
use chrono::{Duration as Days, Utc};
use fake_exchange::{FakeConfig, FakeError, FakeExchange};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The fake Exchange failed to start or to take the seed.
    #[error("fake Exchange: {0}")]
    Fake(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credential key could not be made or read.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The service could not be built or failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The demo rows could not be applied.
    #[error("applying the demo organisation failed: {0}")]
    Apply(String),
    /// Not every mailbox completed a pass in time.
    #[error("not every mailbox completed a pass within {0:?} ({1} of {2} did)")]
    Timeout(Duration, usize, usize),
    /// A local file could not be written.
    #[error("cannot write {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl From<FakeError> for DemoError {
    fn from(e: FakeError) -> Self {
        DemoError::Fake(e.to_string())
    }
}

/// Demo options from the command line.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Exit after every mailbox completed a full pass.
    pub once: bool,
    /// Mailboxes in each of the four profiles.
    pub mailboxes_per_profile: usize,
    /// Give up (`--once`) after this long.
    pub timeout: Duration,
}

struct DemoProfile {
    name: &'static str,
    domain: &'static str,
    auth: &'static str,
    impersonation: bool,
    act: bool,
    limit: u32,
}

/// The Exchange Online profile's application (app-only OAuth over Microsoft Graph).
const GRAPH_APP: (&str, &str) = ("demo-graph-app", "Demo-Graph-Secret1!");

const PROFILES: [DemoProfile; 4] = [
    DemoProfile {
        name: "Demo Contoso (impersonation)",
        domain: "contoso.demo",
        auth: "profile_credentials",
        impersonation: true,
        act: true,
        limit: 4,
    },
    DemoProfile {
        name: "Demo Fabrikam (own credentials)",
        domain: "fabrikam.demo",
        auth: "mailbox_credentials",
        impersonation: false,
        act: false,
        limit: 3,
    },
    DemoProfile {
        name: "Demo Tailspin (delegation)",
        domain: "tailspin.demo",
        auth: "profile_credentials",
        impersonation: false,
        act: true,
        limit: 2,
    },
    DemoProfile {
        name: "Demo Northwind (Exchange Online, Graph)",
        domain: "northwind.demo",
        auth: "oauth_client_credentials",
        impersonation: true,
        act: true,
        limit: 4,
    },
];

const FIRST_NAMES: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil",
];

fn address(index: usize, domain: &str) -> String {
    let name = FIRST_NAMES[index % FIRST_NAMES.len()];
    if index < FIRST_NAMES.len() {
        format!("{name}@{domain}")
    } else {
        format!("{name}{}@{domain}", index / FIRST_NAMES.len())
    }
}

/// Run the demo; returns when `--once` is done or on Ctrl-C.
pub async fn run(mut settings: Settings, options: DemoOptions) -> Result<(), DemoError> {
    let started = Instant::now();
    store::ensure_database_exists(&settings.database).await?;
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    let cipher = demo_cipher(&settings)?;
    let fake = FakeExchange::start(FakeConfig {
        graph: true,
        ..FakeConfig::default()
    })
    .await?;
    println!("fake Exchange listening at {}", fake.ews_url());
    let graph_url = fake.graph_url().unwrap_or_default();
    println!("fake Microsoft Graph listening at {graph_url}");
    let http = reqwest::Client::new();
    let mailboxes = seed(&http, &fake, options.mailboxes_per_profile).await?;
    crate::store::demo::wipe_demo_rows(&store).await?;
    let text = apply_text(
        &fake.ews_url(),
        &graph_url,
        &fake.token_url(),
        options.mailboxes_per_profile,
    );
    crate::operator::apply::apply_text(
        &store,
        &cipher,
        &text,
        Path::new("demo.toml"),
        Path::new("."),
        false,
    )
    .await
    .map_err(|e| DemoError::Apply(e.to_string()))?;
    let queued = enqueue(&store, options.mailboxes_per_profile).await?;
    println!(
        "seeded {} mailboxes in {} profiles (three on EWS, one on Microsoft Graph) and queued {queued} outgoing emails; syncing…\n",
        mailboxes.len(),
        PROFILES.len()
    );

    // The demo's scheduler reacts fast so the whole organisation finishes in seconds.
    settings.scheduler.tick_interval = Duration::from_millis(100);
    let app = App::build_with(settings, store.clone(), cipher)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = app.with_events(tx);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let ctrl_c = shutdown.clone();
    tokio::spawn(async move {
        crate::app::shutdown_signal().await;
        ctrl_c.cancel();
    });

    let profile_of: HashMap<String, &'static str> = mailboxes.iter().cloned().collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut totals: BTreeMap<&'static str, Totals> = BTreeMap::new();
    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let mut timed_out = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = &mut deadline, if options.once => { timed_out = true; break; }
            summary = rx.recv() => {
                let Some(summary) = summary else { break };
                let profile = profile_of.get(&summary.address).copied().unwrap_or("?");
                print_pass(started, profile, &summary);
                totals.entry(profile).or_default().add(&summary);
                if !summary.lease_lost {
                    done.insert(summary.address.clone());
                }
                if options.once && done.len() == mailboxes.len() {
                    break;
                }
            }
        }
    }
    shutdown.cancel();
    if let Ok(Err(e)) = running.await {
        return Err(e.into());
    }
    let stats = http
        .get(format!("{}/_fake/stats", fake.base_url()))
        .send()
        .await
        .ok();
    let stats: Value = match stats {
        Some(response) => response.json().await.unwrap_or(Value::Null),
        None => Value::Null,
    };
    let graph_stats: Value = match http
        .get(format!("{}/_fake/graph/stats", fake.base_url()))
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    print_summary(&store, &totals, &stats, &graph_stats).await;
    fake.shutdown().await;
    if timed_out {
        return Err(DemoError::Timeout(
            options.timeout,
            done.len(),
            mailboxes.len(),
        ));
    }
    if options.once {
        println!(
            "\nevery mailbox completed a full pass in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The configured credential key, else one kept in `.exsync-demo/credential.key`.
fn demo_cipher(settings: &Settings) -> Result<CredentialCipher, DemoError> {
    let security = &settings.security;
    if security.credential_key_file.is_some() || security.credential_key_env.is_some() {
        return Ok(CredentialCipher::from_settings(security)?);
    }
    let dir = PathBuf::from(".exsync-demo");
    let path = dir.join("credential.key");
    if !path.exists() {
        let file_error = |reason: std::io::Error| DemoError::File {
            path: path.clone(),
            reason: reason.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(file_error)?;
        let key = CredentialKey::generate();
        use secrecy::ExposeSecret;
        write_private(&path, key.to_base64().expose_secret()).map_err(file_error)?;
    }
    Ok(CredentialCipher::new(CredentialKey::from_file(&path)?))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

async fn fake_post(http: &reqwest::Client, url: String, body: Value) -> Result<(), DemoError> {
    let response = http
        .request(reqwest::Method::POST, &url)
        .json(&body)
        .send()
        .await
        .map_err(|e| DemoError::Fake(e.to_string()))?;
    if !response.status().is_success() {
        return Err(DemoError::Fake(format!(
            "{url}: HTTP {}",
            response.status()
        )));
    }
    Ok(())
}

async fn fake_put(http: &reqwest::Client, url: String, body: Value) -> Result<(), DemoError> {
    let response = http
        .put(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| DemoError::Fake(e.to_string()))?;
    if !response.status().is_success() {
        return Err(DemoError::Fake(format!(
            "{url}: HTTP {}",
            response.status()
        )));
    }
    Ok(())
}

/// Seed the fake: accounts, mailboxes, rights and items. Returns (address, profile name).
async fn seed(
    http: &reqwest::Client,
    fake: &FakeExchange,
    per_profile: usize,
) -> Result<Vec<(String, &'static str)>, DemoError> {
    let base = fake.base_url();
    let now = Utc::now();
    let mut mailboxes = Vec::new();
    for (p, profile) in PROFILES.iter().enumerate() {
        let mut addresses = Vec::new();
        for i in 0..per_profile {
            let address = address(i, profile.domain);
            let user = address.replace('@', ".");
            fake_post(
                http,
                format!("{base}/_fake/accounts"),
                json!({"address": address, "username": user, "password": format!("{user}-Demo1!")}),
            )
            .await?;
            let items = format!("{base}/_fake/mailboxes/{address}/items");
            // Old mail (before the Process-From date: never imported) and recent mail.
            let old = (now - Days::days(120)).to_rfc3339();
            fake_post(
                http,
                items.clone(),
                json!({"folder": "inbox", "count": 3, "received": old}),
            )
            .await?;
            for day in 1..=4 {
                let received = (now - Days::days(day)).to_rfc3339();
                fake_post(
                    http,
                    items.clone(),
                    json!({"folder": "inbox", "count": 5 + (i + p) % 4, "received": received}),
                )
                .await?;
            }
            // Items the user tracked (the tracking category) come in; the others stay private
            // (act_scope = "tracked", the default).
            let tracked = crate::domain::scope::DEFAULT_TRACKING_CATEGORY;
            for (folder, count) in [("calendar", 4), ("contacts", 5), ("tasks", 3)] {
                fake_post(
                    http,
                    items.clone(),
                    json!({"folder": folder, "count": count, "categories": [tracked]}),
                )
                .await?;
                fake_post(
                    http,
                    items.clone(),
                    json!({"folder": folder, "count": 2, "subject": "Private"}),
                )
                .await?;
            }
            mailboxes.push((address.clone(), profile.name));
            addresses.push(address);
        }
        if profile.auth == "profile_credentials" {
            let account = format!("svc-{}", profile.domain.replace('.', "-"));
            fake_post(
                http,
                format!("{base}/_fake/accounts"),
                json!({"username": account, "password": "Service-Demo1!"}),
            )
            .await?;
            let (impersonate, delegate) = if profile.impersonation {
                (addresses.clone(), Vec::new())
            } else {
                (Vec::new(), addresses.clone())
            };
            fake_put(
                http,
                format!("{base}/_fake/rights"),
                // A delegate sends as the mailbox: Full Access alone does not allow that.
                json!({"account": account, "impersonate": impersonate, "send_as": delegate, "delegate": delegate}),
            )
            .await?;
        }
    }
    // The Graph profile's application, allowed to every mailbox (app-only OAuth).
    fake_post(
        http,
        format!("{base}/_fake/apps"),
        json!({"client_id": GRAPH_APP.0, "client_secret": GRAPH_APP.1}),
    )
    .await?;
    // One mailbox's password has expired: its alert shows how exsync reports that.
    if per_profile > 1 {
        let expired = address(per_profile - 1, PROFILES[1].domain).replace('@', ".");
        fake_post(
            http,
            format!("{base}/_fake/accounts/{expired}/expire"),
            json!({}),
        )
        .await?;
    }
    Ok(mailboxes)
}

/// The demo organisation as an apply file.
fn apply_text(ews_url: &str, graph_url: &str, token_url: &str, per_profile: usize) -> String {
    let process_from =
        (Utc::now() - Days::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut text = String::new();
    for profile in &PROFILES {
        if profile.auth == "oauth_client_credentials" {
            text.push_str(&format!(
                "[[profile]]\nname = \"{}\"\nserver_type = \"exchange_online\"\nprotocol = \"graph\"\ngraph_url = \"{graph_url}\"\nauth = \"oauth_client_credentials\"\noauth_client_id = \"{}\"\noauth_client_secret = \"{}\"\noauth_token_url = \"{token_url}\"\nmax_concurrent_connections = {}\nprocess_emails_from = {process_from}\n",
                profile.name, GRAPH_APP.0, GRAPH_APP.1, profile.limit
            ));
        } else {
            text.push_str(&format!(
                "[[profile]]\nname = \"{}\"\nserver_type = \"exchange_server\"\news_url = \"{ews_url}\"\nauth = \"{}\"\nuse_impersonation = {}\nmax_concurrent_connections = {}\nprocess_emails_from = {process_from}\n",
                profile.name, profile.auth, profile.impersonation, profile.limit
            ));
        }
        if profile.auth == "profile_credentials" {
            text.push_str(&format!(
                "username = \"svc-{}\"\npassword = \"Service-Demo1!\"\n",
                profile.domain.replace('.', "-")
            ));
        }
        text.push('\n');
        for i in 0..per_profile {
            let address = address(i, profile.domain);
            text.push_str(&format!(
                "[[mailbox]]\naddress = \"{address}\"\nprofile = \"{}\"\napproval = \"approved\"\nact = \"{}\"\n",
                profile.name,
                if profile.act { "server_side_sync" } else { "none" }
            ));
            if profile.auth == "mailbox_credentials" {
                let user = address.replace('@', ".");
                text.push_str(&format!(
                    "allow_credentials_for_email_processing = true\nusername = \"{user}\"\npassword = \"{user}-Demo1!\"\n"
                ));
            }
            text.push('\n');
        }
    }
    text
}

/// Queue one email from every other Contoso mailbox to a colleague.
async fn enqueue(store: &Store, per_profile: usize) -> Result<usize, StoreError> {
    let mut queued = 0;
    for i in (0..per_profile).step_by(2) {
        let from = address(i, PROFILES[0].domain);
        let to = address((i + 1) % per_profile.max(1), PROFILES[0].domain);
        store::outgoing::enqueue(
            store,
            &from,
            &[to],
            &[],
            "Welcome to exsync",
            "This message was queued in the database and sent through Exchange by exsync.",
        )
        .await?;
        queued += 1;
    }
    Ok(queued)
}

#[derive(Default)]
struct Totals {
    passes: usize,
    imported: usize,
    skipped: usize,
    sent: usize,
    act: usize,
    failures: usize,
}

impl Totals {
    fn add(&mut self, summary: &PassSummary) {
        self.passes += 1;
        for report in &summary.reports {
            match report.workload {
                Workload::Incoming => {
                    self.imported += report.summary.processed;
                    self.skipped += report.summary.skipped;
                }
                Workload::Outgoing => self.sent += report.summary.processed,
                Workload::Act => self.act += report.summary.processed,
            }
            if !matches!(report.outcome, Outcome::Success) {
                self.failures += 1;
            }
        }
    }
}

fn print_pass(started: Instant, profile: &str, summary: &PassSummary) {
    let mut parts = Vec::new();
    for report in &summary.reports {
        let text = match &report.outcome {
            Outcome::Success => match report.workload {
                Workload::Incoming if report.summary.skipped > 0 => format!(
                    "incoming ✓ {} imported ({} older than Process-From skipped)",
                    report.summary.processed, report.summary.skipped
                ),
                Workload::Incoming => format!("incoming ✓ {} imported", report.summary.processed),
                Workload::Outgoing => format!("outgoing ✓ {} sent", report.summary.processed),
                Workload::Act if report.summary.skipped > 0 => format!(
                    "act ✓ {} written ({} untracked left out)",
                    report.summary.processed, report.summary.skipped
                ),
                Workload::Act => format!("act ✓ {} written", report.summary.processed),
            },
            Outcome::Refused { code, .. } => format!("{} ⚠ {code}", report.workload),
            Outcome::Failed { code, .. } => format!("{} ✗ {code}", report.workload),
        };
        parts.push(text);
    }
    println!(
        "[{:>5.1}s] {:<32} {:<24} {}",
        started.elapsed().as_secs_f64(),
        profile,
        summary.address,
        parts.join(" · ")
    );
}

async fn print_summary(
    store: &Store,
    totals: &BTreeMap<&'static str, Totals>,
    stats: &Value,
    graph_stats: &Value,
) {
    println!("\nsummary");
    println!(
        "{:<40} {:>7} {:>9} {:>8} {:>5} {:>5} {:>9}",
        "PROFILE", "PASSES", "IMPORTED", "SKIPPED", "SENT", "ACT", "PROBLEMS"
    );
    for (profile, t) in totals {
        println!(
            "{:<40} {:>7} {:>9} {:>8} {:>5} {:>5} {:>9}",
            profile, t.passes, t.imported, t.skipped, t.sent, t.act, t.failures
        );
    }
    let alerts = crate::store::demo::open_alert_counts(store)
        .await
        .unwrap_or_default();
    if !alerts.is_empty() {
        println!("\nopen alerts (see `exsync status` and `exsync explain ADDRESS`):");
        for (level, code, count) in alerts {
            println!("  {level:<8} {code:<32} ×{count}");
        }
    }
    if let Some(accounts) = stats.get("accounts").and_then(Value::as_object) {
        println!("\npeak concurrent EWS requests per service account (limit = the profile's MaximumConcurrentConnections):");
        for profile in PROFILES.iter().filter(|p| p.auth == "profile_credentials") {
            let account = format!("svc-{}", profile.domain.replace('.', "-"));
            let peak = accounts
                .get(&account)
                .and_then(|a| a.get("peak_concurrent_requests"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            println!("  {account:<24} {peak} of {}", profile.limit);
        }
    }
    if let Some(mailboxes) = graph_stats
        .get("apps")
        .and_then(|a| a.get(GRAPH_APP.0))
        .and_then(Value::as_object)
    {
        let peak = mailboxes
            .values()
            .filter_map(|m| m.get("peak_in_flight").and_then(Value::as_u64))
            .max()
            .unwrap_or(0);
        let throttled: u64 = mailboxes
            .values()
            .filter_map(|m| m.get("throttled").and_then(Value::as_u64))
            .sum();
        println!(
            "\nMicrosoft Graph ({}): peak requests in flight per mailbox {peak} of 4, {throttled} throttled",
            GRAPH_APP.0
        );
    }
}

//! `exsync bench` rules: a tiny scenario, run through the same code path as the command,
//! yields one JSON object with every contract field and sane values (never a timing check).

use exsync::config::Settings;
use exsync::operator::bench::{self, BenchOptions, Scenario};
use secrecy::SecretString;
use serde_json::Value;

fn tiny() -> BenchOptions {
    let mut options = BenchOptions::preset(Scenario::Small);
    options.mailboxes = 3;
    options.items = 20;
    options.profiles = 1;
    options.limit = 2;
    options.sends = 6;
    options
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    settings.database.url = SecretString::from(url);
    settings
}

async fn database_exists(settings: &Settings, name: &str) -> bool {
    let store = exsync::store::Store::connect(&settings.database)
        .await
        .expect("database");
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(store.pool())
        .await
        .expect("query");
    store.pool().close().await;
    exists
}

#[tokio::test]
async fn tiny_scenario_reports_every_contract_field_and_drops_its_database() {
    let settings = settings();
    let report = bench::run(settings.clone(), tiny())
        .await
        .expect("bench run");
    let json: Value =
        serde_json::from_str(&serde_json::to_string(&report).expect("json")).expect("object");
    let object = json.as_object().expect("one JSON object");

    for field in [
        "import_items_per_s",
        "idle_cycle_s",
        "cpu_ms_per_pass",
        "sends_per_s",
        "peak_rss_mb",
        "utilisation",
    ] {
        let value = object[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} is a number"));
        assert!(value.is_finite() && value >= 0.0, "{field} = {value}");
    }
    assert!(object["limit_exceeded"].is_boolean());
    for (parameter, expected) in [
        ("mailboxes", 3),
        ("items", 20),
        ("profiles", 1),
        ("limit", 2),
    ] {
        assert_eq!(object[parameter], expected, "{parameter}");
    }
    assert_eq!(object["scenario"], "small");
    assert_eq!(object["protocol"], "ews", "EWS is the default protocol");

    assert_eq!(
        object["items_imported"],
        3 * 20,
        "every seeded item imported"
    );
    assert_eq!(object["sent"], 6, "every queued email sent");
    assert_eq!(
        object["idle_passes"].as_u64(),
        Some(3),
        "one no-change pass per mailbox"
    );
    assert_eq!(object["failed_passes"], 0);
    assert_eq!(object["limit_exceeded"], false);
    let utilisation = object["utilisation"].as_f64().unwrap_or(-1.0);
    assert!(
        utilisation > 0.0 && utilisation <= 1.0,
        "utilisation {utilisation}"
    );
    let requests = object["request_utilisation"].as_f64().unwrap_or(-1.0);
    assert!(
        requests > 0.0 && requests <= 1.0,
        "request utilisation {requests}"
    );
    let permits = object["permit_utilisation"].as_f64().unwrap_or(-1.0);
    assert!(
        permits > 0.0 && permits <= 1.0,
        "permit utilisation {permits}"
    );
    assert!(object["peak_concurrent_requests"].as_u64().unwrap_or(0) <= 2);
    assert!(object["peak_rss_mb"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(object["rows_written"].as_i64().unwrap_or(0) > 0);

    let database = object["database"].as_str().expect("database name");
    assert!(database.starts_with("exsync_bench_"), "{database}");
    assert!(
        !database_exists(&settings, database).await,
        "the throw-away database is dropped"
    );
}

#[tokio::test]
async fn the_graph_protocol_reports_the_same_figures_over_graph_profiles() {
    let settings = settings();
    let mut options = tiny();
    options.protocol = bench::Protocol::Graph;
    let report = bench::run(settings.clone(), options)
        .await
        .expect("bench run over Graph");
    let json: Value =
        serde_json::from_str(&serde_json::to_string(&report).expect("json")).expect("object");
    let object = json.as_object().expect("one JSON object");

    assert_eq!(object["protocol"], "graph");
    for field in [
        "import_items_per_s",
        "idle_cycle_s",
        "cpu_ms_per_pass",
        "sends_per_s",
        "peak_rss_mb",
        "utilisation",
        "request_utilisation",
        "permit_utilisation",
    ] {
        let value = object[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} is a number"));
        assert!(value.is_finite() && value >= 0.0, "{field} = {value}");
    }
    assert_eq!(
        object["items_imported"],
        3 * 20,
        "every seeded item imported through message delta"
    );
    assert_eq!(object["sent"], 6, "every queued email sent through Graph");
    assert_eq!(object["idle_passes"].as_u64(), Some(3));
    assert_eq!(object["failed_passes"], 0);
    assert_eq!(object["limit_exceeded"], false);
    let peak = object["peak_concurrent_requests"].as_u64().unwrap_or(0);
    assert!(
        (1..=2).contains(&peak),
        "the application's requests were counted and kept within the profile's 2: {peak}"
    );
    let requests = object["request_utilisation"].as_f64().unwrap_or(-1.0);
    assert!(
        requests > 0.0 && requests <= 1.0,
        "request utilisation {requests}"
    );
    assert!(object["rows_written"].as_i64().unwrap_or(0) > 0);
    let database = object["database"].as_str().expect("database name");
    assert!(
        !database_exists(&settings, database).await,
        "the throw-away database is dropped"
    );
}

#[tokio::test]
async fn nonsense_options_are_refused_before_any_database_is_made() {
    let mut options = tiny();
    options.mailboxes = 0;
    let error = bench::run(settings(), options).await.expect_err("refused");
    assert!(matches!(error, bench::BenchError::Options(_)), "{error}");
}

#[tokio::test]
async fn the_streaming_figure_reports_latency_and_idle_cost_for_every_mail() {
    let options = bench::streaming::StreamingBenchOptions {
        mailboxes: 5,
        limit: 3,
        rate_per_s: 5,
        mail_seconds: 2,
        idle_seconds: 1,
        latency_ms: 1,
        phase_timeout: std::time::Duration::from_secs(300),
    };
    let report = bench::streaming::run(settings(), options)
        .await
        .expect("streaming bench run");
    let json: Value =
        serde_json::from_str(&serde_json::to_string(&report).expect("json")).expect("object");
    for field in [
        "p50_s",
        "p99_s",
        "max_s",
        "exsync_cpu_ms_per_mailbox_hour",
        "postgres_cpu_ms_per_mailbox_hour",
    ] {
        let value = json[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} is a number"));
        assert!(value.is_finite() && value >= 0.0, "{field} = {value}");
    }
    assert_eq!(report.mails, 10, "rate × seconds mails were created");
    assert_eq!(report.subscribed, 5, "every mailbox was subscribed");
    assert!(report.connections >= 1);
    assert!(report.p50_s <= report.p99_s && report.p99_s <= report.max_s);
}

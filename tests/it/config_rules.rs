//! Configuration: TOML file, environment overrides, and an error naming the key for each
//! kind of bad input.

use crate::support::{all_output, exsync};
use exsync::config::{ConfigError, LogFormat, Settings};
use std::path::Path;
use std::time::Duration;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exsync.toml");
    std::fs::write(&path, toml).unwrap();
    Settings::load_with_env(
        Some(&path),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn defaults_apply_when_no_file_and_no_environment() {
    let settings = Settings::load_with_env(Some(Path::new("/dev/null")), Vec::new()).unwrap();
    assert_eq!(settings.database.max_connections, 10);
    assert_eq!(settings.log.format, LogFormat::Json);
    assert_eq!(
        settings.scheduler.incoming_interval,
        Duration::from_secs(300)
    );
    assert_eq!(settings.scheduler.max_consecutive_failures, 10);
    assert_eq!(settings.sync.tracked_folders, vec!["inbox".to_string()]);
}

#[test]
fn file_overrides_defaults_and_environment_overrides_file() {
    let settings = load(
        "[database]\nmax_connections = 7\n[log]\nformat = \"pretty\"\n[http]\nrequest_timeout = \"45s\"\n",
        &[
            ("EXSYNC__DATABASE__MAX_CONNECTIONS", "21"),
            ("EXSYNC__SCHEDULER__TICK_INTERVAL", "250ms"),
            ("EXSYNC__SYNC__TRACKED_FOLDERS", "inbox,sentitems"),
        ],
    )
    .unwrap();
    assert_eq!(settings.database.max_connections, 21, "env beats file");
    assert_eq!(settings.log.format, LogFormat::Pretty, "file beats default");
    assert_eq!(settings.http.request_timeout, Duration::from_secs(45));
    assert_eq!(settings.scheduler.tick_interval, Duration::from_millis(250));
    assert_eq!(settings.sync.tracked_folders, vec!["inbox", "sentitems"]);
}

#[test]
fn database_url_variable_sets_the_url_and_exsync_variable_wins_over_it() {
    use secrecy::ExposeSecret;
    let settings = load("", &[("DATABASE_URL", "postgres://db.one/exsync")]).unwrap();
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://db.one/exsync"
    );
    let settings = load(
        "",
        &[
            ("DATABASE_URL", "postgres://db.one/exsync"),
            ("EXSYNC__DATABASE__URL", "postgres://db.two/exsync"),
        ],
    )
    .unwrap();
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://db.two/exsync"
    );
}

#[test]
fn unknown_key_is_rejected_and_named() {
    let error = load("[database]\nmax_conections = 5\n", &[]).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("max_conections"), "{text}");
    assert!(text.contains("database"), "{text}");

    let error = load("[databse]\n", &[]).unwrap_err();
    assert!(error.to_string().contains("databse"), "{error}");

    let error = load("", &[("EXSYNC__LOG__FORMATT", "json")]).unwrap_err();
    assert!(error.to_string().contains("formatt"), "{error}");
}

#[test]
fn wrong_type_is_rejected_naming_the_key() {
    let error = load("[database]\nmax_connections = \"many\"\n", &[]).unwrap_err();
    assert!(
        error.to_string().contains("database.max_connections"),
        "{error}"
    );

    let error = load("[log]\nformat = \"xml\"\n", &[]).unwrap_err();
    assert!(error.to_string().contains("log.format"), "{error}");

    let error = load("[scheduler]\nlease_duration = \"5 fortnights\"\n", &[]).unwrap_err();
    assert!(
        error.to_string().contains("scheduler.lease_duration"),
        "{error}"
    );
}

#[test]
fn out_of_range_values_are_rejected_naming_the_key_and_the_range() {
    for (toml, key) in [
        (
            "[database]\nmax_connections = 0\n",
            "database.max_connections",
        ),
        ("[database]\nurl = \"mysql://x/y\"\n", "database.url"),
        ("[http]\nrequest_timeout = \"0s\"\n", "http.request_timeout"),
        (
            "[scheduler]\nmax_consecutive_failures = 0\n",
            "scheduler.max_consecutive_failures",
        ),
        (
            "[scheduler]\nincoming_interval = \"1m\"\n",
            "scheduler.incoming_interval",
        ),
        (
            "[scheduler]\nact_min_interval = \"1h\"\n",
            "scheduler.act_min_interval",
        ),
        (
            "[sync]\nmax_changes_per_request = 513\n",
            "sync.max_changes_per_request",
        ),
        (
            "[sync]\ntracked_folders = [\"calendar\"]\n",
            "sync.tracked_folders",
        ),
        ("[log]\nlevel = \"info,[\"\n", "log.level"),
        (
            "[security]\ncredential_key_file = \"/k\"\ncredential_key_env = \"K\"\n",
            "security.credential_key_env",
        ),
    ] {
        match load(toml, &[]) {
            Err(error @ ConfigError::OutOfRange { .. }) => {
                assert!(error.to_string().contains(key), "{key}: {error}")
            }
            other => panic!("{key}: expected OutOfRange, got {other:?}"),
        }
    }
}

#[test]
fn malformed_toml_is_rejected_with_its_line() {
    let error = load("[database\nurl = 1\n", &[]).unwrap_err();
    assert!(error.to_string().contains("line 1"), "{error}");
}

#[test]
fn missing_config_file_is_an_error_not_a_silent_default() {
    let error = Settings::load_with_env(Some(Path::new("/nonexistent/exsync.toml")), Vec::new())
        .unwrap_err();
    assert!(matches!(error, ConfigError::Unreadable { .. }), "{error}");
}

#[test]
fn check_config_exits_2_and_names_the_key_on_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[http]\nmax_response_bytes = 5\n",
    )
    .unwrap();
    let output = exsync(dir.path(), &["--config", "bad.toml", "check-config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(all_output(&output).contains("http.max_response_bytes"));
}

#[test]
fn check_config_prints_effective_settings_with_the_database_password_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let output = exsync(
        dir.path(),
        &["check-config"],
        &[
            (
                "DATABASE_URL",
                "postgres://app:Db-Secret-123@db.example:5432/exsync",
            ),
            ("EXSYNC__DATABASE__MAX_CONNECTIONS", "33"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let text = all_output(&output);
    assert!(text.contains("max_connections = 33"), "{text}");
    assert!(text.contains("app:***@db.example"), "{text}");
    assert!(!text.contains("Db-Secret-123"), "{text}");
}

//! `exsync apply`: declarative, idempotent, all-or-nothing, and every problem named.

use crate::support::{all_output, database_url, exsync, key_file, SMALL_ORG};
use exsync::operator::apply::{apply_text, ApplyError, Outcome};
use exsync::store::{mailbox_statuses, Store};
use sqlx::PgPool;
use std::path::Path;

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn applying_twice_creates_then_reports_no_changes(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    let origin = Path::new("org.toml");

    let first = apply_text(&store, &cipher, SMALL_ORG, origin, dir.path(), false)
        .await
        .unwrap();
    assert!(first.entries.iter().all(|e| e.outcome == Outcome::Created));
    assert_eq!(first.entries.len(), 3);

    let second = apply_text(&store, &cipher, SMALL_ORG, origin, dir.path(), false)
        .await
        .unwrap();
    assert!(second.is_noop(), "{second}");
    assert!(second.to_string().contains("no changes"));

    let statuses = mailbox_statuses(&store).await.unwrap();
    let addresses: Vec<_> = statuses.iter().map(|s| s.address.as_str()).collect();
    assert_eq!(
        addresses,
        ["alice@contoso.test", "bob@contoso.test"],
        "addresses are lower-cased"
    );
}

#[sqlx::test]
async fn a_change_is_reported_by_field_and_a_new_password_by_name_only(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    let origin = Path::new("org.toml");
    apply_text(&store, &cipher, SMALL_ORG, origin, dir.path(), false)
        .await
        .unwrap();

    let edited = SMALL_ORG
        .replace("Pr0file-Secret-Value!", "N3w-Secret-Value!")
        .replace(
            "max_concurrent_connections = 5",
            "max_concurrent_connections = 8",
        );
    let report = apply_text(&store, &cipher, &edited, origin, dir.path(), false)
        .await
        .unwrap();
    let profile = &report.entries[0];
    assert_eq!(
        profile.outcome,
        Outcome::Changed {
            fields: vec!["password", "max_concurrent_connections"]
        }
    );
    let printed = report.to_string();
    assert!(
        printed.contains("changed (password, max_concurrent_connections)"),
        "{printed}"
    );
    assert!(!printed.contains("N3w-Secret-Value!"));
}

#[sqlx::test]
async fn an_invalid_entry_writes_nothing_and_names_file_entry_and_field(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    let bad = format!(
        "{SMALL_ORG}
[[mailbox]]
address = \"carol@contoso.test\"
profile = \"Contoso\"
incoming = \"imap\"

[[profile]]
name = \"Broken\"
server_type = \"exchange_server\"
ews_url = \"https://mail.contoso.test/EWS/Exchange.asmx\"
auth = \"profile_credentials\"
username = \"svc\"
password = \"x\"
max_concurrent_connections = 500
"
    );
    let error = apply_text(
        &store,
        &cipher,
        &bad,
        Path::new("org.toml"),
        dir.path(),
        false,
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ApplyError::Invalid { .. }), "{text}");
    assert!(text.contains("org.toml"), "{text}");
    assert!(
        text.contains("[[mailbox]] #3 \"carol@contoso.test\": field `incoming`"),
        "{text}"
    );
    assert!(
        text.contains("[[profile]] #2 \"Broken\": field `max_concurrent_connections`"),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(count(&pool, "email_server_profiles").await, 0);
    assert_eq!(count(&pool, "mailboxes").await, 0);
}

#[sqlx::test]
async fn each_kind_of_bad_entry_is_named(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    let profile = |extra: &str| {
        format!(
            "[[profile]]\nname = \"P\"\nserver_type = \"exchange_server\"\news_url = \"https://x.test/EWS/Exchange.asmx\"\n{extra}\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            profile("auth = \"profile_credentials\"\nusername = \"svc\""),
            "field `password`",
        ),
        (
            profile("auth = \"profile_credentials\"\npassword = \"x\""),
            "field `username`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\nuse_impersonation = true"),
            "field `use_impersonation`",
        ),
        (
            profile("auth = \"oauth_client_credentials\"\noauth_client_id = \"c\""),
            "field `oauth_client_secret`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\nuse_same_settings_for_outgoing = false"),
            "field `outgoing_ews_url`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\nprocess_emails_from = \"yesterday\""),
            "field `process_emails_from`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\nmin_polling_interval_minutes = 0"),
            "field `min_polling_interval_minutes`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\nenabled = \"yes\""),
            "field `enabled`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\npasword = \"typo\""),
            "field `pasword`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\npassword = \"a\"\npassword_env = \"B\""),
            "field `password`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\npassword_env = \"EXSYNC_TEST_SURELY_UNSET\""),
            "field `password_env`",
        ),
        (
            profile("auth = \"mailbox_credentials\"\npassword_file = \"missing.pw\""),
            "field `password_file`",
        ),
        (profile("auth = \"ldap\""), "field `auth`"),
        (
            "[[profile]]\nname = \"P\"\n".to_owned(),
            "field `server_type`",
        ),
        (
            "[[mailbox]]\naddress = \"a@b.test\"\nprofile = \"Nope\"\n".to_owned(),
            "field `profile`",
        ),
        (
            "[[mailbox]]\naddress = \"not an address\"\nprofile = \"P\"\n".to_owned(),
            "field `address`",
        ),
        (
            format!(
                "{}[[mailbox]]\naddress = \"a@b.test\"\nprofile = \"P\"\n",
                profile("auth = \"mailbox_credentials\"")
            ),
            "field `allow_credentials_for_email_processing`",
        ),
        (
            format!(
                "{}[[mailbox]]\naddress = \"a@b.test\"\nprofile = \"P\"\napproval = \"sure\"\n",
                profile("auth = \"mailbox_credentials\"")
            ),
            "field `approval`",
        ),
        (
            format!(
                "{}{}",
                profile("auth = \"mailbox_credentials\""),
                profile("auth = \"mailbox_credentials\"").replace("\"P\"", "\" P \"")
            ),
            "another [[profile]] in this file has the same name",
        ),
        (
            format!(
                "{}[[mailbox]]\naddress = \"a@b.test\"\nprofile = \"P\"\nallow_credentials_for_email_processing = true\n[[mailbox]]\naddress = \"A@B.test\"\nprofile = \"P\"\nallow_credentials_for_email_processing = true\n",
                profile("auth = \"mailbox_credentials\"")
            ),
            "another [[mailbox]] in this file has the same address",
        ),
    ];
    for (text, expected) in cases {
        let error = apply_text(
            &store,
            &cipher,
            &text,
            Path::new("f.toml"),
            dir.path(),
            false,
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "expected {expected} in: {error}"
        );
    }
    assert_eq!(count(&pool, "email_server_profiles").await, 0);
}

#[sqlx::test]
async fn a_mistyped_secret_is_not_echoed_in_the_error(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    let text = "[[profile]]\nname = \"P\"\nserver_type = \"exchange_server\"\news_url = \"https://x.test/\"\nauth = \"profile_credentials\"\nusername = \"svc\"\npassword = 98765432123\n";
    let error = apply_text(
        &store,
        &cipher,
        text,
        Path::new("f.toml"),
        dir.path(),
        false,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("field `password`"), "{error}");
    assert!(!error.contains("98765432123"), "{error}");
}

#[sqlx::test]
async fn dry_run_reports_changes_but_writes_nothing(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    let report = apply_text(&store, &cipher, SMALL_ORG, Path::new("f"), dir.path(), true)
        .await
        .unwrap();
    assert_eq!(report.entries.len(), 3);
    assert!(report.to_string().contains("dry run"));
    assert_eq!(count(&pool, "mailboxes").await, 0);
}

#[sqlx::test]
async fn secrets_can_come_from_files_and_environment_variables(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    std::fs::write(dir.path().join("svc.pw"), "From-File-Secret\n").unwrap();
    std::env::set_var("EXSYNC_TEST_MAILBOX_PW", "From-Env-Secret");
    let text = r#"
[[profile]]
name = "P"
server_type = "exchange_server"
ews_url = "https://x.test/EWS/Exchange.asmx"
auth = "profile_credentials"
username = "svc"
password_file = "svc.pw"

[[profile]]
name = "Own"
server_type = "exchange_server"
ews_url = "https://x.test/EWS/Exchange.asmx"
auth = "mailbox_credentials"

[[mailbox]]
address = "dan@x.test"
profile = "Own"
allow_credentials_for_email_processing = true
username = "dan"
password_env = "EXSYNC_TEST_MAILBOX_PW"
"#;
    apply_text(&store, &cipher, text, Path::new("f"), dir.path(), false)
        .await
        .unwrap();
    let row: exsync::store::ProfileRow = sqlx::query_as(&format!(
        "SELECT {} FROM email_server_profiles WHERE name = 'P'",
        exsync::store::PROFILE_COLUMNS
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let profile = row.into_profile(&cipher).unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        profile.password.unwrap().expose_secret(),
        "From-File-Secret"
    );
    let row: exsync::store::MailboxRow = sqlx::query_as(&format!(
        "SELECT {} FROM mailboxes",
        exsync::store::MAILBOX_COLUMNS
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let mailbox = row.into_mailbox(&cipher).unwrap();
    assert_eq!(mailbox.password.unwrap().expose_secret(), "From-Env-Secret");
}

#[sqlx::test]
async fn cli_migrate_apply_twice_and_status_json_list_the_mailboxes(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = key_file(dir.path());
    std::fs::write(dir.path().join("org.toml"), SMALL_ORG).unwrap();
    let url = database_url(&pool);
    let env = [
        ("DATABASE_URL", url.as_str()),
        (
            "EXSYNC__SECURITY__CREDENTIAL_KEY_FILE",
            key.to_str().unwrap(),
        ),
    ];
    let migrate = exsync(dir.path(), &["migrate"], &env);
    assert!(migrate.status.success(), "{}", all_output(&migrate));
    let first = exsync(dir.path(), &["apply", "org.toml"], &env);
    assert!(first.status.success(), "{}", all_output(&first));
    assert!(all_output(&first).contains("3 created"));
    let second = exsync(dir.path(), &["apply", "org.toml"], &env);
    assert!(
        all_output(&second).contains("no changes"),
        "{}",
        all_output(&second)
    );

    let status = exsync(dir.path(), &["status", "--json"], &env);
    assert!(status.status.success(), "{}", all_output(&status));
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for field in [
        "address",
        "profile",
        "incoming",
        "outgoing",
        "act",
        "incoming_status",
        "outgoing_status",
        "act_status",
        "last_successful_sync",
        "next_due",
        "consecutive_failures",
        "last_error",
        "emails",
        "appointments",
        "contacts",
        "tasks",
        "outgoing_pending",
        "outgoing_sent",
        "outgoing_failed",
    ] {
        assert!(rows[0].get(field).is_some(), "status --json lacks {field}");
    }
    assert_eq!(rows[1]["act"], "server_side_sync");

    let invalid = exsync(dir.path(), &["apply", "missing.toml"], &env);
    assert_eq!(invalid.status.code(), Some(2));
}

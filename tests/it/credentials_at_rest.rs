//! Credentials: encrypted in the database, decrypted only with the right key, and never
//! shown by status, errors or logs.

use crate::support::{all_output, database_url, exsync, key_file, SMALL_ORG};
use exsync::operator::apply::apply_text;
use exsync::store::{ProfileRow, Store, StoreError, PROFILE_COLUMNS};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use std::path::Path;

const SECRET: &str = "Pr0file-Secret-Value!";

async fn profile_row(pool: &PgPool) -> ProfileRow {
    sqlx::query_as(&format!(
        "SELECT {PROFILE_COLUMNS} FROM email_server_profiles"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn passwords_are_stored_encrypted_and_round_trip_with_the_key(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, cipher) = key_file(dir.path());
    apply_text(
        &store,
        &cipher,
        SMALL_ORG,
        Path::new("f"),
        dir.path(),
        false,
    )
    .await
    .unwrap();
    let stored: Vec<u8> = sqlx::query_scalar("SELECT password_enc FROM email_server_profiles")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "plaintext must not be stored"
    );
    let dump: String = sqlx::query_scalar("SELECT to_jsonb(p)::text FROM email_server_profiles p")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!dump.contains(SECRET));

    let profile = profile_row(&pool).await.into_profile(&cipher).unwrap();
    assert_eq!(profile.password.as_ref().unwrap().expose_secret(), SECRET);
    assert!(
        !format!("{profile:?}").contains(SECRET),
        "Debug never shows a secret"
    );
}

#[sqlx::test]
async fn a_wrong_key_is_a_named_error_not_garbage_credentials(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let (_, right) = key_file(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (_, wrong) = key_file(other_dir.path());
    apply_text(&store, &right, SMALL_ORG, Path::new("f"), dir.path(), false)
        .await
        .unwrap();
    let error = profile_row(&pool).await.into_profile(&wrong).unwrap_err();
    match &error {
        StoreError::InvalidRow {
            table,
            field,
            reason,
            ..
        } => {
            assert_eq!(*table, "email_server_profiles");
            assert_eq!(*field, "password_enc");
            assert!(reason.contains("another credential key"), "{reason}");
        }
        other => panic!("expected InvalidRow, got {other:?}"),
    }
    assert!(!error.to_string().contains(SECRET));
}

#[sqlx::test]
async fn no_secret_appears_in_status_check_config_errors_or_logs(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = key_file(dir.path());
    let key_text = std::fs::read_to_string(&key).unwrap();
    let db_password_url = database_url(&pool);
    std::fs::write(dir.path().join("org.toml"), SMALL_ORG).unwrap();
    // A second file that fails validation after the secrets were read.
    std::fs::write(
        dir.path().join("bad.toml"),
        SMALL_ORG.replace(
            "max_concurrent_connections = 5",
            "max_concurrent_connections = 0",
        ),
    )
    .unwrap();
    let env = [
        ("DATABASE_URL", db_password_url.as_str()),
        (
            "EXSYNC__SECURITY__CREDENTIAL_KEY_FILE",
            key.to_str().unwrap(),
        ),
        ("RUST_LOG", "trace"),
    ];
    let mut everything = String::new();
    for args in [
        vec!["apply", "org.toml"],
        vec!["apply", "org.toml", "--json"],
        vec!["apply", "bad.toml"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["check-config"],
    ] {
        let output = exsync(dir.path(), &args, &env);
        everything.push_str(&all_output(&output));
    }
    assert!(
        everything.contains("alice@contoso.test"),
        "the commands ran: {everything}"
    );
    for secret in [SECRET, key_text.trim()] {
        assert!(
            !everything.contains(secret),
            "a secret leaked into output or logs"
        );
    }
}

//! Connecting and signing in to a real tenant, over real HTTPS with the fake Exchange:
//! private certificate authorities (through `http.ca_file` and the system store), NTLM
//! channel binding per RFC 5929, OAuth app-only with a certificate, token endpoint trouble,
//! `server_type` rules and correlation ids.

use crate::support::world::{fast_settings, World};
use crate::support::{database_url, key_file};
use exsync::config::Settings;
use exsync::domain::Workload;
use exsync::sync::pass::Outcome;
use exsync_ews::client::{ClientOptions, EwsAuth, EwsClient};
use exsync_ews::ntlm::NtlmCredentials;
use exsync_ews::ntlm_http::NtlmSessionPool;
use exsync_ews::ops::GetFolderRequest;
use exsync_ews::tls::{SystemRoots, TrustSettings};
use exsync_ews::transport::{Transport, TransportSettings};
use exsync_ews::types::{BaseFolderId, BaseShape, DistinguishedFolderName};
use fake_exchange::{CertificateSignature, ExtendedProtection, FakeConfig, FakeTls};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A profile impersonating alice@ with a service account, Basic or NTLM.
const ORG: &str = r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
password_scheme = "{scheme}"
username = "svc"
password = "Svc-Passw0rd!"

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"
"#;

/// The fake over HTTPS with a server certificate from a private CA signed with `signature`.
fn private_ca(signature: CertificateSignature) -> FakeConfig {
    FakeConfig {
        tls: true,
        tls_certificate: FakeTls {
            signature,
            private_ca: true,
            rsa_key_pem: Some(fixture("rsa-ca.key")),
        },
        extended_protection: ExtendedProtection::Require,
        ..FakeConfig::default()
    }
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Alice's mailbox with 3 messages and the service account, applied with `scheme`.
async fn contoso(world: &World, scheme: &str) {
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world
        .service_account("svc", "Svc-Passw0rd!", &["alice@contoso.test"])
        .await;
    world
        .deliver("alice@contoso.test", 3, "2026-06-01T10:00:00Z")
        .await;
    world.apply(&ORG.replace("{scheme}", scheme)).await;
}

/// The fake's private CA written to `dir/ca.pem`.
fn write_ca(world: &World, dir: &Path) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, world.fake.ca_certificate_pem().expect("private CA")).unwrap();
    path
}

fn incoming(summary: &exsync::sync::PassSummary) -> &Outcome {
    &summary
        .report(Workload::Incoming)
        .expect("incoming ran")
        .outcome
}

#[sqlx::test]
async fn a_private_ca_is_trusted_through_http_ca_file_and_refused_without_it(pool: PgPool) {
    let world = World::with_fake(
        pool,
        fast_settings(),
        private_ca(CertificateSignature::EcdsaSha256),
    )
    .await;
    contoso(&world, "basic").await;
    let dir = tempfile::tempdir().unwrap();

    // Without the CA: the certificate is refused, nothing imported, no credential blamed.
    let refused = world.pass("alice@contoso.test").await;
    match incoming(&refused) {
        Outcome::Failed { code, message, .. } => {
            assert_eq!(code, "ews.unreachable");
            assert!(message.contains("certificate"), "{message}");
        }
        other => panic!("expected a refused certificate, got {other:?}"),
    }
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 0);
    assert_eq!(
        world
            .count("SELECT count(*) FROM email_server_profiles WHERE credentials_blocked_at IS NOT NULL")
            .await,
        0
    );

    // With http.ca_file naming the CA: the same server is trusted.
    let mut settings = fast_settings();
    settings.http.ca_file = Some(write_ca(&world, dir.path()));
    let mut check = Settings::default();
    check.http.ca_file = settings.http.ca_file.clone();
    check
        .validate()
        .expect("a CA bundle is a valid http.ca_file");
    let engine = world.app(settings).engine();
    let trusted = engine
        .run_mailbox_now("alice@contoso.test", "test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incoming(&trusted), &Outcome::Success, "{trusted:?}");
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 3);
}

/// One GetFolder of alice's inbox through `transport` with Basic (or NTLM) credentials.
async fn get_inbox(world: &World, transport: Transport, ntlm: bool) -> Result<(), String> {
    let auth = if ntlm {
        EwsAuth::Ntlm(Arc::new(NtlmSessionPool::new(
            NtlmCredentials::from_account("CONTOSO\\alice", SecretString::from("Alice-Pw1!")),
            &transport,
        )))
    } else {
        EwsAuth::Basic {
            username: "alice".into(),
            password: SecretString::from("Alice-Pw1!"),
        }
    };
    let client = EwsClient::new(
        url::Url::parse(&world.fake.ews_url()).unwrap(),
        auth,
        transport,
        ClientOptions::default(),
    );
    let request = GetFolderRequest {
        folder_shape: BaseShape::Default,
        additional_properties: Vec::new(),
        folder_ids: vec![BaseFolderId::distinguished(DistinguishedFolderName::Inbox)],
    };
    client
        .call(None, &request)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn transport(system: SystemRoots, ca_file: Option<PathBuf>) -> Transport {
    Transport::new(TransportSettings {
        trust: TrustSettings {
            system,
            ca_file,
            accept_invalid_certs: false,
        },
        ..TransportSettings::default()
    })
    .expect("transport")
}

#[sqlx::test]
async fn a_private_ca_is_trusted_through_the_system_store_bundle_ssl_cert_file_points_at(
    pool: PgPool,
) {
    let world = World::with_fake(
        pool.clone(),
        fast_settings(),
        private_ca(CertificateSignature::EcdsaSha256),
    )
    .await;
    contoso(&world, "basic").await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_ca(&world, dir.path());

    // In process: the system store read from a bundle (what SSL_CERT_FILE names), explicitly.
    for ntlm in [false, true] {
        get_inbox(
            &world,
            transport(SystemRoots::Bundle(bundle.clone()), None),
            ntlm,
        )
        .await
        .expect("the bundle's CA is trusted");
        let refused = get_inbox(&world, transport(SystemRoots::Empty, None), ntlm)
            .await
            .expect_err("no root: refused");
        assert!(refused.contains("certificate"), "{refused}");
    }

    // The binary, as deployed: SSL_CERT_FILE in its environment is the system store.
    let (key, cipher) = key_file(dir.path());
    let ews = world.fake.ews_url();
    exsync::operator::apply::apply_text(
        &world.store,
        &cipher,
        &ORG.replace("{scheme}", "basic").replace("{ews}", &ews),
        Path::new("org.toml"),
        Path::new("."),
        false,
    )
    .await
    .unwrap();
    // The fake serves on this test's runtime: the binary runs on a blocking thread.
    let run = |ssl_cert_file: Option<&Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_exsync"));
        command
            .current_dir(dir.path())
            .args(["test-mailbox", "alice@contoso.test", "--no-send"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url(&pool))
            .env("EXSYNC__SECURITY__CREDENTIAL_KEY_FILE", &key)
            .env("EXSYNC__LOG__LEVEL", "warn");
        if let Some(file) = ssl_cert_file {
            command.env("SSL_CERT_FILE", file);
        }
        tokio::task::spawn_blocking(move || command.output().expect("run exsync"))
    };
    let trusted = run(Some(&bundle)).await.unwrap();
    let text = crate::support::all_output(&trusted);
    assert!(trusted.status.success(), "{text}");
    let refused = run(None).await.unwrap();
    let text = crate::support::all_output(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("certificate"), "{text}");
}

#[sqlx::test]
async fn ntlm_channel_binding_uses_the_certificates_signature_hash_sha256_sha384_sha512(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().unwrap();
    for signature in [
        CertificateSignature::EcdsaSha256,
        CertificateSignature::EcdsaSha384,
        CertificateSignature::RsaSha512,
    ] {
        let world = World::with_fake(pool.clone(), fast_settings(), private_ca(signature)).await;
        world
            .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
            .await;
        let ca = write_ca(&world, dir.path());
        // Extended Protection is required: the sign-in works only with the right binding.
        get_inbox(&world, transport(SystemRoots::Empty, Some(ca)), true)
            .await
            .unwrap_or_else(|e| panic!("{signature:?}: {e}"));
        let stats = world.stats().await;
        assert_eq!(stats["accounts"]["alice"]["channel_binding_failures"], 0);
        assert_eq!(stats["accounts"]["alice"]["failed_logins"], 0);
        world.fake.shutdown().await;
    }
}

#[sqlx::test]
async fn the_daemon_signs_in_with_ntlm_over_a_sha384_certificate_with_extended_protection(
    pool: PgPool,
) {
    let world = World::with_fake(
        pool,
        fast_settings(),
        private_ca(CertificateSignature::EcdsaSha384),
    )
    .await;
    contoso(&world, "ntlm").await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings: Settings = fast_settings();
    settings.http.ca_file = Some(write_ca(&world, dir.path()));
    let engine = world.app(settings).engine();
    let summary = engine
        .run_mailbox_now("alice@contoso.test", "test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incoming(&summary), &Outcome::Success, "{summary:?}");
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 3);
    assert_eq!(
        world.stats().await["accounts"]["svc"]["channel_binding_failures"],
        0
    );
}

// ------------------------------------------------------------------------------------------
// OAuth app-only with a certificate, and token endpoint trouble
// ------------------------------------------------------------------------------------------

/// A profile signing in as OAuth app `app-cert` with the fixture certificate.
const CERT_ORG: &str = r#"
[[profile]]
name = "Contoso Cloud"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "oauth_client_credentials"
oauth_client_id = "app-cert"
oauth_token_url = "{token}"
oauth_certificate_file = "{fixtures}/oauth-app.crt"
oauth_private_key_file = "{fixtures}/oauth-app.key"

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso Cloud"
approval = "approved"
"#;

/// A profile signing in as OAuth app `app-secret` with a client secret.
const SECRET_ORG: &str = r#"
[[profile]]
name = "Contoso Cloud"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "oauth_client_credentials"
oauth_client_id = "app-secret"
oauth_client_secret = "App-Secret-Value-1"
oauth_token_url = "{token}"

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso Cloud"
approval = "approved"
"#;

fn fixtures_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .display()
        .to_string()
}

/// Alice with 3 messages and the two OAuth apps (certificate, secret) allowed everywhere.
async fn cloud(world: &World) {
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    world
        .deliver("alice@contoso.test", 3, "2026-06-01T10:00:00Z")
        .await;
    world
        .fake_post(
            "/_fake/apps",
            json!({"client_id": "app-cert", "certificate": fixture("oauth-app.crt")}),
        )
        .await;
    world
        .fake_post(
            "/_fake/apps",
            json!({"client_id": "app-secret", "client_secret": "App-Secret-Value-1"}),
        )
        .await;
}

fn app_stats(stats: &serde_json::Value, app: &str, counter: &str) -> u64 {
    stats["accounts"][app][counter].as_u64().unwrap_or(0)
}

#[sqlx::test]
async fn a_certificate_credential_signs_a_client_assertion_the_token_endpoint_accepts(
    pool: PgPool,
) {
    // Over real HTTPS: EWS and the token endpoint behind the fake's private CA.
    let dir = tempfile::tempdir().unwrap();
    let world = World::with_fake(
        pool,
        fast_settings(),
        private_ca(CertificateSignature::EcdsaSha384),
    )
    .await;
    cloud(&world).await;
    world
        .apply(&CERT_ORG.replace("{fixtures}", &fixtures_dir()))
        .await;
    // The private key is stored encrypted, never as PEM text.
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT oauth_private_key_enc FROM email_server_profiles WHERE name = 'Contoso Cloud'",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("PRIVATE KEY"));
    let mut settings = fast_settings();
    settings.http.ca_file = Some(write_ca(&world, dir.path()));
    let engine = world.app(settings).engine();
    let summary = engine
        .run_mailbox_now("alice@contoso.test", "test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incoming(&summary), &Outcome::Success, "{summary:?}");
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 3);
    let stats = world.stats().await;
    assert_eq!(app_stats(&stats, "app-cert", "token_requests"), 1);
    assert_eq!(app_stats(&stats, "app-cert", "failed_logins"), 0);
    // The requests reached EWS as the app, impersonating alice.
    let requests = world.fake_get("/_fake/requests").await;
    assert!(requests
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["account"] == "app-cert" && r["impersonated"] == "alice@contoso.test"));
}

#[sqlx::test]
async fn an_assertion_signed_with_an_unregistered_certificate_is_invalid_client_and_blocks(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    world
        .mailbox("alice@contoso.test", "alice", "Alice-Pw1!")
        .await;
    // The app's registered certificate is another one (a fresh self-signed certificate).
    let other = {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["other.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    };
    world
        .fake_post(
            "/_fake/apps",
            json!({"client_id": "app-cert", "certificate": other}),
        )
        .await;
    world
        .apply(&CERT_ORG.replace("{fixtures}", &fixtures_dir()))
        .await;
    let summary = world.pass("alice@contoso.test").await;
    match incoming(&summary) {
        Outcome::Failed { code, kind, .. } => {
            assert_eq!(code, "ews.oauth_token");
            assert_eq!(*kind, exsync::sync::FailureKind::Authentication);
        }
        other => panic!("expected a rejected assertion, got {other:?}"),
    }
    assert_eq!(
        world
            .count("SELECT count(*) FROM email_server_profiles WHERE credentials_blocked_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(world.open_alerts("ews.oauth_token").await.len(), 1);
    assert_eq!(
        app_stats(&world.stats().await, "app-cert", "failed_logins"),
        1
    );
}

#[sqlx::test]
async fn token_endpoint_429_then_success_is_waited_out_without_blaming_the_secret(pool: PgPool) {
    let world = World::new(pool).await;
    cloud(&world).await;
    world.apply(SECRET_ORG).await;
    world
        .faults(json!({"token_fail_next": ["http429"], "token_retry_after_secs": 1}))
        .await;
    let summary = world.pass("alice@contoso.test").await;
    assert_eq!(incoming(&summary), &Outcome::Success, "{summary:?}");
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 3);
    let stats = world.stats().await;
    assert_eq!(app_stats(&stats, "app-secret", "token_requests"), 2);
    assert_eq!(app_stats(&stats, "app-secret", "failed_logins"), 0);
    assert_eq!(
        world
            .count("SELECT count(*) FROM email_server_profiles WHERE credentials_blocked_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(world.count("SELECT count(*) FROM alerts").await, 0);
}

#[sqlx::test]
async fn token_endpoint_outages_and_timeouts_are_transient_and_only_invalid_client_blocks(
    pool: PgPool,
) {
    let mut settings = fast_settings();
    settings.http.request_timeout = std::time::Duration::from_secs(1);
    let world = World::with_settings(pool, settings).await;
    cloud(&world).await;
    world.apply(SECRET_ORG).await;
    let blocked =
        "SELECT count(*) FROM email_server_profiles WHERE credentials_blocked_at IS NOT NULL";

    // A 503 with a long Retry-After: transient, not retried before Retry-After, no block.
    world
        .faults(json!({"token_fail_next": ["http503"], "token_retry_after_secs": 120}))
        .await;
    let summary = world.pass("alice@contoso.test").await;
    match incoming(&summary) {
        Outcome::Failed { code, kind, .. } => {
            assert_eq!(code, "oauth.token_endpoint_unavailable");
            assert_eq!(*kind, exsync::sync::FailureKind::Transient);
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert_eq!(world.count(blocked).await, 0);
    let wait: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM incoming_next_due_at - now())::float8 FROM mailboxes",
    )
    .fetch_one(world.store.pool())
    .await
    .unwrap();
    assert!(wait > 100.0, "retried {wait} s later, before Retry-After");

    // A hanging token endpoint: the request times out, transient again, no block. (A new
    // engine: the first one still honours the 120 s Retry-After.)
    world
        .faults(json!({"token_latency_ms": 3000, "token_fail_next": []}))
        .await;
    let engine = world.app(fast_settings_with_timeout()).engine();
    let summary = engine
        .run_mailbox_now("alice@contoso.test", "test")
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(incoming(&summary), Outcome::Failed { code, .. } if code == "oauth.token_endpoint_unavailable"),
        "{summary:?}"
    );
    assert_eq!(world.count(blocked).await, 0);

    // invalid_client: the application's credential is refused: blocked, with an alert.
    world
        .faults(json!({"token_latency_ms": 0, "token_fail_next": ["invalid_client"]}))
        .await;
    let engine = world.app(fast_settings_with_timeout()).engine();
    let summary = engine
        .run_mailbox_now("alice@contoso.test", "test")
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(incoming(&summary), Outcome::Failed { kind, .. } if *kind == exsync::sync::FailureKind::Authentication),
        "{summary:?}"
    );
    assert_eq!(world.count(blocked).await, 1);
    assert_eq!(world.open_alerts("ews.oauth_token").await.len(), 1);
}

fn fast_settings_with_timeout() -> Settings {
    let mut settings = fast_settings();
    settings.http.request_timeout = std::time::Duration::from_secs(1);
    settings
}

// ------------------------------------------------------------------------------------------
// server_type
// ------------------------------------------------------------------------------------------

async fn apply_result(
    world: &World,
    text: &str,
) -> Result<exsync::operator::apply::ApplyReport, exsync::operator::apply::ApplyError> {
    exsync::operator::apply::apply_text(
        &world.store,
        &world.cipher,
        &text.replace("{ews}", &world.fake.ews_url()),
        Path::new("org.toml"),
        Path::new("."),
        false,
    )
    .await
}

#[sqlx::test]
async fn exchange_online_refuses_password_sign_ins_and_warns_about_ews(pool: PgPool) {
    let world = World::new(pool).await;
    let online = |auth: &str| {
        format!(
            r#"
[[profile]]
name = "Online"
server_type = "exchange_online"
ews_url = "{{ews}}"
{auth}
"#
        )
    };
    for (auth, field_code) in [
        (
            "auth = \"profile_credentials\"\nusername = \"svc\"\npassword = \"x-Pw1\"",
            "exchange_online.credential_impersonation_retired",
        ),
        (
            "auth = \"profile_credentials\"\nusername = \"svc\"\npassword = \"x-Pw1\"\nuse_impersonation = false",
            "exchange_online.basic_auth_retired",
        ),
        (
            "auth = \"mailbox_credentials\"",
            "exchange_online.mailbox_passwords_retired",
        ),
    ] {
        let error = apply_result(&world, &online(auth)).await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains(field_code), "{text}");
        assert!(text.contains("field `auth`"), "{text}");
    }
    assert_eq!(
        world
            .count("SELECT count(*) FROM email_server_profiles")
            .await,
        0
    );
    // OAuth app-only still works with EWS for now: written, with a warning naming why.
    let report = apply_result(
        &world,
        &online(
            "auth = \"oauth_client_credentials\"\noauth_client_id = \"app\"\noauth_client_secret = \"s-1\"\noauth_tenant = \"contoso\"",
        ),
    )
    .await
    .unwrap();
    assert_eq!(report.warnings.len(), 1, "{report}");
    assert!(report.warnings[0].code.starts_with("exchange_online.ews_"));
    assert!(report.to_string().contains("warning:"), "{report}");
}

#[sqlx::test]
async fn test_mailbox_refuses_a_retired_exchange_online_sign_in_without_sending_it(pool: PgPool) {
    let world = World::new(pool).await;
    contoso(&world, "basic").await;
    // A row written around `apply` (e.g. by SQL): the server type says Exchange Online.
    sqlx::query("UPDATE email_server_profiles SET server_type = 'exchange_online'")
        .execute(world.store.pool())
        .await
        .unwrap();
    world.fake_post("/_fake/stats/reset", json!({})).await;
    let probe = exsync::operator::probe::test_mailbox(
        &world.engine,
        "alice@contoso.test",
        exsync::operator::probe::ProbeOptions { no_send: true },
    )
    .await
    .unwrap();
    assert!(!probe.passed);
    let incoming = probe.workload(Workload::Incoming).unwrap();
    assert_eq!(
        incoming.reason,
        Some(exsync::operator::probe::Reason::ServerTypeUnsupported)
    );
    assert_eq!(
        incoming.code.as_deref(),
        Some("exchange_online.credential_impersonation_retired")
    );
    assert!(incoming.message.contains("ApplicationImpersonation"));
    // Nothing was sent: no sign-in to fail, no lock-out.
    let stats = world.stats().await;
    assert_eq!(app_stats(&stats, "svc", "requests"), 0);
    assert_eq!(app_stats(&stats, "svc", "failed_logins"), 0);
}

// ------------------------------------------------------------------------------------------
// Correlation with Exchange
// ------------------------------------------------------------------------------------------

#[sqlx::test]
async fn client_request_id_is_sent_and_exchanges_request_id_is_logged_and_explained(pool: PgPool) {
    let world = World::new(pool).await;
    contoso(&world, "basic").await;
    world.faults(json!({"fail_next": ["http500"]})).await;
    let summary = world.pass("alice@contoso.test").await;
    assert!(
        matches!(incoming(&summary), Outcome::Failed { code, .. } if code == "ews.http_500"),
        "{summary:?}"
    );
    // The fake saw a client-request-id (a UUID) and answered with its own request-id.
    let requests = world.fake_get("/_fake/requests").await;
    let failed = requests
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 500)
        .expect("the failed request is in the fake's log")
        .clone();
    let client_request_id = failed["client_request_id"].as_str().unwrap().to_owned();
    let request_id = failed["request_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&client_request_id).is_ok());
    // Every request carries its own id.
    let ids: std::collections::BTreeSet<_> = requests
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["client_request_id"].as_str())
        .collect();
    assert_eq!(ids.len(), requests.as_array().unwrap().len());

    // Stored with the last error, and shown by explain.
    let explanation = exsync::operator::explain::explain(
        &world.store,
        &world.cipher,
        &world.settings.scheduler,
        "alice@contoso.test",
        None,
    )
    .await
    .unwrap();
    let last = explanation.last_error.as_ref().expect("a last error");
    assert_eq!(
        last.client_request_id.map(|u| u.to_string()),
        Some(client_request_id.clone())
    );
    assert_eq!(last.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(
        last.be_server.as_deref(),
        Some("FAKEEXCH-MBX01.contoso.test")
    );
    let shown = explanation.to_string();
    assert!(shown.contains(&request_id), "{shown}");
    assert!(shown.contains(&client_request_id), "{shown}");

    // Logged: the failed request's line names both ids.
    let logs = std::fs::read_to_string(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("test-logs")
            .join(format!("it-{}.jsonl", std::process::id())),
    )
    .unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains(&request_id))
        .expect("the request-id is logged");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["client_request_id"], client_request_id);
    assert_eq!(line["be_server"], "FAKEEXCH-MBX01.contoso.test");

    // A later success clears the error and its ids.
    let healed = world.pass("alice@contoso.test").await;
    assert_eq!(incoming(&healed), &Outcome::Success);
    assert_eq!(
        world
            .count("SELECT count(*) FROM mailboxes WHERE last_error_client_request_id IS NOT NULL")
            .await,
        0
    );
}

#[test]
fn turning_verification_off_is_warned_loudly_by_check_config_and_a_bad_ca_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let insecure = crate::support::exsync(
        dir.path(),
        &["check-config"],
        &[("EXSYNC__HTTP__ACCEPT_INVALID_CERTS", "true")],
    );
    let text = crate::support::all_output(&insecure);
    assert!(insecure.status.success(), "{text}");
    assert!(
        text.contains("WARNING: TLS CERTIFICATE VERIFICATION IS OFF"),
        "{text}"
    );

    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, "not a certificate\n").unwrap();
    let refused = crate::support::exsync(
        dir.path(),
        &["check-config"],
        &[("EXSYNC__HTTP__CA_FILE", bundle.to_str().unwrap())],
    );
    let text = crate::support::all_output(&refused);
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(text.contains("http.ca_file"), "{text}");

    let secure = crate::support::exsync(dir.path(), &["check-config"], &[]);
    let text = crate::support::all_output(&secure);
    assert!(secure.status.success(), "{text}");
    assert!(!text.contains("VERIFICATION IS OFF"), "{text}");
    assert!(text.contains("TLS trust:"), "{text}");
}

#[sqlx::test]
async fn the_daemon_warns_at_start_when_verification_is_off(pool: PgPool) {
    let world = World::new(pool).await;
    let mut settings = fast_settings();
    settings.http.accept_invalid_certs = true;
    let logs = exsync::telemetry::CapturedLogs::default();
    let subscriber = tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        exsync::telemetry::json_layer(logs.clone()),
    );
    let _app = tracing::subscriber::with_default(subscriber, || world.app(settings));
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("VERIFICATION IS OFF"))),
        "{lines:?}"
    );
}

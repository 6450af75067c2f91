//! Connecting and signing in to a real tenant, over real HTTPS with the fake Exchange:
//! private certificate authorities (through `http.ca_file` and the system store), NTLM
//! channel binding per RFC 5929, OAuth app-only with a certificate, token endpoint trouble,
//! `server_type` rules and correlation ids.

use crate::support::world::{fast_settings, World};
use crate::support::{database_url, key_file};
use exsync::config::Settings;
use exsync::domain::Workload;
use exsync::ews::client::{ClientOptions, EwsAuth, EwsClient};
use exsync::ews::ntlm::NtlmCredentials;
use exsync::ews::ntlm_http::NtlmSessionPool;
use exsync::ews::ops::GetFolderRequest;
use exsync::ews::tls::{SystemRoots, TrustSettings};
use exsync::ews::transport::{Transport, TransportSettings};
use exsync::ews::types::{BaseFolderId, BaseShape, DistinguishedFolderName};
use exsync::fake_exchange::{CertificateSignature, ExtendedProtection, FakeConfig, FakeTls};
use exsync::sync::pass::Outcome;
use secrecy::SecretString;
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
    exsync::apply::apply_text(
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

//! Helpers shared by the integration tests: test databases, keys, running the CLI.

#![allow(dead_code)]

pub mod daemon;
pub mod ews_schema;
pub mod graph;
pub mod world;

use exsync::crypto::{CredentialCipher, CredentialKey};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The URL of the fresh database `sqlx::test` made for this test.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL (run scripts/test.sh)");
    let name = pool
        .connect_options()
        .get_database()
        .expect("sqlx::test databases have a name")
        .to_owned();
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// A fresh credential key written to a file in `dir`; returns its path and a cipher for it.
pub fn key_file(dir: &Path) -> (PathBuf, CredentialCipher) {
    let key = CredentialKey::generate();
    let text = {
        use secrecy::ExposeSecret;
        key.to_base64().expose_secret().to_owned()
    };
    let path = dir.join("credential.key");
    std::fs::write(&path, &text).expect("write key");
    let cipher = CredentialCipher::new(CredentialKey::parse(&text, "test").expect("key"));
    (path, cipher)
}

/// Run the `exsync` binary in `dir` with the given environment (no inherited EXSYNC__*).
pub fn exsync(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exsync"));
    command.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("EXSYNC__") || key == "DATABASE_URL" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run exsync")
}

/// Standard output and error of a finished command, as one text for assertions.
pub fn all_output(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A valid apply file with one profile and two mailboxes, secrets given inline.
pub const SMALL_ORG: &str = r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "https://mail.contoso.test/EWS/Exchange.asmx"
auth = "profile_credentials"
username = "svc-exsync"
password = "Pr0file-Secret-Value!"
max_concurrent_connections = 5

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"

[[mailbox]]
address = "Bob@Contoso.test"
profile = "Contoso"
approval = "approved"
act = "server_side_sync"
"#;

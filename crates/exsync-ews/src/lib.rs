//! EWS: the wire model (types, SOAP envelopes, one module per operation), its codec and errors,
//! plus the HTTP transport and authentication (Basic, NTLM, OAuth).
//!
//! Shared by exsync's sync engine and the fake Exchange server (`fake-exchange`). It knows
//! nothing of exsync's database or config (Cargo keeps it so: it depends on neither); metrics
//! reach the daemon through the [`observe`] hook.

pub mod client;
pub mod error;
pub mod extended;
pub mod ntlm;
pub mod ntlm_http;
pub mod oauth;
pub mod observe;
pub mod ops;
pub mod recurrence;
pub mod soap;
pub mod tls;
pub mod transport;
pub mod types;
pub mod wire;
pub mod xml;

pub use error::{ErrorKind, EwsError};

/// Test helper: validate generated envelopes with the project's schema checker.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Write;
    use std::process::Command;

    /// `check-soap` in `$EXSYNC_EWS_SCHEMA`, else in `shared/ews-schema` beside the repository.
    fn checker() -> std::path::PathBuf {
        let dir = std::env::var_os("EXSYNC_EWS_SCHEMA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/ews-schema")
            });
        dir.join("check-soap")
    }

    /// Whether `check-soap` and python3 with lxml are there; a loud warning when not, and a
    /// failure in CI (`CI=true`), where schema conformance is never skipped.
    fn available() -> bool {
        let ok = checker().exists()
            && Command::new("python3")
                .args(["-c", "import lxml"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "check-soap ({}) or python3/lxml unavailable; in CI that is a failure",
                checker().display()
            );
            eprintln!("WARNING: check-soap or python3/lxml unavailable; schema validation SKIPPED");
        }
        ok
    }

    /// Pipe `xml` through `check-soap`; fail the test when the schema rejects it.
    /// Skips (with a loud warning) when the checker or python/lxml is unavailable, except in CI.
    pub(crate) fn check_soap(xml: &str) {
        if !available() {
            return;
        }
        let checker = checker();
        let mut file = tempfile::Builder::new()
            .suffix(".xml")
            .tempfile()
            .expect("temp file");
        file.write_all(xml.as_bytes()).expect("write temp file");
        let out = Command::new("python3")
            .arg(&checker)
            .arg(file.path())
            .output()
            .expect("run check-soap");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 valid"),
            "check-soap rejected the document:\n{stdout}\n{}\n--- document ---\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_checker_rejects_schema_violations() {
        // Guards against a vacuous helper: ItemIds before ItemShape breaks GetItem's sequence.
        if !available() {
            return;
        }
        let bad = concat!(
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/""#,
            r#" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages""#,
            r#" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><soap:Body>"#,
            r#"<m:GetItem><m:ItemIds><t:ItemId Id="a"/></m:ItemIds>"#,
            r#"<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape></m:GetItem>"#,
            r#"</soap:Body></soap:Envelope>"#
        );
        let result = std::panic::catch_unwind(|| check_soap(bad));
        assert!(
            result.is_err(),
            "check-soap accepted an out-of-order GetItem"
        );
    }
}

//! EWS: the wire model (types, SOAP envelopes, one module per operation), its codec and errors,
//! plus the HTTP transport and authentication (Basic, NTLM, OAuth).
//!
//! Shared by the client and the fake Exchange server; it imports nothing from `store`, `config`
//! or `sync`.

pub mod error;
pub mod ntlm;
pub mod ntlm_http;
pub mod oauth;
pub mod ops;
pub mod soap;
pub mod transport;
pub mod types;
pub mod xml;

pub use error::{ErrorKind, EwsError};

/// Test helper: validate generated envelopes with the project's schema checker.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Write;
    use std::process::Command;

    const CHECK_SOAP: &str = "/work/shared/ews-schema/check-soap";

    /// Pipe `xml` through `check-soap`; fail the test when the schema rejects it.
    /// Skips (with a printed note) when the checker or python/lxml is unavailable.
    pub(crate) fn check_soap(xml: &str) {
        let available = std::path::Path::new(CHECK_SOAP).exists()
            && Command::new("python3")
                .args(["-c", "import lxml"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if !available {
            eprintln!("note: check-soap or python3/lxml unavailable; schema validation skipped");
            return;
        }
        let mut file = tempfile::Builder::new()
            .suffix(".xml")
            .tempfile()
            .expect("temp file");
        file.write_all(xml.as_bytes()).expect("write temp file");
        let out = Command::new("python3")
            .arg(CHECK_SOAP)
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
}

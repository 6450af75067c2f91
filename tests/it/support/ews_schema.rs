//! Schema checks for integration tests: pipe a SOAP document through `check-soap`
//! (`$EXSYNC_EWS_SCHEMA`, else `../shared/ews-schema` beside the package).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

fn checker() -> PathBuf {
    std::env::var_os("EXSYNC_EWS_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/ews-schema"))
        .join("check-soap")
}

/// Whether the checker and python3 with lxml are there (prints a loud warning when not). In
/// CI (`CI=true`) their absence fails the test instead: schema conformance is never skipped.
pub fn available() -> bool {
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

/// Fail the test when the EWS schema rejects `xml`; skip (with a note) without the checker.
pub fn check_soap(xml: &str) {
    if !available() {
        return;
    }
    let mut file = tempfile::Builder::new()
        .suffix(".xml")
        .tempfile()
        .expect("temp file");
    file.write_all(xml.as_bytes()).expect("write temp file");
    let out = Command::new("python3")
        .arg(checker())
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

//! Recording the EWS traffic the fake sees, for a schema check after the test suite: every
//! request exsync sent (recognised by its `User-Agent`) and every SOAP answer the fake gave,
//! written as files into a directory (`FakeConfig::traffic_dir`, default
//! `$EXSYNC_FAKE_TRAFFIC_DIR`); `scripts/check-traffic.sh` validates them with `check-soap`.
//!
//! Owns deduplication and bounds: documents are keyed by their shape (element and attribute
//! names, enumeration-like values; other values and runs of same-shaped siblings folded), one
//! file per shape, at most [`MAX_FILES`] files per process. It knows nothing of EWS semantics.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use exsync_ews::xml::{parse, Element, XmlLimits};

/// The environment variable naming the directory traffic is recorded into.
pub const TRAFFIC_DIR_ENV: &str = "EXSYNC_FAKE_TRAFFIC_DIR";

/// Most files one process writes (a suite of several hundred fakes stays bounded).
const MAX_FILES: usize = 5_000;

/// Documents larger than this are not recorded (their shapes repeat smaller ones).
const MAX_BYTES: usize = 2 * 1024 * 1024;

static WRITTEN: AtomicUsize = AtomicUsize::new(0);

/// Which way a document went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A request exsync sent.
    Request,
    /// An answer the fake gave.
    Response,
}

/// Writes distinct documents into a directory.
#[derive(Debug, Clone)]
pub(crate) struct TrafficRecorder {
    dir: PathBuf,
}

impl TrafficRecorder {
    /// A recorder writing into `dir` (created on first use).
    pub(crate) fn new(dir: PathBuf) -> Self {
        TrafficRecorder { dir }
    }

    /// Record `body` unless a document of the same shape is already there. Best effort: a
    /// failure to write is not the request's problem.
    pub(crate) fn record(&self, direction: Direction, body: &[u8]) {
        if body.len() > MAX_BYTES || WRITTEN.load(Ordering::Relaxed) >= MAX_FILES {
            return;
        }
        let Ok(root) = parse(body, &XmlLimits::default()) else {
            return;
        };
        let mut hasher = DefaultHasher::new();
        shape(&root).hash(&mut hasher);
        let kind = match direction {
            Direction::Request => "request",
            Direction::Response => "response",
        };
        let operation = operation_of(&root);
        let path = self
            .dir
            .join(format!("{kind}-{operation}-{:016x}.xml", hasher.finish()));
        if path.exists() || std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        // Written aside and renamed, so a reader never sees half a document.
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        if std::fs::write(&partial, body).is_ok() && std::fs::rename(&partial, &path).is_ok() {
            WRITTEN.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = std::fs::remove_file(&partial);
        }
    }
}

/// The operation element's name (the body's first child), for readable file names.
fn operation_of(envelope: &Element) -> String {
    envelope
        .children
        .iter()
        .find(|c| c.name == "Body")
        .and_then(|b| b.children.first())
        .map(|op| {
            op.name
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(40)
                .collect()
        })
        .unwrap_or_else(|| "none".into())
}

/// A value that may be an enumeration member is kept; anything else is only its class.
fn value_class(value: &str) -> &str {
    let value = value.trim();
    if value.is_empty() {
        ""
    } else if value.len() <= 40 && value.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
        value
    } else {
        "#"
    }
}

/// The shape of an element: names, enumeration-like values, and children with runs of
/// same-shaped siblings folded into one.
fn shape(el: &Element) -> String {
    let mut out = format!("<{}:{}", el.namespace, el.name);
    let mut attrs: Vec<_> = el
        .attributes
        .iter()
        .map(|(k, v)| format!(" {k}={}", value_class(v)))
        .collect();
    attrs.sort();
    out.extend(attrs);
    out.push('>');
    out.push_str(value_class(&el.text));
    let mut previous: Option<String> = None;
    for child in &el.children {
        let s = shape(child);
        if previous.as_ref() != Some(&s) {
            out.push_str(&s);
        }
        previous = Some(s);
    }
    out.push_str("</>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(xml: &str) -> String {
        shape(&parse(xml.as_bytes(), &XmlLimits::default()).unwrap())
    }

    #[test]
    fn documents_differing_only_in_values_or_repetitions_share_a_shape() {
        let one = shape_of(r#"<r><i Id="AAMk1">Order 1</i></r>"#);
        let two = shape_of(r#"<r><i Id="AAMk22">Order 22</i><i Id="AAMk3">Order 3</i></r>"#);
        assert_eq!(one, two);
        // Enumeration-like values are part of the shape.
        assert_ne!(
            shape_of("<r><b>IdOnly</b></r>"),
            shape_of("<r><b>Default</b></r>")
        );
        assert_ne!(shape_of("<r><a/></r>"), shape_of("<r><b/></r>"));
    }

    #[test]
    fn one_file_per_shape_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = TrafficRecorder::new(dir.path().join("t"));
        let doc = |id: &str| {
            format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetItem Id="{id}1"/></s:Body></s:Envelope>"#
            )
        };
        recorder.record(Direction::Request, doc("a").as_bytes());
        recorder.record(Direction::Request, doc("b").as_bytes());
        recorder.record(Direction::Response, doc("a").as_bytes());
        recorder.record(Direction::Response, b"not xml");
        let mut files: Vec<String> = std::fs::read_dir(dir.path().join("t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files[0].starts_with("request-GetItem-"), "{files:?}");
        assert!(files[1].starts_with("response-GetItem-"), "{files:?}");
    }
}

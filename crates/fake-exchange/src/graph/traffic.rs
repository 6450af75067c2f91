//! Recording the fake Graph's JSON traffic for a conformance check after the test suite: every
//! request body it accepted and every answer it gave, one file per distinct shape, each with a
//! sidecar naming how to check it (`METHOD`, a path template, `request` or the status), into
//! the traffic directory (`$EXSYNC_FAKE_TRAFFIC_DIR`); `scripts/check-graph-traffic.sh` runs
//! `check-json` on them.
//!
//! Owns deduplication and bounds; it knows nothing of Graph semantics beyond path templates.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// Most files one process writes.
const MAX_FILES: usize = 5_000;

/// Bodies larger than this are not recorded.
const MAX_BYTES: usize = 2 * 1024 * 1024;

static WRITTEN: AtomicUsize = AtomicUsize::new(0);

/// Path segments that are names, kept in templates; every other segment is an id.
const NAMES: &[&str] = &[
    "users",
    "mailFolders",
    "messages",
    "delta",
    "send",
    "sendMail",
    "translateExchangeIds",
    "calendarView",
    "events",
    "contacts",
    "contactFolders",
    "todo",
    "lists",
    "tasks",
    "$value",
    "subscriptions",
];

/// Writes distinct JSON documents with their check arguments.
#[derive(Debug, Clone)]
pub(crate) struct GraphTraffic {
    dir: PathBuf,
}

/// `/users/a@b/messages/AAkA…` → `/users/x/messages/x` (what `check-json` needs is the shape
/// of the path, and one template groups many files into one run).
pub(crate) fn template(path: &str) -> String {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            // `contactFolders/contacts/contacts/delta`: the folder segment is an id.
            let after_folder = i > 0
                && path.split('/').filter(|s| !s.is_empty()).nth(i - 1) == Some("contactFolders");
            if NAMES.contains(&s) && !after_folder {
                s.to_owned()
            } else {
                "x".to_owned()
            }
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// The shape of a JSON value: keys, enumeration-like strings, element shapes without repeats.
fn shape(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "b".into(),
        Value::Number(_) => "n".into(),
        Value::String(s) => {
            if s.len() <= 40 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()) {
                format!("'{s}'")
            } else {
                "s".into()
            }
        }
        Value::Array(items) => {
            let mut shapes: Vec<String> = items.iter().map(shape).collect();
            shapes.sort();
            shapes.dedup();
            format!("[{}]", shapes.join(","))
        }
        Value::Object(map) => {
            let mut parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", shape(v)))
                .collect();
            parts.sort();
            format!("{{{}}}", parts.join(","))
        }
    }
}

impl GraphTraffic {
    /// A recorder writing into `dir`.
    pub(crate) fn new(dir: PathBuf) -> Self {
        GraphTraffic { dir }
    }

    /// A request body the fake accepted.
    pub(crate) fn request(&self, method: &str, path: &str, body: &[u8]) {
        self.write(method, path, "request", body);
    }

    /// An answer (an empty body for 202/204 is recorded too: it must be empty).
    pub(crate) fn response(&self, method: &str, path: &str, status: u16, body: &[u8]) {
        self.write(method, path, &status.to_string(), body);
    }

    fn write(&self, method: &str, path: &str, what: &str, body: &[u8]) {
        if body.len() > MAX_BYTES || WRITTEN.load(Ordering::Relaxed) >= MAX_FILES {
            return;
        }
        let template = template(path);
        let body_shape = if body.is_empty() {
            "empty".to_owned()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => shape(&v),
                // Not JSON: check-json reports it (a fake must never answer that).
                Err(_) => "unreadable".to_owned(),
            }
        };
        let mut hasher = DefaultHasher::new();
        (method, &template, what, &body_shape).hash(&mut hasher);
        let name = format!("graph-{}-{:016x}", what, hasher.finish());
        let json = self.dir.join(format!("{name}.json"));
        if json.exists() || std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let args = self.dir.join(format!("{name}.args"));
        let pid = std::process::id();
        let partial = self.dir.join(format!("{name}.json.{pid}.partial"));
        let partial_args = self.dir.join(format!("{name}.args.{pid}.partial"));
        let ok = std::fs::write(&partial, body).is_ok()
            && std::fs::write(&partial_args, format!("{method}\n{template}\n{what}\n")).is_ok()
            && std::fs::rename(&partial_args, &args).is_ok()
            && std::fs::rename(&partial, &json).is_ok();
        if ok {
            WRITTEN.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&partial_args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_templates_and_bodies_shapes() {
        assert_eq!(
            template("/users/a@b.test/mailFolders/inbox/messages/delta"),
            "/users/x/mailFolders/x/messages/delta"
        );
        assert_eq!(
            template("/users/a@b.test/contactFolders/contacts/contacts/delta"),
            "/users/x/contactFolders/x/contacts/delta"
        );
        let one = serde_json::json!({"value": [{"id": "1"}, {"id": "2"}]});
        let two = serde_json::json!({"value": [{"id": "3"}]});
        assert_eq!(shape(&one), shape(&two));
    }
}

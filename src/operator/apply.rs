//! `exsync apply FILE.toml`: declarative, idempotent upsert of profiles and mailboxes.
//!
//! The file states the desired settings of each `[[profile]]` (keyed by `name`) and
//! `[[mailbox]]` (keyed by `address`); keys left out take their documented defaults. Every
//! entry is validated before anything is written, every problem is reported with the file,
//! the entry and the field, and all writes happen in one transaction: an invalid file
//! writes nothing. Rows not named in the file are left alone. Secrets may come inline, from
//! an environment variable (`*_env`) or from a file (`*_file`); they are encrypted with the
//! credential key before they reach the database and never printed.

use crate::crypto::{CredentialCipher, CryptoError, SecretSlot};
use crate::domain::scope::{ActScope, AttendeeDelete, IncomingFilter};
use crate::domain::{
    ApprovalStatus, AssertionSigning, AuthMethod, PasswordScheme, Protocol, ServerType, SyncMethod,
    DEFAULT_GRAPH_URL,
};
use crate::store::declare::{
    self, MailboxValues, ProfileValues, StoredMailboxScope, StoredProfileScope, Tx,
};
use crate::store::{MailboxRow, ProfileRow, Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// What a Graph profile without `ews_url` stores there (Exchange Online's EWS endpoint; a
/// Graph profile never calls it).
const EXCHANGE_ONLINE_EWS_URL: &str = "https://outlook.office365.com/EWS/Exchange.asmx";

/// Why an apply file was rejected; nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not valid TOML.
    #[error("{path}: not valid TOML: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// One or more entries are invalid; each problem names its entry and field.
    #[error("{path}: {} invalid entr{}; nothing was written:\n{}", problems.len(), if problems.len() == 1 { "y" } else { "ies" }, list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<EntryProblem>,
    },
    /// The database rejected an entry (a rule enforced by a constraint).
    #[error("{path}: {entry}: rejected by the database: {reason}; nothing was written")]
    Rejected {
        /// The file.
        path: PathBuf,
        /// The entry, e.g. `[[mailbox]] #3 "sales@contoso.com"`.
        entry: String,
        /// The database's reason.
        reason: String,
    },
    /// The credential key is missing or unusable.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The database failed for another reason.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(problems: &[EntryProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One invalid value: which entry, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// The entry, e.g. `[[profile]] #1 "Contoso"`.
    pub entry: String,
    /// The field, e.g. `max_concurrent_connections`.
    pub field: String,
    /// What is wrong (never a secret's value).
    pub reason: String,
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: field `{}`: {}", self.entry, self.field, self.reason)
    }
}

/// What apply did with one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A new row.
    Created,
    /// An existing row, with the fields that changed (secrets named, never shown).
    Changed {
        /// Changed fields.
        fields: Vec<&'static str>,
    },
    /// Already as desired.
    Unchanged,
}

/// One line of apply's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// `profile` or `mailbox`.
    pub kind: &'static str,
    /// Profile name or mailbox address.
    pub key: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The result of an apply run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// One line per entry, in file order (profiles first).
    pub entries: Vec<Applied>,
    /// True when nothing was written because of `--dry-run`.
    pub dry_run: bool,
    /// Settings that were written but will not work for long (e.g. EWS in Exchange Online).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ApplyWarning>,
}

/// A setting `apply` accepted with a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyWarning {
    /// The entry, e.g. `[[profile]] #1 "Contoso"`.
    pub entry: String,
    /// The field.
    pub field: String,
    /// Stable code, e.g. `exchange_online.ews_blocked_by_default`.
    pub code: String,
    /// Why.
    pub reason: String,
}

impl ApplyReport {
    /// Count of entries with the given outcome kind.
    fn count(&self, wanted: fn(&Outcome) -> bool) -> usize {
        self.entries.iter().filter(|e| wanted(&e.outcome)).count()
    }

    /// Whether the run changed nothing.
    pub fn is_noop(&self) -> bool {
        self.entries.iter().all(|e| e.outcome == Outcome::Unchanged)
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.warnings {
            writeln!(
                f,
                "warning: {}: field `{}`: {} ({})",
                w.entry, w.field, w.reason, w.code
            )?;
        }
        for entry in &self.entries {
            match &entry.outcome {
                Outcome::Created => writeln!(f, "{} {}: created", entry.kind, entry.key)?,
                Outcome::Changed { fields } => writeln!(
                    f,
                    "{} {}: changed ({})",
                    entry.kind,
                    entry.key,
                    fields.join(", ")
                )?,
                Outcome::Unchanged => writeln!(f, "{} {}: unchanged", entry.kind, entry.key)?,
            }
        }
        write!(
            f,
            "{} created, {} changed, {} unchanged{}",
            self.count(|o| *o == Outcome::Created),
            self.count(|o| matches!(o, Outcome::Changed { .. })),
            self.count(|o| *o == Outcome::Unchanged),
            if self.dry_run {
                " (dry run: nothing written)"
            } else if self.is_noop() {
                " (no changes)"
            } else {
                ""
            }
        )
    }
}

// ----------------------------------------------------------------------------------------
// The file format.
// ----------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyFile {
    #[serde(default)]
    profile: Vec<toml::Value>,
    #[serde(default)]
    mailbox: Vec<toml::Value>,
}

/// A secret given inline, by environment variable or by file (at most one of the three).
#[derive(Debug, Default)]
struct SecretInputs {
    inline: Option<String>,
    env: Option<String>,
    file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEntry {
    name: String,
    server_type: ServerType,
    #[serde(default)]
    protocol: Option<Protocol>,
    #[serde(default)]
    ews_url: Option<String>,
    #[serde(default)]
    graph_url: Option<String>,
    auth: AuthMethod,
    #[serde(default)]
    password_scheme: Option<PasswordScheme>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    oauth_tenant: Option<String>,
    #[serde(default)]
    oauth_client_id: Option<String>,
    #[serde(default)]
    oauth_client_secret: Option<String>,
    #[serde(default)]
    oauth_client_secret_env: Option<String>,
    #[serde(default)]
    oauth_client_secret_file: Option<PathBuf>,
    #[serde(default)]
    oauth_token_url: Option<String>,
    #[serde(default)]
    oauth_scope: Option<String>,
    #[serde(default)]
    oauth_certificate_file: Option<PathBuf>,
    #[serde(default)]
    oauth_private_key: Option<String>,
    #[serde(default)]
    oauth_private_key_env: Option<String>,
    #[serde(default)]
    oauth_private_key_file: Option<PathBuf>,
    #[serde(default)]
    oauth_assertion_signing: Option<AssertionSigning>,
    #[serde(default)]
    use_impersonation: Option<bool>,
    #[serde(default)]
    use_same_settings_for_outgoing: Option<bool>,
    #[serde(default)]
    outgoing_ews_url: Option<String>,
    #[serde(default)]
    outgoing_username: Option<String>,
    #[serde(default)]
    outgoing_password: Option<String>,
    #[serde(default)]
    outgoing_password_env: Option<String>,
    #[serde(default)]
    outgoing_password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "instant")]
    process_emails_from: Option<DateTime<Utc>>,
    #[serde(default)]
    incoming_filter: Option<IncomingFilter>,
    #[serde(default)]
    act_scope: Option<ActScope>,
    #[serde(default)]
    act_attendee_delete: Option<AttendeeDelete>,
    #[serde(default)]
    tracking_token_prefix: Option<String>,
    #[serde(default)]
    max_concurrent_connections: Option<i64>,
    #[serde(default)]
    min_polling_interval_minutes: Option<i64>,
    #[serde(default)]
    enabled: Option<bool>,
    /// Use EWS streaming notifications for this profile's mailboxes (default true).
    #[serde(default)]
    streaming: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxEntry {
    address: String,
    profile: String,
    #[serde(default)]
    allow_credentials_for_email_processing: Option<bool>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "instant")]
    process_email_received_after: Option<DateTime<Utc>>,
    #[serde(default)]
    incoming_filter: Option<IncomingFilter>,
    #[serde(default)]
    act_scope: Option<ActScope>,
    #[serde(default)]
    incoming: Option<SyncMethod>,
    #[serde(default)]
    outgoing: Option<SyncMethod>,
    #[serde(default)]
    act: Option<SyncMethod>,
    #[serde(default)]
    approval: Option<ApprovalStatus>,
    #[serde(default)]
    payload_logging: Option<bool>,
}

/// RFC 3339 instants, written as a TOML datetime or a string; a bare date means midnight UTC.
fn instant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Toml(toml::value::Datetime),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Toml(dt) => dt.to_string(),
        Raw::Text(text) => text,
    };
    parse_instant(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc());
        }
    }
    Err(format!(
        "{text:?} is not an RFC 3339 date-time with an offset (e.g. 2026-01-31T00:00:00Z) or a date"
    ))
}

// ----------------------------------------------------------------------------------------
// Validated, desired rows.
// ----------------------------------------------------------------------------------------

struct DesiredProfile {
    entry: String,
    name: String,
    server_type: ServerType,
    protocol: Protocol,
    ews_url: String,
    graph_url: String,
    auth: AuthMethod,
    password_scheme: PasswordScheme,
    username: Option<String>,
    password: Option<SecretString>,
    oauth_tenant: Option<String>,
    oauth_client_id: Option<String>,
    oauth_client_secret: Option<SecretString>,
    oauth_token_url: Option<String>,
    oauth_scope: Option<String>,
    oauth_certificate_pem: Option<String>,
    oauth_private_key: Option<SecretString>,
    oauth_assertion_signing: AssertionSigning,
    use_impersonation: bool,
    use_same_settings_for_outgoing: bool,
    outgoing_ews_url: Option<String>,
    outgoing_username: Option<String>,
    outgoing_password: Option<SecretString>,
    process_emails_from: Option<DateTime<Utc>>,
    scope: ProfileScope,
    max_concurrent_connections: i32,
    min_polling_interval_minutes: i32,
    enabled: bool,
    streaming: bool,
}

struct DesiredMailbox {
    entry: String,
    address: String,
    profile: String,
    allow_credentials_for_email_processing: bool,
    username: Option<String>,
    password: Option<SecretString>,
    process_email_received_after: Option<DateTime<Utc>>,
    scope: MailboxScope,
    incoming: SyncMethod,
    outgoing: SyncMethod,
    act: SyncMethod,
    approval: ApprovalStatus,
    payload_logging: bool,
}

/// Collects problems while validating one entry.
struct Checker<'a> {
    entry: String,
    problems: &'a mut Vec<EntryProblem>,
}

impl Checker<'_> {
    fn fail(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push(EntryProblem {
            entry: self.entry.clone(),
            field: field.to_owned(),
            reason: reason.into(),
        });
    }

    fn url(&mut self, field: &str, value: Option<&str>) -> Option<String> {
        let value = value?;
        match url::Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(value.to_owned())
            }
            Ok(_) => {
                self.fail(field, "must be an http:// or https:// URL with a host");
                None
            }
            Err(e) => {
                self.fail(field, format!("not a URL ({e})"));
                None
            }
        }
    }

    fn text(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        let value = value?;
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.fail(field, "must not be empty (leave the key out instead)");
            return None;
        }
        if trimmed.chars().count() > max {
            self.fail(field, format!("longer than {max} characters"));
            return None;
        }
        Some(trimmed.to_owned())
    }

    fn range(&mut self, field: &str, value: i64, min: i64, max: i64) -> i32 {
        if value < min || value > max {
            self.fail(field, format!("{value} is out of range {min}..={max}"));
        }
        i32::try_from(value.clamp(min, max)).unwrap_or(min as i32)
    }

    fn secret(
        &mut self,
        field: &str,
        inputs: SecretInputs,
        base_dir: &Path,
    ) -> Option<SecretString> {
        let given = [
            inputs.inline.is_some(),
            inputs.env.is_some(),
            inputs.file.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given > 1 {
            self.fail(
                field,
                format!("give only one of `{field}`, `{field}_env` and `{field}_file`"),
            );
            return None;
        }
        if let Some(text) = inputs.inline {
            if text.is_empty() {
                self.fail(field, "is empty");
                return None;
            }
            return Some(SecretString::from(text));
        }
        if let Some(name) = inputs.env {
            return match std::env::var(&name) {
                Ok(text) if !text.is_empty() => Some(SecretString::from(text)),
                _ => {
                    self.fail(
                        &format!("{field}_env"),
                        format!("environment variable {name} is not set or empty"),
                    );
                    None
                }
            };
        }
        if let Some(file) = inputs.file {
            let path = if file.is_absolute() {
                file
            } else {
                base_dir.join(file)
            };
            return match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let text = text.trim_end_matches(['\r', '\n']).to_owned();
                    if text.is_empty() {
                        self.fail(
                            &format!("{field}_file"),
                            format!("{} is empty", path.display()),
                        );
                        None
                    } else {
                        Some(SecretString::from(text))
                    }
                }
                Err(e) => {
                    self.fail(
                        &format!("{field}_file"),
                        format!("cannot read {}: {}", path.display(), e.kind()),
                    );
                    None
                }
            };
        }
        None
    }
}

fn entry_label(kind: &str, index: usize, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("[[{kind}]] #{} {key:?}", index + 1),
        None => format!("[[{kind}]] #{}", index + 1),
    }
}

/// Decode the `[[kind]]` entries of an apply file, each with its label; an entry that does not
/// decode, or whose key (`key_field`, compared as `normalise` makes it) repeats an earlier
/// one, is a problem and left out.
fn decode_unique<T: for<'de> Deserialize<'de>>(
    values: Vec<toml::Value>,
    (kind, key_field): (&str, &str),
    normalise: impl Fn(&T) -> String,
    problems: &mut Vec<EntryProblem>,
) -> Vec<(T, String)> {
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let key = value
            .get(key_field)
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let label = entry_label(kind, index, key.as_deref());
        let Some(entry) = decode_entry::<T>(value, &label, problems) else {
            continue;
        };
        if !seen.insert(normalise(&entry)) {
            problems.push(EntryProblem {
                entry: label,
                field: key_field.to_owned(),
                reason: format!("another [[{kind}]] in this file has the same {key_field}"),
            });
            continue;
        }
        entries.push((entry, label));
    }
    entries
}

/// Turn serde's message into (field, reason) where it names a field.
fn split_serde_message(message: &str) -> (String, String) {
    // toml's messages look like: "unknown field `x`, expected one of ..." or
    // "invalid type: string \"a\", expected i64" possibly followed by "for key `x`".
    if let Some(rest) = message.split("unknown field `").nth(1) {
        if let Some(field) = rest.split('`').next() {
            return (
                field.to_owned(),
                format!("unknown key ({})", message.trim()),
            );
        }
    }
    if let Some(rest) = message.split("missing field `").nth(1) {
        if let Some(field) = rest.split('`').next() {
            return (field.to_owned(), "is required".to_owned());
        }
    }
    if let Some(rest) = message.split("for key `").nth(1) {
        if let Some(field) = rest.split('`').next() {
            return (field.to_owned(), message.trim().to_owned());
        }
    }
    ("?".to_owned(), message.trim().to_owned())
}

/// Deserialize one entry field by field, so a type error names its field.
fn decode_entry<T: for<'de> Deserialize<'de>>(
    value: toml::Value,
    label: &str,
    problems: &mut Vec<EntryProblem>,
) -> Option<T> {
    let table = match value {
        toml::Value::Table(table) => table,
        other => {
            problems.push(EntryProblem {
                entry: label.to_owned(),
                field: "-".to_owned(),
                reason: format!("must be a table, found a {}", other.type_str()),
            });
            return None;
        }
    };
    match T::deserialize(toml::Value::Table(table.clone())) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            let message = error.message().to_owned();
            let (mut field, reason) = split_serde_message(&message);
            if field == "?" {
                // Find the field whose value alone fails: the message then belongs to it.
                for (key, _) in table.iter() {
                    let mut without = table.clone();
                    without.remove(key);
                    if let Err(e) = T::deserialize(toml::Value::Table(without)) {
                        if e.message() != message {
                            field = key.clone();
                            break;
                        }
                    } else {
                        field = key.clone();
                        break;
                    }
                }
            }
            // serde's type errors quote the offending value: never echo a secret's.
            let reason = if SECRET_KEYS.contains(&field.as_str()) {
                "must be a string (value not shown: it is a secret)".to_owned()
            } else {
                reason
            };
            problems.push(EntryProblem {
                entry: label.to_owned(),
                field,
                reason,
            });
            None
        }
    }
}

/// Keys whose values are secrets, in any entry.
const SECRET_KEYS: &[&str] = &[
    "password",
    "oauth_client_secret",
    "outgoing_password",
    "oauth_private_key",
];

fn validate_profile(
    entry: ProfileEntry,
    label: String,
    base_dir: &Path,
    problems: &mut Vec<EntryProblem>,
    warnings: &mut Vec<ApplyWarning>,
) -> Option<DesiredProfile> {
    let before = problems.len();
    let mut c = Checker {
        entry: label.clone(),
        problems,
    };
    let name = c.text("name", Some(entry.name), 200).unwrap_or_default();
    let protocol = entry.protocol.unwrap_or(Protocol::Ews);
    // A Graph profile needs no EWS endpoint; Exchange Online's is stored for the record.
    let ews_url = match (&entry.ews_url, protocol) {
        (Some(url), _) => c.url("ews_url", Some(url)).unwrap_or_default(),
        (None, Protocol::Graph) => EXCHANGE_ONLINE_EWS_URL.to_owned(),
        (None, Protocol::Ews) => {
            c.fail("ews_url", "required when protocol = \"ews\" (the default)");
            String::new()
        }
    };
    let graph_url = c
        .url(
            "graph_url",
            Some(entry.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH_URL)),
        )
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let username = c.text("username", entry.username, 320);
    let password = c.secret(
        "password",
        SecretInputs {
            inline: entry.password,
            env: entry.password_env,
            file: entry.password_file,
        },
        base_dir,
    );
    let oauth_client_secret = c.secret(
        "oauth_client_secret",
        SecretInputs {
            inline: entry.oauth_client_secret,
            env: entry.oauth_client_secret_env,
            file: entry.oauth_client_secret_file,
        },
        base_dir,
    );
    let outgoing_password = c.secret(
        "outgoing_password",
        SecretInputs {
            inline: entry.outgoing_password,
            env: entry.outgoing_password_env,
            file: entry.outgoing_password_file,
        },
        base_dir,
    );
    let oauth_private_key = c.secret(
        "oauth_private_key",
        SecretInputs {
            inline: entry.oauth_private_key,
            env: entry.oauth_private_key_env,
            file: entry.oauth_private_key_file,
        },
        base_dir,
    );
    let oauth_certificate_pem = entry.oauth_certificate_file.as_ref().and_then(|file| {
        let path = if file.is_absolute() {
            file.clone()
        } else {
            base_dir.join(file)
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) => {
                c.fail(
                    "oauth_certificate_file",
                    format!("cannot read {}: {}", path.display(), e.kind()),
                );
                None
            }
        }
    });
    let oauth_assertion_signing = entry
        .oauth_assertion_signing
        .unwrap_or(AssertionSigning::Ps256);
    let oauth_tenant = c.text("oauth_tenant", entry.oauth_tenant, 200);
    let oauth_client_id = c.text("oauth_client_id", entry.oauth_client_id, 200);
    let oauth_token_url = c.url("oauth_token_url", entry.oauth_token_url.as_deref());
    let oauth_scope = c.text("oauth_scope", entry.oauth_scope, 500);
    let outgoing_ews_url = c.url("outgoing_ews_url", entry.outgoing_ews_url.as_deref());
    let outgoing_username = c.text("outgoing_username", entry.outgoing_username, 320);
    let max_concurrent_connections = c.range(
        "max_concurrent_connections",
        entry.max_concurrent_connections.unwrap_or(10),
        1,
        300,
    );
    let min_polling_interval_minutes = c.range(
        "min_polling_interval_minutes",
        entry.min_polling_interval_minutes.unwrap_or(1),
        1,
        1440,
    );
    let tracking_token_prefix =
        entry
            .tracking_token_prefix
            .and_then(|prefix| match tracking_prefix_problem(&prefix) {
                Some(problem) => {
                    c.fail("tracking_token_prefix", problem);
                    None
                }
                None => Some(prefix),
            });
    let use_impersonation = entry
        .use_impersonation
        .unwrap_or(entry.auth != AuthMethod::MailboxCredentials);
    let use_same = entry.use_same_settings_for_outgoing.unwrap_or(true);

    match entry.auth {
        AuthMethod::ProfileCredentials => {
            if username.is_none() {
                c.fail("username", "required when auth = \"profile_credentials\"");
            }
            if password.is_none() {
                c.fail(
                    "password",
                    "required when auth = \"profile_credentials\" (or password_env / password_file)",
                );
            }
        }
        AuthMethod::MailboxCredentials => {
            if use_impersonation {
                c.fail(
                    "use_impersonation",
                    "must be false when auth = \"mailbox_credentials\" (there is no service account to impersonate with)",
                );
            }
        }
        AuthMethod::OauthClientCredentials => {
            if oauth_client_id.is_none() {
                c.fail(
                    "oauth_client_id",
                    "required when auth = \"oauth_client_credentials\"",
                );
            }
            match (
                &oauth_client_secret,
                &oauth_certificate_pem,
                &oauth_private_key,
            ) {
                (Some(_), None, None) => {}
                (None, Some(pem), Some(key)) => {
                    // Parse the pair now: a wrong file is named here, not at the first sync.
                    let checked = crate::providers::ews::clients::client_credential(
                        &crate::domain::OAuthCredential::Certificate {
                            certificate_pem: pem.clone(),
                            private_key_pem: key.clone(),
                            signing: oauth_assertion_signing,
                        },
                    );
                    if let Err(e) = checked {
                        c.fail("oauth_certificate_file", e.to_string());
                    }
                }
                (None, None, None) => c.fail(
                    "oauth_client_secret",
                    "required when auth = \"oauth_client_credentials\" (or oauth_client_secret_env / _file), unless a certificate is given (oauth_certificate_file with oauth_private_key_file)",
                ),
                (Some(_), _, _) => c.fail(
                    "oauth_client_secret",
                    "give a client secret or a certificate (oauth_certificate_file + oauth_private_key_file), not both",
                ),
                (None, Some(_), None) => c.fail(
                    "oauth_private_key",
                    "oauth_certificate_file needs its private key (oauth_private_key_file / _env)",
                ),
                (None, None, Some(_)) => c.fail(
                    "oauth_certificate_file",
                    "the private key needs its certificate (oauth_certificate_file)",
                ),
            }
            if oauth_token_url.is_none() && oauth_tenant.is_none() {
                c.fail("oauth_token_url", "give oauth_token_url or oauth_tenant");
            }
            if !use_impersonation {
                c.fail(
                    "use_impersonation",
                    "must be true with OAuth client credentials (app-only access impersonates)",
                );
            }
        }
    }
    // What the server type allows: Exchange Online refuses password sign-ins outright.
    let password_scheme = entry.password_scheme.unwrap_or(PasswordScheme::Basic);
    for finding in crate::domain::server_type::findings(
        entry.server_type,
        protocol,
        entry.auth,
        password_scheme,
        use_impersonation,
        Utc::now().date_naive(),
    ) {
        match finding.severity {
            crate::domain::server_type::Severity::Refuse => c.fail(
                finding.field,
                format!("{} ({})", finding.reason, finding.code),
            ),
            crate::domain::server_type::Severity::Warn => warnings.push(ApplyWarning {
                entry: label.clone(),
                field: finding.field.to_owned(),
                code: finding.code.to_owned(),
                reason: finding.reason,
            }),
        }
    }
    if !use_same {
        if outgoing_ews_url.is_none() {
            c.fail(
                "outgoing_ews_url",
                "required when use_same_settings_for_outgoing = false",
            );
        }
        if entry.auth == AuthMethod::ProfileCredentials
            && (outgoing_username.is_none() || outgoing_password.is_none())
        {
            c.fail(
                "outgoing_username",
                "outgoing_username and outgoing_password are required when use_same_settings_for_outgoing = false with profile credentials",
            );
        }
    }
    if c.problems.len() > before {
        return None;
    }
    Some(DesiredProfile {
        entry: label,
        name,
        server_type: entry.server_type,
        protocol,
        ews_url,
        graph_url,
        auth: entry.auth,
        password_scheme,
        username,
        password,
        oauth_tenant,
        oauth_client_id,
        oauth_client_secret,
        oauth_token_url,
        oauth_scope,
        oauth_certificate_pem,
        oauth_private_key,
        oauth_assertion_signing,
        use_impersonation,
        use_same_settings_for_outgoing: use_same,
        outgoing_ews_url: if use_same { None } else { outgoing_ews_url },
        outgoing_username: if use_same { None } else { outgoing_username },
        outgoing_password: if use_same { None } else { outgoing_password },
        process_emails_from: entry.process_emails_from,
        scope: ProfileScope {
            incoming_filter: entry.incoming_filter.unwrap_or(IncomingFilter::All),
            act_scope: entry.act_scope.unwrap_or(ActScope::Tracked),
            act_attendee_delete: entry.act_attendee_delete.unwrap_or(AttendeeDelete::Keep),
            tracking_token_prefix,
        },
        max_concurrent_connections,
        min_polling_interval_minutes,
        enabled: entry.enabled.unwrap_or(true),
        streaming: entry.streaming.unwrap_or(true),
    })
}

/// Whether `address` looks like a primary SMTP address (one `@`, a dotted domain, no spaces).
pub fn is_plausible_address(address: &str) -> bool {
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.len() <= 320
        && !address
            .chars()
            .any(|ch| ch.is_whitespace() || ch == '<' || ch == '>')
}

fn validate_mailbox(
    entry: MailboxEntry,
    label: String,
    base_dir: &Path,
    profile_auth: Option<AuthMethod>,
    problems: &mut Vec<EntryProblem>,
) -> Option<DesiredMailbox> {
    let before = problems.len();
    let mut c = Checker {
        entry: label.clone(),
        problems,
    };
    let address = entry.address.trim().to_lowercase();
    if !is_plausible_address(&address) {
        c.fail(
            "address",
            format!("{:?} is not an email address", entry.address),
        );
    }
    let username = c.text("username", entry.username, 320);
    let password = c.secret(
        "password",
        SecretInputs {
            inline: entry.password,
            env: entry.password_env,
            file: entry.password_file,
        },
        base_dir,
    );
    let allow = entry
        .allow_credentials_for_email_processing
        .unwrap_or(false);
    if allow && (username.is_none() || password.is_none()) {
        c.fail(
            "allow_credentials_for_email_processing",
            "true needs the mailbox's username and password",
        );
    }
    match profile_auth {
        None => c.fail(
            "profile",
            format!(
                "no profile named {:?} in this file or the database",
                entry.profile
            ),
        ),
        Some(AuthMethod::MailboxCredentials) if !allow => c.fail(
            "allow_credentials_for_email_processing",
            format!(
                "profile {:?} uses mailbox credentials: set allow_credentials_for_email_processing = true with username and password",
                entry.profile
            ),
        ),
        Some(_) => {}
    }
    if c.problems.len() > before {
        return None;
    }
    Some(DesiredMailbox {
        entry: label,
        address,
        profile: entry.profile,
        allow_credentials_for_email_processing: allow,
        username,
        password,
        process_email_received_after: entry.process_email_received_after,
        scope: MailboxScope {
            incoming_filter: entry.incoming_filter,
            act_scope: entry.act_scope,
        },
        incoming: entry.incoming.unwrap_or(SyncMethod::ServerSideSync),
        outgoing: entry.outgoing.unwrap_or(SyncMethod::ServerSideSync),
        act: entry.act.unwrap_or(SyncMethod::None),
        approval: entry.approval.unwrap_or(ApprovalStatus::Pending),
        payload_logging: entry.payload_logging.unwrap_or(false),
    })
}

// ----------------------------------------------------------------------------------------
// Apply.
// ----------------------------------------------------------------------------------------

/// Read, validate and apply `path` in one transaction (rolled back when `dry_run`).
pub async fn apply_file(
    store: &Store,
    cipher: &CredentialCipher,
    path: &Path,
    dry_run: bool,
) -> Result<ApplyReport, ApplyError> {
    let text = std::fs::read_to_string(path).map_err(|e| ApplyError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    apply_text(store, cipher, &text, path, base_dir, dry_run).await
}

/// Apply the content of an apply file (`origin` names it in messages).
pub async fn apply_text(
    store: &Store,
    cipher: &CredentialCipher,
    text: &str,
    origin: &Path,
    base_dir: &Path,
    dry_run: bool,
) -> Result<ApplyReport, ApplyError> {
    let file: ApplyFile = toml::from_str(text).map_err(|e| ApplyError::Syntax {
        path: origin.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let mut profiles = Vec::new();
    let unique_profiles = decode_unique::<ProfileEntry>(
        file.profile,
        ("profile", "name"),
        |entry| entry.name.trim().to_owned(),
        &mut problems,
    );
    for (entry, label) in unique_profiles {
        if let Some(desired) =
            validate_profile(entry, label, base_dir, &mut problems, &mut warnings)
        {
            profiles.push(desired);
        }
    }

    // Profiles a mailbox may name: those in this file and those already stored.
    let mut known_auth: HashMap<String, AuthMethod> = HashMap::new();
    for (name, auth) in declare::profile_auths(store).await? {
        if let Ok(auth) = auth.parse() {
            known_auth.insert(name, auth);
        }
    }
    for profile in &profiles {
        known_auth.insert(profile.name.clone(), profile.auth);
    }

    let mut mailboxes = Vec::new();
    let unique_mailboxes = decode_unique::<MailboxEntry>(
        file.mailbox,
        ("mailbox", "address"),
        |entry| entry.address.trim().to_lowercase(),
        &mut problems,
    );
    for (entry, label) in unique_mailboxes {
        let auth = known_auth.get(&entry.profile).copied();
        if let Some(desired) = validate_mailbox(entry, label, base_dir, auth, &mut problems) {
            mailboxes.push(desired);
        }
    }
    if !problems.is_empty() {
        return Err(ApplyError::Invalid {
            path: origin.to_path_buf(),
            problems,
        });
    }

    let mut tx = declare::begin(store).await?;
    let mut report = ApplyReport {
        entries: Vec::new(),
        dry_run,
        warnings,
    };
    let rejected = |entry: &str, error: StoreError| match error.refusal() {
        Some(reason) => ApplyError::Rejected {
            path: origin.to_path_buf(),
            entry: entry.to_owned(),
            reason,
        },
        None => ApplyError::Store(error),
    };
    for profile in &profiles {
        let outcome = upsert_profile(&mut tx, cipher, profile)
            .await
            .map_err(|e| match e {
                UpsertError::Store(s) => rejected(&profile.entry, s),
                UpsertError::Crypto(c) => ApplyError::Crypto(c),
            })?;
        let scope_changes = upsert_profile_scope(&mut tx, &profile.name, &profile.scope)
            .await
            .map_err(|e| rejected(&profile.entry, e))?;
        let outcome = with_changes(outcome, scope_changes);
        report.entries.push(Applied {
            kind: "profile",
            key: profile.name.clone(),
            outcome,
        });
    }
    for mailbox in &mailboxes {
        let outcome = upsert_mailbox(&mut tx, cipher, mailbox)
            .await
            .map_err(|e| match e {
                UpsertError::Store(s) => rejected(&mailbox.entry, s),
                UpsertError::Crypto(c) => ApplyError::Crypto(c),
            })?;
        let scope_changes = upsert_mailbox_scope(&mut tx, &mailbox.address, &mailbox.scope)
            .await
            .map_err(|e| rejected(&mailbox.entry, e))?;
        let outcome = with_changes(outcome, scope_changes);
        report.entries.push(Applied {
            kind: "mailbox",
            key: mailbox.address.clone(),
            outcome,
        });
    }
    if dry_run {
        declare::rollback(tx).await?;
    } else {
        declare::commit(tx).await?;
    }
    Ok(report)
}

enum UpsertError {
    Store(StoreError),
    Crypto(CryptoError),
}

impl From<StoreError> for UpsertError {
    fn from(e: StoreError) -> Self {
        UpsertError::Store(e)
    }
}

impl From<CryptoError> for UpsertError {
    fn from(e: CryptoError) -> Self {
        UpsertError::Crypto(e)
    }
}

/// Does the stored (encrypted) secret differ from the desired one?
fn secret_differs(
    cipher: &CredentialCipher,
    stored: Option<&[u8]>,
    desired: Option<&SecretString>,
    slot: SecretSlot,
) -> bool {
    match (stored, desired) {
        (None, None) => false,
        (Some(bytes), Some(wanted)) => match cipher.decrypt(bytes, slot) {
            Ok(current) => current.expose_secret() != wanted.expose_secret(),
            // Unreadable with the configured key: rewrite it with this key.
            Err(_) => true,
        },
        _ => true,
    }
}

fn encrypt(
    cipher: &CredentialCipher,
    secret: Option<&SecretString>,
    slot: SecretSlot,
) -> Result<Option<Vec<u8>>, CryptoError> {
    secret.map(|s| cipher.encrypt(s, slot)).transpose()
}

async fn upsert_profile(
    tx: &mut Tx<'_>,
    cipher: &CredentialCipher,
    want: &DesiredProfile,
) -> Result<Outcome, UpsertError> {
    let existing: Option<ProfileRow> = declare::lock_profile(tx, &want.name).await?;
    const TABLE: &str = "email_server_profiles";
    let (id, outcome) = match &existing {
        None => (Uuid::new_v4(), Outcome::Created),
        Some(row) => {
            let mut fields = Vec::new();
            let mut check = |changed: bool, name: &'static str| {
                if changed {
                    fields.push(name);
                }
            };
            check(row.server_type != want.server_type.as_str(), "server_type");
            check(row.protocol != want.protocol.as_str(), "protocol");
            check(row.ews_url != want.ews_url, "ews_url");
            check(row.graph_url != want.graph_url, "graph_url");
            check(row.auth != want.auth.as_str(), "auth");
            check(
                row.password_scheme != want.password_scheme.as_str(),
                "password_scheme",
            );
            check(row.username != want.username, "username");
            check(
                secret_differs(
                    cipher,
                    row.password_enc.as_deref(),
                    want.password.as_ref(),
                    SecretSlot::new(TABLE, "password_enc", row.id),
                ),
                "password",
            );
            check(row.oauth_tenant != want.oauth_tenant, "oauth_tenant");
            check(
                row.oauth_client_id != want.oauth_client_id,
                "oauth_client_id",
            );
            check(
                secret_differs(
                    cipher,
                    row.oauth_client_secret_enc.as_deref(),
                    want.oauth_client_secret.as_ref(),
                    SecretSlot::new(TABLE, "oauth_client_secret_enc", row.id),
                ),
                "oauth_client_secret",
            );
            check(
                row.oauth_token_url != want.oauth_token_url,
                "oauth_token_url",
            );
            check(row.oauth_scope != want.oauth_scope, "oauth_scope");
            check(
                row.oauth_certificate_pem != want.oauth_certificate_pem,
                "oauth_certificate",
            );
            check(
                secret_differs(
                    cipher,
                    row.oauth_private_key_enc.as_deref(),
                    want.oauth_private_key.as_ref(),
                    SecretSlot::new(TABLE, "oauth_private_key_enc", row.id),
                ),
                "oauth_private_key",
            );
            check(
                row.oauth_assertion_signing != want.oauth_assertion_signing.as_str(),
                "oauth_assertion_signing",
            );
            check(
                row.use_impersonation != want.use_impersonation,
                "use_impersonation",
            );
            check(
                row.use_same_settings_for_outgoing != want.use_same_settings_for_outgoing,
                "use_same_settings_for_outgoing",
            );
            check(
                row.outgoing_ews_url != want.outgoing_ews_url,
                "outgoing_ews_url",
            );
            check(
                row.outgoing_username != want.outgoing_username,
                "outgoing_username",
            );
            check(
                secret_differs(
                    cipher,
                    row.outgoing_password_enc.as_deref(),
                    want.outgoing_password.as_ref(),
                    SecretSlot::new(TABLE, "outgoing_password_enc", row.id),
                ),
                "outgoing_password",
            );
            check(
                row.process_emails_from != want.process_emails_from,
                "process_emails_from",
            );
            check(
                row.max_concurrent_connections != want.max_concurrent_connections,
                "max_concurrent_connections",
            );
            check(
                row.min_polling_interval_minutes != want.min_polling_interval_minutes,
                "min_polling_interval_minutes",
            );
            check(row.enabled != want.enabled, "enabled");
            let streaming = crate::store::declare::profile_streaming(tx, row.id).await?;
            check(streaming != want.streaming, "streaming");
            if fields.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            (row.id, Outcome::Changed { fields })
        }
    };
    let password = encrypt(
        cipher,
        want.password.as_ref(),
        SecretSlot::new(TABLE, "password_enc", id),
    )?;
    let client_secret = encrypt(
        cipher,
        want.oauth_client_secret.as_ref(),
        SecretSlot::new(TABLE, "oauth_client_secret_enc", id),
    )?;
    let outgoing_password = encrypt(
        cipher,
        want.outgoing_password.as_ref(),
        SecretSlot::new(TABLE, "outgoing_password_enc", id),
    )?;
    let private_key = encrypt(
        cipher,
        want.oauth_private_key.as_ref(),
        SecretSlot::new(TABLE, "oauth_private_key_enc", id),
    )?;
    declare::write_profile(
        tx,
        &ProfileValues {
            id,
            name: &want.name,
            server_type: want.server_type.as_str(),
            ews_url: &want.ews_url,
            auth: want.auth.as_str(),
            password_scheme: want.password_scheme.as_str(),
            username: want.username.as_deref(),
            password_enc: password,
            oauth_tenant: want.oauth_tenant.as_deref(),
            oauth_client_id: want.oauth_client_id.as_deref(),
            oauth_client_secret_enc: client_secret,
            oauth_token_url: want.oauth_token_url.as_deref(),
            oauth_scope: want.oauth_scope.as_deref(),
            use_impersonation: want.use_impersonation,
            use_same_settings_for_outgoing: want.use_same_settings_for_outgoing,
            outgoing_ews_url: want.outgoing_ews_url.as_deref(),
            outgoing_username: want.outgoing_username.as_deref(),
            outgoing_password_enc: outgoing_password,
            process_emails_from: want.process_emails_from,
            max_concurrent_connections: want.max_concurrent_connections,
            min_polling_interval_minutes: want.min_polling_interval_minutes,
            enabled: want.enabled,
            oauth_certificate_pem: want.oauth_certificate_pem.as_deref(),
            oauth_private_key_enc: private_key,
            oauth_assertion_signing: want.oauth_assertion_signing.as_str(),
            protocol: want.protocol.as_str(),
            graph_url: &want.graph_url,
        },
    )
    .await?;
    crate::store::declare::set_profile_streaming(tx, id, want.streaming).await?;
    // A changed profile's mailboxes become due at the next tick (a trigger does it).
    Ok(outcome)
}

async fn upsert_mailbox(
    tx: &mut Tx<'_>,
    cipher: &CredentialCipher,
    want: &DesiredMailbox,
) -> Result<Outcome, UpsertError> {
    const TABLE: &str = "mailboxes";
    let Some(profile_id) = declare::profile_id(tx, &want.profile).await? else {
        return Err(UpsertError::Store(StoreError::NotFound(format!(
            "profile {:?} does not exist",
            want.profile
        ))));
    };
    let existing: Option<MailboxRow> = declare::lock_mailbox(tx, &want.address).await?;
    let (id, outcome) = match &existing {
        None => (Uuid::new_v4(), Outcome::Created),
        Some(row) => {
            let mut fields = Vec::new();
            let mut check = |changed: bool, name: &'static str| {
                if changed {
                    fields.push(name);
                }
            };
            check(row.profile_id != profile_id, "profile");
            check(
                row.allow_credentials_for_email_processing
                    != want.allow_credentials_for_email_processing,
                "allow_credentials_for_email_processing",
            );
            check(row.username != want.username, "username");
            check(
                secret_differs(
                    cipher,
                    row.password_enc.as_deref(),
                    want.password.as_ref(),
                    SecretSlot::new(TABLE, "password_enc", row.id),
                ),
                "password",
            );
            check(
                row.process_email_received_after != want.process_email_received_after,
                "process_email_received_after",
            );
            check(row.incoming_method != want.incoming.as_str(), "incoming");
            check(row.outgoing_method != want.outgoing.as_str(), "outgoing");
            check(row.act_method != want.act.as_str(), "act");
            check(row.approval_status != want.approval.as_str(), "approval");
            check(
                row.payload_logging != want.payload_logging,
                "payload_logging",
            );
            if fields.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            (row.id, Outcome::Changed { fields })
        }
    };
    let password = encrypt(
        cipher,
        want.password.as_ref(),
        SecretSlot::new(TABLE, "password_enc", id),
    )?;
    declare::write_mailbox(
        tx,
        &MailboxValues {
            id,
            address: &want.address,
            profile_id,
            allow_credentials_for_email_processing: want.allow_credentials_for_email_processing,
            username: want.username.as_deref(),
            password_enc: password,
            process_email_received_after: want.process_email_received_after,
            incoming_method: want.incoming.as_str(),
            outgoing_method: want.outgoing.as_str(),
            act_method: want.act.as_str(),
            approval_status: want.approval.as_str(),
            payload_logging: want.payload_logging,
        },
    )
    .await?;
    Ok(outcome)
}

// ----------------------------------------------------------------------------------------
// What syncs: the incoming filter, the ACT scope, the tracking token (issue 8).
// ----------------------------------------------------------------------------------------

/// A profile's scope keys, with their defaults applied.
struct ProfileScope {
    incoming_filter: IncomingFilter,
    act_scope: ActScope,
    act_attendee_delete: AttendeeDelete,
    tracking_token_prefix: Option<String>,
}

/// A mailbox's scope keys (`None`: the profile's value applies).
struct MailboxScope {
    incoming_filter: Option<IncomingFilter>,
    act_scope: Option<ActScope>,
}

/// Why a tracking token prefix cannot be used, if it cannot (the database's rule, said first).
fn tracking_prefix_problem(prefix: &str) -> Option<String> {
    let mut chars = prefix.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.:#-".contains(c));
    if !starts_with_letter || !rest_ok || prefix.chars().count() > 20 {
        Some(format!(
            "{prefix:?} must start with a letter and hold 1..=20 of A-Z a-z 0-9 _ . : # - (e.g. \"EXS:\")"
        ))
    } else if prefix.ends_with(|c: char| c.is_ascii_digit()) {
        Some(format!(
            "{prefix:?} must not end with a digit: the token's number follows it"
        ))
    } else {
        None
    }
}

/// The outcome with the scope keys that changed added (a created row stays created).
fn with_changes(outcome: Outcome, changed: Vec<&'static str>) -> Outcome {
    match outcome {
        Outcome::Created => Outcome::Created,
        _ if changed.is_empty() => outcome,
        Outcome::Unchanged => Outcome::Changed { fields: changed },
        Outcome::Changed { mut fields } => {
            fields.extend(changed);
            Outcome::Changed { fields }
        }
    }
}

/// Write a profile's scope keys; returns the names of those that changed.
async fn upsert_profile_scope(
    tx: &mut Tx<'_>,
    name: &str,
    want: &ProfileScope,
) -> Result<Vec<&'static str>, StoreError> {
    let current = declare::lock_profile_scope(tx, name).await?;
    let wanted = StoredProfileScope {
        incoming_filter: want.incoming_filter.as_str().to_owned(),
        act_scope: want.act_scope.as_str().to_owned(),
        act_attendee_delete: want.act_attendee_delete.as_str().to_owned(),
        tracking_token_prefix: want.tracking_token_prefix.clone(),
    };
    let mut changed = Vec::new();
    if current.incoming_filter != wanted.incoming_filter {
        changed.push("incoming_filter");
    }
    if current.act_scope != wanted.act_scope {
        changed.push("act_scope");
    }
    if current.act_attendee_delete != wanted.act_attendee_delete {
        changed.push("act_attendee_delete");
    }
    if current.tracking_token_prefix != wanted.tracking_token_prefix {
        changed.push("tracking_token_prefix");
    }
    if !changed.is_empty() {
        declare::write_profile_scope(tx, name, &wanted).await?;
    }
    Ok(changed)
}

/// Write a mailbox's scope keys; returns the names of those that changed.
async fn upsert_mailbox_scope(
    tx: &mut Tx<'_>,
    address: &str,
    want: &MailboxScope,
) -> Result<Vec<&'static str>, StoreError> {
    let current = declare::lock_mailbox_scope(tx, address).await?;
    let wanted = StoredMailboxScope {
        incoming_filter: want.incoming_filter.map(|f| f.as_str().to_owned()),
        act_scope: want.act_scope.map(|s| s.as_str().to_owned()),
    };
    let mut changed = Vec::new();
    if current.incoming_filter != wanted.incoming_filter {
        changed.push("incoming_filter");
    }
    if current.act_scope != wanted.act_scope {
        changed.push("act_scope");
    }
    if !changed.is_empty() {
        declare::write_mailbox_scope(tx, address, &wanted).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_accept_rfc3339_and_bare_dates() {
        assert!(parse_instant("2026-01-31T08:00:00Z").is_ok());
        assert!(parse_instant("2026-01-31T08:00:00+02:00").is_ok());
        assert_eq!(
            parse_instant("2026-01-31").unwrap().to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert!(parse_instant("31/01/2026").is_err());
    }

    #[test]
    fn plausible_addresses_have_one_at_and_a_dotted_domain() {
        assert!(is_plausible_address("alice@contoso.com"));
        assert!(!is_plausible_address("alice"));
        assert!(!is_plausible_address("alice@contoso"));
        assert!(!is_plausible_address("a@b@c.com"));
        assert!(!is_plausible_address("al ice@contoso.com"));
    }

    #[test]
    fn tracking_token_prefixes_follow_the_database_rule() {
        assert_eq!(tracking_prefix_problem("EXS:"), None);
        assert_eq!(tracking_prefix_problem("CRM-"), None);
        assert!(tracking_prefix_problem("EXS1").is_some());
        assert!(tracking_prefix_problem(":EXS").is_some());
        assert!(tracking_prefix_problem("EX S:").is_some());
        assert!(tracking_prefix_problem("ABCDEFGHIJKLMNOPQRSTU:").is_some());
    }
}

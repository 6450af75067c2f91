//! Logging: one tracing subscriber for the whole process, JSON lines or pretty text, on stderr.
//!
//! Owns the log format. Standard output is left to commands' own output (`status --json`).
//! Must never be handed a secret: callers log ids and codes, not credentials.

use crate::config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.level` is not a valid filter (config validation normally catches this first).
    #[error("invalid log.level: {0}")]
    BadFilter(String),
    /// A global subscriber was already installed.
    #[error("logging already initialised")]
    AlreadySet,
}

/// Install the global subscriber described by `[log]`; `RUST_LOG` overrides `log.level`.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    let directives = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => text,
        _ => settings.level.clone(),
    };
    let filter = EnvFilter::try_new(with_quiet_dependencies(&directives))
        .map_err(|e| TelemetryError::BadFilter(e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_target(true).try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadySet)
}

/// Postgres NOTICEs ("relation already exists, skipping") are noise at info level; keep them
/// out unless the operator's filter names them.
fn with_quiet_dependencies(directives: &str) -> String {
    if directives.contains("sqlx") {
        directives.to_owned()
    } else {
        format!("{directives},sqlx::postgres::notice=warn")
    }
}

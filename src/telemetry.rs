//! Logging: one tracing subscriber for the whole process, JSON lines or pretty text, on stderr.
//!
//! JSON lines carry `timestamp`, `level`, `target`, `message`, the event's fields, and the
//! fields of every enclosing span flattened onto the line — so each line inside a pass has
//! `profile.id`, `mailbox.id` and `workload`. Standard output is left to commands' own
//! output (`status --json`). Must never be handed a secret: callers log ids and codes.

use crate::config::{LogFormat, LogSettings};
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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
    let result = match settings.format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(json_layer(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(true),
            )
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadySet)
}

/// The JSON-lines layer, writing to `writer` (tests capture it with [`CapturedLogs`]).
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    SpanFieldsLayer.and_then(
        tracing_subscriber::fmt::layer()
            .event_format(JsonLines)
            .with_writer(writer),
    )
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

/// A span's fields as JSON, kept in the span's extensions.
struct SpanFields(serde_json::Map<String, serde_json::Value>);

/// Records every span's fields so that events inside it can carry them.
struct SpanFieldsLayer;

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = serde_json::Map::new();
            attrs.record(&mut JsonVisitor(&mut fields));
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(fields));
            }
        }
    }
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
}

/// Formats one event as one JSON object: span fields (outermost first), then event fields.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (key, value) in fields {
                        line.insert(key.clone(), value.clone());
                    }
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        let mut fields = serde_json::Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        if !fields.contains_key("message") {
            line.insert("message".into(), "".into());
        }
        line.extend(fields);
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// An in-memory log sink for tests: every JSON line written by [`json_layer`].
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The captured lines parsed as JSON (lines that are not JSON are skipped).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A dispatcher that captures every event at `level` and above into this sink.
    pub fn dispatch(&self, level: &str) -> tracing::Dispatch {
        let filter = EnvFilter::try_new(with_quiet_dependencies(level))
            .unwrap_or_else(|_| EnvFilter::new("info"));
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(filter)
                .with(json_layer(self.clone())),
        )
    }
}

/// Each write appends to the shared buffer.
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for CapturedLogs {
    type Writer = CaptureWriter;
    fn make_writer(&'w self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_span_fields_on_every_event() {
        let logs = CapturedLogs::default();
        tracing::dispatcher::with_default(&logs.dispatch("info"), || {
            let span = tracing::info_span!(
                "pass",
                profile.id = "p-1",
                mailbox.id = "m-1",
                workload = "incoming"
            );
            let _entered = span.enter();
            tracing::info!(items = 3, "pass finished");
        });
        let lines = logs.lines();
        assert_eq!(lines.len(), 1, "{}", logs.text());
        let line = &lines[0];
        assert_eq!(line["profile.id"], "p-1");
        assert_eq!(line["mailbox.id"], "m-1");
        assert_eq!(line["workload"], "incoming");
        assert_eq!(line["message"], "pass finished");
        assert_eq!(line["items"], 3);
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].is_string());
        assert!(line["target"].is_string());
    }
}

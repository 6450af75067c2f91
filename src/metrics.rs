//! Process-wide metrics in Prometheus form, served at `/metrics`.
//!
//! A leaf module (like `domain`): anything may record into it, it imports nothing of the
//! crate. The EWS client reports its requests through [`EwsRequestMetrics`], the observer the
//! daemon installs in every client. Names are prefixed `exsync_`; label values are ids, codes and operation names,
//! never secrets or free text.

use exsync_ews::observe::{RequestObserver, RequestOutcome};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

mod graph_notify;
mod streaming;

pub use graph_notify::GraphNotifyMetrics;
pub use streaming::StreamingMetrics;

/// Label pairs of one time series.
pub type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 5 ms … ~41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Every metric exsync exports.
pub struct Metrics {
    registry: Registry,
    /// Mailbox workload passes by `workload` and `outcome` (success | failure | skipped).
    pub passes: Family<Labels, Counter>,
    /// Items by `workload` and `result` (imported | sent | written | failed | skipped); a
    /// long import moves it page by page.
    pub items: Family<Labels, Counter>,
    /// The same per `profile` (id), page by page: which organisation's import is moving.
    pub profile_items: Family<Labels, Counter>,
    /// EWS requests by `operation` and `code` (NoError, an EWS error code, or HTTP/transport).
    pub ews_requests: Family<Labels, Counter>,
    /// EWS request latency in seconds by `operation`.
    pub ews_latency: Family<Labels, Histogram, fn() -> Histogram>,
    /// Throttling back-offs received (ErrorServerBusy), by `profile`.
    pub throttled: Family<Labels, Counter>,
    /// Connection permits in use per `profile`.
    pub permits_in_use: Family<Labels, Gauge>,
    /// Connection permit limit (MaximumConcurrentConnections) per `profile`.
    pub permits_limit: Family<Labels, Gauge>,
    /// Mailboxes with a workload due now.
    pub mailboxes_due: Gauge,
    /// Mailboxes with a workload disabled (blocked) now.
    pub mailboxes_disabled: Gauge,
    /// 1 while the scheduler loop runs.
    pub scheduler_running: Gauge,
    /// Streaming notifications.
    pub streaming: StreamingMetrics,
    /// Microsoft Graph change notifications.
    pub graph_notify: GraphNotifyMetrics,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("exsync");
        let passes = Family::<Labels, Counter>::default();
        registry.register("passes", "Mailbox workload passes", passes.clone());
        let items = Family::<Labels, Counter>::default();
        registry.register(
            "items",
            "Items imported, sent, written, failed or skipped",
            items.clone(),
        );
        let profile_items = Family::<Labels, Counter>::default();
        registry.register(
            "profile_items",
            "Items imported, written, failed or skipped per profile, counted page by page",
            profile_items.clone(),
        );
        let ews_requests = Family::<Labels, Counter>::default();
        registry.register(
            "ews_requests",
            "EWS requests by operation and response code",
            ews_requests.clone(),
        );
        let ews_latency: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "ews_request_duration_seconds",
            "EWS request latency",
            ews_latency.clone(),
        );
        let throttled = Family::<Labels, Counter>::default();
        registry.register(
            "ews_throttled",
            "ErrorServerBusy back-offs received",
            throttled.clone(),
        );
        let permits_in_use = Family::<Labels, Gauge>::default();
        registry.register(
            "profile_connections_in_use",
            "Connection permits in use per profile",
            permits_in_use.clone(),
        );
        let permits_limit = Family::<Labels, Gauge>::default();
        registry.register(
            "profile_connections_limit",
            "MaximumConcurrentConnections per profile",
            permits_limit.clone(),
        );
        let mailboxes_due = Gauge::default();
        registry.register(
            "mailboxes_due",
            "Mailboxes with a workload due now",
            mailboxes_due.clone(),
        );
        let mailboxes_disabled = Gauge::default();
        registry.register(
            "mailboxes_disabled",
            "Mailboxes with a workload disabled now",
            mailboxes_disabled.clone(),
        );
        let scheduler_running = Gauge::default();
        registry.register(
            "scheduler_running",
            "1 while the scheduler runs",
            scheduler_running.clone(),
        );
        let streaming = StreamingMetrics::register(&mut registry);
        let graph_notify = GraphNotifyMetrics::register(&mut registry);
        Self {
            registry,
            streaming,
            graph_notify,
            passes,
            items,
            profile_items,
            ews_requests,
            ews_latency,
            throttled,
            permits_in_use,
            permits_limit,
            mailboxes_due,
            mailboxes_disabled,
            scheduler_running,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Records every EWS request of the clients it is installed in (`ClientOptions::observer`) as
/// `exsync_ews_requests_total{operation, code}` and
/// `exsync_ews_request_duration_seconds{operation}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EwsRequestMetrics;

impl RequestObserver for EwsRequestMetrics {
    fn request_finished(&self, outcome: &RequestOutcome<'_>) {
        let m = metrics();
        m.ews_requests
            .get_or_create(&labels([
                ("operation", outcome.operation),
                ("code", outcome.code),
            ]))
            .inc();
        m.ews_latency
            .get_or_create(&labels([("operation", outcome.operation)]))
            .observe(outcome.elapsed.as_secs_f64());
    }
}

/// Shorthand for a label set.
pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_exposition() {
        let m = metrics();
        m.passes
            .get_or_create(&labels([("workload", "incoming"), ("outcome", "success")]))
            .inc();
        m.ews_latency
            .get_or_create(&labels([("operation", "GetItem")]))
            .observe(0.02);
        let text = m.render();
        assert!(
            text.contains("exsync_passes_total{workload=\"incoming\",outcome=\"success\"}"),
            "{text}"
        );
        assert!(
            text.contains("exsync_ews_request_duration_seconds_bucket"),
            "{text}"
        );
    }

    #[test]
    fn the_ews_observer_records_requests_by_operation_and_code_and_their_latency() {
        EwsRequestMetrics.request_finished(&RequestOutcome {
            operation: "ObserverRuleCheck",
            code: "ErrorServerBusy",
            elapsed: std::time::Duration::from_millis(30),
        });
        let text = metrics().render();
        assert!(
            text.contains(
                "exsync_ews_requests_total{operation=\"ObserverRuleCheck\",code=\"ErrorServerBusy\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "exsync_ews_request_duration_seconds_count{operation=\"ObserverRuleCheck\"} 1"
            ),
            "{text}"
        );
    }
}

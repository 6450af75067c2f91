//! Metrics of streaming notifications: open connections, subscribed mailboxes, notifications
//! received, and how long a notification takes to become rows in the database.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The streaming metrics (registered with the process's registry).
pub struct StreamingMetrics {
    /// GetStreamingEvents connections this process holds open.
    pub open_connections: Gauge,
    /// Mailboxes this process keeps subscribed.
    pub subscribed_mailboxes: Gauge,
    /// Notifications (one per subscription per envelope) received.
    pub notifications: Counter,
    /// Seconds from a notification's arrival to the end of the pass it made due.
    pub notification_to_database: Histogram,
    /// Mailboxes that fell back to polling after repeated subscription failures.
    pub fallbacks: Counter,
    /// Reconnections of dropped or closed connections.
    pub reconnects: Counter,
}

impl StreamingMetrics {
    /// Create and register them.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = StreamingMetrics {
            open_connections: Gauge::default(),
            subscribed_mailboxes: Gauge::default(),
            notifications: Counter::default(),
            // 50 ms … ~14 min.
            notification_to_database: Histogram::new(exponential_buckets(0.05, 2.0, 15)),
            fallbacks: Counter::default(),
            reconnects: Counter::default(),
        };
        registry.register(
            "streaming_connections_open",
            "GetStreamingEvents connections open",
            m.open_connections.clone(),
        );
        registry.register(
            "streaming_subscribed_mailboxes",
            "Mailboxes with a streaming subscription",
            m.subscribed_mailboxes.clone(),
        );
        registry.register(
            "streaming_notifications",
            "Streaming notifications received",
            m.notifications.clone(),
        );
        registry.register(
            "streaming_notification_to_database_seconds",
            "Time from a notification to the end of the pass it made due",
            m.notification_to_database.clone(),
        );
        registry.register(
            "streaming_fallbacks",
            "Mailboxes that fell back to polling after repeated subscription failures",
            m.fallbacks.clone(),
        );
        registry.register(
            "streaming_reconnects",
            "Streaming connections reopened",
            m.reconnects.clone(),
        );
        m
    }
}

//! Metrics of Microsoft Graph change notifications: notifications received and rejected,
//! subscriptions active, created and renewed.

use super::Labels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The Graph notification metrics (registered with the process's registry).
pub struct GraphNotifyMetrics {
    /// Verified notifications by `kind` (change | lifecycle).
    pub received: Family<Labels, Counter>,
    /// Discarded notifications by `reason` (client_state | unknown_subscription | malformed |
    /// queue_full | too_large).
    pub rejected: Family<Labels, Counter>,
    /// Subscriptions active now (all instances).
    pub active: Gauge,
    /// Subscriptions created.
    pub created: Counter,
    /// Subscriptions renewed.
    pub renewals: Counter,
    /// Subscriptions that could not be created or renewed.
    pub failures: Counter,
}

impl GraphNotifyMetrics {
    /// Create and register them.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = GraphNotifyMetrics {
            received: Family::default(),
            rejected: Family::default(),
            active: Gauge::default(),
            created: Counter::default(),
            renewals: Counter::default(),
            failures: Counter::default(),
        };
        registry.register(
            "graph_notifications_received",
            "Verified Graph change and lifecycle notifications",
            m.received.clone(),
        );
        registry.register(
            "graph_notifications_rejected",
            "Graph notifications discarded (wrong clientState, unknown subscription, malformed)",
            m.rejected.clone(),
        );
        registry.register(
            "graph_subscriptions_active",
            "Graph change-notification subscriptions active",
            m.active.clone(),
        );
        registry.register(
            "graph_subscriptions_created",
            "Graph change-notification subscriptions created",
            m.created.clone(),
        );
        registry.register(
            "graph_subscription_renewals",
            "Graph change-notification subscriptions renewed",
            m.renewals.clone(),
        );
        registry.register(
            "graph_subscription_failures",
            "Graph subscriptions that could not be created or renewed",
            m.failures.clone(),
        );
        m
    }
}

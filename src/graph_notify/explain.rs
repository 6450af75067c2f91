//! `exsync explain`'s answer for a Graph mailbox: notified by Graph change notifications or
//! polled, and why.

use crate::store::graph_subscriptions as db;
use crate::store::{Store, StoreError};
use crate::streaming::explain::NotificationExplanation;
use chrono::Utc;
use uuid::Uuid;

/// Describe the mailbox's Graph subscriptions from the database.
pub async fn describe(
    store: &Store,
    mailbox_id: Uuid,
) -> Result<NotificationExplanation, StoreError> {
    let rows = db::status(store, mailbox_id).await?;
    let last = rows.iter().filter_map(|r| r.last_notification_at).max();
    let now = Utc::now();
    let active: Vec<&db::SubscriptionStatus> = rows
        .iter()
        .filter(|r| r.state == "active" && r.expires_at.is_some_and(|at| at > now))
        .collect();
    let name = |kind: &str| {
        if kind == "events" {
            "calendar"
        } else {
            "Inbox"
        }
    };
    let (mode, why) = if rows.is_empty() {
        (
            "polling",
            "polling: no Graph change-notification subscription (`[graph_notifications] enabled` \
             is false in the daemon, or the mailbox is not approved, or it syncs neither email \
             nor appointments); delta runs at the profile's interval (on average half of it \
             until a change is seen)"
                .to_owned(),
        )
    } else if let Some(first) = active.first() {
        let watched: Vec<&str> = active.iter().map(|r| name(&r.resource_kind)).collect();
        let pending: Vec<&str> = rows
            .iter()
            .filter(|r| !active.iter().any(|a| a.resource_kind == r.resource_kind))
            .map(|r| name(&r.resource_kind))
            .collect();
        let polled = if pending.is_empty() {
            String::new()
        } else {
            format!(
                "; its {} is polled until its subscription is made",
                pending.join(" and ")
            )
        };
        (
            "notified",
            format!(
                "notified: Graph change notifications for its {} (subscription until {}); a \
                 notification makes the mailbox due at once (Graph documents under a minute on \
                 average for new mail), and delta polling continues at the profile's interval as \
                 the backstop{polled}",
                watched.join(" and "),
                first
                    .expires_at
                    .map(|at| at.to_rfc3339())
                    .unwrap_or_default()
            ),
        )
    } else if let Some(failed) = rows.iter().find(|r| r.state == "failed") {
        (
            "polling",
            format!(
                "polling: the Graph subscription for its {} could not be set up ({}); tried again {}",
                name(&failed.resource_kind),
                failed.reason.as_deref().unwrap_or("unknown reason"),
                failed
                    .retry_at
                    .map(|at| format!("at {}", at.to_rfc3339()))
                    .unwrap_or_else(|| "soon".into())
            ),
        )
    } else {
        (
            "pending",
            "pending: the Graph subscription is being created (Graph validates exsync's public \
             endpoint first); the mailbox polls meanwhile"
                .to_owned(),
        )
    };
    Ok(NotificationExplanation {
        mode: mode.into(),
        why,
        last_notification_at: last,
    })
}

//! `exsync explain`'s answer to "does this mailbox stream or poll, and why".

use crate::store::streaming as db;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Whether a mailbox learns of changes by streaming notifications or by polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationExplanation {
    /// `streaming`, `polling` or `pending` (being subscribed).
    pub mode: String,
    /// Why, in words.
    pub why: String,
    /// The last notification received for it.
    pub last_notification_at: Option<DateTime<Utc>>,
}

/// Describe the mailbox's streaming state from the database.
pub async fn describe(
    store: &Store,
    mailbox_id: Uuid,
    profile_id: Uuid,
) -> Result<NotificationExplanation, StoreError> {
    let Some(status) = db::status(store, mailbox_id).await? else {
        let why = if db::profile_streams(store, profile_id).await? {
            "polling: the mailbox takes no part in streaming (not approved, email and ACT off, \
             its profile disabled, or `[streaming] enabled = false` in the daemon)"
        } else {
            "polling: its profile's `streaming` key is false"
        };
        return Ok(NotificationExplanation {
            mode: "polling".into(),
            why: why.into(),
            last_notification_at: None,
        });
    };
    let safety = status
        .safety_poll_ms
        .map(|ms| format!("; a safety poll still runs every {} min", ms / 60_000))
        .unwrap_or_default();
    let (mode, why) = match status.state.as_str() {
        "streaming" if status.connection_open => (
            "streaming",
            format!(
                "streaming: subscribed in group {}, whose connection is open; a notification makes its workloads due at once{safety}",
                status.group_key
            ),
        ),
        "streaming" => (
            "streaming",
            format!(
                "streaming: subscribed in group {}, whose connection is being reopened{safety}",
                status.group_key
            ),
        ),
        "polling" => (
            "polling",
            status
                .reason
                .unwrap_or_else(|| "polling: streaming is not available".into()),
        ),
        _ => (
            "pending",
            status.reason.unwrap_or_else(|| {
                format!(
                    "pending: group {} is being subscribed; it polls meanwhile",
                    status.group_key
                )
            }),
        ),
    };
    Ok(NotificationExplanation {
        mode: mode.into(),
        why,
        last_notification_at: status.last_notification_at,
    })
}

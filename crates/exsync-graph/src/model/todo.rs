//! Microsoft To Do: `microsoft.graph.todoTaskList` and `microsoft.graph.todoTask`
//! (learn.microsoft.com/graph/api/resources/todotasklist, …/todotask). To Do ids are not
//! Exchange item ids: they need no translation and have no immutable form (GD-IMM).

use super::common::{DateTimeTimeZone, Importance, ItemBody, Removed};
use super::event::{graph_enum, PatternedRecurrence};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A To Do list (the default "Tasks" list has `wellknownListName = defaultList`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoTaskList {
    /// List id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Set on a list delta entry for a deleted list.
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The mailbox owner owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_owner: Option<bool>,
    /// Shared with others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_shared: Option<bool>,
    /// `defaultList`, `flaggedEmails` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wellknown_list_name: Option<WellknownListName>,
}

/// A To Do task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoTask {
    /// Task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// ETag, sent back as `If-Match`.
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    /// Set on a delta entry for a deleted task.
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    /// Importance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    /// Reminder set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_reminder_on: Option<bool>,
    /// Reminder time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_date_time: Option<DateTimeTimeZone>,
    /// Start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<DateTimeTimeZone>,
    /// Due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date_time: Option<DateTimeTimeZone>,
    /// Completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_date_time: Option<DateTimeTimeZone>,
    /// Recurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<PatternedRecurrence>,
    /// Created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    /// Last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    /// Body last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_last_modified_date_time: Option<DateTime<Utc>>,
    /// Has attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_attachments: Option<bool>,
}

graph_enum!(
    /// `microsoft.graph.taskStatus`.
    TaskStatus {
        /// Not started.
        NotStarted,
        /// In progress.
        InProgress,
        /// Completed.
        Completed,
        /// Waiting on others.
        WaitingOnOthers,
        /// Deferred.
        Deferred,
    }
);

graph_enum!(
    /// `microsoft.graph.wellknownListName`.
    WellknownListName {
        /// An ordinary list.
        None,
        /// The default "Tasks" list.
        DefaultList,
        /// Flagged e-mails.
        FlaggedEmails,
    }
);

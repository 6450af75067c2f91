//! `microsoft.graph.message` and `microsoft.graph.mailFolder`
//! (learn.microsoft.com/graph/api/resources/message, …/mailfolder).

use super::common::{
    Importance, InternetMessageHeader, ItemBody, Recipient, Removed, SingleValueExtendedProperty,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A message as Graph returns it (only what `$select` asked for) or as exsync creates a draft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Immutable id (every request carries `Prefer: IdType="ImmutableId"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `W/"<changeKey>"` (GD-MGET); read-only.
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    /// Set on a delta entry for a message that left the folder.
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    /// `#microsoft.graph.eventMessage` for meeting requests and responses (Graph names the
    /// derived type of an item in a message collection); absent or `#microsoft.graph.message`
    /// for an email.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    /// Version of the item (changes on every change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    /// Outlook categories (exsync's "tracked" category among them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Created in the mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    /// Last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    /// Received (what the Process-From date is compared with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_date_time: Option<DateTime<Utc>>,
    /// Sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_date_time: Option<DateTime<Utc>>,
    /// RFC 5322 Message-ID, the cross-mailbox dedupe key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_id: Option<String>,
    /// Headers of a received message (only on GET with `$select=internetMessageHeaders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_headers: Option<Vec<InternetMessageHeader>>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Body (HTML unless `Prefer: outlook.body-content-type="text"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    /// First 255 characters of the body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    /// The mailbox owner on whose behalf it was sent (Send on Behalf: the principal is `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Recipient>,
    /// Who it is from (set for delegated sending: Send As when equal to `sender`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient>,
    /// To.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_recipients: Option<Vec<Recipient>>,
    /// Cc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc_recipients: Option<Vec<Recipient>>,
    /// Bcc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc_recipients: Option<Vec<Recipient>>,
    /// Reply-To.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Vec<Recipient>>,
    /// Conversation (thread) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Read flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read: Option<bool>,
    /// Still a draft (not yet submitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_draft: Option<bool>,
    /// Has attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_attachments: Option<bool>,
    /// Importance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    /// Folder the message is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    /// Extended properties (exsync's outgoing marker), when set or `$expand`ed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<SingleValueExtendedProperty>>,
}

impl Message {
    /// The value of the extended property `id` (matched case-insensitively, as Graph
    /// reports the id in its own casing), if the message carries it.
    pub fn extended_property(&self, id: &str) -> Option<&str> {
        self.single_value_extended_properties
            .as_deref()?
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(id))
            .and_then(|p| p.value.as_deref())
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.internet_message_headers
            .as_deref()?
            .iter()
            .find(|h| {
                h.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|h| h.value.as_deref())
    }
}

/// A mail folder (Inbox, Sent Items, a tracked folder).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    /// Folder id (stable; folders have no immutable ids and need none, GD-IMM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Set on a folder delta entry for a folder that was deleted.
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Parent folder id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    /// Number of child folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_folder_count: Option<i32>,
    /// Unread messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_item_count: Option<i32>,
    /// All messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_item_count: Option<i32>,
    /// Hidden folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_hidden: Option<bool>,
}

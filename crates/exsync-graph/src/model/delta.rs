//! Delta-query pages and plain collection pages (GD-DQO, GD-DQM).
//!
//! Links are JSON properties of the body, not headers: `@odata.nextLink` means another page
//! of this round (even when `value` is empty), `@odata.deltaLink` ends the round and is the
//! state to keep. Removed items carry only `id` and `@removed`.

use super::common::Removed;
use super::{Contact, Event, MailFolder, Message, TodoTask, TodoTaskList};
use serde::{Deserialize, Serialize};

/// One delta response as it is on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaResponse<T> {
    /// Changed and removed items.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The next page of this round.
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
    /// The state after this round (last page only).
    #[serde(
        rename = "@odata.deltaLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delta_link: Option<String>,
}

/// A plain (non-delta) collection page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Collection<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The next page.
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
}

/// A resource that delta queries return: it can say it was removed.
pub trait DeltaItem: serde::de::DeserializeOwned + Send + 'static {
    /// Operation label for logs and metrics (`message.delta`, …).
    const DELTA_OPERATION: &'static str;
    /// The least application permission that reads it (named in access-denied errors).
    const READ_PERMISSION: &'static str;
    /// The item's id.
    fn id(&self) -> Option<&str>;
    /// Take the `@removed` annotation, if any.
    fn take_removed(&mut self) -> Option<Removed>;
}

macro_rules! delta_item {
    ($ty:ty, $op:literal, $permission:literal) => {
        impl DeltaItem for $ty {
            const DELTA_OPERATION: &'static str = $op;
            const READ_PERMISSION: &'static str = $permission;
            fn id(&self) -> Option<&str> {
                self.id.as_deref()
            }
            fn take_removed(&mut self) -> Option<Removed> {
                self.removed.take()
            }
        }
    };
}

// Permissions: GD-MDELTA, GD-EDELTA-PERM, GD-CDELTA, GD-TDELTA-PERM.
delta_item!(Message, "message.delta", "Mail.ReadWrite");
delta_item!(MailFolder, "mailFolder.delta", "Mail.ReadWrite");
delta_item!(Event, "event.delta", "Calendars.ReadWrite");
delta_item!(Contact, "contact.delta", "Contacts.ReadWrite");
delta_item!(TodoTask, "todoTask.delta", "Tasks.ReadWrite.All");
delta_item!(TodoTaskList, "todoTaskList.delta", "Tasks.ReadWrite.All");

/// One entry of a delta page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaEntry<T> {
    /// Created or changed (an update may carry only the changed properties plus `id`).
    Changed(T),
    /// Left the collection (deleted, moved out, or out of a calendar window).
    Removed {
        /// The item's id.
        id: String,
        /// Graph's reason (`deleted`).
        reason: Option<String>,
    },
}

/// Where a round goes after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaNext {
    /// Follow this link for the next page of the round.
    NextPage(String),
    /// The round is complete; keep this link and follow it next time.
    Done(String),
}

/// A parsed delta page.
#[derive(Debug, Clone)]
pub struct DeltaPage<T> {
    /// The page's entries, in Graph's order (replays are possible: dedupe by id).
    pub entries: Vec<DeltaEntry<T>>,
    /// What to follow next.
    pub next: DeltaNext,
}

impl<T: DeltaItem> DeltaResponse<T> {
    /// Split entries into changes and removals and decide the next step; `None` when the page
    /// carries neither link (a page that would silently end the sync).
    pub fn into_page(self) -> Option<DeltaPage<T>> {
        // The live docs say a page never carries both; if one did, the round is not over.
        let next = match (self.next_link, self.delta_link) {
            (Some(next), _) => DeltaNext::NextPage(next),
            (None, Some(delta)) => DeltaNext::Done(delta),
            (None, None) => return None,
        };
        let entries = self
            .value
            .into_iter()
            .filter_map(|mut item| match item.take_removed() {
                Some(removed) => item.id().map(|id| DeltaEntry::Removed {
                    id: id.to_owned(),
                    reason: removed.reason,
                }),
                None => Some(DeltaEntry::Changed(item)),
            })
            .collect();
        Some(DeltaPage { entries, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_entries_are_told_apart_from_changes() {
        let body = r##"{
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
            "@odata.deltaLink": "https://graph.microsoft.com/v1.0/users/a/mailFolders/inbox/messages/delta?$deltatoken=x",
            "value": [
                {"@odata.type": "#microsoft.graph.message", "id": "m1", "@removed": {"reason": "deleted"}},
                {"@odata.etag": "W/\"CQ\"", "id": "m2", "isRead": true}
            ]
        }"##;
        let page = serde_json::from_str::<DeltaResponse<Message>>(body)
            .unwrap()
            .into_page()
            .unwrap();
        assert!(matches!(page.next, DeltaNext::Done(ref link) if link.ends_with("=x")));
        assert_eq!(
            page.entries[0],
            DeltaEntry::Removed {
                id: "m1".into(),
                reason: Some("deleted".into())
            }
        );
        let DeltaEntry::Changed(m2) = &page.entries[1] else {
            panic!("m2 is a change")
        };
        assert_eq!(m2.is_read, Some(true));
        assert_eq!(m2.etag.as_deref(), Some("W/\"CQ\""));
    }

    #[test]
    fn a_page_without_a_link_is_not_a_page() {
        let body = r#"{"value": []}"#;
        let response = serde_json::from_str::<DeltaResponse<Message>>(body).unwrap();
        assert!(response.into_page().is_none());
    }

    #[test]
    fn an_empty_page_with_a_next_link_continues_the_round() {
        let body = r#"{"value": [], "@odata.nextLink": "https://graph.microsoft.com/v1.0/n"}"#;
        let page = serde_json::from_str::<DeltaResponse<Message>>(body)
            .unwrap()
            .into_page()
            .unwrap();
        assert!(page.entries.is_empty());
        assert_eq!(
            page.next,
            DeltaNext::NextPage("https://graph.microsoft.com/v1.0/n".into())
        );
    }
}

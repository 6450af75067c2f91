//! A mail folder's changes over Graph, and the listing that completes a capped delta round.
//!
//! A message delta with `$filter=receivedDateTime ge …` (the Process-From date) returns at
//! most 5,000 messages in a round (GD-MDELTA); the round then ends and its delta link goes on
//! after what exists now, so without more the rest of the window would never come in. Graph
//! gives no flag: the provider counts what a filtered first round returned, and a round that
//! reached the cap is completed by listing the folder (`GET …/mailFolders/{id}/messages`,
//! `$filter=receivedDateTime ge …`, `$orderby=receivedDateTime asc`) before the delta link
//! takes over. Nothing is assumed about *which* messages the round returned (the newest, the
//! oldest, any): the listing walks the whole window, and what is already stored is
//! recognised by its immutable id before any fetch (`sync::incoming`), and by its Internet
//! Message-ID when it is written.
//!
//! The position travels in the folder's opaque sync state, which `sync` stores with each
//! page in the page's transaction: a crash between pages resumes the count or the listing
//! where the last committed page left it. A plain delta or next link stays the state as Graph
//! gave it (states stored before this existed still work); the two extra phases are
//! [`STATE_PREFIX`] + JSON.
//!
//! The listing pages by received date (keyset), not by Graph's `$skip` links alone: each page
//! asks again from the newest date it saw, so a message deleted meanwhile cannot shift an
//! unseen one past the page boundary. A page whose messages all share one date follows the
//! page's `@odata.nextLink` instead, so a run of equal dates longer than a page still moves
//! on. Messages at the boundary date come again and are recognised as stored.

use super::mailbox::{lean_message_select, message_changes, version};
use crate::sync::port::{Change, ChangePage, ItemRef};
use chrono::{DateTime, Utc};
use exsync_graph::model::{DeltaEntry, Message};
use exsync_graph::{
    GraphClient, GraphError, GraphFailure, MessageDeltaQuery, MessageListQuery, Target,
};
use serde::{Deserialize, Serialize};

/// Graph's documented cap of a filtered message delta round (GD-MDELTA).
pub const GRAPH_FILTERED_ROUND_LIMIT: u32 = 5000;

/// What marks a sync state that is one of the provider's own phases rather than a Graph link.
pub const STATE_PREFIX: &str = "exsync-graph-mail:v1:";

/// How a capped filtered round is detected and completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailListing {
    /// A filtered first round that returned this many messages is taken as capped.
    pub filtered_delta_limit: u32,
    /// `$top` of a listing page.
    pub page_size: u32,
}

impl Default for MailListing {
    fn default() -> Self {
        Self {
            filtered_delta_limit: GRAPH_FILTERED_ROUND_LIMIT,
            page_size: 100,
        }
    }
}

/// Where a mail folder's sync is, as stored in its sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailState {
    /// A delta or next link as Graph gave it (an unfiltered round, a later round, or a
    /// state stored before the listing existed).
    Link(String),
    /// One of the provider's own phases.
    Phase(Phase),
}

/// The phases a filtered first round can be in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case", deny_unknown_fields)]
pub enum Phase {
    /// Inside a filtered first round: its next link and the messages it returned so far.
    Counting {
        /// The round's `@odata.nextLink`.
        next: String,
        /// Messages (not removals) the round's pages returned so far.
        returned: u64,
    },
    /// The round reached the cap: listing the window, then `delta` takes over.
    Listing {
        /// The capped round's `@odata.deltaLink`.
        delta: String,
        /// List messages received at or after this (the Process-From date, then the newest
        /// date a committed page held).
        since: Option<DateTime<Utc>>,
        /// The page's `@odata.nextLink`, followed when a page held one date only.
        next: Option<String>,
    },
}

/// A stored state that starts with [`STATE_PREFIX`] but is not one of this version's phases.
#[derive(Debug, thiserror::Error)]
#[error("the stored mail sync state is not one exsync wrote: {0}")]
pub struct UnreadableState(String);

impl MailState {
    /// The state as stored.
    pub fn encode(&self) -> String {
        match self {
            MailState::Link(link) => link.clone(),
            // Serialising a plain enum of strings and dates cannot fail.
            MailState::Phase(phase) => format!(
                "{STATE_PREFIX}{}",
                serde_json::to_string(phase).unwrap_or_default()
            ),
        }
    }

    /// A stored state.
    pub fn decode(stored: &str) -> Result<MailState, UnreadableState> {
        match stored.strip_prefix(STATE_PREFIX) {
            None => Ok(MailState::Link(stored.to_owned())),
            Some(json) => serde_json::from_str(json)
                .map(MailState::Phase)
                .map_err(|e| UnreadableState(e.to_string())),
        }
    }
}

/// One mail folder's next page of changes.
pub struct MailFolderChanges<'a> {
    /// The mailbox's client.
    pub client: &'a GraphClient,
    /// The mailbox.
    pub target: &'a Target,
    /// The folder's well-known name.
    pub folder: &'a str,
    /// How a capped round is completed.
    pub listing: MailListing,
}

impl MailFolderChanges<'_> {
    /// The page after `state` (`None`: a first round, filtered by `since` when given). An
    /// unreadable stored state is answered as an expired one: the folder starts over, and
    /// what is stored is recognised.
    pub async fn next_page(
        &self,
        state: Option<String>,
        since: Option<DateTime<Utc>>,
    ) -> Result<ChangePage, GraphError> {
        let decoded = match state.as_deref().map(MailState::decode).transpose() {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(folder = self.folder, error = %e, "starting the folder over");
                return Err(GraphFailure::SyncStateExpired {
                    status: 400,
                    code: "exsync.unreadableState".to_owned(),
                }
                .into());
            }
        };
        let (client, target) = (self.client, self.target);
        match decoded {
            None => {
                let query = MessageDeltaQuery {
                    select: lean_message_select(),
                    received_since: since,
                };
                let page = client.message_delta(target, self.folder, &query).await?;
                // Only a filtered round is capped: count it from its first page.
                let counted = since.map(|_| 0);
                Ok(self.after_delta_page(page, counted, since))
            }
            Some(MailState::Link(link)) => {
                let page = client.message_delta_next(target, &link, None).await?;
                Ok(self.after_delta_page(page, None, since))
            }
            Some(MailState::Phase(Phase::Counting { next, returned })) => {
                let page = client.message_delta_next(target, &next, None).await?;
                Ok(self.after_delta_page(page, Some(returned), since))
            }
            Some(MailState::Phase(Phase::Listing { delta, since, next })) => {
                self.listing_page(delta, since, next).await
            }
        }
    }

    /// A delta page as changes; `counted`: the messages the round returned before this page,
    /// when it is a filtered first round.
    fn after_delta_page(
        &self,
        page: exsync_graph::model::DeltaPage<Message>,
        counted: Option<u64>,
        since: Option<DateTime<Utc>>,
    ) -> ChangePage {
        let here = page
            .entries
            .iter()
            .filter(|e| matches!(e, DeltaEntry::Changed(_)))
            .count() as u64;
        let mut changes = message_changes(page);
        let Some(before) = counted else {
            return changes;
        };
        let returned = before + here;
        if !changes.last {
            changes.sync_state = MailState::Phase(Phase::Counting {
                next: changes.sync_state,
                returned,
            })
            .encode();
        } else if returned >= u64::from(self.listing.filtered_delta_limit) {
            tracing::info!(
                mailbox = %self.target.mailbox,
                folder = self.folder,
                returned,
                "the filtered delta round reached Graph's cap; listing the folder for the rest"
            );
            changes.sync_state = MailState::Phase(Phase::Listing {
                delta: changes.sync_state,
                since,
                next: None,
            })
            .encode();
            // Not done: the listing follows at once.
            changes.last = false;
        }
        changes
    }

    /// One page of the listing; after the last one the capped round's delta link is the state.
    async fn listing_page(
        &self,
        delta: String,
        since: Option<DateTime<Utc>>,
        next: Option<String>,
    ) -> Result<ChangePage, GraphError> {
        let page = match &next {
            Some(link) => self.client.list_messages_next(self.target, link).await?,
            None => {
                let query = MessageListQuery {
                    select: lean_message_select(),
                    received_since: since,
                    page_size: self.listing.page_size,
                };
                self.client
                    .list_messages(self.target, self.folder, &query)
                    .await?
            }
        };
        let newest = page.value.iter().filter_map(|m| m.received_date_time).max();
        let changes: Vec<Change> = page
            .value
            .into_iter()
            .filter_map(|m| {
                let version = version(&m.etag, &m.change_key);
                m.id.map(|id| {
                    Change::Updated(ItemRef {
                        id,
                        version,
                        received_at: m.received_date_time,
                    })
                })
            })
            .collect();
        let Some(link) = page.next_link else {
            tracing::info!(
                mailbox = %self.target.mailbox,
                folder = self.folder,
                "listing done; the delta link takes over"
            );
            return Ok(ChangePage {
                sync_state: MailState::Link(delta).encode(),
                last: true,
                changes,
            });
        };
        let following = match newest {
            // Ask again from the newest date seen: nothing shifts past the boundary.
            Some(newest) if since.is_none_or(|s| newest > s) => Phase::Listing {
                delta,
                since: Some(newest),
                next: None,
            },
            // One date filled the page: page through it by Graph's link.
            _ => Phase::Listing {
                delta,
                since,
                next: Some(link),
            },
        };
        Ok(ChangePage {
            sync_state: MailState::Phase(following).encode(),
            last: false,
            changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_graph_link_is_stored_as_it_is_and_a_phase_round_trips() {
        let link = "https://graph.test/v1.0/users/a/mailFolders/inbox/messages/delta?$deltatoken=x";
        assert_eq!(MailState::Link(link.into()).encode(), link);
        assert_eq!(
            MailState::decode(link).unwrap(),
            MailState::Link(link.into())
        );
        let phases = [
            Phase::Counting {
                next: link.into(),
                returned: 4999,
            },
            Phase::Listing {
                delta: link.into(),
                since: Some(Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap()),
                next: None,
            },
            Phase::Listing {
                delta: link.into(),
                since: None,
                next: Some("https://graph.test/v1.0/next".into()),
            },
        ];
        for phase in phases {
            let stored = MailState::Phase(phase.clone()).encode();
            assert!(stored.starts_with(STATE_PREFIX), "{stored}");
            assert_eq!(MailState::decode(&stored).unwrap(), MailState::Phase(phase));
        }
    }

    #[test]
    fn a_state_with_the_prefix_that_does_not_parse_is_refused() {
        assert!(MailState::decode(&format!("{STATE_PREFIX}{{\"phase\":\"other\"}}")).is_err());
    }
}

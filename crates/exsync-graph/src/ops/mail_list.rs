//! Listing a mail folder's messages by received date: what completes a filtered message
//! delta round that stopped at Graph's 5,000-message cap (GD-MDELTA). `GET
//! /users/{id}/mailFolders/{id}/messages` (user-list-messages) with `$filter`, `$orderby`,
//! `$select` and `$top`, paged by `@odata.nextLink`.

use crate::client::{Call, GraphClient, Target};
use crate::error::GraphError;
use crate::model::{Collection, Message};
use crate::ops::MessageSelect;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;

/// The first call of a listing of one folder, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageListQuery {
    /// Properties to read.
    pub select: MessageSelect,
    /// `$filter=receivedDateTime ge …` (`None`: the whole folder).
    pub received_since: Option<DateTime<Utc>>,
    /// `$top`: messages per page (Graph pages messages up to 1,000).
    pub page_size: u32,
}

impl MessageListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = self.select.query();
        if let Some(since) = self.received_since {
            // The property ordered by comes first in the filter, or Graph refuses the pair as
            // InefficientFilter (user-list-messages, "Using filter and orderby in the same
            // query").
            pairs.push((
                "$filter",
                format!(
                    "receivedDateTime ge {}",
                    since.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ));
        }
        pairs.push(("$orderby", "receivedDateTime asc".to_owned()));
        pairs.push(("$top", self.page_size.clamp(1, 1000).to_string()));
        pairs
    }
}

impl GraphClient {
    /// The first page of `folder`'s messages received since the query's date, oldest first.
    /// `GET /users/{id}/mailFolders/{id}/messages` (user-list-messages).
    pub async fn list_messages(
        &self,
        target: &Target,
        folder: &str,
        query: &MessageListQuery,
    ) -> Result<Collection<Message>, GraphError> {
        let url = Self::with_query(
            self.user_url(&target.mailbox, &["mailFolders", folder, "messages"]),
            &query.pairs(),
        );
        let mut call = Call::new("message.list", target, Method::GET, url, MAIL_PERMISSION);
        if let Some(preference) = query.select.preferences() {
            call = call.prefer(preference);
        }
        self.fetch(&call).await
    }

    /// The page an `@odata.nextLink` of [`GraphClient::list_messages`] names.
    pub async fn list_messages_next(
        &self,
        target: &Target,
        link: &str,
    ) -> Result<Collection<Message>, GraphError> {
        let url = self.link(link)?;
        let call = Call::new("message.list", target, Method::GET, url, MAIL_PERMISSION);
        self.fetch(&call).await
    }
}

/// Listing mail needs `Mail.ReadWrite` as the rest of mail does (`Mail.ReadBasic.All` reads
/// it too; exsync asks for one permission).
const MAIL_PERMISSION: &str = "Mail.ReadWrite";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_listing_filters_and_orders_by_the_received_date_in_that_order() {
        let query = MessageListQuery {
            select: MessageSelect {
                properties: vec!["receivedDateTime".into()],
                body_type: None,
                expand_outgoing_marker: false,
            },
            received_since: Some(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()),
            page_size: 5000,
        };
        let pairs = query.pairs();
        assert_eq!(
            pairs,
            vec![
                ("$select", "receivedDateTime".to_owned()),
                (
                    "$filter",
                    "receivedDateTime ge 2026-06-01T00:00:00Z".to_owned()
                ),
                ("$orderby", "receivedDateTime asc".to_owned()),
                ("$top", "1000".to_owned()),
            ]
        );
    }
}

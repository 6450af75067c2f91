//! Mail: folders, message delta, reading, drafts with exsync's marker, sending, and finding
//! a send again after a crash (GD-MDELTA, GD-DQM, GD-MGET, GD-SEND, GD-XPROP, GD-MUPD).

use crate::client::{odata_string, Call, GraphClient, Target};
use crate::error::{DeltaRole, GraphError};
use crate::model::{
    BodyType, Collection, DeltaPage, MailFolder, Message, SingleValueExtendedProperty,
};
use crate::throttle::MAILBOX_CONCURRENCY;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use reqwest::Method;

/// The one named property that carries an outgoing row's id on its draft and its Sent Items
/// copy. Fixed, shared with the EWS side: a property name per message would exhaust the
/// mailbox's named-property quota (`ErrorQuotaExceeded` "Cannot get ID from name", I-QUOTA527).
pub const OUTGOING_ID_PROPERTY: &str =
    "String {d0925a5d-722f-42f0-882e-a816636fa020} Name ExsyncOutgoingId";

/// Mail needs `Mail.ReadWrite` (GD-MDELTA, GD-MUPD); sending `Mail.Send` (GD-SEND).
const MAIL_PERMISSION: &str = "Mail.ReadWrite";
const SEND_PERMISSION: &str = "Mail.Send";

/// Most pages read when looking for an outgoing row's copies (a marker matches one or two
/// messages; more pages mean something else is wrong, and the answer so far is returned).
const MAX_LOOKUP_PAGES: usize = 10;

/// The marker property for outgoing row `row_id`.
pub fn outgoing_marker(row_id: &str) -> SingleValueExtendedProperty {
    SingleValueExtendedProperty {
        id: OUTGOING_ID_PROPERTY.to_owned(),
        value: Some(row_id.to_owned()),
    }
}

/// Which properties of a message to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSelect {
    /// `$select` (Graph always adds `id`).
    pub properties: Vec<String>,
    /// `Prefer: outlook.body-content-type` (Graph's default is HTML).
    pub body_type: Option<BodyType>,
    /// `$expand` exsync's outgoing marker, so a Sent Items copy can be matched to its row.
    pub expand_outgoing_marker: bool,
}

impl Default for MessageSelect {
    /// What an import needs: addresses, dates, flags, conversation, body.
    fn default() -> Self {
        let properties = [
            "internetMessageId",
            "subject",
            "from",
            "sender",
            "toRecipients",
            "ccRecipients",
            "bccRecipients",
            "replyTo",
            "receivedDateTime",
            "sentDateTime",
            "isRead",
            "isDraft",
            "categories",
            "conversationId",
            "body",
            "hasAttachments",
            "importance",
            "parentFolderId",
            "changeKey",
            "lastModifiedDateTime",
        ];
        Self {
            properties: properties.iter().map(|p| (*p).to_owned()).collect(),
            body_type: None,
            expand_outgoing_marker: false,
        }
    }
}

impl MessageSelect {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if !self.properties.is_empty() {
            pairs.push(("$select", self.properties.join(",")));
        }
        if self.expand_outgoing_marker {
            pairs.push(("$expand", marker_expand()));
        }
        pairs
    }

    pub(crate) fn preferences(&self) -> Option<String> {
        self.body_type.map(|t| {
            let name = match t {
                BodyType::Text => "text",
                BodyType::Html => "html",
            };
            format!("outlook.body-content-type=\"{name}\"")
        })
    }
}

fn marker_expand() -> String {
    format!(
        "singleValueExtendedProperties($filter=id eq {})",
        odata_string(OUTGOING_ID_PROPERTY)
    )
}

/// The first call of a message delta round for one folder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageDeltaQuery {
    /// Properties to read.
    pub select: MessageSelect,
    /// The effective Process-From date: `$filter=receivedDateTime ge …`, the only filter a
    /// message delta accepts (GD-MDELTA). With a filter Graph returns at most 5,000 messages
    /// per round (GD-MDELTA): the caller must not assume a filtered first round is complete
    /// when it counts 5,000.
    pub received_since: Option<DateTime<Utc>>,
}

/// Messages that carry an outgoing row's marker, where they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingCopies {
    /// Copies in Sent Items: the row was sent.
    pub sent: Vec<Message>,
    /// Drafts still waiting: the row can be sent from one of them (and the others deleted).
    pub drafts: Vec<Message>,
}

impl GraphClient {
    /// A mail folder by id or well-known name (`inbox`, `sentitems`, `drafts`, …).
    /// `GET /users/{id}/mailFolders/{id}` (mailfolder-get).
    pub async fn mail_folder(
        &self,
        target: &Target,
        folder: &str,
    ) -> Result<MailFolder, GraphError> {
        let url = self.user_url(&target.mailbox, &["mailFolders", folder]);
        let call = Call::new("mailFolder.get", target, Method::GET, url, MAIL_PERMISSION);
        self.fetch(&call).await
    }

    /// The first page of a message delta round for `folder`, with every query option
    /// (GD-DQM: options are set once and encoded into the links).
    /// `GET /users/{id}/mailFolders/{id}/messages/delta` (message-delta).
    pub async fn message_delta(
        &self,
        target: &Target,
        folder: &str,
        query: &MessageDeltaQuery,
    ) -> Result<DeltaPage<Message>, GraphError> {
        let mut pairs = query.select.query();
        if let Some(since) = query.received_since {
            pairs.push((
                "$filter",
                format!(
                    "receivedDateTime ge {}",
                    since.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ));
        }
        let url = Self::with_query(
            self.user_url(
                &target.mailbox,
                &["mailFolders", folder, "messages", "delta"],
            ),
            &pairs,
        );
        let mut call = Call::new("message.delta", target, Method::GET, url, MAIL_PERMISSION)
            .delta(DeltaRole::Start)
            .prefer(self.page_size_preference());
        if let Some(preference) = query.select.preferences() {
            call = call.prefer(preference);
        }
        self.delta_page(&call).await
    }

    /// The next page of a message delta round, or the first of the next round (a stored
    /// delta link). `body_type` repeats the round's body preference (headers are not
    /// encoded into links).
    pub async fn message_delta_next(
        &self,
        target: &Target,
        link: &str,
        body_type: Option<BodyType>,
    ) -> Result<DeltaPage<Message>, GraphError> {
        let url = self.link(link)?;
        let mut call = Call::new("message.delta", target, Method::GET, url, MAIL_PERMISSION)
            .delta(DeltaRole::Follow)
            .prefer(self.page_size_preference());
        let select = MessageSelect {
            body_type,
            ..MessageSelect::default()
        };
        if let Some(preference) = select.preferences() {
            call = call.prefer(preference);
        }
        self.delta_page(&call).await
    }

    /// One message. `GET /users/{id}/messages/{id}` (message-get).
    pub async fn get_message(
        &self,
        target: &Target,
        id: &str,
        select: &MessageSelect,
    ) -> Result<Message, GraphError> {
        let url = Self::with_query(
            self.user_url(&target.mailbox, &["messages", id]),
            &select.query(),
        );
        let mut call = Call::new("message.get", target, Method::GET, url, MAIL_PERMISSION).item();
        if let Some(preference) = select.preferences() {
            call = call.prefer(preference);
        }
        self.fetch(&call).await
    }

    /// Several messages, up to the mailbox's concurrency at once; each id's own result (an
    /// item that is gone or refused fails alone), in the order of `ids`.
    pub async fn get_messages(
        &self,
        target: &Target,
        ids: &[String],
        select: &MessageSelect,
    ) -> Vec<(String, Result<Message, GraphError>)> {
        stream::iter(ids.iter().cloned())
            .map(|id| async move {
                let result = self.get_message(target, &id, select).await;
                (id, result)
            })
            .buffered(MAILBOX_CONCURRENCY)
            .collect()
            .await
    }

    /// The raw MIME of a message. `GET /users/{id}/messages/{id}/$value` (GD-MGET).
    pub async fn get_message_mime(&self, target: &Target, id: &str) -> Result<Bytes, GraphError> {
        let url = self.user_url(&target.mailbox, &["messages", id, "$value"]);
        let call = Call::new("message.mime", target, Method::GET, url, MAIL_PERMISSION).item();
        Ok(self.execute(&call).await?.raw.body)
    }

    /// Create a draft in Drafts carrying exsync's marker with `row_id` (the outgoing queue
    /// row). `draft.from` set to another address makes it a delegated send (GD-FROM).
    /// `POST /users/{id}/messages` (user-post-messages) → 201 with the draft and its id.
    ///
    /// Not idempotent: after a failure whose outcome is unknown (timeout, 5xx), look for the
    /// row with [`GraphClient::find_outgoing`] before creating another draft.
    pub async fn create_draft(
        &self,
        target: &Target,
        draft: &Message,
        row_id: &str,
    ) -> Result<Message, GraphError> {
        let mut body = draft.clone();
        let mut properties = body
            .single_value_extended_properties
            .take()
            .unwrap_or_default();
        properties.retain(|p| !p.id.eq_ignore_ascii_case(OUTGOING_ID_PROPERTY));
        properties.push(outgoing_marker(row_id));
        body.single_value_extended_properties = Some(properties);
        let url = self.user_url(&target.mailbox, &["messages"]);
        let call = Call::new(
            "message.createDraft",
            target,
            Method::POST,
            url,
            MAIL_PERMISSION,
        )
        .json(&body)?;
        self.fetch(&call).await
    }

    /// Send a draft. `POST /users/{id}/messages/{id}/send` (GD-SEND) → 202, no body. 202 means
    /// only that the draft was accepted for submission (GD-SENDSTEPS). Never retried here on a
    /// 503 or a timeout: the outcome is unknown, and [`GraphClient::find_outgoing`] decides.
    /// An [`ErrorKind::ItemNotFound`](crate::ErrorKind::ItemNotFound) answer may mean the
    /// draft was already sent.
    pub async fn send_draft(&self, target: &Target, draft_id: &str) -> Result<(), GraphError> {
        let url = self.user_url(&target.mailbox, &["messages", draft_id, "send"]);
        let call = Call::new("message.send", target, Method::POST, url, SEND_PERMISSION)
            .item()
            .idempotent(false);
        self.fetch_empty(&call).await
    }

    /// Where messages carrying `row_id`'s marker are: Sent Items and Drafts (GD-XPROP: the
    /// name part of the id is matched case-sensitively, the value case-insensitively).
    /// `GET /users/{id}/mailFolders/{sentitems|drafts}/messages?$filter=singleValueExtendedProperties/Any(…)`.
    pub async fn find_outgoing(
        &self,
        target: &Target,
        row_id: &str,
    ) -> Result<OutgoingCopies, GraphError> {
        Ok(OutgoingCopies {
            sent: self.find_marked(target, "sentitems", row_id).await?,
            drafts: self.find_marked(target, "drafts", row_id).await?,
        })
    }

    async fn find_marked(
        &self,
        target: &Target,
        folder: &str,
        row_id: &str,
    ) -> Result<Vec<Message>, GraphError> {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq {} and ep/value eq {})",
            odata_string(OUTGOING_ID_PROPERTY),
            odata_string(row_id)
        );
        let pairs = [
            ("$filter", filter),
            (
                "$select",
                "internetMessageId,subject,isDraft,sentDateTime,parentFolderId".to_owned(),
            ),
            ("$expand", marker_expand()),
        ];
        let mut url = Self::with_query(
            self.user_url(&target.mailbox, &["mailFolders", folder, "messages"]),
            &pairs,
        );
        let mut found = Vec::new();
        for _ in 0..MAX_LOOKUP_PAGES {
            let call = Call::new(
                "message.findOutgoing",
                target,
                Method::GET,
                url,
                MAIL_PERMISSION,
            );
            let page: Collection<Message> = self.fetch(&call).await?;
            // Keep only exact matches: Graph compares values case-insensitively.
            found.extend(
                page.value
                    .into_iter()
                    .filter(|m| m.extended_property(OUTGOING_ID_PROPERTY) == Some(row_id)),
            );
            match page.next_link {
                Some(next) => url = self.link(&next)?,
                None => return Ok(found),
            }
        }
        Ok(found)
    }

    /// Change properties of a message (read flag, categories) or a draft.
    /// `PATCH /users/{id}/messages/{id}` (GD-MUPD), `If-Match` when `etag` is given.
    pub async fn update_message(
        &self,
        target: &Target,
        id: &str,
        patch: &Message,
        etag: Option<&str>,
    ) -> Result<Message, GraphError> {
        let url = self.user_url(&target.mailbox, &["messages", id]);
        let call = Call::new(
            "message.update",
            target,
            Method::PATCH,
            url,
            MAIL_PERMISSION,
        )
        .item()
        .if_match(etag)
        .json(patch)?;
        self.fetch(&call).await
    }

    /// Delete a message (a duplicate draft). `DELETE /users/{id}/messages/{id}` → 204.
    pub async fn delete_message(
        &self,
        target: &Target,
        id: &str,
        etag: Option<&str>,
    ) -> Result<(), GraphError> {
        let url = self.user_url(&target.mailbox, &["messages", id]);
        let call = Call::new(
            "message.delete",
            target,
            Method::DELETE,
            url,
            MAIL_PERMISSION,
        )
        .item()
        .if_match(etag);
        self.fetch_empty(&call).await
    }
}

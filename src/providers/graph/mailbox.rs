//! The Microsoft Graph side of `sync::port`: one mailbox, spoken to in domain words over
//! exsync-graph. Every Graph type stops here, and every [`GraphError`] becomes a
//! [`ServerError`] with its stable `graph.*` code.
//!
//! - Changes: message delta per mail folder (lean: id, received date, read flag, change key;
//!   the Process-From date as `$filter=receivedDateTime ge …` on a round's first call; a
//!   filtered first round that reaches Graph's 5,000 cap is completed by a listing,
//!   [`super::backfill`]),
//!   calendarView delta over the configured window, contact delta of the default folder,
//!   To Do task delta of the default list. The sync state is the link Graph gave (a
//!   `nextLink` inside a round, the `deltaLink` after it); an expired one is
//!   [`Failure::SyncStateExpired`].
//! - Items are read one request each, at most 4 in flight per mailbox (the client's gate).
//! - Sending exactly once: a draft carrying the one fixed extended property (the queue row's
//!   id), then `send`; before a retry Sent Items and Drafts are searched for that value: found
//!   in Sent Items means sent, a draft left over from a crash is sent (never a second draft).
//!   The send's issue is journalled before its request leaves; when neither is found after
//!   an issued send (the draft gone, Sent Items filed after the 202), nothing is sent again:
//!   [`SendOutcome::Unconfirmed`].
//! - Writes carry `If-Match` with the stored ETag; 412 is [`WriteOutcome::Conflict`]; events
//!   are created with a `transactionId` derived from the fields, so a retried POST after a
//!   lost answer does not create a second event. Contacts have none: they carry the row's id
//!   in the one fixed create-key property (`ExsyncActivityKey`, as over EWS), looked for
//!   before every POST (found: updated and linked); read back on pull as `created_for`.

use super::backfill::{MailFolderChanges, MailListing};
use super::tokens::AppTokens;
use crate::domain::scope::MeetingRole;
use crate::store::activities::{ActFields, ActKind, AppointmentFields, ContactFields, TaskFields};
use crate::store::emails::NewEmail;
use crate::store::outgoing::OutgoingEmail;
use crate::store::scheduling::ErrorCorrelation;
use crate::sync::port::{
    Change, ChangeHint, ChangePage, CreateKey, FetchedMail, Folder, IncomingMail, ItemFacts,
    ItemFailure, ItemRef, MailServer, PortFuture, RemoteActivity, Removal, SendJournal,
    SendOutcome, SentCopy, ServerError, SessionSettings, WriteOutcome,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use exsync_graph::model::{
    BodyType, Contact, DateTimeTimeZone, DeltaEntry, DeltaNext, DeltaPage, EmailAddress, Event,
    ItemBody, Location, Message, Recipient, TaskStatus, TodoTask, WellknownListName,
};
use exsync_graph::{
    CalendarWindow, Correlation, ErrorKind, GraphClient, GraphError, GraphFailure, MessageSelect,
    Target, TokenError, ACTIVITY_KEY_PROPERTY, DEFAULT_CONTACT_FOLDER, MAILBOX_CONCURRENCY,
};
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// An activity as read, or why the database cannot hold it (that one item's refusal).
type ReadActivity = Result<RemoteActivity, String>;

/// The calendar window of a delta round, relative to when the round starts (the window is
/// encoded into the round's links: a stored link keeps its window until the round restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarSpan {
    /// Days before now.
    pub past_days: u32,
    /// Days after now.
    pub future_days: u32,
}

impl Default for CalendarSpan {
    fn default() -> Self {
        Self {
            past_days: 90,
            future_days: 365,
        }
    }
}

impl CalendarSpan {
    /// The window for a round starting at `now`.
    pub fn window(self, now: DateTime<Utc>) -> CalendarWindow {
        CalendarWindow {
            start: now - ChronoDuration::days(i64::from(self.past_days)),
            end: now + ChronoDuration::days(i64::from(self.future_days)),
        }
    }
}

/// One mailbox on Exchange Online, reached through Microsoft Graph.
#[derive(Debug)]
pub struct GraphMailbox {
    client: Arc<GraphClient>,
    tokens: Arc<AppTokens>,
    target: Target,
    tracking_category: Option<String>,
    calendar: CalendarSpan,
    /// The default To Do list's id, once looked up.
    task_list: Mutex<Option<String>>,
    /// The last request of this session that failed (its correlation ids).
    failed: Mutex<Option<Correlation>>,
    /// How a capped filtered delta round of a mail folder is completed.
    mail_listing: MailListing,
}

impl GraphMailbox {
    /// A session for `address` through `client`.
    pub fn new(
        client: Arc<GraphClient>,
        tokens: Arc<AppTokens>,
        address: &str,
        settings: &SessionSettings,
        calendar: CalendarSpan,
    ) -> Self {
        Self {
            client,
            tokens,
            target: Target {
                mailbox: address.to_owned(),
                log_payloads: settings.log_payloads,
            },
            tracking_category: settings.tracking_category.clone(),
            calendar,
            task_list: Mutex::new(None),
            failed: Mutex::new(None),
            mail_listing: MailListing::default(),
        }
    }

    /// The same session with `listing` for capped filtered delta rounds of mail folders.
    pub fn with_mail_listing(mut self, listing: MailListing) -> Self {
        self.mail_listing = listing;
        self
    }

    /// A Graph failure in the port's terms, its request remembered for the stored error.
    fn fail(&self, error: GraphError) -> ServerError {
        if let Some(correlation) = error.correlation() {
            *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(correlation.clone());
        }
        server_error(&error, self.tokens.refused_setting().as_deref())
    }

    /// The default To Do list ("Tasks"), looked up once per session.
    async fn default_task_list(&self) -> Result<String, ServerError> {
        if let Some(id) = self
            .task_list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(id);
        }
        let lists = self
            .client
            .todo_lists(&self.target)
            .await
            .map_err(|e| self.fail(e))?;
        let id = lists
            .into_iter()
            .find(|l| l.wellknown_list_name == Some(WellknownListName::DefaultList))
            .and_then(|l| l.id)
            .ok_or_else(|| {
                ServerError::new(
                    crate::sync::port::Failure::ServiceRefused,
                    "graph.no_default_task_list",
                    format!(
                        "mailbox '{}' has no default Microsoft To Do list (wellknownListName = defaultList)",
                        self.target.mailbox
                    ),
                )
            })?;
        *self.task_list.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
        Ok(id)
    }

    async fn folder_changes(
        &self,
        folder: Folder,
        state: Option<String>,
        hint: ChangeHint,
    ) -> Result<ChangePage, ServerError> {
        let target = &self.target;
        let client = &self.client;
        match folder {
            Folder::Inbox | Folder::SentItems | Folder::JunkEmail | Folder::Drafts => {
                // Delta, and a listing where a filtered round stopped at Graph's cap.
                let mail = MailFolderChanges {
                    client,
                    target,
                    folder: folder.as_str(),
                    listing: self.mail_listing,
                };
                mail.next_page(state, hint.received_after)
                    .await
                    .map_err(|e| self.fail(e))
            }
            Folder::Calendar => {
                let page = match &state {
                    Some(link) => client.event_delta_next(target, link).await,
                    None => {
                        client
                            .event_delta(target, &self.calendar.window(Utc::now()))
                            .await
                    }
                }
                .map_err(|e| self.fail(e))?;
                // Occurrences are changes of their series master (imported once, as EWS).
                Ok(super::series::calendar_changes(page))
            }
            Folder::Contacts => {
                let page = match &state {
                    Some(link) => client.contact_delta_next(target, link).await,
                    None => {
                        client
                            .contact_delta(target, DEFAULT_CONTACT_FOLDER, &[])
                            .await
                    }
                }
                .map_err(|e| self.fail(e))?;
                Ok(changes_of(page, |c: &Contact| {
                    (c.id.clone(), version(&c.etag, &c.change_key))
                }))
            }
            Folder::Tasks => {
                let page = match &state {
                    Some(link) => client.todo_task_delta_next(target, link).await,
                    None => {
                        let list = self.default_task_list().await?;
                        client.todo_task_delta(target, &list).await
                    }
                }
                .map_err(|e| self.fail(e))?;
                Ok(changes_of(page, |t: &TodoTask| {
                    (t.id.clone(), t.etag.clone())
                }))
            }
        }
    }

    async fn fetch_emails(&self, ids: &[String]) -> Result<Vec<FetchedMail>, ServerError> {
        let select = full_message_select();
        let fetched = self.client.get_messages(&self.target, ids, &select).await;
        let mut out = Vec::with_capacity(fetched.len());
        for (id, result) in fetched {
            let item = match result {
                Ok(message) => Ok(incoming_mail(&id, message)),
                Err(e) => Err(self.item_failure(&id, e)?),
            };
            out.push((id, item));
        }
        Ok(out)
    }

    /// One item's failure, or the whole call's when it is not about the item.
    fn item_failure(&self, id: &str, error: GraphError) -> Result<ItemFailure, ServerError> {
        match error.kind() {
            ErrorKind::ItemNotFound => Ok(ItemFailure {
                id: id.to_owned(),
                error: error.to_string(),
                gone: true,
            }),
            ErrorKind::ItemLevel | ErrorKind::Conflict => Ok(ItemFailure {
                id: id.to_owned(),
                error: error.to_string(),
                gone: false,
            }),
            _ => Err(self.fail(error)),
        }
    }

    async fn fetch_activities(
        &self,
        kind: ActKind,
        ids: &[String],
    ) -> Result<Vec<Result<RemoteActivity, ItemFailure>>, ServerError> {
        let list = match kind {
            ActKind::Task => Some(self.default_task_list().await?),
            _ => None,
        };
        let list = list.as_deref();
        let results: Vec<(String, Result<ReadActivity, GraphError>)> =
            stream::iter(ids.iter().cloned())
                .map(|id| async move {
                    let result = self.read_activity(kind, list, &id).await;
                    (id, result)
                })
                .buffered(MAILBOX_CONCURRENCY)
                .collect()
                .await;
        let mut out = Vec::with_capacity(results.len());
        for (id, result) in results {
            out.push(match result {
                Ok(Ok(activity)) => Ok(activity),
                // Read, but not something the database can hold (a series pattern it has no
                // words for): this one item is refused with the reason.
                Ok(Err(why)) => Err(ItemFailure {
                    id: id.clone(),
                    error: why,
                    gone: false,
                }),
                Err(e) => Err(self.item_failure(&id, e)?),
            });
        }
        Ok(out)
    }

    async fn read_activity(
        &self,
        kind: ActKind,
        list: Option<&str>,
        id: &str,
    ) -> Result<ReadActivity, GraphError> {
        let target = &self.target;
        match (kind, list) {
            (ActKind::Appointment, _) => Ok(super::series::appointment_of(
                self.client.get_event(target, id).await?,
            )),
            (ActKind::Contact, _) => Ok(Ok(contact(self.client.get_contact(target, id).await?))),
            (ActKind::Task, Some(list)) => {
                Ok(Ok(task(self.client.get_todo_task(target, list, id).await?)))
            }
            (ActKind::Task, None) => Err(GraphFailure::malformed("no To Do list").into()),
        }
    }

    async fn facts(&self, kind: ActKind, id: &str) -> Result<Option<ItemFacts>, ServerError> {
        let target = &self.target;
        let read = match kind {
            ActKind::Appointment => self.client.get_event(target, id).await.map(|e| {
                let role = event_role(&e);
                (e.categories.unwrap_or_default(), role)
            }),
            ActKind::Contact => self
                .client
                .get_contact(target, id)
                .await
                .map(|c| (c.categories.unwrap_or_default(), MeetingRole::NotAMeeting)),
            ActKind::Task => {
                let list = self.default_task_list().await?;
                self.client
                    .get_todo_task(target, &list, id)
                    .await
                    .map(|t| (t.categories.unwrap_or_default(), MeetingRole::NotAMeeting))
            }
        };
        match read {
            Ok((categories, role)) => Ok(Some(ItemFacts { categories, role })),
            Err(e) if e.kind() == ErrorKind::ItemNotFound => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The row's copies: in Sent Items (sent) and in Drafts (created, not sent).
    async fn outgoing_copies(
        &self,
        outgoing_id: Uuid,
    ) -> Result<exsync_graph::OutgoingCopies, ServerError> {
        self.client
            .find_outgoing(&self.target, &outgoing_id.to_string())
            .await
            .map_err(|e| self.fail(e))
    }

    async fn send_message(
        &self,
        email: &OutgoingEmail,
        journal: &dyn SendJournal,
    ) -> Result<SendOutcome, ServerError> {
        let target = &self.target;
        // An earlier attempt may have got as far as a draft (or further): never a second one.
        let draft_id = if email.may_have_been_sent() {
            let copies = self.outgoing_copies(email.id).await?;
            if !copies.sent.is_empty() {
                tracing::info!(outgoing.id = %email.id, "already in Sent Items; not sending again");
                return Ok(SendOutcome::Accepted);
            }
            let mut drafts = copies.drafts.into_iter().filter_map(|m| m.id);
            let first = drafts.next();
            for duplicate in drafts {
                if let Err(e) = self.client.delete_message(target, &duplicate, None).await {
                    tracing::warn!(outgoing.id = %email.id, error = %e, "could not delete a duplicate draft");
                }
            }
            if first.is_some() {
                tracing::info!(outgoing.id = %email.id, "a draft from an earlier attempt is sent");
            } else if let Some(issued) = email.send_issued_at {
                // The send left once and its answer was lost: the draft may be gone because it
                // was sent, its Sent Items copy not filed yet. A new draft could send it twice.
                return Ok(SendOutcome::Unconfirmed(format!(
                    "waiting for the Sent Items copy: a send was issued at {issued} and neither \
                     its Sent Items copy nor its draft (marked with the row id) is found yet"
                )));
            }
            first
        } else {
            None
        };
        let draft_id = match draft_id {
            Some(id) => id,
            None => match self
                .client
                .create_draft(target, &draft_of(email), &email.id.to_string())
                .await
            {
                Ok(draft) => match draft.id {
                    Some(id) => id,
                    None => {
                        return Err(self
                            .fail(GraphFailure::malformed("the created draft has no id").into()))
                    }
                },
                Err(e) if e.kind() == ErrorKind::ItemLevel => {
                    return Ok(SendOutcome::Refused(e.to_string()))
                }
                Err(e) => return Err(self.fail(e)),
            },
        };
        // Recorded before the request leaves: if its answer is lost, a retry knows.
        journal.sending(email.id).await?;
        match self.client.send_draft(target, &draft_id).await {
            Ok(()) => Ok(SendOutcome::Accepted),
            Err(e) if e.kind() == ErrorKind::ItemLevel => {
                // Refused for good: the draft would only be sent by a later attempt.
                if let Err(d) = self.client.delete_message(target, &draft_id, None).await {
                    tracing::warn!(outgoing.id = %email.id, error = %d, "could not delete the refused draft");
                }
                super::send::withdraw_send_mark(journal, email).await;
                Ok(SendOutcome::Refused(e.to_string()))
            }
            // The draft may have been sent already (a 404 for a draft that moved): the next
            // attempt looks in Sent Items before anything else.
            Err(e) if e.kind() == ErrorKind::ItemNotFound => Err(ServerError::new(
                crate::sync::port::Failure::Unavailable,
                "graph.draft_gone",
                format!("the draft vanished while being sent ({e}); Sent Items is checked before a retry"),
            )),
            Err(e) => {
                if super::send::nothing_sent(&e) {
                    super::send::withdraw_send_mark(journal, email).await;
                }
                Err(self.fail(e))
            }
        }
    }

    async fn create_activity(
        &self,
        key: CreateKey,
        fields: &ActFields,
    ) -> Result<WriteOutcome, ServerError> {
        let target = &self.target;
        let categories = self.tracking_category.clone().map(|c| vec![c]);
        let result = match fields {
            ActFields::Appointment(a) => {
                let mut event = event_of(a);
                event.categories = categories;
                let transaction = transaction_id(key);
                self.client
                    .create_event(target, &event, &transaction)
                    .await
                    .map(|e| item_of(e.id, version(&e.etag, &e.change_key)))
            }
            ActFields::Contact(c) => {
                let mut contact = contact_of(c);
                contact.categories = categories;
                self.create_contact_once(key, &contact).await
            }
            ActFields::Task(t) => {
                let list = self.default_task_list().await?;
                let mut task = todo_of(t);
                task.categories = categories;
                self.client
                    .create_todo_task(target, &list, &task)
                    .await
                    .map(|t| item_of(t.id, t.etag))
            }
        };
        match result {
            Ok(Some(item)) => Ok(WriteOutcome::Written(item)),
            Ok(None) => {
                Err(self.fail(GraphFailure::malformed("the created item has no id").into()))
            }
            Err(e) if e.kind() == ErrorKind::ItemLevel => Ok(WriteOutcome::Refused(e.to_string())),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Contacts have no `transactionId`: the row's id rides in the one fixed create-key
    /// property, looked for before every POST. A contact already carrying it (a create whose
    /// answer was lost, or one made over EWS) is updated to the row's fields and linked,
    /// never created twice.
    async fn create_contact_once(
        &self,
        key: CreateKey,
        contact: &Contact,
    ) -> Result<Option<ItemRef>, GraphError> {
        let target = &self.target;
        let row_id = key.row_id.to_string();
        let written = match self.client.find_contact_for_row(target, &row_id).await? {
            Some(found) => match found.id.as_deref() {
                Some(id) => {
                    self.client
                        .update_contact(target, id, contact, None)
                        .await?
                }
                None => found,
            },
            None => self.client.create_contact(target, contact, &row_id).await?,
        };
        Ok(item_of(
            written.id,
            version(&written.etag, &written.change_key),
        ))
    }

    async fn update_activity(
        &self,
        item: &ItemRef,
        fields: &ActFields,
    ) -> Result<WriteOutcome, ServerError> {
        let target = &self.target;
        let etag = item.version.as_deref();
        let result = match fields {
            ActFields::Appointment(a) => self
                .client
                .update_event(target, &item.id, &event_of(a), etag)
                .await
                .map(|e| item_of(e.id, version(&e.etag, &e.change_key))),
            ActFields::Contact(c) => self
                .client
                .update_contact(target, &item.id, &contact_of(c), etag)
                .await
                .map(|c| item_of(c.id, version(&c.etag, &c.change_key))),
            ActFields::Task(t) => {
                let list = self.default_task_list().await?;
                self.client
                    .update_todo_task(target, &list, &item.id, &todo_of(t), etag)
                    .await
                    .map(|t| item_of(t.id, t.etag))
            }
        };
        match result {
            Ok(Some(written)) => Ok(WriteOutcome::Written(written)),
            Ok(None) => Ok(WriteOutcome::Written(ItemRef {
                id: item.id.clone(),
                version: None,
                received_at: None,
            })),
            Err(e) => match e.kind() {
                ErrorKind::Conflict => Ok(WriteOutcome::Conflict),
                ErrorKind::ItemNotFound => Ok(WriteOutcome::Missing),
                ErrorKind::ItemLevel => Ok(WriteOutcome::Refused(e.to_string())),
                _ => Err(self.fail(e)),
            },
        }
    }

    async fn remove_activity(
        &self,
        kind: ActKind,
        id: &str,
        removal: Removal,
    ) -> Result<bool, ServerError> {
        let target = &self.target;
        let result = match (kind, removal) {
            (_, Removal::DeclineMeeting(_)) => {
                // Declining (POST …/events/{id}/decline) is outside the Graph API description
                // exsync validates against; deleting would drop the meeting without telling
                // the organizer, which the scope rules forbid. The item stays.
                return Err(ServerError::new(
                    crate::sync::port::Failure::RequestRefused,
                    "graph.decline_unsupported",
                    "declining a meeting is not done through Microsoft Graph yet: the meeting stays in the attendee's calendar",
                ));
            }
            // The organizer's delete sends the cancellation to every attendee.
            (ActKind::Appointment, Removal::Delete | Removal::CancelMeeting) => {
                self.client.delete_event(target, id, None).await
            }
            (ActKind::Contact, _) => self.client.delete_contact(target, id, None).await,
            (ActKind::Task, _) => {
                let list = self.default_task_list().await?;
                self.client.delete_todo_task(target, &list, id, None).await
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ItemNotFound => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl MailServer for GraphMailbox {
    fn address(&self) -> &str {
        &self.target.mailbox
    }

    fn changes(
        &self,
        folder: Folder,
        state: Option<String>,
        hint: ChangeHint,
    ) -> PortFuture<'_, ChangePage> {
        Box::pin(async move { self.folder_changes(folder, state, hint).await })
    }

    fn emails<'a>(&'a self, ids: &'a [String]) -> PortFuture<'a, Vec<FetchedMail>> {
        Box::pin(async move { self.fetch_emails(ids).await })
    }

    fn activities<'a>(
        &'a self,
        kind: ActKind,
        ids: &'a [String],
    ) -> PortFuture<'a, Vec<Result<RemoteActivity, ItemFailure>>> {
        Box::pin(async move { self.fetch_activities(kind, ids).await })
    }

    fn item_facts<'a>(&'a self, kind: ActKind, id: &'a str) -> PortFuture<'a, Option<ItemFacts>> {
        Box::pin(async move { self.facts(kind, id).await })
    }

    fn find_sent(&self, outgoing_id: Uuid) -> PortFuture<'_, Option<SentCopy>> {
        Box::pin(async move {
            let copies = self.outgoing_copies(outgoing_id).await?;
            Ok(copies.sent.into_iter().next().map(|m| SentCopy {
                internet_message_id: m.internet_message_id.filter(|id| !id.trim().is_empty()),
            }))
        })
    }

    fn send<'a>(
        &'a self,
        email: &'a OutgoingEmail,
        journal: &'a dyn SendJournal,
    ) -> PortFuture<'a, SendOutcome> {
        Box::pin(async move { self.send_message(email, journal).await })
    }

    fn write_problem(&self, fields: &ActFields) -> Option<String> {
        write_problem(fields)
    }

    fn create<'a>(&'a self, key: CreateKey, fields: &'a ActFields) -> PortFuture<'a, WriteOutcome> {
        Box::pin(async move { self.create_activity(key, fields).await })
    }

    fn update<'a>(
        &'a self,
        item: &'a ItemRef,
        fields: &'a ActFields,
    ) -> PortFuture<'a, WriteOutcome> {
        Box::pin(async move { self.update_activity(item, fields).await })
    }

    fn remove<'a>(&'a self, kind: ActKind, id: &'a str, removal: Removal) -> PortFuture<'a, bool> {
        Box::pin(async move { self.remove_activity(kind, id, removal).await })
    }

    fn failed_request(&self) -> Option<ErrorCorrelation> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map(|c| ErrorCorrelation {
                client_request_id: Some(c.client_request_id),
                request_id: c.request_id,
                be_server: None,
            })
    }
}

/// A Graph failure in the port's terms: what failed (the reaction `sync` picks), the stable
/// `graph.*` code, and the error's text (which carries the correlation ids). `refused_setting`
/// is the token endpoint's code when it refused the request for a setting rather than the
/// credential.
pub fn server_error(error: &GraphError, refused_setting: Option<&str>) -> ServerError {
    use crate::sync::port::Failure;
    let (failure, code) = match error.failure() {
        GraphFailure::Throttled { retry_after, .. } => (
            Failure::Throttled {
                back_off: *retry_after,
            },
            "graph.throttled",
        ),
        GraphFailure::Unauthorized { .. } => (Failure::MailboxUnauthorized, "graph.invalid_token"),
        GraphFailure::Token(TokenError::Rejected { .. }) if refused_setting.is_some() => {
            (Failure::TokenRequestRefused, "oauth.token_request_refused")
        }
        GraphFailure::Token(TokenError::Rejected { .. }) => {
            (Failure::CredentialsRefused, "graph.oauth_token")
        }
        GraphFailure::Token(e @ (TokenError::Unavailable { .. } | TokenError::Malformed(_))) => (
            Failure::TokenEndpointUnavailable {
                retry_after: match e {
                    TokenError::Unavailable { retry_after, .. } => *retry_after,
                    _ => None,
                },
            },
            "oauth.token_endpoint_unavailable",
        ),
        GraphFailure::AccessDenied { .. } => (Failure::ImpersonationDenied, "graph.access_denied"),
        GraphFailure::MailboxNotEnabledForRest { .. } => (
            Failure::MailboxUnauthorized,
            "graph.mailbox_not_enabled_for_rest",
        ),
        GraphFailure::UnknownMailbox { .. } => {
            (Failure::MailboxNotFound, "graph.mailbox_not_found")
        }
        GraphFailure::QuotaExceeded { .. } => (Failure::QuotaExceeded, "graph.quota_exceeded"),
        GraphFailure::SendAsDenied { .. } => (Failure::SendAsDenied, "graph.send_as_denied"),
        GraphFailure::SyncStateExpired { .. } => {
            (Failure::SyncStateExpired, "graph.sync_state_expired")
        }
        GraphFailure::Conflict { .. } => (Failure::RequestRefused, "graph.conflict"),
        GraphFailure::ItemNotFound { .. } => (Failure::RequestRefused, "graph.item_not_found"),
        GraphFailure::ItemRefused { .. } => (Failure::RequestRefused, "graph.item_refused"),
        GraphFailure::MailboxRefused { .. } => (Failure::ServiceRefused, "graph.request_refused"),
        GraphFailure::Service { .. } => (Failure::Unavailable, "graph.server_error"),
        GraphFailure::Malformed { .. } => (Failure::Unavailable, "graph.malformed_response"),
        GraphFailure::Transport(_) => (Failure::Unavailable, "graph.unreachable"),
    };
    let mut message = error.to_string();
    if failure == Failure::MailboxUnauthorized && code == "graph.invalid_token" {
        message.push_str(
            ": a fresh token was refused too; check that oauth_scope (or graph_url's host + \
             /.default) names this Graph endpoint and that the application permissions have \
             admin consent",
        );
    }
    if let Some(setting) = refused_setting.filter(|_| failure == Failure::TokenRequestRefused) {
        message.push_str(&format!(
            " (the token endpoint refused the request as configured: {setting}; check oauth_tenant, oauth_token_url and oauth_scope)"
        ));
    }
    ServerError::new(failure, code, message)
}

/// The delta `$select` of a mail folder: what decides whether to fetch, nothing more.
pub(super) fn lean_message_select() -> MessageSelect {
    MessageSelect {
        properties: ["receivedDateTime", "isRead", "changeKey"]
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        body_type: None,
        expand_outgoing_marker: false,
    }
}

/// What an import reads of a message (the headers carry In-Reply-To and References).
fn full_message_select() -> MessageSelect {
    let mut select = MessageSelect::default();
    select.properties.push("internetMessageHeaders".to_owned());
    select
}

/// The version token of an Outlook item: its ETag (`W/"<changeKey>"`), or one built from the
/// change key when the answer carried only that.
pub(super) fn version(etag: &Option<String>, change_key: &Option<String>) -> Option<String> {
    etag.clone()
        .or_else(|| change_key.as_ref().map(|k| format!("W/\"{k}\"")))
}

fn item_of(id: Option<String>, version: Option<String>) -> Option<ItemRef> {
    id.map(|id| ItemRef {
        id,
        version,
        received_at: None,
    })
}

fn next_of<T>(page: &DeltaPage<T>) -> (String, bool) {
    match &page.next {
        DeltaNext::NextPage(link) => (link.clone(), false),
        DeltaNext::Done(link) => (link.clone(), true),
    }
}

/// A message delta page as changes: every change is fetched (Graph does not say whether an
/// entry is new), and a read flag is passed on for stored copies.
pub(super) fn message_changes(page: DeltaPage<Message>) -> ChangePage {
    let (sync_state, last) = next_of(&page);
    let mut changes = Vec::new();
    for entry in page.entries {
        match entry {
            DeltaEntry::Removed { id, .. } => changes.push(Change::Deleted(id)),
            DeltaEntry::Changed(m) => {
                let Some(id) = m.id.clone() else { continue };
                changes.push(Change::Updated(ItemRef {
                    id: id.clone(),
                    version: version(&m.etag, &m.change_key),
                    received_at: m.received_date_time,
                }));
                if let Some(read) = m.is_read {
                    changes.push(Change::ReadFlag(id, read));
                }
            }
        }
    }
    ChangePage {
        sync_state,
        last,
        changes,
    }
}

/// An activity delta page as changes.
fn changes_of<T>(
    page: DeltaPage<T>,
    key: impl Fn(&T) -> (Option<String>, Option<String>),
) -> ChangePage {
    let (sync_state, last) = next_of(&page);
    let changes = page
        .entries
        .into_iter()
        .filter_map(|entry| match entry {
            DeltaEntry::Removed { id, .. } => Some(Change::Deleted(id)),
            DeltaEntry::Changed(item) => {
                let (id, version) = key(&item);
                id.map(|id| {
                    Change::Updated(ItemRef {
                        id,
                        version,
                        received_at: None,
                    })
                })
            }
        })
        .collect();
    ChangePage {
        sync_state,
        last,
        changes,
    }
}

/// Meeting requests and responses land in the inbox but are not email to track.
fn is_email(message: &Message) -> bool {
    match message.odata_type.as_deref() {
        None => true,
        Some(t) => t.eq_ignore_ascii_case("#microsoft.graph.message"),
    }
}

fn address_of(recipient: &Recipient) -> Option<String> {
    recipient
        .email_address
        .as_ref()
        .and_then(|a| a.address.clone())
}

fn addresses(list: &Option<Vec<Recipient>>) -> Vec<String> {
    list.iter().flatten().filter_map(address_of).collect()
}

/// A fetched message as an incoming email (`None`: not an email).
fn incoming_mail(id: &str, m: Message) -> Option<IncomingMail> {
    if !is_email(&m) {
        return None;
    }
    let references = m.header("References").map(str::to_owned);
    let in_reply_to = m.header("In-Reply-To").map(str::to_owned);
    let (body, body_type) = match &m.body {
        Some(ItemBody {
            content_type: Some(BodyType::Html),
            content,
        }) => (content.clone().unwrap_or_default(), "html"),
        Some(ItemBody { content, .. }) => (content.clone().unwrap_or_default(), "text"),
        None => (String::new(), "text"),
    };
    let sender = m
        .from
        .as_ref()
        .or(m.sender.as_ref())
        .and_then(|r| r.email_address.clone());
    let email = NewEmail {
        item_id: id.to_owned(),
        change_key: m.change_key.clone(),
        internet_message_id: m
            .internet_message_id
            .clone()
            .filter(|s| !s.trim().is_empty()),
        subject: m.subject.clone().unwrap_or_default(),
        body,
        body_type,
        sender_address: sender
            .as_ref()
            .and_then(|s| s.address.as_ref())
            .map(|a| a.to_ascii_lowercase()),
        sender_name: sender.and_then(|s| s.name),
        to_recipients: addresses(&m.to_recipients),
        cc_recipients: addresses(&m.cc_recipients),
        in_reply_to,
        conversation_id: m.conversation_id.clone(),
        received_at: m.received_date_time,
        sent_at: m.sent_date_time,
        is_read: m.is_read,
    };
    Some(IncomingMail {
        email,
        references,
        categories: m.categories.unwrap_or_default(),
    })
}

fn recipients(list: &[String]) -> Option<Vec<Recipient>> {
    (!list.is_empty()).then(|| list.iter().map(Recipient::address).collect())
}

/// The draft of a queued email (sent as the mailbox: no `from`).
fn draft_of(email: &OutgoingEmail) -> Message {
    Message {
        subject: Some(email.subject.clone()),
        body: Some(if email.body_type == "html" {
            ItemBody::html(email.body.clone())
        } else {
            ItemBody::text(email.body.clone())
        }),
        to_recipients: recipients(&email.to_recipients),
        cc_recipients: recipients(&email.cc_recipients),
        bcc_recipients: recipients(&email.bcc_recipients),
        ..Message::default()
    }
}

fn text(body: &Option<ItemBody>) -> String {
    body.as_ref()
        .and_then(|b| b.content.clone())
        .unwrap_or_default()
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// An event's fields (a series master's recurrence is added by `series::appointment_of`).
pub(super) fn appointment(e: Event) -> RemoteActivity {
    let start = e.start.as_ref().and_then(DateTimeTimeZone::to_utc);
    let start_at = start
        .or(e.created_date_time)
        .unwrap_or_else(|| DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default());
    let end_at = e
        .end
        .as_ref()
        .and_then(DateTimeTimeZone::to_utc)
        .unwrap_or(start_at)
        .max(start_at);
    RemoteActivity {
        item: ItemRef {
            id: e.id.clone().unwrap_or_default(),
            version: version(&e.etag, &e.change_key),
            received_at: None,
        },
        modified_at: e.last_modified_date_time,
        fields: ActFields::Appointment(AppointmentFields {
            subject: e.subject.clone().unwrap_or_default(),
            body: text(&e.body),
            location: e
                .location
                .as_ref()
                .and_then(|l| l.display_name.clone())
                .unwrap_or_default(),
            start_at,
            end_at,
            is_all_day: e.is_all_day.unwrap_or(false),
            organizer: e.organizer.as_ref().and_then(address_of),
            attendees: e
                .attendees
                .iter()
                .flatten()
                .filter_map(|a| a.email_address.as_ref().and_then(|x| x.address.clone()))
                .collect(),
            // A series master's pattern: `series::appointment_of`.
            recurrence: None,
        }),
        categories: e.categories.unwrap_or_default(),
        // No create key is read back over Graph (events are idempotent by transactionId).
        created_for: None,
    }
}

fn event_of(a: &AppointmentFields) -> Event {
    Event {
        subject: Some(a.subject.clone()),
        body: Some(ItemBody::text(a.body.clone())),
        start: Some(DateTimeTimeZone::utc(a.start_at)),
        end: Some(DateTimeTimeZone::utc(a.end_at)),
        is_all_day: Some(a.is_all_day),
        location: non_empty(&a.location).map(|name| Location {
            display_name: Some(name),
            ..Location::default()
        }),
        attendees: (!a.attendees.is_empty()).then(|| {
            a.attendees
                .iter()
                .map(|x| exsync_graph::model::Attendee {
                    email_address: Some(EmailAddress::address(x.clone())),
                    attendee_type: Some(exsync_graph::model::AttendeeType::Required),
                    status: None,
                })
                .collect()
        }),
        // Checked by `write_problem` before any request.
        recurrence: a
            .recurrence
            .as_ref()
            .and_then(|r| super::series::graph_recurrence(r).ok()),
        ..Event::default()
    }
}

/// The mailbox's part in an event: the organizer's copy with attendees is a meeting whose
/// attendees were invited (Graph sends invitations on create); an attendee's copy is theirs.
fn event_role(e: &Event) -> MeetingRole {
    let has_attendees = e.attendees.as_ref().is_some_and(|a| !a.is_empty());
    if !has_attendees {
        return MeetingRole::NotAMeeting;
    }
    match e.is_organizer {
        Some(false) => MeetingRole::Attendee,
        _ => MeetingRole::Organizer {
            invitations_sent: true,
        },
    }
}

/// A stable `transactionId` per row version: a POST retried after a lost answer carries the
/// same one, and Graph creates no second event (TP-EVENT-DESC).
fn transaction_id(key: CreateKey) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(key.row_id.as_bytes());
    hash.update(key.version.to_le_bytes());
    let digest = hash.finalize();
    let bytes: [u8; 16] = digest[..16].try_into().unwrap_or([0; 16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Phone keys a Graph contact can hold, and where.
const PHONE_KEYS: [&str; 5] = [
    "BusinessPhone",
    "BusinessPhone2",
    "HomePhone",
    "HomePhone2",
    "MobilePhone",
];

fn contact(c: Contact) -> RemoteActivity {
    let mut phones = BTreeMap::new();
    for (i, number) in c.business_phones.iter().flatten().take(2).enumerate() {
        let key = if i == 0 {
            "BusinessPhone"
        } else {
            "BusinessPhone2"
        };
        phones.insert(key.to_owned(), number.clone());
    }
    for (i, number) in c.home_phones.iter().flatten().take(2).enumerate() {
        let key = if i == 0 { "HomePhone" } else { "HomePhone2" };
        phones.insert(key.to_owned(), number.clone());
    }
    if let Some(mobile) = c.mobile_phone.clone().filter(|m| !m.is_empty()) {
        phones.insert("MobilePhone".to_owned(), mobile);
    }
    RemoteActivity {
        item: ItemRef {
            id: c.id.clone().unwrap_or_default(),
            version: version(&c.etag, &c.change_key),
            received_at: None,
        },
        modified_at: c.last_modified_date_time,
        fields: ActFields::Contact(ContactFields {
            display_name: c.display_name.clone().unwrap_or_default(),
            given_name: c.given_name.clone().unwrap_or_default(),
            surname: c.surname.clone().unwrap_or_default(),
            company_name: c.company_name.clone().unwrap_or_default(),
            job_title: c.job_title.clone().unwrap_or_default(),
            email_addresses: c
                .email_addresses
                .iter()
                .flatten()
                .filter_map(|a| a.address.clone())
                .collect(),
            phone_numbers: phones,
        }),
        created_for: c
            .extended_property(ACTIVITY_KEY_PROPERTY)
            .and_then(|v| Uuid::parse_str(v).ok()),
        categories: c.categories.unwrap_or_default(),
    }
}

fn contact_of(c: &ContactFields) -> Contact {
    let phone = |key: &str| c.phone_numbers.get(key).cloned();
    let pair = |a: &str, b: &str| {
        let list: Vec<String> = [phone(a), phone(b)].into_iter().flatten().collect();
        (!list.is_empty()).then_some(list)
    };
    Contact {
        display_name: non_empty(&c.display_name),
        given_name: non_empty(&c.given_name),
        surname: non_empty(&c.surname),
        company_name: non_empty(&c.company_name),
        job_title: non_empty(&c.job_title),
        email_addresses: (!c.email_addresses.is_empty()).then(|| {
            c.email_addresses
                .iter()
                .take(3)
                .map(|a| EmailAddress::address(a.clone()))
                .collect()
        }),
        business_phones: pair("BusinessPhone", "BusinessPhone2"),
        home_phones: pair("HomePhone", "HomePhone2"),
        mobile_phone: phone("MobilePhone"),
        ..Contact::default()
    }
}

/// The database spells task statuses in snake case, Graph in camel case.
const TASK_STATUSES: [(TaskStatus, &str); 5] = [
    (TaskStatus::NotStarted, "not_started"),
    (TaskStatus::InProgress, "in_progress"),
    (TaskStatus::Completed, "completed"),
    (TaskStatus::WaitingOnOthers, "waiting_on_others"),
    (TaskStatus::Deferred, "deferred"),
];

fn task(t: TodoTask) -> RemoteActivity {
    let status = t
        .status
        .and_then(|s| TASK_STATUSES.iter().find(|(g, _)| *g == s))
        .map_or("not_started", |(_, db)| db);
    RemoteActivity {
        item: ItemRef {
            id: t.id.clone().unwrap_or_default(),
            version: t.etag.clone(),
            received_at: None,
        },
        modified_at: t.last_modified_date_time,
        fields: ActFields::Task(TaskFields {
            subject: t.title.clone().unwrap_or_default(),
            body: text(&t.body),
            status: status.to_owned(),
            start_at: t
                .start_date_time
                .as_ref()
                .and_then(DateTimeTimeZone::to_utc),
            due_at: t.due_date_time.as_ref().and_then(DateTimeTimeZone::to_utc),
            completed_at: t
                .completed_date_time
                .as_ref()
                .and_then(DateTimeTimeZone::to_utc),
            // To Do keeps no percentage: a completed task is 100, any other 0.
            percent_complete: if status == "completed" { 100 } else { 0 },
        }),
        categories: t.categories.unwrap_or_default(),
        created_for: None,
    }
}

fn todo_of(t: &TaskFields) -> TodoTask {
    TodoTask {
        title: Some(t.subject.clone()),
        body: Some(ItemBody::text(t.body.clone())),
        status: TASK_STATUSES
            .iter()
            .find(|(_, db)| *db == t.status)
            .map(|(g, _)| *g),
        start_date_time: t.start_at.map(DateTimeTimeZone::utc),
        due_date_time: t.due_at.map(DateTimeTimeZone::utc),
        completed_date_time: t.completed_at.map(DateTimeTimeZone::utc),
        ..TodoTask::default()
    }
}

/// What Graph would not hold of an activity, checked before a request is spent on it.
pub fn write_problem(fields: &ActFields) -> Option<String> {
    match fields {
        ActFields::Appointment(a) if a.end_at < a.start_at => Some(format!(
            "the appointment ends ({}) before it starts ({})",
            a.end_at, a.start_at
        )),
        ActFields::Appointment(a) => a
            .recurrence
            .as_ref()
            .and_then(|r| super::series::graph_recurrence(r).err()),
        ActFields::Contact(c) => c
            .phone_numbers
            .keys()
            .find(|k| !PHONE_KEYS.contains(&k.as_str()))
            .map(|k| {
                format!(
                    "phone number key {k:?} has no place in a Microsoft Graph contact (it holds {})",
                    PHONE_KEYS.join(", ")
                )
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::port::Failure;
    use chrono::TimeZone;
    use exsync_graph::model::InternetMessageHeader;
    use std::time::Duration;

    fn err(failure: GraphFailure) -> GraphError {
        GraphError::new(failure, None)
    }

    #[test]
    fn graph_failures_map_onto_the_port_taxonomy() {
        let cases = [
            (
                err(GraphFailure::Throttled {
                    mailbox: "a@b.test".into(),
                    code: "ApplicationThrottled".into(),
                    retry_after: Duration::from_secs(9),
                }),
                Failure::Throttled {
                    back_off: Duration::from_secs(9),
                },
                "graph.throttled",
            ),
            (
                err(GraphFailure::AccessDenied {
                    mailbox: "a@b.test".into(),
                    code: "ErrorAccessDenied".into(),
                    permission: "Mail.ReadWrite",
                }),
                Failure::ImpersonationDenied,
                "graph.access_denied",
            ),
            (
                err(GraphFailure::MailboxNotEnabledForRest {
                    mailbox: "a@b.test".into(),
                }),
                Failure::MailboxUnauthorized,
                "graph.mailbox_not_enabled_for_rest",
            ),
            (
                err(GraphFailure::UnknownMailbox {
                    mailbox: "a@b.test".into(),
                    code: "ErrorInvalidUser".into(),
                }),
                Failure::MailboxNotFound,
                "graph.mailbox_not_found",
            ),
            (
                err(GraphFailure::QuotaExceeded {
                    mailbox: "a@b.test".into(),
                    code: "ErrorQuotaExceeded".into(),
                    message: "full".into(),
                }),
                Failure::QuotaExceeded,
                "graph.quota_exceeded",
            ),
            (
                err(GraphFailure::SendAsDenied {
                    mailbox: "a@b.test".into(),
                    code: "ErrorSendAsDenied".into(),
                }),
                Failure::SendAsDenied,
                "graph.send_as_denied",
            ),
            (
                err(GraphFailure::SyncStateExpired {
                    status: 410,
                    code: "SyncStateNotFound".into(),
                }),
                Failure::SyncStateExpired,
                "graph.sync_state_expired",
            ),
            (
                err(GraphFailure::Unauthorized {
                    mailbox: "a@b.test".into(),
                    code: "InvalidAuthenticationToken".into(),
                }),
                Failure::MailboxUnauthorized,
                "graph.invalid_token",
            ),
            (
                err(GraphFailure::Token(TokenError::Rejected {
                    code: "invalid_client".into(),
                })),
                Failure::CredentialsRefused,
                "graph.oauth_token",
            ),
            (
                err(GraphFailure::Service {
                    status: 500,
                    code: "HTTP_500".into(),
                    message: String::new(),
                }),
                Failure::Unavailable,
                "graph.server_error",
            ),
            (
                err(GraphFailure::ItemRefused {
                    status: 400,
                    code: "ErrorInvalidRecipients".into(),
                    message: String::new(),
                }),
                Failure::RequestRefused,
                "graph.item_refused",
            ),
        ];
        for (error, failure, code) in cases {
            let mapped = server_error(&error, None);
            assert_eq!(mapped.failure, failure, "{code}");
            assert_eq!(mapped.code, code);
        }
    }

    #[test]
    fn an_out_of_scope_mailbox_says_what_to_grant() {
        let error = err(GraphFailure::AccessDenied {
            mailbox: "bob@contoso.test".into(),
            code: "ErrorAccessDenied".into(),
            permission: "Mail.ReadWrite",
        });
        let mapped = server_error(&error, None);
        assert!(
            mapped.message.contains("bob@contoso.test"),
            "{}",
            mapped.message
        );
        assert!(
            mapped.message.contains("New-ManagementRoleAssignment"),
            "{}",
            mapped.message
        );
        assert!(
            mapped.message.contains("Mail.ReadWrite"),
            "{}",
            mapped.message
        );
    }

    #[test]
    fn a_token_request_refused_for_a_setting_is_not_a_refused_credential() {
        let error = err(GraphFailure::Token(TokenError::Rejected {
            code: "invalid_scope (HTTP 400)".into(),
        }));
        let mapped = server_error(&error, Some("invalid_scope"));
        assert_eq!(mapped.failure, Failure::TokenRequestRefused);
        assert!(mapped.message.contains("oauth_scope"), "{}", mapped.message);
    }

    #[test]
    fn a_delta_page_becomes_changes_with_the_link_as_state() {
        let page = DeltaPage {
            entries: vec![
                DeltaEntry::Changed(Message {
                    id: Some("m1".into()),
                    change_key: Some("ck1".into()),
                    is_read: Some(true),
                    received_date_time: Some(Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()),
                    ..Message::default()
                }),
                DeltaEntry::Removed {
                    id: "m0".into(),
                    reason: Some("deleted".into()),
                },
            ],
            next: DeltaNext::NextPage("https://graph.test/v1.0/next".into()),
        };
        let changes = message_changes(page);
        assert_eq!(changes.sync_state, "https://graph.test/v1.0/next");
        assert!(!changes.last);
        assert_eq!(
            changes.changes[0],
            Change::Updated(ItemRef {
                id: "m1".into(),
                version: Some("W/\"ck1\"".into()),
                received_at: Some(Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()),
            })
        );
        assert_eq!(changes.changes[1], Change::ReadFlag("m1".into(), true));
        assert_eq!(changes.changes[2], Change::Deleted("m0".into()));
        let done: DeltaPage<Message> = DeltaPage {
            entries: vec![],
            next: DeltaNext::Done("https://graph.test/v1.0/delta".into()),
        };
        assert!(message_changes(done).last);
    }

    #[test]
    fn meeting_requests_are_not_imported_as_email_and_headers_are_read() {
        let mut m = Message {
            odata_type: Some("#microsoft.graph.eventMessage".into()),
            ..Message::default()
        };
        assert!(incoming_mail("x", m.clone()).is_none());
        m.odata_type = None;
        m.internet_message_headers = Some(vec![
            InternetMessageHeader {
                name: Some("In-Reply-To".into()),
                value: Some("<a@b>".into()),
            },
            InternetMessageHeader {
                name: Some("References".into()),
                value: Some("<a@b> <c@d>".into()),
            },
        ]);
        m.from = Some(Recipient::address("Alice@Contoso.TEST"));
        m.body = Some(ItemBody::html("<p>hi</p>"));
        let mail = incoming_mail("x", m).unwrap();
        assert_eq!(mail.email.in_reply_to.as_deref(), Some("<a@b>"));
        assert_eq!(mail.references.as_deref(), Some("<a@b> <c@d>"));
        assert_eq!(
            mail.email.sender_address.as_deref(),
            Some("alice@contoso.test")
        );
        assert_eq!(mail.email.body_type, "html");
    }

    #[test]
    fn activities_round_trip_through_graph_shapes() {
        let fields = AppointmentFields {
            subject: "Review".into(),
            body: "agenda".into(),
            location: "Room 1".into(),
            start_at: Utc.with_ymd_and_hms(2026, 12, 9, 9, 0, 0).unwrap(),
            end_at: Utc.with_ymd_and_hms(2026, 12, 9, 10, 0, 0).unwrap(),
            is_all_day: false,
            organizer: None,
            attendees: vec!["bob@contoso.test".into()],
            recurrence: None,
        };
        let mut event = event_of(&fields);
        event.id = Some("e1".into());
        let back = appointment(event);
        let ActFields::Appointment(a) = back.fields else {
            panic!("an appointment")
        };
        assert_eq!(a.start_at, fields.start_at);
        assert_eq!(a.end_at, fields.end_at);
        assert_eq!(a.location, "Room 1");
        assert_eq!(a.attendees, fields.attendees);

        let contact_fields = ContactFields {
            display_name: "Ann Lee".into(),
            given_name: "Ann".into(),
            surname: "Lee".into(),
            company_name: "Fabrikam".into(),
            job_title: String::new(),
            email_addresses: vec!["ann@fabrikam.test".into()],
            phone_numbers: [
                ("BusinessPhone".to_owned(), "1".to_owned()),
                ("MobilePhone".to_owned(), "2".to_owned()),
            ]
            .into_iter()
            .collect(),
        };
        let back = contact(contact_of(&contact_fields));
        assert_eq!(back.fields, ActFields::Contact(contact_fields));

        let task_fields = TaskFields {
            subject: "Call".into(),
            body: "about the offer".into(),
            status: "completed".into(),
            start_at: None,
            due_at: Some(Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap()),
            completed_at: Some(Utc.with_ymd_and_hms(2026, 12, 8, 0, 0, 0).unwrap()),
            percent_complete: 100,
        };
        let back = task(todo_of(&task_fields));
        assert_eq!(back.fields, ActFields::Task(task_fields));
    }

    #[test]
    fn what_graph_cannot_hold_is_refused_before_a_request() {
        let contact = ActFields::Contact(ContactFields {
            display_name: "x".into(),
            given_name: String::new(),
            surname: String::new(),
            company_name: String::new(),
            job_title: String::new(),
            email_addresses: vec![],
            phone_numbers: [("CarPhone".to_owned(), "1".to_owned())]
                .into_iter()
                .collect(),
        });
        assert!(write_problem(&contact).unwrap().contains("CarPhone"));
        let mut series = AppointmentFields {
            subject: "Weekly".into(),
            body: String::new(),
            location: String::new(),
            start_at: Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap(),
            end_at: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
            is_all_day: false,
            organizer: None,
            attendees: vec![],
            recurrence: Some(serde_json::json!({
                "pattern": {"type": "weekly", "interval": 1, "days_of_week": ["monday"]},
                "range": {"type": "no_end", "start_date": "2026-12-07"}
            })),
        };
        assert_eq!(
            write_problem(&ActFields::Appointment(series.clone())),
            None,
            "a series is written"
        );
        series.recurrence = Some(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 0, "days_of_week": ["monday"]},
            "range": {"type": "no_end", "start_date": "2026-12-07"}
        }));
        assert!(write_problem(&ActFields::Appointment(series))
            .unwrap()
            .contains("interval"));
    }

    #[test]
    fn the_same_row_version_gives_the_same_transaction_id() {
        let key = CreateKey {
            row_id: Uuid::new_v4(),
            version: 3,
        };
        assert_eq!(transaction_id(key), transaction_id(key));
        let newer = CreateKey { version: 4, ..key };
        assert_ne!(transaction_id(key), transaction_id(newer));
        let other_row = CreateKey {
            row_id: Uuid::new_v4(),
            ..key
        };
        assert_ne!(transaction_id(key), transaction_id(other_row));
    }

    #[test]
    fn the_calendar_window_is_around_the_start_of_the_round() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap();
        let window = CalendarSpan {
            past_days: 30,
            future_days: 60,
        }
        .window(now);
        assert_eq!(window.start, now - ChronoDuration::days(30));
        assert_eq!(window.end, now + ChronoDuration::days(60));
    }
}

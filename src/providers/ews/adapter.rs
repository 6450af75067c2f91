//! The EWS side of `sync::port`: one mailbox, reached one way, spoken to in domain words
//! (changes, emails, activities, sends). Every SOAP type stops here, and every [`EwsError`]
//! becomes a [`ServerError`] with its stable `ews.*` code.
//!
//! Writes that must happen once carry an idempotency key in a fixed named extended property
//! ([`EXSYNC_PROPERTY_SET`]): a send its outgoing row's id (`ExsyncOutgoingId`, looked for in
//! Sent Items), a created activity its row's id (`ExsyncActivityKey`, looked for in the
//! target folder before every CreateItem).

use crate::domain::scope::MeetingRole;
use crate::store::activities::{ActFields, ActKind, AppointmentFields, ContactFields, TaskFields};
use crate::store::emails::NewEmail;
use crate::store::outgoing::OutgoingEmail;
use crate::store::scheduling::ErrorCorrelation;
use crate::sync::plan::Access;
use crate::sync::port::{
    Change, ChangeHint, ChangePage, CreateKey, FetchedMail, Folder, ItemFacts, ItemFailure,
    ItemRef, MailServer, PortFuture, RemoteActivity, Removal, SendJournal, SendOutcome, SentCopy,
    ServerError, WriteOutcome,
};
use exsync_ews::client::{EwsClient, EwsOperation, Target};
use exsync_ews::extended::{ExtendedFieldUri, ExtendedProperty};
use exsync_ews::ops::{
    CreateItemRequest, DeleteItemRequest, FindItemRequest, GetItemRequest, ItemChange, ItemUpdate,
    MaxChangesReturned, MeetingResponseRequest, SyncFolderItemsRequest, SyncItemChange,
    UpdateItemRequest,
};
use exsync_ews::recurrence::Recurrence;
use exsync_ews::transport::RequestTrace;
use exsync_ews::types::{
    BaseFolderId, BaseShape, Body, BodyType, CalendarItem, ConflictResolution, Contact, DeleteType,
    DistinguishedFolderName, EmailAddress, FieldUri, IndexedPageView, Item, ItemBase, ItemId,
    ItemShape, Message, MessageDisposition, ResponseCode, ResponseType, Restriction,
    SendMeetingInvitations, SendMeetingInvitationsOrCancellations, Task, TaskStatus, Traversal,
    PHONE_NUMBER_KEYS,
};
use exsync_ews::EwsError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Rounds of GetItem that Exchange may stop (ErrorBatchProcessingStopped) without processing
/// a single item before the fetch is given up as a transient failure.
const STOPPED_ROUNDS: u32 = 3;

/// One mailbox as the sync engine sees it: a client, and how it reaches the mailbox.
#[derive(Debug, Clone)]
pub struct MailboxConnection {
    client: Arc<EwsClient>,
    target: Target,
    delegate: bool,
    max_changes: u32,
    batch: usize,
    tracking_category: Option<String>,
    /// The last request that failed (its client-request-id and Exchange's ids), kept with
    /// the stored last error.
    failed_request: Arc<Mutex<Option<RequestTrace>>>,
}

impl MailboxConnection {
    /// A connection to `address` through `client`, reached by `access`.
    pub fn new(
        client: Arc<EwsClient>,
        address: &str,
        access: Access,
        max_changes: u32,
        batch: usize,
    ) -> Self {
        Self {
            client,
            target: Target {
                mailbox: address.to_owned(),
                impersonate: access == Access::Impersonate,
                log_payloads: false,
            },
            delegate: access == Access::Delegate,
            max_changes: max_changes.clamp(1, 512),
            batch: batch.max(1),
            tracking_category: None,
            failed_request: Arc::new(Mutex::new(None)),
        }
    }

    /// Log this mailbox's EWS payloads (its own setting: the client may be shared by many
    /// mailboxes whose payloads must stay out of the logs).
    pub fn with_payload_logging(mut self, on: bool) -> Self {
        self.target.log_payloads = on;
        self
    }

    /// Put `category` on the items exsync creates, so users see them as tracked.
    pub fn with_tracking_category(mut self, category: &str) -> Self {
        self.tracking_category = Some(category.to_owned());
        self
    }

    /// The last request of this connection that failed, if any.
    fn failed_trace(&self) -> Option<RequestTrace> {
        self.failed_request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One operation for this mailbox; a failure's request is remembered.
    async fn call<O: EwsOperation>(&self, request: &O) -> Result<O::Response, EwsError> {
        let (outcome, trace) = self.client.call_traced(Some(&self.target), request).await;
        if outcome.is_err() {
            *self
                .failed_request
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = trace;
        }
        outcome
    }

    fn folder(&self, name: DistinguishedFolderName) -> BaseFolderId {
        BaseFolderId::Distinguished {
            name,
            mailbox: self.delegate.then(|| self.target.mailbox.clone()),
        }
    }

    /// The next page of changes of a folder after `sync_state` (`None`: from the beginning).
    async fn folder_changes(
        &self,
        folder: DistinguishedFolderName,
        sync_state: Option<String>,
    ) -> Result<ChangePage, EwsError> {
        let mut item_shape = ItemShape::new(BaseShape::IdOnly);
        item_shape.additional_properties = vec![FieldUri::DATE_TIME_RECEIVED];
        let request = SyncFolderItemsRequest {
            item_shape,
            sync_folder_id: self.folder(folder),
            sync_state,
            ignore: Vec::new(),
            max_changes_returned: MaxChangesReturned::new(self.max_changes).map_err(|e| {
                EwsError::Malformed {
                    excerpt: e.to_string(),
                }
            })?,
            sync_scope: None,
        };
        let response = self.call(&request).await?;
        let result = response.first()?;
        let changes = result
            .changes
            .iter()
            .filter_map(|change| match change {
                SyncItemChange::Create(item) => item
                    .item_id()
                    .map(|id| Change::Created(received(item_ref(id), item))),
                SyncItemChange::Update(item) => item
                    .item_id()
                    .map(|id| Change::Updated(received(item_ref(id), item))),
                SyncItemChange::Delete(id) => Some(Change::Deleted(id.id.clone())),
                SyncItemChange::ReadFlagChange { item_id, is_read } => {
                    Some(Change::ReadFlag(item_id.id.clone(), *is_read))
                }
            })
            .collect();
        Ok(ChangePage {
            sync_state: result.sync_state.clone(),
            last: result.includes_last_item_in_range,
            changes,
        })
    }

    /// Fetch items in batches with exactly `properties` (IdOnly plus those: Exchange returns
    /// nothing else); each item is the item or why it could not be had. Items of a batch
    /// Exchange stopped (`Warning` / ErrorBatchProcessingStopped: not processed, which is not
    /// success) are asked for again.
    async fn get_items(
        &self,
        ids: &[String],
        properties: &[FieldUri],
    ) -> Result<Vec<Result<Item, ItemFailure>>, EwsError> {
        let mut out: Vec<Option<Result<Item, ItemFailure>>> = vec![None; ids.len()];
        let mut pending: Vec<usize> = (0..ids.len()).collect();
        let mut fruitless = 0;
        while !pending.is_empty() {
            let take = pending.len().min(self.batch);
            let chunk: Vec<usize> = pending.drain(..take).collect();
            let mut shape = ItemShape::new(BaseShape::IdOnly);
            shape.additional_properties = properties.to_vec();
            let request = GetItemRequest {
                item_shape: shape,
                item_ids: chunk.iter().map(|&i| ItemId::new(&ids[i])).collect(),
            };
            let response = self.call(&request).await?;
            let mut stopped = Vec::new();
            for (position, &index) in chunk.iter().enumerate() {
                let id = &ids[index];
                let failed = |error: String, code: Option<&str>| {
                    Some(Err(ItemFailure {
                        id: id.clone(),
                        error,
                        gone: code == Some(ResponseCode::ERROR_ITEM_NOT_FOUND.as_str()),
                    }))
                };
                let Some(message) = response.messages.get(position) else {
                    out[index] = failed("Exchange returned no response for this item".into(), None);
                    continue;
                };
                if message.code == ResponseCode::ERROR_BATCH_PROCESSING_STOPPED {
                    stopped.push(index);
                    continue;
                }
                out[index] = match message.result() {
                    Ok(items) => match items.first() {
                        Some(item) => Some(Ok(item.clone())),
                        None => failed("Exchange returned an empty item".into(), None),
                    },
                    Err(e) if e.kind() == exsync_ews::ErrorKind::Throttled => return Err(e),
                    Err(e) => failed(
                        format!("{}: {e}", message.code),
                        Some(message.code.as_str()),
                    ),
                };
            }
            if stopped.len() == chunk.len() {
                fruitless += 1;
                if fruitless >= STOPPED_ROUNDS {
                    return Err(EwsError::ServerError {
                        code: ResponseCode::ERROR_BATCH_PROCESSING_STOPPED
                            .as_str()
                            .to_owned(),
                        message: "Exchange stopped every GetItem batch before processing an item"
                            .into(),
                    });
                }
            } else {
                fruitless = 0;
            }
            // The stopped items go first into the next request.
            stopped.extend(pending);
            pending = stopped;
        }
        Ok(out
            .into_iter()
            .zip(ids)
            .map(|(result, id)| {
                result.unwrap_or_else(|| {
                    Err(ItemFailure {
                        id: id.clone(),
                        error: "not fetched".into(),
                        gone: false,
                    })
                })
            })
            .collect())
    }

    /// Fetch messages with what the incoming filter reads (References, Categories); items
    /// that are not email messages come back as `Ok(None)`.
    async fn fetch_incoming(&self, ids: &[String]) -> Result<Vec<FetchedMail>, EwsError> {
        let items = self.get_items(ids, &EMAIL_PROPERTIES).await?;
        Ok(ids
            .iter()
            .cloned()
            .zip(items)
            .map(|(id, item)| {
                let email = item.map(|item| match item {
                    Item::Message(m) if is_email(&m) => {
                        let references = m.references.clone();
                        let categories = m.base.categories.clone();
                        Some(crate::sync::port::IncomingMail {
                            email: to_new_email(&id, m),
                            references,
                            categories,
                        })
                    }
                    _ => None,
                });
                (id, email)
            })
            .collect())
    }

    /// Fetch activities of `kind`.
    async fn fetch_activities(
        &self,
        kind: ActKind,
        ids: &[String],
    ) -> Result<Vec<Result<RemoteActivity, ItemFailure>>, EwsError> {
        let mut properties = activity_properties(kind).to_vec();
        properties.push(FieldUri::extended(&activity_key_property()));
        let items = self.get_items(ids, &properties).await?;
        Ok(items
            .into_iter()
            .zip(ids)
            .map(|(item, id)| {
                let item = item?;
                to_activity(kind, item).ok_or_else(|| ItemFailure {
                    id: id.clone(),
                    error: format!("not a {} item", kind.as_str()),
                    gone: false,
                })
            })
            .collect())
    }

    /// The copy of a queued email in this mailbox's Sent Items, found by the email's
    /// idempotency key (the `ExsyncOutgoingId` extended property): a send Exchange accepted,
    /// before a crash or a lost reply too. `None`: not there (not sent, or not filed yet).
    async fn sent_copy(&self, outgoing_id: Uuid) -> Result<Option<SentCopy>, EwsError> {
        let key = FieldUri::extended(&outgoing_id_property());
        let mut shape = ItemShape::new(BaseShape::IdOnly);
        shape.additional_properties = vec![FieldUri::INTERNET_MESSAGE_ID, key.clone()];
        let request = FindItemRequest {
            traversal: Traversal::Shallow,
            item_shape: shape,
            page: Some(IndexedPageView {
                max_entries_returned: 1,
                offset: 0,
                base_point_beginning: true,
            }),
            restriction: Some(Restriction::IsEqualTo(key, outgoing_id.to_string())),
            parent_folder_ids: vec![self.folder(DistinguishedFolderName::SentItems)],
        };
        let response = self.call(&request).await?;
        Ok(response.first()?.items.first().map(|item| SentCopy {
            internet_message_id: match item {
                Item::Message(m) => m
                    .internet_message_id
                    .clone()
                    .filter(|id| !id.trim().is_empty()),
                _ => None,
            },
        }))
    }

    /// Send a queued email as this mailbox (`From` = the mailbox, which a delegate needs the
    /// Send As right for), keeping a copy in its Sent Items, tagged with the email's
    /// idempotency key. Exchange assigns the Message-ID (read it back with `sent_copy`).
    /// `Refused`: Exchange refused this one message (bad recipient, too large, …);
    /// `Err`: the mailbox or the connection failed (quota, Send As right, …): nothing about
    /// the message was decided.
    ///
    /// CreateItem `SendAndSaveCopy` is one request whose answer can be lost after Exchange
    /// sent the message (its Sent Items copy is filed asynchronously, maybe after a retry
    /// looked): the request is journalled before it leaves, the mark withdrawn only when
    /// Exchange answers definitely that nothing was sent ([`nothing_sent`]). An earlier
    /// attempt's issued send whose copy is not in Sent Items is [`SendOutcome::Unconfirmed`]:
    /// never sent a second time.
    async fn send_message(
        &self,
        email: &OutgoingEmail,
        journal: &dyn SendJournal,
    ) -> Result<SendOutcome, ServerError> {
        if let Some(issued) = email.send_issued_at {
            if self
                .sent_copy(email.id)
                .await
                .map_err(server_error)?
                .is_some()
            {
                tracing::info!(outgoing.id = %email.id, "already in Sent Items; not sending again");
                return Ok(SendOutcome::Accepted);
            }
            // The request left once and its answer was lost: Exchange may have sent it with
            // its Sent Items copy not filed yet. A second CreateItem could send it twice.
            return Ok(SendOutcome::Unconfirmed(format!(
                "waiting for the Sent Items copy: a send was issued at {issued} with its answer \
                 lost, and no Sent Items copy marked with the row id is found yet"
            )));
        }
        let addresses = |list: &[String]| -> Vec<EmailAddress> {
            list.iter().map(|a| EmailAddress::new(None, a)).collect()
        };
        let message = Message {
            base: ItemBase {
                subject: Some(email.subject.clone()),
                body: Some(Body {
                    body_type: if email.body_type == "html" {
                        BodyType::Html
                    } else {
                        BodyType::Text
                    },
                    content: email.body.clone(),
                }),
                extended_properties: vec![ExtendedProperty::new(
                    outgoing_id_property(),
                    email.id.to_string(),
                )],
                ..ItemBase::default()
            },
            to_recipients: addresses(&email.to_recipients),
            cc_recipients: addresses(&email.cc_recipients),
            bcc_recipients: addresses(&email.bcc_recipients),
            from: Some(EmailAddress::new(None, &self.target.mailbox)),
            ..Message::default()
        };
        let request = CreateItemRequest {
            message_disposition: Some(MessageDisposition::SendAndSaveCopy),
            send_meeting_invitations: None,
            saved_item_folder_id: Some(self.folder(DistinguishedFolderName::SentItems)),
            items: vec![Item::Message(message)],
        };
        // Recorded before the request leaves: if its answer is lost, a retry knows.
        journal.sending(email.id).await?;
        let refused = match self.call(&request).await {
            Ok(response) => match response.messages.first().and_then(|m| m.to_error()) {
                None => return Ok(SendOutcome::Accepted),
                // An Error-class response message: Exchange's own answer, nothing was sent.
                Some(e) => e,
            },
            Err(e) if nothing_sent(&e, self.failed_trace().as_ref()) => e,
            // The outcome is unknown (timeout, dropped connection, unreadable answer): the
            // mark stays, and a retry looks in Sent Items instead of sending again.
            Err(e) => return Err(server_error(e)),
        };
        if let Err(e) = journal.not_sent(email.id).await {
            // The mark staying is the safe side: a retry waits for a copy, then alerts.
            tracing::warn!(outgoing.id = %email.id, error = %e, "could not withdraw the send mark of a refused send");
        }
        if item_level(&refused) {
            Ok(SendOutcome::Refused(refused.to_string()))
        } else {
            Err(server_error(refused))
        }
    }

    /// The item an earlier create of the row `row_id` left in `folder` (found by its
    /// `ExsyncActivityKey`), if any: a create whose answer was lost, or whose result was not
    /// recorded before a crash.
    async fn created_earlier(
        &self,
        folder: DistinguishedFolderName,
        row_id: Uuid,
    ) -> Result<Option<ItemRef>, EwsError> {
        let key = FieldUri::extended(&activity_key_property());
        let request = FindItemRequest {
            traversal: Traversal::Shallow,
            item_shape: ItemShape::new(BaseShape::IdOnly),
            page: Some(IndexedPageView {
                max_entries_returned: 1,
                offset: 0,
                base_point_beginning: true,
            }),
            restriction: Some(Restriction::IsEqualTo(key, row_id.to_string())),
            parent_folder_ids: vec![self.folder(folder)],
        };
        let response = self.call(&request).await?;
        Ok(response
            .first()?
            .items
            .first()
            .and_then(Item::item_id)
            .map(item_ref))
    }

    /// Create an activity in its folder, idempotently: the item is stamped with the row id
    /// ([`activity_key_property`]), and an item an earlier attempt created is looked for first
    /// and, when found, brought to the row's current fields instead of creating a second one.
    /// A request Exchange refuses as a whole (a SOAP fault such as ErrorSchemaValidation)
    /// concerns this one item: `Refused`, the others go on.
    async fn create_activity(
        &self,
        key: CreateKey,
        fields: &ActFields,
    ) -> Result<WriteOutcome, EwsError> {
        let folder = distinguished(Folder::of(fields.kind()));
        let mut item = match to_item(fields) {
            Ok(item) => item,
            Err(refused) => return Ok(WriteOutcome::Refused(refused)),
        };
        // Always looked for (one FindItem per create): a lost answer leaves no trace on the
        // row, and a crash between CreateItem and recording its id leaves none either.
        if let Some(earlier) = self.created_earlier(folder, key.row_id).await? {
            tracing::info!(
                row.id = %key.row_id,
                "an earlier create of this row is in Exchange; updating it instead of creating another"
            );
            return self.update_activity(&earlier, fields).await;
        }
        if let Some(category) = &self.tracking_category {
            item.base_mut().categories = vec![category.clone()];
        }
        item.base_mut()
            .extended_properties
            .push(ExtendedProperty::new(
                activity_key_property(),
                key.row_id.to_string(),
            ));
        let request = CreateItemRequest {
            message_disposition: None,
            send_meeting_invitations: invitations_on_create(fields, &self.target.mailbox),
            saved_item_folder_id: Some(self.folder(folder)),
            items: vec![item],
        };
        let response = match self.call(&request).await {
            Ok(response) => response,
            Err(e) if item_level(&e) => return Ok(WriteOutcome::Refused(e.to_string())),
            Err(e) => return Err(e),
        };
        written(
            response
                .messages
                .first()
                .map(|m| (m.to_error(), m.payload.as_ref())),
        )
    }

    /// Update an activity, refusing to overwrite a newer version in Exchange.
    async fn update_activity(
        &self,
        item: &ItemRef,
        fields: &ActFields,
    ) -> Result<WriteOutcome, EwsError> {
        let updates = match set_fields(fields) {
            Ok(updates) => updates,
            Err(refused) => return Ok(WriteOutcome::Refused(refused)),
        };
        let request = UpdateItemRequest {
            conflict_resolution: ConflictResolution::NeverOverwrite,
            message_disposition: None,
            send_meeting_invitations_or_cancellations: matches!(fields, ActFields::Appointment(_))
                .then_some(SendMeetingInvitationsOrCancellations::SendToNone),
            item_changes: vec![ItemChange {
                item_id: ItemId {
                    id: item.id.clone(),
                    change_key: item.version.clone(),
                },
                updates,
            }],
        };
        let response = match self.call(&request).await {
            Ok(response) => response,
            Err(e) if item_level(&e) => return Ok(WriteOutcome::Refused(e.to_string())),
            Err(e) => return Err(e),
        };
        let Some(message) = response.messages.first() else {
            return Err(EwsError::Malformed {
                excerpt: "UpdateItem response without a message".into(),
            });
        };
        if let Some(e) = message.to_error() {
            return match message.code.as_str() {
                "ErrorIrresolvableConflict" | "ErrorChangeKeyRequiredForWriteOperations" => {
                    Ok(WriteOutcome::Conflict)
                }
                "ErrorItemNotFound" => Ok(WriteOutcome::Missing),
                _ if item_level(&e) => Ok(WriteOutcome::Refused(e.to_string())),
                _ => Err(e),
            };
        }
        let items = message.payload.as_ref().map(|r| &r.items);
        match items.and_then(|i| i.first()).and_then(Item::item_id) {
            Some(id) => Ok(WriteOutcome::Written(item_ref(id))),
            None => Ok(WriteOutcome::Written(item.clone())),
        }
    }

    /// Delete an item (to Deleted Items, as a user would). `Ok(false)`: it was already gone.
    async fn delete_item(&self, id: &str) -> Result<bool, EwsError> {
        self.delete_with(id, SendMeetingInvitations::SendToNone)
            .await
    }

    /// DeleteItem to Deleted Items; `cancellations` says whom a meeting's organizer tells.
    async fn delete_with(
        &self,
        id: &str,
        cancellations: SendMeetingInvitations,
    ) -> Result<bool, EwsError> {
        let request = DeleteItemRequest {
            delete_type: DeleteType::MoveToDeletedItems,
            send_meeting_cancellations: Some(cancellations),
            affected_task_occurrences: Some(
                exsync_ews::types::AffectedTaskOccurrences::AllOccurrences,
            ),
            item_ids: vec![ItemId::new(id)],
        };
        let response = self.call(&request).await?;
        match response.messages.first() {
            Some(m) if m.code.as_str() == "ErrorItemNotFound" => Ok(false),
            Some(m) => match m.to_error() {
                Some(e) => Err(e),
                None => Ok(true),
            },
            None => Err(EwsError::Malformed {
                excerpt: "DeleteItem response without a message".into(),
            }),
        }
    }

    /// What a delete must know about an item: its categories and, for a calendar item, the
    /// mailbox's part in it. `Ok(None)`: the item is gone.
    async fn facts(&self, kind: ActKind, id: &str) -> Result<Option<ItemFacts>, EwsError> {
        let mut shape = ItemShape::new(BaseShape::IdOnly);
        shape.additional_properties = vec![FieldUri::CATEGORIES];
        if kind == ActKind::Appointment {
            shape.additional_properties.extend([
                FieldUri::ORGANIZER,
                FieldUri::REQUIRED_ATTENDEES,
                FieldUri::IS_MEETING,
                FieldUri::MY_RESPONSE_TYPE,
                FieldUri::MEETING_REQUEST_WAS_SENT,
            ]);
        }
        let request = GetItemRequest {
            item_shape: shape,
            item_ids: vec![ItemId::new(id)],
        };
        let response = self.call(&request).await?;
        let Some(message) = response.messages.first() else {
            return Err(EwsError::Malformed {
                excerpt: "GetItem response without a message".into(),
            });
        };
        if message.code.as_str() == "ErrorItemNotFound" {
            return Ok(None);
        }
        if let Some(e) = message.to_error() {
            return Err(e);
        }
        let Some(item) = message.payload.as_ref().and_then(|items| items.first()) else {
            return Ok(None);
        };
        let role = match item {
            Item::CalendarItem(c) => meeting_role(c, &self.target.mailbox),
            _ => MeetingRole::NotAMeeting,
        };
        Ok(Some(ItemFacts {
            categories: item.base().categories.clone(),
            role,
        }))
    }

    /// The organizer deletes a meeting: it goes to Deleted Items and every attendee gets a
    /// cancellation (a copy kept in Sent Items). `Ok(false)`: it was already gone.
    async fn cancel_meeting(&self, id: &str) -> Result<bool, EwsError> {
        self.delete_with(id, SendMeetingInvitations::SendToAllAndSaveCopy)
            .await
    }

    /// An attendee declines a meeting: the organizer gets the decline (a copy kept in Sent
    /// Items) and Exchange moves the meeting to Deleted Items. `Ok(false)`: it was gone.
    async fn decline_meeting(&self, id: &str, note: &str) -> Result<bool, EwsError> {
        let request = MeetingResponseRequest::decline(ItemId::new(id), Some(note));
        let response = self.call(&request).await?;
        match response.messages.first() {
            Some(m) if m.code.as_str() == "ErrorItemNotFound" => Ok(false),
            Some(m) => match m.to_error() {
                Some(e) => Err(e),
                None => Ok(true),
            },
            None => Err(EwsError::Malformed {
                excerpt: "CreateItem response without a message".into(),
            }),
        }
    }
}

impl MailServer for MailboxConnection {
    fn address(&self) -> &str {
        &self.target.mailbox
    }

    fn changes(
        &self,
        folder: Folder,
        state: Option<String>,
        // SyncFolderItems cannot filter by date; it reports DateTimeReceived instead, so
        // `sync` leaves older mail out before any GetItem.
        _hint: ChangeHint,
    ) -> PortFuture<'_, ChangePage> {
        Box::pin(async move {
            self.folder_changes(distinguished(folder), state)
                .await
                .map_err(server_error)
        })
    }

    fn emails<'a>(&'a self, ids: &'a [String]) -> PortFuture<'a, Vec<FetchedMail>> {
        Box::pin(async move { self.fetch_incoming(ids).await.map_err(server_error) })
    }

    fn activities<'a>(
        &'a self,
        kind: ActKind,
        ids: &'a [String],
    ) -> PortFuture<'a, Vec<Result<RemoteActivity, ItemFailure>>> {
        Box::pin(async move { self.fetch_activities(kind, ids).await.map_err(server_error) })
    }

    fn item_facts<'a>(&'a self, kind: ActKind, id: &'a str) -> PortFuture<'a, Option<ItemFacts>> {
        Box::pin(async move { self.facts(kind, id).await.map_err(server_error) })
    }

    fn find_sent(&self, outgoing_id: Uuid) -> PortFuture<'_, Option<SentCopy>> {
        Box::pin(async move { self.sent_copy(outgoing_id).await.map_err(server_error) })
    }

    fn send<'a>(
        &'a self,
        email: &'a OutgoingEmail,
        journal: &'a dyn SendJournal,
    ) -> PortFuture<'a, SendOutcome> {
        Box::pin(async move { self.send_message(email, journal).await })
    }

    fn write_problem(&self, fields: &ActFields) -> Option<String> {
        activity_problem(fields)
    }

    fn create<'a>(&'a self, key: CreateKey, fields: &'a ActFields) -> PortFuture<'a, WriteOutcome> {
        Box::pin(async move {
            self.create_activity(key, fields)
                .await
                .map_err(server_error)
        })
    }

    fn update<'a>(
        &'a self,
        item: &'a ItemRef,
        fields: &'a ActFields,
    ) -> PortFuture<'a, WriteOutcome> {
        Box::pin(async move {
            self.update_activity(item, fields)
                .await
                .map_err(server_error)
        })
    }

    fn remove<'a>(&'a self, _kind: ActKind, id: &'a str, removal: Removal) -> PortFuture<'a, bool> {
        Box::pin(async move {
            match removal {
                Removal::Delete => self.delete_item(id).await,
                Removal::CancelMeeting => self.cancel_meeting(id).await,
                Removal::DeclineMeeting(note) => self.decline_meeting(id, note).await,
            }
            .map_err(server_error)
        })
    }

    fn failed_request(&self) -> Option<ErrorCorrelation> {
        self.failed_trace().map(|trace| ErrorCorrelation {
            client_request_id: Some(trace.client_request_id),
            request_id: trace.ids.request_id,
            be_server: trace.ids.be_server,
        })
    }
}

/// An EWS failure in the port's terms: what failed (the reaction `sync` picks), the stable
/// `ews.*` code, and the error's text unchanged.
pub fn server_error(error: EwsError) -> ServerError {
    use crate::sync::port::Failure;
    use exsync_ews::oauth::TokenError;
    let failure = match &error {
        EwsError::ServerBusy { back_off } => Failure::Throttled {
            back_off: *back_off,
        },
        EwsError::Unauthorized
        | EwsError::Ntlm(_)
        | EwsError::Token(TokenError::Rejected { .. } | TokenError::Credential(_)) => {
            Failure::CredentialsRefused
        }
        EwsError::Token(TokenError::Refused { .. }) => Failure::TokenRequestRefused,
        EwsError::Token(e @ (TokenError::Unavailable { .. } | TokenError::Malformed(_))) => {
            Failure::TokenEndpointUnavailable {
                retry_after: e.retry_after(),
            }
        }
        EwsError::InvalidSyncState => Failure::SyncStateExpired,
        EwsError::MailboxRefused { code, .. } if code == "ErrorSendAsDenied" => {
            Failure::SendAsDenied
        }
        EwsError::MailboxRefused { .. } => Failure::QuotaExceeded,
        EwsError::ImpersonationDenied { .. } => Failure::ImpersonationDenied,
        EwsError::MailboxUnauthorized { .. } => Failure::MailboxUnauthorized,
        EwsError::MailboxNotFound { .. } => Failure::MailboxNotFound,
        EwsError::AccessDenied { .. } => Failure::AccessDenied,
        EwsError::Request { .. } => Failure::RequestRefused,
        EwsError::Http { status }
            if (400..500).contains(status) && !matches!(status, 408 | 429) =>
        {
            Failure::ServiceRefused
        }
        EwsError::Http { .. }
        | EwsError::Malformed { .. }
        | EwsError::ServerError { .. }
        | EwsError::Transport(_) => Failure::Unavailable,
    };
    let code = match &error {
        EwsError::ServerBusy { .. } => "ews.server_busy".into(),
        EwsError::Unauthorized => "ews.unauthorized".into(),
        EwsError::ImpersonationDenied { .. } => "ews.impersonation_denied".into(),
        EwsError::MailboxNotFound { .. } => "ews.mailbox_not_found".into(),
        EwsError::InvalidSyncState => "ews.invalid_sync_state".into(),
        EwsError::AccessDenied { .. } => "ews.access_denied".into(),
        EwsError::MailboxUnauthorized { .. } => "ews.mailbox_unauthorized".into(),
        EwsError::MailboxRefused { code, .. } => mailbox_refusal_code(code),
        EwsError::ServerError { .. } => "ews.server_error".into(),
        EwsError::Http { status } => format!("ews.http_{status}"),
        EwsError::Malformed { .. } => "ews.malformed_response".into(),
        EwsError::Transport(_) => "ews.unreachable".into(),
        EwsError::Token(TokenError::Unavailable { .. } | TokenError::Malformed(_)) => {
            "oauth.token_endpoint_unavailable".into()
        }
        EwsError::Token(TokenError::Refused { .. }) => "oauth.token_request_refused".into(),
        EwsError::Token(_) => "ews.oauth_token".into(),
        EwsError::Ntlm(_) => "ews.ntlm".into(),
        EwsError::Request { .. } => "ews.request_refused".into(),
    };
    ServerError::new(failure, code, error.to_string())
}

/// `ErrorSendAsDenied` → `ews.send_as_denied`, `ErrorQuotaExceeded` → `ews.quota_exceeded`, …
fn mailbox_refusal_code(code: &str) -> String {
    let name = code.strip_prefix("Error").unwrap_or(code);
    let mut out = String::from("ews.");
    for (i, c) in name.chars().filter(char::is_ascii_alphanumeric).enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.truncate(100);
    out
}

/// The mailbox's part in a calendar item: Exchange's MyResponseType, else the organizer's
/// address compared with the mailbox's.
pub fn meeting_role(c: &CalendarItem, mailbox: &str) -> MeetingRole {
    let others = c
        .required_attendees
        .iter()
        .any(|a| !a.address.eq_ignore_ascii_case(mailbox));
    let is_meeting = c.is_meeting.unwrap_or(others);
    if !is_meeting {
        return MeetingRole::NotAMeeting;
    }
    let organizer = match c.my_response_type {
        Some(ResponseType::Organizer) => true,
        Some(_) => false,
        None => c
            .organizer
            .as_ref()
            .is_none_or(|o| o.address.eq_ignore_ascii_case(mailbox)),
    };
    if organizer {
        MeetingRole::Organizer {
            invitations_sent: c.meeting_request_was_sent.unwrap_or(true),
        }
    } else {
        MeetingRole::Attendee
    }
}
/// Every property `to_new_email` and `is_email` read: GetItem asks for exactly these (IdOnly
/// plus AdditionalProperties), so a property used here but not asked for shows up as missing
/// in the tests against the fake, as it would against Exchange.
const EMAIL_PROPERTIES: [FieldUri; 15] = [
    FieldUri::ITEM_CLASS,
    FieldUri::SUBJECT,
    FieldUri::BODY,
    FieldUri::DATE_TIME_RECEIVED,
    FieldUri::DATE_TIME_SENT,
    FieldUri::IN_REPLY_TO,
    FieldUri::CONVERSATION_ID,
    FieldUri::SENDER,
    FieldUri::FROM,
    FieldUri::TO_RECIPIENTS,
    FieldUri::CC_RECIPIENTS,
    FieldUri::INTERNET_MESSAGE_ID,
    FieldUri::IS_READ,
    // What the incoming filter reads.
    FieldUri::REFERENCES,
    FieldUri::CATEGORIES,
];

/// Every property `to_activity` reads for `kind` (see [`EMAIL_PROPERTIES`]).
fn activity_properties(kind: ActKind) -> &'static [FieldUri] {
    const APPOINTMENT: [FieldUri; 13] = [
        FieldUri::CATEGORIES,
        FieldUri::SUBJECT,
        FieldUri::BODY,
        FieldUri::DATE_TIME_CREATED,
        FieldUri::LAST_MODIFIED_TIME,
        FieldUri::START,
        FieldUri::END,
        FieldUri::IS_ALL_DAY_EVENT,
        FieldUri::LOCATION,
        FieldUri::ORGANIZER,
        FieldUri::REQUIRED_ATTENDEES,
        FieldUri::RECURRENCE,
        FieldUri::CALENDAR_ITEM_TYPE,
    ];
    const CONTACT: [FieldUri; 9] = [
        FieldUri::CATEGORIES,
        FieldUri::LAST_MODIFIED_TIME,
        FieldUri::DISPLAY_NAME,
        FieldUri::GIVEN_NAME,
        FieldUri::SURNAME,
        FieldUri::COMPANY_NAME,
        FieldUri::JOB_TITLE,
        FieldUri::EMAIL_ADDRESSES,
        FieldUri::PHONE_NUMBERS,
    ];
    const TASK: [FieldUri; 9] = [
        FieldUri::CATEGORIES,
        FieldUri::SUBJECT,
        FieldUri::BODY,
        FieldUri::LAST_MODIFIED_TIME,
        FieldUri::STATUS,
        FieldUri::START_DATE,
        FieldUri::DUE_DATE,
        FieldUri::COMPLETE_DATE,
        FieldUri::PERCENT_COMPLETE,
    ];
    match kind {
        ActKind::Appointment => &APPOINTMENT,
        ActKind::Contact => &CONTACT,
        ActKind::Task => &TASK,
    }
}

/// Property set of exsync's own extended properties on items it creates.
pub const EXSYNC_PROPERTY_SET: &str = "d0925a5d-722f-42f0-882e-a816636fa020";

/// Name of the one custom property carrying an outgoing email's idempotency key (its
/// `outgoing_emails.id`): fixed for every message and every provider (EWS now, Graph later),
/// so Sent Items can be searched for it.
pub const OUTGOING_ID_PROPERTY: &str = "ExsyncOutgoingId";

/// `ExtendedFieldURI` of the idempotency key: PropertySetId [`EXSYNC_PROPERTY_SET`],
/// PropertyName [`OUTGOING_ID_PROPERTY`], PropertyType String.
pub fn outgoing_id_property() -> ExtendedFieldUri {
    ExtendedFieldUri::named_string(EXSYNC_PROPERTY_SET, OUTGOING_ID_PROPERTY)
}

/// Name of the one custom property carrying the idempotency key of an activity exsync
/// created (its row id: `appointments.id`, `contacts.id` or `tasks.id`): fixed for every item,
/// so a folder can be searched for an earlier create of a row. The row's version is not part
/// of it: an attempt whose answer was lost must be found again after the row changed too.
pub const ACTIVITY_KEY_PROPERTY: &str = "ExsyncActivityKey";

/// `ExtendedFieldURI` of an activity's idempotency key: PropertySetId
/// [`EXSYNC_PROPERTY_SET`], PropertyName [`ACTIVITY_KEY_PROPERTY`], PropertyType String.
pub fn activity_key_property() -> ExtendedFieldUri {
    ExtendedFieldUri::named_string(EXSYNC_PROPERTY_SET, ACTIVITY_KEY_PROPERTY)
}

/// Errors that concern one item, not the mailbox or the connection.
fn item_level(error: &EwsError) -> bool {
    matches!(error, EwsError::Request { .. })
}

fn written(
    message: Option<(Option<EwsError>, Option<&Vec<Item>>)>,
) -> Result<WriteOutcome, EwsError> {
    match message {
        None => Err(EwsError::Malformed {
            excerpt: "CreateItem response without a message".into(),
        }),
        Some((Some(e), _)) if item_level(&e) => Ok(WriteOutcome::Refused(e.to_string())),
        Some((Some(e), _)) => Err(e),
        Some((None, items)) => match items.and_then(|i| i.first()).and_then(Item::item_id) {
            Some(id) => Ok(WriteOutcome::Written(item_ref(id))),
            None => Err(EwsError::Malformed {
                excerpt: "CreateItem response without the new item's id".into(),
            }),
        },
    }
}

fn item_ref(id: &ItemId) -> ItemRef {
    ItemRef {
        id: id.id.clone(),
        version: id.change_key.clone(),
        received_at: None,
    }
}

/// An item reference with the DateTimeReceived the change carried.
fn received(mut reference: ItemRef, item: &Item) -> ItemRef {
    reference.received_at = item.base().date_time_received;
    reference
}

/// What Exchange's schema (or Exchange itself) would refuse in an activity, checked before a
/// request is spent on it: phone keys outside PhoneNumberKeyType, an appointment ending
/// before it starts. `None`: fine to send.
pub fn activity_problem(fields: &ActFields) -> Option<String> {
    match fields {
        ActFields::Contact(c) => c
            .phone_numbers
            .keys()
            .find(|k| !PHONE_NUMBER_KEYS.contains(&k.as_str()))
            .map(|k| {
                format!(
                    "phone number key {k:?} is not one Exchange knows (PhoneNumberKeyType: {})",
                    PHONE_NUMBER_KEYS.join(", ")
                )
            }),
        ActFields::Appointment(a) if a.end_at < a.start_at => Some(format!(
            "the appointment ends ({}) before it starts ({})",
            a.end_at, a.start_at
        )),
        _ => None,
    }
}

/// Whether a failed request definitely left the server without doing anything: no request
/// left (no token, no connection, a back-off or refused credentials stopped it first), or
/// Exchange itself answered (a response message, a SOAP fault, HTTP 401, or another 4xx: a
/// request refused before EWS ran it). A timeout, a dropped connection, an unreadable
/// answer or a 5xx without an EWS body leave it unknown: the request may have been done.
fn nothing_sent(error: &EwsError, trace: Option<&RequestTrace>) -> bool {
    use exsync_ews::transport::TransportError;
    match error {
        EwsError::Token(_)
        | EwsError::Transport(TransportError::Setup(_) | TransportError::Unreachable { .. }) => {
            true
        }
        EwsError::Transport(_) | EwsError::Malformed { .. } => false,
        _ => trace.is_none_or(|t| {
            t.ews_answer || t.status.is_some_and(|status| (400..500).contains(&status))
        }),
    }
}

/// What a create tells attendees: a meeting the application wrote with attendees (anyone but
/// the mailbox itself) is sent to them, as the organizer's Outlook would and as Graph does on
/// create; an appointment without attendees invites nobody. Sent once: a retry after a lost
/// answer finds the first item (`ExsyncActivityKey`) and updates it instead.
fn invitations_on_create(fields: &ActFields, mailbox: &str) -> Option<SendMeetingInvitations> {
    let ActFields::Appointment(appointment) = fields else {
        return None;
    };
    let invites_someone = appointment
        .attendees
        .iter()
        .any(|attendee| !attendee.trim().eq_ignore_ascii_case(mailbox.trim()));
    Some(if invites_someone {
        SendMeetingInvitations::SendToAllAndSaveCopy
    } else {
        SendMeetingInvitations::SendToNone
    })
}

/// The distinguished folder of a port folder.
fn distinguished(folder: Folder) -> DistinguishedFolderName {
    match folder {
        Folder::Inbox => DistinguishedFolderName::Inbox,
        Folder::SentItems => DistinguishedFolderName::SentItems,
        Folder::JunkEmail => DistinguishedFolderName::JunkEmail,
        Folder::Drafts => DistinguishedFolderName::Drafts,
        Folder::Calendar => DistinguishedFolderName::Calendar,
        Folder::Contacts => DistinguishedFolderName::Contacts,
        Folder::Tasks => DistinguishedFolderName::Tasks,
    }
}

/// Meeting requests, receipts and reports land in the inbox but are not email to track.
fn is_email(message: &Message) -> bool {
    match message.base.item_class.as_deref() {
        None => true,
        Some(class) => {
            let class = class.to_ascii_lowercase();
            class == "ipm.note" || class.starts_with("ipm.note.")
        }
    }
}

fn to_new_email(id: &str, m: Message) -> NewEmail {
    let (body, body_type) = match m.base.body {
        Some(Body {
            body_type: BodyType::Html,
            content,
        }) => (content, "html"),
        Some(Body { content, .. }) => (content, "text"),
        None => (String::new(), "text"),
    };
    let sender = m.from.or(m.sender);
    NewEmail {
        item_id: id.to_owned(),
        change_key: m.base.item_id.and_then(|i| i.change_key),
        internet_message_id: m.internet_message_id.filter(|s| !s.trim().is_empty()),
        subject: m.base.subject.unwrap_or_default(),
        body,
        body_type,
        sender_address: sender.as_ref().map(|s| s.address.to_ascii_lowercase()),
        sender_name: sender.and_then(|s| s.name),
        to_recipients: m.to_recipients.into_iter().map(|a| a.address).collect(),
        cc_recipients: m.cc_recipients.into_iter().map(|a| a.address).collect(),
        in_reply_to: m.base.in_reply_to,
        conversation_id: m.base.conversation_id,
        received_at: m.base.date_time_received,
        sent_at: m.base.date_time_sent,
        is_read: m.is_read,
    }
}

fn body_text(base: &ItemBase) -> String {
    base.body
        .as_ref()
        .map(|b| b.content.clone())
        .unwrap_or_default()
}

fn to_activity(kind: ActKind, item: Item) -> Option<RemoteActivity> {
    let base = item.base().clone();
    let reference = item_ref(base.item_id.as_ref()?);
    let fields = match (kind, item) {
        (ActKind::Appointment, Item::CalendarItem(c)) => {
            let start = c.start.or(base.date_time_created)?;
            ActFields::Appointment(AppointmentFields {
                subject: base.subject.clone().unwrap_or_default(),
                body: body_text(&base),
                location: c.location.unwrap_or_default(),
                start_at: start,
                end_at: c.end.unwrap_or(start),
                is_all_day: c.is_all_day_event.unwrap_or(false),
                organizer: c.organizer.map(|o| o.address),
                attendees: c
                    .required_attendees
                    .into_iter()
                    .map(|a| a.address)
                    .collect(),
                recurrence: c
                    .recurrence
                    .as_ref()
                    .and_then(|r| serde_json::to_value(r).ok()),
            })
        }
        (ActKind::Contact, Item::Contact(c)) => ActFields::Contact(ContactFields {
            display_name: c.display_name.unwrap_or_default(),
            given_name: c.given_name.unwrap_or_default(),
            surname: c.surname.unwrap_or_default(),
            company_name: c.company_name.unwrap_or_default(),
            job_title: c.job_title.unwrap_or_default(),
            email_addresses: c.email_addresses.into_iter().map(|(_, a)| a).collect(),
            phone_numbers: c.phone_numbers.into_iter().collect::<BTreeMap<_, _>>(),
        }),
        (ActKind::Task, Item::Task(t)) => ActFields::Task(TaskFields {
            subject: base.subject.clone().unwrap_or_default(),
            body: body_text(&base),
            status: db_task_status(t.status.unwrap_or(TaskStatus::NotStarted)).to_owned(),
            start_at: t.start_date,
            due_at: t.due_date,
            completed_at: t.complete_date,
            percent_complete: t.percent_complete.unwrap_or(0.0).round().clamp(0.0, 100.0) as i32,
        }),
        _ => return None,
    };
    let key = activity_key_property();
    let created_for = base
        .extended_properties
        .iter()
        .find(|p| p.field.same_property(&key))
        .and_then(|p| p.value.first())
        .and_then(|v| Uuid::parse_str(v.trim()).ok());
    Some(RemoteActivity {
        item: reference,
        modified_at: base.last_modified_time,
        fields,
        categories: base.categories,
        created_for,
    })
}

/// A stored recurrence (JSON, see docs/operations.md) as Exchange's, checked as Exchange
/// checks it; the error refuses this one row, never the workload.
fn recurrence_of(json: &serde_json::Value) -> Result<Recurrence, String> {
    let recurrence: Recurrence = serde_json::from_value(json.clone())
        .map_err(|e| format!("the appointment's recurrence is not valid: {e}"))?;
    recurrence
        .validate()
        .map_err(|e| format!("the appointment's {e}"))?;
    Ok(recurrence)
}

/// The database spells task statuses in snake case (`in_progress`), EWS in Pascal case.
const TASK_STATUSES: [(TaskStatus, &str); 5] = [
    (TaskStatus::NotStarted, "not_started"),
    (TaskStatus::InProgress, "in_progress"),
    (TaskStatus::Completed, "completed"),
    (TaskStatus::WaitingOnOthers, "waiting_on_others"),
    (TaskStatus::Deferred, "deferred"),
];

fn db_task_status(status: TaskStatus) -> &'static str {
    TASK_STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("not_started", |(_, db)| db)
}

fn ews_task_status(db: &str) -> Option<TaskStatus> {
    TASK_STATUSES
        .iter()
        .find(|(_, d)| *d == db)
        .map(|(s, _)| *s)
}

fn text_body(text: &str) -> Option<Body> {
    Some(Body {
        body_type: BodyType::Text,
        content: text.to_owned(),
    })
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The EWS item holding an activity's fields (for CreateItem); `Err` refuses the row (a
/// recurrence Exchange would not take).
fn to_item(fields: &ActFields) -> Result<Item, String> {
    Ok(match fields {
        ActFields::Appointment(a) => Item::CalendarItem(CalendarItem {
            base: ItemBase {
                subject: Some(a.subject.clone()),
                body: text_body(&a.body),
                ..ItemBase::default()
            },
            start: Some(a.start_at),
            end: Some(a.end_at),
            is_all_day_event: Some(a.is_all_day),
            location: non_empty(&a.location),
            required_attendees: a
                .attendees
                .iter()
                .map(|x| EmailAddress::new(None, x))
                .collect(),
            recurrence: a.recurrence.as_ref().map(recurrence_of).transpose()?,
            ..CalendarItem::default()
        }),
        ActFields::Contact(c) => Item::Contact(Contact {
            display_name: non_empty(&c.display_name),
            given_name: non_empty(&c.given_name),
            surname: non_empty(&c.surname),
            company_name: non_empty(&c.company_name),
            job_title: non_empty(&c.job_title),
            email_addresses: c
                .email_addresses
                .iter()
                .take(3)
                .enumerate()
                .map(|(i, a)| (format!("EmailAddress{}", i + 1), a.clone()))
                .collect(),
            phone_numbers: c
                .phone_numbers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Contact::default()
        }),
        ActFields::Task(t) => Item::Task(Task {
            base: ItemBase {
                subject: Some(t.subject.clone()),
                body: text_body(&t.body),
                ..ItemBase::default()
            },
            due_date: t.due_at,
            start_date: t.start_at,
            status: ews_task_status(&t.status),
            percent_complete: Some(f64::from(t.percent_complete)),
            complete_date: None,
        }),
    })
}

/// SetItemField updates for the fields exsync owns (contact email addresses and phone
/// numbers are written when the contact is created only: indexed fields are left as they are).
/// A series keeps its recurrence; an appointment without one has it deleted (a series the
/// database turned into a single appointment).
fn set_fields(fields: &ActFields) -> Result<Vec<ItemUpdate>, String> {
    let item = to_item(fields)?;
    let mut deletes = Vec::new();
    let fields: Vec<FieldUri> = match fields {
        ActFields::Appointment(a) => {
            let mut f = vec![
                FieldUri::SUBJECT,
                FieldUri::BODY,
                FieldUri::START,
                FieldUri::END,
                FieldUri::IS_ALL_DAY_EVENT,
            ];
            if !a.location.is_empty() {
                f.push(FieldUri::LOCATION);
            }
            if a.recurrence.is_some() {
                f.push(FieldUri::RECURRENCE);
            } else {
                deletes.push(ItemUpdate::DeleteItemField(FieldUri::RECURRENCE));
            }
            f
        }
        ActFields::Contact(c) => [
            (FieldUri::DISPLAY_NAME, &c.display_name),
            (FieldUri::GIVEN_NAME, &c.given_name),
            (FieldUri::SURNAME, &c.surname),
            (FieldUri::COMPANY_NAME, &c.company_name),
            (FieldUri::JOB_TITLE, &c.job_title),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(f, _)| f)
        .collect(),
        ActFields::Task(t) => {
            let mut f = vec![
                FieldUri::SUBJECT,
                FieldUri::BODY,
                FieldUri::PERCENT_COMPLETE,
            ];
            if ews_task_status(&t.status).is_some() {
                f.push(FieldUri::STATUS);
            }
            if t.due_at.is_some() {
                f.push(FieldUri::DUE_DATE);
            }
            if t.start_at.is_some() {
                f.push(FieldUri::START_DATE);
            }
            f
        }
    };
    Ok(fields
        .into_iter()
        .map(|field| ItemUpdate::SetItemField {
            item: only_field(&item, &field),
            field,
        })
        .chain(deletes)
        .collect())
}

/// A copy of `item` holding only `field` (SetItemField carries exactly the field it sets).
fn only_field(item: &Item, field: &FieldUri) -> Item {
    let mut out = item.clone();
    let keep = field.as_str();
    let base = out.base_mut();
    let subject = base.subject.take();
    let body = base.body.take();
    *base = ItemBase::default();
    match keep {
        "item:Subject" => base.subject = subject,
        "item:Body" => base.body = body,
        _ => {}
    }
    match &mut out {
        Item::CalendarItem(c) => {
            if keep != "calendar:Start" {
                c.start = None;
            }
            if keep != "calendar:End" {
                c.end = None;
            }
            if keep != "calendar:IsAllDayEvent" {
                c.is_all_day_event = None;
            }
            if keep != "calendar:Location" {
                c.location = None;
            }
            if keep != "calendar:Recurrence" {
                c.recurrence = None;
            }
            c.required_attendees.clear();
            c.organizer = None;
            c.uid = None;
        }
        Item::Contact(c) => {
            if keep != "contacts:DisplayName" {
                c.display_name = None;
            }
            if keep != "contacts:GivenName" {
                c.given_name = None;
            }
            if keep != "contacts:Surname" {
                c.surname = None;
            }
            if keep != "contacts:CompanyName" {
                c.company_name = None;
            }
            if keep != "contacts:JobTitle" {
                c.job_title = None;
            }
            c.email_addresses.clear();
            c.phone_numbers.clear();
        }
        Item::Task(t) => {
            if keep != "task:DueDate" {
                t.due_date = None;
            }
            if keep != "task:StartDate" {
                t.start_date = None;
            }
            if keep != "task:Status" {
                t.status = None;
            }
            if keep != "task:PercentComplete" {
                t.percent_complete = None;
            }
            t.complete_date = None;
        }
        Item::Message(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn only_a_definite_answer_says_a_send_left_nothing_sent() {
        use exsync_ews::oauth::TokenError;
        use exsync_ews::transport::TransportError;
        let answered = |status: u16, ews_answer: bool| {
            let mut trace = RequestTrace::new(Uuid::new_v4());
            trace.status = Some(status);
            trace.ews_answer = ews_answer;
            trace
        };
        let busy = EwsError::ServerBusy {
            back_off: std::time::Duration::from_secs(1),
        };
        // Exchange's own answers, refusals before processing, nothing sent at all.
        assert!(nothing_sent(&busy, Some(&answered(500, true))));
        assert!(nothing_sent(&busy, None));
        assert!(nothing_sent(
            &EwsError::Unauthorized,
            Some(&answered(401, true))
        ));
        assert!(nothing_sent(
            &EwsError::Http { status: 413 },
            Some(&answered(413, false))
        ));
        assert!(nothing_sent(
            &EwsError::Token(TokenError::Malformed("x".into())),
            None
        ));
        let unreachable = TransportError::Unreachable {
            host: "h".into(),
            reason: "could not connect".into(),
        };
        assert!(nothing_sent(&EwsError::Transport(unreachable), None));
        // Unknown: the request may have been done.
        assert!(!nothing_sent(&busy, Some(&answered(503, false))));
        assert!(!nothing_sent(
            &EwsError::Http { status: 502 },
            Some(&answered(502, false))
        ));
        assert!(!nothing_sent(
            &EwsError::Transport(TransportError::Timeout { host: "h".into() }),
            Some(&RequestTrace::new(Uuid::new_v4()))
        ));
        assert!(!nothing_sent(
            &EwsError::Malformed {
                excerpt: "<t:Brok".into()
            },
            Some(&answered(200, false))
        ));
    }

    #[test]
    fn meeting_requests_and_reports_are_not_tracked_as_email() {
        let mut m = Message::default();
        assert!(is_email(&m));
        m.base.item_class = Some("IPM.Note".into());
        assert!(is_email(&m));
        m.base.item_class = Some("IPM.Schedule.Meeting.Request".into());
        assert!(!is_email(&m));
        m.base.item_class = Some("REPORT.IPM.Note.NDR".into());
        assert!(!is_email(&m));
    }

    #[test]
    fn an_update_sets_only_the_field_it_names() {
        let fields = ActFields::Task(TaskFields {
            subject: "s".into(),
            body: "b".into(),
            status: "in_progress".into(),
            start_at: None,
            due_at: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()),
            completed_at: None,
            percent_complete: 50,
        });
        let updates = set_fields(&fields).unwrap();
        assert!(updates.len() >= 4);
        for update in updates {
            let ItemUpdate::SetItemField { field, item } = update else {
                panic!("not a set")
            };
            let Item::Task(t) = item else {
                panic!("not a task")
            };
            let set = [
                t.base.subject.is_some(),
                t.base.body.is_some(),
                t.due_date.is_some(),
                t.status.is_some(),
                t.percent_complete.is_some(),
            ];
            assert_eq!(set.iter().filter(|x| **x).count(), 1, "{field}");
        }
    }
}

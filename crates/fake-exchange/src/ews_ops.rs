//! One handler per EWS operation, run against the fake's state under its lock: resolving the
//! target mailbox (impersonation, delegate access, own mailbox), folders and item ids, and
//! building each answer with the codec's response types.
//!
//! Owns Exchange's per-operation rules (what is a fault, what is a per-item error). It does no
//! I/O and writes no XML by hand.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;

use super::auth::Principal;
use super::properties::{
    copy_property, is_read_only, read_only_property_in, shaped, shaped_folder, Answering,
};
use super::state::{
    default_folder, folder_id_string, item_id_string, parse_folder_id, parse_item_id, AccountKind,
    FakeState, Inner, NetChange, MAILBOX_FOLDERS,
};
use exsync_ews::ops::{
    CreateItemRequest, CreateItemResponse, DeleteItemRequest, DeleteItemResponse, EwsRequest,
    FindItemRequest, FindItemResponse, FindItemResult, FolderChange, GetFolderRequest,
    GetFolderResponse, GetItemRequest, GetItemResponse, ItemUpdate, MeetingAnswer, MeetingResponse,
    MeetingResponseRequest, SyncFolderHierarchyRequest, SyncFolderHierarchyResponse,
    SyncFolderHierarchyResult, SyncFolderItemsRequest, SyncFolderItemsResponse,
    SyncFolderItemsResult, SyncItemChange, UpdateItemRequest, UpdateItemResponse, UpdateItemResult,
};
use exsync_ews::soap::{RequestHeader, SoapFault};
use exsync_ews::types::{
    format_time, BaseFolderId, BaseShape, ConflictResolution, DeleteType, DistinguishedFolderName,
    EmailAddress, FieldUri, Folder, FolderId, Item, ItemId, Message, MessageDisposition,
    ResponseCode, ResponseMessage, ResponseType, Restriction, SendMeetingInvitations,
    EMAIL_ADDRESS_KEYS, PHONE_NUMBER_KEYS,
};

/// What the HTTP layer sends back.
pub(crate) enum Answer {
    /// A response envelope (HTTP 200) and the first message's response code.
    Xml {
        /// The envelope.
        xml: String,
        /// First response code, for the request log.
        code: String,
    },
    /// A SOAP fault (HTTP 500).
    Fault(SoapFault),
}

/// An error for one response message.
type OpError = (ResponseCode, String);

fn err(code: ResponseCode, text: impl Into<String>) -> OpError {
    (code, text.into())
}

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Who acts, on which mailbox by default, and what else they may open.
struct Ctx<'a> {
    state: &'a FakeState,
    who: &'a Principal,
    impersonated: Option<String>,
    default_mailbox: Option<String>,
    stop_after: Option<usize>,
}

impl Ctx<'_> {
    /// Whether item `index` of a batch is past a batch stop (answered
    /// ErrorBatchProcessingStopped and not processed).
    fn stopped(&self, index: usize) -> bool {
        self.stop_after.is_some_and(|n| index >= n)
    }

    /// The canonical address of `address` if it exists and the caller may open it.
    fn mailbox_access(&self, inner: &Inner, address: &str) -> Result<String, OpError> {
        let mailbox = inner.mailbox(address).ok_or_else(|| {
            err(
                ResponseCode::ERROR_NON_EXISTENT_MAILBOX,
                format!("The SMTP address {address} has no mailbox associated with it."),
            )
        })?;
        let canonical = mailbox.address.clone();
        let allowed = match &self.impersonated {
            Some(imp) => lower(imp) == lower(&canonical),
            None => {
                self.who.address.as_deref().map(lower) == Some(lower(&canonical))
                    || inner
                        .find_login(&self.who.username)
                        .is_some_and(|a| a.delegate.contains(&lower(&canonical)))
            }
        };
        if allowed {
            Ok(canonical)
        } else {
            Err(err(
                ResponseCode::ERROR_ACCESS_DENIED,
                "Access is denied. Check credentials and try again.",
            ))
        }
    }

    fn own_mailbox(&self) -> Result<String, OpError> {
        self.default_mailbox.clone().ok_or_else(|| {
            err(
                ResponseCode::ERROR_NON_EXISTENT_MAILBOX,
                "The account has no mailbox; name one with impersonation or a Mailbox element.",
            )
        })
    }

    fn folder(
        &self,
        inner: &Inner,
        id: &BaseFolderId,
    ) -> Result<(String, DistinguishedFolderName), OpError> {
        let (address, name) = match id {
            BaseFolderId::Distinguished {
                name,
                mailbox: Some(m),
            } => (self.mailbox_access(inner, m)?, *name),
            BaseFolderId::Distinguished {
                name,
                mailbox: None,
            } => (self.own_mailbox()?, *name),
            BaseFolderId::Folder(f) => {
                let (address, name) = parse_folder_id(&f.id).ok_or_else(|| {
                    err(ResponseCode::ERROR_INVALID_ID_MALFORMED, "Id is malformed.")
                })?;
                if inner.mailbox(&address).is_none() {
                    return Err(err(
                        ResponseCode::ERROR_FOLDER_NOT_FOUND,
                        "The specified folder could not be found in the store.",
                    ));
                }
                (self.mailbox_access(inner, &address)?, name)
            }
        };
        if MAILBOX_FOLDERS.contains(&name) {
            Ok((address, name))
        } else {
            Err(err(
                ResponseCode::ERROR_FOLDER_NOT_FOUND,
                "The specified folder could not be found in the store.",
            ))
        }
    }

    fn item(&self, inner: &Inner, id: &ItemId) -> Result<(String, u64), OpError> {
        let (address, n) = parse_item_id(&id.id)
            .ok_or_else(|| err(ResponseCode::ERROR_INVALID_ID_MALFORMED, "Id is malformed."))?;
        let not_found = || {
            err(
                ResponseCode::ERROR_ITEM_NOT_FOUND,
                "The specified object was not found in the store.",
            )
        };
        if inner.mailbox(&address).is_none() {
            return Err(not_found());
        }
        let address = self.mailbox_access(inner, &address)?;
        match inner.mailbox(&address).and_then(|m| m.item(n)) {
            Some(_) => Ok((address, n)),
            None => Err(not_found()),
        }
    }
}

/// Run one parsed request for `who`. `stop_after`: process only that many items of a
/// multi-item request and answer the rest `Warning` / ErrorBatchProcessingStopped (the
/// `batch_stopped_after` one-shot fault).
pub(crate) fn handle(
    state: &FakeState,
    inner: &mut Inner,
    who: &Principal,
    header: &RequestHeader,
    request: EwsRequest,
    stop_after: Option<usize>,
) -> Answer {
    let mut ctx = Ctx {
        state,
        who,
        impersonated: None,
        default_mailbox: who.address.clone(),
        stop_after,
    };
    if let Some(target) = &header.impersonation {
        let Some(mailbox) = inner.mailbox(target) else {
            return Answer::Fault(SoapFault::for_code(
                ResponseCode::ERROR_NON_EXISTENT_MAILBOX,
                &format!("The SMTP address {target} has no mailbox associated with it."),
            ));
        };
        let canonical = mailbox.address.clone();
        let allowed = inner
            .find_login(&who.username)
            .is_some_and(|a| a.impersonate_all || a.impersonate.contains(&lower(&canonical)));
        if !allowed {
            return Answer::Fault(SoapFault::for_code(
                ResponseCode::ERROR_IMPERSONATE_USER_DENIED,
                "The account does not have permission to impersonate the requested user.",
            ));
        }
        ctx.impersonated = Some(canonical.clone());
        ctx.default_mailbox = Some(canonical);
    } else if who.kind == AccountKind::App {
        // App-only tokens have no mailbox of their own: Exchange Online refuses the request
        // outright (a SOAP fault with this code and text).
        return Answer::Fault(SoapFault::for_code(
            ResponseCode::ERROR_INVALID_EXCHANGE_IMPERSONATION_HEADER_DATA,
            "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
        ));
    }
    match request {
        EwsRequest::GetFolder(r) => get_folder(&ctx, inner, &r),
        EwsRequest::SyncFolderHierarchy(r) => sync_folder_hierarchy(&ctx, inner, &r),
        EwsRequest::SyncFolderItems(r) => sync_folder_items(&ctx, inner, &r),
        EwsRequest::GetItem(r) => get_item(&ctx, inner, &r),
        EwsRequest::FindItem(r) => find_item(&ctx, inner, &r),
        EwsRequest::CreateItem(r) => create_item(&ctx, inner, &r),
        EwsRequest::UpdateItem(r) => update_item(&ctx, inner, &r),
        EwsRequest::DeleteItem(r) => delete_item(&ctx, inner, &r),
        EwsRequest::MeetingResponse(r) => meeting_response(&ctx, inner, &r),
        // Notification operations are answered by `streaming` (the server routes them there).
        EwsRequest::Subscribe(_)
        | EwsRequest::GetStreamingEvents(_)
        | EwsRequest::Unsubscribe(_) => Answer::Fault(SoapFault::for_code(
            ResponseCode::ERROR_INVALID_REQUEST,
            "notification operations are not answered here",
        )),
    }
}

fn first_code<T>(messages: &[ResponseMessage<T>]) -> String {
    messages
        .first()
        .map(|m| m.code.as_str().to_owned())
        .unwrap_or_else(|| "NoError".into())
}

fn message<T>(result: Result<T, OpError>) -> ResponseMessage<T> {
    match result {
        Ok(payload) => ResponseMessage::success(payload),
        Err((code, text)) => ResponseMessage::error(code, text),
    }
}

fn display_name(name: DistinguishedFolderName) -> (&'static str, &'static str) {
    match name {
        DistinguishedFolderName::Inbox => ("Inbox", "IPF.Note"),
        DistinguishedFolderName::SentItems => ("Sent Items", "IPF.Note"),
        DistinguishedFolderName::Drafts => ("Drafts", "IPF.Note"),
        DistinguishedFolderName::DeletedItems => ("Deleted Items", "IPF.Note"),
        DistinguishedFolderName::Outbox => ("Outbox", "IPF.Note"),
        DistinguishedFolderName::Calendar => ("Calendar", "IPF.Appointment"),
        DistinguishedFolderName::Contacts => ("Contacts", "IPF.Contact"),
        DistinguishedFolderName::Tasks => ("Tasks", "IPF.Task"),
        DistinguishedFolderName::JunkEmail => ("Junk Email", "IPF.Note"),
        DistinguishedFolderName::MsgFolderRoot => ("Top of Information Store", "IPF.Note"),
        DistinguishedFolderName::Root => ("root", "IPF.Note"),
    }
}

/// A folder with every property the fake models, shaped as asked.
fn folder_view(
    inner: &Inner,
    address: &str,
    name: DistinguishedFolderName,
    shape: BaseShape,
    additional: &[FieldUri],
) -> Folder {
    shaped_folder(&full_folder(inner, address, name), shape, additional)
}

fn full_folder(inner: &Inner, address: &str, name: DistinguishedFolderName) -> Folder {
    let id = FolderId {
        id: folder_id_string(address, name),
        change_key: Some("AQAAABYAAAA".into()),
    };
    let (display, class) = display_name(name);
    let data = inner.mailbox(address).and_then(|m| m.folder(name));
    let total = data.map(|d| d.items.len()).unwrap_or(0);
    let unread = data
        .map(|d| {
            d.items
                .values()
                .filter(|s| matches!(&s.item, Item::Message(m) if m.is_read == Some(false)))
                .count()
        })
        .unwrap_or(0);
    let parent = match name {
        DistinguishedFolderName::Root => None,
        DistinguishedFolderName::MsgFolderRoot => Some(DistinguishedFolderName::Root),
        _ => Some(DistinguishedFolderName::MsgFolderRoot),
    };
    let children = match name {
        DistinguishedFolderName::Root => 1,
        DistinguishedFolderName::MsgFolderRoot => MAILBOX_FOLDERS.len() - 2,
        _ => 0,
    };
    Folder {
        folder_id: Some(id),
        parent_folder_id: parent.map(|p| FolderId::new(folder_id_string(address, p))),
        folder_class: Some(class.into()),
        display_name: Some(display.into()),
        total_count: Some(u32::try_from(total).unwrap_or(u32::MAX)),
        child_folder_count: Some(u32::try_from(children).unwrap_or(0)),
        unread_count: Some(u32::try_from(unread).unwrap_or(u32::MAX)),
    }
}

fn get_folder(ctx: &Ctx, inner: &mut Inner, r: &GetFolderRequest) -> Answer {
    let messages: Vec<_> =
        r.folder_ids
            .iter()
            .map(|id| {
                message(ctx.folder(inner, id).map(|(a, n)| {
                    folder_view(inner, &a, n, r.folder_shape, &r.additional_properties)
                }))
            })
            .collect();
    let code = first_code(&messages);
    Answer::Xml {
        xml: GetFolderResponse { messages }.to_xml(),
        code,
    }
}

const HIERARCHY: &str = "hierarchy";

fn sync_folder_hierarchy(ctx: &Ctx, inner: &mut Inner, r: &SyncFolderHierarchyRequest) -> Answer {
    let result = (|| {
        let address = match &r.sync_folder_id {
            Some(id) => ctx.folder(inner, id)?.0,
            None => ctx.own_mailbox()?,
        };
        let epoch = inner.mailbox(&address).map(|m| m.epoch).unwrap_or(0);
        let known = match r.sync_state.as_deref().filter(|s| !s.trim().is_empty()) {
            None => false,
            Some(token) => {
                ctx.state
                    .read_sync_token(token, &address, HIERARCHY, epoch)
                    .ok_or_else(invalid_sync_state)?;
                true
            }
        };
        let changes = if known {
            Vec::new()
        } else {
            MAILBOX_FOLDERS
                .iter()
                .filter(|f| {
                    !matches!(
                        f,
                        DistinguishedFolderName::MsgFolderRoot | DistinguishedFolderName::Root
                    )
                })
                .map(|f| {
                    FolderChange::Create(folder_view(
                        inner,
                        &address,
                        *f,
                        r.folder_shape,
                        &r.additional_properties,
                    ))
                })
                .collect()
        };
        Ok(SyncFolderHierarchyResult {
            sync_state: ctx.state.sync_token(&address, HIERARCHY, epoch, 1),
            includes_last_folder_in_range: true,
            changes,
        })
    })();
    let messages = vec![message(result)];
    let code = first_code(&messages);
    Answer::Xml {
        xml: SyncFolderHierarchyResponse { messages }.to_xml(),
        code,
    }
}

fn invalid_sync_state() -> OpError {
    err(
        ResponseCode::ERROR_INVALID_SYNC_STATE_DATA,
        "Synchronization state data is corrupt or otherwise invalid.",
    )
}

fn sync_folder_items(ctx: &Ctx, inner: &mut Inner, r: &SyncFolderItemsRequest) -> Answer {
    let mut reported: Vec<(String, u64)> = Vec::new();
    let result = (|| {
        let (address, folder) = ctx.folder(inner, &r.sync_folder_id)?;
        let mailbox = inner
            .mailbox(&address)
            .ok_or_else(|| err(ResponseCode::ERROR_FOLDER_NOT_FOUND, "No such folder."))?;
        let since = match r.sync_state.as_deref().filter(|s| !s.trim().is_empty()) {
            None => 0,
            Some(token) => ctx
                .state
                .read_sync_token(token, &address, folder.as_str(), mailbox.epoch)
                .ok_or_else(invalid_sync_state)?,
        };
        let data = mailbox
            .folder(folder)
            .ok_or_else(|| err(ResponseCode::ERROR_FOLDER_NOT_FOUND, "No such folder."))?;
        if since > data.seq {
            return Err(invalid_sync_state());
        }
        let ignore: BTreeSet<u64> = r
            .ignore
            .iter()
            .filter_map(|id| parse_item_id(&id.id))
            .filter(|(a, _)| lower(a) == lower(&address))
            .map(|(_, n)| n)
            .collect();
        let max = usize::try_from(r.max_changes_returned.get()).unwrap_or(512);
        let (net, position, last) = data.changes_since(since, max, &ignore);
        let current = |n: u64| data.items.get(&n).map(|s| &s.item);
        let mut changes = Vec::new();
        for change in net {
            match change {
                NetChange::Create(n) | NetChange::Update(n) => {
                    let Some(item) = current(n) else { continue };
                    if mailbox.delete_after_sync.contains(&n) {
                        reported.push((address.clone(), n));
                    }
                    let item = shaped(item, &r.item_shape, Answering::FindOrSync);
                    changes.push(if matches!(change, NetChange::Create(_)) {
                        SyncItemChange::Create(item)
                    } else {
                        SyncItemChange::Update(item)
                    });
                }
                NetChange::ReadFlag(n) => {
                    let Some(Item::Message(m)) = current(n) else {
                        continue;
                    };
                    changes.push(SyncItemChange::ReadFlagChange {
                        item_id: m.base.item_id.clone().unwrap_or_default(),
                        is_read: m.is_read.unwrap_or(false),
                    });
                }
                NetChange::Delete(n) => {
                    changes.push(SyncItemChange::Delete(ItemId::new(item_id_string(
                        &address, n,
                    ))));
                }
            }
        }
        Ok(SyncFolderItemsResult {
            sync_state: ctx
                .state
                .sync_token(&address, folder.as_str(), mailbox.epoch, position),
            includes_last_item_in_range: last,
            changes,
        })
    })();
    // The race of a user deleting mail while a client syncs: gone before its GetItem.
    for (address, n) in reported {
        if let Some(mailbox) = inner.mailbox_mut(&address) {
            mailbox.delete_after_sync.remove(&n);
        }
        inner.remove_item(&address, n);
    }
    let messages = vec![message(result)];
    let code = first_code(&messages);
    Answer::Xml {
        xml: SyncFolderItemsResponse { messages }.to_xml(),
        code,
    }
}

fn batch_stopped<T>() -> ResponseMessage<T> {
    ResponseMessage::warning(
        ResponseCode::ERROR_BATCH_PROCESSING_STOPPED,
        "The batch was stopped before this item was processed.",
    )
}

fn get_item(ctx: &Ctx, inner: &mut Inner, r: &GetItemRequest) -> Answer {
    let messages: Vec<_> = r
        .item_ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            if ctx.stopped(index) {
                return batch_stopped();
            }
            message(ctx.item(inner, id).and_then(|(address, n)| {
                inner
                    .mailbox(&address)
                    .and_then(|m| m.item(n))
                    .map(|(_, s)| vec![shaped(&s.item, &r.item_shape, Answering::GetItem)])
                    .ok_or_else(|| err(ResponseCode::ERROR_ITEM_NOT_FOUND, "Item not found."))
            }))
        })
        .collect();
    let code = first_code(&messages);
    Answer::Xml {
        xml: GetItemResponse { messages }.to_xml(),
        code,
    }
}

/// The text of a field, for restrictions.
fn field_text(item: &Item, field: &FieldUri) -> Option<String> {
    let base = item.base();
    if let Some(extended) = field.as_extended() {
        return base
            .extended_properties
            .iter()
            .find(|p| p.field.same_property(&extended))
            .and_then(|p| p.value.first().map(str::to_owned));
    }
    let time = |t: &Option<chrono::DateTime<Utc>>| t.as_ref().map(format_time);
    let addr = |a: &Option<EmailAddress>| a.as_ref().map(|a| a.address.clone());
    match (field.as_str(), item) {
        ("item:Subject", _) => base.subject.clone(),
        ("item:ItemClass", _) => base.item_class.clone(),
        ("item:DateTimeReceived", _) => time(&base.date_time_received),
        ("item:DateTimeSent", _) => time(&base.date_time_sent),
        ("item:DateTimeCreated", _) => time(&base.date_time_created),
        ("item:LastModifiedTime", _) => time(&base.last_modified_time),
        ("item:InReplyTo", _) => base.in_reply_to.clone(),
        ("item:ConversationId", _) => base.conversation_id.clone(),
        ("item:Body", _) => base.body.as_ref().map(|b| b.content.clone()),
        ("message:InternetMessageId", Item::Message(m)) => m.internet_message_id.clone(),
        ("message:IsRead", Item::Message(m)) => m.is_read.map(|b| b.to_string()),
        ("message:From", Item::Message(m)) => addr(&m.from),
        ("message:Sender", Item::Message(m)) => addr(&m.sender),
        ("message:References", Item::Message(m)) => m.references.clone(),
        ("calendar:Start", Item::CalendarItem(c)) => time(&c.start),
        ("calendar:End", Item::CalendarItem(c)) => time(&c.end),
        ("calendar:UID", Item::CalendarItem(c)) => c.uid.clone(),
        ("calendar:Location", Item::CalendarItem(c)) => c.location.clone(),
        ("contacts:DisplayName", Item::Contact(c)) => c.display_name.clone(),
        ("contacts:GivenName", Item::Contact(c)) => c.given_name.clone(),
        ("contacts:Surname", Item::Contact(c)) => c.surname.clone(),
        ("task:DueDate", Item::Task(t)) => time(&t.due_date),
        ("task:Status", Item::Task(t)) => t.status.map(|s| s.as_str().to_owned()),
        _ => None,
    }
}

fn compare(actual: &str, wanted: &str) -> std::cmp::Ordering {
    let time = |s: &str| chrono::DateTime::parse_from_rfc3339(s.trim()).ok();
    if let (Some(a), Some(b)) = (time(actual), time(wanted)) {
        return a.cmp(&b);
    }
    if let (Ok(a), Ok(b)) = (actual.trim().parse::<f64>(), wanted.trim().parse::<f64>()) {
        return a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal);
    }
    // Exchange compares strings case-insensitively.
    actual.to_lowercase().cmp(&wanted.to_lowercase())
}

fn matches(item: &Item, restriction: &Restriction) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let test = |field: &FieldUri, value: &str, ok: &dyn Fn(std::cmp::Ordering) -> bool| {
        field_text(item, field).is_some_and(|v| ok(compare(&v, value)))
    };
    match restriction {
        Restriction::IsEqualTo(f, v) => test(f, v, &|o| o == Equal),
        Restriction::IsGreaterThanOrEqualTo(f, v) => test(f, v, &|o| o != Less),
        Restriction::IsGreaterThan(f, v) => test(f, v, &|o| o == Greater),
        Restriction::IsLessThan(f, v) => test(f, v, &|o| o == Less),
        Restriction::And(all) => all.iter().all(|r| matches(item, r)),
        Restriction::Or(any) => any.iter().any(|r| matches(item, r)),
    }
}

fn find_item(ctx: &Ctx, inner: &mut Inner, r: &FindItemRequest) -> Answer {
    let messages: Vec<_> = r
        .parent_folder_ids
        .iter()
        .map(|folder_id| {
            message(ctx.folder(inner, folder_id).map(|(address, folder)| {
                let mut found: Vec<&Item> = if r.traversal == exsync_ews::types::Traversal::Shallow
                {
                    inner
                        .mailbox(&address)
                        .and_then(|m| m.folder(folder))
                        .map(|d| d.items.values().map(|s| &s.item).collect())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                if let Some(restriction) = &r.restriction {
                    found.retain(|i| matches(i, restriction));
                }
                // Newest first, like Outlook's default view.
                found.sort_by(|a, b| {
                    let t = |i: &Item| i.base().date_time_received.or(i.base().date_time_created);
                    t(b).cmp(&t(a))
                });
                let total = found.len();
                let (offset, max) = match &r.page {
                    Some(p) => {
                        let offset = usize::try_from(p.offset).unwrap_or(usize::MAX);
                        let max = usize::try_from(p.max_entries_returned).unwrap_or(usize::MAX);
                        if p.base_point_beginning {
                            (offset.min(total), max)
                        } else {
                            let end = total.saturating_sub(offset);
                            (end.saturating_sub(max), end.min(max))
                        }
                    }
                    None => (0, usize::MAX),
                };
                let page: Vec<Item> = found
                    .iter()
                    .skip(offset)
                    .take(max)
                    .map(|i| shaped(i, &r.item_shape, Answering::FindOrSync))
                    .collect();
                let next = offset + page.len();
                FindItemResult {
                    indexed_paging_offset: r.page.map(|_| u32::try_from(next).unwrap_or(u32::MAX)),
                    total_items_in_view: u32::try_from(total).unwrap_or(u32::MAX),
                    includes_last_item_in_range: next >= total,
                    items: page,
                }
            }))
        })
        .collect();
    let code = first_code(&messages);
    Answer::Xml {
        xml: FindItemResponse { messages }.to_xml(),
        code,
    }
}

fn create_item(ctx: &Ctx, inner: &mut Inner, r: &CreateItemRequest) -> Answer {
    if let Some(violation) = r.items.iter().find_map(schema_violation) {
        return Answer::Fault(SoapFault::for_code(
            ResponseCode::ERROR_SCHEMA_VALIDATION,
            &format!("The request failed schema validation: {violation}"),
        ));
    }
    let target = match &r.saved_item_folder_id {
        Some(id) => ctx.folder(inner, id).map(|(a, f)| (a, Some(f))),
        None => ctx.own_mailbox().map(|a| (a, None)),
    };
    let messages: Vec<_> = r
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            if ctx.stopped(index) {
                return batch_stopped();
            }
            message(target.clone().and_then(|(address, folder)| {
                refuse_server_owned(item)?;
                create_one(ctx, inner, r, &address, folder, item)
            }))
        })
        .collect();
    let code = first_code(&messages);
    Answer::Xml {
        xml: CreateItemResponse { messages }.to_xml(),
        code,
    }
}

/// Exchange refuses to create an item carrying a property only the server sets (ItemId with
/// its ChangeKey, DateTimeReceived, DateTimeSent, Size, …): `ErrorInvalidPropertySet`.
fn refuse_server_owned(item: &Item) -> Result<(), OpError> {
    match read_only_property_in(item) {
        Some(field) => Err(err(
            ResponseCode::ERROR_INVALID_PROPERTY_SET,
            format!("The property {field} is read-only and cannot be set."),
        )),
        None => Ok(()),
    }
}

fn internal(e: super::FakeError) -> OpError {
    err(ResponseCode::ERROR_INTERNAL_SERVER_ERROR, e.to_string())
}

/// The phone and e-mail keys of a contact are schema enumerations (PhoneNumberKeyType,
/// EmailAddressKeyType): Exchange refuses any other value with ErrorSchemaValidation.
fn schema_violation(item: &Item) -> Option<String> {
    let Item::Contact(c) = item else { return None };
    if let Some((key, _)) = c
        .phone_numbers
        .iter()
        .find(|(k, _)| !PHONE_NUMBER_KEYS.contains(&k.as_str()))
    {
        return Some(format!(
            "The 'Key' attribute is invalid - The value '{key}' is invalid according to its datatype 'PhoneNumberKeyType'"
        ));
    }
    c.email_addresses
        .iter()
        .find(|(k, _)| !EMAIL_ADDRESS_KEYS.contains(&k.as_str()))
        .map(|(key, _)| {
            format!(
                "The 'Key' attribute is invalid - The value '{key}' is invalid according to its datatype 'EmailAddressKeyType'"
            )
        })
}

/// Who a sent message is From and who is its Sender, by the caller's rights: the acting
/// mailbox (impersonated, else the caller's own) may send as itself; another `From` needs
/// Send As (From = Sender = that mailbox) or Send on Behalf (Sender = the actor); otherwise
/// ErrorSendAsDenied. Without `From` the actor sends as itself (Exchange does not fill in the
/// mailbox the copy is saved in).
fn sending_identity(
    ctx: &Ctx,
    inner: &Inner,
    from: Option<&EmailAddress>,
) -> Result<(EmailAddress, EmailAddress), OpError> {
    let denied = |text: String| err(ResponseCode::ERROR_SEND_AS_DENIED, text);
    let actor = ctx.impersonated.clone().or_else(|| ctx.who.address.clone());
    let Some(from) = from.filter(|f| !f.address.trim().is_empty()) else {
        return match actor {
            Some(a) => Ok((EmailAddress::new(None, &a), EmailAddress::new(None, &a))),
            None => Err(denied(
                "The account has no mailbox to send from: set From to a mailbox it may send as."
                    .into(),
            )),
        };
    };
    let wanted = lower(&from.address);
    let canonical = inner.mailbox(&wanted).map(|m| m.address.clone());
    if let (Some(actor), Some(canonical)) = (&actor, &canonical) {
        if lower(actor) == lower(canonical) {
            return Ok((from.clone(), from.clone()));
        }
    }
    // The rights of whoever acts: the impersonated user's account, else the caller's.
    let account = match &ctx.impersonated {
        Some(mailbox) => inner
            .accounts
            .values()
            .find(|a| a.address.as_deref().map(lower).as_deref() == Some(lower(mailbox).as_str())),
        None => inner.find_login(&ctx.who.username),
    };
    let may = |set: &BTreeSet<String>| set.contains(&wanted) || set.contains("*");
    match (canonical, account) {
        (Some(_), Some(a)) if may(&a.send_as) => Ok((from.clone(), from.clone())),
        (Some(_), Some(a)) if may(&a.send_on_behalf) => {
            let sender = actor.unwrap_or_else(|| a.username.clone());
            Ok((from.clone(), EmailAddress::new(None, &sender)))
        }
        _ => Err(denied(format!(
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account {}.",
            from.address
        ))),
    }
}

/// What a message weighs for ErrorMessageSizeExceeded: subject, body and recipients.
fn message_bytes(m: &Message) -> u64 {
    let addresses: usize = m
        .to_recipients
        .iter()
        .chain(&m.cc_recipients)
        .chain(&m.bcc_recipients)
        .map(|a| a.address.len())
        .sum();
    let body = m.base.body.as_ref().map_or(0, |b| b.content.len());
    let subject = m.base.subject.as_deref().map_or(0, str::len);
    u64::try_from(addresses + body + subject).unwrap_or(u64::MAX)
}

fn create_one(
    ctx: &Ctx,
    inner: &mut Inner,
    r: &CreateItemRequest,
    address: &str,
    folder: Option<DistinguishedFolderName>,
    item: &Item,
) -> Result<Vec<Item>, OpError> {
    let now = exsync_ews::types::whole_seconds(Utc::now());
    let me = EmailAddress::new(None, address);
    let mut item = item.clone();
    item.base_mut().item_id = None;
    if inner
        .mailbox(address)
        .is_some_and(|m| m.settings.storage_quota_exceeded)
    {
        return Err(err(
            ResponseCode::ERROR_QUOTA_EXCEEDED,
            "The mailbox has exceeded its storage quota.",
        ));
    }
    match &mut item {
        Item::Message(m) => {
            // Exchange refuses a message without MessageDisposition.
            let disposition = r.message_disposition.ok_or_else(|| {
                err(
                    ResponseCode::new("ErrorMessageDispositionRequired"),
                    "MessageDisposition is required for message items.",
                )
            })?;
            if disposition == MessageDisposition::SaveOnly {
                m.is_read.get_or_insert(true);
                let folder = folder.unwrap_or(DistinguishedFolderName::Drafts);
                let id = inner.insert_item(address, folder, item).map_err(internal)?;
                return Ok(vec![id_only_message(id)]);
            }
            let (from, sender) = sending_identity(ctx, inner, m.from.as_ref())?;
            let sending = inner
                .mailbox(&from.address)
                .map(|mb| (mb.address.clone(), mb.settings.clone()));
            if let Some((_, settings)) = &sending {
                if settings.storage_quota_exceeded {
                    return Err(err(
                        ResponseCode::ERROR_QUOTA_EXCEEDED,
                        "The mailbox has exceeded its quota and cannot send.",
                    ));
                }
                if settings
                    .max_message_bytes
                    .is_some_and(|max| message_bytes(m) > max)
                {
                    return Err(err(
                        ResponseCode::ERROR_MESSAGE_SIZE_EXCEEDED,
                        "The message exceeds the maximum supported size.",
                    ));
                }
                if settings.submission_quota == Some(0) {
                    return Err(err(
                        ResponseCode::ERROR_SUBMISSION_QUOTA_EXCEEDED,
                        "The mailbox has exceeded the number of messages it may send for now.",
                    ));
                }
            }
            // Exchange assigns the Message-ID of a message it sends (the managed API treats
            // InternetMessageId as read-only); a client's value is not kept.
            let domain = from
                .address
                .rsplit_once('@')
                .map_or("fake-exchange.test", |(_, d)| d);
            m.internet_message_id = Some(format!("<{}@{domain}>", uuid::Uuid::new_v4().simple()));
            m.from = Some(from);
            m.sender = Some(sender);
            m.base.date_time_sent = Some(now);
            m.base.date_time_received = Some(now);
            let recipients: BTreeSet<String> = m
                .to_recipients
                .iter()
                .chain(&m.cc_recipients)
                .chain(&m.bcc_recipients)
                .map(|a| lower(&a.address))
                .collect();
            if recipients.is_empty() {
                return Err(err(
                    ResponseCode::ERROR_INVALID_RECIPIENTS,
                    "At least one recipient is required.",
                ));
            }
            if let Some((sending, _)) = &sending {
                if let Some(mailbox) = inner.mailbox_mut(sending) {
                    if let Some(left) = mailbox.settings.submission_quota.as_mut() {
                        *left = left.saturating_sub(1);
                    }
                }
            }
            let mut delivered = m.clone();
            delivered.bcc_recipients.clear();
            delivered.is_read = Some(false);
            // A recipient's copy does not carry the sender's custom properties.
            delivered.base.extended_properties.clear();
            for rcpt in recipients {
                let Some(canonical) = inner.mailbox(&rcpt).map(|mb| mb.address.clone()) else {
                    continue; // outside the fake: delivered elsewhere
                };
                inner
                    .insert_item(
                        &canonical,
                        DistinguishedFolderName::Inbox,
                        Item::Message(delivered.clone()),
                    )
                    .map_err(internal)?;
            }
            inner.record_sent("ews", m);
            if disposition == MessageDisposition::SendAndSaveCopy {
                m.is_read = Some(true);
                let folder = folder.unwrap_or(DistinguishedFolderName::SentItems);
                // Exchange's transport files the copy after answering (`sent_items_delay_ms`).
                let delay = Duration::from_millis(ctx.state.faults().sent_items_delay_ms);
                inner
                    .file_sent_copy(address, folder, item, delay)
                    .map_err(internal)?;
            }
            // Exchange answers a send with an empty Items element.
            Ok(Vec::new())
        }
        Item::CalendarItem(c) => {
            // Exchange computes these; a client that sets them is refused.
            if c.is_meeting.is_some()
                || c.is_cancelled.is_some()
                || c.is_recurring.is_some()
                || c.meeting_request_was_sent.is_some()
                || c.calendar_item_type.is_some()
                || c.my_response_type.is_some()
            {
                return Err(err(
                    ResponseCode::ERROR_INVALID_PROPERTY_SET,
                    "A read-only calendar property (IsMeeting, IsCancelled, IsRecurring, MeetingRequestWasSent, CalendarItemType, MyResponseType) cannot be set.",
                ));
            }
            check_calendar(c)?;
            c.organizer.get_or_insert_with(|| me.clone());
            c.uid
                .get_or_insert_with(|| uuid::Uuid::new_v4().to_string());
            let invite = matches!(
                r.send_meeting_invitations,
                Some(
                    SendMeetingInvitations::SendOnlyToAll
                        | SendMeetingInvitations::SendToAllAndSaveCopy
                )
            );
            let attendees = c
                .required_attendees
                .iter()
                .any(|a| lower(&a.address) != lower(address));
            c.meeting_request_was_sent = Some(invite && attendees);
            let created = item.clone();
            let folder = folder.unwrap_or(DistinguishedFolderName::Calendar);
            let id = inner
                .insert_item(address, folder, created.clone())
                .map_err(internal)?;
            if invite {
                inner
                    .deliver_invitations(address, &created)
                    .map_err(internal)?;
            }
            let mut out = created.id_only();
            out.base_mut().item_id = Some(id);
            Ok(vec![out])
        }
        Item::Contact(_) | Item::Task(_) => {
            let folder = folder.unwrap_or_else(|| default_folder(&item));
            let mut out = item.id_only();
            let id = inner.insert_item(address, folder, item).map_err(internal)?;
            out.base_mut().item_id = Some(id);
            Ok(vec![out])
        }
    }
}

/// Exchange's checks on a calendar item's times and series.
fn check_calendar(c: &exsync_ews::types::CalendarItem) -> Result<(), OpError> {
    if let (Some(start), Some(end)) = (c.start, c.end) {
        if end < start {
            return Err(err(
                ResponseCode::new("ErrorCalendarEndDateIsEarlierThanStartDate"),
                "The end date occurs before the start date.",
            ));
        }
    }
    if let Some(recurrence) = &c.recurrence {
        recurrence.validate().map_err(|e| {
            err(
                ResponseCode::new("ErrorCalendarInvalidRecurrence"),
                e.to_string(),
            )
        })?;
    }
    Ok(())
}

/// CreateItem with response objects: an attendee accepts, tentatively accepts or declines.
fn meeting_response(ctx: &Ctx, inner: &mut Inner, r: &MeetingResponseRequest) -> Answer {
    let messages: Vec<_> = r
        .responses
        .iter()
        .map(|response| message(respond(ctx, inner, r, response)))
        .collect();
    let code = first_code(&messages);
    Answer::Xml {
        xml: CreateItemResponse { messages }.to_xml(),
        code,
    }
}

fn respond(
    ctx: &Ctx,
    inner: &mut Inner,
    r: &MeetingResponseRequest,
    response: &MeetingResponse,
) -> Result<Vec<Item>, OpError> {
    let suffix = match response.answer {
        MeetingAnswer::Accept => "Accept",
        MeetingAnswer::TentativelyAccept => "Tentative",
        MeetingAnswer::Decline => "Decline",
    };
    let disposition = r.message_disposition.ok_or_else(|| {
        err(
            ResponseCode::new("ErrorMessageDispositionRequired"),
            "MessageDisposition is required for response objects.",
        )
    })?;
    let reference = response.reference_item_id.as_ref().ok_or_else(|| {
        err(
            ResponseCode::new("ErrorMissingInformationReferenceItemId"),
            "The response object needs a ReferenceItemId.",
        )
    })?;
    let (address, n) = ctx.item(inner, reference)?;
    let (folder, meeting) = inner
        .mailbox(&address)
        .and_then(|m| m.item(n))
        .map(|(f, s)| (f, s.item.clone()))
        .ok_or_else(|| err(ResponseCode::ERROR_ITEM_NOT_FOUND, "Item not found."))?;
    let Item::CalendarItem(c) = &meeting else {
        return Err(err(
            ResponseCode::new(match response.answer {
                MeetingAnswer::Accept => "ErrorInvalidItemForOperationAcceptItem",
                MeetingAnswer::TentativelyAccept => "ErrorInvalidItemForOperationTentative",
                MeetingAnswer::Decline => "ErrorInvalidItemForOperationDeclineItem",
            }),
            "Only a meeting can be answered (this fake answers calendar items, not meeting request messages).",
        ));
    };
    if c.my_response_type == Some(ResponseType::Organizer) {
        return Err(err(
            ResponseCode::new(format!("ErrorCalendarIsOrganizerFor{suffix}")),
            "The organizer cannot answer their own meeting.",
        ));
    }
    if c.is_cancelled == Some(true) {
        return Err(err(
            ResponseCode::new(format!("ErrorCalendarIsCancelledFor{suffix}")),
            "The meeting was cancelled.",
        ));
    }
    let organizer = c
        .organizer
        .as_ref()
        .map(|o| o.address.clone())
        .unwrap_or_default();
    let subject = c.base.subject.clone().unwrap_or_default();
    let (class, prefix, answer) = match response.answer {
        MeetingAnswer::Accept => (
            "IPM.Schedule.Meeting.Resp.Pos",
            "Accepted",
            ResponseType::Accept,
        ),
        MeetingAnswer::TentativelyAccept => (
            "IPM.Schedule.Meeting.Resp.Tent",
            "Tentative",
            ResponseType::Tentative,
        ),
        MeetingAnswer::Decline => (
            "IPM.Schedule.Meeting.Resp.Neg",
            "Declined",
            ResponseType::Decline,
        ),
    };
    if disposition != MessageDisposition::SaveOnly {
        inner
            .send_meeting_message(
                &address,
                &organizer,
                class,
                format!("{prefix}: {subject}"),
                response.body.clone(),
                disposition == MessageDisposition::SendAndSaveCopy,
            )
            .map_err(internal)?;
    }
    if response.answer == MeetingAnswer::Decline {
        // A declined meeting leaves the calendar for Deleted Items, as in Outlook.
        let removed = inner
            .remove_item(&address, n)
            .ok_or_else(|| err(ResponseCode::ERROR_ITEM_NOT_FOUND, "Item not found."))?;
        if folder != DistinguishedFolderName::DeletedItems {
            inner
                .insert_item(&address, DistinguishedFolderName::DeletedItems, removed)
                .map_err(internal)?;
        }
    } else {
        inner.update_item(&address, n, false, move |item| {
            if let Item::CalendarItem(c) = item {
                c.my_response_type = Some(answer);
            }
        });
    }
    // Response objects get no item id back (CreateItem reference).
    Ok(Vec::new())
}

fn id_only_message(id: ItemId) -> Item {
    let mut item = Item::Message(Message::default());
    item.base_mut().item_id = Some(id);
    item
}

/// Set `field` of `target` from `source`, or delete it when `source` is `None`, as UpdateItem
/// does: a read-only property is `ErrorInvalidPropertySet` (`ErrorInvalidPropertyDelete` for a
/// delete), a property the item kind lacks `ErrorInvalidPropertySet`; dictionaries (contact
/// e-mail addresses, phone numbers) are updated one indexed entry at a time.
fn set_field(target: &mut Item, source: Option<&Item>, field: &FieldUri) -> Result<(), OpError> {
    if is_read_only(field) {
        return Err(match source {
            Some(_) => err(
                ResponseCode::ERROR_INVALID_PROPERTY_SET,
                format!("The property {field} is read-only and cannot be set."),
            ),
            None => err(
                ResponseCode::ERROR_INVALID_PROPERTY_DELETE,
                format!("The property {field} is read-only and cannot be deleted."),
            ),
        });
    }
    let bad = || {
        err(
            ResponseCode::ERROR_INVALID_PROPERTY_SET,
            format!("The property {field} cannot be set on this item."),
        )
    };
    if let Some(extended) = field.as_extended() {
        let value = match source {
            Some(s) => Some(
                s.base()
                    .extended_properties
                    .iter()
                    .find(|p| p.field.same_property(&extended))
                    .cloned()
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        let props = &mut target.base_mut().extended_properties;
        props.retain(|p| !p.field.same_property(&extended));
        props.extend(value);
        return Ok(());
    }
    let (uri, index) = field.split_index();
    let whole_dictionary = matches!(uri, "contacts:EmailAddresses" | "contacts:PhoneNumbers")
        || (matches!(uri, "contacts:EmailAddress" | "contacts:PhoneNumber") && index.is_none());
    if whole_dictionary || !copy_property(target, source, field) {
        return Err(bad());
    }
    Ok(())
}

fn update_item(ctx: &Ctx, inner: &mut Inner, r: &UpdateItemRequest) -> Answer {
    let messages: Vec<_> = r
        .item_changes
        .iter()
        .enumerate()
        .map(|(index, change)| {
            if ctx.stopped(index) {
                return batch_stopped();
            }
            message((|| {
                let (address, n) = ctx.item(inner, &change.item_id)?;
                let current = inner
                    .mailbox(&address)
                    .and_then(|m| m.item(n))
                    .map(|(_, s)| s.item.clone())
                    .ok_or_else(|| err(ResponseCode::ERROR_ITEM_NOT_FOUND, "Item not found."))?;
                let current_key = current.item_id().and_then(|i| i.change_key.clone());
                let stale = match &change.item_id.change_key {
                    Some(k) => Some(k) != current_key.as_ref(),
                    None if r.conflict_resolution == ConflictResolution::NeverOverwrite => {
                        return Err(err(
                            ResponseCode::ERROR_CHANGE_KEY_REQUIRED_FOR_WRITE_OPERATIONS,
                            "A change key is required with ConflictResolution NeverOverwrite.",
                        ))
                    }
                    None => false,
                };
                if stale && r.conflict_resolution == ConflictResolution::NeverOverwrite {
                    return Err(err(
                        ResponseCode::ERROR_IRRESOLVABLE_CONFLICT,
                        "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                    ));
                }
                let mut edited = current;
                for update in &change.updates {
                    match update {
                        ItemUpdate::SetItemField { field, item } => {
                            set_field(&mut edited, Some(item), field)?
                        }
                        ItemUpdate::DeleteItemField(field) => set_field(&mut edited, None, field)?,
                    }
                }
                if let Item::CalendarItem(c) = &edited {
                    check_calendar(c)?;
                }
                let read_only = !change.updates.is_empty()
                    && change.updates.iter().all(|u| match u {
                        ItemUpdate::SetItemField { field, .. } => *field == FieldUri::IS_READ,
                        ItemUpdate::DeleteItemField(field) => *field == FieldUri::IS_READ,
                    });
                let id = inner
                    .update_item(&address, n, read_only, move |item| *item = edited)
                    .ok_or_else(|| err(ResponseCode::ERROR_ITEM_NOT_FOUND, "Item not found."))?;
                let mut out = inner
                    .mailbox(&address)
                    .and_then(|m| m.item(n))
                    .map(|(_, s)| s.item.id_only())
                    .unwrap_or_else(|| id_only_message(id.clone()));
                out.base_mut().item_id = Some(id);
                Ok(UpdateItemResult {
                    items: vec![out],
                    conflict_results: u32::from(stale),
                })
            })())
        })
        .collect();
    let code = first_code(&messages);
    Answer::Xml {
        xml: UpdateItemResponse { messages }.to_xml(),
        code,
    }
}

fn delete_item(ctx: &Ctx, inner: &mut Inner, r: &DeleteItemRequest) -> Answer {
    let messages: Vec<_> = r
        .item_ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            if ctx.stopped(index) {
                return batch_stopped();
            }
            message((|| {
                let (address, n) = ctx.item(inner, id)?;
                let (folder, current) = inner
                    .mailbox(&address)
                    .and_then(|m| m.item(n))
                    .map(|(f, s)| (f, s.item.clone()))
                    .ok_or_else(|| err(ResponseCode::ERROR_ITEM_NOT_FOUND, "Item not found."))?;
                let folder = Some(folder);
                match &current {
                    Item::CalendarItem(_) if r.send_meeting_cancellations.is_none() => {
                        return Err(err(
                            ResponseCode::new("ErrorSendMeetingCancellationsRequired"),
                            "SendMeetingCancellations is required to delete a calendar item.",
                        ))
                    }
                    Item::Task(_) if r.affected_task_occurrences.is_none() => {
                        return Err(err(
                            ResponseCode::new("ErrorAffectedTaskOccurrencesRequired"),
                            "AffectedTaskOccurrences is required to delete a task.",
                        ))
                    }
                    _ => {}
                }
                // Only the organizer's delete cancels; an attendee's only removes its copy.
                let cancel = match (&current, r.send_meeting_cancellations) {
                    (
                        Item::CalendarItem(c),
                        Some(
                            mode @ (SendMeetingInvitations::SendOnlyToAll
                            | SendMeetingInvitations::SendToAllAndSaveCopy),
                        ),
                    ) if c.my_response_type == Some(ResponseType::Organizer)
                        && c.is_meeting == Some(true)
                        && c.is_cancelled != Some(true) =>
                    {
                        Some(mode == SendMeetingInvitations::SendToAllAndSaveCopy)
                    }
                    _ => None,
                };
                let removed = inner
                    .remove_item(&address, n)
                    .ok_or_else(|| err(ResponseCode::ERROR_ITEM_NOT_FOUND, "Item not found."))?;
                if let Some(save_copy) = cancel {
                    inner
                        .deliver_cancellations(&address, &removed, save_copy)
                        .map_err(internal)?;
                }
                if r.delete_type == DeleteType::MoveToDeletedItems
                    && folder != Some(DistinguishedFolderName::DeletedItems)
                {
                    // A move gives the item a new id in Deleted Items, as Exchange does (and
                    // raises one MovedEvent).
                    inner
                        .refile_removed(
                            &address,
                            n,
                            folder,
                            DistinguishedFolderName::DeletedItems,
                            removed,
                        )
                        .map_err(internal)?;
                }
                Ok(())
            })())
        })
        .collect();
    let code = first_code(&messages);
    Answer::Xml {
        xml: DeleteItemResponse { messages }.to_xml(),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exsync_ews::types::{Contact, ItemBase};

    fn message(subject: &str, received: &str, imid: &str) -> Item {
        Item::Message(Message {
            base: ItemBase {
                subject: Some(subject.into()),
                date_time_received: Some(received.parse().unwrap()),
                ..ItemBase::default()
            },
            internet_message_id: Some(imid.into()),
            is_read: Some(false),
            ..Message::default()
        })
    }

    #[test]
    fn restrictions_compare_dates_as_dates_and_strings_case_insensitively() {
        let m = message("Order 42", "2026-11-02T10:00:00Z", "<A@x>");
        let eq = |f: FieldUri, v: &str| Restriction::IsEqualTo(f, v.into());
        assert!(matches(&m, &eq(FieldUri::INTERNET_MESSAGE_ID, "<a@X>")));
        assert!(!matches(&m, &eq(FieldUri::INTERNET_MESSAGE_ID, "<b@x>")));
        let after = Restriction::IsGreaterThan(
            FieldUri::DATE_TIME_RECEIVED,
            "2026-11-02T09:59:59+00:00".into(),
        );
        let before =
            Restriction::IsLessThan(FieldUri::DATE_TIME_RECEIVED, "2026-11-01T00:00:00Z".into());
        assert!(matches(&m, &after));
        assert!(!matches(&m, &before));
        assert!(matches(
            &m,
            &Restriction::Or(vec![before.clone(), after.clone()])
        ));
        assert!(!matches(&m, &Restriction::And(vec![before, after])));
        // A field the item kind does not have never matches.
        assert!(!matches(&m, &eq(FieldUri::new("calendar:Location"), "x")));
    }

    #[test]
    fn set_and_delete_item_fields_follow_the_item_kind() {
        let mut m = message("old", "2026-11-02T10:00:00Z", "<a@x>");
        let source = message("new", "2026-11-02T10:00:00Z", "<a@x>");
        set_field(&mut m, Some(&source), &FieldUri::SUBJECT).unwrap();
        assert_eq!(m.base().subject.as_deref(), Some("new"));
        set_field(&mut m, None, &FieldUri::SUBJECT).unwrap();
        assert_eq!(m.base().subject, None);
        let err = set_field(&mut m, None, &FieldUri::new("calendar:Start")).unwrap_err();
        assert_eq!(err.0, ResponseCode::ERROR_INVALID_PROPERTY_SET);

        let mut c = Item::Contact(Contact {
            email_addresses: vec![
                ("EmailAddress1".into(), "a@x".into()),
                ("EmailAddress2".into(), "b@x".into()),
            ],
            ..Contact::default()
        });
        let src = Item::Contact(Contact {
            email_addresses: vec![("EmailAddress2".into(), "c@x".into())],
            ..Contact::default()
        });
        let field = FieldUri::indexed("contacts:EmailAddress", "EmailAddress2");
        set_field(&mut c, Some(&src), &field).unwrap();
        let Item::Contact(contact) = &c else { panic!() };
        assert!(contact
            .email_addresses
            .contains(&("EmailAddress2".into(), "c@x".into())));
        assert_eq!(contact.email_addresses.len(), 2);
        set_field(&mut c, None, &field).unwrap();
        let Item::Contact(contact) = &c else { panic!() };
        assert_eq!(contact.email_addresses.len(), 1);
    }
}

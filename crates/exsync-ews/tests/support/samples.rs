//! Realistic, deterministic EWS payloads built with the codec's own types: messages with ~4 KB
//! HTML bodies and 5–20 recipients, calendar items, and whole responses and requests of every
//! operation.
//!
//! Test data, no part of the library (included with `#[path]`): the fuzz seeds
//! (`tests/fuzz.rs`) and the criterion benchmarks (`benches/codec.rs`, the root's
//! `benches/store_import.rs`) start from it, so they exercise what a real Exchange sends.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use exsync_ews::ops::{
    CreateItemRequest, CreateItemResponse, DeleteItemRequest, DeleteItemResponse, EwsRequest,
    FindItemRequest, FindItemResponse, FindItemResult, FolderChange, GetFolderRequest,
    GetFolderResponse, GetItemRequest, GetItemResponse, ItemChange, ItemUpdate, MaxChangesReturned,
    MeetingResponseRequest, SyncFolderHierarchyRequest, SyncFolderHierarchyResponse,
    SyncFolderHierarchyResult, SyncFolderItemsRequest, SyncFolderItemsResponse,
    SyncFolderItemsResult, SyncItemChange, UpdateItemRequest, UpdateItemResponse, UpdateItemResult,
    OPERATIONS,
};
use exsync_ews::recurrence::{DayOfWeek, Recurrence, RecurrencePattern, RecurrenceRange};
use exsync_ews::soap::{ExchangeVersion, RequestHeader};
use exsync_ews::types::{
    BaseFolderId, BaseShape, Body, BodyType, CalendarItem, CalendarItemKind, ConflictResolution,
    DeleteType, DistinguishedFolderName, EmailAddress, FieldUri, Folder, FolderId, IndexedPageView,
    Item, ItemBase, ItemId, ItemShape, Message, MessageDisposition, ResponseCode, ResponseMessage,
    ResponseType, Restriction, SendMeetingInvitations, Traversal,
};

/// A fixed instant, so samples (and benchmark inputs) are identical on every run.
fn epoch() -> DateTime<Utc> {
    Utc.timestamp_opt(1_717_200_000, 0)
        .single()
        .unwrap_or_default()
}

/// An EWS-looking item id (base64-like, ~150 characters like Exchange's).
pub fn item_id(n: usize) -> ItemId {
    ItemId::with_change_key(
        format!(
            "AAMkADk0ZjM4ZGE1LTdmNDktNDY0Mi1hZGM3LWQ4ZWNmMTI1ZWZmNABGAAAAAAA2{n:08}\
             BwDlX7bP1Yy3TYgq8yNQpQe7AAAAAAEMAADlX7bP1Yy3TYgq8yNQpQe7AAB{n:06}AAA="
        ),
        format!("CQAAABYAAADlX7bP1Yy3TYgq8yNQpQe7AAB{n:06}"),
    )
}

/// An HTML body of about `bytes` bytes, shaped like an Outlook-generated message.
pub fn html_body(n: usize, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 512);
    out.push_str(
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\
         <style>p{margin:0;font-family:Calibri,sans-serif;font-size:11pt}</style></head>\
         <body lang=\"EN-US\"><div class=\"WordSection1\">",
    );
    let mut paragraph = 0usize;
    while out.len() < bytes {
        out.push_str(&format!(
            "<p class=\"MsoNormal\">Paragraph {paragraph} of message {n}: the quarterly figures \
             for Zürich &amp; Köln are attached; please review the <b>totals</b> and reply \
             by Friday. Grüße, — Carol</p>"
        ));
        paragraph += 1;
    }
    out.push_str("</div></body></html>");
    out
}

/// A recipient address.
fn person(n: usize) -> EmailAddress {
    EmailAddress::new(
        Some(&format!("Person {n} (Sales)")),
        &format!("person{n}@contoso.test"),
    )
}

/// An email as GetItem returns it: ~`body_bytes` HTML body, 5–20 recipients, all the
/// fields the sync reads.
pub fn message(n: usize, body_bytes: usize) -> Item {
    let t = epoch() + chrono::Duration::seconds(i64::try_from(n).unwrap_or(0));
    let recipients = 5 + n % 16;
    Item::Message(Message {
        base: ItemBase {
            item_id: Some(item_id(n)),
            parent_folder_id: Some(FolderId::new("AQMkADk0ZjM4ZGE1AC4AAAPEwAAAA==")),
            item_class: Some("IPM.Note".into()),
            subject: Some(format!("RE: Quarterly numbers #{n} — Zürich & Köln")),
            body: Some(Body {
                body_type: BodyType::Html,
                content: html_body(n, body_bytes),
            }),
            date_time_received: Some(t),
            size: Some(
                u32::try_from(body_bytes)
                    .unwrap_or(u32::MAX)
                    .saturating_add(2_048),
            ),
            categories: vec!["Finance".into()],
            in_reply_to: Some(format!("<prev-{n}@fabrikam.test>")),
            date_time_sent: Some(t - chrono::Duration::seconds(3)),
            date_time_created: Some(t),
            last_modified_time: Some(t),
            conversation_id: Some(format!("AAQkADk0ZjM4ZGE1LTdmNDkAEAD{n:08}")),
            other_elements: Vec::new(),
            extended_properties: Vec::new(),
        },
        sender: Some(person(1_000 + n)),
        to_recipients: (0..recipients * 2 / 3).map(person).collect(),
        cc_recipients: (recipients * 2 / 3..recipients).map(person).collect(),
        bcc_recipients: vec![],
        from: Some(person(1_000 + n)),
        internet_message_id: Some(format!("<msg-{n}@fabrikam.test>")),
        is_read: Some(n.is_multiple_of(3)),
        references: Some(format!("<prev-{n}@fabrikam.test>")),
    })
}

/// A meeting as GetItem returns it, with 5–20 attendees and a ~1 KB body.
pub fn calendar_item(n: usize) -> Item {
    let start = epoch() + chrono::Duration::hours(i64::try_from(n).unwrap_or(0));
    Item::CalendarItem(CalendarItem {
        base: ItemBase {
            item_id: Some(item_id(n)),
            item_class: Some("IPM.Appointment".into()),
            subject: Some(format!("Project sync #{n}")),
            body: Some(Body {
                body_type: BodyType::Html,
                content: html_body(n, 1024),
            }),
            date_time_created: Some(start),
            last_modified_time: Some(start),
            ..ItemBase::default()
        },
        uid: Some(format!("040000008200E00074C5B7101A82E008000000{n:016}")),
        start: Some(start),
        end: Some(start + chrono::Duration::minutes(30)),
        is_all_day_event: Some(false),
        location: Some("Room 4.12 / Teams".into()),
        organizer: Some(person(2_000 + n)),
        required_attendees: (0..5 + n % 16).map(person).collect(),
        is_meeting: Some(true),
        is_cancelled: Some(false),
        is_recurring: Some(n.is_multiple_of(2)),
        meeting_request_was_sent: Some(true),
        calendar_item_type: Some(if n.is_multiple_of(2) {
            CalendarItemKind::RecurringMaster
        } else {
            CalendarItemKind::Single
        }),
        my_response_type: Some(ResponseType::Organizer),
        // Every other meeting is a weekly series of ten.
        recurrence: n.is_multiple_of(2).then(|| Recurrence {
            pattern: RecurrencePattern::Weekly {
                interval: 1,
                days_of_week: vec![DayOfWeek::Monday, DayOfWeek::Wednesday],
                first_day_of_week: Some(DayOfWeek::Monday),
            },
            range: RecurrenceRange::Numbered {
                start_date: start.date_naive(),
                occurrences: 10,
            },
        }),
    })
}

/// An id-only message, as SyncFolderItems reports it with the IdOnly shape.
pub fn id_only_message(n: usize) -> Item {
    Item::Message(Message {
        base: ItemBase {
            item_id: Some(item_id(n)),
            ..ItemBase::default()
        },
        ..Message::default()
    })
}

/// One SyncFolderItems page of `changes` changes: mostly creates (IdOnly), some updates,
/// deletes and read-flag changes, as an inbox delta looks.
pub fn sync_folder_items_response(changes: usize) -> SyncFolderItemsResponse {
    let changes = (0..changes)
        .map(|n| match n % 10 {
            7 => SyncItemChange::Update(id_only_message(n)),
            8 => SyncItemChange::Delete(item_id(n)),
            9 => SyncItemChange::ReadFlagChange {
                item_id: item_id(n),
                is_read: true,
            },
            _ => SyncItemChange::Create(id_only_message(n)),
        })
        .collect();
    SyncFolderItemsResponse {
        messages: vec![ResponseMessage::success(SyncFolderItemsResult {
            sync_state:
                "H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcpl\
                         VmVdZhZAzO2dvPfee++999577733fW9/"
                    .repeat(4),
            includes_last_item_in_range: false,
            changes,
        })],
    }
}

/// A GetItem response with `count` full messages (~`body_bytes` HTML each).
pub fn get_item_messages_response(count: usize, body_bytes: usize) -> GetItemResponse {
    GetItemResponse {
        messages: (0..count)
            .map(|n| ResponseMessage::success(vec![message(n, body_bytes)]))
            .collect(),
    }
}

/// A GetItem response with `count` calendar items.
pub fn get_item_calendar_response(count: usize) -> GetItemResponse {
    GetItemResponse {
        messages: (0..count)
            .map(|n| ResponseMessage::success(vec![calendar_item(n)]))
            .collect(),
    }
}

/// A GetItem request for `count` ids with the properties the sync asks for.
pub fn get_item_request(count: usize) -> GetItemRequest {
    GetItemRequest {
        item_shape: ItemShape {
            base_shape: BaseShape::IdOnly,
            body_type: Some(BodyType::Html),
            additional_properties: vec![
                FieldUri::SUBJECT,
                FieldUri::BODY,
                FieldUri::DATE_TIME_RECEIVED,
                FieldUri::INTERNET_MESSAGE_ID,
                FieldUri::FROM,
                FieldUri::TO_RECIPIENTS,
                FieldUri::CC_RECIPIENTS,
                FieldUri::IS_READ,
            ],
        },
        item_ids: (0..count).map(item_id).collect(),
    }
}

/// A SyncFolderItems request for the inbox with a stored sync state.
pub fn sync_folder_items_request() -> SyncFolderItemsRequest {
    SyncFolderItemsRequest {
        item_shape: ItemShape::new(BaseShape::IdOnly),
        sync_folder_id: BaseFolderId::distinguished(DistinguishedFolderName::Inbox),
        sync_state: Some(
            "H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcpl".into(),
        ),
        ignore: vec![],
        max_changes_returned: MaxChangesReturned::MAX,
        sync_scope: None,
    }
}

/// A CreateItem request sending one message (what outgoing email does).
pub fn create_item_request() -> CreateItemRequest {
    let mut item = message(1, 4096);
    if let Item::Message(m) = &mut item {
        m.base.item_id = None;
        m.base.parent_folder_id = None;
        m.base.date_time_received = None;
        m.base.date_time_sent = None;
        m.base.date_time_created = None;
        m.base.last_modified_time = None;
        m.base.conversation_id = None;
        // As exsync sends it: its idempotency key in a custom property, no Message-ID.
        m.base.extended_properties = vec![exsync_ews::extended::ExtendedProperty::new(
            exsync_ews::extended::ExtendedFieldUri::named_string(
                "d0925a5d-722f-42f0-882e-a816636fa020",
                "ExsyncOutgoingId",
            ),
            "0b5ad7a4-7d6c-4b8a-9a4e-0f0e3f6f3d21",
        )];
        m.internet_message_id = None;
    }
    CreateItemRequest {
        message_disposition: Some(MessageDisposition::SendAndSaveCopy),
        send_meeting_invitations: None,
        saved_item_folder_id: Some(BaseFolderId::distinguished(
            DistinguishedFolderName::SentItems,
        )),
        items: vec![item],
    }
}

/// One request of every operation the codec reads (the server side's inputs).
pub fn every_request() -> Vec<EwsRequest> {
    let inbox = BaseFolderId::distinguished(DistinguishedFolderName::Inbox);
    vec![
        EwsRequest::GetFolder(GetFolderRequest {
            folder_shape: BaseShape::Default,
            additional_properties: vec![],
            folder_ids: vec![inbox.clone()],
        }),
        EwsRequest::SyncFolderHierarchy(SyncFolderHierarchyRequest {
            folder_shape: BaseShape::AllProperties,
            additional_properties: vec![],
            sync_folder_id: None,
            sync_state: Some("state-1".into()),
        }),
        EwsRequest::SyncFolderItems(sync_folder_items_request()),
        EwsRequest::GetItem(get_item_request(3)),
        EwsRequest::FindItem(FindItemRequest {
            traversal: Traversal::Shallow,
            item_shape: ItemShape::new(BaseShape::IdOnly),
            page: Some(IndexedPageView {
                max_entries_returned: 50,
                offset: 100,
                base_point_beginning: true,
            }),
            restriction: Some(Restriction::And(vec![
                Restriction::IsGreaterThanOrEqualTo(
                    FieldUri::DATE_TIME_RECEIVED,
                    "2024-01-01T00:00:00Z".into(),
                ),
                Restriction::Or(vec![
                    Restriction::IsEqualTo(FieldUri::SUBJECT, "hello".into()),
                    Restriction::IsEqualTo(
                        FieldUri::extended(&exsync_ews::extended::ExtendedFieldUri::named_string(
                            "d0925a5d-722f-42f0-882e-a816636fa020",
                            "ExsyncOutgoingId",
                        )),
                        "row".into(),
                    ),
                    Restriction::IsLessThan(
                        FieldUri::DATE_TIME_SENT,
                        "2025-01-01T00:00:00Z".into(),
                    ),
                ]),
            ])),
            parent_folder_ids: vec![inbox],
        }),
        EwsRequest::CreateItem(create_item_request()),
        EwsRequest::CreateItem(CreateItemRequest {
            send_meeting_invitations: Some(SendMeetingInvitations::SendToNone),
            items: vec![calendar_item(2)],
            ..CreateItemRequest::default()
        }),
        EwsRequest::UpdateItem(UpdateItemRequest {
            conflict_resolution: ConflictResolution::AutoResolve,
            message_disposition: Some(MessageDisposition::SaveOnly),
            send_meeting_invitations_or_cancellations: None,
            item_changes: vec![ItemChange {
                item_id: item_id(4),
                updates: vec![
                    ItemUpdate::SetItemField {
                        field: FieldUri::IS_READ,
                        item: Item::Message(Message {
                            is_read: Some(true),
                            ..Message::default()
                        }),
                    },
                    ItemUpdate::DeleteItemField(FieldUri::CATEGORIES),
                ],
            }],
        }),
        EwsRequest::DeleteItem(DeleteItemRequest {
            delete_type: DeleteType::SoftDelete,
            send_meeting_cancellations: None,
            affected_task_occurrences: None,
            item_ids: vec![item_id(5), item_id(6)],
        }),
        EwsRequest::MeetingResponse(MeetingResponseRequest::decline(
            item_id(7),
            Some("Removed from the business database"),
        )),
    ]
}

fn folder(n: usize) -> Folder {
    Folder {
        folder_id: Some(FolderId::new(format!("AQMkADk0ZjM4ZGE1AC4AAA{n:04}=="))),
        parent_folder_id: Some(FolderId::new("AQMkADk0ZjM4ZGE1AC4AAAroot==")),
        folder_class: Some("IPF.Note".into()),
        display_name: Some(format!("Projekte {n} — Ünïcödé")),
        total_count: Some(u32::try_from(n * 17).unwrap_or(u32::MAX)),
        child_folder_count: Some(0),
        unread_count: Some(u32::try_from(n).unwrap_or(0)),
    }
}

/// Success responses of every operation (client-side inputs), in [`OPERATIONS`] order.
pub fn every_response() -> Vec<(&'static str, String)> {
    let busy = |op: &'static str| -> (&'static str, String) {
        (
            op,
            exsync_ews::ops::error_response_xml(
                op,
                &ResponseCode::ERROR_SERVER_BUSY,
                "The server cannot service this request right now. Try again later.",
                Some(Duration::from_millis(297_749)),
            ),
        )
    };
    let mut out = vec![
        (
            "GetFolder",
            GetFolderResponse {
                messages: vec![ResponseMessage::success(folder(1))],
            }
            .to_xml(),
        ),
        (
            "SyncFolderHierarchy",
            SyncFolderHierarchyResponse {
                messages: vec![ResponseMessage::success(SyncFolderHierarchyResult {
                    sync_state: "state-2".into(),
                    includes_last_folder_in_range: true,
                    changes: vec![
                        FolderChange::Create(folder(2)),
                        FolderChange::Update(folder(3)),
                        FolderChange::Delete(FolderId::new("gone")),
                    ],
                })],
            }
            .to_xml(),
        ),
        ("SyncFolderItems", sync_folder_items_response(10).to_xml()),
        (
            "GetItem",
            GetItemResponse {
                messages: vec![
                    ResponseMessage::success(vec![message(1, 600)]),
                    ResponseMessage::success(vec![calendar_item(2)]),
                    ResponseMessage::error(
                        ResponseCode::ERROR_ITEM_NOT_FOUND,
                        "The specified object was not found in the store.",
                    ),
                ],
            }
            .to_xml(),
        ),
        (
            "FindItem",
            FindItemResponse {
                messages: vec![ResponseMessage::success(FindItemResult {
                    indexed_paging_offset: Some(3),
                    total_items_in_view: 10,
                    includes_last_item_in_range: false,
                    items: (0..3).map(id_only_message).collect(),
                })],
            }
            .to_xml(),
        ),
        (
            "CreateItem",
            CreateItemResponse {
                messages: vec![ResponseMessage::success(vec![id_only_message(7)])],
            }
            .to_xml(),
        ),
        (
            "UpdateItem",
            UpdateItemResponse {
                messages: vec![ResponseMessage::success(UpdateItemResult {
                    items: vec![id_only_message(8)],
                    conflict_results: 1,
                })],
            }
            .to_xml(),
        ),
        (
            "DeleteItem",
            DeleteItemResponse {
                messages: vec![
                    ResponseMessage::success(()),
                    ResponseMessage::error(
                        ResponseCode::ERROR_ITEM_NOT_FOUND,
                        "The specified object was not found in the store.",
                    ),
                ],
            }
            .to_xml(),
        ),
    ];
    out.extend(OPERATIONS.iter().map(|op| busy(op)));
    out
}

/// Every request of [`every_request`] as sent by an impersonating client.
pub fn every_request_xml() -> Vec<String> {
    let header = RequestHeader::impersonating(ExchangeVersion::Exchange2016, "alice@contoso.test");
    every_request().iter().map(|r| r.to_xml(&header)).collect()
}

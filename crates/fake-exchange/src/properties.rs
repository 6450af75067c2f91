//! The fake's property model: which properties each item kind has, which of them a response
//! shape returns (IdOnly, Default, AllProperties, plus AdditionalProperties), and which ones the
//! server owns so that a client may not set them.
//!
//! Owns the sets documented on Microsoft's "Property sets and response shapes in EWS in
//! Exchange" page (tables 2–4) restricted to the properties the fake models, and copying one
//! property between items. It knows nothing of requests, mailboxes or XML.

use exsync_ews::extended::{ExtendedFieldUri, ExtendedProperty};
use exsync_ews::types::{BaseShape, FieldUri, Folder, Item, ItemShape};

/// What each base shape returns for an item kind (Table 3 "Default item properties" and
/// Table 4 "First-class properties", restricted to the properties the fake models).
///
/// Two gaps of the documented tables are filled the way Exchange answers: `calendar:Start`
/// belongs to the calendar Default set (Table 3 lists End but not Start), and `calendar:UID`
/// to AllProperties (Exchange's calendar schema keeps it there; Table 4 omits it). Message
/// Default also carries ToRecipients and IsRead, as the GetItem reference sample shows.
fn base_properties(item: &Item, shape: BaseShape) -> &'static [&'static str] {
    const ID_ONLY: &[&str] = &["item:ItemId"];
    match (item, shape) {
        (_, BaseShape::IdOnly) => ID_ONLY,
        (Item::Message(_), BaseShape::Default) => &[
            "item:ItemId",
            "item:Subject",
            "item:Body",
            "item:Size",
            "item:DateTimeSent",
            "item:DateTimeCreated",
            "message:ToRecipients",
            "message:From",
            "message:IsRead",
        ],
        (Item::CalendarItem(_), BaseShape::Default) => &[
            "item:ItemId",
            "item:Subject",
            "calendar:Start",
            "calendar:End",
            "calendar:Location",
            "calendar:Organizer",
        ],
        (Item::Contact(_), BaseShape::Default) => &[
            "item:ItemId",
            "contacts:CompanyName",
            "contacts:EmailAddresses",
            "contacts:PhoneNumbers",
            "contacts:JobTitle",
        ],
        (Item::Task(_), BaseShape::Default) => &[
            "item:ItemId",
            "item:Subject",
            "task:DueDate",
            "task:PercentComplete",
            "task:StartDate",
            "task:Status",
        ],
        (Item::Message(_), BaseShape::AllProperties) => &[
            "item:ItemId",
            "item:ParentFolderId",
            "item:ItemClass",
            "item:Subject",
            "item:Body",
            "item:DateTimeReceived",
            "item:Size",
            "item:Categories",
            "item:InReplyTo",
            "item:DateTimeSent",
            "item:DateTimeCreated",
            "item:LastModifiedTime",
            "item:ConversationId",
            "message:Sender",
            "message:ToRecipients",
            "message:CcRecipients",
            "message:BccRecipients",
            "message:From",
            "message:InternetMessageId",
            "message:IsRead",
            "message:References",
        ],
        (Item::CalendarItem(_), BaseShape::AllProperties) => &[
            "item:ItemId",
            "item:ParentFolderId",
            "item:ItemClass",
            "item:Subject",
            "item:Body",
            "item:DateTimeReceived",
            "item:Size",
            "item:Categories",
            "item:InReplyTo",
            "item:DateTimeSent",
            "item:DateTimeCreated",
            "item:LastModifiedTime",
            "item:ConversationId",
            "calendar:UID",
            "calendar:Start",
            "calendar:End",
            "calendar:IsAllDayEvent",
            "calendar:Location",
            "calendar:IsMeeting",
            "calendar:IsCancelled",
            "calendar:IsRecurring",
            "calendar:MeetingRequestWasSent",
            "calendar:CalendarItemType",
            "calendar:MyResponseType",
            "calendar:Organizer",
            "calendar:RequiredAttendees",
            "calendar:Recurrence",
        ],
        (Item::Contact(_), BaseShape::AllProperties) => &[
            "item:ItemId",
            "item:ParentFolderId",
            "item:ItemClass",
            "item:Subject",
            "item:Body",
            "item:DateTimeReceived",
            "item:Size",
            "item:Categories",
            "item:InReplyTo",
            "item:DateTimeSent",
            "item:DateTimeCreated",
            "item:LastModifiedTime",
            "item:ConversationId",
            "contacts:DisplayName",
            "contacts:GivenName",
            "contacts:CompanyName",
            "contacts:EmailAddresses",
            "contacts:PhoneNumbers",
            "contacts:JobTitle",
            "contacts:Surname",
        ],
        (Item::Task(_), BaseShape::AllProperties) => &[
            "item:ItemId",
            "item:ParentFolderId",
            "item:ItemClass",
            "item:Subject",
            "item:Body",
            "item:DateTimeReceived",
            "item:Size",
            "item:Categories",
            "item:InReplyTo",
            "item:DateTimeSent",
            "item:DateTimeCreated",
            "item:LastModifiedTime",
            "item:ConversationId",
            "task:CompleteDate",
            "task:DueDate",
            "task:PercentComplete",
            "task:StartDate",
            "task:Status",
        ],
    }
}

/// Which operation answers: FindItem and SyncFolderItems never return `item:Body` (EWS
/// reference "SyncFolderItems operation": it "cannot return properties like Body").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answering {
    /// GetItem.
    GetItem,
    /// FindItem or SyncFolderItems.
    FindOrSync,
}

/// `item` as `shape` asks for it: exactly the base shape's set plus the additional properties
/// (those the item kind does not have are left out), nothing else.
pub(crate) fn shaped(item: &Item, shape: &ItemShape, answering: Answering) -> Item {
    let mut out = item.id_only();
    let wanted = base_properties(item, shape.base_shape)
        .iter()
        .map(|p| FieldUri::new(*p))
        .chain(shape.additional_properties.iter().cloned());
    for field in wanted {
        if answering == Answering::FindOrSync && field == FieldUri::BODY {
            continue;
        }
        // A property of another item kind (calendar:Start on a message) is simply absent.
        copy_property(&mut out, Some(item), &field);
    }
    out.base_mut().extended_properties = requested_extended(item, shape);
    out
}

/// Extended properties are returned only when the shape names them (ExtendedFieldURI in
/// AdditionalProperties), whatever the base shape, as Exchange does.
fn requested_extended(item: &Item, shape: &ItemShape) -> Vec<ExtendedProperty> {
    let asked: Vec<ExtendedFieldUri> = shape
        .additional_properties
        .iter()
        .filter_map(FieldUri::as_extended)
        .collect();
    item.base()
        .extended_properties
        .iter()
        .filter(|p| asked.iter().any(|a| a.same_property(&p.field)))
        .cloned()
        .collect()
}

/// Copy the property `field` of `source` into `target`, or clear it when `source` is `None`.
/// False when `target`'s kind has no such property (or the fake does not model it).
pub(crate) fn copy_property(target: &mut Item, source: Option<&Item>, field: &FieldUri) -> bool {
    macro_rules! base {
        ($f:ident) => {{
            target.base_mut().$f = source.map(|s| s.base().$f.clone()).unwrap_or_default();
            true
        }};
    }
    macro_rules! kind {
        ($variant:ident, $f:ident) => {{
            match (target, source) {
                (Item::$variant(t), Some(Item::$variant(s))) => {
                    t.$f = s.$f.clone();
                    true
                }
                (Item::$variant(t), None) => {
                    t.$f = Default::default();
                    true
                }
                _ => false,
            }
        }};
    }
    let (uri, index) = field.split_index();
    match (uri, index) {
        ("item:ItemId", None) => base!(item_id),
        ("item:ParentFolderId", None) => base!(parent_folder_id),
        ("item:ItemClass", None) => base!(item_class),
        ("item:Subject", None) => base!(subject),
        ("item:Body", None) => base!(body),
        ("item:DateTimeReceived", None) => base!(date_time_received),
        ("item:Size", None) => base!(size),
        ("item:Categories", None) => base!(categories),
        ("item:InReplyTo", None) => base!(in_reply_to),
        ("item:DateTimeSent", None) => base!(date_time_sent),
        ("item:DateTimeCreated", None) => base!(date_time_created),
        ("item:LastModifiedTime", None) => base!(last_modified_time),
        ("item:ConversationId", None) => base!(conversation_id),
        ("message:Sender", None) => kind!(Message, sender),
        ("message:ToRecipients", None) => kind!(Message, to_recipients),
        ("message:CcRecipients", None) => kind!(Message, cc_recipients),
        ("message:BccRecipients", None) => kind!(Message, bcc_recipients),
        ("message:From", None) => kind!(Message, from),
        ("message:InternetMessageId", None) => kind!(Message, internet_message_id),
        ("message:IsRead", None) => kind!(Message, is_read),
        ("message:References", None) => kind!(Message, references),
        ("calendar:UID", None) => kind!(CalendarItem, uid),
        ("calendar:Start", None) => kind!(CalendarItem, start),
        ("calendar:End", None) => kind!(CalendarItem, end),
        ("calendar:IsAllDayEvent", None) => kind!(CalendarItem, is_all_day_event),
        ("calendar:Location", None) => kind!(CalendarItem, location),
        ("calendar:Organizer", None) => kind!(CalendarItem, organizer),
        ("calendar:RequiredAttendees", None) => kind!(CalendarItem, required_attendees),
        ("calendar:IsMeeting", None) => kind!(CalendarItem, is_meeting),
        ("calendar:IsCancelled", None) => kind!(CalendarItem, is_cancelled),
        ("calendar:IsRecurring", None) => kind!(CalendarItem, is_recurring),
        ("calendar:MeetingRequestWasSent", None) => kind!(CalendarItem, meeting_request_was_sent),
        ("calendar:CalendarItemType", None) => kind!(CalendarItem, calendar_item_type),
        ("calendar:MyResponseType", None) => kind!(CalendarItem, my_response_type),
        ("calendar:Recurrence", None) => kind!(CalendarItem, recurrence),
        ("contacts:DisplayName", None) => kind!(Contact, display_name),
        ("contacts:GivenName", None) => kind!(Contact, given_name),
        ("contacts:CompanyName", None) => kind!(Contact, company_name),
        ("contacts:EmailAddresses", None) => kind!(Contact, email_addresses),
        ("contacts:PhoneNumbers", None) => kind!(Contact, phone_numbers),
        ("contacts:JobTitle", None) => kind!(Contact, job_title),
        ("contacts:Surname", None) => kind!(Contact, surname),
        ("contacts:EmailAddress" | "contacts:PhoneNumber", Some(key)) => {
            let emails = uri == "contacts:EmailAddress";
            let Item::Contact(t) = target else {
                return false;
            };
            let entries = |c: &exsync_ews::types::Contact| {
                if emails {
                    c.email_addresses.clone()
                } else {
                    c.phone_numbers.clone()
                }
            };
            let from = match source {
                Some(Item::Contact(s)) => entries(s),
                Some(_) => return false,
                None => Vec::new(),
            };
            let list = if emails {
                &mut t.email_addresses
            } else {
                &mut t.phone_numbers
            };
            list.retain(|(k, _)| k != key);
            if let Some(entry) = from.into_iter().find(|(k, _)| k == key) {
                list.push(entry);
            }
            true
        }
        ("task:CompleteDate", None) => kind!(Task, complete_date),
        ("task:DueDate", None) => kind!(Task, due_date),
        ("task:PercentComplete", None) => kind!(Task, percent_complete),
        ("task:StartDate", None) => kind!(Task, start_date),
        ("task:Status", None) => kind!(Task, status),
        _ => false,
    }
}

/// Item properties Exchange computes itself: a client that sets one on CreateItem or UpdateItem
/// gets `ErrorInvalidPropertySet` (EWS reference "ResponseCode": "returned if the property
/// that you are trying to set is read-only"). These are the properties Exchange's own item,
/// calendar and message schemas mark read-only, by their FieldURI.
const READ_ONLY: &[&str] = &[
    "item:ItemId",
    "item:ParentFolderId",
    "item:DateTimeReceived",
    "item:Size",
    "item:DateTimeSent",
    "item:DateTimeCreated",
    "item:DisplayCc",
    "item:DisplayTo",
    "item:HasAttachments",
    "item:EffectiveRights",
    "item:LastModifiedName",
    "item:LastModifiedTime",
    "item:WebClientReadFormQueryString",
    "item:WebClientEditFormQueryString",
    "item:ConversationId",
    "item:StoreEntryId",
    "item:InstanceKey",
    "item:RetentionDate",
    "item:Preview",
    "item:IconIndex",
    "calendar:Organizer",
    "calendar:AppointmentReplyTime",
    "calendar:AppointmentSequenceNumber",
    "calendar:AppointmentState",
    "calendar:CalendarItemType",
    "calendar:IsMeeting",
    "calendar:IsCancelled",
    "calendar:IsRecurring",
    "calendar:MeetingRequestWasSent",
    "calendar:MyResponseType",
    "calendar:Duration",
    "calendar:TimeZone",
    "calendar:IsOrganizer",
    "calendar:DateTimeStamp",
    "calendar:RecurrenceId",
];

/// Whether `field` (its FieldURI, index ignored) is a property only the server sets.
pub(crate) fn is_read_only(field: &FieldUri) -> bool {
    READ_ONLY.contains(&field.split_index().0)
}

/// The read-only property a created item carries, if any: modelled fields that are set, and
/// other elements the client sent (by their FieldURI), in schema order.
pub(crate) fn read_only_property_in(item: &Item) -> Option<FieldUri> {
    let base = item.base();
    let set = [
        ("item:ItemId", base.item_id.is_some()),
        ("item:ParentFolderId", base.parent_folder_id.is_some()),
        ("item:DateTimeReceived", base.date_time_received.is_some()),
        ("item:Size", base.size.is_some()),
        ("item:DateTimeSent", base.date_time_sent.is_some()),
        ("item:DateTimeCreated", base.date_time_created.is_some()),
        ("item:LastModifiedTime", base.last_modified_time.is_some()),
        ("item:ConversationId", base.conversation_id.is_some()),
        (
            "calendar:Organizer",
            matches!(item, Item::CalendarItem(c) if c.organizer.is_some()),
        ),
    ];
    if let Some((uri, _)) = set.iter().find(|(_, present)| *present) {
        return Some(FieldUri::new(*uri));
    }
    let prefix = match item {
        Item::CalendarItem(_) => "calendar",
        _ => "item",
    };
    base.other_elements.iter().find_map(|name| {
        [format!("item:{name}"), format!("{prefix}:{name}")]
            .into_iter()
            .find(|uri| READ_ONLY.contains(&uri.as_str()))
            .map(FieldUri::new)
    })
}

/// What each folder base shape returns (Table 2 "Default folder properties": no TotalCount for
/// the calendar, no UnreadCount for calendar and contacts; AllProperties: every modelled one).
fn folder_base_properties(folder_class: &str, shape: BaseShape) -> &'static [&'static str] {
    match (shape, folder_class) {
        (BaseShape::IdOnly, _) => &["folder:FolderId"],
        (BaseShape::Default, "IPF.Appointment") => &[
            "folder:FolderId",
            "folder:DisplayName",
            "folder:ChildFolderCount",
        ],
        (BaseShape::Default, "IPF.Contact") => &[
            "folder:FolderId",
            "folder:DisplayName",
            "folder:TotalCount",
            "folder:ChildFolderCount",
        ],
        (BaseShape::Default, _) => &[
            "folder:FolderId",
            "folder:DisplayName",
            "folder:TotalCount",
            "folder:ChildFolderCount",
            "folder:UnreadCount",
        ],
        (BaseShape::AllProperties, _) => &[
            "folder:FolderId",
            "folder:ParentFolderId",
            "folder:FolderClass",
            "folder:DisplayName",
            "folder:TotalCount",
            "folder:ChildFolderCount",
            "folder:UnreadCount",
        ],
    }
}

/// `folder` (all its modelled properties filled in) as the shape asks for it.
pub(crate) fn shaped_folder(folder: &Folder, base: BaseShape, additional: &[FieldUri]) -> Folder {
    let class = folder.folder_class.as_deref().unwrap_or("IPF.Note");
    let wanted = folder_base_properties(class, base)
        .iter()
        .map(|p| FieldUri::new(*p))
        .chain(additional.iter().cloned());
    let mut out = Folder::default();
    for field in wanted {
        match field.as_str() {
            "folder:FolderId" => out.folder_id = folder.folder_id.clone(),
            "folder:ParentFolderId" => out.parent_folder_id = folder.parent_folder_id.clone(),
            "folder:FolderClass" => out.folder_class = folder.folder_class.clone(),
            "folder:DisplayName" => out.display_name = folder.display_name.clone(),
            "folder:TotalCount" => out.total_count = folder.total_count,
            "folder:ChildFolderCount" => out.child_folder_count = folder.child_folder_count,
            "folder:UnreadCount" => out.unread_count = folder.unread_count,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use exsync_ews::types::{CalendarItem, ItemBase, ItemId, Message};

    fn message() -> Item {
        Item::Message(Message {
            base: ItemBase {
                item_id: Some(ItemId::with_change_key("i", "c")),
                subject: Some("s".into()),
                date_time_received: Some(chrono::Utc::now()),
                ..ItemBase::default()
            },
            is_read: Some(false),
            internet_message_id: Some("<m@x>".into()),
            ..Message::default()
        })
    }

    #[test]
    fn id_only_with_additional_properties_returns_exactly_those() {
        let mut shape = ItemShape::new(BaseShape::IdOnly);
        shape.additional_properties = vec![FieldUri::SUBJECT, FieldUri::START];
        let Item::Message(m) = shaped(&message(), &shape, Answering::GetItem) else {
            panic!("kind kept")
        };
        assert_eq!(m.base.item_id, Some(ItemId::with_change_key("i", "c")));
        assert_eq!(m.base.subject.as_deref(), Some("s"));
        assert_eq!(m.base.date_time_received, None);
        assert_eq!(m.is_read, None);
        assert_eq!(m.internet_message_id, None);
    }

    #[test]
    fn every_property_of_every_shape_is_modelled() {
        let items = [
            message(),
            Item::CalendarItem(CalendarItem::default()),
            Item::Contact(Default::default()),
            Item::Task(Default::default()),
        ];
        for item in &items {
            for shape in [
                BaseShape::IdOnly,
                BaseShape::Default,
                BaseShape::AllProperties,
            ] {
                for p in base_properties(item, shape) {
                    let mut target = item.id_only();
                    assert!(
                        copy_property(&mut target, Some(item), &FieldUri::new(*p)),
                        "{p} on {item:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn server_owned_properties_are_found_in_created_items() {
        assert_eq!(
            read_only_property_in(&message()),
            Some(FieldUri::new("item:ItemId"))
        );
        let mut m = message();
        m.base_mut().item_id = None;
        assert_eq!(
            read_only_property_in(&m),
            Some(FieldUri::DATE_TIME_RECEIVED)
        );
        m.base_mut().date_time_received = None;
        assert_eq!(read_only_property_in(&m), None);
        m.base_mut().other_elements = vec!["Sensitivity".into(), "DisplayTo".into()];
        assert_eq!(
            read_only_property_in(&m),
            Some(FieldUri::new("item:DisplayTo"))
        );
        assert!(is_read_only(&FieldUri::new("calendar:Organizer")));
        assert!(!is_read_only(&FieldUri::SUBJECT));
    }
}

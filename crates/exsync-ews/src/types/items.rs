//! Items: the common base and every kind (message, calendar item, contact, task).

use super::*;

/// Fields of ItemType every item kind has (the ones the sync uses).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemBase {
    /// `t:ItemId`.
    pub item_id: Option<ItemId>,
    /// `t:ParentFolderId`.
    pub parent_folder_id: Option<FolderId>,
    /// `t:ItemClass` (IPM.Note, IPM.Appointment, …).
    pub item_class: Option<String>,
    /// `t:Subject`.
    pub subject: Option<String>,
    /// `t:Body`.
    pub body: Option<Body>,
    /// `t:DateTimeReceived`.
    pub date_time_received: Option<DateTime<Utc>>,
    /// `t:Size` in bytes (assigned by the server).
    pub size: Option<u32>,
    /// `t:Categories/t:String`.
    pub categories: Vec<String>,
    /// `t:InReplyTo`.
    pub in_reply_to: Option<String>,
    /// `t:DateTimeSent`.
    pub date_time_sent: Option<DateTime<Utc>>,
    /// `t:DateTimeCreated`.
    pub date_time_created: Option<DateTime<Utc>>,
    /// `t:LastModifiedTime`.
    pub last_modified_time: Option<DateTime<Utc>>,
    /// `t:ConversationId/@Id`.
    pub conversation_id: Option<String>,
    /// Local names of the item's child elements this codec does not model, as read (never
    /// written): the server side sees which other properties a client tried to set.
    pub other_elements: Vec<String>,
    /// `t:ExtendedProperty*` (custom and MAPI properties; returned only when asked for).
    pub extended_properties: Vec<crate::extended::ExtendedProperty>,
}

impl ItemBase {
    fn write(&self, w: &mut XmlWriter) {
        if let Some(id) = &self.item_id {
            id.write(w, "t:ItemId");
        }
        if let Some(id) = &self.parent_folder_id {
            id.write(w, "t:ParentFolderId");
        }
        leaf_opt(w, "t:ItemClass", self.item_class.as_deref());
        leaf_opt(w, "t:Subject", self.subject.as_deref());
        if let Some(body) = &self.body {
            w.start("t:Body").attr("BodyType", body.body_type.as_str());
            w.text(&body.content);
            w.end();
        }
        time_opt(w, "t:DateTimeReceived", self.date_time_received.as_ref());
        if let Some(size) = self.size {
            w.leaf("t:Size", &size.to_string());
        }
        if !self.categories.is_empty() {
            w.start("t:Categories");
            for c in &self.categories {
                w.leaf("t:String", c);
            }
            w.end();
        }
        leaf_opt(w, "t:InReplyTo", self.in_reply_to.as_deref());
        time_opt(w, "t:DateTimeSent", self.date_time_sent.as_ref());
        time_opt(w, "t:DateTimeCreated", self.date_time_created.as_ref());
        for property in &self.extended_properties {
            property.write(w);
        }
        time_opt(w, "t:LastModifiedTime", self.last_modified_time.as_ref());
        if let Some(c) = &self.conversation_id {
            w.start("t:ConversationId").attr("Id", c).end();
        }
    }

    fn from_element(el: &Element) -> Result<Self, WireError> {
        Ok(ItemBase {
            item_id: el
                .child(TYPES_NS, "ItemId")
                .map(ItemId::from_element)
                .transpose()?,
            parent_folder_id: el
                .child(TYPES_NS, "ParentFolderId")
                .map(FolderId::from_element)
                .transpose()?,
            item_class: t_text(el, "ItemClass"),
            subject: t_text(el, "Subject"),
            body: el
                .child(TYPES_NS, "Body")
                .map(|b| -> Result<Body, WireError> {
                    Ok(Body {
                        body_type: b.attr("BodyType").unwrap_or("Text").parse()?,
                        content: b.text.clone(),
                    })
                })
                .transpose()?,
            date_time_received: t_time(el, "DateTimeReceived")?,
            size: el
                .child_text(TYPES_NS, "Size")
                .map(|t| parse_u32("Size", t))
                .transpose()?,
            categories: el
                .child(TYPES_NS, "Categories")
                .map(|c| {
                    c.children_named(TYPES_NS, "String")
                        .map(|s| s.text.clone())
                        .collect()
                })
                .unwrap_or_default(),
            in_reply_to: t_text(el, "InReplyTo"),
            date_time_sent: t_time(el, "DateTimeSent")?,
            date_time_created: t_time(el, "DateTimeCreated")?,
            last_modified_time: t_time(el, "LastModifiedTime")?,
            conversation_id: el
                .child(TYPES_NS, "ConversationId")
                .and_then(|c| c.attr("Id"))
                .map(str::to_owned),
            other_elements: Vec::new(),
            extended_properties: crate::extended::ExtendedProperty::all_in(el)?,
        })
    }
}

/// Child elements of an item element the codec models, per element kind (the rest are listed
/// in [`ItemBase::other_elements`] when read).
pub(super) fn modelled_elements(kind: &str) -> &'static [&'static str] {
    const BASE: &[&str] = &[
        "ItemId",
        "ParentFolderId",
        "ItemClass",
        "Subject",
        "Body",
        "DateTimeReceived",
        "Size",
        "Categories",
        "InReplyTo",
        "DateTimeSent",
        "DateTimeCreated",
        "LastModifiedTime",
        "ConversationId",
        "ExtendedProperty",
    ];
    match kind {
        "CalendarItem" => &[
            "UID",
            "Start",
            "End",
            "IsAllDayEvent",
            "Location",
            "IsMeeting",
            "IsCancelled",
            "IsRecurring",
            "MeetingRequestWasSent",
            "CalendarItemType",
            "MyResponseType",
            "Organizer",
            "RequiredAttendees",
            "Recurrence",
        ],
        "Contact" | "DistributionList" => &[
            "DisplayName",
            "GivenName",
            "CompanyName",
            "EmailAddresses",
            "PhoneNumbers",
            "JobTitle",
            "Surname",
        ],
        "Task" => &[
            "CompleteDate",
            "DueDate",
            "PercentComplete",
            "StartDate",
            "Status",
        ],
        "" => BASE,
        _ => &[
            "Sender",
            "ToRecipients",
            "CcRecipients",
            "BccRecipients",
            "From",
            "InternetMessageId",
            "IsRead",
            "References",
        ],
    }
}

/// `t:Message` (MessageType): an email.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// ItemType fields.
    pub base: ItemBase,
    /// `t:Sender`.
    pub sender: Option<EmailAddress>,
    /// `t:ToRecipients`.
    pub to_recipients: Vec<EmailAddress>,
    /// `t:CcRecipients`.
    pub cc_recipients: Vec<EmailAddress>,
    /// `t:BccRecipients`.
    pub bcc_recipients: Vec<EmailAddress>,
    /// `t:From`.
    pub from: Option<EmailAddress>,
    /// `t:InternetMessageId`.
    pub internet_message_id: Option<String>,
    /// `t:IsRead`.
    pub is_read: Option<bool>,
    /// `t:References`.
    pub references: Option<String>,
}

/// `t:CalendarItem` (CalendarItemType): an appointment or meeting.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CalendarItem {
    /// ItemType fields.
    pub base: ItemBase,
    /// `t:UID` (iCalendar UID).
    pub uid: Option<String>,
    /// `t:Start`.
    pub start: Option<DateTime<Utc>>,
    /// `t:End`.
    pub end: Option<DateTime<Utc>>,
    /// `t:IsAllDayEvent`.
    pub is_all_day_event: Option<bool>,
    /// `t:Location`.
    pub location: Option<String>,
    /// `t:Organizer`.
    pub organizer: Option<EmailAddress>,
    /// `t:RequiredAttendees/t:Attendee/t:Mailbox`.
    pub required_attendees: Vec<EmailAddress>,
    /// `t:IsMeeting` (read-only: the item has attendees).
    pub is_meeting: Option<bool>,
    /// `t:IsCancelled` (read-only: the organizer cancelled the meeting).
    pub is_cancelled: Option<bool>,
    /// `t:IsRecurring` (read-only).
    pub is_recurring: Option<bool>,
    /// `t:MeetingRequestWasSent` (read-only: invitations went out).
    pub meeting_request_was_sent: Option<bool>,
    /// `t:CalendarItemType` (read-only: Single, Occurrence, Exception, RecurringMaster).
    pub calendar_item_type: Option<CalendarItemKind>,
    /// `t:MyResponseType` (read-only: Organizer for the organizer's own copy).
    pub my_response_type: Option<ResponseType>,
    /// `t:Recurrence`: the pattern and range of a series (recurring masters only).
    pub recurrence: Option<Recurrence>,
}

/// `t:Contact` (ContactItemType): an address-book entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contact {
    /// ItemType fields.
    pub base: ItemBase,
    /// `t:DisplayName`.
    pub display_name: Option<String>,
    /// `t:GivenName`.
    pub given_name: Option<String>,
    /// `t:Surname`.
    pub surname: Option<String>,
    /// `t:CompanyName`.
    pub company_name: Option<String>,
    /// `t:EmailAddresses/t:Entry` as (Key: EmailAddress1..3, address).
    pub email_addresses: Vec<(String, String)>,
    /// `t:PhoneNumbers/t:Entry` as (Key: BusinessPhone, MobilePhone, …, number).
    pub phone_numbers: Vec<(String, String)>,
    /// `t:JobTitle`.
    pub job_title: Option<String>,
}

/// `t:Status` of a task (TaskStatusType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskStatus {
    /// Not started.
    #[default]
    NotStarted,
    /// In progress.
    InProgress,
    /// Done.
    Completed,
    /// Waiting on someone else.
    WaitingOnOthers,
    /// Deferred.
    Deferred,
}

impl TaskStatus {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::NotStarted => "NotStarted",
            TaskStatus::InProgress => "InProgress",
            TaskStatus::Completed => "Completed",
            TaskStatus::WaitingOnOthers => "WaitingOnOthers",
            TaskStatus::Deferred => "Deferred",
        }
    }
}

impl FromStr for TaskStatus {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        match s.trim() {
            "NotStarted" => Ok(TaskStatus::NotStarted),
            "InProgress" => Ok(TaskStatus::InProgress),
            "Completed" => Ok(TaskStatus::Completed),
            "WaitingOnOthers" => Ok(TaskStatus::WaitingOnOthers),
            "Deferred" => Ok(TaskStatus::Deferred),
            other => Err(invalid("Status", other)),
        }
    }
}

/// `t:Task` (TaskType): a to-do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Task {
    /// ItemType fields.
    pub base: ItemBase,
    /// `t:DueDate`.
    pub due_date: Option<DateTime<Utc>>,
    /// `t:StartDate`.
    pub start_date: Option<DateTime<Utc>>,
    /// `t:Status`.
    pub status: Option<TaskStatus>,
    /// `t:PercentComplete` (0–100).
    pub percent_complete: Option<f64>,
    /// `t:CompleteDate`.
    pub complete_date: Option<DateTime<Utc>>,
}

/// Any item the sync handles; other EWS item kinds are read as the closest of these.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An email (also meeting messages, posts and plain `t:Item`s when read).
    Message(Message),
    /// An appointment.
    CalendarItem(CalendarItem),
    /// A contact.
    Contact(Contact),
    /// A task.
    Task(Task),
}

impl Default for Item {
    fn default() -> Self {
        Item::Message(Message::default())
    }
}

/// Element names in an items array that carry an item (NonEmptyArrayOfAllItemsType, ArrayOfRealItemsType).
pub(super) const ITEM_ELEMENTS: &[&str] = &[
    "Item",
    "Message",
    "CalendarItem",
    "Contact",
    "DistributionList",
    "MeetingMessage",
    "MeetingRequest",
    "MeetingResponse",
    "MeetingCancellation",
    "Task",
    "PostItem",
];

impl Item {
    /// The ItemType fields.
    pub fn base(&self) -> &ItemBase {
        match self {
            Item::Message(m) => &m.base,
            Item::CalendarItem(c) => &c.base,
            Item::Contact(c) => &c.base,
            Item::Task(t) => &t.base,
        }
    }

    /// The ItemType fields, mutable.
    pub fn base_mut(&mut self) -> &mut ItemBase {
        match self {
            Item::Message(m) => &mut m.base,
            Item::CalendarItem(c) => &mut c.base,
            Item::Contact(c) => &mut c.base,
            Item::Task(t) => &mut t.base,
        }
    }

    /// The item's id, if it has one.
    pub fn item_id(&self) -> Option<&ItemId> {
        self.base().item_id.as_ref()
    }

    /// An item kind carrying only an id (what CreateItem/UpdateItem answer with).
    pub fn id_only(&self) -> Item {
        let base = ItemBase {
            item_id: self.base().item_id.clone(),
            ..ItemBase::default()
        };
        match self {
            Item::Message(_) => Item::Message(Message {
                base,
                ..Message::default()
            }),
            Item::CalendarItem(_) => Item::CalendarItem(CalendarItem {
                base,
                ..CalendarItem::default()
            }),
            Item::Contact(_) => Item::Contact(Contact {
                base,
                ..Contact::default()
            }),
            Item::Task(_) => Item::Task(Task {
                base,
                ..Task::default()
            }),
        }
    }

    /// Write the item element (`t:Message`, `t:CalendarItem`, `t:Contact`, `t:Task`) in schema order.
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        match self {
            Item::Message(m) => {
                w.start("t:Message");
                m.base.write(w);
                write_single(w, "t:Sender", m.sender.as_ref());
                write_list(w, "t:ToRecipients", &m.to_recipients);
                write_list(w, "t:CcRecipients", &m.cc_recipients);
                write_list(w, "t:BccRecipients", &m.bcc_recipients);
                write_single(w, "t:From", m.from.as_ref());
                leaf_opt(w, "t:InternetMessageId", m.internet_message_id.as_deref());
                bool_opt(w, "t:IsRead", m.is_read);
                leaf_opt(w, "t:References", m.references.as_deref());
            }
            Item::CalendarItem(c) => {
                w.start("t:CalendarItem");
                c.base.write(w);
                leaf_opt(w, "t:UID", c.uid.as_deref());
                time_opt(w, "t:Start", c.start.as_ref());
                time_opt(w, "t:End", c.end.as_ref());
                bool_opt(w, "t:IsAllDayEvent", c.is_all_day_event);
                leaf_opt(w, "t:Location", c.location.as_deref());
                bool_opt(w, "t:IsMeeting", c.is_meeting);
                bool_opt(w, "t:IsCancelled", c.is_cancelled);
                bool_opt(w, "t:IsRecurring", c.is_recurring);
                bool_opt(w, "t:MeetingRequestWasSent", c.meeting_request_was_sent);
                if let Some(kind) = c.calendar_item_type {
                    w.leaf("t:CalendarItemType", kind.as_str());
                }
                if let Some(response) = c.my_response_type {
                    w.leaf("t:MyResponseType", response.as_str());
                }
                write_single(w, "t:Organizer", c.organizer.as_ref());
                if !c.required_attendees.is_empty() {
                    w.start("t:RequiredAttendees");
                    for a in &c.required_attendees {
                        w.start("t:Attendee");
                        a.write(w);
                        w.end();
                    }
                    w.end();
                }
                if let Some(r) = &c.recurrence {
                    r.write(w);
                }
            }
            Item::Contact(c) => {
                w.start("t:Contact");
                c.base.write(w);
                leaf_opt(w, "t:DisplayName", c.display_name.as_deref());
                leaf_opt(w, "t:GivenName", c.given_name.as_deref());
                leaf_opt(w, "t:CompanyName", c.company_name.as_deref());
                write_entries(w, "t:EmailAddresses", &c.email_addresses);
                write_entries(w, "t:PhoneNumbers", &c.phone_numbers);
                leaf_opt(w, "t:JobTitle", c.job_title.as_deref());
                leaf_opt(w, "t:Surname", c.surname.as_deref());
            }
            Item::Task(t) => {
                w.start("t:Task");
                t.base.write(w);
                time_opt(w, "t:CompleteDate", t.complete_date.as_ref());
                time_opt(w, "t:DueDate", t.due_date.as_ref());
                if let Some(p) = t.percent_complete {
                    w.leaf("t:PercentComplete", &p.to_string());
                }
                time_opt(w, "t:StartDate", t.start_date.as_ref());
                if let Some(s) = t.status {
                    w.leaf("t:Status", s.as_str());
                }
            }
        }
        w.end();
    }

    /// Read an item element; `None` when `el` is not an item element.
    pub(crate) fn from_element(el: &Element) -> Result<Option<Item>, WireError> {
        if el.namespace != TYPES_NS || !ITEM_ELEMENTS.contains(&el.name.as_str()) {
            return Ok(None);
        }
        let base = ItemBase::from_element(el)?;
        let item = match el.name.as_str() {
            "CalendarItem" => Item::CalendarItem(CalendarItem {
                base,
                uid: t_text(el, "UID"),
                start: t_time(el, "Start")?,
                end: t_time(el, "End")?,
                is_all_day_event: t_bool(el, "IsAllDayEvent")?,
                location: t_text(el, "Location"),
                organizer: read_single(el, "Organizer"),
                required_attendees: el
                    .child(TYPES_NS, "RequiredAttendees")
                    .map(|l| {
                        l.children_named(TYPES_NS, "Attendee")
                            .filter_map(|a| a.child(TYPES_NS, "Mailbox"))
                            .map(EmailAddress::from_element)
                            .collect()
                    })
                    .unwrap_or_default(),
                is_meeting: t_bool(el, "IsMeeting")?,
                is_cancelled: t_bool(el, "IsCancelled")?,
                is_recurring: t_bool(el, "IsRecurring")?,
                meeting_request_was_sent: t_bool(el, "MeetingRequestWasSent")?,
                calendar_item_type: el
                    .child_text(TYPES_NS, "CalendarItemType")
                    .map(str::parse)
                    .transpose()?,
                my_response_type: el
                    .child_text(TYPES_NS, "MyResponseType")
                    .map(str::parse)
                    .transpose()?,
                recurrence: el
                    .child(TYPES_NS, "Recurrence")
                    .map(Recurrence::from_element)
                    .transpose()?,
            }),
            "Contact" | "DistributionList" => Item::Contact(Contact {
                base,
                display_name: t_text(el, "DisplayName"),
                given_name: t_text(el, "GivenName"),
                surname: t_text(el, "Surname"),
                company_name: t_text(el, "CompanyName"),
                email_addresses: read_entries(el, "EmailAddresses"),
                phone_numbers: read_entries(el, "PhoneNumbers"),
                job_title: t_text(el, "JobTitle"),
            }),
            "Task" => Item::Task(Task {
                base,
                due_date: t_time(el, "DueDate")?,
                start_date: t_time(el, "StartDate")?,
                status: el
                    .child_text(TYPES_NS, "Status")
                    .map(str::parse)
                    .transpose()?,
                percent_complete: el
                    .child_text(TYPES_NS, "PercentComplete")
                    .map(|p| {
                        p.trim()
                            .parse::<f64>()
                            .map_err(|_| invalid("PercentComplete", p))
                    })
                    .transpose()?,
                complete_date: t_time(el, "CompleteDate")?,
            }),
            _ => Item::Message(Message {
                base,
                sender: read_single(el, "Sender"),
                to_recipients: read_list(el, "ToRecipients"),
                cc_recipients: read_list(el, "CcRecipients"),
                bcc_recipients: read_list(el, "BccRecipients"),
                from: read_single(el, "From"),
                internet_message_id: t_text(el, "InternetMessageId"),
                is_read: t_bool(el, "IsRead")?,
                references: t_text(el, "References"),
            }),
        };
        let mut item = item;
        let modelled = |name: &str| {
            modelled_elements("").contains(&name)
                || modelled_elements(el.name.as_str()).contains(&name)
        };
        item.base_mut().other_elements = el
            .children
            .iter()
            .filter(|c| !modelled(&c.name))
            .map(|c| crate::wire::excerpt(&c.name))
            .collect();
        Ok(Some(item))
    }

    /// All items among `parent`'s children (unknown elements skipped).
    pub(crate) fn all_in(parent: &Element) -> Result<Vec<Item>, WireError> {
        let mut out = Vec::new();
        for c in &parent.children {
            if let Some(item) = Item::from_element(c)? {
                out.push(item);
            }
        }
        Ok(out)
    }
}

/// The keys of `t:PhoneNumbers/t:Entry` (PhoneNumberKeyType): Exchange refuses any other
/// value with ErrorSchemaValidation.
pub const PHONE_NUMBER_KEYS: [&str; 23] = [
    "AssistantPhone",
    "BusinessFax",
    "BusinessPhone",
    "BusinessPhone2",
    "Callback",
    "CarPhone",
    "CompanyMainPhone",
    "HomeFax",
    "HomePhone",
    "HomePhone2",
    "Isdn",
    "MobilePhone",
    "OtherFax",
    "OtherTelephone",
    "Pager",
    "PrimaryPhone",
    "RadioPhone",
    "Telex",
    "TtyTddPhone",
    "BusinessMobile",
    "IPPhone",
    "Mms",
    "Msn",
];

/// The keys of `t:EmailAddresses/t:Entry` (EmailAddressKeyType).
pub const EMAIL_ADDRESS_KEYS: [&str; 3] = ["EmailAddress1", "EmailAddress2", "EmailAddress3"];

pub(super) fn write_entries(w: &mut XmlWriter, qname: &str, entries: &[(String, String)]) {
    if !entries.is_empty() {
        w.start(qname);
        for (key, value) in entries {
            w.start("t:Entry").attr("Key", key).text(value).end();
        }
        w.end();
    }
}

pub(super) fn read_entries(el: &Element, name: &str) -> Vec<(String, String)> {
    el.child(TYPES_NS, name)
        .map(|l| {
            l.children_named(TYPES_NS, "Entry")
                .filter_map(|e| e.attr("Key").map(|k| (k.to_owned(), e.text.clone())))
                .collect()
        })
        .unwrap_or_default()
}

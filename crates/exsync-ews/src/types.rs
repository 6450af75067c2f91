//! EWS data types from types.xsd (items, ids, shapes, restrictions) with their XML readers/writers.
//!
//! Owns the mapping between the typed model and the `t:` elements: writers emit the schema's
//! `xs:sequence` order and omit absent fields; readers accept any prefix and any order and skip
//! unknown elements. It knows nothing of operations, envelopes or HTTP.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::recurrence::Recurrence;
use super::soap::TYPES_NS;
use super::xml::{Element, XmlWriter};

/// Why an element could not become a typed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A required element or attribute is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// An element or attribute has a value outside its schema type.
    #[error("invalid value for {element}: '{value}'")]
    Invalid {
        /// Which element or attribute.
        element: &'static str,
        /// The offending value (bounded).
        value: String,
    },
}

pub(crate) fn invalid(element: &'static str, value: &str) -> WireError {
    WireError::Invalid {
        element,
        value: super::error::excerpt(value),
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar helpers
// ---------------------------------------------------------------------------------------------

/// Format a time the way Exchange writes `xs:dateTime`: UTC, whole seconds, `Z`
/// (`2026-12-06T10:51:52Z`). Fractions are cut, not rounded, so a written time is never later
/// than the stored one (some clients read nine fractional digits as a missing value).
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `t` without its fraction of a second: the precision Exchange keeps and writes.
pub fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(0)
}

/// Parse an `xs:dateTime`; a value without offset is taken as UTC (EWS does that for some fields).
pub fn parse_time(element: &'static str, text: &str) -> Result<DateTime<Utc>, WireError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|n| n.and_utc())
        .map_err(|_| invalid(element, text))
}

pub(crate) fn parse_bool(element: &'static str, text: &str) -> Result<bool, WireError> {
    match text.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(invalid(element, other)),
    }
}

pub(crate) fn parse_u32(element: &'static str, text: &str) -> Result<u32, WireError> {
    text.trim().parse().map_err(|_| invalid(element, text))
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

pub(crate) fn t_text(el: &Element, name: &str) -> Option<String> {
    el.child_text(TYPES_NS, name).map(str::to_owned)
}

fn t_time(el: &Element, name: &'static str) -> Result<Option<DateTime<Utc>>, WireError> {
    el.child_text(TYPES_NS, name)
        .map(|t| parse_time(name, t))
        .transpose()
}

fn t_bool(el: &Element, name: &'static str) -> Result<Option<bool>, WireError> {
    el.child_text(TYPES_NS, name)
        .map(|t| parse_bool(name, t))
        .transpose()
}

fn leaf_opt(w: &mut XmlWriter, qname: &str, value: Option<&str>) {
    if let Some(v) = value {
        w.leaf(qname, v);
    }
}

fn time_opt(w: &mut XmlWriter, qname: &str, value: Option<&DateTime<Utc>>) {
    if let Some(v) = value {
        w.leaf(qname, &format_time(v));
    }
}

fn bool_opt(w: &mut XmlWriter, qname: &str, value: Option<bool>) {
    if let Some(v) = value {
        w.leaf(qname, bool_str(v));
    }
}

// ---------------------------------------------------------------------------------------------
// Response classes and codes
// ---------------------------------------------------------------------------------------------

/// `ResponseClass` attribute of every response message (ResponseClassType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseClass {
    /// The operation succeeded.
    #[default]
    Success,
    /// Partly succeeded.
    Warning,
    /// Failed; `ResponseCode` says why.
    Error,
}

impl ResponseClass {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseClass::Success => "Success",
            ResponseClass::Warning => "Warning",
            ResponseClass::Error => "Error",
        }
    }
}

impl FromStr for ResponseClass {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        match s.trim() {
            "Success" => Ok(ResponseClass::Success),
            "Warning" => Ok(ResponseClass::Warning),
            "Error" => Ok(ResponseClass::Error),
            other => Err(invalid("ResponseClass", other)),
        }
    }
}

/// An EWS `ResponseCode` (m:ResponseCodeType); a string so unknown codes survive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub Cow<'static, str>);

impl ResponseCode {
    /// `NoError`.
    pub const NO_ERROR: ResponseCode = ResponseCode(Cow::Borrowed("NoError"));
    /// `ErrorServerBusy`.
    pub const ERROR_SERVER_BUSY: ResponseCode = ResponseCode(Cow::Borrowed("ErrorServerBusy"));
    /// `ErrorInvalidSyncStateData`.
    pub const ERROR_INVALID_SYNC_STATE_DATA: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidSyncStateData"));
    /// `ErrorImpersonateUserDenied`.
    pub const ERROR_IMPERSONATE_USER_DENIED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorImpersonateUserDenied"));
    /// `ErrorNonExistentMailbox`.
    pub const ERROR_NON_EXISTENT_MAILBOX: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorNonExistentMailbox"));
    /// `ErrorAccessDenied`.
    pub const ERROR_ACCESS_DENIED: ResponseCode = ResponseCode(Cow::Borrowed("ErrorAccessDenied"));
    /// `ErrorItemNotFound`.
    pub const ERROR_ITEM_NOT_FOUND: ResponseCode = ResponseCode(Cow::Borrowed("ErrorItemNotFound"));
    /// `ErrorIrresolvableConflict`.
    pub const ERROR_IRRESOLVABLE_CONFLICT: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorIrresolvableConflict"));
    /// `ErrorInvalidChangeKey`.
    pub const ERROR_INVALID_CHANGE_KEY: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidChangeKey"));
    /// `ErrorChangeKeyRequiredForWriteOperations`.
    pub const ERROR_CHANGE_KEY_REQUIRED_FOR_WRITE_OPERATIONS: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorChangeKeyRequiredForWriteOperations"));
    /// `ErrorInternalServerError`.
    pub const ERROR_INTERNAL_SERVER_ERROR: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInternalServerError"));
    /// `ErrorInternalServerTransientError`.
    pub const ERROR_INTERNAL_SERVER_TRANSIENT_ERROR: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInternalServerTransientError"));
    /// `ErrorMailboxStoreUnavailable`.
    pub const ERROR_MAILBOX_STORE_UNAVAILABLE: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorMailboxStoreUnavailable"));
    /// `ErrorTimeoutExpired`.
    pub const ERROR_TIMEOUT_EXPIRED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorTimeoutExpired"));
    /// `ErrorInvalidIdMalformed`.
    pub const ERROR_INVALID_ID_MALFORMED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidIdMalformed"));
    /// `ErrorInvalidRequest`.
    pub const ERROR_INVALID_REQUEST: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidRequest"));
    /// `ErrorSchemaValidation`.
    pub const ERROR_SCHEMA_VALIDATION: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorSchemaValidation"));
    /// `ErrorInvalidPropertyRequest`.
    pub const ERROR_INVALID_PROPERTY_REQUEST: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidPropertyRequest"));
    /// `ErrorMessageSizeExceeded`.
    pub const ERROR_MESSAGE_SIZE_EXCEEDED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorMessageSizeExceeded"));
    /// `ErrorQuotaExceeded`.
    pub const ERROR_QUOTA_EXCEEDED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorQuotaExceeded"));
    /// `ErrorInvalidRecipients`.
    pub const ERROR_INVALID_RECIPIENTS: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidRecipients"));
    /// `ErrorExceededConnectionCount`.
    pub const ERROR_EXCEEDED_CONNECTION_COUNT: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorExceededConnectionCount"));
    /// `ErrorTooManyObjectsOpened`.
    pub const ERROR_TOO_MANY_OBJECTS_OPENED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorTooManyObjectsOpened"));
    /// `ErrorFolderNotFound`.
    pub const ERROR_FOLDER_NOT_FOUND: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorFolderNotFound"));
    /// `ErrorInvalidOperation`.
    pub const ERROR_INVALID_OPERATION: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidOperation"));
    /// `ErrorInvalidPropertySet`.
    pub const ERROR_INVALID_PROPERTY_SET: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidPropertySet"));
    /// `ErrorInvalidPropertyDelete`.
    pub const ERROR_INVALID_PROPERTY_DELETE: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidPropertyDelete"));
    /// `ErrorInvalidServerVersion`.
    pub const ERROR_INVALID_SERVER_VERSION: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidServerVersion"));
    /// `ErrorBatchProcessingStopped`: a Warning for items a batch did not get to.
    pub const ERROR_BATCH_PROCESSING_STOPPED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorBatchProcessingStopped"));
    /// `ErrorSendAsDenied`: no right to send as (or on behalf of) the From mailbox.
    pub const ERROR_SEND_AS_DENIED: ResponseCode = ResponseCode(Cow::Borrowed("ErrorSendAsDenied"));
    /// `ErrorSubmissionQuotaExceeded`: the mailbox sent more than it may for now.
    pub const ERROR_SUBMISSION_QUOTA_EXCEEDED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorSubmissionQuotaExceeded"));
    /// `ErrorInvalidExchangeImpersonationHeaderData`: also Exchange Online's answer to an
    /// app-only token without an ExchangeImpersonation header.
    pub const ERROR_INVALID_EXCHANGE_IMPERSONATION_HEADER_DATA: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidExchangeImpersonationHeaderData"));
}

impl ResponseCode {
    /// A code from its text.
    pub fn new(code: impl Into<String>) -> Self {
        ResponseCode(Cow::Owned(code.into()))
    }

    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `NoError`.
    pub fn is_no_error(&self) -> bool {
        self.0 == "NoError"
    }
}

impl Default for ResponseCode {
    fn default() -> Self {
        ResponseCode::NO_ERROR
    }
}

impl std::fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ResponseCode {
    fn from(s: &str) -> Self {
        ResponseCode(Cow::Owned(s.to_owned()))
    }
}

/// One EWS response message: class, code, text, back-off and the operation's payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseMessage<T> {
    /// Success, Warning or Error.
    pub class: ResponseClass,
    /// `NoError` or the error code.
    pub code: ResponseCode,
    /// Human-readable text (MessageText).
    pub message_text: Option<String>,
    /// `MessageXml/Value[@Name=BackOffMilliseconds]` when Exchange is throttling.
    pub back_off: Option<Duration>,
    /// The operation-specific content (absent on errors).
    pub payload: Option<T>,
}

impl<T> ResponseMessage<T> {
    /// A Success/NoError message carrying `payload`.
    pub fn success(payload: T) -> Self {
        ResponseMessage {
            class: ResponseClass::Success,
            code: ResponseCode::NO_ERROR,
            message_text: None,
            back_off: None,
            payload: Some(payload),
        }
    }

    /// The Error message Exchange sends when throttling with HTTP 200 (ErrorServerBusy + back-off).
    pub fn server_busy(back_off: Duration) -> Self {
        ResponseMessage {
            class: ResponseClass::Error,
            code: ResponseCode::ERROR_SERVER_BUSY,
            message_text: Some(
                "The server cannot service this request right now. Try again later.".into(),
            ),
            back_off: Some(back_off),
            payload: None,
        }
    }

    /// A Warning message: Exchange did not process this item (e.g. ErrorBatchProcessingStopped
    /// for the items after one that failed); it carries no content.
    pub fn warning(code: ResponseCode, text: impl Into<String>) -> Self {
        ResponseMessage {
            class: ResponseClass::Warning,
            code,
            message_text: Some(text.into()),
            back_off: None,
            payload: None,
        }
    }

    /// An Error message with this code and text.
    pub fn error(code: ResponseCode, text: impl Into<String>) -> Self {
        ResponseMessage {
            class: ResponseClass::Error,
            code,
            message_text: Some(text.into()),
            back_off: None,
            payload: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

/// `t:ItemId` (ItemIdType): an item's id and change key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ItemId {
    /// The Id attribute.
    pub id: String,
    /// The ChangeKey attribute (required by Exchange for writes).
    pub change_key: Option<String>,
}

impl ItemId {
    /// An id without change key.
    pub fn new(id: impl Into<String>) -> Self {
        ItemId {
            id: id.into(),
            change_key: None,
        }
    }

    /// An id with a change key.
    pub fn with_change_key(id: impl Into<String>, change_key: impl Into<String>) -> Self {
        ItemId {
            id: id.into(),
            change_key: Some(change_key.into()),
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, qname: &str) {
        w.start(qname).attr("Id", &self.id);
        if let Some(ck) = &self.change_key {
            w.attr("ChangeKey", ck);
        }
        w.end();
    }

    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        Ok(ItemId {
            id: el
                .attr("Id")
                .ok_or(WireError::Missing("ItemId/@Id"))?
                .to_owned(),
            change_key: el.attr("ChangeKey").map(str::to_owned),
        })
    }
}

/// `t:FolderId` (FolderIdType): a folder's id and change key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FolderId {
    /// The Id attribute.
    pub id: String,
    /// The ChangeKey attribute.
    pub change_key: Option<String>,
}

impl FolderId {
    /// An id without change key.
    pub fn new(id: impl Into<String>) -> Self {
        FolderId {
            id: id.into(),
            change_key: None,
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, qname: &str) {
        w.start(qname).attr("Id", &self.id);
        if let Some(ck) = &self.change_key {
            w.attr("ChangeKey", ck);
        }
        w.end();
    }

    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        Ok(FolderId {
            id: el
                .attr("Id")
                .ok_or(WireError::Missing("FolderId/@Id"))?
                .to_owned(),
            change_key: el.attr("ChangeKey").map(str::to_owned),
        })
    }
}

/// Well-known folders (DistinguishedFolderIdNameType), the ones the sync uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistinguishedFolderName {
    /// `inbox`.
    Inbox,
    /// `sentitems`.
    SentItems,
    /// `drafts`.
    Drafts,
    /// `deleteditems`.
    DeletedItems,
    /// `outbox`.
    Outbox,
    /// `calendar`.
    Calendar,
    /// `contacts`.
    Contacts,
    /// `tasks`.
    Tasks,
    /// `junkemail`.
    JunkEmail,
    /// `msgfolderroot` (top of the information store).
    MsgFolderRoot,
    /// `root`.
    Root,
}

impl DistinguishedFolderName {
    /// Every name, for tables and tests.
    pub const ALL: [DistinguishedFolderName; 11] = [
        DistinguishedFolderName::Inbox,
        DistinguishedFolderName::SentItems,
        DistinguishedFolderName::Drafts,
        DistinguishedFolderName::DeletedItems,
        DistinguishedFolderName::Outbox,
        DistinguishedFolderName::Calendar,
        DistinguishedFolderName::Contacts,
        DistinguishedFolderName::Tasks,
        DistinguishedFolderName::JunkEmail,
        DistinguishedFolderName::MsgFolderRoot,
        DistinguishedFolderName::Root,
    ];

    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            DistinguishedFolderName::Inbox => "inbox",
            DistinguishedFolderName::SentItems => "sentitems",
            DistinguishedFolderName::Drafts => "drafts",
            DistinguishedFolderName::DeletedItems => "deleteditems",
            DistinguishedFolderName::Outbox => "outbox",
            DistinguishedFolderName::Calendar => "calendar",
            DistinguishedFolderName::Contacts => "contacts",
            DistinguishedFolderName::Tasks => "tasks",
            DistinguishedFolderName::JunkEmail => "junkemail",
            DistinguishedFolderName::MsgFolderRoot => "msgfolderroot",
            DistinguishedFolderName::Root => "root",
        }
    }
}

impl FromStr for DistinguishedFolderName {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        DistinguishedFolderName::ALL
            .into_iter()
            .find(|n| n.as_str() == s.trim())
            .ok_or_else(|| invalid("DistinguishedFolderId/@Id", s))
    }
}

/// A folder reference: a well-known name (optionally in another mailbox) or a folder id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BaseFolderId {
    /// `t:DistinguishedFolderId`.
    Distinguished {
        /// Which well-known folder.
        name: DistinguishedFolderName,
        /// `t:Mailbox/t:EmailAddress`, for delegate access to another mailbox.
        mailbox: Option<String>,
    },
    /// `t:FolderId`.
    Folder(FolderId),
}

impl BaseFolderId {
    /// A well-known folder of the mailbox being accessed.
    pub fn distinguished(name: DistinguishedFolderName) -> Self {
        BaseFolderId::Distinguished {
            name,
            mailbox: None,
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        match self {
            BaseFolderId::Distinguished { name, mailbox } => {
                w.start("t:DistinguishedFolderId").attr("Id", name.as_str());
                if let Some(m) = mailbox {
                    w.start("t:Mailbox").leaf("t:EmailAddress", m).end();
                }
                w.end();
            }
            BaseFolderId::Folder(id) => id.write(w, "t:FolderId"),
        }
    }

    /// Read a `t:FolderId` or `t:DistinguishedFolderId`; other elements give `None`.
    pub(crate) fn from_element(el: &Element) -> Result<Option<Self>, WireError> {
        if el.namespace != TYPES_NS {
            return Ok(None);
        }
        match el.name.as_str() {
            "FolderId" => Ok(Some(BaseFolderId::Folder(FolderId::from_element(el)?))),
            "DistinguishedFolderId" => {
                let name = el
                    .attr("Id")
                    .ok_or(WireError::Missing("DistinguishedFolderId/@Id"))?
                    .parse()?;
                let mailbox = el
                    .child(TYPES_NS, "Mailbox")
                    .and_then(|m| m.child_text(TYPES_NS, "EmailAddress"))
                    .map(|s| s.trim().to_owned());
                Ok(Some(BaseFolderId::Distinguished { name, mailbox }))
            }
            _ => Ok(None),
        }
    }

    /// The first folder id among `parent`'s children.
    pub(crate) fn first_in(parent: &Element) -> Result<Option<Self>, WireError> {
        for c in &parent.children {
            if let Some(id) = BaseFolderId::from_element(c)? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// All folder ids among `parent`'s children.
    pub(crate) fn all_in(parent: &Element) -> Result<Vec<Self>, WireError> {
        let mut out = Vec::new();
        for c in &parent.children {
            if let Some(id) = BaseFolderId::from_element(c)? {
                out.push(id);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses and bodies
// ---------------------------------------------------------------------------------------------

/// `t:Mailbox` (EmailAddressType) inside Sender, From, ToRecipients, Organizer, Attendee.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailAddress {
    /// Display name.
    pub name: Option<String>,
    /// SMTP address (empty when Exchange gave none).
    pub address: String,
}

impl EmailAddress {
    /// An address with a display name.
    pub fn new(name: Option<&str>, address: &str) -> Self {
        EmailAddress {
            name: name.map(str::to_owned),
            address: address.to_owned(),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        w.start("t:Mailbox");
        leaf_opt(w, "t:Name", self.name.as_deref());
        w.leaf("t:EmailAddress", &self.address);
        w.end();
    }

    fn from_element(el: &Element) -> Self {
        EmailAddress {
            name: t_text(el, "Name"),
            address: el
                .child_text(TYPES_NS, "EmailAddress")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

fn write_single(w: &mut XmlWriter, qname: &str, value: Option<&EmailAddress>) {
    if let Some(a) = value {
        w.start(qname);
        a.write(w);
        w.end();
    }
}

fn write_list(w: &mut XmlWriter, qname: &str, values: &[EmailAddress]) {
    if !values.is_empty() {
        w.start(qname);
        for a in values {
            a.write(w);
        }
        w.end();
    }
}

fn read_single(el: &Element, name: &str) -> Option<EmailAddress> {
    el.child(TYPES_NS, name)
        .and_then(|s| s.child(TYPES_NS, "Mailbox"))
        .map(EmailAddress::from_element)
}

fn read_list(el: &Element, name: &str) -> Vec<EmailAddress> {
    el.child(TYPES_NS, name)
        .map(|l| {
            l.children_named(TYPES_NS, "Mailbox")
                .map(EmailAddress::from_element)
                .collect()
        })
        .unwrap_or_default()
}

/// Body format (BodyTypeType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    /// Plain text.
    #[default]
    Text,
    /// HTML.
    Html,
}

impl BodyType {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::Text => "Text",
            BodyType::Html => "HTML",
        }
    }
}

impl FromStr for BodyType {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        match s.trim() {
            "Text" => Ok(BodyType::Text),
            "HTML" | "Html" => Ok(BodyType::Html),
            other => Err(invalid("BodyType", other)),
        }
    }
}

/// `t:Body` (BodyType): content and its format.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body {
    /// Text or HTML.
    pub body_type: BodyType,
    /// The content, unescaped.
    pub content: String,
}

// ---------------------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------------------

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
    pub extended_properties: Vec<super::extended::ExtendedProperty>,
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
            extended_properties: super::extended::ExtendedProperty::all_in(el)?,
        })
    }
}

/// Child elements of an item element the codec models, per element kind (the rest are listed
/// in [`ItemBase::other_elements`] when read).
fn modelled_elements(kind: &str) -> &'static [&'static str] {
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
const ITEM_ELEMENTS: &[&str] = &[
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
            .map(|c| super::error::excerpt(&c.name))
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

fn write_entries(w: &mut XmlWriter, qname: &str, entries: &[(String, String)]) {
    if !entries.is_empty() {
        w.start(qname);
        for (key, value) in entries {
            w.start("t:Entry").attr("Key", key).text(value).end();
        }
        w.end();
    }
}

fn read_entries(el: &Element, name: &str) -> Vec<(String, String)> {
    el.child(TYPES_NS, name)
        .map(|l| {
            l.children_named(TYPES_NS, "Entry")
                .filter_map(|e| e.attr("Key").map(|k| (k.to_owned(), e.text.clone())))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Folders
// ---------------------------------------------------------------------------------------------

/// `t:Folder` (FolderType; other folder kinds are read into it too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Folder {
    /// `t:FolderId`.
    pub folder_id: Option<FolderId>,
    /// `t:ParentFolderId`.
    pub parent_folder_id: Option<FolderId>,
    /// `t:FolderClass` (IPF.Note, IPF.Appointment, …).
    pub folder_class: Option<String>,
    /// `t:DisplayName`.
    pub display_name: Option<String>,
    /// `t:TotalCount`.
    pub total_count: Option<u32>,
    /// `t:ChildFolderCount`.
    pub child_folder_count: Option<u32>,
    /// `t:UnreadCount`.
    pub unread_count: Option<u32>,
}

const FOLDER_ELEMENTS: &[&str] = &[
    "Folder",
    "CalendarFolder",
    "ContactsFolder",
    "SearchFolder",
    "TasksFolder",
];

impl Folder {
    /// Written as `t:Folder` whatever the class: FolderType is valid for every folder kind.
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("t:Folder");
        if let Some(id) = &self.folder_id {
            id.write(w, "t:FolderId");
        }
        if let Some(id) = &self.parent_folder_id {
            id.write(w, "t:ParentFolderId");
        }
        leaf_opt(w, "t:FolderClass", self.folder_class.as_deref());
        leaf_opt(w, "t:DisplayName", self.display_name.as_deref());
        for (name, v) in [
            ("t:TotalCount", self.total_count),
            ("t:ChildFolderCount", self.child_folder_count),
        ] {
            if let Some(v) = v {
                w.leaf(name, &v.to_string());
            }
        }
        if let Some(v) = self.unread_count {
            w.leaf("t:UnreadCount", &v.to_string());
        }
        w.end();
    }

    /// Read a folder element; `None` when `el` is not one.
    pub(crate) fn from_element(el: &Element) -> Result<Option<Folder>, WireError> {
        if el.namespace != TYPES_NS || !FOLDER_ELEMENTS.contains(&el.name.as_str()) {
            return Ok(None);
        }
        let count = |name: &'static str| {
            el.child_text(TYPES_NS, name)
                .map(|t| parse_u32(name, t))
                .transpose()
        };
        Ok(Some(Folder {
            folder_id: el
                .child(TYPES_NS, "FolderId")
                .map(FolderId::from_element)
                .transpose()?,
            parent_folder_id: el
                .child(TYPES_NS, "ParentFolderId")
                .map(FolderId::from_element)
                .transpose()?,
            folder_class: t_text(el, "FolderClass"),
            display_name: t_text(el, "DisplayName"),
            total_count: count("TotalCount")?,
            child_folder_count: count("ChildFolderCount")?,
            unread_count: count("UnreadCount")?,
        }))
    }

    /// All folders among `parent`'s children.
    pub(crate) fn all_in(parent: &Element) -> Result<Vec<Folder>, WireError> {
        let mut out = Vec::new();
        for c in &parent.children {
            if let Some(f) = Folder::from_element(c)? {
                out.push(f);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes, field paths, restrictions, paging
// ---------------------------------------------------------------------------------------------

/// `t:BaseShape` (DefaultShapeNamesType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaseShape {
    /// Ids only.
    IdOnly,
    /// Exchange's default set.
    #[default]
    Default,
    /// Every property.
    AllProperties,
}

impl BaseShape {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            BaseShape::IdOnly => "IdOnly",
            BaseShape::Default => "Default",
            BaseShape::AllProperties => "AllProperties",
        }
    }
}

impl FromStr for BaseShape {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        match s.trim() {
            "IdOnly" => Ok(BaseShape::IdOnly),
            "Default" => Ok(BaseShape::Default),
            "AllProperties" => Ok(BaseShape::AllProperties),
            other => Err(invalid("BaseShape", other)),
        }
    }
}

/// A property path: `t:FieldURI` (e.g. `item:Subject`) or, for dictionary fields, `t:IndexedFieldURI`
/// encoded as `uri:index` (e.g. `contacts:EmailAddress:EmailAddress1`, see [`FieldUri::indexed`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldUri(pub Cow<'static, str>);

impl FieldUri {
    /// `item:Subject`.
    pub const SUBJECT: FieldUri = FieldUri(Cow::Borrowed("item:Subject"));
    /// `item:Body`.
    pub const BODY: FieldUri = FieldUri(Cow::Borrowed("item:Body"));
    /// `item:ItemClass`.
    pub const ITEM_CLASS: FieldUri = FieldUri(Cow::Borrowed("item:ItemClass"));
    /// `item:ParentFolderId`.
    pub const PARENT_FOLDER_ID: FieldUri = FieldUri(Cow::Borrowed("item:ParentFolderId"));
    /// `item:DateTimeReceived`.
    pub const DATE_TIME_RECEIVED: FieldUri = FieldUri(Cow::Borrowed("item:DateTimeReceived"));
    /// `item:DateTimeSent`.
    pub const DATE_TIME_SENT: FieldUri = FieldUri(Cow::Borrowed("item:DateTimeSent"));
    /// `item:DateTimeCreated`.
    pub const DATE_TIME_CREATED: FieldUri = FieldUri(Cow::Borrowed("item:DateTimeCreated"));
    /// `item:LastModifiedTime`.
    pub const LAST_MODIFIED_TIME: FieldUri = FieldUri(Cow::Borrowed("item:LastModifiedTime"));
    /// `item:Categories`.
    pub const CATEGORIES: FieldUri = FieldUri(Cow::Borrowed("item:Categories"));
    /// `item:InReplyTo`.
    pub const IN_REPLY_TO: FieldUri = FieldUri(Cow::Borrowed("item:InReplyTo"));
    /// `item:ConversationId`.
    pub const CONVERSATION_ID: FieldUri = FieldUri(Cow::Borrowed("item:ConversationId"));
    /// `message:InternetMessageId`.
    pub const INTERNET_MESSAGE_ID: FieldUri = FieldUri(Cow::Borrowed("message:InternetMessageId"));
    /// `message:IsRead`.
    pub const IS_READ: FieldUri = FieldUri(Cow::Borrowed("message:IsRead"));
    /// `message:From`.
    pub const FROM: FieldUri = FieldUri(Cow::Borrowed("message:From"));
    /// `message:Sender`.
    pub const SENDER: FieldUri = FieldUri(Cow::Borrowed("message:Sender"));
    /// `message:ToRecipients`.
    pub const TO_RECIPIENTS: FieldUri = FieldUri(Cow::Borrowed("message:ToRecipients"));
    /// `message:CcRecipients`.
    pub const CC_RECIPIENTS: FieldUri = FieldUri(Cow::Borrowed("message:CcRecipients"));
    /// `message:BccRecipients`.
    pub const BCC_RECIPIENTS: FieldUri = FieldUri(Cow::Borrowed("message:BccRecipients"));
    /// `message:References`.
    pub const REFERENCES: FieldUri = FieldUri(Cow::Borrowed("message:References"));
    /// `calendar:UID`.
    pub const UID: FieldUri = FieldUri(Cow::Borrowed("calendar:UID"));
    /// `calendar:Start`.
    pub const START: FieldUri = FieldUri(Cow::Borrowed("calendar:Start"));
    /// `calendar:End`.
    pub const END: FieldUri = FieldUri(Cow::Borrowed("calendar:End"));
    /// `calendar:IsAllDayEvent`.
    pub const IS_ALL_DAY_EVENT: FieldUri = FieldUri(Cow::Borrowed("calendar:IsAllDayEvent"));
    /// `calendar:Location`.
    pub const LOCATION: FieldUri = FieldUri(Cow::Borrowed("calendar:Location"));
    /// `calendar:Organizer`.
    pub const ORGANIZER: FieldUri = FieldUri(Cow::Borrowed("calendar:Organizer"));
    /// `calendar:RequiredAttendees`.
    pub const REQUIRED_ATTENDEES: FieldUri = FieldUri(Cow::Borrowed("calendar:RequiredAttendees"));
    /// `calendar:IsMeeting`.
    pub const IS_MEETING: FieldUri = FieldUri(Cow::Borrowed("calendar:IsMeeting"));
    /// `calendar:IsCancelled`.
    pub const IS_CANCELLED: FieldUri = FieldUri(Cow::Borrowed("calendar:IsCancelled"));
    /// `calendar:IsRecurring`.
    pub const IS_RECURRING: FieldUri = FieldUri(Cow::Borrowed("calendar:IsRecurring"));
    /// `calendar:MeetingRequestWasSent`.
    pub const MEETING_REQUEST_WAS_SENT: FieldUri =
        FieldUri(Cow::Borrowed("calendar:MeetingRequestWasSent"));
    /// `calendar:CalendarItemType`.
    pub const CALENDAR_ITEM_TYPE: FieldUri = FieldUri(Cow::Borrowed("calendar:CalendarItemType"));
    /// `calendar:MyResponseType`.
    pub const MY_RESPONSE_TYPE: FieldUri = FieldUri(Cow::Borrowed("calendar:MyResponseType"));
    /// `calendar:Recurrence`.
    pub const RECURRENCE: FieldUri = FieldUri(Cow::Borrowed("calendar:Recurrence"));
    /// `contacts:GivenName`.
    pub const GIVEN_NAME: FieldUri = FieldUri(Cow::Borrowed("contacts:GivenName"));
    /// `contacts:Surname`.
    pub const SURNAME: FieldUri = FieldUri(Cow::Borrowed("contacts:Surname"));
    /// `contacts:DisplayName`.
    pub const DISPLAY_NAME: FieldUri = FieldUri(Cow::Borrowed("contacts:DisplayName"));
    /// `contacts:CompanyName`.
    pub const COMPANY_NAME: FieldUri = FieldUri(Cow::Borrowed("contacts:CompanyName"));
    /// `contacts:JobTitle`.
    pub const JOB_TITLE: FieldUri = FieldUri(Cow::Borrowed("contacts:JobTitle"));
    /// `contacts:EmailAddresses` (the whole dictionary, for shapes).
    pub const EMAIL_ADDRESSES: FieldUri = FieldUri(Cow::Borrowed("contacts:EmailAddresses"));
    /// `contacts:PhoneNumbers` (the whole dictionary, for shapes).
    pub const PHONE_NUMBERS: FieldUri = FieldUri(Cow::Borrowed("contacts:PhoneNumbers"));
    /// `item:Size`.
    pub const SIZE: FieldUri = FieldUri(Cow::Borrowed("item:Size"));
    /// `task:DueDate`.
    pub const DUE_DATE: FieldUri = FieldUri(Cow::Borrowed("task:DueDate"));
    /// `task:StartDate`.
    pub const START_DATE: FieldUri = FieldUri(Cow::Borrowed("task:StartDate"));
    /// `task:Status`.
    pub const STATUS: FieldUri = FieldUri(Cow::Borrowed("task:Status"));
    /// `task:PercentComplete`.
    pub const PERCENT_COMPLETE: FieldUri = FieldUri(Cow::Borrowed("task:PercentComplete"));
    /// `task:CompleteDate`.
    pub const COMPLETE_DATE: FieldUri = FieldUri(Cow::Borrowed("task:CompleteDate"));
    /// `folder:DisplayName`.
    pub const FOLDER_DISPLAY_NAME: FieldUri = FieldUri(Cow::Borrowed("folder:DisplayName"));

    /// Dictionary URI of contact e-mail addresses (use with [`FieldUri::indexed`]).
    pub const EMAIL_ADDRESS_DICTIONARY: &'static str = "contacts:EmailAddress";
    /// Dictionary URI of contact phone numbers (use with [`FieldUri::indexed`]).
    pub const PHONE_NUMBER_DICTIONARY: &'static str = "contacts:PhoneNumber";

    /// A field path from its FieldURI text.
    pub fn new(uri: impl Into<String>) -> Self {
        FieldUri(Cow::Owned(uri.into()))
    }

    /// An indexed path (`t:IndexedFieldURI`), e.g. (`contacts:EmailAddress`, `EmailAddress1`).
    pub fn indexed(uri: &str, index: &str) -> Self {
        FieldUri(Cow::Owned(format!("{uri}:{index}")))
    }

    /// The encoded path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The FieldURI and, for indexed paths, the FieldIndex.
    pub fn split_index(&self) -> (&str, Option<&str>) {
        let s = self.as_str();
        if super::extended::is_extended(s) {
            return (s, None);
        }
        match s.match_indices(':').nth(1) {
            Some((pos, _)) => (&s[..pos], Some(&s[pos + 1..])),
            None => (s, None),
        }
    }

    /// A path to an extended property (`t:ExtendedFieldURI`).
    pub fn extended(uri: &super::extended::ExtendedFieldUri) -> Self {
        uri.to_field_uri()
    }

    /// The extended property this path names, when it is a `t:ExtendedFieldURI`.
    pub fn as_extended(&self) -> Option<super::extended::ExtendedFieldUri> {
        super::extended::ExtendedFieldUri::from_field_uri(self)
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        if let Some(extended) = self.as_extended() {
            extended.write(w);
            return;
        }
        match self.split_index() {
            (uri, Some(index)) => {
                w.start("t:IndexedFieldURI")
                    .attr("FieldURI", uri)
                    .attr("FieldIndex", index)
                    .end();
            }
            (uri, None) => {
                w.start("t:FieldURI").attr("FieldURI", uri).end();
            }
        }
    }

    /// Read a `t:FieldURI`, `t:IndexedFieldURI` or `t:ExtendedFieldURI`; `None` for other elements.
    pub(crate) fn from_element(el: &Element) -> Result<Option<FieldUri>, WireError> {
        if el.namespace != TYPES_NS {
            return Ok(None);
        }
        match el.name.as_str() {
            "ExtendedFieldURI" => Ok(Some(
                super::extended::ExtendedFieldUri::from_element(el)?.to_field_uri(),
            )),
            "FieldURI" => Ok(Some(FieldUri::new(
                el.attr("FieldURI")
                    .ok_or(WireError::Missing("FieldURI/@FieldURI"))?,
            ))),
            "IndexedFieldURI" => {
                let uri = el
                    .attr("FieldURI")
                    .ok_or(WireError::Missing("IndexedFieldURI/@FieldURI"))?;
                let index = el
                    .attr("FieldIndex")
                    .ok_or(WireError::Missing("IndexedFieldURI/@FieldIndex"))?;
                Ok(Some(FieldUri::indexed(uri, index)))
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn first_in(parent: &Element) -> Result<Option<FieldUri>, WireError> {
        for c in &parent.children {
            if let Some(f) = FieldUri::from_element(c)? {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }
}

impl std::fmt::Display for FieldUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(extended) = self.as_extended() {
            return extended.fmt(f);
        }
        f.write_str(self.as_str())
    }
}

/// `ItemShape` (ItemResponseShapeType): which properties GetItem/FindItem/Sync return.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemShape {
    /// `t:BaseShape`.
    pub base_shape: BaseShape,
    /// `t:BodyType` (Text or HTML).
    pub body_type: Option<BodyType>,
    /// `t:AdditionalProperties`.
    pub additional_properties: Vec<FieldUri>,
}

impl ItemShape {
    /// A shape with only a base shape.
    pub fn new(base_shape: BaseShape) -> Self {
        ItemShape {
            base_shape,
            body_type: None,
            additional_properties: Vec::new(),
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, qname: &str) {
        w.start(qname);
        w.leaf("t:BaseShape", self.base_shape.as_str());
        if let Some(b) = self.body_type {
            w.leaf("t:BodyType", b.as_str());
        }
        write_properties(w, &self.additional_properties);
        w.end();
    }

    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        Ok(ItemShape {
            base_shape: el
                .child_text(TYPES_NS, "BaseShape")
                .ok_or(WireError::Missing("BaseShape"))?
                .parse()?,
            body_type: match el.child_text(TYPES_NS, "BodyType").map(str::trim) {
                None | Some("Best") => None,
                Some(b) => Some(b.parse()?),
            },
            additional_properties: read_properties(el)?,
        })
    }
}

pub(crate) fn write_properties(w: &mut XmlWriter, props: &[FieldUri]) {
    if !props.is_empty() {
        w.start("t:AdditionalProperties");
        for p in props {
            p.write(w);
        }
        w.end();
    }
}

pub(crate) fn read_properties(shape: &Element) -> Result<Vec<FieldUri>, WireError> {
    let mut out = Vec::new();
    if let Some(props) = shape.child(TYPES_NS, "AdditionalProperties") {
        for c in &props.children {
            if let Some(f) = FieldUri::from_element(c)? {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// A FindItem search condition (RestrictionType), the subset the sync uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    /// `t:IsEqualTo`.
    IsEqualTo(FieldUri, String),
    /// `t:IsGreaterThanOrEqualTo`.
    IsGreaterThanOrEqualTo(FieldUri, String),
    /// `t:IsGreaterThan`.
    IsGreaterThan(FieldUri, String),
    /// `t:IsLessThan`.
    IsLessThan(FieldUri, String),
    /// `t:And`.
    And(Vec<Restriction>),
    /// `t:Or`.
    Or(Vec<Restriction>),
}

impl Restriction {
    /// Write the search expression (without the `Restriction` wrapper).
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        let (qname, field, value) = match self {
            Restriction::IsEqualTo(f, v) => ("t:IsEqualTo", f, v),
            Restriction::IsGreaterThanOrEqualTo(f, v) => ("t:IsGreaterThanOrEqualTo", f, v),
            Restriction::IsGreaterThan(f, v) => ("t:IsGreaterThan", f, v),
            Restriction::IsLessThan(f, v) => ("t:IsLessThan", f, v),
            Restriction::And(parts) | Restriction::Or(parts) => {
                w.start(if matches!(self, Restriction::And(_)) {
                    "t:And"
                } else {
                    "t:Or"
                });
                for p in parts {
                    p.write(w);
                }
                w.end();
                return;
            }
        };
        w.start(qname);
        field.write(w);
        w.start("t:FieldURIOrConstant")
            .start("t:Constant")
            .attr("Value", value)
            .end()
            .end();
        w.end();
    }

    /// Read a search expression element.
    pub(crate) fn from_element(el: &Element) -> Result<Restriction, WireError> {
        if el.namespace != TYPES_NS {
            return Err(invalid("Restriction", &el.name));
        }
        let two = |el: &Element| -> Result<(FieldUri, String), WireError> {
            let field = FieldUri::first_in(el)?.ok_or(WireError::Missing("FieldURI"))?;
            let value = el
                .child(TYPES_NS, "FieldURIOrConstant")
                .and_then(|c| c.child(TYPES_NS, "Constant"))
                .and_then(|c| c.attr("Value"))
                .ok_or(WireError::Missing("FieldURIOrConstant/Constant/@Value"))?;
            Ok((field, value.to_owned()))
        };
        let many = |el: &Element| -> Result<Vec<Restriction>, WireError> {
            el.children.iter().map(Restriction::from_element).collect()
        };
        Ok(match el.name.as_str() {
            "IsEqualTo" => {
                let (f, v) = two(el)?;
                Restriction::IsEqualTo(f, v)
            }
            "IsGreaterThanOrEqualTo" => {
                let (f, v) = two(el)?;
                Restriction::IsGreaterThanOrEqualTo(f, v)
            }
            "IsGreaterThan" => {
                let (f, v) = two(el)?;
                Restriction::IsGreaterThan(f, v)
            }
            "IsLessThan" => {
                let (f, v) = two(el)?;
                Restriction::IsLessThan(f, v)
            }
            "And" => Restriction::And(many(el)?),
            "Or" => Restriction::Or(many(el)?),
            other => return Err(invalid("Restriction", other)),
        })
    }
}

/// `IndexedPageItemView` (IndexedPageViewType): one page of FindItem results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedPageView {
    /// `MaxEntriesReturned`.
    pub max_entries_returned: u32,
    /// `Offset`.
    pub offset: u32,
    /// `BasePoint`: Beginning (true) or End (false).
    pub base_point_beginning: bool,
}

impl IndexedPageView {
    pub(crate) fn write(&self, w: &mut XmlWriter, qname: &str) {
        w.start(qname)
            .attr("MaxEntriesReturned", &self.max_entries_returned.to_string())
            .attr("Offset", &self.offset.to_string())
            .attr(
                "BasePoint",
                if self.base_point_beginning {
                    "Beginning"
                } else {
                    "End"
                },
            )
            .end();
    }

    pub(crate) fn from_element(el: &Element) -> Result<Self, WireError> {
        Ok(IndexedPageView {
            max_entries_returned: el
                .attr("MaxEntriesReturned")
                .map(|v| parse_u32("MaxEntriesReturned", v))
                .transpose()?
                .unwrap_or(u32::MAX),
            offset: parse_u32(
                "Offset",
                el.attr("Offset").ok_or(WireError::Missing("@Offset"))?,
            )?,
            base_point_beginning: match el.attr("BasePoint").map(str::trim) {
                Some("Beginning") => true,
                Some("End") => false,
                Some(other) => return Err(invalid("BasePoint", other)),
                None => return Err(WireError::Missing("@BasePoint")),
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Operation attribute enums
// ---------------------------------------------------------------------------------------------

/// Declares a schema string enumeration with `as_str` and `FromStr`.
macro_rules! schema_enum {
    ($(#[$meta:meta])* $name:ident, $element:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// The schema value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = WireError;
            fn from_str(s: &str) -> Result<Self, WireError> {
                match s.trim() {
                    $($text => Ok($name::$variant),)*
                    other => Err(invalid($element, other)),
                }
            }
        }
    };
}

schema_enum! {
    /// `MessageDisposition` (MessageDispositionType): save, send, or both.
    MessageDisposition, "MessageDisposition" {
        /// Save in the target folder only.
        SaveOnly = "SaveOnly",
        /// Send without keeping a copy.
        SendOnly = "SendOnly",
        /// Send and keep a copy in Sent Items (or SavedItemFolderId).
        SendAndSaveCopy = "SendAndSaveCopy",
    }
}

schema_enum! {
    /// `SendMeetingInvitations` / `SendMeetingCancellations` (CalendarItemCreateOrDeleteOperationType).
    SendMeetingInvitations, "SendMeetingInvitations" {
        /// Tell nobody.
        SendToNone = "SendToNone",
        /// Tell every attendee, keep no copy.
        SendOnlyToAll = "SendOnlyToAll",
        /// Tell every attendee and keep a copy.
        SendToAllAndSaveCopy = "SendToAllAndSaveCopy",
    }
}

schema_enum! {
    /// `SendMeetingInvitationsOrCancellations` (CalendarItemUpdateOperationType).
    SendMeetingInvitationsOrCancellations, "SendMeetingInvitationsOrCancellations" {
        /// Tell nobody.
        SendToNone = "SendToNone",
        /// Tell every attendee.
        SendOnlyToAll = "SendOnlyToAll",
        /// Tell changed attendees only.
        SendOnlyToChanged = "SendOnlyToChanged",
        /// Tell every attendee and keep a copy.
        SendToAllAndSaveCopy = "SendToAllAndSaveCopy",
        /// Tell changed attendees and keep a copy.
        SendToChangedAndSaveCopy = "SendToChangedAndSaveCopy",
    }
}

schema_enum! {
    /// `ConflictResolution` (ConflictResolutionType): what UpdateItem does on a stale change key.
    ConflictResolution, "ConflictResolution" {
        /// Fail with ErrorIrresolvableConflict.
        NeverOverwrite = "NeverOverwrite",
        /// Merge when possible.
        AutoResolve = "AutoResolve",
        /// Overwrite the server's version.
        AlwaysOverwrite = "AlwaysOverwrite",
    }
}

schema_enum! {
    /// `DeleteType` (DisposalType).
    DeleteType, "DeleteType" {
        /// Gone for good.
        HardDelete = "HardDelete",
        /// Into the dumpster (recoverable items).
        SoftDelete = "SoftDelete",
        /// Into Deleted Items.
        MoveToDeletedItems = "MoveToDeletedItems",
    }
}

schema_enum! {
    /// `AffectedTaskOccurrences` (AffectedTaskOccurrencesType).
    AffectedTaskOccurrences, "AffectedTaskOccurrences" {
        /// The whole recurring task.
        AllOccurrences = "AllOccurrences",
        /// Only the given occurrence.
        SpecifiedOccurrenceOnly = "SpecifiedOccurrenceOnly",
    }
}

schema_enum! {
    /// FindItem `Traversal` (ItemQueryTraversalType).
    Traversal, "Traversal" {
        /// Items directly in the folder.
        Shallow = "Shallow",
        /// Soft-deleted items.
        SoftDeleted = "SoftDeleted",
        /// Folder-associated items.
        Associated = "Associated",
    }
}

schema_enum! {
    /// `t:CalendarItemType` (CalendarItemTypeType): what kind of calendar item this is.
    CalendarItemKind, "CalendarItemType" {
        /// A single appointment or meeting.
        Single = "Single",
        /// One occurrence of a series.
        Occurrence = "Occurrence",
        /// A changed occurrence of a series.
        Exception = "Exception",
        /// The series itself (SyncFolderItems reports masters, not occurrences).
        RecurringMaster = "RecurringMaster",
    }
}

schema_enum! {
    /// `t:MyResponseType` / `t:ResponseType` (ResponseTypeType): the mailbox's role or answer.
    ResponseType, "ResponseType" {
        /// Not known.
        Unknown = "Unknown",
        /// The mailbox organises the meeting.
        Organizer = "Organizer",
        /// Tentatively accepted.
        Tentative = "Tentative",
        /// Accepted.
        Accept = "Accept",
        /// Declined.
        Decline = "Decline",
        /// Invited, no answer yet.
        NoResponseReceived = "NoResponseReceived",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::TYPES_NS;
    use crate::xml::{parse, XmlLimits};
    use chrono::TimeZone;

    fn roundtrip(item: &Item) -> Item {
        let mut w = XmlWriter::new();
        w.start("t:Items").attr("xmlns:t", TYPES_NS);
        item.write(&mut w);
        let xml = w.finish();
        let root = parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        let mut items = Item::all_in(&root).unwrap();
        assert_eq!(items.len(), 1, "{xml}");
        items.remove(0)
    }

    #[test]
    fn every_item_kind_round_trips() {
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 10, 30, 0).unwrap();
        let base = ItemBase {
            item_id: Some(ItemId::with_change_key("AAMk=", "CQAA")),
            parent_folder_id: Some(FolderId::new("inbox-id")),
            item_class: Some("IPM.Note".into()),
            subject: Some("Q1 <numbers> & \"plans\"".into()),
            body: Some(Body {
                body_type: BodyType::Html,
                content: "<p>hi</p>".into(),
            }),
            date_time_received: Some(t),
            size: Some(1234),
            categories: vec!["Red".into(), "Blue".into()],
            in_reply_to: Some("<a@b>".into()),
            date_time_sent: Some(t),
            date_time_created: Some(t),
            last_modified_time: Some(t),
            conversation_id: Some("conv".into()),
            other_elements: Vec::new(),
            extended_properties: vec![crate::extended::ExtendedProperty::new(
                crate::extended::ExtendedFieldUri::tagged("0x1035", "String"),
                "<a@b>",
            )],
        };
        let items = [
            Item::Message(Message {
                base: base.clone(),
                sender: Some(EmailAddress::new(Some("Ann"), "ann@x.test")),
                to_recipients: vec![EmailAddress::new(None, "bob@x.test")],
                cc_recipients: vec![EmailAddress::new(Some("C"), "c@x.test")],
                bcc_recipients: vec![EmailAddress::new(None, "d@x.test")],
                from: Some(EmailAddress::new(Some("Ann"), "ann@x.test")),
                internet_message_id: Some("<m1@x.test>".into()),
                is_read: Some(false),
                references: Some("<r@x>".into()),
            }),
            Item::CalendarItem(CalendarItem {
                base: base.clone(),
                uid: Some("uid-1".into()),
                start: Some(t),
                end: Some(t + chrono::Duration::hours(1)),
                is_all_day_event: Some(false),
                location: Some("Room 1".into()),
                organizer: Some(EmailAddress::new(Some("Ann"), "ann@x.test")),
                required_attendees: vec![EmailAddress::new(None, "bob@x.test")],
                is_meeting: Some(true),
                is_cancelled: Some(false),
                is_recurring: Some(true),
                meeting_request_was_sent: Some(true),
                calendar_item_type: Some(CalendarItemKind::RecurringMaster),
                my_response_type: Some(ResponseType::Organizer),
                recurrence: Some(crate::recurrence::Recurrence {
                    pattern: crate::recurrence::RecurrencePattern::Weekly {
                        interval: 1,
                        days_of_week: vec![crate::recurrence::DayOfWeek::Friday],
                        first_day_of_week: None,
                    },
                    range: crate::recurrence::RecurrenceRange::Numbered {
                        start_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
                        occurrences: 4,
                    },
                }),
            }),
            Item::Contact(Contact {
                base: base.clone(),
                display_name: Some("Bob B".into()),
                given_name: Some("Bob".into()),
                surname: Some("B".into()),
                company_name: Some("ACME".into()),
                email_addresses: vec![("EmailAddress1".into(), "bob@x.test".into())],
                phone_numbers: vec![("MobilePhone".into(), "+1 555".into())],
                job_title: Some("Boss".into()),
            }),
            Item::Task(Task {
                base,
                due_date: Some(t),
                start_date: Some(t),
                status: Some(TaskStatus::InProgress),
                percent_complete: Some(50.0),
                complete_date: None,
            }),
        ];
        for item in &items {
            assert_eq!(&roundtrip(item), item);
        }
    }

    #[test]
    fn field_uris_encode_indexed_paths() {
        let f = FieldUri::indexed(FieldUri::EMAIL_ADDRESS_DICTIONARY, "EmailAddress1");
        assert_eq!(
            f.split_index(),
            ("contacts:EmailAddress", Some("EmailAddress1"))
        );
        assert_eq!(FieldUri::SUBJECT.split_index(), ("item:Subject", None));
    }

    #[test]
    fn times_parse_with_and_without_offset() {
        let want = Utc.with_ymd_and_hms(2006, 10, 28, 1, 37, 5).unwrap();
        assert_eq!(parse_time("x", "2006-10-28T01:37:05Z").unwrap(), want);
        assert_eq!(parse_time("x", "2006-10-28T03:37:05+02:00").unwrap(), want);
        assert_eq!(parse_time("x", "2006-10-28T01:37:05").unwrap(), want);
        assert!(parse_time("x", "yesterday").is_err());
        assert_eq!(format_time(&want), "2006-10-28T01:37:05Z");
        let fractional = want + chrono::Duration::nanoseconds(999_999_999);
        assert_eq!(format_time(&fractional), "2006-10-28T01:37:05Z");
        assert_eq!(whole_seconds(fractional), want);
    }

    #[test]
    fn distinguished_names_round_trip() {
        for n in DistinguishedFolderName::ALL {
            assert_eq!(n.as_str().parse::<DistinguishedFolderName>().unwrap(), n);
        }
        assert!("nowhere".parse::<DistinguishedFolderName>().is_err());
    }
}

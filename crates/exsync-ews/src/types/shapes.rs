//! Shapes, field paths, restrictions and paging: what a request asks for.

use super::*;

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
        if crate::extended::is_extended(s) {
            return (s, None);
        }
        match s.match_indices(':').nth(1) {
            Some((pos, _)) => (&s[..pos], Some(&s[pos + 1..])),
            None => (s, None),
        }
    }

    /// A path to an extended property (`t:ExtendedFieldURI`).
    pub fn extended(uri: &crate::extended::ExtendedFieldUri) -> Self {
        uri.to_field_uri()
    }

    /// The extended property this path names, when it is a `t:ExtendedFieldURI`.
    pub fn as_extended(&self) -> Option<crate::extended::ExtendedFieldUri> {
        crate::extended::ExtendedFieldUri::from_field_uri(self)
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
                crate::extended::ExtendedFieldUri::from_element(el)?.to_field_uri(),
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

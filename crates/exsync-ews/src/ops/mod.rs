//! EWS operations (messages.xsd), one module per operation, and what they share: writing and
//! reading response-message envelopes, request-side errors, and server-side dispatch.
//!
//! Owns the `m:` layer. Client code calls `XRequest::to_xml` and `XResponse::parse`; the fake
//! server calls [`parse_request`] and `XResponse::to_xml` / [`error_response_xml`]. Nothing here
//! does I/O.

use std::time::Duration;

use super::error::EwsError;
use super::soap::{
    back_off_from, response_envelope, write_message_xml, HeaderError, RequestHeader, SoapError,
    MESSAGES_NS,
};
use super::types::{ResponseClass, ResponseCode, ResponseMessage, WireError};
use super::xml::{Element, XmlLimits, XmlWriter};

pub mod create_item;
pub mod delete_item;
pub mod find_item;
pub mod get_folder;
pub mod get_item;
pub mod meeting_response;
mod schema_names;
mod strict;
pub mod sync_folder_hierarchy;
pub mod sync_folder_items;
pub mod update_item;

pub use create_item::{CreateItemRequest, CreateItemResponse};
pub use delete_item::{DeleteItemRequest, DeleteItemResponse};
pub use find_item::{FindItemRequest, FindItemResponse, FindItemResult};
pub use get_folder::{GetFolderRequest, GetFolderResponse};
pub use get_item::{GetItemRequest, GetItemResponse};
pub use meeting_response::{MeetingAnswer, MeetingResponse, MeetingResponseRequest};
pub use sync_folder_hierarchy::{
    FolderChange, SyncFolderHierarchyRequest, SyncFolderHierarchyResponse,
    SyncFolderHierarchyResult,
};
pub use sync_folder_items::{
    MaxChangesReturned, SyncFolderItemsRequest, SyncFolderItemsResponse, SyncFolderItemsResult,
    SyncItemChange, SyncScope,
};
pub use update_item::{
    ItemChange, ItemUpdate, UpdateItemRequest, UpdateItemResponse, UpdateItemResult,
};

/// Why a request could not be read (the fake answers ErrorSchemaValidation or ErrorInvalidRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not a SOAP envelope, not well-formed, or over a limit.
    #[error("request is not a readable SOAP envelope: {0}")]
    Envelope(#[from] SoapError),
    /// The body holds no operation element.
    #[error("request body is empty")]
    EmptyBody,
    /// The body holds an operation this codec does not implement.
    #[error("unsupported EWS operation {0}")]
    UnknownOperation(String),
    /// A different operation element than the one being read.
    #[error("expected {expected}, found {found}")]
    WrongOperation {
        /// The operation being read.
        expected: &'static str,
        /// What the body held.
        found: String,
    },
    /// A required element is missing or a value is outside its schema type.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// `RequestServerVersion` names no version this server accepts.
    #[error("the specified server version is invalid: '{0}'")]
    InvalidServerVersion(String),
    /// The operation element breaks the schema: an element out of order, unknown, repeated or
    /// missing, or a value outside its enumeration.
    #[error("The request failed schema validation: {0}")]
    Schema(String),
}

impl From<HeaderError> for RequestError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::InvalidServerVersion(v) => RequestError::InvalidServerVersion(v),
            HeaderError::Wire(w) => RequestError::Wire(w),
        }
    }
}

impl RequestError {
    /// The EWS response code the server answers this with.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            RequestError::UnknownOperation(_) => ResponseCode::ERROR_INVALID_REQUEST,
            RequestError::InvalidServerVersion(_) => ResponseCode::ERROR_INVALID_SERVER_VERSION,
            _ => ResponseCode::ERROR_SCHEMA_VALIDATION,
        }
    }

    /// The SOAP fault Exchange answers an unreadable request with (HTTP 500).
    pub fn to_fault(&self) -> super::soap::SoapFault {
        super::soap::SoapFault::for_code(self.response_code(), &self.to_string())
    }
}

/// The operation element in `body`: `body` itself, or its child when `body` is `soap:Body`.
pub(crate) fn op_element<'a>(
    body: &'a Element,
    op: &'static str,
) -> Result<&'a Element, RequestError> {
    let el = if body.name == "Body" && body.namespace != MESSAGES_NS {
        body.children.first().ok_or(RequestError::EmptyBody)?
    } else {
        body
    };
    if el.namespace == MESSAGES_NS && el.name == op {
        Ok(el)
    } else {
        Err(RequestError::WrongOperation {
            expected: op,
            found: super::error::excerpt(&el.name),
        })
    }
}

/// Read a required `m:` child.
pub(crate) fn m_child<'a>(el: &'a Element, name: &'static str) -> Result<&'a Element, WireError> {
    el.child(MESSAGES_NS, name).ok_or(WireError::Missing(name))
}

/// An optional attribute parsed into a schema enum.
pub(crate) fn opt_attr<T: std::str::FromStr<Err = WireError>>(
    el: &Element,
    name: &str,
) -> Result<Option<T>, WireError> {
    el.attr(name).map(str::parse).transpose()
}

/// A whole response envelope: `m:{op}Response/m:ResponseMessages/m:{op}ResponseMessage*`;
/// `payload` writes each message's elements after the common ones (it gets `None` on errors).
pub(crate) fn write_response<T>(
    op: &str,
    messages: &[ResponseMessage<T>],
    payload: impl Fn(&mut XmlWriter, Option<&T>),
) -> String {
    response_envelope(|w| {
        w.start(&format!("m:{op}Response"));
        w.start("m:ResponseMessages");
        for message in messages {
            w.start(&format!("m:{op}ResponseMessage"))
                .attr("ResponseClass", message.class.as_str());
            if let Some(text) = &message.message_text {
                w.leaf("m:MessageText", text);
            }
            w.leaf("m:ResponseCode", message.code.as_str());
            if let Some(back_off) = message.back_off {
                write_message_xml(w, "m:MessageXml", back_off);
            }
            payload(w, message.payload.as_ref());
            w.end();
        }
        w.end();
        w.end();
    })
}

/// Read a response envelope for `op`; faults and unreadable replies become the matching [`EwsError`].
pub(crate) fn parse_response<T>(
    bytes: &[u8],
    limits: &XmlLimits,
    op: &str,
    payload: impl Fn(&Element) -> Result<T, WireError>,
) -> Result<Vec<ResponseMessage<T>>, EwsError> {
    // The excerpt names what was wrong, then what was received (bounded to 200 characters).
    let envelope = super::soap::parse_envelope(bytes, limits).map_err(|e| EwsError::Malformed {
        excerpt: super::error::excerpt(&format!(
            "{e}; received: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(400)])
        )),
    })?;
    if let Some(fault) = envelope.fault() {
        return Err(fault.into_error());
    }
    let response_name = format!("{op}Response");
    let response = envelope
        .body
        .children
        .iter()
        .find(|c| c.namespace == MESSAGES_NS && c.name == response_name)
        .ok_or_else(|| EwsError::Malformed {
            excerpt: format!("SOAP body without m:{response_name}"),
        })?;
    let list = response
        .child(MESSAGES_NS, "ResponseMessages")
        .ok_or_else(|| EwsError::Malformed {
            excerpt: "response without m:ResponseMessages".into(),
        })?;
    let mut out = Vec::new();
    for message in list.children.iter().filter(|c| c.namespace == MESSAGES_NS) {
        let class: ResponseClass = message
            .attr("ResponseClass")
            .ok_or(WireError::Missing("@ResponseClass"))?
            .parse()?;
        let code = match message.child_text(MESSAGES_NS, "ResponseCode") {
            Some(c) => ResponseCode::new(c.trim()),
            None if class == ResponseClass::Error => ResponseCode::ERROR_INTERNAL_SERVER_ERROR,
            None => ResponseCode::NO_ERROR,
        };
        // A Warning with an error code reports an item Exchange did not process: no content.
        let payload = if class == ResponseClass::Error
            || (class == ResponseClass::Warning && !code.is_no_error())
        {
            None
        } else {
            Some(payload(message)?)
        };
        out.push(ResponseMessage {
            class,
            code,
            message_text: message
                .child_text(MESSAGES_NS, "MessageText")
                .map(str::to_owned),
            back_off: back_off_from(message.child(MESSAGES_NS, "MessageXml")),
            payload,
        });
    }
    Ok(out)
}

impl<T> ResponseMessage<T> {
    /// The error this message reports: an Error-class message, or a Warning with an error code
    /// (Warning is not success: ErrorBatchProcessingStopped means "not processed", see
    /// ResponseClassType in the EWS reference).
    pub fn to_error(&self) -> Option<EwsError> {
        let failed = match self.class {
            ResponseClass::Error => true,
            ResponseClass::Warning => !self.code.is_no_error(),
            ResponseClass::Success => false,
        };
        failed.then(|| {
            EwsError::from_response_code(
                &self.code,
                self.message_text.as_deref(),
                self.back_off,
                None,
            )
        })
    }

    /// The payload, or the error this message reports.
    pub fn result(&self) -> Result<&T, EwsError> {
        if let Some(e) = self.to_error() {
            return Err(e);
        }
        self.payload.as_ref().ok_or_else(|| EwsError::Malformed {
            excerpt: format!("{} response message without content", self.code),
        })
    }
}

/// The first message's payload, or the error it (or its absence) means.
pub(crate) fn first_payload<T>(messages: &[ResponseMessage<T>]) -> Result<&T, EwsError> {
    messages
        .first()
        .ok_or_else(|| EwsError::Malformed {
            excerpt: "response without any response message".into(),
        })?
        .result()
}

/// Write the `m:Items` element of an ItemInfo message (required by the schema, even when empty).
pub(crate) fn write_items(w: &mut XmlWriter, items: Option<&Vec<super::types::Item>>) {
    w.start("m:Items");
    for item in items.into_iter().flatten() {
        item.write(w);
    }
    w.end();
}

/// Read `m:Items` of an ItemInfo message.
pub(crate) fn read_items(message: &Element) -> Result<Vec<super::types::Item>, WireError> {
    match message.child(MESSAGES_NS, "Items") {
        Some(items) => super::types::Item::all_in(items),
        None => Ok(Vec::new()),
    }
}

/// A whole, schema-valid response for `operation` with one Error-class message: how Exchange
/// reports ErrorServerBusy with HTTP 200, ErrorImpersonateUserDenied, ErrorNonExistentMailbox, ….
pub fn error_response_xml(
    operation: &str,
    code: &ResponseCode,
    text: &str,
    back_off: Option<Duration>,
) -> String {
    let message: ResponseMessage<()> = ResponseMessage {
        class: ResponseClass::Error,
        code: code.clone(),
        message_text: Some(text.to_owned()),
        back_off,
        payload: None,
    };
    let item_info = matches!(operation, "GetItem" | "CreateItem" | "UpdateItem");
    write_response(operation, std::slice::from_ref(&message), |w, _| {
        if item_info {
            write_items(w, None);
        }
    })
}

/// Every request the codec reads, for the server side to dispatch on.
#[derive(Debug, Clone, PartialEq)]
pub enum EwsRequest {
    /// GetFolder.
    GetFolder(GetFolderRequest),
    /// SyncFolderHierarchy.
    SyncFolderHierarchy(SyncFolderHierarchyRequest),
    /// SyncFolderItems.
    SyncFolderItems(SyncFolderItemsRequest),
    /// GetItem.
    GetItem(GetItemRequest),
    /// FindItem.
    FindItem(FindItemRequest),
    /// CreateItem.
    CreateItem(CreateItemRequest),
    /// UpdateItem.
    UpdateItem(UpdateItemRequest),
    /// DeleteItem.
    DeleteItem(DeleteItemRequest),
    /// CreateItem carrying meeting response objects (AcceptItem, DeclineItem, …).
    MeetingResponse(MeetingResponseRequest),
}

/// The operation names [`parse_request`] understands (also the SOAPAction suffixes).
pub const OPERATIONS: [&str; 8] = [
    "GetFolder",
    "SyncFolderHierarchy",
    "SyncFolderItems",
    "GetItem",
    "FindItem",
    "CreateItem",
    "UpdateItem",
    "DeleteItem",
];

impl EwsRequest {
    /// The EWS operation name (element name, SOAPAction suffix, response prefix).
    pub fn operation_name(&self) -> &'static str {
        match self {
            EwsRequest::GetFolder(_) => "GetFolder",
            EwsRequest::SyncFolderHierarchy(_) => "SyncFolderHierarchy",
            EwsRequest::SyncFolderItems(_) => "SyncFolderItems",
            EwsRequest::GetItem(_) => "GetItem",
            EwsRequest::FindItem(_) => "FindItem",
            EwsRequest::CreateItem(_) => "CreateItem",
            EwsRequest::UpdateItem(_) => "UpdateItem",
            EwsRequest::DeleteItem(_) => "DeleteItem",
            EwsRequest::MeetingResponse(_) => "CreateItem",
        }
    }

    /// The whole request envelope (whichever operation this is).
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        match self {
            EwsRequest::GetFolder(r) => r.to_xml(header),
            EwsRequest::SyncFolderHierarchy(r) => r.to_xml(header),
            EwsRequest::SyncFolderItems(r) => r.to_xml(header),
            EwsRequest::GetItem(r) => r.to_xml(header),
            EwsRequest::FindItem(r) => r.to_xml(header),
            EwsRequest::CreateItem(r) => r.to_xml(header),
            EwsRequest::UpdateItem(r) => r.to_xml(header),
            EwsRequest::DeleteItem(r) => r.to_xml(header),
            EwsRequest::MeetingResponse(r) => r.to_xml(header),
        }
    }
}

/// Server side: read a whole request envelope into its header and operation, strictly: an
/// unknown `RequestServerVersion` is [`RequestError::InvalidServerVersion`], an operation that
/// breaks the schema (order, unknown elements, enumerations) [`RequestError::Schema`].
pub fn parse_request(
    bytes: &[u8],
    limits: &XmlLimits,
) -> Result<(RequestHeader, EwsRequest), RequestError> {
    let envelope = super::soap::parse_envelope(bytes, limits)?;
    let header = RequestHeader::from_header(envelope.header.as_ref())?;
    let op = envelope
        .body
        .children
        .first()
        .ok_or(RequestError::EmptyBody)?;
    if op.namespace != MESSAGES_NS {
        return Err(RequestError::UnknownOperation(super::error::excerpt(
            &op.name,
        )));
    }
    // Exchange validates every request against its schema before reading it.
    strict::check_operation(op).map_err(RequestError::Schema)?;
    let request = match op.name.as_str() {
        "GetFolder" => EwsRequest::GetFolder(GetFolderRequest::from_body(op)?),
        "SyncFolderHierarchy" => {
            EwsRequest::SyncFolderHierarchy(SyncFolderHierarchyRequest::from_body(op)?)
        }
        "SyncFolderItems" => EwsRequest::SyncFolderItems(SyncFolderItemsRequest::from_body(op)?),
        "GetItem" => EwsRequest::GetItem(GetItemRequest::from_body(op)?),
        "FindItem" => EwsRequest::FindItem(FindItemRequest::from_body(op)?),
        "CreateItem" if MeetingResponseRequest::holds_responses(op) => {
            EwsRequest::MeetingResponse(MeetingResponseRequest::from_body(op)?)
        }
        "CreateItem" => EwsRequest::CreateItem(CreateItemRequest::from_body(op)?),
        "UpdateItem" => EwsRequest::UpdateItem(UpdateItemRequest::from_body(op)?),
        "DeleteItem" => EwsRequest::DeleteItem(DeleteItemRequest::from_body(op)?),
        other => return Err(RequestError::UnknownOperation(super::error::excerpt(other))),
    };
    Ok((header, request))
}

impl From<WireError> for EwsError {
    fn from(e: WireError) -> Self {
        EwsError::Malformed {
            excerpt: super::error::excerpt(&e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{ExchangeVersion, SOAP_NS};
    use crate::test_support::check_soap;
    use crate::types::{
        BaseFolderId, BaseShape, ConflictResolution, DeleteType, DistinguishedFolderName, FieldUri,
        Item, ItemId, ItemShape, Message, Traversal,
    };

    fn every_request() -> Vec<EwsRequest> {
        let inbox = BaseFolderId::distinguished(DistinguishedFolderName::Inbox);
        vec![
            EwsRequest::GetFolder(GetFolderRequest {
                folder_shape: BaseShape::Default,
                additional_properties: vec![],
                folder_ids: vec![inbox.clone()],
            }),
            EwsRequest::SyncFolderHierarchy(SyncFolderHierarchyRequest {
                folder_shape: BaseShape::IdOnly,
                additional_properties: vec![],
                sync_folder_id: None,
                sync_state: None,
            }),
            EwsRequest::SyncFolderItems(SyncFolderItemsRequest {
                item_shape: ItemShape::new(BaseShape::IdOnly),
                sync_folder_id: inbox.clone(),
                sync_state: None,
                ignore: vec![],
                max_changes_returned: MaxChangesReturned::MAX,
                sync_scope: None,
            }),
            EwsRequest::GetItem(GetItemRequest {
                item_shape: ItemShape::new(BaseShape::AllProperties),
                item_ids: vec![ItemId::new("i")],
            }),
            EwsRequest::FindItem(FindItemRequest {
                traversal: Traversal::Shallow,
                item_shape: ItemShape::new(BaseShape::IdOnly),
                page: None,
                restriction: None,
                parent_folder_ids: vec![inbox],
            }),
            EwsRequest::CreateItem(CreateItemRequest {
                items: vec![Item::Message(Message::default())],
                ..CreateItemRequest::default()
            }),
            EwsRequest::UpdateItem(UpdateItemRequest {
                conflict_resolution: ConflictResolution::AutoResolve,
                message_disposition: None,
                send_meeting_invitations_or_cancellations: None,
                item_changes: vec![ItemChange {
                    item_id: ItemId::with_change_key("i", "c"),
                    updates: vec![ItemUpdate::DeleteItemField(FieldUri::CATEGORIES)],
                }],
            }),
            EwsRequest::DeleteItem(DeleteItemRequest {
                delete_type: DeleteType::SoftDelete,
                send_meeting_cancellations: None,
                affected_task_occurrences: None,
                item_ids: vec![ItemId::new("i")],
            }),
        ]
    }

    #[test]
    fn every_operation_dispatches_with_its_header() {
        let header = RequestHeader::impersonating(ExchangeVersion::Exchange2016, "u@contoso.test");
        let requests = every_request();
        assert_eq!(
            requests
                .iter()
                .map(EwsRequest::operation_name)
                .collect::<Vec<_>>(),
            OPERATIONS
        );
        for request in requests {
            let xml = request.to_xml(&header);
            check_soap(&xml);
            let (h, r) = parse_request(xml.as_bytes(), &XmlLimits::default()).unwrap();
            assert_eq!(h, header);
            assert_eq!(r, request);
        }
    }

    #[test]
    fn error_responses_are_schema_valid_for_every_operation_and_read_back() {
        for op in OPERATIONS {
            let xml = error_response_xml(
                op,
                &ResponseCode::ERROR_SERVER_BUSY,
                "The server cannot service this request right now. Try again later.",
                Some(Duration::from_millis(1500)),
            );
            check_soap(&xml);
            let messages =
                parse_response(xml.as_bytes(), &XmlLimits::default(), op, |_| Ok(())).unwrap();
            assert!(matches!(
                first_payload(&messages),
                Err(EwsError::ServerBusy { back_off }) if back_off.as_millis() == 1500
            ));
        }
        let xml = error_response_xml(
            "GetFolder",
            &ResponseCode::ERROR_IMPERSONATE_USER_DENIED,
            "The account does not have permission to impersonate the requested user.",
            None,
        );
        let resp = GetFolderResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(matches!(
            resp.first(),
            Err(EwsError::ImpersonationDenied { .. })
        ));
    }

    #[test]
    fn requests_are_read_strictly_and_responses_tolerantly() {
        // Unusual prefixes are fine on both sides.
        let in_order = r#"<x:Envelope xmlns:x="http://schemas.xmlsoap.org/soap/envelope/"
              xmlns:ns1="http://schemas.microsoft.com/exchange/services/2006/messages"
              xmlns:ns2="http://schemas.microsoft.com/exchange/services/2006/types">
          <x:Header><ns2:RequestServerVersion Version="Exchange2013_SP1"/></x:Header>
          <x:Body>
            <ns1:SyncFolderItems>
              <ns1:ItemShape><ns2:BaseShape>IdOnly</ns2:BaseShape></ns1:ItemShape>
              <ns1:SyncFolderId><ns2:DistinguishedFolderId Id="calendar"/></ns1:SyncFolderId>
              <ns1:MaxChangesReturned> 25 </ns1:MaxChangesReturned>
            </ns1:SyncFolderItems>
          </x:Body>
        </x:Envelope>"#;
        let (header, request) = parse_request(in_order.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(header, RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
        let EwsRequest::SyncFolderItems(r) = request else {
            panic!("wrong operation")
        };
        assert_eq!(r.max_changes_returned.get(), 25);
        assert_eq!(
            r.sync_folder_id,
            BaseFolderId::distinguished(DistinguishedFolderName::Calendar)
        );
        assert_eq!(r.item_shape, ItemShape::new(BaseShape::IdOnly));
        // A request out of schema order, or with an element the schema lacks, is refused the
        // way Exchange refuses it: ErrorSchemaValidation.
        let shape = "<ns1:ItemShape><ns2:BaseShape>IdOnly</ns2:BaseShape></ns1:ItemShape>";
        let max = "<ns1:MaxChangesReturned> 25 </ns1:MaxChangesReturned>";
        for broken in [
            in_order
                .replace(shape, "")
                .replace(max, &format!("{max}{shape}")),
            in_order.replace(max, &format!("<ns1:SomethingNewer/>{max}")),
        ] {
            let err = parse_request(broken.as_bytes(), &XmlLimits::default()).unwrap_err();
            assert!(matches!(err, RequestError::Schema(_)), "{err}");
            assert_eq!(err.response_code(), ResponseCode::ERROR_SCHEMA_VALIDATION);
        }

        let response = r#"<a:Envelope xmlns:a="http://schemas.xmlsoap.org/soap/envelope/"><a:Body>
          <r:GetItemResponse xmlns:r="http://schemas.microsoft.com/exchange/services/2006/messages"
                             xmlns:q="http://schemas.microsoft.com/exchange/services/2006/types">
            <r:ResponseMessages><r:GetItemResponseMessage ResponseClass="Success">
              <r:Items><q:Message>
                <q:IsRead>true</q:IsRead>
                <q:Subject>late subject</q:Subject>
                <q:Future><q:Nested/></q:Future>
                <q:ItemId Id="i1" ChangeKey="c1"/>
              </q:Message></r:Items>
              <r:ResponseCode>NoError</r:ResponseCode>
            </r:GetItemResponseMessage></r:ResponseMessages>
          </r:GetItemResponse></a:Body></a:Envelope>"#;
        let resp = GetItemResponse::parse(response.as_bytes(), &XmlLimits::default()).unwrap();
        let Item::Message(m) = &resp.first().unwrap()[0] else {
            panic!("not a message")
        };
        assert_eq!(m.is_read, Some(true));
        assert_eq!(m.base.subject.as_deref(), Some("late subject"));
        assert_eq!(m.base.item_id, Some(ItemId::with_change_key("i1", "c1")));
    }

    #[test]
    fn exchange_schema_validation_fault_is_a_permanent_request_error() {
        // The fault shape Exchange returns (HTTP 500) for a request that breaks the schema.
        let fault = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Body>
    <s:Fault>
      <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorSchemaValidation</faultcode>
      <faultstring xml:lang="en-US">The request failed schema validation: The element 'GetItem' in namespace 'http://schemas.microsoft.com/exchange/services/2006/messages' has invalid child element 'ItemIds'.</faultstring>
      <detail>
        <e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorSchemaValidation</e:ResponseCode>
        <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The request failed schema validation.</e:Message>
        <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
          <t:LineNumber>2</t:LineNumber>
          <t:LinePosition>630</t:LinePosition>
          <t:Violation>The element 'GetItem' has invalid child element 'ItemIds'.</t:Violation>
        </t:MessageXml>
      </detail>
    </s:Fault>
  </s:Body>
</s:Envelope>"#;
        let err = GetItemResponse::parse(fault.as_bytes(), &XmlLimits::default()).unwrap_err();
        assert!(matches!(&err, EwsError::Request { code, .. } if code == "ErrorSchemaValidation"));
        assert_eq!(err.kind(), crate::error::ErrorKind::Permanent);
        let back = RequestError::EmptyBody.to_fault();
        assert_eq!(
            back.response_code,
            Some(ResponseCode::ERROR_SCHEMA_VALIDATION)
        );
    }

    #[test]
    fn unknown_or_broken_requests_name_their_response_code() {
        let unknown = format!(
            r#"<s:Envelope xmlns:s="{SOAP_NS}"><s:Body><ResolveNames xmlns="{MESSAGES_NS}"/></s:Body></s:Envelope>"#
        );
        let err = parse_request(unknown.as_bytes(), &XmlLimits::default()).unwrap_err();
        assert!(matches!(err, RequestError::UnknownOperation(ref n) if n == "ResolveNames"));
        assert_eq!(err.response_code(), ResponseCode::ERROR_INVALID_REQUEST);

        let missing = format!(
            r#"<s:Envelope xmlns:s="{SOAP_NS}"><s:Body><GetItem xmlns="{MESSAGES_NS}"/></s:Body></s:Envelope>"#
        );
        let err = parse_request(missing.as_bytes(), &XmlLimits::default()).unwrap_err();
        assert_eq!(err.response_code(), ResponseCode::ERROR_SCHEMA_VALIDATION);

        let bad_version = format!(
            r#"<s:Envelope xmlns:s="{SOAP_NS}" xmlns:t="{}"><s:Header><t:RequestServerVersion Version="Exchange2099"/></s:Header><s:Body/></s:Envelope>"#,
            crate::soap::TYPES_NS
        );
        let err = parse_request(bad_version.as_bytes(), &XmlLimits::default()).unwrap_err();
        assert_eq!(
            err.response_code(),
            ResponseCode::ERROR_INVALID_SERVER_VERSION
        );

        for junk in [&b"not xml"[..], b"<a/>", b"<!DOCTYPE x><a/>"] {
            let err = parse_request(junk, &XmlLimits::default()).unwrap_err();
            assert!(matches!(err, RequestError::Envelope(_)));
        }
    }
}

#[cfg(test)]
mod hostile_input {
    use super::*;

    /// A tiny deterministic generator, so failures reproduce.
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn mutated_responses_and_requests_never_panic() {
        let valid = SyncFolderItemsResponse {
            messages: vec![ResponseMessage::success(SyncFolderItemsResult {
                sync_state: "s".into(),
                includes_last_item_in_range: true,
                changes: vec![SyncItemChange::Delete(crate::types::ItemId::new("x"))],
            })],
        }
        .to_xml()
        .into_bytes();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut bytes = valid.clone();
            for _ in 0..(next(&mut seed) % 8 + 1) {
                if bytes.len() < 2 {
                    break;
                }
                let len = bytes.len() as u64;
                let pos = usize::try_from(next(&mut seed) % len).unwrap();
                match next(&mut seed) % 3 {
                    0 => bytes[pos] = (next(&mut seed) & 0xff) as u8,
                    1 => {
                        bytes.truncate(pos.max(1));
                    }
                    _ => {
                        bytes.remove(pos);
                    }
                }
            }
            // Any outcome but a panic is fine; errors must stay bounded.
            if let Err(EwsError::Malformed { excerpt }) =
                SyncFolderItemsResponse::parse(&bytes, &XmlLimits::default())
            {
                assert!(excerpt.chars().count() <= 200);
            }
            let _ = parse_request(&bytes, &XmlLimits::default());
        }
    }

    #[test]
    fn deep_nesting_and_huge_documents_are_refused_with_limits() {
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert!(matches!(
            parse_request(deep.as_bytes(), &XmlLimits::default()),
            Err(RequestError::Envelope(SoapError::Xml(
                crate::xml::XmlError::TooDeep { .. }
            )))
        ));
        let small = XmlLimits {
            max_bytes: 64,
            ..XmlLimits::default()
        };
        let resp = error_response_xml("GetItem", &ResponseCode::NO_ERROR, "x", None);
        assert!(matches!(
            GetItemResponse::parse(resp.as_bytes(), &small),
            Err(EwsError::Malformed { .. })
        ));
    }
}

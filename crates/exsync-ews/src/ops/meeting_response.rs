//! CreateItem with meeting response objects (EWS reference "CreateItem operation (meeting
//! request)"; types.xsd AcceptItemType, TentativelyAcceptItemType, DeclineItemType): an attendee
//! answers a meeting request or the calendar item it put in the calendar.
//!
//! Owns this form of CreateItem in both directions. It is the same SOAP operation as
//! [`super::CreateItemRequest`] with the same response ([`super::CreateItemResponse`]; "item
//! identifiers are not returned for response objects", so `m:Items` is empty), kept as its own
//! type because its items are response objects, not items. Declining moves the calendar item to
//! Deleted Items and sends the organizer a decline: the one way an attendee's meeting leaves the
//! calendar without the organizer being left in the dark.

use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{BaseFolderId, Body, BodyType, ItemId, MessageDisposition, WireError};
use crate::xml::{Element, XmlWriter};

use super::{m_child, op_element, opt_attr, RequestError};

const OP: &str = "CreateItem";

/// Which answer a response object gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeetingAnswer {
    /// `t:AcceptItem`.
    Accept,
    /// `t:TentativelyAcceptItem`.
    TentativelyAccept,
    /// `t:DeclineItem`.
    Decline,
}

impl MeetingAnswer {
    /// The element name.
    pub fn element(self) -> &'static str {
        match self {
            MeetingAnswer::Accept => "AcceptItem",
            MeetingAnswer::TentativelyAccept => "TentativelyAcceptItem",
            MeetingAnswer::Decline => "DeclineItem",
        }
    }

    fn from_element(name: &str) -> Option<MeetingAnswer> {
        [
            MeetingAnswer::Accept,
            MeetingAnswer::TentativelyAccept,
            MeetingAnswer::Decline,
        ]
        .into_iter()
        .find(|a| a.element() == name)
    }
}

/// One response object (WellKnownResponseObjectType: the fields exsync uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingResponse {
    /// Accept, tentatively accept or decline.
    pub answer: MeetingAnswer,
    /// `t:Body`: a note to the organizer.
    pub body: Option<Body>,
    /// `t:ReferenceItemId`: the meeting request or calendar item answered (optional in the
    /// schema; Exchange answers ErrorMissingInformationReferenceItemId without it).
    pub reference_item_id: Option<ItemId>,
}

/// A CreateItem request carrying meeting responses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeetingResponseRequest {
    /// `@MessageDisposition` (Exchange requires it for response objects: they are messages).
    pub message_disposition: Option<MessageDisposition>,
    /// `m:SavedItemFolderId`: where the sent response's copy goes (default Sent Items).
    pub saved_item_folder_id: Option<BaseFolderId>,
    /// The response objects, in order.
    pub responses: Vec<MeetingResponse>,
}

impl MeetingResponseRequest {
    /// A decline of `item`, sent with a copy kept in Sent Items.
    pub fn decline(item: ItemId, note: Option<&str>) -> Self {
        MeetingResponseRequest {
            message_disposition: Some(MessageDisposition::SendAndSaveCopy),
            saved_item_folder_id: None,
            responses: vec![MeetingResponse {
                answer: MeetingAnswer::Decline,
                body: note.map(|text| Body {
                    body_type: BodyType::Text,
                    content: text.to_owned(),
                }),
                reference_item_id: Some(item),
            }],
        }
    }

    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:CreateItem");
            if let Some(d) = self.message_disposition {
                w.attr("MessageDisposition", d.as_str());
            }
            if let Some(f) = &self.saved_item_folder_id {
                w.start("m:SavedItemFolderId");
                f.write(w);
                w.end();
            }
            w.start("m:Items");
            for response in &self.responses {
                write_response_object(w, response);
            }
            w.end();
            w.end();
        })
    }

    /// Whether a `m:CreateItem` element carries meeting response objects (and so is read by
    /// [`MeetingResponseRequest::from_body`], not as items).
    pub fn holds_responses(op: &Element) -> bool {
        op.child(MESSAGES_NS, "Items").is_some_and(|items| {
            items
                .children
                .iter()
                .any(|c| c.namespace == TYPES_NS && MeetingAnswer::from_element(&c.name).is_some())
        })
    }

    /// Read the request from the SOAP body (or the `m:CreateItem` element itself). Items that
    /// are not response objects next to them are refused (exsync never mixes them).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let saved_item_folder_id = match el.child(MESSAGES_NS, "SavedItemFolderId") {
            Some(f) => Some(
                BaseFolderId::first_in(f)?
                    .ok_or(WireError::Missing("SavedItemFolderId/FolderId"))?,
            ),
            None => None,
        };
        let mut responses = Vec::new();
        for child in &m_child(el, "Items")?.children {
            if child.namespace != TYPES_NS {
                continue;
            }
            let Some(answer) = MeetingAnswer::from_element(&child.name) else {
                return Err(crate::types::invalid("Items", &child.name).into());
            };
            responses.push(MeetingResponse {
                answer,
                body: child
                    .child(TYPES_NS, "Body")
                    .map(|b| -> Result<Body, WireError> {
                        Ok(Body {
                            body_type: b.attr("BodyType").unwrap_or("Text").parse()?,
                            content: b.text.clone(),
                        })
                    })
                    .transpose()?,
                reference_item_id: child
                    .child(TYPES_NS, "ReferenceItemId")
                    .map(ItemId::from_element)
                    .transpose()?,
            });
        }
        if responses.is_empty() {
            return Err(WireError::Missing("Items/DeclineItem").into());
        }
        Ok(MeetingResponseRequest {
            message_disposition: opt_attr(el, "MessageDisposition")?,
            saved_item_folder_id,
            responses,
        })
    }
}

/// WellKnownResponseObjectType order: … Body … ReferenceItemId.
fn write_response_object(w: &mut XmlWriter, response: &MeetingResponse) {
    w.start(&format!("t:{}", response.answer.element()));
    if let Some(body) = &response.body {
        w.start("t:Body").attr("BodyType", body.body_type.as_str());
        w.text(&body.content);
        w.end();
    }
    if let Some(id) = &response.reference_item_id {
        id.write(w, "t:ReferenceItemId");
    }
    w.end();
}

impl From<MeetingResponseRequest> for super::EwsRequest {
    fn from(r: MeetingResponseRequest) -> Self {
        super::EwsRequest::MeetingResponse(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{parse_request, EwsRequest};
    use crate::soap::ExchangeVersion;
    use crate::test_support::check_soap;
    use crate::xml::XmlLimits;

    /// The decline form of the "CreateItem operation (meeting request)" sample, with the
    /// schema's real (http) namespaces.
    const DOC_DECLINE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <CreateItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
                MessageDisposition="SendAndSaveCopy">
      <Items>
        <DeclineItem xmlns="http://schemas.microsoft.com/exchange/services/2006/types">
          <ReferenceItemId Id="AAAlAFVzZ" ChangeKey="CwAAABYAA"/>
        </DeclineItem>
      </Items>
    </CreateItem>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn the_documented_decline_is_read_as_a_meeting_response() {
        check_soap(DOC_DECLINE);
        let (_, request) = parse_request(DOC_DECLINE.as_bytes(), &XmlLimits::default()).unwrap();
        let EwsRequest::MeetingResponse(r) = request else {
            panic!("not a meeting response: {request:?}")
        };
        assert_eq!(
            r.message_disposition,
            Some(MessageDisposition::SendAndSaveCopy)
        );
        assert_eq!(r.responses.len(), 1);
        assert_eq!(r.responses[0].answer, MeetingAnswer::Decline);
        assert_eq!(
            r.responses[0].reference_item_id,
            Some(ItemId::with_change_key("AAAlAFVzZ", "CwAAABYAA"))
        );
    }

    #[test]
    fn a_decline_with_a_note_is_schema_valid_and_round_trips() {
        let request = MeetingResponseRequest::decline(
            ItemId::with_change_key("AAMk-1", "CK-1"),
            Some("Removed from the business database"),
        );
        let header = RequestHeader::impersonating(ExchangeVersion::Exchange2016, "b@contoso.test");
        let xml = request.to_xml(&header);
        check_soap(&xml);
        let (_, back) = parse_request(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(back, EwsRequest::MeetingResponse(request));
    }
}

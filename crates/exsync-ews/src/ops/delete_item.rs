//! DeleteItem (EWS reference "DeleteItem operation"; messages.xsd DeleteItemType,
//! DeleteItemResponseMessageType): delete items by id.
//!
//! Owns this operation's request and response in both directions; one message per id.

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, TYPES_NS};
use crate::types::{
    AffectedTaskOccurrences, DeleteType, ItemId, ResponseMessage, SendMeetingInvitations, WireError,
};
use crate::xml::{Element, XmlLimits};

use super::{
    first_payload, m_child, op_element, opt_attr, parse_response, write_response, RequestError,
};

const OP: &str = "DeleteItem";

/// A DeleteItem request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteItemRequest {
    /// `@DeleteType`.
    pub delete_type: DeleteType,
    /// `@SendMeetingCancellations` (required by Exchange for calendar items).
    pub send_meeting_cancellations: Option<SendMeetingInvitations>,
    /// `@AffectedTaskOccurrences` (required by Exchange for tasks).
    pub affected_task_occurrences: Option<AffectedTaskOccurrences>,
    /// `m:ItemIds`.
    pub item_ids: Vec<ItemId>,
}

impl DeleteItemRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:DeleteItem")
                .attr("DeleteType", self.delete_type.as_str());
            if let Some(s) = self.send_meeting_cancellations {
                w.attr("SendMeetingCancellations", s.as_str());
            }
            if let Some(a) = self.affected_task_occurrences {
                w.attr("AffectedTaskOccurrences", a.as_str());
            }
            w.start("m:ItemIds");
            for id in &self.item_ids {
                id.write(w, "t:ItemId");
            }
            w.end();
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:DeleteItem` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let item_ids: Vec<ItemId> = m_child(el, "ItemIds")?
            .children_named(TYPES_NS, "ItemId")
            .map(ItemId::from_element)
            .collect::<Result<_, _>>()?;
        if item_ids.is_empty() {
            return Err(WireError::Missing("ItemIds/ItemId").into());
        }
        Ok(DeleteItemRequest {
            delete_type: el
                .attr("DeleteType")
                .ok_or(WireError::Missing("@DeleteType"))?
                .parse()?,
            send_meeting_cancellations: opt_attr(el, "SendMeetingCancellations")?,
            affected_task_occurrences: opt_attr(el, "AffectedTaskOccurrences")?,
            item_ids,
        })
    }
}

/// A DeleteItem response: one message per id, no content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeleteItemResponse {
    /// The response messages, in request order.
    pub messages: Vec<ResponseMessage<()>>,
}

impl DeleteItemResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |_, _| {})
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(DeleteItemResponse {
            messages: parse_response(bytes, limits, OP, |_| Ok(()))?,
        })
    }

    /// `Ok` when the first message succeeded, else its error.
    pub fn first(&self) -> Result<&(), EwsError> {
        first_payload(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_envelope, ExchangeVersion};
    use crate::test_support::check_soap;
    use crate::types::ResponseCode;

    /// Request sample from the "DeleteItem operation" reference page.
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <DeleteItem DeleteType="HardDelete" xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemIds>
        <t:ItemId Id="AS4AUn=="/>
      </ItemIds>
    </DeleteItem>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample from the same page.
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="595" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <DeleteItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                        xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                        xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:DeleteItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
        </m:DeleteItemResponseMessage>
      </m:ResponseMessages>
    </DeleteItemResponse>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn documented_request_and_response_are_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = DeleteItemRequest::from_body(&env.body).unwrap();
        assert_eq!(req.delete_type, DeleteType::HardDelete);
        assert_eq!(req.item_ids, vec![ItemId::new("AS4AUn==")]);
        let resp =
            DeleteItemResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(resp.first().is_ok());
    }

    #[test]
    fn request_and_response_round_trip_and_validate() {
        let req = DeleteItemRequest {
            delete_type: DeleteType::MoveToDeletedItems,
            send_meeting_cancellations: Some(SendMeetingInvitations::SendToNone),
            affected_task_occurrences: Some(AffectedTaskOccurrences::AllOccurrences),
            item_ids: vec![ItemId::with_change_key("a", "b"), ItemId::new("c")],
        };
        let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(DeleteItemRequest::from_body(&env.body).unwrap(), req);

        let resp = DeleteItemResponse {
            messages: vec![
                ResponseMessage::success(()),
                ResponseMessage::error(
                    ResponseCode::ERROR_ITEM_NOT_FOUND,
                    "The specified object was not found in the store.",
                ),
            ],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        assert_eq!(
            DeleteItemResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
            resp
        );
    }
}

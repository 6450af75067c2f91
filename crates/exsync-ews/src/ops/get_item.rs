//! GetItem (EWS reference "GetItem operation"; messages.xsd GetItemType,
//! ItemInfoResponseMessageType): fetch items by id with a shape.
//!
//! Owns this operation's request and response in both directions. One response message per
//! requested id; per-item errors (ErrorItemNotFound …) stay data in `messages`.

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, TYPES_NS};
use crate::types::{Item, ItemId, ItemShape, ResponseMessage, WireError};
use crate::xml::{Element, XmlLimits};

use super::{
    first_payload, m_child, op_element, parse_response, read_items, write_items, write_response,
    RequestError,
};

const OP: &str = "GetItem";

/// A GetItem request.
#[derive(Debug, Clone, PartialEq)]
pub struct GetItemRequest {
    /// `m:ItemShape`.
    pub item_shape: ItemShape,
    /// `m:ItemIds`.
    pub item_ids: Vec<ItemId>,
}

impl GetItemRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:GetItem");
            self.item_shape.write(w, "m:ItemShape");
            w.start("m:ItemIds");
            for id in &self.item_ids {
                id.write(w, "t:ItemId");
            }
            w.end();
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:GetItem` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let item_ids: Vec<ItemId> = m_child(el, "ItemIds")?
            .children_named(TYPES_NS, "ItemId")
            .map(ItemId::from_element)
            .collect::<Result<_, _>>()?;
        if item_ids.is_empty() {
            return Err(WireError::Missing("ItemIds/ItemId").into());
        }
        Ok(GetItemRequest {
            item_shape: ItemShape::from_element(m_child(el, "ItemShape")?)?,
            item_ids,
        })
    }
}

/// A GetItem response: one message per requested id, each with the item(s) found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetItemResponse {
    /// The response messages, in request order.
    pub messages: Vec<ResponseMessage<Vec<Item>>>,
}

impl GetItemResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, write_items)
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(GetItemResponse {
            messages: parse_response(bytes, limits, OP, read_items)?,
        })
    }

    /// The first message's items, or the error it reports.
    pub fn first(&self) -> Result<&Vec<Item>, EwsError> {
        first_payload(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_envelope, ExchangeVersion};
    use crate::test_support::check_soap;
    use crate::types::{
        BaseShape, Body, BodyType, CalendarItem, EmailAddress, FieldUri, ItemBase, ResponseClass,
        ResponseCode,
    };
    use chrono::{TimeZone, Utc};

    /// Request sample from the "GetItem operation (email message)" reference page.
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <GetItem
      xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
      xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <ItemShape>
        <t:BaseShape>Default</t:BaseShape>
        <t:IncludeMimeContent>true</t:IncludeMimeContent>
      </ItemShape>
      <ItemIds>
        <t:ItemId Id="AAAlAF" ChangeKey="CQAAAB" />
      </ItemIds>
    </GetItem>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample from the same page.
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="662" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <GetItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                     xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                     xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:GetItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:Message>
              <t:MimeContent CharacterSet="UTF-8">UmVjZWl2ZWQ6IGZyb20gd</t:MimeContent>
              <t:ItemId Id="AAAlAFVz" ChangeKey="CQAAAB" />
              <t:Subject />
              <t:Sensitivity>Normal</t:Sensitivity>
              <t:Body BodyType="HTML"><![CDATA[<html dir="ltr"><body>hi</body></html>]]></t:Body>
              <t:Size>881</t:Size>
              <t:DateTimeSent>2006-10-28T01:37:05Z</t:DateTimeSent>
              <t:DateTimeCreated>2006-10-28T01:37:06Z</t:DateTimeCreated>
              <t:ResponseObjects>
                <t:ReplyToItem />
                <t:ReplyAllToItem />
                <t:ForwardItem />
              </t:ResponseObjects>
              <t:HasAttachments>false</t:HasAttachments>
              <t:ToRecipients>
                <t:Mailbox>
                  <t:Name>User1</t:Name>
                  <t:EmailAddress>User1@example.com</t:EmailAddress>
                  <t:RoutingType>SMTP</t:RoutingType>
                </t:Mailbox>
              </t:ToRecipients>
              <t:IsReadReceiptRequested>false</t:IsReadReceiptRequested>
              <t:IsDeliveryReceiptRequested>false</t:IsDeliveryReceiptRequested>
              <t:From>
                <t:Mailbox>
                  <t:Name>User2</t:Name>
                  <t:EmailAddress>User2@example.com</t:EmailAddress>
                  <t:RoutingType>SMTP</t:RoutingType>
                </t:Mailbox>
              </t:From>
              <t:IsRead>false</t:IsRead>
            </t:Message>
          </m:Items>
        </m:GetItemResponseMessage>
      </m:ResponseMessages>
    </GetItemResponse>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn documented_request_is_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = GetItemRequest::from_body(&env.body).unwrap();
        assert_eq!(req.item_shape.base_shape, BaseShape::Default);
        assert_eq!(
            req.item_ids,
            vec![ItemId::with_change_key("AAAlAF", "CQAAAB")]
        );
    }

    #[test]
    fn documented_response_is_read() {
        let resp = GetItemResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default()).unwrap();
        let items = resp.first().unwrap();
        let Item::Message(m) = &items[0] else {
            panic!("not a message")
        };
        assert_eq!(m.base.subject.as_deref(), Some(""));
        let body = m.base.body.as_ref().unwrap();
        assert_eq!(body.body_type, BodyType::Html);
        assert_eq!(body.content, r#"<html dir="ltr"><body>hi</body></html>"#);
        assert_eq!(
            m.base.date_time_sent,
            Some(Utc.with_ymd_and_hms(2006, 10, 28, 1, 37, 5).unwrap())
        );
        assert_eq!(
            m.to_recipients,
            vec![EmailAddress::new(Some("User1"), "User1@example.com")]
        );
        assert_eq!(
            m.from,
            Some(EmailAddress::new(Some("User2"), "User2@example.com"))
        );
        assert_eq!(m.is_read, Some(false));
    }

    #[test]
    fn request_round_trips_and_validates() {
        let req = GetItemRequest {
            item_shape: ItemShape {
                base_shape: BaseShape::IdOnly,
                body_type: Some(BodyType::Text),
                additional_properties: vec![
                    FieldUri::SUBJECT,
                    FieldUri::BODY,
                    FieldUri::indexed(FieldUri::EMAIL_ADDRESS_DICTIONARY, "EmailAddress1"),
                ],
            },
            item_ids: vec![ItemId::new("a"), ItemId::with_change_key("b", "c")],
        };
        let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(GetItemRequest::from_body(&env.body).unwrap(), req);
    }

    #[test]
    fn response_with_per_item_error_round_trips_and_validates() {
        let t = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
        let appointment = Item::CalendarItem(CalendarItem {
            base: ItemBase {
                item_id: Some(ItemId::with_change_key("cal1", "ck")),
                subject: Some("Standup".into()),
                body: Some(Body {
                    body_type: BodyType::Text,
                    content: "daily".into(),
                }),
                ..Default::default()
            },
            uid: Some("040000008200E00074C5B7101A82E008".into()),
            start: Some(t),
            end: Some(t + chrono::Duration::minutes(15)),
            location: Some("Room".into()),
            ..Default::default()
        });
        let resp = GetItemResponse {
            messages: vec![
                ResponseMessage::success(vec![appointment]),
                ResponseMessage::error(
                    ResponseCode::ERROR_ITEM_NOT_FOUND,
                    "The specified object was not found in the store.",
                ),
                ResponseMessage::warning(
                    ResponseCode::ERROR_BATCH_PROCESSING_STOPPED,
                    "Processing of this item was stopped because of an earlier error.",
                ),
            ],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        let back = GetItemResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(back, resp);
        assert!(back.first().is_ok());
        assert_eq!(back.messages[1].class, ResponseClass::Error);
        assert!(matches!(
            back.messages[1].to_error(),
            Some(EwsError::Request { code, .. }) if code == "ErrorItemNotFound"
        ));
        // Warning is not success: the item was not processed.
        assert_eq!(back.messages[2].class, ResponseClass::Warning);
        assert!(back.messages[2].result().is_err());
    }

    #[test]
    fn empty_id_list_is_a_schema_error() {
        let xml = DOC_REQUEST.replace(r#"<t:ItemId Id="AAAlAF" ChangeKey="CQAAAB" />"#, "");
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(GetItemRequest::from_body(&env.body).is_err());
    }
}

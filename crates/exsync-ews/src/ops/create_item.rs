//! CreateItem (EWS reference "CreateItem operation"; messages.xsd CreateItemType,
//! ItemInfoResponseMessageType): create (and optionally send) items.
//!
//! Owns this operation's request and response in both directions. With `SendAndSaveCopy` Exchange
//! answers with an empty `m:Items` (the copy's id is not returned); otherwise with the new ids.

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS};
use crate::types::{
    BaseFolderId, Item, MessageDisposition, ResponseMessage, SendMeetingInvitations, WireError,
};
use crate::xml::{Element, XmlLimits};

use super::{
    first_payload, m_child, op_element, opt_attr, parse_response, read_items, write_items,
    write_response, RequestError,
};

const OP: &str = "CreateItem";

/// A CreateItem request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateItemRequest {
    /// `@MessageDisposition` (required by Exchange for messages).
    pub message_disposition: Option<MessageDisposition>,
    /// `@SendMeetingInvitations` (required by Exchange for calendar items).
    pub send_meeting_invitations: Option<SendMeetingInvitations>,
    /// `m:SavedItemFolderId`: where the item (or the sent copy) goes.
    pub saved_item_folder_id: Option<BaseFolderId>,
    /// `m:Items`.
    pub items: Vec<Item>,
}

impl CreateItemRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:CreateItem");
            if let Some(d) = self.message_disposition {
                w.attr("MessageDisposition", d.as_str());
            }
            if let Some(s) = self.send_meeting_invitations {
                w.attr("SendMeetingInvitations", s.as_str());
            }
            if let Some(f) = &self.saved_item_folder_id {
                w.start("m:SavedItemFolderId");
                f.write(w);
                w.end();
            }
            w.start("m:Items");
            for item in &self.items {
                item.write(w);
            }
            w.end();
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:CreateItem` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let saved_item_folder_id = match el.child(MESSAGES_NS, "SavedItemFolderId") {
            Some(f) => Some(
                BaseFolderId::first_in(f)?
                    .ok_or(WireError::Missing("SavedItemFolderId/FolderId"))?,
            ),
            None => None,
        };
        let items = Item::all_in(m_child(el, "Items")?)?;
        if items.is_empty() {
            return Err(WireError::Missing("Items/Item").into());
        }
        Ok(CreateItemRequest {
            message_disposition: opt_attr(el, "MessageDisposition")?,
            send_meeting_invitations: opt_attr(el, "SendMeetingInvitations")?,
            saved_item_folder_id,
            items,
        })
    }
}

/// A CreateItem response: one message per item, each with the created item's id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateItemResponse {
    /// The response messages, in request order.
    pub messages: Vec<ResponseMessage<Vec<Item>>>,
}

impl CreateItemResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, write_items)
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(CreateItemResponse {
            messages: parse_response(bytes, limits, OP, read_items)?,
        })
    }

    /// The first message's items (ids), or the error it reports.
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
        Body, BodyType, CalendarItem, Contact, DistinguishedFolderName, EmailAddress, ItemBase,
        ItemId, Message, ResponseCode, Task, TaskStatus,
    };
    use chrono::{TimeZone, Utc};

    /// Request sample from the "CreateItem operation (email message)" reference page.
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <CreateItem MessageDisposition="SendAndSaveCopy" xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <SavedItemFolderId>
        <t:DistinguishedFolderId Id="drafts" />
      </SavedItemFolderId>
      <Items>
        <t:Message>
          <t:ItemClass>IPM.Note</t:ItemClass>
          <t:Subject>Project Action</t:Subject>
          <t:Body BodyType="Text">Priority - Update specification</t:Body>
          <t:ToRecipients>
            <t:Mailbox>
              <t:EmailAddress>sschmidt@example.com</t:EmailAddress>
            </t:Mailbox>
          </t:ToRecipients>
          <t:IsRead>false</t:IsRead>
        </t:Message>
      </Items>
    </CreateItem>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample from the same page: SendAndSaveCopy returns no ids.
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="595" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <CreateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                        xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                        xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:CreateItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items />
        </m:CreateItemResponseMessage>
      </m:ResponseMessages>
    </CreateItemResponse>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample of the "CreateItem operation (calendar item)" page: the new id.
    const DOC_CALENDAR_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="664" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <CreateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                        xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                        xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:CreateItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:CalendarItem>
              <t:ItemId Id="AAAlAFVzZXI" ChangeKey="DwAAABYAAAA" />
            </t:CalendarItem>
          </m:Items>
        </m:CreateItemResponseMessage>
      </m:ResponseMessages>
    </CreateItemResponse>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn documented_request_is_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = CreateItemRequest::from_body(&env.body).unwrap();
        assert_eq!(
            req.message_disposition,
            Some(MessageDisposition::SendAndSaveCopy)
        );
        assert_eq!(
            req.saved_item_folder_id,
            Some(BaseFolderId::distinguished(DistinguishedFolderName::Drafts))
        );
        let Item::Message(m) = &req.items[0] else {
            panic!("not a message")
        };
        assert_eq!(m.base.subject.as_deref(), Some("Project Action"));
        assert_eq!(
            m.to_recipients,
            vec![EmailAddress::new(None, "sschmidt@example.com")]
        );
        assert_eq!(m.is_read, Some(false));
    }

    #[test]
    fn documented_responses_are_read() {
        let resp =
            CreateItemResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(resp.first().unwrap().is_empty());
        let resp =
            CreateItemResponse::parse(DOC_CALENDAR_RESPONSE.as_bytes(), &XmlLimits::default())
                .unwrap();
        let items = resp.first().unwrap();
        assert!(matches!(&items[0], Item::CalendarItem(_)));
        assert_eq!(
            items[0].item_id(),
            Some(&ItemId::with_change_key("AAAlAFVzZXI", "DwAAABYAAAA"))
        );
    }

    #[test]
    fn request_round_trips_and_validates_for_every_item_kind() {
        let t = Utc.with_ymd_and_hms(2025, 1, 2, 9, 0, 0).unwrap();
        let mail = Item::Message(Message {
            base: ItemBase {
                subject: Some("Invoice 42".into()),
                body: Some(Body {
                    body_type: BodyType::Html,
                    content: "<b>due</b>".into(),
                }),
                ..Default::default()
            },
            to_recipients: vec![EmailAddress::new(Some("Bob"), "bob@contoso.test")],
            ..Default::default()
        });
        let requests = [
            CreateItemRequest {
                message_disposition: Some(MessageDisposition::SendAndSaveCopy),
                send_meeting_invitations: None,
                saved_item_folder_id: Some(BaseFolderId::distinguished(
                    DistinguishedFolderName::SentItems,
                )),
                items: vec![mail],
            },
            CreateItemRequest {
                message_disposition: None,
                send_meeting_invitations: Some(SendMeetingInvitations::SendToNone),
                saved_item_folder_id: Some(BaseFolderId::distinguished(
                    DistinguishedFolderName::Calendar,
                )),
                items: vec![
                    Item::CalendarItem(CalendarItem {
                        base: ItemBase {
                            subject: Some("Visit".into()),
                            ..Default::default()
                        },
                        start: Some(t),
                        end: Some(t + chrono::Duration::hours(2)),
                        is_all_day_event: Some(false),
                        location: Some("HQ".into()),
                        ..Default::default()
                    }),
                    Item::Contact(Contact {
                        display_name: Some("Ann A".into()),
                        given_name: Some("Ann".into()),
                        surname: Some("A".into()),
                        email_addresses: vec![("EmailAddress1".into(), "ann@x.test".into())],
                        phone_numbers: vec![("BusinessPhone".into(), "+49 1".into())],
                        ..Default::default()
                    }),
                    Item::Task(Task {
                        base: ItemBase {
                            subject: Some("Call back".into()),
                            ..Default::default()
                        },
                        due_date: Some(t),
                        status: Some(TaskStatus::NotStarted),
                        ..Default::default()
                    }),
                ],
            },
        ];
        for req in requests {
            let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
            check_soap(&xml);
            let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
            assert_eq!(CreateItemRequest::from_body(&env.body).unwrap(), req);
        }
    }

    #[test]
    fn a_send_with_from_and_a_custom_extended_property_validates_and_round_trips() {
        use crate::extended::{ExtendedFieldUri, ExtendedProperty};
        let key = ExtendedFieldUri::named_string(
            "d0925a5d-722f-42f0-882e-a816636fa020",
            "ExsyncOutgoingId",
        );
        let req = CreateItemRequest {
            message_disposition: Some(MessageDisposition::SendAndSaveCopy),
            send_meeting_invitations: None,
            saved_item_folder_id: Some(BaseFolderId::Distinguished {
                name: DistinguishedFolderName::SentItems,
                mailbox: Some("anna@contoso.test".into()),
            }),
            items: vec![Item::Message(Message {
                base: ItemBase {
                    subject: Some("Offer".into()),
                    body: Some(Body {
                        body_type: BodyType::Text,
                        content: "Hello".into(),
                    }),
                    extended_properties: vec![ExtendedProperty::new(key, "7c0a1f0e-row")],
                    ..Default::default()
                },
                to_recipients: vec![EmailAddress::new(None, "bob@fabrikam.test")],
                from: Some(EmailAddress::new(None, "anna@contoso.test")),
                ..Default::default()
            })],
        };
        let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
        check_soap(&xml);
        assert!(xml.contains("PropertyName=\"ExsyncOutgoingId\""), "{xml}");
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(CreateItemRequest::from_body(&env.body).unwrap(), req);
    }

    #[test]
    fn response_round_trips_and_validates() {
        let resp = CreateItemResponse {
            messages: vec![
                ResponseMessage::success(vec![Item::Message(Message {
                    base: ItemBase {
                        item_id: Some(ItemId::with_change_key("new", "ck")),
                        ..Default::default()
                    },
                    ..Default::default()
                })]),
                ResponseMessage::success(vec![]),
                ResponseMessage::error(ResponseCode::ERROR_QUOTA_EXCEEDED, "Mailbox full."),
            ],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        assert_eq!(
            CreateItemResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
            resp
        );
    }
}

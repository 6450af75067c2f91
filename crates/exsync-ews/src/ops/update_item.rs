//! UpdateItem (EWS reference "UpdateItem operation"; messages.xsd UpdateItemType,
//! UpdateItemResponseMessageType): set or delete fields of existing items.
//!
//! Owns this operation's request and response in both directions. `SetItemField` carries an
//! item of the right kind holding just the one field being set, as EWS requires.

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{
    invalid, parse_u32, ConflictResolution, FieldUri, Item, ItemId, MessageDisposition,
    ResponseMessage, SendMeetingInvitationsOrCancellations, WireError,
};
use crate::xml::{Element, XmlLimits, XmlWriter};

use super::{
    first_payload, m_child, op_element, opt_attr, parse_response, read_items, write_items,
    write_response, RequestError,
};

const OP: &str = "UpdateItem";

/// One field update (ItemChangeDescriptionType).
// An item inline keeps the shape simple; a request carries only a handful of updates.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ItemUpdate {
    /// `t:SetItemField`: `item` carries the new value of `field`.
    SetItemField {
        /// The field being set.
        field: FieldUri,
        /// An item of the right kind holding only that field.
        item: Item,
    },
    /// `t:DeleteItemField`: clear the field.
    DeleteItemField(FieldUri),
}

/// `t:ItemChange`: the updates of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    /// `t:ItemId` (with the change key Exchange requires).
    pub item_id: ItemId,
    /// `t:Updates`.
    pub updates: Vec<ItemUpdate>,
}

/// An UpdateItem request.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateItemRequest {
    /// `@ConflictResolution`.
    pub conflict_resolution: ConflictResolution,
    /// `@MessageDisposition` (required by Exchange for messages).
    pub message_disposition: Option<MessageDisposition>,
    /// `@SendMeetingInvitationsOrCancellations` (required by Exchange for calendar items).
    pub send_meeting_invitations_or_cancellations: Option<SendMeetingInvitationsOrCancellations>,
    /// `m:ItemChanges`.
    pub item_changes: Vec<ItemChange>,
}

impl UpdateItemRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:UpdateItem")
                .attr("ConflictResolution", self.conflict_resolution.as_str());
            if let Some(d) = self.message_disposition {
                w.attr("MessageDisposition", d.as_str());
            }
            if let Some(s) = self.send_meeting_invitations_or_cancellations {
                w.attr("SendMeetingInvitationsOrCancellations", s.as_str());
            }
            w.start("m:ItemChanges");
            for change in &self.item_changes {
                write_change(w, change);
            }
            w.end();
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:UpdateItem` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let item_changes = m_child(el, "ItemChanges")?
            .children_named(TYPES_NS, "ItemChange")
            .map(read_change)
            .collect::<Result<Vec<_>, _>>()?;
        if item_changes.is_empty() {
            return Err(WireError::Missing("ItemChanges/ItemChange").into());
        }
        Ok(UpdateItemRequest {
            conflict_resolution: el
                .attr("ConflictResolution")
                .ok_or(WireError::Missing("@ConflictResolution"))?
                .parse()?,
            message_disposition: opt_attr(el, "MessageDisposition")?,
            send_meeting_invitations_or_cancellations: opt_attr(
                el,
                "SendMeetingInvitationsOrCancellations",
            )?,
            item_changes,
        })
    }
}

fn write_change(w: &mut XmlWriter, change: &ItemChange) {
    w.start("t:ItemChange");
    change.item_id.write(w, "t:ItemId");
    w.start("t:Updates");
    for update in &change.updates {
        match update {
            ItemUpdate::SetItemField { field, item } => {
                w.start("t:SetItemField");
                field.write(w);
                item.write(w);
                w.end();
            }
            ItemUpdate::DeleteItemField(field) => {
                w.start("t:DeleteItemField");
                field.write(w);
                w.end();
            }
        }
    }
    w.end();
    w.end();
}

fn read_change(el: &Element) -> Result<ItemChange, WireError> {
    let item_id = ItemId::from_element(
        el.child(TYPES_NS, "ItemId")
            .ok_or(WireError::Missing("ItemChange/ItemId"))?,
    )?;
    let updates_el = el
        .child(TYPES_NS, "Updates")
        .ok_or(WireError::Missing("ItemChange/Updates"))?;
    let mut updates = Vec::new();
    for u in updates_el
        .children
        .iter()
        .filter(|u| u.namespace == TYPES_NS)
    {
        let field = FieldUri::first_in(u)?.ok_or(WireError::Missing("FieldURI"))?;
        match u.name.as_str() {
            "SetItemField" => {
                let item = Item::all_in(u)?
                    .into_iter()
                    .next()
                    .ok_or(WireError::Missing("SetItemField/Item"))?;
                updates.push(ItemUpdate::SetItemField { field, item });
            }
            "DeleteItemField" => updates.push(ItemUpdate::DeleteItemField(field)),
            // AppendToItemField is valid EWS but not supported by this codec: refuse rather
            // than silently drop an update.
            other => return Err(invalid("Updates", other)),
        }
    }
    Ok(ItemChange { item_id, updates })
}

/// The payload of an UpdateItem response message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateItemResult {
    /// `m:Items`: the updated items' ids (new change keys).
    pub items: Vec<Item>,
    /// `m:ConflictResults/t:Count`.
    pub conflict_results: u32,
}

/// An UpdateItem response: one message per item change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateItemResponse {
    /// The response messages, in request order.
    pub messages: Vec<ResponseMessage<UpdateItemResult>>,
}

impl UpdateItemResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |w, p| {
            write_items(w, p.map(|p| &p.items));
            if let Some(p) = p {
                w.start("m:ConflictResults")
                    .leaf("t:Count", &p.conflict_results.to_string())
                    .end();
            }
        })
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(UpdateItemResponse {
            messages: parse_response(bytes, limits, OP, |message| {
                Ok(UpdateItemResult {
                    items: read_items(message)?,
                    conflict_results: message
                        .child(MESSAGES_NS, "ConflictResults")
                        .and_then(|c| c.child_text(TYPES_NS, "Count"))
                        .map(|c| parse_u32("ConflictResults/Count", c))
                        .transpose()?
                        .unwrap_or(0),
                })
            })?,
        })
    }

    /// The first message's result, or the error it reports.
    pub fn first(&self) -> Result<&UpdateItemResult, EwsError> {
        first_payload(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_envelope, ExchangeVersion};
    use crate::test_support::check_soap;
    use crate::types::{CalendarItem, Contact, ItemBase, Message, ResponseCode, Task, TaskStatus};

    /// Request sample of the "Update email by using EWS" reference page.
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
       xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
       xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Header>
    <t:RequestServerVersion Version="Exchange2007_SP1" />
  </soap:Header>
  <soap:Body>
    <m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AlwaysOverwrite">
      <m:ItemChanges>
        <t:ItemChange>
          <t:ItemId Id="AAMkADE4=" ChangeKey="CQAAABYA" />
          <t:Updates>
            <t:SetItemField>
              <t:FieldURI FieldURI="item:Subject" />
              <t:Message>
                <t:Subject>Company Soccer Team</t:Subject>
              </t:Message>
            </t:SetItemField>
          </t:Updates>
        </t:ItemChange>
      </m:ItemChanges>
    </m:UpdateItem>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample of the same page.
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header>
    <h:ServerVersionInfo MajorVersion="15" MinorVersion="0" MajorBuildNumber="800" MinorBuildNumber="5"
                         Version="V2_6" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"
                         xmlns="http://schemas.microsoft.com/exchange/services/2006/types"
                         xmlns:xsd="http://www.w3.org/2001/XMLSchema"
                         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" />
  </s:Header>
  <s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
    <m:UpdateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                          xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <m:ResponseMessages>
        <m:UpdateItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items>
            <t:Message>
              <t:ItemId Id="AAMkADE4=" ChangeKey="CQAAABYB" />
            </t:Message>
          </m:Items>
          <m:ConflictResults>
            <t:Count>0</t:Count>
          </m:ConflictResults>
        </m:UpdateItemResponseMessage>
      </m:ResponseMessages>
    </m:UpdateItemResponse>
  </s:Body>
</s:Envelope>"#;

    #[test]
    fn documented_request_and_response_are_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let header = crate::soap::RequestHeader::from_header(env.header.as_ref()).unwrap();
        assert_eq!(header.version, ExchangeVersion::Exchange2007Sp1);
        let req = UpdateItemRequest::from_body(&env.body).unwrap();
        assert_eq!(req.conflict_resolution, ConflictResolution::AlwaysOverwrite);
        assert_eq!(req.message_disposition, Some(MessageDisposition::SaveOnly));
        let change = &req.item_changes[0];
        assert_eq!(
            change.item_id,
            ItemId::with_change_key("AAMkADE4=", "CQAAABYA")
        );
        let ItemUpdate::SetItemField { field, item } = &change.updates[0] else {
            panic!("not a set")
        };
        assert_eq!(field, &FieldUri::SUBJECT);
        assert_eq!(item.base().subject.as_deref(), Some("Company Soccer Team"));

        let resp =
            UpdateItemResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default()).unwrap();
        let result = resp.first().unwrap();
        assert_eq!(result.conflict_results, 0);
        assert_eq!(
            result.items[0].item_id(),
            Some(&ItemId::with_change_key("AAMkADE4=", "CQAAABYB"))
        );
    }

    #[test]
    fn request_round_trips_and_validates() {
        let req = UpdateItemRequest {
            conflict_resolution: ConflictResolution::NeverOverwrite,
            message_disposition: Some(MessageDisposition::SaveOnly),
            send_meeting_invitations_or_cancellations: Some(
                SendMeetingInvitationsOrCancellations::SendToNone,
            ),
            item_changes: vec![
                ItemChange {
                    item_id: ItemId::with_change_key("m", "ck"),
                    updates: vec![
                        ItemUpdate::SetItemField {
                            field: FieldUri::IS_READ,
                            item: Item::Message(Message {
                                is_read: Some(true),
                                ..Default::default()
                            }),
                        },
                        ItemUpdate::SetItemField {
                            field: FieldUri::CATEGORIES,
                            item: Item::Message(Message {
                                base: ItemBase {
                                    categories: vec!["Done".into()],
                                    ..Default::default()
                                },
                                ..Default::default()
                            }),
                        },
                        ItemUpdate::DeleteItemField(FieldUri::IN_REPLY_TO),
                    ],
                },
                ItemChange {
                    item_id: ItemId::with_change_key("c", "ck"),
                    updates: vec![ItemUpdate::SetItemField {
                        field: FieldUri::LOCATION,
                        item: Item::CalendarItem(CalendarItem {
                            location: Some("Room 2".into()),
                            ..Default::default()
                        }),
                    }],
                },
                ItemChange {
                    item_id: ItemId::with_change_key("p", "ck"),
                    updates: vec![ItemUpdate::SetItemField {
                        field: FieldUri::indexed(
                            FieldUri::EMAIL_ADDRESS_DICTIONARY,
                            "EmailAddress2",
                        ),
                        item: Item::Contact(Contact {
                            email_addresses: vec![("EmailAddress2".into(), "p@x.test".into())],
                            ..Default::default()
                        }),
                    }],
                },
                ItemChange {
                    item_id: ItemId::with_change_key("t", "ck"),
                    updates: vec![ItemUpdate::SetItemField {
                        field: FieldUri::STATUS,
                        item: Item::Task(Task {
                            status: Some(TaskStatus::Completed),
                            ..Default::default()
                        }),
                    }],
                },
            ],
        };
        let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(UpdateItemRequest::from_body(&env.body).unwrap(), req);
    }

    #[test]
    fn response_round_trips_and_validates_and_conflicts_are_data() {
        let resp = UpdateItemResponse {
            messages: vec![
                ResponseMessage::success(UpdateItemResult {
                    items: vec![Item::Message(Message {
                        base: ItemBase {
                            item_id: Some(ItemId::with_change_key("m", "ck2")),
                            ..Default::default()
                        },
                        ..Default::default()
                    })],
                    conflict_results: 1,
                }),
                ResponseMessage::error(
                    ResponseCode::ERROR_IRRESOLVABLE_CONFLICT,
                    "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                ),
            ],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        let back = UpdateItemResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(back, resp);
        assert!(matches!(
            back.messages[1].to_error(),
            Some(EwsError::Request { code, .. }) if code == "ErrorIrresolvableConflict"
        ));
    }

    #[test]
    fn unsupported_update_kind_is_refused_not_dropped() {
        let xml = DOC_REQUEST
            .replace("<t:SetItemField>", "<t:AppendToItemField>")
            .replace("</t:SetItemField>", "</t:AppendToItemField>");
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(UpdateItemRequest::from_body(&env.body).is_err());
    }
}

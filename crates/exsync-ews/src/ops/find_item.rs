//! FindItem (EWS reference "FindItem operation"; messages.xsd FindItemType,
//! FindItemResponseMessageType): list items of folders, paged and filtered.
//!
//! Owns this operation's request and response in both directions, for indexed paging and the
//! restriction subset in [`Restriction`]; grouping, sorting and other views are not modelled.

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{
    parse_bool, parse_u32, BaseFolderId, IndexedPageView, Item, ItemShape, ResponseMessage,
    Restriction, Traversal, WireError,
};
use crate::xml::{Element, XmlLimits, XmlWriter};

use super::{first_payload, m_child, op_element, parse_response, write_response, RequestError};

const OP: &str = "FindItem";

/// A FindItem request.
#[derive(Debug, Clone, PartialEq)]
pub struct FindItemRequest {
    /// `@Traversal`.
    pub traversal: Traversal,
    /// `m:ItemShape`.
    pub item_shape: ItemShape,
    /// `m:IndexedPageItemView` (absent: the whole view).
    pub page: Option<IndexedPageView>,
    /// `m:Restriction`.
    pub restriction: Option<Restriction>,
    /// `m:ParentFolderIds`.
    pub parent_folder_ids: Vec<BaseFolderId>,
}

impl FindItemRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:FindItem")
                .attr("Traversal", self.traversal.as_str());
            self.item_shape.write(w, "m:ItemShape");
            if let Some(page) = &self.page {
                page.write(w, "m:IndexedPageItemView");
            }
            if let Some(r) = &self.restriction {
                w.start("m:Restriction");
                r.write(w);
                w.end();
            }
            w.start("m:ParentFolderIds");
            for f in &self.parent_folder_ids {
                f.write(w);
            }
            w.end();
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:FindItem` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let restriction = match el.child(MESSAGES_NS, "Restriction") {
            Some(r) => {
                Some(Restriction::from_element(r.children.first().ok_or(
                    WireError::Missing("Restriction/SearchExpression"),
                )?)?)
            }
            None => None,
        };
        let parent_folder_ids = BaseFolderId::all_in(m_child(el, "ParentFolderIds")?)?;
        if parent_folder_ids.is_empty() {
            return Err(WireError::Missing("ParentFolderIds/FolderId").into());
        }
        Ok(FindItemRequest {
            traversal: el
                .attr("Traversal")
                .ok_or(WireError::Missing("@Traversal"))?
                .parse()?,
            item_shape: ItemShape::from_element(m_child(el, "ItemShape")?)?,
            page: el
                .child(MESSAGES_NS, "IndexedPageItemView")
                .map(IndexedPageView::from_element)
                .transpose()?,
            restriction,
            parent_folder_ids,
        })
    }
}

/// The payload of a FindItem response message (`m:RootFolder`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FindItemResult {
    /// `@IndexedPagingOffset`: where the next page starts.
    pub indexed_paging_offset: Option<u32>,
    /// `@TotalItemsInView`.
    pub total_items_in_view: u32,
    /// `@IncludesLastItemInRange`.
    pub includes_last_item_in_range: bool,
    /// `t:Items`.
    pub items: Vec<Item>,
}

impl FindItemResult {
    fn write(&self, w: &mut XmlWriter) {
        w.start("m:RootFolder");
        if let Some(o) = self.indexed_paging_offset {
            w.attr("IndexedPagingOffset", &o.to_string());
        }
        w.attr("TotalItemsInView", &self.total_items_in_view.to_string())
            .attr(
                "IncludesLastItemInRange",
                if self.includes_last_item_in_range {
                    "true"
                } else {
                    "false"
                },
            );
        w.start("t:Items");
        for item in &self.items {
            item.write(w);
        }
        w.end();
        w.end();
    }

    fn from_message(message: &Element) -> Result<Self, WireError> {
        let Some(root) = message.child(MESSAGES_NS, "RootFolder") else {
            return Ok(FindItemResult {
                includes_last_item_in_range: true,
                ..FindItemResult::default()
            });
        };
        Ok(FindItemResult {
            indexed_paging_offset: root
                .attr("IndexedPagingOffset")
                .map(|v| parse_u32("IndexedPagingOffset", v))
                .transpose()?,
            total_items_in_view: root
                .attr("TotalItemsInView")
                .map(|v| parse_u32("TotalItemsInView", v))
                .transpose()?
                .unwrap_or(0),
            includes_last_item_in_range: root
                .attr("IncludesLastItemInRange")
                .map(|v| parse_bool("IncludesLastItemInRange", v))
                .transpose()?
                .unwrap_or(true),
            items: match root.child(TYPES_NS, "Items") {
                Some(items) => Item::all_in(items)?,
                None => Vec::new(),
            },
        })
    }
}

/// A FindItem response: one message per parent folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FindItemResponse {
    /// The response messages.
    pub messages: Vec<ResponseMessage<FindItemResult>>,
}

impl FindItemResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |w, p| {
            if let Some(p) = p {
                p.write(w);
            }
        })
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(FindItemResponse {
            messages: parse_response(bytes, limits, OP, FindItemResult::from_message)?,
        })
    }

    /// The first message's result, or the error it reports.
    pub fn first(&self) -> Result<&FindItemResult, EwsError> {
        first_payload(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_envelope, ExchangeVersion};
    use crate::test_support::check_soap;
    use crate::types::{
        BaseShape, DistinguishedFolderName, FieldUri, FolderId, ItemBase, ItemId, Message,
        ResponseCode,
    };

    /// Request sample from the "FindItem operation" reference page.
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <FindItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
              Traversal="Shallow">
      <ItemShape>
        <t:BaseShape>IdOnly</t:BaseShape>
      </ItemShape>
      <ParentFolderIds>
        <t:DistinguishedFolderId Id="deleteditems"/>
      </ParentFolderIds>
    </FindItem>
  </soap:Body>
</soap:Envelope>"#;

    /// The restriction sample of the "Restriction" reference page, in a FindItem with paging.
    const DOC_RESTRICTED_REQUEST: &str = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Body>
    <m:FindItem Traversal="Shallow">
      <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
      <m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/>
      <m:Restriction>
        <t:IsGreaterThan>
          <t:FieldURI FieldURI="item:DateTimeReceived"/>
          <t:FieldURIOrConstant>
            <t:Constant Value="2006-10-01T00:00:00Z"/>
          </t:FieldURIOrConstant>
        </t:IsGreaterThan>
      </m:Restriction>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>
    </m:FindItem>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample from the "FindItem operation" reference page.
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="595" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                      xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                      xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:FindItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:RootFolder TotalItemsInView="10" IncludesLastItemInRange="true">
            <t:Items>
              <t:Message>
                <t:ItemId Id="AS4AUn=" ChangeKey="fsVU4==" />
              </t:Message>
              <t:Message>
                <t:ItemId Id="AS4AUM=" ChangeKey="fsVU4o==" />
              </t:Message>
            </t:Items>
          </m:RootFolder>
        </m:FindItemResponseMessage>
      </m:ResponseMessages>
    </FindItemResponse>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn documented_requests_are_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = FindItemRequest::from_body(&env.body).unwrap();
        assert_eq!(req.traversal, Traversal::Shallow);
        assert_eq!(req.item_shape.base_shape, BaseShape::IdOnly);
        assert_eq!(
            req.parent_folder_ids,
            vec![BaseFolderId::distinguished(
                DistinguishedFolderName::DeletedItems
            )]
        );
        assert_eq!(req.page, None);
        assert_eq!(req.restriction, None);

        let env = parse_envelope(DOC_RESTRICTED_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = FindItemRequest::from_body(&env.body).unwrap();
        assert_eq!(
            req.restriction,
            Some(Restriction::IsGreaterThan(
                FieldUri::DATE_TIME_RECEIVED,
                "2006-10-01T00:00:00Z".into()
            ))
        );
        assert_eq!(
            req.page,
            Some(IndexedPageView {
                max_entries_returned: 10,
                offset: 0,
                base_point_beginning: true
            })
        );
    }

    #[test]
    fn documented_response_is_read() {
        let resp = FindItemResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default()).unwrap();
        let result = resp.first().unwrap();
        assert_eq!(result.total_items_in_view, 10);
        assert!(result.includes_last_item_in_range);
        assert_eq!(result.indexed_paging_offset, None);
        assert_eq!(result.items.len(), 2);
        assert_eq!(
            result.items[1].item_id(),
            Some(&ItemId::with_change_key("AS4AUM=", "fsVU4o=="))
        );
    }

    #[test]
    fn request_round_trips_and_validates() {
        let req = FindItemRequest {
            traversal: Traversal::Shallow,
            item_shape: ItemShape {
                base_shape: BaseShape::IdOnly,
                body_type: None,
                additional_properties: vec![FieldUri::INTERNET_MESSAGE_ID],
            },
            page: Some(IndexedPageView {
                max_entries_returned: 50,
                offset: 100,
                base_point_beginning: true,
            }),
            restriction: Some(Restriction::And(vec![
                Restriction::IsEqualTo(FieldUri::INTERNET_MESSAGE_ID, "<a@b>".into()),
                Restriction::Or(vec![
                    Restriction::IsGreaterThanOrEqualTo(
                        FieldUri::DATE_TIME_RECEIVED,
                        "2024-01-01T00:00:00Z".into(),
                    ),
                    Restriction::IsLessThan(
                        FieldUri::LAST_MODIFIED_TIME,
                        "2025-01-01T00:00:00Z".into(),
                    ),
                ]),
            ])),
            parent_folder_ids: vec![
                BaseFolderId::distinguished(DistinguishedFolderName::SentItems),
                BaseFolderId::Folder(FolderId::new("f1")),
            ],
        };
        let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2016));
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(FindItemRequest::from_body(&env.body).unwrap(), req);
    }

    #[test]
    fn a_search_on_a_custom_extended_property_validates_and_round_trips() {
        use crate::extended::{ExtendedFieldUri, ExtendedProperty};
        let key = FieldUri::extended(&ExtendedFieldUri::named_string(
            "d0925a5d-722f-42f0-882e-a816636fa020",
            "ExsyncOutgoingId",
        ));
        let req = FindItemRequest {
            traversal: Traversal::Shallow,
            item_shape: ItemShape {
                base_shape: BaseShape::IdOnly,
                body_type: None,
                additional_properties: vec![FieldUri::INTERNET_MESSAGE_ID, key.clone()],
            },
            page: Some(IndexedPageView {
                max_entries_returned: 1,
                offset: 0,
                base_point_beginning: true,
            }),
            restriction: Some(Restriction::IsEqualTo(key.clone(), "row-1".into())),
            parent_folder_ids: vec![BaseFolderId::distinguished(
                DistinguishedFolderName::SentItems,
            )],
        };
        let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
        check_soap(&xml);
        assert!(xml.contains("<t:ExtendedFieldURI"), "{xml}");
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(FindItemRequest::from_body(&env.body).unwrap(), req);
        // The answer carries the property on the item.
        let resp = FindItemResponse {
            messages: vec![ResponseMessage::success(FindItemResult {
                indexed_paging_offset: Some(1),
                total_items_in_view: 1,
                includes_last_item_in_range: true,
                items: vec![Item::Message(Message {
                    base: ItemBase {
                        item_id: Some(ItemId::with_change_key("x", "y")),
                        extended_properties: vec![ExtendedProperty::new(
                            key.as_extended().unwrap(),
                            "row-1",
                        )],
                        ..Default::default()
                    },
                    internet_message_id: Some("<assigned@exchange>".into()),
                    ..Default::default()
                })],
            })],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        assert_eq!(
            FindItemResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
            resp
        );
    }

    #[test]
    fn response_round_trips_and_validates() {
        let resp = FindItemResponse {
            messages: vec![
                ResponseMessage::success(FindItemResult {
                    indexed_paging_offset: Some(2),
                    total_items_in_view: 7,
                    includes_last_item_in_range: false,
                    items: vec![Item::Message(Message {
                        base: ItemBase {
                            item_id: Some(ItemId::with_change_key("x", "y")),
                            ..Default::default()
                        },
                        internet_message_id: Some("<a@b>".into()),
                        ..Default::default()
                    })],
                }),
                ResponseMessage::error(ResponseCode::ERROR_ACCESS_DENIED, "Access is denied."),
            ],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        assert_eq!(
            FindItemResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
            resp
        );
    }
}

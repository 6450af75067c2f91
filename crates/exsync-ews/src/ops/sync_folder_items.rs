//! SyncFolderItems (EWS reference "SyncFolderItems operation"; messages.xsd SyncFolderItemsType,
//! SyncFolderItemsResponseMessageType): the changes in one folder since a sync state.
//!
//! Owns the request and response of this operation in both directions; it does not loop over
//! pages (the client does, while `includes_last_item_in_range` is false).

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{
    invalid, parse_bool, BaseFolderId, Item, ItemId, ItemShape, ResponseMessage, WireError,
};
use crate::xml::{Element, XmlLimits, XmlWriter};

use super::{first_payload, m_child, op_element, parse_response, write_response, RequestError};

const OP: &str = "SyncFolderItems";

/// `m:MaxChangesReturned` (MaxSyncChangesReturnedType): 1 to 512 changes per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxChangesReturned(u16);

impl MaxChangesReturned {
    /// The largest page Exchange allows.
    pub const MAX: MaxChangesReturned = MaxChangesReturned(512);

    /// A page size; outside 1..=512 is refused, as the schema does.
    pub fn new(n: u32) -> Result<Self, WireError> {
        match u16::try_from(n) {
            Ok(v) if (1..=512).contains(&v) => Ok(MaxChangesReturned(v)),
            _ => Err(invalid("MaxChangesReturned", &n.to_string())),
        }
    }

    /// The page size.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

/// `m:SyncScope` (SyncFolderItemsScopeType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncScope {
    /// Normal items only.
    NormalItems,
    /// Normal and folder-associated items.
    NormalAndAssociatedItems,
}

impl SyncScope {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncScope::NormalItems => "NormalItems",
            SyncScope::NormalAndAssociatedItems => "NormalAndAssociatedItems",
        }
    }
}

/// A SyncFolderItems request.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncFolderItemsRequest {
    /// `m:ItemShape`.
    pub item_shape: ItemShape,
    /// `m:SyncFolderId`.
    pub sync_folder_id: BaseFolderId,
    /// `m:SyncState` (absent for the first sync).
    pub sync_state: Option<String>,
    /// `m:Ignore`: items whose changes are not reported.
    pub ignore: Vec<ItemId>,
    /// `m:MaxChangesReturned`.
    pub max_changes_returned: MaxChangesReturned,
    /// `m:SyncScope`.
    pub sync_scope: Option<SyncScope>,
}

impl SyncFolderItemsRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:SyncFolderItems");
            self.item_shape.write(w, "m:ItemShape");
            w.start("m:SyncFolderId");
            self.sync_folder_id.write(w);
            w.end();
            if let Some(s) = &self.sync_state {
                w.leaf("m:SyncState", s);
            }
            if !self.ignore.is_empty() {
                w.start("m:Ignore");
                for id in &self.ignore {
                    id.write(w, "t:ItemId");
                }
                w.end();
            }
            w.leaf(
                "m:MaxChangesReturned",
                &self.max_changes_returned.get().to_string(),
            );
            if let Some(scope) = self.sync_scope {
                w.leaf("m:SyncScope", scope.as_str());
            }
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:SyncFolderItems` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let sync_folder_id = BaseFolderId::first_in(m_child(el, "SyncFolderId")?)?
            .ok_or(WireError::Missing("SyncFolderId/FolderId"))?;
        let ignore = match el.child(MESSAGES_NS, "Ignore") {
            Some(i) => i
                .children_named(TYPES_NS, "ItemId")
                .map(ItemId::from_element)
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let max = m_child(el, "MaxChangesReturned")?.text.trim();
        let max = max
            .parse::<u32>()
            .map_err(|_| invalid("MaxChangesReturned", max))
            .and_then(MaxChangesReturned::new)?;
        let sync_scope = match el.child_text(MESSAGES_NS, "SyncScope").map(str::trim) {
            None => None,
            Some("NormalItems") => Some(SyncScope::NormalItems),
            Some("NormalAndAssociatedItems") => Some(SyncScope::NormalAndAssociatedItems),
            Some(other) => return Err(invalid("SyncScope", other).into()),
        };
        Ok(SyncFolderItemsRequest {
            item_shape: ItemShape::from_element(m_child(el, "ItemShape")?)?,
            sync_folder_id,
            sync_state: el
                .child_text(MESSAGES_NS, "SyncState")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            ignore,
            max_changes_returned: max,
            sync_scope,
        })
    }
}

/// One change reported by SyncFolderItems (SyncFolderItemsChangesType).
#[derive(Debug, Clone, PartialEq)]
pub enum SyncItemChange {
    /// `t:Create`: a new item.
    Create(Item),
    /// `t:Update`: a changed item.
    Update(Item),
    /// `t:Delete`: the item is gone.
    Delete(ItemId),
    /// `t:ReadFlagChange`: only the read flag changed.
    ReadFlagChange {
        /// Which item.
        item_id: ItemId,
        /// The new flag.
        is_read: bool,
    },
}

/// The payload of a SyncFolderItems response message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncFolderItemsResult {
    /// `m:SyncState`: store it only together with the changes it covers.
    pub sync_state: String,
    /// `m:IncludesLastItemInRange`: false means ask again with the new state.
    pub includes_last_item_in_range: bool,
    /// `m:Changes`, in server order.
    pub changes: Vec<SyncItemChange>,
}

impl SyncFolderItemsResult {
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("m:SyncState", &self.sync_state);
        w.leaf(
            "m:IncludesLastItemInRange",
            if self.includes_last_item_in_range {
                "true"
            } else {
                "false"
            },
        );
        w.start("m:Changes");
        for change in &self.changes {
            match change {
                SyncItemChange::Create(item) => {
                    w.start("t:Create");
                    item.write(w);
                    w.end();
                }
                SyncItemChange::Update(item) => {
                    w.start("t:Update");
                    item.write(w);
                    w.end();
                }
                SyncItemChange::Delete(id) => {
                    w.start("t:Delete");
                    id.write(w, "t:ItemId");
                    w.end();
                }
                SyncItemChange::ReadFlagChange { item_id, is_read } => {
                    w.start("t:ReadFlagChange");
                    item_id.write(w, "t:ItemId");
                    w.leaf("t:IsRead", if *is_read { "true" } else { "false" });
                    w.end();
                }
            }
        }
        w.end();
    }

    fn from_message(message: &Element) -> Result<Self, WireError> {
        let mut changes = Vec::new();
        if let Some(list) = message.child(MESSAGES_NS, "Changes") {
            for c in list.children.iter().filter(|c| c.namespace == TYPES_NS) {
                let item_id = || -> Result<ItemId, WireError> {
                    ItemId::from_element(
                        c.child(TYPES_NS, "ItemId")
                            .ok_or(WireError::Missing("ItemId"))?,
                    )
                };
                let first_item = || -> Result<Option<Item>, WireError> {
                    for i in &c.children {
                        if let Some(item) = Item::from_element(i)? {
                            return Ok(Some(item));
                        }
                    }
                    Ok(None)
                };
                match c.name.as_str() {
                    // A create/update of an item kind this codec does not model is skipped.
                    "Create" => changes.extend(first_item()?.map(SyncItemChange::Create)),
                    "Update" => changes.extend(first_item()?.map(SyncItemChange::Update)),
                    "Delete" => changes.push(SyncItemChange::Delete(item_id()?)),
                    "ReadFlagChange" => changes.push(SyncItemChange::ReadFlagChange {
                        item_id: item_id()?,
                        is_read: parse_bool(
                            "IsRead",
                            c.child_text(TYPES_NS, "IsRead")
                                .ok_or(WireError::Missing("IsRead"))?,
                        )?,
                    }),
                    _ => {}
                }
            }
        }
        Ok(SyncFolderItemsResult {
            sync_state: message
                .child_text(MESSAGES_NS, "SyncState")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            includes_last_item_in_range: message
                .child_text(MESSAGES_NS, "IncludesLastItemInRange")
                .map(|b| parse_bool("IncludesLastItemInRange", b))
                .transpose()?
                .unwrap_or(true),
            changes,
        })
    }
}

/// A SyncFolderItems response (one message per request).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncFolderItemsResponse {
    /// The response messages.
    pub messages: Vec<ResponseMessage<SyncFolderItemsResult>>,
}

impl SyncFolderItemsResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |w, p| {
            if let Some(p) = p {
                p.write(w);
            }
        })
    }

    /// Read a response; faults and batch-level errors of the transport layer become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(SyncFolderItemsResponse {
            messages: parse_response(bytes, limits, OP, SyncFolderItemsResult::from_message)?,
        })
    }

    /// The result, or the error the (first) message reports (ErrorInvalidSyncStateData → InvalidSyncState, …).
    pub fn first(&self) -> Result<&SyncFolderItemsResult, EwsError> {
        first_payload(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_envelope, ExchangeVersion};
    use crate::test_support::check_soap;
    use crate::types::{
        BaseShape, DistinguishedFolderName, FieldUri, FolderId, Message, ResponseCode,
    };
    use std::time::Duration;

    /// Request sample from the "SyncFolderItems operation" reference page (ids shortened).
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
               xmlns:xsd="http://www.w3.org/2001/XMLSchema"
               xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <SyncFolderItems xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemShape>
        <t:BaseShape>AllProperties</t:BaseShape>
      </ItemShape>
      <SyncFolderId>
        <t:FolderId Id="AQAlAE1BQG1" ChangeKey="AQAAABYAAABSl6ba0mTaQqnDBs5sg5aCAAAAADcx" />
      </SyncFolderId>
      <SyncState>H4sIAAAAAAAEAO29B2AcSZY=</SyncState>
      <Ignore>
        <t:ItemId Id="AQAlAEFkbWluaXN0cmF0b3JAZnJvbnRpZXI=" ChangeKey="AQAAABYAAAA="/>
      </Ignore>
      <MaxChangesReturned>100</MaxChangesReturned>
    </SyncFolderItems>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample from the same page (Exchange 2007 build), with the other change kinds
    /// of SyncFolderItemsChangesType added in the same shape.
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
               xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="628" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <SyncFolderItemsResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                             xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                             xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:SyncFolderItemsResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBM=</m:SyncState>
          <m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>
          <m:Changes>
            <t:Create>
              <t:Message>
                <t:ItemId Id="AAAtAEFkbWluaXN0cmF0b3JAY29udG9zby5jb20ARgAAAAAA" ChangeKey="CQAAABYAAAA=" />
                <t:Subject>Subject</t:Subject>
                <t:UnknownFutureProperty>skipped</t:UnknownFutureProperty>
              </t:Message>
            </t:Create>
            <t:Update>
              <t:Message>
                <t:ItemId Id="AAAtAEFkbWluaXN0cmF0b3JAY29udG9zby5jb20ARgAAAAAB" ChangeKey="CQAAABYAAAB=" />
                <t:IsRead>true</t:IsRead>
                <t:Subject>Out of order, still read</t:Subject>
              </t:Message>
            </t:Update>
            <t:Delete>
              <t:ItemId Id="AAAtAEFkbWluaXN0cmF0b3JAY29udG9zby5jb20ARgAAAAAC" ChangeKey="CQAAABYAAAC=" />
            </t:Delete>
            <t:ReadFlagChange>
              <t:ItemId Id="AAAtAEFkbWluaXN0cmF0b3JAY29udG9zby5jb20ARgAAAAAD" ChangeKey="CQAAABYAAAD=" />
              <t:IsRead>false</t:IsRead>
            </t:ReadFlagChange>
          </m:Changes>
        </m:SyncFolderItemsResponseMessage>
      </m:ResponseMessages>
    </SyncFolderItemsResponse>
  </soap:Body>
</soap:Envelope>"#;

    fn request() -> SyncFolderItemsRequest {
        SyncFolderItemsRequest {
            item_shape: ItemShape {
                base_shape: BaseShape::IdOnly,
                body_type: None,
                additional_properties: vec![FieldUri::SUBJECT, FieldUri::IS_READ],
            },
            sync_folder_id: BaseFolderId::Distinguished {
                name: DistinguishedFolderName::Inbox,
                mailbox: Some("shared@contoso.test".into()),
            },
            sync_state: Some("H4sI+/=".into()),
            ignore: vec![ItemId::with_change_key("a", "b")],
            max_changes_returned: MaxChangesReturned::new(512).unwrap(),
            sync_scope: Some(SyncScope::NormalItems),
        }
    }

    #[test]
    fn documented_request_is_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = SyncFolderItemsRequest::from_body(&env.body).unwrap();
        assert_eq!(req.item_shape.base_shape, BaseShape::AllProperties);
        assert_eq!(
            req.sync_folder_id,
            BaseFolderId::Folder(FolderId {
                id: "AQAlAE1BQG1".into(),
                change_key: Some("AQAAABYAAABSl6ba0mTaQqnDBs5sg5aCAAAAADcx".into())
            })
        );
        assert_eq!(req.sync_state.as_deref(), Some("H4sIAAAAAAAEAO29B2AcSZY="));
        assert_eq!(req.ignore.len(), 1);
        assert_eq!(req.max_changes_returned.get(), 100);
        assert_eq!(req.sync_scope, None);
    }

    #[test]
    fn documented_response_is_read_with_every_change_kind() {
        let resp =
            SyncFolderItemsResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default()).unwrap();
        let result = resp.first().unwrap();
        assert!(result.includes_last_item_in_range);
        assert!(result.sync_state.starts_with("H4sIAAAAAAAEAO29"));
        assert_eq!(result.changes.len(), 4);
        let SyncItemChange::Create(Item::Message(created)) = &result.changes[0] else {
            panic!("not a create: {:?}", result.changes[0])
        };
        assert_eq!(created.base.subject.as_deref(), Some("Subject"));
        assert_eq!(
            created.base.item_id.as_ref().unwrap().change_key.as_deref(),
            Some("CQAAABYAAAA=")
        );
        let SyncItemChange::Update(Item::Message(updated)) = &result.changes[1] else {
            panic!("not an update")
        };
        assert_eq!(updated.is_read, Some(true));
        assert!(
            matches!(&result.changes[2], SyncItemChange::Delete(id) if id.id.ends_with("AAAAAC"))
        );
        assert!(matches!(
            &result.changes[3],
            SyncItemChange::ReadFlagChange { is_read: false, .. }
        ));
    }

    #[test]
    fn request_round_trips_and_validates() {
        let req = request();
        let header =
            RequestHeader::impersonating(ExchangeVersion::Exchange2013Sp1, "u@contoso.test");
        let xml = req.to_xml(&header);
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(SyncFolderItemsRequest::from_body(&env.body).unwrap(), req);
        let first = SyncFolderItemsRequest {
            sync_state: None,
            ignore: vec![],
            sync_scope: None,
            item_shape: ItemShape::new(BaseShape::IdOnly),
            sync_folder_id: BaseFolderId::distinguished(DistinguishedFolderName::Calendar),
            ..request()
        };
        let xml = first.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2016));
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(SyncFolderItemsRequest::from_body(&env.body).unwrap(), first);
    }

    #[test]
    fn response_round_trips_and_validates() {
        let message = Item::Message(Message {
            base: crate::types::ItemBase {
                item_id: Some(ItemId::with_change_key("m1", "ck1")),
                subject: Some("hello & <bye>".into()),
                ..Default::default()
            },
            is_read: Some(false),
            ..Default::default()
        });
        let resp = SyncFolderItemsResponse {
            messages: vec![ResponseMessage::success(SyncFolderItemsResult {
                sync_state: "state-2".into(),
                includes_last_item_in_range: false,
                changes: vec![
                    SyncItemChange::Create(message.clone()),
                    SyncItemChange::Update(message),
                    SyncItemChange::Delete(ItemId::new("gone")),
                    SyncItemChange::ReadFlagChange {
                        item_id: ItemId::with_change_key("r", "ck"),
                        is_read: true,
                    },
                ],
            })],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        assert_eq!(
            SyncFolderItemsResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
            resp
        );
    }

    #[test]
    fn invalid_sync_state_message_means_start_over() {
        let xml = super::super::error_response_xml(
            OP,
            &ResponseCode::ERROR_INVALID_SYNC_STATE_DATA,
            "Synchronization state data is corrupt or otherwise invalid.",
            None,
        );
        check_soap(&xml);
        let resp = SyncFolderItemsResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(matches!(resp.first(), Err(EwsError::InvalidSyncState)));
    }

    #[test]
    fn busy_message_with_http_200_carries_the_back_off() {
        let xml = super::super::error_response_xml(
            OP,
            &ResponseCode::ERROR_SERVER_BUSY,
            "The server cannot service this request right now. Try again later.",
            Some(Duration::from_millis(45_000)),
        );
        check_soap(&xml);
        let resp = SyncFolderItemsResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(
            resp.messages[0].back_off,
            Some(Duration::from_millis(45_000))
        );
        assert!(
            matches!(resp.first(), Err(EwsError::ServerBusy { back_off }) if back_off.as_secs() == 45)
        );
    }

    #[test]
    fn page_size_outside_1_to_512_is_refused() {
        assert!(MaxChangesReturned::new(0).is_err());
        assert!(MaxChangesReturned::new(513).is_err());
        assert_eq!(MaxChangesReturned::new(1).unwrap().get(), 1);
        let xml = DOC_REQUEST.replace(">100<", ">1000<");
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        let err = SyncFolderItemsRequest::from_body(&env.body).unwrap_err();
        assert_eq!(err.response_code(), ResponseCode::ERROR_SCHEMA_VALIDATION);
    }

    #[test]
    fn non_soap_reply_is_malformed() {
        let err = SyncFolderItemsResponse::parse(
            b"<html>Service Unavailable</html>",
            &XmlLimits::default(),
        )
        .unwrap_err();
        let EwsError::Malformed { excerpt } = err else {
            panic!("not malformed")
        };
        assert!(excerpt.contains("not a SOAP envelope"), "{excerpt}");
        assert!(excerpt.contains("Service Unavailable"), "{excerpt}");
        let err =
            SyncFolderItemsResponse::parse(b"<soap:Envelope", &XmlLimits::default()).unwrap_err();
        assert!(matches!(err, EwsError::Malformed { .. }));
    }
}

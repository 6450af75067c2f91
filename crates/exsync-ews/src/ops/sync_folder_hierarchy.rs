//! SyncFolderHierarchy (EWS reference "SyncFolderHierarchy operation"; messages.xsd
//! SyncFolderHierarchyType, SyncFolderHierarchyResponseMessageType): folder tree changes.
//!
//! Owns this operation's request and response in both directions.

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{
    parse_bool, read_properties, write_properties, BaseFolderId, BaseShape, FieldUri, Folder,
    FolderId, ResponseMessage, WireError,
};
use crate::xml::{Element, XmlLimits, XmlWriter};

use super::{first_payload, m_child, op_element, parse_response, write_response, RequestError};

const OP: &str = "SyncFolderHierarchy";

/// A SyncFolderHierarchy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFolderHierarchyRequest {
    /// `m:FolderShape/t:BaseShape`.
    pub folder_shape: BaseShape,
    /// `m:FolderShape/t:AdditionalProperties`.
    pub additional_properties: Vec<FieldUri>,
    /// `m:SyncFolderId` (absent: the whole mailbox).
    pub sync_folder_id: Option<BaseFolderId>,
    /// `m:SyncState` (absent for the first sync).
    pub sync_state: Option<String>,
}

impl SyncFolderHierarchyRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:SyncFolderHierarchy");
            w.start("m:FolderShape")
                .leaf("t:BaseShape", self.folder_shape.as_str());
            write_properties(w, &self.additional_properties);
            w.end();
            if let Some(f) = &self.sync_folder_id {
                w.start("m:SyncFolderId");
                f.write(w);
                w.end();
            }
            if let Some(s) = &self.sync_state {
                w.leaf("m:SyncState", s);
            }
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:SyncFolderHierarchy` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let sync_folder_id = match el.child(MESSAGES_NS, "SyncFolderId") {
            Some(f) => Some(
                BaseFolderId::first_in(f)?.ok_or(WireError::Missing("SyncFolderId/FolderId"))?,
            ),
            None => None,
        };
        let shape = m_child(el, "FolderShape")?;
        Ok(SyncFolderHierarchyRequest {
            folder_shape: shape
                .child_text(TYPES_NS, "BaseShape")
                .ok_or(WireError::Missing("FolderShape/BaseShape"))?
                .parse()?,
            additional_properties: read_properties(shape)?,
            sync_folder_id,
            sync_state: el
                .child_text(MESSAGES_NS, "SyncState")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        })
    }
}

/// One folder change (SyncFolderHierarchyChangesType).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderChange {
    /// `t:Create`.
    Create(Folder),
    /// `t:Update`.
    Update(Folder),
    /// `t:Delete`.
    Delete(FolderId),
}

/// The payload of a SyncFolderHierarchy response message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncFolderHierarchyResult {
    /// `m:SyncState`.
    pub sync_state: String,
    /// `m:IncludesLastFolderInRange`.
    pub includes_last_folder_in_range: bool,
    /// `m:Changes`.
    pub changes: Vec<FolderChange>,
}

impl SyncFolderHierarchyResult {
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("m:SyncState", &self.sync_state);
        w.leaf(
            "m:IncludesLastFolderInRange",
            if self.includes_last_folder_in_range {
                "true"
            } else {
                "false"
            },
        );
        w.start("m:Changes");
        for change in &self.changes {
            match change {
                FolderChange::Create(f) => {
                    w.start("t:Create");
                    f.write(w);
                    w.end();
                }
                FolderChange::Update(f) => {
                    w.start("t:Update");
                    f.write(w);
                    w.end();
                }
                FolderChange::Delete(id) => {
                    w.start("t:Delete");
                    id.write(w, "t:FolderId");
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
                let folder = || -> Result<Option<Folder>, WireError> {
                    Ok(Folder::all_in(c)?.into_iter().next())
                };
                match c.name.as_str() {
                    "Create" => changes.extend(folder()?.map(FolderChange::Create)),
                    "Update" => changes.extend(folder()?.map(FolderChange::Update)),
                    "Delete" => changes.push(FolderChange::Delete(FolderId::from_element(
                        c.child(TYPES_NS, "FolderId")
                            .ok_or(WireError::Missing("Delete/FolderId"))?,
                    )?)),
                    _ => {}
                }
            }
        }
        Ok(SyncFolderHierarchyResult {
            sync_state: message
                .child_text(MESSAGES_NS, "SyncState")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            includes_last_folder_in_range: message
                .child_text(MESSAGES_NS, "IncludesLastFolderInRange")
                .map(|b| parse_bool("IncludesLastFolderInRange", b))
                .transpose()?
                .unwrap_or(true),
            changes,
        })
    }
}

/// A SyncFolderHierarchy response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncFolderHierarchyResponse {
    /// The response messages.
    pub messages: Vec<ResponseMessage<SyncFolderHierarchyResult>>,
}

impl SyncFolderHierarchyResponse {
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
        Ok(SyncFolderHierarchyResponse {
            messages: parse_response(bytes, limits, OP, SyncFolderHierarchyResult::from_message)?,
        })
    }

    /// The result, or the error the first message reports.
    pub fn first(&self) -> Result<&SyncFolderHierarchyResult, EwsError> {
        first_payload(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_envelope, ExchangeVersion};
    use crate::test_support::check_soap;
    use crate::types::DistinguishedFolderName;

    /// Request sample from the "SyncFolderHierarchy operation" reference page.
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
               xmlns:xsd="http://www.w3.org/2001/XMLSchema"
               xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <SyncFolderHierarchy  xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <FolderShape>
        <t:BaseShape>AllProperties</t:BaseShape>
      </FolderShape>
      <SyncState>H4sIAAAAAAAEAO29B2AcSZY=</SyncState>
    </SyncFolderHierarchy>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample from the same page (ids shortened).
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
               xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="628" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <SyncFolderHierarchyResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                                 xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                                 xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:SyncFolderHierarchyResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQ==</m:SyncState>
          <m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange>
          <m:Changes>
            <t:Create>
              <t:Folder>
                <t:FolderId Id="AQAlAEFkbW" ChangeKey="AQAAABYAAAB" />
                <t:ParentFolderId Id="AQAlAEFkbX" ChangeKey="AQAAAA==" />
                <t:FolderClass>IPF.Note</t:FolderClass>
                <t:DisplayName>NewFolder</t:DisplayName>
                <t:TotalCount>0</t:TotalCount>
                <t:ChildFolderCount>0</t:ChildFolderCount>
                <t:UnreadCount>0</t:UnreadCount>
              </t:Folder>
            </t:Create>
            <t:Create>
              <t:CalendarFolder>
                <t:FolderId Id="AQAlAEFkbY" ChangeKey="AgAAABYAAAB" />
                <t:ParentFolderId Id="AQAlAEFkbX" ChangeKey="AQAAAA==" />
                <t:FolderClass>IPF.Appointment</t:FolderClass>
                <t:DisplayName>Calendar</t:DisplayName>
                <t:TotalCount>0</t:TotalCount>
                <t:ChildFolderCount>0</t:ChildFolderCount>
              </t:CalendarFolder>
            </t:Create>
            <t:Delete>
              <t:FolderId Id="AQAlAEFkbZ" ChangeKey="AwAAABYAAAB" />
            </t:Delete>
          </m:Changes>
        </m:SyncFolderHierarchyResponseMessage>
      </m:ResponseMessages>
    </SyncFolderHierarchyResponse>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn documented_request_and_response_are_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = SyncFolderHierarchyRequest::from_body(&env.body).unwrap();
        assert_eq!(req.folder_shape, BaseShape::AllProperties);
        assert_eq!(req.sync_folder_id, None);
        assert_eq!(req.sync_state.as_deref(), Some("H4sIAAAAAAAEAO29B2AcSZY="));

        let resp =
            SyncFolderHierarchyResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default())
                .unwrap();
        let result = resp.first().unwrap();
        assert!(result.includes_last_folder_in_range);
        assert_eq!(result.changes.len(), 3);
        let FolderChange::Create(calendar) = &result.changes[1] else {
            panic!("not a create")
        };
        assert_eq!(calendar.folder_class.as_deref(), Some("IPF.Appointment"));
        assert_eq!(calendar.display_name.as_deref(), Some("Calendar"));
        assert!(matches!(&result.changes[2], FolderChange::Delete(id) if id.id == "AQAlAEFkbZ"));
    }

    #[test]
    fn request_and_response_round_trip_and_validate() {
        let req = SyncFolderHierarchyRequest {
            folder_shape: BaseShape::IdOnly,
            additional_properties: vec![],
            sync_folder_id: Some(BaseFolderId::distinguished(
                DistinguishedFolderName::MsgFolderRoot,
            )),
            sync_state: Some("s1".into()),
        };
        let xml = req.to_xml(&RequestHeader::new(ExchangeVersion::Exchange2016));
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(
            SyncFolderHierarchyRequest::from_body(&env.body).unwrap(),
            req
        );

        let resp = SyncFolderHierarchyResponse {
            messages: vec![ResponseMessage::success(SyncFolderHierarchyResult {
                sync_state: "s2".into(),
                includes_last_folder_in_range: false,
                changes: vec![
                    FolderChange::Create(Folder {
                        folder_id: Some(FolderId::new("a")),
                        display_name: Some("Projects".into()),
                        folder_class: Some("IPF.Note".into()),
                        ..Default::default()
                    }),
                    FolderChange::Update(Folder {
                        folder_id: Some(FolderId::new("b")),
                        unread_count: Some(4),
                        ..Default::default()
                    }),
                    FolderChange::Delete(FolderId::new("c")),
                ],
            })],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        assert_eq!(
            SyncFolderHierarchyResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
            resp
        );
    }
}

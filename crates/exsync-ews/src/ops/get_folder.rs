//! GetFolder (EWS reference "GetFolder operation"; messages.xsd GetFolderType,
//! FolderInfoResponseMessageType): read folders by id or well-known name.
//!
//! Owns this operation's request and response in both directions; one message per folder id.

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{
    read_properties, write_properties, BaseFolderId, BaseShape, FieldUri, Folder, ResponseMessage,
    WireError,
};
use crate::xml::{Element, XmlLimits};

use super::{first_payload, m_child, op_element, parse_response, write_response, RequestError};

const OP: &str = "GetFolder";

/// A GetFolder request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetFolderRequest {
    /// `m:FolderShape/t:BaseShape`.
    pub folder_shape: BaseShape,
    /// `m:FolderShape/t:AdditionalProperties` (`folder:DisplayName`, `folder:TotalCount`, …).
    pub additional_properties: Vec<FieldUri>,
    /// `m:FolderIds`.
    pub folder_ids: Vec<BaseFolderId>,
}

impl GetFolderRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:GetFolder");
            w.start("m:FolderShape")
                .leaf("t:BaseShape", self.folder_shape.as_str());
            write_properties(w, &self.additional_properties);
            w.end();
            w.start("m:FolderIds");
            for f in &self.folder_ids {
                f.write(w);
            }
            w.end();
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:GetFolder` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let folder_ids = BaseFolderId::all_in(m_child(el, "FolderIds")?)?;
        if folder_ids.is_empty() {
            return Err(WireError::Missing("FolderIds/FolderId").into());
        }
        let shape = m_child(el, "FolderShape")?;
        Ok(GetFolderRequest {
            folder_shape: shape
                .child_text(TYPES_NS, "BaseShape")
                .ok_or(WireError::Missing("FolderShape/BaseShape"))?
                .parse()?,
            additional_properties: read_properties(shape)?,
            folder_ids,
        })
    }
}

/// A GetFolder response: one message per requested folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetFolderResponse {
    /// The response messages, in request order.
    pub messages: Vec<ResponseMessage<Folder>>,
}

impl GetFolderResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |w, folder| {
            if let Some(folder) = folder {
                w.start("m:Folders");
                folder.write(w);
                w.end();
            }
        })
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(GetFolderResponse {
            messages: parse_response(bytes, limits, OP, |message| {
                let folders = message
                    .child(MESSAGES_NS, "Folders")
                    .ok_or(WireError::Missing("Folders"))?;
                Folder::all_in(folders)?
                    .into_iter()
                    .next()
                    .ok_or(WireError::Missing("Folders/Folder"))
            })?,
        })
    }

    /// The first folder, or the error its message reports.
    pub fn first(&self) -> Result<&Folder, EwsError> {
        first_payload(&self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{parse_envelope, ExchangeVersion};
    use crate::test_support::check_soap;
    use crate::types::{DistinguishedFolderName, FieldUri, FolderId, ResponseCode};

    /// Request sample from the "GetFolder operation" reference page.
    const DOC_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Body>
    <GetFolder xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <FolderShape>
        <t:BaseShape>Default</t:BaseShape>
      </FolderShape>
      <FolderIds>
        <t:DistinguishedFolderId Id="inbox"/>
      </FolderIds>
    </GetFolder>
  </soap:Body>
</soap:Envelope>"#;

    /// Response sample from the same page.
    const DOC_RESPONSE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soap:Header>
    <t:ServerVersionInfo MajorVersion="8" MinorVersion="0" MajorBuildNumber="595" MinorBuildNumber="0"
                         xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" />
  </soap:Header>
  <soap:Body>
    <GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                       xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                       xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <m:ResponseMessages>
        <m:GetFolderResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Folders>
            <t:Folder>
              <t:FolderId Id="AQApAHRw" ChangeKey="AQAAABYAAAB" />
              <t:DisplayName>Inbox</t:DisplayName>
              <t:TotalCount>2</t:TotalCount>
              <t:ChildFolderCount>0</t:ChildFolderCount>
              <t:UnreadCount>2</t:UnreadCount>
            </t:Folder>
          </m:Folders>
        </m:GetFolderResponseMessage>
      </m:ResponseMessages>
    </GetFolderResponse>
  </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn documented_request_and_response_are_read() {
        let env = parse_envelope(DOC_REQUEST.as_bytes(), &XmlLimits::default()).unwrap();
        let req = GetFolderRequest::from_body(&env.body).unwrap();
        assert_eq!(req.folder_shape, BaseShape::Default);
        assert_eq!(
            req.folder_ids,
            vec![BaseFolderId::distinguished(DistinguishedFolderName::Inbox)]
        );
        let resp =
            GetFolderResponse::parse(DOC_RESPONSE.as_bytes(), &XmlLimits::default()).unwrap();
        let folder = resp.first().unwrap();
        assert_eq!(folder.display_name.as_deref(), Some("Inbox"));
        assert_eq!(folder.total_count, Some(2));
        assert_eq!(folder.child_folder_count, Some(0));
        assert_eq!(folder.unread_count, Some(2));
        assert_eq!(
            folder.folder_id.as_ref().map(|f| f.id.as_str()),
            Some("AQApAHRw")
        );
    }

    #[test]
    fn request_round_trips_and_validates() {
        let req = GetFolderRequest {
            folder_shape: BaseShape::IdOnly,
            additional_properties: vec![
                FieldUri::FOLDER_DISPLAY_NAME,
                FieldUri::new("folder:TotalCount"),
            ],
            folder_ids: vec![
                BaseFolderId::Distinguished {
                    name: DistinguishedFolderName::Calendar,
                    mailbox: Some("boss@contoso.test".into()),
                },
                BaseFolderId::Folder(FolderId {
                    id: "f".into(),
                    change_key: Some("c".into()),
                }),
            ],
        };
        let xml = req.to_xml(&RequestHeader::impersonating(
            ExchangeVersion::Exchange2013Sp1,
            "a@contoso.test",
        ));
        check_soap(&xml);
        let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(GetFolderRequest::from_body(&env.body).unwrap(), req);
    }

    #[test]
    fn response_round_trips_and_validates() {
        let resp = GetFolderResponse {
            messages: vec![
                ResponseMessage::success(Folder {
                    folder_id: Some(FolderId::new("cal")),
                    parent_folder_id: Some(FolderId::new("root")),
                    folder_class: Some("IPF.Appointment".into()),
                    display_name: Some("Calendar".into()),
                    total_count: Some(3),
                    child_folder_count: Some(0),
                    unread_count: Some(0),
                }),
                ResponseMessage::error(
                    ResponseCode::ERROR_NON_EXISTENT_MAILBOX,
                    "The SMTP address has no mailbox associated with it.",
                ),
            ],
        };
        let xml = resp.to_xml();
        check_soap(&xml);
        let back = GetFolderResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(back, resp);
        assert!(matches!(
            back.messages[1].to_error(),
            Some(EwsError::MailboxNotFound { .. })
        ));
    }
}

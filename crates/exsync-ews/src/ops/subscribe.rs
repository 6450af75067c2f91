//! Subscribe with a StreamingSubscriptionRequest (messages.xsd SubscribeType,
//! SubscribeResponseMessageType; types.xsd StreamingSubscriptionRequestType): ask Exchange to
//! remember which folders and events a later GetStreamingEvents connection reports.
//!
//! Owns the streaming subscription's request and response in both directions, and the
//! notification event types (shared with [`super::get_streaming_events`]). Pull and push
//! subscriptions are not modelled: the server side answers them ErrorInvalidSubscriptionRequest.

use crate::client::EwsOperation;
use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{invalid, BaseFolderId, ResponseMessage, WireError};
use crate::xml::{Element, XmlLimits};

use super::{first_payload, m_child, op_element, parse_response, write_response, RequestError};

const OP: &str = "Subscribe";

/// The events a subscription reports (NotificationEventTypeType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// An item or folder was copied.
    Copied,
    /// An item or folder was created.
    Created,
    /// An item or folder was deleted.
    Deleted,
    /// An item or folder changed.
    Modified,
    /// An item or folder was moved.
    Moved,
    /// Mail arrived.
    NewMail,
    /// A calendar item's free/busy changed.
    FreeBusyChanged,
}

impl EventType {
    /// The events exsync subscribes to: whatever can change what a sync pass imports.
    pub const SYNC_RELEVANT: [EventType; 5] = [
        EventType::Created,
        EventType::Deleted,
        EventType::Modified,
        EventType::Moved,
        EventType::NewMail,
    ];

    /// The schema's name (`EventType` text and the event element's name).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Copied => "CopiedEvent",
            EventType::Created => "CreatedEvent",
            EventType::Deleted => "DeletedEvent",
            EventType::Modified => "ModifiedEvent",
            EventType::Moved => "MovedEvent",
            EventType::NewMail => "NewMailEvent",
            EventType::FreeBusyChanged => "FreeBusyChangedEvent",
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        Ok(match s.trim() {
            "CopiedEvent" => EventType::Copied,
            "CreatedEvent" => EventType::Created,
            "DeletedEvent" => EventType::Deleted,
            "ModifiedEvent" => EventType::Modified,
            "MovedEvent" => EventType::Moved,
            "NewMailEvent" => EventType::NewMail,
            "FreeBusyChangedEvent" => EventType::FreeBusyChanged,
            other => return Err(invalid("EventType", other)),
        })
    }
}

/// A Subscribe request for a streaming subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// `@SubscribeToAllFolders`.
    pub subscribe_to_all_folders: Option<bool>,
    /// `t:FolderIds` (absent with SubscribeToAllFolders).
    pub folder_ids: Vec<BaseFolderId>,
    /// `t:EventTypes`.
    pub event_types: Vec<EventType>,
}

impl SubscribeRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:Subscribe");
            w.start("m:StreamingSubscriptionRequest");
            if let Some(all) = self.subscribe_to_all_folders {
                w.attr("SubscribeToAllFolders", if all { "true" } else { "false" });
            }
            if !self.folder_ids.is_empty() {
                w.start("t:FolderIds");
                for id in &self.folder_ids {
                    id.write(w);
                }
                w.end();
            }
            w.start("t:EventTypes");
            for event in &self.event_types {
                w.leaf("t:EventType", event.as_str());
            }
            w.end();
            w.end();
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:Subscribe` element itself); a pull or
    /// push subscription is [`RequestError::Wire`] (the caller answers it as Exchange would).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let streaming = m_child(el, "StreamingSubscriptionRequest")?;
        let all = match streaming.attr("SubscribeToAllFolders").map(str::trim) {
            None => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(other) => return Err(invalid("@SubscribeToAllFolders", other).into()),
        };
        let folder_ids = match streaming.child(TYPES_NS, "FolderIds") {
            Some(ids) => BaseFolderId::all_in(ids)?,
            None => Vec::new(),
        };
        let event_types = streaming
            .child(TYPES_NS, "EventTypes")
            .ok_or(WireError::Missing("EventTypes"))?
            .children_named(TYPES_NS, "EventType")
            .map(|e| e.text.parse())
            .collect::<Result<Vec<EventType>, _>>()?;
        if event_types.is_empty() {
            return Err(WireError::Missing("EventTypes/EventType").into());
        }
        Ok(SubscribeRequest {
            subscribe_to_all_folders: all,
            folder_ids,
            event_types,
        })
    }
}

/// What a successful Subscribe returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `m:SubscriptionId`: names the subscription in GetStreamingEvents and Unsubscribe.
    pub subscription_id: String,
    /// `m:Watermark` (pull subscriptions; streaming ones normally carry none).
    pub watermark: Option<String>,
}

/// A Subscribe response: one message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscribeResponse {
    /// The response messages.
    pub messages: Vec<ResponseMessage<Subscription>>,
}

impl SubscribeResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |w, payload| {
            if let Some(s) = payload {
                w.leaf("m:SubscriptionId", &s.subscription_id);
                if let Some(mark) = &s.watermark {
                    w.leaf("m:Watermark", mark);
                }
            }
        })
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(SubscribeResponse {
            messages: parse_response(bytes, limits, OP, |m| {
                Ok(Subscription {
                    subscription_id: m
                        .child_text(MESSAGES_NS, "SubscriptionId")
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .ok_or(WireError::Missing("SubscriptionId"))?
                        .to_owned(),
                    watermark: m
                        .child_text(MESSAGES_NS, "Watermark")
                        .map(|s| s.trim().to_owned()),
                })
            })?,
        })
    }

    /// The subscription, or the error the first message reports.
    pub fn first(&self) -> Result<&Subscription, EwsError> {
        first_payload(&self.messages)
    }
}

impl EwsOperation for SubscribeRequest {
    const NAME: &'static str = OP;
    type Response = SubscribeResponse;
    fn envelope(&self, header: &RequestHeader) -> String {
        self.to_xml(header)
    }
    fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<SubscribeResponse, EwsError> {
        SubscribeResponse::parse(bytes, limits)
    }
    fn busy(response: &SubscribeResponse) -> Option<std::time::Duration> {
        response.messages.iter().find_map(|m| match m.to_error() {
            Some(EwsError::ServerBusy { back_off }) => Some(back_off),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{parse_request, EwsRequest};
    use crate::soap::ExchangeVersion;
    use crate::test_support::check_soap;
    use crate::types::{DistinguishedFolderName, ResponseCode};

    #[test]
    fn a_streaming_subscription_round_trips_and_validates() {
        let request = SubscribeRequest {
            subscribe_to_all_folders: None,
            folder_ids: vec![
                BaseFolderId::distinguished(DistinguishedFolderName::Inbox),
                BaseFolderId::distinguished(DistinguishedFolderName::Calendar),
            ],
            event_types: EventType::SYNC_RELEVANT.to_vec(),
        };
        let header = RequestHeader::impersonating(ExchangeVersion::Exchange2013Sp1, "a@b.test");
        let xml = request.to_xml(&header);
        check_soap(&xml);
        let (h, parsed) = parse_request(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(h, header);
        assert_eq!(parsed, EwsRequest::Subscribe(request));

        let response = SubscribeResponse {
            messages: vec![ResponseMessage::success(Subscription {
                subscription_id: "JgBleGNoMDE=".into(),
                watermark: None,
            })],
        };
        let xml = response.to_xml();
        check_soap(&xml);
        assert_eq!(
            SubscribeResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
            response
        );
        let refused = SubscribeResponse {
            messages: vec![ResponseMessage::error(
                ResponseCode::new("ErrorExceededSubscriptionCount"),
                "You have exceeded the available subscriptions for your account.",
            )],
        };
        let xml = refused.to_xml();
        check_soap(&xml);
        let back = SubscribeResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(matches!(back.first(), Err(EwsError::ServerBusy { .. })));
    }

    #[test]
    fn malformed_subscriptions_are_refused_by_the_strict_reader() {
        let header = RequestHeader::new(ExchangeVersion::Exchange2013Sp1);
        let good = SubscribeRequest {
            subscribe_to_all_folders: Some(false),
            folder_ids: vec![BaseFolderId::distinguished(DistinguishedFolderName::Inbox)],
            event_types: vec![EventType::NewMail],
        }
        .to_xml(&header);
        assert!(parse_request(good.as_bytes(), &XmlLimits::default()).is_ok());
        for broken in [
            // An event type outside the enumeration.
            good.replace("NewMailEvent", "ArrivedEvent"),
            // No event types at all.
            good.replace("<t:EventType>NewMailEvent</t:EventType>", ""),
            // EventTypes before FolderIds.
            good.replace(
                "<t:FolderIds><t:DistinguishedFolderId Id=\"inbox\" /></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>",
                "<t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes><t:FolderIds><t:DistinguishedFolderId Id=\"inbox\" /></t:FolderIds>",
            ),
            // A boolean that is not one.
            good.replace("SubscribeToAllFolders=\"false\"", "SubscribeToAllFolders=\"maybe\""),
            // An unknown subscription kind.
            good.replace("StreamingSubscriptionRequest", "CarrierPigeonSubscriptionRequest"),
        ] {
            assert_ne!(broken, good, "the mutation did not apply");
            let err = parse_request(broken.as_bytes(), &XmlLimits::default()).unwrap_err();
            assert_eq!(
                err.response_code(),
                ResponseCode::ERROR_SCHEMA_VALIDATION,
                "{err}"
            );
        }
    }
}

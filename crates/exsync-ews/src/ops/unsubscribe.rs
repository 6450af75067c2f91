//! Unsubscribe (messages.xsd UnsubscribeType; its response message is a plain
//! ResponseMessageType): end a subscription, so Exchange stops keeping its events.
//!
//! Owns this operation's request and response in both directions.

use crate::client::EwsOperation;
use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS};
use crate::types::{ResponseMessage, WireError};
use crate::xml::{Element, XmlLimits};

use super::{first_payload, op_element, parse_response, write_response, RequestError};

const OP: &str = "Unsubscribe";

/// An Unsubscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeRequest {
    /// `m:SubscriptionId`.
    pub subscription_id: String,
}

impl UnsubscribeRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:Unsubscribe")
                .leaf("m:SubscriptionId", &self.subscription_id)
                .end();
        })
    }

    /// Read the request from the SOAP body (or the `m:Unsubscribe` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let id = el
            .child_text(MESSAGES_NS, "SubscriptionId")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(WireError::Missing("SubscriptionId"))?;
        Ok(UnsubscribeRequest {
            subscription_id: id.to_owned(),
        })
    }
}

/// An Unsubscribe response: one message, no content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnsubscribeResponse {
    /// The response messages.
    pub messages: Vec<ResponseMessage<()>>,
}

impl UnsubscribeResponse {
    /// The whole response envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |_, _| {})
    }

    /// Read a response; faults and unreadable replies become [`EwsError`].
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        Ok(UnsubscribeResponse {
            messages: parse_response(bytes, limits, OP, |_| Ok(()))?,
        })
    }

    /// `Ok` when the first message succeeded, else its error.
    pub fn first(&self) -> Result<&(), EwsError> {
        first_payload(&self.messages)
    }
}

impl EwsOperation for UnsubscribeRequest {
    const NAME: &'static str = OP;
    type Response = UnsubscribeResponse;
    fn envelope(&self, header: &RequestHeader) -> String {
        self.to_xml(header)
    }
    fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<UnsubscribeResponse, EwsError> {
        UnsubscribeResponse::parse(bytes, limits)
    }
    fn busy(response: &UnsubscribeResponse) -> Option<std::time::Duration> {
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
    use crate::types::ResponseCode;

    #[test]
    fn unsubscribe_round_trips_and_validates() {
        let request = UnsubscribeRequest {
            subscription_id: "JgBleGNoMDE=".into(),
        };
        let header = RequestHeader::new(ExchangeVersion::Exchange2013Sp1);
        let xml = request.to_xml(&header);
        check_soap(&xml);
        let (_, parsed) = parse_request(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(parsed, EwsRequest::Unsubscribe(request));
        for response in [
            UnsubscribeResponse {
                messages: vec![ResponseMessage::success(())],
            },
            UnsubscribeResponse {
                messages: vec![ResponseMessage::error(
                    ResponseCode::new("ErrorSubscriptionNotFound"),
                    "The specified subscription was not found.",
                )],
            },
        ] {
            let xml = response.to_xml();
            check_soap(&xml);
            assert_eq!(
                UnsubscribeResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
                response
            );
        }
        // An empty or missing id is refused like Exchange refuses it.
        for broken in [
            xml.replace("JgBleGNoMDE=", ""),
            xml.replace("<m:SubscriptionId>JgBleGNoMDE=</m:SubscriptionId>", ""),
        ] {
            assert!(parse_request(broken.as_bytes(), &XmlLimits::default()).is_err());
        }
    }
}

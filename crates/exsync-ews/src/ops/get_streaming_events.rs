//! GetStreamingEvents (messages.xsd GetStreamingEventsType,
//! GetStreamingEventsResponseMessageType; types.xsd NotificationType and the event types): one
//! long-lived HTTP response that carries a sequence of whole SOAP envelopes, each with
//! notifications, a keep-alive `ConnectionStatus` OK, or the final `ConnectionStatus` Closed.
//!
//! Owns the request, each response envelope in both directions, and [`EnvelopeSplitter`], the
//! bounded reader that cuts the chunked stream into envelopes.

use chrono::{DateTime, Utc};

use crate::error::EwsError;
use crate::soap::{request_envelope, RequestHeader, MESSAGES_NS, TYPES_NS};
use crate::types::{
    format_time, invalid, parse_time, FolderId, ItemId, ResponseClass, ResponseCode,
    ResponseMessage, WireError,
};
use crate::xml::{Element, XmlLimits, XmlWriter};

use super::subscribe::EventType;
use super::{op_element, write_response, RequestError};

const OP: &str = "GetStreamingEvents";

/// Most subscriptions one GetStreamingEvents connection may carry (Exchange's documented cap).
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 200;

/// A GetStreamingEvents request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStreamingEventsRequest {
    /// `m:SubscriptionIds`.
    pub subscription_ids: Vec<String>,
    /// `m:ConnectionTimeout`: minutes the server keeps the response open (1..=30).
    pub connection_timeout_minutes: u8,
}

impl GetStreamingEventsRequest {
    /// The whole request envelope.
    pub fn to_xml(&self, header: &RequestHeader) -> String {
        request_envelope(header, |w| {
            w.start("m:GetStreamingEvents");
            w.start("m:SubscriptionIds");
            for id in &self.subscription_ids {
                w.leaf("t:SubscriptionId", id);
            }
            w.end();
            w.leaf(
                "m:ConnectionTimeout",
                &self.connection_timeout_minutes.to_string(),
            );
            w.end();
        })
    }

    /// Read the request from the SOAP body (or the `m:GetStreamingEvents` element itself).
    pub fn from_body(body: &Element) -> Result<Self, RequestError> {
        let el = op_element(body, OP)?;
        let ids = el
            .child(MESSAGES_NS, "SubscriptionIds")
            .ok_or(WireError::Missing("SubscriptionIds"))?;
        let subscription_ids = subscription_ids_in(ids);
        if subscription_ids.is_empty() {
            return Err(WireError::Missing("SubscriptionIds/SubscriptionId").into());
        }
        let timeout = el
            .child_text(MESSAGES_NS, "ConnectionTimeout")
            .ok_or(WireError::Missing("ConnectionTimeout"))?
            .trim();
        let connection_timeout_minutes = timeout
            .parse::<u8>()
            .ok()
            .filter(|m| (1..=30).contains(m))
            .ok_or_else(|| invalid("ConnectionTimeout", timeout))?;
        Ok(GetStreamingEventsRequest {
            subscription_ids,
            connection_timeout_minutes,
        })
    }
}

fn subscription_ids_in(parent: &Element) -> Vec<String> {
    parent
        .children_named(TYPES_NS, "SubscriptionId")
        .map(|e| e.text.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `ConnectionStatus`: the connection stays open (a keep-alive) or is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Still open.
    Ok,
    /// The server ends the response after this envelope (ConnectionTimeout reached).
    Closed,
}

impl ConnectionStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Ok => "OK",
            ConnectionStatus::Closed => "Closed",
        }
    }
}

/// The changed object of an event: an item or a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedObject {
    /// `t:ItemId`.
    Item(ItemId),
    /// `t:FolderId`.
    Folder(FolderId),
}

/// Where a moved or copied object was before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldLocation {
    /// `t:OldItemId` or `t:OldFolderId`.
    pub object: ChangedObject,
    /// `t:OldParentFolderId`.
    pub parent_folder_id: FolderId,
}

/// One event of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationEvent {
    /// `t:StatusEvent`: nothing changed (pull/push heartbeat).
    Status {
        /// `t:Watermark`.
        watermark: Option<String>,
    },
    /// An object event (created, deleted, modified, moved, copied, new mail, free/busy).
    Object {
        /// Which event.
        kind: EventType,
        /// `t:Watermark`.
        watermark: Option<String>,
        /// `t:TimeStamp`.
        time_stamp: DateTime<Utc>,
        /// The item or folder.
        object: ChangedObject,
        /// `t:ParentFolderId`.
        parent_folder_id: FolderId,
        /// Moved and copied events: where it was.
        old: Option<Box<OldLocation>>,
        /// Modified events on folders: `t:UnreadCount`.
        unread_count: Option<i32>,
    },
}

/// One `m:Notification`: the events of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `t:SubscriptionId`.
    pub subscription_id: String,
    /// `t:PreviousWatermark`.
    pub previous_watermark: Option<String>,
    /// `t:MoreEvents`.
    pub more_events: Option<bool>,
    /// At least one event.
    pub events: Vec<NotificationEvent>,
}

/// The content of one GetStreamingEvents response message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamingEvents {
    /// `m:Notifications`.
    pub notifications: Vec<Notification>,
    /// `m:ErrorSubscriptionIds`: the subscriptions an error message is about.
    pub error_subscription_ids: Vec<String>,
    /// `m:ConnectionStatus`.
    pub connection_status: Option<ConnectionStatus>,
}

/// One envelope of the stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetStreamingEventsResponse {
    /// The response messages (errors carry their `ErrorSubscriptionIds` as payload too).
    pub messages: Vec<ResponseMessage<StreamingEvents>>,
}

impl GetStreamingEventsResponse {
    /// One whole envelope.
    pub fn to_xml(&self) -> String {
        write_response(OP, &self.messages, |w, payload| {
            if let Some(p) = payload {
                write_events(w, p);
            }
        })
    }

    /// Read one envelope; faults and unreadable envelopes become [`EwsError`]. Unlike other
    /// operations an Error-class message keeps its content (the subscriptions it is about).
    pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self, EwsError> {
        let envelope =
            crate::soap::parse_envelope(bytes, limits).map_err(|e| EwsError::Malformed {
                excerpt: crate::error::excerpt(&format!("{e}")),
            })?;
        if let Some(fault) = envelope.fault() {
            return Err(fault.into_error());
        }
        let response = envelope
            .body
            .child(MESSAGES_NS, "GetStreamingEventsResponse")
            .ok_or_else(|| EwsError::Malformed {
                excerpt: "SOAP body without m:GetStreamingEventsResponse".into(),
            })?;
        let list = response
            .child(MESSAGES_NS, "ResponseMessages")
            .ok_or_else(|| EwsError::Malformed {
                excerpt: "response without m:ResponseMessages".into(),
            })?;
        let mut messages = Vec::new();
        for message in list.children.iter().filter(|c| c.namespace == MESSAGES_NS) {
            let class: ResponseClass = message
                .attr("ResponseClass")
                .ok_or(WireError::Missing("@ResponseClass"))?
                .parse()?;
            let code = match message.child_text(MESSAGES_NS, "ResponseCode") {
                Some(c) => ResponseCode::new(c.trim()),
                None if class == ResponseClass::Error => ResponseCode::ERROR_INTERNAL_SERVER_ERROR,
                None => ResponseCode::NO_ERROR,
            };
            messages.push(ResponseMessage {
                class,
                code,
                message_text: message
                    .child_text(MESSAGES_NS, "MessageText")
                    .map(str::to_owned),
                back_off: crate::soap::back_off_from(message.child(MESSAGES_NS, "MessageXml")),
                payload: Some(read_events(message)?),
            });
        }
        Ok(GetStreamingEventsResponse { messages })
    }
}

fn write_events(w: &mut XmlWriter, p: &StreamingEvents) {
    if !p.notifications.is_empty() {
        w.start("m:Notifications");
        for n in &p.notifications {
            w.start("t:Notification");
            w.leaf("t:SubscriptionId", &n.subscription_id);
            if let Some(mark) = &n.previous_watermark {
                w.leaf("t:PreviousWatermark", mark);
            }
            if let Some(more) = n.more_events {
                w.leaf("t:MoreEvents", if more { "true" } else { "false" });
            }
            for event in &n.events {
                write_event(w, event);
            }
            w.end();
        }
        w.end();
    }
    if !p.error_subscription_ids.is_empty() {
        w.start("m:ErrorSubscriptionIds");
        for id in &p.error_subscription_ids {
            w.leaf("t:SubscriptionId", id);
        }
        w.end();
    }
    if let Some(status) = p.connection_status {
        w.leaf("m:ConnectionStatus", status.as_str());
    }
}

fn write_object(w: &mut XmlWriter, object: &ChangedObject, item: &str, folder: &str) {
    match object {
        ChangedObject::Item(id) => id.write(w, item),
        ChangedObject::Folder(id) => id.write(w, folder),
    }
}

fn write_event(w: &mut XmlWriter, event: &NotificationEvent) {
    match event {
        NotificationEvent::Status { watermark } => {
            w.start("t:StatusEvent");
            if let Some(mark) = watermark {
                w.leaf("t:Watermark", mark);
            }
            w.end();
        }
        NotificationEvent::Object {
            kind,
            watermark,
            time_stamp,
            object,
            parent_folder_id,
            old,
            unread_count,
        } => {
            w.start(&format!("t:{}", kind.as_str()));
            if let Some(mark) = watermark {
                w.leaf("t:Watermark", mark);
            }
            w.leaf("t:TimeStamp", &format_time(time_stamp));
            write_object(w, object, "t:ItemId", "t:FolderId");
            parent_folder_id.write(w, "t:ParentFolderId");
            if matches!(kind, EventType::Moved | EventType::Copied) {
                if let Some(old) = old {
                    write_object(w, &old.object, "t:OldItemId", "t:OldFolderId");
                    old.parent_folder_id.write(w, "t:OldParentFolderId");
                }
            }
            if *kind == EventType::Modified {
                if let Some(count) = unread_count {
                    w.leaf("t:UnreadCount", &count.to_string());
                }
            }
            w.end();
        }
    }
}

fn read_events(message: &Element) -> Result<StreamingEvents, WireError> {
    let mut out = StreamingEvents::default();
    if let Some(list) = message.child(MESSAGES_NS, "Notifications") {
        // `t:Notification` per the schema; read whatever namespace a server uses.
        for n in list.children.iter().filter(|c| c.name == "Notification") {
            out.notifications.push(read_notification(n)?);
        }
    }
    if let Some(ids) = message.child(MESSAGES_NS, "ErrorSubscriptionIds") {
        out.error_subscription_ids = subscription_ids_in(ids);
    }
    out.connection_status = match message
        .child_text(MESSAGES_NS, "ConnectionStatus")
        .map(str::trim)
    {
        None => None,
        Some("OK") => Some(ConnectionStatus::Ok),
        Some("Closed") => Some(ConnectionStatus::Closed),
        Some(other) => return Err(invalid("ConnectionStatus", other)),
    };
    Ok(out)
}

fn read_notification(n: &Element) -> Result<Notification, WireError> {
    let mut events = Vec::new();
    for c in n.children.iter().filter(|c| c.namespace == TYPES_NS) {
        let watermark = c
            .child_text(TYPES_NS, "Watermark")
            .map(|s| s.trim().to_owned());
        if c.name == "StatusEvent" {
            events.push(NotificationEvent::Status { watermark });
            continue;
        }
        // Other children (SubscriptionId, PreviousWatermark, MoreEvents) are not events;
        // an event type this codec does not know is skipped (responses are read tolerantly).
        let Ok(kind) = c.name.parse::<EventType>() else {
            continue;
        };
        let time_stamp = parse_time(
            "TimeStamp",
            c.child_text(TYPES_NS, "TimeStamp")
                .ok_or(WireError::Missing("TimeStamp"))?,
        )?;
        let object = if let Some(id) = c.child(TYPES_NS, "ItemId") {
            ChangedObject::Item(ItemId::from_element(id)?)
        } else if let Some(id) = c.child(TYPES_NS, "FolderId") {
            ChangedObject::Folder(FolderId::from_element(id)?)
        } else {
            return Err(WireError::Missing("ItemId or FolderId"));
        };
        let parent_folder_id = FolderId::from_element(
            c.child(TYPES_NS, "ParentFolderId")
                .ok_or(WireError::Missing("ParentFolderId"))?,
        )?;
        let old_object = if let Some(id) = c.child(TYPES_NS, "OldItemId") {
            Some(ChangedObject::Item(ItemId::from_element(id)?))
        } else if let Some(id) = c.child(TYPES_NS, "OldFolderId") {
            Some(ChangedObject::Folder(FolderId::from_element(id)?))
        } else {
            None
        };
        let old = match (old_object, c.child(TYPES_NS, "OldParentFolderId")) {
            (Some(object), Some(parent)) => Some(Box::new(OldLocation {
                object,
                parent_folder_id: FolderId::from_element(parent)?,
            })),
            _ => None,
        };
        let unread_count = match c.child_text(TYPES_NS, "UnreadCount").map(str::trim) {
            Some(t) => Some(t.parse().map_err(|_| invalid("UnreadCount", t))?),
            None => None,
        };
        events.push(NotificationEvent::Object {
            kind,
            watermark,
            time_stamp,
            object,
            parent_folder_id,
            old,
            unread_count,
        });
    }
    Ok(Notification {
        subscription_id: n
            .child_text(TYPES_NS, "SubscriptionId")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(WireError::Missing("SubscriptionId"))?
            .to_owned(),
        previous_watermark: n
            .child_text(TYPES_NS, "PreviousWatermark")
            .map(|s| s.trim().to_owned()),
        more_events: n
            .child_text(TYPES_NS, "MoreEvents")
            .map(|s| matches!(s.trim(), "true" | "1")),
        events,
    })
}

/// Why the stream could not be cut into envelopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// One envelope grew beyond the limit without ending.
    #[error("a streamed envelope exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The bytes between envelopes are not the start of an XML document.
    #[error("the stream does not hold SOAP envelopes: {0}")]
    NotXml(String),
}

/// Cuts a GetStreamingEvents response body, which arrives in arbitrary chunks, into whole
/// envelopes: each ends with the closing tag of its root element. Holds at most `limit` bytes
/// of an unfinished envelope, so a server that never ends one cannot exhaust memory.
#[derive(Debug)]
pub struct EnvelopeSplitter {
    buf: Vec<u8>,
    limit: usize,
}

impl EnvelopeSplitter {
    /// A splitter holding at most `limit` bytes of one envelope.
    pub fn new(limit: usize) -> Self {
        EnvelopeSplitter {
            buf: Vec::new(),
            limit,
        }
    }

    /// Add received bytes; every envelope completed by them, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.next_end()? {
            let rest = self.buf.split_off(end);
            out.push(std::mem::replace(&mut self.buf, rest));
        }
        if self.buf.len() > self.limit {
            return Err(SplitError::TooLarge { limit: self.limit });
        }
        Ok(out)
    }

    /// Bytes held of an unfinished envelope (whitespace between envelopes included).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Where the first envelope in the buffer ends, if it has.
    fn next_end(&mut self) -> Result<Option<usize>, SplitError> {
        let mut at = 0;
        // Skip whitespace, the XML declaration, comments and a byte-order mark.
        loop {
            while at < self.buf.len() && self.buf[at].is_ascii_whitespace() {
                at += 1;
            }
            let rest = &self.buf[at..];
            if rest.starts_with(b"\xEF\xBB\xBF") {
                at += 3;
            } else if rest.starts_with(b"<?") {
                match find(rest, b"?>") {
                    Some(i) => at += i + 2,
                    None => return Ok(None),
                }
            } else if rest.starts_with(b"<!--") {
                match find(rest, b"-->") {
                    Some(i) => at += i + 3,
                    None => return Ok(None),
                }
            } else {
                break;
            }
        }
        let rest = &self.buf[at..];
        if rest.is_empty() {
            return Ok(None);
        }
        if rest[0] != b'<' {
            let shown = String::from_utf8_lossy(&rest[..rest.len().min(40)]).into_owned();
            return Err(SplitError::NotXml(crate::error::excerpt(&shown)));
        }
        let name_len = rest[1..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
            .map(|p| p + 1);
        let Some(name_len) = name_len else {
            return Ok(None);
        };
        let name = &rest[1..name_len];
        if name.is_empty() {
            return Err(SplitError::NotXml("an empty element name".into()));
        }
        let mut close = b"</".to_vec();
        close.extend_from_slice(name);
        let mut from = name_len;
        while let Some(i) = find(&rest[from..], &close) {
            let mut end = from + i + close.len();
            while end < rest.len() && rest[end].is_ascii_whitespace() {
                end += 1;
            }
            match rest.get(end) {
                Some(b'>') => return Ok(Some(at + end + 1)),
                Some(_) => from = from + i + close.len(),
                None => return Ok(None),
            }
        }
        Ok(None)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{parse_request, EwsRequest};
    use crate::soap::ExchangeVersion;
    use crate::test_support::check_soap;

    fn notification_envelope() -> GetStreamingEventsResponse {
        let at = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        GetStreamingEventsResponse {
            messages: vec![ResponseMessage::success(StreamingEvents {
                notifications: vec![Notification {
                    subscription_id: "sub-1".into(),
                    previous_watermark: Some("AQAAAA==".into()),
                    more_events: Some(false),
                    events: vec![
                        NotificationEvent::Object {
                            kind: EventType::NewMail,
                            watermark: Some("AgAAAA==".into()),
                            time_stamp: at,
                            object: ChangedObject::Item(ItemId::with_change_key("i1", "c1")),
                            parent_folder_id: FolderId::new("inbox-id"),
                            old: None,
                            unread_count: None,
                        },
                        NotificationEvent::Object {
                            kind: EventType::Moved,
                            watermark: None,
                            time_stamp: at,
                            object: ChangedObject::Item(ItemId::new("i2")),
                            parent_folder_id: FolderId::new("deleted-id"),
                            old: Some(Box::new(OldLocation {
                                object: ChangedObject::Item(ItemId::new("i1")),
                                parent_folder_id: FolderId::new("inbox-id"),
                            })),
                            unread_count: None,
                        },
                        NotificationEvent::Object {
                            kind: EventType::Modified,
                            watermark: None,
                            time_stamp: at,
                            object: ChangedObject::Folder(FolderId::new("inbox-id")),
                            parent_folder_id: FolderId::new("root-id"),
                            old: None,
                            unread_count: Some(3),
                        },
                    ],
                }],
                error_subscription_ids: vec![],
                connection_status: None,
            })],
        }
    }

    #[test]
    fn the_request_round_trips_validates_and_is_read_strictly() {
        let request = GetStreamingEventsRequest {
            subscription_ids: vec!["sub-1".into(), "sub-2".into()],
            connection_timeout_minutes: 30,
        };
        let header = RequestHeader::new(ExchangeVersion::Exchange2013Sp1);
        let xml = request.to_xml(&header);
        check_soap(&xml);
        let (_, parsed) = parse_request(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(parsed, EwsRequest::GetStreamingEvents(request));
        for broken in [
            xml.replace(">30<", ">31<"),
            xml.replace(">30<", ">0<"),
            xml.replace(">30<", ">soon<"),
            xml.replace("<m:ConnectionTimeout>30</m:ConnectionTimeout>", ""),
            xml.replace(
                "<t:SubscriptionId>sub-1</t:SubscriptionId><t:SubscriptionId>sub-2</t:SubscriptionId>",
                "",
            ),
            xml.replace("t:SubscriptionId", "m:SubscriptionId"),
        ] {
            assert_ne!(broken, xml);
            assert!(
                parse_request(broken.as_bytes(), &XmlLimits::default()).is_err(),
                "accepted: {broken}"
            );
        }
    }

    #[test]
    fn notifications_keep_alives_closing_and_errors_validate_and_read_back() {
        let status = |s| GetStreamingEventsResponse {
            messages: vec![ResponseMessage::success(StreamingEvents {
                connection_status: Some(s),
                ..StreamingEvents::default()
            })],
        };
        let mut not_found = ResponseMessage::error(
            ResponseCode::new("ErrorSubscriptionNotFound"),
            "The specified subscription was not found.",
        );
        not_found.payload = Some(StreamingEvents {
            error_subscription_ids: vec!["sub-9".into()],
            connection_status: Some(ConnectionStatus::Closed),
            ..StreamingEvents::default()
        });
        for envelope in [
            notification_envelope(),
            status(ConnectionStatus::Ok),
            status(ConnectionStatus::Closed),
            GetStreamingEventsResponse {
                messages: vec![not_found],
            },
        ] {
            let xml = envelope.to_xml();
            check_soap(&xml);
            assert_eq!(
                GetStreamingEventsResponse::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
                envelope
            );
        }
    }

    #[test]
    fn the_splitter_cuts_a_stream_of_envelopes_at_any_chunk_boundary() {
        let one = notification_envelope().to_xml();
        let two = GetStreamingEventsResponse {
            messages: vec![ResponseMessage::success(StreamingEvents {
                connection_status: Some(ConnectionStatus::Ok),
                ..StreamingEvents::default()
            })],
        }
        .to_xml();
        let stream = format!("{one}\r\n{two}{one}");
        for chunk in [1, 7, 64, 1000, stream.len()] {
            let mut splitter = EnvelopeSplitter::new(64 * 1024);
            let mut got = Vec::new();
            for piece in stream.as_bytes().chunks(chunk) {
                got.extend(splitter.push(piece).unwrap());
            }
            let got: Vec<String> = got
                .into_iter()
                .map(|b| String::from_utf8(b).unwrap().trim().to_owned())
                .collect();
            assert_eq!(
                got,
                vec![one.clone(), two.clone(), one.clone()],
                "chunk {chunk}"
            );
            for envelope in &got {
                GetStreamingEventsResponse::parse(envelope.as_bytes(), &XmlLimits::default())
                    .unwrap();
            }
        }
    }

    #[test]
    fn the_splitter_is_bounded_and_refuses_what_is_not_xml() {
        let mut splitter = EnvelopeSplitter::new(100);
        let endless = format!("<s:Envelope xmlns:s=\"x\">{}", "a".repeat(200));
        assert_eq!(
            splitter.push(endless.as_bytes()),
            Err(SplitError::TooLarge { limit: 100 })
        );
        let mut splitter = EnvelopeSplitter::new(100);
        assert!(matches!(
            splitter.push(b"HTTP/1.1 junk"),
            Err(SplitError::NotXml(_))
        ));
    }
}

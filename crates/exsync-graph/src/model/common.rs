//! Complex types shared by messages, events, contacts and tasks (recipients, bodies, dates,
//! extended properties).

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// `microsoft.graph.emailAddress`: a name and an SMTP address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SMTP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl EmailAddress {
    /// An address without a display name.
    pub fn address(address: impl Into<String>) -> Self {
        Self {
            name: None,
            address: Some(address.into()),
        }
    }
}

/// `microsoft.graph.recipient`: who sent or receives a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// The recipient's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
}

impl Recipient {
    /// A recipient for `address`.
    pub fn address(address: impl Into<String>) -> Self {
        Self {
            email_address: Some(EmailAddress::address(address)),
        }
    }
}

/// `microsoft.graph.bodyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BodyType {
    /// Plain text.
    Text,
    /// HTML (Graph's default for message bodies).
    Html,
}

/// `microsoft.graph.itemBody`: the body of a message, event or task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// Text or HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<BodyType>,
    /// The content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl ItemBody {
    /// A plain-text body.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content_type: Some(BodyType::Text),
            content: Some(content.into()),
        }
    }

    /// An HTML body.
    pub fn html(content: impl Into<String>) -> Self {
        Self {
            content_type: Some(BodyType::Html),
            content: Some(content.into()),
        }
    }
}

/// `microsoft.graph.importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Importance {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
}

/// `microsoft.graph.dateTimeTimeZone`: a wall-clock time and a zone name, as events and tasks
/// carry their times. Graph writes `dateTime` without an offset and with seven fractional
/// digits (`2026-12-07T09:00:00.0000000`); `timeZone` is a Windows or IANA name, `UTC` when
/// the request carried `Prefer: outlook.timezone="UTC"` (the client sends it on event calls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    /// Wall-clock date and time, no offset.
    pub date_time: String,
    /// Zone name (`UTC`, `Pacific Standard Time`, `Europe/Berlin`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl DateTimeTimeZone {
    /// The UTC form Graph itself writes.
    pub fn utc(at: DateTime<Utc>) -> Self {
        Self {
            // Seven fractional digits (100 ns ticks); a leap second's nanos are clamped.
            date_time: format!(
                "{}.{:07}",
                at.format("%Y-%m-%dT%H:%M:%S"),
                at.nanosecond().min(999_999_999) / 100
            ),
            time_zone: Some("UTC".to_owned()),
        }
    }

    /// The instant, when the zone is UTC (the only zone exsync asks Graph for); `None` for a
    /// named zone (converting Windows zone names is not this crate's business) or a bad value.
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        let zone = self.time_zone.as_deref().unwrap_or("UTC");
        if !(zone.eq_ignore_ascii_case("UTC") || zone.eq_ignore_ascii_case("Etc/UTC")) {
            return None;
        }
        let text = self.date_time.trim_end_matches('Z');
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| naive.and_utc())
    }
}

/// `microsoft.graph.singleValueLegacyExtendedProperty`: a MAPI property by id string
/// (`String {guid} Name X`), used for exsync's idempotency marker on outgoing drafts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleValueExtendedProperty {
    /// The property id (`{type} {guid} Name {name}` or `{type} 0x{tag}`).
    pub id: String,
    /// The value, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `microsoft.graph.internetMessageHeader`: one RFC 5322 header of a received message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternetMessageHeader {
    /// Header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `microsoft.graph.physicalAddress`: a postal address of a contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalAddress {
    /// Street.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_or_region: Option<String>,
}

/// The `@removed` annotation of a delta entry: the item left the collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// `deleted` for Outlook items (directory resources also say `changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `microsoft.graph.genericError`: a per-item failure inside a successful answer
/// (translateExchangeIds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenericError {
    /// The error code (e.g. `NotFound`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Graph's message text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn utc_times_are_written_as_graph_writes_them_and_read_back() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 9, 30, 0).unwrap();
        let value = DateTimeTimeZone::utc(at);
        assert_eq!(value.date_time, "2026-12-07T09:30:00.0000000");
        assert_eq!(value.time_zone.as_deref(), Some("UTC"));
        assert_eq!(value.to_utc(), Some(at));
    }

    #[test]
    fn a_named_zone_is_not_guessed_into_utc() {
        let value = DateTimeTimeZone {
            date_time: "2026-12-07T09:30:00.0000000".into(),
            time_zone: Some("Pacific Standard Time".into()),
        };
        assert_eq!(value.to_utc(), None);
        let garbage = DateTimeTimeZone {
            date_time: "tomorrow".into(),
            time_zone: Some("UTC".into()),
        };
        assert_eq!(garbage.to_utc(), None);
    }
}

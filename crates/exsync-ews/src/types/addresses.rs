//! Mailbox addresses (`t:Mailbox`) and bodies.

use super::*;

/// `t:Mailbox` (EmailAddressType) inside Sender, From, ToRecipients, Organizer, Attendee.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailAddress {
    /// Display name.
    pub name: Option<String>,
    /// SMTP address (empty when Exchange gave none).
    pub address: String,
}

impl EmailAddress {
    /// An address with a display name.
    pub fn new(name: Option<&str>, address: &str) -> Self {
        EmailAddress {
            name: name.map(str::to_owned),
            address: address.to_owned(),
        }
    }

    pub(super) fn write(&self, w: &mut XmlWriter) {
        w.start("t:Mailbox");
        leaf_opt(w, "t:Name", self.name.as_deref());
        w.leaf("t:EmailAddress", &self.address);
        w.end();
    }

    pub(super) fn from_element(el: &Element) -> Self {
        EmailAddress {
            name: t_text(el, "Name"),
            address: el
                .child_text(TYPES_NS, "EmailAddress")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

pub(super) fn write_single(w: &mut XmlWriter, qname: &str, value: Option<&EmailAddress>) {
    if let Some(a) = value {
        w.start(qname);
        a.write(w);
        w.end();
    }
}

pub(super) fn write_list(w: &mut XmlWriter, qname: &str, values: &[EmailAddress]) {
    if !values.is_empty() {
        w.start(qname);
        for a in values {
            a.write(w);
        }
        w.end();
    }
}

pub(super) fn read_single(el: &Element, name: &str) -> Option<EmailAddress> {
    el.child(TYPES_NS, name)
        .and_then(|s| s.child(TYPES_NS, "Mailbox"))
        .map(EmailAddress::from_element)
}

pub(super) fn read_list(el: &Element, name: &str) -> Vec<EmailAddress> {
    el.child(TYPES_NS, name)
        .map(|l| {
            l.children_named(TYPES_NS, "Mailbox")
                .map(EmailAddress::from_element)
                .collect()
        })
        .unwrap_or_default()
}

/// Body format (BodyTypeType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    /// Plain text.
    #[default]
    Text,
    /// HTML.
    Html,
}

impl BodyType {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::Text => "Text",
            BodyType::Html => "HTML",
        }
    }
}

impl FromStr for BodyType {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        match s.trim() {
            "Text" => Ok(BodyType::Text),
            "HTML" | "Html" => Ok(BodyType::Html),
            other => Err(invalid("BodyType", other)),
        }
    }
}

/// `t:Body` (BodyType): content and its format.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body {
    /// Text or HTML.
    pub body_type: BodyType,
    /// The content, unescaped.
    pub content: String,
}

//! A bounded XML DOM for EWS envelopes, built on quick-xml, and a small escaping writer.
//!
//! Owns turning bytes into a namespace-resolved [`Element`] tree with hard limits (size, depth,
//! element count) and no DTD or custom entities (no XXE, no entity expansion), and turning
//! elements back into text with correct escaping. It knows nothing of SOAP or EWS.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Limits applied while parsing untrusted XML, so a hostile peer cannot exhaust memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Most elements accepted in one document.
    pub max_elements: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            max_depth: 64,
            max_elements: 2_000_000,
        }
    }
}

/// Why a document was refused by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The input is larger than `max_bytes`.
    #[error("XML document of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Elements are nested deeper than `max_depth`.
    #[error("XML nesting deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The document has more than `max_elements` elements.
    #[error("XML document has more than {limit} elements")]
    TooManyElements {
        /// The limit.
        limit: usize,
    },
    /// A DOCTYPE declaration was present (refused: no DTDs, no external entities).
    #[error("XML DOCTYPE declarations are not accepted")]
    Doctype,
    /// An entity reference other than the five predefined ones or a character reference.
    #[error("XML entity reference not allowed: {0}")]
    Entity(String),
    /// The input is not valid UTF-8.
    #[error("XML input is not valid UTF-8 (at byte {position})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        position: usize,
    },
    /// The document ended before its root element was closed.
    #[error("XML document is truncated")]
    Truncated,
    /// There is no root element.
    #[error("XML document has no root element")]
    Empty,
    /// Content after the root element.
    #[error("XML content after the root element")]
    TrailingContent,
    /// A prefix was used without a namespace declaration.
    #[error("XML prefix without namespace declaration: {0}")]
    UnknownPrefix(String),
    /// Any other well-formedness error, with the parser's position.
    #[error("XML syntax error at byte {position}: {reason}")]
    Syntax {
        /// Byte offset.
        position: u64,
        /// What the parser said (bounded).
        reason: String,
    },
}

/// One parsed element: namespace URI, local name, attributes, children and its own text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI ("" when unqualified).
    pub namespace: String,
    /// Local name (no prefix).
    pub name: String,
    /// Attributes as (local name, unescaped value); namespace declarations are left out.
    pub attributes: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Concatenated character data directly inside this element (unescaped, untrimmed).
    pub text: String,
}

impl Element {
    /// The first child with this namespace and local name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name == name && c.namespace == ns)
    }

    /// All children with this namespace and local name, in document order.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.name == name && c.namespace == ns)
    }

    /// An attribute's value by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text of the first child with this namespace and local name.
    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| c.text.as_str())
    }

    /// Whether this element has the given namespace and local name.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.namespace == ns && self.name == name
    }
}

fn syntax(position: u64, reason: impl std::fmt::Display) -> XmlError {
    let mut reason = reason.to_string();
    if reason.len() > 200 {
        let mut cut = 200;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    XmlError::Syntax { position, reason }
}

/// Parse a whole document into its root element, enforcing `limits`.
pub fn parse(input: &[u8], limits: &XmlLimits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| XmlError::InvalidUtf8 {
        position: e.valid_up_to(),
    })?;
    // Exchange (and .NET generally) may start a document with a UTF-8 byte-order mark.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    {
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.trim_text(false);
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let position = reader.buffer_position();
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(quick_xml::Error::Syntax(_)) if !stack.is_empty() || root.is_none() => {
                return Err(if stack.is_empty() {
                    syntax(position, "unterminated markup")
                } else {
                    XmlError::Truncated
                })
            }
            Err(e) => return Err(syntax(reader.error_position(), e)),
        };
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                count += 1;
                if count > limits.max_elements {
                    return Err(XmlError::TooManyElements {
                        limit: limits.max_elements,
                    });
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                let namespace = match resolved {
                    ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(prefix) => {
                        // Bounded: the prefix is remote data and may be arbitrarily long.
                        return Err(XmlError::UnknownPrefix(
                            String::from_utf8_lossy(&prefix).chars().take(200).collect(),
                        ));
                    }
                };
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let attributes = read_attributes(&start, position)?;
                stack.push(Element {
                    namespace,
                    name,
                    attributes,
                    children: Vec::new(),
                    text: String::new(),
                });
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| syntax(position, "unexpected end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let value = t.unescape().map_err(|e| entity_error(position, e))?;
                match stack.last_mut() {
                    Some(current) => current.text.push_str(&value),
                    None => {
                        if !value.trim().is_empty() {
                            return Err(if root.is_some() {
                                XmlError::TrailingContent
                            } else {
                                syntax(position, "text outside the root element")
                            });
                        }
                    }
                }
            }
            Event::CData(c) => {
                let value = std::str::from_utf8(&c)
                    .map_err(|_| XmlError::InvalidUtf8 {
                        position: usize::try_from(position).unwrap_or(usize::MAX),
                    })?
                    .to_owned();
                match stack.last_mut() {
                    Some(current) => current.text.push_str(&value),
                    None => return Err(syntax(position, "CDATA outside the root element")),
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Empty(_) => return Err(syntax(position, "unexpanded empty element")),
            Event::Eof => {
                if !stack.is_empty() {
                    return Err(XmlError::Truncated);
                }
                return root.ok_or(XmlError::Empty);
            }
        }
    }
}

fn entity_error(position: u64, e: impl std::fmt::Display) -> XmlError {
    let text = e.to_string();
    if text.contains("entity") || text.contains("Entity") || text.contains("symbol") {
        XmlError::Entity(text.chars().take(200).collect())
    } else {
        syntax(position, text)
    }
}

fn read_attributes(
    start: &BytesStart<'_>,
    position: u64,
) -> Result<Vec<(String, String)>, XmlError> {
    let mut out = Vec::new();
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|e| syntax(position, e))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr
            .unescape_value()
            .map_err(|e| entity_error(position, e))?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        out.push((key, value.into_owned()));
    }
    Ok(out)
}

/// Escape text for element content or a double-quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            // Characters XML 1.0 cannot carry at all are dropped rather than producing a broken document.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Builds an XML document as a String; start tags stay open for attributes until content follows.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
    stack: Vec<String>,
    tag_open: bool,
}

impl XmlWriter {
    /// A writer with the XML declaration already written.
    pub fn new() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
            stack: Vec::new(),
            tag_open: false,
        }
    }

    fn close_open_tag(&mut self) {
        if self.tag_open {
            self.out.push('>');
            self.tag_open = false;
        }
    }

    /// Open an element (`qname` is `prefix:local`, written verbatim).
    pub fn start(&mut self, qname: &str) -> &mut Self {
        self.close_open_tag();
        self.out.push('<');
        self.out.push_str(qname);
        self.stack.push(qname.to_owned());
        self.tag_open = true;
        self
    }

    /// Add an attribute to the element just opened (ignored if content was already written).
    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        if self.tag_open {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            // Newlines and tabs as character references: attribute-value normalization would
            // otherwise turn them into spaces on the reading side.
            let escaped = escape(value).replace('\n', "&#10;").replace('\t', "&#9;");
            self.out.push_str(&escaped);
            self.out.push('"');
        }
        self
    }

    /// Write escaped character data.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.close_open_tag();
        self.out.push_str(&escape(text));
        self
    }

    /// Close the innermost open element.
    pub fn end(&mut self) -> &mut Self {
        if let Some(name) = self.stack.pop() {
            if self.tag_open {
                self.out.push_str(" />");
                self.tag_open = false;
            } else {
                self.out.push_str("</");
                self.out.push_str(&name);
                self.out.push('>');
            }
        }
        self
    }

    /// An element holding only text.
    pub fn leaf(&mut self, qname: &str, text: &str) -> &mut Self {
        self.start(qname);
        if !text.is_empty() {
            self.text(text);
        }
        self.end()
    }

    /// An element with no content.
    pub fn empty(&mut self, qname: &str) -> &mut Self {
        self.start(qname).end()
    }

    /// Close whatever is still open and return the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.end();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Element, XmlError> {
        parse(s.as_bytes(), &XmlLimits::default())
    }

    #[test]
    fn resolves_namespaces_whatever_the_prefix() {
        let root =
            p(r#"<a:Root xmlns:a="urn:x" xmlns="urn:d"><b Id="1">hi</b><a:c/></a:Root>"#).unwrap();
        assert_eq!(root.namespace, "urn:x");
        assert_eq!(root.name, "Root");
        assert_eq!(root.child("urn:d", "b").unwrap().attr("Id"), Some("1"));
        assert_eq!(root.child_text("urn:d", "b"), Some("hi"));
        assert!(root.child("urn:x", "c").is_some());
        assert!(root.child("urn:d", "c").is_none());
        assert!(
            root.attributes.is_empty(),
            "xmlns declarations are not attributes"
        );
    }

    #[test]
    fn predefined_entities_and_char_refs_are_decoded() {
        let root = p(r#"<r a="&lt;&quot;">&amp;&#65;&#x42;<![CDATA[<x>]]></r>"#).unwrap();
        assert_eq!(root.text, "&AB<x>");
        assert_eq!(root.attr("a"), Some("<\""));
    }

    #[test]
    fn doctype_and_custom_entities_are_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(p(xxe), Err(XmlError::Doctype));
        assert!(matches!(p("<r>&x;</r>"), Err(XmlError::Entity(_))));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = XmlLimits {
            max_bytes: 10,
            ..XmlLimits::default()
        };
        assert!(matches!(
            parse(b"<r>0123456789</r>", &limits),
            Err(XmlError::TooLarge { .. })
        ));
        let limits = XmlLimits {
            max_depth: 3,
            ..XmlLimits::default()
        };
        assert!(parse(b"<a><b><c/></b></a>", &limits).is_ok());
        assert_eq!(
            parse(b"<a><b><c><d/></c></b></a>", &limits),
            Err(XmlError::TooDeep { limit: 3 })
        );
        let limits = XmlLimits {
            max_elements: 3,
            ..XmlLimits::default()
        };
        assert_eq!(
            parse(b"<a><b/><b/><b/></a>", &limits),
            Err(XmlError::TooManyElements { limit: 3 })
        );
    }

    #[test]
    fn byte_order_mark_is_accepted() {
        let root = parse(
            b"\xEF\xBB\xBF<?xml version=\"1.0\"?><r>x</r>",
            &XmlLimits::default(),
        )
        .unwrap();
        assert_eq!(root.text, "x");
    }

    #[test]
    fn broken_input_is_refused() {
        assert_eq!(p("<a><b></b>"), Err(XmlError::Truncated));
        assert_eq!(p(""), Err(XmlError::Empty));
        assert!(matches!(
            parse(b"<a>\xff</a>", &XmlLimits::default()),
            Err(XmlError::InvalidUtf8 { position: 3 })
        ));
        assert!(p("<a></b>").is_err());
        assert_eq!(p("<a/><b/>"), Err(XmlError::TrailingContent));
        assert!(matches!(p("<x:a/>"), Err(XmlError::UnknownPrefix(_))));
    }

    #[test]
    fn billion_laughs_is_refused_before_any_expansion() {
        let mut doc = String::from(r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">"#);
        for i in 1..10 {
            doc.push_str(&format!("<!ENTITY a{i} \"{}\">", "&a;".repeat(10)));
        }
        doc.push_str("]><l>&a9;</l>");
        assert_eq!(p(&doc), Err(XmlError::Doctype));
        // Without the DOCTYPE the reference is simply unknown.
        assert!(matches!(p("<l>&a9;</l>"), Err(XmlError::Entity(_))));
    }

    #[test]
    fn entities_in_attributes_are_refused_like_in_text() {
        assert!(matches!(p(r#"<r a="&x;"/>"#), Err(XmlError::Entity(_))));
    }

    #[test]
    fn utf16_and_overlong_utf8_are_refused() {
        assert!(matches!(
            parse(b"\xFF\xFE<\x00r\x00/\x00>\x00", &XmlLimits::default()),
            Err(XmlError::InvalidUtf8 { position: 0 })
        ));
        assert!(matches!(
            parse(b"<r>\xC0\xAF</r>", &XmlLimits::default()),
            Err(XmlError::InvalidUtf8 { position: 3 })
        ));
    }

    #[test]
    fn a_huge_attribute_within_the_size_limit_is_read_and_one_beyond_it_refused() {
        let doc = format!(r#"<r a="{}"/>"#, "A".repeat(1024 * 1024));
        assert_eq!(p(&doc).unwrap().attr("a").map(str::len), Some(1024 * 1024));
        let limits = XmlLimits {
            max_bytes: 1024 * 1024,
            ..XmlLimits::default()
        };
        assert!(matches!(
            parse(doc.as_bytes(), &limits),
            Err(XmlError::TooLarge { .. })
        ));
    }

    #[test]
    fn an_enormous_prefix_is_reported_bounded() {
        let doc = format!("<{}:r/>", "p".repeat(100_000));
        let err = p(&doc).unwrap_err();
        assert!(matches!(err, XmlError::UnknownPrefix(_)));
        assert!(
            err.to_string().chars().count() <= 300,
            "{}",
            err.to_string().len()
        );
    }

    #[test]
    fn writer_escapes_and_round_trips() {
        let mut w = XmlWriter::new();
        w.start("r")
            .attr("xmlns", "urn:r")
            .attr("v", "a\"<&'\n\tb")
            .leaf("x", "1 < 2 & \"3\"\r\n")
            .empty("y")
            .start("z")
            .end();
        let xml = w.finish();
        let root = p(&xml).unwrap();
        assert_eq!(root.attr("v"), Some("a\"<&'\n\tb"));
        assert_eq!(root.child_text("urn:r", "x"), Some("1 < 2 & \"3\"\r\n"));
        assert!(root.child("urn:r", "y").is_some());
        assert!(root.child("urn:r", "z").is_some());
    }
}

//! SOAP 1.1 envelopes for EWS: namespaces, the request header (version, impersonation), the
//! response header (ServerVersionInfo) and SOAP faults as Exchange sends them.
//!
//! Owns the envelope around operation bodies, in both directions. It knows nothing of
//! individual operations (see `ops`) nor of HTTP.

use std::str::FromStr;
use std::time::Duration;

use super::error::EwsError;
use super::types::ResponseCode;
use super::wire::{excerpt, invalid, WireError};
use super::xml::{parse, Element, XmlError, XmlLimits, XmlWriter};

/// The namespaces live in the codec's leaf module; named here too, where envelopes are built.
pub use super::wire::{ERRORS_NS, MESSAGES_NS, SOAP_NS, TYPES_NS};

/// `t:RequestServerVersion/@Version` (ExchangeVersionType): the schema version a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeVersion {
    /// `Exchange2007`.
    Exchange2007,
    /// `Exchange2007_SP1` (the version Exchange assumes when none is sent).
    Exchange2007Sp1,
    /// `Exchange2009`.
    Exchange2009,
    /// `Exchange2010`.
    Exchange2010,
    /// `Exchange2010_SP1`.
    Exchange2010Sp1,
    /// `Exchange2010_SP2`.
    Exchange2010Sp2,
    /// `Exchange2012`.
    Exchange2012,
    /// `Exchange2013`.
    Exchange2013,
    /// `Exchange2013_SP1`: what exsync sends by default (Exchange 2013 SP1 and later servers).
    Exchange2013Sp1,
    /// `Exchange2015`.
    Exchange2015,
    /// `Exchange2016`.
    Exchange2016,
    /// `V2015_10_05`.
    V2015_10_05,
    /// `V2016_01_06`.
    V2016_01_06,
    /// `V2016_04_13`.
    V2016_04_13,
    /// `V2016_07_13`.
    V2016_07_13,
    /// `V2016_10_10`.
    V2016_10_10,
    /// `V2017_01_07` (Exchange Online; not in the published types.xsd).
    V2017_01_07,
    /// `V2017_04_14` (Exchange Online; not in the published types.xsd).
    V2017_04_14,
    /// `V2017_07_11`: what Exchange 2016 / 2019 CUs report in ServerVersionInfo (not in the
    /// published types.xsd).
    V2017_07_11,
    /// `V2017_10_09` (Exchange Online; not in the published types.xsd).
    V2017_10_09,
    /// `V2018_01_08` (Exchange Online; not in the published types.xsd).
    V2018_01_08,
}

/// Every `RequestServerVersion` Exchange 2016 / 2019 / Online accept: the published
/// ExchangeVersionType enumeration (types.xsd) and the later dated versions Exchange Online's
/// schema adds. Anything else is answered `ErrorInvalidServerVersion`.
const VERSIONS: [(ExchangeVersion, &str); 21] = [
    (ExchangeVersion::Exchange2007, "Exchange2007"),
    (ExchangeVersion::Exchange2007Sp1, "Exchange2007_SP1"),
    (ExchangeVersion::Exchange2009, "Exchange2009"),
    (ExchangeVersion::Exchange2010, "Exchange2010"),
    (ExchangeVersion::Exchange2010Sp1, "Exchange2010_SP1"),
    (ExchangeVersion::Exchange2010Sp2, "Exchange2010_SP2"),
    (ExchangeVersion::Exchange2012, "Exchange2012"),
    (ExchangeVersion::Exchange2013, "Exchange2013"),
    (ExchangeVersion::Exchange2013Sp1, "Exchange2013_SP1"),
    (ExchangeVersion::Exchange2015, "Exchange2015"),
    (ExchangeVersion::Exchange2016, "Exchange2016"),
    (ExchangeVersion::V2015_10_05, "V2015_10_05"),
    (ExchangeVersion::V2016_01_06, "V2016_01_06"),
    (ExchangeVersion::V2016_04_13, "V2016_04_13"),
    (ExchangeVersion::V2016_07_13, "V2016_07_13"),
    (ExchangeVersion::V2016_10_10, "V2016_10_10"),
    (ExchangeVersion::V2017_01_07, "V2017_01_07"),
    (ExchangeVersion::V2017_04_14, "V2017_04_14"),
    (ExchangeVersion::V2017_07_11, "V2017_07_11"),
    (ExchangeVersion::V2017_10_09, "V2017_10_09"),
    (ExchangeVersion::V2018_01_08, "V2018_01_08"),
];

impl ExchangeVersion {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        VERSIONS
            .iter()
            .find(|(v, _)| *v == self)
            .map(|(_, s)| *s)
            .unwrap_or("Exchange2013_SP1")
    }
}

impl FromStr for ExchangeVersion {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        VERSIONS
            .iter()
            .find(|(_, name)| *name == s.trim())
            .map(|(v, _)| *v)
            .ok_or_else(|| invalid("RequestServerVersion/@Version", s))
    }
}

/// Why a request's SOAP header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `RequestServerVersion` without `Version`, or with a version the server does not know:
    /// Exchange answers `ErrorInvalidServerVersion` (a SOAP fault, HTTP 500), so a client that
    /// probes with a newer version can step down.
    #[error("the specified server version is invalid: '{0}'")]
    InvalidServerVersion(String),
    /// Another part of the header is malformed (ExchangeImpersonation without a ConnectingSID …).
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The SOAP header of a request: schema version and, optionally, the impersonated mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// `t:RequestServerVersion/@Version`.
    pub version: ExchangeVersion,
    /// `t:ExchangeImpersonation/t:ConnectingSID/t:PrimarySmtpAddress`.
    pub impersonation: Option<String>,
}

impl RequestHeader {
    /// A header without impersonation (own mailbox or delegate access).
    pub fn new(version: ExchangeVersion) -> Self {
        RequestHeader {
            version,
            impersonation: None,
        }
    }

    /// A header acting as `smtp` through ApplicationImpersonation.
    pub fn impersonating(version: ExchangeVersion, smtp: impl Into<String>) -> Self {
        RequestHeader {
            version,
            impersonation: Some(smtp.into()),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        w.start("t:RequestServerVersion")
            .attr("Version", self.version.as_str())
            .end();
        if let Some(smtp) = &self.impersonation {
            w.start("t:ExchangeImpersonation")
                .start("t:ConnectingSID")
                .leaf("t:PrimarySmtpAddress", smtp)
                .end()
                .end();
        }
    }

    /// Read the request header. Without `RequestServerVersion` a request speaks Exchange2007,
    /// the initial release, as Exchange assumes ("Versioning Requests (Exchange Web Services)");
    /// an element without `Version` or with an unknown one is [`HeaderError::InvalidServerVersion`].
    pub fn from_header(header: Option<&Element>) -> Result<Self, HeaderError> {
        let Some(header) = header else {
            return Ok(RequestHeader::new(ExchangeVersion::Exchange2007));
        };
        let version = match header.child(TYPES_NS, "RequestServerVersion") {
            Some(v) => {
                let text = v.attr("Version").unwrap_or_default();
                text.parse()
                    .map_err(|_| HeaderError::InvalidServerVersion(excerpt(text)))?
            }
            None => ExchangeVersion::Exchange2007,
        };
        let impersonation = match header.child(TYPES_NS, "ExchangeImpersonation") {
            Some(imp) => {
                let sid = imp
                    .child(TYPES_NS, "ConnectingSID")
                    .ok_or(WireError::Missing("ExchangeImpersonation/ConnectingSID"))?;
                let value = ["PrimarySmtpAddress", "SmtpAddress", "PrincipalName", "SID"]
                    .iter()
                    .find_map(|n| sid.child_text(TYPES_NS, n))
                    .ok_or(WireError::Missing("ConnectingSID/PrimarySmtpAddress"))?;
                Some(value.trim().to_owned())
            }
            None => None,
        };
        Ok(RequestHeader {
            version,
            impersonation,
        })
    }
}

/// Why bytes are not a SOAP envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    /// Not well-formed or over a limit.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The root is not `soap:Envelope`.
    #[error("not a SOAP envelope (root element {0})")]
    NotEnvelope(String),
    /// The envelope has no `soap:Body`.
    #[error("SOAP envelope without Body")]
    NoBody,
}

/// A parsed envelope: optional header and the body element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `soap:Header`, if present.
    pub header: Option<Element>,
    /// `soap:Body`.
    pub body: Element,
}

impl Envelope {
    /// The first element child of the body (the operation or response element, or a Fault).
    pub fn body_content(&self) -> Option<&Element> {
        self.body.children.first()
    }

    /// The SOAP fault in the body, if that is what it holds.
    pub fn fault(&self) -> Option<SoapFault> {
        self.body
            .child(SOAP_NS, "Fault")
            .map(SoapFault::from_element)
    }
}

/// Parse a SOAP 1.1 envelope with limits.
pub fn parse_envelope(bytes: &[u8], limits: &XmlLimits) -> Result<Envelope, SoapError> {
    let mut root = parse(bytes, limits)?;
    if !root.is(SOAP_NS, "Envelope") {
        return Err(SoapError::NotEnvelope(excerpt(&root.name)));
    }
    let mut header = None;
    let mut body = None;
    for child in root.children.drain(..) {
        if child.is(SOAP_NS, "Header") && header.is_none() {
            header = Some(child);
        } else if child.is(SOAP_NS, "Body") && body.is_none() {
            body = Some(child);
        }
    }
    Ok(Envelope {
        header,
        body: body.ok_or(SoapError::NoBody)?,
    })
}

fn open_envelope(w: &mut XmlWriter) {
    w.start("soap:Envelope")
        .attr("xmlns:soap", SOAP_NS)
        .attr("xmlns:t", TYPES_NS)
        .attr("xmlns:m", MESSAGES_NS);
}

/// A whole request envelope: header from `header`, body content from `body`.
pub(crate) fn request_envelope(
    header: &RequestHeader,
    body: impl FnOnce(&mut XmlWriter),
) -> String {
    let mut w = XmlWriter::new();
    open_envelope(&mut w);
    w.start("soap:Header");
    header.write(&mut w);
    w.end();
    w.start("soap:Body");
    body(&mut w);
    w.end();
    w.finish()
}

/// The ServerVersionInfo every response carries, faults included (an Exchange 2016 CU build,
/// as a real server sends it): `qname` is `t:ServerVersionInfo` where the envelope declares
/// `t`, else `h:ServerVersionInfo` declaring `h` itself, as Exchange writes it in faults.
fn write_server_version(w: &mut XmlWriter, qname: &str) {
    w.start(qname);
    if qname.starts_with("h:") {
        w.attr("xmlns:h", TYPES_NS);
    }
    w.attr("MajorVersion", "15")
        .attr("MinorVersion", "1")
        .attr("MajorBuildNumber", "2507")
        .attr("MinorBuildNumber", "6")
        .attr("Version", "V2017_07_11")
        .end();
}

/// A whole response envelope with ServerVersionInfo in the header and `body` in the body.
pub(crate) fn response_envelope(body: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    open_envelope(&mut w);
    w.start("soap:Header");
    write_server_version(&mut w, "t:ServerVersionInfo");
    w.end();
    w.start("soap:Body");
    body(&mut w);
    w.end();
    w.finish()
}

/// Find `Value[@Name=name]` anywhere under a MessageXml element (any namespace).
pub(crate) fn message_xml_value<'a>(message_xml: &'a Element, name: &str) -> Option<&'a str> {
    for c in &message_xml.children {
        if c.name == "Value" && c.attr("Name") == Some(name) {
            return Some(c.text.trim());
        }
        if let Some(v) = message_xml_value(c, name) {
            return Some(v);
        }
    }
    None
}

/// `BackOffMilliseconds` from a MessageXml element, capped at [`super::error::MAX_BACK_OFF`].
pub(crate) fn back_off_from(message_xml: Option<&Element>) -> Option<Duration> {
    message_xml
        .and_then(|m| message_xml_value(m, "BackOffMilliseconds"))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms).min(super::error::MAX_BACK_OFF))
}

/// Write `MessageXml` with the back-off, the way Exchange reports throttling.
pub(crate) fn write_message_xml(w: &mut XmlWriter, qname: &str, back_off: Duration) {
    w.start(qname)
        .start("t:Value")
        .attr("Name", "BackOffMilliseconds")
        .text(&back_off.as_millis().to_string())
        .end()
        .end();
}

/// A SOAP fault as Exchange sends it (faultcode `a:ErrorXxx`, detail with e:ResponseCode etc.).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// `faultcode` text as sent (e.g. `a:ErrorServerBusy`, `s:Client`).
    pub fault_code: String,
    /// `faultstring`.
    pub fault_string: String,
    /// `detail/e:ResponseCode`, or the EWS code in `faultcode`.
    pub response_code: Option<ResponseCode>,
    /// `detail/e:Message`.
    pub message_text: Option<String>,
    /// `detail/t:MessageXml/t:Value[@Name=BackOffMilliseconds]`.
    pub back_off: Option<Duration>,
}

impl SoapFault {
    /// The fault Exchange sends when throttling a request (HTTP 500).
    pub fn server_busy(back_off: Duration) -> Self {
        let mut fault = SoapFault::for_code(
            ResponseCode::ERROR_SERVER_BUSY,
            "The server cannot service this request right now. Try again later.",
        );
        fault.back_off = Some(back_off);
        fault
    }

    /// A fault for an EWS error code (ErrorSchemaValidation, ErrorImpersonateUserDenied, …).
    pub fn for_code(code: ResponseCode, text: &str) -> Self {
        SoapFault {
            fault_code: format!("a:{}", code.as_str()),
            fault_string: text.to_owned(),
            response_code: Some(code),
            message_text: Some(text.to_owned()),
            back_off: None,
        }
    }

    /// The whole fault envelope, shaped like Exchange's: ServerVersionInfo in the SOAP header
    /// (the only place the schema allows it; the fault's detail holds ResponseCode, Message
    /// and MessageXml), the fault in the body.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.start("s:Envelope").attr("xmlns:s", SOAP_NS);
        w.start("s:Header");
        write_server_version(&mut w, "h:ServerVersionInfo");
        w.end();
        w.start("s:Body").start("s:Fault");
        w.start("faultcode")
            .attr("xmlns:a", TYPES_NS)
            .text(&self.fault_code)
            .end();
        w.start("faultstring")
            .attr("xml:lang", "en-US")
            .text(&self.fault_string)
            .end();
        w.start("detail");
        if let Some(code) = &self.response_code {
            w.start("e:ResponseCode")
                .attr("xmlns:e", ERRORS_NS)
                .text(code.as_str())
                .end();
        }
        if let Some(m) = &self.message_text {
            w.start("e:Message")
                .attr("xmlns:e", ERRORS_NS)
                .text(m)
                .end();
        }
        if let Some(b) = self.back_off {
            w.start("t:MessageXml")
                .attr("xmlns:t", TYPES_NS)
                .start("t:Value")
                .attr("Name", "BackOffMilliseconds")
                .text(&b.as_millis().to_string())
                .end()
                .end();
        }
        w.finish()
    }

    /// Read a `soap:Fault` element (children may be unqualified or qualified, any prefix).
    pub fn from_element(fault: &Element) -> Self {
        let child = |name: &str| fault.children.iter().find(|c| c.name == name);
        let fault_code = child("faultcode")
            .map(|c| c.text.trim().to_owned())
            .unwrap_or_default();
        let fault_string = child("faultstring")
            .map(|c| c.text.trim().to_owned())
            .unwrap_or_default();
        let detail = child("detail");
        let in_detail =
            |name: &str| detail.and_then(|d| d.children.iter().find(|c| c.name == name));
        let local_code = fault_code.rsplit(':').next().unwrap_or_default();
        let response_code = in_detail("ResponseCode")
            .map(|c| ResponseCode::new(c.text.trim()))
            .or_else(|| {
                local_code
                    .starts_with("Error")
                    .then(|| ResponseCode::new(local_code))
            });
        SoapFault {
            message_text: in_detail("Message").map(|m| m.text.trim().to_owned()),
            back_off: back_off_from(in_detail("MessageXml")),
            response_code,
            fault_code,
            fault_string,
        }
    }

    /// The client-side error this fault means.
    pub fn into_error(self) -> EwsError {
        match &self.response_code {
            Some(code) => EwsError::from_response_code(
                code,
                self.message_text.as_deref().or(Some(&self.fault_string)),
                self.back_off,
                None,
            ),
            None => EwsError::ServerError {
                code: excerpt(&self.fault_code),
                message: excerpt(&self.fault_string),
            },
        }
    }
}

/// Reading a failed HTTP reply needs the envelope parser: it lives here, beside it, so that
/// `error` does not import `soap` back.
impl EwsError {
    /// The error for a failed HTTP reply: a SOAP fault in the body wins (Exchange sends
    /// ErrorServerBusy as HTTP 500 or 503 with a fault); otherwise 401 → Unauthorized,
    /// 503 → ServerBusy with [`DEFAULT_BACK_OFF`](super::error::DEFAULT_BACK_OFF), others → Http. The body is never echoed.
    pub fn from_http_status(status: u16, body: &[u8]) -> EwsError {
        if status != 401 {
            if let Some(fault) = fault_in(body) {
                return fault.into_error();
            }
        }
        match status {
            401 => EwsError::Unauthorized,
            503 => EwsError::ServerBusy {
                back_off: super::error::DEFAULT_BACK_OFF,
            },
            _ => EwsError::Http { status },
        }
    }
}

/// The SOAP fault a failed HTTP answer carries, if its body is one (bodies over 1 MiB are
/// not sniffed).
fn fault_in(body: &[u8]) -> Option<SoapFault> {
    if body.len() > 1024 * 1024 {
        return None;
    }
    parse_envelope(body, &XmlLimits::default())
        .ok()
        .and_then(|envelope| envelope.fault())
}

/// Whether a failed HTTP answer is Exchange's verdict on the request: a 401 (refused before
/// anything ran) or a body that is a SOAP fault. A body-less or HTML 5xx is not: a proxy or
/// a failing server may have answered after the work was done.
pub fn is_exchange_verdict(status: u16, body: &[u8]) -> bool {
    status == 401 || fault_in(body).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::test_support::check_soap;

    /// Exchange's throttling fault, transcribed from the EWS throttling documentation.
    const BUSY_FAULT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Body>
    <s:Fault>
      <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
      <faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
      <detail>
        <e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
        <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>
        <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
          <t:Value Name="BackOffMilliseconds">297749</t:Value>
        </t:MessageXml>
      </detail>
    </s:Fault>
  </s:Body>
</s:Envelope>"#;

    /// The impersonation fault shape (faultcode carries the code; detail names it too).
    const IMPERSONATION_FAULT: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorImpersonateUserDenied</faultcode>
<faultstring xml:lang="en-US">The account does not have permission to impersonate the requested user.</faultstring>
<detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorImpersonateUserDenied</e:ResponseCode>
<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The account does not have permission to impersonate the requested user.</e:Message></detail>
</s:Fault></s:Body></s:Envelope>"#;

    #[test]
    fn exchange_busy_fault_becomes_server_busy_with_back_off() {
        let env = parse_envelope(BUSY_FAULT.as_bytes(), &XmlLimits::default()).unwrap();
        let fault = env.fault().unwrap();
        assert_eq!(fault.response_code, Some(ResponseCode::ERROR_SERVER_BUSY));
        assert_eq!(fault.back_off, Some(Duration::from_millis(297_749)));
        let err = fault.into_error();
        assert!(
            matches!(err, EwsError::ServerBusy { back_off } if back_off.as_millis() == 297_749)
        );
    }

    #[test]
    fn impersonation_fault_is_permanent() {
        let env = parse_envelope(IMPERSONATION_FAULT.as_bytes(), &XmlLimits::default()).unwrap();
        let err = env.fault().unwrap().into_error();
        assert!(matches!(err, EwsError::ImpersonationDenied { .. }));
        assert_eq!(err.kind(), ErrorKind::Permanent);
    }

    #[test]
    fn written_faults_parse_back_to_themselves() {
        for fault in [
            SoapFault::server_busy(Duration::from_millis(5000)),
            SoapFault::for_code(
                ResponseCode::ERROR_SCHEMA_VALIDATION,
                "bad <request> & more",
            ),
        ] {
            let xml = fault.to_xml();
            check_soap(&xml);
            let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
            assert_eq!(env.fault().unwrap(), fault);
        }
    }

    #[test]
    fn request_header_round_trips_and_validates() {
        for header in [
            RequestHeader::new(ExchangeVersion::Exchange2013Sp1),
            RequestHeader::impersonating(ExchangeVersion::Exchange2016, "user@contoso.test"),
        ] {
            let xml = request_envelope(&header, |_| {});
            check_soap(&xml);
            let env = parse_envelope(xml.as_bytes(), &XmlLimits::default()).unwrap();
            assert_eq!(
                RequestHeader::from_header(env.header.as_ref()).unwrap(),
                header
            );
        }
    }

    #[test]
    fn versions_parse_every_schema_value_and_refuse_others() {
        for (v, s) in VERSIONS {
            assert_eq!(s.parse::<ExchangeVersion>().unwrap(), v);
            assert_eq!(v.as_str(), s);
        }
        assert!("Exchange2099".parse::<ExchangeVersion>().is_err());
    }

    #[test]
    fn garbage_back_off_means_the_default_and_absurd_ones_are_capped() {
        let busy = SoapFault::server_busy(Duration::from_millis(1234)).to_xml();
        for garbage in ["-5", "abc", "", "1e9", "0x10", "99999999999999999999999"] {
            let xml = busy.replace(">1234<", &format!(">{garbage}<"));
            let fault = parse_envelope(xml.as_bytes(), &XmlLimits::default())
                .unwrap()
                .fault()
                .unwrap();
            assert_eq!(fault.back_off, None, "{garbage}");
            assert!(matches!(
                fault.into_error(),
                EwsError::ServerBusy { back_off } if back_off == crate::error::DEFAULT_BACK_OFF
            ));
        }
        let xml = busy.replace(">1234<", ">18446744073709551615<");
        let fault = parse_envelope(xml.as_bytes(), &XmlLimits::default())
            .unwrap()
            .fault()
            .unwrap();
        assert_eq!(fault.back_off, Some(crate::error::MAX_BACK_OFF));
        let xml = busy.replace(">1234<", ">  42  <");
        let fault = parse_envelope(xml.as_bytes(), &XmlLimits::default())
            .unwrap()
            .fault()
            .unwrap();
        assert_eq!(fault.back_off, Some(Duration::from_millis(42)));
    }

    #[test]
    fn soap_1_2_envelopes_are_not_read_as_soap_1_1() {
        let xml = SoapFault::server_busy(Duration::from_millis(5))
            .to_xml()
            .replace(SOAP_NS, "http://www.w3.org/2003/05/soap-envelope");
        assert!(matches!(
            parse_envelope(xml.as_bytes(), &XmlLimits::default()),
            Err(SoapError::NotEnvelope(_))
        ));
    }

    #[test]
    fn non_envelopes_are_refused() {
        assert!(matches!(
            parse_envelope(b"<html><body>503</body></html>", &XmlLimits::default()),
            Err(SoapError::NotEnvelope(_))
        ));
        assert!(matches!(
            parse_envelope(
                b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"/>",
                &XmlLimits::default()
            ),
            Err(SoapError::NoBody)
        ));
    }
}

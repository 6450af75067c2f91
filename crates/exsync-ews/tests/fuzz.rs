//! An in-tree, dependency-free mutation fuzzer for every EWS parser (issue 5: stable Rust has
//! no cargo-fuzz/libFuzzer, so this stands in for it).
//!
//! Owns the fuzz targets (one per parser: the XML DOM, the SOAP envelope and fault reader,
//! `EwsError::from_http_status`, each operation's response parser and the server-side
//! `parse_request`), their seed corpora (valid documents from the codec's own writers plus
//! hostile ones), the mutations (byte-level and tag-aware) and a deterministic runner that
//! catches panics. A target must never panic, never return an error that echoes unbounded remote
//! data or an unbounded back-off, and always answer `Ok` or `Err`.
//!
//! Driven by `cargo run --release --example fuzz_ews` and, briefly, by the unit tests. Nothing in
//! the sync path calls it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::error::{EwsError, MAX_BACK_OFF};
use super::ops::{
    parse_request, CreateItemResponse, DeleteItemResponse, FindItemResponse, GetFolderResponse,
    GetItemResponse, RequestError, SyncFolderHierarchyResponse, SyncFolderItemsResponse,
    UpdateItemResponse,
};
use super::samples;
use super::soap::{parse_envelope, RequestHeader, SoapFault, SOAP_NS};
use super::types::{ResponseCode, ResponseMessage};
use super::xml::{parse, Element, XmlLimits};

/// Longest error text (Display) a parser may produce from remote input: excerpts are bounded to
/// 200 characters, so anything much longer echoes unbounded remote data.
pub const MAX_ERROR_CHARS: usize = 512;

/// Longest input the mutator produces; bigger seeds are run once but never mutated.
pub const MAX_MUTATED_INPUT: usize = 256 * 1024;

/// The limits the targets parse with: the defaults, but small enough that hostile seeds hit them.
pub fn fuzz_limits() -> XmlLimits {
    XmlLimits {
        max_bytes: 1024 * 1024,
        max_depth: 64,
        max_elements: 50_000,
    }
}

/// Whether a target accepted or refused one input (both are fine; only failures matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The parser returned `Ok`.
    Accepted,
    /// The parser returned a well-formed `Err`.
    Refused,
}

/// What the fuzzer reports as a bug in a parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FuzzFailure {
    /// The parser panicked (message of the panic).
    #[error("panic: {0}")]
    Panic(String),
    /// The parser returned, but broke a rule (an unbounded error text, an absurd back-off, …).
    #[error("invariant broken: {0}")]
    Invariant(String),
}

/// A parser under fuzz: its name, the function that feeds it bytes, and its seed corpus.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name used on the command line and in crash file names.
    pub name: &'static str,
    /// Feed one input; `Err` is a bug.
    pub run: fn(&[u8]) -> Result<Outcome, FuzzFailure>,
    /// Seed corpus builder.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every fuzz target, one per EWS parser.
pub const TARGETS: &[Target] = &[
    Target {
        name: "xml_dom",
        run: run_xml_dom,
        seeds: seeds_all_documents,
    },
    Target {
        name: "soap_envelope",
        run: run_soap_envelope,
        seeds: seeds_all_documents,
    },
    Target {
        name: "http_status",
        run: run_http_status,
        seeds: seeds_http_status,
    },
    Target {
        name: "get_folder_response",
        run: run_get_folder,
        seeds: || seeds_response("GetFolder"),
    },
    Target {
        name: "sync_folder_hierarchy_response",
        run: run_sync_folder_hierarchy,
        seeds: || seeds_response("SyncFolderHierarchy"),
    },
    Target {
        name: "sync_folder_items_response",
        run: run_sync_folder_items,
        seeds: || seeds_response("SyncFolderItems"),
    },
    Target {
        name: "get_item_response",
        run: run_get_item,
        seeds: || seeds_response("GetItem"),
    },
    Target {
        name: "find_item_response",
        run: run_find_item,
        seeds: || seeds_response("FindItem"),
    },
    Target {
        name: "create_item_response",
        run: run_create_item,
        seeds: || seeds_response("CreateItem"),
    },
    Target {
        name: "update_item_response",
        run: run_update_item,
        seeds: || seeds_response("UpdateItem"),
    },
    Target {
        name: "delete_item_response",
        run: run_delete_item,
        seeds: || seeds_response("DeleteItem"),
    },
    Target {
        name: "parse_request",
        run: run_parse_request,
        seeds: seeds_requests,
    },
];

/// The target with this name.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

// ---------------------------------------------------------------------------------------------
// Targets and their invariants
// ---------------------------------------------------------------------------------------------

fn violation(what: impl Into<String>) -> FuzzFailure {
    FuzzFailure::Invariant(what.into())
}

fn bounded(field: &str, text: &str, limit: usize) -> Result<(), FuzzFailure> {
    let n = text.chars().count();
    if n > limit {
        return Err(violation(format!(
            "{field} has {n} characters (limit {limit})"
        )));
    }
    Ok(())
}

/// The rules every [`EwsError`] from remote input keeps.
fn check_ews_error(e: &EwsError) -> Result<(), FuzzFailure> {
    match e {
        EwsError::ServerBusy { back_off } if *back_off > MAX_BACK_OFF => Err(violation(format!(
            "back-off {back_off:?} above {MAX_BACK_OFF:?}"
        ))),
        EwsError::Malformed { excerpt } => bounded("Malformed excerpt", excerpt, 200),
        EwsError::AccessDenied { detail } => bounded("AccessDenied detail", detail, 200),
        EwsError::ImpersonationDenied { mailbox } | EwsError::MailboxNotFound { mailbox } => {
            bounded("mailbox", mailbox, 200)
        }
        EwsError::ServerError { code, message } | EwsError::Request { code, message } => {
            bounded("code", code, 200)?;
            bounded("message", message, 200)
        }
        _ => Ok(()),
    }?;
    bounded("error text", &e.to_string(), MAX_ERROR_CHARS)
}

fn check_messages<T>(messages: &[ResponseMessage<T>]) -> Result<(), FuzzFailure> {
    for m in messages {
        if let Some(b) = m.back_off {
            if b > MAX_BACK_OFF {
                return Err(violation(format!("message back-off {b:?} above the cap")));
            }
        }
        if let Err(e) = m.result() {
            check_ews_error(&e)?;
        }
    }
    Ok(())
}

fn check_fault(fault: SoapFault) -> Result<(), FuzzFailure> {
    if fault.back_off.is_some_and(|b| b > MAX_BACK_OFF) {
        return Err(violation("fault back-off above the cap"));
    }
    check_ews_error(&fault.into_error())
}

fn depth_and_count(root: &Element) -> (usize, usize) {
    let mut deepest = 0;
    let mut count = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((el, depth)) = stack.pop() {
        count += 1;
        deepest = deepest.max(depth);
        stack.extend(el.children.iter().map(|c| (c, depth + 1)));
    }
    (deepest, count)
}

fn run_xml_dom(input: &[u8]) -> Result<Outcome, FuzzFailure> {
    let limits = fuzz_limits();
    match parse(input, &limits) {
        Ok(root) => {
            let (depth, count) = depth_and_count(&root);
            if depth > limits.max_depth || count > limits.max_elements {
                return Err(violation(format!(
                    "tree of depth {depth} with {count} elements passed the limits"
                )));
            }
            Ok(Outcome::Accepted)
        }
        Err(e) => {
            bounded("XML error", &e.to_string(), MAX_ERROR_CHARS)?;
            Ok(Outcome::Refused)
        }
    }
}

fn run_soap_envelope(input: &[u8]) -> Result<Outcome, FuzzFailure> {
    match parse_envelope(input, &fuzz_limits()) {
        Ok(envelope) => {
            let _ = envelope.body_content();
            // The server reads the header of whatever arrives.
            if let Err(e) = RequestHeader::from_header(envelope.header.as_ref()) {
                bounded("header error", &e.to_string(), MAX_ERROR_CHARS)?;
            }
            if let Some(fault) = envelope.fault() {
                check_fault(fault)?;
            }
            Ok(Outcome::Accepted)
        }
        Err(e) => {
            bounded("SOAP error", &e.to_string(), MAX_ERROR_CHARS)?;
            Ok(Outcome::Refused)
        }
    }
}

/// Input layout: two bytes of HTTP status (big-endian, taken modulo 1000), then the body.
fn run_http_status(input: &[u8]) -> Result<Outcome, FuzzFailure> {
    let (status, body) = match input {
        [hi, lo, body @ ..] => (u16::from_be_bytes([*hi, *lo]) % 1000, body),
        _ => (500, input),
    };
    let e = EwsError::from_http_status(status, body);
    check_ews_error(&e)?;
    if status == 401 && !matches!(e, EwsError::Unauthorized) {
        return Err(violation("HTTP 401 not read as Unauthorized"));
    }
    // "Accepted": the body was read as a SOAP fault rather than judged by the status alone.
    let by_status = match (status, &e) {
        (401, EwsError::Unauthorized) => true,
        (503, EwsError::ServerBusy { back_off }) => *back_off == super::error::DEFAULT_BACK_OFF,
        (s, EwsError::Http { status }) => s == *status,
        _ => false,
    };
    Ok(if by_status {
        Outcome::Refused
    } else {
        Outcome::Accepted
    })
}

macro_rules! response_target {
    ($fn_name:ident, $ty:ty) => {
        fn $fn_name(input: &[u8]) -> Result<Outcome, FuzzFailure> {
            match <$ty>::parse(input, &fuzz_limits()) {
                Ok(response) => {
                    check_messages(&response.messages)?;
                    if let Err(e) = response.first() {
                        check_ews_error(&e)?;
                    }
                    Ok(Outcome::Accepted)
                }
                Err(e) => {
                    check_ews_error(&e)?;
                    Ok(Outcome::Refused)
                }
            }
        }
    };
}

response_target!(run_get_folder, GetFolderResponse);
response_target!(run_sync_folder_hierarchy, SyncFolderHierarchyResponse);
response_target!(run_sync_folder_items, SyncFolderItemsResponse);
response_target!(run_get_item, GetItemResponse);
response_target!(run_find_item, FindItemResponse);
response_target!(run_create_item, CreateItemResponse);
response_target!(run_update_item, UpdateItemResponse);
response_target!(run_delete_item, DeleteItemResponse);

fn run_parse_request(input: &[u8]) -> Result<Outcome, FuzzFailure> {
    match parse_request(input, &fuzz_limits()) {
        Ok((_, request)) => {
            let _ = request.operation_name();
            Ok(Outcome::Accepted)
        }
        Err(e) => {
            check_request_error(&e)?;
            Ok(Outcome::Refused)
        }
    }
}

fn check_request_error(e: &RequestError) -> Result<(), FuzzFailure> {
    bounded("request error", &e.to_string(), MAX_ERROR_CHARS)?;
    // The fake answers with this fault; it must stay bounded too.
    let fault = e.to_fault();
    bounded(
        "fault string",
        &fault.fault_string,
        MAX_ERROR_CHARS + fault.fault_code.len(),
    )
}

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

/// Documents that attack the parser rather than the schema: entity expansion, deep nesting,
/// huge attributes, bad encodings, wrong namespaces, garbage back-offs, non-XML bodies.
pub fn hostile_seeds() -> Vec<Vec<u8>> {
    let env = |body: &str| {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    };
    let mut laughs = String::from(r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">"#);
    laughs.push_str(r#"<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">"#);
    for i in 2..10 {
        let prev = i - 1;
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&lol{prev};").repeat(10)
        ));
    }
    laughs.push_str("]>");
    laughs.push_str(&env("<m:GetItemResponse>&lol9;</m:GetItemResponse>"));
    let busy = SoapFault::server_busy(Duration::from_millis(1234)).to_xml();
    let mut seeds: Vec<Vec<u8>> =
        vec![
        laughs.into_bytes(),
        br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#
            .to_vec(),
        env(&format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000))).into_bytes(),
        env(&format!(
            r#"<m:GetItemResponse Huge="{}"/>"#,
            "A".repeat(200 * 1024)
        ))
        .into_bytes(),
        env(&"<t:Value/>".repeat(60_000)).into_bytes(),
        vec![b' '; fuzz_limits().max_bytes + 1],
        env("<m:GetItemResponse>&unknown;</m:GetItemResponse>").into_bytes(),
        env(r#"<m:GetItemResponse a="&x;"/>"#).into_bytes(),
        env(r#"<x:Unbound/>"#).into_bytes(),
        env(&format!("<{}:Unbound/>", "p".repeat(100_000))).into_bytes(),
        env("<![CDATA[unterminated").into_bytes(),
        env("<!-- unterminated comment").into_bytes(),
        b"\xEF\xBB\xBF".iter().chain(busy.as_bytes()).copied().collect(),
        b"\xFF\xFE<\x00s\x00:\x00E\x00n\x00v\x00".to_vec(),
        busy.replace("1234", "\u{FFFD}\u{202E}").into_bytes(),
        busy.replacen("Try again", "Try \u{1}again", 1)
            .into_bytes()
            .into_iter()
            .flat_map(|b| if b == 1 { vec![0xC0, 0xAF] } else { vec![b] })
            .collect(),
        busy.replace(SOAP_NS, "http://www.w3.org/2003/05/soap-envelope")
            .into_bytes(),
        b"<html><head><title>503 Service Unavailable</title></head><body>busy</body></html>"
            .to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html/>".to_vec(),
        b"{\"error\":\"not xml\"}".to_vec(),
        Vec::new(),
        b"<".to_vec(),
        b"   \r\n\t ".to_vec(),
        env("").into_bytes(),
        format!(r#"<s:Envelope xmlns:s="{SOAP_NS}"/>"#).into_bytes(),
        format!(r#"<s:Envelope xmlns:s="{SOAP_NS}"><s:Body/></s:Envelope><trailing/>"#)
            .into_bytes(),
    ];
    // Invalid UTF-8 in the middle of an otherwise valid document.
    let mut bad = busy.clone().into_bytes();
    if let Some(pos) = bad.iter().position(|&b| b == b'T') {
        bad[pos] = 0xFF;
    }
    seeds.push(bad);
    // BackOffMilliseconds garbage.
    for garbage in [
        "-5",
        "abc",
        "",
        "99999999999999999999999",
        "18446744073709551615",
        "1e9",
        "  42  ",
        "0x10",
        "٣٤٥",
    ] {
        seeds.push(busy.replace(">1234<", &format!(">{garbage}<")).into_bytes());
    }
    // Namespaces swapped or missing.
    for (_, xml) in samples::every_response().iter().take(8) {
        seeds.push(
            xml.replace("services/2006/messages", "services/2006/TYPES-SWAPPED")
                .replace("services/2006/types", "services/2006/messages")
                .replace("services/2006/TYPES-SWAPPED", "services/2006/types")
                .into_bytes(),
        );
    }
    seeds
}

/// Faults as Exchange sends them (busy with a back-off, impersonation denied, schema error).
fn fault_seeds() -> Vec<Vec<u8>> {
    vec![
        SoapFault::server_busy(Duration::from_millis(297_749))
            .to_xml()
            .into_bytes(),
        SoapFault::for_code(
            ResponseCode::ERROR_IMPERSONATE_USER_DENIED,
            "The account does not have permission to impersonate the requested user.",
        )
        .to_xml()
        .into_bytes(),
        SoapFault::for_code(
            ResponseCode::ERROR_SCHEMA_VALIDATION,
            "The request failed schema validation.",
        )
        .to_xml()
        .into_bytes(),
    ]
}

/// `doc` cut after every 7th byte.
fn truncations(doc: &[u8]) -> Vec<Vec<u8>> {
    (0..doc.len())
        .step_by(7)
        .map(|n| doc[..n].to_vec())
        .collect()
}

fn seeds_all_documents() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = samples::every_response()
        .into_iter()
        .map(|(_, xml)| xml.into_bytes())
        .collect();
    seeds.extend(
        samples::every_request_xml()
            .into_iter()
            .map(String::into_bytes),
    );
    seeds.extend(fault_seeds());
    seeds.extend(hostile_seeds());
    if let Some((_, first)) = samples::every_response().first() {
        seeds.extend(truncations(first.as_bytes()));
    }
    seeds
}

fn seeds_http_status() -> Vec<Vec<u8>> {
    let mut bodies = fault_seeds();
    bodies.extend(hostile_seeds().into_iter().take(4));
    bodies.push(b"<html><body>Service Unavailable</body></html>".to_vec());
    bodies.push(Vec::new());
    let mut seeds = Vec::new();
    for status in [200u16, 302, 401, 403, 404, 429, 500, 502, 503] {
        for body in &bodies {
            let mut seed = status.to_be_bytes().to_vec();
            seed.extend_from_slice(body);
            seeds.push(seed);
        }
    }
    seeds
}

fn seeds_response(op: &str) -> Vec<Vec<u8>> {
    let responses = samples::every_response();
    let own: Vec<Vec<u8>> = responses
        .iter()
        .filter(|(o, _)| *o == op)
        .map(|(_, xml)| xml.clone().into_bytes())
        .collect();
    let mut seeds = own.clone();
    seeds.extend(fault_seeds());
    seeds.extend(hostile_seeds());
    if let Some(first) = own.first() {
        seeds.extend(truncations(first));
    }
    seeds
}

fn seeds_requests() -> Vec<Vec<u8>> {
    let requests: Vec<Vec<u8>> = samples::every_request_xml()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let mut seeds = requests.clone();
    seeds.extend(hostile_seeds());
    if let Some(get_item) = requests.get(3) {
        seeds.extend(truncations(get_item));
    }
    seeds
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a tiny deterministic generator, so a run is reproduced by its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }
}

/// Values a text node or attribute is replaced with: out-of-range, negative, non-ASCII, empty.
const HOSTILE_VALUES: &[&str] = &[
    "99999999999999999999999999999999",
    "18446744073709551616",
    "-1",
    "-9223372036854775809",
    "4294967296",
    "1e309",
    "NaN",
    "",
    " ",
    "Ünïcödé ✉ 𝄞 \u{202E}evil",
    "\u{FEFF}",
    "true ",
    "maybe",
    "2024-13-45T25:61:61Z",
    "9999-12-31T23:59:59Z",
    "-0001-01-01T00:00:00Z",
    "&amp;&lt;&#0;&#xD800;&#1114112;",
    "]]>",
    "Error",
    "Success",
    "Warning",
];

/// Byte strings worth inserting anywhere.
const TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"&undefined;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<!DOCTYPE x>",
    b"<?xml version=\"1.0\"?>",
    b" xmlns:t=\"\"",
    b" xmlns=\"urn:wrong\"",
    b"\"",
    b"'",
    b"\xEF\xBB\xBF",
    b"\xFF",
    b"\xC0\xAF",
    b"\x00",
    b"\r\n",
];

/// Positions of `<` that open a start tag.
fn start_tags(input: &[u8]) -> Vec<usize> {
    input
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'_'))
        .map(|(i, _)| i)
        .collect()
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from >= haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The byte range of the element whose start tag opens at `pos` (naively matched).
fn element_span(input: &[u8], pos: usize) -> Option<Range<usize>> {
    let name_end = input[pos + 1..]
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .map(|p| p + pos + 1)?;
    let name = &input[pos + 1..name_end];
    let gt = find(input, b">", name_end)?;
    if gt > 0 && input[gt - 1] == b'/' {
        return Some(pos..gt + 1);
    }
    let mut close = b"</".to_vec();
    close.extend_from_slice(name);
    close.push(b'>');
    let end = find(input, &close, gt)?;
    Some(pos..end + close.len())
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> Option<&'a T> {
    items.get(rng.below(items.len()))
}

/// Apply one random mutation to `data` (keeping it at most `max_input` bytes); `corpus` feeds
/// splicing.
pub fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], max_input: usize) {
    let len = data.len();
    match rng.below(14) {
        // Bit flip.
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        // Random byte.
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = (rng.next_u64() & 0xff) as u8;
        }
        // Insert random bytes.
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| (rng.next_u64() & 0xff) as u8).collect();
            data.splice(at..at, bytes);
        }
        // Delete a range.
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below(64.min(len - at));
            data.drain(at..at + n);
        }
        // Duplicate a chunk somewhere else.
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below(256.min(len - at));
            let chunk = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, chunk);
        }
        // Splice: our head with another entry's tail.
        5 => {
            if let Some(other) = pick(rng, corpus) {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
        // Insert a dictionary token.
        6 => {
            if let Some(token) = pick(rng, TOKENS) {
                let at = rng.below(len + 1);
                data.splice(at..at, token.iter().copied());
            }
        }
        // Duplicate an element.
        7 => {
            let tags = start_tags(data);
            if let Some(span) = pick(rng, &tags).and_then(|&p| element_span(data, p)) {
                let copy = data[span.clone()].to_vec();
                data.splice(span.end..span.end, copy);
            }
        }
        // Drop a closing tag.
        8 => {
            let closes: Vec<usize> = data
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w == b"</")
                .map(|(i, _)| i)
                .collect();
            if let Some(&at) = pick(rng, &closes) {
                if let Some(gt) = find(data, b">", at) {
                    data.drain(at..=gt);
                }
            }
        }
        // Swap an element with its next sibling.
        9 => {
            let tags = start_tags(data);
            if let Some(a) = pick(rng, &tags).and_then(|&p| element_span(data, p)) {
                let next = data[a.end..]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .map(|p| p + a.end);
                if let Some(b) = next
                    .filter(|&p| data.get(p) == Some(&b'<') && p + 1 < data.len())
                    .filter(|&p| data[p + 1].is_ascii_alphabetic())
                    .and_then(|p| element_span(data, p))
                {
                    let mut out = data[..a.start].to_vec();
                    out.extend_from_slice(&data[b.clone()]);
                    out.extend_from_slice(&data[a.end..b.start]);
                    out.extend_from_slice(&data[a.clone()]);
                    out.extend_from_slice(&data[b.end..]);
                    *data = out;
                }
            }
        }
        // Replace a text node.
        10 => {
            let texts: Vec<usize> = data
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w[0] == b'>' && w[1] != b'<')
                .map(|(i, _)| i + 1)
                .collect();
            if let (Some(&start), Some(value)) = (pick(rng, &texts), pick(rng, HOSTILE_VALUES)) {
                let end = find(data, b"<", start).unwrap_or(data.len());
                data.splice(start..end, value.bytes());
            }
        }
        // Replace an attribute value.
        11 => {
            let values: Vec<usize> = data
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w == b"=\"")
                .map(|(i, _)| i + 2)
                .collect();
            if let (Some(&start), Some(value)) = (pick(rng, &values), pick(rng, HOSTILE_VALUES)) {
                let end = find(data, b"\"", start).unwrap_or(data.len());
                data.splice(start..end, value.bytes());
            }
        }
        // Truncate.
        12 => {
            let at = rng.below(len + 1);
            data.truncate(at);
        }
        // Repeat an element many times (pressure on the element count).
        _ => {
            let tags = start_tags(data);
            if let Some(span) = pick(rng, &tags).and_then(|&p| element_span(data, p)) {
                let copy = data[span.clone()].to_vec();
                let times = 1 + rng.below(64);
                let repeated: Vec<u8> = copy
                    .iter()
                    .copied()
                    .cycle()
                    .take(copy.len() * times)
                    .collect();
                data.splice(span.end..span.end, repeated);
            }
        }
    }
    data.truncate(max_input.min(MAX_MUTATED_INPUT));
}

/// A mutated copy of a random corpus entry (1–4 stacked mutations), at most `max_input` bytes.
pub fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], max_input: usize) -> Vec<u8> {
    let mut data = pick(rng, corpus).cloned().unwrap_or_default();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut data, corpus, max_input);
    }
    data
}

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

/// How long and how reproducibly to fuzz one target.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// Mutated inputs to try (after every seed once).
    pub iterations: u64,
    /// Seed of the generator (mixed with the target's name).
    pub seed: u64,
    /// Stop early after this long, whatever `iterations` says.
    pub time_limit: Option<Duration>,
    /// Largest input mutated or produced (at most [`MAX_MUTATED_INPUT`]); bigger seeds run once.
    pub max_input: usize,
}

impl Default for FuzzConfig {
    fn default() -> Self {
        FuzzConfig {
            iterations: 10_000,
            seed: 1,
            time_limit: None,
            max_input: MAX_MUTATED_INPUT,
        }
    }
}

/// One input that broke a target.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The input, byte for byte.
    pub input: Vec<u8>,
    /// What went wrong.
    pub failure: FuzzFailure,
    /// The mutation round that produced it (`None`: a seed).
    pub iteration: Option<u64>,
}

/// What fuzzing one target did.
#[derive(Debug, Clone)]
pub struct FuzzReport {
    /// Target name.
    pub target: &'static str,
    /// Seeds run.
    pub seeds: usize,
    /// Mutated inputs run.
    pub iterations: u64,
    /// Inputs the parser accepted.
    pub accepted: u64,
    /// Inputs the parser refused cleanly.
    pub refused: u64,
    /// Wall time spent.
    pub elapsed: Duration,
    /// Inputs that broke it (at most [`MAX_CRASHES`] kept).
    pub crashes: Vec<Crash>,
}

impl FuzzReport {
    /// Inputs per second.
    pub fn rate(&self) -> f64 {
        let total = self.iterations as f64 + self.seeds as f64;
        total / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Most crashes one run keeps (the first ones; the rest are counted out).
pub const MAX_CRASHES: usize = 50;

/// Most entries the evolving corpus grows to (accepted mutants join it).
const MAX_CORPUS: usize = 512;

/// Feed one input to a target, turning a panic into [`FuzzFailure::Panic`].
pub fn run_one(target: &Target, input: &[u8]) -> Result<Outcome, FuzzFailure> {
    match catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            Err(FuzzFailure::Panic(message))
        }
    }
}

fn target_seed(name: &str, seed: u64) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish() ^ seed
}

/// Run every seed of `target` once, then `config.iterations` mutants; deterministic per seed.
pub fn fuzz_target(target: &Target, config: &FuzzConfig) -> FuzzReport {
    let started = Instant::now();
    let mut report = FuzzReport {
        target: target.name,
        seeds: 0,
        iterations: 0,
        accepted: 0,
        refused: 0,
        elapsed: Duration::ZERO,
        crashes: Vec::new(),
    };
    let seeds = (target.seeds)();
    let record = |report: &mut FuzzReport, input: &[u8], iteration: Option<u64>| {
        let result = run_one(target, input);
        match &result {
            Ok(Outcome::Accepted) => report.accepted += 1,
            Ok(Outcome::Refused) => report.refused += 1,
            Err(failure) => {
                if report.crashes.len() < MAX_CRASHES {
                    report.crashes.push(Crash {
                        input: input.to_vec(),
                        failure: failure.clone(),
                        iteration,
                    });
                }
            }
        }
        result
    };
    // Two pools: inputs the parser accepts (mutated most of the time, so mutants stay close to
    // valid documents and reach deep code) and every seed (hostile ones, truncations).
    let mut valid: Vec<Vec<u8>> = Vec::new();
    let max_input = config.max_input.min(MAX_MUTATED_INPUT);
    for seed in &seeds {
        if record(&mut report, seed, None) == Ok(Outcome::Accepted) && seed.len() <= max_input {
            valid.push(seed.clone());
        }
        report.seeds += 1;
    }
    let all: Vec<Vec<u8>> = seeds.into_iter().filter(|s| s.len() <= max_input).collect();
    let mut rng = Rng::new(target_seed(target.name, config.seed));
    for i in 0..config.iterations {
        if config.time_limit.is_some_and(|t| started.elapsed() >= t) {
            break;
        }
        let pool = if valid.is_empty() || rng.below(5) == 0 {
            &all
        } else {
            &valid
        };
        let input = mutate(&mut rng, pool, max_input);
        let result = record(&mut report, &input, Some(i));
        report.iterations += 1;
        // Accepted mutants are structurally interesting: mutate them further.
        if result == Ok(Outcome::Accepted) && valid.len() < MAX_CORPUS {
            valid.push(input);
        }
    }
    report.elapsed = started.elapsed();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed once, then 2,000 mutants (inputs up to 32 KB, so debug builds stay quick).
    fn survives(name: &str) {
        let target = target(name).expect("known target");
        let config = FuzzConfig {
            iterations: 2_000,
            seed: 0x5EED,
            time_limit: None,
            max_input: 32 * 1024,
        };
        let report = fuzz_target(target, &config);
        if let Some(crash) = report.crashes.first() {
            panic!(
                "{name}: {} failures, first: {} on input {:?}",
                report.crashes.len(),
                crash.failure,
                String::from_utf8_lossy(&crash.input[..crash.input.len().min(600)])
            );
        }
        assert_eq!(report.iterations, 2_000);
        assert!(report.accepted > 0, "{name} accepted nothing");
    }

    macro_rules! survives {
        ($($name:ident),* $(,)?) => {
            $(
                #[test]
                fn $name() {
                    survives(stringify!($name));
                }
            )*

            #[test]
            fn every_target_has_a_test() {
                let tested = [$(stringify!($name)),*];
                for t in TARGETS {
                    assert!(tested.contains(&t.name), "{} is not fuzzed in the tests", t.name);
                }
            }
        };
    }

    // One test per target, each surviving its seeds and 2,000 mutants.
    survives!(
        xml_dom,
        soap_envelope,
        http_status,
        get_folder_response,
        sync_folder_hierarchy_response,
        sync_folder_items_response,
        get_item_response,
        find_item_response,
        create_item_response,
        update_item_response,
        delete_item_response,
        parse_request,
    );

    #[test]
    fn runs_are_reproducible_from_the_seed() {
        let corpus = seeds_response("GetItem");
        let a: Vec<Vec<u8>> = {
            let mut rng = Rng::new(7);
            (0..50).map(|_| mutate(&mut rng, &corpus, 4096)).collect()
        };
        let mut rng = Rng::new(7);
        let b: Vec<Vec<u8>> = (0..50).map(|_| mutate(&mut rng, &corpus, 4096)).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn a_panicking_target_is_reported_not_propagated() {
        let boom = Target {
            name: "boom",
            run: |input| {
                if input.first() == Some(&b'!') {
                    panic!("boom on {}", input.len());
                }
                Ok(Outcome::Refused)
            },
            seeds: || vec![b"!x".to_vec(), b"ok".to_vec()],
        };
        let report = fuzz_target(
            &boom,
            &FuzzConfig {
                iterations: 0,
                ..FuzzConfig::default()
            },
        );
        assert_eq!(report.crashes.len(), 1);
        assert_eq!(
            report.crashes[0].failure,
            FuzzFailure::Panic("boom on 2".into())
        );
    }

    #[test]
    fn tag_aware_mutations_find_elements() {
        let doc = b"<a><b x=\"1\">t</b><c/></a>";
        assert_eq!(start_tags(doc), vec![0, 3, 17]);
        assert_eq!(element_span(doc, 3), Some(3..17));
        assert_eq!(element_span(doc, 17), Some(17..21));
        assert_eq!(element_span(doc, 0), Some(0..doc.len()));
    }
}

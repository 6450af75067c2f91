//! Fuzz targets for every EWS parser, run by bolero: under stable `cargo test` each target runs
//! its seeds, then a bounded number of generated inputs; under `cargo bolero test` (libFuzzer,
//! AFL or honggfuzz, coverage-guided) the same targets run for as long as asked.
//!
//! One target per parser: the XML DOM, the SOAP envelope and fault reader,
//! `EwsError::from_http_status`, each operation's response parser and the server-side
//! `parse_request`. Seeds are valid documents from the codec's own writers (`support/samples.rs`)
//! plus hostile ones; a generated input is a seed with one edit (bytes cut out, a dictionary
//! token, a hostile value or raw bytes put in), or raw bytes alone, so the engine explores near
//! real documents. A target must never panic, never return an error that echoes unbounded
//! remote data or an unbounded back-off, and always answer `Ok` or `Err`.
//!
//! `cargo test -p exsync-ews --test fuzz` runs every seed and 2,000 generated inputs per target;
//! `BOLERO_RANDOM_ITERATIONS=1000000 cargo test --release -p exsync-ews --test fuzz` runs longer.

#[allow(dead_code)] // each test binary uses part of the samples
#[path = "support/samples.rs"]
mod samples;

use std::time::Duration;

use exsync_ews::error::{EwsError, MAX_BACK_OFF};
use exsync_ews::ops::{
    parse_request, CreateItemResponse, DeleteItemResponse, FindItemResponse, GetFolderResponse,
    GetItemResponse, RequestError, SyncFolderHierarchyResponse, SyncFolderItemsResponse,
    UpdateItemResponse,
};
use exsync_ews::soap::{parse_envelope, RequestHeader, SoapFault, SOAP_NS};
use exsync_ews::types::{ResponseCode, ResponseMessage};
use exsync_ews::xml::{parse, Element, XmlLimits};

/// Longest error text (Display) a parser may produce from remote input: excerpts are bounded to
/// 200 characters, so anything much longer echoes unbounded remote data.
const MAX_ERROR_CHARS: usize = 512;

/// The limits the targets parse with: the defaults, but small enough that hostile seeds hit them.
fn fuzz_limits() -> XmlLimits {
    XmlLimits {
        max_bytes: 1024 * 1024,
        max_depth: 64,
        max_elements: 50_000,
    }
}

/// Whether a target accepted or refused one input (both are fine; only failures matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The parser returned `Ok`.
    Accepted,
    /// The parser returned a well-formed `Err`.
    Refused,
}

/// What the fuzzer reports as a bug in a parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum FuzzFailure {
    /// The parser returned, but broke a rule (an unbounded error text, an absurd back-off, …).
    #[error("invariant broken: {0}")]
    Invariant(String),
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
        (503, EwsError::ServerBusy { back_off }) => {
            *back_off == exsync_ews::error::DEFAULT_BACK_OFF
        }
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
fn hostile_seeds() -> Vec<Vec<u8>> {
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
// Generated inputs
// ---------------------------------------------------------------------------------------------

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

/// Seeds larger than this run once but are never edited (debug builds stay quick).
const MAX_EDITED_SEED: usize = 32 * 1024;

/// Generated inputs per target under `cargo test` (`BOLERO_RANDOM_ITERATIONS` overrides).
const ITERATIONS: usize = 2_000;

/// One generated input: which seed, where to cut, what to put in. The engine drives these
/// numbers (coverage-guided under `cargo bolero test`), so it can reach any seed and any edit.
type Edit = (u16, u32, u8, u8, Vec<u8>);

/// The input an [`Edit`] stands for: `seeds[seed]` with `cut` bytes at `at` replaced by a
/// dictionary token or hostile value (`pick`), or by `bytes`; a seed number past the end
/// means `bytes` alone.
fn edited(seeds: &[Vec<u8>], (seed, at, cut, pick, bytes): &Edit) -> Vec<u8> {
    let Some(base) = seeds.get(usize::from(*seed) % (seeds.len() + 1)) else {
        return bytes.clone();
    };
    let at = usize::try_from(*at).unwrap_or(0) % (base.len() + 1);
    let end = (at + usize::from(*cut % 64)).min(base.len());
    let pick = usize::from(*pick);
    let insert: &[u8] = if let Some(token) = TOKENS.get(pick) {
        token
    } else if let Some(value) = HOSTILE_VALUES.get(pick - TOKENS.len()) {
        value.as_bytes()
    } else {
        bytes
    };
    let mut input = base[..at].to_vec();
    input.extend_from_slice(insert);
    input.extend_from_slice(&base[end..]);
    input
}

/// Run every seed of a target, then the generated inputs; any broken rule fails the test with
/// the input that broke it.
fn fuzz(run: fn(&[u8]) -> Result<Outcome, FuzzFailure>, seeds: Vec<Vec<u8>>) {
    let mut accepted = 0;
    for seed in &seeds {
        match run(seed) {
            Ok(Outcome::Accepted) => accepted += 1,
            Ok(Outcome::Refused) => {}
            Err(failure) => panic!(
                "a seed broke the target: {failure} on input {:?}",
                String::from_utf8_lossy(&seed[..seed.len().min(600)])
            ),
        }
    }
    assert!(accepted > 0, "the target accepted none of its seeds");
    let editable: Vec<Vec<u8>> = seeds
        .into_iter()
        .filter(|s| s.len() <= MAX_EDITED_SEED)
        .collect();
    bolero::check!()
        .with_type::<Edit>()
        .with_iterations(ITERATIONS)
        .for_each(|edit| {
            let input = edited(&editable, edit);
            if let Err(failure) = run(&input) {
                panic!(
                    "{failure} on input {:?}",
                    String::from_utf8_lossy(&input[..input.len().min(600)])
                );
            }
        });
}

macro_rules! fuzz_targets {
    ($($name:ident => $run:expr, $seeds:expr;)*) => {
        /// The targets, one `#[test]` each (`cargo test -p exsync-ews --test fuzz targets::NAME`).
        mod targets {
            use super::*;
            $(
                #[test]
                fn $name() {
                    fuzz($run, $seeds);
                }
            )*
        }
    };
}

// One test per parser, each surviving its seeds and the generated inputs.
fuzz_targets! {
    xml_dom => run_xml_dom, seeds_all_documents();
    soap_envelope => run_soap_envelope, seeds_all_documents();
    http_status => run_http_status, seeds_http_status();
    get_folder_response => run_get_folder, seeds_response("GetFolder");
    sync_folder_hierarchy_response => run_sync_folder_hierarchy, seeds_response("SyncFolderHierarchy");
    sync_folder_items_response => run_sync_folder_items, seeds_response("SyncFolderItems");
    get_item_response => run_get_item, seeds_response("GetItem");
    find_item_response => run_find_item, seeds_response("FindItem");
    create_item_response => run_create_item, seeds_response("CreateItem");
    update_item_response => run_update_item, seeds_response("UpdateItem");
    delete_item_response => run_delete_item, seeds_response("DeleteItem");
    parse_request => run_parse_request, seeds_requests();
}

#[test]
fn an_edit_lands_inside_its_seed() {
    let seeds = vec![b"<a>text</a>".to_vec()];
    assert_eq!(edited(&seeds, &(0, 3, 4, 255, b"X".to_vec())), b"<a>X</a>");
    assert_eq!(edited(&seeds, &(0, 3, 0, 0, Vec::new())), b"<a><text</a>");
    assert_eq!(edited(&seeds, &(1, 0, 0, 0, b"raw".to_vec())), b"raw");
}

//! The fake Exchange behaves like Exchange on the wire (issue 7): version negotiation with
//! `ErrorInvalidServerVersion` and ServerVersionInfo on every answer, response shapes that return
//! exactly what was asked for, dates as Exchange writes them, read-only properties refused,
//! requests checked against the schema's order, elements and enumerations; and exsync stays
//! correct against it. Literal SOAP is posted over real HTTP; answers are read with the codec.

use exsync::ews::ops::GetFolderResponse;
use exsync::ews::soap::{parse_envelope, TYPES_NS};
use exsync::ews::xml::{Element, XmlLimits};
use exsync::ews::EwsError;
use exsync::fake_exchange::{FakeConfig, FakeExchange};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ews_schema::check_soap;

const ANNA: (&str, &str) = ("anna", "anna-wire-secret");

/// A fake with anna@contoso.test (her own login).
struct Wire {
    fake: FakeExchange,
    http: reqwest::Client,
}

impl Wire {
    async fn start() -> Wire {
        let fake = FakeExchange::start(FakeConfig::default())
            .await
            .expect("fake starts");
        let wire = Wire {
            fake,
            http: reqwest::Client::new(),
        };
        wire.api(
            "POST",
            "/_fake/accounts",
            json!({"address": "anna@contoso.test", "username": ANNA.0, "password": ANNA.1}),
        )
        .await;
        wire
    }

    async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method, format!("{}{path}", self.fake.base_url()))
            .json(&body)
            .send()
            .await
            .expect("control API reachable");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Deliver `count` messages to anna's inbox; their ids.
    async fn deliver(&self, body: Value) -> Vec<String> {
        let v = self
            .api("POST", "/_fake/mailboxes/anna@contoso.test/items", body)
            .await;
        v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect()
    }

    /// POST a literal envelope as anna.
    async fn post(&self, xml: &str) -> (StatusCode, String) {
        let response = self
            .http
            .post(self.fake.ews_url())
            .basic_auth(ANNA.0, Some(ANNA.1))
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(xml.to_owned())
            .send()
            .await
            .expect("EWS reachable");
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// POST, expect 200 and a schema-valid answer.
    async fn post_ok(&self, xml: &str) -> String {
        let (status, body) = self.post(xml).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        check_soap(&body);
        body
    }
}

/// A request envelope speaking `version`, with `body` in the SOAP body.
fn envelope(version: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Header><t:RequestServerVersion Version="{version}"/></soap:Header>
  <soap:Body>{body}</soap:Body>
</soap:Envelope>"#
    )
}

/// A schema-valid request envelope (Exchange2013_SP1), checked with check-soap first.
fn request(body: &str) -> String {
    let xml = envelope("Exchange2013_SP1", body);
    check_soap(&xml);
    xml
}

const GET_INBOX: &str = r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>
<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>"#;

/// The `ServerVersionInfo` element of an answer's SOAP header, if there is one.
fn server_version_info(xml: &str) -> Option<Element> {
    let envelope = parse_envelope(xml.as_bytes(), &XmlLimits::default()).ok()?;
    envelope
        .header?
        .children
        .into_iter()
        .find(|c| c.is(TYPES_NS, "ServerVersionInfo"))
}

/// The EWS code of a SOAP fault answer.
fn fault_code(xml: &str) -> Option<String> {
    let envelope = parse_envelope(xml.as_bytes(), &XmlLimits::default()).ok()?;
    envelope
        .fault()
        .and_then(|f| f.response_code)
        .map(|c| c.as_str().to_owned())
}

#[tokio::test]
async fn an_unknown_request_server_version_is_answered_error_invalid_server_version_and_the_client_steps_down(
) {
    let wire = Wire::start().await;
    // A client probing from the newest version it knows down to one the server accepts, the way
    // widely used EWS libraries negotiate.
    let mut answers = Vec::new();
    for version in ["Exchange2019", "Exchange2015_SP1", "Exchange2016"] {
        let (status, body) = wire.post(&envelope(version, GET_INBOX)).await;
        let info = server_version_info(&body)
            .unwrap_or_else(|| panic!("{version}: no ServerVersionInfo in the header: {body}"));
        assert_eq!(info.attr("MajorVersion"), Some("15"), "{body}");
        assert!(info.attr("Version").is_some(), "{body}");
        check_soap(&body);
        answers.push((version, status, fault_code(&body)));
        if status == StatusCode::OK {
            let folder = GetFolderResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
            assert_eq!(
                folder.first().unwrap().display_name.as_deref(),
                Some("Inbox")
            );
            break;
        }
        // As Exchange: a SOAP fault with HTTP 500, read by the codec as a refused request.
        assert!(matches!(
            GetFolderResponse::parse(body.as_bytes(), &XmlLimits::default()),
            Err(EwsError::Request { code, .. }) if code == "ErrorInvalidServerVersion"
        ));
    }
    let invalid = Some("ErrorInvalidServerVersion".to_owned());
    assert_eq!(
        answers,
        vec![
            (
                "Exchange2019",
                StatusCode::INTERNAL_SERVER_ERROR,
                invalid.clone()
            ),
            (
                "Exchange2015_SP1",
                StatusCode::INTERNAL_SERVER_ERROR,
                invalid.clone()
            ),
            ("Exchange2016", StatusCode::OK, None),
        ]
    );

    // Every version Exchange 2016 / 2019 / Online accept is accepted …
    for version in [
        "Exchange2007",
        "Exchange2007_SP1",
        "Exchange2009",
        "Exchange2010",
        "Exchange2010_SP1",
        "Exchange2010_SP2",
        "Exchange2012",
        "Exchange2013",
        "Exchange2013_SP1",
        "Exchange2015",
        "Exchange2016",
        "V2015_10_05",
        "V2016_01_06",
        "V2016_04_13",
        "V2016_07_13",
        "V2016_10_10",
        "V2017_01_07",
        "V2017_04_14",
        "V2017_07_11",
        "V2017_10_09",
        "V2018_01_08",
    ] {
        let (status, body) = wire.post(&envelope(version, GET_INBOX)).await;
        assert_eq!(status, StatusCode::OK, "{version}: {body}");
    }
    // … a RequestServerVersion without Version is not, and no header at all means Exchange2007.
    let no_version = envelope("x", GET_INBOX).replace(r#" Version="x""#, "");
    let (status, body) = wire.post(&no_version).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(fault_code(&body), invalid);
    let no_header = envelope("x", GET_INBOX).replace(
        r#"<soap:Header><t:RequestServerVersion Version="x"/></soap:Header>"#,
        "",
    );
    assert_eq!(wire.post(&no_header).await.0, StatusCode::OK);
    wire.fake.shutdown().await;
}

#[tokio::test]
async fn every_answer_faults_included_carries_server_version_info_in_the_soap_header() {
    let wire = Wire::start().await;
    let mut bodies = Vec::new();
    // A success, a per-item error message, an unreadable request, an unknown operation,
    // impersonation without the right, and throttling in each of its three shapes.
    bodies.push(wire.post_ok(&request(GET_INBOX)).await);
    bodies.push(
        wire.post_ok(&request(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
<m:ItemIds><t:ItemId Id="AAMkbm90LWFuLWlk"/></m:ItemIds></m:GetItem>"#,
        ))
        .await,
    );
    bodies.push(wire.post("<soap:Envelope").await.1);
    bodies.push(
        wire.post(&envelope(
            "Exchange2013_SP1",
            "<m:ResolveNames><m:UnresolvedEntry>a</m:UnresolvedEntry></m:ResolveNames>",
        ))
        .await
        .1,
    );
    let impersonating = request(GET_INBOX).replace(
        "</soap:Header>",
        "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>ben@contoso.test</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></soap:Header>",
    );
    bodies.push(wire.post(&impersonating).await.1);
    for shape in ["fault500", "message200", "http503"] {
        wire.api(
            "PUT",
            "/_fake/faults",
            json!({"busy_shape": shape, "back_off_ms": 1, "fail_next": ["server_busy"]}),
        )
        .await;
        bodies.push(wire.post(&request(GET_INBOX)).await.1);
    }
    for body in &bodies {
        let info = server_version_info(body)
            .unwrap_or_else(|| panic!("no ServerVersionInfo in the SOAP header: {body}"));
        assert_eq!(info.attr("MajorVersion"), Some("15"), "{body}");
        check_soap(body);
    }
    let faults: Vec<_> = bodies.iter().filter_map(|b| fault_code(b)).collect();
    assert_eq!(
        faults,
        [
            "ErrorSchemaValidation",
            "ErrorInvalidRequest",
            "ErrorNonExistentMailbox",
            "ErrorServerBusy",
            "ErrorServerBusy"
        ]
    );
    wire.fake.shutdown().await;
}

/// Every element of `xml` whose text is an `xs:dateTime`: (element name, text).
fn date_times(xml: &str) -> Vec<(String, String)> {
    fn walk(el: &Element, out: &mut Vec<(String, String)>) {
        let text = el.text.trim();
        let looks_like_date = text.len() >= 19
            && text.as_bytes()[4] == b'-'
            && text.as_bytes()[10] == b'T'
            && text[..4].bytes().all(|b| b.is_ascii_digit());
        if el.children.is_empty() && looks_like_date {
            out.push((el.name.clone(), text.to_owned()));
        }
        for c in &el.children {
            walk(c, out);
        }
    }
    let root = exsync::ews::xml::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
    let mut out = Vec::new();
    walk(&root, &mut out);
    out
}

/// `2026-12-06T10:51:52Z`: UTC, whole seconds, as Exchange writes a dateTime.
fn written_as_exchange_writes_it(text: &str) -> bool {
    let b = text.as_bytes();
    text.len() == 20
        && b[19] == b'Z'
        && [4, 7].iter().all(|i| b[*i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|i| b[*i] == b':')
        && b.iter()
            .enumerate()
            .filter(|(i, _)| ![4, 7, 10, 13, 16, 19].contains(i))
            .all(|(_, c)| c.is_ascii_digit())
}

#[tokio::test]
async fn the_fake_writes_every_date_time_in_utc_whole_seconds() {
    let wire = Wire::start().await;
    let ids = wire
        .deliver(json!({"count": 1, "received": "2026-12-06T10:51:52.987654321Z"}))
        .await;
    // An appointment created with fractional seconds and an offset, then a task.
    wire.post_ok(&request(
        r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>
<t:Subject>Review</t:Subject><t:Start>2026-12-07T09:30:00.25+01:00</t:Start>
<t:End>2026-12-07T10:30:00.999-00:00</t:End></t:CalendarItem></m:Items></m:CreateItem>"#,
    ))
    .await;
    let all = |folder: &str| {
        format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>
<m:SyncFolderId><t:DistinguishedFolderId Id="{folder}"/></m:SyncFolderId>
<m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#
        )
    };
    let mut written = Vec::new();
    for body in [
        wire.post_ok(&request(&all("inbox"))).await,
        wire.post_ok(&request(&all("calendar"))).await,
        wire.post_ok(&request(&format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>
<m:ItemIds><t:ItemId Id="{}"/></m:ItemIds></m:GetItem>"#,
            ids[0]
        )))
        .await,
        wire.post_ok(&request(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>
<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#,
        ))
        .await,
    ] {
        written.extend(date_times(&body));
    }
    let names: std::collections::BTreeSet<_> = written.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "DateTimeReceived",
        "DateTimeCreated",
        "LastModifiedTime",
        "Start",
        "End",
    ] {
        assert!(
            names.contains(expected),
            "no {expected} written: {written:?}"
        );
    }
    let wrong: Vec<_> = written
        .iter()
        .filter(|(_, t)| !written_as_exchange_writes_it(t))
        .collect();
    assert!(
        wrong.is_empty(),
        "dateTimes not in UTC whole seconds: {wrong:?}"
    );
    assert!(written.contains(&("DateTimeReceived".into(), "2026-12-06T10:51:52Z".into())));
    assert!(written.contains(&("Start".into(), "2026-12-07T08:30:00Z".into())));
    wire.fake.shutdown().await;
}

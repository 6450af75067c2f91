//! The fake Exchange behaves like Exchange on the wire (issue 7): version negotiation with
//! `ErrorInvalidServerVersion` and ServerVersionInfo on every answer, response shapes that return
//! exactly what was asked for, dates as Exchange writes them, read-only properties refused,
//! requests checked against the schema's order, elements and enumerations; and exsync stays
//! correct against it. Literal SOAP is posted over real HTTP; answers are read with the codec.

use exsync_ews::ops::{GetFolderResponse, GetItemResponse};
use exsync_ews::soap::{parse_envelope, TYPES_NS};
use exsync_ews::types::Item;
use exsync_ews::xml::{Element, XmlLimits};
use exsync_ews::EwsError;
use fake_exchange::FakeExchange;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ews_schema::check_soap;
use crate::support::world::World;
use sqlx::PgPool;

const ANNA: (&str, &str) = ("anna", "anna-wire-secret");

/// A fake with anna@contoso.test (her own login).
struct Wire {
    fake: FakeExchange,
    http: reqwest::Client,
}

impl Wire {
    async fn start() -> Wire {
        let fake = FakeExchange::start(crate::support::world::recording_fake())
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

    async fn api_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.fake.base_url()))
            .send()
            .await
            .expect("control API reachable");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
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

    /// POST, expect 200 (the answer's schema is checked with the suite's recorded traffic).
    async fn post_ok(&self, xml: &str) -> String {
        let (status, body) = self.post(xml).await;
        assert_eq!(status, StatusCode::OK, "{body}");
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
    let root = exsync_ews::xml::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
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

/// The local names of the child elements of the first `name` element (any namespace) in `xml`.
fn children_of(xml: &str, name: &str) -> Vec<String> {
    fn find<'a>(el: &'a Element, name: &str) -> Option<&'a Element> {
        if el.name == name {
            return Some(el);
        }
        el.children.iter().find_map(|c| find(c, name))
    }
    let root = exsync_ews::xml::parse(xml.as_bytes(), &XmlLimits::default()).unwrap();
    find(&root, name)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        .children
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

fn get_folder(shape: &str, additional: &[&str], folder: &str) -> String {
    request(&format!(
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>{shape}</t:BaseShape>{}</m:FolderShape>
<m:FolderIds><t:DistinguishedFolderId Id="{folder}"/></m:FolderIds></m:GetFolder>"#,
        additional_properties(additional)
    ))
}

fn additional_properties(uris: &[&str]) -> String {
    if uris.is_empty() {
        return String::new();
    }
    let fields: String = uris
        .iter()
        .map(|u| format!(r#"<t:FieldURI FieldURI="{u}"/>"#))
        .collect();
    format!("<t:AdditionalProperties>{fields}</t:AdditionalProperties>")
}

fn get_item(shape: &str, additional: &[&str], id: &str) -> String {
    request(&format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>{shape}</t:BaseShape>{}</m:ItemShape>
<m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#,
        additional_properties(additional)
    ))
}

#[tokio::test]
async fn get_folder_returns_exactly_the_shape_asked_for() {
    let wire = Wire::start().await;
    wire.deliver(json!({"count": 2})).await;
    let folder = |xml: String| children_of(&xml, "Folder");
    // IdOnly plus two additional properties: those and the id, nothing else.
    let body = wire
        .post_ok(&get_folder(
            "IdOnly",
            &["folder:DisplayName", "folder:TotalCount"],
            "inbox",
        ))
        .await;
    assert_eq!(
        folder(body.clone()),
        ["FolderId", "DisplayName", "TotalCount"]
    );
    let parsed = GetFolderResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
    let inbox = parsed.first().unwrap();
    assert_eq!(inbox.display_name.as_deref(), Some("Inbox"));
    assert_eq!(inbox.total_count, Some(2));
    // IdOnly alone: the id.
    assert_eq!(
        folder(wire.post_ok(&get_folder("IdOnly", &[], "inbox")).await),
        ["FolderId"]
    );
    // Default: the documented set (no FolderClass, no ParentFolderId; the calendar has no
    // TotalCount or UnreadCount, contacts no UnreadCount).
    assert_eq!(
        folder(wire.post_ok(&get_folder("Default", &[], "inbox")).await),
        [
            "FolderId",
            "DisplayName",
            "TotalCount",
            "ChildFolderCount",
            "UnreadCount"
        ]
    );
    assert_eq!(
        folder(wire.post_ok(&get_folder("Default", &[], "calendar")).await),
        ["FolderId", "DisplayName", "ChildFolderCount"]
    );
    assert_eq!(
        folder(wire.post_ok(&get_folder("Default", &[], "contacts")).await),
        ["FolderId", "DisplayName", "TotalCount", "ChildFolderCount"]
    );
    assert_eq!(
        folder(
            wire.post_ok(&get_folder("AllProperties", &[], "inbox"))
                .await
        ),
        [
            "FolderId",
            "ParentFolderId",
            "FolderClass",
            "DisplayName",
            "TotalCount",
            "ChildFolderCount",
            "UnreadCount"
        ]
    );
    wire.fake.shutdown().await;
}

#[tokio::test]
async fn get_item_and_sync_folder_items_return_exactly_the_shape_asked_for() {
    let wire = Wire::start().await;
    let ids = wire
        .deliver(json!({"count": 1, "subject": "Order 7", "from": "buyer@fabrikam.test"}))
        .await;
    let message = |xml: String| children_of(&xml, "Message");
    let body = wire
        .post_ok(&get_item(
            "IdOnly",
            &["item:Subject", "message:IsRead", "calendar:Start"],
            &ids[0],
        ))
        .await;
    // What was asked for that the item has, and nothing else (a calendar property of a message
    // is simply absent).
    assert_eq!(message(body.clone()), ["ItemId", "Subject", "IsRead"]);
    let parsed = GetItemResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
    let Item::Message(m) = &parsed.first().unwrap()[0] else {
        panic!("not a message")
    };
    assert_eq!(m.base.subject.as_deref(), Some("Order 7"));
    assert_eq!(m.is_read, Some(false));
    assert_eq!(
        message(wire.post_ok(&get_item("IdOnly", &[], &ids[0])).await),
        ["ItemId"]
    );
    // Default: the documented message set, not the whole item.
    assert_eq!(
        message(wire.post_ok(&get_item("Default", &[], &ids[0])).await),
        [
            "ItemId",
            "Subject",
            "Body",
            "Size",
            "DateTimeSent",
            "DateTimeCreated",
            "ToRecipients",
            "From",
            "IsRead"
        ]
    );
    // AllProperties: every property the fake keeps for a message.
    assert_eq!(
        message(wire.post_ok(&get_item("AllProperties", &[], &ids[0])).await),
        [
            "ItemId",
            "ParentFolderId",
            "ItemClass",
            "Subject",
            "Body",
            "DateTimeReceived",
            "Size",
            "DateTimeSent",
            "DateTimeCreated",
            "LastModifiedTime",
            "ConversationId",
            "Sender",
            "ToRecipients",
            "From",
            "InternetMessageId",
            "IsRead"
        ]
    );
    // SyncFolderItems with IdOnly and DateTimeReceived: the id and the date.
    let sync = wire
        .post_ok(&request(&format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>{}</m:ItemShape>
<m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId>
<m:MaxChangesReturned>10</m:MaxChangesReturned></m:SyncFolderItems>"#,
            additional_properties(&["item:DateTimeReceived"])
        )))
        .await;
    assert_eq!(message(sync), ["ItemId", "DateTimeReceived"]);
    // A calendar item's Default set.
    wire.api(
        "POST",
        "/_fake/mailboxes/anna@contoso.test/items",
        json!({"folder": "calendar", "count": 1}),
    )
    .await;
    let calendar = wire
        .post_ok(&request(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>
<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#,
        ))
        .await;
    assert_eq!(
        children_of(&calendar, "CalendarItem"),
        ["ItemId", "Subject", "Start", "End", "Location", "Organizer"]
    );
    wire.fake.shutdown().await;
}

const ORG: &str = r#"
[[profile]]
name = "Contoso"
server_type = "exchange_server"
ews_url = "{ews}"
auth = "profile_credentials"
username = "svc"
password = "Svc-Wire-Passw0rd!"
use_impersonation = true
act_scope = "all"

[[mailbox]]
address = "alice@contoso.test"
profile = "Contoso"
approval = "approved"
act = "server_side_sync"
"#;

/// POST a literal envelope to the world's fake as `login`; expect 200.
async fn post_as(world: &World, login: (&str, &str), xml: &str) -> String {
    let response = reqwest::Client::new()
        .post(world.fake.ews_url())
        .basic_auth(login.0, Some(login.1))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(xml.to_owned())
        .send()
        .await
        .expect("EWS reachable");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(body.contains(r#"ResponseClass="Success""#), "{body}");
    body
}

/// One row of `table` as JSON.
async fn row(world: &World, table: &str, filter: &str) -> Value {
    let text: String = sqlx::query_scalar(&format!(
        "SELECT row_to_json(t)::text FROM {table} t WHERE {filter}"
    ))
    .fetch_one(world.store.pool())
    .await
    .unwrap_or_else(|e| panic!("{table} where {filter}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[sqlx::test]
async fn exsync_asks_for_every_property_it_stores_and_its_sync_still_works(pool: PgPool) {
    let world = World::new(pool).await;
    const ALICE: (&str, &str) = ("alice", "Alice-Wire-Pw1!");
    const BOB: (&str, &str) = ("bob", "Bob-Wire-Pw1!");
    world.mailbox("alice@contoso.test", ALICE.0, ALICE.1).await;
    world.mailbox("bob@contoso.test", BOB.0, BOB.1).await;
    world
        .service_account("svc", "Svc-Wire-Passw0rd!", &["alice@contoso.test"])
        .await;
    world.apply(ORG).await;
    // Bob mails Alice (HTML, Cc, a reply) and invites her to a meeting: the request lands in
    // her inbox and is not email to track.
    post_as(
        &world,
        BOB,
        &request(
            r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:Items><t:Message>
<t:Subject>Quote 42</t:Subject><t:Body BodyType="HTML">&lt;p&gt;Price: 10&lt;/p&gt;</t:Body>
<t:InReplyTo>&lt;q41@fabrikam.test&gt;</t:InReplyTo>
<t:ToRecipients><t:Mailbox><t:EmailAddress>alice@contoso.test</t:EmailAddress></t:Mailbox></t:ToRecipients>
<t:CcRecipients><t:Mailbox><t:EmailAddress>carol@fabrikam.test</t:EmailAddress></t:Mailbox></t:CcRecipients>
<t:From><t:Mailbox><t:Name>Bob Builder</t:Name><t:EmailAddress>bob@contoso.test</t:EmailAddress></t:Mailbox></t:From>
</t:Message></m:Items></m:CreateItem>"#,
        ),
    )
    .await;
    post_as(
        &world,
        BOB,
        &request(
            r#"<m:CreateItem SendMeetingInvitations="SendToAllAndSaveCopy"><m:Items><t:CalendarItem>
<t:Subject>Kickoff</t:Subject><t:Start>2026-12-08T09:00:00Z</t:Start><t:End>2026-12-08T10:00:00Z</t:End>
<t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>alice@contoso.test</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>
</t:CalendarItem></m:Items></m:CreateItem>"#,
        ),
    )
    .await;
    // Alice's own appointment, contact and task, every field exsync keeps set to a value no
    // default would give.
    post_as(
        &world,
        ALICE,
        &request(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items>
<t:CalendarItem><t:Subject>Board</t:Subject><t:Body BodyType="Text">Agenda</t:Body>
<t:Start>2026-12-10T00:00:00Z</t:Start><t:End>2026-12-11T00:00:00Z</t:End>
<t:IsAllDayEvent>true</t:IsAllDayEvent><t:Location>Room 9</t:Location>
<t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>carol@fabrikam.test</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>
</t:CalendarItem>
<t:Contact><t:DisplayName>Dana Doe</t:DisplayName><t:GivenName>Dana</t:GivenName>
<t:CompanyName>Fabrikam</t:CompanyName>
<t:EmailAddresses><t:Entry Key="EmailAddress1">dana@fabrikam.test</t:Entry></t:EmailAddresses>
<t:PhoneNumbers><t:Entry Key="MobilePhone">+1 555 0101</t:Entry></t:PhoneNumbers>
<t:JobTitle>Buyer</t:JobTitle><t:Surname>Doe</t:Surname></t:Contact>
<t:Task><t:Subject>Ship order</t:Subject><t:Body BodyType="Text">Truck at 8</t:Body>
<t:CompleteDate>2026-12-05T12:00:00Z</t:CompleteDate><t:DueDate>2026-12-09T00:00:00Z</t:DueDate>
<t:PercentComplete>100</t:PercentComplete><t:StartDate>2026-12-01T00:00:00Z</t:StartDate>
<t:Status>Completed</t:Status></t:Task>
</m:Items></m:CreateItem>"#,
        ),
    )
    .await;

    let summary = world.pass("alice@contoso.test").await;
    assert!(
        summary
            .reports
            .iter()
            .all(|r| matches!(r.outcome, exsync::sync::pass::Outcome::Success)),
        "{summary:?}"
    );
    // Email: every column filled from the property it comes from.
    let email = row(&world, "emails", "subject = 'Quote 42'").await;
    assert_eq!(email["body"], "<p>Price: 10</p>");
    assert_eq!(email["body_type"], "html");
    assert_eq!(email["sender_address"], "bob@contoso.test");
    assert_eq!(email["sender_name"], "Bob Builder");
    assert_eq!(email["to_recipients"], json!(["alice@contoso.test"]));
    assert_eq!(email["cc_recipients"], json!(["carol@fabrikam.test"]));
    assert_eq!(email["in_reply_to"], "<q41@fabrikam.test>");
    for column in [
        "internet_message_id",
        "conversation_id",
        "received_at",
        "sent_at",
    ] {
        assert!(!email[column].is_null(), "{column} missing: {email}");
    }
    let copy = row(&world, "email_copies", "folder = 'inbox'").await;
    assert_eq!(copy["is_read"], false);
    assert!(!copy["change_key"].is_null());
    // The meeting request is skipped (ItemClass), not imported as email.
    assert_eq!(world.count("SELECT count(*) FROM emails").await, 1);
    assert_eq!(
        world
            .count("SELECT count(*) FROM skipped_items WHERE reason = 'not_an_email'")
            .await,
        1
    );
    let appointment = row(&world, "appointments", "subject = 'Board'").await;
    assert_eq!(appointment["body"], "Agenda");
    assert_eq!(appointment["location"], "Room 9");
    assert_eq!(appointment["is_all_day"], true);
    assert_eq!(appointment["organizer"], "alice@contoso.test");
    assert_eq!(appointment["attendees"], json!(["carol@fabrikam.test"]));
    assert_eq!(appointment["start_at"], "2026-12-10T00:00:00+00:00");
    assert_eq!(appointment["end_at"], "2026-12-11T00:00:00+00:00");
    assert!(!appointment["exchange_modified_at"].is_null());
    let contact = row(&world, "contacts", "surname = 'Doe'").await;
    assert_eq!(contact["display_name"], "Dana Doe");
    assert_eq!(contact["given_name"], "Dana");
    assert_eq!(contact["company_name"], "Fabrikam");
    assert_eq!(contact["job_title"], "Buyer");
    assert_eq!(contact["email_addresses"], json!(["dana@fabrikam.test"]));
    assert_eq!(
        contact["phone_numbers"],
        json!({"MobilePhone": "+1 555 0101"})
    );
    assert!(!contact["exchange_modified_at"].is_null());
    let task = row(&world, "tasks", "subject = 'Ship order'").await;
    assert_eq!(task["body"], "Truck at 8");
    assert_eq!(task["status"], "completed");
    assert_eq!(task["percent_complete"], 100);
    assert_eq!(task["start_at"], "2026-12-01T00:00:00+00:00");
    assert_eq!(task["due_at"], "2026-12-09T00:00:00+00:00");
    assert_eq!(task["completed_at"], "2026-12-05T12:00:00+00:00");
    assert!(!task["exchange_modified_at"].is_null());
}

/// The (class, code) of every response message of an answer.
fn messages(xml: &str) -> Vec<(String, String)> {
    fn walk(el: &Element, out: &mut Vec<(String, String)>) {
        if el.name.ends_with("ResponseMessage") {
            let code = el
                .children
                .iter()
                .find(|c| c.name == "ResponseCode")
                .map(|c| c.text.trim().to_owned())
                .unwrap_or_default();
            out.push((el.attr("ResponseClass").unwrap_or("").to_owned(), code));
        }
        for c in &el.children {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    walk(
        &exsync_ews::xml::parse(xml.as_bytes(), &XmlLimits::default()).unwrap(),
        &mut out,
    );
    out
}

fn error(code: &str) -> (String, String) {
    ("Error".to_owned(), code.to_owned())
}

fn success() -> (String, String) {
    ("Success".to_owned(), "NoError".to_owned())
}

#[tokio::test]
async fn create_item_and_update_item_refuse_read_only_properties_with_error_invalid_property_set() {
    let wire = Wire::start().await;
    let save = |items: &str| {
        request(&format!(
            r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items>{items}</m:Items></m:CreateItem>"#
        ))
    };
    let refused = error("ErrorInvalidPropertySet");
    // Each property the server owns, alone on an otherwise fine draft.
    for owned in [
        r#"<t:ItemId Id="AAMkc2V0LWJ5LWNsaWVudA" ChangeKey="CQAAAA"/><t:Subject>x</t:Subject>"#,
        r#"<t:Subject>x</t:Subject><t:DateTimeReceived>2026-12-06T10:51:52Z</t:DateTimeReceived>"#,
        r#"<t:Subject>x</t:Subject><t:Size>10</t:Size>"#,
        r#"<t:Subject>x</t:Subject><t:DateTimeSent>2026-12-06T10:51:52Z</t:DateTimeSent>"#,
        r#"<t:Subject>x</t:Subject><t:DateTimeCreated>2026-12-06T10:51:52Z</t:DateTimeCreated>"#,
        r#"<t:Subject>x</t:Subject><t:DisplayTo>Bob</t:DisplayTo>"#,
        r#"<t:Subject>x</t:Subject><t:LastModifiedTime>2026-12-06T10:51:52Z</t:LastModifiedTime>"#,
        r#"<t:Subject>x</t:Subject><t:ConversationId Id="AAQkY29udg"/>"#,
    ] {
        let body = wire
            .post_ok(&save(&format!("<t:Message>{owned}</t:Message>")))
            .await;
        assert_eq!(messages(&body), std::slice::from_ref(&refused), "{owned}");
    }
    let organizer = wire
        .post_ok(&request(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>
<t:Subject>x</t:Subject><t:Start>2026-12-08T09:00:00Z</t:Start><t:End>2026-12-08T10:00:00Z</t:End>
<t:Organizer><t:Mailbox><t:EmailAddress>boss@contoso.test</t:EmailAddress></t:Mailbox></t:Organizer>
</t:CalendarItem></m:Items></m:CreateItem>"#,
        ))
        .await;
    assert_eq!(messages(&organizer), std::slice::from_ref(&refused));
    // One refused item does not stop the others; nothing refused was created.
    let mixed = wire
        .post_ok(&save(
            r#"<t:Message><t:Subject>fine</t:Subject></t:Message>
<t:Message><t:Subject>not</t:Subject><t:DateTimeSent>2026-12-06T10:51:52Z</t:DateTimeSent></t:Message>"#,
        ))
        .await;
    assert_eq!(messages(&mixed), [success(), refused.clone()]);
    let drafts = wire
        .api_get("/_fake/mailboxes/anna@contoso.test/items?folder=drafts")
        .await;
    let subjects: Vec<_> = drafts
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(subjects, ["fine"]);
    assert_eq!(
        wire.api_get("/_fake/mailboxes/anna@contoso.test/items?folder=calendar")
            .await,
        json!([])
    );

    // UpdateItem: setting or deleting a read-only property is refused and changes nothing.
    let id = drafts[0]["id"].as_str().unwrap().to_owned();
    let key = drafts[0]["change_key"].as_str().unwrap().to_owned();
    let update = |change: &str| {
        request(&format!(
            r#"<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AlwaysOverwrite"><m:ItemChanges>
<t:ItemChange><t:ItemId Id="{id}" ChangeKey="{key}"/><t:Updates>{change}</t:Updates></t:ItemChange>
</m:ItemChanges></m:UpdateItem>"#
        ))
    };
    let set = wire
        .post_ok(&update(
            r#"<t:SetItemField><t:FieldURI FieldURI="item:DateTimeReceived"/>
<t:Message><t:DateTimeReceived>2020-01-01T00:00:00Z</t:DateTimeReceived></t:Message></t:SetItemField>"#,
        ))
        .await;
    assert_eq!(messages(&set), [refused]);
    let delete = wire
        .post_ok(&update(
            r#"<t:DeleteItemField><t:FieldURI FieldURI="item:LastModifiedTime"/></t:DeleteItemField>"#,
        ))
        .await;
    assert_eq!(messages(&delete), [error("ErrorInvalidPropertyDelete")]);
    let after = wire
        .api_get("/_fake/mailboxes/anna@contoso.test/items?folder=drafts")
        .await;
    assert_eq!(after[0]["change_key"], key.as_str());
    assert!(after[0]["received"].is_null());
    wire.fake.shutdown().await;
}

#[tokio::test]
async fn requests_out_of_schema_order_with_unknown_elements_or_bad_enumerations_get_error_schema_validation(
) {
    let wire = Wire::start().await;
    let ids = wire.deliver(json!({"count": 1})).await;
    let id = &ids[0];
    let shape = "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>";
    let item_ids = format!(r#"<m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds>"#);
    // In schema order the request is answered …
    let in_order = format!("<m:GetItem>{shape}{item_ids}</m:GetItem>");
    wire.post_ok(&request(&in_order)).await;
    // … and each of these breaks the schema the way clients do.
    let broken = [
        // ItemIds before ItemShape.
        format!("<m:GetItem>{item_ids}{shape}</m:GetItem>"),
        // An element the schema does not have.
        format!("<m:GetItem>{shape}<m:Hints>fast</m:Hints>{item_ids}</m:GetItem>"),
        // A FieldURI outside UnindexedFieldURIType.
        format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>
<t:FieldURI FieldURI="item:Colour"/></t:AdditionalProperties></m:ItemShape>{item_ids}</m:GetItem>"#
        ),
        // Item properties out of order: Body before Subject.
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message>
<t:Body BodyType="Text">b</t:Body><t:Subject>s</t:Subject></t:Message></m:Items></m:CreateItem>"#
            .to_owned(),
        // A phone number key outside PhoneNumberKeyType.
        r#"<m:CreateItem><m:Items><t:Contact><t:PhoneNumbers><t:Entry Key="Satellite">1</t:Entry>
</t:PhoneNumbers></t:Contact></m:Items></m:CreateItem>"#
            .to_owned(),
        // SyncFolderItems without the required MaxChangesReturned.
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
<m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId></m:SyncFolderItems>"#
            .to_owned(),
        // A BodyType the Body element does not have.
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:Subject>s</t:Subject>
<t:Body BodyType="Markdown">b</t:Body></t:Message></m:Items></m:CreateItem>"#
            .to_owned(),
    ];
    for body in &broken {
        let (status, answer) = wire.post(&envelope("Exchange2013_SP1", body)).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{body}\n{answer}"
        );
        assert_eq!(
            fault_code(&answer).as_deref(),
            Some("ErrorSchemaValidation"),
            "{body}\n{answer}"
        );
        assert!(server_version_info(&answer).is_some(), "{answer}");
    }
    // Nothing of the refused creates was stored.
    assert_eq!(
        wire.api_get("/_fake/mailboxes/anna@contoso.test/items?folder=drafts")
            .await,
        json!([])
    );
    // Not stricter than Exchange: valid properties the fake does not model are accepted.
    let unmodelled = wire
        .post_ok(&request(
            r#"<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message>
<t:Subject>s</t:Subject><t:Sensitivity>Private</t:Sensitivity><t:Body BodyType="Text">b</t:Body>
<t:Importance>High</t:Importance><t:IsReadReceiptRequested>true</t:IsReadReceiptRequested>
</t:Message></m:Items></m:CreateItem>"#,
        ))
        .await;
    assert_eq!(messages(&unmodelled), [success()]);
    wire.fake.shutdown().await;
}

#[tokio::test]
async fn the_fake_records_every_request_exsync_sends_and_every_answer_for_the_schema_check() {
    use exsync_ews::ops::GetFolderRequest;
    use exsync_ews::soap::{ExchangeVersion, RequestHeader};
    use exsync_ews::transport::{SoapPost, Transport, TransportSettings};
    use exsync_ews::types::{BaseFolderId, BaseShape, DistinguishedFolderName, FieldUri};

    let dir = tempfile::tempdir().unwrap();
    let fake = FakeExchange::start(fake_exchange::FakeConfig {
        traffic_dir: Some(dir.path().to_owned()),
        ..fake_exchange::FakeConfig::default()
    })
    .await
    .unwrap();
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
    // exsync's own transport (its User-Agent marks the requests to record) …
    let transport = Transport::new(TransportSettings::default()).unwrap();
    let url = url::Url::parse(&wire.fake.ews_url()).unwrap();
    let basic = http::HeaderValue::from_str(&format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", ANNA.0, ANNA.1)
        )
    ))
    .unwrap();
    for folder in [
        DistinguishedFolderName::Inbox,
        DistinguishedFolderName::Inbox,
        DistinguishedFolderName::Drafts,
    ] {
        let body = GetFolderRequest {
            folder_shape: BaseShape::IdOnly,
            additional_properties: vec![FieldUri::FOLDER_DISPLAY_NAME],
            folder_ids: vec![BaseFolderId::distinguished(folder)],
        }
        .to_xml(&RequestHeader::new(ExchangeVersion::Exchange2013Sp1));
        let answer = transport
            .post(SoapPost {
                url: &url,
                body: body.into_bytes(),
                operation: "GetFolder",
                anchor_mailbox: None,
                authorization: Some(basic.clone()),
                client_request_id: None,
            })
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 200);
    }
    // … and a fault answering another client, whose own request is not exsync's to check.
    wire.post("<soap:Envelope").await;
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let kinds: Vec<&str> = files
        .iter()
        .map(|f| f.rsplit_once('-').unwrap().0)
        .collect();
    // The two requests for the inbox have one shape, one file; the drafts request another.
    assert_eq!(
        kinds,
        [
            "request-GetFolder",
            "request-GetFolder",
            "response-Fault",
            "response-GetFolderResponse",
            "response-GetFolderResponse"
        ],
        "{files:?}"
    );
    for file in &files {
        check_soap(&std::fs::read_to_string(dir.path().join(file)).unwrap());
    }
    wire.fake.shutdown().await;
}

//! The fake Exchange behaves like Exchange: literal EWS requests written from Microsoft's
//! reference pages (GetFolder, SyncFolderHierarchy, SyncFolderItems, GetItem, FindItem,
//! CreateItem, UpdateItem, DeleteItem operation pages) posted over real HTTP; answers read with
//! the codec and checked against the EWS schema; the `/_fake/` control API as documented.

use std::time::Duration;

use exsync_ews::ops::{
    CreateItemResponse, DeleteItemResponse, FindItemResponse, GetFolderResponse, GetItemResponse,
    SyncFolderHierarchyResponse, SyncFolderItemsResponse, SyncItemChange, UpdateItemResponse,
};
use exsync_ews::types::Item;
use exsync_ews::xml::XmlLimits;
use exsync_ews::EwsError;
use fake_exchange::{FakeConfig, FakeExchange};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ews_schema::check_soap;

const ANNA: (&str, &str) = ("anna", "anna-secret");
const BEN: (&str, &str) = ("ben", "ben-secret");
const SVC: (&str, &str) = ("svc", "svc-secret");

/// A running fake with anna@ and ben@ (own logins) and svc (a service account, no mailbox).
struct Fx {
    fake: FakeExchange,
    http: reqwest::Client,
}

impl Fx {
    async fn start() -> Fx {
        Fx::start_with(FakeConfig::default()).await
    }

    async fn start_with(config: FakeConfig) -> Fx {
        let fake = FakeExchange::start(config).await.expect("fake starts");
        let mut http = reqwest::Client::builder();
        if let Some(pem) = fake.certificate_pem() {
            http =
                http.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        }
        let fx = Fx {
            fake,
            http: http.build().unwrap(),
        };
        for body in [
            json!({"address": "anna@contoso.test", "username": "anna", "password": ANNA.1}),
            json!({"address": "ben@contoso.test", "username": "ben", "password": BEN.1}),
            json!({"username": "svc", "password": SVC.1}),
        ] {
            let (status, _) = fx.api("POST", "/_fake/accounts", Some(body)).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        fx
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.fake.base_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("control API reachable");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn deliver(&self, address: &str, body: Value) -> Vec<String> {
        let (status, v) = self
            .api(
                "POST",
                &format!("/_fake/mailboxes/{address}/items"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect()
    }

    async fn items(&self, address: &str, folder: &str) -> Vec<Value> {
        let (status, v) = self
            .api(
                "GET",
                &format!("/_fake/mailboxes/{address}/items?folder={folder}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        v.as_array().unwrap().clone()
    }

    async fn stats(&self) -> Value {
        self.api("GET", "/_fake/stats", None).await.1
    }

    async fn faults(&self, patch: Value) {
        let (status, v) = self.api("PUT", "/_fake/faults", Some(patch)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    /// POST a literal envelope as `login`; returns status and body.
    async fn ews(&self, login: (&str, &str), xml: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .post(self.fake.ews_url())
            .basic_auth(login.0, Some(login.1))
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(xml.to_owned())
            .send()
            .await
            .expect("EWS reachable");
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }

    /// POST, expect 200 and a schema-valid answer.
    async fn ews_ok(&self, login: (&str, &str), xml: &str) -> String {
        let (status, body) = self.ews(login, xml).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        check_soap(&body);
        body
    }
}

/// A request envelope as the reference pages write them (messages namespace as default in
/// the body), with RequestServerVersion and optional extra header elements.
fn soap(header: &str, body: &str) -> String {
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
               xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
               xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Header>
    <t:RequestServerVersion Version="Exchange2013_SP1" />{header}
  </soap:Header>
  <soap:Body>
{body}
  </soap:Body>
</soap:Envelope>"#
    );
    check_soap(&xml);
    xml
}

fn impersonating(address: &str) -> String {
    format!(
        r#"
    <t:ExchangeImpersonation>
      <t:ConnectingSID>
        <t:PrimarySmtpAddress>{address}</t:PrimarySmtpAddress>
      </t:ConnectingSID>
    </t:ExchangeImpersonation>"#
    )
}

fn get_folder(folder: &str) -> String {
    soap(
        "",
        &format!(
            r#"    <GetFolder xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <FolderShape>
        <t:BaseShape>Default</t:BaseShape>
      </FolderShape>
      <FolderIds>
        {folder}
      </FolderIds>
    </GetFolder>"#
        ),
    )
}

fn sync_folder_items(folder: &str, state: Option<&str>, max: u32) -> String {
    let state = state
        .map(|s| format!("<SyncState>{s}</SyncState>"))
        .unwrap_or_default();
    format!(
        r#"    <SyncFolderItems xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemShape>
        <t:BaseShape>AllProperties</t:BaseShape>
      </ItemShape>
      <SyncFolderId>
        {folder}
      </SyncFolderId>
      {state}
      <MaxChangesReturned>{max}</MaxChangesReturned>
    </SyncFolderItems>"#
    )
}

fn limits() -> XmlLimits {
    XmlLimits::default()
}

#[tokio::test]
async fn fake_exchange_get_folder_returns_distinguished_folders_with_counts() {
    let fx = Fx::start().await;
    fx.deliver("anna@contoso.test", json!({"count": 3})).await;
    let body = fx
        .ews_ok(
            ANNA,
            &get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#),
        )
        .await;
    let resp = GetFolderResponse::parse(body.as_bytes(), &limits()).unwrap();
    let folder = resp.first().unwrap();
    assert_eq!(folder.display_name.as_deref(), Some("Inbox"));
    assert_eq!(folder.total_count, Some(3));
    assert_eq!(folder.unread_count, Some(3));
    // The folder id it hands out reads back the same folder.
    let id = folder.folder_id.clone().unwrap().id;
    let body = fx
        .ews_ok(ANNA, &get_folder(&format!(r#"<t:FolderId Id="{id}"/>"#)))
        .await;
    let again = GetFolderResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(again.first().unwrap().total_count, Some(3));
}

#[tokio::test]
async fn fake_exchange_sync_folder_hierarchy_lists_the_distinguished_folders() {
    let fx = Fx::start().await;
    let request = soap(
        "",
        r#"    <SyncFolderHierarchy xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <FolderShape>
        <t:BaseShape>AllProperties</t:BaseShape>
      </FolderShape>
    </SyncFolderHierarchy>"#,
    );
    let body = fx.ews_ok(ANNA, &request).await;
    let resp = SyncFolderHierarchyResponse::parse(body.as_bytes(), &limits()).unwrap();
    let result = resp.first().unwrap();
    assert!(result.includes_last_folder_in_range);
    let names: Vec<String> = result
        .changes
        .iter()
        .filter_map(|c| match c {
            exsync_ews::ops::FolderChange::Create(f) => f.display_name.clone(),
            _ => None,
        })
        .collect();
    for wanted in [
        "Inbox",
        "Sent Items",
        "Calendar",
        "Contacts",
        "Tasks",
        "Drafts",
        "Deleted Items",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing: {names:?}"
        );
    }
}

#[tokio::test]
async fn fake_exchange_sync_folder_items_pages_across_calls_then_reports_only_new_changes() {
    let fx = Fx::start().await;
    let first_ids = fx.deliver("anna@contoso.test", json!({"count": 7})).await;
    let inbox = r#"<t:DistinguishedFolderId Id="inbox"/>"#;
    let mut state: Option<String> = None;
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    loop {
        let body = fx
            .ews_ok(
                ANNA,
                &soap("", &sync_folder_items(inbox, state.as_deref(), 3)),
            )
            .await;
        let resp = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
        let result = resp.first().unwrap().clone();
        pages.push(result.changes.len());
        for c in &result.changes {
            let SyncItemChange::Create(item) = c else {
                panic!("initial sync reports creates only: {c:?}")
            };
            assert!(item.base().subject.is_some());
            assert!(
                item.base().body.is_none(),
                "SyncFolderItems returns no Body"
            );
            seen.push(item.item_id().unwrap().id.clone());
        }
        state = Some(result.sync_state.clone());
        if result.includes_last_item_in_range {
            break;
        }
    }
    assert_eq!(pages, vec![3, 3, 1]);
    assert_eq!(seen, first_ids);

    // Nothing new: an empty, final page.
    let body = fx
        .ews_ok(
            ANNA,
            &soap("", &sync_folder_items(inbox, state.as_deref(), 3)),
        )
        .await;
    let resp = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(resp.first().unwrap().changes.is_empty());

    // A new delivery, a read-flag change and a deletion on the Exchange side.
    let new_ids = fx
        .deliver("anna@contoso.test", json!({"count": 1, "subject": "late"}))
        .await;
    let (status, _) = fx
        .api(
            "PATCH",
            &format!("/_fake/mailboxes/anna@contoso.test/items/{}", first_ids[0]),
            Some(json!({"is_read": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = fx
        .api(
            "DELETE",
            &format!("/_fake/mailboxes/anna@contoso.test/items/{}", first_ids[1]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = fx
        .ews_ok(
            ANNA,
            &soap("", &sync_folder_items(inbox, state.as_deref(), 512)),
        )
        .await;
    let resp = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    let changes = &resp.first().unwrap().changes;
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(
        matches!(&changes[0], SyncItemChange::Create(i) if i.item_id().unwrap().id == new_ids[0])
    );
    assert!(matches!(&changes[1],
        SyncItemChange::ReadFlagChange { item_id, is_read: true } if item_id.id == first_ids[0]));
    assert!(matches!(&changes[2], SyncItemChange::Delete(id) if id.id == first_ids[1]));
}

#[tokio::test]
async fn fake_exchange_garbage_foreign_or_reset_sync_states_are_error_invalid_sync_state_data() {
    let fx = Fx::start().await;
    fx.deliver("anna@contoso.test", json!({"count": 2})).await;
    // The reference page's own sample state is garbage to this server.
    let body = fx
        .ews_ok(
            ANNA,
            &soap(
                "",
                &sync_folder_items(
                    r#"<t:DistinguishedFolderId Id="sentitems"/>"#,
                    Some("H4sIAA=="),
                    100,
                ),
            ),
        )
        .await;
    let resp = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(matches!(resp.first(), Err(EwsError::InvalidSyncState)));

    // A valid inbox state is foreign to the calendar folder.
    let body = fx
        .ews_ok(
            ANNA,
            &soap(
                "",
                &sync_folder_items(r#"<t:DistinguishedFolderId Id="inbox"/>"#, None, 10),
            ),
        )
        .await;
    let inbox_state = SyncFolderItemsResponse::parse(body.as_bytes(), &limits())
        .unwrap()
        .first()
        .unwrap()
        .sync_state
        .clone();
    let body = fx
        .ews_ok(
            ANNA,
            &soap(
                "",
                &sync_folder_items(
                    r#"<t:DistinguishedFolderId Id="calendar"/>"#,
                    Some(&inbox_state),
                    10,
                ),
            ),
        )
        .await;
    let resp = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(matches!(resp.first(), Err(EwsError::InvalidSyncState)));

    // After reset-sync-states the once-valid state is refused too.
    let (status, _) = fx
        .api(
            "POST",
            "/_fake/mailboxes/anna@contoso.test/reset-sync-states",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = fx
        .ews_ok(
            ANNA,
            &soap(
                "",
                &sync_folder_items(
                    r#"<t:DistinguishedFolderId Id="inbox"/>"#,
                    Some(&inbox_state),
                    10,
                ),
            ),
        )
        .await;
    let resp = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(matches!(resp.first(), Err(EwsError::InvalidSyncState)));
}

fn get_item(ids: &[String]) -> String {
    let ids: String = ids
        .iter()
        .map(|id| format!(r#"<t:ItemId Id="{id}"/>"#))
        .collect();
    soap(
        "",
        &format!(
            r#"    <GetItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
             xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <ItemShape>
        <t:BaseShape>Default</t:BaseShape>
        <t:IncludeMimeContent>false</t:IncludeMimeContent>
      </ItemShape>
      <ItemIds>
        {ids}
      </ItemIds>
    </GetItem>"#
        ),
    )
}

#[tokio::test]
async fn fake_exchange_get_item_answers_per_item_with_item_not_found_for_unknown_ids() {
    let fx = Fx::start().await;
    let ids = fx
        .deliver(
            "anna@contoso.test",
            json!({"subject": "Quarterly report", "from": "carol@fabrikam.test", "body": "Numbers attached."}),
        )
        .await;
    let deleted = fx.deliver("anna@contoso.test", json!({})).await;
    fx.api(
        "DELETE",
        &format!("/_fake/mailboxes/anna@contoso.test/items/{}", deleted[0]),
        None,
    )
    .await;
    let body = fx
        .ews_ok(ANNA, &get_item(&[ids[0].clone(), deleted[0].clone()]))
        .await;
    let resp = GetItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.messages.len(), 2);
    let Item::Message(m) = &resp.messages[0].result().unwrap()[0] else {
        panic!("not a message")
    };
    assert_eq!(m.base.subject.as_deref(), Some("Quarterly report"));
    assert_eq!(m.from.as_ref().unwrap().address, "carol@fabrikam.test");
    assert_eq!(m.base.body.as_ref().unwrap().content, "Numbers attached.");
    // The Default shape is the documented set: no InternetMessageId, no DateTimeReceived.
    assert_eq!(m.internet_message_id, None);
    assert_eq!(m.base.date_time_received, None);
    assert_eq!(resp.messages[1].code.as_str(), "ErrorItemNotFound");
}

#[tokio::test]
async fn fake_exchange_find_item_pages_and_filters_on_internet_message_id() {
    let fx = Fx::start().await;
    fx.deliver("anna@contoso.test", json!({"count": 5})).await;
    fx.deliver(
        "anna@contoso.test",
        json!({"internet_message_id": "<wanted@contoso.test>", "subject": "the one"}),
    )
    .await;
    let find = |restriction: &str, offset: u32| {
        soap(
            "",
            &format!(
                r#"    <FindItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
              xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
              Traversal="Shallow">
      <ItemShape>
        <t:BaseShape>IdOnly</t:BaseShape>
      </ItemShape>
      <IndexedPageItemView MaxEntriesReturned="4" Offset="{offset}" BasePoint="Beginning"/>
      {restriction}
      <ParentFolderIds>
        <t:DistinguishedFolderId Id="inbox"/>
      </ParentFolderIds>
    </FindItem>"#
            ),
        )
    };
    let body = fx.ews_ok(ANNA, &find("", 0)).await;
    let page1 = FindItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    let r1 = page1.first().unwrap();
    assert_eq!((r1.items.len(), r1.total_items_in_view), (4, 6));
    assert!(!r1.includes_last_item_in_range);
    assert_eq!(r1.indexed_paging_offset, Some(4));
    let body = fx.ews_ok(ANNA, &find("", 4)).await;
    let page2 = FindItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    let r2 = page2.first().unwrap();
    assert_eq!(r2.items.len(), 2);
    assert!(r2.includes_last_item_in_range);

    let restriction = r#"<Restriction>
        <t:IsEqualTo>
          <t:FieldURI FieldURI="message:InternetMessageId"/>
          <t:FieldURIOrConstant>
            <t:Constant Value="&lt;wanted@contoso.test&gt;"/>
          </t:FieldURIOrConstant>
        </t:IsEqualTo>
      </Restriction>"#;
    let body = fx.ews_ok(ANNA, &find(restriction, 0)).await;
    let found = FindItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(found.first().unwrap().items.len(), 1);
}

fn create_message(disposition: &str, to: &str, extra: &str) -> String {
    soap(
        "",
        &format!(
            r#"    <CreateItem MessageDisposition="{disposition}" xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <SavedItemFolderId>
        <t:DistinguishedFolderId Id="sentitems" />
      </SavedItemFolderId>
      <Items>
        <t:Message>
          <t:ItemClass>IPM.Note</t:ItemClass>
          <t:Subject>Project Action</t:Subject>
          <t:Body BodyType="Text">Priority - Update specification</t:Body>
          <t:ToRecipients>
            <t:Mailbox>
              <t:EmailAddress>{to}</t:EmailAddress>
            </t:Mailbox>
          </t:ToRecipients>{extra}
          <t:IsRead>false</t:IsRead>
        </t:Message>
      </Items>
    </CreateItem>"#
        ),
    )
}

#[tokio::test]
async fn fake_exchange_send_and_save_copy_delivers_to_the_recipient_and_keeps_a_sent_items_copy() {
    let fx = Fx::start().await;
    let body = fx
        .ews_ok(
            ANNA,
            &create_message(
                "SendAndSaveCopy",
                "ben@contoso.test",
                "\n          <t:InternetMessageId>&lt;order-42@contoso.test&gt;</t:InternetMessageId>",
            ),
        )
        .await;
    let resp = CreateItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(
        resp.first().unwrap().is_empty(),
        "a send returns no item ids"
    );
    let delivered = fx.items("ben@contoso.test", "inbox").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["subject"], "Project Action");
    assert_eq!(delivered[0]["from"], "anna@contoso.test");
    assert_eq!(delivered[0]["is_read"], false);
    // Exchange assigns the Message-ID of what it sends: the client's value is not kept, and
    // the recipient's copy and the sender's Sent Items copy carry the same assigned one.
    let assigned = delivered[0]["internet_message_id"].as_str().unwrap();
    assert_ne!(assigned, "<order-42@contoso.test>");
    assert!(
        assigned.starts_with('<') && assigned.ends_with('>'),
        "{assigned}"
    );
    let sent = fx.items("anna@contoso.test", "sentitems").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["internet_message_id"], assigned);

    // SendOnly keeps no copy; recipients outside the fake are simply not delivered here.
    fx.ews_ok(
        ANNA,
        &create_message("SendOnly", "someone@elsewhere.test", ""),
    )
    .await;
    assert_eq!(fx.items("anna@contoso.test", "sentitems").await.len(), 1);
    // SaveOnly returns an id and stores the message where SavedItemFolderId says.
    let body = fx
        .ews_ok(ANNA, &create_message("SaveOnly", "ben@contoso.test", ""))
        .await;
    let resp = CreateItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.first().unwrap().len(), 1);
    assert_eq!(fx.items("anna@contoso.test", "sentitems").await.len(), 2);
    assert_eq!(fx.items("ben@contoso.test", "inbox").await.len(), 1);
    // Without MessageDisposition Exchange refuses the message.
    let body = fx
        .ews_ok(
            ANNA,
            &create_message("SaveOnly", "ben@contoso.test", "")
                .replace(r#"MessageDisposition="SaveOnly" "#, ""),
        )
        .await;
    let resp = CreateItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(
        resp.messages[0].code.as_str(),
        "ErrorMessageDispositionRequired"
    );
}

#[tokio::test]
async fn fake_exchange_create_item_puts_calendar_items_contacts_and_tasks_in_their_folders() {
    let fx = Fx::start().await;
    let request = soap(
        "",
        r#"    <CreateItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
                SendMeetingInvitations="SendToAllAndSaveCopy">
      <Items>
        <t:CalendarItem>
          <t:Subject>Planning Meeting</t:Subject>
          <t:Body BodyType="Text">Plan the agenda for next week's meeting.</t:Body>
          <t:Start>2026-12-01T14:00:00Z</t:Start>
          <t:End>2026-12-01T15:00:00Z</t:End>
          <t:Location>Conference Room 721</t:Location>
          <t:RequiredAttendees>
            <t:Attendee>
              <t:Mailbox>
                <t:EmailAddress>ben@contoso.test</t:EmailAddress>
              </t:Mailbox>
            </t:Attendee>
          </t:RequiredAttendees>
        </t:CalendarItem>
        <t:Contact>
          <t:GivenName>Jane</t:GivenName>
          <t:EmailAddresses>
            <t:Entry Key="EmailAddress1">jane@fabrikam.test</t:Entry>
          </t:EmailAddresses>
          <t:Surname>Dow</t:Surname>
        </t:Contact>
        <t:Task>
          <t:Subject>Call the supplier</t:Subject>
          <t:DueDate>2026-12-05T00:00:00Z</t:DueDate>
          <t:Status>NotStarted</t:Status>
        </t:Task>
      </Items>
    </CreateItem>"#,
    );
    let body = fx.ews_ok(ANNA, &request).await;
    let resp = CreateItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.messages.len(), 3);
    assert!(matches!(
        resp.messages[0].result().unwrap()[0],
        Item::CalendarItem(_)
    ));
    assert!(matches!(
        resp.messages[1].result().unwrap()[0],
        Item::Contact(_)
    ));
    assert!(matches!(
        resp.messages[2].result().unwrap()[0],
        Item::Task(_)
    ));
    assert_eq!(fx.items("anna@contoso.test", "calendar").await.len(), 1);
    assert_eq!(fx.items("anna@contoso.test", "contacts").await.len(), 1);
    assert_eq!(fx.items("anna@contoso.test", "tasks").await.len(), 1);
    // The invitation reached the attendee.
    let invites = fx.items("ben@contoso.test", "inbox").await;
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0]["subject"], "Planning Meeting");
    assert_eq!(fx.items("ben@contoso.test", "calendar").await.len(), 1);
}

fn update_subject(id: &str, change_key: &str, resolution: &str, subject: &str) -> String {
    soap(
        "",
        &format!(
            r#"    <UpdateItem MessageDisposition="SaveOnly" ConflictResolution="{resolution}"
                xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemChanges>
        <t:ItemChange>
          <t:ItemId Id="{id}" ChangeKey="{change_key}"/>
          <t:Updates>
            <t:SetItemField>
              <t:FieldURI FieldURI="item:Subject"/>
              <t:Message>
                <t:Subject>{subject}</t:Subject>
              </t:Message>
            </t:SetItemField>
          </t:Updates>
        </t:ItemChange>
      </ItemChanges>
    </UpdateItem>"#
        ),
    )
}

#[tokio::test]
async fn fake_exchange_update_item_with_a_stale_change_key_and_never_overwrite_is_an_irresolvable_conflict(
) {
    let fx = Fx::start().await;
    let ids = fx.deliver("anna@contoso.test", json!({})).await;
    let listed = fx.items("anna@contoso.test", "inbox").await;
    let key1 = listed[0]["change_key"].as_str().unwrap().to_owned();

    let body = fx
        .ews_ok(
            ANNA,
            &update_subject(&ids[0], &key1, "NeverOverwrite", "Weekly Update"),
        )
        .await;
    let resp = UpdateItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    let updated = resp.first().unwrap();
    let key2 = updated.items[0]
        .item_id()
        .unwrap()
        .change_key
        .clone()
        .unwrap();
    assert_ne!(key1, key2, "every update changes the change key");
    assert_eq!(updated.conflict_results, 0);

    // key1 is stale now.
    let body = fx
        .ews_ok(
            ANNA,
            &update_subject(&ids[0], &key1, "NeverOverwrite", "Lost"),
        )
        .await;
    let resp = UpdateItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.messages[0].code.as_str(), "ErrorIrresolvableConflict");
    assert_eq!(
        fx.items("anna@contoso.test", "inbox").await[0]["subject"],
        "Weekly Update"
    );

    // AlwaysOverwrite applies despite the stale key.
    let body = fx
        .ews_ok(
            ANNA,
            &update_subject(&ids[0], &key1, "AlwaysOverwrite", "Forced"),
        )
        .await;
    let resp = UpdateItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(resp.first().is_ok());
    assert_eq!(
        fx.items("anna@contoso.test", "inbox").await[0]["subject"],
        "Forced"
    );
}

#[tokio::test]
async fn fake_exchange_delete_item_moves_to_deleted_items_or_removes_for_good() {
    let fx = Fx::start().await;
    let ids = fx.deliver("anna@contoso.test", json!({"count": 2})).await;
    let delete = |id: &str, kind: &str| {
        soap(
            "",
            &format!(
                r#"    <DeleteItem DeleteType="{kind}" xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemIds>
        <t:ItemId Id="{id}"/>
      </ItemIds>
    </DeleteItem>"#
            ),
        )
    };
    let body = fx
        .ews_ok(ANNA, &delete(&ids[0], "MoveToDeletedItems"))
        .await;
    assert!(DeleteItemResponse::parse(body.as_bytes(), &limits())
        .unwrap()
        .first()
        .is_ok());
    assert_eq!(fx.items("anna@contoso.test", "deleteditems").await.len(), 1);
    let body = fx.ews_ok(ANNA, &delete(&ids[1], "HardDelete")).await;
    assert!(DeleteItemResponse::parse(body.as_bytes(), &limits())
        .unwrap()
        .first()
        .is_ok());
    assert!(fx.items("anna@contoso.test", "inbox").await.is_empty());
    assert_eq!(fx.items("anna@contoso.test", "deleteditems").await.len(), 1);
    // Deleting again: the item is gone.
    let body = fx.ews_ok(ANNA, &delete(&ids[1], "HardDelete")).await;
    let resp = DeleteItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.messages[0].code.as_str(), "ErrorItemNotFound");
}

#[tokio::test]
async fn fake_exchange_impersonation_is_allowed_only_with_rights() {
    let fx = Fx::start().await;
    fx.deliver("anna@contoso.test", json!({"count": 2})).await;
    let body = sync_folder_items(r#"<t:DistinguishedFolderId Id="inbox"/>"#, None, 10);
    let request = soap(&impersonating("anna@contoso.test"), &body);

    let (status, denied) = fx.ews(SVC, &request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(
        SyncFolderItemsResponse::parse(denied.as_bytes(), &limits()),
        Err(EwsError::ImpersonationDenied { .. })
    ));

    let (status, _) = fx
        .api(
            "PUT",
            "/_fake/rights",
            Some(json!({"account": "svc", "impersonate": ["anna@contoso.test"], "delegate": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let allowed = fx.ews_ok(SVC, &request).await;
    let resp = SyncFolderItemsResponse::parse(allowed.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.first().unwrap().changes.len(), 2);
    // Rights name mailboxes: ben is still off limits.
    let (status, _) = fx
        .ews(SVC, &soap(&impersonating("ben@contoso.test"), &body))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let log = fx.api("GET", "/_fake/requests", None).await.1;
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["impersonated"] == "anna@contoso.test"
            && e["response_code"] == "NoError"
            && e["account"] == "svc"));
}

#[tokio::test]
async fn fake_exchange_delegate_access_needs_delegate_rights() {
    let fx = Fx::start().await;
    fx.deliver("ben@contoso.test", json!({"count": 1})).await;
    let request = get_folder(
        r#"<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>ben@contoso.test</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"#,
    );
    let body = fx.ews_ok(ANNA, &request).await;
    let resp = GetFolderResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(matches!(resp.first(), Err(EwsError::AccessDenied { .. })));

    fx.api(
        "PUT",
        "/_fake/rights",
        Some(json!({"account": "anna", "impersonate": [], "delegate": ["ben@contoso.test"]})),
    )
    .await;
    let body = fx.ews_ok(ANNA, &request).await;
    let resp = GetFolderResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.first().unwrap().total_count, Some(1));
    // An item id from ben's mailbox is readable as a delegate, not by someone without rights.
    let ids = fx.deliver("ben@contoso.test", json!({})).await;
    let body = fx.ews_ok(ANNA, &get_item(&ids)).await;
    assert!(GetItemResponse::parse(body.as_bytes(), &limits())
        .unwrap()
        .first()
        .is_ok());
    let body = fx.ews_ok(SVC, &get_item(&ids)).await;
    let resp = GetItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(matches!(resp.first(), Err(EwsError::AccessDenied { .. })));
}

#[tokio::test]
async fn fake_exchange_non_existent_mailbox_is_error_non_existent_mailbox() {
    let fx = Fx::start().await;
    fx.api(
        "PUT",
        "/_fake/rights",
        Some(json!({"account": "svc", "impersonate": ["*"]})),
    )
    .await;
    let request = soap(
        &impersonating("nobody@contoso.test"),
        &sync_folder_items(r#"<t:DistinguishedFolderId Id="inbox"/>"#, None, 10),
    );
    let (status, body) = fx.ews(SVC, &request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(
        SyncFolderItemsResponse::parse(body.as_bytes(), &limits()),
        Err(EwsError::MailboxNotFound { .. })
    ));
    // Delegate form: an Error message with HTTP 200.
    let body = fx
        .ews_ok(
            ANNA,
            &get_folder(r#"<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>nobody@contoso.test</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"#),
        )
        .await;
    let resp = GetFolderResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(matches!(
        resp.first(),
        Err(EwsError::MailboxNotFound { .. })
    ));
}

#[tokio::test]
async fn fake_exchange_wrong_or_expired_password_is_401_and_counts_failed_logins() {
    let fx = Fx::start().await;
    let request = get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#);
    let (status, _) = fx.ews(("anna", "wrong"), &request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // DOMAIN\user and address forms sign in too.
    fx.ews_ok(("CONTOSO\\anna", ANNA.1), &request).await;
    fx.ews_ok(("anna@contoso.test", ANNA.1), &request).await;

    let (status, _) = fx.api("POST", "/_fake/accounts/anna/expire", None).await;
    assert_eq!(status, StatusCode::OK);
    let resp = fx
        .http
        .post(fx.fake.ews_url())
        .basic_auth("anna", Some(ANNA.1))
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("Basic")));
    let stats = fx.stats().await;
    assert_eq!(stats["accounts"]["anna"]["failed_logins"], 2);

    // A password change clears the expiry; the old password stops working.
    let (status, _) = fx
        .api(
            "PUT",
            "/_fake/accounts/anna/password",
            Some(json!({"password": "new-secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    fx.ews_ok(("anna", "new-secret"), &request).await;
    let (status, _) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fake_exchange_throttling_sends_back_off_and_counts_early_requests() {
    let fx = Fx::start().await;
    let request = get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#);
    fx.faults(json!({"throttle_rate": 1.0, "back_off_ms": 1500}))
        .await;
    let (status, body) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let Err(EwsError::ServerBusy { back_off }) =
        GetFolderResponse::parse(body.as_bytes(), &limits())
    else {
        panic!("expected ErrorServerBusy: {body}")
    };
    assert_eq!(back_off, Duration::from_millis(1500));
    fx.faults(json!({"throttle_rate": 0.0})).await;
    // Ignoring the back-off is noticed and answered busy again.
    let (status, _) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    tokio::time::sleep(back_off + Duration::from_millis(50)).await;
    fx.ews_ok(ANNA, &request).await;
    let stats = fx.stats().await;
    assert_eq!(stats["accounts"]["anna"]["throttled"], 2);
    assert_eq!(stats["accounts"]["anna"]["early_requests"], 1);

    // The other shapes Exchange uses: a 200 error message and HTTP 503.
    fx.faults(json!({"throttle_rate": 1.0, "back_off_ms": 1, "busy_shape": "message200"}))
        .await;
    let body = fx.ews_ok(BEN, &request).await;
    assert!(matches!(
        GetFolderResponse::parse(body.as_bytes(), &limits())
            .unwrap()
            .first(),
        Err(EwsError::ServerBusy { .. })
    ));
    tokio::time::sleep(Duration::from_millis(5)).await;
    fx.faults(json!({"busy_shape": "http503"})).await;
    let (status, body) = fx.ews(BEN, &request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(matches!(
        EwsError::from_http_status(503, body.as_bytes()),
        EwsError::ServerBusy { .. }
    ));
}

#[tokio::test]
async fn fake_exchange_concurrency_budget_per_account_answers_server_busy() {
    let fx = Fx::start().await;
    fx.faults(json!({"max_concurrency_per_account": 2, "latency_ms": 1500, "back_off_ms": 10}))
        .await;
    let request = get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#);
    let calls = (0..5).map(|_| fx.ews(ANNA, &request));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let busy = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::INTERNAL_SERVER_ERROR && b.contains("ErrorServerBusy"))
        .count();
    assert_eq!((ok, busy), (2, 3));
    let stats = fx.stats().await;
    assert_eq!(stats["accounts"]["anna"]["throttled"], 3);
    assert!(
        stats["accounts"]["anna"]["peak_concurrent_requests"]
            .as_u64()
            .unwrap()
            >= 3
    );
    assert!(stats["peak_concurrent_requests"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn fake_exchange_injects_http_500_503_and_malformed_answers() {
    let fx = Fx::start().await;
    let request = get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#);
    fx.faults(json!({"http_500_rate": 1.0})).await;
    let (status, body) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("<html>"));
    fx.faults(json!({"http_500_rate": 0.0, "http_503_rate": 1.0}))
        .await;
    let (status, _) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    fx.faults(json!({"http_503_rate": 0.0, "malformed_rate": 1.0}))
        .await;
    let (status, body) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(
        GetFolderResponse::parse(body.as_bytes(), &limits()),
        Err(EwsError::Malformed { .. })
    ));
    fx.faults(json!({"malformed_rate": 0.0})).await;
    fx.ews_ok(ANNA, &request).await;
}

#[tokio::test]
async fn fake_exchange_faults_api_rejects_bad_json_and_rates_outside_zero_to_one() {
    let fx = Fx::start().await;
    let (status, _) = fx
        .api("PUT", "/_fake/faults", Some(json!({"throttle_rate": 2.0})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = fx
        .api("PUT", "/_fake/faults", Some(json!({"no_such_knob": 1})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let resp = fx
        .http
        .put(format!("{}/_fake/faults", fx.fake.base_url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (status, faults) = fx.api("GET", "/_fake/faults", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["throttle_rate"], 0.0);
    assert_eq!(faults["max_concurrency_per_account"], 27);
    assert_eq!(faults["back_off_ms"], 2000);
}

#[tokio::test]
async fn fake_exchange_oauth_client_credentials_token_is_accepted_as_bearer() {
    let fx = Fx::start().await;
    fx.deliver("anna@contoso.test", json!({"count": 1})).await;
    let (status, _) = fx
        .api(
            "POST",
            "/_fake/apps",
            Some(json!({"client_id": "app-1", "client_secret": "s3cret", "tenant": "contoso"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "app-1"),
        ("client_secret", "s3cret"),
        ("scope", "https://outlook.office365.com/.default"),
    ];
    let token: Value = fx
        .http
        .post(fx.fake.token_url())
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_u64().unwrap() > 0);
    let access = token["access_token"].as_str().unwrap();
    let request = soap(
        &impersonating("anna@contoso.test"),
        &sync_folder_items(r#"<t:DistinguishedFolderId Id="inbox"/>"#, None, 10),
    );
    let resp = fx
        .http
        .post(fx.fake.ews_url())
        .bearer_auth(access)
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    check_soap(&body);
    let parsed = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(parsed.first().unwrap().changes.len(), 1);

    let wrong = fx
        .http
        .post(fx.fake.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let bad_token = fx
        .http
        .post(fx.fake.ews_url())
        .bearer_auth("not-a-token")
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fake_exchange_refuses_oversized_requests_with_413() {
    let fx = Fx::start_with(FakeConfig {
        max_request_bytes: 2048,
        ..FakeConfig::default()
    })
    .await;
    let padding = "x".repeat(4096);
    let request = get_folder(&format!(
        r#"<t:DistinguishedFolderId Id="inbox"/><!-- {padding} -->"#
    ));
    let (status, _) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn fake_exchange_answers_hostile_xml_with_an_error_schema_validation_fault() {
    let fx = Fx::start().await;
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol2;</soap:Body></soap:Envelope>"#;
    let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    for hostile in [billion_laughs.to_owned(), deep, "not xml at all".to_owned()] {
        let (status, body) = fx.ews(ANNA, &hostile).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            matches!(
                GetFolderResponse::parse(body.as_bytes(), &limits()),
                Err(EwsError::Request { ref code, .. }) if code == "ErrorSchemaValidation"
            ),
            "{body}"
        );
    }
    // Still serving.
    fx.ews_ok(
        ANNA,
        &get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#),
    )
    .await;
}

#[tokio::test]
async fn fake_exchange_stats_json_has_the_contract_shape() {
    let fx = Fx::start().await;
    fx.deliver("anna@contoso.test", json!({"count": 2})).await;
    fx.deliver("anna@contoso.test", json!({"folder": "calendar"}))
        .await;
    fx.ews_ok(
        ANNA,
        &soap(
            "",
            &sync_folder_items(r#"<t:DistinguishedFolderId Id="inbox"/>"#, None, 10),
        ),
    )
    .await;
    let stats = fx.stats().await;
    assert!(stats["peak_concurrent_requests"].as_u64().unwrap() >= 1);
    assert_eq!(stats["operations"]["SyncFolderItems"], 1);
    let anna = &stats["accounts"]["anna"];
    for field in [
        "requests",
        "peak_concurrent_requests",
        "throttled",
        "early_requests",
        "failed_logins",
    ] {
        assert!(anna[field].is_u64(), "{field} missing in {anna}");
    }
    assert_eq!(anna["requests"], 1);
    assert_eq!(stats["mailboxes"]["anna@contoso.test"]["inbox"], 2);
    assert_eq!(stats["mailboxes"]["anna@contoso.test"]["calendar"], 1);
    assert_eq!(stats["mailboxes"]["ben@contoso.test"]["inbox"], 0);
    let (status, _) = fx.api("POST", "/_fake/stats/reset", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fx.stats().await["accounts"]["anna"]["requests"], 0);
}

#[tokio::test]
async fn fake_exchange_generates_act_items_and_rejects_unknown_mailboxes() {
    let fx = Fx::start().await;
    for folder in ["calendar", "contacts", "tasks"] {
        let ids = fx
            .deliver("anna@contoso.test", json!({"folder": folder, "count": 2}))
            .await;
        assert_eq!(ids.len(), 2);
    }
    let body = fx
        .ews_ok(
            ANNA,
            &soap(
                "",
                &sync_folder_items(r#"<t:DistinguishedFolderId Id="contacts"/>"#, None, 10),
            ),
        )
        .await;
    let resp = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(resp.first().unwrap().changes.iter().all(
        |c| matches!(c, SyncItemChange::Create(Item::Contact(c)) if c.display_name.is_some())
    ));
    let (status, _) = fx
        .api(
            "POST",
            "/_fake/mailboxes/nobody@contoso.test/items",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = fx
        .api(
            "POST",
            "/_fake/accounts",
            Some(json!({"address": "anna@contoso.test", "password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn fake_exchange_serves_tls_with_a_self_signed_certificate() {
    let fx = Fx::start_with(FakeConfig {
        tls: true,
        ..FakeConfig::default()
    })
    .await;
    assert!(fx.fake.ews_url().starts_with("https://"));
    let resp = fx
        .http
        .post(fx.fake.ews_url())
        .basic_auth(ANNA.0, Some(ANNA.1))
        .body(get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    assert!(GetFolderResponse::parse(body.as_bytes(), &limits())
        .unwrap()
        .first()
        .is_ok());
    fx.fake.shutdown().await;
}

#[tokio::test]
async fn fake_exchange_fail_next_queues_one_shot_faults_in_order() {
    let fx = Fx::start().await;
    let request = get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#);
    fx.faults(json!({"fail_next": ["http503", "unauthorized", "malformed", "server_busy"], "back_off_ms": 1}))
        .await;
    assert_eq!(
        fx.ews(ANNA, &request).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(fx.ews(ANNA, &request).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(
        GetFolderResponse::parse(body.as_bytes(), &limits()),
        Err(EwsError::Malformed { .. })
    ));
    let (status, body) = fx.ews(ANNA, &request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("ErrorServerBusy"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    fx.ews_ok(ANNA, &request).await;
    let (_, faults) = fx.api("GET", "/_fake/faults", None).await;
    assert_eq!(faults["fail_next"], json!([]));
}

#[test]
fn fake_exchange_command_serves_a_seed_file_and_prints_its_ews_url() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        json!({
            "accounts": [{"address": "anna@contoso.test", "username": "anna", "password": "pw"}],
            "items": [{"mailbox": "anna@contoso.test", "folder": "tasks", "count": 2}],
            "faults": {"latency_ms": 1}
        })
        .to_string(),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .args(["fake-exchange", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    let base = url.trim_end_matches("/EWS/Exchange.asmx").to_owned();
    let stats = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("{base}/_fake/stats"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    let _ = child.wait();
    drop(reader);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["mailboxes"]["anna@contoso.test"]["tasks"], 2);
}

#[test]
fn fake_exchange_command_serves_https_from_a_private_ca_that_a_client_can_trust() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("fake-ca.pem");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .args(["fake-exchange", "--listen", "127.0.0.1:0", "--private-ca"])
        .args(["--signature", "ecdsa-sha384", "--ca-out"])
        .arg(&ca_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in {line:?}"))
        .to_owned();
    let stats_url = format!("{}/_fake/stats", url.trim_end_matches("/EWS/Exchange.asmx"));
    let pem = std::fs::read(&ca_file).unwrap();
    let (trusted, untrusted) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ca = reqwest::Certificate::from_pem(&pem).unwrap();
        let trusting = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let trusted = trusting.get(&stats_url).send().await.map(|r| r.status());
        let untrusted = reqwest::Client::new().get(&stats_url).send().await;
        (trusted, untrusted)
    });
    child.kill().unwrap();
    let _ = child.wait();
    drop(reader);
    assert!(
        String::from_utf8_lossy(&pem).contains("BEGIN CERTIFICATE"),
        "--ca-out holds a PEM certificate"
    );
    assert_eq!(
        trusted.unwrap(),
        reqwest::StatusCode::OK,
        "the CA written out is enough to trust the fake"
    );
    assert!(
        untrusted.is_err(),
        "without the private CA the certificate is not trusted"
    );
}

#[test]
fn fake_exchange_command_refuses_an_rsa_signature_without_a_key_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .args(["fake-exchange", "--listen", "127.0.0.1:0", "--private-ca"])
        .args(["--signature", "rsa-sha256"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs an RSA key"), "{stderr}");
}

#[tokio::test]
async fn fake_exchange_ntlm_signs_in_a_connection_and_refuses_a_wrong_password() {
    use exsync_ews::ntlm::NtlmCredentials;
    use exsync_ews::ntlm_http::{NtlmHttpError, NtlmSessionPool};
    use exsync_ews::tls::TrustSettings;
    use exsync_ews::transport::{SoapPost, Transport, TransportSettings};
    use secrecy::SecretString;

    for tls in [false, true] {
        let fx = Fx::start_with(FakeConfig {
            tls,
            ..FakeConfig::default()
        })
        .await;
        fx.deliver("anna@contoso.test", json!({"count": 2})).await;
        let url = url::Url::parse(&fx.fake.ews_url()).unwrap();
        let transport = Transport::new(TransportSettings {
            trust: TrustSettings {
                accept_invalid_certs: true,
                ..TrustSettings::default()
            },
            ..TransportSettings::default()
        })
        .unwrap();
        let request = get_folder(r#"<t:DistinguishedFolderId Id="inbox"/>"#);
        let post = || SoapPost {
            url: &url,
            body: request.clone().into_bytes(),
            operation: "GetFolder",
            anchor_mailbox: None,
            authorization: None,
            client_request_id: None,
        };
        let pool = NtlmSessionPool::new(
            NtlmCredentials::from_account("CONTOSO\\anna", SecretString::from(ANNA.1)),
            &transport,
        );
        // Two requests: the second reuses the authenticated connection.
        for _ in 0..2 {
            let resp = pool.post(post()).await.unwrap();
            assert_eq!(resp.status, StatusCode::OK);
            let folder = GetFolderResponse::parse(&resp.body, &limits()).unwrap();
            assert_eq!(folder.first().unwrap().total_count, Some(2));
        }
        let wrong = NtlmSessionPool::new(
            NtlmCredentials::from_account("anna", SecretString::from("wrong")),
            &transport,
        );
        assert!(matches!(
            wrong.post(post()).await,
            Err(NtlmHttpError::Rejected)
        ));
        assert_eq!(fx.stats().await["accounts"]["anna"]["failed_logins"], 1);
        fx.fake.shutdown().await;
    }
}

#[tokio::test]
async fn fake_exchange_agrees_with_exsyncs_oauth_client_and_codec_requests() {
    use exsync_ews::oauth::{OAuthApp, TokenSource};
    use exsync_ews::ops::{GetFolderRequest, MaxChangesReturned, SyncFolderItemsRequest};
    use exsync_ews::soap::{ExchangeVersion, RequestHeader};
    use exsync_ews::transport::{SoapPost, Transport, TransportSettings};
    use exsync_ews::types::{BaseFolderId, BaseShape, DistinguishedFolderName, ItemShape};
    use secrecy::{ExposeSecret, SecretString};

    let fx = Fx::start().await;
    fx.deliver("ben@contoso.test", json!({"count": 3})).await;
    fx.api(
        "POST",
        "/_fake/apps",
        Some(json!({"client_id": "app-2", "client_secret": "pw", "impersonate": ["ben@contoso.test"]})),
    )
    .await;
    let transport = Transport::new(TransportSettings::default()).unwrap();
    let tokens = TokenSource::new(OAuthApp {
        token_url: url::Url::parse(&fx.fake.token_url()).unwrap(),
        client_id: "app-2".into(),
        credential: exsync_ews::oauth::ClientCredential::Secret(SecretString::from("pw")),
        scope: "https://outlook.office365.com/.default".into(),
    });
    let token = tokens.token(&transport).await.unwrap();
    let url = url::Url::parse(&fx.fake.ews_url()).unwrap();
    let inbox = BaseFolderId::distinguished(DistinguishedFolderName::Inbox);
    let header = RequestHeader::impersonating(ExchangeVersion::Exchange2013Sp1, "ben@contoso.test");
    let post = |body: String, operation: &'static str| SoapPost {
        url: &url,
        body: body.into_bytes(),
        operation,
        anchor_mailbox: Some("ben@contoso.test"),
        authorization: Some(
            http::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).unwrap(),
        ),
        client_request_id: None,
    };
    let folder = GetFolderRequest {
        folder_shape: BaseShape::Default,
        additional_properties: vec![],
        folder_ids: vec![inbox.clone()],
    }
    .to_xml(&header);
    let resp = transport.post(post(folder, "GetFolder")).await.unwrap();
    let parsed = GetFolderResponse::parse(&resp.body, &limits()).unwrap();
    assert_eq!(parsed.first().unwrap().total_count, Some(3));

    let sync = SyncFolderItemsRequest {
        item_shape: ItemShape::new(BaseShape::IdOnly),
        sync_folder_id: inbox,
        sync_state: None,
        ignore: vec![],
        max_changes_returned: MaxChangesReturned::new(2).unwrap(),
        sync_scope: None,
    };
    let resp = transport
        .post(post(sync.to_xml(&header), "SyncFolderItems"))
        .await
        .unwrap();
    let page = SyncFolderItemsResponse::parse(&resp.body, &limits()).unwrap();
    let page = page.first().unwrap();
    assert_eq!(page.changes.len(), 2);
    assert!(!page.includes_last_item_in_range);

    // The app may impersonate ben only.
    let other = RequestHeader::impersonating(ExchangeVersion::Exchange2013Sp1, "anna@contoso.test");
    let resp = transport
        .post(post(sync.to_xml(&other), "SyncFolderItems"))
        .await
        .unwrap();
    assert!(matches!(
        SyncFolderItemsResponse::parse(&resp.body, &limits()),
        Err(EwsError::ImpersonationDenied { .. })
    ));
}

//! The fake Exchange's meetings, series and categories behave like Exchange's: literal EWS
//! requests (the "CreateItem operation (meeting request)", "DeleteItem operation" and
//! "Recurrence" reference pages, with the schema's real namespaces) posted over real HTTP,
//! every answer checked against the EWS schema, and the `/_fake/` API for categories.

use exsync_ews::ops::{
    CreateItemResponse, DeleteItemResponse, GetItemResponse, SyncFolderItemsResponse,
    SyncItemChange,
};
use exsync_ews::recurrence::{DayOfWeek, RecurrencePattern, RecurrenceRange};
use exsync_ews::types::{CalendarItemKind, Item, ResponseType};
use exsync_ews::xml::XmlLimits;
use fake_exchange::{FakeConfig, FakeExchange};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ews_schema::check_soap;

const ANNA: (&str, &str) = ("anna", "anna-secret");
const BEN: (&str, &str) = ("ben", "ben-secret");

struct Fx {
    fake: FakeExchange,
    http: reqwest::Client,
}

impl Fx {
    async fn start() -> Fx {
        let fake = FakeExchange::start(FakeConfig::default())
            .await
            .expect("fake starts");
        let fx = Fx {
            fake,
            http: reqwest::Client::new(),
        };
        for body in [
            json!({"address": "anna@contoso.test", "username": "anna", "password": ANNA.1}),
            json!({"address": "ben@contoso.test", "username": "ben", "password": BEN.1}),
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

    async fn create(&self, address: &str, body: Value) -> String {
        let (status, v) = self
            .api(
                "POST",
                &format!("/_fake/mailboxes/{address}/items"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["ids"][0].as_str().unwrap().to_owned()
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

    /// POST an envelope as `login`; expect HTTP 200 and a schema-valid answer.
    async fn ews_ok(&self, login: (&str, &str), xml: &str) -> String {
        check_soap(xml);
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
        let body = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        check_soap(&body);
        body
    }
}

fn soap(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Header>
    <t:RequestServerVersion Version="Exchange2013_SP1" />
  </soap:Header>
  <soap:Body>
{body}
  </soap:Body>
</soap:Envelope>"#
    )
}

fn decline(id: &str, disposition: &str) -> String {
    soap(&format!(
        r#"    <CreateItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
                MessageDisposition="{disposition}">
      <Items>
        <DeclineItem xmlns="http://schemas.microsoft.com/exchange/services/2006/types">
          <Body BodyType="Text">Sorry, I cannot make it.</Body>
          <ReferenceItemId Id="{id}"/>
        </DeclineItem>
      </Items>
    </CreateItem>"#
    ))
}

fn delete(id: &str, cancellations: Option<&str>) -> String {
    let attribute = cancellations
        .map(|c| format!(r#" SendMeetingCancellations="{c}""#))
        .unwrap_or_default();
    soap(&format!(
        r#"    <DeleteItem DeleteType="MoveToDeletedItems"{attribute}
                xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemIds>
        <t:ItemId Id="{id}"/>
      </ItemIds>
    </DeleteItem>"#
    ))
}

fn get_item(id: &str, properties: &[&str]) -> String {
    let properties: String = properties
        .iter()
        .map(|p| format!(r#"<t:FieldURI FieldURI="{p}"/>"#))
        .collect();
    soap(&format!(
        r#"    <GetItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemShape>
        <t:BaseShape>IdOnly</t:BaseShape>
        <t:AdditionalProperties>{properties}</t:AdditionalProperties>
      </ItemShape>
      <ItemIds>
        <t:ItemId Id="{id}"/>
      </ItemIds>
    </GetItem>"#
    ))
}

fn first_code(body: &str) -> String {
    CreateItemResponse::parse(body.as_bytes(), &XmlLimits::default())
        .map(|r| r.messages[0].code.as_str().to_owned())
        .unwrap_or_else(|e| format!("{e}"))
}

/// Anna organises a meeting with Ben, sent: Ben has the invitation and his own copy.
async fn anna_invites_ben(fx: &Fx) -> (String, String) {
    let organizer_copy = fx
        .create(
            "anna@contoso.test",
            json!({"folder": "calendar", "subject": "Budget review", "to": ["ben@contoso.test"]}),
        )
        .await;
    let ben_calendar = fx.items("ben@contoso.test", "calendar").await;
    assert_eq!(ben_calendar.len(), 1, "the attendee's copy");
    assert_eq!(ben_calendar[0]["my_response_type"], "NoResponseReceived");
    let invites = fx.items("ben@contoso.test", "inbox").await;
    assert_eq!(invites[0]["item_class"], "IPM.Schedule.Meeting.Request");
    (
        organizer_copy,
        ben_calendar[0]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn fake_exchange_a_declined_meeting_leaves_the_calendar_and_the_organizer_is_told() {
    let fx = Fx::start().await;
    let (_, bens_copy) = anna_invites_ben(&fx).await;
    let body = fx
        .ews_ok(BEN, &decline(&bens_copy, "SendAndSaveCopy"))
        .await;
    let resp = CreateItemResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
    assert!(
        resp.first().unwrap().is_empty(),
        "response objects get no id"
    );
    assert!(fx.items("ben@contoso.test", "calendar").await.is_empty());
    assert_eq!(fx.items("ben@contoso.test", "deleteditems").await.len(), 1);
    let responses = fx.items("anna@contoso.test", "inbox").await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0]["item_class"], "IPM.Schedule.Meeting.Resp.Neg");
    assert_eq!(responses[0]["subject"], "Declined: Budget review");
    assert_eq!(responses[0]["body"], "Sorry, I cannot make it.");
    let sent = fx.items("ben@contoso.test", "sentitems").await;
    assert_eq!(sent[0]["item_class"], "IPM.Schedule.Meeting.Resp.Neg");
    // Declining again: the meeting is gone.
    let body = fx
        .ews_ok(BEN, &decline(&bens_copy, "SendAndSaveCopy"))
        .await;
    assert_eq!(first_code(&body), "ErrorItemNotFound");
}

#[tokio::test]
async fn fake_exchange_refuses_meeting_answers_and_deletes_exchange_refuses() {
    let fx = Fx::start().await;
    let (annas_copy, bens_copy) = anna_invites_ben(&fx).await;
    // The organizer cannot decline her own meeting.
    let body = fx
        .ews_ok(ANNA, &decline(&annas_copy, "SendAndSaveCopy"))
        .await;
    assert_eq!(first_code(&body), "ErrorCalendarIsOrganizerForDecline");
    // A response object is a message: it needs a disposition.
    let no_disposition = decline(&bens_copy, "SendAndSaveCopy")
        .replace(r#"MessageDisposition="SendAndSaveCopy""#, "");
    let body = fx.ews_ok(BEN, &no_disposition).await;
    assert_eq!(first_code(&body), "ErrorMessageDispositionRequired");
    // An email is not a meeting to decline.
    let mail = fx
        .create("ben@contoso.test", json!({"folder": "inbox"}))
        .await;
    let body = fx.ews_ok(BEN, &decline(&mail, "SendAndSaveCopy")).await;
    assert_eq!(first_code(&body), "ErrorInvalidItemForOperationDeclineItem");
    // Deleting a calendar item needs SendMeetingCancellations, a task AffectedTaskOccurrences.
    let body = fx.ews_ok(ANNA, &delete(&annas_copy, None)).await;
    let resp = DeleteItemResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
    assert_eq!(
        resp.messages[0].code.as_str(),
        "ErrorSendMeetingCancellationsRequired"
    );
    let task = fx
        .create("anna@contoso.test", json!({"folder": "tasks"}))
        .await;
    let body = fx.ews_ok(ANNA, &delete(&task, Some("SendToNone"))).await;
    let resp = DeleteItemResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
    assert_eq!(
        resp.messages[0].code.as_str(),
        "ErrorAffectedTaskOccurrencesRequired"
    );
    // Read-only calendar properties and impossible series are refused on create.
    for (extra, code) in [
        (
            "<t:IsCancelled>true</t:IsCancelled>",
            "ErrorInvalidPropertySet",
        ),
        (
            "<t:Recurrence><t:DailyRecurrence><t:Interval>0</t:Interval></t:DailyRecurrence><t:NoEndRecurrence><t:StartDate>2026-12-07</t:StartDate></t:NoEndRecurrence></t:Recurrence>",
            "ErrorCalendarInvalidRecurrence",
        ),
    ] {
        let create = soap(&format!(
            r#"    <CreateItem xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"
                SendMeetingInvitations="SendToNone">
      <Items>
        <t:CalendarItem>
          <t:Subject>Refused</t:Subject>
          <t:Start>2026-12-07T09:00:00Z</t:Start>
          <t:End>2026-12-07T10:00:00Z</t:End>{}
        </t:CalendarItem>
      </Items>
    </CreateItem>"#,
            if extra.starts_with("<t:IsCancelled") {
                // IsCancelled sits after Location in the schema's sequence.
                format!("\n          <t:Location>Room 1</t:Location>{extra}")
            } else {
                format!("\n          {extra}")
            }
        ));
        let body = fx.ews_ok(ANNA, &create).await;
        assert_eq!(first_code(&body), code, "{extra}");
    }
}

#[tokio::test]
async fn fake_exchange_an_organizers_delete_with_cancellations_cancels_for_every_attendee() {
    let fx = Fx::start().await;
    let (annas_copy, _) = anna_invites_ben(&fx).await;
    let body = fx
        .ews_ok(ANNA, &delete(&annas_copy, Some("SendToAllAndSaveCopy")))
        .await;
    let resp = DeleteItemResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
    assert!(resp.first().is_ok());
    assert!(fx.items("anna@contoso.test", "calendar").await.is_empty());
    let bens_inbox = fx.items("ben@contoso.test", "inbox").await;
    let cancellation = bens_inbox
        .iter()
        .find(|m| m["item_class"] == "IPM.Schedule.Meeting.Canceled")
        .expect("a cancellation in the attendee's inbox");
    assert_eq!(cancellation["subject"], "Canceled: Budget review");
    let bens_copy = &fx.items("ben@contoso.test", "calendar").await[0];
    assert_eq!(bens_copy["is_cancelled"], true);
    assert_eq!(bens_copy["subject"], "Canceled: Budget review");
    assert_eq!(
        fx.items("anna@contoso.test", "sentitems").await[0]["item_class"],
        "IPM.Schedule.Meeting.Canceled"
    );
}

#[tokio::test]
async fn fake_exchange_an_attendees_delete_sends_no_cancellation() {
    let fx = Fx::start().await;
    let (_, bens_copy) = anna_invites_ben(&fx).await;
    fx.ews_ok(BEN, &delete(&bens_copy, Some("SendToAllAndSaveCopy")))
        .await;
    assert!(fx.items("ben@contoso.test", "calendar").await.is_empty());
    assert!(
        fx.items("anna@contoso.test", "inbox").await.is_empty(),
        "only the organizer cancels"
    );
    assert_eq!(fx.items("anna@contoso.test", "calendar").await.len(), 1);
}

#[tokio::test]
async fn fake_exchange_series_keep_their_recurrence_and_categories_are_settable() {
    let fx = Fx::start().await;
    let recurrence = json!({
        "pattern": {"type": "weekly", "interval": 1, "days_of_week": ["monday", "thursday"]},
        "range": {"type": "numbered", "start_date": "2026-12-07", "occurrences": 10}
    });
    let id = fx
        .create(
            "anna@contoso.test",
            json!({"folder": "calendar", "subject": "Stand-up", "recurrence": recurrence}),
        )
        .await;
    let body = fx
        .ews_ok(
            ANNA,
            &get_item(
                &id,
                &[
                    "calendar:Recurrence",
                    "calendar:CalendarItemType",
                    "calendar:MyResponseType",
                    "item:Categories",
                ],
            ),
        )
        .await;
    let resp = GetItemResponse::parse(body.as_bytes(), &XmlLimits::default()).unwrap();
    let Item::CalendarItem(c) = &resp.first().unwrap()[0] else {
        panic!("not a calendar item")
    };
    assert_eq!(
        c.calendar_item_type,
        Some(CalendarItemKind::RecurringMaster)
    );
    assert_eq!(c.my_response_type, Some(ResponseType::Organizer));
    let r = c.recurrence.as_ref().expect("the series' recurrence");
    assert_eq!(
        r.pattern,
        RecurrencePattern::Weekly {
            interval: 1,
            days_of_week: vec![DayOfWeek::Monday, DayOfWeek::Thursday],
            first_day_of_week: None
        }
    );
    assert!(matches!(
        r.range,
        RecurrenceRange::Numbered {
            occurrences: 10,
            ..
        }
    ));
    assert!(c.base.categories.is_empty());

    // A user categorises it in Outlook: an update for SyncFolderItems, categories in GetItem.
    let sync = soap(
        r#"    <SyncFolderItems xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
      <ItemShape><t:BaseShape>IdOnly</t:BaseShape></ItemShape>
      <SyncFolderId><t:DistinguishedFolderId Id="calendar"/></SyncFolderId>
      <MaxChangesReturned>10</MaxChangesReturned>
    </SyncFolderItems>"#,
    );
    let body = fx.ews_ok(ANNA, &sync).await;
    let state = SyncFolderItemsResponse::parse(body.as_bytes(), &XmlLimits::default())
        .unwrap()
        .first()
        .unwrap()
        .sync_state
        .clone();
    let (status, _) = fx
        .api(
            "PATCH",
            &format!("/_fake/mailboxes/anna@contoso.test/items/{id}"),
            Some(json!({"categories": ["Tracked to exsync"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = sync.replace(
        "<MaxChangesReturned>",
        &format!("<SyncState>{state}</SyncState>\n      <MaxChangesReturned>"),
    );
    let body = fx.ews_ok(ANNA, &again).await;
    let changes = SyncFolderItemsResponse::parse(body.as_bytes(), &XmlLimits::default())
        .unwrap()
        .first()
        .unwrap()
        .changes
        .clone();
    assert!(
        matches!(changes.as_slice(), [SyncItemChange::Update(_)]),
        "{changes:?}"
    );
    let listed = fx.items("anna@contoso.test", "calendar").await;
    assert_eq!(listed[0]["categories"], json!(["Tracked to exsync"]));
    assert_eq!(listed[0]["recurrence"]["pattern"]["type"], "weekly");
    // An impossible series is refused by the control API too.
    let (status, _) = fx
        .api(
            "POST",
            "/_fake/mailboxes/anna@contoso.test/items",
            Some(json!({"folder": "calendar", "recurrence": {
                "pattern": {"type": "daily", "interval": 0},
                "range": {"type": "no_end", "start_date": "2026-12-07"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

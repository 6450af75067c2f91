//! The fake Exchange gives the answers Exchange gives (issue 7): Send As / Send on Behalf
//! rights, the Message-ID it assigns to what it sends, extended properties kept and returned
//! only when asked for, `Warning` / ErrorBatchProcessingStopped, ErrorItemNotFound after a
//! sync, quotas, a 401 for one mailbox, and Exchange Online's refusal of an app-only token
//! without ExchangeImpersonation. Requests are written with the codec, posted over real HTTP,
//! and every answer is checked against the EWS schema.

use exsync_ews::extended::{ExtendedFieldUri, ExtendedProperty};
use exsync_ews::ops::{
    CreateItemRequest, CreateItemResponse, FindItemRequest, FindItemResponse, GetItemRequest,
    GetItemResponse, ItemChange, ItemUpdate, MaxChangesReturned, SyncFolderItemsRequest,
    SyncFolderItemsResponse, SyncItemChange, UpdateItemRequest, UpdateItemResponse,
};
use exsync_ews::soap::{ExchangeVersion, RequestHeader};
use exsync_ews::types::{
    BaseFolderId, BaseShape, Body, BodyType, ConflictResolution, DistinguishedFolderName,
    EmailAddress, FieldUri, Item, ItemBase, ItemId, ItemShape, Message, MessageDisposition,
    ResponseClass, Restriction, Traversal,
};
use exsync_ews::xml::XmlLimits;
use exsync_ews::EwsError;
use fake_exchange::{FakeConfig, FakeExchange, Seed};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::ews_schema::check_soap;

const SET: &str = "d0925a5d-722f-42f0-882e-a816636fa020";

/// How a request signs in.
enum Login<'a> {
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

const ANNA: Login = Login::Basic("anna", "anna-secret");
const BEN: Login = Login::Basic("ben", "ben-secret");
const SVC: Login = Login::Basic("svc", "svc-secret");

/// A fake with anna@, ben@ and carl@ (own logins) and svc (a service account, no mailbox).
struct Fake {
    fake: FakeExchange,
    http: reqwest::Client,
}

impl Fake {
    async fn start() -> Fake {
        let fake = FakeExchange::start(FakeConfig::default())
            .await
            .expect("fake starts");
        let fx = Fake {
            fake,
            http: reqwest::Client::new(),
        };
        for body in [
            json!({"address": "anna@contoso.test", "username": "anna", "password": "anna-secret"}),
            json!({"address": "ben@contoso.test", "username": "ben", "password": "ben-secret"}),
            json!({"address": "carl@contoso.test", "username": "carl", "password": "carl-secret"}),
            json!({"username": "svc", "password": "svc-secret"}),
        ] {
            let (status, v) = fx.api("POST", "/_fake/accounts", Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{v}");
        }
        fx
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.fake.base_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("control API reachable");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str, body: Value) {
        let (status, v) = self.api("PUT", path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
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

    async fn deliver(&self, address: &str, count: u32) -> Vec<String> {
        let (status, v) = self
            .api(
                "POST",
                &format!("/_fake/mailboxes/{address}/items"),
                Some(json!({"count": count})),
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

    /// POST an envelope; every answer with a body is checked against the schema.
    async fn ews(&self, login: &Login<'_>, xml: &str) -> (StatusCode, String) {
        check_soap(xml);
        let mut req = self
            .http
            .post(self.fake.ews_url())
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(xml.to_owned());
        req = match login {
            Login::Basic(user, password) => req.basic_auth(user, Some(password)),
            Login::Bearer(token) => req.bearer_auth(token),
        };
        let resp = req.send().await.expect("EWS reachable");
        let status = resp.status();
        let body = resp.text().await.unwrap();
        if status == StatusCode::OK || status == StatusCode::INTERNAL_SERVER_ERROR {
            check_soap(&body);
        }
        (status, body)
    }

    async fn ews_ok(&self, login: &Login<'_>, xml: &str) -> String {
        let (status, body) = self.ews(login, xml).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn limits() -> XmlLimits {
    XmlLimits::default()
}

fn header() -> RequestHeader {
    RequestHeader::new(ExchangeVersion::Exchange2013Sp1)
}

fn address(a: &str) -> EmailAddress {
    EmailAddress::new(None, a)
}

fn key() -> ExtendedFieldUri {
    ExtendedFieldUri::named_string(SET, "ExsyncOutgoingId")
}

/// A SendAndSaveCopy of one message to `to`, saved in `saved_in`'s Sent Items.
fn send(
    saved_in: Option<&str>,
    from: Option<&str>,
    to: &str,
    extra: Vec<ExtendedProperty>,
) -> String {
    CreateItemRequest {
        message_disposition: Some(MessageDisposition::SendAndSaveCopy),
        send_meeting_invitations: None,
        saved_item_folder_id: Some(BaseFolderId::Distinguished {
            name: DistinguishedFolderName::SentItems,
            mailbox: saved_in.map(str::to_owned),
        }),
        items: vec![Item::Message(Message {
            base: ItemBase {
                subject: Some("Offer 17".into()),
                body: Some(Body {
                    body_type: BodyType::Text,
                    content: "Please find the offer.".into(),
                }),
                extended_properties: extra,
                ..ItemBase::default()
            },
            to_recipients: vec![address(to)],
            from: from.map(address),
            ..Message::default()
        })],
    }
    .to_xml(&header())
}

fn created(body: &str) -> CreateItemResponse {
    CreateItemResponse::parse(body.as_bytes(), &limits()).unwrap()
}

#[tokio::test]
async fn a_delegate_send_needs_from_and_the_send_as_or_on_behalf_right_else_error_send_as_denied() {
    let fx = Fake::start().await;
    fx.put(
        "/_fake/rights",
        json!({"account": "ben", "delegate": ["anna@contoso.test"]}),
    )
    .await;
    // Without From, the message is the delegate's own: the fake no longer fills in anna.
    fx.ews_ok(
        &BEN,
        &send(Some("anna@contoso.test"), None, "carl@contoso.test", vec![]),
    )
    .await;
    let inbox = fx.items("carl@contoso.test", "inbox").await;
    assert_eq!(inbox[0]["from"], "ben@contoso.test");
    // From anna without Send As: refused, nothing sent, nothing saved.
    let body = fx
        .ews_ok(
            &BEN,
            &send(
                Some("anna@contoso.test"),
                Some("anna@contoso.test"),
                "carl@contoso.test",
                vec![],
            ),
        )
        .await;
    let refused = created(&body);
    assert_eq!(refused.messages[0].code.as_str(), "ErrorSendAsDenied");
    assert!(matches!(
        refused.messages[0].to_error(),
        Some(EwsError::MailboxRefused { .. })
    ));
    assert_eq!(fx.items("carl@contoso.test", "inbox").await.len(), 1);
    assert_eq!(fx.items("anna@contoso.test", "sentitems").await.len(), 1);
    // A service account without a mailbox has nothing to send as without From.
    fx.put(
        "/_fake/rights",
        json!({"account": "svc", "delegate": ["anna@contoso.test"]}),
    )
    .await;
    let body = fx
        .ews_ok(
            &SVC,
            &send(Some("anna@contoso.test"), None, "carl@contoso.test", vec![]),
        )
        .await;
    assert_eq!(
        created(&body).messages[0].code.as_str(),
        "ErrorSendAsDenied"
    );
    // Send on Behalf: From anna, Sender ben.
    fx.put(
        "/_fake/rights",
        json!({"account": "ben", "delegate": ["anna@contoso.test"], "send_on_behalf": ["anna@contoso.test"]}),
    )
    .await;
    let body = fx
        .ews_ok(
            &BEN,
            &send(
                Some("anna@contoso.test"),
                Some("anna@contoso.test"),
                "carl@contoso.test",
                vec![],
            ),
        )
        .await;
    assert!(created(&body).first().is_ok());
    let inbox = fx.items("carl@contoso.test", "inbox").await;
    assert_eq!(inbox[1]["from"], "anna@contoso.test");
    assert_eq!(inbox[1]["sender"], "ben@contoso.test");
    // Send As: From and Sender both anna; the copy is in anna's Sent Items.
    fx.put(
        "/_fake/rights",
        json!({"account": "ben", "delegate": ["anna@contoso.test"], "send_as": ["anna@contoso.test"]}),
    )
    .await;
    fx.ews_ok(
        &BEN,
        &send(
            Some("anna@contoso.test"),
            Some("anna@contoso.test"),
            "carl@contoso.test",
            vec![],
        ),
    )
    .await;
    let inbox = fx.items("carl@contoso.test", "inbox").await;
    assert_eq!(inbox[2]["from"], "anna@contoso.test");
    assert_eq!(inbox[2]["sender"], "anna@contoso.test");
    assert_eq!(fx.items("anna@contoso.test", "sentitems").await.len(), 3);
}

#[tokio::test]
async fn exchange_assigns_the_message_id_of_a_sent_message_and_drops_the_client_s() {
    let fx = Fake::start().await;
    // A client's own Message-ID, where the schema puts it (after the recipients; no From).
    let request = send(None, None, "ben@contoso.test", vec![]).replace(
        "</t:ToRecipients>",
        "</t:ToRecipients><t:InternetMessageId>&lt;mine@client.test&gt;</t:InternetMessageId>",
    );
    fx.ews_ok(&ANNA, &request).await;
    let sent = fx.items("anna@contoso.test", "sentitems").await;
    let delivered = fx.items("ben@contoso.test", "inbox").await;
    let assigned = sent[0]["internet_message_id"].as_str().unwrap();
    assert_ne!(assigned, "<mine@client.test>");
    assert!(assigned.ends_with("@contoso.test>"), "{assigned}");
    assert_eq!(delivered[0]["internet_message_id"], assigned);
}

#[tokio::test]
async fn extended_properties_are_kept_returned_only_when_asked_for_and_searchable() {
    let fx = Fake::start().await;
    let tag = ExtendedFieldUri::tagged("0x3FDE", "Integer");
    fx.ews_ok(
        &ANNA,
        &send(
            None,
            None,
            "ben@contoso.test",
            vec![
                ExtendedProperty::new(key(), "row-7"),
                ExtendedProperty::new(tag.clone(), "65001"),
            ],
        ),
    )
    .await;
    let sent = fx.items("anna@contoso.test", "sentitems").await;
    assert_eq!(sent[0]["extended_properties"]["ExsyncOutgoingId"], "row-7");
    assert_eq!(sent[0]["extended_properties"]["0x3FDE"], "65001");
    // The recipient's copy does not carry the sender's custom properties.
    let delivered = fx.items("ben@contoso.test", "inbox").await;
    assert!(delivered[0]["extended_properties"]
        .as_object()
        .unwrap()
        .is_empty());
    let id = sent[0]["id"].as_str().unwrap().to_owned();

    let get = |shape: ItemShape| {
        GetItemRequest {
            item_shape: shape,
            item_ids: vec![ItemId::new(&id)],
        }
        .to_xml(&header())
    };
    // Not asked for: not returned, whatever the base shape.
    for base in [BaseShape::AllProperties, BaseShape::Default] {
        let body = fx.ews_ok(&ANNA, &get(ItemShape::new(base))).await;
        let items = GetItemResponse::parse(body.as_bytes(), &limits()).unwrap();
        assert!(items.first().unwrap()[0]
            .base()
            .extended_properties
            .is_empty());
    }
    // Asked for: exactly the ones named.
    let mut shape = ItemShape::new(BaseShape::IdOnly);
    shape.additional_properties = vec![FieldUri::extended(&key())];
    let body = fx.ews_ok(&ANNA, &get(shape)).await;
    let items = GetItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    let props = &items.first().unwrap()[0].base().extended_properties;
    assert_eq!(props.len(), 1);
    assert_eq!(props[0].value.first(), Some("row-7"));

    // FindItem restricts on it (the property set GUID in any case).
    let find = |value: &str| {
        FindItemRequest {
            traversal: Traversal::Shallow,
            item_shape: ItemShape::new(BaseShape::IdOnly),
            page: None,
            restriction: Some(Restriction::IsEqualTo(
                FieldUri::extended(&ExtendedFieldUri::named_string(
                    &SET.to_uppercase(),
                    "ExsyncOutgoingId",
                )),
                value.to_owned(),
            )),
            parent_folder_ids: vec![BaseFolderId::distinguished(
                DistinguishedFolderName::SentItems,
            )],
        }
        .to_xml(&header())
    };
    let body = fx.ews_ok(&ANNA, &find("row-7")).await;
    let found = FindItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(found.first().unwrap().items.len(), 1);
    let body = fx.ews_ok(&ANNA, &find("row-8")).await;
    let found = FindItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(found.first().unwrap().items.is_empty());

    // UpdateItem sets it like any field.
    let current = sent[0]["change_key"].as_str().unwrap();
    let mut carrier = Message::default();
    carrier.base.extended_properties = vec![ExtendedProperty::new(key(), "row-8")];
    let update = UpdateItemRequest {
        conflict_resolution: ConflictResolution::AlwaysOverwrite,
        message_disposition: Some(MessageDisposition::SaveOnly),
        send_meeting_invitations_or_cancellations: None,
        item_changes: vec![ItemChange {
            item_id: ItemId::with_change_key(&id, current),
            updates: vec![ItemUpdate::SetItemField {
                field: FieldUri::extended(&key()),
                item: Item::Message(carrier),
            }],
        }],
    }
    .to_xml(&header());
    let body = fx.ews_ok(&ANNA, &update).await;
    assert!(UpdateItemResponse::parse(body.as_bytes(), &limits())
        .unwrap()
        .first()
        .is_ok());
    let body = fx.ews_ok(&ANNA, &find("row-8")).await;
    let found = FindItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(found.first().unwrap().items.len(), 1);
}

#[tokio::test]
async fn a_stopped_batch_answers_warning_error_batch_processing_stopped_for_the_rest() {
    let fx = Fake::start().await;
    let ids = fx.deliver("anna@contoso.test", 4).await;
    fx.put(
        "/_fake/faults",
        json!({"fail_next": [{"batch_stopped_after": 1}]}),
    )
    .await;
    let get = GetItemRequest {
        item_shape: ItemShape::new(BaseShape::IdOnly),
        item_ids: ids.iter().map(ItemId::new).collect(),
    }
    .to_xml(&header());
    let body = fx.ews_ok(&ANNA, &get).await;
    let resp = GetItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.messages.len(), 4);
    assert_eq!(resp.messages[0].class, ResponseClass::Success);
    for m in &resp.messages[1..] {
        assert_eq!(m.class, ResponseClass::Warning);
        assert_eq!(m.code.as_str(), "ErrorBatchProcessingStopped");
        assert!(m.result().is_err(), "Warning is not success");
    }
    // One shot: the next request is whole again.
    let body = fx.ews_ok(&ANNA, &get).await;
    let resp = GetItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(resp
        .messages
        .iter()
        .all(|m| m.class == ResponseClass::Success));
}

#[tokio::test]
async fn an_item_deleted_between_sync_and_get_item_answers_error_item_not_found() {
    let fx = Fake::start().await;
    let ids = fx.deliver("anna@contoso.test", 2).await;
    let (status, _) = fx
        .api(
            "POST",
            &format!(
                "/_fake/mailboxes/anna@contoso.test/items/{}/delete-after-sync",
                ids[0]
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sync = |state: Option<String>| {
        SyncFolderItemsRequest {
            item_shape: ItemShape::new(BaseShape::IdOnly),
            sync_folder_id: BaseFolderId::distinguished(DistinguishedFolderName::Inbox),
            sync_state: state,
            ignore: vec![],
            max_changes_returned: MaxChangesReturned::new(100).unwrap(),
            sync_scope: None,
        }
        .to_xml(&header())
    };
    let body = fx.ews_ok(&ANNA, &sync(None)).await;
    let page = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    let page = page.first().unwrap().clone();
    assert_eq!(page.changes.len(), 2, "the sync reports it");
    let get = GetItemRequest {
        item_shape: ItemShape::new(BaseShape::IdOnly),
        item_ids: ids.iter().map(ItemId::new).collect(),
    }
    .to_xml(&header());
    let body = fx.ews_ok(&ANNA, &get).await;
    let resp = GetItemResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert_eq!(resp.messages[0].code.as_str(), "ErrorItemNotFound");
    assert!(resp.messages[1].result().is_ok());
    // The next sync reports the delete.
    let body = fx.ews_ok(&ANNA, &sync(Some(page.sync_state))).await;
    let next = SyncFolderItemsResponse::parse(body.as_bytes(), &limits()).unwrap();
    assert!(matches!(
        next.first().unwrap().changes.as_slice(),
        [SyncItemChange::Delete(id)] if id.id == ids[0]
    ));
}

#[tokio::test]
async fn a_mailbox_answers_quota_submission_quota_and_message_size_errors_as_set() {
    let fx = Fake::start().await;
    let code = |body: String| created(&body).messages[0].code.as_str().to_owned();
    let plain = send(None, None, "ben@contoso.test", vec![]);
    fx.put(
        "/_fake/mailboxes/anna@contoso.test/settings",
        json!({"storage_quota_exceeded": true}),
    )
    .await;
    assert_eq!(code(fx.ews_ok(&ANNA, &plain).await), "ErrorQuotaExceeded");
    fx.put(
        "/_fake/mailboxes/anna@contoso.test/settings",
        json!({"max_message_bytes": 10}),
    )
    .await;
    assert_eq!(
        code(fx.ews_ok(&ANNA, &plain).await),
        "ErrorMessageSizeExceeded"
    );
    fx.put(
        "/_fake/mailboxes/anna@contoso.test/settings",
        json!({"submission_quota": 1}),
    )
    .await;
    assert_eq!(code(fx.ews_ok(&ANNA, &plain).await), "NoError");
    assert_eq!(
        code(fx.ews_ok(&ANNA, &plain).await),
        "ErrorSubmissionQuotaExceeded"
    );
    let (_, settings) = fx
        .api("GET", "/_fake/mailboxes/anna@contoso.test/settings", None)
        .await;
    assert_eq!(settings["submission_quota"], 0);
    assert_eq!(fx.items("ben@contoso.test", "inbox").await.len(), 1);
    // Unknown fields are refused like everywhere in the API.
    let (status, _) = fx
        .api(
            "PUT",
            "/_fake/mailboxes/anna@contoso.test/settings",
            Some(json!({"quota": true})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn one_mailbox_can_answer_401_while_the_credentials_work_for_the_others() {
    let fx = Fake::start().await;
    fx.put(
        "/_fake/rights",
        json!({"account": "svc", "impersonate": ["*"]}),
    )
    .await;
    fx.put(
        "/_fake/mailboxes/anna@contoso.test/settings",
        json!({"unauthorized": true}),
    )
    .await;
    let find = |mailbox: &str| {
        FindItemRequest {
            traversal: Traversal::Shallow,
            item_shape: ItemShape::new(BaseShape::IdOnly),
            page: None,
            restriction: None,
            parent_folder_ids: vec![BaseFolderId::distinguished(DistinguishedFolderName::Inbox)],
        }
        .to_xml(&RequestHeader::impersonating(
            ExchangeVersion::Exchange2013Sp1,
            mailbox,
        ))
    };
    let (status, _) = fx.ews(&SVC, &find("anna@contoso.test")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    fx.ews_ok(&SVC, &find("ben@contoso.test")).await;
    let (_, stats) = fx.api("GET", "/_fake/stats", None).await;
    assert_eq!(stats["accounts"]["svc"]["failed_logins"], 0);
}

#[tokio::test]
async fn an_app_only_token_without_exchange_impersonation_is_refused_as_exchange_online_does() {
    let fx = Fake::start().await;
    let (status, _) = fx
        .api(
            "POST",
            "/_fake/apps",
            Some(json!({"client_id": "app-1", "client_secret": "s3cret"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token: Value = fx
        .http
        .post(fx.fake.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "s3cret"),
            ("scope", "https://outlook.office365.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let request = FindItemRequest {
        traversal: Traversal::Shallow,
        item_shape: ItemShape::new(BaseShape::IdOnly),
        page: None,
        restriction: None,
        parent_folder_ids: vec![BaseFolderId::Distinguished {
            name: DistinguishedFolderName::Inbox,
            mailbox: Some("anna@contoso.test".into()),
        }],
    };
    let (status, body) = fx
        .ews(&Login::Bearer(token), &request.to_xml(&header()))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("ErrorInvalidExchangeImpersonationHeaderData"),
        "{body}"
    );
    assert!(body.contains("must be present for this type of OAuth token"));
    // With the header it works.
    let impersonating = request.to_xml(&RequestHeader::impersonating(
        ExchangeVersion::Exchange2013Sp1,
        "anna@contoso.test",
    ));
    fx.ews_ok(&Login::Bearer(token), &impersonating).await;
}

#[tokio::test]
async fn seeds_and_the_rights_api_carry_send_as_send_on_behalf_and_mailbox_settings() {
    let seed: Seed = toml::from_str(
        r#"
        [[accounts]]
        address = "anna@contoso.test"
        password = "pw"

        [[accounts]]
        username = "svc"
        password = "pw2"

        [[rights]]
        account = "svc"
        delegate = ["anna@contoso.test"]
        send_as = ["anna@contoso.test"]
        send_on_behalf = []

        [[mailbox_settings]]
        mailbox = "anna@contoso.test"
        submission_quota = 3
        max_message_bytes = 1000000
        "#,
    )
    .unwrap();
    let fake = FakeExchange::start_seeded(seed).await.unwrap();
    let settings = fake.state().mailbox_settings("anna@contoso.test").unwrap();
    assert_eq!(settings.submission_quota, Some(3));
    // svc sends as anna: From anna is allowed.
    let fx = Fake {
        fake,
        http: reqwest::Client::new(),
    };
    let body = fx
        .ews_ok(
            &Login::Basic("svc", "pw2"),
            &send(
                Some("anna@contoso.test"),
                Some("anna@contoso.test"),
                "someone@fabrikam.test",
                vec![],
            ),
        )
        .await;
    assert!(created(&body).first().is_ok(), "{body}");
}

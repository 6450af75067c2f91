//! Every operation: the request it sends (path, query, headers, body validated by check-json)
//! and how it reads a realistic answer (validated by check-json too).

use super::fixtures::{self, MAILBOX};
use super::{check_answer, check_sent, setup};
use crate::model::{
    Contact, DeltaEntry, DeltaNext, EmailAddress, Event, ExchangeIdFormat, ItemBody, Message,
    Recipient, ResponseType, Subscription, TaskStatus, TodoTask, WellknownListName,
};
use crate::testing::Canned;
use crate::{CalendarWindow, ErrorKind, MessageDeltaQuery, MessageSelect, OUTGOING_ID_PROPERTY};
use chrono::{TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};

const USER_PATH: &str = "/users/anna@contoso.com";

#[tokio::test]
async fn a_mail_folder_is_read_by_well_known_name() {
    let (server, client, target) = setup().await;
    check_answer("GET", "/users/a/mailFolders/inbox", 200, fixtures::INBOX);
    server.push(Canned::json(200, fixtures::INBOX));
    let folder = client.mail_folder(&target, "inbox").await.unwrap();
    assert_eq!(folder.display_name.as_deref(), Some("Inbox"));
    assert_eq!(folder.total_item_count, Some(4321));
    let seen = server.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, format!("{USER_PATH}/mailFolders/inbox"));
}

#[tokio::test]
async fn message_delta_starts_with_the_process_from_filter_and_follows_its_links() {
    let (server, client, target) = setup().await;
    let first = fixtures::message_delta_first(&server.url);
    let last = fixtures::message_delta_last(&server.url);
    let path = "/users/a/mailFolders/inbox/messages/delta";
    check_answer("GET", path, 200, &first);
    check_answer("GET", path, 200, &last);
    server.push(Canned::json(200, &first));
    server.push(Canned::json(200, &last));

    let query = MessageDeltaQuery {
        received_since: Some(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()),
        ..Default::default()
    };
    let page = client
        .message_delta(&target, "inbox", &query)
        .await
        .unwrap();
    let DeltaEntry::Changed(message) = &page.entries[0] else {
        panic!("first entry is a message")
    };
    assert_eq!(
        message.internet_message_id.as_deref(),
        Some("<BY5PR11MB3925.namprd11.prod.outlook.com>")
    );
    assert_eq!(
        message.received_date_time,
        Some(Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap())
    );
    assert_eq!(
        message
            .from
            .as_ref()
            .and_then(|r| r.email_address.as_ref())
            .and_then(|a| a.address.as_deref()),
        Some("bob@fabrikam.com")
    );
    assert!(matches!(&page.entries[1], DeltaEntry::Removed { id, .. } if id.ends_with("FrI0")));
    let DeltaNext::NextPage(next) = page.next else {
        panic!("the round goes on")
    };

    let page = client
        .message_delta_next(&target, &next, None)
        .await
        .unwrap();
    let DeltaNext::Done(delta_link) = page.next else {
        panic!("the round is done")
    };
    assert!(delta_link.contains("$deltatoken="));

    let seen = server.seen();
    assert_eq!(
        seen[0].path,
        format!("{USER_PATH}/mailFolders/inbox/messages/delta")
    );
    let query = seen[0].decoded_query();
    assert!(
        query.contains("$filter=receivedDateTime ge 2026-12-01T00:00:00Z"),
        "{query}"
    );
    assert!(
        query.contains("$select=internetMessageId,subject,from,"),
        "{query}"
    );
    // Spaces travel as %20, never as '+'.
    assert!(seen[0]
        .query
        .as_deref()
        .unwrap()
        .contains("receivedDateTime%20ge%20"));
    let prefer = seen[0].header("prefer").unwrap();
    assert!(prefer.contains("IdType=\"ImmutableId\""), "{prefer}");
    assert!(prefer.contains("odata.maxpagesize=100"), "{prefer}");
    // The second call follows the link as given (options are encoded in it, GD-DQM).
    assert_eq!(
        seen[1].query.as_deref(),
        Some("$skiptoken=GwcBoTmPuoTQWfcsAbkYM")
    );
    assert!(seen[1]
        .header("prefer")
        .unwrap()
        .contains("odata.maxpagesize=100"));
}

#[tokio::test]
async fn a_message_is_read_with_its_internet_headers() {
    let (server, client, target) = setup().await;
    check_answer(
        "GET",
        "/users/a/messages/x",
        200,
        fixtures::MESSAGE_WITH_HEADERS,
    );
    server.push(Canned::json(200, fixtures::MESSAGE_WITH_HEADERS));
    let select = MessageSelect {
        properties: vec![
            "internetMessageId".into(),
            "internetMessageHeaders".into(),
            "subject".into(),
        ],
        body_type: Some(crate::model::BodyType::Text),
        expand_outgoing_marker: false,
    };
    let message = client
        .get_message(&target, "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AFrI1", &select)
        .await
        .unwrap();
    assert_eq!(
        message.header("in-reply-to"),
        Some("<0f3a@exsync.contoso.com>")
    );
    let seen = server.seen();
    assert_eq!(
        seen[0].path,
        format!("{USER_PATH}/messages/AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AFrI1")
    );
    assert!(seen[0]
        .header("prefer")
        .unwrap()
        .contains("outlook.body-content-type=\"text\""));
}

#[tokio::test]
async fn several_messages_are_read_each_with_its_own_result() {
    let (server, client, target) = setup().await;
    let gone = r#"{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store."}}"#;
    check_answer("GET", "/users/a/messages/x", 404, gone);
    server.push(Canned::json(200, fixtures::MESSAGE_WITH_HEADERS));
    server.push(Canned::json(404, gone));
    let ids = vec!["one".to_owned(), "two".to_owned()];
    // Sequential answers are matched to requests in arrival order; with two requests in
    // flight either may get either answer, so only the shape of the results is asserted.
    let results = client
        .get_messages(&target, &ids, &MessageSelect::default())
        .await;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].0, "one");
    assert_eq!(results[1].0, "two");
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind(), ErrorKind::ItemNotFound);
}

#[tokio::test]
async fn a_draft_carries_the_fixed_marker_and_is_then_sent() {
    let (server, client, target) = setup().await;
    check_answer("POST", "/users/a/messages", 201, fixtures::CREATED_DRAFT);
    check_answer("POST", "/users/a/messages/x/send", 202, "");
    server.push(Canned::json(201, fixtures::CREATED_DRAFT));
    server.push(Canned::empty(202));
    let draft = Message {
        subject: Some("Your quote".into()),
        body: Some(ItemBody::html("<p>Dear Bob</p>")),
        to_recipients: Some(vec![Recipient::address("bob@fabrikam.com")]),
        // A delegated send: from the mailbox that owns the queue row.
        from: Some(Recipient {
            email_address: Some(EmailAddress {
                name: Some("Sales".into()),
                address: Some("sales@contoso.com".into()),
            }),
        }),
        ..Default::default()
    };
    let created = client.create_draft(&target, &draft, "42").await.unwrap();
    assert_eq!(created.id.as_deref(), Some("AAMkADraft1AAA="));
    assert_eq!(created.extended_property(OUTGOING_ID_PROPERTY), Some("42"));
    client
        .send_draft(&target, created.id.as_deref().unwrap())
        .await
        .unwrap();

    let seen = server.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, format!("{USER_PATH}/messages"));
    check_sent(&seen[0]);
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body["singleValueExtendedProperties"],
        serde_json::json!([{"id": OUTGOING_ID_PROPERTY, "value": "42"}])
    );
    assert_eq!(body["from"]["emailAddress"]["address"], "sales@contoso.com");
    assert_eq!(
        seen[1].path,
        format!("{USER_PATH}/messages/AAMkADraft1AAA=/send")
    );
    assert_eq!(seen[1].header("content-length"), Some("0"));
}

#[tokio::test]
async fn an_outgoing_row_is_found_in_sent_items_and_drafts_by_its_marker() {
    let (server, client, target) = setup().await;
    let sent = fixtures::marked_copies("42", false);
    let path = "/users/a/mailFolders/sentitems/messages";
    check_answer("GET", path, 200, &sent);
    check_answer("GET", path, 200, fixtures::EMPTY_COLLECTION);
    server.push(Canned::json(200, &sent));
    server.push(Canned::json(200, fixtures::EMPTY_COLLECTION));
    let copies = client.find_outgoing(&target, "42").await.unwrap();
    assert_eq!(copies.sent.len(), 1);
    assert!(copies.drafts.is_empty());
    let seen = server.seen();
    assert_eq!(
        seen[0].path,
        format!("{USER_PATH}/mailFolders/sentitems/messages")
    );
    assert_eq!(
        seen[1].path,
        format!("{USER_PATH}/mailFolders/drafts/messages")
    );
    let query = seen[0].decoded_query();
    assert!(
        query.contains(
            "$filter=singleValueExtendedProperties/Any(ep: ep/id eq 'String {d0925a5d-722f-42f0-882e-a816636fa020} Name ExsyncOutgoingId' and ep/value eq '42')"
        ),
        "{query}"
    );
}

#[tokio::test]
async fn a_copy_whose_marker_differs_only_in_case_is_not_taken_for_the_row() {
    // Graph compares extended-property values case-insensitively (GD-XPROP).
    let (server, client, target) = setup().await;
    server.push(Canned::json(200, &fixtures::marked_copies("ab-C", false)));
    server.push(Canned::json(200, fixtures::EMPTY_COLLECTION));
    let copies = client.find_outgoing(&target, "AB-c").await.unwrap();
    assert!(copies.sent.is_empty());
}

#[tokio::test]
async fn a_message_is_updated_with_if_match_and_deleted() {
    let (server, client, target) = setup().await;
    check_answer("DELETE", "/users/a/messages/x", 204, "");
    check_answer(
        "PATCH",
        "/users/a/messages/x",
        200,
        fixtures::UPDATED_MESSAGE,
    );
    server.push(Canned::json(200, fixtures::UPDATED_MESSAGE));
    server.push(Canned::empty(204));
    let patch = Message {
        is_read: Some(true),
        categories: Some(vec!["Tracked to Dynamics 365".into()]),
        ..Default::default()
    };
    let updated = client
        .update_message(&target, "m1", &patch, Some("W/\"CQAAABYAAAAY\""))
        .await
        .unwrap();
    assert_eq!(updated.etag.as_deref(), Some("W/\"CQAAABYAAAAc\""));
    client.delete_message(&target, "d2", None).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[0].header("if-match"), Some("W/\"CQAAABYAAAAY\""));
    check_sent(&seen[0]);
    assert_eq!(seen[1].method, "DELETE");
    assert_eq!(seen[1].path, format!("{USER_PATH}/messages/d2"));
    assert_eq!(seen[1].header("if-match"), None);
}

#[tokio::test]
async fn the_raw_mime_of_a_message_is_read() {
    let (server, client, target) = setup().await;
    let mime = "From: bob@fabrikam.com\r\nMessage-ID: <x@y>\r\n\r\nHello";
    server.push(Canned {
        status: 200,
        headers: vec![("content-type", "message/rfc822".into())],
        body: mime.into(),
    });
    let bytes = client.get_message_mime(&target, "m1").await.unwrap();
    assert_eq!(&bytes[..], mime.as_bytes());
    assert_eq!(
        server.seen()[0].path,
        format!("{USER_PATH}/messages/m1/$value")
    );
}

#[tokio::test]
async fn calendar_delta_covers_a_window_in_utc_with_recurrence_and_attendees() {
    let (server, client, target) = setup().await;
    let page = fixtures::event_delta(&server.url);
    check_answer("GET", "/users/a/calendarView/delta", 200, &page);
    server.push(Canned::json(200, &page));
    let window = CalendarWindow {
        start: Utc.with_ymd_and_hms(2026, 11, 6, 0, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2027, 6, 6, 0, 0, 0).unwrap(),
    };
    let page = client.event_delta(&target, &window).await.unwrap();
    let DeltaEntry::Changed(event) = &page.entries[0] else {
        panic!("an event")
    };
    assert_eq!(
        event.transaction_id.as_deref(),
        Some("exsync-appointment-17")
    );
    assert_eq!(event.is_organizer, Some(true));
    assert_eq!(
        event.start.as_ref().and_then(|s| s.to_utc()),
        Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap())
    );
    let recurrence = event.recurrence.as_ref().unwrap();
    assert_eq!(
        recurrence.range.as_ref().unwrap().start_date,
        chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
    );
    let attendees = event.attendees.as_ref().unwrap();
    assert_eq!(
        attendees[0].status.as_ref().unwrap().response,
        Some(ResponseType::Accepted)
    );
    assert!(matches!(page.entries[1], DeltaEntry::Removed { .. }));
    let seen = server.seen();
    assert_eq!(seen[0].path, format!("{USER_PATH}/calendarView/delta"));
    assert_eq!(
        seen[0].decoded_query(),
        "startDateTime=2026-11-06T00:00:00Z&endDateTime=2027-06-06T00:00:00Z"
    );
    assert!(seen[0]
        .header("prefer")
        .unwrap()
        .contains("outlook.timezone=\"UTC\""));
}

#[tokio::test]
async fn an_event_is_created_with_its_transaction_id_and_an_edit_conflict_is_reported() {
    let (server, client, target) = setup().await;
    check_answer("POST", "/users/a/events", 201, fixtures::CREATED_EVENT);
    check_answer("PATCH", "/users/a/events/x", 412, fixtures::CONFLICT_412);
    check_answer("DELETE", "/users/a/events/x", 204, "");
    server.push(Canned::json(201, fixtures::CREATED_EVENT));
    server.push(Canned::json(412, fixtures::CONFLICT_412));
    server.push(Canned::empty(204));
    let event = Event {
        subject: Some("Demo at Fabrikam".into()),
        start: Some(crate::model::DateTimeTimeZone::utc(
            Utc.with_ymd_and_hms(2026, 12, 8, 13, 0, 0).unwrap(),
        )),
        end: Some(crate::model::DateTimeTimeZone::utc(
            Utc.with_ymd_and_hms(2026, 12, 8, 14, 0, 0).unwrap(),
        )),
        categories: Some(vec!["Tracked to Dynamics 365".into()]),
        attendees: Some(vec![crate::model::Attendee {
            email_address: Some(EmailAddress::address("bob@fabrikam.com")),
            attendee_type: Some(crate::model::AttendeeType::Required),
            status: None,
        }]),
        ..Default::default()
    };
    let created = client
        .create_event(&target, &event, "exsync-appointment-18")
        .await
        .unwrap();
    assert_eq!(created.id.as_deref(), Some("AAMkAGI2Event2AAA="));
    let conflict = client
        .update_event(
            &target,
            "AAMkAGI2Event2AAA=",
            &event,
            Some("W/\"DwAAABYAAAAQ\""),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Conflict);
    assert_eq!(
        conflict.correlation().unwrap().request_id.as_deref(),
        Some("5c2a5d0e-1111-4d2a-9d1b-000000000412")
    );
    client
        .delete_event(&target, "AAMkAGI2Event2AAA=", Some("W/\"DwAAABYAAAAR\""))
        .await
        .unwrap();
    let seen = server.seen();
    check_sent(&seen[0]);
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["transactionId"], "exsync-appointment-18");
    assert_eq!(body["start"]["dateTime"], "2026-12-08T13:00:00.0000000");
    check_sent(&seen[1]);
    assert_eq!(seen[1].header("if-match"), Some("W/\"DwAAABYAAAAQ\""));
    assert_eq!(seen[2].method, "DELETE");
    assert_eq!(seen[2].header("if-match"), Some("W/\"DwAAABYAAAAR\""));
}

#[tokio::test]
async fn contacts_come_by_delta_of_the_default_folder_and_are_written_back() {
    let (server, client, target) = setup().await;
    let page = fixtures::contact_delta(&server.url);
    check_answer(
        "GET",
        "/users/a/contactFolders/contacts/contacts/delta",
        200,
        &page,
    );
    check_answer("POST", "/users/a/contacts", 201, fixtures::CREATED_CONTACT);
    check_answer("DELETE", "/users/a/contacts/x", 204, "");
    check_answer(
        "PATCH",
        "/users/a/contacts/x",
        200,
        fixtures::CREATED_CONTACT,
    );
    server.push(Canned::json(200, &page));
    server.push(Canned::json(201, fixtures::CREATED_CONTACT));
    server.push(Canned::json(200, fixtures::CREATED_CONTACT));
    server.push(Canned::empty(204));
    let page = client
        .contact_delta(
            &target,
            crate::DEFAULT_CONTACT_FOLDER,
            &["displayName", "emailAddresses"],
        )
        .await
        .unwrap();
    let DeltaEntry::Changed(bob) = &page.entries[0] else {
        panic!("a contact")
    };
    assert_eq!(bob.company_name.as_deref(), Some("Fabrikam"));
    assert_eq!(
        bob.business_address
            .as_ref()
            .and_then(|a| a.city.as_deref()),
        Some("Redmond")
    );
    let carol = Contact {
        given_name: Some("Carol".into()),
        surname: Some("Client".into()),
        display_name: Some("Carol Client".into()),
        email_addresses: Some(vec![EmailAddress {
            name: Some("Carol Client".into()),
            address: Some("carol@fabrikam.com".into()),
        }]),
        business_phones: Some(vec!["+1 425 555 0199".into()]),
        ..Default::default()
    };
    let created = client
        .create_contact(&target, &carol, "row-1")
        .await
        .unwrap();
    let patch = Contact {
        job_title: Some("Buyer".into()),
        ..Default::default()
    };
    client
        .update_contact(
            &target,
            created.id.as_deref().unwrap(),
            &patch,
            created.etag.as_deref(),
        )
        .await
        .unwrap();
    client
        .delete_contact(&target, created.id.as_deref().unwrap(), None)
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        seen[0].path,
        format!("{USER_PATH}/contactFolders/contacts/contacts/delta")
    );
    assert_eq!(
        seen[0].decoded_query(),
        "$select=displayName,emailAddresses"
    );
    check_sent(&seen[1]);
    check_sent(&seen[2]);
    assert_eq!(seen[2].header("if-match"), Some("W/\"EQAAABYAAAAC\""));
    assert_eq!(
        seen[3].path,
        format!("{USER_PATH}/contacts/AAMkContact2AAA=")
    );
}

#[tokio::test]
async fn to_do_lists_and_tasks_are_read_and_written() {
    let (server, client, target) = setup().await;
    let page = fixtures::todo_delta(&server.url);
    check_answer("GET", "/users/a/todo/lists", 200, fixtures::TODO_LISTS);
    check_answer("DELETE", "/users/a/todo/lists/l/tasks/t", 204, "");
    check_answer("GET", "/users/a/todo/lists/l/tasks/delta", 200, &page);
    check_answer(
        "POST",
        "/users/a/todo/lists/l/tasks",
        201,
        fixtures::CREATED_TASK,
    );
    check_answer(
        "PATCH",
        "/users/a/todo/lists/l/tasks/t",
        200,
        fixtures::CREATED_TASK,
    );
    server.push(Canned::json(200, fixtures::TODO_LISTS));
    server.push(Canned::json(200, &page));
    server.push(Canned::json(201, fixtures::CREATED_TASK));
    server.push(Canned::json(200, fixtures::CREATED_TASK));
    server.push(Canned::empty(204));
    let lists = client.todo_lists(&target).await.unwrap();
    let default = lists
        .iter()
        .find(|l| l.wellknown_list_name == Some(WellknownListName::DefaultList))
        .unwrap();
    let list_id = default.id.clone().unwrap();
    let page = client.todo_task_delta(&target, &list_id).await.unwrap();
    let DeltaEntry::Changed(task) = &page.entries[0] else {
        panic!("a task")
    };
    assert_eq!(task.status, Some(TaskStatus::NotStarted));
    assert!(task
        .due_date_time
        .as_ref()
        .and_then(|d| d.to_utc())
        .is_some());
    assert!(matches!(page.entries[1], DeltaEntry::Removed { .. }));
    let new_task = TodoTask {
        title: Some("Send the contract".into()),
        body: Some(ItemBody::text("Before Friday")),
        due_date_time: Some(crate::model::DateTimeTimeZone::utc(
            Utc.with_ymd_and_hms(2026, 12, 11, 0, 0, 0).unwrap(),
        )),
        categories: Some(vec!["Tracked to Dynamics 365".into()]),
        ..Default::default()
    };
    let created = client
        .create_todo_task(&target, &list_id, &new_task)
        .await
        .unwrap();
    let done = TodoTask {
        status: Some(TaskStatus::Completed),
        ..Default::default()
    };
    let id = created.id.as_deref().unwrap();
    client
        .update_todo_task(&target, &list_id, id, &done, created.etag.as_deref())
        .await
        .unwrap();
    client
        .delete_todo_task(&target, &list_id, id, None)
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].path, format!("{USER_PATH}/todo/lists"));
    assert_eq!(
        seen[1].path,
        format!("{USER_PATH}/todo/lists/AAMkTasksList=/tasks/delta")
    );
    check_sent(&seen[2]);
    check_sent(&seen[3]);
    assert!(seen[3].header("if-match").is_some());
    assert_eq!(seen[4].method, "DELETE");
}

#[tokio::test]
async fn exchange_ids_are_translated_in_calls_of_at_most_a_thousand_with_per_id_failures() {
    let (server, client, target) = setup().await;
    let ids: Vec<String> = (0..1500).map(|i| format!("ews{i}")).collect();
    let first = fixtures::translated(&ids[..1000]);
    let second = fixtures::translated(&ids[1000..]);
    check_answer("POST", "/users/a/translateExchangeIds", 200, &second);
    check_answer("POST", "/users/a/translateExchangeIds", 200, &first);
    server.push(Canned::json(200, &first));
    server.push(Canned::json(200, &second));
    let results = client
        .translate_exchange_ids(
            &target,
            &ids,
            ExchangeIdFormat::EwsId,
            ExchangeIdFormat::RestImmutableEntryId,
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 1500);
    assert_eq!(results[0].target_id.as_deref(), Some("imm-ews0"));
    assert_eq!(
        results[1]
            .error_details
            .as_ref()
            .and_then(|e| e.code.as_deref()),
        Some("NotFound")
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        check_sent(request);
        assert_eq!(request.path, format!("{USER_PATH}/translateExchangeIds"));
    }
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["inputIds"].as_array().unwrap().len(), 1000);
    assert_eq!(body["sourceIdType"], "ewsId");
    assert_eq!(body["targetIdType"], "restImmutableEntryId");
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(body["inputIds"].as_array().unwrap().len(), 500);
}

#[tokio::test]
async fn subscriptions_are_created_renewed_and_deleted() {
    let (server, client, target) = setup().await;
    check_answer("DELETE", "/subscriptions/x", 204, "");
    check_answer(
        "POST",
        "/subscriptions",
        201,
        fixtures::CREATED_SUBSCRIPTION,
    );
    check_answer(
        "PATCH",
        "/subscriptions/x",
        200,
        fixtures::CREATED_SUBSCRIPTION,
    );
    server.push(Canned::json(201, fixtures::CREATED_SUBSCRIPTION));
    server.push(Canned::json(200, fixtures::CREATED_SUBSCRIPTION));
    server.push(Canned::empty(204));
    let expiry = Utc.with_ymd_and_hms(2026, 12, 8, 18, 23, 45).unwrap();
    let request = Subscription {
        change_type: Some("created,updated,deleted".into()),
        notification_url: Some("https://exsync.contoso.com/graph/notifications".into()),
        lifecycle_notification_url: Some("https://exsync.contoso.com/graph/lifecycle".into()),
        resource: Some(format!("/users/{MAILBOX}/mailFolders('inbox')/messages")),
        expiration_date_time: Some(expiry),
        client_state: Some(SecretString::from(
            "a-state-only-exsync-and-graph-know".to_owned(),
        )),
        latest_supported_tls_version: Some("v1_2".into()),
        ..Default::default()
    };
    let created = client.create_subscription(&target, &request).await.unwrap();
    let id = created.id.clone().unwrap();
    assert_eq!(
        created
            .client_state
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .as_deref(),
        Some("a-state-only-exsync-and-graph-know")
    );
    client
        .renew_subscription(&target, &id, expiry + chrono::Duration::days(2))
        .await
        .unwrap();
    client.delete_subscription(&target, &id).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].path, "/subscriptions");
    check_sent(&seen[0]);
    assert_eq!(seen[1].path, format!("/subscriptions/{id}"));
    check_sent(&seen[1]);
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"expirationDateTime": "2026-12-10T18:23:45Z"})
    );
    assert_eq!(seen[2].method, "DELETE");
}

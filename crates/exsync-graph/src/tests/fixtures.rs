//! Realistic Graph answers, as Graph writes them (each validated with check-json by the
//! tests that use it).

pub const MAILBOX: &str = "anna@contoso.com";

pub const INBOX: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/mailFolders/$entity",
  "id": "AAMkAGI2TGuLAAA=",
  "displayName": "Inbox",
  "parentFolderId": "AAMkAGI2TQAAAEIAAA=",
  "childFolderCount": 1,
  "unreadItemCount": 17,
  "totalItemCount": 4321,
  "isHidden": false
}"##;

/// First page of a message delta round: one message, one removal, a next link.
pub fn message_delta_first(base: &str) -> String {
    format!(
        r##"{{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
  "@odata.nextLink": "{base}/users/anna%40contoso.com/mailFolders/inbox/messages/delta?$skiptoken=GwcBoTmPuoTQWfcsAbkYM",
  "value": [
    {{
      "@odata.type": "#microsoft.graph.message",
      "@odata.etag": "W/\"CQAAABYAAAAY\"",
      "id": "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AFrI1",
      "changeKey": "CQAAABYAAAAY",
      "categories": ["Tracked to Dynamics 365"],
      "createdDateTime": "2026-12-06T09:00:01Z",
      "lastModifiedDateTime": "2026-12-06T09:00:02Z",
      "receivedDateTime": "2026-12-06T09:00:00Z",
      "sentDateTime": "2026-12-06T08:59:58Z",
      "internetMessageId": "<BY5PR11MB3925.namprd11.prod.outlook.com>",
      "subject": "Quote 4711",
      "body": {{"contentType": "html", "content": "<html><body><p>Please find the quote.</p></body></html>"}},
      "sender": {{"emailAddress": {{"name": "Bob Buyer", "address": "bob@fabrikam.com"}}}},
      "from": {{"emailAddress": {{"name": "Bob Buyer", "address": "bob@fabrikam.com"}}}},
      "toRecipients": [{{"emailAddress": {{"name": "Anna", "address": "anna@contoso.com"}}}}],
      "ccRecipients": [],
      "bccRecipients": [],
      "replyTo": [],
      "conversationId": "AAQkAGI2TG93AAA=",
      "isRead": false,
      "isDraft": false,
      "hasAttachments": false,
      "importance": "normal",
      "parentFolderId": "AAMkAGI2TGuLAAA="
    }},
    {{
      "@odata.type": "#microsoft.graph.message",
      "id": "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AFrI0",
      "@removed": {{"reason": "deleted"}}
    }}
  ]
}}"##
    )
}

/// Last page of a message delta round: an update carrying only what changed, a delta link.
pub fn message_delta_last(base: &str) -> String {
    format!(
        r##"{{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
  "@odata.deltaLink": "{base}/users/anna%40contoso.com/mailFolders/inbox/messages/delta?$deltatoken=LztZwWjo5IivWBhyxw5rACKxf7",
  "value": [
    {{"@odata.etag": "W/\"CQAAABYAAAAZ\"", "id": "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AFrI1", "isRead": true}}
  ]
}}"##
    )
}

pub const MESSAGE_WITH_HEADERS: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/messages(internetMessageId,internetMessageHeaders,subject)/$entity",
  "@odata.etag": "W/\"CQAAABYAAAAY\"",
  "id": "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AFrI1",
  "internetMessageId": "<BY5PR11MB3925.namprd11.prod.outlook.com>",
  "subject": "RE: Quote 4711",
  "internetMessageHeaders": [
    {"name": "In-Reply-To", "value": "<0f3a@exsync.contoso.com>"},
    {"name": "References", "value": "<0f3a@exsync.contoso.com>"}
  ]
}"##;

pub const CREATED_DRAFT: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/messages/$entity",
  "@odata.etag": "W/\"CQAAABYAAAAa\"",
  "id": "AAMkADraft1AAA=",
  "createdDateTime": "2026-12-06T10:00:00Z",
  "lastModifiedDateTime": "2026-12-06T10:00:00Z",
  "changeKey": "CQAAABYAAAAa",
  "categories": [],
  "receivedDateTime": "2026-12-06T10:00:00Z",
  "sentDateTime": "2026-12-06T10:00:00Z",
  "hasAttachments": false,
  "internetMessageId": "<DM6PR11MB0000.namprd11.prod.outlook.com>",
  "subject": "Your quote",
  "bodyPreview": "Dear Bob",
  "importance": "normal",
  "parentFolderId": "AAMkDraftsAAA=",
  "conversationId": "AAQkDraftConv=",
  "isRead": true,
  "isDraft": true,
  "body": {"contentType": "html", "content": "<p>Dear Bob</p>"},
  "sender": {"emailAddress": {"name": "Anna", "address": "anna@contoso.com"}},
  "from": {"emailAddress": {"name": "Anna", "address": "anna@contoso.com"}},
  "toRecipients": [{"emailAddress": {"name": "Bob Buyer", "address": "bob@fabrikam.com"}}],
  "ccRecipients": [],
  "bccRecipients": [],
  "replyTo": [],
  "singleValueExtendedProperties": [
    {"id": "String {d0925a5d-722f-42f0-882e-a816636fa020} Name ExsyncOutgoingId", "value": "42"}
  ]
}"##;

pub fn marked_copies(value: &str, draft: bool) -> String {
    format!(
        r##"{{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/mailFolders('sentitems')/messages",
  "value": [
    {{
      "@odata.etag": "W/\"CQAAABYAAAAb\"",
      "id": "AAMkSent1AAA=",
      "internetMessageId": "<DM6PR11MB0000.namprd11.prod.outlook.com>",
      "subject": "Your quote",
      "isDraft": {draft},
      "sentDateTime": "2026-12-06T10:00:05Z",
      "parentFolderId": "AAMkSentAAA=",
      "singleValueExtendedProperties": [
        {{"id": "String {{d0925a5d-722f-42f0-882e-a816636fa020}} Name ExsyncOutgoingId", "value": "{value}"}}
      ]
    }}
  ]
}}"##
    )
}

pub const EMPTY_COLLECTION: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/mailFolders('drafts')/messages",
  "value": []
}"##;

pub const UPDATED_MESSAGE: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/messages/$entity",
  "@odata.etag": "W/\"CQAAABYAAAAc\"",
  "id": "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AFrI1",
  "isRead": true,
  "categories": ["Tracked to Dynamics 365"]
}"##;

pub fn event_delta(base: &str) -> String {
    format!(
        r##"{{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
  "@odata.deltaLink": "{base}/users/anna%40contoso.com/calendarView/delta?$deltatoken=R0usmcCM996atia_s",
  "value": [
    {{
      "@odata.type": "#microsoft.graph.event",
      "@odata.etag": "W/\"DwAAABYAAAAQ\"",
      "id": "AAMkAGI2Event1AAA=",
      "changeKey": "DwAAABYAAAAQ",
      "categories": ["Tracked to Dynamics 365"],
      "createdDateTime": "2026-12-01T08:00:00Z",
      "lastModifiedDateTime": "2026-12-02T08:00:00Z",
      "transactionId": "exsync-appointment-17",
      "iCalUId": "040000008200E00074C5B7101A82E00800000000",
      "subject": "Weekly pipeline review",
      "body": {{"contentType": "html", "content": "<p>Agenda</p>"}},
      "bodyPreview": "Agenda",
      "start": {{"dateTime": "2026-12-07T09:00:00.0000000", "timeZone": "UTC"}},
      "end": {{"dateTime": "2026-12-07T09:30:00.0000000", "timeZone": "UTC"}},
      "isAllDay": false,
      "location": {{"displayName": "Room 4", "locationEmailAddress": "room4@contoso.com"}},
      "showAs": "busy",
      "importance": "normal",
      "sensitivity": "normal",
      "isReminderOn": true,
      "reminderMinutesBeforeStart": 15,
      "type": "seriesMaster",
      "recurrence": {{
        "pattern": {{"type": "weekly", "interval": 1, "month": 0, "dayOfMonth": 0, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday", "index": "first"}},
        "range": {{"type": "noEnd", "startDate": "2026-12-07", "endDate": "0001-01-01", "recurrenceTimeZone": "UTC", "numberOfOccurrences": 0}}
      }},
      "organizer": {{"emailAddress": {{"name": "Anna", "address": "anna@contoso.com"}}}},
      "isOrganizer": true,
      "isCancelled": false,
      "responseRequested": true,
      "responseStatus": {{"response": "organizer", "time": "0001-01-01T00:00:00Z"}},
      "attendees": [
        {{"type": "required", "status": {{"response": "accepted", "time": "2026-12-02T08:00:00Z"}}, "emailAddress": {{"name": "Bob Buyer", "address": "bob@fabrikam.com"}}}}
      ]
    }},
    {{"@odata.type": "#microsoft.graph.event", "id": "AAMkAGI2Event0AAA=", "@removed": {{"reason": "deleted"}}}}
  ]
}}"##
    )
}

pub const CREATED_EVENT: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/events/$entity",
  "@odata.etag": "W/\"DwAAABYAAAAR\"",
  "id": "AAMkAGI2Event2AAA=",
  "changeKey": "DwAAABYAAAAR",
  "transactionId": "exsync-appointment-18",
  "iCalUId": "040000008200E00074C5B7101A82E00800000001",
  "subject": "Demo at Fabrikam",
  "start": {"dateTime": "2026-12-08T13:00:00.0000000", "timeZone": "UTC"},
  "end": {"dateTime": "2026-12-08T14:00:00.0000000", "timeZone": "UTC"},
  "isOrganizer": true,
  "organizer": {"emailAddress": {"name": "Anna", "address": "anna@contoso.com"}},
  "attendees": [],
  "categories": []
}"##;

pub const CONFLICT_412: &str = r##"{
  "error": {
    "code": "ErrorIrresolvableConflict",
    "message": "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
    "innerError": {"date": "2026-12-06T10:00:00", "request-id": "5c2a5d0e-1111-4d2a-9d1b-000000000412", "client-request-id": "5c2a5d0e-1111-4d2a-9d1b-000000000412"}
  }
}"##;

pub fn contact_delta(base: &str) -> String {
    format!(
        r##"{{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(contact)",
  "@odata.deltaLink": "{base}/users/anna%40contoso.com/contactFolders/contacts/contacts/delta?$deltatoken=c1",
  "value": [
    {{
      "@odata.etag": "W/\"EQAAABYAAAAB\"",
      "id": "AAMkContact1AAA=",
      "changeKey": "EQAAABYAAAAB",
      "categories": [],
      "parentFolderId": "AAMkContactsAAA=",
      "displayName": "Bob Buyer",
      "givenName": "Bob",
      "surname": "Buyer",
      "companyName": "Fabrikam",
      "jobTitle": "Purchasing",
      "emailAddresses": [{{"name": "Bob Buyer", "address": "bob@fabrikam.com"}}],
      "businessPhones": ["+1 425 555 0100"],
      "mobilePhone": "+1 425 555 0101",
      "businessAddress": {{"street": "1 Main St", "city": "Redmond", "state": "WA", "postalCode": "98052", "countryOrRegion": "USA"}}
    }},
    {{"id": "AAMkContact0AAA=", "@removed": {{"reason": "deleted"}}}}
  ]
}}"##
    )
}

pub const CREATED_CONTACT: &str = r##"{
  "@odata.etag": "W/\"EQAAABYAAAAC\"",
  "id": "AAMkContact2AAA=",
  "changeKey": "EQAAABYAAAAC",
  "displayName": "Carol Client",
  "givenName": "Carol",
  "surname": "Client",
  "emailAddresses": [{"name": "Carol Client", "address": "carol@fabrikam.com"}]
}"##;

pub const TODO_LISTS: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('anna%40contoso.com')/todo/lists",
  "value": [
    {"@odata.etag": "W/\"m1fdwWoFiE2YS9yegTKoYwAA/ZGlTQ==\"", "displayName": "Tasks", "isOwner": true, "isShared": false, "wellknownListName": "defaultList", "id": "AAMkTasksList="},
    {"@odata.etag": "W/\"m1fdwWoFiE2YS9yegTKoYwAA/ZGlTg==\"", "displayName": "Flagged Emails", "isOwner": true, "isShared": false, "wellknownListName": "flaggedEmails", "id": "AAMkFlagged="}
  ]
}"##;

pub fn todo_delta(base: &str) -> String {
    format!(
        r##"{{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(todoTask)",
  "@odata.deltaLink": "{base}/users/anna%40contoso.com/todo/lists/AAMkTasksList=/tasks/delta?$deltatoken=t1",
  "value": [
    {{
      "@odata.etag": "W/\"m1fdwWoFiE2YS9yegTKoYwAA/ZGlUA==\"",
      "id": "AAMkTask1=",
      "title": "Call Bob about the quote",
      "status": "notStarted",
      "importance": "high",
      "isReminderOn": false,
      "categories": [],
      "hasAttachments": false,
      "createdDateTime": "2026-12-06T09:00:00.1234567Z",
      "lastModifiedDateTime": "2026-12-06T09:05:00Z",
      "bodyLastModifiedDateTime": "2026-12-06T09:05:00Z",
      "body": {{"contentType": "text", "content": "He asked for a discount."}},
      "dueDateTime": {{"dateTime": "2026-12-09T00:00:00.0000000", "timeZone": "UTC"}}
    }},
    {{"id": "AAMkTask0=", "@removed": {{"reason": "deleted"}}}}
  ]
}}"##
    )
}

pub const CREATED_TASK: &str = r##"{
  "@odata.etag": "W/\"m1fdwWoFiE2YS9yegTKoYwAA/ZGlUQ==\"",
  "id": "AAMkTask2=",
  "title": "Send the contract",
  "status": "notStarted",
  "importance": "normal",
  "createdDateTime": "2026-12-06T10:00:00Z",
  "lastModifiedDateTime": "2026-12-06T10:00:00Z"
}"##;

pub fn translated(ids: &[String]) -> String {
    let values: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            if i == 1 {
                format!(
                    r#"{{"sourceId": "{id}", "errorDetails": {{"code": "NotFound", "message": "The item was not found."}}}}"#
                )
            } else {
                format!(r#"{{"sourceId": "{id}", "targetId": "imm-{id}"}}"#)
            }
        })
        .collect();
    format!(
        r#"{{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.convertIdResult)", "value": [{}]}}"#,
        values.join(",")
    )
}

pub const CREATED_SUBSCRIPTION: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
  "id": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
  "resource": "/users/anna@contoso.com/mailFolders('inbox')/messages",
  "applicationId": "24d3b144-21ae-4080-943f-7067b395b913",
  "changeType": "created,updated,deleted",
  "clientState": "a-state-only-exsync-and-graph-know",
  "notificationUrl": "https://exsync.contoso.com/graph/notifications",
  "lifecycleNotificationUrl": "https://exsync.contoso.com/graph/lifecycle",
  "expirationDateTime": "2026-12-08T18:23:45.9356913Z",
  "creatorId": "8ee44408-0679-472c-bc2a-692812af3437",
  "latestSupportedTlsVersion": "v1_2",
  "includeResourceData": false
}"##;

//! Mail over Graph: folders, listing with `$filter` (GD-XPROP, I-NET2947), reading (JSON and
//! `$value` MIME), drafts and their updates (GD-MUPD), `send` (GD-SEND) and `sendMail`
//! (GD-SENDMAIL).
//!
//! Owns Graph's sending rules in the fake: 202 with no body; the draft leaves Drafts and its
//! Sent Items copy is a new item with a new id (I-SEND1533, I-NET2947) that keeps the draft's
//! extended properties and gets a server-assigned `internetMessageId` (a client's value is not
//! kept); recipients with a mailbox in the fake receive a copy without them; Send As / Send on
//! Behalf, quotas and size limits as the fake Exchange applies them.

use base64::Engine;
use chrono::Utc;
use http::StatusCode;
use serde_json::{json, Value};

use super::convert::{self, View};
use super::items::{check_if_match, locate, quota_exceeded};
use super::query::{self, Clause};
use super::routes::{typed, Ctx};
use super::wire::{to_json, GraphErr, OpResult, Reply};
use super::GraphState;
use crate::state::{parse_folder_id, Inner};
use exsync_ews::types::{
    whole_seconds, Body, BodyType as EBodyType, DistinguishedFolderName, EmailAddress, Item,
    ItemBase, Message,
};

/// Mail folders Graph shows (well-known names, GD-MGET; the others are not mail folders).
const MAIL_FOLDERS: [(DistinguishedFolderName, &str, &str); 7] = [
    (DistinguishedFolderName::Inbox, "inbox", "Inbox"),
    (
        DistinguishedFolderName::SentItems,
        "sentitems",
        "Sent Items",
    ),
    (DistinguishedFolderName::Drafts, "drafts", "Drafts"),
    (
        DistinguishedFolderName::DeletedItems,
        "deleteditems",
        "Deleted Items",
    ),
    (DistinguishedFolderName::Outbox, "outbox", "Outbox"),
    (
        DistinguishedFolderName::JunkEmail,
        "junkemail",
        "Junk Email",
    ),
    (
        DistinguishedFolderName::MsgFolderRoot,
        "msgfolderroot",
        "Top of Information Store",
    ),
];

/// The mail folder a well-known name or a folder id names.
pub(crate) fn mail_folder(mailbox: &str, name: &str) -> Result<DistinguishedFolderName, GraphErr> {
    if let Some((folder, _, _)) = MAIL_FOLDERS
        .iter()
        .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
    {
        return Ok(*folder);
    }
    match parse_folder_id(name) {
        Some((address, folder))
            if address.eq_ignore_ascii_case(mailbox)
                && MAIL_FOLDERS.iter().any(|(f, _, _)| *f == folder) =>
        {
            Ok(folder)
        }
        Some(_) => Err(GraphErr::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified folder was not found in the store.",
        )),
        None => Err(GraphErr::malformed_id()),
    }
}

fn folder_json(inner: &Inner, mailbox: &str, folder: DistinguishedFolderName) -> Value {
    let (_, _, display) = MAIL_FOLDERS
        .iter()
        .find(|(f, _, _)| *f == folder)
        .copied()
        .unwrap_or((folder, "", ""));
    let data = inner.mailbox(mailbox).and_then(|m| m.folder(folder));
    let messages = data.map(|d| {
        d.items
            .values()
            .filter_map(|s| match &s.item {
                Item::Message(m) => Some(m.is_read.unwrap_or(false)),
                _ => None,
            })
            .collect::<Vec<bool>>()
    });
    let total = messages.as_ref().map_or(0, Vec::len);
    let unread = messages
        .as_ref()
        .map_or(0, |m| m.iter().filter(|r| !**r).count());
    let root = DistinguishedFolderName::MsgFolderRoot;
    to_json(&exsync_graph::model::MailFolder {
        id: Some(convert::folder_id(mailbox, folder)),
        removed: None,
        display_name: Some(display.to_owned()),
        parent_folder_id: Some(convert::folder_id(
            mailbox,
            if folder == root {
                DistinguishedFolderName::Root
            } else {
                root
            },
        )),
        child_folder_count: Some(if folder == root { 6 } else { 0 }),
        unread_item_count: Some(i32::try_from(unread).unwrap_or(i32::MAX)),
        total_item_count: Some(i32::try_from(total).unwrap_or(i32::MAX)),
        is_hidden: Some(false),
    })
}

/// `GET /users/{id}/mailFolders`: the top-level folders.
pub(crate) fn folder_list(g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query.only(&["$select", "$top"])?;
    let inner = g.exchange.lock();
    let value: Vec<Value> = MAIL_FOLDERS
        .iter()
        .filter(|(f, _, _)| *f != DistinguishedFolderName::MsgFolderRoot)
        .map(|(f, _, _)| folder_json(&inner, &ctx.mailbox, *f))
        .collect();
    Ok(Reply::ok(json!({
        "@odata.context": format!("{}/$metadata#users('{}')/mailFolders", ctx.base, ctx.mailbox),
        "value": value,
    })))
}

/// `GET /users/{id}/mailFolders/{id}`.
pub(crate) fn folder_get(g: &GraphState, ctx: &Ctx, name: &str) -> OpResult {
    ctx.query.only(&["$select"])?;
    let folder = mail_folder(&ctx.mailbox, name)?;
    let inner = g.exchange.lock();
    let mut value = folder_json(&inner, &ctx.mailbox, folder);
    if let Value::Object(map) = &mut value {
        map.insert(
            "@odata.context".into(),
            Value::String(format!(
                "{}/$metadata#users('{}')/mailFolders/$entity",
                ctx.base, ctx.mailbox
            )),
        );
    }
    Ok(Reply::ok(value))
}

fn message_matches(m: &Message, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| match c {
        Clause::Received(op, at) => m
            .base
            .date_time_received
            .or(m.base.date_time_created)
            .is_some_and(|r| op.holds(&r, at)),
        Clause::InternetMessageId(id) => m.internet_message_id.as_deref() == Some(id.as_str()),
        Clause::IsRead(r) => m.is_read.unwrap_or(false) == *r,
        Clause::ExtendedProperty { field, value } => m.base.extended_properties.iter().any(|p| {
            query::same_property(&p.field, field)
                && p.value
                    .first()
                    .is_some_and(|v| v.eq_ignore_ascii_case(value))
        }),
    })
}

/// `GET /users/{id}/messages` or `…/mailFolders/{id}/messages`, newest first.
pub(crate) fn list(g: &GraphState, ctx: &Ctx, folder: Option<&str>) -> OpResult {
    ctx.query
        .only(&["$select", "$filter", "$expand", "$top", "$skip", "$orderby"])?;
    let folder = folder.map(|f| mail_folder(&ctx.mailbox, f)).transpose()?;
    let select = query::select(&ctx.query, convert::MESSAGE_PROPERTIES, "message")?;
    let expand = query::expand(&ctx.query)?;
    let clauses = match ctx.query.get("$filter") {
        Some(raw) => query::parse_filter(raw)?,
        None => Vec::new(),
    };
    // Graph orders a filtered listing only by properties that open the filter, in its order
    // (user-list-messages, "Using filter and orderby in the same query"): anything else is
    // refused as InefficientFilter.
    if let (Some(order), Some(first)) = (ctx.query.get("$orderby"), clauses.first()) {
        let ordered_by_received = order
            .split_whitespace()
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("receivedDateTime"));
        if ordered_by_received && !matches!(first, Clause::Received(..)) {
            return Err(GraphErr::new(
                http::StatusCode::BAD_REQUEST,
                "InefficientFilter",
                "The restriction or sort order is too complex for this operation.",
            ));
        }
    }
    let ascending = match ctx.query.get("$orderby").map(str::trim) {
        None => false,
        Some(o) if o.eq_ignore_ascii_case("receivedDateTime desc") => false,
        Some(o)
            if o.eq_ignore_ascii_case("receivedDateTime asc")
                || o.eq_ignore_ascii_case("receivedDateTime") =>
        {
            true
        }
        Some(o) => {
            return Err(GraphErr::bad_request(format!(
                "The fake Graph orders messages only by receivedDateTime: {o}"
            )))
        }
    };
    let window = super::items::page_window(g, ctx)?;
    let inner = g.exchange.lock();
    let mailbox = inner
        .mailbox(&ctx.mailbox)
        .ok_or_else(GraphErr::item_not_found)?;
    // Matched and ordered by their keys; only the page is rendered.
    let mut found: Vec<(
        chrono::DateTime<Utc>,
        DistinguishedFolderName,
        u64,
        &Message,
    )> = Vec::new();
    for (name, data) in &mailbox.folders {
        if folder.is_some_and(|f| f != *name) {
            continue;
        }
        if !MAIL_FOLDERS.iter().any(|(f, _, _)| f == name) {
            continue;
        }
        for (n, stored) in &data.items {
            let Item::Message(m) = &stored.item else {
                continue;
            };
            if !message_matches(m, &clauses) {
                continue;
            }
            let received = m
                .base
                .date_time_received
                .or(m.base.date_time_created)
                .unwrap_or_default();
            found.push((received, *name, *n, m));
        }
    }
    found.sort_by_key(|(at, _, _, _)| *at);
    if !ascending {
        found.reverse();
    }
    let total = found.len();
    let page = found
        .into_iter()
        .skip(window.skip)
        .take(window.top)
        .map(|(_, name, n, m)| {
            let view = View {
                address: &mailbox.address,
                n,
                folder: name,
                immutable: ctx.prefer.immutable,
                body_type: ctx.prefer.body_type,
                expand: expand.as_ref(),
            };
            query::project(
                to_json(&convert::message(m, &view)),
                select.as_deref(),
                convert::MESSAGE_ON_REQUEST,
            )
        })
        .collect();
    super::items::window_page(ctx, "message", page, window, total)
}

/// The message view of item `n` (the default projection, or `$select`).
fn message_reply(
    ctx: &Ctx,
    address: &str,
    folder: DistinguishedFolderName,
    n: u64,
    m: &Message,
    select: Option<&[String]>,
    expand: Option<&exsync_ews::extended::ExtendedFieldUri>,
) -> Value {
    let view = View {
        address,
        n,
        folder,
        immutable: ctx.prefer.immutable,
        body_type: ctx.prefer.body_type,
        expand,
    };
    let mut value = query::project(
        to_json(&convert::message(m, &view)),
        select,
        convert::MESSAGE_ON_REQUEST,
    );
    if let Value::Object(map) = &mut value {
        map.insert(
            "@odata.context".into(),
            Value::String(format!(
                "{}/$metadata#users('{}')/messages/$entity",
                ctx.base, ctx.mailbox
            )),
        );
    }
    value
}

/// `GET /users/{id}/messages/{id}`.
pub(crate) fn get(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&["$select", "$expand"])?;
    let select = query::select(&ctx.query, convert::MESSAGE_PROPERTIES, "message")?;
    let expand = query::expand(&ctx.query)?;
    let inner = g.exchange.lock();
    let (folder, n) = locate(&inner, &ctx.mailbox, id)?;
    let Some((_, stored)) = inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) else {
        return Err(GraphErr::item_not_found());
    };
    let Item::Message(m) = &stored.item else {
        return Err(GraphErr::item_not_found());
    };
    let address = inner
        .mailbox(&ctx.mailbox)
        .map(|m| m.address.clone())
        .unwrap_or_default();
    Ok(Reply::ok(message_reply(
        ctx,
        &address,
        folder,
        n,
        m,
        select.as_deref(),
        expand.as_ref(),
    )))
}

/// `GET /users/{id}/messages/{id}/$value`: the message as RFC 5322 text.
pub(crate) fn mime(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    let inner = g.exchange.lock();
    let (_, n) = locate(&inner, &ctx.mailbox, id)?;
    let Some((_, stored)) = inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) else {
        return Err(GraphErr::item_not_found());
    };
    let Item::Message(m) = &stored.item else {
        return Err(GraphErr::item_not_found());
    };
    let list = |l: &[EmailAddress]| {
        l.iter()
            .map(|a| a.address.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = String::new();
    if let Some(f) = m.from.as_ref().or(m.sender.as_ref()) {
        text.push_str(&format!("From: {}\r\n", f.address));
    }
    if !m.to_recipients.is_empty() {
        text.push_str(&format!("To: {}\r\n", list(&m.to_recipients)));
    }
    if !m.cc_recipients.is_empty() {
        text.push_str(&format!("Cc: {}\r\n", list(&m.cc_recipients)));
    }
    text.push_str(&format!(
        "Subject: {}\r\n",
        m.base.subject.as_deref().unwrap_or_default()
    ));
    if let Some(at) = m.base.date_time_sent.or(m.base.date_time_received) {
        text.push_str(&format!("Date: {}\r\n", at.to_rfc2822()));
    }
    if let Some(id) = &m.internet_message_id {
        text.push_str(&format!("Message-ID: {id}\r\n"));
    }
    if let Some(r) = &m.base.in_reply_to {
        text.push_str(&format!("In-Reply-To: {r}\r\n"));
    }
    let (kind, content) = match &m.base.body {
        Some(b) if b.body_type == EBodyType::Html => ("text/html", b.content.as_str()),
        Some(b) => ("text/plain", b.content.as_str()),
        None => ("text/plain", ""),
    };
    text.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: {kind}; charset=utf-8\r\n\r\n{content}\r\n"
    ));
    Ok(Reply {
        status: StatusCode::OK,
        body: None,
        raw: Some(("message/rfc822".into(), text.into_bytes())),
        headers: Vec::new(),
    })
}

/// `POST /users/{id}/messages` (or into a folder): a draft; 201 with it.
pub(crate) fn create(g: &GraphState, ctx: &Ctx, folder: Option<&str>) -> OpResult {
    ctx.query.only(&[])?;
    let folder = folder
        .map(|f| mail_folder(&ctx.mailbox, f))
        .transpose()?
        .unwrap_or(DistinguishedFolderName::Drafts);
    let request: exsync_graph::model::Message = ctx.json("message")?;
    let mut inner = g.exchange.lock();
    quota_exceeded(&inner, &ctx.mailbox)?;
    let mut m = Message {
        is_read: Some(true),
        ..Message::default()
    };
    convert::apply_message(&mut m, &request)?;
    // Server-assigned: a draft gets its Message-ID when it is created (a client may set one
    // while it is a draft, GD-MUPD; sending replaces it).
    if m.internet_message_id.is_none() {
        m.internet_message_id = Some(new_message_id(&ctx.mailbox));
    }
    let id = inner
        .insert_item(&ctx.mailbox, folder, Item::Message(m))
        .map_err(|e| GraphErr::invalid_request(e.to_string()))?;
    let n = crate::state::parse_item_id(&id.id)
        .map(|(_, n)| n)
        .ok_or_else(GraphErr::item_not_found)?;
    let Some((_, stored)) = inner.mailbox(&ctx.mailbox).and_then(|mb| mb.item(n)) else {
        return Err(GraphErr::item_not_found());
    };
    let Item::Message(created) = &stored.item else {
        return Err(GraphErr::item_not_found());
    };
    // Graph answers the created draft without the extended properties it was given
    // (Microsoft's "Create single-value extended property" page); a client reads them
    // with `$expand`.
    Ok(Reply::created(message_reply(
        ctx,
        &ctx.mailbox,
        folder,
        n,
        created,
        None,
        None,
    )))
}

/// A fresh server-assigned Message-ID in the mailbox's domain.
fn new_message_id(mailbox: &str) -> String {
    let domain = mailbox
        .rsplit_once('@')
        .map_or("fake-graph.test", |(_, d)| d);
    format!("<{}@{domain}>", uuid::Uuid::new_v4().simple())
}

/// `PATCH /users/{id}/messages/{id}`.
pub(crate) fn update(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    let patch: exsync_graph::model::Message = ctx.json("message")?;
    let mut inner = g.exchange.lock();
    let (folder, n) = locate(&inner, &ctx.mailbox, id)?;
    let Some((_, stored)) = inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) else {
        return Err(GraphErr::item_not_found());
    };
    let Item::Message(current) = &stored.item else {
        return Err(GraphErr::item_not_found());
    };
    check_if_match(ctx, &stored.item)?;
    // Checked on a copy first, so a refused patch changes nothing.
    let mut trial = current.clone();
    convert::apply_message(&mut trial, &patch)?;
    let draft = folder == DistinguishedFolderName::Drafts;
    let draft_only = patch.subject.is_some()
        || patch.body.is_some()
        || patch.to_recipients.is_some()
        || patch.cc_recipients.is_some()
        || patch.bcc_recipients.is_some()
        || patch.from.is_some()
        || patch.sender.is_some()
        || patch.reply_to.is_some()
        || patch.internet_message_id.is_some();
    if draft_only && !draft {
        return Err(GraphErr::invalid_request(
            "Subject, body, recipients, from, sender and internetMessageId can be updated only while the message is a draft.",
        ));
    }
    if draft {
        quota_exceeded(&inner, &ctx.mailbox)?;
    }
    let read_only = patch.is_read.is_some()
        && !draft_only
        && patch.categories.is_none()
        && patch.single_value_extended_properties.is_none();
    let mut failure = None;
    inner.update_item(&ctx.mailbox, n, read_only, |item| {
        if let Item::Message(m) = item {
            if let Err(e) = convert::apply_message(m, &patch) {
                failure = Some(e);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let Some((_, stored)) = inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) else {
        return Err(GraphErr::item_not_found());
    };
    let Item::Message(m) = &stored.item else {
        return Err(GraphErr::item_not_found());
    };
    Ok(Reply::ok(message_reply(
        ctx,
        &ctx.mailbox,
        folder,
        n,
        m,
        None,
        None,
    )))
}

/// Who sends: `from` and `sender` after Send As / Send on Behalf checks (GD-FROM), with the
/// rights the mailbox owner's account has in the fake Exchange.
fn sending_identity(
    inner: &Inner,
    mailbox: &str,
    from: Option<&EmailAddress>,
) -> Result<(EmailAddress, EmailAddress), GraphErr> {
    let me = EmailAddress::new(None, mailbox);
    let Some(from) = from.filter(|f| !f.address.trim().is_empty()) else {
        return Ok((me.clone(), me));
    };
    if from.address.eq_ignore_ascii_case(mailbox) {
        return Ok((from.clone(), from.clone()));
    }
    let wanted = from.address.trim().to_ascii_lowercase();
    let owner = inner.accounts.values().find(|a| {
        a.address
            .as_deref()
            .is_some_and(|addr| addr.eq_ignore_ascii_case(mailbox))
    });
    let may = |set: &std::collections::BTreeSet<String>| set.contains(&wanted) || set.contains("*");
    match owner {
        Some(a) if may(&a.send_as) => Ok((from.clone(), from.clone())),
        Some(a) if may(&a.send_on_behalf) => Ok((from.clone(), me)),
        _ => Err(GraphErr::new(
            StatusCode::FORBIDDEN,
            "ErrorSendAsDenied",
            format!(
                "The mailbox {mailbox} may neither send as nor on behalf of {}.",
                from.address
            ),
        )),
    }
}

fn message_bytes(m: &Message) -> u64 {
    let addresses: usize = m
        .to_recipients
        .iter()
        .chain(&m.cc_recipients)
        .chain(&m.bcc_recipients)
        .map(|a| a.address.len())
        .sum();
    let body = m.base.body.as_ref().map_or(0, |b| b.content.len());
    let subject = m.base.subject.as_deref().map_or(0, str::len);
    u64::try_from(addresses + body + subject).unwrap_or(u64::MAX)
}

/// Submit `m` from `mailbox`: checks, Message-ID, deliveries; the Sent Items copy to keep.
fn submit(inner: &mut Inner, mailbox: &str, mut m: Message) -> Result<Message, GraphErr> {
    quota_exceeded(inner, mailbox)?;
    let (from, sender) = sending_identity(inner, mailbox, m.from.as_ref())?;
    let settings = inner
        .mailbox(mailbox)
        .map(|mb| mb.settings.clone())
        .unwrap_or_default();
    if settings
        .max_message_bytes
        .is_some_and(|max| message_bytes(&m) > max)
    {
        return Err(GraphErr::new(
            StatusCode::BAD_REQUEST,
            "ErrorMessageSizeExceeded",
            "The message is larger than the mailbox may send.",
        ));
    }
    if settings.submission_quota == Some(0) {
        return Err(GraphErr::new(
            StatusCode::FORBIDDEN,
            "ErrorSubmissionQuotaExceeded",
            "The mailbox has sent as many messages as it may for now.",
        ));
    }
    let recipients: std::collections::BTreeSet<String> = m
        .to_recipients
        .iter()
        .chain(&m.cc_recipients)
        .chain(&m.bcc_recipients)
        .map(|a| a.address.trim().to_ascii_lowercase())
        .collect();
    if recipients.is_empty() || recipients.iter().any(|r| !r.contains('@')) {
        return Err(GraphErr::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "The message needs at least one recipient, each with an SMTP address.",
        ));
    }
    let now = whole_seconds(Utc::now());
    m.internet_message_id = Some(new_message_id(&from.address));
    m.from = Some(from);
    m.sender = Some(sender);
    m.base.date_time_sent = Some(now);
    m.base.date_time_received = Some(now);
    m.base.item_id = None;
    m.base.parent_folder_id = None;
    if let Some(mb) = inner.mailbox_mut(mailbox) {
        if let Some(left) = mb.settings.submission_quota.as_mut() {
            *left = left.saturating_sub(1);
        }
    }
    let mut delivered = m.clone();
    delivered.bcc_recipients.clear();
    delivered.is_read = Some(false);
    delivered.base.extended_properties.clear();
    for rcpt in recipients {
        let Some(canonical) = inner.mailbox(&rcpt).map(|mb| mb.address.clone()) else {
            continue;
        };
        inner
            .insert_item(
                &canonical,
                DistinguishedFolderName::Inbox,
                Item::Message(delivered.clone()),
            )
            .map_err(|e| GraphErr::invalid_request(e.to_string()))?;
    }
    inner.record_sent("graph", &m);
    m.is_read = Some(true);
    Ok(m)
}

/// Keep the Sent Items copy, now or after `sent_items_delay_ms` (the move happens after the
/// 202 on the real service, GD-SENDSTEPS).
fn keep_sent_copy(g: &GraphState, mailbox: &str, copy: Message) {
    let delay = g.faults().sent_items_delay_ms;
    let item = Item::Message(copy);
    if delay == 0 {
        let _ = g
            .exchange
            .lock()
            .insert_item(mailbox, DistinguishedFolderName::SentItems, item);
        return;
    }
    let exchange = g.exchange.clone();
    let mailbox = mailbox.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        let _ = exchange
            .lock()
            .insert_item(&mailbox, DistinguishedFolderName::SentItems, item);
    });
}

/// `POST /users/{id}/messages/{id}/send`: 202, no body (GD-SEND).
pub(crate) fn send_draft(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    if !ctx.body.is_empty() {
        return Err(GraphErr::bad_request("send takes no request body."));
    }
    let copy = {
        let mut inner = g.exchange.lock();
        let (folder, n) = locate(&inner, &ctx.mailbox, id)?;
        let Some((_, stored)) = inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) else {
            return Err(GraphErr::item_not_found());
        };
        let Item::Message(m) = stored.item.clone() else {
            return Err(GraphErr::item_not_found());
        };
        if folder != DistinguishedFolderName::Drafts {
            return Err(GraphErr::invalid_request(
                "Only a draft can be sent; this message is not in Drafts.",
            ));
        }
        let copy = submit(&mut inner, &ctx.mailbox, m)?;
        inner.remove_item(&ctx.mailbox, n);
        copy
    };
    keep_sent_copy(g, &ctx.mailbox, copy);
    Ok(Reply::empty(StatusCode::ACCEPTED))
}

/// `POST /users/{id}/sendMail`: JSON `{message, saveToSentItems}` or base64 MIME as
/// `text/plain` (GD-SENDMAIL); 202, no body.
pub(crate) fn send_mail(g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query.only(&[])?;
    let mime = ctx
        .content_type
        .as_deref()
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/plain"));
    let (message, save) = if mime {
        (from_mime(&ctx.body)?, true)
    } else {
        let raw: Value = serde_json::from_slice(&ctx.body)
            .map_err(|e| GraphErr::body_read(format!("The request body is not JSON: {e}")))?;
        let Value::Object(params) = raw else {
            return Err(GraphErr::body_read("sendMail takes a JSON object."));
        };
        let mut message = None;
        let mut save = true;
        for (name, value) in params {
            // Action parameters are read without case (the CSDL says Message, the docs message).
            if name.eq_ignore_ascii_case("message") {
                let request: exsync_graph::model::Message = typed(value, "message")?;
                let mut m = Message::default();
                convert::apply_message(&mut m, &request)?;
                message = Some(m);
            } else if name.eq_ignore_ascii_case("saveToSentItems") {
                save = match value {
                    Value::Bool(b) => b,
                    Value::Null => true,
                    _ => return Err(GraphErr::body_read("saveToSentItems is a boolean.")),
                };
            } else {
                return Err(GraphErr::body_read(format!(
                    "sendMail has no parameter '{name}'."
                )));
            }
        }
        (
            message.ok_or_else(|| GraphErr::body_read("sendMail needs a message."))?,
            save,
        )
    };
    let copy = {
        let mut inner = g.exchange.lock();
        submit(&mut inner, &ctx.mailbox, message)?
    };
    if save {
        keep_sent_copy(g, &ctx.mailbox, copy);
    }
    Ok(Reply::empty(StatusCode::ACCEPTED))
}

/// A base64 MIME message (sendMail with `text/plain`): the headers the fake reads and the body.
fn from_mime(body: &[u8]) -> Result<Message, GraphErr> {
    let invalid = || {
        GraphErr::new(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "The MIME content is not valid base64.",
        )
    };
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (head, content) = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw.as_str(), ""));
    let mut m = Message::default();
    let addresses = |v: &str| {
        v.split(',')
            .map(|a| {
                let a = a.trim();
                let addr = a
                    .rsplit_once('<')
                    .and_then(|(_, r)| r.strip_suffix('>'))
                    .unwrap_or(a);
                EmailAddress::new(None, addr.trim())
            })
            .filter(|a| !a.address.is_empty())
            .collect::<Vec<_>>()
    };
    let mut html = false;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "subject" => m.base.subject = Some(value.to_owned()),
            "to" => m.to_recipients = addresses(value),
            "cc" => m.cc_recipients = addresses(value),
            "bcc" => m.bcc_recipients = addresses(value),
            "from" => m.from = addresses(value).into_iter().next(),
            "in-reply-to" => m.base.in_reply_to = Some(value.to_owned()),
            "references" => m.references = Some(value.to_owned()),
            "content-type" => html = value.to_ascii_lowercase().starts_with("text/html"),
            _ => {}
        }
    }
    m.base = ItemBase {
        body: Some(Body {
            body_type: if html {
                EBodyType::Html
            } else {
                EBodyType::Text
            },
            content: content.trim_end().to_owned(),
        }),
        ..m.base
    };
    Ok(m)
}

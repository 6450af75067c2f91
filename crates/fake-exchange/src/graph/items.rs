//! Events, contacts, To Do tasks and `translateExchangeIds` over Graph, and what every item
//! operation shares: finding an item by id, `If-Match` (412 `ErrorIrresolvableConflict` on a
//! stale change key), quota, collection pages.
//!
//! Owns Graph's rules for these resources in the fake: events keep a `transactionId` that
//! makes a repeated create return the first event (TP-EVENT-DESC) and cannot change; an
//! organizer's create invites and its delete cancels, as the fake Exchange does; the default
//! To Do list is the mailbox's Tasks folder, with To Do ids of its own (GD-IMM); ids are
//! translated between every `exchangeIdFormat` for items of one mailbox (GD-TRANS).

use chrono::Utc;
use exsync_graph::model as gm;
use http::StatusCode;
use serde_json::{json, Value};

use super::convert::{self, View};
use super::ids::{self, GraphIdFormat};
use super::query;
use super::routes::Ctx;
use super::wire::{to_json, GraphErr, OpResult, Reply};
use super::GraphState;
use crate::state::{folder_id_string, parse_folder_id, Inner};
use exsync_ews::types::{CalendarItem, Contact, DistinguishedFolderName, Item, Task};

/// Graph translates at most this many ids per call (GD-TRANS).
const MAX_TRANSLATE: usize = 1000;

/// The kind of item an item path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Event,
    Contact,
}

/// 507 `ErrorQuotaExceeded` when the mailbox is over its storage quota (I-QUOTA2927; the
/// status is an assumption, see docs/fake-exchange.md).
pub(crate) fn quota_exceeded(inner: &Inner, mailbox: &str) -> Result<(), GraphErr> {
    if inner
        .mailbox(mailbox)
        .is_some_and(|m| m.settings.storage_quota_exceeded)
    {
        return Err(GraphErr::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "ErrorQuotaExceeded",
            "The mailbox is over its storage quota.",
        ));
    }
    Ok(())
}

/// The folder and number of the item a Graph id names in `mailbox`.
pub(crate) fn locate(
    inner: &Inner,
    mailbox: &str,
    id: &str,
) -> Result<(DistinguishedFolderName, u64), GraphErr> {
    if ids::is_occurrence_id(id) {
        // An occurrence the calendar view expanded: the fake keeps no exceptions.
        return Err(GraphErr::item_not_found());
    }
    let (address, n) = ids::decode_rest(id).ok_or_else(GraphErr::malformed_id)?;
    if !address.eq_ignore_ascii_case(mailbox) {
        return Err(GraphErr::item_not_found());
    }
    inner
        .mailbox(mailbox)
        .and_then(|m| m.item(n))
        .map(|(folder, _)| (folder, n))
        .ok_or_else(GraphErr::item_not_found)
}

fn change_key(item: &Item) -> String {
    item.base()
        .item_id
        .as_ref()
        .and_then(|i| i.change_key.clone())
        .unwrap_or_default()
}

fn bare_etag(value: &str) -> &str {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"')
}

/// `If-Match`: `*` or the item's current ETag; anything else is 412 (the fake enforces it,
/// graph.md §4).
pub(crate) fn check_if_match(ctx: &Ctx, item: &Item) -> Result<(), GraphErr> {
    match ctx.if_match.as_deref() {
        None => Ok(()),
        Some(v) if v.trim() == "*" => Ok(()),
        Some(v) if bare_etag(v) == change_key(item) => Ok(()),
        Some(_) => Err(GraphErr::conflict()),
    }
}

/// A collection page of `values` with `$top` / `$skip` and a `@odata.nextLink`.
pub(crate) fn list_page(
    g: &GraphState,
    ctx: &Ctx,
    type_name: &str,
    values: Vec<Value>,
) -> OpResult {
    let window = page_window(g, ctx)?;
    let total = values.len();
    let page: Vec<Value> = values
        .into_iter()
        .skip(window.skip)
        .take(window.top)
        .collect();
    window_page(ctx, type_name, page, window, total)
}

/// Which part of a collection one page holds (`$skip`, and `$top` or
/// `Prefer: odata.maxpagesize` bounded by the fake's largest page).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageWindow {
    pub(crate) skip: usize,
    pub(crate) top: usize,
}

/// The page a request asks for.
pub(crate) fn page_window(g: &GraphState, ctx: &Ctx) -> Result<PageWindow, GraphErr> {
    let faults = g.faults();
    let top = query::top(&ctx.query, faults.default_page_size, faults.max_page_size)?;
    let top = ctx
        .prefer
        .max_page_size
        .map(|p| usize::try_from(p.min(faults.max_page_size)).unwrap_or(usize::MAX))
        .filter(|_| ctx.query.get("$top").is_none())
        .unwrap_or(top);
    Ok(PageWindow {
        skip: query::skip(&ctx.query)?,
        top,
    })
}

/// The answer for `page`, the part `window` of a collection of `total` values (rendered
/// only for the page, so a long collection costs its keys, not its bodies).
pub(crate) fn window_page(
    ctx: &Ctx,
    type_name: &str,
    page: Vec<Value>,
    window: PageWindow,
    total: usize,
) -> OpResult {
    let PageWindow { skip, top } = window;
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!("{}/$metadata#Collection({type_name})", ctx.base)),
    );
    body.insert("value".into(), Value::Array(page));
    if skip + top < total {
        let mut params: Vec<(String, String)> = Vec::new();
        for name in ctx.query.names() {
            if name.trim_start_matches('$').eq_ignore_ascii_case("skip") {
                continue;
            }
            if let Some(v) = ctx.query.get(name) {
                params.push((name.to_owned(), v.to_owned()));
            }
        }
        params.push(("$skip".into(), (skip + top).to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{}/{}?{query}", ctx.base, ctx.path)),
        );
    }
    Ok(Reply::ok(Value::Object(body)))
}

fn view<'a>(ctx: &Ctx, address: &'a str, folder: DistinguishedFolderName, n: u64) -> View<'a> {
    View {
        address,
        n,
        folder,
        immutable: ctx.prefer.immutable,
        body_type: ctx.prefer.body_type,
        expand: None,
    }
}

fn with_context(mut value: Value, ctx: &Ctx, entity: &str) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert(
            "@odata.context".into(),
            Value::String(format!(
                "{}/$metadata#users('{}')/{entity}/$entity",
                ctx.base, ctx.mailbox
            )),
        );
    }
    value
}

fn created_number(id: &exsync_ews::types::ItemId) -> Result<u64, GraphErr> {
    crate::state::parse_item_id(&id.id)
        .map(|(_, n)| n)
        .ok_or_else(GraphErr::item_not_found)
}

/// `DELETE` of a message, event or contact: 204.
pub(crate) fn delete(g: &GraphState, ctx: &Ctx, kind: Kind, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    let mut inner = g.exchange.lock();
    let (_, n) = locate(&inner, &ctx.mailbox, id)?;
    let Some((_, stored)) = inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) else {
        return Err(GraphErr::item_not_found());
    };
    let matches_kind = matches!(
        (kind, &stored.item),
        (Kind::Message, Item::Message(_))
            | (Kind::Event, Item::CalendarItem(_))
            | (Kind::Contact, Item::Contact(_))
    );
    if !matches_kind {
        return Err(GraphErr::item_not_found());
    }
    check_if_match(ctx, &stored.item)?;
    let removed = inner
        .remove_item(&ctx.mailbox, n)
        .ok_or_else(GraphErr::item_not_found)?;
    if let Item::CalendarItem(c) = &removed {
        let organizer = c.my_response_type == Some(exsync_ews::types::ResponseType::Organizer);
        let others = c
            .required_attendees
            .iter()
            .any(|a| !a.address.eq_ignore_ascii_case(&ctx.mailbox));
        if organizer && others {
            let _ = inner.deliver_cancellations(&ctx.mailbox, &removed, true);
        }
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

// --- translateExchangeIds -----------------------------------------------------------------

fn id_format(value: &Value, name: &str) -> Result<GraphIdFormat, GraphErr> {
    serde_json::from_value(value.clone()).map_err(|_| {
        GraphErr::body_read(format!(
            "{name} must be one of entryId, ewsId, immutableEntryId, restId, restImmutableEntryId."
        ))
    })
}

/// `POST /users/{id}/translateExchangeIds` (GD-TRANS): one result per id, failures inside
/// the 200 as `errorDetails` (I-TRANS7610).
pub(crate) fn translate(g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query.only(&[])?;
    let raw: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| GraphErr::body_read(format!("The request body is not JSON: {e}")))?;
    let Value::Object(params) = raw else {
        return Err(GraphErr::body_read(
            "translateExchangeIds takes a JSON object.",
        ));
    };
    let mut input = None;
    let mut source = None;
    let mut target = None;
    for (name, value) in &params {
        // Action parameters are read without case (the CSDL says InputIds, the docs inputIds).
        match name.to_ascii_lowercase().as_str() {
            "inputids" => {
                input = Some(
                    serde_json::from_value::<Vec<String>>(value.clone())
                        .map_err(|_| GraphErr::body_read("inputIds is a list of strings."))?,
                )
            }
            "sourceidtype" => source = Some(id_format(value, "sourceIdType")?),
            "targetidtype" => target = Some(id_format(value, "targetIdType")?),
            _ => {
                return Err(GraphErr::body_read(format!(
                    "translateExchangeIds has no parameter '{name}'."
                )))
            }
        }
    }
    let input = input.ok_or_else(|| GraphErr::body_read("inputIds is required."))?;
    let source = source.ok_or_else(|| GraphErr::body_read("sourceIdType is required."))?;
    let target = target.ok_or_else(|| GraphErr::body_read("targetIdType is required."))?;
    if input.is_empty() || input.len() > MAX_TRANSLATE {
        return Err(GraphErr::invalid_request(format!(
            "inputIds takes 1 to {MAX_TRANSLATE} ids; got {}.",
            input.len()
        )));
    }
    let inner = g.exchange.lock();
    let mailbox = inner
        .mailbox(&ctx.mailbox)
        .ok_or_else(GraphErr::item_not_found)?;
    let results: Vec<Value> = input
        .iter()
        .map(|id| {
            let failed = |code: &str, message: &str| gm::ConvertIdResult {
                source_id: Some(id.clone()),
                target_id: None,
                error_details: Some(gm::GenericError {
                    code: Some(code.to_owned()),
                    message: Some(message.to_owned()),
                }),
            };
            let result = match ids::decode(source, id) {
                None => failed(
                    "ErrorInvalidIdMalformed",
                    "The id is not of the source id type.",
                ),
                Some((address, n))
                    if address.eq_ignore_ascii_case(&mailbox.address)
                        && mailbox.item(n).is_some() =>
                {
                    let address = if target == GraphIdFormat::EwsId {
                        mailbox.address.clone()
                    } else {
                        address
                    };
                    gm::ConvertIdResult {
                        source_id: Some(id.clone()),
                        target_id: Some(ids::encode(target, &address, n)),
                        error_details: None,
                    }
                }
                Some(_) => failed("NotFound", "No item with this id is in the mailbox."),
            };
            to_json(&result)
        })
        .collect();
    Ok(Reply::ok(json!({
        "@odata.context": format!("{}/$metadata#Collection(microsoft.graph.convertIdResult)", ctx.base),
        "value": results,
    })))
}

// --- events -------------------------------------------------------------------------------

fn event_value(g: &GraphState, ctx: &Ctx, address: &str, n: u64, c: &CalendarItem) -> Value {
    let transaction_id = g.lock().transaction_of.get(&n).cloned();
    to_json(&convert::event(
        c,
        &view(ctx, address, DistinguishedFolderName::Calendar, n),
        transaction_id,
    ))
}

/// `GET /users/{id}/events`: the calendar's events and series masters.
pub(crate) fn event_list(g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query.only(&["$select", "$top", "$skip"])?;
    let select = query::select(&ctx.query, convert::EVENT_PROPERTIES, "event")?;
    let values: Vec<Value> = {
        let inner = g.exchange.lock();
        let mailbox = inner
            .mailbox(&ctx.mailbox)
            .ok_or_else(GraphErr::item_not_found)?;
        let Some(data) = mailbox.folder(DistinguishedFolderName::Calendar) else {
            return Err(GraphErr::item_not_found());
        };
        data.items
            .iter()
            .filter_map(|(n, s)| match &s.item {
                Item::CalendarItem(c) => Some(query::project(
                    event_value(g, ctx, &mailbox.address, *n, c),
                    select.as_deref(),
                    &[],
                )),
                _ => None,
            })
            .collect()
    };
    list_page(g, ctx, "event", values)
}

fn stored_event(inner: &Inner, ctx: &Ctx, id: &str) -> Result<(u64, CalendarItem), GraphErr> {
    let (_, n) = locate(inner, &ctx.mailbox, id)?;
    match inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) {
        Some((_, s)) => match &s.item {
            Item::CalendarItem(c) => Ok((n, c.clone())),
            _ => Err(GraphErr::item_not_found()),
        },
        None => Err(GraphErr::item_not_found()),
    }
}

/// `GET /users/{id}/events/{id}`.
pub(crate) fn event_get(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&["$select"])?;
    let select = query::select(&ctx.query, convert::EVENT_PROPERTIES, "event")?;
    let (n, c) = stored_event(&g.exchange.lock(), ctx, id)?;
    let value = query::project(
        event_value(g, ctx, &ctx.mailbox, n, &c),
        select.as_deref(),
        &[],
    );
    Ok(Reply::ok(with_context(value, ctx, "events")))
}

/// `POST /users/{id}/events`: 201; a `transactionId` seen before returns that event.
pub(crate) fn event_create(g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query.only(&[])?;
    let request: gm::Event = ctx.json("event")?;
    let mailbox_key = ctx.mailbox.to_ascii_lowercase();
    if let Some(tx) = &request.transaction_id {
        let known = g
            .lock()
            .transactions
            .get(&(mailbox_key.clone(), tx.clone()))
            .copied();
        if let Some(n) = known {
            let inner = g.exchange.lock();
            if let Some((_, s)) = inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) {
                if let Item::CalendarItem(c) = &s.item {
                    let value = event_value(g, ctx, &ctx.mailbox, n, c);
                    return Ok(Reply::created(with_context(value, ctx, "events")));
                }
            }
        }
    }
    if request.start.is_none() || request.end.is_none() {
        return Err(GraphErr::invalid_request(
            "An event needs a start and an end.",
        ));
    }
    let mut c = CalendarItem::default();
    convert::apply_event(&mut c, &request)?;
    c.organizer = Some(exsync_ews::types::EmailAddress::new(None, &ctx.mailbox));
    c.uid = Some(uuid::Uuid::new_v4().to_string());
    let invite = c
        .required_attendees
        .iter()
        .any(|a| !a.address.eq_ignore_ascii_case(&ctx.mailbox));
    c.meeting_request_was_sent = Some(invite);
    let item = Item::CalendarItem(c);
    let n = {
        let mut inner = g.exchange.lock();
        quota_exceeded(&inner, &ctx.mailbox)?;
        let id = inner
            .insert_item(
                &ctx.mailbox,
                DistinguishedFolderName::Calendar,
                item.clone(),
            )
            .map_err(|e| GraphErr::invalid_request(e.to_string()))?;
        if invite {
            inner
                .deliver_invitations(&ctx.mailbox, &item)
                .map_err(|e| GraphErr::invalid_request(e.to_string()))?;
        }
        created_number(&id)?
    };
    if let Some(tx) = &request.transaction_id {
        let mut graph = g.lock();
        graph.transactions.insert((mailbox_key, tx.clone()), n);
        graph.transaction_of.insert(n, tx.clone());
    }
    let (n, c) = {
        let inner = g.exchange.lock();
        let id = ids::rest_id(&ctx.mailbox, n, true);
        stored_event(&inner, ctx, &id)?
    };
    let value = event_value(g, ctx, &ctx.mailbox, n, &c);
    Ok(Reply::created(with_context(value, ctx, "events")))
}

/// `PATCH /users/{id}/events/{id}`.
pub(crate) fn event_update(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    let patch: gm::Event = ctx.json("event")?;
    if patch.transaction_id.is_some() {
        return Err(GraphErr::invalid_request(
            "transactionId cannot be changed after the event is created.",
        ));
    }
    let (n, current) = {
        let mut inner = g.exchange.lock();
        let (n, c) = stored_event(&inner, ctx, id)?;
        check_if_match(ctx, &Item::CalendarItem(c.clone()))?;
        quota_exceeded(&inner, &ctx.mailbox)?;
        // Checked on a copy first, so a refused patch changes nothing.
        let mut trial = c;
        convert::apply_event(&mut trial, &patch)?;
        inner.update_item(&ctx.mailbox, n, false, |item| {
            if let Item::CalendarItem(c) = item {
                let _ = convert::apply_event(c, &patch);
            }
        });
        stored_event(&inner, ctx, id)?
    };
    let value = event_value(g, ctx, &ctx.mailbox, n, &current);
    Ok(Reply::ok(with_context(value, ctx, "events")))
}

// --- contacts -----------------------------------------------------------------------------

/// The contact folder a name or id names (the default folder only).
pub(crate) fn contact_folder(mailbox: &str, name: &str) -> Result<(), GraphErr> {
    if name.eq_ignore_ascii_case("contacts") {
        return Ok(());
    }
    match parse_folder_id(name) {
        Some((address, DistinguishedFolderName::Contacts))
            if address.eq_ignore_ascii_case(mailbox) =>
        {
            Ok(())
        }
        Some(_) => Err(GraphErr::item_not_found()),
        None => Err(GraphErr::malformed_id()),
    }
}

fn stored_contact(inner: &Inner, ctx: &Ctx, id: &str) -> Result<(u64, Contact), GraphErr> {
    let (_, n) = locate(inner, &ctx.mailbox, id)?;
    match inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) {
        Some((_, s)) => match &s.item {
            Item::Contact(c) => Ok((n, c.clone())),
            _ => Err(GraphErr::item_not_found()),
        },
        None => Err(GraphErr::item_not_found()),
    }
}

fn contact_value(ctx: &Ctx, n: u64, c: &Contact) -> Value {
    contact_value_expanded(ctx, n, c, None)
}

fn contact_value_expanded(
    ctx: &Ctx,
    n: u64,
    c: &Contact,
    expand: Option<&exsync_ews::extended::ExtendedFieldUri>,
) -> Value {
    let mut shown = view(ctx, &ctx.mailbox, DistinguishedFolderName::Contacts, n);
    shown.expand = expand;
    to_json(&convert::contact(c, &shown))
}

/// The only `$filter` a contact listing evaluates: exsync's create key, the
/// `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')` shape Graph
/// documents for extended properties (GD-XPROP). Anything else is refused, never ignored.
fn contact_filter(raw: &str) -> Result<Vec<query::Clause>, GraphErr> {
    let clauses = query::parse_filter(raw)?;
    if clauses
        .iter()
        .all(|c| matches!(c, query::Clause::ExtendedProperty { .. }))
    {
        Ok(clauses)
    } else {
        Err(GraphErr::bad_request(format!(
            "The fake Graph filters contacts only by a single-value extended property: {raw}"
        )))
    }
}

fn contact_matches(c: &Contact, clauses: &[query::Clause]) -> bool {
    clauses.iter().all(|clause| match clause {
        query::Clause::ExtendedProperty { field, value } => {
            c.base.extended_properties.iter().any(|p| {
                query::same_property(&p.field, field)
                    && p.value
                        .first()
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
        }
        _ => false,
    })
}

/// `GET /users/{id}/contacts`, optionally filtered by one extended property and `$expand`ing
/// one.
pub(crate) fn contact_list(g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query
        .only(&["$select", "$filter", "$expand", "$top", "$skip"])?;
    let select = query::select(&ctx.query, convert::CONTACT_PROPERTIES, "contact")?;
    let expand = query::expand(&ctx.query)?;
    let clauses = match ctx.query.get("$filter") {
        Some(raw) => contact_filter(raw)?,
        None => Vec::new(),
    };
    let values: Vec<Value> = {
        let inner = g.exchange.lock();
        let mailbox = inner
            .mailbox(&ctx.mailbox)
            .ok_or_else(GraphErr::item_not_found)?;
        let Some(data) = mailbox.folder(DistinguishedFolderName::Contacts) else {
            return Err(GraphErr::item_not_found());
        };
        data.items
            .iter()
            .filter_map(|(n, s)| match &s.item {
                Item::Contact(c) if contact_matches(c, &clauses) => Some(query::project(
                    contact_value_expanded(ctx, *n, c, expand.as_ref()),
                    select.as_deref(),
                    &[],
                )),
                _ => None,
            })
            .collect()
    };
    list_page(g, ctx, "contact", values)
}

/// `GET /users/{id}/contacts/{id}`, optionally `$expand`ing one extended property.
pub(crate) fn contact_get(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&["$select", "$expand"])?;
    let select = query::select(&ctx.query, convert::CONTACT_PROPERTIES, "contact")?;
    let expand = query::expand(&ctx.query)?;
    let (n, c) = stored_contact(&g.exchange.lock(), ctx, id)?;
    let value = query::project(
        contact_value_expanded(ctx, n, &c, expand.as_ref()),
        select.as_deref(),
        &[],
    );
    Ok(Reply::ok(with_context(value, ctx, "contacts")))
}

/// `POST /users/{id}/contacts`: 201.
pub(crate) fn contact_create(g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query.only(&[])?;
    let request: gm::Contact = ctx.json("contact")?;
    let mut c = Contact::default();
    convert::apply_contact(&mut c, &request)?;
    let mut inner = g.exchange.lock();
    quota_exceeded(&inner, &ctx.mailbox)?;
    let id = inner
        .insert_item(
            &ctx.mailbox,
            DistinguishedFolderName::Contacts,
            Item::Contact(c),
        )
        .map_err(|e| GraphErr::invalid_request(e.to_string()))?;
    let n = created_number(&id)?;
    let rest = ids::rest_id(&ctx.mailbox, n, true);
    let (n, c) = stored_contact(&inner, ctx, &rest)?;
    // Graph answers the created contact without the extended properties it was given
    // (Microsoft's "Create single-value extended property" page); a client reads them
    // with `$expand`.
    Ok(Reply::created(with_context(
        contact_value(ctx, n, &c),
        ctx,
        "contacts",
    )))
}

/// `PATCH /users/{id}/contacts/{id}`.
pub(crate) fn contact_update(g: &GraphState, ctx: &Ctx, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    let patch: gm::Contact = ctx.json("contact")?;
    let mut inner = g.exchange.lock();
    let (n, c) = stored_contact(&inner, ctx, id)?;
    check_if_match(ctx, &Item::Contact(c.clone()))?;
    quota_exceeded(&inner, &ctx.mailbox)?;
    // Checked on a copy first, so a refused patch changes nothing.
    let mut trial = c;
    convert::apply_contact(&mut trial, &patch)?;
    let mut failure = None;
    inner.update_item(&ctx.mailbox, n, false, |item| {
        if let Item::Contact(c) = item {
            if let Err(e) = convert::apply_contact(c, &patch) {
                failure = Some(e);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let (n, c) = stored_contact(&inner, ctx, id)?;
    Ok(Reply::ok(with_context(
        contact_value(ctx, n, &c),
        ctx,
        "contacts",
    )))
}

// --- To Do --------------------------------------------------------------------------------

fn default_list_id(mailbox: &str) -> String {
    folder_id_string(
        &mailbox.to_ascii_lowercase(),
        DistinguishedFolderName::Tasks,
    )
}

/// The To Do list an id names (the default "Tasks" list, the mailbox's Tasks folder).
pub(crate) fn todo_list_folder(mailbox: &str, list: &str) -> Result<(), GraphErr> {
    match parse_folder_id(list) {
        Some((address, DistinguishedFolderName::Tasks))
            if address.eq_ignore_ascii_case(mailbox) =>
        {
            Ok(())
        }
        _ => Err(GraphErr::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified list was not found.",
        )),
    }
}

fn default_list(mailbox: &str) -> gm::TodoTaskList {
    gm::TodoTaskList {
        id: Some(default_list_id(mailbox)),
        removed: None,
        display_name: Some("Tasks".into()),
        is_owner: Some(true),
        is_shared: Some(false),
        wellknown_list_name: Some(gm::WellknownListName::DefaultList),
    }
}

/// `GET /users/{id}/todo/lists`.
pub(crate) fn todo_lists(_g: &GraphState, ctx: &Ctx) -> OpResult {
    ctx.query.only(&[])?;
    Ok(Reply::ok(json!({
        "@odata.context": format!("{}/$metadata#users('{}')/todo/lists", ctx.base, ctx.mailbox),
        "value": [to_json(&default_list(&ctx.mailbox))],
    })))
}

/// `GET /users/{id}/todo/lists/{id}`.
pub(crate) fn todo_list(_g: &GraphState, ctx: &Ctx, list: &str) -> OpResult {
    ctx.query.only(&[])?;
    todo_list_folder(&ctx.mailbox, list)?;
    Ok(Reply::ok(with_context(
        to_json(&default_list(&ctx.mailbox)),
        ctx,
        "todo/lists",
    )))
}

fn stored_task(inner: &Inner, ctx: &Ctx, id: &str) -> Result<(u64, Task), GraphErr> {
    let (address, n) = ids::parse_todo_task_id(id).ok_or_else(GraphErr::malformed_id)?;
    if !address.eq_ignore_ascii_case(&ctx.mailbox) {
        return Err(GraphErr::item_not_found());
    }
    match inner.mailbox(&ctx.mailbox).and_then(|m| m.item(n)) {
        Some((DistinguishedFolderName::Tasks, s)) => match &s.item {
            Item::Task(t) => Ok((n, t.clone())),
            _ => Err(GraphErr::item_not_found()),
        },
        _ => Err(GraphErr::item_not_found()),
    }
}

fn task_value(ctx: &Ctx, n: u64, t: &Task) -> Value {
    to_json(&convert::todo_task(t, &ctx.mailbox, n))
}

/// `GET /users/{id}/todo/lists/{id}/tasks`.
pub(crate) fn task_list(g: &GraphState, ctx: &Ctx, list: &str) -> OpResult {
    ctx.query.only(&["$select", "$top", "$skip"])?;
    todo_list_folder(&ctx.mailbox, list)?;
    let select = query::select(&ctx.query, convert::TODO_TASK_PROPERTIES, "todoTask")?;
    let values: Vec<Value> = {
        let inner = g.exchange.lock();
        let mailbox = inner
            .mailbox(&ctx.mailbox)
            .ok_or_else(GraphErr::item_not_found)?;
        let Some(data) = mailbox.folder(DistinguishedFolderName::Tasks) else {
            return Err(GraphErr::item_not_found());
        };
        data.items
            .iter()
            .filter_map(|(n, s)| match &s.item {
                Item::Task(t) => Some(query::project(
                    task_value(ctx, *n, t),
                    select.as_deref(),
                    &[],
                )),
                _ => None,
            })
            .collect()
    };
    list_page(g, ctx, "todoTask", values)
}

/// `GET /users/{id}/todo/lists/{id}/tasks/{id}`.
pub(crate) fn task_get(g: &GraphState, ctx: &Ctx, list: &str, id: &str) -> OpResult {
    ctx.query.only(&["$select"])?;
    todo_list_folder(&ctx.mailbox, list)?;
    let select = query::select(&ctx.query, convert::TODO_TASK_PROPERTIES, "todoTask")?;
    let (n, t) = stored_task(&g.exchange.lock(), ctx, id)?;
    let value = query::project(task_value(ctx, n, &t), select.as_deref(), &[]);
    Ok(Reply::ok(with_context(value, ctx, "todo/lists/tasks")))
}

/// `POST /users/{id}/todo/lists/{id}/tasks`: 201.
pub(crate) fn task_create(g: &GraphState, ctx: &Ctx, list: &str) -> OpResult {
    ctx.query.only(&[])?;
    todo_list_folder(&ctx.mailbox, list)?;
    let request: gm::TodoTask = ctx.json("todoTask")?;
    if request.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(GraphErr::invalid_request("A task needs a title."));
    }
    let mut t = Task::default();
    convert::apply_todo_task(&mut t, &request)?;
    t.status
        .get_or_insert(exsync_ews::types::TaskStatus::NotStarted);
    t.base.date_time_received = Some(exsync_ews::types::whole_seconds(Utc::now()));
    let mut inner = g.exchange.lock();
    quota_exceeded(&inner, &ctx.mailbox)?;
    let id = inner
        .insert_item(&ctx.mailbox, DistinguishedFolderName::Tasks, Item::Task(t))
        .map_err(|e| GraphErr::invalid_request(e.to_string()))?;
    let n = created_number(&id)?;
    let (n, t) = stored_task(&inner, ctx, &ids::todo_task_id(&ctx.mailbox, n))?;
    Ok(Reply::created(with_context(
        task_value(ctx, n, &t),
        ctx,
        "todo/lists/tasks",
    )))
}

/// `PATCH /users/{id}/todo/lists/{id}/tasks/{id}`.
pub(crate) fn task_update(g: &GraphState, ctx: &Ctx, list: &str, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    todo_list_folder(&ctx.mailbox, list)?;
    let patch: gm::TodoTask = ctx.json("todoTask")?;
    let mut inner = g.exchange.lock();
    let (n, t) = stored_task(&inner, ctx, id)?;
    check_if_match(ctx, &Item::Task(t.clone()))?;
    quota_exceeded(&inner, &ctx.mailbox)?;
    // Checked on a copy first, so a refused patch changes nothing.
    let mut trial = t;
    convert::apply_todo_task(&mut trial, &patch)?;
    let mut failure = None;
    inner.update_item(&ctx.mailbox, n, false, |item| {
        if let Item::Task(t) = item {
            if let Err(e) = convert::apply_todo_task(t, &patch) {
                failure = Some(e);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let (n, t) = stored_task(&inner, ctx, id)?;
    Ok(Reply::ok(with_context(
        task_value(ctx, n, &t),
        ctx,
        "todo/lists/tasks",
    )))
}

/// `DELETE /users/{id}/todo/lists/{id}/tasks/{id}`: 204.
pub(crate) fn task_delete(g: &GraphState, ctx: &Ctx, list: &str, id: &str) -> OpResult {
    ctx.query.only(&[])?;
    todo_list_folder(&ctx.mailbox, list)?;
    let mut inner = g.exchange.lock();
    let (n, t) = stored_task(&inner, ctx, id)?;
    check_if_match(ctx, &Item::Task(t))?;
    inner.remove_item(&ctx.mailbox, n);
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

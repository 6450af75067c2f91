//! Delta queries over the fake Exchange's per-folder change logs (GD-DQO, GD-DQM, GD-EDELTA,
//! GD-CDELTA, GD-TDELTA): messages per mail folder, events in a calendar window, contacts,
//! To Do tasks.
//!
//! Owns the delta tokens: opaque random strings naming a stored position and the round's
//! options (set once on the first call, GD-DQM), kept per mailbox up to a bound and then
//! evicted oldest first (Graph's cache), forgotten on demand, and invalidated when the mailbox's
//! sync states are reset. An evicted, forgotten or unknown token answers `410 Gone`
//! `SyncStateNotFound` (or `400 syncStateNotFound`, `GraphFaults::delta_expiry`). Pages follow
//! the change log; a first round lists what exists now; removals carry only `id` and
//! `@removed`; items can be replayed across pages (Graph allows it).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use http::StatusCode;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::convert::{self, View};
use super::ids;
use super::query::{self, Clause, Cmp};
use super::routes::Ctx;
use super::wire::{to_json, GraphErr, OpResult, Reply};
use super::{DeltaExpiryShape, GraphState};
use crate::state::NetChange;
use exsync_ews::extended::ExtendedFieldUri;
use exsync_ews::types::{DistinguishedFolderName, Item};

/// What a delta round walks through.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resource {
    /// Messages of one mail folder.
    Messages(DistinguishedFolderName),
    /// Events overlapping a window (`calendarView/delta`).
    Events {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Contacts of the default folder.
    Contacts,
    /// Tasks of the default To Do list.
    Tasks,
}

impl Resource {
    fn folder(&self) -> DistinguishedFolderName {
        match self {
            Resource::Messages(f) => *f,
            Resource::Events { .. } => DistinguishedFolderName::Calendar,
            Resource::Contacts => DistinguishedFolderName::Contacts,
            Resource::Tasks => DistinguishedFolderName::Tasks,
        }
    }

    fn odata_type(&self) -> &'static str {
        match self {
            Resource::Messages(_) => "#microsoft.graph.message",
            Resource::Events { .. } => "#microsoft.graph.event",
            Resource::Contacts => "#microsoft.graph.contact",
            Resource::Tasks => "#microsoft.graph.todoTask",
        }
    }
}

/// A round's position and options, named by a token.
#[derive(Debug, Clone)]
pub(crate) struct DeltaState {
    /// Mailbox key (lowercase).
    pub(crate) mailbox: String,
    /// The delta path (`users/…/mailFolders/inbox/messages/delta`), for links.
    pub(crate) path: String,
    pub(crate) resource: Resource,
    /// The mailbox's sync-state epoch when the round started.
    pub(crate) epoch: u64,
    /// Change-log position.
    pub(crate) since: u64,
    pub(crate) select: Option<Vec<String>>,
    pub(crate) received: Vec<(Cmp, DateTime<Utc>)>,
    pub(crate) change_type: Option<String>,
    pub(crate) expand: Option<ExtendedFieldUri>,
    /// Items this round has returned so far (a filtered round stops at
    /// `GraphFaults::filtered_round_limit`, GD-MDELTA).
    pub(crate) delivered: usize,
}

/// Issued tokens, per mailbox in issue order.
#[derive(Default)]
pub(crate) struct DeltaTokens {
    states: HashMap<String, DeltaState>,
    order: HashMap<String, VecDeque<String>>,
}

impl DeltaTokens {
    fn issue(&mut self, state: DeltaState, max_per_mailbox: usize) -> String {
        let bytes: [u8; 24] = rand::thread_rng().gen();
        let token =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        let order = self.order.entry(state.mailbox.clone()).or_default();
        order.push_back(token.clone());
        while order.len() > max_per_mailbox {
            if let Some(old) = order.pop_front() {
                self.states.remove(&old);
            }
        }
        self.states.insert(token.clone(), state);
        token
    }

    fn get(&self, token: &str) -> Option<DeltaState> {
        self.states.get(token).cloned()
    }

    /// Forget a mailbox's tokens; how many there were.
    pub(crate) fn expire_mailbox(&mut self, mailbox: &str) -> usize {
        let tokens = self.order.remove(mailbox).unwrap_or_default();
        for t in &tokens {
            self.states.remove(t);
        }
        tokens.len()
    }
}

/// The answer for an expired or unknown token.
fn expired(g: &GraphState, ctx: &Ctx, path: &str) -> GraphErr {
    match g.faults().delta_expiry {
        DeltaExpiryShape::Gone410 => GraphErr::new(
            StatusCode::GONE,
            "SyncStateNotFound",
            "The sync state for this delta token is gone; start a new round.",
        )
        .header("Location", format!("{}/{path}", ctx.base)),
        DeltaExpiryShape::BadRequest400 => GraphErr::new(
            StatusCode::BAD_REQUEST,
            "syncStateNotFound",
            "The delta token has expired; start a new round.",
        ),
    }
}

/// The options of a first call, checked for the resource (what each delta accepts).
pub(crate) fn first_call(
    g: &GraphState,
    ctx: &Ctx,
    path: &str,
    resource: Resource,
) -> Result<DeltaState, GraphErr> {
    let q = &ctx.query;
    let mut state = DeltaState {
        mailbox: ctx.mailbox.to_ascii_lowercase(),
        path: path.to_owned(),
        resource: resource.clone(),
        epoch: 0,
        since: 0,
        select: None,
        received: Vec::new(),
        change_type: None,
        expand: None,
        delivered: 0,
    };
    match &resource {
        Resource::Messages(_) => {
            q.only(&[
                "$select",
                "$filter",
                "$orderby",
                "$top",
                "$expand",
                "changeType",
            ])?;
            state.select = query::select(q, convert::MESSAGE_PROPERTIES, "message")?;
            state.expand = query::expand(q)?;
            if let Some(raw) = q.get("$filter") {
                for clause in query::parse_filter(raw)? {
                    match clause {
                        Clause::Received(op @ (Cmp::Ge | Cmp::Gt), at) => {
                            state.received.push((op, at))
                        }
                        _ => return Err(GraphErr::bad_request(
                            "A message delta accepts only $filter=receivedDateTime ge|gt {value}.",
                        )),
                    }
                }
            }
            if let Some(order) = q.get("$orderby") {
                if !order.trim().eq_ignore_ascii_case("receivedDateTime desc") {
                    return Err(GraphErr::bad_request(
                        "A message delta accepts only $orderby=receivedDateTime desc.",
                    ));
                }
            }
            if let Some(kind) = q.get("changeType") {
                if !["created", "updated", "deleted"].contains(&kind) {
                    return Err(GraphErr::bad_request(format!(
                        "changeType must be created, updated or deleted, not '{kind}'."
                    )));
                }
                state.change_type = Some(kind.to_owned());
            }
        }
        Resource::Events { .. } => {
            q.only(&["startDateTime", "endDateTime"])?;
        }
        Resource::Contacts => {
            q.only(&["$select", "changeType"])?;
            state.select = query::select(q, convert::CONTACT_PROPERTIES, "contact")?;
        }
        Resource::Tasks => {
            q.only(&["$select", "$top"])?;
            state.select = query::select(q, convert::TODO_TASK_PROPERTIES, "todoTask")?;
        }
    }
    let exchange = g.exchange.lock();
    let mailbox = exchange
        .mailbox(&ctx.mailbox)
        .ok_or_else(GraphErr::item_not_found)?;
    state.epoch = mailbox.epoch;
    Ok(state)
}

/// A later call: the state its `$skiptoken` / `$deltatoken` names.
pub(crate) fn follow(g: &GraphState, ctx: &Ctx, path: &str) -> Result<DeltaState, GraphErr> {
    let token = ctx
        .query
        .get("$deltatoken")
        .or_else(|| ctx.query.get("$skiptoken"))
        .unwrap_or_default();
    for name in ctx.query.names() {
        let bare = name.trim_start_matches('$');
        if !bare.eq_ignore_ascii_case("deltatoken") && !bare.eq_ignore_ascii_case("skiptoken") {
            return Err(GraphErr::bad_request(format!(
                "Query options are set on the first call of a round; '{name}' is not allowed with a delta token."
            )));
        }
    }
    let state = g.lock().deltas.get(token);
    match state {
        Some(s) if s.mailbox == ctx.mailbox.to_ascii_lowercase() && s.path == path => Ok(s),
        _ => Err(expired(g, ctx, path)),
    }
}

/// Whether a round is being followed (the request carries a token).
pub(crate) fn has_token(ctx: &Ctx) -> bool {
    ctx.query.get("$deltatoken").is_some() || ctx.query.get("$skiptoken").is_some()
}

/// One page of a round from `state`.
pub(crate) fn page(g: &GraphState, ctx: &Ctx, state: DeltaState) -> OpResult {
    let faults = g.faults();
    let size = ctx
        .prefer
        .max_page_size
        .or_else(|| ctx.query.get("$top").and_then(|t| t.parse().ok()))
        .unwrap_or(faults.default_page_size)
        .clamp(1, faults.max_page_size);
    let (entries, position, last) = {
        let exchange = g.exchange.lock();
        let mailbox = exchange
            .mailbox(&ctx.mailbox)
            .ok_or_else(GraphErr::item_not_found)?;
        if mailbox.epoch != state.epoch {
            drop(exchange);
            return Err(expired(g, ctx, &state.path));
        }
        let folder = state.resource.folder();
        let data = mailbox
            .folder(folder)
            .ok_or_else(GraphErr::item_not_found)?;
        let (changes, mut position, mut last) = data.changes_since(
            state.since,
            usize::try_from(size).unwrap_or(usize::MAX),
            &Default::default(),
        );
        let transactions = g.lock().transaction_of.clone();
        let mut entries = Vec::new();
        for change in changes {
            let (n, kind) = match change {
                NetChange::Create(n) => (n, "created"),
                NetChange::Update(n) | NetChange::ReadFlag(n) => (n, "updated"),
                NetChange::Delete(n) => (n, "deleted"),
            };
            if state.change_type.as_deref().is_some_and(|t| t != kind) {
                continue;
            }
            let stored = if kind == "deleted" {
                None
            } else {
                match data.items.get(&n) {
                    Some(s) => Some(&s.item),
                    // Gone since: its removal comes on a later page.
                    None => continue,
                }
            };
            let entry = match stored {
                None => vec![removed(
                    &state.resource,
                    &mailbox.address,
                    n,
                    ctx.prefer.immutable,
                )],
                Some(item) => render(
                    &state,
                    ctx,
                    &mailbox.address,
                    n,
                    item,
                    kind,
                    transactions.get(&n).cloned(),
                ),
            };
            entries.extend(entry);
        }
        // With a filter Graph returns at most so many messages in a round (GD-MDELTA): the
        // round ends there, and its delta link continues after everything that exists now.
        if !state.received.is_empty() {
            let room = faults.filtered_round_limit.saturating_sub(state.delivered);
            let changed = |v: &Value| v.get("@removed").is_none();
            if entries.iter().filter(|v| changed(v)).count() >= room {
                let mut kept = 0;
                entries.retain(|v| {
                    if !changed(v) {
                        return true;
                    }
                    kept += 1;
                    kept <= room
                });
                position = data.seq;
                last = true;
            }
        }
        (entries, position, last)
    };
    let returned = entries
        .iter()
        .filter(|v| v.get("@removed").is_none())
        .count();
    let next = DeltaState {
        since: position,
        // A new round counts from zero.
        delivered: if last { 0 } else { state.delivered + returned },
        ..state.clone()
    };
    let token = g
        .lock()
        .deltas
        .issue(next, faults.max_delta_tokens_per_mailbox);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}/$metadata#Collection({})",
            ctx.base,
            context_type(&state.resource)
        )),
    );
    body.insert("value".into(), Value::Array(entries));
    if last {
        body.insert(
            "@odata.deltaLink".into(),
            Value::String(format!("{}/{}?$deltatoken={token}", ctx.base, state.path)),
        );
    } else {
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{}/{}?$skiptoken={token}", ctx.base, state.path)),
        );
    }
    let mut reply = Reply::ok(Value::Object(body));
    if let Some(n) = ctx.prefer.max_page_size {
        reply = reply.header(
            "Preference-Applied",
            format!("odata.maxpagesize={}", n.min(faults.max_page_size)),
        );
    }
    Ok(reply)
}

fn context_type(resource: &Resource) -> &'static str {
    match resource {
        Resource::Messages(_) => "message",
        Resource::Events { .. } => "event",
        Resource::Contacts => "contact",
        Resource::Tasks => "todoTask",
    }
}

fn removed(resource: &Resource, address: &str, n: u64, immutable: bool) -> Value {
    let id = match resource {
        Resource::Tasks => ids::todo_task_id(address, n),
        _ => ids::rest_id(address, n, immutable),
    };
    json!({
        "@odata.type": resource.odata_type(),
        "id": id,
        "@removed": {"reason": "deleted"},
    })
}

/// The entries an item gives a page (none when the round's options leave it out; a series
/// gives its master and its occurrences in the window).
fn render(
    state: &DeltaState,
    ctx: &Ctx,
    address: &str,
    n: u64,
    item: &Item,
    kind: &str,
    transaction_id: Option<String>,
) -> Vec<Value> {
    render_one(state, ctx, address, n, item, kind, transaction_id)
        .map(
            |first| match (&state.resource, item, first.get("@removed")) {
                (Resource::Events { start, end }, Item::CalendarItem(c), None) => {
                    let mut all = vec![first.clone()];
                    if let (Some(recurrence), Some(s), Some(e)) = (&c.recurrence, c.start, c.end) {
                        let master = ids::rest_id(address, n, ctx.prefer.immutable);
                        for (begins, ends) in
                            super::series::occurrences(recurrence, s, e, *start, *end)
                        {
                            all.push(json!({
                            "@odata.type": "#microsoft.graph.event",
                            "@odata.etag": first.get("@odata.etag").cloned().unwrap_or(Value::Null),
                            "id": ids::occurrence_id(address, n, begins),
                            "seriesMasterId": master,
                            "type": "occurrence",
                            "start": to_json(&exsync_graph::model::DateTimeTimeZone::utc(begins)),
                            "end": to_json(&exsync_graph::model::DateTimeTimeZone::utc(ends)),
                        }));
                        }
                    }
                    all
                }
                _ => vec![first],
            },
        )
        .unwrap_or_default()
}

/// One item's own entry.
fn render_one(
    state: &DeltaState,
    ctx: &Ctx,
    address: &str,
    n: u64,
    item: &Item,
    kind: &str,
    transaction_id: Option<String>,
) -> Option<Value> {
    let view = View {
        address,
        n,
        folder: state.resource.folder(),
        immutable: ctx.prefer.immutable,
        body_type: ctx.prefer.body_type,
        expand: state.expand.as_ref(),
    };
    match (&state.resource, item) {
        (Resource::Messages(_), Item::Message(m)) => {
            let received = m.base.date_time_received.or(m.base.date_time_created)?;
            if !state
                .received
                .iter()
                .all(|(op, at)| op.holds(&received, at))
            {
                return None;
            }
            Some(query::project(
                to_json(&convert::message(m, &view)),
                state.select.as_deref(),
                convert::MESSAGE_ON_REQUEST,
            ))
        }
        (Resource::Events { start, end }, Item::CalendarItem(c)) => {
            let inside = match (&c.recurrence, c.start, c.end) {
                (Some(r), Some(s), Some(e)) => {
                    !super::series::occurrences(r, s, e, *start, *end).is_empty()
                }
                (None, Some(s), Some(e)) => s < *end && e > *start,
                _ => false,
            };
            if !inside {
                // A change outside the window is reported as a removal (GD-EDELTA, I-CAL6599);
                // in a first round it is simply not there.
                return (state.since > 0 && kind != "created")
                    .then(|| removed(&state.resource, address, n, ctx.prefer.immutable));
            }
            Some(to_json(&convert::event(c, &view, transaction_id)))
        }
        (Resource::Contacts, Item::Contact(c)) => Some(query::project(
            to_json(&convert::contact(c, &view)),
            state.select.as_deref(),
            &[],
        )),
        (Resource::Tasks, Item::Task(t)) => Some(query::project(
            to_json(&convert::todo_task(t, address, n)),
            state.select.as_deref(),
            &[],
        )),
        // An item of another kind in the folder (EWS allows it): not part of this resource.
        _ => None,
    }
}

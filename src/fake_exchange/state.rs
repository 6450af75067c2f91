//! The fake Exchange's memory: accounts (users and OAuth apps), rights, mailboxes with their
//! distinguished folders, items with ids and change keys, per-folder change logs behind the sync
//! state tokens, throttling bookkeeping and the statistics `/_fake/stats` reports.
//!
//! Owns the data and its invariants (ids encode their mailbox, change keys change on every
//! update, every change is logged). It knows nothing of HTTP or XML.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::ews::ops::subscribe::EventType;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{FakeError, Faults, FaultsPatch};
use crate::ews::recurrence::Recurrence;
use crate::ews::types::{
    whole_seconds, Body, BodyType, CalendarItem, CalendarItemKind, Contact,
    DistinguishedFolderName, EmailAddress, FolderId, Item, ItemBase, ItemId, Message, ResponseType,
    Task, TaskStatus,
};
use crate::ews::xml::XmlLimits;

type HmacSha256 = Hmac<Sha256>;

/// The folders every fake mailbox has (msgfolderroot holds the others and no items).
pub const MAILBOX_FOLDERS: [DistinguishedFolderName; 11] = [
    DistinguishedFolderName::Inbox,
    DistinguishedFolderName::SentItems,
    DistinguishedFolderName::Drafts,
    DistinguishedFolderName::DeletedItems,
    DistinguishedFolderName::Outbox,
    DistinguishedFolderName::Calendar,
    DistinguishedFolderName::Contacts,
    DistinguishedFolderName::Tasks,
    DistinguishedFolderName::JunkEmail,
    DistinguishedFolderName::MsgFolderRoot,
    DistinguishedFolderName::Root,
];

/// The folder an item kind is created in when no folder is named.
pub fn default_folder(item: &Item) -> DistinguishedFolderName {
    match item {
        Item::Message(_) => DistinguishedFolderName::Drafts,
        Item::CalendarItem(_) => DistinguishedFolderName::Calendar,
        Item::Contact(_) => DistinguishedFolderName::Contacts,
        Item::Task(_) => DistinguishedFolderName::Tasks,
    }
}

/// A user login or an OAuth application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Signs in with Basic (user name and password).
    User,
    /// Signs in with OAuth2 client credentials (Bearer tokens), app-only.
    App,
}

/// One login the fake knows.
pub(crate) struct Account {
    pub(crate) username: String,
    pub(crate) password: SecretString,
    pub(crate) expired: bool,
    pub(crate) kind: AccountKind,
    pub(crate) address: Option<String>,
    pub(crate) impersonate_all: bool,
    pub(crate) impersonate: BTreeSet<String>,
    pub(crate) delegate: BTreeSet<String>,
    /// Mailboxes this account may send as (From = the mailbox, Sender = the mailbox).
    pub(crate) send_as: BTreeSet<String>,
    /// Mailboxes this account may send on behalf of (From = the mailbox, Sender = the account).
    pub(crate) send_on_behalf: BTreeSet<String>,
    pub(crate) not_before: Option<Instant>,
    pub(crate) in_flight: u32,
    /// An app's registered certificate (DER), for client assertions.
    pub(crate) certificate: Option<Vec<u8>>,
}

/// What one change-log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Create,
    Update,
    ReadFlag,
    Delete,
}

#[derive(Debug, Clone)]
pub(crate) struct ChangeEntry {
    pub(crate) seq: u64,
    pub(crate) item: u64,
    pub(crate) created_seq: u64,
    pub(crate) kind: ChangeKind,
}

/// An item as kept: the codec's item (id, change key and parent folder filled in).
#[derive(Debug, Clone)]
pub(crate) struct StoredItem {
    pub(crate) item: Item,
    pub(crate) created_seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct FolderData {
    pub(crate) seq: u64,
    pub(crate) items: BTreeMap<u64, StoredItem>,
    pub(crate) log: Vec<ChangeEntry>,
}

/// A net change SyncFolderItems reports for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetChange {
    Create(u64),
    Update(u64),
    ReadFlag(u64),
    Delete(u64),
}

impl FolderData {
    /// Net changes after `since`, at most `max` distinct items, in change order; the new
    /// position and whether it is the end of the log. Collapsing only within the window keeps
    /// the client's view equal to the folder as it was at the returned position.
    pub(crate) fn changes_since(
        &self,
        since: u64,
        max: usize,
        ignore: &BTreeSet<u64>,
    ) -> (Vec<NetChange>, u64, bool) {
        let start = self.log.partition_point(|e| e.seq <= since);
        let mut touched: Vec<u64> = Vec::new();
        let mut window: HashMap<u64, (u64, Vec<ChangeKind>, u64)> = HashMap::new();
        let mut end = since;
        for entry in &self.log[start..] {
            if !window.contains_key(&entry.item) {
                if touched.len() == max {
                    break;
                }
                touched.push(entry.item);
            }
            let slot =
                window
                    .entry(entry.item)
                    .or_insert((entry.created_seq, Vec::new(), entry.seq));
            slot.1.push(entry.kind);
            slot.2 = entry.seq;
            end = entry.seq;
        }
        let includes_last = end >= self.seq;
        let mut ordered: Vec<(u64, NetChange)> = Vec::new();
        for item in touched {
            if ignore.contains(&item) {
                continue;
            }
            let Some((created_seq, kinds, last)) = window.get(&item) else {
                continue;
            };
            let known_before = *created_seq <= since;
            let exists = kinds.last() != Some(&ChangeKind::Delete);
            let change = match (known_before, exists) {
                (false, false) => continue,
                (false, true) => NetChange::Create(item),
                (true, false) => NetChange::Delete(item),
                (true, true) if kinds.iter().all(|k| *k == ChangeKind::ReadFlag) => {
                    NetChange::ReadFlag(item)
                }
                (true, true) => NetChange::Update(item),
            };
            ordered.push((*last, change));
        }
        ordered.sort_by_key(|(seq, _)| *seq);
        (
            ordered.into_iter().map(|(_, c)| c).collect(),
            end.max(since),
            includes_last,
        )
    }
}

/// A mailbox with its distinguished folders.
pub(crate) struct Mailbox {
    pub(crate) address: String,
    pub(crate) epoch: u64,
    pub(crate) folders: HashMap<DistinguishedFolderName, FolderData>,
    pub(crate) locations: HashMap<u64, DistinguishedFolderName>,
    /// Items deleted from this mailbox (ids stay resolvable to "not found", not "malformed").
    pub(crate) gone: BTreeSet<u64>,
    /// Items deleted right after the next SyncFolderItems reports them (the race in which a
    /// client's GetItem then finds nothing).
    pub(crate) delete_after_sync: BTreeSet<u64>,
    /// Per-mailbox answers (`PUT /_fake/mailboxes/{address}/settings`).
    pub(crate) settings: MailboxSettings,
}

impl Mailbox {
    fn new(address: &str, epoch: u64) -> Self {
        Mailbox {
            address: address.to_owned(),
            epoch,
            folders: MAILBOX_FOLDERS
                .iter()
                .map(|f| (*f, FolderData::default()))
                .collect(),
            locations: HashMap::new(),
            gone: BTreeSet::new(),
            delete_after_sync: BTreeSet::new(),
            settings: MailboxSettings::default(),
        }
    }

    /// The folder's data (every distinguished folder the fake knows exists).
    pub(crate) fn folder(&self, name: DistinguishedFolderName) -> Option<&FolderData> {
        self.folders.get(&name)
    }

    /// The stored item `n`, wherever it is.
    pub(crate) fn item(&self, n: u64) -> Option<(DistinguishedFolderName, &StoredItem)> {
        let folder = *self.locations.get(&n)?;
        self.folders
            .get(&folder)?
            .items
            .get(&n)
            .map(|i| (folder, i))
    }
}

/// Counters per account, as `/_fake/stats` reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountStats {
    /// Authenticated EWS requests.
    pub requests: u64,
    /// Most EWS requests this account had in flight at once.
    pub peak_concurrent_requests: u64,
    /// Requests answered ErrorServerBusy.
    pub throttled: u64,
    /// Requests sent before a BackOffMilliseconds given to this account had elapsed.
    pub early_requests: u64,
    /// Failed sign-ins (wrong or expired password, bad client secret).
    pub failed_logins: u64,
    /// NTLM sign-ins refused for a missing or wrong channel binding (Extended Protection);
    /// the password was right, so they are not failed logins.
    #[serde(default)]
    pub channel_binding_failures: u64,
    /// Requests to the OAuth token endpoint for this application (client id), answered
    /// or not.
    #[serde(default)]
    pub token_requests: u64,
    /// Time this account's EWS requests spent in the server, summed, in microseconds: over a
    /// wall-clock interval, divided by its length, the average number in flight.
    #[serde(default)]
    pub request_micros: u64,
}

/// The whole `/_fake/stats` document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StatsSnapshot {
    /// Most EWS requests in flight at once, all accounts together.
    pub peak_concurrent_requests: u64,
    /// EWS requests per operation name.
    pub operations: BTreeMap<String, u64>,
    /// Counters per account user name (or OAuth client id).
    pub accounts: BTreeMap<String, AccountStats>,
    /// Item counts per mailbox address and folder name.
    pub mailboxes: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One line of the recent request log (`GET /_fake/requests`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestLogEntry {
    /// The EWS operation, when the request could be read.
    pub operation: Option<String>,
    /// Who signed in (user name or client id), when someone did.
    pub account: Option<String>,
    /// The impersonated address, if any.
    pub impersonated: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The EWS response code of the (first) answer, or the fault's code.
    pub response_code: Option<String>,
    /// The `client-request-id` the client sent, if any.
    #[serde(default)]
    pub client_request_id: Option<String>,
    /// The `request-id` the fake answered with (a fresh UUID per request).
    #[serde(default)]
    pub request_id: String,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) in_flight: u64,
    pub(crate) peak: u64,
    pub(crate) operations: BTreeMap<String, u64>,
    pub(crate) accounts: BTreeMap<String, AccountStats>,
}

pub(crate) struct Token {
    pub(crate) username: String,
    pub(crate) expires: Instant,
}

/// Everything behind the lock.
pub(crate) struct Inner {
    pub(crate) accounts: BTreeMap<String, Account>,
    pub(crate) mailboxes: BTreeMap<String, Mailbox>,
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) next_item: u64,
    pub(crate) next_change: u64,
    pub(crate) next_epoch: u64,
    pub(crate) stats: Stats,
    pub(crate) log: VecDeque<RequestLogEntry>,
    /// NTLM server challenges sent, per connection id, awaiting the AUTHENTICATE message.
    pub(crate) ntlm_pending: HashMap<u64, [u8; 8]>,
    /// Connections NTLM has authenticated, and as whom.
    pub(crate) ntlm_sessions: HashMap<u64, String>,
    /// The MsvAvChannelBindings an NTLM client must send (TLS only).
    pub(crate) channel_binding: Option<[u8; 16]>,
    /// How strictly the channel binding is checked.
    pub(crate) extended_protection: super::ExtendedProtection,
    /// Client assertion ids (`jti`) already used, with their expiry (Unix seconds).
    pub(crate) assertion_ids: HashMap<String, i64>,
    /// The token endpoint's own URL: the audience a client assertion must name.
    pub(crate) token_url: Option<String>,
    /// Streaming subscriptions, their events and open connections.
    pub(crate) streaming: super::streaming::Streaming,
}

const REQUEST_LOG_LEN: usize = 1000;

fn key(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl Inner {
    /// The account a user name (or DOMAIN\user, or a mailbox address) names.
    pub(crate) fn find_login(&self, login: &str) -> Option<&Account> {
        let name = login.rsplit('\\').next().unwrap_or(login);
        let k = key(name);
        self.accounts.get(&k).or_else(|| {
            self.accounts
                .values()
                .find(|a| a.address.as_deref().map(key).as_deref() == Some(k.as_str()))
        })
    }

    pub(crate) fn account_mut(&mut self, username: &str) -> Option<&mut Account> {
        self.accounts.get_mut(&key(username))
    }

    pub(crate) fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&key(address))
    }

    pub(crate) fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&key(address))
    }

    pub(crate) fn account_stats(&mut self, username: &str) -> &mut AccountStats {
        self.stats.accounts.entry(username.to_owned()).or_default()
    }

    pub(crate) fn record(&mut self, entry: RequestLogEntry) {
        if self.log.len() == REQUEST_LOG_LEN {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }

    fn new_change_key(&mut self) -> String {
        self.next_change += 1;
        URL_SAFE_NO_PAD.encode(format!("CK{:012}", self.next_change))
    }

    /// Store `item` in `folder` of `address` with a fresh id and change key; logs a Create.
    pub(crate) fn insert_item(
        &mut self,
        address: &str,
        folder: DistinguishedFolderName,
        mut item: Item,
    ) -> Result<ItemId, FakeError> {
        if self.mailbox(address).is_none() {
            return Err(FakeError::NotFound(format!("mailbox {address}")));
        }
        self.next_item += 1;
        let n = self.next_item;
        let change_key = self.new_change_key();
        let mailbox = self
            .mailbox_mut(address)
            .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))?;
        let id = ItemId::with_change_key(item_id_string(&mailbox.address, n), change_key);
        let now = whole_seconds(Utc::now());
        let class = default_item_class(&item);
        settle_calendar_item(&mut item, &mailbox.address);
        let base = item.base_mut();
        base.item_id = Some(id.clone());
        base.parent_folder_id = Some(FolderId::new(folder_id_string(&mailbox.address, folder)));
        base.date_time_created.get_or_insert(now);
        base.last_modified_time = Some(now);
        if base.item_class.is_none() {
            base.item_class = Some(class.to_owned());
        }
        // Server-assigned, like Exchange: the conversation an item belongs to and its size.
        base.conversation_id
            .get_or_insert_with(|| conversation_id(base.subject.as_deref()));
        let size = item_size(&item);
        item.base_mut().size = Some(size);
        let data = mailbox.folders.entry(folder).or_default();
        data.seq += 1;
        let seq = data.seq;
        data.items.insert(
            n,
            StoredItem {
                item,
                created_seq: seq,
            },
        );
        data.log.push(ChangeEntry {
            seq,
            item: n,
            created_seq: seq,
            kind: ChangeKind::Create,
        });
        mailbox.locations.insert(n, folder);
        let canonical = mailbox.address.clone();
        self.streaming.item_created(&canonical, folder, n);
        Ok(id)
    }

    /// Change item `n` of `address` with `edit`; a new change key; logs Update (or ReadFlag
    /// when `read_flag_only`). Returns the new id.
    pub(crate) fn update_item(
        &mut self,
        address: &str,
        n: u64,
        read_flag_only: bool,
        edit: impl FnOnce(&mut Item),
    ) -> Option<ItemId> {
        let change_key = self.new_change_key();
        let mailbox = self.mailbox_mut(address)?;
        let folder = *mailbox.locations.get(&n)?;
        let data = mailbox.folders.get_mut(&folder)?;
        let stored = data.items.get_mut(&n)?;
        edit(&mut stored.item);
        settle_calendar_item(&mut stored.item, &mailbox.address);
        let size = item_size(&stored.item);
        let base = stored.item.base_mut();
        base.size = Some(size);
        base.last_modified_time = Some(whole_seconds(Utc::now()));
        let id = base.item_id.as_mut()?;
        id.change_key = Some(change_key);
        let id = id.clone();
        let created_seq = stored.created_seq;
        data.seq += 1;
        data.log.push(ChangeEntry {
            seq: data.seq,
            item: n,
            created_seq,
            kind: if read_flag_only {
                ChangeKind::ReadFlag
            } else {
                ChangeKind::Update
            },
        });
        let canonical = mailbox.address.clone();
        self.streaming
            .item_event(&canonical, folder, EventType::Modified, n, None);
        Some(id)
    }

    /// Remove item `n` of `address`; logs a Delete. Returns the item as it was.
    pub(crate) fn remove_item(&mut self, address: &str, n: u64) -> Option<Item> {
        let mailbox = self.mailbox_mut(address)?;
        let folder = mailbox.locations.remove(&n)?;
        let data = mailbox.folders.get_mut(&folder)?;
        let stored = data.items.remove(&n)?;
        data.seq += 1;
        data.log.push(ChangeEntry {
            seq: data.seq,
            item: n,
            created_seq: stored.created_seq,
            kind: ChangeKind::Delete,
        });
        mailbox.gone.insert(n);
        let canonical = mailbox.address.clone();
        self.streaming
            .item_event(&canonical, folder, EventType::Deleted, n, None);
        Some(stored.item)
    }
}

impl Inner {
    /// A meeting message (request, cancellation, response) of class `class` from `from`,
    /// delivered to `to`'s inbox when that mailbox is in the fake (elsewhere otherwise), and
    /// kept in `from`'s Sent Items when `save_copy`.
    pub(crate) fn send_meeting_message(
        &mut self,
        from: &str,
        to: &str,
        class: &str,
        subject: String,
        body: Option<Body>,
        save_copy: bool,
    ) -> Result<(), FakeError> {
        let now = Utc::now();
        let sender = EmailAddress::new(None, from);
        let message = Message {
            base: ItemBase {
                item_class: Some(class.to_owned()),
                subject: Some(subject),
                body,
                date_time_received: Some(now),
                date_time_sent: Some(now),
                ..ItemBase::default()
            },
            from: Some(sender.clone()),
            sender: Some(sender),
            to_recipients: vec![EmailAddress::new(None, to)],
            is_read: Some(false),
            internet_message_id: Some(format!("<{}@exsync.test>", uuid::Uuid::new_v4())),
            ..Message::default()
        };
        if let Some(canonical) = self.mailbox(to).map(|m| m.address.clone()) {
            self.insert_item(
                &canonical,
                DistinguishedFolderName::Inbox,
                Item::Message(message.clone()),
            )?;
        }
        if save_copy {
            let mut copy = message;
            copy.is_read = Some(true);
            self.insert_item(
                from,
                DistinguishedFolderName::SentItems,
                Item::Message(copy),
            )?;
        }
        Ok(())
    }

    /// The organizer's invitations: every attendee with a mailbox in the fake gets a meeting
    /// request in the inbox and the meeting (same UID, their own copy) in the calendar.
    pub(crate) fn deliver_invitations(
        &mut self,
        organizer: &str,
        meeting: &Item,
    ) -> Result<(), FakeError> {
        let Item::CalendarItem(c) = meeting else {
            return Ok(());
        };
        for attendee in &c.required_attendees {
            let Some(canonical) = self.mailbox(&attendee.address).map(|m| m.address.clone()) else {
                continue;
            };
            if key(&canonical) == key(organizer) {
                continue;
            }
            self.send_meeting_message(
                organizer,
                &canonical,
                "IPM.Schedule.Meeting.Request",
                c.base.subject.clone().unwrap_or_default(),
                c.base.body.clone(),
                false,
            )?;
            let mut copy = c.clone();
            copy.base.item_id = None;
            copy.base.parent_folder_id = None;
            copy.base.categories.clear();
            copy.my_response_type = None;
            copy.organizer
                .get_or_insert_with(|| EmailAddress::new(None, organizer));
            self.insert_item(
                &canonical,
                DistinguishedFolderName::Calendar,
                Item::CalendarItem(copy),
            )?;
        }
        Ok(())
    }

    /// The items of `address`'s calendar that are copies of the meeting with `uid`.
    pub(crate) fn meeting_copies(&self, address: &str, uid: &str) -> Vec<u64> {
        self.mailbox(address)
            .and_then(|m| m.folder(DistinguishedFolderName::Calendar))
            .map(|f| {
                f.items
                    .iter()
                    .filter(|(_, s)| {
                        matches!(&s.item, Item::CalendarItem(c) if c.uid.as_deref() == Some(uid))
                    })
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The organizer cancels: every attendee with a mailbox in the fake gets a cancellation,
    /// and their copy of the meeting is marked cancelled ("Canceled: " before its subject).
    pub(crate) fn deliver_cancellations(
        &mut self,
        organizer: &str,
        meeting: &Item,
        save_copy: bool,
    ) -> Result<(), FakeError> {
        let Item::CalendarItem(c) = meeting else {
            return Ok(());
        };
        let subject = format!("Canceled: {}", c.base.subject.clone().unwrap_or_default());
        let mut saved = !save_copy;
        for attendee in &c.required_attendees {
            if key(&attendee.address) == key(organizer) {
                continue;
            }
            self.send_meeting_message(
                organizer,
                &attendee.address,
                "IPM.Schedule.Meeting.Canceled",
                subject.clone(),
                None,
                !saved,
            )?;
            saved = true;
            let Some(canonical) = self.mailbox(&attendee.address).map(|m| m.address.clone()) else {
                continue;
            };
            let Some(uid) = c.uid.as_deref() else {
                continue;
            };
            for n in self.meeting_copies(&canonical, uid) {
                let subject = subject.clone();
                self.update_item(&canonical, n, false, move |item| {
                    if let Item::CalendarItem(copy) = item {
                        copy.is_cancelled = Some(true);
                        copy.base.subject = Some(subject);
                    }
                });
            }
        }
        Ok(())
    }
}

/// What Exchange derives for a calendar item and clients cannot set: whether it is a meeting
/// (attendees other than the organizer), a series, and the mailbox's role in it.
pub(crate) fn settle_calendar_item(item: &mut Item, mailbox: &str) {
    let Item::CalendarItem(c) = item else { return };
    let organizer = c
        .organizer
        .as_ref()
        .map(|o| key(&o.address))
        .unwrap_or_else(|| key(mailbox));
    let is_meeting = c
        .required_attendees
        .iter()
        .any(|a| key(&a.address) != organizer);
    c.is_meeting = Some(is_meeting);
    c.is_recurring = Some(c.recurrence.is_some());
    c.calendar_item_type = Some(if c.recurrence.is_some() {
        CalendarItemKind::RecurringMaster
    } else {
        CalendarItemKind::Single
    });
    c.is_cancelled.get_or_insert(false);
    c.meeting_request_was_sent.get_or_insert(false);
    let role = if organizer == key(mailbox) {
        ResponseType::Organizer
    } else {
        match c.my_response_type {
            Some(r @ (ResponseType::Accept | ResponseType::Tentative | ResponseType::Decline)) => r,
            _ => ResponseType::NoResponseReceived,
        }
    };
    c.my_response_type = Some(role);
}

/// A conversation id from the subject without reply and forward prefixes (Exchange derives it
/// from the thread; the subject is the fake's stand-in), so a reply joins its original.
fn conversation_id(subject: Option<&str>) -> String {
    use sha2::Digest;
    let mut topic = subject.unwrap_or_default().trim().to_lowercase();
    while let Some(rest) = ["re:", "fw:", "fwd:", "aw:", "wg:"]
        .iter()
        .find_map(|p| topic.strip_prefix(p))
    {
        topic = rest.trim_start().to_owned();
    }
    let digest = Sha256::digest(topic.as_bytes());
    format!("AAQk{}", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// An item's size in bytes as the store would count it: its text and a fixed overhead.
fn item_size(item: &Item) -> u32 {
    let base = item.base();
    let text = base.subject.as_ref().map_or(0, String::len)
        + base.body.as_ref().map_or(0, |b| b.content.len());
    let recipients = match item {
        Item::Message(m) => m.to_recipients.len() + m.cc_recipients.len() + m.bcc_recipients.len(),
        Item::CalendarItem(c) => c.required_attendees.len(),
        _ => 0,
    };
    u32::try_from(1024 + text + 64 * recipients).unwrap_or(u32::MAX)
}

/// Item ids encode their mailbox: base64url of `i\0address\0number`.
pub(crate) fn item_id_string(address: &str, n: u64) -> String {
    format!(
        "AAMk{}",
        URL_SAFE_NO_PAD.encode(format!("i\0{address}\0{n}"))
    )
}

/// Folder ids encode their mailbox and well-known name.
pub(crate) fn folder_id_string(address: &str, folder: DistinguishedFolderName) -> String {
    format!(
        "AQMk{}",
        URL_SAFE_NO_PAD.encode(format!("f\0{address}\0{}", folder.as_str()))
    )
}

fn decode_id(id: &str, prefix: &str, tag: &str) -> Option<(String, String)> {
    let raw = URL_SAFE_NO_PAD
        .decode(id.trim().strip_prefix(prefix)?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(3, '\0');
    if parts.next()? != tag {
        return None;
    }
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// The mailbox and number an item id names, or `None` when it is not one of ours.
pub(crate) fn parse_item_id(id: &str) -> Option<(String, u64)> {
    let (address, n) = decode_id(id, "AAMk", "i")?;
    Some((address, n.parse().ok()?))
}

/// The mailbox and folder a folder id names.
pub(crate) fn parse_folder_id(id: &str) -> Option<(String, DistinguishedFolderName)> {
    let (address, folder) = decode_id(id, "AQMk", "f")?;
    Some((address, folder.parse().ok()?))
}

fn default_item_class(item: &Item) -> &'static str {
    match item {
        Item::Message(_) => "IPM.Note",
        Item::CalendarItem(_) => "IPM.Appointment",
        Item::Contact(_) => "IPM.Contact",
        Item::Task(_) => "IPM.Task",
    }
}

/// `POST /_fake/accounts`: a login, with a mailbox when `address` is given.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Mailbox address; absent for a service account without a mailbox.
    #[serde(default)]
    pub address: Option<String>,
    /// Login name (defaults to the address's local part).
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    pub password: String,
}

/// `POST /_fake/apps`: an OAuth application (client credentials).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// The application (client) id.
    pub client_id: String,
    /// The client secret (give it, a certificate, or both).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// A certificate (PEM) registered for client assertions (signed JWTs).
    #[serde(default)]
    pub certificate: Option<String>,
    /// Tenant id (informational).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Mailboxes it may impersonate; absent means every mailbox (ApplicationImpersonation).
    #[serde(default)]
    pub impersonate: Option<Vec<String>>,
}

/// `PUT /_fake/rights`: replaces an account's impersonation, delegate, Send As and Send on
/// Behalf rights (a list left out is emptied).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    /// The account's user name (or client id).
    pub account: String,
    /// Mailboxes it may impersonate (`"*"` means all).
    #[serde(default)]
    pub impersonate: Vec<String>,
    /// Mailboxes it may open as a delegate.
    #[serde(default)]
    pub delegate: Vec<String>,
    /// Mailboxes it may send as (`From` = the mailbox; `"*"` means all).
    #[serde(default)]
    pub send_as: Vec<String>,
    /// Mailboxes it may send on behalf of (`From` = the mailbox, `Sender` = the account).
    #[serde(default)]
    pub send_on_behalf: Vec<String>,
}

/// `PUT /_fake/mailboxes/{address}/settings`: answers one mailbox gives (replaced as a whole;
/// a field left out takes its default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSettings {
    /// Every EWS request for this mailbox (impersonated, `X-AnchorMailbox` or the caller's own)
    /// is answered HTTP 401, as Exchange Online does for an unlicensed or mismatched mailbox
    /// while the application's token is fine (no failed sign-in is counted).
    #[serde(default)]
    pub unauthorized: bool,
    /// The mailbox is over its storage quota: CreateItem in it, and sending from it, answer
    /// `ErrorQuotaExceeded`.
    #[serde(default)]
    pub storage_quota_exceeded: bool,
    /// How many more messages the mailbox may send; after that `ErrorSubmissionQuotaExceeded`
    /// (absent: no limit).
    #[serde(default)]
    pub submission_quota: Option<u32>,
    /// Largest message (subject, body and recipients, in bytes) the mailbox may send; larger
    /// ones answer `ErrorMessageSizeExceeded` (absent: no limit).
    #[serde(default)]
    pub max_message_bytes: Option<u64>,
}

/// `POST /_fake/mailboxes/{address}/items`: deliver messages or create ACT items.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewItems {
    /// Folder name (inbox, calendar, contacts, tasks, …); default inbox.
    #[serde(default)]
    pub folder: Option<String>,
    /// How many (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// DateTimeReceived (RFC 3339), default now.
    #[serde(default)]
    pub received: Option<DateTime<Utc>>,
    /// Subject (numbered when several).
    #[serde(default)]
    pub subject: Option<String>,
    /// Sender address.
    #[serde(default)]
    pub from: Option<String>,
    /// Body text.
    #[serde(default)]
    pub body: Option<String>,
    /// InternetMessageId (only with count 1).
    #[serde(default)]
    pub internet_message_id: Option<String>,
    /// Recipients (default the mailbox itself); for calendar items the attendees, each of
    /// whom with a mailbox in the fake gets the invitation and a copy in their calendar.
    #[serde(default)]
    pub to: Option<Vec<String>>,
    /// Categories (e.g. the tracking category), on any kind of item.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// InReplyTo (messages).
    #[serde(default)]
    pub in_reply_to: Option<String>,
    /// References (messages).
    #[serde(default)]
    pub references: Option<String>,
    /// A recurrence (calendar items): makes the item a series' recurring master.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
}

/// `PATCH /_fake/mailboxes/{address}/items/{id}`: an Exchange-side edit.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// New subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// New body text.
    #[serde(default)]
    pub body: Option<String>,
    /// New read flag (alone, this is a ReadFlagChange).
    #[serde(default)]
    pub is_read: Option<bool>,
    /// New categories (a user tracking or untracking an item in Outlook).
    #[serde(default)]
    pub categories: Option<Vec<String>>,
}

/// One item as `GET /_fake/mailboxes/{address}/items` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemSummary {
    /// Item id.
    pub id: String,
    /// Current change key.
    pub change_key: String,
    /// Folder name.
    pub folder: String,
    /// message, calendar, contact or task.
    pub kind: String,
    /// Subject.
    pub subject: Option<String>,
    /// Sender (messages) or organizer (calendar items).
    pub from: Option<String>,
    /// `Sender` of a message (differs from `from` when sent on behalf).
    #[serde(default)]
    pub sender: Option<String>,
    /// Recipients (messages) or attendees.
    pub to: Vec<String>,
    /// Body text.
    pub body: Option<String>,
    /// DateTimeReceived.
    pub received: Option<DateTime<Utc>>,
    /// Read flag (messages).
    pub is_read: Option<bool>,
    /// InternetMessageId (messages).
    pub internet_message_id: Option<String>,
    /// ItemClass (IPM.Note, IPM.Schedule.Meeting.Canceled, …).
    #[serde(default)]
    pub item_class: Option<String>,
    /// Categories.
    #[serde(default)]
    pub categories: Vec<String>,
    /// The series' recurrence (calendar items).
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    /// Cancelled by its organizer (calendar items).
    #[serde(default)]
    pub is_cancelled: Option<bool>,
    /// The mailbox's role or answer (calendar items): Organizer, Accept, NoResponseReceived, ….
    #[serde(default)]
    pub my_response_type: Option<String>,
    /// Extended properties, by property name (or id, or tag): their first value.
    #[serde(default)]
    pub extended_properties: BTreeMap<String, String>,
}

fn summary(folder: DistinguishedFolderName, item: &Item) -> ItemSummary {
    let base = item.base();
    let id = base.item_id.clone().unwrap_or_default();
    let (kind, from, to, is_read, imid) = match item {
        Item::Message(m) => (
            "message",
            m.from
                .as_ref()
                .or(m.sender.as_ref())
                .map(|a| a.address.clone()),
            m.to_recipients
                .iter()
                .chain(&m.cc_recipients)
                .map(|a| a.address.clone())
                .collect(),
            m.is_read,
            m.internet_message_id.clone(),
        ),
        Item::CalendarItem(c) => (
            "calendar",
            c.organizer.as_ref().map(|a| a.address.clone()),
            c.required_attendees
                .iter()
                .map(|a| a.address.clone())
                .collect(),
            None,
            None,
        ),
        Item::Contact(_) => ("contact", None, Vec::new(), None, None),
        Item::Task(_) => ("task", None, Vec::new(), None, None),
    };
    ItemSummary {
        id: id.id,
        change_key: id.change_key.unwrap_or_default(),
        folder: folder.as_str().to_owned(),
        kind: kind.to_owned(),
        subject: base.subject.clone(),
        from,
        to,
        body: base.body.as_ref().map(|b| b.content.clone()),
        received: base.date_time_received,
        is_read,
        internet_message_id: imid,
        item_class: base.item_class.clone(),
        categories: base.categories.clone(),
        recurrence: match item {
            Item::CalendarItem(c) => c.recurrence.clone(),
            _ => None,
        },
        is_cancelled: match item {
            Item::CalendarItem(c) => c.is_cancelled,
            _ => None,
        },
        my_response_type: match item {
            Item::CalendarItem(c) => c.my_response_type.map(|r| r.as_str().to_owned()),
            _ => None,
        },
        sender: match item {
            Item::Message(m) => m.sender.as_ref().map(|a| a.address.clone()),
            _ => None,
        },
        extended_properties: base
            .extended_properties
            .iter()
            .map(|p| {
                let f = &p.field;
                let name = f
                    .property_name
                    .clone()
                    .or_else(|| f.property_id.map(|i| i.to_string()))
                    .or_else(|| f.property_tag.clone())
                    .unwrap_or_default();
                (name, p.value.first().unwrap_or_default().to_owned())
            })
            .collect(),
    }
}

/// A bearer token handed out by the token endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// The shared state of one fake Exchange (accounts, mailboxes, faults, stats).
pub struct FakeState {
    inner: Mutex<Inner>,
    faults: Mutex<Faults>,
    pub(crate) max_request_bytes: usize,
    pub(crate) xml_limits: XmlLimits,
    hmac_key: [u8; 32],
    token_lifetime: Duration,
    pub(crate) traffic: Option<super::traffic::TrafficRecorder>,
}

impl FakeState {
    /// An empty fake with these faults and limits.
    pub fn new(faults: Faults, max_request_bytes: usize, xml_limits: XmlLimits) -> Self {
        let mut rng = rand::thread_rng();
        FakeState {
            inner: Mutex::new(Inner {
                accounts: BTreeMap::new(),
                mailboxes: BTreeMap::new(),
                tokens: HashMap::new(),
                next_item: 0,
                next_change: 0,
                next_epoch: u64::from(rng.gen::<u32>()) << 16,
                stats: Stats::default(),
                log: VecDeque::new(),
                ntlm_pending: HashMap::new(),
                ntlm_sessions: HashMap::new(),
                channel_binding: None,
                extended_protection: super::ExtendedProtection::default(),
                assertion_ids: HashMap::new(),
                token_url: None,
                streaming: super::streaming::Streaming::default(),
            }),
            faults: Mutex::new(faults),
            max_request_bytes,
            xml_limits,
            hmac_key: rng.gen(),
            token_lifetime: Duration::from_secs(3600),
            traffic: None,
        }
    }

    /// This fake, recording its EWS traffic into `dir` when one is given.
    pub(crate) fn recording_traffic(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.traffic = dir.map(super::traffic::TrafficRecorder::new);
        self
    }

    /// The lock on everything (a poisoned lock is recovered: the data stays consistent per call).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current fault knobs.
    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Apply a partial update of the fault knobs (validated; nothing changes on error).
    pub fn update_faults(&self, patch: &FaultsPatch) -> Result<Faults, FakeError> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let next = faults.patched(patch)?;
        *faults = next.clone();
        Ok(next)
    }

    /// Take the next queued one-shot token endpoint fault, if any.
    pub(crate) fn take_token_fault(&self) -> Option<super::TokenFault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        if faults.token_fail_next.is_empty() {
            None
        } else {
            Some(faults.token_fail_next.remove(0))
        }
    }

    /// Take the next queued one-shot fault for a request carrying `items` items, if any (a
    /// batch stop waits for a request with more items than it lets through).
    pub(crate) fn take_one_shot(&self, items: usize) -> Option<super::OneShotFault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match faults.fail_next.first() {
            None => None,
            Some(super::OneShotFault::BatchStoppedAfter(n))
                if items <= usize::try_from(*n).unwrap_or(usize::MAX) =>
            {
                None
            }
            Some(_) => Some(faults.fail_next.remove(0)),
        }
    }

    /// Whether requests for `address` are answered HTTP 401 (an unlicensed mailbox).
    pub(crate) fn mailbox_unauthorized(&self, address: &str) -> bool {
        self.lock()
            .mailbox(address)
            .is_some_and(|m| m.settings.unauthorized)
    }

    /// Create a login, and its mailbox when an address is given.
    pub fn add_account(&self, new: &NewAccount) -> Result<(), FakeError> {
        let address = new
            .address
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        if let Some(a) = address {
            if !a.contains('@') {
                return Err(FakeError::Invalid(format!("address {a:?} has no @")));
            }
        }
        let username = match (&new.username, address) {
            (Some(u), _) if !u.trim().is_empty() => u.trim().to_owned(),
            (_, Some(a)) => a.split('@').next().unwrap_or(a).to_owned(),
            _ => {
                return Err(FakeError::Invalid(
                    "an account needs a username or an address".into(),
                ))
            }
        };
        let mut inner = self.lock();
        if inner.accounts.contains_key(&key(&username)) {
            return Err(FakeError::Conflict(format!("account {username}")));
        }
        if let Some(a) = address {
            if inner.mailbox(a).is_some() {
                return Err(FakeError::Conflict(format!("mailbox {a}")));
            }
            inner.next_epoch += 1;
            let epoch = inner.next_epoch;
            inner.mailboxes.insert(key(a), Mailbox::new(a, epoch));
        }
        inner.accounts.insert(
            key(&username),
            Account {
                username: username.clone(),
                password: SecretString::from(new.password.clone()),
                expired: false,
                kind: AccountKind::User,
                address: address.map(str::to_owned),
                impersonate_all: false,
                impersonate: BTreeSet::new(),
                delegate: BTreeSet::new(),
                send_as: BTreeSet::new(),
                send_on_behalf: BTreeSet::new(),
                not_before: None,
                in_flight: 0,
                certificate: None,
            },
        );
        inner.stats.accounts.entry(username).or_default();
        Ok(())
    }

    /// Register an OAuth application with app-only impersonation rights.
    pub fn add_app(&self, app: &NewApp) -> Result<(), FakeError> {
        let id = app.client_id.trim();
        if id.is_empty() {
            return Err(FakeError::Invalid("client_id is empty".into()));
        }
        let certificate = match &app.certificate {
            None => None,
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
                    .next()
                    .and_then(Result::ok)
                    .ok_or_else(|| {
                        FakeError::Invalid("certificate is not a PEM certificate".into())
                    })?;
                Some(der.to_vec())
            }
        };
        let secret = match (&app.client_secret, &certificate) {
            (Some(secret), _) if !secret.is_empty() => secret.clone(),
            (_, Some(_)) => {
                // Certificate only: no secret can sign in.
                let bytes: [u8; 32] = rand::thread_rng().gen();
                format!("no-secret-{}", URL_SAFE_NO_PAD.encode(bytes))
            }
            _ => {
                return Err(FakeError::Invalid(
                    "give client_secret, certificate or both".into(),
                ))
            }
        };
        let mut inner = self.lock();
        if inner.accounts.contains_key(&key(id)) {
            return Err(FakeError::Conflict(format!("account {id}")));
        }
        inner.accounts.insert(
            key(id),
            Account {
                username: id.to_owned(),
                password: SecretString::from(secret),
                expired: false,
                kind: AccountKind::App,
                address: None,
                impersonate_all: app.impersonate.is_none(),
                impersonate: app.impersonate.iter().flatten().map(|a| key(a)).collect(),
                delegate: BTreeSet::new(),
                send_as: BTreeSet::new(),
                send_on_behalf: BTreeSet::new(),
                not_before: None,
                in_flight: 0,
                certificate,
            },
        );
        inner.stats.accounts.entry(id.to_owned()).or_default();
        Ok(())
    }

    /// OAuth2 client credentials: a bearer token for a registered app, or `None` (and a
    /// failed login counted) for a wrong id or secret.
    pub fn issue_token(&self, client_id: &str, client_secret: &str) -> Option<IssuedToken> {
        if !self.check_secret(client_id, client_secret) {
            return None;
        }
        self.token_for(client_id)
    }

    /// Whether `client_secret` is the registered app's secret (a failed login is counted).
    pub(crate) fn check_secret(&self, client_id: &str, client_secret: &str) -> bool {
        let mut inner = self.lock();
        let ok = matches!(inner.find_login(client_id),
            Some(a) if a.kind == AccountKind::App && a.password.expose_secret() == client_secret);
        if !ok {
            if let Some(name) = inner.find_login(client_id).map(|a| a.username.clone()) {
                inner.account_stats(&name).failed_logins += 1;
            }
        }
        ok
    }

    /// Check a client assertion (RFC 7523, as the Microsoft identity platform checks it):
    /// the app's client id, or the OAuth error code and an AADSTS-style description (a
    /// failed login is counted).
    pub(crate) fn check_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
        audience: &str,
    ) -> Result<String, (&'static str, String)> {
        let mut inner = self.lock();
        match super::assertion::check(&mut inner, client_id, assertion, audience) {
            Ok(name) => Ok(name),
            Err((error, counted)) => {
                if let Some(name) = counted {
                    inner.account_stats(&name).failed_logins += 1;
                }
                Err(error)
            }
        }
    }

    /// A bearer token for a registered app whose credential was checked.
    pub(crate) fn token_for(&self, client_id: &str) -> Option<IssuedToken> {
        let mut inner = self.lock();
        let username = inner.find_login(client_id)?.username.clone();
        let bytes: [u8; 32] = rand::thread_rng().gen();
        let token = URL_SAFE_NO_PAD.encode(bytes);
        inner.tokens.insert(
            token.clone(),
            Token {
                username,
                expires: Instant::now() + self.token_lifetime,
            },
        );
        Some(IssuedToken {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: self.token_lifetime.as_secs(),
        })
    }

    /// Change a password (and clear an expiry).
    pub fn set_password(&self, username: &str, password: &str) -> Result<(), FakeError> {
        let mut inner = self.lock();
        let account = inner
            .account_mut(username)
            .ok_or_else(|| FakeError::NotFound(format!("account {username}")))?;
        account.password = SecretString::from(password.to_owned());
        account.expired = false;
        Ok(())
    }

    /// Mark a password expired: sign-ins fail with 401 until it is changed.
    pub fn expire_password(&self, username: &str) -> Result<(), FakeError> {
        let mut inner = self.lock();
        let account = inner
            .account_mut(username)
            .ok_or_else(|| FakeError::NotFound(format!("account {username}")))?;
        account.expired = true;
        Ok(())
    }

    /// Replace an account's impersonation and delegate rights.
    pub fn set_rights(&self, rights: &Rights) -> Result<(), FakeError> {
        let mut inner = self.lock();
        let account = inner
            .account_mut(&rights.account)
            .ok_or_else(|| FakeError::NotFound(format!("account {}", rights.account)))?;
        account.impersonate_all = rights.impersonate.iter().any(|a| a == "*");
        account.impersonate = rights
            .impersonate
            .iter()
            .filter(|a| *a != "*")
            .map(|a| key(a))
            .collect();
        account.delegate = rights.delegate.iter().map(|a| key(a)).collect();
        account.send_as = rights.send_as.iter().map(|a| key(a)).collect();
        account.send_on_behalf = rights.send_on_behalf.iter().map(|a| key(a)).collect();
        Ok(())
    }

    /// Replace a mailbox's settings (401, quotas, message size limit).
    pub fn set_mailbox_settings(
        &self,
        address: &str,
        settings: &MailboxSettings,
    ) -> Result<MailboxSettings, FakeError> {
        let mut inner = self.lock();
        let mailbox = inner
            .mailbox_mut(address)
            .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))?;
        mailbox.settings = settings.clone();
        Ok(mailbox.settings.clone())
    }

    /// A mailbox's current settings (the submission quota counts down as it sends).
    pub fn mailbox_settings(&self, address: &str) -> Result<MailboxSettings, FakeError> {
        let inner = self.lock();
        inner
            .mailbox(address)
            .map(|m| m.settings.clone())
            .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))
    }

    /// Delete an item right after the next SyncFolderItems that reports it: a client that then
    /// asks GetItem for it gets ErrorItemNotFound, as when a user deletes mail mid-sync.
    pub fn delete_after_sync(&self, address: &str, id: &str) -> Result<(), FakeError> {
        let mut inner = self.lock();
        let n = own_item(&inner, address, id)?;
        let mailbox = inner
            .mailbox_mut(address)
            .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))?;
        mailbox.delete_after_sync.insert(n);
        Ok(())
    }

    /// Deliver messages or create calendar items, contacts or tasks; returns the new ids.
    pub fn add_items(&self, address: &str, new: &NewItems) -> Result<Vec<String>, FakeError> {
        let folder: DistinguishedFolderName = match new.folder.as_deref() {
            None => DistinguishedFolderName::Inbox,
            Some(f) => f
                .parse()
                .map_err(|_| FakeError::Invalid(format!("unknown folder {f:?}")))?,
        };
        if folder == DistinguishedFolderName::MsgFolderRoot
            || folder == DistinguishedFolderName::Root
        {
            return Err(FakeError::Invalid("items cannot go into the root".into()));
        }
        let count = new.count.unwrap_or(1);
        if count > 100_000 {
            return Err(FakeError::Invalid("count is at most 100000".into()));
        }
        if let Some(r) = &new.recurrence {
            r.validate()
                .map_err(|e| FakeError::Invalid(e.to_string()))?;
        }
        let mut inner = self.lock();
        let mailbox_address = inner
            .mailbox(address)
            .map(|m| m.address.clone())
            .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))?;
        let mut ids = Vec::new();
        for i in 0..count {
            let number = inner.next_item + 1;
            let mut item = generated_item(folder, &mailbox_address, new, i, count, number);
            // A meeting with named attendees was sent: they have the invitation.
            let invite = matches!(&item, Item::CalendarItem(_)) && new.to.is_some();
            if let (true, Item::CalendarItem(c)) = (invite, &mut item) {
                c.meeting_request_was_sent = Some(true);
            }
            ids.push(
                inner
                    .insert_item(&mailbox_address, folder, item.clone())?
                    .id,
            );
            if invite {
                inner.deliver_invitations(&mailbox_address, &item)?;
            }
        }
        Ok(ids)
    }

    /// The items of one folder, oldest first.
    pub fn list_items(&self, address: &str, folder: &str) -> Result<Vec<ItemSummary>, FakeError> {
        let folder: DistinguishedFolderName = folder
            .parse()
            .map_err(|_| FakeError::Invalid(format!("unknown folder {folder:?}")))?;
        let inner = self.lock();
        let mailbox = inner
            .mailbox(address)
            .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))?;
        Ok(mailbox
            .folder(folder)
            .map(|f| f.items.values().map(|s| summary(folder, &s.item)).collect())
            .unwrap_or_default())
    }

    /// An Exchange-side edit of an item (a new change key, logged for SyncFolderItems).
    pub fn patch_item(&self, address: &str, id: &str, patch: &ItemPatch) -> Result<(), FakeError> {
        let mut inner = self.lock();
        let n = own_item(&inner, address, id)?;
        let read_only =
            patch.subject.is_none() && patch.body.is_none() && patch.categories.is_none();
        let patch = patch.clone();
        inner
            .update_item(address, n, read_only, move |item| {
                let base = item.base_mut();
                if let Some(s) = patch.subject {
                    base.subject = Some(s);
                }
                if let Some(b) = patch.body {
                    base.body = Some(Body {
                        body_type: BodyType::Text,
                        content: b,
                    });
                }
                if let Some(c) = patch.categories {
                    base.categories = c;
                }
                if let (Some(r), Item::Message(m)) = (patch.is_read, item) {
                    m.is_read = Some(r);
                }
            })
            .map(|_| ())
            .ok_or_else(|| FakeError::NotFound(format!("item {id}")))
    }

    /// An Exchange-side hard delete of an item.
    pub fn delete_item(&self, address: &str, id: &str) -> Result<(), FakeError> {
        let mut inner = self.lock();
        let n = own_item(&inner, address, id)?;
        inner
            .remove_item(address, n)
            .map(|_| ())
            .ok_or_else(|| FakeError::NotFound(format!("item {id}")))
    }

    /// Invalidate every sync state issued for a mailbox (clients get ErrorInvalidSyncStateData).
    pub fn reset_sync_states(&self, address: &str) -> Result<(), FakeError> {
        let mut inner = self.lock();
        inner.next_epoch += 1;
        let epoch = inner.next_epoch;
        let mailbox = inner
            .mailbox_mut(address)
            .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))?;
        mailbox.epoch = epoch;
        Ok(())
    }

    /// The statistics document of `GET /_fake/stats`.
    pub fn stats(&self) -> StatsSnapshot {
        let inner = self.lock();
        StatsSnapshot {
            peak_concurrent_requests: inner.stats.peak,
            operations: inner.stats.operations.clone(),
            accounts: inner.stats.accounts.clone(),
            mailboxes: inner
                .mailboxes
                .values()
                .map(|m| {
                    let counts = MAILBOX_FOLDERS
                        .iter()
                        .filter(|f| {
                            !matches!(
                                f,
                                DistinguishedFolderName::MsgFolderRoot
                                    | DistinguishedFolderName::Root
                            )
                        })
                        .map(|f| {
                            let n = m.folder(*f).map(|d| d.items.len() as u64).unwrap_or(0);
                            (f.as_str().to_owned(), n)
                        })
                        .collect();
                    (m.address.clone(), counts)
                })
                .collect(),
        }
    }

    /// Zero the counters (accounts stay listed).
    pub fn reset_stats(&self) {
        let mut inner = self.lock();
        inner.stats.peak = inner.stats.in_flight;
        inner.stats.operations.clear();
        for s in inner.stats.accounts.values_mut() {
            *s = AccountStats::default();
        }
        inner.log.clear();
    }

    /// The recent EWS request log, oldest first (at most 1000 entries).
    pub fn requests(&self) -> Vec<RequestLogEntry> {
        self.lock().log.iter().cloned().collect()
    }

    /// A sync state token for a folder position: payload plus an HMAC, so garbage and tokens
    /// from another server or another mailbox are recognised.
    pub(crate) fn sync_token(&self, address: &str, folder: &str, epoch: u64, seq: u64) -> String {
        let payload = format!("{}|{folder}|{epoch}|{seq}", key(address));
        let mac = self.mac(&payload);
        URL_SAFE_NO_PAD.encode(format!("{payload}|{mac}"))
    }

    /// The position a token encodes, when it is ours and for this mailbox, folder and epoch.
    pub(crate) fn read_sync_token(
        &self,
        token: &str,
        address: &str,
        folder: &str,
        epoch: u64,
    ) -> Option<u64> {
        let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (payload, mac) = text.rsplit_once('|')?;
        if self.mac(payload) != mac {
            return None;
        }
        let parts: Vec<&str> = payload.split('|').collect();
        match parts.as_slice() {
            [a, f, e, s] if *a == key(address) && *f == folder && e.parse() == Ok(epoch) => {
                s.parse().ok()
            }
            _ => None,
        }
    }

    fn mac(&self, payload: &str) -> String {
        let Ok(mut mac) = <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(&self.hmac_key)
        else {
            return String::new();
        };
        mac.update(payload.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn own_item(inner: &Inner, address: &str, id: &str) -> Result<u64, FakeError> {
    match parse_item_id(id) {
        Some((a, n)) if key(&a) == key(address) => {
            let mailbox = inner
                .mailbox(address)
                .ok_or_else(|| FakeError::NotFound(format!("mailbox {address}")))?;
            mailbox
                .item(n)
                .map(|_| n)
                .ok_or_else(|| FakeError::NotFound(format!("item {id}")))
        }
        _ => Err(FakeError::NotFound(format!("item {id}"))),
    }
}

/// Generated content for `POST /_fake/mailboxes/{address}/items`.
fn generated_item(
    folder: DistinguishedFolderName,
    address: &str,
    new: &NewItems,
    i: u32,
    count: u32,
    number: u64,
) -> Item {
    // Exchange keeps (and writes) whole seconds.
    let received = whole_seconds(new.received.unwrap_or_else(Utc::now));
    let numbered = |default: &str| match &new.subject {
        Some(s) if count > 1 => format!("{s} {}", i + 1),
        Some(s) => s.clone(),
        None => format!("{default} {number}"),
    };
    let body = |default: String| {
        Some(Body {
            body_type: BodyType::Text,
            content: new.body.clone().unwrap_or(default),
        })
    };
    let categories = new.categories.clone().unwrap_or_default();
    match folder {
        DistinguishedFolderName::Calendar => {
            let start = received + chrono::Duration::days(1);
            Item::CalendarItem(CalendarItem {
                base: ItemBase {
                    subject: Some(numbered("Meeting")),
                    body: body(format!("Agenda of meeting {number}.")),
                    date_time_received: Some(received),
                    categories: categories.clone(),
                    ..ItemBase::default()
                },
                uid: Some(format!("fake-uid-{number}")),
                start: Some(start),
                end: Some(start + chrono::Duration::hours(1)),
                is_all_day_event: Some(false),
                location: Some(format!("Room {}", number % 10 + 1)),
                organizer: Some(EmailAddress::new(
                    None,
                    new.from.as_deref().unwrap_or(address),
                )),
                required_attendees: match &new.to {
                    Some(list) => list.iter().map(|a| EmailAddress::new(None, a)).collect(),
                    None => vec![EmailAddress::new(None, address)],
                },
                recurrence: new.recurrence.clone(),
                ..CalendarItem::default()
            })
        }
        DistinguishedFolderName::Contacts => {
            let given = format!("Given{number}");
            let surname = format!("Surname{number}");
            Item::Contact(Contact {
                base: ItemBase {
                    subject: Some(numbered("Contact")),
                    body: body(String::new()).filter(|b| !b.content.is_empty()),
                    date_time_received: Some(received),
                    categories: categories.clone(),
                    ..ItemBase::default()
                },
                display_name: Some(format!("{given} {surname}")),
                given_name: Some(given),
                surname: Some(surname),
                company_name: Some("Fabrikam".into()),
                email_addresses: vec![(
                    "EmailAddress1".into(),
                    format!("contact{number}@fabrikam.test"),
                )],
                phone_numbers: vec![("BusinessPhone".into(), format!("+1 555 {number:04}"))],
                job_title: Some("Buyer".into()),
            })
        }
        DistinguishedFolderName::Tasks => Item::Task(Task {
            base: ItemBase {
                subject: Some(numbered("Task")),
                body: body(format!("Do task {number}.")),
                date_time_received: Some(received),
                categories: categories.clone(),
                ..ItemBase::default()
            },
            due_date: Some(received + chrono::Duration::days(7)),
            start_date: Some(received),
            status: Some(TaskStatus::NotStarted),
            percent_complete: Some(0.0),
            complete_date: None,
        }),
        _ => {
            let from =
                EmailAddress::new(None, new.from.as_deref().unwrap_or("sender@external.test"));
            let to = match &new.to {
                Some(list) => list.iter().map(|a| EmailAddress::new(None, a)).collect(),
                None => vec![EmailAddress::new(None, address)],
            };
            let imid = match (&new.internet_message_id, count) {
                (Some(id), 1) => id.clone(),
                _ => format!("<fake.{number}.{}@exsync.test>", uuid::Uuid::new_v4()),
            };
            Item::Message(Message {
                base: ItemBase {
                    subject: Some(numbered("Message")),
                    body: body(format!("Body of message {number}.")),
                    date_time_received: Some(received),
                    date_time_sent: Some(received),
                    conversation_id: Some(URL_SAFE_NO_PAD.encode(format!("conv{number}"))),
                    categories,
                    in_reply_to: new.in_reply_to.clone(),
                    ..ItemBase::default()
                },
                sender: Some(from.clone()),
                to_recipients: to,
                from: Some(from),
                internet_message_id: Some(imid),
                is_read: Some(false),
                references: new.references.clone(),
                ..Message::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FakeState {
        let s = FakeState::new(Faults::default(), 1 << 20, XmlLimits::default());
        s.add_account(&NewAccount {
            address: Some("a@contoso.test".into()),
            username: Some("a".into()),
            password: "pw".into(),
        })
        .unwrap();
        s
    }

    fn inbox_changes(s: &FakeState, since: u64, max: usize) -> (Vec<NetChange>, u64, bool) {
        let inner = s.lock();
        inner
            .mailbox("a@contoso.test")
            .unwrap()
            .folder(DistinguishedFolderName::Inbox)
            .unwrap()
            .changes_since(since, max, &BTreeSet::new())
    }

    #[test]
    fn item_ids_encode_their_mailbox() {
        let id = item_id_string("a@contoso.test", 42);
        assert_eq!(parse_item_id(&id), Some(("a@contoso.test".into(), 42)));
        assert_eq!(parse_item_id("garbage"), None);
        let f = folder_id_string("a@contoso.test", DistinguishedFolderName::Tasks);
        assert_eq!(
            parse_folder_id(&f),
            Some(("a@contoso.test".into(), DistinguishedFolderName::Tasks))
        );
    }

    #[test]
    fn change_log_pages_are_consistent_and_collapse_within_a_window() {
        let s = state();
        let ids = s
            .add_items(
                "a@contoso.test",
                &NewItems {
                    count: Some(5),
                    ..NewItems::default()
                },
            )
            .unwrap();
        let (first, pos, last) = inbox_changes(&s, 0, 2);
        assert_eq!(first.len(), 2);
        assert!(!last);
        assert!(matches!(first[0], NetChange::Create(_)));
        // Edit an item already delivered and delete one not yet delivered.
        s.patch_item(
            "a@contoso.test",
            &ids[0],
            &ItemPatch {
                is_read: Some(true),
                ..ItemPatch::default()
            },
        )
        .unwrap();
        s.delete_item("a@contoso.test", &ids[4]).unwrap();
        let (rest, pos2, last) = inbox_changes(&s, pos, 512);
        assert!(last);
        // ids[2], ids[3] created; ids[0] read flag; ids[4] created and deleted: nothing.
        assert_eq!(rest.len(), 3, "{rest:?}");
        assert!(matches!(rest[2], NetChange::ReadFlag(_)));
        let (none, pos3, last) = inbox_changes(&s, pos2, 512);
        assert!(none.is_empty() && last && pos3 == pos2);
    }

    #[test]
    fn sync_tokens_reject_garbage_other_folders_and_old_epochs() {
        let s = state();
        let t = s.sync_token("a@contoso.test", "inbox", 7, 3);
        assert_eq!(s.read_sync_token(&t, "A@contoso.test", "inbox", 7), Some(3));
        assert_eq!(s.read_sync_token(&t, "a@contoso.test", "calendar", 7), None);
        assert_eq!(s.read_sync_token(&t, "a@contoso.test", "inbox", 8), None);
        assert_eq!(
            s.read_sync_token("H4sIAAAA", "a@contoso.test", "inbox", 7),
            None
        );
        let other = FakeState::new(Faults::default(), 1, XmlLimits::default());
        let foreign = other.sync_token("a@contoso.test", "inbox", 7, 3);
        assert_eq!(
            s.read_sync_token(&foreign, "a@contoso.test", "inbox", 7),
            None
        );
    }

    #[test]
    fn faults_reject_rates_outside_zero_to_one() {
        let s = state();
        let bad = FaultsPatch {
            throttle_rate: Some(1.5),
            ..FaultsPatch::default()
        };
        assert!(matches!(s.update_faults(&bad), Err(FakeError::Invalid(_))));
        assert_eq!(s.faults(), Faults::default());
        let nan = FaultsPatch {
            http_500_rate: Some(f64::NAN),
            ..FaultsPatch::default()
        };
        assert!(s.update_faults(&nan).is_err());
    }
}

//! Mailboxes and their items: distinguished folders, ids and change keys, the per-folder change logs behind sync states, and the `/_fake/` item operations.

use super::*;
use crate::graph::GraphChange;

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
    pub(super) fn new(address: &str, epoch: u64) -> Self {
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

impl Inner {
    pub(crate) fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&key(address))
    }

    pub(crate) fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&key(address))
    }

    pub(super) fn new_change_key(&mut self) -> String {
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
        let id = ItemId::with_change_key(item_id_string(&mailbox.address, n), change_key.clone());
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
        self.graph_change(
            &canonical,
            folder,
            n,
            GraphChange::Created,
            Some(change_key),
        );
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
        id.change_key = Some(change_key.clone());
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
        self.graph_change(
            &canonical,
            folder,
            n,
            GraphChange::Updated,
            Some(change_key),
        );
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
        self.graph_change(&canonical, folder, n, GraphChange::Deleted, None);
        Some(stored.item)
    }

    /// Tell the fake Graph's change notifications about an item change (when Graph is served).
    fn graph_change(
        &self,
        mailbox: &str,
        folder: DistinguishedFolderName,
        item: u64,
        change: GraphChange,
        change_key: Option<String>,
    ) {
        if let Some(sender) = &self.graph_changes {
            sender.send(crate::graph::ItemChange {
                mailbox: mailbox.to_owned(),
                folder,
                item,
                change,
                change_key,
            });
        }
    }
}

/// A conversation id from the subject without reply and forward prefixes (Exchange derives it
/// from the thread; the subject is the fake's stand-in), so a reply joins its original.
pub(super) fn conversation_id(subject: Option<&str>) -> String {
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
pub(super) fn item_size(item: &Item) -> u32 {
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

pub(super) fn decode_id(id: &str, prefix: &str, tag: &str) -> Option<(String, String)> {
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

pub(super) fn default_item_class(item: &Item) -> &'static str {
    match item {
        Item::Message(_) => "IPM.Note",
        Item::CalendarItem(_) => "IPM.Appointment",
        Item::Contact(_) => "IPM.Contact",
        Item::Task(_) => "IPM.Task",
    }
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

pub(super) fn summary(folder: DistinguishedFolderName, item: &Item) -> ItemSummary {
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

impl FakeState {
    /// Whether requests for `address` are answered HTTP 401 (an unlicensed mailbox).
    pub(crate) fn mailbox_unauthorized(&self, address: &str) -> bool {
        self.lock()
            .mailbox(address)
            .is_some_and(|m| m.settings.unauthorized)
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
}

pub(super) fn own_item(inner: &Inner, address: &str, id: &str) -> Result<u64, FakeError> {
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
pub(super) fn generated_item(
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

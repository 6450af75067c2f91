//! The mail-server port: everything `sync` asks of a mailbox's server, in domain words, and
//! everything that can go wrong with it, classified for `sync::reaction`.
//!
//! `sync` decides (what to import, send, write, delete; how to react to a failure); a provider
//! adapter outside `sync` speaks the protocol (`providers::ews` speaks EWS; a Microsoft Graph
//! adapter implements the same two traits). Nothing here names a protocol type: ids, sync
//! states and version tokens are opaque strings the provider hands out and gets back.
//!
//! - [`Connector`] opens a [`MailServer`] for one workload of one mailbox (the provider keeps
//!   whatever it shares between mailboxes: clients per credential, tokens, throttling).
//! - [`MailServer`] is one mailbox reached one way: changes since a sync state, items by id,
//!   send with an idempotency key, create / update / delete an activity with a version token.
//! - [`ServerError`] says what failed and why ([`Failure`]); the stable `code` is the
//!   provider's (alerts, `last_error_code`, metrics), the reaction is `sync`'s.

use super::plan::ConnectionPlan;
use crate::domain::scope::MeetingRole;
use crate::domain::{Mailbox, Profile};
use crate::store::activities::{ActFields, ActKind};
use crate::store::emails::NewEmail;
use crate::store::outgoing::OutgoingEmail;
use crate::store::scheduling::ErrorCorrelation;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What every port call returns: a boxed future (the traits are used as `dyn`, one provider
/// per profile) of the answer or why there is none.
pub type PortFuture<'a, T> = BoxFuture<'a, Result<T, ServerError>>;

/// A folder `sync` tracks, by its well-known name (the key its sync state is stored under).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// The Inbox.
    Inbox,
    /// Sent Items.
    SentItems,
    /// Junk Email.
    JunkEmail,
    /// Drafts.
    Drafts,
    /// The default calendar (appointments).
    Calendar,
    /// The default contacts folder.
    Contacts,
    /// The default tasks folder (a To Do list for Graph).
    Tasks,
}

impl Folder {
    /// Every folder, mail folders first.
    pub const ALL: [Folder; 7] = [
        Folder::Inbox,
        Folder::SentItems,
        Folder::JunkEmail,
        Folder::Drafts,
        Folder::Calendar,
        Folder::Contacts,
        Folder::Tasks,
    ];

    /// The well-known name: the key of the folder's stored sync state, and what
    /// `sync.tracked_folders` says.
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::SentItems => "sentitems",
            Folder::JunkEmail => "junkemail",
            Folder::Drafts => "drafts",
            Folder::Calendar => "calendar",
            Folder::Contacts => "contacts",
            Folder::Tasks => "tasks",
        }
    }

    /// The folder that holds activities of `kind`.
    pub fn of(kind: ActKind) -> Folder {
        match kind {
            ActKind::Appointment => Folder::Calendar,
            ActKind::Contact => Folder::Contacts,
            ActKind::Task => Folder::Tasks,
        }
    }
}

/// A folder name that is not one of [`Folder::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown folder {0:?}")]
pub struct UnknownFolder(pub String);

impl FromStr for Folder {
    type Err = UnknownFolder;
    fn from_str(s: &str) -> Result<Self, UnknownFolder> {
        Folder::ALL
            .into_iter()
            .find(|f| f.as_str() == s.trim())
            .ok_or_else(|| UnknownFolder(s.to_owned()))
    }
}

/// An item as the server names it: its id and the version `sync` last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    /// The server's item id (opaque; stable for the item's life in that folder).
    pub id: String,
    /// The version token (EWS ChangeKey, Graph ETag), when the server gave one: a write
    /// carrying it is refused if the item changed since.
    pub version: Option<String>,
    /// When the item was received (mail), when the change carried it: mail older than the
    /// Process-From date is left out before any fetch.
    pub received_at: Option<DateTime<Utc>>,
}

/// One change of a folder since a sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new item (fetch it).
    Created(ItemRef),
    /// A changed item (fetch it).
    Updated(ItemRef),
    /// The item is gone (its id).
    Deleted(String),
    /// Only the read flag changed (id, is read).
    ReadFlag(String, bool),
}

/// One page of a folder's changes and the sync state that follows it.
#[derive(Debug, Clone)]
pub struct ChangePage {
    /// The opaque state to store with what this page changed (EWS SyncState, Graph delta or
    /// next link): the next call starts from it.
    pub sync_state: String,
    /// No more pages now (the next call after this one would report only newer changes).
    pub last: bool,
    /// The changes, in server order.
    pub changes: Vec<Change>,
}

/// What a change query may use to ask for less.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeHint {
    /// The effective Process-From date (mail folders): a provider that can filter by date
    /// leaves older mail out of the changes; `sync` filters again either way.
    pub received_after: Option<DateTime<Utc>>,
}

/// Why one item of a fetch could not be had (the rest of the fetch is fine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    /// The item.
    pub id: String,
    /// The server's code and text, for the row and the operator.
    pub error: String,
    /// The item no longer exists (deleted since its change was reported).
    pub gone: bool,
}

impl ItemFailure {
    /// Deleted since the change was reported: skipped, neither retried nor alerted about
    /// (the next change query reports the delete).
    pub fn is_gone(&self) -> bool {
        self.gone
    }
}

/// An incoming message: the email to store and what the incoming filter reads besides.
#[derive(Debug, Clone)]
pub struct IncomingMail {
    /// The email to store.
    pub email: NewEmail,
    /// The References header (Message-IDs of the thread).
    pub references: Option<String>,
    /// Its categories (the tracking category marks it tracked).
    pub categories: Vec<String>,
}

/// One fetched item of a mail folder: an email, or something else that lands there (meeting
/// requests, receipts, reports), which is not email to track.
pub type FetchedMail = (String, Result<Option<IncomingMail>, ItemFailure>);

/// An appointment, contact or task as the server holds it.
#[derive(Debug, Clone)]
pub struct RemoteActivity {
    /// Id and version.
    pub item: ItemRef,
    /// When the server last modified it.
    pub modified_at: Option<DateTime<Utc>>,
    /// The fields exsync keeps.
    pub fields: ActFields,
    /// Its categories (the tracking category marks it tracked).
    pub categories: Vec<String>,
    /// The database row exsync created it for (its idempotency key, where the server keeps
    /// one on the item), so an earlier create is never imported as a second row.
    pub created_for: Option<Uuid>,
}

/// What a delete needs to know about an item on the server: is it tracked, and what is the
/// mailbox's part in it if it is a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFacts {
    /// Its categories.
    pub categories: Vec<String>,
    /// The mailbox's role (meetings), else `NotAMeeting`.
    pub role: MeetingRole,
}

/// The result of writing an activity with a version token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; the item's (new) id and version.
    Written(ItemRef),
    /// The server holds a newer version (the token was stale: EWS's irresolvable conflict,
    /// Graph's 412): not written; the next pull resolves it.
    Conflict,
    /// The item no longer exists on the server.
    Missing,
    /// The server refused this one item (the text is kept on the row); the others go on.
    Refused(String),
}

/// Which row version a create writes (the idempotency key of a create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateKey {
    /// The database row.
    pub row_id: Uuid,
    /// Its version being written.
    pub version: i64,
}

/// How an activity leaves the mailbox (decided by `domain::scope::delete_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Moved to Deleted Items, as a user would; nobody is told.
    Delete,
    /// The organizer deletes a meeting: every attendee gets a cancellation.
    CancelMeeting,
    /// An attendee declines a meeting with this note; the organizer gets the decline.
    DeclineMeeting(&'static str),
}

/// What the sent copy of a queued email holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCopy {
    /// The Message-ID the server assigned, when it was returned.
    pub internet_message_id: Option<String>,
}

/// What became of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The server accepted the message (a copy is filed in Sent Items, tagged with its key).
    Accepted,
    /// The server refused this one message (bad recipient, too large, …): it fails alone.
    Refused(String),
    /// An earlier attempt asked the server to send it (its answer maybe lost) and neither
    /// its sent copy nor its draft is found now: it may be sent with its copy not filed yet.
    /// Nothing was sent again; the text says what was looked for.
    Unconfirmed(String),
}

/// Where a provider records, just before the request leaves, that it asks the server to send
/// a queued email (so a retry that finds no trace of it does not send it a second time), and
/// that the server definitely did not send it (so a normal retry may send it).
pub trait SendJournal: Send + Sync {
    /// The send request for this queued email is about to leave; `Err`: not recorded, so
    /// the request must not leave either.
    fn sending(&self, outgoing_id: Uuid) -> PortFuture<'_, ()>;

    /// The server gave a definite answer that it sent nothing (an error answer of its own, a
    /// refusal before processing, no request left at all): the mark of [`Self::sending`] is
    /// withdrawn. Never called when the outcome is unknown (a timeout, a dropped connection,
    /// an unreadable answer). `Err`: the mark stays, which is the safe side (a retry then
    /// waits for a copy instead of sending).
    fn not_sent(&self, outgoing_id: Uuid) -> PortFuture<'_, ()>;
}

/// A journal that records nothing (a test message that is never retried).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJournal;

impl SendJournal for NoJournal {
    fn sending(&self, _outgoing_id: Uuid) -> PortFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn not_sent(&self, _outgoing_id: Uuid) -> PortFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// What failed, in the terms `sync::reaction` decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server or the way to it failed for now (network, timeout, 5xx, a broken reply).
    Unavailable,
    /// The token endpoint failed for now; `retry_after` is its `Retry-After`, a floor.
    TokenEndpointUnavailable {
        /// How long the endpoint asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The server throttles this account or mailbox: wait `back_off` (EWS
    /// BackOffMilliseconds, Graph `Retry-After`), then go on.
    Throttled {
        /// How long to wait.
        back_off: Duration,
    },
    /// The stored sync state was refused or expired: start the folder over.
    SyncStateExpired,
    /// The credentials (password, NTLM, the application's secret or certificate) were
    /// refused: stop using them until they change.
    CredentialsRefused,
    /// The token endpoint refused the request as configured (tenant, scope): a setting.
    TokenRequestRefused,
    /// The account may not act as this mailbox (EWS impersonation, Graph app scope).
    ImpersonationDenied,
    /// The mailbox does not exist.
    MailboxNotFound,
    /// Access to the mailbox or one of its folders is denied.
    AccessDenied,
    /// The mailbox alone is refused while the credentials work for others (unlicensed,
    /// not enabled for the protocol).
    MailboxUnauthorized,
    /// The mailbox is over a quota (storage, submission): its items wait.
    QuotaExceeded,
    /// The mailbox may not send as the address it sends from: its items wait.
    SendAsDenied,
    /// The server refused this request for good (an unknown item, a value it will not take):
    /// one item's failure where an item is concerned, else the workload's.
    RequestRefused,
    /// The server refused the protocol request itself for good (an HTTP 4xx).
    ServiceRefused,
}

/// Why a port call failed: the class, the provider's stable code and the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServerError {
    /// What failed.
    pub failure: Failure,
    /// Stable code for alerts, `last_error_code` and metrics (e.g. `ews.server_busy`).
    pub code: String,
    /// Operator-facing text (bounded excerpts of remote text only; never a secret).
    pub message: String,
}

impl ServerError {
    /// An error of `failure` with its code and text.
    pub fn new(failure: Failure, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            failure,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The refused sync state: the caller starts the folder over.
    pub fn is_sync_state_expired(&self) -> bool {
        self.failure == Failure::SyncStateExpired
    }

    /// The request concerned one item and was refused for it (not the mailbox's failure).
    pub fn is_item_level(&self) -> bool {
        self.failure == Failure::RequestRefused
    }
}

/// How a [`MailServer`] is tuned for one workload (from `[sync]` and the mailbox row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Most changes one change query returns (1..=512).
    pub max_changes: u32,
    /// Most items one fetch request asks for.
    pub batch: usize,
    /// Put on the activities exsync creates, so users see them as tracked.
    pub tracking_category: Option<String>,
    /// Log this mailbox's request and response payloads (its own setting).
    pub log_payloads: bool,
}

/// Why no [`MailServer`] could be opened for a plan (raised as `credentials.missing`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The row lacks the user name or password the plan needs.
    #[error("{0} has no user name or password configured")]
    MissingCredentials(&'static str),
    /// The profile uses OAuth but has no OAuth settings.
    #[error("the profile has no OAuth application configured")]
    MissingOAuth,
    /// The OAuth certificate or its key cannot be used.
    #[error("the profile's OAuth certificate cannot be used: {0}")]
    Certificate(String),
    /// A profile setting the provider needs cannot be used (e.g. a Graph URL its client
    /// refuses).
    #[error("the profile cannot be used: {0}")]
    Setting(String),
}

/// Opens mailbox sessions: the process's provider(s), keeping what mailboxes share (one
/// client per credential, so a back-off or a refused password holds for all its mailboxes).
pub trait Connector: Send + Sync {
    /// A session for one workload of `mailbox`, connected as `plan` says. Makes no request.
    /// A credential refused earlier keeps answering "refused" without a request until the
    /// credential changes or the slow retry comes round.
    fn open(
        &self,
        profile: &Profile,
        mailbox: &Mailbox,
        plan: &ConnectionPlan,
        settings: &SessionSettings,
    ) -> Result<Arc<dyn MailServer>, OpenError>;

    /// A connector with the same transport and options but nothing cached: a Test & Enable
    /// run signs in afresh instead of reusing a client whose credentials were refused.
    fn fresh(&self) -> Arc<dyn Connector>;
}

/// One mailbox on its server, reached one way (its address, credentials and access mode are
/// fixed when it is opened). Every method is one or a few requests; none retries a failure
/// the caller must react to.
pub trait MailServer: Send + Sync {
    /// The mailbox's address.
    fn address(&self) -> &str;

    /// The next page of `folder`'s changes after `state` (`None`: from the beginning; the
    /// whole folder is then reported as created). A refused or expired state is
    /// [`Failure::SyncStateExpired`]: the caller resets it and starts over (stored copies are
    /// recognised by id). `hint` may make the page smaller, never larger.
    fn changes(
        &self,
        folder: Folder,
        state: Option<String>,
        hint: ChangeHint,
    ) -> PortFuture<'_, ChangePage>;

    /// The emails with these ids, in order, with what exsync stores and the incoming filter
    /// reads; an item that is not email is `Ok(None)`; one item's failure is its `Err` (gone
    /// items marked so). Fetched in batches of [`SessionSettings::batch`]; a batch the
    /// server stopped before processing is asked for again.
    fn emails<'a>(&'a self, ids: &'a [String]) -> PortFuture<'a, Vec<FetchedMail>>;

    /// The activities of `kind` with these ids, in order (as [`MailServer::emails`]).
    fn activities<'a>(
        &'a self,
        kind: ActKind,
        ids: &'a [String],
    ) -> PortFuture<'a, Vec<Result<RemoteActivity, ItemFailure>>>;

    /// What a delete must know about an item: its categories and, for an appointment, the
    /// mailbox's part in the meeting. `Ok(None)`: the item is gone.
    fn item_facts<'a>(&'a self, kind: ActKind, id: &'a str) -> PortFuture<'a, Option<ItemFacts>>;

    /// The sent copy of a queued email, found by its idempotency key (the row's id, carried
    /// by the message in one fixed named property): a send the server accepted, before a
    /// crash or a lost reply too. `None`: not there (not sent, or not filed yet).
    fn find_sent(&self, outgoing_id: Uuid) -> PortFuture<'_, Option<SentCopy>>;

    /// Send a queued email as this mailbox (`From` = the mailbox), tagged with its row's id
    /// as the idempotency key, keeping a copy in Sent Items. The server assigns the
    /// Message-ID (read it back with [`MailServer::find_sent`]). `Err`: the mailbox or the
    /// connection failed (quota, Send As right, …) and nothing about the message is decided.
    /// Every provider's send can leave without a trace to find on a retry (the answer lost,
    /// the Sent Items copy not filed yet), so it calls `journal.sending` before the request
    /// leaves, and `journal.not_sent` when the server's answer says definitely that nothing
    /// was sent. An earlier attempt's issued send (`email.send_issued_at`) with no sent copy
    /// (nor, for Graph, a draft) found now is [`SendOutcome::Unconfirmed`]: never sent again.
    fn send<'a>(
        &'a self,
        email: &'a OutgoingEmail,
        journal: &'a dyn SendJournal,
    ) -> PortFuture<'a, SendOutcome>;

    /// What this server would refuse in an activity, checked before a request is spent on
    /// it (a key its schema does not know, an appointment ending before it starts). `None`:
    /// fine to write.
    fn write_problem(&self, fields: &ActFields) -> Option<String>;

    /// Create an activity in its folder (tagged with the tracking category). A request the
    /// server refuses as a whole concerns this one item: `Refused`, the others go on. `key`
    /// names the row version being created: a provider whose server dedupes retried creates
    /// (Graph's `transactionId`) sends it, so a retry after a lost answer creates nothing new.
    fn create<'a>(&'a self, key: CreateKey, fields: &'a ActFields) -> PortFuture<'a, WriteOutcome>;

    /// Update the fields exsync owns of an activity, only if `item.version` is still the
    /// server's (never overwriting a newer version: `Conflict`). `Missing`: gone.
    fn update<'a>(
        &'a self,
        item: &'a ItemRef,
        fields: &'a ActFields,
    ) -> PortFuture<'a, WriteOutcome>;

    /// Remove an activity the way `removal` says. `Ok(false)`: it was already gone. A
    /// refusal of this one item is [`Failure::RequestRefused`].
    fn remove<'a>(&'a self, kind: ActKind, id: &'a str, removal: Removal) -> PortFuture<'a, bool>;

    /// The ids correlating the last request of this session that failed with the server's
    /// logs (kept with the stored last error), if any failed.
    fn failed_request(&self) -> Option<ErrorCorrelation>;
}

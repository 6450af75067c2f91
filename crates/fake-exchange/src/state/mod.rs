//! The fake Exchange's memory: accounts (users and OAuth apps), rights, mailboxes with their
//! distinguished folders, items with ids and change keys, per-folder change logs behind the sync
//! state tokens, throttling bookkeeping and the statistics `/_fake/stats` reports.
//!
//! Owns the data and its invariants (ids encode their mailbox, change keys change on every
//! update, every change is logged). It knows nothing of HTTP or XML.
//!
//! Split by concern, one file each: accounts and rights, mailboxes and items, meetings, tokens,
//! statistics and the request log; this file holds the shared state, its lock and the faults.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
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

use exsync_ews::ops::subscribe::EventType;
use exsync_ews::recurrence::Recurrence;
use exsync_ews::types::{
    whole_seconds, Body, BodyType, CalendarItem, CalendarItemKind, Contact,
    DistinguishedFolderName, EmailAddress, FolderId, Item, ItemBase, ItemId, Message, ResponseType,
    Task, TaskStatus,
};
use exsync_ews::xml::XmlLimits;

mod accounts;
mod mailboxes;
mod meetings;
mod stats;
mod tokens;
mod transport;

pub use accounts::*;
pub use mailboxes::*;
pub use stats::*;
pub use tokens::*;
pub use transport::SentMessage;

type HmacSha256 = Hmac<Sha256>;

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
    pub(crate) streaming: crate::streaming::Streaming,
    /// Where item changes go for the fake Graph's change notifications (when Graph is served).
    pub(crate) graph_changes: Option<crate::graph::ChangeSender>,
    /// What the transport sent, oldest first (`GET /_fake/sent`).
    pub(crate) sent: VecDeque<SentMessage>,
    /// Sent Items copies to be filed later (`sent_items_delay_ms`).
    pub(crate) pending_copies: Vec<transport::PendingCopy>,
}

pub(super) fn key(s: &str) -> String {
    s.trim().to_ascii_lowercase()
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
                streaming: crate::streaming::Streaming::default(),
                graph_changes: None,
                sent: VecDeque::new(),
                pending_copies: Vec::new(),
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
    /// Sent Items copies whose time has come are filed first.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.file_due_copies();
        inner
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

    /// Take the next queued one-shot fault for an `operation` request carrying `items` items,
    /// if any (a batch stop waits for a request with more items than it lets through, a lost
    /// create reply for a CreateItem).
    pub(crate) fn take_one_shot(
        &self,
        operation: &str,
        items: usize,
    ) -> Option<super::OneShotFault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match faults.fail_next.first() {
            None => None,
            Some(super::OneShotFault::LoseCreateReply) if operation != "CreateItem" => None,
            Some(super::OneShotFault::BatchStoppedAfter(n))
                if items <= usize::try_from(*n).unwrap_or(usize::MAX) =>
            {
                None
            }
            Some(_) => Some(faults.fail_next.remove(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OneShotFault;

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
    fn a_lost_create_reply_waits_for_the_next_create_item() {
        let s = state();
        s.update_faults(&FaultsPatch {
            fail_next: Some(vec![OneShotFault::LoseCreateReply, OneShotFault::Http500]),
            ..FaultsPatch::default()
        })
        .unwrap();
        assert_eq!(s.take_one_shot("SyncFolderItems", 0), None);
        assert_eq!(s.take_one_shot("FindItem", 0), None);
        assert_eq!(
            s.take_one_shot("CreateItem", 1),
            Some(OneShotFault::LoseCreateReply)
        );
        assert_eq!(s.take_one_shot("GetItem", 1), Some(OneShotFault::Http500));
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

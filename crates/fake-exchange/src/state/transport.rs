//! The fake's mail transport: every message it sent (EWS CreateItem with SendOnly or
//! SendAndSaveCopy, Graph sendMail and draft send), kept for `GET /_fake/sent` so tests count
//! deliveries, and the Sent Items copies it files late (`sent_items_delay_ms`), as
//! Exchange's transport files them after answering.

use super::*;

/// Most sent messages remembered (the oldest are forgotten first).
const SENT_LOG_LEN: usize = 10_000;

/// One message the fake's transport sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentMessage {
    /// The sending mailbox (the `From` address).
    pub from: String,
    /// Every recipient (To, Cc and Bcc), lower case.
    pub recipients: Vec<String>,
    /// Its subject.
    pub subject: String,
    /// The Message-ID the fake assigned.
    pub internet_message_id: String,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// `ews` or `graph`: how it was asked for.
    pub protocol: String,
}

/// A Sent Items copy waiting to be filed.
pub(crate) struct PendingCopy {
    due: Instant,
    mailbox: String,
    folder: DistinguishedFolderName,
    item: Item,
}

impl Inner {
    /// Remember a message the transport sent.
    pub(crate) fn record_sent(&mut self, protocol: &str, message: &Message) {
        if self.sent.len() == SENT_LOG_LEN {
            self.sent.pop_front();
        }
        let recipients = message
            .to_recipients
            .iter()
            .chain(&message.cc_recipients)
            .chain(&message.bcc_recipients)
            .map(|a| key(&a.address))
            .collect();
        self.sent.push_back(SentMessage {
            from: message
                .from
                .as_ref()
                .map(|a| key(&a.address))
                .unwrap_or_default(),
            recipients,
            subject: message.base.subject.clone().unwrap_or_default(),
            internet_message_id: message.internet_message_id.clone().unwrap_or_default(),
            sent_at: message.base.date_time_sent.unwrap_or_else(Utc::now),
            protocol: protocol.to_owned(),
        });
    }

    /// File `item` in `mailbox`'s `folder` after `delay` (at once when zero): the copy of a
    /// sent message, which Exchange's transport files after the answer.
    pub(crate) fn file_sent_copy(
        &mut self,
        mailbox: &str,
        folder: DistinguishedFolderName,
        item: Item,
        delay: Duration,
    ) -> Result<(), FakeError> {
        if delay.is_zero() {
            return self.insert_item(mailbox, folder, item).map(|_| ());
        }
        self.pending_copies.push(PendingCopy {
            due: Instant::now() + delay,
            mailbox: mailbox.to_owned(),
            folder,
            item,
        });
        Ok(())
    }

    /// File the copies whose time has come (called whenever the state is looked at, so a
    /// copy is there for anyone who looks after its time).
    pub(crate) fn file_due_copies(&mut self) {
        if self.pending_copies.is_empty() {
            return;
        }
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_copies)
            .into_iter()
            .partition(|c| c.due <= now);
        self.pending_copies = waiting;
        for copy in due {
            // A mailbox removed meanwhile has nowhere to file it.
            let _ = self.insert_item(&copy.mailbox, copy.folder, copy.item);
        }
    }
}

impl FakeState {
    /// The messages the transport sent, oldest first; with `from`, only that mailbox's.
    pub fn sent_messages(&self, from: Option<&str>) -> Vec<SentMessage> {
        let from = from.map(key);
        self.lock()
            .sent
            .iter()
            .filter(|m| from.as_ref().is_none_or(|f| *f == m.from))
            .cloned()
            .collect()
    }
}

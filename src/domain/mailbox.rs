//! A mailbox: one user's or queue's Exchange mailbox and how it is synchronised.

use crate::domain::{ApprovalStatus, MailboxId, ProfileId, SyncMethod, Workload};
use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// One mailbox row's settings, validated and with its password decrypted.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Row id.
    pub id: MailboxId,
    /// Primary SMTP address (lower case), unique.
    pub address: String,
    /// The email server profile that reaches it.
    pub profile_id: ProfileId,
    /// "Allow to use credentials for email processing": may its own credentials be used?
    pub allow_credentials_for_email_processing: bool,
    /// Its own user name (mailbox credentials).
    pub username: Option<String>,
    /// Its own password, decrypted only in memory.
    pub password: Option<SecretString>,
    /// Process Email Received After: the mailbox's own date (the later of this and the
    /// profile's Process Emails From applies).
    pub process_email_received_after: Option<DateTime<Utc>>,
    /// Incoming email method.
    pub incoming: SyncMethod,
    /// Outgoing email method.
    pub outgoing: SyncMethod,
    /// Appointments, contacts and tasks method.
    pub act: SyncMethod,
    /// Approval of the mailbox's email address.
    pub approval: ApprovalStatus,
    /// Whether EWS payloads of this mailbox may be logged (redacted), for diagnosis.
    pub payload_logging: bool,
}

impl Mailbox {
    /// The configured method of a workload.
    pub fn method(&self, workload: Workload) -> SyncMethod {
        match workload {
            Workload::Incoming => self.incoming,
            Workload::Outgoing => self.outgoing,
            Workload::Act => self.act,
        }
    }

    /// Every workload needs an approved address (Dynamics requires an approved mailbox for
    /// email and for appointments, contacts and tasks alike).
    pub fn wants(&self, workload: Workload) -> bool {
        self.method(workload) == SyncMethod::ServerSideSync
            && self.approval == ApprovalStatus::Approved
    }
}

//! Statistics (`/_fake/stats`) and the request log (`/_fake/requests`).

use super::*;

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

pub(super) const REQUEST_LOG_LEN: usize = 1000;

impl Inner {
    pub(crate) fn account_stats(&mut self, username: &str) -> &mut AccountStats {
        self.stats.accounts.entry(username.to_owned()).or_default()
    }

    pub(crate) fn record(&mut self, entry: RequestLogEntry) {
        if self.log.len() == REQUEST_LOG_LEN {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }
}

impl FakeState {
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
}

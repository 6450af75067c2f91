//! Seed files: the accounts, apps, rights, items and faults a fake Exchange starts with
//! (TOML, or JSON when the file name ends in `.json`; format in `docs/fake-exchange.md`).
//!
//! Owns reading and applying a seed; it uses only `FakeState`'s public operations.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state::{FakeState, MailboxSettings, NewAccount, NewApp, NewItems, Rights};
use super::{FakeError, FaultsPatch};

/// Items to create in one mailbox (the fields of `POST /_fake/mailboxes/{address}/items`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeedItems {
    /// The mailbox address.
    pub mailbox: String,
    /// What to create there.
    #[serde(flatten)]
    pub items: NewItems,
}

/// Settings of one mailbox (the fields of `PUT /_fake/mailboxes/{address}/settings`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeedMailboxSettings {
    /// The mailbox address.
    pub mailbox: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: MailboxSettings,
}

/// Everything a fake Exchange can start with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Logins, with mailboxes when they have an address.
    #[serde(default)]
    pub accounts: Vec<NewAccount>,
    /// OAuth applications.
    #[serde(default)]
    pub apps: Vec<NewApp>,
    /// Impersonation and delegate rights.
    #[serde(default)]
    pub rights: Vec<Rights>,
    /// Messages and ACT items.
    #[serde(default)]
    pub items: Vec<SeedItems>,
    /// Per-mailbox answers (401, quotas, message size limit).
    #[serde(default)]
    pub mailbox_settings: Vec<SeedMailboxSettings>,
    /// Fault knobs.
    #[serde(default)]
    pub faults: Option<FaultsPatch>,
}

impl Seed {
    /// Read a seed file (JSON when it ends in `.json`, TOML otherwise).
    pub fn load(path: &Path) -> Result<Seed, FakeError> {
        let seed_error = |reason: String| FakeError::Seed {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| seed_error(e.to_string()))?;
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            serde_json::from_str(&text).map_err(|e| seed_error(e.to_string()))
        } else {
            toml::from_str(&text).map_err(|e| seed_error(e.to_string()))
        }
    }

    /// Create everything in `state`, in order: accounts, apps, rights, items, mailbox settings,
    /// faults.
    pub fn apply(&self, state: &FakeState) -> Result<(), FakeError> {
        for a in &self.accounts {
            state.add_account(a)?;
        }
        for a in &self.apps {
            state.add_app(a)?;
        }
        for r in &self.rights {
            state.set_rights(r)?;
        }
        for i in &self.items {
            state.add_items(&i.mailbox, &i.items)?;
        }
        for m in &self.mailbox_settings {
            state.set_mailbox_settings(&m.mailbox, &m.settings)?;
        }
        if let Some(f) = &self.faults {
            state.update_faults(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Faults;
    use exsync_ews::xml::XmlLimits;

    #[test]
    fn a_toml_seed_creates_accounts_rights_items_and_faults() {
        let seed: Seed = toml::from_str(
            r#"
            [[accounts]]
            address = "anna@contoso.test"
            username = "anna"
            password = "pw"

            [[accounts]]
            username = "svc"
            password = "pw2"

            [[rights]]
            account = "svc"
            impersonate = ["anna@contoso.test"]

            [[items]]
            mailbox = "anna@contoso.test"
            folder = "calendar"
            count = 3

            [faults]
            latency_ms = 5
            "#,
        )
        .unwrap();
        let state = FakeState::new(Faults::default(), 1, XmlLimits::default());
        seed.apply(&state).unwrap();
        let stats = state.stats();
        assert_eq!(stats.mailboxes["anna@contoso.test"]["calendar"], 3);
        assert!(stats.accounts.contains_key("svc"));
        assert_eq!(state.faults().latency_ms, 5);
    }
}

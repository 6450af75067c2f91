//! Accounts and their rights: users and OAuth apps, passwords, impersonation, delegation and Send As / Send on Behalf.

use super::*;

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

impl FakeState {
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
}

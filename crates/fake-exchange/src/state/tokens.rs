//! Tokens the fake issues: OAuth access tokens (client secret or certificate assertion) and the signed sync-state tokens.

use super::*;

pub(crate) struct Token {
    pub(crate) username: String,
    pub(crate) expires: Instant,
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

impl FakeState {
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
        match crate::assertion::check(&mut inner, client_id, assertion, audience) {
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

    pub(super) fn mac(&self, payload: &str) -> String {
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

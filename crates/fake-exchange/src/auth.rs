//! Who is calling: Basic (user, DOMAIN\user or address), Bearer tokens from the fake's token
//! endpoint, and NTLMv2 (connection-bound, as IIS does it), and the way Exchange answers a
//! failed sign-in (HTTP 401 with `WWW-Authenticate`).
//!
//! Owns credential checks and the `failed_logins` counter; never logs or returns a secret.

use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;
use secrecy::ExposeSecret;

use super::state::{AccountKind, Inner};
use exsync_ews::ntlm;

/// Why a request was not signed in (all answered with HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No Authorization header, or a scheme the fake does not speak.
    #[error("no credentials")]
    Missing,
    /// Unknown user or wrong password.
    #[error("wrong user name or password")]
    Wrong,
    /// The password has expired.
    #[error("password expired")]
    Expired,
    /// Unknown or expired bearer token.
    #[error("invalid bearer token")]
    BadToken,
    /// The NTLM AUTHENTICATE carried no channel binding, or the wrong one, where Extended
    /// Protection asks for it (IIS answers 401).
    #[error("channel binding missing or wrong")]
    ChannelBinding,
    /// An NTLM NEGOTIATE was received: answer 401 with this CHALLENGE message.
    #[error("NTLM challenge issued")]
    NtlmChallenge(Vec<u8>),
}

/// How many NTLM connections are remembered before the oldest are forgotten.
const MAX_NTLM_CONNECTIONS: usize = 10_000;

/// The signed-in caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// User name or client id (the stats key).
    pub(crate) username: String,
    /// User or app.
    pub(crate) kind: AccountKind,
    /// The caller's own mailbox, if it has one.
    pub(crate) address: Option<String>,
}

/// Check the Authorization header against the accounts; counts failed logins.
/// `connection` identifies the TCP connection (NTLM authenticates connections, not requests).
pub(crate) fn authenticate(
    inner: &mut Inner,
    headers: &HeaderMap,
    connection: u64,
) -> Result<Principal, AuthError> {
    let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        // A connection NTLM already authenticated needs no header.
        let name = inner
            .ntlm_sessions
            .get(&connection)
            .cloned()
            .ok_or(AuthError::Missing)?;
        return principal(inner, &name);
    };
    let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if scheme.eq_ignore_ascii_case("ntlm") || scheme.eq_ignore_ascii_case("negotiate") {
        return ntlm(inner, value, connection);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(AuthError::Wrong)?;
        let (user, password) = decoded.split_once(':').ok_or(AuthError::Wrong)?;
        let Some(account) = inner.find_login(user) else {
            return Err(AuthError::Wrong);
        };
        let name = account.username.clone();
        let result =
            if account.kind != AccountKind::User || account.password.expose_secret() != password {
                Err(AuthError::Wrong)
            } else if account.expired {
                Err(AuthError::Expired)
            } else {
                Ok(Principal {
                    username: name.clone(),
                    kind: account.kind,
                    address: account.address.clone(),
                })
            };
        if result.is_err() {
            inner.account_stats(&name).failed_logins += 1;
        }
        result
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let token = inner.tokens.get(rest.trim()).ok_or(AuthError::BadToken)?;
        if token.expires <= Instant::now() {
            return Err(AuthError::BadToken);
        }
        let account = inner
            .find_login(&token.username)
            .ok_or(AuthError::BadToken)?;
        Ok(Principal {
            username: account.username.clone(),
            kind: account.kind,
            address: account.address.clone(),
        })
    } else {
        Err(AuthError::Missing)
    }
}

fn principal(inner: &Inner, name: &str) -> Result<Principal, AuthError> {
    let account = inner.find_login(name).ok_or(AuthError::Wrong)?;
    if account.expired {
        return Err(AuthError::Expired);
    }
    Ok(Principal {
        username: account.username.clone(),
        kind: account.kind,
        address: account.address.clone(),
    })
}

/// One NTLM leg: NEGOTIATE gets a CHALLENGE; AUTHENTICATE is verified (NTLMv2) against the
/// challenge this connection was sent, and on success the connection is signed in.
fn ntlm(inner: &mut Inner, value: &str, connection: u64) -> Result<Principal, AuthError> {
    let token = ntlm::from_authorization(value).ok_or(AuthError::Wrong)?;
    if let Ok(_negotiate) = ntlm::parse_negotiate(&token) {
        let challenge = ntlm::random_server_challenge();
        if inner.ntlm_pending.len() >= MAX_NTLM_CONNECTIONS {
            inner.ntlm_pending.clear();
        }
        inner.ntlm_pending.insert(connection, challenge);
        inner.ntlm_sessions.remove(&connection);
        return Err(AuthError::NtlmChallenge(ntlm::challenge_message(
            challenge,
            "FAKEEXCHANGE",
            ntlm::FileTime::now(),
        )));
    }
    let authenticate = ntlm::parse_authenticate(&token).map_err(|_| AuthError::Wrong)?;
    let challenge = inner
        .ntlm_pending
        .remove(&connection)
        .ok_or(AuthError::Wrong)?;
    let Some(account) = inner.find_login(&authenticate.user) else {
        return Err(AuthError::Wrong);
    };
    let name = account.username.clone();
    let verified = account.kind == AccountKind::User
        && ntlm::verify_ntlmv2(&authenticate, challenge, &account.password);
    if !verified {
        inner.account_stats(&name).failed_logins += 1;
        return Err(AuthError::Wrong);
    }
    if account.expired {
        inner.account_stats(&name).failed_logins += 1;
        return Err(AuthError::Expired);
    }
    if !channel_binding_ok(inner, &authenticate) {
        inner.account_stats(&name).channel_binding_failures += 1;
        return Err(AuthError::ChannelBinding);
    }
    if inner.ntlm_sessions.len() >= MAX_NTLM_CONNECTIONS {
        inner.ntlm_sessions.clear();
    }
    inner.ntlm_sessions.insert(connection, name.clone());
    principal(inner, &name)
}

/// Extended Protection: over TLS, the MsvAvChannelBindings the client echoed in its (signed)
/// NTLMv2 blob must be the binding of the certificate this server presented. `Allow` accepts
/// a client that sends none (absent or all zeros); `Require` does not.
fn channel_binding_ok(inner: &Inner, authenticate: &ntlm::Authenticate) -> bool {
    use super::ExtendedProtection;
    let Some(expected) = inner.channel_binding else {
        return true; // plain HTTP: nothing to bind to
    };
    let sent = authenticate
        .client_av_pairs()
        .ok()
        .and_then(|pairs| pairs.channel_bindings())
        .filter(|hash| hash.iter().any(|b| *b != 0));
    match (inner.extended_protection, sent) {
        (ExtendedProtection::Off, _) => true,
        (_, Some(hash)) => hash == expected,
        (ExtendedProtection::Allow, None) => true,
        (ExtendedProtection::Require, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{FakeState, NewAccount};
    use crate::Faults;
    use exsync_ews::xml::XmlLimits;
    use http::HeaderValue;

    fn basic(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&v).unwrap(),
        );
        h
    }

    #[test]
    fn basic_accepts_user_domain_user_and_address_forms() {
        let s = FakeState::new(Faults::default(), 1, XmlLimits::default());
        s.add_account(&NewAccount {
            address: Some("anna@contoso.test".into()),
            username: Some("anna".into()),
            password: "pw".into(),
        })
        .unwrap();
        let mut inner = s.lock();
        for login in ["anna", "CONTOSO\\anna", "anna@contoso.test"] {
            let p = authenticate(&mut inner, &basic(login, "pw"), 1).unwrap();
            assert_eq!(p.username, "anna");
        }
        assert_eq!(
            authenticate(&mut inner, &basic("anna", "nope"), 1),
            Err(AuthError::Wrong)
        );
        assert_eq!(inner.stats.accounts["anna"].failed_logins, 1);
        assert_eq!(
            authenticate(&mut inner, &HeaderMap::new(), 1),
            Err(AuthError::Missing)
        );
    }

    /// An AUTHENTICATE message from the client code, carrying `binding`.
    fn authenticate_with(binding: Option<ntlm::ChannelBindings>) -> ntlm::Authenticate {
        let challenge = ntlm::parse_challenge(&ntlm::challenge_message(
            [1; 8],
            "FAKEEXCHANGE",
            ntlm::FileTime::now(),
        ))
        .unwrap();
        let creds = ntlm::NtlmCredentials::from_account("anna", "pw".to_owned().into());
        let options = ntlm::AuthenticateOptions {
            workstation: String::new(),
            channel_bindings: binding,
        };
        let bytes = ntlm::authenticate_message_now(&creds, &challenge, &options).unwrap();
        ntlm::parse_authenticate(&bytes).unwrap()
    }

    #[test]
    fn extended_protection_refuses_a_wrong_binding_and_require_refuses_none() {
        use crate::ExtendedProtection;
        let s = FakeState::new(Faults::default(), 1, XmlLimits::default());
        let right = ntlm::ChannelBindings::tls_server_end_point(&[0x38; 48]);
        // What a client hashing a SHA-384-signed certificate with SHA-256 would send.
        let wrong = ntlm::ChannelBindings::tls_server_end_point(&[0x25; 32]);
        let mut inner = s.lock();
        inner.channel_binding = Some(right.hash());
        for (mode, binding, ok) in [
            (ExtendedProtection::Require, Some(right), true),
            (ExtendedProtection::Require, Some(wrong), false),
            (ExtendedProtection::Require, None, false),
            (ExtendedProtection::Allow, Some(right), true),
            (ExtendedProtection::Allow, Some(wrong), false),
            (ExtendedProtection::Allow, None, true),
            (ExtendedProtection::Off, Some(wrong), true),
        ] {
            inner.extended_protection = mode;
            assert_eq!(
                channel_binding_ok(&inner, &authenticate_with(binding)),
                ok,
                "{mode:?} {binding:?}"
            );
        }
        // Plain HTTP: nothing to bind to.
        inner.channel_binding = None;
        inner.extended_protection = ExtendedProtection::Require;
        assert!(channel_binding_ok(&inner, &authenticate_with(None)));
    }
}

//! Client assertions at the fake's token endpoint: a JWT signed with a registered
//! application certificate (RFC 7523), checked as the Microsoft identity platform documents
//! it ("Microsoft identity platform application authentication certificate credentials").
//!
//! Owns the checks: the header's algorithm (PS256 with `x5t#S256`, or RS256 with `x5t`) and
//! thumbprint naming the registered certificate, the signature, `aud` = the token endpoint,
//! `iss` = `sub` = the client id, the validity window (`nbf` / `exp`, five minutes of clock
//! skew), and a `jti` never used before (replays are refused: an assumption, stricter than
//! the documentation states, so a client that passes here passes there).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;

use super::state::{AccountKind, Inner};
use exsync_ews::oauth::{verify_with_certificate, AssertionSigning};

/// Clock skew tolerated on `nbf` and `exp`.
const SKEW_SECS: i64 = 300;

/// How many used assertion ids are remembered (the oldest are forgotten first).
const MAX_REMEMBERED_IDS: usize = 10_000;

/// An OAuth error code, its description, and the app to count a failed login for.
type Refusal = ((&'static str, String), Option<String>);

fn refuse(code: &'static str, description: &str, app: Option<&str>) -> Refusal {
    ((code, description.to_owned()), app.map(str::to_owned))
}

fn decode_json(part: &str) -> Option<serde_json::Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Check `assertion` for `client_id` (or the assertion's `sub` when the form named none)
/// against the app's registered certificate; the app's user name on success.
pub(crate) fn check(
    inner: &mut Inner,
    client_id: Option<&str>,
    assertion: &str,
    audience: &str,
) -> Result<String, Refusal> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header_part, claims_part, signature_part] = parts[..] else {
        return Err(refuse(
            "invalid_request",
            "AADSTS50027: the client assertion is not a signed JWT",
            None,
        ));
    };
    let (Some(header), Some(claims)) = (decode_json(header_part), decode_json(claims_part)) else {
        return Err(refuse(
            "invalid_request",
            "AADSTS50027: the client assertion is not a readable JWT",
            None,
        ));
    };
    let claim = |name: &str| claims.get(name).and_then(|v| v.as_str());
    let Some(id) = client_id.or(claim("sub")) else {
        return Err(refuse(
            "invalid_request",
            "AADSTS900144: no client_id",
            None,
        ));
    };
    let Some(account) = inner.find_login(id) else {
        return Err(refuse(
            "unauthorized_client",
            "AADSTS700016: application not found in the directory",
            None,
        ));
    };
    let name = account.username.clone();
    if account.kind != AccountKind::App {
        return Err(refuse(
            "unauthorized_client",
            "AADSTS700016: not an application",
            None,
        ));
    }
    let Some(certificate) = account.certificate.clone() else {
        return Err(refuse(
            "invalid_client",
            "AADSTS700027: no certificate is registered on the application",
            Some(&name),
        ));
    };
    let signing = match header.get("alg").and_then(|v| v.as_str()) {
        Some("PS256") => AssertionSigning::Ps256,
        Some("RS256") => AssertionSigning::Rs256,
        _ => {
            return Err(refuse(
                "invalid_client",
                "AADSTS5002738: unsupported client assertion algorithm (PS256 or RS256)",
                Some(&name),
            ))
        }
    };
    let sha256 = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &certificate));
    let sha1 = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &certificate,
    ));
    let named = match (
        header.get("x5t#S256").and_then(|v| v.as_str()),
        header.get("x5t").and_then(|v| v.as_str()),
    ) {
        (Some(t), _) => t == sha256,
        (None, Some(t)) => signing == AssertionSigning::Rs256 && t == sha1,
        (None, None) => false,
    };
    if !named {
        return Err(refuse(
            "invalid_client",
            "AADSTS700027: the certificate used to sign the client assertion is not registered on the application",
            Some(&name),
        ));
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature_part) else {
        return Err(refuse(
            "invalid_client",
            "AADSTS700027: client assertion contains an invalid signature",
            Some(&name),
        ));
    };
    let signed = format!("{header_part}.{claims_part}");
    let cert = rustls::pki_types::CertificateDer::from(certificate);
    if !verify_with_certificate(&cert, signing, signed.as_bytes(), &signature) {
        return Err(refuse(
            "invalid_client",
            "AADSTS700027: client assertion contains an invalid signature",
            Some(&name),
        ));
    }
    if claim("aud") != Some(audience) {
        return Err(refuse(
            "invalid_client",
            "AADSTS700016: the client assertion's audience is not this token endpoint",
            Some(&name),
        ));
    }
    if claim("iss") != Some(name.as_str()) || claim("sub") != Some(name.as_str()) {
        return Err(refuse(
            "invalid_client",
            "AADSTS700021: iss and sub must be the client id",
            Some(&name),
        ));
    }
    let now = Utc::now().timestamp();
    let number = |name: &str| claims.get(name).and_then(|v| v.as_i64());
    let (Some(nbf), Some(exp)) = (number("nbf"), number("exp")) else {
        return Err(refuse(
            "invalid_client",
            "AADSTS700024: the client assertion has no nbf / exp",
            Some(&name),
        ));
    };
    if nbf > now + SKEW_SECS || exp < now - SKEW_SECS {
        return Err(refuse(
            "invalid_client",
            "AADSTS700024: client assertion is not within its valid time range",
            Some(&name),
        ));
    }
    let Some(jti) = claim("jti").filter(|j| !j.is_empty()) else {
        return Err(refuse(
            "invalid_client",
            "AADSTS700021: the client assertion has no jti",
            Some(&name),
        ));
    };
    inner
        .assertion_ids
        .retain(|_, expires| *expires >= now - SKEW_SECS);
    if inner.assertion_ids.contains_key(jti) {
        return Err(refuse(
            "invalid_client",
            "AADSTS700021: the client assertion was already used (jti replayed)",
            Some(&name),
        ));
    }
    if inner.assertion_ids.len() >= MAX_REMEMBERED_IDS {
        inner.assertion_ids.clear();
    }
    inner.assertion_ids.insert(jti.to_owned(), exp);
    Ok(name)
}

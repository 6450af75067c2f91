//! OAuth2 client-credentials (app-only) tokens for EWS, cached and refreshed before expiry,
//! with a client secret or — as Microsoft recommends for app-only access — a certificate
//! (a signed JWT client assertion).
//!
//! One [`TokenSource`] per application; concurrent passes share its token and at most one
//! of them fetches a new one at a time. Token endpoint trouble is not a bad credential:
//! 429, 5xx and timeouts are [`TokenError::Unavailable`] (a short `Retry-After` is waited
//! out, a longer one is honoured by every caller of the source), and only `invalid_client` /
//! `unauthorized_client` are [`TokenError::Rejected`]. The client secret, the private key,
//! the assertion and the token never appear in an error or a log line.

use super::transport::{RawResponse, RequestTrace, Transport, TransportError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use url::Url;

/// The target of this module's log lines: the name it had inside the exsync crate, so
/// operators' filters (`exsync::ews=debug`) and log queries keep working.
const LOG_TARGET: &str = "exsync::ews::oauth";

/// Refresh a token when less than this much of its life is left.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A `Retry-After` at most this long is waited out inside [`TokenSource::token`].
const MAX_INLINE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// How many times a token request is sent again after a short `Retry-After`.
const INLINE_RETRIES: u32 = 2;

/// Lifetime of a client assertion: Microsoft advises 5 to 10 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the application proves who it is.
pub enum ClientCredential {
    /// A client secret (sent as `client_secret`).
    Secret(SecretString),
    /// A certificate and its private key (a signed `client_assertion`).
    Certificate(ClientCertificate),
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCredential::Secret(_) => write!(f, "Secret(…)"),
            ClientCredential::Certificate(c) => write!(f, "Certificate({})", c.thumbprint()),
        }
    }
}

/// The JWS algorithm of a client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionSigning {
    /// RSASSA-PSS with SHA-256 and the `x5t#S256` (SHA-256) thumbprint: Microsoft's current
    /// guidance, the default.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and the `x5t` (SHA-1) thumbprint: the older form.
    Rs256,
}

impl AssertionSigning {
    /// The stored / `apply` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionSigning::Ps256 => "ps256",
            AssertionSigning::Rs256 => "rs256",
        }
    }

    /// From the stored / `apply` spelling.
    pub fn parse(text: &str) -> Option<AssertionSigning> {
        match text {
            "ps256" => Some(AssertionSigning::Ps256),
            "rs256" => Some(AssertionSigning::Rs256),
            _ => None,
        }
    }
}

/// Why a certificate credential cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// No `-----BEGIN CERTIFICATE-----` block, or one that does not parse.
    #[error("the certificate is not a PEM X.509 certificate: {0}")]
    Certificate(String),
    /// The private key is missing, encrypted, not RSA, or not usable.
    #[error("the private key cannot be used: {0}")]
    Key(String),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate")]
    Mismatch,
    /// Signing the assertion failed.
    #[error("signing the client assertion failed")]
    Signing,
}

/// An application certificate (RSA, as the Microsoft identity platform requires for client
/// assertions) with its private key, kept as a secret and parsed only to sign.
pub struct ClientCertificate {
    certificate: CertificateDer<'static>,
    private_key_pem: SecretString,
    signing: AssertionSigning,
    thumbprint_sha256: String,
    thumbprint_sha1: String,
}

impl ClientCertificate {
    /// The first certificate of `certificate_pem` (a chain after it is ignored) and the
    /// private key in `private_key_pem` (PKCS#8 or PKCS#1, unencrypted); checks that the key
    /// is an RSA key of at least 2048 bits belonging to the certificate.
    pub fn from_pem(
        certificate_pem: &str,
        private_key_pem: SecretString,
        signing: AssertionSigning,
    ) -> Result<ClientCertificate, CertificateError> {
        let certificate = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .next()
            .ok_or_else(|| {
                CertificateError::Certificate("no -----BEGIN CERTIFICATE----- block".into())
            })?
            .map_err(|e| CertificateError::Certificate(e.to_string()))?;
        webpki::EndEntityCert::try_from(&certificate)
            .map_err(|e| CertificateError::Certificate(format!("{e:?}")))?;
        let thumbprint_sha256 =
            URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &certificate));
        let thumbprint_sha1 = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &certificate,
        ));
        let this = ClientCertificate {
            certificate,
            private_key_pem,
            signing,
            thumbprint_sha256,
            thumbprint_sha1,
        };
        // Prove the pair: sign a probe with the key, verify it with the certificate.
        let probe = b"exsync key check";
        let signature = this.sign(probe)?;
        if !verify_with_certificate(&this.certificate, signing, probe, &signature) {
            return Err(CertificateError::Mismatch);
        }
        Ok(this)
    }

    /// The base64url SHA-256 thumbprint of the certificate (`x5t#S256`), as Entra shows it
    /// hex-encoded; safe to print.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint_sha256
    }

    /// The certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    fn key_pair(&self) -> Result<ring::rsa::KeyPair, CertificateError> {
        let pem = self.private_key_pem.expose_secret();
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err(CertificateError::Key(
                "it is encrypted; store it unencrypted (exsync encrypts it at rest), e.g. \
                 `openssl pkcs8 -topk8 -nocrypt`"
                    .into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| CertificateError::Key("no PEM private key block".into()))?;
        let parsed =
            match &key {
                PrivateKeyDer::Pkcs8(der) => ring::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der()),
                PrivateKeyDer::Pkcs1(der) => ring::rsa::KeyPair::from_der(der.secret_pkcs1_der()),
                _ => return Err(CertificateError::Key(
                    "not an RSA key (the Microsoft identity platform signs assertions with RSA)"
                        .into(),
                )),
            };
        parsed.map_err(|e| CertificateError::Key(format!("not a usable RSA key ({e})")))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CertificateError> {
        let key = self.key_pair()?;
        let mut signature = vec![0u8; key.public().modulus_len()];
        let padding: &'static dyn ring::signature::RsaEncoding = match self.signing {
            AssertionSigning::Ps256 => &ring::signature::RSA_PSS_SHA256,
            AssertionSigning::Rs256 => &ring::signature::RSA_PKCS1_SHA256,
        };
        key.sign(
            padding,
            &ring::rand::SystemRandom::new(),
            message,
            &mut signature,
        )
        .map_err(|_| CertificateError::Signing)?;
        Ok(signature)
    }

    /// A signed client assertion for `client_id` at the token endpoint `audience`, valid from
    /// `now` for ten minutes (claims aud, iss, sub, jti, nbf, iat, exp).
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<SecretString, CertificateError> {
        let header = match self.signing {
            AssertionSigning::Ps256 => serde_json::json!({
                "alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_sha256,
            }),
            AssertionSigning::Rs256 => serde_json::json!({
                "alg": "RS256", "typ": "JWT", "x5t": self.thumbprint_sha1,
            }),
        };
        let issued = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": issued,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// Whether `signature` over `message` verifies with the public key of `certificate` (DER).
pub fn verify_with_certificate(
    certificate: &CertificateDer<'_>,
    signing: AssertionSigning,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(certificate) else {
        return false;
    };
    let algorithm: &dyn rustls::pki_types::SignatureVerificationAlgorithm = match signing {
        AssertionSigning::Ps256 => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        AssertionSigning::Rs256 => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    };
    cert.verify_signature(algorithm, message, signature).is_ok()
}

/// An application registration allowed to call EWS app-only.
#[derive(Debug)]
pub struct OAuthApp {
    /// Token endpoint (also the assertion's audience).
    pub token_url: Url,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret or certificate.
    pub credential: ClientCredential,
    /// Requested scope, e.g. `https://outlook.office365.com/.default`.
    pub scope: String,
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused the application's credential (`invalid_client`,
    /// `unauthorized_client`): a wrong or expired secret or certificate, a disabled app.
    #[error("the token endpoint rejected the application ({code})")]
    Rejected {
        /// The OAuth error code, never the secret.
        code: String,
    },
    /// The token endpoint refused the request for another reason (`invalid_request`,
    /// `invalid_scope`, an unknown tenant, a wrong URL): a setting to fix, not a credential.
    #[error("the token endpoint refused the request: HTTP {status} ({code})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The OAuth error code, or `unknown_error`.
        code: String,
    },
    /// The token endpoint could not be reached, timed out, throttled (429) or failed (5xx):
    /// retry later, after `retry_after` when it said so.
    #[error("the token endpoint is unavailable: {reason}")]
    Unavailable {
        /// What happened (no secret).
        reason: String,
        /// `Retry-After`, when the endpoint sent one.
        retry_after: Option<Duration>,
    },
    /// The token endpoint answered something that is not a token.
    #[error("the token endpoint answered an unreadable response: {0}")]
    Malformed(String),
    /// The configured certificate or key cannot sign an assertion.
    #[error("the OAuth client certificate cannot be used: {0}")]
    Credential(#[from] CertificateError),
}

impl From<TransportError> for TokenError {
    fn from(error: TransportError) -> Self {
        TokenError::Unavailable {
            reason: error.to_string(),
            retry_after: None,
        }
    }
}

impl TokenError {
    /// How long the endpoint asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

struct CachedToken {
    value: SecretString,
    refresh_after: Instant,
}

#[derive(Default)]
struct SourceState {
    cached: Option<CachedToken>,
    /// No token request before this instant (a `Retry-After` received).
    not_before: Option<Instant>,
    /// The last failed token request, for the stored last error.
    last_failure: Option<RequestTrace>,
}

/// Hands out a valid bearer token for one application.
pub struct TokenSource {
    app: OAuthApp,
    state: Mutex<SourceState>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSource({})", self.app.client_id)
    }
}

impl TokenSource {
    /// A source for `app` with nothing cached yet.
    pub fn new(app: OAuthApp) -> Self {
        Self {
            app,
            state: Mutex::new(SourceState::default()),
        }
    }

    /// A token valid for at least a few more minutes (fetched if needed). A `Retry-After` of
    /// at most two seconds is waited out and the request sent again (twice at most); a longer
    /// one is returned and honoured by every later call until it has passed.
    pub async fn token(&self, transport: &Transport) -> Result<SecretString, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(token) = state.cached.as_ref() {
            if Instant::now() < token.refresh_after {
                return Ok(token.value.clone());
            }
        }
        let mut retries = 0;
        loop {
            if let Some(wait) = state
                .not_before
                .and_then(|t| t.checked_duration_since(Instant::now()))
            {
                if wait > MAX_INLINE_RETRY_AFTER || retries > INLINE_RETRIES {
                    return Err(TokenError::Unavailable {
                        reason: "waiting for the token endpoint's Retry-After".into(),
                        retry_after: Some(wait),
                    });
                }
                tokio::time::sleep(wait).await;
            }
            let client_request_id = uuid::Uuid::new_v4();
            let (outcome, trace) = self.fetch(transport, client_request_id).await;
            match outcome {
                Ok(fresh) => {
                    let value = fresh.value.clone();
                    state.cached = Some(fresh);
                    state.not_before = None;
                    tracing::debug!(
                        target: LOG_TARGET,
                        client_id = %self.app.client_id,
                        client_request_id = %trace.client_request_id,
                        request_id = trace.ids.request_id.as_deref().unwrap_or(""),
                        "OAuth token issued"
                    );
                    return Ok(value);
                }
                Err(error) => {
                    tracing::warn!(
                        target: LOG_TARGET,
                        client_id = %self.app.client_id,
                        client_request_id = %trace.client_request_id,
                        request_id = trace.ids.request_id.as_deref().unwrap_or(""),
                        status = trace.status.unwrap_or(0),
                        error = %error,
                        "OAuth token request failed"
                    );
                    state.last_failure = Some(trace);
                    if let Some(after) = error.retry_after() {
                        state.not_before = Some(Instant::now() + after);
                        if after <= MAX_INLINE_RETRY_AFTER && retries < INLINE_RETRIES {
                            retries += 1;
                            continue;
                        }
                    }
                    return Err(error);
                }
            }
        }
    }

    /// The last failed token request (client-request-id and the endpoint's request id).
    pub async fn last_failure(&self) -> Option<RequestTrace> {
        self.state.lock().await.last_failure.clone()
    }

    /// Forget the cached token (Exchange rejected it): the next call fetches a new one.
    pub async fn invalidate(&self) {
        self.state.lock().await.cached = None;
    }

    async fn fetch(
        &self,
        transport: &Transport,
        client_request_id: uuid::Uuid,
    ) -> (Result<CachedToken, TokenError>, RequestTrace) {
        let mut trace = RequestTrace::new(client_request_id);
        let assertion;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.app.client_id.as_str()),
            ("scope", self.app.scope.as_str()),
        ];
        match &self.app.credential {
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose_secret()));
            }
            ClientCredential::Certificate(certificate) => {
                match certificate.assertion(
                    &self.app.client_id,
                    self.app.token_url.as_str(),
                    SystemTime::now(),
                ) {
                    Ok(signed) => assertion = signed,
                    Err(e) => return (Err(e.into()), trace),
                }
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", assertion.expose_secret()));
            }
        }
        let response = match transport
            .post_form(&self.app.token_url, &form, client_request_id)
            .await
        {
            Ok(response) => response,
            Err(e) => return (Err(e.into()), trace),
        };
        trace.status = Some(response.status.as_u16());
        trace.ids = response.ids.clone();
        (read_token(&response), trace)
    }
}

/// A token endpoint answer as a token, or the error its status and OAuth code mean.
fn read_token(response: &RawResponse) -> Result<CachedToken, TokenError> {
    let status = response.status;
    let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
    let code = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(|v| v.as_str())
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect::<String>()
        });
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(TokenError::Unavailable {
            reason: format!(
                "HTTP {}{}",
                status.as_u16(),
                code.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
            retry_after: response.retry_after,
        });
    }
    if !status.is_success() {
        let code = code.unwrap_or_else(|| "unknown_error".to_owned());
        return if matches!(code.as_str(), "invalid_client" | "unauthorized_client") {
            Err(TokenError::Rejected { code })
        } else {
            Err(TokenError::Refused {
                status: status.as_u16(),
                code,
            })
        };
    }
    let json = json.ok_or_else(|| {
        TokenError::Malformed(format!("HTTP {} without a JSON body", status.as_u16()))
    })?;
    let value = json
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| TokenError::Malformed("no access_token".to_owned()))?;
    let lifetime = json
        .get("expires_in")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(3600);
    let lifetime = Duration::from_secs(lifetime);
    // Refresh with a margin, but never sooner than half the lifetime of a short token.
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    Ok(CachedToken {
        value: SecretString::from(value.to_owned()),
        refresh_after: Instant::now() + lifetime - margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::StatusCode;

    fn response(status: u16, body: &str, retry_after: Option<u64>) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: Some("application/json".into()),
            www_authenticate: vec![],
            body: Bytes::from(body.to_owned()),
            ids: Default::default(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn throttling_and_server_errors_are_unavailable_not_a_bad_credential() {
        let e = read_token(&response(
            429,
            r#"{"error":"temporarily_unavailable"}"#,
            Some(7),
        ))
        .err()
        .unwrap();
        assert!(
            matches!(e, TokenError::Unavailable { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );
        for status in [500, 502, 503, 504] {
            let e = read_token(&response(status, "<html>down</html>", None))
                .err()
                .unwrap();
            assert!(matches!(e, TokenError::Unavailable { .. }), "{status}");
        }
    }

    #[test]
    fn only_invalid_client_and_unauthorized_client_reject_the_application() {
        for code in ["invalid_client", "unauthorized_client"] {
            let body = format!(r#"{{"error":"{code}","error_description":"AADSTS7000215"}}"#);
            let e = read_token(&response(401, &body, None)).err().unwrap();
            assert!(matches!(e, TokenError::Rejected { .. }), "{code}");
        }
        for code in ["invalid_request", "invalid_scope", "unsupported_grant_type"] {
            let body = format!(r#"{{"error":"{code}"}}"#);
            let e = read_token(&response(400, &body, None)).err().unwrap();
            assert!(
                matches!(e, TokenError::Refused { status: 400, .. }),
                "{code}"
            );
        }
        let e = read_token(&response(404, "not found", None)).err().unwrap();
        assert!(matches!(e, TokenError::Refused { status: 404, .. }));
    }

    /// A file of the workspace's shared test fixtures (`tests/fixtures` at the root).
    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn a_client_assertion_is_a_signed_jwt_with_the_thumbprint_and_claims() {
        let cert = ClientCertificate::from_pem(
            &fixture("oauth-app.crt"),
            SecretString::from(fixture("oauth-app.key")),
            AssertionSigning::Ps256,
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwt = cert
            .assertion("app-1", "https://login.example/t/oauth2/v2.0/token", now)
            .unwrap();
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["x5t#S256"], cert.thumbprint());
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(claims["iss"], "app-1");
        assert_eq!(claims["sub"], "app-1");
        assert_eq!(claims["nbf"], 1_800_000_000u64);
        assert_eq!(claims["exp"], 1_800_000_600u64);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(verify_with_certificate(
            &CertificateDer::from(cert.certificate_der().to_vec()),
            AssertionSigning::Ps256,
            signed.as_bytes(),
            &signature
        ));
        assert!(!format!("{:?}", ClientCredential::Certificate(cert)).contains("PRIVATE"));
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let wrong = ClientCertificate::from_pem(
            &fixture("oauth-app.crt"),
            SecretString::from(fixture("rsa-ca.key")),
            AssertionSigning::Ps256,
        );
        assert!(matches!(wrong, Err(CertificateError::Mismatch)));
        let not_a_cert = ClientCertificate::from_pem(
            "hello",
            SecretString::from(fixture("oauth-app.key")),
            AssertionSigning::Rs256,
        );
        assert!(matches!(not_a_cert, Err(CertificateError::Certificate(_))));
        let encrypted = ClientCertificate::from_pem(
            &fixture("oauth-app.crt"),
            SecretString::from("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
            AssertionSigning::Ps256,
        );
        assert!(matches!(encrypted, Err(CertificateError::Key(m)) if m.contains("encrypted")));
    }
}

//! The EWS client: one per credential, shared by every mailbox those credentials reach.
//!
//! Owns the rules that protect an account on Exchange: a refused credential is never tried
//! again by this client (no lock-out storm: at most one failed request per credential until the
//! credential changes), and a `BackOffMilliseconds` received is honoured exactly for the whole
//! account (no request leaves before it elapses). It speaks typed operations
//! ([`EwsOperation`]) and returns typed responses; per-item results stay data.

mod streaming;

pub use streaming::{Affinity, EventStream, STREAMING_UNSUPPORTED};

use super::error::EwsError;
use super::ntlm_http::{NtlmHttpError, NtlmSessionPool};
use super::oauth::TokenSource;
use super::observe::{RequestOutcome, SharedObserver};
use super::ops::{
    CreateItemRequest, CreateItemResponse, DeleteItemRequest, DeleteItemResponse, FindItemRequest,
    FindItemResponse, GetFolderRequest, GetFolderResponse, GetItemRequest, GetItemResponse,
    MeetingResponseRequest, SyncFolderHierarchyRequest, SyncFolderHierarchyResponse,
    SyncFolderItemsRequest, SyncFolderItemsResponse, UpdateItemRequest, UpdateItemResponse,
};
use super::soap::{ExchangeVersion, RequestHeader};
use super::transport::{RawResponse, RequestTrace, SoapPost, Transport};
use super::types::ResponseMessage;
use super::xml::XmlLimits;
use base64::Engine;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// The target of this module's log lines: the name it had inside the exsync crate, so
/// operators' filters (`exsync::ews=debug`) and log queries keep working.
const LOG_TARGET: &str = "exsync::ews::client";

/// How requests of one client are authenticated.
pub enum EwsAuth {
    /// HTTP Basic with a user name and password.
    Basic {
        /// User name as Exchange expects it (`user@domain` or `DOMAIN\user`).
        username: String,
        /// The password (sent only in the Authorization header).
        password: SecretString,
    },
    /// NTLM on connections the pool owns (on-premises Exchange).
    Ntlm(Arc<NtlmSessionPool>),
    /// OAuth2 client-credentials bearer tokens.
    OAuth(Arc<TokenSource>),
}

impl std::fmt::Debug for EwsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EwsAuth::Basic { username, .. } => write!(f, "Basic({username})"),
            EwsAuth::Ntlm(pool) => write!(f, "Ntlm({pool:?})"),
            EwsAuth::OAuth(source) => write!(f, "OAuth({source:?})"),
        }
    }
}

/// How many times one request is sent again after a short ErrorServerBusy before the
/// throttling is handed to the caller (who reschedules the workload after the back-off).
pub const INLINE_BUSY_RETRIES: u32 = 3;

/// Behaviour knobs of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `RequestServerVersion` sent with every request.
    pub version: ExchangeVersion,
    /// A server back-off at most this long is waited out inside `call` and the request sent
    /// again; a longer one is returned as [`EwsError::ServerBusy`] with the time to wait.
    pub max_inline_back_off: Duration,
    /// Log request and response bodies of every request of this client at debug level (a
    /// client is shared by every mailbox of its credential: per-mailbox logging is
    /// [`Target::log_payloads`]).
    pub log_payloads: bool,
    /// Limits on parsed responses.
    pub limits: XmlLimits,
    /// Told of every finished request (the daemon records its metrics here; default: nothing).
    pub observer: SharedObserver,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            version: ExchangeVersion::Exchange2013Sp1,
            max_inline_back_off: Duration::from_secs(2),
            log_payloads: false,
            limits: XmlLimits::default(),
            observer: SharedObserver::default(),
        }
    }
}

/// Which mailbox a request works on and how it reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Primary SMTP address of the mailbox (also sent as `X-AnchorMailbox`).
    pub mailbox: String,
    /// Send the `ExchangeImpersonation` header for it.
    pub impersonate: bool,
    /// Log this request's and response's bodies at debug level (the mailbox's payload
    /// logging; other mailboxes sharing the client are not logged).
    pub log_payloads: bool,
}

/// One EWS operation the client can send: its name, envelope and response parser.
pub trait EwsOperation {
    /// The operation name (SOAPAction, metrics label).
    const NAME: &'static str;
    /// The typed response.
    type Response;
    /// The whole request envelope.
    fn envelope(&self, header: &RequestHeader) -> String;
    /// Read a response body.
    fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<Self::Response, EwsError>;
    /// The back-off of an ErrorServerBusy sent as an Error-class message with HTTP 200.
    fn busy(response: &Self::Response) -> Option<Duration>;
}

/// The server back-off carried by any message of a response, if one is ErrorServerBusy.
fn busy_in<T>(messages: &[ResponseMessage<T>]) -> Option<Duration> {
    messages.iter().find_map(|m| match m.to_error() {
        Some(EwsError::ServerBusy { back_off }) => Some(back_off),
        _ => None,
    })
}

macro_rules! operation {
    ($request:ty, $response:ty, $name:literal) => {
        impl EwsOperation for $request {
            const NAME: &'static str = $name;
            type Response = $response;
            fn envelope(&self, header: &RequestHeader) -> String {
                self.to_xml(header)
            }
            fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<$response, EwsError> {
                <$response>::parse(bytes, limits)
            }
            fn busy(response: &$response) -> Option<Duration> {
                busy_in(&response.messages)
            }
        }
    };
}

operation!(GetFolderRequest, GetFolderResponse, "GetFolder");
operation!(
    SyncFolderHierarchyRequest,
    SyncFolderHierarchyResponse,
    "SyncFolderHierarchy"
);
operation!(
    SyncFolderItemsRequest,
    SyncFolderItemsResponse,
    "SyncFolderItems"
);
operation!(GetItemRequest, GetItemResponse, "GetItem");
operation!(FindItemRequest, FindItemResponse, "FindItem");
operation!(CreateItemRequest, CreateItemResponse, "CreateItem");
operation!(UpdateItemRequest, UpdateItemResponse, "UpdateItem");
operation!(DeleteItemRequest, DeleteItemResponse, "DeleteItem");
operation!(MeetingResponseRequest, CreateItemResponse, "CreateItem");

#[derive(Debug, Default)]
struct AccountState {
    /// Exchange refused these credentials: no further request is sent with them.
    rejected: bool,
    /// When they were refused.
    rejected_at: Option<Instant>,
    /// An answer showed the credentials were accepted; until then requests go one at a time.
    proven: bool,
    /// OAuth only: the mailbox that got an HTTP 401 since the last request that succeeded.
    unauthorized_mailbox: Option<String>,
    /// No request before this instant (the last BackOffMilliseconds received).
    not_before: Option<Instant>,
}

/// An EWS client for one endpoint and one credential.
#[derive(Debug)]
pub struct EwsClient {
    url: Url,
    auth: EwsAuth,
    transport: Transport,
    options: ClientOptions,
    state: Mutex<AccountState>,
    /// Held by the one request in flight while the credentials are unproven (a new client, or
    /// a fresh try after a rejection): the others wait for its answer, so a rejected password
    /// costs one failed sign-in however many mailboxes start at once.
    first_sign_in: tokio::sync::Mutex<()>,
    /// The HTTP client of streaming notifications (no whole-request timeout), made on first use.
    streaming_http: std::sync::OnceLock<reqwest::Client>,
}

impl EwsClient {
    /// A client for `url` authenticating with `auth` over `transport`.
    pub fn new(url: Url, auth: EwsAuth, transport: Transport, options: ClientOptions) -> Self {
        Self {
            url,
            auth,
            transport,
            options,
            state: Mutex::new(AccountState::default()),
            first_sign_in: tokio::sync::Mutex::new(()),
            streaming_http: std::sync::OnceLock::new(),
        }
    }

    /// The endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether Exchange refused this client's credentials (it sends nothing more).
    pub fn credentials_rejected(&self) -> bool {
        self.lock().rejected
    }

    /// When Exchange refused this client's credentials, if it did (a fresh client may try
    /// again once a retry interval has passed since).
    pub fn rejected_since(&self) -> Option<Instant> {
        let state = self.lock();
        state.rejected.then_some(state.rejected_at).flatten()
    }

    /// How long the account must still wait after a server back-off, if at all.
    pub fn back_off_remaining(&self) -> Option<Duration> {
        let not_before = self.lock().not_before?;
        not_before.checked_duration_since(Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AccountState> {
        // The state is two plain fields: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send `request` for `target` (or the account's own mailbox) and read its response.
    ///
    /// Errors say what to do ([`EwsError::kind`]); an Error-class message that is not
    /// ErrorServerBusy is returned as data inside the response. An ErrorServerBusy whose
    /// back-off is at most `max_inline_back_off` is waited out and the request sent again (a
    /// busy server did not act on it), at most [`INLINE_BUSY_RETRIES`] times; a body-less 503
    /// is not (not Exchange's verdict: the request may have been done).
    pub async fn call<O: EwsOperation>(
        &self,
        target: Option<&Target>,
        request: &O,
    ) -> Result<O::Response, EwsError> {
        self.call_traced(target, request).await.0
    }

    /// [`EwsClient::call`], also returning the last request sent (its `client-request-id`
    /// and Exchange's `request-id` / `X-BEServer`), `None` when nothing was sent (refused
    /// credentials, a back-off still running).
    pub async fn call_traced<O: EwsOperation>(
        &self,
        target: Option<&Target>,
        request: &O,
    ) -> (Result<O::Response, EwsError>, Option<RequestTrace>) {
        let mut retries = 0;
        loop {
            match self.call_once(target, request).await {
                // Only Exchange's own "busy" (or a wait before any request left) is retried
                // here: after a body-less 503 the request may have been done (a send sent).
                (Err(EwsError::ServerBusy { back_off }), trace)
                    if back_off <= self.options.max_inline_back_off
                        && retries < INLINE_BUSY_RETRIES
                        && trace.as_ref().is_none_or(|t| t.ews_answer) =>
                {
                    // The next attempt starts by waiting out the account's `not_before`.
                    retries += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn call_once<O: EwsOperation>(
        &self,
        target: Option<&Target>,
        request: &O,
    ) -> (Result<O::Response, EwsError>, Option<RequestTrace>) {
        if self.credentials_rejected() {
            return (Err(EwsError::Unauthorized), None);
        }
        // Until the credentials are proven, one request at a time: the others wait for its
        // answer (no lock-out storm when many mailboxes start at once or retry together).
        let _first = if self.lock().proven {
            None
        } else {
            Some(self.first_sign_in.lock().await)
        };
        if self.credentials_rejected() {
            return (Err(EwsError::Unauthorized), None);
        }
        if let Some(wait) = self.back_off_remaining() {
            if wait > self.options.max_inline_back_off {
                return (Err(EwsError::ServerBusy { back_off: wait }), None);
            }
            tokio::time::sleep(wait).await;
        }
        let header = match target {
            Some(t) if t.impersonate => {
                RequestHeader::impersonating(self.options.version, t.mailbox.clone())
            }
            _ => RequestHeader::new(self.options.version),
        };
        let envelope = request.envelope(&header);
        let log_payloads = self.options.log_payloads || target.is_some_and(|t| t.log_payloads);
        if log_payloads {
            tracing::debug!(
                target: LOG_TARGET,
                operation = O::NAME,
                request = %envelope,
                "EWS request payload"
            );
        }
        let anchor = target.map(|t| t.mailbox.as_str());
        let started = Instant::now();
        let mut trace = RequestTrace::new(uuid::Uuid::new_v4());
        let outcome = self
            .exchange::<O>(envelope.into_bytes(), anchor, log_payloads, &mut trace)
            .await;
        let outcome = outcome.map_err(|e| fill_mailbox(e, target));
        if let (Err(EwsError::Token(_)), EwsAuth::OAuth(source)) = (&outcome, &self.auth) {
            // No EWS request left: the token request is the one to correlate.
            if let Some(token_trace) = source.last_failure().await {
                trace = token_trace;
            }
        }
        let outcome = self.judge_credentials(outcome, target);
        let code = match &outcome {
            Ok(_) => "NoError".to_owned(),
            Err(e) => error_label(e),
        };
        self.options.observer.request_finished(&RequestOutcome {
            operation: O::NAME,
            code: &code,
            elapsed: started.elapsed(),
        });
        if let Err(EwsError::ServerBusy { back_off }) = &outcome {
            let mut state = self.lock();
            let until = Instant::now() + *back_off;
            state.not_before = Some(state.not_before.map_or(until, |t| t.max(until)));
        }
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let request_id = trace.ids.request_id.as_deref().unwrap_or("");
        let be_server = trace.ids.be_server.as_deref().unwrap_or("");
        match &outcome {
            Ok(_) => tracing::debug!(
                target: LOG_TARGET,
                operation = O::NAME,
                client_request_id = %trace.client_request_id,
                request_id,
                be_server,
                status = trace.status.unwrap_or(0),
                elapsed_ms,
                "EWS request"
            ),
            Err(error) => tracing::warn!(
                target: LOG_TARGET,
                operation = O::NAME,
                client_request_id = %trace.client_request_id,
                request_id,
                be_server,
                status = trace.status.unwrap_or(0),
                code = %code,
                error = %error,
                elapsed_ms,
                "EWS request failed"
            ),
        }
        (outcome, Some(trace))
    }

    /// What an answer says about the credentials: a rejection is sticky (no further request
    /// with them); any answer Exchange gave after signing in proves them. With OAuth, an HTTP
    /// 401 for one mailbox is that mailbox's problem (Exchange Online answers so for an
    /// unlicensed or mismatched mailbox while the app's token is fine) until a second mailbox
    /// gets one too with no success in between; with Basic or NTLM a 401 is the password's.
    fn judge_credentials<T>(
        &self,
        outcome: Result<T, EwsError>,
        target: Option<&Target>,
    ) -> Result<T, EwsError> {
        let mut state = self.lock();
        match &outcome {
            Ok(_) => {
                state.proven = true;
                state.unauthorized_mailbox = None;
            }
            Err(EwsError::Unauthorized) => {
                let mailbox = match (&self.auth, target) {
                    (EwsAuth::OAuth(_), Some(t)) => Some(t.mailbox.to_ascii_lowercase()),
                    _ => None,
                };
                match (mailbox, state.unauthorized_mailbox.clone()) {
                    (Some(mailbox), other) if other.as_ref().is_none_or(|o| *o == mailbox) => {
                        state.unauthorized_mailbox = Some(mailbox.clone());
                        return Err(EwsError::MailboxUnauthorized { mailbox });
                    }
                    _ => {
                        state.rejected = true;
                        state.rejected_at = Some(Instant::now());
                    }
                }
            }
            Err(
                EwsError::Ntlm(_)
                | EwsError::Token(
                    super::oauth::TokenError::Rejected { .. }
                    | super::oauth::TokenError::Credential(_),
                ),
            ) => {
                state.rejected = true;
                state.rejected_at = Some(Instant::now());
            }
            Err(
                EwsError::ServerBusy { .. }
                | EwsError::ImpersonationDenied { .. }
                | EwsError::MailboxNotFound { .. }
                | EwsError::InvalidSyncState
                | EwsError::AccessDenied { .. }
                | EwsError::ServerError { .. }
                | EwsError::MailboxRefused { .. }
                | EwsError::Request { .. },
            ) => state.proven = true,
            Err(_) => {}
        }
        outcome
    }

    async fn exchange<O: EwsOperation>(
        &self,
        body: Vec<u8>,
        anchor: Option<&str>,
        log_payloads: bool,
        trace: &mut RequestTrace,
    ) -> Result<O::Response, EwsError> {
        let mut raw = self
            .post(O::NAME, body.clone(), anchor, trace.client_request_id)
            .await?;
        trace.status = Some(raw.status.as_u16());
        trace.ids = raw.ids.clone();
        if raw.status == reqwest::StatusCode::UNAUTHORIZED {
            if let EwsAuth::OAuth(source) = &self.auth {
                // An expired or revoked token: fetch a new one and try once more (a new
                // request, a new client-request-id).
                source.invalidate().await;
                *trace = RequestTrace::new(uuid::Uuid::new_v4());
                raw = self
                    .post(O::NAME, body, anchor, trace.client_request_id)
                    .await?;
                trace.status = Some(raw.status.as_u16());
                trace.ids = raw.ids.clone();
            }
        }
        if log_payloads {
            tracing::debug!(
                target: LOG_TARGET,
                operation = O::NAME,
                status = raw.status.as_u16(),
                response = %String::from_utf8_lossy(&raw.body[..raw.body.len().min(64 * 1024)]),
                "EWS response payload"
            );
        }
        if !raw.status.is_success() {
            trace.ews_answer = super::soap::is_exchange_verdict(raw.status.as_u16(), &raw.body);
            return Err(EwsError::from_http_status(raw.status.as_u16(), &raw.body));
        }
        let response = O::parse(&raw.body, &self.options.limits)?;
        trace.ews_answer = true;
        if let Some(back_off) = O::busy(&response) {
            return Err(EwsError::ServerBusy { back_off });
        }
        Ok(response)
    }

    async fn post(
        &self,
        operation: &'static str,
        body: Vec<u8>,
        anchor: Option<&str>,
        client_request_id: uuid::Uuid,
    ) -> Result<RawResponse, EwsError> {
        let mut post = SoapPost {
            url: &self.url,
            body,
            operation,
            anchor_mailbox: anchor,
            authorization: None,
            client_request_id: Some(client_request_id),
        };
        match &self.auth {
            EwsAuth::Basic { username, password } => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose_secret()));
                post.authorization = HeaderValue::from_str(&format!("Basic {token}")).ok();
                Ok(self.transport.post(post).await?)
            }
            EwsAuth::OAuth(source) => {
                let token = source.token(&self.transport).await?;
                post.authorization =
                    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).ok();
                Ok(self.transport.post(post).await?)
            }
            EwsAuth::Ntlm(pool) => match pool.post(post).await {
                Ok(raw) => Ok(raw),
                Err(NtlmHttpError::Transport(e)) => Err(EwsError::Transport(e)),
                Err(NtlmHttpError::Rejected) => Err(EwsError::Unauthorized),
                Err(other) => Err(EwsError::Ntlm(other.to_string())),
            },
        }
    }
}

/// Exchange rarely names the mailbox in ErrorImpersonateUserDenied / ErrorNonExistentMailbox:
/// the client knows which one it asked for.
fn fill_mailbox(error: EwsError, target: Option<&Target>) -> EwsError {
    let Some(target) = target else { return error };
    match error {
        EwsError::ImpersonationDenied { mailbox } if mailbox.is_empty() => {
            EwsError::ImpersonationDenied {
                mailbox: target.mailbox.clone(),
            }
        }
        EwsError::MailboxNotFound { mailbox } if mailbox.is_empty() => EwsError::MailboxNotFound {
            mailbox: target.mailbox.clone(),
        },
        other => other,
    }
}

/// A bounded metrics label for an error: the EWS code, `HTTP_nnn`, or the failure's class.
fn error_label(error: &EwsError) -> String {
    match error {
        EwsError::ServerBusy { .. } => "ErrorServerBusy".into(),
        EwsError::Unauthorized => "HTTP_401".into(),
        EwsError::ImpersonationDenied { .. } => "ErrorImpersonateUserDenied".into(),
        EwsError::MailboxNotFound { .. } => "ErrorNonExistentMailbox".into(),
        EwsError::InvalidSyncState => "ErrorInvalidSyncStateData".into(),
        EwsError::MailboxUnauthorized { .. } => "HTTP_401_mailbox".into(),
        EwsError::AccessDenied { .. } => "ErrorAccessDenied".into(),
        EwsError::ServerError { code, .. }
        | EwsError::Request { code, .. }
        | EwsError::MailboxRefused { code, .. } => code.chars().take(64).collect(),
        EwsError::Http { status } => format!("HTTP_{status}"),
        EwsError::Malformed { .. } => "malformed".into(),
        EwsError::Transport(_) => "transport".into(),
        EwsError::Token(_) => "token".into(),
        EwsError::Ntlm(_) => "ntlm".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::GetFolderRequest;
    use crate::types::{BaseShape, ResponseClass, ResponseCode};

    #[test]
    fn a_busy_message_inside_a_200_reply_is_found() {
        let messages = vec![ResponseMessage::<()> {
            class: ResponseClass::Error,
            code: ResponseCode::ERROR_SERVER_BUSY,
            message_text: None,
            back_off: Some(Duration::from_millis(750)),
            payload: None,
        }];
        assert_eq!(busy_in(&messages), Some(Duration::from_millis(750)));
        let ok = vec![ResponseMessage::<()> {
            class: ResponseClass::Success,
            code: ResponseCode::NO_ERROR,
            message_text: None,
            back_off: None,
            payload: Some(()),
        }];
        assert_eq!(busy_in(&ok), None);
    }

    #[test]
    fn impersonation_sets_the_header_and_the_anchor() {
        let request = GetFolderRequest {
            folder_shape: BaseShape::IdOnly,
            additional_properties: vec![],
            folder_ids: vec![],
        };
        let header = RequestHeader::impersonating(ExchangeVersion::Exchange2013Sp1, "a@b.c");
        let xml = request.envelope(&header);
        assert!(xml.contains("ExchangeImpersonation"), "{xml}");
        assert!(xml.contains("a@b.c"), "{xml}");
        assert!(xml.contains("Exchange2013_SP1"), "{xml}");
    }

    #[test]
    fn errors_name_the_mailbox_that_was_asked_for() {
        let target = Target {
            mailbox: "x@y.z".into(),
            impersonate: true,
            log_payloads: false,
        };
        let e = fill_mailbox(
            EwsError::ImpersonationDenied {
                mailbox: String::new(),
            },
            Some(&target),
        );
        assert!(e.to_string().contains("x@y.z"));
    }

    #[test]
    fn the_basic_auth_debug_form_hides_the_password() {
        let auth = EwsAuth::Basic {
            username: "svc".into(),
            password: SecretString::from("hunter2".to_owned()),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}

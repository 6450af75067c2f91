//! The Graph error type and its classification into what the caller should do next.
//!
//! Owns mapping HTTP statuses and OData error bodies (`{"error":{"code","message",
//! "innerError":{…}}}`, GD-ERR) onto the same taxonomy as EWS: transient, throttled,
//! authentication, mailbox-level, item-level, sync state expired. Reactions never read
//! message text: every rule keys on the status and the error codes (the whole innerError
//! chain), and each cites its source key in `../shared/graph.md`. Errors carry bounded
//! excerpts of remote data and the request's correlation ids, never a header value that
//! could hold a secret, never a body.

use crate::token::TokenError;
use crate::transport::TransportError;
use std::time::Duration;
use uuid::Uuid;

/// Longest excerpt of remote data an error carries.
const EXCERPT_CHARS: usize = 200;

/// Largest error body parsed for codes (anything longer is judged by its status alone).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A bounded excerpt of remote text: at most 200 characters, control characters removed.
pub fn excerpt(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(EXCERPT_CHARS)
        .collect()
}

/// How the caller should react to a [`GraphError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Retry later with the normal backoff (network, 5xx, unreadable answer).
    Transient,
    /// Retry after [`GraphError::retry_after`], not counted as a failure.
    Throttled,
    /// The application's credentials or token were refused: stop using them and alert.
    Authentication,
    /// This mailbox cannot be served as configured (out of the app's scope, not enabled for
    /// REST, unknown, full, Send As missing): pause the workload, alert, retry slowly.
    MailboxLevel,
    /// Graph refused this one item (too large, invalid): fail the item, go on with the rest.
    ItemLevel,
    /// The addressed item (or folder) does not exist (deleted meanwhile).
    ItemNotFound,
    /// The item changed since it was read (412 on an `If-Match`): re-read and merge.
    Conflict,
    /// The delta state is gone: start the folder's round over (dedupe what comes again).
    SyncStateExpired,
}

/// Correlation ids of one request, for logs, `explain` and Microsoft support (GD-BP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    /// The `client-request-id` exsync sent (a fresh UUID per request).
    pub client_request_id: Uuid,
    /// Graph's `request-id` response header (bounded).
    pub request_id: Option<String>,
    /// The response's `Date` header.
    pub date: Option<String>,
    /// `x-ms-ags-diagnostic` (which Graph data centre answered; bounded).
    pub diagnostic: Option<String>,
}

impl std::fmt::Display for Correlation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client-request-id {}", self.client_request_id)?;
        if let Some(id) = &self.request_id {
            write!(f, ", request-id {id}")?;
        }
        Ok(())
    }
}

/// What went wrong, in domain terms.
#[derive(Debug, thiserror::Error)]
pub enum GraphFailure {
    /// 429 or 503 (or a wait from an earlier one still running): nothing is sent to this
    /// mailbox before `retry_after` elapses.
    #[error("Microsoft Graph is throttling requests for mailbox '{mailbox}' ({code}); retry in {retry_after:?}")]
    Throttled {
        /// The mailbox.
        mailbox: String,
        /// Graph's code (`TooManyRequests`, `ApplicationThrottled`, …) or `HTTP_503`, or
        /// `waiting` when the request was not sent because an earlier wait still runs.
        code: String,
        /// How long to wait from now.
        retry_after: Duration,
    },
    /// 401 (after one fresh token): the token was refused (`InvalidAuthenticationToken`,
    /// UNVERIFIED code; wrong audience or scope, revoked consent).
    #[error("Microsoft Graph refused the application's token for mailbox '{mailbox}' ({code})")]
    Unauthorized {
        /// The mailbox asked for.
        mailbox: String,
        /// Graph's code.
        code: String,
    },
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// 403: the application may not reach this mailbox (GD-LIMIT, EXO-RBAC).
    #[error(
        "Microsoft Graph denied the application access to mailbox '{mailbox}' ({code}): the mailbox is \
         outside the application's RBAC for Applications scope (or application access policy), or the \
         '{permission}' application permission is not granted. Add the mailbox to the management \
         scope of the app's role assignment (New-ManagementRoleAssignment -App … -Role \
         \"Application {permission}\" -CustomResourceScope …) or grant {permission} with admin consent; \
         changes can take up to 2 hours"
    )]
    AccessDenied {
        /// The mailbox asked for.
        mailbox: String,
        /// Graph's code (`ErrorAccessDenied`, …).
        code: String,
        /// The application permission the operation needs.
        permission: &'static str,
    },
    /// The mailbox is not served by Exchange Online's REST API (inactive, soft-deleted,
    /// on-premises, unlicensed, or a guest) (I-REST405, I-E5SUB39).
    #[error("mailbox '{mailbox}' is not enabled for the REST API (MailboxNotEnabledForRESTAPI): it is inactive, soft-deleted, unlicensed, a guest or on premises")]
    MailboxNotEnabledForRest {
        /// The mailbox.
        mailbox: String,
    },
    /// No such user or mailbox (I-INVUSER5460).
    #[error("mailbox '{mailbox}' does not exist in the tenant ({code})")]
    UnknownMailbox {
        /// The mailbox.
        mailbox: String,
        /// Graph's code.
        code: String,
    },
    /// The mailbox is full, or its named-property quota is exhausted (I-QUOTA2927,
    /// I-QUOTA527), or its submission quota is used up.
    #[error("mailbox '{mailbox}' is over a quota ({code}): {message}")]
    QuotaExceeded {
        /// The mailbox.
        mailbox: String,
        /// Graph's code.
        code: String,
        /// Graph's text (bounded).
        message: String,
    },
    /// The caller may not send as (or on behalf of) the `from` address (GD-FROM).
    #[error("mailbox '{mailbox}' may not send as the message's From address ({code}): grant Send As or Send on Behalf")]
    SendAsDenied {
        /// The mailbox.
        mailbox: String,
        /// Graph's code.
        code: String,
    },
    /// The delta token is expired or refused: start over (GD-DQO, GD-ERR, I-DQ2350, EVO-CONN).
    #[error("Microsoft Graph no longer knows the delta state (HTTP {status}, {code}); the round starts over")]
    SyncStateExpired {
        /// HTTP status.
        status: u16,
        /// Graph's code.
        code: String,
    },
    /// 412: the item changed since it was read (I-IRC1201).
    #[error("the item changed since it was read ({code})")]
    Conflict {
        /// Graph's code (`ErrorIrresolvableConflict`, …).
        code: String,
    },
    /// The item or folder does not exist (any more).
    #[error("the item does not exist ({code})")]
    ItemNotFound {
        /// Graph's code.
        code: String,
    },
    /// Graph refused this item (too large, invalid property, bad recipient, …).
    #[error("Microsoft Graph refused the item (HTTP {status}, {code}): {message}")]
    ItemRefused {
        /// HTTP status.
        status: u16,
        /// Graph's code.
        code: String,
        /// Graph's text (bounded).
        message: String,
    },
    /// Graph refused a mailbox-level request for a reason not named above.
    #[error("Microsoft Graph refused the request for mailbox '{mailbox}' (HTTP {status}, {code}): {message}")]
    MailboxRefused {
        /// The mailbox.
        mailbox: String,
        /// HTTP status.
        status: u16,
        /// Graph's code.
        code: String,
        /// Graph's text (bounded).
        message: String,
    },
    /// A server-side failure worth retrying later (5xx, transient Exchange codes, 408).
    #[error("Microsoft Graph failed (HTTP {status}, {code}): {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// Graph's code, or `HTTP_nnn`.
        code: String,
        /// Graph's text (bounded).
        message: String,
    },
    /// The answer was not what Graph sends (bad JSON, missing link, foreign paging link).
    #[error("malformed Graph response: {excerpt}")]
    Malformed {
        /// What was wrong (bounded).
        excerpt: String,
    },
    /// The HTTP exchange failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A failed Graph request: what went wrong and, when it was sent, its correlation ids.
#[derive(Debug, thiserror::Error)]
#[error("{failure}{}", correlation_suffix(.correlation))]
pub struct GraphError {
    failure: GraphFailure,
    correlation: Option<Box<Correlation>>,
}

fn correlation_suffix(correlation: &Option<Box<Correlation>>) -> String {
    correlation
        .as_ref()
        .map(|c| format!(" [{c}]"))
        .unwrap_or_default()
}

impl From<GraphFailure> for GraphError {
    fn from(failure: GraphFailure) -> Self {
        GraphError {
            failure,
            correlation: None,
        }
    }
}

impl GraphError {
    /// `failure` observed on the request with `correlation`.
    pub fn new(failure: GraphFailure, correlation: Option<Correlation>) -> Self {
        GraphError {
            failure,
            correlation: correlation.map(Box::new),
        }
    }

    /// What went wrong.
    pub fn failure(&self) -> &GraphFailure {
        &self.failure
    }

    /// The request's correlation ids (absent when nothing was sent).
    pub fn correlation(&self) -> Option<&Correlation> {
        self.correlation.as_deref()
    }

    /// How the caller should react.
    pub fn kind(&self) -> ErrorKind {
        self.failure.kind()
    }

    /// How long to wait before the next request to this mailbox, when throttled.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.failure {
            GraphFailure::Throttled { retry_after, .. } => Some(*retry_after),
            GraphFailure::Token(TokenError::Unavailable { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }

    /// Graph's own error code when it sent one, else a bounded label of the failure class
    /// (for metrics labels and `last_error_code`).
    pub fn code(&self) -> String {
        match &self.failure {
            GraphFailure::Throttled { code, .. }
            | GraphFailure::Unauthorized { code, .. }
            | GraphFailure::AccessDenied { code, .. }
            | GraphFailure::UnknownMailbox { code, .. }
            | GraphFailure::QuotaExceeded { code, .. }
            | GraphFailure::SendAsDenied { code, .. }
            | GraphFailure::SyncStateExpired { code, .. }
            | GraphFailure::Conflict { code }
            | GraphFailure::ItemNotFound { code }
            | GraphFailure::ItemRefused { code, .. }
            | GraphFailure::MailboxRefused { code, .. }
            | GraphFailure::Service { code, .. } => code.chars().take(64).collect(),
            GraphFailure::MailboxNotEnabledForRest { .. } => "MailboxNotEnabledForRESTAPI".into(),
            GraphFailure::Token(_) => "token".into(),
            GraphFailure::Malformed { .. } => "malformed".into(),
            GraphFailure::Transport(_) => "transport".into(),
        }
    }
}

impl GraphFailure {
    /// How the caller should react.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GraphFailure::Throttled { .. } => ErrorKind::Throttled,
            GraphFailure::Unauthorized { .. } => ErrorKind::Authentication,
            GraphFailure::Token(TokenError::Rejected { .. }) => ErrorKind::Authentication,
            GraphFailure::Token(TokenError::Unavailable {
                retry_after: Some(_),
                ..
            }) => ErrorKind::Throttled,
            GraphFailure::Token(_) => ErrorKind::Transient,
            GraphFailure::AccessDenied { .. }
            | GraphFailure::MailboxNotEnabledForRest { .. }
            | GraphFailure::UnknownMailbox { .. }
            | GraphFailure::QuotaExceeded { .. }
            | GraphFailure::SendAsDenied { .. }
            | GraphFailure::MailboxRefused { .. } => ErrorKind::MailboxLevel,
            GraphFailure::SyncStateExpired { .. } => ErrorKind::SyncStateExpired,
            GraphFailure::Conflict { .. } => ErrorKind::Conflict,
            GraphFailure::ItemNotFound { .. } => ErrorKind::ItemNotFound,
            GraphFailure::ItemRefused { .. } => ErrorKind::ItemLevel,
            GraphFailure::Service { .. }
            | GraphFailure::Malformed { .. }
            | GraphFailure::Transport(_) => ErrorKind::Transient,
        }
    }

    /// A [`GraphFailure::Malformed`] saying what was wrong (bounded).
    pub fn malformed(what: &str) -> Self {
        GraphFailure::Malformed {
            excerpt: excerpt(what),
        }
    }
}

/// The codes and message of an OData error body: the outer code first, then each nested
/// `innerError` code (Graph nests more specific codes there, GD-ERR).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// Codes, outermost first.
    pub codes: Vec<String>,
    /// The outer message (bounded).
    pub message: String,
    /// `innerError.request-id`, if the body carried it.
    pub request_id: Option<String>,
}

impl ServiceError {
    /// Read an OData error body; `None` when it is not one (an HTML page from a proxy, …).
    pub fn parse(body: &[u8]) -> Option<ServiceError> {
        if body.len() > MAX_ERROR_BODY {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = value.get("error")?;
        let mut parsed = ServiceError {
            message: excerpt(error.get("message")?.as_str().unwrap_or("")),
            ..Default::default()
        };
        let mut node = Some(error);
        let mut depth = 0;
        while let Some(current) = node {
            if let Some(code) = current.get("code").and_then(|c| c.as_str()) {
                parsed.codes.push(excerpt(code));
            }
            if parsed.request_id.is_none() {
                parsed.request_id = current
                    .get("request-id")
                    .and_then(|c| c.as_str())
                    .map(excerpt);
            }
            node = current
                .get("innerError")
                .or_else(|| current.get("innererror"))
                .filter(|n| n.is_object());
            depth += 1;
            if depth > 8 {
                break;
            }
        }
        Some(parsed)
    }

    /// Whether any code in the chain equals `code` (ASCII case-insensitively: Graph writes
    /// `syncStateNotFound` and `SyncStateNotFound` for the same thing, I-DQ2350, GD-DQO).
    pub fn has(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c.eq_ignore_ascii_case(code))
    }

    /// The most specific code (innermost), or `HTTP_nnn`.
    fn label(&self, status: u16) -> String {
        self.codes
            .last()
            .cloned()
            .unwrap_or_else(|| format!("HTTP_{status}"))
    }
}

/// Whether a request is part of a delta round (errors on links mean "start over").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeltaRole {
    /// Not a delta request.
    None,
    /// The first call of a round (query options built by exsync).
    Start,
    /// Following a `nextLink` or `deltaLink` Graph gave.
    Follow,
}

/// What a request addresses: the mailbox (a collection, a folder) or one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Addressing {
    /// A collection or the mailbox itself.
    Mailbox,
    /// One item (message, event, contact, task) by id.
    Item,
}

/// What the classifier needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallFacts<'a> {
    pub mailbox: &'a str,
    pub permission: &'static str,
    pub delta: DeltaRole,
    pub addressing: Addressing,
    /// GET (a 412 on a read is not an edit conflict, QA-412).
    pub is_read: bool,
    /// The request carries an item body (create / update).
    pub writes_item: bool,
}

/// The failure for a non-2xx answer other than 429/503 (which the client handles with its
/// throttle gate). `body` is read for codes only, never echoed.
pub(crate) fn classify(status: u16, body: &[u8], facts: &CallFacts<'_>) -> GraphFailure {
    let service = ServiceError::parse(body).unwrap_or_default();
    let code = service.label(status);
    let message = service.message.clone();
    let mailbox = facts.mailbox.to_owned();

    // Delta state gone: 410 (GD-DQO, I-DQ2350), syncStateNotFound in either case at any
    // status (GD-DQO, I-DQ2350, TP-DEVBLOG-7D), resyncRequired (GD-ERR).
    if status == 410 || service.has("syncStateNotFound") || service.has("resyncRequired") {
        return GraphFailure::SyncStateExpired { status, code };
    }
    if facts.delta != DeltaRole::None && service.has("ErrorInvalidIdMalformed") {
        // evolution-ews restarts the round on a malformed-id answer to a delta call (EVO-CONN).
        return GraphFailure::SyncStateExpired { status, code };
    }
    if facts.delta == DeltaRole::Follow && status == 400 {
        // A 400 to a link Graph itself gave can only be about its token (EVO-CONN restarts on
        // any 400). On the first call a 400 is about our query: that is not retried forever.
        return GraphFailure::SyncStateExpired { status, code };
    }
    if status == 401 {
        // InvalidAuthenticationToken is the expected code (UNVERIFIED, graph.md §8).
        return GraphFailure::Unauthorized { mailbox, code };
    }
    if service.has("MailboxNotEnabledForRESTAPI") {
        // I-REST405, I-E5SUB39.
        return GraphFailure::MailboxNotEnabledForRest { mailbox };
    }
    if service.has("ErrorSendAsDenied") {
        // GD-FROM.
        return GraphFailure::SendAsDenied { mailbox, code };
    }
    if service.has("ErrorQuotaExceeded") || service.has("ErrorSubmissionQuotaExceeded") {
        // Mailbox full or named-property quota exhausted (I-QUOTA2927, I-QUOTA527).
        return GraphFailure::QuotaExceeded {
            mailbox,
            code,
            message,
        };
    }
    if service.has("ErrorInvalidUser") {
        // "The requested user '…' is invalid" (I-INVUSER5460).
        return GraphFailure::UnknownMailbox { mailbox, code };
    }
    if status == 404 && (service.has("ResourceNotFound") || service.has("Request_ResourceNotFound"))
    {
        // On a mailbox-level path the user is unknown; on an item path it is the item that is
        // gone, and a deleted item must never disable a whole mailbox.
        return match facts.addressing {
            Addressing::Mailbox => GraphFailure::UnknownMailbox { mailbox, code },
            Addressing::Item => GraphFailure::ItemNotFound { code },
        };
    }
    if service.has("ErrorItemNotFound") || (status == 404 && facts.addressing == Addressing::Item) {
        // EVO-CONN, I-NET2947 (a draft after sending).
        return GraphFailure::ItemNotFound { code };
    }
    if service.has("ErrorIncorrectRoutingHint") {
        // Seen on cross-user To Do calls (I-MGT1620): a property of the mailbox, not the item.
        return GraphFailure::MailboxRefused {
            mailbox,
            status,
            code,
            message,
        };
    }
    if status == 403 {
        // ErrorAccessDenied "Access to OData is disabled." under a policy (GD-LIMIT); the
        // RBAC for Applications answer is UNVERIFIED, so every other 403 is read the same way.
        return GraphFailure::AccessDenied {
            mailbox,
            code,
            permission: facts.permission,
        };
    }
    if status == 412 {
        // ErrorIrresolvableConflict on PATCH (I-IRC1201); a 412 on a plain GET was reported
        // too (QA-412) and is not about our edit: retry later.
        return if facts.is_read {
            GraphFailure::Service {
                status,
                code,
                message,
            }
        } else {
            GraphFailure::Conflict { code }
        };
    }
    if status == 413 || service.has("ErrorMessageSizeExceeded") {
        // 4 MB request cap (I-4MB682, I-4MB85) and Exchange's message size limit.
        return GraphFailure::ItemRefused {
            status,
            code,
            message,
        };
    }
    const TRANSIENT_CODES: [&str; 5] = [
        "ErrorInternalServerTransientError",
        "ErrorMailboxStoreUnavailable",
        "ErrorMailboxMoveInProgress",
        "ErrorTimeoutExpired",
        "ErrorServerBusy",
    ];
    if status >= 500 || status == 408 || TRANSIENT_CODES.iter().any(|c| service.has(c)) {
        return GraphFailure::Service {
            status,
            code,
            message,
        };
    }
    if (400..500).contains(&status) {
        return if facts.addressing == Addressing::Item || facts.writes_item {
            GraphFailure::ItemRefused {
                status,
                code,
                message,
            }
        } else {
            GraphFailure::MailboxRefused {
                mailbox,
                status,
                code,
                message,
            }
        };
    }
    // 1xx/3xx (redirects are never followed): not an answer Graph gives to these calls.
    GraphFailure::Service {
        status,
        code,
        message,
    }
}

//! The EWS error type and its classification into what the caller should do next.
//!
//! Owns mapping EWS response codes, SOAP faults and non-SOAP HTTP replies to [`EwsError`].
//! Errors carry bounded excerpts of remote data only; never a header, a body or a secret.

use std::time::Duration;

use super::oauth::TokenError;
use super::transport::TransportError;
use super::types::ResponseCode;
/// Excerpts are made in the codec's leaf module; named here too, beside the errors that carry them.
pub use super::wire::excerpt;

/// Back-off assumed when Exchange says "busy" without saying for how long.
pub const DEFAULT_BACK_OFF: Duration = Duration::from_secs(30);

/// Longest back-off believed from a reply: a garbage `BackOffMilliseconds` (e.g. 2^64-1) must
/// not park a mailbox for centuries or overflow `Instant + back_off` in the caller.
pub const MAX_BACK_OFF: Duration = Duration::from_secs(60 * 60);

/// What went wrong talking EWS, in terms the sync layer reacts to.
#[derive(Debug, thiserror::Error)]
pub enum EwsError {
    /// Exchange is throttling us (ErrorServerBusy and friends); retry after `back_off`.
    #[error("Exchange is busy; back off for {back_off:?}")]
    ServerBusy {
        /// How long to wait (BackOffMilliseconds, or a default).
        back_off: Duration,
    },
    /// HTTP 401: the credentials were refused.
    #[error("Exchange refused the credentials (HTTP 401)")]
    Unauthorized,
    /// The service account may not impersonate this mailbox (ErrorImpersonateUserDenied).
    #[error("impersonation of mailbox '{mailbox}' denied")]
    ImpersonationDenied {
        /// The mailbox (may be empty when Exchange did not name it; the client fills it in).
        mailbox: String,
    },
    /// The mailbox does not exist (ErrorNonExistentMailbox).
    #[error("mailbox '{mailbox}' does not exist")]
    MailboxNotFound {
        /// The mailbox (may be empty when Exchange did not name it).
        mailbox: String,
    },
    /// The sync state was refused (ErrorInvalidSyncStateData): start the folder over.
    #[error("Exchange refused the sync state")]
    InvalidSyncState,
    /// Access to a mailbox or folder was denied (ErrorAccessDenied).
    #[error("access denied: {detail}")]
    AccessDenied {
        /// Exchange's message text (bounded).
        detail: String,
    },
    /// A transient server-side failure (ErrorInternalServerTransientError, store unavailable, …).
    #[error("Exchange server error {code}: {message}")]
    ServerError {
        /// The EWS response code.
        code: String,
        /// Exchange's message text (bounded).
        message: String,
    },
    /// A non-SOAP HTTP failure status.
    #[error("HTTP status {status}")]
    Http {
        /// The status code.
        status: u16,
    },
    /// The reply was not a readable EWS response.
    #[error("malformed EWS response: {excerpt}")]
    Malformed {
        /// A bounded, control-character-free excerpt of what was received or what was wrong.
        excerpt: String,
    },
    /// The HTTP exchange failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// No OAuth token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// NTLM authentication failed (message never contains credentials).
    #[error("NTLM authentication failed: {0}")]
    Ntlm(String),
    /// HTTP 401 for one mailbox while the same credential works for others: Exchange Online
    /// answers so for a single unlicensed or mismatched mailbox (the app's token is fine).
    #[error("Exchange refused access to mailbox '{mailbox}' (HTTP 401) while the credentials work for other mailboxes")]
    MailboxUnauthorized {
        /// The mailbox.
        mailbox: String,
    },
    /// Exchange refuses this mailbox's sends or writes for a reason of the mailbox, not of the
    /// item: ErrorQuotaExceeded, ErrorSubmissionQuotaExceeded, ErrorSendAsDenied. The items
    /// wait and are tried again later.
    #[error("Exchange refused the mailbox with {code}: {message}")]
    MailboxRefused {
        /// The EWS response code.
        code: String,
        /// Exchange's message text (bounded).
        message: String,
    },
    /// Exchange refused the whole request with a permanent error code.
    #[error("Exchange refused the request with {code}: {message}")]
    Request {
        /// The EWS response code.
        code: String,
        /// Exchange's message text (bounded).
        message: String,
    },
}

/// How the caller should react to an [`EwsError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Retry later with the normal backoff.
    Transient,
    /// Retry after the server's back-off.
    Throttled,
    /// Stop using these credentials and alert.
    Authentication,
    /// Restart the folder's synchronization.
    SyncState,
    /// Disable the workload for this mailbox and alert.
    Permanent,
    /// The mailbox cannot send or write for now (quota, Send As right): keep the items, retry
    /// with backoff, alert.
    Mailbox,
}

impl EwsError {
    /// How the caller should react.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EwsError::ServerBusy { .. } => ErrorKind::Throttled,
            EwsError::Unauthorized | EwsError::Ntlm(_) => ErrorKind::Authentication,
            // Only the application's credential being refused blocks it; throttling, 5xx and
            // timeouts of the token endpoint are transient, a refused setting is permanent.
            EwsError::Token(TokenError::Rejected { .. } | TokenError::Credential(_)) => {
                ErrorKind::Authentication
            }
            EwsError::Token(TokenError::Refused { .. }) => ErrorKind::Permanent,
            EwsError::Token(TokenError::Unavailable { .. } | TokenError::Malformed(_)) => {
                ErrorKind::Transient
            }
            EwsError::InvalidSyncState => ErrorKind::SyncState,
            EwsError::MailboxRefused { .. } => ErrorKind::Mailbox,
            EwsError::ImpersonationDenied { .. }
            | EwsError::MailboxUnauthorized { .. }
            | EwsError::MailboxNotFound { .. }
            | EwsError::AccessDenied { .. }
            | EwsError::Request { .. } => ErrorKind::Permanent,
            EwsError::Http { status }
                if (400..500).contains(status) && !matches!(status, 408 | 429) =>
            {
                ErrorKind::Permanent
            }
            EwsError::Http { .. }
            | EwsError::Malformed { .. }
            | EwsError::ServerError { .. }
            | EwsError::Transport(_) => ErrorKind::Transient,
        }
    }

    /// A [`EwsError::Malformed`] from what was received (bounded, control characters stripped).
    pub fn malformed(received: &[u8]) -> Self {
        EwsError::Malformed {
            excerpt: excerpt(&String::from_utf8_lossy(received)),
        }
    }

    /// The error for an EWS response code that failed a whole request (response message or fault).
    ///
    /// `mailbox` is the mailbox named in the reply, if any (Exchange rarely names it).
    pub fn from_response_code(
        code: &ResponseCode,
        message: Option<&str>,
        back_off: Option<Duration>,
        mailbox: Option<&str>,
    ) -> EwsError {
        let message = excerpt(message.unwrap_or(""));
        let mailbox = mailbox.map(excerpt).unwrap_or_default();
        match code.as_str() {
            "ErrorServerBusy"
            | "ErrorExceededConnectionCount"
            | "ErrorTooManyObjectsOpened"
            | "ErrorExceededSubscriptionCount"
            | "ErrorExceededFindCountLimit" => EwsError::ServerBusy {
                back_off: back_off.unwrap_or(DEFAULT_BACK_OFF),
            },
            "ErrorInvalidSyncStateData" | "ErrorSyncFolderNotFound" => EwsError::InvalidSyncState,
            "ErrorImpersonateUserDenied" | "ErrorImpersonationDenied" => {
                EwsError::ImpersonationDenied { mailbox }
            }
            "ErrorNonExistentMailbox" | "ErrorMailboxNotFound" | "ErrorInvalidMailbox" => {
                EwsError::MailboxNotFound { mailbox }
            }
            "ErrorQuotaExceeded" | "ErrorSubmissionQuotaExceeded" | "ErrorSendAsDenied" => {
                EwsError::MailboxRefused {
                    code: excerpt(code.as_str()),
                    message,
                }
            }
            "ErrorAccessDenied" | "ErrorDelegateNoUser" | "ErrorNotDelegate" => {
                EwsError::AccessDenied { detail: message }
            }
            "ErrorInternalServerError"
            | "ErrorInternalServerTransientError"
            | "ErrorMailboxStoreUnavailable"
            | "ErrorTimeoutExpired"
            | "ErrorConnectionFailed"
            | "ErrorMailboxMoveInProgress"
            | "ErrorBatchProcessingStopped"
            | "ErrorServerTemporaryUnavailable" => EwsError::ServerError {
                code: excerpt(code.as_str()),
                message,
            },
            other => EwsError::Request {
                code: excerpt(other),
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_reactions() {
        let e = EwsError::from_response_code(
            &ResponseCode::ERROR_SERVER_BUSY,
            Some("busy"),
            Some(Duration::from_millis(1234)),
            None,
        );
        assert!(
            matches!(e, EwsError::ServerBusy { back_off } if back_off == Duration::from_millis(1234))
        );
        assert_eq!(e.kind(), ErrorKind::Throttled);
        let e = EwsError::from_response_code(&ResponseCode::ERROR_SERVER_BUSY, None, None, None);
        assert!(matches!(e, EwsError::ServerBusy { back_off } if back_off == DEFAULT_BACK_OFF));
        let kinds = [
            (
                ResponseCode::ERROR_INVALID_SYNC_STATE_DATA,
                ErrorKind::SyncState,
            ),
            (
                ResponseCode::ERROR_IMPERSONATE_USER_DENIED,
                ErrorKind::Permanent,
            ),
            (
                ResponseCode::ERROR_NON_EXISTENT_MAILBOX,
                ErrorKind::Permanent,
            ),
            (ResponseCode::ERROR_ACCESS_DENIED, ErrorKind::Permanent),
            (
                ResponseCode::ERROR_INTERNAL_SERVER_TRANSIENT_ERROR,
                ErrorKind::Transient,
            ),
            (
                ResponseCode::ERROR_MAILBOX_STORE_UNAVAILABLE,
                ErrorKind::Transient,
            ),
            (ResponseCode::ERROR_SCHEMA_VALIDATION, ErrorKind::Permanent),
            (ResponseCode::ERROR_QUOTA_EXCEEDED, ErrorKind::Mailbox),
            (
                ResponseCode::ERROR_SUBMISSION_QUOTA_EXCEEDED,
                ErrorKind::Mailbox,
            ),
            (ResponseCode::ERROR_SEND_AS_DENIED, ErrorKind::Mailbox),
            (
                ResponseCode::ERROR_MESSAGE_SIZE_EXCEEDED,
                ErrorKind::Permanent,
            ),
            (
                ResponseCode::ERROR_BATCH_PROCESSING_STOPPED,
                ErrorKind::Transient,
            ),
            (
                ResponseCode::ERROR_EXCEEDED_CONNECTION_COUNT,
                ErrorKind::Throttled,
            ),
        ];
        for (code, kind) in kinds {
            assert_eq!(
                EwsError::from_response_code(&code, None, None, None).kind(),
                kind,
                "{code:?}"
            );
        }
    }

    #[test]
    fn http_statuses_map_to_reactions() {
        assert!(matches!(
            EwsError::from_http_status(401, b""),
            EwsError::Unauthorized
        ));
        assert_eq!(
            EwsError::from_http_status(401, b"").kind(),
            ErrorKind::Authentication
        );
        assert_eq!(
            EwsError::from_http_status(503, b"").kind(),
            ErrorKind::Throttled
        );
        assert_eq!(
            EwsError::from_http_status(502, b"").kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            EwsError::from_http_status(404, b"").kind(),
            ErrorKind::Permanent
        );
        assert_eq!(
            EwsError::Token(TokenError::Rejected {
                code: "invalid_client".into()
            })
            .kind(),
            ErrorKind::Authentication
        );
        assert_eq!(
            EwsError::Token(TokenError::Unavailable {
                reason: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(5)),
            })
            .kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            EwsError::Token(TokenError::Refused {
                status: 400,
                code: "invalid_scope".into()
            })
            .kind(),
            ErrorKind::Permanent
        );
    }

    #[test]
    fn http_500_with_a_soap_fault_is_read_as_the_fault() {
        let fault =
            super::super::soap::SoapFault::server_busy(Duration::from_millis(2500)).to_xml();
        let err = EwsError::from_http_status(500, fault.as_bytes());
        assert!(matches!(err, EwsError::ServerBusy { back_off } if back_off.as_millis() == 2500));
    }

    #[test]
    fn bodies_that_are_not_soap_are_judged_by_the_status_alone() {
        // A load balancer's HTML page, a JSON error, plain text: never parsed into anything else.
        for body in [
            &b"<html><head><title>503 Service Unavailable</title></head></html>"[..],
            b"{\"error\":\"unavailable\"}",
            b"Service Unavailable",
            b"\xFF\xFE\x00<",
        ] {
            assert!(matches!(
                EwsError::from_http_status(503, body),
                EwsError::ServerBusy { back_off } if back_off == DEFAULT_BACK_OFF
            ));
            assert!(matches!(
                EwsError::from_http_status(500, body),
                EwsError::Http { status: 500 }
            ));
            assert!(matches!(
                EwsError::from_http_status(200, body),
                EwsError::Http { status: 200 }
            ));
        }
        // A fault beyond the 1 MiB sniffing limit is not parsed either.
        let mut huge =
            super::super::soap::SoapFault::server_busy(Duration::from_millis(7)).to_xml();
        huge.push_str(&" ".repeat(1024 * 1024));
        assert!(matches!(
            EwsError::from_http_status(500, huge.as_bytes()),
            EwsError::Http { status: 500 }
        ));
        // 401 wins over any body.
        let fault = super::super::soap::SoapFault::server_busy(Duration::from_millis(7)).to_xml();
        assert!(matches!(
            EwsError::from_http_status(401, fault.as_bytes()),
            EwsError::Unauthorized
        ));
    }

    #[test]
    fn malformed_excerpt_is_bounded_and_clean() {
        let body = format!("<html>\u{1b}[31m\r\n{}</html>", "x".repeat(1000));
        let EwsError::Malformed { excerpt } = EwsError::malformed(body.as_bytes()) else {
            panic!("not malformed")
        };
        assert!(excerpt.chars().count() <= 200);
        assert!(!excerpt.chars().any(char::is_control));
        assert!(excerpt.starts_with("<html>[31m"));
    }
}

//! Response classes, response codes and the per-item response message (`m:ResponseMessages`).

use super::*;

/// `ResponseClass` attribute of every response message (ResponseClassType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseClass {
    /// The operation succeeded.
    #[default]
    Success,
    /// Partly succeeded.
    Warning,
    /// Failed; `ResponseCode` says why.
    Error,
}

impl ResponseClass {
    /// The schema value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseClass::Success => "Success",
            ResponseClass::Warning => "Warning",
            ResponseClass::Error => "Error",
        }
    }
}

impl FromStr for ResponseClass {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        match s.trim() {
            "Success" => Ok(ResponseClass::Success),
            "Warning" => Ok(ResponseClass::Warning),
            "Error" => Ok(ResponseClass::Error),
            other => Err(invalid("ResponseClass", other)),
        }
    }
}

/// An EWS `ResponseCode` (m:ResponseCodeType); a string so unknown codes survive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub Cow<'static, str>);

impl ResponseCode {
    /// `NoError`.
    pub const NO_ERROR: ResponseCode = ResponseCode(Cow::Borrowed("NoError"));
    /// `ErrorServerBusy`.
    pub const ERROR_SERVER_BUSY: ResponseCode = ResponseCode(Cow::Borrowed("ErrorServerBusy"));
    /// `ErrorInvalidSyncStateData`.
    pub const ERROR_INVALID_SYNC_STATE_DATA: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidSyncStateData"));
    /// `ErrorImpersonateUserDenied`.
    pub const ERROR_IMPERSONATE_USER_DENIED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorImpersonateUserDenied"));
    /// `ErrorNonExistentMailbox`.
    pub const ERROR_NON_EXISTENT_MAILBOX: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorNonExistentMailbox"));
    /// `ErrorAccessDenied`.
    pub const ERROR_ACCESS_DENIED: ResponseCode = ResponseCode(Cow::Borrowed("ErrorAccessDenied"));
    /// `ErrorItemNotFound`.
    pub const ERROR_ITEM_NOT_FOUND: ResponseCode = ResponseCode(Cow::Borrowed("ErrorItemNotFound"));
    /// `ErrorIrresolvableConflict`.
    pub const ERROR_IRRESOLVABLE_CONFLICT: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorIrresolvableConflict"));
    /// `ErrorInvalidChangeKey`.
    pub const ERROR_INVALID_CHANGE_KEY: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidChangeKey"));
    /// `ErrorChangeKeyRequiredForWriteOperations`.
    pub const ERROR_CHANGE_KEY_REQUIRED_FOR_WRITE_OPERATIONS: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorChangeKeyRequiredForWriteOperations"));
    /// `ErrorInternalServerError`.
    pub const ERROR_INTERNAL_SERVER_ERROR: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInternalServerError"));
    /// `ErrorInternalServerTransientError`.
    pub const ERROR_INTERNAL_SERVER_TRANSIENT_ERROR: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInternalServerTransientError"));
    /// `ErrorMailboxStoreUnavailable`.
    pub const ERROR_MAILBOX_STORE_UNAVAILABLE: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorMailboxStoreUnavailable"));
    /// `ErrorTimeoutExpired`.
    pub const ERROR_TIMEOUT_EXPIRED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorTimeoutExpired"));
    /// `ErrorInvalidIdMalformed`.
    pub const ERROR_INVALID_ID_MALFORMED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidIdMalformed"));
    /// `ErrorInvalidRequest`.
    pub const ERROR_INVALID_REQUEST: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidRequest"));
    /// `ErrorSchemaValidation`.
    pub const ERROR_SCHEMA_VALIDATION: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorSchemaValidation"));
    /// `ErrorInvalidPropertyRequest`.
    pub const ERROR_INVALID_PROPERTY_REQUEST: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidPropertyRequest"));
    /// `ErrorMessageSizeExceeded`.
    pub const ERROR_MESSAGE_SIZE_EXCEEDED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorMessageSizeExceeded"));
    /// `ErrorQuotaExceeded`.
    pub const ERROR_QUOTA_EXCEEDED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorQuotaExceeded"));
    /// `ErrorInvalidRecipients`.
    pub const ERROR_INVALID_RECIPIENTS: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidRecipients"));
    /// `ErrorExceededConnectionCount`.
    pub const ERROR_EXCEEDED_CONNECTION_COUNT: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorExceededConnectionCount"));
    /// `ErrorTooManyObjectsOpened`.
    pub const ERROR_TOO_MANY_OBJECTS_OPENED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorTooManyObjectsOpened"));
    /// `ErrorFolderNotFound`.
    pub const ERROR_FOLDER_NOT_FOUND: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorFolderNotFound"));
    /// `ErrorInvalidOperation`.
    pub const ERROR_INVALID_OPERATION: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidOperation"));
    /// `ErrorInvalidPropertySet`.
    pub const ERROR_INVALID_PROPERTY_SET: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidPropertySet"));
    /// `ErrorInvalidPropertyDelete`.
    pub const ERROR_INVALID_PROPERTY_DELETE: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidPropertyDelete"));
    /// `ErrorInvalidServerVersion`.
    pub const ERROR_INVALID_SERVER_VERSION: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidServerVersion"));
    /// `ErrorBatchProcessingStopped`: a Warning for items a batch did not get to.
    pub const ERROR_BATCH_PROCESSING_STOPPED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorBatchProcessingStopped"));
    /// `ErrorSendAsDenied`: no right to send as (or on behalf of) the From mailbox.
    pub const ERROR_SEND_AS_DENIED: ResponseCode = ResponseCode(Cow::Borrowed("ErrorSendAsDenied"));
    /// `ErrorSubmissionQuotaExceeded`: the mailbox sent more than it may for now.
    pub const ERROR_SUBMISSION_QUOTA_EXCEEDED: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorSubmissionQuotaExceeded"));
    /// `ErrorInvalidExchangeImpersonationHeaderData`: also Exchange Online's answer to an
    /// app-only token without an ExchangeImpersonation header.
    pub const ERROR_INVALID_EXCHANGE_IMPERSONATION_HEADER_DATA: ResponseCode =
        ResponseCode(Cow::Borrowed("ErrorInvalidExchangeImpersonationHeaderData"));
}

impl ResponseCode {
    /// A code from its text.
    pub fn new(code: impl Into<String>) -> Self {
        ResponseCode(Cow::Owned(code.into()))
    }

    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `NoError`.
    pub fn is_no_error(&self) -> bool {
        self.0 == "NoError"
    }
}

impl Default for ResponseCode {
    fn default() -> Self {
        ResponseCode::NO_ERROR
    }
}

impl std::fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ResponseCode {
    fn from(s: &str) -> Self {
        ResponseCode(Cow::Owned(s.to_owned()))
    }
}

/// One EWS response message: class, code, text, back-off and the operation's payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseMessage<T> {
    /// Success, Warning or Error.
    pub class: ResponseClass,
    /// `NoError` or the error code.
    pub code: ResponseCode,
    /// Human-readable text (MessageText).
    pub message_text: Option<String>,
    /// `MessageXml/Value[@Name=BackOffMilliseconds]` when Exchange is throttling.
    pub back_off: Option<Duration>,
    /// The operation-specific content (absent on errors).
    pub payload: Option<T>,
}

impl<T> ResponseMessage<T> {
    /// A Success/NoError message carrying `payload`.
    pub fn success(payload: T) -> Self {
        ResponseMessage {
            class: ResponseClass::Success,
            code: ResponseCode::NO_ERROR,
            message_text: None,
            back_off: None,
            payload: Some(payload),
        }
    }

    /// The Error message Exchange sends when throttling with HTTP 200 (ErrorServerBusy + back-off).
    pub fn server_busy(back_off: Duration) -> Self {
        ResponseMessage {
            class: ResponseClass::Error,
            code: ResponseCode::ERROR_SERVER_BUSY,
            message_text: Some(
                "The server cannot service this request right now. Try again later.".into(),
            ),
            back_off: Some(back_off),
            payload: None,
        }
    }

    /// A Warning message: Exchange did not process this item (e.g. ErrorBatchProcessingStopped
    /// for the items after one that failed); it carries no content.
    pub fn warning(code: ResponseCode, text: impl Into<String>) -> Self {
        ResponseMessage {
            class: ResponseClass::Warning,
            code,
            message_text: Some(text.into()),
            back_off: None,
            payload: None,
        }
    }

    /// An Error message with this code and text.
    pub fn error(code: ResponseCode, text: impl Into<String>) -> Self {
        ResponseMessage {
            class: ResponseClass::Error,
            code,
            message_text: Some(text.into()),
            back_off: None,
            payload: None,
        }
    }
}

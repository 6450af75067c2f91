//! How the fake Graph answers: JSON bodies, empty 202/204 answers, and Graph's error envelope
//! `{"error":{"code","message","innerError":{"request-id","client-request-id","date"}}}`
//! (GD-ERR). Owns status codes and error codes; the operations decide which one applies.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// JSON body; `None` answers without a body.
    pub(crate) body: Option<Value>,
    /// A body that is not JSON (`$value` MIME) and its content type.
    pub(crate) raw: Option<(String, Vec<u8>)>,
    /// Extra headers (`Preference-Applied`, `ETag`, `Location`).
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with `body`.
    pub(crate) fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
            raw: None,
            headers: Vec::new(),
        }
    }

    /// 201 with `body`.
    pub(crate) fn created(body: Value) -> Reply {
        Reply {
            status: StatusCode::CREATED,
            ..Reply::ok(body)
        }
    }

    /// A status without a body (202 for a send, 204 for a delete).
    pub(crate) fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: None,
            raw: None,
            headers: Vec::new(),
        }
    }

    /// Add a header.
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// A refused request, as Graph's error envelope.
#[derive(Debug, Clone)]
pub(crate) struct GraphErr {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Extra headers (`Retry-After`, `Location`, `WWW-Authenticate`).
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl GraphErr {
    /// An error with this status, code and message.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphErr {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Add a header.
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 for a request Graph cannot read or does not support.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        GraphErr::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `ErrorInvalidRequest`.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        GraphErr::new(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", message)
    }

    /// 400 `RequestBodyRead`: a body that does not fit the type.
    pub(crate) fn body_read(message: impl Into<String>) -> Self {
        GraphErr::new(StatusCode::BAD_REQUEST, "RequestBodyRead", message)
    }

    /// 400 `ErrorInvalidIdMalformed`: not an id this API reads.
    pub(crate) fn malformed_id() -> Self {
        GraphErr::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidIdMalformed",
            "Id is malformed.",
        )
    }

    /// 404 `ErrorItemNotFound`.
    pub(crate) fn item_not_found() -> Self {
        GraphErr::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// 412 `ErrorIrresolvableConflict` (I-IRC1201).
    pub(crate) fn conflict() -> Self {
        GraphErr::new(
            StatusCode::PRECONDITION_FAILED,
            "ErrorIrresolvableConflict",
            "The If-Match change key does not match the item's current change key; read the item again.",
        )
    }

    /// The error body for this request.
    pub(crate) fn body(&self, request_id: &str, client_request_id: Option<&str>) -> Value {
        #[derive(Serialize)]
        struct Inner<'a> {
            date: String,
            #[serde(rename = "request-id")]
            request_id: &'a str,
            #[serde(rename = "client-request-id", skip_serializing_if = "Option::is_none")]
            client_request_id: Option<&'a str>,
        }
        serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": Inner {
                    date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                    request_id,
                    client_request_id,
                },
            }
        })
    }
}

/// What an operation answers.
pub(crate) type OpResult = Result<Reply, GraphErr>;

/// A model value as JSON (the model's serialisation cannot fail; `null` if it did).
pub(crate) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

//! The codec's leaf: the EWS and SOAP namespace URIs, bounded excerpts of remote text, and the
//! error for an element that cannot become a typed value.
//!
//! It imports nothing of the crate, so `error`, `soap`, `types`, `recurrence` and `extended`
//! all build on it without importing each other in a circle.

/// SOAP 1.1 envelope namespace (prefix `soap`).
pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types namespace (prefix `t`).
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages namespace (prefix `m`).
pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// EWS errors namespace, used in SOAP fault details (prefix `e`).
pub const ERRORS_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// Longest excerpt of remote data an error carries.
const EXCERPT_CHARS: usize = 200;

/// A bounded excerpt of remote text: at most 200 characters, control characters removed.
pub fn excerpt(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(EXCERPT_CHARS)
        .collect()
}

/// Why an element could not become a typed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A required element or attribute is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// An element or attribute has a value outside its schema type.
    #[error("invalid value for {element}: '{value}'")]
    Invalid {
        /// Which element or attribute.
        element: &'static str,
        /// The offending value (bounded).
        value: String,
    },
}

/// A [`WireError::Invalid`] carrying a bounded excerpt of the offending value.
pub(crate) fn invalid(element: &'static str, value: &str) -> WireError {
    WireError::Invalid {
        element,
        value: excerpt(value),
    }
}

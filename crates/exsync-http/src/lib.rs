//! exsync-http: what the EWS and Graph transports share, so both fail and read alike.
//!
//! Owns the transport error (whose text never names a URL, a header or a credential), how a
//! reqwest failure becomes one, and reading a response body with a size cap. How a request is
//! built (SOAP POST, JSON, NTLM connections) stays with each protocol's crate.

use bytes::Bytes;

/// Why an HTTP exchange failed below the protocol level (EWS or Graph).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// Connecting, sending or receiving failed.
    #[error("connection to {host} failed: {reason}")]
    Connect {
        /// Host contacted.
        host: String,
        /// What happened (no URL, no headers, no credentials).
        reason: String,
    },
    /// No connection could be made (refused, unresolvable, TLS handshake failed): the request
    /// never left, so the server did nothing with it (a send can be retried safely).
    #[error("connection to {host} failed: {reason}")]
    Unreachable {
        /// Host contacted.
        host: String,
        /// What happened (no URL, no headers, no credentials).
        reason: String,
    },
    /// The request took longer than the request timeout (`http.request_timeout`).
    #[error("request to {host} timed out")]
    Timeout {
        /// Host contacted.
        host: String,
    },
    /// The response was larger than the limit (`http.max_response_bytes`).
    #[error("response larger than the {limit}-byte limit")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
}

/// The transport error for a reqwest failure talking to `host`. reqwest's own text names the
/// URL (mailbox addresses, item ids): only the kind of failure and up to three causes are kept.
pub fn failure(host: &str, error: &reqwest::Error) -> TransportError {
    if error.is_timeout() {
        return TransportError::Timeout {
            host: host.to_owned(),
        };
    }
    let mut reason = if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "broken response body".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    let mut depth = 0;
    while let Some(cause) = source {
        reason.push_str(if depth == 0 { ": " } else { " / " });
        reason.push_str(&cause.to_string().chars().take(120).collect::<String>());
        source = cause.source();
        depth += 1;
        if depth >= 3 {
            break;
        }
    }
    if error.is_connect() {
        TransportError::Unreachable {
            host: host.to_owned(),
            reason,
        }
    } else {
        TransportError::Connect {
            host: host.to_owned(),
            reason,
        }
    }
}

/// Read the whole body of `response`, refusing more than `limit` bytes (announced or
/// received), so a hostile or broken server cannot make exsync buffer without bound.
pub async fn read_bounded(
    response: &mut reqwest::Response,
    host: &str,
    limit: u64,
) -> Result<Bytes, TransportError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(TransportError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failure(host, &e))? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(TransportError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    async fn serve(body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", get(move || async move { body }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let url = serve("twelve bytes").await;
        let mut response = reqwest::get(&url).await.unwrap();
        let body = read_bounded(&mut response, "127.0.0.1", 12).await.unwrap();
        assert_eq!(&body[..], b"twelve bytes");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let url = serve("thirteen byte").await;
        let mut response = reqwest::get(&url).await.unwrap();
        let error = read_bounded(&mut response, "127.0.0.1", 12)
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::TooLarge { limit: 12 }));
    }

    #[tokio::test]
    async fn a_failed_connection_names_the_host_but_not_the_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{address}/users/anna@contoso.test/messages");
        let error = reqwest::get(&url).await.unwrap_err();
        let failed = failure("127.0.0.1", &error);
        assert!(
            matches!(failed, TransportError::Unreachable { .. }),
            "no connection: the request never left"
        );
        let text = failed.to_string();
        assert!(text.starts_with("connection to 127.0.0.1 failed"), "{text}");
        assert!(!text.contains("anna@contoso.test"), "{text}");
    }
}

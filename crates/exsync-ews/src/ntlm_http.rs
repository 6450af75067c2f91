//! NTLM over HTTP: connection-bound authentication on connections exsync owns.
//!
//! NTLM authenticates a TCP connection, not a request: NEGOTIATE, CHALLENGE and AUTHENTICATE
//! must travel on one connection, and later requests on it need no new handshake. A pooled
//! HTTP client cannot promise that, so each [`NtlmConnection`] is a hyper HTTP/1.1
//! connection over our own TCP (+ rustls) stream, used by one request at a time. Over TLS the
//! AUTHENTICATE message carries the channel binding of the server's certificate, which
//! Exchange's Extended Protection requires.

use super::ntlm::{self, AuthenticateOptions, ChannelBindings, NtlmCredentials, NtlmError};
use super::transport::{RawResponse, SoapPost, Transport, TransportError, TransportSettings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use url::Url;

/// Why an NTLM-authenticated exchange failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NtlmHttpError {
    /// Connecting, sending or receiving failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered the AUTHENTICATE message with 401: the credentials (or the channel
    /// binding) were refused.
    #[error("the server rejected the NTLM credentials")]
    Rejected,
    /// The server's 401 offered no NTLM (or Negotiate) challenge.
    #[error("the server does not offer NTLM authentication")]
    NotOffered,
    /// The server's CHALLENGE could not be used.
    #[error("NTLM handshake failed: {0}")]
    Protocol(#[from] NtlmError),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One owned HTTP/1.1 connection and whether NTLM already authenticated it.
struct NtlmConnection {
    sender: SendRequest<Full<Bytes>>,
    binding: Option<ChannelBindings>,
    authenticated: bool,
}

/// The NTLM connections of one account to one endpoint.
pub struct NtlmSessionPool {
    credentials: NtlmCredentials,
    settings: TransportSettings,
    tls: Arc<rustls::ClientConfig>,
    idle: Mutex<Vec<NtlmConnection>>,
}

impl std::fmt::Debug for NtlmSessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NtlmSessionPool({:?})", self.credentials.username)
    }
}

impl NtlmSessionPool {
    /// A pool with no connections yet, trusting what `transport` trusts.
    pub fn new(credentials: NtlmCredentials, transport: &Transport) -> Self {
        Self {
            credentials,
            settings: transport.settings().clone(),
            tls: transport.http1_tls_config(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// POST an envelope on an authenticated connection (handshaking first when needed).
    pub async fn post(&self, post: SoapPost<'_>) -> Result<RawResponse, NtlmHttpError> {
        let host = post.url.host_str().unwrap_or("?").to_owned();
        let timeout = self.settings.request_timeout;
        let work = async {
            let reused = self.idle.lock().await.pop();
            let mut connection = match reused {
                Some(connection) => connection,
                None => self.connect(post.url).await?,
            };
            let response = self.exchange(&mut connection, &post).await?;
            if !connection.sender.is_closed() {
                self.idle.lock().await.push(connection);
            }
            Ok(response)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout { host }.into()),
        }
    }

    async fn exchange(
        &self,
        connection: &mut NtlmConnection,
        post: &SoapPost<'_>,
    ) -> Result<RawResponse, NtlmHttpError> {
        if connection.authenticated {
            let response = self.send(connection, post, &post.body, None).await?;
            if response.status != http::StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // The server forgot the connection's authentication: handshake again, once.
            connection.authenticated = false;
        }
        let negotiate = ntlm::to_header(&ntlm::negotiate_message());
        let first = self.send(connection, post, &[], Some(negotiate)).await?;
        if first.status != http::StatusCode::UNAUTHORIZED {
            // No authentication required after all: send the real request.
            connection.authenticated = true;
            return self.send(connection, post, &post.body, None).await;
        }
        let token = ntlm::find_www_authenticate(first.www_authenticate.iter().map(String::as_str))
            .ok_or(NtlmHttpError::NotOffered)?;
        let challenge = ntlm::parse_challenge(&token)?;
        let options = AuthenticateOptions {
            workstation: String::new(),
            channel_bindings: connection.binding,
        };
        let authenticate = ntlm::authenticate_message_now(&self.credentials, &challenge, &options)?;
        let response = self
            .send(
                connection,
                post,
                &post.body,
                Some(ntlm::to_header(&authenticate)),
            )
            .await?;
        if response.status == http::StatusCode::UNAUTHORIZED {
            return Err(NtlmHttpError::Rejected);
        }
        connection.authenticated = true;
        Ok(response)
    }

    async fn send(
        &self,
        connection: &mut NtlmConnection,
        post: &SoapPost<'_>,
        body: &[u8],
        authorization: Option<String>,
    ) -> Result<RawResponse, NtlmHttpError> {
        let url = post.url;
        let host = url.host_str().unwrap_or("?").to_owned();
        let broken = |reason: String| {
            NtlmHttpError::Transport(TransportError::Connect {
                host: host.clone(),
                reason,
            })
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header(
                "SOAPAction",
                format!(
                    "\"http://schemas.microsoft.com/exchange/services/2006/messages/{}\"",
                    post.operation
                ),
            )
            .header(
                http::header::USER_AGENT,
                concat!("exsync/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(anchor) = post.anchor_mailbox {
            request = request.header("X-AnchorMailbox", anchor);
        }
        if let Some(id) = post.client_request_id {
            // The legs of one handshake share the logical request's id.
            for (name, value) in super::transport::correlation_headers(id) {
                request = request.header(name, value);
            }
        }
        if let Some(value) = authorization {
            let mut value = http::HeaderValue::from_str(&value)
                .map_err(|_| broken("invalid authorization header".to_owned()))?;
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| broken(e.to_string()))?;
        connection
            .sender
            .ready()
            .await
            .map_err(|e| broken(format!("connection closed: {e}")))?;
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|e| broken(format!("request failed: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.settings.max_response_bytes;
        let mut collected = Vec::new();
        let mut incoming = response.into_body();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| broken(format!("broken response body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if collected.len() as u64 + data.len() as u64 > limit {
                    return Err(TransportError::TooLarge { limit }.into());
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok(RawResponse {
            status,
            content_type: headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            www_authenticate: headers
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
            body: Bytes::from(collected),
            ids: super::transport::ResponseIds::from_headers(&headers),
            retry_after: super::transport::retry_after(&headers),
        })
    }

    async fn connect(&self, url: &Url) -> Result<NtlmConnection, NtlmHttpError> {
        let host = url.host_str().unwrap_or("?").to_owned();
        let refused = |reason: String| {
            NtlmHttpError::Transport(TransportError::Unreachable {
                host: host.clone(),
                reason,
            })
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refused("no port".to_owned()))?;
        let tcp = tokio::time::timeout(
            self.settings.connect_timeout,
            TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| NtlmHttpError::Transport(TransportError::Timeout { host: host.clone() }))?
        .map_err(|e| refused(format!("could not connect: {}", e.kind())))?;
        let _ = tcp.set_nodelay(true);
        let (io, binding): (Box<dyn Io>, Option<ChannelBindings>) = match url.scheme() {
            "https" => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| refused("invalid server name".to_owned()))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
                let tls = tokio::time::timeout(
                    self.settings.connect_timeout,
                    connector.connect(name, tcp),
                )
                .await
                .map_err(|_| {
                    NtlmHttpError::Transport(TransportError::Timeout { host: host.clone() })
                })?
                .map_err(|e| refused(format!("TLS handshake failed: {e}")))?;
                let binding = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| {
                        // RFC 5929: hashed with the certificate's signature hash (SHA-384 for
                        // a SHA-384-signed certificate), SHA-256 for MD5 / SHA-1 / SHA-256.
                        ChannelBindings::tls_server_end_point(&super::tls::tls_server_end_point(
                            leaf.as_ref(),
                        ))
                    });
                (Box::new(tls), binding)
            }
            _ => (Box::new(tcp), None),
        };
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| refused(format!("HTTP handshake failed: {e}")))?;
        tokio::spawn(async move {
            // Ends when the connection closes; errors surface on the next send.
            let _ = driver.await;
        });
        Ok(NtlmConnection {
            sender,
            binding,
            authenticated: false,
        })
    }
}

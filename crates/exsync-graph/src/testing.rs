//! Test support: Microsoft's schema checker, a tiny real HTTP server answering canned Graph
//! replies, and a token source. For this crate's own tests only; the full fake Graph (a
//! product part) comes later and replaces the server for integration tests.

use crate::client::{ClientOptions, GraphClient};
use crate::throttle::ThrottleRegistry;
use crate::token::{TokenError, TokenSource};
use crate::transport::{Transport, TransportSettings};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

static MISSING_CHECKER: Once = Once::new();

/// Method, path, request-or-status and body of a check that passed.
type Checked = (String, String, String, Vec<u8>);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The checker cannot run: a loud note locally, a failure in CI.
fn checker_unavailable(why: &str) {
    assert!(
        !in_ci(),
        "Graph conformance checks are required in CI (CI=true), but {why}"
    );
    MISSING_CHECKER.call_once(|| {
        eprintln!(
            "\n!!! SKIPPING Graph conformance checks: {why}.\n!!! Set EXSYNC_GRAPH_OPENAPI to shared/graph-openapi and install `python3 -m pip install 'jsonschema>=4.18'`.\n"
        );
    });
}

/// Validate a Graph JSON body with `check-json` from `$EXSYNC_GRAPH_OPENAPI` (else
/// `../shared/graph-openapi` beside the workspace root). `what` is `request` or a status.
/// Panics when the body does not conform (or the path is not in the description).
pub(crate) fn check_graph_json(method: &str, path: &str, what: &str, body: &[u8]) {
    // The same body checked for the same operation once is enough (each run costs ~0.2 s).
    static CHECKED: Mutex<Option<HashSet<Checked>>> = Mutex::new(None);
    let key = (
        method.to_owned(),
        path.to_owned(),
        what.to_owned(),
        body.to_vec(),
    );
    if CHECKED
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .contains(&key)
    {
        return;
    }
    let dir = std::env::var_os("EXSYNC_GRAPH_OPENAPI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/graph-openapi")
        });
    let script = dir.join("check-json");
    if !script.exists() {
        return checker_unavailable(&format!("{} was not found", script.display()));
    }
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .args(["--method", method, "--path", path]);
    if what == "request" {
        command.arg("--request");
    } else {
        command.args(["--status", what]);
    }
    let child = command
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return checker_unavailable(&format!("python3 cannot be run: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(body).expect("write to check-json");
    }
    let out = child.wait_with_output().expect("check-json output");
    match out.status.code() {
        Some(0) => {
            CHECKED
                .lock()
                .unwrap()
                .get_or_insert_with(HashSet::new)
                .insert(key);
        }
        Some(3) => checker_unavailable(&String::from_utf8_lossy(&out.stderr)),
        _ => panic!(
            "{method} {path} ({what}) does not conform to Graph v1.0:\n{}{}\nbody: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(body)
        ),
    }
}

/// One canned answer.
#[derive(Debug, Clone)]
pub(crate) struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Canned {
    /// A JSON answer.
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_owned(),
        }
    }

    /// An answer without a body (202, 204).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// The same with one more header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub method: String,
    /// The path after `/v1.0` (as check-json wants it), percent-decoded as sent.
    pub path: String,
    pub query: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Seen {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query, percent-decoded.
    pub fn decoded_query(&self) -> String {
        percent_encoding::percent_decode_str(self.query.as_deref().unwrap_or(""))
            .decode_utf8_lossy()
            .into_owned()
    }
}

#[derive(Debug, Default)]
struct ServerState {
    script: Mutex<VecDeque<Canned>>,
    fallback: Mutex<Option<Canned>>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// When set, every request waits for a permit before it is answered.
    hold: Mutex<Option<Arc<Semaphore>>>,
    holding: AtomicBool,
}

/// A tiny real HTTP server on 127.0.0.1 answering canned Graph replies, in order.
#[derive(Debug, Clone)]
pub(crate) struct CannedGraph {
    /// `http://127.0.0.1:PORT/v1.0`.
    pub url: String,
    state: Arc<ServerState>,
}

impl CannedGraph {
    /// Start a server on a free port.
    pub async fn start() -> Self {
        let state = Arc::new(ServerState::default());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://127.0.0.1:{port}/v1.0"),
            state,
        }
    }

    /// Queue answers, answered in order.
    pub fn push(&self, canned: Canned) {
        self.state.script.lock().unwrap().push_back(canned);
    }

    /// The answer once the queue is empty.
    pub fn otherwise(&self, canned: Canned) {
        *self.state.fallback.lock().unwrap() = Some(canned);
    }

    /// Hold every request until [`CannedGraph::release`].
    pub fn hold(&self) {
        *self.state.hold.lock().unwrap() = Some(Arc::new(Semaphore::new(0)));
        self.state.holding.store(true, Ordering::SeqCst);
    }

    /// Let every held (and later) request through.
    pub fn release(&self) {
        self.state.holding.store(false, Ordering::SeqCst);
        if let Some(gate) = self.state.hold.lock().unwrap().as_ref() {
            gate.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Most requests ever answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Wait (bounded) until `n` requests are in flight.
    pub async fn wait_in_flight(&self, n: usize) {
        for _ in 0..500 {
            if self.in_flight() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "never saw {n} requests in flight (saw {})",
            self.in_flight()
        );
    }
}

async fn answer(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let path = parts.uri.path();
    let path = path.strip_prefix("/v1.0").unwrap_or(path).to_owned();
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
        at,
    });
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let hold = state.hold.lock().unwrap().clone();
    if let Some(gate) = hold {
        if let Ok(permit) = gate.acquire().await {
            permit.forget();
        }
    }
    let canned = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.fallback.lock().unwrap().clone())
        .unwrap_or_else(|| {
            Canned::json(
                500,
                r#"{"error":{"code":"NoScript","message":"no canned answer left"}}"#,
            )
        });
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = Response::builder().status(canned.status);
    for (name, value) in &canned.headers {
        response = response.header(*name, value);
    }
    response.body(Body::from(canned.body)).unwrap()
}

/// A token source handing out `token-1`, `token-2`, … (a new one after each invalidation),
/// or refusing the application.
#[derive(Debug)]
pub(crate) struct TestTokens {
    client_id: String,
    generation: AtomicUsize,
    pub fetched: AtomicUsize,
    pub invalidated: AtomicUsize,
    refuse: bool,
}

impl TestTokens {
    pub fn new(client_id: &str) -> Arc<Self> {
        Arc::new(Self {
            client_id: client_id.to_owned(),
            generation: AtomicUsize::new(1),
            fetched: AtomicUsize::new(0),
            invalidated: AtomicUsize::new(0),
            refuse: false,
        })
    }

    pub fn refusing(client_id: &str) -> Arc<Self> {
        Arc::new(Self {
            refuse: true,
            ..Arc::into_inner(Self::new(client_id)).unwrap()
        })
    }
}

impl TokenSource for TestTokens {
    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenError>> {
        Box::pin(async move {
            self.fetched.fetch_add(1, Ordering::SeqCst);
            if self.refuse {
                return Err(TokenError::Rejected {
                    code: "invalid_client".into(),
                });
            }
            let generation = self.generation.load(Ordering::SeqCst);
            Ok(SecretString::from(format!("token-{generation}")))
        })
    }

    fn invalidate<'a>(&'a self, rejected: &'a SecretString) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let generation = self.generation.load(Ordering::SeqCst);
            if rejected.expose_secret() == format!("token-{generation}") {
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            self.invalidated.fetch_add(1, Ordering::SeqCst);
        })
    }
}

/// A client for `server` with `tokens`, sharing `registry`.
pub(crate) fn client_for(
    server: &CannedGraph,
    tokens: Arc<dyn TokenSource>,
    registry: Arc<ThrottleRegistry>,
    options: ClientOptions,
) -> GraphClient {
    let transport = Transport::new(TransportSettings::default()).expect("transport");
    GraphClient::new(&server.url, tokens, transport, registry, options).expect("client")
}

//! The crate's tests over real HTTP (a tiny canned server on 127.0.0.1) and Microsoft's API
//! description (`check-json`): every operation's request body and a realistic answer are
//! validated, error bodies map to the right reaction, and the throttling rules hold.

mod behaviour;
mod errors;
mod fixtures;
mod operations;

use crate::client::{ClientOptions, GraphClient, Target};
use crate::testing::{check_graph_json, client_for, CannedGraph, Seen, TestTokens};
use crate::throttle::ThrottleRegistry;
use std::sync::Arc;

/// A server, a client of application `app-1` for it, and the target mailbox.
async fn setup() -> (CannedGraph, GraphClient, Target) {
    setup_with(ClientOptions::default()).await
}

async fn setup_with(options: ClientOptions) -> (CannedGraph, GraphClient, Target) {
    let server = CannedGraph::start().await;
    let client = client_for(
        &server,
        TestTokens::new("app-1"),
        Arc::new(ThrottleRegistry::new()),
        options,
    );
    (server, client, Target::new(fixtures::MAILBOX))
}

/// Validate what the client sent (its body, when it has one) against the description.
fn check_sent(seen: &Seen) {
    if !seen.body.is_empty() {
        check_graph_json(&seen.method, &seen.path, "request", &seen.body);
    }
}

/// Validate a canned answer against the description before it is served.
fn check_answer(method: &str, path: &str, status: u16, body: &str) {
    check_graph_json(method, path, &status.to_string(), body.as_bytes());
}

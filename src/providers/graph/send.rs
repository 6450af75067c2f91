//! What a failed Graph `send` request says about the message: sent nothing for sure, or
//! unknown (see [`crate::sync::port::SendJournal`]).

use crate::store::outgoing::OutgoingEmail;
use crate::sync::port::SendJournal;
use exsync_graph::transport::TransportError;
use exsync_graph::{GraphError, GraphFailure};

/// Graph refused the send for sure: withdraw the journal's mark so a normal retry may send
/// (the mark staying, when that fails, is the safe side: a retry finds the draft anyway).
pub(super) async fn withdraw_send_mark(journal: &dyn SendJournal, email: &OutgoingEmail) {
    if let Err(e) = journal.not_sent(email.id).await {
        tracing::warn!(outgoing.id = %email.id, error = %e, "could not withdraw the send mark of a refused send");
    }
}

/// Whether a failed send request definitely sent nothing: no request left (no token, a
/// `Retry-After` still running), or Graph answered with an error of its own before sending
/// (a refusal with its JSON error code: throttled, token or access refused, quota, Send As,
/// the item refused). A timeout, a dropped connection, an unreadable answer or a server
/// failure (5xx) leave it unknown: the message may have been sent.
pub(super) fn nothing_sent(error: &GraphError) -> bool {
    match error.failure() {
        // `HTTP_nnn`: no Graph error body (a gateway's answer), so not Graph's verdict.
        GraphFailure::Throttled { code, .. } => !code.starts_with("HTTP_"),
        GraphFailure::Unauthorized { .. }
        | GraphFailure::Token(_)
        | GraphFailure::AccessDenied { .. }
        | GraphFailure::MailboxNotEnabledForRest { .. }
        | GraphFailure::UnknownMailbox { .. }
        | GraphFailure::QuotaExceeded { .. }
        | GraphFailure::SendAsDenied { .. }
        | GraphFailure::Conflict { .. }
        | GraphFailure::ItemRefused { .. }
        | GraphFailure::MailboxRefused { .. } => true,
        // No connection was made (or no client): the request never left.
        GraphFailure::Transport(TransportError::Unreachable { .. } | TransportError::Setup(_)) => {
            true
        }
        GraphFailure::SyncStateExpired { .. }
        | GraphFailure::ItemNotFound { .. }
        | GraphFailure::Service { .. }
        | GraphFailure::Malformed { .. }
        | GraphFailure::Transport(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn throttled(code: &str) -> GraphError {
        GraphFailure::Throttled {
            mailbox: "a@contoso.test".into(),
            code: code.into(),
            retry_after: Duration::from_secs(1),
        }
        .into()
    }

    #[test]
    fn graphs_own_refusals_sent_nothing_and_a_server_failure_is_unknown() {
        assert!(nothing_sent(&throttled("ApplicationThrottled")));
        assert!(!nothing_sent(&throttled("HTTP_503")));
        assert!(nothing_sent(
            &GraphFailure::SendAsDenied {
                mailbox: "a@contoso.test".into(),
                code: "ErrorSendAsDenied".into(),
            }
            .into()
        ));
        assert!(!nothing_sent(
            &GraphFailure::Service {
                status: 500,
                code: "HTTP_500".into(),
                message: String::new(),
            }
            .into()
        ));
        let no_connection = TransportError::Unreachable {
            host: "graph.test".into(),
            reason: "could not connect".into(),
        };
        assert!(nothing_sent(&GraphFailure::Transport(no_connection).into()));
        let timeout = TransportError::Timeout {
            host: "graph.test".into(),
        };
        assert!(!nothing_sent(&GraphFailure::Transport(timeout).into()));
        assert!(!nothing_sent(
            &GraphFailure::ItemNotFound {
                code: "ErrorItemNotFound".into(),
            }
            .into()
        ));
    }
}

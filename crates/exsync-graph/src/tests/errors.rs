//! Error bodies Graph sends map onto the EWS taxonomy by status and code, never by text; each
//! body is first validated as an ODataError by check-json.

use super::check_answer;
use crate::error::{classify, Addressing, CallFacts, DeltaRole, GraphFailure, ServiceError};
use crate::{ErrorKind, GraphError};

const MAILBOX: &str = "anna@contoso.com";

fn facts(delta: DeltaRole, addressing: Addressing, is_read: bool) -> CallFacts<'static> {
    CallFacts {
        mailbox: MAILBOX,
        permission: "Mail.ReadWrite",
        delta,
        addressing,
        is_read,
        writes_item: !is_read,
    }
}

fn read_mailbox() -> CallFacts<'static> {
    facts(DeltaRole::None, Addressing::Mailbox, true)
}

fn read_item() -> CallFacts<'static> {
    facts(DeltaRole::None, Addressing::Item, true)
}

fn body(code: &str, message: &str) -> String {
    serde_json::json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "2026-12-06T10:00:00",
                "request-id": "0b3f2b5e-0000-4000-8000-000000000001",
                "client-request-id": "0b3f2b5e-0000-4000-8000-000000000002"
            }
        }
    })
    .to_string()
}

/// Validate the body as Graph's error answer for `status`, then classify it.
fn classified(status: u16, body: &str, facts: &CallFacts<'_>) -> GraphFailure {
    check_answer("GET", "/users/a/messages/x", status, body);
    classify(status, body.as_bytes(), facts)
}

#[test]
fn an_invalid_token_is_an_authentication_failure() {
    let failure = classified(
        401,
        &body(
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        &read_mailbox(),
    );
    assert_eq!(failure.kind(), ErrorKind::Authentication);
    assert!(
        matches!(failure, GraphFailure::Unauthorized { ref mailbox, .. } if mailbox == MAILBOX)
    );
}

#[test]
fn a_mailbox_outside_the_apps_scope_is_mailbox_level_and_says_what_to_grant() {
    let failure = classified(
        403,
        &body("ErrorAccessDenied", "Access to OData is disabled."),
        &read_mailbox(),
    );
    assert_eq!(failure.kind(), ErrorKind::MailboxLevel);
    let text = failure.to_string();
    for needle in [
        MAILBOX,
        "RBAC for Applications",
        "Application Mail.ReadWrite",
        "admin consent",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}

#[test]
fn a_mailbox_not_enabled_for_rest_is_mailbox_level() {
    let failure = classified(
        404,
        &body(
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ),
        &read_mailbox(),
    );
    assert!(matches!(
        failure,
        GraphFailure::MailboxNotEnabledForRest { .. }
    ));
    assert_eq!(failure.kind(), ErrorKind::MailboxLevel);
}

#[test]
fn an_unknown_user_is_mailbox_level_but_a_missing_item_only_concerns_the_item() {
    let invalid_user = classified(
        404,
        &body(
            "ErrorInvalidUser",
            "The requested user 'nobody@contoso.com' is invalid.",
        ),
        &read_item(),
    );
    assert!(matches!(invalid_user, GraphFailure::UnknownMailbox { .. }));
    let not_found = body("ResourceNotFound", "Resource could not be discovered.");
    assert!(matches!(
        classified(404, &not_found, &read_mailbox()),
        GraphFailure::UnknownMailbox { .. }
    ));
    // The same code on an item path must not disable the mailbox.
    assert_eq!(
        classified(404, &not_found, &read_item()).kind(),
        ErrorKind::ItemNotFound
    );
    let gone = body(
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    );
    assert_eq!(
        classified(404, &gone, &read_item()).kind(),
        ErrorKind::ItemNotFound
    );
}

#[test]
fn an_expired_delta_state_starts_the_round_over_in_every_shape_graph_uses() {
    let follow = facts(DeltaRole::Follow, Addressing::Mailbox, true);
    let start = facts(DeltaRole::Start, Addressing::Mailbox, true);
    let shapes = [
        // calendarView delta, capital S (I-DQ2350).
        (
            410,
            body(
                "SyncStateNotFound",
                "The sync state generation is not found; generation=2;",
            ),
        ),
        // lower-case s as the delta overview prints it (GD-DQO, TP-DEVBLOG-7D), as a 400.
        (400, body("syncStateNotFound", "Sync state not found.")),
        (400, body("resyncRequired", "Resync required.")),
        (410, body("Gone", "Gone")),
    ];
    for (status, body) in &shapes {
        let failure = classified(*status, body, &follow);
        assert_eq!(
            failure.kind(),
            ErrorKind::SyncStateExpired,
            "{status} {body}"
        );
        // Even on the first call of a round.
        assert_eq!(
            classified(*status, body, &start).kind(),
            ErrorKind::SyncStateExpired
        );
    }
    let malformed = body("ErrorInvalidIdMalformed", "Id is malformed.");
    assert_eq!(
        classified(400, &malformed, &follow).kind(),
        ErrorKind::SyncStateExpired
    );
    assert_eq!(
        classified(400, &malformed, &start).kind(),
        ErrorKind::SyncStateExpired
    );
    // Outside delta, a malformed id is about the item.
    assert_eq!(
        classified(400, &malformed, &read_item()).kind(),
        ErrorKind::ItemLevel
    );
    // Any 400 to a link Graph gave means its token; on the first call it means our query.
    let bad = body("BadRequest", "Unsupported query.");
    assert_eq!(
        classified(400, &bad, &follow).kind(),
        ErrorKind::SyncStateExpired
    );
    assert_eq!(
        classified(400, &bad, &start).kind(),
        ErrorKind::MailboxLevel
    );
}

#[test]
fn quota_and_send_as_refusals_are_mailbox_level() {
    let send = facts(DeltaRole::None, Addressing::Item, false);
    for code in ["ErrorQuotaExceeded", "ErrorSubmissionQuotaExceeded"] {
        let failure = classified(400, &body(code, "Cannot get ID from name."), &send);
        assert!(
            matches!(failure, GraphFailure::QuotaExceeded { .. }),
            "{code}"
        );
        assert_eq!(failure.kind(), ErrorKind::MailboxLevel);
    }
    let failure = classified(
        403,
        &body("ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account."),
        &send,
    );
    assert!(matches!(failure, GraphFailure::SendAsDenied { .. }));
    assert_eq!(failure.kind(), ErrorKind::MailboxLevel);
}

#[test]
fn a_message_too_large_or_invalid_fails_only_that_item() {
    let create = facts(DeltaRole::None, Addressing::Mailbox, false);
    let too_big = classified(
        400,
        &body(
            "ErrorMessageSizeExceeded",
            "The message exceeds the maximum supported size.",
        ),
        &create,
    );
    assert_eq!(too_big.kind(), ErrorKind::ItemLevel);
    let request_too_large = classified(
        413,
        &body(
            "RequestEntityTooLarge",
            "The maximum request length supported is 4MB.",
        ),
        &create,
    );
    assert_eq!(request_too_large.kind(), ErrorKind::ItemLevel);
    let invalid = classified(
        400,
        &body(
            "ErrorInvalidRecipients",
            "At least one recipient is not valid.",
        ),
        &create,
    );
    assert_eq!(invalid.kind(), ErrorKind::ItemLevel);
}

#[test]
fn an_edit_conflict_is_a_conflict_but_a_412_on_a_read_is_transient() {
    let patch = facts(DeltaRole::None, Addressing::Item, false);
    let conflict = body(
        "ErrorIrresolvableConflict",
        "The change key passed in the request does not match the current change key for the item.",
    );
    assert_eq!(
        classified(412, &conflict, &patch).kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        classified(412, &conflict, &read_mailbox()).kind(),
        ErrorKind::Transient
    );
}

#[test]
fn server_failures_and_unreadable_answers_are_transient() {
    for status in [500, 502, 504, 408] {
        let failure = classified(
            status,
            &body("UnknownError", "Something went wrong."),
            &read_mailbox(),
        );
        assert_eq!(failure.kind(), ErrorKind::Transient, "{status}");
    }
    let store = classified(
        400,
        &body(
            "ErrorMailboxStoreUnavailable",
            "The mailbox database is temporarily unavailable.",
        ),
        &read_mailbox(),
    );
    assert_eq!(store.kind(), ErrorKind::Transient);
    // A proxy's HTML page is judged by its status alone and never echoed.
    let html = b"<html><body>502 Bad Gateway <script>secret</script></body></html>";
    let failure = classify(502, html, &read_mailbox());
    assert_eq!(failure.kind(), ErrorKind::Transient);
    assert!(!failure.to_string().contains("script"));
}

#[test]
fn the_most_specific_code_in_the_inner_error_chain_counts() {
    let nested = serde_json::json!({
        "error": {
            "code": "invalidRequest",
            "message": "Invalid request",
            "innerError": {
                "code": "ErrorIncorrectRoutingHint",
                "date": "2026-12-06T10:00:00",
                "request-id": "r-1",
                "client-request-id": "c-1"
            }
        }
    })
    .to_string();
    check_answer("GET", "/users/a/todo/lists", 400, &nested);
    let parsed = ServiceError::parse(nested.as_bytes()).unwrap();
    assert_eq!(
        parsed.codes,
        ["invalidRequest", "ErrorIncorrectRoutingHint"]
    );
    assert_eq!(parsed.request_id.as_deref(), Some("r-1"));
    let failure = classify(400, nested.as_bytes(), &read_mailbox());
    assert!(
        matches!(failure, GraphFailure::MailboxRefused { ref code, .. } if code == "ErrorIncorrectRoutingHint")
    );
}

#[test]
fn remote_text_in_errors_is_bounded_and_clean() {
    let long = format!("evil\u{1b}[31m\r\n{}", "x".repeat(5000));
    let failure = classify(
        400,
        body("ErrorQuotaExceeded", &long).as_bytes(),
        &read_mailbox(),
    );
    let GraphFailure::QuotaExceeded { message, .. } = &failure else {
        panic!("quota")
    };
    assert!(message.chars().count() <= 200);
    assert!(!message.chars().any(char::is_control));
    // A huge error body is not parsed at all.
    let huge = body("ErrorQuotaExceeded", &"y".repeat(100_000));
    assert!(ServiceError::parse(huge.as_bytes()).is_none());
}

#[test]
fn every_failure_has_a_bounded_code_for_metrics() {
    let failure = classify(
        403,
        body("ErrorAccessDenied", "denied").as_bytes(),
        &read_mailbox(),
    );
    let error = GraphError::from(failure);
    assert_eq!(error.code(), "ErrorAccessDenied");
    assert!(error.correlation().is_none());
    let error = GraphError::from(classify(502, b"", &read_mailbox()));
    assert_eq!(error.code(), "HTTP_502");
}

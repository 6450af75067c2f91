//! Outgoing email: the mailbox's queued rows sent through Exchange as the mailbox, exactly once.
//!
//! A claim counts the attempt before anything reaches Exchange. When an earlier attempt may
//! have reached Exchange (a crash or a lost reply after the claim), Sent Items is searched for
//! the message's own Internet Message-ID first: found means sent, so it is never sent twice.

use super::exchange::MailboxConnection;
use super::pass::{PassContext, WorkloadSummary};
use super::{FailureKind, SyncError};
use crate::domain::scope::ScopeSettings;
use crate::store::outgoing::{self, OutgoingEmail};
use chrono::Utc;

/// Most emails sent in one pass (the rest wait for the next pass, due at once).
pub const BATCH: i64 = 50;

/// Send the mailbox's due queued email.
pub async fn run(
    ctx: &PassContext<'_>,
    conn: &MailboxConnection,
    scope: &ScopeSettings,
) -> Result<WorkloadSummary, SyncError> {
    let mut summary = WorkloadSummary::default();
    let claimed = outgoing::claim(ctx.store, ctx.mailbox_id, ctx.lease_token, BATCH).await?;
    summary.more_waiting = claimed.len() as i64 >= BATCH;
    let mut rest: &[OutgoingEmail] = &claimed;
    while let Some((email, tail)) = rest.split_first() {
        rest = tail;
        if let Err(e) = ctx.check() {
            release(ctx, std::slice::from_ref(email), rest).await;
            return Err(e);
        }
        // The profile's tracking token, when it has one, ends the subject (same on retries).
        let tokened = match super::scope::with_tracking_token(ctx, scope, email).await {
            Ok(tokened) => tokened,
            Err(e) => {
                release(ctx, std::slice::from_ref(email), rest).await;
                return Err(e.into());
            }
        };
        let email: &OutgoingEmail = &tokened;
        match send_once(conn, email).await {
            Ok(Ok(())) => {
                outgoing::mark_sent(ctx.store, email, conn.address()).await?;
                summary.processed += 1;
            }
            Ok(Err(refused)) => {
                // Exchange refused this one message: it fails alone, the others go on.
                outgoing::mark_failed(ctx.store, email.id, &refused).await?;
                summary.failed += 1;
                summary
                    .item_errors
                    .push(format!("outgoing email {} refused: {refused}", email.id));
            }
            Err(error) => {
                let error = SyncError::from(error);
                match error.kind() {
                    FailureKind::Transient
                        if email.attempts < ctx.sync.outgoing_max_attempts as i32 =>
                    {
                        let delay = super::plan::backoff(
                            ctx.scheduler,
                            email.attempts.max(1) as u32,
                            None,
                            super::plan::random_jitter(),
                        );
                        let next = Utc::now()
                            + chrono::Duration::from_std(delay)
                                .unwrap_or_else(|_| chrono::Duration::minutes(5));
                        outgoing::mark_retry(ctx.store, email.id, &error.to_string(), next).await?;
                    }
                    FailureKind::Transient => {
                        outgoing::mark_failed(ctx.store, email.id, &error.to_string()).await?;
                        summary.failed += 1;
                        summary.item_errors.push(format!(
                            "outgoing email {} failed after {} attempts: {error}",
                            email.id, email.attempts
                        ));
                    }
                    _ => {
                        // Throttled, credentials refused, mailbox unreachable: nothing was
                        // decided about these emails; give the attempts back and stop.
                        release(ctx, std::slice::from_ref(email), rest).await;
                        return Err(error);
                    }
                }
            }
        }
    }
    Ok(summary)
}

/// Send unless an earlier attempt already got through (checked in Sent Items).
async fn send_once(
    conn: &MailboxConnection,
    email: &OutgoingEmail,
) -> Result<Result<(), String>, crate::ews::EwsError> {
    if email.may_have_been_sent() && conn.sent_items_contain(&email.internet_message_id).await? {
        tracing::info!(outgoing.id = %email.id, "already in Sent Items; not sending again");
        return Ok(Ok(()));
    }
    conn.send(email).await
}

/// Put claimed emails back (the current one may have reached Exchange only if it was sent:
/// the Sent Items check on its next attempt covers that).
async fn release(ctx: &PassContext<'_>, current: &[OutgoingEmail], rest: &[OutgoingEmail]) {
    let ids: Vec<_> = current.iter().chain(rest).map(|e| e.id).collect();
    if let Err(e) = outgoing::unclaim(ctx.store, &ids).await {
        tracing::warn!(error = %e, "could not release claimed outgoing email; it is retried after the lease expires");
    }
}

//! Outgoing email: the mailbox's queued rows sent through Exchange as the mailbox, exactly once.
//!
//! A claim counts the attempt before anything reaches Exchange. Every message carries its row's
//! id as an idempotency key (one fixed named property, `ExsyncOutgoingId`, see
//! [`super::port::MailServer::send`]): when an earlier attempt may have reached Exchange
//! (a crash or a lost reply after the claim), Sent Items is searched for that key first, and
//! found means sent, so it is never sent twice. exsync does not set the Message-ID (Exchange
//! assigns it; whether Exchange would keep a client's is undocumented): it reads the assigned
//! one back from the sent copy, in the same pass or a later one.
//!
//! Exchange files the Sent Items copy after answering, so a lost answer followed by a quick
//! retry could find nothing although the mail went out. Both providers (EWS CreateItem
//! `SendAndSaveCopy`, Graph draft `send`) therefore journal the send ([`SendJournal`]:
//! `send_issued_at`) before its request leaves and withdraw the mark only on a definite
//! "not sent" answer. A retry after an issued send that finds no copy is
//! [`SendOutcome::Unconfirmed`]: it waits, and after `sync.unconfirmed_send_alert_minutes`
//! fails with the `outgoing.unconfirmed` alert; attempts running out with the mark set fail
//! the same way, saying the email may have been sent. exsync never sends it again by itself.
//!
//! Errors about one message (bad recipient, too large) fail that email alone; errors about the
//! mailbox (quota, submission quota, Send As right) keep every email queued and fail the
//! workload, which retries with backoff and an alert.

use super::context::{PassContext, WorkloadSummary};
use super::port::{
    Failure, MailServer, PortFuture, SendJournal, SendOutcome, SentCopy, ServerError,
};
use super::{FailureKind, SyncError};
use crate::domain::scope::ScopeSettings;
use crate::domain::{AlertLevel, AlertTarget, MailboxId, Workload};
use crate::store::alerts;
use crate::store::outgoing::{self, OutgoingEmail};
use chrono::Utc;

/// The alert of a send left unconfirmed: open until the operator decides (no pass heals it).
pub const UNCONFIRMED_ALERT: &str = "outgoing.unconfirmed";

/// Most emails sent in one pass (the rest wait for the next pass, due at once).
pub const BATCH: i64 = 50;

/// Most sent emails whose Message-ID is looked up again in one pass.
const MESSAGE_ID_BATCH: i64 = 20;

/// Send the mailbox's due queued email.
pub async fn run(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    scope: &ScopeSettings,
) -> Result<WorkloadSummary, SyncError> {
    let mut summary = WorkloadSummary::default();
    read_back_message_ids(ctx, conn).await?;
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
        match send_once(ctx, conn, email).await {
            Ok(Sent::Now) => {
                outgoing::mark_sent(ctx.store, email, None).await?;
                summary.processed += 1;
                read_back(ctx, conn, email).await;
            }
            Ok(Sent::Before(message_id)) => {
                outgoing::mark_sent(ctx.store, email, message_id.as_deref()).await?;
                summary.processed += 1;
            }
            Ok(Sent::Unconfirmed(why)) => unconfirmed(ctx, email, &why).await?,
            Ok(Sent::Refused(refused)) => {
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
                        match outgoing::send_issued_at(ctx.store, email.id).await? {
                            // The last request's answer was lost: it may have been sent.
                            Some(issued) => maybe_sent(ctx, email, issued, &error).await?,
                            None => {
                                outgoing::mark_failed(ctx.store, email.id, &error.to_string())
                                    .await?;
                                summary.failed += 1;
                                summary.item_errors.push(format!(
                                    "outgoing email {} failed after {} attempts: {error}",
                                    email.id, email.attempts
                                ));
                            }
                        }
                    }
                    FailureKind::MailboxRefused => {
                        // Quota, submission quota, Send As right: the mailbox cannot send now.
                        // Every claimed email stays queued (its attempt given back); the
                        // workload fails with an alert and retries with backoff.
                        if let Err(e) =
                            outgoing::note_error(ctx.store, email.id, &error.to_string()).await
                        {
                            tracing::warn!(error = %e, "could not note why an email waits");
                        }
                        release(ctx, std::slice::from_ref(email), rest).await;
                        return Err(error);
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

/// What became of one email.
enum Sent {
    /// Exchange accepted it now.
    Now,
    /// An earlier attempt got through (found in Sent Items), with the Message-ID it got.
    Before(Option<String>),
    /// Exchange refused this one message.
    Refused(String),
    /// A send was issued before and left no trace yet: never sent again automatically.
    Unconfirmed(String),
}

/// A send whose answer was lost and whose Sent Items copy is not found yet: it waits for the
/// copy (queued, retried with backoff); after `sync.unconfirmed_send_alert_minutes` it is
/// marked failed with an `outgoing.unconfirmed` alert for the operator to decide. It is
/// never sent a second time by exsync.
async fn unconfirmed(
    ctx: &PassContext<'_>,
    email: &OutgoingEmail,
    why: &str,
) -> Result<(), SyncError> {
    let issued = email.send_issued_at.unwrap_or_else(Utc::now);
    let bound = chrono::Duration::minutes(i64::from(ctx.sync.unconfirmed_send_alert_minutes));
    if Utc::now() < issued + bound {
        let delay = super::plan::backoff(
            ctx.scheduler,
            email.attempts.max(1) as u32,
            None,
            super::plan::random_jitter(),
        );
        let next = (Utc::now()
            + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::minutes(5)))
        .min(issued + bound);
        tracing::info!(outgoing.id = %email.id, "send unconfirmed; waiting for its Sent Items copy, not sending again");
        outgoing::mark_retry(ctx.store, email.id, why, next).await?;
        return Ok(());
    }
    let text = format!(
        "outgoing email {} (subject {:?}) is unconfirmed: exsync asked Exchange to send it at \
         {issued}, the answer was lost, and after {} minutes no copy of it is found in Sent \
         Items (nor, over Graph, its draft in Drafts). It may or may not have been delivered; \
         exsync will not send it again. Check the recipients or the mailbox's Sent Items, and \
         queue it again only if it never arrived.",
        email.id, email.subject, ctx.sync.unconfirmed_send_alert_minutes
    );
    give_up_unconfirmed(ctx, email, &text).await
}

/// The attempts are used up and the last send request's answer was lost (a timeout, a
/// dropped connection): the email may have been sent. It fails with the
/// `outgoing.unconfirmed` alert saying so (an operator must not blindly queue it again).
async fn maybe_sent(
    ctx: &PassContext<'_>,
    email: &OutgoingEmail,
    issued: chrono::DateTime<Utc>,
    error: &SyncError,
) -> Result<(), SyncError> {
    let text = format!(
        "outgoing email {} (subject {:?}) failed after {} attempts, but it MAY HAVE BEEN SENT: \
         exsync asked Exchange to send it at {issued} and the answer was lost ({error}). exsync \
         will not send it again. Check the recipients or the mailbox's Sent Items, and queue it \
         again only if it never arrived.",
        email.id, email.subject, email.attempts
    );
    give_up_unconfirmed(ctx, email, &text).await
}

/// Fail an email whose send may have happened, with its own alert for the operator to decide.
async fn give_up_unconfirmed(
    ctx: &PassContext<'_>,
    email: &OutgoingEmail,
    text: &str,
) -> Result<(), SyncError> {
    // Not an item failure to retry (the `item.failed` alert says it will be): its own alert.
    outgoing::mark_failed(ctx.store, email.id, text).await?;
    let target = AlertTarget::Mailbox(MailboxId(ctx.mailbox_id));
    if let Err(e) = alerts::raise(
        ctx.store,
        target,
        AlertLevel::Error,
        UNCONFIRMED_ALERT,
        Some(Workload::Outgoing),
        text,
    )
    .await
    {
        tracing::warn!(error = %e, "could not raise the unconfirmed-send alert");
    }
    Ok(())
}

/// Records in the queue row that a send request is about to leave.
struct StoreJournal<'a> {
    store: &'a crate::store::Store,
}

impl SendJournal for StoreJournal<'_> {
    fn sending(&self, outgoing_id: uuid::Uuid) -> PortFuture<'_, ()> {
        Box::pin(async move {
            outgoing::note_send_issued(self.store, outgoing_id)
                .await
                .map_err(|e| {
                    ServerError::new(
                        Failure::Unavailable,
                        "store.send_journal",
                        format!("could not record the send before issuing it: {e}"),
                    )
                })
        })
    }

    fn not_sent(&self, outgoing_id: uuid::Uuid) -> PortFuture<'_, ()> {
        Box::pin(async move {
            outgoing::note_send_not_issued(self.store, outgoing_id)
                .await
                .map_err(|e| {
                    ServerError::new(
                        Failure::Unavailable,
                        "store.send_journal",
                        format!("could not withdraw the mark of a send the server refused: {e}"),
                    )
                })
        })
    }
}

/// Send unless an earlier attempt already got through (checked in Sent Items by the key).
async fn send_once(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
    email: &OutgoingEmail,
) -> Result<Sent, ServerError> {
    if email.may_have_been_sent() {
        if let Some(copy) = conn.find_sent(email.id).await? {
            tracing::info!(outgoing.id = %email.id, "already in Sent Items; not sending again");
            return Ok(Sent::Before(copy.internet_message_id));
        }
    }
    let journal = StoreJournal { store: ctx.store };
    Ok(match conn.send(email, &journal).await? {
        SendOutcome::Accepted => Sent::Now,
        SendOutcome::Refused(refused) => Sent::Refused(refused),
        SendOutcome::Unconfirmed(why) => Sent::Unconfirmed(why),
    })
}

/// Read back the Message-ID Exchange assigned to a sent email; a miss (Sent Items not filed
/// yet) or a failure is left for a later pass.
async fn read_back(ctx: &PassContext<'_>, conn: &dyn MailServer, email: &OutgoingEmail) {
    let outcome = match conn.find_sent(email.id).await {
        Ok(Some(SentCopy {
            internet_message_id: Some(id),
        })) => outgoing::record_message_id(ctx.store, email.id, &id)
            .await
            .map_err(|e| e.to_string()),
        Ok(_) => outgoing::note_message_id_missing(ctx.store, email.id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        tracing::warn!(outgoing.id = %email.id, error = %e, "could not read back the Message-ID Exchange assigned; a later pass tries again");
    }
}

/// Emails sent earlier whose Message-ID was not found yet: look again (bounded).
async fn read_back_message_ids(
    ctx: &PassContext<'_>,
    conn: &dyn MailServer,
) -> Result<(), SyncError> {
    let waiting =
        outgoing::awaiting_message_id(ctx.store, ctx.mailbox_id, MESSAGE_ID_BATCH).await?;
    for id in waiting {
        ctx.check()?;
        match conn.find_sent(id).await {
            Ok(Some(SentCopy {
                internet_message_id: Some(message_id),
            })) => outgoing::record_message_id(ctx.store, id, &message_id).await?,
            Ok(_) => outgoing::note_message_id_missing(ctx.store, id).await?,
            Err(e) => {
                // Sending decides how the mailbox is doing; a lookup never fails the workload.
                tracing::warn!(outgoing.id = %id, error = %e, "could not look up a sent email's Message-ID");
                break;
            }
        }
    }
    Ok(())
}

/// Put claimed emails back (the current one may have reached Exchange only if it was sent:
/// the Sent Items check on its next attempt covers that).
async fn release(ctx: &PassContext<'_>, current: &[OutgoingEmail], rest: &[OutgoingEmail]) {
    let ids: Vec<_> = current.iter().chain(rest).map(|e| e.id).collect();
    if let Err(e) = outgoing::unclaim(ctx.store, &ids).await {
        tracing::warn!(error = %e, "could not release claimed outgoing email; it is retried after the lease expires");
    }
}

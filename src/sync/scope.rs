//! The scope rules of `domain::scope` applied in a pass: which incoming mail the mailbox's
//! filter leaves out (gathering the facts it needs from the database in one query per page),
//! and the tracking token outgoing mail carries in its subject.

use super::context::PassContext;
use super::port::IncomingMail;
use crate::domain::scope::{
    mail_left_out_by, referenced_message_ids, subject_with_token, tracking_tokens, IncomingFilter,
    MailFacts, ScopeSettings,
};
use crate::store::emails::SkipReason;
use crate::store::outgoing::OutgoingEmail;
use crate::store::{scope, Store, StoreError};
use std::borrow::Cow;

/// The skip reason stored for mail a filter rule leaves out.
pub fn skip_reason(rule: IncomingFilter) -> SkipReason {
    match rule {
        IncomingFilter::Responses => SkipReason::FilterResponses,
        IncomingFilter::KnownSenders => SkipReason::FilterKnownSenders,
        // `all` leaves nothing out; `none` leaves out everything untracked.
        IncomingFilter::None | IncomingFilter::All => SkipReason::FilterNone,
    }
}

/// For each message (in order), the reason the mailbox's incoming filter leaves it out, or
/// `None` to import it. Tracked mail always comes in.
pub async fn incoming_verdicts(
    store: &Store,
    settings: &ScopeSettings,
    mails: &[&IncomingMail],
) -> Result<Vec<Option<SkipReason>>, StoreError> {
    let filter = settings.incoming_filter;
    if filter == IncomingFilter::All {
        return Ok(vec![None; mails.len()]);
    }
    let prefix = settings.tracking_token_prefix.as_deref().unwrap_or("");
    let (sent_ids, sent_tokens) = if filter == IncomingFilter::Responses {
        let mut ids: Vec<String> = Vec::new();
        let mut tokens: Vec<String> = Vec::new();
        for mail in mails {
            ids.extend(references_of(mail));
            tokens.extend(tracking_tokens(&mail.email.subject, prefix));
        }
        scope::sent_through_exsync(store, &ids, &tokens).await?
    } else {
        Default::default()
    };
    let known = if filter == IncomingFilter::KnownSenders {
        let senders: Vec<String> = mails
            .iter()
            .filter_map(|m| m.email.sender_address.clone())
            .collect();
        scope::known_addresses(store, &senders).await?
    } else {
        Default::default()
    };
    Ok(mails
        .iter()
        .map(|mail| {
            let facts = MailFacts {
                tracked: settings.is_tracked(&mail.categories),
                response: references_of(mail).iter().any(|id| sent_ids.contains(id))
                    || tracking_tokens(&mail.email.subject, prefix)
                        .iter()
                        .any(|t| sent_tokens.contains(t)),
                known_sender: mail
                    .email
                    .sender_address
                    .as_ref()
                    .is_some_and(|a| known.contains(a)),
            };
            mail_left_out_by(filter, facts).map(skip_reason)
        })
        .collect())
}

fn references_of(mail: &IncomingMail) -> Vec<String> {
    referenced_message_ids(
        mail.email.in_reply_to.as_deref(),
        mail.references.as_deref(),
    )
}

/// The email as it is sent: with the profile's tracking token at the end of its subject when
/// the profile has a prefix (the same token on every retry), else as queued.
pub async fn with_tracking_token<'e>(
    ctx: &PassContext<'_>,
    settings: &ScopeSettings,
    email: &'e OutgoingEmail,
) -> Result<Cow<'e, OutgoingEmail>, StoreError> {
    let Some(prefix) = settings.tracking_token_prefix.as_deref() else {
        return Ok(Cow::Borrowed(email));
    };
    let token = scope::tracking_token(ctx.store, email.id, prefix).await?;
    let mut tokened = email.clone();
    tokened.subject = subject_with_token(&email.subject, &token);
    Ok(Cow::Owned(tokened))
}

//! What syncs: each mailbox's incoming filter and ACT scope (its own or its profile's), and the
//! lookups the filter needs — Message-IDs and tracking tokens of mail sent through exsync,
//! addresses the database knows (contacts and mailboxes) — plus the outgoing tracking token.

use super::{Store, StoreError};
use crate::domain::scope::{ActScope, AttendeeDelete, IncomingFilter, ScopeSettings};
use crate::domain::ParseEnumError;
use std::collections::HashSet;
use std::str::FromStr;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct ScopeRow {
    profile_incoming_filter: String,
    mailbox_incoming_filter: Option<String>,
    profile_act_scope: String,
    mailbox_act_scope: Option<String>,
    act_attendee_delete: String,
    tracking_token_prefix: Option<String>,
}

fn parse<T: FromStr<Err = ParseEnumError>>(
    mailbox_id: Uuid,
    table: &'static str,
    field: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    text.parse()
        .map_err(|e: ParseEnumError| StoreError::InvalidRow {
            table,
            id: mailbox_id,
            field,
            reason: e.to_string(),
        })
}

/// The effective scope settings of a mailbox (`tracking_category` comes from `[sync]`).
pub async fn settings(
    store: &Store,
    mailbox_id: Uuid,
    tracking_category: &str,
) -> Result<ScopeSettings, StoreError> {
    let row: Option<ScopeRow> = sqlx::query_as(
        "SELECT p.incoming_filter AS profile_incoming_filter,
                m.incoming_filter AS mailbox_incoming_filter,
                p.act_scope AS profile_act_scope, m.act_scope AS mailbox_act_scope,
                p.act_attendee_delete, p.tracking_token_prefix
           FROM mailboxes m JOIN email_server_profiles p ON p.id = m.profile_id
          WHERE m.id = $1",
    )
    .bind(mailbox_id)
    .fetch_optional(store.pool())
    .await?;
    let row = row.ok_or_else(|| StoreError::NotFound(format!("no mailbox {mailbox_id}")))?;
    let m = "mailboxes";
    let p = "email_server_profiles";
    Ok(ScopeSettings::resolve(
        parse::<IncomingFilter>(
            mailbox_id,
            p,
            "incoming_filter",
            &row.profile_incoming_filter,
        )?,
        row.mailbox_incoming_filter
            .as_deref()
            .map(|t| parse(mailbox_id, m, "incoming_filter", t))
            .transpose()?,
        parse::<ActScope>(mailbox_id, p, "act_scope", &row.profile_act_scope)?,
        row.mailbox_act_scope
            .as_deref()
            .map(|t| parse(mailbox_id, m, "act_scope", t))
            .transpose()?,
        parse::<AttendeeDelete>(
            mailbox_id,
            p,
            "act_attendee_delete",
            &row.act_attendee_delete,
        )?,
        row.tracking_token_prefix,
        tracking_category,
    ))
}

/// Which of `message_ids` and `tokens` belong to mail sent through exsync (from any mailbox:
/// a reply may reach a colleague or a queue).
pub async fn sent_through_exsync(
    store: &Store,
    message_ids: &[String],
    tokens: &[String],
) -> Result<(HashSet<String>, HashSet<String>), StoreError> {
    if message_ids.is_empty() && tokens.is_empty() {
        return Ok((HashSet::new(), HashSet::new()));
    }
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT internet_message_id, tracking_token FROM outgoing_emails
          WHERE internet_message_id = ANY($1) OR tracking_token = ANY($2)",
    )
    .bind(message_ids)
    .bind(tokens)
    .fetch_all(store.pool())
    .await?;
    let ids = rows.iter().map(|(id, _)| id.clone()).collect();
    let found = rows.into_iter().filter_map(|(_, token)| token).collect();
    Ok((ids, found))
}

/// Which of `addresses` (lower case) the database knows: a contact's address or a mailbox.
pub async fn known_addresses(
    store: &Store,
    addresses: &[String],
) -> Result<HashSet<String>, StoreError> {
    if addresses.is_empty() {
        return Ok(HashSet::new());
    }
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT email_address FROM mailboxes WHERE email_address = ANY($1)
         UNION
         SELECT k FROM contacts, unnest(exsync_email_keys(email_addresses)) AS k
          WHERE exsync_email_keys(email_addresses) && $1 AND k = ANY($1)",
    )
    .bind(addresses)
    .fetch_all(store.pool())
    .await?;
    Ok(known.into_iter().collect())
}

/// The tracking token of an outgoing email, assigned at its first send (`prefix` then a
/// seven-digit number from a sequence) and kept for every retry.
pub async fn tracking_token(
    store: &Store,
    outgoing_id: Uuid,
    prefix: &str,
) -> Result<String, StoreError> {
    let token: Option<String> = sqlx::query_scalar(
        "UPDATE outgoing_emails
            SET tracking_token = coalesce(tracking_token,
                    $2 || lpad(nextval('exsync_tracking_token_seq')::text, 7, '0'))
          WHERE id = $1
         RETURNING tracking_token",
    )
    .bind(outgoing_id)
    .bind(prefix)
    .fetch_optional(store.pool())
    .await?;
    token.ok_or_else(|| StoreError::NotFound(format!("no outgoing email {outgoing_id}")))
}

//! Microsoft Graph change-notification subscriptions in the database: which Graph mailbox has
//! (or needs) a subscription for which resource, its expiry, a SHA-256 of its `clientState`
//! (enough to verify a notification; the secret is never stored), and who works on it now (a
//! lease taken with `SKIP LOCKED`, so with several instances one owner creates or renews it).

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// The alert code of a mailbox whose subscription could not be made or kept.
pub const ALERT_CODE: &str = "graph.notifications_unavailable";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One row claimed for work.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionWork {
    /// The mailbox.
    pub mailbox_id: Uuid,
    /// Its profile.
    pub profile_id: Uuid,
    /// Its address.
    pub address: String,
    /// `inbox` or `events`.
    pub resource_kind: String,
    /// `pending`, `active`, `failed` or `obsolete`.
    pub state: String,
    /// Graph's id, when it has one.
    pub subscription_id: Option<String>,
    /// When it lapses.
    pub expires_at: Option<DateTime<Utc>>,
    /// Consecutive failures.
    pub failures: i32,
}

/// A subscription as a notification is checked against it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KnownSubscription {
    /// The mailbox it watches.
    pub mailbox_id: Uuid,
    /// SHA-256 of its clientState.
    pub client_state_sha256: Vec<u8>,
}

/// A mailbox's subscriptions, for `exsync explain`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionStatus {
    /// `inbox` or `events`.
    pub resource_kind: String,
    /// Its state.
    pub state: String,
    /// Why it failed, if it did.
    pub reason: Option<String>,
    /// When it lapses.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it is tried again after a failure.
    pub retry_at: Option<DateTime<Utc>>,
    /// The last notification received for it.
    pub last_notification_at: Option<DateTime<Utc>>,
}

/// Bring the rows in line with what should be subscribed: an Inbox subscription for every
/// approved Graph mailbox of an enabled profile with incoming email on, an events
/// subscription where appointments are synchronised too (`enabled = false`: none). Rows no
/// longer wanted become `obsolete` (their subscription is deleted at Graph).
pub async fn plan(store: &Store, enabled: bool) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7016)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TEMP TABLE wanted_graph_subscriptions ON COMMIT DROP AS
         SELECT m.id AS mailbox_id, m.profile_id, k.kind AS resource_kind
           FROM mailboxes m
           JOIN email_server_profiles p ON p.id = m.profile_id
          CROSS JOIN LATERAL (VALUES ('inbox', m.incoming_method = 'server_side_sync'),
                                    ('events', m.act_method = 'server_side_sync')) AS k(kind, wanted)
          WHERE $1 AND p.protocol = 'graph' AND p.enabled
            AND m.approval_status = 'approved' AND k.wanted",
    )
    .bind(enabled)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO graph_subscriptions (mailbox_id, profile_id, resource_kind)
         SELECT mailbox_id, profile_id, resource_kind FROM wanted_graph_subscriptions
         ON CONFLICT (mailbox_id, resource_kind) DO UPDATE
            SET state = CASE WHEN graph_subscriptions.subscription_id IS NULL THEN 'pending'
                             ELSE 'active' END,
                updated_at = now()
          WHERE graph_subscriptions.state = 'obsolete'",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE graph_subscriptions g SET state = 'obsolete', updated_at = now()
          WHERE g.state <> 'obsolete' AND NOT EXISTS (
                SELECT 1 FROM wanted_graph_subscriptions w
                 WHERE w.mailbox_id = g.mailbox_id AND w.resource_kind = g.resource_kind)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM graph_subscriptions WHERE state = 'obsolete' AND subscription_id IS NULL",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Claim up to `limit` rows with work to do (to create, to renew within `renew_before` of
/// expiry or on request, to retry, to delete) that nobody holds, for `owner`.
pub async fn claim_work(
    store: &Store,
    owner: &str,
    lease: Duration,
    renew_before: Duration,
    limit: i64,
) -> Result<Vec<SubscriptionWork>, StoreError> {
    let rows = sqlx::query_as::<_, SubscriptionWork>(
        "WITH due AS (
            SELECT mailbox_id, resource_kind FROM graph_subscriptions
             WHERE (lease_expires_at IS NULL OR lease_expires_at < now())
               AND (state = 'obsolete'
                    OR (state IN ('pending', 'failed') AND (retry_at IS NULL OR retry_at <= now()))
                    OR (state = 'active' AND (renew_requested
                        OR (expires_at - $3 * interval '1 millisecond' <= now()
                            AND (retry_at IS NULL OR retry_at <= now())))))
             ORDER BY updated_at
             LIMIT $4
             FOR UPDATE SKIP LOCKED
         )
         UPDATE graph_subscriptions g
            SET lease_owner = $1, lease_expires_at = now() + $2 * interval '1 millisecond'
           FROM due d, mailboxes m
          WHERE g.mailbox_id = d.mailbox_id AND g.resource_kind = d.resource_kind
            AND m.id = g.mailbox_id
         RETURNING g.mailbox_id, g.profile_id, m.email_address AS address, g.resource_kind,
                   g.state, g.subscription_id, g.expires_at, g.failures",
    )
    .bind(owner)
    .bind(millis(lease))
    .bind(millis(renew_before))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// A subscription was created: it is active until `expires_at`; the lease is given back.
pub async fn created(
    store: &Store,
    work: &SubscriptionWork,
    owner: &str,
    subscription_id: &str,
    client_state_sha256: &[u8; 32],
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE graph_subscriptions
            SET state = 'active', subscription_id = $4, client_state_sha256 = $5,
                expires_at = $6, renew_requested = false, reason = NULL, failures = 0,
                retry_at = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
          WHERE mailbox_id = $1 AND resource_kind = $2 AND lease_owner = $3
            AND state <> 'obsolete'",
    )
    .bind(work.mailbox_id)
    .bind(&work.resource_kind)
    .bind(owner)
    .bind(subscription_id)
    .bind(&client_state_sha256[..])
    .bind(expires_at)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A subscription was renewed until `expires_at`.
pub async fn renewed(
    store: &Store,
    work: &SubscriptionWork,
    owner: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE graph_subscriptions
            SET expires_at = $4, renewals = renewals + 1, renew_requested = false, reason = NULL,
                failures = 0, retry_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
                updated_at = now()
          WHERE mailbox_id = $1 AND resource_kind = $2 AND lease_owner = $3",
    )
    .bind(work.mailbox_id)
    .bind(&work.resource_kind)
    .bind(owner)
    .bind(expires_at)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Creating (or renewing) failed for `reason`: tried again at `retry_at`. A renewal failure
/// keeps the subscription (it still delivers until it lapses); a creation failure has none.
pub async fn failed(
    store: &Store,
    work: &SubscriptionWork,
    owner: &str,
    reason: &str,
    retry_in: Duration,
    keep_subscription: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE graph_subscriptions
            SET state = CASE WHEN $6 THEN state ELSE 'failed' END,
                subscription_id = CASE WHEN $6 THEN subscription_id END,
                client_state_sha256 = CASE WHEN $6 THEN client_state_sha256 END,
                expires_at = CASE WHEN $6 THEN expires_at END,
                renew_requested = false,
                reason = $4, failures = failures + 1,
                retry_at = now() + $5 * interval '1 millisecond',
                lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
          WHERE mailbox_id = $1 AND resource_kind = $2 AND lease_owner = $3
            AND state <> 'obsolete'",
    )
    .bind(work.mailbox_id)
    .bind(&work.resource_kind)
    .bind(owner)
    .bind(super::scheduling::truncate(reason, 2000))
    .bind(millis(retry_in))
    .bind(keep_subscription)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The row's subscription is gone at Graph (404 on renewal, lapsed): to be created again.
pub async fn forget(store: &Store, work: &SubscriptionWork, owner: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE graph_subscriptions
            SET state = 'pending', subscription_id = NULL, client_state_sha256 = NULL,
                expires_at = NULL, renew_requested = false, retry_at = NULL, updated_at = now()
          WHERE mailbox_id = $1 AND resource_kind = $2 AND lease_owner = $3
            AND state <> 'obsolete'",
    )
    .bind(work.mailbox_id)
    .bind(&work.resource_kind)
    .bind(owner)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// An obsolete row whose subscription was deleted at Graph (or could not be): gone.
pub async fn remove(store: &Store, work: &SubscriptionWork, owner: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM graph_subscriptions
          WHERE mailbox_id = $1 AND resource_kind = $2 AND lease_owner = $3 AND state = 'obsolete'",
    )
    .bind(work.mailbox_id)
    .bind(&work.resource_kind)
    .bind(owner)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Give a row back without a change.
pub async fn release(
    store: &Store,
    work: &SubscriptionWork,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE graph_subscriptions SET lease_owner = NULL, lease_expires_at = NULL
          WHERE mailbox_id = $1 AND resource_kind = $2 AND lease_owner = $3",
    )
    .bind(work.mailbox_id)
    .bind(&work.resource_kind)
    .bind(owner)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The subscription a notification names, if exsync made it.
pub async fn find(
    store: &Store,
    subscription_id: &str,
) -> Result<Option<KnownSubscription>, StoreError> {
    let row = sqlx::query_as::<_, KnownSubscription>(
        "SELECT mailbox_id, client_state_sha256 FROM graph_subscriptions
          WHERE subscription_id = $1 AND client_state_sha256 IS NOT NULL",
    )
    .bind(subscription_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(row)
}

/// A verified notification arrived for the subscription.
pub async fn notified(store: &Store, subscription_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE graph_subscriptions SET last_notification_at = now() WHERE subscription_id = $1",
    )
    .bind(subscription_id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// `reauthorizationRequired`: renew it at once.
pub async fn request_renewal(store: &Store, subscription_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE graph_subscriptions SET renew_requested = true, updated_at = now()
          WHERE subscription_id = $1 AND state = 'active'",
    )
    .bind(subscription_id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// `subscriptionRemoved`: Graph removed it; create it again at once.
pub async fn removed_by_graph(store: &Store, subscription_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE graph_subscriptions
            SET state = 'pending', subscription_id = NULL, client_state_sha256 = NULL,
                expires_at = NULL, renew_requested = false, retry_at = NULL,
                reason = 'Graph removed the subscription (subscriptionRemoved); it is created again',
                updated_at = now()
          WHERE subscription_id = $1 AND state = 'active'",
    )
    .bind(subscription_id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A mailbox's subscriptions.
pub async fn status(
    store: &Store,
    mailbox_id: Uuid,
) -> Result<Vec<SubscriptionStatus>, StoreError> {
    let rows = sqlx::query_as::<_, SubscriptionStatus>(
        "SELECT resource_kind, state, reason, expires_at, retry_at, last_notification_at
           FROM graph_subscriptions WHERE mailbox_id = $1 AND state <> 'obsolete'
          ORDER BY resource_kind DESC",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// Subscriptions active now (all instances).
pub async fn active_count(store: &Store) -> Result<i64, StoreError> {
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM graph_subscriptions WHERE state = 'active' AND expires_at > now()",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(n)
}

/// Close the mailbox's open notification alert (with an information alert saying it healed).
pub async fn resolve_alert(store: &Store, mailbox_id: Uuid) -> Result<(), StoreError> {
    let closed: Vec<String> = sqlx::query_scalar(
        "UPDATE alerts SET resolved_at = now()
          WHERE resolved_at IS NULL AND mailbox_id = $1 AND code = $2
         RETURNING message",
    )
    .bind(mailbox_id)
    .bind(ALERT_CODE)
    .fetch_all(store.pool())
    .await?;
    for message in closed {
        super::alerts::inform(
            store,
            crate::domain::AlertTarget::Mailbox(crate::domain::MailboxId(mailbox_id)),
            &format!("{ALERT_CODE}.resolved"),
            None,
            &format!("resolved: {message}"),
        )
        .await?;
    }
    Ok(())
}

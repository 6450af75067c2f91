//! Streaming notifications in the database: which subscription group each mailbox belongs
//! to, who owns each group (a lease with a fencing token, like a pass), whether its connection
//! is open (then it counts against the profile's MaximumConcurrentConnections), each mailbox's
//! subscription and state, and the hints that make a notified mailbox due at once.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use uuid::Uuid;

/// The next due time a successful pass of a streaming mailbox writes: the safety poll
/// replaces the polling cadence (notifications make it due sooner). The pass's own next due
/// time is bound after it and applies to a mailbox that does not stream.
pub const SAFETY_POLL_SQL: &str =
    "COALESCE((SELECT now() + s.safety_poll_ms * interval '1 millisecond' \
     FROM streaming_mailboxes s WHERE s.mailbox_id = mailboxes.id AND s.state = 'streaming'), ";

/// SQL: the profile's (`$1`) streaming connections open now, counted against its
/// MaximumConcurrentConnections beside the live leases of passes.
pub const OPEN_CONNECTIONS_SQL: &str = "(SELECT count(*) FROM streaming_groups sg \
     WHERE sg.profile_id = $1 AND sg.connection_open AND sg.lease_expires_at >= now())";

/// How a profile's mailboxes can be grouped for streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMode {
    /// One service account impersonates each mailbox: groups of up to `size` mailboxes.
    Impersonation {
        /// Mailboxes per group (at most 200).
        size: usize,
    },
    /// Each mailbox signs in with its own credentials: one group (connection) per mailbox.
    OwnCredentials,
    /// The profile cannot stream: every mailbox polls, for this reason.
    Unsupported(String),
    /// Streaming is off (globally or for the profile): no mailbox of it takes part.
    Off,
}

/// A group of one profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The profile.
    pub profile_id: Uuid,
    /// `imp:N` or `own:<mailbox id>`.
    pub key: String,
}

/// A group this process now owns.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupClaim {
    /// The profile.
    pub profile_id: Uuid,
    /// The group.
    pub group_key: String,
    /// Fencing token of the claim.
    pub lease_token: Uuid,
    /// The affinity cookie stored by the group's last owner.
    pub back_end_cookie: Option<String>,
}

impl GroupClaim {
    /// The group's key.
    pub fn key(&self) -> GroupKey {
        GroupKey {
            profile_id: self.profile_id,
            key: self.group_key.clone(),
        }
    }
}

/// One mailbox of a group, as the group's owner needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Member {
    /// The mailbox.
    pub mailbox_id: Uuid,
    /// Its address.
    pub address: String,
    /// Its subscription, when it has one.
    pub subscription_id: Option<String>,
    /// `pending`, `streaming` or `polling`.
    pub state: String,
    /// Consecutive failed subscriptions.
    pub failures: i32,
    /// Polling until then after repeated failures.
    pub fallback_until: Option<DateTime<Utc>>,
    /// Incoming email is on.
    pub incoming_on: bool,
    /// Appointments, contacts and tasks are on.
    pub act_on: bool,
}

/// A mailbox's streaming state, for `exsync explain`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamingStatus {
    /// `pending`, `streaming` or `polling`.
    pub state: String,
    /// Why it polls or waits.
    pub reason: Option<String>,
    /// Its group.
    pub group_key: String,
    /// Whether it has a subscription.
    pub subscribed: bool,
    /// The last notification received for it.
    pub last_notification_at: Option<DateTime<Utc>>,
    /// Whether its group's connection is open now.
    pub connection_open: bool,
    /// The safety poll while streaming, in milliseconds.
    pub safety_poll_ms: Option<i64>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Assign the profile's eligible mailboxes (approved, email or ACT on, profile enabled and
/// streaming) to groups, drop the rows of mailboxes no longer eligible, and keep one group row
/// per group in use. Runs under a per-profile advisory lock, so instances planning at once
/// agree.
pub async fn plan_profile(
    store: &Store,
    profile_id: Uuid,
    mode: &GroupMode,
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7015))")
        .bind(profile_id)
        .execute(&mut *tx)
        .await?;
    let eligible: Vec<Uuid> = if *mode == GroupMode::Off {
        Vec::new()
    } else {
        sqlx::query_scalar(
            "SELECT m.id FROM mailboxes m JOIN email_server_profiles p ON p.id = m.profile_id
              WHERE m.profile_id = $1 AND p.enabled AND p.streaming
                AND m.approval_status = 'approved'
                AND (m.incoming_method = 'server_side_sync' OR m.act_method = 'server_side_sync')
              ORDER BY m.id",
        )
        .bind(profile_id)
        .fetch_all(&mut *tx)
        .await?
    };
    sqlx::query(
        "DELETE FROM streaming_mailboxes WHERE profile_id = $1 AND NOT (mailbox_id = ANY($2))",
    )
    .bind(profile_id)
    .bind(&eligible)
    .execute(&mut *tx)
    .await?;
    let existing: HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
        "SELECT mailbox_id, group_key FROM streaming_mailboxes WHERE profile_id = $1",
    )
    .bind(profile_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut assign: Vec<(Uuid, String)> = Vec::new();
    match mode {
        GroupMode::Off => {}
        GroupMode::Unsupported(reason) => {
            sqlx::query(
                "INSERT INTO streaming_mailboxes (mailbox_id, profile_id, group_key, state, reason)
                 SELECT id, $1, 'none', 'polling', $3 FROM unnest($2::uuid[]) AS id
                 ON CONFLICT (mailbox_id) DO UPDATE
                    SET group_key = 'none', state = 'polling', reason = $3,
                        subscription_id = NULL, updated_at = now()
                  WHERE streaming_mailboxes.group_key <> 'none'
                     OR streaming_mailboxes.reason IS DISTINCT FROM $3",
            )
            .bind(profile_id)
            .bind(&eligible)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        GroupMode::OwnCredentials => {
            for id in &eligible {
                let key = format!("own:{id}");
                if existing.get(id) != Some(&key) {
                    assign.push((*id, key));
                }
            }
        }
        GroupMode::Impersonation { size } => {
            let size = (*size).clamp(1, 200);
            let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
            for key in existing.values() {
                if let Some(n) = key.strip_prefix("imp:").and_then(|n| n.parse().ok()) {
                    *counts.entry(n).or_default() += 1;
                }
            }
            for id in &eligible {
                if existing.get(id).is_some_and(|k| k.starts_with("imp:")) {
                    continue;
                }
                let n = (0u32..)
                    .find(|n| counts.get(n).copied().unwrap_or(0) < size)
                    .unwrap_or(0);
                *counts.entry(n).or_default() += 1;
                assign.push((*id, format!("imp:{n}")));
            }
        }
    }
    if !assign.is_empty() {
        let (ids, keys): (Vec<Uuid>, Vec<String>) = assign.into_iter().unzip();
        sqlx::query(
            "INSERT INTO streaming_mailboxes (mailbox_id, profile_id, group_key, state)
             SELECT id, $1, key, 'pending' FROM unnest($2::uuid[], $3::text[]) AS a(id, key)
             ON CONFLICT (mailbox_id) DO UPDATE
                SET group_key = EXCLUDED.group_key, state = 'pending', reason = NULL,
                    subscription_id = NULL, failures = 0, fallback_until = NULL,
                    updated_at = now()",
        )
        .bind(profile_id)
        .bind(&ids)
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO streaming_groups (profile_id, group_key)
         SELECT DISTINCT profile_id, group_key FROM streaming_mailboxes
          WHERE profile_id = $1 AND group_key <> 'none'
         ON CONFLICT DO NOTHING",
    )
    .bind(profile_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM streaming_groups g WHERE g.profile_id = $1 AND NOT EXISTS
            (SELECT 1 FROM streaming_mailboxes s
              WHERE s.profile_id = g.profile_id AND s.group_key = g.group_key)",
    )
    .bind(profile_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Claim up to `limit` groups nobody holds (or whose holder's lease expired: a crashed
/// instance's groups are taken over), for `owner`.
pub async fn claim_groups(
    store: &Store,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<GroupClaim>, StoreError> {
    let claimed = sqlx::query_as::<_, GroupClaim>(
        "WITH free AS (
            SELECT g.profile_id, g.group_key FROM streaming_groups g
             WHERE g.lease_expires_at IS NULL OR g.lease_expires_at < now()
             ORDER BY g.profile_id, g.group_key
             LIMIT $3
             FOR UPDATE SKIP LOCKED
         )
         UPDATE streaming_groups g
            SET lease_owner = $1,
                lease_expires_at = now() + $2 * interval '1 millisecond',
                lease_token = gen_random_uuid(),
                connection_open = false
           FROM free f
          WHERE g.profile_id = f.profile_id AND g.group_key = f.group_key
         RETURNING g.profile_id, g.group_key, g.lease_token, g.back_end_cookie",
    )
    .bind(owner)
    .bind(millis(lease))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(claimed)
}

/// Extend a group's lease; `false` when it is no longer ours (taken over or removed).
pub async fn renew_group(
    store: &Store,
    group: &GroupKey,
    token: Uuid,
    lease: Duration,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE streaming_groups SET lease_expires_at = now() + $4 * interval '1 millisecond'
          WHERE profile_id = $1 AND group_key = $2 AND lease_token = $3",
    )
    .bind(group.profile_id)
    .bind(&group.key)
    .bind(token)
    .bind(millis(lease))
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Give a group back (shutdown, nothing to serve): its connection no longer counts.
pub async fn release_group(store: &Store, group: &GroupKey, token: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE streaming_groups
            SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL,
                connection_open = false
          WHERE profile_id = $1 AND group_key = $2 AND lease_token = $3",
    )
    .bind(group.profile_id)
    .bind(&group.key)
    .bind(token)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Count a group's connection against its profile's MaximumConcurrentConnections if the
/// limit allows it: passes (live mailbox leases) and open streaming connections together stay
/// below the limit minus one (one connection is always left to passes), and at most
/// `account_cap` streaming connections are open for the profile's account. `false`: no room
/// (the group's mailboxes poll meanwhile). Serialised with claims of passes.
pub async fn reserve_connection(
    store: &Store,
    group: &GroupKey,
    token: Uuid,
    account_cap: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7013))")
        .bind(group.profile_id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query(
        "UPDATE streaming_groups g SET connection_open = true
          WHERE g.profile_id = $1 AND g.group_key = $2 AND g.lease_token = $3
            AND (g.connection_open OR (
                 (SELECT max_concurrent_connections FROM email_server_profiles WHERE id = $1) - 1
               - (SELECT count(*) FROM mailboxes l
                   WHERE l.profile_id = $1 AND l.lease_expires_at >= now())
               - (SELECT count(*) FROM streaming_groups o
                   WHERE o.profile_id = $1 AND o.connection_open AND o.lease_expires_at >= now())
               > 0
             AND (SELECT count(*) FROM streaming_groups o
                   WHERE o.profile_id = $1 AND o.connection_open AND o.lease_expires_at >= now())
               < $4))",
    )
    .bind(group.profile_id)
    .bind(&group.key)
    .bind(token)
    .bind(account_cap)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// The group's connection closed: it no longer counts against the limit.
pub async fn close_connection(
    store: &Store,
    group: &GroupKey,
    token: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE streaming_groups SET connection_open = false
          WHERE profile_id = $1 AND group_key = $2 AND lease_token = $3",
    )
    .bind(group.profile_id)
    .bind(&group.key)
    .bind(token)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Keep the affinity cookie for the group's next owner.
pub async fn set_cookie(
    store: &Store,
    group: &GroupKey,
    token: Uuid,
    cookie: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE streaming_groups SET back_end_cookie = $4
          WHERE profile_id = $1 AND group_key = $2 AND lease_token = $3",
    )
    .bind(group.profile_id)
    .bind(&group.key)
    .bind(token)
    .bind(cookie)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The group's mailboxes' settings rows (for their own credentials).
pub async fn member_rows(
    store: &Store,
    group: &GroupKey,
) -> Result<Vec<super::MailboxRow>, StoreError> {
    let columns = super::MAILBOX_COLUMNS
        .split(", ")
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query_as::<_, super::MailboxRow>(&format!(
        "SELECT {columns} FROM streaming_mailboxes s JOIN mailboxes m ON m.id = s.mailbox_id
          WHERE s.profile_id = $1 AND s.group_key = $2"
    ))
    .bind(group.profile_id)
    .bind(&group.key)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// The group's mailboxes, by address.
pub async fn members(store: &Store, group: &GroupKey) -> Result<Vec<Member>, StoreError> {
    let rows = sqlx::query_as::<_, Member>(
        "SELECT s.mailbox_id, m.email_address AS address, s.subscription_id, s.state,
                s.failures, s.fallback_until,
                m.incoming_method = 'server_side_sync' AS incoming_on,
                m.act_method = 'server_side_sync' AS act_on
           FROM streaming_mailboxes s JOIN mailboxes m ON m.id = s.mailbox_id
          WHERE s.profile_id = $1 AND s.group_key = $2
          ORDER BY lower(m.email_address)",
    )
    .bind(group.profile_id)
    .bind(&group.key)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// A mailbox is subscribed: it streams, polled only by the safety poll.
pub async fn set_streaming(
    store: &Store,
    mailbox_id: Uuid,
    subscription_id: &str,
    safety_poll: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE streaming_mailboxes
            SET state = 'streaming', reason = NULL, subscription_id = $2, failures = 0,
                fallback_until = NULL, safety_poll_ms = $3, updated_at = now()
          WHERE mailbox_id = $1",
    )
    .bind(mailbox_id)
    .bind(subscription_id)
    .bind(millis(safety_poll))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A mailbox polls for `reason` (its subscription, if any, is forgotten when `forget`);
/// `failures` and `fallback_until` record a fallback after repeated failures.
pub async fn set_polling(
    store: &Store,
    mailbox_id: Uuid,
    reason: &str,
    failures: i32,
    fallback_until: Option<DateTime<Utc>>,
    forget: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE streaming_mailboxes
            SET state = 'polling', reason = $2, failures = $3, fallback_until = $4,
                subscription_id = CASE WHEN $5 THEN NULL ELSE subscription_id END,
                updated_at = now()
          WHERE mailbox_id = $1",
    )
    .bind(mailbox_id)
    .bind(super::scheduling::truncate(reason, 500))
    .bind(failures)
    .bind(fallback_until)
    .bind(forget)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Make a notified mailbox's workloads due at once, unless a pass holds it now (`None`: try
/// again when it is released, so a pass that started before the change cannot swallow it);
/// the database time it was applied.
pub async fn hint(store: &Store, mailbox_id: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
    let done: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE mailboxes
            SET incoming_next_due_at = CASE WHEN incoming_method = 'server_side_sync'
                    THEN LEAST(incoming_next_due_at, now()) ELSE incoming_next_due_at END,
                act_next_due_at = CASE WHEN act_method = 'server_side_sync'
                    THEN LEAST(act_next_due_at, now()) ELSE act_next_due_at END
          WHERE id = $1 AND (lease_expires_at IS NULL OR lease_expires_at < now())
         RETURNING now()",
    )
    .bind(mailbox_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(done)
}

/// Wake every instance's scheduler (hints were applied).
pub async fn wake_schedulers(store: &Store) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify('exsync_outgoing', 'streaming')")
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Record that notifications arrived for these mailboxes.
pub async fn notified(store: &Store, mailbox_ids: &[Uuid]) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE streaming_mailboxes SET last_notification_at = now() WHERE mailbox_id = ANY($1)",
    )
    .bind(mailbox_ids)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// When each mailbox last finished a successful pass.
pub async fn last_synced(
    store: &Store,
    mailbox_ids: &[Uuid],
) -> Result<Vec<(Uuid, Option<DateTime<Utc>>)>, StoreError> {
    let rows = sqlx::query_as::<_, (Uuid, Option<DateTime<Utc>>)>(
        "SELECT id, last_successful_sync FROM mailboxes WHERE id = ANY($1)",
    )
    .bind(mailbox_ids)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// A mailbox's streaming state, `None` when it takes no part in streaming.
pub async fn status(
    store: &Store,
    mailbox_id: Uuid,
) -> Result<Option<StreamingStatus>, StoreError> {
    let row = sqlx::query_as::<_, StreamingStatus>(
        "SELECT s.state, s.reason, s.group_key, s.subscription_id IS NOT NULL AS subscribed,
                s.last_notification_at,
                COALESCE(g.connection_open AND g.lease_expires_at >= now(), false)
                    AS connection_open,
                s.safety_poll_ms
           FROM streaming_mailboxes s
           LEFT JOIN streaming_groups g
             ON g.profile_id = s.profile_id AND g.group_key = s.group_key
          WHERE s.mailbox_id = $1",
    )
    .bind(mailbox_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(row)
}

/// Whether a profile streams (its `streaming` column).
pub async fn profile_streams(store: &Store, profile_id: Uuid) -> Result<bool, StoreError> {
    let on: Option<bool> =
        sqlx::query_scalar("SELECT streaming FROM email_server_profiles WHERE id = $1")
            .bind(profile_id)
            .fetch_optional(store.pool())
            .await?;
    Ok(on.unwrap_or(false))
}

/// Open streaming connections and subscribed mailboxes (all instances), for the gauges.
pub async fn totals(store: &Store) -> Result<(i64, i64), StoreError> {
    let row: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM streaming_groups
                  WHERE connection_open AND lease_expires_at >= now()),
                (SELECT count(*) FROM streaming_mailboxes WHERE state = 'streaming')",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(row)
}

//! Criterion benchmark: importing a page of N emails into Postgres (rows/s).
//!
//! Measures the store's own path, `store::emails::write_page` (one multi-row INSERT per table
//! through UNNEST, in one fenced transaction), against two alternatives on the same schema: one
//! INSERT per row (the naive baseline) and COPY into a staging table followed by one
//! INSERT … SELECT. Each run creates a fresh database `exsync_bench_<pid>` on the server of
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), migrates it with
//! `Store::migrate`, and drops it at the end. Without a reachable Postgres it prints a note and
//! measures nothing.
//!
//! `cargo bench --bench store_import`

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use exsync::ews::samples::html_body;
use exsync::store::emails::{write_page, EmailPage, NewEmail};
use exsync::store::Store;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every email gets a distinct item id and Message-ID, so each write stores new rows.
static NEXT: AtomicUsize = AtomicUsize::new(0);

struct BenchDb {
    admin: PgConnectOptions,
    name: String,
    pool: PgPool,
    mailbox: Uuid,
    token: Uuid,
}

async fn setup() -> Result<BenchDb, sqlx::Error> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let admin = PgConnectOptions::from_str(&url)?;
    let name = format!("exsync_bench_{}", std::process::id());
    let mut conn = PgConnection::connect_with(&admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(admin.clone().database(&name))
        .await?;
    Store::from_pool(pool.clone())
        .migrate()
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let profile: Uuid = sqlx::query_scalar(
        "INSERT INTO email_server_profiles (name, server_type, ews_url, auth, use_impersonation)
         VALUES ('bench', 'exchange_server', 'https://mail.contoso.test/EWS/Exchange.asmx',
                 'mailbox_credentials', FALSE) RETURNING id",
    )
    .fetch_one(&pool)
    .await?;
    let (mailbox, token): (Uuid, Uuid) = sqlx::query_as(
        "INSERT INTO mailboxes (email_address, profile_id, approval_status,
                                lease_owner, lease_expires_at, lease_token)
         VALUES ('bench@contoso.test', $1, 'approved', 'bench', now() + interval '1 day',
                 gen_random_uuid())
         RETURNING id, lease_token",
    )
    .bind(profile)
    .fetch_one(&pool)
    .await?;
    Ok(BenchDb {
        admin,
        name,
        pool,
        mailbox,
        token,
    })
}

async fn teardown(db: BenchDb) -> Result<(), sqlx::Error> {
    db.pool.close().await;
    let mut conn = PgConnection::connect_with(&db.admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name))
        .execute(&mut conn)
        .await?;
    conn.close().await
}

fn at(n: usize) -> DateTime<Utc> {
    Utc.timestamp_opt(1_717_200_000 + i64::try_from(n).unwrap_or(0), 0)
        .single()
        .unwrap_or_default()
}

/// A realistic imported message: ~4 KB HTML body, 5–20 recipients.
fn email(n: usize) -> NewEmail {
    let recipients = 5 + n % 16;
    NewEmail {
        item_id: format!("AAMkADk0ZjM4ZGE1LTdmNDktNDY0Mi1hZGM3LWQ4ZWNmMTI1ZWZmNABGAAAAAAA2{n:010}"),
        change_key: Some(format!("CQAAABYAAADlX7bP1Yy3TYgq8yNQpQe7AAB{n:06}")),
        internet_message_id: Some(format!("<msg-{n}@fabrikam.test>")),
        subject: format!("RE: Quarterly numbers #{n}"),
        body: html_body(n, 4096),
        body_type: "html",
        sender_address: Some(format!("sender{}@fabrikam.test", n % 50)),
        sender_name: Some("Carol Sender".into()),
        to_recipients: (0..recipients * 2 / 3)
            .map(|i| format!("person{i}@contoso.test"))
            .collect(),
        cc_recipients: (recipients * 2 / 3..recipients)
            .map(|i| format!("person{i}@contoso.test"))
            .collect(),
        in_reply_to: Some(format!("<prev-{n}@fabrikam.test>")),
        conversation_id: Some(format!("AAQkADk0ZjM4ZGE1LTdmNDkAEAD{n:08}")),
        received_at: Some(at(n)),
        sent_at: Some(at(n)),
        is_read: Some(n.is_multiple_of(3)),
    }
}

fn page(n: usize) -> EmailPage {
    let start = NEXT.fetch_add(n, Ordering::Relaxed);
    EmailPage {
        emails: (start..start + n).map(email).collect(),
        sync_state: Some(format!("state-{start}")),
        ..EmailPage::default()
    }
}

/// The naive baseline: one INSERT per email and per copy, in one transaction.
async fn row_by_row(db: &BenchDb, page: &EmailPage) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    for e in &page.emails {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO emails (internet_message_id, direction, subject, body, body_type,
                                 sender_address, sender_name, to_recipients, cc_recipients,
                                 in_reply_to, conversation_id, received_at, sent_at)
             VALUES ($1, 'incoming', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (internet_message_id) DO UPDATE
                SET internet_message_id = EXCLUDED.internet_message_id
             RETURNING id",
        )
        .bind(&e.internet_message_id)
        .bind(&e.subject)
        .bind(&e.body)
        .bind(e.body_type)
        .bind(&e.sender_address)
        .bind(&e.sender_name)
        .bind(serde_json::json!(e.to_recipients))
        .bind(serde_json::json!(e.cc_recipients))
        .bind(&e.in_reply_to)
        .bind(&e.conversation_id)
        .bind(e.received_at)
        .bind(e.sent_at)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO email_copies (mailbox_id, ews_item_id, email_id, folder, change_key, is_read)
             VALUES ($1, $2, $3, 'inbox', $4, $5)
             ON CONFLICT (mailbox_id, ews_item_id) DO NOTHING",
        )
        .bind(db.mailbox)
        .bind(&e.item_id)
        .bind(id)
        .bind(&e.change_key)
        .bind(e.is_read)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// COPY text format: backslash, tab, newline and carriage return escaped; `\N` is NULL.
fn copy_field(out: &mut String, value: Option<&str>) {
    match value {
        None => out.push_str("\\N"),
        Some(v) => {
            for ch in v.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
    }
}

/// COPY into a temporary staging table, then one INSERT … SELECT per table (same conflict rules
/// as `write_page` for distinct Message-IDs).
async fn copy_staging(db: &BenchDb, page: &EmailPage) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "CREATE TEMP TABLE staging (imid text, subject text, body text, body_type text,
             sender text, sender_name text, tos jsonb, ccs jsonb, in_reply_to text,
             conversation text, received timestamptz, sent timestamptz, item text, ck text,
             read bool) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    let mut data = String::with_capacity(page.emails.len() * 5000);
    for e in &page.emails {
        let tos = serde_json::json!(e.to_recipients).to_string();
        let ccs = serde_json::json!(e.cc_recipients).to_string();
        let received = e.received_at.map(|t| t.to_rfc3339());
        let sent = e.sent_at.map(|t| t.to_rfc3339());
        let read = e.is_read.map(|r| if r { "t" } else { "f" });
        let fields = [
            e.internet_message_id.as_deref(),
            Some(e.subject.as_str()),
            Some(e.body.as_str()),
            Some(e.body_type),
            e.sender_address.as_deref(),
            e.sender_name.as_deref(),
            Some(tos.as_str()),
            Some(ccs.as_str()),
            e.in_reply_to.as_deref(),
            e.conversation_id.as_deref(),
            received.as_deref(),
            sent.as_deref(),
            Some(e.item_id.as_str()),
            e.change_key.as_deref(),
            read,
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                data.push('\t');
            }
            copy_field(&mut data, *f);
        }
        data.push('\n');
    }
    let mut copy = tx.copy_in_raw("COPY staging FROM STDIN").await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    sqlx::query(
        "WITH stored AS (
            INSERT INTO emails (internet_message_id, direction, subject, body, body_type,
                                sender_address, sender_name, to_recipients, cc_recipients,
                                in_reply_to, conversation_id, received_at, sent_at)
            SELECT imid, 'incoming', subject, body, body_type, sender, sender_name, tos, ccs,
                   in_reply_to, conversation, received, sent FROM staging
            ON CONFLICT (internet_message_id) DO UPDATE
               SET internet_message_id = EXCLUDED.internet_message_id
            RETURNING id, internet_message_id)
         INSERT INTO email_copies (mailbox_id, ews_item_id, email_id, folder, change_key, is_read)
         SELECT $1, s.item, st.id, 'inbox', s.ck, s.read
           FROM staging s JOIN stored st ON st.internet_message_id = s.imid
         ON CONFLICT (mailbox_id, ews_item_id) DO NOTHING",
    )
    .bind(db.mailbox)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

fn store_import(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let db = match rt.block_on(setup()) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("note: Postgres unavailable ({e}); store_import benchmarks skipped");
            return;
        }
    };
    let db_ref = &db;
    for n in [100usize, 1000] {
        let mut group = c.benchmark_group(format!("import_{n}_emails"));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function("write_page_unnest", |b| {
            b.to_async(&rt).iter_batched(
                || page(n),
                |page| async move {
                    let outcome = write_page(
                        &Store::from_pool(db_ref.pool.clone()),
                        db_ref.mailbox,
                        db_ref.token,
                        "inbox",
                        &page,
                        5,
                    )
                    .await
                    .expect("write_page");
                    assert_eq!(outcome.imported, n);
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function("copy_staging", |b| {
            b.to_async(&rt).iter_batched(
                || page(n),
                |page| async move { copy_staging(db_ref, &page).await.expect("copy") },
                BatchSize::PerIteration,
            )
        });
        group.bench_function("row_by_row", |b| {
            b.to_async(&rt).iter_batched(
                || page(n),
                |page| async move { row_by_row(db_ref, &page).await.expect("row by row") },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
    if let Err(e) = rt.block_on(teardown(db)) {
        eprintln!("note: could not drop the benchmark database: {e}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = store_import
}
criterion_main!(benches);

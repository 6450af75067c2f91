//! The database enforces the product's rules itself: each CHECK, unique key and foreign key
//! rejects its bad row, whoever writes it.

use sqlx::PgPool;

const PROFILE: &str = "00000000-0000-0000-0000-00000000000a";
const MAILBOX: &str = "00000000-0000-0000-0000-00000000000b";

async fn seed(pool: &PgPool) {
    sqlx::query(&format!(
        "INSERT INTO email_server_profiles (id, name, server_type, ews_url, auth, username, password_enc)
         VALUES ('{PROFILE}', 'Contoso', 'exchange_server', 'https://mail.contoso.test/EWS/Exchange.asmx',
                 'profile_credentials', 'svc', '\\x01')"
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO mailboxes (id, email_address, profile_id) VALUES ('{MAILBOX}', 'alice@contoso.test', '{PROFILE}')"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// Runs `sql` in a transaction that is rolled back, and returns the violated constraint.
async fn violated(pool: &PgPool, sql: &str) -> String {
    let mut tx = pool.begin().await.unwrap();
    let result = sqlx::query(sql).execute(&mut *tx).await;
    tx.rollback().await.unwrap();
    match result {
        Ok(_) => panic!("accepted a row that breaks a rule: {sql}"),
        Err(sqlx::Error::Database(db)) => db
            .constraint()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("<no constraint: {}>", db.message())),
        Err(other) => panic!("unexpected error {other} for {sql}"),
    }
}

async fn assert_rules(pool: &PgPool, cases: &[(&str, &str)]) {
    for (sql, constraint) in cases {
        let got = violated(pool, sql).await;
        assert_eq!(&got, constraint, "rule {constraint} for: {sql}");
    }
}

fn profile_insert(columns: &str, values: &str) -> String {
    format!(
        "INSERT INTO email_server_profiles (name, server_type, ews_url, auth{columns}) \
         VALUES ('P2', 'exchange_server', 'https://x.test/EWS/Exchange.asmx', 'mailbox_credentials'{values})"
    )
}

#[sqlx::test]
async fn profile_rules_reject_bad_profiles(pool: PgPool) {
    seed(&pool).await;
    let p = profile_insert;
    assert_rules(
        &pool,
        &[
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth, use_impersonation) VALUES ('Contoso', 'exchange_server', 'https://x.test/', 'mailbox_credentials', false)",
                "email_server_profiles_name_key",
            ),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth) VALUES ('  ', 'exchange_server', 'https://x.test/', 'mailbox_credentials')",
                "email_server_profiles_name_check",
            ),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth) VALUES ('P2', 'exchange_2003', 'https://x.test/', 'mailbox_credentials')",
                "email_server_profiles_server_type_check",
            ),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth) VALUES ('P2', 'exchange_server', 'ftp://x.test/', 'mailbox_credentials')",
                "email_server_profiles_ews_url_check",
            ),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth) VALUES ('P2', 'exchange_server', 'https://x.test/', 'kerberos')",
                "email_server_profiles_auth_check",
            ),
            (&p(", use_impersonation, max_concurrent_connections", ", false, 0"), "email_server_profiles_max_concurrent_connections_check"),
            (&p(", use_impersonation, max_concurrent_connections", ", false, 301"), "email_server_profiles_max_concurrent_connections_check"),
            (&p(", use_impersonation, min_polling_interval_minutes", ", false, 0"), "email_server_profiles_min_polling_interval_minutes_check"),
            (&p(", use_impersonation, password_scheme", ", false, 'digest'"), "email_server_profiles_password_scheme_check"),
            (&p("", ""), "mailbox_credentials_never_impersonate"),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth, username) VALUES ('P2', 'exchange_server', 'https://x.test/', 'profile_credentials', 'svc')",
                "profile_credentials_complete",
            ),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth, oauth_client_id, oauth_tenant) VALUES ('P2', 'exchange_online', 'https://x.test/', 'oauth_client_credentials', 'id', 't')",
                "oauth_settings_complete",
            ),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth, oauth_client_id, oauth_tenant, oauth_client_secret_enc, use_impersonation) VALUES ('P2', 'exchange_online', 'https://x.test/', 'oauth_client_credentials', 'id', 't', '\\x01', false)",
                "oauth_requires_impersonation",
            ),
            (
                &p(", use_impersonation, use_same_settings_for_outgoing", ", false, false"),
                "outgoing_settings_complete",
            ),
            (
                "INSERT INTO email_server_profiles (name, server_type, ews_url, auth, username, password_enc, use_same_settings_for_outgoing, outgoing_ews_url) VALUES ('P2', 'exchange_server', 'https://x.test/', 'profile_credentials', 'svc', '\\x01', false, 'https://out.test/')",
                "outgoing_settings_complete",
            ),
            (
                &p(", use_impersonation, credentials_blocked_at", ", false, now()"),
                "credentials_block_has_reason",
            ),
            (
                &format!("DELETE FROM email_server_profiles WHERE id = '{PROFILE}'"),
                "mailboxes_profile_id_fkey",
            ),
        ],
    )
    .await;
}

fn mailbox_insert(columns: &str, values: &str) -> String {
    format!(
        "INSERT INTO mailboxes (email_address, profile_id{columns}) VALUES ('bob@contoso.test', '{PROFILE}'{values})"
    )
}

#[sqlx::test]
async fn mailbox_rules_reject_bad_mailboxes(pool: PgPool) {
    seed(&pool).await;
    let m = mailbox_insert;
    assert_rules(
        &pool,
        &[
            (
                &format!("INSERT INTO mailboxes (email_address, profile_id) VALUES ('alice@contoso.test', '{PROFILE}')"),
                "mailboxes_email_address_key",
            ),
            (
                &format!("INSERT INTO mailboxes (email_address, profile_id) VALUES ('Carol@contoso.test', '{PROFILE}')"),
                "mailboxes_email_address_check",
            ),
            (
                &format!("INSERT INTO mailboxes (email_address, profile_id) VALUES ('not-an-address', '{PROFILE}')"),
                "mailboxes_email_address_check",
            ),
            (
                "INSERT INTO mailboxes (email_address, profile_id) VALUES ('carol@contoso.test', '00000000-0000-0000-0000-0000000000ff')",
                "mailboxes_profile_id_fkey",
            ),
            (&m(", incoming_method", ", 'imap'"), "mailboxes_incoming_method_check"),
            (&m(", outgoing_method", ", 'smtp'"), "mailboxes_outgoing_method_check"),
            (&m(", act_method", ", 'outlook'"), "mailboxes_act_method_check"),
            (&m(", approval_status", ", 'maybe'"), "mailboxes_approval_status_check"),
            (&m(", incoming_status", ", 'broken'"), "mailboxes_incoming_status_check"),
            (&m(", outgoing_status", ", 'broken'"), "mailboxes_outgoing_status_check"),
            (&m(", act_status", ", 'broken'"), "mailboxes_act_status_check"),
            (&m(", incoming_failures", ", -1"), "mailboxes_incoming_failures_check"),
            (&m(", lease_owner", ", 'host-1'"), "lease_is_whole"),
            (
                &m(", allow_credentials_for_email_processing, username", ", true, 'bob'"),
                "own_credentials_complete",
            ),
            (&m(", incoming_blocked_code", ", 'ews.access_denied'"), "incoming_block_is_whole"),
            (&m(", last_error_workload", ", 'calendar'"), "mailboxes_last_error_workload_check"),
        ],
    )
    .await;
}

#[sqlx::test]
async fn item_rules_reject_bad_emails_activities_and_queue_rows(pool: PgPool) {
    seed(&pool).await;
    sqlx::query("INSERT INTO emails (internet_message_id, direction) VALUES ('<a@x>', 'incoming')")
        .execute(&pool)
        .await
        .unwrap();
    assert_rules(
        &pool,
        &[
            (
                "INSERT INTO emails (internet_message_id, direction) VALUES ('<a@x>', 'incoming')",
                "emails_internet_message_id_key",
            ),
            ("INSERT INTO emails (direction) VALUES ('sideways')", "emails_direction_check"),
            (
                "INSERT INTO emails (direction, to_recipients) VALUES ('incoming', '{\"a\": 1}')",
                "emails_to_recipients_check",
            ),
            (
                &format!("INSERT INTO email_copies (mailbox_id, ews_item_id, email_id, folder) VALUES ('{MAILBOX}', 'AAM=', '00000000-0000-0000-0000-0000000000ff', 'inbox')"),
                "email_copies_email_id_fkey",
            ),
            (
                &format!("INSERT INTO folder_sync_states (mailbox_id, folder) VALUES ('{MAILBOX}', '')"),
                "folder_sync_states_folder_check",
            ),
            (
                &format!("INSERT INTO appointments (mailbox_id, start_at, end_at) VALUES ('{MAILBOX}', '2026-01-02', '2026-01-01')"),
                "appointments_check",
            ),
            (
                &format!("INSERT INTO tasks (mailbox_id, percent_complete) VALUES ('{MAILBOX}', 101)"),
                "tasks_percent_complete_check",
            ),
            (
                &format!("INSERT INTO tasks (mailbox_id, status, percent_complete) VALUES ('{MAILBOX}', 'completed', 50)"),
                "tasks_check1",
            ),
            (
                &format!("INSERT INTO tasks (mailbox_id, status) VALUES ('{MAILBOX}', 'someday')"),
                "tasks_status_check",
            ),
            (
                &format!("INSERT INTO contacts (mailbox_id, version, synced_version) VALUES ('{MAILBOX}', 1, 2)"),
                "contacts_check",
            ),
            (
                &format!("INSERT INTO outgoing_emails (mailbox_id, to_recipients) VALUES ('{MAILBOX}', '{{}}')"),
                "outgoing_emails_to_recipients_check",
            ),
            (
                &format!("INSERT INTO outgoing_emails (mailbox_id, to_recipients, status) VALUES ('{MAILBOX}', '{{bob@x.test}}', 'lost')"),
                "outgoing_emails_status_check",
            ),
            (
                &format!("INSERT INTO outgoing_emails (mailbox_id, to_recipients, status) VALUES ('{MAILBOX}', '{{bob@x.test}}', 'sent')"),
                "outgoing_emails_check",
            ),
            (
                "INSERT INTO outgoing_emails (mailbox_id, to_recipients) VALUES ('00000000-0000-0000-0000-0000000000ff', '{bob@x.test}')",
                "outgoing_emails_mailbox_id_fkey",
            ),
            (
                &format!("INSERT INTO alerts (profile_id, mailbox_id, level, code, message) VALUES ('{PROFILE}', '{MAILBOX}', 'error', 'x', 'm')"),
                "alert_has_one_target",
            ),
            (
                "INSERT INTO alerts (level, code, message) VALUES ('error', 'x', 'm')",
                "alert_has_one_target",
            ),
            (
                &format!("INSERT INTO alerts (mailbox_id, level, code, message) VALUES ('{MAILBOX}', 'fatal', 'x', 'm')"),
                "alerts_level_check",
            ),
            (
                &format!("INSERT INTO alerts (mailbox_id, level, code, message) VALUES ('{MAILBOX}', 'information', 'x', 'm')"),
                "information_is_never_open",
            ),
        ],
    )
    .await;
}

#[sqlx::test]
async fn one_open_alert_per_condition_and_target(pool: PgPool) {
    seed(&pool).await;
    let insert = format!(
        "INSERT INTO alerts (mailbox_id, level, code, workload, message) VALUES ('{MAILBOX}', 'error', 'ews.unauthorized', 'incoming', 'm')"
    );
    sqlx::query(&insert).execute(&pool).await.unwrap();
    assert_eq!(
        violated(&pool, &insert).await,
        "alerts_one_open_per_condition"
    );
    sqlx::query("UPDATE alerts SET resolved_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&insert).execute(&pool).await.unwrap();
}

#[sqlx::test]
async fn queued_email_gets_a_unique_internet_message_id_in_the_sender_domain(pool: PgPool) {
    seed(&pool).await;
    let id: String = sqlx::query_scalar(&format!(
        "INSERT INTO outgoing_emails (mailbox_id, to_recipients, subject) VALUES ('{MAILBOX}', '{{bob@x.test}}', 'hi') RETURNING internet_message_id"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        id.starts_with('<') && id.ends_with("@contoso.test>"),
        "{id}"
    );
}

#[sqlx::test]
async fn application_edits_of_activities_mark_them_dirty_and_deletes_leave_tombstones(
    pool: PgPool,
) {
    seed(&pool).await;
    let contact: uuid::Uuid = sqlx::query_scalar(&format!(
        "INSERT INTO contacts (mailbox_id, ews_item_id, display_name, version, synced_version)
         VALUES ('{MAILBOX}', 'AAMk1', 'Ann', 1, 1) RETURNING id"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE contacts SET display_name = 'Ann B' WHERE id = $1")
        .bind(contact)
        .execute(&pool)
        .await
        .unwrap();
    let (version, synced): (i64, i64) =
        sqlx::query_as("SELECT version, synced_version FROM contacts WHERE id = $1")
            .bind(contact)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(version > synced, "an application edit leaves the row dirty");

    // Writes on Exchange's behalf do not.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('exsync.origin', 'exchange', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE contacts SET display_name = 'Ann C', synced_version = version WHERE id = $1",
    )
    .bind(contact)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (version, synced): (i64, i64) =
        sqlx::query_as("SELECT version, synced_version FROM contacts WHERE id = $1")
            .bind(contact)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(version, synced);

    sqlx::query("DELETE FROM contacts WHERE id = $1")
        .bind(contact)
        .execute(&pool)
        .await
        .unwrap();
    let tombstone: (String, String) = sqlx::query_as("SELECT kind, ews_item_id FROM act_deletions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tombstone, ("contact".to_owned(), "AAMk1".to_owned()));
}

#[sqlx::test]
async fn a_mailbox_with_synced_activities_can_be_deleted(pool: PgPool) {
    seed(&pool).await;
    for insert in [
        "INSERT INTO contacts (mailbox_id, ews_item_id, display_name) VALUES ($1, 'AAMk-c', 'Ann')",
        "INSERT INTO tasks (mailbox_id, ews_item_id, subject) VALUES ($1, 'AAMk-t', 'Call')",
        "INSERT INTO appointments (mailbox_id, ews_item_id, subject, start_at, end_at)
         VALUES ($1, 'AAMk-a', 'Meet', now(), now() + interval '1 hour')",
    ] {
        sqlx::query(insert)
            .bind(uuid::Uuid::parse_str(MAILBOX).unwrap())
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(&format!("DELETE FROM mailboxes WHERE id = '{MAILBOX}'"))
        .execute(&pool)
        .await
        .expect("deleting a mailbox cascades to its activities, leaving no tombstone");
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM act_deletions) + (SELECT count(*) FROM contacts)
              + (SELECT count(*) FROM tasks) + (SELECT count(*) FROM appointments)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

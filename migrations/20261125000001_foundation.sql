-- exsync foundation schema. The rules live here as well as in Rust: CHECK constraints,
-- foreign keys and unique keys reject bad rows whoever writes them.

-- ---------------------------------------------------------------------------------------
-- Email server profiles: how to reach one Exchange organisation, with whose credentials.
-- ---------------------------------------------------------------------------------------
CREATE TABLE email_server_profiles (
    id                             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name                           TEXT NOT NULL UNIQUE
        CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    server_type                    TEXT NOT NULL
        CHECK (server_type IN ('exchange_server', 'exchange_online')),
    ews_url                        TEXT NOT NULL
        CHECK (ews_url ~* '^https?://[^/\s]+'),
    auth                           TEXT NOT NULL
        CHECK (auth IN ('profile_credentials', 'mailbox_credentials', 'oauth_client_credentials')),
    password_scheme                TEXT NOT NULL DEFAULT 'basic'
        CHECK (password_scheme IN ('basic', 'ntlm')),
    username                       TEXT CHECK (length(username) BETWEEN 1 AND 320),
    password_enc                   BYTEA,
    oauth_tenant                   TEXT,
    oauth_client_id                TEXT,
    oauth_client_secret_enc        BYTEA,
    oauth_token_url                TEXT CHECK (oauth_token_url ~* '^https?://[^/\s]+'),
    oauth_scope                    TEXT,
    use_impersonation              BOOLEAN NOT NULL DEFAULT TRUE,
    use_same_settings_for_outgoing BOOLEAN NOT NULL DEFAULT TRUE,
    outgoing_ews_url               TEXT CHECK (outgoing_ews_url ~* '^https?://[^/\s]+'),
    outgoing_username              TEXT CHECK (length(outgoing_username) BETWEEN 1 AND 320),
    outgoing_password_enc          BYTEA,
    process_emails_from            TIMESTAMPTZ,
    max_concurrent_connections     INTEGER NOT NULL DEFAULT 10
        CHECK (max_concurrent_connections BETWEEN 1 AND 300),
    min_polling_interval_minutes   INTEGER NOT NULL DEFAULT 1
        CHECK (min_polling_interval_minutes BETWEEN 1 AND 1440),
    enabled                        BOOLEAN NOT NULL DEFAULT TRUE,
    -- Set when Exchange rejected the profile's credentials; cleared when the row changes.
    credentials_blocked_at         TIMESTAMPTZ,
    credentials_blocked_reason     TEXT,
    created_at                     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                     TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT profile_credentials_complete CHECK (
        auth <> 'profile_credentials' OR (username IS NOT NULL AND password_enc IS NOT NULL)),
    CONSTRAINT oauth_settings_complete CHECK (
        auth <> 'oauth_client_credentials' OR (
            oauth_client_id IS NOT NULL AND oauth_client_secret_enc IS NOT NULL
            AND (oauth_token_url IS NOT NULL OR oauth_tenant IS NOT NULL))),
    -- App-only OAuth tokens reach mailboxes only through impersonation.
    CONSTRAINT oauth_requires_impersonation CHECK (
        auth <> 'oauth_client_credentials' OR use_impersonation),
    -- Impersonation needs a service account; with mailbox credentials there is none.
    CONSTRAINT mailbox_credentials_never_impersonate CHECK (
        auth <> 'mailbox_credentials' OR NOT use_impersonation),
    CONSTRAINT outgoing_settings_complete CHECK (
        use_same_settings_for_outgoing OR (
            outgoing_ews_url IS NOT NULL
            AND (auth <> 'profile_credentials'
                 OR (outgoing_username IS NOT NULL AND outgoing_password_enc IS NOT NULL)))),
    CONSTRAINT credentials_block_has_reason CHECK (
        (credentials_blocked_at IS NULL) = (credentials_blocked_reason IS NULL))
);

-- Only settings changes move updated_at (a credentials block set by the daemon does not),
-- so "the row changed after it was blocked" means an operator changed it.
CREATE FUNCTION exsync_touch_profile_settings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bookkeeping CONSTANT text[] :=
        ARRAY['credentials_blocked_at', 'credentials_blocked_reason', 'updated_at'];
BEGIN
    IF (to_jsonb(NEW) - bookkeeping) IS DISTINCT FROM (to_jsonb(OLD) - bookkeeping) THEN
        NEW.updated_at := now();
        -- New settings (e.g. a new password) lift a credentials block at once.
        NEW.credentials_blocked_at := NULL;
        NEW.credentials_blocked_reason := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER email_server_profiles_touch BEFORE UPDATE ON email_server_profiles
    FOR EACH ROW EXECUTE FUNCTION exsync_touch_profile_settings();

-- A changed profile's mailboxes are due at the next scheduler tick, blocks lifted.
CREATE FUNCTION exsync_profile_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS DISTINCT FROM OLD.updated_at THEN
        UPDATE mailboxes SET
            incoming_next_due_at = LEAST(incoming_next_due_at, now()),
            outgoing_next_due_at = LEAST(outgoing_next_due_at, now()),
            act_next_due_at = LEAST(act_next_due_at, now()),
            incoming_blocked_code = NULL, incoming_blocked_at = NULL,
            outgoing_blocked_code = NULL, outgoing_blocked_at = NULL,
            act_blocked_code = NULL, act_blocked_at = NULL
        WHERE profile_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER email_server_profiles_changed AFTER UPDATE ON email_server_profiles
    FOR EACH ROW EXECUTE FUNCTION exsync_profile_changed();

-- ---------------------------------------------------------------------------------------
-- Mailboxes: one user's or queue's mailbox, its settings, statuses and scheduling state.
-- ---------------------------------------------------------------------------------------
CREATE TABLE mailboxes (
    id                                     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email_address                          TEXT NOT NULL UNIQUE
        CHECK (email_address = lower(email_address)
               AND email_address ~ '^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$'
               AND length(email_address) <= 320),
    profile_id                             UUID NOT NULL
        REFERENCES email_server_profiles (id) ON DELETE RESTRICT,
    allow_credentials_for_email_processing BOOLEAN NOT NULL DEFAULT FALSE,
    username                               TEXT CHECK (length(username) BETWEEN 1 AND 320),
    password_enc                           BYTEA,
    process_email_received_after           TIMESTAMPTZ,
    incoming_method                        TEXT NOT NULL DEFAULT 'server_side_sync'
        CHECK (incoming_method IN ('none', 'server_side_sync')),
    outgoing_method                        TEXT NOT NULL DEFAULT 'server_side_sync'
        CHECK (outgoing_method IN ('none', 'server_side_sync')),
    act_method                             TEXT NOT NULL DEFAULT 'none'
        CHECK (act_method IN ('none', 'server_side_sync')),
    approval_status                        TEXT NOT NULL DEFAULT 'empty'
        CHECK (approval_status IN ('empty', 'pending', 'approved', 'rejected')),
    payload_logging                        BOOLEAN NOT NULL DEFAULT FALSE,

    -- Statuses as Dynamics shows them, one per workload.
    incoming_status   TEXT NOT NULL DEFAULT 'not_run'
        CHECK (incoming_status IN ('not_run', 'success', 'failure')),
    outgoing_status   TEXT NOT NULL DEFAULT 'not_run'
        CHECK (outgoing_status IN ('not_run', 'success', 'failure')),
    act_status        TEXT NOT NULL DEFAULT 'not_run'
        CHECK (act_status IN ('not_run', 'success', 'failure')),

    -- Scheduling, per workload: when next due, consecutive failures, why blocked.
    incoming_next_due_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    outgoing_next_due_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    act_next_due_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    incoming_failures     INTEGER NOT NULL DEFAULT 0 CHECK (incoming_failures >= 0),
    outgoing_failures     INTEGER NOT NULL DEFAULT 0 CHECK (outgoing_failures >= 0),
    act_failures          INTEGER NOT NULL DEFAULT 0 CHECK (act_failures >= 0),
    incoming_blocked_code TEXT,
    outgoing_blocked_code TEXT,
    act_blocked_code      TEXT,
    incoming_blocked_at   TIMESTAMPTZ,
    outgoing_blocked_at   TIMESTAMPTZ,
    act_blocked_at        TIMESTAMPTZ,

    -- The lease: which process syncs this mailbox now, until when, under which claim.
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    lease_token       UUID,

    -- Health.
    credentials_blocked_at     TIMESTAMPTZ,
    credentials_blocked_reason TEXT,
    last_error_code            TEXT,
    last_error_text            TEXT CHECK (length(last_error_text) <= 2000),
    last_error_at              TIMESTAMPTZ,
    last_error_workload        TEXT CHECK (last_error_workload IN ('incoming', 'outgoing', 'act')),
    last_successful_sync       TIMESTAMPTZ,
    items_processed_last_pass  INTEGER NOT NULL DEFAULT 0 CHECK (items_processed_last_pass >= 0),
    items_failed_last_pass     INTEGER NOT NULL DEFAULT 0 CHECK (items_failed_last_pass >= 0),
    -- Newest DateTimeReceived imported (the incoming watermark).
    incoming_watermark         TIMESTAMPTZ,

    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT lease_is_whole CHECK (
        (lease_owner IS NULL) = (lease_expires_at IS NULL)
        AND (lease_owner IS NULL) = (lease_token IS NULL)),
    CONSTRAINT own_credentials_complete CHECK (
        NOT allow_credentials_for_email_processing
        OR (username IS NOT NULL AND password_enc IS NOT NULL)),
    CONSTRAINT credentials_block_has_reason CHECK (
        (credentials_blocked_at IS NULL) = (credentials_blocked_reason IS NULL)),
    CONSTRAINT incoming_block_is_whole CHECK (
        (incoming_blocked_code IS NULL) = (incoming_blocked_at IS NULL)),
    CONSTRAINT outgoing_block_is_whole CHECK (
        (outgoing_blocked_code IS NULL) = (outgoing_blocked_at IS NULL)),
    CONSTRAINT act_block_is_whole CHECK (
        (act_blocked_code IS NULL) = (act_blocked_at IS NULL))
);

CREATE INDEX mailboxes_profile ON mailboxes (profile_id);
CREATE INDEX mailboxes_lease ON mailboxes (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- Settings changes (not the daemon's own bookkeeping) move updated_at, which heals blocks.
CREATE FUNCTION exsync_touch_mailbox_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.email_address, NEW.profile_id, NEW.allow_credentials_for_email_processing,
        NEW.username, NEW.password_enc, NEW.process_email_received_after,
        NEW.incoming_method, NEW.outgoing_method, NEW.act_method, NEW.approval_status,
        NEW.payload_logging)
       IS DISTINCT FROM
       (OLD.email_address, OLD.profile_id, OLD.allow_credentials_for_email_processing,
        OLD.username, OLD.password_enc, OLD.process_email_received_after,
        OLD.incoming_method, OLD.outgoing_method, OLD.act_method, OLD.approval_status,
        OLD.payload_logging) THEN
        -- An operator changed the mailbox: it is due at the next tick, with its blocks
        -- (bad credentials, denied rights, not approved, outage) lifted.
        NEW.updated_at := now();
        NEW.incoming_next_due_at := LEAST(NEW.incoming_next_due_at, now());
        NEW.outgoing_next_due_at := LEAST(NEW.outgoing_next_due_at, now());
        NEW.act_next_due_at := LEAST(NEW.act_next_due_at, now());
        NEW.credentials_blocked_at := NULL;
        NEW.credentials_blocked_reason := NULL;
        NEW.incoming_blocked_code := NULL;
        NEW.incoming_blocked_at := NULL;
        NEW.outgoing_blocked_code := NULL;
        NEW.outgoing_blocked_at := NULL;
        NEW.act_blocked_code := NULL;
        NEW.act_blocked_at := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER mailboxes_touch BEFORE UPDATE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION exsync_touch_mailbox_settings();

-- ---------------------------------------------------------------------------------------
-- Per-folder synchronisation state (EWS SyncState), written with the items it covers.
-- ---------------------------------------------------------------------------------------
CREATE TABLE folder_sync_states (
    mailbox_id UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    folder     TEXT NOT NULL CHECK (length(folder) BETWEEN 1 AND 512),
    sync_state TEXT CHECK (length(sync_state) <= 1000000),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, folder)
);

-- ---------------------------------------------------------------------------------------
-- Emails: each message stored once (by InternetMessageId), with a copy row for every
-- mailbox item that holds it (by EWS item id).
-- ---------------------------------------------------------------------------------------
CREATE TABLE emails (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    internet_message_id TEXT UNIQUE CHECK (length(internet_message_id) BETWEEN 1 AND 2000),
    direction           TEXT NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
    subject             TEXT NOT NULL DEFAULT '',
    body                TEXT NOT NULL DEFAULT '',
    body_type           TEXT NOT NULL DEFAULT 'text' CHECK (body_type IN ('text', 'html')),
    sender_address      TEXT,
    sender_name         TEXT,
    to_recipients       JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(to_recipients) = 'array'),
    cc_recipients       JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(cc_recipients) = 'array'),
    in_reply_to         TEXT,
    conversation_id     TEXT,
    received_at         TIMESTAMPTZ,
    sent_at             TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE email_copies (
    mailbox_id             UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    ews_item_id            TEXT NOT NULL CHECK (length(ews_item_id) BETWEEN 1 AND 1024),
    email_id               UUID NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
    folder                 TEXT NOT NULL,
    change_key             TEXT,
    is_read                BOOLEAN,
    deleted_in_exchange_at TIMESTAMPTZ,
    imported_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, ews_item_id)
);

CREATE INDEX email_copies_email ON email_copies (email_id);

-- Items that failed to import: retried a bounded number of times, the error kept.
CREATE TABLE item_failures (
    mailbox_id      UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    ews_item_id     TEXT NOT NULL CHECK (length(ews_item_id) BETWEEN 1 AND 1024),
    folder          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    last_error      TEXT NOT NULL CHECK (length(last_error) <= 2000),
    first_failed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_failed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    gave_up_at      TIMESTAMPTZ,
    PRIMARY KEY (mailbox_id, ews_item_id)
);

-- Items deliberately not imported, and why (for `exsync explain --item`).
CREATE TABLE skipped_items (
    mailbox_id  UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    ews_item_id TEXT NOT NULL CHECK (length(ews_item_id) BETWEEN 1 AND 1024),
    folder      TEXT NOT NULL,
    reason      TEXT NOT NULL CHECK (reason IN ('before_process_from', 'not_an_email')),
    received_at TIMESTAMPTZ,
    skipped_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, ews_item_id)
);

-- ---------------------------------------------------------------------------------------
-- Appointments, contacts, tasks: synchronised both ways.
--   version / synced_version: an application's change bumps version (trigger); the row is
--   "dirty" (to be written to Exchange) while version > synced_version. Writes made by the
--   sync engine on Exchange's behalf run with `exsync.origin = 'exchange'` and do not bump.
--   Deleting a row that exists in Exchange leaves a tombstone in act_deletions.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION exsync_act_track_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('exsync.origin', true), '') <> 'exchange' THEN
        NEW.version := OLD.version + 1;
        NEW.db_modified_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TABLE appointments (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mailbox_id           UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    ews_item_id          TEXT CHECK (length(ews_item_id) BETWEEN 1 AND 1024),
    ews_change_key       TEXT,
    subject              TEXT NOT NULL DEFAULT '',
    body                 TEXT NOT NULL DEFAULT '',
    location             TEXT NOT NULL DEFAULT '',
    start_at             TIMESTAMPTZ NOT NULL,
    end_at               TIMESTAMPTZ NOT NULL,
    is_all_day           BOOLEAN NOT NULL DEFAULT FALSE,
    organizer            TEXT,
    attendees            JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attendees) = 'array'),
    version              BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    synced_version       BIGINT NOT NULL DEFAULT 0 CHECK (synced_version >= 0),
    db_modified_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    exchange_modified_at TIMESTAMPTZ,
    sync_error           TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (end_at >= start_at),
    CHECK (synced_version <= version),
    UNIQUE (mailbox_id, ews_item_id)
);

CREATE TABLE contacts (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mailbox_id           UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    ews_item_id          TEXT CHECK (length(ews_item_id) BETWEEN 1 AND 1024),
    ews_change_key       TEXT,
    display_name         TEXT NOT NULL DEFAULT '',
    given_name           TEXT NOT NULL DEFAULT '',
    surname              TEXT NOT NULL DEFAULT '',
    company_name         TEXT NOT NULL DEFAULT '',
    job_title            TEXT NOT NULL DEFAULT '',
    email_addresses      JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(email_addresses) = 'array'),
    phone_numbers        JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(phone_numbers) = 'object'),
    version              BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    synced_version       BIGINT NOT NULL DEFAULT 0 CHECK (synced_version >= 0),
    db_modified_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    exchange_modified_at TIMESTAMPTZ,
    sync_error           TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (synced_version <= version),
    UNIQUE (mailbox_id, ews_item_id)
);

CREATE TABLE tasks (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mailbox_id           UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    ews_item_id          TEXT CHECK (length(ews_item_id) BETWEEN 1 AND 1024),
    ews_change_key       TEXT,
    subject              TEXT NOT NULL DEFAULT '',
    body                 TEXT NOT NULL DEFAULT '',
    status               TEXT NOT NULL DEFAULT 'not_started'
        CHECK (status IN ('not_started', 'in_progress', 'completed', 'waiting_on_others', 'deferred')),
    start_at             TIMESTAMPTZ,
    due_at               TIMESTAMPTZ,
    completed_at         TIMESTAMPTZ,
    percent_complete     INTEGER NOT NULL DEFAULT 0 CHECK (percent_complete BETWEEN 0 AND 100),
    version              BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    synced_version       BIGINT NOT NULL DEFAULT 0 CHECK (synced_version >= 0),
    db_modified_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    exchange_modified_at TIMESTAMPTZ,
    sync_error           TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (synced_version <= version),
    CHECK (status <> 'completed' OR percent_complete = 100),
    UNIQUE (mailbox_id, ews_item_id)
);

CREATE TRIGGER appointments_track_change BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION exsync_act_track_change();
CREATE TRIGGER contacts_track_change BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION exsync_act_track_change();
CREATE TRIGGER tasks_track_change BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION exsync_act_track_change();

CREATE TABLE act_deletions (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mailbox_id   UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('appointment', 'contact', 'task')),
    ews_item_id  TEXT NOT NULL CHECK (length(ews_item_id) BETWEEN 1 AND 1024),
    deleted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   TEXT,
    UNIQUE (mailbox_id, ews_item_id)
);

CREATE FUNCTION exsync_act_record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.ews_item_id IS NOT NULL
       AND coalesce(current_setting('exsync.origin', true), '') <> 'exchange' THEN
        INSERT INTO act_deletions (mailbox_id, kind, ews_item_id)
        VALUES (OLD.mailbox_id, TG_ARGV[0], OLD.ews_item_id)
        ON CONFLICT (mailbox_id, ews_item_id) DO NOTHING;
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER appointments_record_deletion AFTER DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION exsync_act_record_deletion('appointment');
CREATE TRIGGER contacts_record_deletion AFTER DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION exsync_act_record_deletion('contact');
CREATE TRIGGER tasks_record_deletion AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION exsync_act_record_deletion('task');

-- ---------------------------------------------------------------------------------------
-- Outgoing email queue. Applications INSERT a row (status 'pending'); a trigger fills the
-- InternetMessageId (the key of exactly-once sending) and wakes the scheduler by NOTIFY.
-- ---------------------------------------------------------------------------------------
CREATE TABLE outgoing_emails (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mailbox_id          UUID NOT NULL REFERENCES mailboxes (id) ON DELETE RESTRICT,
    to_recipients       TEXT[] NOT NULL CHECK (cardinality(to_recipients) BETWEEN 1 AND 500),
    cc_recipients       TEXT[] NOT NULL DEFAULT '{}' CHECK (cardinality(cc_recipients) <= 500),
    bcc_recipients      TEXT[] NOT NULL DEFAULT '{}' CHECK (cardinality(bcc_recipients) <= 500),
    subject             TEXT NOT NULL DEFAULT '' CHECK (length(subject) <= 4000),
    body                TEXT NOT NULL DEFAULT '',
    body_type           TEXT NOT NULL DEFAULT 'text' CHECK (body_type IN ('text', 'html')),
    internet_message_id TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error          TEXT CHECK (length(last_error) <= 2000),
    next_attempt_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    ews_item_id         TEXT,
    queued_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at             TIMESTAMPTZ,
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

CREATE INDEX outgoing_emails_due ON outgoing_emails (mailbox_id, next_attempt_at)
    WHERE status IN ('pending', 'sending');

CREATE FUNCTION exsync_outgoing_prepare() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.internet_message_id IS NULL THEN
        NEW.internet_message_id := '<' || NEW.id::text || '.exsync@'
            || coalesce((SELECT split_part(email_address, '@', 2) FROM mailboxes
                         WHERE id = NEW.mailbox_id), 'exsync.invalid')
            || '>';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER outgoing_emails_prepare BEFORE INSERT ON outgoing_emails
    FOR EACH ROW EXECUTE FUNCTION exsync_outgoing_prepare();

-- A newly queued email makes its mailbox's outgoing workload due now and wakes schedulers.
CREATE FUNCTION exsync_outgoing_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes SET outgoing_next_due_at = now()
     WHERE id = NEW.mailbox_id AND outgoing_next_due_at > now();
    PERFORM pg_notify('exsync_outgoing', NEW.mailbox_id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER outgoing_emails_notify AFTER INSERT ON outgoing_emails
    FOR EACH ROW EXECUTE FUNCTION exsync_outgoing_notify();

-- ---------------------------------------------------------------------------------------
-- Alerts: the trail on a profile or a mailbox. A repeating condition updates one open alert
-- (occurrences, last_seen_at); healing closes it (resolved_at) with an information alert.
-- ---------------------------------------------------------------------------------------
CREATE TABLE alerts (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    profile_id   UUID REFERENCES email_server_profiles (id) ON DELETE CASCADE,
    mailbox_id   UUID REFERENCES mailboxes (id) ON DELETE CASCADE,
    level        TEXT NOT NULL CHECK (level IN ('information', 'warning', 'error')),
    code         TEXT NOT NULL CHECK (code ~ '^[a-z0-9_.]{1,100}$'),
    workload     TEXT CHECK (workload IN ('incoming', 'outgoing', 'act')),
    message      TEXT NOT NULL CHECK (length(message) BETWEEN 1 AND 4000),
    occurrences  INTEGER NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ,
    CONSTRAINT alert_has_one_target CHECK (num_nonnulls(profile_id, mailbox_id) = 1),
    CONSTRAINT information_is_never_open CHECK (level <> 'information' OR resolved_at IS NOT NULL)
);

CREATE UNIQUE INDEX alerts_one_open_per_condition
    ON alerts (coalesce(mailbox_id, profile_id), code, coalesce(workload, ''))
    WHERE resolved_at IS NULL;
CREATE INDEX alerts_mailbox ON alerts (mailbox_id, last_seen_at DESC) WHERE mailbox_id IS NOT NULL;
CREATE INDEX alerts_profile ON alerts (profile_id, last_seen_at DESC) WHERE profile_id IS NOT NULL;

CREATE INDEX outgoing_emails_mailbox_status ON outgoing_emails (mailbox_id, status);

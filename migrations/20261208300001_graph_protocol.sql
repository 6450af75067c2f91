-- Microsoft Graph as a second mail-server protocol (issue 10). A profile speaks EWS (the
-- default; Exchange Server on premises, and Exchange Online until EWS is switched off) or
-- Graph (Exchange Online only, app-only OAuth only). `graph_url` serves national clouds and
-- tests. `migrate-profile` moves a profile from EWS to Graph; what it translated is kept per
-- stored id, so a crashed run resumes and a finished one is not repeated.
ALTER TABLE email_server_profiles
    ADD COLUMN protocol TEXT NOT NULL DEFAULT 'ews' CHECK (protocol IN ('ews', 'graph')),
    ADD COLUMN graph_url TEXT NOT NULL DEFAULT 'https://graph.microsoft.com/v1.0'
        CHECK (graph_url ~* '^https?://[^/\s]+'),
    ADD CONSTRAINT graph_needs_exchange_online_app_only CHECK (
        protocol <> 'graph'
        OR (server_type = 'exchange_online' AND auth = 'oauth_client_credentials'));

-- One stored EWS id of a mailbox and what became of it during a move to Graph: translated
-- (target_id), matched by its properties (To Do tasks), or not (error). `kind` names where
-- the id is stored: email (email copies, skipped items, item failures), appointment,
-- contact, task.
CREATE TABLE id_migrations (
    mailbox_id  UUID NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('email', 'appointment', 'contact', 'task')),
    source_id   TEXT NOT NULL CHECK (length(source_id) BETWEEN 1 AND 1024),
    target_id   TEXT CHECK (length(target_id) BETWEEN 1 AND 1024),
    outcome     TEXT NOT NULL CHECK (outcome IN ('translated', 'matched', 'failed')),
    error       TEXT CHECK (length(error) <= 2000),
    migrated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, kind, source_id),
    CHECK ((outcome = 'failed') = (target_id IS NULL))
);
CREATE INDEX id_migrations_target ON id_migrations (mailbox_id, target_id);

-- A profile's move to Graph while it runs: the profile is disabled meanwhile (no pass may
-- import by EWS id once ids are translated), and re-enabled as it was when the move ends.
CREATE TABLE profile_migrations (
    profile_id  UUID PRIMARY KEY REFERENCES email_server_profiles (id) ON DELETE CASCADE,
    target      TEXT NOT NULL CHECK (target IN ('graph')),
    was_enabled BOOLEAN NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);

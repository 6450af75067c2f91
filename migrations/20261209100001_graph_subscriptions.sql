-- Microsoft Graph change notifications (issue 16's optional path): one subscription per Graph
-- mailbox and resource (its Inbox messages; its events when appointments are synchronised).
-- A notification makes the mailbox due at once; delta stays the source of truth and polling
-- continues. Only a SHA-256 of each subscription's clientState is kept (enough to verify a
-- notification; the secret itself is never stored or logged). Work on a row (create, renew,
-- recreate) is leased like a pass, so with several instances one owner renews it.
CREATE TABLE graph_subscriptions (
    mailbox_id          UUID NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    profile_id          UUID NOT NULL REFERENCES email_server_profiles(id) ON DELETE CASCADE,
    resource_kind       TEXT NOT NULL CHECK (resource_kind IN ('inbox', 'events')),
    -- `pending` (to create), `active`, `failed` (retried at retry_at), `obsolete` (to delete).
    state               TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'active', 'failed', 'obsolete')),
    subscription_id     TEXT UNIQUE CHECK (length(subscription_id) <= 200),
    client_state_sha256 BYTEA CHECK (length(client_state_sha256) = 32),
    expires_at          TIMESTAMPTZ,
    -- reauthorizationRequired arrived: renew at once.
    renew_requested     BOOLEAN NOT NULL DEFAULT false,
    reason              TEXT CHECK (length(reason) <= 2000),
    failures            INTEGER NOT NULL DEFAULT 0,
    retry_at            TIMESTAMPTZ,
    renewals            BIGINT NOT NULL DEFAULT 0,
    lease_owner         TEXT,
    lease_expires_at    TIMESTAMPTZ,
    last_notification_at TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, resource_kind),
    CHECK ((state = 'active') = (subscription_id IS NOT NULL AND client_state_sha256 IS NOT NULL
                                  AND expires_at IS NOT NULL) OR state = 'obsolete')
);
CREATE INDEX graph_subscriptions_work ON graph_subscriptions (state, expires_at, retry_at);

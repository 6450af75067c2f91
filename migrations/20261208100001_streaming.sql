-- EWS streaming notifications (issue 11).
--
-- A profile may opt out of streaming (apply key `streaming`, default true).
ALTER TABLE email_server_profiles
    ADD COLUMN streaming BOOLEAN NOT NULL DEFAULT true;

-- A subscription group: the mailboxes one GetStreamingEvents connection serves (up to 200
-- impersonated mailboxes, or one mailbox with its own credentials). Owned through a lease
-- with a fencing token, like a pass owns its mailbox; while `connection_open`, the group
-- counts as one of its profile's MaximumConcurrentConnections.
CREATE TABLE streaming_groups (
    profile_id        UUID NOT NULL REFERENCES email_server_profiles(id) ON DELETE CASCADE,
    group_key         TEXT NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    lease_token       UUID,
    connection_open   BOOLEAN NOT NULL DEFAULT false,
    -- The X-BackEndOverrideCookie Exchange answered (routing, not a secret).
    back_end_cookie   TEXT,
    PRIMARY KEY (profile_id, group_key)
);

-- Each mailbox's place in streaming: its group, its subscription and its state.
CREATE TABLE streaming_mailboxes (
    mailbox_id            UUID PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    profile_id            UUID NOT NULL REFERENCES email_server_profiles(id) ON DELETE CASCADE,
    -- `imp:N` (impersonation group N), `own:<mailbox id>` (own credentials), or `none`.
    group_key             TEXT NOT NULL,
    state                 TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'streaming', 'polling')),
    -- Why the mailbox polls (or waits), for `exsync explain`.
    reason                TEXT,
    subscription_id       TEXT,
    failures              INTEGER NOT NULL DEFAULT 0,
    -- After repeated failures the mailbox polls until then.
    fallback_until        TIMESTAMPTZ,
    -- The safety poll while streaming (a pass then schedules no sooner than this).
    safety_poll_ms        BIGINT,
    last_notification_at  TIMESTAMPTZ,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX streaming_mailboxes_group ON streaming_mailboxes (profile_id, group_key);

-- What syncs and what a delete may touch (issue 8).
--
-- * incoming_filter (profile default, mailbox override): which incoming mail is imported, as
--   Dynamics' "Track incoming email" option: all | responses | known_senders | none. Mail a
--   user categorises as tracked always comes in.
-- * act_scope (profile default, mailbox override): appointments, contacts and tasks from
--   Exchange come in when tracked (the tracking category) or created by exsync (`tracked`, the
--   default), or all of them (`all`, the behaviour before this migration).
-- * act_attendee_delete (profile): what a database delete of a meeting the mailbox only
--   attends does in Exchange: leave it (`keep`, as Dynamics) or decline it (`decline`).
-- * tracking_token_prefix (profile): when set, outgoing mail carries a tracking token such as
--   `EXS:0000042` at the end of its subject, and replies carrying it count as responses.

ALTER TABLE email_server_profiles
    ADD COLUMN incoming_filter TEXT NOT NULL DEFAULT 'all'
        CHECK (incoming_filter IN ('all', 'responses', 'known_senders', 'none')),
    ADD COLUMN act_scope TEXT NOT NULL DEFAULT 'tracked'
        CHECK (act_scope IN ('tracked', 'all')),
    ADD COLUMN act_attendee_delete TEXT NOT NULL DEFAULT 'keep'
        CHECK (act_attendee_delete IN ('keep', 'decline')),
    -- A letter first, no whitespace, not ending in a digit (the number follows it).
    ADD COLUMN tracking_token_prefix TEXT
        CHECK (tracking_token_prefix ~ '^[A-Za-z][A-Za-z0-9_.:#-]{0,19}$'
               AND tracking_token_prefix !~ '[0-9]$');

ALTER TABLE mailboxes
    ADD COLUMN incoming_filter TEXT
        CHECK (incoming_filter IN ('all', 'responses', 'known_senders', 'none')),
    ADD COLUMN act_scope TEXT
        CHECK (act_scope IN ('tracked', 'all'));

-- A changed filter or scope makes the mailbox due at once (the settings trigger of the
-- foundation lists its columns; this one covers the new ones).
CREATE FUNCTION exsync_touch_mailbox_scope() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.incoming_filter, NEW.act_scope) IS DISTINCT FROM (OLD.incoming_filter, OLD.act_scope) THEN
        NEW.updated_at := now();
        NEW.incoming_next_due_at := LEAST(NEW.incoming_next_due_at, now());
        NEW.act_next_due_at := LEAST(NEW.act_next_due_at, now());
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER mailboxes_touch_scope BEFORE UPDATE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION exsync_touch_mailbox_scope();

-- Why an item was left out: the incoming filter's rules and the ACT scope join the reasons.
ALTER TABLE skipped_items DROP CONSTRAINT skipped_items_reason_check;
ALTER TABLE skipped_items ADD CONSTRAINT skipped_items_reason_check CHECK (reason IN (
    'before_process_from', 'not_an_email',
    'filter_responses', 'filter_known_senders', 'filter_none', 'not_tracked'));

-- Outgoing mail's tracking token (assigned once, at its first send, when the profile has a
-- prefix), so a retry sends the same subject and a reply finds its way back.
CREATE SEQUENCE exsync_tracking_token_seq;
ALTER TABLE outgoing_emails ADD COLUMN tracking_token TEXT UNIQUE
    CHECK (length(tracking_token) BETWEEN 2 AND 64);

-- Known senders: contacts' addresses, lower case, searchable by index.
CREATE FUNCTION exsync_email_keys(addresses jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(lower(btrim(a))), '{}')
      FROM jsonb_array_elements_text(
               CASE WHEN jsonb_typeof(addresses) = 'array' THEN addresses ELSE '[]' END) AS a
$$;
CREATE INDEX contacts_email_keys ON contacts USING gin (exsync_email_keys(email_addresses));

-- Appointments, contacts, tasks: how a row is tied to its Exchange item.
--   owned    - the database's row (created by an application, or synchronised before this
--              migration): synchronised both ways whatever its categories.
--   imported - brought in from Exchange (tracked, or act_scope = all): synchronised both ways
--              while in scope.
--   unlinked - the user untracked it (removed the tracking category): the row stays, nothing
--              flows either way, and deleting it touches nothing in Exchange.
ALTER TABLE appointments ADD COLUMN exchange_link TEXT NOT NULL DEFAULT 'owned'
    CHECK (exchange_link IN ('owned', 'imported', 'unlinked'));
ALTER TABLE contacts ADD COLUMN exchange_link TEXT NOT NULL DEFAULT 'owned'
    CHECK (exchange_link IN ('owned', 'imported', 'unlinked'));
ALTER TABLE tasks ADD COLUMN exchange_link TEXT NOT NULL DEFAULT 'owned'
    CHECK (exchange_link IN ('owned', 'imported', 'unlinked'));

-- A recurring series keeps its pattern and range (JSON, documented in docs/operations.md).
ALTER TABLE appointments ADD COLUMN recurrence JSONB
    CHECK (recurrence IS NULL OR jsonb_typeof(recurrence) = 'object');

-- The tombstone remembers how the row was tied, so the delete can be judged in Exchange.
ALTER TABLE act_deletions ADD COLUMN exchange_link TEXT NOT NULL DEFAULT 'owned'
    CHECK (exchange_link IN ('owned', 'imported'));

-- Deleting an unlinked row leaves no tombstone: an untracked item is the user's, not ours.
CREATE OR REPLACE FUNCTION exsync_act_record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.ews_item_id IS NOT NULL
       AND OLD.exchange_link <> 'unlinked'
       AND coalesce(current_setting('exsync.origin', true), '') <> 'exchange'
       AND EXISTS (SELECT 1 FROM mailboxes WHERE id = OLD.mailbox_id) THEN
        INSERT INTO act_deletions (mailbox_id, kind, ews_item_id, exchange_link)
        VALUES (OLD.mailbox_id, TG_ARGV[0], OLD.ews_item_id, OLD.exchange_link)
        ON CONFLICT (mailbox_id, ews_item_id) DO NOTHING;
    END IF;
    RETURN OLD;
END $$;

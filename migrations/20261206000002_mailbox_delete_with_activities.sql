-- Deleting a mailbox (or its profile) cascades to its appointments, contacts and tasks; their
-- deletion trigger must not then record a tombstone for the mailbox being deleted (the
-- tombstone's foreign key would refuse it, and with it the whole DELETE). Nothing is pushed to
-- Exchange for a mailbox that is no longer synchronised.
CREATE OR REPLACE FUNCTION exsync_act_record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.ews_item_id IS NOT NULL
       AND coalesce(current_setting('exsync.origin', true), '') <> 'exchange'
       AND EXISTS (SELECT 1 FROM mailboxes WHERE id = OLD.mailbox_id) THEN
        INSERT INTO act_deletions (mailbox_id, kind, ews_item_id)
        VALUES (OLD.mailbox_id, TG_ARGV[0], OLD.ews_item_id)
        ON CONFLICT (mailbox_id, ews_item_id) DO NOTHING;
    END IF;
    RETURN OLD;
END $$;

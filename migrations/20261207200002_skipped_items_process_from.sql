-- Issue 7: moving the Process-From date earlier brings the older mail in. Items skipped as older
-- than the date are looked up by their DateTimeReceived on every incoming pass (normally an
-- empty range scan on this index).
CREATE INDEX skipped_items_before_process_from
    ON skipped_items (mailbox_id, folder, received_at)
    WHERE reason = 'before_process_from';

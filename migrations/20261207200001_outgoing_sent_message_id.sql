-- Issue 7: exsync no longer sets the Internet Message-ID of a message it sends (Microsoft's
-- managed API treats InternetMessageId as read-only; whether Exchange keeps a client's value is
-- not documented). Exchange assigns it; exsync finds the sent copy in Sent Items by the
-- ExsyncOutgoingId extended property (= outgoing_emails.id) and records the assigned id here.
--   internet_message_id  exsync's own reference for the row (kept; not sent on the wire)
--   sent_message_id      the Message-ID Exchange assigned, once read back from Sent Items
--   message_id_lookups   read-backs that did not find the copy yet (Sent Items is filed
--                        asynchronously); exsync stops looking after a few
ALTER TABLE outgoing_emails
    ADD COLUMN sent_message_id TEXT CHECK (length(sent_message_id) BETWEEN 1 AND 2000),
    ADD COLUMN message_id_lookups INTEGER NOT NULL DEFAULT 0 CHECK (message_id_lookups >= 0);

CREATE INDEX outgoing_emails_awaiting_message_id ON outgoing_emails (mailbox_id, sent_at)
    WHERE status = 'sent' AND sent_message_id IS NULL AND message_id_lookups < 5;

-- Issue 10: when exsync last asked the server to send a queued email (Graph: the POST of
-- `send` for its draft). A retry that finds neither the Sent Items copy nor the draft while
-- this is set must not send again: the copy may still be on its way (Graph files it after
-- the 202), so it waits, and after `sync.unconfirmed_send_alert_minutes` raises an alert.
ALTER TABLE outgoing_emails ADD COLUMN send_issued_at TIMESTAMPTZ;

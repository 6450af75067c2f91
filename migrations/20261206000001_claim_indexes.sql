-- Claims read one profile's mailboxes in due order and count its live leases (the limit holds
-- across instances): both by index, so a claim does not scan every mailbox of the profile.
CREATE INDEX mailboxes_claim_order
    ON mailboxes (profile_id, (LEAST(incoming_next_due_at, outgoing_next_due_at, act_next_due_at)));
CREATE INDEX mailboxes_live_leases
    ON mailboxes (profile_id, lease_expires_at) WHERE lease_expires_at IS NOT NULL;

-- Correlation with Exchange for the last error: the client-request-id exsync sent and the
-- request-id / X-BEServer Exchange answered, which Microsoft support asks for.
ALTER TABLE mailboxes
    ADD COLUMN last_error_client_request_id UUID,
    ADD COLUMN last_error_request_id TEXT CHECK (length(last_error_request_id) <= 200),
    ADD COLUMN last_error_be_server TEXT CHECK (length(last_error_be_server) <= 200);

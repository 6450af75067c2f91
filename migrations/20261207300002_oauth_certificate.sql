-- OAuth app-only with a certificate (a signed JWT client assertion) besides the client
-- secret: the certificate is public (PEM text), its private key is encrypted like every
-- other secret. A profile uses exactly one of the two credentials.
ALTER TABLE email_server_profiles
    ADD COLUMN oauth_certificate_pem TEXT CHECK (length(oauth_certificate_pem) <= 65536),
    ADD COLUMN oauth_private_key_enc BYTEA,
    ADD COLUMN oauth_assertion_signing TEXT NOT NULL DEFAULT 'ps256'
        CHECK (oauth_assertion_signing IN ('ps256', 'rs256')),
    ADD CONSTRAINT oauth_certificate_whole CHECK (
        (oauth_certificate_pem IS NULL) = (oauth_private_key_enc IS NULL)),
    DROP CONSTRAINT oauth_settings_complete,
    ADD CONSTRAINT oauth_settings_complete CHECK (
        auth <> 'oauth_client_credentials' OR (
            oauth_client_id IS NOT NULL
            AND (oauth_token_url IS NOT NULL OR oauth_tenant IS NOT NULL)
            AND ((oauth_client_secret_enc IS NOT NULL) <> (oauth_certificate_pem IS NOT NULL))));

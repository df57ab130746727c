-- Who made each entry's last registration (a token id or OIDC subject), and API tokens: only a
-- SHA-256 hash of each token's secret is kept, never the secret. Any row here (even revoked)
-- switches the default auth mode from open to tokens.
ALTER TABLE servers ADD COLUMN updated_by TEXT;
CREATE INDEX servers_updated_by ON servers (updated_by);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    secret_sha256 TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    ids           TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT
);

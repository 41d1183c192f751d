-- The authorization code flow (RFC 6749 §4.1 with PKCE, RFC 7636) and refresh tokens.
--
-- Codes and refresh tokens are `<id>.<secret>`: the id is time-sortable and is the key (so
-- rows made one after another share a page), only the SHA-256 of the secret is stored.

-- consents: what one person allowed one client (audience -> scopes, as JSON), reused by
-- later authorization requests that ask for no more.
CREATE TABLE consents (
    owner_id TEXT NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    grants TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, client_id)
) WITHOUT ROWID;
CREATE INDEX consents_client_idx ON consents (client_id);

-- Authorization codes. Single use: `used_at` is set by the one exchange that wins;
-- `family_id` names the refresh family that exchange started, so that a replayed code
-- revokes what it issued.
CREATE TABLE authorization_codes (
    code_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    redirect_uri TEXT,
    code_challenge TEXT NOT NULL,
    grants TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    family_id TEXT
) WITHOUT ROWID;

-- One family per code exchange: every refresh token rotated from it, and the access tokens
-- issued in it (which carry the family id in `patron_chain`), end together when it is
-- revoked (the family id then joins revoked_tokens).
CREATE TABLE refresh_families (
    family_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    grants TEXT NOT NULL,
    dpop_jkt TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
) WITHOUT ROWID;
CREATE INDEX refresh_families_owner_client_idx ON refresh_families (owner_id, client_id);

-- Refresh tokens. `used_at` is set when it is rotated; a second use revokes the family.
-- A token never outlives its family (its `expires_at` is at most the family's), so tokens
-- are purged by their own expiry rather than through a foreign key.
CREATE TABLE refresh_tokens (
    token_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    family_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

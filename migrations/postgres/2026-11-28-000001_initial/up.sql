CREATE TABLE owners (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT,
    display_name TEXT,
    created_at BIGINT NOT NULL,
    tokens_revoked_before BIGINT
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    owner_id TEXT REFERENCES owners (id),
    metadata TEXT NOT NULL,
    client_secret_hash TEXT,
    registration_token_hash TEXT NOT NULL,
    user_code TEXT UNIQUE,
    source_addr TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT,
    tokens_revoked_before BIGINT
);
CREATE INDEX clients_owner_idx ON clients (owner_id);
CREATE INDEX clients_expiry_idx ON clients (status, expires_at);

CREATE TABLE skills (
    audience TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    ttl_secs BIGINT NOT NULL,
    require_dpop BOOLEAN NOT NULL,
    owner_id TEXT REFERENCES owners (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE grants (
    client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    audience TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, audience)
);

CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL REFERENCES owners (id),
    grants TEXT NOT NULL,
    uses_left INTEGER NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL UNIQUE,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    private_key_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activate_at BIGINT NOT NULL
);

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    client_id TEXT,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry_idx ON revoked_tokens (expires_at);

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    client_id TEXT,
    owner_id TEXT,
    audience TEXT,
    jti TEXT,
    source_addr TEXT,
    request_id TEXT,
    detail TEXT
);
CREATE INDEX audit_events_client_idx ON audit_events (client_id, at);
CREATE INDEX audit_events_owner_idx ON audit_events (owner_id, at);

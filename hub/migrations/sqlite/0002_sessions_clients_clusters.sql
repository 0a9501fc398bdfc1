-- Hub sessions, their refresh tokens, authorization codes, pending upstream logins and the
-- spoke registry. The PostgreSQL twin of this file is ../postgres/0002_sessions_clients_clusters.sql:
-- keep them identical in table names, column names and semantics. Timestamps are unix
-- seconds (BIGINT). Tokens, codes and login ids are stored only as lowercase hex SHA-256.

CREATE TABLE sessions (
    id                        TEXT   NOT NULL PRIMARY KEY,
    subject                   TEXT   NOT NULL,
    username                  TEXT   NOT NULL,
    groups_json               TEXT   NOT NULL,
    client_id                 TEXT   NOT NULL,
    created_at                BIGINT NOT NULL,
    last_used_at              BIGINT NOT NULL,
    absolute_expires_at       BIGINT NOT NULL,
    upstream_grant_ciphertext BLOB   NOT NULL,
    upstream_grant_nonce      BLOB   NOT NULL,
    upstream_checked_at       BIGINT NOT NULL,
    revoked_at                BIGINT,
    revoked_reason            TEXT,
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_absolute_expires_at ON sessions (absolute_expires_at);
CREATE INDEX sessions_last_used_at ON sessions (last_used_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT   NOT NULL PRIMARY KEY CHECK (length(token_hash) = 64),
    session_id TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

CREATE TABLE auth_codes (
    code_hash      TEXT   NOT NULL PRIMARY KEY CHECK (length(code_hash) = 64),
    client_id      TEXT   NOT NULL,
    redirect_uri   TEXT   NOT NULL,
    code_challenge TEXT   NOT NULL,
    nonce          TEXT,
    scope          TEXT   NOT NULL,
    session_id     TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX auth_codes_session_id ON auth_codes (session_id);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE pending_logins (
    id_hash    TEXT   NOT NULL PRIMARY KEY CHECK (length(id_hash) = 64),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    request    TEXT   NOT NULL
);
CREATE INDEX pending_logins_expires_at ON pending_logins (expires_at);

CREATE TABLE clusters (
    name       TEXT   NOT NULL PRIMARY KEY,
    labels     TEXT   NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);

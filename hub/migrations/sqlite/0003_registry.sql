-- Spoke registration: cluster lifecycle, join tokens and the hub's gRPC/cluster CAs.
-- The twin of this file is ../postgres/0003_registry.sql: keep them identical in table
-- names, column names and semantics. Timestamps are unix seconds (BIGINT). Join token
-- secrets are stored only as lowercase hex SHA-256; CA private keys only sealed with the KEK.

ALTER TABLE clusters ADD COLUMN state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'joined', 'removed'));
ALTER TABLE clusters ADD COLUMN cert_serial TEXT;
ALTER TABLE clusters ADD COLUMN cert_not_after BIGINT;
ALTER TABLE clusters ADD COLUMN joined_at BIGINT;
ALTER TABLE clusters ADD COLUMN removed_at BIGINT;
ALTER TABLE clusters ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN last_seen BIGINT;
ALTER TABLE clusters ADD COLUMN proxy_url TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN proxy_ca_pem TEXT NOT NULL DEFAULT '';

CREATE TABLE join_tokens (
    id          TEXT   NOT NULL PRIMARY KEY,
    secret_hash TEXT   NOT NULL CHECK (length(secret_hash) = 64),
    cluster     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX join_tokens_cluster ON join_tokens (cluster);
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

CREATE TABLE hub_cas (
    name           TEXT   NOT NULL PRIMARY KEY,
    cert_pem       TEXT   NOT NULL,
    key_ciphertext BLOB   NOT NULL,
    key_nonce      BLOB   NOT NULL,
    created_at     BIGINT NOT NULL
);

-- Signing keys, the key epoch (compare-and-set generation) and the audit log.
-- The PostgreSQL twin of this file is ../postgres/0001_keys_and_audit.sql: keep them identical
-- in table names, column names and semantics. Timestamps are unix seconds (BIGINT).

CREATE TABLE signing_keys (
    kid                    TEXT    NOT NULL PRIMARY KEY,
    alg                    TEXT    NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    state                  TEXT    NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    created_at             BIGINT  NOT NULL,
    activated_at           BIGINT,
    deactivated_at         BIGINT,
    retire_after           BIGINT,
    public_jwk             TEXT    NOT NULL,
    private_key_ciphertext BLOB    NOT NULL,
    nonce                  BLOB    NOT NULL,
    CHECK (state <> 'retired' OR (length(private_key_ciphertext) = 0 AND length(nonce) = 0))
);

-- At most one signing key and one upcoming key at any time.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (state) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

CREATE TABLE key_epoch (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    generation BIGINT  NOT NULL
);
INSERT INTO key_epoch (id, generation) VALUES (1, 0);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    actor   TEXT   NOT NULL,
    subject TEXT,
    outcome TEXT   NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    reason  TEXT,
    details TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_kind_at ON audit_log (kind, at);

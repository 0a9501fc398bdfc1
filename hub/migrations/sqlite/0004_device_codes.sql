-- OAuth 2.0 Device Authorization Grant (RFC 8628): device codes and the user-code
-- brute-force counter. The twin of this file is ../postgres/0004_device_codes.sql: keep them
-- identical in table names, column names and semantics. Timestamps are unix seconds
-- (BIGINT). Device codes and user codes are stored only as lowercase hex SHA-256.

CREATE TABLE device_codes (
    id               TEXT   NOT NULL PRIMARY KEY,
    device_code_hash TEXT   NOT NULL UNIQUE CHECK (length(device_code_hash) = 64),
    user_code_hash   TEXT   NOT NULL UNIQUE CHECK (length(user_code_hash) = 64),
    client_id        TEXT   NOT NULL,
    scope            TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    interval_secs    BIGINT NOT NULL CHECK (interval_secs > 0),
    last_polled_at   BIGINT,
    status           TEXT   NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    session_id       TEXT   REFERENCES sessions (id) ON DELETE CASCADE,
    decided_at       BIGINT,
    used_at          BIGINT,
    CHECK ((status IN ('approved', 'consumed')) = (session_id IS NOT NULL)),
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX device_codes_expires_at ON device_codes (expires_at);
CREATE INDEX device_codes_session_id ON device_codes (session_id);

-- Wrong user codes entered at /device, counted per fixed one-minute window (window_start
-- is a unix minute boundary), hub-wide.
CREATE TABLE device_code_failures (
    window_start BIGINT NOT NULL PRIMARY KEY,
    failures     BIGINT NOT NULL
);

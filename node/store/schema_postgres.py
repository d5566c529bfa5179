"""The store's schema on PostgreSQL: the same logical schema as ``schema`` (SQLite), in
PostgreSQL's own types, as versioned migrations numbered like the SQLite ones.

Rules kept here:
- ``MIGRATIONS[v]`` takes a database from version ``v - 1`` to ``v``; versions are the SQLite
  ones, so one number names one logical schema on both backends. The version lives in the
  one-row table ``store_schema``; the database module runs each migration in its own
  transaction together with the version bump.
- PostgreSQL starts at a consolidated baseline: ``MIGRATIONS[BASELINE]`` makes the whole schema
  of SQLite version ``BASELINE`` at once (an empty database goes straight to it).
- A new schema change is written twice, once per backend, each appended at the end: the
  SQLite script to ``schema.MIGRATIONS``, the PostgreSQL one here as ``MIGRATIONS[n]``.
  ``tests/test_store_backends.py`` fails until both have it.
- Types: ``REAL`` is ``DOUBLE PRECISION`` (PostgreSQL's ``REAL`` is 4 bytes), ``BLOB`` is
  ``BYTEA``, integers are ``BIGINT`` (SQLite's are 64-bit), ``INTEGER PRIMARY KEY
  AUTOINCREMENT`` is an identity column (never reused either). Tables whose SQL orders or pages
  by SQLite's implicit ``rowid`` get an explicit identity column of that name, so the store's
  SQL is written once. Likewise ``sqlite_sequence`` holds the evidence log's high-water mark
  (which SQLite keeps there for ``AUTOINCREMENT``), raised by a trigger on every insert.
- The store's SQL uses two SQLite JSON functions in one narrow form each: ``json_extract(doc,
  '$.key')`` and ``SELECT value FROM json_each(<JSON array of integers>)``. The baseline
  defines both, for those forms, so that SQL too is written once.
"""

from __future__ import annotations

from types import MappingProxyType

BASELINE = 13
"""The SQLite schema version the PostgreSQL baseline reproduces."""

_V13 = """
CREATE FUNCTION json_extract(document TEXT, path TEXT) RETURNS TEXT
    LANGUAGE SQL IMMUTABLE STRICT
    RETURN (document::jsonb) #>> string_to_array(substr(path, 3), '.');

CREATE FUNCTION json_each(document TEXT) RETURNS TABLE (value BIGINT)
    LANGUAGE SQL IMMUTABLE STRICT
    AS $$ SELECT element::bigint FROM jsonb_array_elements_text(document::jsonb) AS element $$;

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TABLE outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    peer TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    payload_type TEXT NOT NULL,
    correlation_id TEXT NOT NULL DEFAULT '',
    envelope BYTEA NOT NULL,
    digest BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    last_attempt_at DOUBLE PRECISION,
    delivered_at DOUBLE PRECISION,
    dead_at DOUBLE PRECISION,
    reply BYTEA,
    retried_at DOUBLE PRECISION
);
CREATE INDEX outbox_peer_state_seq ON outbox (peer, state, seq);

CREATE TABLE peer_cursor (
    peer TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);

CREATE TABLE inbox (
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    digest BYTEA NOT NULL,
    payload_type TEXT NOT NULL,
    envelope BYTEA NOT NULL,
    reply BYTEA NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sender, message_id)
);

-- The evidence log numbers its own entries from the high-water mark (node/store/audit.py);
-- on SQLite that mark is AUTOINCREMENT's row in sqlite_sequence, here a row of a table of the
-- same name that every insert raises, in the inserting transaction.
CREATE TABLE sqlite_sequence (
    name TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
-- From the start, so the first append, too, locks the head (node/store/audit.py).
INSERT INTO sqlite_sequence (name, seq) VALUES ('audit', 0);
CREATE FUNCTION raise_high_water() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sqlite_sequence (name, seq) VALUES (TG_TABLE_NAME, NEW.seq)
    ON CONFLICT (name) DO UPDATE SET seq = GREATEST(sqlite_sequence.seq, excluded.seq);
    RETURN NULL;
END;
$$;

CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    recorded_at DOUBLE PRECISION NOT NULL,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BYTEA NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    purged_at DOUBLE PRECISION
);
CREATE TRIGGER audit_high_water AFTER INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION raise_high_water();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION refuse_change('audit log is append-only');
-- Retention empties a message entry's body once; nothing else about an entry ever changes.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW
    WHEN (NOT (
        OLD.purged_at IS NULL AND NEW.purged_at IS NOT NULL AND NEW.body = ''::bytea
        AND OLD.kind IN ('envelope', 'reply')
        AND NEW.seq = OLD.seq AND NEW.recorded_at = OLD.recorded_at
        AND NEW.direction = OLD.direction AND NEW.peer = OLD.peer
        AND NEW.message_id = OLD.message_id AND NEW.kind = OLD.kind
        AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
    ))
    EXECUTE FUNCTION refuse_change('audit log is append-only');

CREATE TABLE catalogs (
    province TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    document TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE cases (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    case_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('accepting', 'handling')),
    accepting TEXT NOT NULL,
    handling TEXT NOT NULL,
    matter_code TEXT NOT NULL,
    mode TEXT NOT NULL,
    promised_days BIGINT NOT NULL,
    submission BYTEA NOT NULL,
    status TEXT NOT NULL,
    applied BIGINT NOT NULL DEFAULT 0,
    due_at DOUBLE PRECISION,
    submitted_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    concluded_at DOUBLE PRECISION,
    evaluation_level BIGINT,
    problem TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT UNIQUE,
    request_digest BYTEA
);
CREATE INDEX cases_status ON cases (status, case_id);
CREATE INDEX cases_due ON cases (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE case_updates (
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    sequence BIGINT NOT NULL,
    action TEXT NOT NULL,
    by_role TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    detail TEXT NOT NULL,
    evidence BYTEA NOT NULL,
    request BYTEA,
    applied BIGINT NOT NULL,
    PRIMARY KEY (case_id, sequence)
);
CREATE TRIGGER case_updates_no_delete BEFORE DELETE ON case_updates
    FOR EACH ROW EXECUTE FUNCTION refuse_change('case history is append-only');

CREATE TABLE case_requests (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    message_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    action TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'refused')),
    requested_at DOUBLE PRECISION NOT NULL,
    answered_at DOUBLE PRECISION,
    fault_code TEXT NOT NULL DEFAULT '',
    fault_text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX case_requests_case ON case_requests (case_id);

CREATE TABLE certificate_library (
    certificate_id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE certificate_usage (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    certificate_id TEXT NOT NULL,
    requester_province TEXT NOT NULL,
    requester TEXT NOT NULL,
    purpose TEXT NOT NULL,
    fields TEXT NOT NULL,
    consent_grant_id TEXT,
    status TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX certificate_usage_certificate ON certificate_usage (certificate_id, seq);
CREATE TRIGGER certificate_usage_no_update BEFORE UPDATE ON certificate_usage
    FOR EACH ROW EXECUTE FUNCTION refuse_change('usage records are append-only');
CREATE TRIGGER certificate_usage_no_delete BEFORE DELETE ON certificate_usage
    FOR EACH ROW EXECUTE FUNCTION refuse_change('usage records are append-only');

CREATE TABLE revocation_lists (
    province TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    signed BYTEA NOT NULL,
    issued_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE platform_cursors (
    feed TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE platform_events (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    body TEXT
);

CREATE TABLE case_certificates (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    material TEXT NOT NULL,
    certificate_id TEXT NOT NULL,
    holder_code TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'rejected')),
    status TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    attestation TEXT NOT NULL DEFAULT '',
    checked_at DOUBLE PRECISION,
    PRIMARY KEY (case_id, material)
);
CREATE INDEX case_certificates_pending ON case_certificates (state) WHERE state = 'pending';

CREATE TABLE platform_applications (
    reference TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);

CREATE TABLE platform_outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('case', 'notice', 'refusal')),
    case_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')) DEFAULT 'pending',
    created_at DOUBLE PRECISION NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    settled_at DOUBLE PRECISION
);
CREATE INDEX platform_outbox_state ON platform_outbox (state, seq);

CREATE TABLE store_probe (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    written_at DOUBLE PRECISION NOT NULL,
    filler BYTEA NOT NULL
);

CREATE TABLE api_tokens (
    token_hash BYTEA PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('platform', 'operator', 'read')),
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE UNIQUE INDEX api_tokens_name_in_force ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_tree (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the evidence tree is append-only');
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the evidence tree is append-only');
"""

_V14 = """
-- Checkpoints of evidence logs and their cosignatures: schema._V14 (the comments there).
CREATE TABLE checkpoints (
    origin TEXT NOT NULL,
    witness TEXT NOT NULL,
    tree_size BIGINT NOT NULL CHECK (tree_size >= 0),
    root_hash BYTEA NOT NULL,
    checkpoint BYTEA NOT NULL,
    cosignature BYTEA,
    cosigned_at DOUBLE PRECISION,
    own BIGINT NOT NULL CHECK (own IN (0, 1)),
    PRIMARY KEY (origin, witness, tree_size)
);
"""

_V15 = """
-- Leases: schema._V15 (the comments there).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX leases_owner ON leases (owner);
"""

_V16 = """
-- Facts about the store itself: schema._V16 (the comments there). The same 32 hex digits.
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO store_meta (name, value) VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''));
"""

MIGRATIONS: MappingProxyType[int, str] = MappingProxyType(
    {
        BASELINE: _V13,
        14: _V14,
        15: _V15,
        16: _V16,
        # The next schema version goes here, as `17: _V17`, beside schema.MIGRATIONS's _V17.
    }
)
"""Version -> the script that brings a database from the version before it to that one."""

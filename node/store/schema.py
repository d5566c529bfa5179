"""The store's schema, as an ordered list of migrations.

Rules kept here:
- ``MIGRATIONS[i]`` takes a store from ``PRAGMA user_version`` ``i`` to ``i + 1``; the database
  module runs each in its own transaction together with the version bump, so a store is always
  exactly at one version.
- A migration, once released, is never edited: a change is a new migration appended at the end.
- Scripts hold no transaction statements of their own.
"""

from __future__ import annotations

_V1 = """
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    peer TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    payload_type TEXT NOT NULL,
    correlation_id TEXT NOT NULL DEFAULT '',
    envelope BLOB NOT NULL,
    digest BLOB NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    last_attempt_at REAL,
    delivered_at REAL,
    dead_at REAL,
    reply BLOB
);
-- AUTOINCREMENT, not plain rowid: a seq is never reused, so a peer's cursor that has moved
-- past a row can never be overtaken by a new row with the same number.
CREATE INDEX outbox_peer_state_seq ON outbox (peer, state, seq);

-- Every outbox row of `peer` with seq <= `seq` is settled (delivered or dead).
CREATE TABLE peer_cursor (
    peer TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);

CREATE TABLE inbox (
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    payload_type TEXT NOT NULL,
    envelope BLOB NOT NULL,
    reply BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (sender, message_id)
);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at REAL NOT NULL,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
-- The hash chain makes edits detectable; these make them impossible through the node's own
-- SQL, so a bug cannot rewrite evidence either.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
"""

_V2 = """
-- When an operator last put a parked item back in line: its age limit counts from then, so
-- a retried item is not parked again for being old before it is even sent.
ALTER TABLE outbox ADD COLUMN retried_at REAL;
"""

_V3 = """
-- The newest catalog each peer province announced (跨省通办 matters it handles).
CREATE TABLE catalogs (
    province TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""

_V4 = """
-- Cross-province cases this node takes part in, as the accepting (收件地) or the handling
-- (办理地) side. The applicant and materials live only in the signed submission.
CREATE TABLE cases (
    case_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('accepting', 'handling')),
    accepting TEXT NOT NULL,
    handling TEXT NOT NULL,
    matter_code TEXT NOT NULL,
    mode TEXT NOT NULL,
    promised_days INTEGER NOT NULL,
    submission BLOB NOT NULL,
    status TEXT NOT NULL,
    applied INTEGER NOT NULL DEFAULT 0,
    due_at REAL,
    submitted_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    concluded_at REAL,
    evaluation_level INTEGER,
    problem TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT UNIQUE,
    request_digest BLOB
);
CREATE INDEX cases_status ON cases (status, case_id);
CREATE INDEX cases_due ON cases (due_at) WHERE due_at IS NOT NULL;

-- Every numbered update of a case, with the signed message that proves it. applied = 0
-- marks an update held until the ones before it arrive.
CREATE TABLE case_updates (
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    sequence INTEGER NOT NULL,
    action TEXT NOT NULL,
    by_role TEXT NOT NULL,
    at REAL NOT NULL,
    detail TEXT NOT NULL,
    evidence BLOB NOT NULL,
    request BLOB,
    applied INTEGER NOT NULL,
    PRIMARY KEY (case_id, sequence)
);
CREATE TRIGGER case_updates_no_delete BEFORE DELETE ON case_updates
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only');
END;

-- Actions the accepting side asked of the handling node, until answered.
CREATE TABLE case_requests (
    message_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    action TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'refused')),
    requested_at REAL NOT NULL,
    answered_at REAL,
    fault_code TEXT NOT NULL DEFAULT '',
    fault_text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX case_requests_case ON case_requests (case_id);
"""

_V5 = """
-- The certificate library of a node whose province platform has no adapter configured
-- (operators load it with `yrd cert import`); with an adapter, the platform's library is read.
CREATE TABLE certificate_library (
    certificate_id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    updated_at REAL NOT NULL
);

-- 用证记录: every disclosure this node made about a certificate its province issued.
CREATE TABLE certificate_usage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    certificate_id TEXT NOT NULL,
    requester_province TEXT NOT NULL,
    requester TEXT NOT NULL,
    purpose TEXT NOT NULL,
    fields TEXT NOT NULL,
    consent_grant_id TEXT,
    status TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL
);
CREATE INDEX certificate_usage_certificate ON certificate_usage (certificate_id, seq);
CREATE TRIGGER certificate_usage_no_update BEFORE UPDATE ON certificate_usage
BEGIN
    SELECT RAISE(ABORT, 'usage records are append-only');
END;
CREATE TRIGGER certificate_usage_no_delete BEFORE DELETE ON certificate_usage
BEGIN
    SELECT RAISE(ABORT, 'usage records are append-only');
END;

-- The newest signed revocation list of each issuing province, this node's own included.
CREATE TABLE revocation_lists (
    province TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    signed BLOB NOT NULL,
    issued_at REAL NOT NULL,
    received_at REAL NOT NULL
);
"""

_V6 = """
-- What waits to be handed to this node's own province platform, in order: inbound cases
-- and notices of applied case updates. Written with the change that causes it.
CREATE TABLE platform_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('case', 'notice')),
    case_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')) DEFAULT 'pending',
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    settled_at REAL
);
CREATE INDEX platform_outbox_state ON platform_outbox (state, seq);

-- Where each of the platform's feeds was read up to (the adapter's opaque cursor).
CREATE TABLE platform_cursors (
    feed TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at REAL NOT NULL
);

-- Platform events already taken, so an event read twice is applied once.
CREATE TABLE platform_events (
    event_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at REAL NOT NULL
);
"""

_V7 = """
-- 免于提交: certificate materials of a case this node handles, verified by mutual
-- recognition before the case can be accepted; the attestation is kept with the case.
CREATE TABLE case_certificates (
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    material TEXT NOT NULL,
    certificate_id TEXT NOT NULL,
    holder_code TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'rejected')),
    status TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    attestation TEXT NOT NULL DEFAULT '',
    checked_at REAL,
    PRIMARY KEY (case_id, material)
);
CREATE INDEX case_certificates_pending ON case_certificates (state) WHERE state = 'pending';
"""

_V8 = """
-- A platform event the node could not apply yet (a certificate check still running) is
-- kept with its body and tried again, instead of holding up the rest of the feed.
ALTER TABLE platform_events ADD COLUMN body TEXT;
"""

_V9 = """
-- Applications entered at the platform that the federation refused, by the platform's
-- reference, so an application read twice is refused (and the platform told) once.
CREATE TABLE platform_applications (
    reference TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    at REAL NOT NULL
);

-- The platform outbox also carries those refusals (kind 'refusal', no case). SQLite cannot
-- change a CHECK constraint, so the table is rebuilt with its rows and their seqs; no row is
-- ever deleted from it, so the highest seq is also its AUTOINCREMENT mark.
CREATE TABLE platform_outbox_v9 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('case', 'notice', 'refusal')),
    case_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')) DEFAULT 'pending',
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    settled_at REAL
);
INSERT INTO platform_outbox_v9
    (seq, kind, case_id, payload, state, created_at, attempts, last_error, settled_at)
SELECT seq, kind, case_id, payload, state, created_at, attempts, last_error, settled_at
FROM platform_outbox;
DROP TABLE platform_outbox;
ALTER TABLE platform_outbox_v9 RENAME TO platform_outbox;
CREATE INDEX platform_outbox_state ON platform_outbox (state, seq);
"""

_V10 = """
-- One row the node rewrites to find out whether the store takes writes again after a full
-- disk or an I/O error, without touching any row that means something. Its filler is
-- rewritten with fresh pages each time, so the probe needs room as real writes do.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    written_at REAL NOT NULL,
    filler BLOB NOT NULL
);
"""

_V11 = """
-- Bearer tokens of the REST API, by the SHA-256 of the token: the token itself is shown once
-- when it is made and never stored. A revoked token keeps its row, so the name stays on
-- record; a name is unique among the tokens in force.
CREATE TABLE api_tokens (
    token_hash BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('platform', 'operator', 'read')),
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE UNIQUE INDEX api_tokens_name_in_force ON api_tokens (name) WHERE revoked_at IS NULL;
"""

_V12 = """
-- The evidence log as an RFC 9162 Merkle tree (node/store/log_tree.py): the hash of every
-- perfect subtree, 2^level leaves from leaf idx * 2^level. Appended with the entries it
-- covers; entries from before this table are folded in when the node starts.
CREATE TABLE audit_tree (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'the evidence tree is append-only');
END;
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'the evidence tree is append-only');
END;
"""

_V13 = """
-- Retention (yrd audit purge): an envelope or reply entry past its retention period loses its
-- body (personal data) and gets purged_at; every other column, its chain hash and its leaf in
-- audit_tree stay, so the tree and every other entry's proof still verify. That one change
-- is the only UPDATE the log takes; the purge itself is recorded as a 'purge' entry.
ALTER TABLE audit ADD COLUMN purged_at REAL;
DROP TRIGGER audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
WHEN NOT (
    OLD.purged_at IS NULL AND NEW.purged_at IS NOT NULL AND NEW.body = x''
    AND OLD.kind IN ('envelope', 'reply')
    AND NEW.seq = OLD.seq AND NEW.recorded_at = OLD.recorded_at
    AND NEW.direction = OLD.direction AND NEW.peer = OLD.peer
    AND NEW.message_id = OLD.message_id AND NEW.kind = OLD.kind
    AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
)
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
"""

_V14 = """
-- Checkpoints of evidence logs and their cosignatures (node/store/checkpoints.py), one row
-- per log (origin), witness and tree size, both named by province. own = 1: a checkpoint of
-- this node's own log, stored before it is sent to the witness, cosignature NULL until the
-- witness answers. own = 0: a peer's checkpoint this node checked and cosigned as witness;
-- the latest per origin is what the next one must extend. checkpoint and cosignature hold the
-- serialized Checkpoint and Cosignature messages, each signed on its own.
CREATE TABLE checkpoints (
    origin TEXT NOT NULL,
    witness TEXT NOT NULL,
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
    root_hash BLOB NOT NULL,
    checkpoint BLOB NOT NULL,
    cosignature BLOB,
    cosigned_at REAL,
    own INTEGER NOT NULL CHECK (own IN (0, 1)),
    PRIMARY KEY (origin, witness, tree_size)
);
"""

_V15 = """
-- Leases (node/store/leases.py): which replica of this node does a job only one process may
-- do at a time (sending one peer its outbox, reading or feeding the province platform).
-- owner is a replica id unique to one process; a lease is free once expires_at has passed.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    acquired_at REAL NOT NULL
);
CREATE INDEX leases_owner ON leases (owner);
"""

_V16 = """
-- Facts about the store itself, one row each. store_id: random, made with the store (or by
-- this migration, for a store made before it), never changed. Replicas of a node compare
-- theirs at start (node/runtime/replicas.py): the same id is the same store. A copy of a
-- store (a restored backup) keeps its id.
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO store_meta (name, value) VALUES ('store_id', lower(hex(randomblob(16))));
"""

MIGRATIONS: tuple[str, ...] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _V5,
    _V6,
    _V7,
    _V8,
    _V9,
    _V10,
    _V11,
    _V12,
    _V13,
    _V14,
    _V15,
    _V16,
)
"""Migration ``i`` brings ``user_version`` from ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The version this code reads and writes."""

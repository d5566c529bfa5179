"""The evidence log (留痕): append-only, hash-chained, and checkable by anyone with the file.

Rules kept here:
- Entries are only ever appended. Triggers refuse UPDATE and DELETE, and each entry's hash
  covers its predecessor's hash and all of its own fields, so an edit made behind the node's
  back (triggers dropped) breaks the chain at the edited entry.
- ``envelope`` and ``reply`` entries hold a serialized ``pb.Envelope`` exactly as sent or
  received; ``manifest`` entries hold the signed manifest file a node loaded. A signature is
  checked against the keys of the manifests recorded *before* it in the chain, revoked keys
  included, so old evidence stays verifiable after a key is retired.
- ``seq`` numbers are never reused (AUTOINCREMENT's high-water mark decides the next one), so
  rows removed from the end leave a gap that the next append makes visible.
- ``verify_chain`` stops at the first bad entry and says which one and why.
- A cosigned checkpoint counts only under its signers' own keys (``Signers``): the
  checkpoint's origin's, the cosignature's witness's (another member), each in its window
  when it signed and not revoked by then (from the first manifest entry revoking it). The
  manifests come from the log itself, so they are trusted as far as the chain vouches for
  them unless ``governance_keys`` are given (``yrd audit verify --mesh`` gives the node's).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from node.protocol.envelope import statement_of
from node.protocol.merkle import MerkleTree
from node.store import checkpoints, log_tree, postgres
from node.store.connection import Connection, DriverError, PostgresUrl, StoreLocation
from node.store.database import StoreError
from node.store.log_tree import GENESIS, entry_hash
from node.store.schema import SCHEMA_VERSION
from node.trust.keys import VerifyKey
from node.trust.manifest import (
    MANIFEST_PREFIX,
    KeyEntry,
    Manifest,
    ManifestError,
    canonical_json,
    parse_manifest_body,
)
from node.wire import pb

DIRECTIONS = frozenset({"sent", "received", "local"})
KINDS = frozenset({"envelope", "reply", "manifest", "purge"})
PURGEABLE = ("envelope", "reply")
"""Entries whose bodies a purge may remove: messages, which carry personal data."""

# Interpolated into queries as a fixed fragment; values are always bound (hence noqa S608).
_COLUMNS = "seq, recorded_at, direction, peer, message_id, kind, body, prev_hash, hash"
_Row = tuple[int, float, str, str, str, str, bytes, bytes, bytes]
"""An entry's columns, in ``_COLUMNS`` order."""
_READ = _COLUMNS + ", purged_at"
"""What is read of an entry: its columns, and when its body was purged (or NULL)."""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    recorded_at: float
    direction: str
    """``sent``, ``received`` or ``local`` (a manifest this node loaded)."""
    peer: str
    message_id: str
    kind: str
    """``envelope``, ``reply`` or ``manifest``."""
    body: bytes
    prev_hash: bytes
    hash: bytes
    purged_at: float | None = None
    """When a purge removed the body (retention); the rest of the entry stays."""


@dataclass(frozen=True)
class AuditReport:
    entries: int
    """Entries that verified (all of them when ``ok``)."""
    ok: bool
    first_bad_seq: int | None
    reason: str
    """A sentence for the operator: what was checked, or why entry ``first_bad_seq`` is bad."""
    witnesses: tuple[str, ...] = ()
    """The provinces whose cosigned checkpoints of this log were checked against it."""
    checkpoints: int = 0
    """How many cosigned checkpoints were checked."""
    last_bad_seq: int | None = None
    """When the entries verify alone but not against the witnesses' checkpoints: the first
    difference lies in ``first_bad_seq`` to this entry (entries before ``first_bad_seq``
    match a cosigned checkpoint; one ending here does not). Which entry exactly cannot be
    told without the original entries."""


class Record(NamedTuple):
    """An entry to append, before the chain gives it its ``seq`` and hashes."""

    direction: str
    peer: str
    message_id: str
    kind: str
    body: bytes
    recorded_at: float


def append(
    conn: Connection,
    *,
    direction: str,
    peer: str,
    message_id: str,
    kind: str,
    body: bytes,
    recorded_at: float,
) -> AuditEntry:
    """Add an entry at the end of the chain (inside a ``Database.write`` job)."""
    record = Record(direction, peer, message_id, kind, body, recorded_at)
    return AuditEntry(*_append_rows(conn, (record,))[0])


def append_many(conn: Connection, records: Sequence[Record]) -> None:
    """Add entries at the end of the chain, in order (inside a ``Database.write`` job): one
    read of the chain's head and one statement for all of them."""
    if records:
        _append_rows(conn, records)


def _append_rows(conn: Connection, records: Sequence[Record]) -> list[_Row]:
    for record in records:
        if record.direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be one of {sorted(DIRECTIONS)}, not {record.direction!r}"
            )
        if record.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {record.kind!r}")
    # The high-water mark, not the last row, decides the next seq: see the module docstring.
    log_tree.hold_head(conn)
    high, last = conn.execute(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'audit'), "
        "(SELECT hash FROM audit ORDER BY seq DESC LIMIT 1)"
    ).fetchone()
    seq = 0 if high is None else int(high)
    prev_hash = GENESIS if last is None else bytes(last)
    rows: list[_Row] = []
    for direction, peer, message_id, kind, body, recorded_at in records:
        seq += 1
        recorded_at = float(recorded_at)
        digest = entry_hash(
            prev_hash,
            seq=seq,
            recorded_at=recorded_at,
            direction=direction,
            peer=peer,
            message_id=message_id,
            kind=kind,
            body=body,
        )
        rows.append((seq, recorded_at, direction, peer, message_id, kind, body, prev_hash, digest))
        prev_hash = digest
    conn.executemany(
        f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        rows,
    )
    # The tree grows in the same transaction: it never covers an entry that is not durable.
    first_seq = rows[0][0]
    if log_tree.tree_size(conn) == first_seq - 1:
        log_tree.append_leaves(conn, first_seq - 1, [_leaf(row) for row in rows])
    else:
        log_tree.catch_up(conn)
    return rows


def _leaf(row: _Row) -> bytes:
    return log_tree.leaf_of(log_tree.EntryFields(*row[:7]))


def _entry(row: Any) -> AuditEntry | None:
    """The row (``_READ``) as an entry, or None when a column holds the wrong type (edited
    by hand)."""
    seq, recorded_at, direction, peer, message_id, kind, body, prev_hash, digest, purged = row
    texts_ok = all(isinstance(v, str) for v in (direction, peer, message_id, kind))
    blobs_ok = all(isinstance(v, bytes) for v in (body, prev_hash, digest))
    purged_ok = purged is None or isinstance(purged, float)
    if (
        not (isinstance(seq, int) and isinstance(recorded_at, float) and texts_ok and blobs_ok)
        or not purged_ok
    ):
        return None
    return AuditEntry(*row)


def _manifest_keys(
    body: bytes, anchors: dict[str, VerifyKey] | None
) -> tuple[Manifest | None, str]:
    """The manifest an entry holds, or None and the reason it is unusable."""
    try:
        document = json.loads(body)
        if not isinstance(document, dict) or "manifest" not in document:
            return None, 'manifest entry has no "manifest" object'
        manifest = parse_manifest_body(document["manifest"])
    except (ValueError, ManifestError) as exc:
        return None, f"manifest entry is not a readable manifest: {exc}"
    if anchors is not None:
        signature = document.get("signature")
        key_id = str(signature.get("key_id")) if isinstance(signature, dict) else ""
        anchor = anchors.get(key_id)
        if anchor is None or not isinstance(signature, dict):
            return None, f"manifest is not signed by a governance key (signed by {key_id!r})"
        try:
            value = base64.b64decode(str(signature.get("value")), validate=True)
        except binascii.Error:
            return None, "manifest signature is not base64"
        if not anchor.verify(value, MANIFEST_PREFIX + canonical_json(document["manifest"])):
            return None, f"manifest signature does not verify under {key_id}"
    return manifest, ""


@dataclass
class Signers:
    """Each member's keys as the manifests the log records list them: who may sign
    checkpoints and cosignatures, and from when a key no longer may."""

    listed: dict[str, dict[str, KeyEntry]] = field(default_factory=dict)
    """By node id, then key id: the latest listing of each key decides its window."""
    provinces: dict[str, str] = field(default_factory=dict)
    """Each member's province by node id."""
    revoked_since: dict[tuple[str, str], float] = field(default_factory=dict)
    """(node id, key id): when the log first recorded a manifest listing the key revoked.
    A manifest carries no revocation time, so this is the one the log can vouch for; what
    the key signed before stays evidence (a key is revoked when retired after a rotation)."""

    def add(self, manifest: Manifest, recorded_at: float) -> None:
        for member in manifest.members:
            self.provinces[member.node_id] = member.province
            self.listed.setdefault(member.node_id, {}).update({k.key_id: k for k in member.keys})
            for key in member.keys:
                if key.revoked:
                    self.revoked_since.setdefault((member.node_id, key.key_id), recorded_at)

    def of(self, node_id: str) -> dict[str, VerifyKey]:
        """Every key listed for one member, whatever its window."""
        return {key_id: k.verify_key for key_id, k in self.listed.get(node_id, {}).items()}

    def keys_at(self, node_id: str, when: float) -> Mapping[str, VerifyKey] | None:
        """``KeysAt``: a member's keys in their window at ``when`` and not revoked by then."""
        entries = self.listed.get(node_id)
        if entries is None:
            return None
        return {
            key_id: k.verify_key
            for key_id, k in entries.items()
            if k.not_before <= when <= k.not_after
            and when < self.revoked_since.get((node_id, key_id), math.inf)
        }


def _signature_problem(body: bytes, keys: dict[str, VerifyKey]) -> str:
    envelope = pb.Envelope()
    try:
        envelope.ParseFromString(body)
    except DecodeError:
        return "body is not a protobuf Envelope"
    key = keys.get(envelope.key_id)
    if key is None:
        return f"key {envelope.key_id or '(none)'} is not in any manifest recorded before it"
    statement = statement_of(envelope)
    if statement is None:
        return "its batch proof does not place the message in a tree of the size it names"
    if not key.verify(envelope.signature, statement):
        return f"signature does not verify under {envelope.key_id}"
    return ""


def verify_chain(
    conn: Connection,
    *,
    governance_keys: Iterable[VerifyKey] | None = None,
    witnessed: Sequence[checkpoints.Cosigned] = (),
) -> AuditReport:
    """Recompute every hash and link, and check every signature, in ``seq`` order; then the
    tree against every cosigned checkpoint of this log held here, and ``witnessed`` (the
    ones its peers hold, read from their stores).

    With ``governance_keys``, each recorded manifest must also carry a valid governance
    signature; without, manifests are trusted as far as the chain vouches for them."""
    anchors = None if governance_keys is None else {k.key_id: k for k in governance_keys}
    keys: dict[str, VerifyKey] = {}
    signers = Signers()
    leaves: list[bytes] = []
    prev_seq = 0
    prev_hash = GENESIS
    good = 0

    def bad(seq: int, problem: str) -> AuditReport:
        return AuditReport(good, False, seq, problem)

    purged: list[int] = []
    """Entries whose body a purge removed; each must be named by a later purge entry."""
    messages: dict[int, tuple[float, bool]] = {}
    """Each message entry so far (the ones a purge may name): when recorded, and if purged."""
    named: set[int] = set()
    """The entries the purge entries so far name."""
    for row in conn.execute(f"SELECT {_READ} FROM audit ORDER BY seq"):  # noqa: S608
        entry = _entry(row)
        if entry is None:
            return bad(int(row[0]), "a column holds a value of the wrong type")
        if entry.seq != prev_seq + 1:
            missing = (
                f"entry {prev_seq + 1} is missing"
                if entry.seq == prev_seq + 2
                else f"entries {prev_seq + 1} to {entry.seq - 1} are missing"
            )
            return bad(entry.seq, f"gap in sequence: {missing}")
        if entry.prev_hash != prev_hash:
            if prev_seq == 0:
                return bad(entry.seq, "prev_hash of the first entry is not the genesis hash")
            return bad(entry.seq, f"prev_hash does not link to entry {prev_seq}")
        if entry.direction not in DIRECTIONS or entry.kind not in KINDS:
            return bad(entry.seq, f"unknown direction {entry.direction!r} or kind {entry.kind!r}")
        if entry.purged_at is not None:
            # The body is gone: its hash and its leaf stand as recorded, vouched for by the
            # link from the next entry, the tree, and the purge entry that must name it.
            if entry.body or entry.kind not in PURGEABLE:
                return bad(entry.seq, "marked purged but holds a body, or is not a message")
            purged.append(entry.seq)
            messages[entry.seq] = (entry.recorded_at, True)
            leaf = log_tree.stored_leaf(conn, entry.seq - 1)
            if leaf is None:
                return bad(entry.seq, "purged, and the evidence tree has no leaf for it")
            good += 1
            prev_seq, prev_hash = entry.seq, entry.hash
            leaves.append(leaf)
            continue
        recomputed = entry_hash(
            entry.prev_hash,
            seq=entry.seq,
            recorded_at=entry.recorded_at,
            direction=entry.direction,
            peer=entry.peer,
            message_id=entry.message_id,
            kind=entry.kind,
            body=entry.body,
        )
        if recomputed != entry.hash:
            return bad(entry.seq, "hash does not match its content")
        if entry.kind == "purge":
            problem = _purge_problem(entry, messages, named)
            if problem:
                return bad(entry.seq, problem)
        elif entry.kind == "manifest":
            manifest, problem = _manifest_keys(entry.body, anchors)
            if manifest is None:
                return bad(entry.seq, problem)
            keys.update(manifest.all_keys())
            signers.add(manifest, entry.recorded_at)
        else:
            problem = _signature_problem(entry.body, keys)
            if problem:
                return bad(entry.seq, problem)
        if entry.kind in PURGEABLE:
            messages[entry.seq] = (entry.recorded_at, False)
        good += 1
        prev_seq = entry.seq
        prev_hash = entry.hash
        leaves.append(_leaf(row[:9]))
    unrecorded = [seq for seq in purged if seq not in named]
    if unrecorded:
        return AuditReport(
            good,
            False,
            unrecorded[0],
            f"entry {unrecorded[0]} has lost its body, and no purge entry names it",
        )
    high = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
    if high is not None and int(high[0]) > prev_seq:
        # Only catches a deletion that left SQLite's high-water mark alone; a thorough
        # attacker can lower it too, which only an external anchor of the head would reveal.
        return AuditReport(
            good,
            False,
            prev_seq + 1,
            f"the log once reached entry {high[0]} but ends at entry {prev_seq}; entries at its "
            "end were deleted",
        )
    tree_problem = log_tree.disagreement(conn, leaves)
    if tree_problem is not None:
        seq, problem = tree_problem
        return AuditReport(good, False, seq, problem)
    # Who cosigned a row is the witness its (verified) cosignature names, not the row's
    # witness column: a row copied under another province's name names the one who signed.
    held = [
        replace(h, witness=signers.provinces.get(h.cosignature.witness, h.witness))
        for h in [*_own_cosigned(conn), *witnessed]
    ]
    checked = checkpoints.divergences(MerkleTree(leaves), held, signers.keys_at)
    witnesses = tuple(sorted({h.witness for h, _ in checked}))
    parted = [d for _, d in checked if d is not None]
    if parted:
        # The bound comes from heads that verify: where the first that does not match ends.
        bounded = [d for d in parted if d.last_seq is not None]
        first = min(bounded or parted, key=lambda d: d.first_seq)
        last = min((d.last_seq for d in bounded if d.last_seq is not None), default=None)
        return AuditReport(
            good, False, first.first_seq, first.reason, witnesses, len(checked), last
        )
    return AuditReport(
        good,
        True,
        None,
        f"{good} entries; every hash links, every signature verifies, the evidence tree "
        f"matches the entries and {len(checked)} cosigned checkpoints are prefixes of it",
        witnesses,
        len(checked),
    )


def _own_cosigned(conn: Connection) -> list[checkpoints.Cosigned]:
    """The cosigned checkpoints of this store's own log (none in a SQLite store from before
    them; PostgreSQL stores began after them, at a baseline that has the table)."""
    if not isinstance(conn, postgres.PgConnection):
        (tables,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'"
        ).fetchone()
        if not tables:
            return []
    return checkpoints.cosigned(conn, own=True)


@dataclass(frozen=True)
class Purged:
    entries: int
    """How many entries lost their bodies."""
    record: AuditEntry | None
    """The purge entry that names them; None when there was nothing to purge."""


def purge(conn: Connection, *, before: float, now: float) -> Purged:
    """Remove the bodies of message entries recorded before ``before`` (retention, inside a
    write job) and record which in a ``purge`` entry; leaves, hashes and proofs stay.
    A purge only reaches into the past (``before`` after ``now`` is a ValueError): ``verify``
    refuses a purge entry that reaches past its own time."""
    if before > now:
        raise ValueError("a purge only reaches into the past: 'before' is after 'now'")
    seqs = [
        int(seq)
        for (seq,) in conn.execute(
            "SELECT seq FROM audit WHERE recorded_at < ? AND purged_at IS NULL "
            "AND kind IN ('envelope', 'reply') ORDER BY seq",
            (before,),
        )
    ]
    if not seqs:
        return Purged(0, None)
    conn.executemany(
        "UPDATE audit SET body = ?, purged_at = ? WHERE seq = ?", [(b"", now, s) for s in seqs]
    )
    ranges: list[list[int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    body = json.dumps({"before": before, "entries": len(seqs), "seqs": ranges}).encode()
    record = append(
        conn,
        direction="local",
        peer="",
        message_id=f"purge-{now:.6f}",
        kind="purge",
        body=body,
        recorded_at=now,
    )
    return Purged(len(seqs), record)


def _purge_problem(
    entry: AuditEntry, messages: dict[int, tuple[float, bool]], named: set[int]
) -> str:
    """Why a purge entry is not one ``purge`` could have written after the entries before it
    (empty when it is), adding the entries it names to ``named``.

    A purge removes the body of every message entry recorded before its ``before`` that no
    earlier purge removed, and names exactly those, in ascending ranges: so each entry it
    names is an earlier message entry, recorded before ``before``, purged, and named by no
    other purge, and every earlier message entry recorded before ``before`` is named by it
    or an earlier purge. A hand-made purge entry that makes one body vanish fails this."""
    try:
        document = json.loads(entry.body)
        before = float(document["before"])
        count = int(document["entries"])
        ranges = [(int(a), int(b)) for a, b in document["seqs"]]
    except (ValueError, KeyError, TypeError):
        return "purge entry does not name the entries it purged"
    if before > entry.recorded_at:
        return "purge entry reaches past its own time (its 'before' is after it was recorded)"
    last = 0
    mine: list[int] = []
    for low, high in ranges:
        if not last < low <= high:
            return "purge entry names its entries out of order or twice"
        last = high
        mine += range(low, high + 1)
    if count != len(mine):
        return f"purge entry counts {count} entries but names {len(mine)}"
    for seq in mine:
        if seq not in messages:
            return f"purge entry names entry {seq}, which is no earlier message entry"
        recorded_at, purged = messages[seq]
        if recorded_at >= before:
            return (
                f"purge entry names entry {seq}, recorded at or after the purge's 'before' "
                "(a purge only removes older entries)"
            )
        if not purged:
            return f"purge entry names entry {seq}, which still holds its body"
        if seq in named:
            return f"purge entry names entry {seq}, which an earlier purge named"
    named.update(mine)
    for seq, (recorded_at, _) in messages.items():
        if recorded_at < before and seq not in named:
            return (
                f"purge entry leaves entry {seq} out, though it was recorded before the "
                "purge's 'before': it did not purge what it says it purged"
            )
    return ""


def message_entries(conn: Connection, message_id: str) -> list[AuditEntry]:
    """The envelope and reply entries of one message, in ``seq`` order."""
    rows = conn.execute(
        f"SELECT {_READ} FROM audit WHERE message_id = ? AND kind IN ('envelope', 'reply') "  # noqa: S608
        "ORDER BY seq",
        (message_id,),
    )
    return [entry for entry in map(_entry, rows) if entry is not None]


def recorded_keys(conn: Connection) -> tuple[dict[str, VerifyKey], Signers]:
    """Every key listed by a manifest the log holds, revoked or not; and each member's."""
    keys: dict[str, VerifyKey] = {}
    signers = Signers()
    for body, recorded_at in conn.execute(
        "SELECT body, recorded_at FROM audit WHERE kind = 'manifest' ORDER BY seq"
    ):
        manifest, _problem = _manifest_keys(bytes(body), None)
        if manifest is not None:
            keys.update(manifest.all_keys())
            signers.add(manifest, float(recorded_at))
    return keys, signers


@contextmanager
def read_only(location: StoreLocation) -> Iterator[Connection]:
    """A read-only connection to a store (safe while the node runs); every database error
    becomes a StoreError naming the store."""
    conn: sqlite3.Connection | postgres.PgConnection
    if isinstance(location, PostgresUrl):
        conn = postgres.connect(location, read_only=True)
    else:
        path = Path(location)
        if not path.is_file():
            raise StoreError(f"there is no store file at {path}")
        try:
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store file {path}: {exc}") from exc
    try:
        _check_version(conn, location)
        yield conn
    except DriverError as exc:
        raise StoreError(f"cannot read the audit log in {location}: {exc}") from exc
    finally:
        conn.close()


def _check_version(conn: Connection, location: StoreLocation) -> None:
    """Refuse a store whose schema is not the one this code reads, saying what to do: the
    tables and columns read here are the current version's, and an older store is brought up
    to date by its node (at start), never by a read-only reader."""
    if isinstance(location, PostgresUrl):
        row = conn.execute("SELECT version FROM store_schema").fetchone()
        version = -1 if row is None else int(row[0])
    else:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {location} has schema version {version}, newer than version "
            f"{SCHEMA_VERSION} that this yrd reads; it was written by a newer node: use that "
            "version's yrd"
        )
    if version < 1:
        raise StoreError(f"{location} is not a node store (schema version {version})")
    raise StoreError(
        f"store {location} has schema version {version}, older than version {SCHEMA_VERSION} "
        "that this yrd reads: start its node once with this version (a node brings its store "
        "up to date at start, keeping everything), then run this again"
    )


def verify_store(
    location: StoreLocation,
    *,
    governance_keys: Iterable[VerifyKey] | None = None,
    witnessed: Sequence[checkpoints.Cosigned] = (),
) -> AuditReport:
    """``verify_chain`` on a store, opened read-only (safe while the node runs)."""
    with read_only(location) as conn:
        return verify_chain(conn, governance_keys=governance_keys, witnessed=witnessed)

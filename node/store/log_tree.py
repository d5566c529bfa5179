"""The evidence log as an RFC 9162 Merkle tree, kept in the store beside the entries.

Rules kept here:
- Leaf ``i`` is evidence entry ``seq = i + 1``; its data is the entry's canonical bytes
  (``LEAF_DOMAIN`` and ``entry_bytes``: seq, time, direction, peer, message id, kind and
  body, each length-prefixed), hashed as an RFC 9162 leaf (``leaf_of``).
- The store keeps the hash of every *perfect* subtree (``2**level`` leaves starting at a
  multiple of ``2**level``) in ``audit_tree``: appending a leaf adds it and the nodes it
  completes, at most ``log2(n)`` rows. Every root, inclusion path and consistency proof, of
  the current size or of any earlier one, is built from those rows (``StoredTree``), so a
  checkpoint signed long ago can still be proven to extend into today's tree.
- Leaves are added in the same transaction as their entries (``audit.append_many``), so the
  tree never covers an entry that is not durable. A store from before the tree existed has
  its entries folded in as the first leaves (``catch_up``), once, when the node starts.
  A log with entries removed is never covered past the gap, and that never stops the node;
  the entries left uncovered are counted (``uncovered``: ``yrd_evidence_entries_uncovered``,
  alert ``YrdEvidenceUncovered``).
- Like the entries, tree rows are only appended: triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Iterable
from typing import NamedTuple

from node.protocol.merkle import MerkleTree, TreeView, leaf_hash, node_hash, sha256
from node.store.connection import Connection
from node.store.database import StoreCorrupt

log = logging.getLogger(__name__)

LEAF_DOMAIN = b"yrd.evidence.v1\x00"
_SEQ_AND_TIME = struct.Struct(">qd")


def field_bytes(data: bytes) -> bytes:
    """A field, length-prefixed so no two different sequences of fields encode alike."""
    return struct.pack(">Q", len(data)) + data


class EntryFields(NamedTuple):
    """An evidence entry's own fields, in the order they are encoded."""

    seq: int
    recorded_at: float
    direction: str
    peer: str
    message_id: str
    kind: str
    body: bytes


def entry_bytes(entry: EntryFields) -> bytes:
    """An entry's fields, canonically: seq and the exact IEEE-754 time (as SQLite stores
    it), then each text and the body length-prefixed. Shared by the chain's hash and the
    tree's leaf, each under its own domain tag."""
    texts = (entry.direction, entry.peer, entry.message_id, entry.kind)
    return (
        _SEQ_AND_TIME.pack(entry.seq, float(entry.recorded_at))
        + b"".join(field_bytes(text.encode("utf-8")) for text in texts)
        + field_bytes(bytes(entry.body))
    )


GENESIS = bytes(32)
"""The ``prev_hash`` of the log's first entry."""
HASH_DOMAIN = b"yrd.audit.v1\x00"
"""The domain tag of an entry's chain hash (the linear chain of the log before the tree)."""


def entry_hash(
    prev_hash: bytes,
    *,
    seq: int,
    recorded_at: float,
    direction: str,
    peer: str,
    message_id: str,
    kind: str,
    body: bytes,
) -> bytes:
    """SHA-256 over a domain tag and every field, each length-prefixed so no two different
    entries encode alike; ``recorded_at`` as its exact IEEE-754 double, as SQLite stores it."""
    return hashlib.sha256(
        HASH_DOMAIN
        + field_bytes(prev_hash)
        + entry_bytes(EntryFields(seq, recorded_at, direction, peer, message_id, kind, body))
    ).digest()


def leaf_of(entry: EntryFields) -> bytes:
    """The RFC 9162 leaf hash of an entry."""
    return leaf_hash(LEAF_DOMAIN + entry_bytes(entry))


def hold_head(conn: Connection) -> None:
    """Lock the evidence log's head until the caller's transaction ends (inside a write job),
    before reading it to append: where several writers share one database (replicas on
    PostgreSQL) a second one waits here, then reads the first one's entries and tree, so the
    chain and the tree grow as one. The head is the log's high-water mark row (``audit``);
    on SQLite the write transaction holds the whole store anyway."""
    conn.execute("UPDATE sqlite_sequence SET seq = seq WHERE name = 'audit'")


def tree_size(conn: Connection) -> int:
    """How many entries the stored tree covers."""
    (last,) = conn.execute("SELECT max(idx) FROM audit_tree WHERE level = 0").fetchone()
    return 0 if last is None else int(last) + 1


def append_leaves(conn: Connection, first: int, hashes: Iterable[bytes]) -> int:
    """Add leaf hashes as leaves ``first, first + 1, …`` and every perfect subtree they
    complete (inside the caller's transaction); return the new size."""
    made: dict[tuple[int, int], bytes] = {}

    def node(level: int, index: int) -> bytes:
        known = made.get((level, index))
        if known is not None:
            return known
        row = conn.execute(
            "SELECT hash FROM audit_tree WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise StoreCorrupt(f"evidence tree node {level}/{index} is missing")
        return bytes(row[0])

    size = first
    for digest in hashes:
        level, index = 0, size
        made[(level, index)] = digest
        while index & 1:
            digest = node_hash(node(level, index - 1), digest)
            level, index = level + 1, index >> 1
            made[(level, index)] = digest
        size += 1
    conn.executemany(
        "INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)",
        [(level, index, digest) for (level, index), digest in made.items()],
    )
    return size


def catch_up(conn: Connection) -> int:
    """Fold entries the tree does not cover yet into it, in seq order (a store from before
    the tree, inside a write job); return how many were added. Each entry's chain link and
    hash are verified first, so the old chain is checked once as it becomes leaves: the tree
    stops before the first gap or broken link (appends go on, uncovered), `yrd audit verify`
    names that entry, and the peers see this node's checkpoints stall."""
    hold_head(conn)  # a replica starting while another appends
    size = tree_size(conn)
    if size == 0:
        prev = GENESIS
    else:
        found = conn.execute("SELECT hash FROM audit WHERE seq = ?", (size,)).fetchone()
        prev = bytes(found[0]) if found is not None else b""
    rows = conn.execute(
        "SELECT seq, recorded_at, direction, peer, message_id, kind, body, prev_hash, hash, "
        "purged_at FROM audit WHERE seq > ? ORDER BY seq",
        (size,),
    ).fetchall()
    hashes: list[bytes] = []
    for row in rows:
        seq = size + len(hashes) + 1
        fields = EntryFields(*row[:7])
        if row[0] != seq:
            problem = "missing"
        elif bytes(row[7]) != prev:
            problem = "does not link to the entry before it"
        elif row[9] is not None:
            problem = "purged before the tree covered it"
        elif entry_hash(bytes(row[7]), **fields._asdict()) != bytes(row[8]):
            problem = "hash does not match its content"
        else:
            hashes.append(leaf_of(fields))
            prev = bytes(row[8])
            continue
        log.error(
            "the evidence log's tree cannot grow past a bad entry",
            extra={"seq": seq, "problem": problem},
        )
        break
    append_leaves(conn, size, hashes)
    return len(hashes)


def uncovered(conn: Connection) -> int:
    """How many entries the tree does not cover: none, unless ``catch_up`` stopped at a gap
    or a broken link (then every later entry, for good)."""
    (count,) = conn.execute(
        "SELECT count(*) FROM audit WHERE seq > ?", (tree_size(conn),)
    ).fetchone()
    return int(count)


def stored_leaf(conn: Connection, index: int) -> bytes | None:
    """Leaf ``index`` as stored (a purged entry's only trace of its body)."""
    row = conn.execute(
        "SELECT hash FROM audit_tree WHERE level = 0 AND idx = ?", (index,)
    ).fetchone()
    return None if row is None else bytes(row[0])


class StoredTree(TreeView):
    """The evidence tree as the store holds it, read through ``conn``."""

    def __init__(self, conn: Connection, size: int | None = None) -> None:
        super().__init__(tree_size(conn) if size is None else size, sha256)
        self._conn = conn

    def perfect(self, level: int, index: int) -> bytes:
        row = self._conn.execute(
            "SELECT hash FROM audit_tree WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise LookupError(f"the store holds no evidence tree node {level}/{index}")
        return bytes(row[0])


def stored_nodes(conn: Connection) -> Iterable[tuple[int, int, bytes]]:
    """Every stored node as (level, index, hash), leaves first, each level left to right."""
    for level, index, digest in conn.execute(
        "SELECT level, idx, hash FROM audit_tree ORDER BY level, idx"
    ):
        yield int(level), int(index), bytes(digest)


def disagreement(conn: Connection, leaves: list[bytes]) -> tuple[int, str] | None:
    """Where the stored tree and the entries' leaf hashes part: the first entry (seq) it
    concerns and a sentence; None when every stored node is what the entries make."""
    expected = MerkleTree(leaves)
    nodes = 0
    for level, index, digest in stored_nodes(conn):
        first = index << level
        if first + (1 << level) > len(leaves):
            return first + 1, (
                f"the evidence tree has a node over entries {first + 1} to "
                f"{first + (1 << level)}, past the log's {len(leaves)} entries"
            )
        if expected.perfect(level, index) != digest:
            span = (
                f"entry {first + 1}"
                if level == 0
                else (f"entries {first + 1} to {first + (1 << level)}")
            )
            return first + 1, f"the evidence tree does not match {span}"
        nodes += 1
    size = tree_size(conn)
    if size < len(leaves):
        return size + 1, f"the evidence tree covers {size} of the log's {len(leaves)} entries"
    if nodes != sum(len(leaves) >> level for level in range(len(leaves).bit_length())):
        return 1, "the evidence tree is missing nodes"
    return None

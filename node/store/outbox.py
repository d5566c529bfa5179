"""The outbox: every message this node has promised to deliver, per peer, in order.

Rules kept here:
- A message enters as ``pending`` in the same transaction as the change that caused it, and
  leaves ``pending`` only as ``delivered`` (with the peer's signed reply) or ``dead``
  (parked for an operator, with the reason). Nothing is ever deleted here.
- ``seq`` orders a peer's messages; workers send pending rows in ``seq`` order.
- Each peer has a persisted cursor: every row of that peer at or below it is settled. It moves
  forward only over a contiguous run of settled rows, and moves back only when an operator
  retries a dead-lettered row below it, so catch-up after a restart starts at the cursor.

Functions take a ``Connection``: writes run inside ``Database.write`` jobs, reads on
either connection. They do not commit.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from node.store.connection import Connection
from node.store.database import DuplicateEntry

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STATES = (PENDING, DELIVERED, DEAD)

EXPIRED_REASON = "expired: not delivered before its deadline"
_MAX_SEQ = 2**63 - 1

# Queries interpolate only fixed fragments like this one; every value is a bound parameter
# (hence the S608 noqa marks).
_COLUMNS = (
    "seq, peer, message_id, payload_type, correlation_id, envelope, digest, created_at, state, "
    "attempts, last_error, last_attempt_at, delivered_at, dead_at, reply"
)


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    peer: str
    message_id: str
    payload_type: str
    correlation_id: str
    envelope: bytes
    """The serialized Envelope: unsigned while queued, then as it went out (with its batch
    signature and proof) once the peer's reply is recorded."""
    digest: bytes
    """SHA-256 of the message bytes inside the envelope; the peer's receipt must name it."""
    created_at: float
    state: str
    attempts: int
    """Failed attempts since the item was created or last retried by an operator."""
    last_error: str
    last_attempt_at: float | None
    delivered_at: float | None
    dead_at: float | None = None
    """When the item was dead-lettered (None unless ``state`` is dead)."""
    reply: bytes | None = None
    """The peer's signed reply that settled the item: its receipt, or the fault that parked it."""


def _item(row: Any) -> OutboxItem:
    # Column order matches the dataclass, and SQLite's affinities give exactly its types.
    return OutboxItem(*row)


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")


def _peer_of(conn: Connection, seq: int) -> tuple[str, str]:
    row = conn.execute("SELECT peer, state FROM outbox WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        raise ValueError(f"no outbox item has seq {seq}")
    return str(row[0]), str(row[1])


def enqueue(
    conn: Connection,
    *,
    peer: str,
    message_id: str,
    payload_type: str,
    envelope: bytes,
    digest: bytes,
    created_at: float,
    correlation_id: str = "",
) -> int:
    """Add a pending message for ``peer``; return its ``seq``."""
    rows = conn.execute(
        "INSERT INTO outbox (peer, message_id, payload_type, correlation_id, envelope, "
        "digest, created_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending') "
        "ON CONFLICT (message_id) DO NOTHING RETURNING seq",
        (peer, message_id, payload_type, correlation_id, envelope, digest, created_at),
    ).fetchall()
    if not rows:
        raise DuplicateEntry(f"message {message_id} is already in the outbox")
    return int(rows[0][0])


@dataclass(frozen=True)
class Lane:
    """One of ``count`` lanes a peer's pending rows are split into, to be sent side by side
    (to the peer's replicas). A row's lane follows from its correlation id (its message id
    when it has none), so every message of one case, catalog or list is in one lane and
    keeps its order, whichever lane goes first."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"lane {self.index} of {self.count} does not exist")

    def holds(self, correlation_id: str, message_id: str) -> bool:
        key = (correlation_id or message_id).encode()
        return zlib.crc32(key) % self.count == self.index


def pending_batch(
    conn: Connection,
    peer: str,
    limit: int,
    *,
    skip: Collection[int] = (),
    lane: Lane | None = None,
) -> list[OutboxItem]:
    """The next ``limit`` pending messages for ``peer`` above its cursor, in ``seq`` order,
    leaving out the seqs in ``skip`` (rows whose settlement is being recorded); with
    ``lane``, only that lane's."""
    _check_limit(limit)
    if lane is not None and lane.count > 1:
        return _pending_in_lane(conn, peer, limit, skip, lane)
    if not skip:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE peer = ? AND state = 'pending' AND seq > ? "  # noqa: S608
            "ORDER BY seq LIMIT ?",
            (peer, cursor(conn, peer), limit),
        )
    else:
        # Left out in SQL, so the rows skipped are never read or built.
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE peer = ? AND state = 'pending' AND seq > ? "  # noqa: S608
            "AND seq NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?",
            (peer, cursor(conn, peer), json.dumps(sorted(skip)), limit),
        )
    return [_item(row) for row in rows]


def _pending_in_lane(
    conn: Connection, peer: str, limit: int, skip: Collection[int], lane: Lane
) -> list[OutboxItem]:
    """``pending_batch`` for one lane: the pending rows' keys are read in windows from the
    cursor on (the other lanes' rows are passed over, never built), then the lane's rows."""
    chosen: list[int] = []
    after = cursor(conn, peer)
    window = limit * lane.count
    while len(chosen) < limit:
        keys = conn.execute(
            "SELECT seq, correlation_id, message_id FROM outbox "
            "WHERE peer = ? AND state = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
            (peer, after, window),
        ).fetchall()
        chosen += [
            int(seq) for seq, correlation, message in keys
            if int(seq) not in skip and lane.holds(correlation, message)
        ]  # fmt: skip
        if len(keys) < window:
            break
        after = int(keys[-1][0])
    if not chosen:
        return []
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) "  # noqa: S608
        "ORDER BY seq",
        (json.dumps(chosen[:limit]),),
    )
    return [_item(row) for row in rows]


def still_pending(conn: Connection, seqs: Collection[int]) -> set[int]:
    """Which of ``seqs`` are pending now (in a write job: as this transaction sees them)."""
    if not seqs:
        return set()
    rows = conn.execute(
        "SELECT seq FROM outbox WHERE state = 'pending' "
        "AND seq IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(seqs)),),
    )
    return {int(row[0]) for row in rows}


def mark_delivered(conn: Connection, seq: int, *, reply: bytes, at: float) -> None:
    """Record the peer's signed reply; a no-op unless the item is still pending."""
    peer, _ = _peer_of(conn, seq)  # an unknown seq is a ValueError
    mark_delivered_batch(conn, peer, [(seq, reply, b"")], at=at)


def mark_delivered_batch(
    conn: Connection, peer: str, replies: Sequence[tuple[int, bytes, bytes]], *, at: float
) -> None:
    """``mark_delivered`` for many items of one peer, each (seq, reply, envelope as sent),
    advancing its cursor once. A row keeps the envelope that went out with its batch
    signature and proof, the one its peer holds. Items no longer pending keep their first
    settlement (a second completion of the same send, or an item dead-lettered while in
    flight)."""
    conn.executemany(
        "UPDATE outbox SET state = 'delivered', reply = ?, delivered_at = ?, "
        "envelope = CASE WHEN length(?) = 0 THEN envelope ELSE ? END "
        "WHERE seq = ? AND peer = ? AND state = 'pending'",
        [(reply, at, sent, sent, seq, peer) for seq, reply, sent in replies],
    )
    advance_cursor(conn, peer)


def mark_failed_attempt(conn: Connection, seqs: Sequence[int], *, error: str, at: float) -> None:
    """Count one more failed attempt for each pending item in ``seqs``."""
    conn.executemany(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? "
        "WHERE seq = ? AND state = 'pending'",
        [(error, at, seq) for seq in seqs],
    )


def dead_letter(
    conn: Connection, seq: int, *, reason: str, at: float, reply: bytes | None = None
) -> None:
    """Park a pending item for an operator; a no-op if it is already settled.

    ``reply`` is the peer's signed Fault when a refusal parked it (kept as evidence).
    """
    peer, state = _peer_of(conn, seq)
    if state != PENDING:
        return
    conn.execute(
        "UPDATE outbox SET state = 'dead', last_error = ?, dead_at = ?, reply = ? WHERE seq = ?",
        (reason, at, reply, seq),
    )
    advance_cursor(conn, peer)


def dead_letter_expired(
    conn: Connection,
    peer: str,
    *,
    older_than: float,
    at: float,
    reason: str = EXPIRED_REASON,
) -> int:
    """Park every pending item of ``peer`` waiting since before ``older_than`` (since it was
    created, or since an operator last retried it); return how many."""
    changed = conn.execute(
        "UPDATE outbox SET state = 'dead', last_error = ?, dead_at = ? "
        "WHERE peer = ? AND state = 'pending' AND COALESCE(retried_at, created_at) < ?",
        (reason, at, peer, older_than),
    ).rowcount
    if changed:
        advance_cursor(conn, peer)
    return changed


def retry(
    conn: Connection,
    *,
    seqs: Sequence[int] | None = None,
    peer: str | None = None,
    at: float,
) -> list[int]:
    """Make dead items pending again (the given ``seqs``, or all of ``peer``'s, or both
    filters together); return the seqs changed, in order. Their age limit restarts at ``at``."""
    if seqs is None and peer is None:
        raise ValueError("say which dead items to retry: give seqs, peer, or both")
    where = ["state = 'dead'"]
    params: list[object] = []
    if seqs is not None:
        # One JSON parameter instead of one per seq: no limit on how many an operator names.
        where.append("seq IN (SELECT value FROM json_each(?))")
        params.append(json.dumps([int(s) for s in seqs]))
    if peer is not None:
        where.append("peer = ?")
        params.append(peer)
    rows = conn.execute(
        f"SELECT seq, peer FROM outbox WHERE {' AND '.join(where)} ORDER BY seq",  # noqa: S608
        params,
    ).fetchall()
    lowest: dict[str, int] = {}
    for seq, row_peer in rows:
        lowest.setdefault(str(row_peer), int(seq))
    # The previous error stays in last_error so the operator still sees why it was parked.
    conn.executemany(
        "UPDATE outbox SET state = 'pending', attempts = 0, dead_at = NULL, retried_at = ? "
        "WHERE seq = ?",
        [(at, int(seq)) for seq, _ in rows],
    )
    for row_peer, seq in lowest.items():
        # The cursor promises that everything at or below it is settled; that is no longer
        # true from `seq` on, so the worker must look again from just below it.
        conn.execute(
            "UPDATE peer_cursor SET seq = ? WHERE peer = ? AND seq >= ?",
            (seq - 1, row_peer, seq),
        )
    return [int(seq) for seq, _ in rows]


def cursor(conn: Connection, peer: str) -> int:
    """The highest seq below which (inclusive) all of ``peer``'s items are settled."""
    row = conn.execute("SELECT seq FROM peer_cursor WHERE peer = ?", (peer,)).fetchone()
    return 0 if row is None else int(row[0])


def advance_cursor(conn: Connection, peer: str) -> int:
    """Move ``peer``'s cursor over the settled rows just above it; return the cursor."""
    current = cursor(conn, peer)
    first_pending = conn.execute(
        "SELECT MIN(seq) FROM outbox WHERE peer = ? AND state = 'pending' AND seq > ?",
        (peer, current),
    ).fetchone()[0]
    # Every row of this peer between the cursor and its first pending row is settled, so the
    # new cursor is the highest of them. The state IN (...) keeps this an index range scan
    # over just those rows.
    top = conn.execute(
        "SELECT MAX(seq) FROM outbox WHERE peer = ? AND state IN ('delivered', 'dead') "
        "AND seq > ? AND seq < ?",
        (peer, current, _MAX_SEQ if first_pending is None else int(first_pending)),
    ).fetchone()[0]
    if top is None:
        return current
    conn.execute(
        "INSERT INTO peer_cursor (peer, seq) VALUES (?, ?) "
        "ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq",
        (peer, int(top)),
    )
    return int(top)


def depth(conn: Connection, peer: str) -> tuple[int, float | None]:
    """How many items wait for ``peer``, and when the oldest of them was created."""
    count, oldest = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE peer = ? AND state = 'pending'",
        (peer,),
    ).fetchone()
    return int(count), None if oldest is None else float(oldest)


def last_delivered_at(conn: Connection, peer: str) -> float | None:
    """When the newest delivered item for ``peer`` was receipted; None if none was.

    The newest by ``seq`` rather than the greatest ``delivered_at``: the index gives it in
    one step, and a peer's items are delivered in ``seq`` order.
    """
    row = conn.execute(
        "SELECT delivered_at FROM outbox WHERE peer = ? AND state = 'delivered' "
        "ORDER BY seq DESC LIMIT 1",
        (peer,),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def depths(conn: Connection) -> dict[str, tuple[int, float | None]]:
    """``depth`` for every peer that has pending items."""
    rows = conn.execute(
        "SELECT peer, COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending' "
        "GROUP BY peer ORDER BY peer"
    )
    return {str(peer): (int(count), float(oldest)) for peer, count, oldest in rows}


def dead_count(conn: Connection, peer: str | None = None) -> int:
    """How many items are dead-lettered (for ``peer``, or in all)."""
    if peer is None:
        row = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").fetchone()
    else:
        row = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE peer = ? AND state = 'dead'", (peer,)
        ).fetchone()
    return int(row[0])


def list_items(
    conn: Connection,
    *,
    state: str | None = None,
    peer: str | None = None,
    limit: int = 100,
) -> list[OutboxItem]:
    """Items in ``seq`` order, optionally only those in ``state`` and/or for ``peer``."""
    _check_limit(limit)
    where: list[str] = []
    params: list[object] = []
    if state is not None:
        _check_state(state)
        where.append("state = ?")
        params.append(state)
    if peer is not None:
        where.append("peer = ?")
        params.append(peer)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox {clause}ORDER BY seq LIMIT ?",  # noqa: S608
        [*params, limit],
    )
    return [_item(row) for row in rows]


def sent_before(conn: Connection, *, peer: str, payload_type: str, correlation_id: str) -> bool:
    """Whether a message of this type and correlation id was ever queued for ``peer``."""
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE peer = ? AND payload_type = ? AND correlation_id = ? LIMIT 1",
        (peer, payload_type, correlation_id),
    ).fetchone()
    return row is not None


def get(conn: Connection, message_id: str) -> OutboxItem | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE message_id = ?",  # noqa: S608
        (message_id,),
    ).fetchone()
    return None if row is None else _item(row)

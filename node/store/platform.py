"""The node's side of its province platform, as stored: deliveries waiting for the platform,
feed cursors, the platform events already taken and the applications the federation refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node.store.connection import Connection


@dataclass(frozen=True)
class PlatformItem:
    seq: int
    kind: str
    """``case`` (an inbound case to handle), ``notice`` (an applied case update) or
    ``refusal`` (an application the federation refused; ``refuse_application``)."""
    case_id: str
    """The case the item is about; ``""`` for a refusal, which has none."""
    payload: dict[str, Any]
    state: str
    created_at: float
    attempts: int
    last_error: str


def enqueue(
    conn: Connection, *, kind: str, case_id: str, payload: dict[str, Any], at: float
) -> None:
    conn.execute(
        "INSERT INTO platform_outbox (kind, case_id, payload, created_at) VALUES (?, ?, ?, ?)",
        (kind, case_id, json.dumps(payload, ensure_ascii=False, sort_keys=True), at),
    )


def pending(conn: Connection, limit: int = 100) -> list[PlatformItem]:
    rows = conn.execute(
        "SELECT seq, kind, case_id, payload, state, created_at, attempts, last_error "
        "FROM platform_outbox WHERE state = 'pending' ORDER BY seq LIMIT ?",
        (limit,),
    ).fetchall()
    return [PlatformItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]


def settle(conn: Connection, seq: int, *, state: str, at: float, error: str = "") -> None:
    conn.execute(
        "UPDATE platform_outbox SET state = ?, settled_at = ?, last_error = ?, "
        "attempts = attempts + 1 WHERE seq = ?",
        (state, at, error, seq),
    )


def failed_attempt(conn: Connection, seq: int, error: str) -> None:
    conn.execute(
        "UPDATE platform_outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
        (error, seq),
    )


def depth(conn: Connection) -> tuple[int, float | None, int]:
    """Pending items, the oldest pending one's creation time, and parked items."""
    waiting, oldest = conn.execute(
        "SELECT count(*), min(created_at) FROM platform_outbox WHERE state = 'pending'"
    ).fetchone()
    dead = conn.execute("SELECT count(*) FROM platform_outbox WHERE state = 'dead'").fetchone()[0]
    return int(waiting), oldest, int(dead)


def cursor(conn: Connection, feed: str) -> str | None:
    row = conn.execute("SELECT cursor FROM platform_cursors WHERE feed = ?", (feed,)).fetchone()
    return None if row is None else str(row[0])


def save_cursor(conn: Connection, feed: str, value: str, at: float) -> None:
    conn.execute(
        "INSERT INTO platform_cursors (feed, cursor, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor, "
        "updated_at = excluded.updated_at",
        (feed, value, at),
    )


DEFERRED = "deferred"
"""The outcome of an event to try again later; any other outcome is final."""


def record_event(
    conn: Connection,
    *,
    event_id: str,
    case_id: str,
    outcome: str,
    at: float,
    body: dict[str, Any] | None = None,
) -> bool:
    """Record what became of a platform event; a deferred one may later become final. False
    (and no change) when the event was taken for good before: the insert is the claim, so of
    two replicas taking the same event at once one records it, the other waits for that
    commit (PostgreSQL) and gets False."""
    row = conn.execute(
        "INSERT INTO platform_events (event_id, case_id, outcome, at, body) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET "
        "outcome = excluded.outcome, at = excluded.at, body = excluded.body "
        "WHERE platform_events.outcome = 'deferred' RETURNING event_id",
        (event_id, case_id, outcome, at, None if body is None else json.dumps(body)),
    ).fetchone()
    return row is not None


def has_deferred(conn: Connection, case_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM platform_events WHERE case_id = ? AND outcome = 'deferred' LIMIT 1",
        (case_id,),
    ).fetchone()
    return row is not None


def deferred_events(conn: Connection) -> list[tuple[str, str, dict[str, Any]]]:
    """(event id, case id, body) of every event waiting to be tried again, in the order
    they were first deferred."""
    rows = conn.execute(
        "SELECT event_id, case_id, body FROM platform_events WHERE outcome = 'deferred' "
        "ORDER BY rowid"
    ).fetchall()
    return [(event_id, case_id, json.loads(body)) for event_id, case_id, body in rows]


REFUSAL = "refusal"
"""The outbox kind of a refused application: payload ``{"reference", "refusal": {"code",
"field", "reason", "in_dialect"}}``."""


def application_outcome(conn: Connection, reference: str) -> str | None:
    """What became of a platform application the federation refused (``refused:<code>``);
    None for one never refused (a submitted one is found by its Idempotency-Key)."""
    row = conn.execute(
        "SELECT outcome FROM platform_applications WHERE reference = ?", (reference,)
    ).fetchone()
    return None if row is None else str(row[0])


def refuse_application(
    conn: Connection, *, reference: str, refusal: dict[str, Any], at: float
) -> bool:
    """Record a platform application as taken and refused, and queue the refusal for the
    platform, together; False (and nothing changed) if it was refused before."""
    recorded = conn.execute(
        "INSERT INTO platform_applications (reference, outcome, at) VALUES (?, ?, ?) "
        "ON CONFLICT (reference) DO NOTHING",
        (reference, f"refused:{refusal['code']}", at),
    )
    if recorded.rowcount != 1:
        return False
    payload = {"reference": reference, "refusal": refusal}
    enqueue(conn, kind=REFUSAL, case_id="", payload=payload, at=at)
    return True

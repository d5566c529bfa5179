"""The inbox: which messages this node accepted, and the reply it signed for each.

Rules kept here:
- A message is recorded once per (sender, message_id), in the same transaction as its
  effects and before its reply leaves the node; a second record of the same id is refused.
- The stored reply is returned verbatim when the same message is delivered again, so
  delivery is idempotent and the sender always holds the same signed receipt.
"""

from __future__ import annotations

from node.protocol.checks import PriorDelivery
from node.store.connection import Connection
from node.store.database import DuplicateEntry


def prior(conn: Connection, sender: str, message_id: str) -> PriorDelivery | None:
    """What was accepted before under this id from this sender, if anything."""
    row = conn.execute(
        "SELECT digest, reply FROM inbox WHERE sender = ? AND message_id = ?",
        (sender, message_id),
    ).fetchone()
    return None if row is None else PriorDelivery(digest=bytes(row[0]), reply=bytes(row[1]))


def record(
    conn: Connection,
    *,
    sender: str,
    message_id: str,
    digest: bytes,
    payload_type: str,
    envelope: bytes,
    reply: bytes,
    received_at: float,
) -> None:
    """Remember an accepted message and the signed reply it got."""
    # ON CONFLICT, not a caught IntegrityError: on PostgreSQL a failed statement spoils the
    # transaction, and a second writer's same message waits here for the first to commit.
    stored = conn.execute(
        "INSERT INTO inbox (sender, message_id, digest, payload_type, envelope, reply, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sender, message_id) DO NOTHING",
        (sender, message_id, digest, payload_type, envelope, reply, received_at),
    )
    if stored.rowcount != 1:
        raise DuplicateEntry(f"message {message_id} from {sender} is already in the inbox")


def record_once(
    conn: Connection,
    *,
    sender: str,
    message_id: str,
    digest: bytes,
    payload_type: str,
    envelope: bytes,
    reply: bytes,
    received_at: float,
) -> PriorDelivery | None:
    """``record`` the message, or, when it is stored already, return what was stored (its
    digest and the reply to answer with instead of ``reply``). The same message may arrive
    twice at once: at one process (a retried stream and a unary call) the writer runs jobs
    one by one; at two replicas sharing a PostgreSQL store their transactions take turns
    (and any other session's insert waits for the first one's commit), so the second reads
    the first one's row. Either way the first one stored wins and both answer with its
    reply."""
    try:
        record(
            conn,
            sender=sender,
            message_id=message_id,
            digest=digest,
            payload_type=payload_type,
            envelope=envelope,
            reply=reply,
            received_at=received_at,
        )
    except DuplicateEntry:
        stored = prior(conn, sender, message_id)
        assert stored is not None, "a conflicting row is committed before the insert returns"
        return stored
    return None


def count(conn: Connection, sender: str | None = None, *, payload_type: str | None = None) -> int:
    """How many messages were accepted (from ``sender``, or from anyone; of one type, or all)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM inbox WHERE (?1 IS NULL OR sender = ?1) "
        "AND (?2 IS NULL OR payload_type = ?2)",
        (sender, payload_type),
    ).fetchone()
    return int(row[0])


class InboxReader:
    """``node.protocol.checks.InboxView`` over a connection (usually ``Database.reader()``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def prior(self, sender: str, message_id: str) -> PriorDelivery | None:
        return prior(self._conn, sender, message_id)

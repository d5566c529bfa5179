"""Peer catalogs as announced: the newest version per province."""

from __future__ import annotations

from dataclasses import dataclass

from node.store.connection import Connection


@dataclass(frozen=True)
class HeldCatalog:
    province: str
    version: int
    document: str
    """The catalog as JSON (node.cases.catalog.to_json)."""
    message_id: str
    received_at: float


def record(
    conn: Connection,
    *,
    province: str,
    version: int,
    document: str,
    message_id: str,
    received_at: float,
) -> bool:
    """Keep this announcement unless an older one arrived late; return whether it was kept."""
    changed = conn.execute(
        "INSERT INTO catalogs (province, version, document, message_id, received_at) "
        "VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (province) DO UPDATE SET version = excluded.version, "
        "document = excluded.document, message_id = excluded.message_id, "
        "received_at = excluded.received_at WHERE excluded.version >= catalogs.version",
        (province, version, document, message_id, received_at),
    ).rowcount
    return changed > 0


def all_held(conn: Connection) -> list[HeldCatalog]:
    rows = conn.execute(
        "SELECT province, version, document, message_id, received_at FROM catalogs "
        "ORDER BY province"
    ).fetchall()
    return [HeldCatalog(*row) for row in rows]


def held(conn: Connection, province: str) -> HeldCatalog | None:
    row = conn.execute(
        "SELECT province, version, document, message_id, received_at FROM catalogs "
        "WHERE province = ?",
        (province,),
    ).fetchone()
    return None if row is None else HeldCatalog(*row)


def held_message_id(conn: Connection, province: str) -> str | None:
    """Which announcement of ``province`` is held (it changes when a newer one arrives)."""
    row = conn.execute("SELECT message_id FROM catalogs WHERE province = ?", (province,)).fetchone()
    return None if row is None else str(row[0])

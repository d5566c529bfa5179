"""The certificate library (when no platform adapter supplies one), usage records (用证记录)
and held revocation lists, as stored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.store.connection import Connection


@dataclass(frozen=True)
class UsageRecord:
    seq: int
    certificate_id: str
    requester_province: str
    requester: str
    purpose: str
    fields: list[str]
    consent_grant_id: str | None
    status: str
    message_id: str
    at: float


@dataclass(frozen=True)
class HeldList:
    province: str
    version: int
    signed: bytes
    issued_at: float
    received_at: float


def put_certificate(
    conn: Connection, certificate_id: str, document: dict[str, Any], at: float
) -> None:
    conn.execute(
        "INSERT INTO certificate_library (certificate_id, document, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (certificate_id) DO UPDATE SET document = excluded.document, "
        "updated_at = excluded.updated_at",
        (certificate_id, json.dumps(document, ensure_ascii=False, sort_keys=True), at),
    )


def certificate_document(conn: Connection, certificate_id: str) -> str | None:
    """A certificate of the library as stored (its JSON text)."""
    row = conn.execute(
        "SELECT document FROM certificate_library WHERE certificate_id = ?", (certificate_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def listed_certificates(conn: Connection) -> list[tuple[dict[str, Any], float]]:
    """Revoked and suspended certificates of the library, with when their row last changed."""
    rows = conn.execute(
        "SELECT document, updated_at FROM certificate_library WHERE "
        "json_extract(document, '$.status') IN ('revoked', 'suspended') ORDER BY certificate_id"
    )
    return [(dict(json.loads(document)), updated_at) for document, updated_at in rows]


def record_usage(
    conn: Connection,
    *,
    certificate_id: str,
    requester_province: str,
    requester: str,
    purpose: str,
    fields: Sequence[str],
    consent_grant_id: str | None,
    status: str,
    message_id: str,
    at: float,
) -> None:
    conn.execute(
        "INSERT INTO certificate_usage (certificate_id, requester_province, requester, purpose, "
        "fields, consent_grant_id, status, message_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            certificate_id,
            requester_province,
            requester,
            purpose,
            json.dumps(list(fields)),
            consent_grant_id,
            status,
            message_id,
            at,
        ),
    )


def usage(conn: Connection, certificate_id: str, *, limit: int = 500) -> list[UsageRecord]:
    rows = conn.execute(
        "SELECT seq, certificate_id, requester_province, requester, purpose, fields, "
        "consent_grant_id, status, message_id, at FROM certificate_usage "
        "WHERE certificate_id = ? ORDER BY seq DESC LIMIT ?",
        (certificate_id, limit),
    ).fetchall()
    return [
        UsageRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9])
        for r in rows
    ]


def usage_count(conn: Connection) -> int:
    """Usage records held, of every certificate."""
    (count,) = conn.execute("SELECT count(*) FROM certificate_usage").fetchone()
    return int(count)


def keep_list(
    conn: Connection,
    *,
    province: str,
    version: int,
    signed: bytes,
    issued_at: float,
    received_at: float,
) -> bool:
    """Hold this list unless a newer one is held; return whether it was kept."""
    changed = conn.execute(
        "INSERT INTO revocation_lists (province, version, signed, issued_at, received_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (province) DO UPDATE SET version = excluded.version, "
        "signed = excluded.signed, issued_at = excluded.issued_at, "
        "received_at = excluded.received_at WHERE excluded.version > revocation_lists.version",
        (province, version, signed, issued_at, received_at),
    ).rowcount
    return changed > 0


def held_list(conn: Connection, province: str) -> HeldList | None:
    row = conn.execute(
        "SELECT province, version, signed, issued_at, received_at FROM revocation_lists "
        "WHERE province = ?",
        (province,),
    ).fetchone()
    return None if row is None else HeldList(*row)


def held_lists(conn: Connection) -> list[HeldList]:
    rows = conn.execute(
        "SELECT province, version, signed, issued_at, received_at FROM revocation_lists "
        "ORDER BY province"
    )
    return [HeldList(*row) for row in rows]


def held_versions(conn: Connection) -> dict[str, int]:
    """The version of each province's list held in the store (a small read: no lists)."""
    rows = conn.execute("SELECT province, version FROM revocation_lists")
    return {str(province): int(version) for province, version in rows}

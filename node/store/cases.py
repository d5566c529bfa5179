"""Cases, their numbered updates and the accepting side's open requests, as stored.

Plain SQL over the connection it is given; the rules of what may change live in
``node.cases`` (the lifecycle) and are checked before anything here is called.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.store import postgres
from node.store.connection import Connection

OPEN_STATUSES = ("submitted", "delivered", "accepted", "supplement_requested", "supplemented")
"""Statuses of a case that has no outcome yet: the only ones that can be overdue."""

_CASE_COLUMNS = (
    "case_id, role, accepting, handling, matter_code, mode, promised_days, submission, status, "
    "applied, "
    "due_at, submitted_at, updated_at, concluded_at, evaluation_level, problem, "
    "idempotency_key, request_digest"
)


@dataclass(frozen=True)
class CaseRow:
    case_id: str
    role: str
    """This node's side: accepting (收件地) or handling (办理地)."""
    accepting: str
    handling: str
    matter_code: str
    mode: str
    promised_days: int
    """The matter's promised working days (承诺时限) when the case was submitted."""
    submission: bytes
    """The accepting node's signed CaseSubmit envelope: applicant and materials."""
    status: str
    applied: int
    """The sequence number of the last applied update."""
    due_at: float | None
    submitted_at: float
    updated_at: float
    concluded_at: float | None
    evaluation_level: int | None
    problem: str
    """Why the case cannot move, when it cannot (the handler refused the submission)."""
    idempotency_key: str | None
    request_digest: bytes | None

    @property
    def peer(self) -> str:
        return self.handling if self.role == "accepting" else self.accepting

    def overdue(self, now: float) -> bool:
        return self.status in OPEN_STATUSES and self.due_at is not None and now >= self.due_at


@dataclass(frozen=True)
class UpdateRow:
    case_id: str
    sequence: int
    action: str
    by_role: str
    at: float
    detail: dict[str, Any]
    """reason, result, evaluation, request_id, due_at: what the update carried."""
    evidence: bytes
    """The signed envelope that makes the update: the handler's CaseUpdate, or for update 1
    (deliver) the handler's receipt of the submission."""
    request: bytes | None
    """The accepting side's signed CaseAction, for its actions."""
    applied: bool


@dataclass(frozen=True)
class RequestRow:
    message_id: str
    case_id: str
    action: str
    state: str
    requested_at: float
    answered_at: float | None
    fault_code: str
    fault_text: str


def insert_case(conn: Connection, row: CaseRow) -> bool:
    """Store a new case; False (nothing stored) when its Idempotency-Key is taken already. The
    insert is the key's claim: of two replicas storing one key at once, the second waits for
    the first one's commit (PostgreSQL) and stores nothing."""
    inserted = conn.execute(
        f"INSERT INTO cases ({_CASE_COLUMNS}) VALUES ({', '.join('?' * 18)}) "  # noqa: S608
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING case_id",
        (
            row.case_id,
            row.role,
            row.accepting,
            row.handling,
            row.matter_code,
            row.mode,
            row.promised_days,
            row.submission,
            row.status,
            row.applied,
            row.due_at,
            row.submitted_at,
            row.updated_at,
            row.concluded_at,
            row.evaluation_level,
            row.problem,
            row.idempotency_key,
            row.request_digest,
        ),
    ).fetchone()
    return inserted is not None


def get(conn: Connection, case_id: str) -> CaseRow | None:
    found = conn.execute(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id = ?",  # noqa: S608
        (case_id,),
    ).fetchone()
    return CaseRow(*found) if found else None


def get_for_change(conn: Connection, case_id: str) -> CaseRow | None:
    """``get`` inside a write job about to change the case: on PostgreSQL the row stays locked
    until the transaction ends, so of two transactions changing one case at once the second
    waits and then reads the first one's change (its next update number, its new status)
    instead of the state before it. The replicas' write transactions take turns already
    (``postgres.WRITE_LOCK``); this also holds against any other session writing the case.
    A SQLite write transaction holds the whole store."""
    lock = " FOR NO KEY UPDATE" if isinstance(conn, postgres.PgConnection) else ""
    found = conn.execute(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id = ?{lock}",  # noqa: S608
        (case_id,),
    ).fetchone()
    return CaseRow(*found) if found else None


def by_idempotency_key(conn: Connection, key: str) -> CaseRow | None:
    found = conn.execute(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE idempotency_key = ?",  # noqa: S608
        (key,),
    ).fetchone()
    return CaseRow(*found) if found else None


def set_state(
    conn: Connection,
    case_id: str,
    *,
    status: str,
    applied: int,
    due_at: float | None,
    updated_at: float,
    concluded_at: float | None,
    evaluation_level: int | None,
) -> None:
    conn.execute(
        "UPDATE cases SET status = ?, applied = ?, due_at = ?, updated_at = ?, "
        "concluded_at = ?, evaluation_level = ? WHERE case_id = ?",
        (status, applied, due_at, updated_at, concluded_at, evaluation_level, case_id),
    )


def set_problem(conn: Connection, case_id: str, problem: str, at: float) -> None:
    conn.execute(
        "UPDATE cases SET problem = ?, updated_at = ? WHERE case_id = ?", (problem, at, case_id)
    )


def add_update(conn: Connection, row: UpdateRow) -> None:
    conn.execute(
        "INSERT INTO case_updates (case_id, sequence, action, by_role, at, detail, evidence, "
        "request, applied) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.case_id,
            row.sequence,
            row.action,
            row.by_role,
            row.at,
            json.dumps(row.detail, ensure_ascii=False, sort_keys=True),
            row.evidence,
            row.request,
            int(row.applied),
        ),
    )


def resign(conn: Connection, case_id: str, *, held: bytes, sent: bytes) -> None:
    """A message of ours in this case's record (the submission, an update as its evidence, a
    request) now held as it went out: the same message in its batch, with its batch
    signature and proof, as the peer holds it. The message bytes do not change; only their
    signature's form."""
    conn.execute(
        "UPDATE cases SET submission = ? WHERE case_id = ? AND submission = ?",
        (sent, case_id, held),
    )
    conn.execute(
        "UPDATE case_updates SET evidence = ? WHERE case_id = ? AND evidence = ?",
        (sent, case_id, held),
    )
    conn.execute(
        "UPDATE case_updates SET request = ? WHERE case_id = ? AND request = ?",
        (sent, case_id, held),
    )


def mark_applied(conn: Connection, case_id: str, sequences: Iterable[int]) -> None:
    conn.executemany(
        "UPDATE case_updates SET applied = 1 WHERE case_id = ? AND sequence = ?",
        [(case_id, sequence) for sequence in sequences],
    )


def updates(conn: Connection, case_id: str) -> list[UpdateRow]:
    """Every update of the case, applied and held, in sequence order."""
    rows = conn.execute(
        "SELECT case_id, sequence, action, by_role, at, detail, evidence, request, applied "
        "FROM case_updates WHERE case_id = ? ORDER BY sequence",
        (case_id,),
    ).fetchall()
    return [
        UpdateRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], bool(r[8]))
        for r in rows
    ]


def add_request(conn: Connection, *, message_id: str, case_id: str, action: str, at: float) -> None:
    conn.execute(
        "INSERT INTO case_requests (message_id, case_id, action, state, requested_at) "
        "VALUES (?, ?, ?, 'pending', ?)",
        (message_id, case_id, action, at),
    )


def answer_request(
    conn: Connection,
    message_id: str,
    *,
    state: str,
    at: float,
    fault_code: str = "",
    fault_text: str = "",
) -> None:
    conn.execute(
        "UPDATE case_requests SET state = ?, answered_at = ?, fault_code = ?, fault_text = ? "
        "WHERE message_id = ? AND state = 'pending'",
        (state, at, fault_code, fault_text, message_id),
    )


def requests(conn: Connection, case_id: str) -> list[RequestRow]:
    rows = conn.execute(
        "SELECT message_id, case_id, action, state, requested_at, answered_at, fault_code, "
        "fault_text FROM case_requests WHERE case_id = ? ORDER BY requested_at, rowid",
        (case_id,),
    ).fetchall()
    return [RequestRow(*row) for row in rows]


def list_cases(
    conn: Connection,
    *,
    role: str | None = None,
    status: str | None = None,
    peer: str | None = None,
    overdue: bool | None = None,
    now: float = 0.0,
    before: int | None = None,
    limit: int = 50,
) -> list[tuple[int, CaseRow]]:
    """Cases newest first, each with its position (the paging cursor), filtered.

    ``overdue`` True: only cases past their due time at ``now`` and not concluded
    (``CaseRow.overdue``); False: only the others; None: either."""
    where: list[str] = []
    args: list[Any] = []
    if role is not None:
        where.append("role = ?")
        args.append(role)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if peer is not None:
        where.append("(CASE role WHEN 'accepting' THEN handling ELSE accepting END) = ?")
        args.append(peer)
    if overdue is not None:
        late = f"(status IN ({', '.join('?' * len(OPEN_STATUSES))}) AND due_at <= ?)"
        where.append(late if overdue else f"NOT COALESCE({late}, 0)")
        args.extend([*OPEN_STATUSES, now])
    if before is not None:
        where.append("rowid < ?")
        args.append(before)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT rowid, {_CASE_COLUMNS} FROM cases {clause} ORDER BY rowid DESC LIMIT ?",  # noqa: S608
        (*args, limit),
    ).fetchall()
    return [(row[0], CaseRow(*row[1:])) for row in rows]


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    """How many cases per (role, status)."""
    rows = conn.execute("SELECT role, status, COUNT(*) FROM cases GROUP BY role, status")
    return {(role, status): n for role, status, n in rows}


def overdue_counts(conn: Connection, now: float) -> dict[tuple[str, str], int]:
    """Open cases past their due time, per (role, peer province)."""
    rows = conn.execute(
        "SELECT role, CASE role WHEN 'accepting' THEN handling ELSE accepting END, COUNT(*) "  # noqa: S608
        f"FROM cases WHERE status IN ({', '.join('?' * len(OPEN_STATUSES))}) AND due_at <= ? "
        "GROUP BY 1, 2",
        (*OPEN_STATUSES, now),
    )
    return {(role, peer): n for role, peer, n in rows}


def evaluation_counts(conn: Connection) -> dict[tuple[str, int], int]:
    """Evaluations per (handling province, level 1-5)."""
    rows = conn.execute(
        "SELECT handling, evaluation_level, COUNT(*) FROM cases "
        "WHERE evaluation_level IS NOT NULL GROUP BY 1, 2"
    )
    return {(handling, level): n for handling, level, n in rows}


@dataclass(frozen=True)
class CertificateCheck:
    """A certificate material of a case this node handles (免于提交), and its verification."""

    case_id: str
    material: str
    certificate_id: str
    holder_code: str
    state: str
    """pending, verified or rejected."""
    status: str
    reason: str
    attestation: str
    checked_at: float | None


def add_certificate_check(
    conn: Connection, *, case_id: str, material: str, certificate_id: str, holder_code: str
) -> None:
    conn.execute(
        "INSERT INTO case_certificates (case_id, material, certificate_id, holder_code, state) "
        "VALUES (?, ?, ?, ?, 'pending')",
        (case_id, material, certificate_id, holder_code),
    )


def settle_certificate_check(
    conn: Connection,
    *,
    case_id: str,
    material: str,
    state: str,
    status: str,
    reason: str,
    attestation: str,
    at: float,
) -> None:
    conn.execute(
        "UPDATE case_certificates SET state = ?, status = ?, reason = ?, attestation = ?, "
        "checked_at = ? WHERE case_id = ? AND material = ? AND state = 'pending'",
        (state, status, reason, attestation, at, case_id, material),
    )


def certificate_checks(
    conn: Connection, case_id: str | None = None, *, pending_only: bool = False
) -> list[CertificateCheck]:
    where = []
    args: list[Any] = []
    if case_id is not None:
        where.append("case_id = ?")
        args.append(case_id)
    if pending_only:
        where.append("state = 'pending'")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    query = (
        "SELECT case_id, material, certificate_id, holder_code, state, status, reason, "  # noqa: S608
        f"attestation, checked_at FROM case_certificates {clause} ORDER BY case_id, rowid"
    )
    rows = conn.execute(query, args).fetchall()
    return [CertificateCheck(*row) for row in rows]

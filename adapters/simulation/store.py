"""The simulated platform's own SQLite database (one file per platform, never the node's).

What it holds, in the engine's province-neutral form (dialects translate at their HTTP edge):
the seeded people, companies and certificate library; applications entered at this platform,
each answered by the node either with the case it became or with the federation's refusal;
inbound cases and update notices delivered by the node; the event feed of what the
platform's people did; and which cases the simulated people are finished with.

Rules kept:

1. Deliveries are idempotent: an inbound case is stored once per ``case_id``, a notice
   once per ``(case_id, sequence)`` and a refusal once per application. Delivering the same
   thing again changes nothing and says so; delivering something different under a known
   key raises ``StoreConflict``. An application is answered once: a case id or a refusal,
   never both.
2. The event feed and the application list are append-only, each with positions that only
   increase (SQLite ``AUTOINCREMENT`` never reuses one), so a cursor is just the last
   position read. An event id is unique: appending a known id changes nothing, which is
   what makes the simulated officer restart-safe.
3. Every write is one transaction, committed before the method returns.
4. Single-threaded: one connection, used from the event loop that serves the platform.
5. The file and its ``-wal`` and ``-shm`` companions are owner-only (0600), also when an
   older run left them readable: they hold the seeded residents' names and ID numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from adapters.simulation.seed import Seed
from node.platform.adapter import ApplicationRefusal, CaseNotice, InboundCase

FILE_MODE: Final = 0o600
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    id_number TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS companies (
    credit_code TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
    certificate_id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, type TEXT NOT NULL,
    holder_code TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (
    certificate_id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS applications (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    reference TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    case_id TEXT UNIQUE,
    acknowledged_at REAL);
CREATE TABLE IF NOT EXISTS inbound_cases (
    case_id TEXT PRIMARY KEY, body TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS notices (
    case_id TEXT NOT NULL, sequence INTEGER NOT NULL, body TEXT NOT NULL,
    received_at REAL NOT NULL, PRIMARY KEY (case_id, sequence));
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    case_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_case ON events (case_id, position);
CREATE TABLE IF NOT EXISTS settled (case_id TEXT PRIMARY KEY, side TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refusals (
    reference TEXT PRIMARY KEY REFERENCES applications (reference),
    code TEXT NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    refused_at REAL NOT NULL);
"""


class StoreConflict(Exception):
    """Something different was delivered under a key the store already holds (rule 1)."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"a different {what} is already stored under {key}")
        self.what = what
        self.key = key


@dataclass(frozen=True)
class StoredApplication:
    position: int
    reference: str
    body: Mapping[str, Any]
    """A ``POST /v1/cases`` body."""
    submitted_at: float
    case_id: str | None
    acknowledged_at: float | None


@dataclass(frozen=True)
class StoredRefusal:
    """The federation's refusal of an application, its field as the dialect named it."""

    refusal: ApplicationRefusal
    refused_at: float


@dataclass(frozen=True)
class StoredCase:
    case: InboundCase
    received_at: float


@dataclass(frozen=True)
class StoredNotice:
    notice: CaseNotice
    received_at: float


@dataclass(frozen=True)
class FeedEvent:
    position: int
    event_id: str
    case_id: str
    body: Mapping[str, Any]
    """A ``POST /v1/cases/{id}/events`` body."""
    created: float


class PlatformStore:
    """The platform's SQLite file (rules in the module docstring)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: str | Path) -> PlatformStore:
        path = Path(path)
        # Created owner-only before SQLite opens it; SQLite gives its -wal and -shm files
        # the database file's mode when it creates them (rule 5).
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
        for companion in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + companion).chmod(FILE_MODE)
        conn = sqlite3.connect(str(path), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def _write(self, statements: Callable[[sqlite3.Connection], Any]) -> Any:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = statements(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    # -- seed --------------------------------------------------------------------------------

    def seeded_with(self) -> tuple[str, int] | None:
        """The province and seed this store was seeded with, or None if it is new."""
        rows = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if "province" not in rows:
            return None
        return rows["province"], int(rows["seed"])

    def load_seed(self, seed: Seed) -> None:
        def load(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("province", seed.province), ("seed", str(seed.seed))],
            )
            data = seed.to_json()
            conn.executemany(
                "INSERT INTO persons (id_number, ordinal, data) VALUES (?, ?, ?)",
                [(p["id_number"], i, _dump(p)) for i, p in enumerate(data["persons"])],
            )
            conn.executemany(
                "INSERT INTO companies (credit_code, ordinal, data) VALUES (?, ?, ?)",
                [(c["credit_code"], i, _dump(c)) for i, c in enumerate(data["companies"])],
            )
            conn.executemany(
                "INSERT INTO certificates (certificate_id, ordinal, type, holder_code, status, "
                "data) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (c["certificate_id"], i, c["type"], c["holder_code"], c["status"], _dump(c))
                    for i, c in enumerate(data["certificates"])
                ],
            )
            conn.executemany(
                "INSERT INTO revocations (certificate_id, ordinal, data) VALUES (?, ?, ?)",
                [(r["certificate_id"], i, _dump(r)) for i, r in enumerate(data["revocations"])],
            )

        self._write(load)

    def persons(self) -> list[dict[str, Any]]:
        return self._rows("SELECT data FROM persons ORDER BY ordinal")

    def companies(self) -> list[dict[str, Any]]:
        return self._rows("SELECT data FROM companies ORDER BY ordinal")

    def certificates(self) -> list[dict[str, Any]]:
        """Every certificate of the library, in ``to_json`` form, in seeding order."""
        return self._rows("SELECT data FROM certificates ORDER BY ordinal")

    def revocations(self) -> list[dict[str, Any]]:
        """The revoked and suspended certificates: id, status, since, reason."""
        return self._rows("SELECT data FROM revocations ORDER BY ordinal")

    def certificate(self, certificate_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT data FROM certificates WHERE certificate_id = ?", (certificate_id,)
        ).fetchone()
        return None if row is None else _load(row[0])

    def _rows(self, query: str) -> list[dict[str, Any]]:
        return [_load(data) for (data,) in self._conn.execute(query)]

    # -- applications (this province accepts) ------------------------------------------------

    def add_application(
        self, body: Mapping[str, Any], at: float, reference_for: Callable[[int], str]
    ) -> StoredApplication:
        """Store a new application; ``reference_for(position)`` names it."""

        def add(conn: sqlite3.Connection) -> int:
            (last,) = conn.execute("SELECT COALESCE(MAX(position), 0) FROM applications").fetchone()
            position = max(int(last), _sequence(conn, "applications")) + 1
            conn.execute(
                "INSERT INTO applications (position, reference, body, submitted_at) "
                "VALUES (?, ?, ?, ?)",
                (position, reference_for(position), _dump(body), at),
            )
            return position

        position: int = self._write(add)
        stored = self._application("position = ?", position)
        assert stored is not None
        return stored

    def application(self, reference: str) -> StoredApplication | None:
        return self._application("reference = ?", reference)

    def applications_since(self, position: int, limit: int) -> list[StoredApplication]:
        rows = self._conn.execute(
            f"SELECT {_APPLICATION_COLUMNS} FROM applications WHERE position > ? "  # noqa: S608
            "ORDER BY position LIMIT ?",
            (position, limit),
        ).fetchall()
        return [_application(row) for row in rows]

    def acknowledge(self, reference: str, case_id: str, at: float) -> StoredApplication | None:
        """Record the federation case an application became; None if there is no such
        application. Idempotent for the same case id; another one is a ``StoreConflict``."""

        def ack(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT case_id FROM applications WHERE reference = ?", (reference,)
            ).fetchone()
            if row is None:
                return False
            if row[0] is not None and row[0] != case_id:
                raise StoreConflict("case id", f"application {reference}")
            if _refused(conn, reference):
                raise StoreConflict("answer (a refusal)", f"application {reference}")
            other = conn.execute(
                "SELECT reference FROM applications WHERE case_id = ?", (case_id,)
            ).fetchone()
            if other is not None and other[0] != reference:
                raise StoreConflict("application", f"case {case_id}")
            if row[0] is None:
                conn.execute(
                    "UPDATE applications SET case_id = ?, acknowledged_at = ? WHERE reference = ?",
                    (case_id, at, reference),
                )
            return True

        if not self._write(ack):
            return None
        return self.application(reference)

    def refuse_application(
        self, reference: str, refusal: ApplicationRefusal, at: float
    ) -> tuple[StoredRefusal, bool] | None:
        """Record the federation's refusal of an application; None if there is no such
        application. The refusal held, and whether it is new: the same refusal again changes
        nothing; another one, or a refusal of an application that became a case, is a
        ``StoreConflict`` (rule 1)."""

        def refuse(conn: sqlite3.Connection) -> bool | None:
            row = conn.execute(
                "SELECT case_id FROM applications WHERE reference = ?", (reference,)
            ).fetchone()
            if row is None:
                return None
            if row[0] is not None:
                raise StoreConflict("answer (its federation case)", f"application {reference}")
            held = _refused(conn, reference)
            if held is not None:
                if held.refusal != refusal:
                    raise StoreConflict("refusal", f"application {reference}")
                return False
            conn.execute(
                "INSERT INTO refusals (reference, code, field, reason, refused_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (reference, refusal.code, refusal.field, refusal.reason, at),
            )
            return True

        created: bool | None = self._write(refuse)
        if created is None:
            return None
        held = self.refusal(reference)
        assert held is not None
        return held, created

    def refusal(self, reference: str) -> StoredRefusal | None:
        """The federation's refusal of an application, if it was refused."""
        return _refused(self._conn, reference)

    def _application(self, where: str, key: object) -> StoredApplication | None:
        row = self._conn.execute(
            f"SELECT {_APPLICATION_COLUMNS} FROM applications WHERE {where}",  # noqa: S608
            (key,),
        ).fetchone()
        return None if row is None else _application(row)

    # -- deliveries from the node ------------------------------------------------------------

    def add_inbound_case(self, case: InboundCase, at: float) -> bool:
        """Store a case to handle; False if exactly this case was already stored (rule 1)."""
        body = _dump(case_to_json(case))

        def add(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT body FROM inbound_cases WHERE case_id = ?", (case.case_id,)
            ).fetchone()
            if row is not None:
                if row[0] != body:
                    raise StoreConflict("inbound case", f"case {case.case_id}")
                return False
            conn.execute(
                "INSERT INTO inbound_cases (case_id, body, received_at) VALUES (?, ?, ?)",
                (case.case_id, body, at),
            )
            return True

        created: bool = self._write(add)
        return created

    def inbound_case(self, case_id: str) -> StoredCase | None:
        row = self._conn.execute(
            "SELECT body, received_at FROM inbound_cases WHERE case_id = ?", (case_id,)
        ).fetchone()
        return None if row is None else StoredCase(case_from_json(_load(row[0])), row[1])

    def add_notice(self, notice: CaseNotice, at: float) -> bool:
        """Store an update notice; False if exactly this one was already stored (rule 1)."""
        body = _dump(notice_to_json(notice))

        def add(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT body FROM notices WHERE case_id = ? AND sequence = ?",
                (notice.case_id, notice.sequence),
            ).fetchone()
            if row is not None:
                if row[0] != body:
                    raise StoreConflict("notice", f"case {notice.case_id} #{notice.sequence}")
                return False
            conn.execute(
                "INSERT INTO notices (case_id, sequence, body, received_at) VALUES (?, ?, ?, ?)",
                (notice.case_id, notice.sequence, body, at),
            )
            return True

        created: bool = self._write(add)
        return created

    def notices(self, case_id: str) -> list[StoredNotice]:
        rows = self._conn.execute(
            "SELECT body, received_at FROM notices WHERE case_id = ? ORDER BY sequence",
            (case_id,),
        ).fetchall()
        return [StoredNotice(notice_from_json(_load(body)), at) for body, at in rows]

    # -- the event feed ----------------------------------------------------------------------

    def append_event(self, event_id: str, case_id: str, body: Mapping[str, Any], at: float) -> bool:
        """Append to the feed; False (and nothing changed) if ``event_id`` is known (rule 2)."""

        def append(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO events (event_id, case_id, body, created) "
                "VALUES (?, ?, ?, ?)",
                (event_id, case_id, _dump(body), at),
            )
            return cursor.rowcount == 1

        appended: bool = self._write(append)
        return appended

    def events_since(self, position: int, limit: int) -> list[FeedEvent]:
        rows = self._conn.execute(
            "SELECT position, event_id, case_id, body, created FROM events WHERE position > ? "
            "ORDER BY position LIMIT ?",
            (position, limit),
        ).fetchall()
        return [_event(row) for row in rows]

    def events_of(self, case_id: str) -> list[FeedEvent]:
        rows = self._conn.execute(
            "SELECT position, event_id, case_id, body, created FROM events WHERE case_id = ? "
            "ORDER BY position",
            (case_id,),
        ).fetchall()
        return [_event(row) for row in rows]

    # -- the simulated people's bookkeeping --------------------------------------------------

    def open_work(self) -> tuple[list[str], list[str]]:
        """Case ids the simulated people may still act on: (handling, accepting)."""
        handling = [
            case_id
            for (case_id,) in self._conn.execute(
                "SELECT case_id FROM inbound_cases WHERE case_id NOT IN "
                "(SELECT case_id FROM settled) ORDER BY received_at, case_id"
            )
        ]
        accepting = [
            case_id
            for (case_id,) in self._conn.execute(
                "SELECT case_id FROM applications WHERE case_id IS NOT NULL AND case_id NOT IN "
                "(SELECT case_id FROM settled) AND reference NOT IN (SELECT reference FROM "
                "refusals) ORDER BY position"
            )
        ]
        return handling, accepting

    def settle(self, case_id: str, side: str) -> None:
        """Mark a case as needing nothing more from this platform's people."""
        self._write(
            lambda conn: conn.execute(
                "INSERT OR IGNORE INTO settled (case_id, side) VALUES (?, ?)", (case_id, side)
            )
        )

    def counts(self) -> dict[str, int]:
        """Rows per table: what tests compare to show that a refusal changed nothing."""
        tables = ("applications", "refusals", "inbound_cases", "notices", "events", "settled")
        return {
            table: int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
            for table in tables
        }


_APPLICATION_COLUMNS: Final = "position, reference, body, submitted_at, case_id, acknowledged_at"


def _sequence(conn: sqlite3.Connection, table: str) -> int:
    # AUTOINCREMENT's high-water mark: a position is never reused, even after a delete.
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    return 0 if row is None else int(row[0])


def _refused(conn: sqlite3.Connection, reference: str) -> StoredRefusal | None:
    row = conn.execute(
        "SELECT code, field, reason, refused_at FROM refusals WHERE reference = ?", (reference,)
    ).fetchone()
    if row is None:
        return None
    code, field, reason, refused_at = row
    return StoredRefusal(ApplicationRefusal(code, field, reason, in_dialect=True), refused_at)


def _application(row: Sequence[Any]) -> StoredApplication:
    position, reference, body, submitted_at, case_id, acknowledged_at = row
    return StoredApplication(
        position, reference, _load(body), submitted_at, case_id, acknowledged_at
    )


def _event(row: Sequence[Any]) -> FeedEvent:
    position, event_id, case_id, body, created = row
    return FeedEvent(position, event_id, case_id, _load(body), created)


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _load(text: str) -> dict[str, Any]:
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


# -- the engine's JSON form of the adapter's value types --------------------------------------


def case_to_json(case: InboundCase) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "accepting": case.accepting,
        "matter_code": case.matter_code,
        "mode": case.mode,
        "applicant": dict(case.applicant),
        "materials": [dict(material) for material in case.materials],
        "submitted_at": case.submitted_at,
    }


def case_from_json(data: Mapping[str, Any]) -> InboundCase:
    return InboundCase(
        case_id=data["case_id"],
        accepting=data["accepting"],
        matter_code=data["matter_code"],
        mode=data["mode"],
        applicant=dict(data["applicant"]),
        materials=[dict(material) for material in data["materials"]],
        submitted_at=float(data["submitted_at"]),
    )


def notice_to_json(notice: CaseNotice) -> dict[str, Any]:
    return {
        "case_id": notice.case_id,
        "sequence": notice.sequence,
        "action": notice.action,
        "by": notice.by,
        "status": notice.status,
        "at": notice.at,
        "reason": notice.reason,
        "result": None if notice.result is None else dict(notice.result),
        "evaluation": None if notice.evaluation is None else dict(notice.evaluation),
        "due_at": notice.due_at,
        "extra": dict(notice.extra),
    }


def notice_from_json(data: Mapping[str, Any]) -> CaseNotice:
    return CaseNotice(
        case_id=data["case_id"],
        sequence=int(data["sequence"]),
        action=data["action"],
        by=data["by"],
        status=data["status"],
        at=float(data["at"]),
        reason=data.get("reason", ""),
        result=data.get("result"),
        evaluation=data.get("evaluation"),
        due_at=data.get("due_at"),
        extra=data.get("extra") or {},
    )

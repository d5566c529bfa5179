"""The store on PostgreSQL: the same ``Database`` (one writer thread, group commit, a savepoint
per job) over a psycopg 3 connection, and the adapter that runs the store's SQL there.

Rules kept here:
- The store's SQL is written once with ``?`` placeholders (``connection``); ``PgConnection``
  turns them into psycopg's ``%s`` outside quoted literals and binds values on the client, as
  SQLite does, so a parameter's type never has to be inferred by the server.
- One writer connection per ``Database``, in autocommit mode: the writer thread says BEGIN,
  SAVEPOINT and COMMIT itself, as on SQLite. ``COMMIT`` returns once the server has made the
  transaction durable (``synchronous_commit`` on, as by default).
- Several ``Database`` objects (processes: the replicas of one node) may share one database.
  Opening one takes an advisory lock while it checks and migrates the schema, so two never
  migrate at once. Each batch's transaction begins by taking the store's write lock (an
  advisory transaction lock), so the writers of all processes take turns, one transaction
  at a time, as SQLite's one writer does: a batch mixes unrelated jobs, and writers that
  interleaved would lock rows in no common order and deadlock. So every rule the store's
  SQL keeps for one writer (read, then write what was read) holds across replicas too. The
  wait for the lock is bounded (``WRITE_LOCK_TIMEOUT``: then ``StoreUnavailable``), and a
  writer whose process stops mid-transaction without dying (frozen) loses its transaction
  after ``IDLE_TRANSACTION_TIMEOUT``, so one stuck replica cannot stall the others for good.
- A lost server is a state, not a crash: writes fail with ``StoreUnavailable`` and nothing of
  their transaction is kept; the next batch (and the next read) connects again, so the store
  recovers without a restart when the server is back. A connection lost during COMMIT leaves
  it unknown whether that commit happened: its jobs are told ``StoreUnavailable`` and may be
  tried again, which the node's idempotent receivers and outbox keys make harmless.
- A database without the node's schema table but with other tables is not a node store and
  is refused, never written into; a newer schema version than this code knows is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq

from node.store.connection import PostgresUrl
from node.store.database import Database, StoreError, StoreUnavailable, read_store_id
from node.store.schema_postgres import MIGRATIONS

CONNECT_TIMEOUT_SECONDS = 5
"""How long one attempt to reach the server may take."""
RECONNECT_PAUSE_SECONDS = 1.0
"""A reader that could not reconnect waits this long before trying again: reads come from
the event loop, which must not stall on every call while the server is away."""
SCHEMA_LOCK = 0x79726473746F7265
"""The advisory lock key held while a store's schema is checked and migrated ("yrdstore")."""
WRITE_LOCK = 0x7972777269746572
"""The advisory lock key each write transaction holds ("yrwriter"): one writer at a time."""
WRITE_LOCK_TIMEOUT = "10s"
"""How long a batch waits for another process's transaction before it fails as unavailable."""
IDLE_TRANSACTION_TIMEOUT = "30s"
"""A writer's transaction idle this long (its process frozen) is ended by the server."""
_IN_TRANSACTION = frozenset({pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR})

RawConnection = psycopg.Connection[tuple[Any, ...]]
_SAVEPOINT_STATEMENTS = ("SAVEPOINT ", "RELEASE ")


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """The store's SQL with psycopg's placeholders: ``?`` outside quoted literals becomes
    ``%s``, and a literal ``%`` is doubled. SQLite's numbered ``?N`` become ``%s`` too, with
    the order in which to pass the parameters (None when they go as they are)."""
    out: list[str] = []
    order: list[int] = []
    numbered = False
    quoted = False
    i = 0
    while i < len(sql):
        char = sql[i]
        i += 1
        if char == "'":
            quoted = not quoted
        if char == "%":
            out.append("%%")
        elif char == "?" and not quoted:
            out.append("%s")
            digits = ""
            while i < len(sql) and sql[i].isdigit():
                digits += sql[i]
                i += 1
            numbered = numbered or bool(digits)
            order.append(int(digits) - 1 if digits else len(order))
        else:
            out.append(char)
    return "".join(out), tuple(order) if numbered else None


def _bind(order: tuple[int, ...] | None, parameters: Sequence[Any]) -> tuple[Any, ...]:
    values = tuple(parameters)
    return values if order is None else tuple(values[i] for i in order)


class PgConnection:
    """A psycopg connection that speaks the store's ``Connection`` protocol.

    - A read-only one found broken by a statement (the server restarted) connects again and
      runs the statement once more: a read outside a transaction may be repeated.
    - ``SAVEPOINT`` and ``RELEASE`` (the writer's one savepoint per job and per part) are not
      sent alone: they go in front of the next statement, in the same round trip (three
      round trips per job would be two thirds of a job's time). They return no cursor worth
      reading. A ``ROLLBACK`` of the whole transaction drops them unsent.
    """

    def __init__(self, raw: RawConnection, *, url: PostgresUrl, read_only: bool) -> None:
        self.raw = raw
        self._url = url
        self._read_only = read_only
        self._deferred: list[str] = []
        self.changes = 0
        """Rows inserted, updated or deleted through this connection."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.ClientCursor[Any]:
        try:
            return self._execute(sql, parameters)
        except psycopg.OperationalError:
            if not (self._read_only and self.raw.broken):
                raise
        self.raw = connect(self._url, read_only=True).raw
        return self._execute(sql, parameters)

    def _execute(self, sql: str, parameters: Sequence[Any]) -> psycopg.ClientCursor[Any]:
        cursor = psycopg.ClientCursor(self.raw)
        if sql.startswith(_SAVEPOINT_STATEMENTS) and not parameters:
            self._deferred.append(sql)
            return cursor
        query, order = translate(sql)
        deferred, self._deferred = self._deferred, []
        if sql != "ROLLBACK" and deferred:
            query = "; ".join([*deferred, query])
        # Always a sequence, even empty: psycopg reads the query's placeholders only then.
        cursor.execute(query, _bind(order, parameters))
        while cursor.nextset():  # the deferred statements' results come first
            pass
        self._count(cursor)
        return cursor

    def executemany(
        self, sql: str, parameters: Iterable[Sequence[Any]], /
    ) -> psycopg.ClientCursor[Any]:
        if self._deferred:
            self._execute("SELECT 1", ())
        cursor = psycopg.ClientCursor(self.raw)
        query, order = translate(sql)
        cursor.executemany(query, [_bind(order, p) for p in parameters])
        self._count(cursor)
        return cursor

    def _count(self, cursor: psycopg.ClientCursor[Any]) -> None:
        status = cursor.statusmessage or ""
        if status.startswith(("INSERT", "UPDATE", "DELETE")) and cursor.rowcount > 0:
            self.changes += cursor.rowcount

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status in _IN_TRANSACTION

    @property
    def usable(self) -> bool:
        return not self.raw.closed and not self.raw.broken

    def close(self) -> None:
        self.raw.close()


def connect(url: PostgresUrl, *, read_only: bool = False) -> PgConnection:
    """A new autocommit connection to the store's database; ``StoreUnavailable`` when the
    server cannot be reached."""
    try:
        raw: RawConnection = psycopg.connect(
            url.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
    except psycopg.OperationalError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"cannot reach the store database {url}: {detail}") from exc
    if read_only:
        raw.execute("SET default_transaction_read_only = on")
    return PgConnection(raw, url=url, read_only=read_only)


def connect_writer(url: PostgresUrl) -> PgConnection:
    """``connect``, for a store's one writer: a transaction it leaves idle (a frozen process)
    is ended by the server rather than holding the write lock for good."""
    writer = connect(url)
    try:
        writer.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_TRANSACTION_TIMEOUT}'")
    except BaseException:
        writer.close()
        raise
    return writer


def _schema_version(conn: RawConnection, url: PostgresUrl) -> int:
    """The database's schema version (0 for an empty database), refusing one that is not a
    node store or is newer than this code. Writes nothing."""
    held = conn.execute("SELECT to_regclass('store_schema') IS NOT NULL").fetchone()
    if held is not None and held[0]:
        row = conn.execute("SELECT version FROM store_schema").fetchone()
        version = -1 if row is None else int(row[0])
    else:
        tables = [
            str(name)
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "current_schema() ORDER BY table_name LIMIT 5"
            )
        ]
        if tables:
            raise StoreError(
                f"database {url} is not a node store (it has no store_schema table but holds "
                f"tables: {', '.join(tables)}); point the node at a database of its own"
            )
        version = 0
    newest = max(MIGRATIONS)
    if version > newest:
        raise StoreError(
            f"database {url} has schema version {version}, newer than version {newest} that "
            "this node knows; it was written by a newer node. Run that version, or restore a "
            "backup made by this one"
        )
    if version < 0:
        raise StoreError(f"database {url} has a store_schema table without a version row")
    return version


def _migrate(conn: RawConnection, url: PostgresUrl) -> None:
    """Bring the schema up to date, one transaction per version, under the schema lock (a
    second process opening the same database waits, then finds it done)."""
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            version = _schema_version(conn, url)
            pending = [v for v in sorted(MIGRATIONS) if v > version]
            if not pending:
                return
            target = pending[0]
            try:
                if version == 0:
                    conn.execute("CREATE TABLE store_schema (version INTEGER NOT NULL)")
                    conn.execute("INSERT INTO store_schema (version) VALUES (0)")
                conn.execute(MIGRATIONS[target])
                conn.execute("UPDATE store_schema SET version = %s", (target,))
            except psycopg.Error as exc:
                raise StoreError(
                    f"migrating database {url} to schema version {target} failed: {exc}; the "
                    f"store was left at version {version}"
                ) from exc


def held_store_id(url: PostgresUrl) -> str | None:
    """The id of the store in ``url``'s database, read without changing anything; None when
    the database holds no store with an id (``database.held_store_id``)."""
    conn = connect(url, read_only=True)
    try:
        found = conn.execute("SELECT to_regclass('store_meta') IS NOT NULL").fetchone()
        return read_store_id(conn) if found is not None and found[0] else None
    except (psycopg.Error, StoreError):
        return None
    finally:
        conn.close()


def _open(url: PostgresUrl) -> tuple[PgConnection, PgConnection]:
    writer = connect_writer(url)
    try:
        _migrate(writer.raw, url)
        reader = connect(url, read_only=True)
    except psycopg.OperationalError as exc:
        writer.close()
        raise StoreUnavailable(f"lost the store database {url} while opening it: {exc}") from exc
    except BaseException:
        writer.close()
        raise
    return writer, reader


class PostgresDatabase(Database):
    """A store in a PostgreSQL database: one writer connection in the writer thread, one
    read connection for the event loop."""

    BEGIN = (
        f"BEGIN; SET LOCAL lock_timeout = '{WRITE_LOCK_TIMEOUT}'; "
        f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"
    )
    """The batch's transaction, its first act taking the store's write lock."""

    def __init__(self, url: PostgresUrl, writer: PgConnection, reader: PgConnection) -> None:
        self._url = url
        self._reader = reader
        self._reader_retry_at = 0.0
        self._last_size = 0
        super().__init__(
            url, writer, thread_name=url.url.rsplit("/", 1)[-1], store_id=read_store_id(reader)
        )

    @classmethod
    async def open_url(cls, url: PostgresUrl) -> PostgresDatabase:
        """Open the store in ``url``'s database (an empty database becomes a new store),
        check it, and bring its schema up to date."""
        writer, reader = await asyncio.to_thread(_open, url)
        return cls(url, writer, reader)

    def size_bytes(self) -> int:
        """The database's size; while the server is away, the last size it told."""
        try:
            row = self.reader().execute("SELECT pg_database_size(current_database())").fetchone()
        except (StoreError, psycopg.Error):
            return self._last_size
        self._last_size = int(row[0]) if row else self._last_size
        return self._last_size

    def reader(self) -> PgConnection:
        if self._closed:
            raise StoreError(f"store {self._where} is closed")
        if not self._reader.usable:
            now = time.monotonic()
            if now < self._reader_retry_at:
                raise StoreUnavailable(f"the store database {self._where} is unreachable")
            self._reader_retry_at = now + RECONNECT_PAUSE_SECONDS
            self._reader = connect(self._url, read_only=True)
        return self._reader

    def _close_readers(self) -> None:
        self._reader.close()

    def _close_writer(self) -> None:
        self._writer.close()

    def _prepare_writer(self) -> None:
        if not self._writer.usable:
            self._writer.close()
            self._writer = connect_writer(self._url)

    def _in_transaction(self) -> bool:
        return bool(self._writer.in_transaction)

    def _changes(self) -> int:
        return int(self._writer.changes)

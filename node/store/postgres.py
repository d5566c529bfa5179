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
- A server that stops answering without closing the connection (a frozen process, a network
  partition) is bounded too, on both sides. Every connection sends TCP keepalives and has a
  ``tcp_user_timeout`` (a partitioned server is found gone in ``KEEPALIVE_*`` seconds), and
  the node's sessions set ``statement_timeout`` (a stuck statement ends on the server). And a
  statement on the node's connections may take at most its client-side deadline
  (``READ_DEADLINE_SECONDS`` for the event loop's reader): past it, the ``Watchdog`` shuts the
  connection's socket, so the blocked call returns at once with ``StoreUnavailable`` and the
  connection is made again off the event loop. A frozen server therefore stalls the event
  loop for at most ``READ_DEADLINE_SECONDS`` per read (then the reader fails fast until the
  server answers again), never for good. What remains: a reader whose connection the server
  or the network closed (a restart, a partition found by keepalives) connects again in place,
  once, on the loop, which may wait ``RECONNECT_TIMEOUT_SECONDS`` when the server does not
  answer; reads of operator tools (``connect`` without a deadline) are not bounded.
- A database without the node's schema table but with other tables is not a node store and
  is refused, never written into; a newer schema version than this code knows is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq

from node.store.connection import PostgresUrl
from node.store.database import Database, StoreError, StoreUnavailable, read_store_id
from node.store.schema_postgres import MIGRATIONS

CONNECT_TIMEOUT_SECONDS = 5
"""How long one attempt to reach the server may take."""
RECONNECT_TIMEOUT_SECONDS = 2
"""How long a bounded connection found broken by a read (``PgConnection``) waits to connect
again in place: on the event loop, so short (libpq's shortest)."""
KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
"""libpq's TCP settings on every connection: an idle link is probed after 5 s and given up
after 3 unanswered probes 2 s apart; data unacknowledged for 10 s (ms here) ends the
connection. A partitioned server is so found gone in about 11 s, not after the kernel's two
hours. (A frozen server process is not: its kernel still answers; the deadlines are for that.)"""
READ_STATEMENT_TIMEOUT = "3s"
"""The event loop's reads are small and fast; one running longer is ended by the server."""
READ_DEADLINE_SECONDS = 4.0
"""The most a read on the event loop's connection waits for the server (it ends its own
statements at ``READ_STATEMENT_TIMEOUT``): past it, the server is taken as not answering."""
WRITE_STATEMENT_TIMEOUT = "20s"
"""A statement of the writer (the batch's BEGIN waits up to ``WRITE_LOCK_TIMEOUT``)."""
WRITE_DEADLINE_SECONDS = 25.0
"""The most the writer thread waits for one statement before it takes the server as gone."""
STATEMENTS_PER_DEADLINE = 1000
"""An ``executemany`` of more rows than this is given one deadline for each so many."""
PROBE_DEADLINE_SECONDS = 2.0
"""How long the store's readiness probe waits for ``SELECT 1``."""
PROBE_INTERVAL_SECONDS = 1.0
"""How often the readiness probe asks."""
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


class _Watched:
    """A statement the watchdog bounds: its connection, its deadline, whether it was ended."""

    def __init__(self, raw: RawConnection, deadline: float) -> None:
        self.raw = raw
        self.deadline = deadline
        self.ended = False


class Watchdog:
    """One thread per process that ends statements running past their deadline, by shutting
    their connection's socket (libpq's blocked wait then returns with a lost connection).

    Shutting, not closing: the descriptor stays libpq's, so it is never reused under it.
    The check and the shutdown happen under the same lock as a statement's end, so only a
    statement still running is ended."""

    POLL_SECONDS = 0.2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: set[_Watched] = set()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def bound(self, raw: RawConnection, seconds: float) -> Iterator[_Watched]:
        watched = _Watched(raw, time.monotonic() + seconds)
        with self._lock:
            self._watched.add(watched)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="store-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield watched
        finally:
            with self._lock:
                self._watched.discard(watched)

    def _run(self) -> None:
        while True:
            time.sleep(self.POLL_SECONDS)
            now = time.monotonic()
            with self._lock:
                for watched in [w for w in self._watched if w.deadline <= now]:
                    self._watched.discard(watched)
                    watched.ended = True
                    _shut(watched.raw)


def _shut(raw: RawConnection) -> None:
    with contextlib.suppress(OSError, psycopg.Error):
        duplicate = socket.socket(fileno=os.dup(raw.pgconn.socket))
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.close()


WATCHDOG = Watchdog()


class PgConnection:
    """A psycopg connection that speaks the store's ``Connection`` protocol.

    - A read-only one found broken by a statement (the server restarted) connects again and
      runs the statement once more: a read outside a transaction may be repeated. Not one
      whose statement the watchdog ended: the server is not answering, and a new connection
      would wait for it too.
    - With a ``deadline``, each statement waits at most that long for the server
      (``Watchdog``); then it fails with ``StoreUnavailable`` and the connection is broken.
    - ``SAVEPOINT`` and ``RELEASE`` (the writer's one savepoint per job and per part) are not
      sent alone: they go in front of the next statement, in the same round trip (three
      round trips per job would be two thirds of a job's time). They return no cursor worth
      reading. A ``ROLLBACK`` of the whole transaction drops them unsent.
    """

    def __init__(
        self,
        raw: RawConnection,
        *,
        url: PostgresUrl,
        read_only: bool,
        statement_timeout: str | None = None,
        deadline: float | None = None,
    ) -> None:
        self.raw = raw
        self._url = url
        self._read_only = read_only
        self._statement_timeout = statement_timeout
        self._deadline = deadline
        self._deferred: list[str] = []
        self.changes = 0
        """Rows inserted, updated or deleted through this connection."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.ClientCursor[Any]:
        try:
            return self._execute(sql, parameters)
        except psycopg.OperationalError:
            if not (self._read_only and self.raw.broken):
                raise
        self.raw = connect(
            self._url,
            read_only=True,
            statement_timeout=self._statement_timeout,
            deadline=self._deadline,
            connect_timeout=CONNECT_TIMEOUT_SECONDS
            if self._deadline is None
            else RECONNECT_TIMEOUT_SECONDS,
        ).raw
        return self._execute(sql, parameters)

    @contextlib.contextmanager
    def _bounded(self, statements: int = 1) -> Iterator[None]:
        """The ``statements`` inside, ended by the watchdog past this connection's deadline
        (for each ``STATEMENTS_PER_DEADLINE`` of them: a purge's thousands of rows are one
        call, each row a statement)."""
        if self._deadline is None:
            yield
            return
        seconds = self._deadline * -(-statements // STATEMENTS_PER_DEADLINE)
        with WATCHDOG.bound(self.raw, seconds) as watched:
            try:
                yield
            except psycopg.OperationalError as exc:
                if watched.ended:
                    raise StoreUnavailable(
                        f"the store database {self._url} did not answer within {seconds:g} s"
                    ) from exc
                raise

    def _execute(self, sql: str, parameters: Sequence[Any]) -> psycopg.ClientCursor[Any]:
        cursor = psycopg.ClientCursor(self.raw)
        if sql.startswith(_SAVEPOINT_STATEMENTS) and not parameters:
            self._deferred.append(sql)
            return cursor
        query, order = translate(sql)
        deferred, self._deferred = self._deferred, []
        if sql != "ROLLBACK" and deferred:
            query = "; ".join([*deferred, query])
        with self._bounded():
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
        rows = [_bind(order, p) for p in parameters]
        with self._bounded(len(rows)):
            cursor.executemany(query, rows)
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


def connect(
    url: PostgresUrl,
    *,
    read_only: bool = False,
    statement_timeout: str | None = None,
    deadline: float | None = None,
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
) -> PgConnection:
    """A new autocommit connection to the store's database (with ``KEEPALIVE``);
    ``StoreUnavailable`` when the server cannot be reached. ``statement_timeout``: the
    session's, ended by the server; ``deadline``: the client's (``PgConnection``)."""
    try:
        raw: RawConnection = psycopg.connect(
            url.url, autocommit=True, connect_timeout=connect_timeout, **KEEPALIVE
        )
    except psycopg.OperationalError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"cannot reach the store database {url}: {detail}") from exc
    settings = [
        *(["SET default_transaction_read_only = on"] if read_only else []),
        *([f"SET statement_timeout = '{statement_timeout}'"] if statement_timeout else []),
    ]
    conn = PgConnection(
        raw, url=url, read_only=read_only, statement_timeout=statement_timeout, deadline=deadline
    )
    if settings:
        try:
            conn.execute("; ".join(settings))
        except BaseException:
            conn.close()
            raise
    return conn


def connect_reader(url: PostgresUrl) -> PgConnection:
    """``connect``, for the event loop's reads: bounded on the server and on the client."""
    return connect(
        url,
        read_only=True,
        statement_timeout=READ_STATEMENT_TIMEOUT,
        deadline=READ_DEADLINE_SECONDS,
    )


def connect_writer(url: PostgresUrl) -> PgConnection:
    """``connect``, for a store's one writer: a transaction it leaves idle (a frozen process)
    is ended by the server rather than holding the write lock for good, and so is a stuck
    statement; a server that does not answer fails the batch after
    ``WRITE_DEADLINE_SECONDS``."""
    writer = connect(
        url, statement_timeout=WRITE_STATEMENT_TIMEOUT, deadline=WRITE_DEADLINE_SECONDS
    )
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
        # A migration may rewrite a large table: no statement timeout while it runs.
        writer.raw.execute("SET statement_timeout = 0")
        _migrate(writer.raw, url)
        writer.raw.execute(f"SET statement_timeout = '{WRITE_STATEMENT_TIMEOUT}'")
        reader = connect_reader(url)
    except psycopg.OperationalError as exc:
        writer.close()
        raise StoreUnavailable(f"lost the store database {url} while opening it: {exc}") from exc
    except BaseException:
        writer.close()
        raise
    return writer, reader


class PostgresDatabase(Database):
    """A store in a PostgreSQL database: one writer connection in the writer thread, one
    read connection for the event loop (made again off the loop when lost), and a readiness
    probe in a thread of its own (``read_problem``)."""

    BEGIN = (
        f"BEGIN; SET LOCAL lock_timeout = '{WRITE_LOCK_TIMEOUT}'; "
        f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"
    )
    """The batch's transaction, its first act taking the store's write lock."""

    def __init__(self, url: PostgresUrl, writer: PgConnection, reader: PgConnection) -> None:
        self._url = url
        self._reader = reader
        self._reader_retry_at = 0.0
        self._fresh_reader: PgConnection | None = None
        self._reconnecting = False
        self._fresh_lock = threading.Lock()
        """Guards ``_fresh_reader`` and ``_reconnecting`` between the loop and the thread
        that connects."""
        self._last_size = 0
        self._probe_answered_at = time.monotonic()
        self._probe_failure: str | None = None
        self._probe_stop = threading.Event()
        super().__init__(
            url, writer, thread_name=url.url.rsplit("/", 1)[-1], store_id=read_store_id(reader)
        )
        self._probe = threading.Thread(
            target=self._run_probe, name=f"store-probe:{url.url.rsplit('/', 1)[-1]}", daemon=True
        )
        self._probe.start()

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

    def read_problem(self) -> str | None:
        """What the probe thread last found, without waiting for the server: None while
        ``SELECT 1`` was answered within the last few seconds."""
        if self._closed:
            return f"store {self._where} is closed"
        silent = time.monotonic() - self._probe_answered_at
        if silent > PROBE_DEADLINE_SECONDS + 2 * PROBE_INTERVAL_SECONDS:
            why = f": {self._probe_failure}" if self._probe_failure else ""
            return f"the store database {self._where} has not answered for {silent:.0f} s{why}"
        return None

    def _run_probe(self) -> None:
        """``SELECT 1`` every ``PROBE_INTERVAL_SECONDS`` on a connection of its own, bounded
        by ``PROBE_DEADLINE_SECONDS``; a lost connection is made again at the next round."""
        conn: PgConnection | None = None
        while not self._probe_stop.wait(PROBE_INTERVAL_SECONDS):
            try:
                if conn is None or not conn.usable:
                    if conn is not None:
                        conn.close()
                    conn = None
                    conn = connect(
                        self._url,
                        read_only=True,
                        statement_timeout=f"{PROBE_DEADLINE_SECONDS:g}s",
                        deadline=PROBE_DEADLINE_SECONDS,
                    )
                conn.execute("SELECT 1").fetchone()
            except (StoreError, psycopg.Error) as exc:
                self._probe_failure = str(exc).strip().splitlines()[-1] if str(exc) else None
            else:
                self._probe_failure = None
                self._probe_answered_at = time.monotonic()
        if conn is not None:
            conn.close()

    def reader(self) -> PgConnection:
        if self._closed:
            raise StoreError(f"store {self._where} is closed")
        if not self._reader.usable:
            with self._fresh_lock:
                fresh, self._fresh_reader = self._fresh_reader, None
            if fresh is None:
                self._reconnect_reader()
                raise StoreUnavailable(f"the store database {self._where} is unreachable")
            self._reader.close()
            self._reader = fresh
        return self._reader

    def _reconnect_reader(self) -> None:
        """Make the event loop's connection again in a thread: connecting waits for the
        server (up to ``CONNECT_TIMEOUT_SECONDS``), which the loop must not."""
        now = time.monotonic()
        with self._fresh_lock:
            if self._reconnecting or now < self._reader_retry_at:
                return
            self._reconnecting = True
        self._reader_retry_at = now + RECONNECT_PAUSE_SECONDS

        def reconnect() -> None:
            fresh: PgConnection | None = None
            with contextlib.suppress(StoreError):  # the next read asks again, after the pause
                fresh = connect_reader(self._url)
            with self._fresh_lock:
                self._reconnecting = False
                if fresh is not None and not self._closed and self._fresh_reader is None:
                    self._fresh_reader, fresh = fresh, None
            if fresh is not None:
                fresh.close()

        threading.Thread(target=reconnect, name="store-reader-connect", daemon=True).start()

    def _close_readers(self) -> None:
        self._probe_stop.set()
        self._reader.close()
        with self._fresh_lock:
            fresh, self._fresh_reader = self._fresh_reader, None
        if fresh is not None:
            fresh.close()

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

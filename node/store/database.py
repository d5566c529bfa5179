"""The node's store: one writer thread, group commit; on SQLite (one file, the default) or
PostgreSQL (``node.store.postgres``). ``Database.open(location)`` takes either.

Rules kept here (for both backends; file rules are SQLite's):
- Exactly one connection writes, and one thread owns it. ``Database.write(fn)`` queues ``fn``;
  the writer thread takes everything queued (up to ``MAX_BATCH`` jobs) and runs it in ONE
  transaction, so many concurrent writes share one fsync (group commit). Each job runs inside
  its own savepoint: a job that raises undoes only its own changes and gets its own
  exception, while the rest of the batch commits.
- Jobs commit in the order they were submitted; callers rely on it (a case update queued
  after another is never stored before it).
- ``write()`` returns only after COMMIT, in WAL mode with ``synchronous=FULL``: from that
  moment what it wrote survives a crash or a power loss.
- A job is plain synchronous SQL over the connection it is given. It must not begin, commit
  or roll back transactions itself, must not keep the connection, and should return plain
  values. Once queued it runs even if its caller stops waiting (is cancelled).
- Only a missing store file means a new node. A new store is made whole under a temporary
  name beside it (schema version 1, written and synced) and linked into place, so the store
  file is never seen empty, even after a crash while it is made.
- An existing store file that is empty (zero length), not SQLite, fails ``PRAGMA
  quick_check`` or holds no node schema stops start-up with ``StoreCorrupt``, saying what
  to do. The file is never deleted, recreated or repaired: it may be what is left of the
  node's evidence (``: > node.db`` empties it), so what to do with it is an operator's
  decision; silently starting an empty node over it would lose every case for good.
- A store whose schema version is newer than this code knows is refused, never downgraded.
- Every store has an id of its own (``store_id``: random, made with it, never changed; read
  at open), so that processes that cannot see each other's store can tell whether they
  share one (the replicas of a node, ``node.runtime.replicas``).
- A store that cannot take writes for a while (disk full, I/O error, locked by another
  process) is a state, not a crash: the failed writes raise ``StoreUnavailable``, nothing of
  their transaction is kept, ``write_problem()`` says why until a commit succeeds again, and
  ``probe_write`` is the smallest write that finds out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from node.store.connection import Connection, PostgresUrl, StoreLocation, store_location
from node.store.schema import MIGRATIONS

T = TypeVar("T")

MAX_BATCH = 512
"""Most jobs one transaction takes; bounds how long a commit holds the write lock."""
BUSY_TIMEOUT_MS = 5000
PROBE_BYTES = 16 * 1024
"""What ``probe_write`` writes: a few fresh pages, as a small real write would need."""
STORE_FILE_MODE = 0o600
STORE_DIR_MODE = 0o700
SQLITE_HEADER = b"SQLite format 3\x00"
_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
    }
)
"""SQLite result codes that say the store cannot write now but may later: the data is
intact, the disk or the file's lock is not."""
_UNAVAILABLE_POSTGRES = (
    psycopg.OperationalError,  # the server is gone, restarting, refusing connections
    pg_errors.InsufficientResources,  # disk full, out of memory, too many connections
    pg_errors.TransactionRollback,  # serialization failure, deadlock: the same write may pass
    pg_errors.LockNotAvailable,
    pg_errors.ReadOnlySqlTransaction,  # a standby, or a primary being demoted
)
"""PostgreSQL errors that say the same: the data is intact, the server or its disk is not
taking writes now."""


class StoreError(Exception):
    """The store cannot do what was asked; the message says why."""


class StoreCorrupt(StoreError):
    """The store file is damaged; the node refuses to start rather than touch it."""


class StoreUnavailable(StoreError):
    """The store cannot take writes now (disk full, I/O error, locked); nothing of the
    write was kept, and the same write may succeed later."""


class DuplicateEntry(StoreError):
    """A row with the same key (message id) is already stored."""


@dataclass
class _Job:
    fn: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    """``after_commit`` callbacks the job registered."""
    queued_at: float = field(default_factory=time.perf_counter)


class _Stop:
    """Queued by ``close()``: everything queued before it is written, then the thread ends."""


class _BatchLost(Exception):
    """The batch transaction ended while a job ran; nothing in the batch was committed."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"job {index} ended the transaction")
        self.index = index
        self.cause = cause


def _settle_all(settled: list[tuple[_Job, bool, Any]]) -> None:
    """On the jobs' event loop: resolve each job's future, then run its ``after_commit``
    callbacks, in commit order."""
    for job, ok, value in settled:
        future = job.future
        # A caller that was cancelled no longer waits; its write happened all the same.
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for callback in job.callbacks if ok else ():
            try:
                callback()
            except Exception as exc:  # one failing callback must not strand the other jobs
                future.get_loop().call_exception_handler(
                    {"message": "after_commit callback failed", "exception": exc}
                )


def _corrupt(path: Path, what: str) -> StoreCorrupt:
    return StoreCorrupt(
        f"store file {path} is corrupt ({what}); the node refuses to start. Restore it from a "
        "backup or move it aside (only a missing store file starts a new node); it has been "
        "left exactly as it was"
    )


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (StoreUnavailable, *_UNAVAILABLE_POSTGRES)):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in _UNAVAILABLE_CODES
    )


def _write_failure(exc: BaseException, what: str) -> StoreError:
    """The error a caller gets for a write that did not happen because of ``exc``."""
    error = (StoreUnavailable if _is_unavailable(exc) else StoreError)(f"{what} ({exc})")
    error.__cause__ = exc
    return error


def read_store_id(conn: Connection) -> str:
    """The store's own id (``store_meta``)."""
    row = conn.execute("SELECT value FROM store_meta WHERE name = 'store_id'").fetchone()
    if row is None:
        raise StoreError("the store has no store id (store_meta holds no 'store_id' row)")
    return str(row[0])


async def held_store_id(location: StoreLocation | str) -> str | None:
    """The id of the store at ``location`` without opening it (nothing is created, migrated
    or written): None where there is no store yet, one from before store ids, or one that
    cannot be read (``Database.open`` then says why). ``StoreUnavailable`` when its database
    server cannot be reached."""
    if isinstance(location, str):
        location = store_location(location)
    if isinstance(location, PostgresUrl):
        from node.store.postgres import held_store_id as held_in_database

        return await asyncio.to_thread(held_in_database, location)
    return await asyncio.to_thread(_held_in_file, Path(location))


def _held_in_file(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        # Read-only: nothing created or written (a WAL store's latest commits are read too).
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            return read_store_id(conn)
        finally:
            conn.close()
    except (sqlite3.Error, StoreError):
        return None


def probe_write(at: float) -> Callable[[Connection], None]:
    """The smallest real write: it commits only if the store takes writes again."""

    def write(conn: Connection) -> None:
        conn.execute(
            "INSERT INTO store_probe (id, written_at, filler) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, "
            "filler = excluded.filler",
            (at, os.urandom(PROBE_BYTES)),
        )

    return write


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _CORRUPTION_CODES


def _check_file(path: Path) -> None:
    """Refuse a file that is empty or not an intact SQLite database, without writing to it
    (only a missing file means a new store: ``_create``)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read store file {path}: {exc.strerror or exc}") from exc
    if size == 0:
        # SQLite would take it as a new, empty database; but this node makes a new store
        # whole (``_create``), so an empty file is one that was emptied, or not ours.
        raise _corrupt(
            path,
            "it is empty (zero bytes): every case, inbox id and evidence entry it held is "
            "gone. If this node has never run, delete the empty file and start again; if it "
            "has, restore the store from a backup",
        )
    if head != SQLITE_HEADER:
        raise _corrupt(path, "it does not start with the SQLite header; not a SQLite database")
    try:
        # Read-only, so a damaged file is looked at, never rolled back or checkpointed into.
        # With no write-ahead log beside it, also immutable: then SQLite creates no -wal and
        # -shm files next to a file it may be about to refuse.
        has_wal = path.with_name(path.name + "-wal").exists()
        mode = "?mode=ro" if has_wal else "?mode=ro&immutable=1"
        check = sqlite3.connect(path.resolve().as_uri() + mode, uri=True)
        try:
            rows = check.execute("PRAGMA quick_check").fetchall()
        finally:
            check.close()
    except sqlite3.Error as exc:
        if _is_corruption(exc):
            raise _corrupt(path, f"SQLite reports: {exc}") from exc
        raise StoreError(f"cannot open store file {path}: {exc}") from exc
    problems = [str(row[0]) for row in rows]
    if problems != ["ok"]:
        more = f" and {len(problems) - 3} more problems" if len(problems) > 3 else ""
        raise _corrupt(path, "quick_check found: " + "; ".join(problems[:3]) + more)


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module opens no transactions of its own; the writer
    # thread says BEGIN/SAVEPOINT/COMMIT explicitly. check_same_thread=False because the
    # connections are made in a worker thread and then handed to their one user.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _configure_writer(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(
            f"store file {path} cannot use write-ahead logging (journal_mode is {mode}); "
            "put it on a local file system"
        )
    # FULL: in WAL mode NORMAL may lose the last commits on power loss; a write() that has
    # returned is a promise to a peer or a platform, so it must not be lost.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The store's schema version, refusing one this code cannot run on. Writes nothing."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    known = len(MIGRATIONS)
    if version > known:
        raise StoreError(
            f"store file {path} has schema version {version}, newer than version {known} that "
            "this node knows; it was written by a newer node. Run that version, or restore a "
            "backup made by this one"
        )
    if version < 0:
        raise StoreError(f"store file {path} has a negative schema version ({version})")
    if version == 0:
        tables = [
            str(row[0])
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        # Migrating would write our tables into somebody else's database; and an empty one
        # was not made by a node (``_create`` makes version 1 at once).
        held = f"it holds tables: {', '.join(sorted(tables)[:5])}" if tables else "it is empty"
        raise StoreError(
            f"store file {path} is a SQLite database but not a node store (schema version 0, "
            f"{held}); point the node at its own store file, or delete this one if it is not "
            "needed and the node has never run"
        )
    return version


def _migrate(
    conn: sqlite3.Connection, path: Path, version: int, *, upto: int | None = None
) -> None:
    for target in range(version + 1, (upto or len(MIGRATIONS)) + 1):
        script = MIGRATIONS[target - 1]
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"migrating store file {path} to schema version {target} failed: {exc}; the "
                f"store was left at version {target - 1}"
            ) from exc


def _create(path: Path) -> None:
    """A new store at ``path``, whole or not at all: schema version 1 written and synced under
    a temporary name beside it, then linked into place (never over a file that appeared
    meanwhile: another process's new store is then used)."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    except OSError as exc:
        raise StoreError(f"cannot create store file {path}: {exc.strerror or exc}") from exc
    try:
        # Owner-only from the first byte (as mkstemp makes it): case data and evidence.
        os.fchmod(fd, STORE_FILE_MODE)
    finally:
        os.close(fd)
    draft = Path(name)
    try:
        conn = sqlite3.connect(draft, isolation_level=None)
        try:
            # The default rollback journal: once committed, everything is in the one file.
            _migrate(conn, path, 0, upto=1)
        finally:
            conn.close()
        with draft.open("rb") as handle:
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot create store file {path}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot create store file {path}: {exc.strerror or exc}") from exc
    finally:
        for leftover in (draft, draft.with_name(draft.name + "-journal")):
            leftover.unlink(missing_ok=True)


def _open_files(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    try:
        path.parent.mkdir(mode=STORE_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the store directory {path.parent}: {exc.strerror or exc}"
        ) from exc
    if not path.exists():
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"store file {path} is missing but its write-ahead log {wal} is there; the node "
                "refuses to start a new store over it. Restore the store file or move the log "
                "aside"
            )
        _create(path)
    _check_file(path)
    writer: sqlite3.Connection | None = None
    reader: sqlite3.Connection | None = None
    try:
        writer = _connect(path)
        # Checked before anything (even switching to WAL) is written to a file we may refuse.
        version = _schema_version(writer, path)
        _configure_writer(writer, path)
        _migrate(writer, path, version)
        reader = _connect(path)
        reader.execute("PRAGMA query_only = ON")
    except BaseException as exc:
        for conn in (reader, writer):
            if conn is not None:
                conn.close()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"cannot open store file {path}: {exc}") from exc
        raise
    return writer, reader


class Database:
    """A store, its one writer thread and the event loop's read connection; the backend's
    own parts (how a transaction begins, what counts as a change, how readers are made and
    the store closed) are its subclass's."""

    BEGIN = "BEGIN"
    """The statement that opens a batch's transaction."""

    def __init__(
        self, location: StoreLocation, writer: Any, *, thread_name: str, store_id: str
    ) -> None:
        self._location = location
        self.store_id = store_id
        """The store's own id: random, made with the store, never changed (module rules)."""
        self._where = str(location)
        self._writer = writer
        self._queue: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
        self._closed = False
        self._stop_error: BaseException | None = None
        self.commit_failure: str | None = None
        """Why the last transaction failed to commit; None after a successful one."""
        self.commits = 0
        """Transactions committed (each may carry many jobs)."""
        self.jobs_committed = 0
        """Write jobs that committed."""
        self.commit_seconds_total = 0.0
        """Time spent from BEGIN to the end of COMMIT (fsync included), summed."""
        self._job_callbacks: list[Callable[[], None]] = []
        self.observe_write: Callable[[float], None] | None = None
        """Called in the writer thread with each committed write's latency (queued to
        durable), e.g. a Prometheus histogram's ``observe`` (thread-safe)."""
        self._thread = threading.Thread(
            target=self._run, name=f"store-writer:{thread_name}", daemon=True
        )
        self._thread.start()

    @classmethod
    async def open(cls, location: StoreLocation | str) -> Database:
        """Open (or create) the store at ``location`` (a SQLite file or a PostgreSQL URL),
        check it, and bring its schema up to date."""
        if isinstance(location, str):
            location = store_location(location)
        if isinstance(location, PostgresUrl):
            # Here, not at the top: the PostgreSQL backend builds on this module.
            from node.store.postgres import PostgresDatabase

            return await PostgresDatabase.open_url(location)
        return await SqliteDatabase.open_file(Path(location))

    @property
    def location(self) -> StoreLocation:
        """The store's file or database, as ``Database.open`` takes it."""
        return self._location

    @property
    def closed(self) -> bool:
        """True once ``close()`` has begun; writes and reads are refused from then on."""
        return self._closed

    def write_problem(self) -> str | None:
        """Why writes would fail now (None when the store can take them): closed, writer
        stopped, or the last commit failed (and, per backend, more)."""
        if self._closed:
            return "store is closed"
        if not self._thread.is_alive():
            return "the store's writer thread has stopped"
        return self.commit_failure

    def size_bytes(self) -> int:
        """How much room the store takes (files, or the database)."""
        raise NotImplementedError

    def read_problem(self) -> str | None:
        """Why reads would fail now (None when the store answers); never waits for long, so
        the event loop may ask it (readiness)."""
        try:
            self.reader().execute("SELECT 1").fetchone()
        except (sqlite3.Error, psycopg.Error, StoreError) as exc:
            return f"store cannot be read: {exc}"
        return None

    @property
    def queued(self) -> int:
        """Write jobs waiting for the writer thread."""
        return self._queue.qsize()

    def submit(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn`` for the writer thread now; the future resolves once it is durably
        committed. Jobs commit in the order they were submitted."""
        if self._closed:
            raise StoreError(f"store {self._where} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, future))
        return future

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in the writer thread; return its result once it is durably committed."""
        return await self.submit(fn)

    def reader(self) -> Connection:
        """The event loop's read-only connection, for small fast reads.

        Fetch results fully: a half-read cursor holds a read snapshot open (on SQLite, it
        keeps the write-ahead log from being folded back into the file)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Write everything already queued, close the store."""
        if self._closed:
            return
        self._closed = True
        # Readers first, so the writer's connection is the last one (SQLite folds the WAL).
        self._close_readers()
        self._queue.put(_Stop())
        await asyncio.to_thread(self._thread.join)
        if self._stop_error is not None:
            raise StoreError(
                f"store {self._where} did not close cleanly: {self._stop_error}"
            ) from self._stop_error

    # --- what each backend does its own way --------------------------------------------------

    def _close_readers(self) -> None:
        raise NotImplementedError

    def _close_writer(self) -> None:
        """In the writer thread, after the last batch."""
        raise NotImplementedError

    def _prepare_writer(self) -> None:
        """In the writer thread, before each batch: e.g. reconnect a lost connection."""

    def _in_transaction(self) -> bool:
        raise NotImplementedError

    def _changes(self) -> int:
        """Rows changed through the writer so far (only the difference is used)."""
        raise NotImplementedError

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if isinstance(item, _Stop):
                break
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
        self._close_writer()

    def _commit(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        started = time.perf_counter()
        try:
            self._prepare_writer()
            conn = self._writer
            changes = self._changes()
            conn.execute(self.BEGIN)
            for index, job in enumerate(batch):
                outcomes.append(self._run_job(conn, index, job))
            conn.execute("COMMIT")
        except _BatchLost as lost:
            self._rollback()
            if _is_unavailable(lost.cause):
                self.commit_failure = f"the last commit failed: {lost.cause}"
            reason = _write_failure(
                lost.cause, "not written: the transaction was lost when another write failed"
            )
            outcomes = [(False, reason) for _ in batch]
            own = lost.cause
            if isinstance(own, sqlite3.Error | psycopg.Error):
                own = _write_failure(own, "not written")
            outcomes[lost.index] = (False, own)
        except Exception as exc:
            self._rollback()
            self.commit_failure = f"the last commit failed: {exc}"
            reason = _write_failure(exc, "not written: the store could not commit")
            outcomes = [(False, reason) for _ in batch]
        else:
            if self._changes() != changes:
                # Only a commit that wrote something shows the store takes writes again; a
                # transaction that changed nothing commits even on a full disk.
                self.commit_failure = None
            self.commits += 1
            self.jobs_committed += sum(1 for ok, _ in outcomes if ok)
            finished = time.perf_counter()
            self.commit_seconds_total += finished - started
            if self.observe_write is not None:
                for job in batch:
                    self.observe_write(finished - job.queued_at)
        # One wake-up per event loop for the whole batch, not one per job: under load a
        # batch holds hundreds of jobs, and each wake-up is a write to the loop's self-pipe.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, bool, Any]]] = {}
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job, ok, value))
        for loop, settled in by_loop.items():
            # RuntimeError: the caller's event loop is gone; nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, settled)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """From inside a write job: run ``callback`` on the job's event loop once the
        transaction holding the job has committed (never if the job or the batch fails)."""
        assert threading.current_thread() is self._thread, "only from inside a write job"
        self._job_callbacks.append(callback)

    def each(self, conn: Connection, parts: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """From inside a write job: run ``parts`` one after another, each under a savepoint
        of its own. A part that raises leaves nothing behind, neither its writes nor the
        after-commit callbacks it registered, and its exception takes its place in the
        result; the other parts go on. A failure that loses the transaction (disk full, I/O,
        the server gone) is not a part's: it ends the job."""
        assert threading.current_thread() is self._thread, "only from inside a write job"
        results: list[T | Exception] = []
        for part in parts:
            mark = len(self._job_callbacks)
            conn.execute("SAVEPOINT part")
            try:
                value = part()
            except Exception as exc:
                if not self._in_transaction() or _is_unavailable(exc):
                    raise
                conn.execute("ROLLBACK TO part")
                conn.execute("RELEASE part")
                del self._job_callbacks[mark:]
                results.append(exc)
            else:
                conn.execute("RELEASE part")
                results.append(value)
        return results

    def _run_job(self, conn: Connection, index: int, job: _Job) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT job")
        self._job_callbacks = []
        try:
            value = job.fn(conn)
        except Exception as exc:
            if not self._in_transaction() or _is_unavailable(exc):
                # SQLite rolls back the whole transaction on some errors (disk full, I/O);
                # where it does not, the store cannot be trusted to commit the rest either.
                raise _BatchLost(index, exc) from exc
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return False, exc
        if not self._in_transaction():
            raise _BatchLost(
                index, StoreError("a write job must not commit or roll back the transaction")
            )
        conn.execute("RELEASE job")
        job.callbacks = self._job_callbacks
        return True, value

    def _rollback(self) -> None:
        # If ROLLBACK itself fails the transaction is gone anyway; the next BEGIN starts clean.
        if self._in_transaction():
            with contextlib.suppress(sqlite3.Error, psycopg.Error):
                self._writer.execute("ROLLBACK")


class SqliteDatabase(Database):
    """The store file, its one writer thread and the event loop's read connection."""

    BEGIN = "BEGIN IMMEDIATE"

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self._path = path
        self._reader = reader
        super().__init__(path, writer, thread_name=path.name, store_id=read_store_id(reader))

    @classmethod
    async def open_file(cls, path: Path) -> SqliteDatabase:
        """Open (or create) the store at ``path``, check it, and bring its schema up to date."""
        writer, reader = await asyncio.to_thread(_open_files, path)
        return cls(path, writer, reader)

    @property
    def path(self) -> Path:
        return self._path

    def write_problem(self) -> str | None:
        """Also: the file or its folder is not writable."""
        if self._closed or not self._thread.is_alive():
            return super().write_problem()
        for target in (self._path, self._path.parent):
            if not os.access(target, os.W_OK):
                return f"{target} is not writable"
        return self.commit_failure

    def size_bytes(self) -> int:
        """The store file and its write-ahead log."""
        return sum(
            path.stat().st_size
            for path in (self._path, self._path.with_name(self._path.name + "-wal"))
            if path.exists()
        )

    def reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"store {self._path} is closed")
        return self._reader

    def _close_readers(self) -> None:
        self._reader.close()

    def _close_writer(self) -> None:
        try:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            self._stop_error = exc
        finally:
            self._writer.close()

    def _in_transaction(self) -> bool:
        return bool(self._writer.in_transaction)

    def _changes(self) -> int:
        return int(self._writer.total_changes)

"""Who may hold a store: held while the node runs, dropped when its process ends.

A SQLite store is one node process's: an exclusive ``flock`` on ``<store>.lock``. A
PostgreSQL store may be shared by the replicas of one node (processes with the same
identity; the jobs only one may do are shared out by ``leases``): each replica holds the
store's advisory lock *shared*, with a shared lock on its identity beside it, on a connection
of its own; a process of another identity is refused while any replica runs, and so is
anything that takes the store exclusively (``yrd audit purge``, ``StoreLock`` without an
identity). Either way the holder's end (even by SIGKILL) drops it, so a crash never leaves a
stale lock. A database session can also end under a running process (a network blip, the
server restarted, ``pg_terminate_backend``), and its locks with it: so a thread watches the
session every ``WATCH_SECONDS`` and, when it is gone, takes the locks again on a new one, with
the same identity check; until it holds them, ``problem`` says why (readiness fails). Other
operator tools (``yrd outbox``, ``yrd audit verify``) do not take it: they
may work beside a node.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from pathlib import Path

from node.store import postgres
from node.store.connection import DriverError, PostgresUrl, StoreLocation
from node.store.database import StoreError

log = logging.getLogger(__name__)

NODE_LOCK = 0x79726E6F6465  # "yrnode"
"""The advisory lock key a node holds on its PostgreSQL store (shared by its replicas)."""
IDENTITY_CLASS = 0x79726964  # "yrid"
"""The first key of the advisory locks naming the identity of the replicas on a store."""
WATCH_SECONDS = 1.0
"""How often a held database lock's session is looked at."""
SESSION_DEADLINE_SECONDS = 3.0
"""The most one statement on the lock's session waits for the server."""


class StoreInUse(StoreError):
    """Another process holds the store (or, for ``yrd mesh up``, the mesh folder)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder
        """The pid the holder wrote into the lock file, or "unknown"."""


def _identity_key(identity: str) -> int:
    """A node id as the second key of an advisory lock (a signed 32-bit integer)."""
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "big", signed=True)


class StoreLock:
    def __init__(self, store: StoreLocation, *, identity: str | None = None) -> None:
        """``identity``: the node id of a node process, which on PostgreSQL shares the store
        with the other replicas of that node; None takes the store alone."""
        self._store = store
        self._identity = identity
        self.path = store.with_name(store.name + ".lock") if isinstance(store, Path) else None
        """The lock file of a SQLite store; None for a database."""
        self._fd: int | None = None
        self._session: postgres.PgConnection | None = None
        self._mutex = threading.Lock()
        """Held while the lock's session is used or replaced (the watcher, ``release``)."""
        self._stopped = threading.Event()
        self.problem: str | None = None
        """Why this process does not hold the store now although it took it (its database
        session was lost and the locks not taken again yet); None while it holds it."""

    def acquire(self) -> None:
        if isinstance(self._store, PostgresUrl):
            self._acquire_database(self._store)
            return
        assert self.path is not None
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreInUse(
                f"store {self.path.with_suffix('')} is in use by another node process "
                f"(pid {holder}); stop it first",
                holder,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _acquire_database(self, url: PostgresUrl) -> None:
        self._session = self._open_session(url)
        self.problem = None
        self._stopped.clear()
        threading.Thread(
            target=self._watch, args=(url,), name="store-lock-watch", daemon=True
        ).start()

    def _open_session(self, url: PostgresUrl) -> postgres.PgConnection:
        """A new session holding the store's locks; ``StoreInUse`` when refused."""
        session = postgres.connect(
            url,
            statement_timeout=f"{SESSION_DEADLINE_SECONDS:g}s",
            deadline=SESSION_DEADLINE_SECONDS,
        )
        try:
            if self._identity is None:
                self._take(session, "pg_try_advisory_lock(?)", (NODE_LOCK,), url)
            else:
                self._take(session, "pg_try_advisory_lock_shared(?)", (NODE_LOCK,), url)
                self._take_identity(session, self._identity, url)
        except BaseException:
            session.close()
            raise
        return session

    def _watch(self, url: PostgresUrl) -> None:
        """In a thread, while the lock is held: look at its session; when it is gone, take
        the locks again on a new one (``problem`` says why until then)."""
        while not self._stopped.wait(WATCH_SECONDS):
            with self._mutex:
                session = self._session
                if session is None or self._stopped.is_set():
                    return
                try:
                    session.execute("SELECT 1").fetchone()
                    continue
                except (StoreError, *DriverError) as exc:
                    lost = str(exc).strip().splitlines()[-1] if str(exc).strip() else "lost"
                    session.close()
            if self.problem is None:
                log.error(
                    "lost the store lock's database session; taking the lock again",
                    extra={"reason": lost},
                )
                self.problem = f"the store lock on {url} is not held (its session ended: {lost})"
            try:
                fresh = self._open_session(url)
            except StoreError as exc:
                self.problem = f"the store lock on {url} is not held: {exc}"
                continue
            with self._mutex:
                if self._stopped.is_set():
                    fresh.close()
                    return
                self._session = fresh
            self.problem = None
            log.warning("took the store lock again", extra={"store": str(url)})

    @staticmethod
    def _take(
        session: postgres.PgConnection, call: str, keys: tuple[int, ...], url: PostgresUrl
    ) -> None:
        row = session.execute(f"SELECT {call}", keys).fetchone()
        if not row or not row[0]:
            raise StoreInUse(
                f"store {url} is in use by another node process; stop it first", "unknown"
            )

    @staticmethod
    def _take_identity(session: postgres.PgConnection, identity: str, url: PostgresUrl) -> None:
        """Beside the replicas of ``identity`` only: refused while a process of another
        identity holds the store (two starting at once may both be refused; never both let
        in)."""
        key = _identity_key(identity)
        session.execute("SELECT pg_advisory_lock_shared(?, ?)", (IDENTITY_CLASS, key))
        row = session.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = ?::oid AND objid <> ?::oid AND objsubid = 2",
            (IDENTITY_CLASS, key & 0xFFFFFFFF),
        ).fetchone()
        if row is not None and row[0]:
            raise StoreInUse(
                f"store {url} is in use by a node process of another identity than {identity}; "
                "replicas sharing a store must all be the same node (node_id, key and "
                "certificate)",
                "unknown",
            )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        self._stopped.set()
        with self._mutex:
            if self._session is not None:
                # Unlocked before the session ends: a closed connection's backend exits (and
                # drops its locks) a moment after close() returns, so a process taking the
                # store right after this one releases it could still find it held.
                with contextlib.suppress(StoreError, *DriverError):
                    self._session.execute("SELECT pg_advisory_unlock_all()")
                self._session.close()
                self._session = None

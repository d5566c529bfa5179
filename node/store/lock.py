"""One node process per store: held while the node runs, dropped when its process ends.

Two node processes on one store would run two delivery workers over one outbox. A SQLite
store is held by an exclusive ``flock`` on ``<store>.lock``; a PostgreSQL store by a session
advisory lock on a connection of its own. Either way the holder's end (even by SIGKILL)
drops it, so a crash never leaves a stale lock. Operator tools (``yrd outbox``, ``yrd audit``)
do not take it: they may work beside a node.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from node.store import postgres
from node.store.connection import PostgresUrl, StoreLocation
from node.store.database import StoreError

NODE_LOCK = 0x79726E6F6465  # "yrnode"
"""The advisory lock key a node holds on its PostgreSQL store."""


class StoreInUse(StoreError):
    """Another process holds the store (or, for ``yrd mesh up``, the mesh folder)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder
        """The pid the holder wrote into the lock file, or "unknown"."""


class StoreLock:
    def __init__(self, store: StoreLocation) -> None:
        self._store = store
        self.path = store.with_name(store.name + ".lock") if isinstance(store, Path) else None
        """The lock file of a SQLite store; None for a database."""
        self._fd: int | None = None
        self._session: postgres.PgConnection | None = None

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
        session = postgres.connect(url)
        row = session.execute("SELECT pg_try_advisory_lock(?)", (NODE_LOCK,)).fetchone()
        if not row or not row[0]:
            session.close()
            raise StoreInUse(
                f"store {url} is in use by another node process; stop it first", "unknown"
            )
        self._session = session

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._session is not None:
            self._session.close()  # ending the session drops the advisory lock
            self._session = None

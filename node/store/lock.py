"""One node process per store: an exclusive ``flock`` on ``<store>.lock`` held while it runs.

Two node processes on one store would run two delivery workers over one outbox. The kernel
drops the lock when the process ends, even by SIGKILL, so a crash never leaves a stale lock.
Operator tools (``yrd outbox``, ``yrd audit``) do not take it: they may work beside a node.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from node.store.database import StoreError


class StoreInUse(StoreError):
    """Another process holds the store (or, for ``yrd mesh up``, the mesh folder)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder
        """The pid the holder wrote into the lock file, or "unknown"."""


class StoreLock:
    def __init__(self, store: Path) -> None:
        self.path = store.with_name(store.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
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

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

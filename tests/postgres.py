"""A private PostgreSQL server for the tests: one per test session, one fresh database per test.

- The server is ``node.mesh.postgres_server``'s (the one ``yrd mesh up`` runs for a
  ``--store postgres`` mesh), in a temporary folder of its own removed when it stops.
- Without the package, a PostgreSQL test skips on a workstation and fails in CI (``CI=true``),
  naming it: ``make test`` installs it when it can. ``start_server`` itself knows nothing of
  pytest (``bench/exchange.py --store postgres`` starts one too).
- Tests that use it are marked ``slow``: the first one starts the server (a process). It is
  stopped with a signal at the end of the session, so no process starts then.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import TypeVar

import pytest

from node.mesh.postgres_server import PostgresServer, ServerMissing
from node.mesh.postgres_server import free_port as free_port
from node.mesh.postgres_server import server_bindir as server_bindir
from node.mesh.postgres_server import start_server as start_server
from node.store.connection import PostgresUrl, StoreLocation
from tests.binaries import in_ci

T = TypeVar("T")
_names = count(1)


def new_database(server: PostgresServer) -> str:
    """A fresh empty database on ``server``; returns its URL."""
    return server.create_database(f"store_{os.getpid()}_{next(_names)}")


def missing_server_is_a_skip(start: Callable[[], T]) -> T:
    """``start()``; without the PostgreSQL package, a skip on a workstation and a failure in
    CI (``CI=true``). ``start`` returning None counts as missing too."""
    try:
        found = start()
        if found is None:
            raise ServerMissing("PostgreSQL (initdb) is missing: Debian package postgresql")
    except ServerMissing as missing:
        if in_ci():
            pytest.fail(f"{missing}, in CI: `make test` installs Debian's postgresql package")
        pytest.skip(str(missing))
    return found


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = missing_server_is_a_skip(start_server)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server."""
    url = new_database(postgres_server)
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    """A new store's location on each backend in turn: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "node.db"
    return PostgresUrl(request.getfixturevalue("postgres_url"))


FILE_ONLY = pytest.mark.parametrize("store_location", ["sqlite"], indirect=True)
"""For a test that edits a store file behind the node's back (with ``sqlite3``): SQLite only."""


def store_in_database(config: Path, url: str) -> None:
    """Rewrite a mesh node's ``node.toml`` to keep its store in the database at ``url``."""
    text = config.read_text().replace('store = "node.db"\n', "")
    config.write_text(text + f'\n[store]\nurl = "{url}"\n')


def server_processes(server: PostgresServer) -> list[int]:
    """The server's postmaster and every process it started (backends, background workers),
    found through ``/proc``."""
    postmaster = server.process.pid
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # "pid (name) state ppid ...": the name may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            children.append(int(entry.name))
    return [postmaster, *children]


@contextlib.contextmanager
def paused(server: PostgresServer) -> Iterator[None]:
    """The server frozen (SIGSTOP to the postmaster first, so it starts nothing new, then to
    its processes) while inside, continued after: it keeps its connections open and answers
    nothing, as a hung server or a partitioned one does."""
    stopped = []
    try:
        for pid in server_processes(server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:
        for pid in reversed(stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

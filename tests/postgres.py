"""A private PostgreSQL server for the tests: one per test session, one fresh database per test.

- The server is the Debian ``postgresql`` package's (``initdb`` and ``postgres`` from
  ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``), in a folder of its own under the
  system's temporary folder, on a free loopback port, with its unix socket in that folder and
  trust authentication for the one user. PostgreSQL refuses to run as root: started by root,
  it runs as the unprivileged ``postgres`` user (or ``nobody``).
- Without the package, a PostgreSQL test skips on a workstation and fails in CI (``CI=true``),
  naming it: ``make test`` installs it when it can. ``start_server`` itself knows nothing of
  pytest (``bench/exchange.py --store postgres`` starts one too).
- Tests that use it are marked ``slow``: the first one starts the server (a process). It is
  stopped with a signal at the end of the session, so no process starts then.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from node.store.connection import PostgresUrl, StoreLocation

T = TypeVar("T")
START_SECONDS = 30.0
_names = count(1)


def server_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None without the package."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and (Path(found) / "initdb").exists():
            return Path(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class ServerMissing(RuntimeError):
    """The PostgreSQL server programs are not installed."""


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (this user) unless this is root, which PostgreSQL refuses."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and no postgres or nobody user exists to run PostgreSQL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running private server; ``url(name)`` reaches one of its databases."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    user: str = "yrd"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def new_database(self) -> str:
        """A fresh empty database; returns its URL."""
        name = f"store_{os.getpid()}_{next(_names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        # SIGINT is the server's "fast" shutdown: sessions are ended, nothing is left behind.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=START_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> PostgresServer:
    """initdb a new cluster in a temporary folder and start it; ``ServerMissing`` without the
    PostgreSQL package."""
    bindir = server_bindir()
    if bindir is None:
        raise ServerMissing("PostgreSQL (initdb) is missing: Debian package postgresql")
    account = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="yrd-postgres-"))
    data = folder / "data"
    data.mkdir()
    if account is not None:
        for owned in (folder, data):
            os.chown(owned, account.pw_uid, account.pw_gid)
    user = None if account is None else account.pw_uid
    group = None if account is None else account.pw_gid
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "yrd",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ],
        check=True,
        capture_output=True,
        cwd=folder,
        user=user,
        group=group,
    )
    port = free_port()
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={folder}",
            "-c",
            "max_connections=200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
        user=user,
        group=group,
    )
    log.close()
    server = PostgresServer(folder, port, process)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            server.admin().close()
            return server
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = (folder / "server.log").read_text(errors="replace")[-2000:]
                server.stop()
                raise RuntimeError(
                    f"the private PostgreSQL server did not start:\n{output}"
                ) from None
            time.sleep(0.05)


def missing_server_is_a_skip(start: Callable[[], T]) -> T:
    """``start()``; without the PostgreSQL package, a skip on a workstation and a failure in
    CI (``CI=true``). ``start`` returning None counts as missing too."""
    try:
        found = start()
        if found is None:
            raise ServerMissing("PostgreSQL (initdb) is missing: Debian package postgresql")
    except ServerMissing as missing:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
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
    url = postgres_server.new_database()
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

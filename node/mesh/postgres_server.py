"""A PostgreSQL server of one's own: the mesh's (``yrd mesh up`` on a ``--store postgres``
mesh, data in ``DIR/postgres``) and the tests' and benchmark's (a temporary folder).

Rules kept here:
- The server is the Debian ``postgresql`` package's: ``initdb`` and ``postgres`` from
  ``pg_config --bindir``, else the newest ``/usr/lib/postgresql/*/bin``. Without them,
  ``ServerMissing`` names the package.
- It listens on loopback only, on the port it is given (a free one, ``free_port``), with its
  unix socket in its own folder and trust authentication for the one user ``yrd``: only this
  machine's users reach it, which is what a mesh for testers needs and no more.
- PostgreSQL refuses to run as root: started by root, it runs as the unprivileged
  ``postgres`` user (or ``nobody``), and owns its folder. That user must be able to reach
  the folder: ``reach_for`` opens the folders between it and the one named (the mesh
  folder) for traversal only (``o+x``, never listing or reading), and never touches a
  folder above that: one closed to that user is named in the error instead.
- ``initdb`` runs once per folder (``data/PG_VERSION`` marks a cluster); starting again on
  the same folder keeps every database.
- Stopping is SIGINT (the server's "fast" shutdown: sessions end, nothing is left behind),
  SIGKILL only after the grace period.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

START_SECONDS = 30.0
SERVER_USER = "yrd"
"""The one database user (superuser, trust authentication on loopback)."""
PACKAGE = "Debian package postgresql"


class ServerMissing(RuntimeError):
    """The PostgreSQL server programs are not installed."""


class ServerFailed(RuntimeError):
    """The server could not be made or started; the message holds the end of its log."""


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


def server_account() -> pwd.struct_passwd | None:
    """Who runs the server: None (this user) unless this is root, which PostgreSQL refuses."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerFailed("running as root, and no postgres or nobody user exists to run PostgreSQL")


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reach_for(folder: Path, account: pwd.struct_passwd | None, *, open_from: Path) -> None:
    """Make ``folder`` reachable by ``account`` (None: this user, nothing to do): each folder
    above it up to ``open_from`` gets ``o+x`` (traversal only); ServerFailed naming the first
    one above that which ``account`` cannot pass."""
    if account is None:
        return
    opened = open_from.absolute()
    for above in reversed(folder.absolute().parents):
        info = above.stat()
        if info.st_uid == account.pw_uid or info.st_mode & stat.S_IXOTH:
            continue
        if above.is_relative_to(opened) and info.st_uid == os.getuid():
            above.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
            continue
        raise ServerFailed(
            f"PostgreSQL runs as user {account.pw_name} (it refuses root), and cannot reach "
            f"{folder}: {above} is closed to it; put the mesh in a folder it can reach"
        )


@dataclass
class PostgresServer:
    """A running server; ``url(name)`` reaches one of its databases."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    temporary: bool = False
    """Made for this run only (tests): the folder is removed when the server stops."""

    def url(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def create_database(self, name: str) -> str:
        """Database ``name`` (made when missing); returns its URL."""
        with self.admin() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def stop(self, grace: float = START_SECONDS) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_server(
    folder: Path | None = None, *, port: int | None = None, open_from: Path | None = None
) -> PostgresServer:
    """Start the server whose data is in ``folder``/data (initdb first when there is none yet)
    on ``port``; without ``folder``, in a new temporary folder removed when it stops, and
    without ``port`` on a free one. ``open_from``: the folder above ``folder`` from which
    down the server's user may be let through (``reach_for``; default: ``folder``'s parent).
    ``ServerMissing`` without the PostgreSQL package, ``ServerFailed`` (with the end of its
    log) when it does not start."""
    bindir = server_bindir()
    if bindir is None:
        raise ServerMissing(f"PostgreSQL (initdb) is missing: {PACKAGE}")
    account = server_account()
    temporary = folder is None
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="yrd-postgres-"))
    else:
        folder.mkdir(mode=0o700, exist_ok=True)
        reach_for(folder, account, open_from=open_from or folder.parent)
    data = folder / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    user = None if account is None else account.pw_uid
    group = None if account is None else account.pw_gid
    if account is not None:
        for owned in (folder, data):
            os.chown(owned, account.pw_uid, account.pw_gid)
    if not (data / "PG_VERSION").exists():
        made = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SERVER_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            check=False,
            capture_output=True,
            cwd=folder,
            user=user,
            group=group,
        )
        if made.returncode != 0:
            said = (made.stdout + made.stderr).decode(errors="replace")[-2000:]
            raise ServerFailed(f"initdb {data} failed:\n{said}")
    port = free_port() if port is None else port
    log_path = folder / "server.log"
    with log_path.open("ab") as log:
        if account is not None:
            os.chown(log_path, account.pw_uid, account.pw_gid)
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
            stdin=subprocess.DEVNULL,
            cwd=folder,
            user=user,
            group=group,
            start_new_session=True,  # Ctrl-C in a terminal reaches whoever stops it, only
        )
    server = PostgresServer(folder, port, process, temporary)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            server.admin().close()
            return server
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")[-2000:]
                server.stop()
                raise ServerFailed(
                    f"the PostgreSQL server in {folder} did not start on port {port}:\n{output}"
                ) from None
            time.sleep(0.05)

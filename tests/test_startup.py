"""``yrd node run`` as a real process: start-up refuses unsafe or untrustworthy inputs with a
message that says what to fix and touches nothing, and SIGTERM stops a node cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from node.mesh.layout import publish_manifest, read_manifest
from node.runtime.config import load_config
from tests.nodes import BUDGET, config_for, make_mesh, running
from tests.processes import authorized

pytestmark = pytest.mark.slow

START_TIMEOUT = BUDGET / 2
REFUSAL_TIMEOUT = BUDGET / 2
LONG_GRACE = 10 * BUDGET
"""A grace period no process wait of a test outlasts: a node that waited it out fails."""


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def node_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "node.cli.main", "node", "run", "--config", str(config)]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "YRD_HTTP_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def refused_start(config: Path) -> subprocess.CompletedProcess[str]:
    """Run ``yrd node run`` and expect it to refuse: it must exit on its own, non-zero."""
    result = subprocess.run(
        node_command(config),
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT,
        env=environment(),
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert "cannot start the node" in result.stderr
    return result


def audit_rows(store: Path) -> list[tuple[Any, ...]]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT seq, kind, message_id, hash FROM audit ORDER BY seq").fetchall()
    conn.close()
    return rows


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [os.urandom(8192), b"SQLite format 3\x00" + os.urandom(8176)],
    ids=["random-bytes", "sqlite-header-then-garbage"],
)
def test_corrupt_store_refused_and_left_untouched(mesh: Path, content: bytes) -> None:
    """A store file that is not an intact SQLite database stops start-up with a message that
    says it is corrupt, and the file keeps its exact bytes (no -wal or -shm beside it)."""
    store = mesh / "shanghai" / "node.db"
    store.write_bytes(content)
    result = refused_start(mesh / "shanghai" / "node.toml")
    assert "is corrupt" in result.stderr
    assert "refuses to start" in result.stderr
    assert str(store) in result.stderr
    assert store.read_bytes() == content
    # No write-ahead log or shared-memory file beside a refused store (the process lock file
    # is the only companion, and holds no data).
    assert sorted(p.name for p in store.parent.glob("node.db*")) == ["node.db", "node.db.lock"]


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (b"", "If this node has never run, delete the empty file"),
        (b"not a database at all\n", "not a SQLite database"),
    ],
    ids=["emptied", "text"],
)
def test_emptied_or_foreign_store_refused_saying_what_to_do(
    mesh: Path, content: bytes, hint: str
) -> None:
    """After ``: > node.db`` (or with a text file in its place) the node does not start empty
    and ready over the lost store: it refuses, says what to do, and leaves the file as it
    was."""
    store = mesh / "shanghai" / "node.db"
    assert store.stat().st_size > 0  # mesh init made it, with the REST tokens
    store.write_bytes(content)
    result = refused_start(mesh / "shanghai" / "node.toml")
    assert hint in result.stderr and str(store) in result.stderr
    assert store.read_bytes() == content
    assert sorted(p.name for p in store.parent.glob("node.db*")) == ["node.db", "node.db.lock"]


def store_files(mesh: Path) -> dict[str, bytes]:
    """Shanghai's store files and their bytes."""
    folder = mesh / "shanghai"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("node.db*"))}


def test_group_readable_signing_key_refused(mesh: Path) -> None:
    """A signing key file with mode 0644 stops start-up with the chmod that fixes it, before
    the store (which `mesh init` made, holding the REST tokens) is touched."""
    key = mesh / "shanghai" / "signing.key"
    key.chmod(0o644)
    before = store_files(mesh)
    result = refused_start(mesh / "shanghai" / "node.toml")
    assert "readable by group or others" in result.stderr
    assert f"chmod 600 {key}" in result.stderr
    assert store_files(mesh) == before


def test_tampered_manifest_refused(mesh: Path) -> None:
    """A manifest edited after signing stops start-up naming the failed signature, before
    the store is touched."""
    before = store_files(mesh)
    path = mesh / "manifest.json"
    document = json.loads(path.read_bytes())
    document["manifest"]["members"][1]["endpoint"] = "203.0.113.9:7102"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = refused_start(mesh / "shanghai" / "node.toml")
    assert "signature does not verify" in result.stderr
    assert store_files(mesh) == before, "a refused start touched the store"


async def test_older_manifest_than_recorded_refused(mesh: Path) -> None:
    """Once a node has recorded manifest version 2, putting version 1 back stops start-up
    with "older", and the evidence log is unchanged."""
    path = mesh / "manifest.json"
    v1 = path.read_bytes()
    assert publish_manifest(mesh, read_manifest(mesh), now=time.time()).version == 2
    async with running(config_for(mesh, "shanghai")):
        pass
    store = mesh / "shanghai" / "node.db"
    recorded = audit_rows(store)
    manifests = [(kind, message_id) for _, kind, message_id, _ in recorded if kind == "manifest"]
    assert manifests == [("manifest", "manifest-v2")]

    path.write_bytes(v1)
    result = await asyncio.to_thread(refused_start, mesh / "shanghai" / "node.toml")
    assert "version 1 is older than the held version 2" in result.stderr
    assert audit_rows(store) == recorded


def test_missing_config_refused(tmp_path: Path) -> None:
    """A config path that does not exist is named in a one-line error."""
    missing = tmp_path / "absent" / "node.toml"
    result = refused_start(missing)
    assert f"cannot read config {missing}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('node_id = "node-310000"\n[paths\nstore = "x"\n', "is not valid TOML"),
        ('node_id = "node-310000"\nprovince = "shanghai"\n', "missing key 'paths'"),
    ],
    ids=["bad-toml", "no-paths-table"],
)
def test_malformed_config_refused(tmp_path: Path, text: str, expected: str) -> None:
    """A config that is not TOML, or lacks a required table, is refused naming the file and
    the problem, with no traceback and no store created."""
    config = tmp_path / "node.toml"
    config.write_text(text, encoding="utf-8")
    result = refused_start(config)
    assert str(config) in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.toml"]


@pytest.mark.parametrize("surface", ["http", "grpc"])
def test_listen_port_in_use_refused(mesh: Path, surface: str) -> None:
    """A listen address another process holds stops start-up naming the address, with no
    traceback."""
    config = load_config(mesh / "shanghai" / "node.toml", {})
    listen = config.http_listen if surface == "http" else config.grpc_listen
    host, _, port = listen.rpartition(":")
    with socket.socket() as holder:
        holder.bind((host, int(port)))
        holder.listen()
        result = refused_start(mesh / "shanghai" / "node.toml")
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("yrd: ")]
    assert port in line
    assert "in use" in line or f"cannot listen on {listen}" in line


# -- graceful shutdown ---------------------------------------------------------------------


def get_json(mesh: Path, url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(authorized(mesh, url), timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(mesh: Path, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = authorized(mesh, url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def wait_for(predicate: Any, what: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a node exited ({process.returncode}) while waiting: {what}")
        try:
            if predicate():
                return
        except (OSError, ValueError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {what}")
        time.sleep(0.05)


@contextmanager
def node_processes(configs: list[Path], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``yrd node run`` processes, killed if the test fails before stopping them."""
    processes = []
    try:
        for config in configs:
            with (logs / f"{config.parent.name}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        node_command(config),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=environment(),
                    )
                )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=BUDGET / 6)


def test_sigterm_stops_node_cleanly(
    mesh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two node processes exchange probes; SIGTERM makes each exit 0 well within its grace
    period (one longer than the test waits), and each store's evidence log then verifies
    intact."""
    paths = [mesh / p / "node.toml" for p in ("shanghai", "jiangsu")]
    for path in paths:
        text = path.read_text()
        grace = "shutdown_grace_seconds = 10.0"
        assert grace in text
        path.write_text(text.replace(grace, f"shutdown_grace_seconds = {LONG_GRACE}"))
    configs = [load_config(p, {}) for p in paths]
    base = [f"http://{c.http_listen}" for c in configs]
    with node_processes(paths, tmp_path) as processes:
        for url in base:
            wait_for(lambda url=url: get_json(mesh, url + "/readyz")[0] == 200, "ready", processes)

        status, body = post_json(mesh, base[0] + "/v1/probes", {"peer": "jiangsu", "count": 5})
        assert status == 202 and len(body["message_ids"]) == 5

        def drained() -> bool:
            _, shanghai = get_json(mesh, base[0] + "/v1/status")
            _, jiangsu = get_json(mesh, base[1] + "/v1/status")
            # The five probes, Shanghai's catalog announcement and its revocation list.
            return shanghai["peers"][0]["outbox_depth"] == 0 and jiangsu["inbox_messages"] == 7

        wait_for(drained, "probes receipted", processes)

        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=BUDGET / 2) for p in processes]

    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    assert codes == [0, 0], logs
    for config in configs:
        capsys.readouterr()
        assert main(["audit", "verify", "--store", str(config.paths.store)]) == 0
        assert "intact" in capsys.readouterr().out

"""Node processes for tests: ``yrd node run`` as a real process, waited on until ready and
stopped with SIGTERM; its log goes to ``<mesh>/<province>/node.log``."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from yarl import URL

from node.mesh.auth import MeshAuth, mesh_tokens
from node.mesh.processes import node_run_command
from node.runtime.config import load_config
from tests.nodes import BUDGET


def start_process(mesh: Path, province: str) -> subprocess.Popen[bytes]:
    config = mesh / province / "node.toml"
    with (mesh / province / "node.log").open("ab") as log:
        return subprocess.Popen(
            node_run_command(config),
            stdout=log,
            stderr=log,
        )


def http(mesh: Path, province: str) -> str:
    return "http://" + load_config(mesh / province / "node.toml", {}).http_listen


def authorized(
    mesh: Path, url: str, *, data: bytes | None = None, method: str | None = None
) -> urllib.request.Request:
    """A request to one of the mesh's nodes carrying its token of the narrowest scope the
    route admits (``node.mesh.auth``)."""
    request = urllib.request.Request(url, data=data, method=method)
    for name, value in (
        MeshAuth(mesh_tokens(mesh)).headers_for(request.get_method(), URL(url)).items()
    ):
        request.add_header(name, value)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    return request


def wait_ready(mesh: Path, province: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + BUDGET / 2
    while time.monotonic() < deadline:
        assert process.poll() is None, (mesh / province / "node.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(http(mesh, province) + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{province} not ready")


@contextmanager
def process(mesh: Path, province: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_process(mesh, province)
    try:
        wait_ready(mesh, province, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=BUDGET / 3)

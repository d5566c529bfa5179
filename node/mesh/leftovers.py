"""Processes an earlier run left in a mesh folder, and stopping them (``yrd mesh up`` on a
folder whose last ``mesh up`` was killed: its children run on in sessions of their own).

Rules kept here:
- A process counts only if ``DIR/mesh.json`` names it and it still runs as this folder's
  node (any replica), simulated platform or Prometheus by its command line (read from
  ``/proc``): a pid that is gone, a zombie, or now another program (the pid reused) is not
  one. The mesh's PostgreSQL server is named by its own ``postmaster.pid`` instead, and
  counts while that pid runs ``postgres`` on ``DIR/postgres/data``.
- Stopping sends SIGCONT and SIGTERM, and SIGKILL only after the grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from node.mesh.layout import POSTGRES_DIR, config_name
from node.mesh.processes import STOP_GRACE
from node.mesh.record import Kind, MeshRecord, read_record


@dataclass(frozen=True)
class Leftover:
    """A process an earlier run left in a mesh folder: still alive, and by its command line
    this folder's node or platform of ``province``."""

    province: str
    """The province, or "" for the mesh's Prometheus and PostgreSQL."""
    kind: Kind | Literal["prometheus", "postgres"]
    pid: int

    @property
    def name(self) -> str:
        return f"{self.province} {self.kind}" if self.province else self.kind


def leftovers(directory: Path) -> tuple[MeshRecord | None, list[Leftover]]:
    """The processes ``DIR/mesh.json`` names that still run as this folder's nodes and
    platforms, with the record; (None, []) without a readable record. A pid that is gone, a
    zombie, or now another program (the pid reused) is not one."""
    try:
        record = read_record(directory)
    except (OSError, ValueError):
        return None, []
    found = []
    for node in record.nodes:
        held: tuple[tuple[Kind, int | None], ...] = (
            ("node", node.pid),
            ("platform", node.platform_pid),
        )
        for kind, pid in held:
            if isinstance(pid, int) and pid > 0 and _runs_as(pid, directory, node.province, kind):
                found.append(Leftover(node.province, kind, pid))
        for number, replica in enumerate(node.replicas[1:], start=2):
            pid = replica.pid
            config = config_name(number)
            if pid and pid > 0 and _runs_as(pid, directory, node.province, "node", config):
                found.append(Leftover(node.province, "node", pid))
    pid = record.prometheus_pid
    if pid is not None and pid > 0 and _runs_prometheus(pid, directory):
        found.append(Leftover("", "prometheus", pid))
    pid = _postgres_pid(directory)
    if pid is not None:
        found.append(Leftover("", "postgres", pid))
    return record, found


def _postgres_pid(directory: Path) -> int | None:
    """The mesh's PostgreSQL server that still runs on ``DIR/postgres/data``, by its
    ``postmaster.pid`` (first line: the pid; second: the data folder)."""
    data = directory / POSTGRES_DIR / "data"
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    argv = _command_line(pid)
    if argv is None or not argv or not argv[0].endswith("postgres"):
        return None
    return pid if len(lines) > 1 and Path(lines[1]).resolve() == data.resolve() else None


def stop_leftovers(found: Sequence[Leftover], grace: float = STOP_GRACE) -> dict[int, str]:
    """SIGTERM each (SIGINT for PostgreSQL; after SIGCONT, for a paused one), SIGKILL what
    is left after ``grace``; how each ended by pid (``stopped`` or ``killed``)."""
    for leftover in found:
        # PostgreSQL's SIGTERM waits for its sessions to end; SIGINT ends them ("fast").
        stop = signal.SIGINT if leftover.kind == "postgres" else signal.SIGTERM
        for signum in (signal.SIGCONT, stop):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signum)
    deadline = time.monotonic() + grace
    ended: dict[int, str] = {}
    while len(ended) < len(found):
        for leftover in found:
            if leftover.pid not in ended and not process_alive(leftover.pid):
                ended[leftover.pid] = "stopped"
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for leftover in found:
        if leftover.pid not in ended:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)
            ended[leftover.pid] = "killed"
    settled = time.monotonic() + 5.0
    while any(process_alive(leftover.pid) for leftover in found) and time.monotonic() < settled:
        time.sleep(0.05)
    return ended


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, which only waits to be reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _runs_as(
    pid: int, directory: Path, province: str, kind: Kind, config: str = config_name(1)
) -> bool:
    """Whether ``pid`` is alive and its command line is ``yrd node run`` on this folder's
    ``province/<config>`` (kind node) or the simulated platform on its ``platform.db``."""
    argv = _command_line(pid)
    if argv is None:
        return False
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        cwd = Path.cwd()
    if kind == "node":
        marker, option, file = "node.cli.main", "--config", config
    else:
        marker, option, file = "adapters.simulation.run", "--db", "platform.db"
    if marker not in argv or option not in argv[:-1]:
        return False
    named = Path(argv[argv.index(option) + 1])
    expected = (directory / province / file).resolve()
    return (cwd / named).resolve() == expected


def _runs_prometheus(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is alive and the Prometheus keeping its data in this folder."""
    argv = _command_line(pid)
    if argv is None:
        return False
    data = (directory / "prometheus" / "data").resolve()
    return any(
        arg.startswith("--storage.tsdb.path=") and Path(arg.partition("=")[2]).resolve() == data
        for arg in argv
    )


def _command_line(pid: int) -> list[str] | None:
    """``pid``'s arguments while it runs; None when it is gone or a zombie."""
    if not process_alive(pid):
        return None
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None

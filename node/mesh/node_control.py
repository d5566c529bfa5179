"""Stopping and starting one node of a running ``yrd mesh up`` by hand (``yrd mesh stop`` and
``yrd mesh start``), and the channel that carries the request to its supervisor.

The channel: while ``DIR/<province>/node.stop`` exists, the supervisor keeps that province's
node stopped (SIGTERM, SIGKILL after the grace period; no restart); once the file is gone it
starts the node again at once. The answer comes back in ``DIR/mesh.json``: the node's
``state`` (``stopped``; ``starting``, then ``running``) and ``pid`` (null while stopped).

Rules kept here:
- Only the supervisor signals the mesh's processes: it is their parent and reaps them, so
  its record of them is the truth. The commands here write or remove the marker and wait
  until ``mesh.json`` shows the outcome.
- A command acts only on a mesh whose supervisor runs (``supervisor_pid`` in ``mesh.json``
  names a live process) and on a province of it; otherwise it refuses and changes nothing.
- A marker belongs to one run of ``yrd mesh up``: the supervisor clears stale ones when it
  starts and when it stops.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from node.mesh.processes import READY_TIMEOUT, STOP_GRACE
from node.mesh.record import MESH_FILE, MeshNode, MeshRecord, ProcessState, read_record

STOP_FILE: Final = "node.stop"
STOP_WAIT: Final = STOP_GRACE + 10.0
"""Seconds ``yrd mesh stop`` waits for the node to be gone: its grace period and a margin."""
START_WAIT: Final = READY_TIMEOUT + 15.0
"""Seconds ``yrd mesh start`` waits for the node to be ready again."""
POLL: Final = 0.1


class MeshControlError(Exception):
    """A stop or start by hand that did not happen; the message says why."""


class NoMeshUp(MeshControlError):
    """No supervised mesh runs in the folder: nothing was changed."""


class UnknownProvince(MeshControlError):
    """The province is not one of the mesh: nothing was changed."""


class NotDone(MeshControlError):
    """The request was made, but the node did not reach the state asked for in time."""


def stop_request(directory: Path, province: str) -> Path:
    return directory / province / STOP_FILE


def stop_requested(directory: Path, province: str) -> bool:
    return stop_request(directory, province).exists()


def clear_stop_requests(directory: Path, provinces: Iterable[str]) -> None:
    for province in provinces:
        stop_request(directory, province).unlink(missing_ok=True)


@dataclass(frozen=True)
class Change:
    """A node's entry in mesh.json before and after a stop or start by hand."""

    before: MeshNode
    after: MeshNode

    @property
    def changed(self) -> bool:
        return self.after != self.before


def stop_node(directory: Path, province: str, *, timeout: float = STOP_WAIT) -> Change:
    """Have the supervisor of the mesh in ``directory`` stop ``province``'s node and keep it
    stopped. Returns once ``mesh.json`` shows it stopped and its process gone (at once when
    it is stopped already)."""
    before = _entry(directory, province)
    if before.state is ProcessState.STOPPED:
        return Change(before, before)
    stop_request(directory, province).write_text(
        f"written by `yrd mesh stop`; `yrd mesh start --dir {directory} {province}` removes it\n"
    )
    after = _wait_for(
        directory,
        province,
        lambda n: n.state is ProcessState.STOPPED and not (before.pid and alive(before.pid)),
        timeout,
        f"the {province} node has not stopped after {timeout:.0f} s",
    )
    return Change(before, after)


def start_node(directory: Path, province: str, *, timeout: float = START_WAIT) -> Change:
    """Have the supervisor start ``province``'s node again after ``stop_node``. Returns once
    ``mesh.json`` shows it ready (at once when it is running and not held stopped)."""
    before = _entry(directory, province)
    if before.state is ProcessState.RUNNING and not stop_requested(directory, province):
        return Change(before, before)
    stop_request(directory, province).unlink(missing_ok=True)
    after = _wait_for(
        directory,
        province,
        lambda n: n.state is ProcessState.RUNNING and n.pid is not None,
        timeout,
        f"the {province} node is not ready after {timeout:.0f} s; "
        f"see {directory / province / 'node.log'}",
    )
    return Change(before, after)


def _entry(directory: Path, province: str) -> MeshNode:
    record = _supervised_record(directory)
    node = record.node(province)
    if node is None:
        raise UnknownProvince(
            f"{province!r} is not a province of the mesh in {directory} "
            f"({', '.join(n.province for n in record.nodes)})"
        )
    return node


def _supervised_record(directory: Path) -> MeshRecord:
    path = directory / MESH_FILE
    if not (directory / "manifest.json").exists():
        raise NoMeshUp(
            f"{directory} is not a mesh folder (no manifest.json); create one with: "
            f"yrd mesh init {directory}"
        )
    try:
        record = read_record(directory)
    except FileNotFoundError:
        raise NoMeshUp(
            f"no mesh is up in {directory}: {path} does not exist "
            f"(start one with: yrd mesh up --dir {directory})"
        ) from None
    except (OSError, ValueError) as exc:
        raise NoMeshUp(f"{path} cannot be read: {exc}") from None
    if record.supervisor_pid is None:
        raise NoMeshUp(
            f"the mesh in {directory} is not kept by `yrd mesh up` "
            "(yrd demo and yrd chaos stop and start their processes themselves)"
        )
    if not alive(record.supervisor_pid):
        raise NoMeshUp(
            f"no mesh is up in {directory}: its supervisor (pid {record.supervisor_pid}) is "
            f"not running, and {path} is left from a mesh that did not stop cleanly"
        )
    return record


def _wait_for(
    directory: Path,
    province: str,
    reached: Callable[[MeshNode], bool],
    timeout: float,
    late: str,
) -> MeshNode:
    deadline = time.monotonic() + timeout
    while True:
        try:
            node = _entry(directory, province)
        except NoMeshUp as exc:
            raise NotDone(f"the mesh stopped while waiting: {exc}") from None
        if reached(node):
            return node
        if time.monotonic() >= deadline:
            raise NotDone(f"{late} (it is {node.state})")
        time.sleep(POLL)


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours
    return True

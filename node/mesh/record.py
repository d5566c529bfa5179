"""What a running mesh writes in its folder: ``DIR/mesh.json``, and the names of the other
files through which a mesh and its testers talk.

Rules kept here:
- ``mesh.json`` is written once every node is ready, written again whenever a process's pid
  or state changes (a temporary file renamed over it, so a reader never sees half a file),
  and removed on a clean stop. Each province's entry keeps its keys (``pid`` and
  ``platform_pid`` are null while that process is not running) and adds ``state`` and
  ``platform_state`` (``ProcessState``); ``supervisor_pid`` names the ``yrd mesh up``
  process that keeps the mesh, null when none does (``yrd demo``, ``yrd chaos``). A mesh
  made with links lists them under ``"links"``, one with a Prometheus names it under
  ``"prometheus"`` and ``"prometheus_pid"``. Each province lists its node's replicas under
  ``"replicas"``: ``[{"grpc", "http", "pid", "state"}, …]``, replica 1 first (the same
  process as the entry's own ``grpc``, ``http`` and ``pid``, which single-node tools read).
- A reader takes only the keys it knows of an entry, so a newer writer's extra keys do not
  break it; what is not a record is ``ValueError``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal

from node.mesh.layout import write_atomically

MESH_FILE = "mesh.json"
TOKENS_FILE = "tokens.json"
"""Per province: its platform and operator REST tokens (``access``)."""

LINK_FAULTS_FILE: Final = "link-faults.json"
"""Where a tester orders faults on a running mesh's links (``node.mesh.link_control``)."""
LINK_STATE_FILE: Final = "link-state.json"
"""Where the process that runs the links answers: the faults in force and what crossed."""

Kind = Literal["node", "platform"]
"""The two kinds of process a province has in the mesh."""


class ProcessState(StrEnum):
    """Where one process of the mesh stands, as ``mesh.json`` shows it."""

    RUNNING = "running"
    """Started and ready (a node answers /readyz, a platform /sim/fixtures)."""
    STARTING = "starting"
    """Started again after an exit or a stop by hand, not ready yet."""
    RESTARTING = "restarting"
    """Exited on its own; started again when its back-off is over. No pid meanwhile."""
    STOPPED = "stopped"
    """Stopped by hand (``yrd mesh stop``); only ``yrd mesh start`` starts it again."""


@dataclass(frozen=True)
class MeshReplica:
    """One replica of a province's node in ``mesh.json``."""

    grpc: str
    http: str
    pid: int | None
    """None while it is not running (restarting or stopped)."""
    state: ProcessState = ProcessState.RUNNING


@dataclass(frozen=True)
class MeshNode:
    """One province's entry in ``mesh.json``."""

    province: str
    node_id: str
    grpc: str
    http: str
    platform: str | None
    """The simulated platform's address, when the node has one."""
    pid: int | None
    """The node's process id; None while it is not running (restarting or stopped)."""
    platform_pid: int | None = None
    state: ProcessState = ProcessState.RUNNING
    platform_state: ProcessState | None = None
    tokens_file: str | None = None
    """The province's ``tokens.json`` (its platform and operator REST tokens, 0600)."""
    replicas: list[MeshReplica] = field(default_factory=list)
    """Every replica of the node, replica 1 (this entry's own process) first; empty in a
    record written before replicas."""


@dataclass(frozen=True)
class MeshLink:
    """One directed link of a mesh whose peers dial each other through proxies."""

    sender: str
    receiver: str
    listen: str
    """The proxy's host:port, which the sender dials for the receiver."""
    target: str
    """The receiver's gRPC host:port, where the proxy relays to."""

    @property
    def name(self) -> str:
        return f"{self.sender}:{self.receiver}"


@dataclass(frozen=True)
class MeshRecord:
    """What ``DIR/mesh.json`` says of a running mesh."""

    nodes: list[MeshNode]
    supervisor_pid: int | None
    """The ``yrd mesh up`` process that keeps the mesh; None when nothing restarts it."""
    links: list[MeshLink] = field(default_factory=list)
    """The proxies between the nodes, one per directed link; empty when peers dial each
    other directly."""
    prometheus: str | None = None
    """The URL of the mesh's Prometheus (``yrd mesh up --monitoring``), when it runs one."""
    prometheus_pid: int | None = None

    def node(self, province: str) -> MeshNode | None:
        return next((n for n in self.nodes if n.province == province), None)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "supervisor_pid": self.supervisor_pid,
            "nodes": [asdict(n) for n in self.nodes],
        }
        if self.links:
            document["links"] = [asdict(link) for link in self.links]
        if self.prometheus is not None:
            document["prometheus"] = self.prometheus
            document["prometheus_pid"] = self.prometheus_pid
        return document


def read_record(directory: Path) -> MeshRecord:
    """``DIR/mesh.json``; FileNotFoundError when no mesh has written one, ValueError when it
    is not what ``write_record`` writes."""
    data = json.loads((directory / MESH_FILE).read_text())
    known = {f.name for f in fields(MeshNode)}
    try:
        nodes = []
        for entry in data["nodes"]:
            node = MeshNode(**{k: v for k, v in entry.items() if k in known})
            platform_state = node.platform_state
            replicas = [
                MeshReplica(
                    str(r["grpc"]),
                    str(r["http"]),
                    r.get("pid"),
                    ProcessState(r.get("state", "running")),
                )
                for r in entry.get("replicas", [])
            ]
            nodes.append(
                replace(
                    node,
                    state=ProcessState(node.state),
                    platform_state=None if platform_state is None else ProcessState(platform_state),
                    replicas=replicas,
                )
            )
        supervisor_pid = data.get("supervisor_pid")
        links = [MeshLink(**entry) for entry in data.get("links", [])]
        prometheus = data.get("prometheus")
        prometheus_pid = data.get("prometheus_pid")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a mesh record: {exc!r}") from None
    if supervisor_pid is not None and not isinstance(supervisor_pid, int):
        raise ValueError(f"supervisor_pid is {supervisor_pid!r}, not a process id")
    if prometheus is not None and not isinstance(prometheus, str):
        raise ValueError(f"prometheus is {prometheus!r}, not a URL")
    if prometheus_pid is not None and not isinstance(prometheus_pid, int):
        raise ValueError(f"prometheus_pid is {prometheus_pid!r}, not a process id")
    return MeshRecord(nodes, supervisor_pid, links, prometheus, prometheus_pid)


def write_record(directory: Path, record: MeshRecord) -> None:
    """Write ``DIR/mesh.json`` whole, renamed over the old one."""
    text = json.dumps(record.to_json(), indent=2) + "\n"
    write_atomically(directory / MESH_FILE, text.encode())

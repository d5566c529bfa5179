"""The mesh folder as commands name it (``--mesh DIR`` or ``--dir DIR``), and what a user
is told when it is wrong or one of its nodes is down.

Rules kept here:
- A mesh folder is one that ``yrd mesh init`` made: it holds ``manifest.json`` and the
  governance public key. Anything else is "not a mesh folder", with the command that makes
  one; the message never names an internal file the user did not ask about.
- A node that does not answer is named by its province, with the command that starts it:
  ``yrd mesh start`` while a ``yrd mesh up`` keeps the folder's mesh, else ``yrd mesh up``.
"""

from __future__ import annotations

import os
from pathlib import Path

from node.mesh.layout import GOVERNANCE_PUB, MANIFEST_FILE
from node.mesh.processes import MeshError, node_configs, replica_configs
from node.mesh.record import read_record
from node.runtime.config import ConfigError, NodeConfig
from node.trust.manifest import ManifestError


class NotAMeshFolder(Exception):
    """The folder is not one ``yrd mesh init`` made, or its mesh cannot be read."""


def check_mesh_folder(directory: Path) -> None:
    """Raise ``NotAMeshFolder`` unless ``directory`` looks like ``yrd mesh init``'s work."""
    if not directory.is_dir():
        why = "no such folder" if not directory.exists() else "not a folder"
    elif not (directory / MANIFEST_FILE).is_file() or not (directory / GOVERNANCE_PUB).is_file():
        why = "yrd mesh init did not make it"
    else:
        return
    raise NotAMeshFolder(
        f"{directory} is not a mesh folder ({why}); create one with: yrd mesh init {directory}"
    )


def mesh_configs(directory: Path) -> list[NodeConfig]:
    """The node configs of the mesh in ``directory``; ``NotAMeshFolder`` saying what is wrong."""
    check_mesh_folder(directory)
    try:
        return node_configs(directory)
    except (MeshError, ManifestError, ConfigError, OSError, ValueError) as exc:
        raise NotAMeshFolder(f"the mesh in {directory} cannot be read: {exc}") from None


def mesh_replicas(directory: Path) -> dict[str, list[NodeConfig]]:
    """Each province's replicas' configs (replica 1 first) in the mesh in ``directory``;
    ``NotAMeshFolder`` saying what is wrong."""
    check_mesh_folder(directory)
    try:
        return replica_configs(directory)
    except (MeshError, ManifestError, ConfigError, OSError, ValueError) as exc:
        raise NotAMeshFolder(f"the mesh in {directory} cannot be read: {exc}") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_command(directory: Path, province: str) -> str:
    """The command that starts ``province``'s node of the mesh in ``directory``."""
    try:
        supervisor = read_record(directory).supervisor_pid
    except (OSError, ValueError):
        supervisor = None
    if supervisor is not None and _alive(supervisor):
        return f"yrd mesh start --dir {directory} {province}"
    return f"yrd mesh up --dir {directory}"


def node_down(directory: Path | None, province: str | None, where: str, reason: str) -> str:
    """One sentence for a node that did not answer: which, where, why, and how to start it."""
    name = f"the {province} node" if province else "the node"
    sentence = f"{name} is not answering at {where} ({reason})"
    if directory is not None and province is not None:
        sentence += f"; start it: {start_command(directory, province)}"
    return sentence

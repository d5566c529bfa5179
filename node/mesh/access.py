"""The REST tokens of a one-machine mesh, for the tools that ask its nodes.

Rules kept here:
- ``yrd mesh init`` (``create_mesh``) puts in each province's store a ``platform`` and an
  ``operator`` token and writes them to ``DIR/<province>/tokens.json`` (0600) as
  ``{"platform": "<token>", "operator": "<token>"}``: what the province platform and its
  operator would hold. ``mesh.json`` names that file per province (``tokens_file``).
- One ``read`` token, the same at every node, is written to ``DIR/viewer.token`` (0600): the
  dashboard's mesh view passes the viewer's token on to each node it asks.
- A tool asks with the token of the scope its request needs, never a wider one.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from node.mesh.database import start_mesh_database
from node.mesh.layout import DEFAULT_PROVINCES, ONE_SQLITE_NODE, StoreChoice, init_mesh
from node.mesh.record import TOKENS_FILE
from node.mesh.suite_choice import ED25519_THROUGHOUT, SuiteChoice
from node.runtime.config import load_config
from node.store import tokens
from node.trust.keys import KeyFileError, read_private_file, write_private_file
from node.trust.manifest import Manifest

VIEWER_FILE = "viewer.token"
SCOPES_IN_FILE = ("platform", "operator")


class NoToken(Exception):
    """The mesh folder holds no token for what a tool wants to do."""


def create_mesh(
    directory: Path,
    *,
    now: float,
    base_port: int = 7101,
    provinces: Sequence[str] = DEFAULT_PROVINCES,
    platforms: bool = True,
    suites: SuiteChoice = ED25519_THROUGHOUT,
    store: StoreChoice = ONE_SQLITE_NODE,
) -> Manifest:
    """``init_mesh`` and the tokens its tools use (rules in the module docstring); a
    ``--store postgres`` mesh's server runs meanwhile, to hold them. Everything or nothing:
    when the tokens cannot be made (the database server does not start), DIR is removed."""
    manifest = init_mesh(
        directory,
        now=now,
        base_port=base_port,
        provinces=provinces,
        platforms=platforms,
        suites=suites,
        store=store,
    )
    provinces_made = [m.province for m in manifest.members]
    try:
        configs = [load_config(directory / p / "node.toml", {}) for p in provinces_made]
        server = start_mesh_database(directory, configs)
        try:
            # Synchronous like init_mesh, and callable from inside an event loop (tests, the
            # demo): the stores are opened on a loop of their own, in a thread of their own.
            with ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, provision(directory, provinces_made, now=now)).result()
        finally:
            if server is not None:
                server.stop()
    except BaseException:
        # init_mesh made DIR (it refuses one with anything in it): a mesh without its
        # tokens, or whose database server cannot run, is no mesh; nothing is left.
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return manifest


async def provision(directory: Path, provinces: Sequence[str], *, now: float) -> None:
    viewer = tokens.new_token()
    for province in provinces:
        config = load_config(directory / province / "node.toml", {})
        wanted = [(scope, scope, None) for scope in SCOPES_IN_FILE]
        made = await tokens.issue(
            config.paths.store, [*wanted, ("viewer", "read", viewer)], now=now
        )
        held = {scope: made[scope] for scope in SCOPES_IN_FILE}
        write_private_file(
            directory / province / TOKENS_FILE, (json.dumps(held, indent=2) + "\n").encode()
        )
    write_private_file(directory / VIEWER_FILE, (viewer + "\n").encode())


def mesh_token(directory: Path, province: str, scope: str) -> str:
    """The ``scope`` token of ``province``'s node in the mesh at ``directory``."""
    if scope == "read":
        path = directory / VIEWER_FILE
        try:
            return read_private_file(path).decode().strip()
        except (OSError, KeyFileError, UnicodeDecodeError) as exc:
            raise NoToken(f"cannot read {path}: {exc}") from None
    path = directory / province / TOKENS_FILE
    try:
        held = json.loads(read_private_file(path))
    except (OSError, KeyFileError, ValueError) as exc:
        raise NoToken(f"cannot read the tokens of {province} in {path}: {exc}") from None
    token = held.get(scope) if isinstance(held, dict) else None
    if not isinstance(token, str):
        raise NoToken(f"{path} holds no {scope} token")
    return token


def tool_token(
    environ: Mapping[str, str], directory: Path | None, province: str, scope: str
) -> str | None:
    """The token a tool sends: ``YRD_HTTP_TOKEN`` when set, else the mesh folder's token of
    ``scope`` for ``province`` (any province for ``read``), else None."""
    if token := environ.get("YRD_HTTP_TOKEN"):
        return token
    if directory is None:
        return None
    return mesh_token(directory, province, scope)


def bearer(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header that sends ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}

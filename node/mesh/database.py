"""The database server of a ``--store postgres`` mesh: its own PostgreSQL, data in
``DIR/postgres``, one database per province (named after it).

Rules kept here:
- A mesh runs a server of its own only when its nodes' stores are databases on this
  machine's loopback under ``DIR/postgres`` (what ``yrd mesh init --store postgres`` writes);
  a mesh on SQLite, or whose nodes point at a database elsewhere (an operator's edit), has
  none to run.
- Every province's database is made when missing, each time the server starts, so the
  server may be started on a folder whose databases someone dropped.
- ``yrd mesh init`` starts it once to put each province's REST tokens in its database, and
  stops it; ``yrd mesh up`` starts it before any node and stops it after the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from node.mesh.layout import POSTGRES_DIR
from node.mesh.postgres_server import PostgresServer, ServerFailed, start_server
from node.runtime.config import NodeConfig
from node.store.connection import PostgresUrl


def database_port(configs: Sequence[NodeConfig]) -> int | None:
    """The port of the mesh's own server that ``configs`` keep their stores on, or None
    when they keep none there (module rules); ServerFailed when they disagree on it."""
    ports = set()
    for config in configs:
        store = config.paths.store
        if not isinstance(store, PostgresUrl):
            continue
        parts = urlsplit(store.url)
        if parts.hostname == "127.0.0.1" and parts.port is not None:
            ports.add(parts.port)
    if len(ports) > 1:
        raise ServerFailed(
            f"the nodes' stores are on {len(ports)} local database ports ({sorted(ports)}); a "
            "mesh runs one server: point every [store] url at the same port"
        )
    return ports.pop() if ports else None


def start_mesh_database(directory: Path, configs: Sequence[NodeConfig]) -> PostgresServer | None:
    """Start the mesh's server and make every province's database; None for a mesh that
    runs none (module rules)."""
    port = database_port(configs)
    if port is None or not (directory / POSTGRES_DIR).is_dir():
        return None
    server = start_server(directory / POSTGRES_DIR, port=port, open_from=directory)
    try:
        for province in sorted({c.province for c in configs}):
            server.create_database(province)
    except BaseException:
        server.stop()
        raise
    return server

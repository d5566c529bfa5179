"""Asking a one-machine mesh's nodes as their own tools would.

``mesh_session(DIR)`` is an HTTP session whose every request to one of the mesh's nodes
carries that node's token of the narrowest scope the route admits (``scope_for``): the
province platform's for cases, events and certificate checks, the mesh's read-only viewer
token for status and metrics, the operator's for probes, maintenance and imports. A request
that names its own ``Authorization`` goes as it is; requests elsewhere (the simulated
platforms) carry none.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from yarl import URL

from node.api.access import scope_for
from node.mesh.access import bearer, mesh_token
from node.mesh.processes import replica_configs


def mesh_tokens(directory: Path) -> dict[str, dict[str, str]]:
    """Node base URL (``http://host:port``) -> its tokens by scope; every replica of a
    province has the province's (they share its store, which holds them)."""
    viewer = mesh_token(directory, "", "read")
    return {
        f"http://{config.http_listen}": {
            "platform": mesh_token(directory, config.province, "platform"),
            "operator": mesh_token(directory, config.province, "operator"),
            "read": viewer,
        }
        for replicas in replica_configs(directory).values()
        for config in replicas
    }


class MeshAuth:
    """The client middleware of ``mesh_session`` (rules in the module docstring)."""

    def __init__(self, tokens: dict[str, dict[str, str]] | None = None) -> None:
        self._tokens = dict(tokens or {})

    def add(self, directory: Path) -> None:
        """Also carry the tokens of the mesh at ``directory``."""
        self._tokens.update(mesh_tokens(directory))

    def headers_for(self, method: str, url: URL) -> dict[str, str]:
        """The ``Authorization`` header for ``method url``: the token of the node there, of
        the narrowest scope the route admits; none for a URL that is no node of the mesh."""
        held = self._tokens.get(f"{url.scheme}://{url.host}:{url.port}")
        return bearer(held[scope_for(method, url.path)]) if held is not None else {}

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if "Authorization" not in request.headers:
            request.headers.update(self.headers_for(request.method, request.url))
        return await handler(request)


def mesh_session(directory: Path, **options: object) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=(MeshAuth(mesh_tokens(directory)),), **options)  # type: ignore[arg-type]

"""Real nodes for integration tests: a mesh folder from ``init_mesh`` on free loopback ports,
and in-process ``Node`` objects with real gRPC, real mutual TLS and real SQLite files."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
from aiohttp.test_utils import TestClient, TestServer

from node.delivery.config import DeliveryConfig
from node.mesh.access import create_mesh, mesh_token
from node.runtime.config import NodeConfig, load_config
from node.runtime.node import Node
from node.trust.tls import TlsMaterial

BUDGET = float(os.environ.get("YRD_TEST_BUDGET", "60"))
"""Seconds: the one wall-clock budget tests derive every wait from (polls, process start
and stop, per-test timeouts), as fractions or multiples of it. Generous on purpose: it
only bounds how long a broken test takes to fail, never how fast a working one must be,
and two cores shared with other test runs can make a working one slow. Raise it with
``YRD_TEST_BUDGET`` on a slower machine."""

FAST_DELIVERY = DeliveryConfig(
    batch_size=32,
    retry_initial_seconds=0.05,
    retry_max_seconds=0.5,
    dead_letter_after_seconds=86400.0,
)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int = 4) -> int:
    """A base port whose gRPC (+0..), HTTP (+1000..) and platform (+2000..) ports are free."""
    for _ in range(200):
        base = random.randrange(20000, 28000)
        ports = [base + offset + i for offset in (0, 1000, 2000) for i in range(count)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range found")


def make_mesh(tmp_path: Path, provinces: tuple[str, ...] = ("shanghai", "jiangsu")) -> Path:
    directory = tmp_path / "mesh"
    create_mesh(
        directory,
        now=time.time(),
        base_port=free_base_port(len(provinces)),
        provinces=provinces,
        platforms=False,
    )
    return directory


def config_for(directory: Path, province: str, **changes: object) -> NodeConfig:
    config = load_config(directory / province / "node.toml", {})
    changes.setdefault("delivery", FAST_DELIVERY)
    changes.setdefault("heartbeat_interval_seconds", 0.2)
    changes.setdefault("shutdown_grace_seconds", 1.0)
    return replace(config, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    config: NodeConfig, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[Node]:
    node = Node(config, clock=clock)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def tokens_of(config: NodeConfig) -> dict[str, str]:
    """The platform and operator tokens ``create_mesh`` made for ``config``'s node, and the
    mesh's read-only viewer token, by scope."""
    assert config.source is not None
    folder = config.source.parent
    return {
        **{s: mesh_token(folder.parent, folder.name, s) for s in ("platform", "operator")},
        "read": mesh_token(folder.parent, "", "read"),
    }


class ScopedClient(TestClient[Any, Any]):
    """A test client that holds a node's tokens and sends with each request the one of the
    narrowest scope its route admits (``scope_for``), as the province platform, its operator
    and a viewer would. A request that names its own ``Authorization`` is sent as it is."""

    def __init__(self, server: TestServer, tokens: dict[str, str]) -> None:
        super().__init__(server)
        self.tokens = tokens

    def scope_for(self, method: str, path: str) -> str:
        from node.api.access import scope_for

        return scope_for(method, path)

    async def _request(self, method: str, path: Any, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        if "Authorization" not in headers:
            token = self.tokens[self.scope_for(method, str(path))]
            headers["Authorization"] = f"Bearer {token}"
        return await super()._request(method, path, headers=headers, **kwargs)


@asynccontextmanager
async def serving(
    config: NodeConfig, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[tuple[Node, ScopedClient]]:
    """A started node with its HTTP app on a loopback port, and a client for it holding the
    node's tokens (``ScopedClient``)."""
    from node.api.app import build_app

    async with running(config, clock=clock) as node:
        async with ScopedClient(TestServer(build_app(node)), tokens_of(config)) as client:
            yield node, client


def tls_of(directory: Path, province: str) -> TlsMaterial:
    folder = directory / province
    return TlsMaterial.load(directory / "ca/ca.crt", folder / "tls.crt", folder / "tls.key")


def raw_channel(config: NodeConfig, tls: TlsMaterial, target_node_id: str) -> grpc.aio.Channel:
    """A mutual-TLS channel to ``config``'s gRPC port presenting ``tls`` as the client."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
    )
    return grpc.aio.secure_channel(
        config.grpc_listen,
        credentials,
        options=[("grpc.ssl_target_name_override", target_node_id)],
    )


async def eventually(
    predicate: Callable[[], bool], *, timeout: float = BUDGET / 2, interval: float = 0.02
) -> None:
    """Wait for a condition that another task or process brings about."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def eventually_async(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = BUDGET / 2, interval: float = 0.02
) -> None:
    """``eventually`` for a condition read by awaiting (an HTTP request, say)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def settled(*nodes: Node) -> bool:
    """Every link of these nodes is up, its circuit closed, and nothing waits to be sent."""
    from node.delivery.circuit import CircuitState
    from node.store import outbox

    for node in nodes:
        for province, peer in node.peers.items():
            link = peer.worker.link
            if not link.up or link.circuit is not CircuitState.CLOSED:
                return False
            if outbox.depth(node.db.reader(), province)[0]:
                return False
    return True


URL_TOKENS: dict[str, dict[str, str]] = {}
"""Node base URL -> its tokens, for CLI tests that name nodes by ``--url`` (``cli_env``)."""


def known_url(config: NodeConfig) -> str:
    """``config``'s REST base URL, remembered with its tokens for ``cli_env``."""
    url = f"http://{config.http_listen}"
    URL_TOKENS[url] = tokens_of(config)
    return url


def cli_env(argv: Sequence[str]) -> str | None:
    """The YRD_HTTP_TOKEN a tester would set for ``yrd ARGV`` naming a node by ``--url``:
    the operator's token to import certificates, else the platform's."""
    if "--url" not in argv:
        return None
    tokens = URL_TOKENS.get(argv[list(argv).index("--url") + 1])
    if tokens is None:
        return None
    return tokens["operator" if list(argv[:2]) == ["cert", "import"] else "platform"]


async def federation_server(
    mesh: Path, province: str, handlers: dict[str, grpc.RpcMethodHandler], port: int = 0
) -> tuple[grpc.aio.Server, int]:
    """A started gRPC server with ``province``'s TLS identity (mutual TLS) serving
    ``handlers`` of the Federation service on loopback ``port`` (0: any free one)."""
    tls = tls_of(mesh, province)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("yrd.federation.v1.Federation", handlers),)
    )
    credentials = grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
    )
    bound = server.add_secure_port(f"127.0.0.1:{port}", credentials)
    await server.start()
    return server, bound

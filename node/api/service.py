"""``yrd node run``: a node with its HTTP server, until SIGTERM or SIGINT; SIGHUP reloads.

It lives in ``api``, not ``runtime``, because it serves the REST app (``api.app``) around the
node ``runtime`` wires: ``runtime`` never imports ``api``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from node.api.app import build_app
from node.runtime.clock import node_clock
from node.runtime.config import NodeConfig
from node.runtime.node import Node

log = logging.getLogger(__name__)


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def start_http(node: Node) -> web.AppRunner:
    runner = web.AppRunner(build_app(node), access_log=None)
    await runner.setup()
    host, port = split_listen(node.config.http_listen)
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(config: NodeConfig) -> None:
    node = Node(config, clock=node_clock(config))
    await node.start()
    try:
        runner = await start_http(node)
    except BaseException:
        await node.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload() -> None:
        async def run() -> None:
            with contextlib.suppress(Exception):  # reload() logs and counts its own refusal
                await node.reload()

        asyncio.ensure_future(run())  # noqa: RUF006 - fire and forget; reload logs itself

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info("serving", extra={"grpc": config.grpc_listen, "http": config.http_listen})
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await node.stop()
        await runner.cleanup()

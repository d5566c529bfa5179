"""``yrd node run --config FILE``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from monitoring.status import unreachable_reason
from node.cli.output import fail
from node.mesh.access import NoToken, bearer, mesh_token
from node.runtime.config import ConfigError, load_config
from node.runtime.logs import configure_logging
from node.runtime.startup import StartupError
from node.store.database import StoreError


def register(commands: Any) -> None:
    group = commands.add_parser("node", help="run a federation node")
    sub = group.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="run a node until SIGTERM (SIGHUP reloads the manifest)")
    run.add_argument("--config", type=Path, required=True, help="the node's node.toml")
    run.add_argument("--log-format", choices=("json", "console"), default="json")
    run.add_argument("--log-level", default="info")
    run.set_defaults(run=run_node)
    maintenance = sub.add_parser(
        "maintenance", help="switch maintenance mode (the node reports not ready while on)"
    )
    maintenance.add_argument("state", choices=("on", "off"))
    where = maintenance.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the node's node.toml")
    where.add_argument("--url", help="the node's HTTP base URL")
    maintenance.set_defaults(run=run_maintenance)


def run_node(args: argparse.Namespace) -> int:
    from node.api.service import serve

    configure_logging(args.log_format, args.log_level)
    try:
        config = load_config(args.config, os.environ)
        asyncio.run(serve(config))
    except (ConfigError, StartupError, StoreError) as exc:
        return fail(f"cannot start the node: {exc}")
    except OSError as exc:
        return fail(f"cannot start the node: {exc}")
    return 0


def run_maintenance(args: argparse.Namespace) -> int:
    url = args.url
    token = os.environ.get("YRD_HTTP_TOKEN")
    if args.config is not None:
        try:
            url = "http://" + load_config(args.config, os.environ).http_listen
        except ConfigError as exc:
            return fail(str(exc))
        if token is None:
            # A mesh folder's node: the operator token beside its node.toml.
            with contextlib.suppress(NoToken):
                token = mesh_token(args.config.parent.parent, args.config.parent.name, "operator")

    async def switch() -> tuple[int, dict[str, Any]]:
        headers = bearer(token)
        async with (
            aiohttp.ClientSession() as session,
            session.put(
                f"{url.rstrip('/')}/v1/maintenance",
                json={"on": args.state == "on"},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response,
        ):
            return response.status, await response.json(content_type=None)

    try:
        status, body = asyncio.run(switch())
    except (aiohttp.ClientError, TimeoutError) as exc:
        start = f"; start it: yrd node run --config {args.config}" if args.config else ""
        where = URL(url).authority or url
        return fail(f"the node is not answering at {where} ({unreachable_reason(exc, 10)}){start}")
    if status != 200:
        return fail(f"the node refused: {body.get('detail', body)}")
    failing = {k: v for k, v in body["checks"].items() if v != "ok"}
    verdict = "; ".join(f"{k}: {v}" for k, v in failing.items()) or "ready"
    sys.stdout.write(f"maintenance mode {args.state}; readiness now: {verdict}\n")
    return 0

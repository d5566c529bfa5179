"""``yrd node run --config FILE``."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from node.cli.output import fail
from node.runtime.config import ConfigError, load_config
from node.runtime.logs import configure_logging
from node.runtime.node import StartupError
from node.store.database import StoreError


def register(commands: Any) -> None:
    group = commands.add_parser("node", help="run a federation node")
    sub = group.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="run a node until SIGTERM (SIGHUP reloads the manifest)")
    run.add_argument("--config", type=Path, required=True, help="the node's node.toml")
    run.add_argument("--log-format", choices=("json", "console"), default="json")
    run.add_argument("--log-level", default="info")
    run.set_defaults(run=run_node)


def run_node(args: argparse.Namespace) -> int:
    from node.runtime.service import serve

    configure_logging(args.log_format, args.log_level)
    try:
        config = load_config(args.config, os.environ)
        asyncio.run(serve(config))
    except (ConfigError, StartupError, StoreError) as exc:
        return fail(f"cannot start the node: {exc}")
    except OSError as exc:
        return fail(f"cannot start the node: {exc}")
    return 0

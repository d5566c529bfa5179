"""Asking one node's REST API from the command line, for every ``yrd`` command that does.

Rules kept here:
- The node is named by ``--url`` or by ``--mesh DIR --province P`` (``node_options``). The
  bearer token comes from ``YRD_HTTP_TOKEN`` when it is set, else, with ``--mesh``, from the
  mesh folder: the province's token of the scope the command needs (``node.mesh.access``).
- Exit 0 on success; 1 when the node refuses (its problem's code, detail and field on
  stderr); 2 when the node cannot be reached (named by province, with the command that
  starts it) or the command line cannot be turned into a request (``run``).
- The HTTP client itself (``NodeApi``, ``NodeUnreachable``, ``NodeRefused``) is
  ``node.mesh.node_api``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from yarl import URL

from node.cli.output import fail
from node.mesh.access import NoToken, tool_token
from node.mesh.folder import NotAMeshFolder, mesh_configs, node_down
from node.mesh.node_api import NodeApi, NodeRefused, NodeUnreachable, node_api


def node_options() -> argparse.ArgumentParser:
    """The options that name the node to ask, as a parent parser for subcommands."""
    node = argparse.ArgumentParser(add_help=False)
    where = node.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the node's HTTP base URL, e.g. http://127.0.0.1:8101")
    where.add_argument(
        "--mesh",
        "--dir",
        type=Path,
        metavar="DIR",
        help="mesh folder: ask the node of --province",
    )
    node.add_argument(
        "--province", metavar="P", help="with --mesh: whose node to ask, e.g. shanghai"
    )
    node.add_argument("--json", action="store_true", help="print the node's answer as JSON")
    return node


class UsageProblem(Exception):
    """The command line cannot be turned into a request (nothing was sent)."""


Command = Callable[[NodeApi, argparse.Namespace], Awaitable[int]]


def run(args: argparse.Namespace, command: Command, *, scope: str = "platform") -> int:
    """Ask the node ``args`` name with a token of ``scope`` (rules in the module docstring)."""

    async def go(url: str, token: str | None) -> int:
        async with node_api(url, token) as api:
            return await command(api, args)

    try:
        url = _node_url(args)
        return asyncio.run(go(url, token_for(args, scope)))
    except UsageProblem as problem:
        return fail(str(problem), 2)
    except NodeUnreachable as exc:
        where = URL(exc.url).authority or exc.url
        return fail(node_down(args.mesh, args.province, where, exc.reason), 2)
    except NodeRefused as refusal:
        return fail(str(refusal), 1)


def token_for(args: argparse.Namespace, scope: str) -> str | None:
    """``YRD_HTTP_TOKEN``, else the mesh folder's token of ``scope`` for ``--province``."""
    try:
        return tool_token(os.environ, args.mesh, args.province, scope)
    except NoToken as exc:
        raise UsageProblem(f"{exc}; or set YRD_HTTP_TOKEN") from None


def _node_url(args: argparse.Namespace) -> str:
    if args.mesh is None:
        if args.province is not None:
            raise UsageProblem("--province goes with --mesh; --url names the node itself")
        return str(args.url)
    if args.province is None:
        raise UsageProblem("--mesh needs --province: whose node to ask")
    try:
        configs = mesh_configs(args.mesh)
    except NotAMeshFolder as exc:
        raise UsageProblem(str(exc)) from None
    for config in configs:
        if config.province == args.province:
            return f"http://{config.http_listen}"
    known = ", ".join(c.province for c in configs)
    raise UsageProblem(f"{args.province} is not in mesh {args.mesh} (it has {known})")


def mask_code(code: str) -> str:
    """310104199005171373 → 310104********1373: region and last four, never the birth date."""
    if len(code) < 12:
        return "*" * len(code)
    return code[:6] + "*" * (len(code) - 10) + code[-4:]


def fields_block(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in pairs)

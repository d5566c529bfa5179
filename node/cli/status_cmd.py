"""``yrd status --mesh DIR | URL…``: one table for the whole federation; exit 1 if unhealthy.

Nodes are named by province (the mesh folder says which URL is whose, so a silent one is
named too), and a node that does not answer comes with the command that starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from pathlib import Path
from typing import Any

from monitoring.status import (
    LINK_HEADERS,
    NODE_HEADERS,
    NodeAnswer,
    fetch_all,
    link_rows,
    node_rows,
    problems,
)
from node.cli.output import emit_json, fail, table
from node.mesh.access import NoToken, tool_token
from node.mesh.folder import NotAMeshFolder, mesh_configs, start_command


def register(commands: Any) -> None:
    status = commands.add_parser("status", help="federation health from every node")
    status.add_argument(
        "--mesh", "--dir", type=Path, metavar="DIR", help="mesh folder: ask each of its nodes"
    )
    status.add_argument("urls", nargs="*", help="node HTTP base URLs, e.g. http://127.0.0.1:8101")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=run_status)


def render(answers: list[NodeAnswer]) -> str:
    nodes = table(NODE_HEADERS, node_rows(answers))
    links = link_rows(answers)
    return nodes + ("\n" + table(LINK_HEADERS, links) if links else "")


def run_status(args: argparse.Namespace) -> int:
    urls = list(args.urls)
    names: dict[str, str] = {}
    if args.mesh:
        try:
            configs = mesh_configs(args.mesh)
        except NotAMeshFolder as exc:
            return fail(str(exc))
        names = {f"http://{c.http_listen}": c.province for c in configs}
        urls += list(names)
    if not urls:
        return fail("name a mesh folder (--mesh DIR) or node URLs")
    try:
        token = tool_token(os.environ, args.mesh, "", "read")
    except NoToken as exc:
        return fail(f"{exc}; or set YRD_HTTP_TOKEN")
    answers = asyncio.run(fetch_all(urls, token, names))
    hint = functools.partial(start_command, args.mesh) if args.mesh else None
    found = problems(answers, hint, mesh=str(args.mesh or "DIR"))
    if args.json:
        emit_json(
            {
                "healthy": not found,
                "problems": found,
                "nodes": [
                    a.status or {"url": a.url, "province": a.name, "error": a.error}
                    for a in answers
                ],
            }
        )
    else:
        sys.stdout.write(render(answers))
        sys.stdout.write(
            "\nhealthy\n" if not found else "\nUNHEALTHY:\n" + "".join(f"  - {p}\n" for p in found)
        )
    return 0 if not found else 1

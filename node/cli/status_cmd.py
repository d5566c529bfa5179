"""``yrd status --mesh DIR | URL…``: one table for the whole federation; exit 1 if unhealthy.

Nodes are named by province (the mesh folder says which URL is whose, so a silent one is
named too; replica r of a province, from 2, is ``<province>#r``), and a node that does not
answer comes with the command that starts it. A peer with several endpoints (replicas) gets
a table of each endpoint's health as each node sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitoring.status import (
    BACKLOG_RATE_HEADER,
    ENDPOINT_HEADERS,
    LINK_HEADERS,
    NODE_HEADERS,
    NodeAnswer,
    backlog_rates,
    endpoint_rows,
    fetch_all,
    link_rows,
    node_rows,
    problems,
    with_rates,
)
from node.cli.output import emit_json, fail, table
from node.mesh.access import NoToken, tool_token
from node.mesh.folder import NotAMeshFolder, mesh_replicas, start_command


def register(commands: Any) -> None:
    status = commands.add_parser("status", help="federation health from every node")
    status.add_argument(
        "--mesh", "--dir", type=Path, metavar="DIR", help="mesh folder: ask each of its nodes"
    )
    status.add_argument(
        "urls",
        nargs="*",
        help="node HTTP base URLs, e.g. http://127.0.0.1:8101, or the mesh folder (DIR)",
    )
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--watch",
        action="store_true",
        help="redraw the tables every --interval seconds, with how fast each backlog grows or "
        "drains, until Ctrl-C",
    )
    status.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="with --watch (>= 0.2)"
    )
    status.set_defaults(run=run_status)


def render(answers: list[NodeAnswer], rates: dict[tuple[str, str], float] | None = None) -> str:
    nodes = table(NODE_HEADERS, node_rows(answers))
    endpoints = endpoint_rows(answers)
    if endpoints:
        nodes += "\n" + table(ENDPOINT_HEADERS, endpoints)
    links = link_rows(answers)
    if rates is not None:
        return nodes + (
            "\n" + table([*LINK_HEADERS, BACKLOG_RATE_HEADER], with_rates(links, rates))
            if links
            else ""
        )
    return nodes + ("\n" + table(LINK_HEADERS, links) if links else "")


CLEAR_SCREEN = "\x1b[H\x1b[2J"


def watch(
    urls: list[str],
    token: str | None,
    names: dict[str, str],
    judge: Callable[[list[NodeAnswer]], list[str]],
    interval: float,
) -> int:
    """Redraw the status every ``interval`` seconds until Ctrl-C, which ends it as it ends
    every command (``node.cli.main``: one line, exit 130). On a terminal each frame replaces
    the last; into a pipe or file they follow each other."""
    clear = CLEAR_SCREEN if sys.stdout.isatty() else "\n"
    before: list[NodeAnswer] | None = None
    asked_at = 0.0
    while True:
        answers = asyncio.run(fetch_all(urls, token, names))
        now = time.monotonic()
        rates = backlog_rates(before, answers, now - asked_at) if before else {}
        found = judge(answers)
        sys.stdout.write(
            f"{clear}yrd status --watch · {time.strftime('%H:%M:%S')} · every "
            f"{interval:g} s · Ctrl-C ends\n\n"
            + render(answers, rates)
            + (
                "\nhealthy\n"
                if not found
                else "\nUNHEALTHY:\n" + "".join(f"  - {p}\n" for p in found)
            )
        )
        sys.stdout.flush()
        before, asked_at = answers, now
        time.sleep(interval)


def _host_port(word: str) -> bool:
    """``127.0.0.1:8101``: a node's address without its scheme, not a folder's name."""
    host, colon, port = word.rpartition(":")
    return bool(colon and host and port.isdigit()) and not Path(word).exists()


def run_status(args: argparse.Namespace) -> int:
    urls = []
    for given in args.urls:
        if given.startswith(("http://", "https://")):
            urls.append(given)
        elif args.mesh in (None, Path(given)) and not _host_port(given):
            # DIR, as every mesh command takes it; one that is no mesh folder gets the same
            # words as --mesh DIR (what is wrong, and yrd mesh init).
            args.mesh = Path(given)
        else:
            return fail(
                f"{given!r} is neither a node URL (http://host:port) nor a mesh folder"
                + (f" (the mesh folder is already {args.mesh})" if args.mesh else "")
            )
    names: dict[str, str] = {}
    if args.mesh:
        try:
            replicas = mesh_replicas(args.mesh)
        except NotAMeshFolder as exc:
            return fail(str(exc))
        # A row per node process: a province's replica r (from 2) is "<province>#r".
        names = {
            f"http://{c.http_listen}": c.province if number == 1 else f"{c.province}#{number}"
            for configs in replicas.values()
            for number, c in enumerate(configs, start=1)
        }
        urls += list(names)
    if not urls:
        return fail("name a mesh folder (--mesh DIR) or node URLs")
    try:
        token = tool_token(os.environ, args.mesh, "", "read")
    except NoToken as exc:
        return fail(f"{exc}; or set YRD_HTTP_TOKEN")
    hint = functools.partial(start_command, args.mesh) if args.mesh else None
    judge = functools.partial(problems, start_hint=hint, mesh=str(args.mesh or "DIR"))
    if args.watch:
        if args.json:
            return fail("--watch draws tables; --json takes one answer: choose one")
        if args.interval < 0.2:
            return fail(f"--interval must be at least 0.2 seconds, not {args.interval:g}")
        return watch(urls, token, names, judge, args.interval)
    answers = asyncio.run(fetch_all(urls, token, names))
    found = judge(answers)
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

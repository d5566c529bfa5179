"""``yrd catalog``: the federated matter catalog as one node sees it.

With ``--mesh DIR`` the first node of the mesh that answers is asked (every node holds the
whole federated catalog once the announcements are in); the nodes that did not answer are
named on stderr with the command that starts them. Exit 0 with the catalog, 1 when the node
refuses, 2 when no node answers or the folder is not a mesh folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from yarl import URL

from node.cli.folder_arg import add_folder
from node.cli.output import emit_json, fail, table
from node.mesh.access import NoToken, tool_token
from node.mesh.folder import NotAMeshFolder, mesh_configs, node_down
from node.mesh.node_api import NodeRefused, NodeUnreachable, node_api


def register(commands: Any) -> None:
    parser = commands.add_parser("catalog", help="the federated cross-province matter catalog")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a node's HTTP base URL, e.g. http://127.0.0.1:8101")
    add_folder(
        parser,
        help="mesh folder: ask the first of its nodes that answers",
        required=False,
        dest="mesh",
        group=where,
    )
    parser.add_argument("--handler", help="only matters handled by this province")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run_catalog)


async def _first_answer(
    nodes: list[tuple[str | None, str]], token: str | None, mesh: Path | None
) -> dict[str, Any]:
    """The catalog from the first of ``nodes`` (province, URL) that answers; each silent one
    is told on stderr. NodeUnreachable when none answers."""
    silent: list[str] = []
    for province, url in nodes:
        try:
            async with node_api(url, token) as api:
                return (await api.call("GET", "/v1/catalog")).body
        except NodeUnreachable as exc:
            where = URL(url).authority or url
            sentence = node_down(mesh, province, where, exc.reason)
            if len(nodes) > 1:
                sys.stderr.write(f"yrd: {sentence}\n")
            silent.append(sentence)
    if len(nodes) == 1:
        raise NodeUnreachable(nodes[0][1], silent[0])
    raise NodeUnreachable(str(mesh), f"no node of the mesh in {mesh} answers")


def run_catalog(args: argparse.Namespace) -> int:
    if (args.url is None) == (args.mesh is None):
        return fail("name the nodes to ask: a mesh folder (DIR, --dir DIR) or --url URL")
    nodes: list[tuple[str | None, str]] = [(None, args.url)]
    if args.mesh is not None:
        try:
            nodes = [(c.province, f"http://{c.http_listen}") for c in mesh_configs(args.mesh)]
        except NotAMeshFolder as exc:
            return fail(str(exc))
    try:
        token = tool_token(os.environ, args.mesh, "", "read")
    except NoToken as exc:
        return fail(f"{exc}; or set YRD_HTTP_TOKEN")
    try:
        body = asyncio.run(_first_answer(nodes, token, args.mesh))
    except NodeUnreachable as exc:
        return fail(f"cannot get the catalog: {exc.reason}")
    except NodeRefused as refusal:
        return fail(f"cannot get the catalog: {refusal}", 1)
    matters = [m for m in body["matters"] if args.handler in (None, m["handler"])]
    if args.json:
        emit_json({**body, "matters": matters})
        return 0
    sys.stdout.write(
        table(
            ["handler", "code", "matter", "modes", "days", "certificates fetched (免于提交)"],
            [
                [
                    m["handler"],
                    m["code"],
                    m["name"],
                    "/".join(m["modes"]),
                    m["promised_days"],
                    certificates_cell(m["materials"]),
                ]
                for m in matters
            ],
        )
    )
    announced = ", ".join(
        f"{p['province']} v{p['version']}" + (" (own)" if p["own"] else "")
        for p in body["provinces"]
    )
    sys.stdout.write(f"\n{len(matters)} matters; catalogs held: {announced}\n")
    return 0


def certificates_cell(materials: list[dict[str, Any]]) -> str:
    """The certificate types a matter fetches; a type asked for twice (the father's and the
    mother's ID card) is told apart by its material name."""
    wanted = [m for m in materials if m["kind"] == "certificate"]
    twice = Counter(m["certificate_type"] for m in wanted)
    return ", ".join(
        f"{m['certificate_type']} ({m['name']})"
        if twice[m["certificate_type"]] > 1
        else m["certificate_type"]
        for m in wanted
    )

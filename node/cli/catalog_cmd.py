"""``yrd catalog``: the federated matter catalog as one node sees it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from node.cli.output import emit_json, fail, table
from node.runtime.mesh import node_configs
from node.runtime.mesh_access import NoToken, tool_token


def register(commands: Any) -> None:
    parser = commands.add_parser("catalog", help="the federated cross-province matter catalog")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a node's HTTP base URL, e.g. http://127.0.0.1:8101")
    where.add_argument(
        "--mesh", "--dir", type=Path, metavar="DIR", help="mesh folder: ask its first node"
    )
    parser.add_argument("--handler", help="only matters handled by this province")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run_catalog)


async def fetch(url: str, token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{url.rstrip('/')}/v1/catalog",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response,
    ):
        body: dict[str, Any] = await response.json(content_type=None)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body.get('detail', body)}")
        return body


def run_catalog(args: argparse.Namespace) -> int:
    url = args.url
    if args.mesh is not None:
        try:
            url = f"http://{node_configs(args.mesh)[0].http_listen}"
        except (OSError, ValueError) as exc:
            return fail(f"cannot read mesh {args.mesh}: {exc}")
    try:
        token = tool_token(os.environ, args.mesh, "", "read")
    except NoToken as exc:
        return fail(f"{exc}; or set YRD_HTTP_TOKEN")
    try:
        body = asyncio.run(fetch(url, token))
    except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
        return fail(f"cannot get the catalog from {url}: {exc}")
    matters = [m for m in body["matters"] if args.handler in (None, m["handler"])]
    if args.json:
        emit_json({**body, "matters": matters})
        return 0
    sys.stdout.write(
        table(
            ["handler", "code", "matter", "modes", "days", "certificates"],
            [
                [
                    m["handler"],
                    m["code"],
                    m["name"],
                    "/".join(m["modes"]),
                    m["promised_days"],
                    ", ".join(
                        x["certificate_type"] for x in m["materials"] if x["kind"] == "certificate"
                    ),
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

"""``yrd token create|list|revoke``: the REST API's bearer tokens of one node.

Works on the node's store directly (beside a running node, like ``yrd outbox``): a token made
here is in force at once, a revoked one is refused from its next request. A new token is
printed once and never again; the store keeps only its hash.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.cli.output import emit_json, fail, table
from node.runtime.config import ConfigError, load_config
from node.store import tokens
from node.store.database import Database, DuplicateEntry, StoreError
from node.trust.manifest import format_time


def register(commands: Any) -> None:
    group = commands.add_parser("token", help="the REST API's bearer tokens of a node")
    sub = group.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="make a token and print it (once)")
    create.add_argument("--config", type=Path, required=True, help="the node's node.toml")
    create.add_argument(
        "--scope",
        required=True,
        choices=tokens.SCOPES,
        help="platform: cases, events, certificate checks, presentations, consents; "
        "operator: maintenance, probes, certificate import and every read; read: GET only",
    )
    create.add_argument("--name", required=True, help="who holds it, e.g. shanghai-platform")
    create.set_defaults(run=run_create)
    listing = sub.add_parser("list", help="every token's name, scope and state (no secrets)")
    listing.add_argument("--config", type=Path, required=True)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_list)
    revoke = sub.add_parser("revoke", help="revoke the token in force with this name")
    revoke.add_argument("--config", type=Path, required=True)
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(run=run_revoke)


def _with_store(config: Path, work: Callable[[Database], Any]) -> Any:
    path = load_config(config, os.environ).paths.store
    if isinstance(path, Path) and not path.exists():
        raise StoreError(f"there is no store at {path}; start the node once, or check --config")

    async def go() -> Any:
        db = await Database.open(path)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


def run_create(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        token = _with_store(
            args.config,
            lambda db: db.write(
                lambda c: tokens.create(c, name=args.name, scope=args.scope, now=now)
            ),
        )
    except (ConfigError, StoreError, ValueError) as exc:
        code = 1 if isinstance(exc, DuplicateEntry) else 2
        return fail(str(exc), code)
    sys.stdout.write(token + "\n")
    sys.stderr.write(
        f"yrd: {args.scope} token {args.name!r} made; it is shown only now. Send it as "
        "'Authorization: Bearer <token>'.\n"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    async def read(db: Database) -> list[tokens.ApiToken]:
        return tokens.listed(db.reader())

    try:
        held: list[tokens.ApiToken] = _with_store(args.config, read)
    except (ConfigError, StoreError) as exc:
        return fail(str(exc))
    rows = [
        {
            "name": t.name,
            "scope": t.scope,
            "created_at": format_time(t.created_at),
            "revoked_at": format_time(t.revoked_at) if t.revoked_at is not None else None,
        }
        for t in held
    ]
    if args.json:
        emit_json(rows)
    else:
        sys.stdout.write(
            table(
                ["name", "scope", "created", "state"],
                [
                    [r["name"], r["scope"], r["created_at"], f"revoked {r['revoked_at']}"]
                    if r["revoked_at"]
                    else [r["name"], r["scope"], r["created_at"], "in force"]
                    for r in rows
                ],
            )
        )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        revoked = _with_store(
            args.config, lambda db: db.write(lambda c: tokens.revoke(c, name=args.name, now=now))
        )
    except (ConfigError, StoreError) as exc:
        return fail(str(exc))
    if not revoked:
        return fail(f"no token in force is named {args.name!r}; see `yrd token list`", 1)
    sys.stdout.write(f"token {args.name!r} revoked\n")
    return 0

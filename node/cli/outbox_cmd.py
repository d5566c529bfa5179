"""``yrd outbox list|retry``: what waits for delivery, what is parked, and putting it back.

Works on the store file directly; a running node picks retried rows up within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.output import emit_json, fail, table
from node.runtime.config import ConfigError, load_config
from node.store import outbox
from node.store.connection import StoreLocation
from node.store.database import Database, StoreError
from node.trust.manifest import format_time


def register(commands: Any) -> None:
    group = commands.add_parser("outbox", help="messages waiting for or parked after delivery")
    sub = group.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="list outbox rows (pending and dead by default)")
    listing.add_argument("--config", type=Path, required=True, help="the node's node.toml")
    listing.add_argument("--state", choices=("pending", "delivered", "dead"))
    listing.add_argument("--peer")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_list)
    retry = sub.add_parser("retry", help="put parked (dead-lettered) messages back in line")
    retry.add_argument("--config", type=Path, required=True, help="the node's node.toml")
    retry.add_argument("--peer", help="every parked message to this peer")
    retry.add_argument("seqs", nargs="*", type=int, help="outbox sequence numbers")
    retry.set_defaults(run=run_retry)


def _store_path(config_path: Path) -> StoreLocation:
    return load_config(config_path, os.environ).paths.store


def run_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        return fail("--limit must be at least 1")
    try:
        path = _store_path(args.config)
    except ConfigError as exc:
        return fail(str(exc))

    async def read() -> list[outbox.OutboxItem]:
        db = await Database.open(path)
        try:
            conn = db.reader()
            if args.state:
                return outbox.list_items(conn, state=args.state, peer=args.peer, limit=args.limit)
            return [
                *outbox.list_items(conn, state="pending", peer=args.peer, limit=args.limit),
                *outbox.list_items(conn, state="dead", peer=args.peer, limit=args.limit),
            ]
        finally:
            await db.close()

    try:
        items = asyncio.run(read())
    except StoreError as exc:
        return fail(str(exc))
    if args.json:
        emit_json(
            [
                {
                    "seq": i.seq,
                    "peer": i.peer,
                    "message_id": i.message_id,
                    "type": i.payload_type,
                    "state": i.state,
                    "created_at": format_time(i.created_at),
                    "attempts": i.attempts,
                    "last_error": i.last_error,
                }
                for i in items
            ]
        )
        return 0
    sys.stdout.write(
        table(
            ["seq", "peer", "type", "state", "created", "attempts", "last error"],
            [
                [
                    i.seq,
                    i.peer,
                    i.payload_type,
                    i.state,
                    format_time(i.created_at),
                    i.attempts,
                    i.last_error[:60],
                ]
                for i in items
            ],
        )
    )
    return 0


def run_retry(args: argparse.Namespace) -> int:
    if not args.seqs and not args.peer:
        return fail("name outbox sequence numbers or --peer")
    try:
        path = _store_path(args.config)
    except ConfigError as exc:
        return fail(str(exc))

    async def retry() -> list[int]:
        db = await Database.open(path)
        try:
            return await db.write(
                lambda c: outbox.retry(c, seqs=args.seqs or None, peer=args.peer, at=time.time())
            )
        finally:
            await db.close()

    try:
        changed = asyncio.run(retry())
    except (StoreError, ValueError) as exc:
        return fail(str(exc))
    if not changed:
        named = []
        if args.seqs:
            named.append("seq " + ", ".join(map(str, args.seqs)))
        if args.peer:
            named.append(f"peer {args.peer}")
        return fail(
            f"nothing retried: no parked (dead-lettered) message matches {' and '.join(named)}; "
            "see `yrd outbox list --state dead`",
            1,
        )
    sys.stdout.write(f"{len(changed)} message(s) back in line for delivery\n")
    return 0

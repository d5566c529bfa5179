"""``GET /v1/dashboard``: what the operator dashboard draws of a node beyond ``/v1/status``.

Its history (``node.runtime.history``: the last hour of traffic, backlogs, delivery latency
and cases), its overdue cases and its dead letters, each with the command that retries it.
The dashboard reads this node's feed in-process and every other node's over HTTP with the
viewer's token, so both go through the same rendering.

Rules kept here:
- No personal data: a case is its id, role, peer, matter code and matter name and when it
  was due, never its applicant or materials; a dead letter is its outbox seq, peer, payload
  type, when it was parked and the code that parked it, never the peer's free text.
- Both lists are bounded (``LIST_LIMIT``: the newest overdue cases, longest overdue first;
  the oldest dead letters), with the full count beside them.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.api.requests import NODE_KEY, json_response
from node.store import cases, outbox
from node.trust.manifest import format_time

if TYPE_CHECKING:
    from node.runtime.node import Node

LIST_LIMIT = 50


def retry_command(node: Node, seq: int) -> str:
    """The command an operator runs on this node's machine to put dead letter ``seq`` back
    in line (``yrd outbox retry``, which works on the node's store)."""
    config = node.config.source.resolve() if node.config.source else "node.toml"
    return f"yrd outbox retry --config {shlex.quote(str(config))} {seq}"


def overdue_cases(node: Node) -> tuple[list[dict[str, Any]], int]:
    """The newest open cases past their due time, longest overdue first, and how many
    there are in all."""
    now = node.clock()
    conn = node.db.reader()
    late = [row for _, row in cases.list_cases(conn, overdue=True, now=now, limit=LIST_LIMIT)]
    late.sort(key=lambda row: row.due_at or 0.0)
    shown = []
    for row in late:
        matter = node.catalogs.find_matter(row.matter_code)
        shown.append(
            {
                "case_id": row.case_id,
                "role": row.role,
                "peer": row.peer,
                "matter_code": row.matter_code,
                "matter_name": matter.name if matter is not None else None,
                "due_at": format_time(row.due_at) if row.due_at is not None else None,
            }
        )
    return shown, sum(cases.overdue_counts(conn, now).values())


def dead_letters(node: Node) -> tuple[list[dict[str, Any]], int]:
    """The parked messages, oldest first, each with its retry command, and how many."""
    conn = node.db.reader()
    parked = outbox.list_items(conn, state=outbox.DEAD, limit=LIST_LIMIT)
    shown = [
        {
            "seq": item.seq,
            "peer": item.peer,
            "type": item.payload_type,
            "dead_at": format_time(item.dead_at) if item.dead_at is not None else None,
            "code": item.last_error.partition(":")[0].strip(),
            "retry": retry_command(node, item.seq),
        }
        for item in parked
    ]
    return shown, outbox.dead_count(conn)


def feed(node: Node) -> dict[str, Any]:
    """The document of ``GET /v1/dashboard``."""
    late, late_total = overdue_cases(node)
    parked, parked_total = dead_letters(node)
    return {
        "province": node.config.province,
        "history": node.history.to_json(),
        "overdue_cases": late,
        "overdue_total": late_total,
        "dead_letters": parked,
        "dead_letters_total": parked_total,
    }


async def dashboard_feed(request: web.Request) -> web.Response:
    return json_response(feed(request.app[NODE_KEY]))

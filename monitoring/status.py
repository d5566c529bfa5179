"""The federation status view: ask every node for ``/v1/status`` and judge the whole.

Used by ``yrd status`` and the demo. A federation is healthy when every node answered and is
ready, every directed link is up with its circuit not open, and nothing is parked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

STATUS_TIMEOUT = 5.0


@dataclass(frozen=True)
class NodeAnswer:
    url: str
    status: Mapping[str, Any] | None
    error: str = ""


async def fetch_status(
    session: aiohttp.ClientSession, url: str, token: str | None = None
) -> NodeAnswer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with session.get(
            f"{url.rstrip('/')}/v1/status",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=STATUS_TIMEOUT),
        ) as response:
            if response.status != 200:
                return NodeAnswer(url, None, f"HTTP {response.status}")
            return NodeAnswer(url, await response.json())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return NodeAnswer(url, None, f"unreachable: {type(exc).__name__} {exc}".strip())


async def fetch_all(urls: Sequence[str], token: str | None = None) -> list[NodeAnswer]:
    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(fetch_status(session, u, token) for u in urls)))


def problems(answers: Sequence[NodeAnswer]) -> list[str]:
    """Everything unhealthy, one sentence each; empty means healthy."""
    found = []
    for answer in answers:
        s = answer.status
        if s is None:
            found.append(f"{answer.url}: no status ({answer.error})")
            continue
        name = s.get("province", answer.url)
        if not s.get("ready"):
            bad = {k: v for k, v in s.get("checks", {}).items() if v != "ok"}
            found.append(f"{name}: not ready ({'; '.join(f'{k}: {v}' for k, v in bad.items())})")
        for link in s.get("peers", []):
            arrow = f"{name}→{link['peer']}"
            if not link.get("up"):
                found.append(f"{arrow}: peer not answering heartbeats")
            # Half-open is a trial under way with a peer that answers again, not a fault.
            if link.get("circuit") == "open":
                found.append(f"{arrow}: delivery circuit open ({link.get('last_error') or '?'})")
            if link.get("dead_letters"):
                found.append(f"{arrow}: {link['dead_letters']} dead letter(s)")
        platform = s.get("platform")
        if platform:
            if not platform.get("up"):
                found.append(
                    f"{name}: its platform is not answering ({platform.get('last_error') or '?'}); "
                    f"{platform.get('outbox_depth', 0)} item(s) wait for it"
                )
            if platform.get("dead_letters"):
                found.append(
                    f"{name}: its platform refused {platform['dead_letters']} delivery(ies)"
                )
    return found


def link_rows(answers: Sequence[NodeAnswer]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for answer in answers:
        s = answer.status
        if s is None:
            rows.append([answer.url, "?", "DOWN", "", "", "", "", "", answer.error])
            continue
        for link in s.get("peers", []):
            rows.append(
                [
                    s.get("province"),
                    link["peer"],
                    "up" if link.get("up") else "DOWN",
                    "" if link.get("rtt_ms") is None else f"{link['rtt_ms']:.1f}",
                    link.get("outbox_depth", 0),
                    f"{link.get('oldest_pending_age_seconds', 0):.1f}",
                    link.get("circuit", ""),
                    link.get("dead_letters", 0),
                    link.get("last_success_at") or "",
                ]
            )
    return rows


LINK_HEADERS = [
    "from",
    "to",
    "link",
    "rtt ms",
    "backlog",
    "oldest s",
    "circuit",
    "dead",
    "last success",
]


NODE_HEADERS = [
    "node",
    "ready",
    "manifest",
    "manifest ends",
    "signing key ends",
    "TLS cert ends",
    "dead",
    "overdue",
    "platform",
    "not ok",
]


def _days_left(stamp: str | None, now: float) -> str:
    if not stamp:
        return "?"
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    days = (moment - now) / 86400
    return "EXPIRED" if days <= 0 else f"{days:.0f} d"


def node_rows(answers: Sequence[NodeAnswer], now: float | None = None) -> list[list[Any]]:
    """One row per node: readiness, trust expiries (days left), dead letters, overdue cases."""
    now = time.time() if now is None else now
    rows: list[list[Any]] = []
    for answer in answers:
        s = answer.status
        if s is None:
            rows.append([answer.url, "NO ANSWER", "", "", "", "", "", "", "", answer.error])
            continue
        expiries = s.get("expiries", {})
        failing = [k for k, v in s.get("checks", {}).items() if v != "ok"]
        rows.append(
            [
                s.get("province"),
                "yes" if s.get("ready") else "NO",
                f"v{s.get('manifest', {}).get('version', '?')}",
                _days_left(expiries.get("manifest"), now),
                _days_left(expiries.get("signing_key"), now),
                _days_left(expiries.get("tls_certificate"), now),
                s.get("dead_letters", 0),
                s.get("overdue_cases", 0),
                _platform_cell(s.get("platform")),
                ", ".join(failing),
            ]
        )
    return rows


def _platform_cell(platform: dict[str, Any] | None) -> str:
    if not platform:
        return "-"
    state = "up" if platform.get("up") else "DOWN"
    waiting = platform.get("outbox_depth", 0)
    return f"{state}, {waiting} waiting" if waiting else state

"""The federation status view: ask every node for ``/v1/status`` and judge the whole.

Used by ``yrd status``, the demo and the dashboard. A federation is healthy when every node
answered and is ready, every directed link is up with its circuit not open, no witness
refuses a node's evidence log, and nothing is parked.

Rules kept here:
- Nodes are named by province wherever it is known (from their answer, or from the mesh
  folder for one that did not answer), never by URL alone; a node that did not answer says
  why in a few words (``connection refused``), never a transport library's exception text.
- A link whose heartbeats are refused shows the fault code and which side refuses, instead of
  "not answering"; a node that every peer refuses is flagged on its own, first.
- Days left until an expiry are whole days rounded down (``days_left``), the one rule for the
  CLI and the dashboard: "89 d" means at least 89 full days remain.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

STATUS_TIMEOUT = 5.0
DAY = 86400.0


@dataclass(frozen=True)
class NodeAnswer:
    url: str
    status: Mapping[str, Any] | None
    error: str = ""
    """Why there is no status, in a few words (``connection refused``)."""
    name: str | None = None
    """The node's province as the caller knows it (the mesh folder), for one that is silent."""

    @property
    def label(self) -> str:
        """The name the caller gave it (``shanghai``, ``shanghai#2`` for a replica) when it
        is that province's, else the province it says, else the URL."""
        said = self.status.get("province") if self.status is not None else None
        if isinstance(said, str) and not (self.name or "").startswith(f"{said}#"):
            return said
        return self.name or self.url


def unreachable_reason(exc: BaseException, timeout: float | None = None) -> str:
    """Why an HTTP request to a node got no answer, in words a user can act on."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:.0f} s" if timeout else "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused: nothing listens there"
        return exc.os_error.strerror or type(exc.os_error).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection closed before an answer"
    if isinstance(exc, ConnectionError | OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _refused_status(status: int) -> str:
    if status == 401:
        return "HTTP 401: the token is not accepted there"
    if status == 403:
        return "HTTP 403: the token may not read status"
    return f"HTTP {status}"


async def fetch_status(
    session: aiohttp.ClientSession, url: str, token: str | None = None, name: str | None = None
) -> NodeAnswer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with session.get(
            f"{url.rstrip('/')}/v1/status",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=STATUS_TIMEOUT),
        ) as response:
            if response.status != 200:
                return NodeAnswer(url, None, _refused_status(response.status), name)
            return NodeAnswer(url, await response.json(), name=name)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return NodeAnswer(url, None, unreachable_reason(exc, STATUS_TIMEOUT), name)


async def fetch_all(
    urls: Sequence[str], token: str | None = None, names: Mapping[str, str] | None = None
) -> list[NodeAnswer]:
    """Every node's status; ``names`` gives the province of a URL, for nodes that are silent."""
    names = names or {}
    async with aiohttp.ClientSession() as session:
        return list(
            await asyncio.gather(*(fetch_status(session, u, token, names.get(u)) for u in urls))
        )


# --- refusals -------------------------------------------------------------------------------

REFUSAL_ADVICE = {
    "key_revoked": "its signing key is revoked: yrd manifest rotate-key --dir {mesh} "
    "--province {node}, then SIGHUP every node",
    "key_not_current": "its signing key is not current in the manifest: yrd manifest "
    "rotate-key --dir {mesh} --province {node}, then SIGHUP every node",
    "unknown_key": "the manifest does not list the key it signs with: publish one that does, "
    "then SIGHUP every node",
    "unknown_sender": "the manifest the peers hold does not list it",
    "manifest_expired": "a manifest has expired: publish a new version, then SIGHUP every node",
}
"""What to do about a node every peer refuses, by the refusal's fault code."""


def refusing_side(status: Mapping[str, Any], link: Mapping[str, Any]) -> str | None:
    """Which province refuses heartbeats on this link (``link`` from ``status['peers']``),
    or None when they are not refused."""
    refusal = link.get("refusal")
    if not isinstance(refusal, Mapping):
        return None
    return str(link.get("peer")) if refusal.get("by") == "peer" else str(status.get("province"))


def refused_nodes(statuses: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Province -> the refusal codes, for each node whose every peer refuses it.

    A peer refuses a node when it answers the node's heartbeat with a signed fault, or when it
    will not take the node's signed answer to its own heartbeat; either node's view counts,
    so one that answered is enough.
    """
    refusals: dict[str, dict[str, str]] = {}
    """refused province -> refusing peer -> code"""
    peers: dict[str, set[str]] = {}
    for status in statuses:
        me = str(status.get("province"))
        for link in status.get("peers", []):
            peer = str(link.get("peer"))
            peers.setdefault(me, set()).add(peer)
            peers.setdefault(peer, set()).add(me)
            refusal = link.get("refusal")
            by = refusing_side(status, link)
            if by is None or not isinstance(refusal, Mapping):
                continue
            refused = me if by == peer else peer
            refusals.setdefault(refused, {})[by] = str(refusal.get("code"))
    return {
        node: sorted(set(by.values()))
        for node, by in refusals.items()
        if peers.get(node) and set(by) >= peers[node]
    }


# --- judging --------------------------------------------------------------------------------


def problems(
    answers: Sequence[NodeAnswer],
    start_hint: Callable[[str], str | None] | None = None,
    *,
    mesh: str = "DIR",
) -> list[str]:
    """Everything unhealthy, one sentence each; empty means healthy.

    ``start_hint(province)`` gives the command that starts a node that did not answer;
    ``mesh`` is the mesh folder the advice names.
    """
    found = []
    statuses = [a.status for a in answers if a.status is not None]
    for node, codes in refused_nodes(statuses).items():
        advice = "; ".join(
            REFUSAL_ADVICE[c].format(node=node, mesh=mesh) for c in codes if c in REFUSAL_ADVICE
        )
        found.append(
            f"{node}: EVERY peer refuses its messages ({', '.join(codes)})"
            + (f"; {advice}" if advice else "")
        )
    for answer in answers:
        s = answer.status
        if s is None:
            where = URL(answer.url).authority or answer.url
            hint = start_hint(answer.label) if start_hint else None
            found.append(
                f"{answer.label}: node not answering at {where} ({answer.error})"
                + (f"; start it: {hint}" if hint else "")
            )
            continue
        name = answer.label
        if not s.get("ready"):
            bad = {k: v for k, v in s.get("checks", {}).items() if v != "ok"}
            found.append(f"{name}: not ready ({'; '.join(f'{k}: {v}' for k, v in bad.items())})")
        for link in s.get("peers", []):
            arrow = f"{name}→{link['peer']}"
            by = refusing_side(s, link)
            if by is not None:
                refusal = link["refusal"]
                whose = f"{name}'s messages" if by == link["peer"] else f"{link['peer']}'s answers"
                found.append(
                    f"{arrow}: {by} refuses {whose}: {refusal.get('code')} "
                    f"({refusal.get('detail') or 'no detail'})"
                )
            elif not link.get("up"):
                found.append(f"{arrow}: peer not answering heartbeats")
            if refused_log := link.get("checkpoint_refused"):
                found.append(
                    f"{arrow}: {link['peer']} refuses to cosign {name}'s evidence log "
                    f"({refused_log.get('code')}, {refused_log.get('count')} time(s), last at "
                    f"{refused_log.get('at')}): {refused_log.get('reason') or 'no detail'}; "
                    "a rewrite or a fork of the log: run yrd audit verify --mesh on it"
                )
            # Half-open is a trial under way with a peer that answers again, not a fault.
            if link.get("circuit") == "open":
                found.append(f"{arrow}: delivery circuit open ({link.get('last_error') or '?'})")
            if link.get("dead_letters"):
                found.append(f"{arrow}: {link['dead_letters']} dead letter(s)")
        platform = s.get("platform")
        if platform:
            if platform.get("up") is False:  # None: another replica of the node talks to it
                found.append(
                    f"{name}: its platform is not answering ({platform.get('last_error') or '?'}); "
                    f"{platform.get('outbox_depth', 0)} item(s) wait for it"
                )
            if platform.get("dead_letters"):
                found.append(
                    f"{name}: its platform refused {platform['dead_letters']} delivery(ies)"
                )
    return found


# --- tables ---------------------------------------------------------------------------------


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def ago(stamp: str | None, now: float) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 days ago`` for a status timestamp."""
    if not stamp:
        return "never"
    seconds = max(0.0, now - _stamp(stamp))
    for unit, size, up_to in (("s", 1, 120), ("min", 60, 120), ("h", 3600, 48)):
        if seconds < size * up_to:
            return f"{math.floor(seconds / size)} {unit} ago"
    return f"{math.floor(seconds / DAY)} days ago"


def link_rows(answers: Sequence[NodeAnswer], now: float | None = None) -> list[list[Any]]:
    """One row per directed link of each node that answered (a silent node's own links are
    unknown; its peers' rows show them down)."""
    now = time.time() if now is None else now
    rows: list[list[Any]] = []
    for answer in answers:
        s = answer.status
        if s is None:
            continue
        for link in s.get("peers", []):
            by = refusing_side(s, link)
            state = "REFUSED" if by else "up" if link.get("up") else "DOWN"
            refusal = link.get("refusal") or {}
            rows.append(
                [
                    answer.label,
                    link["peer"],
                    state,
                    "" if link.get("rtt_ms") is None else f"{link['rtt_ms']:.1f}",
                    link.get("outbox_depth", 0),
                    f"{link.get('oldest_pending_age_seconds', 0):.1f}",
                    link.get("circuit", ""),
                    link.get("dead_letters", 0),
                    "REFUSED"
                    if link.get("checkpoint_refused")
                    else _cosigned(link.get("cosigned"), now),
                    ago(link.get("last_success_at"), now),
                    f"{refusal.get('code')} (by {by})" if by else "",
                ]
            )
    return rows


ENDPOINT_HEADERS = ["from", "to", "endpoint", "state", "in use", "failures", "last error"]


def endpoint_rows(answers: Sequence[NodeAnswer]) -> list[list[Any]]:
    """One row per endpoint of each peer with several (a node run as replicas), as each
    node that answered sees it; none when every peer has one endpoint."""
    rows: list[list[Any]] = []
    for answer in answers:
        for link in (answer.status or {}).get("peers", []):
            endpoints = link.get("endpoints") or []
            if len(endpoints) < 2:
                continue
            rows += [
                [
                    answer.label,
                    link["peer"],
                    e.get("endpoint"),
                    e.get("state"),
                    "yes" if e.get("current") else "",
                    e.get("failures", 0),
                    _short(e.get("last_error") or ""),
                ]
                for e in endpoints
            ]
    return rows


def _short(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _cosigned(last: dict[str, Any] | None, now: float) -> str:
    """The size of the last checkpoint of the node's log the peer cosigned, and how long ago."""
    if not last:
        return "never"
    return f"{last['tree_size']} · {ago(last['at'], now)}"


LINK_HEADERS = [
    "from",
    "to",
    "link",
    "rtt ms",
    "backlog",
    "oldest s",
    "circuit",
    "dead",
    "cosigned",
    "last success",
    "refused",
]


BACKLOG_RATE_HEADER = "backlog /s"


def backlog_rates(
    before: Sequence[NodeAnswer], after: Sequence[NodeAnswer], seconds: float
) -> dict[tuple[str, str], float]:
    """How fast each directed link's backlog grew (positive) or drained (negative) between
    two rounds of answers ``seconds`` apart, by (from, to); links seen in only one round
    are left out."""
    if seconds <= 0:
        return {}

    def depths(answers: Sequence[NodeAnswer]) -> dict[tuple[str, str], float]:
        return {
            (answer.label, str(link["peer"])): float(link.get("outbox_depth", 0))
            for answer in answers
            if answer.status is not None
            for link in answer.status.get("peers", [])
        }

    then, now = depths(before), depths(after)
    return {key: (now[key] - then[key]) / seconds for key in now.keys() & then.keys()}


def with_rates(rows: list[list[Any]], rates: Mapping[tuple[str, str], float]) -> list[list[Any]]:
    """``link_rows`` with the backlog's rate of change as a last column ("" when unknown)."""
    return [
        [*row, f"{rates[(row[0], row[1])]:+.1f}" if (row[0], row[1]) in rates else ""]
        for row in rows
    ]


NODE_HEADERS = [
    "node",
    "ready",
    "manifest",
    "manifest ends",
    "key ends",
    "TLS ends",
    "holidays",
    "dead",
    "overdue",
    "platform",
    "not ok",
]


def days_left(moment: float, now: float) -> str:
    """``89 d`` (whole days, rounded down), ``0 d`` on the last day, ``EXPIRED`` after.

    The one rule and the one wording every surface uses (module rules)."""
    if moment <= now:
        return "EXPIRED"
    return f"{math.floor((moment - now) / DAY)} d"


def _days_left(stamp: str | None, now: float) -> str:
    return days_left(_stamp(stamp), now) if stamp else "?"


def node_rows(answers: Sequence[NodeAnswer], now: float | None = None) -> list[list[Any]]:
    """One row per node: readiness, trust expiries (days left), dead letters, overdue cases."""
    now = time.time() if now is None else now
    refused = refused_nodes([a.status for a in answers if a.status is not None])
    rows: list[list[Any]] = []
    for answer in answers:
        s = answer.status
        if s is None:
            rows.append([answer.label, "NO ANSWER", *[""] * (len(NODE_HEADERS) - 2)])
            continue
        expiries = s.get("expiries", {})
        failing = [k for k, v in s.get("checks", {}).items() if v != "ok"]
        # Ready by its own checks, yet no peer takes its messages: the table says so too.
        failing += [f"refused by every peer ({c})" for c in refused.get(answer.label, [])]
        failing += [
            f"log refused by witness {link['peer']} ({link['checkpoint_refused'].get('code')})"
            for link in s.get("peers", [])
            if link.get("checkpoint_refused")
        ]
        rows.append(
            [
                answer.label,
                "yes" if s.get("ready") else "NO",
                f"v{s.get('manifest', {}).get('version', '?')}",
                _days_left(expiries.get("manifest"), now),
                _days_left(expiries.get("signing_key"), now),
                _days_left(expiries.get("tls_certificate"), now),
                _days_left(expiries.get("holiday_tables"), now),
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
    up = platform.get("up")  # None: another replica of the node talks to it
    state = "other replica's" if up is None else "up" if up else "DOWN"
    waiting = platform.get("outbox_depth", 0)
    return f"{state}, {waiting} waiting" if waiting else state

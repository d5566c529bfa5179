"""The operator dashboard at ``GET /``: one server-rendered HTML page, no script, no CDN.

Rules kept here:
- The page works offline: inline CSS only, nothing fetched by the browser but the page itself
  (a Content-Security-Policy says so), and it refreshes itself with ``<meta http-equiv>``.
- Without a query it shows this node's view: its three outbound links and when each peer was
  last heard from. With ``?mesh=URL,URL,...`` it also asks those nodes for ``/v1/status`` and
  ``/metrics`` server-side and fills the whole directed-link matrix.
- Mesh URLs must be plain ``http://`` on a loopback host (the operator's own machine); any
  other URL is refused with 400 so the page cannot be used to reach arbitrary hosts.
- Every value that came from a node or a request is escaped before it reaches the HTML.
- A link whose heartbeats are refused shows the refusal's code and who refuses, and a node
  that every peer refuses says so on its card; days left follow ``monitoring.status``'s rule.
- History is drawn as sparklines (``node.api.sparkline``) from each node's feed
  (``GET /v1/dashboard``, ``node.api.dashboard_feed``): a link's outbound series (sent,
  backlog, oldest, latency) from its sender, its inbound ones (received, refused) from its
  receiver; each node's cases on its card. Below them, the overdue cases (ids and matters
  only) and the dead letters with the command that retries each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from monitoring.status import (
    DAY,
    STATUS_TIMEOUT,
    days_left,
    fetch_status,
    refused_nodes,
    refusing_side,
)
from node.api.access import presented_token
from node.api.dashboard_feed import feed
from node.api.dashboard_panels import (
    link_history,
    node_history,
    render_dead_letters,
    render_overdue,
)
from node.api.markup import province_label
from node.api.markup import text as _e
from node.api.problems import ProblemError
from node.api.requests import NODE_KEY
from node.trust.manifest import PROVINCES

if TYPE_CHECKING:
    from node.runtime.node import Node

REFRESH_SECONDS = 5
MAX_MESH_URLS = 36
"""Four provinces of up to nine replicas each (``yrd mesh init --replicas``)."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
EXPIRY_WARNING_DAYS = 30.0
"""Amber from here on, the same horizon as the expiry alerts in monitoring/prometheus."""
EXPIRY_GAUGES = {
    "manifest": "yrd_manifest_expiry_timestamp_seconds",
    "signing key": "yrd_signing_key_expiry_timestamp_seconds",
    "TLS certificate": "yrd_tls_certificate_expiry_timestamp_seconds",
    "holiday tables": "yrd_holiday_tables_end_timestamp_seconds",
}
REFUSALS_COUNTER = "yrd_messages_refused_total"
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass(frozen=True)
class RefusalCount:
    """How many messages of one type were refused with one code on one link, since start."""

    peer: str
    direction: str
    payload_type: str
    code: str
    count: int


@dataclass(frozen=True)
class NodeView:
    """What the dashboard knows about one node: its status document and a few metrics."""

    source: str
    status: Mapping[str, Any] | None
    error: str = ""
    refusals: tuple[RefusalCount, ...] = ()
    expiries: Mapping[str, float] = field(default_factory=dict)
    feed: Mapping[str, Any] | None = None
    """The node's ``GET /v1/dashboard`` document: history, overdue cases, dead letters."""

    @property
    def province(self) -> str | None:
        if self.status is None:
            return None
        value = self.status.get("province")
        return value if isinstance(value, str) else None


def parse_mesh(raw: str, known: Iterable[str] = ()) -> list[str]:
    """The loopback base URLs named in ``?mesh=``, each this node itself or one of ``known``
    (``[http] dashboard_peers``): the viewer's token goes to each, so never to a process
    that merely listens on a local port. Anything else raises a 400 problem."""
    allowed = {_place(URL(u)) for u in known}
    urls = [part.strip() for part in raw.split(",") if part.strip()]
    if not urls:
        raise ProblemError(400, "invalid_mesh", "mesh must list node URLs", field="mesh")
    if len(urls) > MAX_MESH_URLS:
        raise ProblemError(
            400, "invalid_mesh", f"mesh may list at most {MAX_MESH_URLS} URLs", field="mesh"
        )
    for text in urls:
        try:
            url = URL(text)
            host, _ = url.host, url.port
        except ValueError as exc:
            raise ProblemError(
                400, "invalid_mesh_url", f"mesh URL {text!r} is not a URL", field="mesh"
            ) from exc
        if (
            url.scheme != "http"
            or host not in LOOPBACK_HOSTS
            or url.user is not None
            or url.password is not None
            or url.path not in ("", "/")
            or url.query_string
            or url.fragment
        ):
            raise ProblemError(
                400,
                "invalid_mesh_url",
                f"mesh URL {text!r} must be http://127.0.0.1:PORT or http://localhost:PORT",
                field="mesh",
            )
        if _place(url) not in allowed:
            raise ProblemError(
                400,
                "invalid_mesh_url",
                f"mesh URL {text!r} is not this node's nor a peer's in [http] dashboard_peers",
                field="mesh",
            )
    return urls


def _place(url: URL) -> str:
    """host:port of a loopback URL, localhost read as 127.0.0.1."""
    host = "127.0.0.1" if url.host == "localhost" else url.host
    return f"{host}:{url.port}"


def metric_facts(
    families: Iterable[Metric],
) -> tuple[tuple[RefusalCount, ...], dict[str, float]]:
    """Refusal counts and expiry timestamps read from metric families, local or scraped."""
    refusals: list[RefusalCount] = []
    expiries: dict[str, float] = {}
    wanted = {name: label for label, name in EXPIRY_GAUGES.items()}
    for family in families:
        for sample in family.samples:
            if sample.name == REFUSALS_COUNTER and sample.value > 0:
                labels = sample.labels
                refusals.append(
                    RefusalCount(
                        peer=labels.get("peer", ""),
                        direction=labels.get("direction", ""),
                        payload_type=labels.get("type", ""),
                        code=labels.get("code", ""),
                        count=int(sample.value),
                    )
                )
            elif sample.name in wanted and sample.value > 0:
                expiries[wanted[sample.name]] = sample.value
    refusals.sort(key=lambda r: (-r.count, r.code, r.peer, r.direction))
    return tuple(refusals), expiries


def local_view(node: Node) -> NodeView:
    """This node's own status and metrics, read in-process."""
    refusals, expiries = metric_facts(node.metrics.registry.collect())
    return NodeView(
        "this node", node.health.status(), refusals=refusals, expiries=expiries, feed=feed(node)
    )


async def fetch_view(session: aiohttp.ClientSession, url: str, token: str | None) -> NodeView:
    """Another node's view from its ``/v1/status``, ``/metrics`` and ``/v1/dashboard``;
    errors are reported, a missing feed only leaves its sparklines and lists empty."""
    answer = await fetch_status(session, url, token)
    if answer.status is None:
        return NodeView(url, None, answer.error)
    shown = await fetch_feed(session, url, token)
    try:
        async with session.get(
            f"{url.rstrip('/')}/metrics", timeout=aiohttp.ClientTimeout(total=STATUS_TIMEOUT)
        ) as response:
            text = await response.text() if response.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        text = ""
    try:
        refusals, expiries = metric_facts(text_string_to_metric_families(text))
    except ValueError:
        refusals, expiries = (), {}
    return NodeView(url, answer.status, refusals=refusals, expiries=expiries, feed=shown)


async def fetch_feed(
    session: aiohttp.ClientSession, url: str, token: str | None
) -> Mapping[str, Any] | None:
    """Another node's ``/v1/dashboard`` document, or None when it does not give one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with session.get(
            f"{url.rstrip('/')}/v1/dashboard",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=STATUS_TIMEOUT),
        ) as response:
            if response.status != 200:
                return None
            document = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return document if isinstance(document, Mapping) else None


async def gather_views(node: Node, mesh: Sequence[str], token: str | None) -> list[NodeView]:
    """This node's view first, then one per mesh URL that is not this node again, each asked
    with the viewer's own token (it must be in force there too: a mesh's viewer token is)."""
    views = [local_view(node)]
    if mesh:
        async with aiohttp.ClientSession() as session:
            fetched = await asyncio.gather(*(fetch_view(session, url, token) for url in mesh))
        views.extend(v for v in fetched if not _is_node(v, node))
    return views


def _is_node(view: NodeView, node: Node) -> bool:
    """Whether ``view`` is ``node`` itself again: the same HTTP address, or (a node from
    before replicas, which says no address) the same province."""
    if view.status is None:
        return False
    listen = view.status.get("listen")
    if isinstance(listen, Mapping):
        return listen.get("http") == node.config.http_listen
    return view.province == node.config.province


# --- rendering -------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:1.5rem;
color:#1b1f24;background:#f6f8fa}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.muted{color:#57606a;font-size:.85rem}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #d0d7de;padding:.35rem .55rem;text-align:left;vertical-align:top;
font-size:.9rem}
th{background:#eaeef2}
td.link{min-width:9rem}
td.self{background:#eaeef2}
.link-up{background:#dafbe1}.link-down{background:#ffebe9}.link-degraded{background:#fff8c5}
.link-partial{background:#ddf4ff}.link-unknown{background:#f6f8fa;color:#57606a}
.state{font-weight:700}
.cards{display:flex;flex-wrap:wrap;gap:1rem}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1rem;
min-width:17rem}
.card h3{margin:0 0 .4rem;font-size:1rem}
.ok{color:#1a7f37;font-weight:700}.bad{color:#cf222e;font-weight:700}
.warn{color:#9a6700;font-weight:700}
dl{display:grid;grid-template-columns:auto auto;gap:.15rem .8rem;margin:0;font-size:.9rem}
dt{color:#57606a}dd{margin:0}
table.sparks{margin-top:.4rem;background:none}
.sparks th,.sparks td{border:0;padding:0 .35rem 0 0;font-size:.75rem;background:none;
font-weight:400;vertical-align:middle}
.sparks th{color:#57606a;white-space:nowrap}
svg.spark{display:block}
"""


def _number(value: object, digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _days(timestamp: float, now: float) -> tuple[str, str]:
    days = (timestamp - now) / DAY
    css = "bad" if days <= 0 else "warn" if days < EXPIRY_WARNING_DAYS else "ok"
    return days_left(timestamp, now), css


def link_cell(views: Mapping[str, NodeView], sender: str, receiver: str) -> str:
    """One directed link: the sender's outbound state, or failing that what the receiver saw;
    its history from both."""
    view = views.get(sender)
    status = view.status if view else None
    receiving = views.get(receiver)
    history = link_history(
        view.feed if view else None, receiving.feed if receiving else None, sender, receiver
    )
    if status is not None:
        for link in status.get("peers", []):
            if link.get("peer") != receiver:
                continue
            up = bool(link.get("up"))
            circuit = str(link.get("circuit", ""))
            dead = link.get("dead_letters", 0)
            css = "up" if up and circuit == "closed" and not dead else "degraded" if up else "down"
            refused_by = refusing_side(status, link)
            state = "REFUSED" if refused_by else "up" if up else "DOWN"
            rows = [
                f'<span class="state">{state}</span> · rtt {_number(link.get("rtt_ms"))} ms',
                f"backlog {_number(link.get('outbox_depth'))}"
                f" · oldest {_number(link.get('oldest_pending_age_seconds'))} s",
                f"circuit {_e(circuit)}",
            ]
            if dead:
                rows.append(f"dead letters {_number(dead)}")
            if refused_by:
                rows.append(
                    f'<span class="bad">refused by {_e(refused_by)}: '
                    f"{_e(link['refusal'].get('code'))}</span>"
                )
            # A healthy link's last error is history from before it came up, not news.
            if css != "up" and link.get("last_error"):
                rows.append(f'<span class="muted">{_e(link["last_error"])}</span>')
            return (
                f'<td class="link link-{css}" data-link="{_e(sender)}-{_e(receiver)}">'
                + "<br>".join(rows)
                + history
                + "</td>"
            )
    if receiving is not None and receiving.status is not None:
        for link in receiving.status.get("peers", []):
            if link.get("peer") == sender and link.get("last_received_at"):
                return (
                    f'<td class="link link-partial" data-link="{_e(sender)}-{_e(receiver)}">'
                    f'<span class="state">seen</span><br>last received<br>'
                    f"{_e(link['last_received_at'])}{history}</td>"
                )
    return f'<td class="link link-unknown" data-link="{_e(sender)}-{_e(receiver)}">no data</td>'


def render_matrix(views: Mapping[str, NodeView], provinces: Sequence[str]) -> str:
    head = "".join(f"<th>to {province_label(p)}</th>" for p in provinces)
    body = []
    for sender in provinces:
        cells = "".join(
            '<td class="self">—</td>' if sender == receiver else link_cell(views, sender, receiver)
            for receiver in provinces
        )
        body.append(f"<tr><th>from {province_label(sender)}</th>{cells}</tr>")
    return (
        f'<table class="matrix"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def render_card(view: NodeView, now: float, refused_by_all: Sequence[str] = ()) -> str:
    """One node's card; ``refused_by_all`` holds the refusal codes when every peer refuses it."""
    status = view.status
    if status is None:
        return (
            f'<div class="card"><h3>{_e(view.source)}</h3>'
            f'<span class="bad">no status</span> <span class="muted">{_e(view.error)}</span></div>'
        )
    province = str(status.get("province", "?"))
    if status.get("ready"):
        readiness = '<span class="ok">ready</span>'
    else:
        failing = [f"{k}: {v}" for k, v in dict(status.get("checks", {})).items() if v != "ok"]
        readiness = f'<span class="bad">not ready</span> {_e("; ".join(failing))}'
    manifest = dict(status.get("manifest", {}))
    rows = [
        ("node", _e(status.get("node_id", ""))),
        ("readiness", readiness),
        ("manifest version", _e(manifest.get("version", "?"))),
    ]
    if refused_by_all:
        codes = _e(", ".join(refused_by_all))
        rows.append(("peers", f'<span class="bad">every peer refuses it: {codes}</span>'))
    for label in EXPIRY_GAUGES:
        stamp = view.expiries.get(label)
        if stamp is None:
            rows.append((f"{label} expires in", "–"))
        else:
            text, css = _days(stamp, now)
            rows.append((f"{label} expires in", f'<span class="{css}">{_e(text)}</span>'))
    dead = status.get("dead_letters", 0)
    overdue = status.get("overdue_cases", 0)
    rows.append(("dead letters", f'<span class="{"bad" if dead else "ok"}">{_number(dead)}</span>'))
    rows.append(
        ("overdue cases", f'<span class="{"bad" if overdue else "ok"}">{_number(overdue)}</span>')
    )
    platform = status.get("platform")
    if isinstance(platform, Mapping):
        up = platform.get("up")  # None: another replica of the node talks to it
        state = "another replica's" if up is None else "up" if up else "DOWN"
        waiting = int(platform.get("outbox_depth", 0))
        css = "ok" if up is not False and not platform.get("dead_letters") else "bad"
        text = f"{state}, {waiting} waiting" if waiting else state
        rows.append(("province platform", f'<span class="{css}">{_e(text)}</span>'))
    cases = status.get("cases")
    if isinstance(cases, Mapping) and cases:
        counts = ", ".join(
            f"{role} {sum(by_status.values())}" for role, by_status in sorted(cases.items())
        )
        rows.append(("cases", _e(counts)))
    rows.append(("inbox messages", _number(status.get("inbox_messages", 0))))
    listen = status.get("listen")
    if isinstance(listen, Mapping):
        rows.insert(1, ("listens on", _e(f"gRPC {listen.get('grpc')}, HTTP {listen.get('http')}")))
    details = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        f'<div class="card" data-province="{_e(province)}"><h3>{province_label(province)}</h3>'
        f"<dl>{details}</dl>{node_history(view.feed, province)}"
        f'<p class="muted">from {_e(view.source)}</p></div>'
    )


def render_replicas(views: Sequence[NodeView]) -> str:
    """A row per node process of the provinces that run several (replicas): where it
    listens, whether it is ready, and which endpoint of each peer it calls now."""
    counted: dict[str, int] = {}
    for view in views:
        if view.province is not None:
            counted[view.province] = counted.get(view.province, 0) + 1
    if all(n < 2 for n in counted.values()):
        return ""
    rows = []
    for view in sorted(views, key=lambda v: (v.province or "", v.source)):
        status = view.status
        if status is None or counted.get(view.province or "", 0) < 2:
            continue
        said = status.get("listen")
        listen: Mapping[str, Any] = said if isinstance(said, Mapping) else {}
        ready = (
            '<span class="ok">ready</span>'
            if status.get("ready")
            else ('<span class="bad">not ready</span>')
        )
        calls = ", ".join(
            f"{link.get('peer')} → {e.get('endpoint')}"
            for link in status.get("peers", [])
            for e in link.get("endpoints", [])
            if e.get("current")
        )
        rows.append(
            f'<tr data-province="{_e(view.province)}"><td>{province_label(view.province or "")}'
            f"</td><td>{_e(listen.get('http'))}</td><td>{_e(listen.get('grpc'))}</td>"
            f"<td>{ready}</td><td>{_e(calls)}</td></tr>"
        )
    return (
        "<h2>Replicas (a row per node process)</h2>"
        '<table class="replicas"><thead><tr><th>province</th><th>HTTP</th><th>gRPC</th>'
        "<th>readiness</th><th>calls peers at</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_refusals(views: Sequence[NodeView]) -> str:
    rows = [
        f"<tr><td>{province_label(view.province or view.source)}</td><td>{_e(r.code)}</td>"
        f"<td>{_e(r.direction)}</td><td>{province_label(r.peer)}</td>"
        f"<td>{_e(r.payload_type)}</td><td>{r.count}</td></tr>"
        for view in views
        for r in view.refusals
    ]
    if not rows:
        return '<p class="muted">No refusals since the nodes started.</p>'
    return (
        '<table class="refusals"><thead><tr><th>node</th><th>code</th><th>direction</th>'
        "<th>peer</th><th>type</th><th>count</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_page(views: Sequence[NodeView], *, own: str, now: float) -> str:
    """The whole dashboard document for these node views."""
    by_province = {v.province: v for v in views if v.province is not None}
    named: set[str] = set(by_province)
    for view in views:
        if view.status is not None:
            named.update(str(link.get("peer")) for link in view.status.get("peers", []))
    order = list(PROVINCES)
    provinces = sorted(named, key=lambda p: (order.index(p) if p in order else len(order), p))
    links = len(provinces) * (len(provinces) - 1)
    refused = refused_nodes([v.status for v in views if v.status is not None])
    cards = "".join(render_card(v, now, refused.get(v.province or "", ())) for v in views)
    # Replicas of a province read one database: its overdue cases and dead letters once,
    # from the first replica that answered.
    feeds: dict[str, Mapping[str, Any] | None] = {}
    for view in views:
        label = view.province or view.source
        if feeds.get(label) is None:
            feeds[label] = view.feed
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Yangtze Delta federation — {_e(own)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Yangtze Delta federation 长三角 — served by {province_label(own)}</h1>"
        f'<p class="muted">{len(provinces)} provinces, {links} directed links; generated '
        f"{_e(generated)}; refreshes every {REFRESH_SECONDS} s.</p>"
        "<h2>Links (rows send, columns receive)</h2>"
        f"{render_matrix(by_province, provinces)}"
        f"{render_replicas(views)}"
        "<h2>Nodes</h2>"
        f'<div class="cards">{cards}</div>'
        "<h2>Overdue cases (past their promised time, 承诺时限)</h2>"
        f"{render_overdue(list(feeds.items()))}"
        "<h2>Dead letters (parked, waiting for an operator)</h2>"
        f"{render_dead_letters(list(feeds.items()))}"
        "<h2>Refusals by code (since each node started)</h2>"
        f"{render_refusals(views)}"
        "</body></html>\n"
    )


async def dashboard(request: web.Request) -> web.Response:
    """The operator dashboard: this node's view, or the whole mesh's with ``?mesh=``."""

    node = request.app[NODE_KEY]
    raw = request.query.get("mesh")
    known = (*node.config.dashboard_peers, f"http://{node.config.http_listen}")
    mesh = parse_mesh(raw, known) if raw is not None else []
    views = await gather_views(node, mesh, presented_token(request))
    page = render_page(views, own=node.config.province, now=node.clock())
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        },
    )

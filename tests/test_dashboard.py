"""The operator dashboard at ``GET /``: a four-node mesh rendered by one node, read by aiohttp
and by real headless Chromium (Debian package chromium), which leaves a screenshot in
``test-artifacts/dashboard.png`` (and one before any history, ``dashboard-no-history.png``).

Without Chromium the browser test skips on a workstation; in CI (``CI=true``) it fails instead.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.api.dashboard import (
    MAX_MESH_URLS,
    NodeView,
    RefusalCount,
    parse_mesh,
    render_card,
    render_page,
)
from node.api.dashboard_panels import samples
from node.api.problems import ProblemError
from node.api.service import start_http
from node.api.sparkline import HEIGHT as SPARK_HEIGHT
from node.api.sparkline import LINE_COLOUR
from node.mesh.auth import mesh_session
from node.runtime.history import CAPACITY, History
from node.runtime.node import Node
from node.transport.errors import FAULT_TRAILER
from node.wire import DELIVER_METHOD, pb
from tests.binaries import required_binary
from tests.nodes import (
    BUDGET,
    config_for,
    eventually,
    make_mesh,
    raw_channel,
    running,
    settled,
    tls_of,
)
from tests.pixels import pixels_of, shape_heights

PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_TIMEOUT = BUDGET


class Mesh:
    """Four running nodes with their HTTP servers, one refusal already counted at Jiangsu."""

    def __init__(self, directory: Path, nodes: dict[str, Node]) -> None:
        self.directory = directory
        self.nodes = nodes
        self.urls = {p: f"http://{n.config.http_listen}" for p, n in nodes.items()}

    def dashboard_url(self, served_by: str = "shanghai", *, credentials: bool = False) -> str:
        """The mesh page; with ``credentials`` the viewer token in the URL, as HTTP Basic's
        password, the way a browser is given it."""
        mesh = ",".join(self.urls[p] for p in PROVINCES)
        url = f"{self.urls[served_by]}/?mesh={mesh}"
        if credentials:
            token = (self.directory / "viewer.token").read_text().strip()
            url = url.replace("http://", f"http://viewer:{token}@", 1)
        return url


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    directory = make_mesh(tmp_path, provinces=PROVINCES)
    async with AsyncExitStack() as stack:
        nodes: dict[str, Node] = {}
        for province in PROVINCES:
            node = await stack.enter_async_context(running(config_for(directory, province)))
            runner = await start_http(node)
            stack.push_async_callback(runner.cleanup)
            nodes[province] = node
        # Up is not enough: a message queued while a peer was still starting leaves that link's
        # circuit half-open until its retry goes through, so wait for every link to settle.
        await eventually(lambda: settled(*nodes.values()), timeout=BUDGET)
        jiangsu = nodes["jiangsu"]
        async with raw_channel(
            jiangsu.config, tls_of(directory, "shanghai"), jiangsu.config.node_id
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(DELIVER_METHOD)(b"\xff\x00garbage", timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(refused.value.trailing_metadata() or ()).get(FAULT_TRAILER)
        yield Mesh(directory, nodes)


def assert_shows_the_mesh(page: str) -> None:
    for sender in PROVINCES:
        for receiver in PROVINCES:
            if sender == receiver:
                continue
            cell = re.search(rf'data-link="{sender}-{receiver}">(.*?)</table></td>', page, re.S)
            assert cell is not None, f"no cell for {sender}→{receiver}"
            assert ">up</span>" in cell.group(1), f"{sender}→{receiver} is not shown up"
            assert "circuit closed" in cell.group(1)
            # The sender's feed, fetched from it: the backlog is sampled from its start on.
            backlog = re.search(r'data-series="backlog">(.*?)</tr>', cell.group(1), re.S)
            assert backlog is not None and LINE_COLOUR in backlog.group(1), (sender, receiver)
    for chinese in ("上海", "江苏", "浙江", "安徽"):
        assert chinese in page
    assert "4 provinces, 12 directed links" in page
    assert "malformed_envelope" in page
    assert page.count('class="card"') == 4
    assert page.count('data-series="cases_overdue"') == 4


async def test_dashboard_shows_all_twelve_links_and_the_refusal(mesh: Mesh) -> None:
    """One node renders the whole mesh: every directed link up, the refusal by code, offline."""
    async with (
        mesh_session(mesh.directory) as session,
        session.get(mesh.dashboard_url()) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        page = await response.text()
    assert_shows_the_mesh(page)
    assert re.search(r'<meta http-equiv="refresh" content="\d+">', page)
    # Offline: nothing for the browser to fetch (no script, stylesheet, image or font links).
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", page)
    # The only URLs on the page are the mesh nodes', shown as text on their cards.
    assert set(re.findall(r"https?://[^\s<\"']+", page)) <= set(mesh.urls.values())


async def test_dashboard_without_mesh_shows_this_nodes_links(mesh: Mesh) -> None:
    """Without ``?mesh`` a node shows its own outbound links and when each peer was heard."""
    async with (
        mesh_session(mesh.directory) as session,
        session.get(mesh.urls["shanghai"] + "/") as response,
    ):
        assert response.status == 200
        page = await response.text()
    for peer in ("jiangsu", "zhejiang", "anhui"):
        assert re.search(rf'data-link="shanghai-{peer}">\s*<span class="state">up<', page)
        assert f'class="link link-partial" data-link="{peer}-shanghai"' in page
    assert page.count('class="card"') == 1


@pytest.mark.parametrize(
    "bad",
    [
        "http://example.com",
        "http://10.0.0.1:8101",
        "https://127.0.0.1:8101",
        "http://user:pw@127.0.0.1:8101",
        "http://127.0.0.1:8101/v1/status",
        "file:///etc/passwd",
        "",
    ],
)
async def test_dashboard_refuses_non_loopback_mesh_urls(mesh: Mesh, bad: str) -> None:
    """A mesh URL that is not plain http on loopback is a 400 problem naming the field."""
    async with (
        mesh_session(mesh.directory) as session,
        session.get(mesh.urls["anhui"] + "/", params={"mesh": bad}) as response,
    ):
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        body = await response.json()
    assert body["field"] == "mesh"
    assert body["code"] in {"invalid_mesh", "invalid_mesh_url"}


def test_parse_mesh_accepts_known_loopback_nodes() -> None:
    """127.0.0.1, localhost and [::1] with a port (and an optional slash) are accepted when
    they are this node or a known peer; any other port is refused (the viewer's token would
    go to whatever listens there)."""
    raw = "http://127.0.0.1:1, http://localhost:2/,http://[::1]:3"
    known = ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://[::1]:3"]
    assert parse_mesh(raw, known) == [
        "http://127.0.0.1:1",
        "http://localhost:2/",
        "http://[::1]:3",
    ]
    with pytest.raises(ProblemError):
        parse_mesh(",".join(["http://127.0.0.1:1"] * (MAX_MESH_URLS + 1)), known)
    with pytest.raises(ProblemError) as refused:
        parse_mesh("http://127.0.0.1:1,http://127.0.0.1:4", known)
    assert refused.value.code == "invalid_mesh_url"


async def test_dashboard_never_sends_the_token_to_an_unknown_port(mesh: Mesh) -> None:
    """A mesh URL that is no known peer (a process of anyone's on a free local port) is
    refused with 400, and nothing, the viewer's token least of all, reaches it."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    async with TestServer(app, host="127.0.0.1") as listener:
        bad = f"{mesh.urls['anhui']},http://127.0.0.1:{listener.port}"
        async with (
            mesh_session(mesh.directory) as session,
            session.get(mesh.urls["shanghai"] + "/", params={"mesh": bad}) as response,
        ):
            assert response.status == 400
            assert (await response.json())["code"] == "invalid_mesh_url"
    assert seen == []


def test_every_dynamic_value_is_escaped() -> None:
    """Markup in a node's status or metric labels reaches the page as text, never as markup."""
    evil = "<script>alert(1)</script>"
    status = {
        "node_id": evil,
        "province": "shanghai",
        "ready": False,
        "checks": {"store": evil},
        "manifest": {"version": evil},
        "peers": [{"peer": "jiangsu", "up": False, "circuit": evil, "last_error": evil}],
    }
    refusal = RefusalCount(peer=evil, direction="inbound", payload_type=evil, code=evil, count=1)
    feed = {
        "history": {"interval_seconds": 5, "peers": {"jiangsu": {"sent": [1, 2]}}, "node": {}},
        "overdue_cases": [
            {k: evil for k in ("case_id", "role", "peer", "matter_code", "matter_name", "due_at")}
        ],
        "dead_letters": [{k: evil for k in ("seq", "peer", "type", "dead_at", "code", "retry")}],
    }
    page = render_page(
        [NodeView(evil, status, refusals=(refusal,), feed=feed), NodeView(evil, None, error=evil)],
        own="shanghai",
        now=0.0,
    )
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert page.count('<table class="overdue">') == page.count('<table class="dead-letters">') == 1


def test_a_malformed_feed_draws_as_no_samples() -> None:
    """A feed is another process's answer: anything but a list of numbers draws as "no
    samples" (or a gap for one bad sample), at most an hour of samples is read, and lists
    that are not lists are no rows; the page renders in every case."""
    status = {
        "node_id": "node-310000",
        "province": "shanghai",
        "ready": True,
        "checks": {},
        "manifest": {"version": 1},
        "peers": [{"peer": "jiangsu", "up": True, "circuit": "closed"}],
    }
    for history in (
        "not a mapping",
        {"peers": ["jiangsu"]},
        {"peers": {"jiangsu": {"sent": "1,2,3", "backlog": {"a": 1}}}},
        {"peers": {"jiangsu": {"sent": [True, "7", None, {}]}}},
        {"peers": {"jiangsu": {"sent": [math.inf, math.nan, -math.inf]}}},
    ):
        feed = {"history": history, "overdue_cases": "x", "dead_letters": [1, None]}
        page = render_page([NodeView("a", status, feed=feed)], own="shanghai", now=0.0)
        assert LINE_COLOUR not in page, history
        assert "No case is past its promised time." in page and "No dead letters." in page
    long = {"peers": {"jiangsu": {"backlog": [9.0] * 5000 + [1.0, 2.0]}}}
    assert samples({"history": long}, "backlog", "jiangsu")[-2:] == [1.0, 2.0]
    assert len(samples({"history": long}, "backlog", "jiangsu")) == CAPACITY
    gapped = {"peers": {"jiangsu": {"sent": [1, "x", 3]}}}
    assert samples({"history": gapped}, "sent", "jiangsu") == [1.0, None, 3.0]


def test_card_shows_the_platform_link_and_cases() -> None:
    """A node's card says whether its province platform answers and how much waits for it,
    and how many cases it takes part in by role."""
    status = {
        "node_id": "node-340000",
        "province": "anhui",
        "ready": True,
        "checks": {},
        "manifest": {"version": 1},
        "peers": [],
        "platform": {"up": False, "outbox_depth": 3, "dead_letters": 0},
        "cases": {"accepting": {"evaluated": 2, "delivered": 1}, "handling": {"accepted": 4}},
    }
    card = render_card(NodeView("http://127.0.0.1:8104", status), now=0.0)
    assert '<dt>province platform</dt><dd><span class="bad">DOWN, 3 waiting</span>' in card
    assert "<dt>cases</dt><dd>accepting 3, handling 4</dd>" in card


def test_a_refused_link_and_a_node_every_peer_refuses_are_shown() -> None:
    """A link whose heartbeats are refused shows REFUSED with the code and who refuses, and the
    card of a node every peer refuses says so; expiries use the one days-left rule."""
    refused = {"code": "key_revoked", "by": "peer", "detail": "revoked"}
    jiangsu = {
        "node_id": "node-320000",
        "province": "jiangsu",
        "ready": True,
        "checks": {},
        "manifest": {"version": 1},
        "peers": [{"peer": "shanghai", "up": False, "circuit": "closed", "refusal": refused}],
    }
    shanghai = {**jiangsu, "province": "shanghai", "node_id": "node-310000", "peers": []}
    expiry = {"manifest": 89.9 * 86400}
    page = render_page(
        [NodeView("a", jiangsu, expiries=expiry), NodeView("b", shanghai)], own="jiangsu", now=0.0
    )
    cell = re.search(r'data-link="jiangsu-shanghai">(.*?)</td>', page, re.S)
    assert cell is not None
    assert ">REFUSED</span>" in cell.group(1) and "refused by shanghai: key_revoked" in cell.group(
        1
    )
    card = re.search(r'data-province="jiangsu">(.*?)</div>', page, re.S)
    assert card is not None and "every peer refuses it: key_revoked" in card.group(1)
    assert ">89 d</span>" in card.group(1)  # what yrd status says too: one rule
    other = re.search(r'data-province="shanghai">(.*?)</div>', page, re.S)
    assert other is not None and "every peer refuses" not in other.group(1)


def test_each_replica_of_a_province_has_a_row_of_its_own() -> None:
    """Two Shanghai replicas and one Jiangsu node: a replicas table with a row per Shanghai
    replica (its addresses, readiness and the Jiangsu endpoint it calls), and a card each;
    a mesh with one node per province has no replicas table."""

    def node(province: str, http: str, grpc: str, calls: str, ready: bool = True) -> NodeView:
        endpoints = [{"endpoint": calls, "state": "healthy", "current": True}]
        status = {
            "node_id": "node-x",
            "province": province,
            "listen": {"grpc": grpc, "http": http},
            "ready": ready,
            "checks": {},
            "manifest": {"version": 1},
            "peers": [{"peer": "jiangsu", "up": True, "endpoints": endpoints}],
        }
        return NodeView(f"http://{http}", status)

    views = [
        node("shanghai", "127.0.0.1:8101", "127.0.0.1:7101", "127.0.0.1:7102"),
        node("shanghai", "127.0.0.1:8201", "127.0.0.1:7201", "127.0.0.1:7202", ready=False),
        node("jiangsu", "127.0.0.1:8102", "127.0.0.1:7102", "127.0.0.1:7101"),
    ]
    page = render_page(views, own="shanghai", now=0.0)
    table = re.search(r'<table class="replicas">(.*?)</table>', page, re.S)
    assert table is not None
    rows = re.findall(r'<tr data-province="shanghai">(.*?)</tr>', table.group(1), re.S)
    assert len(rows) == 2
    assert "127.0.0.1:8101" in rows[0] and "jiangsu → 127.0.0.1:7102" in rows[0]
    assert "127.0.0.1:8201" in rows[1] and "not ready" in rows[1]
    assert "jiangsu" not in re.sub(r"jiangsu → ", "", table.group(1).split("</thead>")[1])
    assert page.count("listens on") == 3
    assert 'class="replicas"' not in render_page(views[::2], own="shanghai", now=0.0)


def test_replicas_reading_one_database_list_its_overdue_cases_and_dead_letters_once() -> None:
    """Both Shanghai replicas answer with the same feed (one database): its overdue case and
    its dead letter are listed once, not once per replica."""
    feed = {
        "overdue_cases": [
            {"case_id": "310000-20261206-0000000000000001", "role": "handling", "peer": "jiangsu"}
        ],
        "dead_letters": [{"seq": 7, "peer": "jiangsu", "type": "case_update", "retry": "r"}],
    }
    status = {"province": "shanghai", "ready": True, "checks": {}, "peers": []}
    views = [
        NodeView("http://127.0.0.1:8101", status, feed=feed),
        NodeView("http://127.0.0.1:8201", status, feed=feed),
    ]
    page = render_page(views, own="shanghai", now=0.0)
    assert page.count("310000-20261206-0000000000000001") == 1
    assert page.count("<td>7</td>") == 1


def chromium_binary() -> str:
    return required_binary("chromium", "chromium")


def fresh_history(node: Node) -> None:
    """From now on the page shows a history holding only the samples the test takes (the
    sampling task keeps filling the node's first one, which the page no longer reads)."""
    node.history = History(
        metrics=node.metrics,
        outboxes=node.health.outbox_snapshots,
        cases=node.health.case_snapshot,
        clock=node.clock,
    )


async def screenshot(url: str, picture: Path, profile: Path) -> str:
    """Real headless Chromium opens ``url``, leaves a screenshot at ``picture`` and returns
    the DOM it rendered."""
    chromium = chromium_binary()
    remove(picture)
    process = await asyncio.create_subprocess_exec(
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--screenshot={picture}",
        "--window-size=1400,1000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CHROMIUM_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert size_of(picture) > 10_000
    return stdout.decode()


def remove(picture: Path) -> None:
    picture.unlink(missing_ok=True)


def size_of(picture: Path) -> int:
    return picture.stat().st_size


@pytest.mark.slow
async def test_dashboard_in_headless_chromium(mesh: Mesh, tmp_path: Path) -> None:
    """Real Chromium renders the mesh page; its DOM shows every link and the refusal. Before
    any sample no pixel has the sparklines' colour; after bursts of probes from Shanghai to
    Jiangsu, sampled between bursts, the screenshot holds sparklines that rise and fall
    (shapes of that colour far taller than a flat line), drawn from that traffic."""
    chromium_binary()
    ARTIFACTS.mkdir(exist_ok=True)
    for node in mesh.nodes.values():
        fresh_history(node)
    before = ARTIFACTS / "dashboard-no-history.png"
    await screenshot(mesh.dashboard_url(credentials=True), before, tmp_path / "profile")
    assert pixels_of(before, LINE_COLOUR) == set()

    shanghai = mesh.nodes["shanghai"]
    for count in (0, 40, 3, 20):
        if count:
            await shanghai.courier.send(
                "jiangsu", [("probe", pb.Probe(sequence=i)) for i in range(count)]
            )
            await eventually(lambda: settled(*mesh.nodes.values()), timeout=BUDGET)
        for node in mesh.nodes.values():
            node.history.sample()
    after = ARTIFACTS / "dashboard.png"
    dom = await screenshot(mesh.dashboard_url(credentials=True), after, tmp_path / "profile")
    assert_shows_the_mesh(dom)
    cell = re.search(r'data-link="shanghai-jiangsu">(.*?)</table></td>', dom, re.S)
    assert cell is not None
    for series in ("sent", "received"):
        row = re.search(rf'<tr data-series="{series}">(.*?)</tr>', cell.group(1), re.S)
        assert row is not None
        heights = {p.split(",")[1] for p in re.findall(r"[0-9.]+,[0-9.]+", row.group(1))}
        assert len(heights) >= 3, f"{series} on shanghai→jiangsu is flat: {row.group(1)}"
    tallest = shape_heights(pixels_of(after, LINE_COLOUR))
    assert tallest and tallest[0] >= SPARK_HEIGHT // 2, f"no rising sparkline drawn: {tallest}"

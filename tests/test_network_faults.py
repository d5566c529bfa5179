"""Real network faults between real nodes: each directed link runs through a fault-injecting
TCP proxy (``node.mesh.links``) on loopback, carrying the nodes' mutual-TLS gRPC untouched,
while probes and cases flow both ways. A one-way partition, a slow and lossy link and a
connection that hangs without closing each end with nothing lost, nothing duplicated, every
case's updates in order, and the node's status showing the link down while it was.

Also here: the ``[peers.<province>] address`` setting that routes a link through a proxy,
and the TLS identity check it leaves in place; and the same proxies in the mesh for testers
(``yrd mesh up --links`` with ``yrd mesh link``, ``yrd chaos --network``) as real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from node.delivery.circuit import CircuitState
from node.mesh.chaos import KINDS, NETWORK_KINDS, plan_schedule
from node.mesh.faults import CLEAR, LinkFault
from node.mesh.links import LinkProxy, LinkSet, mesh_routes
from node.runtime.config import ConfigError, load_config, parse_config
from node.runtime.node import Node
from node.store import outbox
from node.wire import pb
from tests.cases import case_body, matter_of, status_of
from tests.nodes import (
    config_for,
    eventually,
    free_base_port,
    make_mesh,
    running,
    serving,
    settled,
)
from tests.processes import authorized, http

SH, JS = "shanghai", "jiangsu"
DOCUMENT = "cd" * 32
DRAIN = 90.0
"""Seconds a backlog may take to drain after a heal: generous, the machine is shared."""


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


@dataclass
class Federation:
    """Shanghai and Jiangsu in this process, every link between them through a proxy."""

    links: LinkSet
    sh: Node
    js: Node
    sh_api: TestClient[Any, Any]
    js_api: TestClient[Any, Any]

    def link(self, sender: str, receiver: str) -> LinkProxy:
        return self.links.link(sender, receiver)


@asynccontextmanager
async def through_links(mesh: Path) -> AsyncIterator[Federation]:
    configs = {p: config_for(mesh, p) for p in (SH, JS)}
    links = LinkSet(mesh_routes({p: c.grpc_listen for p, c in configs.items()}), seed=20)
    await links.start()
    try:
        routed = {
            p: replace(c, peer_addresses={r: links.link(p, r).address for r in configs if r != p})
            for p, c in configs.items()
        }
        async with (
            serving(routed[SH]) as (sh, sh_api),
            serving(routed[JS]) as (js, js_api),
        ):
            await eventually(lambda: settled(sh, js), timeout=DRAIN)
            yield Federation(links, sh, js, sh_api, js_api)
    finally:
        await links.close()


class ProbeFlow:
    """Probes from one node to a peer, one every ``every`` seconds, until stopped: load that
    keeps flowing through a fault. ``ids`` in the order they were committed."""

    def __init__(self, node: Node, peer: str, every: float = 0.05) -> None:
        self.node, self.peer, self.every = node, peer, every
        self.ids: list[str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        sequence = 0
        while not self._stop.is_set():
            self.ids += await self.node.courier.send(
                self.peer, [("probe", pb.Probe(sequence=sequence))]
            )
            sequence += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every):
                    await self._stop.wait()

    async def stop(self) -> list[str]:
        """Stop after the probe being committed, if any (so ``ids`` names every one sent)."""
        self._stop.set()
        await self._task
        return self.ids


def probes_from(receiver: Node, sender: Node) -> list[str]:
    """Ids of the probes ``receiver`` stored from ``sender``, in the order it stored them."""
    rows = receiver.db.reader().execute(
        "SELECT message_id FROM inbox WHERE sender = ? AND payload_type = 'probe' ORDER BY rowid",
        (sender.config.node_id,),
    )
    return [str(r[0]) for r in rows]


def evidence_per_message(node: Node, kind: str) -> Counter[str]:
    """Evidence log entries of ``kind`` (a received ``envelope``, a ``reply`` to what we sent)
    per message id."""
    rows = node.db.reader().execute(
        "SELECT message_id FROM audit WHERE direction = 'received' AND kind = ?", (kind,)
    )
    return Counter(str(r[0]) for r in rows)


def pending_to(node: Node, peer: str) -> int:
    return outbox.depth(node.db.reader(), peer)[0]


def assert_each_once_in_order(sender: Node, receiver: Node, sent: list[str]) -> None:
    """Every probe sent arrived, once, in the order sent; each left one evidence entry on
    each side (received at the receiver, its receipt at the sender) and was receipted."""
    assert sent, "no load flowed"
    arrived = probes_from(receiver, sender)
    assert arrived == sent
    received = evidence_per_message(receiver, "envelope")
    receipts = evidence_per_message(sender, "reply")
    for message_id in sent:
        assert received[message_id] == 1, message_id
        assert receipts[message_id] == 1, message_id
        row = outbox.get(sender.db.reader(), message_id)
        assert row is not None and row.state == outbox.DELIVERED


async def post(api: TestClient[Any, Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    data: dict[str, Any] = await response.json()
    assert response.status in (200, 201, 202), data
    return data


async def peer_view(api: TestClient[Any, Any], peer: str) -> dict[str, Any]:
    """The node's ``GET /v1/status`` entry for its link to ``peer``."""
    response = await api.get("/v1/status")
    assert response.status == 200
    status = await response.json()
    found: dict[str, Any] = next(p for p in status["peers"] if p["peer"] == peer)
    return found


def case_updates_in_arrival_order(node: Node, case_id: str) -> list[int]:
    """The sequence numbers of the case updates ``node`` stored for ``case_id``, in the order
    they arrived on the wire."""
    found = []
    for (envelope,) in node.db.reader().execute(
        "SELECT envelope FROM inbox WHERE payload_type = 'case_update' ORDER BY rowid"
    ):
        message = pb.Message.FromString(pb.Envelope.FromString(envelope).message)
        if message.case_update.case_id == case_id:
            found.append(message.case_update.sequence)
    return found


async def assert_same_history(f: Federation, case_ids: list[str], status: str) -> None:
    """Both sides hold the same history of each case, numbered 1..n once each; the
    accepting side got the handler's updates on the wire in their order."""
    for case_id in case_ids:
        sh_view = await (await f.sh_api.get(f"/v1/cases/{case_id}")).json()
        js_view = await (await f.js_api.get(f"/v1/cases/{case_id}")).json()
        assert sh_view["status"] == js_view["status"] == status
        assert sh_view["history"] == js_view["history"]
        sequences = [h["sequence"] for h in js_view["history"]]
        assert sequences == list(range(1, len(sequences) + 1))
        arrived = case_updates_in_arrival_order(f.js, case_id)
        assert arrived == sorted(arrived) and len(arrived) == len(set(arrived))
        assert arrived == sequences[1:]


@pytest.mark.slow
@pytest.mark.timeout(300)  # 30 s of partition, then the drain's budget on a busy machine
async def test_a_one_way_partition_of_30_s_under_load_loses_and_duplicates_nothing(
    mesh: Path,
) -> None:
    """Shanghai → Jiangsu is cut for 30 s while probes flow both ways and Jiangsu keeps
    submitting cases that Shanghai handles. Meanwhile Shanghai's status shows Jiangsu down
    with its circuit open and a backlog, Jiangsu's shows Shanghai up, new cases still reach
    Shanghai, and none of Shanghai's updates reach Jiangsu. After the heal everything
    drains: every probe once and in order, every case completed alike on both sides with
    its updates in order, one evidence entry per message."""
    async with through_links(mesh) as f:
        handled = matter_of(SH)
        before = [
            (await post(f.js_api, "/v1/cases", case_body(handled, seed=i)))["case_id"]
            for i in range(4)
        ]
        await eventually(lambda: all(status_of(f.sh, c) == "delivered" for c in before))
        flows = [ProbeFlow(f.sh, JS), ProbeFlow(f.js, SH)]

        await f.link(SH, JS).set_fault(LinkFault(partition=True))
        cut_at = time.monotonic()
        for case_id in before:
            await post(f.sh_api, f"/v1/cases/{case_id}/events", {"action": "accept"})
        during = [
            (await post(f.js_api, "/v1/cases", case_body(handled, seed=10 + i)))["case_id"]
            for i in range(4)
        ]
        await eventually(lambda: all(status_of(f.sh, c) == "delivered" for c in during))
        await eventually(lambda: all(status_of(f.js, c) == "delivered" for c in during))
        for case_id in during:
            await post(f.sh_api, f"/v1/cases/{case_id}/events", {"action": "accept"})
        for case_id in before + during:
            result = {"kind": "document", "document_sha256": DOCUMENT}
            await post(
                f.sh_api, f"/v1/cases/{case_id}/events", {"action": "complete", "result": result}
            )
        link = f.sh.peers.link(JS)
        await eventually(lambda: not link.up and link.consecutive_failures >= 2, timeout=DRAIN)

        shown = await peer_view(f.sh_api, JS)
        assert shown["up"] is False and shown["last_error"]
        assert shown["outbox_depth"] >= 2 * len(before + during)
        assert (await peer_view(f.js_api, SH))["up"] is True
        assert f.link(SH, JS).stats.resets >= 2
        # Not one of Shanghai's updates crossed: Jiangsu still has every case as delivered.
        assert all(status_of(f.js, c) == "delivered" for c in before + during)

        await asyncio.sleep(max(0.0, cut_at + 30.0 - time.monotonic()))  # the partition
        assert f.sh.peers.link(JS).circuit is not CircuitState.CLOSED or not f.sh.peers.link(JS).up
        await f.link(SH, JS).set_fault(CLEAR)
        sent = {SH: await flows[0].stop(), JS: await flows[1].stop()}

        await eventually(lambda: settled(f.sh, f.js), timeout=DRAIN)
        assert f.sh.peers.link(JS).circuit is CircuitState.CLOSED
        assert (await peer_view(f.sh_api, JS))["up"] is True
        assert_each_once_in_order(f.sh, f.js, sent[SH])
        assert_each_once_in_order(f.js, f.sh, sent[JS])
        await eventually(
            lambda: all(status_of(f.js, c) == "completed" for c in before + during),
            timeout=DRAIN,
        )
        await assert_same_history(f, before + during, "completed")
        assert f.sh.health.status()["dead_letters"] == f.js.health.status()["dead_letters"] == 0


@pytest.mark.slow
async def test_a_slow_lossy_link_completes_everything_once(mesh: Path) -> None:
    """Both directions 200 ms ± 50 ms with 5 % of segments lost (each loss a retransmission
    stall): probes both ways and full case lifecycles complete, each message once, updates
    in order, and the status shows the slow round trip."""
    async with through_links(mesh) as f:
        slow = LinkFault(latency=0.2, jitter=0.05, loss=0.05)
        for sender, receiver in ((SH, JS), (JS, SH)):
            await f.link(sender, receiver).set_fault(slow)
        flows = [ProbeFlow(f.sh, JS, every=0.02), ProbeFlow(f.js, SH, every=0.02)]
        cases = [
            (await post(f.js_api, "/v1/cases", case_body(matter_of(SH), seed=i)))["case_id"]
            for i in range(3)
        ]
        await eventually(
            lambda: all(status_of(f.sh, c) == "delivered" for c in cases), timeout=DRAIN
        )
        for case_id in cases:
            await post(f.sh_api, f"/v1/cases/{case_id}/events", {"action": "accept"})
            result = {"kind": "document", "document_sha256": DOCUMENT}
            await post(
                f.sh_api, f"/v1/cases/{case_id}/events", {"action": "complete", "result": result}
            )
        await eventually(
            lambda: all(status_of(f.js, c) == "completed" for c in cases), timeout=DRAIN
        )
        sent = {SH: await flows[0].stop(), JS: await flows[1].stop()}
        await eventually(lambda: settled(f.sh, f.js), timeout=DRAIN)
        # A heartbeat's round trip crosses each direction once: at least 150 ms each way.
        shown = await peer_view(f.sh_api, JS)
        assert shown["rtt_ms"] is not None and shown["rtt_ms"] >= 300
        assert_each_once_in_order(f.sh, f.js, sent[SH])
        assert_each_once_in_order(f.js, f.sh, sent[JS])
        await assert_same_history(f, cases, "completed")
        assert len(sent[SH]) > 20 and len(sent[JS]) > 20
        assert f.link(SH, JS).stats.bytes_forward > 0 and f.link(JS, SH).stats.bytes_forward > 0


@pytest.mark.slow
async def test_a_connection_that_hangs_trips_the_senders_deadline_then_drains(
    mesh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shanghai → Jiangsu becomes a blackhole: connections stay open, nothing crosses. The
    sender's deadlines fire (heartbeats at 3 s; batches at the delivery deadline, shortened
    here to 4 s so the test stays short), its status shows the link down with the deadline
    as the error, and the proxy still holds the connection open. After the heal every probe
    arrives once, in order."""
    monkeypatch.setattr("node.delivery.worker.BATCH_TIMEOUT", 4.0)
    async with through_links(mesh) as f:
        hole = f.link(SH, JS)
        await hole.set_fault(LinkFault(blackhole=True))
        forwarded = hole.stats.bytes_forward
        flow = ProbeFlow(f.sh, JS)
        link = f.sh.peers.link(JS)
        await eventually(lambda: link.consecutive_failures >= 1 and not link.up, timeout=DRAIN)
        [head] = outbox.list_items(f.sh.db.reader(), peer=JS, state=outbox.PENDING, limit=1)
        assert head.attempts >= 1 and "deadline" in head.last_error
        shown = await peer_view(f.sh_api, JS)
        assert shown["up"] is False and shown["circuit"] != "closed"
        assert shown["outbox_depth"] > 0
        assert hole.stats.open >= 1, "the hanging connection was closed"
        assert hole.stats.bytes_forward == forwarded
        assert hole.stats.bytes_read > 0  # the sender wrote; nothing went through
        assert pending_to(f.sh, JS) > 0

        await hole.set_fault(CLEAR)
        sent = await flow.stop()
        await eventually(lambda: settled(f.sh, f.js), timeout=DRAIN)
        assert hole.stats.bytes_forward > forwarded
        assert_each_once_in_order(f.sh, f.js, sent)


@pytest.mark.slow
async def test_a_proxy_to_the_wrong_node_is_refused_by_tls(mesh: Path) -> None:
    """The peer address changes only where bytes go: a link to Jiangsu that leads to
    Shanghai's own port relays the TLS handshake, which fails (the far end is not Jiangsu's
    node), so nothing is delivered and the link stays down."""
    sh_config = config_for(mesh, SH)
    wrong = LinkProxy(SH, JS, sh_config.grpc_listen)
    await wrong.start()
    try:
        routed = replace(sh_config, peer_addresses={JS: wrong.address})
        async with running(routed) as sh, running(config_for(mesh, JS)) as js:
            await sh.courier.send(JS, [("probe", pb.Probe(sequence=1))])
            link = sh.peers.link(JS)
            await eventually(
                lambda: link.consecutive_failures >= 2 and wrong.stats.bytes_back > 0,
                timeout=DRAIN,
            )
            assert not link.up
            assert probes_from(js, sh) == []
            assert pending_to(sh, JS) >= 1
    finally:
        await wrong.close()


def test_peer_addresses_are_read_from_node_toml(mesh: Path) -> None:
    """``[peers.<province>] address`` in node.toml sets where that peer is dialled."""
    path = mesh / SH / "node.toml"
    path.write_text(path.read_text() + '\n[peers.jiangsu]\naddress = "127.0.0.1:40001"\n')
    assert load_config(path, {}).peer_addresses == {JS: "127.0.0.1:40001"}
    assert load_config(mesh / JS / "node.toml", {}).peer_addresses == {}


@pytest.mark.parametrize(
    ("peers", "named"),
    [
        ({"jiangsu": {"address": "nowhere"}}, "must be host:port"),
        ({"jiangsu": {"address": "127.0.0.1:0"}}, "must be host:port"),
        ({"jiangsu": {"address": "127.0.0.1:70000"}}, "must be host:port"),
        ({"jiangsu": {"adress": "127.0.0.1:1"}}, "unknown key 'adress'"),
        ({"jiangsu": {}}, "missing key 'address'"),
        ({"jiangsu": "127.0.0.1:1"}, r"must be a table \(\[peers.jiangsu\]\)"),
        ({"shanghai": {"address": "127.0.0.1:1"}}, "does not dial itself"),
    ],
)
def test_a_wrong_peer_address_is_refused_naming_it(
    mesh: Path, peers: dict[str, Any], named: str
) -> None:
    """A peer address that is not host:port, an unknown key, a missing address, a bare
    string or the node's own province stops the config load, naming the table at fault."""
    path = mesh / SH / "node.toml"
    data = tomllib.loads(path.read_text())
    with pytest.raises(ConfigError, match=named):
        parse_config({**data, "peers": peers}, base=path.parent, env={})


# --- the mesh for testers: yrd mesh up --links, yrd mesh link, yrd chaos --network ----------

YRD = [sys.executable, "-m", "node.cli.main"]
PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")


def yrd(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*YRD, *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_network_schedule_disturbs_every_kind_on_real_links() -> None:
    """With ``network`` the seeded schedule holds every process and link kind, each link
    kind on a directed pair of two provinces with a fault that is not clear, one at a time;
    the same seed gives the same schedule, and without ``network`` no link is touched."""
    for seed in (1, 2, 3):
        schedule = plan_schedule(seed, 30, PROVINCES, network=True)
        assert schedule == plan_schedule(seed, 30, PROVINCES, network=True)
        assert {d.kind for d in schedule} == set(KINDS) | set(NETWORK_KINDS)
        for d in schedule:
            if d.kind in NETWORK_KINDS:
                assert d.peer in PROVINCES and d.peer != d.province
                assert d.fault is not None and not d.fault.is_clear
            else:
                assert d.peer is None and d.fault is None
        for earlier, later in itertools.pairwise(schedule):
            assert earlier.at + earlier.hold < later.at
        plain = plan_schedule(seed, 30, PROVINCES)
        assert all(d.kind in KINDS for d in plain)


def status_of_link(mesh: Path, province: str, peer: str) -> dict[str, Any]:
    with urllib.request.urlopen(authorized(mesh, http(mesh, province) + "/v1/status")) as r:
        status = json.load(r)
    found: dict[str, Any] = next(p for p in status["peers"] if p["peer"] == peer)
    return found


def wait_for(check: Callable[[], bool], what: str, timeout: float = DRAIN) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.slow
def test_mesh_up_with_links_routes_every_node_and_obeys_yrd_mesh_link(tmp_path: Path) -> None:
    """``yrd mesh up --links`` lists a proxy per directed link in mesh.json and routes each
    node through them; ``yrd mesh link`` partitions one link (its sender's status shows the
    peer down, the other way stays up) and heals it; a link that does not exist is refused
    and changes nothing; stopping the mesh removes the routes and the control files."""
    mesh = make_mesh(tmp_path)
    toml_before = {p: (mesh / p / "node.toml").read_text() for p in (SH, JS)}
    err = tmp_path / "supervisor.err"
    with err.open("wb") as stderr:
        supervisor = subprocess.Popen(
            [*YRD, "mesh", "up", "--dir", str(mesh), "--links"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for(lambda: (mesh / "mesh.json").exists(), f"no mesh.json: {err.read_text()}")
        record = json.loads((mesh / "mesh.json").read_text())
        links = {(x["sender"], x["receiver"]): x for x in record["links"]}
        assert set(links) == {(SH, JS), (JS, SH)}
        nodes = {n["province"]: n for n in record["nodes"]}
        assert links[SH, JS]["target"] == nodes[JS]["grpc"]
        for sender, receiver in links:
            config = load_config(mesh / sender / "node.toml", {})
            assert config.peer_addresses == {receiver: links[sender, receiver]["listen"]}
        wait_for(lambda: status_of_link(mesh, SH, JS)["up"], "the link never came up")

        cut = yrd("mesh", "link", "--dir", str(mesh), f"{SH}:{JS}", "--partition")
        assert cut.returncode == 0, cut.stderr
        assert re.search(rf"^{SH}:{JS} +partition ", cut.stdout, re.M), cut.stdout
        wait_for(lambda: not status_of_link(mesh, SH, JS)["up"], "the partition never showed")
        assert status_of_link(mesh, JS, SH)["up"] is True
        state = json.loads((mesh / "link-state.json").read_text())
        assert {x["link"]: x["fault"] for x in state["links"]} == {
            f"{SH}:{JS}": {"partition": True},
            f"{JS}:{SH}": {},
        }

        orders = (mesh / "link-faults.json").read_text()
        wrong = yrd("mesh", "link", "--dir", str(mesh), "shanghai:anhui", "--blackhole")
        assert wrong.returncode == 2 and "no link 'shanghai:anhui'" in wrong.stderr
        assert (mesh / "link-faults.json").read_text() == orders

        healed = yrd("mesh", "link", "--dir", str(mesh), "--heal")
        assert healed.returncode == 0, healed.stderr
        wait_for(lambda: status_of_link(mesh, SH, JS)["up"], "the link never came back")
        assert f"link {SH}:{JS}: partition" in err.read_text()
    finally:
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0, err.read_text()
    assert {p: (mesh / p / "node.toml").read_text() for p in (SH, JS)} == toml_before
    for name in ("mesh.json", "link-faults.json", "link-state.json"):
        assert not (mesh / name).exists(), name
    assert yrd("mesh", "link", "--dir", str(mesh)).returncode == 2


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chaos_with_network_faults_prints_each_and_every_invariant_holds(tmp_path: Path) -> None:
    """A 10-second ``yrd chaos --network`` run: the printed schedule is the seed's, each
    link fault is printed when it starts and when it is cleared, the heal clears every link,
    all six invariants PASS, and the nodes' configs are left without the proxies."""
    directory = tmp_path / "mesh"
    result = yrd(
        "chaos", "--network", "--dir", str(directory), "--base-port", str(free_base_port()),
        "--duration", "10", "--seed", "5", "--cases", "24", "--officer-delay", "0.1",
        timeout=240,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    expected = plan_schedule(5, 10, PROVINCES, network=True)
    printed = re.findall(r"^ +([\d.]+) s  (\w+) +(\S+) +for ([\d.]+) s", out, re.M)
    assert printed == [(f"{d.at:.1f}", d.kind, d.target, f"{d.hold:.1f}") for d in expected]
    actions = {"slow_link": "latency", "lossy_link": "loss", "partition_link": "partition",
               "blackhole_link": "blackhole", "reset_link": "reset"}  # fmt: skip
    for d in expected:
        if d.kind in NETWORK_KINDS:
            link = re.escape(f"{d.target} link")
            assert re.search(rf"^ +[\d.]+ s  {actions[d.kind]} +{link} ", out, re.M), d
            assert re.search(rf"^ +[\d.]+ s  restore +{link} +clear", out, re.M), d
    assert re.search(r"^ +[\d.]+ s  heal .*every link clear", out, re.M)
    verdicts = re.findall(r"^  (PASS|FAIL)  \((\d)\) ", out, re.M)
    assert verdicts == [("PASS", str(n)) for n in range(1, 7)], out
    assert "chaos: every invariant holds" in out
    for province in PROVINCES:
        assert load_config(directory / province / "node.toml", {}).peer_addresses == {}

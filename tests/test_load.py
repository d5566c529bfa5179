"""``yrd load`` as a tester runs it: the real console entry against a real mesh of processes
(``yrd mesh up`` in another "terminal")."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.cli.load_cmd import render
from node.mesh.load import SHUNNED_FOR, CaseStream, Endpoint, LoadCase, ProvinceApi, report
from node.mesh.node_api import NodeUnreachable
from node.runtime.node import Node
from node.store.database import StoreUnavailable
from tests.cases import case_body, matter_of
from tests.nodes import (
    BUDGET,
    config_for,
    eventually,
    free_base_port,
    make_mesh,
    serving,
    settled,
)
from tests.processes import authorized
from tests.test_delivery import FakeClock

MESH_UP = BUDGET
"""Seconds ``yrd mesh up`` may take to write mesh.json, and to stop again."""
LOAD_WAIT = round(2 * BUDGET / 3)
"""``yrd load --wait``: seconds it waits for the cases to conclude."""
LOAD_RUN = LOAD_WAIT + BUDGET / 2
"""Seconds one ``yrd load`` may run: submitting, then its wait."""

# The first test also brings the module's mesh up, the last one stops it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(MESH_UP + LOAD_RUN + BUDGET)]

YRD = [sys.executable, "-m", "node.cli.main"]
PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running four-province mesh whose simulated officers act within a fraction of a second."""
    directory = tmp_path_factory.mktemp("load") / "mesh"
    supervisor = subprocess.Popen(
        [*YRD, "mesh", "up", "--dir", str(directory), "--init",
         "--base-port", str(free_base_port()),
         "--officer-delay", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + MESH_UP
        while not (directory / "mesh.json").exists():
            assert supervisor.poll() is None, supervisor.communicate()
            assert time.monotonic() < deadline, "mesh.json never written"
            time.sleep(0.1)
        yield directory
    finally:
        supervisor.send_signal(signal.SIGINT)
        supervisor.communicate(timeout=MESH_UP)


def load(*options: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YRD_HTTP_TOKEN": token} if token else None
    return subprocess.run(
        [*YRD, "load", *options],
        capture_output=True,
        text=True,
        timeout=LOAD_RUN,
        check=False,
        env=env,
    )


def get(directory: Path, url: str) -> Any:
    with urllib.request.urlopen(authorized(directory, url), timeout=10) as response:
        return json.loads(response.read())


def case_counts(directory: Path) -> dict[str, int]:
    nodes = json.loads((directory / "mesh.json").read_text())["nodes"]
    return {
        n["province"]: sum(
            sum(by_status.values())
            for by_status in get(directory, f"http://{n['http']}/v1/status")["cases"].values()
        )
        for n in nodes
    }


def test_load_hands_off_every_case_on_all_pairs(mesh: Path) -> None:
    """24 cases spread over the twelve directed pairs are all created, handed off and
    concluded; the report gives hand-off and end-to-end times per pair and in total."""
    result = load("--dir", str(mesh), "--cases", "24", "--concurrency", "8",
                  "--wait", str(LOAD_WAIT), "--json")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert (report["planned"], report["accepted"], report["unanswered"]) == (24, 24, 0)
    assert report["refused"] == {}
    assert report["failures"] == []
    assert report["submissions_per_second"] > 0
    pairs = {p["pair"]: p for p in report["pairs"]}
    assert set(pairs) == {f"{a} → {h}" for a in PROVINCES for h in PROVINCES if a != h}
    assert all((p["cases"], p["handed_off"], p["concluded"]) == (2, 2, 2) for p in pairs.values())
    total = report["total"]
    assert (total["cases"], total["handed_off"], total["concluded"]) == (24, 24, 24)
    assert 0 < total["handoff_p50_seconds"] <= total["handoff_p95_seconds"]
    assert total["handoff_p95_seconds"] <= total["end_to_end_p95_seconds"]
    assert "submitted 24/24" in result.stderr  # progress goes to stderr with --json


def test_load_table_on_chosen_pairs_names_no_one(mesh: Path) -> None:
    """With --pairs only those pairs get cases; the printed report is a table with a total,
    and neither it nor the progress shows an applicant's name or ID number."""
    result = load("--dir", str(mesh), "--cases", "4", "--pairs", "shanghai:anhui,jiangsu:zhejiang",
                  "--wait", str(LOAD_WAIT))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^(\w+ → \w+|total) +(\d+) +(\d+) +(\d+) +[\d.]+ +[\d.]+ ", result.stdout,
                      re.M)  # fmt: skip
    assert rows == [
        ("jiangsu → zhejiang", "2", "2", "2"),
        ("shanghai → anhui", "2", "2", "2"),
        ("total", "4", "4", "4"),
    ], result.stdout
    assert "every submitted case was handed off (4 of 4)" in result.stdout
    nodes = json.loads((mesh / "mesh.json").read_text())["nodes"]
    for node in nodes:
        fixtures = get(mesh, f"http://{node['platform']}/sim/fixtures")
        for person in fixtures["persons"]:
            assert person["id_number"] not in result.stdout + result.stderr
            assert person["name"] not in result.stdout + result.stderr


def test_unknown_province_in_pairs_submits_nothing(mesh: Path) -> None:
    """A pair naming a province outside the mesh is refused with exit 2 before any case is
    submitted anywhere."""
    before = case_counts(mesh)
    result = load("--dir", str(mesh), "--cases", "5", "--pairs", "shanghai:anhui,shanghai:beijing")
    assert result.returncode == 2
    assert "'beijing' is not a province of this mesh" in result.stderr
    assert result.stdout == ""
    assert case_counts(mesh) == before


def test_no_mesh_is_up(tmp_path: Path) -> None:
    """Without DIR/mesh.json there is no mesh to load: exit 2, saying how to start one."""
    result = load("--dir", str(tmp_path))
    assert result.returncode == 2
    assert f"no mesh is up in {tmp_path}" in result.stderr
    assert "yrd mesh up --dir" in result.stderr


def test_node_that_does_not_answer(tmp_path: Path) -> None:
    """A mesh.json whose nodes are gone (a mesh killed without a clean stop): exit 2, naming
    the first node that does not answer."""
    base = free_base_port()
    nodes = [
        {"province": p, "http": f"127.0.0.1:{base + 1000 + i}",
         "platform": f"127.0.0.1:{base + 2000 + i}"}
        for i, p in enumerate(PROVINCES)
    ]  # fmt: skip
    (tmp_path / "mesh.json").write_text(json.dumps({"nodes": nodes}))
    result = load("--dir", str(tmp_path), "--cases", "3", token="yrd_" + "A" * 43)
    assert result.returncode == 2
    assert "the shanghai node does not answer" in result.stderr
    assert "connection refused" in result.stderr


async def test_a_5xx_is_asked_again_with_the_same_key_and_a_4xx_is_final() -> None:
    """A node answering 503 (it could not decide now) gets the same submission again under
    the same Idempotency-Key; a 422 refusal is final and counted by its code."""
    keys: list[str] = []

    async def cases(request: web.Request) -> web.Response:
        keys.append(request.headers["Idempotency-Key"])
        body = await request.json()
        problem = {"type": "about:blank", "title": "refused", "detail": "no"}
        if body["matter_code"] == "bad":
            return web.json_response(
                {**problem, "status": 422, "code": "unknown_matter"}, status=422
            )
        if len(keys) == 1:
            return web.json_response(
                {**problem, "status": 503, "code": "store_unavailable"}, status=503
            )
        return web.json_response({"case_id": "c1", "status": "submitted"}, status=201)

    app = web.Application()
    app.router.add_post("/v1/cases", cases)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            stream = CaseStream(
                http, {"shanghai": Endpoint("shanghai", (f"http://127.0.0.1:{port}",), None)}
            )
            good = LoadCase("shanghai", "anhui", {"matter_code": "good"}, key="k-good")
            await stream.submit(good, retry_for=BUDGET / 2)
            assert good.outcome == "created" and good.case_id == "c1"
            assert keys == ["k-good", "k-good"]
            bad = LoadCase("shanghai", "anhui", {"matter_code": "bad"}, key="k-bad")
            await stream.submit(bad, retry_for=BUDGET / 2)
            assert (bad.outcome, bad.refusal, bad.attempts) == ("refused", "unknown_matter", 1)
    finally:
        await runner.cleanup()


class Replica:
    """One replica's REST API stand-in: creates a case per Idempotency-Key (in a store the
    replicas share), replays it for a key seen before, and records who asked what."""

    def __init__(self, name: str, shared: dict[str, str], asked: list[tuple[str, str]]) -> None:
        self.name, self._shared, self._asked = name, shared, asked
        app = web.Application()
        app.router.add_post("/v1/cases", self._submit)
        app.router.add_get("/v1/cases/{case_id}", self._look)
        self.runner = web.AppRunner(app)

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def _submit(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        self._asked.append((self.name, key))
        replayed = key in self._shared
        case_id = self._shared.setdefault(key, f"c-{len(self._shared)}")
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return web.json_response(
            {"case_id": case_id, "status": "submitted"}, status=201, headers=headers
        )

    async def _look(self, request: web.Request) -> web.Response:
        self._asked.append((self.name, request.match_info["case_id"]))
        return web.json_response({"status": "submitted", "history": []})


async def test_submissions_go_round_the_replicas_and_one_unanswered_goes_to_another() -> None:
    """A province of two replicas: submissions go to each in turn; once one is gone
    (connection refused), a submission in its turn is sent at once to the other with the same
    Idempotency-Key and creates its case once, and the case is followed there."""
    shared: dict[str, str] = {}
    asked: list[tuple[str, str]] = []
    first, second = Replica("r1", shared, asked), Replica("r2", shared, asked)
    urls = (await first.start(), await second.start())
    try:
        async with aiohttp.ClientSession() as http:
            stream = CaseStream(http, {"shanghai": Endpoint("shanghai", urls, None)})
            cases = [LoadCase("shanghai", "anhui", {}, key=f"k{i}") for i in range(4)]
            for case in cases[:2]:
                await stream.submit(case, retry_for=BUDGET / 2)
            assert asked == [("r1", "k0"), ("r2", "k1")]
            await second.runner.cleanup()
            for case in cases[2:]:
                await stream.submit(case, retry_for=BUDGET / 2)
            assert asked[2:] == [("r1", "k2"), ("r1", "k3")]  # k3 was r2's turn
            assert [(c.outcome, c.attempts) for c in cases] == [("created", 1)] * 4
            assert sorted(shared) == ["k0", "k1", "k2", "k3"]
            await stream._look(cases[1])
            assert asked[-1] == ("r1", cases[1].case_id)
            assert cases[1].status == "submitted"
        result = report(cases, stream)
        assert (result.accepted, result.failovers, result.unanswered) == (4, 1, 0)
        assert "1 request(s) got no answer at a replica and were answered at another" in (
            render(result)
        )
    finally:
        await first.runner.cleanup()
        await second.runner.cleanup()


async def test_a_replica_that_got_no_answer_is_asked_last_for_a_while() -> None:
    """Replicas are asked in turn; one that got no answer is asked after the others for
    ``SHUNNED_FOR`` seconds, then takes its turn again. With none answering, the reason of
    the last one asked is raised."""
    clock = FakeClock()
    live = Replica("r1", {}, [])
    urls = (await live.start(), f"http://127.0.0.1:{free_base_port(1)}")
    try:
        async with aiohttp.ClientSession() as http:
            api = ProvinceApi(http, Endpoint("shanghai", urls, None), clock=clock)
            assert [api.order(), api.order()] == [[0, 1], [1, 0]]
            await api.call("GET", "/v1/cases/c-1")  # replica 1's turn
            await api.call("GET", "/v1/cases/c-1")  # replica 2's: refused, then replica 1
            assert [api.order(), api.order()] == [[0, 1], [0, 1]]
            clock.advance(SHUNNED_FOR + 0.1)
            assert [api.order(), api.order()] == [[0, 1], [1, 0]]
            await live.runner.cleanup()
            with pytest.raises(NodeUnreachable, match="connection refused") as raised:
                await api.call("GET", "/readyz")  # replica 1's turn, then replica 2
            assert raised.value.url == urls[1]
            assert [api.order(), api.order()] == [[1, 0], [0, 1]]  # both shunned: in turn
    finally:
        await live.runner.cleanup()


async def refuse_writes(node: Node) -> None:
    """Make every write of ``node``'s store fail as unavailable for now. (SQLITE_READONLY,
    which the store takes as it takes SQLITE_FULL. The page cap of test_store_unavailable
    lets a small write through now and then, in room the node's own deletions free, so it
    cannot make every attempt of a submission fail.)"""

    def read_only(conn: Any) -> None:
        conn.execute("PRAGMA query_only = ON")

    with contextlib.suppress(StoreUnavailable):
        await node.db.write(read_only)


async def test_a_store_refusing_writes_is_refused_for_now_not_unanswered(tmp_path: Path) -> None:
    """A node whose store refuses every write answers each submission 503
    ``store_unavailable``: it is asked again until the retries end, then counted and shown
    as refused for now by that code, never as unanswered."""
    mesh = make_mesh(tmp_path, ("shanghai", "jiangsu"))
    async with (
        serving(config_for(mesh, "shanghai")) as (shanghai, client),
        serving(config_for(mesh, "jiangsu")) as (jiangsu, _),
    ):
        # The case's matter must be in shanghai's federated catalog, or it is refused 422.
        await eventually(lambda: settled(shanghai, jiangsu))
        await refuse_writes(shanghai)
        url = str(client.make_url("")).rstrip("/")
        endpoint = Endpoint("shanghai", (url,), None, client.tokens["platform"])
        async with aiohttp.ClientSession() as http:
            stream = CaseStream(http, {"shanghai": endpoint})
            body = case_body(matter_of("jiangsu"), seed=7)
            case = LoadCase("shanghai", "jiangsu", body, key="k-full")
            await stream.submit(case, retry_for=1.0)
        result = report([case], stream)
    assert (case.outcome, case.refusal) == ("refused_for_now", "store_unavailable")
    assert case.attempts >= 2, "asked again while the store refused"
    assert (result.refused_for_now, result.refused, result.unanswered) == (
        {"store_unavailable": 1},
        {},
        0,
    )
    assert result.to_json()["refused_for_now"] == {"store_unavailable": 1}
    shown = render(result)
    assert "0 created, 0 refused, 1 refused for now" in shown, shown
    assert "store unavailable 1" in shown, shown
    assert "refused for now (store_unavailable)" in shown, shown
    assert "no answer" not in shown and "may exist unseen" not in shown, shown

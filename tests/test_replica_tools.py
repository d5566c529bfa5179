"""``yrd demo`` and ``yrd chaos`` on a mesh of replicas (``--store postgres --replicas N``):
the same shape options as ``yrd mesh init``, refused the same way; a chaos schedule that
also kills and pauses single replicas, still a pure function of its inputs; a demo and a
chaos run on two provinces of two replicas each, on the mesh's own PostgreSQL server, that
pass, name each replica and verify each province's evidence log once."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.status import NodeAnswer, node_rows, problems
from node.cli.main import main
from node.mesh.chaos import KILL_REPLICA, KINDS, PAUSE_REPLICA, REPLICA_KINDS, plan_schedule
from node.mesh.node_control import alive
from tests.nodes import BUDGET
from tests.postgres import missing_server_is_a_skip, server_bindir
from tests.test_mesh_replicas import replica_base_port

YRD = [sys.executable, "-m", "node.cli.main"]
TWO = ("shanghai", "jiangsu")
FOUR = ("shanghai", "jiangsu", "zhejiang", "anhui")


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["demo"], ["chaos", "--duration", "5"]], ids=["demo", "chaos"])
@pytest.mark.parametrize(
    "options",
    [["--replicas", "2"], ["--store", "postgres", "--replicas", "0"]],
    ids=["replicas-on-sqlite", "zero-replicas"],
)
def test_bad_shape_options_are_refused_as_mesh_init_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], options: list[str]
) -> None:
    """``--replicas 2`` without ``--store postgres`` and ``--replicas 0``: exit 2 with the
    very sentence ``yrd mesh init`` says, and no mesh folder made."""
    assert main(["mesh", "init", str(tmp_path / "init"), *options]) == 2
    said = capsys.readouterr().err
    assert said.startswith("yrd: ") and "replicas" in said
    directory = tmp_path / "mesh"
    assert main([*command, "--dir", str(directory), *options]) == 2
    assert capsys.readouterr().err == said
    assert not directory.exists()
    assert not (tmp_path / "init").exists()


def test_chaos_refuses_network_faults_on_replicas_and_makes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--network`` routes only first replicas through the link proxies: with
    ``--replicas 2`` chaos says so, exits 2 and makes no mesh."""
    directory = tmp_path / "mesh"
    options = ["--store", "postgres", "--replicas", "2", "--network"]
    assert main(["chaos", "--dir", str(directory), *options]) == 2
    assert "run without --network" in capsys.readouterr().err
    assert not directory.exists()


# --- the schedule ---------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [5.0, 12.0, 30.0, 120.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("replicas", [2, 3])
def test_a_replica_mesh_schedule_kills_and_pauses_single_replicas(
    duration: float, seed: int, replicas: int
) -> None:
    """With replicas, every kind happens, the replicas' too; a replica's disturbance names a
    replica of the mesh (``jiangsu#2``), others name none; still one at a time, the last
    until the end."""
    schedule = plan_schedule(seed, duration, TWO, replicas=replicas)
    assert {d.kind for d in schedule} == set(KINDS + REPLICA_KINDS)
    for d in schedule:
        if d.kind in REPLICA_KINDS:
            assert d.replica is not None and 1 <= d.replica <= replicas
            assert d.target == f"{d.province}#{d.replica}"
            assert d.to_json()["replica"] == d.replica
        else:
            assert d.replica is None and d.target == d.province
            assert "replica" not in d.to_json()
    for earlier, later in itertools.pairwise(schedule):
        assert earlier.at + earlier.hold < later.at
    assert schedule[-1].at + schedule[-1].hold == pytest.approx(duration, abs=0.051)


def test_the_schedule_is_a_function_of_seed_duration_provinces_and_replicas() -> None:
    """The same inputs, the same schedule; one replica per province is the schedule a mesh
    of single nodes always had (no replicas' kinds); the replica count and the seed each
    change it; across seeds every replica of a province is disturbed alone."""
    assert plan_schedule(7, 30, FOUR, replicas=2) == plan_schedule(7, 30, FOUR, replicas=2)
    assert plan_schedule(7, 30, FOUR, replicas=1) == plan_schedule(7, 30, FOUR)
    assert not {d.kind for d in plan_schedule(7, 30, FOUR)} & set(REPLICA_KINDS)
    assert plan_schedule(7, 30, FOUR, replicas=2) != plan_schedule(7, 30, FOUR, replicas=3)
    assert plan_schedule(7, 30, FOUR, replicas=2) != plan_schedule(8, 30, FOUR, replicas=2)
    hit = {
        (d.kind, d.replica)
        for seed in range(1, 20)
        for d in plan_schedule(seed, 12, TWO, replicas=2)
        if d.kind in REPLICA_KINDS
    }
    assert hit == {(kind, r) for kind in (KILL_REPLICA, PAUSE_REPLICA) for r in (1, 2)}


# --- status of a replica that leaves the platform to another --------------------------------


def test_a_replica_that_leaves_the_platform_to_another_is_not_finding_it_down() -> None:
    """A replica holding no platform lease says ``"up": null`` for the platform: no problem
    and "other replica's" in the table, where one that finds it down is both."""

    def answer(up: bool | None) -> NodeAnswer:
        status = {"province": "shanghai", "ready": True, "checks": {}, "peers": [],
                  "platform": {"up": up, "outbox_depth": 0, "dead_letters": 0}}  # fmt: skip
        return NodeAnswer("http://127.0.0.1:8201", status, name="shanghai#2")

    assert problems([answer(None)]) == []
    assert "other replica's" in node_rows([answer(None)], now=0.0)[0]
    assert problems([answer(False)]) == [
        "shanghai#2: its platform is not answering (?); 0 item(s) wait for it"
    ]
    assert "DOWN" in node_rows([answer(False)], now=0.0)[0]


# --- real runs ------------------------------------------------------------------------------


def pids_in(text: str) -> list[int]:
    """The node and platform pids of an endpoints table (a row per replica)."""
    pids = []
    for line in text.splitlines():
        row = re.match(r"^(?:\w+ +node-\d+|  replica \d+) +\S+ +\S+ +(\d+)(?: +\S+ +(\d+))?", line)
        if row:
            pids += [int(p) for p in row.groups() if p]
    return pids


@pytest.mark.slow
def test_demo_on_two_provinces_of_two_replicas_on_postgres() -> None:
    """``yrd demo --store postgres --replicas 2 --provinces shanghai,jiangsu``: every
    replica's links come up, the burst enters at each replica, one replica is SIGKILLed
    before the cases and started again after them, every case concludes alike on both
    sides, the status has a healthy row per replica, every replica exits 0 on SIGTERM and
    each province's one log verifies; exit 0, nothing left running or on disk."""
    missing_server_is_a_skip(server_bindir)
    result = subprocess.run(
        [*YRD, "demo", "--store", "postgres", "--replicas", "2", "--provinces",
         ",".join(TWO), "--probes", "20", "--base-port", str(replica_base_port())],
        capture_output=True, text=True, timeout=2 * BUDGET, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "a two-province federation" in out and "2 replicas each sharing" in out
    assert "heartbeats: 4/4 directed links up" in out
    assert "40 messages signed, stored, delivered and receipted" in out
    killed = re.search(r"^SIGKILL shanghai#2 \(pid (\d+)\)", out, re.M)
    again = re.search(r"^shanghai#2 started again \(pid (\d+)\), ready after", out, re.M)
    assert killed and again and killed.group(1) != again.group(1), out
    assert "histories equal for 4 of 4" in out
    rows = re.findall(r"^((?:shanghai|jiangsu)#\d) +yes ", out, re.M)
    assert sorted(rows) == ["jiangsu#1", "jiangsu#2", "shanghai#1", "shanghai#2"], out
    assert "\nhealthy\n" in out
    assert (
        "stopped: shanghai#1 exit 0, shanghai#2 exit 0, jiangsu#1 exit 0, jiangsu#2 exit 0" in out
    )
    logs = re.findall(
        r"^  (\w+) +(\d+) entries \(one log, 2 replicas wrote it\), chain and signatures "
        r"verified",
        out,
        re.M,
    )
    assert [p for p, _ in logs] == list(TWO) and all(int(n) > 0 for _, n in logs), out
    folder = re.search(r"deleting the temporary folder (\S+) ", out)
    assert folder and not Path(folder.group(1)).exists()
    pids = [*pids_in(out), int(again.group(1))]
    assert len(pids) == 2 * 2 + 2 + 1
    assert not any(alive(pid) for pid in pids)


@pytest.mark.slow
def test_chaos_on_two_provinces_of_two_replicas_kills_single_replicas() -> None:
    """``yrd chaos --store postgres --replicas 2`` on two provinces: the JSON report's
    schedule is the seed's with the replica count, a single replica is SIGKILLed and
    started again with a new pid and another paused and continued, each named
    ``<province>#<r>``; every invariant holds, the evidence verified once per province
    (2 logs, not 4), every replica stopped with exit 0."""
    missing_server_is_a_skip(server_bindir)
    seed = 3
    expected = plan_schedule(seed, 12, TWO, replicas=2)
    kills = [d for d in expected if d.kind == KILL_REPLICA]
    assert kills and any(d.kind == PAUSE_REPLICA for d in expected)
    result = subprocess.run(
        [*YRD, "chaos", "--store", "postgres", "--replicas", "2", "--provinces", ",".join(TWO),
         "--duration", "12", "--seed", str(seed), "--cases", "20", "--officer-delay", "0.1",
         "--base-port", str(replica_base_port()), "--json"],
        capture_output=True, text=True, timeout=3 * BUDGET, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["replicas"] == 2
    assert report["schedule"] == [d.to_json() for d in expected]
    happened = [(h["action"], h["target"], h["pid"]) for h in report["happenings"]]
    for kill in kills:
        target = f"{kill.target} node"
        down = [pid for action, t, pid in happened if action == "SIGKILL" and t == target]
        back = [pid for action, t, pid in happened if action == "restart" and t == target]
        assert down and back and not set(down) & set(back), happened
    assert any(a == "SIGSTOP" and re.fullmatch(r"\w+#\d node", t) for a, t, _ in happened)
    verdicts = {v["number"]: v for v in report["invariants"]}
    assert sorted(verdicts) == [1, 2, 3, 4, 5, 6] and all(v["ok"] for v in verdicts.values())
    assert verdicts[5]["detail"].startswith("2 of 2 evidence logs verify"), verdicts[5]
    assert report["stopped"] == {f"{p}#{r}": 0 for p in TWO for r in (1, 2)}
    assert not any(alive(pid) for _, _, pid in happened if pid is not None)

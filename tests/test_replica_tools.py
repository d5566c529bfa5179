"""``yrd demo`` on a mesh of replicas (``--store postgres --replicas N``): the same shape
options as ``yrd mesh init``, refused the same way; a demo on two provinces of two replicas
each, on the mesh's own PostgreSQL server, that passes, names each replica and verifies
each province's evidence log once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.status import NodeAnswer, node_rows, problems
from node.cli.main import main
from node.mesh.node_control import alive
from tests.nodes import BUDGET
from tests.postgres import missing_server_is_a_skip, server_bindir
from tests.test_mesh_replicas import replica_base_port

YRD = [sys.executable, "-m", "node.cli.main"]
TWO = ("shanghai", "jiangsu")


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["demo"]], ids=["demo"])
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
    assert "a 2-province federation" in out and "2 replicas each sharing" in out
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

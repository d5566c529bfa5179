"""``yrd mesh up`` and ``yrd demo`` as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.mesh.access import create_mesh
from node.mesh.node_control import alive
from node.mesh.processes import Mesh
from tests.nodes import BUDGET, free_base_port

pytestmark = pytest.mark.slow

YRD = [sys.executable, "-m", "node.cli.main"]
PAIR = ("shanghai", "jiangsu")


def test_mesh_up_writes_mesh_json_and_stops_cleanly(tmp_path: Path) -> None:
    """mesh up starts four simulated platforms and four node processes, writes mesh.json once
    all are ready, reports a healthy federation with every node's platform up, and Ctrl-C
    stops every process and removes mesh.json."""
    directory = tmp_path / "mesh"
    base = free_base_port()
    supervisor = subprocess.Popen(
        [*YRD, "mesh", "up", "--dir", str(directory), "--init", "--base-port", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + BUDGET
        while not (directory / "mesh.json").exists():
            assert supervisor.poll() is None, supervisor.communicate()
            assert time.monotonic() < deadline, "mesh.json never written"
            time.sleep(0.1)
        nodes = json.loads((directory / "mesh.json").read_text())["nodes"]
        assert [n["province"] for n in nodes] == ["shanghai", "jiangsu", "zhejiang", "anhui"]
        assert [n["grpc"] for n in nodes] == [f"127.0.0.1:{base + i}" for i in range(4)]
        assert [n["http"] for n in nodes] == [f"127.0.0.1:{base + 1000 + i}" for i in range(4)]
        assert [n["platform"] for n in nodes] == [f"127.0.0.1:{base + 2000 + i}" for i in range(4)]
        assert all(alive(n["pid"]) and alive(n["platform_pid"]) for n in nodes)
        deadline = time.monotonic() + BUDGET / 2
        while True:
            status = subprocess.run(
                [*YRD, "status", "--mesh", str(directory), "--json"],
                capture_output=True,
                text=True,
                timeout=BUDGET / 2,
            )
            if status.returncode == 0:
                break
            assert status.returncode == 1, status.stderr
            assert time.monotonic() < deadline, status.stdout
            time.sleep(0.3)
        report = json.loads(status.stdout)
        assert report["healthy"] is True and len(report["nodes"]) == 4
    finally:
        supervisor.send_signal(signal.SIGINT)
        out, err = supervisor.communicate(timeout=BUDGET)
    assert supervisor.returncode == 0, err
    assert b"mesh stopped" in out
    shown = out.decode()
    https = ",".join(f"http://127.0.0.1:{base + 1000 + i}" for i in range(4))
    assert f"http://127.0.0.1:{base + 1000}/?mesh={https}" in shown
    assert f"http://127.0.0.1:{base + 1000}/v1/status" in shown
    assert f"kill -HUP {supervisor.pid}" in shown
    assert not (directory / "mesh.json").exists()
    assert not any(alive(n["pid"]) or alive(n["platform_pid"]) for n in nodes)


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """make demo's command brings four platforms and four nodes up, delivers the burst on all
    twelve links, runs cases entered at the platforms on every directed pair to their
    conclusion with equal histories on both sides, checks certificates across provinces
    (a revoked one refused as revoked, presentations verified offline), reports a healthy
    federation, verifies every evidence log and exits 0."""
    assert_demo_passed(run_demo(tmp_path / "mesh"), tmp_path / "mesh")


def run_demo(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``yrd demo --dir DIRECTORY`` with a short burst, on free ports."""
    return subprocess.run(
        [
            *YRD,
            "demo",
            "--dir",
            str(directory),
            "--base-port",
            str(free_base_port()),
            "--probes",
            "25",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET,
    )


def assert_demo_passed(result: subprocess.CompletedProcess[str], directory: Path) -> None:
    """Everything ``yrd demo`` promises, read from what it printed."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "heartbeats: 12/12 directed links up" in result.stdout
    assert "300 messages signed, stored, delivered and receipted" in result.stdout
    assert "\nhealthy\n" in result.stdout
    catalog = re.search(r"federated catalog .*: (\d+) cross-province matters — (.*)", result.stdout)
    assert catalog is not None, result.stdout
    assert [part.split()[0] for part in catalog.group(2).split(", ")] == [
        "anhui",
        "jiangsu",
        "shanghai",
        "zhejiang",
    ]
    # accepting → handling, cases, completed, denied, rejected, withdrawn, median, p95, checked
    pairs = re.findall(
        r"^(\w+) → (\w+) +2 +(\d) +(\d) +(\d) +(\d) +[\d.]+ +[\d.]+ +(\d+) *$", result.stdout, re.M
    )
    assert len({(a, h) for a, h, *_ in pairs}) == 12, result.stdout
    assert all(sum(map(int, row[2:6])) == 2 for row in pairs), "the outcomes add up to the cases"
    assert all(int(row[6]) >= 1 for row in pairs), "免于提交 checks on every pair"
    assert "histories equal for 24 of 24" in result.stdout
    assert "satisfaction (好差评) by handling province: anhui" in result.stdout
    assert len(re.findall(r"^\w+ +\w+ +\w+ +\S+ +revoked ", result.stdout, re.M)) >= 1
    assert (
        len(re.findall(r"resident_id_card +hotel_check_in +valid +address, name", result.stdout))
        == 4
    )
    assert result.stdout.count("verified it offline: valid") == 4
    assert result.stdout.count("chain and signatures verified") == 4
    # Every log's last checkpoint is cosigned at its final size, though all four nodes stop
    # at the same moment. (By each witness nearly always; a peer whose own last round ended
    # first may have closed its server before another's last checkpoint reached it.)
    logs = re.findall(r"^  \w+ +(\d+) entries, .*; cosigned by (.*)$", result.stdout, re.M)
    assert len(logs) == 4, result.stdout
    for size, witnesses in logs:
        assert f"(at {size})" in witnesses, result.stdout
    assert f"the mesh stays in {directory}" in result.stdout


async def test_a_running_province_keeps_its_personal_data_owner_only(tmp_path: Path) -> None:
    """With Shanghai's simulated platform and node running as processes, every file in its
    folder that holds personal data or secrets (the platform's SQLite and its -wal and -shm,
    the node's store, both logs, keys, tokens and credentials) is 0600 and the folders 0700,
    also a log an older mesh left readable."""
    directory = tmp_path / "mesh"
    create_mesh(directory, now=time.time(), base_port=free_base_port(2), provinces=PAIR)
    folder = directory / "shanghai"
    (folder / "node.log").write_bytes(b"an older run's log\n")
    (folder / "node.log").chmod(0o644)
    mesh = Mesh(directory)
    shanghai = mesh.config("shanghai")
    try:
        mesh.start_platform(shanghai)
        await mesh.wait_platform("shanghai")
        mesh.start_node(shanghai)
        await mesh.wait_ready("shanghai")
        files = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    finally:
        mesh.stop()
    private = {
        "node.log", "platform.log", "platform.db", "platform.db-wal", "platform.db-shm",
        "node.db", "node.db-wal", "node.db-shm", "node.db.lock", "signing.key", "tls.key",
        "tokens.json", "platform-credentials.json",
    }  # fmt: skip
    assert {name: files.get(name) for name in private} == dict.fromkeys(private, 0o600)
    assert set(files) - private == {"node.toml", "tls.crt"}
    assert {d.stat().st_mode & 0o777 for d in (directory, folder)} == {0o700}

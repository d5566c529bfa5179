"""``yrd mesh up`` keeps its mesh alive, and ``yrd mesh stop|start`` stop and start one node by
hand: real processes, real ports, the supervisor's stderr and ``mesh.json`` as a tester sees
them. The restart back-off on its own, without processes or sleeps."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.mesh.node_control import alive
from node.mesh.supervisor import RestartBackoff
from tests.nodes import BUDGET, free_base_port

YRD = [sys.executable, "-m", "node.cli.main"]


def test_backoff_doubles_to_its_cap_with_jitter_and_resets_after_a_steady_run() -> None:
    """Quick exits in a row wait 0.5, 1, 2, … s up to 30 s, each less at most a quarter at
    random (so every delay is longer than the one before until the cap); an exit after the
    process has been ready for a while starts again from 0.5 s."""
    backoff = RestartBackoff(rng=random.Random(3))
    delays = [backoff.after_exit(0.0) for _ in range(12)]
    for index, delay in enumerate(delays):
        nominal = min(30.0, 0.5 * 2**index)
        assert 0.75 * nominal <= delay <= nominal
    assert all(a < b for a, b in itertools.pairwise(delays[:7]))
    assert max(delays) <= 30.0
    assert 0.375 <= backoff.after_exit(ready_for=60.0) <= 0.5
    assert 0.75 <= backoff.after_exit(ready_for=1.0) <= 1.0
    backoff.reset()
    assert backoff.after_exit(0.0) <= 0.5


def record(directory: Path) -> dict[str, Any]:
    """mesh.json as a reader finds it: whole and valid JSON at every moment."""
    document: dict[str, Any] = json.loads((directory / "mesh.json").read_text())
    return document


def entry(directory: Path, province: str) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in record(directory)["nodes"] if n["province"] == province)
    return found


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check`` held, looking every 50 ms."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.05)
    return time.monotonic() - started


def yrd(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*YRD, *arguments], capture_output=True, text=True, timeout=BUDGET, check=False
    )


@dataclass
class RunningMesh:
    directory: Path
    supervisor: subprocess.Popen[bytes]
    stderr: Path
    """Where the supervisor tells what happened."""

    def told(self) -> str:
        return self.stderr.read_text()


@pytest.fixture
def running_mesh(tmp_path: Path) -> Iterator[RunningMesh]:
    """``yrd mesh up`` as a tester starts it, with simulated officers that act within a
    fraction of a second; stopped with Ctrl-C afterwards."""
    yield from _mesh_up(tmp_path)


@pytest.fixture(scope="module")
def shared_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    yield from _mesh_up(tmp_path_factory.mktemp("supervised"))


def _mesh_up(folder: Path) -> Iterator[RunningMesh]:
    directory = folder / "mesh"
    stderr = folder / "supervisor.err"
    with stderr.open("wb") as err:
        supervisor = subprocess.Popen(
            [*YRD, "mesh", "up", "--dir", str(directory), "--init",
             "--base-port", str(free_base_port()),
             "--officer-delay", "0.1"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    mesh = RunningMesh(directory, supervisor, stderr)
    try:
        wait_until(
            lambda: supervisor.poll() is None and (directory / "mesh.json").exists(),
            BUDGET,
            f"mesh.json never written: {mesh.told()}",
        )
        yield mesh
    finally:
        supervisor.send_signal(signal.SIGINT)
        supervisor.wait(timeout=BUDGET)


def ready_again(directory: Path, province: str, old_pid: int) -> Callable[[], bool]:
    def check() -> bool:
        node = entry(directory, province)
        return node.get("state") == "running" and node["pid"] not in (None, old_pid)

    return check


@pytest.mark.slow
def test_a_node_killed_during_a_load_is_back_and_every_case_is_handed_off(
    shared_mesh: RunningMesh,
) -> None:
    """kill -9 of a node while ``yrd load`` runs: the supervisor says so in one line, the node
    is ready again with a new pid in mesh.json (how soon is printed; bench/ measures it),
    mesh.json is whole JSON each time it is read, and the load exits 0 with every case
    handed off."""
    directory = shared_mesh.directory
    before = entry(directory, "jiangsu")
    progress = directory.parent / "load.err"
    with progress.open("wb") as err:
        load = subprocess.Popen(
            [*YRD, "load", "--dir", str(directory), "--cases", "36", "--concurrency", "2",
             "--wait", str(round(2 * BUDGET / 3)), "--json"],
            stdout=subprocess.PIPE,
            stderr=err,
        )  # fmt: skip
    try:
        wait_until(
            lambda: re.search(r"submitted [1-9]\d*/", progress.read_text()) is not None,
            BUDGET,
            f"the load never submitted: {progress.read_text()}",
        )
        os.kill(before["pid"], signal.SIGKILL)
        back_after = wait_until(
            ready_again(directory, "jiangsu", before["pid"]),
            BUDGET / 2,
            "the jiangsu node is not back",
        )
        reads = 0
        while load.poll() is None:  # every read of mesh.json while the load runs is whole
            record(directory)
            reads += 1
            time.sleep(0.05)
        out, _ = load.communicate(timeout=BUDGET / 6)
    finally:
        if load.poll() is None:
            load.kill()
    after = entry(directory, "jiangsu")
    assert answers(f"http://{after['http']}/readyz")
    assert not alive(before["pid"])
    assert reads > 0
    assert re.search(
        rf"yrd: jiangsu node \(pid {before['pid']}\) exited with signal SIGKILL; "
        rf"log {re.escape(str(directory / 'jiangsu' / 'node.log'))}; starting it again in",
        shared_mesh.told(),
    ), shared_mesh.told()
    assert load.returncode == 0, out.decode() + progress.read_text()
    report = json.loads(out)
    assert report["failures"] == []
    assert report["total"]["handed_off"] == report["total"]["cases"] == report["accepted"] == 36
    print(f"jiangsu node ready again {back_after:.2f} s after kill -9")


@pytest.mark.slow
def test_a_killed_platform_is_restarted_with_its_data(shared_mesh: RunningMesh) -> None:
    """kill -9 of a simulated platform: it is started again on the same SQLite file (the same
    residents), mesh.json gets its new pid, and its node keeps running."""
    directory = shared_mesh.directory
    before = entry(directory, "anhui")
    fixtures = urllib.request.urlopen(f"http://{before['platform']}/sim/fixtures", timeout=5)
    residents = json.loads(fixtures.read())
    os.kill(before["platform_pid"], signal.SIGKILL)

    def restarted() -> bool:
        node = entry(directory, "anhui")
        return node.get("platform_state") == "running" and node["platform_pid"] not in (
            None,
            before["platform_pid"],
        )

    wait_until(restarted, BUDGET / 2, "the anhui platform was not started again")
    after = entry(directory, "anhui")
    assert alive(after["platform_pid"]) and not alive(before["platform_pid"])
    assert after["pid"] == before["pid"] and after["state"] == "running"
    again = urllib.request.urlopen(f"http://{after['platform']}/sim/fixtures", timeout=5)
    assert json.loads(again.read()) == residents
    assert f"yrd: anhui platform (pid {before['platform_pid']}) exited with signal SIGKILL" in (
        shared_mesh.told()
    )


@pytest.mark.slow
def test_a_node_stopped_by_hand_stays_stopped_until_started_by_hand(
    shared_mesh: RunningMesh,
) -> None:
    """``yrd mesh stop`` ends the node's process and returns once it is gone; the supervisor
    does not start it again (mesh.json: pid null, state stopped) while its peers stay ready;
    ``yrd mesh start`` brings it back, ready, with a new pid."""
    directory = shared_mesh.directory
    before = entry(directory, "zhejiang")
    peers = {n["province"]: n["pid"] for n in record(directory)["nodes"]}
    del peers["zhejiang"]

    stopped = yrd("mesh", "stop", "--dir", str(directory), "zhejiang")
    assert stopped.returncode == 0, stopped.stderr
    assert f"the zhejiang node is stopped (pid {before['pid']} has exited)" in stopped.stdout
    assert not alive(before["pid"])
    time.sleep(4)  # longer than the first three back-offs together (0.5 + 1 + 2 s)
    held = entry(directory, "zhejiang")
    assert (held["state"], held["pid"]) == ("stopped", None)
    assert not answers(f"http://{before['http']}/readyz")
    assert {n["province"]: n["pid"] for n in record(directory)["nodes"] if n["pid"]} == peers
    assert all(
        answers(f"http://{n['http']}/readyz")
        for n in record(directory)["nodes"]
        if n["province"] != "zhejiang"
    )
    again = yrd("mesh", "stop", "--dir", str(directory), "zhejiang")
    assert (again.returncode, again.stdout) == (0, "the zhejiang node is already stopped\n")

    started = yrd("mesh", "start", "--dir", str(directory), "zhejiang")
    assert started.returncode == 0, started.stderr
    after = entry(directory, "zhejiang")
    assert after["state"] == "running" and after["pid"] not in (None, before["pid"])
    assert f"the zhejiang node is ready (pid {after['pid']})" in started.stdout
    assert answers(f"http://{after['http']}/readyz")
    told = shared_mesh.told()
    assert f"yrd: zhejiang node (pid {before['pid']}) stopped by hand" in told
    assert f"yrd: zhejiang node started by hand (pid {after['pid']})" in told


@pytest.mark.slow
def test_stop_and_start_refuse_an_unknown_province_or_a_folder_without_a_mesh(
    shared_mesh: RunningMesh, tmp_path: Path
) -> None:
    """A province outside the mesh, or a folder that holds no mesh: exit 2 with a sentence
    saying which, and nothing changed (no marker, the same processes, no file written)."""
    directory = shared_mesh.directory
    nodes = record(directory)["nodes"]
    for action in ("stop", "start"):
        unknown = yrd("mesh", action, "--dir", str(directory), "beijing")
        assert unknown.returncode == 2
        assert f"'beijing' is not a province of the mesh in {directory}" in unknown.stderr
        assert "(shanghai, jiangsu, zhejiang, anhui)" in unknown.stderr
        nowhere = yrd("mesh", action, "--dir", str(tmp_path), "shanghai")
        assert nowhere.returncode == 2
        assert f"{tmp_path} is not a mesh folder" in nowhere.stderr
        assert f"yrd mesh init {tmp_path}" in nowhere.stderr
    assert record(directory)["nodes"] == nodes
    assert not list(directory.glob("*/node.stop")) and not (directory / "beijing").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_node_that_fails_at_once_backs_off_longer_each_time(running_mesh: RunningMesh) -> None:
    """A node whose config is broken after the mesh is up exits at once every time it is
    started: the supervisor starts it again after 0.5, 1, 2 … s (never spinning), the other
    nodes and every platform keep running, and Ctrl-C still stops the mesh cleanly."""
    directory = running_mesh.directory
    before = {n["province"]: n for n in record(directory)["nodes"]}
    (directory / "jiangsu" / "node.toml").write_text("this is [not a node config\n")
    os.kill(before["jiangsu"]["pid"], signal.SIGKILL)
    exit_line = re.compile(r"yrd: jiangsu node \(pid \d+\) exited with (code \d+|signal \w+);"
                           r" log \S+; starting it again in ([\d.]+) s")  # fmt: skip
    took = wait_until(
        lambda: len(exit_line.findall(running_mesh.told())) >= 4, BUDGET / 2, running_mesh.told()
    )
    exits = exit_line.findall(running_mesh.told())
    delays = [float(delay) for _, delay in exits]
    assert took >= sum(delays[:3]), "the back-offs it announced were not waited out"
    assert exits[0][0] == "signal SIGKILL"
    assert all(how.startswith("code ") and how != "code 0" for how, _ in exits[1:])
    assert all(a < b for a, b in itertools.pairwise(delays)), delays
    assert 0.375 <= delays[0] <= 0.5 and 3.0 <= delays[3] <= 4.0, delays
    assert running_mesh.told().count("yrd: jiangsu node started again") <= len(exits)
    assert entry(directory, "jiangsu")["state"] in ("restarting", "starting")
    for province in ("shanghai", "zhejiang", "anhui"):
        now = entry(directory, province)
        assert now["pid"] == before[province]["pid"] and now["state"] == "running"
        assert answers(f"http://{now['http']}/readyz")
    for node in record(directory)["nodes"]:
        assert node["platform_pid"] == before[node["province"]]["platform_pid"]

    running_mesh.supervisor.send_signal(signal.SIGINT)
    assert running_mesh.supervisor.wait(timeout=BUDGET) == 0
    told = running_mesh.told()
    assert not (directory / "mesh.json").exists()
    pids = [p for n in before.values() for p in (n["pid"], n["platform_pid"])]
    pids += [int(p) for p in re.findall(r"jiangsu node started again \(pid (\d+)\)", told)]
    assert not any(alive(pid) for pid in pids)


@pytest.mark.slow
def test_a_second_mesh_up_on_a_running_folder_is_refused_and_changes_nothing(
    shared_mesh: RunningMesh,
) -> None:
    """A second ``yrd mesh up`` on the folder of a running mesh exits 2 at once naming the
    running supervisor's pid; it starts no process, and mesh.json and the running mesh are
    as they were."""
    directory = shared_mesh.directory
    before = (directory / "mesh.json").read_bytes()
    second = yrd("mesh", "up", "--dir", str(directory))
    assert second.returncode == 2
    assert f"a mesh is already running in {directory}" in second.stderr
    assert f"pid {shared_mesh.supervisor.pid}" in second.stderr
    assert second.stdout == ""
    assert (directory / "mesh.json").read_bytes() == before
    assert shared_mesh.supervisor.poll() is None
    assert all(answers(f"http://{n['http']}/readyz") for n in record(directory)["nodes"])

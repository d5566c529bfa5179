"""``yrd mesh up`` on a tester's first hour: a folder ``mesh init`` did not make is refused
(``--init`` makes it), a process that cannot start says why on ``mesh up``'s own terminal,
and the processes a ``kill -9``'d ``mesh up`` left behind do not get in the next one's way."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from node.cli.main import main
from node.mesh.access import create_mesh
from node.mesh.leftovers import leftovers, process_alive
from node.mesh.logs import log_tail
from tests.nodes import BUDGET, free_base_port

YRD = [sys.executable, "-m", "node.cli.main"]


def wait_until(check: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what()
        time.sleep(0.1)


def test_mesh_up_on_a_folder_without_mesh_init_refuses_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo folder is not a new federation: exit 2, the two ways to make one named, and
    not even the folder is created."""
    typo = tmp_path / "mesh-typo"
    assert main(["mesh", "up", "--dir", str(typo)]) == 2
    out, err = capsys.readouterr()
    assert f"{typo} is not a mesh folder" in err
    assert f"yrd mesh init {typo}" in err
    assert f"yrd mesh up --dir {typo} --init" in err
    assert out == ""
    assert not typo.exists()


def test_leftovers_are_only_live_processes_of_this_folder(tmp_path: Path) -> None:
    """A stale mesh.json naming pids that now belong to other programs (here: this test and
    its parent) or to no process at all names no leftover: nothing unrelated is stopped."""
    directory = tmp_path / "mesh"
    directory.mkdir()
    stale = {
        "supervisor_pid": 1 << 22,
        "nodes": [
            {"province": "shanghai", "node_id": "node-310000", "grpc": "127.0.0.1:1",
             "http": "127.0.0.1:2", "platform": "127.0.0.1:3", "pid": os.getpid(),
             "platform_pid": os.getppid()},
            {"province": "jiangsu", "node_id": "node-320000", "grpc": "127.0.0.1:4",
             "http": "127.0.0.1:5", "platform": None, "pid": (1 << 22) + 1},
        ],
    }  # fmt: skip
    (directory / "mesh.json").write_text(json.dumps(stale))
    record, found = leftovers(directory)
    assert record is not None and record.supervisor_pid == 1 << 22
    assert found == []
    assert process_alive(os.getpid()) and not process_alive((1 << 22) + 1)


def test_log_tail_shows_what_was_written_since_the_start_readably(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("old run: address already in use\n")
    since = log.stat().st_size
    with log.open("a") as out:
        out.write(
            '{"ts": "x", "level": "info", "logger": "n", "event": "node started", "port": 1}\n'
        )
        out.write("yrd: cannot start the node: " + "x" * 400 + "\n")
    tail = log_tail(log, since)
    assert tail[0] == "info node started port=1"
    assert tail[1].startswith("yrd: cannot start the node: xxx") and len(tail[1]) <= 240
    assert not any("old run" in line for line in tail)


@pytest.mark.slow
def test_a_node_that_cannot_start_shows_its_error_on_mesh_up_and_exits_1(tmp_path: Path) -> None:
    """Jiangsu's store is corrupt: mesh up prints jiangsu's own last log lines (the store
    error) and its log path on its stderr, exits 1, and leaves nothing running and no
    mesh.json."""
    directory = tmp_path / "mesh"
    create_mesh(directory, now=time.time(), base_port=free_base_port())
    (directory / "jiangsu" / "node.db").write_bytes(b"this is not an SQLite file" * 100)
    result = subprocess.run(
        [*YRD, "mesh", "up", str(directory)], capture_output=True, text=True, timeout=BUDGET
    )
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert "jiangsu node" in err and "while starting" in err
    assert str(directory / "jiangsu" / "node.log") in err
    assert "corrupt" in err
    assert "the mesh could not start" in err
    assert not (directory / "mesh.json").exists()
    pid = int(re.search(r"jiangsu node \(pid (\d+)\)", err)[1])  # type: ignore[index]
    assert not process_alive(pid)


@pytest.mark.slow
def test_a_port_another_process_holds_is_named_and_nothing_starts(tmp_path: Path) -> None:
    """Another mesh (here: a bare socket) listens on Jiangsu's HTTP port: mesh up names the
    port before starting anything, instead of taking the other's answers for its own."""
    directory = tmp_path / "mesh"
    base = free_base_port()
    create_mesh(directory, now=time.time(), base_port=base)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", base + 1001))
        taken.listen()
        result = subprocess.run(
            [*YRD, "mesh", "up", str(directory)], capture_output=True, text=True, timeout=BUDGET
        )
    assert result.returncode == 1, result.stderr
    assert (
        f"another process already listens on 1 of this mesh's ports (jiangsu HTTP "
        f"127.0.0.1:{base + 1001}); nothing was started" in result.stderr
    )
    assert "yrd mesh init NEWDIR --base-port" in result.stderr
    assert not (directory / "mesh.json").exists()
    assert not list(directory.glob("*/node.log"))


def test_base_port_on_an_existing_mesh_is_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "mesh"
    base = free_base_port()
    create_mesh(directory, now=time.time(), base_port=base)
    assert main(["mesh", "up", str(directory), "--base-port", str(base + 100)]) == 2
    err = capsys.readouterr().err
    assert f"was made with base port {base}" in err
    assert f"yrd mesh init NEWDIR --base-port {base + 100}" in err
    assert not (directory / "mesh.json").exists()


def test_status_takes_the_mesh_folder_as_dir_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`yrd status DIR` asks the folder's nodes (here: none runs, so each is named down with
    the command that starts it); a folder that does not exist gets the words `--mesh DIR`
    gives (and `yrd mesh init`); a host:port without its scheme is named as no URL."""
    directory = tmp_path / "mesh"
    create_mesh(directory, now=time.time(), base_port=free_base_port())
    assert main(["status", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "shanghai" in out and "connection refused" in out
    monkeypatch.chdir(tmp_path)
    for argv in (["status", "nosuch"], ["status", "--mesh", "nosuch"]):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            "yrd: nosuch is not a mesh folder (no such folder); create one with: "
            "yrd mesh init nosuch\n"
        )
    assert main(["status", "127.0.0.1:8101"]) == 2
    assert "neither a node URL (http://host:port)" in capsys.readouterr().err


def test_mesh_stop_on_a_folder_that_is_no_mesh_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mesh", "stop", str(tmp_path), "jiangsu"]) != 0
    assert f"{tmp_path} is not a mesh folder" in capsys.readouterr().err


@pytest.mark.slow
def test_mesh_up_after_a_kill_9_stops_what_the_killed_one_left_and_starts(tmp_path: Path) -> None:
    """``kill -9`` of a ``mesh up`` leaves its nodes and platforms running (their own
    sessions). The next ``mesh up`` on the folder stops each of them, one line each naming
    it, then starts a mesh of its own; it says so when it passes SIGHUP to its nodes."""
    directory = tmp_path / "mesh"
    first = subprocess.Popen(
        [*YRD, "mesh", "up", "--dir", str(directory), "--init", "--base-port",
         str(free_base_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    second: subprocess.Popen[bytes] | None = None
    old_pids: list[int] = []
    try:
        wait_until(lambda: (directory / "mesh.json").exists(), BUDGET, lambda: "no mesh.json")
        old = json.loads((directory / "mesh.json").read_text())
        old_pids += [p for n in old["nodes"] for p in (n["pid"], n["platform_pid"])]
        first.kill()
        first.wait()
        assert all(process_alive(pid) for pid in old_pids)

        err = tmp_path / "second.err"
        with err.open("wb") as stderr:
            second = subprocess.Popen(
                [*YRD, "mesh", "up", str(directory)], stdout=subprocess.DEVNULL, stderr=stderr
            )

        def new_record() -> bool:
            try:
                return bool(
                    json.loads((directory / "mesh.json").read_text())["supervisor_pid"]
                    == second.pid
                )
            except (OSError, ValueError):
                return False

        wait_until(lambda: second.poll() is None and new_record(), BUDGET, err.read_text)
        told = err.read_text()
        for pid in old_pids:
            assert f"(pid {pid}) that an earlier yrd mesh up (pid {first.pid}, gone)" in told
            assert not process_alive(pid)
        assert told.count("left running") == len(old_pids)
        new = json.loads((directory / "mesh.json").read_text())
        assert all(process_alive(n["pid"]) for n in new["nodes"])

        second.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP passed on to 4 nodes" in err.read_text(), BUDGET, err.read_text)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=BUDGET)
        for pid in old_pids:
            if process_alive(pid):  # the second mesh up did not get to them
                os.kill(pid, signal.SIGKILL)
    assert second is not None and second.returncode == 0
    assert not (directory / "mesh.json").exists()


@pytest.mark.slow
def test_make_demo_passes_args_on_to_yrd_demo() -> None:
    """``make demo ARGS="--base-port 7201"``: the options reach ``yrd demo`` as they are."""
    root = Path(__file__).resolve().parent.parent
    shown = subprocess.run(
        ["make", "--no-print-directory", "-n", "-W", ".venv/.installed-stamp", "demo",
         "ARGS=--base-port 7201 --probes 5"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=BUDGET,
        # Run under `make test`: no flags of the outer make.
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    demo = [line for line in shown.stdout.splitlines() if "yrd demo" in line]
    assert demo and demo[-1].endswith("/yrd demo --base-port 7201 --probes 5"), shown.stdout


def processes_of(directory: Path, also: bytes = b"") -> list[int]:
    """Pids of the live processes whose command line names ``directory`` (and ``also``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        named = any(str(directory).encode() in word for word in words)
        if state != "Z" and named and also in b" ".join(words):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("started", [b"simulation", b"node run"], ids=["platforms", "nodes"])
def test_a_sigterm_while_the_mesh_starts_stops_what_it_started(
    tmp_path: Path, started: bytes
) -> None:
    """SIGTERM reaches ``mesh up`` while its processes are starting (the first platform, or
    the first node, has started): it stops every process it started and exits 130 (not
    killed at once, leaving them running), with no mesh.json left."""
    directory = tmp_path / "mesh"
    create_mesh(directory, now=time.time(), base_port=free_base_port())
    up = subprocess.Popen(
        [*YRD, "mesh", "up", str(directory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: bool(processes_of(directory, started)),
            BUDGET,
            lambda: "no process of the mesh started",
        )
        up.send_signal(signal.SIGTERM)
        out, err = up.communicate(timeout=BUDGET)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert "mesh up;" not in out, "the signal came after the mesh was up: nothing tested"
    assert up.returncode == 130, err
    assert processes_of(directory) == [], err
    assert not (directory / "mesh.json").exists()

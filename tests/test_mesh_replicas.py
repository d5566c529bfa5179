"""A mesh whose provinces run as replicas on PostgreSQL (``yrd mesh init --store postgres
--replicas N``, ``yrd mesh up``): its own database server, every replica up on its own ports,
listed in mesh.json and by ``yrd status --mesh``; a case between two provinces concludes;
a replica killed while its supervisor cannot restart it costs its peers one failed call,
after which they send to the other replica. Bad options are refused before anything is
made."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from node.mesh.access import create_mesh
from node.mesh.layout import StoreChoice
from node.mesh.leftovers import process_alive
from tests.cases import case_body, matter_of
from tests.nodes import _free, free_base_port
from tests.postgres import missing_server_is_a_skip, server_bindir

YRD = [sys.executable, "-m", "node.cli.main"]
CONCLUDED = {"completed", "denied", "rejected", "evaluated", "withdrawn"}
UP_WITHIN = 120.0


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--store", "postgres", "--replicas", "0"], "replicas must be 1 to 9, not 0"),
        (["--store", "postgres", "--replicas", "10"], "replicas must be 1 to 9, not 10"),
        (["--replicas", "2"], "2 replicas need a database they share: add --store postgres"),
        (["--store", "mysql"], "invalid choice: 'mysql'"),
        (["--provinces", "shanghai,atlantis"], "atlantis: name provinces among shanghai"),
    ],
    ids=["zero-replicas", "ten-replicas", "replicas-on-sqlite", "unknown-store", "province"],
)
def test_bad_store_and_replica_options_are_refused_and_nothing_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    """``--replicas`` outside 1-9, above 1 without ``--store postgres``, an unknown store or
    province: exit 2 naming what is wrong, and no folder."""
    directory = tmp_path / "mesh"
    try:
        code = main(["mesh", "init", str(directory), *options])
    except SystemExit as usage:  # argparse's own refusals
        code = usage.code
    assert code == 2
    assert said in capsys.readouterr().err
    assert not directory.exists()


@pytest.mark.slow  # pg_config is a process
def test_a_folder_the_database_server_cannot_reach_is_refused_and_nothing_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As root, PostgreSQL runs as another user, who cannot pass an owner-only folder above
    the mesh (pytest's own): init says which folder, exits 2 and leaves no mesh behind."""
    if os.getuid() != 0:
        pytest.skip("only root hands the server to another user")
    missing_server_is_a_skip(server_bindir)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    directory = closed / "mesh"
    assert main(["mesh", "init", str(directory), "--store", "postgres"]) == 2
    err = capsys.readouterr().err
    assert "PostgreSQL runs as user" in err and "is closed to it" in err, err
    assert not directory.exists()
    assert list(closed.iterdir()) == []


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A folder the unprivileged PostgreSQL user can pass through when the tests run as root
    (pytest's own temporary folders are closed to other users)."""
    missing_server_is_a_skip(server_bindir)
    folder = Path(tempfile.mkdtemp(prefix="yrd-replicas-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.2)


def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            **({"Authorization": f"Bearer {token}"} if token else {}),
            **({"Content-Type": "application/json"} if body is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def replica_base_port() -> int:
    """A base port whose two provinces' ports are free for replicas 1 and 2 (+100)."""
    for _ in range(50):
        base = free_base_port(2)
        if all(_free(base + offset + i) for offset in (100, 1100) for i in range(2)):
            return base
    raise RuntimeError("no free port range for two replicas found")


def up_record(up: subprocess.Popen[bytes], directory: Path, log: Path) -> dict[str, Any] | None:
    """mesh.json once ``yrd mesh up`` wrote it; an AssertionError with its log if it exited."""
    if up.poll() is not None:
        raise AssertionError(f"mesh up exited ({up.returncode}):\n{log.read_text()[-3000:]}")
    return record(directory)


def stop_up(up: subprocess.Popen[bytes]) -> None:
    """Stop ``yrd mesh up`` (paused or not) as Ctrl-C would; its whole session if it hangs."""
    if up.poll() is None:
        up.send_signal(signal.SIGCONT)
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


def record(directory: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((directory / "mesh.json").read_text()))
    except (OSError, ValueError):
        return None


def endpoints_seen(http: str, token: str, peer: str) -> list[dict[str, Any]]:
    status, document = call(f"http://{http}/v1/status", token)
    assert status == 200, document
    return next(p["endpoints"] for p in document["peers"] if p["peer"] == peer)


def case_status(http: str, token: str, case_id: str) -> str | None:
    status, document = call(f"http://{http}/v1/cases/{case_id}", token)
    return document["status"] if status == 200 else None


@pytest.mark.slow
def test_two_provinces_of_two_replicas_on_postgres(reachable: Path) -> None:
    """init and up: the mesh's server runs in DIR/postgres, each of the four replicas
    answers /readyz on its own port, mesh.json lists them, ``yrd status --mesh`` has a row
    for each; a case from Shanghai to Jiangsu concludes; with the supervisor paused, a
    SIGKILLed Jiangsu replica 1 sends Shanghai's traffic to Jiangsu replica 2 (which
    receives the next case), and once the supervisor runs again it restarts the replica."""
    directory = reachable / "mesh"
    base = replica_base_port()
    init = subprocess.run(
        [*YRD, "mesh", "init", str(directory), "--store", "postgres", "--replicas", "2",
         "--provinces", "shanghai,jiangsu", "--base-port", str(base)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    assert "2 replica(s) per province" in init.stdout
    assert (directory / "postgres" / "data" / "PG_VERSION").exists()
    assert f"127.0.0.1:{base + 100}" in (directory / "manifest.json").read_text()
    # The link proxies reach first replicas only: --links on replicas is refused at once.
    linked = subprocess.run(
        [*YRD, "mesh", "up", str(directory), "--links"], capture_output=True, text=True, timeout=60
    )
    assert linked.returncode == 2, linked.stderr
    assert "with 2 replicas per province, run without --links; nothing was started" in (
        linked.stderr
    )
    assert not (directory / "mesh.json").exists()

    log = (reachable / "up.log").open("w")
    up = subprocess.Popen(
        # The simulated officers stay out of it (they may ask for a supplement no one
        # gives): the test works the case at Jiangsu through its REST API.
        [*YRD, "mesh", "up", str(directory), "--officer-delay", "600"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        written = wait_for(
            lambda: up_record(up, directory, reachable / "up.log"), "mesh.json", UP_WITHIN
        )
        nodes = {n["province"]: n for n in written["nodes"]}
        assert set(nodes) == {"shanghai", "jiangsu"}
        for index, province in enumerate(("shanghai", "jiangsu")):
            replicas = nodes[province]["replicas"]
            assert [(r["grpc"], r["http"]) for r in replicas] == [
                (f"127.0.0.1:{base + index}", f"127.0.0.1:{base + 1000 + index}"),
                (f"127.0.0.1:{base + 100 + index}", f"127.0.0.1:{base + 1100 + index}"),
            ]
            assert replicas[0]["pid"] == nodes[province]["pid"]
            assert replicas[0]["grpc"] == nodes[province]["grpc"]
            for replica in replicas:
                assert process_alive(replica["pid"])
                assert call(f"http://{replica['http']}/readyz")[0] == 200

        viewer = (directory / "viewer.token").read_text().strip()
        status = subprocess.run(
            [*YRD, "status", "--mesh", str(directory)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        rows = re.findall(r"^(shanghai|shanghai#2|jiangsu|jiangsu#2) +yes ", status.stdout, re.M)
        assert sorted(rows) == ["jiangsu", "jiangsu#2", "shanghai", "shanghai#2"], status.stdout
        assert re.search(r"^shanghai +jiangsu +127\.0\.0\.1:\d+ +\w+", status.stdout, re.M)

        platform = {
            p: json.loads((directory / p / "tokens.json").read_text())["platform"] for p in nodes
        }
        shanghai = nodes["shanghai"]["http"]
        code, made = call(
            f"http://{shanghai}/v1/cases", platform["shanghai"], case_body(matter_of("jiangsu"))
        )
        assert code == 201, made
        jiangsu = nodes["jiangsu"]["http"]
        wait_for(
            lambda: case_status(jiangsu, platform["jiangsu"], made["case_id"]) == "delivered",
            "the first case delivered at Jiangsu",
        )
        result = {"kind": "document", "document_sha256": "ab" * 32}
        for action in ({"action": "accept"}, {"action": "complete", "result": result}):
            code, answer = call(
                f"http://{jiangsu}/v1/cases/{made['case_id']}/events", platform["jiangsu"], action
            )
            assert code in (200, 202), answer
        wait_for(
            lambda: case_status(shanghai, platform["shanghai"], made["case_id"]) in CONCLUDED,
            "the first case concluded at Shanghai",
            90,
        )

        # The supervisor paused, Jiangsu's first replica killed: it stays down.
        os.kill(up.pid, signal.SIGSTOP)
        try:
            first = nodes["jiangsu"]["replicas"][0]
            os.kill(first["pid"], signal.SIGKILL)
            wait_for(lambda: not process_alive(first["pid"]), "replica 1 gone", 10)
            code, second = call(
                f"http://{shanghai}/v1/cases",
                platform["shanghai"],
                case_body(matter_of("jiangsu"), seed=2),
            )
            assert code == 201, second
            other = nodes["jiangsu"]["replicas"][1]["http"]
            wait_for(
                lambda: case_status(other, platform["jiangsu"], second["case_id"]) is not None,
                "the second case received by Jiangsu's second replica",
            )

            # Whichever Shanghai replica holds the sender lease for Jiangsu sent the case; each
            # moves to the second endpoint at its first failed call (a send or a heartbeat).
            def failed_over(http: str) -> bool:
                seen = endpoints_seen(http, viewer, "jiangsu")
                assert [e["endpoint"] for e in seen] == [
                    nodes["jiangsu"]["grpc"],
                    nodes["jiangsu"]["replicas"][1]["grpc"],
                ]
                return (
                    seen[0]["state"] == "failed"
                    and seen[0]["failures"] >= 1
                    and seen[1]["state"] == "healthy"
                    and seen[1]["current"] is True
                )

            wait_for(lambda: failed_over(shanghai), "Shanghai's replica 1 moved to endpoint 2")
            _, metrics = call(f"http://{shanghai}/metrics")
            assert f'yrd_peer_endpoint_up{{endpoint="{first["grpc"]}",peer="jiangsu"}} 0.0' in (
                metrics
            )
        finally:
            os.kill(up.pid, signal.SIGCONT)
        restarted = wait_for(
            lambda: next(
                (
                    r
                    for n in (record(directory) or {"nodes": []})["nodes"]
                    if n["province"] == "jiangsu"
                    for r in n["replicas"][:1]
                    if r["state"] == "running" and r["pid"] not in (None, first["pid"])
                ),
                None,
            ),
            "the supervisor restarted Jiangsu's replica 1",
        )
        assert call(f"http://{restarted['http']}/readyz")[0] == 200
    finally:
        stop_up(up)
        log.close()
    output = (reachable / "up.log").read_text()
    assert "mesh stopped" in output, output[-3000:]
    assert f"jiangsu node (pid {first['pid']}) exited with signal SIGKILL" in output
    assert not (directory / "mesh.json").exists()
    assert not (directory / "postgres" / "data" / "postmaster.pid").exists()


@pytest.mark.slow
def test_a_killed_mesh_up_leaves_replicas_and_its_database_server_to_the_next(
    reachable: Path,
) -> None:
    """``yrd mesh up`` SIGKILLed: its replicas and PostgreSQL run on in their own sessions;
    the next ``yrd mesh up`` stops every one of them (each named) before it starts anew."""
    directory = reachable / "mesh"
    create_mesh(
        directory,
        now=time.time(),
        base_port=replica_base_port(),
        provinces=("shanghai", "jiangsu"),
        platforms=False,
        store=StoreChoice("postgres", 2),
    )
    first = subprocess.Popen([*YRD, "mesh", "up", str(directory)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        written = wait_for(lambda: first.poll() is None and record(directory), "mesh.json", 90)
        pids = [r["pid"] for n in written["nodes"] for r in n["replicas"]]
        server = int((directory / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    finally:
        first.kill()
        first.wait()
    assert all(process_alive(pid) for pid in [*pids, server])
    log = (reachable / "up.log").open("w")
    second = subprocess.Popen([*YRD, "mesh", "up", str(directory)], stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(
            lambda: (
                second.poll() is None
                and (record(directory) or {}).get("supervisor_pid") == second.pid
            ),
            "the second mesh up running",
            90,
        )
        assert not any(process_alive(pid) for pid in [*pids, server])
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
        log.close()
    said = (reachable / "up.log").read_text()
    for pid in pids:
        assert f"node (pid {pid}) that an earlier yrd mesh up" in said, said
    assert f"the postgres (pid {server}) that an earlier yrd mesh up" in said, said

"""`yrd mesh up --monitoring`: a real Prometheus scrapes every node, and a shipped alert fires
on a real fault and resolves when it heals.

Rule timing is shortened in a copy of the shipped rules handed over with --alert-rules; the
shipped file is never edited (test_prometheus_is_kept_and_stops_with_the_mesh checks what a mesh
without the option loads). A case falls overdue only days after its acceptance, so the
overdue-case test runs its own mesh on a test clock (``test_clock_file``,
node.runtime.clock) and moves it on."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.registry import citizen
from node.delivery.retry import IDLE_TICK
from node.mesh.applications import fetch_fixtures, plan_applications
from node.mesh.auth import mesh_session
from node.mesh.monitoring import SHIPPED_RULES, scrape_config
from node.mesh.node_control import alive
from node.mesh.processes import node_configs
from node.trust.manifest import parse_time
from tests.binaries import required_binary
from tests.nodes import BUDGET, free_base_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def prometheus_binary() -> str:
    """The prometheus binary; missing, a failure in CI (`make test` installs it) and a skip
    elsewhere."""
    return required_binary("prometheus", "prometheus")


YRD = [sys.executable, "-m", "node.cli.main"]
FAST_FOR = "3s"
PARK_AFTER = 2 * IDLE_TICK
"""Seconds Jiangsu keeps an undelivered message before parking it (the test mesh only).
Longer than the idle tick at which a running node finds a message that ``yrd outbox retry``
put back in its store, so the retried message is sent before its fresh age limit runs out."""
PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")


@dataclass
class MonitoredMesh:
    directory: Path
    supervisor: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def prometheus(self) -> str:
        url: str = json.loads((self.directory / "mesh.json").read_text())["prometheus"]
        return url

    def stop(self) -> None:
        """Ctrl-C, as in the terminal."""
        self.supervisor.send_signal(signal.SIGINT)
        self.supervisor.wait(timeout=BUDGET)

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.prometheus + path + query, timeout=5) as reply:
            document = json.loads(reply.read())
        assert document["status"] == "success", document
        return document["data"]


def up(
    folder: Path,
    *options: str,
    prepare: Callable[[Path], None] | None = None,
    existing: Path | None = None,
) -> MonitoredMesh:
    """``yrd mesh init`` then ``yrd mesh up --monitoring`` in ``folder``/mesh (or only the
    latter, in an ``existing`` mesh folder), its output in files in ``folder``; ``prepare``
    may change the new mesh folder before it starts."""
    folder.mkdir(parents=True, exist_ok=True)
    directory = existing or folder / "mesh"
    stdout, stderr = folder / "up.out", folder / "up.err"
    if existing is None:
        made = subprocess.run(
            [*YRD, "mesh", "init", str(directory), "--base-port", str(free_base_port())],
            capture_output=True, text=True, timeout=BUDGET, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    if prepare is not None:
        prepare(directory)
    with stdout.open("wb") as out, stderr.open("wb") as err:
        supervisor = subprocess.Popen(
            [*YRD, "mesh", "up", "--dir", str(directory), "--monitoring", *options],
            stdout=out,
            stderr=err,
        )  # fmt: skip
    running = MonitoredMesh(directory, supervisor, stdout, stderr)
    try:
        wait_until(
            lambda: "prometheus  http://" in stdout.read_text(),
            BUDGET,
            lambda: f"no prometheus line: {stdout.read_text()} {stderr.read_text()}",
        )
    except AssertionError:
        running.stop()
        raise
    return running


def wait_until(check: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what()
        time.sleep(0.25)


def fast_rules(folder: Path) -> Path:
    """A copy of the shipped rules in ``folder`` with every ``for:`` cut to FAST_FOR."""
    rules = folder / "fast-alerts.yml"
    rules.write_text(re.sub(r"for: \d+[smh]", f"for: {FAST_FOR}", SHIPPED_RULES.read_text()))
    return rules


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoredMesh]:
    folder = tmp_path_factory.mktemp("monitored")
    running = up(
        folder,
        "--officer-delay",
        "0.1",
        "--alert-rules",
        str(fast_rules(folder)),
        prepare=functools.partial(park_after, "jiangsu", PARK_AFTER),
    )
    try:
        yield running
    finally:
        running.stop()


def park_after(province: str, seconds: float, directory: Path) -> None:
    """Give ``province``'s node a short age limit for undelivered messages."""
    config = directory / province / "node.toml"
    text, count = re.subn(
        r"dead_letter_after_seconds = [0-9.]+",
        f"dead_letter_after_seconds = {seconds}",
        config.read_text(),
    )
    assert count == 1
    config.write_text(text)


def yrd(*argv: str) -> None:
    """Run one yrd command to its end; it must succeed."""
    done = subprocess.run(
        [*YRD, *argv], capture_output=True, text=True, timeout=BUDGET, check=False
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def targets_up(mesh: MonitoredMesh) -> dict[str, str]:
    active = mesh.api("/api/v1/targets")["activeTargets"]
    return {t["labels"]["province"]: t["health"] for t in active}


def alerts(mesh: MonitoredMesh, name: str) -> list[dict[str, Any]]:
    return [a for a in mesh.api("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name]


def firing(
    mesh: MonitoredMesh,
    name: str,
    expected: Callable[[dict[str, str]], bool] = bool,
    *,
    pending_first: bool = True,
    meanwhile: Callable[[], None] = lambda: None,
) -> list[dict[str, str]]:
    """Wait until alert ``name`` fires with labels ``expected`` accepts, calling
    ``meanwhile`` while waiting; the labels of each ``name`` alert firing then, every one of
    them in LABELS. A rule with a ``for:`` (``pending_first``) must be seen pending first."""
    states: set[str] = set()

    def fired() -> bool:
        meanwhile()
        matching = [a for a in alerts(mesh, name) if expected(a["labels"])]
        states.update(a["state"] for a in matching)
        return "firing" in states

    wait_until(fired, BUDGET, lambda: f"{name} never fired as expected: {alerts(mesh, name)}")
    if pending_first:
        assert "pending" in states, f"{name} fired without being seen pending"
    fired = [a["labels"] for a in alerts(mesh, name) if a["state"] == "firing"]
    for labels in fired:
        assert set(labels) <= LABELS, labels
    return fired


def resolved(mesh: MonitoredMesh, name: str) -> None:
    """Wait until no alert ``name`` is pending or firing."""
    wait_until(
        lambda: not alerts(mesh, name),
        BUDGET,
        lambda: f"{name} never resolved: {alerts(mesh, name)}",
    )


def test_every_node_is_scraped_with_its_province(mesh: MonitoredMesh) -> None:
    assert mesh.prometheus.startswith("http://127.0.0.1:")
    assert mesh.prometheus in mesh.stdout.read_text()
    wait_until(
        lambda: targets_up(mesh) == dict.fromkeys(PROVINCES, "up"),
        BUDGET,
        lambda: f"targets: {targets_up(mesh)}",
    )
    groups = mesh.api("/api/v1/rules")["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"YrdNodeDown", "YrdPeerUnreachable", "YrdDeadLetters"} <= names
    fast = next(r for g in groups for r in g["rules"] if r["name"] == "YrdNodeDown")
    assert fast["duration"] == 3


def test_a_stopped_node_fires_node_down_and_it_resolves_when_started(
    mesh: MonitoredMesh,
) -> None:
    wait_until(lambda: targets_up(mesh).get("anhui") == "up", BUDGET, lambda: str(targets_up(mesh)))
    assert not alerts(mesh, "YrdNodeDown")
    yrd("mesh", "stop", "--dir", str(mesh.directory), "anhui")
    [fired] = firing(mesh, "YrdNodeDown")
    assert fired["province"] == "anhui"
    assert fired["severity"] == "critical"
    yrd("mesh", "start", "--dir", str(mesh.directory), "anhui")
    resolved(mesh, "YrdNodeDown")


LABELS = {"alertname", "severity", "province", "peer", "instance", "job", "task", "reason", "role"}
"""Every label an alert may carry: provinces, peers, node addresses and a case role, never
personal data."""


def pid_of(mesh: MonitoredMesh, province: str, key: str) -> int:
    document = json.loads((mesh.directory / "mesh.json").read_text())
    pid: int = next(n for n in document["nodes"] if n["province"] == province)[key]
    return pid


def fires_and_resolves(
    mesh: MonitoredMesh, name: str, pid: int, expected: Callable[[dict[str, str]], bool]
) -> list[dict[str, str]]:
    """Pause ``pid`` (SIGSTOP) until alert ``name`` fires with labels ``expected`` accepts,
    then let it run again (SIGCONT) until the alert is gone; the fired alerts' labels."""
    resolved(mesh, name)  # an earlier fault's alert may still be resolving
    os.kill(pid, signal.SIGSTOP)
    try:
        fired = firing(mesh, name, expected)
    finally:
        os.kill(pid, signal.SIGCONT)
    resolved(mesh, name)
    return fired


def test_a_paused_node_is_unreachable_for_its_peers_until_it_runs_again(
    mesh: MonitoredMesh,
) -> None:
    fired = fires_and_resolves(
        mesh,
        "YrdPeerUnreachable",
        pid_of(mesh, "zhejiang", "pid"),
        lambda labels: labels.get("peer") == "zhejiang",
    )
    assert {labels["peer"] for labels in fired} == {"zhejiang"}
    assert {labels["province"] for labels in fired} <= {"shanghai", "jiangsu", "anhui"}


def test_a_killed_platform_fires_platform_down_for_its_province(mesh: MonitoredMesh) -> None:
    """Jiangsu's platform is killed (SIGKILL) each time `yrd mesh up` starts it again, until
    YrdPlatformDown fires for Jiangsu; left alone, it is started again and the alert resolves."""
    resolved(mesh, "YrdPlatformDown")
    killed: set[int] = set()

    def kill_platform() -> None:
        document = json.loads((mesh.directory / "mesh.json").read_text())
        pid = next(n for n in document["nodes"] if n["province"] == "jiangsu")["platform_pid"]
        if pid is not None and pid not in killed and alive(pid):  # None: being started again
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)

    fired = firing(
        mesh,
        "YrdPlatformDown",
        lambda labels: labels.get("province") == "jiangsu",
        meanwhile=kill_platform,
    )
    assert killed
    assert {labels["province"] for labels in fired} == {"jiangsu"}
    resolved(mesh, "YrdPlatformDown")


def _probe(mesh: MonitoredMesh, sender: str, peer: str) -> None:
    """One signed probe from ``sender`` to ``peer`` through its outbox (operator token)."""
    record = json.loads((mesh.directory / "mesh.json").read_text())
    node = next(n for n in record["nodes"] if n["province"] == sender)
    token = json.loads(Path(node["tokens_file"]).read_text())["operator"]
    request = urllib.request.Request(
        f"http://{node['http']}/v1/probes",
        data=json.dumps({"peer": peer, "count": 1}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.status in (200, 202), reply.status


def value(mesh: MonitoredMesh, query: str) -> float | None:
    """The one value of an instant ``query`` in Prometheus now; None when it has none."""
    result = mesh.api("/api/v1/query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


def test_a_parked_message_fires_dead_letters_until_it_is_retried(mesh: MonitoredMesh) -> None:
    """Anhui stopped: a probe from Jiangsu waits past Jiangsu's age limit and is parked, which
    fires YrdDeadLetters for jiangsu → anhui; once Anhui runs again, `yrd outbox retry` puts
    it back in line with a fresh age limit, it is delivered, and the alert resolves."""
    link = '{province="jiangsu",peer="anhui"}'
    resolved(mesh, "YrdDeadLetters")
    yrd("mesh", "stop", "--dir", str(mesh.directory), "anhui")
    try:
        _probe(mesh, "jiangsu", "anhui")
        [fired] = firing(mesh, "YrdDeadLetters", pending_first=False)
        assert (fired["province"], fired["peer"]) == ("jiangsu", "anhui")
    finally:
        yrd("mesh", "start", "--dir", str(mesh.directory), "anhui")
    wait_until(
        lambda: value(mesh, f"yrd_peer_up{link}") == 1,
        BUDGET,
        lambda: f"jiangsu does not reach anhui again: {value(mesh, f'yrd_peer_up{link}')}",
    )
    yrd("outbox", "retry", "--config", str(mesh.directory / "jiangsu" / "node.toml"),
        "--peer", "anhui")  # fmt: skip
    settled = f"yrd_outbox_depth{link} + yrd_dead_letters{link}"
    wait_until(
        lambda: value(mesh, settled) == 0 and not alerts(mesh, "YrdDeadLetters"),
        BUDGET,
        lambda: f"not delivered ({value(mesh, settled)}): {alerts(mesh, 'YrdDeadLetters')}",
    )


def test_a_manifest_close_to_expiry_fires_at_every_node_until_replaced(
    mesh: MonitoredMesh,
) -> None:
    """A manifest expiring in ten days, signed and loaded with SIGHUP: every node fires
    YrdManifestExpiringSoon; a manifest good for a year again resolves it. (Last in this
    module: it changes the mesh's manifest.)"""
    document = json.loads((mesh.directory / "manifest.json").read_text())
    body = document["manifest"]
    supervisor = json.loads((mesh.directory / "mesh.json").read_text())["supervisor_pid"]

    def publish(version: int, days: float) -> None:
        body["version"] = version
        body["issued_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        body["expires_at"] = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + days * 86400)
        )
        draft = mesh.directory.parent / f"draft-{version}.json"
        draft.write_text(json.dumps(body))
        signed = subprocess.run(
            [*YRD, "manifest", "sign", "--governance-key",
             str(mesh.directory / "governance" / "governance.key"), "--in", str(draft),
             "--out", str(mesh.directory / "manifest.json")],
            capture_output=True, text=True, timeout=BUDGET, check=False,
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        os.kill(supervisor, signal.SIGHUP)

    resolved(mesh, "YrdManifestExpiringSoon")
    publish(body["version"] + 1, 10)
    wait_until(
        lambda: (
            {
                a["labels"]["province"]
                for a in alerts(mesh, "YrdManifestExpiringSoon")
                if a["state"] == "firing"
            }
            == set(PROVINCES)
        ),
        BUDGET,
        lambda: f"not firing everywhere: {alerts(mesh, 'YrdManifestExpiringSoon')}",
    )
    publish(body["version"] + 1, 365)
    resolved(mesh, "YrdManifestExpiringSoon")


SHIFT_FILE = "clock-shift"
OFFICER_DELAY = 8.0
"""Seconds the simulated officers wait before each step: long enough for the test to see an
acceptance and pause the officer's platform before the case is concluded."""


def on_test_clock(directory: Path) -> None:
    """Every node of the mesh at ``directory`` on one test clock: the machine's time plus
    the seconds in ``directory``/SHIFT_FILE (node.runtime.clock)."""
    for province in PROVINCES:
        config = directory / province / "node.toml"
        config.write_text(f'test_clock_file = "../{SHIFT_FILE}"\n{config.read_text()}')


def shift_clock(directory: Path, seconds: float) -> None:
    """Move the mesh's test clock to the machine's time plus ``seconds`` (written whole)."""
    draft = directory / f"{SHIFT_FILE}.new"
    draft.write_text(repr(seconds))
    os.replace(draft, directory / SHIFT_FILE)


async def accepted_case(directory: Path, accepting: str, handling: str) -> float:
    """Enter applications at ``accepting``'s platform for a matter ``handling`` handles until
    ``handling``'s officer accepts one (its seeded plan rejects a share of them); that case's
    due time."""
    configs = {c.province: c for c in node_configs(directory)}
    platform = configs[accepting].platform
    assert platform is not None
    deadline = time.monotonic() + BUDGET
    async with mesh_session(directory, timeout=aiohttp.ClientTimeout(total=BUDGET / 3)) as session:

        async def get(province: str, path: str) -> dict[str, Any]:
            async with session.get(f"http://{configs[province].http_listen}{path}") as reply:
                return dict(await reply.json()) if reply.status == 200 else {}

        async def announced() -> dict[str, Any]:
            catalog = await get(accepting, "/v1/catalog")
            return catalog if handling in {p["province"] for p in catalog["provinces"]} else {}

        while not (catalog := await announced()):
            assert time.monotonic() < deadline, f"{handling} never announced its catalog"
            await asyncio.sleep(0.2)
        fixtures = await fetch_fixtures(session, {accepting: platform.url})
        pairs = [(accepting, handling)] * 4
        for application in plan_applications(catalog["matters"], fixtures, pairs):
            applicant = citizen(accepting)
            reference = await applicant.enter_application(session, platform.url, application.body)
            case: dict[str, Any] = {}
            while case.get("status") != "rejected":
                assert time.monotonic() < deadline, f"{reference}: {case.get('status')}"
                await asyncio.sleep(0.1)
                case_id = await applicant.case_of(session, platform.url, reference)
                case = await get(handling, f"/v1/cases/{case_id}") if case_id else {}
                if case.get("status") == "accepted" and case.get("due_at"):
                    return parse_time(case["due_at"], "due_at")
    raise AssertionError(f"{handling}'s officer rejected every application")


def test_an_overdue_case_fires_cases_overdue_until_it_is_concluded(tmp_path: Path) -> None:
    """A case Anhui accepted for Shanghai, with the mesh's test clock moved past its due time
    while Anhui's officer is away (its platform paused): YrdCasesOverdue fires at Anhui for
    peer Shanghai; once the officer is back and concludes the case, it resolves."""
    running = up(
        tmp_path,
        "--officer-delay",
        str(OFFICER_DELAY),
        "--alert-rules",
        str(fast_rules(tmp_path)),
        prepare=on_test_clock,
    )
    try:
        due_at = asyncio.run(accepted_case(running.directory, "shanghai", "anhui"))
        officer = pid_of(running, "anhui", "platform_pid")
        os.kill(officer, signal.SIGSTOP)
        try:
            shift_clock(running.directory, due_at - time.time() + 60)
            [fired] = firing(running, "YrdCasesOverdue")
            assert (fired["province"], fired["peer"]) == ("anhui", "shanghai")
        finally:
            os.kill(officer, signal.SIGCONT)
        resolved(running, "YrdCasesOverdue")
    finally:
        running.stop()


def test_prometheus_is_kept_and_stops_with_the_mesh(tmp_path: Path) -> None:
    """A Prometheus killed is started again on the same URL; Ctrl-C stops it with the mesh."""
    running = up(tmp_path)
    directory, stderr, supervisor = running.directory, running.stderr, running.supervisor
    try:
        loaded = (directory / "prometheus" / "alerts.yml").read_text()
        assert loaded == SHIPPED_RULES.read_text()
        pid = _prometheus_pid(directory)
        subprocess.run(["kill", "-9", str(pid)], check=True)
        wait_until(
            lambda: "prometheus exited" in stderr.read_text(), BUDGET, lambda: stderr.read_text()
        )
        wait_until(
            lambda: _answers(running.prometheus + "/-/ready"),
            BUDGET,
            lambda: stderr.read_text(),
        )
        again = _prometheus_pid(directory)
        assert again != pid
        wait_until(
            lambda: json.loads((directory / "mesh.json").read_text())["prometheus_pid"] == again,
            BUDGET,
            lambda: (directory / "mesh.json").read_text(),
        )
    finally:
        running.stop()
    assert supervisor.returncode == 0, stderr.read_text()
    assert not alive(again)
    assert not (directory / "mesh.json").exists()


def test_the_prometheus_of_a_killed_mesh_up_is_stopped_by_the_next(tmp_path: Path) -> None:
    """kill -9 of ``mesh up --monitoring`` leaves its children running; the next ``mesh up``
    on the folder stops them, Prometheus too (found by mesh.json's pid and its data path)."""
    first = up(tmp_path)
    old = _prometheus_pid(first.directory)
    first.supervisor.kill()
    first.supervisor.wait(timeout=BUDGET)
    assert alive(old)
    second = up(tmp_path / "again", existing=first.directory)
    try:
        assert f"the prometheus (pid {old})" in second.stderr.read_text()
        assert not alive(old)
        assert _prometheus_pid(first.directory) != old
    finally:
        second.stop()


def test_the_generated_configuration_names_every_node() -> None:
    """What the mesh hands Prometheus: job yrd-node, one target per node with its province."""

    @dataclass
    class Config:
        province: str
        http_listen: str

    configs = [Config("shanghai", "127.0.0.1:8101"), Config("anhui", "127.0.0.1:8104")]
    document = scrape_config(configs, Path("/x/alerts.yml"))  # type: ignore[arg-type]
    [job] = document["scrape_configs"]
    assert job["job_name"] == "yrd-node"
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:8101"], "labels": {"province": "shanghai"}},
        {"targets": ["127.0.0.1:8104"], "labels": {"province": "anhui"}},
    ]
    assert document["rule_files"] == ["/x/alerts.yml"]


def _prometheus_pid(directory: Path) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"storage.tsdb.path={directory / 'prometheus' / 'data'}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    pids = [int(p) for p in found.stdout.split()]
    assert len(pids) == 1, found
    return pids[0]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False

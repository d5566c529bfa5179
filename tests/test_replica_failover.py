"""Failover (issue 15): a mesh of two provinces, each two node replicas sharing a PostgreSQL
database, under ``yrd load``. While the load runs, the replica of each province that holds
the sender lease for the other province is SIGKILLed, and the supervisor is paused so it
cannot start it again before the surviving replica has taken the dead one's lease over.
Then: every case was handed off and concluded, no message was received twice, every sender
holds the receipt of every message it sent, each province's evidence log verifies, and the
takeover was logged and counted at the survivor, its delay within a lease and a little."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from node.delivery.retry import IDLE_TICK
from node.mesh.leftovers import process_alive
from node.store.leases import outbox_lease
from tests.test_mesh_replicas import (
    UP_WITHIN,
    YRD,
    call,
    reachable,
    record,
    replica_base_port,
    stop_up,
    up_record,
    wait_for,
)

__all__ = ["reachable"]  # the fixture, used by name

PROVINCES = ("shanghai", "jiangsu")
LEASE_SECONDS = 8.0
"""The mesh's ``[leases] duration_seconds``: how long a dead replica's jobs wait (the
default 15 s would only make the test longer)."""
RENEW_SECONDS = 0.5
SLACK = 5.0
"""What a takeover may take past the lease and an idle replica's look (a loaded machine)."""
CASES = 60
SPREAD = 20.0
"""Seconds the load submits over: the replicas die while it submits."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]


@dataclass(frozen=True)
class Replica:
    province: str
    number: int
    pid: int
    http: str
    owner: str = ""
    """Its replica id in the leases table, once read there."""

    @property
    def log(self) -> str:
        return "node.log" if self.number == 1 else f"node-{self.number}.log"


def store_url(directory: Path, province: str) -> str:
    text = (directory / province / "node.toml").read_text()
    found = re.search(r'^url = "(postgresql://[^"]+)"', text, re.M)
    assert found, text
    return found.group(1)


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def shorten_leases(directory: Path) -> None:
    """Every replica's ``[leases]``: a short lease, renewed (and looked at) often."""
    for config in directory.glob("*/node*.toml"):
        text = config.read_text()
        text, n = re.subn(r"^duration_seconds = .*$", f"duration_seconds = {LEASE_SECONDS}",
                          text, flags=re.M)  # fmt: skip
        text, m = re.subn(r"^renew_seconds = .*$", f"renew_seconds = {RENEW_SECONDS}",
                          text, flags=re.M)  # fmt: skip
        assert (n, m) == (1, 1), config
        config.write_text(text)


def sender_lease_holder(
    directory: Path, province: str, peer: str, replicas: list[Replica]
) -> Replica:
    """The replica of ``province`` that holds its lease of sending ``peer`` its outbox now."""
    rows = query(
        store_url(directory, province),
        "SELECT owner FROM leases WHERE name = %s AND expires_at > %s",
        outbox_lease(peer),
        time.time(),
    )
    assert rows, f"no replica of {province} holds the sender lease for {peer}"
    owner = str(rows[0][0])
    pid = int(owner.split("/")[1].split("-")[0])  # node id / pid - random
    return replace(next(r for r in replicas if r.pid == pid), owner=owner)


def takeovers_logged(directory: Path, replica: Replica) -> list[dict[str, Any]]:
    """The lease takeovers ``replica`` logged (one JSON object a line)."""
    found = []
    for line in (directory / replica.province / replica.log).read_text().splitlines():
        if '"lease taken over"' in line:
            found.append(json.loads(line))
    return found


def metric(text: str, name: str, **labels: str) -> float | None:
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(shown)}\}} (\S+)$", text, re.M)
    return None if found is None else float(found.group(1))


@pytest.fixture
def mesh(reachable: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes], Path]]:
    """The mesh, initialised with short leases and up (``yrd mesh up`` as a subprocess);
    stopped at the end."""
    directory = reachable / "mesh"
    init = subprocess.run(
        [*YRD, "mesh", "init", str(directory), "--store", "postgres", "--replicas", "2",
         "--provinces", ",".join(PROVINCES), "--base-port", str(replica_base_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    shorten_leases(directory)
    log_path = reachable / "up.log"
    log = log_path.open("w")
    up = subprocess.Popen(
        [*YRD, "mesh", "up", str(directory), "--officer-delay", "0.1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: up_record(up, directory, log_path), "mesh.json", UP_WITHIN)
        yield directory, up, log_path
    finally:
        stop_up(up)
        log.close()


def test_replicas_killed_under_load_lose_and_duplicate_nothing(
    mesh: tuple[Path, subprocess.Popen[bytes], Path],
) -> None:
    """The sender-lease holder of each province SIGKILLed while ``yrd load`` submits a
    steady stream: the load sends what met a dead replica to the other and exits 0 with
    every case handed off and concluded; each province's inbox and evidence
    hold each received message once, every sent message is delivered with its receipt in
    the sender's evidence; ``yrd audit verify`` passes on each database; each survivor
    logged and counted the takeover, its delay at most a lease and an idle look."""
    started = time.monotonic()
    directory, up, up_log = mesh
    written = record(directory)
    assert written is not None
    replicas = {
        n["province"]: [
            Replica(n["province"], i, r["pid"], r["http"])
            for i, r in enumerate(n["replicas"], start=1)
        ]
        for n in written["nodes"]
    }
    urls = {p: store_url(directory, p) for p in PROVINCES}
    load = subprocess.Popen(
        [*YRD, "load", "--dir", str(directory), "--cases", str(CASES), "--concurrency", "4",
         "--spread", str(SPREAD),
         "--wait", "90", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # Under way: cases made at both accepting nodes and handed on.
        wait_for(
            lambda: (
                all(
                    query(urls[p], "SELECT count(*) FROM cases WHERE role = 'accepting'")[0][0] >= 6
                    for p in PROVINCES
                )
                or load.poll() is not None
            ),
            "the load under way",
            120,
        )
        assert load.poll() is None, "the load ended before a replica was killed"
        peer = dict(zip(PROVINCES, reversed(PROVINCES), strict=True))
        killed = {p: sender_lease_holder(directory, p, peer[p], replicas[p]) for p in PROVINCES}
        survivor = {p: next(r for r in replicas[p] if r.pid != killed[p].pid) for p in PROVINCES}
        owners = {p: killed[p].owner for p in PROVINCES}
        before = {p: len(takeovers_logged(directory, survivor[p])) for p in PROVINCES}

        os.kill(up.pid, signal.SIGSTOP)  # the supervisor would start them again at once
        try:
            killed_at = time.time()
            for replica in killed.values():
                os.kill(replica.pid, signal.SIGKILL)
            wait_for(lambda: not any(process_alive(r.pid) for r in killed.values()), "killed", 10)

            def taken_over() -> dict[str, dict[str, Any]] | None:
                """Each province's survivor's takeover of the dead replica's sender lease."""
                found = {
                    p: t
                    for p in PROVINCES
                    for t in takeovers_logged(directory, survivor[p])[before[p] :]
                    if t["lease"] == outbox_lease(peer[p]) and t["previous"] == owners[p]
                }
                return found if len(found) == len(PROVINCES) else None

            taken = wait_for(taken_over, "the leases taken over", LEASE_SECONDS + IDLE_TICK + SLACK)
        finally:
            os.kill(up.pid, signal.SIGCONT)
        out, err = load.communicate(timeout=240)
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()

    for province, takeover in taken.items():
        at = datetime.fromisoformat(takeover["ts"].replace("Z", "+00:00")).timestamp()
        print(
            f"{province}: {takeover['lease']} taken over by replica {survivor[province].number} "
            f"from replica {killed[province].number} {at - killed_at:.2f} s after the kill; "
            f"delay since the last renewal {takeover['delay_seconds']:.2f} s, free for "
            f"{takeover['free_seconds']:.2f} s (lease {LEASE_SECONDS} s)"
        )
        assert takeover["cause"] == "lapsed" and takeover["level"] == "warning"
        assert LEASE_SECONDS <= takeover["delay_seconds"] <= LEASE_SECONDS + IDLE_TICK + SLACK
        assert at - killed_at <= LEASE_SECONDS + IDLE_TICK + SLACK
        code, metrics = call(f"http://{survivor[province].http}/metrics")
        assert code == 200
        labels = {"lease": outbox_lease(peer[province]), "cause": "lapsed"}
        assert (metric(metrics, "yrd_lease_takeovers_total", **labels) or 0) >= 1, metrics
        delays = metric(metrics, "yrd_lease_takeover_delay_seconds_sum", **labels) or 0
        assert delays >= takeover["delay_seconds"] - 0.01

    assert load.returncode == 0, out + err[-3000:]
    report = json.loads(out)
    total = report["total"]
    assert (report["planned"], report["accepted"], report["unanswered"]) == (CASES, CASES, 0)
    assert report["failovers"] >= 1  # a request at a dead replica, answered at the other
    assert (total["cases"], total["handed_off"], total["concluded"]) == (CASES, CASES, CASES)
    print(
        f"load: {report['accepted']} cases in {report['submit_seconds']:.1f} s "
        f"({report['replayed']} found again after a lost answer, {report['failovers']} "
        "answered at another replica), hand-off p95 "
        f"{total['handoff_p95_seconds']} s, end-to-end p95 {total['end_to_end_p95_seconds']} s"
    )

    # Every outbox drained (what the dead replicas had in flight was sent again).
    wait_for(
        lambda: all(
            query(urls[p], "SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0] == 0
            for p in PROVINCES
        ),
        "every outbox drained",
        60,
    )
    for province in PROVINCES:
        stop = subprocess.run(
            [*YRD, "mesh", "stop", "--dir", str(directory), province],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert stop.returncode == 0, stop.stdout + stop.stderr
    for province in PROVINCES:
        url = urls[province]
        assert query(url, "SELECT count(*) FROM outbox WHERE state <> 'delivered'") == [(0,)]
        assert query(url, "SELECT count(*) FROM outbox WHERE reply IS NULL") == [(0,)]
        assert query(url, "SELECT count(*) FROM outbox")[0][0] >= CASES
        # Received once: once in the inbox (its key), once in the evidence.
        received = query(
            url,
            "SELECT message_id, count(*) FROM audit WHERE direction = 'received' "
            "AND kind = 'envelope' GROUP BY message_id",
        )
        assert received and all(n == 1 for _, n in received), received
        once = dict(received)
        inbox = [m for (m,) in query(url, "SELECT message_id FROM inbox")]
        assert len(inbox) == len(set(inbox)) and all(once.get(m) == 1 for m in inbox)
        # Sent with its receipt: each delivered row's envelope and receipt, once each.
        sent = dict(
            query(
                url,
                "SELECT o.message_id, count(a.seq) FROM outbox o LEFT JOIN audit a "
                "ON a.message_id = o.message_id AND a.direction = 'received' "
                "AND a.kind = 'reply' GROUP BY o.message_id",
            )
        )
        assert set(sent.values()) == {1}, {m: n for m, n in sent.items() if n != 1}
        verify = subprocess.run(
            [*YRD, "audit", "verify", "--store", url, "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert json.loads(verify.stdout)["ok"] is True
    said = up_log.read_text()
    for replica in killed.values():
        assert f"(pid {replica.pid}) exited with signal SIGKILL" in said, said[-3000:]
    print(f"wall time {time.monotonic() - started:.1f} s")

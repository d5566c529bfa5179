"""The benchmark still runs against the current code (figures are not judged here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nodes import BUDGET
from tests.postgres import missing_server_is_a_skip, server_bindir

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "exchange.py"


EXCHANGE_PATHS = (
    "echo-unary",
    "echo-stream",
    "echo-lockstep",
    "echo-signed",
    "echo-durable",
    "node-unary",
    "node-stream",
    "open-loop",
    "backlog",
)
ROW_FIGURES = ("msg_per_s", "p50_ms", "p99_ms", "ratio", "client_cpu_us", "server_cpu_us")


def test_quick_benchmark_runs_every_path_and_delivers_everything() -> None:
    """bench/exchange.py --quick --json prints one JSON object whose rows name every path
    with positive figures, and the receiver holds every message it was sent, so API changes
    cannot silently break the benchmark."""
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {row["path"]: row for row in json.loads(result.stdout)["rows"]}
    assert list(rows) == list(EXCHANGE_PATHS)
    for path, row in rows.items():
        for figure in ROW_FIGURES:
            value = row[figure]
            # CPU time is read in clock ticks: a side that did almost nothing may read 0.
            floor = 0 if figure.endswith("_cpu_us") else 1e-9
            assert isinstance(value, int | float) and value >= floor, (path, figure, value)
    assert rows["open-loop"]["p999_ms"] > 0
    backlog = rows["backlog"]
    assert backlog["drain_s"] > 0
    assert backlog["sender_rss_mb"] > 0 and backlog["receiver_rss_mb"] > 0
    # The human report goes to stderr with --json.
    inbox = re.search(r"receiver inbox: (\d+) messages \(expected (\d+)\)", result.stderr)
    assert inbox is not None and inbox.group(1) == inbox.group(2)


def test_quick_benchmark_on_postgres_measures_node_stream_on_both_stores() -> None:
    """bench/exchange.py --store postgres runs node-stream and backlog on SQLite, again with
    both nodes on a private PostgreSQL server, and the backlog once more with the receiver as
    two replicas (a replica mesh's own server); each receiver holds every message it was
    sent."""
    missing_server_is_a_skip(server_bindir)
    quick = ["--quick", "--json", "--paths", "node-stream,backlog", "--store", "postgres"]
    quick += ["--backlog-messages", "300"]
    result = subprocess.run(
        [sys.executable, str(BENCH), *quick],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {row["path"]: row for row in json.loads(result.stdout)["rows"]}
    assert list(rows) == ["node-stream", "node-stream-pg", "backlog", "backlog-pg", "backlog-pg-2"]
    assert all(row["msg_per_s"] > 0 for row in rows.values())
    assert all(rows[key]["drain_s"] > 0 for key in ("backlog", "backlog-pg", "backlog-pg-2"))
    counts = re.findall(r"receiver inbox: (\d+) messages \(expected (\d+)\)", result.stderr)
    assert len(counts) == 2 and all(held == expected for held, expected in counts)


def test_quick_case_benchmark_prints_both_figures() -> None:
    """bench/cases.py --quick measures case hand-off and lifecycle against probes."""
    result = subprocess.run(
        [sys.executable, str(BENCH.with_name("cases.py")), "--quick"],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for row in ("hand-off (cases/s)", "lifecycle p50 (ms)", "lifecycle p95 (ms)"):
        assert re.search(rf"^{re.escape(row)}\s+[\d.]+\s+[\d.]+\s+[\d.]+×", result.stdout, re.M)


def test_quick_certificate_benchmark_prints_every_row() -> None:
    """bench/certificates.py --quick --json measures the bare aiohttp and Ed25519 ceilings,
    online verification (cache cold and warm, and in bulk), offline presentations over HTTP
    and in-process, and the token size; every cold question reached the issuer (one usage
    record each) and every warm one was served cached."""
    result = subprocess.run(
        [sys.executable, str(BENCH.with_name("certificates.py")), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    rows = {row["path"]: row for row in report["rows"]}
    assert set(rows) >= {
        "bare-aiohttp",
        "bare-ed25519",
        "online-cold",
        "online-warm",
        "offline-http",
        "offline-inprocess",
        "bulk-cold-1",
        "bulk-cold-16",
        "bulk-cold-128",
    }
    for row in rows.values():
        assert row["per_s"] > 0 and abs(row["ratio"] - row["per_s"] / row["ceiling"]) < 1e-3
    assert rows["online-cold"]["ceiling"] == rows["bare-aiohttp"]["per_s"]
    assert rows["offline-inprocess"]["ceiling"] == rows["bare-ed25519"]["per_s"]
    notes = report["notes"]
    assert notes["cold_cached"] == 0 and notes["warm_cached"] == notes["warm_count"]
    assert notes["usage_records_added"] == notes["cold_count"] > 0


FLOOD_ROWS = (
    "largest heartbeat gap (s)",
    "samples with a link down",
    "samples a /v1/status did not answer",
    "shanghai RSS before (MB)",
    "shanghai RSS peak (MB)",
    "shanghai node.log growth (bytes)",
    "envelopes the attacker wrote",
    "yrd_messages_refused_total (+)",
    "anhui suspended (times)",
    "yrd_peer_door_refusals_total (+)",
)
DISK_ROWS = (
    "submission p50 (ms), after vs before",
    "hand-off p50 (ms), after vs before",
    "503 answers",
    "freed → first 201 (ms) vs submission p50",
    "freed → /readyz 200 (ms)",
    "freed → all cases so far delivered (ms)",
)
PLATFORM_ROWS = (
    "platform back → case (s) vs entry → case",
    "platform back → /readyz tasks ok (s)",
    "readyz named a task",
    "yrd_task_restarts_total",
    "hostile answers the proxy gave",
)


@pytest.mark.timeout(5 * BUDGET)
def test_quick_resilience_benchmark_prints_every_figure() -> None:
    """bench/resilience.py --quick floods a node, feeds it a hostile platform and, as root,
    fills its disk, and prints every figure with its baseline; the exit status says that no
    process died and no case was lost on the way."""
    root = os.geteuid() == 0
    parts = "flood,platform,disk" if root else "flood,platform"
    result = subprocess.run(
        [sys.executable, str(BENCH.with_name("resilience.py")), "--quick", "--parts", parts],
        capture_output=True,
        text=True,
        timeout=4.5 * BUDGET,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Where even root may not mount a tmpfs, the disk part says why it was skipped.
    disk = root and "skipped: " not in result.stdout
    for row in (*FLOOD_ROWS, *PLATFORM_ROWS, *(DISK_ROWS if disk else ())):
        assert re.search(rf"^{re.escape(row)}\s+\S+\s+\S+\s+\S+$", result.stdout, re.M), row
    if disk:
        cases = re.search(r"cases: (\d+) submitted .*, (\d+) on both nodes", result.stdout)
        assert cases is not None and cases.group(1) == cases.group(2)


def test_quick_benchmark_compares_sm2_with_ed25519() -> None:
    """bench/exchange.py --suite sm2 runs node-stream with Ed25519 signers, then with SM2
    signers, each delivering everything, and prints the ratio of the two rates."""
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--json",
            "--suite",
            "sm2",
            "--paths",
            "node-stream",
        ],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads(result.stdout)["rows"]
    assert [(row["path"], row["suite"]) for row in rows] == [
        ("node-stream", "ed25519"),
        ("node-stream", "sm2"),
    ]
    assert all(row["msg_per_s"] > 0 for row in rows)
    assert "signature suite: sm2 (both nodes)" in result.stderr
    assert re.search(r"^node-stream sm2 ÷ ed25519: [\d.]+×", result.stderr, re.M)
    inboxes = re.findall(r"receiver inbox: (\d+) messages \(expected (\d+)\)", result.stderr)
    assert len(inboxes) == 2 and all(got == expected for got, expected in inboxes)

"""The benchmark still runs against the current code (figures are not judged here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "exchange.py"


def test_quick_benchmark_runs_every_path_and_delivers_everything() -> None:
    """bench/exchange.py --quick measures every path (floors included) and the receiver holds
    every message it was sent, so API changes cannot silently break the benchmark."""
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    paths = ("echo unary", "echo stream", "floor: echo", "floor: \\+ durable", "node unary")
    for path in (*paths, "node stream"):
        assert re.search(rf"^{path}\b.*\d+\s+[\d.]+×?", result.stdout, re.M), path
    inbox = re.search(r"receiver inbox: (\d+) messages \(expected (\d+)\)", result.stdout)
    assert inbox is not None and inbox.group(1) == inbox.group(2)


def test_quick_case_benchmark_prints_both_figures() -> None:
    """bench/cases.py --quick measures case hand-off and lifecycle against probes."""
    result = subprocess.run(
        [sys.executable, str(BENCH.with_name("cases.py")), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for row in ("hand-off (cases/s)", "lifecycle p50 (ms)", "lifecycle p95 (ms)"):
        assert re.search(rf"^{re.escape(row)}\s+[\d.]+\s+[\d.]+\s+[\d.]+×", result.stdout, re.M)


def test_quick_certificate_benchmark_prints_every_row() -> None:
    """bench/certificates.py --quick measures online verification (cache cold and warm),
    offline presentations over HTTP and in-process, and the token size against their
    ceilings; every cold request reached the issuer and every warm one was served cached."""
    result = subprocess.run(
        [sys.executable, str(BENCH.with_name("certificates.py")), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = (
        "bare Ed25519 verify (/s)",
        "online verify, cache cold (/s)",
        "online verify, cache warm (/s)",
        "offline presentation, HTTP (/s)",
        "offline presentation, in-process (/s)",
        "offline, route's work in-process (/s)",
        "presentation token (characters)",
    )
    for row in rows:
        assert re.search(rf"^{re.escape(row)}\s+[\d.]+\s+[\d.]+\s+[\d.]+×", result.stdout, re.M)
    cache = re.search(r"cache: cold (\d+) of \d+ .*, warm (\d+) of (\d+)", result.stdout)
    assert cache is not None and cache.group(1) == "0" and cache.group(2) == cache.group(3)
    usage = re.search(r"usage records added: (\d+) \(expected (\d+)\)", result.stdout)
    assert usage is not None and usage.group(1) == usage.group(2)

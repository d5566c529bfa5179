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
    """bench/exchange.py --quick measures all five paths and the receiver holds every
    message it was sent, so API changes cannot silently break the benchmark."""
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for path in ("echo unary", "echo stream", "node unary", "node stream"):
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

"""The suite's own rules (``tests/conftest.py``) hold: Hypothesis has no per-example
deadline, every test has a timeout derived from the one budget, and a test that starts a
process without the ``slow`` mark fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.conftest import FAST_TIMEOUT, SLOW_TIMEOUT
from tests.nodes import BUDGET

REPO = Path(__file__).resolve().parents[1]
INNER = """
import asyncio
import subprocess
import sys

import pytest


def test_quiet() -> None:
    pass


def test_unmarked_run() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


async def test_unmarked_asyncio_subprocess() -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()


@pytest.fixture
def child() -> object:
    return subprocess.Popen([sys.executable, "-c", "pass"]).wait()


def test_unmarked_through_a_fixture(child: object) -> None:
    pass


@pytest.mark.slow
def test_marked(child: object) -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)
"""


def test_hypothesis_has_no_deadline() -> None:
    """The loaded profile lets an example take as long as a loaded machine makes it."""
    assert settings.default.deadline is None


def test_timeouts_come_from_the_budget(request: pytest.FixtureRequest) -> None:
    """This test got the fast timeout the conftest derives from BUDGET."""
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and marker.args == (FAST_TIMEOUT,)
    assert FAST_TIMEOUT == 2 * BUDGET and SLOW_TIMEOUT == 4 * BUDGET


@pytest.mark.slow
def test_a_test_that_starts_a_process_must_be_marked_slow(tmp_path: Path) -> None:
    """Run with the conftest as a plugin, a test that starts a process (by subprocess,
    asyncio or a fixture) fails naming the mark unless it carries it; one that starts none
    passes."""
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-o", "markers=slow", "-o", "asyncio_mode=auto", "-rA", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BUDGET, check=False,
    )  # fmt: skip
    out = result.stdout
    outcomes = {
        line.split()[1].rsplit("::", 1)[-1]: line.split()[0]
        for line in out.splitlines()
        if line.startswith(("PASSED ", "FAILED ", "ERROR "))
    }
    assert outcomes == {
        "test_quiet": "PASSED",
        "test_unmarked_run": "FAILED",
        "test_unmarked_asyncio_subprocess": "FAILED",
        "test_unmarked_through_a_fixture": "FAILED",
        "test_marked": "PASSED",
    }, out + result.stderr
    assert out.count("starts processes but is not marked pytest.mark.slow") >= 3, out

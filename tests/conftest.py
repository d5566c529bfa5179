"""What every test shares: budgets that load on a shared machine cannot break, and the rule
that a test which starts a process is marked slow.

- Hypothesis runs without its per-example deadline (200 ms by default): two cores shared
  with other test runs make a correct example slow now and then, and speed belongs in
  ``bench/``. The ``ci`` profile (loaded when ``CI`` is set) also draws the same examples
  every run and keeps no example database, so a failure in CI is one anyone can replay;
  ``HYPOTHESIS_PROFILE`` picks a profile by name.
- Every test gets a per-test timeout derived from ``tests.nodes.BUDGET``: twice the budget,
  four times for a ``slow`` one (real processes), unless it carries its own
  ``pytest.mark.timeout``.
- A test that starts a process (``subprocess``, ``asyncio``'s subprocesses, ``os.fork``,
  ``os.posix_spawn``, ``os.exec*``) fails unless it is marked ``slow``: the audit hook below
  sees every start, in the test's set-up, call or tear-down.
- The root logger's handlers and level are put back after every test: ``yrd node run``
  called in-process points logging at the ``sys.stderr`` of that moment (a test's capture,
  closed when the test ends), and a later test in the same process would otherwise find
  "--- Logging error ---" in its own captured stderr (``make test`` runs the files in two
  processes, so which test follows which is not fixed).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Generator, Iterator
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, settings

from tests.nodes import BUDGET

pytest_plugins = ("tests.postgres",)

_UNHURRIED: Final[dict[str, Any]] = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow],
}
settings.register_profile("dev", **_UNHURRIED)
settings.register_profile("ci", derandomize=True, database=None, **_UNHURRIED)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

FAST_TIMEOUT: Final = 2 * BUDGET
"""Seconds a test that starts no process may run."""
SLOW_TIMEOUT: Final = 4 * BUDGET
"""Seconds a ``slow`` test (real processes: start, work, stop) may run."""

_PROCESS_EVENTS: Final = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.system"}
)
_started: list[str] = []
"""What the running test has started, by audit event and command, since its set-up began."""


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in _PROCESS_EVENTS:
        _started.append(f"{event}: {args[:2]!r}"[:300])


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            slow = item.get_closest_marker("slow") is not None
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT if slow else FAST_TIMEOUT))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _started.clear()
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield
    _refuse_unmarked_processes(item)
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    result = yield
    _refuse_unmarked_processes(item)
    return result


def _refuse_unmarked_processes(item: pytest.Item) -> None:
    if _started and item.get_closest_marker("slow") is None:
        started = "\n  ".join(_started)
        _started.clear()
        pytest.fail(
            f"{item.nodeid} starts processes but is not marked pytest.mark.slow:\n  {started}",
            pytrace=False,
        )

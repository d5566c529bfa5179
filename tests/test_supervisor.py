"""The supervisor: a failed task is logged, counted and restarted; nothing ends one for good."""

from __future__ import annotations

import asyncio
import logging

import pytest

from node.runtime.supervisor import Supervisor
from tests.nodes import BUDGET, eventually


def quick(**changes: float) -> tuple[Supervisor, list[str]]:
    """A supervisor with short back-offs, and the list of tasks it restarted, in order."""
    settings = {"initial_backoff": 0.01, "max_backoff": 0.05, "healthy_after": 0.05}
    settings.update(changes)
    restarted: list[str] = []
    return Supervisor(on_restart=restarted.append, **settings), restarted


async def test_failing_task_is_restarted_counted_and_logged_once_per_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task that raises starts again after its back-off; each failure is counted and
    logged once with the task's name and the exception's type."""
    supervisor, restarted = quick()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise ValueError("bad platform reply")
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="node.runtime.supervisor"):
        supervisor.start("platform-polls", flaky)
        await eventually(lambda: runs == 4)
    assert restarted == ["platform-polls"] * 3
    failures = [r for r in caplog.records if r.getMessage().startswith("task failed")]
    assert len(failures) == 3
    seen = {(getattr(r, "task", None), getattr(r, "error_type", None)) for r in failures}
    assert seen == {("platform-polls", "ValueError")}
    await supervisor.stop()


async def test_problems_name_a_task_in_back_off_and_clear_once_it_runs_well() -> None:
    """Readiness sees the task while it waits out its back-off, and stops seeing it once
    the restarted task has run for a while."""
    supervisor, _ = quick(initial_backoff=0.3, max_backoff=0.3, healthy_after=0.1)
    failed = asyncio.Event()
    fail = True

    async def work() -> None:
        if fail:
            failed.set()
            raise OSError("disk full")
        await asyncio.Event().wait()

    supervisor.start("deliver-jiangsu", work)
    await failed.wait()
    await asyncio.sleep(0)
    assert len(supervisor.problems()) == 1
    assert "deliver-jiangsu" in supervisor.problems()[0]
    assert "OSError" in supervisor.problems()[0]
    fail = False
    await eventually(lambda: supervisor.problems() == [])
    await supervisor.stop()


async def test_stray_cancellation_inside_a_task_is_a_failure() -> None:
    """A CancelledError that escapes a task nobody cancelled restarts it, like any error."""
    supervisor, _ = quick()
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise asyncio.CancelledError
        await asyncio.Event().wait()

    task = supervisor.start("heartbeat-anhui", work)
    await eventually(lambda: runs == 2)
    assert not task.done()
    await supervisor.stop()
    assert task.cancelled()


async def test_cancel_ends_a_task_without_restart() -> None:
    """Cancelling on purpose (a peer that left) ends the task; it is not restarted."""
    supervisor, restarted = quick()
    started = 0

    async def work() -> None:
        nonlocal started
        started += 1
        await asyncio.Event().wait()

    task = supervisor.start("deliver-zhejiang", work)
    await eventually(lambda: started == 1)
    await supervisor.cancel([task])
    assert task.cancelled()
    assert started == 1
    assert restarted == []
    assert supervisor.problems() == []


async def test_a_task_that_returns_is_done() -> None:
    """A one-shot task (retiring a channel) ends when its work is done."""
    supervisor, restarted = quick()
    done = asyncio.Event()

    async def once() -> None:
        done.set()

    task = supervisor.start("retire-channel-anhui", once)
    await task
    assert done.is_set()
    assert restarted == []


async def test_wake_ends_a_long_back_off() -> None:
    """When the cause has cleared, ``wake`` restarts a task at once, not after its back-off."""
    # A back-off far beyond the wait below: only ``wake`` can restart the task in time.
    supervisor, _ = quick(initial_backoff=10 * BUDGET, max_backoff=10 * BUDGET)
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("store unavailable")
        await asyncio.Event().wait()

    supervisor.start("certificate-checks", work)
    await eventually(lambda: supervisor.problems() != [])
    supervisor.wake()
    await eventually(lambda: runs == 2)
    await supervisor.stop()


def test_back_off_grows_and_is_capped() -> None:
    """The delay doubles with each failure in a row, jittered, up to the ceiling."""
    supervisor = Supervisor(initial_backoff=1.0, max_backoff=8.0)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0), (100, 8.0)]:
        delays = [supervisor._backoff(failures) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (failures, delays)

"""The wait-drain-back-off loop the delivery worker and the platform link share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from node.delivery.retry import DrainLoop, Sleep, wait_until_set
from tests.nodes import BUDGET, eventually


class Flaky(Exception):
    pass


class Drains:
    """A drain that fails ``failures`` times with Flaky, then succeeds; counts its calls."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.calls = 0
        self.failures = failures
        self.error = error
        self.drained = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.failures:
            self.failures -= 1
            raise Flaky(f"attempt {self.calls} failed")
        self.drained.set()


@asynccontextmanager
async def running(loop: DrainLoop) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(loop.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def build(
    drain: Drains, *, initial: float = 0.01, maximum: float = 0.05, sleep: Sleep | None = None
) -> tuple[DrainLoop, list[tuple[str, float]]]:
    """A loop over ``drain`` retrying Flaky, and the list of back-offs it announced."""
    told: list[tuple[str, float]] = []
    loop = DrainLoop(
        drain,
        retry_on=Flaky,
        initial=initial,
        maximum=maximum,
        on_backoff=lambda error, interval: told.append((str(error), interval)),
        sleep=sleep,
    )
    return loop, told


async def test_drains_at_start_and_again_when_notified(monkeypatch: pytest.MonkeyPatch) -> None:
    # An idle tick far beyond the waits here: only start-up and notify make it drain.
    monkeypatch.setattr("node.delivery.retry.IDLE_TICK", 10 * BUDGET)
    drain = Drains()
    loop, told = build(drain)
    async with running(loop):
        await eventually(lambda: drain.calls == 1)
        drain.drained.clear()
        loop.notify()
        assert await wait_until_set(drain.drained, BUDGET)
    assert drain.calls == 2
    assert told == []


async def test_backs_off_through_the_injected_sleep_until_the_drain_succeeds() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    drain = Drains(failures=3)
    loop, told = build(drain, sleep=sleep)
    async with running(loop):
        assert await wait_until_set(drain.drained, BUDGET)
    assert drain.calls == 4
    assert [error for error, _ in told] == [f"attempt {n} failed" for n in (1, 2, 3)]
    assert slept == [interval for _, interval in told]
    assert all(0 < seconds <= 0.05 + 0.01 for seconds in slept)


async def test_kick_cuts_a_long_back_off_short() -> None:
    drain = Drains(failures=1)
    loop, told = build(drain, initial=3600.0, maximum=3600.0)
    async with running(loop):
        await eventually(lambda: len(told) == 1)
        assert told[0][1] >= 3600.0
        loop.kick()
        assert await wait_until_set(drain.drained, BUDGET)
    assert drain.calls == 2


async def test_an_error_it_does_not_retry_ends_the_loop_for_the_supervisor() -> None:
    drain = Drains(error=ValueError("not a delivery problem"))
    loop, told = build(drain)
    with pytest.raises(ValueError, match="not a delivery problem"):
        await asyncio.wait_for(loop.run(), BUDGET)
    assert drain.calls == 1
    assert told == []


async def test_wait_until_set_says_whether_the_event_came_in_time() -> None:
    event = asyncio.Event()
    assert await wait_until_set(event, 0.01) is False
    event.set()
    assert await wait_until_set(event, 0.01) is True

"""Every long-lived task of a node runs here, and nothing stops one for good.

Rules kept here:
- A task is started from a factory (a function that makes a fresh coroutine), so it can be
  started again. Delivery workers, heartbeats, platform polls and deliveries, certificate
  checks, revocation lists, the store watch, the dashboard's history sampler: all of them
  go through ``Supervisor.start``.
- An exception that escapes a task is logged once, with the task's name and the exception's
  type, counted (``yrd_task_restarts_total{task}``), and the task starts again after a
  capped, jittered, exponential back-off. The back-off grows while the task keeps failing
  and starts from the bottom again once the task has run ``STABLE_AFTER`` seconds.
- While a task waits out its back-off, and until it has run ``HEALTHY_AFTER`` seconds
  again, ``problems()`` names it; readiness shows that and recovers by itself.
- ``wake()`` cuts every back-off short: the node calls it when the cause of most failures
  has cleared (the store takes writes again), so recovery does not wait out a long back-off.
- A task that returns has finished its work (a one-shot job such as retiring a channel).
  Cancellation from outside (``cancel``, ``stop``) ends a task; a ``CancelledError`` that
  escapes a task nobody cancelled is a failure like any other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from node.delivery.retry import wait_until_set

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
Restarted = Callable[[str], None]
"""Told a task's name when it starts (``on_start``) or fails and will restart (``on_restart``)."""

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 15.0
"""Seconds; a task failing for a long while is retried at least this often."""
STABLE_AFTER = 60.0
"""A task that ran this long before failing starts its back-off from the bottom again."""
HEALTHY_AFTER = 2.0
"""Seconds a restarted task must run before readiness stops naming it."""


@dataclass
class _Supervised:
    name: str
    factory: TaskFactory
    restarts: int = 0
    problem: str | None = None
    """Why readiness names this task now, or None."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    """Runs a node's long-lived tasks and restarts them when they fail."""

    def __init__(
        self,
        *,
        on_start: Restarted | None = None,
        on_restart: Restarted | None = None,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        healthy_after: float = HEALTHY_AFTER,
    ) -> None:
        self._on_start = on_start
        self._on_restart = on_restart
        self._initial = initial_backoff
        self._max = max_backoff
        self._healthy_after = healthy_after
        self._tasks: dict[asyncio.Task[None], _Supervised] = {}
        self._stopping = False

    def start(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        """Run ``factory()`` as task ``name`` until it returns or is cancelled."""
        entry = _Supervised(name, factory)
        if self._on_start is not None:
            self._on_start(name)
        task = asyncio.create_task(self._run(entry), name=name)
        self._tasks[task] = entry
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _run(self, entry: _Supervised) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await entry.factory()
                return
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if self._stopping or (current is not None and current.cancelling()):
                    raise
                error: BaseException = asyncio.CancelledError("cancelled from inside")
            except Exception as exc:
                error = exc
            if time.monotonic() - started >= STABLE_AFTER:
                failures = 0
            failures += 1
            entry.restarts += 1
            delay = self._backoff(failures)
            entry.problem = (
                f"{entry.name} failed ({type(error).__name__}); restart {entry.restarts} "
                f"in {delay:.1f} s"
            )
            log.error(
                "task failed; restarting after back-off",
                extra={
                    "task": entry.name,
                    "error_type": type(error).__name__,
                    "error": str(error)[:300],
                    "retry_in": round(delay, 3),
                    "restarts": entry.restarts,
                },
            )
            if self._on_restart is not None:
                self._on_restart(entry.name)
            entry.wake.clear()
            await wait_until_set(entry.wake, delay)
            entry.problem = f"{entry.name} restarted after {type(error).__name__}; settling"
            asyncio.get_running_loop().call_later(
                self._healthy_after, self._settled, entry, entry.restarts
            )

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._max, self._initial * 2 ** min(failures - 1, 30))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    def _settled(self, entry: _Supervised, restarts: int) -> None:
        if entry.restarts == restarts:
            entry.problem = None

    def wake(self) -> None:
        """The cause of failures may have cleared: end every back-off now."""
        for entry in self._tasks.values():
            entry.wake.set()

    def problems(self) -> list[str]:
        """Tasks in back-off or just restarted, each with why; empty when all run well."""
        return sorted(e.problem for e in self._tasks.values() if e.problem is not None)

    async def cancel(self, tasks: list[asyncio.Task[None]]) -> None:
        """End ``tasks`` on purpose (a peer that left the federation)."""
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        self._stopping = True
        await self.cancel(list(self._tasks))

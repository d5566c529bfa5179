"""The one wait-drain-back-off loop: a peer's delivery worker and the platform link share it.

A ``DrainLoop`` sleeps until it is told there is work (``notify``) or an idle tick passes,
then calls ``drain`` until it returns. While ``drain`` raises the loop's retryable error the
loop backs off with jittered exponential waits (tenacity), telling ``on_backoff`` why and for
how long; ``kick`` ends the current wait early (the other side answers again). The sleep is
injectable, so tests step through back-offs without waiting for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

IDLE_TICK = 5.0
"""How often an idle loop drains anyway, for work whose time has come without a notify
(rows to park past their age limit, items a missed notify left behind)."""

Sleep = Callable[[float], Awaitable[None]]
Drain = Callable[[], Awaitable[None]]
BackingOff = Callable[[BaseException | None, float], None]
"""Told the error that made a drain fail and the seconds until the next attempt."""


async def wait_until_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; True when it was set in time."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class DrainLoop:
    def __init__(
        self,
        drain: Drain,
        *,
        retry_on: type[Exception],
        initial: float,
        maximum: float,
        on_backoff: BackingOff,
        sleep: Sleep | None = None,
    ) -> None:
        self._drain = drain
        self._work = asyncio.Event()
        self._kick = asyncio.Event()
        self._work.set()  # catch up on whatever the store holds from before
        self._retrying = AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
            retry=retry_if_exception_type(retry_on),
            sleep=sleep or self._interruptible_sleep,
            before_sleep=self._backing_off(on_backoff),
            reraise=True,
        )

    def notify(self) -> None:
        """There is new work: drain at once (or right after the current drain)."""
        self._work.set()

    def kick(self) -> None:
        """End the current back-off now: the cause of the failures may have cleared."""
        self._kick.set()

    async def run(self) -> None:
        while True:
            await wait_until_set(self._work, IDLE_TICK)
            self._work.clear()
            async for attempt in self._retrying:
                with attempt:
                    await self._drain()

    async def _interruptible_sleep(self, seconds: float) -> None:
        self._kick.clear()
        await wait_until_set(self._kick, seconds)

    @staticmethod
    def _backing_off(tell: BackingOff) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            tell(error, state.next_action.sleep if state.next_action else 0.0)

        return before_sleep

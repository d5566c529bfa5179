"""The node's wall clock: the machine's time, or a test clock that a mesh's tests move on.

A test clock is the machine's time plus the seconds written in a file (``test_clock_file``
in node.toml). Every node of a test mesh names the same file, so their clocks move together
and they still accept each other's timestamps; the file is read again whenever it changes,
so a test can bring a running mesh's case deadlines due without waiting days for them. A
real deployment has no such key and uses the machine's time.

Rules kept here: a missing file means no shift, and a file that does not hold a number
(caught half-written, say) leaves the shift as it was, so the clock never fails.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from node.runtime.config import NodeConfig

Clock = Callable[[], float]


class ShiftedClock:
    """``now()`` plus the seconds in ``path`` (0 while there is no such file)."""

    def __init__(self, path: Path, *, now: Clock = time.time) -> None:
        self._path = path
        self._now = now
        self._seen: tuple[int, int, int] | None = None
        self._shift = 0.0

    def __call__(self) -> float:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            self._seen, self._shift = None, 0.0
            return self._now()
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            try:
                shift = float(self._path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return self._now() + self._shift  # read again on the next call
            if math.isfinite(shift):
                self._seen, self._shift = seen, shift
        return self._now() + self._shift


def node_clock(config: NodeConfig) -> Clock:
    """The clock a node of ``config`` runs on: a test clock only when the file names one."""
    if config.test_clock_file is None:
        return time.time
    return ShiftedClock(config.test_clock_file)

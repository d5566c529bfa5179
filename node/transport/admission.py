"""Fair sharing of the federation port between peers: caps, and a circuit per sender.

Rules kept here:
- Each peer (by its verified TLS identity) may hold at most ``max_streams`` open streams and
  ``max_calls`` unary calls in flight at once; one more is refused with RESOURCE_EXHAUSTED
  before any of its bytes are read. A stream answers at most ``stream_backlog`` messages
  ahead of what its peer has read back: past that the stream stops reading (gRPC flow
  control then holds the sender), so a peer that never reads costs bounded memory.
- A peer that keeps sending what is refused for good (malformed, badly signed, oversize,
  not allowed: a permanent refusal that is not a business decision) ``refusals_to_suspend``
  times within ``refusal_window`` seconds is suspended for ``suspend_seconds``: its open
  streams end after the message at hand and its new streams and calls are refused, with
  RESOURCE_EXHAUSTED. Transient refusals (clock skew, an unknown key during a rotation,
  a store that is full) never count: they are the receiver's state, not the sender's fault.
- Refusals are logged at most once per peer and reason per ``LOG_INTERVAL`` with the count
  of those not logged; the caller's metrics count every one.
- The clock is injected; nothing here does I/O.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from node.protocol.faults import FaultCode

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Refused = Callable[[str, str], None]
"""Called with (peer identity, reason) for each call or stream refused at the door."""

LOG_INTERVAL = 10.0
"""Seconds between two log lines about the same peer and reason."""
ANONYMOUS = "unknown"
"""The key for a caller without a verified identity (cannot happen with mutual TLS)."""


@dataclass(frozen=True)
class PeerLimits:
    """``[peer_limits]`` in node.toml: what one peer may hold of this node's federation port."""

    max_streams: int = 8
    """Open streams per peer; a peer's delivery uses one, a channel change briefly two."""
    max_calls: int = 64
    """Unary calls in flight per peer (heartbeats, certificate questions)."""
    stream_backlog: int = 256
    """Replies a stream holds for its peer before it stops reading more messages."""
    refusals_to_suspend: int = 200
    """Permanent refusals within ``refusal_window`` that suspend a peer."""
    refusal_window: float = 10.0
    suspend_seconds: float = 30.0
    """How long a suspended peer's streams and calls are refused."""


class DoorClosed(Exception):
    """A peer's stream or call is refused at the door; ``reason`` is a stable code."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass
class _PeerState:
    streams: int = 0
    calls: int = 0
    refusals: deque[float] = field(default_factory=deque)
    suspended_until: float = 0.0
    suspensions: int = 0


class RefusalLog:
    """Logs a refusal at most once per (peer, reason) per interval, with a count of the rest."""

    def __init__(self, clock: Clock = time.monotonic, interval: float = LOG_INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._quiet: dict[tuple[str, str], int] = {}

    def warn(self, message: str, *, peer: str, reason: str, **extra: object) -> None:
        key = (peer, reason)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._quiet[key] = self._quiet.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._quiet.pop(key, 0)
        log.warning(
            message,
            extra={"peer": peer, "code": reason, "not_logged_since_last": suppressed, **extra},
        )


class PeerAdmission:
    """The door of the federation port (rules in the module docstring)."""

    def __init__(
        self,
        limits: PeerLimits | None = None,
        *,
        clock: Clock = time.monotonic,
        on_refused: Refused | None = None,
    ) -> None:
        self.limits = limits or PeerLimits()
        self._clock = clock
        self._on_refused = on_refused
        self._peers: dict[str, _PeerState] = {}
        self.log = RefusalLog(clock)

    def _state(self, identity: str | None) -> _PeerState:
        return self._peers.setdefault(identity or ANONYMOUS, _PeerState())

    def _refuse(self, identity: str | None, reason: str, text: str) -> DoorClosed:
        peer = identity or ANONYMOUS
        if self._on_refused is not None:
            self._on_refused(peer, reason)
        self.log.warn("refused at the door", peer=peer, reason=reason, detail=text)
        return DoorClosed(reason, text)

    def _check_suspended(self, identity: str | None, state: _PeerState) -> None:
        remaining = state.suspended_until - self._clock()
        if remaining > 0:
            raise self._refuse(
                identity,
                "peer_suspended",
                f"too many refused messages from this peer; try again in {remaining:.0f} s",
            )

    def stream(self, identity: str | None) -> AbstractContextManager[None]:
        """Hold one of ``identity``'s stream places while the block runs (or DoorClosed)."""
        return self._place(identity, "streams", self.limits.max_streams, "too_many_streams")

    def call(self, identity: str | None) -> AbstractContextManager[None]:
        """Hold one of ``identity``'s unary-call places while the block runs (or DoorClosed)."""
        return self._place(identity, "calls", self.limits.max_calls, "too_many_calls")

    @contextmanager
    def _place(self, identity: str | None, kind: str, limit: int, reason: str) -> Iterator[None]:
        state = self._state(identity)
        self._check_suspended(identity, state)
        if getattr(state, kind) >= limit:
            raise self._refuse(identity, reason, f"at most {limit} {kind} at once per peer")
        setattr(state, kind, getattr(state, kind) + 1)
        try:
            yield
        finally:
            setattr(state, kind, getattr(state, kind) - 1)

    def suspended(self, identity: str | None) -> bool:
        """Whether ``identity``'s streams should end now."""
        return self._state(identity).suspended_until > self._clock()

    def refused(self, identity: str | None, code: FaultCode) -> None:
        """A message from ``identity`` was refused with ``code``; may suspend the peer."""
        if not code.is_permanent or code.is_decision:
            return
        state = self._state(identity)
        now = self._clock()
        window = state.refusals
        window.append(now)
        while window and window[0] <= now - self.limits.refusal_window:
            window.popleft()
        if len(window) >= self.limits.refusals_to_suspend and state.suspended_until <= now:
            state.suspended_until = now + self.limits.suspend_seconds
            state.suspensions += 1
            window.clear()
            log.error(
                "peer suspended: too many refused messages",
                extra={
                    "peer": identity or ANONYMOUS,
                    "seconds": self.limits.suspend_seconds,
                    "refusals": self.limits.refusals_to_suspend,
                },
            )

    def view(self) -> dict[str, dict[str, object]]:
        """Per peer identity: open streams, calls in flight, suspension (for status)."""
        now = self._clock()
        return {
            peer: {
                "streams": s.streams,
                "calls": s.calls,
                "suspended": s.suspended_until > now,
                "suspended_for_seconds": round(max(0.0, s.suspended_until - now), 1),
                "suspensions": s.suspensions,
            }
            for peer, s in sorted(self._peers.items())
        }

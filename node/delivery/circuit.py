"""Per-peer link state: the circuit and what the last attempts said."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CircuitState(enum.Enum):
    CLOSED = "closed"
    """Deliveries succeed; send as soon as there is something to send."""
    OPEN = "open"
    """The last attempt failed; waiting out the back-off before trying again."""
    HALF_OPEN = "half_open"
    """Back-off over (or the peer answered a heartbeat); one trial batch decides."""

    def is_available(self) -> bool:
        return self is not CircuitState.OPEN


@dataclass(frozen=True)
class LinkRefusal:
    """Why the last heartbeat on a link was refused, and which side refused it.

    A refusal is not an outage: the peer answers, but one side will not take the other's
    signed messages (a revoked key, an expired manifest), and that lasts until an operator
    acts. Status shows it so the operator sees the cause, not just a link that is down.
    """

    code: str
    """The machine-readable fault code, e.g. ``key_revoked``."""
    by_peer: bool
    """True when the peer refused our heartbeat with a signed fault; False when this node
    refused the peer's answer."""
    detail: str

    def to_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "by": "peer" if self.by_peer else "this_node",
            "detail": self.detail,
        }


@dataclass
class PeerLink:
    """What the node knows about its link to one peer (shown in status and metrics)."""

    peer: str
    circuit: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    retry_interval: float = 0.0
    """The current back-off interval in seconds (0 while the circuit is closed)."""
    last_error: str = ""
    last_success_at: float | None = None
    """When the last exchange with the peer succeeded: a batch delivered and receipted, or a
    heartbeat receipted."""
    last_attempt_at: float | None = None
    up: bool = False
    """Whether the peer answered the last heartbeat."""
    rtt_seconds: float | None = None
    last_heartbeat_at: float | None = None
    last_received_at: float | None = None
    refusal: LinkRefusal | None = None
    """Set while heartbeats on this link are refused by either side; None once one passes."""

    # The only ways the link's state changes: each method names what happened.

    def remembered_success(self, at: float | None) -> None:
        """What the store remembers of the last delivery, so "last success" is not blank
        after a restart until the first heartbeat."""
        self.last_success_at = at

    def trial(self) -> bool:
        """A batch is about to go out, or the peer answers again: an open circuit becomes
        half-open (one trial batch decides). Return whether it was open."""
        if self.circuit is not CircuitState.OPEN:
            return False
        self.circuit = CircuitState.HALF_OPEN
        return True

    def received(self, at: float) -> None:
        """The peer's message was accepted here."""
        self.last_received_at = at

    def heartbeat_answered(self, at: float, rtt_seconds: float) -> None:
        """The peer receipted our heartbeat: it is up, and that counts as a success."""
        self.up = True
        self.refusal = None
        self.last_heartbeat_at = at
        self.last_success_at = at
        if self.circuit is CircuitState.CLOSED:
            self.last_error = ""
        self.rtt_seconds = rtt_seconds

    def heartbeat_refused(self, refusal: LinkRefusal, at: float) -> None:
        """The peer answered our heartbeat with a signed fault."""
        self.up = False
        self.last_heartbeat_at = at
        self.last_error = f"{refusal.code}: {refusal.detail}"
        self.refusal = refusal

    def heartbeat_failed(self, error: str, refusal: LinkRefusal | None = None) -> bool:
        """No heartbeat answer we can trust: the peer did not answer, or this node refused
        to send it or refused its answer (``refusal``). Return whether the link was up."""
        was_up = self.up
        self.up = False
        self.last_error = error
        self.refusal = refusal
        return was_up

    def failed(self, error: str, at: float, retry_interval: float) -> None:
        self.circuit = CircuitState.OPEN
        self.consecutive_failures += 1
        self.last_error = error
        self.last_attempt_at = at
        self.retry_interval = retry_interval

    def succeeded(self, at: float) -> None:
        self.circuit = CircuitState.CLOSED
        self.last_error = ""
        self.consecutive_failures = 0
        self.retry_interval = 0.0
        self.last_success_at = at
        self.last_attempt_at = at

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

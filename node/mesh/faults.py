"""What a faulty network link does to the bytes crossing it: a pure model, no sockets, no
event loop, no clock of its own (``LinkFault`` says what is wrong; ``Pacer`` says when each
chunk arrives; ``reset_allowance`` says where a connection is cut).

The proxy (``node.mesh.links``) relays TCP, so what it can change is *when* bytes arrive and
*whether the connection survives*: it can never drop bytes out of a live TCP stream, as the
mutual TLS inside would fail its record MAC and read that as an attack, not as a network.
The model therefore treats each chunk the proxy reads as a run of TCP segments and makes the
layer above feel what TCP itself would make it feel:

- **Latency and jitter.** A chunk arrives ``latency`` seconds after it was sent, more or less
  up to ``jitter`` (uniform), never before the chunk sent ahead of it: TCP delivers in order,
  so jitter stretches gaps and bunches arrivals but never reorders them. Each direction is
  delayed on its own, so a round trip takes twice ``latency``.
- **Loss.** Each segment (``MSS`` bytes) of a chunk is lost with probability ``loss``. TCP
  hides a loss from the application and shows it as a stall: the chunk waits for its
  unluckiest segment's retransmission, one retransmission timeout (RTO: twice the latency
  plus four times the jitter, at least ``MIN_RTO``, as RFC 6298 and Linux compute it) for
  the first loss and twice as long for each further loss of the same segment (exponential
  back-off), and everything behind it waits too (head-of-line blocking). A loss so heavy
  that a real connection would be dropped is ``reset_after_bytes``.
- **Bandwidth.** Bytes leave at most ``bandwidth`` bytes per second in each direction (no
  burst allowance): a chunk starts once the one before it has been sent, and takes its size
  over the bandwidth to send.
- **Blackhole.** Every connection, open or new, is accepted and kept open, and nothing
  crosses either way: the sender's writes pile up, its reads wait, and only its own
  deadlines tell it something is wrong. What it sent meanwhile is held (up to a bound, then
  the proxy stops reading, as a full receive window would) and delivered once the blackhole
  lifts, as TCP's retransmissions would.
- **Partition.** The link is cut: open connections are reset (RST) and new ones are reset as
  soon as they are accepted, so the sender sees connection failures at once. A partition
  of one directed link is one-way: the link from the receiver back to the sender is another
  link and carries on.
- **Reset.** A connection is aborted with a RST once ``reset_after_bytes`` bytes have crossed
  it (both directions counted), mid-stream; the proxy can also reset every open connection
  at one moment.

Randomness comes only from the ``random.Random`` handed in, so a seed replays the same
faults for the same traffic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

MSS: Final = 1448
"""Bytes of one TCP segment on a typical Ethernet path (1500 - IP, TCP and timestamp headers)."""
MIN_RTO: Final = 0.2
"""Seconds: Linux's floor for the retransmission timeout."""
MAX_BACKOFFS: Final = 6
"""Retransmissions of one segment the model counts at most; beyond, a real connection would be
in trouble anyway (that is ``reset_after_bytes``)."""
MAX_DELAY: Final = 60.0
"""Largest latency or jitter a fault may ask for, in seconds."""
MAX_LOSS: Final = 0.5


@dataclass(frozen=True)
class LinkFault:
    """What is wrong with one directed link now; the default is nothing."""

    latency: float = 0.0
    """Seconds each chunk takes to cross, in each direction."""
    jitter: float = 0.0
    """Up to this many seconds more or less than ``latency`` (uniform); never reorders."""
    loss: float = 0.0
    """Chance that one segment is lost and waits for its retransmission (0 to 0.5)."""
    bandwidth: float | None = None
    """Bytes per second in each direction; None: as fast as loopback."""
    blackhole: bool = False
    """Connections accepted and held open, nothing crosses; held bytes flow once lifted."""
    partition: bool = False
    """Connections reset at once, open ones and new ones."""
    reset_after_bytes: int | None = None
    """Each connection is reset once this many bytes have crossed it."""

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_DELAY:
                raise ValueError(f"{name} must be 0 to {MAX_DELAY:g} seconds, not {value!r}")
        if not 0.0 <= self.loss <= MAX_LOSS:
            raise ValueError(f"loss must be 0 to {MAX_LOSS:g}, not {self.loss!r}")
        rate = self.bandwidth
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"bandwidth must be a positive number of bytes/s, not {rate!r}")
        limit = self.reset_after_bytes
        if limit is not None and limit < 1:
            raise ValueError(f"reset_after_bytes must be at least 1, not {limit!r}")

    @property
    def is_clear(self) -> bool:
        return self == CLEAR

    @property
    def retransmission_timeout(self) -> float:
        return max(MIN_RTO, 2 * self.latency + 4 * self.jitter)

    def describe(self) -> str:
        """``200 ms ± 50 ms, 5 % loss`` and the like; ``clear`` when nothing is wrong."""
        parts = []
        if self.partition:
            parts.append("partition")
        if self.blackhole:
            parts.append("blackhole")
        if self.latency or self.jitter:
            parts.append(
                f"{self.latency * 1000:g} ms"
                + (f" ± {self.jitter * 1000:g} ms" if self.jitter else "")
            )
        if self.loss:
            parts.append(f"{self.loss * 100:g} % loss")
        if self.bandwidth is not None:
            parts.append(f"{self.bandwidth:g} B/s")
        if self.reset_after_bytes is not None:
            parts.append(f"reset after {self.reset_after_bytes} B")
        return ", ".join(parts) or "clear"

    def to_json(self) -> dict[str, Any]:
        """The fields that differ from a clear link."""
        clear = asdict(CLEAR)
        return {k: v for k, v in asdict(self).items() if v != clear[k]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinkFault:
        """A fault from ``to_json``'s shape; ValueError naming the field at fault."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a link fault must be a JSON object, not {data!r}")
        kinds = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(kinds))
        if unknown:
            raise ValueError(f"unknown link fault field {unknown[0]!r}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in ("blackhole", "partition"):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false, not {value!r}")
            elif value is None and name in ("bandwidth", "reset_after_bytes"):
                pass
            elif name == "reset_after_bytes":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{name} must be a whole number of bytes, not {value!r}")
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{name} must be a number, not {value!r}")
            else:
                value = float(value)
            values[name] = value
        return cls(**values)


CLEAR: Final = LinkFault()


def retransmission_delay(fault: LinkFault, size: int, rng: random.Random) -> float:
    """Seconds a chunk of ``size`` bytes waits for lost segments to be sent again (0 when none
    of its segments is lost)."""
    if fault.loss <= 0.0:
        return 0.0
    segments = max(1, math.ceil(size / MSS))
    if rng.random() >= 1.0 - (1.0 - fault.loss) ** segments:
        return 0.0
    losses = 1
    while losses < MAX_BACKOFFS and rng.random() < fault.loss:
        losses += 1
    return fault.retransmission_timeout * ((1 << losses) - 1)


@dataclass
class Pacer:
    """When each chunk of one direction of one connection arrives at the far end."""

    rng: random.Random
    free_at: float = -math.inf
    """When the bandwidth-limited sender has sent everything handed to it so far."""
    last_due: float = -math.inf
    """When the chunk before arrives: no chunk arrives before it (TCP keeps order)."""

    def due(self, fault: LinkFault, size: int, sent_at: float) -> float:
        """The arrival time of ``size`` bytes handed to the link at ``sent_at``."""
        start = max(sent_at, self.free_at) if fault.bandwidth else sent_at
        if fault.bandwidth:
            start += size / fault.bandwidth
            self.free_at = start
        delay = fault.latency
        if fault.jitter:
            delay = max(0.0, delay + self.rng.uniform(-fault.jitter, fault.jitter))
        delay += retransmission_delay(fault, size, self.rng)
        self.last_due = max(self.last_due, start + delay)
        return self.last_due


def reset_allowance(fault: LinkFault, crossed: int, size: int) -> int | None:
    """How many bytes of a chunk of ``size`` still cross before the connection is reset, when
    ``crossed`` bytes have crossed it already; None when the whole chunk crosses and the
    connection lives on."""
    limit = fault.reset_after_bytes
    if limit is None or crossed + size < limit:
        return None
    return max(0, limit - crossed)

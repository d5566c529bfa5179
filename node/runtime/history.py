"""A node's recent history, kept in memory for the dashboard's sparklines.

Rules kept here:
- Memory is bounded: every series is a ring of ``CAPACITY`` float samples (8 bytes each),
  one every ``SAMPLE_INTERVAL`` seconds, an hour at 5 s. Series are
  ``len(PEER_SERIES)`` per peer of the manifest and ``len(NODE_SERIES)`` for the node,
  so a four-province mesh holds 24 series, about 140 KB; a peer that leaves the
  manifest takes its series with it. Nothing survives a restart.
- Samples are read from what the node already measures: its Prometheus counters and
  histogram (messages, delivery latency) and the snapshots its metric collectors read
  (outbox, cases). Counters become the increase since the previous sample (the first sample
  has none: it is missing); the latency
  quantiles are estimated from the histogram's buckets observed in that interval, the way
  Prometheus's ``histogram_quantile`` does, and are missing (NaN) when nothing was
  delivered in it.
- Every series is sampled at the same instants, so index ``i`` of each is ``times[i]``.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from monitoring.metrics import CaseSnapshot, NodeMetrics, PeerSnapshot
from node.store.cases import OPEN_STATUSES

SAMPLE_INTERVAL = 5.0
"""Seconds between samples."""
CAPACITY = 720
"""Samples kept per series: an hour at ``SAMPLE_INTERVAL``."""

PEER_SERIES = ("sent", "received", "refused", "backlog", "oldest_s", "p50_s", "p99_s")
"""Per peer, on the link to it: messages delivered from the outbox (receipted) in each
interval, the outbox's depth and oldest pending age, the delivery latency's median and 99th
percentile in the interval; on the link from it: its messages accepted here (heartbeats
too) and refused here in each interval."""
NODE_SERIES = ("cases_opened", "cases_concluded", "cases_overdue")
"""For the node: cases that began and that reached an outcome in each interval, and the
open cases past their due time."""


class Ring:
    """The last ``capacity`` floats pushed, oldest first; NaN marks a missing sample."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._values = array("d", [math.nan]) * capacity
        self._next = 0
        self._count = 0

    @property
    def capacity(self) -> int:
        return len(self._values)

    def __len__(self) -> int:
        return self._count

    def push(self, value: float) -> None:
        self._values[self._next] = value
        self._next = (self._next + 1) % len(self._values)
        self._count = min(self._count + 1, len(self._values))

    def values(self) -> list[float]:
        start = (self._next - self._count) % len(self._values)
        return [self._values[(start + i) % len(self._values)] for i in range(self._count)]


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The ``q`` quantile of observations counted in cumulative ``buckets`` (upper bound,
    count at or below it; the last bound may be +Inf), interpolated linearly inside its
    bucket; NaN when the buckets hold nothing."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


def _per_peer(families: Iterable[Any], **only: str) -> dict[str, float]:
    """A counter's totals summed per ``peer`` label, of the samples whose labels match
    ``only``."""
    totals: dict[str, float] = {}
    for metric in families:
        for sample in metric.samples:
            matches = all(sample.labels.get(k) == v for k, v in only.items())
            if sample.name.endswith("_total") and matches:
                peer = sample.labels.get("peer", "")
                totals[peer] = totals.get(peer, 0.0) + sample.value
    return totals


def _latency_buckets(metrics: NodeMetrics) -> dict[str, dict[float, float]]:
    buckets: dict[str, dict[float, float]] = {}
    for metric in metrics.delivery_latency.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                peer_buckets = buckets.setdefault(sample.labels["peer"], {})
                peer_buckets[float(sample.labels["le"])] = sample.value
    return buckets


class History:
    """The rings of one node, filled by ``sample`` (every ``interval`` seconds by ``run``)."""

    def __init__(
        self,
        *,
        metrics: NodeMetrics,
        outboxes: Callable[[], Mapping[str, PeerSnapshot]],
        cases: Callable[[], CaseSnapshot | None],
        clock: Callable[[], float],
        interval: float = SAMPLE_INTERVAL,
        capacity: int = CAPACITY,
    ) -> None:
        self._metrics = metrics
        self._outboxes = outboxes
        self._cases = cases
        self._clock = clock
        self.interval = interval
        self.capacity = capacity
        self._times = Ring(capacity)
        self._peers: dict[str, dict[str, Ring]] = {}
        self._node = {name: Ring(capacity) for name in NODE_SERIES}
        self._previous: dict[str, Any] = {}

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        """Read the node's measures once and push one sample onto every series."""
        outboxes = self._outboxes()
        counters = {
            "sent": _per_peer(self._metrics.messages_sent.collect()),
            "received": _per_peer(self._metrics.messages_received.collect()),
            "refused": _per_peer(self._metrics.messages_refused.collect(), direction="inbound"),
        }
        latency = _latency_buckets(self._metrics)
        cases = self._cases()
        previous, self._previous = self._previous, {"counters": counters, "latency": latency}
        # An increase needs two readings: the first sample has none to show.
        first = "counters" not in previous
        self._times.push(self._clock())
        for gone in set(self._peers) - set(outboxes):
            del self._peers[gone]
        for peer, outbox in outboxes.items():
            rings = self._peers.get(peer)
            if rings is None:
                rings = self._peers[peer] = {name: self._backfilled() for name in PEER_SERIES}
            for name, totals in counters.items():
                before = previous.get("counters", {}).get(name, {}).get(peer, 0.0)
                increase = max(0.0, totals.get(peer, 0.0) - before)
                rings[name].push(math.nan if first else increase)
            rings["backlog"].push(float(outbox.depth))
            rings["oldest_s"].push(outbox.oldest_pending_age_seconds)
            now = {} if first else latency.get(peer, {})
            then = previous.get("latency", {}).get(peer, {})
            interval = [(le, n - then.get(le, 0.0)) for le, n in sorted(now.items())]
            rings["p50_s"].push(quantile(0.5, interval))
            rings["p99_s"].push(quantile(0.99, interval))
        self._sample_cases(cases, previous.get("cases"))

    def _sample_cases(self, cases: CaseSnapshot | None, before: tuple[int, int] | None) -> None:
        if cases is None:
            if before is not None:
                self._previous["cases"] = before
            for ring in self._node.values():
                ring.push(math.nan)
            return
        total = sum(cases.by_status.values())
        concluded = sum(n for (_, s), n in cases.by_status.items() if s not in OPEN_STATUSES)
        self._previous["cases"] = (total, concluded)
        if before is None:
            self._node["cases_opened"].push(math.nan)
            self._node["cases_concluded"].push(math.nan)
        else:
            self._node["cases_opened"].push(float(max(0, total - before[0])))
            self._node["cases_concluded"].push(float(max(0, concluded - before[1])))
        self._node["cases_overdue"].push(float(sum(cases.overdue.values())))

    def _backfilled(self) -> Ring:
        """A new series, missing for the samples taken before it existed."""
        ring = Ring(self.capacity)
        for _ in range(len(self._times) - 1):
            ring.push(math.nan)
        return ring

    def to_json(self) -> dict[str, Any]:
        """The history as ``GET /v1/dashboard`` shows it: NaN as null, oldest first."""
        return {
            "interval_seconds": self.interval,
            "capacity": self.capacity,
            "times": self._times.values(),
            "peers": {
                peer: {name: _json_values(ring) for name, ring in rings.items()}
                for peer, rings in sorted(self._peers.items())
            },
            "node": {name: _json_values(ring) for name, ring in self._node.items()},
        }


def _json_values(ring: Ring) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 6) for v in ring.values()]

"""The dashboard's in-memory history: bounded rings, and samples drawn from a node's real
metrics (counters as increases per interval, latency quantiles from histogram buckets)."""

from __future__ import annotations

import math

import pytest

from monitoring.metrics import CaseSnapshot, NodeMetrics, PeerSnapshot
from node.runtime.history import CAPACITY, NODE_SERIES, PEER_SERIES, History, Ring, quantile


def test_a_ring_keeps_only_its_capacity_oldest_first() -> None:
    """Past its capacity a ring forgets its oldest samples; its storage never grows."""
    ring = Ring(3)
    assert ring.values() == []
    for value in range(1, 8):
        ring.push(float(value))
    assert ring.values() == [5.0, 6.0, 7.0]
    assert len(ring) == 3
    assert ring.capacity == 3


def test_a_ring_without_room_is_refused() -> None:
    """A ring of no capacity is a mistake, said as such."""
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        Ring(0)


def test_quantile_interpolates_inside_its_bucket() -> None:
    """Like Prometheus's histogram_quantile: linear inside the bucket that holds the rank;
    nothing observed is NaN; a rank in the +Inf bucket is the last finite bound."""
    buckets = [(0.1, 0.0), (0.2, 10.0), (0.4, 20.0), (math.inf, 20.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.2)
    assert quantile(0.25, buckets) == pytest.approx(0.15)
    assert quantile(0.75, buckets) == pytest.approx(0.3)
    assert math.isnan(quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))
    assert math.isnan(quantile(0.5, []))
    assert quantile(0.99, [(0.1, 0.0), (math.inf, 4.0)]) == 0.1


class Measures:
    """What a node's collectors would read, set by the test."""

    def __init__(self) -> None:
        self.outboxes: dict[str, PeerSnapshot] = {"jiangsu": PeerSnapshot(0, 0.0, 0)}
        self.cases: CaseSnapshot | None = CaseSnapshot({}, {}, {})
        self.now = 1000.0


def history_of(metrics: NodeMetrics, measures: Measures, capacity: int = CAPACITY) -> History:
    return History(
        metrics=metrics,
        outboxes=lambda: measures.outboxes,
        cases=lambda: measures.cases,
        clock=lambda: measures.now,
        capacity=capacity,
    )


def test_samples_are_increases_per_interval_and_gauges_as_they_are() -> None:
    """Counters are shown as what happened in each interval (refusals: this node's, of the
    peer's messages; the first sample, with no reading before it, is missing), backlogs as
    they were, and the latency quantiles only for intervals in which something was
    delivered."""
    metrics, measures = NodeMetrics(), Measures()
    history = history_of(metrics, measures)
    history.sample()
    metrics.messages_sent.labels("jiangsu", "probe").inc(5)
    metrics.messages_sent.labels("jiangsu", "case_submit").inc(2)
    metrics.messages_received.labels("jiangsu", "probe").inc(3)
    metrics.messages_refused.labels("jiangsu", "probe", "bad_signature", "inbound").inc()
    metrics.messages_refused.labels("jiangsu", "probe", "bad_signature", "outbound").inc(9)
    for seconds in (0.002, 0.003, 0.004, 0.2):
        metrics.delivery_latency.labels("jiangsu").observe(seconds)
    measures.outboxes = {"jiangsu": PeerSnapshot(4, 12.5, 0)}
    measures.cases = CaseSnapshot(
        {("accepting", "submitted"): 2, ("accepting", "completed"): 1},
        {("accepting", "jiangsu"): 1},
        {},
    )
    measures.now += 5
    history.sample()
    metrics.messages_sent.labels("jiangsu", "probe").inc()
    measures.now += 5
    history.sample()
    shown = history.to_json()
    assert shown["times"] == [1000.0, 1005.0, 1010.0]
    jiangsu = shown["peers"]["jiangsu"]
    assert set(jiangsu) == set(PEER_SERIES)
    assert jiangsu["sent"] == [None, 7.0, 1.0]
    assert jiangsu["received"] == [None, 3.0, 0.0]
    assert jiangsu["refused"] == [None, 1.0, 0.0]
    assert jiangsu["backlog"] == [0.0, 4.0, 4.0]
    assert jiangsu["oldest_s"] == [0.0, 12.5, 12.5]
    assert jiangsu["p50_s"][0] is None and jiangsu["p50_s"][2] is None
    assert 0.0025 <= jiangsu["p50_s"][1] <= 0.005
    assert 0.1 <= jiangsu["p99_s"][1] <= 0.25
    assert shown["node"] == {
        "cases_opened": [None, 3.0, 0.0],
        "cases_concluded": [None, 1.0, 0.0],
        "cases_overdue": [0.0, 1.0, 1.0],
    }
    assert set(shown["node"]) == set(NODE_SERIES)


def test_history_is_bounded_and_follows_the_peers() -> None:
    """An hour of samples at most; a peer that appears is missing before it came, one that
    leaves takes its series with it."""
    metrics, measures = NodeMetrics(), Measures()
    history = history_of(metrics, measures, capacity=4)
    for _ in range(10):
        history.sample()
    measures.outboxes = {**measures.outboxes, "anhui": PeerSnapshot(1, 0.5, 0)}
    history.sample()
    shown = history.to_json()
    assert len(shown["times"]) == 4
    assert all(len(v) == 4 for rings in shown["peers"].values() for v in rings.values())
    assert shown["peers"]["anhui"]["backlog"] == [None, None, None, 1.0]
    measures.outboxes = {"anhui": PeerSnapshot(0, 0.0, 0)}
    history.sample()
    assert set(history.to_json()["peers"]) == {"anhui"}


def test_a_closed_store_leaves_gaps_not_spikes() -> None:
    """While the store is closed the case series are missing, and the next sample counts only
    what happened since the last real one."""
    metrics, measures = NodeMetrics(), Measures()
    measures.cases = CaseSnapshot({("handling", "accepted"): 5}, {}, {})
    history = history_of(metrics, measures)
    history.sample()
    measures.cases = None
    history.sample()
    measures.cases = CaseSnapshot({("handling", "accepted"): 6}, {}, {})
    history.sample()
    assert history.to_json()["node"]["cases_opened"] == [None, None, 1.0]

"""The federation port's door: per-peer caps, suspension of a peer sending refusable traffic,
bounded stream backlogs, and refusal logs that cannot flood the disk."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.protocol.faults import FaultCode
from node.transport.admission import DoorClosed, PeerAdmission, PeerLimits, RefusalLog
from node.wire import DELIVER_METHOD, DELIVER_STREAM_METHOD
from tests.nodes import BUDGET, config_for, make_mesh, raw_channel, running, tls_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_streams_and_calls_are_capped_per_peer() -> None:
    """One peer past its caps is refused; another peer is not affected; a place freed is
    taken again."""
    refused: list[tuple[str, str]] = []
    door = PeerAdmission(
        PeerLimits(max_streams=2, max_calls=1), on_refused=lambda p, r: refused.append((p, r))
    )
    with door.stream("node-a"), door.stream("node-a"):
        with pytest.raises(DoorClosed) as closed, door.stream("node-a"):
            pass
        assert closed.value.reason == "too_many_streams"
        with door.stream("node-b"):
            pass
    with door.stream("node-a"):
        pass
    with door.call("node-a"):
        with pytest.raises(DoorClosed) as closed, door.call("node-a"):
            pass
        assert closed.value.reason == "too_many_calls"
    assert refused == [("node-a", "too_many_streams"), ("node-a", "too_many_calls")]
    assert door.view()["node-a"]["streams"] == 0


def test_permanent_refusals_suspend_a_peer_for_a_while() -> None:
    """A peer refused for good N times within the window is suspended; it may come back
    once the suspension ends."""
    clock = Clock()
    limits = PeerLimits(refusals_to_suspend=3, refusal_window=10.0, suspend_seconds=30.0)
    door = PeerAdmission(limits, clock=clock)
    for _ in range(2):
        door.refused("node-a", FaultCode.MALFORMED_ENVELOPE)
    assert not door.suspended("node-a")
    door.refused("node-a", FaultCode.BAD_SIGNATURE)
    assert door.suspended("node-a")
    with pytest.raises(DoorClosed) as closed, door.stream("node-a"):
        pass
    assert closed.value.reason == "peer_suspended"
    with pytest.raises(DoorClosed), door.call("node-a"):
        pass
    assert not door.suspended("node-b")
    clock.now += 30.0
    assert not door.suspended("node-a")
    with door.stream("node-a"):
        pass
    assert door.view()["node-a"]["suspensions"] == 1


@pytest.mark.parametrize(
    "code",
    [
        FaultCode.CLOCK_SKEW,
        FaultCode.UNKNOWN_KEY,
        FaultCode.STORE_UNAVAILABLE,
        FaultCode.SEQUENCE_GAP,
        FaultCode.ILLEGAL_TRANSITION,
        FaultCode.UNKNOWN_CASE,
    ],
)
def test_transient_refusals_and_decisions_never_suspend(code: FaultCode) -> None:
    """The receiver's own state (clock, keys, a full store) and business answers are not
    the sender's misbehaviour."""
    door = PeerAdmission(PeerLimits(refusals_to_suspend=2), clock=Clock())
    for _ in range(10):
        door.refused("node-a", code)
    assert not door.suspended("node-a")


def test_refusals_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    door = PeerAdmission(PeerLimits(refusals_to_suspend=3, refusal_window=10.0), clock=clock)
    for _ in range(10):
        door.refused("node-a", FaultCode.MALFORMED_ENVELOPE)
        door.refused("node-a", FaultCode.MALFORMED_ENVELOPE)
        clock.now += 11.0
    assert not door.suspended("node-a")


def test_refusal_log_says_once_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    """A thousand refusals of one peer and code make one line per interval, and the next
    line says how many were not logged."""
    clock = Clock()
    refusals = RefusalLog(clock, interval=10.0)
    with caplog.at_level(logging.WARNING, logger="node.transport.admission"):
        for _ in range(1000):
            refusals.warn("refused", peer="anhui", reason="malformed_envelope")
        refusals.warn("refused", peer="anhui", reason="bad_signature")
        refusals.warn("refused", peer="jiangsu", reason="malformed_envelope")
        clock.now += 10.0
        refusals.warn("refused", peer="anhui", reason="malformed_envelope")
    lines = [(r.peer, r.code, r.not_logged_since_last) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [
        ("anhui", "malformed_envelope", 0),
        ("anhui", "bad_signature", 0),
        ("jiangsu", "malformed_envelope", 0),
        ("anhui", "malformed_envelope", 999),
    ]


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


async def test_a_peer_past_its_stream_cap_gets_resource_exhausted(mesh: Path) -> None:
    """On a real node, a peer's third stream is refused with RESOURCE_EXHAUSTED while its
    first two work, and the refusal is counted by reason."""
    limits = PeerLimits(max_streams=2)
    async with running(config_for(mesh, "shanghai", peer_limits=limits)) as sh:
        async with raw_channel(sh.config, tls_of(mesh, "jiangsu"), sh.config.node_id) as channel:
            method = channel.stream_stream(DELIVER_STREAM_METHOD)
            first, second = method(), method()
            for call in (first, second):
                await call.write(os.urandom(100))
                assert isinstance(await call.read(), bytes)  # a signed fault, the stream lives
            third = method()
            # Refused before any message is read, so nothing is written on it: grpcio's
            # asyncio client reports a write that crosses the server's status as INTERNAL,
            # hiding the status (grpc/grpc#36066), which happened under load.
            code = await asyncio.wait_for(third.code(), BUDGET / 2)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too_many_streams" in (await third.details() or "")
            first.cancel()
            second.cancel()
        sample = sh.metrics.registry.get_sample_value(
            "yrd_peer_door_refusals_total", {"peer": "jiangsu", "reason": "too_many_streams"}
        )
        assert sample == 1.0


async def test_a_suspended_peer_is_refused_and_its_stream_ended(mesh: Path) -> None:
    """A peer whose malformed messages reach the threshold has its stream ended and its
    next calls refused; status and metrics show it suspended."""
    limits = PeerLimits(refusals_to_suspend=5, suspend_seconds=60.0)
    async with running(config_for(mesh, "shanghai", peer_limits=limits)) as sh:
        async with raw_channel(sh.config, tls_of(mesh, "jiangsu"), sh.config.node_id) as channel:
            stream = channel.stream_stream(DELIVER_STREAM_METHOD)()
            # The fifth refusal suspends the peer: its answer is the stream's last.
            code, _ = await exchange(stream, rounds=limits.refusals_to_suspend)
            assert code == grpc.StatusCode.OK
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await stream.read()
            assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "peer_suspended" in (ended.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(DELIVER_METHOD)(os.urandom(100), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "peer_suspended" in (refused.value.details() or "")
        jiangsu = next(p for p in sh.health.status()["peers"] if p["peer"] == "jiangsu")  # type: ignore[union-attr, index]
        assert jiangsu["inbound"]["suspended"] is True  # type: ignore[index]
        assert (
            sh.metrics.registry.get_sample_value("yrd_peer_suspended", {"peer": "jiangsu"}) == 1.0
        )


async def test_a_stream_that_never_reads_is_held_back(mesh: Path) -> None:
    """A peer that writes and never reads is soon held back: once its replies fill the
    transport's window and the stream's backlog, the node reads no more of its messages, so
    the peer's writes block instead of the node's memory growing."""
    limits = PeerLimits(stream_backlog=4, refusals_to_suspend=1_000_000)
    async with running(config_for(mesh, "shanghai", peer_limits=limits)) as sh:
        before = refused_count(sh)
        async with raw_channel(sh.config, tls_of(mesh, "jiangsu"), sh.config.node_id) as channel:
            stream = channel.stream_stream(DELIVER_STREAM_METHOD)()
            blocked = await writes_block(stream, seconds=1.0, limit=200_000)
            assert blocked, "the node kept reading a stream whose replies nobody read"
            answered = refused_count(sh) - before
            await asyncio.sleep(0.5)
            assert refused_count(sh) - before == answered
            stream.cancel()


async def exchange(stream: grpc.aio.StreamStreamCall, *, rounds: int) -> tuple[Any, str]:
    """Write random bytes and read the node's answer, up to ``rounds`` times; the status the
    stream ended with and its details (OK if it did not end)."""
    try:
        for _ in range(rounds):
            await stream.write(os.urandom(100))
            if await stream.read() is grpc.aio.EOF:
                break
        else:
            return grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError:
        pass  # a write after the node ended the stream fails; the stream's status says why
    return await stream.code(), await stream.details() or ""


async def writes_block(stream: grpc.aio.StreamStreamCall, *, seconds: float, limit: int) -> bool:
    """Whether a write of ``stream`` waits longer than ``seconds`` within ``limit`` writes."""
    payload = os.urandom(1024)
    for _ in range(limit):
        try:
            async with asyncio.timeout(seconds):
                await stream.write(payload)
        except TimeoutError:
            return True
    return False


def refused_count(node: object) -> float:
    from node.runtime.node import Node

    assert isinstance(node, Node)
    total = 0.0
    for metric in node.metrics.registry.collect():
        if metric.name == "yrd_messages_refused":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total

"""A peer with several endpoints (its node's replicas), over real mutual-TLS gRPC on
loopback: each lane's calls go to its own endpoint; a transport failure there moves them to
the next; a signed refusal does not; after ``return_after`` a lane's own endpoint is tried
again; each endpoint's health is kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from node.protocol.envelope import seal
from node.transport.client import EndpointState, PeerChannel
from node.transport.errors import FAULT_TRAILER, PeerUnavailable, SignedRefusal
from node.wire import pb
from tests.nodes import federation_server, free_base_port, tls_of
from tests.test_exchange_batches import ScriptedPeer, key_of, mesh, probes, receipts_for

__all__ = ["mesh"]  # the fixture, used by name


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def serving(mesh: Path, peer: ScriptedPeer, port: int) -> AsyncIterator[grpc.aio.Server]:
    """``peer`` serving as Jiangsu on ``port``; stopped on leaving."""
    server, bound = await federation_server(
        mesh, "jiangsu", {"Exchange": grpc.stream_stream_rpc_method_handler(peer.exchange)}, port
    )
    assert bound == port
    try:
        yield server
    finally:
        await server.stop(None)


def answering(mesh: Path) -> ScriptedPeer:
    key = key_of(mesh, "jiangsu")

    async def receipts(batch: pb.Batch) -> bytes:
        return receipts_for(batch, key)

    return ScriptedPeer(receipts)


async def send(channel: PeerChannel, mesh: Path, lane: int = 0) -> list[int]:
    """One probe through ``channel``'s delivery call in ``lane``; the indexes answered."""
    got: list[int] = []
    envelopes = [seal(m, key_of(mesh, "shanghai")).envelope for m in probes(1)]
    await channel.exchange_batch(
        envelopes, timeout=5, on_reply=lambda i, _r, _s, _t: got.append(i), lane=lane
    )
    return got


def channel_to(mesh: Path, ports: list[int], clock: FakeClock) -> PeerChannel:
    key = key_of(mesh, "shanghai")
    return PeerChannel(
        "node-320000",
        [f"127.0.0.1:{p}" for p in ports],
        tls_of(mesh, "shanghai"),
        max_message_bytes=64 * 1024,
        signing_key=lambda: key,
        clock=clock,
        return_after=30.0,
    )


async def test_a_dead_first_endpoint_moves_calls_to_the_second(mesh: Path) -> None:
    """Nothing listens on the first endpoint: the first call fails there (the caller retries),
    the second goes to the second endpoint and is answered; health says which is which."""
    base = free_base_port(2)
    clock = FakeClock()
    channel = channel_to(mesh, [base, base + 1], clock)
    second = answering(mesh)
    try:
        async with serving(mesh, second, base + 1):
            with pytest.raises(PeerUnavailable):
                await send(channel, mesh)
            assert channel.current == 1
            assert await send(channel, mesh) == [0]
            assert len(second.frames) == 1
    finally:
        await channel.close()
    first, other = channel.health
    assert (first.state, first.failures) == (EndpointState.FAILED, 1)
    assert not first.state.is_available() and other.state.is_available()
    assert first.last_error and "UNAVAILABLE" in first.last_error
    assert (other.state, other.failures) == (EndpointState.HEALTHY, 0)
    assert [e["current"] for e in channel.endpoint_status()] == [False, True]


async def test_calls_go_back_to_the_first_endpoint_after_a_while(mesh: Path) -> None:
    """The first endpoint stops: calls move to the second; 30 s later (fake clock) and with
    the first serving again, the next call goes to the first."""
    base = free_base_port(2)
    clock = FakeClock()
    channel = channel_to(mesh, [base, base + 1], clock)
    first, second = answering(mesh), answering(mesh)
    try:
        async with serving(mesh, second, base + 1):
            async with serving(mesh, first, base):
                assert await send(channel, mesh) == [0]
            with pytest.raises(PeerUnavailable):
                await send(channel, mesh)  # the stream to the stopped first endpoint broke
            assert await send(channel, mesh) == [0]
            assert (len(first.frames), len(second.frames)) == (1, 1)
            clock.now += 29.0
            assert await send(channel, mesh) == [0]
            assert channel.current == 1
            clock.now += 1.0
            async with serving(mesh, first, base):
                # gRPC may still be backing off its reconnection to the first endpoint: such a
                # try fails over to the second again and waits another 30 s (fake clock).
                for _ in range(50):
                    with contextlib.suppress(PeerUnavailable):
                        if await send(channel, mesh) == [0] and channel.current == 0:
                            break
                    clock.now += 30.0
                    await asyncio.sleep(0.1)
                assert channel.current == 0
            assert len(first.frames) == 2 and len(second.frames) >= 2
    finally:
        await channel.close()
    assert [h.state for h in channel.health] == [EndpointState.HEALTHY] * 2


async def test_each_lane_goes_to_its_own_endpoint_and_shares_the_ones_left(mesh: Path) -> None:
    """Two endpoints, two lanes: lane 0's batches go to the first, lane 1's to the second
    (both marked in use); the second stops: lane 1 fails once, then goes to the first with
    lane 0, and 30 s later (fake clock), the second serving again, back to its own."""
    base = free_base_port(2)
    clock = FakeClock()
    channel = channel_to(mesh, [base, base + 1], clock)
    first, second = answering(mesh), answering(mesh)
    assert channel.lanes == 2
    try:
        async with serving(mesh, first, base):
            async with serving(mesh, second, base + 1):
                assert await send(channel, mesh, lane=0) == [0]
                assert await send(channel, mesh, lane=1) == [0]
                assert (len(first.frames), len(second.frames)) == (1, 1)
                assert [e["current"] for e in channel.endpoint_status()] == [True, True]
            with pytest.raises(PeerUnavailable):
                await send(channel, mesh, lane=1)
            assert await send(channel, mesh, lane=1) == [0]
            assert (len(first.frames), len(second.frames)) == (2, 1)
            assert [e["current"] for e in channel.endpoint_status()] == [True, False]
            assert channel.current == 0  # lane 0 never moved
            clock.now += 30.0
            async with serving(mesh, second, base + 1):
                for _ in range(50):  # gRPC may still be backing off its reconnection
                    with contextlib.suppress(PeerUnavailable):
                        if await send(channel, mesh, lane=1) == [0] and len(second.frames) == 2:
                            break
                    clock.now += 30.0
                    await asyncio.sleep(0.1)
                assert len(second.frames) == 2
    finally:
        await channel.close()
    assert channel.health[1].failures >= 1 and channel.health[0].failures == 0


async def test_a_signed_refusal_does_not_move_calls(mesh: Path) -> None:
    """A peer that refuses a call with its signed fault has answered: calls stay on its
    endpoint, which counts as healthy."""
    base = free_base_port(2)
    channel = channel_to(mesh, [base, base + 1], FakeClock())
    envelope = seal(probes(1)[0], key_of(mesh, "shanghai")).envelope

    async def deliver(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            "not for you",
            trailing_metadata=((FAULT_TRAILER, b"a signed fault"),),
        )
        raise AssertionError("abort does not return")

    server, _ = await federation_server(
        mesh, "jiangsu", {"Deliver": grpc.unary_unary_rpc_method_handler(deliver)}, base
    )
    try:
        with pytest.raises(SignedRefusal):
            await channel.deliver(envelope, timeout=5)
    finally:
        await channel.close()
        await server.stop(None)
    assert channel.current == 0
    assert channel.health[0].state is EndpointState.HEALTHY

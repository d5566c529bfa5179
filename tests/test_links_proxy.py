"""The link fault model on its own (a seeded generator, a fake clock), and the TCP proxy
relaying real sockets on loopback: bytes unchanged without a fault, a reset is a RST at the
byte asked for, a blackhole holds the connection open and delivers once lifted, a
partition cuts one direction only, and a bandwidth limit bounds throughput on a virtual
clock (bytes counted, never wall-clock timed)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from node.mesh.faults import (
    CLEAR,
    MIN_RTO,
    MSS,
    LinkFault,
    Pacer,
    reset_allowance,
    retransmission_delay,
)
from node.mesh.links import CHUNK, LinkProxy, LinkSet, Route, mesh_routes
from tests.nodes import eventually

# --- the model -----------------------------------------------------------------------------


def test_a_clear_link_delivers_every_chunk_when_it_is_sent() -> None:
    """No fault: each chunk is due the moment it was handed over, whatever its size."""
    pacer = Pacer(random.Random(1))
    for sent_at, size in [(0.0, 1), (0.5, 65536), (0.5, 10), (2.0, 3000)]:
        assert pacer.due(CLEAR, size, sent_at) == sent_at


def test_latency_with_jitter_stays_in_its_window_and_never_reorders() -> None:
    """200 ms ± 50 ms: every chunk is due 150-250 ms after it was sent unless the chunk ahead
    of it is due later (TCP keeps order); arrivals never go backwards, and the same seed
    gives the same times."""
    fault = LinkFault(latency=0.2, jitter=0.05)

    def run(seed: int) -> list[float]:
        pacer = Pacer(random.Random(seed))
        return [pacer.due(fault, 100, i * 0.01) for i in range(500)]

    dues = run(3)
    assert dues == run(3) and dues != run(4)
    assert all(a <= b for a, b in itertools.pairwise(dues))
    for i, due in enumerate(dues):
        sent = i * 0.01
        assert sent + 0.15 <= due <= max(sent + 0.25, dues[i - 1] if i else 0.0) + 1e-9
    assert sum(due > i * 0.01 + 0.2 for i, due in enumerate(dues)) > 100  # it does jitter


def test_loss_stalls_a_chunk_for_retransmission_timeouts_in_proportion() -> None:
    """5 % loss per segment: about 5 % of one-segment chunks wait, each for one RTO (then 3,
    7, … RTOs for repeated losses); a 10-segment chunk is hit about 40 % of the time; with
    no loss nothing waits."""
    rng = random.Random(11)
    fault = LinkFault(latency=0.05, loss=0.05)
    rto = fault.retransmission_timeout
    assert rto == pytest.approx(max(MIN_RTO, 0.1))
    single = [retransmission_delay(fault, MSS, rng) for _ in range(20000)]
    hit = [d for d in single if d]
    assert 0.04 < len(hit) / len(single) < 0.06
    assert {round(d / rto) for d in hit} <= {1, 3, 7, 15, 31, 63}
    assert sum(round(d / rto) == 1 for d in hit) / len(hit) > 0.9
    ten = [retransmission_delay(fault, 10 * MSS, rng) for _ in range(5000)]
    assert 0.36 < sum(1 for d in ten if d) / len(ten) < 0.44
    assert all(retransmission_delay(CLEAR, 65536, rng) == 0 for _ in range(100))


def test_bandwidth_bounds_the_bytes_due_by_any_moment() -> None:
    """At 10,000 B/s, however chunks come, the bytes due by time t are at most 10,000 × t, and
    a backlog handed over at once is through exactly when its size says."""
    rate = 10_000.0
    fault = LinkFault(bandwidth=rate)
    pacer = Pacer(random.Random(0))
    rng = random.Random(5)
    sizes = [rng.randrange(1, 20_000) for _ in range(200)]
    dues = [pacer.due(fault, size, 0.0) for size in sizes]
    assert dues[-1] == pytest.approx(sum(sizes) / rate)
    for t in (0.5, 1.0, 7.3, 100.0, dues[-1]):
        assert sum(s for s, d in zip(sizes, dues, strict=True) if d <= t) <= rate * t + 1e-6
    # An idle link starts afresh: a chunk sent after the backlog has gone waits only for itself.
    later = dues[-1] + 10
    assert pacer.due(fault, 5_000, later) == pytest.approx(later + 0.5)


def test_reset_allowance_cuts_at_the_byte_asked_for() -> None:
    """Reset after 1,000 bytes: chunks pass whole below it, the chunk that reaches it passes
    only up to it, and a link with no reset never cuts."""
    fault = LinkFault(reset_after_bytes=1000)
    assert reset_allowance(fault, 0, 999) is None
    assert reset_allowance(fault, 0, 1000) == 1000
    assert reset_allowance(fault, 900, 300) == 100
    assert reset_allowance(fault, 1000, 5) == 0
    assert reset_allowance(CLEAR, 10**9, 65536) is None


def test_a_fault_is_checked_and_round_trips_through_json() -> None:
    """A fault reads back from its JSON; a wrong field or value is refused naming it."""
    fault = LinkFault(latency=0.2, jitter=0.05, loss=0.05, bandwidth=1e6, reset_after_bytes=64)
    assert LinkFault.from_json(fault.to_json()) == fault
    assert CLEAR.to_json() == {} and CLEAR.is_clear and not fault.is_clear
    assert fault.describe() == "200 ms ± 50 ms, 5 % loss, 1e+06 B/s, reset after 64 B"
    assert LinkFault(partition=True).describe() == "partition"
    assert LinkFault.from_json({"latency": 1}) == LinkFault(latency=1.0)
    for bad, named in [
        ({"lag": 1}, "lag"),
        ({"loss": 0.9}, "loss"),
        ({"latency": -1}, "latency"),
        ({"latency": "1"}, "latency"),
        ({"blackhole": 1}, "blackhole"),
        ({"reset_after_bytes": 1.5}, "reset_after_bytes"),
        ({"bandwidth": 0}, "bandwidth"),
    ]:
        with pytest.raises(ValueError, match=named):
            LinkFault.from_json(bad)


def test_mesh_routes_are_every_directed_pair() -> None:
    """Four provinces have twelve directed links, each to the receiver's real address."""
    endpoints = {p: f"127.0.0.1:{7101 + i}" for i, p in enumerate(["sh", "js", "zj", "ah"])}
    routes = mesh_routes(endpoints)
    assert len(routes) == 12 == len({(r.sender, r.receiver) for r in routes})
    assert all(r.sender != r.receiver and r.target == endpoints[r.receiver] for r in routes)


# --- the proxy on real sockets ---------------------------------------------------------------


@dataclass
class Sink:
    """A loopback TCP server that keeps what each connection sent and can answer."""

    received: list[bytearray] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    closed: list[str] = field(default_factory=list)
    """How each connection ended: 'eof' or 'reset'."""
    address: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        self.received.append(buffer)
        self.writers.append(writer)
        try:
            while data := await reader.read(65536):
                buffer += data
                self.got.set()
            self.closed.append("eof")
        except ConnectionResetError:
            self.closed.append("reset")
        finally:
            writer.close()

    async def until(self, total: int) -> None:
        while sum(len(b) for b in self.received) < total:
            self.got.clear()
            await self.got.wait()


@asynccontextmanager
async def sink_and_proxy(**options: object) -> AsyncIterator[tuple[Sink, LinkProxy]]:
    sink = Sink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    sink.address = f"{host}:{port}"
    proxy = LinkProxy("shanghai", "jiangsu", sink.address, **options)  # type: ignore[arg-type]
    await proxy.start()
    try:
        async with asyncio.timeout(30):
            yield sink, proxy
    finally:
        await proxy.close()
        server.close()
        for writer in sink.writers:
            writer.close()
        await server.wait_closed()


async def dial(proxy: LinkProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = proxy.address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def test_without_a_fault_bytes_pass_unchanged_both_ways() -> None:
    """A megabyte of random bytes reaches the receiver as sent, and its 300 KB answer comes
    back as sent; the proxy counts both directions."""
    async with sink_and_proxy() as (sink, proxy):
        reader, writer = await dial(proxy)
        payload = os.urandom(1 << 20)
        writer.write(payload)
        await writer.drain()
        await sink.until(len(payload))
        assert bytes(sink.received[0]) == payload
        answer = os.urandom(300_000)
        sink.writers[0].write(answer)
        assert await reader.readexactly(len(answer)) == answer
        writer.close()
        await writer.wait_closed()
        await eventually(lambda: sink.closed == ["eof"])
        assert proxy.stats.bytes_forward == len(payload)
        assert proxy.stats.bytes_back == len(answer)
        assert proxy.stats.connections == 1 and proxy.stats.resets == 0


async def test_a_reset_after_n_bytes_aborts_the_connection_mid_stream() -> None:
    """Reset after 100,000 bytes: the receiver gets exactly the first 100,000 and then a RST,
    the sender a reset too (not a clean end of stream)."""
    async with sink_and_proxy(fault=LinkFault(reset_after_bytes=100_000)) as (sink, proxy):
        reader, writer = await dial(proxy)
        payload = os.urandom(300_000)
        writer.write(payload)
        await eventually(lambda: sink.closed)
        assert sink.closed == ["reset"]
        assert bytes(sink.received[0]) == payload[:100_000]
        with pytest.raises(ConnectionResetError):
            await reader.read(1)
        writer.close()
        assert proxy.stats.resets == 1


async def test_reset_connections_cuts_every_open_connection_at_once() -> None:
    """At one moment every open connection is reset; a new one then works."""
    async with sink_and_proxy() as (sink, proxy):
        first = [await dial(proxy) for _ in range(3)]
        for _, writer in first:
            writer.write(b"hello")
        await sink.until(15)
        assert await proxy.reset_connections() == 3
        for reader, writer in first:
            with pytest.raises(ConnectionResetError):
                await reader.read(1)
            writer.close()
        await eventually(lambda: sorted(sink.closed) == ["reset"] * 3)
        reader, writer = await dial(proxy)
        writer.write(b"again")
        await sink.until(20)
        assert bytes(sink.received[3]) == b"again"
        writer.close()


async def test_a_blackhole_holds_the_connection_open_and_delivers_once_lifted() -> None:
    """Under a blackhole a connection is accepted and stays open while everything sent is
    held (the proxy has read it, the receiver got none of it, neither end saw an end of
    stream); once lifted, the held bytes arrive unchanged and in order, and answers flow."""
    async with sink_and_proxy(fault=LinkFault(blackhole=True)) as (sink, proxy):
        reader, writer = await dial(proxy)
        payload = os.urandom(200_000)
        writer.write(payload)
        await writer.drain()
        await eventually(lambda: proxy.stats.bytes_read == len(payload) and sink.received)
        assert proxy.stats.bytes_forward == 0
        assert sink.received == [bytearray()]
        assert not reader.at_eof() and not writer.is_closing() and not sink.closed
        assert proxy.stats.open == 1

        await proxy.set_fault(CLEAR)
        await sink.until(len(payload))
        assert bytes(sink.received[0]) == payload
        sink.writers[0].write(b"answer")
        assert await reader.readexactly(6) == b"answer"
        writer.close()


async def test_a_blackhole_stops_reading_at_its_buffer_bound() -> None:
    """A blackholed sender that keeps writing is held to the proxy's buffer: the proxy stops
    reading (its writes then block, as on a full TCP window) instead of holding it all."""
    bound = 64 * 1024
    async with sink_and_proxy(fault=LinkFault(blackhole=True), buffer_bytes=bound) as (_, proxy):
        _, writer = await dial(proxy)
        writer.write(bytes(32 << 20))  # more than any kernel buffers take
        await eventually(lambda: proxy.stats.read_pauses)
        assert bound <= proxy.stats.bytes_read < bound + CHUNK
        assert proxy.stats.bytes_forward == 0
        assert writer.transport.get_write_buffer_size() > 0
        writer.close()


async def test_a_partition_is_one_way() -> None:
    """Partitioning shanghai → jiangsu resets its open connection and every new one at once;
    the jiangsu → shanghai link, a proxy of its own, carries on; healing lets new
    connections through again."""
    async with sink_and_proxy() as (sink, there):
        back = LinkProxy("jiangsu", "shanghai", sink.address)
        await back.start()
        try:
            _, writer = await dial(there)
            writer.write(b"x")
            await sink.until(1)
            await there.set_fault(LinkFault(partition=True))
            await eventually(lambda: sink.closed == ["reset"])
            reader, writer = await dial(there)
            with pytest.raises(ConnectionResetError):
                await reader.read(1)
            writer.close()

            reader, writer = await dial(back)
            writer.write(b"back")
            await sink.until(5)
            assert bytes(sink.received[-1]) == b"back"
            writer.close()

            await there.set_fault(CLEAR)
            _, writer = await dial(there)
            writer.write(b"healed")
            await sink.until(11)
            assert bytes(sink.received[-1]) == b"healed"
            writer.close()
        finally:
            await back.close()


class VirtualClock:
    """Time that passes only when the proxy sleeps: throughput measured without a stopwatch."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += 1
        await asyncio.sleep(0)


async def test_a_bandwidth_limit_bounds_throughput_on_a_virtual_clock() -> None:
    """At 64 KiB/s, 512 KiB take exactly 8 s of the proxy's clock to cross, and arrive whole:
    the bound is the proxy's own pacing, counted in bytes and virtual seconds."""
    clock = VirtualClock()
    rate = 64 * 1024
    options = {"fault": LinkFault(bandwidth=rate), "clock": clock, "sleep": clock.sleep}
    async with sink_and_proxy(**options) as (sink, _):
        _, writer = await dial(_)
        payload = os.urandom(512 * 1024)
        writer.write(payload)
        await writer.drain()
        await sink.until(len(payload))
        assert bytes(sink.received[0]) == payload
        assert clock.now == pytest.approx(len(payload) / rate)
        assert clock.slept >= 8
        writer.close()


async def test_latency_delays_each_direction_on_a_virtual_clock() -> None:
    """With 200 ms each way, a request and its answer cross after 200 ms of the proxy's clock
    each: a round trip of 400 ms."""
    clock = VirtualClock()
    options = {"fault": LinkFault(latency=0.2), "clock": clock, "sleep": clock.sleep}
    async with sink_and_proxy(**options) as (sink, proxy):
        reader, writer = await dial(proxy)
        writer.write(b"ping")
        await sink.until(4)
        assert clock.now == pytest.approx(0.2)
        sink.writers[0].write(b"pong")
        assert await reader.readexactly(4) == b"pong"
        assert clock.now == pytest.approx(0.4)
        writer.close()


async def test_a_link_set_starts_heals_and_closes_every_proxy() -> None:
    """A link set has one proxy per route on its own port; heal clears every fault."""
    links = LinkSet(
        [Route("shanghai", "jiangsu", "127.0.0.1:9"), Route("jiangsu", "shanghai", "127.0.0.1:9")]
    )
    await links.start()
    try:
        assert len({p.address for p in links.proxies.values()}) == 2
        await links.link("shanghai", "jiangsu").set_fault(LinkFault(blackhole=True))
        await links.heal()
        assert all(p.fault.is_clear for p in links.proxies.values())
        assert links.link("jiangsu", "shanghai").flowing.is_set()
    finally:
        await links.close()

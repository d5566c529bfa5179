"""Fault-injecting TCP proxies on loopback, one per directed link of the mesh.

A ``LinkProxy`` for ``sender → receiver`` listens on a loopback port; the sender's node dials
it instead of the receiver (``[peers.<receiver>] address`` in the sender's ``node.toml``), and
the proxy dials the receiver's real gRPC address and relays bytes both ways, delayed, held or
cut as its current ``LinkFault`` says (the model and why it is what TCP would do: ``faults``).

Rules kept here:
- Bytes pass unchanged and in order: the nodes' mutual TLS runs end to end through the
  proxy, which holds no key and sees only ciphertext. The sender still checks that the far
  end is the manifest's node: its channel verifies the TLS name of the peer's node id, not
  the address it dialled (``node.transport.client``).
- A link's fault changes at run time (``set_fault``); what is in flight is timed by the
  fault in force when it is due to be written. ``reset_connections`` cuts every open
  connection at one moment.
- What one direction of a connection holds is bounded (``buffer_bytes``): past it the proxy
  stops reading, as a full TCP window would, so a blackholed sender blocks instead of
  filling this process's memory.
- Resets are real RSTs (``SO_LINGER`` 0), so both ends see ECONNRESET, not a clean close.
- Clock and sleep are injected: a test drives bandwidth and latency with a fake clock, and
  counts bytes instead of timing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from node.mesh.faults import CLEAR, LinkFault, Pacer, reset_allowance
from node.mesh.layout import read_manifest
from node.mesh.record import MeshLink

CHUNK: Final = 65536
"""Bytes read at once from one side."""
BUFFER_BYTES: Final = 1 << 20
"""Bytes one direction of one connection may hold before the proxy stops reading it."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class LinkStats:
    """What crossed a link since it started (both directions, every connection)."""

    connections: int = 0
    """Connections accepted."""
    open: int = 0
    resets: int = 0
    """Connections reset by a fault (partition, reset, or the receiver unreachable)."""
    bytes_forward: int = 0
    """Bytes delivered from the sender to the receiver."""
    bytes_back: int = 0
    """Bytes delivered from the receiver back to the sender."""
    bytes_read: int = 0
    """Bytes read from either side, delivered or not yet."""
    read_pauses: int = 0
    """Times a direction stopped reading because it held ``buffer_bytes`` undelivered."""


def abort(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a RST, so the far end sees a reset, not an end of stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _ConnectionReset(Exception):
    """A fault cut this connection."""


@dataclass
class _Direction:
    """One direction of one relayed connection: bytes read, waiting for their time."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    forward: bool
    """Sender to receiver (True) or back."""
    pacer: Pacer
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    """(read at, bytes); empty bytes is the end of the stream."""
    queued: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)


class _Connection:
    def __init__(
        self,
        link: LinkProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        rng: random.Random,
    ) -> None:
        self.link = link
        self.client = client[1]
        self.server = server[1]
        self.crossed = 0
        # Seeded from the link's generator: the same seed, the same faults, connection by
        # connection (S311: a test network's dice, not a secret).
        self.directions = [
            _Direction(client[0], server[1], True, Pacer(random.Random(rng.random()))),  # noqa: S311
            _Direction(server[0], client[1], False, Pacer(random.Random(rng.random()))),  # noqa: S311
        ]
        self.tasks: list[asyncio.Task[None]] = []
        self.was_reset = False

    async def relay(self) -> None:
        """Relay both ways until both ends have closed, or a fault or an end resets it."""
        for d in self.directions:
            self.tasks += [
                asyncio.create_task(self._read(d)),
                asyncio.create_task(self._write(d)),
            ]
        try:
            await asyncio.gather(*self.tasks)
        except (OSError, _ConnectionReset):
            self.reset()
        except asyncio.CancelledError:
            if not self.was_reset:  # cancelled from outside, not by a reset
                raise
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for writer in (self.client, self.server):
                if not writer.is_closing():
                    writer.close()

    def reset(self) -> None:
        """Abort both sides with a RST; the relay tasks end."""
        self.was_reset = True
        for writer in (self.client, self.server):
            if not writer.is_closing():
                abort(writer)
        for task in self.tasks:
            task.cancel()

    async def _read(self, d: _Direction) -> None:
        while True:
            while d.queued >= self.link.buffer_bytes:
                self.link.stats.read_pauses += 1
                d.drained.clear()
                await d.drained.wait()
            data = await d.reader.read(CHUNK)
            d.queue.append((self.link.clock(), data))
            d.queued += len(data)
            self.link.stats.bytes_read += len(data)
            d.arrived.set()
            if not data:
                return

    async def _write(self, d: _Direction) -> None:
        link = self.link
        while True:
            while not d.queue:
                d.arrived.clear()
                await d.arrived.wait()
            await link.flowing.wait()
            read_at, data = d.queue[0]
            if not data:
                with contextlib.suppress(OSError):
                    if d.writer.can_write_eof():
                        d.writer.write_eof()
                return
            fault = link.fault
            due = d.pacer.due(fault, len(data), max(read_at, link.opened_at))
            wait = due - link.clock()
            if wait > 0:
                await link.sleep(wait)
            await link.flowing.wait()
            fault = link.fault
            allowed = reset_allowance(fault, self.crossed, len(data))
            if allowed is not None:
                self._deliver(d, data[:allowed])
                await d.writer.drain()
                link.stats.resets += 1
                raise _ConnectionReset
            self._deliver(d, data)
            d.queue.popleft()
            d.queued -= len(data)
            d.drained.set()
            await d.writer.drain()

    def _deliver(self, d: _Direction, data: bytes) -> None:
        d.writer.write(data)
        self.crossed += len(data)
        if d.forward:
            self.link.stats.bytes_forward += len(data)
        else:
            self.link.stats.bytes_back += len(data)


class LinkProxy:
    """One directed link ``sender → receiver``: a loopback listener relaying to ``target``.

    The listening socket is bound when the proxy is made, so its address is known (and can
    be written into the sender's configuration) before any event loop runs; ``start`` begins
    serving it.
    """

    def __init__(
        self,
        sender: str,
        receiver: str,
        target: str,
        *,
        fault: LinkFault = CLEAR,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        buffer_bytes: int = BUFFER_BYTES,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.sender = sender
        self.receiver = receiver
        self.target = target
        self.target_host, _, port_text = target.rpartition(":")
        self.target_port = int(port_text)
        self.buffer_bytes = buffer_bytes
        self.clock = clock
        self.sleep = sleep
        self.stats = LinkStats()
        self.fault = CLEAR
        self.flowing = asyncio.Event()
        """Set while no blackhole holds the link."""
        self.opened_at = -float("inf")
        """When the last blackhole lifted: held bytes count as sent then."""
        self._rng = random.Random(f"{seed}:{sender}:{receiver}")  # noqa: S311
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        """The task of each accepted connection, awaited on close."""
        self._pending: set[asyncio.StreamWriter] = set()
        """Accepted, not yet relaying (dialling the receiver)."""
        self._socket = socket.create_server((host, port), reuse_port=False)
        self._server: asyncio.Server | None = None
        self._apply(fault)

    @property
    def name(self) -> str:
        """``sender:receiver``, as ``yrd load --pairs`` names a directed pair."""
        return f"{self.sender}:{self.receiver}"

    @property
    def address(self) -> str:
        """host:port the sender dials."""
        host, port = self._socket.getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, sock=self._socket)

    async def set_fault(self, fault: LinkFault) -> None:
        """Put ``fault`` in force now (CLEAR heals); a partition resets every open connection."""
        self._apply(fault)
        if fault.partition:
            await self.reset_connections()

    def _apply(self, fault: LinkFault) -> None:
        was_held = not self.flowing.is_set()
        self.fault = fault
        if fault.blackhole:
            self.flowing.clear()
        else:
            if was_held:
                self.opened_at = self.clock()
            self.flowing.set()

    async def reset_connections(self) -> int:
        """Reset (RST) every open connection of the link now; how many there were."""
        connections = list(self._connections)
        for writer in list(self._pending):
            abort(writer)
        for connection in connections:
            connection.reset()
        self.stats.resets += len(connections)
        await asyncio.sleep(0)  # let the relays see their cancellation
        return len(connections)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        else:
            self._socket.close()
        for writer in list(self._pending):
            abort(writer)
        for connection in list(self._connections):
            connection.reset()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._relay(reader, writer)
        finally:
            self._handlers.discard(handler)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.fault.partition:
            self.stats.resets += 1
            abort(writer)
            return
        self._pending.add(writer)
        try:
            server = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            # The receiver is down: the sender sees its connection reset, as it would see a
            # refused one without the proxy in between.
            self.stats.resets += 1
            abort(writer)
            return
        finally:
            self._pending.discard(writer)
        if writer.is_closing():  # reset while dialling
            abort(server[1])
            return
        connection = _Connection(self, (reader, writer), server, self._rng)
        self._connections.add(connection)
        self.stats.open += 1
        try:
            await connection.relay()
        finally:
            self.stats.open -= 1
            self._connections.discard(connection)


@dataclass(frozen=True)
class Route:
    """A directed link of a mesh: who sends, who receives, at which real address."""

    sender: str
    receiver: str
    target: str
    """The receiver's gRPC host:port (from the manifest)."""


class LinkSet:
    """The proxies of every directed link of a mesh, by ``sender:receiver``."""

    def __init__(self, routes: Iterable[Route], *, seed: int = 0) -> None:
        self.proxies = {
            p.name: p
            for p in (LinkProxy(r.sender, r.receiver, r.target, seed=seed) for r in routes)
        }

    @classmethod
    def for_mesh(cls, directory: Path, *, seed: int = 0) -> LinkSet:
        """A proxy for every directed link between the members of the mesh in
        ``directory``, relaying to each receiver's endpoint in the manifest."""
        members = read_manifest(directory).members
        return cls(mesh_routes({m.province: m.endpoint for m in members}), seed=seed)

    def link(self, sender: str, receiver: str) -> LinkProxy:
        return self.proxies[f"{sender}:{receiver}"]

    def mesh_links(self) -> list[MeshLink]:
        """The links as ``mesh.json`` lists them (and ``Mesh`` routes the nodes through)."""
        return [MeshLink(p.sender, p.receiver, p.address, p.target) for p in self.proxies.values()]

    async def apply(self, faults: Mapping[str, LinkFault], reset: Iterable[str] = ()) -> None:
        """Each link's fault as ``faults`` names it by ``sender:receiver`` (clear when not
        named), then reset the open connections of the links in ``reset``."""
        for name, proxy in self.proxies.items():
            await proxy.set_fault(faults.get(name, CLEAR))
        for name in reset:
            await self.proxies[name].reset_connections()

    async def start(self) -> None:
        for proxy in self.proxies.values():
            await proxy.start()

    async def heal(self) -> None:
        """Every link clear."""
        for proxy in self.proxies.values():
            await proxy.set_fault(CLEAR)

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.proxies.values()))


def mesh_routes(endpoints: dict[str, str]) -> list[Route]:
    """Every directed link between the provinces of ``endpoints`` (province -> gRPC address),
    in the order of the mapping: each sender's links, then the next sender's."""
    return [
        Route(sender, receiver, target)
        for sender in endpoints
        for receiver, target in endpoints.items()
        if receiver != sender
    ]


def links_refused(option: str, replicas: int) -> str | None:
    """Why ``option`` (link proxies) cannot serve a mesh of ``replicas`` per province (None:
    it can): the proxies route a province's first replica to each peer's first replica."""
    if replicas == 1:
        return None
    return (
        f"{option} routes only a province's first replica through the link proxies, each "
        "to its peer's first replica, so replicas could not fail over and link faults would "
        f"miss the others; with {replicas} replicas per province, run without {option}"
    )

"""Exchange benchmark: signed, durable, receipted delivery between two real nodes, measured
against bare gRPC echo over the same mutual TLS, in one run on this machine.

Run::

    .venv/bin/python bench/exchange.py                          # full run (about 30 s)
    .venv/bin/python bench/exchange.py --quick                  # smoke run (a few s)
    .venv/bin/python bench/exchange.py --paths node-stream --messages 20000   # to profile

What is measured, per path: messages/s, p50 and p99 latency per message, the ratio to the
matching bare echo, and the CPU time (user + system, all threads) each side's process spent
per message. The CPU columns say whether a side was saturated (µs/msg × msg/s ≈ share of a
core) and stay meaningful when other work on the machine makes the rates noisy.

``echo unary``
    ``PeerChannel.deliver`` (the node's own client code) against a grpc.aio server whose
    ``Deliver`` handler answers with a receipt-sized blob; ``--concurrency`` calls in flight.
``echo stream``
    One ``DeliverStream`` bidi stream, a sliding window of ``--window`` messages in flight;
    the handler answers each request with a receipt-sized blob. This is the ceiling for a
    pipelined stream in grpc.aio on this machine.
``echo stream, lock-step batches``
    ``PeerChannel.exchange_batch`` (the node's own stream client) against the same echo
    server, in batches of the delivery worker's ``batch_size``: what the echo stream gives
    under the worker's send-a-batch, wait-for-all policy, with no signing and no store.
``floor: echo + Ed25519 both ways``
    The sliding-window echo stream doing the cryptography no node can skip: the client seals
    each probe with the sender's key (``seal``), the server verifies each request's signature
    and answers with a receipt built and signed by ``receipt_for``, the client verifies each
    reply's signature. No other checks, no store.
``floor: + durable inbox row``
    The same, and the server stores each request with its receipt as one inbox row through
    the node's own store (group commit, WAL, ``synchronous=FULL``) before answering. The
    client stores nothing, so this floor is kinder than a node pair (whose sender also
    commits its outbox and both sides an evidence log).
``node unary``
    The sender seals a probe with its signing key, calls ``PeerChannel.deliver`` with
    ``--concurrency`` callers in flight, and checks each signed receipt with ``check_reply``.
    The receiver runs every check, stores the message, audit entries and receipt durably
    (SQLite WAL, ``synchronous=FULL``) and signs the receipt.
``node stream``
    The real path: ``Node.courier.send()`` seals probes and commits them to the outbox in chunks of
    ``--chunk`` (the producer keeps at most ``--backlog`` messages pending, so the outbox
    fills like steady traffic instead of holding one huge queue), the delivery worker
    streams them, checks each receipt and records it durably. Latency is the outbox row's
    ``created_at`` (taken before sealing) to ``delivered_at`` (receipt checked); throughput
    is messages over the wall time from the first ``send()`` to the last receipt.

Why the comparison is fair:

- Same machine, same run, same TLS: the echo server presents the receiver's certificate
  from the same ``init_mesh`` folder and requires the sender's client certificate, with the
  same server and channel options as the nodes (message limits, ``so_reuseport`` off).
- Same process layout: the server side (echo server, receiver node started with
  ``python -m node.cli.main node run``) is a separate process from the client side (this
  process: echo client, in-process sender ``Node``), so each side has its own interpreter
  and GIL, as two nodes do.
- Same sizes: the echo request is as large as a sealed probe envelope and the echo reply as
  large as the receiver's signed receipt, both measured from real messages of this mesh.
- Same client code where possible: both unary paths use ``PeerChannel.deliver``; the
  lock-step echo row uses ``PeerChannel.exchange_batch``, the method the delivery worker uses.
- Warm-up: every path first runs a short warm-up on its connection, which is not counted.

The headline ratios are node stream ÷ echo stream (sliding window) and node unary ÷ echo
unary. The floor rows say how much of the gap is the protocol itself (every message signed
and verified, every receipt signed and verified, stored before it is answered) and how much
is the node's own work on top (its full checks, evidence log, outbox, metrics). The lock-step
echo row separates what the worker's batching policy costs (on bare
echo: nothing measurable) from what signing, checking and storing cost. The load average
is printed before and after: on a shared machine, compare runs only at similar load.
Benchmarks print figures; they never assert timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc

from node.mesh.access import bearer, create_mesh, mesh_token
from node.mesh.layout import node_id_for, read_manifest
from node.mesh.processes import node_run_command
from node.protocol.checks import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Authenticated,
    CheckLimits,
    check_reply,
)
from node.protocol.envelope import digest, header, seal, signing_input
from node.protocol.replies import receipt_for
from node.runtime.config import NodeConfig, load_config
from node.runtime.node import Node
from node.store import inbox, outbox
from node.store.database import Database
from node.transport.client import PeerChannel
from node.transport.server import TRANSPORT_HEADROOM
from node.trust.keys import load_signing_key
from node.trust.manifest import Member
from node.trust.tls import TlsMaterial
from node.wire import DELIVER_STREAM_METHOD, SERVICE_NAME, pb

SENDER = "shanghai"
RECEIVER = "jiangsu"
CALL_TIMEOUT = 30.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
POLL_SECONDS = 0.002
SCRIPT = Path(__file__).resolve()

PATHS = (
    "echo-unary",
    "echo-stream",
    "echo-lockstep",
    "echo-signed",
    "echo-durable",
    "node-unary",
    "node-stream",
)
"""Every path, in table order (``--paths`` selects some)."""
ECHO_MODES = {"echo-signed": "signed", "echo-durable": "durable"}
"""The floor rows, each against its own echo server doing that much of a node's work."""
BASELINES = {
    "echo-lockstep": "echo-stream",
    "echo-signed": "echo-stream",
    "echo-durable": "echo-stream",
    "node-unary": "echo-unary",
    "node-stream": "echo-stream",
}
"""The bare-echo path each path's throughput is divided by."""

Run = Callable[[int, "CpuMeter"], Awaitable[tuple[int, float, list[float]]]]
"""Runs a path for ``n`` messages; returns (messages, wall seconds, per-message latencies).
It may stop the meter itself before work that is not part of the path (collecting rows)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- results -------------------------------------------------------------------------------


@dataclass
class Result:
    key: str
    """One of PATHS."""
    label: str
    messages: int
    seconds: float
    latencies: list[float]
    """Per-message latency in seconds."""
    client_cpu: float = float("nan")
    """CPU seconds used by the client side (this process) during the run."""
    server_cpu: float = float("nan")
    """CPU seconds used by the server-side process during the run."""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) used so far by ``pid`` (None: this process)."""
    if pid is None:
        return time.process_time()
    try:
        # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return float("nan")


class CpuMeter:
    """CPU seconds used by this process and the server-side process over a timed region."""

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid
        self._start = (process_cpu(None), process_cpu(server_pid))
        self.stopped = False
        self.client = float("nan")
        self.server = float("nan")

    def stop(self) -> None:
        """End the region (the first call counts): post-processing after it is not charged."""
        if not self.stopped:
            self.stopped = True
            self.client = process_cpu(None) - self._start[0]
            self.server = process_cpu(self._server_pid) - self._start[1]


async def measured(
    key: str, label: str, run: Run, args: argparse.Namespace, server_pid: int
) -> list[Result]:
    """Warm ``run`` up (not counted), then measure it for ``--messages``; [] if not selected."""
    if key not in args.paths:
        return []
    await run(args.warmup, CpuMeter(None))
    meter = CpuMeter(server_pid)
    messages, seconds, latencies = await run(args.messages, meter)
    meter.stop()
    return [Result(key, label, messages, seconds, latencies, meter.client, meter.server)]


# -- child processes -------------------------------------------------------------------------


@dataclass
class Child:
    """A server-side process, stopped (SIGTERM, then SIGKILL) when the benchmark ends."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(name: str, argv: list[str], log_path: Path, children: list[Child]) -> Child:
    with log_path.open("wb") as log_file:
        # Its own session: a Ctrl-C in the terminal reaches only the benchmark, which then
        # stops its children in order instead of racing them.
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
        )
    child = Child(name, process, log_path)
    children.append(child)
    return child


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int) -> int:
    """A base port whose gRPC (+0..), HTTP (+1000..) and platform (+2000..) ports are free."""
    for _ in range(200):
        base = random.randrange(20000, 28000)
        if all(_free(base + off + i) for off in (0, 1000, 2000) for i in range(count)):
            return base
    raise RuntimeError("no free port range found")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(
    predicate: Callable[[], bool], child: Child, what: str, timeout: float = READY_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        child.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s\n{child.log_tail()}")
        await asyncio.sleep(0.05)


def http_json(url: str, token: str | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, headers=bearer(token))
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return int(error.code), None
    except (OSError, ValueError):
        return 0, None


# -- TLS and sizes -----------------------------------------------------------------------------


def tls_of(mesh: Path, province: str) -> TlsMaterial:
    folder = mesh / province
    return TlsMaterial.load(mesh / "ca/ca.crt", folder / "tls.crt", folder / "tls.key")


def verified(raw: bytes, signer: Member) -> pb.Envelope:
    """``raw`` parsed, once its signature verifies under one of ``signer``'s keys; the floor
    rows' whole check, where a node runs every check of ``check_envelope``."""
    envelope = pb.Envelope.FromString(raw)
    entry = signer.key(envelope.key_id)
    if entry is None or not entry.verify_key.verify(
        envelope.signature, signing_input(envelope.message)
    ):
        raise ValueError(f"a message from {signer.province} whose signature does not verify")
    return envelope


def authenticated(raw: bytes, envelope: pb.Envelope, sender: Member) -> Authenticated:
    """What ``receipt_for`` answers: a parsed, verified envelope of ``sender``."""
    return Authenticated(
        envelope=raw,
        message_bytes=envelope.message,
        message=pb.Message.FromString(envelope.message),
        digest=digest(envelope.message),
        key_id=envelope.key_id,
        signature=envelope.signature,
        sender=sender,
    )


def probe_sizes(mesh: Path) -> tuple[int, int]:
    """Bytes of a sealed probe envelope and of the receiver's signed receipt for it."""
    manifest = read_manifest(mesh)
    sender_key = load_signing_key(mesh / SENDER / "signing.key")
    receiver_key = load_signing_key(mesh / RECEIVER / "signing.key")
    now = time.time()
    message = pb.Message(
        header=header(
            sender=node_id_for(SENDER),
            recipient=node_id_for(RECEIVER),
            now=now,
            manifest_version=manifest.version,
        ),
        probe=pb.Probe(sequence=123456),
    )
    sealed = seal(message, sender_key)
    member = manifest.member(node_id_for(SENDER))
    assert member is not None
    accepted = authenticated(sealed.envelope, verified(sealed.envelope, member), member)
    receipt = receipt_for(
        accepted,
        me=node_id_for(RECEIVER),
        now=now,
        manifest_version=manifest.version,
        key=receiver_key,
    )
    return len(sealed.envelope), len(receipt.envelope)


# -- the bare echo server (runs in its own process) ------------------------------------------


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    limit = max_message_bytes + TRANSPORT_HEADROOM
    return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]


class EchoAnswer:
    """What a floor echo server does per request, besides answering over gRPC.

    ``signed``: what no node can skip: parse the envelope, verify the sender's signature
    (key from the manifest), and answer with a receipt built and signed by the node's own
    ``receipt_for``. ``durable``: that, plus the request and its receipt stored durably
    before the receipt leaves, as one inbox row written through the node's own store (group
    commit, WAL, ``synchronous=FULL``). Neither runs the node's other checks, its evidence
    log, metrics or logs: they are floors, not nodes.
    """

    def __init__(self, mesh: Path, db: Database | None) -> None:
        manifest = read_manifest(mesh)
        member = manifest.member(node_id_for(SENDER))
        assert member is not None
        self._member = member
        self._manifest_version = manifest.version
        self._key = load_signing_key(mesh / RECEIVER / "signing.key")
        self._me = node_id_for(RECEIVER)
        self._db = db

    def receipt(self, raw: bytes) -> tuple[Authenticated, bytes]:
        accepted = authenticated(raw, verified(raw, self._member), self._member)
        now = time.time()
        sealed = receipt_for(
            accepted,
            me=self._me,
            now=now,
            manifest_version=self._manifest_version,
            key=self._key,
        )
        return accepted, sealed.envelope

    def answer(self, raw: bytes) -> Awaitable[bytes]:
        """The signed receipt, once stored when durable. Checked and queued now, in order."""
        accepted, receipt = self.receipt(raw)
        future: asyncio.Future[bytes]
        if self._db is None:
            future = asyncio.get_running_loop().create_future()
            future.set_result(receipt)
            return future

        def store(conn: sqlite3.Connection) -> bytes:
            inbox.record(
                conn,
                sender=accepted.sender.node_id,
                message_id=accepted.message_id,
                digest=accepted.digest,
                payload_type=accepted.payload_type,
                envelope=raw,
                reply=receipt,
                received_at=time.time(),
            )
            return receipt

        return self._db.submit(store)


async def serve_echo(
    mesh: Path, listen: str, reply_bytes: int, max_message_bytes: int, mode: str, store: Path
) -> None:
    """A Deliver/DeliverStream server over the receiver's mutual TLS. ``plain``: no checks, no
    store, no signing; each request is answered with a blob the size of a signed receipt.
    ``signed`` and ``durable``: see ``EchoAnswer``."""
    tls = tls_of(mesh, RECEIVER)
    reply = bytes(reply_bytes)
    db = await Database.open(store) if mode == "durable" else None
    answering = EchoAnswer(mesh, db) if mode != "plain" else None

    async def deliver(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if answering is None:
            return reply
        return await answering.answer(request)

    async def deliver_stream(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        if answering is None:
            async for _ in requests:
                yield reply
            return
        # As the node does: each request is answered in order once stored, while the next
        # ones are already being read, checked and queued for the same group commit.
        answers: asyncio.Queue[Awaitable[bytes] | None] = asyncio.Queue()

        async def read_all() -> None:
            async for request in requests:
                answers.put_nowait(answering.answer(request))
            answers.put_nowait(None)

        reading = asyncio.create_task(read_all())
        try:
            while (answer := await answers.get()) is not None:
                yield await answer
            await reading
        finally:
            reading.cancel()

    server = grpc.aio.server(
        options=[*channel_options(max_message_bytes), ("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE_NAME,
                {
                    "Deliver": grpc.unary_unary_rpc_method_handler(deliver),
                    "DeliverStream": grpc.stream_stream_rpc_method_handler(deliver_stream),
                },
            ),
        )
    )
    credentials = grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
    )
    if server.add_secure_port(listen, credentials) == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("echo server ready", flush=True)
    await stop.wait()
    await server.stop(1.0)
    if db is not None:
        await db.close()


# -- echo client paths -------------------------------------------------------------------------


async def run_unary(
    call: Callable[[int], Awaitable[None]], messages: int, concurrency: int
) -> tuple[int, float, list[float]]:
    """``messages`` calls of ``call(i)`` with ``concurrency`` in flight; latency of each."""
    latencies: list[float] = []
    next_index = 0

    async def caller() -> None:
        nonlocal next_index
        while next_index < messages:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, messages)):
            group.create_task(caller())
    return messages, time.perf_counter() - started, latencies


async def run_stream_window(
    method: grpc.aio.StreamStreamMultiCallable,
    request: Callable[[int], bytes],
    messages: int,
    window: int,
    check: Callable[[bytes], None] | None = None,
) -> tuple[int, float, list[float]]:
    """One bidi stream, at most ``window`` requests unanswered at any time; ``request(i)``
    makes the i-th request, ``check`` looks at each reply."""
    call = method(wait_for_ready=False)
    sent_at: deque[float] = deque()
    slots = asyncio.Semaphore(window)
    latencies: list[float] = []

    async def writer() -> None:
        for i in range(messages):
            await slots.acquire()
            sent_at.append(time.perf_counter())
            await call.write(request(i))
        await call.done_writing()

    started = time.perf_counter()
    writing = asyncio.create_task(writer())
    try:
        for _ in range(messages):
            reply = await call.read()
            if reply is grpc.aio.EOF:
                raise RuntimeError("echo stream closed early")
            if check is not None:
                check(reply)
            latencies.append(time.perf_counter() - sent_at.popleft())
            slots.release()
        await writing
    finally:
        writing.cancel()
    elapsed = time.perf_counter() - started
    await call.read()  # the end of the stream
    return messages, elapsed, latencies


async def run_lockstep(
    channel: PeerChannel, request: bytes, messages: int, batch: int
) -> tuple[int, float, list[float]]:
    """``PeerChannel.exchange_batch`` in batches of ``batch``, one batch in flight."""
    latencies: list[float] = []
    started = time.perf_counter()
    done = 0
    while done < messages:
        size = min(batch, messages - done)
        t0 = time.perf_counter()

        def answered(_index: int, _reply: bytes, t0: float = t0) -> None:
            latencies.append(time.perf_counter() - t0)

        await channel.exchange_batch([request] * size, timeout=CALL_TIMEOUT, on_reply=answered)
        done += size
    return messages, time.perf_counter() - started, latencies


def sender_outbox_count(sender: Node, *, exclude: str) -> int:
    row = (
        sender.db.reader()
        .execute("SELECT count(*) FROM outbox WHERE payload_type != ?", (exclude,))
        .fetchone()
    )
    return int(row[0])


@dataclass
class EchoServer:
    child: Child
    address: str


async def start_echo(
    mode: str, mesh: Path, workdir: Path, children: list[Child], reply_bytes: int
) -> EchoServer:
    port = free_port()
    child = spawn(
        f"echo server ({mode})",
        [
            sys.executable,
            str(SCRIPT),
            "--serve-echo",
            str(mesh),
            "--listen",
            f"127.0.0.1:{port}",
            "--reply-bytes",
            str(reply_bytes),
            "--echo-mode",
            mode,
            "--echo-store",
            str(workdir / f"echo-{mode}.db"),
        ],
        workdir / f"echo-{mode}.log",
        children,
    )
    await wait_until(lambda: "ready" in child.log_tail(), child, f"echo server ({mode})")
    return EchoServer(child, f"127.0.0.1:{port}")


def raw_channel(address: str, tls: TlsMaterial, max_message_bytes: int) -> grpc.aio.Channel:
    """A channel with PeerChannel's TLS and options, for the sliding-window stream, which
    PeerChannel does not offer; so only the call pattern differs."""
    target = node_id_for(RECEIVER)
    return grpc.aio.secure_channel(
        address,
        grpc.ssl_channel_credentials(
            root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
        ),
        options=[
            ("grpc.ssl_target_name_override", target),
            ("grpc.default_authority", target),
            *channel_options(max_message_bytes),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
            ("grpc.keepalive_time_ms", 20000),
            ("grpc.keepalive_timeout_ms", 10000),
        ],
    )


class SignedProbes:
    """The client half of the floor rows: each request a freshly sealed probe (as the node's
    sender seals each message), each reply's signature verified (as it checks each receipt)."""

    def __init__(self, mesh: Path) -> None:
        manifest = read_manifest(mesh)
        receiver = manifest.member(node_id_for(RECEIVER))
        assert receiver is not None
        self._receiver = receiver
        self._version = manifest.version
        self._key = load_signing_key(mesh / SENDER / "signing.key")

    def request(self, sequence: int) -> bytes:
        message = pb.Message(
            header=header(
                sender=node_id_for(SENDER),
                recipient=self._receiver.node_id,
                now=time.time(),
                manifest_version=self._version,
            ),
            probe=pb.Probe(sequence=sequence),
        )
        return seal(message, self._key).envelope

    def check(self, reply: bytes) -> None:
        verified(reply, self._receiver)


async def floor_run(
    stream: grpc.aio.StreamStreamMultiCallable,
    probes: SignedProbes,
    window: int,
    messages: int,
    _meter: CpuMeter,
) -> tuple[int, float, list[float]]:
    return await run_stream_window(stream, probes.request, messages, window, probes.check)


async def echo_paths(
    args: argparse.Namespace,
    mesh: Path,
    workdir: Path,
    children: list[Child],
    request_bytes: int,
    reply_bytes: int,
    batch_size: int,
    max_message_bytes: int,
) -> list[Result]:
    tls = tls_of(mesh, SENDER)
    results: list[Result] = []
    if {"echo-unary", "echo-stream", "echo-lockstep"} & set(args.paths):
        server = await start_echo("plain", mesh, workdir, children, reply_bytes)
        # The node's own client for the unary and lock-step rows.
        peer = PeerChannel(
            node_id_for(RECEIVER), server.address, tls, max_message_bytes=max_message_bytes
        )
        raw = raw_channel(server.address, tls, max_message_bytes)
        request = bytes(request_bytes)
        stream = raw.stream_stream(DELIVER_STREAM_METHOD)
        try:

            async def unary_call(_: int) -> None:
                await peer.deliver(request, timeout=CALL_TIMEOUT)

            results += await measured(
                "echo-unary",
                "echo unary",
                lambda n, _: run_unary(unary_call, n, args.concurrency),
                args,
                server.child.pid,
            )
            results += await measured(
                "echo-stream",
                f"echo stream (window {args.window})",
                lambda n, _: run_stream_window(stream, lambda _: request, n, args.window),
                args,
                server.child.pid,
            )
            results += await measured(
                "echo-lockstep",
                f"echo stream (lock-step batches of {batch_size})",
                lambda n, _: run_lockstep(peer, request, n, batch_size),
                args,
                server.child.pid,
            )
        finally:
            await peer.close()
            await raw.close()
            server.child.stop()
    probes = SignedProbes(mesh)
    labels = {
        "echo-signed": "floor: echo + Ed25519 both ways",
        "echo-durable": "floor: + durable inbox row",
    }
    for key, mode in ECHO_MODES.items():
        if key not in args.paths:
            continue
        server = await start_echo(mode, mesh, workdir, children, reply_bytes)
        raw = raw_channel(server.address, tls, max_message_bytes)
        stream = raw.stream_stream(DELIVER_STREAM_METHOD)
        run: Run = partial(floor_run, stream, probes, args.window)
        try:
            results += await measured(key, labels[key], run, args, server.child.pid)
        finally:
            await raw.close()
            server.child.stop()
    return results


# -- node paths ----------------------------------------------------------------------------


def pending(conn: sqlite3.Connection) -> int:
    """Probes not yet settled in the sender's outbox: an index-only count, cheaper than
    ``outbox.depth`` (which also finds the oldest row), since it is polled every few ms."""
    row = conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE peer = ? AND state = 'pending'", (RECEIVER,)
    ).fetchone()
    return int(row[0])


async def send_stream(
    sender: Node, messages: int, chunk: int, backlog: int, meter: CpuMeter
) -> tuple[int, float, list[float]]:
    """Commit ``messages`` probes through ``Node.send`` and wait for every receipt."""
    reader = sender.db.reader()
    ids: list[str] = []
    started_wall = time.time()
    started = time.perf_counter()
    sequence = 0
    while len(ids) < messages:
        size = min(chunk, messages - len(ids))
        # Polled, not hooked: the benchmark reads the store and does not reach into the
        # delivery worker.
        while pending(reader) + size > backlog:  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
        bodies = [("probe", pb.Probe(sequence=sequence + i)) for i in range(size)]
        ids.extend(await sender.courier.send(RECEIVER, bodies))
        sequence += size
    while pending(reader) > 0:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - started
    meter.stop()
    wanted = set(ids)
    items = [
        item
        for item in outbox.list_items(reader, peer=RECEIVER, limit=len(ids) + 10_000_000)
        if item.message_id in wanted
    ]
    undelivered = [i for i in items if i.state != outbox.DELIVERED or i.delivered_at is None]
    if len(items) != len(ids) or undelivered:
        raise RuntimeError(
            f"{len(undelivered)} of {len(ids)} probes were not delivered "
            f"(first: {undelivered[0].state}: {undelivered[0].last_error})"
            if undelivered
            else f"only {len(items)} of {len(ids)} probes are in the outbox"
        )
    latencies = [i.delivered_at - i.created_at for i in items if i.delivered_at is not None]
    last = max(i.delivered_at for i in items if i.delivered_at is not None)
    # The store's timestamps are more precise than the depth poll for the end of the run.
    return (
        len(ids),
        min(elapsed, last - started_wall) if last > started_wall else elapsed,
        latencies,
    )


async def node_paths(
    args: argparse.Namespace,
    mesh: Path,
    workdir: Path,
    children: list[Child],
    sender_config: NodeConfig,
) -> tuple[list[Result], dict[str, object]]:
    receiver_config = load_config(mesh / RECEIVER / "node.toml", {})
    receiver = spawn(
        "receiver node",
        node_run_command(mesh / RECEIVER / "node.toml", "--log-level", "warning"),
        workdir / "receiver.log",
        children,
    )
    http = f"http://{receiver_config.http_listen}"
    await wait_until(
        lambda: http_json(f"{http}/readyz")[0] == 200, receiver, "receiver node /readyz"
    )
    sender = Node(sender_config)
    await sender.start()
    results: list[Result] = []
    facts: dict[str, object] = {"receiver_pid": receiver.pid}
    sent = 0
    """Messages the receiver has accepted from this run (warm-ups included)."""
    try:
        peer_id = node_id_for(RECEIVER)
        credentials = sender.credentials
        limits = CheckLimits(sender_config.max_message_bytes)

        async def stream_run(n: int, meter: CpuMeter) -> tuple[int, float, list[float]]:
            nonlocal sent
            outcome = await send_stream(sender, n, args.chunk, args.backlog, meter)
            sent += n
            return outcome

        results += await measured(
            "node-stream",
            "node stream (Node.send → worker)",
            stream_run,
            args,
            receiver.pid,
        )

        channel = PeerChannel(
            peer_id,
            receiver_config.grpc_listen,
            tls_of(mesh, SENDER),
            max_message_bytes=sender_config.max_message_bytes,
        )

        async def unary_call(i: int) -> None:
            nonlocal sent
            message = pb.Message(
                header=header(
                    sender=sender_config.node_id,
                    recipient=peer_id,
                    now=time.time(),
                    manifest_version=credentials.manifest.version,
                ),
                probe=pb.Probe(sequence=i),
            )
            sealed = seal(message, credentials.signing_key)
            raw = await channel.deliver(sealed.envelope, timeout=CALL_TIMEOUT)
            reply = check_reply(
                raw,
                peer=peer_id,
                manifest=credentials.manifest,
                me=sender_config.node_id,
                now=time.time(),
                request_id=sealed.message_id,
                request_digest=sealed.digest,
                limits=limits,
            )
            if reply.payload_type != "receipt":
                raise RuntimeError(f"expected a receipt, got {reply.payload_type}")
            sent += 1

        try:
            results += await measured(
                "node-unary",
                "node unary (seal, Deliver, check receipt)",
                lambda n, _: run_unary(unary_call, n, args.concurrency),
                args,
                receiver.pid,
            )
        finally:
            await channel.close()

        receiver.check_alive()
        status_code, status = http_json(f"{http}/v1/status", mesh_token(mesh, "", "read"))
        if status_code == 200 and isinstance(status, dict):
            facts["receiver_inbox"] = status.get("inbox_messages")
        # Plus what the sender node sends by itself on start-up (its catalog announcement).
        facts["expected_inbox"] = sent + sender_outbox_count(sender, exclude="probe")
        facts["receiver_warnings"] = [
            line for line in receiver.log_tail(10_000).splitlines() if line.strip()
        ]
        facts["sender_commits"] = sender.db.commits
        facts["sender_jobs"] = sender.db.jobs_committed
    finally:
        await sender.stop()
        receiver.stop()
    return results, facts


# -- report ----------------------------------------------------------------------------------


def machine_line() -> str:
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"machine: {platform.system()} {platform.machine()}, {cores} cores "
        f"({usable} usable){', ' + model if model else ''}; Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}"
    )


def load_line() -> str:
    try:
        one, five, _ = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, ValueError):
        return "load average: unknown"
    return f"load average: {one} (1 min), {five} (5 min)"


def print_table(results: list[Result]) -> None:
    by_key = {r.key: r for r in results}
    header_row = (
        f"{'path':<44} {'messages':>8} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'ratio':>6} {'client µs/msg':>13} {'server µs/msg':>13}"
    )
    print(header_row)
    print("-" * len(header_row))
    for r in sorted(results, key=lambda r: PATHS.index(r.key)):
        base = by_key.get(BASELINES.get(r.key, ""))
        ratio = f"{r.rate / base.rate:.2f}×" if base else "—"
        print(
            f"{r.label:<44} {r.messages:>8} {r.rate:>7.0f} {r.quantile(0.5) * 1e3:>7.2f} "
            f"{r.quantile(0.99) * 1e3:>7.2f} {ratio:>6} "
            f"{r.client_cpu / r.messages * 1e6:>13.0f} {r.server_cpu / r.messages * 1e6:>13.0f}"
        )
    print()
    compared = [f"{k} ÷ {v}" for k, v in BASELINES.items() if k in by_key and v in by_key]
    if compared:
        print(f"ratio: msg/s of {'; '.join(compared)}")
    print(
        "µs/msg: CPU time (user + system, all threads) per message; client = this process "
        "(echo client or sender Node), server = the echo server or receiver node process"
    )
    node, echo = by_key.get("node-stream"), by_key.get("echo-stream")
    lockstep = by_key.get("echo-lockstep")
    if node and echo:
        extra = f"; ÷ echo lock-step: {node.rate / lockstep.rate:.2f}×" if lockstep else ""
        print(f"stream target ≥ 0.5× bare stream echo: {node.rate / echo.rate:.2f}×{extra}")
    floors = [by_key[k] for k in ECHO_MODES if k in by_key]
    if node and floors:
        shares = ", ".join(f"{f.label}: {node.rate / f.rate:.2f}×" for f in floors)
        print(f"node stream ÷ floor rows: {shares}")


async def benchmark(args: argparse.Namespace, workdir: Path) -> None:
    children: list[Child] = []
    try:
        mesh = workdir / "mesh"
        create_mesh(
            mesh,
            now=time.time(),
            base_port=free_base_port(2),
            provinces=(SENDER, RECEIVER),
            platforms=False,  # the nodes alone: no platform polls in the figures
        )
        sender_config = load_config(mesh / SENDER / "node.toml", {})
        batch_size = sender_config.delivery.batch_size
        request_bytes, reply_bytes = probe_sizes(mesh)

        print(machine_line())
        print(f"{load_line()} before the run")
        print(
            f"parameters: messages={args.messages} warmup={args.warmup} "
            f"concurrency={args.concurrency} window={args.window} "
            f"delivery batch_size={batch_size} chunk={args.chunk} backlog={args.backlog}; "
            f"request {request_bytes} B (sealed probe), reply {reply_bytes} B (signed receipt)"
        )
        print()
        results: list[Result] = []
        if any(p.startswith("echo-") for p in args.paths):
            results += await echo_paths(
                args,
                mesh,
                workdir,
                children,
                request_bytes,
                reply_bytes,
                batch_size,
                sender_config.max_message_bytes,
            )
        facts: dict[str, object] = {}
        if any(p.startswith("node-") for p in args.paths):
            nodes, facts = await node_paths(args, mesh, workdir, children, sender_config)
            results += nodes
        print_table(results)
        if facts:
            print(
                f"receiver inbox: {facts.get('receiver_inbox')} messages "
                f"(expected {facts['expected_inbox']}); sender store: "
                f"{facts['sender_commits']} commits for {facts['sender_jobs']} write jobs"
            )
            warnings = facts.get("receiver_warnings")
            if isinstance(warnings, list) and warnings:
                print(f"receiver logged {len(warnings)} warning/error lines; first: {warnings[0]}")
        print(f"{load_line()} after the run")
    finally:
        for child in reversed(children):
            child.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--messages", type=int, default=10000, help="messages per path (default 10000)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured messages per path")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="unary calls in flight (default 64)"
    )
    parser.add_argument(
        "--window", type=int, default=64, help="echo stream: messages in flight (default 64)"
    )
    parser.add_argument(
        "--chunk", type=int, default=32, help="node stream: probes per courier.send() (default 32)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=None,
        help="node stream: most probes pending in the outbox (default 2 × delivery batch_size)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated subset of {','.join(PATHS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--serve-echo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--reply-bytes", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument(
        "--echo-mode", choices=("plain", *ECHO_MODES.values()), help=argparse.SUPPRESS
    )
    parser.add_argument("--echo-store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.messages = min(args.messages, 500)
    if args.warmup is None:
        args.warmup = min(500, max(64, args.messages // 10))
    if args.backlog is None:
        args.backlog = 128
    for name in ("messages", "concurrency", "window", "chunk", "backlog"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in args.paths if p not in PATHS]
    if unknown or not args.paths:
        parser.error(f"--paths: unknown {unknown}; choose from {', '.join(PATHS)}")
    if args.chunk > args.backlog:
        parser.error("--chunk must not exceed --backlog")
    return args


async def run_until_signalled(args: argparse.Namespace, workdir: Path) -> None:
    """The benchmark, cancelled (so every ``finally`` runs) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await benchmark(args, workdir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_echo is not None:
        asyncio.run(
            serve_echo(
                args.serve_echo,
                args.listen,
                args.reply_bytes,
                DEFAULT_MAX_MESSAGE_BYTES,
                args.echo_mode or "plain",
                args.echo_store,
            )
        )
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="yrd-bench-") as tmp:
        try:
            asyncio.run(run_until_signalled(args, Path(tmp)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted; processes stopped and temporary files removed", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Exchange benchmark: signed, durable, receipted delivery between two real nodes, measured
against bare gRPC echo over the same mutual TLS, in one run on this machine (issue 13).

Run::

    .venv/bin/python bench/exchange.py                  # full run (a few minutes on 2 cores)
    .venv/bin/python bench/exchange.py --quick          # smoke run (a few s)
    .venv/bin/python bench/exchange.py --json           # JSON on stdout, report on stderr
    .venv/bin/python bench/exchange.py --paths node-stream --messages 20000   # to profile
    .venv/bin/python bench/exchange.py --paths node-stream --store postgres   # SQLite vs PostgreSQL
    .venv/bin/python bench/exchange.py --paths backlog --store postgres   # drain: 1 vs 2 replicas
    .venv/bin/python bench/exchange.py --suite sm2 --paths node-stream   # SM2 beside Ed25519

``--suite sm2`` runs the chosen paths twice in one run, first with both nodes signing with
Ed25519, then on a mesh of SM2 signers (SM3 trees and digests), and prints each path's
SM2 ÷ Ed25519 rate (issue 16's target for node-stream: ≥ 0.8×); with ``--json`` each row
says its ``suite``.

What is measured, per path: messages/s, p50 and p99 latency per message, the ratio to the
matching bare echo, and the CPU time (user + system, all threads) each side's process spent
per message. The CPU columns say whether a side was saturated (µs/msg × msg/s ≈ share of a
core) and stay meaningful when other work on the machine makes the rates noisy.

``echo-unary``
    ``PeerChannel.deliver`` (the node's own client code) against a grpc.aio server whose
    ``Deliver`` handler answers with a receipt-sized blob; ``--concurrency`` calls in flight.
``echo-stream``
    One ``DeliverStream`` bidi stream, a sliding window of ``--window`` messages in flight,
    one gRPC message per request and per reply; the handler answers each request with a
    receipt-sized blob. The baseline of issue 13: bare per-message gRPC streaming.
``echo-lockstep``
    ``PeerChannel.exchange_batch`` (the delivery worker's call) against the echo server's
    ``Exchange`` handler, which answers each ``Batch`` frame with a ``Batch`` of as many
    receipt-sized blobs, unsigned; batches of the worker's ``batch_size``, one in flight, as
    the worker sends them. The client side is the node's own code, so it signs each frame
    once (one Ed25519 signature per batch) and builds each reply's proof; the server does
    nothing. What the batched wire costs before any checking or storing: the ceiling of
    the node's delivery path.
``echo-signed`` (floor: echo + Ed25519 both ways)
    The sliding-window ``DeliverStream`` doing per-message cryptography, as the protocol did
    before batches: the client seals each probe (``seal``), the server verifies each
    request's signature and answers with a receipt built and signed by ``receipt_for``, the
    client verifies each reply's signature. No other checks, no store.
``echo-durable`` (floor: + durable inbox row)
    The same, and the server stores each request with its receipt as one inbox row through
    the node's own store (group commit, WAL, ``synchronous=FULL``) before answering.
``node-unary``
    The sender seals a probe with its signing key, calls ``PeerChannel.deliver`` with
    ``--concurrency`` callers in flight, and checks each signed receipt with ``check_reply``.
    The receiver runs every check, stores the message, audit entries and receipt durably
    (SQLite WAL, ``synchronous=FULL``) and signs the receipt.
``node-stream``
    The real delivery path: ``Node.courier.send()`` seals probes and commits them to the
    outbox in chunks of ``--chunk`` (closed loop: at most ``--backlog`` pending, so the
    outbox fills like steady traffic instead of holding one huge queue); the delivery worker
    sends them as batch-signed frames on the ``Exchange`` stream to the receiver process,
    checks each receipt of the reply frame and records it with the evidence. After the run
    every probe's outbox row must be delivered and keep an envelope with a ``BatchProof``
    (what went out on ``Exchange``), or the benchmark fails. Latency is the outbox row's
    ``created_at`` (set in the write that queues it) to ``delivered_at`` (receipt checked,
    recorded in the commit that follows); throughput is messages over the wall time from the
    first ``send()`` to the last receipt.
``node-stream-pg`` (with ``--store postgres``)
    ``node-stream`` again, after the other rows, with both nodes' stores in databases of a
    private PostgreSQL server this run starts (``tests/postgres.py``): the same path, the
    same nodes and mesh, only the store differs.
``backlog-pg``, ``backlog-pg-2`` (with ``--store postgres``)
    ``backlog`` with both nodes on PostgreSQL, after the other rows: ``backlog-pg`` with the
    receiver as one process (as ``node-stream-pg``); ``backlog-pg-2`` on a mesh of its own
    made as ``yrd mesh init --store postgres --replicas 2`` makes one (the mesh's own
    PostgreSQL server, the manifest listing both of the receiver's endpoints), with both
    receiver replicas stopped and started again, so the sender's worker drains the backlog
    in two lanes, one to each replica (server µs/msg sums both replicas; RSS is the larger).
``open-loop``
    ``node-stream`` offered ``--rate`` messages/s for ``--seconds`` (1,000 × 10 s): the
    i-th ``courier.send`` starts at i/rate by the clock, in a task of its own, whatever the
    replies do. p50/p99/p99.9 are ``created_at`` → ``delivered_at`` (JSON ``p999_ms``); the
    same quantiles from the scheduled send time (``sched_p99_ms``, ``sched_p999_ms``) also
    count sealing and waiting for the outbox commit, so a stalled sender shows there.
``backlog``
    The receiver node is stopped (SIGTERM), ``--backlog-messages`` probes (100,000) are
    queued through ``courier.send``, and the receiver is started again: ``drain_s`` is the
    time from its start (spawn) to the last receipt recorded, with ``ready_s`` (its
    ``/readyz``) and ``first_receipt_s``; its latencies are each receipt's time after that
    start. The sender's worker has been backing off meanwhile, and comes back on its own
    retry or on a heartbeat, as in production. RSS (``VmRSS``, and ``VmHWM`` as the peak)
    of both processes is read at the end; the sender's is this benchmark's process, which
    hosts the sender ``Node`` and the benchmark's own bookkeeping.

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
- Warm-up: every closed-loop path first runs a short warm-up on its connection, which is not
  counted (``open-loop`` and ``backlog`` follow ``node-stream`` on the same, warm, nodes).

The headline ratios are node-stream ÷ echo-stream and node-unary ÷ echo-unary (issue 13's
targets: ≥ 2.0× and ≥ 20,000 msg/s; ≥ 0.6×). node-stream ÷ echo-lockstep says how close the
node comes to the batched wire itself. The floor rows say what per-message signing and
storing cost on the old per-message stream. ``--json`` prints
``{"rows": [{"path", "msg_per_s", "p50_ms", "p99_ms", "ratio", "client_cpu_us",
"server_cpu_us", ...}]}`` and nothing else on stdout; ``ratio`` is against the row's echo
baseline (1.0 for the echo baselines themselves), and rows may carry extra keys. The load
average is printed before and after: on a shared machine, compare runs only at similar load.
Benchmarks print figures; they never assert timing.
"""

from __future__ import annotations

# Before grpc: importing node turns gRPC's fork handlers off (see node/__init__.py); this
# benchmark starts a database server while its nodes run gRPC.
import node as _fork_handlers_off  # noqa: F401

# isort: split
import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import grpc

from node.mesh.access import bearer, create_mesh, mesh_token
from node.mesh.database import start_mesh_database
from node.mesh.layout import REPLICA_PORT_STEP, StoreChoice, node_id_for, read_manifest
from node.mesh.processes import node_run_command, replica_configs
from node.mesh.suite_choice import SuiteChoice
from node.protocol.checks import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Authenticated,
    CheckLimits,
    check_reply,
)
from node.protocol.envelope import (
    MAX_BATCH_MESSAGES,
    digest,
    header,
    seal,
    signer_suite,
    signing_input,
)
from node.protocol.replies import receipt_for
from node.runtime.config import NodeConfig, load_config
from node.runtime.node import Node
from node.store import inbox, outbox, tokens
from node.store.connection import Connection, PostgresUrl
from node.store.database import Database
from node.transport.client import PeerChannel
from node.transport.server import TRANSPORT_HEADROOM
from node.trust.keys import load_signing_key
from node.trust.manifest import Member
from node.trust.suites import ED25519_SUITE, SUITES, Suite, suite_named
from node.trust.tls import TlsMaterial
from node.wire import DELIVER_STREAM_METHOD, SERVICE_NAME, pb

# The private PostgreSQL server of the tests, for --store postgres.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.postgres import new_database, start_server, store_in_database

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
    "node-stream-pg",
    "open-loop",
    "backlog",
    "backlog-pg",
    "backlog-pg-2",
)
"""Every path, in table order (``--paths`` selects some)."""
ON_POSTGRES = {"node-stream-pg": "node-stream", "backlog-pg": "backlog"}
"""Rows that are another row with the nodes' stores on PostgreSQL (``--store postgres``)."""
ON_REPLICAS = {"backlog-pg-2": "backlog"}
"""Rows that are another row with the receiver as two replicas on PostgreSQL."""
DEFAULT_PATHS = tuple(p for p in PATHS if p not in ON_POSTGRES and p not in ON_REPLICAS)
ECHO_MODES = {"echo-signed": "signed", "echo-durable": "durable"}
"""The floor rows, each against its own echo server doing that much of a node's work."""
BASELINES = {
    "echo-lockstep": "echo-stream",
    "echo-signed": "echo-stream",
    "echo-durable": "echo-stream",
    "node-unary": "echo-unary",
    "node-stream": "echo-stream",
    "node-stream-pg": "echo-stream",
    "open-loop": "echo-stream",
    "backlog": "echo-stream",
    "backlog-pg": "echo-stream",
    "backlog-pg-2": "echo-stream",
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
    extra: dict[str, float] = field(default_factory=dict)
    """Row-specific figures for ``--json`` and the notes under the table (p99.9, drain
    time, RSS)."""

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
    """CPU seconds used by this process and the server-side process (or processes: a
    province's replicas, summed) over a timed region."""

    def __init__(self, server_pid: int | Sequence[int] | None) -> None:
        self._server_pids = list(server_pid) if isinstance(server_pid, Sequence) else [server_pid]
        self._start = (process_cpu(None), self._server_cpu())
        self.stopped = False
        self.client = float("nan")
        self.server = float("nan")

    def stop(self) -> None:
        """End the region (the first call counts): post-processing after it is not charged."""
        if not self.stopped:
            self.stopped = True
            self.client = process_cpu(None) - self._start[0]
            self.server = self._server_cpu() - self._start[1]

    def _server_cpu(self) -> float:
        return sum(process_cpu(pid) for pid in self._server_pids)


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
        digest=digest(envelope.message, signer_suite(envelope.key_id)),
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

        def store(conn: Connection) -> bytes:
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
    """A Deliver/DeliverStream/Exchange server over the receiver's mutual TLS. ``plain``: no
    checks, no store, no signing; each request (each message of an Exchange frame) is answered
    with a blob the size of a signed receipt. ``signed`` and ``durable``: see ``EchoAnswer``
    (their rows use ``DeliverStream`` only)."""
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

    async def exchange(
        frames: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        # Bare: one Batch of receipt-sized blobs per frame, unsigned, nothing checked.
        async for frame in frames:
            count = len(pb.Batch.FromString(frame).messages)
            yield pb.Batch(messages=[reply] * count).SerializeToString()

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
                    "Exchange": grpc.stream_stream_rpc_method_handler(exchange),
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
    """``PeerChannel.exchange_batch`` in batches of ``batch``, one batch in flight: each
    batch signed once by the client (as the worker's are), answered by the echo server's
    ``Exchange`` with an unsigned Batch of blobs."""
    latencies: list[float] = []
    started = time.perf_counter()
    done = 0
    while done < messages:
        size = min(batch, messages - done)
        t0 = time.perf_counter()

        def answered(
            _index: int, _reply: bytes, _sent: bytes, _statement: bytes, t0: float = t0
        ) -> None:
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
        sender_key = load_signing_key(mesh / SENDER / "signing.key")
        peer = PeerChannel(
            node_id_for(RECEIVER),
            server.address,
            tls,
            max_message_bytes=max_message_bytes,
            signing_key=lambda: sender_key,
        )
        raw = raw_channel(server.address, tls, max_message_bytes)
        request = bytes(request_bytes)
        # exchange_batch takes sealed envelopes (it re-signs their messages as one batch).
        sealed_probe = SignedProbes(mesh).request(0)
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
                lambda n, _: run_lockstep(peer, sealed_probe, n, batch_size),
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


def pending(conn: Connection, after: int = 0) -> int:
    """Probes past ``after`` (an outbox seq) not yet settled in the sender's outbox: an
    index-only count, cheaper than ``outbox.depth``, since it is polled every few ms."""
    row = conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE peer = ? AND state = 'pending' AND seq > ?",
        (RECEIVER, after),
    ).fetchone()
    return int(row[0])


def last_seq(conn: Connection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()
    return int(row[0])


@dataclass(frozen=True)
class Settled:
    """One probe's outbox row after a run."""

    message_id: str
    created_at: float
    delivered_at: float


def settled_since(conn: Connection, after: int, expected: int) -> list[Settled]:
    """The probes queued after seq ``after``, each delivered, and sent over ``Exchange``:
    the envelope a delivered row keeps is the one that went out, with its batch proof."""
    rows = conn.execute(
        "SELECT message_id, created_at, delivered_at, state, last_error, envelope FROM outbox "
        "WHERE peer = ? AND payload_type = 'probe' AND seq > ? ORDER BY seq",
        (RECEIVER, after),
    ).fetchall()
    undelivered = [r for r in rows if r[3] != outbox.DELIVERED or r[2] is None]
    if undelivered:
        raise RuntimeError(
            f"{len(undelivered)} of {len(rows)} probes were not delivered "
            f"(first: {undelivered[0][3]}: {undelivered[0][4]})"
        )
    if len(rows) != expected:
        raise RuntimeError(f"only {len(rows)} of {expected} probes are in the outbox")
    unbatched = sum(1 for r in rows if not pb.Envelope.FromString(r[5]).HasField("proof"))
    if unbatched:
        raise RuntimeError(f"{unbatched} of {len(rows)} probes went out without a batch proof")
    return [Settled(r[0], float(r[1]), float(r[2])) for r in rows]


def probes(first: int, count: int) -> list[tuple[str, pb.Probe]]:
    return [("probe", pb.Probe(sequence=first + i)) for i in range(count)]


async def drained(reader: Connection, after: int, child: Child, timeout: float) -> None:
    """Wait until every probe past ``after`` is settled; polled, not hooked: the benchmark
    reads the store and does not reach into the delivery worker."""
    deadline = time.monotonic() + timeout
    while pending(reader, after) > 0:
        child.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending(reader, after)} probes still pending after {timeout} s")
        await asyncio.sleep(POLL_SECONDS)


async def send_stream(
    sender: Node, messages: int, chunk: int, backlog: int, meter: CpuMeter, receiver: Child
) -> tuple[int, float, list[float]]:
    """Commit ``messages`` probes through ``courier.send`` (closed loop: at most ``backlog``
    pending) and wait for every receipt."""
    reader = sender.db.reader()
    after = last_seq(reader)
    started_wall = time.time()
    started = time.perf_counter()
    queued = 0
    while queued < messages:
        size = min(chunk, messages - queued)
        while pending(reader, after) + size > backlog:  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
        await sender.courier.send(RECEIVER, probes(queued, size))
        queued += size
    await drained(reader, after, receiver, CALL_TIMEOUT * 4)
    elapsed = time.perf_counter() - started
    meter.stop()
    rows = settled_since(reader, after, messages)
    last = max(r.delivered_at for r in rows)
    # The store's timestamps are more precise than the depth poll for the end of the run.
    seconds = min(elapsed, last - started_wall) if last > started_wall else elapsed
    return messages, seconds, [r.delivered_at - r.created_at for r in rows]


async def open_loop(
    sender: Node, rate: float, seconds: float, receiver: Child
) -> tuple[Result, CpuMeter]:
    """Offer ``rate`` probes/s for ``seconds``: the i-th is sent at start + i/rate by the
    clock, whatever the replies do (each ``courier.send`` is a task of its own, so a slow
    commit or a slow peer does not slow the offer)."""
    reader = sender.db.reader()
    after = last_seq(reader)
    total = max(1, round(rate * seconds))
    meter = CpuMeter(receiver.pid)
    started_wall = time.time()
    started = time.perf_counter()
    scheduled: dict[str, float] = {}

    async def send(first: int, count: int) -> None:
        ids = await sender.courier.send(RECEIVER, probes(first, count))
        for i, message_id in enumerate(ids):
            scheduled[message_id] = started_wall + (first + i) / rate

    offered = 0
    async with asyncio.TaskGroup() as group:
        while offered < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1) - offered
            if due > 0:
                group.create_task(send(offered, due))
                offered += due
            await asyncio.sleep(max(0.0, started + offered / rate - time.perf_counter()))
    await drained(reader, after, receiver, CALL_TIMEOUT * 4)
    meter.stop()
    rows = settled_since(reader, after, total)
    last = max(r.delivered_at for r in rows)
    result = Result(
        "open-loop",
        f"open loop ({rate:.0f} msg/s offered, {seconds:g} s)",
        total,
        last - started_wall,
        [r.delivered_at - r.created_at for r in rows],
        meter.client,
        meter.server,
    )
    from_schedule = Result(
        "", "", total, 1.0, [r.delivered_at - scheduled[r.message_id] for r in rows]
    )
    result.extra.update(
        offered_per_s=rate,
        p999_ms=result.quantile(0.999) * 1e3,
        sched_p99_ms=from_schedule.quantile(0.99) * 1e3,
        sched_p999_ms=from_schedule.quantile(0.999) * 1e3,
    )
    return result, meter


def rss_mb(pid: int | None) -> tuple[float, float]:
    """Resident set (VmRSS) and its peak (VmHWM) of ``pid`` (None: this process), in MB."""
    fields: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


async def backlog_run(
    sender: Node,
    messages: int,
    receivers: Sequence[Child],
    restart: Callable[[], Awaitable[list[Child]]],
    ready: Callable[[], bool],
    key: str = "backlog",
) -> tuple[Result, list[Child]]:
    """Stop the receiver (every replica of it), queue ``messages`` probes, start it again:
    time from its start until the last receipt is recorded, and the processes' RSS at that
    point (a receiver of several replicas: the largest)."""
    reader = sender.db.reader()
    for receiver in receivers:
        receiver.stop()
    after = last_seq(reader)
    queued = 0
    while queued < messages:
        size = min(1000, messages - queued)
        await sender.courier.send(RECEIVER, probes(queued, size))
        queued += size
    started_wall = time.time()
    started = time.perf_counter()
    receivers = await restart()
    meter = CpuMeter([receiver.pid for receiver in receivers])
    ready_s = float("nan")
    deadline = time.monotonic() + max(120.0, messages / 200)
    while pending(reader, after) > 0:
        for receiver in receivers:
            receiver.check_alive()
        if ready_s != ready_s and ready():  # NaN: not seen ready yet
            ready_s = time.perf_counter() - started
        if time.monotonic() > deadline:
            raise RuntimeError(f"backlog: {pending(reader, after)} probes still pending")
        await asyncio.sleep(0.02)
    meter.stop()
    rss = {
        "sender": rss_mb(None),
        "receiver": max(rss_mb(receiver.pid) for receiver in receivers),
    }
    rows = settled_since(reader, after, messages)
    first = min(r.delivered_at for r in rows)
    drain = max(r.delivered_at for r in rows) - started_wall
    replicas = f", {len(receivers)} replicas" if len(receivers) > 1 else ""
    result = Result(
        key,
        f"backlog ({messages} queued, receiver down{replicas})",
        messages,
        drain,
        # How long after the receiver's start each receipt was recorded.
        [r.delivered_at - started_wall for r in rows],
        meter.client,
        meter.server,
    )
    result.extra.update(
        drain_s=drain,
        ready_s=ready_s,
        first_receipt_s=first - started_wall,
        sender_rss_mb=rss["sender"][0],
        sender_rss_peak_mb=rss["sender"][1],
        receiver_rss_mb=rss["receiver"][0],
        receiver_rss_peak_mb=rss["receiver"][1],
    )
    return result, receivers


async def node_paths(
    args: argparse.Namespace,
    mesh: Path,
    workdir: Path,
    children: list[Child],
    sender_config: NodeConfig,
) -> tuple[list[Result], dict[str, object]]:
    receiver_config = load_config(mesh / RECEIVER / "node.toml", {})
    http = f"http://{receiver_config.http_listen}"

    def ready() -> bool:
        return http_json(f"{http}/readyz")[0] == 200

    starts = 0

    async def start_receiver() -> Child:
        nonlocal starts
        starts += 1
        child = spawn(
            "receiver node",
            node_run_command(mesh / RECEIVER / "node.toml", "--log-level", "warning"),
            workdir / f"receiver-{starts}.log",
            children,
        )
        await asyncio.sleep(0)
        return child

    receiver = await start_receiver()
    await wait_until(ready, receiver, "receiver node /readyz")
    sender = Node(sender_config)
    await sender.start()
    results: list[Result] = []
    facts: dict[str, object] = {}
    sent = 0
    """Messages the receiver has accepted from this run (warm-ups included)."""
    try:
        peer_id = node_id_for(RECEIVER)
        credentials = sender.credentials
        limits = CheckLimits(sender_config.max_message_bytes)

        async def stream_run(n: int, meter: CpuMeter) -> tuple[int, float, list[float]]:
            nonlocal sent
            outcome = await send_stream(sender, n, args.chunk, args.backlog, meter, receiver)
            sent += n
            return outcome

        results += await measured(
            "node-stream",
            "node stream (courier.send → worker → Exchange)",
            stream_run,
            args,
            receiver.pid,
        )

        channel = PeerChannel(
            peer_id,
            receiver_config.grpc_listen,
            tls_of(mesh, SENDER),
            max_message_bytes=sender_config.max_message_bytes,
            signing_key=lambda: credentials.signing_key,
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

        if "open-loop" in args.paths:
            result, _ = await open_loop(sender, args.rate, args.seconds, receiver)
            sent += result.messages
            results.append(result)

        if "backlog" in args.paths:

            async def restart() -> list[Child]:
                return [await start_receiver()]

            result, [receiver] = await backlog_run(
                sender, args.backlog_messages, [receiver], restart, ready
            )
            sent += result.messages
            results.append(result)

        receiver.check_alive()
        status_code, status = http_json(f"{http}/v1/status", mesh_token(mesh, "", "read"))
        if status_code == 200 and isinstance(status, dict):
            facts["receiver_inbox"] = status.get("inbox_messages")
        # Plus what the sender node sends by itself on start-up (its catalog announcement).
        facts["expected_inbox"] = sent + sender_outbox_count(sender, exclude="probe")
        facts["receiver_warnings"] = [
            line
            for child in children
            if child.name == "receiver node"
            for line in child.log_tail(10_000).splitlines()
            if line.strip()
        ]
        facts["sender_commits"] = sender.db.commits
        facts["sender_jobs"] = sender.db.jobs_committed
    finally:
        await sender.stop()
        receiver.stop()
    return results, facts


NodeRows = Callable[
    [argparse.Namespace, NodeConfig], Awaitable[tuple[list[Result], dict[str, object]]]
]
"""``node_paths`` for the given arguments and sender config, on the run's mesh."""


async def on_postgres(
    args: argparse.Namespace, mesh: Path, sender_config: NodeConfig, node_rows: NodeRows
) -> tuple[list[Result], dict[str, object]]:
    """The ``ON_POSTGRES`` rows: their node rows again, with both nodes' stores moved to
    databases of a private PostgreSQL server (started here, stopped at the end)."""
    server = await asyncio.to_thread(start_server)
    try:
        for province in (SENDER, RECEIVER):
            url = new_database(server)
            store_in_database(mesh / province / "node.toml", url)
            # The mesh's read token, so the report can ask the receiver for its inbox count.
            viewer = mesh_token(mesh, "", "read")
            await tokens.issue(PostgresUrl(url), [("viewer", "read", viewer)], now=time.time())
        on_database = load_config(mesh / SENDER / "node.toml", {})
        sender = replace(sender_config, paths=on_database.paths)
        rows = [ON_POSTGRES[p] for p in args.paths if p in ON_POSTGRES]
        results, facts = await node_rows(
            argparse.Namespace(**{**vars(args), "paths": rows}), sender
        )
    finally:
        await asyncio.to_thread(server.stop)
    moved = {row: pg for pg, row in ON_POSTGRES.items()}
    for result in results:
        result.key = moved[result.key]
        result.label += ", on PostgreSQL"
    return results, facts


async def on_replicas(
    args: argparse.Namespace, workdir: Path, children: list[Child], suite: Suite
) -> Result:
    """The ``backlog-pg-2`` row: the backlog drained by a receiver of two replicas sharing
    one PostgreSQL database (``yrd mesh init --store postgres --replicas 2``: the mesh's own
    server, the manifest listing both endpoints), so the sender's worker sends two lanes,
    one to each replica. The sender is one replica of its province, in this process."""
    # PostgreSQL refuses to run as root; started as root it runs as its own user, which must
    # pass through the folder (the benchmark's temporary folder is closed to others).
    folder = Path(tempfile.mkdtemp(prefix="yrd-bench-replicas-"))
    os.chmod(folder, 0o711)
    mesh = folder / "mesh"
    receivers: list[Child] = []
    try:
        create_mesh(
            mesh,
            now=time.time(),
            base_port=free_base_port(2 + REPLICA_PORT_STEP),
            provinces=(SENDER, RECEIVER),
            platforms=False,
            suites=SuiteChoice(default=suite, governance=suite),
            store=StoreChoice("postgres", 2),
        )
        configs = replica_configs(mesh)
        server = await asyncio.to_thread(
            start_mesh_database, mesh, [c for cs in configs.values() for c in cs]
        )
        if server is None:
            raise RuntimeError(f"the replica mesh in {mesh} has no database server")
        try:
            sender_config = configs[SENDER][0]
            if args.batch_size is not None:
                delivery = replace(sender_config.delivery, batch_size=args.batch_size)
                sender_config = replace(sender_config, delivery=delivery)
            files = [mesh / RECEIVER / "node.toml", mesh / RECEIVER / "node-2.toml"]
            https = [f"http://{c.http_listen}" for c in configs[RECEIVER]]

            def ready() -> bool:
                return all(http_json(f"{http}/readyz")[0] == 200 for http in https)

            async def start_receivers() -> list[Child]:
                started = [
                    spawn(
                        "receiver node",
                        node_run_command(path, "--log-level", "warning"),
                        workdir / f"replica-{n}.log",
                        children,
                    )
                    for n, path in enumerate(files, start=1)
                ]
                receivers[:] = started
                await asyncio.sleep(0)
                return started

            for child in await start_receivers():
                await wait_until(ready, child, "receiver replicas /readyz")
            sender = Node(sender_config)
            await sender.start()
            try:
                lanes = sender.peers[RECEIVER].channel.lanes
                if lanes != 2:
                    raise RuntimeError(f"the sender sees {lanes} endpoint(s) of the receiver")
                result, _ = await backlog_run(
                    sender,
                    args.backlog_messages,
                    receivers,
                    start_receivers,
                    ready,
                    key="backlog-pg-2",
                )
            finally:
                await sender.stop()
        finally:
            for child in receivers:
                child.stop()
            await asyncio.to_thread(server.stop)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.label += ", on PostgreSQL"
    return result


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
        print(
            f"node-stream ÷ echo-stream: {node.rate / echo.rate:.2f}× "
            f"(issue 13 target ≥ 2.0× and ≥ 20,000 msg/s){extra}"
        )
    unary, echo_unary = by_key.get("node-unary"), by_key.get("echo-unary")
    if unary and echo_unary:
        print(f"node-unary ÷ echo-unary: {unary.rate / echo_unary.rate:.2f}× (target ≥ 0.6×)")
    floors = [by_key[k] for k in ECHO_MODES if k in by_key]
    if node and floors:
        shares = ", ".join(f"{f.label}: {node.rate / f.rate:.2f}×" for f in floors)
        print(f"node stream ÷ floor rows: {shares}")
    if (loop := by_key.get("open-loop")) is not None:
        x = loop.extra
        print(
            f"open loop: p50 {loop.quantile(0.5) * 1e3:.2f} ms, "
            f"p99 {loop.quantile(0.99) * 1e3:.2f} ms, p99.9 {x['p999_ms']:.2f} ms "
            "(outbox created_at → delivered_at; target p99 ≤ 10 ms); "
            f"from the scheduled send time: p99 {x['sched_p99_ms']:.2f} ms, "
            f"p99.9 {x['sched_p999_ms']:.2f} ms"
        )
    if (backlog := by_key.get("backlog")) is not None:
        x = backlog.extra
        print(
            f"backlog: {backlog.messages} drained {x['drain_s']:.2f} s after the receiver's start "
            f"(target ≤ 15 s for 100,000; /readyz at {x['ready_s']:.2f} s, first receipt at "
            f"{x['first_receipt_s']:.2f} s); RSS at the end: receiver {x['receiver_rss_mb']:.0f} "
            f"MB (peak {x['receiver_rss_peak_mb']:.0f}), sender {x['sender_rss_mb']:.0f} MB (peak "
            f"{x['sender_rss_peak_mb']:.0f}; the benchmark's own process, which hosts the sender "
            "Node); target ≤ 200 MB each"
        )


def json_rows(results: list[Result]) -> dict[str, list[dict[str, object]]]:
    """The ``--json`` object: one row per path, ratio against its echo row (1.0 for the echo
    rows themselves, NaN as null when the echo row was not run)."""
    by_key = {r.key: r for r in results}

    def number(value: float, digits: int = 3) -> float | None:
        return round(value, digits) if value == value else None  # NaN → null

    rows: list[dict[str, object]] = []
    for r in sorted(results, key=lambda r: PATHS.index(r.key)):
        base = by_key.get(BASELINES.get(r.key, r.key))
        rows.append(
            {
                "path": r.key,
                "messages": r.messages,
                "msg_per_s": number(r.rate, 1),
                "p50_ms": number(r.quantile(0.5) * 1e3),
                "p99_ms": number(r.quantile(0.99) * 1e3),
                "ratio": number(r.rate / base.rate) if base else None,
                "client_cpu_us": number(r.client_cpu / r.messages * 1e6, 1),
                "server_cpu_us": number(r.server_cpu / r.messages * 1e6, 1),
                **{k: number(v) for k, v in r.extra.items()},
            }
        )
    return {"rows": rows}


async def benchmark(args: argparse.Namespace, workdir: Path, suite: Suite) -> list[Result]:
    children: list[Child] = []
    try:
        mesh = workdir / "mesh"
        create_mesh(
            mesh,
            now=time.time(),
            base_port=free_base_port(2),
            provinces=(SENDER, RECEIVER),
            platforms=False,  # the nodes alone: no platform polls in the figures
            suites=SuiteChoice(default=suite, governance=suite),
        )
        sender_config = load_config(mesh / SENDER / "node.toml", {})
        if args.batch_size is not None:
            # The sender is in this process: its worker takes this many messages per frame.
            delivery = replace(sender_config.delivery, batch_size=args.batch_size)
            sender_config = replace(sender_config, delivery=delivery)
        batch_size = sender_config.delivery.batch_size
        if args.backlog is None:
            args.backlog = 2 * batch_size
        if args.chunk > args.backlog:
            raise SystemExit("--chunk must not exceed --backlog")
        request_bytes, reply_bytes = probe_sizes(mesh)

        print(machine_line())
        print(f"signature suite: {suite.name} (both nodes)")
        print(f"{load_line()} before the run")
        print(
            f"parameters: messages={args.messages} warmup={args.warmup} "
            f"concurrency={args.concurrency} window={args.window} "
            f"delivery batch_size={batch_size} chunk={args.chunk} backlog={args.backlog} "
            f"open-loop={args.rate:g}/s×{args.seconds:g}s backlog-row={args.backlog_messages}; "
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
        runs: list[tuple[str, dict[str, object]]] = []
        if any(p in DEFAULT_PATHS and not p.startswith("echo-") for p in args.paths):
            nodes, facts = await node_paths(args, mesh, workdir, children, sender_config)
            results += nodes
            runs.append(("", facts))
        if any(p in ON_POSTGRES for p in args.paths):
            nodes, facts = await on_postgres(
                args,
                mesh,
                sender_config,
                lambda a, c: node_paths(a, mesh, workdir, children, c),
            )
            results += nodes
            runs.append(("on PostgreSQL, ", facts))
        if any(p in ON_REPLICAS for p in args.paths):
            results.append(await on_replicas(args, workdir, children, suite))
        print_table(results)
        for where, facts in runs:
            print(
                f"{where}receiver inbox: {facts.get('receiver_inbox')} messages "
                f"(expected {facts['expected_inbox']}); sender store: "
                f"{facts['sender_commits']} commits for {facts['sender_jobs']} write jobs"
            )
            warnings = facts.get("receiver_warnings")
            if isinstance(warnings, list) and warnings:
                print(f"receiver logged {len(warnings)} warning/error lines; first: {warnings[0]}")
        print(f"{load_line()} after the run")
        return results
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
        "--batch-size",
        type=int,
        default=None,
        help="sender's delivery batch_size, messages per Exchange frame (default: node.toml's)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(DEFAULT_PATHS),
        help=f"comma-separated subset of {','.join(DEFAULT_PATHS)} (default: all)",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: also run node-stream and backlog with both nodes on PostgreSQL "
        "(node-stream-pg, backlog-pg) and backlog with the receiver as two replicas "
        "(backlog-pg-2)",
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="open loop: messages/s offered (default 1000)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="open loop: seconds offered (default 10)"
    )
    parser.add_argument(
        "--backlog-messages",
        type=int,
        default=100_000,
        help="backlog row: messages queued while the receiver is down (default 100000)",
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--suite",
        choices=sorted(SUITES),
        default=ED25519_SUITE.name,
        help="sm2: run the paths with Ed25519 signers, then with SM2 signers, and compare "
        "(default ed25519 alone)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print only one JSON object of rows on stdout (the human report goes to stderr)",
    )
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
        args.seconds = min(args.seconds, 2.0)
        args.backlog_messages = min(args.backlog_messages, 2000)
    if args.warmup is None:
        args.warmup = min(500, max(64, args.messages // 10))
    for name in ("messages", "concurrency", "window", "chunk", "backlog_messages"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.backlog is not None and args.backlog < 1:
        parser.error("--backlog must be at least 1")
    if args.batch_size is not None and not 1 <= args.batch_size <= MAX_BATCH_MESSAGES:
        parser.error(f"--batch-size must be 1 to {MAX_BATCH_MESSAGES}")
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in args.paths if p not in DEFAULT_PATHS]
    if unknown or not args.paths:
        parser.error(f"--paths: unknown {unknown}; choose from {', '.join(DEFAULT_PATHS)}")
    if args.store == "postgres":
        args.paths += [pg for pg, row in (ON_POSTGRES | ON_REPLICAS).items() if row in args.paths]
    return args


async def run_until_signalled(args: argparse.Namespace, workdir: Path) -> dict[str, list[Result]]:
    """The benchmark once per suite (Ed25519 first), cancelled (so every ``finally`` runs)
    on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    runs: dict[str, list[Result]] = {}
    for name in dict.fromkeys([ED25519_SUITE.name, args.suite]):
        runs[name] = await benchmark(args, workdir / name, suite_named(name))
        print()
    if len(runs) > 1:
        print_suite_ratios(runs[ED25519_SUITE.name], runs[args.suite], args.suite)
    return runs


def print_suite_ratios(ed25519: list[Result], other: list[Result], name: str) -> None:
    """Each path's rate with ``name`` signers over its rate with Ed25519 signers."""
    base = {r.key: r for r in ed25519}
    for r in other:
        if r.key in base:
            target = " (target ≥ 0.8×)" if r.key == "node-stream" else ""
            print(
                f"{r.key} {name} ÷ ed25519: {r.rate / base[r.key].rate:.2f}× "
                f"({r.rate:,.0f} vs {base[r.key].rate:,.0f} msg/s){target}"
            )


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
        # With --json, stdout carries the JSON object alone; the human report goes to stderr.
        report = sys.stderr if args.json else sys.stdout
        try:
            with contextlib.redirect_stdout(report):
                runs = asyncio.run(run_until_signalled(args, Path(tmp)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted; processes stopped and temporary files removed", file=sys.stderr)
            return 130
    if args.json:
        rows = [
            {**row, "suite": name}
            for name, results in runs.items()
            for row in json_rows(results)["rows"]
        ]
        print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

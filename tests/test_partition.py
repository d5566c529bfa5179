"""A peer that is away, then back: real nodes, real mutual-TLS gRPC, real SQLite files.

Messages to an unreachable peer wait durably in the outbox behind an open circuit; when the
peer returns the backlog drains in order, and a peer that goes away mid-drain and comes back
ends up with every message exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest

from node.delivery.circuit import CircuitState
from node.runtime.node import Node
from node.store import inbox, outbox
from node.transport.server import EnvelopeReceiver, Reply
from node.wire import pb
from tests.nodes import FAST_DELIVERY, config_for, eventually, make_mesh, running

PEER = "jiangsu"


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


async def send_probes(node: Node, count: int) -> list[str]:
    """Queue probes with sequence 0..count-1 to jiangsu, one commit each; their ids in order."""
    ids: list[str] = []
    for sequence in range(count):
        ids += await node.courier.send(PEER, [("probe", pb.Probe(sequence=sequence))])
    return ids


def arrivals(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(message id, probe sequence) of every stored message, in the order it was stored."""
    found = []
    for message_id, envelope in conn.execute(
        "SELECT message_id, envelope FROM inbox WHERE payload_type = 'probe' ORDER BY rowid"
    ):
        message = pb.Message.FromString(pb.Envelope.FromString(envelope).message)
        assert message.header.message_id == message_id
        assert message.WhichOneof("body") == "probe"
        found.append((str(message_id), message.probe.sequence))
    return found


def stored_arrivals(store: Path) -> list[tuple[str, int]]:
    """``arrivals`` of a stopped node, read from its store file."""
    conn = sqlite3.connect(store)
    try:
        return arrivals(conn)
    finally:
        conn.close()


def peer_status(node: Node) -> dict[str, object]:
    peers = node.health.status()["peers"]
    assert isinstance(peers, list) and len(peers) == 1
    [peer] = peers
    assert peer["peer"] == PEER
    return cast(dict[str, object], peer)


def pending(node: Node) -> int:
    """Probes (not the node's own catalog announcement) still waiting for the peer."""
    rows = outbox.list_items(node.db.reader(), state=outbox.PENDING, peer=PEER, limit=1000)
    return sum(1 for row in rows if row.payload_type == "probe")


def probe_rows(node: Node, **filters: str) -> list[outbox.OutboxItem]:
    rows = outbox.list_items(node.db.reader(), peer=PEER, limit=1000, **filters)
    return [row for row in rows if row.payload_type == "probe"]


def assert_all_delivered_with_receipts(node: Node, ids: list[str]) -> None:
    rows = probe_rows(node)
    assert [row.message_id for row in rows] == ids
    for row in rows:
        assert row.state == outbox.DELIVERED, row
        assert row.reply
        reply = pb.Message.FromString(pb.Envelope.FromString(row.reply).message)
        assert reply.WhichOneof("body") == "receipt"
        assert reply.receipt.digest == row.digest
    assert outbox.cursor(node.db.reader(), PEER) == rows[-1].seq


async def test_backlog_queued_while_peer_is_down_drains_in_order(mesh: Path) -> None:
    """Probes to a peer that is down wait in the outbox behind an open circuit; once the peer
    starts they are all delivered, stored once each, in the order they were sent."""
    async with running(config_for(mesh, "shanghai")) as sh:
        ids = await send_probes(sh, 50)
        status: dict[str, object] = {}

        def backing_off() -> bool:
            # One synchronous snapshot: status and link are read with no await in between.
            status.update(peer_status(sh))
            link = sh.peers.link(PEER)
            return not link.circuit.is_available() and link.consecutive_failures >= 1

        await eventually(backing_off)
        assert status["circuit"] == CircuitState.OPEN.value
        # The 50 probes queue behind the node's catalog announcement and revocation list,
        # queued first on start.
        assert status["outbox_depth"] == 52
        assert status["up"] is False
        assert status["last_error"]
        queued = probe_rows(sh)
        assert [row.message_id for row in queued] == ids
        assert all(row.state == outbox.PENDING for row in queued)
        # Only the head batch (announcement and first probes) is tried while the peer is
        # away; it carries the attempts.
        head = outbox.list_items(sh.db.reader(), peer=PEER, limit=1)[0]
        assert head.attempts >= 1
        assert head.last_error

        async with running(config_for(mesh, PEER)) as js:
            await eventually(lambda: pending(sh) == 0)
            received = arrivals(js.db.reader())
            assert inbox.count(js.db.reader(), sh.config.node_id, payload_type="probe") == 50

        assert received == list(zip(ids, range(50), strict=True))
        assert_all_delivered_with_receipts(sh, ids)
        assert sh.peers.link(PEER).circuit is CircuitState.CLOSED
        assert peer_status(sh)["outbox_depth"] == 0


class StallAfterStoring:
    """A peer that stores and signs as usual (its own inbound processor) but holds back the
    receipt of one probe until released, so its stream stalls with a batch stored and
    unanswered."""

    def __init__(self, inbound: EnvelopeReceiver, sequence: int) -> None:
        self.inbound = inbound
        self.sequence = sequence
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()

    def receive(self, raw: bytes, tls_identity: str | None) -> Awaitable[Reply]:
        return self._hold(
            self.inbound.receive(raw, tls_identity), [pb.Envelope.FromString(raw).message]
        )

    def receive_batch(self, frame: bytes, tls_identity: str | None) -> Awaitable[Reply]:
        messages = list(pb.Batch.FromString(frame).messages)
        return self._hold(self.inbound.receive_batch(frame, tls_identity), messages)

    async def _hold(self, pending: Awaitable[Reply], messages: list[bytes]) -> Reply:
        reply = await pending
        for raw in messages:
            message = pb.Message.FromString(raw)
            if message.WhichOneof("body") == "probe" and message.probe.sequence == self.sequence:
                self.stalled.set()
                await self.release.wait()
        return reply


async def test_peer_stopping_mid_drain_gets_every_message_exactly_once(mesh: Path) -> None:
    """A peer stopped mid-batch while a 200-message backlog drains, and restarted on the same
    store, ends with each message stored once: what it stored without our seeing the receipt
    is re-sent, answered with the original receipt, and every outbox row is delivered."""
    # Batches of 4 rows. The node's catalog announcement and revocation list are the first
    # outbox rows, so the batches hold probes -2..1, 2..5, …, and the stall at probe 40 cuts
    # the batch of probes 38..41 after the peer stored all four; no shutdown grace, so
    # stopping cuts the stream with that batch in flight.
    sh_config = config_for(mesh, "shanghai", delivery=replace(FAST_DELIVERY, batch_size=4))
    js_config = config_for(mesh, PEER, shutdown_grace_seconds=0.0)
    async with running(sh_config) as sh:
        ids = await send_probes(sh, 200)
        await eventually(lambda: sh.peers.link(PEER).circuit is CircuitState.OPEN)

        js = Node(js_config)
        stall = StallAfterStoring(js.inbound, sequence=40)
        js.inbound = stall
        await js.start()
        try:
            async with asyncio.timeout(20):
                await stall.stalled.wait()
            await eventually(lambda: inbox.count(js.db.reader(), payload_type="probe") == 42)
        finally:
            await js.stop()
            stall.release.set()
        # Open again: the worker has recorded the cut batch as failed and is backing off.
        await eventually(lambda: sh.peers.link(PEER).circuit is CircuitState.OPEN)

        stored_first = [message_id for message_id, _ in stored_arrivals(js_config.paths.store)]
        assert stored_first == ids[:42]
        delivered = probe_rows(sh, state=outbox.DELIVERED)
        assert [row.message_id for row in delivered] == ids[:38]
        assert pending(sh) == 162
        for message_id in ids[38:42]:
            cut = outbox.get(sh.db.reader(), message_id)
            assert cut is not None and cut.state == outbox.PENDING and cut.attempts >= 1

        async with running(js_config) as js:
            await eventually(lambda: pending(sh) == 0)
            duplicates = js.metrics.registry.get_sample_value(
                "yrd_messages_duplicate_total", {"peer": "shanghai", "type": "probe"}
            )
            received = arrivals(js.db.reader())
            receipts = dict(
                js.db.reader().execute("SELECT message_id, reply FROM inbox").fetchall()
            )

        assert received == list(zip(ids, range(200), strict=True))
        assert duplicates == 4.0
        assert_all_delivered_with_receipts(sh, ids)
        for row in outbox.list_items(sh.db.reader(), peer=PEER, limit=200):
            assert row.reply == receipts[row.message_id], "not the receipt the peer stored"

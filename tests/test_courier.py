"""The courier with real parts: a real SQLite store on our side, and a real Jiangsu node
answering over mutual-TLS gRPC.

Shanghai's side is a bare ``Courier`` (no ``Node``): its store, the manifest and key from
the mesh folder, a channel to Jiangsu and an idle delivery worker to wake.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from monitoring.metrics import NodeMetrics
from node.delivery.circuit import LinkRefusal
from node.delivery.worker import PeerWorker
from node.peers.courier import (
    Courier,
    PeerUnanswered,
    ReplyRefused,
    UnknownPeer,
)
from node.peers.peer import Peer
from node.protocol.checks import CheckLimits
from node.protocol.faults import FaultCode, Refusal
from node.runtime.node import Node
from node.store import outbox
from node.store.database import Database
from node.transport.client import PeerChannel
from node.transport.errors import TransportError
from node.trust.keys import SigningKey, load_signing_key
from node.trust.manifest import Manifest, verify_manifest
from node.wire import pb
from tests.nodes import FAST_DELIVERY, config_for, eventually, make_mesh, running, tls_of

DAY = 86400.0
TIMEOUT = 5.0


@dataclass(frozen=True)
class View:
    manifest: Manifest
    signing_key: SigningKey


@dataclass
class Side:
    """Shanghai's courier and what it writes to."""

    courier: Courier
    db: Database
    worker: PeerWorker

    def evidence(self) -> list[tuple[str, str, str]]:
        rows = self.db.reader().execute(
            "SELECT direction, kind, message_id FROM audit WHERE kind != 'manifest' ORDER BY seq"
        )
        return [(str(d), str(k), str(m)) for d, k, m in rows]

    def outbox_count(self) -> int:
        return int(self.db.reader().execute("SELECT count(*) FROM outbox").fetchone()[0])


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


@pytest.fixture
async def jiangsu(mesh: Path) -> AsyncIterator[Node]:
    async with running(config_for(mesh, "jiangsu")) as node:
        yield node


def _closed_port() -> str:
    """A loopback address nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@asynccontextmanager
async def shanghai(
    mesh: Path,
    *,
    clock: Callable[[], float] = time.time,
    may_send: frozenset[str] | None = None,
    peer_node_id: str | None = None,
    address: str | None = None,
) -> AsyncIterator[Side]:
    """Shanghai's courier to Jiangsu. ``may_send`` narrows Shanghai's own policy in its view
    of the manifest; ``peer_node_id`` misnames Jiangsu in the peer record (the channel still
    reaches the real Jiangsu); ``address`` dials somewhere else."""
    config = config_for(mesh, "shanghai")
    manifest = verify_manifest(config.paths.manifest.read_bytes(), config.governance_keys, now=None)
    if may_send is not None:
        me = manifest.member(config.node_id)
        assert me is not None
        manifest = manifest.with_member(replace(me, may_send=may_send))
    view = View(manifest, load_signing_key(config.paths.signing_key))
    member = manifest.member_for_province("jiangsu")
    assert member is not None
    db = await Database.open(config.paths.store)
    channel = PeerChannel(
        member.node_id,
        member.endpoint,
        tls_of(mesh, "shanghai"),
        max_message_bytes=config.max_message_bytes,
        signing_key=lambda: view.signing_key,
        address=address or config.peer_addresses.get("jiangsu"),
    )
    peers: dict[str, Peer] = {}
    courier = Courier(
        node_id=config.node_id,
        db=lambda: db,
        clock=clock,
        credentials=lambda: view,
        peers=peers,
        metrics=NodeMetrics(),
        limits=CheckLimits(config.max_message_bytes),
    )
    worker = PeerWorker(
        peer="jiangsu",
        peer_node_id=member.node_id,
        db=db,
        channel=channel,
        settle=courier.settler(member.node_id),
        config=FAST_DELIVERY,
        clock=clock,
        observer=courier,
    )
    peers["jiangsu"] = Peer("jiangsu", peer_node_id or member.node_id, channel, worker)
    try:
        yield Side(courier, db, worker)
    finally:
        await channel.close()
        await db.close()


async def test_send_is_durable_with_its_evidence_and_wakes_the_worker(mesh: Path) -> None:
    """When send returns, each message is a pending outbox row, and the peer's worker has
    been told there is work; nothing enters the evidence log before it is sent (it does
    then, in its batch, with the reply: test_exchange)."""
    async with shanghai(mesh) as side:
        told: list[str] = []
        side.worker.notify = lambda: told.append("work")  # type: ignore[method-assign]
        ids = await side.courier.send(
            "jiangsu",
            [("probe", pb.Probe(sequence=1)), ("probe", pb.Probe(sequence=2))],
            correlation_id="c-1",
        )
        assert len(ids) == 2
        for message_id in ids:
            row = outbox.get(side.db.reader(), message_id)
            assert row is not None and row.state == outbox.PENDING
            assert row.payload_type == "probe" and row.correlation_id == "c-1"
        assert side.evidence() == []
        assert told  # after the commit, the worker was told


async def test_ask_returns_the_checked_answer_and_records_the_exchange(
    mesh: Path, jiangsu: Node
) -> None:
    """A question answered by the peer comes back checked, with its round trip; the request
    and the answer enter the evidence log together."""
    async with shanghai(mesh) as side:
        answered = await side.courier.ask(
            "jiangsu", "heartbeat", pb.Heartbeat(sequence=1), timeout=TIMEOUT
        )
        assert answered.payload_type == "receipt" and answered.fault is None
        assert answered.reply.sender.province == "jiangsu"
        assert answered.reply.message.header.in_reply_to == answered.request.message_id
        assert answered.sent_at <= answered.answered_at
        request_id = answered.request.message_id
        assert side.evidence() == [
            ("sent", "envelope", request_id),
            ("received", "reply", request_id),
        ]
        assert side.outbox_count() == 0


async def test_ask_without_record_leaves_no_evidence(mesh: Path, jiangsu: Node) -> None:
    """A liveness question (record=False) is answered and leaves the evidence log alone."""
    async with shanghai(mesh) as side:
        answered = await side.courier.ask(
            "jiangsu", "heartbeat", pb.Heartbeat(sequence=1), timeout=TIMEOUT, record=False
        )
        assert answered.payload_type == "receipt"
        assert side.evidence() == []


async def test_a_signed_fault_is_an_answer(mesh: Path, jiangsu: Node) -> None:
    """The peer's signed refusal of the question is returned as the answer's fault."""
    async with shanghai(mesh) as side:
        answered = await side.courier.ask(
            "jiangsu",
            "certificate_verify",
            pb.CertificateVerify(certificate_id="not a certificate id"),
            timeout=TIMEOUT,
        )
        assert answered.fault is not None
        assert answered.fault.code == FaultCode.INVALID_PAYLOAD.value
        assert [kind for _, kind, _ in side.evidence()] == ["envelope", "reply"]


async def test_ask_of_an_unknown_peer_sends_nothing(mesh: Path) -> None:
    async with shanghai(mesh) as side:
        with pytest.raises(UnknownPeer) as raised:
            await side.courier.ask("zhejiang", "heartbeat", pb.Heartbeat(), timeout=TIMEOUT)
        assert raised.value.province == "zhejiang"
        with pytest.raises(UnknownPeer):
            await side.courier.send("zhejiang", [("probe", pb.Probe())])
        assert side.evidence() == [] and side.outbox_count() == 0


async def test_ask_of_a_down_peer_is_unanswered_and_records_nothing(mesh: Path) -> None:
    """Nobody listens at the peer's address: PeerUnanswered, keeping the transport error,
    and nothing is recorded as asked or answered."""
    async with shanghai(mesh, address=_closed_port()) as side:
        with pytest.raises(PeerUnanswered) as raised:
            await side.courier.ask("jiangsu", "heartbeat", pb.Heartbeat(), timeout=TIMEOUT)
        assert isinstance(raised.value.error, TransportError) and raised.value.error.detail
        assert side.evidence() == [] and side.outbox_count() == 0


async def test_a_reply_that_fails_our_checks_is_refused(mesh: Path, jiangsu: Node) -> None:
    """The peer record names another node than the one that answers: the signed answer
    comes from the wrong sender, so it is ReplyRefused (sender_mismatch) and not recorded."""
    async with shanghai(mesh, peer_node_id="node-impostor") as side:
        with pytest.raises(ReplyRefused) as raised:
            await side.courier.ask("jiangsu", "heartbeat", pb.Heartbeat(), timeout=TIMEOUT)
        assert raised.value.refusal.code is FaultCode.SENDER_MISMATCH
        assert side.evidence() == []


async def test_an_expired_manifest_refuses_before_anything_is_sent(
    mesh: Path, jiangsu: Node
) -> None:
    """Past its manifest's expiry this node seals nothing: send and ask raise Refusal
    (manifest_expired), the outbox and evidence log stay empty, and the peer gets nothing."""
    before = jiangsu.metrics.registry.get_sample_value(
        "yrd_messages_received_total", {"peer": "shanghai", "type": "heartbeat"}
    )
    async with shanghai(mesh, clock=lambda: time.time() + 100 * DAY) as side:
        with pytest.raises(Refusal) as raised:
            await side.courier.send("jiangsu", [("probe", pb.Probe())])
        assert raised.value.code is FaultCode.MANIFEST_EXPIRED
        with pytest.raises(Refusal) as raised:
            await side.courier.ask("jiangsu", "heartbeat", pb.Heartbeat(), timeout=TIMEOUT)
        assert raised.value.code is FaultCode.MANIFEST_EXPIRED
        assert side.evidence() == [] and side.outbox_count() == 0
    after = jiangsu.metrics.registry.get_sample_value(
        "yrd_messages_received_total", {"peer": "shanghai", "type": "heartbeat"}
    )
    assert after == before


async def test_a_payload_the_policy_does_not_allow_is_refused_before_sending(
    mesh: Path,
) -> None:
    async with shanghai(mesh, may_send=frozenset({"heartbeat"})) as side:
        with pytest.raises(Refusal) as raised:
            await side.courier.send("jiangsu", [("probe", pb.Probe())])
        assert raised.value.code is FaultCode.PAYLOAD_NOT_ALLOWED
        with pytest.raises(Refusal) as raised:
            await side.courier.ask("jiangsu", "probe", pb.Probe(), timeout=TIMEOUT)
        assert raised.value.code is FaultCode.PAYLOAD_NOT_ALLOWED
        assert side.evidence() == [] and side.outbox_count() == 0


async def test_heartbeats_on_an_expired_manifest_show_the_refusal_on_the_link(
    mesh: Path, jiangsu: Node
) -> None:
    """A node past its manifest's expiry sends no heartbeat: each link shows it refused by
    this node (manifest_expired) and down, and the heartbeat loop keeps running."""
    clock = lambda: time.time() + 100 * DAY  # noqa: E731
    async with running(config_for(mesh, "shanghai"), clock=clock) as sh:
        await eventually(lambda: sh.peers.link("jiangsu").refusal is not None)
        link = sh.peers.link("jiangsu")
        assert link.refusal == LinkRefusal(
            FaultCode.MANIFEST_EXPIRED.value, by_peer=False, detail=link.refusal.detail
        )
        assert not link.up and "manifest_expired" in link.last_error
        assert sh.tasks.problems() == []

"""A queued message is unsigned: the batch signature it is sent under is its only one.

What an outbox holds until a message goes out carries no signature of its own (DESIGN §3:
the batch statement signs the tree of the messages); once sent, its row, its evidence and
the receiver's inbox hold it with the batch signature and its proof. An unsigned or
wrongly signed message is refused on every RPC, and nothing of it is kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from node.protocol.envelope import (
    queued,
    seal,
    sign_batch,
    signed_batch,
    signing_input,
    statement_of,
)
from node.protocol.faults import FaultCode
from node.store import inbox, outbox
from node.store.audit import verify_store
from node.transport.errors import FAULT_TRAILER
from node.trust.suites import ED25519_SUITE
from node.wire import DELIVER_METHOD, DELIVER_STREAM_METHOD, EXCHANGE_METHOD, pb
from tests.federation import make_federation, probe_message
from tests.nodes import config_for, eventually, raw_channel, running, tls_of
from tests.test_exchange_batches import key_of, mesh

__all__ = ["mesh"]  # the fixture, used by name


async def test_a_queued_message_is_unsigned_until_it_goes_out_in_its_signed_batch(
    mesh: Path,
) -> None:
    """While the peer is down, the outbox row holds the message alone (no signature, key id
    or proof) and nothing is evidence; once delivered, the row, the evidence log and the
    peer's inbox hold it with the batch signature and a proof that verifies."""
    key = key_of(mesh, "shanghai")
    async with running(config_for(mesh, "shanghai")) as sh:
        [message_id] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=1))])
        row = outbox.get(sh.db.reader(), message_id)
        assert row is not None and row.state == outbox.PENDING
        as_queued = pb.Envelope.FromString(row.envelope)
        assert (as_queued.signature, as_queued.key_id, as_queued.HasField("proof")) == (
            b"",
            "",
            False,
        )
        assert row.digest == key.suite.hash(as_queued.message)
        assert (
            sh.db.reader()
            .execute("SELECT count(*) FROM audit WHERE message_id = ?", (message_id,))
            .fetchone()[0]
            == 0
        )
        async with running(config_for(mesh, "jiangsu")) as js:
            sh.peers["jiangsu"].worker.kick()

            def delivered() -> bool:
                item = outbox.get(sh.db.reader(), message_id)
                return item is not None and item.state == outbox.DELIVERED

            await eventually(delivered)
            received = inbox.prior(js.db.reader(), sh.config.node_id, message_id)
            assert received is not None
        row = outbox.get(sh.db.reader(), message_id)
        assert row is not None
        as_sent = pb.Envelope.FromString(row.envelope)
        assert as_sent.message == as_queued.message
        assert as_sent.key_id == key.key_id and as_sent.HasField("proof")
        statement = statement_of(as_sent)
        assert statement is not None and key.verify_key.verify(as_sent.signature, statement)
        [evidence] = [
            bytes(body)
            for (body,) in sh.db.reader().execute(
                "SELECT body FROM audit WHERE message_id = ? AND kind = 'envelope'",
                (message_id,),
            )
        ]
        assert evidence == row.envelope
    for province in ("shanghai", "jiangsu"):
        report = verify_store(mesh / province / "node.db")
        assert report.ok, report.reason


def _forms(mesh: Path, form: str) -> tuple[bytes, bytes]:
    """A probe from Shanghai to Jiangsu as one envelope (``Deliver``, ``DeliverStream``) and
    as an Exchange frame, in ``form``: unsigned (as queued), or signed by a key that is not
    the one its key id names (Jiangsu's key under Shanghai's key id)."""
    message = probe_message("shanghai", "jiangsu", now=time.time())
    if form == "unsigned":
        envelope = queued(message, ED25519_SUITE).envelope
        frame = pb.Batch(messages=[pb.Envelope.FromString(envelope).message]).SerializeToString()
        return envelope, frame
    own, other = key_of(mesh, "shanghai"), key_of(mesh, "jiangsu")
    single = pb.Envelope.FromString(seal(message, other).envelope)
    single.key_id = own.key_id
    batch, _ = signed_batch([single.message], other)
    batch.key_id = own.key_id
    assert not own.verify_key.verify(single.signature, signing_input(single.message))
    return single.SerializeToString(), batch.SerializeToString()


async def _call(channel: grpc.aio.Channel, rpc: str, envelope: bytes, frame: bytes) -> pb.Message:
    """One message sent by ``rpc``; the signed reply that answers it (a ``Deliver`` refusal
    in the call's trailer, on the streams the reply or the reply frame's one message)."""
    if rpc == "Deliver":
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary(DELIVER_METHOD)(envelope, timeout=10)
        reply = dict(raised.value.trailing_metadata() or ()).get(FAULT_TRAILER, b"")
        assert isinstance(reply, bytes)
        return pb.Message.FromString(pb.Envelope.FromString(reply).message)
    method = DELIVER_STREAM_METHOD if rpc == "DeliverStream" else EXCHANGE_METHOD
    call = channel.stream_stream(method)(timeout=10)
    await call.write(envelope if rpc == "DeliverStream" else frame)
    reply = await call.read()
    await call.done_writing()
    assert isinstance(reply, bytes)
    if rpc == "DeliverStream":
        return pb.Message.FromString(pb.Envelope.FromString(reply).message)
    [answer] = pb.Batch.FromString(reply).messages
    return pb.Message.FromString(answer)


def _state(node: object) -> list[tuple[str, int]]:
    db = node.db.reader()  # type: ignore[attr-defined]
    tables = ("inbox", "audit", "outbox", "cases", "case_updates")
    return [(t, int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])) for t in tables]


@pytest.mark.parametrize("form", ["unsigned", "wrongly_signed"])
@pytest.mark.parametrize("rpc", ["Deliver", "DeliverStream", "Exchange"])
async def test_an_unsigned_or_wrongly_signed_message_is_refused_on_every_rpc(
    mesh: Path, rpc: str, form: str
) -> None:
    """A probe with no signature is a malformed envelope, and one whose signature is not its
    key id's is a bad signature, on ``Deliver``, ``DeliverStream`` and ``Exchange`` alike:
    a signed fault each, and the receiver's store does not change."""
    envelope, frame = _forms(mesh, form)
    async with running(config_for(mesh, "jiangsu")) as js:
        before = _state(js)
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            message = await _call(ch, rpc, envelope, frame)
        assert message.WhichOneof("body") == "fault"
        expected = FaultCode.MALFORMED_ENVELOPE if form == "unsigned" else FaultCode.BAD_SIGNATURE
        assert message.fault.code == expected.value
        assert _state(js) == before
        assert inbox.count(js.db.reader()) == 0


def test_a_batch_statement_never_verifies_as_a_queued_message() -> None:
    """The queued form and a batch signature are not interchangeable: an unsigned envelope
    given a batch's signature without its proof is checked as a single message, and fails."""
    fed = make_federation()
    key = fed.key("shanghai")
    message = probe_message("shanghai", "jiangsu")
    as_queued = pb.Envelope.FromString(queued(message, key.suite).envelope)
    frame, _ = sign_batch([as_queued.message], key)
    as_queued.signature = pb.Batch.FromString(frame).signature
    as_queued.key_id = key.key_id
    statement = statement_of(as_queued)
    assert statement is not None and not key.verify_key.verify(as_queued.signature, statement)

"""The batch-signed Exchange stream against a real node on loopback (mutual TLS): one
signature per frame each way, every message checked and answered on its own, a bad frame
refused whole, and nothing stored for anything refused."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import grpc
import pytest

from node.protocol import checks
from node.protocol.checks import check_reply
from node.protocol.envelope import (
    MAX_BATCH_MESSAGES,
    digest,
    envelopes_of,
    seal,
    signed_batch,
    statement_of,
)
from node.protocol.faults import FaultCode
from node.runtime.config import ConfigError, load_config
from node.store import inbox
from node.store.audit import verify_store
from node.transport.client import PeerChannel
from node.transport.errors import FAULT_TRAILER, PeerUnavailable
from node.trust.keys import SigningKey, load_signing_key
from node.trust.suites import ED25519_SUITE
from node.wire import EXCHANGE_METHOD, pb
from tests.federation import probe_message
from tests.nodes import config_for, federation_server, make_mesh, raw_channel, running, tls_of


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def key_of(mesh: Path, province: str) -> SigningKey:
    return load_signing_key(mesh / province / "signing.key")


def frame_of(messages: Sequence[pb.Message], key: SigningKey) -> tuple[bytes, list[bytes]]:
    """A frame of ``messages`` signed once, and the messages' bytes."""
    encoded = [m.SerializeToString(deterministic=True) for m in messages]
    batch, _ = signed_batch(encoded, key)
    return batch.SerializeToString(deterministic=True), encoded


def probes(count: int, recipient: str = "jiangsu") -> list[pb.Message]:
    return [probe_message("shanghai", recipient, now=time.time(), sequence=n) for n in range(count)]


async def exchange(channel: grpc.aio.Channel, *frames: bytes) -> list[bytes]:
    """Frames written on one Exchange stream; the reply frames, one per frame."""
    call = channel.stream_stream(EXCHANGE_METHOD)(timeout=10)
    replies = []
    for frame in frames:
        await call.write(frame)
        reply = await call.read()
        assert isinstance(reply, bytes)
        replies.append(reply)
    await call.done_writing()
    return replies


def answers(reply_frame: bytes) -> list[pb.Message]:
    return [pb.Message.FromString(m) for m in pb.Batch.FromString(reply_frame).messages]


def stored(node: object) -> tuple[int, int]:
    db = node.db.reader()  # type: ignore[attr-defined]
    return inbox.count(db), int(db.execute("SELECT count(*) FROM audit").fetchone()[0])


async def test_a_frame_is_answered_by_one_frame_of_receipts_each_provable_alone(
    mesh: Path,
) -> None:
    """Five probes in one signed frame: one reply frame, signed once, a receipt per probe in
    order; each receipt checks on its own with its proof; the probes are stored with their
    batch proofs and the evidence log verifies."""
    async with running(config_for(mesh, "jiangsu")) as js:
        frame, encoded = frame_of(probes(5), key_of(mesh, "shanghai"))
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            [reply_frame] = await exchange(ch, frame)
        replies = envelopes_of(pb.Batch.FromString(reply_frame))
        assert len(replies) == 5
        for message_bytes, reply in zip(encoded, replies, strict=True):
            message = pb.Message.FromString(message_bytes)
            checked = check_reply(
                reply,
                peer=js.config.node_id,
                manifest=js.credentials.manifest,
                me="node-310000",
                now=time.time(),
                request_id=message.header.message_id,
                request_digest=digest(message_bytes, ED25519_SUITE),
            )
            assert checked.payload_type == "receipt"
            assert pb.Envelope.FromString(reply).proof.tree_size == 5
            prior = inbox.prior(js.db.reader(), "node-310000", message.header.message_id)
            assert prior is not None and prior.reply == reply
        assert inbox.count(js.db.reader(), payload_type="probe") == 5
    report = verify_store(mesh / "jiangsu" / "node.db")
    assert report.ok, report.reason


async def test_the_frame_signature_is_verified_once(mesh: Path) -> None:
    """Twenty messages under one signature: one verification, nineteen remembered."""
    async with running(config_for(mesh, "jiangsu")) as js:
        frame, _ = frame_of(probes(20), key_of(mesh, "shanghai"))
        before = checks._batch_signature_verifies.cache_info()
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            [reply_frame] = await exchange(ch, frame)
        after = checks._batch_signature_verifies.cache_info()
        assert [m.WhichOneof("body") for m in answers(reply_frame)] == ["receipt"] * 20
        assert after.misses - before.misses == 1
        assert after.hits - before.hits == 19


async def test_one_bad_message_is_refused_alone_and_the_others_go_on(mesh: Path) -> None:
    """A message addressed to another node, in the middle of a frame: its own signed fault,
    nothing of it stored; the messages around it are receipted and stored."""
    async with running(config_for(mesh, "jiangsu")) as js:
        messages = probes(3)
        messages[1] = probe_message("shanghai", "zhejiang", now=time.time(), sequence=9)
        frame, _ = frame_of(messages, key_of(mesh, "shanghai"))
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            [reply_frame] = await exchange(ch, frame)
        replies = answers(reply_frame)
        assert [r.WhichOneof("body") for r in replies] == ["receipt", "fault", "receipt"]
        assert replies[1].fault.code == FaultCode.WRONG_RECIPIENT.value
        assert replies[1].fault.message_id == messages[1].header.message_id
        assert inbox.count(js.db.reader(), payload_type="probe") == 2
        assert inbox.prior(js.db.reader(), "node-310000", messages[1].header.message_id) is None


async def test_a_frame_signed_by_another_key_is_refused_message_by_message(mesh: Path) -> None:
    """Shanghai's messages signed with Jiangsu's key: each gets its own signed fault and
    nothing is stored."""
    async with running(config_for(mesh, "jiangsu")) as js:
        before = stored(js)
        frame, _ = frame_of(probes(3), key_of(mesh, "jiangsu"))
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            [reply_frame] = await exchange(ch, frame)
        assert [r.fault.code for r in answers(reply_frame)] == [FaultCode.UNKNOWN_KEY.value] * 3
        assert stored(js) == before


async def test_a_tampered_message_fails_its_proof_and_only_it_is_refused(mesh: Path) -> None:
    """A frame whose second message was changed after signing: that message's proof no
    longer leads to the signed root (bad_signature); the others still do."""
    async with running(config_for(mesh, "jiangsu")) as js:
        frame, _ = frame_of(probes(3), key_of(mesh, "shanghai"))
        batch = pb.Batch.FromString(frame)
        changed = pb.Message.FromString(batch.messages[1])
        changed.probe.sequence = 77
        batch.messages[1] = changed.SerializeToString(deterministic=True)
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            [reply_frame] = await exchange(ch, batch.SerializeToString())
        codes = [r.fault.code or r.WhichOneof("body") for r in answers(reply_frame)]
        # The root itself changed, so no message's proof leads to the signed statement.
        assert codes == [FaultCode.BAD_SIGNATURE.value] * 3
        assert inbox.count(js.db.reader(), payload_type="probe") == 0


async def test_a_frame_sent_again_gets_the_same_receipts_and_stores_nothing_more(
    mesh: Path,
) -> None:
    """Re-delivery of a whole frame (a lost reply): the receipts it gets sign the very same
    receipt messages as the first time; one inbox row per message."""
    async with running(config_for(mesh, "jiangsu")) as js:
        frame, _ = frame_of(probes(4), key_of(mesh, "shanghai"))
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            first, second = await exchange(ch, frame, frame)
        assert pb.Batch.FromString(first).messages == pb.Batch.FromString(second).messages
        assert inbox.count(js.db.reader(), payload_type="probe") == 4


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"\xff\x00not a batch", "not a valid protobuf Batch"),
        (pb.Batch().SerializeToString(), "not 0"),
        (
            pb.Batch(messages=[b"x"] * (MAX_BATCH_MESSAGES + 1)).SerializeToString(),
            f"not {MAX_BATCH_MESSAGES + 1}",
        ),
    ],
    ids=["garbage", "empty", "too-many"],
)
async def test_a_frame_that_is_not_a_batch_ends_the_stream_with_a_signed_fault(
    mesh: Path, frame: bytes, why: str
) -> None:
    async with running(config_for(mesh, "jiangsu")) as js:
        before = stored(js)
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await exchange(ch, frame)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        fault = dict(refused.value.trailing_metadata() or ()).get(FAULT_TRAILER)
        assert isinstance(fault, bytes)
        message = pb.Message.FromString(pb.Envelope.FromString(fault).message)
        assert message.fault.code == FaultCode.MALFORMED_ENVELOPE.value
        assert why in message.fault.text
        assert stored(js) == before


@pytest.mark.parametrize("size", [0, MAX_BATCH_MESSAGES + 1])
def test_a_batch_size_no_peer_takes_is_refused_at_load(mesh: Path, size: int) -> None:
    path = mesh / "shanghai" / "node.toml"
    text = path.read_text()
    assert "batch_size = 64" in text
    path.write_text(text.replace("batch_size = 64", f"batch_size = {size}"))
    with pytest.raises(ConfigError, match="'batch_size' must be 1 to"):
        load_config(path, {})


class ScriptedPeer:
    """A peer's Exchange endpoint (real mutual TLS) that answers each frame as told: with
    ``replies(frame)`` frames, after an optional delay."""

    def __init__(self, answer: Callable[[pb.Batch], Awaitable[bytes | None]]) -> None:
        self.answer = answer
        self.frames: list[pb.Batch] = []

    async def exchange(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for raw in requests:
            batch = pb.Batch.FromString(raw)
            self.frames.append(batch)
            reply = await self.answer(batch)
            if reply is not None:
                yield reply


@contextlib.asynccontextmanager
async def scripted(mesh: Path, peer: ScriptedPeer) -> AsyncIterator[PeerChannel]:
    """``peer`` serving as Jiangsu; Shanghai's PeerChannel to it."""
    server, port = await federation_server(
        mesh, "jiangsu", {"Exchange": grpc.stream_stream_rpc_method_handler(peer.exchange)}
    )
    key = key_of(mesh, "shanghai")
    channel = PeerChannel(
        "node-320000",
        f"127.0.0.1:{port}",
        tls_of(mesh, "shanghai"),
        max_message_bytes=64 * 1024,
        signing_key=lambda: key,
    )
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(None)


def receipts_for(batch: pb.Batch, key: SigningKey, count: int | None = None) -> bytes:
    """A reply frame of ``count`` (default: one per message) opaque replies, signed once."""
    n = len(batch.messages) if count is None else count
    replies, _ = signed_batch([b"reply-%d" % i for i in range(n)], key)
    return replies.SerializeToString()


async def test_a_reply_frame_with_the_wrong_count_is_a_transport_failure(mesh: Path) -> None:
    """Three messages answered by a frame of two replies: nothing is handed on as settled,
    and the worker's call fails as the peer being unavailable (it retries later)."""
    key = key_of(mesh, "jiangsu")

    async def short(batch: pb.Batch) -> bytes:
        return receipts_for(batch, key, count=len(batch.messages) - 1)

    got: list[int] = []
    async with scripted(mesh, ScriptedPeer(short)) as channel:
        envelopes = [seal(m, key_of(mesh, "shanghai")).envelope for m in probes(3)]
        with pytest.raises(PeerUnavailable, match="2 replies for 3 messages"):
            await channel.exchange_batch(
                envelopes, timeout=5, on_reply=lambda i, _r, _s, _f: got.append(i)
            )
    assert got == []


async def test_frames_are_cut_at_the_size_limit_and_each_signed_once(mesh: Path) -> None:
    """Messages of 30 KiB under a 64 KiB limit: frames of two, each signed over its own
    root; replies handed on in order across the frames, with each message as sent."""
    key = key_of(mesh, "jiangsu")

    async def echo(batch: pb.Batch) -> bytes:
        return receipts_for(batch, key)

    peer = ScriptedPeer(echo)
    got: list[tuple[int, bytes]] = []
    async with scripted(mesh, peer) as channel:
        big = probes(5)
        for message in big:
            message.probe.payload = b"x" * 30_000
        envelopes = [seal(m, key_of(mesh, "shanghai")).envelope for m in big]
        await channel.exchange_batch(
            envelopes, timeout=5, on_reply=lambda i, _r, sent, _f: got.append((i, sent))
        )
    assert [len(f.messages) for f in peer.frames] == [2, 2, 1]
    assert [i for i, _ in got] == [0, 1, 2, 3, 4]
    for (_, sent), envelope in zip(got, envelopes, strict=True):
        as_sent = pb.Envelope.FromString(sent)
        assert as_sent.message == pb.Envelope.FromString(envelope).message
        assert as_sent.HasField("proof")
        assert statement_of(as_sent) is not None


async def test_an_abandoned_question_leaves_the_stream_to_the_next(mesh: Path) -> None:
    """A question whose answer comes late is abandoned (unavailable); its late reply is
    dropped, and the next question on the same stream gets its own answer."""
    key = key_of(mesh, "jiangsu")
    release = asyncio.Event()

    async def slow_first(batch: pb.Batch) -> bytes:
        if not release.is_set():
            await release.wait()
            return receipts_for(batch, key)
        return receipts_for(batch, key)

    async with scripted(mesh, ScriptedPeer(slow_first)) as channel:
        [first, second] = [m.SerializeToString() for m in probes(2)]
        with pytest.raises(PeerUnavailable, match="deadline"):
            await channel.ask(first, timeout=0.3)
        release.set()
        reply, sent = await channel.ask(second, timeout=5)
    assert pb.Envelope.FromString(sent).message == second
    assert pb.Envelope.FromString(reply).message == b"reply-0"

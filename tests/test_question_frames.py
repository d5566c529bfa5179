"""Questions gathered into Exchange frames (``node.transport.questions``) against a scripted
peer on a real mutual-TLS gRPC server: a lone question goes at once, a burst waits for a
free frame and leaves together, each asker gets its own reply, and a question whose stream
broke is sent once more, byte for byte."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.protocol.envelope import signed_batch
from node.transport.errors import PeerUnavailable
from node.transport.questions import FRAMES_IN_FLIGHT
from node.wire import pb
from tests.nodes import make_mesh
from tests.test_exchange_batches import ScriptedPeer, key_of, scripted


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def echoes(batch: pb.Batch, mesh: Path) -> bytes:
    """A reply frame answering each message with ``re:`` and the message, signed once."""
    replies, _ = signed_batch([b"re:" + m for m in batch.messages], key_of(mesh, "jiangsu"))
    return replies.SerializeToString()


def reply_of(replied: tuple[bytes, bytes]) -> bytes:
    return pb.Envelope.FromString(replied[0]).message


async def test_a_burst_waits_for_a_free_frame_and_leaves_together(mesh: Path) -> None:
    """While the frames in flight await their replies, 24 more questions wait; when one
    frame is answered they leave in one frame, and every asker gets the reply to its own
    question."""
    release = asyncio.Event()

    async def held(batch: pb.Batch) -> bytes:
        await release.wait()
        return echoes(batch, mesh)

    peer = ScriptedPeer(held)
    async with scripted(mesh, peer) as channel:
        lone = []
        for i in range(2):  # each lone question leaves before the next is asked
            lone.append(asyncio.ensure_future(channel.ask(b"q%d" % i, timeout=30)))
            for _ in range(20):
                await asyncio.sleep(0)
        burst = [asyncio.ensure_future(channel.ask(b"q%d" % i, timeout=30)) for i in range(2, 26)]
        await asyncio.sleep(0.05)
        assert [len(f.messages) for f in peer.frames] == [1]  # the peer reads one at a time
        release.set()
        answers = await asyncio.gather(*lone, *burst)
    assert FRAMES_IN_FLIGHT == 2
    assert [len(f.messages) for f in peer.frames] == [1, 1, 24]
    assert [reply_of(a) for a in answers] == [b"re:q%d" % i for i in range(26)]
    for index, (_, sent) in enumerate(answers):
        assert pb.Envelope.FromString(sent).message == b"q%d" % index


async def test_a_question_whose_stream_broke_is_sent_again_unchanged(mesh: Path) -> None:
    """The peer's stream fails before it answers the first frame: the question goes once
    more, the same bytes, on a fresh stream, and its asker gets that answer."""

    async def fail_first(batch: pb.Batch) -> bytes:
        if len(peer.frames) == 1:
            raise RuntimeError("the connection is lost before the reply")
        return echoes(batch, mesh)

    peer = ScriptedPeer(fail_first)
    async with scripted(mesh, peer) as channel:
        answer = await channel.ask(b"only-once-please", timeout=30)
    assert [list(f.messages) for f in peer.frames] == [[b"only-once-please"]] * 2
    assert reply_of(answer) == b"re:only-once-please"


async def test_a_question_is_sent_at_most_twice(mesh: Path) -> None:
    """A peer whose stream fails every time: the question is sent twice, then its asker
    hears the peer is unavailable."""

    async def always_fail(batch: pb.Batch) -> bytes:
        raise RuntimeError("the connection is lost before the reply")

    peer = ScriptedPeer(always_fail)
    async with scripted(mesh, peer) as channel:
        with pytest.raises(PeerUnavailable):
            await channel.ask(b"lost", timeout=30)
    assert len(peer.frames) == 2


async def test_an_abandoned_waiting_question_never_leaves(mesh: Path) -> None:
    """A question still waiting for a frame when its asker gives up is not sent."""
    release = asyncio.Event()

    async def held(batch: pb.Batch) -> bytes:
        await release.wait()
        return echoes(batch, mesh)

    peer = ScriptedPeer(held)
    async with scripted(mesh, peer) as channel:
        busy = []
        for i in range(2):
            busy.append(asyncio.ensure_future(channel.ask(b"busy%d" % i, timeout=30)))
            for _ in range(20):
                await asyncio.sleep(0)
        with pytest.raises(PeerUnavailable, match="deadline"):
            await channel.ask(b"impatient", timeout=0.05)
        kept = asyncio.ensure_future(channel.ask(b"patient", timeout=30))
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*busy)
        assert reply_of(await kept) == b"re:patient"
    assert [list(f.messages) for f in peer.frames] == [[b"busy0"], [b"busy1"], [b"patient"]]

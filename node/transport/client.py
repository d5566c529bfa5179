"""A mutual-TLS channel to one peer: the unary call, and the batch-signed ``Exchange`` stream.

The server's certificate must chain to the federation CA and name the peer's node id (the
channel overrides the TLS target name with it, since peers are addressed by host:port). So
the address dialled may be another than the manifest's endpoint (``address``: a relay, a
tester's fault proxy) without changing whom the channel accepts at the far end.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

import grpc
from google.protobuf.message import DecodeError

from node.protocol.envelope import envelopes_of, received_frame, signed_batch
from node.transport.errors import PeerUnavailable, SignedRefusal, translate_rpc_errors
from node.transport.questions import QuestionFrames
from node.transport.server import TRANSPORT_HEADROOM
from node.trust.keys import SigningKey
from node.trust.tls import TlsMaterial
from node.wire import DELIVER_METHOD, EXCHANGE_METHOD, pb


class PeerChannel:
    def __init__(
        self,
        node_id: str,
        endpoint: str,
        tls: TlsMaterial,
        *,
        max_message_bytes: int,
        signing_key: Callable[[], SigningKey],
        address: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.endpoint = endpoint
        """The peer's endpoint in the manifest."""
        self.address = address or endpoint
        """Where the channel dials: the endpoint, unless configured otherwise."""
        self._signing_key = signing_key
        self._frame_bytes = max_message_bytes
        """Most message bytes one frame carries (a lone larger message goes alone)."""
        limit = max_message_bytes + TRANSPORT_HEADROOM
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
        )
        self._channel = grpc.aio.secure_channel(
            self.address,
            credentials,
            options=[
                ("grpc.ssl_target_name_override", node_id),
                ("grpc.default_authority", node_id),
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # Reconnect promptly when a peer comes back; the delivery worker owns back-off.
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
                ("grpc.keepalive_time_ms", 20000),
                ("grpc.keepalive_timeout_ms", 10000),
            ],
        )
        self._deliver = self._channel.unary_unary(DELIVER_METHOD)
        self._stream_method = self._channel.stream_stream(EXCHANGE_METHOD)
        self._stream: ExchangeStream | None = None
        self._questions = QuestionFrames(node_id, self._exchange, frame_bytes=max_message_bytes)

    async def deliver(self, envelope: bytes, *, timeout: float) -> bytes:
        """Send one envelope on its own; return the signed reply. A refusal raises
        SignedRefusal."""
        with translate_rpc_errors(self.node_id):
            reply = await self._deliver(envelope, timeout=timeout, wait_for_ready=False)
        assert isinstance(reply, bytes)
        return reply

    async def exchange_batch(
        self,
        envelopes: Sequence[bytes],
        *,
        timeout: float,
        on_reply: Callable[[int, bytes, bytes, bytes], None],
    ) -> None:
        """Send signed envelopes' messages as batch-signed frames on the long-lived
        ``Exchange`` stream (as few frames as the size limit allows, each signed once); hand
        each reply to ``on_reply`` (its index, the reply as its own provable Envelope, the
        message as it was sent: its Envelope with the frame's signature and its proof, and
        the statement of the reply frame, which the reply's proof leads to:
        ``check_reply``), in order, as each reply frame arrives.

        The delivery worker's call: when it fails or runs out of time the stream is dropped
        (a stalled peer gets a fresh connection), and the next call opens another.
        """
        messages = [pb.Envelope.FromString(envelope).message for envelope in envelopes]
        try:
            async with asyncio.timeout(timeout):
                start = 0
                for frame in self._frames(messages):
                    statement, replies = await self._exchange_frame(frame)
                    for index, (reply, sent) in enumerate(replies):
                        on_reply(start + index, reply, sent, statement)
                    start += len(frame)
        except TimeoutError as error:
            self._drop_stream()
            raise PeerUnavailable(self.node_id, "no reply before the deadline") from error
        except BaseException:
            self._drop_stream()
            raise

    async def ask(self, message: bytes, *, timeout: float) -> tuple[bytes, bytes]:
        """Send one serialized message on the ``Exchange`` stream, beside the delivery
        worker's batches, in a frame with the other questions waiting for this peer
        (``QuestionFrames``); return its reply and the message as sent (both Envelopes). Out
        of time, the question is abandoned (its late reply is dropped) and the stream lives
        on; a stream lost before the reply came is retried once with the same message.
        """
        return await self._questions.ask(message, timeout=timeout)

    async def _exchange(self, messages: list[bytes]) -> list[tuple[bytes, bytes]]:
        """One frame out, its reply frame back: (reply, message as sent) per message."""
        _, replies = await self._exchange_frame(messages)
        return replies

    async def _exchange_frame(
        self, messages: list[bytes]
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """``_exchange``, with the statement of the reply frame."""
        if self._stream is None or self._stream.broken is not None:
            self._stream = ExchangeStream(self.node_id, self._stream_method(wait_for_ready=False))
        batch, tree = signed_batch(messages, self._signing_key())
        raw = await self._stream.send(batch.SerializeToString(deterministic=True))
        statement, replies = self._replies(raw, len(messages))
        return statement, list(zip(replies, envelopes_of(batch, tree), strict=True))

    def _frames(self, messages: list[bytes]) -> list[list[bytes]]:
        """The messages in order, cut into frames of at most the size limit."""
        frames: list[list[bytes]] = [[]]
        size = 0
        for message in messages:
            if frames[-1] and size + len(message) > self._frame_bytes:
                frames.append([])
                size = 0
            frames[-1].append(message)
            size += len(message)
        return frames

    def _replies(self, raw: bytes, expected: int) -> tuple[bytes, list[bytes]]:
        """A reply frame's statement and its replies, each as its own Envelope (checked by
        the caller)."""
        try:
            batch = pb.Batch.FromString(raw)
        except DecodeError as exc:
            raise PeerUnavailable(self.node_id, f"reply frame is not a Batch: {exc}") from exc
        if len(batch.messages) != expected:
            raise PeerUnavailable(
                self.node_id,
                f"reply frame holds {len(batch.messages)} replies for {expected} messages",
            )
        return received_frame(batch)

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in progress get that long to finish."""
        if grace is None:
            self._questions.close()
            self._drop_stream()
        await self._channel.close(grace)


class ExchangeStream:
    """One ``Exchange`` call shared by whoever sends on it: frames are written one at a time,
    and replies, which come back in the order the frames went, are read by one reader and
    handed to the frame each answers. A reply whose sender stopped waiting is dropped. Any
    failure of the call fails every frame still waiting, and the stream is not used again.
    """

    def __init__(self, peer: str, call: grpc.aio.StreamStreamCall) -> None:
        self._peer = peer
        self._call = call
        self._writing = asyncio.Lock()
        self._waiting: deque[asyncio.Future[bytes]] = deque()
        self.broken: BaseException | None = None
        self._reader = asyncio.ensure_future(self._read())

    async def send(self, frame: bytes) -> bytes:
        """Write ``frame``; return the reply frame that answers it."""
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        async with self._writing:
            if self.broken is not None:
                raise self.broken
            self._waiting.append(answer)
            try:
                with translate_rpc_errors(self._peer):
                    await self._call.write(frame)
            except BaseException as error:
                answer.cancel()  # this caller hears of it from the raise, not the future
                self._fail(_unavailable(self._peer, error))
                raise
        return await answer

    async def _read(self) -> None:
        try:
            with translate_rpc_errors(self._peer):
                while True:
                    raw = await self._call.read()
                    if raw is grpc.aio.EOF:
                        raise PeerUnavailable(self._peer, "stream closed by the peer")
                    if not self._waiting:
                        raise PeerUnavailable(self._peer, "a reply frame no frame asked for")
                    answer = self._waiting.popleft()
                    if not answer.done():
                        assert isinstance(raw, bytes)
                        answer.set_result(raw)
        except BaseException as error:  # includes CancelledError: close() fails the waiting
            self._fail(_unavailable(self._peer, error))

    def _fail(self, error: BaseException) -> None:
        if self.broken is None:
            self.broken = error
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(self.broken)
        self._call.cancel()

    def close(self) -> None:
        self._fail(PeerUnavailable(self._peer, "stream closed"))
        self._reader.cancel()


def _unavailable(peer: str, error: BaseException) -> BaseException:
    """What a stream's failure means for the frames waiting on it."""
    if isinstance(error, PeerUnavailable):
        return error
    if isinstance(error, SignedRefusal):
        return PeerUnavailable(peer, f"the peer refused the whole frame ({error.status.name})")
    if isinstance(error, asyncio.CancelledError):
        return PeerUnavailable(peer, "stream closed")
    return PeerUnavailable(peer, f"stream failed: {error!r}")

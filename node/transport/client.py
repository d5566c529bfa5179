"""A mutual-TLS channel to one peer: the unary call, and the batch-signed ``Exchange`` stream.

The server's certificate must chain to the federation CA and name the peer's node id (the
channel overrides the TLS target name with it, since peers are addressed by host:port). So
the address dialled may be another than the manifest's endpoint (``address``: a relay, a
tester's fault proxy) without changing whom the channel accepts at the far end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import grpc
from google.protobuf.message import DecodeError

from node.protocol.envelope import envelopes_of, signed_batch
from node.transport.errors import PeerUnavailable, SignedRefusal, translate_rpc_errors
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
        self._stream: grpc.aio.StreamStreamCall | None = None

    async def deliver(self, envelope: bytes, *, timeout: float) -> bytes:
        """Send one envelope; return the signed reply. A refusal raises SignedRefusal."""
        with translate_rpc_errors(self.node_id):
            reply = await self._deliver(envelope, timeout=timeout, wait_for_ready=False)
        assert isinstance(reply, bytes)
        return reply

    async def exchange_batch(
        self,
        envelopes: Sequence[bytes],
        *,
        timeout: float,
        on_reply: Callable[[int, bytes, bytes], None],
    ) -> None:
        """Send signed envelopes' messages as batch-signed frames on the long-lived
        ``Exchange`` stream (as few frames as the size limit allows, each signed once); hand
        each reply to ``on_reply`` (its index, the reply as its own provable Envelope, and the
        message as it was sent: its Envelope with the frame's signature and its proof), in
        order, as each reply frame arrives.

        The stream is opened on first use and reopened after any failure.
        """
        messages = [pb.Envelope.FromString(envelope).message for envelope in envelopes]
        if self._stream is None or self._stream.done():
            self._stream = self._stream_method(wait_for_ready=False)
        stream = self._stream
        try:
            with translate_rpc_errors(self.node_id):
                async with asyncio.timeout(timeout):
                    start = 0
                    for frame in self._frames(messages):
                        batch, tree = signed_batch(frame, self._signing_key())
                        await stream.write(batch.SerializeToString(deterministic=True))
                        sent = envelopes_of(batch, tree)
                        raw = await stream.read()
                        if raw is grpc.aio.EOF:
                            raise PeerUnavailable(self.node_id, "stream closed mid-batch")
                        assert isinstance(raw, bytes)
                        replies = self._replies(raw, len(frame))
                        for index, (reply, message) in enumerate(zip(replies, sent, strict=True)):
                            on_reply(start + index, reply, message)
                        start += len(frame)
        except SignedRefusal as refused:
            self._drop_stream()
            raise PeerUnavailable(
                self.node_id, f"the peer refused the whole frame ({refused.status.name})"
            ) from refused
        except BaseException:
            self._drop_stream()
            raise

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

    def _replies(self, raw: bytes, expected: int) -> list[bytes]:
        """A reply frame's replies, each as its own Envelope (checked by the caller)."""
        try:
            batch = pb.Batch.FromString(raw)
        except DecodeError as exc:
            raise PeerUnavailable(self.node_id, f"reply frame is not a Batch: {exc}") from exc
        if len(batch.messages) != expected:
            raise PeerUnavailable(
                self.node_id,
                f"reply frame holds {len(batch.messages)} replies for {expected} messages",
            )
        return envelopes_of(batch)

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in progress get that long to finish."""
        if grace is None:
            self._drop_stream()
        await self._channel.close(grace)

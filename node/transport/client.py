"""A mutual-TLS channel to one peer, with the unary call and the pipelined stream.

The server's certificate must chain to the federation CA and name the peer's node id (the
channel overrides the TLS target name with it, since peers are addressed by host:port). So
the address dialled may be another than the manifest's endpoint (``address``: a relay, a
tester's fault proxy) without changing whom the channel accepts at the far end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import grpc

from node.transport.errors import PeerUnavailable, translate_rpc_errors
from node.transport.server import TRANSPORT_HEADROOM
from node.trust.tls import TlsMaterial
from node.wire import DELIVER_METHOD, DELIVER_STREAM_METHOD


class PeerChannel:
    def __init__(
        self,
        node_id: str,
        endpoint: str,
        tls: TlsMaterial,
        *,
        max_message_bytes: int,
        address: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.endpoint = endpoint
        """The peer's endpoint in the manifest."""
        self.address = address or endpoint
        """Where the channel dials: the endpoint, unless configured otherwise."""
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
        self._stream_method = self._channel.stream_stream(DELIVER_STREAM_METHOD)
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
        on_reply: Callable[[int, bytes], None],
    ) -> None:
        """Send a batch on the long-lived stream; hand each signed reply to ``on_reply`` (with
        its index) as soon as it arrives, in order, one per envelope.

        The stream is opened on first use and reopened after any failure.
        """
        if self._stream is None or self._stream.done():
            self._stream = self._stream_method(wait_for_ready=False)
        stream = self._stream

        async def write_all() -> None:
            for envelope in envelopes:
                await stream.write(envelope)

        try:
            with translate_rpc_errors(self.node_id):
                async with asyncio.timeout(timeout):
                    writer = asyncio.ensure_future(write_all())
                    try:
                        for index in range(len(envelopes)):
                            reply = await stream.read()
                            if reply is grpc.aio.EOF:
                                raise PeerUnavailable(self.node_id, "stream closed mid-batch")
                            assert isinstance(reply, bytes)
                            on_reply(index, reply)
                        await writer
                    finally:
                        writer.cancel()
        except BaseException:
            self._drop_stream()
            raise

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in progress get that long to finish."""
        if grace is None:
            self._drop_stream()
        await self._channel.close(grace)

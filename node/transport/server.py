"""The federation gRPC server: mutual TLS, raw-bytes handlers, health and reflection.

Rules kept here:
- Client certificates are required and must chain to the federation CA; the verified DNS
  SAN of the client certificate is the identity handed to the receiver checks.
- Handlers take and return raw bytes so that malformed protobuf reaches our own checks and
  gets a signed Fault, rather than dying in a deserializer.
- Three ways in: ``Deliver`` (one envelope, one signed reply), ``DeliverStream`` (envelopes,
  one signed reply each) and ``Exchange``, the delivery path (batch-signed frames, one frame
  of replies each, signed once). A frame that is not a batch at all ends its stream with the
  fault's status and the signed fault in the trailers.
- A stream is read by one task while replies are produced concurrently and written back in
  request order, so what arrives on it shares the store's group commit.
- Every stream and call passes the door of ``admission`` first (per-peer caps, suspension
  of a peer that keeps sending refusable traffic); a refused one ends with
  RESOURCE_EXHAUSTED before any of its messages is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Protocol, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from node.protocol.faults import FaultCode
from node.transport.admission import DoorClosed, PeerAdmission
from node.transport.errors import FAULT_TRAILER
from node.trust.tls import TlsMaterial, peer_identity
from node.wire import SERVICE_NAME, pb

# Transport headroom over the protocol limit, so an oversize envelope reaches our checks and
# gets a signed "message_too_large" instead of a bare transport error.
TRANSPORT_HEADROOM = 64 * 1024


@dataclass(frozen=True)
class Reply:
    """A signed reply envelope, and the gRPC status that goes with it (None = OK)."""

    envelope: bytes
    status: grpc.StatusCode | None = None
    text: str = ""
    faults: tuple[FaultCode, ...] = ()
    """The codes of the refusals it holds: its own when the reply is a Fault, each refused
    message's for a batch of replies."""


Receive = Callable[[bytes, str | None], Awaitable[Reply]]
"""Check a request now (synchronously, in call order); await the result for the reply."""


class EnvelopeReceiver(Protocol):
    def receive(self, raw: bytes, tls_identity: str | None) -> Awaitable[Reply]:
        """One envelope (``Deliver``, ``DeliverStream``): its own signed reply."""
        ...

    def receive_batch(self, frame: bytes, tls_identity: str | None) -> Awaitable[Reply]:
        """One batch-signed frame (``Exchange``): a frame of replies, signed once."""
        ...


_CLOSE = object()
"""Put into a stream's queue on shutdown: answer what is queued, then end the stream."""


class FederationServicer:
    def __init__(self, receiver: EnvelopeReceiver, admission: PeerAdmission) -> None:
        self._receiver = receiver
        self.admission = admission
        self._streams: set[asyncio.Queue[object]] = set()

    def close_streams(self) -> None:
        """End every open stream once the replies already queued on it are sent.

        Peers keep a stream open for as long as they run; without this a graceful stop
        would wait out its whole grace period for streams that are merely idle. A message
        read after this gets no reply; its sender re-sends it and receivers deduplicate.
        """
        for queue in self._streams:
            queue.put_nowait(_CLOSE)

    async def deliver(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        identity = peer_identity(context.auth_context())
        try:
            with self.admission.call(identity):
                reply = await self._receiver.receive(request, identity)
        except DoorClosed as closed:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{closed.reason}: {closed}")
        self._count_refusals(identity, reply)
        if reply.status is not None:
            await context.abort(
                reply.status, reply.text, trailing_metadata=((FAULT_TRAILER, reply.envelope),)
            )
        return reply.envelope

    def _count_refusals(self, identity: str | None, reply: Reply) -> None:
        for code in reply.faults:
            self.admission.refused(identity, code)

    async def deliver_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        # An async generator itself: grpc.aio tells a streaming handler by its function.
        async for reply in self._stream(self._receiver.receive, requests, context, frames=False):
            yield reply

    async def exchange(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        # An async generator itself: grpc.aio tells a streaming handler by its function.
        async for reply in self._stream(
            self._receiver.receive_batch, requests, context, frames=True
        ):
            yield reply

    async def _stream(
        self,
        receive: Receive,
        requests: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
        *,
        frames: bool,
    ) -> AsyncIterator[bytes]:
        """A long-lived stream: envelopes (``DeliverStream``) or batch frames (``Exchange``)
        in, one reply each out, in order."""
        identity = peer_identity(context.auth_context())
        try:
            with self.admission.stream(identity):
                replies = self._answer_stream(receive, requests, identity, context, frames=frames)
                async for reply in replies:
                    yield reply
        except DoorClosed as closed:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{closed.reason}: {closed}")

    async def _answer_stream(
        self,
        receive: Receive,
        requests: AsyncIterator[bytes],
        identity: str | None,
        context: grpc.aio.ServicerContext,
        *,
        frames: bool,
    ) -> AsyncIterator[bytes]:
        pending: asyncio.Queue[object] = asyncio.Queue()
        # Places for replies not yet written back: the reader waits for one before it reads
        # the next message, so a peer that never reads stalls its own stream, not our memory.
        backlog = asyncio.Semaphore(self.admission.limits.stream_backlog)

        async def read_all() -> None:
            try:
                while True:
                    await backlog.acquire()
                    request = await anext(requests, None)
                    if request is None:
                        break
                    # receive() checks and queues the write at once, in arrival order; the
                    # store's writer keeps that order for the effects.
                    pending.put_nowait(receive(request, identity))
            finally:
                pending.put_nowait(None)

        reader = asyncio.create_task(read_all())
        self._streams.add(pending)
        try:
            while (item := await pending.get()) is not None and item is not _CLOSE:
                reply = await cast(Awaitable[Reply], item)
                self._count_refusals(identity, reply)
                if frames and reply.status is not None:
                    # The frame itself was refused (not a batch): nothing of it was read.
                    await context.abort(
                        reply.status,
                        reply.text,
                        trailing_metadata=((FAULT_TRAILER, reply.envelope),),
                    )
                yield reply.envelope
                backlog.release()
                if self.admission.suspended(identity):
                    # Ended while the reader still waits on the peer, so the status goes out
                    # before that read is cancelled.
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "peer_suspended: too many refused messages from this peer; stream ended",
                    )
            if item is None:
                await reader
        finally:
            self._streams.discard(pending)
            reader.cancel()
            while not pending.empty():
                leftover = pending.get_nowait()
                if isinstance(leftover, Coroutine):  # a receiver may return coroutines
                    leftover.close()


def federation_handler(servicer: FederationServicer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Deliver": grpc.unary_unary_rpc_method_handler(servicer.deliver),
            "DeliverStream": grpc.stream_stream_rpc_method_handler(servicer.deliver_stream),
            "Exchange": grpc.stream_stream_rpc_method_handler(servicer.exchange),
        },
    )


@dataclass
class FederationServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    servicer: FederationServicer
    port: int

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set("", status)
        await self.health.set(SERVICE_NAME, status)

    async def stop(self, grace: float) -> None:
        """Stop accepting calls; let in-flight ones finish within ``grace`` seconds."""
        await self.set_serving(False)
        stopping = asyncio.ensure_future(self.server.stop(grace))
        # Once the server refuses new calls, end the idle long-lived peer streams.
        await asyncio.sleep(0)
        self.servicer.close_streams()
        await stopping


async def start_server(
    receiver: EnvelopeReceiver,
    listen: str,
    tls: TlsMaterial,
    *,
    max_message_bytes: int,
    admission: PeerAdmission,
) -> FederationServer:
    limit = max_message_bytes + TRANSPORT_HEADROOM
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    servicer = FederationServicer(receiver, admission)
    server.add_generic_rpc_handlers((federation_handler(servicer),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            pb.DESCRIPTOR.services_by_name["Federation"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    credentials = grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
    )
    try:
        port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:  # grpc reports a busy or bad address this way
        raise OSError(f"cannot listen on {listen} for gRPC: {exc}") from exc
    if port == 0:
        raise OSError(f"cannot listen on {listen} for gRPC")
    await server.start()
    result = FederationServer(server, health_servicer, servicer, port)
    await result.set_serving(True)
    return result

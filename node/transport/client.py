"""A mutual-TLS channel to one peer: the unary call, and the batch-signed ``Exchange`` stream.

The server's certificate must chain to the federation CA and name the peer's node id (the
channel overrides the TLS target name with it, since peers are addressed by host:port). So
the address dialled may be another than the manifest's endpoint (``address``: a relay, a
tester's fault proxy) without changing whom the channel accepts at the far end.

A peer whose node runs as replicas has several endpoints (the manifest's ``endpoints``), one
identity. Rules kept here:
- Traffic is spread over the endpoints in *lanes*, one per endpoint (``lanes``): lane i
  starts on endpoint i, so each replica of the peer receives a share. The delivery worker
  sends each lane's batches in turn (``exchange_batch(lane=i)``, a case's messages always
  in one lane); questions and single calls go in lane 0. With one endpoint (or a relay
  ``address``) there is one lane: one stream per peer, as with a single node.
- A transport failure on an endpoint (unreachable, stream lost, no reply in time; never a
  signed refusal of a call, which is the peer's answer; a refusal that ends a whole
  ``Exchange`` stream is a lost stream, as ``ExchangeStream`` reports it) marks it failed
  and moves every lane using it to the next endpoint, round the list. The failed call
  itself is not retried here: its caller's retry (the delivery worker's back-off, a
  question's second send) goes to the next endpoint. Messages are idempotent at the
  receiver, so a batch resent to another replica of the same province is answered with the
  same receipts.
- A lane that moved off its own endpoint goes back to it after ``return_after`` seconds (if
  it is still down, that costs one failed call and moves on again), so a repaired replica
  takes its share again without an operator. The heartbeats go round the lanes, so every
  endpoint's health is seen, and a failed one tried again, even when no traffic flows.
- Each endpoint's health (``EndpointHealth``: untried, healthy, failed; last error;
  failures) is kept for status and metrics, labelled by the endpoint's address only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import grpc
from google.protobuf.message import DecodeError

from node.protocol.envelope import envelopes_of, received_frame, signed_batch
from node.transport.errors import PeerUnavailable, SignedRefusal, translate_rpc_errors
from node.transport.questions import QuestionFrames
from node.transport.server import TRANSPORT_HEADROOM
from node.trust.keys import SigningKey
from node.trust.tls import TlsMaterial
from node.wire import DELIVER_METHOD, EXCHANGE_METHOD, pb

log = logging.getLogger(__name__)


RETURN_TO_FIRST_SECONDS: Final = 30.0
"""How long a peer's traffic stays on another endpoint before the first is tried again."""


class EndpointState(StrEnum):
    """What this node knows of one endpoint of a peer, as status and metrics show it."""

    UNTRIED = "untried"
    """Not called yet (or not since the manifest listed it)."""
    HEALTHY = "healthy"
    """Its last call got an answer (a signed refusal is an answer)."""
    FAILED = "failed"
    """Its last call failed in transport: unreachable, stream lost, out of time."""

    def is_available(self) -> bool:
        return self is not EndpointState.FAILED


@dataclass
class EndpointHealth:
    """One endpoint of a peer: where it is, and how its last call went."""

    endpoint: str
    """As the manifest lists it."""
    state: EndpointState = EndpointState.UNTRIED
    last_error: str | None = None
    changed_at: float | None = None
    """When ``state`` last changed (monotonic clock)."""
    failures: int = 0
    """Transport failures since the channel was made."""

    def to_json(self, *, current: bool) -> dict[str, object]:
        return {
            "endpoint": self.endpoint,
            "state": self.state.value,
            "current": current,
            "last_error": self.last_error,
            "failures": self.failures,
        }


class _Dial:
    """The gRPC channel to one endpoint, its methods and its ``Exchange`` stream."""

    def __init__(
        self, address: str, node_id: str, credentials: grpc.ChannelCredentials, limit: int
    ):
        self.channel = grpc.aio.secure_channel(
            address,
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
        self.deliver = self.channel.unary_unary(DELIVER_METHOD)
        self.stream_method = self.channel.stream_stream(EXCHANGE_METHOD)
        self.stream: ExchangeStream | None = None

    def drop_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


@dataclass
class _Lane:
    """Where one lane of a peer's traffic goes: its own endpoint, or the one it moved to."""

    own: int
    """The index of the endpoint this lane starts on and goes back to."""
    current: int
    moved_at: float = 0.0
    """When it left its own endpoint (monotonic)."""


class PeerChannel:
    def __init__(
        self,
        node_id: str,
        endpoints: str | Sequence[str],
        tls: TlsMaterial,
        *,
        max_message_bytes: int,
        signing_key: Callable[[], SigningKey],
        address: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        return_after: float = RETURN_TO_FIRST_SECONDS,
    ) -> None:
        self.node_id = node_id
        self.endpoints: tuple[str, ...] = (
            (endpoints,) if isinstance(endpoints, str) else tuple(endpoints)
        )
        """The peer's endpoints in the manifest, in the order they are tried."""
        if not self.endpoints:
            raise ValueError(f"peer {node_id} has no endpoint")
        self.address = address
        """Where the channel dials instead of the endpoints (a relay, a tester's proxy), or
        None: each endpoint itself."""
        self._signing_key = signing_key
        self._clock = clock
        self._return_after = return_after
        self._frame_bytes = max_message_bytes
        """Most message bytes one frame carries (a lone larger message goes alone)."""
        limit = max_message_bytes + TRANSPORT_HEADROOM
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
        )
        dialled = [address] if address else list(self.endpoints)
        self._dials = [_Dial(a, node_id, credentials, limit) for a in dialled]
        self.health = [EndpointHealth(e) for e in (dialled if address else self.endpoints)]
        """Per dialled endpoint, in order: how its last call went."""
        self._lanes = [_Lane(i, i) for i in range(len(self._dials))]
        self._questions = QuestionFrames(node_id, self._exchange, frame_bytes=max_message_bytes)

    @property
    def endpoint(self) -> str:
        """The peer's first endpoint in the manifest."""
        return self.endpoints[0]

    @property
    def lanes(self) -> int:
        """How many lanes the traffic may be spread over: one per dialled endpoint."""
        return len(self._lanes)

    @property
    def current(self) -> int:
        """The index in ``health`` of the endpoint lane 0 (questions, single calls) uses."""
        return self._lanes[0].current

    def _dial(self, lane: int = 0) -> tuple[int, _Dial]:
        """The endpoint ``lane`` calls: its current one, or its own again once it has been
        elsewhere for ``return_after`` seconds."""
        at = self._lanes[lane]
        if at.current != at.own and self._clock() - at.moved_at >= self._return_after:
            # The other endpoint's stream is left as it is: frames still in flight on it get
            # their replies there.
            at.current = at.own
        return at.current, self._dials[at.current]

    def _answered(self, index: int) -> None:
        self._mark(index, EndpointState.HEALTHY, None)

    def _failed(self, index: int, error: BaseException) -> None:
        """A transport failure on endpoint ``index``: the next endpoint takes the traffic
        (once per failure of the current one, however many calls saw it). The failed stream
        is already broken (the next call opens another); closing the endpoint's stream here
        could close a newer one that another caller is using."""
        self.health[index].failures += 1
        self._mark(index, EndpointState.FAILED, str(error))
        if len(self._dials) == 1:
            return
        following = (index + 1) % len(self._dials)
        moved = [lane for lane in self._lanes if lane.current == index]
        for lane in moved:
            lane.current = following
            if index == lane.own:
                lane.moved_at = self._clock()
        if moved:
            log.warning(
                "peer endpoint failed; moving to the next",
                extra={
                    "peer_node": self.node_id,
                    "endpoint": self.health[index].endpoint,
                    "next_endpoint": self.health[following].endpoint,
                },
            )

    def _mark(self, index: int, state: EndpointState, error: str | None) -> None:
        health = self.health[index]
        if health.state is not state:
            health.changed_at = self._clock()
        health.state = state
        health.last_error = error if error is not None else health.last_error

    def endpoint_status(self) -> list[dict[str, object]]:
        """Each endpoint's health for status, in order, those a lane uses marked ``current``."""
        used = {lane.current for lane in self._lanes}
        return [h.to_json(current=i in used) for i, h in enumerate(self.health)]

    async def deliver(self, envelope: bytes, *, timeout: float, lane: int = 0) -> bytes:
        """Send one envelope on its own, in ``lane``; return the signed reply. A refusal
        raises SignedRefusal."""
        index, dial = self._dial(lane)
        try:
            with translate_rpc_errors(self.node_id):
                reply = await dial.deliver(envelope, timeout=timeout, wait_for_ready=False)
        except PeerUnavailable as error:
            self._failed(index, error)
            raise
        except SignedRefusal:
            self._answered(index)  # refused, but answered: another replica would say the same
            raise
        self._answered(index)
        assert isinstance(reply, bytes)
        return reply

    async def exchange_batch(
        self,
        envelopes: Sequence[bytes],
        *,
        timeout: float,
        on_reply: Callable[[int, bytes, bytes, bytes], None],
        lane: int = 0,
    ) -> None:
        """Send signed envelopes' messages as batch-signed frames on the long-lived
        ``Exchange`` stream (as few frames as the size limit allows, each signed once); hand
        each reply to ``on_reply`` (its index, the reply as its own provable Envelope, the
        message as it was sent: its Envelope with the frame's signature and its proof, and
        the statement of the reply frame, which the reply's proof leads to:
        ``check_reply``), in order, as each reply frame arrives.

        The delivery worker's call, in ``lane``: when it fails or runs out of time the
        stream is dropped (a stalled peer gets a fresh connection), and the next call opens
        another.
        """
        messages = [pb.Envelope.FromString(envelope).message for envelope in envelopes]
        index = self._lanes[lane].current
        try:
            async with asyncio.timeout(timeout):
                start = 0
                for frame in self._frames(messages):
                    index, dial = self._dial(lane)
                    statement, replies = await self._exchange_frame(frame, index, dial)
                    for at, (reply, sent) in enumerate(replies):
                        on_reply(start + at, reply, sent, statement)
                    start += len(frame)
        except TimeoutError as error:
            unavailable = PeerUnavailable(self.node_id, "no reply before the deadline")
            self._dials[index].drop_stream()  # a stalled peer gets a fresh connection
            self._failed(index, unavailable)
            raise unavailable from error
        except BaseException:
            self._dials[index].drop_stream()
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
        """One frame out in lane 0, its reply frame back: (reply, message as sent) per
        message."""
        _, replies = await self._exchange_frame(messages, *self._dial())
        return replies

    async def _exchange_frame(
        self, messages: list[bytes], index: int, dial: _Dial
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """``_exchange`` on endpoint ``index``, with the statement of the reply frame."""
        if dial.stream is None or dial.stream.broken is not None:
            dial.stream = ExchangeStream(self.node_id, dial.stream_method(wait_for_ready=False))
        batch, tree = signed_batch(messages, self._signing_key())
        try:
            raw = await dial.stream.send(batch.SerializeToString(deterministic=True))
            statement, replies = self._replies(raw, len(messages))
        except PeerUnavailable as error:
            self._failed(index, error)
            raise
        self._answered(index)
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

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in progress get that long to finish."""
        if grace is None:
            self._questions.close()
            for dial in self._dials:
                dial.drop_stream()
        await asyncio.gather(*(dial.channel.close(grace) for dial in self._dials))


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
                unavailable = _unavailable(self._peer, error)
                self._fail(unavailable)
                if isinstance(error, asyncio.InvalidStateError):
                    # The call ended (the peer went away) before the reader noticed: the
                    # stream is lost, as for any transport failure.
                    raise unavailable from error
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

"""The courier: the one way this node sends to a peer.

Rules kept here:
- Sealing follows the manifest in force: nothing is signed for a peer while this node's
  manifest has expired (``manifest_expired``), nor a payload type its policy does not let it
  send (``payload_not_allowed``); the ``Refusal`` is raised before anything is sent or stored.
- A message is durable before it is sent: ``enqueue`` puts it in the peer's outbox inside the
  caller's transaction, and wakes the peer's worker only after that transaction commits.
  ``send`` is seal + enqueue in a write of its own. What is queued is unsigned (``queued``
  in ``node.protocol.envelope``): the worker sends it in batch-signed frames, and that one
  signature per batch is the only one it gets. Each message enters the evidence log as it
  went out (its batch signature and proof), with the peer's reply, when that reply is
  recorded, and its outbox row and case record then hold it in that form.
- A question with an answer of its own (``ask``) is sent at once, not through the outbox: in
  a frame of its own on the peer's ``Exchange`` stream, beside the worker's batches, or
  (heartbeats) alone in a ``Deliver`` call, so liveness is not judged behind a backlog. Its
  reply is checked like every reply (signature, addressed to us, answers that very
  request); only a checked reply is an answer, and only an answer is recorded in the
  evidence log with its request. Every way an ask can fail is one
  ``AskFailed`` type: ``UnknownPeer``, ``PeerUnanswered`` (transport), ``ReplyRefused`` (the
  reply failed our checks). A signed fault from the peer is an answer: ``Answered.fault``.
- The delivery workers' replies are settled here too (``settler``), with the same checks, and
  what they settle is counted and logged (``delivered`` / ``refused``).

Imports: see the package docstring (``node.peers``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message as ProtoMessage

from monitoring.metrics import NodeMetrics
from node.delivery.worker import Outcome, Settlement
from node.protocol.checks import Authenticated, CheckLimits, check_reply
from node.protocol.envelope import Sealed, envelope_digest, header, queued, seal
from node.protocol.faults import FaultCode, Refusal
from node.store import audit, outbox
from node.store.connection import Connection
from node.store.database import Database
from node.store.outbox import OutboxItem
from node.transport.client import PeerChannel
from node.transport.errors import SignedRefusal, TransportError
from node.trust.keys import SigningKey
from node.trust.manifest import Manifest
from node.wire import pb

log = logging.getLogger(__name__)

Clock = Callable[[], float]

_DECISION_CODES = frozenset(code.value for code in FaultCode if code.is_decision)


class CredentialsView(Protocol):
    """What this node trusts and signs with now (swapped as a whole on reload)."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def signing_key(self) -> SigningKey: ...


class Reachable(Protocol):
    """A peer as the courier reaches it (``node.peers.peer.Peer``, or a one-off asker's
    record of a peer: ``node.runtime.witnesses``)."""

    @property
    def node_id(self) -> str: ...

    @property
    def channel(self) -> PeerChannel: ...

    def wake(self) -> None:
        """New rows are committed in its outbox: its delivery worker sends them now."""


class AskFailed(Exception):
    """An ask produced no answer this node can use."""

    def __init__(self, province: str, detail: str) -> None:
        super().__init__(f"{province}: {detail}")
        self.province = province
        self.detail = detail


class UnknownPeer(AskFailed, ValueError):
    """The province is not a peer of this node (nothing was sealed or sent)."""

    def __init__(self, province: str) -> None:
        super().__init__(province, f"{province!r} is not a peer of this node")


class PeerUnanswered(AskFailed):
    """The peer could not be reached or did not answer in time (``error`` says how)."""

    def __init__(self, province: str, error: TransportError) -> None:
        super().__init__(province, str(error))
        self.error = error


class ReplyRefused(AskFailed):
    """The peer's reply failed this node's checks (``refusal`` says which)."""

    def __init__(self, province: str, refusal: Refusal) -> None:
        super().__init__(province, f"{refusal.code.value}: {refusal.text}")
        self.refusal = refusal


@dataclass(frozen=True)
class Answered:
    """A peer's checked reply to an ask."""

    request: Sealed
    reply: Authenticated
    raw: bytes
    """The reply's signed envelope, as received (the evidence)."""
    sent_at: float
    answered_at: float

    @property
    def payload_type(self) -> str:
        return self.reply.payload_type

    @property
    def fault(self) -> pb.Fault | None:
        """The peer's signed refusal of the request, or None for any other answer."""
        return self.reply.message.fault if self.reply.payload_type == "fault" else None


def record_exchange(conn: Connection, peer: str, request: Sealed, reply: bytes, now: float) -> None:
    """A request as sent and its answer as received, in the evidence log."""
    audit.append_many(
        conn,
        (
            audit.Record("sent", peer, request.message_id, "envelope", request.envelope, now),
            audit.Record("received", peer, request.message_id, "reply", reply, now),
        ),
    )


class Courier:
    def __init__(
        self,
        *,
        node_id: str,
        db: Callable[[], Database],
        clock: Clock,
        credentials: Callable[[], CredentialsView],
        peers: Mapping[str, Reachable],
        metrics: NodeMetrics,
        limits: CheckLimits,
    ) -> None:
        self._node_id = node_id
        self._db = db
        self._clock = clock
        self._credentials = credentials
        self._peers = peers
        self._metrics = metrics
        self._limits = limits
        # labels() costs more than the updates it leads to, once per message: the children
        # of each peer and payload type (few, and fixed) are looked up once.
        self._delivered_children = functools.cache(
            lambda peer, kind: (
                metrics.messages_sent.labels(peer, kind),
                metrics.last_sent.labels(peer),
                metrics.delivery_latency.labels(peer),
            )
        )

    # -- one-way messages -------------------------------------------------------------------

    def seal(
        self, province: str, bodies: Sequence[tuple[str, ProtoMessage]], *, correlation_id: str = ""
    ) -> list[Sealed]:
        """Messages for a peer as its outbox holds them, as the manifest policy allows:
        unsigned, since the batch they are sent in is signed (module rules); nothing is
        stored yet."""
        suite = self._credentials().signing_key.suite
        return [queued(m, suite) for m in self._compose(province, bodies, correlation_id)]

    def _compose(
        self, province: str, bodies: Sequence[tuple[str, ProtoMessage]], correlation_id: str = ""
    ) -> list[pb.Message]:
        """Messages for a peer, as the manifest policy allows; nothing signed or stored."""
        manifest = self._credentials().manifest
        me = manifest.member(self._node_id)
        peer = self._peers.get(province)
        if peer is None or me is None:
            raise UnknownPeer(province)
        now = self._clock()
        if manifest.expired_at(now):
            raise Refusal(FaultCode.MANIFEST_EXPIRED, "this node's manifest has expired")
        messages: list[pb.Message] = []
        for kind, body in bodies:
            if kind not in me.may_send:
                raise Refusal(
                    FaultCode.PAYLOAD_NOT_ALLOWED,
                    f"the manifest policy does not allow this node to send {kind}",
                    field="body",
                )
            message = pb.Message(
                header=header(
                    sender=self._node_id,
                    recipient=peer.node_id,
                    now=now,
                    manifest_version=manifest.version,
                    correlation_id=correlation_id,
                ),
            )
            getattr(message, kind).CopyFrom(body)
            messages.append(message)
        return messages

    def seal_to_self(
        self, kind: str, body: ProtoMessage, *, now: float, in_reply_to: str = ""
    ) -> Sealed:
        """Sign a message from this node to itself: the request and answer of a question
        this node answers for its own province (a certificate it issued), kept as evidence
        like a peer's. Nothing is sent, so no peer or policy applies."""
        credentials = self._credentials()
        message = pb.Message(
            header=header(
                sender=self._node_id,
                recipient=self._node_id,
                now=now,
                manifest_version=credentials.manifest.version,
                in_reply_to=in_reply_to,
            ),
        )
        getattr(message, kind).CopyFrom(body)
        return seal(message, credentials.signing_key)

    def enqueue(
        self,
        conn: Connection,
        province: str,
        sealed: Sequence[Sealed],
        *,
        correlation_id: str = "",
    ) -> None:
        """Put sealed (unsigned) messages in a peer's outbox, inside ``conn``'s transaction
        (a write job); the peer's worker wakes once it has committed. Each enters the evidence log
        when its reply is recorded, as it was sent (in its batch, with its proof)."""
        now = self._clock()
        for s in sealed:
            outbox.enqueue(
                conn,
                peer=province,
                message_id=s.message_id,
                payload_type=s.payload_type,
                envelope=s.envelope,
                digest=s.digest,
                created_at=now,
                correlation_id=correlation_id,
            )
        self._db().after_commit(functools.partial(self.wake, province))

    async def send(
        self, province: str, bodies: Sequence[tuple[str, ProtoMessage]], *, correlation_id: str = ""
    ) -> list[str]:
        """Seal messages to a peer and commit them to its outbox; return their message ids.

        When this returns, the messages are durable and will be delivered.
        """
        sealed = self.seal(province, bodies, correlation_id=correlation_id)
        await self._db().write(
            lambda conn: self.enqueue(conn, province, sealed, correlation_id=correlation_id)
        )
        return [s.message_id for s in sealed]

    def wake(self, province: str) -> None:
        """New rows are committed in this peer's outbox: its worker sends them now."""
        peer = self._peers.get(province)
        if peer is not None:
            peer.wake()

    # -- questions --------------------------------------------------------------------------

    async def ask(
        self,
        province: str,
        kind: str,
        body: ProtoMessage,
        *,
        timeout: float,
        record: bool = True,
        alone: bool = False,
        lane: int = 0,
    ) -> Answered:
        """Ask a peer now and return its checked reply: on the peer's ``Exchange`` stream,
        beside the delivery worker's batches, or ``alone`` in a ``Deliver`` call of its own
        in ``lane`` (a heartbeat: liveness is not held up behind a backlog's batches, and
        each lane's endpoint is seen in turn).

        With ``record``, the request and the answer enter the evidence log together once the
        answer passed its checks (a heartbeat or a list pull, with no lasting effect, is not
        recorded). Raises ``Refusal`` when this node may not send ``kind`` (nothing is sent),
        else an ``AskFailed``; a signed fault is an answer (``Answered.fault``).
        """
        peer = self._peers.get(province)
        if peer is None:
            raise UnknownPeer(province)
        [message] = self._compose(province, [(kind, body)])
        sent_at = self._clock()
        try:
            if alone:
                request = seal(message, self._credentials().signing_key)
                try:
                    raw = await peer.channel.deliver(request.envelope, timeout=timeout, lane=lane)
                except SignedRefusal as refusal:
                    raw = refusal.envelope
            else:
                encoded = message.SerializeToString(deterministic=True)
                raw, sent = await peer.channel.ask(encoded, timeout=timeout)
                request = Sealed(
                    sent, encoded, message.header.message_id, envelope_digest(sent), kind
                )
        except TransportError as error:
            raise PeerUnanswered(province, error) from error
        try:
            reply = self._check_reply(raw, peer.node_id, request.message_id, request.digest)
        except Refusal as refusal:
            raise ReplyRefused(province, refusal) from None
        answered_at = self._clock()
        if record:
            await self._db().write(
                lambda conn: record_exchange(conn, province, request, raw, answered_at)
            )
        return Answered(request, reply, raw, sent_at, answered_at)

    def _check_reply(
        self,
        raw: bytes,
        peer_node_id: str,
        request_id: str,
        request_digest: bytes,
        request_envelope: bytes = b"",
        frame_statement: bytes | None = None,
    ) -> Authenticated:
        """Every receiver check on a peer's reply to one of our messages, with our trust now."""
        return check_reply(
            raw,
            peer=peer_node_id,
            manifest=self._credentials().manifest,
            me=self._node_id,
            now=self._clock(),
            request_id=request_id,
            request_digest=request_digest,
            request_envelope=request_envelope,
            limits=self._limits,
            frame_statement=frame_statement,
        )

    # -- the delivery workers' side ---------------------------------------------------------

    def settler(self, peer_node_id: str) -> Callable[[bytes, OutboxItem, bytes], Settlement]:
        """What each reply to a peer's outbox row means for that row (``SettleReply``)."""

        def settle(raw: bytes, item: OutboxItem, frame_statement: bytes) -> Settlement:
            try:
                reply = self._check_reply(
                    raw, peer_node_id, item.message_id, item.digest, item.envelope, frame_statement
                )
            except Refusal as refusal:
                # An answer we cannot trust settles nothing: keep the row and try again.
                return Settlement(
                    Outcome.RETRY, b"", f"bad_reply_{refusal.code.value}", refusal.text
                )
            if reply.payload_type != "fault":
                return Settlement(Outcome.DELIVERED, raw)
            fault = reply.message.fault
            try:
                permanent = FaultCode(fault.code).is_permanent
            except ValueError:
                permanent = True
            outcome = Outcome.PARKED if permanent else Outcome.RETRY
            if fault.code in _DECISION_CODES:
                outcome = Outcome.DECLINED
            return Settlement(outcome, raw, fault.code, fault.text)

        return settle

    # DeliveryObserver
    def delivered(self, item: OutboxItem, settlement: Settlement, now: float) -> None:
        sent, last_sent, latency = self._delivered_children(item.peer, item.payload_type)
        sent.inc()
        last_sent.set(now)
        latency.observe(max(0.0, now - item.created_at))

    def refused(self, item: OutboxItem, settlement: Settlement) -> None:
        self._metrics.messages_refused.labels(
            item.peer, item.payload_type, settlement.code, "outbound"
        ).inc()
        log.warning(
            "peer refused our message",
            extra={
                "peer": item.peer,
                "message_id": item.message_id,
                "code": settlement.code,
                "outcome": settlement.outcome.value,
            },
        )

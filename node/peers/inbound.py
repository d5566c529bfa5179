"""Receiving: run the checks, store what passed with its receipt, answer.

Rules kept here:
- Nothing is stored before every check passed; a refusal changes no state (it is counted
  and logged, never written to the store or the evidence log).
- An accepted message, its effects, its evidence-log entries and its signed receipt commit
  in one transaction; the receipt leaves this node only after that commit.
- Heartbeats are answered but not stored: they carry no business effect and would otherwise
  fill the evidence log with liveness noise.
- A store that cannot take the write now (disk full, I/O error) is answered with a signed
  ``store_unavailable`` fault (gRPC UNAVAILABLE): the sender keeps the message and retries;
  nothing of it was kept. Any other failure while storing is a signed ``unavailable`` fault
  too, logged with its traceback: a peer never gets a bare transport error from us.
- Refusals are logged at most once per peer and code per interval (``RefusalLog``); the
  metrics count every one.
- A request with an answer of its own (a certificate verification) is answered by its
  responder instead of a receipt; the answer is stored with the request, in the inbox as
  its reply and in the evidence log, before it leaves, exactly like a receipt.
- A replica probe (from another replica of this node: the checks allow it from no one else)
  is answered here with this store's id (``replica_store``), nothing stored: replicas of one
  node must share one store (``node.runtime.replicas``).
- A stopping node refuses every message as ``unavailable``, except a peer's checkpoint,
  which it still cosigns (a whole mesh stopping at once still witnesses its last heads).
- Each payload type's validator, effect and responder come from the service that handles
  that type, as one ``PayloadHandler`` each (``CATALOG_HANDLERS``, ``CaseExchange.handlers``,
  ``CertificateRecognition.handlers``); the node only combines them.

Imports: see the package docstring (``node.peers``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import cast

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from monitoring.metrics import UNKNOWN_PEER, NodeMetrics
from node.delivery.circuit import PeerLink
from node.peers.courier import CredentialsView
from node.protocol.checks import (
    Authenticated,
    CheckLimits,
    PayloadValidator,
    PriorDelivery,
    Redelivery,
    check_envelope,
)
from node.protocol.envelope import (
    MAX_BATCH_MESSAGES,
    envelope_digest,
    payload_type,
    received_frame,
    seal_encoded,
    sign_batch,
)
from node.protocol.faults import FaultCode, Refusal
from node.protocol.replies import answer_message, fault_for, fault_message, receipt_message
from node.store import audit, inbox
from node.store.connection import Connection
from node.store.database import Database, StoreError, StoreUnavailable
from node.transport.admission import RefusalLog
from node.transport.server import Reply
from node.wire import pb

log = logging.getLogger(__name__)

EPHEMERAL_TYPES = frozenset({"heartbeat"})
# The one request a stopping node still answers (checked after the envelope's checks).
_WHILE_STOPPING = frozenset({"checkpoint"})


@dataclass(frozen=True)
class Received:
    """An accepted inbound message, as its effect sees it inside the storing transaction."""

    message: Authenticated
    receipt: bytes
    """This node's signed receipt for it, stored in the same transaction."""
    received_at: float


Effect = Callable[[Connection, Received], None]
"""Applies an accepted message's effect inside the transaction that stores it. It may raise
``Refusal``: then nothing of the message is stored and the sender gets that fault."""


@dataclass(frozen=True)
class Answer:
    """A responder's answer to a request: the reply's body and what storing it also does."""

    body: tuple[str, ProtoMessage]
    """(Message.body field, payload): replaces the receipt as the signed reply."""
    effect: Effect | None = None
    store: bool = True
    """False for a question with no lasting effect (a revocation-list pull): answered
    without storing the request, like a heartbeat."""


Responder = Callable[[Authenticated, float], Awaitable[Answer]]
"""Answers a request that has a reply of its own (a certificate verification). It may await
I/O (the province's certificate library) and raise ``Refusal``. The answer is stored, with
the request and ``effect``, before it is sent, so a re-delivered request gets the same one."""


@dataclass(frozen=True)
class PayloadHandler:
    """How this node takes one payload type, registered by the service that handles it."""

    validate: PayloadValidator | None = None
    """Checks the payload's content before anything is stored (raises ``Refusal``)."""
    effect: Effect | None = None
    """What storing an accepted message of this type also does."""
    respond: Responder | None = None
    """For a request with an answer of its own: the answer, replacing the receipt."""


@dataclass(frozen=True)
class _Refused:
    refusal: Refusal
    raw: bytes


@dataclass(frozen=True)
class _Again:
    """A message accepted before (same id, same bytes): answered with the reply it got."""

    message: Authenticated
    reply: bytes


@dataclass(frozen=True)
class _Fresh:
    message: Authenticated
    responder: Responder | None


_Decision = _Refused | _Again | _Fresh


class InboundProcessor:
    def __init__(
        self,
        *,
        node_id: str,
        db: Callable[[], Database],
        clock: Callable[[], float],
        credentials: Callable[[], CredentialsView],
        metrics: NodeMetrics,
        links: Callable[[str], PeerLink],
        limits: CheckLimits,
        stopping: Callable[[], bool],
        handlers: Mapping[str, PayloadHandler],
    ) -> None:
        self._node_id = node_id
        self._db = db
        self._clock = clock
        self._credentials = credentials
        self._metrics = metrics
        self._links = links
        self._limits = limits
        self._stopping = stopping
        self._effects = {kind: h.effect for kind, h in handlers.items() if h.effect}
        self._validators = {kind: h.validate for kind, h in handlers.items() if h.validate}
        self._responders = {kind: h.respond for kind, h in handlers.items() if h.respond}
        self._responders["replica_probe"] = self._answer_replica_probe
        self._refusal_log = RefusalLog()
        # labels() costs more than the updates it leads to, once per message: the children
        # of each peer and payload type (members' allowed types: few) are looked up once.
        self._received_children = functools.cache(
            lambda peer, kind: (
                metrics.messages_received.labels(peer, kind),
                metrics.last_received.labels(peer),
            )
        )

    async def _answer_replica_probe(self, probe: Authenticated, now: float) -> Answer:
        """Which store this replica runs on, for another replica of this node."""
        answer = pb.ReplicaStore(store_id=self._db().store_id, request_digest=probe.digest)
        return Answer(("replica_store", answer), store=False)

    def receive(self, raw: bytes, tls_identity: str | None) -> Awaitable[Reply]:
        """Check one envelope now; the awaitable gives its own signed reply after commit.

        The checks happen synchronously, in call order, and the write is submitted in the
        first step of the returned task, so the messages of one stream reach the store's
        writer in the order they arrived and share its group commit.
        """
        now = self._clock()
        decision = self._decide(raw, tls_identity, now)

        async def reply() -> Reply:
            _, [answer] = await self._conclude([decision], tls_identity, now, batched=False)
            return answer

        return asyncio.ensure_future(reply())

    def receive_batch(self, frame: bytes, tls_identity: str | None) -> Awaitable[Reply]:
        """Check a batch-signed frame's messages now (its one signature verified once); the
        awaitable gives the reply frame, one reply per message in order, signed once, after
        the accepted messages committed. A frame that is not a batch at all is refused as a
        whole (``Reply.status`` set; the stream ends)."""
        now = self._clock()
        try:
            batch = _parse_batch(frame, self._limits)
        except Refusal as refusal:
            return _ready(self._refuse(refusal, frame, tls_identity, now))
        statement, envelopes = received_frame(batch)
        decisions = [self._decide(raw, tls_identity, now, statement) for raw in envelopes]

        async def reply() -> Reply:
            replies_frame, answers = await self._conclude(
                decisions, tls_identity, now, batched=True
            )
            return Reply(replies_frame, faults=tuple(f for a in answers for f in a.faults))

        return asyncio.ensure_future(reply())

    def _decide(
        self,
        raw: bytes,
        tls_identity: str | None,
        now: float,
        frame_statement: bytes | None = None,
    ) -> _Decision:
        """Every receiver check on one envelope, before anything is stored (``raw`` cut from
        a frame whose statement is ``frame_statement``: ``check_envelope``)."""
        credentials = self._credentials()
        try:
            if credentials.manifest.expired_at(now):
                raise Refusal(
                    FaultCode.MANIFEST_EXPIRED,
                    f"this node's manifest (version {credentials.manifest.version}) has expired; "
                    "it refuses all traffic until a current manifest is loaded",
                )
            verdict = check_envelope(
                raw,
                tls_identity=tls_identity,
                manifest=credentials.manifest,
                me=self._node_id,
                now=now,
                inbox=_InboxNow(self._db),
                limits=self._limits,
                validators=self._validators,
                frame_statement=frame_statement,
            )
            # A stopping node takes no new work, but still cosigns its peers' checkpoints:
            # when a whole mesh stops at once, the last checkpoints are sent while every
            # node is already stopping, and would otherwise never be witnessed.
            if self._stopping() and not (
                isinstance(verdict, Authenticated) and verdict.payload_type in _WHILE_STOPPING
            ):
                raise Refusal(FaultCode.UNAVAILABLE, "this node is shutting down; retry later")
        except Refusal as refusal:
            return _Refused(refusal, raw)
        except StoreError as error:
            # Only the inbox read fails so (the checks before it read no store): the
            # message was parsed and authenticated, so its fault names it.
            return _Refused(_store_refusal(error, ids=_ids_of(raw)), raw)
        if isinstance(verdict, Redelivery):
            return _Again(verdict.message, verdict.prior.reply)
        return _Fresh(verdict, self._responders.get(verdict.payload_type))

    async def _conclude(
        self,
        decisions: list[_Decision],
        tls_identity: str | None,
        now: float,
        *,
        batched: bool,
    ) -> tuple[bytes, list[Reply]]:
        """Answer each decided message: its responder's answer, else a receipt or a fault;
        store the accepted ones with their replies (one write job each, sharing the group
        commit); return the signed replies and, ``batched``, the frame signing them once.

        Replies are signed before the store commits, since the stored reply must be the one
        sent; when storing changes a reply (a refusing effect, the same message stored at
        once by another call) the replies are signed again. Nothing leaves before commit.
        """
        decisions = list(decisions)
        answers = await self._answers(decisions, now)
        originals = list(decisions)
        encoded = [
            self._reply_bytes(d, answers.get(i), tls_identity, now) for i, d in enumerate(decisions)
        ]
        frame, envelopes = self._sign(decisions, encoded, batched=batched)
        to_store: list[tuple[int, Authenticated, Effect | None]] = []
        for index, decision in enumerate(decisions):
            answer = answers.get(index)
            if (
                isinstance(decision, _Fresh)
                and decision.message.payload_type not in EPHEMERAL_TYPES
                and (answer is None or answer.store)
            ):
                to_store.append((index, decision.message, answer.effect if answer else None))
        changed = False
        if to_store:
            items = [(message, envelopes[i], effect) for i, message, effect in to_store]
            try:
                results: list[bytes | Exception] = await self._db().submit(
                    partial(self._store_all, items=items, now=now)
                )
            except Exception as error:  # the whole write failed: none of them was kept
                results = [error] * len(items)
            for (index, message, _), result in zip(to_store, results, strict=True):
                if result is envelopes[index]:
                    continue
                if isinstance(result, Refusal):
                    decisions[index] = _Refused(result, message.envelope)
                elif isinstance(result, Exception):
                    decisions[index] = _Refused(_store_refusal(result, message), message.envelope)
                else:
                    decisions[index] = _Again(message, result)
                changed = True
        if changed:
            encoded = [
                self._reply_bytes(d, answers.get(i), tls_identity, now) if d is not first else old
                for i, (d, first, old) in enumerate(zip(decisions, originals, encoded, strict=True))
            ]
            frame, envelopes = self._sign(decisions, encoded, batched=batched)
        return frame, [
            self._outcome(decision, envelope, tls_identity, now)
            for decision, envelope in zip(decisions, envelopes, strict=True)
        ]

    async def _answers(self, decisions: list[_Decision], now: float) -> dict[int, Answer]:
        """The answers of the requests that have them, asked at once; a responder's refusal
        replaces its message's decision."""
        asked = [
            (index, d)
            for index, d in enumerate(decisions)
            if isinstance(d, _Fresh) and d.responder is not None
        ]
        if not asked:
            return {}
        results = await asyncio.gather(
            *(cast(Responder, d.responder)(d.message, now) for _, d in asked),
            return_exceptions=True,
        )
        answers: dict[int, Answer] = {}
        for (index, decision), result in zip(asked, results, strict=True):
            if isinstance(result, Refusal):
                decisions[index] = _Refused(result, decision.message.envelope)
            elif isinstance(result, StoreError):
                refusal = _store_refusal(result, decision.message)
                decisions[index] = _Refused(refusal, decision.message.envelope)
            elif isinstance(result, BaseException):
                raise result
            else:
                answers[index] = result
        return answers

    def _reply_bytes(
        self, decision: _Decision, answer: Answer | None, tls_identity: str | None, now: float
    ) -> bytes:
        """The reply's Message bytes, unsigned: a fault, the reply given the first time, the
        responder's answer or a receipt."""
        version = self._credentials().manifest.version
        if isinstance(decision, _Refused):
            reply = fault_message(
                decision.refusal,
                me=self._node_id,
                recipient=tls_identity or "",
                now=now,
                manifest_version=version,
            )
        elif isinstance(decision, _Again):
            return pb.Envelope.FromString(decision.reply).message
        elif answer is not None:
            reply = answer_message(
                decision.message, answer.body, me=self._node_id, now=now, manifest_version=version
            )
        else:
            reply = receipt_message(
                decision.message, me=self._node_id, now=now, manifest_version=version
            )
        return reply.SerializeToString(deterministic=True)

    def _sign(
        self, decisions: list[_Decision], encoded: list[bytes], *, batched: bool
    ) -> tuple[bytes, list[bytes]]:
        """The replies signed once as a batch (the frame and each reply's own envelope), or
        each on its own; a message answered before gets its first reply unchanged then."""
        key = self._credentials().signing_key
        if batched:
            return sign_batch(encoded, key)
        return b"", [
            d.reply if isinstance(d, _Again) else seal_encoded(reply, key)
            for d, reply in zip(decisions, encoded, strict=True)
        ]

    def _outcome(
        self, decision: _Decision, envelope: bytes, tls_identity: str | None, now: float
    ) -> Reply:
        """What one message's signed reply means for the call, counted and logged."""
        if isinstance(decision, _Refused):
            refusal = decision.refusal
            self._note_refusal(refusal, decision.raw, _peer_of(self._credentials(), tls_identity))
            return Reply(
                envelope,
                refusal.code.grpc_status,
                f"{refusal.code.value}: {refusal.text}",
                faults=(refusal.code,),
            )
        message = decision.message
        peer = message.sender.province
        if isinstance(decision, _Again):
            self._metrics.messages_duplicate.labels(peer, message.payload_type).inc()
            return Reply(envelope)
        received, last_received = self._received_children(peer, message.payload_type)
        received.inc()
        self._links(peer).received(now)
        last_received.set(now)
        log.debug(
            "accepted",
            extra={"peer": peer, "message_id": message.message_id, "type": message.payload_type},
        )
        return Reply(envelope)

    def _store_all(
        self,
        conn: Connection,
        *,
        items: list[tuple[Authenticated, bytes, Effect | None]],
        now: float,
    ) -> list[bytes | Exception]:
        """One write job for what one call brought: each message with its reply and effect
        under a savepoint of its own (a refusing effect undoes only its message), then the
        evidence of every message stored, in one append."""
        records: list[audit.Record] = []

        def part(accepted: Authenticated, reply: bytes, effect: Effect | None) -> bytes:
            stored = self._store(conn, accepted=accepted, reply=reply, now=now, effect=effect)
            if stored is reply:
                peer, message_id = accepted.sender.province, accepted.message_id
                records.append(
                    audit.Record("received", peer, message_id, "envelope", accepted.envelope, now)
                )
                records.append(audit.Record("sent", peer, message_id, "reply", reply, now))
            return stored

        results = self._db().each(conn, [partial(part, *item) for item in items])
        audit.append_many(conn, records)
        return results

    def _store(
        self,
        conn: Connection,
        *,
        accepted: Authenticated,
        reply: bytes,
        now: float,
        effect: Effect | None = None,
    ) -> bytes:
        """The message and its reply in the inbox, and its effect; the reply stored before
        (the same message stored at once by another call) when there is one."""
        prior = inbox.record_once(
            conn,
            sender=accepted.sender.node_id,
            message_id=accepted.message_id,
            digest=accepted.digest,
            payload_type=accepted.payload_type,
            envelope=accepted.envelope,
            reply=reply,
            received_at=now,
        )
        if prior is not None:
            # The same message stored before, or at once by another call or replica.
            if prior.digest != accepted.digest:
                raise Refusal(
                    FaultCode.REPLAY_MISMATCH,
                    f"message id {accepted.message_id} was already received with different content",
                    field="header.message_id",
                    message_id=accepted.message_id,
                    digest=accepted.digest,
                ) from None
            return prior.reply
        effect = effect or self._effects.get(accepted.payload_type)
        if effect is not None:
            effect(conn, Received(accepted, reply, now))
        return reply

    def _refuse(self, refusal: Refusal, raw: bytes, tls_identity: str | None, now: float) -> Reply:
        """A refusal of a whole call (a frame that is not a batch): its own signed fault."""
        credentials = self._credentials()
        self._note_refusal(refusal, raw, _peer_of(credentials, tls_identity))
        fault = fault_for(
            refusal,
            me=self._node_id,
            recipient=tls_identity or "",
            now=now,
            manifest_version=credentials.manifest.version,
            key=credentials.signing_key,
        )
        return Reply(
            fault.envelope,
            refusal.code.grpc_status,
            f"{refusal.code.value}: {refusal.text}",
            faults=(refusal.code,),
        )

    def _note_refusal(self, refusal: Refusal, raw: bytes, peer: str) -> None:
        """Every refusal counted; logged at most once per peer and code per interval."""
        self._metrics.messages_refused.labels(
            peer, _peek_type(raw), refusal.code.value, "inbound"
        ).inc()
        self._refusal_log.warn(
            "refused",
            peer=peer,
            reason=refusal.code.value,
            message_id=refusal.message_id,
            field=refusal.field,
            detail=refusal.text,
        )


def _peer_of(credentials: CredentialsView, tls_identity: str | None) -> str:
    member = credentials.manifest.member(tls_identity or "")
    return member.province if member else UNKNOWN_PEER


def _parse_batch(frame: bytes, limits: CheckLimits) -> pb.Batch:
    """A received Exchange frame, bounded: parsed, 1 to ``MAX_BATCH_MESSAGES`` messages.
    Its signature and each message are checked message by message afterwards."""
    batch = pb.Batch()
    try:
        batch.ParseFromString(frame)
    except DecodeError as exc:
        raise Refusal(
            FaultCode.MALFORMED_ENVELOPE, f"frame is not a valid protobuf Batch: {exc}"
        ) from exc
    if not 0 < len(batch.messages) <= MAX_BATCH_MESSAGES:
        raise Refusal(
            FaultCode.MALFORMED_ENVELOPE,
            f"a batch holds 1 to {MAX_BATCH_MESSAGES} messages, not {len(batch.messages)}",
            field="batch.messages",
        )
    return batch


class _InboxNow:
    """The inbox as the checks read it, through the store's read connection taken only when
    asked: a message refused before the inbox is read (malformed, badly signed) is refused
    for what is wrong with it, even while the store is away."""

    def __init__(self, db: Callable[[], Database]) -> None:
        self._db = db

    def prior(self, sender: str, message_id: str) -> PriorDelivery | None:
        return inbox.prior(self._db().reader(), sender, message_id)


def _ids_of(raw: bytes) -> tuple[str, bytes]:
    """The id and digest of an envelope the checks have parsed already."""
    message = pb.Message.FromString(pb.Envelope.FromString(raw).message)
    return message.header.message_id, envelope_digest(raw)


def _store_refusal(
    error: BaseException,
    accepted: Authenticated | None = None,
    *,
    ids: tuple[str, bytes] = ("", b""),
) -> Refusal:
    """A failure to store (or read the inbox for) a message, as the signed fault its sender
    gets: about that message (its id and digest) once the checks have read it, so the
    sender can tell the fault answers it."""
    message_id, digest = (accepted.message_id, accepted.digest) if accepted else ids
    if isinstance(error, StoreUnavailable):
        return Refusal(
            FaultCode.STORE_UNAVAILABLE,
            "this node's store cannot take writes now (disk full, I/O error or its database "
            "unreachable); nothing of "
            "the message was kept; send it again later",
            message_id=message_id,
            digest=digest,
        )
    log.error("failed to store an accepted message", exc_info=error)
    return Refusal(
        FaultCode.UNAVAILABLE,
        "this node failed to store the message; nothing of it was kept; send it again later",
        message_id=message_id,
        digest=digest,
    )


def _ready(reply: Reply) -> asyncio.Future[Reply]:
    future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
    future.set_result(reply)
    return future


def _peek_type(raw: bytes) -> str:
    """The payload type of a refused envelope, for the metric label, if it parses at all."""
    try:
        envelope = pb.Envelope.FromString(raw)
        return payload_type(pb.Message.FromString(envelope.message)) or "none"
    except DecodeError:
        return "malformed"

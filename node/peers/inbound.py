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
- Each payload type's validator, effect and responder come from the service that handles
  that type, as one ``PayloadHandler`` each (``CATALOG_HANDLERS``, ``CaseExchange.handlers``,
  ``CertificateRecognition.handlers``); the node only combines them.

Imports: see the package docstring (``node.peers``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from monitoring.metrics import UNKNOWN_PEER, NodeMetrics
from node.delivery.circuit import PeerLink
from node.peers.courier import CredentialsView
from node.protocol.checks import (
    Authenticated,
    CheckLimits,
    PayloadValidator,
    Redelivery,
    check_envelope,
)
from node.protocol.envelope import Sealed, payload_type
from node.protocol.faults import FaultCode, Refusal
from node.protocol.replies import answer_for, fault_for, receipt_for
from node.store import audit, inbox
from node.store.database import Database, DuplicateEntry, StoreError, StoreUnavailable
from node.transport.admission import RefusalLog
from node.transport.server import Reply
from node.wire import pb

log = logging.getLogger(__name__)

EPHEMERAL_TYPES = frozenset({"heartbeat"})


@dataclass(frozen=True)
class Received:
    """An accepted inbound message, as its effect sees it inside the storing transaction."""

    message: Authenticated
    receipt: bytes
    """This node's signed receipt for it, stored in the same transaction."""
    received_at: float


Effect = Callable[[sqlite3.Connection, Received], None]
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
        self._refusal_log = RefusalLog()

    def receive(self, raw: bytes, tls_identity: str | None) -> Awaitable[Reply]:
        """Check ``raw`` and queue its write now; the awaitable gives the reply after commit.

        The checks and the write submission happen synchronously, in call order, so the
        messages of one stream reach the store's writer in the order they arrived and share
        its group commit, without a task per message.
        """
        now = self._clock()
        try:
            return self._receive(raw, tls_identity, now)
        except StoreError as error:
            return _ready(self._refuse(_store_refusal(error), raw, tls_identity, now))

    def _receive(self, raw: bytes, tls_identity: str | None, now: float) -> Awaitable[Reply]:
        credentials = self._credentials()
        try:
            if credentials.manifest.expired_at(now):
                raise Refusal(
                    FaultCode.MANIFEST_EXPIRED,
                    f"this node's manifest (version {credentials.manifest.version}) has expired; "
                    "it refuses all traffic until a current manifest is loaded",
                )
            if self._stopping():
                raise Refusal(FaultCode.UNAVAILABLE, "this node is shutting down; retry later")
            verdict = check_envelope(
                raw,
                tls_identity=tls_identity,
                manifest=credentials.manifest,
                me=self._node_id,
                now=now,
                inbox=inbox.InboxReader(self._db().reader()),
                limits=self._limits,
                validators=self._validators,
            )
        except Refusal as refusal:
            return _ready(self._refuse(refusal, raw, tls_identity, now))
        if isinstance(verdict, Redelivery):
            peer = verdict.message.sender.province
            self._metrics.messages_duplicate.labels(peer, verdict.message.payload_type).inc()
            return _ready(Reply(verdict.prior.reply))
        responder = self._responders.get(verdict.payload_type)
        if responder is not None:
            return asyncio.ensure_future(
                self._respond(responder, verdict, raw=raw, tls_identity=tls_identity, now=now)
            )
        receipt = receipt_for(
            verdict,
            me=self._node_id,
            now=now,
            manifest_version=credentials.manifest.version,
            key=credentials.signing_key,
        )
        if verdict.payload_type in EPHEMERAL_TYPES:
            return _ready(self._accepted(verdict, receipt, now))
        stored = self._db().submit(partial(self._store, accepted=verdict, receipt=receipt, now=now))

        return self._after_commit(stored, verdict, receipt, raw, tls_identity, now)

    async def _respond(
        self,
        responder: Responder,
        accepted: Authenticated,
        *,
        raw: bytes,
        tls_identity: str | None,
        now: float,
    ) -> Reply:
        try:
            answer = await responder(accepted, now)
        except Refusal as refusal:
            return self._refuse(refusal, raw, tls_identity, now)
        except StoreError as error:
            return self._refuse(_store_refusal(error, accepted), raw, tls_identity, now)
        credentials = self._credentials()
        reply = answer_for(
            accepted,
            answer.body,
            me=self._node_id,
            now=now,
            manifest_version=credentials.manifest.version,
            key=credentials.signing_key,
        )
        if not answer.store:
            return self._accepted(accepted, reply, now)
        try:
            stored = self._db().submit(
                partial(
                    self._store, accepted=accepted, receipt=reply, now=now, effect=answer.effect
                )
            )
        except StoreError as error:
            return self._refuse(_store_refusal(error, accepted), raw, tls_identity, now)
        return await self._after_commit(stored, accepted, reply, raw, tls_identity, now)

    def _after_commit(
        self,
        stored: asyncio.Future[bytes],
        accepted: Authenticated,
        receipt: Sealed,
        raw: bytes,
        tls_identity: str | None,
        now: float,
    ) -> asyncio.Future[Reply]:
        """The reply, once the store's commit resolves ``stored`` (a callback, not a task)."""
        result: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def committed(done: asyncio.Future[bytes]) -> None:
            error = done.exception()
            if result.cancelled():
                return
            if isinstance(error, Refusal):
                result.set_result(self._refuse(error, raw, tls_identity, now))
            elif error is not None:
                refusal = _store_refusal(error, accepted)
                result.set_result(self._refuse(refusal, raw, tls_identity, now))
            elif (reply := done.result()) is not receipt.envelope:
                metric = self._metrics.messages_duplicate
                metric.labels(accepted.sender.province, accepted.payload_type).inc()
                result.set_result(Reply(reply))
            else:
                result.set_result(self._accepted(accepted, receipt, now))

        stored.add_done_callback(committed)
        return result

    def _accepted(self, accepted: Authenticated, receipt: Sealed, now: float) -> Reply:
        peer = accepted.sender.province
        self._metrics.messages_received.labels(peer, accepted.payload_type).inc()
        self._links(peer).received(now)
        self._metrics.last_received.labels(peer).set(now)
        log.debug(
            "accepted",
            extra={"peer": peer, "message_id": accepted.message_id, "type": accepted.payload_type},
        )
        return Reply(receipt.envelope)

    def _store(
        self,
        conn: sqlite3.Connection,
        *,
        accepted: Authenticated,
        receipt: Sealed,
        now: float,
        effect: Effect | None = None,
    ) -> bytes:
        sender = accepted.sender.node_id
        peer = accepted.sender.province
        try:
            inbox.record(
                conn,
                sender=sender,
                message_id=accepted.message_id,
                digest=accepted.digest,
                payload_type=accepted.payload_type,
                envelope=accepted.envelope,
                reply=receipt.envelope,
                received_at=now,
            )
        except DuplicateEntry:
            # The same message may arrive twice at once (a retried stream and a unary call);
            # the writer runs jobs one by one, so the first one stored wins.
            prior = inbox.prior(conn, sender, accepted.message_id)
            assert prior is not None
            if prior.digest != accepted.digest:
                raise Refusal(
                    FaultCode.REPLAY_MISMATCH,
                    f"message id {accepted.message_id} was already received with different content",
                    field="header.message_id",
                    message_id=accepted.message_id,
                    digest=accepted.digest,
                ) from None
            return prior.reply
        audit.append_many(
            conn,
            (
                audit.Record(
                    "received", peer, accepted.message_id, "envelope", accepted.envelope, now
                ),
                audit.Record("sent", peer, accepted.message_id, "reply", receipt.envelope, now),
            ),
        )
        effect = effect or self._effects.get(accepted.payload_type)
        if effect is not None:
            effect(conn, Received(accepted, receipt.envelope, now))
        return receipt.envelope

    def _refuse(self, refusal: Refusal, raw: bytes, tls_identity: str | None, now: float) -> Reply:
        credentials = self._credentials()
        member = credentials.manifest.member(tls_identity or "")
        peer = member.province if member else UNKNOWN_PEER
        kind = _peek_type(raw)
        self._metrics.messages_refused.labels(peer, kind, refusal.code.value, "inbound").inc()
        self._refusal_log.warn(
            "refused",
            peer=peer,
            reason=refusal.code.value,
            message_id=refusal.message_id,
            field=refusal.field,
            detail=refusal.text,
        )
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
            fault=refusal.code,
        )


def _store_refusal(error: BaseException, accepted: Authenticated | None = None) -> Refusal:
    """A failure to store a message, as the signed fault its sender gets: about that
    message (its id and digest) once the checks have read it, so the sender can tell the
    fault answers it."""
    message_id = accepted.message_id if accepted else ""
    digest = accepted.digest if accepted else b""
    if isinstance(error, StoreUnavailable):
        return Refusal(
            FaultCode.STORE_UNAVAILABLE,
            "this node's store cannot take writes now (disk full or I/O error); nothing of "
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

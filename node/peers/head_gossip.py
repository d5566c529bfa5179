"""Witnesses comparing heads: the gossip that finds a log shown one way to one witness and
another way to another (a split view), and the answer to a node asking for the heads of its
own log its witnesses cosigned.

Rules kept here (the wire rules are in ``node.protocol.checkpoints``):
- Every interval, after its own checkpoint, a node sends each peer the latest checkpoint of
  every other peer's log it cosigned (``gossip``), and judges the heads its peers send it
  (``take_heads``). A split view found either way — two heads of one log, both signed by its
  node, that cannot both be true — is handled like a refused checkpoint: a signed
  ``log_inconsistent`` fault to the message that revealed it, the refusal metric of that log
  (``YrdCheckpointRefused``), a log line naming the log, both sizes and roots, and both heads
  kept in the ``checkpoints`` table as evidence.
- A peer asks this node for the heads of its own log it cosigned (``answer_heads``: a node
  asks about its own log only), so ``yrd audit verify`` can check a log against its
  witnesses from the log's own machine. The answer is the latest cosigned head, with its
  cosignature; neither question nor answer is stored.
- Where replicas share the store, one of them (the checkpoint lease's holder) gossips.

Imports: see the package docstring (``node.peers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from functools import partial

from google.protobuf.message import Message as ProtoMessage

from monitoring.metrics import NodeMetrics
from node.peers.courier import Answered, AskFailed, Courier, CredentialsView
from node.peers.inbound import Answer, PayloadHandler
from node.protocol.checkpoints import (
    MAX_WITNESSED_HEADS,
    check_heads_request,
    check_witnessed_heads,
    member_keys,
)
from node.protocol.checks import Authenticated
from node.protocol.faults import FaultCode, Refusal
from node.store import checkpoints as store
from node.store.database import Database, StoreError
from node.store.leases import LeaseClaim
from node.wire import pb

log = logging.getLogger(__name__)

ASK_TIMEOUT = 10.0
"""Seconds a peer has to answer before it counts as not reachable."""


async def asked_peer(
    courier: Courier, province: str, kind: str, body: ProtoMessage, failed: str
) -> Answered | None:
    """The peer's checked answer, or None (logged as ``failed``) when there is none."""
    try:
        return await courier.ask(province, kind, body, timeout=ASK_TIMEOUT, record=False)
    except (AskFailed, Refusal) as error:
        log.info(failed, extra={"peer": province, "error": str(error)})
        return None


def answering(refusal: Refusal, message: Authenticated) -> Refusal:
    """``refusal`` as the answer to ``message``: its fault names the message and digest."""
    return Refusal(
        refusal.code,
        refusal.text,
        field=refusal.field,
        message_id=message.message_id,
        digest=message.digest,
    )


class HeadGossip:
    """The heads of other nodes' logs this node shows its peers, and theirs it judges."""

    def __init__(
        self,
        *,
        node_id: str,
        province: str,
        db: Callable[[], Database],
        clock: Callable[[], float],
        credentials: Callable[[], CredentialsView],
        courier: Courier,
        peers: Collection[str],
        metrics: NodeMetrics,
        lease: LeaseClaim | None = None,
    ) -> None:
        self._node_id = node_id
        self.me = province
        self._db = db
        self._clock = clock
        self._credentials = credentials
        self._courier = courier
        self._peers = peers
        self._metrics = metrics
        self._lease = lease

    def handlers(self) -> dict[str, PayloadHandler]:
        """The heads peers show this node, and their questions about their own logs."""
        return {
            "witnessed_heads": PayloadHandler(respond=self.take_heads),
            "heads_request": PayloadHandler(respond=self.answer_heads),
        }

    async def try_gossip(self) -> None:
        """``gossip``, skipped like ``try_checkpoint`` (one replica gossips for the node)."""
        if self._lease is not None and not await self._lease.hold():
            return
        try:
            await self.gossip()
        except StoreError as error:
            log.warning("gossip skipped: the store cannot be read", extra={"error": str(error)})

    async def gossip(self) -> dict[str, str]:
        """Send each peer the latest checkpoint of every other peer's log this node cosigned;
        return each peer's outcome ("received", "nothing" to send, or why not)."""
        if self._credentials().manifest.expired_at(self._clock()):
            return {}
        reader = self._db().reader()
        latest = {
            origin: held
            for origin in self._peers
            if (held := store.latest_witnessed(reader, origin, self.me)) is not None
        }
        provinces = list(self._peers)
        outcomes = await asyncio.gather(
            *(
                self._show(province, [h for o, h in latest.items() if o != province])
                for province in provinces
            )
        )
        return dict(zip(provinces, outcomes, strict=True))

    async def _show(self, province: str, held: list[store.Cosigned]) -> str:
        if not held:
            return "nothing"
        heads = _heads(held[:MAX_WITNESSED_HEADS])
        answered = await asked_peer(
            self._courier, province, "witnessed_heads", heads, "witnessed heads not shown"
        )
        if answered is None:
            return "unanswered"
        fault = answered.fault
        if fault is None:
            return "received"
        if fault.code == FaultCode.LOG_INCONSISTENT.value:
            log.error(
                "a peer found a split view of a log we witness",
                extra={"peer": province, "code": fault.code, "reason": fault.text},
            )
        else:
            log.info("witnessed heads refused", extra={"peer": province, "code": fault.code})
        return fault.code

    async def take_heads(self, message: Authenticated, now: float) -> Answer:
        """As a witness: judge the heads of third parties' logs a peer shows us, keep the new
        ones, and answer with a receipt, or a ``log_inconsistent`` fault naming the first
        split view they reveal (``Responder``)."""
        sender = message.sender
        manifest = self._credentials().manifest
        keys_at = member_keys({m.node_id: m.keys for m in manifest.members})
        try:
            shown = check_witnessed_heads(
                message.message.witnessed_heads,
                sender=sender.node_id,
                me=self._node_id,
                keys_at=keys_at,
            )
        except Refusal as refusal:
            raise answering(refusal, message) from None
        provinces = {m.node_id: m.province for m in manifest.members}
        splits = await self._db().write(
            partial(store.take_shown, shown=shown, provinces=provinces, sender=sender.province)
        )
        for split in splits:
            view = split.view
            self._metrics.checkpoints_refused.labels(split.origin).inc()
            log.error(
                "a split view of a peer's log",
                extra={
                    "peer": split.origin,
                    "shown_by": split.shown_by,
                    "held_size": view.held.tree_size,
                    "held_root": view.held.root_hash.hex(),
                    "shown_size": view.shown.tree_size,
                    "shown_root": view.shown.root_hash.hex(),
                },
            )
        if splits:
            first = splits[0]
            refused = Refusal(
                FaultCode.LOG_INCONSISTENT,
                f"{first.origin}'s log is split: {first.view.reason}, both signed by "
                f"{first.origin}",
                field="body.witnessed_heads.heads",
            )
            raise answering(refused, message)
        receipt = pb.Receipt(
            message_id=message.message_id,
            digest=message.digest,
            status=pb.Receipt.STATUS_ACCEPTED,
        )
        receipt.received_at.FromNanoseconds(int(now * 1e9))
        return Answer(("receipt", receipt), store=False)

    async def answer_heads(self, message: Authenticated, now: float) -> Answer:
        """As a witness: the latest checkpoint of the asker's own log this node cosigned,
        with its cosignature, or none (``Responder``; nothing stored)."""
        sender = message.sender
        try:
            check_heads_request(message.message.heads_request, sender=sender.node_id)
        except Refusal as refusal:
            raise answering(refusal, message) from None
        latest = store.latest_witnessed(self._db().reader(), sender.province, self.me)
        heads = _heads([] if latest is None else [latest])
        return Answer(("witnessed_heads", heads), store=False)


def _heads(held: list[store.Cosigned]) -> pb.WitnessedHeads:
    """Cosigned heads as shown to a peer: each checkpoint without its proofs, each
    cosignature without the proofs it asked for (requests to the log's node only)."""
    heads = pb.WitnessedHeads()
    for h in held:
        shown = heads.heads.add()
        shown.checkpoint.CopyFrom(h.checkpoint)
        del shown.checkpoint.proofs[:]
        shown.cosignature.CopyFrom(h.cosignature)
        del shown.cosignature.proofs_wanted[:]
    return heads

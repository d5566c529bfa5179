"""Checkpoints of this node's evidence log, cosigned by its peers as witnesses.

Rules kept here:
- Every interval (and once more on shutdown) the node signs one checkpoint of its evidence
  tree — node id, tree size, root hash, time — and asks every peer to cosign it, with
  consistency proofs from the last size that peer cosigned and the last size sent to it
  (the peer's latest is one of the two even when an answer was lost). The checkpoint is
  kept before it is sent, and the cosignature when it comes back, after it verified.
- A checkpoint only covers committed entries: the tree is read from the store's reader,
  which sees committed transactions only, and commits are durable (``synchronous=FULL``).
- As a witness, the node checks a peer's checkpoint against the latest of that log it
  cosigned, and keeps it and answers with its cosignature, or refuses it with a signed
  ``log_inconsistent`` fault, a metric and a log line (a rewrite or a fork). A witness's
  refusal of our log is counted, logged and shown in the status until it cosigns again.
- As a witness, it also compares heads with the other witnesses (gossip; the rules are in
  ``node.protocol.checkpoints``): every interval, after its own checkpoint, it sends each
  peer the latest checkpoint of every other peer's log it cosigned (``gossip``), and judges
  the heads its peers send it (``take_heads``). A split view found either way — two heads of
  one log, both signed by its node, that cannot both be true — is handled like a refused
  checkpoint: a signed ``log_inconsistent`` fault to the message that revealed it, the
  refusal metric of that log (``YrdCheckpointRefused``), a log line naming the log, both
  sizes and roots, and both heads kept in the ``checkpoints`` table as evidence.
- The proofs a witness asks for in its cosignature (``proofs_wanted``) are read back from
  the cosignature kept, so the next checkpoint carries them even after a restart; how many
  times each was asked is counted in memory (a restart only gives the node more rounds).
- A peer asks this node for the heads of its own log it cosigned (``answer_heads``: a node
  asks about its own log only), so ``yrd audit verify`` can check a log against its
  witnesses from the log's own machine. The answer is the latest cosigned head, with its
  cosignature; neither question nor answer is stored.
- Checkpoints and cosignatures are not entries of the evidence log (like heartbeats): each
  is signed on its own and kept in the ``checkpoints`` table, and a log that took an entry
  per checkpoint would never be still.

Imports: see the package docstring (``node.peers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial

from google.protobuf.message import Message as ProtoMessage

from monitoring.metrics import NodeMetrics
from node.peers.courier import Answered, AskFailed, Courier, CredentialsView
from node.peers.inbound import Answer, PayloadHandler
from node.protocol.checkpoints import (
    MAX_PROOFS_WANTED,
    MAX_WITNESSED_HEADS,
    Head,
    check_heads_request,
    check_witnessed_heads,
    cosign,
    cosigns,
    member_keys,
    sign_checkpoint,
)
from node.protocol.checks import Authenticated
from node.protocol.faults import FaultCode, Refusal
from node.store import checkpoints as store
from node.store.connection import Connection
from node.store.database import Database, StoreError
from node.store.leases import LeaseClaim
from node.store.log_tree import StoredTree
from node.trust.keys import VerifyKey
from node.trust.manifest import Member
from node.wire import pb

log = logging.getLogger(__name__)

ASK_TIMEOUT = 10.0


@dataclass(frozen=True)
class WitnessRefusal:
    """A witness refuses our log: its refusals since it last cosigned, and the latest one."""

    count: int
    at: float
    code: str
    reason: str


class LogWitnessing:
    """This node's checkpoints sent to its peers, and the peers' it cosigns."""

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
        interval: float,
        lease: LeaseClaim | None = None,
    ) -> None:
        self._lease = lease
        """Where replicas share the store and so this log: the one that checkpoints it."""
        self._node_id = node_id
        self.me = province
        self._db = db
        self._clock = clock
        self._credentials = credentials
        self._courier = courier
        self._peers = peers
        self._metrics = metrics
        self._interval = interval
        self._refusals: dict[str, WitnessRefusal] = {}
        self._asked: dict[tuple[str, Head], int] = {}
        """How many of our cosignatures asked a peer for a proof from a head of its log
        shown to us, by (province, head); a head leaves when proven."""

    @property
    def refusals(self) -> Mapping[str, WitnessRefusal]:
        """The witnesses whose latest answer refused our log (a fork or a rewrite), by
        province; a witness leaves when it cosigns again. Kept in memory: after a restart
        the next checkpoint asks again."""
        return self._refusals

    def handlers(self) -> dict[str, PayloadHandler]:
        """The checkpoints peers send for this node to witness (see ``peers.inbound``)."""
        return {
            "checkpoint": PayloadHandler(respond=self.cosign),
            "witnessed_heads": PayloadHandler(respond=self.take_heads),
            "heads_request": PayloadHandler(respond=self.answer_heads),
        }

    # -- our log ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Checkpoint every interval, forever."""
        self.remember()
        while True:
            await asyncio.sleep(self._interval)
            await self.try_checkpoint()
            await self.try_gossip()

    async def try_checkpoint(self) -> None:
        """``checkpoint``, skipped with a warning while the store refuses writes (a full
        disk is a state the node waits out, not a reason to stop witnessing or stopping).
        Skipped too where another replica of this node checkpoints the shared log now: two
        checkpoints of one log signed at once could reach a witness out of order, and the
        smaller would look like a rewrite."""
        if self._lease is not None and not await self._lease.hold():
            return
        try:
            await self.checkpoint()
        except StoreError as error:
            log.warning("checkpoint skipped: the store refuses writes", extra={"error": str(error)})

    def remember(self) -> None:
        """The metrics of the last cosignature of each witness, from the store (a restart
        must not make every witness look silent)."""
        started = self._clock()
        for province in self._peers:
            # Every peer's refusal series exists from the start, so an alert sees its rise.
            self._metrics.checkpoints_refused.labels(province).inc(0)
            self._metrics.checkpoints_refused_by_peer.labels(province).inc(0)
            # And a witness that never cosigns still ages (YrdWitnessSilent), from now.
            self._metrics.checkpoint_witness_since.labels(province).set(started)
        for held in store.cosigned(self._db().reader(), own=True):
            self._observe_cosigned(held.witness, held.tree_size, held.cosigned_at)

    async def checkpoint(self) -> dict[str, str]:
        """Sign one checkpoint of the log as committed now and ask every peer to cosign it;
        return each peer's outcome ("cosigned" or why not)."""
        credentials = self._credentials()
        now = self._clock()
        if credentials.manifest.expired_at(now):
            return {}
        reader = self._db().reader()
        tree = StoredTree(reader)
        head = Head(tree.size, tree.root())
        provinces = list(self._peers)

        def bases(province: str) -> dict[int, list[bytes]]:
            cosigned = store.latest_cosigned(reader, self.me, province)
            sizes = {
                cosigned.tree_size if cosigned else 0,
                store.latest_sent(reader, self.me, province) or 0,
                # Heads of ours other witnesses showed it, that it asked us to prove.
                *store.proofs_wanted(reader, self.me, province)[:MAX_PROOFS_WANTED],
            }
            # A head of the checkpoint's own size needs no proof (the roots are compared).
            return {
                size: tree.consistency_path(size, head.tree_size)
                for size in sizes
                if 0 < size < head.tree_size
            }

        signed = {
            province: sign_checkpoint(
                credentials.signing_key,
                origin=self._node_id,
                head=head,
                now=now,
                proofs=bases(province),
            )
            for province in provinces
        }

        def keep(conn: Connection) -> None:
            for province, checkpoint in signed.items():
                store.record_sent(conn, origin=self.me, witness=province, checkpoint=checkpoint)

        await self._db().write(keep)
        outcomes = await asyncio.gather(
            *(self._ask(province, signed[province]) for province in provinces)
        )
        return dict(zip(provinces, outcomes, strict=True))

    async def _asked_peer(
        self, province: str, kind: str, body: ProtoMessage, failed: str
    ) -> Answered | None:
        """The peer's checked answer, or None (logged as ``failed``) when there is none."""
        try:
            return await self._courier.ask(province, kind, body, timeout=ASK_TIMEOUT, record=False)
        except (AskFailed, Refusal) as error:
            log.info(failed, extra={"peer": province, "error": str(error)})
            return None

    async def _ask(self, province: str, checkpoint: pb.Checkpoint) -> str:
        answered = await self._asked_peer(
            province, "checkpoint", checkpoint, "checkpoint not cosigned"
        )
        if answered is None:
            return "unanswered"
        reply = answered.reply
        if reply.payload_type == "fault":
            fault = reply.message.fault
            if fault.code != FaultCode.LOG_INCONSISTENT.value:
                # Not a verdict on our log (the peer is stopping, its store is full, its
                # manifest does not list the type yet): the next round asks again.
                log.info("checkpoint not cosigned", extra={"peer": province, "code": fault.code})
                return fault.code
            self._metrics.checkpoints_refused_by_peer.labels(province).inc()
            before = self._refusals.get(province)
            self._refusals[province] = WitnessRefusal(
                count=(before.count if before else 0) + 1,
                at=answered.answered_at,
                code=fault.code,
                reason=fault.text,
            )
            log.error(
                "a witness refused our checkpoint",
                extra={"peer": province, "code": fault.code, "reason": fault.text},
            )
            return fault.code
        cosignature = reply.message.cosignature
        # Only the witness's own key, usable when it cosigned (a revoked one is not).
        witness_keys = member_keys({reply.sender.node_id: reply.sender.keys})
        if reply.payload_type != "cosignature" or not cosigns(
            cosignature, checkpoint, witness=reply.sender.node_id, keys_at=witness_keys
        ):
            log.warning(
                "a witness's answer is no cosignature of our checkpoint", extra={"peer": province}
            )
            return "bad_cosignature"
        at = answered.answered_at
        await self._db().write(
            partial(
                store.record_cosigned,
                origin=self.me,
                witness=province,
                checkpoint=checkpoint,
                cosignature=cosignature,
                cosigned_at=at,
                own=True,
            )
        )
        self._observe_cosigned(province, checkpoint.tree_size, at)
        self._refusals.pop(province, None)
        return "cosigned"

    def _observe_cosigned(self, witness: str, tree_size: int, at: float) -> None:
        self._metrics.checkpoint_cosigned_size.labels(witness).set(tree_size)
        self._metrics.checkpoint_cosigned_at.labels(witness).set(at)

    # -- the peers' logs --------------------------------------------------------------------

    async def cosign(self, message: Authenticated, now: float) -> Answer:
        """As a witness: check a peer's checkpoint, keep it and cosign it (``Responder``)."""
        sender = message.sender
        credentials = self._credentials()
        keys = {key.key_id: key.verify_key for key in sender.keys if key.usable_at(now)}

        def sign(checkpoint: pb.Checkpoint) -> pb.Cosignature:
            return cosign(
                credentials.signing_key, witness=self._node_id, checkpoint=checkpoint, now=now
            )

        origin = sender.province
        try:
            cosignature, settled = await self._db().write(
                partial(
                    store.witness,
                    checkpoint=message.message.checkpoint,
                    origin=origin,
                    me=self.me,
                    sender_node_id=sender.node_id,
                    keys=keys,
                    cosign=sign,
                    now=now,
                    asked=lambda head: self._asked.get((origin, head), 0),
                )
            )
        except Refusal as refusal:
            self._metrics.checkpoints_refused.labels(sender.province).inc()
            if refusal.code is FaultCode.LOG_INCONSISTENT:
                await self._keep_refused(message.message.checkpoint, sender, keys, now)
            log.error(
                "refused a peer's checkpoint",
                extra={"peer": sender.province, "code": refusal.code.value, "reason": refusal.text},
            )
            raise _answering(refusal, message) from None
        # Only heads still pending keep a count (proven or replaced ones leave).
        for key in [k for k in self._asked if k[0] == origin and k[1] not in settled.wanted]:
            del self._asked[key]
        for head in settled.wanted:
            self._asked[origin, head] = self._asked.get((origin, head), 0) + 1
        return Answer(("cosignature", cosignature), store=False)

    async def _keep_refused(
        self, checkpoint: pb.Checkpoint, sender: Member, keys: Mapping[str, VerifyKey], now: float
    ) -> None:
        """Keep a checkpoint refused as ``log_inconsistent`` (signed by its node, it proves
        the equivocation) and log its head beside the one it contradicts."""
        origin = sender.province
        try:
            kept = await self._db().write(
                partial(
                    store.keep_refused,
                    checkpoint=checkpoint,
                    origin=origin,
                    sender_node_id=sender.node_id,
                    keys=keys,
                    now=now,
                )
            )
        except StoreError as error:
            # The refusal is answered all the same; the next refused checkpoint is kept.
            log.warning("a refused checkpoint not kept", extra={"error": str(error)})
            kept = False
        held = store.latest_cosigned(self._db().reader(), origin, self.me)
        log.error(
            "a peer's log contradicts the head this node cosigned",
            extra={
                "peer": origin,
                "kept": kept,
                "refused_size": checkpoint.tree_size,
                "refused_root": checkpoint.root_hash.hex(),
                "cosigned_size": held.tree_size if held else None,
                "cosigned_root": held.root_hash.hex() if held else None,
            },
        )

    # -- comparing heads with the other witnesses (gossip) ----------------------------------

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
        answered = await self._asked_peer(
            province, "witnessed_heads", heads, "witnessed heads not shown"
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
            raise _answering(refusal, message) from None
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
            raise _answering(refused, message)
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
            raise _answering(refusal, message) from None
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


def _answering(refusal: Refusal, message: Authenticated) -> Refusal:
    """``refusal`` as the answer to ``message``: its fault names the message and digest."""
    return Refusal(
        refusal.code,
        refusal.text,
        field=refusal.field,
        message_id=message.message_id,
        digest=message.digest,
    )

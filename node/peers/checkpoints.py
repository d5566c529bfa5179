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
- As a witness, it also compares heads with the other witnesses every interval, after its
  own checkpoint (``heads``: ``node.peers.head_gossip``), and answers a node asking for the
  heads of its own log it cosigned.
- The proofs a witness asks for in its cosignature (``proofs_wanted``) are read back from
  the cosignature kept, so the next checkpoint carries them even after a restart; how many
  times each was asked is counted in memory (a restart only gives the node more rounds).
- Checkpoints and cosignatures are not entries of the evidence log (like heartbeats): each
  is signed on its own and kept in the ``checkpoints`` table, and a log that took an entry
  per checkpoint would never be still.
- What a witness knows of each peer's log is exported from the store at scrape time
  (``evidence``): when it last cosigned one, and the heads other witnesses showed it that
  the peer has not proven yet, with the oldest one's age. These are the witness's own
  series, so a node that hides a split view by no longer sending a witness its checkpoints
  is seen by that witness's operator, not only by its own (``YrdWitnessSilent``).

Imports: see the package docstring (``node.peers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial

from monitoring.metrics import EvidenceSnapshot, NodeMetrics, WitnessedSnapshot
from node.peers.courier import Courier, CredentialsView
from node.peers.head_gossip import HeadGossip, answering, asked_peer
from node.peers.inbound import Answer, PayloadHandler
from node.protocol.checkpoints import (
    MAX_PROOFS_WANTED,
    Head,
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
from node.store.log_tree import StoredTree, uncovered
from node.trust.keys import VerifyKey
from node.trust.manifest import Member
from node.wire import pb

log = logging.getLogger(__name__)


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
        self._watched = False
        """Whether ``evidence`` is registered with the metrics (once, though ``run`` may be
        restarted)."""
        self.heads = HeadGossip(
            node_id=node_id,
            province=province,
            db=db,
            clock=clock,
            credentials=credentials,
            courier=courier,
            peers=peers,
            metrics=metrics,
            lease=lease,
        )
        """Comparing heads with the other witnesses."""

    @property
    def refusals(self) -> Mapping[str, WitnessRefusal]:
        """The witnesses whose latest answer refused our log (a fork or a rewrite), by
        province; a witness leaves when it cosigns again. Kept in memory: after a restart
        the next checkpoint asks again."""
        return self._refusals

    def handlers(self) -> dict[str, PayloadHandler]:
        """The checkpoints peers send for this node to witness (see ``peers.inbound``)."""
        return {"checkpoint": PayloadHandler(respond=self.cosign), **self.heads.handlers()}

    # -- our log ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Checkpoint every interval, forever."""
        self.remember()
        while True:
            await asyncio.sleep(self._interval)
            await self.try_checkpoint()
            await self.heads.try_gossip()

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
        if not self._watched:
            self._metrics.watch_evidence(self.evidence)
            self._watched = True

    def evidence(self) -> EvidenceSnapshot | None:
        """The log's coverage and each peer's log as this node witnesses it, read from the
        store at scrape time; None while the store is closed."""
        try:
            reader = self._db().reader()
        except StoreError:
            return None
        now = self._clock()
        witnessed = {}
        for province in self._peers:
            latest = store.latest_witnessed(reader, province, self.me)
            shown = store.shown_pending(reader, province, self.me)
            since = [
                held.cosigned_at
                for by in sorted({witness for _, witness in shown})
                for held in store.cosigned(reader, origin=province, witness=by, own=False)
            ]
            witnessed[province] = WitnessedSnapshot(
                cosigned_at=None if latest is None else latest.cosigned_at,
                pending=len(shown),
                oldest_pending_age_seconds=max(0.0, now - min(since)) if since else 0.0,
            )
        return EvidenceSnapshot(uncovered(reader), witnessed)

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

    async def _ask(self, province: str, checkpoint: pb.Checkpoint) -> str:
        answered = await asked_peer(
            self._courier, province, "checkpoint", checkpoint, "checkpoint not cosigned"
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
            raise answering(refusal, message) from None
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

"""Asking this node's witnesses for the checkpoints of its log they cosigned, from a process
beside the node (``yrd audit verify --config``), running or stopped.

Rules kept here:
- The asker is this node: its own TLS identity and signing key, and the manifest file its
  config names, verified with the governance keys and not older than the one its store last
  recorded. It sends through the courier (the one way to send), over channels of its own: a
  peer takes this second connection of one identity beside the running node's (its caps are
  per identity, ``PeerLimits.max_streams``, and a verify holds one stream per peer).
- Nothing is written: the store may be the running node's, read here read-only; the asks are
  not recorded, and a ``HeadsRequest`` is not stored by the peer either.
- Every peer of the manifest is asked at once, each within ``ASK_TIMEOUT``. A peer that
  cannot be reached, refuses, or answers with something that fails the checks gives no heads
  and says why (``WitnessAnswer.problem``): being unreachable says nothing about the log.
- An answer's heads are used only once every signature in them verified
  (``check_heads_answer``: the checkpoint by this node's key, the cosignature by the
  answering peer's, keys usable when each signed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from monitoring.metrics import NodeMetrics
from node.peers.courier import AskFailed, Courier, ReplyRefused
from node.peers.head_gossip import ASK_TIMEOUT
from node.protocol.checkpoints import check_heads_answer
from node.protocol.checks import CheckLimits
from node.protocol.faults import Refusal
from node.runtime.config import NodeConfig
from node.runtime.credentials import Credentials, held_manifest
from node.store.audit import read_only
from node.store.checkpoints import Cosigned
from node.store.database import Database
from node.transport.client import PeerChannel
from node.trust.keys import VerifyKey, load_signing_key
from node.trust.manifest import Manifest, verify_manifest
from node.trust.tls import TlsMaterial
from node.wire import pb


@dataclass(frozen=True)
class WitnessAnswer:
    """What one peer said of the heads of this node's log it cosigned."""

    province: str
    heads: tuple[Cosigned, ...]
    """Its cosigned heads of this node's log, every signature verified (none: it has
    cosigned none, or gave no usable answer)."""
    problem: str = ""
    """Why it gave no usable answer ('' when it answered)."""
    reached: bool = True
    """False when it could not be reached (or answered nothing in time)."""


@dataclass(frozen=True)
class _Witness:
    """A peer as this one-off asker reaches it (``courier.Reachable``)."""

    node_id: str
    channel: PeerChannel

    def wake(self) -> None:
        """Nothing is queued from here: there is no delivery worker to wake."""


def _unrecorded() -> Database:
    raise RuntimeError("a verify's asks are not recorded: it writes nothing")


def own_manifest(config: NodeConfig) -> Manifest:
    """The manifest file ``config`` names, verified, refusing one older than the manifest
    the store last recorded (raises ``ManifestError`` or ``StoreError``)."""
    anchors = config.governance_keys
    with read_only(config.paths.store) as conn:
        held_bytes = held_manifest(conn)
    held = verify_manifest(held_bytes, anchors, now=None) if held_bytes else None
    return verify_manifest(config.paths.manifest.read_bytes(), anchors, now=None, current=held)


async def ask_witnesses(
    config: NodeConfig,
    manifest: Manifest,
    *,
    clock: Callable[[], float] = time.time,
    timeout: float = ASK_TIMEOUT,
) -> list[WitnessAnswer]:
    """Ask every peer in ``manifest`` for the heads of this node's log it cosigned (module
    rules); one answer per peer, in the manifest's order."""
    credentials = Credentials(manifest, load_signing_key(config.paths.signing_key))
    tls = TlsMaterial.load(config.paths.ca_cert, config.paths.tls_cert, config.paths.tls_key)
    witnesses = {
        member.province: _Witness(
            member.node_id,
            PeerChannel(
                member.node_id,
                member.endpoints,
                tls,
                max_message_bytes=config.max_message_bytes,
                signing_key=lambda: credentials.signing_key,
                address=config.peer_addresses.get(member.province),
            ),
        )
        for member in manifest.members
        if member.node_id != config.node_id
    }
    courier = Courier(
        node_id=config.node_id,
        db=_unrecorded,
        clock=clock,
        credentials=lambda: credentials,
        peers=witnesses,
        metrics=NodeMetrics(),
        limits=CheckLimits(config.max_message_bytes, config.clock_window_seconds),
    )
    asker = _Asker(courier, config, manifest, timeout)
    try:
        return list(await asyncio.gather(*(asker.ask(p) for p in witnesses)))
    finally:
        await asyncio.gather(*(w.channel.close() for w in witnesses.values()))


@dataclass(frozen=True)
class _Asker:
    courier: Courier
    config: NodeConfig
    manifest: Manifest
    timeout: float

    def _keys_at(self, node_id: str, when: float) -> Mapping[str, VerifyKey] | None:
        member = self.manifest.member(node_id)
        if member is None:
            return None
        return {key.key_id: key.verify_key for key in member.keys if key.usable_at(when)}

    async def ask(self, province: str) -> WitnessAnswer:
        request = pb.HeadsRequest(origin=self.config.node_id)
        try:
            answered = await self.courier.ask(
                province, "heads_request", request, timeout=self.timeout, record=False
            )
        except Refusal as refusal:
            # This node's own policy does not let it ask (nothing was sent).
            return WitnessAnswer(province, (), f"not asked: {refusal.text}")
        except ReplyRefused as failed:
            return WitnessAnswer(province, (), f"its reply failed the checks: {failed.detail}")
        except AskFailed as failed:
            return WitnessAnswer(province, (), f"not reachable: {failed.detail}", reached=False)
        reply = answered.reply
        fault = answered.fault
        if fault is not None:
            return WitnessAnswer(province, (), f"it refused: {fault.code}: {fault.text}")
        if reply.payload_type != "witnessed_heads":
            return WitnessAnswer(province, (), f"it answered with {reply.payload_type}")
        try:
            heads = check_heads_answer(
                reply.message.witnessed_heads,
                witness=reply.sender.node_id,
                me=self.config.node_id,
                keys_at=self._keys_at,
            )
        except Refusal as refusal:
            said = f"{refusal.code.value}: {refusal.text}"
            return WitnessAnswer(province, (), f"its answer failed the checks: {said}")
        return WitnessAnswer(
            province,
            tuple(
                Cosigned(
                    origin=self.config.province,
                    witness=province,
                    tree_size=head.checkpoint.tree_size,
                    root_hash=head.checkpoint.root_hash,
                    checkpoint=head.checkpoint,
                    cosignature=head.cosignature,
                    cosigned_at=head.cosignature.cosigned_at_ms / 1000,
                )
                for head in heads
            ),
        )

"""Signed heartbeats: each node asks every peer for a receipt at a fixed interval.

The receipt's round trip is the peer's RTT; a peer that answers is "up", and its receipt
counts as the link's last success. A signed refusal either way (the peer's fault, or this
node's check of the peer's answer) is kept on the link with its code, so status can say
why a peer that answers is still down. Heartbeats are signed and checked like any message
but not stored (see ``inbound``). An answer from a
peer whose delivery circuit is open cuts that worker's back-off short, so a backlog starts
draining as soon as the peer is back rather than at the end of a long back-off.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from node.delivery.circuit import CircuitState, LinkRefusal
from node.protocol.checks import check_reply
from node.protocol.envelope import header, seal
from node.protocol.faults import Refusal
from node.store import outbox
from node.transport.errors import SignedRefusal, TransportError
from node.wire import pb

if TYPE_CHECKING:
    from node.runtime.node import Node, Peer

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT = 3.0
DOWN_RETRY = 1.0
"""Seconds between heartbeats to a peer that did not answer the last one."""


async def beat_once(node: Node, peer: Peer, sequence: int) -> None:
    credentials = node.credentials
    link = peer.worker.link
    started = node.clock()
    message = pb.Message(
        header=header(
            sender=node.config.node_id,
            recipient=peer.node_id,
            now=started,
            manifest_version=credentials.manifest.version,
        ),
        heartbeat=pb.Heartbeat(
            sequence=sequence, outbox_depth=outbox.depth(node.db.reader(), peer.province)[0]
        ),
    )
    sealed = seal(message, credentials.signing_key)
    try:
        try:
            raw = await peer.channel.deliver(sealed.envelope, timeout=HEARTBEAT_TIMEOUT)
        except SignedRefusal as refusal:
            raw = refusal.envelope
        reply = check_reply(
            raw,
            peer=peer.node_id,
            manifest=credentials.manifest,
            me=node.config.node_id,
            now=node.clock(),
            request_id=sealed.message_id,
            request_digest=sealed.digest,
        )
    except (TransportError, Refusal) as exc:
        was_up = link.up
        link.up = False
        link.last_error = str(exc)
        link.refusal = (
            LinkRefusal(exc.code.value, by_peer=False, detail=exc.text)
            if isinstance(exc, Refusal)
            else None
        )
        if was_up:
            log.warning(
                "peer stopped answering heartbeats",
                extra={"peer": peer.province, "error": str(exc)},
            )
    else:
        link.last_heartbeat_at = node.clock()
        if reply.payload_type == "receipt":
            link.up = True
            link.refusal = None
            link.last_success_at = link.last_heartbeat_at
            if link.circuit is CircuitState.CLOSED:
                link.last_error = ""
            link.rtt_seconds = link.last_heartbeat_at - started
            peer.worker.kick()
        else:
            link.up = False
            fault = reply.message.fault
            link.last_error = f"{fault.code}: {fault.text}"
            link.refusal = LinkRefusal(fault.code, by_peer=True, detail=fault.text)
            log.warning(
                "peer refused our heartbeat",
                extra={"peer": peer.province, "code": reply.message.fault.code},
            )
    node.metrics.peer_up.labels(peer.province).set(1 if link.up else 0)
    if link.rtt_seconds is not None:
        node.metrics.heartbeat_rtt.labels(peer.province).set(link.rtt_seconds)


async def heartbeat_loop(node: Node, peer: Peer) -> None:
    """Beat one peer forever: at the configured interval while it answers, every second
    (at most) while it does not, so its return is seen quickly."""
    sequence = 0
    while True:
        sequence += 1
        await beat_once(node, peer, sequence)
        interval = node.config.heartbeat_interval_seconds
        await asyncio.sleep(interval if peer.worker.link.up else min(interval, DOWN_RETRY))

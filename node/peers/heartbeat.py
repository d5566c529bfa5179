"""Signed heartbeats: each node asks every peer for a receipt at a fixed interval.

The receipt's round trip is the peer's RTT; a peer that answers is "up", and its receipt
counts as the link's last success. A signed refusal either way (the peer's fault, or this
node's check of the peer's answer, or this node's own refusal to send — an expired
manifest) is kept on the link with its code, so status can say why a peer that answers is
still down. Heartbeats are signed and checked like any message (``Courier.ask``) but not
stored (see ``inbound``). An answer from a peer whose delivery circuit is open cuts that
worker's back-off short, so a backlog starts draining as soon as the peer is back rather
than at the end of a long back-off.

A peer running as replicas (several endpoints, one lane each: ``transport.client``) gets its
heartbeats in each lane in turn, so every endpoint's health is current even when no traffic
flows. A heartbeat whose endpoint does not answer is sent once more at once, where the
channel moved that lane: the link is the province's, up while any replica answers.

Imports: see the package docstring (``node.peers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from monitoring.metrics import NodeMetrics
from node.delivery.circuit import LinkRefusal
from node.peers.courier import Answered, AskFailed, Courier, PeerUnanswered, ReplyRefused
from node.peers.peer import Peer
from node.protocol.faults import Refusal
from node.store import outbox
from node.store.database import Database
from node.wire import pb

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT = 3.0
DOWN_RETRY = 1.0
"""Seconds between heartbeats to a peer that did not answer the last one."""


class Heartbeat:
    """The heartbeats of one peer."""

    def __init__(
        self,
        peer: Peer,
        *,
        courier: Courier,
        db: Callable[[], Database],
        clock: Callable[[], float],
        metrics: NodeMetrics,
        interval: float,
    ) -> None:
        self._peer = peer
        self._courier = courier
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._interval = interval
        self._sequence = 0

    async def run(self) -> None:
        """Beat forever: at the configured interval while the peer answers, every second
        (at most) while it does not, so its return is seen quickly."""
        while True:
            await self.beat()
            up = self._peer.worker.link.up
            await asyncio.sleep(self._interval if up else min(self._interval, DOWN_RETRY))

    async def beat(self) -> None:
        """One heartbeat, its outcome kept on the link and in the metrics."""
        peer = self._peer
        link = peer.worker.link
        self._sequence += 1
        body = pb.Heartbeat(
            sequence=self._sequence,
            outbox_depth=outbox.depth(self._db().reader(), peer.province)[0],
        )
        lanes = peer.channel.lanes
        lane = self._sequence % lanes
        try:
            try:
                answered = await self._ask(body, lane)
            except PeerUnanswered:
                if lanes == 1:
                    raise
                answered = await self._ask(body, lane)  # where the channel moved the lane
        except (Refusal, AskFailed) as exc:
            # This node's refusal: to send (an expired manifest) or of the peer's answer.
            refusal = exc.refusal if isinstance(exc, ReplyRefused) else exc
            error = str(exc.error if isinstance(exc, PeerUnanswered) else refusal)
            was_up = link.heartbeat_failed(
                error,
                LinkRefusal(refusal.code.value, by_peer=False, detail=refusal.text)
                if isinstance(refusal, Refusal)
                else None,
            )
            if was_up:
                log.warning(
                    "peer stopped answering heartbeats",
                    extra={"peer": peer.province, "error": error},
                )
        else:
            if answered.payload_type == "receipt":
                link.heartbeat_answered(
                    answered.answered_at, answered.answered_at - answered.sent_at
                )
                peer.worker.kick()
            else:
                fault = answered.reply.message.fault
                link.heartbeat_refused(
                    LinkRefusal(fault.code, by_peer=True, detail=fault.text),
                    answered.answered_at,
                )
                log.warning(
                    "peer refused our heartbeat",
                    extra={"peer": peer.province, "code": fault.code},
                )
        self._metrics.peer_up.labels(peer.province).set(1 if link.up else 0)
        if link.rtt_seconds is not None:
            self._metrics.heartbeat_rtt.labels(peer.province).set(link.rtt_seconds)

    async def _ask(self, body: pb.Heartbeat, lane: int) -> Answered:
        return await self._courier.ask(
            self._peer.province,
            "heartbeat",
            body,
            timeout=HEARTBEAT_TIMEOUT,
            record=False,
            alone=True,
            lane=lane,
        )

"""The ``Peer`` record: one other member of the federation as this node reaches it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from node.delivery.worker import PeerWorker
from node.transport.client import PeerChannel


@dataclass
class Peer:
    province: str
    node_id: str
    channel: PeerChannel
    worker: PeerWorker
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    """Its delivery worker and heartbeat loop."""

    def wake(self) -> None:
        """New rows are committed in its outbox: its delivery worker sends them now."""
        self.worker.notify()

"""The peers of this node, kept matching the manifest.

Rules kept here:
- A new member gets a channel (to every endpoint its replicas listen on, ``PeerChannel``), a
  delivery worker and heartbeats; a changed list of endpoints gets a new channel, the old
  one living on for the calls already made on it; a member that left is no
  longer contacted (what waits for it stays in the outbox, visible to operators).
- A province that is not (or not yet) a peer still has a ``PeerLink``, so what arrives from
  it before the peers are synced is shown.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any

from node.delivery.circuit import PeerLink
from node.delivery.worker import BATCH_TIMEOUT, PeerWorker
from node.peers.heartbeat import HEARTBEAT_TIMEOUT
from node.peers.peer import Peer
from node.transport.client import PeerChannel
from node.trust.keys import SigningKey
from node.trust.manifest import Manifest, Member
from node.trust.tls import TlsMaterial

log = logging.getLogger(__name__)

CHANNEL_RETIRE_GRACE = BATCH_TIMEOUT + HEARTBEAT_TIMEOUT + 5.0
"""How long a replaced channel lives on for the calls already made on it."""

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
StartTask = Callable[[str, TaskFactory], "asyncio.Task[None]"]
"""Starts a long-lived, supervised task under a name (``Supervisor.start``)."""
CancelTasks = Callable[[list["asyncio.Task[None]"]], Awaitable[None]]
NewWorker = Callable[[Member, PeerChannel], PeerWorker]
"""Builds a member's delivery worker on its channel (the courier settles its replies)."""
HeartbeatFor = Callable[[Peer], TaskFactory]
"""The heartbeat loop of a peer."""


class PeerRegistry(Mapping[str, Peer]):
    """The connected peers by province (a read-only mapping), and every province's link."""

    def __init__(
        self,
        *,
        node_id: str,
        tls: Callable[[], TlsMaterial],
        max_message_bytes: int,
        signing_key: Callable[[], SigningKey],
        addresses: Mapping[str, str],
        new_worker: NewWorker,
        heartbeat: HeartbeatFor,
        start: StartTask,
        cancel: CancelTasks,
    ) -> None:
        self._node_id = node_id
        self._tls = tls
        self._max_message_bytes = max_message_bytes
        self._signing_key = signing_key
        self._addresses = addresses
        self._new_worker = new_worker
        self._heartbeat = heartbeat
        self._start = start
        self._cancel = cancel
        self._peers: dict[str, Peer] = {}
        self._links: dict[str, PeerLink] = {}

    # Mapping
    def __getitem__(self, province: str) -> Peer:
        return self._peers[province]

    def __iter__(self) -> Iterator[str]:
        return iter(self._peers)

    def __len__(self) -> int:
        return len(self._peers)

    def link(self, province: str) -> PeerLink:
        """What this node knows of its link to ``province`` (status, metrics, heartbeats)."""
        peer = self._peers.get(province)
        if peer is not None:
            return peer.worker.link
        return self._links.setdefault(province, PeerLink(province))

    def _channel(self, member: Member) -> PeerChannel:
        return PeerChannel(
            member.node_id,
            member.endpoints,
            self._tls(),
            max_message_bytes=self._max_message_bytes,
            signing_key=self._signing_key,
            address=self._addresses.get(member.province),
        )

    async def sync(self, manifest: Manifest) -> None:
        """Make the peers match the manifest: a new member gets a delivery worker and
        heartbeats, a moved endpoint a new channel. A member that left is no longer
        contacted; what waits for it stays in the outbox, visible to operators."""
        for member in manifest.members:
            if member.node_id == self._node_id:
                continue
            peer = self._peers.get(member.province)
            if peer is None:
                channel = self._channel(member)
                worker = self._new_worker(member, channel)
                peer = Peer(member.province, member.node_id, channel, worker)
                self._peers[member.province] = peer
                peer.tasks = [
                    self._start(f"deliver-{member.province}", worker.run),
                    self._start(f"heartbeat-{member.province}", self._heartbeat(peer)),
                ]
            elif peer.channel.endpoints != member.endpoints:
                old = peer.channel
                peer.channel = self._channel(member)
                peer.worker.use_channel(peer.channel)
                # Calls already on the old channel finish or time out first: closing it
                # under them would cancel the worker or heartbeat awaiting them.
                self._start(
                    f"retire-channel-{member.province}",
                    functools.partial(old.close, grace=CHANNEL_RETIRE_GRACE),
                )
                log.info("peer endpoint changed", extra={"peer": member.province})
        members = {m.province for m in manifest.members}
        for province in [p for p in self._peers if p not in members]:
            await self.disconnect(province)
            log.warning("peer left the federation", extra={"peer": province})

    async def disconnect(self, province: str) -> None:
        """Stop contacting a peer: its worker and heartbeat end, its channel closes."""
        await self._drop(self._peers.pop(province))

    async def close(self, bounded: Callable[[Awaitable[None], str], Awaitable[None]]) -> None:
        """Shutdown: end every peer's tasks and close its channel, each step within
        ``bounded`` (shutdown's time limit); the records stay for a last status."""
        for peer in self._peers.values():
            await bounded(self._drop(peer), f"closing {peer.province}")

    async def _drop(self, peer: Peer) -> None:
        await self._cancel(peer.tasks)
        await peer.channel.close()

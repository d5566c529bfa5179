"""The delivery worker of one peer (see the package docstring for the design)."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

from node.delivery.circuit import PeerLink
from node.delivery.config import DeliveryConfig
from node.delivery.retry import IDLE_TICK, DrainLoop, Sleep
from node.store import audit, outbox
from node.store.connection import Connection
from node.store.database import Database
from node.store.leases import LeaseClaim
from node.store.outbox import OutboxItem
from node.transport.errors import TransportError

log = logging.getLogger(__name__)

BATCH_TIMEOUT = 30.0
"""A batch with no complete answer after this long counts as a transport failure."""


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DECLINED = "declined"
    """The peer stored nothing but answered for good (a refused case action): settled."""
    PARKED = "parked"
    RETRY = "retry"


@dataclass(frozen=True)
class Settlement:
    """What a checked reply means for the row it answers."""

    outcome: Outcome
    reply: bytes
    """The signed reply envelope (kept as evidence); empty when the reply itself was bad."""
    code: str = ""
    reason: str = ""
    sent: bytes = b""
    """The message's Envelope as it went out, with its batch signature and proof: what the
    evidence log and the outbox keep once the reply is recorded."""


OnReply = Callable[[int, bytes, bytes, bytes], None]
"""Called with each reply's index in the batch, the reply, the message's envelope as sent,
and the statement of the reply frame the reply came in, as soon as that reply arrives."""


class BatchChannel(Protocol):
    @property
    def lanes(self) -> int:
        """How many lanes batches may go in side by side (one per endpoint of the peer)."""
        ...

    async def exchange_batch(
        self, envelopes: Sequence[bytes], *, timeout: float, on_reply: OnReply, lane: int = 0
    ) -> None: ...


class DeliveryObserver(Protocol):
    def delivered(self, item: OutboxItem, settlement: Settlement, now: float) -> None: ...

    def refused(self, item: OutboxItem, settlement: Settlement) -> None: ...


class DeliveryFailed(Exception):
    """This attempt did not settle the head of the queue; back off and try again."""


SettleReply = Callable[[bytes, OutboxItem, bytes], Settlement]
"""A reply, the row it answers, and its reply frame's statement (``check_reply``)."""
SettledHook = Callable[[Connection, OutboxItem, Settlement, float], None]
"""Runs inside the transaction that records a row's settlement (delivered, declined or
parked), so what the answer means for the row's business is stored with it."""
Clock = Callable[[], float]


class PeerWorker:
    def __init__(
        self,
        *,
        peer: str,
        peer_node_id: str,
        db: Database,
        channel: BatchChannel,
        settle: SettleReply,
        config: DeliveryConfig,
        clock: Clock,
        observer: DeliveryObserver,
        on_settled: SettledHook | None = None,
        sleep: Sleep | None = None,
        lease: LeaseClaim | None = None,
    ) -> None:
        self.link = PeerLink(peer)
        self._lease = lease
        """This peer's sender lease, where replicas share the store (None: always ours)."""
        self.peer_node_id = peer_node_id
        self._db = db
        self._channel = channel
        self._settle = settle
        self._config = config
        self._clock = clock
        self._observer = observer
        self._on_settled = on_settled
        self._parked_at = float("-inf")
        self._loop = DrainLoop(
            self.drain,
            retry_on=DeliveryFailed,
            initial=config.retry_initial_seconds,
            maximum=config.retry_max_seconds,
            on_backoff=self._backing_off,
            sleep=sleep,
        )

    def use_channel(self, channel: BatchChannel) -> None:
        """The peer moved (a new manifest): send the next batch through ``channel``."""
        self._channel = channel

    def notify(self) -> None:
        """New rows are in this peer's outbox."""
        self._loop.notify()

    def kick(self) -> None:
        """The peer is answering again (heartbeat): cut the current back-off short."""
        if self.link.trial():
            self._loop.kick()

    def _backing_off(self, error: BaseException | None, interval: float) -> None:
        self.link.failed(str(error), self._clock(), interval)
        log.warning(
            "delivery failed; backing off",
            extra={"peer": self.link.peer, "retry_in": round(interval, 3), "error": str(error)},
        )

    async def run(self) -> None:
        await self._loop.run()

    async def drain(self) -> None:
        """Send until this peer's queue is empty; raise DeliveryFailed to back off.

        A peer with several endpoints (replicas) gets its rows in as many lanes side by
        side (``outbox.Lane``: a case's messages all in one), each lane on its own endpoint
        while that one answers; the drain ends when every lane has, and fails with the first
        lane that failed.
        """
        channel = self._channel
        if channel.lanes == 1:
            await self._drain_lane(channel, None)
            return
        ended = await asyncio.gather(
            *(
                self._drain_lane(channel, outbox.Lane(index, channel.lanes))
                for index in range(channel.lanes)
            ),
            return_exceptions=True,
        )
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _drain_lane(self, channel: BatchChannel, lane: outbox.Lane | None) -> None:
        """Send one lane's rows (all of them when ``lane`` is None) until none is pending.

        Batch N's settlement commits while batch N+1 is on the wire: one batch in flight,
        one being recorded, commits in batch order. Rows still being recorded are left out
        of the next batch, since the store shows them pending until that commit.
        """
        recording: asyncio.Future[None] | None = None
        recording_seqs: frozenset[int] = frozenset()
        try:
            while True:
                if self._lease is not None and not await self._lease.hold():
                    return  # another replica sends to this peer; look again at the next tick
                await self._park_expired()
                batch = outbox.pending_batch(
                    self._db.reader(),
                    self.link.peer,
                    self._config.batch_size,
                    skip=recording_seqs,
                    lane=lane,
                )
                if not batch:
                    return
                self.link.trial()
                settlements = await self._exchange(
                    channel, batch, 0 if lane is None else lane.index
                )
                if recording is not None:
                    await recording
                at = self._clock()
                recording = self._db.submit(partial(self._record, batch, settlements, at))
                recording_seqs = frozenset(item.seq for item in batch)
                retry = [s for s in settlements if s.outcome is Outcome.RETRY]
                if retry:
                    raise DeliveryFailed(
                        f"{len(retry)} refused for now: {retry[0].code}: {retry[0].reason}"
                    )
                self.link.succeeded(at)
        finally:
            if recording is not None:
                await recording

    async def _park_expired(self) -> None:
        """Park rows past their age limit, at most once per IDLE_TICK of the clock."""
        now = self._clock()
        if now - self._parked_at < IDLE_TICK:
            return
        self._parked_at = now
        cutoff = now - self._config.dead_letter_after_seconds
        parked = await self._db.write(
            lambda c: outbox.dead_letter_expired(c, self.link.peer, older_than=cutoff, at=now)
        )
        if parked:
            log.error(
                "parked undelivered messages past their age limit",
                extra={"peer": self.link.peer, "count": parked},
            )

    async def _exchange(
        self, channel: BatchChannel, batch: list[OutboxItem], lane: int
    ) -> list[Settlement]:
        """Send a batch in ``lane``; check each reply as it arrives, while the peer works on
        the rest."""
        settlements: list[Settlement] = []

        def settle(index: int, reply: bytes, sent: bytes, statement: bytes) -> None:
            settlements.append(replace(self._settle(reply, batch[index], statement), sent=sent))

        try:
            await channel.exchange_batch(
                [item.envelope for item in batch],
                timeout=BATCH_TIMEOUT,
                on_reply=settle,
                lane=lane,
            )
        except TransportError as exc:
            at, detail = self._clock(), exc.detail
            seqs = [item.seq for item in batch]
            await self._db.write(lambda c: outbox.mark_failed_attempt(c, seqs, error=detail, at=at))
            raise DeliveryFailed(str(exc)) from exc
        return settlements

    def _observe(self, batch: list[OutboxItem], settlements: list[Settlement], at: float) -> None:
        """After the batch's settlement has committed: tell the observer (metrics, logs)."""
        for item, settlement in zip(batch, settlements, strict=True):
            if settlement.outcome is Outcome.DELIVERED:
                self._observer.delivered(item, settlement, at)
            else:
                self._observer.refused(item, settlement)

    def _record(
        self,
        batch: list[OutboxItem],
        settlements: list[Settlement],
        at: float,
        conn: Connection,
    ) -> None:
        # Only rows still pending are settled here: one that another replica settled while
        # this batch was out (it took the sender lease over from a holder that was paused or
        # slow) already has its evidence and its effects, which must not happen twice.
        pending = outbox.still_pending(conn, [item.seq for item in batch])
        answered = [
            (item, settlement)
            for item, settlement in zip(batch, settlements, strict=True)
            if item.seq in pending
        ]
        # Each answered message enters the evidence log as it was sent (its batch signature
        # and proof) with its reply, all in one statement; then what the replies settle is
        # recorded row by row.
        settled = [
            (item, settlement)
            for item, settlement in answered
            if settlement.reply and settlement.outcome is not Outcome.RETRY
        ]
        peer = self.link.peer
        audit.append_many(
            conn,
            [
                record
                for item, settlement in settled
                for record in (
                    audit.Record("sent", peer, item.message_id, "envelope", settlement.sent, at),
                    audit.Record("received", peer, item.message_id, "reply", settlement.reply, at),
                )
            ],
        )
        delivered: list[tuple[int, bytes, bytes]] = []
        for item, settlement in answered:
            if settlement.outcome in (Outcome.DELIVERED, Outcome.DECLINED):
                delivered.append((item.seq, settlement.reply, settlement.sent))
            elif settlement.outcome is Outcome.PARKED:
                outbox.dead_letter(
                    conn,
                    item.seq,
                    reason=f"{settlement.code}: {settlement.reason}",
                    at=at,
                    reply=settlement.reply,
                )
            else:
                outbox.mark_failed_attempt(
                    conn, [item.seq], error=f"{settlement.code}: {settlement.reason}", at=at
                )
            if self._on_settled is not None and settlement.outcome is not Outcome.RETRY:
                self._on_settled(conn, item, settlement, at)
        outbox.mark_delivered_batch(conn, self.link.peer, delivered, at=at)
        # Tied to the commit, not to whoever awaits it: observed even if drain() was
        # cancelled meanwhile, never if the transaction failed.
        self._db.after_commit(
            partial(self._observe, [i for i, _ in answered], [s for _, s in answered], at)
        )

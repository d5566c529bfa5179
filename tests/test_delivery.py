"""The delivery worker of one peer: a fake network edge, the real store, a fake clock and sleep.

Only the gRPC stream and the reply checks are faked; the outbox, its cursor and the audit log
are a real SQLite file, and back-off runs through tenacity with an injected ``sleep`` that
records each delay and moves the fake clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from node.delivery.circuit import CircuitState
from node.delivery.config import DeliveryConfig
from node.delivery.retry import Sleep
from node.delivery.worker import (
    DeliveryFailed,
    OnReply,
    Outcome,
    PeerWorker,
    Settlement,
)
from node.store import audit, outbox
from node.store.connection import StoreLocation
from node.store.database import Database
from node.store.outbox import OutboxItem
from node.transport.errors import PeerUnavailable
from tests.nodes import BUDGET, eventually

PEER = "jiangsu"
T0 = 1_767_225_600.0
DOWN = "UNAVAILABLE: failed to connect to all addresses"


class FakeClock:
    """Wall-clock time that moves only when a test (or the fake sleep) moves it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedChannel:
    """The peer's end of the stream: unreachable for the first ``failures`` batches, then it
    answers each envelope in order."""

    lanes = 1

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list[bytes]] = []
        """Every batch the worker tried to send, failed ones included, in order."""

    async def exchange_batch(
        self, envelopes: Sequence[bytes], *, timeout: float, on_reply: OnReply, lane: int = 0
    ) -> None:
        self.batches.append(list(envelopes))
        await asyncio.sleep(0)
        if self.failures > 0:
            self.failures -= 1
            raise PeerUnavailable(PEER, DOWN)
        for index, envelope in enumerate(envelopes):
            on_reply(index, b"answer:" + envelope, b"sent:" + envelope, b"statement")

    @property
    def sent_ids(self) -> list[list[str]]:
        return [[message_id_of(envelope) for envelope in batch] for batch in self.batches]


@dataclass
class ScriptedSettle:
    """Stands in for the reply checks: delivered with ``r-<id>`` unless scripted otherwise."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def __call__(self, reply: bytes, item: OutboxItem, statement: bytes) -> Settlement:
        assert reply == b"answer:" + item.envelope and statement == b"statement"
        outcome = self.outcomes.get(item.message_id, Outcome.DELIVERED)
        if outcome is Outcome.DELIVERED:
            return Settlement(Outcome.DELIVERED, reply=b"r-" + item.message_id.encode())
        if outcome is Outcome.PARKED:
            return Settlement(
                Outcome.PARKED,
                reply=b"fault-" + item.message_id.encode(),
                code="payload_not_allowed",
                reason="the manifest policy does not allow this sender to send probe",
            )
        return Settlement(
            Outcome.RETRY,
            reply=b"busy-" + item.message_id.encode(),
            code="unavailable",
            reason="the store is busy",
        )


@dataclass
class RecordingObserver:
    delivered_ids: list[str] = field(default_factory=list)
    refused_ids: list[tuple[str, Outcome]] = field(default_factory=list)

    def delivered(self, item: OutboxItem, settlement: Settlement, now: float) -> None:
        self.delivered_ids.append(item.message_id)

    def refused(self, item: OutboxItem, settlement: Settlement) -> None:
        self.refused_ids.append((item.message_id, settlement.outcome))


@dataclass(frozen=True)
class LinkSnapshot:
    delay: float
    circuit: CircuitState
    consecutive_failures: int
    retry_interval: float
    last_error: str


class RecordingSleep:
    """tenacity's sleep: records each back-off (and the link as it stood) and moves the fake
    clock by it instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.worker: PeerWorker | None = None
        self.taken: list[LinkSnapshot] = []

    @property
    def delays(self) -> list[float]:
        return [snap.delay for snap in self.taken]

    async def __call__(self, seconds: float) -> None:
        assert self.worker is not None
        link = self.worker.link
        self.taken.append(
            LinkSnapshot(
                seconds,
                link.circuit,
                link.consecutive_failures,
                link.retry_interval,
                link.last_error,
            )
        )
        self.clock.advance(seconds)
        await asyncio.sleep(0)


class GatedSleep:
    """A back-off that lasts until the test ends it, so the test can look at the link
    (and kick the worker) while the worker waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.sleeping = asyncio.Event()
        self.wake = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.sleeping.set()
        await self.wake.wait()
        self.wake.clear()
        self.sleeping.clear()


def envelope_for(message_id: str) -> bytes:
    return b"envelope:" + message_id.encode()


def message_id_of(envelope: bytes) -> str:
    return envelope.removeprefix(b"envelope:").decode()


async def enqueue(db: Database, *message_ids: str, created_at: float = T0) -> list[int]:
    def job(conn: sqlite3.Connection) -> list[int]:
        return [
            outbox.enqueue(
                conn,
                peer=PEER,
                message_id=message_id,
                payload_type="probe",
                envelope=envelope_for(message_id),
                digest=b"\x01" * 32,
                created_at=created_at,
            )
            for message_id in message_ids
        ]

    return await db.write(job)


def item(db: Database, message_id: str) -> OutboxItem:
    found = outbox.get(db.reader(), message_id)
    assert found is not None
    return found


def states(db: Database) -> dict[str, str]:
    return {i.message_id: i.state for i in outbox.list_items(db.reader(), peer=PEER)}


def audited_replies(db: Database) -> list[tuple[str, bytes]]:
    rows = db.reader().execute(
        "SELECT message_id, body FROM audit WHERE kind = 'reply' ORDER BY seq"
    )
    return [(str(message_id), bytes(body)) for message_id, body in rows]


def circuit(worker: PeerWorker) -> CircuitState:
    # Read through a call so that mypy does not pin the state from an earlier assert.
    return worker.link.circuit


@dataclass
class Rig:
    """One worker and everything around it; ``build`` makes a fresh worker over the store."""

    db: Database
    clock: FakeClock
    observer: RecordingObserver = field(default_factory=RecordingObserver)
    settle: ScriptedSettle = field(default_factory=ScriptedSettle)

    def build(
        self,
        channel: ScriptedChannel,
        config: DeliveryConfig,
        sleep: Sleep | None = None,
    ) -> PeerWorker:
        return PeerWorker(
            peer=PEER,
            peer_node_id="node-320000",
            db=self.db,
            channel=channel,
            settle=self.settle,
            config=config,
            clock=self.clock,
            observer=self.observer,
            sleep=sleep,
        )


@pytest.fixture
async def db(store_location: StoreLocation) -> AsyncIterator[Database]:
    store = await Database.open(store_location)
    yield store
    await store.close()


@pytest.fixture
def rig(db: Database) -> Rig:
    return Rig(db, FakeClock())


@contextlib.asynccontextmanager
async def running(worker: PeerWorker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run(), name="deliver-test")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(rig: Rig) -> None:
    """Each consecutive failure doubles the back-off plus up to one initial interval of
    jitter, capped at the maximum; recovery closes the circuit and clears the interval."""
    config = DeliveryConfig(retry_initial_seconds=0.5, retry_max_seconds=120.0)
    channel = ScriptedChannel(failures=12)
    sleep = RecordingSleep(rig.clock)
    worker = sleep.worker = rig.build(channel, config, sleep)
    await enqueue(rig.db, "m0", "m1")

    async with running(worker):
        await eventually(lambda: states(rig.db) == {"m0": "delivered", "m1": "delivered"})
        # Observed from the commit, on the loop, just after the store shows it.
        await eventually(lambda: rig.observer.delivered_ids == ["m0", "m1"])

    # tenacity's wait_exponential_jitter: min(initial * 2**n + uniform(0, jitter), max), for
    # the n-th retry counted from 0; jitter is set to the initial interval.
    assert len(sleep.delays) == 12
    for n, delay in enumerate(sleep.delays):
        floor = 0.5 * 2**n
        if floor >= 120.0:
            assert delay == 120.0, (n, delay)
        else:
            assert floor <= delay <= min(floor + 0.5, 120.0), (n, delay)
    assert sleep.delays[8:] == [120.0] * 4
    assert any(delay > 0.5 * 2**n for n, delay in enumerate(sleep.delays[:8])), "no jitter"
    for n, snap in enumerate(sleep.taken):
        assert snap.circuit is CircuitState.OPEN
        assert snap.consecutive_failures == n + 1
        assert snap.retry_interval == snap.delay
        assert DOWN in snap.last_error
    assert len(channel.batches) == 13
    assert worker.link.circuit is CircuitState.CLOSED
    assert worker.link.circuit.is_available()
    assert worker.link.retry_interval == 0.0
    assert worker.link.consecutive_failures == 0
    assert worker.link.last_success_at == rig.clock()
    assert rig.clock() == pytest.approx(T0 + sum(sleep.delays))
    assert item(rig.db, "m0").attempts == 12
    assert rig.observer.delivered_ids == ["m0", "m1"]


async def test_circuit_opens_on_failure_half_opens_on_kick_and_closes_on_success(
    rig: Rig,
) -> None:
    """A failed batch opens the circuit (not available), a heartbeat's kick half-opens it,
    and the trial batch that succeeds closes it."""
    channel = ScriptedChannel(failures=1)
    sleep = GatedSleep()
    worker = rig.build(channel, DeliveryConfig(), sleep)
    assert circuit(worker) is CircuitState.CLOSED
    worker.kick()
    assert circuit(worker) is CircuitState.CLOSED, "a kick leaves a closed circuit alone"
    await enqueue(rig.db, "m0")

    async with running(worker):
        async with asyncio.timeout(10):
            await sleep.sleeping.wait()
        link = worker.link
        assert circuit(worker) is CircuitState.OPEN
        assert not circuit(worker).is_available()
        assert link.consecutive_failures == 1
        assert link.last_error == f"{PEER}: {DOWN}"
        assert link.last_attempt_at == rig.clock()
        assert link.retry_interval == sleep.delays[0] > 0
        assert link.last_success_at is None

        worker.kick()
        assert circuit(worker) is CircuitState.HALF_OPEN
        assert circuit(worker).is_available()

        rig.clock.advance(1.0)
        sleep.wake.set()
        await eventually(lambda: states(rig.db) == {"m0": "delivered"})

    assert circuit(worker) is CircuitState.CLOSED
    assert link.consecutive_failures == 0
    assert link.retry_interval == 0.0
    assert link.last_success_at == rig.clock()
    assert sleep.delays == [sleep.delays[0]]
    assert len(channel.batches) == 2


async def test_kick_cuts_a_long_backoff_short(rig: Rig) -> None:
    """With the worker's own sleep, a kick ends an hour-long back-off at once and the
    backlog is delivered."""
    channel = ScriptedChannel(failures=1)
    worker = rig.build(
        channel, DeliveryConfig(retry_initial_seconds=3600.0, retry_max_seconds=7200.0)
    )
    await enqueue(rig.db, "m0", "m1")

    async with running(worker):
        await eventually(lambda: worker.link.circuit is CircuitState.OPEN)
        assert worker.link.retry_interval >= 3600.0
        worker.kick()
        await eventually(lambda: states(rig.db) == {"m0": "delivered", "m1": "delivered"})

    assert worker.link.circuit is CircuitState.CLOSED
    assert len(channel.batches) == 2


async def test_notify_wakes_an_idle_worker(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that has caught up sends a newly queued row as soon as it is notified."""
    # An idle tick far beyond the wait below: only the notification can wake the worker.
    monkeypatch.setattr("node.delivery.retry.IDLE_TICK", 10 * BUDGET)
    channel = ScriptedChannel()
    worker = rig.build(channel, DeliveryConfig())
    await enqueue(rig.db, "m0")

    async with running(worker):
        await eventually(lambda: states(rig.db) == {"m0": "delivered"})
        await enqueue(rig.db, "m1")
        worker.notify()
        await eventually(lambda: states(rig.db)["m1"] == "delivered")

    assert channel.sent_ids == [["m0"], ["m1"]]


async def test_batches_are_bounded_ordered_and_parked_rows_do_not_block(rig: Rig) -> None:
    """Rows go out in seq order in batches of at most batch_size, each row once; the cursor
    passes delivered rows and a parked one (its fault kept as evidence), and later rows are
    still delivered."""
    channel = ScriptedChannel()
    rig.settle.outcomes["m4"] = Outcome.PARKED
    worker = rig.build(channel, DeliveryConfig(batch_size=3))
    ids = [f"m{i}" for i in range(8)]
    seqs = await enqueue(rig.db, *ids)
    cursors: list[int] = []
    original = channel.exchange_batch

    async def exchange_batch(
        envelopes: Sequence[bytes], *, timeout: float, on_reply: OnReply, lane: int = 0
    ) -> None:
        cursors.append(outbox.cursor(rig.db.reader(), PEER))
        await original(envelopes, timeout=timeout, on_reply=on_reply)

    channel.exchange_batch = exchange_batch  # type: ignore[method-assign]

    await worker.drain()

    assert channel.sent_ids == [["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6", "m7"]]
    # Batch N's settlement commits while batch N+1 is on the wire, so before batch N+2 goes
    # out the cursor has passed at least batch N.
    assert cursors[0] == 0
    assert cursors[1] in (0, seqs[2])
    assert cursors[2] >= seqs[2]
    assert outbox.cursor(rig.db.reader(), PEER) == seqs[-1]
    assert states(rig.db) == {i: "dead" if i == "m4" else "delivered" for i in ids}
    parked = item(rig.db, "m4")
    assert parked.reply == b"fault-m4"
    assert parked.last_error.startswith("payload_not_allowed: the manifest policy")
    assert parked.dead_at == rig.clock()
    assert item(rig.db, "m5").reply == b"r-m5"
    assert rig.observer.delivered_ids == [i for i in ids if i != "m4"]
    assert rig.observer.refused_ids == [("m4", Outcome.PARKED)]
    assert audited_replies(rig.db) == [
        (i, b"fault-m4" if i == "m4" else b"r-" + i.encode()) for i in ids
    ]
    assert worker.link.circuit is CircuitState.CLOSED


async def test_a_retry_settlement_keeps_the_row_pending_and_fails_the_attempt(rig: Rig) -> None:
    """A transient refusal leaves its row pending with one more attempt (and the cursor below
    it) and raises DeliveryFailed; the next drain sends only that row."""
    channel = ScriptedChannel()
    rig.settle.outcomes["m1"] = Outcome.RETRY
    worker = rig.build(channel, DeliveryConfig(batch_size=4))
    seqs = await enqueue(rig.db, "m0", "m1", "m2", "m3")

    with pytest.raises(DeliveryFailed, match="1 refused for now: unavailable: the store is busy"):
        await worker.drain()

    assert states(rig.db) == {
        "m0": "delivered",
        "m1": "pending",
        "m2": "delivered",
        "m3": "delivered",
    }
    retried = item(rig.db, "m1")
    assert (retried.attempts, retried.last_error, retried.last_attempt_at) == (
        1,
        "unavailable: the store is busy",
        rig.clock(),
    )
    assert retried.reply is None
    assert outbox.cursor(rig.db.reader(), PEER) == seqs[0]
    assert "m1" not in [message_id for message_id, _ in audited_replies(rig.db)]
    assert rig.observer.refused_ids == [("m1", Outcome.RETRY)]

    del rig.settle.outcomes["m1"]
    await worker.drain()

    assert channel.sent_ids == [["m0", "m1", "m2", "m3"], ["m1"]]
    assert item(rig.db, "m1").state == "delivered"
    assert outbox.cursor(rig.db.reader(), PEER) == seqs[-1]


async def test_restarted_worker_catches_up_from_the_persisted_cursor(
    rig: Rig, tmp_path: Path
) -> None:
    """After a restart a fresh worker over the same store sends only what is still pending,
    starting after the persisted cursor, and skips rows already settled above it."""
    rig.settle.outcomes["m1"] = Outcome.RETRY
    first = ScriptedChannel()
    worker = rig.build(first, DeliveryConfig(batch_size=4))
    ids = [f"m{i}" for i in range(10)]
    seqs = await enqueue(rig.db, *ids)
    with pytest.raises(DeliveryFailed):
        await worker.drain()
    assert first.sent_ids == [["m0", "m1", "m2", "m3"]]
    assert outbox.cursor(rig.db.reader(), PEER) == seqs[0]
    await rig.db.close()

    reopened = await Database.open(rig.db.location)
    try:
        restarted = Rig(reopened, rig.clock)
        assert outbox.cursor(reopened.reader(), PEER) == seqs[0]
        second = ScriptedChannel()
        await restarted.build(second, DeliveryConfig(batch_size=4)).drain()

        assert second.sent_ids == [["m1", "m4", "m5", "m6"], ["m7", "m8", "m9"]]
        assert restarted.observer.delivered_ids == ["m1", *ids[4:]]
        assert states(reopened) == dict.fromkeys(ids, "delivered")
        assert outbox.cursor(reopened.reader(), PEER) == seqs[-1]
    finally:
        await reopened.close()


async def park_expired(rig: Rig) -> tuple[ScriptedChannel, PeerWorker, list[int]]:
    """Two rows older than the hour-long age limit and one younger; drain once."""
    channel = ScriptedChannel()
    worker = rig.build(channel, DeliveryConfig(dead_letter_after_seconds=3600.0))
    old = await enqueue(rig.db, "old0", "old1", created_at=T0)
    await enqueue(rig.db, "fresh", created_at=T0 + 3000.0)
    rig.clock.advance(3601.0)
    await worker.drain()
    return channel, worker, old


async def test_rows_past_their_age_limit_are_parked_without_being_sent(rig: Rig) -> None:
    """Rows pending longer than dead_letter_after_seconds are parked unsent, with the reason
    and time, and the cursor passes them; a younger row is still delivered."""
    channel, _, old = await park_expired(rig)

    assert channel.sent_ids == [["fresh"]]
    assert states(rig.db) == {"old0": "dead", "old1": "dead", "fresh": "delivered"}
    for message_id in ("old0", "old1"):
        parked = item(rig.db, message_id)
        assert (parked.last_error, parked.dead_at, parked.reply) == (
            outbox.EXPIRED_REASON,
            rig.clock(),
            None,
        )
    assert outbox.dead_count(rig.db.reader(), PEER) == 2
    assert outbox.cursor(rig.db.reader(), PEER) == old[-1] + 1


async def test_retried_expired_rows_are_delivered(rig: Rig) -> None:
    """outbox.retry puts rows parked for age back in line and the worker then delivers them."""
    channel, worker, old = await park_expired(rig)

    rig.clock.advance(60.0)
    assert await rig.db.write(lambda c: outbox.retry(c, peer=PEER, at=rig.clock())) == old
    assert states(rig.db)["old0"] == "pending"
    await worker.drain()

    assert channel.sent_ids == [["fresh"], ["old0", "old1"]]
    assert states(rig.db) == {"old0": "delivered", "old1": "delivered", "fresh": "delivered"}
    assert outbox.dead_count(rig.db.reader(), PEER) == 0


async def test_transport_failure_counts_an_attempt_on_every_row_of_the_batch(rig: Rig) -> None:
    """An unreachable peer fails the whole batch: each of its rows stays pending with one more
    attempt and the transport's error, rows outside the batch are untouched."""
    channel = ScriptedChannel(failures=1)
    worker = rig.build(channel, DeliveryConfig(batch_size=3))
    ids = [f"m{i}" for i in range(5)]
    await enqueue(rig.db, *ids)

    with pytest.raises(DeliveryFailed, match=DOWN):
        await worker.drain()

    assert channel.sent_ids == [["m0", "m1", "m2"]]
    assert states(rig.db) == dict.fromkeys(ids, "pending")
    for message_id in ("m0", "m1", "m2"):
        row = item(rig.db, message_id)
        assert (row.attempts, row.last_error, row.last_attempt_at) == (1, DOWN, rig.clock())
    for message_id in ("m3", "m4"):
        row = item(rig.db, message_id)
        assert (row.attempts, row.last_error, row.last_attempt_at) == (0, "", None)
    assert outbox.cursor(rig.db.reader(), PEER) == 0
    assert rig.observer.delivered_ids == []
    assert audited_replies(rig.db) == []


async def test_a_worker_cancelled_while_recording_still_commits_and_reports(rig: Rig) -> None:
    """Stopping the node cancels the worker; a batch whose receipts it was recording at that
    moment is still recorded (a queued write runs even if nobody waits for it), and the
    observer (metrics) hears of it from the commit, not from the abandoned wait."""
    answered = asyncio.Event()

    class AnsweringChannel(ScriptedChannel):
        async def exchange_batch(
            self, envelopes: Sequence[bytes], *, timeout: float, on_reply: OnReply, lane: int = 0
        ) -> None:
            await super().exchange_batch(envelopes, timeout=timeout, on_reply=on_reply)
            answered.set()

    worker = rig.build(AnsweringChannel(), DeliveryConfig())
    await enqueue(rig.db, "m0", "m1")
    task = asyncio.create_task(worker.run())
    await answered.wait()
    # The worker has just queued the batch's recording and awaits its commit.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await eventually(lambda: states(rig.db) == {"m0": "delivered", "m1": "delivered"})
    await eventually(lambda: rig.observer.delivered_ids == ["m0", "m1"])


async def test_a_row_another_replica_settled_meanwhile_is_not_settled_twice(rig: Rig) -> None:
    """While this worker's batch is out, another replica (which took the sender lease over
    from this one, paused) delivers m1 and records its evidence: when this worker's replies
    come back, m1 keeps the other's settlement, evidence and effects, each once; the other
    rows are settled here."""
    channel = ScriptedChannel()
    worker = rig.build(channel, DeliveryConfig(batch_size=3))
    [_, seq1, _] = await enqueue(rig.db, "m0", "m1", "m2")
    original = channel.exchange_batch

    def settled_elsewhere(conn: sqlite3.Connection) -> None:
        audit.append_many(
            conn,
            [
                audit.Record("sent", PEER, "m1", "envelope", b"sent-by-the-other", T0),
                audit.Record("received", PEER, "m1", "reply", b"r-m1-other", T0),
            ],
        )
        outbox.mark_delivered_batch(conn, PEER, [(seq1, b"r-m1-other", b"")], at=T0)

    async def exchange_batch(
        envelopes: Sequence[bytes], *, timeout: float, on_reply: OnReply, lane: int = 0
    ) -> None:
        await rig.db.write(settled_elsewhere)
        await original(envelopes, timeout=timeout, on_reply=on_reply)

    channel.exchange_batch = exchange_batch  # type: ignore[method-assign]
    await worker.drain()

    assert channel.sent_ids == [["m0", "m1", "m2"]]
    assert states(rig.db) == {"m0": "delivered", "m1": "delivered", "m2": "delivered"}
    assert item(rig.db, "m1").reply == b"r-m1-other"
    assert sorted(audited_replies(rig.db)) == [
        ("m0", b"r-m0"), ("m1", b"r-m1-other"), ("m2", b"r-m2")
    ]  # fmt: skip
    assert rig.observer.delivered_ids == ["m0", "m2"]

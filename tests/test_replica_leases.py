"""Replicas sharing one store, on each backend: two ``Database`` objects on one SQLite file
or one PostgreSQL database stand for two node processes. Leases give each job one replica
(one sender per peer, one platform reader), a lapsed lease is taken over and the work resumes
from the store, the same inbound message or platform event is stored once however many
replicas take it at once, and the evidence log stays one chain. Time is a fake clock."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from monitoring.metrics import NodeMetrics
from node.cli.main import main
from node.delivery.config import DeliveryConfig
from node.delivery.worker import PeerWorker
from node.platform.adapter import Page, PlatformEvent
from node.platform.config import PlatformConfig
from node.platform.link import PlatformLink
from node.runtime.config import ConfigError, load_config
from node.store import audit, cases, inbox, leases, log_tree
from node.store import platform as platform_store
from node.store.connection import Connection, PostgresUrl, StoreLocation
from node.store.database import Database, StoreUnavailable
from node.store.leases import Lease, LeaseClaim, LeaseConfig, LeaseNotHeld, Takeover
from node.store.postgres import WRITE_LOCK, WRITE_LOCK_TIMEOUT
from tests.federation import make_federation
from tests.nodes import BUDGET, eventually, make_mesh
from tests.test_delivery import (
    PEER,
    FakeClock,
    RecordingObserver,
    ScriptedChannel,
    ScriptedSettle,
    enqueue,
    states,
)
from tests.test_store_backends import wait_for_lock_waiter

T0 = 1_767_225_600.0
LEASES = LeaseConfig(duration_seconds=15.0, renew_seconds=5.0)
A, B = "node-310000/1-aaaa", "node-310000/2-bbbb"


@pytest.fixture
async def replicas(store_location: StoreLocation) -> AsyncIterator[tuple[Database, Database]]:
    """Two replicas' stores: one store, opened twice."""
    first = await Database.open(store_location)
    second = await Database.open(store_location)
    yield first, second
    await first.close()
    await second.close()


def claim(db: Database, name: str, owner: str, clock: FakeClock) -> LeaseClaim:
    """``owner``'s hold on the lease ``name`` through ``db``, with the test's leases."""
    return LeaseClaim(lambda: db, name, owner, clock=clock, config=LEASES)


def taking(name: str, owner: str, now: float) -> Callable[[Connection], Lease | None]:
    return lambda conn: leases.take(conn, name, owner, now=now, duration=15.0)


# -- the lease rows ---------------------------------------------------------------------------


async def test_of_two_replicas_taking_leases_at_once_each_lease_gets_one_holder(
    replicas: tuple[Database, Database],
) -> None:
    """Both replicas take the same 20 leases at the same moment: every lease has exactly one
    holder, and what each replica was told agrees with the store."""
    first, second = replicas
    names = [leases.outbox_lease(f"peer-{i}") for i in range(20)]
    told = await asyncio.gather(
        *(first.write(taking(name, A, T0)) for name in names),
        *(second.write(taking(name, B, T0)) for name in names),
    )
    stored = {lease.name: lease for lease in leases.all_leases(first.reader())}
    assert sorted(stored) == sorted(names)
    for name, by_a, by_b in zip(names, told[:20], told[20:], strict=True):
        holder = stored[name].owner
        assert holder in (A, B)
        mine = by_a if holder == A else by_b
        theirs = by_b if holder == A else by_a
        assert mine is not None and mine.held_by(holder, T0)
        # The other was told who holds it, or (its row busy, PostgreSQL) nothing.
        assert theirs is None or theirs.owner == holder


async def test_a_renewal_by_a_non_holder_is_refused_and_changes_nothing(
    replicas: tuple[Database, Database],
) -> None:
    """Renewing a lease held by another replica, or a lease never taken, is LeaseNotHeld
    naming the holder; the row is as it was. Nor does ``take`` move another's live lease."""
    first, second = replicas
    name = leases.PLATFORM_POLL
    await first.write(taking(name, A, T0))
    before = leases.current(first.reader(), name)
    with pytest.raises(LeaseNotHeld, match=f"held by {A}"):
        await second.write(lambda c: leases.renew(c, name, B, now=T0 + 1, duration=15.0))
    with pytest.raises(LeaseNotHeld, match="held by nobody"):
        await second.write(lambda c: leases.renew(c, "never-taken", B, now=T0, duration=15.0))
    assert await second.write(taking(name, B, T0 + 14.9)) == before
    assert not await second.write(lambda c: leases.release(c, name, B, now=T0 + 2))
    assert leases.current(second.reader(), name) == before
    assert leases.current(second.reader(), "never-taken") is None


@pytest.mark.slow
async def test_a_lease_row_another_replica_is_writing_is_skipped_not_waited_for(
    postgres_url: str,
) -> None:
    """PostgreSQL: while another replica's transaction holds a lease row, ``take`` returns
    None at once (SKIP LOCKED) instead of stalling this replica's one writer; once that
    transaction ends it answers as usual."""
    db = await Database.open(PostgresUrl(postgres_url))
    try:
        await db.write(taking("job", A, T0))
        with psycopg.connect(postgres_url) as other:  # a transaction, as a replica's batch
            other.execute("SELECT 1 FROM leases WHERE name = 'job' FOR UPDATE")
            # Waiting for the lock would wait for good: this transaction ends only after.
            async with asyncio.timeout(BUDGET / 4):
                assert await db.write(taking("job", B, T0 + 60)) is None
        taken = await db.write(taking("job", B, T0 + 60))
        assert taken is not None and taken.owner == B
    finally:
        await db.close()


async def test_a_lease_without_a_name_owner_or_time_is_refused(
    replicas: tuple[Database, Database],
) -> None:
    """Bad arguments are ValueErrors naming what is wrong; nothing is written."""
    first, _ = replicas
    with pytest.raises(ValueError, match="a name and an owner"):
        await first.write(lambda c: leases.take(c, "", A, now=T0, duration=15.0))
    with pytest.raises(ValueError, match="duration must be more than 0"):
        await first.write(lambda c: leases.take(c, "x", A, now=T0, duration=0.0))
    assert leases.all_leases(first.reader()) == []


async def test_a_lapsed_lease_is_taken_over_and_its_old_holder_told_so(
    replicas: tuple[Database, Database],
) -> None:
    """A holds the lease; B cannot take it while it lives, takes it the moment it lapses, and
    A's late renewal is refused. Renewals by the holder keep the time it was acquired."""
    first, second = replicas
    name = leases.outbox_lease(PEER)
    await first.write(taking(name, A, T0))
    renewed = await first.write(lambda c: leases.renew(c, name, A, now=T0 + 5, duration=15.0))
    assert (renewed.expires_at, renewed.acquired_at) == (T0 + 20, T0)
    held = await second.write(taking(name, B, T0 + 19.9))
    assert held is not None and held.owner == A
    taken = await second.write(taking(name, B, T0 + 20))
    assert taken == Lease(name, B, T0 + 35, T0 + 20)
    with pytest.raises(LeaseNotHeld, match=f"held by {B}"):
        await first.write(lambda c: leases.renew(c, name, A, now=T0 + 21, duration=15.0))
    assert leases.current(first.reader(), name) == taken


async def test_a_released_lease_is_free_at_once(replicas: tuple[Database, Database]) -> None:
    """A replica stopping releases its leases; another takes them without waiting."""
    first, second = replicas
    for name in (leases.PLATFORM_POLL, leases.PLATFORM_DELIVERY):
        await first.write(taking(name, A, T0))
    assert await first.write(lambda c: leases.release_all(c, A, now=T0 + 1)) == 2
    taken = await second.write(taking(leases.PLATFORM_POLL, B, T0 + 1))
    assert taken is not None and taken.owner == B


async def test_a_claim_writes_only_when_a_renewal_is_due(
    replicas: tuple[Database, Database],
) -> None:
    """``LeaseClaim.hold`` answers from memory between renewals and renews every
    ``renew_seconds``; a replica that does not hold the lease looks again as often, or when
    the holder's lease would lapse if that is sooner."""
    first, second = replicas
    clock = FakeClock(T0)
    mine, theirs = claim(first, "job", A, clock), claim(second, "job", B, clock)
    assert await mine.hold() and mine.held
    assert not await theirs.hold()
    clock.advance(4.9)
    commits = first.commits
    assert await mine.hold()
    assert first.commits == commits  # not due yet: no write
    clock.advance(0.2)
    assert await mine.hold()
    assert first.commits == commits + 1
    lease = leases.current(first.reader(), "job")
    assert lease is not None and lease.expires_at == pytest.approx(T0 + 5.1 + 15)
    # B last asked at T0: it asks again at T0 + 5.1, not before its renewal interval is up.
    commits = second.commits
    assert not await theirs.hold()
    assert second.commits == commits + 1
    clock.advance(4.9)
    assert not await theirs.hold()
    assert second.commits == commits + 1
    # A stops and releases the lease: B sees it at its next look and takes it.
    await first.write(lambda c: leases.release_all(c, A, now=clock()))
    clock.advance(0.2)
    assert await theirs.hold()
    assert not await mine.hold()


def takeovers(metrics: NodeMetrics, name: str, cause: str) -> tuple[float, float]:
    """How many takeovers of ``name`` by ``cause`` the replica counted, and their delays' sum."""
    labels = {"lease": name, "cause": cause}
    sample = metrics.registry.get_sample_value
    return (
        sample("yrd_lease_takeovers_total", labels) or 0.0,
        sample("yrd_lease_takeover_delay_seconds_sum", labels) or 0.0,
    )


async def test_a_takeover_is_logged_and_counted_with_its_delay(
    replicas: tuple[Database, Database], caplog: pytest.LogCaptureFixture
) -> None:
    """B takes A's lapsed lease 1.5 s after it lapsed: a warning naming the lease, A, the
    cause and the delay since A's last renewal (the lease's 15 s and the 1.5 s), one count
    and that delay in the metrics (a lease released to A was told at info). A lease handed
    over by a stopping replica is counted as released, its delay the time since the release.
    Taking a lease nobody held, or one's own again, is no takeover."""
    first, second = replicas
    clock = FakeClock(T0)
    metrics = NodeMetrics()
    name = leases.outbox_lease(PEER)
    mine = claim(first, name, A, clock)
    theirs = LeaseClaim(lambda: second, name, B, clock=clock, config=LEASES, metrics=metrics)
    with caplog.at_level(logging.INFO, logger="node.store.leases"):
        assert await theirs.hold()  # never held: taken, no takeover
        clock.advance(15.0 + 5.0)
        assert await theirs.hold()  # its own lapsed lease, taken again
        assert caplog.records == []
        await second.write(lambda c: leases.release_all(c, B, now=clock()))
        assert await mine.hold()
        clock.advance(LEASES.renew_seconds)
        assert await mine.hold()  # renewed at T0 + 25: lapses at T0 + 40
        clock.advance(15.0 + 1.5)
        assert await theirs.hold()
    assert takeovers(metrics, name, "lapsed") == (1.0, pytest.approx(16.5))
    assert [
        (r.levelname, r.getMessage(), r.lease, r.owner, r.previous, r.cause)  # type: ignore[attr-defined]
        for r in caplog.records
    ] == [
        ("INFO", "lease taken over", name, A, B, "released"),
        ("WARNING", "lease taken over", name, B, A, "lapsed"),
    ]
    said = caplog.records[1].__dict__
    assert (said["free_seconds"], said["delay_seconds"]) == (1.5, 16.5)

    # B stops and hands the lease over; a claim of A's that counts sees a released lease.
    counting = LeaseClaim(lambda: first, name, A, clock=clock, config=LEASES, metrics=metrics)
    await second.write(lambda c: leases.release_all(c, B, now=clock()))
    released = leases.current(first.reader(), name)
    assert released is not None and released.released and released.owner == B
    clock.advance(0.75)
    assert await counting.hold()
    assert takeovers(metrics, name, "released") == (1.0, pytest.approx(0.75))
    assert takeovers(metrics, name, "lapsed")[0] == 1.0


def test_a_takeover_delay_is_since_the_last_renewal_or_the_release() -> None:
    """A lapsed lease's takeover delay is its lease's duration plus the time it was free;
    a released one's, the time since the release. A lease taken before it lapsed (clocks
    apart) is free for no time, not less."""
    lapsed = Lease("job", A, expires_at=T0 + 15, acquired_at=T0 - 60)
    assert lapsed.released is False
    assert Takeover.of(lapsed, now=T0 + 17, duration=15) == Takeover("job", A, "lapsed", 2.0, 17.0)
    assert Takeover.of(lapsed, now=T0 + 14, duration=15).free_seconds == 0.0
    released = Lease("job", A, expires_at=T0 + 3, acquired_at=T0 + 3)
    assert released.released is True
    assert Takeover.of(released, now=T0 + 4, duration=15) == Takeover(
        "job", A, "released", 1.0, 1.0
    )


def test_a_lease_config_that_lapses_before_its_renewal_is_refused(tmp_path: Path) -> None:
    """``[leases]`` with a renewal no shorter than the lease is a ConfigError naming both;
    without the section the defaults hold."""
    config = make_mesh(tmp_path) / "shanghai" / "node.toml"
    text = re.sub(r"\n\[leases\]\n(?:.+\n)*", "\n", config.read_text())
    assert "[leases]" not in text and "[peer_limits]" in text
    config.write_text(text)
    assert load_config(config, {}).leases == LeaseConfig(15.0, 5.0)
    for lines, refusal in (
        ("duration_seconds = 5.0\nrenew_seconds = 5.0\n", "'duration_seconds' .* must be more"),
        ("renew_seconds = 0.0\n", "'renew_seconds' must be more than 0"),
        ("duration_seconds = 5.0\nrenew_seconds = 1.0\n", "more than 5.0 s, the idle tick"),
    ):
        config.write_text(text + "\n[leases]\n" + lines)
        with pytest.raises(ConfigError, match=refusal):
            load_config(config, {})


# -- one sender per peer ----------------------------------------------------------------------


@dataclass
class Replica:
    db: Database
    owner: str
    clock: FakeClock
    channel: ScriptedChannel = field(default_factory=ScriptedChannel)

    def worker(self) -> PeerWorker:
        return PeerWorker(
            peer=PEER,
            peer_node_id="node-320000",
            db=self.db,
            channel=self.channel,
            settle=ScriptedSettle(),
            config=DeliveryConfig(batch_size=4),
            clock=self.clock,
            observer=RecordingObserver(),
            lease=claim(self.db, leases.outbox_lease(PEER), self.owner, self.clock),
        )


async def test_only_the_sender_lease_holder_sends_and_a_dead_ones_rows_are_taken_over(
    replicas: tuple[Database, Database],
) -> None:
    """Both replicas run a worker for the peer: only the lease holder sends. The holder dies
    with a batch unanswered; the other sends nothing while the dead one's lease lives, then
    takes it over and sends every row still pending, the unanswered ones again, in seq
    order, so each case's updates keep their order."""
    clock = FakeClock(T0)
    a = Replica(replicas[0], A, clock, ScriptedChannel(failures=1))
    b = Replica(replicas[1], B, clock)
    await enqueue(a.db, "m0", "m1", "m2")
    await enqueue(b.db, "m3", "m4", "m5")
    worker_a, worker_b = a.worker(), b.worker()

    with pytest.raises(Exception, match="UNAVAILABLE"):
        await worker_a.drain()  # took the lease; its first batch is lost on the wire
    assert a.channel.sent_ids == [["m0", "m1", "m2", "m3"]]
    await worker_b.drain()
    assert b.channel.sent_ids == []  # A holds the lease
    # A dies here. Until its lease lapses B still sends nothing.
    clock.advance(14.9)
    await worker_b.drain()
    assert b.channel.sent_ids == []
    clock.advance(0.2)
    await worker_b.drain()
    assert b.channel.sent_ids == [["m0", "m1", "m2", "m3"], ["m4", "m5"]]
    assert set(states(b.db).values()) == {"delivered"}
    held = leases.current(b.db.reader(), leases.outbox_lease(PEER))
    assert held is not None and held.owner == B
    # Back from the dead, A finds the lease gone and sends nothing more.
    await enqueue(a.db, "m6")
    await worker_a.drain()
    assert a.channel.sent_ids == [["m0", "m1", "m2", "m3"]]


async def test_the_holder_keeps_sending_while_it_renews(
    replicas: tuple[Database, Database],
) -> None:
    """A holder that works past its lease's first span renews it and goes on; the other
    replica never gets a turn while it does."""
    clock = FakeClock(T0)
    a, b = Replica(replicas[0], A, clock), Replica(replicas[1], B, clock)
    worker_a, worker_b = a.worker(), b.worker()
    for step in range(8):
        await enqueue(a.db, f"m{step}")
        await worker_a.drain()
        await worker_b.drain()
        clock.advance(4.0)
    assert [ids for batch in a.channel.sent_ids for ids in batch] == [f"m{i}" for i in range(8)]
    assert b.channel.sent_ids == []


# -- the platform, read by one replica --------------------------------------------------------


class CountingAdapter:
    """A platform with one event in its feed, counting the polls it is asked."""

    def __init__(self, event: PlatformEvent) -> None:
        self.event = event
        self.polls = 0

    async def poll_applications(self, cursor: str | None) -> Page:
        self.polls += 1
        return Page([], cursor)

    async def poll_events(self, cursor: str | None) -> Page:
        self.polls += 1
        return Page([] if cursor else [self.event], "1")


@dataclass
class AppliedOnce:
    """Stands in for ``CaseExchange.act``: claims the platform event as the real one does and
    counts the effects it applied."""

    db: Database
    applied: list[str] = field(default_factory=list)

    async def submit(self, body: Any, *, idempotency_key: str | None = None) -> Any:
        raise AssertionError("no applications in this feed")

    async def act(self, case_id: str, body: Any, *, platform_event: str | None = None) -> Any:
        assert platform_event is not None

        def change(conn: Connection) -> bool:
            return platform_store.record_event(
                conn, event_id=platform_event, case_id=case_id, outcome="applied", at=T0
            )

        if await self.db.write(change):
            self.applied.append(platform_event)
        return None, None


class NullCounter:
    def labels(self, *values: str) -> NullCounter:
        return self

    def inc(self, amount: float = 1) -> None:
        pass


async def test_the_platform_is_polled_by_one_replica_and_an_event_applied_once(
    replicas: tuple[Database, Database],
) -> None:
    """Two replicas' platform links poll in turn: only the poll lease's holder reads the
    platform (and tells of its health). The other reads the same event all the same after a
    takeover (the holder died before saving its cursor): the event applies once."""
    clock = FakeClock(T0)
    event = PlatformEvent("evt-1", "case-1", {"action": "accept"})
    links = []
    for db, owner in zip(replicas, (A, B), strict=True):
        adapter = CountingAdapter(event)
        desk = AppliedOnce(db)
        link = PlatformLink(
            adapter,  # type: ignore[arg-type]
            PlatformConfig(
                adapter="shanghai", url="http://platform.invalid", poll_interval_seconds=0.01
            ),
            province="shanghai",
            db=lambda db=db: db,  # type: ignore[misc]
            clock=clock,
            cases=desk,
            refused_records=NullCounter(),  # type: ignore[arg-type]
            poll_lease=claim(db, leases.PLATFORM_POLL, owner, clock),
            delivery_lease=claim(db, leases.PLATFORM_DELIVERY, owner, clock),
        )
        links.append((link, adapter, desk))
    (link_a, adapter_a, desk_a), (link_b, adapter_b, desk_b) = links

    async def poll_round(link: PlatformLink) -> None:
        """Run the link's poll loop until it has been round twice (asked its lease twice)."""
        claim = link._poll_lease
        assert claim is not None
        asked = 0
        hold = claim.hold

        async def counted() -> bool:
            nonlocal asked
            asked += 1
            return await hold()

        claim.hold = counted  # type: ignore[method-assign]
        task = asyncio.create_task(link.run_polls())
        try:
            await eventually(lambda: asked >= 2)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            claim.hold = hold  # type: ignore[method-assign]

    await poll_round(link_a)
    await poll_round(link_b)
    assert adapter_a.polls > 0 and adapter_b.polls == 0
    assert desk_a.applied == ["evt-1"]
    # Only the reader tells of the platform's health (yrd_platform_up).
    assert link_a.talks_to_platform and not link_b.talks_to_platform
    # A dies with the event applied but (say) its cursor unsaved: B takes over once the
    # lease lapses, reads the same event, and does not apply it again.
    await replicas[0].write(
        lambda c: c.execute("DELETE FROM platform_cursors WHERE feed = 'events'")
    )
    clock.advance(15.1)
    await poll_round(link_b)
    assert adapter_b.polls > 0
    assert desk_b.applied == []
    assert platform_store.deferred_events(replicas[1].reader()) == []


async def test_a_platform_event_taken_at_two_replicas_at_once_is_recorded_once(
    replicas: tuple[Database, Database],
) -> None:
    """The event's claim is its insert: of many replicas' writes of the same events at
    once, exactly one per event is told it took it."""
    first, second = replicas

    def claim(event_id: str) -> Callable[[Connection], bool]:
        return lambda conn: platform_store.record_event(
            conn, event_id=event_id, case_id="case-1", outcome="applied", at=T0
        )

    ids = [f"evt-{i}" for i in range(30)]
    told = await asyncio.gather(
        *(first.write(claim(i)) for i in ids), *(second.write(claim(i)) for i in ids)
    )
    assert [a + b for a, b in zip(told[:30], told[30:], strict=True)] == [1] * 30


# -- inbound messages and evidence ------------------------------------------------------------


async def test_the_same_inbound_messages_at_two_replicas_are_stored_once_with_one_reply(
    replicas: tuple[Database, Database],
) -> None:
    """Both replicas store the same 30 messages at once, each with a reply of its own:
    every message is stored once, and both replicas answer with the one reply stored."""
    first, second = replicas

    def receive(message_id: str, reply: bytes) -> Callable[[Connection], bytes]:
        def job(conn: Connection) -> bytes:
            prior = inbox.record_once(
                conn,
                sender="node-320000",
                message_id=message_id,
                digest=b"\x02" * 32,
                payload_type="case_update",
                envelope=b"envelope:" + message_id.encode(),
                reply=reply,
                received_at=T0,
            )
            return reply if prior is None else prior.reply

        return job

    ids = [f"m{i}" for i in range(30)]
    answered = await asyncio.gather(
        *(first.write(receive(i, b"from A " + i.encode())) for i in ids),
        *(second.write(receive(i, b"from B " + i.encode())) for i in ids),
    )
    assert answered[:30] == answered[30:]
    assert inbox.count(first.reader()) == 30
    for message_id, reply in zip(ids, answered[:30], strict=True):
        stored = inbox.prior(second.reader(), "node-320000", message_id)
        assert stored is not None and stored.reply == reply


async def test_two_replicas_appending_evidence_at_once_keep_one_chain_and_tree(
    replicas: tuple[Database, Database], capsys: pytest.CaptureFixture[str]
) -> None:
    """Both replicas append evidence at once, and one folds the log into the tree (as a
    replica starting does) meanwhile: one chain, every entry once, the tree over all of it;
    ``verify_chain`` and ``yrd audit verify`` pass."""
    first, second = replicas
    manifest = make_federation().signed()

    def entries(writer: str, i: int) -> Callable[[Connection], None]:
        records = [
            audit.Record("local", "", f"manifest-{writer}-{i}-{j}", "manifest", manifest, T0 + i)
            for j in range(3)
        ]
        return lambda conn: audit.append_many(conn, records)

    await asyncio.gather(
        *(first.write(entries("a", i)) for i in range(40)),
        *(second.write(entries("b", i)) for i in range(40)),
        *(second.write(log_tree.catch_up) for _ in range(5)),
    )
    report = audit.verify_chain(first.reader())
    assert (report.ok, report.entries) == (True, 240), report.reason
    assert log_tree.tree_size(second.reader()) == 240
    where = first.location
    capsys.readouterr()
    assert main(["audit", "verify", "--store", getattr(where, "url", str(where))]) == 0
    assert "240 entries" in capsys.readouterr().out


def case_row(case_id: str, key: str | None = None) -> cases.CaseRow:
    return cases.CaseRow(
        case_id=case_id,
        role="accepting",
        accepting="shanghai",
        handling="jiangsu",
        matter_code="m",
        mode="全程网办",
        promised_days=5,
        submission=b"submission",
        status="submitted",
        applied=0,
        due_at=None,
        submitted_at=T0,
        updated_at=T0,
        concluded_at=None,
        evaluation_level=None,
        problem="",
        idempotency_key=key,
        request_digest=b"\x03" * 32,
    )


async def test_one_idempotency_key_at_two_replicas_at_once_makes_one_case(
    replicas: tuple[Database, Database],
) -> None:
    """Both replicas store a new case under each of 20 Idempotency-Keys at once: each key
    holds one case, and exactly one of the two inserts was told it stored it."""
    first, second = replicas

    def new_case(key: str, replica: str) -> Callable[[Connection], bool]:
        row = case_row(f"310000-20260101-{replica}{key}", key)
        return lambda conn: cases.insert_case(conn, row)

    keys = [f"key-{i}" for i in range(20)]
    told = await asyncio.gather(
        *(first.write(new_case(k, "a")) for k in keys),
        *(second.write(new_case(k, "b")) for k in keys),
    )
    assert [a + b for a, b in zip(told[:20], told[20:], strict=True)] == [1] * 20
    for key, by_first in zip(keys, told[:20], strict=True):
        stored = cases.by_idempotency_key(second.reader(), key)
        assert stored is not None and stored.case_id.endswith(("a" if by_first else "b") + key)


async def test_two_replicas_changing_one_case_at_once_each_see_the_others_change(
    replicas: tuple[Database, Database],
) -> None:
    """Both replicas apply 20 updates to one case at once, each numbering its update from
    the case as it reads it for change: every number is given once, none read stale."""
    first, second = replicas
    await first.write(lambda conn: cases.insert_case(conn, case_row("case-1")))

    def next_update(conn: Connection) -> int:
        case = cases.get_for_change(conn, "case-1")
        assert case is not None
        conn.execute(
            "UPDATE cases SET applied = ? WHERE case_id = ?", (case.applied + 1, case.case_id)
        )
        return case.applied + 1

    numbers = await asyncio.gather(
        *(first.write(next_update) for _ in range(20)),
        *(second.write(next_update) for _ in range(20)),
    )
    assert sorted(numbers) == list(range(1, 41))


@pytest.mark.slow
async def test_replicas_write_transactions_take_turns(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a replica's batch waits for another's transaction to end even when their
    jobs touch unrelated rows (so their row locks can never cross and deadlock), and a
    transaction that holds the store too long (a frozen replica) makes the other's write
    fail as unavailable, nothing kept, rather than wait for good."""
    first = await Database.open(PostgresUrl(postgres_url))
    second = await Database.open(PostgresUrl(postgres_url))
    inside = threading.Event()
    order: list[str] = []

    def long_job(conn: Connection) -> None:
        inside.set()
        wait_for_lock_waiter(postgres_url)
        order.append("first")

    def other_rows(conn: Connection) -> None:
        order.append("second")
        conn.execute(
            "INSERT INTO catalogs (province, version, document, message_id, received_at) "
            "VALUES ('anhui', 1, '{}', 'm', 0)"
        )

    try:
        held = first.submit(long_job)
        await asyncio.to_thread(inside.wait, BUDGET)
        await asyncio.gather(held, second.write(other_rows))
        assert order == ["first", "second"]

        monkeypatch.setattr(
            type(second), "BEGIN", second.BEGIN.replace(WRITE_LOCK_TIMEOUT, "200ms")
        )
        with psycopg.connect(postgres_url) as frozen:
            frozen.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            with pytest.raises(StoreUnavailable):
                await second.write(lambda conn: leases.take(conn, "x", B, now=T0, duration=1.0))
        assert leases.current(second.reader(), "x") is None
    finally:
        await first.close()
        await second.close()

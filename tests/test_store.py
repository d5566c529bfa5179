"""The store: single-writer group commit, durability, refusing damaged files, outbox, inbox."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from node.protocol.checks import PriorDelivery
from node.store import database, inbox, outbox
from node.store.audit import read_only
from node.store.connection import (
    Connection,
    DriverError,
    IntegrityError,
    PostgresUrl,
    StoreLocation,
)
from node.store.database import Database, DuplicateEntry, StoreCorrupt, StoreError
from node.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.nodes import BUDGET

REPO = Path(__file__).resolve().parent.parent
T0 = 1_767_225_600.0


@pytest.fixture
async def db(store_location: StoreLocation) -> AsyncIterator[Database]:
    store = await Database.open(store_location)
    yield store
    await store.close()


def enqueue(peer: str, message_id: str, created_at: float = T0) -> Callable[[Any], int]:
    def job(conn: Connection) -> int:
        return outbox.enqueue(
            conn,
            peer=peer,
            message_id=message_id,
            payload_type="heartbeat",
            envelope=b"envelope:" + message_id.encode(),
            digest=b"\x01" * 32,
            created_at=created_at,
        )

    return job


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read with a connection of its own, as another process would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def stored(db: Database, sql: str) -> list[tuple[Any, ...]]:
    """Read ``db``'s store with a connection of its own, on either backend."""
    with read_only(db.location) as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


class Blocker:
    """A write job that holds the writer thread until released, so later jobs pile up."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: Connection) -> str:
        self.started.set()
        self.release.wait(timeout=BUDGET / 2)
        return "blocker"

    async def hold(self, store: Database) -> asyncio.Future[str]:
        held = asyncio.ensure_future(store.write(self))
        await asyncio.to_thread(self.started.wait, BUDGET / 2)
        return held


# --- group commit ----------------------------------------------------------------------------


async def test_concurrent_writes_all_commit_in_submission_order(db: Database) -> None:
    """200 concurrent writes all commit, and their seqs follow the order they were submitted."""
    seqs = await asyncio.gather(*(db.write(enqueue("jiangsu", f"m{i}")) for i in range(200)))
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 200
    assert stored(db, "SELECT COUNT(*) FROM outbox") == [(200,)]


async def test_queued_writes_share_one_commit(db: Database) -> None:
    """Writes queued while the writer is busy are committed together in one transaction."""
    blocker = Blocker()
    held = await blocker.hold(db)
    commits = db.commits
    tasks = [asyncio.ensure_future(db.write(enqueue("jiangsu", f"m{i}"))) for i in range(200)]
    await asyncio.sleep(0)  # a yield, not a wait: lets every task queue its job
    assert db.queued == 200
    blocker.release.set()
    seqs = await asyncio.gather(*tasks)
    assert await held == "blocker"
    assert db.commits == commits + 2  # the blocker's batch, then all 200 in one
    assert seqs == sorted(seqs)


async def test_failing_job_rolls_back_only_itself(db: Database) -> None:
    """A job that raises gets its own exception and leaves nothing behind; the others commit."""

    def broken(conn: Connection) -> int:
        enqueue("jiangsu", "m100")(conn)
        raise ValueError("payload refused")

    jobs = [enqueue("jiangsu", f"m{i}") for i in range(200)]
    jobs[100] = broken
    blocker = Blocker()
    held = await blocker.hold(db)
    tasks = [asyncio.ensure_future(db.write(job)) for job in jobs]
    await asyncio.sleep(0)
    blocker.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await held
    assert isinstance(results[100], ValueError)
    assert str(results[100]) == "payload refused"
    committed = [r for i, r in enumerate(results) if i != 100]
    assert all(isinstance(r, int) for r in committed)
    assert committed == sorted(committed)  # type: ignore[type-var]
    assert outbox.get(db.reader(), "m100") is None
    assert stored(db, "SELECT COUNT(*) FROM outbox") == [(199,)]


async def test_job_that_ends_the_transaction_fails_its_batch_and_store_recovers(
    db: Database,
) -> None:
    """A job that rolls back the shared transaction fails the whole batch, and later writes work."""

    def rogue(conn: Connection) -> None:
        conn.execute("ROLLBACK")

    blocker = Blocker()
    held = await blocker.hold(db)
    tasks = [
        asyncio.ensure_future(db.write(job))
        for job in (enqueue("jiangsu", "a"), rogue, enqueue("jiangsu", "b"))
    ]
    await asyncio.sleep(0)
    blocker.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await held
    assert all(isinstance(r, StoreError) for r in results)
    assert "must not commit or roll back" in str(results[1])
    assert stored(db, "SELECT COUNT(*) FROM outbox") == [(0,)]
    assert await db.write(enqueue("jiangsu", "c")) > 0


# --- durability and lifecycle ------------------------------------------------------------------


async def test_returned_write_is_visible_to_another_connection(db: Database) -> None:
    """Once write() returns, a fresh connection (another process's view) sees the row."""
    await db.write(enqueue("jiangsu", "m1"))
    assert stored(db, "SELECT message_id FROM outbox") == [("m1",)]


async def test_reopen_keeps_data_and_runs_migrations_once(tmp_path: Path) -> None:
    """Data survives close and reopen, and reopening does not run any migration again."""
    path = tmp_path / "node.db"
    store = await Database.open(path)
    await store.write(enqueue("jiangsu", "m1"))
    await store.close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    schema = rows(path, "SELECT name, sql FROM sqlite_master ORDER BY name")
    again = await Database.open(path)
    try:
        item = outbox.get(again.reader(), "m1")
        assert item is not None
        assert item.state == "pending"
    finally:
        await again.close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "SELECT name, sql FROM sqlite_master ORDER BY name") == schema


@pytest.mark.slow
async def test_write_survives_process_killed_without_close(store_location: StoreLocation) -> None:
    """A process that dies right after write() returns, without closing, loses nothing."""
    where = store_location.url if isinstance(store_location, PostgresUrl) else str(store_location)
    script = f"""
import asyncio, os
from node.store.connection import store_location
from node.store.database import Database
from node.store import outbox

async def main():
    store = await Database.open(store_location({where!r}))
    await store.write(lambda c: outbox.enqueue(
        c, peer="jiangsu", message_id="m1", payload_type="heartbeat",
        envelope=b"e", digest=b"d", created_at=1.0))
    os._exit(0)

asyncio.run(main())
"""
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=REPO)
    assert await asyncio.wait_for(child.wait(), timeout=BUDGET) == 0
    store = await Database.open(store_location)
    try:
        assert outbox.get(store.reader(), "m1") is not None
    finally:
        await store.close()


async def test_close_writes_everything_queued_then_refuses(tmp_path: Path) -> None:
    """close() waits for queued writes to commit; afterwards write() and reader() are refused."""
    store = await Database.open(tmp_path / "node.db")
    tasks = [asyncio.ensure_future(store.write(enqueue("anhui", f"m{i}"))) for i in range(50)]
    await asyncio.sleep(0)
    await store.close()
    assert store.closed
    assert all(t.done() and isinstance(t.result(), int) for t in tasks)
    assert rows(tmp_path / "node.db", "SELECT COUNT(*) FROM outbox") == [(50,)]
    assert not (tmp_path / "node.db-wal").exists()
    with pytest.raises(StoreError, match="closed"):
        await store.write(enqueue("anhui", "late"))
    with pytest.raises(StoreError, match="closed"):
        store.reader()


async def test_new_store_is_private_and_its_directory_is_created(tmp_path: Path) -> None:
    """A new store file is created mode 0600, with missing parent directories made for it."""
    path = tmp_path / "var" / "lib" / "node.db"
    store = await Database.open(path)
    await store.close()
    assert path.stat().st_mode & 0o777 == 0o600


async def test_reader_cannot_write(db: Database) -> None:
    """The event loop's connection is read-only, so a write can only go through the writer."""
    with pytest.raises(DriverError, match=r"readonly|read-only"):
        db.reader().execute("DELETE FROM outbox")


# --- refusing damaged or foreign files ---------------------------------------------------------


async def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A store file that is not SQLite stops start-up with StoreCorrupt, and is not modified."""
    path = tmp_path / "node.db"
    path.write_bytes(os.urandom(8192))
    before = listing(tmp_path)
    with pytest.raises(StoreCorrupt) as caught:
        await Database.open(path)
    message = str(caught.value)
    assert str(path) in message
    assert "not a SQLite database" in message
    assert "refuses to start" in message
    assert listing(tmp_path) == before


def _empty_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")  # writes the header page: a SQLite database with nothing in it
    conn.close()


FOREIGN_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "zero bytes": (lambda p: p.write_bytes(b""), "delete the empty file"),
    "text": (lambda p: p.write_text("cases: none\n"), "not a SQLite database"),
    "a SQLite database with nothing in it": (_empty_sqlite, "not a node store"),
}


@pytest.mark.parametrize("make", list(FOREIGN_FILES.values()), ids=list(FOREIGN_FILES))
async def test_only_a_missing_store_file_starts_a_new_store(
    tmp_path: Path, make: tuple[Callable[[Path], None], str]
) -> None:
    """An empty (``: > node.db``), non-SQLite or tableless store file is refused with a
    message that says what to do, and nothing in its folder changes: a node never starts
    empty over what may be its lost evidence."""
    write, hint = make
    path = tmp_path / "node.db"
    write(path)
    before = listing(tmp_path)
    with pytest.raises(StoreError) as caught:
        await Database.open(path)
    message = str(caught.value)
    assert str(path) in message and hint in message
    assert listing(tmp_path) == before


async def test_a_new_store_is_never_seen_empty(tmp_path: Path) -> None:
    """A new store is made whole beside its place and linked in: owner-only, at the current
    schema version, with no temporary file left behind; it opens again as itself."""
    path = tmp_path / "node.db"
    store = await Database.open(path)
    await store.close()
    assert path.stat().st_size > 0 and path.stat().st_mode & 0o777 == 0o600
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert list(listing(tmp_path)) == ["node.db"]
    store = await Database.open(path)
    await store.close()


async def test_truncated_store_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A real store cut short (lost pages) fails the integrity check and is not modified."""
    path = tmp_path / "node.db"
    store = await Database.open(path)

    def fill(conn: Connection) -> None:
        for i in range(2000):
            inbox.record(
                conn,
                sender="jiangsu",
                message_id=f"m{i}",
                digest=bytes(32),
                payload_type="heartbeat",
                envelope=os.urandom(400),
                reply=b"r" * 100,
                received_at=T0,
            )

    await store.write(fill)
    await store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = listing(tmp_path)
    with pytest.raises(StoreCorrupt, match="refuses to start") as caught:
        await Database.open(path)
    assert str(path) in str(caught.value)
    assert listing(tmp_path) == before


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer node (higher user_version) is refused, not downgraded."""
    path = tmp_path / "node.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer") as caught:
        await Database.open(path)
    assert not isinstance(caught.value, StoreCorrupt)
    assert path.read_bytes() == before


async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file that holds some other application's tables is not migrated into."""
    path = tmp_path / "node.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a node store"):
        await Database.open(path)
    assert path.read_bytes() == before


async def test_failed_migration_leaves_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails is rolled back whole, and the store stays at the version before."""
    path = tmp_path / "node.db"
    broken = "CREATE TABLE half_done (a INTEGER); CREATE TABLE half_done (a INTEGER);"
    monkeypatch.setattr(database, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} failed"):
        await Database.open(path)
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'half_done'") == []


# --- outbox ------------------------------------------------------------------------------------


async def test_pending_batch_is_per_peer_in_seq_order(db: Database) -> None:
    """A peer's batch holds only its pending items, oldest seq first, at most `limit` of them."""
    for i in range(5):
        await db.write(enqueue("jiangsu", f"j{i}"))
        await db.write(enqueue("anhui", f"a{i}"))
    batch = outbox.pending_batch(db.reader(), "jiangsu", 3)
    assert [item.message_id for item in batch] == ["j0", "j1", "j2"]
    assert all(item.state == "pending" and item.attempts == 0 for item in batch)
    assert batch[0].envelope == b"envelope:j0"
    assert outbox.pending_batch(db.reader(), "jiangsu", 0) == []


async def test_lanes_split_a_peers_batch_keeping_each_correlation_in_one_lane(
    db: Database,
) -> None:
    """Two lanes (a peer with two replicas) share out a peer's pending rows: every row in
    exactly one lane, in seq order, each case's rows all in one lane, at most ``limit`` per
    batch, rows being recorded (``skip``) left out; a lane that does not exist is refused."""

    def queued(message_id: str, correlation: str) -> Callable[[Any], int]:
        def job(conn: Connection) -> int:
            return outbox.enqueue(
                conn, peer="jiangsu", message_id=message_id, payload_type="case_update",
                envelope=b"e", digest=b"\x01" * 32, created_at=T0, correlation_id=correlation,
            )  # fmt: skip

        return job

    cases = [f"case-{n}" for n in range(6)]
    for i in range(30):
        await db.write(queued(f"m{i:02}", cases[i % 6] if i % 5 else ""))
    await db.write(enqueue("anhui", "other"))
    lanes = [outbox.Lane(i, 2) for i in range(2)]
    batches = [outbox.pending_batch(db.reader(), "jiangsu", 100, lane=lane) for lane in lanes]
    ids = [[item.message_id for item in batch] for batch in batches]
    assert all(ids) and all(batch == sorted(batch) for batch in ids)
    assert sorted(ids[0] + ids[1]) == [f"m{i:02}" for i in range(30)]
    for case in cases:
        holding = {n for n, batch in enumerate(batches) for i in batch if i.correlation_id == case}
        assert len(holding) == 1, case
    assert (
        len({item.correlation_id for item in batches[0] + batches[1] if item.correlation_id}) == 6
    )
    first = outbox.pending_batch(db.reader(), "jiangsu", 3, lane=lanes[0])
    assert [item.message_id for item in first] == ids[0][:3]
    skipped = outbox.pending_batch(
        db.reader(), "jiangsu", 3, lane=lanes[0], skip={item.seq for item in first}
    )
    assert [item.message_id for item in skipped] == ids[0][3:6]
    with pytest.raises(ValueError, match="lane 2 of 2 does not exist"):
        outbox.Lane(2, 2)


async def test_duplicate_message_id_is_refused(db: Database) -> None:
    """Enqueuing a message id that is already in the outbox fails and changes nothing."""
    await db.write(enqueue("jiangsu", "m1"))
    with pytest.raises(DuplicateEntry, match="m1"):
        await db.write(enqueue("anhui", "m1"))
    assert [i.peer for i in outbox.list_items(db.reader())] == ["jiangsu"]


async def test_cursor_advances_over_contiguous_settled_items(db: Database) -> None:
    """The cursor moves only over an unbroken run of delivered and dead items of that peer."""
    seqs = []
    for i in range(4):
        seqs.append(await db.write(enqueue("jiangsu", f"j{i}")))
        await db.write(enqueue("anhui", f"a{i}"))
    j0, j1, j2, j3 = seqs
    await db.write(lambda c: outbox.mark_delivered(c, j1, reply=b"receipt", at=T0 + 1))
    assert outbox.cursor(db.reader(), "jiangsu") == 0
    await db.write(lambda c: outbox.mark_delivered(c, j0, reply=b"receipt", at=T0 + 1))
    assert outbox.cursor(db.reader(), "jiangsu") == j1
    await db.write(lambda c: outbox.dead_letter(c, j2, reason="refused: bad payload", at=T0 + 2))
    assert outbox.cursor(db.reader(), "jiangsu") == j2
    assert [i.seq for i in outbox.pending_batch(db.reader(), "jiangsu", 10)] == [j3]
    assert outbox.cursor(db.reader(), "anhui") == 0
    await db.write(lambda c: outbox.mark_delivered(c, j3, reply=b"receipt", at=T0 + 3))
    assert outbox.cursor(db.reader(), "jiangsu") == j3
    delivered = outbox.get(db.reader(), "j0")
    assert delivered is not None
    assert (delivered.state, delivered.delivered_at) == ("delivered", T0 + 1)
    dead = outbox.get(db.reader(), "j2")
    assert dead is not None
    assert (dead.state, dead.last_error, dead.dead_at) == ("dead", "refused: bad payload", T0 + 2)


async def test_settled_item_is_not_settled_again(db: Database) -> None:
    """Delivering an item that was dead-lettered meanwhile leaves its first settlement alone."""
    seq = await db.write(enqueue("jiangsu", "m1"))
    await db.write(lambda c: outbox.dead_letter(c, seq, reason="expired", at=T0 + 1))
    await db.write(lambda c: outbox.mark_delivered(c, seq, reply=b"late", at=T0 + 2))
    item = outbox.get(db.reader(), "m1")
    assert item is not None
    assert (item.state, item.delivered_at) == ("dead", None)
    with pytest.raises(ValueError, match="no outbox item has seq 999"):
        await db.write(lambda c: outbox.mark_delivered(c, 999, reply=b"", at=T0))


async def test_failed_attempts_are_counted(db: Database) -> None:
    """Each failed attempt adds one to the count and records the error and its time."""
    a = await db.write(enqueue("jiangsu", "a"))
    b = await db.write(enqueue("jiangsu", "b"))
    await db.write(lambda c: outbox.mark_failed_attempt(c, [a, b], error="UNAVAILABLE", at=T0))
    await db.write(lambda c: outbox.mark_failed_attempt(c, [a], error="DEADLINE", at=T0 + 5))
    first = outbox.get(db.reader(), "a")
    second = outbox.get(db.reader(), "b")
    assert first is not None
    assert second is not None
    assert (first.attempts, first.last_error, first.last_attempt_at) == (2, "DEADLINE", T0 + 5)
    assert (second.attempts, second.last_error, second.last_attempt_at) == (1, "UNAVAILABLE", T0)


async def test_expired_items_are_dead_lettered(db: Database) -> None:
    """Pending items older than the deadline are parked, counted, and passed by the cursor."""
    old = [await db.write(enqueue("jiangsu", f"old{i}", created_at=T0)) for i in range(3)]
    await db.write(enqueue("jiangsu", "fresh", created_at=T0 + 100))
    await db.write(enqueue("anhui", "other", created_at=T0))
    parked = await db.write(
        lambda c: outbox.dead_letter_expired(c, "jiangsu", older_than=T0 + 50, at=T0 + 200)
    )
    assert parked == 3
    assert outbox.dead_count(db.reader(), "jiangsu") == 3
    assert outbox.dead_count(db.reader()) == 3
    assert outbox.cursor(db.reader(), "jiangsu") == old[-1]
    assert [i.message_id for i in outbox.pending_batch(db.reader(), "jiangsu", 10)] == ["fresh"]
    assert outbox.depth(db.reader(), "anhui") == (1, T0)


async def test_a_retried_item_gets_a_fresh_age_limit(db: Database) -> None:
    """An item parked for age and retried at ``at`` is not parked again for being old until
    the limit has run again from ``at``; its creation time stays as it was."""
    limit = 60.0
    await db.write(enqueue("jiangsu", "old", created_at=T0))
    assert await db.write(
        lambda c: outbox.dead_letter_expired(c, "jiangsu", older_than=T0 + 1, at=T0 + limit + 1)
    ) == 1  # fmt: skip
    retried_at = T0 + 3600.0
    await db.write(lambda c: outbox.retry(c, peer="jiangsu", at=retried_at))

    def park_at(now: float) -> Callable[[Connection], int]:
        return lambda c: outbox.dead_letter_expired(c, "jiangsu", older_than=now - limit, at=now)

    assert await db.write(park_at(retried_at + limit - 1)) == 0
    item = outbox.get(db.reader(), "old")
    assert item is not None
    assert (item.state, item.created_at) == ("pending", T0)
    assert await db.write(park_at(retried_at + limit + 1)) == 1
    assert outbox.dead_count(db.reader(), "jiangsu") == 1


async def test_retry_makes_dead_items_pending_and_lowers_the_cursor(db: Database) -> None:
    """Retrying a dead item makes it pending again, below a cursor that moves back for it."""
    seqs = [await db.write(enqueue("jiangsu", f"m{i}")) for i in range(3)]
    await db.write(lambda c: outbox.dead_letter(c, seqs[0], reason="PERMISSION_DENIED", at=T0))
    await db.write(lambda c: outbox.mark_failed_attempt(c, [seqs[1]], error="x", at=T0))
    await db.write(lambda c: outbox.dead_letter(c, seqs[1], reason="too many attempts", at=T0))
    await db.write(lambda c: outbox.mark_delivered(c, seqs[2], reply=b"r", at=T0))
    assert outbox.cursor(db.reader(), "jiangsu") == seqs[2]
    retried = await db.write(lambda c: outbox.retry(c, seqs=[seqs[1], seqs[2], 999], at=2000.0))
    assert retried == [seqs[1]]
    assert outbox.cursor(db.reader(), "jiangsu") == seqs[1] - 1
    item = outbox.get(db.reader(), "m1")
    assert item is not None
    assert (item.state, item.attempts, item.last_error, item.dead_at) == (
        "pending",
        0,
        "too many attempts",
        None,
    )
    assert [i.seq for i in outbox.pending_batch(db.reader(), "jiangsu", 10)] == [seqs[1]]
    assert await db.write(lambda c: outbox.retry(c, peer="jiangsu", at=2000.0)) == [seqs[0]]
    assert outbox.cursor(db.reader(), "jiangsu") == seqs[0] - 1
    assert outbox.dead_count(db.reader()) == 0
    with pytest.raises(ValueError, match="give seqs, peer, or both"):
        await db.write(lambda c: outbox.retry(c, at=2000.0))


async def test_depth_counts_pending_and_finds_the_oldest(db: Database) -> None:
    """Depth is the pending count and the oldest pending creation time, per peer."""
    assert outbox.depth(db.reader(), "jiangsu") == (0, None)
    first = await db.write(enqueue("jiangsu", "a", created_at=T0 + 10))
    await db.write(enqueue("jiangsu", "b", created_at=T0 + 20))
    await db.write(enqueue("anhui", "c", created_at=T0 + 5))
    assert outbox.depth(db.reader(), "jiangsu") == (2, T0 + 10)
    await db.write(lambda c: outbox.mark_delivered(c, first, reply=b"r", at=T0 + 30))
    assert outbox.depths(db.reader()) == {"anhui": (1, T0 + 5), "jiangsu": (1, T0 + 20)}


async def test_bad_arguments_are_refused_and_change_nothing(db: Database) -> None:
    """An unknown state or a negative limit raises ValueError, and the job's writes are undone."""

    def enqueue_then_list(conn: Connection) -> None:
        enqueue("jiangsu", "m1")(conn)
        outbox.list_items(conn, state="sent")

    with pytest.raises(ValueError, match="state must be one of pending, delivered, dead"):
        await db.write(enqueue_then_list)
    assert outbox.list_items(db.reader()) == []
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        outbox.pending_batch(db.reader(), "jiangsu", -1)
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        outbox.list_items(db.reader(), limit=-5)


async def test_list_items_filters_by_state_and_peer(db: Database) -> None:
    """Listing narrows by state and peer and keeps seq order."""
    a = await db.write(enqueue("jiangsu", "a"))
    await db.write(enqueue("anhui", "b"))
    await db.write(enqueue("jiangsu", "c"))
    await db.write(lambda c: outbox.dead_letter(c, a, reason="gone", at=T0))
    reader = db.reader()
    assert [i.message_id for i in outbox.list_items(reader)] == ["a", "b", "c"]
    assert [i.message_id for i in outbox.list_items(reader, state="dead")] == ["a"]
    assert [i.message_id for i in outbox.list_items(reader, peer="jiangsu")] == ["a", "c"]
    assert [i.message_id for i in outbox.list_items(reader, state="pending", peer="jiangsu")] == [
        "c"
    ]
    assert [i.message_id for i in outbox.list_items(reader, limit=1)] == ["a"]
    assert outbox.get(reader, "nope") is None


# --- inbox -------------------------------------------------------------------------------------


def record(message_id: str, reply: bytes = b"signed receipt") -> Callable[[Any], None]:
    def job(conn: Connection) -> None:
        inbox.record(
            conn,
            sender="jiangsu",
            message_id=message_id,
            digest=b"\x02" * 32,
            payload_type="heartbeat",
            envelope=b"envelope",
            reply=reply,
            received_at=T0,
        )

    return job


async def test_inbox_remembers_accepted_messages(db: Database) -> None:
    """A recorded message is found again by sender and id, with its digest and original reply."""
    view = inbox.InboxReader(db.reader())
    assert view.prior("jiangsu", "m1") is None
    await db.write(record("m1"))
    assert view.prior("jiangsu", "m1") == PriorDelivery(
        digest=b"\x02" * 32, reply=b"signed receipt"
    )
    assert inbox.prior(db.reader(), "anhui", "m1") is None
    assert inbox.count(db.reader()) == 1
    assert inbox.count(db.reader(), "jiangsu") == 1
    assert inbox.count(db.reader(), "anhui") == 0


async def test_inbox_refuses_a_second_record(db: Database) -> None:
    """Recording the same sender and id twice is refused and the first reply is kept."""
    await db.write(record("m1"))
    with pytest.raises(DuplicateEntry, match="m1 from jiangsu is already in the inbox"):
        await db.write(record("m1", reply=b"another receipt"))
    prior = inbox.prior(db.reader(), "jiangsu", "m1")
    assert prior is not None
    assert prior.reply == b"signed receipt"


async def test_a_version_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    """A store written by schema version 1 opens at the current version with its rows kept
    and the new retried_at column present."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO outbox (peer, message_id, payload_type, envelope, digest, created_at, state)"
        " VALUES ('anhui', 'm-1', 'probe', x'00', x'00', 1.0, 'pending')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    db = await Database.open(path)
    try:
        assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        item = outbox.get(db.reader(), "m-1")
        assert item is not None and item.peer == "anhui"
        columns = [r[1] for r in db.reader().execute("PRAGMA table_info(outbox)")]
        assert "retried_at" in columns
    finally:
        await db.close()


async def test_each_part_fails_alone_leaving_nothing_behind(db: Database) -> None:
    """``each`` inside one job: a part that raises (in Python after writing, or refused by a
    constraint) keeps none of its writes or after-commit callbacks; the other parts commit."""
    called: list[str] = []

    def job(conn: Connection) -> list[object]:
        def part(message_id: str, fail: str | None) -> Callable[[], int]:
            def run() -> int:
                seq = enqueue("jiangsu", message_id)(conn)
                db.after_commit(lambda: called.append(message_id))
                if fail == "python":
                    raise ValueError(f"{message_id} refused")
                if fail == "sql":
                    conn.execute("INSERT INTO peer_cursor (peer, seq) VALUES (?, NULL)", ("x",))
                return seq

            return run

        return list(
            db.each(
                conn,
                [part("m1", None), part("m2", "python"), part("m3", "sql"), part("m4", None)],
            )
        )

    results = await db.write(job)
    assert isinstance(results[0], int) and isinstance(results[3], int)
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], IntegrityError)
    assert [i.message_id for i in outbox.pending_batch(db.reader(), "jiangsu", 10)] == ["m1", "m4"]
    assert called == ["m1", "m4"]

"""Retention: `yrd audit purge` removes message bodies and keeps every proof valid."""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.cli.audit_cmd import retention_boundary
from node.protocol.merkle import verify_consistency, verify_inclusion
from node.store import audit, log_tree
from node.store.audit import verify_chain
from node.store.connection import Connection, StoreLocation
from node.store.database import Database
from node.store.lock import StoreLock
from tests import test_audit
from tests.nodes import BUDGET
from tests.postgres import FILE_ONLY
from tests.test_audit import Federation, heartbeat

YRD = [sys.executable, "-m", "node.cli.main"]

federation = test_audit.federation
"""The same keys as the evidence-log tests (a module-scoped fixture)."""
DAY = 86400.0
NOW = 1_767_225_600.0


@pytest.fixture
async def db(store_location: StoreLocation) -> AsyncIterator[Database]:
    store = await Database.open(store_location)
    yield store
    await store.close()


async def month_of_traffic(db: Database, federation: Federation) -> list[str]:
    """A manifest, then a heartbeat and its reply each day for 30 days; the message ids."""
    ids = []
    records = [audit.Record("local", "", "manifest-v1", "manifest", federation.manifest(), NOW)]
    for day in range(30):
        at = NOW + day * DAY
        sent = heartbeat(federation.shanghai, sender="shanghai", recipient="jiangsu", sequence=day)
        reply = heartbeat(federation.jiangsu, sender="jiangsu", recipient="shanghai", sequence=day)
        records += [
            audit.Record("sent", "jiangsu", sent.message_id, "envelope", sent.envelope, at),
            audit.Record("received", "jiangsu", sent.message_id, "reply", reply.envelope, at),
        ]
        ids.append(sent.message_id)
    await db.write(lambda c: audit.append_many(c, records))
    return ids


async def test_purge_removes_bodies_and_every_proof_still_verifies(
    db: Database, federation: Federation
) -> None:
    await month_of_traffic(db, federation)
    conn = db.reader()
    old_size = log_tree.tree_size(conn)
    old_root = log_tree.StoredTree(conn).root()
    assert old_size == 61

    done = await db.write(lambda c: audit.purge(c, before=NOW + 10 * DAY, now=NOW + 40 * DAY))
    assert done.entries == 20
    assert done.record is not None and done.record.kind == "purge"

    conn = db.reader()
    bodies = dict(conn.execute("SELECT seq, length(body) FROM audit"))
    assert all(bodies[seq] == 0 for seq in range(2, 22))
    assert all(bodies[seq] > 0 for seq in (1, *range(22, 63)))  # the manifest and the rest
    report = verify_chain(conn)
    assert report.ok, report.reason
    tree = log_tree.StoredTree(conn)
    assert tree.root(old_size) == old_root
    assert verify_consistency(
        old_size, tree.size, old_root, tree.root(), tree.consistency_path(old_size)
    )
    for index in (0, 5, 21, 40, tree.size - 1):
        leaf = log_tree.stored_leaf(conn, index)
        assert leaf is not None
        assert verify_inclusion(leaf, index, tree.size, tree.inclusion_path(index), tree.root())

    again = await db.write(lambda c: audit.purge(c, before=NOW + 10 * DAY, now=NOW + 41 * DAY))
    assert again.entries == 0 and again.record is None


@FILE_ONLY
async def test_a_body_blanked_without_a_purge_entry_is_named(
    db: Database, federation: Federation
) -> None:
    """The one UPDATE the log takes is a purge's; done by hand, verify finds no purge names it."""
    await month_of_traffic(db, federation)
    conn = sqlite3.connect(db.path, isolation_level=None)
    conn.execute("UPDATE audit SET body = x'', purged_at = 1.0 WHERE seq = 7")
    report = verify_chain(db.reader())
    assert (report.ok, report.first_bad_seq) == (False, 7)
    assert "no purge entry names it" in report.reason


async def test_purges_one_after_another_verify(db: Database, federation: Federation) -> None:
    """A second purge, further on, names only what the first left: the log verifies."""
    await month_of_traffic(db, federation)
    await db.write(lambda c: audit.purge(c, before=NOW + 10 * DAY, now=NOW + 40 * DAY))
    done = await db.write(lambda c: audit.purge(c, before=NOW + 20 * DAY, now=NOW + 41 * DAY))
    assert done.entries == 20
    report = verify_chain(db.reader())
    assert report.ok, report.reason


@pytest.mark.parametrize(
    ("blank", "document", "expected"),
    [
        # entry 25 (day 11) named by a purge of what came before day 5
        ([25], {"before": NOW + 5 * DAY, "entries": 1, "seqs": [[25, 25]]}, "at or after"),
        # entry 25 alone vanishes; the older entries 2 to 24 keep their bodies
        ([25], {"before": NOW + 20 * DAY, "entries": 1, "seqs": [[25, 25]]}, "leaves entry 2"),
        ([2, 3], {"before": NOW + DAY, "entries": 2, "seqs": [[3, 3], [2, 2]]}, "out of order"),
        ([2], {"before": NOW + DAY, "entries": 2, "seqs": [[2, 3]]}, "3, which still holds"),
        ([2, 3], {"before": NOW + DAY, "entries": 5, "seqs": [[2, 3]]}, "counts 5"),
        ([2, 3], {"before": NOW + 99 * DAY, "entries": 2, "seqs": [[2, 3]]}, "past its own"),
        ([], {"before": NOW + DAY, "entries": 1, "seqs": [[1, 1]]}, "no earlier message"),
    ],
    ids=[
        "after-before",
        "one-vanishes",
        "out-of-order",
        "not-purged",
        "miscount",
        "future",
        "manifest",
    ],
)
async def test_a_hand_made_purge_entry_is_refused(
    db: Database,
    federation: Federation,
    blank: list[int],
    document: dict[str, object],
    expected: str,
) -> None:
    """An insider blanks bodies and appends a purge entry of their own: verify checks the
    entry against the entries it names and refuses it, naming the purge entry."""
    await month_of_traffic(db, federation)
    recorded_at = NOW + 40 * DAY

    def forge(conn: Connection) -> audit.AuditEntry:
        for seq in blank:
            conn.execute("UPDATE audit SET body = ?, purged_at = ? WHERE seq = ?", (b"", 1.0, seq))
        body = json.dumps(document).encode()
        return audit.append(
            conn,
            direction="local",
            peer="",
            message_id="purge-forged",
            kind="purge",
            body=body,
            recorded_at=recorded_at,
        )

    forged = await db.write(forge)
    report = verify_chain(db.reader())
    assert (report.ok, report.first_bad_seq) == (False, forged.seq), report.reason
    assert expected in report.reason


@pytest.mark.parametrize(
    "change",
    [
        # substr(hash, 1, 0) is an empty blob and substr(hash, 1, 1) a non-empty one, on
        # either backend.
        "body = substr(hash, 1, 0), purged_at = 1.0, peer = 'anhui'",  # a purge that edits
        "body = substr(hash, 1, 1)",  # an edit that is no purge
        "body = substr(hash, 1, 0), purged_at = 1.0 WHERE kind = 'manifest'",  # manifests kept
    ],
)
async def test_the_log_takes_no_other_update(
    db: Database, federation: Federation, change: str
) -> None:
    await month_of_traffic(db, federation)
    where = "" if "WHERE" in change else " WHERE seq = 3"
    with pytest.raises(Exception, match="append-only"):
        await db.write(lambda c: c.execute(f"UPDATE audit SET {change}{where}"))
    assert verify_chain(db.reader()).ok


def test_a_plain_date_is_the_midnight_that_starts_it_in_shanghai() -> None:
    """``--before 2026-06-01`` is 2026-06-01T00:00:00+08:00; a zoned time is kept as given,
    and a time with no zone is still refused."""
    assert retention_boundary("2026-06-01") == datetime(2026, 5, 31, 16, tzinfo=UTC).timestamp()
    assert (
        retention_boundary("2026-06-01T00:00:00Z") == datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    )
    with pytest.raises(argparse.ArgumentTypeError, match="needs a zone"):
        retention_boundary("2026-06-01T00:00:00")


def yrd(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*YRD, *arguments], capture_output=True, text=True, timeout=BUDGET, check=False
    )


@pytest.mark.slow
async def test_the_command_purges_a_stopped_nodes_store_only(
    tmp_path: Path, federation: Federation
) -> None:
    store = tmp_path / "node.db"
    db = await Database.open(store)
    try:
        ids = await month_of_traffic(db, federation)
    finally:
        await db.close()
    # NOW is 2026-01-01T00:00Z, each day's entries at 08:00 in Shanghai: a plain date is the
    # midnight that starts it in Asia/Shanghai, so ten days are purged.
    before = "2026-01-11"

    lock = StoreLock(store)
    lock.acquire()
    try:
        busy = yrd("audit", "purge", "--store", str(store), "--before", before)
    finally:
        lock.release()
    assert busy.returncode == 2 and "stop the node first" in busy.stderr, busy.stderr
    assert yrd("audit", "evidence", "--store", str(store), "--message-id", ids[0]).returncode == 0

    for bad, said in (
        ("2026-01-11T00:00:00", "needs a zone"),
        ("2026-13-01", "not an RFC 3339 time"),
        ("yesterday", "not an RFC 3339 time"),
        ("2999-01-01T00:00:00Z", "in the future"),
    ):
        refused = yrd("audit", "purge", "--store", str(store), "--before", bad)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr

    done = yrd("audit", "purge", "--store", str(store), "--before", before)
    assert done.returncode == 0, done.stderr
    assert "purged the bodies of 20 entries" in done.stdout
    gone = yrd("audit", "evidence", "--store", str(store), "--message-id", ids[0])
    assert gone.returncode == 1 and "purged at the end of its retention" in gone.stderr
    later = yrd("audit", "purge", "--store", str(store), "--before", "2026-01-16T00:00:00Z")
    assert later.returncode == 0 and "purged the bodies of 10 entries" in later.stdout
    kept = yrd("audit", "evidence", "--store", str(store), "--message-id", ids[-1])
    assert kept.returncode == 0, kept.stderr
    verified = yrd("audit", "verify", "--store", str(store))
    assert verified.returncode == 0, verified.stdout

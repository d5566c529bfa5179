"""The evidence log's Merkle tree, kept in the store: proofs of any size, migration, tampering."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.cli.main import main
from node.protocol.merkle import MerkleTree, verify_consistency, verify_inclusion
from node.store import audit, log_tree
from node.store.audit import GENESIS, entry_hash, verify_chain
from node.store.connection import StoreLocation
from node.store.database import Database
from node.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.federation import make_federation
from tests.postgres import FILE_ONLY
from tests.test_audit import attacker, rechain

NOW = 1_767_225_600.0


@pytest.fixture
async def db(store_location: StoreLocation) -> AsyncIterator[Database]:
    store = await Database.open(store_location)
    yield store
    await store.close()


MANIFEST = make_federation().signed()
"""A signed manifest: entries the chain check reads as manifests, told apart by id and time."""


def records(first: int, count: int) -> list[audit.Record]:
    return [
        audit.Record("local", "", f"manifest-{i}", "manifest", MANIFEST, NOW + i)
        for i in range(first, first + count)
    ]


def expected_leaves(conn: sqlite3.Connection) -> list[bytes]:
    """Each entry's leaf hash, written out from the format the module documents."""

    def field(data: bytes) -> bytes:
        return struct.pack(">Q", len(data)) + data

    return [
        hashlib.sha256(
            b"\x00yrd.evidence.v1\x00"
            + struct.pack(">qd", seq, at)
            + b"".join(field(text.encode()) for text in (direction, peer, message_id, kind))
            + field(bytes(body))
        ).digest()
        for seq, at, direction, peer, message_id, kind, body in conn.execute(
            "SELECT seq, recorded_at, direction, peer, message_id, kind, body FROM audit "
            "ORDER BY seq"
        )
    ]


async def fill(db: Database, batches: list[int]) -> None:
    first = 0
    for count in batches:
        batch = records(first, count)
        await db.write(lambda c, batch=batch: audit.append_many(c, batch))  # type: ignore[misc]
        first += count


async def test_the_stored_tree_serves_every_root_path_and_proof(db: Database) -> None:
    """Entries appended one by one and in batches of odd sizes: the stored tree has the root
    of the entries' leaves at every size, and proves each entry and each earlier head."""
    await fill(db, [1, 1, 3, 7, 2, 11, 1, 4])  # 30 entries
    conn = db.reader()
    leaves = expected_leaves(conn)
    stored = log_tree.StoredTree(conn)
    assert stored.size == len(leaves) == 30
    for size in range(1, 31):
        head = MerkleTree(leaves[:size]).root()
        assert stored.root(size) == head
        for index in range(size):
            path = stored.inclusion_path(index, size)
            assert verify_inclusion(leaves[index], index, size, path, head)
        for old in range(1, size + 1):
            proof = stored.consistency_path(old, size)
            assert verify_consistency(old, size, stored.root(old), head, proof)
    assert verify_chain(conn).ok


def old_store(path: Path, entries: int = 5, *, edited: int = 0) -> None:
    """A store of schema version 11 (before the tree) holding a linear chain of ``entries``,
    entry ``edited`` (if any) with a body changed after it was hashed."""
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:11]:
        conn.executescript(script)
    prev = GENESIS
    for seq in range(1, entries + 1):
        fields = {
            "seq": seq,
            "recorded_at": NOW + seq,
            "direction": "local",
            "peer": "",
            "message_id": f"old-{seq}",
            "kind": "manifest",
            "body": MANIFEST,
        }
        digest = entry_hash(prev, **fields)  # type: ignore[arg-type]
        if seq == edited:
            fields["body"] = MANIFEST + b" "
        conn.execute(
            "INSERT INTO audit (seq, recorded_at, direction, peer, message_id, kind, body, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*fields.values(), prev, digest),
        )
        prev = digest
    conn.execute("PRAGMA user_version = 11")
    conn.close()


async def test_a_store_from_before_the_tree_has_its_entries_folded_in(tmp_path: Path) -> None:
    path = tmp_path / "v11.db"
    old_store(path)
    db = await Database.open(path)
    try:
        assert log_tree.tree_size(db.reader()) == 0
        report = verify_chain(db.reader())
        assert not report.ok and "covers 0 of the log's 5 entries" in report.reason
        assert await db.write(log_tree.catch_up) == 5
        assert await db.write(log_tree.catch_up) == 0
        await db.write(lambda c: audit.append_many(c, records(100, 2)))
        conn = db.reader()
        assert log_tree.StoredTree(conn).root() == MerkleTree(expected_leaves(conn)).root()
        assert verify_chain(conn).ok
    finally:
        await db.close()


async def test_an_old_chain_is_verified_as_it_is_folded_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Migration checks the old chain once: an entry whose body no longer matches its hash
    stops the tree before it (an error naming the entry, never its content), appends go on,
    and verify names the entry."""
    path = tmp_path / "v11.db"
    old_store(path, entries=8, edited=6)
    db = await Database.open(path)
    try:
        assert await db.write(log_tree.catch_up) == 5
        assert [r.__dict__.get("seq") for r in caplog.records if r.levelname == "ERROR"] == [6]
        await db.write(lambda c: audit.append_many(c, records(100, 2)))
        assert log_tree.tree_size(db.reader()) == 5
        assert db.reader().execute("SELECT count(*) FROM audit").fetchone()[0] == 10
        report = verify_chain(db.reader())
        assert not report.ok and report.first_bad_seq == 6, report
    finally:
        await db.close()


@FILE_ONLY
async def test_an_entry_rewritten_and_rechained_is_caught_by_the_tree(db: Database) -> None:
    """The linear chain alone calls this log intact; the stored tree names the entry."""
    await fill(db, [10])
    conn = attacker(db.path)
    conn.execute("UPDATE audit SET recorded_at = recorded_at - 30 * 86400 WHERE seq = 7")
    rechain(conn, 1)
    report = verify_chain(db.reader())
    assert not report.ok
    assert report.first_bad_seq == 7
    assert "does not match entry 7" in report.reason


@FILE_ONLY
async def test_an_edited_or_shortened_tree_is_named(db: Database) -> None:
    await fill(db, [9])
    conn = attacker(db.path)
    conn.execute("UPDATE audit_tree SET hash = zeroblob(32) WHERE level = 2 AND idx = 1")
    report = verify_chain(db.reader())
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert "entries 5 to 8" in report.reason

    conn.execute("DELETE FROM audit_tree WHERE level = 2 AND idx = 1")
    conn.execute("DELETE FROM audit_tree WHERE level = 0 AND idx = 8")
    report = verify_chain(db.reader())
    assert not report.ok
    assert "covers 8 of the log's 9 entries" in report.reason


@FILE_ONLY
async def test_a_gap_stops_the_tree_but_never_the_appends(db: Database) -> None:
    await fill(db, [6])
    conn = attacker(db.path)
    conn.execute("DELETE FROM audit WHERE seq = 6")
    conn.execute("DELETE FROM audit_tree WHERE level = 0 AND idx = 5")
    conn.execute("DELETE FROM audit_tree WHERE level = 1 AND idx = 2")
    await db.write(lambda c: audit.append_many(c, records(50, 3)))
    assert log_tree.tree_size(db.reader()) == 5
    report = verify_chain(db.reader())
    assert not report.ok and "entry 6 is missing" in report.reason


async def test_the_tree_is_append_only_through_sql(db: Database) -> None:
    await fill(db, [2])
    with pytest.raises(Exception, match="append-only"):
        await db.write(lambda c: c.execute("UPDATE audit_tree SET hash = ?", (bytes(32),)))
    with pytest.raises(Exception, match="append-only"):
        await db.write(lambda c: c.execute("DELETE FROM audit_tree"))
    assert log_tree.tree_size(db.reader()) == 2


def test_audit_verify_of_a_store_its_node_has_not_brought_up_to_date_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yrd audit verify`` on a version 11 store (a node that has not run this version yet)
    does not stop at a missing column: it exits 2 saying to start the node once, and leaves
    the file as it was; after the node has opened it, the same command verifies it."""
    path = tmp_path / "v11.db"
    old_store(path)
    before = path.read_bytes()
    assert main(["audit", "verify", "--store", str(path)]) == 2
    said = capsys.readouterr().err
    assert f"schema version 11, older than version {SCHEMA_VERSION}" in said
    assert "start its node once" in said and "no such column" not in said
    assert path.read_bytes() == before

    async def opened_by_its_node() -> None:
        db = await Database.open(path)
        try:
            await db.write(log_tree.catch_up)
        finally:
            await db.close()

    asyncio.run(opened_by_its_node())
    assert main(["audit", "verify", "--store", str(path)]) == 0
    assert "evidence log intact: 5 entries" in capsys.readouterr().out

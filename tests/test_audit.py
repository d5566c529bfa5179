"""The evidence log: append-only, hash-chained, every signature checkable from the file alone."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.protocol.checkpoints import Head, cosign, sign_checkpoint
from node.protocol.envelope import Sealed, header, seal
from node.store import audit, checkpoints
from node.store.audit import GENESIS, AuditEntry, entry_hash, verify_chain, verify_store
from node.store.connection import IntegrityError, StoreLocation
from node.store.database import Database
from node.trust.keys import SigningKey
from node.trust.manifest import PROVINCES, KeyEntry, Manifest, Member, sign_manifest
from node.wire import pb
from tests.postgres import FILE_ONLY

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Federation:
    governance: SigningKey
    shanghai: SigningKey
    jiangsu: SigningKey

    def manifest(self, *, version: int = 1, revoked: frozenset[str] = frozenset()) -> bytes:
        members = tuple(
            Member(
                node_id=name,
                province=name,
                code=PROVINCES[name][0],
                endpoint="127.0.0.1:0",
                keys=(
                    KeyEntry(
                        key.key_id,
                        key.verify_key,
                        not_before=NOW - 3600,
                        not_after=NOW + 3600,
                        revoked=key.key_id in revoked,
                    ),
                ),
                may_send=frozenset({"heartbeat"}),
            )
            for name, key in (("shanghai", self.shanghai), ("jiangsu", self.jiangsu))
        )
        manifest = Manifest(
            federation="yrd-test",
            version=version,
            issued_at=NOW - 60,
            expires_at=NOW + 86400,
            members=members,
        )
        return sign_manifest(manifest, self.governance)


@pytest.fixture(scope="module")
def federation() -> Federation:
    return Federation(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())


@pytest.fixture
async def db(store_location: StoreLocation) -> AsyncIterator[Database]:
    store = await Database.open(store_location)
    yield store
    await store.close()


def heartbeat(key: SigningKey, *, sender: str, recipient: str, sequence: int) -> Sealed:
    message = pb.Message(
        header=header(sender=sender, recipient=recipient, now=NOW, manifest_version=1),
        heartbeat=pb.Heartbeat(sequence=sequence),
    )
    return seal(message, key)


async def append(
    db: Database, kind: str, body: bytes, *, direction: str = "sent", message_id: str = ""
) -> AuditEntry:
    return await db.write(
        lambda c: audit.append(
            c,
            direction=direction,
            peer="local" if kind == "manifest" else "jiangsu",
            message_id=message_id,
            kind=kind,
            body=body,
            recorded_at=NOW + 0.125,
        )
    )


async def exchange(db: Database, federation: Federation, count: int = 3) -> list[AuditEntry]:
    """A manifest, then `count` heartbeats sent and their signed replies: 1 + 2*count entries."""
    entries = [await append(db, "manifest", federation.manifest(), direction="local")]
    for i in range(count):
        sent = heartbeat(federation.shanghai, sender="shanghai", recipient="jiangsu", sequence=i)
        entries.append(await append(db, "envelope", sent.envelope, message_id=sent.message_id))
        reply = heartbeat(federation.jiangsu, sender="jiangsu", recipient="shanghai", sequence=i)
        entries.append(
            await append(
                db, "reply", reply.envelope, direction="received", message_id=sent.message_id
            )
        )
    return entries


def attacker(path: Path) -> sqlite3.Connection:
    """A raw connection with the append-only triggers (entries and tree) dropped, as someone
    editing the file."""
    conn = sqlite3.connect(path, isolation_level=None)
    for trigger in ("audit_no_update", "audit_no_delete", "audit_tree_no_update"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TRIGGER audit_tree_no_delete")
    return conn


def rechain(conn: sqlite3.Connection, start: int) -> None:
    """Recompute hashes and links from entry `start` on, as a careful forger would."""
    rows = conn.execute(
        "SELECT seq, recorded_at, direction, peer, message_id, kind, body FROM audit "
        "WHERE seq >= ? ORDER BY seq",
        (start,),
    ).fetchall()
    before = conn.execute("SELECT hash FROM audit WHERE seq = ?", (start - 1,)).fetchone()
    prev = GENESIS if before is None else before[0]
    for seq, recorded_at, direction, peer, message_id, kind, body in rows:
        new = entry_hash(
            prev,
            seq=seq,
            recorded_at=recorded_at,
            direction=direction,
            peer=peer,
            message_id=message_id,
            kind=kind,
            body=body,
        )
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new, seq))
        prev = new


async def test_entries_form_a_hash_chain(db: Database, federation: Federation) -> None:
    """Each entry links to the previous entry's hash, the first to the genesis hash."""
    entries = await exchange(db, federation, count=2)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    last = entries[-1]
    assert last.hash == entry_hash(
        last.prev_hash,
        seq=last.seq,
        recorded_at=last.recorded_at,
        direction=last.direction,
        peer=last.peer,
        message_id=last.message_id,
        kind=last.kind,
        body=last.body,
    )


def test_hash_encoding_is_unambiguous() -> None:
    """Moving bytes from one field to its neighbour changes the hash."""
    common = {"seq": 1, "recorded_at": NOW, "direction": "sent", "kind": "envelope", "body": b""}
    one = entry_hash(GENESIS, peer="ab", message_id="c", **common)  # type: ignore[arg-type]
    two = entry_hash(GENESIS, peer="a", message_id="bc", **common)  # type: ignore[arg-type]
    assert one != two


async def test_intact_chain_verifies(db: Database, federation: Federation, tmp_path: Path) -> None:
    """A chain of a manifest, signed envelopes and signed replies verifies, live and from file."""
    await exchange(db, federation)
    report = verify_chain(db.reader())
    assert (report.ok, report.entries, report.first_bad_seq) == (True, 7, None)
    await db.close()
    from_file = verify_store(db.location, governance_keys=[federation.governance.verify_key])
    assert from_file.ok
    assert from_file.entries == 7


async def test_empty_log_verifies(db: Database) -> None:
    """A store with no evidence yet verifies as an empty chain."""
    report = verify_chain(db.reader())
    assert (report.ok, report.entries) == (True, 0)


async def test_manifest_not_signed_by_governance_is_named(
    db: Database, federation: Federation
) -> None:
    """Checked against governance keys, a manifest signed by another key is the bad entry."""
    await exchange(db, federation, count=1)
    stranger = SigningKey.generate()
    report = verify_chain(db.reader(), governance_keys=[stranger.verify_key])
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert "not signed by a governance key" in report.reason


@FILE_ONLY
async def test_edited_body_is_found(db: Database, federation: Federation, tmp_path: Path) -> None:
    """Changing one byte of an entry's body makes verification stop at that entry."""
    await exchange(db, federation)
    await db.close()
    conn = attacker(tmp_path / "node.db")
    body = conn.execute("SELECT body FROM audit WHERE seq = 4").fetchone()[0]
    conn.execute("UPDATE audit SET body = ? WHERE seq = 4", (body[:-1] + bytes([body[-1] ^ 1]),))
    conn.close()
    report = verify_store(tmp_path / "node.db")
    assert (report.ok, report.first_bad_seq, report.entries) == (False, 4, 3)
    assert report.reason == "hash does not match its content"


@FILE_ONLY
async def test_rehashed_entry_breaks_the_next_link(
    db: Database, federation: Federation, tmp_path: Path
) -> None:
    """An edited entry whose own hash is recomputed is caught by the next entry's link."""
    await exchange(db, federation)
    await db.close()
    conn = attacker(tmp_path / "node.db")
    conn.execute("UPDATE audit SET peer = 'anhui' WHERE seq = 2")
    row = conn.execute(
        "SELECT prev_hash, seq, recorded_at, direction, peer, message_id, kind, body "
        "FROM audit WHERE seq = 2"
    ).fetchone()
    prev, seq, recorded_at, direction, peer, message_id, kind, body = row
    new = entry_hash(
        prev,
        seq=seq,
        recorded_at=recorded_at,
        direction=direction,
        peer=peer,
        message_id=message_id,
        kind=kind,
        body=body,
    )
    conn.execute("UPDATE audit SET hash = ? WHERE seq = 2", (new,))
    conn.close()
    report = verify_store(tmp_path / "node.db")
    assert report.first_bad_seq == 3
    assert report.reason == "prev_hash does not link to entry 2"


@FILE_ONLY
async def test_forged_signature_is_found_even_with_hashes_recomputed(
    db: Database, federation: Federation, tmp_path: Path
) -> None:
    """A changed signature, re-chained so every hash links, still fails at that entry."""
    await exchange(db, federation)
    await db.close()
    conn = attacker(tmp_path / "node.db")
    envelope = pb.Envelope.FromString(
        conn.execute("SELECT body FROM audit WHERE seq = 5").fetchone()[0]
    )
    envelope.signature = bytes([envelope.signature[0] ^ 1]) + envelope.signature[1:]
    conn.execute(
        "UPDATE audit SET body = ? WHERE seq = 5",
        (envelope.SerializeToString(deterministic=True),),
    )
    rechain(conn, 5)
    conn.close()
    report = verify_store(tmp_path / "node.db")
    assert report.first_bad_seq == 5
    assert report.reason == f"signature does not verify under {federation.jiangsu.key_id}"


async def test_key_must_be_in_an_earlier_manifest(db: Database, federation: Federation) -> None:
    """An envelope signed by a key that no earlier manifest lists fails at that entry."""
    early = heartbeat(federation.shanghai, sender="shanghai", recipient="jiangsu", sequence=0)
    await append(db, "envelope", early.envelope)
    report = verify_chain(db.reader())
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert report.reason == (
        f"key {federation.shanghai.key_id} is not in any manifest recorded before it"
    )


async def test_unknown_key_after_manifest_is_named(db: Database, federation: Federation) -> None:
    """A key outside every recorded manifest is refused even after a manifest was recorded."""
    await exchange(db, federation, count=1)
    outsider = SigningKey.generate()
    sealed = heartbeat(outsider, sender="shanghai", recipient="jiangsu", sequence=9)
    await append(db, "envelope", sealed.envelope)
    report = verify_chain(db.reader())
    assert report.first_bad_seq == 4
    assert outsider.key_id in report.reason


async def test_revoked_key_keeps_old_evidence_verifiable(
    db: Database, federation: Federation
) -> None:
    """Envelopes signed before a key was revoked still verify after the revoking manifest."""
    await exchange(db, federation, count=2)
    revoking = federation.manifest(version=2, revoked=frozenset({federation.shanghai.key_id}))
    await append(db, "manifest", revoking, direction="local")
    report = verify_chain(db.reader())
    assert (report.ok, report.entries) == (True, 6)


@FILE_ONLY
async def test_gap_in_sequence_is_found(
    db: Database, federation: Federation, tmp_path: Path
) -> None:
    """Deleting an entry from the middle leaves a gap that is named."""
    await exchange(db, federation)
    await db.close()
    conn = attacker(tmp_path / "node.db")
    conn.execute("DELETE FROM audit WHERE seq = 3")
    conn.close()
    report = verify_store(tmp_path / "node.db")
    assert report.first_bad_seq == 4
    assert report.reason == "gap in sequence: entry 3 is missing"


@FILE_ONLY
async def test_deleted_tail_is_found_and_stays_found(
    db: Database, federation: Federation, tmp_path: Path
) -> None:
    """Entries cut from the end are noticed, and later appends never reuse their numbers."""
    path = tmp_path / "node.db"
    await exchange(db, federation)
    await db.close()
    conn = attacker(path)
    conn.execute("DELETE FROM audit WHERE seq >= 6")
    conn.close()
    report = verify_store(path)
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert "entries at its end were deleted" in report.reason
    store = await Database.open(path)
    try:
        entry = await append(store, "manifest", federation.manifest(), direction="local")
        assert entry.seq == 8
        report = verify_chain(store.reader())
    finally:
        await store.close()
    assert report.reason == "gap in sequence: entries 6 to 7 are missing"


async def test_update_and_delete_are_refused(db: Database, federation: Federation) -> None:
    """The node's own SQL cannot change or remove evidence: the triggers abort it."""
    await exchange(db, federation, count=1)
    with pytest.raises(IntegrityError, match="audit log is append-only"):
        await db.write(lambda c: c.execute("UPDATE audit SET peer = 'anhui' WHERE seq = 2"))
    with pytest.raises(IntegrityError, match="audit log is append-only"):
        await db.write(lambda c: c.execute("DELETE FROM audit WHERE seq = 3"))
    assert verify_chain(db.reader()).entries == 3


async def test_bad_direction_or_kind_is_refused(db: Database) -> None:
    """Appending with an unknown direction or kind raises ValueError and appends nothing."""
    with pytest.raises(ValueError, match="direction must be one of"):
        await append(db, "envelope", b"", direction="outbound")
    with pytest.raises(ValueError, match="kind must be one of"):
        await append(db, "receipt", b"")
    assert verify_chain(db.reader()).entries == 0


async def test_a_revoked_key_keeps_the_checkpoints_it_cosigned_before_verifiable(
    db: Database, federation: Federation
) -> None:
    """A witness key revoked (as after a rotation) still vouches for what it cosigned before
    the log recorded the revoking manifest, not for a cosignature dated after; and a key
    counts only inside its window."""
    await append(db, "manifest", federation.manifest(), direction="local")
    revoking = federation.manifest(version=2, revoked=frozenset({federation.jiangsu.key_id}))
    await append(db, "manifest", revoking, direction="local")  # recorded at NOW + 0.125
    _keys, signers = audit.recorded_keys(db.reader())
    head = Head(2, bytes(32))

    def problem(cosigned_at: float) -> str:
        checkpoint = sign_checkpoint(
            federation.shanghai, origin="shanghai", head=head, now=NOW - 60, proofs={}
        )
        cosignature = cosign(
            federation.jiangsu, witness="jiangsu", checkpoint=checkpoint, now=cosigned_at
        )
        held = checkpoints.Cosigned(
            "shanghai", "jiangsu", 2, head.root_hash, checkpoint, cosignature, cosigned_at
        )
        return checkpoints.signature_problem(held, signers.keys_at)

    assert problem(NOW - 30) == ""
    assert "not signed by a key of its witness" in problem(NOW + 1)
    assert "not signed by a key of its witness" in problem(NOW - 7200)  # before not_before

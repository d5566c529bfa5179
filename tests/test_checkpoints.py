"""Checkpoints of the evidence log, cosigned by peers over real mutual-TLS gRPC, and the
rewrites an insider with the store file can make, each caught by the witness and by
``yrd audit verify`` with the checkpoints the witness holds."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from monitoring.status import NodeAnswer, link_rows, node_rows, problems
from node.cli.audit_cmd import divergence_headline
from node.peers.courier import AskFailed
from node.protocol.checkpoints import (
    MAX_PATH_NODES,
    MAX_PROOFS,
    MAX_PROOFS_WANTED,
    Head,
    KeysAt,
    check_checkpoint,
    checkpoint_verifies,
    cosign,
    cosigns,
    member_keys,
    sign_checkpoint,
)
from node.protocol.faults import FaultCode, Refusal
from node.protocol.merkle import MerkleTree
from node.runtime.config import ConfigError, load_config
from node.runtime.node import Node
from node.store import audit, checkpoints, outbox
from node.store.database import Database
from node.store.evidence import bundle
from node.store.log_tree import EntryFields, StoredTree
from node.trust.keys import SigningKey
from node.trust.manifest import KeyEntry
from node.wire import pb
from tests.nodes import BUDGET, config_for, eventually, make_mesh, running

pytestmark = pytest.mark.timeout(BUDGET * 4)

YRD = [sys.executable, "-m", "node.cli.main"]
QUIET = {"checkpoint_interval_seconds": 3600.0}
"""Checkpoints only when the test asks (and on shutdown)."""


async def traffic(sender: Node, receiver: Node, count: int) -> None:
    """``count`` probes from ``sender``, receipted: evidence entries on both sides."""
    await sender.courier.send(
        receiver.config.province, [("probe", pb.Probe(sequence=i)) for i in range(count)]
    )
    province = receiver.config.province
    await eventually(lambda: outbox.depth(sender.db.reader(), province)[0] == 0)


def audit_verify(store: Path, mesh: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``yrd audit verify --store STORE --mesh MESH``, as a process."""
    return subprocess.run(
        [*YRD, "audit", "verify", "--store", str(store), "--mesh", str(mesh), *options],
        capture_output=True,
        text=True,
        timeout=BUDGET,
    )


def store_of(node: Node) -> Path:
    return node.config.paths.store


def rewrite(store: Path, change: Callable[[list[EntryFields]], list[EntryFields]]) -> None:
    """What an insider with the file can do: drop the triggers, change the entries, re-chain
    every hash, rebuild the tree and reset SQLite's counter, and forget the checkpoints."""
    conn = sqlite3.connect(store)
    with conn:
        rows = conn.execute(
            "SELECT seq, recorded_at, direction, peer, message_id, kind, body FROM audit "
            "ORDER BY seq"
        ).fetchall()
        entries = change([EntryFields(*row) for row in rows])
        for trigger in ("audit_no_update", "audit_no_delete", "audit_tree_no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute("DELETE FROM audit")
        conn.execute("DELETE FROM audit_tree")
        conn.execute("DELETE FROM checkpoints WHERE witness != ''")
        conn.execute("UPDATE sqlite_sequence SET seq = 0 WHERE name = 'audit'")
        audit.append_many(
            conn,
            [
                audit.Record(
                    e.direction, e.peer, e.message_id, e.kind, bytes(e.body), e.recorded_at
                )
                for e in entries
            ],
        )
    conn.close()


def delete_one(entries: list[EntryFields]) -> list[EntryFields]:
    return entries[:2] + entries[3:]


def back_date(entries: list[EntryFields]) -> list[EntryFields]:
    moved = entries[2]._replace(recorded_at=entries[2].recorded_at - 30 * 86400)
    return [*entries[:2], moved, *entries[3:]]


def cut_tail(entries: list[EntryFields]) -> list[EntryFields]:
    return entries[:-2]


def held_by(node: Node, origin: str) -> list[checkpoints.Cosigned]:
    return checkpoints.cosigned(node.db.reader(), origin=origin, witness=node.config.province)


@pytest.mark.slow  # runs `yrd audit verify` as a process
async def test_a_peer_cosigns_each_checkpoint_that_extends_the_last(tmp_path: Path) -> None:
    """Both sides keep the cosigned checkpoint; the next one, over more entries, is proven
    consistent and cosigned too; the metrics show the witness's last size."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "shanghai", **QUIET)) as shanghai,
        running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu,
    ):
        await traffic(shanghai, jiangsu, 3)
        assert await shanghai.checkpoints.checkpoint() == {"jiangsu": "cosigned"}
        first = held_by(jiangsu, "shanghai")
        assert [h.tree_size for h in first] == [audit_size(shanghai)] and first[0].tree_size > 0
        await traffic(shanghai, jiangsu, 2)
        assert await shanghai.checkpoints.checkpoint() == {"jiangsu": "cosigned"}
        sizes = [h.tree_size for h in held_by(jiangsu, "shanghai")]
        assert len(sizes) == 2 and sizes[1] > sizes[0]
        # Each is kept as its signed head: the proofs it carried were checked, not kept.
        assert all(not h.checkpoint.proofs for h in held_by(jiangsu, "shanghai"))
        own = checkpoints.latest_cosigned(shanghai.db.reader(), "shanghai", "jiangsu")
        assert own is not None and own.tree_size == sizes[1]
        gauge = shanghai.metrics.checkpoint_cosigned_size.labels("jiangsu")._value.get()
        assert gauge == sizes[1]
        [link] = shanghai.health.status()["peers"]  # type: ignore[misc]
        assert link["cosigned"]["tree_size"] == sizes[1]
        assert link_rows([NodeAnswer("shanghai", shanghai.health.status())])[0][8].startswith(
            f"{sizes[1]} · "
        )
    report = audit.verify_store(store_of(shanghai))
    assert report.ok and report.witnesses == ("jiangsu",) and report.checkpoints >= 2
    shown = audit_verify(store_of(shanghai), mesh)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "witnesses: jiangsu" in shown.stdout


def audit_size(node: Node) -> int:
    (count,) = node.db.reader().execute("SELECT count(*) FROM audit").fetchone()
    return int(count)


@pytest.mark.slow  # runs `yrd audit verify` as a process
@pytest.mark.parametrize("change", [delete_one, back_date, cut_tail])
async def test_a_rewritten_log_is_refused_by_its_witness_and_caught_by_verify(
    tmp_path: Path, change: Callable[[list[EntryFields]], list[EntryFields]]
) -> None:
    """After a rewrite that re-chains every hash (so the log alone verifies), the witness
    refuses the next checkpoint with a signed log_inconsistent fault, counted, and stores
    nothing; ``verify`` with the witness's checkpoints names where the log diverges."""
    mesh = make_mesh(tmp_path)
    jiangsu_config = config_for(mesh, "jiangsu", **QUIET)
    shanghai_config = config_for(mesh, "shanghai", **QUIET)
    async with running(jiangsu_config) as jiangsu:
        async with running(shanghai_config) as shanghai:
            await traffic(shanghai, jiangsu, 4)
            assert await shanghai.checkpoints.checkpoint() == {"jiangsu": "cosigned"}
        # shanghai's shutdown checkpoint was cosigned too
        cosigned = held_by(jiangsu, "shanghai")
        rewrite(shanghai_config.paths.store, change)
        alone = audit.verify_store(shanghai_config.paths.store)
        assert alone.ok, alone.reason  # the log alone cannot tell
        witnessed = audit.verify_store(shanghai_config.paths.store, witnessed=cosigned)
        assert not witnessed.ok and witnessed.witnesses == ("jiangsu",)
        # no smaller cosigned checkpoint still matches: the witnesses bound it to entry 1
        assert witnessed.first_bad_seq == 1, witnessed.reason
        shown = audit_verify(shanghai_config.paths.store, mesh)
        assert shown.returncode == 1, shown.stderr
        assert witnessed.last_bad_seq is not None and witnessed.last_bad_seq >= 1
        assert f"BROKEN in entries 1 to {witnessed.last_bad_seq}:" in shown.stdout
        assert "witnesses: jiangsu" in shown.stdout and "checked before it" not in shown.stdout
        async with running(replace(shanghai_config)) as shanghai:
            outcome = await shanghai.checkpoints.checkpoint()
            assert outcome == {"jiangsu": FaultCode.LOG_INCONSISTENT.value}
            refused = shanghai.metrics.checkpoints_refused_by_peer.labels("jiangsu")
            assert refused._value.get() == 1
            # The status says so: the link's cosigned column, the node's "not ok", the verdict.
            [link] = shanghai.health.status()["peers"]  # type: ignore[misc]
            assert link["checkpoint_refused"]["count"] == 1
            assert link["checkpoint_refused"]["code"] == FaultCode.LOG_INCONSISTENT.value
            answers = [NodeAnswer("shanghai", shanghai.health.status())]
            assert link_rows(answers)[0][8] == "REFUSED"
            assert "log refused by witness jiangsu (log_inconsistent)" in node_rows(answers)[0][-1]
            assert any("jiangsu refuses to cosign shanghai's" in p for p in problems(answers))
        assert jiangsu.metrics.checkpoints_refused.labels("shanghai")._value.get() >= 1
        assert len(held_by(jiangsu, "shanghai")) == len(cosigned)
        # The refused checkpoint, signed by shanghai, is kept: the proof of the rewrite.
        [kept] = checkpoints.refused(jiangsu.db.reader(), "shanghai")
        manifest = jiangsu.credentials.manifest
        keys_at = member_keys({m.node_id: m.keys for m in manifest.members})
        assert checkpoint_verifies(kept, keys_at) and not kept.proofs
        contradicted = max(cosigned, key=lambda h: h.tree_size)
        assert kept.tree_size < contradicted.tree_size or (
            kept.tree_size == contradicted.tree_size and kept.root_hash != contradicted.root_hash
        )


def test_a_fork_shown_to_two_witnesses_is_refused_by_the_one_that_saw_the_other_branch() -> None:
    """Two trees of the same size shown to two witnesses each pass alone; a witness that
    cosigned one branch refuses the other, naming the root."""
    key = SigningKey.generate()
    keys = {key.key_id: key.verify_key}
    branch_a = Head(5, bytes(32))
    branch_b = Head(5, b"\x01" * 32)
    signed_b = sign_checkpoint(key, origin="node-310000", head=branch_b, now=1.0, proofs={})
    assert check_checkpoint(signed_b, sender="node-310000", keys=keys, cosigned=None) == branch_b
    with pytest.raises(Refusal) as refused:
        check_checkpoint(signed_b, sender="node-310000", keys=keys, cosigned=branch_a)
    assert refused.value.code is FaultCode.LOG_INCONSISTENT
    assert refused.value.field == "body.checkpoint.root_hash"


def test_a_checkpoint_not_signed_by_its_sender_is_refused() -> None:
    """A checkpoint with another node's origin, a short root or a bad signature is refused
    with a code naming it, before any comparison."""
    key = SigningKey.generate()
    other = SigningKey.generate()
    signed = sign_checkpoint(key, origin="node-310000", head=Head(1, bytes(32)), now=1.0, proofs={})
    with pytest.raises(Refusal, match="origin"):
        check_checkpoint(
            signed, sender="node-320000", keys={key.key_id: key.verify_key}, cosigned=None
        )
    with pytest.raises(Refusal) as bad:
        check_checkpoint(
            signed, sender="node-310000", keys={key.key_id: other.verify_key}, cosigned=None
        )
    assert bad.value.code is FaultCode.BAD_SIGNATURE
    short = pb.Checkpoint()
    short.CopyFrom(signed)
    short.root_hash = b"\x00"
    with pytest.raises(Refusal, match="32 bytes"):
        check_checkpoint(
            short, sender="node-310000", keys={key.key_id: key.verify_key}, cosigned=None
        )


async def test_a_purge_keeps_every_cosigned_checkpoint_valid(tmp_path: Path) -> None:
    """Purging the message bodies keeps their leaves: every checkpoint the node and its
    witness hold is still a prefix of the tree, and the witness cosigns the next one."""
    mesh = make_mesh(tmp_path)
    shanghai_config = config_for(mesh, "shanghai", **QUIET)
    async with running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu:
        async with running(shanghai_config) as shanghai:
            await traffic(shanghai, jiangsu, 3)
            assert await shanghai.checkpoints.checkpoint() == {"jiangsu": "cosigned"}
        db = await Database.open(shanghai_config.paths.store)
        try:
            purged = await db.write(
                lambda conn: audit.purge(conn, before=time.time(), now=time.time())
            )
        finally:
            await db.close()
        assert purged.entries > 0
        report = audit.verify_store(
            shanghai_config.paths.store, witnessed=held_by(jiangsu, "shanghai")
        )
        assert report.ok, report.reason
        assert report.witnesses == ("jiangsu",) and report.checkpoints >= 2
        async with running(shanghai_config) as shanghai:
            assert await shanghai.checkpoints.checkpoint() == {"jiangsu": "cosigned"}


@pytest.mark.slow  # runs `yrd audit verify` as a process
async def test_a_fork_shown_to_two_real_peers_is_refused_and_caught_by_verify(
    tmp_path: Path,
) -> None:
    """Shanghai shows one tree to Jiangsu, rewrites its log and shows the other tree to
    Zhejiang, which never saw the first: Zhejiang cosigns, Jiangsu refuses it, and
    ``verify --mesh`` with both witnesses' checkpoints names the divergence."""
    mesh = make_mesh(tmp_path, ("shanghai", "jiangsu", "zhejiang"))
    shanghai_config = config_for(mesh, "shanghai", **QUIET)
    async with running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu:
        async with running(shanghai_config) as shanghai:
            await traffic(shanghai, jiangsu, 3)
            outcome = await shanghai.checkpoints.checkpoint()
            assert outcome == {"jiangsu": "cosigned", "zhejiang": "unanswered"}
        rewrite(shanghai_config.paths.store, delete_one)
        async with (
            running(config_for(mesh, "zhejiang", **QUIET)) as zhejiang,
            running(shanghai_config) as shanghai,
        ):
            outcome = await shanghai.checkpoints.checkpoint()
            assert outcome == {"jiangsu": "log_inconsistent", "zhejiang": "cosigned"}
            assert held_by(zhejiang, "shanghai")
    shown = audit_verify(shanghai_config.paths.store, mesh)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "witnesses: jiangsu, zhejiang" in shown.stdout
    assert "not the ones jiangsu cosigned" in shown.stdout


async def shanghais_log(tmp_path: Path) -> tuple[Path, SigningKey]:
    """Shanghai's store after traffic to jiangsu (both stopped), and shanghai's key."""
    mesh = make_mesh(tmp_path)
    shanghai_config = config_for(mesh, "shanghai", **QUIET)
    async with running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu:
        async with running(shanghai_config) as shanghai:
            await traffic(shanghai, jiangsu, 3)
    return shanghai_config.paths.store, shanghai.credentials.signing_key


def audit_verify_alone(store: Path) -> subprocess.CompletedProcess[str]:
    """``yrd audit verify --store STORE``: what the store holds, no peer's checkpoints."""
    return subprocess.run(
        [*YRD, "audit", "verify", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=BUDGET,
    )


def self_cosign(store: Path, key: SigningKey, *, witness: str) -> None:
    """What an insider with the file and its node's own key adds after a rewrite: a
    checkpoint of the rewritten log "cosigned" by that same key under ``witness``'s name,
    kept as jiangsu's cosignature."""
    conn = sqlite3.connect(store)
    with conn:
        tree = StoredTree(conn)
        head = Head(tree.size, tree.root())
        now = time.time()
        checkpoint = sign_checkpoint(key, origin="node-310000", head=head, now=now, proofs={})
        checkpoints.record_cosigned(
            conn,
            origin="shanghai",
            witness="jiangsu",
            checkpoint=checkpoint,
            cosignature=cosign(key, witness=witness, checkpoint=checkpoint, now=now),
            cosigned_at=now,
            own=True,
        )
    conn.close()


@pytest.mark.slow  # runs `yrd audit verify` as a process
@pytest.mark.parametrize("witness", ["node-320000", "node-310000"])
async def test_a_self_cosigned_checkpoint_does_not_vouch_for_a_rewritten_log(
    tmp_path: Path, witness: str
) -> None:
    """After a rewrite that wipes the checkpoints, a row "cosigned" with the node's own key,
    under its witness's name or its own, is named by ``verify_store`` and by ``yrd audit
    verify`` as a cosignature that is not its witness's: the log is not ok."""
    store, key = await shanghais_log(tmp_path)
    rewrite(store, delete_one)
    self_cosign(store, key, witness=witness)
    report = audit.verify_store(store)
    assert not report.ok, report.reason
    assert "is not signed by a key of its witness" in report.reason
    shown = audit_verify_alone(store)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "BROKEN" in shown.stdout and "not signed by a key of its witness" in shown.stdout


def planted_witness_key(key: SigningKey) -> Callable[[list[EntryFields]], list[EntryFields]]:
    """A rewrite that also records, after the last manifest, a manifest entry listing
    ``key`` as jiangsu's (node-320000's) own, its governance signature left as it was."""

    def change(entries: list[EntryFields]) -> list[EntryFields]:
        kept = delete_one(entries)
        last = max(i for i, e in enumerate(kept) if e.kind == "manifest")
        document = json.loads(bytes(kept[last].body))
        [member] = [m for m in document["manifest"]["members"] if m["node_id"] == "node-320000"]
        planted = dict(member["signing_keys"][0], key_id=key.key_id, public_key=key.verify_key.text)
        member["signing_keys"].append(planted)
        body = json.dumps(document).encode()
        return [*kept[: last + 1], kept[last]._replace(body=body), *kept[last + 1 :]]

    return change


@pytest.mark.slow  # runs `yrd audit verify` as a process
async def test_a_manifest_entry_planting_a_witness_key_is_caught_with_the_mesh(
    tmp_path: Path,
) -> None:
    """An insider who re-chains the log with a manifest entry listing a key of its own as
    the witness's can cosign its rewritten log with it: the log alone cannot tell, but
    ``yrd audit verify --mesh`` checks every recorded manifest's governance signature with
    the node's configured governance keys, and names the planted entry."""
    store, own = await shanghais_log(tmp_path)
    mesh = tmp_path / "mesh"
    planted = SigningKey.generate()
    rewrite(store, planted_witness_key(planted))
    conn = sqlite3.connect(store)
    with conn:
        tree = StoredTree(conn)
        checkpoint = sign_checkpoint(
            own, origin="node-310000", head=Head(tree.size, tree.root()), now=time.time(), proofs={}
        )
        checkpoints.record_cosigned(
            conn,
            origin="shanghai",
            witness="jiangsu",
            checkpoint=checkpoint,
            cosignature=cosign(
                planted, witness="node-320000", checkpoint=checkpoint, now=time.time()
            ),
            cosigned_at=time.time(),
            own=True,
        )
    conn.close()
    alone = audit.verify_store(store)
    assert alone.ok and alone.witnesses == ("jiangsu",), alone.reason
    shown = audit_verify(store, mesh, "--json")
    assert shown.returncode == 1, shown.stdout + shown.stderr
    verdict = json.loads(shown.stdout)
    assert "manifest signature does not verify" in verdict["reason"]
    [manifest_seq] = [
        seq
        for (seq,) in sqlite3.connect(store).execute(
            "SELECT seq FROM audit WHERE kind = 'manifest' ORDER BY seq DESC LIMIT 1"
        )
    ]
    assert verdict["first_bad_seq"] == manifest_seq


def members(*keys: tuple[str, SigningKey]) -> KeysAt:
    """``KeysAt`` for members each with one key, usable from 0 to 10 000 s."""
    return member_keys(
        {node_id: [KeyEntry(key.key_id, key.verify_key, 0.0, 10_000.0)] for node_id, key in keys}
    )


def held(
    checkpoint: pb.Checkpoint, cosignature: pb.Cosignature, witness: str = "jiangsu"
) -> checkpoints.Cosigned:
    return checkpoints.Cosigned(
        "shanghai",
        witness,
        checkpoint.tree_size,
        checkpoint.root_hash,
        checkpoint,
        cosignature,
        cosignature.cosigned_at_ms / 1000,
    )


def test_a_checkpoint_or_cosignature_counts_only_under_its_own_signers_key() -> None:
    """A checkpoint signed by another member's key, a cosignature by the log's own node
    (under the witness's name or its own), or by a key outside its window, is named; the
    checkpoint signed by its origin and cosigned by its witness, each its own key, is not."""
    shanghai, jiangsu = SigningKey.generate(), SigningKey.generate()
    keys_at = members(("node-310000", shanghai), ("node-320000", jiangsu))
    head = Head(3, tree_of(3).root())

    def signed(by: SigningKey, witness_key: SigningKey, witness: str, at: float = 2.0) -> str:
        checkpoint = sign_checkpoint(by, origin="node-310000", head=head, now=1.0, proofs={})
        cosigned = cosign(witness_key, witness=witness, checkpoint=checkpoint, now=at)
        return checkpoints.signature_problem(held(checkpoint, cosigned), keys_at)

    assert signed(shanghai, jiangsu, "node-320000") == ""
    assert "not signed by its log's node" in signed(jiangsu, jiangsu, "node-320000")
    for witness in ("node-320000", "node-310000"):
        assert "not signed by a key of its witness" in signed(shanghai, shanghai, witness)
    assert "not signed by a key of its witness" in signed(shanghai, jiangsu, "node-330000")
    assert "not signed by a key of its witness" in signed(shanghai, jiangsu, "node-320000", 1e5)


def test_a_badly_signed_row_does_not_bound_the_divergence() -> None:
    """A row whose head matches the tree but whose cosignature does not verify is named, and
    does not move where the log is said to part: a checkpoint at 9 that does not match is
    bounded by the verified ones only (entries 1 to 9, not 5 to 9)."""
    shanghai, jiangsu = SigningKey.generate(), SigningKey.generate()
    keys_at = members(("node-310000", shanghai), ("node-320000", jiangsu))
    original = tree_of(12)
    rows = []
    for size, witness_key in ((4, shanghai), (9, jiangsu)):
        head = Head(size, original.root(size))
        checkpoint = sign_checkpoint(shanghai, origin="node-310000", head=head, now=1.0, proofs={})
        cosigned = cosign(witness_key, witness="node-320000", checkpoint=checkpoint, now=2.0)
        rows.append(held(checkpoint, cosigned))
    junk, parted = (d for _, d in checkpoints.divergences(tree_of(12, changed=6), rows, keys_at))
    assert junk is not None and "not signed by a key of its witness" in junk.reason
    assert parted is not None and (parted.first_seq, parted.last_seq) == (1, 9)


def beyond_bounds(signed: pb.Checkpoint) -> list[tuple[pb.Checkpoint, str, str]]:
    """``signed`` (a checkpoint of 3 entries, signed) made bigger than the protocol makes one,
    in each way a witness refuses: the checkpoint, the fault code, the field under
    ``body.checkpoint``. The proofs are not signed, so the signature still verifies."""
    node = bytes(32)

    def changed(change: Callable[[pb.Checkpoint], object]) -> pb.Checkpoint:
        checkpoint = pb.Checkpoint()
        checkpoint.CopyFrom(signed)
        change(checkpoint)
        return checkpoint

    def proofs(*made: tuple[int, list[bytes]]) -> Callable[[pb.Checkpoint], object]:
        return lambda c: [c.proofs.add(from_size=size, path=path) for size, path in made]

    return [
        (
            changed(proofs(*[(1, [node])] * (MAX_PROOFS + 1))),
            "message_too_large",
            "proofs",
        ),
        (changed(proofs((1, [node]), (1, [node]))), "invalid_payload", "proofs[1].from_size"),
        (changed(proofs((3, []))), "invalid_payload", "proofs[0].from_size"),
        (changed(proofs((7, [node]))), "invalid_payload", "proofs[0].from_size"),
        (changed(proofs((0, [node]))), "invalid_payload", "proofs[0].from_size"),
        (
            changed(proofs((1, [node] * (MAX_PATH_NODES + 1)))),
            "message_too_large",
            "proofs[0].path",
        ),
        (changed(proofs((2, [node, bytes(31)]))), "invalid_payload", "proofs[0].path"),
        (changed(lambda c: setattr(c, "key_id", "k" * 129)), "invalid_payload", "key_id"),
        (changed(lambda c: setattr(c, "signature", bytes(129))), "invalid_payload", "signature"),
        (changed(lambda c: setattr(c, "tree_size", 2**63)), "invalid_payload", "tree_size"),
    ]


def test_a_checkpoint_beyond_the_protocols_bounds_is_refused_naming_the_field() -> None:
    """More proofs than a sender makes, a proof from a size twice, from the tree's own size
    or beyond, from 0, a path too long or with a node not a digest, an overlong key id or
    signature, a tree larger than a store holds: each refused before anything is judged,
    though the checkpoint is its sender's and extends nothing cosigned."""
    key = SigningKey.generate()
    keys = {key.key_id: key.verify_key}
    signed = sign_checkpoint(key, origin="node-310000", head=Head(3, bytes(32)), now=1.0, proofs={})
    assert check_checkpoint(signed, sender="node-310000", keys=keys, cosigned=None)
    for checkpoint, code, field in beyond_bounds(signed):
        with pytest.raises(Refusal) as refused:
            check_checkpoint(checkpoint, sender="node-310000", keys=keys, cosigned=None)
        assert (refused.value.code.value, refused.value.field) == (code, f"body.checkpoint.{field}")


def test_an_answer_counts_as_a_cosignature_only_from_the_witness_key_usable_then() -> None:
    """The witness's cosignature of the checkpoint sent counts; one by a revoked or expired
    key of the witness, one naming another witness or checkpoint, or one asking for more
    proofs than a witness may, does not."""
    shanghai, jiangsu = SigningKey.generate(), SigningKey.generate()
    checkpoint = sign_checkpoint(
        shanghai, origin="node-310000", head=Head(3, bytes(32)), now=1.0, proofs={}
    )
    cosignature = cosign(jiangsu, witness="node-320000", checkpoint=checkpoint, now=2.0)

    def counts(answer: pb.Cosignature, *, revoked: bool = False, until: float = 10.0) -> bool:
        entry = KeyEntry(jiangsu.key_id, jiangsu.verify_key, 0.0, until, revoked)
        keys_at = member_keys({"node-320000": [entry]})
        return cosigns(answer, checkpoint, witness="node-320000", keys_at=keys_at)

    assert counts(cosignature)
    assert not counts(cosignature, revoked=True)
    assert not counts(cosignature, until=1.5)
    other = sign_checkpoint(
        shanghai, origin="node-310000", head=Head(4, bytes(32)), now=1.0, proofs={}
    )
    assert not counts(cosign(jiangsu, witness="node-320000", checkpoint=other, now=2.0))
    assert not counts(cosign(jiangsu, witness="node-330000", checkpoint=checkpoint, now=2.0))
    greedy = pb.Cosignature()
    greedy.CopyFrom(cosignature)
    greedy.proofs_wanted.extend(range(1, MAX_PROOFS_WANTED + 1))
    assert counts(greedy)
    greedy.proofs_wanted.append(MAX_PROOFS_WANTED + 1)
    assert not counts(greedy)


def tree_of(count: int, changed: int | None = None) -> MerkleTree:
    """A tree of ``count`` leaves; leaf ``changed`` (1-based) different."""
    return MerkleTree.of(
        [b"entry %d%s" % (i, b"!" if i == changed else b"") for i in range(1, count + 1)]
    )


def test_a_witness_takes_a_proof_from_the_size_it_holds_even_when_its_answer_was_lost() -> None:
    """The sender proves from the last size cosigned and the last sent; the witness, whose
    latest is the sent one (its cosignature never arrived), finds its proof among them; a
    checkpoint with no proof from the witness's size is refused."""
    key = SigningKey.generate()
    keys = {key.key_id: key.verify_key}
    tree = tree_of(11)
    proofs = {size: tree.consistency_path(size) for size in (4, 7)}
    head = Head(11, tree.root())
    signed = sign_checkpoint(key, origin="node-310000", head=head, now=2.0, proofs=proofs)
    for held in (4, 7):
        cosigned = Head(held, tree.root(held))
        assert check_checkpoint(signed, sender="node-310000", keys=keys, cosigned=cosigned) == head
    with pytest.raises(Refusal, match="no consistency proof from the 5 entries"):
        check_checkpoint(signed, sender="node-310000", keys=keys, cosigned=Head(5, tree.root(5)))


def test_verify_bounds_a_change_between_the_checkpoints_that_match_and_the_first_that_does() -> (
    None
):
    """Checkpoints at 4 and 9 of the original log, entry 6 changed since: the one at 4 still
    matches, the one at 9 does not, and the divergence is named as entries 5 to 9."""
    key = SigningKey.generate()
    witness_key = SigningKey.generate()
    keys = members(("node-310000", key), ("node-320000", witness_key))
    original = tree_of(12)
    held = []
    for size in (4, 9):
        head = Head(size, original.root(size))
        checkpoint = sign_checkpoint(key, origin="node-310000", head=head, now=1.0, proofs={})
        cosignature = cosign(witness_key, witness="node-320000", checkpoint=checkpoint, now=2.0)
        held.append(
            checkpoints.Cosigned(
                "shanghai", "jiangsu", size, head.root_hash, checkpoint, cosignature, 2.0
            )
        )
    results = checkpoints.divergences(tree_of(12, changed=6), held, keys)
    assert results[0][1] is None
    parted = results[1][1]
    assert parted is not None and (parted.first_seq, parted.last_seq) == (5, 9)
    assert "an entry in entries 5 to 9 was changed" in parted.reason
    assert all(d is None for _, d in checkpoints.divergences(original, held, keys))


async def test_a_forged_checkpoint_gets_a_signed_fault_and_changes_nothing(tmp_path: Path) -> None:
    """Over the real pipeline: a checkpoint naming another node's log, one whose signature
    is not the sender's, and each one beyond the protocol's bounds (signed by the sender) are
    refused with a signed fault naming the field; the witness keeps nothing and counts
    each."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "shanghai", **QUIET)) as shanghai,
        running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu,
    ):
        await eventually(lambda: shanghai.peers.link("jiangsu").up)
        key = shanghai.credentials.signing_key
        head = Head(1, bytes(32))
        other_origin = sign_checkpoint(key, origin="node-330000", head=head, now=1.0, proofs={})
        bad_signature = sign_checkpoint(key, origin="node-310000", head=head, now=1.0, proofs={})
        bad_signature.signature = bytes(64)
        cases = [
            (other_origin, "invalid_payload", "body.checkpoint.origin"),
            (bad_signature, "bad_signature", "body.checkpoint.signature"),
            *(
                (out_of_bounds, code, f"body.checkpoint.{field}")
                for out_of_bounds, code, field in beyond_bounds(
                    sign_checkpoint(
                        key, origin="node-310000", head=Head(3, bytes(32)), now=1.0, proofs={}
                    )
                )
            ),
        ]
        for forged, code, field in cases:
            answered = await shanghai.courier.ask(
                "jiangsu", "checkpoint", forged, timeout=BUDGET / 4, record=False
            )
            fault = answered.reply.message.fault
            assert (answered.reply.payload_type, fault.code, fault.field) == ("fault", code, field)
        assert held_by(jiangsu, "shanghai") == []
        refused = jiangsu.metrics.checkpoints_refused.labels("shanghai")._value.get()
        assert refused == len(cases)


async def test_nodes_stopping_at_once_cosign_each_others_last_checkpoint(tmp_path: Path) -> None:
    """Two nodes stopped at the same moment (a mesh stop) each hold the other's cosignature of
    its final checkpoint: the last checkpoint is sent before the server stops, and a stopping
    node still cosigns."""
    import asyncio

    mesh = make_mesh(tmp_path)
    shanghai = Node(config_for(mesh, "shanghai", **QUIET))
    jiangsu = Node(config_for(mesh, "jiangsu", **QUIET))
    await shanghai.start()
    await jiangsu.start()
    try:
        await traffic(shanghai, jiangsu, 2)
        await traffic(jiangsu, shanghai, 2)
    finally:
        await asyncio.gather(shanghai.stop(), jiangsu.stop())
    for node, witness in ((shanghai, "jiangsu"), (jiangsu, "shanghai")):
        me = node.config.province
        conn = sqlite3.connect(store_of(node))
        try:
            (size,) = conn.execute("SELECT count(*) FROM audit").fetchone()
            held = checkpoints.latest_cosigned(conn, me, witness)  # type: ignore[arg-type]
        finally:
            conn.close()
        assert held is not None, f"{me}'s last checkpoint was not cosigned by {witness}"
        assert held.tree_size == size


async def test_a_stopping_node_cosigns_checkpoints_and_refuses_everything_else(
    tmp_path: Path,
) -> None:
    """While a node stops it still cosigns a peer's checkpoint, and refuses any other
    request (a heartbeat, a probe) as unavailable."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu,
        running(config_for(mesh, "shanghai", **QUIET)) as shanghai,
    ):
        jiangsu.stopping = True
        try:
            assert await shanghai.checkpoints.checkpoint() == {"jiangsu": "cosigned"}
            refused = jiangsu.metrics.messages_refused
            for kind, body in (("heartbeat", pb.Heartbeat()), ("probe", pb.Probe(sequence=1))):
                # The refusal names no message (as before the envelope was read), so the
                # asker sees a reply about no request of its own.
                with pytest.raises(AskFailed):
                    await shanghai.courier.ask(
                        "jiangsu", kind, body, timeout=BUDGET, record=False, alone=True
                    )
                counted = refused.labels("shanghai", kind, "unavailable", "inbound")._value.get()
                assert counted >= 1, kind
            assert (
                refused.labels("shanghai", "checkpoint", "unavailable", "inbound")._value.get() == 0
            )
        finally:
            jiangsu.stopping = False


async def test_a_witness_that_never_cosigned_has_a_series_to_age_from(tmp_path: Path) -> None:
    """A peer that never answers has no cosignature time, but the time the node started
    asking it is exported from the start, so YrdWitnessSilent can fire for it."""
    mesh = make_mesh(tmp_path)
    before = time.time()
    async with running(config_for(mesh, "shanghai", **QUIET)) as shanghai:
        gauge = shanghai.metrics.checkpoint_witness_since.labels("jiangsu")._value
        await eventually(lambda: gauge.get() > 0)
        assert before <= gauge.get() <= time.time()
        exposed = {
            sample.labels.get("peer")
            for family in shanghai.metrics.registry.collect()
            if family.name == "yrd_checkpoint_cosigned_timestamp_seconds"
            for sample in family.samples
        }
        assert "jiangsu" not in exposed


@pytest.mark.parametrize("key", ["checkpoint_interval_seconds", "heartbeat_interval_seconds"])
@pytest.mark.parametrize("value", ["0", "-1.5", "nan", "inf"])
def test_an_interval_that_would_spin_a_loop_is_refused(
    tmp_path: Path, key: str, value: str
) -> None:
    """An interval of zero, less, or no number at all is refused naming the key, instead of a
    loop checkpointing (or heartbeating) as fast as it can."""
    path = make_mesh(tmp_path) / "shanghai" / "node.toml"
    text = path.read_text(encoding="utf-8")
    assert f"\n{key} = " in text
    changed = [
        f"{key} = {value}" if line.startswith(f"{key} =") else line for line in text.split("\n")
    ]
    path.write_text("\n".join(changed), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"'{key}' must be a positive number of seconds"):
        load_config(path, {})


def test_the_headline_of_a_divergence_names_the_range_it_lies_in() -> None:
    """Entry 100 of 849 deleted and the log re-chained, witnesses holding checkpoints at 25
    and 230: the headline names entries 26 to 230 and says why no closer, instead of "BROKEN
    at entry 26 (848 entries checked before it)"."""
    report = audit.AuditReport(
        848,
        False,
        26,
        "the log's first 230 entries are not the ones jiangsu cosigned: an entry in entries "
        "26 to 230 was changed, removed or added",
        ("jiangsu",),
        3,
        last_bad_seq=230,
    )
    shown = divergence_headline(report)
    assert shown.startswith("evidence log BROKEN in entries 26 to 230: ")
    assert "entries 1 to 25 match a cosigned checkpoint" in shown
    assert "which entry of 26 to 230 differs first cannot be told" in shown
    assert "848 entries link and verify on their own" in shown
    assert "checked before it" not in shown


async def test_a_row_copied_under_another_witnesss_name_is_counted_for_its_real_witness(
    tmp_path: Path,
) -> None:
    """An insider copies the checkpoint Jiangsu cosigned into a row under Zhejiang's name:
    verify names the witness the cosignature itself names (jiangsu), never zhejiang, and
    the evidence bundle shows that cosignature once."""
    store, _ = await shanghais_log(tmp_path)
    conn = sqlite3.connect(store)
    with conn:
        copied = conn.execute(
            "INSERT INTO checkpoints (origin, witness, tree_size, root_hash, checkpoint, "
            "cosignature, cosigned_at, own) SELECT origin, 'zhejiang', tree_size, root_hash, "
            "checkpoint, cosignature, cosigned_at, own FROM checkpoints "
            "WHERE witness = 'jiangsu' AND cosignature IS NOT NULL"
        ).rowcount
        message_id = conn.execute(
            "SELECT message_id FROM audit WHERE direction = 'sent' ORDER BY seq LIMIT 1"
        ).fetchone()[0]
    conn.close()
    assert copied >= 1
    report = audit.verify_store(store)
    assert report.ok, report.reason
    assert report.witnesses == ("jiangsu",)
    with audit.read_only(store) as reader:
        shown = bundle(reader, message_id)
    assert [c["witness"] for c in shown["log"]["cosignatures"]] == ["node-320000"]


def test_a_checkpoint_padded_with_unknown_fields_is_kept_without_them(tmp_path: Path) -> None:
    """A peer's signed checkpoint and cosignature padded with a megabyte in a field this
    code does not know (protobuf keeps such fields) are kept as their known fields only,
    which is all their signatures cover."""
    key = SigningKey.generate()
    checkpoint = sign_checkpoint(
        key, origin="node-310000", head=Head(3, b"\x01" * 32), now=time.time(), proofs={}
    )
    cosignature = cosign(key, witness="node-320000", checkpoint=checkpoint, now=time.time())
    padding = b"\xfa\x06" + b"\x80\x80\x40" + b"x" * (1 << 20)  # field 111, length 1 MiB
    padded = pb.Checkpoint.FromString(checkpoint.SerializeToString() + padding)
    padded_cosignature = pb.Cosignature.FromString(cosignature.SerializeToString() + padding)
    assert padded.ByteSize() > 1 << 20

    async def keep() -> tuple[bytes, bytes]:
        db = await Database.open(tmp_path / "node.db")
        try:
            await db.write(
                lambda conn: checkpoints.record_cosigned(
                    conn,
                    origin="shanghai",
                    witness="jiangsu",
                    checkpoint=padded,
                    cosignature=padded_cosignature,
                    cosigned_at=time.time(),
                    own=False,
                )
            )
            row = db.reader().execute("SELECT checkpoint, cosignature FROM checkpoints").fetchone()
            return bytes(row[0]), bytes(row[1])
        finally:
            await db.close()

    kept, kept_cosignature = asyncio.run(keep())
    assert len(kept) < 1000 and len(kept_cosignature) < 1000
    assert pb.Checkpoint.FromString(kept) == checkpoint
    assert pb.Cosignature.FromString(kept_cosignature) == cosignature

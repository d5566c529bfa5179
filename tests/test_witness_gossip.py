"""Witnesses comparing heads (gossip): a log shown one way to one witness and another way to
another — a split view neither witness sees directly — is found by the witnesses once they
show each other the heads they cosigned; an honest growing log proves every shown head
consistent and raises nothing. In-process nodes over real mutual-TLS gRPC, and the decision
functions on their own."""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from node.protocol.checkpoints import (
    MAX_PROOFS_WANTED,
    MAX_WITNESSED_HEADS,
    PROOF_ASKS,
    Head,
    ShownCheck,
    SplitView,
    Standing,
    WitnessedHead,
    check_shown,
    check_witnessed_heads,
    cosign,
    judge_shown,
    sign_checkpoint,
)
from node.protocol.faults import FaultCode, Refusal
from node.protocol.merkle import MerkleTree
from node.runtime.config import NodeConfig
from node.runtime.node import Node
from node.store import audit, checkpoints
from node.store.connection import StoreLocation
from node.store.database import Database
from node.trust.keys import SigningKey
from node.wire import pb
from tests.nodes import BUDGET, config_for, eventually, make_mesh, running
from tests.test_checkpoints import QUIET, back_date, rewrite, traffic

pytestmark = pytest.mark.timeout(BUDGET * 4)

THREE = ("shanghai", "jiangsu", "zhejiang")
SHANGHAI, JIANGSU, ZHEJIANG = "node-310000", "node-320000", "node-330000"


def tree_of(count: int, changed: int | None = None) -> MerkleTree:
    """A tree of ``count`` leaves; leaf ``changed`` (1-based) different: another branch."""
    return MerkleTree.of(
        [b"entry %d%s" % (i, b"!" if i == changed else b"") for i in range(1, count + 1)]
    )


def head_of(tree: MerkleTree, size: int) -> Head:
    return Head(size, tree.root(size))


# -- the decision functions (sans-I/O) --------------------------------------------------------


def test_a_shown_head_is_known_pending_or_a_split_view() -> None:
    """Against the heads of a log a witness holds, a shown head of the same size and root is
    known, of a size held with another root is a split view naming both roots, and of any
    other size waits for a proof."""
    a, b = tree_of(9), tree_of(9, changed=3)
    held = [head_of(a, 4), head_of(a, 9)]
    assert judge_shown(head_of(a, 9), held) is Standing.KNOWN
    assert judge_shown(head_of(a, 6), held) is Standing.PENDING
    assert judge_shown(head_of(b, 6), held) is Standing.PENDING
    split = judge_shown(head_of(b, 9), held)
    assert isinstance(split, SplitView)
    assert (split.held, split.shown) == (head_of(a, 9), head_of(b, 9))
    assert "two heads of 9 entries with different roots" in split.reason
    assert a.root(9).hex()[:16] in split.reason and b.root(9).hex()[:16] in split.reason
    assert judge_shown(head_of(a, 4), []) is Standing.PENDING


def checkpoint_of(tree: MerkleTree, size: int, proofs_from: tuple[int, ...] = ()) -> pb.Checkpoint:
    key = SigningKey.generate()
    return sign_checkpoint(
        key,
        origin=SHANGHAI,
        head=head_of(tree, size),
        now=1.0,
        proofs={s: tree.consistency_path(s, size) for s in proofs_from},
    )


def test_a_checkpoint_proves_the_shown_heads_it_extends_and_is_asked_for_the_rest() -> None:
    """A checkpoint with a valid proof from a shown head proves it; one of the shown head's
    own size and root proves it too; without a proof the head is wanted, until the witness
    has asked ``PROOF_ASKS`` times, when the checkpoint is refused."""
    tree = tree_of(12)
    shown = [head_of(tree, 5), head_of(tree, 8)]
    settled = check_shown(checkpoint_of(tree, 12, (5,)), shown, asked=lambda _: 0)
    assert settled.proven == (head_of(tree, 5),)
    assert settled.wanted == (head_of(tree, 8),) and settled.wanted_sizes == [8]
    empty = Head(0, MerkleTree.of([]).root())
    assert check_shown(checkpoint_of(tree, 12), [empty], asked=lambda _: 0).proven == (empty,)
    settled = check_shown(checkpoint_of(tree, 8, (5,)), shown, asked=lambda _: 0)
    assert settled.proven == (head_of(tree, 5), head_of(tree, 8)) and settled.wanted == ()
    # Asked once or twice, still room for a lost answer; at the limit, refused.
    asked_before = check_shown(checkpoint_of(tree, 12), shown, asked=lambda _: PROOF_ASKS - 1)
    assert asked_before.wanted_sizes == [5, 8]
    with pytest.raises(Refusal, match=f"from the head of 5 entries .* {PROOF_ASKS} times") as no:
        check_shown(checkpoint_of(tree, 12), shown, asked=lambda _: PROOF_ASKS)
    assert no.value.code is FaultCode.LOG_INCONSISTENT


def test_a_checkpoint_of_another_branch_than_a_shown_head_is_a_split_view() -> None:
    """Against a head of branch A another witness cosigned, a checkpoint of branch B is
    refused as log_inconsistent: its proof fails, its root at the same size differs, or it
    is smaller than the head its node signed."""
    a, b = tree_of(12), tree_of(12, changed=3)
    shown = [head_of(a, 6)]
    cases = (
        (checkpoint_of(b, 12, (6,)), "does not extend the head of 6", "body.checkpoint.proofs"),
        (checkpoint_of(b, 6), "another root for 6 entries", "body.checkpoint.root_hash"),
        (checkpoint_of(a, 5), "a checkpoint of 5 entries, after", "body.checkpoint.tree_size"),
    )
    for checkpoint, says, field in cases:
        with pytest.raises(Refusal, match=says) as refused:
            check_shown(checkpoint, shown, asked=lambda _: 0)
        assert (refused.value.code, refused.value.field) == (FaultCode.LOG_INCONSISTENT, field)
    # The same proofs from the branch the witness saw pass.
    assert check_shown(checkpoint_of(a, 12, (6,)), shown, asked=lambda _: 0).proven == (
        head_of(a, 6),
    )


class Gossip:
    """Heads Jiangsu shows Zhejiang, signed with real keys, checked as Zhejiang would."""

    def __init__(self) -> None:
        self.owner = SigningKey.generate()
        self.sender = SigningKey.generate()

    def head(
        self, origin: str = SHANGHAI, size: int = 4, key: SigningKey | None = None
    ) -> pb.WitnessedHead:
        tree = tree_of(size)
        checkpoint = sign_checkpoint(
            key or self.owner, origin=origin, head=head_of(tree, size), now=5.0, proofs={}
        )
        cosignature = cosign(self.sender, witness=JIANGSU, checkpoint=checkpoint, now=6.0)
        return pb.WitnessedHead(checkpoint=checkpoint, cosignature=cosignature)

    def check(self, *heads: pb.WitnessedHead) -> list[str]:
        members = {SHANGHAI: self.owner, "node-340000": self.owner, JIANGSU: self.sender}
        checked = check_witnessed_heads(
            pb.WitnessedHeads(heads=heads),
            sender=JIANGSU,
            me=ZHEJIANG,
            keys_at=lambda node_id, _: (
                {members[node_id].key_id: members[node_id].verify_key}
                if node_id in members
                else None
            ),
        )
        return [h.origin for h in checked]


def refusal_of(gossip: Gossip, *heads: pb.WitnessedHead) -> tuple[FaultCode, str]:
    with pytest.raises(Refusal) as refused:
        gossip.check(*heads)
    return refused.value.code, refused.value.field


def test_witnessed_heads_are_checked_whole_before_anything_is_judged() -> None:
    """Every head must be signed by its log's node and cosigned by the sender, of a third
    party's log, one per log, without proofs, and at most ``MAX_WITNESSED_HEADS`` of them;
    the first that is not refuses the whole message, naming the head and field."""
    gossip = Gossip()
    assert gossip.check(gossip.head(), gossip.head("node-340000")) == [SHANGHAI, "node-340000"]
    forged = gossip.head(key=SigningKey.generate())
    assert refusal_of(gossip, gossip.head("node-340000"), forged) == (
        FaultCode.BAD_SIGNATURE,
        "body.witnessed_heads.heads[1].checkpoint.signature",
    )
    not_cosigned = gossip.head()
    not_cosigned.cosignature.witness = "node-340000"
    assert refusal_of(gossip, not_cosigned) == (
        FaultCode.BAD_SIGNATURE,
        "body.witnessed_heads.heads[0].cosignature",
    )
    other_head = gossip.head()
    other_head.cosignature.tree_size += 1  # cosigns another head than the one shown
    assert refusal_of(gossip, other_head)[0] is FaultCode.BAD_SIGNATURE
    with_proofs = gossip.head()
    with_proofs.checkpoint.proofs.add(from_size=1)
    for bad, field in (
        (gossip.head(JIANGSU), "[0].checkpoint.origin"),
        (gossip.head(ZHEJIANG), "[0].checkpoint.origin"),
        (gossip.head("node-999999"), "[0].checkpoint.origin"),
        (with_proofs, "[0].checkpoint.proofs"),
    ):
        assert refusal_of(gossip, bad) == (
            FaultCode.INVALID_PAYLOAD,
            f"body.witnessed_heads.heads{field}",
        )
    assert refusal_of(gossip, gossip.head(), gossip.head(size=5)) == (
        FaultCode.INVALID_PAYLOAD,
        "body.witnessed_heads.heads[1].checkpoint.origin",
    )
    # The sender's key must be usable when it cosigned (6.0 here): not, say, revoked.
    with pytest.raises(Refusal, match="not cosigned by the sender") as revoked:
        check_witnessed_heads(
            pb.WitnessedHeads(heads=[gossip.head()]),
            sender=JIANGSU,
            me=ZHEJIANG,
            keys_at=lambda node_id, when: (
                {gossip.owner.key_id: gossip.owner.verify_key}
                if node_id == SHANGHAI
                else {gossip.sender.key_id: gossip.sender.verify_key}
                if when != 6.0
                else {}
            ),
        )
    assert revoked.value.code is FaultCode.BAD_SIGNATURE
    too_many = [gossip.head()] * (MAX_WITNESSED_HEADS + 1)
    assert refusal_of(gossip, *too_many) == (
        FaultCode.MESSAGE_TOO_LARGE,
        "body.witnessed_heads.heads",
    )
    oversize = gossip.head()
    oversize.checkpoint.key_id = "x" * 40_000
    assert refusal_of(gossip, oversize)[0] is FaultCode.MESSAGE_TOO_LARGE


# -- three real peers -------------------------------------------------------------------------


def rows_of(node: Node, origin: str) -> list[tuple[str, int, bytes]]:
    """Every head of ``origin``'s log ``node`` holds: (the witness that cosigned it, size,
    root), cosigned by ``node`` itself or shown to it."""
    return [
        (str(w), int(n), bytes(r))
        for w, n, r in node.db.reader().execute(
            "SELECT witness, tree_size, root_hash FROM checkpoints WHERE origin = ? "
            "ORDER BY witness, tree_size",
            (origin,),
        )
    ]


def latest(node: Node, origin: str) -> Head:
    held = checkpoints.latest_cosigned(node.db.reader(), origin, node.config.province)
    assert held is not None
    return held


def split_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[object, ...]]:
    return [
        tuple(r.__dict__.get(k) for k in ("peer", "held_size", "shown_size", "shown_by"))
        for r in caplog.records
        if r.getMessage() == "a split view of a peer's log"
    ]


async def split_shanghai(mesh: Path, *, grow: int) -> tuple[Head, Head]:
    """Shanghai shows Jiangsu its log, then rewrites it (entry 3 back-dated, every hash
    re-chained: another root over the same entries), grows it by ``grow`` probes to Zhejiang,
    and shows Zhejiang that. Neither witness is running while the other is shown its
    branch. Returns the heads each cosigned last."""
    shanghai_config = config_for(mesh, "shanghai", **QUIET)
    async with running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu:
        async with running(shanghai_config) as shanghai:
            await traffic(shanghai, jiangsu, 3)
            assert (await shanghai.checkpoints.checkpoint())["jiangsu"] == "cosigned"
        branch_a = latest(jiangsu, "shanghai")
    rewrite(shanghai_config.paths.store, back_date)
    async with running(config_for(mesh, "zhejiang", **QUIET)) as zhejiang:
        async with running(shanghai_config) as shanghai:
            if grow:
                await traffic(shanghai, zhejiang, grow)
            assert (await shanghai.checkpoints.checkpoint())["zhejiang"] == "cosigned"
        branch_b = latest(zhejiang, "shanghai")
    assert branch_a.root_hash != branch_b.root_hash
    return branch_a, branch_b


async def show_two_branches(
    shanghai: Node, to_jiangsu: MerkleTree, to_zhejiang: MerkleTree
) -> None:
    """Shanghai, with its real key over its real links, shows each witness the head of
    another tree, and each cosigns it: neither sees the other's."""
    key = shanghai.credentials.signing_key
    for province, tree in (("jiangsu", to_jiangsu), ("zhejiang", to_zhejiang)):
        await eventually(lambda p=province: shanghai.peers.link(p).up)  # type: ignore[misc]
        shown = sign_checkpoint(
            key, origin=SHANGHAI, head=head_of(tree, tree.size), now=time.time(), proofs={}
        )
        answered = await shanghai.courier.ask(
            province, "checkpoint", shown, timeout=BUDGET / 4, record=False
        )
        assert answered.payload_type == "cosignature", (province, answered.fault)


async def test_a_split_view_neither_witness_saw_is_found_when_they_compare_heads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Shanghai shows Jiangsu one tree and Zhejiang another of the same size, each signed
    with its real key over its real link; each witness cosigns, as neither sees the other's.
    One gossip round each way: each witness refuses the other's head with a signed
    log_inconsistent fault naming Shanghai and the size, counts a refusal of Shanghai's log,
    logs both sizes, and keeps the other witness's head beside its own as evidence."""
    mesh = make_mesh(tmp_path, THREE)
    branch_a, branch_b = tree_of(9), tree_of(9, changed=3)
    caplog.set_level(logging.ERROR)
    async with (
        running(config_for(mesh, "shanghai", **QUIET)) as shanghai,
        running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu,
        running(config_for(mesh, "zhejiang", **QUIET)) as zhejiang,
    ):
        await show_two_branches(shanghai, branch_a, branch_b)
        await eventually(lambda: jiangsu.peers.link("zhejiang").up)
        await eventually(lambda: zhejiang.peers.link("jiangsu").up)
        assert (await jiangsu.checkpoints.heads.gossip())["zhejiang"] == "log_inconsistent"
        assert (await zhejiang.checkpoints.heads.gossip())["jiangsu"] == "log_inconsistent"
        # The fault is Zhejiang's signed answer, naming the log and the size.
        held = checkpoints.latest_witnessed(jiangsu.db.reader(), "shanghai", "jiangsu")
        assert held is not None
        head = pb.WitnessedHead(checkpoint=held.checkpoint, cosignature=held.cosignature)
        answered = await jiangsu.courier.ask(
            "zhejiang",
            "witnessed_heads",
            pb.WitnessedHeads(heads=[head]),
            timeout=BUDGET / 4,
            record=False,
        )
        fault = answered.fault
        assert answered.reply.sender.node_id == ZHEJIANG
        assert fault is not None and fault.code == FaultCode.LOG_INCONSISTENT.value
        assert "shanghai's log is split: two heads of 9 entries with different roots" in fault.text
        for node, other, mine, theirs in (
            (zhejiang, "jiangsu", branch_b, branch_a),
            (jiangsu, "zhejiang", branch_a, branch_b),
        ):
            refused = node.metrics.checkpoints_refused.labels("shanghai")._value.get()
            assert refused >= 1, node.config.province
            held_rows = rows_of(node, "shanghai")
            assert (node.config.province, 9, mine.root()) in held_rows
            assert (other, 9, theirs.root()) in held_rows
            assert ("shanghai", 9, 9, other) in split_lines(caplog)
        # Neither witness blames the other's own log.
        assert zhejiang.metrics.checkpoints_refused.labels("jiangsu")._value.get() == 0
        assert jiangsu.metrics.checkpoints_refused.labels("zhejiang")._value.get() == 0


async def test_witnesses_compare_heads_every_checkpoint_interval_on_their_own(
    tmp_path: Path,
) -> None:
    """Jiangsu and Zhejiang, each shown its own branch of Shanghai's log, then run with a
    short checkpoint interval: with no call from the test they show each other the heads
    they cosigned, and each finds the split view."""
    mesh = make_mesh(tmp_path, THREE)
    async with running(config_for(mesh, "shanghai", **QUIET)) as shanghai:
        async with (
            running(config_for(mesh, "jiangsu", **QUIET)),
            running(config_for(mesh, "zhejiang", **QUIET)),
        ):
            await show_two_branches(shanghai, tree_of(7), tree_of(7, changed=2))
        often = {"checkpoint_interval_seconds": 0.3}
        async with (
            running(config_for(mesh, "jiangsu", **often)) as jiangsu,
            running(config_for(mesh, "zhejiang", **often)) as zhejiang,
        ):
            for node in (jiangsu, zhejiang):
                refused = node.metrics.checkpoints_refused.labels("shanghai")._value
                await eventually(lambda r=refused: r.get() >= 1)  # type: ignore[misc]


async def test_a_split_view_of_different_sizes_is_found_when_its_node_cannot_prove_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Branches of different sizes pass the gossip round as pending heads; Zhejiang's next
    cosignature of Shanghai asks for a proof from the size Jiangsu cosigned, Shanghai's
    next checkpoint brings one from its own tree, which fails, and Zhejiang refuses it with
    a signed log_inconsistent fault, a count and a log line naming both sizes."""
    mesh = make_mesh(tmp_path, THREE)
    branch_a, branch_b = await split_shanghai(mesh, grow=2)
    assert branch_a.tree_size < branch_b.tree_size
    caplog.set_level(logging.ERROR)
    async with running(config_for(mesh, "zhejiang", **QUIET)) as zhejiang:
        async with running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu:
            await eventually(lambda: jiangsu.peers.link("zhejiang").up)
            await eventually(lambda: zhejiang.peers.link("jiangsu").up)
            assert (await jiangsu.checkpoints.heads.gossip())["zhejiang"] == "received"
            assert (await zhejiang.checkpoints.heads.gossip())["jiangsu"] == "received"
        assert ("jiangsu", branch_a.tree_size, branch_a.root_hash) in rows_of(zhejiang, "shanghai")
        assert zhejiang.metrics.checkpoints_refused.labels("shanghai")._value.get() == 0
        async with running(config_for(mesh, "shanghai", **QUIET)) as shanghai:
            assert (await shanghai.checkpoints.checkpoint())["zhejiang"] == "cosigned"
            wanted = checkpoints.proofs_wanted(shanghai.db.reader(), "shanghai", "zhejiang")
            assert wanted == [branch_a.tree_size]
            outcome = await shanghai.checkpoints.checkpoint()
            assert outcome["zhejiang"] == FaultCode.LOG_INCONSISTENT.value
            refusal = shanghai.checkpoints.refusals["zhejiang"]
            assert f"extend the head of {branch_a.tree_size}" in refusal.reason
            assert "the log is split" in refusal.reason
        # Refused again by Shanghai's checkpoint on stopping: refused as long as it is split.
        assert zhejiang.metrics.checkpoints_refused.labels("shanghai")._value.get() == 2
        # The head Jiangsu cosigned stays as evidence: Zhejiang's store alone shows verify
        # where Shanghai's log parts from it.
        assert ("jiangsu", branch_a.tree_size, branch_a.root_hash) in rows_of(zhejiang, "shanghai")
        witnessed = checkpoints.cosigned(zhejiang.db.reader(), origin="shanghai")
    report = audit.verify_store(config_for(mesh, "shanghai").paths.store, witnessed=witnessed)
    assert not report.ok and set(report.witnesses) == {"jiangsu", "zhejiang"}
    assert "not the ones jiangsu cosigned" in report.reason, report.reason
    # So does `yrd audit verify --mesh` with Jiangsu's store gone: Zhejiang's copy of the
    # head Jiangsu cosigned is enough.
    jiangsu_store = config_for(mesh, "jiangsu").paths.store
    assert isinstance(jiangsu_store, Path)
    for leftover in jiangsu_store.parent.glob(jiangsu_store.name + "*"):
        leftover.unlink()
    shanghai_store = str(config_for(mesh, "shanghai").paths.store)
    capsys.readouterr()
    assert main(["audit", "verify", "--store", shanghai_store, "--mesh", str(mesh)]) == 1
    shown = capsys.readouterr().out
    assert "witnesses: jiangsu, zhejiang" in shown and "not the ones jiangsu cosigned" in shown
    lines = [
        r.__dict__.get("reason", "")
        for r in caplog.records
        if r.getMessage() == "refused a peer's checkpoint" and r.__dict__.get("peer") == "shanghai"
    ]
    assert any(f"head of {branch_a.tree_size}" in line for line in lines), lines


EVERYONE = {"jiangsu": "cosigned", "zhejiang": "cosigned"}


async def zhejiang_misses_a_head(
    shanghai: Node, jiangsu_config: NodeConfig, zhejiang_config: NodeConfig
) -> checkpoints.Cosigned:
    """Both witnesses cosign a checkpoint of Shanghai's log; then Jiangsu alone cosigns the
    next (returned: the head Zhejiang missed), and Zhejiang alone a later one."""
    async with running(jiangsu_config) as jiangsu, running(zhejiang_config):
        await eventually(lambda: shanghai.peers.link("zhejiang").up)
        await traffic(shanghai, jiangsu, 2)
        assert await shanghai.checkpoints.checkpoint() == EVERYONE
    async with running(jiangsu_config) as jiangsu:
        await traffic(shanghai, jiangsu, 2)
        assert (await shanghai.checkpoints.checkpoint())["jiangsu"] == "cosigned"
        missed = checkpoints.latest_witnessed(jiangsu.db.reader(), "shanghai", "jiangsu")
        assert missed is not None
    # Zhejiang cosigns a later head, so the one it missed is not the last it was sent.
    async with running(zhejiang_config) as zhejiang:
        await traffic(shanghai, zhejiang, 1)
        assert (await shanghai.checkpoints.checkpoint())["zhejiang"] == "cosigned"
    return missed


async def test_an_honest_growing_log_proves_every_head_shown_and_raises_nothing(
    tmp_path: Path,
) -> None:
    """Zhejiang misses the checkpoint Jiangsu cosigned last, and Jiangsu the next one; Jiangsu
    shows Zhejiang its head, which Zhejiang keeps pending and asks Shanghai to prove;
    Shanghai's next checkpoint carries the proof, Zhejiang drops the pending head, and no
    refusal is counted anywhere."""
    mesh = make_mesh(tmp_path, THREE)
    jiangsu_config = config_for(mesh, "jiangsu", **QUIET)
    zhejiang_config = config_for(mesh, "zhejiang", **QUIET)
    async with running(config_for(mesh, "shanghai", **QUIET)) as shanghai:
        missed = await zhejiang_misses_a_head(shanghai, jiangsu_config, zhejiang_config)
        async with running(jiangsu_config) as jiangsu, running(zhejiang_config) as zhejiang:
            await eventually(lambda: jiangsu.peers.link("zhejiang").up)
            assert missed.tree_size not in [n for _, n, _ in rows_of(zhejiang, "shanghai")]
            assert (await jiangsu.checkpoints.heads.gossip())["zhejiang"] == "received"
            assert ("jiangsu", missed.tree_size, missed.root_hash) in rows_of(zhejiang, "shanghai")
            await eventually(lambda: shanghai.peers.link("zhejiang").up)
            await eventually(lambda: shanghai.peers.link("jiangsu").up)
            assert await shanghai.checkpoints.checkpoint() == EVERYONE
            reader = shanghai.db.reader()
            assert checkpoints.proofs_wanted(reader, "shanghai", "zhejiang") == [missed.tree_size]
            assert await shanghai.checkpoints.checkpoint() == EVERYONE
            assert checkpoints.proofs_wanted(reader, "shanghai", "zhejiang") == []
            assert {w for w, _, _ in rows_of(zhejiang, "shanghai")} == {"zhejiang"}
            # Every head Jiangsu shows now is one Zhejiang holds: known, nothing kept.
            assert (await jiangsu.checkpoints.heads.gossip())["zhejiang"] == "received"
            assert {w for w, _, _ in rows_of(zhejiang, "shanghai")} == {"zhejiang"}
            for node in (jiangsu, zhejiang):
                assert node.metrics.checkpoints_refused.labels("shanghai")._value.get() == 0
            assert shanghai.checkpoints.refusals == {}


async def test_forged_or_oversize_witnessed_heads_get_a_signed_fault_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    """Over the real pipeline: a head whose owner's signature fails, one not cosigned by the
    sender, and too many heads are each refused with a signed fault naming the field; the
    witness keeps nothing of them and counts no split view."""
    mesh = make_mesh(tmp_path, THREE)
    async with (
        running(config_for(mesh, "shanghai", **QUIET)) as shanghai,
        running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu,
        running(config_for(mesh, "zhejiang", **QUIET)) as zhejiang,
    ):
        await eventually(lambda: jiangsu.peers.link("zhejiang").up)
        key = jiangsu.credentials.signing_key
        tree = tree_of(40)
        now = time.time()
        # A head Zhejiang has never seen, so that a verified one would be kept as pending.
        real = shanghai.credentials.signing_key
        honest = sign_checkpoint(real, origin=SHANGHAI, head=head_of(tree, 40), now=now, proofs={})

        def shown(checkpoint: pb.Checkpoint) -> pb.WitnessedHead:
            cosignature = cosign(key, witness=JIANGSU, checkpoint=checkpoint, now=now)
            return pb.WitnessedHead(checkpoint=checkpoint, cosignature=cosignature)

        forged = sign_checkpoint(key, origin=SHANGHAI, head=head_of(tree, 40), now=now, proofs={})
        foreign = shown(honest)
        foreign.cosignature.CopyFrom(cosign(real, witness=JIANGSU, checkpoint=honest, now=now))
        for heads, code, field in (
            (
                [shown(forged)],
                "bad_signature",
                "body.witnessed_heads.heads[0].checkpoint.signature",
            ),
            ([foreign], "bad_signature", "body.witnessed_heads.heads[0].cosignature"),
            (
                [shown(honest)] * (MAX_WITNESSED_HEADS + 1),
                "message_too_large",
                "body.witnessed_heads.heads",
            ),
        ):
            answered = await jiangsu.courier.ask(
                "zhejiang",
                "witnessed_heads",
                pb.WitnessedHeads(heads=heads),
                timeout=BUDGET / 4,
                record=False,
            )
            fault = answered.fault
            assert answered.reply.sender.node_id == ZHEJIANG  # checked: signed by Zhejiang
            assert fault is not None and (fault.code, fault.field) == (code, field)
            assert rows_of(zhejiang, "shanghai") == []
        assert zhejiang.metrics.checkpoints_refused.labels("shanghai")._value.get() == 0
        # The honest head alone is kept, pending a proof from Shanghai.
        answered = await jiangsu.courier.ask(
            "zhejiang",
            "witnessed_heads",
            pb.WitnessedHeads(heads=[shown(honest)]),
            timeout=BUDGET / 4,
            record=False,
        )
        assert answered.fault is None and answered.payload_type == "receipt"
        assert rows_of(zhejiang, "shanghai") == [("jiangsu", 40, tree.root())]


class ZhejiangStore:
    """Zhejiang's store as Shanghai's witness, driven through the store functions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.owner = SigningKey.generate()
        self.jiangsu = SigningKey.generate()
        self.zhejiang = SigningKey.generate()

    def signed(
        self, tree: MerkleTree, size: int, proofs_from: tuple[int, ...] = ()
    ) -> pb.Checkpoint:
        return sign_checkpoint(
            self.owner,
            origin=SHANGHAI,
            head=head_of(tree, size),
            now=1.0,
            proofs={s: tree.consistency_path(s, size) for s in proofs_from},
        )

    async def show(self, tree: MerkleTree, size: int) -> list[checkpoints.Split]:
        checkpoint = self.signed(tree, size)
        cosignature = cosign(self.jiangsu, witness=JIANGSU, checkpoint=checkpoint, now=2.0)
        shown = WitnessedHead(SHANGHAI, checkpoint, cosignature)
        return await self.db.write(
            partial(
                checkpoints.take_shown,
                shown=[shown],
                provinces={SHANGHAI: "shanghai"},
                sender="jiangsu",
            )
        )

    async def cosign(self, checkpoint: pb.Checkpoint) -> tuple[pb.Cosignature, ShownCheck]:
        return await self.db.write(
            partial(
                checkpoints.witness,
                checkpoint=checkpoint,
                origin="shanghai",
                me="zhejiang",
                sender_node_id=SHANGHAI,
                keys={self.owner.key_id: self.owner.verify_key},
                cosign=lambda c: cosign(self.zhejiang, witness=ZHEJIANG, checkpoint=c, now=3.0),
                now=3.0,
            )
        )

    def pending(self) -> list[tuple[Head, str]]:
        return checkpoints.shown_pending(self.db.reader(), "shanghai", "zhejiang")


async def test_a_witness_keeps_shown_heads_pending_until_proven_on_either_store(
    store_location: StoreLocation,
) -> None:
    """A shown head of a size and root held is not kept; a new one is kept pending, and a
    newer one from the same witness replaces it; the next checkpoint without its proof is
    cosigned asking for it, the one with the proof drops it and asks for nothing."""
    tree = tree_of(12)
    zhejiang = ZhejiangStore(await Database.open(store_location))
    try:
        await zhejiang.cosign(zhejiang.signed(tree, 4))
        assert await zhejiang.show(tree, 4) == [] and zhejiang.pending() == []
        assert await zhejiang.show(tree, 6) == []
        assert await zhejiang.show(tree, 9) == []
        assert zhejiang.pending() == [(head_of(tree, 9), "jiangsu")]
        cosignature, settled = await zhejiang.cosign(zhejiang.signed(tree, 11, (4,)))
        assert list(cosignature.proofs_wanted) == [9] and settled.wanted == (head_of(tree, 9),)
        reader = zhejiang.db.reader()
        assert checkpoints.proofs_wanted(reader, "shanghai", "zhejiang") == [9]
        cosignature, settled = await zhejiang.cosign(zhejiang.signed(tree, 12, (9, 11)))
        assert list(cosignature.proofs_wanted) == [] and settled.proven == (head_of(tree, 9),)
        assert zhejiang.pending() == []
        assert checkpoints.proofs_wanted(reader, "shanghai", "zhejiang") == []
        latest_held = checkpoints.latest_witnessed(reader, "shanghai", "zhejiang")
        assert latest_held is not None and latest_held.tree_size == 12
        assert not latest_held.checkpoint.proofs, "kept without the proofs it carried"
    finally:
        await zhejiang.db.close()


async def test_a_cosignature_asks_for_at_most_max_proofs_wanted(
    store_location: StoreLocation,
) -> None:
    """With more pending heads of a log than one cosignature may ask proofs from, the
    cosignature asks for the smallest ``MAX_PROOFS_WANTED``; the rest stay pending."""
    tree = tree_of(40)
    zhejiang = ZhejiangStore(await Database.open(store_location))
    try:
        await zhejiang.cosign(zhejiang.signed(tree, 1))
        pending = range(2, MAX_PROOFS_WANTED + 6)

        def shown_by_many(conn: Any) -> None:
            for size in pending:
                conn.execute(
                    "INSERT INTO checkpoints (origin, witness, tree_size, root_hash, checkpoint, "
                    "cosignature, cosigned_at, own) VALUES ('shanghai', ?, ?, ?, ?, ?, 2.0, 0)",
                    (f"witness-{size}", size, tree.root(size), b"", b""),
                )

        await zhejiang.db.write(shown_by_many)
        cosignature, settled = await zhejiang.cosign(zhejiang.signed(tree, 40, (1,)))
        assert list(cosignature.proofs_wanted) == list(pending)[:MAX_PROOFS_WANTED]
        assert len(settled.wanted) == len(pending)
        assert len(zhejiang.pending()) == len(pending)
    finally:
        await zhejiang.db.close()


async def test_a_split_view_is_kept_as_evidence_and_refuses_every_later_checkpoint(
    store_location: StoreLocation,
) -> None:
    """A shown head of a held size with another root is a split view, kept beside the held
    one; a newer head from the same witness does not replace it; and the log's next
    checkpoint is refused (nothing of it kept), since it cannot extend both."""
    tree, other = tree_of(12), tree_of(12, changed=2)
    zhejiang = ZhejiangStore(await Database.open(store_location))
    try:
        await zhejiang.cosign(zhejiang.signed(tree, 4))
        [split] = await zhejiang.show(other, 4)
        assert (split.origin, split.shown_by) == ("shanghai", "jiangsu")
        assert (split.view.held, split.view.shown) == (head_of(tree, 4), head_of(other, 4))
        assert await zhejiang.show(other, 7) == []
        assert zhejiang.pending() == [
            (head_of(other, 4), "jiangsu"),
            (head_of(other, 7), "jiangsu"),
        ]
        # Shown again, it is a split view again.
        assert len(await zhejiang.show(other, 4)) == 1
        with pytest.raises(Refusal, match="the log is split") as refused:
            await zhejiang.cosign(zhejiang.signed(tree, 12, (4,)))
        assert refused.value.code is FaultCode.LOG_INCONSISTENT
        latest_held = checkpoints.latest_cosigned(zhejiang.db.reader(), "shanghai", "zhejiang")
        assert latest_held == head_of(tree, 4)
    finally:
        await zhejiang.db.close()


async def test_a_refused_checkpoint_is_kept_as_evidence_within_a_bound(
    store_location: StoreLocation,
) -> None:
    """A checkpoint refused as log_inconsistent is kept when its sender signed it (not when
    not), without its proofs, once per size and at most ``MAX_REFUSED_KEPT`` per log; kept,
    it is neither a cosigned head nor a pending one."""
    tree, other = tree_of(40), tree_of(40, changed=2)
    zhejiang = ZhejiangStore(await Database.open(store_location))
    keys = {zhejiang.owner.key_id: zhejiang.owner.verify_key}

    def keep(checkpoint: pb.Checkpoint) -> Any:
        return zhejiang.db.write(
            partial(
                checkpoints.keep_refused,
                checkpoint=checkpoint,
                origin="shanghai",
                sender_node_id=SHANGHAI,
                keys=keys,
                now=4.0,
            )
        )

    try:
        await zhejiang.cosign(zhejiang.signed(tree, 30))
        rewritten = zhejiang.signed(other, 30, (3,))
        with pytest.raises(Refusal) as refusal:
            await zhejiang.cosign(rewritten)
        assert refusal.value.code is FaultCode.LOG_INCONSISTENT
        forged = pb.Checkpoint()
        forged.CopyFrom(rewritten)
        forged.signature = bytes(64)
        assert not await keep(forged)
        assert await keep(rewritten)
        assert not await keep(rewritten), "once per size"
        for size in range(1, checkpoints.MAX_REFUSED_KEPT + 5):
            await keep(zhejiang.signed(other, size))
        reader = zhejiang.db.reader()
        kept = checkpoints.refused(reader, "shanghai")
        assert len(kept) == checkpoints.MAX_REFUSED_KEPT
        [first] = [c for c in kept if c.tree_size == 30]
        assert first.root_hash == other.root(30) and not first.proofs
        assert first.signature == rewritten.signature
        assert checkpoints.latest_cosigned(reader, "shanghai", "zhejiang") == head_of(tree, 30)
        assert zhejiang.pending() == []
        assert [h.tree_size for h in checkpoints.cosigned(reader, origin="shanghai")] == [30]
    finally:
        await zhejiang.db.close()

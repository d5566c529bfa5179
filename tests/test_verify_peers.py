"""``yrd audit verify --config``: the node asks its peers, over mutual TLS as itself, for the
checkpoints of its log they cosigned (``heads_request``, answered with ``witnessed_heads``),
and checks its log against them, running or stopped; real nodes in-process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from node.peers.courier import Answered
from node.protocol.checkpoints import (
    MAX_HEADS_ANSWERED,
    Head,
    check_heads_answer,
    cosign,
    sign_checkpoint,
)
from node.protocol.faults import FaultCode, Refusal
from node.runtime.node import Node
from node.runtime.witnesses import ask_witnesses, own_manifest
from node.store import audit, checkpoints
from node.trust.keys import SigningKey, VerifyKey
from node.wire import pb
from tests.nodes import BUDGET, config_for, make_mesh, running
from tests.test_checkpoints import QUIET, delete_one, rewrite, traffic

pytestmark = pytest.mark.timeout(BUDGET * 4)

THREE = ("shanghai", "jiangsu", "zhejiang")


async def verify(mesh: Path, province: str, *extra: str) -> tuple[int, str]:
    """``yrd audit verify --config <province's node.toml>`` as a process, without blocking
    the nodes running in this one; its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.cli.main",
        "audit",
        "verify",
        "--config",
        str(mesh / province / "node.toml"),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), BUDGET)
    assert process.returncode is not None
    return process.returncode, out.decode()


def rows_of(node: Node) -> int:
    (count,) = node.db.reader().execute("SELECT count(*) FROM checkpoints").fetchone()
    return int(count)


def logged_kinds(node: Node) -> set[str]:
    """The payload types of every message in the node's evidence log."""
    rows = node.db.reader().execute(
        "SELECT body FROM audit WHERE kind IN ('envelope', 'reply') AND purged_at IS NULL"
    )
    return {
        str(pb.Message.FromString(pb.Envelope.FromString(bytes(body)).message).WhichOneof("body"))
        for (body,) in rows
    }


@pytest.mark.slow  # runs `yrd audit verify` as a process
async def test_verify_asks_the_peers_beside_the_running_node(tmp_path: Path) -> None:
    """While the node runs, the verify connects as it (a second connection of one identity),
    checks the answering witness's head and names the peer it cannot reach; nothing is
    stored on either side; --json lists the witnesses and every peer asked."""
    mesh = make_mesh(tmp_path, THREE)
    async with (
        running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu,
        running(config_for(mesh, "shanghai", **QUIET)) as shanghai,
    ):
        await traffic(shanghai, jiangsu, 3)
        outcome = await shanghai.checkpoints.checkpoint()
        assert outcome == {"jiangsu": "cosigned", "zhejiang": "unanswered"}
        [held] = checkpoints.cosigned(jiangsu.db.reader(), origin="shanghai")
        before = (rows_of(shanghai), rows_of(jiangsu))

        code, shown = await verify(mesh, "shanghai")
        assert code == 0, shown
        assert shown.startswith("evidence log intact:"), shown
        assert "witnesses: jiangsu" in shown
        assert f"peer jiangsu: answered: its latest cosigned checkpoint, of {held.tree_size}" in (
            shown
        )
        assert "peer zhejiang: not reachable" in shown
        assert "this node's word only" not in shown

        code, out = await verify(mesh, "shanghai", "--json")
        assert code == 0, out
        report = json.loads(out)
        assert report["ok"] and report["witnessed"] and report["witnesses"] == ["jiangsu"]
        asked = {a["province"]: a for a in report["peers_asked"]}
        assert asked["jiangsu"] == {
            "province": "jiangsu",
            "answered": True,
            "reached": True,
            "checkpoints": 1,
            "problem": None,
        }
        assert asked["zhejiang"]["reached"] is False and not asked["zhejiang"]["answered"]
        assert (rows_of(shanghai), rows_of(jiangsu)) == before
        for node in (shanghai, jiangsu):
            assert "probe" in logged_kinds(node)  # the log is read as it should be
            assert not logged_kinds(node) & {"heads_request", "witnessed_heads"}
        assert shanghai.peers.link("jiangsu").up  # the node's own link lives on beside it


@pytest.mark.slow  # runs `yrd audit verify` as a process
async def test_a_rewrite_that_deleted_its_own_checkpoints_is_caught_by_the_peers(
    tmp_path: Path,
) -> None:
    """A rewritten log that also forgot every checkpoint it held verifies alone; asked, the
    running witness's cosigned head names where it diverges, with the node stopped. With no
    peer reachable, it is said plainly that no witness vouches for the log, unless the chain
    itself is broken."""
    mesh = make_mesh(tmp_path)
    shanghai_config = config_for(mesh, "shanghai", **QUIET)
    async with running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu:
        async with running(shanghai_config) as shanghai:
            await traffic(shanghai, jiangsu, 4)
            assert await shanghai.checkpoints.checkpoint() == {"jiangsu": "cosigned"}
        code, shown = await verify(mesh, "shanghai")
        assert code == 0 and "evidence log intact:" in shown, shown

        rewrite(shanghai_config.paths.store, delete_one)
        alone = audit.verify_store(shanghai_config.paths.store)
        assert alone.ok and alone.checkpoints == 0, alone.reason  # the log alone cannot tell
        code, shown = await verify(mesh, "shanghai")
        assert code == 1, shown
        assert "evidence log BROKEN in entries 1 to " in shown, shown
        assert "jiangsu cosigned" in shown, shown
        assert "witnesses: jiangsu" in shown
    code, shown = await verify(mesh, "shanghai")
    assert code == 0, shown
    assert "peer jiangsu: not reachable" in shown
    assert (
        "this node has peers (jiangsu), but no witness has cosigned any checkpoint of it: "
        "the log is this node's word only"
    ) in shown

    edited = sqlite3.connect(shanghai_config.paths.store)  # triggers dropped by the rewrite
    with edited:
        edited.execute("UPDATE audit SET recorded_at = recorded_at + 1 WHERE seq = 2")
    edited.close()
    code, shown = await verify(mesh, "shanghai")
    assert code == 1 and "evidence log BROKEN at entry 2:" in shown, shown
    assert "word only" not in shown  # a broken chain says nothing of its witnesses
    code, out = await verify(mesh, "shanghai", "--json")
    assert code == 1 and json.loads(out)["witnessed"] is None, out


async def ask_heads(asker: Node, province: str, origin: str) -> Answered:
    """``asker`` asks ``province`` for the heads of ``origin``'s log, unrecorded."""
    request = pb.HeadsRequest(origin=origin)
    return await asker.courier.ask(
        province, "heads_request", request, timeout=BUDGET / 4, record=False
    )


async def test_a_peer_answers_only_about_the_askers_own_log(tmp_path: Path) -> None:
    """Asked about another node's log, a peer answers with a signed payload_not_allowed
    fault naming the field and keeps nothing; asked about the asker's own, with its latest
    cosigned head only (of the two it holds), signed and cosigned, and keeps nothing."""
    mesh = make_mesh(tmp_path, THREE)
    async with (
        running(config_for(mesh, "jiangsu", **QUIET)) as jiangsu,
        running(config_for(mesh, "shanghai", **QUIET)) as shanghai,
    ):
        nobody = await ask_heads(shanghai, "jiangsu", shanghai.config.node_id)
        assert nobody.payload_type == "witnessed_heads"
        assert len(nobody.reply.message.witnessed_heads.heads) == 0
        for _ in range(2):
            await traffic(shanghai, jiangsu, 2)
            await shanghai.checkpoints.checkpoint()
        held = checkpoints.cosigned(jiangsu.db.reader(), origin="shanghai")
        assert len(held) == 2
        before = rows_of(jiangsu)

        zhejiang = shanghai.credentials.manifest.member_for_province("zhejiang")
        assert zhejiang is not None
        for other in (zhejiang.node_id, jiangsu.config.node_id, ""):
            refused = await ask_heads(shanghai, "jiangsu", other)
            fault = refused.fault
            assert fault is not None, other
            assert (fault.code, fault.field) == (
                FaultCode.PAYLOAD_NOT_ALLOWED.value,
                "body.heads_request.origin",
            )

        answered = await ask_heads(shanghai, "jiangsu", shanghai.config.node_id)
        [head] = answered.reply.message.witnessed_heads.heads
        assert head.checkpoint.tree_size == held[-1].tree_size
        assert not head.checkpoint.proofs and not head.cosignature.proofs_wanted
        assert rows_of(jiangsu) == before
        assert not logged_kinds(jiangsu) & {"heads_request", "witnessed_heads"}

        config = config_for(mesh, "shanghai", **QUIET)
        answers = await ask_witnesses(config, own_manifest(config), timeout=BUDGET / 4)
        by = {a.province: a for a in answers}
        assert [h.tree_size for h in by["jiangsu"].heads] == [held[-1].tree_size]
        assert by["jiangsu"].heads[0].witness == "jiangsu" and not by["jiangsu"].problem
        assert not by["zhejiang"].reached and by["zhejiang"].problem.startswith("not reachable")
        assert rows_of(jiangsu) == before
        assert not logged_kinds(jiangsu) & {"heads_request", "witnessed_heads"}


# -- the answer's checks (sans-I/O) -----------------------------------------------------------

ME, WITNESS = "node-310000", "node-320000"


def signed_heads(
    origin: str = ME, count: int = 1, *, cosigner: SigningKey, signer: SigningKey
) -> pb.WitnessedHeads:
    heads = pb.WitnessedHeads()
    for size in range(1, count + 1):
        checkpoint = sign_checkpoint(
            signer, origin=origin, head=Head(size, bytes(32)), now=1.0, proofs={}
        )
        shown = heads.heads.add()
        shown.checkpoint.CopyFrom(checkpoint)
        cosignature = cosign(cosigner, witness=WITNESS, checkpoint=checkpoint, now=2.0)
        shown.cosignature.CopyFrom(cosignature)
    return heads


def keys_of(me: SigningKey, witness: SigningKey) -> dict[str, dict[str, VerifyKey]]:
    return {ME: {me.key_id: me.verify_key}, WITNESS: {witness.key_id: witness.verify_key}}


def test_an_answer_is_used_only_when_bounded_signed_by_this_node_and_cosigned_by_its_witness() -> (
    None
):
    """The answer's heads pass only when at most ``MAX_HEADS_ANSWERED``, of this node's log,
    without proofs, signed by this node's key and cosigned by the answering witness's."""
    mine, theirs = SigningKey.generate(), SigningKey.generate()
    keys = keys_of(mine, theirs)

    def check(heads: pb.WitnessedHeads) -> list[int]:
        return [
            h.checkpoint.tree_size
            for h in check_heads_answer(
                heads, witness=WITNESS, me=ME, keys_at=lambda node, _at: keys.get(node)
            )
        ]

    assert check(signed_heads(cosigner=theirs, signer=mine)) == [1]
    assert check(pb.WitnessedHeads()) == []
    too_many = signed_heads(count=MAX_HEADS_ANSWERED + 1, cosigner=theirs, signer=mine)
    forged_cosignature = signed_heads(cosigner=mine, signer=mine)
    forged_checkpoint = signed_heads(cosigner=theirs, signer=theirs)
    other_log = signed_heads(WITNESS, cosigner=theirs, signer=theirs)
    with_proof = signed_heads(cosigner=theirs, signer=mine)
    with_proof.heads[0].checkpoint.proofs.add(from_size=1)
    for heads, code, field in (
        (too_many, FaultCode.MESSAGE_TOO_LARGE, "body.witnessed_heads.heads"),
        (forged_cosignature, FaultCode.BAD_SIGNATURE, "body.witnessed_heads.heads[0].cosignature"),
        (
            forged_checkpoint,
            FaultCode.BAD_SIGNATURE,
            "body.witnessed_heads.heads[0].checkpoint.signature",
        ),
        (other_log, FaultCode.INVALID_PAYLOAD, "body.witnessed_heads.heads[0].checkpoint.origin"),
        (with_proof, FaultCode.INVALID_PAYLOAD, "body.witnessed_heads.heads[0].checkpoint.proofs"),
    ):
        with pytest.raises(Refusal) as refused:
            check(heads)
        assert (refused.value.code, refused.value.field) == (code, field)

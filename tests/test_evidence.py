"""`yrd audit evidence`: one message's evidence, checked by a checker that uses no project code.

The checker below is written from DESIGN §3/§4/§5 and RFC 9162 §2.1.3.2: base64, the
signer's suite's hash (SHA-256, or SM3 from cryptography/OpenSSL), Ed25519 (cryptography) or
SM2 with the default user id (snowland-smx) over the labelled statements, and the protobuf
schema of the wire contract to read the receipt. It shares no code with node/."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pysmx.SM2 import Verify as smx_verify

from node.mesh.access import create_mesh
from node.mesh.layout import read_manifest
from node.mesh.suite_choice import parse_suite_choice
from node.protocol.checkpoints import Head, cosign, sign_checkpoint
from node.protocol.envelope import header, seal_batch
from node.store import audit, checkpoints
from node.store.connection import PostgresUrl, StoreLocation
from node.store.database import Database
from node.trust.keys import SigningKey, load_signing_key
from node.wire import pb
from tests.nodes import BUDGET, config_for, eventually, free_base_port, make_mesh, running

pytestmark = pytest.mark.slow  # runs `yrd audit evidence` as a process

YRD = [sys.executable, "-m", "node.cli.main"]
NOW = 1_767_225_600.0


# -- the independent checker -----------------------------------------------------------------


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hash_of(key_id: str) -> Callable[[bytes], bytes]:
    """DESIGN §3: SHA-256 for an Ed25519 signer, SM3 for an SM2 signer."""
    return {"ed25519": sha256, "sm2": sm3}[key_id.split(":")[0]]


def rfc9162_root(
    leaf: bytes, index: int, size: int, path: list[bytes], h: Callable[[bytes], bytes] = sha256
) -> bytes | None:
    """RFC 9162 §2.1.3.2, steps 1-5, written out from the RFC."""
    if index >= size:
        return None
    fn, sn = index, size - 1
    r = h(b"\x00" + leaf)
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = h(b"\x01" + p + r)
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            r = h(b"\x01" + r + p)
        fn //= 2
        sn //= 2
    return r if sn == 0 else None


def signed_by(part: dict[str, Any], manifest_keys: dict[str, str]) -> bytes:
    """Check one signed part of a bundle; return its message bytes, or raise AssertionError."""
    message = base64.b64decode(part["message"])
    signature = part["signature"]
    assert manifest_keys[signature["key_id"]] == signature["public_key"], "key not the manifest's"
    public = base64.b64decode(signature["public_key"])
    batch = signature["batch"]
    if batch is None:
        statement = b"yrd.federation.v1/envelope\x00" + message
    else:
        path = [base64.b64decode(node) for node in batch["path"]]
        h = hash_of(signature["key_id"])
        root = rfc9162_root(message, batch["leaf_index"], batch["tree_size"], path, h)
        assert root is not None, "malformed inclusion proof"
        statement = b"yrd.federation.v1/batch\x00" + batch["tree_size"].to_bytes(8, "big") + root
    statement_verifies(signature["key_id"], public, base64.b64decode(signature["value"]), statement)
    return message


def statement_verifies(key_id: str, public: bytes, value: bytes, statement: bytes) -> None:
    """One signature over a labelled statement, SM2 or Ed25519 by the key id."""
    if key_id.startswith("sm2:"):
        r, s = decode_dss_signature(value)
        rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        uid = b"1234567812345678"
        assert smx_verify(rs, statement, public[1:], 64, uid=uid), "SM2 signature does not verify"
        return
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(value, statement)
    except InvalidSignature:
        raise AssertionError("signature does not verify") from None


def check_bundle(bundle: dict[str, Any], manifest_keys: dict[str, str]) -> None:
    """The message is signed, its reply is signed and answers exactly those bytes: a receipt
    or an attestation names them by digest; a revocation list answers its request by id."""
    message = signed_by(bundle, manifest_keys)
    assert pb.Message.FromString(message).header.message_id == bundle["message_id"]
    reply = pb.Message.FromString(signed_by(bundle["receipt"], manifest_keys))
    assert reply.header.in_reply_to == bundle["message_id"]
    body = reply.WhichOneof("body")
    named = {"receipt": reply.receipt.digest, "attestation": reply.attestation.request_digest}
    if body in named:
        assert named[body] == hash_of(bundle["signature"]["key_id"])(message)
    else:
        assert body == "revocation_list", f"a {body} is not an answer"


def part_verifies(part: dict[str, Any], statement: bytes) -> None:
    """A checkpoint's or a cosignature's signature, with the key it names."""
    statement_verifies(
        part["key_id"],
        base64.b64decode(part["public_key"]),
        base64.b64decode(part["signature"]),
        statement,
    )


def length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def check_log(
    bundle: dict[str, Any], manifest_keys: dict[str, tuple[str, str, float, float, bool]]
) -> list[str]:
    """The message's entry is a leaf of the tree whose head its node signed and its peers
    cosigned (RFC 9162 inclusion; the labelled statements), each with a key the manifest
    lists for that very member (the origin; each witness, another member); return the
    witnesses."""
    shown = bundle["log"]
    entry = shown["entry"]
    body = base64.b64decode(entry["body"])
    assert pb.Envelope.FromString(body).message == base64.b64decode(bundle["message"])
    leaf = (
        b"yrd.evidence.v1\x00"
        + struct.pack(">qd", entry["seq"], entry["recorded_at"])
        + b"".join(
            length_prefixed(entry[name].encode())
            for name in ("direction", "peer", "message_id", "kind")
        )
        + length_prefixed(body)
    )
    checkpoint = shown["checkpoint"]
    path = [base64.b64decode(node) for node in shown["path"]]
    root = rfc9162_root(leaf, shown["leaf_index"], checkpoint["tree_size"], path)
    assert root is not None and root == base64.b64decode(checkpoint["root_hash"]), "not included"
    origin = checkpoint["origin"]
    signed_at = checkpoint["signed_at_ms"] / 1000
    assert owner_of(manifest_keys, checkpoint, signed_at) == origin, "not its origin's key"
    statement = (
        b"yrd.federation.v1/checkpoint\x00"
        + checkpoint["origin"].encode()
        + b"\x00"
        + checkpoint["tree_size"].to_bytes(8, "big")
        + root
        + checkpoint["signed_at_ms"].to_bytes(8, "big")
    )
    part_verifies(checkpoint, statement)
    witnesses = []
    for cosignature in shown["cosignatures"]:
        witness = cosignature["witness"]
        cosigned_at = cosignature["cosigned_at_ms"] / 1000
        assert witness != origin, "a log's own node is not its witness"
        assert owner_of(manifest_keys, cosignature, cosigned_at) == witness, "not the witness's key"
        cosigned = (
            b"yrd.federation.v1/cosignature\x00"
            + cosignature["witness"].encode()
            + b"\x00"
            + cosignature["cosigned_at_ms"].to_bytes(8, "big")
            + statement
        )
        part_verifies(cosignature, cosigned)
        witnesses.append(cosignature["witness"])
    return witnesses


def keys_of(manifest_path: Path) -> dict[str, str]:
    document = json.loads(manifest_path.read_bytes())
    return {
        key["key_id"]: key["public_key"]
        for member in document["manifest"]["members"]
        for key in member["signing_keys"]
    }


def members_of(manifest_path: Path) -> dict[str, tuple[str, str, float, float, bool]]:
    """Each key id: the node id of the member that lists it, its public key, its window and
    whether it is revoked."""
    document = json.loads(manifest_path.read_bytes())

    def epoch(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    return {
        key["key_id"]: (
            member["node_id"],
            key["public_key"],
            epoch(key["not_before"]),
            epoch(key["not_after"]),
            bool(key.get("revoked", False)),
        )
        for member in document["manifest"]["members"]
        for key in member["signing_keys"]
    }


def owner_of(
    members: dict[str, tuple[str, str, float, float, bool]], part: dict[str, Any], at: float
) -> str:
    """The member whose key signed ``part``, a key in its window at ``at``, as the manifest
    lists it. A revoked key is taken as for the messages (``signed_by``): the manifest says
    a key was revoked, not since when, and a key retired after a rotation is revoked."""
    assert part["key_id"] in members, "key not in the manifest"
    node_id, public_key, not_before, not_after, _revoked = members[part["key_id"]]
    assert public_key == part["public_key"], "key not the manifest's"
    assert not_before <= at <= not_after, "key not usable when it signed"
    return node_id


def evidence(store: StoreLocation, message_id: str) -> subprocess.CompletedProcess[str]:
    """``yrd audit evidence --store`` on a store file or a database URL."""
    where = store.url if isinstance(store, PostgresUrl) else str(store)
    return subprocess.run(
        [*YRD, "audit", "evidence", "--store", where, "--message-id", message_id],
        capture_output=True,
        text=True,
        timeout=BUDGET,
        check=False,
    )


async def probe_then_checkpoint(
    mesh: Path, *, before: Callable[[str], None] = lambda _: None
) -> str:
    """One probe from shanghai to jiangsu, receipted, then (after ``before``, given the
    message id) a checkpoint of shanghai's log that jiangsu cosigns; the message id."""
    async with (
        running(config_for(mesh, "jiangsu")),
        running(config_for(mesh, "shanghai")) as sh,
    ):
        [message_id] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=7))])
        await eventually(lambda: len(audit.message_entries(sh.db.reader(), message_id)) == 2)
        before(message_id)
        assert await sh.checkpoints.checkpoint() == {"jiangsu": "cosigned"}
    return message_id


# -- tests -----------------------------------------------------------------------------------


async def test_both_sides_of_a_real_exchange_give_bundles_the_checker_accepts(
    tmp_path: Path,
) -> None:
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        [message_id] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=7))])
        await eventually(
            lambda: (
                len(audit.message_entries(sh.db.reader(), message_id)) == 2
                and len(audit.message_entries(js.db.reader(), message_id)) == 2
            )
        )
    keys = keys_of(mesh / "manifest.json")
    for province, direction, peer in (
        ("shanghai", "sent", "jiangsu"),
        ("jiangsu", "received", "shanghai"),
    ):
        shown = evidence(mesh / province / "node.db", message_id)
        assert shown.returncode == 0, shown.stderr
        bundle = json.loads(shown.stdout)
        assert (bundle["direction"], bundle["peer"]) == (direction, peer)
        check_bundle(bundle, keys)


async def test_a_bundle_proves_its_entry_is_in_the_log_its_peer_cosigned(tmp_path: Path) -> None:
    """With a checkpoint cosigned, the bundle carries the entry's inclusion path, the
    checkpoint and the cosignature, and the checker accepts them with the manifest alone;
    one changed byte of the path, and it does not."""
    mesh = make_mesh(tmp_path)

    def unwitnessed(message_id: str) -> None:
        shown = evidence(mesh / "shanghai" / "node.db", message_id)
        assert json.loads(shown.stdout)["log"]["checkpoint"] is None

    message_id = await probe_then_checkpoint(mesh, before=unwitnessed)
    shown = evidence(mesh / "shanghai" / "node.db", message_id)
    assert shown.returncode == 0, shown.stderr
    bundle = json.loads(shown.stdout)
    keys = keys_of(mesh / "manifest.json")
    check_bundle(bundle, keys)
    assert "node-320000" in check_log(bundle, members_of(mesh / "manifest.json"))
    path = bundle["log"]["path"]
    first = bytearray(base64.b64decode(path[0]))
    first[0] ^= 1
    path[0] = base64.b64encode(bytes(first)).decode()
    with pytest.raises(AssertionError, match="not included"):
        check_log(bundle, members_of(mesh / "manifest.json"))


async def test_an_sm2_log_bundle_holds_every_witness_cosignature(tmp_path: Path) -> None:
    """SM2 signatures are randomised, so each witness holds a differently signed copy of one
    checkpoint; the bundle still carries every witness's cosignature of that checkpoint."""
    directory = tmp_path / "mesh"
    create_mesh(
        directory,
        now=time.time(),
        base_port=free_base_port(3),
        provinces=("shanghai", "jiangsu", "zhejiang"),
        platforms=False,
        suites=parse_suite_choice("shanghai=sm2"),
    )
    async with (
        running(config_for(directory, "jiangsu")),
        running(config_for(directory, "zhejiang")),
        running(config_for(directory, "shanghai")) as sh,
    ):
        [message_id] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=7))])
        await eventually(lambda: len(audit.message_entries(sh.db.reader(), message_id)) == 2)
        outcome = await sh.checkpoints.checkpoint()
        assert outcome == {"jiangsu": "cosigned", "zhejiang": "cosigned"}
        held = checkpoints.cosigned(sh.db.reader(), own=True)
        copies = {h.checkpoint.signature for h in held if h.tree_size == held[-1].tree_size}
        assert len(copies) == 2, "each witness's copy is signed anew (SM2)"
    shown = evidence(directory / "shanghai" / "node.db", message_id)
    assert shown.returncode == 0, shown.stderr
    bundle = json.loads(shown.stdout)
    assert bundle["log"]["checkpoint"]["key_id"].startswith("sm2:")
    assert sorted(check_log(bundle, members_of(directory / "manifest.json"))) == [
        "node-320000",
        "node-330000",
    ]


@pytest.fixture
async def db(store_location: StoreLocation) -> AsyncIterator[Database]:
    store = await Database.open(store_location)
    yield store
    await store.close()


async def test_a_batched_message_and_its_batched_receipt_verify_alone(
    db: Database, tmp_path: Path
) -> None:
    """A message third of five in a signed batch, answered by a receipt second of three in
    the receiver's signed reply batch: both provable from the bundle and the manifest."""
    mesh = make_mesh(tmp_path / "mesh")
    manifest_bytes = (mesh / "manifest.json").read_bytes()
    manifest = read_manifest(mesh)
    shanghai = _key(mesh, "shanghai")
    jiangsu = _key(mesh, "jiangsu")
    ids = {m.province: m.node_id for m in manifest.members}

    def probe(n: int) -> pb.Message:
        return pb.Message(
            header=header(
                sender=ids["shanghai"], recipient=ids["jiangsu"], now=NOW, manifest_version=1
            ),
            probe=pb.Probe(sequence=n),
        )

    sent = seal_batch([probe(n) for n in range(5)], shanghai).sealed[2]
    receipts = [
        pb.Message(
            header=header(
                sender=ids["jiangsu"],
                recipient=ids["shanghai"],
                now=NOW,
                manifest_version=1,
                in_reply_to=message_id,
            ),
            receipt=pb.Receipt(message_id=message_id, digest=digest),
        )
        for message_id, digest in (
            ("other-1", bytes(32)),
            (sent.message_id, sent.digest),
            ("other-2", bytes(32)),
        )
    ]
    reply = seal_batch(receipts, jiangsu).sealed[1]

    def record(conn: Any) -> None:
        audit.append_many(
            conn,
            [
                audit.Record("local", "", "manifest-v1", "manifest", manifest_bytes, NOW),
                audit.Record("sent", "jiangsu", sent.message_id, "envelope", sent.envelope, NOW),
                audit.Record("received", "jiangsu", sent.message_id, "reply", reply.envelope, NOW),
            ],
        )

    await db.write(record)
    assert audit.verify_chain(db.reader()).ok
    shown = evidence(db.location, sent.message_id)
    assert shown.returncode == 0, shown.stderr
    bundle = json.loads(shown.stdout)
    assert bundle["signature"]["batch"]["tree_size"] == 5
    assert bundle["signature"]["batch"]["leaf_index"] == 2
    assert bundle["receipt"]["signature"]["batch"]["leaf_index"] == 1
    keys = keys_of(mesh / "manifest.json")
    check_bundle(bundle, keys)

    # The checker bites: a changed message, a moved leaf, a shortened path, a swapped key.
    for tamper in (
        lambda b: b.update(message=base64.b64encode(b"forged").decode()),
        lambda b: b["signature"]["batch"].update(leaf_index=3),
        lambda b: b["signature"]["batch"]["path"].pop(),
        lambda b: b["receipt"]["signature"].update(public_key=bundle["signature"]["public_key"]),
    ):
        forged = json.loads(shown.stdout)
        tamper(forged)
        with pytest.raises((AssertionError, ValueError)):
            check_bundle(forged, keys)


def _key(mesh: Path, province: str) -> SigningKey:
    return load_signing_key(config_for(mesh, province).paths.signing_key)


async def test_no_evidence_and_no_store_are_told_apart(db: Database, tmp_path: Path) -> None:
    missing = evidence(db.location, "no-such-message")
    assert missing.returncode == 1
    assert "holds no message 'no-such-message'" in missing.stderr
    assert missing.stdout == ""
    absent = evidence(tmp_path / "absent.db", "x")
    assert absent.returncode == 2
    assert "no store file" in absent.stderr


def forge_part(key: SigningKey, part: dict[str, Any], statement: bytes) -> None:
    """Sign ``statement`` into a bundle's checkpoint or cosignature part with ``key``, naming
    it: a signature that verifies, by a key the manifest lists, perhaps another member's."""
    part.update(
        key_id=key.key_id,
        public_key=base64.b64encode(key.verify_key.public_bytes).decode(),
        signature=base64.b64encode(key.sign(statement)).decode(),
    )


async def test_a_self_cosigned_checkpoint_is_no_evidence(tmp_path: Path) -> None:
    """A row of the store "cosigned" with the node's own key under its witness's name is
    left out of the bundle; and the checker refuses a bundle whose cosignature is signed by
    the log's own node (under the witness's name or its own) or whose checkpoint is signed
    by another member's key, each a signature that verifies under a key of the manifest."""
    mesh = make_mesh(tmp_path)
    message_id = await probe_then_checkpoint(mesh)
    store = mesh / "shanghai" / "node.db"
    own, peer = _key(mesh, "shanghai"), _key(mesh, "jiangsu")
    conn = sqlite3.connect(store)
    [genuine] = checkpoints.cosigned(conn, own=True)
    later = genuine.checkpoint.signed_at_ms / 1000 + 1
    forged = sign_checkpoint(
        own,
        origin="node-310000",
        head=Head(genuine.tree_size, genuine.root_hash),
        now=later,
        proofs={},
    )
    with conn:
        checkpoints.record_cosigned(
            conn,
            origin="shanghai",
            witness="zhejiang",  # another row than the genuine one, which stays
            checkpoint=forged,
            cosignature=cosign(own, witness="node-320000", checkpoint=forged, now=later),
            cosigned_at=later,
            own=True,
        )
    conn.close()
    shown = evidence(store, message_id)
    assert shown.returncode == 0, shown.stderr
    bundle = json.loads(shown.stdout)
    members = members_of(mesh / "manifest.json")
    assert bundle["log"]["checkpoint"]["signed_at_ms"] == genuine.checkpoint.signed_at_ms
    assert [c["key_id"] for c in bundle["log"]["cosignatures"]] == [peer.key_id]
    assert check_log(bundle, members) == ["node-320000"]

    checkpoint = bundle["log"]["checkpoint"]
    statement = (
        b"yrd.federation.v1/checkpoint\x00node-310000\x00"
        + checkpoint["tree_size"].to_bytes(8, "big")
        + base64.b64decode(checkpoint["root_hash"])
        + checkpoint["signed_at_ms"].to_bytes(8, "big")
    )

    def cosigned_by(witness: str) -> bytes:
        at = bundle["log"]["cosignatures"][0]["cosigned_at_ms"]
        return (
            b"yrd.federation.v1/cosignature\x00"
            + witness.encode()
            + b"\x00"
            + at.to_bytes(8, "big")
            + statement
        )

    for witness, match in (("node-320000", "not the witness's key"), ("node-310000", "own node")):
        self_cosigned = json.loads(shown.stdout)
        part = self_cosigned["log"]["cosignatures"][0]
        part["witness"] = witness
        forge_part(own, part, cosigned_by(witness))
        with pytest.raises(AssertionError, match=match):
            check_log(self_cosigned, members)
    other_signer = json.loads(shown.stdout)
    forge_part(peer, other_signer["log"]["checkpoint"], statement)
    with pytest.raises(AssertionError, match="not its origin's key"):
        check_log(other_signer, members)

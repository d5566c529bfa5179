"""Batch signatures: one signature per batch, every message still provable on its own.

The receiver checks are the ones every envelope gets (tests/test_protocol_checks.py); the
root here is recomputed in the test with hashlib from the RFC 9162 definitions."""

from __future__ import annotations

import hashlib

import pytest

from node.protocol.checks import Authenticated, CheckLimits, PriorDelivery, check_envelope
from node.protocol.envelope import BATCH_PREFIX, seal, seal_batch
from node.protocol.faults import FaultCode, Refusal
from node.wire import pb
from tests.federation import NOW, Federation, make_federation, node_id, probe_message

ME = node_id("jiangsu")
SENDER = node_id("shanghai")


class NoPrior:
    def prior(self, sender: str, message_id: str) -> PriorDelivery | None:
        return None


@pytest.fixture
def fed() -> Federation:
    return make_federation()


def probes(n: int) -> list[pb.Message]:
    return [probe_message("shanghai", "jiangsu", now=NOW, sequence=i + 1) for i in range(n)]


def check(fed: Federation, raw: bytes) -> Authenticated:
    verdict = check_envelope(
        raw,
        tls_identity=SENDER,
        manifest=fed.manifest,
        me=ME,
        now=NOW,
        inbox=NoPrior(),
        limits=CheckLimits(),
    )
    assert isinstance(verdict, Authenticated)
    return verdict


def refusal(fed: Federation, envelope: pb.Envelope) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check(fed, envelope.SerializeToString())
    return caught.value


def rfc_root(messages: list[bytes]) -> bytes:
    if len(messages) == 1:
        return hashlib.sha256(b"\x00" + messages[0]).digest()
    k = 1
    while k * 2 < len(messages):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc_root(messages[:k]) + rfc_root(messages[k:])).digest()


@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_one_signature_over_the_root_and_every_message_passes_the_checks_alone(
    fed: Federation, size: int
) -> None:
    messages = probes(size)
    batch = seal_batch(messages, fed.key("shanghai"))
    frame = pb.Batch.FromString(batch.frame)
    assert list(frame.messages) == [m.SerializeToString(deterministic=True) for m in messages]
    statement = BATCH_PREFIX + size.to_bytes(8, "big") + rfc_root(list(frame.messages))
    assert fed.key("shanghai").verify_key.verify(frame.signature, statement)
    assert frame.key_id == fed.key("shanghai").key_id
    for index, sealed in enumerate(batch.sealed):
        assert sealed.message == frame.messages[index]
        assert sealed.message_id == messages[index].header.message_id
        assert sealed.digest == hashlib.sha256(frame.messages[index]).digest()
        assert sealed.payload_type == "probe"
        envelope = pb.Envelope.FromString(sealed.envelope)
        assert envelope.signature == frame.signature
        assert (envelope.proof.tree_size, envelope.proof.leaf_index) == (size, index)
        verdict = check(fed, sealed.envelope)
        assert verdict.message_id == messages[index].header.message_id
        assert verdict.digest == hashlib.sha256(frame.messages[index]).digest()
        assert verdict.payload_type == "probe"


def test_a_proof_that_places_the_message_elsewhere_is_refused(fed: Federation) -> None:
    batch = seal_batch(probes(5), fed.key("shanghai"))
    envelope = pb.Envelope.FromString(batch.sealed[2].envelope)

    moved = pb.Envelope()
    moved.CopyFrom(envelope)
    moved.proof.leaf_index = 3
    assert refusal(fed, moved).code is FaultCode.BAD_SIGNATURE

    short = pb.Envelope()
    short.CopyFrom(envelope)
    del short.proof.path[-1]
    refused = refusal(fed, short)
    assert (refused.code, refused.field) == (FaultCode.BAD_SIGNATURE, "envelope.proof")

    past = pb.Envelope()
    past.CopyFrom(envelope)
    past.proof.leaf_index = 5
    assert refusal(fed, past).field == "envelope.proof"

    sibling = pb.Envelope()
    sibling.CopyFrom(envelope)
    sibling.proof.path[0] = bytes(32)
    refused = refusal(fed, sibling)
    assert (refused.code, refused.field) == (FaultCode.BAD_SIGNATURE, "envelope.signature")


def test_a_root_claimed_for_a_tree_of_another_size_is_refused(fed: Federation) -> None:
    """Leaf 0 of 256 has the same path as leaf 0 of 255 would, so the recomputed root is the
    same: only the size inside the signed statement tells them apart."""
    batch = seal_batch(probes(256), fed.key("shanghai"))
    envelope = pb.Envelope.FromString(batch.sealed[0].envelope)
    check(fed, envelope.SerializeToString())
    envelope.proof.tree_size = 255
    refused = refusal(fed, envelope)
    assert (refused.code, refused.field) == (FaultCode.BAD_SIGNATURE, "envelope.signature")


def test_single_and_batch_signatures_cannot_stand_in_for_each_other(fed: Federation) -> None:
    message = probes(1)[0]
    alone = pb.Envelope.FromString(seal(message, fed.key("shanghai")).envelope)
    in_batch = pb.Envelope.FromString(seal_batch([message], fed.key("shanghai")).sealed[0].envelope)

    alone_with_proof = pb.Envelope()
    alone_with_proof.CopyFrom(alone)
    alone_with_proof.proof.CopyFrom(in_batch.proof)
    assert refusal(fed, alone_with_proof).code is FaultCode.BAD_SIGNATURE

    batch_without_proof = pb.Envelope()
    batch_without_proof.CopyFrom(in_batch)
    batch_without_proof.ClearField("proof")
    assert refusal(fed, batch_without_proof).code is FaultCode.BAD_SIGNATURE


def test_an_empty_batch_cannot_be_sealed(fed: Federation) -> None:
    with pytest.raises(ValueError, match=r"^a batch holds at least one message$"):
        seal_batch([], fed.key("shanghai"))

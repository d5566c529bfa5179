"""Messages between members of different suites: SM2 senders' batches are SM3 trees, every
digest that names a message is its signer's suite's hash, and hostile keys and signatures
are refused with the fault that says why, storing nothing.

The SM3 roots and digests are recomputed here with pyca/cryptography's SM3 (OpenSSL), not
with the node's gmalglib, from the RFC 9162 definitions."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from node.protocol.checks import (
    Authenticated,
    PriorDelivery,
    Redelivery,
    check_envelope,
    check_reply,
)
from node.protocol.envelope import BATCH_PREFIX, Sealed, seal, seal_batch
from node.protocol.faults import FaultCode, Refusal
from node.protocol.replies import receipt_for
from node.trust.keys import SigningKey
from node.trust.manifest import KeyEntry
from node.trust.suites import SM2_N, SM2_SUITE
from node.wire import pb
from tests.federation import DAY, NOW, Federation, make_federation, node_id, probe_message
from tests.test_protocol_checks import MemoryInbox

SH, JS = node_id("shanghai"), node_id("jiangsu")


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def rfc_root(messages: list[bytes]) -> bytes:
    if len(messages) == 1:
        return sm3(b"\x00" + messages[0])
    k = 1
    while k * 2 < len(messages):
        k *= 2
    return sm3(b"\x01" + rfc_root(messages[:k]) + rfc_root(messages[k:]))


@pytest.fixture
def fed() -> Federation:
    """Shanghai and Zhejiang sign with SM2, Jiangsu and Anhui with Ed25519."""
    return make_federation(suites={"shanghai": SM2_SUITE, "zhejiang": SM2_SUITE})


def check(
    fed: Federation, raw: bytes, inbox: MemoryInbox | None = None
) -> Authenticated | Redelivery:
    return check_envelope(
        raw, tls_identity=SH, manifest=fed.manifest, me=JS, now=NOW, inbox=inbox or MemoryInbox()
    )


def refused(fed: Federation, raw: bytes, inbox: MemoryInbox | None = None) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check(fed, raw, inbox)
    return caught.value


def checked_receipt(
    fed: Federation, receipt: Sealed, request: Sealed, request_envelope: bytes = b""
) -> Authenticated:
    """Shanghai's check of Jiangsu's receipt for ``request``."""
    return check_reply(
        receipt.envelope,
        peer=JS,
        manifest=fed.manifest,
        me=SH,
        now=NOW,
        request_id=request.message_id,
        request_digest=request.digest,
        request_envelope=request_envelope,
    )


@pytest.mark.parametrize("size", [1, 3, 8])
def test_an_sm2_batch_is_an_sm3_tree_and_each_message_is_named_by_sm3(
    fed: Federation, size: int
) -> None:
    """The SM2 sender signs the SM3 root once; each message passes the checks alone and is
    named by its SM3 digest, which the Ed25519 receiver's receipt carries back."""
    messages = [probe_message("shanghai", "jiangsu", sequence=i + 1) for i in range(size)]
    key = fed.key("shanghai")
    batch = seal_batch(messages, key)
    frame = pb.Batch.FromString(batch.frame)
    statement = BATCH_PREFIX + size.to_bytes(8, "big") + rfc_root(list(frame.messages))
    assert frame.key_id.startswith("sm2:")
    assert key.verify_key.verify(frame.signature, statement)
    for sealed, message_bytes in zip(batch.sealed, frame.messages, strict=True):
        assert sealed.digest == sm3(message_bytes) != hashlib.sha256(message_bytes).digest()
        accepted = check(fed, sealed.envelope)
        assert isinstance(accepted, Authenticated)
        assert accepted.digest == sm3(message_bytes)
        receipt = receipt_for(accepted, me=JS, now=NOW, manifest_version=1, key=fed.key("jiangsu"))
        assert pb.Envelope.FromString(receipt.envelope).key_id.startswith("ed25519:")
        # The receipt is the receiver's own message, named by its own suite's hash.
        assert receipt.digest == hashlib.sha256(receipt.message).digest()
        reply = checked_receipt(fed, receipt, sealed)
        assert reply.message.receipt.digest == sm3(message_bytes)


def test_an_ed25519_message_is_named_by_sha256_as_before(fed: Federation) -> None:
    sealed = seal(probe_message("jiangsu", "shanghai"), fed.key("jiangsu"))
    assert sealed.digest == hashlib.sha256(sealed.message).digest()


def test_a_message_re_signed_under_the_other_suite_is_a_redelivery_not_a_replay(
    fed: Federation,
) -> None:
    """A sender that moved from Ed25519 to SM2 re-signs what its outbox held: the receiver
    that stored the message under its SHA-256 name answers with the original reply."""
    old, new = SigningKey.generate(), fed.key("shanghai")
    member = fed.manifest.member(SH)
    assert member is not None
    entry = KeyEntry(old.key_id, old.verify_key, NOW - DAY, NOW + DAY)
    fed.replace_member("shanghai", keys=(entry, *member.keys))
    message = probe_message("shanghai", "jiangsu")
    first = check(fed, seal(message, old).envelope)
    assert isinstance(first, Authenticated)
    inbox = MemoryInbox()
    inbox.seen[(SH, first.message_id)] = PriorDelivery(first.digest, b"the original receipt")
    again = check(fed, seal(message, new).envelope, inbox)
    assert isinstance(again, Redelivery)
    assert again.prior.reply == b"the original receipt"
    other = probe_message("shanghai", "jiangsu", message_id=first.message_id, sequence=2)
    assert refused(fed, seal(other, new).envelope, inbox).code is FaultCode.REPLAY_MISMATCH


def with_signature(raw: bytes, signature: bytes) -> bytes:
    envelope = pb.Envelope.FromString(raw)
    envelope.signature = signature
    return envelope.SerializeToString()


def test_an_ed25519_signature_under_an_sm2_key_id_is_refused(fed: Federation) -> None:
    """Signed by an Ed25519 key but sent under Shanghai's SM2 key id: a bad signature."""
    message = probe_message("shanghai", "jiangsu")
    genuine = seal(message, fed.key("shanghai")).envelope
    forged = seal(message, fed.key("jiangsu")).envelope
    refusal = refused(fed, with_signature(genuine, pb.Envelope.FromString(forged).signature))
    assert refusal.code is FaultCode.BAD_SIGNATURE
    assert refusal.field == "envelope.signature"


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(b"\x30\x00", id="empty-sequence"),
        pytest.param(b"\x30\x81\x06\x02\x01\x01\x02\x01\x01", id="long-form-length"),
        pytest.param(encode_dss_signature(1, 1) + b"\x00", id="trailing-byte"),
        pytest.param(encode_dss_signature(SM2_N, 1), id="r-not-below-n"),
        pytest.param(bytes(64), id="raw-not-der"),
    ],
)
def test_a_malformed_der_signature_is_refused(fed: Federation, signature: bytes) -> None:
    raw = with_signature(
        seal(probe_message("shanghai", "jiangsu"), fed.key("shanghai")).envelope, signature
    )
    refusal = refused(fed, raw)
    assert refusal.code is FaultCode.BAD_SIGNATURE


def test_an_sm2_key_id_in_a_member_entry_of_ed25519_keys_is_an_unknown_key(
    fed: Federation,
) -> None:
    """Anhui lists only Ed25519 keys; an envelope from it under an SM2 key id, even one
    validly signed by that SM2 key, names no key of Anhui's."""
    intruder = SigningKey.generate(SM2_SUITE)
    message = probe_message("anhui", "jiangsu")
    raw = seal(message, intruder).envelope
    with pytest.raises(Refusal) as caught:
        check_envelope(
            raw,
            tls_identity=node_id("anhui"),
            manifest=fed.manifest,
            me=JS,
            now=NOW,
            inbox=MemoryInbox(),
        )
    assert caught.value.code is FaultCode.UNKNOWN_KEY
    assert caught.value.field == "envelope.key_id"
    # Named by the suite its key id claims, so the fault points at the bytes sent.
    assert caught.value.digest == sm3(pb.Envelope.FromString(raw).message)


def test_a_reply_naming_a_re_signed_request_by_the_new_suites_hash_answers_it(
    fed: Federation,
) -> None:
    """Queued under Shanghai's old Ed25519 key (SHA-256 name), sent under its SM2 key: the
    receipt names the request by SM3. With the request as sealed, the sender sees the same
    bytes; without it, or for other bytes, the receipt answers another message."""
    message = probe_message("shanghai", "jiangsu")
    queued = seal(message, SigningKey.generate())
    sent = seal(message, fed.key("shanghai"))
    accepted = check(fed, sent.envelope)
    assert isinstance(accepted, Authenticated)
    receipt = receipt_for(accepted, me=JS, now=NOW, manifest_version=1, key=fed.key("jiangsu"))
    other = seal(probe_message("shanghai", "jiangsu", sequence=2), fed.key("shanghai"))
    answered = checked_receipt(fed, receipt, queued, queued.envelope)
    assert answered.message.receipt.digest == sm3(queued.message)
    for without in (b"", other.envelope):
        with pytest.raises(Refusal) as caught:
            checked_receipt(fed, receipt, queued, without)
        assert caught.value.field == "body.receipt.digest"


FUZZ_FED = make_federation(suites={"shanghai": SM2_SUITE})
FUZZ_BATCH = seal_batch(
    [probe_message("shanghai", "jiangsu", sequence=i) for i in range(3)], FUZZ_FED.key("shanghai")
)


@settings(max_examples=300, deadline=None)
@given(signature=st.binary(max_size=80), index=st.integers(0, 2))
def test_any_signature_bytes_on_an_sm2_batch_envelope_are_refused_not_a_crash(
    signature: bytes, index: int
) -> None:
    """Whatever stands where an SM2 batch signature should, the receiver refuses the message
    as a bad signature (an empty one as a malformed envelope); nothing else escapes."""
    raw = with_signature(FUZZ_BATCH.sealed[index].envelope, signature)
    refusal = refused(FUZZ_FED, raw)
    expected = FaultCode.BAD_SIGNATURE if signature else FaultCode.MALFORMED_ENVELOPE
    assert refusal.code is expected

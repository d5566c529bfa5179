"""The receiver checks, driven with bytes and a fixed clock (no network, no database)."""

from __future__ import annotations

import pytest

from node.protocol.checks import (
    Authenticated,
    CheckLimits,
    PriorDelivery,
    Redelivery,
    check_envelope,
    check_reply,
)
from node.protocol.envelope import DOMAIN_PREFIX, digest, seal, signing_input
from node.protocol.faults import FaultCode, Refusal
from node.protocol.replies import answer_for, fault_for, receipt_for
from node.trust.keys import SigningKey
from node.trust.manifest import KeyEntry
from node.wire import pb
from tests.federation import DAY, NOW, Federation, make_federation, node_id, sealed_probe

ME = node_id("jiangsu")
SENDER = node_id("shanghai")


class MemoryInbox:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], PriorDelivery] = {}

    def prior(self, sender: str, message_id: str) -> PriorDelivery | None:
        return self.seen.get((sender, message_id))


@pytest.fixture
def fed() -> Federation:
    return make_federation()


def check(
    fed: Federation,
    raw: bytes,
    *,
    identity: str | None = SENDER,
    now: float = NOW,
    inbox: MemoryInbox | None = None,
    limits: CheckLimits | None = None,
) -> Authenticated | Redelivery:
    return check_envelope(
        raw,
        tls_identity=identity,
        manifest=fed.manifest,
        me=ME,
        now=now,
        inbox=inbox or MemoryInbox(),
        limits=limits or CheckLimits(),
    )


def refusal_code(fed: Federation, raw: bytes, **kwargs: object) -> FaultCode:
    with pytest.raises(Refusal) as caught:
        check(fed, raw, **kwargs)  # type: ignore[arg-type]
    return caught.value.code


def resign(message: pb.Message, key: SigningKey) -> bytes:
    return seal(message, key).envelope


def test_valid_envelope_passes_every_check(fed: Federation) -> None:
    """A probe signed by a member's current key, to us, on time, is accepted."""
    sealed = sealed_probe(fed, "shanghai", "jiangsu")
    verdict = check(fed, sealed.envelope)
    assert isinstance(verdict, Authenticated)
    assert verdict.payload_type == "probe"
    assert verdict.digest == sealed.digest
    assert verdict.sender.province == "shanghai"


def test_signature_covers_domain_prefix_and_exact_bytes(fed: Federation) -> None:
    """The signature is over the domain prefix plus the message bytes, nothing else."""
    sealed = sealed_probe(fed, "shanghai", "jiangsu")
    envelope = pb.Envelope.FromString(sealed.envelope)
    key = fed.key("shanghai").verify_key
    assert key.verify(envelope.signature, DOMAIN_PREFIX + envelope.message)
    assert signing_input(envelope.message).startswith(DOMAIN_PREFIX)
    assert not key.verify(envelope.signature, envelope.message)


def test_oversize_envelope_refused_first(fed: Federation) -> None:
    """An envelope over the limit is refused before it is even parsed."""
    raw = sealed_probe(fed, "shanghai", "jiangsu").envelope
    code = refusal_code(fed, raw, limits=CheckLimits(max_message_bytes=len(raw) - 1))
    assert code is FaultCode.MESSAGE_TOO_LARGE
    assert code.grpc_status.name == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x0a\x05abc"])
def test_malformed_protobuf_refused(fed: Federation, raw: bytes) -> None:
    """Bytes that are not an Envelope are refused as malformed."""
    assert refusal_code(fed, raw) is FaultCode.MALFORMED_ENVELOPE


def test_envelope_with_malformed_message_refused(fed: Federation) -> None:
    """An envelope whose message bytes are not a Message is refused as malformed."""
    raw = pb.Envelope(
        message=b"\xff\xff", signature=b"x" * 64, key_id="ed25519:00"
    ).SerializeToString()
    assert refusal_code(fed, raw) is FaultCode.MALFORMED_MESSAGE


def test_tls_identity_must_equal_sender(fed: Federation) -> None:
    """A peer authenticated as Zhejiang cannot send as Shanghai."""
    raw = sealed_probe(fed, "shanghai", "jiangsu").envelope
    assert refusal_code(fed, raw, identity=node_id("zhejiang")) is FaultCode.SENDER_MISMATCH


def test_unknown_sender_refused(fed: Federation) -> None:
    """A sender that is not in the manifest is refused even with a valid CA certificate."""
    message = pb.Message(
        header=pb.Header(message_id="m1", sender="node-440000", recipient=ME), probe=pb.Probe()
    )
    message.header.sent_at.FromSeconds(int(NOW))
    raw = resign(message, SigningKey.generate())
    assert refusal_code(fed, raw, identity="node-440000") is FaultCode.UNKNOWN_SENDER


def test_key_not_in_manifest_refused(fed: Federation) -> None:
    """A signature by a key the manifest does not list for the sender is refused."""
    raw = sealed_probe(fed, "shanghai", "jiangsu", key=SigningKey.generate()).envelope
    assert refusal_code(fed, raw) is FaultCode.UNKNOWN_KEY


def test_another_members_key_refused(fed: Federation) -> None:
    """Shanghai cannot sign with Anhui's key even though that key is in the manifest."""
    raw = sealed_probe(fed, "shanghai", "jiangsu", key=fed.key("anhui")).envelope
    assert refusal_code(fed, raw) is FaultCode.UNKNOWN_KEY


def test_expired_key_refused(fed: Federation) -> None:
    """A key past its validity window verifies nothing."""
    key = fed.key("shanghai")
    fed.replace_member(
        "shanghai", keys=(KeyEntry(key.key_id, key.verify_key, NOW - 9 * DAY, NOW - DAY),)
    )
    raw = sealed_probe(fed, "shanghai", "jiangsu").envelope
    assert refusal_code(fed, raw) is FaultCode.KEY_NOT_CURRENT


def test_revoked_key_refused(fed: Federation) -> None:
    """A revoked key verifies nothing from the moment the manifest says so."""
    key = fed.key("shanghai")
    fed.replace_member(
        "shanghai", keys=(KeyEntry(key.key_id, key.verify_key, NOW - DAY, NOW + DAY, revoked=True),)
    )
    raw = sealed_probe(fed, "shanghai", "jiangsu").envelope
    assert refusal_code(fed, raw) is FaultCode.KEY_REVOKED


def test_bad_signature_refused(fed: Federation) -> None:
    """Flipping one bit of the signed message makes the signature fail."""
    envelope = pb.Envelope.FromString(sealed_probe(fed, "shanghai", "jiangsu").envelope)
    message = pb.Message.FromString(envelope.message)
    message.probe.sequence = 999
    envelope.message = message.SerializeToString()
    assert refusal_code(fed, envelope.SerializeToString()) is FaultCode.BAD_SIGNATURE


def test_wrong_recipient_refused(fed: Federation) -> None:
    """A message for Zhejiang delivered to Jiangsu is refused."""
    raw = sealed_probe(fed, "shanghai", "zhejiang").envelope
    assert refusal_code(fed, raw) is FaultCode.WRONG_RECIPIENT


@pytest.mark.parametrize("skew", [-301.0, 301.0])
def test_sent_at_outside_window_refused(fed: Federation, skew: float) -> None:
    """A message sent more than 300 s from the receiver's clock, either way, is refused."""
    raw = sealed_probe(fed, "shanghai", "jiangsu", now=NOW + skew).envelope
    assert refusal_code(fed, raw) is FaultCode.CLOCK_SKEW


def test_clock_window_is_configurable(fed: Federation) -> None:
    """A 60 s window refuses a message 100 s old that the default window accepts."""
    raw = sealed_probe(fed, "shanghai", "jiangsu", now=NOW - 100).envelope
    assert isinstance(check(fed, raw), Authenticated)
    code = refusal_code(fed, raw, limits=CheckLimits(clock_window=60))
    assert code is FaultCode.CLOCK_SKEW


def test_redelivery_returns_original_reply(fed: Federation) -> None:
    """The same id with the same bytes is not refused; the original reply comes back."""
    sealed = sealed_probe(fed, "shanghai", "jiangsu")
    inbox = MemoryInbox()
    inbox.seen[(SENDER, sealed.message_id)] = PriorDelivery(sealed.digest, b"original-receipt")
    verdict = check(fed, sealed.envelope, inbox=inbox)
    assert isinstance(verdict, Redelivery)
    assert verdict.prior.reply == b"original-receipt"


def test_replayed_id_with_different_bytes_refused(fed: Federation) -> None:
    """The same message id with different content is refused as a replay."""
    first = sealed_probe(fed, "shanghai", "jiangsu", message_id="m-1", sequence=1)
    second = sealed_probe(fed, "shanghai", "jiangsu", message_id="m-1", sequence=2)
    inbox = MemoryInbox()
    inbox.seen[(SENDER, "m-1")] = PriorDelivery(first.digest, b"r")
    assert refusal_code(fed, second.envelope, inbox=inbox) is FaultCode.REPLAY_MISMATCH


def test_payload_not_allowed_by_policy(fed: Federation) -> None:
    """A member whose policy does not list probe cannot send one."""
    fed.replace_member("shanghai", may_send=frozenset({"heartbeat"}))
    raw = sealed_probe(fed, "shanghai", "jiangsu").envelope
    assert refusal_code(fed, raw) is FaultCode.PAYLOAD_NOT_ALLOWED


def test_unsolicited_receipt_not_allowed(fed: Federation) -> None:
    """Receipts are replies: sent as a request, one is refused by policy."""
    fed.replace_member("shanghai", may_send=frozenset({"receipt", "probe"}))
    message = pb.Message(
        header=pb.Header(message_id="r", sender=SENDER, recipient=ME),
        receipt=pb.Receipt(message_id="x"),
    )
    message.header.sent_at.FromSeconds(int(NOW))
    assert refusal_code(fed, resign(message, fed.key("shanghai"))) is FaultCode.PAYLOAD_NOT_ALLOWED


def test_checks_run_in_design_order(fed: Federation) -> None:
    """With several faults at once, the earliest check in DESIGN.md §3 order is reported."""
    # wrong recipient AND clock skew AND bad key: the key check comes first.
    raw = sealed_probe(
        fed, "shanghai", "zhejiang", now=NOW - 10_000, key=SigningKey.generate()
    ).envelope
    assert refusal_code(fed, raw) is FaultCode.UNKNOWN_KEY
    # wrong recipient AND clock skew: recipient comes first.
    raw = sealed_probe(fed, "shanghai", "zhejiang", now=NOW - 10_000).envelope
    assert refusal_code(fed, raw) is FaultCode.WRONG_RECIPIENT


def test_every_fault_code_has_a_distinct_value_and_status() -> None:
    """Codes are unique strings and each maps to a gRPC status."""
    values = [c.value for c in FaultCode]
    assert len(values) == len(set(values))
    assert all(c.grpc_status is not None for c in FaultCode)


def test_receipt_answers_exact_request(fed: Federation) -> None:
    """A receipt carries the request's digest and passes the sender's reply check."""
    sealed = sealed_probe(fed, "shanghai", "jiangsu")
    accepted = check(fed, sealed.envelope)
    assert isinstance(accepted, Authenticated)
    receipt = receipt_for(accepted, me=ME, now=NOW, manifest_version=1, key=fed.key("jiangsu"))
    reply = check_reply(
        receipt.envelope,
        peer=ME,
        manifest=fed.manifest,
        me=SENDER,
        now=NOW,
        request_id=sealed.message_id,
        request_digest=sealed.digest,
    )
    assert reply.message.receipt.digest == digest(sealed.message)


def test_reply_for_another_request_refused(fed: Federation) -> None:
    """A receipt cannot be passed off as the answer to a different message."""
    first = sealed_probe(fed, "shanghai", "jiangsu", sequence=1)
    second = sealed_probe(fed, "shanghai", "jiangsu", sequence=2)
    accepted = check(fed, first.envelope)
    assert isinstance(accepted, Authenticated)
    receipt = receipt_for(accepted, me=ME, now=NOW, manifest_version=1, key=fed.key("jiangsu"))
    with pytest.raises(Refusal):
        check_reply(
            receipt.envelope,
            peer=ME,
            manifest=fed.manifest,
            me=SENDER,
            now=NOW,
            request_id=second.message_id,
            request_digest=second.digest,
        )
    with pytest.raises(Refusal):
        check_reply(
            receipt.envelope,
            peer=ME,
            manifest=fed.manifest,
            me=SENDER,
            now=NOW,
            request_id=first.message_id,
            request_digest=second.digest,
        )


def test_attestation_replayed_for_another_request_refused(fed: Federation) -> None:
    """An attestation names the digest of the request it answers: sent back as the answer to
    another verification request (same in_reply_to, other question) it is refused, and one
    without any digest is refused too."""
    asked = sealed_probe(fed, "shanghai", "jiangsu", sequence=1)
    other = sealed_probe(fed, "shanghai", "jiangsu", sequence=2)
    accepted = check(fed, asked.envelope)
    assert isinstance(accepted, Authenticated)

    def attestation(request_digest: bytes) -> bytes:
        body = pb.Attestation(
            request_digest=request_digest, certificate_id="x", status="valid", purpose="p"
        )
        reply = answer_for(
            accepted,
            ("attestation", body),
            me=ME,
            now=NOW,
            manifest_version=1,
            key=fed.key("jiangsu"),
        )
        return reply.envelope

    good = check_reply(
        attestation(asked.digest),
        peer=ME,
        manifest=fed.manifest,
        me=SENDER,
        now=NOW,
        request_id=asked.message_id,
        request_digest=asked.digest,
    )
    assert good.payload_type == "attestation"
    for replayed in (attestation(other.digest), attestation(b"")):
        with pytest.raises(Refusal) as caught:
            check_reply(
                replayed,
                peer=ME,
                manifest=fed.manifest,
                me=SENDER,
                now=NOW,
                request_id=asked.message_id,
                request_digest=asked.digest,
            )
        assert caught.value.code is FaultCode.INVALID_PAYLOAD
        assert caught.value.field == "body.attestation.request_digest"


def test_reply_from_someone_else_refused(fed: Federation) -> None:
    """A reply signed by Anhui is not accepted as Jiangsu's answer."""
    sealed = sealed_probe(fed, "shanghai", "jiangsu")
    refusal = Refusal(
        FaultCode.BAD_SIGNATURE, "x", message_id=sealed.message_id, digest=sealed.digest
    )
    fault = fault_for(
        refusal,
        me=node_id("anhui"),
        recipient=SENDER,
        now=NOW,
        manifest_version=1,
        key=fed.key("anhui"),
    )
    with pytest.raises(Refusal) as caught:
        check_reply(
            fault.envelope,
            peer=ME,
            manifest=fed.manifest,
            me=SENDER,
            now=NOW,
            request_id=sealed.message_id,
            request_digest=sealed.digest,
        )
    assert caught.value.code is FaultCode.SENDER_MISMATCH

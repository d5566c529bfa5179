"""The receiver checks, driven with bytes and a fixed clock (no network, no database)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from node.protocol.checks import (
    Authenticated,
    CheckLimits,
    PriorDelivery,
    Redelivery,
    check_envelope,
    check_reply,
)
from node.protocol.envelope import (
    DOMAIN_PREFIX,
    Sealed,
    digest,
    received_frame,
    seal,
    signed_batch,
    signing_input,
    statement_of,
)
from node.protocol.faults import FaultCode, Refusal
from node.protocol.replies import answer_for, fault_for, receipt_for
from node.trust.keys import SigningKey
from node.trust.manifest import KeyEntry
from node.trust.suites import ED25519_SUITE
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
    frame_statement: bytes | None = None,
) -> Authenticated | Redelivery:
    return check_envelope(
        raw,
        tls_identity=identity,
        manifest=fed.manifest,
        me=ME,
        now=now,
        inbox=inbox or MemoryInbox(),
        limits=limits or CheckLimits(),
        frame_statement=frame_statement,
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


def reply_check(
    fed: Federation, reply: bytes, request: Sealed, frame_statement: bytes | None = None
) -> Authenticated:
    """Shanghai's check of ``reply`` to its ``request`` to Jiangsu."""
    return check_reply(
        reply,
        peer=ME,
        manifest=fed.manifest,
        me=SENDER,
        now=NOW,
        request_id=request.message_id,
        request_digest=request.digest,
        frame_statement=frame_statement,
    )


def refused_reply(fed: Federation, reply: bytes, request: Sealed) -> Refusal:
    """How Shanghai's check of ``reply`` to its ``request`` to Jiangsu refuses it."""
    with pytest.raises(Refusal) as caught:
        reply_check(fed, reply, request)
    return caught.value


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
    assert reply.message.receipt.digest == digest(sealed.message, ED25519_SUITE)


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
        refusal = refused_reply(fed, replayed, asked)
        assert refusal.code is FaultCode.INVALID_PAYLOAD
        assert refusal.field == "body.attestation.request_digest"


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
    assert refused_reply(fed, fault.envelope, sealed).code is FaultCode.SENDER_MISMATCH


# --- header identifiers and the text of a body (issue 11) -----------------------------------

BAD_IDS: dict[str, str] = {
    "100,000 characters": "m" * 100_000,
    "129 characters": "m" * 129,
    "NUL": "m-1\x00",
    "ESC": "\x1b[31mm-1",
    "space": "m 1",
    "slash": "../m-1",
    "non-ASCII letter": "é-1",
    "Arabic-Indic digit": "١",
    "right-to-left override": "m\u202e1",
    "leading hyphen": "-m1",
}


def header_message(**fields: str) -> pb.Message:
    """A probe from Shanghai to us, on time, with ``fields`` of its header replaced."""
    message = pb.Message(
        header=pb.Header(**{"message_id": "m-1", "sender": SENDER, "recipient": ME, **fields}),
        probe=pb.Probe(),
    )
    message.header.sent_at.FromSeconds(int(NOW))
    return message


@pytest.mark.parametrize("value", list(BAD_IDS.values()), ids=list(BAD_IDS))
@pytest.mark.parametrize(
    "name", ["message_id", "sender", "recipient", "in_reply_to", "correlation_id"]
)
def test_header_identifier_outside_its_charset_or_length_is_refused(
    fed: Federation, name: str, value: str
) -> None:
    """A header identifier that is not 1 to 128 of [A-Za-z0-9._:-] is a malformed message
    naming the field, refused before the sender is even looked up, and the refusal never
    carries the refused id."""
    raw = resign(header_message(**{name: value}), fed.key("shanghai"))
    with pytest.raises(Refusal) as caught:
        check(fed, raw)
    refusal = caught.value
    assert (refusal.code, refusal.field) == (FaultCode.MALFORMED_MESSAGE, f"header.{name}")
    assert refusal.message_id == ("" if name == "message_id" else "m-1")
    assert value not in refusal.text
    assert refusal.code.grpc_status.name == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "value", ["m-1", "0b8f7a2e-3c1d-4e5f-9a8b-7c6d5e4f3a2b", "revocation-list:7", "m" * 128]
)
def test_identifiers_the_nodes_make_pass(fed: Federation, value: str) -> None:
    """UUIDs, case ids and correlation ids of the shapes the nodes make are accepted."""
    raw = resign(header_message(message_id=value, correlation_id=value), fed.key("shanghai"))
    assert isinstance(check(fed, raw), Authenticated)


HOSTILE_TEXT: dict[str, str] = {
    "NUL": "\x00",
    "BEL": "\x07",
    "ESC": "\x1b",
    "newline": "\n",
    "C1 next line": "\x85",
    "right-to-left override": "\u202e",
    "first strong isolate": "\u2068",
    "zero-width joiner": "\u200d",
    "byte-order mark": "\ufeff",
    "line separator": "\u2028",
    "noncharacter": "\ufffe",
    "decomposed é (not NFC)": "e\u0301",
}

BODIES: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "applicant name": (
        "case_submit",
        lambda text: pb.CaseSubmit(case_id="310000-x", applicant=pb.Applicant(name=f"张{text}三")),
        "body.case_submit.applicant.name",
    ),
    "second material's name": (
        "case_submit",
        lambda text: pb.CaseSubmit(
            materials=[pb.CaseMaterial(name="身份证"), pb.CaseMaterial(name=f"户口{text}簿")]
        ),
        "body.case_submit.materials[1].name",
    ),
    "update reason": (
        "case_update",
        lambda text: pb.CaseUpdate(case_id="c-1", reason=f"材料{text}不全"),
        "body.case_update.reason",
    ),
    "evaluation comment": (
        "case_action",
        lambda text: pb.CaseAction(evaluation=pb.CaseEvaluation(level=5, comment=f"好{text}")),
        "body.case_action.evaluation.comment",
    ),
    "requester": (
        "certificate_verify",
        lambda text: pb.CertificateVerify(requester=f"酒店{text}前台"),
        "body.certificate_verify.requester",
    ),
    "requested field": (
        "certificate_verify",
        lambda text: pb.CertificateVerify(fields=["name", f"addr{text}ess"]),
        "body.certificate_verify.fields[1]",
    ),
}


@pytest.mark.parametrize("text", list(HOSTILE_TEXT.values()), ids=list(HOSTILE_TEXT))
@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
def test_every_string_of_a_body_must_be_clean_text(fed: Federation, body: str, text: str) -> None:
    """A control, format or invisible character, or text not in NFC, anywhere in a payload is
    invalid_payload naming the field, before the payload's own validators run."""
    kind, make, field = BODIES[body]
    fed.replace_member("shanghai", may_send=frozenset({kind}))
    message = header_message()
    message.ClearField("probe")
    getattr(message, kind).CopyFrom(make(text))
    ran: list[str] = []
    with pytest.raises(Refusal) as caught:
        check_envelope(
            resign(message, fed.key("shanghai")),
            tls_identity=SENDER,
            manifest=fed.manifest,
            me=ME,
            now=NOW,
            inbox=MemoryInbox(),
            validators={kind: lambda accepted: ran.append(kind)},
        )
    refusal = caught.value
    assert (refusal.code, refusal.field) == (FaultCode.INVALID_PAYLOAD, field)
    assert refusal.message_id == "m-1"
    assert ran == []


def test_a_reply_with_hostile_text_settles_nothing(fed: Federation) -> None:
    """A peer's fault whose text holds an escape sequence is refused like a message."""
    sealed = sealed_probe(fed, "shanghai", "jiangsu")
    refusal = Refusal(
        FaultCode.INVALID_PAYLOAD,
        "\x1b]0;owned\x07 bad",
        message_id=sealed.message_id,
        digest=sealed.digest,
    )
    fault = fault_for(
        refusal, me=ME, recipient=SENDER, now=NOW, manifest_version=1, key=fed.key("jiangsu")
    )
    refusal = refused_reply(fed, fault.envelope, sealed)
    assert (refusal.code, refusal.field) == (FaultCode.INVALID_PAYLOAD, "body.fault.text")


def _frame(fed: Federation, count: int, key: SigningKey | None = None) -> pb.Batch:
    messages = [sealed_probe(fed, "shanghai", "jiangsu", sequence=n).message for n in range(count)]
    batch, _ = signed_batch(messages, key or fed.key("shanghai"))
    return pb.Batch.FromString(batch.SerializeToString())


def test_a_received_frame_is_checked_over_its_one_statement(fed: Federation) -> None:
    """Each message cut from a frame is checked over the frame's statement, as walking its
    proof finds it: the same verdicts, signed by the frame's key."""
    statement, envelopes = received_frame(_frame(fed, 5))
    for raw in envelopes:
        parsed = pb.Envelope.FromString(raw)
        assert statement_of(parsed) == statement
        assert check(fed, raw, frame_statement=statement) == check(fed, raw)


def test_a_frame_signed_by_another_key_fails_over_its_statement(fed: Federation) -> None:
    """The statement is what the signature must be over, not a pass: a frame signed by a
    key that is not its key id's is a bad signature for every message."""
    batch = _frame(fed, 3, fed.key("jiangsu"))
    batch.key_id = fed.key("shanghai").key_id
    statement, envelopes = received_frame(batch)
    for raw in envelopes:
        assert refusal_code(fed, raw, frame_statement=statement) is FaultCode.BAD_SIGNATURE


def test_a_frame_statement_is_not_used_for_a_message_signed_alone(fed: Federation) -> None:
    """An envelope with no proof is checked over its own single-message statement even when
    a frame statement is given, so a batch signature cannot be moved onto it."""
    statement, [raw] = received_frame(_frame(fed, 1))
    alone = pb.Envelope.FromString(raw)
    alone.ClearField("proof")
    assert (
        refusal_code(fed, alone.SerializeToString(), frame_statement=statement)
        is FaultCode.BAD_SIGNATURE
    )


@pytest.mark.parametrize("signer", ["jiangsu", "anhui"])
def test_a_reply_frame_is_checked_over_its_one_statement(fed: Federation, signer: str) -> None:
    """Receipts cut from a reply frame are checked over the frame's statement with the same
    verdicts as by walking their proofs: accepted when Jiangsu signed the frame, a bad
    signature when another key signed it under Jiangsu's key id."""
    requests = [sealed_probe(fed, "shanghai", "jiangsu", sequence=n) for n in range(3)]
    receipts = []
    for request in requests:
        accepted = check(fed, request.envelope)
        assert isinstance(accepted, Authenticated)
        receipt = receipt_for(accepted, me=ME, now=NOW, manifest_version=1, key=fed.key(signer))
        receipts.append(pb.Envelope.FromString(receipt.envelope).message)
    batch, _ = signed_batch(receipts, fed.key(signer))
    batch.key_id = fed.key("jiangsu").key_id
    statement, replies = received_frame(batch)
    for reply, request in zip(replies, requests, strict=True):
        verdicts = []
        for frame_statement in (None, statement):
            try:
                verdicts.append(reply_check(fed, reply, request, frame_statement).payload_type)
            except Refusal as refusal:
                verdicts.append(refusal.code.value)
        expected = "receipt" if signer == "jiangsu" else FaultCode.BAD_SIGNATURE.value
        assert verdicts == [expected, expected]

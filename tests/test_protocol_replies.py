"""What a receiver's signed replies say, field by field, and how the sender's reply check
refuses a reply that answers something else (sans-I/O: bytes and a fixed clock).

tests/test_protocol_checks.py shows that a good reply passes and a bad one is refused; this file
pins down the content: a receipt that named the wrong message, a fault without its code or a
reply that dropped the correlation id would let the sender settle the wrong outbox row, so each
field is asserted here (make mutation checks that no rule goes unasserted).
"""

from __future__ import annotations

import pytest

from node.protocol.checks import Authenticated, check_envelope, check_reply
from node.protocol.envelope import (
    Sealed,
    digest,
    header,
    is_wire_id,
    new_message_id,
    seal,
)
from node.protocol.faults import FaultCode, Refusal
from node.protocol.replies import answer_for, fault_for, receipt_for
from node.trust.suites import ED25519_SUITE
from node.wire import pb
from tests.federation import NOW, Federation, make_federation, node_id

SHANGHAI, JIANGSU = node_id("shanghai"), node_id("jiangsu")
LATER = NOW + 2.25
"""When Jiangsu answers: a fractional second, so that nanoseconds are checked too."""
MANIFEST_VERSION = 7


class NoPriorDelivery:
    def prior(self, sender: str, message_id: str) -> None:
        return None


@pytest.fixture
def fed() -> Federation:
    return make_federation(version=MANIFEST_VERSION)


def request(fed: Federation, *, correlation_id: str = "case-42") -> Sealed:
    """Shanghai's probe to Jiangsu, part of a conversation (a correlation id)."""
    message = pb.Message(
        header=header(
            sender=SHANGHAI,
            recipient=JIANGSU,
            now=NOW,
            manifest_version=MANIFEST_VERSION,
            correlation_id=correlation_id,
        ),
        probe=pb.Probe(sequence=3),
    )
    return seal(message, fed.key("shanghai"))


def accepted(fed: Federation, sealed: Sealed) -> Authenticated:
    verdict = check_envelope(
        sealed.envelope,
        tls_identity=SHANGHAI,
        manifest=fed.manifest,
        me=JIANGSU,
        now=NOW,
        inbox=NoPriorDelivery(),
    )
    assert isinstance(verdict, Authenticated)
    return verdict


def opened(reply: Sealed) -> pb.Message:
    envelope = pb.Envelope.FromString(reply.envelope)
    assert envelope.message == reply.message
    return pb.Message.FromString(envelope.message)


def nanoseconds(at: float) -> int:
    return int(at * 1e9)


def assert_reply_header(h: pb.Header, to: Sealed, *, correlation_id: str) -> None:
    assert h.sender == JIANGSU
    assert h.recipient == SHANGHAI
    assert h.in_reply_to == to.message_id
    assert h.correlation_id == correlation_id
    assert h.manifest_version == MANIFEST_VERSION
    assert h.sent_at.ToNanoseconds() == pytest.approx(nanoseconds(LATER), abs=1000)
    assert is_wire_id(h.message_id)
    assert h.message_id != to.message_id


# --- headers -------------------------------------------------------------------------------


def test_header_carries_every_field_and_the_time_to_the_nanosecond() -> None:
    h = header(
        sender=SHANGHAI,
        recipient=JIANGSU,
        now=LATER,
        manifest_version=MANIFEST_VERSION,
        message_id="m-1",
        in_reply_to="m-0",
        correlation_id="case-42",
    )
    assert (h.message_id, h.sender, h.recipient) == ("m-1", SHANGHAI, JIANGSU)
    assert (h.in_reply_to, h.correlation_id) == ("m-0", "case-42")
    assert h.manifest_version == MANIFEST_VERSION
    assert h.sent_at.seconds == int(LATER)
    assert h.sent_at.nanos == pytest.approx(250_000_000, abs=1000)


def test_a_new_message_names_no_request_and_no_conversation() -> None:
    h = header(sender=SHANGHAI, recipient=JIANGSU, now=NOW, manifest_version=1)
    assert h.in_reply_to == ""
    assert h.correlation_id == ""
    assert h.sent_at.nanos == 0


def test_message_ids_are_fresh_wire_ids() -> None:
    ids = {new_message_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_wire_id(i) and len(i) == 36 for i in ids)
    made = header(sender=SHANGHAI, recipient=JIANGSU, now=NOW, manifest_version=1)
    assert is_wire_id(made.message_id) and made.message_id not in ids


def test_seal_names_the_message_it_signed(fed: Federation) -> None:
    sealed = request(fed)
    message = opened(sealed)
    assert sealed.message_id == message.header.message_id
    assert sealed.digest == digest(sealed.message, ED25519_SUITE)
    assert sealed.payload_type == "probe"
    assert pb.Envelope.FromString(sealed.envelope).key_id == fed.key("shanghai").key_id


# --- receipts, answers and faults ------------------------------------------------------------


def test_receipt_names_the_message_its_digest_and_when_it_arrived(fed: Federation) -> None:
    sent = request(fed)
    receipt = receipt_for(
        accepted(fed, sent),
        me=JIANGSU,
        now=LATER,
        manifest_version=MANIFEST_VERSION,
        key=fed.key("jiangsu"),
    )
    message = opened(receipt)
    assert message.WhichOneof("body") == "receipt"
    assert message.receipt.message_id == sent.message_id
    assert message.receipt.digest == sent.digest
    assert message.receipt.status == pb.Receipt.STATUS_ACCEPTED
    assert message.receipt.received_at.ToNanoseconds() == nanoseconds(LATER)
    assert_reply_header(message.header, sent, correlation_id="case-42")
    assert receipt.payload_type == "receipt"


def test_an_answer_keeps_the_conversation_of_its_request(fed: Federation) -> None:
    sent = request(fed, correlation_id="verification-9")
    attestation = pb.Attestation(request_digest=sent.digest, certificate_id="c", status="valid")
    answer = answer_for(
        accepted(fed, sent),
        ("attestation", attestation),
        me=JIANGSU,
        now=LATER,
        manifest_version=MANIFEST_VERSION,
        key=fed.key("jiangsu"),
    )
    message = opened(answer)
    assert message.attestation == attestation
    assert_reply_header(message.header, sent, correlation_id="verification-9")


def test_fault_carries_the_refusal_whole(fed: Federation) -> None:
    sent = request(fed)
    refusal = Refusal(
        FaultCode.CLOCK_SKEW,
        "sent_at is 3 hours ahead",
        field="header.sent_at",
        message_id=sent.message_id,
        digest=sent.digest,
    )
    fault = fault_for(
        refusal,
        me=JIANGSU,
        recipient=SHANGHAI,
        now=LATER,
        manifest_version=MANIFEST_VERSION,
        key=fed.key("jiangsu"),
    )
    message = opened(fault)
    assert message.fault.message_id == sent.message_id
    assert message.fault.digest == sent.digest
    assert message.fault.code == "clock_skew"
    assert message.fault.text == "sent_at is 3 hours ahead"
    assert message.fault.field == "header.sent_at"
    assert message.fault.grpc_status == FaultCode.CLOCK_SKEW.grpc_status.value[0]
    assert_reply_header(message.header, sent, correlation_id="")


# --- the sender's check of a reply -----------------------------------------------------------


def check(fed: Federation, reply: Sealed, asked: Sealed, *, me: str = SHANGHAI) -> Authenticated:
    return check_reply(
        reply.envelope,
        peer=JIANGSU,
        manifest=fed.manifest,
        me=me,
        now=LATER,
        request_id=asked.message_id,
        request_digest=asked.digest,
    )


def refused(fed: Federation, reply: Sealed, asked: Sealed, *, me: str = SHANGHAI) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check(fed, reply, asked, me=me)
    return caught.value


def reply_message(
    fed: Federation,
    asked: Sealed,
    body: tuple[str, object],
    *,
    sender: str = "jiangsu",
    recipient: str = SHANGHAI,
    in_reply_to: str | None = None,
) -> Sealed:
    message = pb.Message(
        header=header(
            sender=node_id(sender),
            recipient=recipient,
            now=LATER,
            manifest_version=MANIFEST_VERSION,
            in_reply_to=asked.message_id if in_reply_to is None else in_reply_to,
        )
    )
    getattr(message, body[0]).CopyFrom(body[1])
    return seal(message, fed.key(sender))


def test_a_good_reply_is_handed_back_whole(fed: Federation) -> None:
    sent = request(fed)
    receipt = receipt_for(
        accepted(fed, sent), me=JIANGSU, now=LATER, manifest_version=1, key=fed.key("jiangsu")
    )
    reply = check(fed, receipt, sent)
    assert reply.envelope == receipt.envelope
    assert reply.message_bytes == receipt.message
    assert reply.digest == receipt.digest
    assert reply.key_id == fed.key("jiangsu").key_id
    assert reply.sender.province == "jiangsu"
    assert reply.message_id == receipt.message_id


def test_a_reply_from_another_member_names_the_sender(fed: Federation) -> None:
    sent = request(fed)
    reply = reply_message(fed, sent, ("receipt", pb.Receipt(digest=sent.digest)), sender="anhui")
    refusal = refused(fed, reply, sent)
    assert refusal.code is FaultCode.SENDER_MISMATCH
    assert refusal.field == "header.sender"
    assert node_id("anhui") in refusal.text and JIANGSU in refusal.text
    assert (refusal.message_id, refusal.digest) == (reply.message_id, reply.digest)


@pytest.mark.parametrize("wrong", ["recipient", "in_reply_to"])
def test_a_reply_to_someone_else_or_about_something_else(fed: Federation, wrong: str) -> None:
    """Either mismatch alone is refused, before the body is looked at."""
    sent = request(fed)
    body = ("receipt", pb.Receipt(digest=sent.digest))
    if wrong == "recipient":
        reply = reply_message(fed, sent, body, recipient=node_id("zhejiang"))
    else:
        reply = reply_message(fed, sent, body, in_reply_to="another-message")
    refusal = refused(fed, reply, sent)
    assert refusal.code is FaultCode.WRONG_RECIPIENT
    assert refusal.field == "header.in_reply_to"
    assert sent.message_id in refusal.text
    assert (refusal.message_id, refusal.digest) == (reply.message_id, reply.digest)


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("receipt", pb.Receipt(digest=b"\x01" * 32), "body.receipt.digest"),
        ("fault", pb.Fault(digest=b"\x01" * 32, code="bad_signature"), "body.fault.digest"),
        (
            "attestation",
            pb.Attestation(request_digest=b"\x01" * 32),
            "body.attestation.request_digest",
        ),
    ],
)
def test_a_reply_about_another_message_is_refused(
    fed: Federation, kind: str, body: object, field: str
) -> None:
    sent = request(fed)
    reply = reply_message(fed, sent, (kind, body))
    refusal = refused(fed, reply, sent)
    assert refusal.code is FaultCode.INVALID_PAYLOAD
    assert refusal.field == field
    assert kind in refusal.text
    assert (refusal.message_id, refusal.digest) == (reply.message_id, reply.digest)


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("receipt", pb.Receipt(), "body.receipt.digest"),
        ("attestation", pb.Attestation(), "body.attestation.request_digest"),
    ],
)
def test_a_receipt_or_attestation_must_name_what_it_answers(
    fed: Federation, kind: str, body: object, field: str
) -> None:
    sent = request(fed)
    reply = reply_message(fed, sent, (kind, body))
    refusal = refused(fed, reply, sent)
    assert refusal.code is FaultCode.INVALID_PAYLOAD
    assert refusal.field == field
    assert f"{kind} carries no digest" in refusal.text
    assert (refusal.message_id, refusal.digest) == (reply.message_id, reply.digest)


def test_a_fault_about_unreadable_bytes_names_no_digest_and_is_taken(fed: Federation) -> None:
    """A receiver that could not parse the request cannot name its digest; its fault is still
    the peer's signed answer (the sender records the refusal)."""
    sent = request(fed)
    reply = reply_message(fed, sent, ("fault", pb.Fault(code="malformed_envelope")))
    assert check(fed, reply, sent).payload_type == "fault"


def test_a_reply_without_an_answer_digest_in_its_kind_is_taken(fed: Federation) -> None:
    """Replies of other kinds (a catalog, a revocation list) carry no request digest."""
    sent = request(fed)
    reply = reply_message(fed, sent, ("probe", pb.Probe(sequence=1)))
    assert check(fed, reply, sent).payload_type == "probe"

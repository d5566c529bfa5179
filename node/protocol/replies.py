"""Building the replies a receiver sends: receipts for accepted messages, faults for refused
ones, answers to requests. Each points back at the exact bytes it answers by digest.

``*_message`` builds the reply unsigned (the Exchange path signs a whole batch of replies
at once); ``*_for`` seals it on its own (``Deliver`` and ``DeliverStream``)."""

from __future__ import annotations

from google.protobuf.message import Message as ProtoMessage

from node.protocol.checks import Authenticated
from node.protocol.envelope import Sealed, header, seal
from node.protocol.faults import Refusal
from node.trust.keys import SigningKey
from node.wire import pb


def receipt_for(
    accepted: Authenticated, *, me: str, now: float, manifest_version: int, key: SigningKey
) -> Sealed:
    return seal(receipt_message(accepted, me=me, now=now, manifest_version=manifest_version), key)


def receipt_message(
    accepted: Authenticated, *, me: str, now: float, manifest_version: int
) -> pb.Message:
    h = accepted.message.header
    receipt = pb.Receipt(
        message_id=h.message_id,
        digest=accepted.digest,
        status=pb.Receipt.STATUS_ACCEPTED,
    )
    receipt.received_at.FromNanoseconds(int(now * 1e9))
    return answer_message(
        accepted, ("receipt", receipt), me=me, now=now, manifest_version=manifest_version
    )


def answer_for(
    accepted: Authenticated,
    body: tuple[str, ProtoMessage],
    *,
    me: str,
    now: float,
    manifest_version: int,
    key: SigningKey,
) -> Sealed:
    """The signed reply to ``accepted`` carrying ``body`` (field name, payload): a receipt,
    or the answer to a request such as an attestation."""
    return seal(
        answer_message(accepted, body, me=me, now=now, manifest_version=manifest_version), key
    )


def answer_message(
    accepted: Authenticated,
    body: tuple[str, ProtoMessage],
    *,
    me: str,
    now: float,
    manifest_version: int,
) -> pb.Message:
    h = accepted.message.header
    reply = pb.Message(
        header=header(
            sender=me,
            recipient=h.sender,
            now=now,
            manifest_version=manifest_version,
            in_reply_to=h.message_id,
            correlation_id=h.correlation_id,
        ),
    )
    getattr(reply, body[0]).CopyFrom(body[1])
    return reply


def fault_for(
    refusal: Refusal,
    *,
    me: str,
    recipient: str,
    now: float,
    manifest_version: int,
    key: SigningKey,
) -> Sealed:
    """The signed Fault for a refused message; ``recipient`` is whoever we believe sent it."""
    return seal(
        fault_message(
            refusal, me=me, recipient=recipient, now=now, manifest_version=manifest_version
        ),
        key,
    )


def fault_message(
    refusal: Refusal, *, me: str, recipient: str, now: float, manifest_version: int
) -> pb.Message:
    return pb.Message(
        header=header(
            sender=me,
            recipient=recipient,
            now=now,
            manifest_version=manifest_version,
            in_reply_to=refusal.message_id,
        ),
        fault=pb.Fault(
            message_id=refusal.message_id,
            digest=refusal.digest,
            code=refusal.code.value,
            text=refusal.text,
            field=refusal.field,
            grpc_status=refusal.code.grpc_status.value[0],
        ),
    )

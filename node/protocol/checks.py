"""The receiver's checks, in the order DESIGN.md §3 fixes, before anything is stored.

    size → parse (header identifiers well formed) → TLS identity = header.sender → sender is
    a member → key is the sender's, current and not revoked → signature → recipient is us →
    sent_at in the clock window → message_id not seen with other bytes → policy allows the
    payload type (a replica probe: the sender is this node itself) → payload valid (every
    string clean text, then the payload's own checks)

Each failing step raises a ``Refusal`` with its own ``FaultCode``. Header identifiers must
be ``WIRE_ID``s (``malformed_message``, the refused id never echoed); every other string
of a message is free text that ``node.text.clean_text`` accepts unchanged: no control,
format or invisible characters, already in Unicode normal form C (``invalid_payload``
naming the field), since a receiver keeps a message exactly as its sender signed it.

A message whose id was seen before with the same bytes is not refused: the caller gets a
``Redelivery`` holding the original reply, so delivery is idempotent. Replies (receipts,
faults, answers) are checked by ``check_reply``: same authentication, no clock window (a
stored receipt handed back on re-delivery is legitimately old), they must answer the
request they claim to answer, and their text is held to the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Protocol, TypedDict

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from node.protocol.envelope import (
    MAX_WIRE_ID_LENGTH,
    digest,
    is_wire_id,
    payload_type,
    signer_suite,
    statement_of,
)
from node.protocol.faults import FaultCode, Refusal
from node.text import TextError, clean_text
from node.trust.keys import VerifyKey
from node.trust.manifest import Manifest, Member
from node.trust.suites import SUITES
from node.wire import pb

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_CLOCK_WINDOW = 300.0
REPLY_TYPES = frozenset({"receipt", "fault", "attestation", "replica_store"})
"""Payloads that only ever answer a request; nobody may send one as a message of its own."""
OWN_REPLICA_TYPES = frozenset({"replica_probe"})
"""Payloads a node's replicas send each other: allowed from this node's own identity only,
whatever the manifest policy lists (the policy says what a member may send to others)."""
HEADER_IDS = ("message_id", "sender", "recipient", "in_reply_to", "correlation_id")
"""The header's identifiers, each a ``WIRE_ID`` when present; the first three always are."""


class _Ids(TypedDict):
    """What a refusal says about the message it refuses."""

    message_id: str
    digest: bytes


@dataclass(frozen=True)
class CheckLimits:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest serialized Envelope accepted."""
    clock_window: float = DEFAULT_CLOCK_WINDOW
    """How far (seconds, either way) header.sent_at may be from the receiver's clock."""


@dataclass(frozen=True)
class PriorDelivery:
    """What the inbox remembers of a message it already accepted."""

    digest: bytes
    reply: bytes
    """The signed reply envelope that was returned the first time."""


class InboxView(Protocol):
    def prior(self, sender: str, message_id: str) -> PriorDelivery | None: ...


PayloadValidator = Callable[["Authenticated"], None]
"""Raises ``Refusal(FaultCode.INVALID_PAYLOAD, …)`` when the payload is not acceptable."""


@dataclass(frozen=True)
class Authenticated:
    """A message whose signature verified under a usable key of a member."""

    envelope: bytes
    message_bytes: bytes
    message: pb.Message
    digest: bytes
    key_id: str
    signature: bytes
    sender: Member

    @property
    def message_id(self) -> str:
        return self.message.header.message_id

    @cached_property
    def payload_type(self) -> str:
        # Asked several times per message on the receive path (checks, store, effects,
        # metrics); the message never changes after parsing.
        return payload_type(self.message)


@dataclass(frozen=True)
class Redelivery:
    """The same message (same id, same bytes) again: answer with the original reply."""

    message: Authenticated
    prior: PriorDelivery


def _parse(raw: bytes, limits: CheckLimits) -> tuple[pb.Envelope, pb.Message, bytes]:
    if len(raw) > limits.max_message_bytes:
        raise Refusal(
            FaultCode.MESSAGE_TOO_LARGE,
            f"envelope is {len(raw)} bytes; the limit is {limits.max_message_bytes}",
            field="envelope",
        )
    envelope = pb.Envelope()
    try:
        envelope.ParseFromString(raw)
    except DecodeError as exc:
        raise Refusal(
            FaultCode.MALFORMED_ENVELOPE, f"envelope is not a valid protobuf Envelope: {exc}"
        ) from exc
    if not envelope.message or not envelope.signature or not envelope.key_id:
        raise Refusal(
            FaultCode.MALFORMED_ENVELOPE,
            "envelope must carry message, signature and key_id",
            field="envelope",
        )
    message_digest = digest(envelope.message, signer_suite(envelope.key_id))
    message = pb.Message()
    try:
        message.ParseFromString(envelope.message)
    except DecodeError as exc:
        raise Refusal(
            FaultCode.MALFORMED_MESSAGE,
            f"envelope.message is not a valid protobuf Message: {exc}",
            field="envelope.message",
            digest=message_digest,
        ) from exc
    h = message.header
    for name in HEADER_IDS[:3]:
        if not getattr(h, name):
            raise Refusal(
                FaultCode.MALFORMED_MESSAGE,
                f"header.{name} is empty",
                field=f"header.{name}",
                message_id=h.message_id if is_wire_id(h.message_id) else "",
                digest=message_digest,
            )
    for name in HEADER_IDS:
        value = getattr(h, name)
        if value and not is_wire_id(value):
            raise Refusal(
                FaultCode.MALFORMED_MESSAGE,
                f"header.{name} must be 1 to {MAX_WIRE_ID_LENGTH} ASCII letters, digits, "
                "'.', '_', ':' or '-', starting with a letter or digit",
                field=f"header.{name}",
                message_id=h.message_id if is_wire_id(h.message_id) else "",
                digest=message_digest,
            )
    return envelope, message, message_digest


def _strings(message: ProtoMessage, path: str) -> Iterator[tuple[str, str]]:
    """Every string in ``message`` with the path that names it (``body.case_submit.
    applicant.name``, ``materials[2].name``); a map's keys and values by the map's name."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            items = enumerate(value) if field.is_repeated else ((None, value),)
            for index, text in items:
                yield (name if index is None else f"{name}[{index}]"), text
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                for key, item in value.items():
                    yield name, key
                    if isinstance(item, str):
                        yield name, item
                    elif isinstance(item, ProtoMessage):
                        yield from _strings(item, f"{name}.")
            elif field.is_repeated:
                for index, item in enumerate(value):
                    yield from _strings(item, f"{name}[{index}].")
            else:
                yield from _strings(value, f"{name}.")


def _check_text(message: pb.Message, ids: _Ids) -> None:
    """Refuse a body with a string that is not clean text in normal form C (module doc);
    the header's strings are identifiers, checked while parsing."""
    kind = payload_type(message)
    if not kind:
        return
    for path, text in _strings(getattr(message, kind), f"body.{kind}."):
        try:
            clean_text(text, field=path, normalise=False)
        except TextError as error:
            raise Refusal(
                FaultCode.INVALID_PAYLOAD, error.detail, field=error.field, **ids
            ) from None


def _authenticate(
    raw: bytes,
    envelope: pb.Envelope,
    message: pb.Message,
    message_digest: bytes,
    manifest: Manifest,
    now: float,
    frame_statement: bytes | None = None,
) -> Authenticated:
    h = message.header
    ids: _Ids = {"message_id": h.message_id, "digest": message_digest}
    member = manifest.member(h.sender)
    if member is None:
        raise Refusal(
            FaultCode.UNKNOWN_SENDER,
            f"sender {h.sender!r} is not a member of the federation (manifest "
            f"version {manifest.version})",
            field="header.sender",
            **ids,
        )
    key = member.key(envelope.key_id)
    if key is None:
        raise Refusal(
            FaultCode.UNKNOWN_KEY,
            f"key {envelope.key_id!r} is not one of {h.sender}'s keys in manifest version "
            f"{manifest.version}",
            field="envelope.key_id",
            **ids,
        )
    if key.revoked:
        raise Refusal(
            FaultCode.KEY_REVOKED,
            f"key {envelope.key_id} of {h.sender} is revoked",
            field="envelope.key_id",
            **ids,
        )
    if not key.usable_at(now):
        raise Refusal(
            FaultCode.KEY_NOT_CURRENT,
            f"key {envelope.key_id} of {h.sender} is outside its validity window",
            field="envelope.key_id",
            **ids,
        )
    if frame_statement is not None and envelope.HasField("proof"):
        statement: bytes | None = frame_statement
    else:
        statement = statement_of(envelope)
    if statement is None:
        raise Refusal(
            FaultCode.BAD_SIGNATURE,
            "envelope.proof does not place the message in a batch: leaf_index must be below "
            "tree_size and the path exactly as long as that tree needs",
            field="envelope.proof",
            **ids,
        )
    if envelope.HasField("proof"):
        verifies = _batch_signature_verifies(key.verify_key, envelope.signature, statement)
    else:
        verifies = key.verify_key.verify(envelope.signature, statement)
    if not verifies:
        raise Refusal(
            FaultCode.BAD_SIGNATURE,
            f"signature does not verify under {envelope.key_id}",
            field="envelope.signature",
            **ids,
        )
    return Authenticated(
        envelope=raw,
        message_bytes=envelope.message,
        message=message,
        digest=message_digest,
        key_id=envelope.key_id,
        signature=envelope.signature,
        sender=member,
    )


def _names_message(prior_digest: bytes, message_bytes: bytes) -> bool:
    """Whether a stored digest names these bytes under some suite's hash: a sender that
    moved to a key of another suite re-signs what its outbox still holds, and the same
    message under the new suite's hash is still the same message, not a replay."""
    return any(suite.hash(message_bytes) == prior_digest for suite in SUITES.values())


@lru_cache(maxsize=256)
def _batch_signature_verifies(key: VerifyKey, signature: bytes, statement: bytes) -> bool:
    """Every message of a batch carries the batch's one signature, and its proof leads to the
    same short statement (size and root): verified once, remembered for the other messages.
    A pure function of its arguments, so remembering changes no answer; a revoked or expired
    key is refused before this is asked."""
    return key.verify(signature, statement)


def check_envelope(
    raw: bytes,
    *,
    tls_identity: str | None,
    manifest: Manifest,
    me: str,
    now: float,
    inbox: InboxView,
    limits: CheckLimits = CheckLimits(),
    validators: Mapping[str, PayloadValidator] | None = None,
    frame_statement: bytes | None = None,
) -> Authenticated | Redelivery:
    """Run every receiver check on a request envelope; raise ``Refusal`` at the first failure.

    ``frame_statement``: for an envelope this node cut from a received frame itself
    (``received_frame``), the statement its proof leads to; its signature is checked over
    that, the proof not walked again."""
    envelope, message, message_digest = _parse(raw, limits)
    h = message.header
    ids: _Ids = {"message_id": h.message_id, "digest": message_digest}
    if tls_identity != h.sender:
        raise Refusal(
            FaultCode.SENDER_MISMATCH,
            f"header.sender {h.sender!r} is not the TLS peer identity {tls_identity!r}",
            field="header.sender",
            **ids,
        )
    authenticated = _authenticate(
        raw, envelope, message, message_digest, manifest, now, frame_statement
    )
    if h.recipient != me:
        raise Refusal(
            FaultCode.WRONG_RECIPIENT,
            f"header.recipient is {h.recipient!r}; this node is {me!r}",
            field="header.recipient",
            **ids,
        )
    sent_at = h.sent_at.seconds + h.sent_at.nanos / 1e9
    if abs(sent_at - now) > limits.clock_window:
        raise Refusal(
            FaultCode.CLOCK_SKEW,
            f"header.sent_at is {sent_at - now:+.0f} s from this node's clock; the window is "
            f"±{limits.clock_window:.0f} s",
            field="header.sent_at",
            **ids,
        )
    prior = inbox.prior(h.sender, h.message_id)
    if prior is not None:
        if not _names_message(prior.digest, envelope.message):
            raise Refusal(
                FaultCode.REPLAY_MISMATCH,
                f"message id {h.message_id} was already received with different content",
                field="header.message_id",
                **ids,
            )
        return Redelivery(authenticated, prior)
    kind = authenticated.payload_type
    if kind in OWN_REPLICA_TYPES:
        if h.sender != me:
            raise Refusal(
                FaultCode.PAYLOAD_NOT_ALLOWED,
                f"only this node's own replicas may send {kind}, not {h.sender}",
                field="body",
                **ids,
            )
    elif kind not in authenticated.sender.may_send or kind in REPLY_TYPES:
        raise Refusal(
            FaultCode.PAYLOAD_NOT_ALLOWED,
            f"the manifest policy does not allow {h.sender} to send {kind or 'an empty body'}",
            field="body",
            **ids,
        )
    _check_text(message, ids)
    validator = (validators or {}).get(kind)
    if validator is not None:
        validator(authenticated)
    return authenticated


def check_reply(
    raw: bytes,
    *,
    peer: str,
    manifest: Manifest,
    me: str,
    now: float,
    request_id: str,
    request_digest: bytes,
    request_envelope: bytes = b"",
    limits: CheckLimits = CheckLimits(),
    frame_statement: bytes | None = None,
) -> Authenticated:
    """Check a peer's signed reply to a request this node sent (``frame_statement`` as in
    ``check_envelope``, for a reply cut from a reply frame).

    ``request_envelope`` (the request as sealed) is read only when the reply names the
    request by another digest than ``request_digest``: a request queued under a key of one
    suite and sent after this node moved to a key of the other is named by the new suite's
    hash, and is still the same bytes."""
    envelope, message, message_digest = _parse(raw, limits)
    h = message.header
    ids: _Ids = {"message_id": h.message_id, "digest": message_digest}
    if h.sender != peer:
        raise Refusal(
            FaultCode.SENDER_MISMATCH,
            f"reply comes from {h.sender!r}, not from the peer asked, {peer!r}",
            field="header.sender",
            **ids,
        )
    authenticated = _authenticate(
        raw, envelope, message, message_digest, manifest, now, frame_statement
    )
    if h.recipient != me or h.in_reply_to != request_id:
        raise Refusal(
            FaultCode.WRONG_RECIPIENT,
            f"reply is addressed to {h.recipient!r} about {h.in_reply_to!r}, not to {me!r} "
            f"about {request_id!r}",
            field="header.in_reply_to",
            **ids,
        )
    kind = payload_type(message)
    digest_field = _ANSWER_DIGEST.get(kind)
    if digest_field is not None:
        answered = getattr(getattr(message, kind), digest_field)
        if answered and not _answers(answered, request_digest, request_envelope):
            # An attestation (or receipt) for another request, replayed as this one's answer.
            raise Refusal(
                FaultCode.INVALID_PAYLOAD,
                f"{kind} carries the digest of another message than {request_id}",
                field=f"body.{kind}.{digest_field}",
                **ids,
            )
        if not answered and kind in _MUST_NAME_REQUEST:
            raise Refusal(
                FaultCode.INVALID_PAYLOAD,
                f"{kind} carries no digest of the request it answers",
                field=f"body.{kind}.{digest_field}",
                **ids,
            )
    _check_text(message, ids)
    return authenticated


def _answers(answered: bytes, request_digest: bytes, request_envelope: bytes) -> bool:
    if answered == request_digest:
        return True
    if not request_envelope:
        return False
    return _names_message(answered, pb.Envelope.FromString(request_envelope).message)


_ANSWER_DIGEST = {
    "receipt": "digest",
    "fault": "digest",
    "attestation": "request_digest",
    "replica_store": "request_digest",
}
"""The field of a reply that names the digest of the request it answers."""
_MUST_NAME_REQUEST = frozenset({"receipt", "attestation", "replica_store"})
"""A fault may leave it empty: a receiver that could not parse the request has no digest."""

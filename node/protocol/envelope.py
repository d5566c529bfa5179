"""Sealing messages into signed envelopes.

Rules kept here:
- The signature is Ed25519 over ``DOMAIN_PREFIX`` followed by the serialized Message, so a
  signature made for an envelope can never be replayed as a signature over anything else
  (a manifest, a presentation) that the same key signs.
- A message is serialized exactly once, when sealed; the bytes signed are the bytes sent,
  stored, digested and verified.
- Every identifier a header carries (message id, sender, recipient, in_reply_to,
  correlation_id) is a ``WIRE_ID``: 1 to ``MAX_WIRE_ID_LENGTH`` ASCII letters, digits and
  ``. _ : -``, starting with a letter or digit. What this node makes fits it (a UUID, a
  node id ``node-310000``, a case id, ``revocation-list:7``); the receiver's checks refuse
  anything else before it is stored, logged or echoed in a fault.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Final

from node.trust.keys import SigningKey
from node.wire import pb

DOMAIN_PREFIX = b"yrd.federation.v1/envelope\x00"
MAX_WIRE_ID_LENGTH: Final = 128
WIRE_ID: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_WIRE_ID_LENGTH - 1}}}")
"""A header's identifiers, and a message id wherever a payload names one (module rules)."""


def is_wire_id(text: str) -> bool:
    return WIRE_ID.fullmatch(text) is not None


def digest(message_bytes: bytes) -> bytes:
    """SHA-256 of a message's bytes: what receipts and replies point back to."""
    return hashlib.sha256(message_bytes).digest()


def signing_input(message_bytes: bytes) -> bytes:
    return DOMAIN_PREFIX + message_bytes


def new_message_id() -> str:
    return str(uuid.uuid4())


def payload_type(message: pb.Message) -> str:
    """The name of the ``body`` field set in the message, or "" when none is."""
    return message.WhichOneof("body") or ""


@dataclass(frozen=True)
class Sealed:
    """A signed message, ready to store and send."""

    envelope: bytes
    """The serialized Envelope."""
    message: bytes
    """The serialized Message inside it (what was signed)."""
    message_id: str
    digest: bytes
    payload_type: str


def header(
    *,
    sender: str,
    recipient: str,
    now: float,
    manifest_version: int,
    message_id: str | None = None,
    in_reply_to: str = "",
    correlation_id: str = "",
) -> pb.Header:
    result = pb.Header(
        message_id=message_id or new_message_id(),
        sender=sender,
        recipient=recipient,
        in_reply_to=in_reply_to,
        correlation_id=correlation_id,
        manifest_version=manifest_version,
    )
    result.sent_at.FromNanoseconds(int(now * 1e9))
    return result


def seal(message: pb.Message, key: SigningKey) -> Sealed:
    message_bytes = message.SerializeToString(deterministic=True)
    envelope = pb.Envelope(
        message=message_bytes,
        signature=key.sign(signing_input(message_bytes)),
        key_id=key.key_id,
    )
    return Sealed(
        envelope=envelope.SerializeToString(deterministic=True),
        message=message_bytes,
        message_id=message.header.message_id,
        digest=digest(message_bytes),
        payload_type=payload_type(message),
    )

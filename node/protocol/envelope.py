"""Sealing messages into signed envelopes.

Rules kept here:
- A signature is over a labelled statement, never bare bytes, so a signature made for an
  envelope can never be replayed as a signature over anything else (a manifest, a
  presentation) that the same key signs. Two statements (DESIGN §3): one message,
  ``DOMAIN_PREFIX || message``; a batch, ``BATCH_PREFIX || uint64 BE tree_size || root`` over
  the RFC 9162 tree whose leaves are the messages. Out of its batch, a message's Envelope
  carries the batch signature and a ``BatchProof``; its statement is rebuilt from the message
  and the proof, so every message stays provable on its own.
- A message waiting in an outbox is held unsigned (``queued``: an Envelope of the message
  alone, no signature, key id or proof); the batch signature made when it is sent is its only
  signature. The receiver's checks refuse an envelope without a signature, and the evidence
  log only ever holds a message as it was sent, so the unsigned form is never accepted or
  evidence. A message sent on its own (``Deliver``) is signed then (``seal``).

Mutants ``make mutation`` leaves alive in ``seal_batch`` and ``batch_statement`` are
equivalent: ``deterministic=True`` → ``False``/``None`` (our messages have no map fields,
whose order is the only thing it fixes), ``zip(..., strict=True)`` → no or a false ``strict``
(both sequences are made from the same list), and ``to_bytes(8, "big")`` → ``to_bytes(8)``
("big" is the default since Python 3.11).
- A message is serialized exactly once, when sealed; the bytes signed are the bytes sent,
  stored, digested and verified.
- Digests that name a signed message (a receipt's or a reply's digest of what it answers, a
  batch's tree) use the hash of the signer's suite (DESIGN §3): SHA-256 under an ``ed25519:``
  key, SM3 under an ``sm2:`` key. The suite is read from the envelope's key id, so a receiver
  knows it before it trusts anything; a key id of no known suite is refused as an unknown key
  by the checks, and until then its message is named by SHA-256.
- Every identifier a header carries (message id, sender, recipient, in_reply_to,
  correlation_id) is a ``WIRE_ID``: 1 to ``MAX_WIRE_ID_LENGTH`` ASCII letters, digits and
  ``. _ : -``, starting with a letter or digit. What this node makes fits it (a UUID, a
  node id ``node-310000``, a case id, ``revocation-list:7``); the receiver's checks refuse
  anything else before it is stored, logged or echoed in a fault.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from node.protocol.merkle import MerkleTree, leaf_hash, root_from_inclusion
from node.trust.keys import SigningKey
from node.trust.suites import ED25519_SUITE, SUITES, Suite
from node.wire import pb

DOMAIN_PREFIX = b"yrd.federation.v1/envelope\x00"
BATCH_PREFIX = b"yrd.federation.v1/batch\x00"
MAX_WIRE_ID_LENGTH: Final = 128
WIRE_ID: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_WIRE_ID_LENGTH - 1}}}")
"""A header's identifiers, and a message id wherever a payload names one (module rules)."""


def is_wire_id(text: str) -> bool:
    return WIRE_ID.fullmatch(text) is not None


def digest(message_bytes: bytes, suite: Suite) -> bytes:
    """The hash of ``suite`` (the signer's) over a message's bytes: what receipts and replies
    point back to."""
    return suite.hash(message_bytes)


def envelope_digest(envelope: bytes) -> bytes:
    """The digest naming the message inside a serialized Envelope, by its signer's suite."""
    parsed = pb.Envelope.FromString(envelope)
    return digest(parsed.message, signer_suite(parsed.key_id))


def signer_suite(key_id: str) -> Suite:
    """The suite a key id names (``sm2:…`` → SM2); Ed25519's for one that names no known
    suite, whose message the checks refuse as from an unknown key (module rules)."""
    name, _, _ = key_id.partition(":")
    return SUITES.get(name, ED25519_SUITE)


def signing_input(message_bytes: bytes) -> bytes:
    return DOMAIN_PREFIX + message_bytes


def batch_statement(tree_size: int, root: bytes) -> bytes:
    """What a batch signature signs: the size and the root together, so a root cannot be
    passed off as that of a tree of another size."""
    return BATCH_PREFIX + tree_size.to_bytes(8, "big") + root


def statement_of(envelope: pb.Envelope) -> bytes | None:
    """What ``envelope``'s signature must be over: the single-message statement, or with a
    batch proof the batch statement over the root the proof leads to; None when the proof
    is malformed (index not below size, path of the wrong length)."""
    if not envelope.HasField("proof"):
        return signing_input(envelope.message)
    proof = envelope.proof
    hash_function = signer_suite(envelope.key_id).hash
    root = root_from_inclusion(
        leaf_hash(envelope.message, hash_function),
        proof.leaf_index,
        proof.tree_size,
        proof.path,
        hash_function,
    )
    if root is None:
        return None
    return batch_statement(proof.tree_size, root)


def new_message_id() -> str:
    return str(uuid.uuid4())


def payload_type(message: pb.Message) -> str:
    """The name of the ``body`` field set in the message, or "" when none is."""
    return message.WhichOneof("body") or ""


@dataclass(frozen=True)
class Sealed:
    """A message ready to store and send: signed, or unsigned as an outbox holds it
    (``queued``)."""

    envelope: bytes
    """The serialized Envelope."""
    message: bytes
    """The serialized Message inside it (what is signed)."""
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


@dataclass(frozen=True)
class SealedBatch:
    """Messages signed once: the Exchange frame, and each message's own provable Envelope."""

    frame: bytes
    """The serialized Batch."""
    sealed: list[Sealed]
    """Per message, in order: an Envelope with the batch signature and its BatchProof."""


MAX_BATCH_MESSAGES: Final = 1024
"""Most messages one Exchange frame may hold; a sender's configured batch size fits under it."""


def seal_batch(messages: Sequence[pb.Message], key: SigningKey) -> SealedBatch:
    """Sign ``messages`` (at least one) with one signature over their tree's root."""
    encoded = [m.SerializeToString(deterministic=True) for m in messages]
    frame, envelopes = sign_batch(encoded, key)
    return SealedBatch(
        frame,
        [
            Sealed(
                envelope=envelope,
                message=message_bytes,
                message_id=message.header.message_id,
                digest=digest(message_bytes, key.suite),
                payload_type=payload_type(message),
            )
            for message, message_bytes, envelope in zip(messages, encoded, envelopes, strict=True)
        ],
    )


def sign_batch(encoded: Sequence[bytes], key: SigningKey) -> tuple[bytes, list[bytes]]:
    """Sign serialized messages (at least one) once, over their tree's root: the Exchange
    frame, and each message as its own provable Envelope, in order."""
    batch, tree = signed_batch(encoded, key)
    return batch.SerializeToString(deterministic=True), envelopes_of(batch, tree)


def signed_batch(encoded: Sequence[bytes], key: SigningKey) -> tuple[pb.Batch, MerkleTree]:
    """The Batch of serialized messages (at least one), signed once, and its tree."""
    if not encoded:
        raise ValueError("a batch holds at least one message")
    tree = MerkleTree.of(encoded, key.suite.hash)
    batch = pb.Batch(
        messages=encoded,
        signature=key.sign(batch_statement(tree.size, tree.root())),
        key_id=key.key_id,
    )
    return batch, tree


def received_frame(batch: pb.Batch) -> tuple[bytes, list[bytes]]:
    """A received frame cut into its messages' own Envelopes (``envelopes_of``), with the
    batch statement that every one of their proofs leads to: the proofs come from the tree
    of the messages as received, so the receiver checks the frame's one signature over this
    statement instead of walking each proof back to the same root."""
    tree = MerkleTree.of(batch.messages, signer_suite(batch.key_id).hash)
    return batch_statement(tree.size, tree.root()), envelopes_of(batch, tree)


def envelopes_of(batch: pb.Batch, tree: MerkleTree | None = None) -> list[bytes]:
    """Each message of a batch as its own Envelope: the batch's signature and key id with the
    message's ``BatchProof``. Checked one by one, as any envelope is; nothing here is trusted."""
    tree = tree or MerkleTree.of(batch.messages, signer_suite(batch.key_id).hash)
    return [
        pb.Envelope(
            message=message_bytes,
            signature=batch.signature,
            key_id=batch.key_id,
            proof=pb.BatchProof(
                tree_size=tree.size, leaf_index=index, path=tree.inclusion_path(index)
            ),
        ).SerializeToString(deterministic=True)
        for index, message_bytes in enumerate(batch.messages)
    ]


def queued(message: pb.Message, suite: Suite) -> Sealed:
    """A message as an outbox holds it until it is sent, unsigned (module rules): named by
    the digest of ``suite``, the one this node signs with now."""
    message_bytes = message.SerializeToString(deterministic=True)
    return Sealed(
        envelope=pb.Envelope(message=message_bytes).SerializeToString(deterministic=True),
        message=message_bytes,
        message_id=message.header.message_id,
        digest=digest(message_bytes, suite),
        payload_type=payload_type(message),
    )


def seal(message: pb.Message, key: SigningKey) -> Sealed:
    message_bytes = message.SerializeToString(deterministic=True)
    return Sealed(
        envelope=seal_encoded(message_bytes, key),
        message=message_bytes,
        message_id=message.header.message_id,
        digest=digest(message_bytes, key.suite),
        payload_type=payload_type(message),
    )


def seal_encoded(message_bytes: bytes, key: SigningKey) -> bytes:
    """The Envelope of one serialized message, signed on its own."""
    envelope = pb.Envelope(
        message=message_bytes,
        signature=key.sign(signing_input(message_bytes)),
        key_id=key.key_id,
    )
    return envelope.SerializeToString(deterministic=True)

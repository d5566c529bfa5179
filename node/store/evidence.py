"""One message's evidence as the JSON bundle of DESIGN §5, checkable with the manifest alone.

The bundle holds the message bytes and the signature over them (with the batch proof when
the message travelled in a signed batch), and the reply that settled it (a receipt, a fault
or an answer) with its own signature, each with the signer's public key as the manifest
lists it. Nothing in it needs this project's code to check: base64, SHA-256, RFC 9162
inclusion paths and Ed25519 over the labelled statements of DESIGN §3.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.message import DecodeError

from node.store.audit import AuditEntry, message_entries, recorded_keys
from node.store.connection import Connection
from node.trust.keys import VerifyKey
from node.trust.manifest import format_time
from node.wire import pb


class EvidenceError(Exception):
    """The log holds no usable evidence of the message; the text says why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _envelope(entry: AuditEntry) -> pb.Envelope:
    envelope = pb.Envelope()
    try:
        envelope.ParseFromString(entry.body)
    except DecodeError:
        raise EvidenceError(f"evidence entry {entry.seq} is not a protobuf Envelope") from None
    return envelope


def _signed(envelope: pb.Envelope, keys: dict[str, VerifyKey]) -> dict[str, Any]:
    key = keys.get(envelope.key_id)
    if key is None:
        raise EvidenceError(f"key {envelope.key_id!r} is in no manifest the log holds")
    batch = None
    if envelope.HasField("proof"):
        proof = envelope.proof
        batch = {
            "tree_size": proof.tree_size,
            "leaf_index": proof.leaf_index,
            "path": [_b64(node) for node in proof.path],
        }
    return {
        "message": _b64(envelope.message),
        "signature": {
            "key_id": envelope.key_id,
            "public_key": _b64(key.public_bytes),
            "value": _b64(envelope.signature),
            "batch": batch,
        },
    }


def bundle(conn: Connection, message_id: str) -> dict[str, Any]:
    """The evidence of ``message_id``: the message as sent or received, and its reply."""
    entries = message_entries(conn, message_id)
    sent = [e for e in entries if e.kind == "envelope"]
    if not sent:
        raise EvidenceError(f"the evidence log holds no message {message_id!r}")
    message = sent[0]
    if message.purged_at is not None:
        raise EvidenceError(
            f"the evidence of message {message_id!r} was purged at the end of its retention "
            f"(at {format_time(message.purged_at)}); its leaf stays in the evidence tree"
        )
    replies = [e for e in entries if e.kind == "reply" and e.purged_at is None]
    keys = recorded_keys(conn)
    return {
        "message_id": message_id,
        "direction": message.direction,
        "peer": message.peer,
        **_signed(_envelope(message), keys),
        "receipt": _signed(_envelope(replies[-1]), keys) if replies else None,
    }

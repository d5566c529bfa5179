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

from node.store.audit import AuditEntry, Signers, message_entries, recorded_keys
from node.store.checkpoints import Cosigned, cosigned, signature_problem
from node.store.connection import Connection
from node.store.log_tree import StoredTree
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
            **_key(envelope.key_id, keys),
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
    keys, signers = recorded_keys(conn)
    return {
        "message_id": message_id,
        "direction": message.direction,
        "peer": message.peer,
        **_signed(_envelope(message), keys),
        "receipt": _signed(_envelope(replies[-1]), keys) if replies else None,
        "log": _in_log(conn, message, signers),
    }


def _in_log(conn: Connection, entry: AuditEntry, signers: Signers) -> dict[str, Any]:
    """The message's entry in the evidence log, its inclusion path in the latest cosigned
    checkpoint that covers it, that checkpoint, and every witness's cosignature of it (the
    checkpoint is None while no witness has cosigned one covering the entry). Only rows
    signed by the log's node and cosigned by another member, each under its own key, count:
    a row the store holds is not evidence on its own say-so."""
    covering = [
        h
        for h in cosigned(conn, own=True)
        if h.tree_size >= entry.seq and not signature_problem(h, signers.keys_at)
    ]
    shown: dict[str, Any] = {
        "entry": {
            "seq": entry.seq,
            "recorded_at": entry.recorded_at,
            "direction": entry.direction,
            "peer": entry.peer,
            "message_id": entry.message_id,
            "kind": entry.kind,
            "body": _b64(entry.body),
        },
        "leaf_index": entry.seq - 1,
        "checkpoint": None,
    }
    if not covering:
        return shown
    latest = max(covering, key=lambda h: (h.tree_size, h.checkpoint.signed_at_ms))
    # The same checkpoint by content, not by signature bytes: one is signed per witness, and
    # an SM2 signature is randomised, so each witness holds a differently signed copy; every
    # cosignature covers the content alone, so each verifies against the one shown.
    same = [h for h in covering if _content(h) == _content(latest)]
    checkpoint = latest.checkpoint
    shown["tree_size"] = latest.tree_size
    shown["path"] = [
        _b64(node) for node in StoredTree(conn).inclusion_path(entry.seq - 1, latest.tree_size)
    ]
    shown["checkpoint"] = {
        "origin": checkpoint.origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": _b64(checkpoint.root_hash),
        "signed_at_ms": checkpoint.signed_at_ms,
        **_key(checkpoint.key_id, signers.of(checkpoint.origin)),
        "signature": _b64(checkpoint.signature),
    }
    # One per witness, by the witness its cosignature names (a copied row is no second one).
    by_witness = {h.cosignature.witness: h for h in same}
    shown["cosignatures"] = [_cosignature(h, signers) for h in by_witness.values()]
    return shown


def _content(held: Cosigned) -> tuple[str, int, bytes, int]:
    checkpoint = held.checkpoint
    return (checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash, checkpoint.signed_at_ms)


def _key(key_id: str, keys: dict[str, VerifyKey]) -> dict[str, str]:
    key = keys.get(key_id)
    if key is None:
        raise EvidenceError(f"key {key_id!r} is in no manifest the log holds")
    return {"key_id": key_id, "public_key": _b64(key.public_bytes)}


def _cosignature(held: Cosigned, signers: Signers) -> dict[str, Any]:
    cosignature = held.cosignature
    return {
        "witness": cosignature.witness,
        "cosigned_at_ms": cosignature.cosigned_at_ms,
        **_key(cosignature.key_id, signers.of(cosignature.witness)),
        "signature": _b64(cosignature.signature),
    }

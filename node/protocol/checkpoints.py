"""Checkpoints of the evidence log and the cosignatures of the peers that witness them.

Rules kept here (sans-I/O):
- A checkpoint is the head of a node's evidence tree (RFC 9162): its node id, tree size,
  root hash and the time it was signed, signed by that node over one statement
  (``checkpoint_statement``); a cosignature is a witness's signature over that very statement,
  with its own node id and time in front (``cosignature_statement``). Both are signed and
  checked with the manifest's keys, like envelopes, so a third party needs nothing else.
- A witness cosigns a checkpoint only if it extends the last checkpoint of that log it
  cosigned: the same size and root, or a larger tree with an RFC 9162 consistency proof from
  that size. A smaller tree (entries deleted), another root at the same size (a rewrite, or
  a fork shown to two witnesses) or a larger tree without a valid proof is refused with
  ``log_inconsistent``, naming what diverges.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from node.protocol.faults import FaultCode, Refusal
from node.protocol.merkle import verify_consistency
from node.trust.keys import SigningKey, VerifyKey
from node.wire import pb

CHECKPOINT_PREFIX = b"yrd.federation.v1/checkpoint\x00"
COSIGNATURE_PREFIX = b"yrd.federation.v1/cosignature\x00"
ROOT_BYTES = 32
"""The evidence tree is SHA-256 whatever the signing suite."""
_U64 = struct.Struct(">Q")


@dataclass(frozen=True)
class Head:
    """A tree head of one log: what a checkpoint states."""

    tree_size: int
    root_hash: bytes


def checkpoint_statement(origin: str, tree_size: int, root_hash: bytes, signed_at_ms: int) -> bytes:
    """What the log's node signs."""
    return (
        CHECKPOINT_PREFIX
        + origin.encode("utf-8")
        + b"\x00"
        + _U64.pack(tree_size)
        + root_hash
        + _U64.pack(signed_at_ms)
    )


def statement_of(checkpoint: pb.Checkpoint | pb.Cosignature) -> bytes:
    """The signed statement of a checkpoint, as a checkpoint or a cosignature states it."""
    return checkpoint_statement(
        checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash, checkpoint.signed_at_ms
    )


def cosignature_statement(witness: str, cosigned_at_ms: int, checkpoint: bytes) -> bytes:
    """What a witness signs: its id and time, then the checkpoint's own statement."""
    return (
        COSIGNATURE_PREFIX
        + witness.encode("utf-8")
        + b"\x00"
        + _U64.pack(cosigned_at_ms)
        + checkpoint
    )


def milliseconds(epoch: float) -> int:
    return int(epoch * 1000)


def sign_checkpoint(
    key: SigningKey,
    *,
    origin: str,
    head: Head,
    now: float,
    proofs: Mapping[int, list[bytes]],
) -> pb.Checkpoint:
    """This node's checkpoint of ``head``, with consistency proofs from the sizes given."""
    signed_at_ms = milliseconds(now)
    statement = checkpoint_statement(origin, head.tree_size, head.root_hash, signed_at_ms)
    return pb.Checkpoint(
        origin=origin,
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        signed_at_ms=signed_at_ms,
        key_id=key.key_id,
        signature=key.sign(statement),
        proofs=[
            pb.ConsistencyProof(from_size=size, path=path) for size, path in sorted(proofs.items())
        ],
    )


def cosign(
    key: SigningKey, *, witness: str, checkpoint: pb.Checkpoint, now: float
) -> pb.Cosignature:
    """A witness's cosignature of a checkpoint it checked."""
    cosigned_at_ms = milliseconds(now)
    statement = cosignature_statement(witness, cosigned_at_ms, statement_of(checkpoint))
    return pb.Cosignature(
        witness=witness,
        origin=checkpoint.origin,
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        signed_at_ms=checkpoint.signed_at_ms,
        cosigned_at_ms=cosigned_at_ms,
        key_id=key.key_id,
        signature=key.sign(statement),
    )


def cosignature_verifies(cosignature: pb.Cosignature, keys: Mapping[str, VerifyKey]) -> bool:
    """Whether a cosignature is its witness's key's signature over the checkpoint it names
    (``keys``: every key the manifest lists for the witness)."""
    key = keys.get(cosignature.key_id)
    statement = cosignature_statement(
        cosignature.witness, cosignature.cosigned_at_ms, statement_of(cosignature)
    )
    return key is not None and key.verify(cosignature.signature, statement)


def _refused(text: str, field: str) -> Refusal:
    return Refusal(FaultCode.LOG_INCONSISTENT, text, field=f"body.checkpoint.{field}")


def check_checkpoint(
    checkpoint: pb.Checkpoint,
    *,
    sender: str,
    keys: Mapping[str, VerifyKey],
    cosigned: Head | None,
) -> Head:
    """A witness's checks of a checkpoint from ``sender`` (its node id), whose usable keys
    are ``keys``, against the last head of that log it cosigned; the head to cosign.

    Raises ``Refusal``: ``invalid_payload`` or ``bad_signature`` for a checkpoint that is not
    the sender's, ``log_inconsistent`` for one that does not extend ``cosigned``."""
    if checkpoint.origin != sender:
        raise Refusal(
            FaultCode.INVALID_PAYLOAD,
            f"checkpoint origin {checkpoint.origin!r} is not the sender ({sender})",
            field="body.checkpoint.origin",
        )
    if len(checkpoint.root_hash) != ROOT_BYTES:
        raise Refusal(
            FaultCode.INVALID_PAYLOAD,
            f"checkpoint root_hash must be {ROOT_BYTES} bytes, not {len(checkpoint.root_hash)}",
            field="body.checkpoint.root_hash",
        )
    key = keys.get(checkpoint.key_id)
    if key is None or not key.verify(checkpoint.signature, statement_of(checkpoint)):
        raise Refusal(
            FaultCode.BAD_SIGNATURE,
            f"checkpoint signature does not verify under {checkpoint.key_id or '(no key)'}",
            field="body.checkpoint.signature",
        )
    head = Head(checkpoint.tree_size, checkpoint.root_hash)
    if cosigned is None:
        return head
    if head.tree_size < cosigned.tree_size:
        raise _refused(
            f"the log shrank: {head.tree_size} entries, after a checkpoint of "
            f"{cosigned.tree_size} was cosigned (entries from {head.tree_size + 1} were removed)",
            "tree_size",
        )
    if cosigned.tree_size == 0:
        return head
    if head.tree_size == cosigned.tree_size:
        if head.root_hash != cosigned.root_hash:
            raise _refused(
                f"another root for the {head.tree_size} entries cosigned before: the log was "
                "rewritten",
                "root_hash",
            )
        return head
    proof = next((p for p in checkpoint.proofs if p.from_size == cosigned.tree_size), None)
    if proof is None:
        raise _refused(
            f"no consistency proof from the {cosigned.tree_size} entries cosigned before",
            "proofs",
        )
    if not verify_consistency(
        cosigned.tree_size, head.tree_size, cosigned.root_hash, head.root_hash, list(proof.path)
    ):
        raise _refused(
            f"the tree of {head.tree_size} entries does not extend the {cosigned.tree_size} "
            "cosigned before: the log was rewritten within them",
            "proofs",
        )
    return head

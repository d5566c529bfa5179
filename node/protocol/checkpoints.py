"""Checkpoints of the evidence log and the cosignatures of the peers that witness them.

Rules kept here (sans-I/O):
- A checkpoint is the head of a node's evidence tree (RFC 9162): its node id, tree size,
  root hash and the time it was signed, signed by that node over one statement
  (``checkpoint_statement``); a cosignature is a witness's signature over that very statement,
  with its own node id and time in front (``cosignature_statement``). Both are signed and
  checked with the manifest's keys, like envelopes, so a third party needs nothing else:
  a checkpoint only under a key of the member that is its origin, a cosignature only under
  a key of the member it names as witness, never the origin (``KeysAt``).
- A witness refuses, before it judges anything, a checkpoint bigger than this protocol makes
  (``check_bounds``: ``MAX_PROOFS`` proofs from distinct sizes below the tree's, paths of
  ``MAX_PATH_NODES`` digests, bounded ids and signature).
- A witness cosigns a checkpoint only if it extends the last checkpoint of that log it
  cosigned: the same size and root, or a larger tree with an RFC 9162 consistency proof from
  that size. A smaller tree (entries deleted), another root at the same size (a rewrite, or
  a fork shown to two witnesses) or a larger tree without a valid proof is refused with
  ``log_inconsistent``, naming what diverges.
- Witnesses compare heads (gossip), or a node could show each witness its own branch of the
  log forever (a split view) and each would cosign: every checkpoint interval a node sends
  each peer a ``WitnessedHeads``, the latest checkpoint of every other node's log it
  cosigned, with its cosignature (``check_witnessed_heads``: at most ``MAX_WITNESSED_HEADS``,
  one per origin, neither the sender's log nor the recipient's, no proofs, every signature
  verified before anything is judged or kept). The recipient judges each head against the
  heads of that log it holds (``judge_shown``): one of the same size and root is known;
  the same size and another root is a split view, proven by the two heads its node signed;
  any other size is pending, kept until the log's node proves it consistent.
- The proof comes with the log's next checkpoint to that witness (``check_shown``): the
  witness's cosignature names the pending sizes (``Cosignature.proofs_wanted``); the node
  keeps the cosignature and adds a consistency proof from each of those sizes to its next
  checkpoint. A pending head larger than the checkpoint, of its size with another root, or
  whose proof fails is a split view (``log_inconsistent``); one still unproven after the
  witness asked ``PROOF_ASKS`` times is refused the same way, since a node that will not
  prove its own signed head consistent is hiding one branch. A head of the empty log needs
  no proof. The head that revealed a split view stays pending, so every later checkpoint of
  that log is refused too, as a rewritten log's are.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from node.protocol.envelope import MAX_WIRE_ID_LENGTH
from node.protocol.faults import FaultCode, Refusal
from node.protocol.merkle import verify_consistency
from node.trust.keys import SigningKey, VerifyKey
from node.trust.manifest import KeyEntry
from node.wire import pb

CHECKPOINT_PREFIX = b"yrd.federation.v1/checkpoint\x00"
COSIGNATURE_PREFIX = b"yrd.federation.v1/cosignature\x00"
ROOT_BYTES = 32
"""The evidence tree is SHA-256 whatever the signing suite (an SM3 digest would be 32 bytes
too): every root and every node of a proof path is this long."""
_U64 = struct.Struct(">Q")
MAX_WITNESSED_HEADS = 16
"""Heads in one ``WitnessedHeads``: one per origin, and a federation of four provinces needs
two; more is refused, not trimmed."""
MAX_PROOFS_WANTED = MAX_WITNESSED_HEADS
"""Sizes one cosignature asks proofs from (``proofs_wanted``); a longer list is refused."""
MAX_PROOFS = MAX_PROOFS_WANTED + 2
"""Consistency proofs in one checkpoint: from the size its witness last cosigned, from the
size last sent to it, and from each size the witness asked for (``proofs_wanted``, at most
``MAX_PROOFS_WANTED``); more is refused, not trimmed."""
MAX_PATH_NODES = 64
"""Nodes in one consistency path: RFC 9162 needs at most about 2·log2(size), so 64 covers
every tree of up to 2^32 entries."""
MAX_TREE_SIZE = 2**63 - 1
"""The largest tree size a checkpoint may state: what the store's integer columns hold."""
MAX_SIGNATURE_BYTES = 128
"""An Ed25519 signature is 64 bytes, an SM2 one (DER) at most 72."""
MAX_ID_LENGTH = MAX_WIRE_ID_LENGTH
"""Node ids and key ids in checkpoints and cosignatures, as in envelopes."""
MAX_WITNESSED_BYTES = 32 * 1024
"""A head with its cosignature is some 300 bytes; a bigger message is not gossip."""
PROOF_ASKS = 3
"""Answers naming a pending head (``proofs_wanted``) after which a checkpoint still without a
proof from it is refused: room for answers lost on the way, none for a node that will not."""


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


KeysAt = Callable[[str, float], Mapping[str, VerifyKey] | None]
"""The keys of one member (by node id) usable at a time: None for a node that is no member.
A signature on a checkpoint or a cosignature counts only under its signer's own key."""


def member_keys(members: Mapping[str, Iterable[KeyEntry]]) -> KeysAt:
    """``KeysAt`` over each member's key entries (by node id), each usable in its window and
    while not revoked, as a manifest lists them."""

    def keys_at(node_id: str, when: float) -> Mapping[str, VerifyKey] | None:
        entries = members.get(node_id)
        if entries is None:
            return None
        return {k.key_id: k.verify_key for k in entries if k.usable_at(when)}

    return keys_at


def checkpoint_verifies(checkpoint: pb.Checkpoint, keys_at: KeysAt) -> bool:
    """Whether a checkpoint is signed by a key of the member that is its origin, usable when
    it was signed."""
    key = (keys_at(checkpoint.origin, checkpoint.signed_at_ms / 1000) or {}).get(checkpoint.key_id)
    return key is not None and key.verify(checkpoint.signature, statement_of(checkpoint))


def cosignature_verifies(cosignature: pb.Cosignature, keys_at: KeysAt) -> bool:
    """Whether a cosignature is signed by a key of the member it names as witness, usable
    when it cosigned, over the checkpoint it names; a log's own node is never its witness."""
    if not cosignature.witness or cosignature.witness == cosignature.origin:
        return False
    key = (keys_at(cosignature.witness, cosignature.cosigned_at_ms / 1000) or {}).get(
        cosignature.key_id
    )
    statement = cosignature_statement(
        cosignature.witness, cosignature.cosigned_at_ms, statement_of(cosignature)
    )
    return key is not None and key.verify(cosignature.signature, statement)


def cosigns(
    cosignature: pb.Cosignature, checkpoint: pb.Checkpoint, *, witness: str, keys_at: KeysAt
) -> bool:
    """Whether an answer is ``witness``'s (node id) cosignature of ``checkpoint``: naming that
    witness and that checkpoint's statement, asking for at most ``MAX_PROOFS_WANTED`` proofs,
    signed by the witness's own key usable when it cosigned (a revoked one is not)."""
    return (
        cosignature.witness == witness
        and statement_of(cosignature) == statement_of(checkpoint)
        and len(cosignature.proofs_wanted) <= MAX_PROOFS_WANTED
        and cosignature_verifies(cosignature, keys_at)
    )


def _refused(text: str, field: str) -> Refusal:
    return Refusal(FaultCode.LOG_INCONSISTENT, text, field=f"body.checkpoint.{field}")


def check_bounds(checkpoint: pb.Checkpoint) -> None:
    """Refuse a checkpoint bigger than any this protocol makes, before anything is judged or
    kept: ids and signature, the root, the tree size, and the proofs (at most ``MAX_PROOFS``,
    each from a distinct size below the tree's, its path at most ``MAX_PATH_NODES`` nodes
    of ``ROOT_BYTES``). Raises ``Refusal``."""
    invalid, too_large = FaultCode.INVALID_PAYLOAD, FaultCode.MESSAGE_TOO_LARGE
    size = checkpoint.tree_size
    bounds = [
        (
            len(checkpoint.key_id) > MAX_ID_LENGTH,
            invalid,
            f"key_id of {len(checkpoint.key_id)} characters; at most {MAX_ID_LENGTH}",
            "key_id",
        ),
        (
            len(checkpoint.signature) > MAX_SIGNATURE_BYTES,
            invalid,
            f"signature of {len(checkpoint.signature)} bytes; at most {MAX_SIGNATURE_BYTES}",
            "signature",
        ),
        (
            len(checkpoint.root_hash) != ROOT_BYTES,
            invalid,
            f"checkpoint root_hash must be {ROOT_BYTES} bytes, not {len(checkpoint.root_hash)}",
            "root_hash",
        ),
        (size > MAX_TREE_SIZE, invalid, f"tree_size {size} is above {MAX_TREE_SIZE}", "tree_size"),
        (
            len(checkpoint.proofs) > MAX_PROOFS,
            too_large,
            f"{len(checkpoint.proofs)} consistency proofs; at most {MAX_PROOFS}",
            "proofs",
        ),
    ]
    sizes = [proof.from_size for proof in checkpoint.proofs]
    for index, proof in enumerate(checkpoint.proofs if len(sizes) <= MAX_PROOFS else ()):
        at, path = f"proofs[{index}]", proof.path
        bounds += [
            (
                not 0 < proof.from_size < size or proof.from_size in sizes[:index],
                invalid,
                f"a proof from size {proof.from_size}: each proof is from a distinct size "
                f"from 1 to {size - 1}, below the tree's",
                f"{at}.from_size",
            ),
            (
                len(path) > MAX_PATH_NODES,
                too_large,
                f"a consistency path of {len(path)} nodes; at most {MAX_PATH_NODES}",
                f"{at}.path",
            ),
            (
                any(len(node) != ROOT_BYTES for node in path[:MAX_PATH_NODES]),
                invalid,
                f"every node of a consistency path is {ROOT_BYTES} bytes",
                f"{at}.path",
            ),
        ]
    for broken, code, text, field in bounds:
        if broken:
            raise Refusal(code, text, field=f"body.checkpoint.{field}")


def check_checkpoint(
    checkpoint: pb.Checkpoint,
    *,
    sender: str,
    keys: Mapping[str, VerifyKey],
    cosigned: Head | None,
) -> Head:
    """A witness's checks of a checkpoint from ``sender`` (its node id), whose usable keys
    are ``keys``, against the last head of that log it cosigned; the head to cosign.

    Raises ``Refusal``: ``invalid_payload``, ``message_too_large`` or ``bad_signature`` for a
    checkpoint that is not the sender's or is out of bounds (``check_bounds``),
    ``log_inconsistent`` for one that does not extend ``cosigned``."""
    if checkpoint.origin != sender:
        raise Refusal(
            FaultCode.INVALID_PAYLOAD,
            f"checkpoint origin {checkpoint.origin[:MAX_ID_LENGTH]!r} is not the sender ({sender})",
            field="body.checkpoint.origin",
        )
    check_bounds(checkpoint)
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


# -- witnesses comparing heads (gossip) -------------------------------------------------------


@dataclass(frozen=True)
class WitnessedHead:
    """A head of a third party's log as a peer showed it: both signatures verified."""

    origin: str
    """The log's node id."""
    checkpoint: pb.Checkpoint
    cosignature: pb.Cosignature
    """The sender's, as the witness that cosigned it."""

    @property
    def head(self) -> Head:
        return Head(self.checkpoint.tree_size, self.checkpoint.root_hash)


def _bad_head(code: FaultCode, text: str, field: str) -> Refusal:
    return Refusal(code, text, field=f"body.witnessed_heads.heads{field}")


def check_witnessed_heads(
    heads: pb.WitnessedHeads,
    *,
    sender: str,
    me: str,
    keys_at: KeysAt,
) -> list[WitnessedHead]:
    """The heads a peer (``sender``, node id) showed this node (``me``), each checkpoint
    signed by its origin and cosigned by the sender, each with a key usable when it signed
    (``keys_at(node_id, time)``, None for a node that is no member: a head cosigned before a
    key rotation still verifies, one signed with a revoked key does not). Raises ``Refusal``
    for the whole message at the first head that is not."""
    if heads.ByteSize() > MAX_WITNESSED_BYTES:
        raise _bad_head(
            FaultCode.MESSAGE_TOO_LARGE,
            f"witnessed heads of {heads.ByteSize()} bytes; at most {MAX_WITNESSED_BYTES}",
            "",
        )
    if len(heads.heads) > MAX_WITNESSED_HEADS:
        raise _bad_head(
            FaultCode.MESSAGE_TOO_LARGE,
            f"{len(heads.heads)} witnessed heads; at most {MAX_WITNESSED_HEADS}, one per log",
            "",
        )
    checked: list[WitnessedHead] = []
    for index, shown in enumerate(heads.heads):
        at = f"[{index}]"
        checkpoint, cosignature = shown.checkpoint, shown.cosignature
        origin = checkpoint.origin
        if origin in (sender, me):
            raise _bad_head(
                FaultCode.INVALID_PAYLOAD,
                f"a witnessed head of {'the sender' if origin == sender else 'this node'}'s "
                "own log; gossip carries third parties' heads",
                f"{at}.checkpoint.origin",
            )
        if any(h.origin == origin for h in checked):
            raise _bad_head(
                FaultCode.INVALID_PAYLOAD,
                f"a second head of {origin}'s log; one per log",
                f"{at}.checkpoint.origin",
            )
        if checkpoint.proofs:
            raise _bad_head(
                FaultCode.INVALID_PAYLOAD,
                "a witnessed head carries no consistency proofs",
                f"{at}.checkpoint.proofs",
            )
        if len(checkpoint.root_hash) != ROOT_BYTES:
            raise _bad_head(
                FaultCode.INVALID_PAYLOAD,
                f"root_hash must be {ROOT_BYTES} bytes, not {len(checkpoint.root_hash)}",
                f"{at}.checkpoint.root_hash",
            )
        if keys_at(origin, checkpoint.signed_at_ms / 1000) is None:
            raise _bad_head(
                FaultCode.INVALID_PAYLOAD,
                f"{origin or '(no origin)'} is no member of the federation",
                f"{at}.checkpoint.origin",
            )
        if not checkpoint_verifies(checkpoint, keys_at):
            raise _bad_head(
                FaultCode.BAD_SIGNATURE,
                f"the head of {origin}'s log is not signed by {origin} "
                f"(key {checkpoint.key_id or '(none)'})",
                f"{at}.checkpoint.signature",
            )
        if (
            cosignature.witness != sender
            or statement_of(cosignature) != statement_of(checkpoint)
            or not cosignature_verifies(cosignature, keys_at)
        ):
            raise _bad_head(
                FaultCode.BAD_SIGNATURE,
                f"the head of {origin}'s log is not cosigned by the sender ({sender})",
                f"{at}.cosignature",
            )
        checked.append(WitnessedHead(origin, checkpoint, cosignature))
    return checked


class Standing(enum.Enum):
    """Where a shown head stands against the heads of its log a witness holds."""

    KNOWN = "known"
    """A head of the same size and root is held already."""
    PENDING = "pending"
    """New: the log's node must prove it consistent with its next checkpoint."""


@dataclass(frozen=True)
class SplitView:
    """Two heads of one log, both signed by its node, that cannot both be true."""

    held: Head
    shown: Head
    reason: str


def _root(root: bytes) -> str:
    return root.hex()[:16]


def judge_shown(shown: Head, held: Iterable[Head]) -> Standing | SplitView:
    """A head a peer showed, against every head of that log this witness holds (cosigned
    itself, or shown before): a split view while any of its size has another root (shown
    again, it is refused again, as a rewritten log's checkpoints are), else known or
    pending."""
    same_size = [h for h in held if h.tree_size == shown.tree_size]
    other = next((h for h in same_size if h.root_hash != shown.root_hash), None)
    if other is not None:
        return SplitView(
            other,
            shown,
            f"two heads of {shown.tree_size} entries with different roots "
            f"({_root(other.root_hash)}… held, {_root(shown.root_hash)}… shown)",
        )
    return Standing.KNOWN if same_size else Standing.PENDING


@dataclass(frozen=True)
class ShownCheck:
    """What a checkpoint settles of the heads shown to its witness by other witnesses."""

    proven: tuple[Head, ...]
    """Pending heads the checkpoint is now proven to extend."""
    wanted: tuple[Head, ...]
    """Pending heads without a proof yet: the cosignature asks for proofs from their sizes."""

    @property
    def wanted_sizes(self) -> list[int]:
        return sorted({h.tree_size for h in self.wanted})


def check_shown(
    checkpoint: pb.Checkpoint,
    shown: Sequence[Head],
    *,
    asked: Callable[[Head], int],
    limit: int = PROOF_ASKS,
) -> ShownCheck:
    """A checkpoint (already checked against what the witness cosigned) against the pending
    heads of its log shown by other witnesses; ``asked``: how many answers named a head in
    ``proofs_wanted`` so far. Raises ``Refusal`` (``log_inconsistent``) for a split view."""
    head = Head(checkpoint.tree_size, checkpoint.root_hash)
    proven: list[Head] = []
    wanted: list[Head] = []
    for pending in shown:
        size = pending.tree_size
        if size > head.tree_size:
            raise _refused(
                f"a checkpoint of {head.tree_size} entries, after its node signed a head of "
                f"{size} ({_root(pending.root_hash)}…) that another witness cosigned: the log "
                "shrank or is split",
                "tree_size",
            )
        if size == 0:
            # Every tree extends the empty one (as for a first checkpoint cosigned).
            proven.append(pending)
            continue
        if size == head.tree_size:
            if pending.root_hash != head.root_hash:
                raise _refused(
                    f"another root for {size} entries than the head another witness cosigned "
                    f"({_root(head.root_hash)}… here, {_root(pending.root_hash)}… there): the "
                    "log is split",
                    "root_hash",
                )
            proven.append(pending)
            continue
        proof = next((p for p in checkpoint.proofs if p.from_size == size), None)
        if proof is None:
            if asked(pending) >= limit:
                raise _refused(
                    f"no consistency proof from the head of {size} entries another witness "
                    f"cosigned, asked for {asked(pending)} times",
                    "proofs",
                )
            wanted.append(pending)
            continue
        if not verify_consistency(
            size, head.tree_size, pending.root_hash, head.root_hash, list(proof.path)
        ):
            raise _refused(
                f"the tree of {head.tree_size} entries ({_root(head.root_hash)}…) does not "
                f"extend the head of {size} ({_root(pending.root_hash)}…) another witness "
                "cosigned: the log is split",
                "proofs",
            )
        proven.append(pending)
    return ShownCheck(tuple(proven), tuple(wanted))


# -- a node asking its witnesses for the heads of its own log they hold -----------------------

MAX_HEADS_ANSWERED = 1
"""Heads in the answer to a ``HeadsRequest``: the witness's latest cosigned one of the asker's
log (each cosigned head extends the ones before it, so the latest stands for them); more is
refused, not trimmed."""


def check_heads_request(request: pb.HeadsRequest, *, sender: str) -> None:
    """A witness's check of a ``HeadsRequest`` from ``sender`` (node id): a node asks about
    its own log only (the heads of another's log are that log's witnesses' to compare, by
    gossip). Raises ``Refusal``."""
    if request.origin != sender:
        raise Refusal(
            FaultCode.PAYLOAD_NOT_ALLOWED,
            f"a node asks only for the heads of its own log; {sender} asked about "
            f"{request.origin or '(no origin)'}'s",
            field="body.heads_request.origin",
        )


def check_heads_answer(
    heads: pb.WitnessedHeads,
    *,
    witness: str,
    me: str,
    keys_at: Callable[[str, float], Mapping[str, VerifyKey] | None],
) -> list[WitnessedHead]:
    """The heads of this node's (``me``) log that ``witness`` (node id) answered a
    ``HeadsRequest`` with: at most ``MAX_HEADS_ANSWERED``, each of this node's log, and each
    passing the checks of gossip (``check_witnessed_heads``: no proofs, the checkpoint signed
    by this node and cosigned by the witness, each with a key usable when it signed). Raises
    ``Refusal`` for the whole answer at the first head that is not."""
    if len(heads.heads) > MAX_HEADS_ANSWERED:
        raise _bad_head(
            FaultCode.MESSAGE_TOO_LARGE,
            f"{len(heads.heads)} heads; an answer holds at most {MAX_HEADS_ANSWERED}",
            "",
        )
    for index, shown in enumerate(heads.heads):
        if shown.checkpoint.origin != me:
            raise _bad_head(
                FaultCode.INVALID_PAYLOAD,
                f"a head of {shown.checkpoint.origin or '(no origin)'}'s log; asked for {me}'s",
                f"[{index}].checkpoint.origin",
            )
    # Gossip refuses heads of the recipient's own log, which is what is asked for here (checked
    # above): so no recipient is named, and every other check of gossip applies as it is.
    return check_witnessed_heads(heads, sender=witness, me="", keys_at=keys_at)

"""Checkpoints of evidence logs and their cosignatures, as this node holds them.

Rules kept here:
- One table for both roles (schema v14): the checkpoints of this node's own log, each with
  the witness it was sent to and, once that witness answered, its cosignature; and the
  checkpoints of peers' logs this node cosigned as their witness.
- A checkpoint of our own log is stored before it is sent, so the tree size a witness may
  hold as its latest is always one this node knows, and can prove consistency from, even
  when the witness's answer was lost.
- A witness checks a checkpoint against the latest it cosigned and stores it in one write
  job (``witness``), so two checkpoints of one log can never both pass against the same
  earlier one.
- Heads of a peer's log that other witnesses showed this one (gossip, see
  ``node.protocol.checkpoints``) are rows of that log under the witness that cosigned them
  (``own = 0``, ``witness`` not this node), verified before they are kept. They are pending
  until the log's node proves its next checkpoint to this witness extends them, and then
  dropped (this node's own cosigned chain covers them); a head in a split view stays, as the
  evidence beside the head it contradicts. A newer head from the same witness replaces its
  older pending ones of that log (that witness proved its own chain consistent), so the rows
  stay bounded by members times members.
- A checkpoint this node refused as witness (``log_inconsistent``) is kept too, once its
  signature verified, as the origin's own signed word beside the head it contradicts: a row
  under the witness ``REFUSED``, with no cosignature, at most ``MAX_REFUSED_KEPT`` per log.
  Rows without a cosignature are never cosigned heads nor pending ones.
- Checking the log against what the witnesses cosigned (``divergences``) names the entries
  where a cosigned head and today's tree part: between the largest cosigned size that still
  matches and the smallest that does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from node.protocol.checkpoints import (
    MAX_PROOFS_WANTED,
    Head,
    KeysAt,
    ShownCheck,
    SplitView,
    Standing,
    WitnessedHead,
    check_checkpoint,
    check_shown,
    checkpoint_verifies,
    cosignature_verifies,
    judge_shown,
    statement_of,
)
from node.protocol.merkle import TreeView
from node.store.connection import Connection
from node.trust.keys import VerifyKey
from node.wire import pb


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint of a log and one witness's cosignature of it."""

    origin: str
    witness: str
    """Provinces: whose log, and who cosigned it."""
    tree_size: int
    root_hash: bytes
    checkpoint: pb.Checkpoint
    cosignature: pb.Cosignature
    cosigned_at: float


def _kept(checkpoint: pb.Checkpoint) -> bytes:
    """A checkpoint as kept: its signed head without the consistency proofs it carried
    (checked on arrival, then only bytes a peer chose the size of), nor any field this code
    does not know (protobuf keeps them, and a peer could pad a signed checkpoint with
    megabytes of them: the signatures cover the known fields only)."""
    head = pb.Checkpoint()
    head.CopyFrom(checkpoint)
    del head.proofs[:]
    head.DiscardUnknownFields()
    return head.SerializeToString(deterministic=True)


def _kept_cosignature(cosignature: pb.Cosignature) -> bytes:
    """A cosignature as kept: without fields this code does not know (as ``_kept``)."""
    kept = pb.Cosignature()
    kept.CopyFrom(cosignature)
    kept.DiscardUnknownFields()
    return kept.SerializeToString(deterministic=True)


def record_sent(conn: Connection, *, origin: str, witness: str, checkpoint: pb.Checkpoint) -> None:
    """Keep a checkpoint of our own log about to go to ``witness`` (a size already kept for
    that witness keeps its row, and its cosignature)."""
    conn.execute(
        "INSERT INTO checkpoints (origin, witness, tree_size, root_hash, checkpoint, own) "
        "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING",
        (
            origin,
            witness,
            checkpoint.tree_size,
            checkpoint.root_hash,
            _kept(checkpoint),
        ),
    )


def record_cosigned(
    conn: Connection,
    *,
    origin: str,
    witness: str,
    checkpoint: pb.Checkpoint,
    cosignature: pb.Cosignature,
    cosigned_at: float,
    own: bool,
) -> None:
    """Keep a checkpoint with a witness's cosignature of it (the newer one for a size kept
    before: the same head, cosigned again); ``own``: of this node's own log."""
    conn.execute(
        "INSERT INTO checkpoints "
        "(origin, witness, tree_size, root_hash, checkpoint, cosignature, cosigned_at, own) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin, witness, tree_size) DO UPDATE SET "
        "checkpoint = excluded.checkpoint, cosignature = excluded.cosignature, "
        "cosigned_at = excluded.cosigned_at",
        (
            origin,
            witness,
            checkpoint.tree_size,
            checkpoint.root_hash,
            _kept(checkpoint),
            _kept_cosignature(cosignature),
            cosigned_at,
            int(own),
        ),
    )


def latest_cosigned(conn: Connection, origin: str, witness: str) -> Head | None:
    """The largest head of ``origin``'s log that ``witness`` cosigned."""
    row = conn.execute(
        "SELECT tree_size, root_hash FROM checkpoints WHERE origin = ? AND witness = ? "
        "AND cosignature IS NOT NULL ORDER BY tree_size DESC LIMIT 1",
        (origin, witness),
    ).fetchone()
    return None if row is None else Head(int(row[0]), bytes(row[1]))


def latest_sent(conn: Connection, origin: str, witness: str) -> int | None:
    """The largest tree size of our log kept as sent to ``witness``, answered or not."""
    (size,) = conn.execute(
        "SELECT max(tree_size) FROM checkpoints WHERE origin = ? AND witness = ?",
        (origin, witness),
    ).fetchone()
    return None if size is None else int(size)


def last_cosigned_by_witness(conn: Connection) -> dict[str, tuple[int, float]]:
    """For each witness of this node's own log: the largest size it cosigned, and when it
    last cosigned one."""
    rows = conn.execute(
        "SELECT witness, max(tree_size), max(cosigned_at) FROM checkpoints "
        "WHERE own = 1 AND cosignature IS NOT NULL GROUP BY witness"
    )
    return {str(w): (int(size), float(at)) for w, size, at in rows}


def witness(
    conn: Connection,
    checkpoint: pb.Checkpoint,
    *,
    origin: str,
    me: str,
    sender_node_id: str,
    keys: Mapping[str, VerifyKey],
    cosign: Callable[[pb.Checkpoint], pb.Cosignature],
    now: float,
    asked: Callable[[Head], int] = lambda _: 0,
) -> tuple[pb.Cosignature, ShownCheck]:
    """As ``me``, the witness: check ``origin``'s checkpoint against the latest of its log
    this node cosigned and the heads of it other witnesses showed (``asked``: how often an
    answer asked for a proof from one), then cosign and keep it, asking for the proofs still
    missing, and drop the shown heads it proves (inside a write job). Raises ``Refusal``."""
    check_checkpoint(
        checkpoint,
        sender=sender_node_id,
        keys=keys,
        cosigned=latest_cosigned(conn, origin, me),
    )
    pending = [head for head, _ in shown_pending(conn, origin, me)]
    settled = check_shown(checkpoint, pending, asked=asked)
    cosignature = cosign(checkpoint)
    # Pending heads are bounded by members times members; the cap keeps the answer bounded
    # whatever the table holds (the rest are asked for in a later round).
    cosignature.proofs_wanted.extend(settled.wanted_sizes[:MAX_PROOFS_WANTED])
    record_cosigned(
        conn,
        origin=origin,
        witness=me,
        checkpoint=checkpoint,
        cosignature=cosignature,
        cosigned_at=now,
        own=False,
    )
    for head in settled.proven:
        conn.execute(
            "DELETE FROM checkpoints WHERE origin = ? AND witness != ? AND own = 0 "
            "AND cosignature IS NOT NULL AND tree_size = ? AND root_hash = ?",
            (origin, me, head.tree_size, head.root_hash),
        )
    return cosignature, settled


REFUSED = "(refused)"
"""The ``witness`` of a row that keeps a checkpoint this node refused as witness (no
cosignature): no province is spelled so."""
MAX_REFUSED_KEPT = 16
"""Refused checkpoints kept per log: the first ones prove the equivocation, and a hostile
peer sending a refused checkpoint every second cannot fill the disk."""


def keep_refused(
    conn: Connection,
    checkpoint: pb.Checkpoint,
    *,
    origin: str,
    sender_node_id: str,
    keys: Mapping[str, VerifyKey],
    now: float,
) -> bool:
    """Keep a checkpoint of ``origin``'s log (a province) this node refused as its witness
    (``log_inconsistent``: it does not extend what this node cosigned), as the evidence
    beside the head it contradicts: signed by its sender (``keys``, usable now), without its
    proofs, at most ``MAX_REFUSED_KEPT`` per log, one per size (inside a write job of its
    own, since the refusal rolled the witness's back). Whether it was kept."""
    key = keys.get(checkpoint.key_id)
    if (
        checkpoint.origin != sender_node_id
        or key is None
        or not key.verify(checkpoint.signature, statement_of(checkpoint))
    ):
        return False
    (held,) = conn.execute(
        "SELECT count(*) FROM checkpoints WHERE origin = ? AND witness = ?", (origin, REFUSED)
    ).fetchone()
    if int(held) >= MAX_REFUSED_KEPT:
        return False
    kept = conn.execute(
        "INSERT INTO checkpoints (origin, witness, tree_size, root_hash, checkpoint, "
        "cosigned_at, own) VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
        (origin, REFUSED, checkpoint.tree_size, checkpoint.root_hash, _kept(checkpoint), now),
    )
    return bool(kept.rowcount)


def refused(conn: Connection, origin: str) -> list[pb.Checkpoint]:
    """The checkpoints of ``origin``'s log this node refused as witness and kept, smallest
    tree first."""
    rows = conn.execute(
        "SELECT checkpoint FROM checkpoints WHERE origin = ? AND witness = ? ORDER BY tree_size",
        (origin, REFUSED),
    )
    return [pb.Checkpoint.FromString(bytes(blob)) for (blob,) in rows]


def shown_pending(conn: Connection, origin: str, me: str) -> list[tuple[Head, str]]:
    """The heads of ``origin``'s log other witnesses showed ``me`` and its node has not yet
    proven consistent, with the witness that showed each, smallest first."""
    rows = conn.execute(
        "SELECT tree_size, root_hash, witness FROM checkpoints WHERE origin = ? "
        "AND witness != ? AND own = 0 AND cosignature IS NOT NULL ORDER BY tree_size, witness",
        (origin, me),
    )
    return [(Head(int(size), bytes(root)), str(w)) for size, root, w in rows]


@dataclass(frozen=True)
class Split:
    """A split view a shown head revealed: the log (province), who showed it, both heads."""

    origin: str
    shown_by: str
    view: SplitView


def take_shown(
    conn: Connection,
    shown: list[WitnessedHead],
    *,
    provinces: Mapping[str, str],
    sender: str,
) -> list[Split]:
    """Judge and keep the heads ``sender`` (a province) showed this node, all verified,
    against every head of their logs held here (inside a write job); the split views found.
    ``provinces``: each origin's province by node id."""
    splits: list[Split] = []
    for witnessed in shown:
        origin = provinces[witnessed.origin]
        rows = conn.execute(
            "SELECT tree_size, root_hash FROM checkpoints WHERE origin = ? AND own = 0 "
            "AND tree_size = ?",
            (origin, witnessed.checkpoint.tree_size),
        )
        verdict = judge_shown(witnessed.head, [Head(int(n), bytes(r)) for n, r in rows])
        if verdict is Standing.KNOWN:
            continue
        if isinstance(verdict, SplitView):
            splits.append(Split(origin, sender, verdict))
        else:
            # Older pending heads from this witness are implied by this one, unless one is
            # half of a split view (evidence is never dropped).
            conn.execute(
                "DELETE FROM checkpoints WHERE origin = ? AND witness = ? AND own = 0 "
                "AND tree_size < ? AND NOT EXISTS (SELECT 1 FROM checkpoints AS other "
                "WHERE other.origin = checkpoints.origin AND other.own = 0 "
                "AND other.tree_size = checkpoints.tree_size "
                "AND other.root_hash != checkpoints.root_hash)",
                (origin, sender, witnessed.checkpoint.tree_size),
            )
        conn.execute(
            "INSERT INTO checkpoints "
            "(origin, witness, tree_size, root_hash, checkpoint, cosignature, cosigned_at, own) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
            (
                origin,
                sender,
                witnessed.checkpoint.tree_size,
                witnessed.checkpoint.root_hash,
                _kept(witnessed.checkpoint),
                _kept_cosignature(witnessed.cosignature),
                witnessed.cosignature.cosigned_at_ms / 1000,
            ),
        )
    return splits


def proofs_wanted(conn: Connection, origin: str, witness: str) -> list[int]:
    """The sizes ``witness`` asked, in its latest cosignature of ``origin``'s log, for
    consistency proofs from."""
    row = conn.execute(
        "SELECT cosignature FROM checkpoints WHERE origin = ? AND witness = ? "
        "AND cosignature IS NOT NULL ORDER BY cosigned_at DESC, tree_size DESC LIMIT 1",
        (origin, witness),
    ).fetchone()
    if row is None:
        return []
    try:
        return [int(size) for size in pb.Cosignature.FromString(bytes(row[0])).proofs_wanted]
    except DecodeError:
        return []


def latest_witnessed(conn: Connection, origin: str, witness: str) -> Cosigned | None:
    """The largest checkpoint of ``origin``'s log that ``witness`` cosigned, whole."""
    rows = conn.execute(
        f"SELECT {_HELD} FROM checkpoints WHERE origin = ? AND witness = ? "  # noqa: S608
        "AND cosignature IS NOT NULL ORDER BY tree_size DESC LIMIT 1",
        (origin, witness),
    )
    return next(_parsed(rows), None)


_HELD = "origin, witness, tree_size, root_hash, checkpoint, cosignature, cosigned_at"


def _parsed(rows: Iterable[Any]) -> Iterator[Cosigned]:
    for row_origin, row_witness, size, root, checkpoint, cosignature, at in rows:
        try:
            yield Cosigned(
                str(row_origin),
                str(row_witness),
                int(size),
                bytes(root),
                pb.Checkpoint.FromString(bytes(checkpoint)),
                pb.Cosignature.FromString(bytes(cosignature)),
                float(at),
            )
        except (DecodeError, TypeError, ValueError):
            continue


def cosigned(
    conn: Connection,
    *,
    origin: str | None = None,
    witness: str | None = None,
    own: bool | None = None,
) -> list[Cosigned]:
    """The cosigned checkpoints held, of one log, by one witness, or of this node's own log
    (``own``), smallest tree first; rows that do not parse are left out."""
    rows = conn.execute(
        f"SELECT {_HELD} FROM checkpoints WHERE cosignature IS NOT NULL "  # noqa: S608
        "AND (? IS NULL OR origin = ?) AND (? IS NULL OR witness = ?) "
        "AND (? IS NULL OR own = ?) ORDER BY tree_size, witness",
        # own as 0/1 (the column's type on both backends), None for either.
        (origin, origin, witness, witness, *[None if own is None else int(own)] * 2),
    )
    return list(_parsed(rows))


@dataclass(frozen=True)
class Divergence:
    first_seq: int
    """The first entry the witnesses' heads and today's tree may disagree on."""
    reason: str
    last_seq: int | None = None
    """The last entry the first difference may lie at: the end of the cosigned head that
    does not match (the entry after the log's end when entries were removed); None when
    the checkpoint itself does not verify, which bounds nothing."""


def signature_problem(held: Cosigned, keys_at: KeysAt) -> str:
    """Why a held cosigned checkpoint is not what it claims ('' when it is): the
    checkpoint's signature by a key of its origin, the cosignature by a key of the member it
    names as witness (another member than the origin), and both naming the head the row
    holds."""
    checkpoint, cosignature = held.checkpoint, held.cosignature
    if not checkpoint_verifies(checkpoint, keys_at):
        return (
            f"the checkpoint of {held.tree_size} entries is not signed by its log's node "
            f"({checkpoint.origin or '(no origin)'}, key {checkpoint.key_id or '(none)'})"
        )
    if statement_of(cosignature) != statement_of(checkpoint) or (
        checkpoint.tree_size,
        checkpoint.root_hash,
    ) != (held.tree_size, held.root_hash):
        return f"the cosignature of {held.witness} names another checkpoint than the one held"
    if not cosignature_verifies(cosignature, keys_at):
        return (
            f"the cosignature of {held.witness} is not signed by a key of its witness "
            f"{cosignature.witness or '(none)'}, another member than the log's node "
            f"(key {cosignature.key_id or '(none)'})"
        )
    return ""


def divergences(
    tree: TreeView, held: Iterable[Cosigned], keys_at: KeysAt
) -> list[tuple[Cosigned, Divergence | None]]:
    """Each cosigned checkpoint against ``tree`` (recomputed from the entries): None where
    it verifies and its head is a prefix of the tree, else where they part. Only heads whose
    signatures verify bound where the log parts: a badly signed row bounds nothing."""
    checked = sorted(held, key=lambda h: h.tree_size)
    problems = {id(h): signature_problem(h, keys_at) for h in checked}
    matching = [
        h.tree_size
        for h in checked
        if not problems[id(h)]
        and h.tree_size <= tree.size
        and tree.root(h.tree_size) == h.root_hash
    ]
    results: list[tuple[Cosigned, Divergence | None]] = []
    for h in checked:
        problem = problems[id(h)]
        below = max((size for size in matching if size < h.tree_size), default=0)
        if problem:
            results.append((h, Divergence(below + 1, problem)))
        elif h.tree_size > tree.size:
            results.append(
                (
                    h,
                    Divergence(
                        below + 1,
                        f"{h.witness} cosigned {h.tree_size} entries; the log holds "
                        f"{tree.size}: entries were removed at or after entry {below + 1}",
                        min(h.tree_size, tree.size + 1),
                    ),
                )
            )
        elif h.tree_size not in matching:
            span = (
                f"entry {h.tree_size}"
                if below + 1 == h.tree_size
                else f"entries {below + 1} to {h.tree_size}"
            )
            results.append(
                (
                    h,
                    Divergence(
                        below + 1,
                        f"the log's first {h.tree_size} entries are not the ones {h.witness} "
                        f"cosigned: an entry in {span} was changed, removed or added",
                        h.tree_size,
                    ),
                )
            )
        else:
            results.append((h, None))
    return results

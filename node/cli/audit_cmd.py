"""``yrd audit``: verify the evidence log (``verify``), show one message's evidence
(``evidence``, the JSON bundle of DESIGN §5 that anyone can check with the manifest), and
remove message bodies past their retention (``purge``) without breaking any proof."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from node.certificates.model import CHINA_STANDARD_TIME
from node.cli.folder_arg import add_folder
from node.cli.output import (
    EXIT_NOT_CHECKED,
    EXIT_REFUSED,
    EXIT_VERIFIED,
    VERIFY_EXIT_CODES,
    emit_json,
    fail,
    zoned_time,
)
from node.mesh.folder import NotAMeshFolder, mesh_configs
from node.runtime.config import ConfigError, NodeConfig, load_config
from node.runtime.witnesses import WitnessAnswer, ask_witnesses, own_manifest
from node.store import leases
from node.store.audit import AuditReport, Purged, purge, read_only, verify_store
from node.store.checkpoints import Cosigned, cosigned
from node.store.connection import STORE_HELP, Connection, PostgresUrl, StoreLocation, store_location
from node.store.database import Database, StoreError
from node.store.evidence import EvidenceError, bundle
from node.store.lock import StoreInUse, StoreLock
from node.trust.keys import KeyFileError, VerifyKey
from node.trust.manifest import ManifestError, format_time
from node.trust.tls import TlsMaterialError


def register(commands: Any) -> None:
    group = commands.add_parser("audit", help="the evidence log")
    sub = group.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser(
        "verify",
        help="recompute the hash chain, every signature, and the checkpoints peers cosigned",
        description=(
            "Recompute the evidence log's hash chain and tree, check every signature in it, "
            "and check every cosigned checkpoint of it the store holds against the tree. With "
            "--config (the node's node.toml; the store is its store), also ask every peer, "
            "as this node over mutual TLS, for the checkpoints of this log it cosigned; a "
            "peer that cannot be reached is named, and the rest are checked. With --mesh "
            "DIR, also the checkpoints of this log that each peer of the mesh holds, read "
            "from the peers' store files. With either, every manifest the log records must "
            "carry the signature of a governance key the node's configuration names "
            "(without, the manifests are trusted as far as the chain vouches for them). "
            "Read-only: safe while the node and its peers run."
        ),
        epilog=VERIFY_EXIT_CODES
        + "\n\nA peer that cannot be reached is named, not a failure. A log no witness "
        "cosigned\nany checkpoint of (a node just started) is said to be the node's word "
        "only, with 0.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    log = verify.add_mutually_exclusive_group(required=True)
    log.add_argument("--store", type=store_location, help=STORE_HELP)
    log.add_argument(
        "--config",
        type=Path,
        help="the node's node.toml: verify its store and ask its peers, as this node",
    )
    add_folder(
        verify,
        help="a mesh folder whose peers' cosigned checkpoints to check too",
        required=False,
        dest="mesh",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(run=run_verify)
    evidence = sub.add_parser(
        "evidence",
        help="print one message's evidence as JSON",
        description=(
            "Print the evidence of one message as JSON: its bytes and signature (with the "
            "batch proof when it travelled in a signed batch), and the signed reply that "
            "settled it, each with the signer's public key from the manifest. Anyone can "
            "check it with the manifest alone."
        ),
        epilog=(
            "exit codes:\n  0  printed\n  1  the log holds no usable evidence of the message\n"
            "  2  nothing was read (a wrong command line, a missing or unreadable store)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evidence.add_argument("--store", type=store_location, required=True, help=STORE_HELP)
    evidence.add_argument("--message-id", required=True, help="the message's id")
    evidence.set_defaults(run=run_evidence)
    purge = sub.add_parser(
        "purge",
        help="remove message bodies past their retention (the node must be stopped)",
        description=(
            "Remove the bodies (personal data) of the envelope and reply entries recorded "
            "before DATE. Their hashes and their leaves in the evidence tree stay, so the tree, "
            "every checkpoint and every other entry's proof still verify; the purge is itself "
            "recorded in the log. Manifest entries are kept whole. The node must be stopped: "
            "the store has one writer."
        ),
        epilog="exit codes:\n  0  purged (or nothing to purge)\n  2  nothing was changed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    purge.add_argument("--store", type=store_location, required=True, help=STORE_HELP)
    purge.add_argument(
        "--before",
        type=retention_boundary,
        required=True,
        metavar="TIME",
        help=(
            "a date, meaning midnight at the start of that day in Asia/Shanghai "
            "(2026-06-01 is 2026-06-01T00:00:00+08:00), or an RFC 3339 time with a zone, "
            "e.g. 2026-06-01T12:00:00Z"
        ),
    )
    purge.add_argument("--json", action="store_true", help="machine-readable output")
    purge.set_defaults(run=run_purge)


def retention_boundary(text: str) -> float:
    """``--before``: a plain date is the midnight that starts it in Asia/Shanghai (the
    federation's one zone; no daylight saving since 1991, so +08:00), else a zoned time."""
    if len(text) == len("2026-06-01"):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            return datetime.combine(day, datetime.min.time(), CHINA_STANDARD_TIME).timestamp()
    return zoned_time(text).timestamp()


def run_purge(args: argparse.Namespace) -> int:
    if isinstance(args.store, Path) and not args.store.is_file():
        return fail(f"store file {args.store} does not exist", EXIT_NOT_CHECKED)
    if args.before > time.time():
        return fail("--before is in the future: a purge only reaches into the past")
    lock = StoreLock(args.store)
    try:
        lock.acquire()
    except StoreInUse as busy:
        return fail(
            f"the store {args.store} is open by a running node (pid {busy.holder}); stop the "
            "node first. Nothing was purged.",
            EXIT_NOT_CHECKED,
        )
    try:
        done = asyncio.run(_purge(args.store, args.before))
    except StoreError as exc:
        return fail(f"{exc}. Nothing was purged.", EXIT_NOT_CHECKED)
    finally:
        lock.release()
    if args.json:
        emit_json(
            {
                "purged": done.entries,
                "purge_entry": done.record.seq if done.record else None,
                "before": format_time(args.before),
            }
        )
    elif done.record is None:
        sys.stdout.write(f"nothing to purge: no message entry before {format_time(args.before)}\n")
    else:
        sys.stdout.write(
            f"purged the bodies of {done.entries} entries recorded before "
            f"{format_time(args.before)}; recorded as entry {done.record.seq}. "
            "yrd audit verify still checks the rest.\n"
        )
    return EXIT_VERIFIED


async def _purge(store: StoreLocation, before: float) -> Purged:
    db = await Database.open(store)

    def guarded(conn: Connection) -> Purged:
        now = time.time()
        if isinstance(store, PostgresUrl):
            # A second guard beside the store lock, which a replica holds only on a live
            # session: a running replica renews its leases, so one not yet lapsed says a
            # replica may still run. Read under the write lock, with the purge.
            held = [lease for lease in leases.all_leases(conn) if now < lease.expires_at]
            if held:
                raise StoreInUse(
                    f"the store {store} has leases held by a running replica ("
                    + ", ".join(sorted({lease.owner for lease in held}))
                    + "); stop every replica of the node first, or wait until their leases "
                    "lapse",
                    "unknown",
                )
        return purge(conn, before=before, now=now)

    try:
        return await db.write(guarded)
    finally:
        await db.close()


def run_evidence(args: argparse.Namespace) -> int:
    try:
        with read_only(args.store) as conn:
            shown = bundle(conn, args.message_id)
    except StoreError as exc:
        return fail(str(exc), EXIT_NOT_CHECKED)
    except EvidenceError as exc:
        return fail(str(exc), EXIT_REFUSED)
    emit_json(shown)
    return EXIT_VERIFIED


def _same_store(a: StoreLocation, b: StoreLocation) -> bool:
    if isinstance(a, Path) and isinstance(b, Path):
        return a.resolve() == b.resolve()
    return a == b


def _peers_cosigned(
    mesh: Path, store: StoreLocation
) -> tuple[list[Cosigned], list[str], tuple[VerifyKey, ...]]:
    """The cosigned checkpoints of ``store``'s log that the mesh's other nodes hold: each
    one's own cosignatures, and those other witnesses showed it (so a witness whose store is
    gone still counts through the heads it gossiped), each once; those nodes; and the
    governance keys the store's node trusts, so every manifest the log records must carry
    their signature (else an insider could record a manifest listing a key of its own for a
    witness)."""
    configs = mesh_configs(mesh)
    mine = [c for c in configs if _same_store(c.paths.store, store)]
    if not mine:
        raise NotAMeshFolder(f"the store {store} is no node's store in the mesh {mesh}")
    held: dict[tuple[str, int, bytes], Cosigned] = {}
    peers = [c.province for c in configs if c.province != mine[0].province]
    for config in configs:
        theirs = config.paths.store
        if _same_store(theirs, store) or (isinstance(theirs, Path) and not theirs.is_file()):
            continue
        with read_only(theirs) as conn:
            for head in cosigned(conn, origin=mine[0].province):
                held.setdefault((head.witness, head.tree_size, head.root_hash), head)
    return sorted(held.values(), key=_by_size), peers, mine[0].governance_keys


@dataclass(frozen=True)
class _Asked:
    """What verify asked of the peers: their answers (with ``--config``), and who the peers
    are (from ``--config`` or ``--mesh``; None when neither names them)."""

    answers: list[WitnessAnswer]
    peers: list[str] | None


def _ask_peers(config: NodeConfig) -> tuple[list[WitnessAnswer], list[str]]:
    manifest = own_manifest(config)
    peers = [m.province for m in manifest.members if m.node_id != config.node_id]
    return asyncio.run(ask_witnesses(config, manifest)), peers


def run_verify(args: argparse.Namespace) -> int:
    config: NodeConfig | None = None
    if args.config is not None:
        try:
            config = load_config(args.config, os.environ)
        except ConfigError as exc:
            return fail(str(exc), EXIT_NOT_CHECKED)
    store = args.store if config is None else config.paths.store
    if isinstance(store, Path) and not store.exists():
        return fail(f"store file {store} does not exist", EXIT_NOT_CHECKED)
    try:
        held: dict[tuple[str, int, bytes], Cosigned] = {}
        asked = _Asked([], None)
        governance: tuple[VerifyKey, ...] | None = None
        if args.mesh is not None:
            mesh_heads, peers, governance = _peers_cosigned(args.mesh, store)
            asked = _Asked([], peers)
            held.update({(h.witness, h.tree_size, h.root_hash): h for h in mesh_heads})
        if config is not None:
            governance = config.governance_keys
            answers, peers = _ask_peers(config)
            asked = _Asked(answers, peers)
            for answer in answers:
                held.update({(h.witness, h.tree_size, h.root_hash): h for h in answer.heads})
        report = verify_store(
            store, governance_keys=governance, witnessed=sorted(held.values(), key=_by_size)
        )
    except (
        StoreError,
        NotAMeshFolder,
        ManifestError,
        KeyFileError,
        TlsMaterialError,
        OSError,
    ) as exc:
        return fail(str(exc), EXIT_NOT_CHECKED)
    # Whether a cosigned checkpoint vouches for the log; None when the chain broke before
    # any was checked (a broken chain says nothing of its witnesses).
    witnessed = True if report.checkpoints else (False if report.ok else None)
    unwitnessed = bool(asked.peers) and witnessed is False
    if args.json:
        emit_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "witnesses": list(report.witnesses),
                "checkpoints": report.checkpoints,
                "last_bad_seq": report.last_bad_seq,
                "witnessed": witnessed,
                "peers_asked": [
                    {
                        "province": a.province,
                        "answered": not a.problem,
                        "reached": a.reached,
                        "checkpoints": len(a.heads),
                        "problem": a.problem or None,
                    }
                    for a in asked.answers
                ],
            }
        )
    elif report.ok:
        sys.stdout.write(
            f"evidence log intact: {report.entries} entries, chain and signatures verified; "
            f"{_witnessed(report)}\n"
        )
    elif report.last_bad_seq is not None:
        sys.stdout.write(divergence_headline(report) + "\n")
    else:
        sys.stdout.write(
            f"evidence log BROKEN at entry {report.first_bad_seq}: {report.reason} "
            f"({report.entries} entries checked before it; {_witnessed(report)})\n"
        )
    if not args.json:
        sys.stdout.write(_asked_lines(asked.answers))
        if unwitnessed:
            sys.stdout.write(
                f"this node has peers ({', '.join(asked.peers or [])}), but no witness has "
                "cosigned any checkpoint of it: the log is this node's word only\n"
            )
    return EXIT_VERIFIED if report.ok else EXIT_REFUSED


def _by_size(head: Cosigned) -> tuple[int, str]:
    return head.tree_size, head.witness


def _asked_lines(answers: list[WitnessAnswer]) -> str:
    """One line per peer asked: what it answered, or why it did not."""
    lines = []
    for a in answers:
        if a.problem:
            said = a.problem
        elif a.heads:
            said = f"answered: its latest cosigned checkpoint, of {a.heads[-1].tree_size} entries"
        else:
            said = "answered: it has cosigned no checkpoint of this log"
        lines.append(f"  peer {a.province}: {said}\n")
    return "".join(lines)


def divergence_headline(report: AuditReport) -> str:
    """The headline when the log verifies alone but not against its witnesses: the range the
    first difference lies in, as tightly as the cosigned checkpoints bound it."""
    first, last = report.first_bad_seq, report.last_bad_seq
    span = f"entry {first}" if first == last else f"entries {first} to {last}"
    matching = (
        f"entries 1 to {first - 1} match a cosigned checkpoint"
        if first and first > 1
        else "no cosigned checkpoint matches any part of it"
    )
    exactly = (
        ""
        if first == last
        else f"; which entry of {first} to {last} differs first cannot be told without the "
        "original entries"
    )
    return (
        f"evidence log BROKEN in {span}: {report.reason}. Its {report.entries} entries link "
        f"and verify on their own; {matching}{exactly} ({_witnessed(report)})"
    )


def _witnessed(report: AuditReport) -> str:
    if not report.witnesses:
        return "no cosigned checkpoint to check"
    return (
        f"{report.checkpoints} cosigned checkpoints checked, witnesses: "
        f"{', '.join(report.witnesses)}"
    )

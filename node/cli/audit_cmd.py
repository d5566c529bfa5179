"""``yrd audit``: verify the evidence log (``verify``) and show one message's evidence
(``evidence``, the JSON bundle of DESIGN §5 that anyone can check with the manifest)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from node.cli.output import (
    EXIT_NOT_CHECKED,
    EXIT_REFUSED,
    EXIT_VERIFIED,
    VERIFY_EXIT_CODES,
    emit_json,
    fail,
)
from node.store.audit import read_only, verify_store
from node.store.database import StoreError
from node.store.evidence import EvidenceError, bundle


def register(commands: Any) -> None:
    group = commands.add_parser("audit", help="the evidence log")
    sub = group.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser(
        "verify",
        help="recompute the hash chain and every signature",
        description="Recompute the evidence log's hash chain and check every signature in it.",
        epilog=VERIFY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("--store", type=Path, required=True, help="the node's store file")
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
    evidence.add_argument("--store", type=Path, required=True, help="the node's store file")
    evidence.add_argument("--message-id", required=True, help="the message's id")
    evidence.set_defaults(run=run_evidence)


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


def run_verify(args: argparse.Namespace) -> int:
    if not args.store.exists():
        return fail(f"store file {args.store} does not exist", EXIT_NOT_CHECKED)
    try:
        report = verify_store(args.store)
    except StoreError as exc:
        return fail(str(exc), EXIT_NOT_CHECKED)
    if args.json:
        emit_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
            }
        )
    elif report.ok:
        sys.stdout.write(
            f"evidence log intact: {report.entries} entries, chain and signatures verified\n"
        )
    else:
        sys.stdout.write(
            f"evidence log BROKEN at entry {report.first_bad_seq}: {report.reason} "
            f"({report.entries} entries checked before it)\n"
        )
    return EXIT_VERIFIED if report.ok else EXIT_REFUSED

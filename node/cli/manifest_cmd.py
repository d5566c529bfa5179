"""``yrd manifest show|sign|rotate-key|revoke-key``: the governance side of trust.

After publishing a new manifest, send SIGHUP to every node (``yrd mesh up`` does it for its
own nodes with ``yrd mesh reload``) so that they load it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.output import emit_json, fail, table
from node.runtime.config import ConfigError
from node.trust import layout
from node.trust.keys import KeyFileError, load_signing_key
from node.trust.manifest import (
    Manifest,
    ManifestError,
    format_time,
    parse_manifest_body,
    sign_manifest,
    verify_manifest,
)


def register(commands: Any) -> None:
    group = commands.add_parser("manifest", help="show, sign and change the federation manifest")
    sub = group.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")

    show = sub.add_parser("show", help="show a manifest and check its signature")
    show.add_argument("--dir", type=Path, required=True, help="mesh folder (from yrd mesh init)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=run_show)

    sign = sub.add_parser("sign", help="sign a manifest draft (the JSON of its body)")
    sign.add_argument("--governance-key", type=Path, required=True)
    sign.add_argument("--in", dest="draft", type=Path, required=True)
    sign.add_argument("--out", type=Path, required=True)
    sign.set_defaults(run=run_sign)

    rotate = sub.add_parser("rotate-key", help="give a province a new signing key, with overlap")
    rotate.add_argument("--dir", type=Path, required=True)
    rotate.add_argument("--province", required=True)
    rotate.add_argument("--overlap-days", type=float, default=7.0)
    rotate.set_defaults(run=run_rotate)

    revoke = sub.add_parser("revoke-key", help="revoke a signing key now")
    revoke.add_argument("--dir", type=Path, required=True)
    revoke.add_argument("--province", required=True)
    revoke.add_argument("--key-id", required=True)
    revoke.set_defaults(run=run_revoke)


def describe(manifest: Manifest, now: float) -> dict[str, Any]:
    return {
        "federation": manifest.federation,
        "version": manifest.version,
        "issued_at": format_time(manifest.issued_at),
        "expires_at": format_time(manifest.expires_at),
        "expired": manifest.expired_at(now),
        "members": [m.to_json() for m in manifest.members],
    }


def run_show(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        manifest = layout.read_manifest(args.dir)
    except (ManifestError, OSError) as exc:
        return fail(f"manifest in {args.dir} cannot be trusted: {exc}")
    if args.json:
        emit_json(describe(manifest, now))
        return 0
    sys.stdout.write(
        f"federation {manifest.federation}, version {manifest.version}, signature verified\n"
        f"issued {format_time(manifest.issued_at)}, expires {format_time(manifest.expires_at)}\n\n"
    )
    rows = []
    for m in manifest.members:
        for k in m.keys:
            state = "revoked" if k.revoked else "current" if k.usable_at(now) else "not current"
            rows.append(
                [
                    m.province,
                    m.code,
                    m.node_id,
                    m.endpoint,
                    k.key_id,
                    format_time(k.not_after),
                    state,
                ]
            )
    sys.stdout.write(
        table(["province", "code", "node", "endpoint", "signing key", "valid until", "state"], rows)
    )
    return 0


def run_sign(args: argparse.Namespace) -> int:
    try:
        key = load_signing_key(args.governance_key)
        body = json.loads(args.draft.read_text(encoding="utf-8"))
        manifest = parse_manifest_body(body)
        signed = sign_manifest(manifest, key)
        verify_manifest(signed, [key.verify_key], now=time.time())
    except (KeyFileError, ManifestError, OSError, ValueError) as exc:
        return fail(f"cannot sign {args.draft}: {exc}")
    try:
        args.out.write_bytes(signed)
    except OSError as exc:
        return fail(f"cannot write {args.out}: {exc.strerror or exc}")
    sys.stdout.write(f"signed manifest version {manifest.version} written to {args.out}\n")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    try:
        key_id = layout.rotate_signing_key(
            args.dir, args.province, now=time.time(), overlap_days=args.overlap_days
        )
        manifest = layout.read_manifest(args.dir)
    except (ConfigError, KeyFileError, ManifestError, OSError, ValueError) as exc:
        return fail(str(exc))
    sys.stdout.write(
        f"{args.province} signs with {key_id} from now on; the old key stays valid for "
        f"{args.overlap_days:g} days. Manifest version {manifest.version} published: "
        "send SIGHUP to every node to load it.\n"
    )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    try:
        manifest = layout.revoke_signing_key(args.dir, args.province, args.key_id, now=time.time())
    except (KeyFileError, ManifestError, OSError, ValueError) as exc:
        return fail(str(exc))
    sys.stdout.write(
        f"key {args.key_id} of {args.province} revoked in manifest version {manifest.version}: "
        "send SIGHUP to every node to load it.\n"
    )
    return 0

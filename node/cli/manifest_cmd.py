"""``yrd manifest show|sign|rotate-key|revoke-key``: the governance side of trust.

After publishing a new manifest, send SIGHUP to every node (``yrd mesh up`` does it for its
own nodes with ``yrd mesh reload``) so that they load it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from monitoring.status import days_left
from node.cli.folder_arg import add_folder
from node.cli.output import emit_json, fail, table
from node.cli.suite_arg import KNOWN, suite
from node.mesh import layout
from node.mesh.access import NoToken, tool_token
from node.mesh.folder import NotAMeshFolder, check_mesh_folder, mesh_configs
from node.mesh.layout import DAY, SigningKeyNow
from node.mesh.node_api import NodeRefused, NodeUnreachable, node_api
from node.mesh.record import read_record
from node.runtime.config import ConfigError
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
    add_folder(show, help="mesh folder (from yrd mesh init)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=run_show)

    sign = sub.add_parser(
        "sign",
        help="sign a manifest draft (the JSON of its body)",
        description='Sign a manifest body: the "manifest" object of a manifest.json, edited '
        "(raise its version), as it is: issued_at and expires_at are the draft's.",
    )
    sign.add_argument("--governance-key", type=Path, required=True)
    sign.add_argument("--in", dest="draft", type=Path, required=True)
    sign.add_argument("--out", type=Path, required=True)
    sign.set_defaults(run=run_sign)

    rotate = sub.add_parser("rotate-key", help="give a province a new signing key, with overlap")
    add_folder(rotate)
    rotate.add_argument("--province", required=True)
    rotate.add_argument("--overlap-days", type=float, default=7.0)
    rotate.add_argument(
        "--suite",
        type=suite,
        metavar="SUITE",
        help=f"the new key's suite ({KNOWN}); default the suite of the key it replaces. "
        "Moving to the other suite is an overlap like any rotation: peers verify both keys "
        "until the old one ends",
    )
    rotate.set_defaults(run=run_rotate)

    revoke = sub.add_parser(
        "revoke-key",
        help="revoke a signing key now",
        description="Revoke a province's signing key in a new manifest version. A key the "
        "province's node signs with now (its running node is asked; its node.toml when it "
        "does not answer), or its last usable key, is refused without --force: rotate first "
        "(rotate-key), load the manifest on every node, then revoke the old key.",
    )
    add_folder(revoke)
    revoke.add_argument("--province", required=True)
    revoke.add_argument("--key-id", required=True)
    revoke.add_argument(
        "--force",
        action="store_true",
        help="revoke even the key the node signs with now (a leaked key); every peer then "
        "refuses its messages until it rotates to a new key",
    )
    revoke.set_defaults(run=run_revoke)


def describe(manifest: Manifest, now: float) -> dict[str, Any]:
    members = [m.to_json() for m in manifest.members]
    for member, listed in zip(manifest.members, members, strict=True):
        for key, shown in zip(member.keys, listed["signing_keys"], strict=True):
            shown["suite"] = key.verify_key.suite.name
    return {
        "federation": manifest.federation,
        "version": manifest.version,
        "issued_at": format_time(manifest.issued_at),
        "expires_at": format_time(manifest.expires_at),
        "expired": manifest.expired_at(now),
        "members": members,
    }


def _not_a_mesh_folder(directory: Path) -> str | None:
    """What to say when ``--dir`` is no mesh folder (rather than naming a file in it)."""
    try:
        check_mesh_folder(directory)
    except NotAMeshFolder as exc:
        return str(exc)
    return None


def run_show(args: argparse.Namespace) -> int:
    if wrong := _not_a_mesh_folder(args.dir):
        return fail(wrong)
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
                    " ".join(m.endpoints),  # every replica's
                    k.verify_key.suite.name,
                    k.key_id,
                    format_time(k.not_after),
                    state,
                ]
            )
    sys.stdout.write(
        table(
            [
                "province",
                "code",
                "node",
                "endpoint",
                "suite",
                "signing key",
                "valid until",
                "state",
            ],
            rows,
        )
    )
    return 0


def run_sign(args: argparse.Namespace) -> int:
    try:
        key = load_signing_key(args.governance_key)
        body = json.loads(args.draft.read_text(encoding="utf-8"))
        if isinstance(body, dict) and set(body) == {"manifest", "signature"}:
            raise ValueError(
                'that is a signed manifest; the body to edit and sign is its "manifest" '
                "object alone"
            )
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


def _reload_hint(directory: Path) -> str:
    """How to make the nodes load a new manifest: the ``yrd mesh up`` pid of DIR when one
    runs (it forwards SIGHUP to its nodes), else SIGHUP to each node."""
    try:
        supervisor = read_record(directory).supervisor_pid
    except (OSError, ValueError):
        supervisor = None
    if supervisor is not None:
        return (
            f"kill -HUP {supervisor}  (yrd mesh up in {directory}; it passes SIGHUP to its nodes)"
        )
    return "send SIGHUP to every node (kill -HUP <node pid>; yrd mesh up passes it on to its nodes)"


def run_rotate(args: argparse.Namespace) -> int:
    if wrong := _not_a_mesh_folder(args.dir):
        return fail(wrong)
    now = time.time()
    try:
        previous = layout.signing_key_in_use(args.dir, args.province)
        key_id = layout.rotate_signing_key(
            args.dir, args.province, now=now, overlap_days=args.overlap_days, suite=args.suite
        )
        manifest = layout.read_manifest(args.dir)
    except (ConfigError, KeyFileError, ManifestError, OSError, ValueError) as exc:
        return fail(str(exc))
    member = manifest.member_for_province(args.province)
    old = member.key(previous) if member is not None and previous is not None else None
    if old is None:
        kept = ""
    elif old.revoked:
        kept = f"Its previous key {old.key_id} stays revoked: peers refuse what it signs.\n"
    else:
        # The overlap asked for, unless the key was due to end sooner anyway.
        cut = abs(old.not_after - (now + args.overlap_days * DAY)) < 1
        left = f"{args.overlap_days:g} days" if cut else days_left(old.not_after, now)
        kept = (
            f"Its previous key {old.key_id} stays valid until {format_time(old.not_after)} "
            f"({left}), so messages signed with it before the switch still verify; "
            "revoke it before then if it must end sooner.\n"
        )
    sys.stdout.write(
        f"{args.province} signs with {key_id} from now on "
        f"({args.province}/{layout.NODE_CONFIG} names it).\n{kept}"
        f"Manifest version {manifest.version} published. Load it: {_reload_hint(args.dir)}\n"
    )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    if wrong := _not_a_mesh_folder(args.dir):
        return fail(wrong)
    signing_now = None if args.force else signing_key_now(args.dir, args.province)
    try:
        manifest = layout.revoke_signing_key(
            args.dir,
            args.province,
            args.key_id,
            now=time.time(),
            force=args.force,
            signing_now=signing_now,
        )
    except layout.KeyInUse as in_use:
        return fail(
            f"not revoked: {in_use}.\n"
            f"  Revoked, it would make every peer refuse {args.province}'s messages "
            f"(key_revoked) until {args.province} signs with a new key.\n"
            f"  To replace it: {_rotate_command(args)}, load the manifest on every node "
            "(SIGHUP), then revoke the old key.\n"
            "  To revoke it anyway (a key that leaked): add --force, then rotate as above.",
            1,
        )
    except (ConfigError, KeyFileError, ManifestError, OSError, ValueError) as exc:
        return fail(str(exc))
    sys.stdout.write(
        f"key {args.key_id} of {args.province} revoked in manifest version {manifest.version}.\n"
    )
    if signing_now is not None and signing_now.key_id is not None:
        sys.stdout.write(
            f"{args.province}'s node signs with {signing_now.key_id} ({signing_now.source}).\n"
        )
    sys.stdout.write(f"Load it: {_reload_hint(args.dir)}\n")
    if args.force:
        sys.stdout.write(
            f"Every peer that loads it refuses {args.province}'s messages signed with that key "
            f"(key_revoked) until {args.province} signs with a new one: "
            f"{_rotate_command(args)}, then load the manifest on every node again.\n"
        )
    return 0


def signing_key_now(directory: Path, province: str) -> SigningKeyNow:
    """The key ``province``'s node signs with now: its running node's answer (``/v1/status``,
    at the address its node.toml gives), which is what counts until it reloads; else what its
    node.toml names, saying the node did not answer."""
    from_config = layout.signing_key_from_config(directory, province)
    try:
        config = next((c for c in mesh_configs(directory) if c.province == province), None)
    except NotAMeshFolder:
        config = None
    if config is None:
        return from_config
    where = config.http_listen
    try:
        token = tool_token(os.environ, directory, province, "read")
        status = asyncio.run(_status_of(f"http://{where}", token))
    except (NoToken, NodeUnreachable, NodeRefused) as exc:
        why = "is not running" if isinstance(exc, NodeUnreachable) else f"did not say: {exc}"
        return SigningKeyNow(from_config.key_id, f"{from_config.source}; its node at {where} {why}")
    key_id = status.get("signing_key_id")
    if status.get("province") != province or not isinstance(key_id, str):
        return SigningKeyNow(
            from_config.key_id,
            f"{from_config.source}; what answers at {where} is not {province}'s node",
        )
    return SigningKeyNow(key_id, f"as its running node at {where} says")


async def _status_of(url: str, token: str | None) -> dict[str, Any]:
    async with node_api(url, token) as api:
        return (await api.call("GET", "/v1/status")).body


def _rotate_command(args: argparse.Namespace) -> str:
    return f"yrd manifest rotate-key --dir {args.dir} --province {args.province}"

"""``yrd case submit|show|list|event``: cross-province cases through one node's REST API.

Rules kept here:
- One node is asked, named by ``--url`` or by ``--mesh DIR --province P``; the bearer token
  comes from ``YRD_HTTP_TOKEN`` or, with ``--mesh``, the province's platform token.
- Exit 0 on success; 1 when the node refuses (its problem's code, detail and field on
  stderr); 2 when the node cannot be reached or the command line cannot be turned into a
  request.
- Human output never shows an applicant's name or ID number in full: they end up in
  terminals, scrollback and CI logs. ``--json`` gives the node's full record.
- Asking the node, its exit codes and errors are ``node.mesh.node_api``'s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from node.cases.events import PLATFORM_ACTIONS
from node.cases.lifecycle import EVALUATION_LEVELS
from node.cli.node_client import (
    UsageProblem,
    fields_block,
    mask_code,
    node_options,
    run,
)
from node.cli.output import emit_json, purpose_label, table
from node.mesh.node_api import NodeApi, NodeRefused

_ACTIONS: Final = sorted(a.value for a in PLATFORM_ACTIONS)
_SUBMISSION_FLAGS: Final = {
    "matter": "--matter",
    "handler": "--handler",
    "applicant_name": "--applicant-name",
    "code_type": "--code-type",
    "code": "--code",
}


# --- the command line -----------------------------------------------------------------------


def register(commands: Any) -> None:
    node = node_options()

    case = commands.add_parser("case", help="submit, show, list and move cross-province cases")
    sub = case.add_subparsers(dest="case_command", required=True, metavar="SUBCOMMAND")

    submit = sub.add_parser(
        "submit",
        parents=[node],
        help="submit a case to be handled by another province",
        description="Submit a case at this node (the accepting side). Give the submission "
        "as flags, or as a JSON body with --body.",
    )
    submit.add_argument(
        "--body", metavar="FILE", help="the JSON submission from a file, - for stdin"
    )
    submit.add_argument("--matter", metavar="CODE", help="the matter code (see yrd catalog)")
    submit.add_argument("--handler", metavar="PROVINCE", help="the handling province")
    submit.add_argument("--mode", metavar="MODE", help="the matter's mode (default: its first)")
    submit.add_argument("--applicant-name", metavar="NAME")
    submit.add_argument(
        "--code-type", choices=["111", "001"], help="111 resident ID number, 001 credit code"
    )
    submit.add_argument("--code", metavar="CODE", help="the applicant's ID number or credit code")
    submit.add_argument(
        "--material",
        dest="materials",
        action="append",
        type=_material,
        default=[],
        metavar="NAME=sha256:HEX|NAME=cert:ID",
        help="an uploaded material by digest, or a certificate by id (repeat)",
    )
    submit.add_argument(
        "--material-file",
        dest="materials",
        action="append",
        type=_material_file,
        metavar="NAME=PATH",
        help="an uploaded material: the SHA-256 of this file (repeat)",
    )
    submit.add_argument(
        "--idempotency-key", metavar="KEY", help="retries with this key create one case"
    )
    submit.set_defaults(run=lambda args: run(args, _submit))

    show = sub.add_parser("show", parents=[node], help="a case with its signed history")
    show.add_argument("case_id", metavar="CASE_ID")
    show.set_defaults(run=lambda args: run(args, _show))

    listing = sub.add_parser("list", parents=[node], help="cases, newest first")
    listing.add_argument("--role", choices=["accepting", "handling"], help="this node's side")
    listing.add_argument("--status", help="e.g. delivered, accepted, completed")
    listing.add_argument("--peer", help="the other province")
    listing.add_argument("--overdue", action="store_true", help="only cases past their due time")
    listing.add_argument("--limit", type=int, help="cases per page (node default 50, max 200)")
    listing.add_argument("--cursor", help="continue from a page's next_cursor")
    listing.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    listing.set_defaults(run=lambda args: run(args, _list))

    event = sub.add_parser(
        "event",
        parents=[node],
        help="move a case: this side's action",
        description="The handling side's actions apply at once; the accepting side's are "
        "requests the handling node answers.",
    )
    event.add_argument("case_id", metavar="CASE_ID")
    event.add_argument("action", metavar="ACTION", help=f"one of: {', '.join(_ACTIONS)}")
    event.add_argument("--reason", help="why (reject, request_supplement, deny, withdraw)")
    result = event.add_mutually_exclusive_group()
    result.add_argument("--document-sha256", metavar="HEX", help="complete: the result document")
    result.add_argument("--certificate-id", metavar="ID", help="complete: the issued certificate")
    event.add_argument("--level", type=int, help="evaluate: 5 非常满意 … 1 非常不满意")
    event.add_argument("--comment", help="evaluate: free text")
    event.set_defaults(run=lambda args: run(args, _event))


@dataclass(frozen=True)
class _MaterialFile:
    name: str
    path: Path


def _split(text: str, form: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not {form}")
    return name, value


def _material(text: str) -> dict[str, str]:
    form = "NAME=sha256:HEX or NAME=cert:CERTIFICATE_ID"
    name, value = _split(text, form)
    kind, _, reference = value.partition(":")
    if kind == "sha256" and reference:
        return {"name": name, "sha256": reference}
    if kind == "cert" and reference:
        return {"name": name, "certificate_id": reference}
    raise argparse.ArgumentTypeError(f"{text!r} is not {form}")


def _material_file(text: str) -> _MaterialFile:
    name, path = _split(text, "NAME=PATH")
    return _MaterialFile(name, Path(path))


def _submission(args: argparse.Namespace) -> dict[str, Any]:
    """The submission from ``--body`` or from the flags; UsageProblem if neither is whole."""
    given = [flag for dest, flag in _SUBMISSION_FLAGS.items() if getattr(args, dest) is not None]
    if args.mode is not None:
        given.append("--mode")
    if args.materials:
        given.append("--material")
    if args.body is not None:
        if given:
            raise UsageProblem(f"give the submission as --body or as flags, not both ({given[0]})")
        return _read_body(args.body)
    missing = [flag for dest, flag in _SUBMISSION_FLAGS.items() if getattr(args, dest) is None]
    if not args.materials:
        missing.append("--material or --material-file")
    if missing:
        raise UsageProblem(f"missing {', '.join(missing)} (or give a JSON body with --body)")
    body: dict[str, Any] = {
        "matter_code": args.matter,
        "handler": args.handler,
        "applicant": {"name": args.applicant_name, "code_type": args.code_type, "code": args.code},
        "materials": [_material_json(m) for m in args.materials],
    }
    if args.mode is not None:
        body["mode"] = args.mode
    return body


def _material_json(material: dict[str, str] | _MaterialFile) -> dict[str, str]:
    if isinstance(material, dict):
        return material
    digest = hashlib.sha256()
    try:
        with material.path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise UsageProblem(f"cannot read material {material.name!r}: {exc}") from None
    return {"name": material.name, "sha256": digest.hexdigest()}


def _read_body(source: str) -> dict[str, Any]:
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"cannot read the body from {where}: {exc}") from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UsageProblem(f"the body in {where} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UsageProblem(f"the body in {where} must be a JSON object")
    return body


# --- the commands ---------------------------------------------------------------------------


async def _submit(api: NodeApi, args: argparse.Namespace) -> int:
    submission = _submission(args)  # before anything is sent
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = await api.call("POST", "/v1/cases", body=submission, headers=headers)
    case = answer.body
    if args.json:
        emit_json(case)
        return 0
    replayed = answer.headers.get("Idempotent-Replayed") == "true"
    sys.stdout.write(
        fields_block(
            [
                ("case", case["case_id"]),
                ("status", case["status"]),
                ("handler", case["handling"]),
                ("matter", f"{case['matter_code']} ({case['mode']})"),
            ]
        )
    )
    if replayed:
        sys.stdout.write("(this Idempotency-Key already created the case; nothing new was sent)\n")
    return 0


async def _show(api: NodeApi, args: argparse.Namespace) -> int:
    case = (await api.call("GET", f"/v1/cases/{_segment(args.case_id)}")).body
    if args.json:
        emit_json(case)
    else:
        sys.stdout.write(render_case(case))
    return 0


async def _list(api: NodeApi, args: argparse.Namespace) -> int:
    params = {
        name: value
        for name, value in (
            ("role", args.role),
            ("status", args.status),
            ("peer", args.peer),
            ("overdue", "true" if args.overdue else None),
            ("limit", None if args.limit is None else str(args.limit)),
        )
        if value is not None
    }
    found: list[dict[str, Any]] = []
    cursor = args.cursor
    while True:
        page = (
            await api.call(
                "GET", "/v1/cases", params={**params, **({"cursor": cursor} if cursor else {})}
            )
        ).body
        found.extend(page["cases"])
        cursor = page.get("next_cursor")
        if not (args.all and cursor):
            break
    if args.json:
        emit_json({"cases": found, "next_cursor": cursor})
        return 0
    catalog = await _catalog(api) if found else []
    sys.stdout.write(
        table(
            ["case", "role", "peer", "matter", "status", "due", "overdue", "updated"],
            [
                [
                    c["case_id"],
                    c["role"],
                    c["peer"],
                    purpose_label(c["matter_code"], catalog),
                    c["status"],
                    c["due_at"] or "-",
                    "OVERDUE" if c["overdue"] else "no",
                    c["updated_at"],
                ]
                for c in found
            ],
        )
    )
    more = f"; more after --cursor {cursor} (or --all)" if cursor else ""
    sys.stdout.write(f"\n{len(found)} case{'' if len(found) == 1 else 's'}{more}\n")
    return 0


async def _catalog(api: NodeApi) -> list[dict[str, Any]]:
    """The node's federated catalog, for the matters' names; none (codes alone) when the
    node will not give it, since the cases are what was asked for."""
    try:
        matters: list[dict[str, Any]] = (await api.call("GET", "/v1/catalog")).body["matters"]
    except NodeRefused:
        return []
    return matters


async def _event(api: NodeApi, args: argparse.Namespace) -> int:
    event: dict[str, Any] = {"action": args.action}
    if args.reason is not None:
        event["reason"] = args.reason
    if args.document_sha256 is not None:
        event["result"] = {"kind": "document", "document_sha256": args.document_sha256}
    if args.certificate_id is not None:
        event["result"] = {"kind": "certificate", "certificate_id": args.certificate_id}
    if args.level is not None:
        event["level"] = args.level
    if args.comment is not None:
        event["comment"] = args.comment
    answer = await api.call("POST", f"/v1/cases/{_segment(args.case_id)}/events", body=event)
    case = answer.body
    if args.json:
        emit_json(case)
        return 0
    if answer.status == 202:
        sys.stdout.write(
            f"{case['case_id']}: {args.action} requested (message id {case['request_id']}); "
            "the handler's answer will follow\n"
        )
        return 0
    allowed = _allowed(case)
    sys.stdout.write(
        f"{case['case_id']}: {case['status']}"
        + (f" (next: {', '.join(allowed)})" if allowed else "")
        + "\n"
    )
    return 0


def _segment(case_id: str) -> str:
    # A case id is one path segment; a slash or "?" in a mistyped id must not change the route.
    return quote(case_id, safe="")


# --- showing a case -------------------------------------------------------------------------


def render_case(case: Mapping[str, Any]) -> str:
    """A case for a terminal: header, materials, history, unanswered or refused requests."""
    applicant = case.get("applicant") or {}
    level = case.get("evaluation_level")
    header = [
        ("case", case["case_id"]),
        ("status", case["status"]),
        ("role", case["role"]),
        ("route", f"{case['accepting']} → {case['handling']}"),
        ("matter", case["matter_code"]),
        ("mode", case["mode"]),
        (
            "applicant",
            f"{mask_name(applicant.get('name', ''))} "
            f"({applicant.get('code_type', '?')} {mask_code(applicant.get('code', ''))})",
        ),
        ("submitted", case["submitted_at"]),
        ("due", f"{case['due_at'] or '-'} (promised {case['promised_days']} days)"),
        ("overdue", "YES" if case["overdue"] else "no"),
        ("concluded", case.get("concluded_at") or "-"),
        ("allowed", ", ".join(_allowed(case)) or "-"),
        ("evaluation", f"{level} {EVALUATION_LEVELS.get(level, '')}" if level else "-"),
    ]
    if case.get("problem"):
        header.append(("problem", case["problem"]))
    parts = [fields_block(header)]
    materials = case.get("materials") or []
    if materials:
        parts.append(
            "\nmaterials\n"
            + table(
                ["name", "kind", "reference"],
                [[m["name"], *_material_cells(m)] for m in materials],
            )
        )
    history = case.get("history") or []
    parts.append(
        "\nhistory\n"
        + table(
            ["seq", "action", "by", "at", "detail", "signer"],
            [
                [
                    h["sequence"],
                    h["action"] if h.get("applied", True) else f"{h['action']} (held)",
                    h["by"],
                    h["at"],
                    history_detail(h),
                    _signer(h.get("signed_by")),
                ]
                for h in history
            ],
        )
        if history
        else "\nhistory: none yet (the handler's receipt is update 1)\n"
    )
    open_requests = [r for r in case.get("requests") or [] if r.get("state") != "applied"]
    if open_requests:
        parts.append(
            "\nrequests\n"
            + table(
                ["message id", "action", "state", "requested", "answered", "fault"],
                [
                    [
                        r["message_id"],
                        r["action"],
                        r["state"],
                        r["requested_at"],
                        r.get("answered_at") or "-",
                        f"{r['fault']['code']}: {r['fault']['text']}" if r.get("fault") else "",
                    ]
                    for r in open_requests
                ],
            )
        )
    return "".join(parts)


def _material_cells(material: Mapping[str, Any]) -> list[str]:
    if "certificate_id" in material:
        return ["certificate", str(material["certificate_id"])]
    return ["upload", f"sha256:{material.get('sha256', '')}"]


def history_detail(entry: Mapping[str, Any]) -> str:
    """What an update carried besides action, side and time, in one line."""
    said = []
    if entry.get("reason"):
        said.append(f"reason: {entry['reason']}")
    result = entry.get("result")
    if isinstance(result, Mapping):
        if result.get("kind") == "document":
            said.append(f"result: document sha256:{str(result.get('document_sha256'))[:16]}…")
        else:
            said.append(f"result: certificate {result.get('certificate_id')}")
    evaluation = entry.get("evaluation")
    if isinstance(evaluation, Mapping):
        comment = f" “{evaluation['comment']}”" if evaluation.get("comment") else ""
        said.append(f"evaluation: {evaluation.get('level')} {evaluation.get('label', '')}{comment}")
    return "; ".join(said)


def _signer(key_id: str | None) -> str:
    """The short form of the key that signed an update's evidence, e.g. ``ed25519:e94b949b``."""
    if not key_id:
        return "-"
    algorithm, sep, digest = key_id.partition(":")
    return f"{algorithm}:{digest[:8]}" if sep else key_id[:16]


def _allowed(case: Mapping[str, Any]) -> list[str]:
    return list(case.get("allowed_actions") or [])


def mask_name(name: str) -> str:
    """张三 → 张*: the first character, a star for each of the rest."""
    return name[:1] + "*" * (len(name) - 1) if len(name) > 1 else "*" * len(name)

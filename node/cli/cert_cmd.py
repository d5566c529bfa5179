"""``yrd cert verify|usage|import`` and ``yrd presentation issue|verify``: certificate mutual
recognition through one node's REST API (DESIGN.md §7, §9).

Rules kept here:
- Node selection, the bearer token, exit codes and problem output are ``case_cmd``'s: one
  node by ``--url`` or ``--mesh DIR --province P``, ``YRD_HTTP_TOKEN`` or the mesh's token
  (the operator's for ``import``, else the platform's), exit 1 with the
  problem's code, detail and field on stderr when the node refuses, exit 2 when it cannot be
  reached or the command line cannot be turned into a request.
- ``cert verify`` and ``presentation verify`` follow the verification exit codes of
  ``output.VERIFY_EXIT_CODES``: 3 when the answer is genuine but the certificate is not
  valid (revoked, suspended, expired), so a script can tell a refusal from a bad
  certificate; 2 when nobody checked it (the issuer's node did not answer: ``NOT_CHECKED``),
  in one sentence naming that province. The validity shown is the certificate's; an
  attestation's own lifetime is labelled as the answer's, never as "valid until".
- Human output never shows an ID number in full (``case_cmd.mask_code``): not a holder's
  code, not an ID-number field of a certificate's face. ``--json`` gives the node's answer.
- ``cert consent --expires`` takes any RFC 3339 time with a zone and sends it as the UTC
  form the API takes; nothing is sent when it cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from node.certificates.model import disclosable_fields, field_label, is_certificate_type
from node.cli.node_client import (
    UsageProblem,
    fields_block,
    mask_code,
    node_options,
    run,
)
from node.cli.output import (
    EXIT_NOT_CHECKED,
    EXIT_NOT_VALID,
    EXIT_VERIFIED,
    VERIFY_EXIT_CODES,
    emit_json,
    fail,
    table,
    zoned_time,
)
from node.cli.verify_file import read_questions
from node.mesh.node_api import NodeApi, NodeRefused

_ID_NUMBER: Final = re.compile(r"[0-9]{17}[0-9Xx]")
NOT_CHECKED: Final = frozenset({"issuer_unreachable", "library_unavailable"})
"""The node's refusals that mean nobody checked the certificate (exit 2, not 1): the
issuer's node did not answer, or its library could not be read."""


def register(commands: Any) -> None:
    node = node_options()

    cert = commands.add_parser(
        "cert", help="verify certificates, see who checked them, load a node's library"
    )
    sub = cert.add_subparsers(dest="cert_command", required=True, metavar="SUBCOMMAND")

    verify = sub.add_parser(
        "verify",
        parents=[node],
        help="verify a certificate online with its issuing province (or many: --file)",
        description="Ask the node to verify a certificate with the node of the province that "
        "issued it. Status needs no consent; fields beyond it need the holder's. With --file, "
        "every question of a CSV file (a header row naming the columns certificate_id, "
        "holder_code, purpose and optionally fields, consent, requester, holder_name) or of "
        "JSON lines (one POST /v1/certificates/verify body a line), in bulk.",
        epilog=VERIFY_EXIT_CODES + BULK_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("certificate_id", metavar="CERTIFICATE_ID", nargs="?")
    verify.add_argument(
        "--file",
        metavar="FILE",
        help="ask every question in FILE (CSV or JSON lines; - for stdin) instead of one",
    )
    verify.add_argument(
        "--batch-size",
        type=int,
        default=100,
        metavar="N",
        help="with --file: questions sent per request (default 100; at most the node's limit)",
    )
    verify.add_argument("--holder", metavar="CODE", help="the holder's ID number or credit code")
    verify.add_argument(
        "--purpose",
        metavar="P",
        help="a scene (hotel_check_in, roadside_vehicle_inspection, "
        "traffic_violation_handling) or a matter code",
    )
    verify.add_argument(
        "--field",
        dest="fields",
        action="append",
        default=[],
        metavar="F",
        help="a field to disclose besides status, e.g. name (repeat; needs --consent)",
    )
    verify.add_argument(
        "--consent",
        metavar="GRANT",
        help="the holder's consent grant, as `yrd cert consent` (or POST /v1/consents) gave it",
    )
    verify.add_argument("--requester", metavar="NAME", help="who asks, shown to the holder")
    verify.set_defaults(run=lambda args: run(args, _verify))

    consent = sub.add_parser(
        "consent",
        parents=[node],
        help="have the node sign a holder's consent grant (the holder signed in at its platform)",
        description="Ask the node of the province whose platform the holder consented at to "
        "sign the grant; print the grant, to be passed to `cert verify --consent`.",
    )
    consent.add_argument("--holder", required=True, metavar="CODE", help="the holder's code")
    consent.add_argument("--purpose", required=True, metavar="P", help="a scene or matter code")
    consent.add_argument(
        "--field",
        dest="fields",
        action="append",
        required=True,
        metavar="F",
        help="a field the holder lets be disclosed besides status (repeat)",
    )
    consent.add_argument("--certificate", metavar="ID", help="only this certificate")
    consent.add_argument("--requester", metavar="NAME", help="only this requesting authority")
    consent.add_argument(
        "--expires",
        type=_rfc3339,
        metavar="RFC3339",
        help="when the consent ends (default: in 24 hours), e.g. 2026-12-01T18:00:00+08:00",
    )
    consent.set_defaults(run=lambda args: run(args, _consent))

    usage = sub.add_parser(
        "usage",
        parents=[node],
        help="who checked a certificate issued by this node's province (用证记录)",
    )
    usage.add_argument("certificate_id", metavar="CERTIFICATE_ID")
    usage.set_defaults(run=lambda args: run(args, _usage))

    load = sub.add_parser(
        "import",
        parents=[node],
        help="put certificates into the node's own library",
        description="For a node without a platform adapter: store certificates of its own "
        "province, given as one JSON object or a JSON array of them. Importing an "
        "identifier again replaces it (a revoked status is then published).",
    )
    load.add_argument("file", metavar="FILE", help="the JSON file, - for stdin")
    load.set_defaults(run=lambda args: run(args, _import, scope="operator"))

    presentation = commands.add_parser(
        "presentation", help="issue and verify offline presentations (亮证)"
    )
    psub = presentation.add_subparsers(
        dest="presentation_command", required=True, metavar="SUBCOMMAND"
    )
    issue = psub.add_parser(
        "issue",
        parents=[node],
        help="a short-lived signed token of a certificate issued by this node's province",
    )
    issue.add_argument("certificate_id", metavar="CERTIFICATE_ID")
    issue.add_argument(
        "--holder", required=True, metavar="CODE", help="the holder's ID number or credit code"
    )
    issue.set_defaults(run=lambda args: run(args, _issue))

    check = psub.add_parser(
        "verify",
        parents=[node],
        help="verify a presentation offline",
        description="Check a presentation's signature and the certificate's status against "
        "the issuer's latest revocation list, offline.",
        epilog=VERIFY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("presentation", metavar="TOKEN", help="the token, - for stdin")
    check.set_defaults(run=lambda args: run(args, _check))


def _rfc3339(text: str) -> str:
    """An RFC 3339 time with a zone, as the API's UTC form (``2026-12-01T10:00:00Z``)."""
    moment = zoned_time(text)
    # Whole seconds, rounded down: the consent never reaches past what the holder granted.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id_segment(certificate_id: str) -> str:
    # An identifier is one path segment; a slash in a mistyped one must not change the route.
    return quote(certificate_id, safe="")


# --- the commands ---------------------------------------------------------------------------


async def _consent(api: NodeApi, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "holder_code": args.holder,
        "purpose": args.purpose,
        "fields": args.fields,
    }
    for key, value in (
        ("certificate_id", args.certificate),
        ("requester", args.requester),
        ("expires_at", args.expires),
    ):
        if value is not None:
            body[key] = value
    answer = (await api.call("POST", "/v1/consents", body=body)).body
    if args.json:
        emit_json(answer)
        return 0
    sys.stdout.write(answer["grant"] + "\n")
    sys.stderr.write(
        f"yrd: consent {answer['grant_id']} for {answer['purpose']} "
        f"({', '.join(answer['fields'])}) until {answer['expires_at']}\n"
    )
    return 0


async def _verify(api: NodeApi, args: argparse.Namespace) -> int:
    if args.file is not None:
        return await _verify_file(api, args)
    if args.certificate_id is None or args.holder is None or args.purpose is None:
        raise UsageProblem("give CERTIFICATE_ID, --holder and --purpose, or --file")
    body: dict[str, Any] = {
        "certificate_id": args.certificate_id,
        "holder_code": args.holder,
        "purpose": args.purpose,
    }
    if args.fields:
        body["fields"] = args.fields
    if args.consent is not None:
        body["consent"] = {"grant": args.consent}
    if args.requester is not None:
        body["requester"] = args.requester
    try:
        answer = (await api.call("POST", "/v1/certificates/verify", body=body)).body
    except NodeRefused as refusal:
        if refusal.code not in NOT_CHECKED:
            raise
        return fail(f"{args.certificate_id} not checked: {refusal.detail}", EXIT_NOT_CHECKED)
    valid = answer["status"] == "valid"
    code = EXIT_VERIFIED if valid else EXIT_NOT_VALID
    if args.json:
        emit_json(answer)
        return code
    sys.stdout.write(
        fields_block(
            [
                ("valid", "yes" if valid else "NO"),
                ("status", answer["status"]),
                ("certificate", args.certificate_id),
                ("holder", mask_code(args.holder)),
                ("type", answer["certificate_type"]),
                ("issuer", answer["issuer"]),
                ("checked", answer["checked_at"]),
                # The attestation's lifetime (how long this answer may be reused), not the
                # certificate's: beside "revoked", "valid until" would say the opposite.
                ("answer good until", answer["valid_until"]),
                ("cached", "yes" if answer["cached"] else "no"),
            ]
        )
    )
    sys.stdout.write(_disclosed(answer["certificate_type"], answer["fields"]))
    return code


async def _verify_file(api: NodeApi, args: argparse.Namespace) -> int:
    """Every question of ``--file`` through ``POST /v1/certificates/verify-batch``, in
    requests of ``--batch-size``: a line per question, then a count of each outcome."""
    single = [
        flag
        for flag, given in (
            ("CERTIFICATE_ID", args.certificate_id),
            ("--holder", args.holder),
            ("--purpose", args.purpose),
            ("--field", args.fields),
            ("--consent", args.consent),
            ("--requester", args.requester),
        )
        if given
    ]
    if single:
        raise UsageProblem(f"--file holds the questions; {single[0]} goes without it")
    if args.batch_size < 1:
        raise UsageProblem("--batch-size must be at least 1")
    questions = read_questions(args.file)  # every line checked before anything is sent
    results: list[dict[str, Any]] = []
    for start in range(0, len(questions), args.batch_size):
        chunk = questions[start : start + args.batch_size]
        body = {"items": [question.body for question in chunk]}
        answer = (await api.call("POST", "/v1/certificates/verify-batch", body=body)).body
        results.extend(answer["results"])
    outcomes = [_outcome(result) for result in results]
    if args.json:
        emit_json({"results": results})
    else:
        for question, result, outcome in zip(questions, results, outcomes, strict=True):
            sys.stdout.write(f"{question.line:>6}  {_bulk_line(question.body, result, outcome)}\n")
        counts = {name: outcomes.count(name) for name in _BULK_OUTCOMES}
        sys.stdout.write(
            f"\n{len(questions)} questions: "
            + ", ".join(f"{n} {name}" for name, n in counts.items())
            + "\n"
        )
    return max((_BULK_OUTCOMES[o] for o in outcomes), key=_BULK_SEVERITY.index)


_BULK_OUTCOMES: Final = {
    "valid": EXIT_VERIFIED,
    "not valid": EXIT_NOT_VALID,
    "not checked": EXIT_NOT_CHECKED,
    "refused": 1,
}
_BULK_SEVERITY: Final = (EXIT_VERIFIED, EXIT_NOT_VALID, EXIT_NOT_CHECKED, 1)
"""Which exit code of a bulk check wins: a refusal over a question nobody checked, over a
certificate that is not valid, over all valid."""
BULK_EXIT_CODES: Final = """
With --file: 0 every certificate valid; 3 one or more genuine but not valid; 2 one or more
not checked (its issuer did not answer); 1 one or more questions refused (each refusal on
its line). The worst one wins.
"""


def _outcome(result: Mapping[str, Any]) -> str:
    if "result" in result:
        return "valid" if result["result"]["status"] == "valid" else "not valid"
    return "not checked" if result["problem"]["code"] in NOT_CHECKED else "refused"


def _bulk_line(question: Mapping[str, Any], result: Mapping[str, Any], outcome: str) -> str:
    """One question's outcome on one line; no holder code, no disclosed value."""
    certificate = str(question.get("certificate_id", "-"))
    if "result" in result:
        answer = result["result"]
        cached = "  (cached)" if answer["cached"] else ""
        fields = ",".join(sorted(answer["fields"])) or "status only"
        return f"{certificate}  {outcome}  {answer['status']}  {fields}{cached}"
    shown = result["problem"]
    field = f" [{shown['field']}]" if shown.get("field") else ""
    return f"{certificate}  {outcome}  {shown['code']}{field}: {shown['detail']}"


async def _usage(api: NodeApi, args: argparse.Namespace) -> int:
    path = f"/v1/certificates/{_id_segment(args.certificate_id)}/usage"
    report = (await api.call("GET", path)).body
    if args.json:
        emit_json(report)
        return 0
    records = report["usage"]
    sys.stdout.write(
        table(
            ["at", "requester province", "requester", "purpose", "fields", "consent", "status"],
            [
                [
                    r["at"],
                    r["requester_province"],
                    r["requester"] or "-",
                    r["purpose"],
                    ",".join(r["fields"]),
                    r["consent_grant_id"] or "-",
                    r["status"],
                ]
                for r in records
            ],
        )
    )
    sys.stdout.write(
        f"\n{len(records)} check{'' if len(records) == 1 else 's'} of "
        f"{report['certificate_id']} (issued in {report['issuer']})\n"
    )
    return 0


async def _import(api: NodeApi, args: argparse.Namespace) -> int:
    certificates, single = _read_certificates(args.file)  # before anything is sent
    imported: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for index, certificate in enumerate(certificates):
        try:
            answer = (await api.call("POST", "/v1/certificates", body=certificate)).body
        except NodeRefused as refusal:
            field = refusal.field
            if not single:
                # A path into the array, the way the API names the fields of a body.
                field = f"[{index}].{field}" if field else f"[{index}]"
            sys.stderr.write(f"yrd: {NodeRefused(refusal.code, refusal.detail, field)}\n")
            refused.append(
                {"index": index, "code": refusal.code, "detail": refusal.detail, "field": field}
            )
            left = len(certificates) - index - 1
            if refusal.field is None and left:
                # Not about this certificate (the token, the node's library): the rest would
                # meet the same refusal.
                sys.stderr.write(f"yrd: stopped; {left} more not sent\n")
                break
            continue
        imported.append({"index": index, **answer})
        if not args.json:
            sys.stdout.write(
                f"{answer['certificate_id']}  imported  "
                f"({certificate.get('type', '?')}, {certificate.get('status', '?')})\n"
            )
    if args.json:
        emit_json({"imported": imported, "refused": refused})
    return 1 if refused else 0


async def _issue(api: NodeApi, args: argparse.Namespace) -> int:
    body = {"certificate_id": args.certificate_id, "holder_code": args.holder}
    issued = (await api.call("POST", "/v1/presentations", body=body)).body
    if args.json:
        emit_json(issued)
        return 0
    sys.stdout.write(
        fields_block(
            [
                ("certificate", issued["certificate_id"]),
                ("expires", issued["expires_at"]),
                ("size", f"{issued['size_bytes']} bytes"),
            ]
        )
    )
    sys.stdout.write(f"\n{issued['token']}\n")
    return 0


async def _check(api: NodeApi, args: argparse.Namespace) -> int:
    from_stdin = args.presentation == "-"
    token = (sys.stdin.read() if from_stdin else args.presentation).strip()
    if not token:
        raise UsageProblem("no token given" + (" on stdin" if from_stdin else ""))
    checked = (await api.call("POST", "/v1/presentations/verify", body={"token": token})).body
    code = EXIT_VERIFIED if checked["valid"] else EXIT_NOT_VALID
    if args.json:
        emit_json(checked)
        return code
    age, version = checked["revocation_list_age_seconds"], checked["revocation_list_version"]
    revocations = (
        "none held (the status at issue stands)"
        if age is None
        else f"version {version}, issued {age:.1f} s ago"
    )
    sys.stdout.write(
        fields_block(
            [
                ("valid", "yes" if checked["valid"] else "NO"),
                ("status", checked["status"]),
                ("certificate", checked["certificate_id"]),
                ("type", checked["certificate_type"]),
                ("issuer", checked["issuer"]),
                ("expires", checked["expires_at"]),
                ("revocation list", revocations),
            ]
        )
    )
    sys.stdout.write(_disclosed(checked["certificate_type"], checked["fields"]))
    return code


# --- helpers --------------------------------------------------------------------------------


def _read_certificates(source: str) -> tuple[list[dict[str, Any]], bool]:
    """The certificates in ``source`` and whether it held one object (not an array)."""
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"cannot read certificates from {where}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageProblem(f"the certificates in {where} are not JSON: {exc}") from None
    if isinstance(document, dict):
        return [document], True
    if not isinstance(document, list) or not document:
        raise UsageProblem(f"{where} must hold a certificate object or a non-empty array of them")
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise UsageProblem(f"{where}: item [{index}] is not a certificate object")
    return document, False


def _disclosed(certificate_type: str, fields: Mapping[str, str | None]) -> str:
    """The disclosed fields in the type's field order as a table, ID numbers masked; a line
    when there are none."""
    if not fields:
        return "\ndisclosed: status only\n"
    # The answer's order is the issuer's map order, which means nothing; the face's does.
    order = disclosable_fields(certificate_type) if is_certificate_type(certificate_type) else ()
    names = sorted(fields, key=lambda n: (order.index(n) if n in order else len(order), n))
    rows: list[Sequence[str]] = [
        [name, _label(certificate_type, name), _shown(fields[name])] for name in names
    ]
    return "\ndisclosed\n" + table(["field", "label", "value"], rows)


def _label(certificate_type: str, name: str) -> str:
    if not is_certificate_type(certificate_type):
        return ""
    try:
        return field_label(certificate_type, name)
    except KeyError:
        return ""


def _shown(value: str | None) -> str:
    # By shape rather than by field name: an ID number stays masked in a field or a type
    # this command does not know yet.
    if not value:
        return "-"
    return mask_code(value) if _ID_NUMBER.fullmatch(value) else value

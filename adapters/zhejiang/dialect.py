"""The Zhejiang dialect (浙里办 open platform): its names, vocabularies, formats, envelope and
paging, without I/O.

The simulated platform and the adapter both translate with ``ZHEJIANG``, the steps of
``adapters.translation`` in these words, so the two sides cannot drift apart. Request
signing is ``adapters.zhejiang.signing``. Conventions of the dialect (README.md has the
integrator's view):

1. JSON, field names in snake_case (``NAMES``), UTF-8. Every answer is the envelope
   ``{"code": "0", "msg": "success", "data": <object>}``; a refusal has a non-zero string
   ``code`` from ``ERROR_CODES`` and ``data = {"error": <stable name>, "field": <path>}``.
2. Every instant is a string of Beijing time with milliseconds and the fixed offset,
   ``yyyy-MM-dd'T'HH:mm:ss.SSS+08:00`` (``2026-03-02T10:00:00.000+08:00``), between 2000
   and 2100; anything else (a number, another offset, no milliseconds) is ``bad_time``.
   Calendar dates are ``yyyy-MM-dd`` (from 1900: birth dates); a birth minute (出生时间)
   is ``yyyy-MM-dd'T'HH:mm+08:00``.
3. Statuses, actions, sides, modes, result and material types, licence statuses, ID types
   and sexes are snake_case English words from the tables below; provinces are GB/T 2260
   area codes (``"340000"``). A case status outside ``CASE_STATUSES`` (or a licence status
   outside ``LICENSE_STATUSES``) is ``unknown_status``; any other unknown word
   ``unknown_code``.
4. Reading is strict (``adapters.strict_json``): unknown fields, missing fields and values
   of the wrong kind are refused with the dialect's path of the field.
5. Lists are paged by token (``PAGE_FIELDS``): ``page_size`` and ``page_token`` in the
   query, ``{"items", "page_size", "has_more", "next_page_token"}`` in ``data``.
6. The federation's refusal of an application is ``{"refuse_type": <REFUSE_TYPES word>,
   "refuse_code": <stable code>, "refuse_field"?: <dialect path>, "refuse_reason"}``; the
   application's ``case_status`` is then ``returned`` (退件).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from adapters.strict_json import JsonObject, decode_json_object
from adapters.translation import (
    REFUSAL_KINDS,
    CodeTable,
    Names,
    Translation,
    read_certificate_type,
    rename,
)
from node.cases.catalog import MODES
from node.certificates.model import CHINA_STANDARD_TIME, FieldSpec
from node.certificates.revocation import REASONS
from node.platform.adapter import DialectError

PROVINCE: Final = "zhejiang"
SUCCESS: Final = "0"

CASE_STATUSES: Final = CodeTable(
    {
        "applied": "submitted",
        "received": "delivered",
        "accepted": "accepted",
        "awaiting_supplement": "supplement_requested",
        "supplemented": "supplemented",
        "not_accepted": "rejected",
        "concluded": "completed",
        "not_approved": "denied",
        "withdrawn": "withdrawn",
        "rated": "evaluated",
    }
)
"""``case_status`` word → the federation's case status."""
APPLICATION_STATUSES: Final = CodeTable({**CASE_STATUSES, "returned": "refused"})
"""``case_status`` as the applicant's view of an application shows it: ``returned`` (退件)
when the federation refused it (rule 6)."""
ACTION_TYPES: Final = CodeTable(
    {
        "receive": "deliver",
        "accept": "accept",
        "decline": "reject",
        "request_supplement": "request_supplement",
        "submit_supplement": "supplement",
        "conclude": "complete",
        "disapprove": "deny",
        "withdraw": "withdraw",
        "rate": "evaluate",
    }
)
"""``action_type`` word → the federation's action."""
ACTOR_SIDES: Final = CodeTable({"receiving_place": "accepting", "handling_place": "handling"})
"""收件地 and 办理地."""
HANDLE_MODES: Final[CodeTable[str, str]] = CodeTable(
    dict(zip(("full_online", "proxy_acceptance", "joint_handling"), MODES, strict=True))
)
"""全程网办, 异地代收代办, 多地联办."""
REGION_CODES: Final = CodeTable(
    {"310000": "shanghai", "320000": "jiangsu", "330000": "zhejiang", "340000": "anhui"}
)
ID_TYPES: Final = CodeTable({"resident_id": "111", "uscc": "001"})
"""Resident ID number (GB 11643) and unified social credit code (GB 32100)."""
RESULT_TYPES: Final = CodeTable({"document": "document", "license": "certificate"})
MATERIAL_TYPES: Final = CodeTable({"upload": "upload", "license": "certificate"})
LICENSE_STATUSES: Final = CodeTable(
    {"effective": "valid", "suspended": "suspended", "revoked": "revoked", "expired": "expired"}
)
REVOCATION_REASONS: Final[CodeTable[str, str]] = CodeTable({reason: reason for reason in REASONS})
"""The federation's own reason names (``superseded`` … ``under_review``)."""
SEXES: Final = CodeTable({"male": "male", "female": "female"})
REFUSE_TYPES: Final[CodeTable[str, str]] = CodeTable({kind: kind for kind in REFUSAL_KINDS})
"""``refuse_type``: ``applicant``, ``matter``, ``material``, ``record`` (the record as the
platform wrote it), ``other``."""

YES_NO: Final = CodeTable({True: True, False: False})
"""``duplicate``: JSON's own true and false."""

ERROR_CODES: Final[Mapping[str, str]] = {
    "malformed_body": "40000",
    "missing_field": "40001",
    "invalid_field": "40002",
    "unknown_field": "40003",
    "unknown_code": "40004",
    "unknown_status": "40005",
    "bad_time": "40006",
    "not_utf8": "40007",
    "invalid_page": "40009",
    "unsigned_request": "40101",
    "bad_signature": "40102",
    "stale_timestamp": "40103",
    "replayed_nonce": "40104",
    "unknown_app_key": "40301",
    "not_found": "40400",
    "method_not_allowed": "40500",
    "conflict": "40900",
    "body_too_large": "41300",
    "unsupported_media_type": "41500",
    "internal": "50000",
}
"""``code`` of the dialect's own refusals. Any other refusal (the federation's checks of an
application: ``invalid_id_number`` …) has the HTTP status times 100 plus 99 (``"40099"``)
and keeps its name in ``data.error``."""

PAGE_FIELDS: Final = ("items", "page_size", "has_more", "next_page_token")
MAX_TOKEN_LENGTH: Final = 40

EARLIEST_MS: Final = 946_684_800_000
"""2000-01-01T00:00Z."""
LATEST_MS: Final = 4_102_444_800_000
"""2100-01-01T00:00Z."""
INSTANT_FORM: Final = "yyyy-MM-dd'T'HH:mm:ss.SSS+08:00"

_INSTANT: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.([0-9]{3})\+08:00"
)
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MINUTE: Final = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2})\+08:00")


# --- times ----------------------------------------------------------------------------------


def to_instant(seconds: float) -> str:
    """An epoch instant as the dialect writes it (rule 2), to the millisecond."""
    ms = round(seconds * 1000)
    moment = datetime.fromtimestamp(ms // 1000, CHINA_STANDARD_TIME)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}+08:00"


def read_instant(fields: JsonObject, name: str) -> float:
    """An instant of the dialect (rule 2), as epoch seconds."""
    value = fields.raw(name)
    path = fields.path(name)
    if value is None:
        raise DialectError("missing_field", "is required", field=path)
    match = _INSTANT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise DialectError("bad_time", f"must be Beijing time as {INSTANT_FORM}", field=path)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DialectError("bad_time", "is not a real date and time", field=path) from None
    ms = int(moment.replace(microsecond=0).timestamp()) * 1000 + int(match.group(1))
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise DialectError("bad_time", "must be between 2000 and 2100", field=path)
    return ms / 1000


def read_date(fields: JsonObject, name: str) -> str:
    """A calendar date ``yyyy-MM-dd`` from 1900 (rule 2), as ISO text."""
    value = fields.raw(name)
    path = fields.path(name)
    if value is None:
        raise DialectError("missing_field", "is required", field=path)
    if not isinstance(value, str) or _DATE.fullmatch(value) is None:
        raise DialectError("bad_time", "must be a date as yyyy-MM-dd", field=path)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise DialectError("bad_time", "is not a real date", field=path) from None
    if not 1900 <= day.year < 2100:
        raise DialectError("bad_time", "must be between 1900 and 2100", field=path)
    return value


def minute_to_dialect(text: str) -> str:
    """A face birth minute (``YYYY-MM-DDTHH:MM``, Beijing time) as the dialect writes it."""
    return f"{datetime.fromisoformat(text):%Y-%m-%dT%H:%M}+08:00"


def read_minute(fields: JsonObject, name: str) -> str:
    value = fields.raw(name)
    path = fields.path(name)
    if value is None:
        raise DialectError("missing_field", "is required", field=path)
    match = _MINUTE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise DialectError("bad_time", "must be a minute as yyyy-MM-dd'T'HH:mm+08:00", field=path)
    try:
        datetime.fromisoformat(match.group(1))
    except ValueError:
        raise DialectError("bad_time", "is not a real date and time", field=path) from None
    return match.group(1)


# --- the envelope and paging ----------------------------------------------------------------


def success(data: Mapping[str, Any]) -> dict[str, Any]:
    """A successful answer (rule 1)."""
    return {"code": SUCCESS, "msg": "success", "data": dict(data)}


def page(items: list[dict[str, Any]], page_size: int, more: bool, token: str) -> dict[str, Any]:
    """The ``data`` of one page of a list (rule 5)."""
    return {"items": items, "page_size": page_size, "has_more": more, "next_page_token": token}


def read_page(data: JsonObject) -> tuple[list[object], bool, str]:
    """A page's raw items, ``has_more`` and ``next_page_token`` (records are the caller's)."""
    items = data.raw("items")
    if not isinstance(items, list):
        raise DialectError("malformed_body", "must be a list", field=data.path("items"))
    size = data.integer("page_size")
    more = data.boolean("has_more")
    token = data.raw("next_page_token")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise DialectError(
            "invalid_field",
            f"must be a string of at most {MAX_TOKEN_LENGTH} characters",
            field=data.path("next_page_token"),
        )
    data.finish()
    if len(items) > size:
        raise DialectError(
            "invalid_field", "the page holds more items than its size", field=data.path("items")
        )
    return items, more, token


def error_body(code: str, detail: str, *, field: str = "", status: int = 400) -> dict[str, Any]:
    """A refusal (rule 1)."""
    return {
        "code": ERROR_CODES.get(code, str(status * 100 + 99)),
        "msg": detail,
        "data": {"error": code, "field": field},
    }


def read_reply(body: bytes, status: int) -> JsonObject:
    """The ``data`` of a successful answer; a refusal (a non-zero ``code``, whatever the
    HTTP status) raises ``DialectError`` with its stable name."""
    if status >= 400:
        raise read_error(body, status)
    envelope = JsonObject(decode_json_object(body, what="reply"))
    code = envelope.text("code", max_length=10)
    message = envelope.raw("msg")
    data = envelope.raw("data")
    envelope.finish()
    if not isinstance(message, str):
        raise DialectError("missing_field", "the envelope needs a msg string", field="msg")
    if code != SUCCESS:
        raise _refusal(code, message, data, status)
    return JsonObject(data, "data")


def read_error(body: bytes, status: int) -> DialectError:
    """A refusal as a ``DialectError`` (a generic one if it is not in the dialect)."""
    try:
        envelope = JsonObject(decode_json_object(body, what="error reply"))
        code = envelope.text("code", max_length=10)
        message = envelope.text("msg")
        data = envelope.raw("data")
        envelope.finish()
    except DialectError:
        return DialectError(f"http_{status}", f"the platform refused the request with {status}")
    if code == SUCCESS:
        return DialectError(f"http_{status}", f"the platform answered {status} with code 0")
    return _refusal(code, message, data, status)


def _refusal(code: str, message: str, data: object, status: int) -> DialectError:
    error = data.get("error") if isinstance(data, dict) else None
    field = data.get("field") if isinstance(data, dict) else None
    name = error if isinstance(error, str) and error else _ERROR_NAMES.get(code, f"zlb_{code}")
    return DialectError(
        name[:64],
        f"the platform refused it ({status}, code {code}): {message}",
        field=field if isinstance(field, str) else "",
    )


_ERROR_NAMES: Final = {number: name for name, number in ERROR_CODES.items()}


# --- the dialect's words for the translation steps ------------------------------------------

NAMES: Final = Names(
    party_name="name",
    code_type="id_type",
    code="id_number",
    material_name="material_name",
    certificate_id="license_id",
    digest="file_sha256",
    result_kind="result_type",
    document_digest="doc_sha256",
    level="satisfaction",
    comment="comment",
    case_id="case_id",
    accepting="accept_region_code",
    matter_code="matter_code",
    mode="handle_mode",
    applicant="applicant",
    materials="materials",
    submitted_at="submit_time",
    sequence="seq_no",
    action="action_type",
    by="actor_side",
    status="case_status",
    notice_at="notice_time",
    reason="opinion",
    result="result",
    evaluation="evaluation",
    due_at="due_time",
    extra="extra",
    event_id="event_id",
    event_at="event_time",
    reference="apply_no",
    handler="handle_region_code",
    entered_at="apply_time",
    acknowledged_at="ack_time",
    type_code="license_type_code",
    issuing_authority="issue_org_name",
    issuing_authority_code="issue_org_code",
    holder_name="holder_name",
    holder_code_type="holder_id_type",
    holder_code="holder_id_number",
    issued_on="issue_date",
    valid_from="valid_from",
    valid_until="valid_to",
    certificate_status="license_status",
    face="surface",
    since="status_time",
    revocation_reason="reason",
    matter_name="matter_name",
    matter_name_en="matter_name_en",
    department="dept_name",
    modes="handle_modes",
    material_kind="material_type",
    promised_days="promise_days",
    refusal_kind="refuse_type",
    refusal_code="refuse_code",
    refusal_field="refuse_field",
    refusal_reason="refuse_reason",
    refused_at="refuse_time",
    duplicate="duplicate",
)


def _face_key(spec: FieldSpec) -> str:
    return spec.name


ZHEJIANG: Final = Translation[JsonObject](
    names=NAMES,
    statuses=CASE_STATUSES,
    actions=ACTION_TYPES,
    roles=ACTOR_SIDES,
    modes=HANDLE_MODES,
    provinces=REGION_CODES,
    holder_code_types=ID_TYPES,
    result_kinds=RESULT_TYPES,
    material_kinds=MATERIAL_TYPES,
    certificate_statuses=LICENSE_STATUSES,
    reasons=REVOCATION_REASONS,
    sexes=SEXES,
    yes_no=YES_NO,
    refusal_kinds=REFUSE_TYPES,
    levels=None,
    write_instant=to_instant,
    read_instant=read_instant,
    write_date=str,
    read_date=read_date,
    write_minute=minute_to_dialect,
    read_minute=read_minute,
    write_number=int,
    write_extra=dict,
    read_extra=JsonObject.passthrough,
    face_key=_face_key,
    read_certificate_type=read_certificate_type,
    null=True,
)
"""Every translation of the dialect, both ways (``adapters.translation``)."""


# --- the engine's field names in the dialect ------------------------------------------------

_FIELD_NAMES: Final = (
    (re.compile(r"\bhandler\b"), "handle_region_code"),
    (re.compile(r"\bmode\b"), "handle_mode"),
    (re.compile(r"\bcode_type\b"), "id_type"),
    (re.compile(r"(?<=applicant\.)code\b"), "id_number"),
    (re.compile(r"(?<=\]\.)name\b"), "material_name"),
    (re.compile(r"\bsha256\b"), "file_sha256"),
    (re.compile(r"\bcertificate_id\b"), "license_id"),
    (re.compile(r"\bsequence\b"), "seq_no"),
    (re.compile(r"\baccepting\b"), "accept_region_code"),
    (re.compile(r"\breference\b"), "apply_no"),
)


def dialect_field(field: str) -> str:
    """The dialect's path of a field the engine names in its neutral form."""
    return rename(field, _FIELD_NAMES)

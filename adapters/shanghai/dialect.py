"""The Shanghai dialect (一网通办): its names, code tables and formats, without I/O.

The simulated platform and the adapter both translate with ``SHANGHAI``, the steps of
``adapters.translation`` in these words, so the two sides cannot drift apart. Conventions of
the dialect (README.md has the integrator's view):

1. JSON, field names in camelCase (``NAMES``), UTF-8.
2. Every instant is an integer count of milliseconds since the epoch (``applyTime``). An
   instant before 2000 or after 2100 is refused as ``bad_time`` (a seconds value read as
   milliseconds lands in 1970); so is a float or a string. Calendar dates (certificates)
   are the millisecond instant of 00:00 Beijing time on that day, and must be exactly that
   (from 1900: birth dates); a birth minute (出生时间) must be a whole minute.
3. Statuses, actions, roles, modes, result types, material types, certificate statuses and
   sexes are numeric codes from the tables below; provinces are GB/T 2260 area codes
   (``"340000"``). A case status outside ``STATUS_CODES`` (or a certificate status outside
   ``LICENSE_STATUS_CODES``) is ``unknown_status``; any other unknown code ``unknown_code``.
4. Reading is strict (``adapters.strict_json``): unknown fields, missing fields and values
   of the wrong kind are refused with the dialect's path of the field.
5. Errors are ``{"errorCode": <int>, "errorType": <stable code>, "errorMsg": <sentence>,
   "errorField": <dialect path or "">}`` with a 4xx/5xx HTTP status.
6. The federation's refusal of an application says it the same way: ``{"rejectCode":
   <int, the kind of refusal from REJECT_CODES>, "rejectType": <stable code>,
   "rejectField"?: <dialect path>, "rejectReason": <sentence>}``; the application's status
   is then ``REFUSED_STATUS`` (90).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Final

from adapters.strict_json import JsonObject, decode_json_object
from adapters.translation import (
    REFUSAL_KINDS,
    CodeTable,
    Names,
    Translation,
    read_certificate_type,
    refusal,
    rename,
)
from node.cases.catalog import MODES
from node.certificates.model import CHINA_STANDARD_TIME, FieldSpec
from node.certificates.revocation import REASONS
from node.platform.adapter import DialectError

PROVINCE: Final = "shanghai"

STATUS_CODES: Final = CodeTable(
    {
        10: "submitted",
        20: "delivered",
        30: "accepted",
        31: "supplement_requested",
        32: "supplemented",
        40: "rejected",
        50: "completed",
        60: "denied",
        70: "withdrawn",
        80: "evaluated",
    }
)
REFUSED_STATUS: Final = 90
"""退回: the federation refused the application before it became a case (rule 6)."""
APPLICATION_STATUS_CODES: Final = CodeTable({**STATUS_CODES, REFUSED_STATUS: "refused"})
"""``caseStatus`` as the applicant's view of an application shows it."""
ACTION_CODES: Final = CodeTable(
    {
        101: "deliver",
        201: "accept",
        202: "reject",
        301: "request_supplement",
        302: "supplement",
        501: "complete",
        601: "deny",
        701: "withdraw",
        801: "evaluate",
    }
)
ROLE_CODES: Final = CodeTable({1: "accepting", 2: "handling"})
MODE_CODES: Final[CodeTable[int, str]] = CodeTable(dict(enumerate(MODES, start=1)))
AREA_CODES: Final = CodeTable(
    {"310000": "shanghai", "320000": "jiangsu", "330000": "zhejiang", "340000": "anhui"}
)
HOLDER_CODE_TYPES: Final = CodeTable({"111": "111", "001": "001"})
"""The national codes as they are: 111 resident ID number, 001 unified social credit code."""
RESULT_TYPES: Final = CodeTable({1: "document", 2: "certificate"})
MATERIAL_TYPES: Final = CodeTable({1: "upload", 2: "certificate"})
LICENSE_STATUS_CODES: Final = CodeTable({1: "valid", 2: "suspended", 3: "revoked", 4: "expired"})
REASON_CODES: Final[CodeTable[int, str]] = CodeTable(dict(enumerate(REASONS, start=1)))
"""Why a licence is revoked or suspended: 1 superseded … 7 under_review (``REASONS`` order)."""
SEX_CODES: Final = CodeTable({1: "male", 2: "female"})
"""GB/T 2261.1."""
REJECT_CODES: Final[CodeTable[int, str]] = CodeTable(
    dict(zip((60100, 60200, 60300, 60400, 69900), REFUSAL_KINDS, strict=True))
)
"""``rejectCode``, the kind of the federation's refusal of an application: 60100 the
applicant, 60200 the matter, 60300 a material, 60400 the record, 69900 other; ``rejectType``
is the precise stable code (rule 6)."""

YES_NO: Final = CodeTable({True: True, False: False})
"""``duplicate``: JSON's own true and false."""

ERROR_CODES: Final[dict[str, int]] = {
    "malformed_body": 40000,
    "missing_field": 40001,
    "invalid_field": 40002,
    "unknown_field": 40003,
    "unknown_code": 40004,
    "unknown_status": 40005,
    "bad_time": 40006,
    "not_utf8": 40007,
    "unsupported_media_type": 40008,
    "invalid_cursor": 40009,
    "unauthorized": 40100,
    "not_found": 40400,
    "conflict": 40900,
}
"""Numeric codes of the dialect's own refusals. Any other refusal (the federation's checks of
an application: ``invalid_id_number`` …) is the HTTP status times 100 plus 99 (``40099``) and
keeps its name in ``errorType``."""

EARLIEST_MS: Final = 946_684_800_000
"""2000-01-01T00:00Z."""
LATEST_MS: Final = 4_102_444_800_000
"""2100-01-01T00:00Z."""
EARLIEST_DATE_MS: Final = -2_208_988_800_000
"""1900-01-01T00:00Z: calendar dates on certificates (birth dates) reach further back."""

_DAY_MS: Final = 86_400_000


# --- times ----------------------------------------------------------------------------------


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


def read_ms(fields: JsonObject, name: str) -> float:
    """An instant in epoch milliseconds, as epoch seconds (rule 2)."""
    return _whole_ms(fields, name, EARLIEST_MS, "2000") / 1000


def _whole_ms(fields: JsonObject, name: str, earliest: int, since: str) -> int:
    value = fields.raw(name)
    path = fields.path(name)
    if value is None:
        raise DialectError("missing_field", "is required", field=path)
    if type(value) is not int:
        raise DialectError(
            "bad_time", "must be a whole number of milliseconds since the epoch", field=path
        )
    if not earliest <= value < LATEST_MS:
        seconds = EARLIEST_MS // 1000 <= value < LATEST_MS // 1000
        hint = " (this looks like seconds)" if seconds else ""
        raise DialectError(
            "bad_time",
            f"must be milliseconds since the epoch between {since} and 2100{hint}",
            field=path,
        )
    return value


def date_to_ms(text: str) -> int:
    day = date.fromisoformat(text)
    return int(
        datetime(day.year, day.month, day.day, tzinfo=CHINA_STANDARD_TIME).timestamp() * 1000
    )


def read_date(fields: JsonObject, name: str) -> str:
    """A calendar date: the instant of 00:00 Beijing time that day (rule 2)."""
    ms = _whole_ms(fields, name, EARLIEST_DATE_MS, "1900")
    if ms % _DAY_MS != _DAY_MS - 8 * 3_600_000:
        raise DialectError(
            "bad_time",
            "a date must be 00:00 Beijing time, in milliseconds",
            field=fields.path(name),
        )
    return datetime.fromtimestamp(ms / 1000, CHINA_STANDARD_TIME).date().isoformat()


def minute_to_ms(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=CHINA_STANDARD_TIME)
    return int(moment.timestamp() * 1000)


def read_minute(fields: JsonObject, name: str) -> str:
    ms = _whole_ms(fields, name, EARLIEST_DATE_MS, "1900")
    if ms % 60_000:
        raise DialectError(
            "bad_time", "must be a whole minute, in milliseconds", field=fields.path(name)
        )
    return datetime.fromtimestamp(ms / 1000, CHINA_STANDARD_TIME).strftime("%Y-%m-%dT%H:%M")


# --- the dialect's words for the translation steps ------------------------------------------


def _face_key(spec: FieldSpec) -> str:
    """A face field's name in camelCase (``birth_date`` → ``birthDate``)."""
    head, *rest = spec.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


NAMES: Final = Names(
    party_name="name",
    code_type="certTypeCode",
    code="certNo",
    material_name="materialName",
    certificate_id="licenseId",
    digest="fileHash",
    result_kind="resultType",
    document_digest="docHash",
    level="level",
    comment="comment",
    case_id="caseId",
    accepting="acceptAreaCode",
    matter_code="matterCode",
    mode="handleMode",
    applicant="applicant",
    materials="materials",
    submitted_at="submitTime",
    sequence="seqNo",
    action="actionCode",
    by="actorRole",
    status="caseStatus",
    notice_at="noticeTime",
    reason="opinion",
    result="result",
    evaluation="evaluation",
    due_at="dueTime",
    extra="extra",
    event_id="eventId",
    event_at="eventTime",
    reference="applyNo",
    handler="handleAreaCode",
    entered_at="applyTime",
    acknowledged_at="ackTime",
    type_code="licenseTypeCode",
    issuing_authority="issueOrgName",
    issuing_authority_code="issueOrgCode",
    holder_name="holderName",
    holder_code_type="holderCertType",
    holder_code="holderCertNo",
    issued_on="issueDate",
    valid_from="validFrom",
    valid_until="validTo",
    certificate_status="licenseStatus",
    face="surface",
    since="statusTime",
    revocation_reason="reasonCode",
    matter_name="matterName",
    matter_name_en="matterNameEn",
    department="deptName",
    modes="handleModes",
    material_kind="materialType",
    promised_days="promiseDays",
    refusal_kind="rejectCode",
    refusal_code="rejectType",
    refusal_field="rejectField",
    refusal_reason="rejectReason",
    refused_at="rejectTime",
    duplicate="duplicate",
)

SHANGHAI: Final = Translation[JsonObject](
    names=NAMES,
    statuses=STATUS_CODES,
    actions=ACTION_CODES,
    roles=ROLE_CODES,
    modes=MODE_CODES,
    provinces=AREA_CODES,
    holder_code_types=HOLDER_CODE_TYPES,
    result_kinds=RESULT_TYPES,
    material_kinds=MATERIAL_TYPES,
    certificate_statuses=LICENSE_STATUS_CODES,
    reasons=REASON_CODES,
    sexes=SEX_CODES,
    yes_no=YES_NO,
    refusal_kinds=REJECT_CODES,
    levels=None,
    write_instant=to_ms,
    read_instant=read_ms,
    write_date=date_to_ms,
    read_date=read_date,
    write_minute=minute_to_ms,
    read_minute=read_minute,
    write_number=int,
    write_extra=dict,
    read_extra=JsonObject.passthrough,
    face_key=_face_key,
    read_certificate_type=read_certificate_type,
    null=True,
)
"""Every translation of the dialect, both ways (``adapters.translation``)."""

application_form: Final = SHANGHAI.application_form
"""A ``POST /v1/cases`` body as the citizen's form (``POST …/applications``)."""


# --- errors ---------------------------------------------------------------------------------

_FIELD_NAMES: Final = (
    (re.compile(r"\bmatter_code\b"), "matterCode"),
    (re.compile(r"\bhandler\b"), "handleAreaCode"),
    (re.compile(r"\bmode\b"), "handleMode"),
    (re.compile(r"\bcode_type\b"), "certTypeCode"),
    (re.compile(r"(?<=applicant\.)code\b"), "certNo"),
    (re.compile(r"(?<=\]\.)name\b"), "materialName"),
    (re.compile(r"\bsha256\b"), "fileHash"),
    (re.compile(r"\bcertificate_id\b"), "licenseId"),
    (re.compile(r"\bcase_id\b"), "caseId"),
    (re.compile(r"\bsequence\b"), "seqNo"),
    (re.compile(r"\baccepting\b"), "acceptAreaCode"),
    (re.compile(r"\breference\b"), "applyNo"),
)


def dialect_field(field: str) -> str:
    """The dialect's path of a field the engine names in its neutral form."""
    return rename(field, _FIELD_NAMES)


def error_body(code: str, detail: str, *, field: str = "", status: int = 400) -> dict[str, Any]:
    return {
        "errorCode": ERROR_CODES.get(code, status * 100 + 99),
        "errorType": code,
        "errorMsg": detail,
        "errorField": field,
    }


def read_error(data: bytes, status: int) -> DialectError:
    """The platform's refusal as a ``DialectError`` (a generic one if it is not in dialect)."""

    def read() -> tuple[str, str, str]:
        fields = JsonObject(decode_json_object(data, what="error reply"))
        code = fields.text("errorType", max_length=64)
        detail = fields.text("errorMsg")
        return code, detail, str(fields.raw("errorField") or "")

    return refusal(status, read)

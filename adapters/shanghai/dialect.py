"""The Shanghai dialect (一网通办): code tables and translations, both ways, without I/O.

The simulated platform decodes requests and encodes replies with these functions; the
adapter encodes requests and decodes replies with the same ones, so the two sides cannot
drift apart. Conventions of the dialect (README.md has the integrator's view):

1. JSON, field names in camelCase, UTF-8.
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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final, TypeVar

from adapters.strict_json import JsonObject, decode_json_object
from node.cases.catalog import MODES
from node.certificates.model import CHINA_STANDARD_TIME, TYPES, FieldSpec
from node.certificates.revocation import REASONS
from node.platform.adapter import (
    Application,
    CaseNotice,
    DialectError,
    InboundCase,
    PlatformEvent,
)

K = TypeVar("K")
V = TypeVar("V")

PROVINCE: Final = "shanghai"

STATUS_CODES: Final[Mapping[int, str]] = {
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
ACTION_CODES: Final[Mapping[int, str]] = {
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
ROLE_CODES: Final[Mapping[int, str]] = {1: "accepting", 2: "handling"}
MODE_CODES: Final[Mapping[int, str]] = dict(enumerate(MODES, start=1))
AREA_CODES: Final[Mapping[str, str]] = {
    "310000": "shanghai",
    "320000": "jiangsu",
    "330000": "zhejiang",
    "340000": "anhui",
}
RESULT_TYPES: Final[Mapping[int, str]] = {1: "document", 2: "certificate"}
MATERIAL_TYPES: Final[Mapping[int, str]] = {1: "upload", 2: "certificate"}
LICENSE_STATUS_CODES: Final[Mapping[int, str]] = {
    1: "valid",
    2: "suspended",
    3: "revoked",
    4: "expired",
}
REASON_CODES: Final[Mapping[int, str]] = dict(enumerate(REASONS, start=1))
"""Why a licence is revoked or suspended: 1 superseded … 7 under_review (``REASONS`` order)."""
SEX_CODES: Final[Mapping[int, str]] = {1: "male", 2: "female"}
"""GB/T 2261.1."""
LICENSE_TYPE_CODES: Final[Mapping[str, str]] = {
    spec.type_code: name for name, spec in TYPES.items()
}
"""The national type code (21 characters) of each certificate type."""

ERROR_CODES: Final[Mapping[str, int]] = {
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


def _invert(table: Mapping[K, V]) -> dict[V, K]:
    return {value: key for key, value in table.items()}


_STATUS_OF: Final = _invert(STATUS_CODES)
_ACTION_OF: Final = _invert(ACTION_CODES)
_ROLE_OF: Final = _invert(ROLE_CODES)
_MODE_OF: Final = _invert(MODE_CODES)
_AREA_OF: Final = _invert(AREA_CODES)
_RESULT_OF: Final = _invert(RESULT_TYPES)
_MATERIAL_OF: Final = _invert(MATERIAL_TYPES)
_LICENSE_STATUS_OF: Final = _invert(LICENSE_STATUS_CODES)
_SEX_OF: Final = _invert(SEX_CODES)
_REASON_OF: Final = _invert(REASON_CODES)


def status_code(status: str) -> int:
    """The dialect's code of a canonical case status."""
    return _STATUS_OF[status]


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


def read_optional_ms(fields: JsonObject, name: str) -> float | None:
    if not fields.has(name):
        fields.raw(name)
        return None
    return read_ms(fields, name)


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


# --- applications ---------------------------------------------------------------------------


def application_form(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``POST /v1/cases`` body as the citizen's form: what ``POST …/applications`` takes."""
    return {
        "matterCode": body["matter_code"],
        "handleAreaCode": _AREA_OF[body["handler"]],
        "handleMode": _MODE_OF[body["mode"]],
        "applicant": _party_to_dialect(body["applicant"]),
        "materials": [_material_to_dialect(material) for material in body["materials"]],
    }


def read_application_form(fields: JsonObject) -> dict[str, Any]:
    """The ``POST /v1/cases`` body of a citizen's form; ``finish()`` is the caller's."""
    body = {
        "matter_code": fields.text("matterCode", max_length=64),
        "handler": fields.code("handleAreaCode", AREA_CODES),
        "mode": fields.code("handleMode", MODE_CODES),
        "applicant": _read_party(fields.obj("applicant")),
        "materials": [_read_material(item) for item in fields.objects("materials", max_items=50)],
    }
    return body


def application_record(
    reference: str,
    body: Mapping[str, Any],
    submitted_at: float,
    case_id: str | None,
    acknowledged_at: float | None,
) -> dict[str, Any]:
    """One record of ``GET …/applications``."""
    return {
        "applyNo": reference,
        "applyTime": to_ms(submitted_at),
        **application_form(body),
        "caseId": case_id,
        "ackTime": None if acknowledged_at is None else to_ms(acknowledged_at),
    }


def read_application_record(record: object) -> Application:
    fields = JsonObject(record)
    reference = fields.text("applyNo", max_length=64)
    read_ms(fields, "applyTime")
    body = read_application_form(fields)
    fields.optional_text("caseId", max_length=128)
    read_optional_ms(fields, "ackTime")
    fields.finish()
    return Application(reference=reference, body=body)


def _party_to_dialect(party: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": party["name"], "certTypeCode": party["code_type"], "certNo": party["code"]}


def _read_party(fields: JsonObject) -> dict[str, str]:
    party = {
        "name": fields.text("name", max_length=100),
        "code_type": fields.code("certTypeCode", {"111": "111", "001": "001"}),
        "code": fields.text("certNo", max_length=18),
    }
    fields.finish()
    return party


def _material_to_dialect(material: Mapping[str, Any]) -> dict[str, Any]:
    if "certificate_id" in material:
        return {"materialName": material["name"], "licenseId": material["certificate_id"]}
    return {"materialName": material["name"], "fileHash": material["sha256"]}


def _read_material(fields: JsonObject) -> dict[str, str]:
    name = fields.text("materialName", max_length=200)
    license_id = fields.optional_text("licenseId", max_length=128)
    file_hash = fields.optional_text("fileHash", max_length=64)
    fields.finish()
    if (license_id is None) == (file_hash is None):
        raise DialectError(
            "missing_field" if license_id is None else "invalid_field",
            "give exactly one of fileHash and licenseId",
            field=fields.path("fileHash"),
        )
    if license_id is not None:
        return {"name": name, "certificate_id": license_id}
    assert file_hash is not None
    return {"name": name, "sha256": file_hash}


# --- events (the platform's people acted) ---------------------------------------------------


def event_record(
    event_id: str, case_id: str, body: Mapping[str, Any], created: float
) -> dict[str, Any]:
    """One record of ``GET …/events`` from a ``POST /v1/cases/{id}/events`` body."""
    record: dict[str, Any] = {
        "eventId": event_id,
        "caseId": case_id,
        "actionCode": _ACTION_OF[body["action"]],
        "eventTime": to_ms(created),
    }
    if body.get("reason"):
        record["opinion"] = body["reason"]
    if body.get("result") is not None:
        record["result"] = _result_to_dialect(body["result"])
    if "level" in body:
        evaluation = {"level": body["level"]}
        if body.get("comment"):
            evaluation["comment"] = body["comment"]
        record["evaluation"] = evaluation
    return record


def read_event_record(record: object) -> PlatformEvent:
    fields = JsonObject(record)
    event_id = fields.text("eventId", max_length=200)
    case_id = fields.text("caseId", max_length=128)
    body: dict[str, Any] = {"action": fields.code("actionCode", ACTION_CODES)}
    read_ms(fields, "eventTime")
    opinion = fields.optional_text("opinion")
    if opinion is not None:
        body["reason"] = opinion
    result = fields.optional_obj("result")
    if result is not None:
        body["result"] = _read_result(result)
    evaluation = fields.optional_obj("evaluation")
    if evaluation is not None:
        body.update(_read_evaluation(evaluation))
    fields.finish()
    return PlatformEvent(event_id=event_id, case_id=case_id, body=body)


def _result_to_dialect(result: Mapping[str, Any]) -> dict[str, Any]:
    if result["kind"] == "certificate":
        return {"resultType": _RESULT_OF["certificate"], "licenseId": result["certificate_id"]}
    return {"resultType": _RESULT_OF["document"], "docHash": result["document_sha256"]}


def _read_result(fields: JsonObject) -> dict[str, str]:
    kind = fields.code("resultType", RESULT_TYPES)
    if kind == "certificate":
        result = {"kind": kind, "certificate_id": fields.text("licenseId", max_length=128)}
    else:
        result = {"kind": kind, "document_sha256": fields.text("docHash", max_length=64)}
    fields.finish()
    return result


def _evaluation_to_dialect(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    shape: dict[str, Any] = {"level": evaluation["level"]}
    if evaluation.get("comment"):
        shape["comment"] = evaluation["comment"]
    return shape


def _read_evaluation(fields: JsonObject) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"level": fields.integer("level")}
    comment = fields.optional_text("comment", max_length=500)
    if comment is not None:
        evaluation["comment"] = comment
    fields.finish()
    return evaluation


# --- inbound cases and notices (the node delivers) ------------------------------------------


def case_to_dialect(case: InboundCase) -> dict[str, Any]:
    return {
        "caseId": case.case_id,
        "acceptAreaCode": _AREA_OF[case.accepting],
        "matterCode": case.matter_code,
        "handleMode": _MODE_OF[case.mode],
        "applicant": _party_to_dialect(case.applicant),
        "materials": [_material_to_dialect(material) for material in case.materials],
        "submitTime": to_ms(case.submitted_at),
    }


def read_case(fields: JsonObject) -> InboundCase:
    case = InboundCase(
        case_id=fields.text("caseId", max_length=128),
        accepting=fields.code("acceptAreaCode", AREA_CODES),
        matter_code=fields.text("matterCode", max_length=64),
        mode=fields.code("handleMode", MODE_CODES),
        applicant=_read_party(fields.obj("applicant")),
        materials=[_read_material(item) for item in fields.objects("materials", max_items=50)],
        submitted_at=read_ms(fields, "submitTime"),
    )
    fields.finish()
    return case


def notice_to_dialect(notice: CaseNotice) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "caseId": notice.case_id,
        "seqNo": notice.sequence,
        "actionCode": _ACTION_OF[notice.action],
        "actorRole": _ROLE_OF[notice.by],
        "caseStatus": _STATUS_OF[notice.status],
        "noticeTime": to_ms(notice.at),
    }
    if notice.reason:
        shape["opinion"] = notice.reason
    if notice.result is not None:
        shape["result"] = _result_to_dialect(notice.result)
    if notice.evaluation is not None:
        shape["evaluation"] = _evaluation_to_dialect(notice.evaluation)
    if notice.due_at is not None:
        shape["dueTime"] = to_ms(notice.due_at)
    if notice.extra:
        shape["extra"] = dict(notice.extra)
    return shape


def read_notice(fields: JsonObject) -> CaseNotice:
    case_id = fields.text("caseId", max_length=128)
    sequence = fields.integer("seqNo")
    if sequence < 1:
        raise DialectError("invalid_field", "must be 1 or more", field=fields.path("seqNo"))
    action = fields.code("actionCode", ACTION_CODES)
    by = fields.code("actorRole", ROLE_CODES)
    status = fields.code("caseStatus", STATUS_CODES, error="unknown_status")
    at = read_ms(fields, "noticeTime")
    reason = fields.optional_text("opinion") or ""
    result_fields = fields.optional_obj("result")
    evaluation_fields = fields.optional_obj("evaluation")
    due_at = read_optional_ms(fields, "dueTime")
    extra = fields.raw("extra")
    if extra is not None and not isinstance(extra, dict):
        raise DialectError("invalid_field", "must be a JSON object", field=fields.path("extra"))
    fields.finish()
    return CaseNotice(
        case_id=case_id,
        sequence=sequence,
        action=action,
        by=by,
        status=status,
        at=at,
        reason=reason,
        result=None if result_fields is None else _read_result(result_fields),
        evaluation=None if evaluation_fields is None else _read_evaluation(evaluation_fields),
        due_at=due_at,
        extra=extra or {},
    )


# --- certificates (电子证照, "license" in the dialect) ----------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def certificate_to_dialect(data: Mapping[str, Any]) -> dict[str, Any]:
    """A certificate in ``to_json`` form as ``GET /api/v1/licenses/{id}`` answers it."""
    spec = TYPES[data["type"]]
    surface = {
        _camel(name): _face_to_dialect(spec.field_spec(name), value)
        for name, value in data["fields"].items()
    }
    until = data.get("valid_until")
    return {
        "licenseId": data["certificate_id"],
        "licenseTypeCode": spec.type_code,
        "issueOrgName": data["issuing_authority"],
        "issueOrgCode": data["issuing_authority_code"],
        "holderName": data["holder_name"],
        "holderCertType": data["holder_code_type"],
        "holderCertNo": data["holder_code"],
        "issueDate": date_to_ms(data["issued_on"]),
        "validFrom": date_to_ms(data["valid_from"]),
        "validTo": None if until is None else date_to_ms(until),
        "licenseStatus": _LICENSE_STATUS_OF[data["status"]],
        "surface": surface,
    }


def _face_to_dialect(spec: FieldSpec | None, value: str) -> Any:
    kind = spec.kind if spec is not None else "text"
    if kind == "date":
        return date_to_ms(value)
    if kind == "datetime":
        return minute_to_ms(value)
    if kind == "sex":
        return _SEX_OF[value]
    return value


def read_certificate(fields: JsonObject) -> dict[str, Any]:
    """The ``to_json`` form of a licence (still to be checked by ``parse_certificate``)."""
    certificate_id = fields.text("licenseId", max_length=128)
    certificate_type = fields.code("licenseTypeCode", LICENSE_TYPE_CODES)
    spec = TYPES[certificate_type]  # type: ignore[index]  # the table holds only type names
    data: dict[str, Any] = {
        "certificate_id": certificate_id,
        "type": certificate_type,
        "issuing_authority": fields.text("issueOrgName", max_length=100),
        "issuing_authority_code": fields.text("issueOrgCode", max_length=18),
        "holder_name": fields.text("holderName", max_length=100),
        "holder_code_type": fields.code("holderCertType", {"111": "111", "001": "001"}),
        "holder_code": fields.text("holderCertNo", max_length=18),
        "issued_on": read_date(fields, "issueDate"),
        "valid_from": read_date(fields, "validFrom"),
        "valid_until": read_date(fields, "validTo") if fields.has("validTo") else None,
        "status": fields.code("licenseStatus", LICENSE_STATUS_CODES, error="unknown_status"),
    }
    fields.raw("validTo")
    surface = fields.obj("surface")
    face: dict[str, str] = {}
    for field_spec in spec.fields:
        name = _camel(field_spec.name)
        if not surface.has(name):
            surface.raw(name)
            continue
        if field_spec.kind == "date":
            face[field_spec.name] = read_date(surface, name)
        elif field_spec.kind == "datetime":
            face[field_spec.name] = read_minute(surface, name)
        elif field_spec.kind == "sex":
            face[field_spec.name] = surface.code(name, SEX_CODES)
        else:
            face[field_spec.name] = surface.text(name, max_length=field_spec.max_length)
    surface.finish()
    fields.finish()
    data["fields"] = face
    return data


def revocation_record(revocation: Mapping[str, Any]) -> dict[str, Any]:
    """A revoked or suspended licence as ``GET /api/v1/licenseRevocations`` lists it."""
    return {
        "licenseId": revocation["certificate_id"],
        "licenseStatus": _LICENSE_STATUS_OF[revocation["status"]],
        "statusTime": to_ms(revocation["since"]),
        "reasonCode": _REASON_OF[revocation["reason"]],
    }


def read_revocation(fields: JsonObject) -> dict[str, Any]:
    """``{"certificate_id", "status", "since" (epoch seconds), "reason"}`` of a listed licence."""
    certificate_id = fields.text("licenseId", max_length=128)
    status = fields.code("licenseStatus", LICENSE_STATUS_CODES, error="unknown_status")
    if status not in ("revoked", "suspended"):
        raise DialectError(
            "unknown_status",
            "a listed licence is revoked (3) or suspended (2)",
            field=fields.path("licenseStatus"),
        )
    revocation = {
        "certificate_id": certificate_id,
        "status": status,
        "since": read_ms(fields, "statusTime"),
        "reason": fields.code("reasonCode", REASON_CODES),
    }
    fields.finish()
    return revocation


# --- matters --------------------------------------------------------------------------------


def matter_to_dialect(matter: Mapping[str, Any]) -> dict[str, Any]:
    """A matter in the catalog's JSON form as ``GET …/matters`` lists it."""
    return {
        "matterCode": matter["code"],
        "matterName": matter["name"],
        "matterNameEn": matter["name_en"],
        "handleAreaCode": _AREA_OF[matter["handler"]],
        "deptName": matter["department"],
        "handleModes": [_MODE_OF[mode] for mode in matter["modes"]],
        "materials": [
            {
                "materialName": material["name"],
                "materialType": _MATERIAL_OF[material["kind"]],
                **(
                    {"licenseTypeCode": TYPES[material["certificate_type"]].type_code}
                    if material.get("certificate_type")
                    else {}
                ),
            }
            for material in matter["materials"]
        ],
        "promiseDays": matter["promised_days"],
    }


def read_matter(fields: JsonObject) -> dict[str, Any]:
    """The catalog's JSON form of a listed matter (still to be checked by ``parse_catalog``)."""
    modes_value = fields.raw("handleModes")
    if not isinstance(modes_value, list) or not modes_value:
        raise DialectError(
            "invalid_field",
            "must be a non-empty list of mode codes",
            field=fields.path("handleModes"),
        )
    modes = []
    for index, code in enumerate(modes_value):
        if type(code) is not int or code not in MODE_CODES:
            raise DialectError(
                "unknown_code",
                f"is not one of the codes {', '.join(map(str, MODE_CODES))}",
                field=f"{fields.path('handleModes')}[{index}]",
            )
        modes.append(MODE_CODES[code])
    matter = {
        "code": fields.text("matterCode", max_length=64),
        "name": fields.text("matterName", max_length=200),
        "name_en": fields.text("matterNameEn", max_length=200),
        "handler": fields.code("handleAreaCode", AREA_CODES),
        "department": fields.text("deptName", max_length=200),
        "modes": modes,
        "materials": [_read_matter_material(item) for item in fields.objects("materials")],
        "promised_days": fields.integer("promiseDays"),
    }
    fields.finish()
    return matter


def _read_matter_material(fields: JsonObject) -> dict[str, Any]:
    material: dict[str, Any] = {
        "name": fields.text("materialName", max_length=200),
        "kind": fields.code("materialType", MATERIAL_TYPES),
    }
    if material["kind"] == "certificate":
        material["certificate_type"] = fields.code("licenseTypeCode", LICENSE_TYPE_CODES)
    fields.finish()
    return material


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
    for pattern, name in _FIELD_NAMES:
        field = pattern.sub(name, field)
    return field


def error_body(code: str, detail: str, *, field: str = "", status: int = 400) -> dict[str, Any]:
    return {
        "errorCode": ERROR_CODES.get(code, status * 100 + 99),
        "errorType": code,
        "errorMsg": detail,
        "errorField": field,
    }


def read_error(data: bytes, status: int) -> DialectError:
    """The platform's refusal as a ``DialectError`` (a generic one if it is not in dialect)."""
    try:
        fields = JsonObject(decode_json_object(data, what="error reply"))
        code = fields.text("errorType", max_length=64)
        detail = fields.text("errorMsg")
        field = fields.raw("errorField")
    except DialectError:
        return DialectError(f"http_{status}", f"the platform refused the request with {status}")
    return DialectError(
        code, f"the platform refused it ({status}): {detail}", field=str(field or "")
    )

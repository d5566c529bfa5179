"""The Zhejiang dialect (浙里办 open platform): vocabularies and translations, both ways,
without I/O.

The simulated platform decodes requests and encodes replies with these functions; the
adapter encodes requests and decodes replies with the same ones, so the two sides cannot
drift apart. Request signing is ``adapters.zhejiang.signing``. Conventions of the dialect
(README.md has the integrator's view):

1. JSON, field names in snake_case, UTF-8. Every answer is the envelope
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

PROVINCE: Final = "zhejiang"
SUCCESS: Final = "0"

CASE_STATUSES: Final[Mapping[str, str]] = {
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
"""``case_status`` word → the federation's case status."""
ACTION_TYPES: Final[Mapping[str, str]] = {
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
"""``action_type`` word → the federation's action."""
ACTOR_SIDES: Final[Mapping[str, str]] = {
    "receiving_place": "accepting",
    "handling_place": "handling",
}
"""收件地 and 办理地."""
HANDLE_MODES: Final[Mapping[str, str]] = dict(
    zip(("full_online", "proxy_acceptance", "joint_handling"), MODES, strict=True)
)
"""全程网办, 异地代收代办, 多地联办."""
REGION_CODES: Final[Mapping[str, str]] = {
    "310000": "shanghai",
    "320000": "jiangsu",
    "330000": "zhejiang",
    "340000": "anhui",
}
ID_TYPES: Final[Mapping[str, str]] = {"resident_id": "111", "uscc": "001"}
"""Resident ID number (GB 11643) and unified social credit code (GB 32100)."""
RESULT_TYPES: Final[Mapping[str, str]] = {"document": "document", "license": "certificate"}
MATERIAL_TYPES: Final[Mapping[str, str]] = {"upload": "upload", "license": "certificate"}
LICENSE_STATUSES: Final[Mapping[str, str]] = {
    "effective": "valid",
    "suspended": "suspended",
    "revoked": "revoked",
    "expired": "expired",
}
REVOCATION_REASONS: Final[Mapping[str, str]] = {reason: reason for reason in REASONS}
"""The federation's own reason names (``superseded`` … ``under_review``)."""
SEXES: Final[Mapping[str, str]] = {"male": "male", "female": "female"}
LICENSE_TYPE_CODES: Final[Mapping[str, str]] = {
    spec.type_code: name for name, spec in TYPES.items()
}
"""The national type code (21 characters) of each certificate type."""

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


def _invert(table: Mapping[K, V]) -> dict[V, K]:
    return {value: key for key, value in table.items()}


_STATUS_OF: Final = _invert(CASE_STATUSES)
_ACTION_OF: Final = _invert(ACTION_TYPES)
_SIDE_OF: Final = _invert(ACTOR_SIDES)
_MODE_OF: Final = _invert(HANDLE_MODES)
_REGION_OF: Final = _invert(REGION_CODES)
_ID_TYPE_OF: Final = _invert(ID_TYPES)
_RESULT_OF: Final = _invert(RESULT_TYPES)
_MATERIAL_OF: Final = _invert(MATERIAL_TYPES)
_LICENSE_STATUS_OF: Final = _invert(LICENSE_STATUSES)


def status_word(status: str) -> str:
    """The dialect's word for a federation case status."""
    return _STATUS_OF[status]


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


def read_optional_instant(fields: JsonObject, name: str) -> float | None:
    if not fields.has(name):
        fields.raw(name)
        return None
    return read_instant(fields, name)


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


_ERROR_NAMES: Final = _invert(ERROR_CODES)


# --- applications ---------------------------------------------------------------------------


def application_form(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``POST /v1/cases`` body as the citizen's form: what ``POST …/applications`` takes."""
    return {
        "matter_code": body["matter_code"],
        "handle_region_code": _REGION_OF[body["handler"]],
        "handle_mode": _MODE_OF[body["mode"]],
        "applicant": _party_to_dialect(body["applicant"]),
        "materials": [_material_to_dialect(material) for material in body["materials"]],
    }


def read_application_form(fields: JsonObject) -> dict[str, Any]:
    """The ``POST /v1/cases`` body of a citizen's form; ``finish()`` is the caller's."""
    return {
        "matter_code": fields.text("matter_code", max_length=64),
        "handler": fields.code("handle_region_code", REGION_CODES),
        "mode": fields.code("handle_mode", HANDLE_MODES),
        "applicant": _read_party(fields.obj("applicant")),
        "materials": [_read_material(item) for item in fields.objects("materials", max_items=50)],
    }


def application_record(
    reference: str,
    body: Mapping[str, Any],
    submitted_at: float,
    case_id: str | None,
    acknowledged_at: float | None,
) -> dict[str, Any]:
    """One item of ``GET …/applications``."""
    return {
        "apply_no": reference,
        "apply_time": to_instant(submitted_at),
        **application_form(body),
        "case_id": case_id,
        "ack_time": None if acknowledged_at is None else to_instant(acknowledged_at),
    }


def read_application_record(record: object) -> Application:
    fields = JsonObject(record)
    reference = fields.text("apply_no", max_length=64)
    read_instant(fields, "apply_time")
    body = read_application_form(fields)
    fields.optional_text("case_id", max_length=128)
    read_optional_instant(fields, "ack_time")
    fields.finish()
    return Application(reference=reference, body=body)


def _party_to_dialect(party: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": party["name"],
        "id_type": _ID_TYPE_OF[party["code_type"]],
        "id_number": party["code"],
    }


def _read_party(fields: JsonObject) -> dict[str, str]:
    party = {
        "name": fields.text("name", max_length=100),
        "code_type": fields.code("id_type", ID_TYPES),
        "code": fields.text("id_number", max_length=18),
    }
    fields.finish()
    return party


def _material_to_dialect(material: Mapping[str, Any]) -> dict[str, Any]:
    if "certificate_id" in material:
        return {"material_name": material["name"], "license_id": material["certificate_id"]}
    return {"material_name": material["name"], "file_sha256": material["sha256"]}


def _read_material(fields: JsonObject) -> dict[str, str]:
    name = fields.text("material_name", max_length=200)
    license_id = fields.optional_text("license_id", max_length=128)
    file_sha256 = fields.optional_text("file_sha256", max_length=64)
    fields.finish()
    if license_id is not None and file_sha256 is None:
        return {"name": name, "certificate_id": license_id}
    if file_sha256 is not None and license_id is None:
        return {"name": name, "sha256": file_sha256}
    raise DialectError(
        "missing_field" if license_id is None else "invalid_field",
        "give exactly one of file_sha256 and license_id",
        field=fields.path("file_sha256"),
    )


# --- events (the platform's people acted) ---------------------------------------------------


def event_record(
    event_id: str, case_id: str, body: Mapping[str, Any], created: float
) -> dict[str, Any]:
    """One item of ``GET …/events`` from a ``POST /v1/cases/{id}/events`` body."""
    record: dict[str, Any] = {
        "event_id": event_id,
        "case_id": case_id,
        "action_type": _ACTION_OF[body["action"]],
        "event_time": to_instant(created),
    }
    if body.get("reason"):
        record["opinion"] = body["reason"]
    if body.get("result") is not None:
        record["result"] = _result_to_dialect(body["result"])
    if "level" in body:
        record["evaluation"] = _evaluation_to_dialect(body)
    return record


def read_event_record(record: object) -> PlatformEvent:
    fields = JsonObject(record)
    event_id = fields.text("event_id", max_length=200)
    case_id = fields.text("case_id", max_length=128)
    body: dict[str, Any] = {"action": fields.code("action_type", ACTION_TYPES)}
    read_instant(fields, "event_time")
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
        return {"result_type": "license", "license_id": result["certificate_id"]}
    return {"result_type": "document", "doc_sha256": result["document_sha256"]}


def _read_result(fields: JsonObject) -> dict[str, str]:
    kind = fields.code("result_type", RESULT_TYPES)
    if kind == "certificate":
        result = {"kind": kind, "certificate_id": fields.text("license_id", max_length=128)}
    else:
        result = {"kind": kind, "document_sha256": fields.text("doc_sha256", max_length=64)}
    fields.finish()
    return result


def _evaluation_to_dialect(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    shape: dict[str, Any] = {"satisfaction": evaluation["level"]}
    if evaluation.get("comment"):
        shape["comment"] = evaluation["comment"]
    return shape


def _read_evaluation(fields: JsonObject) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"level": fields.integer("satisfaction")}
    comment = fields.optional_text("comment", max_length=500)
    if comment is not None:
        evaluation["comment"] = comment
    fields.finish()
    return evaluation


# --- inbound cases and notices (the node delivers) ------------------------------------------


def case_to_dialect(case: InboundCase) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "accept_region_code": _REGION_OF[case.accepting],
        "matter_code": case.matter_code,
        "handle_mode": _MODE_OF[case.mode],
        "applicant": _party_to_dialect(case.applicant),
        "materials": [_material_to_dialect(material) for material in case.materials],
        "submit_time": to_instant(case.submitted_at),
    }


def read_case(fields: JsonObject) -> InboundCase:
    case = InboundCase(
        case_id=fields.text("case_id", max_length=128),
        accepting=fields.code("accept_region_code", REGION_CODES),
        matter_code=fields.text("matter_code", max_length=64),
        mode=fields.code("handle_mode", HANDLE_MODES),
        applicant=_read_party(fields.obj("applicant")),
        materials=[_read_material(item) for item in fields.objects("materials", max_items=50)],
        submitted_at=read_instant(fields, "submit_time"),
    )
    fields.finish()
    return case


def notice_to_dialect(notice: CaseNotice) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "case_id": notice.case_id,
        "seq_no": notice.sequence,
        "action_type": _ACTION_OF[notice.action],
        "actor_side": _SIDE_OF[notice.by],
        "case_status": _STATUS_OF[notice.status],
        "notice_time": to_instant(notice.at),
    }
    if notice.reason:
        shape["opinion"] = notice.reason
    if notice.result is not None:
        shape["result"] = _result_to_dialect(notice.result)
    if notice.evaluation is not None:
        shape["evaluation"] = _evaluation_to_dialect(notice.evaluation)
    if notice.due_at is not None:
        shape["due_time"] = to_instant(notice.due_at)
    if notice.extra:
        shape["extra"] = dict(notice.extra)
    return shape


def read_notice(fields: JsonObject) -> CaseNotice:
    case_id = fields.text("case_id", max_length=128)
    sequence = fields.integer("seq_no")
    if sequence < 1:
        raise DialectError("invalid_field", "must be 1 or more", field=fields.path("seq_no"))
    action = fields.code("action_type", ACTION_TYPES)
    by = fields.code("actor_side", ACTOR_SIDES)
    status = fields.code("case_status", CASE_STATUSES, error="unknown_status")
    at = read_instant(fields, "notice_time")
    reason = fields.optional_text("opinion") or ""
    result_fields = fields.optional_obj("result")
    evaluation_fields = fields.optional_obj("evaluation")
    due_at = read_optional_instant(fields, "due_time")
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


# --- licences (电子证照) ---------------------------------------------------------------------


def certificate_to_dialect(data: Mapping[str, Any]) -> dict[str, Any]:
    """A certificate in ``to_json`` form as ``GET /zlb/open/v2/licenses/{id}`` answers it."""
    spec = TYPES[data["type"]]
    surface = {
        name: _face_to_dialect(spec.field_spec(name), value)
        for name, value in data["fields"].items()
    }
    return {
        "license_id": data["certificate_id"],
        "license_type_code": spec.type_code,
        "issue_org_name": data["issuing_authority"],
        "issue_org_code": data["issuing_authority_code"],
        "holder_name": data["holder_name"],
        "holder_id_type": _ID_TYPE_OF[data["holder_code_type"]],
        "holder_id_number": data["holder_code"],
        "issue_date": data["issued_on"],
        "valid_from": data["valid_from"],
        "valid_to": data.get("valid_until"),
        "license_status": _LICENSE_STATUS_OF[data["status"]],
        "surface": surface,
    }


def _face_to_dialect(spec: FieldSpec | None, value: str) -> str:
    if spec is not None and spec.kind == "datetime":
        return minute_to_dialect(value)
    return value


def read_certificate(fields: JsonObject) -> dict[str, Any]:
    """The ``to_json`` form of a licence (still to be checked by ``parse_certificate``)."""
    certificate_id = fields.text("license_id", max_length=128)
    certificate_type = fields.code("license_type_code", LICENSE_TYPE_CODES)
    spec = TYPES[certificate_type]  # type: ignore[index]  # the table holds only type names
    data: dict[str, Any] = {
        "certificate_id": certificate_id,
        "type": certificate_type,
        "issuing_authority": fields.text("issue_org_name", max_length=100),
        "issuing_authority_code": fields.text("issue_org_code", max_length=18),
        "holder_name": fields.text("holder_name", max_length=100),
        "holder_code_type": fields.code("holder_id_type", ID_TYPES),
        "holder_code": fields.text("holder_id_number", max_length=18),
        "issued_on": read_date(fields, "issue_date"),
        "valid_from": read_date(fields, "valid_from"),
        "valid_until": read_date(fields, "valid_to") if fields.has("valid_to") else None,
        "status": fields.code("license_status", LICENSE_STATUSES, error="unknown_status"),
    }
    fields.raw("valid_to")
    surface = fields.obj("surface")
    face: dict[str, str] = {}
    for field_spec in spec.fields:
        name = field_spec.name
        if not surface.has(name):
            surface.raw(name)
            continue
        if field_spec.kind == "date":
            face[name] = read_date(surface, name)
        elif field_spec.kind == "datetime":
            face[name] = read_minute(surface, name)
        elif field_spec.kind == "sex":
            face[name] = surface.code(name, SEXES)
        else:
            face[name] = surface.text(name, max_length=field_spec.max_length)
    surface.finish()
    fields.finish()
    data["fields"] = face
    return data


def revocation_record(revocation: Mapping[str, Any]) -> dict[str, Any]:
    """A revoked or suspended licence as ``GET /zlb/open/v2/license_revocations`` lists it."""
    return {
        "license_id": revocation["certificate_id"],
        "license_status": _LICENSE_STATUS_OF[revocation["status"]],
        "status_time": to_instant(revocation["since"]),
        "reason": revocation["reason"],
    }


def read_revocation(record: object) -> dict[str, Any]:
    """``{"certificate_id", "status", "since" (epoch seconds), "reason"}`` of a listed licence."""
    fields = JsonObject(record)
    certificate_id = fields.text("license_id", max_length=128)
    status = fields.code("license_status", LICENSE_STATUSES, error="unknown_status")
    if status not in ("revoked", "suspended"):
        raise DialectError(
            "unknown_status",
            "a listed licence is revoked or suspended",
            field=fields.path("license_status"),
        )
    revocation = {
        "certificate_id": certificate_id,
        "status": status,
        "since": read_instant(fields, "status_time"),
        "reason": fields.code("reason", REVOCATION_REASONS),
    }
    fields.finish()
    return revocation


# --- matters --------------------------------------------------------------------------------


def matter_to_dialect(matter: Mapping[str, Any]) -> dict[str, Any]:
    """A matter in the catalog's JSON form as ``GET …/matters`` lists it."""
    return {
        "matter_code": matter["code"],
        "matter_name": matter["name"],
        "matter_name_en": matter["name_en"],
        "handle_region_code": _REGION_OF[matter["handler"]],
        "dept_name": matter["department"],
        "handle_modes": [_MODE_OF[mode] for mode in matter["modes"]],
        "materials": [
            {
                "material_name": material["name"],
                "material_type": _MATERIAL_OF[material["kind"]],
                **(
                    {"license_type_code": TYPES[material["certificate_type"]].type_code}
                    if material.get("certificate_type")
                    else {}
                ),
            }
            for material in matter["materials"]
        ],
        "promise_days": matter["promised_days"],
    }


def read_matter(record: object) -> dict[str, Any]:
    """The catalog's JSON form of a listed matter (still to be checked by ``parse_catalog``)."""
    fields = JsonObject(record)
    words = fields.raw("handle_modes")
    if not isinstance(words, list) or not words:
        raise DialectError(
            "invalid_field",
            "must be a non-empty list of mode words",
            field=fields.path("handle_modes"),
        )
    modes = []
    for index, word in enumerate(words):
        if not isinstance(word, str) or word not in HANDLE_MODES:
            raise DialectError(
                "unknown_code",
                f"is not one of the words {', '.join(HANDLE_MODES)}",
                field=f"{fields.path('handle_modes')}[{index}]",
            )
        modes.append(HANDLE_MODES[word])
    matter = {
        "code": fields.text("matter_code", max_length=64),
        "name": fields.text("matter_name", max_length=200),
        "name_en": fields.text("matter_name_en", max_length=200),
        "handler": fields.code("handle_region_code", REGION_CODES),
        "department": fields.text("dept_name", max_length=200),
        "modes": modes,
        "materials": [_read_matter_material(item) for item in fields.objects("materials")],
        "promised_days": fields.integer("promise_days"),
    }
    fields.finish()
    return matter


def _read_matter_material(fields: JsonObject) -> dict[str, Any]:
    material: dict[str, Any] = {
        "name": fields.text("material_name", max_length=200),
        "kind": fields.code("material_type", MATERIAL_TYPES),
    }
    if material["kind"] == "certificate":
        material["certificate_type"] = fields.code("license_type_code", LICENSE_TYPE_CODES)
    fields.finish()
    return material


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
    for pattern, name in _FIELD_NAMES:
        field = pattern.sub(name, field)
    return field

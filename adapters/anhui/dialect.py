"""The Anhui dialect (安徽政务服务网 / 皖事通): label tables and translations, both ways, no I/O.

The simulated platform decodes requests and encodes replies with these functions; the
adapter encodes requests and decodes replies with the same ones, so the two sides cannot
drift apart. Conventions of the dialect (README.md has the integrator's view):

1. Requests are forms (``adapters.anhui.form``: nested values as ``cl[0].mc`` keys, UTF-8);
   replies are JSON ``{"flag": true, "message", "result"}`` or ``{"flag": false, "code",
   "message", "field"}`` holding the same tree, every scalar as text.
2. Business keys are pinyin initials (``sqbh`` 申请编号, ``sxbm`` 事项编码, ``bjzt`` 办件状态);
   the envelope and paging keys are the web framework's English ones.
3. Statuses, actions, roles, provinces, modes, result and material kinds, evaluation levels,
   certificate statuses, revocation reasons, holder-code types and sexes are Chinese labels
   from the tables below (``已受理``, ``办结``, ``安徽省``). A case or certificate status
   outside its table is ``unknown_status``; any other unknown label ``unknown_label``.
4. An instant is Beijing local time ``yyyy-MM-dd HH:mm:ss`` with no offset (Asia/Shanghai
   has kept UTC+08:00 without daylight saving since 1991), between 2000 and 2100; it is
   written truncated to the whole second. Anything else (an ISO ``T``, an offset, a
   fraction, one-digit fields, epoch numbers, a day that does not exist) is ``bad_time``.
   Calendar dates are ``yyyy-MM-dd``; a long-term certificate's end date is ``长期``; a
   birth minute (出生时间) is local wall-clock ``yyyy-MM-dd HH:mm:00``, never converted.
5. Certificate face fields (照面信息) are keyed by the label printed on the certificate
   (``姓名``, ``公民身份号码``), as ``node.certificates.model.TYPES`` names them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final, TypeVar

from adapters.anhui.form import FormFields
from adapters.strict_json import decode_json_object
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

PROVINCE: Final = "anhui"

STATUS_LABELS: Final[Mapping[str, str]] = {
    "已提交": "submitted",
    "已送达": "delivered",
    "已受理": "accepted",
    "不予受理": "rejected",
    "补正告知": "supplement_requested",
    "已补正": "supplemented",
    "办结": "completed",
    "不予许可": "denied",
    "已评价": "evaluated",
    "已撤回": "withdrawn",
}
ACTION_LABELS: Final[Mapping[str, str]] = {
    "送达": "deliver",
    "受理": "accept",
    "不予受理": "reject",
    "补正": "request_supplement",
    "补齐": "supplement",
    "办结": "complete",
    "不予许可": "deny",
    "撤回": "withdraw",
    "评价": "evaluate",
}
ROLE_LABELS: Final[Mapping[str, str]] = {"收件地": "accepting", "办理地": "handling"}
PROVINCE_LABELS: Final[Mapping[str, str]] = {
    "上海市": "shanghai",
    "江苏省": "jiangsu",
    "浙江省": "zhejiang",
    "安徽省": "anhui",
}
MODE_LABELS: Final[Mapping[str, str]] = {mode: mode for mode in MODES}
"""全程网办, 异地代收代办, 多地联办: the node's own names are already the labels."""
CODE_TYPE_LABELS: Final[Mapping[str, str]] = {"居民身份证号码": "111", "统一社会信用代码": "001"}
RESULT_LABELS: Final[Mapping[str, str]] = {"文书": "document", "证照": "certificate"}
MATERIAL_LABELS: Final[Mapping[str, str]] = {"上传材料": "upload", "电子证照": "certificate"}
LEVEL_LABELS: Final[Mapping[str, int]] = {
    "非常满意": 5,
    "满意": 4,
    "基本满意": 3,
    "不满意": 2,
    "非常不满意": 1,
}
LICENSE_STATUS_LABELS: Final[Mapping[str, str]] = {
    "有效": "valid",
    "冻结": "suspended",
    "注销": "revoked",
    "过期": "expired",
}
REASON_LABELS: Final[Mapping[str, str]] = {
    "换发补发": "superseded",
    "遗失": "lost",
    "持证人申请注销": "holder_request",
    "依法撤销吊销": "withdrawn_by_authority",
    "持证人死亡": "holder_deceased",
    "主体注销": "entity_deregistered",
    "核查中": "under_review",
}
SEX_LABELS: Final[Mapping[str, str]] = {"男": "male", "女": "female"}
LICENSE_TYPE_CODES: Final[Mapping[str, str]] = {
    spec.type_code: name for name, spec in TYPES.items()
}
"""The national type code (21 characters) of each certificate type."""
LONG_TERM: Final = "长期"

if set(REASON_LABELS.values()) != set(REASONS):  # pragma: no cover - guards the two tables
    raise RuntimeError("REASON_LABELS must name every revocation reason")
for _spec in TYPES.values():  # pragma: no cover - face fields are keyed by their labels
    if len({field.label for field in _spec.fields}) != len(_spec.fields):
        raise RuntimeError(f"{_spec.name}: face field labels must be unique")

TIME_FORMAT: Final = "yyyy-MM-dd HH:mm:ss"
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=CHINA_STANDARD_TIME)
LATEST: Final = datetime(2100, 1, 1, tzinfo=CHINA_STANDARD_TIME)

_TIME: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _invert(table: Mapping[K, V]) -> dict[V, K]:
    return {value: key for key, value in table.items()}


_STATUS_OF: Final = _invert(STATUS_LABELS)
_ACTION_OF: Final = _invert(ACTION_LABELS)
_ROLE_OF: Final = _invert(ROLE_LABELS)
_PROVINCE_OF: Final = _invert(PROVINCE_LABELS)
_CODE_TYPE_OF: Final = _invert(CODE_TYPE_LABELS)
_RESULT_OF: Final = _invert(RESULT_LABELS)
_MATERIAL_OF: Final = _invert(MATERIAL_LABELS)
_LEVEL_OF: Final = _invert(LEVEL_LABELS)
_LICENSE_STATUS_OF: Final = _invert(LICENSE_STATUS_LABELS)
_REASON_OF: Final = _invert(REASON_LABELS)
_SEX_OF: Final = _invert(SEX_LABELS)


def status_label(status: str) -> str:
    """The dialect's label of a canonical case status."""
    return _STATUS_OF[status]


# --- times ----------------------------------------------------------------------------------


def format_time(seconds: float) -> str:
    """Epoch seconds as Beijing local time, truncated to the second (rule 4)."""
    moment = datetime.fromtimestamp(math.floor(seconds), CHINA_STANDARD_TIME)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str, *, field: str = "") -> float:
    """Beijing local time ``yyyy-MM-dd HH:mm:ss`` as epoch seconds (rule 4)."""
    moment = _local(text, field)
    if not EARLIEST <= moment < LATEST:
        raise DialectError("bad_time", "must be between 2000 and 2100", field=field)
    return moment.timestamp()


def _local(text: str, field: str) -> datetime:
    match = _TIME.fullmatch(text)
    if match is None:
        hint = " (no 'T', no offset, no fraction)" if "T" in text or "+" in text else ""
        raise DialectError(
            "bad_time", f"must be Beijing local time {TIME_FORMAT}{hint}", field=field
        )
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=CHINA_STANDARD_TIME)
    except ValueError:
        raise DialectError("bad_time", "is not a real date and time", field=field) from None


def read_time(fields: FormFields, name: str) -> float:
    return parse_time(fields.text(name, max_length=64), field=fields.path(name))


def read_optional_time(fields: FormFields, name: str) -> float | None:
    text = fields.optional_text(name, max_length=64)
    return None if text is None else parse_time(text, field=fields.path(name))


def read_date(fields: FormFields, name: str) -> str:
    """A calendar date ``yyyy-MM-dd`` (from 1900: birth dates), in ISO form."""
    text = fields.text(name, max_length=64)
    match = _DATE.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        year, month, day_of_month = map(int, match.groups())
        day = date(year, month, day_of_month)
    except ValueError:
        raise DialectError(
            "bad_time", "must be a real date yyyy-MM-dd", field=fields.path(name)
        ) from None
    if not 1900 <= day.year < 2100:
        raise DialectError("bad_time", "must be between 1900 and 2100", field=fields.path(name))
    return day.isoformat()


def minute_to_dialect(text: str) -> str:
    """A birth minute (``YYYY-MM-DDTHH:MM``) as local wall-clock ``yyyy-MM-dd HH:mm:00``."""
    return text.replace("T", " ") + ":00"


def read_minute(fields: FormFields, name: str) -> str:
    """A birth minute: wall-clock text with seconds ``00``, never converted (rule 4)."""
    text = fields.text(name, max_length=64)
    moment = _local(text, fields.path(name))
    if moment.second or not 1900 <= moment.year < 2100:
        raise DialectError(
            "bad_time",
            "must be a whole minute (seconds 00) between 1900 and 2100",
            field=fields.path(name),
        )
    return moment.strftime("%Y-%m-%dT%H:%M")


# --- applications ---------------------------------------------------------------------------


def application_form(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``POST /v1/cases`` body as the citizen's form (``POST …/sq/tj``)."""
    return {
        "sxbm": body["matter_code"],
        "bld": _PROVINCE_OF[body["handler"]],
        "blfs": body["mode"],
        "sqr": _party_to_dialect(body["applicant"]),
        "cl": [_material_to_dialect(material) for material in body["materials"]],
    }


def read_application_form(fields: FormFields) -> dict[str, Any]:
    """The ``POST /v1/cases`` body of a citizen's form; ``finish()`` is the caller's."""
    return {
        "matter_code": fields.text("sxbm", max_length=64),
        "handler": fields.label("bld", PROVINCE_LABELS),
        "mode": fields.label("blfs", MODE_LABELS),
        "applicant": _read_party(fields.obj("sqr")),
        "materials": [_read_material(item) for item in fields.objects("cl", max_items=50)],
    }


def application_record(
    reference: str,
    body: Mapping[str, Any],
    submitted_at: float,
    case_id: str | None,
    acknowledged_at: float | None,
) -> dict[str, Any]:
    """One row of ``GET …/sq/lb``."""
    record: dict[str, Any] = {
        "sqbh": reference,
        "sqsj": format_time(submitted_at),
        **application_form(body),
    }
    if case_id is not None:
        record["bjbh"] = case_id
    if acknowledged_at is not None:
        record["qrsj"] = format_time(acknowledged_at)
    return record


def read_application_record(record: object) -> Application:
    fields = FormFields(record)
    reference = fields.text("sqbh", max_length=64)
    read_time(fields, "sqsj")
    body = read_application_form(fields)
    fields.optional_text("bjbh", max_length=128)
    read_optional_time(fields, "qrsj")
    fields.finish()
    return Application(reference=reference, body=body)


def _party_to_dialect(party: Mapping[str, Any]) -> dict[str, str]:
    return {
        "xm": party["name"],
        "zjlx": _CODE_TYPE_OF[party["code_type"]],
        "zjhm": party["code"],
    }


def _read_party(fields: FormFields) -> dict[str, str]:
    party = {
        "name": fields.text("xm", max_length=100),
        "code_type": fields.label("zjlx", CODE_TYPE_LABELS),
        "code": fields.text("zjhm", max_length=18),
    }
    fields.finish()
    return party


def _material_to_dialect(material: Mapping[str, Any]) -> dict[str, str]:
    if "certificate_id" in material:
        return {"mc": material["name"], "zzbs": material["certificate_id"]}
    return {"mc": material["name"], "sha256": material["sha256"]}


def _read_material(fields: FormFields) -> dict[str, str]:
    name = fields.text("mc", max_length=200)
    certificate_id = fields.optional_text("zzbs", max_length=128)
    digest = fields.optional_text("sha256", max_length=64)
    fields.finish()
    if (certificate_id is None) == (digest is None):
        raise DialectError(
            "missing_field" if certificate_id is None else "invalid_field",
            "give exactly one of sha256 and zzbs",
            field=fields.path("sha256"),
        )
    if certificate_id is not None:
        return {"name": name, "certificate_id": certificate_id}
    assert digest is not None
    return {"name": name, "sha256": digest}


# --- events (the platform's people acted) ---------------------------------------------------


def event_record(
    event_id: str, case_id: str, body: Mapping[str, Any], created: float
) -> dict[str, Any]:
    """One row of ``GET …/bjdt/lb`` from a ``POST /v1/cases/{id}/events`` body."""
    record: dict[str, Any] = {
        "dtbh": event_id,
        "bjbh": case_id,
        "czlx": _ACTION_OF[body["action"]],
        "czsj": format_time(created),
    }
    if body.get("reason"):
        record["yj"] = body["reason"]
    if body.get("result") is not None:
        record["jg"] = _result_to_dialect(body["result"])
    if "level" in body:
        record["pj"] = _evaluation_to_dialect(body)
    return record


def read_event_record(record: object) -> PlatformEvent:
    fields = FormFields(record)
    event_id = fields.text("dtbh", max_length=200)
    case_id = fields.text("bjbh", max_length=128)
    body: dict[str, Any] = {"action": fields.label("czlx", ACTION_LABELS)}
    read_time(fields, "czsj")
    opinion = fields.optional_text("yj")
    if opinion is not None:
        body["reason"] = opinion
    result = fields.optional_obj("jg")
    if result is not None:
        body["result"] = _read_result(result)
    evaluation = fields.optional_obj("pj")
    if evaluation is not None:
        body.update(_read_evaluation(evaluation))
    fields.finish()
    return PlatformEvent(event_id=event_id, case_id=case_id, body=body)


def _result_to_dialect(result: Mapping[str, Any]) -> dict[str, str]:
    if result["kind"] == "certificate":
        return {"lx": _RESULT_OF["certificate"], "zzbs": result["certificate_id"]}
    return {"lx": _RESULT_OF["document"], "sha256": result["document_sha256"]}


def _read_result(fields: FormFields) -> dict[str, str]:
    kind = fields.label("lx", RESULT_LABELS)
    if kind == "certificate":
        result = {"kind": kind, "certificate_id": fields.text("zzbs", max_length=128)}
    else:
        result = {"kind": kind, "document_sha256": fields.text("sha256", max_length=64)}
    fields.finish()
    return result


def _evaluation_to_dialect(evaluation: Mapping[str, Any]) -> dict[str, str]:
    shape = {"dj": _LEVEL_OF[evaluation["level"]]}
    if evaluation.get("comment"):
        shape["nr"] = evaluation["comment"]
    return shape


def _read_evaluation(fields: FormFields) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"level": fields.label("dj", LEVEL_LABELS)}
    comment = fields.optional_text("nr", max_length=500)
    if comment is not None:
        evaluation["comment"] = comment
    fields.finish()
    return evaluation


# --- inbound cases and notices (the node delivers) ------------------------------------------


def case_to_dialect(case: InboundCase) -> dict[str, Any]:
    """An inbound case as the form of ``POST …/bj/js``."""
    return {
        "bjbh": case.case_id,
        "sjd": _PROVINCE_OF[case.accepting],
        "sxbm": case.matter_code,
        "blfs": case.mode,
        "sqr": _party_to_dialect(case.applicant),
        "cl": [_material_to_dialect(material) for material in case.materials],
        "tjsj": format_time(case.submitted_at),
    }


def read_case(fields: FormFields) -> InboundCase:
    case = InboundCase(
        case_id=fields.text("bjbh", max_length=128),
        accepting=fields.label("sjd", PROVINCE_LABELS),
        matter_code=fields.text("sxbm", max_length=64),
        mode=fields.label("blfs", MODE_LABELS),
        applicant=_read_party(fields.obj("sqr")),
        materials=[_read_material(item) for item in fields.objects("cl", max_items=50)],
        submitted_at=read_time(fields, "tjsj"),
    )
    fields.finish()
    return case


def notice_to_dialect(notice: CaseNotice) -> dict[str, Any]:
    """An applied update as the form of ``POST …/bj/ztgx`` (and a row of ``sq/xq``'s ``jd``)."""
    shape: dict[str, Any] = {
        "bjbh": notice.case_id,
        "xh": str(notice.sequence),
        "czlx": _ACTION_OF[notice.action],
        "czf": _ROLE_OF[notice.by],
        "bjzt": _STATUS_OF[notice.status],
        "czsj": format_time(notice.at),
    }
    if notice.reason:
        shape["yj"] = notice.reason
    if notice.result is not None:
        shape["jg"] = _result_to_dialect(notice.result)
    if notice.evaluation is not None:
        shape["pj"] = _evaluation_to_dialect(notice.evaluation)
    if notice.due_at is not None:
        shape["cnsj"] = format_time(notice.due_at)
    if notice.extra:
        shape["kz"] = json.dumps(dict(notice.extra), ensure_ascii=False, sort_keys=True)
    return shape


def read_notice(fields: FormFields) -> CaseNotice:
    case_id = fields.text("bjbh", max_length=128)
    sequence = fields.number("xh")
    if sequence < 1:
        raise DialectError("invalid_field", "must be 1 or more", field=fields.path("xh"))
    action = fields.label("czlx", ACTION_LABELS)
    by = fields.label("czf", ROLE_LABELS)
    status = fields.label("bjzt", STATUS_LABELS, error="unknown_status")
    at = read_time(fields, "czsj")
    reason = fields.optional_text("yj") or ""
    result_fields = fields.optional_obj("jg")
    evaluation_fields = fields.optional_obj("pj")
    due_at = read_optional_time(fields, "cnsj")
    extra_text = fields.optional_text("kz", max_length=20_000)
    extra: dict[str, Any] = {}
    if extra_text is not None:
        try:
            extra = decode_json_object(extra_text.encode(), what="kz value")
        except DialectError as error:
            raise DialectError(error.code, error.detail, field=fields.path("kz")) from None
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
        extra=extra,
    )


# --- certificates (电子证照) -----------------------------------------------------------------


def certificate_to_dialect(data: Mapping[str, Any]) -> dict[str, Any]:
    """A certificate in ``to_json`` form as ``GET /wst/api/dzzz/zz/xq`` answers it."""
    spec = TYPES[data["type"]]
    face = {
        field_spec.label: _face_to_dialect(field_spec, data["fields"][field_spec.name])
        for field_spec in spec.fields
        if field_spec.name in data["fields"]
    }
    until = data.get("valid_until")
    return {
        "zzbs": data["certificate_id"],
        "zzlxdm": spec.type_code,
        "zzlxmc": spec.chinese_name,
        "bfjg": data["issuing_authority"],
        "bfjgdm": data["issuing_authority_code"],
        "czzt": data["holder_name"],
        "czztdmlx": _CODE_TYPE_OF[data["holder_code_type"]],
        "czztdm": data["holder_code"],
        "bfrq": data["issued_on"],
        "yxqqsrq": data["valid_from"],
        "yxqjzrq": LONG_TERM if until is None else until,
        "zzzt": _LICENSE_STATUS_OF[data["status"]],
        "zmxx": face,
    }


def _face_to_dialect(spec: FieldSpec, value: str) -> str:
    if spec.kind == "datetime":
        return minute_to_dialect(value)
    if spec.kind == "sex":
        return _SEX_OF[value]
    return value


def read_certificate(fields: FormFields) -> dict[str, Any]:
    """The ``to_json`` form of a licence (still to be checked by ``parse_certificate``)."""
    certificate_id = fields.text("zzbs", max_length=128)
    type_code = fields.text("zzlxdm", max_length=21)
    certificate_type = LICENSE_TYPE_CODES.get(type_code)
    if certificate_type is None:
        raise DialectError(
            "unknown_label", "is not a known certificate type code", field=fields.path("zzlxdm")
        )
    spec = TYPES[certificate_type]  # type: ignore[index]  # the table holds only type names
    if fields.text("zzlxmc", max_length=50) != spec.chinese_name:
        raise DialectError(
            "invalid_field",
            f"must be {spec.chinese_name}, the name of type code zzlxdm",
            field=fields.path("zzlxmc"),
        )
    data: dict[str, Any] = {
        "certificate_id": certificate_id,
        "type": certificate_type,
        "issuing_authority": fields.text("bfjg", max_length=100),
        "issuing_authority_code": fields.text("bfjgdm", max_length=18),
        "holder_name": fields.text("czzt", max_length=100),
        "holder_code_type": fields.label("czztdmlx", CODE_TYPE_LABELS),
        "holder_code": fields.text("czztdm", max_length=18),
        "issued_on": read_date(fields, "bfrq"),
        "valid_from": read_date(fields, "yxqqsrq"),
        "valid_until": (
            None
            if fields.has("yxqjzrq") and fields.raw("yxqjzrq") == LONG_TERM
            else read_date(fields, "yxqjzrq")
        ),
        "status": fields.label("zzzt", LICENSE_STATUS_LABELS, error="unknown_status"),
    }
    face_fields = fields.obj("zmxx")
    face: dict[str, str] = {}
    for field_spec in spec.fields:
        label = field_spec.label
        if not face_fields.has(label):
            face_fields.raw(label)
            continue
        if field_spec.kind == "date":
            face[field_spec.name] = read_date(face_fields, label)
        elif field_spec.kind == "datetime":
            face[field_spec.name] = read_minute(face_fields, label)
        elif field_spec.kind == "sex":
            face[field_spec.name] = face_fields.label(label, SEX_LABELS)
        else:
            face[field_spec.name] = face_fields.text(label, max_length=field_spec.max_length)
    face_fields.finish()
    fields.finish()
    data["fields"] = face
    return data


def revocation_record(revocation: Mapping[str, Any]) -> dict[str, str]:
    """A revoked or suspended licence as ``GET /wst/api/dzzz/zz/zxlb`` lists it."""
    return {
        "zzbs": revocation["certificate_id"],
        "zzzt": _LICENSE_STATUS_OF[revocation["status"]],
        "ztsj": format_time(revocation["since"]),
        "yy": _REASON_OF[revocation["reason"]],
    }


def read_revocation(fields: FormFields) -> dict[str, Any]:
    """``{"certificate_id", "status", "since" (epoch seconds), "reason"}`` of a listed licence."""
    certificate_id = fields.text("zzbs", max_length=128)
    status = fields.label("zzzt", LICENSE_STATUS_LABELS, error="unknown_status")
    if status not in ("revoked", "suspended"):
        raise DialectError(
            "unknown_status",
            "a listed licence is 注销 (revoked) or 冻结 (suspended)",
            field=fields.path("zzzt"),
        )
    revocation = {
        "certificate_id": certificate_id,
        "status": status,
        "since": read_time(fields, "ztsj"),
        "reason": fields.label("yy", REASON_LABELS),
    }
    fields.finish()
    return revocation


# --- matters --------------------------------------------------------------------------------


def matter_to_dialect(matter: Mapping[str, Any]) -> dict[str, Any]:
    """A matter in the catalog's JSON form as ``GET …/sx/lb`` lists it."""
    return {
        "sxbm": matter["code"],
        "sxmc": matter["name"],
        "sxywmc": matter["name_en"],
        "bld": _PROVINCE_OF[matter["handler"]],
        "bmmc": matter["department"],
        "blfs": list(matter["modes"]),
        "cl": [
            {
                "mc": material["name"],
                "lx": _MATERIAL_OF[material["kind"]],
                **(
                    {"zzlxdm": TYPES[material["certificate_type"]].type_code}
                    if material.get("certificate_type")
                    else {}
                ),
            }
            for material in matter["materials"]
        ],
        "cnsx": str(matter["promised_days"]),
    }


def read_matter(fields: FormFields) -> dict[str, Any]:
    """The catalog's JSON form of a listed matter (still to be checked by ``parse_catalog``)."""
    modes = fields.texts("blfs", max_items=len(MODES))
    for index, mode in enumerate(modes):
        if mode not in MODE_LABELS:
            raise DialectError(
                "unknown_label",
                f"is not one of {'、'.join(MODE_LABELS)}",
                field=f"{fields.path('blfs')}[{index}]",
            )
    if not modes:
        raise DialectError("missing_field", "is required", field=fields.path("blfs"))
    matter = {
        "code": fields.text("sxbm", max_length=64),
        "name": fields.text("sxmc", max_length=200),
        "name_en": fields.text("sxywmc", max_length=200),
        "handler": fields.label("bld", PROVINCE_LABELS),
        "department": fields.text("bmmc", max_length=200),
        "modes": modes,
        "materials": [_read_matter_material(item) for item in fields.objects("cl")],
        "promised_days": fields.number("cnsx"),
    }
    fields.finish()
    return matter


def _read_matter_material(fields: FormFields) -> dict[str, Any]:
    material: dict[str, Any] = {
        "name": fields.text("mc", max_length=200),
        "kind": fields.label("lx", MATERIAL_LABELS),
    }
    if material["kind"] == "certificate":
        type_code = fields.text("zzlxdm", max_length=21)
        if type_code not in LICENSE_TYPE_CODES:
            raise DialectError(
                "unknown_label",
                "is not a known certificate type code",
                field=fields.path("zzlxdm"),
            )
        material["certificate_type"] = LICENSE_TYPE_CODES[type_code]
    fields.finish()
    return material


# --- errors ---------------------------------------------------------------------------------

_FIELD_NAMES: Final = (
    (re.compile(r"\bmatter_code\b"), "sxbm"),
    (re.compile(r"\bhandler\b"), "bld"),
    (re.compile(r"\bmode\b"), "blfs"),
    (re.compile(r"(?<=applicant\.)code_type\b"), "zjlx"),
    (re.compile(r"(?<=applicant\.)code\b"), "zjhm"),
    (re.compile(r"(?<=applicant\.)name\b"), "xm"),
    (re.compile(r"\bapplicant\b"), "sqr"),
    (re.compile(r"(?<=\]\.)name\b"), "mc"),
    (re.compile(r"\bmaterials\b"), "cl"),
    (re.compile(r"\bcertificate_id\b"), "zzbs"),
    (re.compile(r"\bcase_id\b"), "bjbh"),
    (re.compile(r"\bsequence\b"), "xh"),
    (re.compile(r"\baccepting\b"), "sjd"),
    (re.compile(r"\breference\b"), "sqbh"),
)


def dialect_field(field: str) -> str:
    """The dialect's path of a field the engine names in its neutral form."""
    for pattern, name in _FIELD_NAMES:
        field = pattern.sub(name, field)
    return field


def ok_body(result: Any) -> dict[str, Any]:
    return {"flag": True, "message": "成功", "result": result}


def error_body(code: str, detail: str, *, field: str = "") -> dict[str, Any]:
    return {"flag": False, "code": code, "message": detail, "field": field}


def read_error(data: bytes, status: int) -> DialectError:
    """The platform's refusal as a ``DialectError`` (a generic one if it is not in dialect)."""
    try:
        fields = FormFields(decode_json_object(data, what="error reply"))
        flag = fields.raw("flag")
        code = fields.text("code", max_length=64)
        detail = fields.text("message")
        field = fields.optional_text("field", max_length=200) or ""
        fields.finish()
        if flag is not False:
            raise DialectError("malformed_body", "a refusal has flag false")
    except DialectError:
        return DialectError(f"http_{status}", f"the platform refused the request with {status}")
    return DialectError(code, f"the platform refused it ({status}): {detail}", field=field)

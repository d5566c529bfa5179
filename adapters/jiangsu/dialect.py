"""The Jiangsu dialect (江苏政务服务网): code tables and translations, both ways, without I/O.

The simulated platform decodes requests and encodes replies with these functions; the
adapter encodes requests and decodes replies with the same ones, so the two sides cannot
drift apart. Conventions of the dialect (README.md has the integrator's view):

1. XML, UTF-8, elements only, element names the pinyin initials of their Chinese names
   (``sqbh`` 申请编号, ``sxbm`` 事项编码, ``blzt`` 办理状态 …); ``adapters.jiangsu.strict_xml``
   reads it safely and strictly and writes it.
2. Every instant is ``yyyyMMddHHmmss`` in Beijing time (Asia/Shanghai, UTC+8, no daylight
   saving since 1991), between 2000 and 2099: whole seconds, so a sub-second part is
   dropped on the way out. Calendar dates are ``yyyyMMdd`` (from 1900: birth dates); a birth
   minute (出生时间) is ``yyyyMMddHHmmss`` with seconds ``00``. Anything else is
   ``bad_time``.
3. Statuses, actions, roles, modes, result and material kinds, certificate statuses and
   revocation reasons are upper-case pinyin-initial codes from the tables below (``YSL``
   已受理); provinces are GB/T 2260 codes (``"320000"``), holder code types the national
   ``111``/``001``, sexes 男/女 as printed, evaluation levels ``1``-``5``. A case status
   outside ``STATUS_CODES`` (or a certificate status outside ``CERT_STATUS_CODES``) is
   ``unknown_status``; any other unknown code ``unknown_code``.
4. Yes/no is ``Y``/``N`` in ``sf…`` (是否) elements; a list is a ``…lb`` (列表) element of
   repeated items, which may be empty; an empty element is the same as an absent one.
5. Errors are ``<cwxx><cwdm>stable code</cwdm><cwms>sentence</cwms><cwzd>path</cwzd></cwxx>``
   with a 4xx/5xx HTTP status.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, TypeVar

from adapters.jiangsu.strict_xml import Node, XmlRecord, read_document
from adapters.strict_json import decode_json_object
from node.cases.catalog import MODES
from node.certificates.model import CHINA_STANDARD_TIME, TYPES, FieldSpec
from node.certificates.revocation import ReasonCode
from node.platform.adapter import (
    Application,
    CaseNotice,
    DialectError,
    InboundCase,
    PlatformEvent,
)

K = TypeVar("K")
V = TypeVar("V")

PROVINCE: Final = "jiangsu"

STATUS_CODES: Final[Mapping[str, str]] = {
    "YTJ": "submitted",  # 已提交
    "YSD": "delivered",  # 已送达办理地
    "YSL": "accepted",  # 已受理
    "BZGZ": "supplement_requested",  # 补正告知
    "YBZ": "supplemented",  # 已补正
    "BYSL": "rejected",  # 不予受理
    "BJ": "completed",  # 办结
    "BYXK": "denied",  # 不予许可
    "YCH": "withdrawn",  # 已撤回
    "YPJ": "evaluated",  # 已评价
}
"""办理状态 ``blzt``."""
ACTION_CODES: Final[Mapping[str, str]] = {
    "SD": "deliver",  # 送达
    "SL": "accept",  # 受理
    "BYSL": "reject",  # 不予受理
    "BZGZ": "request_supplement",  # 补正告知
    "BZTJ": "supplement",  # 补正提交
    "BJ": "complete",  # 办结
    "BYXK": "deny",  # 不予许可
    "CH": "withdraw",  # 撤回
    "PJ": "evaluate",  # 评价
}
"""操作类型 ``czlx``."""
ROLE_CODES: Final[Mapping[str, str]] = {"SJD": "accepting", "BLD": "handling"}
"""操作方 ``czf``: 收件地, 办理地."""
MODE_CODES: Final[Mapping[str, str]] = dict(zip(("QCWB", "YDDS", "DDLB"), MODES, strict=True))
"""办理方式 ``blfs``: 全程网办, 异地代收代办, 多地联办."""
AREA_CODES: Final[Mapping[str, str]] = {
    "310000": "shanghai",
    "320000": "jiangsu",
    "330000": "zhejiang",
    "340000": "anhui",
}
"""收件地 ``sjd`` and 办理地 ``bld``: GB/T 2260 province codes."""
HOLDER_CODE_TYPES: Final[Mapping[str, str]] = {"111": "111", "001": "001"}
"""证件类型 ``zjlx``: 111 居民身份证号码, 001 统一社会信用代码."""
RESULT_TYPES: Final[Mapping[str, str]] = {"WS": "document", "ZZ": "certificate"}
"""结果类型 ``jglx``: 文书 (with ``sha256``), 证照 (with ``zzbs``)."""
MATERIAL_TYPES: Final[Mapping[str, str]] = {"SC": "upload", "ZZ": "certificate"}
"""提交方式 ``tjfs`` of a matter's material: 上传, 电子证照."""
CERT_STATUS_CODES: Final[Mapping[str, str]] = {
    "YX": "valid",  # 有效
    "ZT": "suspended",  # 暂停使用
    "ZF": "revoked",  # 作废 (吊销、注销、撤销)
    "GQ": "expired",  # 过期
}
"""证照状态 ``zzzt``."""
REASON_CODES: Final[Mapping[str, ReasonCode]] = {
    "HFBF": "superseded",  # 换发、补发
    "YSBD": "lost",  # 遗失、被盗
    "CZRSQ": "holder_request",  # 持证人申请
    "YFCX": "withdrawn_by_authority",  # 依法撤销、吊销
    "CZRSW": "holder_deceased",  # 持证人死亡
    "ZTZX": "entity_deregistered",  # 主体注销
    "HCZ": "under_review",  # 核查中
}
"""原因代码 ``yydm`` of a status change (``node.certificates.revocation.REASONS``)."""
SEX_CODES: Final[Mapping[str, str]] = {"男": "male", "女": "female"}
"""性别 ``xb`` as printed on the face."""
LEVEL_CODES: Final[Mapping[str, int]] = {str(level): level for level in range(1, 6)}
"""评价等级 ``dj``: 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意."""
YES_NO: Final[Mapping[str, bool]] = {"Y": True, "N": False}
LICENSE_TYPE_CODES: Final[Mapping[str, str]] = {
    spec.type_code: name for name, spec in TYPES.items()
}
"""证照类型代码 ``zzlxdm``: the national type code (21 characters) of each type."""
LONG_TERM: Final = "长期"
"""``yxqz`` of a certificate valid without end."""

FACE_ELEMENTS: Final[Mapping[str, str]] = {
    "name": "xm",  # 姓名
    "sex": "xb",  # 性别
    "ethnicity": "mz",  # 民族
    "birth_date": "csrq",  # 出生日期
    "address": "dz",  # 住址、住所、居住地址
    "id_number": "gmsfhm",  # 公民身份号码
    "company_name": "mc",  # 名称
    "credit_code": "tyshxydm",  # 统一社会信用代码
    "company_type": "lx",  # 类型
    "legal_representative": "fddbr",  # 法定代表人
    "registered_capital": "zczb",  # 注册资本
    "established_on": "clrq",  # 成立日期
    "business_scope": "jyfw",  # 经营范围
    "nationality": "gj",  # 国籍
    "first_issued_on": "cclzrq",  # 初次领证日期
    "vehicle_classes": "zjcx",  # 准驾车型
    "licence_number": "zh",  # 证号
    "plate_number": "hphm",  # 号牌号码
    "vehicle_type": "cllx",  # 车辆类型
    "owner": "syr",  # 所有人
    "use_character": "syxz",  # 使用性质
    "brand_model": "ppxh",  # 品牌型号
    "vin": "clsbdh",  # 车辆识别代号
    "engine_number": "fdjhm",  # 发动机号码
    "registered_on": "djrq",  # 注册日期、登记日期
    "certificate_number": "zsbh",  # 证书编号 (结婚证字号、出生医学证明编号)
    "husband_name": "nfxm",  # 男方姓名
    "husband_id_number": "nfzjhm",  # 男方身份证件号
    "wife_name": "nvfxm",  # 女方姓名
    "wife_id_number": "nvfzjhm",  # 女方身份证件号
    "child_name": "xsrxm",  # 新生儿姓名
    "born_at": "cssj",  # 出生时间
    "birth_place": "csdd",  # 出生地点
    "mother_name": "mqxm",  # 母亲姓名
    "mother_id_number": "mqzjhm",  # 母亲有效身份证件号码
    "father_name": "fqxm",  # 父亲姓名
    "father_id_number": "fqzjhm",  # 父亲有效身份证件号码
}
"""The element of each face field (照面信息 ``zmxx``) of every certificate type."""

EARLIEST_YEAR: Final = 2000
LATEST_YEAR: Final = 2099
EARLIEST_DATE_YEAR: Final = 1900
"""Calendar dates and birth minutes on certificates reach further back than instants."""


def _invert(table: Mapping[K, V]) -> dict[V, K]:
    return {value: key for key, value in table.items()}


_STATUS_OF: Final = _invert(STATUS_CODES)
_ACTION_OF: Final = _invert(ACTION_CODES)
_ROLE_OF: Final = _invert(ROLE_CODES)
_MODE_OF: Final = _invert(MODE_CODES)
_AREA_OF: Final = _invert(AREA_CODES)
_RESULT_OF: Final = _invert(RESULT_TYPES)
_MATERIAL_OF: Final = _invert(MATERIAL_TYPES)
_CERT_STATUS_OF: Final = _invert(CERT_STATUS_CODES)
_REASON_OF: Final = _invert(REASON_CODES)
_SEX_OF: Final = _invert(SEX_CODES)


def status_code(status: str) -> str:
    """The dialect's code of a canonical case status."""
    return _STATUS_OF[status]


def yes_no(value: bool) -> str:
    return "Y" if value else "N"


# --- times ----------------------------------------------------------------------------------


def to_local(seconds: float) -> str:
    """An instant as ``yyyyMMddHHmmss`` Beijing time, the sub-second part dropped (rule 2)."""
    moment = datetime.fromtimestamp(math.floor(seconds), CHINA_STANDARD_TIME)
    return moment.strftime("%Y%m%d%H%M%S")


def read_time(fields: XmlRecord, name: str) -> float:
    """An instant written ``yyyyMMddHHmmss`` in Beijing time, as epoch seconds (rule 2)."""
    return _local(fields, name, EARLIEST_YEAR).timestamp()


def read_optional_time(fields: XmlRecord, name: str) -> float | None:
    if not fields.has(name):
        fields.optional_text(name)
        return None
    return read_time(fields, name)


def _local(fields: XmlRecord, name: str, earliest: int) -> datetime:
    text = fields.text(name, max_length=64)
    path = fields.path(name)
    if len(text) != 14 or not (text.isascii() and text.isdigit()):
        raise DialectError("bad_time", "must be yyyyMMddHHmmss, 14 digits", field=path)
    month, day, hour, minute, second = (int(text[i : i + 2]) for i in range(4, 14, 2))
    try:
        moment = datetime(
            int(text[:4]), month, day, hour, minute, second, tzinfo=CHINA_STANDARD_TIME
        )
    except ValueError:
        raise DialectError("bad_time", "is not a real date and time", field=path) from None
    if not earliest <= moment.year <= LATEST_YEAR:
        raise DialectError(
            "bad_time", f"must fall between {earliest} and {LATEST_YEAR}", field=path
        )
    return moment


def to_date(iso: str) -> str:
    """A calendar date (``to_json``'s ISO form) as ``yyyyMMdd``."""
    return date.fromisoformat(iso).strftime("%Y%m%d")


def read_date(fields: XmlRecord, name: str) -> str:
    """A calendar date written ``yyyyMMdd``, in ISO form."""
    text = fields.text(name, max_length=64)
    path = fields.path(name)
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        raise DialectError("bad_time", "must be a date yyyyMMdd, 8 digits", field=path)
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise DialectError("bad_time", "is not a real date", field=path) from None
    if not EARLIEST_DATE_YEAR <= day.year <= LATEST_YEAR:
        raise DialectError(
            "bad_time", f"must fall between {EARLIEST_DATE_YEAR} and {LATEST_YEAR}", field=path
        )
    return day.isoformat()


def minute_to_local(text: str) -> str:
    """A birth minute (``yyyy-mm-ddTHH:MM``) as ``yyyyMMddHHmm00``."""
    return datetime.fromisoformat(text).strftime("%Y%m%d%H%M00")


def read_minute(fields: XmlRecord, name: str) -> str:
    moment = _local(fields, name, EARLIEST_DATE_YEAR)
    if moment.second:
        raise DialectError(
            "bad_time", "must be a whole minute (seconds 00)", field=fields.path(name)
        )
    return moment.strftime("%Y-%m-%dT%H:%M")


# --- parties and materials ------------------------------------------------------------------


def _party_to_dialect(party: Mapping[str, Any]) -> Node:
    return ("sqr", [("xm", party["name"]), ("zjlx", party["code_type"]), ("zjhm", party["code"])])


def _read_party(fields: XmlRecord) -> dict[str, str]:
    party = {
        "name": fields.text("xm", max_length=100),
        "code_type": fields.code("zjlx", HOLDER_CODE_TYPES),
        "code": fields.text("zjhm", max_length=18),
    }
    fields.finish()
    return party


def _materials_to_dialect(materials: Sequence[Mapping[str, Any]]) -> Node:
    return ("cllb", [_material_to_dialect(material) for material in materials])


def _material_to_dialect(material: Mapping[str, Any]) -> Node:
    if "certificate_id" in material:
        return ("cl", [("clmc", material["name"]), ("zzbs", material["certificate_id"])])
    return ("cl", [("clmc", material["name"]), ("sha256", material["sha256"])])


def _read_materials(fields: XmlRecord) -> list[dict[str, str]]:
    return [_read_material(item) for item in fields.items("cllb", "cl", max_items=50)]


def _read_material(fields: XmlRecord) -> dict[str, str]:
    name = fields.text("clmc", max_length=200)
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


# --- applications ---------------------------------------------------------------------------


def application_form(body: Mapping[str, Any]) -> Node:
    """A ``POST /v1/cases`` body as the citizen's form: what ``POST …/sq`` takes."""
    return ("sq", _form_children(body))


def _form_children(body: Mapping[str, Any]) -> list[Node]:
    return [
        ("sxbm", body["matter_code"]),
        ("bld", _AREA_OF[body["handler"]]),
        ("blfs", _MODE_OF[body["mode"]]),
        _party_to_dialect(body["applicant"]),
        _materials_to_dialect(body["materials"]),
    ]


def read_application_form(fields: XmlRecord) -> dict[str, Any]:
    """The ``POST /v1/cases`` body of a citizen's form; ``finish()`` is the caller's."""
    return {
        "matter_code": fields.text("sxbm", max_length=64),
        "handler": fields.code("bld", AREA_CODES),
        "mode": fields.code("blfs", MODE_CODES),
        "applicant": _read_party(fields.obj("sqr")),
        "materials": _read_materials(fields),
    }


def application_record(
    reference: str,
    body: Mapping[str, Any],
    submitted_at: float,
    case_id: str | None,
    acknowledged_at: float | None,
) -> Node:
    """One ``<sq>`` of ``GET …/sq``: the form plus its number, time and acknowledgement."""
    children: list[Node] = [("sqbh", reference), ("sqsj", to_local(submitted_at))]
    children += _form_children(body)
    if case_id is not None:
        children.append(("ajbh", case_id))
    if acknowledged_at is not None:
        children.append(("qrsj", to_local(acknowledged_at)))
    return ("sq", children)


def read_application_record(fields: XmlRecord) -> Application:
    reference = fields.text("sqbh", max_length=64)
    read_time(fields, "sqsj")
    body = read_application_form(fields)
    fields.optional_text("ajbh", max_length=128)
    read_optional_time(fields, "qrsj")
    fields.finish()
    return Application(reference=reference, body=body)


# --- events (the platform's people acted) ---------------------------------------------------


def event_record(event_id: str, case_id: str, body: Mapping[str, Any], created: float) -> Node:
    """One ``<dt>`` (办件动态) of ``GET …/bjdt`` from a ``POST /v1/cases/{id}/events`` body."""
    children: list[Node] = [
        ("dtbh", event_id),
        ("ajbh", case_id),
        ("czlx", _ACTION_OF[body["action"]]),
        ("sj", to_local(created)),
    ]
    if body.get("reason"):
        children.append(("yy", body["reason"]))
    if body.get("result") is not None:
        children.append(result_to_dialect(body["result"]))
    if "level" in body:
        children.append(_evaluation_to_dialect(body))
    return ("dt", children)


def read_event_record(fields: XmlRecord) -> PlatformEvent:
    event_id = fields.text("dtbh", max_length=200)
    case_id = fields.text("ajbh", max_length=128)
    body: dict[str, Any] = {"action": fields.code("czlx", ACTION_CODES)}
    read_time(fields, "sj")
    reason = fields.optional_text("yy")
    if reason is not None:
        body["reason"] = reason
    result = fields.optional_obj("jg")
    if result is not None:
        body["result"] = _read_result(result)
    evaluation = fields.optional_obj("pj")
    if evaluation is not None:
        body.update(_read_evaluation(evaluation))
    fields.finish()
    return PlatformEvent(event_id=event_id, case_id=case_id, body=body)


def result_to_dialect(result: Mapping[str, Any]) -> Node:
    if result["kind"] == "certificate":
        return ("jg", [("jglx", _RESULT_OF["certificate"]), ("zzbs", result["certificate_id"])])
    return ("jg", [("jglx", _RESULT_OF["document"]), ("sha256", result["document_sha256"])])


def _read_result(fields: XmlRecord) -> dict[str, str]:
    kind = fields.code("jglx", RESULT_TYPES)
    if kind == "certificate":
        result = {"kind": kind, "certificate_id": fields.text("zzbs", max_length=128)}
    else:
        result = {"kind": kind, "document_sha256": fields.text("sha256", max_length=64)}
    fields.finish()
    return result


def _evaluation_to_dialect(evaluation: Mapping[str, Any]) -> Node:
    children: list[Node] = [("dj", str(evaluation["level"]))]
    if evaluation.get("comment"):
        children.append(("nr", evaluation["comment"]))
    return ("pj", children)


def _read_evaluation(fields: XmlRecord) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"level": fields.code("dj", LEVEL_CODES)}
    comment = fields.optional_text("nr", max_length=500)
    if comment is not None:
        evaluation["comment"] = comment
    fields.finish()
    return evaluation


# --- inbound cases and notices (the node delivers) ------------------------------------------


def case_to_dialect(case: InboundCase) -> Node:
    """An inbound case as ``POST …/ajjs`` (案件接收) takes it: ``<aj>``."""
    return (
        "aj",
        [
            ("ajbh", case.case_id),
            ("sjd", _AREA_OF[case.accepting]),
            ("sxbm", case.matter_code),
            ("blfs", _MODE_OF[case.mode]),
            _party_to_dialect(case.applicant),
            _materials_to_dialect(case.materials),
            ("tjsj", to_local(case.submitted_at)),
        ],
    )


def read_case(fields: XmlRecord) -> InboundCase:
    case = InboundCase(
        case_id=fields.text("ajbh", max_length=128),
        accepting=fields.code("sjd", AREA_CODES),
        matter_code=fields.text("sxbm", max_length=64),
        mode=fields.code("blfs", MODE_CODES),
        applicant=_read_party(fields.obj("sqr")),
        materials=_read_materials(fields),
        submitted_at=read_time(fields, "tjsj"),
    )
    fields.finish()
    return case


def notice_to_dialect(notice: CaseNotice) -> Node:
    """An applied update as ``POST …/ajtz`` (案件通知) takes it: ``<tz>``."""
    children: list[Node] = [
        ("ajbh", notice.case_id),
        ("xh", str(notice.sequence)),
        ("czlx", _ACTION_OF[notice.action]),
        ("czf", _ROLE_OF[notice.by]),
        ("blzt", _STATUS_OF[notice.status]),
        ("sj", to_local(notice.at)),
    ]
    if notice.reason:
        children.append(("yy", notice.reason))
    if notice.result is not None:
        children.append(result_to_dialect(notice.result))
    if notice.evaluation is not None:
        children.append(_evaluation_to_dialect(notice.evaluation))
    if notice.due_at is not None:
        children.append(("qx", to_local(notice.due_at)))
    if notice.extra:
        children.append(("kzxx", _extra_to_dialect(notice.extra)))
    return ("tz", children)


def read_notice(fields: XmlRecord) -> CaseNotice:
    case_id = fields.text("ajbh", max_length=128)
    sequence = fields.integer("xh")
    if sequence < 1:
        raise DialectError("invalid_field", "must be 1 or more", field=fields.path("xh"))
    action = fields.code("czlx", ACTION_CODES)
    by = fields.code("czf", ROLE_CODES)
    status = fields.code("blzt", STATUS_CODES, error="unknown_status")
    at = read_time(fields, "sj")
    reason = fields.optional_text("yy") or ""
    result_fields = fields.optional_obj("jg")
    evaluation_fields = fields.optional_obj("pj")
    due_at = read_optional_time(fields, "qx")
    extra = fields.optional_text("kzxx", max_length=20_000)
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
        extra={} if extra is None else _read_extra(extra, fields.path("kzxx")),
    )


def _extra_to_dialect(extra: Mapping[str, Any]) -> str:
    # JSON inside the element: the node passes ``extra`` through unchanged, whatever it holds.
    # ASCII escapes keep every character of it carriable in XML 1.0.
    try:
        return json.dumps(dict(extra), ensure_ascii=True, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError):
        raise DialectError(
            "invalid_field", "must be a JSON object of finite values", field="kzxx"
        ) from None


def _read_extra(text: str, path: str) -> dict[str, Any]:
    try:
        return decode_json_object(text.encode(), what="kzxx")
    except DialectError as error:
        raise DialectError("invalid_field", error.detail, field=path) from None


# --- replies to deliveries ------------------------------------------------------------------


def delivery_receipt(case_id: str, duplicate: bool) -> Node:
    """``<jshz>`` (接收回执): the reply to ``POST …/ajjs``."""
    return ("jshz", [("ajbh", case_id), ("sfcf", yes_no(duplicate))])


def notice_receipt(case_id: str, sequence: int, duplicate: bool) -> Node:
    """``<tzhz>`` (通知回执): the reply to ``POST …/ajtz``."""
    return ("tzhz", [("ajbh", case_id), ("xh", str(sequence)), ("sfcf", yes_no(duplicate))])


def read_delivery_receipt(fields: XmlRecord, case_id: str, sequence: int | None) -> None:
    """Check a receipt names what was delivered; either answer (new or duplicate) is fine."""
    named = fields.text("ajbh", max_length=128)
    if named != case_id:
        raise DialectError("invalid_field", "names another case", field=fields.path("ajbh"))
    if sequence is not None and fields.integer("xh") != sequence:
        raise DialectError("invalid_field", "names another update", field=fields.path("xh"))
    fields.code("sfcf", YES_NO)
    fields.finish()


# --- certificates (电子证照) ----------------------------------------------------------------


def certificate_to_dialect(data: Mapping[str, Any]) -> Node:
    """A certificate in ``to_json`` form as ``GET /jszwfw/dzzz/zz/{zzbs}`` answers it."""
    spec = TYPES[data["type"]]
    face: list[Node] = [
        (FACE_ELEMENTS[name], _face_to_dialect(spec.field_spec(name), value))
        for name, value in data["fields"].items()
    ]
    until = data.get("valid_until")
    return (
        "zz",
        [
            ("zzbs", data["certificate_id"]),
            ("zzlxdm", spec.type_code),
            ("fzjg", data["issuing_authority"]),
            ("fzjgdm", data["issuing_authority_code"]),
            ("czrxm", data["holder_name"]),
            ("czrzjlx", data["holder_code_type"]),
            ("czrzjhm", data["holder_code"]),
            ("fzrq", to_date(data["issued_on"])),
            ("yxqq", to_date(data["valid_from"])),
            ("yxqz", LONG_TERM if until is None else to_date(until)),
            ("zzzt", _CERT_STATUS_OF[data["status"]]),
            ("zmxx", face),
        ],
    )


def _face_to_dialect(spec: FieldSpec | None, value: str) -> str:
    kind = spec.kind if spec is not None else "text"
    if kind == "date":
        return to_date(value)
    if kind == "datetime":
        return minute_to_local(value)
    if kind == "sex":
        return _SEX_OF[value]
    return value


def read_certificate(fields: XmlRecord) -> dict[str, Any]:
    """The ``to_json`` form of a ``<zz>`` (still to be checked by ``parse_certificate``)."""
    certificate_id = fields.text("zzbs", max_length=128)
    certificate_type = fields.code("zzlxdm", LICENSE_TYPE_CODES)
    spec = TYPES[certificate_type]  # type: ignore[index]  # the table holds only type names
    data: dict[str, Any] = {
        "certificate_id": certificate_id,
        "type": certificate_type,
        "issuing_authority": fields.text("fzjg", max_length=100),
        "issuing_authority_code": fields.text("fzjgdm", max_length=18),
        "holder_name": fields.text("czrxm", max_length=100),
        "holder_code_type": fields.code("czrzjlx", HOLDER_CODE_TYPES),
        "holder_code": fields.text("czrzjhm", max_length=18),
        "issued_on": read_date(fields, "fzrq"),
        "valid_from": read_date(fields, "yxqq"),
        "valid_until": (
            None if fields.text("yxqz", max_length=64) == LONG_TERM else read_date(fields, "yxqz")
        ),
        "status": fields.code("zzzt", CERT_STATUS_CODES, error="unknown_status"),
    }
    face_fields = fields.obj("zmxx")
    face: dict[str, str] = {}
    for field_spec in spec.fields:
        name = FACE_ELEMENTS[field_spec.name]
        if not face_fields.has(name):
            face_fields.optional_text(name)
            continue
        if field_spec.kind == "date":
            face[field_spec.name] = read_date(face_fields, name)
        elif field_spec.kind == "datetime":
            face[field_spec.name] = read_minute(face_fields, name)
        elif field_spec.kind == "sex":
            face[field_spec.name] = face_fields.code(name, SEX_CODES)
        else:
            face[field_spec.name] = face_fields.text(name, max_length=field_spec.max_length)
    face_fields.finish()
    fields.finish()
    data["fields"] = face
    return data


def revocation_record(revocation: Mapping[str, Any]) -> Node:
    """A revoked or suspended certificate as ``GET /jszwfw/dzzz/ztbg`` lists it: ``<ztbg>``."""
    return (
        "ztbg",
        [
            ("zzbs", revocation["certificate_id"]),
            ("zzzt", _CERT_STATUS_OF[revocation["status"]]),
            ("bgsj", to_local(revocation["since"])),
            ("yydm", _REASON_OF[revocation["reason"]]),
        ],
    )


def read_revocation(fields: XmlRecord) -> dict[str, Any]:
    """``{"certificate_id", "status", "since" (epoch seconds), "reason"}`` of a listed one."""
    certificate_id = fields.text("zzbs", max_length=128)
    status = fields.code("zzzt", CERT_STATUS_CODES, error="unknown_status")
    if status not in ("revoked", "suspended"):
        raise DialectError(
            "unknown_status",
            "a listed certificate is revoked (ZF) or suspended (ZT)",
            field=fields.path("zzzt"),
        )
    revocation = {
        "certificate_id": certificate_id,
        "status": status,
        "since": read_time(fields, "bgsj"),
        "reason": fields.code("yydm", REASON_CODES),
    }
    fields.finish()
    return revocation


# --- matters (事项) -------------------------------------------------------------------------


def matter_to_dialect(matter: Mapping[str, Any]) -> Node:
    """A matter in the catalog's JSON form as ``GET …/sxlb`` lists it: ``<sx>``."""
    materials: list[Node] = []
    for material in matter["materials"]:
        children: list[Node] = [
            ("clmc", material["name"]),
            ("tjfs", _MATERIAL_OF[material["kind"]]),
        ]
        if material.get("certificate_type"):
            children.append(("zzlxdm", TYPES[material["certificate_type"]].type_code))
        materials.append(("cl", children))
    return (
        "sx",
        [
            ("sxbm", matter["code"]),
            ("sxmc", matter["name"]),
            ("ywmc", matter["name_en"]),
            ("bld", _AREA_OF[matter["handler"]]),
            ("bjdw", matter["department"]),
            ("blfslb", [("blfs", _MODE_OF[mode]) for mode in matter["modes"]]),
            ("cllb", materials),
            ("cnsx", str(matter["promised_days"])),
        ],
    )


def read_matter(fields: XmlRecord) -> dict[str, Any]:
    """The catalog's JSON form of an ``<sx>`` (still to be checked by ``parse_catalog``)."""
    modes = fields.codes("blfslb", "blfs", MODE_CODES)
    if not modes:
        raise DialectError(
            "missing_field", "must list at least one blfs", field=fields.path("blfslb")
        )
    matter = {
        "code": fields.text("sxbm", max_length=64),
        "name": fields.text("sxmc", max_length=200),
        "name_en": fields.text("ywmc", max_length=200),
        "handler": fields.code("bld", AREA_CODES),
        "department": fields.text("bjdw", max_length=200),
        "modes": modes,
        "materials": [_read_matter_material(item) for item in fields.items("cllb", "cl")],
        "promised_days": fields.integer("cnsx"),
    }
    fields.finish()
    return matter


def _read_matter_material(fields: XmlRecord) -> dict[str, Any]:
    material: dict[str, Any] = {
        "name": fields.text("clmc", max_length=200),
        "kind": fields.code("tjfs", MATERIAL_TYPES),
    }
    if material["kind"] == "certificate":
        material["certificate_type"] = fields.code("zzlxdm", LICENSE_TYPE_CODES)
    fields.finish()
    return material


# --- errors ---------------------------------------------------------------------------------

_ENGINE_STEPS: Final[Mapping[tuple[str, str], str]] = {
    ("", "matter_code"): "sxbm",
    ("", "handler"): "bld",
    ("", "mode"): "blfs",
    ("", "applicant"): "sqr",
    ("applicant", "name"): "xm",
    ("applicant", "code_type"): "zjlx",
    ("applicant", "code"): "zjhm",
    ("", "materials"): "cllb",
    ("materials", "name"): "clmc",
    ("materials", "sha256"): "sha256",
    ("materials", "certificate_id"): "zzbs",
    ("", "case_id"): "ajbh",
    ("", "sequence"): "xh",
    ("", "reference"): "sqbh",
    ("", "accepting"): "sjd",
    ("", "cursor"): "yb",
    ("", "limit"): "ts",
}


def dialect_field(field: str) -> str:
    """The dialect's path of a field the engine names in its neutral form
    (``materials[1].sha256`` → ``cllb/cl[2]/sha256``); a name it does not know is kept."""
    steps: list[str] = []
    parent = ""
    for segment in field.split(".") if field else []:
        name, bracket, index = segment.partition("[")
        step = _ENGINE_STEPS.get((parent, name))
        if step is None:
            return field
        steps.append(step)
        if bracket:
            position = index.rstrip("]")
            if not position.isdigit():
                return field
            steps.append(f"cl[{int(position) + 1}]")
        parent = name
    return "/".join(steps)


def error_body(code: str, detail: str, *, field: str = "") -> Node:
    """``<cwxx>`` (错误信息): every refusal, whatever its HTTP status."""
    children: list[Node] = [("cwdm", code), ("cwms", detail)]
    if field:
        children.append(("cwzd", field))
    return ("cwxx", children)


def read_error(data: bytes, status: int) -> DialectError:
    """The platform's refusal as a ``DialectError`` (a generic one if it is not in dialect)."""
    try:
        fields = read_document(data, "cwxx", what="error reply")
        code = fields.text("cwdm", max_length=64)
        detail = fields.text("cwms")
        field = fields.optional_text("cwzd", max_length=200) or ""
        fields.finish()
    except DialectError:
        return DialectError(f"http_{status}", f"the platform refused the request with {status}")
    return DialectError(code, f"the platform refused it ({status}): {detail}", field=field)

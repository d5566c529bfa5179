"""The Jiangsu dialect (江苏政务服务网): its element names, code tables and formats, without I/O.

The simulated platform and the adapter both translate with ``JIANGSU``, the steps of
``adapters.translation`` in these words, and write the results as XML with the root elements
below (``case_to_dialect`` is an ``<aj>`` …), so the two sides cannot drift apart.
Conventions of the dialect (README.md has the integrator's view):

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
   repeated items named without the ``lb``, which may be empty; an empty element is the same
   as an absent one.
5. Errors are ``<cwxx><cwdm>stable code</cwdm><cwms>sentence</cwms><cwzd>path</cwzd></cwxx>``
   with a 4xx/5xx HTTP status.
6. A notice's ``kzxx`` (扩展信息) is a JSON object written as ASCII text (``\\u`` escapes);
   text that is not one is ``invalid_field``.
7. The federation's refusal of an application is a ``<th>`` (退回): ``thlb`` (退回类别, a code
   of ``REFUSAL_KINDS_CODES``), ``thdm`` (退回代码, the stable code), ``thzd`` (退回字段,
   the element path at fault, optional) and ``thyy`` (退回原因); the application's status
   is then ``YTH`` (已退回).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from adapters.jiangsu.strict_xml import Node, XmlRecord, element, read_document
from adapters.strict_json import decode_json_object
from adapters.translation import (
    REFUSAL_KINDS,
    CodeTable,
    Names,
    Translation,
    read_certificate_type,
    refusal,
)
from node.cases.catalog import MODES
from node.certificates.model import CHINA_STANDARD_TIME, FieldSpec
from node.platform.adapter import ApplicationRefusal, CaseNotice, DialectError, InboundCase
from node.text import ascii_integer

PROVINCE: Final = "jiangsu"

STATUS_CODES: Final[CodeTable[str, str]] = CodeTable(
    {
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
)
"""办理状态 ``blzt``."""
APPLICATION_STATUS_CODES: Final[CodeTable[str, str]] = CodeTable(
    {**STATUS_CODES, "YTH": "refused"}  # 已退回: the federation refused the application
)
"""``blzt`` as the applicant's view of an application shows it (rule 7)."""
ACTION_CODES: Final[CodeTable[str, str]] = CodeTable(
    {
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
)
"""操作类型 ``czlx``."""
ROLE_CODES: Final[CodeTable[str, str]] = CodeTable({"SJD": "accepting", "BLD": "handling"})
"""操作方 ``czf``: 收件地, 办理地."""
MODE_CODES: Final[CodeTable[str, str]] = CodeTable(
    dict(zip(("QCWB", "YDDS", "DDLB"), MODES, strict=True))
)
"""办理方式 ``blfs``: 全程网办, 异地代收代办, 多地联办."""
AREA_CODES: Final[CodeTable[str, str]] = CodeTable(
    {
        "310000": "shanghai",
        "320000": "jiangsu",
        "330000": "zhejiang",
        "340000": "anhui",
    }
)
"""收件地 ``sjd`` and 办理地 ``bld``: GB/T 2260 province codes."""
HOLDER_CODE_TYPES: Final[CodeTable[str, str]] = CodeTable({"111": "111", "001": "001"})
"""证件类型 ``zjlx``: 111 居民身份证号码, 001 统一社会信用代码."""
RESULT_TYPES: Final[CodeTable[str, str]] = CodeTable({"WS": "document", "ZZ": "certificate"})
"""结果类型 ``jglx``: 文书 (with ``sha256``), 证照 (with ``zzbs``)."""
MATERIAL_TYPES: Final[CodeTable[str, str]] = CodeTable({"SC": "upload", "ZZ": "certificate"})
"""提交方式 ``tjfs`` of a matter's material: 上传, 电子证照."""
CERT_STATUS_CODES: Final[CodeTable[str, str]] = CodeTable(
    {
        "YX": "valid",  # 有效
        "ZT": "suspended",  # 暂停使用
        "ZF": "revoked",  # 作废 (吊销、注销、撤销)
        "GQ": "expired",  # 过期
    }
)
"""证照状态 ``zzzt``."""
REASON_CODES: Final[CodeTable[str, str]] = CodeTable(
    {
        "HFBF": "superseded",  # 换发、补发
        "YSBD": "lost",  # 遗失、被盗
        "CZRSQ": "holder_request",  # 持证人申请
        "YFCX": "withdrawn_by_authority",  # 依法撤销、吊销
        "CZRSW": "holder_deceased",  # 持证人死亡
        "ZTZX": "entity_deregistered",  # 主体注销
        "HCZ": "under_review",  # 核查中
    }
)
"""原因代码 ``yydm`` of a status change (``node.certificates.revocation.REASONS``)."""
SEX_CODES: Final[CodeTable[str, str]] = CodeTable({"男": "male", "女": "female"})
"""性别 ``xb`` as printed on the face."""
LEVEL_CODES: Final[CodeTable[str, int]] = CodeTable({str(level): level for level in range(1, 6)})
"""评价等级 ``dj``: 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意."""
REFUSAL_KIND_CODES: Final[CodeTable[str, str]] = CodeTable(
    dict(zip(("SQR", "SX", "CL", "JL", "QT"), REFUSAL_KINDS, strict=True))
)
"""退回类别 ``thlb``: 申请人, 事项, 材料, 记录 (the record as the platform wrote it), 其他."""
YES_NO: Final = CodeTable({"Y": True, "N": False})
"""是否 (``sf…``) elements."""
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


# --- times ----------------------------------------------------------------------------------


def to_local(seconds: float) -> str:
    """An instant as ``yyyyMMddHHmmss`` Beijing time, the sub-second part dropped (rule 2)."""
    moment = datetime.fromtimestamp(math.floor(seconds), CHINA_STANDARD_TIME)
    return moment.strftime("%Y%m%d%H%M%S")


def read_time(fields: XmlRecord, name: str) -> float:
    """An instant written ``yyyyMMddHHmmss`` in Beijing time, as epoch seconds (rule 2)."""
    return _local(fields, name, EARLIEST_YEAR).timestamp()


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


# --- the dialect's words for the translation steps ------------------------------------------


def _extra_text(extra: Mapping[str, Any]) -> str:
    # JSON inside the element: the node passes ``extra`` through unchanged, whatever it holds.
    # ASCII escapes keep every character of it carriable in XML 1.0.
    try:
        return json.dumps(dict(extra), ensure_ascii=True, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError):
        raise DialectError(
            "invalid_field", "must be a JSON object of finite values", field="kzxx"
        ) from None


def _read_extra(fields: XmlRecord, name: str) -> dict[str, Any]:
    """``kzxx``: a JSON object as text (rule 6); absent is empty."""
    text = fields.optional_text(name, max_length=20_000)
    if text is None:
        return {}
    try:
        return decode_json_object(text.encode(), what="kzxx")
    except DialectError as error:
        raise DialectError("invalid_field", error.detail, field=fields.path(name)) from None


def _face_key(spec: FieldSpec) -> str:
    return FACE_ELEMENTS[spec.name]


NAMES: Final = Names(
    party_name="xm",
    code_type="zjlx",
    code="zjhm",
    material_name="clmc",
    certificate_id="zzbs",
    digest="sha256",
    result_kind="jglx",
    document_digest="sha256",
    level="dj",
    comment="nr",
    case_id="ajbh",
    accepting="sjd",
    matter_code="sxbm",
    mode="blfs",
    applicant="sqr",
    materials="cllb",
    submitted_at="tjsj",
    sequence="xh",
    action="czlx",
    by="czf",
    status="blzt",
    notice_at="sj",
    reason="yy",
    result="jg",
    evaluation="pj",
    due_at="qx",
    extra="kzxx",
    event_id="dtbh",
    event_at="sj",
    reference="sqbh",
    handler="bld",
    entered_at="sqsj",
    acknowledged_at="qrsj",
    type_code="zzlxdm",
    issuing_authority="fzjg",
    issuing_authority_code="fzjgdm",
    holder_name="czrxm",
    holder_code_type="czrzjlx",
    holder_code="czrzjhm",
    issued_on="fzrq",
    valid_from="yxqq",
    valid_until="yxqz",
    certificate_status="zzzt",
    face="zmxx",
    since="bgsj",
    revocation_reason="yydm",
    matter_name="sxmc",
    matter_name_en="ywmc",
    department="bjdw",
    modes="blfslb",
    material_kind="tjfs",
    promised_days="cnsx",
    refusal_kind="thlb",
    refusal_code="thdm",
    refusal_field="thzd",
    refusal_reason="thyy",
    refused_at="thsj",
    duplicate="sfcf",
)

JIANGSU: Final = Translation[XmlRecord](
    names=NAMES,
    statuses=STATUS_CODES,
    actions=ACTION_CODES,
    roles=ROLE_CODES,
    modes=MODE_CODES,
    provinces=AREA_CODES,
    holder_code_types=HOLDER_CODE_TYPES,
    result_kinds=RESULT_TYPES,
    material_kinds=MATERIAL_TYPES,
    certificate_statuses=CERT_STATUS_CODES,
    reasons=REASON_CODES,
    sexes=SEX_CODES,
    yes_no=YES_NO,
    refusal_kinds=REFUSAL_KIND_CODES,
    levels=LEVEL_CODES,
    write_instant=to_local,
    read_instant=read_time,
    write_date=to_date,
    read_date=read_date,
    write_minute=minute_to_local,
    read_minute=read_minute,
    write_number=str,
    write_extra=_extra_text,
    read_extra=_read_extra,
    face_key=_face_key,
    read_certificate_type=read_certificate_type,
    long_term=LONG_TERM,
)
"""Every translation of the dialect, both ways (``adapters.translation``); what it writes,
the functions below put under their root elements."""


# --- the documents the dialect writes -------------------------------------------------------


def application_form(body: Mapping[str, Any]) -> Node:
    """A ``POST /v1/cases`` body as the citizen's form: what ``POST …/sq`` takes."""
    return element("sq", JIANGSU.application_form(body))


def application_record(
    reference: str,
    body: Mapping[str, Any],
    submitted_at: float,
    case_id: str | None,
    acknowledged_at: float | None,
) -> Node:
    """One ``<sq>`` of ``GET …/sq``: the form plus its number, time and acknowledgement."""
    record = JIANGSU.application_record(reference, body, submitted_at, case_id, acknowledged_at)
    return element("sq", record)


def event_record(event_id: str, case_id: str, body: Mapping[str, Any], created: float) -> Node:
    """One ``<dt>`` (办件动态) of ``GET …/bjdt`` from a ``POST /v1/cases/{id}/events`` body."""
    return element("dt", JIANGSU.event_record(event_id, case_id, body, created))


def refusal_to_dialect(refusal: ApplicationRefusal) -> Node:
    """The federation's refusal of an application as ``POST …/sq/{sqbh}/th`` takes it:
    ``<th>`` (rule 7), a field of the ``POST /v1/cases`` body named by its element path."""
    return element("th", JIANGSU.refusal_to_dialect(refusal, dialect_field))


def refusal_record(refusal: ApplicationRefusal, refused_at: float) -> Node:
    """A held refusal in the applicant's view of the application: ``<th>`` with ``thsj``."""
    return element("th", JIANGSU.refusal_record(refusal, refused_at))


def result_to_dialect(result: Mapping[str, Any]) -> Node:
    return element("jg", JIANGSU.result_to_dialect(result))


def case_to_dialect(case: InboundCase) -> Node:
    """An inbound case as ``POST …/ajjs`` (案件接收) takes it: ``<aj>``."""
    return element("aj", JIANGSU.case_to_dialect(case))


def notice_to_dialect(notice: CaseNotice) -> Node:
    """An applied update as ``POST …/ajtz`` (案件通知) takes it: ``<tz>``."""
    return element("tz", JIANGSU.notice_to_dialect(notice))


def certificate_to_dialect(data: Mapping[str, Any]) -> Node:
    """A certificate in ``to_json`` form as ``GET /jszwfw/dzzz/zz/{zzbs}`` answers it."""
    return element("zz", JIANGSU.certificate_to_dialect(data))


def revocation_record(revocation: Mapping[str, Any]) -> Node:
    """A revoked or suspended certificate as ``GET /jszwfw/dzzz/ztbg`` lists it: ``<ztbg>``."""
    return element("ztbg", JIANGSU.revocation_record(revocation))


def matter_to_dialect(matter: Mapping[str, Any]) -> Node:
    """A matter in the catalog's JSON form as ``GET …/sxlb`` lists it: ``<sx>``."""
    return element("sx", JIANGSU.matter_to_dialect(matter))


# --- replies to deliveries ------------------------------------------------------------------


def application_receipt(reference: str, submitted_at: float) -> Node:
    """``<sqhz>`` (申请回执): the reply to ``POST …/sq``."""
    return element("sqhz", JIANGSU.application_receipt(reference, submitted_at))


def acknowledgement(reference: str, case_id: str, acknowledged_at: float) -> Node:
    """``<qrhz>`` (确认回执): the reply to ``POST …/sq/{sqbh}/qr``."""
    return element("qrhz", JIANGSU.acknowledgement(reference, case_id, acknowledged_at))


def refusal_receipt(reference: str, code: str, refused_at: float, duplicate: bool) -> Node:
    """``<thhz>`` (退回回执): the reply to ``POST …/sq/{sqbh}/th``."""
    return element(
        "thhz", JIANGSU.refusal_receipt(reference, code, refused_at, duplicate=duplicate)
    )


def read_refusal_receipt(fields: XmlRecord, reference: str, code: str) -> None:
    """Check a ``<thhz>`` names the application and the refusal; new or repeated, both
    mean the platform holds it."""
    if fields.text("sqbh", max_length=64) != reference:
        raise DialectError("invalid_field", "names another application", field=fields.path("sqbh"))
    if fields.text("thdm", max_length=64) != code:
        raise DialectError("invalid_field", "names another refusal", field=fields.path("thdm"))
    read_time(fields, "thsj")
    fields.code("sfcf", YES_NO)
    fields.finish()


def delivery_receipt(case_id: str, duplicate: bool) -> Node:
    """``<jshz>`` (接收回执): the reply to ``POST …/ajjs``."""
    return element("jshz", JIANGSU.delivery_receipt(case_id, None, duplicate=duplicate))


def notice_receipt(case_id: str, sequence: int, duplicate: bool) -> Node:
    """``<tzhz>`` (通知回执): the reply to ``POST …/ajtz``."""
    return element("tzhz", JIANGSU.delivery_receipt(case_id, sequence, duplicate=duplicate))


def read_delivery_receipt(fields: XmlRecord, case_id: str, sequence: int | None) -> None:
    """Check a receipt names what was delivered; either answer (new or duplicate) is fine."""
    named = fields.text("ajbh", max_length=128)
    if named != case_id:
        raise DialectError("invalid_field", "names another case", field=fields.path("ajbh"))
    if sequence is not None and fields.integer("xh") != sequence:
        raise DialectError("invalid_field", "names another update", field=fields.path("xh"))
    fields.code("sfcf", YES_NO)
    fields.finish()


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
            position = ascii_integer(index.rstrip("]"))
            if position is None:
                return field
            steps.append(f"cl[{position + 1}]")
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

    def read() -> tuple[str, str, str]:
        fields = read_document(data, "cwxx", what="error reply")
        code = fields.text("cwdm", max_length=64)
        detail = fields.text("cwms")
        field = fields.optional_text("cwzd", max_length=200) or ""
        fields.finish()
        return code, detail, field

    return refusal(status, read)

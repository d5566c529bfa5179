"""The Anhui dialect (安徽政务服务网 / 皖事通): its names, label tables and formats, no I/O.

The simulated platform and the adapter both translate with ``ANHUI``, the steps of
``adapters.translation`` in these words, so the two sides cannot drift apart. Conventions of
the dialect (README.md has the integrator's view):

1. Requests are forms (``adapters.anhui.form``: nested values as ``cl[0].mc`` keys, UTF-8);
   replies are JSON ``{"flag": true, "message", "result"}`` or ``{"flag": false, "code",
   "message", "field"}`` holding the same tree, every scalar as text.
2. Business keys are pinyin initials (``NAMES``: ``sqbh`` 申请编号, ``sxbm`` 事项编码,
   ``bjzt`` 办件状态); the envelope and paging keys are the web framework's English ones.
3. Statuses, actions, roles, provinces, modes, result and material kinds, evaluation levels,
   certificate statuses, revocation reasons, holder-code types and sexes are Chinese labels
   from the tables below (``已受理``, ``办结``, ``安徽省``). A case or certificate status
   outside its table is ``unknown_status``; any other unknown label ``unknown_label``.
   National codes stay codes: a certificate type code is read as text (21 characters) and
   one not in the national table is ``unknown_label``.
4. An instant is Beijing local time ``yyyy-MM-dd HH:mm:ss`` with no offset (Asia/Shanghai
   has kept UTC+08:00 without daylight saving since 1991), between 2000 and 2100; it is
   written truncated to the whole second. Anything else (an ISO ``T``, an offset, a
   fraction, one-digit fields, epoch numbers, a day that does not exist) is ``bad_time``.
   Calendar dates are ``yyyy-MM-dd``; a long-term certificate's end date is ``长期``; a
   birth minute (出生时间) is local wall-clock ``yyyy-MM-dd HH:mm:00``, never converted.
5. Certificate face fields (照面信息) are keyed by the label printed on the certificate
   (``姓名``, ``公民身份号码``), in the order the type prints them, as
   ``node.certificates.model.TYPES`` names them; a certificate also carries its type's
   Chinese name (``zzlxmc``) beside the code.
6. A notice's ``kz`` (扩展) is a JSON object written as text; text that is not one is
   refused with the JSON reader's code (``malformed_body`` …) on ``kz``.
7. The federation's refusal of an application is a form ``sqbh`` (the application),
   ``thlb`` (退回类别, a label of ``REFUSAL_LABELS``), ``thdm`` (退回代码, the stable code),
   ``thzd`` (退回字段, the form key at fault, optional) and ``thyy`` (退回原因); the
   application's ``bjzt`` is then ``已退回``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from adapters.anhui.form import FormFields
from adapters.strict_json import decode_json_object
from adapters.translation import (
    CERTIFICATE_TYPES,
    REFUSAL_KINDS,
    CodeTable,
    Names,
    Translation,
    refusal,
    rename,
)
from node.cases.catalog import MODES
from node.certificates.model import CHINA_STANDARD_TIME, TYPES, CertificateType, FieldSpec
from node.certificates.revocation import REASONS
from node.platform.adapter import DialectError

PROVINCE: Final = "anhui"

STATUS_LABELS: Final = CodeTable(
    {
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
)
APPLICATION_STATUS_LABELS: Final = CodeTable({**STATUS_LABELS, "已退回": "refused"})
"""``bjzt`` as the applicant's view of an application shows it (rule 7)."""
ACTION_LABELS: Final = CodeTable(
    {
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
)
ROLE_LABELS: Final = CodeTable({"收件地": "accepting", "办理地": "handling"})
PROVINCE_LABELS: Final = CodeTable(
    {"上海市": "shanghai", "江苏省": "jiangsu", "浙江省": "zhejiang", "安徽省": "anhui"}
)
MODE_LABELS: Final[CodeTable[str, str]] = CodeTable({mode: mode for mode in MODES})
"""全程网办, 异地代收代办, 多地联办: the node's own names are already the labels."""
CODE_TYPE_LABELS: Final = CodeTable({"居民身份证号码": "111", "统一社会信用代码": "001"})
RESULT_LABELS: Final = CodeTable({"文书": "document", "证照": "certificate"})
MATERIAL_LABELS: Final = CodeTable({"上传材料": "upload", "电子证照": "certificate"})
LEVEL_LABELS: Final = CodeTable(
    {"非常满意": 5, "满意": 4, "基本满意": 3, "不满意": 2, "非常不满意": 1}
)
LICENSE_STATUS_LABELS: Final = CodeTable(
    {"有效": "valid", "冻结": "suspended", "注销": "revoked", "过期": "expired"}
)
REASON_LABELS: Final = CodeTable(
    {
        "换发补发": "superseded",
        "遗失": "lost",
        "持证人申请注销": "holder_request",
        "依法撤销吊销": "withdrawn_by_authority",
        "持证人死亡": "holder_deceased",
        "主体注销": "entity_deregistered",
        "核查中": "under_review",
    }
)
SEX_LABELS: Final = CodeTable({"男": "male", "女": "female"})
REFUSAL_LABELS: Final[CodeTable[str, str]] = CodeTable(
    dict(
        zip(
            ("申请人信息有误", "事项信息有误", "材料不全或有误", "申请记录无法识别", "其他"),
            REFUSAL_KINDS,
            strict=True,
        )
    )
)
"""``thlb`` (退回类别): the applicant, the matter, a material, the record, other."""
YES_NO_LABELS: Final = CodeTable({"是": True, "否": False})
"""``sfcf`` (是否重复): whether a delivery was already held."""
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


# --- what else the dialect writes its own way -----------------------------------------------


def _extra_text(extra: Mapping[str, Any]) -> str:
    return json.dumps(dict(extra), ensure_ascii=False, sort_keys=True)


def _read_extra(fields: FormFields, name: str) -> dict[str, Any]:
    """``kz``: a JSON object as text (rule 6); absent is empty."""
    text = fields.optional_text(name, max_length=20_000)
    if text is None:
        return {}
    try:
        return decode_json_object(text.encode(), what="kz value")
    except DialectError as error:
        raise DialectError(error.code, error.detail, field=fields.path(name)) from None


def _read_type_code(fields: FormFields, name: str) -> CertificateType:
    """A national certificate type code, which is text, not a label (rule 3)."""
    type_code = fields.text(name, max_length=21)
    if type_code not in CERTIFICATE_TYPES:
        raise DialectError(
            "unknown_label", "is not a known certificate type code", field=fields.path(name)
        )
    return CERTIFICATE_TYPES[type_code]


def _face_key(spec: FieldSpec) -> str:
    return spec.label


NAMES: Final = Names(
    party_name="xm",
    code_type="zjlx",
    code="zjhm",
    material_name="mc",
    certificate_id="zzbs",
    digest="sha256",
    result_kind="lx",
    document_digest="sha256",
    level="dj",
    comment="nr",
    case_id="bjbh",
    accepting="sjd",
    matter_code="sxbm",
    mode="blfs",
    applicant="sqr",
    materials="cl",
    submitted_at="tjsj",
    sequence="xh",
    action="czlx",
    by="czf",
    status="bjzt",
    notice_at="czsj",
    reason="yj",
    result="jg",
    evaluation="pj",
    due_at="cnsj",
    extra="kz",
    event_id="dtbh",
    event_at="czsj",
    reference="sqbh",
    handler="bld",
    entered_at="sqsj",
    acknowledged_at="qrsj",
    type_code="zzlxdm",
    type_name="zzlxmc",
    issuing_authority="bfjg",
    issuing_authority_code="bfjgdm",
    holder_name="czzt",
    holder_code_type="czztdmlx",
    holder_code="czztdm",
    issued_on="bfrq",
    valid_from="yxqqsrq",
    valid_until="yxqjzrq",
    certificate_status="zzzt",
    face="zmxx",
    since="ztsj",
    revocation_reason="yy",
    matter_name="sxmc",
    matter_name_en="sxywmc",
    department="bmmc",
    modes="blfs",
    material_kind="lx",
    promised_days="cnsx",
    refusal_kind="thlb",
    refusal_code="thdm",
    refusal_field="thzd",
    refusal_reason="thyy",
    refused_at="thsj",
    duplicate="sfcf",
)

ANHUI: Final = Translation[FormFields](
    names=NAMES,
    statuses=STATUS_LABELS,
    actions=ACTION_LABELS,
    roles=ROLE_LABELS,
    modes=MODE_LABELS,
    provinces=PROVINCE_LABELS,
    holder_code_types=CODE_TYPE_LABELS,
    result_kinds=RESULT_LABELS,
    material_kinds=MATERIAL_LABELS,
    certificate_statuses=LICENSE_STATUS_LABELS,
    reasons=REASON_LABELS,
    sexes=SEX_LABELS,
    yes_no=YES_NO_LABELS,
    refusal_kinds=REFUSAL_LABELS,
    levels=LEVEL_LABELS,
    write_instant=format_time,
    read_instant=read_time,
    write_date=str,
    read_date=read_date,
    write_minute=minute_to_dialect,
    read_minute=read_minute,
    write_number=str,
    write_extra=_extra_text,
    read_extra=_read_extra,
    face_key=_face_key,
    read_certificate_type=_read_type_code,
    long_term=LONG_TERM,
    face_in_type_order=True,
)
"""Every translation of the dialect, both ways (``adapters.translation``)."""


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
    return rename(field, _FIELD_NAMES)


def ok_body(result: Any) -> dict[str, Any]:
    return {"flag": True, "message": "成功", "result": result}


def error_body(code: str, detail: str, *, field: str = "") -> dict[str, Any]:
    return {"flag": False, "code": code, "message": detail, "field": field}


def read_error(data: bytes, status: int) -> DialectError:
    """The platform's refusal as a ``DialectError`` (a generic one if it is not in dialect)."""

    def read() -> tuple[str, str, str]:
        fields = FormFields(decode_json_object(data, what="error reply"))
        flag = fields.raw("flag")
        code = fields.text("code", max_length=64)
        detail = fields.text("message")
        field = fields.optional_text("field", max_length=200) or ""
        fields.finish()
        if flag is not False:
            raise DialectError("malformed_body", "a refusal has flag false")
        return code, detail, field

    return refusal(status, read)

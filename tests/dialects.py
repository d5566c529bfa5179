"""The four dialects as the adapter contract suite (``tests/test_adapter_contract.py``) runs
them: one ``Dialect`` each, holding only what differs between platforms (names, paths, field
names, sample payloads, how a reply is written); the behaviour asserted lives once, in the
suite. The per-province files (``tests/test_adapter_<province>.py``) use the same objects
for what only their dialect does."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import aiohttp
from hypothesis import strategies as st

from adapters.anhui import dialect as anhui
from adapters.anhui.adapter import AnhuiAdapter
from adapters.anhui.adapter import make_adapter as make_anhui
from adapters.anhui.dialect import ANHUI
from adapters.anhui.form import FormFields, encode_form, parse_form
from adapters.anhui.platform import BASE as ANHUI_BASE
from adapters.anhui.platform import FORM_TYPE
from adapters.anhui.platform import TOKEN_HEADER as ANHUI_TOKEN_HEADER
from adapters.anhui.platform import build_platform as build_anhui
from adapters.jiangsu import dialect as jiangsu
from adapters.jiangsu.adapter import JiangsuAdapter
from adapters.jiangsu.adapter import make_adapter as make_jiangsu
from adapters.jiangsu.dialect import JIANGSU
from adapters.jiangsu.platform import BASE as JIANGSU_BASE
from adapters.jiangsu.platform import TOKEN_HEADER as JIANGSU_TOKEN_HEADER
from adapters.jiangsu.platform import build_platform as build_jiangsu
from adapters.jiangsu.strict_xml import DECLARATION, Node, element, read_document, to_xml
from adapters.shanghai import dialect as shanghai
from adapters.shanghai.adapter import ShanghaiAdapter
from adapters.shanghai.adapter import make_adapter as make_shanghai
from adapters.shanghai.dialect import SHANGHAI
from adapters.shanghai.platform import BASE as SHANGHAI_BASE
from adapters.shanghai.platform import TOKEN_HEADER as SHANGHAI_TOKEN_HEADER
from adapters.shanghai.platform import build_platform as build_shanghai
from adapters.simulation.officer import plan_for
from adapters.strict_json import JsonObject
from adapters.translation import Translation
from adapters.zhejiang import dialect as zhejiang
from adapters.zhejiang.adapter import ZhejiangAdapter
from adapters.zhejiang.platform import APP_BASE as ZHEJIANG_APP_BASE
from adapters.zhejiang.platform import BASE as ZHEJIANG_BASE
from adapters.zhejiang.platform import build_platform as build_zhejiang
from adapters.zhejiang.signing import signed_headers
from node.platform.adapter import Application, CaseNotice, InboundCase, ProvinceAdapter
from tests import platforms
from tests.platforms import (
    BEYOND_RECURSION,
    DEEP,
    NUMBERS,
    REFUSAL,
    T0,
    TEXT,
    FakeClock,
    Platform,
    Running,
    application_body,
    json_body,
    nested,
)
from tests.platforms import mistyped as wrong_check_digit

SECRET: Final = "320506199211030025"
"""An ID number planted in every hostile reply: no refusal sentence may repeat it."""
REASON: Final = f"王静 {SECRET}"
"""The reason of the one event of a good feed page (its hostile copies carry it too)."""

# --- Zhejiang signs every request: its plain client does too --------------------------------

ZJ_APP_KEY: Final = "zj-test-app"
ZJ_APP_SECRET: Final = "zj-test-secret"
ZJ_CREDENTIALS: Final = {"app_key": ZJ_APP_KEY, "app_secret": ZJ_APP_SECRET}


class SignedRunning(Running):
    """The Zhejiang platform on 127.0.0.1, its adapter (on the platform's clock) and a plain
    HTTP client that signs what it sends (``token=False``: unsigned)."""

    def signed(self, method: str, target: str, data: bytes, **changes: Any) -> dict[str, str]:
        """Signing headers for a request, with the keyword arguments of ``signed_headers``
        (``now``, ``nonce``) or the credentials (``app_key``, ``app_secret``) changed."""
        arguments: dict[str, Any] = {"now": self.clock(), **ZJ_CREDENTIALS, **changes}
        return signed_headers(
            arguments.pop("app_key"), arguments.pop("app_secret"), method, target, data,
            **arguments,
        )  # fmt: skip

    async def send(
        self,
        method: str,
        target: str,
        data: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """Send with the given headers (signed correctly when None) and decode the answer."""
        sent = dict(self.signed(method, target, data) if headers is None else headers)
        if data:
            sent["Content-Type"] = content_type
        async with self.session.request(
            method, self.url + target, data=data or None, headers=sent
        ) as response:
            return response.status, await response.json()

    async def post(
        self, path: str, data: bytes, *, token: bool = True, content_type: str | None = None
    ) -> tuple[int, Any]:
        headers: dict[str, str] | None = None if token else {}
        return await self.send(
            "POST", path, data, headers=headers, content_type=content_type or "application/json"
        )

    async def get(self, path: str, *, token: bool = True, **query: str) -> tuple[int, Any]:
        from urllib.parse import urlencode

        target = f"{path}?{urlencode(query)}" if query else path
        return await self.send("GET", target, headers=None if token else {})


def zhejiang_adapter(url: str, clock: FakeClock, *, page_size: int = 100) -> ZhejiangAdapter:
    return ZhejiangAdapter(
        url, app_key=ZJ_APP_KEY, app_secret=ZJ_APP_SECRET, page_size=page_size, clock=clock
    )


# --- Jiangsu's XML: editing an element tree and reading a refusal ---------------------------


def edit(node: Node, **changes: Node | str | None) -> Node:
    """``node`` with its children named in ``changes`` replaced (None: removed) or added."""
    tag, children = node
    assert not isinstance(children, str)
    kept: list[Node] = []
    for child in children:
        if child[0] not in changes:
            kept.append(child)
        elif changes[child[0]] is not None:
            kept.append(_child(child[0], changes[child[0]]))
    named = {child[0] for child in children}
    kept += [_child(k, v) for k, v in changes.items() if k not in named and v is not None]
    return (tag, kept)


def _child(tag: str, value: Node | str | None) -> Node:
    assert value is not None
    return (tag, value) if isinstance(value, str) else value


def xml_refusal(data: bytes) -> dict[str, str]:
    """The fields of a Jiangsu ``<cwxx>`` error reply."""
    fields = read_document(data, "cwxx")
    error = {
        "cwdm": fields.text("cwdm"),
        "cwms": fields.text("cwms"),
        "cwzd": fields.optional_text("cwzd") or "",
    }
    fields.finish()
    return error


# --- one dialect ----------------------------------------------------------------------------


def _json_deep(feed: str) -> str:
    return "[" * DEEP + "]" * DEEP


def _json_cursor(text: str) -> str:
    return json.dumps(text)


Wire = Callable[[str, Any], Any]
"""(what: "case", "notice" or "event"; a record as the translation writes it) → the record
as the adapter reads it after it crossed the wire."""


@dataclass(frozen=True)
class Malformations:
    """A feed page with good and untranslatable records, and what the adapter makes of it."""

    page: bytes
    cursor: str
    kinds: Sequence[str]
    """The items' type names, in order."""
    malformed: Sequence[tuple[str, str, str]]
    """(reference, code, field) of each ``Malformed``, in order."""


Request = bytes | Callable[[dict[str, Any]], bytes]
"""A request's body, or how to write it from a seeded application's ``POST /v1/cases`` body."""
BadRequest = tuple[str, str, Request, str, str]
"""(id, path, body, the refusal's code, its field)."""


def flip_check_digit(code: str) -> str:
    """An ID number with its check digit wrong."""
    return code[:-1] + ("1" if code[-1] == "0" else "0")


@dataclass(frozen=True)
class Dialect:
    """What one province's platform does differently; every field is data or a one-line way
    of writing something in the dialect."""

    name: str
    platform: Platform
    """The simulated platform and the node's adapter to it."""
    translation: Translation[Any]
    stub_adapter: Callable[[str, float], ProvinceAdapter]
    """The adapter to a stub at a URL, with a timeout in seconds."""
    written: Callable[[Any], bytes]
    """A successful reply's body, from what the dialect's module writes."""
    refusal: Callable[[str, str, str], bytes]
    """A refusal's body in the dialect, from its code, sentence and field."""
    error_of: Callable[[int, Any], tuple[str, str]]
    """(code, field) of a refusal as the plain client decoded it, from its HTTP status and
    body, once the rest of the dialect's refusal (its numeric code, its sentence) is checked."""
    base: str
    """Where the node's endpoints of the platform live."""
    # -- the live platform's words -----------------------------------------------------------
    code: str
    """The province's six-digit code: the prefix of the case ids it hands out."""
    unknown_reference: str
    """An application number the platform never gave."""
    reference_field: str
    """The field an application's number is named by in refusals."""
    case_field: str
    """The field a case id is named by in refusals (of a conflicting acknowledgement)."""
    applicant_code_field: str
    """The applicant's ID number, in the dialect's words."""
    certificate_field: str
    """The field the platform's 404 for a certificate it does not hold names."""
    handler: str
    """Whose matter the seeded application is for."""
    inbound: Callable[..., InboundCase]
    """``platforms.inbound_case`` for this province's matters, as the tests deliver them."""
    accepting_code: str
    """The code of the province the inbound cases come from."""
    paging: Sequence[tuple[str, str, str]]
    """(path, query parameter, refusal code) of the feeds' paging."""
    deliver_path: str
    """Where the node delivers an inbound case."""
    case_request: Callable[[InboundCase], bytes]
    """An inbound case as the node's delivery carries it."""
    bad_requests: Sequence[BadRequest]
    """Requests that are not good dialect, and what the platform answers them."""
    wrong_media_types: Sequence[str]
    """Content types of a delivery the platform refuses with 415."""
    unauthorised: Callable[[str, FakeClock], ProvinceAdapter]
    """The node's adapter to the platform at a URL without its credentials (Zhejiang: with
    another app key)."""
    unauthorised_code: str
    """What the platform refuses that adapter, and a plain client without token, as."""
    unsigned_code: str
    """What the platform refuses a plain client's request without the token (or the
    signature) as."""
    # -- broken replies ----------------------------------------------------------------------
    unknown_certificate_status: Callable[[Mapping[str, Any]], bytes]
    """A certificate reply for ``held`` with a status outside the dialect's table."""
    status_field: str
    """The field its refusal names."""
    valid_revocation: bytes
    """A revocation list naming a certificate as still valid."""
    valid_revocation_field: str
    malformations: Callable[[], Malformations]
    undecodable: Sequence[tuple[str, bytes, int, str]]
    """(id, body, HTTP status, code) of replies to a feed poll that are not the dialect."""
    # -- the dialect both ways ---------------------------------------------------------------
    wire: Wire
    instants: st.SearchStrategy[float]
    text: st.SearchStrategy[str] = TEXT
    names: st.SearchStrategy[str] | None = None
    extra_values: st.SearchStrategy[Any] | None = None
    # -- a feed page, with holes for a hostile reply's parts ---------------------------------
    page: Callable[[str, str, str], str] = lambda feed, records, cursor: ""
    """(feed, the records as the dialect writes a list of them, the cursor as written) →
    the page's text; feed is "applications" or "events"."""
    records: Callable[[str], str] = lambda feed: ""
    """The written records of a good page of a feed: one event whose reason is ``REASON``."""
    deep: Callable[[str], str] = _json_deep
    """Written records nested ``DEEP`` levels."""
    cursor: Callable[[str], str] = _json_cursor
    """A cursor as written, from its text."""
    wrong_cursor: str = "1"
    """A cursor of the wrong kind, as written: a number, or elements where text belongs."""
    number_code: str = "number_too_large"
    """What a huge number written as the cursor is refused as."""
    huge_number_refusal: Callable[[str], bytes] = lambda number: f'{{"x": {number}}}'.encode()
    """A refusal's body holding ``number``."""
    content_type: str = "application/json"
    credentialed: Callable[[str, str], ProvinceAdapter] = field(
        default=lambda url, credential: ShanghaiAdapter(url)
    )
    """The adapter to a URL sending ``credential`` (its token or app key) to the platform."""

    def __str__(self) -> str:
        return self.name


# --- the four -------------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _json_wire(what: str, value: Any) -> Any:
    return JsonObject(json.loads(json.dumps(value)))


_XML_ROOTS: Final = {"case": "aj", "notice": "tz", "event": "dt"}
_FEED_ROOTS: Final = {"applications": ("sqlb", "sq"), "events": ("dtlb", "dt")}


def _xml_wire(what: str, value: Any) -> Any:
    root = _XML_ROOTS[what]
    return read_document(to_xml(element(root, value)), root)


def _form_wire(what: str, value: Any) -> Any:
    return FormFields(parse_form(encode_form(value)))


def _json_records(translation: Translation[Any]) -> Callable[[str], str]:
    def records(feed: str) -> str:
        record = translation.event_record("e1", "c-1", {"action": "accept", "reason": REASON}, T0)
        return json.dumps([record], ensure_ascii=False)

    return records


def _xml_page(feed: str, records: str, cursor: str) -> str:
    root = _FEED_ROOTS[feed][0]
    return DECLARATION.decode() + f"<{root}><xyyb>{cursor}</xyyb><sfyhx>N</sfyhx>{records}</{root}>"


def _xml_records(feed: str) -> str:
    record = JIANGSU.event_record("e1", "c-1", {"action": "accept", "reason": REASON}, T0)
    document = to_xml(element(_FEED_ROOTS[feed][1], record))
    return document.removeprefix(DECLARATION).decode()


def _xml_deep(feed: str) -> str:
    item = _FEED_ROOTS[feed][1]
    return f"<{item}>" + "<a>" * DEEP + "</a>" * DEEP + f"</{item}>"


def _revoked() -> dict[str, Any]:
    return {"certificate_id": "x", "status": "revoked", "since": T0, "reason": "lost"}


def _event(translation: Translation[Any], n: int) -> Any:
    return translation.event_record(f"e{n}", "c", {"action": "accept", "reason": "ok"}, T0)


# Shanghai: JSON, epoch milliseconds, numeric codes.


def _shanghai_malformations() -> Malformations:
    def good(n: int) -> dict[str, Any]:
        record: dict[str, Any] = _event(SHANGHAI, n)
        return record

    records = [
        good(1),
        {**good(2), "actionCode": 999},
        {**good(3), "eventTime": int(T0)},
        {k: v for k, v in good(4).items() if k != "caseId"},
        "not a record",
        good(5),
    ]
    return Malformations(
        _json({"records": records, "nextCursor": "6", "hasMore": False}),
        "6",
        ["PlatformEvent"] + ["Malformed"] * 4 + ["PlatformEvent"],
        [
            ("e2", "unknown_code", "actionCode"),
            ("e3", "bad_time", "eventTime"),
            ("e4", "missing_field", "caseId"),
            ("?", "invalid_field", "body"),
        ],
    )


_sh_inbound: Final = partial(platforms.inbound_case, "shanghai")


def _sh_error(status: int, reply: Any) -> tuple[str, str]:
    assert isinstance(reply["errorCode"], int) and reply["errorMsg"], reply
    return reply["errorType"], reply["errorField"]


def _sh_notice(**changes: Any) -> bytes:
    base = SHANGHAI.notice_to_dialect(
        CaseNotice("320000-20260302-00000000000000d1", 2, "accept", "handling", "accepted", T0)
    )
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


def _sh_case(**changes: Any) -> bytes:
    base = SHANGHAI.case_to_dialect(_sh_inbound("320000-20260302-00000000000000d2"))
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


def _sh_mistyped(body: dict[str, Any]) -> bytes:
    form = SHANGHAI.application_form(body)
    form["applicant"]["certNo"] = flip_check_digit(form["applicant"]["certNo"])
    return json_body(form)


_SH: Final = SHANGHAI_BASE
SHANGHAI_BAD_REQUESTS: Final[list[BadRequest]] = [
    ("malformed JSON", f"{_SH}/inboundCases", b'{"caseId": "x",', "malformed_body", ""),
    ("not an object", f"{_SH}/inboundCases", b"[1, 2]", "malformed_body", ""),
    ("missing field", f"{_SH}/inboundCases", _sh_case(caseId=None), "missing_field", "caseId"),
    ("unknown field", f"{_SH}/caseNotices", _sh_notice(colour="red"), "unknown_field", "colour"),
    (
        "unknown status code",
        f"{_SH}/caseNotices",
        _sh_notice(caseStatus=99),
        "unknown_status",
        "caseStatus",
    ),
    (
        "unknown action",
        f"{_SH}/caseNotices",
        _sh_notice(actionCode=999),
        "unknown_code",
        "actionCode",
    ),
    (
        "time in seconds",
        f"{_SH}/caseNotices",
        _sh_notice(noticeTime=int(T0)),
        "bad_time",
        "noticeTime",
    ),
    (
        "time as text",
        f"{_SH}/inboundCases",
        _sh_case(submitTime="2026-03-02 10:00:00"),
        "bad_time",
        "submitTime",
    ),
    (
        "time as float",
        f"{_SH}/caseNotices",
        _sh_notice(noticeTime=T0 * 1000 + 0.5),
        "bad_time",
        "noticeTime",
    ),
    (
        "non-UTF-8",
        f"{_SH}/inboundCases",
        _sh_case(matterCode="上海").replace("上海".encode(), "上海".encode("gbk")),
        "not_utf8",
        "",
    ),
    (
        "duplicate key",
        f"{_SH}/caseNotices",
        b'{"caseId": "a", "caseId": "b"}',
        "malformed_body",
        "",
    ),
    (
        "nested too deep",
        f"{_SH}/inboundCases",
        nested("shanghai", BEYOND_RECURSION)[0],
        "too_deep",
        "",
    ),
    (
        "huge number",
        f"{_SH}/caseNotices",
        b'{"seqNo": ' + b"9" * 5000 + b"}",
        "number_too_large",
        "",
    ),
    (
        "bad applicant code",
        f"{_SH}/applications",
        _sh_mistyped,
        "invalid_id_number",
        "applicant.certNo",
    ),
]


_SH_TOKEN: Final = "sh-test-token"
SHANGHAI_DIALECT: Final = Dialect(
    name="shanghai",
    platform=Platform(
        build_shanghai,
        credentials={"access_token": _SH_TOKEN},
        adapter=lambda url, clock: make_shanghai(url, credentials={"access_token": _SH_TOKEN}),
        token=(SHANGHAI_TOKEN_HEADER, _SH_TOKEN),
    ),
    translation=SHANGHAI,
    stub_adapter=lambda url, timeout: ShanghaiAdapter(url, timeout=timeout),
    written=_json,
    refusal=lambda code, detail, field: _json(shanghai.error_body(code, detail, field=field)),
    error_of=_sh_error,
    base=SHANGHAI_BASE,
    code="310000",
    unknown_reference="SHYW0",
    reference_field="applyNo",
    case_field="caseId",
    applicant_code_field="applicant.certNo",
    certificate_field="licenseId",
    handler="anhui",
    inbound=_sh_inbound,
    accepting_code="320000",
    paging=[
        (f"{SHANGHAI_BASE}/applications", "cursor", "invalid_cursor"),
        (f"{SHANGHAI_BASE}/events", "limit", "invalid_field"),
    ],
    deliver_path=f"{_SH}/inboundCases",
    case_request=lambda case: json_body(SHANGHAI.case_to_dialect(case)),
    bad_requests=SHANGHAI_BAD_REQUESTS,
    wrong_media_types=["text/plain"],
    unauthorised=lambda url, clock: make_shanghai(url, credentials={}),
    unauthorised_code="unauthorized",
    unsigned_code="unauthorized",
    unknown_certificate_status=lambda held: _json(
        {**SHANGHAI.certificate_to_dialect(held), "licenseStatus": 9}
    ),
    status_field="licenseStatus",
    valid_revocation=_json(
        {"records": [{**SHANGHAI.revocation_record(_revoked()), "licenseStatus": 1}]}
    ),
    valid_revocation_field="records[0].licenseStatus",
    malformations=_shanghai_malformations,
    undecodable=[
        ("non-utf8", b"\xff\xfe{}", 200, "not_utf8"),
        ("malformed", b"{not json", 200, "malformed_body"),
        ("array", b"[]", 200, "malformed_body"),
        ("missing nextCursor", b'{"records": []}', 200, "missing_field"),
        (
            "unknown field",
            b'{"records": [], "nextCursor": "1", "hasMore": false, "x": 1}',
            200,
            "unknown_field",
        ),
    ],
    wire=_json_wire,
    instants=st.integers(min_value=shanghai.EARLIEST_MS, max_value=shanghai.LATEST_MS - 1).map(
        lambda ms: ms / 1000
    ),
    page=lambda feed, records, cursor: (
        f'{{"records": {records}, "nextCursor": {cursor}, "hasMore": false}}'
    ),
    records=_json_records(SHANGHAI),
    credentialed=lambda url, credential: ShanghaiAdapter(url, access_token=credential, timeout=10),
)


# Jiangsu: strict XML, Beijing local time in whole seconds, letter codes.


def _jiangsu_malformations() -> Malformations:
    def good(n: int) -> Node:
        return jiangsu.event_record(f"e{n}", "c", {"action": "accept", "reason": "ok"}, T0)

    records = [
        good(1),
        edit(good(2), czlx="XX"),
        edit(good(3), sj=str(int(T0))),
        edit(good(4), ajbh=None),
        edit(good(5), dtbh=None),
        edit(good(6), jg=("jg", [("jglx", "WS")])),
        good(7),
        good(8),
    ]
    page = to_xml(("dtlb", [("xyyb", "8"), ("sfyhx", "N"), *records]))
    page = page.replace(
        b"<dtbh>e7</dtbh><ajbh>c</ajbh><czlx>SL</czlx><sj>",
        b'<dtbh>e7</dtbh><ajbh>c</ajbh><czlx>SL</czlx><sj lx="bj">',
    )
    return Malformations(
        page,
        "8",
        ["PlatformEvent"] + ["Malformed"] * 6 + ["PlatformEvent"],
        [
            ("e2", "unknown_code", "dt[2]/czlx"),
            ("e3", "bad_time", "dt[3]/sj"),
            ("e4", "missing_field", "dt[4]/ajbh"),
            ("?", "missing_field", "dt[5]/dtbh"),
            ("e6", "missing_field", "dt[6]/jg/sha256"),
            ("e7", "unknown_field", "dt[7]/sj/@lx"),
        ],
    )


BILLION_LAUGHS: Final = (
    b'<?xml version="1.0"?>\n<!DOCTYPE tz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">\n'.encode()
        for n in range(1, 10)
    )
    + b"]>\n<tz><ajbh>&lol9;</ajbh></tz>"
)
EXTERNAL_ENTITY: Final = (
    b'<?xml version="1.0"?>\n<!DOCTYPE aj [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
    b"<aj><ajbh>&secret;</ajbh></aj>"
)
XML: Final = "application/xml; charset=utf-8"
XML_TEXT: Final = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Cs", "Cc"),
        include_characters="\t\n\r",
        exclude_characters="\ufffe\uffff",
    ),
    min_size=1,
    max_size=30,
)
"""Any text XML 1.0 carries."""

_js_inbound: Final = partial(
    platforms.inbound_case,
    "jiangsu",
    accepting="shanghai",
    applicant={"name": "何佳", "code_type": "111", "code": "310117198908077983"},
    submitted_at=T0 - 31,
)


def _js_error(status: int, reply: Any) -> tuple[str, str]:
    error = xml_refusal(reply)
    assert error["cwms"], error
    return error["cwdm"], error["cwzd"]


def js_notice(**changes: Node | str | None) -> bytes:
    """A notice as Jiangsu's platform receives it, with elements changed (``edit``)."""
    base = jiangsu.notice_to_dialect(
        CaseNotice("310000-20260302-00000000000000d1", 2, "accept", "handling", "accepted", T0)
    )
    return to_xml(edit(base, **changes))


def js_case(**changes: Node | str | None) -> bytes:
    """An inbound case as Jiangsu's platform receives it, with elements changed."""
    base = jiangsu.case_to_dialect(_js_inbound("310000-20260302-00000000000000d2"))
    return to_xml(edit(base, **changes))


def _js_mistyped(body: dict[str, Any]) -> bytes:
    number = body["applicant"]["code"]
    return to_xml(jiangsu.application_form(body)).replace(
        number.encode(), flip_check_digit(number).encode()
    )


def _js_bad_digest(body: dict[str, Any]) -> bytes:
    return to_xml(jiangsu.application_form(body)).replace(b"0f" * 32, b"0F" * 32, 1)


PARAMETER_ENTITY: Final = (
    b'<?xml version="1.0"?>\n<!DOCTYPE aj [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">'
    b" %remote;]>\n<aj/>"
)
_JS: Final = JIANGSU_BASE
JIANGSU_BAD_REQUESTS: Final[list[BadRequest]] = [
    ("malformed XML", f"{_JS}/ajjs", b"<aj><ajbh>x</ajbh>", "malformed_body", ""),
    ("not XML", f"{_JS}/ajjs", b'{"caseId": "x"}', "malformed_body", ""),
    ("wrong root element", f"{_JS}/ajjs", js_notice(), "malformed_body", ""),
    ("undeclared entity", f"{_JS}/ajtz", b"<tz><ajbh>&nbsp;</ajbh></tz>", "malformed_body", ""),
    ("billion laughs", f"{_JS}/ajtz", BILLION_LAUGHS, "forbidden_xml", ""),
    ("external entity", f"{_JS}/ajjs", EXTERNAL_ENTITY, "forbidden_xml", ""),
    ("parameter entity", f"{_JS}/ajjs", PARAMETER_ENTITY, "forbidden_xml", ""),
    ("missing element", f"{_JS}/ajjs", js_case(ajbh=None), "missing_field", "ajbh"),
    ("empty element", f"{_JS}/ajjs", js_case(ajbh=""), "missing_field", "ajbh"),
    (
        "missing nested element",
        f"{_JS}/ajjs",
        js_case(sqr=("sqr", [("xm", "何佳"), ("zjlx", "111")])),
        "missing_field",
        "sqr/zjhm",
    ),
    ("unknown element", f"{_JS}/ajtz", js_notice(ys="red"), "unknown_field", "ys"),
    (
        "repeated element",
        f"{_JS}/ajtz",
        js_notice().replace(b"<xh>2</xh>", b"<xh>2</xh><xh>3</xh>"),
        "invalid_field",
        "xh",
    ),
    (
        "attribute",
        f"{_JS}/ajtz",
        js_notice().replace(b"<xh>", b'<xh lx="n">'),
        "unknown_field",
        "xh/@lx",
    ),
    (
        "text beside elements",
        f"{_JS}/ajtz",
        js_notice().replace(b"<xh>", b"oops<xh>"),
        "invalid_field",
        "tz",
    ),
    ("unknown status code", f"{_JS}/ajtz", js_notice(blzt="YSX"), "unknown_status", "blzt"),
    ("numeric status code", f"{_JS}/ajtz", js_notice(blzt="30"), "unknown_status", "blzt"),
    ("unknown action", f"{_JS}/ajtz", js_notice(czlx="XX"), "unknown_code", "czlx"),
    ("unknown province", f"{_JS}/ajjs", js_case(sjd="110000"), "unknown_code", "sjd"),
    ("sequence not a number", f"{_JS}/ajtz", js_notice(xh="二"), "invalid_field", "xh"),
    ("time in epoch seconds", f"{_JS}/ajtz", js_notice(sj=str(int(T0))), "bad_time", "sj"),
    (
        "time with separators",
        f"{_JS}/ajjs",
        js_case(tjsj="2026-03-02 10:00:00"),
        "bad_time",
        "tjsj",
    ),
    ("time without seconds", f"{_JS}/ajtz", js_notice(sj="202603021000"), "bad_time", "sj"),
    ("impossible date", f"{_JS}/ajtz", js_notice(sj="20260230100000"), "bad_time", "sj"),
    ("impossible hour", f"{_JS}/ajtz", js_notice(sj="20260302250000"), "bad_time", "sj"),
    ("time before 2000", f"{_JS}/ajtz", js_notice(sj="19991231235959"), "bad_time", "sj"),
    (
        "full-width digits",
        f"{_JS}/ajtz",
        js_notice(sj="２０２６０３０２１０００００"),
        "bad_time",
        "sj",
    ),
    ("bad deadline", f"{_JS}/ajtz", js_notice(qx="20260302"), "bad_time", "qx"),
    (
        "non-UTF-8 body",
        f"{_JS}/ajjs",
        js_case(sxbm="江苏").replace("江苏".encode(), "江苏".encode("gbk")),
        "not_utf8",
        "",
    ),
    (
        "declared GBK",
        f"{_JS}/ajjs",
        js_case().replace(b'encoding="UTF-8"', b'encoding="GBK"'),
        "not_utf8",
        "",
    ),
    ("extra not JSON", f"{_JS}/ajtz", js_notice(kzxx="{oops"), "invalid_field", "kzxx"),
    (
        "nested too deep",
        f"{_JS}/ajtz",
        nested("jiangsu", BEYOND_RECURSION)[0],
        "too_deep",
        "",
    ),
    (
        "extra nested too deep",
        f"{_JS}/ajtz",
        js_notice(kzxx="[" * BEYOND_RECURSION + "]" * BEYOND_RECURSION),
        "invalid_field",
        "kzxx",
    ),
    (
        "extra with a huge number",
        f"{_JS}/ajtz",
        js_notice(kzxx='{"n": ' + "9" * 5000 + "}"),
        "invalid_field",
        "kzxx",
    ),
    ("bad applicant code", f"{_JS}/sq", _js_mistyped, "invalid_id_number", "sqr/zjhm"),
    ("bad material digest", f"{_JS}/sq", _js_bad_digest, "invalid_digest", "cllb/cl[2]/sha256"),
]


_JS_TOKEN: Final = "js-test-token"
JIANGSU_DIALECT: Final = Dialect(
    name="jiangsu",
    platform=Platform(
        build_jiangsu,
        credentials={"access_token": _JS_TOKEN},
        adapter=lambda url, clock: make_jiangsu(url, credentials={"access_token": _JS_TOKEN}),
        token=(JIANGSU_TOKEN_HEADER, _JS_TOKEN),
        content_type=XML,
        decode=aiohttp.ClientResponse.read,
    ),
    translation=JIANGSU,
    stub_adapter=lambda url, timeout: JiangsuAdapter(url, timeout=timeout),
    written=to_xml,
    refusal=lambda code, detail, field: to_xml(jiangsu.error_body(code, detail, field=field)),
    error_of=_js_error,
    base=JIANGSU_BASE,
    code="320000",
    unknown_reference="JSZW0",
    reference_field="sqbh",
    case_field="ajbh",
    applicant_code_field="sqr/zjhm",
    certificate_field="zzbs",
    handler="anhui",
    inbound=_js_inbound,
    accepting_code="310000",
    paging=[
        (f"{JIANGSU_BASE}/sq", "yb", "invalid_cursor"),
        (f"{JIANGSU_BASE}/bjdt", "ts", "invalid_field"),
    ],
    deliver_path=f"{_JS}/ajjs",
    case_request=lambda case: to_xml(jiangsu.case_to_dialect(case)),
    bad_requests=JIANGSU_BAD_REQUESTS,
    wrong_media_types=["application/json", "application/xml; charset=gbk"],
    unauthorised=lambda url, clock: make_jiangsu(url, credentials={}),
    unauthorised_code="unauthorized",
    unsigned_code="unauthorized",
    unknown_certificate_status=lambda held: to_xml(
        edit(jiangsu.certificate_to_dialect(held), zzzt="DX")
    ),
    status_field="zzzt",
    valid_revocation=to_xml(("ztbglb", [edit(jiangsu.revocation_record(_revoked()), zzzt="YX")])),
    valid_revocation_field="ztbg[1]/zzzt",
    malformations=_jiangsu_malformations,
    undecodable=[
        ("non-utf8", b"\xff\xfe<sqlb/>", 200, "not_utf8"),
        ("malformed", b"<sqlb><xyyb>1</xyyb>", 200, "malformed_body"),
        ("json", b'{"records": []}', 200, "malformed_body"),
        ("wrong root", b"<dtlb><xyyb>1</xyyb><sfyhx>N</sfyhx></dtlb>", 200, "malformed_body"),
        ("missing xyyb", b"<sqlb><sfyhx>N</sfyhx></sqlb>", 200, "missing_field"),
        ("bad sfyhx", b"<sqlb><xyyb>1</xyyb><sfyhx>maybe</sfyhx></sqlb>", 200, "unknown_code"),
        (
            "unknown element",
            b"<sqlb><xyyb>1</xyyb><sfyhx>N</sfyhx><x>1</x></sqlb>",
            200,
            "unknown_field",
        ),
        ("billion laughs", BILLION_LAUGHS.replace(b"tz", b"sqlb"), 200, "forbidden_xml"),
        ("external entity", EXTERNAL_ENTITY.replace(b"aj", b"sqlb"), 200, "forbidden_xml"),
    ],
    wire=_xml_wire,
    # 2000-01-01 to 2099-12-31 23:59:59, Beijing time, whole seconds
    instants=st.integers(min_value=946_656_000, max_value=4_102_415_999).map(float),
    text=XML_TEXT,
    names=XML_TEXT,
    extra_values=NUMBERS | st.text(max_size=5),
    page=_xml_page,
    records=_xml_records,
    deep=_xml_deep,
    cursor=lambda text: text,
    wrong_cursor="<yb>1</yb>",
    # XML has no numbers: the cursor is text of at most 40 characters.
    number_code="invalid_field",
    huge_number_refusal=lambda number: f"<cwxx><cwdm>{number}</cwdm><cwms>x</cwms></cwxx>".encode(),
    content_type=XML,
    credentialed=lambda url, credential: JiangsuAdapter(url, access_token=credential, timeout=10),
)


# Zhejiang: a signed open platform, an envelope round every answer, ISO times, paged lists.


def _envelope(data: Any) -> dict[str, Any]:
    return {"code": "0", "msg": "success", "data": data}


_zj_inbound: Final = partial(platforms.inbound_case, "zhejiang")


def _zj_error(status: int, reply: Any) -> tuple[str, str]:
    error = reply["data"]["error"]
    assert reply["code"] == zhejiang.ERROR_CODES.get(error, f"{status}99") and reply["msg"]
    return error, reply["data"]["field"]


def zj_notice(**changes: Any) -> bytes:
    """A notice as Zhejiang's platform receives it, with fields changed (None: removed)."""
    base = zhejiang.ZHEJIANG.notice_to_dialect(
        CaseNotice("320000-20260302-00000000000000d1", 2, "accept", "handling", "accepted", T0)
    )
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


def zj_case(**changes: Any) -> bytes:
    """An inbound case as Zhejiang's platform receives it, with fields changed."""
    base = zhejiang.ZHEJIANG.case_to_dialect(_zj_inbound("320000-20260302-00000000000000d2"))
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


def _zj_mistyped(body: dict[str, Any]) -> bytes:
    form = zhejiang.ZHEJIANG.application_form(body)
    form["applicant"]["id_number"] = flip_check_digit(form["applicant"]["id_number"])
    return json_body(form)


_ZJ: Final = ZHEJIANG_BASE
ZHEJIANG_BAD_REQUESTS: Final[list[BadRequest]] = [
    ("malformed JSON", f"{_ZJ}/inbound_cases", b'{"case_id": "x",', "malformed_body", ""),
    ("not an object", f"{_ZJ}/inbound_cases", b"[1, 2]", "malformed_body", ""),
    ("missing field", f"{_ZJ}/inbound_cases", zj_case(case_id=None), "missing_field", "case_id"),
    ("unknown field", f"{_ZJ}/case_notices", zj_notice(colour="red"), "unknown_field", "colour"),
    (
        "unknown status word",
        f"{_ZJ}/case_notices",
        zj_notice(case_status="finished"),
        "unknown_status",
        "case_status",
    ),
    (
        "status as a number",
        f"{_ZJ}/case_notices",
        zj_notice(case_status=50),
        "unknown_status",
        "case_status",
    ),
    (
        "unknown action",
        f"{_ZJ}/case_notices",
        zj_notice(action_type="approve"),
        "unknown_code",
        "action_type",
    ),
    (
        "time as epoch milliseconds",
        f"{_ZJ}/case_notices",
        zj_notice(notice_time=int(T0 * 1000)),
        "bad_time",
        "notice_time",
    ),
    (
        "time without milliseconds",
        f"{_ZJ}/inbound_cases",
        zj_case(submit_time="2026-03-02T10:00:00+08:00"),
        "bad_time",
        "submit_time",
    ),
    (
        "time in UTC",
        f"{_ZJ}/inbound_cases",
        zj_case(submit_time="2026-03-02T02:00:00.000Z"),
        "bad_time",
        "submit_time",
    ),
    (
        "time as local text",
        f"{_ZJ}/case_notices",
        zj_notice(notice_time="2026-03-02 10:00:00"),
        "bad_time",
        "notice_time",
    ),
    (
        "impossible date",
        f"{_ZJ}/case_notices",
        zj_notice(notice_time="2026-02-30T10:00:00.000+08:00"),
        "bad_time",
        "notice_time",
    ),
    (
        "non-UTF-8",
        f"{_ZJ}/inbound_cases",
        zj_case(matter_code="浙江").replace("浙江".encode(), "浙江".encode("gbk")),
        "not_utf8",
        "",
    ),
    (
        "duplicate key",
        f"{_ZJ}/case_notices",
        b'{"case_id": "a", "case_id": "b"}',
        "malformed_body",
        "",
    ),
    (
        "nested too deep",
        f"{_ZJ}/inbound_cases",
        nested("zhejiang", BEYOND_RECURSION)[0],
        "too_deep",
        "",
    ),
    (
        "huge number",
        f"{_ZJ}/case_notices",
        b'{"seq_no": ' + b"9" * 5000 + b"}",
        "number_too_large",
        "",
    ),
    (
        "bad applicant code",
        f"{ZHEJIANG_APP_BASE}/applications",
        _zj_mistyped,
        "invalid_id_number",
        "applicant.id_number",
    ),
]


def _zhejiang_malformations() -> Malformations:
    def good(n: int) -> dict[str, Any]:
        record: dict[str, Any] = _event(zhejiang.ZHEJIANG, n)
        return record

    records = [
        good(1),
        {**good(2), "action_type": "approve"},
        {**good(3), "event_time": int(T0 * 1000)},
        {k: v for k, v in good(4).items() if k != "case_id"},
        "not a record",
        good(5),
    ]
    return Malformations(
        _json(_envelope(zhejiang.page(records, 10, False, "6"))),  # type: ignore[arg-type]
        "6",
        ["PlatformEvent"] + ["Malformed"] * 4 + ["PlatformEvent"],
        [
            ("e2", "unknown_code", "action_type"),
            ("e3", "bad_time", "event_time"),
            ("e4", "missing_field", "case_id"),
            ("?", "invalid_field", "body"),
        ],
    )


ZHEJIANG_DIALECT: Final = Dialect(
    name="zhejiang",
    platform=Platform(
        build_zhejiang,
        credentials=ZJ_CREDENTIALS,
        adapter=zhejiang_adapter,
        seed=13,
        running=SignedRunning,
    ),
    translation=zhejiang.ZHEJIANG,
    stub_adapter=lambda url, timeout: ZhejiangAdapter(
        url, app_key="k", app_secret="s", timeout=timeout
    ),
    written=lambda data: _json(_envelope(data)),
    refusal=lambda code, detail, field: _json(zhejiang.error_body(code, detail, field=field)),
    error_of=_zj_error,
    base=ZHEJIANG_BASE,
    code="330000",
    unknown_reference="ZLB0",
    reference_field="apply_no",
    case_field="case_id",
    applicant_code_field="applicant.id_number",
    certificate_field="license_id",
    handler="anhui",
    inbound=_zj_inbound,
    accepting_code="320000",
    paging=[
        (f"{ZHEJIANG_BASE}/applications", "page_token", "invalid_page"),
        (f"{ZHEJIANG_BASE}/events", "page_size", "invalid_page"),
    ],
    deliver_path=f"{_ZJ}/inbound_cases",
    case_request=lambda case: json_body(zhejiang.ZHEJIANG.case_to_dialect(case)),
    bad_requests=ZHEJIANG_BAD_REQUESTS,
    wrong_media_types=["text/plain"],
    unauthorised=lambda url, clock: ZhejiangAdapter(
        url, app_key="x", app_secret=ZJ_APP_SECRET, clock=clock
    ),
    unauthorised_code="unknown_app_key",
    unsigned_code="unsigned_request",
    unknown_certificate_status=lambda held: _json(
        _envelope({**zhejiang.ZHEJIANG.certificate_to_dialect(held), "license_status": "valid"})
    ),
    status_field="data.license_status",
    valid_revocation=_json(
        _envelope(
            zhejiang.page(
                [
                    {
                        **zhejiang.ZHEJIANG.revocation_record(_revoked()),
                        "license_status": "effective",
                    }
                ],
                100,
                False,
                "",
            )
        )
    ),
    valid_revocation_field="license_status",
    malformations=_zhejiang_malformations,
    undecodable=[
        ("non-utf8", b"\xff\xfe{}", 200, "not_utf8"),
        ("malformed", b"{not json", 200, "malformed_body"),
        ("array", b"[]", 200, "malformed_body"),
        (
            "not the envelope",
            b'{"records": [], "nextCursor": "1", "hasMore": false}',
            200,
            "missing_field",
        ),
        ("null data", b'{"code": "0", "msg": "success", "data": null}', 200, "invalid_field"),
        ("numeric code", b'{"code": 0, "msg": "success", "data": {}}', 200, "invalid_field"),
        (
            "unknown envelope field",
            b'{"code": "0", "msg": "ok", "data": {}, "extra": 1}',
            200,
            "unknown_field",
        ),
        (
            "page missing fields",
            b'{"code": "0", "msg": "ok", "data": {"items": []}}',
            200,
            "missing_field",
        ),
        (
            "page unknown field",
            b'{"code": "0", "msg": "ok", "data": {"items": [], "page_size": 1, '
            b'"has_more": false, "next_page_token": "", "total": 0}}',
            200,
            "unknown_field",
        ),
        (
            "page over its size",
            b'{"code": "0", "msg": "ok", "data": {"items": [1, 2], "page_size": 1, '
            b'"has_more": false, "next_page_token": "2"}}',
            200,
            "invalid_field",
        ),
        (
            "refusal with HTTP 200",
            b'{"code": "40102", "msg": "bad", "data": {"error": "bad_signature", "field": ""}}',
            200,
            "bad_signature",
        ),
        (
            "refusal without data",
            b'{"code": "40104", "msg": "replayed", "data": null}',
            401,
            "replayed_nonce",
        ),
        ("refusal not in dialect", b"<html>gateway says no</html>", 403, "http_403"),
    ],
    wire=_json_wire,
    instants=st.integers(min_value=zhejiang.EARLIEST_MS, max_value=zhejiang.LATEST_MS - 1).map(
        lambda ms: ms / 1000
    ),
    page=lambda feed, records, cursor: (
        '{"code": "0", "msg": "success", "data": {"items": '
        f'{records}, "page_size": 100, "has_more": false, "next_page_token": {cursor}}}}}'
    ),
    records=_json_records(zhejiang.ZHEJIANG),
    credentialed=lambda url, credential: ZhejiangAdapter(
        url, app_key=credential, app_secret="s", timeout=10
    ),
)


# Anhui: form-encoded requests, JSON replies with flag/result, Chinese labels, local time.


_ah_inbound: Final = partial(platforms.inbound_case, "anhui", submitted_at=T0 - 30)
AH_CASE_ID: Final = "320000-20260302-00000000000000d1"


def _ah_error(status: int, reply: Any) -> tuple[str, str]:
    assert reply["flag"] is False and reply["message"], reply
    return reply["code"], reply["field"]


def ah_notice(**changes: str | None) -> bytes:
    """A notice as Anhui's platform receives it, with fields changed (None: removed)."""
    base = ANHUI.notice_to_dialect(
        CaseNotice(AH_CASE_ID, 2, "accept", "handling", "accepted", T0, due_at=T0 + 86400)
    )
    base.update(changes)
    return encode_form({k: v for k, v in base.items() if v is not None})


def ah_case(**changes: str | None) -> bytes:
    """An inbound case as Anhui's platform receives it, with fields changed."""
    base = ANHUI.case_to_dialect(_ah_inbound("320000-20260302-00000000000000d2"))
    base.update(changes)
    return encode_form({k: v for k, v in base.items() if v is not None})


def gbk_form(form: bytes) -> bytes:
    """The same form with its Chinese percent-escaped as GBK instead of UTF-8."""
    return urlencode(parse_qsl(form.decode(), keep_blank_values=True), encoding="gbk").encode()


def _ah_mistyped(body: dict[str, Any]) -> bytes:
    form = ANHUI.application_form(body)
    form["sqr"]["zjhm"] = flip_check_digit(form["sqr"]["zjhm"])
    return encode_form(form)


_AH: Final = ANHUI_BASE
ANHUI_BAD_REQUESTS: Final[list[BadRequest]] = [
    (
        "pair without =",
        f"{_AH}/bj/js",
        b"bjbh&sjd=%E6%B1%9F%E8%8B%8F%E7%9C%81",
        "malformed_body",
        "",
    ),
    ("empty pair", f"{_AH}/bj/ztgx", ah_notice() + b"&&xh=2", "malformed_body", ""),
    (
        "bad escape",
        f"{_AH}/bj/js",
        ah_case(sxbm="%ZZ").replace(b"%25ZZ", b"%ZZ"),
        "malformed_body",
        "",
    ),
    ("key given twice", f"{_AH}/bj/ztgx", ah_notice() + b"&xh=3", "malformed_body", "xh"),
    ("key outside the grammar", f"{_AH}/bj/ztgx", ah_notice() + b"&Xh=3", "malformed_body", "Xh"),
    ("list with a gap", f"{_AH}/bj/js", ah_case() + b"&cl[7].mc=x", "malformed_body", "cl[3]"),
    ("shape conflict", f"{_AH}/bj/js", ah_case() + b"&sqr=x", "malformed_body", "sqr"),
    ("missing field", f"{_AH}/bj/js", ah_case(bjbh=None), "missing_field", "bjbh"),
    ("empty field", f"{_AH}/bj/ztgx", ah_notice(bjbh=""), "missing_field", "bjbh"),
    (
        "missing nested field",
        f"{_AH}/bj/js",
        ah_case().replace(b"sqr.zjhm", b"sqr.zjhx"),
        "missing_field",
        "sqr.zjhm",
    ),
    ("unknown field", f"{_AH}/bj/ztgx", ah_notice(ys="红"), "unknown_field", "ys"),
    (
        "unknown status label",
        f"{_AH}/bj/ztgx",
        ah_notice(bjzt="已完成"),
        "unknown_status",
        "bjzt",
    ),
    ("status as a code", f"{_AH}/bj/ztgx", ah_notice(bjzt="30"), "unknown_status", "bjzt"),
    ("unknown action label", f"{_AH}/bj/ztgx", ah_notice(czlx="审核"), "unknown_label", "czlx"),
    ("unknown province label", f"{_AH}/bj/js", ah_case(sjd="江苏"), "unknown_label", "sjd"),
    ("sequence not a number", f"{_AH}/bj/ztgx", ah_notice(xh="02"), "invalid_field", "xh"),
    (
        "ISO time with T",
        f"{_AH}/bj/ztgx",
        ah_notice(czsj="2026-03-02T10:00:00"),
        "bad_time",
        "czsj",
    ),
    (
        "time with offset",
        f"{_AH}/bj/ztgx",
        ah_notice(czsj="2026-03-02 10:00:00+08:00"),
        "bad_time",
        "czsj",
    ),
    (
        "time with fraction",
        f"{_AH}/bj/js",
        ah_case(tjsj="2026-03-02 10:00:00.5"),
        "bad_time",
        "tjsj",
    ),
    ("one-digit fields", f"{_AH}/bj/js", ah_case(tjsj="2026-3-2 10:00:00"), "bad_time", "tjsj"),
    ("epoch seconds", f"{_AH}/bj/ztgx", ah_notice(czsj="1772416800"), "bad_time", "czsj"),
    (
        "no such day",
        f"{_AH}/bj/ztgx",
        ah_notice(cnsj="2026-02-30 10:00:00"),
        "bad_time",
        "cnsj",
    ),
    ("before 2000", f"{_AH}/bj/js", ah_case(tjsj="1999-12-31 23:59:59"), "bad_time", "tjsj"),
    ("GBK percent-escapes", f"{_AH}/bj/js", gbk_form(ah_case()), "not_utf8", ""),
    (
        "GBK raw bytes",
        f"{_AH}/bj/js",
        "sqr.xm=王静".encode("gbk") + b"&" + ah_case(),
        "not_utf8",
        "",
    ),
    ("bad extra JSON", f"{_AH}/bj/ztgx", ah_notice(kz="{not json"), "malformed_body", "kz"),
    (
        "extra nested too deep",
        f"{_AH}/bj/ztgx",
        ah_notice(kz="[" * BEYOND_RECURSION + "]" * BEYOND_RECURSION),
        "too_deep",
        "kz",
    ),
    (
        "extra with a huge number",
        f"{_AH}/bj/ztgx",
        ah_notice(kz='{"n": ' + "9" * 5000 + "}"),
        "number_too_large",
        "kz",
    ),
    ("bad applicant code", f"{_AH}/sq/tj", _ah_mistyped, "invalid_id_number", "sqr.zjhm"),
]


def _anhui_malformations() -> Malformations:
    def good(n: int) -> dict[str, Any]:
        record: dict[str, Any] = _event(ANHUI, n)
        return record

    rows = [
        good(1),
        {**good(2), "czlx": "审批"},
        {**good(3), "czsj": "2026-03-02T10:00:00+08:00"},
        {k: v for k, v in good(4).items() if k != "bjbh"},
        {**good(5), "czsj": 1772416800},
        "not a row",
        good(7),
    ]
    return Malformations(
        _json(anhui.ok_body({"rows": rows, "nextCursor": "7", "hasMore": False})),
        "7",
        ["PlatformEvent"] + ["Malformed"] * 5 + ["PlatformEvent"],
        [
            ("e2", "unknown_label", "czlx"),
            ("e3", "bad_time", "czsj"),
            ("e4", "missing_field", "bjbh"),
            ("e5", "invalid_field", "czsj"),
            ("?", "invalid_field", "body"),
        ],
    )


def _anhui_wire(what: str, value: Any) -> Any:
    # Anhui's requests are forms; its replies carry the same shapes as JSON.
    if what == "event":
        return FormFields(json.loads(json.dumps(value)))
    return _form_wire(what, value)


_AH_TOKEN: Final = "ah-test-token"
ANHUI_DIALECT: Final = Dialect(
    name="anhui",
    platform=Platform(
        build_anhui,
        credentials={"token": _AH_TOKEN},
        adapter=lambda url, clock: make_anhui(url, credentials={"token": _AH_TOKEN}),
        token=(ANHUI_TOKEN_HEADER, _AH_TOKEN),
        content_type=FORM_TYPE,
    ),
    translation=ANHUI,
    stub_adapter=lambda url, timeout: AnhuiAdapter(url, timeout=timeout),
    written=lambda data: _json(anhui.ok_body(data)),
    refusal=lambda code, detail, field: _json(anhui.error_body(code, detail, field=field)),
    error_of=_ah_error,
    base=ANHUI_BASE,
    code="340000",
    unknown_reference="WSTB0",
    reference_field="sqbh",
    case_field="bjbh",
    applicant_code_field="sqr.zjhm",
    certificate_field="zzbs",
    handler="shanghai",
    inbound=_ah_inbound,
    accepting_code="320000",
    paging=[
        (f"{ANHUI_BASE}/sq/lb", "cursor", "invalid_cursor"),
        (f"{ANHUI_BASE}/bjdt/lb", "limit", "invalid_field"),
    ],
    deliver_path=f"{_AH}/bj/js",
    case_request=lambda case: encode_form(ANHUI.case_to_dialect(case)),
    bad_requests=ANHUI_BAD_REQUESTS,
    wrong_media_types=["application/json"],
    unauthorised=lambda url, clock: make_anhui(url, credentials={}),
    unauthorised_code="unauthorized",
    unsigned_code="unauthorized",
    unknown_certificate_status=lambda held: _json(
        anhui.ok_body({**ANHUI.certificate_to_dialect(held), "zzzt": "正常"})
    ),
    status_field="zzzt",
    valid_revocation=_json(
        anhui.ok_body({"rows": [{**ANHUI.revocation_record(_revoked()), "zzzt": "有效"}]})
    ),
    valid_revocation_field="rows[0].zzzt",
    malformations=_anhui_malformations,
    undecodable=[
        ("non-utf8", b"\xff\xfe{}", 200, "not_utf8"),
        ("malformed", b"{not json", 200, "malformed_body"),
        ("array", b"[]", 200, "malformed_body"),
        ("no flag", b'{"message": "ok", "result": {}}', 200, "missing_field"),
        (
            "no nextCursor",
            b'{"flag": true, "message": "ok", "result": {"rows": []}}',
            200,
            "missing_field",
        ),
        (
            "unknown",
            b'{"flag": true, "message": "ok", "result": {"rows": [], "nextCursor": "1",'
            b' "hasMore": false}, "x": 1}',
            200,
            "unknown_field",
        ),
        (
            "flag false",
            b'{"flag": false, "code": "busy", "message": "try later", "field": ""}',
            200,
            "busy",
        ),
    ],
    wire=_anhui_wire,
    instants=st.integers(
        min_value=int(anhui.EARLIEST.timestamp()), max_value=int(anhui.LATEST.timestamp()) - 1
    ).map(float),
    page=lambda feed, records, cursor: (
        '{"flag": true, "message": "成功", "result": {"rows": '
        f'{records}, "nextCursor": {cursor}, "hasMore": false}}}}'
    ),
    records=_json_records(ANHUI),
    credentialed=lambda url, credential: AnhuiAdapter(url, token=credential, timeout=10),
)


DIALECTS: Final = (SHANGHAI_DIALECT, JIANGSU_DIALECT, ZHEJIANG_DIALECT, ANHUI_DIALECT)
BY_NAME: Final = {d.name: d for d in DIALECTS}


# --- what the per-province files share ------------------------------------------------------


async def seeded_application(d: Dialect, running: Running, *, mistyped: bool = False) -> str:
    """The number of an application for a seeded person, submitted at the platform (with its
    ID number's check digit wrong if ``mistyped``, past the platform's own checks)."""
    body = application_body(await running.fixtures(), handler=d.handler)
    if mistyped:
        return running.platform.submit_application(wrong_check_digit(body), checked=False).reference
    return running.platform.submit_application(body).reference


async def refused_application(d: Dialect, running: Running) -> str:
    """The number of a mistyped application the node's adapter has read and refused with
    ``REFUSAL``."""
    reference = await seeded_application(d, running, mistyped=True)
    [item] = (await running.adapter.poll_applications(None)).items
    assert isinstance(item, Application) and item.reference == reference
    await running.adapter.reject_application(reference, REFUSAL)
    return reference


def straight_through_cases(d: Dialect, count: int) -> list[str]:
    """Ids of cases (from the province the tests' cases come from) the officer accepts and
    completes without asking for a supplement."""
    ids = (f"{d.accepting_code}-20260302-{n:016x}" for n in range(10_000))
    plans = ((case_id, plan_for(d.platform.seed, case_id)) for case_id in ids)
    chosen = [c for c, plan in plans if plan.accept and plan.complete and not plan.supplement]
    return chosen[:count]

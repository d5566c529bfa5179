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
from adapters.strict_json import JsonObject
from adapters.translation import Translation
from adapters.zhejiang import dialect as zhejiang
from adapters.zhejiang.adapter import ZhejiangAdapter
from adapters.zhejiang.platform import BASE as ZHEJIANG_BASE
from adapters.zhejiang.platform import build_platform as build_zhejiang
from adapters.zhejiang.signing import signed_headers
from node.platform.adapter import InboundCase, ProvinceAdapter
from tests import platforms
from tests.platforms import DEEP, NUMBERS, T0, TEXT, FakeClock, Platform, Running

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
    error_of: Callable[[Any], tuple[str, str]]
    """(code, field) of a refusal as the plain client decoded it."""
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
    error_of=lambda reply: (reply["errorType"], reply["errorField"]),
    base=SHANGHAI_BASE,
    code="310000",
    unknown_reference="SHYW0",
    reference_field="applyNo",
    case_field="caseId",
    applicant_code_field="applicant.certNo",
    certificate_field="licenseId",
    handler="anhui",
    inbound=partial(platforms.inbound_case, "shanghai"),
    accepting_code="320000",
    paging=[
        (f"{SHANGHAI_BASE}/applications", "cursor", "invalid_cursor"),
        (f"{SHANGHAI_BASE}/events", "limit", "invalid_field"),
    ],
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
    error_of=lambda reply: (xml_refusal(reply)["cwdm"], xml_refusal(reply)["cwzd"]),
    base=JIANGSU_BASE,
    code="320000",
    unknown_reference="JSZW0",
    reference_field="sqbh",
    case_field="ajbh",
    applicant_code_field="sqr/zjhm",
    certificate_field="zzbs",
    handler="anhui",
    inbound=partial(
        platforms.inbound_case,
        "jiangsu",
        accepting="shanghai",
        applicant={"name": "何佳", "code_type": "111", "code": "310117198908077983"},
        submitted_at=T0 - 31,
    ),
    accepting_code="310000",
    paging=[
        (f"{JIANGSU_BASE}/sq", "yb", "invalid_cursor"),
        (f"{JIANGSU_BASE}/bjdt", "ts", "invalid_field"),
    ],
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
    error_of=lambda reply: (reply["data"]["error"], reply["data"]["field"]),
    base=ZHEJIANG_BASE,
    code="330000",
    unknown_reference="ZLB0",
    reference_field="apply_no",
    case_field="case_id",
    applicant_code_field="applicant.id_number",
    certificate_field="license_id",
    handler="anhui",
    inbound=partial(platforms.inbound_case, "zhejiang"),
    accepting_code="320000",
    paging=[
        (f"{ZHEJIANG_BASE}/applications", "page_token", "invalid_page"),
        (f"{ZHEJIANG_BASE}/events", "page_size", "invalid_page"),
    ],
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
    error_of=lambda reply: (reply["code"], reply["field"]),
    base=ANHUI_BASE,
    code="340000",
    unknown_reference="WSTB0",
    reference_field="sqbh",
    case_field="bjbh",
    applicant_code_field="sqr.zjhm",
    certificate_field="zzbs",
    handler="shanghai",
    inbound=partial(platforms.inbound_case, "anhui", submitted_at=T0 - 30),
    accepting_code="320000",
    paging=[
        (f"{ANHUI_BASE}/sq/lb", "cursor", "invalid_cursor"),
        (f"{ANHUI_BASE}/bjdt/lb", "limit", "invalid_field"),
    ],
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

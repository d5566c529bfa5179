"""What only the Jiangsu platform does: its XML receipts and progress as the applicant sees
them, the applicant's evaluation, its strict XML (entity bombs, paging, receipts that must
name the case), and the dialect's times, paths and code tables. Everything every adapter
does is in ``tests/test_adapter_contract.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.jiangsu import dialect
from adapters.jiangsu.adapter import JiangsuAdapter
from adapters.jiangsu.dialect import JIANGSU
from adapters.jiangsu.platform import BASE
from adapters.jiangsu.strict_xml import Node, read_document, to_xml
from node.cases.catalog import MODES
from node.cases.events import parse_event
from node.certificates.model import TYPES
from node.certificates.revocation import REASONS
from node.platform.adapter import (
    Application,
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    PlatformEvent,
)
from tests import platforms
from tests.dialects import (
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    JIANGSU_DIALECT,
    XML_TEXT,
    edit,
    js_case,
    refused_application,
    seeded_application,
)
from tests.dialects import xml_refusal as refusal
from tests.platforms import REFUSAL, STUB_TIMEOUT, T0, application_body

jiangsu = JIANGSU_DIALECT.platform.serve
inbound_case = JIANGSU_DIALECT.inbound


# --- the platform as the applicant sees it --------------------------------------------------


async def test_receipt_and_progress_in_dialect(tmp_path: Path) -> None:
    """An application entered in the dialect is answered 201 with a <sqhz> receipt (its JSZW
    number, YTJ, the time in Beijing digits), and once acknowledged its <sqjd> progress shows
    the federation case."""
    async with jiangsu(tmp_path) as js:
        body = application_body(await js.fixtures())
        status, data = await js.post(
            f"{BASE}/sq", to_xml(dialect.application_form(body)), token=False
        )
        assert status == 201, data
        receipt = read_document(data, "sqhz")
        reference = receipt.text("sqbh")
        assert reference.startswith("JSZW20260302")
        assert receipt.text("blzt") == "YTJ" and receipt.text("sqsj") == "20260302100000"

        await js.adapter.acknowledge(reference, "320000-20260302-0123456789abcdef")
        status, data = await js.get(f"{BASE}/sq/{reference}")
        progress = read_document(data, "sqjd")
        assert status == 200
        assert progress.text("ajbh") == "320000-20260302-0123456789abcdef"
        assert progress.text("blzt") == "YTJ" and progress.objects("tzlb") == []


async def test_refusal_as_the_applicant_sees_it(tmp_path: Path) -> None:
    """The applicant sees the refusal as a <th> with its kind, code, element path and reason
    (已退回, YTH); the same <th> sent again is answered as a duplicate; the adapter's own
    Malformed refusal is kind JL with the element path; a <th> of the wrong kind is refused."""
    async with jiangsu(tmp_path) as js:
        refused = await refused_application(JIANGSU_DIALECT, js)
        status, data = await js.get(f"{BASE}/sq/{refused}", token=False)
        shown = read_document(data, "sqjd")
        assert status == 200 and shown.text("blzt") == "YTH" and not shown.has("ajbh")
        held = shown.obj("th")
        assert [held.text(name) for name in ("thlb", "thdm", "thzd", "thyy", "thsj")] == [
            "SQR",
            "invalid_id_number",
            "sqr/zjhm",
            REFUSAL.reason,
            "20260302100000",
        ]
        status, data = await js.post(
            f"{BASE}/sq/{refused}/th", to_xml(dialect.refusal_to_dialect(REFUSAL))
        )
        assert status == 200 and read_document(data, "thhz").text("sfcf") == "Y"

        unreadable = await seeded_application(JIANGSU_DIALECT, js)
        own = ApplicationRefusal("unknown_code", "sq[1]/blfs", "is not a code", in_dialect=True)
        await js.adapter.reject_application(unreadable, own)
        held = read_document((await js.get(f"{BASE}/sq/{unreadable}"))[1], "sqjd").obj("th")
        assert (held.text("thlb"), held.text("thzd")) == ("JL", "sq[1]/blfs")

        wrong_kind = edit(dialect.refusal_to_dialect(REFUSAL), thlb="CL")
        fresh = await seeded_application(JIANGSU_DIALECT, js)
        status, data = await js.post(f"{BASE}/sq/{fresh}/th", to_xml(wrong_kind))
        assert (status, refusal(data)["cwdm"], refusal(data)["cwzd"]) == (
            400,
            "invalid_field",
            "thlb",
        )
        assert js.platform.store.counts()["refusals"] == 2


async def test_applicant_evaluation_reaches_the_node(tmp_path: Path) -> None:
    """Once the node reports a case completed, the applicant's evaluation comes through with
    its level, and the applicant sees the result when following the application."""
    async with jiangsu(tmp_path) as js:
        body = application_body(await js.fixtures())
        _, data = await js.post(f"{BASE}/sq", to_xml(dialect.application_form(body)), token=False)
        reference = read_document(data, "sqhz").text("sqbh")
        case_id = "320000-20260302-00000000000000a1"
        await js.adapter.acknowledge(reference, case_id)
        result = {"kind": "document", "document_sha256": "ab" * 32}
        for notice in (
            CaseNotice(case_id, 2, "deliver", "accepting", "delivered", T0),
            CaseNotice(case_id, 3, "accept", "handling", "accepted", T0 + 60, reason="受理"),
            CaseNotice(case_id, 4, "complete", "handling", "completed", T0 + 120, result=result),
        ):
            await js.adapter.deliver_update(notice)
        js.clock.now += 7200
        js.platform.people.work()

        page = await js.adapter.poll_events(None)
        assert len(page.items) == 1 and isinstance(page.items[0], PlatformEvent)
        evaluation = page.items[0]
        assert evaluation.case_id == case_id and evaluation.body["action"] == "evaluate"
        assert evaluation.body["level"] in range(1, 6)
        parse_event(evaluation.body)

        _, data = await js.get(f"{BASE}/sq/{reference}")
        progress = read_document(data, "sqjd")
        assert progress.text("blzt") == "BJ"
        assert progress.obj("jg").text("sha256") == "ab" * 32
        assert len(progress.objects("tzlb")) == 3


async def test_repeated_notice_is_answered_as_a_duplicate(tmp_path: Path) -> None:
    """A notice the platform already holds is answered 200 with a <tzhz> saying sfcf Y."""
    async with jiangsu(tmp_path) as js:
        case = inbound_case("310000-20260302-00000000000000c1")
        await js.adapter.deliver_case(case)
        notice = CaseNotice(case.case_id, 2, "accept", "handling", "accepted", T0)
        await js.adapter.deliver_update(notice)
        again = await js.post(f"{BASE}/ajtz", to_xml(dialect.notice_to_dialect(notice)))
        assert again[0] == 200 and read_document(again[1], "tzhz").text("sfcf") == "Y"


async def test_long_term_certificates_come_through(tmp_path: Path) -> None:
    """A certificate valid 长期 (without end) comes through with valid_until None."""
    async with jiangsu(tmp_path) as js:
        library = js.platform.store.certificates()
        long_term = next(c for c in library if c["valid_until"] is None)
        assert await js.adapter.fetch_certificate(long_term["certificate_id"]) == long_term


async def test_fixtures(tmp_path: Path) -> None:
    """The platform serves its seeded people, companies and certificates at /sim/fixtures,
    without a token."""
    async with jiangsu(tmp_path) as js:
        fixtures = await js.fixtures()
        library = js.platform.store.certificates()
    assert fixtures["province"] == "jiangsu" and fixtures["seed"] == 11
    assert fixtures["persons"] and fixtures["companies"]
    assert [c["certificate_id"] for c in fixtures["certificates"]] == [
        c["certificate_id"] for c in library
    ]
    provinces = [p["id_number"][:2] for p in fixtures["persons"]]
    assert set(provinces) <= {"31", "32", "33", "34"} and provinces.count("32") > len(provinces) / 2


# --- strict XML at the platform -------------------------------------------------------------


async def test_refusals_never_echo_the_payload(tmp_path: Path) -> None:
    """An entity bomb is refused before expansion: the reply is small and repeats nothing of
    it, and no file named by an external entity is read into it."""
    async with jiangsu(tmp_path) as js:
        for data in (BILLION_LAUGHS, EXTERNAL_ENTITY):
            status, reply = await js.post(f"{BASE}/ajjs", data)
            assert status == 400 and len(reply) < 400
            assert b"lol" not in reply and b"root:" not in reply


async def test_feeds_without_the_token_are_refused(tmp_path: Path) -> None:
    """A feed read without the token is refused 401 unauthorized, like a delivery."""
    async with jiangsu(tmp_path) as js:
        status, reply = await js.get(f"{BASE}/bjdt", token=False)
        assert (status, refusal(reply)["cwdm"]) == (401, "unauthorized")
        status, _ = await js.post(f"{BASE}/ajjs", js_case(), token=False)
        assert status == 401


async def test_platform_refuses_bad_paging(tmp_path: Path) -> None:
    """A cursor or page size that is not a small whole number gets 400 naming yb or ts."""
    async with jiangsu(tmp_path) as js:
        for name, value in (("yb", "-1"), ("ts", "0"), ("ts", "501"), ("ts", "x")):
            status, reply = await js.get(f"{BASE}/sq", **{name: value})  # type: ignore[arg-type]
            assert status == 400 and refusal(reply)["cwzd"] == name


# --- bad replies to the adapter, from a stub that speaks broken dialect ---------------------


def stub(handler: platforms.Reply) -> Any:
    return platforms.stub(handler, lambda url: JiangsuAdapter(url, timeout=STUB_TIMEOUT))


def _xml_reply(data: bytes, status: int = 200) -> web.Response:
    return web.Response(body=data, status=status, content_type="application/xml")


async def test_refusal_outside_the_dialect_is_generic() -> None:
    """A 4xx whose body is not a <cwxx> is a DialectError named by its HTTP status."""

    async def reply(request: web.Request) -> web.Response:
        return web.Response(text="<html>Bad Request</html>", status=400)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.deliver_case(inbound_case("310000-20260302-00000000000000e0"))
    assert refused.value.code == "http_400"


async def test_receipt_for_another_case_is_refused() -> None:
    """A delivery receipt that names another case is not taken as delivery of this one."""

    async def reply(request: web.Request) -> web.Response:
        return _xml_reply(to_xml(dialect.delivery_receipt("other", duplicate=False)), 201)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.deliver_case(inbound_case("310000-20260302-00000000000000e2"))
    assert (refused.value.code, refused.value.field) == ("invalid_field", "ajbh")


# --- the dialect both ways (sans-I/O) -------------------------------------------------------

_instant = JIANGSU_DIALECT.instants
_xml_text = XML_TEXT
_materials = platforms.materials(_xml_text)


def _wire(node: Node, root: str) -> Any:
    return read_document(to_xml(node), root)


@settings(max_examples=40, deadline=None)
@given(
    handler=st.sampled_from(["shanghai", "zhejiang", "anhui"]),
    name=_xml_text,
    materials=_materials,
    submitted=_instant,
    acknowledged=st.one_of(st.none(), _instant),
)
def test_application_record_round_trips(
    handler: str,
    name: str,
    materials: list[dict[str, str]],
    submitted: float,
    acknowledged: float | None,
) -> None:
    """Every field of an application survives the feed record and back."""
    body = {
        "matter_code": "M" * 31,
        "handler": handler,
        "mode": MODES[0],
        "applicant": {"name": name, "code_type": "111", "code": "c"},
        "materials": materials,
    }
    case_id = None if acknowledged is None else "c-1"
    record = dialect.application_record("JSZW1", body, submitted, case_id, acknowledged)
    assert JIANGSU.read_application_record(_wire(record, "sq")) == Application("JSZW1", body)


def test_times_are_beijing_whole_seconds() -> None:
    """Instants are written in Beijing time with the sub-second part dropped, never rounded
    up; dates and birth minutes keep their own formats."""
    assert dialect.to_local(T0) == "20260302100000"
    assert dialect.to_local(T0 + 0.999) == "20260302100000"
    assert dialect.to_local(T0 - 0.5) == "20260302095959"
    assert dialect.to_date("1986-07-01") == "19860701"
    assert dialect.minute_to_local("2024-02-29T23:59") == "20240229235900"
    times: Node = ("r", [("sj", "20260302100000"), ("rq", "19000101"), ("cs", "20240229235900")])
    fields = _wire(times, "r")
    assert dialect.read_time(fields, "sj") == T0
    assert dialect.read_date(fields, "rq") == "1900-01-01"
    assert dialect.read_minute(fields, "cs") == "2024-02-29T23:59"
    with pytest.raises(DialectError) as seconds:
        dialect.read_minute(_wire(("r", [("cs", "20240229235901")]), "r"), "cs")
    assert (seconds.value.code, seconds.value.field) == ("bad_time", "cs")


def test_characters_xml_cannot_carry_are_refused_when_writing() -> None:
    """A value holding a character XML 1.0 cannot carry is refused by name, not mangled."""
    case = InboundCase(
        "c", "shanghai", "M", MODES[0], {"name": "a\x01b", "code_type": "111", "code": "c"},
        [], T0,
    )  # fmt: skip
    with pytest.raises(DialectError) as refused:
        to_xml(dialect.case_to_dialect(case))
    assert (refused.value.code, refused.value.field) == ("invalid_field", "sqr/xm")


def test_engine_fields_map_to_dialect_paths() -> None:
    """The engine's neutral field names become the dialect's element paths in refusals."""
    assert dialect.dialect_field("applicant.code") == "sqr/zjhm"
    assert dialect.dialect_field("materials[0].certificate_id") == "cllb/cl[1]/zzbs"
    assert dialect.dialect_field("materials") == "cllb"
    assert dialect.dialect_field("sequence") == "xh"
    assert dialect.dialect_field("zzbs") == "zzbs"


def test_code_tables_are_complete() -> None:
    """Every face field of every certificate type has its own element, and every revocation
    reason its own code."""
    names = {spec.name for t in TYPES.values() for spec in t.fields}
    assert set(dialect.FACE_ELEMENTS) == names
    assert len(set(dialect.FACE_ELEMENTS.values())) == len(names)
    assert set(dialect.REASON_CODES.values()) == set(REASONS)
    assert len(set(dialect.STATUS_CODES.values())) == len(dialect.STATUS_CODES) == 10

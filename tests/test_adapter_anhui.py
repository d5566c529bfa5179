"""What only the Anhui platform does: its form scheme, its receipts, progress and lists in
Chinese labels as the applicant sees them, its refusal kinds, area-code identifiers, its
query refusals and its Beijing local times. Everything every adapter does is in
``tests/test_adapter_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.anhui import dialect
from adapters.anhui.adapter import AnhuiAdapter
from adapters.anhui.dialect import ANHUI
from adapters.anhui.form import FormFields, encode_form, parse_form
from adapters.anhui.platform import BASE, FORM_TYPE, LICENSES
from node.certificates.model import parse_certificate, to_json
from node.identifiers import make_certificate_id, parse_certificate_id
from node.platform.adapter import ApplicationRefusal, CaseNotice, DialectError
from tests import platforms
from tests.certificate_samples import anhui_area_code_card
from tests.dialects import (
    AH_CASE_ID,
    ANHUI_DIALECT,
    ah_case,
    gbk_form,
    refused_application,
    seeded_application,
    straight_through_cases,
)
from tests.platforms import REFUSAL, STUB_TIMEOUT, T0, application_body, notices

anhui = ANHUI_DIALECT.platform.serve
inbound_case = ANHUI_DIALECT.inbound


def stub(handler: platforms.Reply) -> Any:
    return platforms.stub(handler, lambda url: AnhuiAdapter(url, timeout=STUB_TIMEOUT))


# --- the platform as the applicant sees it --------------------------------------------------


async def test_receipt_progress_and_list_in_dialect(tmp_path: Path) -> None:
    """An application entered as an Anhui form is answered 201 with flag true, its WSTB
    number, the local time and 已提交; once acknowledged and delivered, its progress and the
    application list show the federation case, 已送达 and the step in local time."""
    async with anhui(tmp_path) as ah:
        body = application_body(await ah.fixtures(), handler="shanghai")
        form = encode_form(ANHUI.application_form(body))
        status, reply = await ah.post(f"{BASE}/sq/tj", form, token=False)
        assert status == 201, reply
        assert reply["flag"] is True
        reference = reply["result"]["sqbh"]
        assert reference.startswith("WSTB20260302")
        assert reply["result"]["sqsj"] == "2026-03-02 10:00:00"
        assert reply["result"]["bjzt"] == "已提交"

        case_id = "340000-20260302-0123456789abcdef"
        await ah.adapter.acknowledge(reference, case_id)
        await ah.adapter.deliver_update(
            CaseNotice(case_id, 2, "deliver", "handling", "delivered", T0 + 60)
        )
        async with ah.session.get(f"{ah.url}{BASE}/sq/xq", params={"sqbh": reference}) as r:
            progress = (await r.json())["result"]
        assert progress["bjbh"] == case_id
        assert progress["bjzt"] == "已送达"
        assert [row["czlx"] for row in progress["jd"]] == ["送达"]
        assert progress["jd"][0]["czsj"] == "2026-03-02 10:01:00"

        rows = (await ah.get(f"{BASE}/sq/lb"))[1]["result"]["rows"]
        assert rows[0]["bjbh"] == case_id
        assert rows[0]["qrsj"] == "2026-03-02 10:00:00"


async def test_refusal_as_the_applicant_sees_it(tmp_path: Path) -> None:
    """The applicant sees the refusal with its Chinese kind label, code, form key and reason
    (已退回); the same form sent again is answered 是 (duplicate); the adapter's own
    Malformed refusal is stored as it is; a refusal with a wrong or unknown kind label is
    refused."""
    async with anhui(tmp_path) as ah:
        refused = await refused_application(ANHUI_DIALECT, ah)
        async with ah.session.get(f"{ah.url}{BASE}/sq/xq", params={"sqbh": refused}) as response:
            shown = (await response.json())["result"]
        assert shown["bjzt"] == "已退回" and "bjbh" not in shown and shown["jd"] == []
        assert shown["th"] == {
            "thlb": "申请人信息有误",
            "thdm": "invalid_id_number",
            "thzd": "sqr.zjhm",
            "thyy": REFUSAL.reason,
            "thsj": "2026-03-02 10:00:00",
        }
        form = {"sqbh": refused, **ANHUI.refusal_to_dialect(REFUSAL, dialect.dialect_field)}
        status, again = await ah.post(f"{BASE}/sq/th", encode_form(form))
        assert (status, again["result"]["sfcf"]) == (200, "是")

        unreadable = await seeded_application(ANHUI_DIALECT, ah)
        own = ApplicationRefusal("unknown_label", "rows[0].blfs", "is not a label", in_dialect=True)
        await ah.adapter.reject_application(unreadable, own)
        held = ah.platform.store.refusal(unreadable)
        assert held is not None and held.refusal == own

        fresh = await seeded_application(ANHUI_DIALECT, ah)
        for label, code in (("其他", "invalid_field"), ("不知道", "unknown_label")):
            wrong = encode_form({**form, "sqbh": fresh, "thlb": label})
            status, reply = await ah.post(f"{BASE}/sq/th", wrong)
            assert (status, reply["code"], reply["field"]) == (400, code, "thlb")
        assert ah.platform.store.counts()["refusals"] == 2


async def test_officer_events_are_listed_in_labels(tmp_path: Path) -> None:
    """The officer's acceptance and completion are listed in the platform's own feed as 受理
    and 办结, the result as a 文书."""
    [case_id] = straight_through_cases(ANHUI_DIALECT, 1)
    async with anhui(tmp_path) as ah:
        await ah.adapter.deliver_case(inbound_case(case_id))
        for _ in range(2):  # accept, then complete, each an officer delay later
            ah.clock.now += 7200
            ah.platform.people.work()
        rows = (await ah.get(f"{BASE}/bjdt/lb"))[1]["result"]["rows"]
    assert [row["czlx"] for row in rows] == ["受理", "办结"]
    assert rows[1]["jg"]["lx"] == "文书"


async def test_notices_with_reason_and_extra_data_are_idempotent(tmp_path: Path) -> None:
    """A notice with a reason and Chinese extra data is stored once when delivered twice; a
    different notice under the same sequence number is refused as a conflict naming xh."""
    async with anhui(tmp_path) as ah:
        await ah.adapter.deliver_case(inbound_case(AH_CASE_ID))
        notice = CaseNotice(
            AH_CASE_ID,
            2,
            "accept",
            "handling",
            "accepted",
            T0,
            reason="材料齐全",
            due_at=T0 + 3 * 86400,
            extra={"窗口": "合肥市政务服务中心", "n": [1, 2]},
        )
        await ah.adapter.deliver_update(notice)
        await ah.adapter.deliver_update(notice)
        assert [n.notice for n in ah.platform.store.notices(AH_CASE_ID)] == [notice]
        with pytest.raises(DialectError) as other:
            await ah.adapter.deliver_update(
                CaseNotice(AH_CASE_ID, 2, "reject", "handling", "rejected", T0, reason="不符合")
            )
        assert (other.value.code, other.value.field) == ("conflict", "xh")
        assert ah.platform.store.counts()["notices"] == 1


async def test_licences_in_dialect_and_unknown_area_code_ids(tmp_path: Path) -> None:
    """A licence is shown with its type's Chinese name and face fields in Chinese; a
    well-formed id the library lacks is None also with an area code as issuer."""
    async with anhui(tmp_path) as ah:
        library = ah.platform.store.certificates()
        first = parse_certificate_id(library[0]["certificate_id"])
        unknown = make_certificate_id(first.type_code, "340103", "ZZZ999")
        assert await ah.adapter.fetch_certificate(str(unknown)) is None

        status, reply = await ah.get(f"{LICENSES}/xq", zzbs=library[0]["certificate_id"])
        assert status == 200
        assert reply["result"]["zzlxmc"] == "居民身份证"
        assert reply["result"]["zmxx"]["性别"] in ("男", "女")


async def test_area_code_identifier_is_accepted() -> None:
    """A licence whose identifier carries a six-digit area code as issuer (one Anhui system
    issues them) comes through the adapter as a valid certificate."""
    held = to_json(parse_certificate(anhui_area_code_card()))
    assert parse_certificate_id(held["certificate_id"]).issuer_code_kind == "area_code"

    async def reply(request: web.Request) -> web.Response:
        assert request.query["zzbs"] == held["certificate_id"]
        return web.json_response(dialect.ok_body(ANHUI.certificate_to_dialect(held)))

    async with stub(reply) as adapter:
        assert await adapter.fetch_certificate(held["certificate_id"]) == held


async def test_revocations_are_listed_in_labels(tmp_path: Path) -> None:
    """The platform's own revocation list names statuses 注销 and 冻结, at whole days."""
    async with anhui(tmp_path) as ah:
        rows = (await ah.get(f"{LICENSES}/zxlb"))[1]["result"]["rows"]
    assert {row["zzzt"] for row in rows} == {"注销", "冻结"}
    assert all(row["ztsj"].endswith(" 00:00:00") for row in rows)


async def test_fixtures_describe_the_library(tmp_path: Path) -> None:
    """GET /sim/fixtures lists Anhui's seeded people, companies and every certificate of the
    library with the id, type, holder and status the adapter then fetches."""
    async with anhui(tmp_path) as ah:
        fixtures = await ah.fixtures()
        assert (fixtures["province"], fixtures["seed"]) == ("anhui", 11)
        assert fixtures["persons"]
        assert fixtures["companies"]
        library = ah.platform.store.certificates()
        assert [c["certificate_id"] for c in fixtures["certificates"]] == [
            c["certificate_id"] for c in library
        ]
        for listed in fixtures["certificates"][:10]:
            fetched = await ah.adapter.fetch_certificate(listed["certificate_id"])
            assert fetched is not None
            assert (fetched["type"], fetched["holder_code"], fetched["status"]) == (
                listed["type"],
                listed["holder_code"],
                listed["status"],
            )
            assert fetched["issuer_province"] == "anhui"


# --- bad input to the platform: a 400 in dialect, and nothing stored -------------------------


async def test_platform_refuses_a_form_declared_gbk(tmp_path: Path) -> None:
    """A form declared GBK is refused 400 not_utf8 naming Content-Type, and not stored."""
    async with anhui(tmp_path) as ah:
        before = ah.platform.store.counts()
        status, reply = await ah.post(
            f"{BASE}/bj/js", gbk_form(ah_case()), content_type=f"{FORM_TYPE}; charset=GBK"
        )
        assert (status, reply["code"], reply["field"]) == (400, "not_utf8", "Content-Type")
        assert ah.platform.store.counts() == before


async def test_query_refusals(tmp_path: Path) -> None:
    """A lookup without its key, a bad cursor or a bad limit is a 400 in dialect."""
    async with anhui(tmp_path) as ah:
        status, reply = await ah.get(f"{LICENSES}/xq")
        assert (status, reply["code"], reply["field"]) == (400, "missing_field", "zzbs")
        status, reply = await ah.get(f"{BASE}/sq/lb", cursor="-1")
        assert (status, reply["code"]) == (400, "invalid_cursor")
        status, reply = await ah.get(f"{BASE}/bjdt/lb", limit="0")
        assert (status, reply["code"], reply["field"]) == (400, "invalid_field", "limit")
        status, reply = await ah.get(f"{BASE}/sq/xq", sqbh="WSTB0")
        assert (status, reply["code"], reply["field"]) == (404, "not_found", "sqbh")


# --- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2026-12-31 23:30:00", datetime(2026, 12, 31, 15, 30, tzinfo=UTC)),
        ("2027-01-01 00:30:00", datetime(2026, 12, 31, 16, 30, tzinfo=UTC)),
        ("2026-01-01 07:59:59", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2026-07-01 12:00:00", datetime(2026, 7, 1, 4, 0, tzinfo=UTC)),  # no summer time
        ("2000-01-01 00:00:00", datetime(1999, 12, 31, 16, 0, tzinfo=UTC)),
    ],
)
def test_local_time_converts_to_epoch_and_back(local: str, utc: datetime) -> None:
    """A Beijing local time on the wire is the epoch second eight hours earlier in UTC, also
    across midnight and a year's end, and formats back to the same text."""
    assert dialect.parse_time(local) == utc.timestamp()
    assert dialect.format_time(utc.timestamp()) == local


def test_times_are_truncated_to_the_second() -> None:
    """The wire has whole seconds: a fraction is dropped, never rounded up into the next
    second."""
    assert dialect.parse_time("2026-12-31 23:30:00") == 1_798_731_000
    assert dialect.format_time(1_798_731_000.999) == "2026-12-31 23:30:00"


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-31T23:30:00",
        "2026-12-31 23:30:00Z",
        "2026-12-31 23:30",
        "2026-12-31 24:00:00",
        "２０２６-12-31 23:30:00",
        " 2026-12-31 23:30:00",
        "2100-01-01 00:00:00",
    ],
)
def test_bad_times_are_refused(text: str) -> None:
    """Anything but yyyy-MM-dd HH:mm:ss in ASCII digits, between 2000 and 2100, is bad_time."""
    with pytest.raises(DialectError) as refused:
        dialect.parse_time(text, field="czsj")
    assert (refused.value.code, refused.value.field) == ("bad_time", "czsj")


# --- the form scheme and the dialect both ways (sans-I/O, property-based) --------------------

_text = platforms.TEXT
_name = st.from_regex(r"[a-z][A-Za-z0-9]{0,6}", fullmatch=True)


def _value(deeper: int) -> st.SearchStrategy[Any]:
    """Values a form can carry with at most ``deeper`` more key segments below this one."""
    texts = st.lists(_text, min_size=1, max_size=2)
    if deeper == 0:
        return st.one_of(_text, texts)
    obj = st.dictionaries(_name, _value(deeper - 1), min_size=1, max_size=2)
    return st.one_of(_text, texts, obj, st.lists(obj, min_size=1, max_size=2))


@settings(max_examples=100, deadline=None)
@given(tree=st.dictionaries(_name, _value(3), min_size=1, max_size=3))
def test_form_round_trips(tree: dict[str, Any]) -> None:
    """Any tree of objects, lists and text (with &, =, +, % and Chinese in it) up to four
    key segments deep survives the form encoding and back."""
    assert parse_form(encode_form(tree)) == tree


def test_form_keys_and_escapes() -> None:
    """The scheme's keys as an integrator writes them, with UTF-8 escapes and + for space."""
    body = b"sqr.xm=%E7%8E%8B+%E9%9D%99&cl[0].mc=a%26b%3Dc&cl[1].mc=x&blfs[0]=%E5%85%A8"
    assert parse_form(body) == {
        "sqr": {"xm": "王 静"},
        "cl": [{"mc": "a&b=c"}, {"mc": "x"}],
        "blfs": ["全"],
    }
    assert parse_form(b"") == {}
    assert parse_form("xm=王静".encode()) == {"xm": "王静"}
    with pytest.raises(DialectError) as deep:
        parse_form(b"a.b.c.d.e=1")
    assert (deep.value.code, deep.value.field) == ("malformed_body", "a.b.c.d.e")


def test_form_fields_refuse_non_text_in_json() -> None:
    """In a JSON reply a number or boolean where text belongs is invalid_field."""
    fields = FormFields({"xh": 3, "ok": True}, "rows[0]")
    with pytest.raises(DialectError) as refused:
        fields.integer("xh")
    assert (refused.value.code, refused.value.field) == ("invalid_field", "rows[0].xh")


@settings(max_examples=80, deadline=None)
@given(notice=notices(ANHUI_DIALECT.instants))
def test_notice_round_trips_through_json(notice: CaseNotice) -> None:
    """Every field of an update notice survives the JSON of sq/xq and back (the form is the
    contract suite's)."""
    shape = ANHUI.notice_to_dialect(notice)
    assert ANHUI.read_notice(FormFields(json.loads(json.dumps(shape)))) == notice


def test_labels_cover_every_canonical_value() -> None:
    """Each label table maps one to one onto the node's canonical values."""
    from node.cases.lifecycle import Action, Status

    assert sorted(dialect.STATUS_LABELS.values()) == sorted(s.value for s in Status)
    assert sorted(dialect.ACTION_LABELS.values()) == sorted(
        a.value for a in Action if a.value != "submit"
    )
    assert dialect.STATUS_LABELS["办结"] == "completed"
    assert dialect.ACTION_LABELS["补齐"] == "supplement"

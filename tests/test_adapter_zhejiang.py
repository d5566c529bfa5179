"""The Zhejiang adapter against a real simulated Zhejiang platform over loopback HTTP, and
against a stub that answers in broken dialect; request signing on its own, with a fake
clock."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from adapters.registry import dialect as dialect_of
from adapters.simulation.officer import plan_for
from adapters.simulation.platform import PlatformRefusal
from adapters.strict_json import JsonObject
from adapters.zhejiang import citizen, dialect
from adapters.zhejiang.adapter import ZhejiangAdapter, make_adapter
from adapters.zhejiang.dialect import ZHEJIANG
from adapters.zhejiang.platform import APP_BASE, BASE, REVOCATIONS, build_platform
from adapters.zhejiang.signing import (
    APP_KEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureCheck,
    sign,
    signed_headers,
    string_to_sign,
)
from node.cases.catalog import MODES, load_catalog, matter_to_json
from node.cases.exchange import _parse_event
from node.cases.submission import parse_new_case
from node.certificates.library import PlatformLibrary
from node.certificates.model import parse_certificate
from node.identifiers import issuer_province, make_certificate_id, parse_certificate_id
from node.platform.adapter import (
    Application,
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    Malformed,
    PlatformEvent,
    PlatformUnavailable,
)
from tests import platforms
from tests.nodes import BUDGET
from tests.platforms import (
    FEDERATED,
    REFUSAL,
    STUB_TIMEOUT,
    T0,
    FakeClock,
    Platform,
    Reply,
    application_body,
    inbound_cases,
    json_body,
    json_wire,
    mistyped,
    notices,
)

APP_KEY = "zj-test-app"
APP_SECRET = "zj-test-secret"
CREDENTIALS = {"app_key": APP_KEY, "app_secret": APP_SECRET}
ROOT = Path(__file__).resolve().parent.parent


class Running(platforms.Running):
    """The Zhejiang platform on 127.0.0.1, its adapter (on the platform's clock) and a plain
    HTTP client that signs what it sends."""

    def signed(self, method: str, target: str, data: bytes, **changes: Any) -> dict[str, str]:
        """Signing headers for a request, with the keyword arguments of ``signed_headers``
        (``now``, ``nonce``) or the credentials (``app_key``, ``app_secret``) changed."""
        arguments: dict[str, Any] = {"now": self.clock(), **CREDENTIALS, **changes}
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


def _adapter(url: str, clock: FakeClock, *, page_size: int = 100) -> ZhejiangAdapter:
    return ZhejiangAdapter(
        url, app_key=APP_KEY, app_secret=APP_SECRET, page_size=page_size, clock=clock
    )


PLATFORM = Platform(build_platform, credentials=CREDENTIALS, adapter=_adapter, seed=13)


def zhejiang(
    tmp_path: Path, *, page_size: int = 100, clock: FakeClock | None = None
) -> AbstractAsyncContextManager[Running]:
    adapter = partial(_adapter, page_size=page_size)
    return PLATFORM.serve(tmp_path, clock=clock, adapter=adapter, running=Running)


inbound_case = partial(platforms.inbound_case, "zhejiang")


def straight_through_cases(count: int) -> list[str]:
    """Case ids the officer (seed 13) accepts and completes without a supplement request."""
    ids = (f"320000-20260302-{n:016x}" for n in range(10_000))
    plans = ((case_id, plan_for(13, case_id)) for case_id in ids)
    chosen = [c for c, plan in plans if plan.accept and plan.complete and not plan.supplement]
    return chosen[:count]


# --- round trips against the real platform --------------------------------------------------


async def test_application_round_trip(tmp_path: Path) -> None:
    """An application entered in the dialect reaches the node as a valid POST /v1/cases body,
    once, and the acknowledgement is visible to the applicant."""
    async with zhejiang(tmp_path) as zj:
        body = application_body(await zj.fixtures())
        status, reply = await zj.send(
            "POST",
            f"{APP_BASE}/applications",
            json_body(ZHEJIANG.application_form(body)),
            headers={},
        )
        assert status == 201, reply
        assert (reply["code"], reply["msg"]) == ("0", "success")
        reference = reply["data"]["apply_no"]
        assert reference.startswith("ZLB20260302")
        assert reply["data"]["apply_time"] == "2026-03-02T10:00:00.000+08:00"
        assert reply["data"]["case_status"] == "applied"

        page = await zj.adapter.poll_applications(None)
        assert page.items == [Application(reference=reference, body=body)]
        case = parse_new_case(page.items[0].body, find_matter=FEDERATED.get, me="zhejiang")
        assert case.to_json() == body

        again = await zj.adapter.poll_applications(page.cursor)
        assert again.items == [] and again.cursor == page.cursor

        await zj.adapter.acknowledge(reference, "330000-20260302-0123456789abcdef")
        await zj.adapter.acknowledge(reference, "330000-20260302-0123456789abcdef")
        with pytest.raises(DialectError) as conflict:
            await zj.adapter.acknowledge(reference, "330000-20260302-ffffffffffffffff")
        assert conflict.value.code == "conflict"
        with pytest.raises(DialectError) as missing:
            await zj.adapter.acknowledge("ZLB0", "330000-20260302-0123456789abcdef")
        assert (missing.value.code, missing.value.field) == ("not_found", "apply_no")

        case_id = await citizen.case_of(zj.session, zj.url, reference)
        assert case_id == "330000-20260302-0123456789abcdef"
        status, progress = await zj.send("GET", f"{APP_BASE}/applications/{reference}")
        assert status == 200
        assert progress["data"]["case_status"] == "applied"
        assert progress["data"]["progress"] == []


async def test_refusal_round_trip(tmp_path: Path) -> None:
    """The federation's refusal of an application reaches the platform, signed, with its
    type word, code, field path and reason, and the applicant sees it (returned); a repeat
    changes nothing, while another refusal, an acknowledgement after it, a refusal of an
    application that became a case, one of an unknown application number and an unsigned
    one are refused."""
    async with zhejiang(tmp_path) as zj:
        fixtures = await zj.fixtures()
        stored = zj.platform.submit_application(mistyped(application_body(fixtures)), checked=False)
        [item] = (await zj.adapter.poll_applications(None)).items
        assert isinstance(item, Application) and item.reference == stored.reference

        await zj.adapter.reject_application(stored.reference, REFUSAL)
        await zj.adapter.reject_application(stored.reference, REFUSAL)
        progress = zj.platform.application_progress(stored.reference)
        assert progress.status == "refused" and progress.refusal is not None
        assert progress.refusal.refusal == ApplicationRefusal(
            "invalid_id_number", "applicant.id_number", REFUSAL.reason, in_dialect=True
        )
        assert zj.platform.store.counts()["refusals"] == 1

        status, shown = await zj.send("GET", f"{APP_BASE}/applications/{stored.reference}")
        assert status == 200
        data = shown["data"]
        assert (data["case_id"], data["case_status"]) == (None, "returned")
        assert data["refusal"] == {
            "refuse_type": "applicant",
            "refuse_code": "invalid_id_number",
            "refuse_field": "applicant.id_number",
            "refuse_reason": REFUSAL.reason,
            "refuse_time": "2026-03-02T10:00:00.000+08:00",
        }
        target = f"{BASE}/applications/{stored.reference}/refuse"
        body = json_body(ZHEJIANG.refusal_to_dialect(REFUSAL, dialect.dialect_field))
        status, again = await zj.send("POST", target, body)
        assert (status, again["data"]["duplicate"]) == (200, True)
        status, unsigned = await zj.send("POST", target, body, headers={})
        assert (status, unsigned["data"]["error"]) == (401, "unsigned_request")

        with pytest.raises(DialectError) as other:
            await zj.adapter.reject_application(
                stored.reference, ApplicationRefusal("unknown_matter", "matter_code", "无此事项")
            )
        assert (other.value.code, other.value.field) == ("conflict", "apply_no")
        with pytest.raises(DialectError) as acknowledged:
            await zj.adapter.acknowledge(stored.reference, "330000-20260302-0123456789abcdef")
        assert acknowledged.value.code == "conflict"
        with pytest.raises(DialectError) as missing:
            await zj.adapter.reject_application("ZLB0", REFUSAL)
        assert (missing.value.code, missing.value.field) == ("not_found", "apply_no")

        became = zj.platform.submit_application(application_body(fixtures)).reference
        await zj.adapter.acknowledge(became, "330000-20260302-0123456789abcdef")
        with pytest.raises(DialectError) as answered:
            await zj.adapter.reject_application(became, REFUSAL)
        assert answered.value.code == "conflict"

        unreadable = zj.platform.submit_application(application_body(fixtures)).reference
        own = ApplicationRefusal("bad_time", "apply_time", "is not a time", in_dialect=True)
        await zj.adapter.reject_application(unreadable, own)
        shown = (await zj.send("GET", f"{APP_BASE}/applications/{unreadable}"))[1]["data"]
        assert (shown["refusal"]["refuse_type"], shown["refusal"]["refuse_field"]) == (
            "record",
            "apply_time",
        )

        fresh = zj.platform.submit_application(application_body(fixtures)).reference
        wrong = {**ZHEJIANG.refusal_to_dialect(REFUSAL, dialect.dialect_field)}
        wrong["refuse_type"] = "matter"
        status, refused = await zj.send(
            "POST", f"{BASE}/applications/{fresh}/refuse", json_body(wrong)
        )
        assert (status, refused["data"]) == (
            400,
            {"error": "invalid_field", "field": "refuse_type"},
        )
        assert zj.platform.store.counts()["refusals"] == 2


async def test_citizen_front_end_is_unsigned_and_the_open_platform_is_not(
    tmp_path: Path,
) -> None:
    """The citizen module enters and follows an application without signing, and is told
    plainly when the platform refuses one; the open platform's feed of the same
    application refuses an unsigned read."""
    async with zhejiang(tmp_path) as zj:
        body = application_body(await zj.fixtures())
        reference = await citizen.enter_application(zj.session, zj.url, body)
        assert reference.startswith("ZLB")
        assert await citizen.case_of(zj.session, zj.url, reference) is None
        with pytest.raises(ValueError, match="refused"):
            await citizen.enter_application(zj.session, zj.url, {**body, "handler": "jiangsu"})
        status, reply = await zj.send("GET", f"{BASE}/applications", headers={})
        assert (status, reply["data"]["error"]) == (401, "unsigned_request")
        page = await zj.adapter.poll_applications(None)
        assert page.items == [Application(reference=reference, body=body)]


async def test_empty_feed_keeps_the_cursor_unset(tmp_path: Path) -> None:
    """Polling a platform with nothing in a feed yet leaves the node's cursor at None."""
    async with zhejiang(tmp_path) as zj:
        applications = await zj.adapter.poll_applications(None)
        events = await zj.adapter.poll_events(None)
    assert (applications.items, applications.cursor) == ([], None)
    assert (events.items, events.cursor) == ([], None)


async def test_officer_events_reach_the_node_across_pages(tmp_path: Path) -> None:
    """The officer's actions on several delivered cases come through the adapter two a page,
    in feed order, each once, as event bodies the node accepts."""
    case_ids = straight_through_cases(3)
    async with zhejiang(tmp_path, page_size=2) as zj:
        for case_id in case_ids:
            await zj.adapter.deliver_case(inbound_case(case_id))
        for _ in range(2):  # accept, then complete, each an officer delay later
            zj.clock.now += 7200
            zj.platform.people.work()

        cursor: str | None = None
        pages: list[list[PlatformEvent]] = []
        while True:
            page = await zj.adapter.poll_events(cursor)
            if not page.items:
                assert page.cursor == cursor
                break
            assert all(isinstance(item, PlatformEvent) for item in page.items)
            pages.append([item for item in page.items if isinstance(item, PlatformEvent)])
            cursor = page.cursor
        feed = zj.platform.store.events_since(0, 100)

    assert [len(p) for p in pages] == [2, 2, 2]
    events = [event for p in pages for event in p]
    assert [(e.event_id, e.case_id, dict(e.body)) for e in events] == [
        (f.event_id, f.case_id, dict(f.body)) for f in feed
    ]
    assert sorted(e.body["action"] for e in events) == ["accept"] * 3 + ["complete"] * 3
    for event in events:
        _parse_event(event.body)


async def test_deliveries_are_idempotent(tmp_path: Path) -> None:
    """Delivering a case or a notice twice stores it once; a different case under a known id
    is refused as a conflict."""
    async with zhejiang(tmp_path) as zj:
        case = inbound_case("320000-20260302-00000000000000c1")
        await zj.adapter.deliver_case(case)
        await zj.adapter.deliver_case(case)
        stored = zj.platform.store.inbound_case(case.case_id)
        assert stored is not None and stored.case == case
        with pytest.raises(DialectError) as conflict:
            await zj.adapter.deliver_case(inbound_case(case.case_id, matter=1))
        assert (conflict.value.code, conflict.value.field) == ("conflict", "case_id")

        notice = CaseNotice(
            case.case_id, 2, "accept", "handling", "accepted", T0, due_at=T0 + 3 * 86400
        )
        await zj.adapter.deliver_update(notice)
        await zj.adapter.deliver_update(notice)
        assert [n.notice for n in zj.platform.store.notices(case.case_id)] == [notice]
        counts = zj.platform.store.counts()
        assert counts["inbound_cases"] == 1 and counts["notices"] == 1


async def test_duplicate_delivery_is_answered_200(tmp_path: Path) -> None:
    """The platform answers 201 for a new case and 200 with duplicate true for the same one."""
    async with zhejiang(tmp_path) as zj:
        data = json_body(ZHEJIANG.case_to_dialect(inbound_case("320000-20260302-00000000000000c2")))
        first = await zj.send("POST", f"{BASE}/inbound_cases", data)
        second = await zj.send("POST", f"{BASE}/inbound_cases", data)
    assert first[0] == 201 and first[1]["data"]["duplicate"] is False
    assert second[0] == 200 and second[1]["data"]["duplicate"] is True


async def test_every_certificate_is_fetched_and_parses(tmp_path: Path) -> None:
    """Every certificate of the library comes back through the dialect exactly as the library
    holds it, and a well-formed id the library lacks is None."""
    async with zhejiang(tmp_path) as zj:
        library = zj.platform.store.certificates()
        for held in library:
            fetched = await zj.adapter.fetch_certificate(held["certificate_id"])
            assert fetched == held
            parse_certificate(dict(fetched))
        statuses = {c["status"] for c in library}
        assert statuses == {"valid", "suspended", "revoked", "expired"}
        first = parse_certificate_id(library[0]["certificate_id"])
        unknown = make_certificate_id(first.type_code, first.issuer_code, "ZZZ999")
        assert await zj.adapter.fetch_certificate(str(unknown)) is None


async def test_revocations_feed_the_issuers_list_across_pages(tmp_path: Path) -> None:
    """The library's revoked and suspended licences, read three a page, reach the node's
    certificate library as revocation entries with status, time and reason intact."""
    async with zhejiang(tmp_path, page_size=3) as zj:
        entries = await PlatformLibrary(zj.adapter).revocations()
        library = zj.platform.store.certificates()
        held = zj.platform.store.revocations()
        status, first_page = await zj.send("GET", f"{REVOCATIONS}?page_size=3")
    assert status == 200 and len(held) > 3 and first_page["data"]["has_more"] is True
    listed = {c["certificate_id"]: c["status"] for c in library if c["status"] in
              ("revoked", "suspended")}  # fmt: skip
    assert {str(e.certificate_id): e.status.value for e in entries} == listed
    assert [e.to_json()["reason"] for e in entries] == [r["reason"] for r in held]
    assert [e.since for e in entries] == [r["since"] for r in held]


async def test_matters_across_pages(tmp_path: Path) -> None:
    """The platform's matter list, read two a page, comes back in the catalog's JSON form."""
    async with zhejiang(tmp_path, page_size=2) as zj:
        matters = await zj.adapter.list_matters()
    expected = [matter_to_json(m) for m in load_catalog("zhejiang").matters]
    assert len(expected) > 2 and list(matters) == expected


async def test_fixtures_are_served_unsigned(tmp_path: Path) -> None:
    """Testers read the seeded data at /sim/fixtures without signing; it names Zhejiang."""
    async with zhejiang(tmp_path) as zj:
        fixtures = await zj.fixtures()
    assert fixtures["province"] == "zhejiang" and fixtures["seed"] == 13
    assert fixtures["persons"] and fixtures["companies"] and fixtures["certificates"]
    issuers = {issuer_province(parse_certificate_id(c["certificate_id"])) for c in
               fixtures["certificates"]}  # fmt: skip
    assert issuers == {"zhejiang"}


async def test_make_adapter_uses_the_credentials(tmp_path: Path) -> None:
    """``make_adapter`` signs with the credentials' app key and secret on the real clock, and
    either side refuses to start without both."""
    async with zhejiang(tmp_path, clock=FakeClock(time.time())) as zj:
        adapter = make_adapter(zj.url, credentials={**CREDENTIALS, "timeout": "5"})
        try:
            assert len(await adapter.list_matters()) == len(load_catalog("zhejiang").matters)
        finally:
            await adapter.close()
    with pytest.raises(ValueError, match="app_secret"):
        make_adapter("http://127.0.0.1:1", credentials={"app_key": APP_KEY})
    with pytest.raises(ValueError, match="app_key and app_secret"):
        build_platform(tmp_path / "other.db", seed=1, officer_delay=0, credentials=None)


async def test_wrong_base_path_is_an_error_not_an_empty_library(tmp_path: Path) -> None:
    """An adapter whose base URL has a path the platform does not serve gets a DialectError
    for a licence, not None: only the lookup's own not_found means "not in the library"."""
    async with zhejiang(tmp_path) as zj:
        held = zj.platform.store.certificates()[0]["certificate_id"]
        adapter = ZhejiangAdapter(
            zj.url + "/gateway", app_key=APP_KEY, app_secret=APP_SECRET, clock=zj.clock
        )
        try:
            with pytest.raises(DialectError) as refused:
                await adapter.fetch_certificate(held)
        finally:
            await adapter.close()
    assert (refused.value.code, refused.value.field) == ("not_found", "")


def test_registry_finds_zhejiang() -> None:
    """The registry hands out this package's two callables for Zhejiang."""
    found = dialect_of("zhejiang")
    assert (found.build_platform, found.make_adapter) == (build_platform, make_adapter)


@pytest.mark.slow
async def test_run_serves_zhejiang_signed(tmp_path: Path) -> None:
    """The platform process refuses to start without credentials, and with them serves signed
    requests from ``make_adapter`` until SIGTERM."""
    command = [sys.executable, "-m", "adapters.simulation.run", "--province", "zhejiang"]
    command += ["--listen", "127.0.0.1:0", "--db", str(tmp_path / "p.db"), "--seed", "3"]
    command += ["--officer-delay", "0", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    unsigned = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=PIPE, stderr=PIPE
    )
    _, stderr = await asyncio.wait_for(unsigned.communicate(), BUDGET / 2)
    assert unsigned.returncode == 1 and b"app_key and app_secret" in stderr

    (tmp_path / "creds.json").write_text(json.dumps(CREDENTIALS))
    command += ["--credentials-file", str(tmp_path / "creds.json")]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=PIPE, stderr=DEVNULL
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), BUDGET / 2)).decode()
        assert line.startswith("listening on 127.0.0.1:"), line
        adapter = make_adapter(f"http://{line.split()[-1]}", credentials=CREDENTIALS)
        try:
            page = await adapter.poll_events(None)
            matters = await adapter.list_matters()
        finally:
            await adapter.close()
        assert page.items == [] and len(matters) == len(load_catalog("zhejiang").matters)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), BUDGET / 2) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# --- bad input to the platform: an error envelope, and nothing stored ------------------------


def _notice_json(**changes: Any) -> bytes:
    base = ZHEJIANG.notice_to_dialect(
        CaseNotice("320000-20260302-00000000000000d1", 2, "accept", "handling", "accepted", T0)
    )
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


def _case_json(**changes: Any) -> bytes:
    base = ZHEJIANG.case_to_dialect(inbound_case("320000-20260302-00000000000000d2"))
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


BAD_REQUESTS = [
    ("malformed JSON", BASE + "/inbound_cases", b'{"case_id": "x",', "malformed_body", ""),
    ("not an object", BASE + "/inbound_cases", b"[1, 2]", "malformed_body", ""),
    (
        "missing field",
        BASE + "/inbound_cases",
        _case_json(case_id=None),
        "missing_field",
        "case_id",
    ),
    (
        "unknown field",
        BASE + "/case_notices",
        _notice_json(colour="red"),
        "unknown_field",
        "colour",
    ),
    (
        "unknown status word",
        BASE + "/case_notices",
        _notice_json(case_status="finished"),
        "unknown_status",
        "case_status",
    ),
    (
        "status as a number",
        BASE + "/case_notices",
        _notice_json(case_status=50),
        "unknown_status",
        "case_status",
    ),
    (
        "unknown action",
        BASE + "/case_notices",
        _notice_json(action_type="approve"),
        "unknown_code",
        "action_type",
    ),
    (
        "time as epoch milliseconds",
        BASE + "/case_notices",
        _notice_json(notice_time=int(T0 * 1000)),
        "bad_time",
        "notice_time",
    ),
    (
        "time without milliseconds",
        BASE + "/inbound_cases",
        _case_json(submit_time="2026-03-02T10:00:00+08:00"),
        "bad_time",
        "submit_time",
    ),
    (
        "time in UTC",
        BASE + "/inbound_cases",
        _case_json(submit_time="2026-03-02T02:00:00.000Z"),
        "bad_time",
        "submit_time",
    ),
    (
        "time as local text",
        BASE + "/case_notices",
        _notice_json(notice_time="2026-03-02 10:00:00"),
        "bad_time",
        "notice_time",
    ),
    (
        "impossible date",
        BASE + "/case_notices",
        _notice_json(notice_time="2026-02-30T10:00:00.000+08:00"),
        "bad_time",
        "notice_time",
    ),
    (
        "non-UTF-8",
        BASE + "/inbound_cases",
        _case_json(matter_code="浙江").replace("浙江".encode(), "浙江".encode("gbk")),
        "not_utf8",
        "",
    ),
    (
        "duplicate key",
        BASE + "/case_notices",
        b'{"case_id": "a", "case_id": "b"}',
        "malformed_body",
        "",
    ),
    (
        "nested too deep",
        BASE + "/inbound_cases",
        platforms.nested("zhejiang", platforms.BEYOND_RECURSION)[0],
        "too_deep",
        "",
    ),
    (
        "huge number",
        BASE + "/case_notices",
        b'{"seq_no": ' + b"9" * 5000 + b"}",
        "number_too_large",
        "",
    ),
    (
        "bad applicant code",
        APP_BASE + "/applications",
        b"",  # filled in by the test from the fixtures
        "invalid_id_number",
        "applicant.id_number",
    ),
]


@pytest.mark.parametrize(
    ("path", "data", "code", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_platform_refuses_bad_requests(
    tmp_path: Path, path: str, data: bytes, code: str, field: str
) -> None:
    """A correctly signed request that is not good Zhejiang dialect gets 400 and an error
    envelope naming the field, and changes nothing in the platform's store."""
    async with zhejiang(tmp_path) as zj:
        if not data:
            form = ZHEJIANG.application_form(application_body(await zj.fixtures()))
            number = form["applicant"]["id_number"]
            form["applicant"]["id_number"] = number[:-1] + ("1" if number[-1] == "0" else "0")
            data = json_body(form)
        before = zj.platform.store.counts()
        status, reply = await zj.send("POST", path, data)
        assert status == 400, reply
        assert reply["data"] == {"error": code, "field": field}
        assert reply["code"] == dialect.ERROR_CODES.get(code, "40099") and reply["msg"]
        assert zj.platform.store.counts() == before


@pytest.mark.parametrize(
    ("target", "code", "field"),
    [
        (f"{BASE}/events?page_size=0", "invalid_page", "page_size"),
        (f"{BASE}/events?page_size=501", "invalid_page", "page_size"),
        (f"{BASE}/events?page_token=-1", "invalid_page", "page_token"),
        (f"{BASE}/applications?cursor=1", "unknown_field", "cursor"),
    ],
    ids=["page size 0", "page size too large", "bad token", "unknown parameter"],
)
async def test_platform_refuses_bad_paging(
    tmp_path: Path, target: str, code: str, field: str
) -> None:
    """A list asked for with a bad page size, a token the platform never gave or an unknown
    query parameter is refused with 400."""
    async with zhejiang(tmp_path) as zj:
        status, reply = await zj.send("GET", target)
    assert status == 400 and reply["data"] == {"error": code, "field": field}


async def test_platform_refuses_wrong_media_type(tmp_path: Path) -> None:
    """A correctly signed body not sent as JSON gets 415 and is not stored."""
    async with zhejiang(tmp_path) as zj:
        before = zj.platform.store.counts()
        status, reply = await zj.send(
            "POST", f"{BASE}/inbound_cases", _case_json(), content_type="text/plain"
        )
        assert (status, reply["data"]["error"]) == (415, "unsupported_media_type")
        assert zj.platform.store.counts() == before


# --- signatures: each refusal is 401/403 in the envelope, and nothing stored ---------------


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key != name}


SIGNATURE_CASES: list[tuple[str, Callable[[Running, str, bytes], dict[str, str]], int, str]] = [
    ("no headers", lambda zj, target, data: {}, 401, "unsigned_request"),
    (
        "no nonce",
        lambda zj, target, data: _without(zj.signed("POST", target, data), NONCE_HEADER),
        401,
        "unsigned_request",
    ),
    (
        "nonce too short",
        lambda zj, target, data: zj.signed("POST", target, data, nonce="abc"),
        401,
        "unsigned_request",
    ),
    (
        "wrong secret",
        lambda zj, target, data: zj.signed("POST", target, data, app_secret="not-the-secret"),
        401,
        "bad_signature",
    ),
    (
        "signed another body",
        lambda zj, target, data: zj.signed("POST", target, data + b" "),
        401,
        "bad_signature",
    ),
    (
        "signed another target",
        lambda zj, target, data: zj.signed("POST", target + "?x=1", data),
        401,
        "bad_signature",
    ),
    (
        "signed as GET",
        lambda zj, target, data: zj.signed("GET", target, data),
        401,
        "bad_signature",
    ),
    (
        "upper-case hex signature",
        lambda zj, target, data: {
            **(h := zj.signed("POST", target, data)),
            SIGNATURE_HEADER: h[SIGNATURE_HEADER].upper(),
        },
        401,
        "unsigned_request",
    ),
    (
        "expired timestamp",
        lambda zj, target, data: zj.signed("POST", target, data, now=zj.clock() - 301),
        401,
        "stale_timestamp",
    ),
    (
        "timestamp from the future",
        lambda zj, target, data: zj.signed("POST", target, data, now=zj.clock() + 301),
        401,
        "stale_timestamp",
    ),
    (
        "timestamp in seconds",
        lambda zj, target, data: {
            **zj.signed("POST", target, data),
            TIMESTAMP_HEADER: str(int(zj.clock())),
        },
        401,
        "stale_timestamp",
    ),
    (
        "wrong app key",
        lambda zj, target, data: zj.signed("POST", target, data, app_key="someone-else"),
        403,
        "unknown_app_key",
    ),
]


@pytest.mark.parametrize(
    ("make_headers", "status", "code"),
    [case[1:] for case in SIGNATURE_CASES],
    ids=[case[0] for case in SIGNATURE_CASES],
)
async def test_platform_refuses_badly_signed_requests(
    tmp_path: Path,
    make_headers: Callable[[Running, str, bytes], dict[str, str]],
    status: int,
    code: str,
) -> None:
    """A valid delivery whose signing headers are missing, wrong, stale or from an unknown app
    is refused with 401 (403 for the app) in the envelope, and nothing is stored."""
    async with zhejiang(tmp_path) as zj:
        target, data = f"{BASE}/inbound_cases", _case_json()
        before = zj.platform.store.counts()
        answer = await zj.send("POST", target, data, headers=make_headers(zj, target, data))
        assert answer[0] == status, answer
        assert answer[1]["code"] == dialect.ERROR_CODES[code]
        assert answer[1]["data"]["error"] == code
        assert zj.platform.store.counts() == before
        status, _ = await zj.send("POST", target, data)  # the same, signed correctly
        assert status == 201


async def test_platform_refuses_a_replayed_nonce(tmp_path: Path) -> None:
    """A correctly signed request sent again with the same headers is refused as a replay and
    changes nothing, even a minute later; a fresh nonce goes through."""
    async with zhejiang(tmp_path) as zj:
        target = f"{BASE}/case_notices"
        data = _notice_json()
        headers = zj.signed("POST", target, data)
        first = await zj.send("POST", target, data, headers=headers)
        assert first[0] == 201
        after_first = zj.platform.store.counts()
        zj.clock.now += 60
        replay = await zj.send("POST", target, data, headers=headers)
        assert replay[0] == 401 and replay[1]["data"] == {
            "error": "replayed_nonce",
            "field": NONCE_HEADER,
        }
        assert zj.platform.store.counts() == after_first
        again = await zj.send("POST", target, data)
        assert again[0] == 200 and again[1]["data"]["duplicate"] is True


async def test_adapter_with_wrong_credentials_or_clock_is_refused(tmp_path: Path) -> None:
    """An adapter with the wrong secret, the wrong app key or a clock six minutes off gets a
    DialectError naming the refusal, and nothing is stored."""
    async with zhejiang(tmp_path) as zj:
        before = zj.platform.store.counts()
        skewed = FakeClock(T0 + 360)
        adapters = {
            "bad_signature": ZhejiangAdapter(
                zj.url, app_key=APP_KEY, app_secret="x", clock=zj.clock
            ),
            "unknown_app_key": ZhejiangAdapter(
                zj.url, app_key="x", app_secret=APP_SECRET, clock=zj.clock
            ),
            "stale_timestamp": ZhejiangAdapter(
                zj.url, app_key=APP_KEY, app_secret=APP_SECRET, clock=skewed
            ),
        }
        for code, adapter in adapters.items():
            try:
                with pytest.raises(DialectError) as refused:
                    await adapter.deliver_case(inbound_case("320000-20260302-00000000000000d3"))
            finally:
                await adapter.close()
            assert refused.value.code == code
        assert zj.platform.store.counts() == before


# --- signing on its own (sans-I/O, fake clock) ----------------------------------------------

README_EXAMPLE = {
    "app_secret": "zj-demo-secret",
    "method": "POST",
    "target": "/zlb/open/v2/cross_province/applications/ZLB20260302000001/acknowledge",
    "timestamp": "1772416800000",
    "nonce": "7f3c9a1e5b2d4c60",
    "body": b'{"case_id": "330000-20260302-0123456789abcdef"}',
}


def test_signature_matches_the_readme_example() -> None:
    """The worked example in the README signs to the value it shows."""
    readme = (ROOT / "adapters/zhejiang/README.md").read_text()
    example = dict(README_EXAMPLE)
    body = example.pop("body")
    assert isinstance(body, bytes)
    message = string_to_sign(
        str(example["method"]),
        str(example["target"]),
        str(example["timestamp"]),
        str(example["nonce"]),
        body,
    )
    signature = sign(
        str(example["app_secret"]),
        str(example["method"]),
        str(example["target"]),
        str(example["timestamp"]),
        str(example["nonce"]),
        body,
    )
    assert message.decode() in readme
    assert signature in readme and len(signature) == 64


def test_signature_check_window_and_nonce_memory() -> None:
    """A nonce is refused again while its timestamp is in the window, the replay is refused as
    stale after it, and the check forgets nonces it no longer needs."""
    clock = FakeClock()
    check = SignatureCheck(APP_KEY, APP_SECRET, clock=clock)
    target = f"{BASE}/events?page_size=10"

    def headers(nonce: str) -> dict[str, str]:
        return signed_headers(APP_KEY, APP_SECRET, "GET", target, b"", now=clock(), nonce=nonce)

    first = headers("nonce-0001")
    check.verify("GET", target, first, b"")
    with pytest.raises(PlatformRefusal) as replayed:
        check.verify("GET", target, first, b"")
    assert (replayed.value.code, replayed.value.status) == ("replayed_nonce", 401)

    clock.now += 301
    with pytest.raises(PlatformRefusal) as stale:
        check.verify("GET", target, first, b"")
    assert stale.value.code == "stale_timestamp"
    check.verify("GET", target, headers("nonce-0002"), b"")
    assert check.remembered() == 1  # the first one is forgotten


def test_signature_check_reads_headers_case_insensitively() -> None:
    """HTTP header names are case-insensitive; the check reads them through the request's
    own mapping, which is."""
    clock = FakeClock()
    check = SignatureCheck(APP_KEY, APP_SECRET, clock=clock)
    sent = signed_headers(APP_KEY, APP_SECRET, "GET", "/x", b"", now=clock())
    lowered = {name.lower(): value for name, value in sent.items()}
    check.verify("GET", "/x", CIMultiDict(lowered), b"")
    with pytest.raises(PlatformRefusal) as refused:
        check.verify("GET", "/x", {APP_KEY_HEADER: APP_KEY}, b"")
    assert refused.value.code == "unsigned_request"


# --- bad replies to the adapter, from a stub that speaks broken dialect ---------------------


def stub(
    handler: Reply, *, timeout: float = STUB_TIMEOUT
) -> AbstractAsyncContextManager[ZhejiangAdapter]:
    return platforms.stub(
        handler, lambda url: ZhejiangAdapter(url, app_key="k", app_secret="s", timeout=timeout)
    )


def _good_event(n: int) -> dict[str, Any]:
    return ZHEJIANG.event_record(f"e{n}", "c", {"action": "accept", "reason": "ok"}, T0)


def _envelope(data: Any) -> dict[str, Any]:
    return {"code": "0", "msg": "success", "data": data}


async def test_untranslatable_records_become_malformed() -> None:
    """A feed record with an unknown word, a bad time or a missing field becomes a Malformed in
    its place, naming the record and the field; the good records around it come through."""
    records = [
        _good_event(1),
        {**_good_event(2), "action_type": "approve"},
        {**_good_event(3), "event_time": int(T0 * 1000)},
        {k: v for k, v in _good_event(4).items() if k != "case_id"},
        "not a record",
        _good_event(5),
    ]

    async def feed(request: web.Request) -> web.Response:
        return web.json_response(_envelope(dialect.page(records, 10, False, "6")))  # type: ignore[arg-type]

    async with stub(feed) as adapter:
        page = await adapter.poll_events(None)
    assert page.cursor == "6"
    kinds = [type(item).__name__ for item in page.items]
    assert kinds == ["PlatformEvent", "Malformed", "Malformed", "Malformed", "Malformed",
                     "PlatformEvent"]  # fmt: skip
    assert page.items[1] == Malformed("e2", "unknown_code", "action_type", page.items[1].detail)  # type: ignore[union-attr]
    assert (page.items[2].code, page.items[2].field) == ("bad_time", "event_time")  # type: ignore[union-attr]
    assert (page.items[3].code, page.items[3].field) == ("missing_field", "case_id")  # type: ignore[union-attr]
    assert page.items[4].reference == "?"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"\xff\xfe{}", 200, "not_utf8"),
        (b"{not json", 200, "malformed_body"),
        (b"[]", 200, "malformed_body"),
        (b'{"records": [], "nextCursor": "1", "hasMore": false}', 200, "missing_field"),
        (b'{"code": "0", "msg": "success", "data": null}', 200, "invalid_field"),
        (b'{"code": 0, "msg": "success", "data": {}}', 200, "invalid_field"),
        (b'{"code": "0", "msg": "ok", "data": {}, "extra": 1}', 200, "unknown_field"),
        (b'{"code": "0", "msg": "ok", "data": {"items": []}}', 200, "missing_field"),
        (
            b'{"code": "0", "msg": "ok", "data": {"items": [], "page_size": 1, '
            b'"has_more": false, "next_page_token": "", "total": 0}}',
            200,
            "unknown_field",
        ),
        (
            b'{"code": "0", "msg": "ok", "data": {"items": [1, 2], "page_size": 1, '
            b'"has_more": false, "next_page_token": "2"}}',
            200,
            "invalid_field",
        ),
        (
            b'{"code": "40102", "msg": "bad", "data": {"error": "bad_signature", "field": ""}}',
            200,
            "bad_signature",
        ),
        (b'{"code": "40104", "msg": "replayed", "data": null}', 401, "replayed_nonce"),
        (b"<html>gateway says no</html>", 403, "http_403"),
    ],
    ids=[
        "non-utf8",
        "malformed",
        "array",
        "not the envelope",
        "null data",
        "numeric code",
        "unknown envelope field",
        "page missing fields",
        "page unknown field",
        "page over its size",
        "refusal with HTTP 200",
        "refusal without data",
        "refusal not in dialect",
    ],
)
async def test_undecodable_replies_raise_dialect_error(body: bytes, status: int, code: str) -> None:
    """A reply that is not the dialect, or a refusal in it, raises DialectError and yields
    nothing."""

    async def reply(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="application/json")

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.poll_applications(None)
    assert refused.value.code == code


async def test_a_list_that_never_advances_is_refused() -> None:
    """A snapshot list that claims more pages but repeats its token is a DialectError, not an
    endless loop."""

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(_envelope(dialect.page([], 100, True, "")))

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.list_matters()
    assert refused.value.code == "invalid_page"


async def test_adapter_signs_what_it_sends() -> None:
    """Every request the adapter makes carries the four headers, and the signature covers the
    request target and body exactly as the server received them."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def reply(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, dict(request.headers), await request.read()))
        if request.method == "GET":
            return web.json_response(_envelope(dialect.page([], 100, False, "")))
        return web.json_response(_envelope({"case_id": "c", "duplicate": False}), status=201)

    async with stub(reply) as adapter:
        await adapter.poll_events("41")
        await adapter.deliver_case(inbound_case("320000-20260302-00000000000000e0"))
        await adapter.acknowledge("ZLB 1/2", "330000-20260302-0123456789abcdef")
    assert [target for _, target, _, _ in seen] == [
        f"{BASE}/events?page_size=100&page_token=41",
        f"{BASE}/inbound_cases",
        f"{BASE}/applications/ZLB%201%2F2/acknowledge",
    ]
    nonces = set()
    for method, target, headers, body in seen:
        timestamp, nonce = headers[TIMESTAMP_HEADER], headers[NONCE_HEADER]
        assert headers[APP_KEY_HEADER] == "k"
        assert headers[SIGNATURE_HEADER] == sign("s", method, target, timestamp, nonce, body)
        nonces.add(nonce)
    assert len(nonces) == 3


async def test_unknown_certificate_status_is_refused(tmp_path: Path) -> None:
    """A licence with a status word outside the table is a DialectError, not a guess."""
    async with zhejiang(tmp_path) as zj:
        held = zj.platform.store.certificates()[0]
    licence = {**ZHEJIANG.certificate_to_dialect(held), "license_status": "valid"}

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(_envelope(licence))

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.fetch_certificate(held["certificate_id"])
    assert (refused.value.code, refused.value.field) == ("unknown_status", "data.license_status")


async def test_revocation_with_an_effective_status_is_refused() -> None:
    """A revocation list naming a licence as effective is not the dialect: DialectError."""
    record = ZHEJIANG.revocation_record(
        {"certificate_id": "x", "status": "revoked", "since": T0, "reason": "lost"}
    )

    async def reply(request: web.Request) -> web.Response:
        items = [{**record, "license_status": "effective"}]
        return web.json_response(_envelope(dialect.page(items, 100, False, "")))

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.list_revocations()
    assert (refused.value.code, refused.value.field) == ("unknown_status", "license_status")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(status: int) -> None:
    """A 5xx answer means the platform is unavailable: the node keeps the item and retries."""

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(
            dialect.error_body("internal", "down", status=status), status=status
        )

    async with stub(reply) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(inbound_case("320000-20260302-00000000000000e1"))


async def test_timeout_is_unavailable() -> None:
    """A platform that does not answer within the timeout is unavailable."""
    never = asyncio.Event()

    async def reply(request: web.Request) -> web.Response:
        await never.wait()
        return web.json_response({})

    async with stub(reply, timeout=0.2) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.list_matters()


async def test_platform_down_is_unavailable(tmp_path: Path) -> None:
    """When the platform's server has stopped, every call raises PlatformUnavailable."""
    async with zhejiang(tmp_path) as zj:
        adapter = ZhejiangAdapter(zj.url, app_key=APP_KEY, app_secret=APP_SECRET, clock=zj.clock)
        await adapter.list_matters()
    try:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(inbound_case("320000-20260302-00000000000000f1"))
        with pytest.raises(PlatformUnavailable):
            await adapter.poll_events(None)
    finally:
        await adapter.close()


# --- the dialect both ways (sans-I/O, property-based) -----------------------------------------

_instant = st.integers(min_value=dialect.EARLIEST_MS, max_value=dialect.LATEST_MS - 1).map(
    lambda ms: ms / 1000
)


@settings(max_examples=200, deadline=None)
@given(at=_instant)
def test_instants_round_trip(at: float) -> None:
    """Every millisecond from 2000 to 2100 is written in Beijing time and read back exactly."""
    text = dialect.to_instant(at)
    assert text.endswith("+08:00") and len(text) == len("2026-03-02T10:00:00.000+08:00")
    assert dialect.read_instant(JsonObject({"t": text}), "t") == at


@settings(max_examples=60, deadline=None)
@given(case=inbound_cases(_instant))
def test_inbound_case_round_trips(case: InboundCase) -> None:
    """Every field of an inbound case survives the dialect and back."""
    wire = json_wire(ZHEJIANG.case_to_dialect(case))
    assert ZHEJIANG.read_case(JsonObject(wire)) == case


@settings(max_examples=80, deadline=None)
@given(notice=notices(_instant))
def test_notice_round_trips(notice: CaseNotice) -> None:
    """Every field of an update notice survives the dialect and back."""
    wire = json_wire(ZHEJIANG.notice_to_dialect(notice))
    assert ZHEJIANG.read_notice(JsonObject(wire)) == notice


@settings(max_examples=60, deadline=None)
@given(
    action=st.sampled_from(
        ["accept", "reject", "request_supplement", "supplement", "deny", "withdraw"]
    ),
    reason=st.one_of(st.none(), platforms.TEXT),
    at=_instant,
)
def test_event_round_trips(action: str, reason: str | None, at: float) -> None:
    """An event body survives the dialect and back, also with a result or an evaluation."""
    bodies: list[dict[str, Any]] = [
        {"action": action, **({"reason": reason} if reason else {})},
        {"action": "complete", "result": {"kind": "document", "document_sha256": "a" * 64}},
        {"action": "complete", "result": {"kind": "certificate", "certificate_id": "x.y"}},
        {"action": "evaluate", "level": 4, "comment": "快"},
        {"action": "evaluate", "level": 2},
    ]
    for body in bodies:
        record = json_wire(ZHEJIANG.event_record("e", "c", body, at))
        assert ZHEJIANG.read_event_record(JsonObject(record)) == PlatformEvent("e", "c", body)


def test_application_form_round_trips() -> None:
    """A POST /v1/cases body survives the citizen's form and back, in every mode and for a
    company applicant."""
    for mode in MODES:
        body = {
            "matter_code": "M" * 31,
            "handler": "anhui",
            "mode": mode,
            "applicant": {"name": "某某有限公司", "code_type": "001", "code": "9" * 18},
            "materials": [{"name": "营业执照", "certificate_id": "1.2"}],
        }
        fields = JsonObject(json.loads(json.dumps(ZHEJIANG.application_form(body))))
        assert ZHEJIANG.read_application_form(fields) == body
        fields.finish()


@pytest.mark.parametrize(
    "text", list(platforms.NOT_NUMBERS.values()), ids=list(platforms.NOT_NUMBERS)
)
@pytest.mark.parametrize(
    ("path", "name"), [("/applications", "page_token"), ("/events", "page_size")]
)
async def test_platform_paging_is_ascii_digits_only(
    tmp_path: Path, path: str, name: str, text: str
) -> None:
    """A page token or size in other digits than ASCII, or signed, is a 400 invalid_page
    naming it, never a 500, and changes nothing."""
    async with zhejiang(tmp_path) as zj:
        before = zj.platform.store.counts()
        status, reply = await zj.send("GET", f"{BASE}{path}?{urlencode({name: text})}")
        assert status == 400 and reply["data"] == {"error": "invalid_page", "field": name}
        assert zj.platform.store.counts() == before

"""What only the Zhejiang platform does: request signing (the platform's checks, the
adapter's headers, the README's example, the nonce memory), its paged lists, its
unsigned citizen front end beside the signed open platform, its envelope's receipts and
refusal types, and its millisecond instants. Everything every adapter does is in
``tests/test_adapter_contract.py``."""

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
from typing import Any, cast

import pytest
from aiohttp import web
from hypothesis import given, settings
from multidict import CIMultiDict

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
from node.cases.events import parse_event
from node.certificates.library import PlatformLibrary
from node.identifiers import issuer_province, parse_certificate_id
from node.platform.adapter import Application, ApplicationRefusal, DialectError, PlatformEvent
from tests import platforms
from tests.dialects import (
    ZHEJIANG_DIALECT,
    SignedRunning,
    refused_application,
    seeded_application,
    straight_through_cases,
    zhejiang_adapter,
    zj_case,
    zj_notice,
)
from tests.dialects import ZJ_APP_KEY as APP_KEY
from tests.dialects import ZJ_APP_SECRET as APP_SECRET
from tests.dialects import ZJ_CREDENTIALS as CREDENTIALS
from tests.nodes import BUDGET
from tests.platforms import REFUSAL, STUB_TIMEOUT, T0, FakeClock, application_body, json_body

ROOT = Path(__file__).resolve().parent.parent
Running = SignedRunning


def zhejiang(
    tmp_path: Path, *, page_size: int = 100, clock: FakeClock | None = None
) -> AbstractAsyncContextManager[SignedRunning]:
    """The platform served, its adapter reading ``page_size`` items a page."""
    adapter = partial(zhejiang_adapter, page_size=page_size)
    served = ZHEJIANG_DIALECT.platform.serve(tmp_path, clock=clock, adapter=adapter)
    return cast(AbstractAsyncContextManager[SignedRunning], served)


inbound_case = ZHEJIANG_DIALECT.inbound
_case_json = zj_case
_notice_json = zj_notice


def stub(handler: platforms.Reply) -> Any:
    return platforms.stub(
        handler, lambda url: ZhejiangAdapter(url, app_key="k", app_secret="s", timeout=STUB_TIMEOUT)
    )


def _envelope(data: Any) -> dict[str, Any]:
    return {"code": "0", "msg": "success", "data": data}


# --- the platform as the applicant sees it --------------------------------------------------


async def test_receipt_and_progress_in_dialect(tmp_path: Path) -> None:
    """An application entered unsigned at the citizen front end is answered 201 in the
    envelope with its ZLB number, the time with milliseconds and offset and case status
    applied; once acknowledged the citizen finds the federation case."""
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

        await zj.adapter.acknowledge(reference, "330000-20260302-0123456789abcdef")
        case_id = await citizen.case_of(zj.session, zj.url, reference)
        assert case_id == "330000-20260302-0123456789abcdef"
        status, progress = await zj.send("GET", f"{APP_BASE}/applications/{reference}")
        assert status == 200
        assert progress["data"]["case_status"] == "applied"
        assert progress["data"]["progress"] == []


async def test_refusal_as_the_applicant_sees_it(tmp_path: Path) -> None:
    """The applicant sees the refusal (returned) with its type word, code, field path and
    reason; the same refusal signed again is answered as a duplicate, unsigned it is refused;
    the adapter's own Malformed refusal is of type record; a wrong type word is refused."""
    async with zhejiang(tmp_path) as zj:
        refused = await refused_application(ZHEJIANG_DIALECT, zj)
        status, shown = await zj.send("GET", f"{APP_BASE}/applications/{refused}")
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
        target = f"{BASE}/applications/{refused}/refuse"
        body = json_body(ZHEJIANG.refusal_to_dialect(REFUSAL, dialect.dialect_field))
        status, again = await zj.send("POST", target, body)
        assert (status, again["data"]["duplicate"]) == (200, True)
        status, unsigned = await zj.send("POST", target, body, headers={})
        assert (status, unsigned["data"]["error"]) == (401, "unsigned_request")

        unreadable = await seeded_application(ZHEJIANG_DIALECT, zj)
        own = ApplicationRefusal("bad_time", "apply_time", "is not a time", in_dialect=True)
        await zj.adapter.reject_application(unreadable, own)
        shown = (await zj.send("GET", f"{APP_BASE}/applications/{unreadable}"))[1]["data"]
        assert (shown["refusal"]["refuse_type"], shown["refusal"]["refuse_field"]) == (
            "record",
            "apply_time",
        )

        fresh = await seeded_application(ZHEJIANG_DIALECT, zj)
        wrong = {**ZHEJIANG.refusal_to_dialect(REFUSAL, dialect.dialect_field)}
        wrong["refuse_type"] = "matter"
        status, refused_reply = await zj.send(
            "POST", f"{BASE}/applications/{fresh}/refuse", json_body(wrong)
        )
        assert (status, refused_reply["data"]) == (
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


# --- paged lists -----------------------------------------------------------------------------


async def test_officer_events_reach_the_node_across_pages(tmp_path: Path) -> None:
    """The officer's actions on several delivered cases come through the adapter two a page,
    in feed order, each once, as event bodies the node accepts."""
    case_ids = straight_through_cases(ZHEJIANG_DIALECT, 3)
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
        parse_event(event.body)


async def test_duplicate_delivery_is_answered_200(tmp_path: Path) -> None:
    """The platform answers 201 for a new case and 200 with duplicate true for the same one."""
    async with zhejiang(tmp_path) as zj:
        data = json_body(ZHEJIANG.case_to_dialect(inbound_case("320000-20260302-00000000000000c2")))
        first = await zj.send("POST", f"{BASE}/inbound_cases", data)
        second = await zj.send("POST", f"{BASE}/inbound_cases", data)
    assert first[0] == 201 and first[1]["data"]["duplicate"] is False
    assert second[0] == 200 and second[1]["data"]["duplicate"] is True


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


# --- replies to the adapter, from a stub ----------------------------------------------------


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


# --- the dialect both ways (sans-I/O) -------------------------------------------------------

_instant = ZHEJIANG_DIALECT.instants


@settings(max_examples=200, deadline=None)
@given(at=_instant)
def test_instants_round_trip(at: float) -> None:
    """Every millisecond from 2000 to 2100 is written in Beijing time and read back exactly."""
    text = dialect.to_instant(at)
    assert text.endswith("+08:00") and len(text) == len("2026-03-02T10:00:00.000+08:00")
    assert dialect.read_instant(JsonObject({"t": text}), "t") == at


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

"""The federation's refusal of an application entered at a province platform: the platform
learns it, durably and exactly once, with the code, the field at fault and the reason.

Sans-I/O: every dialect writes and reads a refusal back to the same values, and the node's
store records a refused application and queues its refusal together, once (with the
migration that makes room for it). End to end: real Shanghai and Jiangsu nodes and a real
simulated Shanghai platform, whose own checks an application gets past unchecked."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.anhui import dialect as anhui
from adapters.anhui.form import FormFields, encode_form, parse_form
from adapters.jiangsu import dialect as jiangsu
from adapters.jiangsu.strict_xml import read_document, to_xml
from adapters.shanghai import dialect as shanghai
from adapters.shanghai.platform import BASE, build_platform
from adapters.simulation.platform import SIMULATION, SimulatedPlatform
from adapters.strict_json import JsonObject
from adapters.translation import REFUSAL_KINDS, refusal_kind
from adapters.zhejiang import dialect as zhejiang
from node.platform.adapter import ApplicationRefusal
from node.platform.config import PlatformConfig
from node.runtime.node import Node
from node.store import platform as platform_store
from node.store.connection import StoreLocation
from node.store.database import Database
from node.store.schema import MIGRATIONS
from tests.nodes import config_for, eventually, make_mesh, serving, settled
from tests.platforms import application_body, mistyped
from tests.test_logs import captured

CODES = (
    "invalid_id_number",
    "invalid_credit_code",
    "unknown_matter",
    "wrong_handler",
    "missing_material",
    "certificate_type_mismatch",
    "unknown_code",
    "bad_time",
    "reference_reused",
    "some_future_code",
)


# --- the dialects, sans I/O -----------------------------------------------------------------


def _shanghai(refusal: ApplicationRefusal) -> ApplicationRefusal:
    wire = json.loads(
        json.dumps(shanghai.SHANGHAI.refusal_to_dialect(refusal, shanghai.dialect_field))
    )
    return shanghai.SHANGHAI.read_refusal(JsonObject(wire))


def _jiangsu(refusal: ApplicationRefusal) -> ApplicationRefusal:
    return jiangsu.JIANGSU.read_refusal(
        read_document(to_xml(jiangsu.refusal_to_dialect(refusal)), "th", what="test")
    )


def _zhejiang(refusal: ApplicationRefusal) -> ApplicationRefusal:
    wire = json.loads(
        json.dumps(zhejiang.ZHEJIANG.refusal_to_dialect(refusal, zhejiang.dialect_field))
    )
    return zhejiang.ZHEJIANG.read_refusal(JsonObject(wire))


def _anhui(refusal: ApplicationRefusal) -> ApplicationRefusal:
    form = encode_form(anhui.ANHUI.refusal_to_dialect(refusal, anhui.dialect_field))
    return anhui.ANHUI.read_refusal(FormFields(parse_form(form)))


DIALECTS: dict[str, tuple[Callable[[ApplicationRefusal], ApplicationRefusal], Callable[[str], str]]]
DIALECTS = {
    "shanghai": (_shanghai, shanghai.dialect_field),
    "jiangsu": (_jiangsu, jiangsu.dialect_field),
    "zhejiang": (_zhejiang, zhejiang.dialect_field),
    "anhui": (_anhui, anhui.dialect_field),
}


@pytest.mark.parametrize("province", list(DIALECTS))
@pytest.mark.parametrize("code", CODES)
def test_a_refusal_reads_back_in_every_dialect(province: str, code: str) -> None:
    """What the adapter writes, the platform reads back as the same code and reason, the
    node's field named as the dialect names it and the adapter's own field unchanged."""
    round_trip, dialect_field = DIALECTS[province]
    reason = "公民身份号码校验位错误 (check digit)"
    sent = ApplicationRefusal(code, "applicant.code", reason)
    assert round_trip(sent) == ApplicationRefusal(
        code, dialect_field("applicant.code"), reason, in_dialect=True
    )
    assert dialect_field("applicant.code") != "applicant.code"
    own = ApplicationRefusal(code, "x.y[0]", reason, in_dialect=True)
    assert round_trip(own) == own
    bare = ApplicationRefusal(code, "", reason)
    assert round_trip(bare) == ApplicationRefusal(code, "", reason, in_dialect=True)


def test_every_kind_has_a_code_in_every_dialect() -> None:
    """Each dialect's table of refusal kinds covers the five kinds, one to one; a code no
    table lists is of kind other."""
    tables = (
        shanghai.REJECT_CODES,
        jiangsu.REFUSAL_KIND_CODES,
        zhejiang.REFUSE_TYPES,
        anhui.REFUSAL_LABELS,
    )
    for table in tables:
        assert sorted(table.values()) == sorted(REFUSAL_KINDS)
    assert refusal_kind("invalid_id_number") == "applicant"
    assert refusal_kind("missing_material") == "material"
    assert refusal_kind("some_future_code") == "other"


# --- the node's store ------------------------------------------------------------------------


async def test_a_refused_application_is_recorded_and_queued_once(
    store_location: StoreLocation,
) -> None:
    """Recording a refused application queues its refusal in the same transaction; recording
    it again (a page read twice) changes nothing."""
    db = await Database.open(store_location)
    refusal = {"code": "invalid_id_number", "field": "applicant.code", "reason": "r",
               "in_dialect": False}  # fmt: skip
    try:
        for expected in (True, False):
            queued = await db.write(
                lambda conn: platform_store.refuse_application(
                    conn, reference="SHYW1", refusal=refusal, at=1.0
                )
            )
            assert queued is expected
        conn = db.reader()
        assert platform_store.application_outcome(conn, "SHYW1") == "refused:invalid_id_number"
        assert platform_store.application_outcome(conn, "SHYW2") is None
        [item] = platform_store.pending(conn)
        assert (item.kind, item.case_id) == ("refusal", "")
        assert item.payload == {"reference": "SHYW1", "refusal": refusal}
    finally:
        await db.close()


async def test_a_version_8_store_keeps_its_platform_outbox(tmp_path: Path) -> None:
    """A store at schema version 8 opens with its platform outbox rows, their seqs and
    states kept, and takes refusals after them."""
    path = tmp_path / "v8.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:8]:
        conn.executescript(script)
    conn.executemany(
        "INSERT INTO platform_outbox (kind, case_id, payload, state, created_at) "
        "VALUES (?, ?, '{}', ?, 1.0)",
        [("case", "c-1", "delivered"), ("notice", "c-1", "pending")],
    )
    conn.execute("PRAGMA user_version = 8")
    conn.commit()
    conn.close()
    db = await Database.open(path)
    try:
        await db.write(
            lambda conn: platform_store.refuse_application(
                conn, reference="R1", refusal={"code": "x"}, at=2.0
            )
        )
        rows = (
            db.reader()
            .execute("SELECT seq, kind, state FROM platform_outbox ORDER BY seq")
            .fetchall()
        )
        assert rows == [
            (1, "case", "delivered"),
            (2, "notice", "pending"),
            (3, "refusal", "pending"),
        ]
        assert [item.seq for item in platform_store.pending(db.reader())] == [2, 3]
    finally:
        await db.close()


# --- a node and its platform, end to end ----------------------------------------------------


@dataclass
class Watch:
    """What the node sends the platform's rejection endpoint, and whether it is down."""

    down: bool = False
    answers: list[int] = field(default_factory=list)
    feed: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None

    @web.middleware
    async def answer(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        rejection = request.method == "POST" and request.path.endswith("/rejection")
        if rejection and self.down:
            self.answers.append(503)
            return web.json_response(
                {"errorCode": 50000, "errorType": "internal", "errorMsg": "down", "errorField": ""},
                status=503,
            )
        response = await handler(request)
        if rejection:
            self.answers.append(response.status)
        if (
            self.feed is not None
            and request.method == "GET"
            and request.path == f"{BASE}/applications"
            and isinstance(response, web.Response)
            and response.text is not None
        ):
            page = json.loads(response.text)
            if page["records"]:
                page["records"] = self.feed(page["records"])
                return web.json_response(page)
        return response


@dataclass
class Scene:
    node: Node
    platform: SimulatedPlatform
    watch: Watch
    logs: list[str]


@asynccontextmanager
async def scene(tmp_path: Path, watch: Watch) -> AsyncIterator[Scene]:
    """Shanghai's node with its simulated platform (the ``watch`` in front of its routes) and
    Jiangsu's node, settled (each holds the other's catalog), every log line captured."""
    mesh = make_mesh(tmp_path)
    app = build_platform(tmp_path / "platform.db", seed=5, officer_delay=3600)
    app.middlewares.insert(0, watch.answer)
    with captured() as logs:
        async with TestServer(app, host="127.0.0.1") as server:
            url = str(server.make_url("")).rstrip("/")
            config = PlatformConfig(
                "shanghai", url, poll_interval_seconds=0.05, retry_max_seconds=0.5
            )
            async with (
                serving(config_for(mesh, "shanghai", platform=config)) as (sh, _),
                serving(config_for(mesh, "jiangsu")) as (js, _),
            ):
                await eventually(lambda: settled(sh, js))
                yield Scene(sh, app[SIMULATION], watch, logs.lines)


def refused_at_platform(platform: SimulatedPlatform, reference: str) -> bool:
    return platform.application_progress(reference).status == "refused"


def outbox(node: Node) -> list[tuple[str, str, int]]:
    rows = (
        node.db.reader()
        .execute("SELECT kind, state, attempts FROM platform_outbox ORDER BY seq")
        .fetchall()
    )
    return [(kind, state, attempts) for kind, state, attempts in rows]


def cases(node: Node) -> int:
    return int(node.db.reader().execute("SELECT count(*) FROM cases").fetchone()[0])


def refused_count(node: Node, code: str) -> float | None:
    return node.metrics.registry.get_sample_value(
        "yrd_platform_records_refused_total", {"feed": "applications", "code": code}
    )


async def test_bad_check_digit_is_refused_at_the_platform_once(tmp_path: Path) -> None:
    """An application whose ID number has a wrong check digit, let through by the platform,
    ends up refused there with its code, the field in the dialect and a reason; it becomes
    no case and is never acknowledged; reading the feed page again (as after a crash before
    the cursor was stored) neither submits nor refuses it again; no log line names the
    applicant or their ID number."""
    async with scene(tmp_path, Watch()) as at:
        fixtures = at.platform.fixtures()
        body = mistyped(application_body(fixtures, "jiangsu"))
        stored = at.platform.submit_application(body, checked=False)
        await eventually(lambda: refused_at_platform(at.platform, stored.reference))

        held = at.platform.application_progress(stored.reference).refusal
        assert held is not None
        refusal = held.refusal
        assert (refusal.code, refusal.field) == ("invalid_id_number", "applicant.certNo")
        assert refusal.reason and body["applicant"]["code"] not in refusal.reason
        await eventually(lambda: outbox(at.node) == [("refusal", "delivered", 1)])

        await at.node.db.write(
            lambda conn: conn.execute("DELETE FROM platform_cursors WHERE feed = 'applications'")
        )
        assert at.node.platform is not None
        await at.node.platform.poll_once()
        await at.node.platform.poll_once()

        assert outbox(at.node) == [("refusal", "delivered", 1)]
        assert at.watch.answers == [201]
        assert at.platform.store.counts()["refusals"] == 1
        assert at.platform.store.application(stored.reference).case_id is None  # type: ignore[union-attr]
        assert cases(at.node) == 0
        assert refused_count(at.node, "invalid_id_number") == 1.0

    events = [json.loads(line) for line in at.logs]
    [told] = [e for e in events if e["event"] == "platform application refused"]
    assert (told["reference"], told["code"], told["field"]) == (
        stored.reference,
        "invalid_id_number",
        "applicant.code",
    )
    personal = {body["applicant"]["name"], body["applicant"]["code"]}
    personal |= {p["id_number"] for p in fixtures["persons"]}
    assert not [(v, line) for line in at.logs for v in personal if v in line]


async def test_refusal_waits_for_a_platform_that_is_down(tmp_path: Path) -> None:
    """While the platform answers 5xx the refusal waits in the node's outbox, visible in its
    status, and is retried with back-off; once the platform is back it is handed over and
    held exactly once."""
    watch = Watch(down=True)
    async with scene(tmp_path, watch) as at:
        body = mistyped(application_body(at.platform.fixtures(), "jiangsu"))
        stored = at.platform.submit_application(body, checked=False)

        def retried() -> bool:
            items = outbox(at.node)
            return len(items) == 1 and items[0][:2] == ("refusal", "pending") and items[0][2] >= 2

        await eventually(retried)
        shown = at.node.health.status()["platform"]
        assert shown is not None and shown["outbox_depth"] == 1 and shown["dead_letters"] == 0
        assert at.platform.application_progress(stored.reference).status == "submitted"

        watch.down = False
        await eventually(lambda: refused_at_platform(at.platform, stored.reference))
        await eventually(lambda: outbox(at.node)[0][1] == "delivered")
        assert set(watch.answers[:-1]) == {503} and watch.answers[-1] == 201
        assert at.platform.store.counts()["refusals"] == 1
        assert at.node.health.status()["platform"]["outbox_depth"] == 0  # type: ignore[index]
        assert cases(at.node) == 0


async def test_unreadable_applications(tmp_path: Path) -> None:
    """A feed record the adapter cannot read is refused at the platform when it names its
    application (the field as the dialect names it); one whose number cannot be read is only
    logged and counted; a refusal the platform refuses (an unknown number) is parked."""

    def garble(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first = records[0]
        return [
            {**first, "handleMode": 9},
            {**first, "applyNo": 12345},
            {**first, "applyNo": "SHYW20260302999999", "handleMode": 9},
        ]

    async with scene(tmp_path, Watch(feed=garble)) as at:
        body = application_body(at.platform.fixtures(), "jiangsu")
        stored = at.platform.submit_application(body)
        await eventually(lambda: refused_at_platform(at.platform, stored.reference))
        held = at.platform.application_progress(stored.reference).refusal
        assert held is not None
        assert (held.refusal.code, held.refusal.field) == ("unknown_code", "handleMode")

        await eventually(
            lambda: [state for _, state, _ in outbox(at.node)] == ["delivered", "dead"]
        )
        assert at.watch.answers == [201, 404]
        shown = at.node.health.status()["platform"]
        assert shown is not None and shown["dead_letters"] == 1
        assert refused_count(at.node, "unknown_code") == 2.0
        assert cases(at.node) == 0

    events = [json.loads(line) for line in at.logs]
    [unnamed] = [e for e in events if e["event"] == "platform record not in its dialect"]
    assert (unnamed["reference"], unnamed["field"]) == ("?", "applyNo")
    assert refused_count(at.node, unnamed["code"]) == 1.0
    [parked] = [e for e in events if e["event"] == "platform refused a delivery; parked"]
    assert (parked["reference"], parked["kind"], parked["code"]) == (
        "SHYW20260302999999",
        "refusal",
        "not_found",
    )


FEED_HOSTILE: dict[str, str] = {
    "right-to-left override": "\u202e",
    "right-to-left isolate": "\u2067",
    "left-to-right embedding": "\u202a",
    "zero-width joiner": "\u200d",
    "NUL": "\x00",
    "ESC": "\x1b",
    "BEL": "\x07",
}


async def test_hostile_text_in_a_platform_feed_is_refused_at_the_platform(tmp_path: Path) -> None:
    """An application read from the platform whose applicant name holds a bidi override (or
    another refused character) is refused back to the platform as invalid_text naming the
    name in its dialect: no case is made, nothing goes to the handler, and the refusal does
    not repeat the name. (Before, such a name went through, was refused by the handler's
    platform, and the case stayed delivered on both sides for good.)"""
    async with scene(tmp_path, Watch()) as at:
        fixtures = at.platform.fixtures()
        references = {}
        for label, char in FEED_HOSTILE.items():
            body = application_body(fixtures, "jiangsu")
            name = body["applicant"]["name"]
            body["applicant"]["name"] = name[:1] + char + name[1:]
            references[label] = at.platform.submit_application(body, checked=False).reference
        for reference in references.values():
            await eventually(lambda r=reference: refused_at_platform(at.platform, r))  # type: ignore[misc]
        for label, reference in references.items():
            held = at.platform.application_progress(reference).refusal
            assert held is not None, label
            assert (held.refusal.code, held.refusal.field) == (
                "invalid_text",
                shanghai.dialect_field("applicant.name"),
            ), label
            assert FEED_HOSTILE[label] not in held.refusal.reason
        assert cases(at.node) == 0
        submitted = "SELECT count(*) FROM outbox WHERE payload_type = 'case_submit'"
        assert at.node.db.reader().execute(submitted).fetchone()[0] == 0
        assert refused_count(at.node, "invalid_text") == len(FEED_HOSTILE)

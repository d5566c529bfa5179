"""The case REST API: bad input is refused with a problem naming the field and changes nothing;
Idempotency-Key; listing and paging; events only for the side that owns them."""

from __future__ import annotations

import asyncio
import copy
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from node.api.app import MAX_BODY_BYTES
from node.runtime.node import Node
from tests.cases import case_body, matter_of, status_of
from tests.certificate_samples import sample_json
from tests.nodes import config_for, eventually, make_mesh, serving, settled

Client = TestClient[Any, Any]


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


@asynccontextmanager
async def pair(mesh: Path) -> AsyncIterator[tuple[Node, Client, Node, Client]]:
    """Shanghai (accepting) and Jiangsu (handling), with catalogs exchanged."""
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        yield sh, sh_client, js, js_client


def footprint(node: Node) -> tuple[int, ...]:
    """Cases, updates, requests, outbox and evidence rows: what a refusal must not change."""
    conn = node.db.reader()
    tables = ("cases", "case_updates", "case_requests", "outbox", "audit")
    return tuple(int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables)


async def problem_of(response: Any) -> dict[str, Any]:
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["status"] == response.status
    return body


def mutate(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        target: Any = body
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return apply


_DELETE = object()
LICENCE_ID = sample_json("driving_licence")["certificate_id"]
JS_MATTER = matter_of("jiangsu")
SH_MATTER = matter_of("shanghai")


def _id_with_wrong_check() -> str:
    code = case_body(JS_MATTER)["applicant"]["code"]
    return code[:-1] + ("0" if code[-1] != "0" else "1")


BAD_SUBMISSIONS = [
    (
        "unknown matter",
        mutate("matter_code", "11320000003011047K2000172999000"),
        422,
        "unknown_matter",
        "matter_code",
    ),
    ("handler not the matter's", mutate("handler", "zhejiang"), 422, "wrong_handler", "handler"),
    (
        "own province's matter",
        lambda b: b.update(matter_code=SH_MATTER.code, handler="shanghai"),
        422,
        "handler_is_local",
        "handler",
    ),
    (
        "ID number with wrong check digit",
        mutate("applicant.code", _id_with_wrong_check()),
        422,
        "invalid_id_number",
        "applicant.code",
    ),
    (
        "ID number too short",
        mutate("applicant.code", "31010419900517123"),
        422,
        "invalid_id_number",
        "applicant.code",
    ),
    (
        "ID number with impossible birth date",
        mutate("applicant.code", "310104199002301234"),
        422,
        "invalid_id_number",
        "applicant.code",
    ),
    (
        "credit code with wrong check character",
        lambda b: b["applicant"].update(code_type="001", code="91310000MA1FL8TQ3A"),
        422,
        "invalid_credit_code",
        "applicant.code",
    ),
    (
        "unknown holder code type",
        mutate("applicant.code_type", "999"),
        422,
        "invalid_code_type",
        "applicant.code_type",
    ),
    ("missing material", mutate("materials", []), 422, "missing_material", "materials"),
    (
        "digest not hex SHA-256",
        mutate("materials.0.sha256", "xyz"),
        422,
        "invalid_digest",
        "materials[0].sha256",
    ),
    (
        "upper-case digest",
        mutate("materials.0.sha256", "AB" * 32),
        422,
        "invalid_digest",
        "materials[0].sha256",
    ),
    (
        "material the matter does not list",
        mutate("materials.0.name", "无关材料"),
        422,
        "unknown_material",
        "materials[0].name",
    ),
    ("mode the matter does not offer", mutate("mode", "多地联办"), 422, "invalid_mode", "mode"),
    ("missing applicant", mutate("applicant", _DELETE), 422, "missing_field", "applicant"),
    ("unknown field", mutate("priority", "high"), 422, "unknown_field", "priority"),
    (
        "certificate of another type for an ID-card material",
        mutate("materials.0", {"name": "居民身份证", "certificate_id": LICENCE_ID}),
        422,
        "certificate_type_mismatch",
        "materials[0].certificate_id",
    ),
]


async def test_bad_submissions_refused_without_state_change(mesh: Path) -> None:
    """Every bad submission is a 422 problem naming its field, and stores nothing anywhere."""
    async with pair(mesh) as (sh, sh_client, js, _):
        # The last update and its receipt are recorded on both sides before the count.
        await eventually(lambda: settled(sh, js))
        before = footprint(sh), footprint(js)
        for label, change, status, code, field in BAD_SUBMISSIONS:
            body = copy.deepcopy(case_body(JS_MATTER))
            change(body)
            response = await sh_client.post("/v1/cases", json=body)
            assert response.status == status, label
            problem = await problem_of(response)
            assert (problem["code"], problem.get("field")) == (code, field), label
            code_given = body.get("applicant", {}).get("code")
            assert not code_given or code_given not in problem["detail"], label
        # No wait needed to see that nothing travels: Shanghai reaches Jiangsu only through
        # its outbox (part of its footprint), or by a call finished before its answer.
        assert (footprint(sh), footprint(js)) == before


async def test_malformed_and_oversize_bodies(mesh: Path) -> None:
    """Malformed JSON is a 400 and an oversize body a 413, both as problems; nothing stored."""
    async with pair(mesh) as (sh, sh_client, _, _):
        before = footprint(sh)
        response = await sh_client.post(
            "/v1/cases", data=b'{"matter_code": ', headers={"Content-Type": "application/json"}
        )
        assert response.status == 400
        assert (await problem_of(response))["code"] == "malformed_json"
        response = await sh_client.post(
            "/v1/cases",
            data=io.BytesIO(b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'),
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 413
        assert (await problem_of(response))["code"] == "body_too_large"
        assert footprint(sh) == before


async def test_idempotent_submission_under_concurrent_retries(mesh: Path) -> None:
    """20 concurrent POSTs with one Idempotency-Key create exactly one case and one message."""
    async with pair(mesh) as (sh, sh_client, _, _):
        before = footprint(sh)
        body = case_body(JS_MATTER, seed=7)
        headers = {"Idempotency-Key": "retry-7f3a"}
        responses = await asyncio.gather(
            *(sh_client.post("/v1/cases", json=body, headers=headers) for _ in range(20))
        )
        assert {r.status for r in responses} == {201}
        ids = {(await r.json())["case_id"] for r in responses}
        assert len(ids) == 1
        replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
        assert replayed.count(None) == 1 and replayed.count("true") == 19
        cases_before, _, _, outbox_before, _ = before
        cases_after, _, _, outbox_after, _ = footprint(sh)
        assert cases_after == cases_before + 1
        assert outbox_after == outbox_before + 1

        changed = copy.deepcopy(body)
        changed["applicant"]["name"] = "李四"
        response = await sh_client.post("/v1/cases", json=changed, headers=headers)
        assert response.status == 409
        problem = await problem_of(response)
        assert (problem["code"], problem["field"]) == ("idempotency_key_reused", "Idempotency-Key")
        assert footprint(sh)[0] == cases_after


async def test_events_refused_by_side_and_state(mesh: Path) -> None:
    """Wrong side is 403, an illegal transition 409 naming both states, and neither changes
    the case; evaluation before conclusion and a second evaluation are refused too."""
    async with pair(mesh) as (sh, sh_client, js, js_client):
        created = await (await sh_client.post("/v1/cases", json=case_body(JS_MATTER))).json()
        case_id = created["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        await eventually(lambda: status_of(sh, case_id) == "delivered")
        # The last update and its receipt are recorded on both sides before the count.
        await eventually(lambda: settled(sh, js))
        before = footprint(sh), footprint(js)

        async def refused(client: Client, status: int, code: str, **body: Any) -> dict[str, Any]:
            response = await client.post(f"/v1/cases/{case_id}/events", json=body)
            assert response.status == status, await response.text()
            problem = await problem_of(response)
            assert problem["code"] == code
            return problem

        problem = await refused(sh_client, 403, "wrong_side", action="accept")
        assert "handling side" in problem["detail"]
        await refused(js_client, 403, "wrong_side", action="withdraw")
        problem = await refused(
            js_client,
            409,
            "illegal_transition",
            action="complete",
            result={"kind": "document", "document_sha256": "ab" * 32},
        )
        assert "delivered" in problem["detail"] and "complete" in problem["detail"]
        await refused(sh_client, 409, "illegal_transition", action="evaluate", level=4)
        await refused(js_client, 422, "missing_field", action="reject")
        await refused(js_client, 422, "invalid_action", action="deliver")
        await refused(sh_client, 422, "invalid_evaluation", action="evaluate", level=9)
        response = await sh_client.post(
            "/v1/cases/310000-20260101-00/events", json={"action": "withdraw"}
        )
        assert response.status == 404
        assert (footprint(sh), footprint(js)) == before

        await (
            await js_client.post(
                f"/v1/cases/{case_id}/events", json={"action": "reject", "reason": "不属于受理范围"}
            )
        ).json()
        await eventually(lambda: status_of(sh, case_id) == "rejected")
        await refused(sh_client, 409, "illegal_transition", action="evaluate", level=3)


async def test_second_evaluation_refused(mesh: Path) -> None:
    """After one evaluation, another is an illegal transition; the first stands."""
    async with pair(mesh) as (sh, sh_client, js, js_client):
        case_id = (await (await sh_client.post("/v1/cases", json=case_body(JS_MATTER))).json())[
            "case_id"
        ]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        for body in ({"action": "accept"}, {"action": "deny", "reason": "材料不符合要求"}):
            response = await js_client.post(f"/v1/cases/{case_id}/events", json=body)
            assert response.status == 200
        await eventually(lambda: status_of(sh, case_id) == "denied")
        first = await sh_client.post(
            f"/v1/cases/{case_id}/events", json={"action": "evaluate", "level": 2}
        )
        assert first.status == 202
        await eventually(lambda: status_of(sh, case_id) == "evaluated")
        # The last update and its receipt are recorded on both sides before the count.
        await eventually(lambda: settled(sh, js))
        before = footprint(sh), footprint(js)
        second = await sh_client.post(
            f"/v1/cases/{case_id}/events", json={"action": "evaluate", "level": 5}
        )
        assert second.status == 409
        assert (await problem_of(second))["code"] == "illegal_transition"
        assert (footprint(sh), footprint(js)) == before
        view = await (await sh_client.get(f"/v1/cases/{case_id}")).json()
        assert view["evaluation_level"] == 2


async def test_list_filters_and_pages(mesh: Path) -> None:
    """GET /v1/cases filters by role, status and peer and pages with a cursor, newest first."""
    async with pair(mesh) as (_sh, sh_client, js, js_client):
        ids = []
        for seed in range(5):
            response = await sh_client.post("/v1/cases", json=case_body(JS_MATTER, seed=seed))
            ids.append((await response.json())["case_id"])
        await eventually(lambda: all(status_of(js, i) == "delivered" for i in ids))
        seen: list[str] = []
        cursor = None
        while True:
            query = {"limit": "2", "role": "accepting", "peer": "jiangsu"}
            if cursor:
                query["cursor"] = cursor
            page = await (await sh_client.get("/v1/cases", params=query)).json()
            seen.extend(c["case_id"] for c in page["cases"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        handling = await (
            await js_client.get("/v1/cases", params={"role": "handling", "status": "delivered"})
        ).json()
        assert {c["case_id"] for c in handling["cases"]} == set(ids)
        none = await (await js_client.get("/v1/cases", params={"role": "accepting"})).json()
        assert none == {"cases": [], "next_cursor": None}
        overdue = await (await sh_client.get("/v1/cases", params={"overdue": "true"})).json()
        assert overdue["cases"] == []
        for query in (
            {"role": "boss"},
            {"status": "done"},
            {"limit": "0"},
            {"cursor": "abc"},
            {"overdue": "yes"},
        ):
            response = await sh_client.get("/v1/cases", params=query)
            assert response.status == 422
            assert (await problem_of(response))["field"] == next(iter(query))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "²"),
        ("limit", "٣"),
        ("limit", "1" * 5000),
        ("cursor", "²"),
        ("cursor", "٣"),
        ("cursor", "1" * 5000),
    ],
)
async def test_list_query_numbers_are_ascii_digits(mesh: Path, name: str, value: str) -> None:
    """A limit or cursor that is not a short run of ASCII digits (a superscript or
    Arabic-Indic digit, thousands of digits) is refused as invalid_query, not a server error."""
    async with serving(config_for(mesh, "shanghai")) as (_, client):
        response = await client.get("/v1/cases", params={name: value})
        assert response.status == 422
        problem = await problem_of(response)
        assert (problem["code"], problem["field"]) == ("invalid_query", name)

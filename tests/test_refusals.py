"""Refusals no other test reached, each through the real REST API of real nodes (mutual-TLS
gRPC between them, SQLite stores): the requester's own refusals of an online verification
(an answer that does not verify, an issuer that is down or whose library cannot be read, a
requester that is not text) and the submission refusals of materials, applicants and
holder codes. Each names its code (and field) in a problem document and changes nothing:
no case, no outbox message, no evidence entry, no usage record."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.cases.submission import MAX_MATERIALS, MAX_NAME_LENGTH
from node.certificates.model import parse_certificate
from node.certificates.presentation import PresentationError, issue_presentation
from node.certificates.verification import MAX_REQUESTER_LENGTH
from node.mesh.layout import rotate_signing_key
from node.platform.config import PlatformConfig
from node.runtime.node import Node
from node.trust.keys import SigningKey
from node.trust.suites import SM2_SUITE
from tests.cases import case_body, matter_of
from tests.certificate_samples import LI_MINGHUA, sample_json
from tests.nodes import config_for, eventually, make_mesh, serving, settled
from tests.test_case_api import footprint, problem_of

CARD = sample_json("resident_id_card")
CARD_ID = CARD["certificate_id"]
ASK = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": "hotel_check_in"}
JS_MATTER = matter_of("jiangsu")


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def evidence(node: Node) -> tuple[int, int]:
    """Evidence-log entries and usage records: what a refused verification must not add."""
    conn = node.db.reader()
    return (
        int(conn.execute("SELECT count(*) FROM audit").fetchone()[0]),
        int(conn.execute("SELECT count(*) FROM certificate_usage").fetchone()[0]),
    )


async def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    problem = await problem_of(response)
    assert (response.status, problem["code"]) == (status, code), problem
    return problem


# --- the requester's refusals of an online verification ------------------------------------


async def test_an_answer_signed_with_a_key_the_manifest_does_not_hold_is_bad_attestation(
    mesh: Path,
) -> None:
    """Shanghai moves to a new signing key before Jiangsu has the manifest that lists it: its
    attestation does not verify at Jiangsu, which answers 502 bad_attestation naming the
    check, keeps no evidence of it and caches nothing; with the manifest loaded, the same
    question is answered afresh."""
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        rotate_signing_key(mesh, "shanghai", now=time.time())
        await sh.reload()
        assert sh.credentials.signing_key.key_id not in js.credentials.manifest.all_keys()
        before = evidence(js)

        problem = await refused(
            await js_client.post("/v1/certificates/verify", json=ASK), 502, "bad_attestation"
        )
        assert "unknown_key" in problem["detail"]
        assert evidence(js) == before

        await js.reload()
        answered = await js_client.post("/v1/certificates/verify", json=ASK)
        assert answered.status == 200, await answered.text()
        body = await answered.json()
        assert (body["status"], body["cached"]) == ("valid", False)


async def test_an_issuer_that_is_down_is_issuer_unreachable(mesh: Path) -> None:
    """With Shanghai's node not running, Jiangsu answers a verification of a Shanghai card
    503 issuer_unreachable naming the issuer, and keeps no evidence of an exchange."""
    async with serving(config_for(mesh, "jiangsu")) as (js, js_client):
        before = evidence(js)
        problem = await refused(
            await js_client.post("/v1/certificates/verify", json=ASK), 503, "issuer_unreachable"
        )
        assert "shanghai" in problem["detail"]
        # The transport's own words stay in the log.
        assert "UNAVAILABLE" not in problem["detail"] and "127.0.0.1" not in problem["detail"]
        assert evidence(js) == before


@asynccontextmanager
async def platform_in_maintenance() -> AsyncIterator[str]:
    """A province platform that answers every request 503, as during its maintenance."""

    async def closed(request: web.Request) -> web.Response:
        return web.Response(status=503, text="系统维护中")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", closed)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


async def test_an_issuer_whose_library_cannot_be_read_is_library_unavailable(
    mesh: Path,
) -> None:
    """Shanghai's certificates come from its platform, which is in maintenance: Shanghai's
    signed fault reaches Jiangsu, which answers 503 library_unavailable; neither side
    records a disclosure."""
    async with platform_in_maintenance() as url:
        platform = PlatformConfig("shanghai", url, poll_interval_seconds=0.05)
        async with (
            serving(config_for(mesh, "shanghai", platform=platform)) as (sh, _),
            serving(config_for(mesh, "jiangsu")) as (js, js_client),
        ):
            await eventually(lambda: settled(sh, js))
            usage_before = evidence(sh)[1], evidence(js)[1]
            await refused(
                await js_client.post("/v1/certificates/verify", json=ASK),
                503,
                "library_unavailable",
            )
            assert (evidence(sh)[1], evidence(js)[1]) == usage_before


async def test_a_requester_that_is_not_short_text_is_refused_before_asking(mesh: Path) -> None:
    """A verification whose requester is not text of at most MAX_REQUESTER_LENGTH characters
    is 422 invalid_requester naming the field, and the issuer is never asked: no evidence
    or usage record on either node."""
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        before = evidence(sh), evidence(js)
        for requester in (12345, ["市公安局"], "某" * (MAX_REQUESTER_LENGTH + 1)):
            problem = await refused(
                await js_client.post(
                    "/v1/certificates/verify", json={**ASK, "requester": requester}
                ),
                422,
                "invalid_requester",
            )
            assert problem["field"] == "requester", requester
        assert (evidence(sh), evidence(js)) == before


# --- submission refusals --------------------------------------------------------------------


def _with_materials(materials: object) -> dict[str, Any]:
    body = copy.deepcopy(case_body(JS_MATTER))
    body["materials"] = materials
    return body


def _with_material(index: int, **changes: object) -> dict[str, Any]:
    body = copy.deepcopy(case_body(JS_MATTER))
    body["materials"][index].update(changes)
    return body


def _with_applicant(**changes: object) -> dict[str, Any]:
    body = copy.deepcopy(case_body(JS_MATTER))
    body["applicant"].update(changes)
    return body


def _twice() -> dict[str, Any]:
    body = copy.deepcopy(case_body(JS_MATTER))
    body["materials"].append(dict(body["materials"][1]))
    return body


UPLOADS = case_body(JS_MATTER)["materials"]
"""The Jiangsu matter's materials, each uploaded: the ID card first, then two forms."""
SUBMISSION_REFUSALS = [
    ("materials not a list", _with_materials("全部材料"), "invalid_material", "materials"),
    (
        "more materials than allowed",
        _with_materials([UPLOADS[0]] * (MAX_MATERIALS + 1)),
        "invalid_material",
        "materials",
    ),
    (
        "a material not an object",
        _with_materials(["居民身份证"]),
        "invalid_material",
        "materials[0]",
    ),
    (
        "an upload given a certificate id",
        _with_material(1, sha256=None, certificate_id=CARD_ID),
        "invalid_material",
        "materials[1].certificate_id",
    ),
    (
        "both a digest and a certificate id",
        _with_material(0, certificate_id=CARD_ID),
        "invalid_material",
        "materials[0]",
    ),
    (
        "a holder without a certificate id",
        _with_material(0, holder_code=LI_MINGHUA),
        "invalid_material",
        "materials[0].holder_code",
    ),
    ("a material twice", _twice(), "duplicate_material", "materials[3].name"),
    ("no applicant name", _with_applicant(name=" "), "invalid_applicant", "applicant.name"),
    (
        "an applicant name too long",
        _with_applicant(name="张" * (MAX_NAME_LENGTH + 1)),
        "invalid_applicant",
        "applicant.name",
    ),
    (
        "a code type not text",
        _with_applicant(code_type=111),
        "invalid_applicant",
        "applicant.code_type",
    ),
    (
        "a code not text",
        _with_applicant(code=310104199005171373),
        "invalid_applicant",
        "applicant.code",
    ),
    (
        "a holder code not text",
        _with_material(0, sha256=None, certificate_id=CARD_ID, holder_code=310104199005171373),
        "invalid_holder_code",
        "materials[0].holder_code",
    ),
]


async def test_submission_refusals_name_the_field_and_keep_nothing(mesh: Path) -> None:
    """Each malformed material list, duplicated material, malformed applicant and holder code
    that is not text is a 422 problem with its code and field, and neither node keeps a
    case, a message or an evidence entry."""
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, _),
    ):
        await eventually(lambda: settled(sh, js))
        before = footprint(sh), footprint(js)
        for label, body, code, field in SUBMISSION_REFUSALS:
            response = await sh_client.post("/v1/cases", json=body)
            assert response.status == 422, (label, await response.text())
            problem = await problem_of(response)
            assert (problem["code"], problem.get("field")) == (code, field), label
        # Shanghai reaches Jiangsu only through its outbox, which is part of its footprint:
        # with no row added there, nothing can arrive at Jiangsu later.
        assert (footprint(sh), footprint(js)) == before


# --- presentations --------------------------------------------------------------------------


def test_a_presentation_is_signed_only_with_a_key_of_a_numbered_suite() -> None:
    """Ed25519 and SM2 keys sign presentations; a key whose id names any other algorithm is
    refused as unsupported_key before anything is signed: the compact layout numbers only
    those two suites."""
    ed25519 = SigningKey.generate()
    sm2 = SigningKey.generate(SM2_SUITE)
    certificate = parse_certificate(CARD)
    assert issue_presentation(certificate, ed25519, now=time.time())
    assert issue_presentation(certificate, sm2, now=time.time())
    other = SigningKey("ed448:" + "0" * 32, ed25519.secret)
    with pytest.raises(PresentationError) as refusal:
        issue_presentation(certificate, other, now=time.time())
    assert (refusal.value.code, refusal.value.field) == ("unsupported_key", "key_id")

"""The applicant is the card's holder: an issuer says whether a name is the one on a
certificate without disclosing it, and a case in another name than its applicant's own ID
card is refused before anything is handed off (or rejected by its handler's check)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from node.certificates.model import TYPES, same_name
from node.identifiers import make_certificate_id
from node.wire import pb
from tests.cases import case_body, matter_of, status_of
from tests.certificate_samples import LI_MINGHUA, OTHER_PERSON, _credit_code, sample_json
from tests.nodes import config_for, eventually, make_mesh, serving, settled

CARD = sample_json("resident_id_card")
FAST = {"revocation_refresh_seconds": 0.2}
MATTER = matter_of("jiangsu")


@pytest.mark.parametrize(
    ("given", "on_card", "same"),
    [
        ("李明华", "李明华", True),
        (" 李 明华 ", "李明华", True),
        ("买买提•艾力", "买买提·艾力", True),
        ("买买提．艾力", "买买提·艾力", True),
        ("ＷＡＮＧ Ｌｅｉ", "Wang Lei", True),
        ("wang lei", "WANG LEI", True),
        ("李明", "李明华", False),
        ("李明华华", "李明华", False),
        ("", "李明华", False),
        ("   ", "李明华", False),
        ("Robert'); DROP TABLE cases;--", "李明华", False),
    ],
)
def test_names_compare_as_people_write_them(given: str, on_card: str, same: bool) -> None:
    assert same_name(given, on_card) is same


def with_card(body: dict[str, Any], name: str, code: str = LI_MINGHUA) -> dict[str, Any]:
    """``body`` with its applicant named ``name`` handing in ``CARD`` as their own."""
    body = copy.deepcopy(body)
    body["applicant"]["name"] = name
    body["applicant"]["code"] = code
    for material in body["materials"]:
        if material["name"] == "居民身份证":
            material.pop("sha256")
            material["certificate_id"] = CARD["certificate_id"]
    return body


def footprint(*nodes: Any) -> tuple[int, ...]:
    counts = []
    for node in nodes:
        conn = node.db.reader()
        for table in ("cases", "outbox", "case_updates"):
            counts.append(int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))
    return tuple(counts)


async def test_the_issuer_says_whether_a_name_is_the_holders(tmp_path: Path) -> None:
    """Asked with a name, the attestation says (signed) whether it is the card's; the name
    itself is not disclosed, and without a name the question is not answered."""
    mesh = make_mesh(tmp_path)
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        ask = {"certificate_id": CARD["certificate_id"], "holder_code": LI_MINGHUA,
               "purpose": "hotel_check_in"}  # fmt: skip
        for name, expected, wire in (
            (CARD["holder_name"], True, pb.NAME_MATCHES),
            ("王小二", False, pb.NAME_DIFFERS),
            (None, None, pb.NAME_NOT_ASKED),
        ):
            body = {**ask, **({"holder_name": name} if name is not None else {})}
            answer = await js_client.post("/v1/certificates/verify", json=body)
            assert answer.status == 200, await answer.text()
            shown = await answer.json()
            assert shown.get("holder_name_matches") is expected
            assert shown["fields"] == {}
            raw = shown["attestation"]
            envelope = pb.Envelope.FromString(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            attestation = pb.Message.FromString(envelope.message).attestation
            assert attestation.holder_name_match == wire
            assert CARD["holder_name"] not in str(attestation)
        too_long = await js_client.post(
            "/v1/certificates/verify", json={**ask, "holder_name": "名" * 101}
        )
        assert too_long.status == 422
        assert (await too_long.json())["field"] == "holder_name"


async def test_a_case_in_another_name_than_the_card_is_refused(tmp_path: Path) -> None:
    """An applicant handing in an ID card in another name, or someone else's card, gets 422
    applicant_mismatch and nothing is stored or sent; in the card holder's own name the
    case goes through."""
    mesh = make_mesh(tmp_path)
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, _),
    ):
        await eventually(lambda: settled(sh, js) and sh.cases.find_matter(MATTER.code) is not None)
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        before = footprint(sh, js)
        for name in ("王小二", "Robert'); DROP TABLE cases;--", CARD["holder_name"] + "华"):
            answer = await sh_client.post("/v1/cases", json=with_card(case_body(MATTER), name))
            problem = await answer.json()
            assert answer.status == 422, problem
            assert (problem["code"], problem["field"]) == ("applicant_mismatch", "applicant.name")
            assert CARD["holder_name"] not in problem["detail"]
        # Someone else's card, in their own name and code: not the applicant's card.
        answer = await sh_client.post(
            "/v1/cases", json=with_card(case_body(MATTER), "王小二", code=OTHER_PERSON)
        )
        problem = await answer.json()
        assert answer.status == 422, problem
        assert problem["code"] == "applicant_mismatch"
        assert problem["field"].endswith(".certificate_id")
        assert footprint(sh, js) == before
        good = await sh_client.post(
            "/v1/cases", json=with_card(case_body(MATTER), CARD["holder_name"])
        )
        assert good.status == 201, await good.text()
        case_id = (await good.json())["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")


async def test_the_handler_rejects_a_case_whose_name_it_could_not_check_before(
    tmp_path: Path,
) -> None:
    """When the card's issuer (Zhejiang) cannot answer at submission the case is handed
    off; the handler's own check of the card, once Zhejiang answers, finds another name and
    rejects the case saying why."""
    mesh = make_mesh(tmp_path, ("shanghai", "jiangsu", "zhejiang"))
    hangzhou_police = _credit_code(17, "330106")
    card = {
        **CARD,
        "certificate_id": str(
            make_certificate_id(TYPES["resident_id_card"].type_code, hangzhou_police, "ZJ0B21D5")
        ),
        "issuing_authority": "杭州市公安局西湖分局",
        "issuing_authority_code": hangzhou_police,
    }
    async with serving(config_for(mesh, "zhejiang", **FAST)) as (_, zj_client):
        assert (await zj_client.post("/v1/certificates", json=card)).status == 201
    body = with_card(case_body(MATTER), "王小二")
    for material in body["materials"]:
        if "certificate_id" in material:
            material["certificate_id"] = card["certificate_id"]
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, _),
    ):
        await eventually(lambda: sh.cases.find_matter(MATTER.code) is not None)
        answer = await sh_client.post("/v1/cases", json=body)
        assert answer.status == 201, await answer.text()
        case_id = (await answer.json())["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        async with serving(config_for(mesh, "zhejiang", **FAST)):
            await eventually(lambda: status_of(sh, case_id) == "rejected")
        view = sh.case_views.view(sh.case_views.get(case_id))
        assert "applicant_mismatch" in view["history"][-1]["reason"]

"""免于提交: a case's certificate material is verified by mutual recognition at the handler
before acceptance, its attestation kept with the case; a failed check rejects the case."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from adapters.jiangsu.platform import build_platform
from adapters.simulation.officer import plan_for
from node.certificates.model import TYPES
from node.identifiers import make_certificate_id
from node.platform.config import PlatformConfig
from node.store import cases as cases_store
from tests.cases import case_body, matter_of, status_of
from tests.certificate_samples import LI_MINGHUA, _credit_code, sample_json
from tests.nodes import config_for, eventually, make_mesh, serving, settled
from tests.test_platform_link import checks_done

CARD = sample_json("resident_id_card")
FAST = {"revocation_refresh_seconds": 0.2}


def with_card(body: dict[str, Any], matter_index: int = 0) -> dict[str, Any]:
    """The applicant is the card's holder and hands in the card by its identifier."""
    body = copy.deepcopy(body)
    body["applicant"]["code"] = LI_MINGHUA
    body["applicant"]["name"] = CARD["holder_name"]
    for material in body["materials"]:
        if material["name"] == "居民身份证":
            material.pop("sha256")
            material["certificate_id"] = CARD["certificate_id"]
    return body


async def test_certificate_material_verified_before_acceptance(tmp_path: Path) -> None:
    """Jiangsu handles a case whose ID card was issued in Shanghai: it verifies the card with
    Shanghai, keeps the attestation with the case, and can then accept; when the card is
    revoked, the next such case is rejected with the reason and cannot be accepted."""
    mesh = make_mesh(tmp_path)
    matter = matter_of("jiangsu")
    assert any(m.certificate_type == "resident_id_card" for m in matter.materials)
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        response = await sh_client.post("/v1/cases", json=with_card(case_body(matter)))
        assert response.status == 201, await response.text()
        case_id = (await response.json())["case_id"]

        async def verification(client: Any, case: str) -> dict[str, Any]:
            view = await (await client.get(f"/v1/cases/{case}")).json()
            return next(m for m in view["materials"] if m["name"] == "居民身份证")["verification"]  # type: ignore[no-any-return]

        await eventually(lambda: status_of(js, case_id) == "delivered")
        await eventually(lambda: checks_done(js, case_id))
        checked = await verification(js_client, case_id)
        assert checked["state"] == "verified" and checked["status"] == "valid"
        assert checked["attestation"]
        usage = await (
            await sh_client.get(f"/v1/certificates/{CARD['certificate_id']}/usage")
        ).json()
        # Shanghai (accepting) asked first whether the applicant's name is the card's,
        # then Jiangsu (handling) checked the material; newest first.
        assert [u["purpose"] for u in usage["usage"]] == [matter.code, matter.code]
        assert [u["requester_province"] for u in usage["usage"]] == ["jiangsu", "shanghai"]
        accepted = await js_client.post(f"/v1/cases/{case_id}/events", json={"action": "accept"})
        assert accepted.status == 200

        held = js.certificates.held_list("shanghai")
        assert held is not None
        revoked = {**CARD, "status": "revoked"}
        assert (await sh_client.post("/v1/certificates", json=revoked)).status == 201

        def newer_list() -> bool:
            current = js.certificates.held_list("shanghai")
            return current is not None and current.version > held.version

        # Jiangsu's cached attestation of the card yields to the newer list naming it.
        await eventually(newer_list)
        response = await sh_client.post("/v1/cases", json=with_card(case_body(matter, seed=2)))
        second = (await response.json())["case_id"]
        await eventually(lambda: status_of(sh, second) == "rejected")
        view = await (await sh_client.get(f"/v1/cases/{second}")).json()
        reject = view["history"][-1]
        assert reject["action"] == "reject" and "居民身份证" in reject["reason"]
        assert "revoked" in reject["reason"]
        checked = await verification(js_client, second)
        assert checked["state"] == "rejected"
        refused = await js_client.post(f"/v1/cases/{second}/events", json={"action": "accept"})
        assert refused.status == 409


async def test_acceptance_from_the_platform_waits_for_the_check(tmp_path: Path) -> None:
    """While the card's issuer (Zhejiang) is down the check stays pending: the handling
    officer's acceptance, read from Jiangsu's platform, is kept and tried again with the
    officer's next step behind it, and both apply in order once Zhejiang answers."""
    mesh = make_mesh(tmp_path, ("shanghai", "jiangsu", "zhejiang"))
    hangzhou_police = _credit_code(17, "330106")
    card = {
        **CARD,
        "certificate_id": str(
            make_certificate_id(TYPES["resident_id_card"].type_code, hangzhou_police, "ZJ0B21D4")
        ),
        "issuing_authority": "杭州市公安局西湖分局",
        "issuing_authority_code": hangzhou_police,
    }
    async with serving(config_for(mesh, "zhejiang", **FAST)) as (_, zj_client):
        response = await zj_client.post("/v1/certificates", json=card)
        assert response.status == 201, await response.text()
    platform = build_platform(tmp_path / "js-platform.db", seed=2, officer_delay=0.0)
    async with TestServer(platform, host="127.0.0.1") as server:
        js_platform = PlatformConfig(
            "jiangsu", str(server.make_url("")).rstrip("/"), poll_interval_seconds=0.05
        )
        matter = matter_of("jiangsu")
        body = with_card(case_body(matter))
        for material in body["materials"]:
            if "certificate_id" in material:
                material["certificate_id"] = card["certificate_id"]
        async with (
            serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
            serving(config_for(mesh, "jiangsu", platform=js_platform, **FAST)) as (js, _),
        ):
            await eventually(lambda: sh.cases.find_matter(matter.code) is not None)
            # The simulated officer's decisions follow from the seed and the case id: submit
            # until a case its officer accepts (about nine in ten are).
            for _ in range(10):
                response = await sh_client.post("/v1/cases", json=body)
                case_id = (await response.json())["case_id"]
                if plan_for(2, case_id).accept:
                    break
            await eventually(lambda: status_of(js, case_id) == "delivered")

            def deferred() -> bool:
                rows = (
                    js.db.reader()
                    .execute(
                        "SELECT count(*) FROM platform_events WHERE case_id = ? "
                        "AND outcome = 'deferred'",
                        (case_id,),
                    )
                    .fetchone()
                )
                return int(rows[0]) >= 1

            await eventually(deferred)
            assert status_of(js, case_id) == "delivered"
            [check] = cases_store.certificate_checks(js.db.reader(), case_id)
            assert check.state == "pending"
            async with serving(config_for(mesh, "zhejiang", **FAST)):
                # The officer's next step (complete, deny or ask for a supplement) came right
                # behind its acceptance and waited behind it; both apply, in order.
                moved_on = ("supplement_requested", "completed", "denied")
                await eventually(lambda: status_of(sh, case_id) in moved_on)
            [check] = cases_store.certificate_checks(js.db.reader(), case_id)
            assert check.state == "verified"
            assert not deferred()
            view = sh.case_views.view(sh.case_views.get(case_id))
            assert [h["action"] for h in view["history"]][:3] == [
                "deliver",
                "accept",
                view["history"][2]["action"],
            ]
            query = (
                "SELECT count(*) FROM platform_events WHERE case_id = ? AND outcome != 'applied'"
            )
            refused = js.db.reader().execute(query, (case_id,)).fetchone()[0]
            assert refused == 0

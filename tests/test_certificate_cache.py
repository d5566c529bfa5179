"""The requester's cache of attestations stays exact (issue 14, item 4), against two real
nodes: an answer is reused only until its ``valid_until``, never for another holder,
purpose or consent, and a newer revocation list of the issuer voids it at once."""

from __future__ import annotations

import copy
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.certificate_samples import LI_MINGHUA, OTHER_PERSON, sample_json
from tests.nodes import config_for, eventually, make_mesh, serving, settled
from tests.test_certificate_exchange import future, problem

CARD = sample_json("resident_id_card")
CARD_ID = CARD["certificate_id"]
FAST = {"revocation_refresh_seconds": 0.2}
ASK = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": "hotel_check_in"}
VERIFY = "/v1/certificates/verify"


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


async def test_reused_only_until_valid_until(mesh: Path) -> None:
    """Both nodes on one clock: a second before the attestation's ``valid_until`` the answer
    comes from the cache; past it, the issuer is asked again and records a second usage."""
    now = [time.time()]

    def clock() -> float:
        return now[0]

    async with (
        serving(config_for(mesh, "shanghai", **FAST), clock=clock) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST), clock=clock) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        first = await (await js_client.post(VERIFY, json=ASK)).json()
        assert first["cached"] is False
        until = datetime.fromisoformat(first["valid_until"]).timestamp()
        now[0] = until - 1
        assert (await (await js_client.post(VERIFY, json=ASK)).json())["cached"] is True
        now[0] = until + 1  # the answer shows whole seconds
        again = await (await js_client.post(VERIFY, json=ASK)).json()
        assert again["cached"] is False and again["attestation"] != first["attestation"]
        usage = await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json()
        assert len(usage["usage"]) == 2


async def test_never_across_holders_purposes_or_consents(mesh: Path) -> None:
    """A cached answer is not given for another holder, purpose or consent grant: each is
    asked of the issuer (and refused or answered on its own)."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        assert (await (await js_client.post(VERIFY, json=ASK)).json())["cached"] is False
        assert (await (await js_client.post(VERIFY, json=ASK)).json())["cached"] is True
        other_holder = {**ASK, "holder_code": OTHER_PERSON}
        await problem(await js_client.post(VERIFY, json=other_holder), 403, "holder_mismatch")
        other_purpose = {**ASK, "purpose": "roadside_vehicle_inspection"}
        await problem(await js_client.post(VERIFY, json=other_purpose), 403, "purpose_not_allowed")

        grants = []
        for _ in range(2):
            signed = await sh_client.post(
                "/v1/consents",
                json={"holder_code": LI_MINGHUA, "purpose": "hotel_check_in",
                      "fields": ["name"], "expires_at": future()},
            )  # fmt: skip
            assert signed.status == 201, await signed.text()
            grants.append({"grant": (await signed.json())["grant"]})
        named = [{**ASK, "fields": ["name"], "consent": grant} for grant in grants]
        answers = [await (await js_client.post(VERIFY, json=body)).json() for body in named]
        assert [a["cached"] for a in answers] == [False, False]
        assert (await (await js_client.post(VERIFY, json=named[0])).json())["cached"] is True
        usage = await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json()
        assert len(usage["usage"]) == 3


async def test_a_newer_revocation_list_voids_the_cached_answer_at_once(mesh: Path) -> None:
    """A valid answer is cached; once the issuer's newer list naming the card is held, the
    same question is asked again and answered revoked."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        await eventually(lambda: js.certificates.held_list("shanghai") is not None)
        held = js.certificates.held_list("shanghai")
        assert held is not None
        assert (await (await js_client.post(VERIFY, json=ASK)).json())["status"] == "valid"
        assert (await (await js_client.post(VERIFY, json=ASK)).json())["cached"] is True
        revoked = copy.deepcopy(CARD)
        revoked["status"] = "revoked"
        assert (await sh_client.post("/v1/certificates", json=revoked)).status == 201

        def newer_held() -> bool:
            now_held = js.certificates.held_list("shanghai")
            return now_held is not None and now_held.version > held.version

        await eventually(newer_held)
        answer = await (await js_client.post(VERIFY, json=ASK)).json()
        assert (answer["status"], answer["cached"]) == ("revoked", False)

"""The bulk verification route (``POST /v1/certificates/verify-batch``) against two real
nodes: Jiangsu asks Shanghai about Shanghai's ID card, many questions in one request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.runtime.config import ConfigError, load_config
from node.wire import pb
from tests.certificate_samples import LI_MINGHUA, OTHER_PERSON, sample_json
from tests.nodes import ScopedClient, config_for, eventually, make_mesh, serving, settled
from tests.test_certificate_exchange import problem

CARD = sample_json("resident_id_card")
CARD_ID = CARD["certificate_id"]
FAST = {"revocation_refresh_seconds": 0.2}
STATUS_ONLY = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": "hotel_check_in"}


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


async def usage_count(client: ScopedClient) -> int:
    response = await client.get(f"/v1/certificates/{CARD_ID}/usage")
    assert response.status == 200, await response.text()
    return len((await response.json())["usage"])


async def test_mixed_items_each_answered_or_refused_alone(mesh: Path) -> None:
    """Valid and invalid questions in one request: each valid one gets its attestation, each
    invalid one its own problem (the status it would have had alone), in order; only the
    answered ones leave a usage record at the issuer."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        items: list[Any] = [
            {**STATUS_ONLY, "requester": "南京市某酒店"},
            {**STATUS_ONLY, "certificate_id": CARD_ID[:-1] + ("0" if CARD_ID[-1] != "0" else "1")},
            {**STATUS_ONLY, "fields": ["name"]},
            {**STATUS_ONLY, "holder_code": OTHER_PERSON},
            "not a question",
            {**STATUS_ONLY, "colour": "blue"},
            {**STATUS_ONLY, "requester": "苏州市某银行"},
        ]
        response = await js_client.post("/v1/certificates/verify-batch", json={"items": items})
        assert response.status == 200, await response.text()
        results = (await response.json())["results"]
        assert len(results) == len(items)
        for index in (0, 6):
            assert results[index]["result"]["status"] == "valid"
            assert results[index]["result"]["issuer"] == "shanghai"
            assert results[index]["result"]["cached"] is False
        refused = {
            1: (422, "invalid_certificate_id", "certificate_id"),
            2: (403, "consent_required", "consent"),
            3: (403, "holder_mismatch", "holder_code"),
            4: (422, "invalid_item", None),
            5: (422, "unknown_field", "colour"),
        }
        for index, (status, code, field) in refused.items():
            assert set(results[index]) == {"problem"}, results[index]
            shown = results[index]["problem"]
            assert (shown["status"], shown["code"], shown.get("field")) == (status, code, field)
        records = (await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json())["usage"]
        assert sorted(r["requester"] for r in records) == ["南京市某酒店", "苏州市某银行"]


async def test_one_item_asking_fields_without_consent(mesh: Path) -> None:
    """A batch of questions of which one asks for a field without the holder's consent: that
    one is refused ``consent_required`` and recorded nowhere; the others are answered."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        items = [{**STATUS_ONLY, "requester": f"酒店{n}"} for n in range(5)]
        items[2] = {**items[2], "fields": ["name", "address"]}
        response = await js_client.post("/v1/certificates/verify-batch", json={"items": items})
        assert response.status == 200, await response.text()
        results = (await response.json())["results"]
        assert [r.get("problem", {}).get("code") for r in results] == [
            None,
            None,
            "consent_required",
            None,
            None,
        ]
        records = (await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json())["usage"]
        assert sorted(r["requester"] for r in records) == ["酒店0", "酒店1", "酒店3", "酒店4"]


async def test_bad_lists_are_refused_whole_and_ask_nothing(mesh: Path) -> None:
    """Over the configured limit, empty, not a list, or with a key besides ``items``: the
    request is refused as a whole (422 naming ``items``) and no question reaches the issuer."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", verify_batch_items=3, **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        url = "/v1/certificates/verify-batch"
        four = [{**STATUS_ONLY, "requester": f"窗口{n}"} for n in range(4)]
        over = await problem(await js_client.post(url, json={"items": four}), 422, "too_many_items")
        assert over["field"] == "items" and "at most 3" in over["detail"]
        empty = await problem(await js_client.post(url, json={"items": []}), 422, "empty_batch")
        assert empty["field"] == "items"
        await problem(await js_client.post(url, json={"items": STATUS_ONLY}), 422, "missing_field")
        await problem(await js_client.post(url, json={}), 422, "missing_field")
        extra = {"items": four[:1], "mode": "fast"}
        await problem(await js_client.post(url, json=extra), 422, "unknown_field")
        assert await usage_count(sh_client) == 0
        answered = await js_client.post(url, json={"items": four[:3]})
        assert answered.status == 200, await answered.text()
        assert await usage_count(sh_client) == 3


@pytest.mark.parametrize(("value", "message"), [("0", "at least 1"), ('"500"', "must be a int")])
def test_a_bulk_limit_below_one_or_not_a_number_is_refused_at_load(
    mesh: Path, value: str, message: str
) -> None:
    path = mesh / "jiangsu" / "node.toml"
    path.write_text(path.read_text() + f"\n[certificates]\nverify_batch_items = {value}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path, {})


def test_the_bulk_limit_is_read_from_node_toml(mesh: Path) -> None:
    path = mesh / "jiangsu" / "node.toml"
    assert load_config(path, {}).verify_batch_items == 500
    path.write_text(path.read_text() + "\n[certificates]\nverify_batch_items = 64\n")
    assert load_config(path, {}).verify_batch_items == 64


async def test_the_same_question_in_flight_is_asked_once(mesh: Path) -> None:
    """The same question five times in one bulk request (and a sixth beside it) reaches the
    issuer once: one usage record, the same signed attestation for every asker, the joiners
    marked as relying on an answer they did not cause (``cached``)."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        same = {**STATUS_ONLY, "requester": "同一个问题"}
        other = {**STATUS_ONLY, "requester": "另一个问题"}
        response = await js_client.post(
            "/v1/certificates/verify-batch", json={"items": [same] * 5 + [other]}
        )
        assert response.status == 200, await response.text()
        answers = [r["result"] for r in (await response.json())["results"]]
        assert len({a["attestation"] for a in answers[:5]}) == 1
        assert answers[5]["attestation"] != answers[0]["attestation"]
        assert [a["cached"] for a in answers] == [False, True, True, True, True, False]
        records = (await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json())["usage"]
        assert sorted(r["requester"] for r in records) == ["另一个问题", "同一个问题"]


async def test_a_question_sent_again_is_answered_from_the_inbox(mesh: Path) -> None:
    """The same signed verification sent twice (a retry after a lost answer) gets the very
    reply it got the first time, and the issuer records one usage, not two."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, _),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        request = js.certificates.request({**STATUS_ONLY, "requester": "重试的窗口"})
        [sealed] = js.courier.seal("shanghai", [("certificate_verify", request.to_wire())])
        channel = js.peers["shanghai"].channel
        first, _ = await channel.ask(sealed.message, timeout=10)
        again, _ = await channel.ask(sealed.message, timeout=10)
        replied = pb.Message.FromString(pb.Envelope.FromString(first).message)
        assert replied.WhichOneof("body") == "attestation"
        assert pb.Envelope.FromString(again).message == pb.Envelope.FromString(first).message
        assert await usage_count(sh_client) == 1


async def test_each_consent_grant_is_checked_once_a_side(
    mesh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question with a consent grant: its signature is checked once by the requester and
    once by the issuer (whose validator's reading is the one the answer uses), not again."""
    from node.certificates import verification

    reads: list[str] = []
    real = verification.read_grant

    def counted(token: str, **kwargs: Any) -> Any:
        reads.append(token)
        return real(token, **kwargs)

    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        signed = await sh_client.post(
            "/v1/consents",
            json={"holder_code": LI_MINGHUA, "purpose": "hotel_check_in", "fields": ["name"]},
        )
        assert signed.status == 201, await signed.text()
        grant = (await signed.json())["grant"]
        monkeypatch.setattr(verification, "read_grant", counted)
        asked = {**STATUS_ONLY, "fields": ["name"], "consent": {"grant": grant}}
        answered = await js_client.post("/v1/certificates/verify", json=asked)
        assert answered.status == 200, await answered.text()
        assert (await answered.json())["fields"] == {"name": CARD["fields"]["name"]}
        assert reads == [grant, grant]

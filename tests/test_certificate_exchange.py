"""Certificate mutual recognition across two real nodes: online verification with signed
attestations, consent and purpose, usage records, presentations and revocation lists."""

from __future__ import annotations

import base64
import copy
import time
from pathlib import Path
from typing import Any

import pytest

from node.certificates.consent import ConsentGrant, new_grant_id, sign_grant
from node.certificates.model import TYPES
from node.identifiers import make_certificate_id, parse_certificate_id
from node.protocol.envelope import statement_of
from node.runtime.node import Node
from node.wire import pb
from tests.certificate_samples import LI_MINGHUA, OTHER_PERSON, sample_json
from tests.nodes import config_for, eventually, make_mesh, serving, settled

CARD = sample_json("resident_id_card")
CARD_ID = CARD["certificate_id"]
FAST = {"revocation_refresh_seconds": 0.2}


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def future(seconds: float = 3600) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def expired_grant(node: Node, holder: str, purpose: str, fields: tuple[str, ...]) -> str:
    """A grant ``node`` signed when its key came into force, that has just run out."""
    key = node.credentials.signing_key
    member = node.credentials.manifest.member(node.config.node_id)
    entry = member.key(key.key_id) if member else None
    assert entry is not None
    grant = ConsentGrant(
        grant_id=new_grant_id(),
        grantor=node.config.node_id,
        holder_code=holder,
        purpose=purpose,
        fields=fields,
        issued_at=entry.not_before,
        expires_at=min(time.time() - 0.001, entry.not_before + 3600),
    )
    return sign_grant(grant, node.credentials.signing_key)


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    assert body["code"] == code, body
    return body


async def test_online_verification_consent_purpose_and_usage(mesh: Path) -> None:
    """Jiangsu verifies a Shanghai ID card: status alone needs no consent, fields need it and
    stay inside the purpose; each disclosure is signed and recorded at Shanghai, refusals
    are not."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        response = await sh_client.post("/v1/certificates", json=CARD)
        assert response.status == 201, await response.text()

        ask = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": "hotel_check_in",
               "requester": "南京市某酒店"}  # fmt: skip
        first = await js_client.post("/v1/certificates/verify", json=ask)
        assert first.status == 200, await first.text()
        attested = await first.json()
        assert attested["status"] == "valid"
        assert attested["fields"] == {}
        assert attested["issuer"] == "shanghai" and attested["cached"] is False
        envelope = pb.Envelope.FromString(unb64(attested["attestation"]))
        key = sh.credentials.manifest.all_keys()[envelope.key_id]
        assert key.verify(envelope.signature, statement_of(envelope) or b"")
        message = pb.Message.FromString(envelope.message)
        assert message.header.sender == sh.config.node_id
        assert len(message.attestation.request_digest) == 32

        again = await (await js_client.post("/v1/certificates/verify", json=ask)).json()
        assert again["cached"] is True and again["attestation"] == attested["attestation"]

        with_fields = {**ask, "fields": ["name", "address"]}
        await problem(
            await js_client.post("/v1/certificates/verify", json=with_fields),
            403,
            "consent_required",
        )
        signed = await sh_client.post(
            "/v1/consents",
            json={"holder_code": LI_MINGHUA, "purpose": "hotel_check_in",
                  "fields": ["name", "address"], "expires_at": future()},
        )  # fmt: skip
        assert signed.status == 201, await signed.text()
        grant = await signed.json()
        consent = {"grant": grant["grant"]}
        granted = await js_client.post(
            "/v1/certificates/verify", json={**with_fields, "consent": consent}
        )
        assert granted.status == 200, await granted.text()
        assert (await granted.json())["fields"] == {
            "name": CARD["fields"]["name"],
            "address": CARD["fields"]["address"],
        }
        expired = {"grant": expired_grant(sh, LI_MINGHUA, "hotel_check_in", ("name", "address"))}
        parts = parse_certificate_id(CARD_ID)
        wrong_check = CARD_ID[:-1] + ("0" if CARD_ID[-1] != "0" else "1")
        outside = make_certificate_id(TYPES["resident_id_card"].type_code, "440300", "GD0001")
        missing = make_certificate_id(parts.type_code, parts.issuer_code, "NOSUCH01")
        refused = [
            ({**with_fields, "consent": expired}, 403, "consent_expired"),
            ({**ask, "fields": ["ethnicity"], "consent": consent}, 403, "field_not_allowed"),
            ({**ask, "purpose": "roadside_vehicle_inspection"}, 403, "purpose_not_allowed"),
            ({**ask, "holder_code": OTHER_PERSON}, 403, "holder_mismatch"),
            ({**ask, "certificate_id": wrong_check}, 422, "invalid_certificate_id"),
            ({**ask, "certificate_id": str(outside)}, 422, "unknown_issuer"),
            ({**ask, "certificate_id": str(missing)}, 404, "certificate_not_found"),
        ]
        before = len(
            (await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json())["usage"]
        )
        for body, status, code in refused:
            await problem(await js_client.post("/v1/certificates/verify", json=body), status, code)
        records = (await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json())["usage"]
        assert len(records) == before == 2
        newest, oldest = records
        assert oldest["requester_province"] == "jiangsu" and oldest["fields"] == ["status"]
        assert oldest["requester"] == "南京市某酒店" and oldest["purpose"] == "hotel_check_in"
        assert newest["fields"] == ["status", "name", "address"]
        assert newest["consent_grant_id"] == grant["grant_id"]
        elsewhere = await js_client.get(f"/v1/certificates/{CARD_ID}/usage")
        await problem(elsewhere, 404, "not_issuer")


async def test_presentation_and_revocation_reach_every_node(mesh: Path) -> None:
    """A presentation issued by Shanghai verifies at Jiangsu with the list's age; after the
    card is revoked in Shanghai's library the new list reaches Jiangsu and the same
    presentation fails there, and a new one is refused."""
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        issued = await sh_client.post(
            "/v1/presentations", json={"certificate_id": CARD_ID, "holder_code": LI_MINGHUA}
        )
        assert issued.status == 201, await issued.text()
        token = (await issued.json())["token"]
        assert len(token) < 600
        await eventually(lambda: "shanghai" in js.certificates.list_ages())

        checked = await (
            await js_client.post("/v1/presentations/verify", json={"token": token})
        ).json()
        assert checked["valid"] is True and checked["status"] == "valid"
        assert checked["issuer"] == "shanghai"
        assert 0 <= checked["revocation_list_age_seconds"] < 60
        assert set(checked["fields"]) <= set(CARD["fields"]) | {"valid_until"}

        tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
        await problem(
            await js_client.post("/v1/presentations/verify", json={"token": tampered}),
            422,
            "bad_signature",
        )
        await problem(
            await js_client.post(
                "/v1/presentations", json={"certificate_id": CARD_ID, "holder_code": LI_MINGHUA}
            ),
            422,
            "not_issuer",
        )

        version = js.certificates.held_list("shanghai")
        assert version is not None
        revoked = copy.deepcopy(CARD)
        revoked["status"] = "revoked"
        assert (await sh_client.post("/v1/certificates", json=revoked)).status == 201

        def revoked_held() -> bool:
            held = js.certificates.held_list("shanghai")
            return held is not None and held.version > version.version

        await eventually(revoked_held)
        checked = await (
            await js_client.post("/v1/presentations/verify", json={"token": token})
        ).json()
        assert checked["valid"] is False and checked["status"] == "revoked"
        await problem(
            await sh_client.post(
                "/v1/presentations", json={"certificate_id": CARD_ID, "holder_code": LI_MINGHUA}
            ),
            409,
            "certificate_not_valid",
        )
        online = await js_client.post(
            "/v1/certificates/verify",
            json={
                "certificate_id": CARD_ID,
                "holder_code": LI_MINGHUA,
                "purpose": "hotel_check_in",
            },
        )
        assert (await online.json())["status"] == "revoked"
        metrics = await (await js_client.get("/metrics")).text()
        assert 'yrd_revocation_list_age_seconds{issuer="shanghai"}' in metrics
        assert (
            'yrd_certificate_verifications_total{purpose="hotel_check_in",result="revoked"} 1.0'
            in metrics
        )


async def test_expired_certificate_is_attested_expired(mesh: Path) -> None:
    """A card stored as valid but past its valid_until is attested expired to Jiangsu, cannot
    be presented, and Shanghai records the disclosure with the status it attested."""
    lapsed = {**copy.deepcopy(CARD), "valid_until": "2020-03-02"}
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        response = await sh_client.post("/v1/certificates", json=lapsed)
        assert response.status == 201, await response.text()

        ask = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": "hotel_check_in",
               "requester": "南京市某酒店"}  # fmt: skip
        verified = await js_client.post("/v1/certificates/verify", json=ask)
        assert verified.status == 200, await verified.text()
        attested = await verified.json()
        assert attested["status"] == "expired" and attested["cached"] is False

        await problem(
            await sh_client.post(
                "/v1/presentations", json={"certificate_id": CARD_ID, "holder_code": LI_MINGHUA}
            ),
            409,
            "certificate_not_valid",
        )
        usage = await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json()
        [record] = usage["usage"]
        assert record["status"] == "expired"
        assert record["requester_province"] == "jiangsu" and record["fields"] == ["status"]

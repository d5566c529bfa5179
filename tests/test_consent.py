"""Consent that can be checked: grants a member node signs, read and judged by the issuer.

Unit tests drive ``node.certificates.consent`` with bytes and a fixed clock; the rest use two
real nodes (Shanghai issues the card, Jiangsu asks), and check that every refused grant
leaves no usage record (用证记录) at the issuer.
"""

from __future__ import annotations

import dataclasses
import random
import time
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.certificates.consent import (
    MAX_LIFETIME,
    ConsentGrant,
    ConsentRefused,
    grant_bytes,
    grant_token,
    read_grant,
    sign_grant,
)
from node.identifiers import make_id_number
from node.protocol.envelope import header, seal
from node.runtime.node import Node
from node.trust.keys import SigningKey, VerifyKey
from node.wire import DELIVER_METHOD, pb
from tests.certificate_samples import LI_MINGHUA, NOW, manifest_for, sample_json
from tests.nodes import config_for, eventually, make_mesh, raw_channel, serving, settled, tls_of

CARD = sample_json("resident_id_card")
SHANGHAI_NEIGHBOUR = make_id_number(
    random.Random(5), division="310115", birth=date(1985, 1, 1), sex="female"
)
"""Another Shanghai resident: Shanghai may grant for them, not for LI_MINGHUA's card."""
CARD_ID = CARD["certificate_id"]
HOTEL = "hotel_check_in"
KEYS = {"shanghai": SigningKey.generate(), "jiangsu": SigningKey.generate()}
MANIFEST = manifest_for(KEYS)


def grant(**changes: Any) -> ConsentGrant:
    base = ConsentGrant(
        grant_id="cg-0123456789abcdef01234567",
        grantor="shanghai-node",
        holder_code=LI_MINGHUA,
        purpose=HOTEL,
        fields=("name", "address"),
        issued_at=NOW - 60,
        expires_at=NOW + 3600,
    )
    return dataclasses.replace(base, **changes)


def refusal(token: object, now: float = NOW) -> ConsentRefused:
    with pytest.raises(ConsentRefused) as caught:
        read_grant(token, manifest=MANIFEST, now=now)
    return caught.value


def test_a_signed_grant_reads_back_exactly() -> None:
    """A grant signed by a member's key reads back with every value, and its token."""
    token = sign_grant(grant(certificate_id=CARD_ID, requester="某酒店"), KEYS["shanghai"])
    read = read_grant(token, manifest=MANIFEST, now=NOW)
    assert read == grant(certificate_id=CARD_ID, requester="某酒店", token=token)
    assert grant_token(grant_bytes(token)) == token


def test_any_flipped_byte_is_refused() -> None:
    """Each single-bit change of the signed bytes is refused as unverifiable (or malformed)."""
    raw = bytearray(grant_bytes(sign_grant(grant(), KEYS["shanghai"])))
    for index in range(0, len(raw), 7):
        raw[index] ^= 0x01
        error = refusal(grant_token(bytes(raw)))
        assert error.code == "consent_unverifiable", index
        raw[index] ^= 0x01


@pytest.mark.parametrize(
    ("why", "token"),
    [
        ("not a token", ""),
        ("not text", 12345),
        ("too long", "A" * 5000),
        ("not base64", "!!!!"),
        ("not a grant", grant_token(b"\xff\x00\x01garbage")),
        ("signed by a key of another member", sign_grant(grant(), KEYS["jiangsu"])),
        (
            "signed by a province that is not the holder's",
            sign_grant(grant(grantor="jiangsu-node"), KEYS["jiangsu"]),
        ),
        (
            "a grantor that is no member",
            sign_grant(grant(grantor="beijing-node"), KEYS["shanghai"]),
        ),
        ("an unknown key", sign_grant(grant(), SigningKey.generate())),
        ("a malformed grant id", sign_grant(grant(grant_id="G 1"), KEYS["shanghai"])),
        ("no field", sign_grant(grant(fields=()), KEYS["shanghai"])),
        (
            "a lifetime past the limit",
            sign_grant(grant(expires_at=NOW - 60 + MAX_LIFETIME + 1), KEYS["shanghai"]),
        ),
        ("issued in the future", sign_grant(grant(issued_at=NOW + 3600, expires_at=NOW + 7200),
                                            KEYS["shanghai"])),
    ],
)  # fmt: skip
def test_unverifiable_grants_are_refused(why: str, token: object) -> None:
    """A grant nobody in the federation signed, or that says nothing sensible, is refused."""
    error = refusal(token)
    assert error.code == "consent_unverifiable", why
    assert error.field == "consent.grant"
    assert LI_MINGHUA not in str(error)


def test_a_grant_by_a_revoked_key_is_refused() -> None:
    """Once the grantor's key is revoked in the manifest, its grants count no more."""
    token = sign_grant(grant(), KEYS["shanghai"])
    revoked = manifest_for(KEYS, revoked=frozenset({KEYS["shanghai"].key_id}))
    with pytest.raises(ConsentRefused) as caught:
        read_grant(token, manifest=revoked, now=NOW)
    assert caught.value.code == "consent_unverifiable"


def test_a_grant_read_again_is_not_verified_again_but_its_time_and_manifest_still_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second read of a token under the same manifest checks no signature; it is still
    refused once expired, and a reloaded manifest that revokes the key refuses it at once."""
    token = sign_grant(grant(grant_id="cg-read-twice-0123456789"), KEYS["shanghai"])
    verified: list[bytes] = []
    real = VerifyKey.verify

    def counted(self: Any, signature: bytes, message: bytes) -> bool:
        verified.append(message)
        return bool(real(self, signature, message))

    monkeypatch.setattr(VerifyKey, "verify", counted)
    first = read_grant(token, manifest=MANIFEST, now=NOW)
    assert len(verified) == 1
    assert read_grant(token, manifest=MANIFEST, now=NOW + 10) == first
    assert len(verified) == 1
    assert refusal(token, now=NOW + 3600).code == "consent_expired"
    revoked = manifest_for(KEYS, revoked=frozenset({KEYS["shanghai"].key_id}))
    with pytest.raises(ConsentRefused) as caught:
        read_grant(token, manifest=revoked, now=NOW)
    assert caught.value.code == "consent_unverifiable"


def test_a_forged_token_is_verified_and_refused_every_time() -> None:
    """A refused token is never remembered: each read checks its signature and refuses it."""
    token = sign_grant(grant(grant_id="cg-forged-0123456789ab"), KEYS["shanghai"])
    signed = pb.SignedConsent.FromString(grant_bytes(token))
    signed.signature = bytes(64)
    forged = grant_token(signed.SerializeToString())
    for _ in range(3):
        assert refusal(forged).code == "consent_unverifiable"
    assert read_grant(token, manifest=MANIFEST, now=NOW).grant_id == "cg-forged-0123456789ab"


def test_an_expired_grant_is_refused_from_its_expiry_on() -> None:
    token = sign_grant(grant(), KEYS["shanghai"])
    assert read_grant(token, manifest=MANIFEST, now=NOW + 3599).grant_id
    assert refusal(token, now=NOW + 3600).code == "consent_expired"


# --- two real nodes ---------------------------------------------------------------------


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def future(seconds: float = 3600) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


async def usage_count(client: Any) -> int:
    answer = await client.get(f"/v1/certificates/{CARD_ID}/usage")
    assert answer.status == 200
    return len((await answer.json())["usage"])


async def signed_by(client: Any, **body: Any) -> dict[str, Any]:
    wanted = {"holder_code": LI_MINGHUA, "purpose": HOTEL, "fields": ["name", "address"]}
    answer = await client.post("/v1/consents", json={**wanted, **body})
    assert answer.status == 201, await answer.text()
    document: dict[str, Any] = await answer.json()
    return document


def node_grant(node: Node, **changes: Any) -> str:
    """A grant ``node`` signs directly (to make one its API would not: other values)."""
    key = node.credentials.signing_key
    member = node.credentials.manifest.member(node.config.node_id)
    entry = member.key(key.key_id) if member else None
    assert entry is not None
    now = time.time()
    base = ConsentGrant(
        grant_id="cg-test-0001",
        grantor=node.config.node_id,
        holder_code=LI_MINGHUA,
        purpose=HOTEL,
        fields=("name", "address"),
        issued_at=entry.not_before,
        expires_at=now + 600,
    )
    return sign_grant(dataclasses.replace(base, **changes), key)


async def test_refused_grants_disclose_nothing_and_leave_no_usage(mesh: Path) -> None:
    """A forged, expired, other-holder, other-purpose, wider-fields, other-certificate and
    other-requester grant, a bare asserted one and one signed by a province that is not the
    holder's are each refused; the issuer writes no usage record for any. The right grant,
    signed by the holder's province, discloses and is recorded."""
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        ask = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": HOTEL,
               "fields": ["name", "address"], "requester": "南京市某酒店"}  # fmt: skip
        good = await signed_by(sh_client, certificate_id=CARD_ID, requester="南京市某酒店")
        raw = bytearray(grant_bytes(good["grant"]))
        raw[-3] ^= 0x40
        now = time.time()
        cases = [
            ("forged", grant_token(bytes(raw)), 403, "consent_unverifiable"),
            ("asserted", None, 403, "consent_unverifiable"),
            (
                "expired",
                node_grant(sh, expires_at=now - 0.001),
                403,
                "consent_expired",
            ),
            ("other holder", node_grant(sh, holder_code=SHANGHAI_NEIGHBOUR), 403,
             "consent_mismatch"),
            ("other purpose", node_grant(sh, purpose="traffic_violation_handling"), 403,
             "consent_mismatch"),
            ("narrower fields", node_grant(sh, fields=("name",)), 403, "consent_mismatch"),
            ("other certificate", node_grant(sh, certificate_id=CARD_ID[:-1] + "0"), 403,
             "consent_mismatch"),
            ("other requester", node_grant(sh, requester="另一家酒店"), 403, "consent_mismatch"),
        ]  # fmt: skip
        before = await usage_count(sh_client)
        for why, token, status, code in cases:
            consent: dict[str, Any] = (
                {"grant": token}
                if token is not None
                else {"grant_id": "anything-123", "expires_at": "9999-12-31T00:00:00Z"}
            )
            answer = await js_client.post(
                "/v1/certificates/verify", json={**ask, "consent": consent}
            )
            body = await answer.json()
            assert (answer.status, body["code"]) == (status, code), (why, body)
            assert body.get("fields") is None
        assert await usage_count(sh_client) == before

        # Only the holder's own province (Shanghai) signs for them.
        refused = await js_client.post(
            "/v1/consents",
            json={"holder_code": LI_MINGHUA, "purpose": HOTEL, "fields": ["name"]},
        )
        assert refused.status == 422
        assert (await refused.json())["field"] == "holder_code"
        answer = await js_client.post(
            "/v1/certificates/verify", json={**ask, "consent": {"grant": node_grant(js)}}
        )
        assert (await answer.json())["code"] == "consent_unverifiable"
        assert await usage_count(sh_client) == before
        token = (await signed_by(sh_client, certificate_id=CARD_ID))["grant"]
        answer = await js_client.post(
            "/v1/certificates/verify", json={**ask, "consent": {"grant": token}}
        )
        assert answer.status == 200, await answer.text()
        assert set((await answer.json())["fields"]) == {"name", "address"}
        records = await (await sh_client.get(f"/v1/certificates/{CARD_ID}/usage")).json()
        assert len(records["usage"]) == before + 1
        assert records["usage"][0]["consent_grant_id"].startswith("cg-")


async def test_a_peer_sending_an_asserted_consent_gets_a_signed_fault(mesh: Path) -> None:
    """On the wire too, a verification carrying the old unsigned Consent is refused with a
    signed consent_unverifiable fault, and nothing is stored."""
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, _),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        message = pb.Message(
            header=header(
                sender=js.config.node_id,
                recipient=sh.config.node_id,
                now=time.time(),
                manifest_version=js.credentials.manifest.version,
            ),
            certificate_verify=pb.CertificateVerify(
                certificate_id=CARD_ID,
                holder_code=LI_MINGHUA,
                purpose=HOTEL,
                fields=["name"],
                consent=pb.Consent(grant_id="anything-1234", purpose=HOTEL),
            ),
        )
        envelope = seal(message, js.credentials.signing_key).envelope
        before = await usage_count(sh_client)
        async with raw_channel(sh.config, tls_of(mesh, "jiangsu"), sh.config.node_id) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(DELIVER_METHOD)(envelope, timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "consent_unverifiable" in (refused.value.details() or "")
        assert await usage_count(sh_client) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"holder_code": "123"}, "holder_code"),
        ({"holder_code": None}, "holder_code"),
        ({"purpose": "sightseeing"}, "purpose"),
        ({"fields": []}, "fields"),
        ({"fields": ["name", "favourite_colour"]}, "fields[1]"),
        ({"fields": "name"}, "fields"),
        ({"certificate_id": "1.2.156.3005.2.x"}, "certificate_id"),
        ({"requester": ""}, "requester"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": future(100 * 86400)}, "expires_at"),
        ({"grant_id": "mine"}, "grant_id"),
    ],
)
async def test_consent_requests_are_checked(mesh: Path, change: dict[str, Any], field: str) -> None:
    """A request to sign a grant that names no holder, a purpose or fields it cannot, or an
    expiry out of bounds is a 422 naming the field, and nothing is signed."""
    async with serving(config_for(mesh, "shanghai")) as (sh, client):
        body = {"holder_code": LI_MINGHUA, "purpose": HOTEL, "fields": ["name"], **change}
        body = {k: v for k, v in body.items() if v is not None}
        answer = await client.post("/v1/consents", json=body)
        problem = await answer.json()
        assert answer.status == 422, problem
        assert problem["code"] == "invalid_consent"
        assert problem["field"] == field
        granted = sh.metrics.registry.get_sample_value("yrd_consents_granted_total")
        assert granted == 0.0

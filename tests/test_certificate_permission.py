"""The manifest's certificate policy on two real nodes: a requester whose ``may_verify`` does
not list a certificate type or purpose is refused by its own node before anything is sent,
and by the issuer with a signed ``certificate_not_permitted`` fault before anything is
stored, recorded or read from the library."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.certificates.model import TYPES
from node.certificates.policy import MATTER, SCENES
from node.identifiers import make_certificate_id, parse_certificate_id
from node.mesh.layout import publish_manifest, read_manifest
from node.protocol.envelope import header, seal, statement_of
from node.runtime.node import Node
from node.store import certificates as certificate_store
from node.store import inbox
from node.trust.keys import load_signing_key
from node.trust.manifest import VerifyPermission
from node.wire import pb
from tests.cases import case_body, matter_of, status_of
from tests.certificate_samples import LI_MINGHUA, sample_json
from tests.nodes import config_for, eventually, make_mesh, raw_channel, serving, settled, tls_of
from tests.test_case_certificates import with_card
from tests.test_certificate_exchange import problem
from tests.test_exchange import call_raw

CARD = sample_json("resident_id_card")
CARD_ID = CARD["certificate_id"]
FAST = {"revocation_refresh_seconds": 0.2}
HOTEL = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": "hotel_check_in",
         "requester": "南京市某酒店"}  # fmt: skip


def restrict(mesh: Path, province: str, permission: VerifyPermission) -> None:
    """Publish the next manifest version with ``province`` narrowed to ``permission``."""
    manifest = read_manifest(mesh)
    member = manifest.member_for_province(province)
    assert member is not None
    publish_manifest(
        mesh, manifest.with_member(replace(member, may_verify=permission)), now=time.time()
    )


def verify_envelopes(node: Node, direction: str) -> int:
    """How many certificate_verify envelopes ``node``'s evidence log holds, sent or received."""
    rows = node.db.reader().execute(
        "SELECT body FROM audit WHERE direction = ? AND kind = 'envelope'", (direction,)
    )
    kinds = [
        pb.Message.FromString(pb.Envelope.FromString(row[0]).message).WhichOneof("body")
        for row in rows
    ]
    return kinds.count("certificate_verify")


def usage_count(node: Node, by: str | None = None) -> int:
    """Checks of the card the issuer recorded (only those asked by province ``by``)."""
    records = certificate_store.usage(node.db.reader(), CARD_ID)
    return len([r for r in records if by is None or r.requester_province == by])


def signed_fault(node: Node, reply: bytes) -> pb.Fault:
    """The fault in ``reply``, after checking it is signed by ``node``'s key."""
    envelope = pb.Envelope.FromString(reply)
    key = node.credentials.manifest.all_keys()[envelope.key_id]
    assert key.verify(envelope.signature, statement_of(envelope) or b"")
    message = pb.Message.FromString(envelope.message)
    assert message.header.sender == node.config.node_id
    assert message.WhichOneof("body") == "fault"
    return message.fault


async def test_a_forbidden_type_or_purpose_is_refused_at_both_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a new manifest narrows Jiangsu to ID cards for roadside checks and matters,
    Jiangsu refuses a hotel check-in (even one it has cached) and a driving licence without
    sending anything, and Shanghai refuses the same questions sealed by hand with a signed
    certificate_not_permitted fault, storing nothing and never reading its library; a
    question the manifest allows still reaches Shanghai's own disclosure policy."""
    mesh = make_mesh(tmp_path)
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        # Under mesh init's default policy the hotel check-in is answered, and cached.
        first = await js_client.post("/v1/certificates/verify", json=HOTEL)
        assert first.status == 200, await first.text()
        assert usage_count(sh) == 1

        restrict(
            mesh,
            "jiangsu",
            VerifyPermission(
                frozenset({"resident_id_card"}),
                frozenset({"roadside_vehicle_inspection", MATTER}),
            ),
        )
        await sh.reload()
        await js.reload()
        assert sh.credentials.manifest.version == js.credentials.manifest.version == 2

        gets: list[str] = []
        real_get = sh.certificates.library.get

        async def counting_get(certificate_id: str) -> Any:
            gets.append(certificate_id)
            return await real_get(certificate_id)

        monkeypatch.setattr(sh.certificates.library, "get", counting_get)
        parts = parse_certificate_id(CARD_ID)
        # Never imported anywhere: were the library asked, the answer would be not found.
        licence = str(
            make_certificate_id(TYPES["driving_licence"].type_code, parts.issuer_code, "DL000001")
        )
        stored_before = inbox.count(sh.db.reader(), payload_type="certificate_verify")
        received_before = verify_envelopes(sh, "received")
        sent_before = verify_envelopes(js, "sent")

        # -- Jiangsu's own node refuses, sending nothing --------------------------------------
        refused = await problem(
            await js_client.post("/v1/certificates/verify", json=HOTEL),
            403,
            "certificate_not_permitted",
        )
        assert refused["field"] == "purpose"
        assert "jiangsu" in refused["detail"] and "hotel_check_in" in refused["detail"]
        refused = await problem(
            await js_client.post(
                "/v1/certificates/verify",
                json={**HOTEL, "certificate_id": licence, "purpose": "roadside_vehicle_inspection"},
            ),
            403,
            "certificate_not_permitted",
        )
        assert refused["field"] == "certificate_id"
        assert "driving_licence" in refused["detail"]
        assert verify_envelopes(js, "sent") == sent_before
        assert verify_envelopes(sh, "received") == received_before
        assert inbox.count(sh.db.reader(), payload_type="certificate_verify") == stored_before
        assert usage_count(sh) == 1
        assert gets == []
        scrape = await (await js_client.get("/metrics")).text()
        assert (
            'yrd_certificate_verifications_total{purpose="hotel_check_in",'
            'result="certificate_not_permitted"} 1.0'
        ) in scrape

        # -- Shanghai refuses the same questions sealed by hand ---------------------------------
        js_key = load_signing_key(mesh / "jiangsu" / "signing.key")

        def sealed(certificate_id: str, purpose: str) -> Any:
            message = pb.Message(
                header=header(
                    sender=js.config.node_id,
                    recipient=sh.config.node_id,
                    now=time.time(),
                    manifest_version=2,
                ),
                certificate_verify=pb.CertificateVerify(
                    certificate_id=certificate_id,
                    holder_code=LI_MINGHUA,
                    purpose=purpose,
                    requester="南京市某酒店",
                ),
            )
            return seal(message, js_key)

        async with raw_channel(sh.config, tls_of(mesh, "jiangsu"), sh.config.node_id) as channel:
            for certificate_id, purpose, field in (
                (CARD_ID, "hotel_check_in", "purpose"),
                (licence, "roadside_vehicle_inspection", "certificate_id"),
            ):
                request = sealed(certificate_id, purpose)
                status, reply = await call_raw(channel, request.envelope)
                assert status == grpc.StatusCode.PERMISSION_DENIED
                fault = signed_fault(sh, reply)
                assert fault.code == "certificate_not_permitted"
                assert fault.field == f"body.certificate_verify.{field}"
                assert (fault.message_id, fault.digest) == (request.message_id, request.digest)
            assert gets == []
            assert inbox.count(sh.db.reader(), payload_type="certificate_verify") == stored_before
            assert verify_envelopes(sh, "received") == received_before
            assert usage_count(sh) == 1

            # Allowed by the manifest, the question reaches the library and then the
            # disclosure policy, which has its own word: roadside checks do not see ID cards.
            request = sealed(CARD_ID, "roadside_vehicle_inspection")
            status, reply = await call_raw(channel, request.envelope)
            assert status == grpc.StatusCode.PERMISSION_DENIED
            assert signed_fault(sh, reply).code == "purpose_not_allowed"
            assert gets == [CARD_ID]
        assert usage_count(sh) == 1


async def test_a_case_material_the_handler_may_not_ask_for_is_rejected_unsent(
    tmp_path: Path,
) -> None:
    """免于提交: when the manifest lets Jiangsu (the handler) ask only for scenes, it does not
    ask Shanghai about a case's ID card at all: the material and the case are rejected with
    certificate_not_permitted, and Shanghai records no check."""
    mesh = make_mesh(tmp_path)
    restrict(mesh, "jiangsu", VerifyPermission(frozenset(TYPES), frozenset(SCENES)))
    matter = matter_of("jiangsu")
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, js_client),
    ):
        assert js.credentials.manifest.version == 2
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        response = await sh_client.post("/v1/cases", json=with_card(case_body(matter)))
        assert response.status == 201, await response.text()
        case_id = (await response.json())["case_id"]

        await eventually(lambda: status_of(sh, case_id) == "rejected")
        view = await (await js_client.get(f"/v1/cases/{case_id}")).json()
        card = next(m for m in view["materials"] if m["name"] == "居民身份证")
        assert card["verification"]["state"] == "rejected"
        assert card["verification"]["reason"].startswith("certificate_not_permitted: purpose: ")
        assert "a matter code" in card["verification"]["reason"]
        assert "certificate_not_permitted" in view["history"][-1]["reason"]
        assert verify_envelopes(js, "sent") == 0
        assert verify_envelopes(sh, "received") == 0
        assert inbox.count(sh.db.reader(), payload_type="certificate_verify") == 0
        # Shanghai's own check of its applicant's name is recorded; none by Jiangsu.
        assert usage_count(sh, by="jiangsu") == 0
        assert usage_count(sh, by="shanghai") == 1


async def test_a_held_revocation_list_is_void_once_its_signing_key_is_revoked(
    tmp_path: Path,
) -> None:
    """Jiangsu holds Shanghai's list, checked when it arrived; a manifest revoking the key
    that signed it voids it at reload, not at the list's next version."""
    mesh = make_mesh(tmp_path)
    async with (
        serving(config_for(mesh, "shanghai", **FAST)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **FAST)) as (js, _),
    ):
        await eventually(lambda: settled(sh, js))
        assert (await sh_client.post("/v1/certificates", json=CARD)).status == 201
        await eventually(lambda: js.certificates.held_list("shanghai") is not None)

        manifest = read_manifest(mesh)
        member = manifest.member_for_province("shanghai")
        assert member is not None
        revoked = replace(member, keys=tuple(replace(k, revoked=True) for k in member.keys))
        publish_manifest(mesh, manifest.with_member(revoked), now=time.time())
        await js.reload()
        assert js.credentials.manifest.version == 2
        assert js.certificates.held_list("shanghai") is None

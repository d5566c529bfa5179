"""Clean input everywhere (issue 11): two real nodes, their REST APIs and their mutual-TLS
gRPC ports. Free text with a control, format or invisible character is refused where it
comes in (a 422 ``invalid_text`` problem naming the field on REST, a signed
``invalid_payload`` fault naming it on the wire); numbers in the query are ASCII digits
only; a message id or case id outside its bounds is a signed fault. Each refusal leaves
every store row count as it was."""

from __future__ import annotations

import copy
import secrets
import time
from pathlib import Path
from typing import Final

import grpc
import pytest

from node.cases.wire import stamp
from node.protocol.envelope import header, seal, statement_of
from node.runtime.node import Node
from node.trust.keys import load_signing_key
from node.trust.manifest import PROVINCES
from node.wire import pb
from tests import platforms
from tests.cases import case_body, matter_of, status_of
from tests.certificate_samples import LI_MINGHUA, sample_json
from tests.federation import node_id
from tests.nodes import (
    config_for,
    eventually,
    make_mesh,
    raw_channel,
    serving,
    settled,
    tls_of,
)
from tests.test_case_api import footprint, pair, problem_of
from tests.test_exchange import call_raw

HOSTILE: Final[dict[str, str]] = {
    "NUL": "\x00",
    "BEL": "\x07",
    "ESC": "\x1b",
    "newline": "\n",
    "DEL": "\x7f",
    "C1 next line": "\x85",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "right-to-left mark": "\u200f",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte-order mark": "\ufeff",
    "tag letter": "\U000e0041",
    "line separator": "\u2028",
    "noncharacter": "\ufffe",
}
"""One character of each class the node refuses, by what it is; what JSON and protobuf can
carry (a lone surrogate only JSON can: ``REST_ONLY``)."""
REST_ONLY: Final = {"lone surrogate": "\ud800"}
REST_HOSTILE: Final = {**HOSTILE, **REST_ONLY}
JS_MATTER: Final = matter_of("jiangsu")
SH_MATTER: Final = matter_of("shanghai")
CARD: Final = sample_json("resident_id_card")


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def rows(node: Node) -> tuple[int, ...]:
    """``footprint`` and the inbox: everything a refusal must leave as it was."""
    inbox = node.db.reader().execute("SELECT count(*) FROM inbox").fetchone()[0]
    return (*footprint(node), int(inbox))


def spoil(text: str, char: str) -> str:
    """``text`` with ``char`` in its middle."""
    middle = len(text) // 2
    return text[:middle] + char + text[middle:]


# --- REST ------------------------------------------------------------------------------------


async def test_hostile_text_in_a_submission_is_refused_naming_the_field(mesh: Path) -> None:
    """An applicant's or a material's name holding any refused character is a 422
    invalid_text problem naming that field; no case, message or evidence appears on
    either node."""
    async with pair(mesh) as (sh, sh_client, js, _):
        before = rows(sh), rows(js)
        for label, char in REST_HOSTILE.items():
            for field in ("applicant.name", "materials[0].name"):
                body = copy.deepcopy(case_body(JS_MATTER))
                if field == "applicant.name":
                    body["applicant"]["name"] = spoil("欧阳娜娜", char)
                else:
                    body["materials"][0]["name"] = spoil(body["materials"][0]["name"], char)
                response = await sh_client.post("/v1/cases", json=body)
                assert response.status == 422, (label, field, await response.text())
                problem = await problem_of(response)
                assert (problem["code"], problem["field"]) == ("invalid_text", field), label
                assert "欧阳" not in problem["detail"]
        # No wait needed to see that nothing travels: a node reaches its peer only through
        # its outbox (counted in ``rows``), or by a call finished before its answer.
        assert (rows(sh), rows(js)) == before


async def test_a_decomposed_name_is_stored_normalised(mesh: Path) -> None:
    """A name typed with a combining accent is accepted and kept in Unicode NFC, on both
    sides, as signed."""
    async with pair(mesh) as (sh, sh_client, js, _):
        body = case_body(JS_MATTER)
        body["applicant"]["name"] = "Zoe\u0308 Wang"
        response = await sh_client.post("/v1/cases", json=body)
        assert response.status == 201, await response.text()
        case_id = (await response.json())["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        assert sh.case_views.view(sh.case_views.get(case_id))["applicant"]["name"] == "Zoë Wang"
        assert js.case_views.view(js.case_views.get(case_id))["applicant"]["name"] == "Zoë Wang"


async def test_hostile_text_in_an_event_is_refused_naming_the_field(mesh: Path) -> None:
    """A reason or an evaluation comment holding any refused character is a 422 invalid_text
    problem naming it, on either side, and the case does not move."""
    async with pair(mesh) as (sh, sh_client, js, js_client):
        created = await (await sh_client.post("/v1/cases", json=case_body(JS_MATTER))).json()
        case_id = created["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        await eventually(lambda: status_of(sh, case_id) == "delivered")
        before = rows(sh), rows(js)
        for label, char in REST_HOSTILE.items():
            comment = spoil("办事快", char)
            events = (
                (js_client, "reason", {"action": "reject", "reason": spoil("材料不全", char)}),
                (sh_client, "reason", {"action": "withdraw", "reason": spoil("不办了", char)}),
                (sh_client, "comment", {"action": "evaluate", "level": 5, "comment": comment}),
            )
            for client, field, event in events:
                response = await client.post(f"/v1/cases/{case_id}/events", json=event)
                assert response.status == 422, (label, event["action"], await response.text())
                problem = await problem_of(response)
                assert (problem["code"], problem["field"]) == ("invalid_text", field), label
        # Both outboxes are in ``rows``: with no row added, nothing is on its way.
        assert (rows(sh), rows(js)) == before
        assert status_of(sh, case_id) == status_of(js, case_id) == "delivered"


async def test_hostile_text_in_certificate_requests_is_refused(mesh: Path) -> None:
    """A verification's requester, and a certificate's holder name or address on import,
    holding any refused character is a 422 invalid_text problem naming the field; nothing is
    asked of the issuer and nothing is stored."""
    async with pair(mesh) as (sh, sh_client, js, js_client):
        before = rows(sh), rows(js)
        for label, char in REST_HOSTILE.items():
            ask = {
                "certificate_id": CARD["certificate_id"],
                "holder_code": LI_MINGHUA,
                "purpose": "hotel_check_in",
                "requester": spoil("南京市某酒店", char),
            }
            response = await js_client.post("/v1/certificates/verify", json=ask)
            problem = await problem_of(response)
            assert (response.status, problem["code"], problem["field"]) == (
                422,
                "invalid_text",
                "requester",
            ), label
            for field in ("holder_name", "address"):
                card = copy.deepcopy(CARD)
                if field == "holder_name":
                    card["holder_name"] = card["fields"]["name"] = spoil(card["holder_name"], char)
                else:
                    card["fields"]["address"] = spoil(card["fields"]["address"], char)
                response = await sh_client.post("/v1/certificates", json=card)
                problem = await problem_of(response)
                expected = "holder_name" if field == "holder_name" else "fields.address"
                assert (response.status, problem["code"], problem["field"]) == (
                    422,
                    "invalid_text",
                    expected,
                ), label
        assert (rows(sh), rows(js)) == before
        assert sh.db.reader().execute("SELECT count(*) FROM certificate_library").fetchone()[0] == 0


NOT_NUMBERS: Final = {**platforms.NOT_NUMBERS, "empty": ""}


@pytest.mark.parametrize("name", ["limit", "cursor"])
async def test_query_numbers_are_ascii_digits_only(mesh: Path, name: str) -> None:
    """limit and cursor in other digits than ASCII, signed or empty are a 422 invalid_query
    problem naming the parameter, never a 500; plain digits still page."""
    async with serving(config_for(mesh, "shanghai")) as (_, sh_client):
        for label, text in NOT_NUMBERS.items():
            response = await sh_client.get("/v1/cases", params={name: text})
            assert response.status == 422, (label, await response.text())
            problem = await problem_of(response)
            assert (problem["code"], problem["field"]) == ("invalid_query", name), label
        for text in ("0", "201"):
            response = await sh_client.get("/v1/cases", params={"limit": text})
            assert response.status == 422
        response = await sh_client.get("/v1/cases", params={name: "007"})
        assert response.status == 200, await response.text()


# --- the wire ----------------------------------------------------------------------------------


async def deliver_as(
    mesh: Path, sender: str, recipient: Node, message: pb.Message
) -> tuple[grpc.StatusCode, pb.Envelope]:
    """``message`` signed with ``sender``'s real key, delivered over its own mutual TLS as
    raw bytes; the status and the signed reply."""
    sealed = seal(message, load_signing_key(mesh / sender / "signing.key"))
    tls = tls_of(mesh, sender)
    async with raw_channel(recipient.config, tls, recipient.config.node_id) as channel:
        code, reply = await call_raw(channel, sealed.envelope)
    return code, pb.Envelope.FromString(reply)


def from_jiangsu(recipient: Node, **header_fields: str) -> pb.Message:
    return pb.Message(
        header=header(
            sender=node_id("jiangsu"),
            recipient=recipient.config.node_id,
            now=time.time(),
            manifest_version=recipient.credentials.manifest.version,
            **header_fields,
        )
    )


def submission(name: str, *, case_id: str | None = None) -> pb.CaseSubmit:
    """Jiangsu's signed submission of a Shanghai matter, for an applicant called ``name``."""
    body = case_body(SH_MATTER)
    code = PROVINCES["jiangsu"][0]
    return pb.CaseSubmit(
        case_id=case_id or f"{code}-20260302-{secrets.token_hex(8)}",
        matter_code=SH_MATTER.code,
        mode=body["mode"],
        applicant=pb.Applicant(name=name, code_type="111", code=body["applicant"]["code"]),
        materials=[pb.CaseMaterial(name=m["name"], sha256=m["sha256"]) for m in body["materials"]],
        submitted_at=stamp(time.time()),
    )


def fault_of(reply: pb.Envelope, node: Node) -> pb.Fault:
    """The fault in ``reply``, whose signature verifies under ``node``'s key."""
    key = node.credentials.manifest.all_keys()[reply.key_id]
    assert key.verify(reply.signature, statement_of(reply) or b"")
    message = pb.Message.FromString(reply.message)
    assert message.WhichOneof("body") == "fault"
    assert message.header.sender == node.config.node_id
    return message.fault


async def test_hostile_text_in_a_peers_case_submit_is_a_signed_fault(mesh: Path) -> None:
    """A case signed by Jiangsu whose applicant name holds any refused character, or is not
    in NFC, gets Shanghai's signed invalid_payload fault naming the field; Shanghai stores
    nothing. The same submission with a clean name is taken."""
    async with pair(mesh) as (sh, _, js, _):
        await eventually(lambda: settled(sh, js))
        before = rows(sh)
        wrong = {**HOSTILE, "decomposed é (not NFC)": "e\u0301"}
        for label, char in wrong.items():
            message = from_jiangsu(sh)
            message.case_submit.CopyFrom(submission(spoil("欧阳娜娜", char)))
            code, reply = await deliver_as(mesh, "jiangsu", sh, message)
            assert code is grpc.StatusCode.INVALID_ARGUMENT, label
            fault = fault_of(reply, sh)
            assert (fault.code, fault.field) == (
                "invalid_payload",
                "body.case_submit.applicant.name",
            ), label
            assert fault.message_id == message.header.message_id
            assert "欧阳" not in fault.text
        assert rows(sh) == before

        message = from_jiangsu(sh)
        message.case_submit.CopyFrom(submission("欧阳娜娜"))
        code, reply = await deliver_as(mesh, "jiangsu", sh, message)
        assert code is grpc.StatusCode.OK
        assert pb.Message.FromString(reply.message).WhichOneof("body") == "receipt"
        assert status_of(sh, message.case_submit.case_id) == "delivered"


BAD_MESSAGE_IDS: Final[dict[str, str]] = {
    "100,000 characters": "m" * 100_000,
    "NUL": "m-1\x00",
    "129 characters": "m" * 129,
    "escape sequence": "\x1b[2Jm-1",
    "path": "../../m-1",
    "Chinese": "消息一",
}


@pytest.mark.parametrize("message_id", list(BAD_MESSAGE_IDS.values()), ids=list(BAD_MESSAGE_IDS))
async def test_a_message_id_out_of_bounds_is_a_signed_fault(mesh: Path, message_id: str) -> None:
    """A probe whose message id is too long or not of [A-Za-z0-9._:-] gets a signed
    malformed_message fault naming header.message_id, without the id; nothing is stored."""
    async with serving(config_for(mesh, "shanghai")) as (sh, _):
        before = rows(sh)
        message = from_jiangsu(sh, message_id=message_id)
        message.probe.CopyFrom(pb.Probe(sequence=1))
        code, reply = await deliver_as(mesh, "jiangsu", sh, message)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        fault = fault_of(reply, sh)
        assert (fault.code, fault.field, fault.message_id) == (
            "malformed_message",
            "header.message_id",
            "",
        )
        assert message_id not in fault.text
        assert pb.Message.FromString(reply.message).header.in_reply_to == ""
        assert rows(sh) == before


BAD_CASE_IDS: Final[dict[str, str]] = {
    "100,000 characters": "320000-" + "9" * 100_000,
    "65 characters": "320000-" + "a" * 58,
    "NUL": "320000-20260302-\x00",
    "underscore": "320000-20260302_00000000000000a1",
    "Chinese": "320000-二〇二六",
}


@pytest.mark.parametrize("case_id", list(BAD_CASE_IDS.values()), ids=list(BAD_CASE_IDS))
@pytest.mark.parametrize("kind", ["case_submit", "case_update", "case_action"])
async def test_a_case_id_out_of_bounds_is_a_signed_fault(
    mesh: Path, kind: str, case_id: str
) -> None:
    """A case message whose case id is too long or not ASCII letters, digits and hyphens gets
    a signed invalid_payload fault naming the case id; nothing is stored."""
    async with serving(config_for(mesh, "shanghai")) as (sh, _):
        before = rows(sh)
        message = from_jiangsu(sh)
        if kind == "case_submit":
            message.case_submit.CopyFrom(submission("欧阳娜娜", case_id=case_id))
        elif kind == "case_update":
            message.case_update.CopyFrom(
                pb.CaseUpdate(
                    case_id=case_id, sequence=2, action="accept", by="handling", at=stamp(1.0)
                )
            )
        else:
            message.case_action.CopyFrom(
                pb.CaseAction(case_id=case_id, action="withdraw", at=stamp(1.0))
            )
        code, reply = await deliver_as(mesh, "jiangsu", sh, message)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        fault = fault_of(reply, sh)
        assert (fault.code, fault.field) == ("invalid_payload", f"body.{kind}.case_id")
        assert case_id not in fault.text
        assert rows(sh) == before

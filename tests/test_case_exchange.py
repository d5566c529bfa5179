"""Cases across two real nodes: mutual TLS gRPC, real SQLite, the REST API on both sides."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient

from node.cases.wire import stamp
from node.platform.config import PlatformConfig
from node.protocol.envelope import header, seal
from node.runtime.node import Node
from node.transport.errors import FAULT_TRAILER
from node.trust.keys import load_signing_key
from node.wire import DELIVER_METHOD, pb
from tests.cases import case_body, matter_of, signature_holds, status_of, unb64
from tests.federation import node_id
from tests.nodes import (
    config_for,
    eventually,
    make_mesh,
    raw_channel,
    running,
    serving,
    settled,
    tls_of,
)

DOCUMENT = "ab" * 32


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


async def event(client: TestClient[Any, Any], case_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/cases/{case_id}/events", json=body)
    data: dict[str, Any] = await response.json()
    assert response.status in (200, 202), data
    return data


async def test_full_lifecycle_both_histories_equal_and_signed(mesh: Path) -> None:
    """accept → supplement → complete → evaluate: both sides end with equal, signed histories."""
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        response = await sh_client.post("/v1/cases", json=case_body(matter_of("jiangsu")))
        assert response.status == 201, await response.text()
        created = await response.json()
        case_id = created["case_id"]
        assert created["status"] == "submitted"
        assert created["role"] == "accepting"

        await eventually(lambda: status_of(sh, case_id) == "delivered")
        await eventually(lambda: status_of(js, case_id) == "delivered")
        await event(js_client, case_id, action="accept")
        await eventually(lambda: status_of(sh, case_id) == "accepted")
        await event(js_client, case_id, action="request_supplement", reason="照片不清晰")
        await eventually(lambda: status_of(sh, case_id) == "supplement_requested")
        answer = await event(sh_client, case_id, action="supplement", reason="已重新上传")
        assert answer["request_id"]
        await eventually(lambda: status_of(js, case_id) == "supplemented")
        await eventually(lambda: status_of(sh, case_id) == "supplemented")
        await event(
            js_client,
            case_id,
            action="complete",
            result={"kind": "document", "document_sha256": DOCUMENT},
        )
        await eventually(lambda: status_of(sh, case_id) == "completed")
        await event(sh_client, case_id, action="evaluate", level=5, comment="办事快")
        await eventually(lambda: status_of(sh, case_id) == "evaluated")
        await eventually(lambda: status_of(js, case_id) == "evaluated")

        sh_view = await (await sh_client.get(f"/v1/cases/{case_id}")).json()
        js_view = await (await js_client.get(f"/v1/cases/{case_id}")).json()
        manifest = sh.credentials.manifest

    assert [h["action"] for h in sh_view["history"]] == [
        "deliver",
        "accept",
        "request_supplement",
        "supplement",
        "complete",
        "evaluate",
    ]
    assert sh_view["history"] == js_view["history"]
    assert [h["sequence"] for h in sh_view["history"]] == [1, 2, 3, 4, 5, 6]
    for entry in sh_view["history"]:
        assert signature_holds(entry["evidence"], manifest)
        if "request" in entry:
            assert signature_holds(entry["request"], manifest)
        assert entry["at_ns"] == signed_at_ns(entry["evidence"])
    assert sh_view["role"] == "accepting" and js_view["role"] == "handling"
    assert sh_view["evaluation_level"] == js_view["evaluation_level"] == 5
    assert [r["state"] for r in sh_view["requests"]] == ["applied", "applied"]
    assert js_view["due_at"] is not None or js_view["promised_days"] > 0


def signed_at_ns(evidence: str) -> int:
    """The time an update's evidence was signed with: the CaseUpdate's ``at``, or the
    receipt's ``received_at`` for update 1."""
    envelope = pb.Envelope.FromString(unb64(evidence))
    message = pb.Message.FromString(envelope.message)
    if message.WhichOneof("body") == "receipt":
        return int(message.receipt.received_at.ToNanoseconds())
    return int(message.case_update.at.ToNanoseconds())


async def deliver_as(
    mesh: Path, sender: str, recipient: Node, body: tuple[str, Any], case_id: str
) -> tuple[grpc.StatusCode, pb.Message]:
    """Sign a message with ``sender``'s real key and deliver it over its own mutual TLS."""
    key = load_signing_key(mesh / sender / "signing.key")
    message = pb.Message(
        header=header(
            sender=node_id(sender),
            recipient=recipient.config.node_id,
            now=time.time(),
            manifest_version=recipient.credentials.manifest.version,
            correlation_id=case_id,
        )
    )
    getattr(message, body[0]).CopyFrom(body[1])
    sealed = seal(message, key)
    async with raw_channel(recipient.config, tls_of(mesh, sender), recipient.config.node_id) as ch:
        call = ch.unary_unary(DELIVER_METHOD)
        try:
            reply = await call(sealed.envelope, timeout=5)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            code = error.code()
            reply = dict(error.trailing_metadata() or ()).get(FAULT_TRAILER, b"")
    return code, pb.Message.FromString(pb.Envelope.FromString(reply).message)


def update(case_id: str, sequence: int, action: str, **fields: Any) -> tuple[str, Any]:
    return (
        "case_update",
        pb.CaseUpdate(
            case_id=case_id,
            sequence=sequence,
            action=action,
            by="handling",
            at=stamp(time.time()),
            **fields,
        ),
    )


async def test_out_of_order_and_duplicate_updates(mesh: Path) -> None:
    """An early update is held and applied once the one before it arrives; a duplicate changes
    nothing; a different update under a number already taken is refused."""
    async with serving(config_for(mesh, "shanghai")) as (sh, sh_client):
        async with running(config_for(mesh, "jiangsu")) as js:
            await eventually(lambda: settled(sh, js))
            response = await sh_client.post("/v1/cases", json=case_body(matter_of("jiangsu")))
            case_id = (await response.json())["case_id"]
            await eventually(lambda: status_of(sh, case_id) == "delivered")
        # Jiangsu is stopped; the test speaks for it, with its key and its TLS identity.
        complete = update(
            case_id, 3, "complete", result=pb.CaseResult(kind="document", document_sha256="cd" * 32)
        )
        code, reply = await deliver_as(mesh, "jiangsu", sh, complete, case_id)
        assert code is grpc.StatusCode.OK and reply.HasField("receipt")
        assert status_of(sh, case_id) == "delivered"

        code, reply = await deliver_as(mesh, "jiangsu", sh, complete, case_id)
        assert code is grpc.StatusCode.OK and reply.HasField("receipt")

        code, reply = await deliver_as(mesh, "jiangsu", sh, update(case_id, 2, "accept"), case_id)
        assert code is grpc.StatusCode.OK
        assert status_of(sh, case_id) == "completed"

        deny = update(case_id, 3, "deny", reason="改判")
        code, reply = await deliver_as(mesh, "jiangsu", sh, deny, case_id)
        assert code is grpc.StatusCode.ALREADY_EXISTS
        assert reply.fault.code == "sequence_conflict"

        illegal = update(case_id, 4, "accept")
        code, reply = await deliver_as(mesh, "jiangsu", sh, illegal, case_id)
        assert code is grpc.StatusCode.FAILED_PRECONDITION
        assert reply.fault.code == "illegal_transition"
        assert "completed" in reply.fault.text and "accept" in reply.fault.text

        view = await (await sh_client.get(f"/v1/cases/{case_id}")).json()
        assert [(h["sequence"], h["action"]) for h in view["history"]] == [
            (1, "deliver"),
            (2, "accept"),
            (3, "complete"),
        ]
        assert view["status"] == "completed"


def platform_notices(node: Node, case_id: str) -> list[tuple[int, str, str]]:
    """(sequence, action, status) of each notice queued for the node's platform."""
    rows = node.db.reader().execute(
        "SELECT payload FROM platform_outbox WHERE kind = 'notice' AND case_id = ? ORDER BY seq",
        (case_id,),
    )
    return [
        (n["sequence"], n["action"], n["status"]) for n in map(json.loads, (r[0] for r in rows))
    ]


async def test_updates_applied_together_each_reach_the_platform(mesh: Path) -> None:
    """A held update and the one that released it are applied in one go; the accepting
    platform is still told of each, once and in order, with the status each led to."""
    # An unreachable platform: what is queued for it stays queued, to be counted.
    unreachable = PlatformConfig(adapter="shanghai", url="http://127.0.0.1:9")
    async with serving(config_for(mesh, "shanghai", platform=unreachable)) as (sh, sh_client):
        async with running(config_for(mesh, "jiangsu")) as js:
            await eventually(lambda: settled(sh, js))
            response = await sh_client.post("/v1/cases", json=case_body(matter_of("jiangsu")))
            case_id = (await response.json())["case_id"]
            await eventually(lambda: status_of(sh, case_id) == "delivered")
        complete = update(
            case_id, 3, "complete", result=pb.CaseResult(kind="document", document_sha256="cd" * 32)
        )
        for body in (complete, complete, update(case_id, 2, "accept")):
            code, _ = await deliver_as(mesh, "jiangsu", sh, body, case_id)
            assert code is grpc.StatusCode.OK
        assert status_of(sh, case_id) == "completed"
        assert platform_notices(sh, case_id) == [
            (1, "deliver", "delivered"),
            (2, "accept", "accepted"),
            (3, "complete", "completed"),
        ]


async def test_update_from_a_province_not_on_the_case_is_refused(mesh: Path) -> None:
    """Only the case's handling node may send its updates; another member gets wrong_side."""
    mesh = make_mesh(mesh.parent / "three", ("shanghai", "jiangsu", "zhejiang"))
    async with serving(config_for(mesh, "shanghai")) as (sh, sh_client):
        async with running(config_for(mesh, "jiangsu")):
            matter = matter_of("jiangsu")
            await eventually(lambda: sh.cases.find_matter(matter.code) is not None)
            response = await sh_client.post("/v1/cases", json=case_body(matter_of("jiangsu")))
            case_id = (await response.json())["case_id"]
            await eventually(lambda: status_of(sh, case_id) == "delivered")
        code, reply = await deliver_as(mesh, "zhejiang", sh, update(case_id, 2, "accept"), case_id)
        assert code is grpc.StatusCode.PERMISSION_DENIED
        assert reply.fault.code == "wrong_side"
        code, reply = await deliver_as(
            mesh, "jiangsu", sh, update("310000-20260101-ffff", 2, "accept"), case_id
        )
        assert code is grpc.StatusCode.NOT_FOUND
        assert reply.fault.code == "unknown_case"
        assert status_of(sh, case_id) == "delivered"


async def test_request_overtaken_by_the_handler_is_answered_not_parked(mesh: Path) -> None:
    """A withdrawal asked while the handler's completion is still on its way is refused by the
    handler as illegal_transition; the accepting node records that answer on the request, the
    case ends completed on both sides, and nothing is dead-lettered."""
    sh_config, js_config = config_for(mesh, "shanghai"), config_for(mesh, "jiangsu")
    matter = matter_of("jiangsu")
    async with serving(sh_config) as (sh, sh_client), running(js_config) as js:
        await eventually(lambda: settled(sh, js))
        response = await sh_client.post("/v1/cases", json=case_body(matter))
        case_id = (await response.json())["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        await js.cases.act(case_id, {"action": "accept"})
        await eventually(lambda: status_of(sh, case_id) == "accepted")
    async with running(js_config) as js:
        # Shanghai is down: the completion waits in Jiangsu's outbox.
        await js.cases.act(
            case_id,
            {"action": "complete", "result": {"kind": "document", "document_sha256": DOCUMENT}},
        )
    async with serving(sh_config) as (sh, sh_client):
        response = await sh_client.post(f"/v1/cases/{case_id}/events", json={"action": "withdraw"})
        assert response.status == 202
        async with running(js_config) as js:
            await eventually(lambda: status_of(sh, case_id) == "completed")
            await eventually(lambda: settled(sh, js))
            await eventually(lambda: no_pending_request(sh, case_id))
            view = await (await sh_client.get(f"/v1/cases/{case_id}")).json()
            handled = js.case_views.view(js.case_views.get(case_id))
            dead = sh.health.status()["dead_letters"]
    [request] = view["requests"]
    assert request["action"] == "withdraw" and request["state"] == "refused"
    assert request["fault"]["code"] == "illegal_transition"
    assert "completed" in request["fault"]["text"] and "withdraw" in request["fault"]["text"]
    assert [h["action"] for h in handled["history"]] == ["deliver", "accept", "complete"]
    assert view["history"] == handled["history"]
    assert dead == 0


def no_pending_request(node: Node, case_id: str) -> bool:
    row = (
        node.db.reader()
        .execute(
            "SELECT count(*) FROM case_requests WHERE case_id = ? AND state = 'pending'", (case_id,)
        )
        .fetchone()
    )
    return int(row[0]) == 0

"""The node's HTTP surface on a real loopback server: health, readiness, metrics, status,
operator probes, problem documents and the bearer token."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from node.api.app import MAX_BODY_BYTES, build_app
from node.runtime.config import DEFAULT_MAX_PROBE_PAYLOAD as MAX_PROBE_PAYLOAD
from node.runtime.config import DEFAULT_MAX_PROBES as MAX_PROBES
from node.runtime.node import Node
from node.store import inbox, outbox
from node.wire import DELIVER_METHOD
from tests.nodes import (
    ScopedClient,
    config_for,
    eventually,
    make_mesh,
    raw_channel,
    running,
    serving,
    settled,
    tls_of,
    tokens_of,
)

DAY = 86400.0
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


def state_counts(node: Node) -> tuple[int, int, int]:
    """Outbox rows, inbox rows and evidence-log entries: what a refusal must not change."""
    conn = node.db.reader()
    outbox_rows = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    audit_rows = int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])
    return outbox_rows, inbox.count(conn), audit_rows


def delivered(node: Node, message_ids: list[str]) -> bool:
    items = [outbox.get(node.db.reader(), i) for i in message_ids]
    return all(item is not None and item.state == "delivered" for item in items)


async def problem_of(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = json.loads(await response.text())
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith("/" + code)
    assert body["title"] and body["detail"]
    return body


# -- health and readiness ------------------------------------------------------------------


async def test_healthz_answers_alive(mesh: Path) -> None:
    """/healthz answers 200 on a started node."""
    async with serving(config_for(mesh, "shanghai")) as (_, client):
        response = await client.get("/healthz")
        assert response.status == 200
        assert await response.json() == {"status": "alive"}


async def test_readyz_ok_on_started_node(mesh: Path) -> None:
    """/readyz answers 200 with every named check "ok" on a freshly started node."""
    async with serving(config_for(mesh, "shanghai")) as (_, client):
        response = await client.get("/readyz")
        assert response.status == 200
        body = await response.json()
        assert body["ready"] is True
        assert {"store", "manifest", "keys", "grpc", "tasks"} <= body["checks"].keys()
        assert set(body["checks"].values()) == {"ok"}


async def test_readyz_503_names_manifest_when_expired(mesh: Path) -> None:
    """A node whose clock is past manifest expiry still starts but is not ready, and names
    the manifest; its probes are refused and nothing is stored.

    mesh init signs the manifest for 90 days and the signing keys for 365, so a clock 100
    days ahead is the real "cached manifest ran out" case: start-up's own-key check still
    passes (at 400 days it would refuse to start), and ``Node.readiness`` alone fails.
    """

    def clock() -> float:
        return time.time() + 100 * DAY

    async with serving(config_for(mesh, "shanghai"), clock=clock) as (node, client):
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["ready"] is False
        # /readyz is open: it names the failing check and no more.
        assert body["checks"] == {
            "store": "ok",
            "manifest": "failing",
            "keys": "ok",
            "tls": "ok",
            "grpc": "ok",
            "tasks": "ok",
            "maintenance": "ok",
        }
        status = await (await client.get("/v1/status")).json()
        assert "expired" in status["checks"]["manifest"]
        assert "version 1" in status["checks"]["manifest"]
        assert status["manifest"]["expired"] is True
        assert status["ready"] is False

        before = state_counts(node)
        refused = await client.post("/v1/probes", json={"peer": "jiangsu", "count": 1})
        await problem_of(refused, 409, "manifest_expired")
        assert state_counts(node) == before


# -- metrics -------------------------------------------------------------------------------


async def test_metrics_after_probe_exchange(mesh: Path) -> None:
    """After probes are exchanged, /metrics exposes sent, received, refused, latency, outbox
    and peer-up series with province and payload-type labels, and no unbounded label value."""
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
        ScopedClient(TestServer(build_app(sh)), tokens_of(sh.config)) as sh_client,
        ScopedClient(TestServer(build_app(js)), tokens_of(js.config)) as js_client,
    ):
        await eventually(lambda: sh.peers.link("jiangsu").up)
        sent = await sh_client.post("/v1/probes", json={"peer": "jiangsu", "count": 3})
        assert sent.status == 202
        ids = (await sent.json())["message_ids"]
        await eventually(lambda: delivered(sh, ids))
        # One refusal at Jiangsu, so the refused counter has a sample too.
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            with pytest.raises(grpc.aio.AioRpcError):
                await ch.unary_unary(DELIVER_METHOD)(b"\xff\x00garbage", timeout=5)

        response = await sh_client.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        sh_text = await response.text()
        js_text = await (await js_client.get("/metrics")).text()

    for name in (
        "yrd_messages_sent_total",
        "yrd_messages_received_total",
        "yrd_messages_refused_total",
        "yrd_delivery_latency_seconds_bucket",
        "yrd_outbox_depth",
        "yrd_outbox_oldest_pending_age_seconds",
        "yrd_peer_up",
    ):
        assert name in sh_text, name

    sh_samples = samples(sh_text)
    js_samples = samples(js_text)
    assert sh_samples[("yrd_messages_sent_total", (("peer", "jiangsu"), ("type", "probe")))] == 3
    assert (
        js_samples[("yrd_messages_received_total", (("peer", "shanghai"), ("type", "probe")))] == 3
    )
    assert sh_samples[("yrd_peer_up", (("peer", "jiangsu"),))] == 1
    assert sh_samples[("yrd_outbox_depth", (("peer", "jiangsu"),))] == 0
    assert sh_samples[("yrd_outbox_oldest_pending_age_seconds", (("peer", "jiangsu"),))] == 0
    inf_bucket = (("le", "+Inf"), ("peer", "jiangsu"))
    # Three probes, the node's catalog announcement and its revocation list.
    assert sh_samples[("yrd_delivery_latency_seconds_bucket", inf_bucket)] == 5
    refused = [
        dict(labels)
        for (name, labels), value in js_samples.items()
        if name == "yrd_messages_refused_total" and value >= 1
    ]
    assert refused == [
        {
            "peer": "shanghai",
            "type": "malformed",
            "code": "malformed_envelope",
            "direction": "inbound",
        }
    ]

    for text in (sh_text, js_text):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for key, value in sample.labels.items():
                    assert not UUID.search(value), f"{sample.name}{{{key}={value!r}}} unbounded"
                    if key == "peer":
                        assert value in {"shanghai", "jiangsu", "unknown"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# -- status --------------------------------------------------------------------------------


async def test_status_json_shape(mesh: Path) -> None:
    """/v1/status reports the node, readiness, manifest and each peer's link and backlog."""
    async with (
        running(config_for(mesh, "jiangsu")),
        serving(config_for(mesh, "shanghai")) as (sh, client),
    ):
        # The catalog announcement may have been sent before jiangsu listened; wait for
        # its retry to land so the backlog is really empty.
        await eventually(lambda: settled(sh))
        response = await client.get("/v1/status")
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()

    assert body["node_id"] == "node-310000"
    assert body["province"] == "shanghai"
    assert body["ready"] is True
    assert set(body["checks"].values()) == {"ok"}
    manifest = body["manifest"]
    assert manifest["version"] == 1
    assert manifest["expired"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["expires_at"])
    [peer] = body["peers"]
    assert peer["peer"] == "jiangsu"
    assert peer["up"] is True
    assert isinstance(peer["rtt_ms"], float) and peer["rtt_ms"] > 0
    assert peer["outbox_depth"] == 0
    assert peer["oldest_pending_age_seconds"] == 0
    assert peer["circuit"] == "closed"
    assert peer["dead_letters"] == 0
    assert body["dead_letters"] == 0
    assert body["overdue_cases"] == 0


# -- probes --------------------------------------------------------------------------------


async def test_probes_accepted_into_outbox(mesh: Path) -> None:
    """POST /v1/probes answers 202 with one message id per probe, each durably in the outbox."""
    async with serving(config_for(mesh, "shanghai")) as (node, client):
        before = state_counts(node)
        response = await client.post(
            "/v1/probes", json={"peer": "jiangsu", "count": 4, "payload_bytes": 128}
        )
        assert response.status == 202
        body = await response.json()
        assert body["peer"] == "jiangsu"
        ids = body["message_ids"]
        assert len(ids) == len(set(ids)) == 4
        for message_id in ids:
            item = outbox.get(node.db.reader(), message_id)
            assert item is not None and item.peer == "jiangsu" and item.payload_type == "probe"
        # Queued, not yet sent: a message enters the evidence log as it goes out.
        assert state_counts(node) == (before[0] + 4, before[1], before[2])


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"peer": "hubei", "count": 1}, "peer", "unknown_peer"),
        ({"peer": "shanghai", "count": 1}, "peer", "unknown_peer"),
        ({"count": 1}, "peer", "unknown_peer"),
        ({"peer": "jiangsu", "count": 0}, "count", "invalid_count"),
        ({"peer": "jiangsu", "count": MAX_PROBES + 1}, "count", "invalid_count"),
        ({"peer": "jiangsu", "count": "5"}, "count", "invalid_count"),
        ({"peer": "jiangsu", "count": True}, "count", "invalid_count"),
        ({"peer": "jiangsu", "count": 1.5}, "count", "invalid_count"),
        (
            {"peer": "jiangsu", "payload_bytes": MAX_PROBE_PAYLOAD + 1},
            "payload_bytes",
            "invalid_payload_bytes",
        ),
        ({"peer": "jiangsu", "payload_bytes": -1}, "payload_bytes", "invalid_payload_bytes"),
    ],
    ids=[
        "unknown-peer",
        "self",
        "no-peer",
        "count-0",
        "count-10001",
        "count-string",
        "count-bool",
        "count-float",
        "payload-too-big",
        "payload-negative",
    ],
)
async def test_probe_field_refused_with_problem(
    mesh: Path, body: dict[str, Any], field: str, code: str
) -> None:
    """A probe request with a bad field gets 422 problem+json naming that field, and no
    outbox, inbox or evidence-log row is written."""
    async with serving(config_for(mesh, "shanghai")) as (node, client):
        before = state_counts(node)
        problem = await problem_of(await client.post("/v1/probes", json=body), 422, code)
        assert problem["field"] == field
        assert field in problem["detail"]
        assert state_counts(node) == before


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b'{"peer": "jiangsu", "count": ', "application/json", 400, "malformed_json"),
        (b"\xff\xfe not utf-8", "application/json", 400, "malformed_json"),
        (b'[{"peer": "jiangsu"}]', "application/json", 400, "malformed_json"),
        (b'"jiangsu"', "application/json", 400, "malformed_json"),
        (b'{"peer": "jiangsu"}', "text/plain", 415, "unsupported_media_type"),
        (
            b'{"peer": "jiangsu"}',
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (b"[" * 100_000, "application/json", 400, "malformed_json"),
        (
            b'{"peer": "jiangsu", "count": 1' + b"0" * 5000 + b"}",
            "application/json",
            400,
            "malformed_json",
        ),
        (
            b'{"peer": "jiangsu", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}',
            "application/json",
            413,
            "body_too_large",
        ),
    ],
    ids=[
        "truncated-json",
        "not-utf8",
        "json-array",
        "json-string",
        "text-plain",
        "form",
        "deeply-nested",
        "5000-digit-integer",
        "over-1MiB",
    ],
)
async def test_probe_body_refused_with_problem(
    mesh: Path, data: bytes, content_type: str, status: int, code: str
) -> None:
    """A probe request whose body is not a JSON object, is not JSON, or is over 1 MiB gets a
    problem+json error with its code, and changes no state."""
    async with serving(config_for(mesh, "shanghai")) as (node, client):
        before = state_counts(node)
        # A file-like body: aiohttp warns about (and filterwarnings fails on) big raw bytes.
        response = await client.post(
            "/v1/probes", data=io.BytesIO(data), headers={"Content-Type": content_type}
        )
        await problem_of(response, status, code)
        assert state_counts(node) == before


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/probes", 405, "method_not_allowed"),
        ("DELETE", "/v1/status", 405, "method_not_allowed"),
        ("GET", "/v1/nothing-here", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
    ],
)
async def test_router_errors_are_problems(
    mesh: Path, method: str, path: str, status: int, code: str
) -> None:
    """An unknown path or a wrong method also gets problem+json (405 keeps its Allow header),
    and changes no state."""
    async with serving(config_for(mesh, "shanghai")) as (node, client):
        before = state_counts(node)
        response = await client.request(method, path)
        problem = await problem_of(response, status, code)
        assert path in problem["detail"]
        if status == 405:
            assert response.headers["Allow"]
        assert state_counts(node) == before

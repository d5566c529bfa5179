"""Two real nodes on loopback: mutual-TLS gRPC, signed envelopes, durable receipted delivery."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.mesh.layout import read_manifest
from node.protocol.checks import check_reply
from node.protocol.envelope import seal
from node.protocol.faults import FaultCode
from node.store import inbox, outbox
from node.store.audit import verify_store
from node.transport.errors import FAULT_TRAILER
from node.trust.keys import SigningKey, load_signing_key
from node.trust.tls import (
    TlsMaterial,
    certificate_pem,
    create_ca,
    issue_node_certificate,
    private_key_pem,
)
from node.wire import DELIVER_METHOD, pb
from tests.federation import probe_message
from tests.nodes import BUDGET, config_for, eventually, make_mesh, raw_channel, running, tls_of


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


async def call_raw(channel: grpc.aio.Channel, raw: bytes) -> tuple[grpc.StatusCode, bytes]:
    """Unary Deliver with raw bytes; returns the status and the signed reply (or fault)."""
    method = channel.unary_unary(DELIVER_METHOD)
    try:
        reply = await method(raw, timeout=5)
    except grpc.aio.AioRpcError as error:
        fault = dict(error.trailing_metadata() or ()).get(FAULT_TRAILER, b"")
        return error.code(), fault
    return grpc.StatusCode.OK, reply


def fault_code(reply: bytes) -> str:
    message = pb.Message.FromString(pb.Envelope.FromString(reply).message)
    assert message.WhichOneof("body") == "fault"
    return message.fault.code


async def test_probe_delivered_with_verified_receipt(mesh: Path) -> None:
    """A probe is committed to the outbox, delivered over mTLS, stored once, and receipted."""
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        [message_id] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=7))])
        item = outbox.get(sh.db.reader(), message_id)
        assert (item is not None and item.state == "pending") or item.state == "delivered"
        await eventually(lambda: outbox.get(sh.db.reader(), message_id).state == "delivered")
        item = outbox.get(sh.db.reader(), message_id)
        assert item is not None and item.reply
        reply = check_reply(
            item.reply,
            peer=js.config.node_id,
            manifest=sh.credentials.manifest,
            me=sh.config.node_id,
            now=time.time(),
            request_id=message_id,
            request_digest=item.digest,
        )
        assert reply.payload_type == "receipt"
        assert reply.message.receipt.digest == item.digest
        assert inbox.count(js.db.reader(), payload_type="probe") == 1
        assert inbox.prior(js.db.reader(), sh.config.node_id, message_id) is not None
    for province in ("shanghai", "jiangsu"):
        report = verify_store(mesh / province / "node.db")
        assert report.ok, report.reason
        assert report.entries >= 3


async def test_heartbeats_mark_peers_up_with_rtt(mesh: Path) -> None:
    """Signed heartbeats make each side see the other up, with a round-trip time."""
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        await eventually(lambda: sh.peers.link("jiangsu").up and js.peers.link("shanghai").up)
        assert sh.peers.link("jiangsu").rtt_seconds is not None
        assert 0 < sh.peers.link("jiangsu").rtt_seconds < BUDGET  # seconds, not milliseconds
        status = sh.health.status()
        [peer] = status["peers"]  # type: ignore[misc]
        assert peer["peer"] == "jiangsu" and peer["up"] is True and peer["rtt_ms"] > 0


async def test_redelivery_returns_original_receipt_and_stores_once(mesh: Path) -> None:
    """The same envelope twice gets the byte-identical receipt; one inbox row, one effect."""
    async with running(config_for(mesh, "jiangsu")) as js:
        key = load_signing_key(mesh / "shanghai" / "signing.key")
        sealed = seal(probe_message("shanghai", "jiangsu", now=time.time()), key)
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            status1, first = await call_raw(ch, sealed.envelope)
            status2, second = await call_raw(ch, sealed.envelope)
        assert status1 == status2 == grpc.StatusCode.OK
        assert first == second
        assert inbox.count(js.db.reader(), payload_type="probe") == 1


async def _refused(
    mesh: Path, raw: bytes, client: str = "shanghai", **config: object
) -> tuple[grpc.StatusCode, str, int, int]:
    async with running(config_for(mesh, "jiangsu", **config)) as js:
        before = (inbox.count(js.db.reader()), audit_count(js))
        async with raw_channel(js.config, tls_of(mesh, client), js.config.node_id) as ch:
            status, fault = await call_raw(ch, raw)
        after = (inbox.count(js.db.reader()), audit_count(js))
        assert before == after, "a refusal must change no state"
        # The fault is signed by the receiver and verifies under its manifest key.
        manifest = read_manifest(mesh)
        envelope = pb.Envelope.FromString(fault)
        member = manifest.member(js.config.node_id)
        assert member is not None and member.key(envelope.key_id) is not None
        return status, fault_code(fault), *after


def audit_count(node: object) -> int:
    return int(node.db.reader().execute("SELECT count(*) FROM audit").fetchone()[0])  # type: ignore[attr-defined]


async def test_malformed_protobuf_refused_with_signed_fault(mesh: Path) -> None:
    """Garbage bytes get INVALID_ARGUMENT and a signed malformed_envelope fault."""
    status, code, *_ = await _refused(mesh, b"\xff\x00garbage")
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert code == FaultCode.MALFORMED_ENVELOPE.value


async def test_tls_identity_must_match_sender_over_the_wire(mesh: Path) -> None:
    """Shanghai's TLS certificate cannot carry a message signed as and from Jiangsu's peer."""
    key = load_signing_key(mesh / "shanghai" / "signing.key")
    sealed = seal(probe_message("shanghai", "jiangsu", now=time.time()), key)
    mesh3 = mesh  # the client presents jiangsu's own cert: identity != header.sender
    status, code, *_ = await _refused(mesh3, sealed.envelope, client="jiangsu")
    assert status == grpc.StatusCode.PERMISSION_DENIED
    assert code == FaultCode.SENDER_MISMATCH.value


async def test_bad_signature_refused_over_the_wire(mesh: Path) -> None:
    """An envelope signed by a key outside the manifest is UNAUTHENTICATED."""
    sealed = seal(probe_message("shanghai", "jiangsu", now=time.time()), SigningKey.generate())
    status, code, *_ = await _refused(mesh, sealed.envelope)
    assert status == grpc.StatusCode.UNAUTHENTICATED
    assert code == FaultCode.UNKNOWN_KEY.value


async def test_oversize_envelope_refused_with_signed_fault(mesh: Path) -> None:
    """An envelope over max_message_bytes gets RESOURCE_EXHAUSTED and a signed fault."""
    key = load_signing_key(mesh / "shanghai" / "signing.key")
    message = probe_message("shanghai", "jiangsu", now=time.time())
    message.probe.payload = bytes(120_000)
    sealed = seal(message, key)
    status, code, *_ = await _refused(mesh, sealed.envelope, max_message_bytes=100_000)
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code == FaultCode.MESSAGE_TOO_LARGE.value


async def test_far_oversize_envelope_stopped_by_transport(mesh: Path) -> None:
    """Far beyond the limit, the transport itself refuses before any bytes reach the checks."""
    key = load_signing_key(mesh / "shanghai" / "signing.key")
    message = probe_message("shanghai", "jiangsu", now=time.time())
    message.probe.payload = bytes(6 * 1024 * 1024)
    sealed = seal(message, key)
    async with running(config_for(mesh, "jiangsu")) as js:
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            status, fault = await call_raw(ch, sealed.envelope)
        assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert fault == b""
        assert inbox.count(js.db.reader(), payload_type="probe") == 0


async def test_client_without_federation_certificate_cannot_connect(
    mesh: Path, tmp_path: Path
) -> None:
    """A client certificate from another CA fails the TLS handshake; nothing reaches the node."""
    now = time.time()
    ca_key, ca_cert = create_ca("rogue", now=now)
    key, cert = issue_node_certificate(ca_key, ca_cert, "node-310000", now=now)
    real_ca = tls_of(mesh, "shanghai").ca_pem
    rogue = TlsMaterial(
        ca_pem=real_ca, cert_pem=certificate_pem(cert), key_pem=private_key_pem(key)
    )
    signing = load_signing_key(mesh / "shanghai" / "signing.key")
    sealed = seal(probe_message("shanghai", "jiangsu", now=now), signing)
    async with running(config_for(mesh, "jiangsu")) as js:
        async with raw_channel(js.config, rogue, js.config.node_id) as ch:
            status, _ = await call_raw(ch, sealed.envelope)
        assert status == grpc.StatusCode.UNAVAILABLE
        assert inbox.count(js.db.reader(), payload_type="probe") == 0


async def test_health_and_reflection_served_on_the_same_port(mesh: Path) -> None:
    """grpc.health.v1 answers SERVING for the Federation service on the federation port."""
    async with running(config_for(mesh, "jiangsu")) as js:
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            answer = await stub.Check(
                health_pb2.HealthCheckRequest(service="yrd.federation.v1.Federation"), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

            reflect = reflection_pb2_grpc.ServerReflectionStub(ch)

            async def one() -> object:
                async for response in reflect.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                ):
                    return response
                return None

            response = await one()
            names = {s.name for s in response.list_services_response.service}  # type: ignore[attr-defined]
            assert "yrd.federation.v1.Federation" in names

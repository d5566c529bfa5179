"""Trust expiries and per-peer activity reach /metrics with real values."""

from __future__ import annotations

import time
from pathlib import Path

from node.mesh.layout import read_manifest
from node.store import outbox
from node.trust.tls import certificate_not_after
from node.wire import pb
from tests.nodes import config_for, eventually, make_mesh, running


async def test_expiries_and_last_activity_are_exported(tmp_path: Path) -> None:
    """Manifest, signing-key and TLS-certificate expiries are the real ones, and a delivered
    probe sets the sender's last-delivery and the receiver's last-receive timestamps."""
    mesh = make_mesh(tmp_path)
    manifest = read_manifest(mesh)
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        before = time.time()
        [message_id] = await sh.courier.send("jiangsu", [("probe", pb.Probe())])
        await eventually(lambda: outbox.depth(sh.db.reader(), "jiangsu")[0] == 0)
        value = sh.metrics.registry.get_sample_value
        member = manifest.member(sh.config.node_id)
        assert member is not None
        assert value("yrd_manifest_expiry_timestamp_seconds") == manifest.expires_at
        assert value("yrd_signing_key_expiry_timestamp_seconds") == member.keys[0].not_after
        cert = (mesh / "shanghai" / "tls.crt").read_bytes()
        assert value("yrd_tls_certificate_expiry_timestamp_seconds") == certificate_not_after(cert)
        sent = value("yrd_peer_last_delivery_timestamp_seconds", {"peer": "jiangsu"})
        assert sent is not None and sent >= before
        received = js.metrics.registry.get_sample_value(
            "yrd_peer_last_receive_timestamp_seconds", {"peer": "shanghai"}
        )
        assert received is not None and received >= before
        assert message_id
        size = value("yrd_store_size_bytes")
        assert size is not None and size >= (mesh / "shanghai" / "node.db").stat().st_size

"""Trust expiries and per-peer activity reach /metrics with real values."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from node.mesh.layout import read_manifest
from node.store import outbox
from node.trust.manifest import format_time
from node.trust.tls import certificate_not_after
from node.wire import pb
from tests.nodes import config_for, eventually, make_mesh, running

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_expiries_and_last_activity_are_exported(tmp_path: Path) -> None:
    """Manifest, signing-key, TLS-certificate and holiday-table ends are the real ones, and a
    delivered probe sets the sender's last-delivery and the receiver's last-receive times."""
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
        # Only 2026 is packaged: the tables end when 2027 begins (or at the start of a later
        # year this test runs in, which no table covers either).
        year = max(2027, datetime.now(SHANGHAI).year)
        tables_end = datetime(year, 1, 1, tzinfo=SHANGHAI).timestamp()
        assert value("yrd_holiday_tables_end_timestamp_seconds") == tables_end
        status = sh.health.status()
        assert status["expiries"]["holiday_tables"] == format_time(tables_end)  # type: ignore[index]
        sent = value("yrd_peer_last_delivery_timestamp_seconds", {"peer": "jiangsu"})
        assert sent is not None and sent >= before
        received = js.metrics.registry.get_sample_value(
            "yrd_peer_last_receive_timestamp_seconds", {"peer": "shanghai"}
        )
        assert received is not None and received >= before
        assert message_id
        size = value("yrd_store_size_bytes")
        assert size is not None and size >= (mesh / "shanghai" / "node.db").stat().st_size

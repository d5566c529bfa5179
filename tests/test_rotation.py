"""Key rotation with overlap, revocation, and manifest reloads (SIGHUP), on real nodes."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from node.mesh.layout import (
    publish_manifest,
    read_manifest,
    revoke_signing_key,
    rotate_signing_key,
)
from node.protocol.envelope import seal
from node.protocol.faults import FaultCode
from node.store import inbox, outbox
from node.trust.keys import load_signing_key
from node.trust.manifest import ManifestDowngrade, ManifestError
from node.wire import pb
from tests.federation import probe_message
from tests.nodes import (
    config_for,
    eventually,
    free_base_port,
    make_mesh,
    raw_channel,
    running,
    tls_of,
)
from tests.processes import authorized, http, process
from tests.test_exchange import call_raw, fault_code


def manifest_version_of(mesh: Path, province: str) -> int:
    request = authorized(mesh, http(mesh, province) + "/v1/status")
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.loads(response.read())["manifest"]["version"])


def stored_key_ids(node_db_reader: object, sender: str) -> list[str]:
    rows = node_db_reader.execute(  # type: ignore[attr-defined]
        "SELECT envelope FROM inbox WHERE sender = ? AND payload_type = 'probe' ORDER BY rowid",
        (sender,),
    ).fetchall()
    return [pb.Envelope.FromString(r[0]).key_id for r in rows]


async def test_rotation_overlaps_then_revocation_refuses_the_old_key(tmp_path: Path) -> None:
    """After rotation both keys verify; after revocation and reload the old key is refused."""
    mesh = make_mesh(tmp_path)
    old_key = load_signing_key(mesh / "shanghai" / "signing.key")
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        new_key_id = rotate_signing_key(mesh, "shanghai", now=time.time(), overlap_days=7)
        await js.reload()
        assert js.credentials.manifest.version == 2
        # Shanghai has not reloaded yet: it still signs with the old key, inside the overlap.
        [first] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=1))])
        await eventually(lambda: inbox.count(js.db.reader(), payload_type="probe") == 1)
        await sh.reload()
        assert sh.credentials.signing_key.key_id == new_key_id
        [second] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=2))])
        await eventually(lambda: inbox.count(js.db.reader(), payload_type="probe") == 2)
        assert stored_key_ids(js.db.reader(), sh.config.node_id) == [old_key.key_id, new_key_id]

        revoke_signing_key(mesh, "shanghai", old_key.key_id, now=time.time())
        await js.reload()
        stale = seal(probe_message("shanghai", "jiangsu", now=time.time()), old_key)
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            status, fault = await call_raw(ch, stale.envelope)
        assert status == grpc.StatusCode.UNAUTHENTICATED
        assert fault_code(fault) == FaultCode.KEY_REVOKED.value
        assert inbox.count(js.db.reader(), payload_type="probe") == 2
        # The new key keeps working.
        await sh.reload()
        await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=3))])
        await eventually(lambda: inbox.count(js.db.reader(), payload_type="probe") == 3)
        assert {first, second} <= {
            r[0] for r in js.db.reader().execute("SELECT message_id FROM inbox")
        }


async def test_reload_refuses_tampered_and_older_manifests(tmp_path: Path) -> None:
    """A tampered or older manifest is refused on reload; the one in force stays."""
    mesh = make_mesh(tmp_path)
    manifest_path = mesh / "manifest.json"
    v1 = manifest_path.read_bytes()
    async with running(config_for(mesh, "jiangsu")) as js:
        document = json.loads(v1)
        document["manifest"]["members"][0]["endpoint"] = "203.0.113.9:7101"
        manifest_path.write_text(json.dumps(document))
        with pytest.raises(ManifestError, match="altered"):
            await js.reload()
        assert js.credentials.manifest.version == 1

        manifest_path.write_bytes(v1)
        rotate_signing_key(mesh, "shanghai", now=time.time())
        await js.reload()
        assert js.credentials.manifest.version == 2
        manifest_path.write_bytes(v1)
        with pytest.raises(ManifestDowngrade):
            await js.reload()
        assert js.credentials.manifest.version == 2
        failures = js.metrics.manifest_reload_failures
        assert failures.labels("manifest_signature_invalid")._value.get() == 1
        assert failures.labels("manifest_downgrade")._value.get() == 1


@pytest.mark.slow
async def test_sighup_loads_a_revocation_into_a_running_process(tmp_path: Path) -> None:
    """A node process reloads on SIGHUP: a sender still using a revoked key is refused, and
    the sender parks the message with the signed fault as evidence."""
    mesh = make_mesh(tmp_path)
    old_key = load_signing_key(mesh / "shanghai" / "signing.key")
    with process(mesh, "jiangsu") as receiver:
        async with running(config_for(mesh, "shanghai")) as sh:
            await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=1))])
            await eventually(lambda: outbox.depth(sh.db.reader(), "jiangsu")[0] == 0)
            rotate_signing_key(mesh, "shanghai", now=time.time())
            revoke_signing_key(mesh, "shanghai", old_key.key_id, now=time.time())
            receiver.send_signal(signal.SIGHUP)
            await eventually(lambda: manifest_version_of(mesh, "jiangsu") == 3)
            # Shanghai has not reloaded: it still signs with the key just revoked.
            [refused] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=2))])

            def parked() -> bool:
                item = outbox.get(sh.db.reader(), refused)
                return item is not None and item.state == "dead"

            await eventually(parked)
            item = outbox.get(sh.db.reader(), refused)
            assert item is not None
            assert item.last_error.startswith(FaultCode.KEY_REVOKED.value)
            assert item.reply is not None and fault_code(item.reply) == "key_revoked"
    assert read_manifest(mesh).version == 3


async def test_reload_follows_a_peer_to_its_new_endpoint(tmp_path: Path) -> None:
    """When a new manifest moves a peer to another address, a reload points delivery and
    heartbeats at it, and the backlog reaches the peer there."""
    mesh = make_mesh(tmp_path)
    new_port = free_base_port(1) + 3000
    async with running(config_for(mesh, "shanghai")) as sh:
        manifest = read_manifest(mesh)
        jiangsu = manifest.member_for_province("jiangsu")
        assert jiangsu is not None
        moved = replace(jiangsu, endpoint=f"127.0.0.1:{new_port}")
        publish_manifest(mesh, manifest.with_member(moved), now=time.time())
        await sh.reload()
        assert sh.peers["jiangsu"].channel.endpoint == moved.endpoint
        [message_id] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=1))])
        async with running(config_for(mesh, "jiangsu", grpc_listen=moved.endpoint)) as js:
            await eventually(lambda: inbox.count(js.db.reader(), payload_type="probe") == 1)
            await eventually(lambda: sh.peers.link("jiangsu").up)
        item = outbox.get(sh.db.reader(), message_id)
        assert item is not None and item.state == "delivered"

"""Honest readiness: maintenance mode, an expired TLS certificate and a background task that
keeps failing fail /readyz by name, and yrd status shows readiness and trust expiries per
node. (A store that cannot take writes: tests/test_store_unavailable.py.)"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.api.app import build_app
from node.api.service import start_http
from node.cli.main import main
from node.store import certificates as library_rows
from node.trust.keys import write_private_file
from node.trust.tls import certificate_pem, issue_node_certificate, private_key_pem
from tests.certificate_samples import sample_json
from tests.nodes import (
    ScopedClient,
    config_for,
    eventually,
    make_mesh,
    running,
    serving,
    settled,
    tokens_of,
)


async def test_maintenance_mode_fails_readiness_until_switched_off(tmp_path: Path) -> None:
    """PUT /v1/maintenance on makes /readyz 503 naming maintenance; off makes it 200 again;
    a body that is not a boolean is refused and changes nothing."""
    mesh = make_mesh(tmp_path)
    async with running(config_for(mesh, "shanghai")) as sh:
        async with ScopedClient(TestServer(build_app(sh)), tokens_of(sh.config)) as client:
            bad = await client.put("/v1/maintenance", json={"on": "yes"})
            assert bad.status == 422
            assert (await bad.json())["field"] == "on"
            assert (await client.get("/readyz")).status == 200

            assert (await client.put("/v1/maintenance", json={"on": True})).status == 200
            answer = await client.get("/readyz")
            assert answer.status == 503
            assert (await answer.json())["checks"]["maintenance"] == "failing"
            status = await (await client.get("/v1/status")).json()
            assert status["checks"]["maintenance"].startswith("maintenance mode")

            assert (await client.put("/v1/maintenance", json={"on": False})).status == 200
            assert (await client.get("/readyz")).status == 200


async def test_yrd_node_maintenance_and_status_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """yrd node maintenance on marks the node not ready; yrd status then exits 1 with the
    node table naming it; off restores a healthy, exit-0 status with expiries in days."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "shanghai")) as sh,
        running(config_for(mesh, "jiangsu")) as js,
    ):
        runners = [await start_http(sh), await start_http(js)]
        try:
            await eventually(lambda: settled(sh, js))
            config = str(mesh / "shanghai" / "node.toml")
            assert (
                await asyncio.to_thread(main, ["node", "maintenance", "on", "--config", config])
                == 0
            )
            assert "readiness now: maintenance" in capsys.readouterr().out
            urls = [f"http://{n.config.http_listen}" for n in (sh, js)]
            # Nodes named by URL are asked with YRD_HTTP_TOKEN: here the mesh's viewer token.
            monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(sh.config)["read"])
            assert await asyncio.to_thread(main, ["status", *urls]) == 1
            out = capsys.readouterr().out
            shanghai_row = next(line for line in out.splitlines() if line.startswith("shanghai"))
            assert " NO " in shanghai_row and "maintenance" in shanghai_row
            # Days left for the manifest (90-day mesh default) and signing key (365).
            assert re.search(r"\b(89|90) d\s+(364|365) d\s+\d+ d\b", shanghai_row)

            monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(sh.config)["operator"])
            assert (
                await asyncio.to_thread(main, ["node", "maintenance", "off", "--url", urls[0]]) == 0
            )
            monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(sh.config)["read"])
            assert "readiness now: ready" in capsys.readouterr().out
            assert await asyncio.to_thread(main, ["status", *urls]) == 0
        finally:
            for runner in runners:
                await runner.cleanup()


async def test_expired_tls_certificate_fails_readiness(tmp_path: Path) -> None:
    """A node whose TLS certificate has expired reports not ready, naming the certificate."""
    mesh = make_mesh(tmp_path)
    long_ago = time.time() - 900 * 86400
    # Re-issue Shanghai's certificate from the mesh CA, valid until about 75 days ago.
    mesh_ca_cert = x509.load_pem_x509_certificate((mesh / "ca/ca.crt").read_bytes())
    mesh_ca_key = serialization.load_pem_private_key((mesh / "ca/ca.key").read_bytes(), None)
    key, cert = issue_node_certificate(
        mesh_ca_key,  # type: ignore[arg-type]
        mesh_ca_cert,
        "node-310000",
        now=long_ago,
        valid_days=825,
    )
    (mesh / "shanghai" / "tls.crt").write_bytes(certificate_pem(cert))
    (mesh / "shanghai" / "tls.key").unlink()
    write_private_file(mesh / "shanghai" / "tls.key", private_key_pem(key))
    async with running(config_for(mesh, "shanghai")) as sh:
        checks = sh.health.readiness()
    assert checks["tls"].startswith("TLS certificate expired at")
    assert checks["manifest"] == "ok"


async def test_a_task_that_keeps_failing_fails_readiness_naming_it(tmp_path: Path) -> None:
    """A library row the node cannot read (a revoked card with its fields gone, as a damaged
    store might hold) crashes the revocation-list task at every run: /readyz is 503 with
    tasks failing, /v1/status names the task and the error, its restarts are counted; once
    the row is mended the task runs again and the node is ready without a restart."""
    mesh = make_mesh(tmp_path)
    card = sample_json("resident_id_card")
    config = config_for(mesh, "shanghai", revocation_refresh_seconds=0.05)
    async with serving(config) as (sh, client):
        assert (await client.get("/readyz")).status == 200
        damaged = {"certificate_id": card["certificate_id"], "status": "revoked"}
        await sh.db.write(
            lambda c: library_rows.put_certificate(c, card["certificate_id"], damaged, 0.0)
        )
        await eventually(lambda: sh.health.readiness()["tasks"] != "ok")

        answer = await client.get("/readyz")
        assert answer.status == 503
        assert (await answer.json())["checks"]["tasks"] == "failing"
        why = (await (await client.get("/v1/status")).json())["checks"]["tasks"]
        assert why.startswith("revocation-lists ") and "CertificateError" in why, why
        metrics = await (await client.get("/metrics")).text()
        restarts = re.search(r'yrd_task_restarts_total\{task="revocation-lists"\} (\S+)', metrics)
        assert restarts is not None and float(restarts.group(1)) >= 1

        mended = await client.post("/v1/certificates", json={**card, "status": "revoked"})
        assert mended.status == 201, await mended.text()
        await eventually(lambda: sh.health.readiness()["tasks"] == "ok")
        assert (await client.get("/readyz")).status == 200

"""Signed catalog announcements between real nodes, and the federated /v1/catalog."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import pytest
from aiohttp.test_utils import TestServer

from node.api.app import build_app
from node.api.service import start_http
from node.cases.announce import to_announce
from node.cases.catalog import load_catalog
from node.cli.main import main
from node.protocol.envelope import header, seal
from node.protocol.faults import FaultCode
from node.store import catalogs, outbox
from node.trust.keys import load_signing_key
from node.wire import pb
from tests.nodes import (
    ScopedClient,
    config_for,
    eventually,
    make_mesh,
    raw_channel,
    running,
    tls_of,
    tokens_of,
)
from tests.test_exchange import call_raw, fault_code


def announced(node: object, province: str) -> bool:
    held = catalogs.all_held(node.db.reader())  # type: ignore[attr-defined]
    return any(h.province == province for h in held)


async def test_nodes_exchange_catalogs_and_serve_the_federated_one(tmp_path: Path) -> None:
    """Each node announces its catalog to the other; /v1/catalog then lists both provinces'
    matters in the DESIGN.md §9 shape, each handled by the province that announced it."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "shanghai")) as sh,
        running(config_for(mesh, "jiangsu")) as js,
    ):
        await eventually(lambda: announced(sh, "jiangsu") and announced(js, "shanghai"))
        async with ScopedClient(TestServer(build_app(sh)), tokens_of(sh.config)) as client:
            response = await client.get("/v1/catalog")
            assert response.status == 200
            body = await response.json()
    expected = len(load_catalog("shanghai").matters) + len(load_catalog("jiangsu").matters)
    assert len(body["matters"]) == expected
    assert {m["handler"] for m in body["matters"]} == {"shanghai", "jiangsu"}
    assert {(p["province"], p["own"]) for p in body["provinces"]} == {
        ("shanghai", True),
        ("jiangsu", False),
    }
    matter = next(m for m in body["matters"] if m["handler"] == "jiangsu")
    assert set(matter) >= {"code", "name", "name_en", "handler", "modes", "materials"}
    assert matter["promised_days"] > 0
    kinds = {x["kind"] for m in body["matters"] for x in m["materials"]}
    assert kinds == {"upload", "certificate"}


async def test_restart_does_not_announce_the_same_catalog_again(tmp_path: Path) -> None:
    """A node that already queued this catalog for a peer does not queue it again."""
    mesh = make_mesh(tmp_path)
    for _ in range(2):
        async with running(config_for(mesh, "shanghai")) as sh:
            rows = outbox.list_items(sh.db.reader(), peer="jiangsu", limit=10)
            kinds = [r.payload_type for r in rows if r.payload_type == "catalog_announce"]
            assert kinds == ["catalog_announce"]


async def _announce(mesh: Path, announce: pb.CatalogAnnounce) -> tuple[grpc.StatusCode, bytes]:
    key = load_signing_key(mesh / "shanghai" / "signing.key")
    message = pb.Message(
        header=header(
            sender="node-310000", recipient="node-320000", now=time.time(), manifest_version=1
        ),
        catalog_announce=announce,
    )
    async with running(config_for(mesh, "jiangsu")) as js:
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            result = await call_raw(ch, seal(message, key).envelope)
        assert not announced(js, "shanghai"), "a refused announcement must store nothing"
    return result


async def test_announcing_another_provinces_catalog_is_refused(tmp_path: Path) -> None:
    """Shanghai cannot announce Anhui's matters: invalid_payload, nothing stored."""
    status, fault = await _announce(make_mesh(tmp_path), to_announce(load_catalog("anhui")))
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert fault_code(fault) == FaultCode.INVALID_PAYLOAD.value


async def test_malformed_catalog_is_refused_naming_the_field(tmp_path: Path) -> None:
    """A matter with zero promised days is refused with the field at fault in the fault."""
    announce = to_announce(load_catalog("shanghai"))
    announce.matters[2].promised_days = 0
    status, fault = await _announce(make_mesh(tmp_path), announce)
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    message = pb.Message.FromString(pb.Envelope.FromString(fault).message)
    assert message.fault.code == FaultCode.INVALID_PAYLOAD.value
    assert "matters[2].promised_days" in message.fault.field


def test_an_older_version_never_replaces_a_newer_one(tmp_path: Path) -> None:
    """Announcements arriving out of order keep the newest version per province."""
    import sqlite3

    from node.store.schema import MIGRATIONS

    conn = sqlite3.connect(tmp_path / "s.db")
    for script in MIGRATIONS:
        conn.executescript(script)
    assert catalogs.record(
        conn, province="anhui", version=3, document="{}", message_id="a", received_at=1.0
    )
    assert not catalogs.record(
        conn, province="anhui", version=2, document="{}", message_id="b", received_at=2.0
    )
    assert catalogs.record(
        conn, province="anhui", version=4, document="{}", message_id="c", received_at=3.0
    )
    [held] = catalogs.all_held(conn)
    assert (held.version, held.message_id) == (4, "c")
    conn.close()


async def test_yrd_catalog_prints_the_federated_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """yrd catalog lists every province's matters as a table, --handler filters, --json
    parses, and an unreachable node is a clear error."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "shanghai")) as sh,
        running(config_for(mesh, "jiangsu")) as js,
    ):
        await eventually(lambda: announced(sh, "jiangsu"))
        runner = await start_http(sh)
        try:
            url = f"http://{sh.config.http_listen}"
            monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(sh.config)["read"])
            assert await asyncio.to_thread(main, ["catalog", "--url", url]) == 0
            out = capsys.readouterr().out
            assert "jiangsu" in out and "shanghai" in out
            assert "catalogs held: jiangsu v1, shanghai v1 (own)" in out
            code = await asyncio.to_thread(
                main, ["catalog", "--url", url, "--handler", "jiangsu", "--json"]
            )
            assert code == 0
            body = json.loads(capsys.readouterr().out)
            assert body["matters"] and {m["handler"] for m in body["matters"]} == {"jiangsu"}
        finally:
            await runner.cleanup()
        assert js is not None
    code = await asyncio.to_thread(main, ["catalog", "--url", "http://127.0.0.1:9"])
    assert code == 2
    assert "cannot get the catalog" in capsys.readouterr().err

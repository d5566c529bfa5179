"""A node on PostgreSQL end to end: a real node on a PostgreSQL store and a real node on
SQLite exchange a case over mutual-TLS gRPC, and ``yrd audit verify`` checks the PostgreSQL
node's evidence from its URL."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from node.cli.main import main
from node.store import tokens
from node.store.connection import PostgresUrl
from tests.cases import case_body, matter_of, status_of
from tests.nodes import config_for, eventually, make_mesh, serving, settled, tokens_of

pytestmark = pytest.mark.slow  # the session's PostgreSQL server is a process


async def test_a_case_between_a_postgres_node_and_a_sqlite_node(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shanghai on PostgreSQL sends a case to Jiangsu on SQLite; Jiangsu accepts and completes
    it; both sides agree, and Shanghai's evidence log verifies from the database URL."""
    mesh = make_mesh(tmp_path)
    url = PostgresUrl(postgres_url)
    on_sqlite = config_for(mesh, "shanghai")
    shanghai = replace(on_sqlite, paths=replace(on_sqlite.paths, store=url))
    held = tokens_of(on_sqlite)
    await tokens.issue(
        url,
        [(scope, scope, held[scope]) for scope in ("platform", "operator")]
        + [("viewer", "read", held["read"])],
        now=0.0,
    )
    async with (
        serving(shanghai) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        response = await sh_client.post("/v1/cases", json=case_body(matter_of("jiangsu")))
        assert response.status == 201, await response.text()
        case_id = (await response.json())["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        result = {"kind": "document", "document_sha256": "ab" * 32}
        for action in ({"action": "accept"}, {"action": "complete", "result": result}):
            answer = await js_client.post(f"/v1/cases/{case_id}/events", json=action)
            assert answer.status in (200, 202), await answer.text()
        await eventually(lambda: status_of(sh, case_id) == "completed")
        sh_view = await (await sh_client.get(f"/v1/cases/{case_id}")).json()
        js_view = await (await js_client.get(f"/v1/cases/{case_id}")).json()
        assert [u["action"] for u in sh_view["history"]] == [
            u["action"] for u in js_view["history"]
        ]
    capsys.readouterr()
    assert main(["audit", "verify", "--store", postgres_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["entries"] > 4  # the manifest, and the case's envelopes and replies

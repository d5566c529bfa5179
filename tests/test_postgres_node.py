"""A node on PostgreSQL end to end: a real node on a PostgreSQL store and a real node on
SQLite exchange a case over mutual-TLS gRPC, and ``yrd audit verify`` checks the PostgreSQL
node's evidence from its URL; two replicas of one node share the store and hand its outbox
over."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from node.cli.main import main
from node.runtime.config import NodeConfig
from node.runtime.node import Node
from node.store import inbox, leases, tokens
from node.store.connection import PostgresUrl
from node.store.leases import LeaseConfig
from tests.cases import case_body, matter_of, status_of
from tests.nodes import (
    ScopedClient,
    config_for,
    eventually,
    make_mesh,
    serving,
    settled,
    tokens_of,
)
from tests.postgres import free_port

pytestmark = pytest.mark.slow  # the session's PostgreSQL server is a process


async def issue_tokens(url: PostgresUrl, config: NodeConfig) -> None:
    """The tokens ``create_mesh`` made for ``config``'s node, in the store at ``url``."""
    held = tokens_of(config)
    await tokens.issue(
        url,
        [(scope, scope, held[scope]) for scope in ("platform", "operator")]
        + [("viewer", "read", held["read"])],
        now=0.0,
    )


async def test_a_case_between_a_postgres_node_and_a_sqlite_node(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shanghai on PostgreSQL sends a case to Jiangsu on SQLite; Jiangsu accepts and completes
    it; both sides agree, and Shanghai's evidence log verifies from the database URL."""
    mesh = make_mesh(tmp_path)
    url = PostgresUrl(postgres_url)
    on_sqlite = config_for(mesh, "shanghai")
    shanghai = replace(on_sqlite, paths=replace(on_sqlite.paths, store=url))
    await issue_tokens(url, on_sqlite)
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


async def test_two_replicas_share_one_outbox_and_hand_it_over_when_one_stops(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two Shanghai replicas (same identity, ports of their own) on one PostgreSQL store both
    start; the first holds the sender lease for Jiangsu and delivers what either replica
    queued; when it stops it releases the lease and the other delivers from then on. Each
    case reaches Jiangsu once, and the shared evidence log verifies."""
    mesh = make_mesh(tmp_path)
    url = PostgresUrl(postgres_url)
    on_sqlite = config_for(mesh, "shanghai")
    quick = LeaseConfig(duration_seconds=6.0, renew_seconds=0.2)
    first = replace(on_sqlite, paths=replace(on_sqlite.paths, store=url), leases=quick)
    second = replace(
        first, grpc_listen=f"127.0.0.1:{free_port()}", http_listen=f"127.0.0.1:{free_port()}"
    )
    await issue_tokens(url, on_sqlite)

    def holder(node: Node) -> str | None:
        current = leases.current(node.db.reader(), leases.outbox_lease("jiangsu"))
        return None if current is None else current.owner

    async def submit(client: ScopedClient, seed: int) -> str:
        response = await client.post("/v1/cases", json=case_body(matter_of("jiangsu"), seed=seed))
        assert response.status == 201, await response.text()
        return str((await response.json())["case_id"])

    async with serving(config_for(mesh, "jiangsu")) as (js, _):
        replica_a = serving(first)
        sh_a, client_a = await replica_a.__aenter__()
        stopped = False
        try:
            await eventually(lambda: holder(sh_a) == sh_a.replica_id)
            code = matter_of("jiangsu").code
            await eventually(lambda: sh_a.catalogs.find_matter(code) is not None)
            async with serving(second) as (sh_b, client_b):
                ids = [await submit(client_a, 1), await submit(client_b, 2)]
                await eventually(lambda: all(status_of(js, i) == "delivered" for i in ids))
                assert holder(sh_b) == sh_a.replica_id
                await replica_a.__aexit__(None, None, None)
                stopped = True
                ids.append(await submit(client_b, 3))
                await eventually(lambda: status_of(js, ids[2]) == "delivered")
                assert holder(sh_b) == sh_b.replica_id
                assert inbox.count(js.db.reader(), payload_type="case_submit") == 3
        finally:
            if not stopped:
                await replica_a.__aexit__(None, None, None)
    capsys.readouterr()
    assert main(["audit", "verify", "--store", postgres_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

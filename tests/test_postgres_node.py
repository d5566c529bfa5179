"""A node on PostgreSQL end to end: a real node on a PostgreSQL store and a real node on
SQLite exchange a case over mutual-TLS gRPC, and ``yrd audit verify`` checks the PostgreSQL
node's evidence from its URL; two replicas of one node share the store and hand its outbox
over."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from node.cases.announce import to_announce
from node.cases.catalog import load_catalog
from node.certificates import revocation_exchange
from node.cli.main import main
from node.mesh.access import create_mesh
from node.mesh.database import start_mesh_database
from node.mesh.layout import StoreChoice
from node.mesh.processes import replica_configs
from node.protocol.envelope import header, seal
from node.runtime.config import NodeConfig
from node.runtime.node import Node
from node.store import inbox, leases, outbox, tokens
from node.store.connection import PostgresUrl
from node.store.leases import LeaseConfig
from node.transport.client import EndpointState
from node.trust.keys import load_signing_key
from node.wire import DELIVER_METHOD, pb
from tests.cases import case_body, matter_of, status_of
from tests.federation import node_id
from tests.nodes import (
    BUDGET,
    FAST_DELIVERY,
    ScopedClient,
    config_for,
    eventually,
    free_base_port,
    make_mesh,
    raw_channel,
    running,
    serving,
    settled,
    tls_of,
    tokens_of,
)
from tests.postgres import free_port
from tests.test_mesh_replicas import reachable

__all__ = ["reachable"]  # the fixture, used by name

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


def replicas_of(mesh: Path, province: str, url: PostgresUrl) -> tuple[NodeConfig, NodeConfig]:
    """Two replicas of ``province``'s node on the store at ``url``: the mesh's config, and the
    same with listen addresses of its own; non-holders look at leases often (a stopped holder's
    lease is taken over quickly), holders keep theirs across idle ticks on a loaded machine."""
    on_sqlite = config_for(mesh, province)
    leased = LeaseConfig(duration_seconds=12.0, renew_seconds=0.2)
    first = replace(on_sqlite, paths=replace(on_sqlite.paths, store=url), leases=leased)
    second = replace(
        first, grpc_listen=f"127.0.0.1:{free_port()}", http_listen=f"127.0.0.1:{free_port()}"
    )
    return first, second


async def test_two_replicas_share_one_outbox_and_hand_it_over_when_one_stops(
    tmp_path: Path,
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two Shanghai replicas (same identity, ports of their own) on one PostgreSQL store both
    start; the first holds the sender lease for Jiangsu and delivers what either replica
    queued (and alone signs checkpoints of the shared log); when it stops it releases the
    lease and the other delivers from then on. Each case reaches Jiangsu once, and the
    shared evidence log verifies."""
    mesh = make_mesh(tmp_path)
    first, second = replicas_of(mesh, "shanghai", PostgresUrl(postgres_url))
    await issue_tokens(PostgresUrl(postgres_url), config_for(mesh, "shanghai"))

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
                signed: list[bool] = []

                async def counted() -> None:
                    signed.append(True)

                monkeypatch.setattr(sh_b.checkpoints, "checkpoint", counted)
                await sh_a.checkpoints.try_checkpoint()  # takes the checkpoint lease
                await sh_b.checkpoints.try_checkpoint()
                assert signed == []  # the first replica checkpoints the shared log
                # Both replicas publish our revocation list at once: one list per version.
                monkeypatch.setattr(revocation_exchange, "REPUBLISH_AFTER", 0.0)
                await asyncio.gather(sh_a.certificates.publish(), sh_b.certificates.publish())
                lists = [
                    (item.peer, item.correlation_id)
                    for item in outbox.list_items(sh_b.db.reader(), limit=1000)
                    if item.payload_type == "revocation_list"
                ]
                assert len(lists) == len(set(lists)) >= 2
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


async def test_the_same_message_at_two_replicas_at_once_is_stored_once_with_one_receipt(
    tmp_path: Path, postgres_url: str
) -> None:
    """Jiangsu's catalog announcement, one signed envelope, delivered to both Shanghai
    replicas at the same moment: both answer OK with the same receipt (the one stored first),
    and the message is in the shared inbox and evidence log once."""
    mesh = make_mesh(tmp_path)
    first, second = replicas_of(mesh, "shanghai", PostgresUrl(postgres_url))
    async with running(first) as sh_a, running(second) as sh_b:
        message = pb.Message(
            header=header(
                sender=node_id("jiangsu"),
                recipient=first.node_id,
                now=time.time(),
                manifest_version=sh_a.credentials.manifest.version,
            ),
            catalog_announce=to_announce(load_catalog("jiangsu")),
        )
        sealed = seal(message, load_signing_key(mesh / "jiangsu" / "signing.key"))

        async def deliver(config: NodeConfig) -> bytes:
            tls = tls_of(mesh, "jiangsu")
            async with raw_channel(config, tls, config.node_id) as channel:
                reply: bytes = await channel.unary_unary(DELIVER_METHOD)(sealed.envelope, timeout=5)
            return pb.Envelope.FromString(reply).message

        replies = await asyncio.gather(*(deliver(config) for config in (first, second) * 3))
        assert len(set(replies)) == 1
        assert pb.Message.FromString(replies[0]).HasField("receipt")
        stored = inbox.prior(sh_b.db.reader(), node_id("jiangsu"), sealed.message_id)
        assert stored is not None
        assert pb.Envelope.FromString(stored.reply).message == replies[0]
        (entries,) = (
            sh_a.db.reader()
            .execute("SELECT count(*) FROM audit WHERE message_id = ?", (sealed.message_id,))
            .fetchone()
        )
        assert entries == 2  # the message as received and the receipt as sent, once each


async def test_a_peer_spreads_its_batches_over_every_replica_of_a_province(
    reachable: Path,
) -> None:
    """Jiangsu runs as two replicas on its own database and the manifest lists both
    endpoints: Shanghai's worker sends its queue in two lanes, one to each replica, so both
    receive messages; every message is stored once and receipted."""
    directory = reachable / "mesh"
    create_mesh(
        directory,
        now=time.time(),
        base_port=free_base_port(2),
        provinces=("shanghai", "jiangsu"),
        platforms=False,
        store=StoreChoice("postgres", 2),
    )
    configs = replica_configs(directory)
    server = start_mesh_database(directory, [c for cs in configs.values() for c in cs])
    assert server is not None
    quick = {"delivery": FAST_DELIVERY, "heartbeat_interval_seconds": 0.2}
    sender_config = replace(configs["shanghai"][0], **quick)  # type: ignore[arg-type]
    try:
        async with (
            running(replace(configs["jiangsu"][0], **quick)) as first,  # type: ignore[arg-type]
            contextlib.AsyncExitStack() as replica_2,
        ):
            second = await replica_2.enter_async_context(
                running(replace(configs["jiangsu"][1], **quick))  # type: ignore[arg-type]
            )
            async with running(sender_config) as shanghai:
                peer = shanghai.peers["jiangsu"]
                assert peer.channel.lanes == 2
                bodies = [("probe", pb.Probe(sequence=i)) for i in range(200)]
                sent = await shanghai.courier.send("jiangsu", bodies)

                def received(node: Node) -> float:
                    return sum(
                        sample.value
                        for metric in node.metrics.messages_received.collect()
                        for sample in metric.samples
                        if sample.name.endswith("_total") and sample.labels["type"] == "probe"
                    )

                await eventually(lambda: received(first) + received(second) >= 200, timeout=BUDGET)
                assert received(first) > 0 and received(second) > 0
                assert [e["current"] for e in peer.channel.endpoint_status()] == [True, True]
                await eventually(
                    lambda: all(
                        i.state == "delivered"
                        for i in outbox.list_items(shanghai.db.reader(), limit=1000)
                        if i.message_id in sent
                    )
                )
                assert inbox.count(first.db.reader(), payload_type="probe") == 200

                # The second replica stops; with no traffic at all, the heartbeats (which go
                # round the lanes) find its endpoint failed, and the link stays up on the first.
                await replica_2.aclose()
                await eventually(lambda: peer.channel.health[1].state is EndpointState.FAILED)
                for _ in range(10):
                    assert shanghai.peers.link("jiangsu").up
                    await asyncio.sleep(0.1)
                assert peer.channel.health[0].state is EndpointState.HEALTHY
    finally:
        server.stop()

"""Replicas configured wrongly, and a replica's database lost and back.

- The database a running node stands on goes away (its PostgreSQL server stops) and comes
  back: meanwhile the node is not ready naming the store, REST writes answer 503
  ``store_unavailable`` with ``Retry-After``, and a peer's messages get signed
  ``store_unavailable`` faults (gRPC UNAVAILABLE) and wait in the peer's outbox; when the
  server is back the node recovers without a restart and every queued message is received
  exactly once.
- Replicas of one province must share one database: a replica whose sibling (another
  endpoint of its node in the manifest) answers with another store id refuses to start,
  naming both; a sibling on the same database, or one that cannot be reached, does not stop
  it. A replica whose signing key is not the one the manifest lists for its node is refused.

The PostgreSQL server that is stopped here is a private one of each test's, never the
session's (``tests/postgres.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from aiohttp.test_utils import TestClient

from node.mesh.layout import node_id_for, publish_manifest, read_manifest
from node.mesh.postgres_server import SERVER_USER
from node.mesh.processes import node_run_command
from node.protocol.checks import CheckLimits
from node.protocol.envelope import header, seal
from node.runtime import replicas
from node.runtime.config import NodeConfig, load_config
from node.runtime.node import Node
from node.runtime.replicas import SiblingAnswer, SiblingCheck
from node.runtime.startup import StartupError
from node.store import inbox, outbox
from node.store.audit import verify_store
from node.store.connection import PostgresUrl
from node.store.database import Database
from node.store.lock import StoreInUse
from node.transport.errors import FAULT_TRAILER
from node.trust.keys import SigningKey, load_signing_key, save_signing_key
from node.wire import DELIVER_METHOD, pb
from tests.cases import case_body, matter_of, status_of
from tests.nodes import (
    BUDGET,
    config_for,
    eventually,
    eventually_async,
    make_mesh,
    raw_channel,
    running,
    serving,
    settled,
    tls_of,
)
from tests.postgres import (
    PostgresServer,
    free_port,
    missing_server_is_a_skip,
    new_database,
    server_bindir,
    store_in_database,
)
from tests.test_postgres_node import issue_tokens, replicas_of
from tests.test_store_unavailable import LAST_PROBE, deliver_probe, reply_body, signed_by_node

pytestmark = pytest.mark.slow  # PostgreSQL servers are processes

Client = TestClient[Any, Any]
LIMITS = CheckLimits()


_START = (
    "import sys; from pathlib import Path; "
    "from node.mesh.postgres_server import start_server; "
    "folder = Path(sys.argv[1]); "
    "start_server(folder, port=int(sys.argv[2]), open_from=folder.parent)"
)


@dataclass
class OwnServer:
    """A PostgreSQL server of one test's, which the test stops and starts again on the same
    folder and port (its databases kept).

    It is started by a helper process of its own and left running when the helper exits:
    started as root, the server's process is forked to change user, and a fork of this
    process, where gRPC runs, may die in gRPC's fork handlers before it runs the server."""

    folder: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        started = subprocess.run(
            [sys.executable, "-c", _START, str(self.folder), str(self.port)],
            capture_output=True,
            check=False,
            timeout=BUDGET,
        )
        assert started.returncode == 0, started.stderr.decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """The server's "fast" shutdown (every session ends); returns once it is down."""
        marker = self.folder / "data" / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            os.kill(int(marker.read_text().split()[0]), signal.SIGINT)
        deadline = time.monotonic() + BUDGET
        while marker.exists():
            assert time.monotonic() < deadline, "the PostgreSQL server did not stop"
            time.sleep(0.05)


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    missing_server_is_a_skip(server_bindir)
    folder = Path(tempfile.mkdtemp(prefix="yrd-replica-pg-"))
    own = OwnServer(folder / "pg", free_port())
    try:
        own.start()
        yield own
    finally:
        own.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def submit_to(client: Client, handler: str, seed: int) -> Any:
    response = await client.post(
        "/v1/cases",
        json=case_body(matter_of(handler), seed=seed),
        headers={"Idempotency-Key": f"case-{seed}"},
    )
    return response


async def not_ready_naming_the_store(client: Client) -> bool:
    ready = await client.get("/readyz")
    return ready.status == 503 and (await ready.json())["checks"]["store"] == "failing"


async def ready(client: Client) -> bool:
    return (await client.get("/readyz")).status == 200


async def test_a_replica_whose_database_is_lost_refuses_then_recovers_losing_nothing(
    tmp_path: Path, own_server: OwnServer
) -> None:
    """Shanghai on PostgreSQL, Jiangsu on SQLite. Shanghai's server stops: Shanghai is not
    ready (the store named), its REST writes are 503 ``store_unavailable`` with Retry-After,
    Jiangsu's probe gets a signed ``store_unavailable`` fault with gRPC UNAVAILABLE, and the
    cases Jiangsu submits meanwhile wait in its outbox. The server starts again: Shanghai is
    ready without a restart, every waiting case reaches it exactly once, and both evidence
    logs verify."""
    mesh = make_mesh(tmp_path)
    url = PostgresUrl(own_server.create_database("shanghai"))
    shanghai, _ = replicas_of(mesh, "shanghai", url)
    await issue_tokens(url, config_for(mesh, "shanghai"))
    async with (
        serving(shanghai) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        before = []
        for seed in (1, 2):
            response = await submit_to(js_client, "shanghai", seed)
            assert response.status == 201, await response.text()
            before.append((await response.json())["case_id"])
        await eventually(lambda: all(status_of(sh, c) == "delivered" for c in before))

        own_server.stop()

        # Readiness names the store; the reason is the database.
        await eventually_async(lambda: not_ready_naming_the_store(sh_client))
        assert "database" in sh.health.readiness()["store"]
        # A REST write: nothing kept, try again later.
        refused = await submit_to(sh_client, "jiangsu", 100)
        assert refused.status == 503, await refused.text()
        assert (await refused.json())["code"] == "store_unavailable"
        assert refused.headers["Retry-After"] == "5"
        # A peer's message: a signed fault about that very message, UNAVAILABLE.
        status, reply = await deliver_probe(mesh, sh)
        assert status == grpc.StatusCode.UNAVAILABLE
        fault = reply_body(reply)
        assert fault.WhichOneof("body") == "fault"
        assert fault.fault.code == "store_unavailable"
        assert fault.header.in_reply_to == fault.fault.message_id == LAST_PROBE[0]
        assert signed_by_node(reply, sh)
        # Cases submitted at Jiangsu meanwhile wait in its outbox, refused, not dropped.
        during = []
        for seed in (3, 4, 5):
            response = await submit_to(js_client, "shanghai", seed)
            assert response.status == 201, await response.text()
            during.append((await response.json())["case_id"])

        def refused_for_now() -> bool:
            rows = (
                js.db.reader()
                .execute(
                    "SELECT state, attempts, last_error FROM outbox WHERE peer = 'shanghai' "
                    "AND payload_type = 'case_submit' AND correlation_id IN (?, ?, ?)",
                    during,
                )
                .fetchall()
            )
            return len(rows) == 3 and all(
                state == "pending" and attempts > 0 and "store_unavailable" in error
                for state, attempts, error in rows
            )

        await eventually(refused_for_now, timeout=BUDGET)

        own_server.start()

        await eventually_async(lambda: ready(sh_client), timeout=BUDGET)
        await eventually(
            lambda: all(status_of(sh, c) == "delivered" for c in during), timeout=BUDGET
        )
        await eventually(lambda: outbox.depth(js.db.reader(), "shanghai")[0] == 0)
        # Exactly once: each case's submission is in Shanghai's inbox once, and Shanghai
        # holds each case once.
        assert inbox.count(sh.db.reader(), payload_type="case_submit") == len(before + during)
        held = sh.db.reader().execute("SELECT case_id FROM cases").fetchall()
        assert sorted(str(row[0]) for row in held) == sorted(before + during)
        # Shanghai takes REST writes again.
        response = await submit_to(sh_client, "jiangsu", 101)
        assert response.status == 201, await response.text()
        case_id = (await response.json())["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        assert sh.db.write_problem() is None
        js_store = js.config.paths.store
    assert verify_store(url).ok
    assert verify_store(js_store).ok


# -- replicas that do not belong together ------------------------------------------------------


def with_replica_endpoint(mesh: Path, province: str) -> str:
    """Publish the mesh's manifest again with a second endpoint for ``province``'s node (its
    second replica's gRPC address, on a free port); returns that address."""
    second = f"127.0.0.1:{free_port()}"
    manifest = read_manifest(mesh)
    members = tuple(
        replace(m, replica_endpoints=(m.endpoint, second)) if m.province == province else m
        for m in manifest.members
    )
    publish_manifest(mesh, replace(manifest, members=members), now=time.time())
    return second


def replica_on(config: NodeConfig, url: str, grpc_listen: str | None = None) -> NodeConfig:
    """``config``'s node with its store in the database at ``url`` (and, given, listening
    for gRPC at ``grpc_listen``, and for HTTP on a free port)."""
    config = replace(config, paths=replace(config.paths, store=PostgresUrl(url)))
    if grpc_listen is None:
        return config
    return replace(config, grpc_listen=grpc_listen, http_listen=f"127.0.0.1:{free_port()}")


def store_id_in(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT value FROM store_meta WHERE name = 'store_id'").fetchone()
    assert row is not None
    return str(row[0])


def replica_toml(mesh: Path, config: NodeConfig, url: str, name: str) -> Path:
    """A ``node-2.toml`` beside Shanghai's ``node.toml``: the same but for its listen
    addresses (``config``'s) and its store (the database at ``url``)."""
    first = load_config(mesh / "shanghai" / "node.toml", {})
    text = (mesh / "shanghai" / "node.toml").read_text()
    text = text.replace(f'listen = "{first.grpc_listen}"', f'listen = "{config.grpc_listen}"')
    text = text.replace(f'listen = "{first.http_listen}"', f'listen = "{config.http_listen}"')
    path = mesh / "shanghai" / name
    path.write_text(text)
    store_in_database(path, url)
    return path


async def test_a_replica_on_another_database_is_refused_at_start(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Shanghai's first replica runs on database A; a second, configured with database B
    (a store of its own from an earlier run), asks it at start which store it runs on, and
    stops with exit status 2 and a message naming both store ids, before it serves
    anything. The first replica goes on."""
    mesh = make_mesh(tmp_path)
    second_endpoint = with_replica_endpoint(mesh, "shanghai")
    first_url, other_url = new_database(postgres_server), new_database(postgres_server)
    await (await Database.open(PostgresUrl(other_url))).close()
    first = replica_on(config_for(mesh, "shanghai"), first_url)
    second = replica_on(config_for(mesh, "shanghai"), other_url, second_endpoint)
    async with running(first) as sh:
        process = await asyncio.create_subprocess_exec(
            *node_run_command(replica_toml(mesh, second, other_url, "node-2.toml")),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), timeout=BUDGET)
        said = err.decode()
        assert process.returncode == 2, said  # the CLI's "cannot start" status
        assert "replicas of node-310000 must share one store" in said
        assert sh.db.store_id in said
        assert store_id_in(other_url) in said
        assert sh.db.store_id != store_id_in(other_url)
        assert second_endpoint not in said  # named the first's endpoint, not its own
        assert first.grpc_listen in said
        assert sh.health.readiness()["store"] == "ok"


async def test_replicas_started_at_once_on_two_databases_are_found_once_both_serve(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Shanghai replicas on two databases, each finding the other not serving yet at
    start (started at the same moment): once both serve, each asks the other again, finds
    its other store, and is not ready, its readiness naming the store and both ids."""
    mesh = make_mesh(tmp_path)
    second_endpoint = with_replica_endpoint(mesh, "shanghai")
    first_url, other_url = new_database(postgres_server), new_database(postgres_server)
    monkeypatch.setattr(replicas, "RECHECK_SECONDS", 0.1)
    first = replica_on(config_for(mesh, "shanghai"), first_url)
    async with running(first) as sh_a:

        async def not_serving_yet(check: SiblingCheck, endpoint: str) -> SiblingAnswer:
            return SiblingAnswer(endpoint, None, "not reachable: not serving yet")

        with monkeypatch.context() as at_once:
            at_once.setattr(SiblingCheck, "ask", not_serving_yet)
            sh_b = Node(replica_on(config_for(mesh, "shanghai"), other_url, second_endpoint))
            await sh_b.start()
        try:
            assert sh_a.db.store_id != sh_b.db.store_id
            for node, other in ((sh_a, sh_b), (sh_b, sh_a)):
                await eventually(lambda n=node: n.replica_problem is not None)
                said = node.health.readiness()["store"]
                assert "must share one store" in said
                assert node.db.store_id in said and other.db.store_id in said
        finally:
            await sh_b.stop()


async def test_a_replica_on_an_empty_database_is_refused_and_leaves_it_empty(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """A second Shanghai replica pointed at an empty database is refused before it makes a
    store there: the database is left without a single table."""
    mesh = make_mesh(tmp_path)
    second_endpoint = with_replica_endpoint(mesh, "shanghai")
    first_url, empty_url = new_database(postgres_server), new_database(postgres_server)
    first = replica_on(config_for(mesh, "shanghai"), first_url)
    async with running(first) as sh:
        second = Node(replica_on(config_for(mesh, "shanghai"), empty_url, second_endpoint))
        with pytest.raises(StartupError) as refused:
            await second.start()
        said = str(refused.value)
        assert "must share one store" in said and "has no store id" in said
        assert f"the replica at {first.grpc_listen} runs on store {sh.db.store_id}" in said
        with psycopg.connect(empty_url, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert tables == (0,)
        # Refused, it holds no lock: given the first replica's database, it starts beside it.
        fixed = replica_on(config_for(mesh, "shanghai"), first_url, second_endpoint)
        async with running(fixed) as sh_b:
            assert sh_b.db.store_id == sh.db.store_id


async def test_replicas_on_one_database_both_start_and_the_probe_leaves_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two Shanghai replicas on one database: the second finds the first on its store and
    starts. The probe and its answer are checked and signed, and stored nowhere."""
    mesh = make_mesh(tmp_path)
    second_endpoint = with_replica_endpoint(mesh, "shanghai")
    first = replica_on(config_for(mesh, "shanghai"), postgres_url)
    second = replica_on(config_for(mesh, "shanghai"), postgres_url, second_endpoint)
    async with running(first) as sh_a, running(second) as sh_b:
        assert sh_a.db.store_id == sh_b.db.store_id == store_id_in(postgres_url)
        assert sh_a.health.status()["store_id"] == sh_b.health.status()["store_id"]

        # What the second replica asked the first at start, asked again: the first's store.
        def siblings_of(node: Node) -> SiblingCheck:
            tls = tls_of(mesh, "shanghai")
            return SiblingCheck(node.config.node_id, node.credentials, tls, time.time, LIMITS)

        async def held() -> str:
            return sh_a.db.store_id

        answers = await siblings_of(sh_b).run(own_listen=second.grpc_listen, held=held)
        assert answers == [SiblingAnswer(first.grpc_listen, sh_a.db.store_id)]
        # And the first asks the second likewise.
        answers = await siblings_of(sh_a).run(own_listen=first.grpc_listen, held=held)
        assert answers == [SiblingAnswer(second_endpoint, sh_a.db.store_id)]
        conn = sh_a.db.reader()
        assert inbox.count(conn, payload_type="replica_probe") == 0
        (kept,) = conn.execute(
            "SELECT count(*) FROM audit WHERE peer = 'shanghai' AND kind <> 'manifest'"
        ).fetchone()
        assert kept == 0


async def test_an_unreachable_sibling_does_not_stop_a_replica(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The manifest lists a second Shanghai replica that is not running: the first starts
    all the same and logs that it could not ask it."""
    mesh = make_mesh(tmp_path)
    second_endpoint = with_replica_endpoint(mesh, "shanghai")
    caplog.set_level(logging.WARNING, logger="node.runtime.replicas")
    async with running(replica_on(config_for(mesh, "shanghai"), postgres_url)) as sh:
        assert sh.serving
    [record] = [r for r in caplog.records if r.name == "node.runtime.replicas"]
    assert record.getMessage().startswith("replica not checked")
    assert record.__dict__["endpoint"] == second_endpoint
    assert "not reachable" in record.__dict__["reason"]


@pytest.mark.parametrize(
    ("sender", "kind", "said"),
    [
        ("jiangsu", "replica_probe", "only this node's own replicas may send replica_probe"),
        ("shanghai", "replica_store", "does not allow node-310000 to send replica_store"),
    ],
)
async def test_a_replica_probe_from_another_node_or_an_unasked_answer_is_refused(
    tmp_path: Path, postgres_url: str, sender: str, kind: str, said: str
) -> None:
    """Only a node's own identity may ask it which store it runs on: Jiangsu's probe, signed
    and sent over mutual TLS as Jiangsu, gets a signed ``payload_not_allowed`` fault; and an
    answer (``replica_store``) is never taken as a message of its own, even from the node
    itself."""
    mesh = make_mesh(tmp_path)
    config = replica_on(config_for(mesh, "shanghai"), postgres_url)
    async with running(config) as sh:
        message = pb.Message(
            header=header(
                sender=node_id_for(sender),
                recipient=config.node_id,
                now=time.time(),
                manifest_version=sh.credentials.manifest.version,
            ),
        )
        getattr(message, kind).SetInParent()
        envelope = seal(message, load_signing_key(mesh / sender / "signing.key")).envelope
        async with raw_channel(config, tls_of(mesh, sender), config.node_id) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(DELIVER_METHOD)(envelope, timeout=BUDGET / 4)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        trailer = dict(refused.value.trailing_metadata() or ())[FAULT_TRAILER]
        fault = reply_body(trailer)
        assert fault.fault.code == "payload_not_allowed"
        assert said in fault.fault.text
        assert signed_by_node(trailer, sh)
        assert inbox.count(sh.db.reader()) == 0


async def test_another_node_on_a_replicas_database_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    """Jiangsu's node configured with the database Shanghai's replicas run on is refused at
    start while they run, and Shanghai's replica goes on."""
    mesh = make_mesh(tmp_path)
    async with running(replica_on(config_for(mesh, "shanghai"), postgres_url)) as sh:
        intruder = Node(replica_on(config_for(mesh, "jiangsu"), postgres_url))
        with pytest.raises(StoreInUse, match="of another identity than node-320000"):
            await intruder.start()
        assert sh.health.readiness()["store"] == "ok"
        assert sh.db.write_problem() is None


async def test_a_replica_with_another_signing_key_or_certificate_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    """A replica with Shanghai's node id but a signing key the manifest does not list for it,
    or the TLS certificate of another node, is refused at start, saying which."""
    mesh = make_mesh(tmp_path)
    config = replica_on(config_for(mesh, "shanghai"), postgres_url)
    stranger = tmp_path / "stranger.key"
    save_signing_key(SigningKey.generate(), stranger)
    with pytest.raises(StartupError, match="is not listed for node-310000"):
        await Node(replace(config, paths=replace(config.paths, signing_key=stranger))).start()
    jiangsu = mesh / "jiangsu"
    other_tls = replace(config.paths, tls_cert=jiangsu / "tls.crt", tls_key=jiangsu / "tls.key")
    with pytest.raises(StartupError, match="is for node-320000, not for this node node-310000"):
        await Node(replace(config, paths=other_tls)).start()
    # Neither left the store held: the right configuration starts on it at once.
    async with running(config) as sh:
        assert sh.serving

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

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from aiohttp.test_utils import TestClient

from node.mesh.postgres_server import SERVER_USER
from node.store import inbox, outbox
from node.store.audit import verify_store
from node.store.connection import PostgresUrl
from tests.cases import case_body, matter_of, status_of
from tests.nodes import (
    BUDGET,
    config_for,
    eventually,
    eventually_async,
    make_mesh,
    serving,
    settled,
)
from tests.postgres import free_port, missing_server_is_a_skip, server_bindir
from tests.test_postgres_node import issue_tokens, replicas_of
from tests.test_store_unavailable import LAST_PROBE, deliver_probe, reply_body, signed_by_node

pytestmark = pytest.mark.slow  # PostgreSQL servers are processes

Client = TestClient[Any, Any]


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
        subprocess.run(
            [sys.executable, "-c", _START, str(self.folder), str(self.port)],
            check=True,
            timeout=BUDGET,
        )

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

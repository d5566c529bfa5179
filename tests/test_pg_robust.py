"""The store on a PostgreSQL server that hangs or drops its sessions: nothing on the event loop
waits for it for long, readiness says so, and the store's lock is taken again.

A "paused" server is SIGSTOPped with every process it started (``tests.postgres.paused``): it
keeps its connections open and answers nothing, as a hung or partitioned server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from node.cli.main import main
from node.cli.output import EXIT_NOT_CHECKED
from node.mesh.postgres_server import PostgresServer
from node.store import leases, outbox, postgres
from node.store.connection import Connection, PostgresUrl
from node.store.database import Database, StoreUnavailable
from node.store.lock import NODE_LOCK, StoreInUse, StoreLock
from tests.cases import case_body, matter_of
from tests.nodes import config_for, eventually, make_mesh, serving
from tests.postgres import paused
from tests.test_postgres_node import issue_tokens
from tests.test_store import enqueue

pytestmark = pytest.mark.slow  # the session's PostgreSQL server is a process

BEFORE = "2026-01-11T00:00:00Z"
"""A purge boundary in the past (what is purged does not matter here, only whether it may)."""


def terminate_sessions(server: PostgresServer, url: str) -> int:
    """``pg_terminate_backend`` on every session of ``url``'s database, as a network blip or a
    server restart ends them; returns how many."""
    name = url.rsplit("/", 1)[1]
    with server.admin() as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(ended[0]) if ended else 0


def node_locks(server: PostgresServer, url: str) -> int:
    """How many sessions hold the store's node lock on ``url``'s database."""
    name = url.rsplit("/", 1)[1]
    with server.admin() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = %s) "
            "AND objid = %s::oid AND objsubid = 1",
            (name, NODE_LOCK & 0xFFFFFFFF),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_the_nodes_sessions_are_bounded_on_the_server_and_in_tcp(postgres_url: str) -> None:
    """The event loop's reader and the writer send keepalives with a TCP user timeout, and
    their statements are ended by the server past their statement timeout."""
    db = await Database.open(PostgresUrl(postgres_url))
    try:
        reader = db.reader()
        assert isinstance(reader, postgres.PgConnection)
        told = reader.raw.info.get_parameters()
        assert told["keepalives"] == "1"
        assert told["keepalives_idle"] == "5"
        assert told["tcp_user_timeout"] == "10000"
        shown = reader.execute("SHOW statement_timeout").fetchone()
        assert shown is not None and shown[0] == postgres.READ_STATEMENT_TIMEOUT
        written = await db.write(lambda c: c.execute("SHOW statement_timeout").fetchone())
        assert written is not None and written[0] == postgres.WRITE_STATEMENT_TIMEOUT
        with pytest.raises(psycopg.errors.QueryCanceled):
            reader.execute("SELECT pg_sleep(10)")
    finally:
        await db.close()


async def test_a_read_on_a_frozen_server_ends_at_its_deadline_and_the_store_recovers(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """With the server frozen, a read on the event loop's connection fails with
    StoreUnavailable after its deadline (not never), the next ones at once, and the store
    says it does not answer; once the server runs again, reads and writes work without a
    reopen."""
    db = await Database.open(PostgresUrl(postgres_url))
    try:
        await db.write(enqueue("jiangsu", "before"))
        assert db.read_problem() is None
        with paused(postgres_server):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="did not answer"):
                outbox.pending_batch(db.reader(), "jiangsu", 10)
            took = time.monotonic() - started
            assert took < postgres.READ_DEADLINE_SECONDS + 1.0, took
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                outbox.pending_batch(db.reader(), "jiangsu", 10)
            assert time.monotonic() - started < 0.5
            await eventually(lambda: db.read_problem() is not None, timeout=10)
            assert "has not answered" in (db.read_problem() or "")

        def read_again() -> bool:
            try:
                held = outbox.pending_batch(db.reader(), "jiangsu", 10)
            except StoreUnavailable:
                return False
            return [item.message_id for item in held] == ["before"]

        await eventually(read_again, timeout=15, interval=0.2)
        await eventually(lambda: db.read_problem() is None, timeout=10)
        await db.write(enqueue("jiangsu", "after"))
    finally:
        await db.close()


async def test_a_write_to_a_frozen_server_fails_at_the_writers_deadline(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the server frozen, a write is told StoreUnavailable once the writer's deadline
    has passed (here made short), and the same store writes again once it is back."""
    monkeypatch.setattr(postgres, "WRITE_DEADLINE_SECONDS", 1.5)
    db = await Database.open(PostgresUrl(postgres_url))
    try:
        await db.write(enqueue("jiangsu", "before"))
        with paused(postgres_server):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="did not answer"):
                await asyncio.wait_for(db.write(enqueue("jiangsu", "lost")), timeout=10)
            assert time.monotonic() - started < 1.5 + 1.0
            assert db.write_problem() is not None
        await db.write(enqueue("jiangsu", "after"))
        held = outbox.pending_batch(db.reader(), "jiangsu", 10)
        assert [item.message_id for item in held] == ["before", "after"]
    finally:
        await db.close()


async def test_a_write_of_many_rows_in_one_call_gets_a_deadline_per_thousand_rows(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``executemany`` of 2,001 rows (a purge's updates are one call) is given three
    deadlines, not one: a large purge is not cut off as if the server were gone."""
    monkeypatch.setattr(postgres, "WRITE_DEADLINE_SECONDS", 0.5)
    db = await Database.open(PostgresUrl(postgres_url))
    rows = [(float(i), b"", i) for i in range(2001)]

    frozen = contextlib.ExitStack()

    def many(conn: Connection) -> None:
        conn.execute("SELECT 1")  # sends the job's savepoint
        frozen.enter_context(paused(postgres_server))  # then, before the rows, freeze
        conn.executemany("UPDATE audit SET body = ?, purged_at = ? WHERE seq = ?", rows)

    try:
        with frozen:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"did not answer within 1\.5 s"):
                await asyncio.wait_for(db.write(many), timeout=10)
            assert time.monotonic() - started >= 1.5
    finally:
        await db.close()


async def test_a_node_on_a_frozen_server_stays_live_and_is_not_ready_until_it_is_back(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The server frozen under a running node: /healthz answers at once throughout, /readyz
    answers 503 within seconds, a case sent answers 503 store_unavailable in bounded time;
    continued, the node is ready again and writes, without a restart."""
    mesh = make_mesh(tmp_path)
    url = PostgresUrl(postgres_url)
    on_sqlite = config_for(mesh, "shanghai")
    config = replace(on_sqlite, paths=replace(on_sqlite.paths, store=url))
    await issue_tokens(url, on_sqlite)
    async with serving(config) as (node, client):

        async def ready() -> int:
            response = await asyncio.wait_for(client.get("/readyz"), timeout=6)
            return response.status

        async def alive_at_once() -> None:
            started = time.monotonic()
            response = await asyncio.wait_for(client.get("/healthz"), timeout=6)
            assert response.status == 200
            # One read on the loop may wait out its deadline; never longer.
            assert time.monotonic() - started < postgres.READ_DEADLINE_SECONDS + 1.5

        deadline = time.monotonic() + 30
        while await ready() != 200:
            assert time.monotonic() < deadline, "the node never became ready"
            await asyncio.sleep(0.2)
        with paused(postgres_server):
            started = time.monotonic()
            while await ready() != 503:
                await alive_at_once()
                assert time.monotonic() - started < 15, "still ready with the server frozen"
                await asyncio.sleep(0.2)
            await alive_at_once()
            sent = await asyncio.wait_for(
                client.post("/v1/cases", json=case_body(matter_of("jiangsu"))),
                timeout=postgres.WRITE_DEADLINE_SECONDS + 10,
            )
            assert sent.status == 503, await sent.text()
            assert (await sent.json())["code"] == "store_unavailable"
            await alive_at_once()
        deadline = time.monotonic() + 30
        while await ready() != 200:
            assert time.monotonic() < deadline, "not ready again after the server was back"
            await asyncio.sleep(0.2)
        await node.db.write(enqueue("jiangsu", "after"))
        held = outbox.pending_batch(node.db.reader(), "jiangsu", 10)
        assert "after" in [item.message_id for item in held]


async def test_the_store_lock_is_taken_again_when_its_session_ends(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Every session of the store ended under two running replicas (a blip, a restart):
    their locks are gone for a moment and taken again within seconds; meanwhile and after,
    ``yrd audit purge`` is refused, and so is a process of another identity."""
    url = PostgresUrl(postgres_url)
    replicas = [StoreLock(url, identity="shanghai-node") for _ in range(2)]
    for lock in replicas:
        lock.acquire()
    try:
        assert node_locks(postgres_server, postgres_url) == 2
        assert terminate_sessions(postgres_server, postgres_url) >= 2
        await eventually(
            lambda: (
                node_locks(postgres_server, postgres_url) == 2
                and all(lock.problem is None for lock in replicas)
            ),
            timeout=10,
            interval=0.1,
        )
        assert main(["audit", "purge", "--store", postgres_url, "--before", BEFORE]) == (
            EXIT_NOT_CHECKED
        )
        with pytest.raises(StoreInUse, match="another identity"):
            StoreLock(url, identity="jiangsu-node").acquire()
    finally:
        for lock in replicas:
            lock.release()
    assert node_locks(postgres_server, postgres_url) == 0


async def test_a_lock_taken_by_another_identity_meanwhile_keeps_the_replica_not_ready(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A process of another identity that took the store while a replica's session was gone
    keeps that replica from taking it again: its lock says why (readiness fails with it)."""
    url = PostgresUrl(postgres_url)
    replica = StoreLock(url, identity="shanghai-node")
    replica.acquire()
    intruder = StoreLock(url, identity="jiangsu-node")
    try:
        terminate_sessions(postgres_server, postgres_url)
        intruder.acquire()  # no replica holds the store in this moment
        await eventually(lambda: replica.problem is not None, timeout=10, interval=0.1)
        await asyncio.sleep(2 * 1.0)  # a few more rounds of the watcher: still refused
        assert "another identity" in (replica.problem or "")
        intruder.release()
        await eventually(lambda: replica.problem is None, timeout=10, interval=0.1)
    finally:
        intruder.release()
        replica.release()


async def write_once(url: str, job: Callable[[Connection], object]) -> None:
    db = await Database.open(PostgresUrl(url))
    try:
        await db.write(job)
    finally:
        await db.close()


def test_purge_is_refused_while_a_lease_is_held_even_without_the_lock(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lease not yet lapsed says a replica may run: ``yrd audit purge`` refuses, naming it,
    even though nothing holds the store lock; once it has lapsed, the purge runs."""
    owner = "shanghai-node/1"
    now = time.time()
    asyncio.run(
        write_once(
            postgres_url,
            lambda c: leases.take(c, "checkpoints", owner, now=now, duration=60.0),
        )
    )
    capsys.readouterr()
    assert main(["audit", "purge", "--store", postgres_url, "--before", BEFORE]) == (
        EXIT_NOT_CHECKED
    )
    said = capsys.readouterr().err
    assert f"leases held by a running replica ({owner})" in said
    assert "Nothing was purged" in said
    asyncio.run(write_once(postgres_url, lambda c: leases.release_all(c, owner, now=time.time())))
    assert main(["audit", "purge", "--store", postgres_url, "--before", BEFORE]) == 0

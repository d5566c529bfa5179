"""The store on PostgreSQL beside SQLite: the same logical schema, several writers on one
database, the same inbound message at two writers at once, a database lost and back, and the
refusals at start (unreachable, foreign, newer)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from node.cli.main import main
from node.runtime.config import ConfigError, load_config
from node.store import audit, inbox, outbox, schema_postgres
from node.store.connection import Connection, PostgresUrl, StoreLocation, store_location
from node.store.database import (
    Database,
    DuplicateEntry,
    StoreError,
    StoreUnavailable,
    held_store_id,
    read_store_id,
)
from node.store.lock import StoreInUse, StoreLock
from node.store.postgres import translate
from node.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.federation import make_federation
from tests.nodes import BUDGET, make_mesh
from tests.postgres import (
    PostgresServer,
    free_port,
    missing_server_is_a_skip,
    new_database,
    store_in_database,
)
from tests.test_store import enqueue

T0 = 1_767_225_600.0

pytestmark = pytest.mark.slow  # the first PostgreSQL test starts the session's server


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    store = await Database.open(PostgresUrl(postgres_url))
    yield store
    await store.close()


def sqlite_columns() -> dict[str, set[str]]:
    conn = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        conn.executescript(script)
    tables = [
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {t: {str(row[1]) for row in conn.execute(f"PRAGMA table_info({t})")} for t in tables}


def test_postgres_migrations_reach_the_sqlite_schema_version() -> None:
    """A schema change is written for both backends: the PostgreSQL set ends where SQLite's does."""
    assert max(schema_postgres.MIGRATIONS) == SCHEMA_VERSION
    assert min(schema_postgres.MIGRATIONS) == schema_postgres.BASELINE


async def test_both_backends_hold_the_same_tables_and_columns(pg: Database) -> None:
    """The same logical schema: every table and column of the SQLite store, and no other
    (besides the schema version table and the explicit rowid columns SQLite has implicitly)."""
    rows = (
        pg.reader()
        .execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
        .fetchall()
    )
    held: dict[str, set[str]] = {}
    for table, column in rows:
        if table not in ("store_schema", "sqlite_sequence") and column != "rowid":
            held.setdefault(str(table), set()).add(str(column))
    assert held == sqlite_columns()


def test_placeholders_are_translated_outside_literals_only() -> None:
    """``?`` in a quoted literal stays; ``%`` is escaped; numbered ``?N`` keep their order."""
    assert translate("SELECT '?', x FROM t WHERE a = ? AND b LIKE 'a%'") == (
        "SELECT '?', x FROM t WHERE a = %s AND b LIKE 'a%%'",
        None,
    )
    assert translate("WHERE (?1 IS NULL OR s = ?1) AND ?2 = t") == (
        "WHERE (%s IS NULL OR s = %s) AND %s = t",
        (0, 0, 1),
    )


def test_a_url_is_a_database_and_anything_else_a_file() -> None:
    """``--store`` and ``[store] url`` tell a database from a file by the scheme; a shown URL
    never carries its password."""
    assert store_location("postgres://u@h/db") == PostgresUrl("postgres://u@h/db")
    assert store_location("node.db") == Path("node.db")
    assert str(PostgresUrl("postgresql://u:secret@h:5/db")) == "postgresql://u:***@h:5/db"


async def test_two_writers_on_one_database_both_commit_everything(postgres_url: str) -> None:
    """Two Database objects (two processes' worth) writing at once: every row of each is
    stored, each writer's own rows in its submission order, no seq given twice."""
    first = await Database.open(PostgresUrl(postgres_url))
    second = await Database.open(PostgresUrl(postgres_url))
    try:
        seqs = await asyncio.gather(
            *(first.write(enqueue("jiangsu", f"a{i}")) for i in range(100)),
            *(second.write(enqueue("jiangsu", f"b{i}")) for i in range(100)),
        )
        assert len(set(seqs)) == 200
        assert seqs[:100] == sorted(seqs[:100]) and seqs[100:] == sorted(seqs[100:])
        stored = outbox.pending_batch(first.reader(), "jiangsu", 500)
        assert {item.message_id for item in stored} == {f"a{i}" for i in range(100)} | {
            f"b{i}" for i in range(100)
        }
    finally:
        await first.close()
        await second.close()


def wait_for_lock_waiter(url: str) -> None:
    """Until a session of ``url``'s database waits on a row lock (the second writer)."""
    name = url.rsplit("/", 1)[1]
    deadline = time.monotonic() + BUDGET
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND wait_event_type = 'Lock'",
                (name,),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second writer never waited for the first")


async def test_the_same_inbound_message_at_two_writers_is_stored_once_with_one_reply(
    postgres_url: str,
) -> None:
    """Two replicas receive the same message at once: the second one's insert waits for the
    first to commit, finds the message stored, and answers with the first one's reply."""
    first = await Database.open(PostgresUrl(postgres_url))
    second = await Database.open(PostgresUrl(postgres_url))
    inserted = threading.Event()

    def receive(reply: bytes, *, hold: bool) -> Callable[[Connection], tuple[bytes, bool]]:
        def job(conn: Connection) -> tuple[bytes, bool]:
            try:
                inbox.record(
                    conn,
                    sender="jiangsu",
                    message_id="m-1",
                    digest=b"\x02" * 32,
                    payload_type="probe",
                    envelope=b"envelope",
                    reply=reply,
                    received_at=T0,
                )
            except DuplicateEntry:
                prior = inbox.prior(conn, "jiangsu", "m-1")
                assert prior is not None
                return prior.reply, False
            if hold:
                inserted.set()
                wait_for_lock_waiter(postgres_url)
            return reply, True

        return job

    try:
        winner = first.submit(receive(b"reply from the first", hold=True))
        await asyncio.to_thread(inserted.wait, BUDGET)
        loser = second.submit(receive(b"reply from the second", hold=False))
        assert await winner == (b"reply from the first", True)
        assert await loser == (b"reply from the first", False)
        assert inbox.count(first.reader()) == 1
    finally:
        await first.close()
        await second.close()


async def test_database_lost_while_running_refuses_writes_then_recovers(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The database goes away under a running store: writes fail with StoreUnavailable and
    leave nothing, the store says why; when it is back, the same Database writes and reads
    again without a restart."""
    db = await Database.open(PostgresUrl(postgres_url))
    name = postgres_url.rsplit("/", 1)[1]
    try:
        await db.write(enqueue("jiangsu", "before"))
        with postgres_server.admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        with pytest.raises(StoreUnavailable):
            await db.write(enqueue("jiangsu", "lost"))
        assert db.write_problem() is not None
        with postgres_server.admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await db.write(enqueue("jiangsu", "after"))
        assert db.write_problem() is None
        held = [item.message_id for item in outbox.pending_batch(db.reader(), "jiangsu", 10)]
        assert held == ["before", "after"]
    finally:
        await db.close()


async def test_an_unreachable_database_at_start_is_a_clear_error() -> None:
    """No server at the URL: StoreUnavailable naming the database, password hidden."""
    url = PostgresUrl(f"postgresql://yrd:secret@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(StoreUnavailable, match="cannot reach the store database") as refused:
        await Database.open(url)
    assert "secret" not in str(refused.value)
    # The URL as text is a database too, never a file named after it.
    with pytest.raises(StoreUnavailable, match="cannot reach the store database"):
        await Database.open(url.url)


def test_a_node_on_an_unreachable_database_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yrd node run`` with ``[store] url`` pointing nowhere stops with a message, exit 1."""
    config = make_mesh(tmp_path) / "shanghai" / "node.toml"
    store_in_database(config, f"postgresql://yrd@127.0.0.1:{free_port()}/nowhere")
    assert main(["node", "run", "--config", str(config)]) != 0
    assert "cannot reach the store database" in capsys.readouterr().err


async def test_a_foreign_database_is_refused_and_left_untouched(postgres_url: str) -> None:
    """A database with tables of its own but no node schema is not written into."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER)")
    with pytest.raises(StoreError, match="not a node store"):
        await Database.open(PostgresUrl(postgres_url))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert tables == [("accounts",)]


async def test_a_newer_schema_is_refused(pg: Database, postgres_url: str) -> None:
    """A database written by a newer node is refused, never downgraded."""
    await pg.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE store_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than version"):
        await Database.open(PostgresUrl(postgres_url))


async def test_replicas_of_one_node_share_a_database_and_no_other_process_does(
    postgres_url: str,
) -> None:
    """Replicas (the same node id) hold the store together; a node of another identity is
    refused while they run, and so is a tool that takes the store alone (``yrd audit
    purge``), which in turn keeps every node out while it works."""
    url = PostgresUrl(postgres_url)
    first = StoreLock(url, identity="node-310000")
    second = StoreLock(url, identity="node-310000")
    other = StoreLock(url, identity="node-320000")
    alone = StoreLock(url)
    first.acquire()
    second.acquire()
    try:
        with pytest.raises(StoreInUse, match="another identity than node-320000"):
            other.acquire()
        with pytest.raises(StoreInUse, match="in use by another node process"):
            alone.acquire()
    finally:
        first.release()
        second.release()
    alone.acquire()
    try:
        with pytest.raises(StoreInUse, match="in use by another node process"):
            first.acquire()
    finally:
        alone.release()
    other.acquire()
    other.release()


def _config_with(tmp_path: Path, store_lines: str, *, keep_file: bool) -> Path:
    config = make_mesh(tmp_path) / "shanghai" / "node.toml"
    text = config.read_text()
    if not keep_file:
        text = text.replace('store = "node.db"\n', "")
    config.write_text(text + "\n" + store_lines)
    return config


def test_the_store_url_is_read_from_the_store_section(tmp_path: Path) -> None:
    """``[store] url`` puts the node's store in a PostgreSQL database."""
    url = "postgresql://yrd@db.example:5432/shanghai"
    config_file = make_mesh(tmp_path) / "shanghai" / "node.toml"
    store_in_database(config_file, url)
    config = load_config(config_file, {})
    assert config.paths.store == PostgresUrl(url)


@pytest.mark.parametrize(
    ("lines", "keep_file", "refusal"),
    [
        ('[store]\nurl = "postgresql://h/db"\n', True, "both \\[paths\\] 'store' and"),
        ("", False, "missing the store"),
        ('[store]\nurl = "node.db"\n', False, "must be a postgresql:// URL"),
        ('[store]\npath = "x.db"\n', False, "unknown key 'path'"),
    ],
    ids=["both", "neither", "not-a-url", "unknown-key"],
)
def test_a_store_given_twice_or_not_at_all_is_refused(
    tmp_path: Path, lines: str, keep_file: bool, refusal: str
) -> None:
    """Exactly one store: a file or a URL, named as the message says."""
    with pytest.raises(ConfigError, match=refusal):
        load_config(_config_with(tmp_path, lines, keep_file=keep_file), {})


def test_a_missing_server_skips_on_a_workstation_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the postgresql package the PostgreSQL tests skip, unless CI=true: then they
    fail, naming the package."""

    def absent() -> None:
        return None

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package postgresql"):
        missing_server_is_a_skip(absent)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="installs Debian's postgresql package"):
        missing_server_is_a_skip(absent)


async def test_two_writers_append_one_unbroken_evidence_chain(postgres_url: str) -> None:
    """Two Database objects appending evidence at once: the head is locked while one appends,
    so every entry lands in one chain that verifies, none lost or numbered twice."""
    first = await Database.open(PostgresUrl(postgres_url))
    second = await Database.open(PostgresUrl(postgres_url))
    manifest = make_federation().signed()

    def entry(writer: str, i: int) -> Callable[[Connection], object]:
        return lambda conn: audit.append(
            conn,
            direction="local",
            peer="",
            message_id=f"manifest-{writer}-{i}",
            kind="manifest",
            body=manifest,
            recorded_at=T0 + i,
        )

    try:
        await asyncio.gather(
            *(first.write(entry("a", i)) for i in range(60)),
            *(second.write(entry("b", i)) for i in range(60)),
        )
        report = audit.verify_chain(first.reader())
        assert (report.ok, report.entries) == (True, 120), report.reason
    finally:
        await first.close()
        await second.close()


async def test_each_store_has_an_id_of_its_own_that_never_changes(
    store_location: StoreLocation, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """A new store gets a random id (32 hex digits) that it keeps when opened again; another
    new store, on either backend, gets another."""
    db = await Database.open(store_location)
    made = db.store_id
    await db.close()
    assert len(made) == 32 and int(made, 16) >= 0
    again = await Database.open(store_location)
    try:
        assert again.store_id == made
        assert read_store_id(again.reader()) == made
    finally:
        await again.close()
    others = [tmp_path / "other.db", PostgresUrl(new_database(postgres_server))]
    for location in others:
        other = await Database.open(location)
        assert other.store_id != made
        await other.close()


async def test_a_store_made_before_store_ids_gets_one_when_opened(
    store_location: StoreLocation,
) -> None:
    """A store of schema version 15 (before ``store_meta``) is given its id by the migration
    that makes the table, once, and keeps everything it held."""
    db = await Database.open(store_location)
    await db.write(enqueue("jiangsu", "kept"))
    await db.close()
    older = "DROP TABLE store_meta"
    if isinstance(store_location, PostgresUrl):
        with psycopg.connect(store_location.url, autocommit=True) as conn:
            conn.execute(older)
            conn.execute("UPDATE store_schema SET version = 15")
    else:
        with sqlite3.connect(store_location) as conn:
            conn.execute(older)
            conn.execute("PRAGMA user_version = 15")
    db = await Database.open(store_location)
    try:
        assert len(db.store_id) == 32
        held = [item.message_id for item in outbox.pending_batch(db.reader(), "jiangsu", 10)]
        assert held == ["kept"]
    finally:
        await db.close()
    reopened = await Database.open(store_location)
    try:
        assert reopened.store_id == db.store_id
    finally:
        await reopened.close()


async def test_a_stores_id_is_read_without_opening_it(store_location: StoreLocation) -> None:
    """``held_store_id`` reads a store's id and changes nothing: None (and still no store)
    where there is none yet, the id once there is one."""
    assert await held_store_id(store_location) is None
    if isinstance(store_location, PostgresUrl):
        with psycopg.connect(store_location.url, autocommit=True) as conn:
            (tables,) = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone() or (None,)
        assert tables == 0
    else:
        assert not await asyncio.to_thread(Path(store_location).exists)
    db = await Database.open(store_location)
    try:
        assert await held_store_id(store_location) == db.store_id
    finally:
        await db.close()
    assert await held_store_id(str(store_location)) == db.store_id


async def test_an_unreachable_database_has_no_id_to_read() -> None:
    """Reading the id of a store on a server that is not there is the same clear error as
    opening it."""
    url = PostgresUrl(f"postgresql://yrd@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(StoreUnavailable, match="cannot reach the store database"):
        await held_store_id(url)

"""``yrd outbox list|retry`` run in-process through ``main(argv)`` against a real store (a
SQLite file, or a PostgreSQL database named by ``[store] url``): what waits, what is parked,
and putting parked messages back in line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from node.runtime.config import load_config
from node.store import outbox
from node.store.audit import read_only
from node.store.connection import Connection, PostgresUrl, StoreLocation
from node.store.database import Database
from tests.nodes import make_mesh
from tests.postgres import store_in_database

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PARK_REASON = "payload_not_allowed: the manifest policy does not allow this node to send probe"
DOWN = "UNAVAILABLE: failed to connect to all addresses; last error: connection refused"


@dataclass(frozen=True)
class Store:
    """shanghai's node.toml and the seqs of the rows put in its store."""

    config: Path
    path: StoreLocation
    pending: list[int]
    """p0 (never tried) and p1 (one failed attempt), to jiangsu."""
    dead: list[int]
    """d0 to jiangsu (refused) and d1 to zhejiang (expired)."""
    delivered: int


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``yrd ARGV`` in-process: its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def contents(path: StoreLocation) -> list[list[tuple[Any, ...]]]:
    """Every outbox row and cursor, read with a connection of its own."""
    with read_only(path) as conn:
        return [
            [tuple(r) for r in conn.execute("SELECT * FROM outbox ORDER BY seq").fetchall()],
            [tuple(r) for r in conn.execute("SELECT * FROM peer_cursor ORDER BY peer").fetchall()],
        ]


def row(path: StoreLocation, seq: int) -> outbox.OutboxItem:
    with read_only(path) as conn:
        [found] = [i for i in outbox.list_items(conn, limit=100) if i.seq == seq]
        return found


async def populate(path: StoreLocation) -> tuple[list[int], list[int], int]:
    db = await Database.open(path)
    try:

        def add(peer: str, message_id: str) -> Callable[[Connection], int]:
            def job(conn: Connection) -> int:
                return outbox.enqueue(
                    conn,
                    peer=peer,
                    message_id=message_id,
                    payload_type="probe",
                    envelope=b"envelope:" + message_id.encode(),
                    digest=b"\x01" * 32,
                    created_at=T0,
                )

            return job

        delivered = await db.write(add("jiangsu", "x0"))
        d0 = await db.write(add("jiangsu", "d0"))
        p0 = await db.write(add("jiangsu", "p0"))
        p1 = await db.write(add("jiangsu", "p1"))
        d1 = await db.write(add("zhejiang", "d1"))
        await db.write(lambda c: outbox.mark_delivered(c, delivered, reply=b"receipt", at=T0 + 1))
        await db.write(lambda c: outbox.dead_letter(c, d0, reason=PARK_REASON, at=T0 + 1))
        await db.write(lambda c: outbox.mark_failed_attempt(c, [p1], error=DOWN, at=T0 + 2))
        await db.write(
            lambda c: outbox.dead_letter_expired(c, "zhejiang", older_than=T0 + 10, at=T0 + 20)
        )
        return [p0, p1], [d0, d1], delivered
    finally:
        await db.close()


@pytest.fixture
def store(tmp_path: Path, store_location: StoreLocation) -> Store:
    mesh = make_mesh(tmp_path, ("shanghai", "jiangsu", "zhejiang"))
    config = mesh / "shanghai" / "node.toml"
    if isinstance(store_location, PostgresUrl):
        store_in_database(config, store_location.url)
    path = load_config(config, {}).paths.store
    assert path == (
        store_location if isinstance(store_location, PostgresUrl) else mesh / "shanghai" / "node.db"
    )
    pending, dead, delivered = asyncio.run(populate(path))
    return Store(config, path, pending, dead, delivered)


def table_rows(out: str) -> list[list[str]]:
    """The cells of a printed table's data rows (columns are two or more spaces apart)."""
    lines = out.rstrip("\n").split("\n")
    assert lines[0].split() == [
        "seq",
        "peer",
        "type",
        "state",
        "created",
        "attempts",
        "last",
        "error",
    ]
    assert set(lines[1]) <= {"-", " "}
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[2:]]


def test_list_prints_pending_then_dead_rows_as_a_table(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """``outbox list`` shows every pending and every dead row (not delivered ones) with peer,
    type, state, creation time, attempts and the last error, shortened to fit."""
    code, out, err = run(capsys, "outbox", "list", "--config", str(store.config))

    assert code == 0, err
    assert err == ""
    p0, p1 = store.pending
    d0, d1 = store.dead
    assert table_rows(out) == [
        [str(p0), "jiangsu", "probe", "pending", "2026-01-01T00:00:00Z", "0"],
        [str(p1), "jiangsu", "probe", "pending", "2026-01-01T00:00:00Z", "1", DOWN[:60]],
        [str(d0), "jiangsu", "probe", "dead", "2026-01-01T00:00:00Z", "0", PARK_REASON[:60]],
        [
            str(d1),
            "zhejiang",
            "probe",
            "dead",
            "2026-01-01T00:00:00Z",
            "0",
            outbox.EXPIRED_REASON,
        ],
    ]
    assert str(store.delivered) not in [cells[0] for cells in table_rows(out)]


def test_list_json_parses_and_filters_by_state_and_peer(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """``outbox list --json`` prints a JSON array of the rows, and --state and --peer narrow
    it (--state delivered shows delivered rows)."""
    code, out, err = run(capsys, "outbox", "list", "--config", str(store.config), "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [(i["seq"], i["state"]) for i in listed] == [
        (store.pending[0], "pending"),
        (store.pending[1], "pending"),
        (store.dead[0], "dead"),
        (store.dead[1], "dead"),
    ]
    assert listed[1] == {
        "seq": store.pending[1],
        "peer": "jiangsu",
        "message_id": "p1",
        "type": "probe",
        "state": "pending",
        "created_at": "2026-01-01T00:00:00Z",
        "attempts": 1,
        "last_error": DOWN,
    }

    def seqs(*options: str) -> list[int]:
        code, out, err = run(
            capsys, "outbox", "list", "--config", str(store.config), "--json", *options
        )
        assert code == 0, err
        return [item["seq"] for item in json.loads(out)]

    assert seqs("--state", "dead") == store.dead
    assert seqs("--peer", "zhejiang") == [store.dead[1]]
    assert seqs("--state", "delivered") == [store.delivered]
    assert seqs("--peer", "anhui") == []


def test_retry_puts_a_dead_row_back_in_line(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """``outbox retry SEQ`` makes that dead row pending again with no attempts, says how many
    went back, and leaves every other row alone."""
    d0, d1 = store.dead
    before = contents(store.path)

    code, out, err = run(capsys, "outbox", "retry", "--config", str(store.config), str(d0))

    assert code == 0, err
    assert out == "1 message(s) back in line for delivery\n"
    retried = row(store.path, d0)
    assert (retried.state, retried.attempts, retried.dead_at) == ("pending", 0, None)
    assert retried.last_error == PARK_REASON, "the reason it was parked stays visible"
    assert row(store.path, d1).state == "dead"
    others_before = [r for r in before[0] if r[0] != d0]
    assert [r for r in contents(store.path)[0] if r[0] != d0] == others_before

    code, out, err = run(capsys, "outbox", "list", "--config", str(store.config), "--json")
    assert code == 0, err
    assert {i["seq"]: i["state"] for i in json.loads(out)}[d0] == "pending"


def test_retry_by_peer_puts_back_all_its_dead_rows(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """``outbox retry --peer P`` puts back every dead row of that peer and no other."""
    code, out, err = run(
        capsys, "outbox", "retry", "--config", str(store.config), "--peer", "zhejiang"
    )

    assert code == 0, err
    assert out == "1 message(s) back in line for delivery\n"
    assert row(store.path, store.dead[1]).state == "pending"
    assert row(store.path, store.dead[0]).state == "dead"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["999"],
            "yrd: nothing retried: no parked (dead-lettered) message matches seq 999; "
            "see `yrd outbox list --state dead`\n",
            id="unknown-seq",
        ),
        pytest.param(
            ["{pending}", "999"],
            "matches seq {pending}, 999;",
            id="pending-seq",
        ),
        pytest.param(
            ["--peer", "zhejiang", "{dead}"],
            "matches seq {dead} and peer zhejiang;",
            id="dead-seq-of-another-peer",
        ),
        pytest.param([], "name outbox sequence numbers or --peer", id="no-arguments"),
    ],
)
def test_retry_that_matches_nothing_fails_clearly_and_changes_nothing(
    store: Store, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A retry naming no dead row (or nothing at all) exits non-zero, says why on stderr, and
    leaves the store exactly as it was."""
    seqs = {"pending": store.pending[0], "dead": store.dead[0]}
    argv = [arg.format(**seqs) for arg in argv]
    message = message.format(**seqs)
    before = contents(store.path)

    code, out, err = run(capsys, "outbox", "retry", "--config", str(store.config), *argv)

    assert code != 0
    assert err.startswith("yrd: ")
    assert message in err
    assert "back in line" not in out
    assert contents(store.path) == before


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_list_refuses_a_limit_below_one(
    store: Store, capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    """``outbox list --limit`` below 1 is refused with a message naming the option."""
    code, out, err = run(capsys, "outbox", "list", "--config", str(store.config), "--limit", limit)

    assert code != 0
    assert out == ""
    assert err == "yrd: --limit must be at least 1\n"


def test_missing_config_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --config that does not exist is named in a clear error, and no store is created."""
    missing = tmp_path / "nowhere" / "node.toml"
    for action in (["list"], ["retry", "1"]):
        code, out, err = run(capsys, "outbox", *action, "--config", str(missing))
        assert code != 0
        assert out == ""
        assert err.startswith("yrd: cannot read config") and str(missing) in err
    assert not (tmp_path / "nowhere").exists()

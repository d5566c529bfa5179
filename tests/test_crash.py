"""SIGKILL at any moment loses and duplicates nothing (DESIGN.md §5), with real processes."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from node.cli.mesh_auth import mesh_session
from node.protocol.checks import check_reply
from node.store import outbox
from node.store.audit import verify_store
from node.trust.layout import read_manifest
from node.wire import pb
from tests.nodes import config_for, eventually, make_mesh, running
from tests.processes import http, process, start_process, wait_ready

pytestmark = pytest.mark.slow


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def inbox_ids(store: Path) -> list[str]:
    with read_only(store) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT message_id FROM inbox WHERE payload_type = 'probe' ORDER BY rowid"
            )
        ]


def assert_receipts_held(mesh: Path, sender_store: Path, expected: int) -> None:
    """Every outbox row is delivered, and its reply is a signed receipt for exactly it."""
    manifest = read_manifest(mesh)
    with read_only(sender_store) as conn:
        rows = [
            r for r in outbox.list_items(conn, limit=expected + 10) if r.payload_type == "probe"
        ]
    assert len(rows) == expected
    for row in rows:
        assert row.state == "delivered", (row.seq, row.state, row.last_error)
        assert row.reply is not None
        reply = check_reply(
            row.reply,
            peer="node-320000",
            manifest=manifest,
            me="node-310000",
            now=time.time(),
            request_id=row.message_id,
            request_digest=row.digest,
        )
        assert reply.payload_type == "receipt"
        assert reply.message.receipt.digest == row.digest


async def test_receiver_killed_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """1,000 messages; the receiving process is SIGKILLed mid-stream and restarted; each
    message ends up received exactly once and the sender holds a receipt for every one."""
    mesh = make_mesh(tmp_path)
    receiver_store = mesh / "jiangsu" / "node.db"
    total = 1000
    receiver = start_process(mesh, "jiangsu")
    wait_ready(mesh, "jiangsu", receiver)
    async with running(config_for(mesh, "shanghai")) as sh:
        sent: list[str] = []
        for chunk in range(10):
            sent += await sh.send(
                "jiangsu", [("probe", pb.Probe(sequence=chunk * 100 + i)) for i in range(100)]
            )
        await eventually(lambda: len(inbox_ids(receiver_store)) >= 200, interval=0.005)
        receiver.send_signal(signal.SIGKILL)
        receiver.wait(timeout=10)
        received_before_kill = len(inbox_ids(receiver_store))
        assert received_before_kill < total, "the kill came too late to test anything"
        with process(mesh, "jiangsu"):
            await eventually(lambda: outbox.depth(sh.db.reader(), "jiangsu")[0] == 0, timeout=60)
    ids = inbox_ids(receiver_store)
    assert len(ids) == total
    assert sorted(ids) == sorted(sent)
    assert_receipts_held(mesh, mesh / "shanghai" / "node.db", total)
    for province in ("shanghai", "jiangsu"):
        report = verify_store(mesh / province / "node.db")
        assert report.ok, (province, report.reason)


async def test_sender_killed_mid_backlog_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """The sending process is SIGKILLed while draining 1,000 accepted messages; after a
    restart it delivers the rest, and the receiver holds each exactly once."""
    mesh = make_mesh(tmp_path)
    receiver_store = mesh / "jiangsu" / "node.db"
    async with running(config_for(mesh, "jiangsu")):
        sender = start_process(mesh, "shanghai")
        wait_ready(mesh, "shanghai", sender)
        accepted: list[str] = []
        async with mesh_session(mesh) as session:
            for _ in range(10):
                async with session.post(
                    http(mesh, "shanghai") + "/v1/probes", json={"peer": "jiangsu", "count": 100}
                ) as response:
                    assert response.status == 202
                    accepted += (await response.json())["message_ids"]
        # A 202 means committed: whatever happens next, these must all arrive.
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=10)
        assert len(inbox_ids(receiver_store)) < len(accepted), "the kill came too late"
        with process(mesh, "shanghai"):
            await eventually(lambda: len(inbox_ids(receiver_store)) >= len(accepted), timeout=60)
            await eventually(lambda: _pending(mesh / "shanghai" / "node.db") == 0, timeout=30)
    ids = inbox_ids(receiver_store)
    assert len(ids) == len(set(ids)) == len(accepted)
    assert set(ids) == set(accepted)
    assert_receipts_held(mesh, mesh / "shanghai" / "node.db", len(accepted))


def _pending(store: Path) -> int:
    with read_only(store) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE state='pending'").fetchone()[0])

"""What a witness shows its own operator about the peers' logs it witnesses, and what a node
shows about its own log's tree: when it last cosigned each peer's log, the heads of it other
witnesses showed it that the peer has not proven yet (how many, and the oldest one's age),
and the entries of its own log the tree does not cover. All read from the store at scrape
time, so a restart keeps them and every replica shows the same. In-process nodes over real
mutual-TLS gRPC; the alert rules on these series are unit-tested with promtool
(``monitoring/prometheus/tests/alerts_test.yml``)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from node.runtime.node import Node
from node.store import checkpoints, log_tree
from tests.nodes import BUDGET, config_for, eventually, make_mesh, running
from tests.test_checkpoints import QUIET, traffic
from tests.test_witness_gossip import EVERYONE, zhejiang_misses_a_head

pytestmark = pytest.mark.timeout(BUDGET * 4)

THREE = ("shanghai", "jiangsu", "zhejiang")
COSIGNED_AT = "yrd_witnessed_log_cosigned_timestamp_seconds"
PENDING = "yrd_witnessed_heads_pending"
PENDING_AGE = "yrd_witnessed_heads_pending_oldest_age_seconds"
UNCOVERED = "yrd_evidence_entries_uncovered"


def sample(node: Node, name: str, peer: str | None = None) -> float | None:
    """One series of ``node``'s /metrics as a scrape reads it (None when absent)."""
    labels = {} if peer is None else {"peer": peer}
    return node.metrics.registry.get_sample_value(name, labels)


async def watching(node: Node) -> None:
    """Until the witness series are exported (from the checkpoint task's first step)."""
    await eventually(lambda: sample(node, UNCOVERED) is not None)


def pending(node: Node, origin: str = "shanghai") -> tuple[float | None, float | None]:
    return sample(node, PENDING, origin), sample(node, PENDING_AGE, origin)


async def test_a_witness_exports_when_it_last_cosigned_each_peer_and_a_restart_keeps_it(
    tmp_path: Path,
) -> None:
    """Before Shanghai sends a checkpoint, Jiangsu exports no cosignature time for its log
    (its alert then counts from Jiangsu's start) and nothing pending; each checkpoint it
    cosigns sets the time to that cosignature's, as its store holds it; and started again,
    Jiangsu exports the same time rather than forgetting it or taking its start for one."""
    mesh = make_mesh(tmp_path)
    jiangsu_config = config_for(mesh, "jiangsu", **QUIET)
    async with running(config_for(mesh, "shanghai", **QUIET)) as shanghai:
        async with running(jiangsu_config) as jiangsu:
            await watching(jiangsu)
            assert sample(jiangsu, COSIGNED_AT, "shanghai") is None
            assert sample(jiangsu, "yrd_checkpoint_witness_since_timestamp_seconds", "shanghai")
            assert pending(jiangsu) == (0.0, 0.0)
            assert sample(jiangsu, UNCOVERED) == 0.0
            await traffic(shanghai, jiangsu, 2)
            before = time.time()
            assert (await shanghai.checkpoints.checkpoint())["jiangsu"] == "cosigned"
            after = time.time()
            first = sample(jiangsu, COSIGNED_AT, "shanghai")
            held = checkpoints.latest_witnessed(jiangsu.db.reader(), "shanghai", "jiangsu")
            assert held is not None and first == held.cosigned_at
            assert first is not None and before <= first <= after
            # Shanghai witnesses Jiangsu's log, which has sent it no checkpoint yet.
            await watching(shanghai)
            assert sample(shanghai, COSIGNED_AT, "jiangsu") is None
            await traffic(shanghai, jiangsu, 1)
            assert (await shanghai.checkpoints.checkpoint())["jiangsu"] == "cosigned"
            second = sample(jiangsu, COSIGNED_AT, "shanghai")
            assert second is not None and second > first
        async with running(jiangsu_config) as jiangsu:
            await watching(jiangsu)
            assert sample(jiangsu, COSIGNED_AT, "shanghai") == second
            assert pending(jiangsu) == (0.0, 0.0)


async def test_a_head_another_witness_showed_is_pending_with_its_age_until_its_log_proves_it(
    tmp_path: Path,
) -> None:
    """Zhejiang misses a checkpoint of Shanghai's log that Jiangsu cosigned and cosigns a
    later one; once Jiangsu shows it the head it missed, Zhejiang exports one pending head
    of Shanghai's log, as old as Jiangsu's cosignature of it, and none of Jiangsu's;
    Shanghai's next checkpoint is cosigned asking for the proof (still pending, cosignature
    time moved on), and the one after proves it: nothing pending, age 0."""
    mesh = make_mesh(tmp_path, THREE)
    jiangsu_config = config_for(mesh, "jiangsu", **QUIET)
    zhejiang_config = config_for(mesh, "zhejiang", **QUIET)
    async with running(config_for(mesh, "shanghai", **QUIET)) as shanghai:
        missed = await zhejiang_misses_a_head(shanghai, jiangsu_config, zhejiang_config)
        async with running(jiangsu_config) as jiangsu, running(zhejiang_config) as zhejiang:
            await watching(zhejiang)
            assert pending(zhejiang) == (0.0, 0.0)
            await eventually(lambda: jiangsu.peers.link("zhejiang").up)
            assert (await jiangsu.checkpoints.heads.gossip())["zhejiang"] == "received"
            before = time.time()
            count, age = pending(zhejiang)
            after = time.time()
            assert count == 1
            # Aged from the time Jiangsu signed in its cosignature (milliseconds).
            signed = missed.cosignature.cosigned_at_ms / 1000
            assert age is not None and before - signed <= age <= after - signed
            assert pending(zhejiang, "jiangsu") == (0.0, 0.0)
            last = sample(zhejiang, COSIGNED_AT, "shanghai")
            assert last is not None
            await eventually(lambda: shanghai.peers.link("zhejiang").up)
            await eventually(lambda: shanghai.peers.link("jiangsu").up)
            assert await shanghai.checkpoints.checkpoint() == EVERYONE
            assert pending(zhejiang)[0] == 1
            now = sample(zhejiang, COSIGNED_AT, "shanghai")
            assert now is not None and now > last
            assert await shanghai.checkpoints.checkpoint() == EVERYONE
            assert pending(zhejiang) == (0.0, 0.0)


def break_link(store: Path) -> int:
    """What an insider with the file can do: change the body of the log's first message
    entry (triggers dropped) and drop the tree, which the node rebuilds from the entries as
    it starts. Returns that entry's seq."""
    with closing(sqlite3.connect(store)) as conn, conn:
        seq, body = conn.execute(
            "SELECT seq, body FROM audit WHERE kind = 'envelope' ORDER BY seq LIMIT 1"
        ).fetchone()
        for trigger in ("audit_no_update", "audit_tree_no_delete"):
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("UPDATE audit SET body = ? WHERE seq = ?", (bytes(body) + b"\x00", seq))
        conn.execute("DELETE FROM audit_tree")
    return int(seq)


async def test_entries_past_a_broken_link_are_counted_as_outside_the_tree(
    tmp_path: Path,
) -> None:
    """Shanghai's log with an entry changed behind its back: started again, its tree stops
    before that entry and grows no more, and the entries past it, counting the ones appended
    since, are exported as uncovered (Jiangsu's, intact, as none)."""
    mesh = make_mesh(tmp_path)
    shanghai_config = config_for(mesh, "shanghai", **QUIET)
    jiangsu_config = config_for(mesh, "jiangsu", **QUIET)
    async with running(shanghai_config) as shanghai, running(jiangsu_config) as jiangsu:
        await traffic(shanghai, jiangsu, 3)
        await watching(shanghai)
        assert sample(shanghai, UNCOVERED) == 0.0
    store = shanghai_config.paths.store
    assert isinstance(store, Path)
    broken = break_link(store)
    async with running(shanghai_config) as shanghai, running(jiangsu_config) as jiangsu:
        reader = shanghai.db.reader()
        assert log_tree.tree_size(reader) == broken - 1

        def past_the_tree() -> int:
            (entries,) = reader.execute("SELECT count(*) FROM audit").fetchone()
            return int(entries) - (broken - 1)

        await watching(shanghai)
        before = past_the_tree()
        assert before > 0 and sample(shanghai, UNCOVERED) == before
        await traffic(shanghai, jiangsu, 2)
        assert past_the_tree() > before and sample(shanghai, UNCOVERED) == past_the_tree()
        assert log_tree.tree_size(reader) == broken - 1
        await watching(jiangsu)
        assert sample(jiangsu, UNCOVERED) == 0.0

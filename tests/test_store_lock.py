"""One node process per store: a second node on the same store is refused, not run twice."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from node.mesh.processes import node_run_command
from node.runtime.node import Node
from node.store.lock import StoreInUse
from tests.nodes import BUDGET, config_for, make_mesh, running
from tests.processes import process


async def test_second_node_on_the_same_store_is_refused(tmp_path: Path) -> None:
    """While a node runs, another on its store fails to start naming the holder; once the
    first stops, the store can be opened again."""
    mesh = make_mesh(tmp_path)
    config = config_for(mesh, "shanghai")
    async with running(config):
        second = Node(config)
        with pytest.raises(StoreInUse, match="in use by another node process"):
            await second.start()
    async with running(config) as again:
        assert again.health.readiness()["store"] == "ok"


@pytest.mark.slow
def test_second_process_on_the_same_store_exits_with_a_clear_message(tmp_path: Path) -> None:
    """A second `yrd node run` with the same config exits non-zero saying the store is in
    use, and the first keeps running."""
    mesh = make_mesh(tmp_path)
    with process(mesh, "shanghai") as first:
        result = subprocess.run(
            node_run_command(mesh / "shanghai" / "node.toml"),
            capture_output=True,
            text=True,
            timeout=BUDGET / 2,
        )
        assert result.returncode != 0
        assert "in use by another node process" in result.stderr
        assert f"pid {first.pid}" in result.stderr
        assert first.poll() is None

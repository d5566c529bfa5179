"""A link's "last success" (the last exchange with the peer that went through: a receipted
heartbeat or a delivered batch), on real nodes: current while heartbeats flow, and not blank
after a restart."""

from __future__ import annotations

from pathlib import Path

from node.store import outbox
from node.wire import pb
from tests.nodes import config_for, eventually, make_mesh, running, settled


async def test_heartbeats_keep_last_success_current(tmp_path: Path) -> None:
    """With nothing to deliver, receipted heartbeats alone move the link's last success on."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "shanghai")) as sh,
        running(config_for(mesh, "jiangsu")) as js,
    ):
        await eventually(lambda: settled(sh, js))
        link = sh.peers.link("jiangsu")
        assert link.last_success_at is not None
        seen = link.last_success_at
        await eventually(lambda: (link.last_success_at or 0.0) > seen)
        assert outbox.depth(sh.db.reader(), "jiangsu")[0] == 0
        shown = sh.health.status()["peers"]
        assert isinstance(shown, list) and shown[0]["last_success_at"] is not None


async def test_a_restarted_node_remembers_its_last_delivery(tmp_path: Path) -> None:
    """Restarted while its peer is down, a node shows the time of its last delivery to that
    peer from its store as the link's last success, not nothing."""
    mesh = make_mesh(tmp_path)
    async with running(config_for(mesh, "shanghai")) as sh, running(config_for(mesh, "jiangsu")):
        [sent] = await sh.courier.send("jiangsu", [("probe", pb.Probe(sequence=1))])

        def delivered() -> bool:
            item = outbox.get(sh.db.reader(), sent)
            return item is not None and item.state == "delivered"

        await eventually(delivered)
        item = outbox.get(sh.db.reader(), sent)
        assert item is not None and item.delivered_at is not None
        delivered_at = item.delivered_at
    async with running(config_for(mesh, "shanghai")) as again:
        link = again.peers.link("jiangsu")
        assert not link.up
        assert link.last_success_at == delivered_at
        [shown] = again.health.status()["peers"]  # type: ignore[misc]
        assert shown["last_success_at"] is not None

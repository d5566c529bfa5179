"""One member flooding a node's federation port cannot starve the node's other peers.

Three real node processes (Shanghai, Jiangsu, Zhejiang) of a four-member federation; this
test holds Anhui's credentials and, for ``FLOOD_SECONDS``, keeps 200 streams of malformed
envelopes and 200 streams that send and never read open against Shanghai. Throughout, the
links between Shanghai and its two well-behaved peers stay up on both sides; afterwards the
node's memory and log are within the bounds below, and the flood is counted in metrics and
shown in status. The memory bound is relative: the node's own RSS measured just before the
flood, in the same run, so a fixed ceiling far above the node's size cannot hide a leak.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from node.mesh.layout import node_id_for
from node.runtime.config import load_config
from tests.flood import malformed_stream, rss_mb, silent_stream
from tests.nodes import BUDGET, make_mesh, raw_channel, tls_of
from tests.processes import authorized, http, process

pytestmark = pytest.mark.slow

FLOOD_SECONDS = 10.0
STREAMS = 200
RSS_GROWTH_BOUND_MB = 25
"""How far the node's resident memory may rise during the flood above what it was just before
it, in the same run. Measured: 82-83 MB before, a 9-10 MB rise (three runs, 2 shared cores);
the unbounded per-stream queue of issue 10 rose 34 MB in 10 s, so a bound at 25 MB bites
and leaves 2.5 times the honest rise as headroom. (A fixed ceiling did not bite: at 300 MB,
the node could have tripled without failing it.)"""
LOG_BOUND_BYTES = 256 * 1024
"""What the node may log during the flood (refusals are logged once per peer and code per
interval; before, the same flood wrote 15 MB in 30 s)."""
WELL_BEHAVED = ("jiangsu", "zhejiang")


def status_of(mesh: Path, province: str) -> dict[str, object]:
    request = authorized(mesh, http(mesh, province) + "/v1/status")
    with urllib.request.urlopen(request, timeout=5) as response:
        body: dict[str, object] = json.load(response)
        return body


def read_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def links_up(mesh: Path) -> dict[tuple[str, str], bool]:
    """(from, to) -> whether ``from`` shows its link to ``to`` up, for the links that matter."""
    seen = {}
    for province in ("shanghai", *WELL_BEHAVED):
        for peer in status_of(mesh, province)["peers"]:  # type: ignore[union-attr]
            assert isinstance(peer, dict)
            target = peer["peer"]
            if "anhui" in (province, target) or "shanghai" not in (province, target):
                continue
            seen[(province, str(target))] = bool(peer["up"])
    return seen


def watch_links(mesh: Path, until: float) -> Iterator[dict[tuple[str, str], bool]]:
    while time.monotonic() < until:
        yield links_up(mesh)
        time.sleep(0.25)


async def test_one_member_flooding_cannot_starve_the_others(tmp_path: Path) -> None:
    """200 streams of malformed envelopes and 200 that never read, from one member's
    credentials, for 10 s: no link of the target's other peers goes down, the target's RSS
    rises at most 25 MB above its own RSS just before the flood, and it logs under 256 KiB."""
    mesh = make_mesh(tmp_path, ("shanghai", "jiangsu", "zhejiang", "anhui"))
    target = load_config(mesh / "shanghai" / "node.toml", {})
    with ExitStack() as stack:
        procs = {p: stack.enter_context(process(mesh, p)) for p in ("shanghai", *WELL_BEHAVED)}
        pid = procs["shanghai"].pid
        deadline = time.monotonic() + BUDGET / 2
        while not all(links_up(mesh).values()) or len(links_up(mesh)) != 4:
            assert time.monotonic() < deadline, links_up(mesh)
            await asyncio.sleep(0.2)
        log = mesh / "shanghai" / "node.log"
        log_before = log.stat().st_size
        rss_before = rss_mb(pid)

        channels = [
            raw_channel(target, tls_of(mesh, "anhui"), node_id_for("shanghai")) for _ in range(8)
        ]
        until = time.monotonic() + FLOOD_SECONDS
        flood = [
            asyncio.ensure_future(malformed_stream(channels[i % 4], until)) for i in range(STREAMS)
        ] + [
            asyncio.ensure_future(silent_stream(channels[4 + i % 4], until)) for i in range(STREAMS)
        ]
        samples: list[dict[tuple[str, str], bool]] = []
        peak_rss = rss_before
        try:
            while time.monotonic() < until + 1.0:
                samples.append(await asyncio.to_thread(links_up, mesh))
                peak_rss = max(peak_rss, rss_mb(pid))
                await asyncio.sleep(0.25)
            written = await asyncio.gather(*flood)
        finally:
            for task in flood:
                task.cancel()
            for channel in channels:
                await channel.close()

        down = [s for s in samples if not all(s.values())]
        assert not down, f"links shown down during the flood: {down[:3]}"
        assert sum(written) > STREAMS, "the flood did send"
        logged = log.stat().st_size - log_before
        print(
            f"\nflood: {sum(written)} envelopes written; RSS {rss_before:.0f} MB before, "
            f"{peak_rss:.0f} MB peak (+{peak_rss - rss_before:.0f} MB); log +{logged} bytes; "
            f"{len(samples)} link samples"
        )
        assert peak_rss - rss_before <= RSS_GROWTH_BOUND_MB, (rss_before, peak_rss)
        assert logged < LOG_BOUND_BYTES
        status = status_of(mesh, "shanghai")
        anhui = next(p for p in status["peers"] if p["peer"] == "anhui")  # type: ignore[union-attr]
        assert anhui["inbound"]["suspensions"] >= 1  # type: ignore[index]
        metrics = await asyncio.to_thread(read_text, http(mesh, "shanghai") + "/metrics")
        assert 'yrd_peer_door_refusals_total{peer="anhui",reason="too_many_streams"}' in metrics
        assert "yrd_messages_refused_total{" in metrics
        assert procs["shanghai"].poll() is None

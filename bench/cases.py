"""Case benchmark: hand-off throughput and end-to-end lifecycle latency between two nodes,
measured against signed probes over the same path, in one run on this machine.

Run::

    .venv/bin/python bench/cases.py            # full run (about 30 s)
    .venv/bin/python bench/cases.py --quick    # smoke run (a few s)

Two real node processes (Shanghai accepting, Jiangsu handling; ``yrd node run``) on a
fresh two-province mesh; this process is the platforms on both sides, over HTTP.

``hand-off``
    ``--cases`` submissions (``POST /v1/cases`` at Shanghai, ``--concurrency`` in flight),
    timed from the first request until Shanghai holds the handler's signed receipt of every
    one (all cases ``delivered``). Baseline: the same number of single signed probes
    (``POST /v1/probes``, count 1) at the same concurrency, until Jiangsu stored them all.
    The ratio says what validating a submission, storing the case on both sides and
    recording update 1 cost over a bare signed, durable, receipted message.
``lifecycle``
    ``--lifecycles`` cases one after another: submit at Shanghai, then accept and complete
    at Jiangsu, evaluate at Shanghai, each step waiting until the other node shows it
    (polled every ``POLL`` s). Baseline: one probe's round trip, ``POST /v1/probes`` until
    the receiver stored it, polled the same way. A lifecycle is five hand-offs (submission,
    accept, complete, the evaluation request and its numbered echo), so a ratio near five
    means the case logic adds little to the transport.

Benchmarks print figures; they never assert timing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.cases.catalog import load_catalog  # noqa: E402
from node.identifiers import make_id_number  # noqa: E402
from node.mesh.access import create_mesh  # noqa: E402
from node.mesh.auth import mesh_session  # noqa: E402
from node.mesh.processes import node_run_command  # noqa: E402
from node.runtime.config import load_config  # noqa: E402

POLL = 0.005
PROVINCES = ("shanghai", "jiangsu")


@dataclass
class Side:
    province: str
    url: str
    process: subprocess.Popen[bytes]


class Bench:
    def __init__(self, session: aiohttp.ClientSession, sh: Side, js: Side) -> None:
        self.session = session
        self.sh = sh
        self.js = js
        self.matter = load_catalog("jiangsu").matters[0]
        self._seed = 0

    async def call(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        async with self.session.request(method, url, json=body) as response:
            data: dict[str, Any] = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {url}: {data}")
            return data

    def body(self) -> dict[str, Any]:
        self._seed += 1
        rng = random.Random(self._seed)
        return {
            "matter_code": self.matter.code,
            "handler": "jiangsu",
            "applicant": {
                "name": "测试",
                "code_type": "111",
                "code": make_id_number(rng, division="310104", birth=date(1985, 1, 2), sex="male"),
            },
            "materials": [
                {
                    "name": m.name,
                    "sha256": hashlib.sha256(f"{self._seed}{m.name}".encode()).hexdigest(),
                }
                for m in self.matter.materials
            ],
        }

    async def status(self, side: Side) -> dict[str, Any]:
        return await self.call("GET", side.url + "/v1/status")

    async def until(self, check: Any) -> None:
        # Polling is the point: the other process's state is only visible over HTTP.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(POLL)

    async def probes_stored(self) -> int:
        return int((await self.status(self.js))["inbox_by_type"].get("probe", 0))

    async def delivered_cases(self) -> int:
        counts = (await self.status(self.sh))["cases"].get("accepting", {})
        return sum(n for status, n in counts.items() if status != "submitted")

    async def case_status(self, side: Side, case_id: str) -> str:
        async with self.session.get(f"{side.url}/v1/cases/{case_id}") as response:
            if response.status == 404:
                return "unknown"
            return str((await response.json())["status"])

    async def bounded(self, n: int, concurrency: int, make: Any) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                await make()

        await asyncio.gather(*(one() for _ in range(n)))

    async def handoff_probes(self, n: int, concurrency: int) -> float:
        before = await self.probes_stored()
        started = time.perf_counter()
        await self.bounded(
            n,
            concurrency,
            lambda: self.call("POST", self.sh.url + "/v1/probes", {"peer": "jiangsu", "count": 1}),
        )

        async def done() -> bool:
            return await self.probes_stored() >= before + n

        await self.until(done)
        return n / (time.perf_counter() - started)

    async def handoff_cases(self, n: int, concurrency: int) -> float:
        before = await self.delivered_cases()
        started = time.perf_counter()
        await self.bounded(
            n, concurrency, lambda: self.call("POST", self.sh.url + "/v1/cases", self.body())
        )

        async def done() -> bool:
            return await self.delivered_cases() >= before + n

        await self.until(done)
        return n / (time.perf_counter() - started)

    async def probe_round_trip(self) -> float:
        before = await self.probes_stored()
        started = time.perf_counter()
        await self.call("POST", self.sh.url + "/v1/probes", {"peer": "jiangsu", "count": 1})

        async def done() -> bool:
            return await self.probes_stored() > before

        await self.until(done)
        return time.perf_counter() - started

    async def lifecycle(self) -> float:
        started = time.perf_counter()
        case_id = (await self.call("POST", self.sh.url + "/v1/cases", self.body()))["case_id"]
        steps = (
            (self.js, {"action": "accept"}, "accepted"),
            (
                self.js,
                {
                    "action": "complete",
                    "result": {"kind": "document", "document_sha256": "ab" * 32},
                },
                "completed",
            ),
            (self.sh, {"action": "evaluate", "level": 5}, "evaluated"),
        )
        await self.wait_status(self.js, case_id, "delivered")
        for side, event, after in steps:
            await self.call("POST", f"{side.url}/v1/cases/{case_id}/events", event)
            await self.wait_status(self.sh, case_id, after)
            await self.wait_status(self.js, case_id, after)
        return time.perf_counter() - started

    async def wait_status(self, side: Side, case_id: str, status: str) -> None:
        async def done() -> bool:
            return await self.case_status(side, case_id) == status

        await self.until(done)


def start(mesh: Path, province: str) -> Side:
    config = load_config(mesh / province / "node.toml", {})
    log = (mesh / province / "node.log").open("ab")
    process = subprocess.Popen(
        node_run_command(mesh / province / "node.toml"), stdout=log, stderr=log
    )
    return Side(province, f"http://{config.http_listen}", process)


async def wait_ready(session: aiohttp.ClientSession, side: Side) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with session.get(side.url + "/v1/status") as response:
                body = await response.json()
                peers = body.get("peers", [])
                settled = peers and all(p["up"] and p["outbox_depth"] == 0 for p in peers)
                if response.status == 200 and settled:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{side.province} did not come up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, mesh: Path) -> None:
    sh, js = start(mesh, "shanghai"), start(mesh, "jiangsu")
    try:
        async with mesh_session(mesh) as session:
            for side in (sh, js):
                await wait_ready(session, side)
            bench = Bench(session, sh, js)
            # Warm-up: connections, caches, the handler's catalog at the accepting side.
            await bench.handoff_probes(20, 4)
            await bench.handoff_cases(20, 4)

            probe_rate = await bench.handoff_probes(args.cases, args.concurrency)
            case_rate = await bench.handoff_cases(args.cases, args.concurrency)
            trips = [await bench.probe_round_trip() for _ in range(args.lifecycles)]
            lives = [await bench.lifecycle() for _ in range(args.lifecycles)]
    finally:
        for side in (sh, js):
            side.process.terminate()
            side.process.wait(timeout=20)

    print(f"load average before: {args.load_before}, after: {os.getloadavg()}")
    print(f"{'path':<32} {'figure':>14} {'baseline':>14} {'ratio':>8}")
    print(
        f"{'hand-off (cases/s)':<32} {case_rate:>14.0f} {probe_rate:>14.0f} "
        f"{case_rate / probe_rate:>7.2f}×"
    )
    trip_p50 = statistics.median(trips)
    life_p50 = statistics.median(lives)
    print(
        f"{'lifecycle p50 (ms)':<32} {life_p50 * 1000:>14.1f} {trip_p50 * 1000:>14.1f} "
        f"{life_p50 / trip_p50:>7.2f}×"
    )
    print(
        f"{'lifecycle p95 (ms)':<32} {pct(lives, 0.95) * 1000:>14.1f} "
        f"{pct(trips, 0.95) * 1000:>14.1f} {pct(lives, 0.95) / pct(trips, 0.95):>7.2f}×"
    )
    print(
        f"({args.cases} hand-offs at concurrency {args.concurrency}; {args.lifecycles} "
        "lifecycles of 5 hand-offs each against single probe round trips)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--lifecycles", type=int, default=100)
    args = parser.parse_args()
    if args.quick:
        args.cases, args.lifecycles = 100, 5
    args.load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="yrd-bench-cases-") as tmp:
        mesh = Path(tmp) / "mesh"
        base = random.randrange(20000, 28000)
        create_mesh(mesh, now=time.time(), base_port=base, provinces=PROVINCES, platforms=False)
        asyncio.run(run(args, mesh))


if __name__ == "__main__":
    main()

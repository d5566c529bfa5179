"""End to end on a real four-province mesh of real processes (nodes and simulated platforms):
an application entered at the Shanghai platform in its dialect for an Anhui matter reaches
the Anhui platform in its dialect, its officer works it, and the Shanghai platform shows the
outcome and the result; the same while the Anhui platform is down for a while."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.registry import citizen
from adapters.shanghai.platform import BASE
from node.mesh.access import create_mesh
from node.mesh.auth import mesh_session
from node.mesh.processes import Mesh
from tests.nodes import BUDGET, eventually_async, free_base_port

pytestmark = pytest.mark.slow

CONCLUDED = {50: "completed", 60: "denied", 40: "rejected", 80: "evaluated", 70: "withdrawn"}


async def get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        return await response.json()


async def anhui_application(
    session: aiohttp.ClientSession, mesh: Mesh, seed: int
) -> dict[str, Any]:
    """A Shanghai resident with a valid ID card applies for an Anhui matter."""
    fixtures = await get(session, f"{mesh.platform_url('shanghai')}/sim/fixtures")
    cards = [
        c
        for c in fixtures["certificates"]
        if c["type"] == "resident_id_card" and c["status"] == "valid"
    ]
    card = cards[seed % len(cards)]
    person = next(p for p in fixtures["persons"] if p["id_number"] == card["holder_code"])
    catalog = await get(session, f"{mesh.url('anhui')}/v1/catalog")
    matter = next(
        m for m in catalog["matters"] if m["handler"] == "anhui" and m["code"].endswith("172001000")
    )
    rng = random.Random(seed)
    return {
        "matter_code": matter["code"],
        "handler": "anhui",
        "mode": matter["modes"][0],
        "applicant": {"name": person["name"], "code_type": "111", "code": person["id_number"]},
        "materials": [
            {"name": m["name"], "certificate_id": card["certificate_id"]}
            if m.get("certificate_type") == "resident_id_card"
            else {"name": m["name"], "sha256": f"{rng.getrandbits(256):064x}"}
            for m in matter["materials"]
        ],
    }  # fmt: skip


async def outcomes(
    session: aiohttp.ClientSession, mesh: Mesh, references: list[str], timeout: float = BUDGET
) -> list[dict[str, Any]]:
    """The Shanghai platform's view of each application once it has concluded there."""
    base = f"{mesh.platform_url('shanghai')}{BASE}/applications/"
    deadline = time.monotonic() + timeout
    while True:
        seen = [await get(session, base + reference) for reference in references]
        if all(s["caseStatus"] in CONCLUDED and s["caseStatus"] not in (50, 60) for s in seen):
            return seen
        assert time.monotonic() < deadline, [s["caseStatus"] for s in seen]
        await asyncio.sleep(0.2)


async def test_shanghai_application_handled_in_anhui_through_both_platforms(tmp_path: Path) -> None:
    """Applications entered in Shanghai's dialect are worked by Anhui's officer; Shanghai's
    platform shows each outcome, completions with their result; while Anhui's platform is
    down the node holds what it owes it, and delivers it once the platform is back."""
    directory = tmp_path / "mesh"
    create_mesh(directory, now=time.time(), base_port=free_base_port())
    mesh = Mesh(directory, officer_delay=0.2)
    try:
        await mesh.up()
        async with mesh_session(
            directory, timeout=aiohttp.ClientTimeout(total=BUDGET / 3)
        ) as session:
            shanghai = citizen("shanghai")
            platform = mesh.platform_url("shanghai")
            assert platform is not None

            async def knows_anhuis_matters() -> bool:
                # An application for a matter Shanghai's node has not yet heard of in Anhui's
                # catalog announcement is refused for good (status 90): wait for it first.
                catalog = await get(session, f"{mesh.url('shanghai')}/v1/catalog")
                return any(m["handler"] == "anhui" for m in catalog["matters"])

            await eventually_async(knows_anhuis_matters, interval=0.2)
            references = [
                await shanghai.enter_application(session, platform, body)
                for body in [await anhui_application(session, mesh, i) for i in range(4)]
            ]
            seen = await outcomes(session, mesh, references)
            assert any(s["caseStatus"] == 80 and s.get("result") for s in seen), seen
            for shown in seen:
                assert shown["progress"][0]["actionCode"] == 101  # 送达
            # Anhui's officer decided every one, so each reached its platform, in its dialect.
            assert all(shown["caseId"] for shown in seen)

            mesh.platforms["anhui"].terminate()
            mesh.platforms["anhui"].wait(timeout=BUDGET / 3)
            waiting = [
                await shanghai.enter_application(session, platform, body)
                for body in [await anhui_application(session, mesh, i) for i in range(4, 8)]
            ]

            async def anhui_platform() -> dict[str, Any]:
                status = await get(session, f"{mesh.url('anhui')}/v1/status")
                return dict(status["platform"])

            deadline = time.monotonic() + BUDGET / 2
            while (shown := await anhui_platform())["outbox_depth"] < 4 or shown["up"]:
                assert time.monotonic() < deadline, shown
                await asyncio.sleep(0.2)
            config = next(c for c in mesh.configs if c.province == "anhui")
            mesh.start_platform(config)
            await mesh.wait_platform("anhui")
            seen = await outcomes(session, mesh, waiting)
            assert all(s["caseId"] for s in seen)

            # The outcomes are back at Shanghai; what Anhui's node owes its own platform (the
            # notices of those same cases) may still be on its way: it drains, none parked.
            async def drained() -> bool:
                return (await anhui_platform())["outbox_depth"] == 0

            await eventually_async(drained, interval=0.2)
            assert (await anhui_platform())["dead_letters"] == 0
    finally:
        mesh.stop()

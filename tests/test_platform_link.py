"""A node and its own province platform, end to end: the Shanghai node reads applications and
officer events from a real simulated Shanghai platform and hands it inbound cases and
updates, with Jiangsu as the peer province (driven through its REST API)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from adapters.shanghai.dialect import application_form
from adapters.shanghai.platform import BASE, build_platform
from node.cases.catalog import load_catalog
from node.platform.config import PlatformConfig
from node.runtime.node import Node
from node.store import cases as cases_store
from tests.cases import case_body, status_of
from tests.nodes import config_for, eventually, eventually_async, make_mesh, serving, settled
from tests.platforms import application_body

TOKEN = "platform-token-0123456789"


def credentials_file(folder: Path) -> Path:
    path = folder / "platform.json"
    path.write_text(json.dumps({"access_token": TOKEN}))
    os.chmod(path, 0o600)
    return path


@asynccontextmanager
async def shanghai_platform(
    store: Path, *, port: int = 0, delay: float = 0.0
) -> AsyncIterator[TestServer]:
    app = build_platform(store, seed=5, officer_delay=delay, credentials={"access_token": TOKEN})
    async with TestServer(app, host="127.0.0.1", port=port) as server:
        yield server


def checks_done(node: Node, case_id: str) -> bool:
    checks = cases_store.certificate_checks(node.db.reader(), case_id)
    return bool(checks) and all(check.state != "pending" for check in checks)


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()


async def post_json(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status, await response.json()


async def test_applications_events_and_deliveries_flow_through_the_platform(tmp_path: Path) -> None:
    """An application entered in the Shanghai dialect becomes a federation case handled in
    Jiangsu, and every update reaches the Shanghai platform; a case Jiangsu accepts for a
    Shanghai matter reaches the platform, whose officer works it to completion through the
    node, and Jiangsu sees each step."""
    mesh = make_mesh(tmp_path)
    async with shanghai_platform(tmp_path / "platform.db") as platform:
        url = str(platform.make_url("")).rstrip("/")
        platform_config = PlatformConfig(
            "shanghai", url, credentials_file=credentials_file(tmp_path), poll_interval_seconds=0.05
        )
        async with (
            serving(config_for(mesh, "shanghai", platform=platform_config)) as (sh, _),
            serving(config_for(mesh, "jiangsu")) as (js, js_client),
        ):
            await eventually(lambda: settled(sh, js))
            fixtures = await get_json(url + "/sim/fixtures")
            status, entered = await post_json(
                url + BASE + "/applications",
                application_form(application_body(fixtures, "jiangsu")),
            )
            assert status == 201, entered
            reference = entered["applyNo"]

            async def progress() -> dict[str, Any]:
                return dict(await get_json(f"{url}{BASE}/applications/{reference}"))

            case_id = None
            while case_id is None:
                case_id = (await progress())["caseId"]
            await eventually(lambda: status_of(js, case_id) == "delivered")
            # Jiangsu verifies the applicant's Shanghai ID card (免于提交) before it may accept;
            # Shanghai reads it from its platform's library.
            await eventually(lambda: checks_done(js, case_id))
            [check] = cases_store.certificate_checks(js.db.reader(), case_id)
            assert (check.state, check.status) == ("verified", "valid")
            response = await js_client.post(
                f"/v1/cases/{case_id}/events", json={"action": "accept"}
            )
            assert response.status == 200

            async def accepted_there() -> bool:
                return bool((await progress())["caseStatus"] == 30)  # 已受理 in its dialect

            await eventually_async(accepted_there)
            followed = await progress()
            assert [n["actionCode"] for n in followed["progress"]][:2] == [101, 201]

            matter = load_catalog("shanghai").matters[0]
            response = await js_client.post("/v1/cases", json=case_body(matter, seed=3))
            inbound = (await response.json())["case_id"]
            # The simulated officer works it without delay (its first decision: accept, reject
            # or ask for a supplement that only Jiangsu's applicant could answer).
            decided = ("accepted", "rejected", "supplement_requested", "completed", "denied")
            await eventually(lambda: status_of(js, inbound) in decided)
            await eventually(lambda: status_of(sh, inbound) == status_of(js, inbound))
            view = sh.case_views.view(sh.case_views.get(inbound))
            assert view["role"] == "handling"

            async def same_history() -> bool:
                # The sender's record of its last update holds it as queued until the
                # receipt is recorded, a moment after the receiver shows it: wait for that.
                mine = sh.case_views.view(sh.case_views.get(inbound))["history"]
                theirs = await (await js_client.get(f"/v1/cases/{inbound}")).json()
                return bool(mine == theirs["history"])

            await eventually_async(same_history)
            shown = sh.health.status()["platform"]
            assert shown is not None and shown["up"] is True and shown["dead_letters"] == 0


async def test_platform_down_keeps_deliveries_until_it_returns(tmp_path: Path) -> None:
    """While the platform is down an inbound case waits in the node, visible in the status
    and metrics; when the platform returns it is handed over exactly once."""
    mesh = make_mesh(tmp_path)
    store = tmp_path / "platform.db"
    async with shanghai_platform(store, delay=3600) as platform:
        port = platform.port
        url = str(platform.make_url("")).rstrip("/")
    assert port is not None
    platform_config = PlatformConfig(
        "shanghai", url, credentials_file=credentials_file(tmp_path), poll_interval_seconds=0.05
    )
    async with (
        serving(config_for(mesh, "shanghai", platform=platform_config)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        matter = load_catalog("shanghai").matters[0]
        response = await js_client.post("/v1/cases", json=case_body(matter, seed=4))
        case_id = (await response.json())["case_id"]
        await eventually(lambda: status_of(sh, case_id) == "delivered")

        def waiting() -> bool:
            shown = sh.health.status()["platform"]
            return bool(shown and shown["outbox_depth"] >= 2 and not shown["up"])

        await eventually(waiting)
        metrics = await (await sh_client.get("/metrics")).text()
        assert "yrd_platform_up 0.0" in metrics
        assert "yrd_platform_outbox_depth 2.0" in metrics

        async with shanghai_platform(store, port=port, delay=3600):
            await eventually(lambda: sh.health.status()["platform"]["outbox_depth"] == 0)  # type: ignore[index]
            await eventually(lambda: sh.health.status()["platform"]["up"] is True)  # type: ignore[index]
        assert sh.health.status()["platform"]["dead_letters"] == 0  # type: ignore[index]

    conn = sqlite3.connect(store)
    try:
        query = "SELECT count(*) FROM inbound_cases WHERE case_id = ?"
        count = conn.execute(query, (case_id,)).fetchone()[0]
    finally:
        conn.close()
    assert count == 1

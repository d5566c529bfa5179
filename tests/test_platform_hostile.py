"""A real node whose own platform first answers outside its dialect, then behaves, for each
kind of hostile reply (``tests/hostile.py``: too deep, too large, a huge number, huge text,
wrong types, not UTF-8, HTML, binary, truncated, a redirect) in each of the four dialects:
the node's platform polling outlives the hostile replies (readiness' "tasks" stays "ok") and
takes the application waiting at the platform within seconds of the platform behaving again
(issue 10). The platform is the dialect's real simulated platform behind a front on
127.0.0.1 that, while told to, answers every request with the kind's reply to the feed it
polls."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from adapters.registry import citizen, dialect
from node.platform.config import PlatformConfig
from node.runtime.node import Node
from tests.dialects import BY_NAME, SECRET
from tests.hostile import KINDS, Answer, code_of
from tests.nodes import BUDGET, config_for, eventually, make_mesh, running, settled
from tests.platforms import application_body

CREDENTIALS: Final = {
    "shanghai": {"access_token": "sh-token-0123456789"},
    "jiangsu": {"access_token": "js-token-0123456789"},
    "zhejiang": {"app_key": "zj-app", "app_secret": "zj-secret-0123456789"},
    "anhui": {"token": "ah-token-0123456789"},
}
HANDLER: Final = {"shanghai": "jiangsu", "jiangsu": "zhejiang", "zhejiang": "anhui",
                  "anhui": "shanghai"}  # fmt: skip
"""The province that handles each test's application (another: it is cross-province), its node
running beside."""
WITHIN: Final = BUDGET / 2
"""Seconds the node may take to turn the waiting application into a case once the platform
behaves (it polls every 0.05 s): a bound on a broken poller, not a speed (bench/)."""
_NOT_FORWARDED: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass
class Front:
    """In front of a platform at ``target``: while ``spoiling``, every request is answered with
    ``replies``' answer to the feed it asks for (a request for anything else, with the
    applications feed's); otherwise it is passed to the platform as it came."""

    target: str
    replies: Mapping[str, Answer]
    """By feed: "applications", "events"."""
    events_path: str
    """The path of the dialect's events feed."""
    session: aiohttp.ClientSession
    spoiling: bool = True
    spoilt: int = 0
    """How many requests were answered with a spoilt reply."""

    async def answer(self, request: web.Request) -> web.Response:
        if self.spoiling:
            self.spoilt += 1
            feed = "events" if request.path == self.events_path else "applications"
            return self.replies[feed].response()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        # The raw target as sent: Zhejiang's signature covers it byte for byte.
        url = URL(self.target + request.raw_path, encoded=True)
        async with self.session.request(
            request.method, url, data=await request.read(), headers=headers
        ) as response:
            return web.Response(
                status=response.status,
                body=await response.read(),
                headers={"Content-Type": response.headers["Content-Type"]},
            )


@asynccontextmanager
async def platform_behind_a_front(
    province: str, kind: str, folder: Path
) -> AsyncIterator[tuple[str, str, Front]]:
    """The province's simulated platform and a front to it spoiling with ``kind``: (the
    platform's URL, the front's URL, the front)."""
    app = dialect(province).build_platform(
        folder / "platform.db", seed=5, officer_delay=3600, credentials=CREDENTIALS[province]
    )
    async with (
        TestServer(app, host="127.0.0.1") as platform,
        aiohttp.ClientSession() as session,
    ):
        url = str(platform.make_url("")).rstrip("/")
        d = BY_NAME[province]
        replies = {feed: KINDS[kind](d, feed) for feed in ("applications", "events")}
        front = Front(url, replies, d.paging[1][0], session)
        served = web.Application()
        served.router.add_route("*", "/{tail:.*}", front.answer)
        async with TestServer(served, host="127.0.0.1") as server:
            yield url, str(server.make_url("")).rstrip("/"), front


def credentials_file(folder: Path, province: str) -> Path:
    path = folder / "platform.json"
    path.write_text(json.dumps(CREDENTIALS[province]))
    os.chmod(path, 0o600)
    return path


def tasks_ok(node: Node) -> bool:
    return node.health.readiness()["tasks"] == "ok"


@pytest.mark.parametrize("province", list(CREDENTIALS))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_platform_polling_outlives_a_hostile_platform(
    kind: str, province: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Platform polling survives every reply of a hostile kind, shows the platform down with
    the kind's refusal code, logs that once however often it asks, and takes the waiting
    application within seconds once the platform behaves."""
    mesh = make_mesh(tmp_path, (province, HANDLER[province]))
    people = citizen(province)
    code = code_of(BY_NAME[province], kind)
    async with (
        platform_behind_a_front(province, kind, tmp_path) as (platform_url, front_url, front),
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{platform_url}/sim/fixtures") as response:
            fixtures = await response.json()
        body = application_body(fixtures, HANDLER[province])
        reference = await people.enter_application(session, platform_url, body)
        platform = PlatformConfig(
            province,
            front_url,
            credentials_file=credentials_file(tmp_path, province),
            poll_interval_seconds=0.05,
        )
        async with (
            running(config_for(mesh, province, platform=platform)) as node,
            running(config_for(mesh, HANDLER[province])) as handler,
        ):
            # The handler's catalog must have arrived for the application's matter to be known.
            await eventually(lambda: settled(node, handler))
            # A crashed poller asks once and never again.
            await eventually(lambda: front.spoilt >= 3 or not tasks_ok(node))
            assert tasks_ok(node), node.health.readiness()["tasks"]
            assert node.platform is not None
            shown = node.platform.status()
            assert shown["up"] is False
            assert province in shown["last_error"] and code in shown["last_error"], shown
            assert SECRET not in shown["last_error"]
            said = [r for r in caplog.records if "outside its dialect" in r.getMessage()]
            assert front.spoilt >= 3 and [getattr(r, "code", None) for r in said] == [code]

            front.spoiling = False
            deadline = time.monotonic() + WITHIN
            case_id = None
            while case_id is None:
                assert time.monotonic() < deadline, "the application did not become a case"
                await asyncio.sleep(0.05)
                case_id = await people.case_of(session, platform_url, reference)
            assert node.case_views.get(case_id).case_id == case_id
            assert tasks_ok(node), node.health.readiness()["tasks"]
            await eventually(lambda: node.platform is not None and node.platform.state.up)

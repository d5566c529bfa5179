"""A citizen (or a tester, or the demo) at the Zhejiang platform: entering an application
through the 浙里办 app front end, in the Zhejiang dialect, and following it to its federation
case. The front end is not the open platform, so nothing here is signed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from adapters.zhejiang.dialect import ZHEJIANG
from adapters.zhejiang.platform import APP_BASE


async def enter_application(
    session: aiohttp.ClientSession, base_url: str, body: Mapping[str, Any]
) -> str:
    """Enter ``body`` (a ``POST /v1/cases`` body) as a citizen; return the application number."""
    url = f"{base_url.rstrip('/')}{APP_BASE}/applications"
    async with session.post(url, json=ZHEJIANG.application_form(body)) as reply:
        answer = await reply.json()
        if reply.status != 201 or answer.get("code") != "0":
            raise ValueError(f"the platform refused the application: {answer}")
        return str(answer["data"]["apply_no"])


async def case_of(session: aiohttp.ClientSession, base_url: str, reference: str) -> str | None:
    """The federation case the application became, once the node acknowledged it."""
    url = f"{base_url.rstrip('/')}{APP_BASE}/applications/{quote(reference, safe='')}"
    async with session.get(url) as reply:
        answer = await reply.json()
        if reply.status != 200 or answer.get("code") != "0":
            raise ValueError(f"the platform does not know application {reference}: {answer}")
        case_id = answer["data"].get("case_id")
        return str(case_id) if case_id else None

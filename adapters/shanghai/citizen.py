"""A citizen (or a tester, or the demo) at the Shanghai platform: entering an application
in the Shanghai dialect and following it to its federation case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from adapters.shanghai.dialect import SHANGHAI
from adapters.shanghai.platform import BASE


async def enter_application(
    session: aiohttp.ClientSession, base_url: str, body: Mapping[str, Any]
) -> str:
    """Enter ``body`` (a ``POST /v1/cases`` body) as a citizen; return the application number."""
    async with session.post(
        f"{base_url}{BASE}/applications", json=SHANGHAI.application_form(body)
    ) as r:
        answer = await r.json()
        if r.status != 201:
            raise ValueError(f"the platform refused the application: {answer}")
        return str(answer["applyNo"])


async def case_of(session: aiohttp.ClientSession, base_url: str, reference: str) -> str | None:
    """The federation case the application became, once the node acknowledged it."""
    async with session.get(f"{base_url}{BASE}/applications/{reference}") as r:
        answer = await r.json()
        if r.status != 200:
            raise ValueError(f"the platform does not know application {reference}: {answer}")
        case_id = answer.get("caseId")
        return str(case_id) if case_id else None

"""A citizen (or a tester, or the demo) at the Anhui platform: entering an application as a
form in the Anhui dialect and following it to its federation case."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from adapters.anhui.dialect import ANHUI, read_error
from adapters.anhui.form import encode_form
from adapters.anhui.platform import BASE, FORM_TYPE


async def enter_application(
    session: aiohttp.ClientSession, base_url: str, body: Mapping[str, Any]
) -> str:
    """Enter ``body`` (a ``POST /v1/cases`` body) as a citizen; return the application number."""
    form = encode_form(ANHUI.application_form(body))
    headers = {"Content-Type": f"{FORM_TYPE}; charset=UTF-8"}
    async with session.post(f"{base_url}{BASE}/sq/tj", data=form, headers=headers) as r:
        answer = await r.read()
        if r.status != 201:
            raise ValueError(
                f"the platform refused the application: {read_error(answer, r.status)}"
            )
        return str(json.loads(answer)["result"]["sqbh"])


async def case_of(session: aiohttp.ClientSession, base_url: str, reference: str) -> str | None:
    """The federation case the application became, once the node acknowledged it."""
    async with session.get(f"{base_url}{BASE}/sq/xq?sqbh={quote(reference)}") as r:
        answer = await r.read()
        if r.status != 200:
            error = read_error(answer, r.status)
            raise ValueError(f"the platform does not know application {reference}: {error}")
        case_id = json.loads(answer)["result"].get("bjbh")
        return str(case_id) if case_id else None

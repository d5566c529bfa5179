"""A citizen (or a tester, or the demo) at the Jiangsu platform: entering an application in
the Jiangsu dialect and following it to its federation case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from adapters.jiangsu.adapter import CONTENT_TYPE
from adapters.jiangsu.dialect import application_form, read_error
from adapters.jiangsu.platform import BASE
from adapters.jiangsu.strict_xml import read_document, to_xml


async def enter_application(
    session: aiohttp.ClientSession, base_url: str, body: Mapping[str, Any]
) -> str:
    """Enter ``body`` (a ``POST /v1/cases`` body) as a citizen; return the application number."""
    form = to_xml(application_form(body))
    headers = {"Content-Type": CONTENT_TYPE}
    async with session.post(f"{base_url}{BASE}/sq", data=form, headers=headers) as r:
        answer = await r.read()
        if r.status != 201:
            raise ValueError(
                f"the platform refused the application: {read_error(answer, r.status)}"
            )
        return read_document(answer, "sqhz", what="receipt").text("sqbh", max_length=64)


async def case_of(session: aiohttp.ClientSession, base_url: str, reference: str) -> str | None:
    """The federation case the application became, once the node acknowledged it."""
    async with session.get(f"{base_url}{BASE}/sq/{reference}") as r:
        answer = await r.read()
        if r.status != 200:
            error = read_error(answer, r.status)
            raise ValueError(f"the platform does not know application {reference}: {error}")
        return read_document(answer, "sqjd", what="progress").optional_text("ajbh", max_length=128)

"""Asking one node's REST API over HTTP: what ``yrd load``, ``yrd case``, ``yrd cert`` and
``yrd catalog`` send their requests through.

Rules kept here:
- Transport errors are mapped to ``NodeUnreachable`` in one place (``NodeApi.call``).
- A non-2xx answer is a ``NodeRefused`` with the problem's code, detail and field (or
  ``http_<status>`` when the answer is not a problem document); a 5xx one is ``transient``.
- How a command names the node and turns these into exit codes is ``node.cli.node_client``'s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from monitoring.status import unreachable_reason
from node.mesh.access import bearer

TIMEOUT: Final = aiohttp.ClientTimeout(total=10)


class NodeUnreachable(Exception):
    """The node did not answer: connection refused, DNS, TLS, timeout."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the node at {url}: {reason}")
        self.url = url
        self.reason = reason
        """Why, in a few words (``connection refused: nothing listens there``)."""


class NodeRefused(Exception):
    """The node answered with an error (a problem document, or any non-2xx answer)."""

    def __init__(
        self, code: str, detail: str, field: str | None = None, *, status: int | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field
        self.status = status
        """The HTTP status, when the refusal came as an HTTP answer."""

    @property
    def transient(self) -> bool:
        """A 5xx: the node could not answer now (store, issuer or shutdown); asking again
        later may succeed, unlike a refusal of the request itself."""
        return self.status is not None and self.status >= 500

    def __str__(self) -> str:
        shown = f"{self.code}: {self.detail}"
        return f"{shown} (field: {self.field})" if self.field else shown


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]


class NodeApi:
    """The case routes of one node, over one HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None = None) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self._auth = bearer(token)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        try:
            async with self._session.request(
                method,
                self.url + path,
                json=body,
                params=params,
                headers={**self._auth, **(headers or {})},
                timeout=TIMEOUT,
            ) as response:
                text = await response.text()
                status, answer_headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NodeUnreachable(self.url, unreachable_reason(exc, TIMEOUT.total)) from None
        try:
            document = json.loads(text) if text else {}
        except ValueError:
            document = None
        if not 200 <= status < 300:
            if isinstance(document, dict) and "code" in document:
                raise NodeRefused(
                    str(document["code"]),
                    str(document.get("detail", "")),
                    document.get("field"),
                    status=status,
                )
            raise NodeRefused(
                f"http_{status}", f"{method} {path}: {text.strip()[:200]!r}", status=status
            )
        if not isinstance(document, dict):
            raise NodeRefused("unexpected_answer", f"{method} {path} did not answer a JSON object")
        return Answer(status, document, answer_headers)


@asynccontextmanager
async def node_api(url: str, token: str | None) -> AsyncIterator[NodeApi]:
    async with aiohttp.ClientSession() as session:
        yield NodeApi(session, url, token)

"""The one place where HTTP transport failures become ``PlatformUnavailable``.

Every adapter talks to its platform through ``PlatformClient``; dialect code never sees an
aiohttp exception. Rules kept:

1. A connection that fails or drops, a timeout (``timeout`` seconds for the whole exchange)
   and any 5xx answer raise ``PlatformUnavailable``: the node keeps the item and retries.
2. Any other answer is returned as a ``Reply`` (status, bytes, content type) for the
   dialect to judge: a 4xx is its refusal, to be raised as ``DialectError``.
3. A reply larger than ``max_reply_bytes`` is a ``DialectError`` (``reply_too_large``):
   no platform answers with megabytes of JSON, and reading on would cost memory.
4. Nothing here logs bodies: they hold names and ID numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp

from node.platform.adapter import DialectError, PlatformUnavailable

DEFAULT_TIMEOUT: Final = 10.0
MAX_REPLY_BYTES: Final = 8 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str


class PlatformClient:
    """HTTP to one platform (rules in the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = dict(headers or {})
        self._max_reply_bytes = max_reply_bytes
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One exchange; raises ``PlatformUnavailable`` per rule 1."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        sent = {**self._headers, **(headers or {})}
        if content_type is not None:
            sent["Content-Type"] = content_type
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(
                method, url, data=body, params=params, headers=sent
            ) as response:
                status, kind = response.status, response.content_type
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > self._max_reply_bytes:
                        break
        except (TimeoutError, aiohttp.ClientError) as error:
            raise PlatformUnavailable(
                f"{method} {path}: the platform did not answer ({type(error).__name__})"
            ) from None
        if status >= 500:
            raise PlatformUnavailable(f"{method} {path}: the platform answered {status}")
        if len(data) > self._max_reply_bytes:
            raise DialectError(
                "reply_too_large",
                f"{method} {path}: the reply exceeds {self._max_reply_bytes} bytes",
            )
        return Reply(status, bytes(data), kind)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""The one place where HTTP transport failures become ``PlatformUnavailable``, and where every
reply is read into a ``DialectError`` or a value.

Every adapter talks to its platform through ``PlatformClient``; dialect code never sees an
aiohttp exception. Rules kept:

1. A connection that fails or drops (also halfway through a reply), a timeout (``timeout``
   seconds for the whole exchange) and any 5xx answer raise ``PlatformUnavailable``: the
   node keeps the item and retries.
2. Any other answer is a ``Reply`` (status, bytes, content type) that the caller's ``read``
   judges and turns into its value: a 4xx is the dialect's refusal, to be raised as
   ``DialectError``. A call gets a reply only through its ``read``.
3. A reply larger than ``max_reply_bytes`` is a ``DialectError`` (``reply_too_large``):
   no platform answers with megabytes of JSON, and reading on would cost memory. A
   successful answer that is an HTML page is ``html_reply`` before it is read: no dialect
   is HTML, and a gateway's login or error page is the usual cause.
4. Whatever goes wrong in ``read`` leaves as a ``DialectError`` naming the platform
   (``platform``): the dialect's own refusal as it is, and any other exception (which
   the dialect's readers should have prevented) as ``malformed_reply``, logged with its
   type and where it was raised. ``PlatformUnavailable`` passes unchanged, and nothing
   outside ``Exception`` (a cancellation) is caught. So no reply, however hostile, raises
   anything else from an adapter.
5. Redirects are never followed: a 3xx is a ``DialectError`` (``redirected``) naming the
   host it pointed to and nothing more (its path and query may hold personal data). A
   platform that moved is reconfigured by its operator; following it would send the
   platform's tokens, app key and signature to whatever host the answer names.
6. Nothing here logs bodies or exception messages: they hold names and ID numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import aiohttp
from yarl import URL

from node.platform.adapter import DialectError, PlatformUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT: Final = 10.0
MAX_REPLY_BYTES: Final = 8 * 1024 * 1024
HTML: Final = "text/html"


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
        platform: str,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.platform = platform
        """The province whose platform this is, as every ``DialectError`` names it."""
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = dict(headers or {})
        self._max_reply_bytes = max_reply_bytes
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        path: str,
        read: Callable[[Reply], T],
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """One exchange, and what ``read`` makes of its reply (rules 1 to 4)."""
        reply = await self._exchange(method, path, body, content_type, params, headers)
        return self._read(reply, read)

    async def _exchange(
        self,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        sent = {**self._headers, **(headers or {})}
        if content_type is not None:
            sent["Content-Type"] = content_type
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(
                method, url, data=body, params=params, headers=sent, allow_redirects=False
            ) as response:
                status, kind = response.status, response.content_type
                if 300 <= status < 400:
                    location = response.headers.get("Location")
                    raise _redirected(method, path, status, location, self.platform)
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
                platform=self.platform,
            )
        return Reply(status, bytes(data), kind)

    def _read(self, reply: Reply, read: Callable[[Reply], T]) -> T:
        """``read(reply)``, whatever goes wrong a ``DialectError`` naming the platform
        (rules 3 and 4)."""
        try:
            if reply.status < 400 and reply.content_type == HTML:
                raise DialectError(
                    "html_reply", "the platform answered with an HTML page, not in its dialect"
                )
            return read(reply)
        except DialectError as error:
            error.platform = error.platform or self.platform
            raise
        except PlatformUnavailable:
            raise
        except Exception as error:
            log.error(
                "platform reply could not be read",
                extra={"platform": self.platform, "error": type(error).__name__,
                       "raised_at": _raised_at(error)},
            )  # fmt: skip
            raise DialectError(
                "malformed_reply",
                f"the reply could not be read ({type(error).__name__})",
                platform=self.platform,
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _redirected(
    method: str, path: str, status: int, location: str | None, platform: str
) -> DialectError:
    """A 3xx as the refusal it is (rule 5), naming only the host it pointed to (in ASCII)."""
    try:
        host = URL(location).raw_host if location else None
    except ValueError:
        host = None
    if location is None:
        where = "without a Location"
    elif host is None:
        where = "to a location on the same host"
    else:
        where = f"to host {host}"
    return DialectError(
        "redirected",
        f"{method} {path}: the platform answered {status}, redirecting {where}; redirects are "
        "not followed (correct the platform's url in node.toml if it has moved)",
        platform=platform,
    )


def _raised_at(error: BaseException) -> str:
    """Where ``error`` was raised (file and line), to find it without its message."""
    trace = error.__traceback__
    if trace is None:
        return "?"
    while trace.tb_next is not None:
        trace = trace.tb_next
    return f"{Path(trace.tb_frame.f_code.co_filename).name}:{trace.tb_lineno}"

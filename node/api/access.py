"""Who may ask what: the ``Host`` a request names, its bearer token, and the token's scope.

Rules kept here:
- Every request names, in ``Host``, the address it reached (the listening socket's own
  address; on loopback also ``localhost``) or a name in ``[http] allowed_hosts``; anything
  else is 421, so a web page whose name resolves to this address (DNS rebinding) is
  refused before anything else happens.
- Every route but ``OPEN`` requires a token: ``Authorization: Bearer <token>`` (or, for a
  browser opening the dashboard, HTTP Basic with the token as password). Missing or not a
  token in force: 401 with ``WWW-Authenticate``. A token whose scope the route does not
  admit: 403. Every refusal is counted by route and reason; the token is never logged.
- ``RULES`` names, for every route, the scopes that may call it; a route without a rule is
  refused to everyone (a test checks that every route has one).
  - ``platform``: the province platform: cases and their events, certificate
    verification, presentations, consents; it may read cases, the catalog and usage.
  - ``operator``: maintenance, probes, certificate import, and every read.
  - ``read``: every read (GET), nothing else.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from node.api.problems import problem
from node.api.requests import NODE_KEY
from node.store import tokens

if TYPE_CHECKING:
    from prometheus_client import Counter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN = frozenset({("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")})
"""Routes anyone who reaches the port may call: liveness, readiness, metrics."""

PLATFORM = frozenset({"platform"})
OPERATOR = frozenset({"operator"})
READERS = frozenset({"operator", "read"})
PLATFORM_AND_READERS = frozenset({"platform", "operator", "read"})

RULES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): READERS,
    ("GET", "/v1/status"): READERS,
    ("GET", "/v1/dashboard"): READERS,
    ("GET", "/v1/openapi.json"): PLATFORM_AND_READERS,
    ("GET", "/v1/catalog"): PLATFORM_AND_READERS,
    ("GET", "/v1/cases"): PLATFORM_AND_READERS,
    ("GET", "/v1/cases/{case_id}"): PLATFORM_AND_READERS,
    ("GET", "/v1/certificates/{certificate_id}/usage"): PLATFORM_AND_READERS,
    ("POST", "/v1/cases"): PLATFORM,
    ("POST", "/v1/cases/{case_id}/events"): PLATFORM,
    ("POST", "/v1/certificates/verify"): PLATFORM,
    ("POST", "/v1/certificates/verify-batch"): PLATFORM,
    ("POST", "/v1/consents"): PLATFORM,
    ("POST", "/v1/presentations"): PLATFORM,
    ("POST", "/v1/presentations/verify"): PLATFORM,
    ("PUT", "/v1/maintenance"): OPERATOR,
    ("POST", "/v1/probes"): OPERATOR,
    ("POST", "/v1/certificates"): OPERATOR,
}


def scope_for(method: str, path: str) -> str:
    """The narrowest scope that may ``method path`` (a concrete path, query allowed): what a
    tool holding several tokens should send. Unknown routes get ``read``."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    path = path.split("?", 1)[0]
    for (rule_method, pattern), scopes in RULES.items():
        if rule_method == method and _pattern(pattern).fullmatch(path):
            return next(s for s in ("platform", "read", "operator") if s in scopes)
    return "read"


@functools.cache
def _pattern(route: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route)))


UNMATCHED = "unmatched"
"""The route label of a request that matches no route (its path is not a label: unbounded)."""


def route_of(request: web.Request) -> tuple[str, str]:
    """(method, route pattern) of a request; HEAD counts as the GET it mirrors."""
    method = "GET" if request.method == "HEAD" else request.method
    info = request.match_info
    if isinstance(info, web.UrlMappingMatchInfo) and info.route.resource is not None:
        return method, info.route.resource.canonical
    return method, UNMATCHED


def presented_token(request: web.Request) -> str | None:
    """The token in ``Authorization``: Bearer, or Basic with the token as password."""
    header = request.headers.get("Authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() == "bearer":
        return value.strip() or None
    if kind.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def allowed_hosts(request: web.Request, configured: Iterable[str]) -> set[str]:
    """The ``Host`` values this request may carry (lower case)."""
    allowed = {name.lower() for name in configured}
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if sockname:
        host, port = str(sockname[0]), int(sockname[1])
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        shown = f"[{host}]" if address is not None and address.version == 6 else host
        allowed.add(f"{shown}:{port}".lower())
        if address is not None and address.is_loopback:
            allowed.update({f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"})
    return allowed


def access_middleware(configured_hosts: Iterable[str], refusals: Counter) -> Middleware:
    hosts = tuple(configured_hosts)

    def refuse(route: tuple[str, str], status: int, reason: str, detail: str) -> web.Response:
        refusals.labels(route[1], reason).inc()
        response = problem(status, reason, detail)
        if status == 401:
            # Two challenges, each in its own header: browsers then offer Basic (the token
            # as password), API clients read Bearer.
            response.headers.add("WWW-Authenticate", 'Bearer realm="yrd"')
            response.headers.add("WWW-Authenticate", 'Basic realm="yrd", charset="UTF-8"')
        return response

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        host = request.headers.get("Host", "").lower()
        if host not in allowed_hosts(request, hosts):
            return refuse(
                route,
                421,
                "misdirected_request",
                "this node does not answer for the host named in the request; use its "
                "listen address, or add the name to [http] allowed_hosts in node.toml",
            )
        if route in OPEN:
            return await handler(request)
        token = presented_token(request)
        if token is None:
            return refuse(
                route,
                401,
                "unauthorized",
                "a bearer token is required (Authorization: Bearer <token>); an operator "
                "makes one with `yrd token create`",
            )
        found = tokens.lookup(request.app[NODE_KEY].db.reader(), token)
        if found is None:
            return refuse(route, 401, "unauthorized", "the bearer token is not one in force")
        admitted = RULES.get(route, frozenset())
        if route[1] != UNMATCHED and found.scope not in admitted:
            needs = " or ".join(sorted(admitted)) or "a route rule"
            return refuse(
                route,
                403,
                "forbidden",
                f"a {found.scope} token may not {route[0]} {route[1]}; it needs {needs}",
            )
        return await handler(request)

    return check

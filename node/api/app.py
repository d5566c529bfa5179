"""The HTTP application of a node.

Rules kept here:
- Liveness (``/healthz``) is trivial; readiness (``/readyz``) reports each check by name and
  answers 503 when any fails.
- Who may call what is ``node.api.access``: a token in force with the route's scope, on a
  ``Host`` this node answers for.
- ``/readyz`` is open, so it says only whether each check passes; why one fails is in
  ``/v1/status`` (which needs a token), since it may name files and internal errors.
- Errors are ``application/problem+json`` naming the field at fault; request bodies are
  bounded.
- A store that refuses writes (disk full, I/O error) is 503 ``store_unavailable`` with
  ``Retry-After``: nothing of the request was kept, the same request may succeed later.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from node.api import cases, certificates, openapi
from node.api.access import access_middleware
from node.api.dashboard import dashboard
from node.api.dashboard_feed import dashboard_feed
from node.api.problems import ProblemError, problem
from node.api.requests import NODE_KEY, json_response, read_json
from node.cases.catalog import matter_to_json, merge
from node.protocol.faults import Refusal
from node.store.database import StoreUnavailable
from node.trust.manifest import format_time
from node.wire import pb

if TYPE_CHECKING:
    from node.runtime.node import Node

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
STORE_RETRY_AFTER = 5
"""Seconds a caller is asked to wait after a 503 ``store_unavailable``."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem(exc.status, exc.code, exc.detail, field=exc.field)
    except Refusal as exc:
        return problem(409, exc.code.value, exc.text, field=exc.field or None)
    except StoreUnavailable:
        response = problem(
            503,
            "store_unavailable",
            "the node's store cannot take writes now (disk full, I/O error, or its database not "
            "answering); nothing of this request was kept; send it again later",
        )
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
        return response
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "body_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
    except web.HTTPException as exc:
        # The router's own refusals (404, 405) are errors like any other: problem+json too.
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = problem(exc.status, code, f"{request.method} {request.path}: {exc.reason}")
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        # A bug, not the caller's fault: logged with its traceback, answered as a problem
        # like every other error, without the internals.
        log.exception("unhandled error", extra={"path": request.path})
        return problem(500, "internal_error", "the node failed to answer; see its log")


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    checks = {
        name: "ok" if verdict == "ok" else "failing"
        for name, verdict in request.app[NODE_KEY].health.readiness().items()
    }
    ready = all(v == "ok" for v in checks.values())
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    output = generate_latest(request.app[NODE_KEY].metrics.registry)
    return web.Response(body=output, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].health.status())


async def set_maintenance(request: web.Request) -> web.Response:
    """Operators: ``{"on": true|false}`` switches maintenance mode (readiness fails while on)."""
    node = request.app[NODE_KEY]
    body = await read_json(request)
    on = body.get("on")
    if not isinstance(on, bool):
        raise ProblemError(422, "invalid_maintenance", "on must be true or false", field="on")
    node.health.set_maintenance(on)
    return json_response({"maintenance": on, "checks": node.health.readiness()})


async def catalog(request: web.Request) -> web.Response:
    """The federated matter catalog: this province's matters and every peer's announced ones."""
    node = request.app[NODE_KEY]
    held = node.catalogs.peers()
    catalogs = [node.catalog, *(c for c, _ in held)]
    announced = {c.province: at for c, at in held}
    provinces = [
        {
            "province": c.province,
            "version": c.version,
            "matters": len(c.matters),
            "announced_at": format_time(announced[c.province]) if c.province in announced else None,
            "own": c.province == node.catalog.province,
        }
        for c in sorted(catalogs, key=lambda c: c.province)
    ]
    matters = [matter_to_json(m) for m in merge(catalogs)]
    return json_response({"provinces": provinces, "matters": matters})


async def send_probes(request: web.Request) -> web.Response:
    """Operator diagnostics: send ``count`` signed probes to ``peer`` through the outbox."""
    node = request.app[NODE_KEY]
    body = await read_json(request)
    peer = body.get("peer")
    if not isinstance(peer, str) or peer not in node.peers:
        raise ProblemError(
            422, "unknown_peer", f"peer must be one of {sorted(node.peers)}", field="peer"
        )
    most, largest = node.config.max_probes, node.config.max_probe_payload_bytes
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= most:
        raise ProblemError(
            422, "invalid_count", f"count must be an integer from 1 to {most}", field="count"
        )
    size = body.get("payload_bytes", 0)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= largest:
        raise ProblemError(
            422,
            "invalid_payload_bytes",
            f"payload_bytes must be an integer from 0 to {largest}",
            field="payload_bytes",
        )
    payload = bytes(size)
    ids = await node.courier.send(
        peer, [("probe", pb.Probe(sequence=i, payload=payload)) for i in range(count)]
    )
    return json_response({"peer": peer, "message_ids": ids}, status=202)


def build_app(node: Node) -> web.Application:
    middlewares: list[Middleware] = [
        problems_middleware,
        access_middleware(node.config.allowed_hosts, node.metrics.http_refusals),
    ]
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[NODE_KEY] = node
    app.router.add_get("/", dashboard)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/dashboard", dashboard_feed)
    app.router.add_get("/v1/catalog", catalog)
    app.router.add_put("/v1/maintenance", set_maintenance)
    app.router.add_post("/v1/probes", send_probes)
    app.router.add_get("/v1/openapi.json", openapi.openapi)
    cases.add_routes(app)
    certificates.add_routes(app)
    return app

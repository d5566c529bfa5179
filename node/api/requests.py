"""What every route shares: the node the app serves, JSON bodies in and out."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.api.problems import ProblemError

if TYPE_CHECKING:
    from node.runtime.node import Node

NODE_KEY: web.AppKey[Node] = web.AppKey("node")


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; malformed or non-object bodies are problems."""
    if request.content_type != "application/json":
        raise ProblemError(415, "unsupported_media_type", "send the body as application/json")
    try:
        body = await request.json()
    except RecursionError as exc:
        raise ProblemError(400, "malformed_json", "request body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise ProblemError(400, "malformed_json", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProblemError(400, "malformed_json", "request body must be a JSON object")
    return body

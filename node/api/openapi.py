"""The REST API's OpenAPI 3.1 document, served at ``GET /v1/openapi.json``.

Rules kept here:
- The document (``openapi.json`` beside this module, shipped as package data) is written by
  hand and is the API's contract; ``tests/test_openapi.py`` holds the server to it: every
  route is documented and nothing else is, and every request and response of a real
  two-node run is checked against it.
- It is read once, when the module is imported, and served byte for byte. A document that
  is missing or not JSON stops the app from being built, not its first reader.
- Like every ``/v1`` route it needs the bearer token when one is configured.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final

from aiohttp import web


def _load() -> bytes:
    text = resources.files("node.api").joinpath("openapi.json").read_bytes()
    if not isinstance(json.loads(text), dict):
        raise ValueError("node/api/openapi.json must hold a JSON object")
    return text


DOCUMENT: Final[bytes] = _load()


def document() -> dict[str, Any]:
    """The document, parsed afresh: callers may change their copy."""
    parsed: dict[str, Any] = json.loads(DOCUMENT)
    return parsed


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT, content_type="application/json", charset="utf-8")

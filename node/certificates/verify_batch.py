"""A bulk verification (``POST /v1/certificates/verify-batch``): its body read and bounded.

Rules kept here: the body is ``{"items": [...]}`` and nothing else; the list holds 1 to the
node's configured limit of items, else the whole request is refused before any item is
asked (``empty_batch``, ``too_many_items``). Each item is read like a
``POST /v1/certificates/verify`` body on its own (``Requester.verify_each``): a bad item is
refused alone, the others are answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from node.certificates.verification import VerificationRefused


def batch_items(body: Mapping[str, Any], *, limit: int) -> Sequence[Any]:
    """The items of a bulk verification body, at most ``limit``; raises VerificationRefused
    for the request as a whole."""
    for key in body:
        if key != "items":
            raise VerificationRefused("unknown_field", f"{key} is not a field here", field=key)
    items = body.get("items")
    if not isinstance(items, list):
        raise VerificationRefused(
            "missing_field", "items is required: a list of verification questions", field="items"
        )
    if not items:
        raise VerificationRefused(
            "empty_batch", f"items is empty; send 1 to {limit} questions", field="items"
        )
    if len(items) > limit:
        raise VerificationRefused(
            "too_many_items",
            f"items holds {len(items)} questions; this node takes at most {limit} a request",
            field="items",
        )
    return items

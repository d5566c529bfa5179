"""The certificate routes of the REST API (DESIGN.md §9): online verification, offline
presentations, usage records, and the node's own library when no platform supplies one.

Refusals are problem documents with the issuer's (or this node's) stable code and the field
at fault: 422 malformed or unknown issuer, 403 holder, purpose, field or consent refused, or
a certificate type or purpose the manifest does not let this node ask for
(``certificate_not_permitted``, refused before anything is sent), 404 no such certificate,
409 a certificate that cannot be presented, 503 the issuer's node or library did not answer.
A bulk verification answers 200 with each item's result or problem (the status it would
have had alone) in order; only a malformed list is refused whole (422).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.api.problems import ProblemError, problem_body, refusal_problem, refusal_status
from node.api.requests import NODE_KEY, json_response, read_json
from node.certificates.library import StoreLibrary
from node.certificates.model import CertificateError, parse_certificate
from node.certificates.verification import VerificationRefused, Verified
from node.certificates.verify_batch import batch_items

_USAGE_STATUSES = {"not_issuer": 404}
"""The path names a certificate whose usage this node does not record: no such resource
here (in a body, ``not_issuer`` is 422)."""


async def verify(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    certificates = node.certificates
    try:
        verified = await certificates.verify(certificates.request(body))
    except VerificationRefused as refusal:
        raise refusal_problem(refusal) from None
    return json_response(verified.to_json())


async def verify_batch(request: web.Request) -> web.Response:
    """Many questions at once: one result or problem per item, in order."""
    node = request.app[NODE_KEY]
    body = await read_json(request)
    try:
        items = batch_items(body, limit=node.config.verify_batch_items)
    except VerificationRefused as refusal:
        raise refusal_problem(refusal) from None
    answers = await node.certificates.verify_each(items)
    return json_response({"results": [_item_result(answer) for answer in answers]})


def _item_result(answer: Verified | VerificationRefused) -> dict[str, Any]:
    if isinstance(answer, Verified):
        return {"result": answer.to_json()}
    status = refusal_status(answer.code)
    return {"problem": problem_body(status, answer.code, answer.detail, field=answer.field)}


async def usage(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        return json_response(node.certificates.usage(request.match_info["certificate_id"]))
    except VerificationRefused as refusal:
        raise refusal_problem(refusal, statuses=_USAGE_STATUSES) from None


async def grant_consent(request: web.Request) -> web.Response:
    """The province platform: sign a holder's consent grant (the holder signed in there)."""
    node = request.app[NODE_KEY]
    body = await read_json(request)
    try:
        return json_response(node.certificates.grant_consent(body), status=201)
    except VerificationRefused as refusal:
        raise refusal_problem(refusal) from None


async def issue_presentation(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    try:
        return json_response(await node.certificates.issue(body), status=201)
    except VerificationRefused as refusal:
        raise refusal_problem(refusal) from None


async def verify_presentation(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    try:
        return json_response(await node.certificates.check_presentation(body))
    except VerificationRefused as refusal:
        raise refusal_problem(refusal) from None


async def import_certificate(request: web.Request) -> web.Response:
    """Operators: put a certificate of this province into the node's own library."""
    node = request.app[NODE_KEY]
    library = node.certificates.library
    if not isinstance(library, StoreLibrary):
        raise ProblemError(
            409,
            "library_is_platform",
            "this node reads certificates from its province platform; import them there",
        )
    body = await read_json(request)
    try:
        certificate = parse_certificate(body)
    except CertificateError as error:
        raise ProblemError(422, error.code, error.detail, field=error.field) from None
    if certificate.issuer_province != node.config.province:
        raise ProblemError(
            422,
            "not_issuer",
            f"the certificate was issued in {certificate.issuer_province}; a node's library "
            f"holds only {node.config.province}'s",
            field="certificate_id",
        )
    await library.put(certificate, node.clock())
    # A revocation or suspension goes out to every peer now, not at the next refresh.
    await node.certificates.publish()
    return json_response({"certificate_id": str(certificate.certificate_id)}, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/certificates/verify", verify)
    app.router.add_post("/v1/certificates/verify-batch", verify_batch)
    app.router.add_get("/v1/certificates/{certificate_id}/usage", usage)
    app.router.add_post("/v1/certificates", import_certificate)
    app.router.add_post("/v1/consents", grant_consent)
    app.router.add_post("/v1/presentations", issue_presentation)
    app.router.add_post("/v1/presentations/verify", verify_presentation)

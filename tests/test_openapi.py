"""The REST API's OpenAPI document (node/api/openapi.json) against the server that serves it.

The document must be valid OpenAPI 3.1, list exactly the routes the app registers, and
describe every request and response of a real two-node run: a case's whole life from
Shanghai (accepting) to Jiangsu (handling) and back, a Shanghai certificate verified online
and offline from Jiangsu, and the usual mistakes of both.

How requests and responses are checked: ``Conforming`` wraps the aiohttp test client and
hands openapi-core what actually crossed the wire, through its raw wrappers
(``openapi_core.testing.MockRequest`` and ``MockResponse``): the bytes, headers, query and
status sent and received. openapi-core's aiohttp integration wraps the *server's*
``web.Request``/``web.Response`` instead, which would mean a test middleware inside the app
and would miss what aiohttp itself adds on the way out (the charset in Content-Type, for
one). Each call states whether the document should accept the request: a mistake the
document can see (malformed JSON, a bad enum, no token) must be refused by both, one it
cannot (an unknown matter code, a transition the case's status forbids) only by the server;
either way the server's answer must be one the document describes.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient
from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from node.api.app import MAX_BODY_BYTES, build_app
from node.api.openapi import DOCUMENT, document
from node.certificates.model import TYPES
from node.identifiers import make_certificate_id, parse_certificate_id
from node.runtime.node import Node
from tests.cases import case_body, matter_of, status_of
from tests.certificate_samples import HANGZHOU_HEALTH, LI_MINGHUA, OTHER_PERSON, sample_json
from tests.nodes import config_for, eventually, make_mesh, serving, settled

Client = TestClient[Any, Any]

SCOPED = "scoped"
"""``Conforming.call``'s default: the node's token of the scope the route admits."""
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
JS_MATTER = matter_of("jiangsu")
DOCUMENT_SHA256 = "cd" * 32

SPEC = document()


@cache
def checker() -> OpenAPI:
    """openapi-core's view of the document, built once (it checks the whole document first)."""
    # Problem documents are JSON; openapi-core only knows plain application/json by name.
    config = Config(extra_media_type_deserializers={"application/problem+json": json_loads})
    return OpenAPI.from_dict(SPEC, config=config)


def documented_operations(tag: str | None = None) -> set[tuple[str, str]]:
    """Every documented (path, method), or only those of operations tagged ``tag``."""
    return {
        (path, method)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in HTTP_METHODS and (tag is None or tag in item[method].get("tags", []))
    }


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Conforming:
    """A client for one node that checks every request and response against the document."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: set[tuple[str, str, int]] = set()
        """(documented path, method, status) of every exchange."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = SCOPED,
        conforms: bool = True,
        status: int | None = None,
        code: str | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None and token != SCOPED:
            sent["Authorization"] = f"Bearer {token}"
        elif token == SCOPED:
            scoped = self.client.tokens[self.client.scope_for(method, path)]
            sent["Authorization"] = f"Bearer {scoped}"
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
        if data is not None:
            sent["Content-Type"] = content_type
        # A file-like body: aiohttp warns about (and filterwarnings fails on) big raw bytes.
        payload = io.BytesIO(data) if data is not None and len(data) > 65536 else data
        # Without a token: past the scoped client, which would add one.
        sender = self.client.session.request if token is None else self.client.request
        target = self.client.make_url(path) if token is None else path
        async with sender(method, target, data=payload, params=params, headers=sent) as response:
            reply = Reply(response.status, dict(response.headers), await response.read())

        request = MockRequest(
            host_url=str(self.client.make_url("/")).rstrip("/"),
            method=method,
            path=path,
            args=params,
            headers=sent,
            data=data,
            content_type=content_type if data is not None else "",
        )
        refusal = _request_refusal(request)
        label = f"{method} {path} -> {reply.status}"
        if conforms:
            assert refusal is None, f"{label}: the document refuses the request: {refusal}"
        else:
            assert refusal is not None, f"{label}: the document accepts a request it should not"
        try:
            checker().validate_response(
                request,
                MockResponse(
                    data=reply.body,
                    status_code=reply.status,
                    headers=reply.headers,
                    content_type=reply.headers.get("Content-Type", ""),
                ),
            )
        except OpenAPIError as error:
            raise AssertionError(f"{label}: response off the document: {_explain(error)}") from None
        if status is not None:
            assert reply.status == status, f"{label}: {reply.body[:500]!r}"
        if code is not None:
            assert reply.headers["Content-Type"].startswith("application/problem+json"), label
            assert reply.json()["code"] == code, f"{label}: {reply.body[:500]!r}"
        self.seen.add((_documented_path(path), method.lower(), reply.status))
        return reply


def _request_refusal(request: MockRequest) -> str | None:
    try:
        checker().validate_request(request)
    except PathError as error:
        raise AssertionError(
            f"{request.method} {request.path} is not documented: {error}"
        ) from None
    except OpenAPIError as error:
        return _explain(error)
    return None


def _explain(error: BaseException) -> str:
    """The error and its causes: openapi-core wraps schema errors several layers deep."""
    parts = [f"{type(error).__name__}: {error}"]
    schema_errors = getattr(error, "schema_errors", None)
    if schema_errors:
        parts.extend(f"  {e.json_path}: {e.message}" for e in schema_errors)
    if error.__cause__ is not None:
        parts.append(_explain(error.__cause__))
    return "\n".join(parts)


def _documented_path(path: str) -> str:
    parts = path.split("/")
    if len(parts) >= 4 and parts[1:3] == ["v1", "cases"]:
        parts[3] = "{case_id}"
    if len(parts) == 5 and parts[1:3] == ["v1", "certificates"] and parts[4] == "usage":
        parts[3] = "{certificate_id}"
    return "/".join(parts)


@asynccontextmanager
async def pair(
    mesh: Path, **changes: object
) -> AsyncIterator[tuple[Node, Conforming, Node, Conforming]]:
    """Shanghai (accepting) and Jiangsu (handling), both requiring the token, catalogs
    exchanged; ``changes`` apply to both nodes' configs."""
    async with (
        serving(config_for(mesh, "shanghai", **changes)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **changes)) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        yield sh, Conforming(sh_client), js, Conforming(js_client)


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


# -- the document itself -------------------------------------------------------------------


def test_document_is_valid_openapi_31() -> None:
    """The shipped document is a valid OpenAPI 3.1.0 document and every $ref resolves."""
    assert SPEC["openapi"] == "3.1.0"
    validate(SPEC, cls=OpenAPIV31SpecValidator)


def test_routes_match_document() -> None:
    """Every route the app registers is documented, and every documented operation is a route
    (HEAD, which aiohttp adds to each GET, is left out of both)."""
    stub = cast(
        Node,
        SimpleNamespace(
            config=SimpleNamespace(allowed_hosts=()),
            metrics=SimpleNamespace(http_refusals=None),
        ),
    )
    app = build_app(stub)
    registered = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        for route in resource:
            if route.method != "HEAD":
                registered.add((path, route.method.lower()))
    assert registered == documented_operations()


def test_bearer_auth_on_all_but_health() -> None:
    """Every operation requires a token except /healthz, /readyz and /metrics, which are open;
    every other operation names the scopes it admits, exactly as the node enforces them."""
    from node.api.access import RULES

    assert SPEC["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    open_paths = {
        path
        for path, method in documented_operations()
        if SPEC["paths"][path][method].get("security") == []
    }
    assert open_paths == {"/healthz", "/readyz", "/metrics"}
    for path, method in documented_operations():
        operation = SPEC["paths"][path][method]
        if path in open_paths:
            continue
        assert sorted(RULES[(method.upper(), path)]) == operation["x-scopes"], path


# -- a real run ----------------------------------------------------------------------------


async def test_case_lifecycle_conforms(mesh: Path) -> None:
    """A case's whole life (submit, replay, accept, request_supplement, supplement, complete,
    evaluate), its listing and every operator route answer as the document says, and every
    documented operation but the certificate ones is exercised."""
    async with pair(mesh) as (sh, sh_api, js, js_api):
        body = case_body(JS_MATTER, seed=11)
        key = {"Idempotency-Key": "openapi-lifecycle-1"}
        created = await sh_api.call("POST", "/v1/cases", body=body, headers=key, status=201)
        case_id = created.json()["case_id"]
        assert created.headers["Location"] == f"/v1/cases/{case_id}"
        assert "Idempotent-Replayed" not in created.headers
        replayed = await sh_api.call("POST", "/v1/cases", body=body, headers=key, status=201)
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json()["case_id"] == case_id
        await eventually(lambda: status_of(js, case_id) == "delivered")
        await eventually(lambda: status_of(sh, case_id) == "delivered")

        events = f"/v1/cases/{case_id}/events"
        await js_api.call("POST", events, body={"action": "accept"}, status=200)
        await eventually(lambda: status_of(sh, case_id) == "accepted")
        await js_api.call(
            "POST",
            events,
            body={"action": "request_supplement", "reason": "照片不清晰"},
            status=200,
        )
        await eventually(lambda: status_of(sh, case_id) == "supplement_requested")
        asked = await sh_api.call(
            "POST", events, body={"action": "supplement", "reason": "已重新上传"}, status=202
        )
        assert asked.json()["request_id"]
        await eventually(lambda: status_of(sh, case_id) == "supplemented")
        await js_api.call(
            "POST",
            events,
            body={
                "action": "complete",
                "result": {"kind": "document", "document_sha256": DOCUMENT_SHA256},
            },
            status=200,
        )
        await eventually(lambda: status_of(sh, case_id) == "completed")
        await sh_api.call(
            "POST", events, body={"action": "evaluate", "level": 5, "comment": "办事快"}, status=202
        )
        await eventually(lambda: status_of(sh, case_id) == "evaluated")
        await eventually(lambda: status_of(js, case_id) == "evaluated")

        sh_view = (await sh_api.call("GET", f"/v1/cases/{case_id}", status=200)).json()
        js_view = (await js_api.call("GET", f"/v1/cases/{case_id}", status=200)).json()
        assert [h["action"] for h in sh_view["history"]] == [
            "deliver",
            "accept",
            "request_supplement",
            "supplement",
            "complete",
            "evaluate",
        ]
        assert [r["state"] for r in sh_view["requests"]] == ["applied", "applied"]
        assert js_view["requests"] == []

        second = case_body(JS_MATTER, seed=12)
        await sh_api.call("POST", "/v1/cases", body=second, status=201)
        page = await sh_api.call(
            "GET", "/v1/cases", params={"limit": "1", "role": "accepting"}, status=200
        )
        assert page.json()["next_cursor"] is not None
        await sh_api.call(
            "GET",
            "/v1/cases",
            params={"limit": "1", "cursor": page.json()["next_cursor"], "peer": "jiangsu"},
            status=200,
        )
        await js_api.call(
            "GET", "/v1/cases", params={"status": "evaluated", "overdue": "false"}, status=200
        )
        await sh_api.call("GET", "/v1/cases", params={"overdue": "true"}, status=200)

        status = (await sh_api.call("GET", "/v1/status", status=200)).json()
        assert status["satisfaction"]["jiangsu"]["levels"]["5"] == 1
        await js_api.call("GET", "/v1/status", status=200)
        sh.history.sample()  # a second sample: increases and latencies, not only gauges
        feed = (await sh_api.call("GET", "/v1/dashboard", status=200)).json()
        assert feed["history"]["peers"]["jiangsu"]["sent"][-1] is not None
        await sh_api.call("GET", "/v1/catalog", status=200)
        await sh_api.call("GET", "/metrics", status=200)
        await sh_api.call("GET", "/healthz", token=None, status=200)
        await sh_api.call("GET", "/readyz", token=None, status=200)
        await sh_api.call("PUT", "/v1/maintenance", body={"on": True}, status=200)
        await sh_api.call("GET", "/readyz", token=None, status=503)
        await sh_api.call("PUT", "/v1/maintenance", body={"on": False}, status=200)
        await sh_api.call(
            "POST",
            "/v1/probes",
            body={"peer": "jiangsu", "count": 2, "payload_bytes": 16},
            status=202,
        )
        await sh_api.call("GET", "/", status=200)
        await sh_api.call("GET", "/v1/openapi.json", status=200)

    exercised = {
        (path, method) for path, method, status in sh_api.seen | js_api.seen if status < 300
    }
    assert exercised == documented_operations() - documented_operations("certificates")


async def test_refusals_conform(mesh: Path) -> None:
    """Malformed JSON, a wrong media type, an oversize body, an unknown matter, a bad digest, a
    reused or malformed Idempotency-Key, an illegal transition, the wrong side, an unknown
    case, an invalid query and a missing or wrong token are each a problem the document
    describes, and the document itself refuses exactly those it can see."""
    async with pair(mesh) as (sh, sh_api, js, js_api):
        body = case_body(JS_MATTER, seed=21)

        # Bodies.
        await sh_api.call(
            "POST",
            "/v1/cases",
            data=b'{"matter_code": ',
            conforms=False,
            status=400,
            code="malformed_json",
        )
        await sh_api.call(
            "POST", "/v1/cases", data=b"[]", conforms=False, status=400, code="malformed_json"
        )
        await sh_api.call(
            "POST",
            "/v1/cases",
            data=json.dumps(body).encode(),
            content_type="text/plain",
            conforms=False,
            status=415,
            code="unsupported_media_type",
        )
        await sh_api.call(
            "POST",
            "/v1/probes",
            data=b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}',
            conforms=False,
            status=413,
            code="body_too_large",
        )

        # Submissions.
        unknown = {**body, "matter_code": "11320000003011047K2000172999000"}
        await sh_api.call("POST", "/v1/cases", body=unknown, status=422, code="unknown_matter")
        # A name with a bidi override is well-formed JSON text; only the server refuses it.
        hostile = json.loads(json.dumps(body))
        hostile["applicant"]["name"] = "张\u202e三"
        reply = await sh_api.call(
            "POST", "/v1/cases", body=hostile, status=422, code="invalid_text"
        )
        assert reply.json()["field"] == "applicant.name"
        bad_digest = json.loads(json.dumps(body))
        bad_digest["materials"][0]["sha256"] = "AB" * 32
        await sh_api.call(
            "POST", "/v1/cases", body=bad_digest, conforms=False, status=422, code="invalid_digest"
        )
        await sh_api.call(
            "POST",
            "/v1/cases",
            body={**body, "priority": "high"},
            conforms=False,
            status=422,
            code="unknown_field",
        )
        await sh_api.call(
            "POST",
            "/v1/cases",
            body=body,
            headers={"Idempotency-Key": "has space"},
            conforms=False,
            status=422,
            code="invalid_idempotency_key",
        )
        key = {"Idempotency-Key": "openapi-refusals-1"}
        created = await sh_api.call("POST", "/v1/cases", body=body, headers=key, status=201)
        changed = json.loads(json.dumps(body))
        changed["applicant"]["name"] = "李四"
        await sh_api.call(
            "POST",
            "/v1/cases",
            body=changed,
            headers=key,
            status=409,
            code="idempotency_key_reused",
        )

        # Events.
        case_id = created.json()["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        await eventually(lambda: status_of(sh, case_id) == "delivered")
        events = f"/v1/cases/{case_id}/events"
        await sh_api.call("POST", events, body={"action": "accept"}, status=403, code="wrong_side")
        await js_api.call(
            "POST", events, body={"action": "withdraw"}, status=403, code="wrong_side"
        )
        await js_api.call(
            "POST",
            events,
            body={
                "action": "complete",
                "result": {"kind": "document", "document_sha256": DOCUMENT_SHA256},
            },
            status=409,
            code="illegal_transition",
        )
        await sh_api.call(
            "POST",
            events,
            body={"action": "evaluate", "level": 4},
            status=409,
            code="illegal_transition",
        )
        await js_api.call(
            "POST",
            events,
            body={"action": "reject"},
            conforms=False,
            status=422,
            code="missing_field",
        )
        await js_api.call(
            "POST",
            events,
            body={"action": "deliver"},
            conforms=False,
            status=422,
            code="invalid_action",
        )
        await sh_api.call(
            "POST",
            events,
            body={"action": "evaluate", "level": 9},
            conforms=False,
            status=422,
            code="invalid_evaluation",
        )
        await sh_api.call(
            "POST",
            "/v1/cases/310000-20260101-00/events",
            body={"action": "withdraw"},
            status=404,
            code="unknown_case",
        )
        await sh_api.call("GET", "/v1/cases/310000-20260101-00", status=404, code="unknown_case")

        # Queries.
        for query in (
            {"role": "boss"},
            {"status": "done"},
            {"limit": "0"},
            {"limit": "²"},
            {"cursor": "abc"},
            {"cursor": "١"},
            {"overdue": "yes"},
        ):
            reply = await sh_api.call(
                "GET", "/v1/cases", params=query, conforms=False, status=422, code="invalid_query"
            )
            assert reply.json()["field"] == next(iter(query))
        # A province that is not a peer is well-formed; only the server knows it is not one.
        await sh_api.call(
            "GET", "/v1/cases", params={"peer": "shanghai"}, status=422, code="invalid_query"
        )

        # Operator routes.
        await sh_api.call(
            "PUT",
            "/v1/maintenance",
            body={"on": "yes"},
            conforms=False,
            status=422,
            code="invalid_maintenance",
        )
        await sh_api.call(
            "POST", "/v1/probes", body={"peer": "shanghai"}, status=422, code="unknown_peer"
        )
        await sh_api.call(
            "POST",
            "/v1/probes",
            body={"peer": "jiangsu", "count": 0},
            conforms=False,
            status=422,
            code="invalid_count",
        )
        await sh_api.call(
            "GET", "/", params={"mesh": "https://example.org"}, status=400, code="invalid_mesh_url"
        )

        # The token.
        await sh_api.call(
            "GET", "/v1/status", token=None, conforms=False, status=401, code="unauthorized"
        )
        await sh_api.call("GET", "/v1/status", token="wrong", status=401, code="unauthorized")
        await sh_api.call(
            "POST",
            "/v1/cases",
            body=body,
            token=None,
            conforms=False,
            status=401,
            code="unauthorized",
        )
        await sh_api.call(
            "GET", "/v1/openapi.json", token=None, conforms=False, status=401, code="unauthorized"
        )


def _future(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


async def test_certificates_conform(mesh: Path) -> None:
    """Shanghai imports a card; Jiangsu verifies it with and without consent, Shanghai shows
    who checked it and issues a presentation that Jiangsu verifies before and after the card
    is revoked; consent_required, holder_mismatch, unknown_issuer, certificate_not_found, a
    tampered token, not_issuer and the other mistakes are each a problem the document
    describes, and every certificate operation is exercised."""
    card = sample_json("resident_id_card")
    card_id = card["certificate_id"]
    parts = parse_certificate_id(card_id)
    missing = str(make_certificate_id(parts.type_code, parts.issuer_code, "NOSUCH01"))
    outside = str(make_certificate_id(TYPES["resident_id_card"].type_code, "440300", "GD0001"))
    not_peer = str(
        make_certificate_id(TYPES["birth_medical_certificate"].type_code, HANGZHOU_HEALTH, "ZJ01")
    )
    verify, usage = "/v1/certificates/verify", f"/v1/certificates/{card_id}/usage"
    async with pair(mesh, revocation_refresh_seconds=0.2) as (_, sh_api, js, js_api):
        # The library.
        await sh_api.call("POST", "/v1/certificates", body=card, status=201)
        await js_api.call("POST", "/v1/certificates", body=card, status=422, code="not_issuer")
        await sh_api.call(
            "POST",
            "/v1/certificates",
            body={**card, "holder_name": "王静"},
            status=422,
            code="inconsistent_field",
        )
        await sh_api.call(
            "POST",
            "/v1/certificates",
            body={**card, "status": "lost"},
            conforms=False,
            status=422,
            code="invalid_status",
        )
        await sh_api.call(
            "POST",
            "/v1/certificates",
            body={**card, "colour": "red"},
            conforms=False,
            status=422,
            code="unknown_field",
        )

        # Online verification.
        ask = {
            "certificate_id": card_id,
            "holder_code": LI_MINGHUA,
            "purpose": "hotel_check_in",
            "requester": "南京市某酒店",
        }
        first = (await js_api.call("POST", verify, body=ask, status=200)).json()
        assert (first["status"], first["fields"], first["cached"]) == ("valid", {}, False)
        again = (await js_api.call("POST", verify, body=ask, status=200)).json()
        assert again["cached"] is True and again["attestation"] == first["attestation"]
        grant_body = {"holder_code": LI_MINGHUA, "purpose": "hotel_check_in",
                      "fields": ["name", "address"], "expires_at": _future(3600)}  # fmt: skip
        signed = (await sh_api.call("POST", "/v1/consents", body=grant_body, status=201)).json()
        consent = {"grant": signed["grant"]}
        for body, code in (
            ({**grant_body, "fields": []}, "invalid_consent"),
            ({**grant_body, "purpose": "sightseeing"}, "invalid_consent"),
        ):
            await sh_api.call(
                "POST", "/v1/consents", body=body, conforms=False, status=422, code=code
            )
        asked = {**ask, "fields": ["name", "address"]}
        granted = await js_api.call("POST", verify, body={**asked, "consent": consent}, status=200)
        assert granted.json()["fields"] == {
            "name": card["fields"]["name"],
            "address": card["fields"]["address"],
        }
        other = {**grant_body, "purpose": "traffic_violation_handling"}
        other_grant = (await sh_api.call("POST", "/v1/consents", body=other, status=201)).json()
        for body, status, code in (
            (asked, 403, "consent_required"),
            ({**ask, "holder_code": OTHER_PERSON}, 403, "holder_mismatch"),
            ({**ask, "certificate_id": outside}, 422, "unknown_issuer"),
            ({**ask, "certificate_id": not_peer}, 422, "unknown_issuer"),
            ({**ask, "certificate_id": missing}, 404, "certificate_not_found"),
            ({**ask, "purpose": "roadside_vehicle_inspection"}, 403, "purpose_not_allowed"),
            ({**ask, "fields": ["ethnicity"], "consent": consent}, 403, "field_not_allowed"),
            (
                {**asked, "consent": {"grant": other_grant["grant"]}},
                403,
                "consent_mismatch",
            ),
            ({**ask, "fields": ["colour"], "consent": consent}, 422, "invalid_payload"),
        ):
            await js_api.call("POST", verify, body=body, status=status, code=code)
        for body, status, code in (
            ({**ask, "holder_code": "123"}, 422, "invalid_id_number"),
            ({**ask, "purpose": "sightseeing"}, 422, "invalid_payload"),
            ({**ask, "certificate_id": "2.16.156"}, 422, "invalid_certificate_id"),
            ({**ask, "colour": "red"}, 422, "unknown_field"),
            ({k: v for k, v in ask.items() if k != "holder_code"}, 422, "missing_field"),
            ({**ask, "fields": ["name"] * 33}, 422, "invalid_fields"),
            (
                {**asked, "consent": {"grant_id": "anything-1234", "expires_at": _future(60)}},
                403,
                "consent_unverifiable",
            ),
        ):
            await js_api.call("POST", verify, body=body, conforms=False, status=status, code=code)

        # Usage records: the two disclosures (the cached answer and refusals record nothing).
        records = (await sh_api.call("GET", usage, status=200)).json()["usage"]
        assert [(r["requester_province"], r["fields"], r["consent_grant_id"]) for r in records] == [
            ("jiangsu", ["status", "name", "address"], signed["grant_id"]),
            ("jiangsu", ["status"], None),
        ]
        await js_api.call("GET", usage, status=404, code="not_issuer")
        await sh_api.call(
            "GET",
            "/v1/certificates/2.16.156/usage",
            conforms=False,
            status=422,
            code="invalid_certificate_id",
        )

        # Bulk verification: one result or problem per item, in order.
        batch = "/v1/certificates/verify-batch"
        items = [ask, {**ask, "holder_code": OTHER_PERSON}, {**ask, "colour": "red"}]
        results = (await js_api.call("POST", batch, body={"items": items}, status=200)).json()
        assert results["results"][0]["result"]["cached"] is True
        assert [r.get("problem", {}).get("code") for r in results["results"][1:]] == [
            "holder_mismatch",
            "unknown_field",
        ]
        await js_api.call("POST", batch, body={"items": []}, conforms=False, status=422,
                          code="empty_batch")  # fmt: skip

        # Offline presentations.
        holder = {"certificate_id": card_id, "holder_code": LI_MINGHUA}
        issued = (await sh_api.call("POST", "/v1/presentations", body=holder, status=201)).json()
        token = issued["token"]
        assert issued["size_bytes"] == len(token)
        await js_api.call("POST", "/v1/presentations", body=holder, status=422, code="not_issuer")
        await sh_api.call(
            "POST",
            "/v1/presentations",
            body={**holder, "holder_code": OTHER_PERSON},
            status=403,
            code="holder_mismatch",
        )
        await sh_api.call(
            "POST",
            "/v1/presentations",
            body={**holder, "certificate_id": missing},
            status=404,
            code="certificate_not_found",
        )
        await eventually(lambda: js.certificates.held_list("shanghai") is not None)
        check = "/v1/presentations/verify"
        checked = (await js_api.call("POST", check, body={"token": token}, status=200)).json()
        assert checked["valid"] is True and checked["revocation_list_version"] is not None
        tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
        await js_api.call("POST", check, body={"token": tampered}, status=422, code="bad_signature")
        await js_api.call(
            "POST", check, body={"token": "a token?"}, conforms=False, status=422, code="malformed"
        )
        await js_api.call("POST", check, body={}, conforms=False, status=422, code="missing_field")

        # Revoked: the presentation still checks out, but says so; a new one is refused.
        held = js.certificates.held_list("shanghai")
        assert held is not None
        await sh_api.call(
            "POST", "/v1/certificates", body={**card, "status": "revoked"}, status=201
        )

        def newer_list() -> bool:
            now_held = js.certificates.held_list("shanghai")
            return now_held is not None and now_held.version > held.version

        await eventually(newer_list)
        checked = (await js_api.call("POST", check, body={"token": token}, status=200)).json()
        assert (checked["valid"], checked["status"]) == (False, "revoked")
        await sh_api.call(
            "POST", "/v1/presentations", body=holder, status=409, code="certificate_not_valid"
        )

    exercised = {
        (path, method) for path, method, status in sh_api.seen | js_api.seen if status < 300
    }
    assert exercised == documented_operations("certificates")


async def test_openapi_json_is_the_document(mesh: Path) -> None:
    """GET /v1/openapi.json answers the shipped document, byte for byte, as application/json."""
    async with serving(config_for(mesh, "shanghai")) as (_, client):
        api = Conforming(client)
        reply = await api.call("GET", "/v1/openapi.json", status=200)
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert reply.body == DOCUMENT
    assert reply.json() == SPEC

"""Schemathesis fuzzes the REST API of live nodes against its OpenAPI document.

Two real node processes (``yrd node run``: Shanghai and Jiangsu, catalogs exchanged, a
Shanghai card in Shanghai's library, a presentation of it, and a case from Shanghai to
Jiangsu) serve HTTP on loopback ports. Every request goes with the node's token of the
narrowest scope its route admits (``scope_for``) and the ``Host`` the node answers for,
unless it is about the token or the ``Host``:

- ``test_fuzzed_requests_conform``: for every documented operation, ``EXAMPLES`` generated
  requests that fit the document and, where the operation has something to break,
  ``EXAMPLES`` that break it in one place (a wrong type, a value off its pattern, a missing
  or unknown field), each to one of the two nodes. Half of them name the seeded case, card
  or nodes in their parameters and carry a valid body (``Mesh.bodies``) but for one or two
  generated properties, and but for what a negative example broke: random identifiers
  alone would stop every request at "invalid" or "not found".
- ``test_boundary_requests_conform``: schemathesis's coverage phase, to Shanghai: for each
  operation the boundary values of its schemas, each required part left out, and methods
  the path does not have. These are fixed (about 30 per operation), not drawn at random.
- ``test_refusals_conform``: ``REFUSALS`` requests per guarded operation, each sent with no
  token, a token not in force, a token of a scope the route does not admit, and a ``Host``
  the node does not answer for.

Every answer must be no server error (5xx) and conform to the document: its status is
documented for the operation, its content type is one documented for that status, its body
matches the schema and its documented headers are present and match theirs; a request that
breaks the document must be refused (4xx), and a method the path does not have answered 405.

Reproducible: hypothesis runs derandomized (the examples follow from the test alone) with
no example database, so every run sends the same requests.

Examples are drawn with ``APIOperation.as_strategy`` under the test's own ``@given`` (the
way schemathesis offers for tests that choose their own target and data) rather than by
``schema.parametrize()``, which cannot pick the node per example nor seed the bodies; the
coverage phase exists only through ``parametrize``, whose schema is loaded here at import
(the document is static), since ``schemathesis.pytest.from_fixture`` fails on pytest 9 (it
reads ``Function._nodeid``, which pytest no longer has).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from node.api.access import RULES, scope_for
from node.api.openapi import document
from node.mesh.auth import mesh_tokens
from tests.cases import case_body, matter_of
from tests.certificate_samples import LI_MINGHUA, sample_json
from tests.nodes import BUDGET, make_mesh
from tests.processes import authorized, http, process

pytestmark = pytest.mark.slow

EXAMPLES = 80
"""Generated examples per operation and mode (fitting the document, breaking it): with the
coverage phase's and the refusals, about 3,000 requests in under a minute."""
REFUSALS = 2
"""Generated examples per operation and kind of refusal."""
PROVINCES = ("shanghai", "jiangsu")

SPEC = document()
# An explicit configuration, so none is looked for in the working directory.
SCHEMA = schemathesis.openapi.from_dict(document(), config=schemathesis.Config())
# The token is the test's to send (the narrowest scope, or a wrong one on purpose):
# examples that mangle it would only repeat test_refusals_conform.
SCHEMA.config.generation.update(with_security_parameters=False)
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in SPEC["paths"].items()
    for method in item
    if method in HTTP_METHODS
)
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Refused only when the example broke the document (schemathesis knows which did), and
# 405 only for a method the path does not have.
CHECKS = [*CONFORMANCE, negative_data_rejection, unsupported_method]
SETTINGS: dict[str, Any] = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    # No shrinking: a failure is reported with the request as sent (curl included), and
    # shrinking against live nodes, whose state examples change, costs minutes.
    "phases": [Phase.explicit, Phase.generate],
    # Bodies of cases and certificates are large, and slow to generate by design.
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def _has_input(method: str, path: str) -> bool:
    """Whether ``method path`` takes parameters or a body: something an example can break."""
    item = SPEC["paths"][path]
    operation = item[method.lower()]
    return bool(item.get("parameters") or operation.get("parameters") or "requestBody" in operation)


UNBREAKABLE = {("GET", "/v1/cases/{case_id}")}
"""Operations whose parameters no request can break: ``case_id`` is any non-empty string
(left empty, the path is another route's)."""
FUZZED = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode.is_positive or (_has_input(method, path) and (method, path) not in UNBREAKABLE)
]
GUARDED = [
    pytest.param(method, path, id=f"{method} {path}")
    for method, path in OPERATIONS
    if (method, path) in RULES
]


@dataclass(frozen=True)
class Target:
    """One live node: its base URL and its tokens by scope."""

    province: str
    url: str
    tokens: dict[str, str]


@dataclass(frozen=True)
class Mesh:
    """The live nodes, and what was put in them for examples to name."""

    directory: Path
    targets: tuple[Target, ...]
    parameters: dict[str, str]
    """Valid path and query parameters by name: the seeded case and card, the nodes."""
    bodies: dict[tuple[str, str], dict[str, Any]]
    """A valid body by operation, naming the seeded case, card, holder and presentation."""

    def logs(self) -> str:
        return "\n".join(
            f"--- the end of {t.province}'s node.log\n"
            + (self.directory / t.province / "node.log").read_text()[-4000:]
            for t in self.targets
        )


def _ask(directory: Path, province: str, method: str, path: str, body: Any = None) -> Any:
    """An answer of one node to a request with its token (HTTPError for any refusal)."""
    data = None if body is None else json.dumps(body).encode()
    request = authorized(directory, http(directory, province) + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait(predicate: Callable[[], bool], what: str, timeout: float = BUDGET / 2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not in time: {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    directory = make_mesh(tmp_path_factory.mktemp("fuzz"))
    with ExitStack() as stack:
        for province in PROVINCES:
            stack.enter_context(process(directory, province))

        def catalogs_exchanged() -> bool:
            return all(
                len(_ask(directory, p, "GET", "/v1/catalog")["provinces"]) == len(PROVINCES)
                for p in PROVINCES
            )

        _wait(catalogs_exchanged, "catalogs exchanged")
        card = sample_json("resident_id_card")
        _ask(directory, "shanghai", "POST", "/v1/certificates", card)
        submission = case_body(matter_of("jiangsu"))
        case_id = _ask(directory, "shanghai", "POST", "/v1/cases", submission)["case_id"]

        def delivered() -> bool:
            try:
                case = _ask(directory, "jiangsu", "GET", f"/v1/cases/{case_id}")
            except urllib.error.HTTPError as error:
                if error.code != 404:
                    raise
                return False
            return bool(case["status"] == "delivered")

        _wait(delivered, "the case delivered")
        holder = {"certificate_id": card["certificate_id"], "holder_code": LI_MINGHUA}
        token = _ask(directory, "shanghai", "POST", "/v1/presentations", holder)["token"]
        tokens = mesh_tokens(directory)
        targets = tuple(
            Target(p, http(directory, p), tokens[http(directory, p)]) for p in PROVINCES
        )
        parameters = {
            "case_id": case_id,
            "certificate_id": card["certificate_id"],
            "mesh": ",".join(t.url for t in targets),
        }
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
        question = {
            **holder,
            "purpose": "hotel_check_in",
            "fields": ["name"],
            "consent": {"grant_id": "grant-fuzz-0001", "expires_at": expires},
            "requester": "南京市某酒店",
        }
        bodies = {
            ("POST", "/v1/cases"): case_body(matter_of("jiangsu"), seed=2),
            ("POST", "/v1/cases/{case_id}/events"): {"action": "accept"},
            ("POST", "/v1/certificates"): card,
            ("POST", "/v1/certificates/verify"): question,
            ("POST", "/v1/certificates/verify-batch"): {"items": [question, dict(holder)]},
            ("POST", "/v1/presentations"): holder,
            ("POST", "/v1/presentations/verify"): {"token": token},
            ("POST", "/v1/probes"): {"peer": "jiangsu", "count": 1, "payload_bytes": 16},
            ("PUT", "/v1/maintenance"): {"on": False},
        }
        yield Mesh(directory, targets, parameters, bodies)


def _body_schema(method: str, path: str) -> dict[str, Any]:
    """The JSON schema of ``method path``'s request body, its references followed."""
    schema = SPEC["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]
    schema = schema["schema"]
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema  # type: ignore[no-any-return]


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` fits ``schema`` (a part of the document; its references resolve)."""
    rooted = {**schema, "components": SPEC["components"]}
    return Draft202012Validator(rooted, format_checker=FormatChecker()).is_valid(value)


def _mutant(case: Case, valid: dict[str, Any], chosen: frozenset[str]) -> Case:
    """``case`` with the body ``valid`` but for the top-level properties ``chosen`` and those
    the generated body breaks (off their schema, unknown, or a required one left out), which
    are as generated. A negative example so stays negative where it was broken and valid
    elsewhere: its refusal is then about what was broken, not an invalid identifier."""
    generated = case.body
    if not isinstance(generated, dict):
        return case
    schema = _body_schema(case.method, case.operation.path)
    declared = schema.get("properties", {})
    broken = {k for k, v in generated.items() if k not in declared or not _fits(v, declared[k])}
    dropped = {k for k in schema.get("required", []) if k not in generated}
    fuzzed = chosen | broken | dropped
    body = {k: v for k, v in valid.items() if k not in fuzzed}
    body.update({k: generated[k] for k in fuzzed if k in generated})
    case.body = body
    return case


def _examples(operation: Any, mode: GenerationMode, mesh: Mesh) -> Any:
    """Examples of ``operation`` in ``mode``: half as generated, half naming the seeded case,
    card and nodes in their parameters and with a valid body (``Mesh.bodies``) but for one
    or two generated properties and those a negative example breaks."""
    generated = operation.as_strategy(generation_mode=mode)
    # Fixed parameters are left alone by negative examples too: something else is broken.
    fixed = {
        location: {k: v for k, v in mesh.parameters.items() if k in {p.name for p in declared}}
        for location, declared in (
            ("path_parameters", operation.path_parameters),
            ("query", operation.query),
        )
    }
    fixed = {location: values for location, values in fixed.items() if values}
    seeded = operation.as_strategy(generation_mode=mode, **fixed) if fixed else generated
    valid = mesh.bodies.get((operation.method.upper(), operation.path))
    if valid:
        chosen = st.frozensets(st.sampled_from(sorted(valid)), max_size=2)
        seeded = st.tuples(seeded, chosen).map(lambda pair: _mutant(pair[0], valid, pair[1]))
    return st.one_of(generated, seeded)


def _scoped(case: Case, target: Target) -> dict[str, str]:
    """The ``Authorization`` header with ``target``'s token of the narrowest scope."""
    return {"Authorization": f"Bearer {target.tokens[scope_for(case.method, case.formatted_path)]}"}


def _check(
    mesh: Mesh, case: Case, target: Target, headers: dict[str, str], checks: list[Any]
) -> Any:
    """Send ``case`` to ``target`` with ``headers``, check the answer, and return it."""
    with requests.Session() as session:
        response = case.call(base_url=target.url, session=session, headers=headers, timeout=30)
    if response.status_code >= 500:
        # The answer says only "see its log": the traceback is there.
        print(mesh.logs())
    case.validate_response(response, checks=checks, headers=headers)
    return response


@pytest.mark.parametrize(("method", "path", "mode"), FUZZED)
def test_fuzzed_requests_conform(mesh: Mesh, method: str, path: str, mode: GenerationMode) -> None:
    """Generated requests, fitting the document or breaking it, sent with the narrowest
    token, get no server error and an answer the document describes."""
    operation = SCHEMA[path][method]

    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(case=_examples(operation, mode, mesh), target=st.sampled_from(mesh.targets))
    def fuzz(case: Case, target: Target) -> None:
        _check(mesh, case, target, _scoped(case, target), CHECKS)

    fuzz()


@SCHEMA.parametrize()
@settings(phases=[Phase.explicit], database=None, deadline=None)
def test_boundary_requests_conform(case: Case, mesh: Mesh) -> None:
    """Boundary values, left-out required parts and undocumented methods, sent to Shanghai
    with the narrowest token, get no server error and an answer the document describes."""
    target = mesh.targets[0]
    _check(mesh, case, target, _scoped(case, target), CHECKS)


def _refusals(case: Case, target: Target) -> list[tuple[str, dict[str, str], int]]:
    """(what, headers, expected status) of each refusal ``case``'s route can give."""
    rebound = f"rebound.example:{urlsplit(target.url).port}"
    refusals = [
        ("no token", {}, 401),
        ("a token not in force", {"Authorization": "Bearer yrd_not-a-token"}, 401),
        ("a Host the node does not answer for", {**_scoped(case, target), "Host": rebound}, 421),
    ]
    refused = sorted(set(target.tokens) - RULES[(case.method, case.operation.path)])
    if refused:
        wrong = target.tokens[refused[0]]
        refusals.append((f"a {refused[0]} token", {"Authorization": f"Bearer {wrong}"}, 403))
    return refusals


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_refusals_conform(mesh: Mesh, method: str, path: str) -> None:
    """Generated requests with no token, a token not in force, a token of a scope the route
    does not admit or a Host the node does not answer for are refused (401, 403, 421) with
    an answer the document describes."""
    operation = SCHEMA[path][method]

    @settings(max_examples=REFUSALS, **SETTINGS)
    @given(case=operation.as_strategy(), target=st.sampled_from(mesh.targets))
    def refuse(case: Case, target: Target) -> None:
        for what, headers, status in _refusals(case, target):
            response = _check(mesh, case, target, headers, CONFORMANCE)
            assert response.status_code == status, f"{what}: {response.status_code}"

    refuse()

"""One vocabulary of refusals: the certificate domain's errors share ``Refused`` and carry no
HTTP status; the REST API's one table (``node.api.problems``) gives each code its status,
and the codes a case's check waits on (``retry_later``) are exactly those the API answers
with a 5xx. The pure rule modules of ``node.certificates`` touch no clock, storage or
network; a case's typed question reads like the REST body it replaces."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from node.api.problems import REFUSAL_STATUS, refusal_problem, refusal_status
from node.certificates.consent import ConsentRefused
from node.certificates.model import CertificateError
from node.certificates.policy import PolicyRefusal
from node.certificates.presentation import PresentationError
from node.certificates.revocation import RevocationError
from node.certificates.verification import (
    RETRY_LATER,
    VerificationRefused,
    VerifyQuestion,
    parse_verify_request,
)
from node.trust.keys import SigningKey
from node.vocabulary import Refused
from tests.certificate_samples import LI_MINGHUA, NOW, manifest_for, sample_json

PURE = (
    "model",
    "certificate_types",
    "policy",
    "consent",
    "presentation",
    "revocation",
    "issuers",
    "verification",
)
ALLOWED = (
    *(f"node.certificates.{name}" for name in PURE),
    "node.trust.",
    "node.wire",
    "node.identifiers",
    "node.text",
    "node.vocabulary",
)


@pytest.mark.parametrize(
    "error",
    [
        VerificationRefused("certificate_not_found", "none such", field="certificate_id"),
        PolicyRefusal("purpose_not_allowed", "purpose", "is not a scene"),
        ConsentRefused("consent_expired", "consent.grant", "has expired"),
        CertificateError("holder_mismatch", "holder_code", "is not the holder"),
        RevocationError("malformed", "signed_list", "is malformed"),
        PresentationError("expired", "token", "has expired"),
    ],
)
def test_every_certificate_refusal_is_a_refused_with_no_status(error: Refused) -> None:
    assert isinstance(error, Refused)
    assert error.code and error.field and str(error) == error.detail
    assert not hasattr(error, "status")
    problem = refusal_problem(error)
    assert (problem.code, problem.field, problem.detail) == (error.code, error.field, error.detail)
    assert problem.status == refusal_status(error.code)


def test_retry_later_is_exactly_the_codes_the_api_answers_with_a_5xx() -> None:
    server_side = {code for code, status in REFUSAL_STATUS.items() if status >= 500}
    assert server_side == RETRY_LATER
    assert VerificationRefused("issuer_unreachable", "down").retry_later
    assert not VerificationRefused("certificate_not_found", "none").retry_later


def test_an_unknown_code_is_422_and_a_route_may_name_its_own_status() -> None:
    refusal = VerificationRefused("not_issuer", "ask its issuer", field="certificate_id")
    assert refusal_problem(refusal).status == 422
    assert refusal_problem(refusal, statuses={"not_issuer": 404}).status == 404
    assert refusal_problem(VerificationRefused("whatever", "x")).field is None


def test_a_typed_question_reads_as_the_rest_body_it_replaces() -> None:
    manifest = manifest_for({"shanghai": SigningKey.generate()})
    card = sample_json("resident_id_card")["certificate_id"]
    question = VerifyQuestion(
        certificate_id=card,
        holder_code=LI_MINGHUA.lower(),
        purpose="hotel_check_in",
        requester="前台",
        holder_name="李明华",
    )
    body = {
        "certificate_id": card,
        "holder_code": LI_MINGHUA.lower(),
        "purpose": "hotel_check_in",
        "requester": "前台",
        "holder_name": "李明华",
    }
    read = parse_verify_request(question.to_body(), now=NOW, manifest=manifest)
    assert read == parse_verify_request(body, now=NOW, manifest=manifest)
    assert read.holder_code == LI_MINGHUA.upper() and read.fields == ()
    bare = VerifyQuestion(certificate_id=card, holder_code=LI_MINGHUA, purpose="hotel_check_in")
    assert "holder_name" not in bare.to_body() and "fields" not in bare.to_body()


@pytest.mark.parametrize("module", PURE)
def test_the_pure_rules_import_no_clock_storage_or_network(module: str) -> None:
    path = Path(__file__).parent.parent / "node" / "certificates" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("node")
    ]
    for name in imported:
        assert name.startswith(ALLOWED), f"{module} imports {name}"
    stdlib = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not stdlib & {"time", "sqlite3", "asyncio", "socket", "grpc", "aiohttp"}

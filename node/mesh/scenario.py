"""The case and certificate parts of ``yrd demo``, driven through the simulated platforms.

Cases: on each of the twelve directed province pairs, citizens enter applications at the
accepting province's platform, in that platform's own dialect, for a high-frequency matter
of the handling province, handing in their electronic ID card by its identifier (免于提交).
From there nobody drives them: the accepting node reads the application from its platform,
the handling node verifies the card with its issuer and hands the case to its platform,
whose simulated officer works it, and the accepting platform's simulated applicant answers
supplement requests and evaluates. The demo only watches both nodes until every case has
concluded, and times it end to end.

Certificates: each province's node checks certificates issued in another province online
(a hotel check-in seeing only the fields the scene allows, with the holder's consent; a
revoked certificate refused as revoked) and verifies an offline presentation issued by the
certificate's home node.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from adapters.registry import citizen
from node.mesh.applications import fetch_fixtures, plan_applications
from node.mesh.auth import mesh_session
from node.mesh.load import percentile
from node.mesh.processes import Mesh, MeshError

CASE_WAIT = 90.0
SETTLE_WAIT = 10.0
"""Seconds two concluded sides may differ while the last update's receipt is recorded."""
TERMINAL = frozenset({"evaluated", "rejected", "withdrawn"})
SCENE_OF_TYPE = {
    "resident_id_card": "hotel_check_in",
    "driving_licence": "roadside_vehicle_inspection",
    "vehicle_licence": "roadside_vehicle_inspection",
}


@dataclass
class DemoCase:
    accepting: str
    handling: str
    matter: dict[str, Any]
    body: dict[str, Any]
    reference: str = ""
    case_id: str = ""
    started: float = 0.0
    seconds: float | None = None
    status: str = "entered"
    path: list[str] = field(default_factory=list)
    certificates_checked: int = 0
    equal: bool = False
    unequal_since: float | None = None
    """When both sides were first seen concluded with different histories (monotonic)."""
    level: int | None = None
    """The applicant's evaluation (好差评), 1-5."""


@dataclass
class CertificateCheck:
    issuer: str
    verifier: str
    certificate_type: str
    purpose: str
    result: str
    fields: list[str]


class _Api:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def get(self, url: str, *, missing_ok: bool = False) -> dict[str, Any] | None:
        async with self.session.get(url) as response:
            if response.status == 404 and missing_ok:
                return None
            body: dict[str, Any] = await response.json()
            if response.status != 200:
                raise MeshError(f"GET {url}: {body.get('code')}: {body.get('detail', body)}")
            return body

    async def post(self, url: str, body: Any) -> tuple[int, dict[str, Any]]:
        async with self.session.post(url, json=body) as response:
            return response.status, await response.json()


def plan_cases(
    mesh: Mesh,
    catalog: list[dict[str, Any]],
    fixtures: dict[str, dict[str, Any]],
    per_pair: int,
) -> list[DemoCase]:
    """``per_pair`` cases on every directed pair, each by a seeded resident of the accepting
    province who holds a valid ID card."""
    provinces = [c.province for c in mesh.configs]
    pairs = [(a, h) for a in provinces for h in provinces if h != a for _ in range(per_pair)]
    return [
        DemoCase(planned.accepting, planned.handling, planned.matter, planned.body)
        for planned in plan_applications(catalog, fixtures, pairs)
    ]


async def run_cases(
    mesh: Mesh, catalog: list[dict[str, Any]], *, per_pair: int, show: Callable[[str], None]
) -> list[DemoCase]:
    async with mesh_session(mesh.directory, timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = _Api(session)
        fixtures = await fetch_fixtures(
            session, {c.province: mesh.platform_url(c.province) for c in mesh.configs}
        )
        planned = plan_cases(mesh, catalog, fixtures, per_pair)
        for case in planned:
            platform = mesh.platform_url(case.accepting)
            assert platform is not None
            case.reference = await citizen(case.accepting).enter_application(
                session, platform, case.body
            )
            case.started = time.monotonic()
        await _follow(mesh, api, planned, show)
        return planned


async def _follow(
    mesh: Mesh, api: _Api, planned: list[DemoCase], show: Callable[[str], None]
) -> None:
    deadline = time.monotonic() + CASE_WAIT
    while True:
        for case in planned:
            if case.seconds is not None:
                continue
            if not case.case_id:
                platform = mesh.platform_url(case.accepting)
                assert platform is not None
                case.case_id = (
                    await citizen(case.accepting).case_of(api.session, platform, case.reference)
                    or ""
                )
                if not case.case_id:
                    continue
            path = f"/v1/cases/{case.case_id}"
            seen = await api.get(mesh.url(case.accepting) + path, missing_ok=True)
            handled = await api.get(mesh.url(case.handling) + path, missing_ok=True)
            if seen is None:
                continue
            case.status = seen["status"]
            if case.status in TERMINAL and handled is not None and handled["status"] == case.status:
                now = time.monotonic()
                case.equal = seen["history"] == handled["history"]
                if not case.equal:
                    # The last update may still be settling at its sender: until its receipt
                    # is recorded, the sender's record holds it as queued, not as it went out
                    # in its signed batch. Equal once settled; give that SETTLE_WAIT.
                    case.unequal_since = case.unequal_since or now
                    if now - case.unequal_since < SETTLE_WAIT:
                        continue
                case.seconds = now - case.started
                case.path = [entry["action"] for entry in seen["history"]]
                case.level = seen.get("evaluation_level")
                case.certificates_checked = sum(
                    1
                    for m in handled["materials"]
                    if m.get("verification", {}).get("state") in ("verified", "rejected")
                )
        counts: dict[str, int] = {}
        for case in planned:
            counts[case.status] = counts.get(case.status, 0) + 1
        show(
            f"{sum(c.seconds is not None for c in planned)}/{len(planned)} concluded — "
            + ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
        )
        if all(c.seconds is not None for c in planned):
            return
        if time.monotonic() > deadline:
            stuck = [c for c in planned if c.seconds is None]
            raise MeshError(
                f"{len(stuck)} cases did not conclude within {CASE_WAIT:.0f} s, e.g. "
                f"{stuck[0].case_id or stuck[0].reference} ({stuck[0].status})"
            )
        await asyncio.sleep(0.25)


OUTCOME_STEPS = {"complete": "completed", "deny": "denied", "reject": "rejected",
                 "withdraw": "withdrawn"}  # fmt: skip
"""The signed update that concludes a case, and the outcome it gives (an evaluation may
follow a completion or a denial; the outcome stays)."""
PAIR_HEADERS = ["accepting → handling", "cases", *OUTCOME_STEPS.values(), "median s", "p95 s",
                "certificates checked"]  # fmt: skip


def outcome(case: DemoCase) -> str:
    """completed, denied, rejected or withdrawn; ``open`` while none of them happened."""
    return next((OUTCOME_STEPS[s] for s in case.path if s in OUTCOME_STEPS), "open")


def pair_rows(done: Sequence[DemoCase]) -> list[list[Any]]:
    """Per directed pair (``PAIR_HEADERS``): cases, each outcome (they add up to the cases),
    median and p95 end-to-end seconds, certificates checked."""
    pairs: dict[tuple[str, str], list[DemoCase]] = {}
    for case in done:
        pairs.setdefault((case.accepting, case.handling), []).append(case)
    rows = []
    for (accepting, handling), cases in pairs.items():
        times = [c.seconds or 0.0 for c in cases]
        p95 = percentile(times, 0.95)
        rows.append(
            [
                f"{accepting} → {handling}",
                len(cases),
                *(sum(outcome(c) == o for c in cases) for o in OUTCOME_STEPS.values()),
                f"{statistics.median(times):.1f}",
                f"{p95 or 0.0:.1f}",
                sum(c.certificates_checked for c in cases),
            ]
        )
    return rows


# --- certificates ---------------------------------------------------------------------------


async def check_certificates(
    mesh: Mesh, catalog: list[dict[str, Any]]
) -> tuple[list[CertificateCheck], list[str]]:
    """Online checks across provinces and one offline presentation per province."""
    provinces = [c.province for c in mesh.configs]
    checks: list[CertificateCheck] = []
    presentations: list[str] = []
    async with mesh_session(mesh.directory, timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = _Api(session)
        for index, issuer in enumerate(provinces):
            verifier = provinces[(index + 1) % len(provinces)]
            platform = mesh.platform_url(issuer)
            assert platform is not None
            fixtures = await api.get(platform + "/sim/fixtures") or {}
            certificates = fixtures["certificates"]
            card = next(
                c
                for c in certificates
                if c["type"] == "resident_id_card" and c["status"] == "valid"
            )
            # The holder consents at their own province's platform, which has its node
            # sign the grant; the hotel's province sends the grant with its question.
            status, granted = await api.post(
                mesh.url(issuer) + "/v1/consents",
                {
                    "holder_code": card["holder_code"],
                    "purpose": "hotel_check_in",
                    "fields": ["name", "address"],
                    "certificate_id": card["certificate_id"],
                    "requester": "演示酒店前台",
                    "expires_at": _in(600),
                },
            )
            if status != 201:
                raise MeshError(f"{issuer} refused to sign a consent grant: {granted}")
            asked = {
                "certificate_id": card["certificate_id"],
                "holder_code": card["holder_code"],
                "purpose": "hotel_check_in",
                "fields": ["name", "address"],
                "consent": {"grant": granted["grant"]},
                "requester": "演示酒店前台",
            }
            checks.append(await _verify(api, mesh, issuer, verifier, asked, "resident_id_card"))
            revoked = next((c for c in certificates if c["status"] == "revoked"), None)
            if revoked is not None:
                purpose = SCENE_OF_TYPE.get(revoked["type"]) or _matter_for(
                    catalog, revoked["type"], verifier
                )
                asked = {
                    "certificate_id": revoked["certificate_id"],
                    "holder_code": revoked["holder_code"],
                    "purpose": purpose,
                }
                checks.append(await _verify(api, mesh, issuer, verifier, asked, revoked["type"]))
            status, issued = await api.post(
                mesh.url(issuer) + "/v1/presentations",
                {"certificate_id": card["certificate_id"], "holder_code": card["holder_code"]},
            )
            if status != 201:
                raise MeshError(f"{issuer} refused a presentation: {issued}")
            status, checked = await api.post(
                mesh.url(verifier) + "/v1/presentations/verify", {"token": issued["token"]}
            )
            age = checked.get("revocation_list_age_seconds")
            presentations.append(
                f"{issuer} issued a {issued['size_bytes']}-character presentation (fits one QR "
                f"code); {verifier} verified it offline: "
                + (
                    f"{'valid' if checked.get('valid') else checked.get('status')}, "
                    f"revocation list v{checked.get('revocation_list_version')} {age:.0f} s old"
                    if status == 200 and age is not None
                    else f"{checked.get('code', checked.get('status'))}"
                )
            )
    return checks, presentations


async def _verify(
    api: _Api, mesh: Mesh, issuer: str, verifier: str, asked: dict[str, Any], kind: str
) -> CertificateCheck:
    status, answer = await api.post(mesh.url(verifier) + "/v1/certificates/verify", asked)
    result = answer["status"] if status == 200 else f"refused: {answer.get('code')}"
    return CertificateCheck(
        issuer, verifier, kind, asked["purpose"], result, sorted(answer.get("fields", {}))
    )


def _matter_for(catalog: list[dict[str, Any]], certificate_type: str, province: str) -> str:
    """A matter of ``province`` (else any) that takes a certificate of that type."""
    takes = [
        m
        for m in catalog
        if any(x.get("certificate_type") == certificate_type for x in m["materials"])
    ]
    own = [m for m in takes if m["handler"] == province]
    return str((own or takes)[0]["code"]) if takes else "hotel_check_in"


def _in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))

"""The simulated-platform engine: seed data, its SQLite store and the simulated people."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.registry import DialectNotAvailable, dialect
from adapters.simulation.officer import plan_for
from adapters.simulation.platform import PlatformRefusal, SimulatedPlatform
from adapters.simulation.seed import (
    PROFILES,
    REFERENCE_DATE,
    VALID_AT_LEAST_UNTIL,
    make_seed,
)
from adapters.simulation.store import PlatformStore, StoreConflict
from node.cases.catalog import PROVINCES, load_catalog
from node.cases.events import parse_event
from node.certificates.model import CHINA_STANDARD_TIME, TYPES, parse_certificate
from node.certificates.revocation import REASONS
from node.identifiers import (
    parse_certificate_id,
    province_of_division,
    validate_credit_code,
    validate_id_number,
)
from node.platform.adapter import ApplicationRefusal, CaseNotice, InboundCase
from tests.nodes import eventually
from tests.platforms import T0, FakeClock, mistyped

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def platform(tmp_path: Path, clock: FakeClock) -> Iterator[SimulatedPlatform]:
    opened = SimulatedPlatform.open(
        "shanghai",
        tmp_path / "shanghai.db",
        seed=7,
        officer_delay=0,
        clock=clock,
        reference_prefix="T",
    )
    yield opened
    opened.store.close()


def inbound(case_id: str, *, accepting: str = "anhui", matter: int = 0) -> InboundCase:
    """A case another province accepted for a Shanghai matter, as the node delivers it."""
    person = _anhui_person()
    matter_ = load_catalog("shanghai").matters[matter]
    return InboundCase(
        case_id=case_id,
        accepting=accepting,
        matter_code=matter_.code,
        mode=matter_.modes[0],
        applicant={"name": person.name, "code_type": "111", "code": person.id_number},
        materials=[{"name": m.name, "sha256": "ab" * 32} for m in matter_.materials],
        submitted_at=T0 - 60,
    )


@functools.cache
def _anhui_person() -> Any:
    return make_seed("anhui", 1).persons[0]


def notice(case_id: str, sequence: int, action: str, status: str, **extra: Any) -> CaseNotice:
    by = "accepting" if action in ("supplement", "withdraw", "evaluate", "deliver") else "handling"
    return CaseNotice(case_id, sequence, action, by, status, T0, **extra)


def case_with(seed: int, **wanted: bool) -> str:
    """The first case id whose officer plan has the ``wanted`` decisions."""
    for n in range(10_000):
        case_id = f"340000-20260302-{n:016x}"
        plan = plan_for(seed, case_id)
        if all(getattr(plan, key) == value for key, value in wanted.items()):
            return case_id
    raise AssertionError("no such case id")


def actions(platform: SimulatedPlatform, case_id: str) -> list[str]:
    return [event.body["action"] for event in platform.store.events_of(case_id)]


# --- seed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("province", PROVINCES)
def test_same_seed_same_bytes(province: str) -> None:
    """The same province and seed give byte-identical data; another seed gives other data."""
    assert make_seed(province, 5).to_json_bytes() == make_seed(province, 5).to_json_bytes()
    assert make_seed(province, 5).to_json_bytes() != make_seed(province, 6).to_json_bytes()


@pytest.mark.parametrize("province", PROVINCES)
@pytest.mark.parametrize("seed", [1, 2, 99])
def test_seed_passes_the_node_validators(province: str, seed: int) -> None:
    """Every ID number, credit code and certificate of a seed passes the node's own checks."""
    data = make_seed(province, seed)
    prefix = PROFILES[province].districts[0].division[:2]
    divisions = {d.division for d in PROFILES[province].districts}

    assert len(data.persons) == 50 and len(data.companies) == 10
    assert len({p.id_number for p in data.persons}) == 50
    locals_ = [p for p in data.persons if p.household_division.startswith(prefix)]
    assert len(locals_) == 45
    for person in data.persons:
        assert validate_id_number(person.id_number) == person.id_number
        assert person.id_number[6:14] == person.birth_date.replace("-", "")
        assert province_of_division(person.household_division) is not None
        assert person.district in divisions
    for company in data.companies:
        assert validate_credit_code(company.credit_code)[2:8] in divisions

    for certificate in data.certificates:
        parsed = parse_certificate(dict(certificate))
        assert parsed.issuer_province == province
        assert (
            str(parse_certificate_id(certificate["certificate_id"]))
            == parsed.certificate_id.__str__()
        )
        if certificate["status"] == "expired":
            assert date.fromisoformat(certificate["valid_until"]) < REFERENCE_DATE
        elif certificate["valid_until"] is not None:
            assert date.fromisoformat(certificate["valid_until"]) >= VALID_AT_LEAST_UNTIL

    statuses = Counter(c["status"] for c in data.certificates)
    assert {"revoked", "suspended", "expired"} <= set(statuses)
    assert statuses["valid"] > 100
    valid_types = {c["type"] for c in data.certificates if c["status"] == "valid"}
    assert valid_types == set(TYPES)
    assert len({c["certificate_id"] for c in data.certificates}) == len(data.certificates)


@pytest.mark.parametrize("province", PROVINCES)
def test_revocations_match_the_library(province: str) -> None:
    """Each revoked or suspended certificate has one revocation: a known reason and a whole
    second between its issue and the reference date."""
    data = make_seed(province, 4)
    by_id = {c["certificate_id"]: c for c in data.certificates}
    listed = {c["certificate_id"] for c in data.certificates if c["status"] in
              ("revoked", "suspended")}  # fmt: skip
    assert {r["certificate_id"] for r in data.revocations} == listed
    for revocation in data.revocations:
        certificate = by_id[revocation["certificate_id"]]
        assert revocation["status"] == certificate["status"]
        assert revocation["reason"] in REASONS
        assert isinstance(revocation["since"], int)
        day = datetime.fromtimestamp(revocation["since"], CHINA_STANDARD_TIME).date()
        assert date.fromisoformat(certificate["issued_on"]) < day <= REFERENCE_DATE


def test_authorities_do_not_depend_on_the_seed() -> None:
    """The same office issues under the same credit code whatever the seed."""

    def authorities(seed: int) -> dict[str, str]:
        return {
            c["issuing_authority"]: c["issuing_authority_code"]
            for c in make_seed("jiangsu", seed).certificates
        }

    first, second = authorities(1), authorities(2)
    shared = set(first) & set(second)
    assert shared and all(first[name] == second[name] for name in shared)


# --- store ----------------------------------------------------------------------------------


def test_inbound_case_is_stored_once(tmp_path: Path) -> None:
    """Delivering the same case twice stores it once; a different case under its id is refused."""
    store = PlatformStore.open(tmp_path / "p.db")
    case = inbound("340000-20260302-0000000000000001")
    assert store.add_inbound_case(case, T0) is True
    assert store.add_inbound_case(case, T0 + 5) is False
    with pytest.raises(StoreConflict):
        store.add_inbound_case(inbound(case.case_id, matter=1), T0)
    assert store.counts()["inbound_cases"] == 1
    assert store.inbound_case(case.case_id) is not None
    assert store.inbound_case(case.case_id).case == case  # type: ignore[union-attr]
    store.close()


def test_notice_is_stored_once_per_sequence(tmp_path: Path) -> None:
    """A notice is stored once per (case, sequence); another notice under that key is refused."""
    store = PlatformStore.open(tmp_path / "p.db")
    first = notice("c-1", 2, "accept", "accepted", due_at=T0 + 86400)
    assert store.add_notice(first, T0) is True
    assert store.add_notice(first, T0) is False
    assert store.add_notice(notice("c-1", 3, "complete", "completed"), T0) is True
    with pytest.raises(StoreConflict):
        store.add_notice(notice("c-1", 2, "reject", "rejected", reason="x"), T0)
    assert store.notices("c-1")[0].notice == first
    assert store.counts()["notices"] == 2
    store.close()


def test_feed_positions_increase_and_event_ids_are_unique(tmp_path: Path) -> None:
    """The feed pages by increasing position, and a known event id is never appended twice."""
    store = PlatformStore.open(tmp_path / "p.db")
    for n in range(5):
        assert store.append_event(f"e{n}", "c", {"action": "accept"}, T0 + n)
    assert not store.append_event("e2", "c", {"action": "reject"}, T0)
    page = store.events_since(0, 3)
    assert [e.event_id for e in page] == ["e0", "e1", "e2"]
    rest = store.events_since(page[-1].position, 100)
    assert [e.event_id for e in rest] == ["e3", "e4"]
    assert all(
        a.position < b.position for a, b in zip(page + rest, (page + rest)[1:], strict=False)
    )
    assert store.events_since(rest[-1].position, 100) == []
    store.close()


def test_acknowledge_is_idempotent(platform: SimulatedPlatform) -> None:
    """Acknowledging twice with one case id is fine; another case id is a conflict."""
    body = application_body(platform)
    stored = platform.submit_application(body)
    assert stored.reference.startswith("T20260302")
    first = platform.acknowledge(stored.reference, "310000-20260302-aa")
    again = platform.acknowledge(stored.reference, "310000-20260302-aa")
    assert first == again and first.case_id == "310000-20260302-aa"
    with pytest.raises(PlatformRefusal) as refused:
        platform.acknowledge(stored.reference, "310000-20260302-bb")
    assert refused.value.code == "conflict" and refused.value.status == 409
    with pytest.raises(PlatformRefusal) as missing:
        platform.acknowledge("T0", "310000-20260302-aa")
    assert missing.value.status == 404


def application_body(platform: SimulatedPlatform) -> dict[str, Any]:
    person = platform.store.persons()[0]
    card = next(
        c
        for c in platform.store.certificates()
        if c["holder_code"] == person["id_number"] and c["type"] == "resident_id_card"
    )
    matter = load_catalog("anhui").matters[0]
    materials = [
        {"name": m.name, "certificate_id": card["certificate_id"]}
        if m.certificate_type == "resident_id_card"
        else {"name": m.name, "sha256": "cd" * 32}
        for m in matter.materials
    ]
    return {
        "matter_code": matter.code,
        "handler": "anhui",
        "mode": matter.modes[0],
        "applicant": {"name": person["name"], "code_type": "111", "code": person["id_number"]},
        "materials": materials,
    }


def test_refused_application_changes_nothing(platform: SimulatedPlatform) -> None:
    """An application the node would refuse (bad check digit) is refused before it is stored."""
    body = application_body(platform)
    code = body["applicant"]["code"]
    body["applicant"]["code"] = code[:-1] + ("0" if code[-1] != "0" else "1")
    before = platform.store.counts()
    with pytest.raises(PlatformRefusal) as refused:
        platform.submit_application(body)
    assert refused.value.code == "invalid_id_number"
    assert refused.value.field == "applicant.code"
    assert platform.store.counts() == before


def test_an_application_is_answered_once(platform: SimulatedPlatform, clock: FakeClock) -> None:
    """An application the platform let through unchecked is refused by the federation: the
    refusal is held once (a repeat changes nothing, another is a conflict), the applicant
    sees it, and it can no longer be acknowledged; an acknowledged application cannot be
    refused; an unknown one is not found."""
    refused = platform.submit_application(mistyped(application_body(platform)), checked=False)
    assert platform.application_progress(refused.reference).status == "submitted"
    refusal = ApplicationRefusal("invalid_id_number", "applicant.certNo", "校验位错误", True)
    held, created = platform.refuse_application(refused.reference, refusal)
    clock.now += 60
    again, repeated = platform.refuse_application(refused.reference, refusal)
    assert (created, repeated) == (True, False)
    assert held == again and (held.refusal, held.refused_at) == (refusal, T0)
    progress = platform.application_progress(refused.reference)
    assert (progress.status, progress.refusal, progress.notices) == ("refused", held, ())
    with pytest.raises(PlatformRefusal) as other:
        platform.refuse_application(refused.reference, ApplicationRefusal("x", "", "y", True))
    assert (other.value.code, other.value.status, other.value.field) == (
        "conflict",
        409,
        "reference",
    )
    with pytest.raises(PlatformRefusal) as acknowledged:
        platform.acknowledge(refused.reference, "310000-20260302-aa")
    assert acknowledged.value.status == 409

    became = platform.submit_application(application_body(platform))
    platform.acknowledge(became.reference, "310000-20260302-bb")
    with pytest.raises(PlatformRefusal) as answered:
        platform.refuse_application(became.reference, refusal)
    assert answered.value.status == 409
    with pytest.raises(PlatformRefusal) as missing:
        platform.refuse_application("T0", refusal)
    assert missing.value.status == 404
    assert platform.store.counts()["refusals"] == 1
    assert platform.store.open_work()[1] == ["310000-20260302-bb"]


# --- the simulated people -------------------------------------------------------------------


def test_plans_are_deterministic_and_mostly_favourable() -> None:
    """Decisions depend only on seed and case id; most cases are accepted and completed."""
    ids = [f"320000-20260302-{n:016x}" for n in range(400)]
    plans = [plan_for(3, case_id) for case_id in ids]
    assert plans == [plan_for(3, case_id) for case_id in ids]
    accepted = sum(p.accept for p in plans) / len(plans)
    completed = sum(p.complete for p in plans) / len(plans)
    supplemented = sum(p.supplement for p in plans) / len(plans)
    assert 0.8 < accepted < 0.97 and 0.8 < completed < 0.97 and 0.1 < supplemented < 0.4


def test_officer_waits_for_the_delay(tmp_path: Path, clock: FakeClock) -> None:
    """With a delay, nothing happens before it has passed, and the step is taken once after."""
    platform = SimulatedPlatform.open(
        "shanghai", tmp_path / "p.db", seed=7, officer_delay=100, clock=clock, reference_prefix="T"
    )
    case_id = case_with(7, accept=True)
    platform.deliver_case(inbound(case_id))
    done = platform.people.work()
    assert done.appended == () and done.next_due is not None
    assert T0 + 50 <= done.next_due <= T0 + 150
    clock.now = done.next_due
    assert platform.people.work().appended == (f"{case_id}:accept",)
    assert platform.people.work().appended == ()
    platform.store.close()


def test_officer_accepts_and_completes_with_a_document_digest(platform: SimulatedPlatform) -> None:
    """A case planned for acceptance without supplement is accepted, then completed, with
    bodies the node's event parser accepts."""
    case_id = case_with(7, accept=True, supplement=False, complete=True)
    platform.deliver_case(inbound(case_id))
    done = platform.people.work()
    assert done.appended == (f"{case_id}:accept", f"{case_id}:complete")
    events = platform.store.events_of(case_id)
    for event in events:
        parse_event(event.body)
    result = events[1].body["result"]
    assert result["kind"] == "document" and len(result["document_sha256"]) == 64


def test_officer_rejects_some(platform: SimulatedPlatform) -> None:
    """A case planned for rejection is rejected with a reason, and nothing follows."""
    case_id = case_with(7, accept=False)
    platform.deliver_case(inbound(case_id))
    platform.people.work()
    assert actions(platform, case_id) == ["reject"]
    assert platform.store.events_of(case_id)[0].body["reason"]
    assert platform.people.work().appended == ()


def test_supplement_round(platform: SimulatedPlatform) -> None:
    """A supplement request waits for the applicant's supplement before the case concludes."""
    case_id = case_with(7, accept=True, supplement=True, complete=False)
    platform.deliver_case(inbound(case_id))
    platform.people.work()
    assert actions(platform, case_id) == ["accept", "request_supplement"]
    assert platform.people.work().appended == ()
    platform.deliver_notice(notice(case_id, 4, "supplement", "supplemented"))
    platform.people.work()
    assert actions(platform, case_id) == ["accept", "request_supplement", "deny"]
    for event in platform.store.events_of(case_id):
        parse_event(event.body)


def test_withdrawn_case_gets_nothing_more(platform: SimulatedPlatform) -> None:
    """A case the node reports withdrawn is left alone."""
    case_id = case_with(7, accept=True)
    platform.deliver_case(inbound(case_id))
    platform.deliver_notice(notice(case_id, 2, "withdraw", "withdrawn"))
    assert platform.people.work().appended == ()
    assert actions(platform, case_id) == []


def test_restart_neither_repeats_nor_skips(tmp_path: Path, clock: FakeClock) -> None:
    """A platform reopened on its file continues where it was, without repeating a step."""
    path = tmp_path / "p.db"
    case_id = case_with(7, accept=True, supplement=True)
    first = SimulatedPlatform.open(
        "shanghai", path, seed=7, officer_delay=0, clock=clock, reference_prefix="T"
    )
    first.deliver_case(inbound(case_id))
    first.people.work()
    first.store.close()

    second = SimulatedPlatform.open(
        "shanghai", path, seed=7, officer_delay=0, clock=clock, reference_prefix="T"
    )
    assert second.people.work().appended == ()
    assert second.deliver_case(inbound(case_id)) is False
    second.deliver_notice(notice(case_id, 4, "supplement", "supplemented"))
    assert len(second.people.work().appended) == 1
    assert actions(second, case_id)[:2] == ["accept", "request_supplement"]
    second.store.close()
    with pytest.raises(ValueError, match="seeded with 7"):
        SimulatedPlatform.open("shanghai", path, seed=8, officer_delay=0, reference_prefix="T")


def test_applicant_supplements_and_evaluates(platform: SimulatedPlatform) -> None:
    """The applicant answers a supplement request, then evaluates the concluded case once."""
    stored = platform.submit_application(application_body(platform))
    case_id = "310000-20260302-00000000000000aa"
    platform.acknowledge(stored.reference, case_id)
    platform.deliver_notice(notice(case_id, 1, "deliver", "delivered"))
    platform.deliver_notice(notice(case_id, 2, "accept", "accepted"))
    platform.deliver_notice(
        notice(case_id, 3, "request_supplement", "supplement_requested", reason="补充材料")
    )
    assert platform.people.work().appended == (f"{case_id}:supplement:3",)
    platform.deliver_notice(notice(case_id, 4, "supplement", "supplemented"))
    platform.deliver_notice(
        notice(
            case_id,
            5,
            "complete",
            "completed",
            result={"kind": "document", "document_sha256": "ef" * 32},
        )
    )
    assert platform.people.work().appended == (f"{case_id}:evaluate",)
    evaluation = platform.store.events_of(case_id)[-1].body
    parse_event(evaluation)
    assert 1 <= evaluation["level"] <= 5
    assert platform.people.work().appended == ()
    assert platform.application_progress(stored.reference).status == "completed"


def test_evaluations_are_mostly_good(platform: SimulatedPlatform) -> None:
    """Across many cases, most evaluations are 4 (满意) or 5 (非常满意)."""
    body = application_body(platform)
    for n in range(60):
        stored = platform.submit_application(body)
        case_id = f"310000-20260302-{n:016x}"
        platform.acknowledge(stored.reference, case_id)
        platform.deliver_notice(
            notice(
                case_id,
                5,
                "complete",
                "completed",
                result={"kind": "document", "document_sha256": "ef" * 32},
            )
        )
    platform.people.work()
    levels = [
        e.body["level"]
        for e in platform.store.events_since(0, 500)
        if e.body["action"] == "evaluate"
    ]
    assert len(levels) == 60
    assert sum(level >= 4 for level in levels) >= 45


async def test_background_people_act_when_woken(tmp_path: Path) -> None:
    """Served as an app, the simulated people work a delivered case without being driven."""
    platform = SimulatedPlatform.open(
        "shanghai", tmp_path / "p.db", seed=7, officer_delay=0, reference_prefix="T"
    )
    case_id = case_with(7, accept=True, supplement=False)
    async with TestClient(TestServer(platform.app([]))) as client:
        platform.deliver_case(inbound(case_id))
        await eventually(lambda: len(actions(platform, case_id)) == 2, interval=0.005)
        assert actions(platform, case_id) == ["accept", "complete"]
        fixtures = await (await client.get("/sim/fixtures")).json()
    assert {"persons", "companies", "certificates"} <= set(fixtures)
    assert len(fixtures["persons"]) == 50
    assert set(fixtures["certificates"][0]) >= {"certificate_id", "type", "holder_code", "status"}


def test_unknown_matter_is_refused(platform: SimulatedPlatform) -> None:
    """A case for a matter this province does not handle is refused and not stored."""
    case = inbound("340000-20260302-0000000000000009")
    wrong = InboundCase(**{**case.__dict__, "matter_code": load_catalog("anhui").matters[0].code})
    with pytest.raises(PlatformRefusal) as refused:
        platform.deliver_case(wrong)
    assert refused.value.code == "unknown_matter"
    assert platform.store.counts()["inbound_cases"] == 0


def test_application_refusals_name_the_field(platform: SimulatedPlatform) -> None:
    """An application for the platform's own province's matter is refused with its field."""
    body = application_body(platform)
    body["matter_code"] = load_catalog("shanghai").matters[0].code
    body["handler"] = "shanghai"
    with pytest.raises(PlatformRefusal) as refused:
        platform.submit_application(body)
    assert (refused.value.code, refused.value.field) == ("handler_is_local", "handler")


# --- registry and process -------------------------------------------------------------------


def test_registry() -> None:
    """The registry finds Shanghai's callables and names an unknown province plainly."""
    shanghai = dialect("shanghai")
    assert callable(shanghai.build_platform) and callable(shanghai.make_adapter)
    with pytest.raises(DialectNotAvailable, match="unknown province"):
        dialect("beijing")


@pytest.mark.slow
def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    """The entry point serves the platform, prints its address, and stops cleanly on SIGTERM."""
    log = tmp_path / "stderr.log"
    command = [sys.executable, "-m", "adapters.simulation.run", "--province", "shanghai"]
    command += ["--listen", "127.0.0.1:0", "--db", str(tmp_path / "p.db"), "--seed", "3"]
    command += ["--officer-delay", "0", "--credentials-file", str(tmp_path / "creds.json")]
    (tmp_path / "creds.json").write_text('{"access_token": "t0ken"}')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
        ) as process,
    ):
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("listening on 127.0.0.1:"), log.read_text()
            address = line.split()[-1]
            with urllib.request.urlopen(f"http://{address}/sim/fixtures", timeout=10) as reply:
                fixtures = json.load(reply)
            assert fixtures["seed"] == 3 and fixtures["province"] == "shanghai"
            events = urllib.request.Request(f"http://{address}/api/v1/crossProvince/events")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(events, timeout=10)
            assert refused.value.code == 401
            refused.value.close()
            events.add_header("X-Access-Token", "t0ken")
            with urllib.request.urlopen(events, timeout=10) as reply:
                assert json.load(reply)["records"] == []
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "simulated platform stopped" in log.read_text()

"""Realistic cross-province applications for scenarios (``yrd demo``, ``yrd load``, ``yrd chaos``).

Each application is made by a seeded resident of the accepting province who holds a valid
electronic ID card (from the accepting platform's ``GET /sim/fixtures``), for a
high-frequency matter of the handling province (from the federated catalog), handing in the
card by its identifier (免于提交) and uploading the other materials by digest.

Rules kept here:
- A plan is a pure function of the catalog, the fixtures and the list of pairs: the same
  mesh seed gives the same applications, in the same order.
- The bodies hold names and ID numbers; they go to nodes and platforms only, never to
  output or logs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from node.mesh.processes import MeshError

# Matters by their basic code (the last 9 digits, the same in every province's catalog):
# the high-frequency ones of Yangtze Delta practice, in turn.
HIGH_FREQUENCY = (
    "172001000",  # 户籍类证明
    "172015000",  # 无犯罪记录证明
    "174006000",  # 出入境记录查询
    "022008000",  # 企业内档查询
    "418003000",  # 学历学位公证
    "145002000",  # 住房公积金异地转移接续
    "215004000",  # 失业登记
)

Pair = tuple[str, str]
"""(accepting province, handling province)."""


@dataclass(frozen=True)
class Application:
    accepting: str
    handling: str
    matter: dict[str, Any]
    body: dict[str, Any]
    """The ``POST /v1/cases`` body (the platforms take the same shape)."""


def plan_applications(
    catalog: Sequence[Mapping[str, Any]],
    fixtures: Mapping[str, Mapping[str, Any]],
    pairs: Sequence[Pair],
) -> list[Application]:
    """One application per entry of ``pairs``, in order; the ``i``-th takes the ``i``-th
    high-frequency matter of its handler and the ``i``-th holder of its accepting province,
    each in turn. Raises MeshError when a province has no holder or no matter to use."""
    by_handler: dict[str, list[dict[str, Any]]] = {}
    for matter in catalog:
        by_handler.setdefault(matter["handler"], []).append(dict(matter))
    holders: dict[str, list[tuple[Mapping[str, Any], str]]] = {}
    planned: list[Application] = []
    for index, (accepting, handling) in enumerate(pairs):
        if accepting not in holders:
            holders[accepting] = _holders(accepting, fixtures)
        if not by_handler.get(handling):
            raise MeshError(f"the federated catalog holds no matter that {handling} handles")
        matter = _pick_matter(by_handler[handling], index)
        person, card = holders[accepting][index % len(holders[accepting])]
        planned.append(Application(accepting, handling, matter, _body(matter, person, card, index)))
    return planned


def _holders(
    province: str, fixtures: Mapping[str, Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], str]]:
    """The province's residents with a valid ID card, each with the card's identifier."""
    seeded = fixtures.get(province)
    if seeded is None:
        raise MeshError(f"no fixtures from {province}'s platform")
    persons = {p["id_number"]: p for p in seeded["persons"]}
    found = [
        (persons[c["holder_code"]], str(c["certificate_id"]))
        for c in seeded["certificates"]
        if c["type"] == "resident_id_card"
        and c["status"] == "valid"
        and c["holder_code"] in persons
    ]
    if not found:
        raise MeshError(f"{province}'s platform holds no resident with a valid ID card")
    return found


def _pick_matter(matters: list[dict[str, Any]], index: int) -> dict[str, Any]:
    for offset in range(len(HIGH_FREQUENCY)):
        wanted = HIGH_FREQUENCY[(index + offset) % len(HIGH_FREQUENCY)]
        for matter in matters:
            if matter["code"].endswith(wanted):
                return matter
    return matters[index % len(matters)]


def _body(
    matter: Mapping[str, Any], person: Mapping[str, Any], card: str, seed: int
) -> dict[str, Any]:
    """The applicant hands in their own ID card by its identifier (the first ID-card material:
    a parent's or a guardian's card would be someone else's); everything else is uploaded."""
    own = next(
        (m["name"] for m in matter["materials"] if m.get("certificate_type") == "resident_id_card"),
        None,
    )
    materials = []
    for material in matter["materials"]:
        if material["name"] == own:
            materials.append({"name": own, "certificate_id": card})
        else:
            digest = hashlib.sha256(f"{seed}{material['name']}".encode()).hexdigest()
            materials.append({"name": material["name"], "sha256": digest})
    return {
        "matter_code": matter["code"],
        "handler": matter["handler"],
        "mode": matter["modes"][0],
        "applicant": {"name": person["name"], "code_type": "111", "code": person["id_number"]},
        "materials": materials,
    }


async def fetch_fixtures(
    session: aiohttp.ClientSession, platforms: Mapping[str, str | None]
) -> dict[str, dict[str, Any]]:
    """Each platform's seeded data (``GET /sim/fixtures``), by province."""
    fixtures: dict[str, dict[str, Any]] = {}
    for province, url in platforms.items():
        if url is None:
            raise MeshError(f"{province} has no simulated platform to take applicants from")
        try:
            async with session.get(url.rstrip("/") + "/sim/fixtures") as response:
                if response.status != 200:
                    raise MeshError(f"{province}'s platform answered HTTP {response.status}")
                fixtures[province] = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MeshError(f"{province}'s platform at {url} did not answer: {exc}") from None
    return fixtures

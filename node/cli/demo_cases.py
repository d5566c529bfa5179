"""The case part of ``yrd demo``: a cross-province case on each of the twelve directed links.

Each accepting province (收件地) submits one case for a matter of the handling province
(办理地) through the accepting node's REST API, then both platforms' officers work it
through the nodes' REST APIs, as a province platform would: the handler accepts, sometimes
asks for a supplement (补正) that the applicant supplies, and completes or denies; the
accepting side records the applicant's evaluation (好差评). Every step waits until the
other side's node shows it, so the summary's timings are end to end across the mesh.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import aiohttp

from node.identifiers import make_id_number
from node.runtime.mesh import Mesh, MeshError

STEP_WAIT = 30.0
# Matters by their basic code (the last 12 digits, the same in every province's catalog):
# the high-frequency ones of Yangtze Delta practice, one per pair in turn.
HIGH_FREQUENCY = (
    "172001000",  # 户籍类证明
    "172015000",  # 无犯罪记录证明
    "174006000",  # 出入境记录查询
    "175012000",  # 异地缴纳交通违法罚款
    "022008000",  # 企业内档查询
    "418003000",  # 学历学位公证
    "145002000",  # 住房公积金异地转移接续
    "215004000",  # 失业登记
)
DIVISIONS = {"shanghai": "310104", "jiangsu": "320102", "zhejiang": "330106", "anhui": "340104"}
EVALUATIONS = (5, 5, 4, 5, 3, 5, 4, 5, 5, 2, 5, 4)


@dataclass
class DemoCase:
    accepting: str
    handling: str
    matter: dict[str, Any]
    plan: list[str]
    level: int
    case_id: str = ""
    path: list[str] = field(default_factory=list)
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    histories_equal: bool = False
    """Whether both nodes hold the same signed history, entry for entry."""


class CaseDriver:
    def __init__(self, mesh: Mesh, session: aiohttp.ClientSession) -> None:
        self._mesh = mesh
        self._session = session

    async def _call(
        self, method: str, province: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        url = self._mesh.url(province) + path
        async with self._session.request(method, url, json=body) as response:
            data: dict[str, Any] = await response.json()
            if response.status == 404 and missing_ok:
                return None
            if response.status >= 400:
                raise MeshError(f"{province} {method} {path}: {data.get('code')}: {data}")
            return data

    async def _must(
        self, method: str, province: str, path: str, body: Any = None
    ) -> dict[str, Any]:
        data = await self._call(method, province, path, body)
        assert data is not None
        return data

    async def _until(self, province: str, case_id: str, status: str) -> None:
        """Wait until ``province``'s node shows the case in ``status`` (it may not know it yet)."""
        deadline = time.monotonic() + STEP_WAIT
        while True:
            case = await self._call("GET", province, f"/v1/cases/{case_id}", missing_ok=True)
            shown = case["status"] if case else "unknown"
            if shown == status:
                return
            if time.monotonic() > deadline:
                raise MeshError(f"case {case_id} at {province} stuck in {shown}, not {status}")
            await asyncio.sleep(0.05)

    async def run(self, case: DemoCase, seed: int) -> DemoCase:
        rng = random.Random(seed)  # noqa: S311  (demo data, not secrets)
        body = {
            "matter_code": case.matter["code"],
            "handler": case.handling,
            "mode": case.matter["modes"][0],
            "applicant": {
                "name": "演示申请人",
                "code_type": "111",
                "code": make_id_number(
                    rng, division=DIVISIONS[case.accepting], birth=date(1988, 3, 9), sex="female"
                ),
            },
            "materials": [
                {
                    "name": m["name"],
                    "sha256": hashlib.sha256(f"{seed}{m['name']}".encode()).hexdigest(),
                }
                for m in case.matter["materials"]
            ],
        }
        started = time.monotonic()
        created = await self._must("POST", case.accepting, "/v1/cases", body)
        case.case_id = created["case_id"]
        await self._until(case.handling, case.case_id, "delivered")
        for step in case.plan:
            side, action, after = _STEPS[step]
            province = case.handling if side == "handling" else case.accepting
            event: dict[str, Any] = {"action": action, **_DETAILS.get(step, {})}
            if action == "evaluate":
                event["level"] = case.level
            await self._must("POST", province, f"/v1/cases/{case.case_id}/events", event)
            await self._until(case.accepting, case.case_id, after)
            await self._until(case.handling, case.case_id, after)
        case.seconds = time.monotonic() - started
        final = await self._must("GET", case.accepting, f"/v1/cases/{case.case_id}")
        handler_view = await self._must("GET", case.handling, f"/v1/cases/{case.case_id}")
        case.history = final["history"]
        case.histories_equal = final["history"] == handler_view["history"]
        case.path = [entry["action"] for entry in final["history"]]
        return case


_STEPS = {
    "accept": ("handling", "accept", "accepted"),
    "request_supplement": ("handling", "request_supplement", "supplement_requested"),
    "supplement": ("accepting", "supplement", "supplemented"),
    "complete": ("handling", "complete", "completed"),
    "deny": ("handling", "deny", "denied"),
    "evaluate": ("accepting", "evaluate", "evaluated"),
}
_DETAILS: dict[str, dict[str, Any]] = {
    "request_supplement": {"reason": "申请表缺少签字页，请补正"},
    "supplement": {"reason": "已补交签字页"},
    "complete": {
        "result": {"kind": "document", "document_sha256": hashlib.sha256(b"demo").hexdigest()}
    },
    "deny": {"reason": "不符合办理条件"},
}
_PLANS = (
    ["accept", "complete", "evaluate"],
    ["accept", "request_supplement", "supplement", "complete", "evaluate"],
    ["accept", "complete", "evaluate"],
    ["accept", "deny", "evaluate"],
)


def plan_cases(mesh: Mesh, catalog: list[dict[str, Any]]) -> list[DemoCase]:
    """One case per directed pair, for a high-frequency matter of the handling province."""
    provinces = [c.province for c in mesh.configs]
    by_handler: dict[str, list[dict[str, Any]]] = {}
    for matter in catalog:
        by_handler.setdefault(matter["handler"], []).append(matter)
    planned: list[DemoCase] = []
    for accepting in provinces:
        for handling in provinces:
            if accepting == handling:
                continue
            index = len(planned)
            chosen = _pick(by_handler.get(handling, []), index)
            if chosen is None:
                raise MeshError(f"{handling} announced no matters")
            planned.append(
                DemoCase(
                    accepting,
                    handling,
                    chosen,
                    list(_PLANS[index % len(_PLANS)]),
                    EVALUATIONS[index % len(EVALUATIONS)],
                )
            )
    return planned


def _pick(matters: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
    wanted = HIGH_FREQUENCY[index % len(HIGH_FREQUENCY)]
    for matter in matters:
        if matter["code"].endswith(wanted):
            return matter
    return matters[index % len(matters)] if matters else None


async def run_cases(mesh: Mesh, catalog: list[dict[str, Any]]) -> list[DemoCase]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        driver = CaseDriver(mesh, session)
        planned = plan_cases(mesh, catalog)
        return list(
            await asyncio.gather(*(driver.run(case, seed) for seed, case in enumerate(planned)))
        )

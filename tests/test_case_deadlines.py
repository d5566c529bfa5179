"""Case deadlines across two real nodes: the due time from working days, paused by a
supplement request, and overdue cases in the case list, the status and the metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from node.cases.calendar import Deadline, WorkingCalendar, load_holidays
from tests.cases import case_body, matter_of, status_of
from tests.nodes import config_for, eventually, make_mesh, serving, settled

DAY = 86400.0


class ShiftedClock:
    """Wall time plus an offset the test moves forward, shared by both nodes."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def weekends_only_tables(folder: Path) -> tuple[Path, ...]:
    """Tables for the years after the packaged ones, so the test does not depend on today."""
    paths = []
    for year in (2027, 2028):
        path = folder / f"test-{year}.json"
        path.write_text(
            json.dumps(
                {
                    "year": year,
                    "source": "test: weekends only",
                    "holidays": [],
                    "working_weekends": [],
                }
            )
        )
        paths.append(path)
    return tuple(paths)


def overdue_gauge(text: str, role: str, peer: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "yrd_cases_overdue" and sample.labels == {"role": role, "peer": peer}:
                return sample.value
    return 0.0


async def test_due_time_pause_and_overdue(tmp_path: Path) -> None:
    """Acceptance sets the due time by the handler's working days on both sides; a supplement
    request pauses it; past it the case is overdue in the list, the status and the metric."""
    mesh = make_mesh(tmp_path)
    tables = weekends_only_tables(tmp_path)
    calendar = WorkingCalendar(load_holidays(tables))
    clock = ShiftedClock()
    matter = matter_of("jiangsu", 3)  # the traffic fine: one promised working day
    config = {"holiday_tables": tables}
    async with (
        serving(config_for(mesh, "shanghai", **config), clock=clock) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu", **config), clock=clock) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))

        async def submit(seed: int) -> str:
            response = await sh_client.post("/v1/cases", json=case_body(matter, seed=seed))
            case_id: str = (await response.json())["case_id"]
            await eventually(lambda: status_of(js, case_id) == "delivered")
            return case_id

        async def act(case_id: str, **body: Any) -> dict[str, Any]:
            response = await js_client.post(f"/v1/cases/{case_id}/events", json=body)
            assert response.status == 200, await response.text()
            result: dict[str, Any] = await response.json()
            return result

        late, paused = await submit(1), await submit(2)
        accepted = await act(late, action="accept")
        accept_at = next(h for h in accepted["history"] if h["action"] == "accept")["at_ns"] / 1e9
        expected = Deadline(accept_at, matter.promised_days).due_at(calendar)
        assert expected is not None
        await act(paused, action="accept")
        await act(paused, action="request_supplement", reason="请补充处罚决定书")
        await eventually(lambda: status_of(sh, paused) == "supplement_requested")
        await eventually(lambda: status_of(sh, late) == "accepted")

        for client in (sh_client, js_client):
            view = await (await client.get(f"/v1/cases/{late}")).json()
            assert view["due_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expected))
            assert view["overdue"] is False
            held = await (await client.get(f"/v1/cases/{paused}")).json()
            assert held["due_at"] is None and held["overdue"] is False

        clock.offset = expected - time.time() + 60
        for client, node, peer in ((sh_client, sh, "jiangsu"), (js_client, js, "shanghai")):
            listed = await (await client.get("/v1/cases", params={"overdue": "true"})).json()
            assert [c["case_id"] for c in listed["cases"]] == [late]
            # false is a filter too: every case but the late one (the paused one has no due
            # time, so it cannot be late).
            others = await (await client.get("/v1/cases", params={"overdue": "false"})).json()
            assert late not in {c["case_id"] for c in others["cases"]}
            assert paused in {c["case_id"] for c in others["cases"]}
            status = await (await client.get("/v1/status")).json()
            assert status["overdue_cases"] == 1
            metrics = await (await client.get("/metrics")).text()
            role = "accepting" if node is sh else "handling"
            assert overdue_gauge(metrics, role, peer) == 1.0

        await (
            await sh_client.post(f"/v1/cases/{paused}/events", json={"action": "supplement"})
        ).json()
        await eventually(lambda: status_of(js, paused) == "supplemented")
        await eventually(lambda: status_of(sh, paused) == "supplemented")
        resumed = await (await sh_client.get(f"/v1/cases/{paused}")).json()
        assert resumed["due_at"] is not None and resumed["overdue"] is False

        await act(
            late, action="complete", result={"kind": "document", "document_sha256": "1a" * 32}
        )
        await eventually(lambda: status_of(sh, late) == "completed")
        status = await (await sh_client.get("/v1/status")).json()
        assert status["overdue_cases"] == 0

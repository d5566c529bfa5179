"""Structured logs and metrics never carry personal data (DESIGN.md §9, issue 6).

A whole working day of one case and its certificate, with mistakes, runs through two real
nodes and Shanghai's simulated platform while every log record is rendered by the node's own
JSON formatter; no name or ID number may appear in a log line or a metric label."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from adapters.shanghai.dialect import application_form
from adapters.shanghai.platform import BASE, build_platform
from node.platform.config import PlatformConfig
from node.runtime.logs import JsonFormatter
from tests.cases import status_of
from tests.nodes import config_for, eventually, make_mesh, serving, settled
from tests.platforms import application_body


class Lines(logging.Handler):
    """Every record, as the node's JSON formatter writes it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_no_name_or_id_number_in_logs_or_metric_labels(tmp_path: Path) -> None:
    """An application through the platform, a case worked and refused events, a mistyped ID
    number, certificate checks refused and granted, and a presentation: every log line is
    one JSON object with a level, and neither logs nor metrics name a person."""
    mesh = make_mesh(tmp_path)
    app = build_platform(tmp_path / "platform.db", seed=3, officer_delay=3600)
    async with TestServer(app, host="127.0.0.1") as platform, aiohttp.ClientSession() as http:
        url = str(platform.make_url("")).rstrip("/")
        async with http.get(url + "/sim/fixtures") as response:
            fixtures = await response.json()
        personal = {p["name"] for p in fixtures["persons"]} | {
            p["id_number"] for p in fixtures["persons"]
        }
        personal |= {c["holder_code"] for c in fixtures["certificates"]}
        personal |= {c["holder_name"] for c in fixtures["certificates"]}
        config = PlatformConfig("shanghai", url, poll_interval_seconds=0.05)
        with captured() as logs:
            async with (
                serving(config_for(mesh, "shanghai", platform=config)) as (sh, sh_client),
                serving(config_for(mesh, "jiangsu")) as (js, js_client),
            ):
                await eventually(lambda: settled(sh, js))
                body = application_body(fixtures, "jiangsu")
                async with http.post(url + BASE + "/applications", json=application_form(body)):
                    pass
                await eventually(lambda: bool(handled(js)))
                case_id = handled(js)[0]
                await eventually(lambda: status_of(js, case_id) == "delivered")
                await eventually(lambda: checked(js, case_id))
                await js_client.post(f"/v1/cases/{case_id}/events", json={"action": "accept"})
                await js_client.post(f"/v1/cases/{case_id}/events", json={"action": "accept"})
                await js_client.post(
                    f"/v1/cases/{case_id}/events", json={"action": "deny", "reason": "材料不全"}
                )
                await eventually(lambda: status_of(sh, case_id) == "denied")

                mistyped = copy.deepcopy(body)
                code = mistyped["applicant"]["code"]
                mistyped["applicant"]["code"] = code[:-1] + ("0" if code[-1] != "0" else "1")
                await sh_client.post("/v1/cases", json=mistyped)

                card = next(
                    c
                    for c in fixtures["certificates"]
                    if c["type"] == "resident_id_card" and c["status"] == "valid"
                )
                other = next(
                    p["id_number"]
                    for p in fixtures["persons"]
                    if p["id_number"] != card["holder_code"]
                )
                ask = {"certificate_id": card["certificate_id"], "holder_code": card["holder_code"],
                       "purpose": "hotel_check_in"}  # fmt: skip
                await js_client.post("/v1/certificates/verify", json={**ask, "holder_code": other})
                await js_client.post(
                    "/v1/certificates/verify", json={**ask, "fields": ["name", "address"]}
                )
                await js_client.post("/v1/certificates/verify", json=ask)
                held = {
                    "certificate_id": card["certificate_id"],
                    "holder_code": card["holder_code"],
                }
                await sh_client.post("/v1/presentations", json=held)
                metrics = [
                    await (await client.get("/metrics")).text() for client in (sh_client, js_client)
                ]

    assert len(logs.lines) > 20
    events = [json.loads(line) for line in logs.lines]
    assert all({"ts", "level", "logger", "event"} <= set(e) for e in events)
    assert {e["level"] for e in events} <= {"debug", "info", "warning", "error", "critical"}
    assert any(e.get("case_id") == case_id and e.get("peer") for e in events)
    leaks = [(value, line) for line in logs.lines for value in personal if value in line]
    assert not leaks, leaks[:3]
    label_values = [
        line
        for text in metrics
        for line in text.splitlines()
        if "{" in line and not line.startswith("#")
    ]
    assert not [(v, line) for line in label_values for v in personal if v in line]


def handled(node: Any) -> list[str]:
    rows = node.db.reader().execute("SELECT case_id FROM cases WHERE role = 'handling'").fetchall()
    return [row[0] for row in rows]


def checked(node: Any, case_id: str) -> bool:
    rows = (
        node.db.reader()
        .execute(
            "SELECT count(*) FROM case_certificates WHERE case_id = ? AND state = 'pending'",
            (case_id,),
        )
        .fetchone()
    )
    return int(rows[0]) == 0

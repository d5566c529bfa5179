"""A case survives its handling node being SIGKILLed and restarted mid-lifecycle."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.mesh.auth import mesh_session
from node.mesh.layout import read_manifest
from node.store.audit import verify_store
from tests.cases import case_body, matter_of, signature_holds, signed_record, status_of
from tests.effects import assert_exactly_once, read_only
from tests.nodes import config_for, eventually, make_mesh, serving, settled
from tests.processes import authorized, http, process, start_process, wait_ready

pytestmark = pytest.mark.slow


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body) as response:
        data: dict[str, Any] = await response.json()
        assert response.status in (200, 201, 202), data
        return data


async def get(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        data: dict[str, Any] = await response.json()
        assert response.status == 200, data
        return data


async def test_handler_killed_mid_lifecycle(tmp_path: Path) -> None:
    """The handler is SIGKILLed right after its request_supplement commits and while cases and
    a supplement wait for it; after a restart every case arrives once, the lifecycle runs to
    its evaluation, both sides hold equal, verifiable histories and evidence chains, and every
    effect is there exactly once (``tests/effects.py``)."""
    mesh = make_mesh(tmp_path)
    js_url = http(mesh, "jiangsu")
    matter = matter_of("jiangsu", 1)
    handler = start_process(mesh, "jiangsu")
    wait_ready(mesh, "jiangsu", handler)
    async with (
        serving(config_for(mesh, "shanghai")) as (sh, sh_client),
        mesh_session(mesh) as session,
    ):
        await eventually(lambda: sh.cases.find_matter(matter.code) is not None)
        first = await (await sh_client.post("/v1/cases", json=case_body(matter))).json()
        case_id = first["case_id"]
        await eventually(lambda: status_of(sh, case_id) == "delivered")
        await post(session, f"{js_url}/v1/cases/{case_id}/events", {"action": "accept"})
        await post(
            session,
            f"{js_url}/v1/cases/{case_id}/events",
            {"action": "request_supplement", "reason": "缺少申请表签字页"},
        )
        # 200 means committed: the kill may come before the update leaves the node.
        handler.send_signal(signal.SIGKILL)
        handler.wait(timeout=10)

        later = []
        for seed in range(2, 7):
            response = await sh_client.post("/v1/cases", json=case_body(matter, seed=seed))
            later.append((await response.json())["case_id"])

        with process(mesh, "jiangsu"):
            await eventually(lambda: settled(sh), timeout=30)
            await eventually(lambda: status_of(sh, case_id) == "supplement_requested")
            response = await sh_client.post(
                f"/v1/cases/{case_id}/events", json={"action": "supplement"}
            )
            assert response.status == 202
            await eventually(lambda: status_of(sh, case_id) == "supplemented")
            await post(
                session,
                f"{js_url}/v1/cases/{case_id}/events",
                {
                    "action": "complete",
                    "result": {"kind": "document", "document_sha256": "0f" * 32},
                },
            )
            await eventually(lambda: status_of(sh, case_id) == "completed")
            response = await sh_client.post(
                f"/v1/cases/{case_id}/events", json={"action": "evaluate", "level": 4}
            )
            assert response.status == 202
            await eventually(lambda: status_of(sh, case_id) == "evaluated")
            await eventually(lambda: all(status_of(sh, i) == "delivered" for i in later))
            handled = await get(session, f"{js_url}/v1/cases?role=handling&limit=200")
            await eventually(lambda: handler_status(mesh, js_url, case_id) == "evaluated")
            js_view = await get(session, f"{js_url}/v1/cases/{case_id}")
            await eventually(lambda: nothing_pending(mesh / "jiangsu" / "node.db"), timeout=60)
            await eventually(lambda: settled(sh), timeout=60)
        sh_view = await (await sh_client.get(f"/v1/cases/{case_id}")).json()

    assert sorted(c["case_id"] for c in handled["cases"]) == sorted([case_id, *later])
    assert [h["action"] for h in sh_view["history"]] == [
        "deliver",
        "accept",
        "request_supplement",
        "supplement",
        "complete",
        "evaluate",
    ]
    assert signed_record(sh_view["history"]) == signed_record(js_view["history"])
    manifest = read_manifest(mesh)
    for view in (sh_view, js_view):
        assert all(signature_holds(h["evidence"], manifest) for h in view["history"])
    for province in ("shanghai", "jiangsu"):
        report = verify_store(mesh / province / "node.db")
        assert report.ok, (province, report.reason)
    # Each message one receipt and one pair of evidence entries a side, each case one update
    # per number on both sides: the lifecycle's six and the later cases' deliver.
    effects = assert_exactly_once(mesh)
    assert effects.counted["case updates"] == 2 * (6 + len(later))


def nothing_pending(store: Path) -> bool:
    with read_only(store) as conn:
        return not conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]


def handler_status(mesh: Path, url: str, case_id: str) -> str:
    """The case's status at the handler process (a blocking read, for ``eventually``)."""
    request = authorized(mesh, f"{url}/v1/cases/{case_id}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(json.load(response)["status"])

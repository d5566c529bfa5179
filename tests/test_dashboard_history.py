"""The dashboard's history, overdue cases and dead letters, drawn from two real nodes
(mutual-TLS gRPC, SQLite stores, their HTTP apps) exchanging real traffic: cases, probes,
and a probe parked after its peer stopped. The page's sparklines come from the nodes'
own history rings, the lists from their stores, and the retry command, run as printed
(the ``yrd`` entry point, in-process), puts the dead letter back in line."""

from __future__ import annotations

import asyncio
import calendar
import html
import re
import shlex
import sqlite3
import time
from contextlib import AsyncExitStack, closing
from pathlib import Path

from node.cli.main import main
from node.runtime.history import PEER_SERIES
from node.store import outbox
from tests.cases import case_body, matter_of, status_of
from tests.nodes import BUDGET, config_for, eventually, make_mesh, serving, settled
from tests.test_case_deadlines import ShiftedClock, weekends_only_tables

DAY = 86400.0


def series_points(page: str, link: str, series: str) -> list[tuple[float, float]]:
    """The points of the sparkline of ``series`` in the cell of directed ``link``."""
    cell = re.search(rf'data-link="{link}">(.*?)</table></td>', page, re.S)
    assert cell is not None, f"no cell for {link}"
    row = re.search(rf'<tr data-series="{series}">(.*?)</tr>', cell.group(1), re.S)
    assert row is not None, f"no {series} sparkline for {link}"
    drawn = re.findall(r'points="([^"]*)"', row.group(1))
    return [(float(x), float(y)) for line in drawn for x, y in (p.split(",") for p in line.split())]


async def test_sparklines_and_lists_come_from_real_traffic(tmp_path: Path) -> None:
    """Shanghai sends Jiangsu a case and two bursts of probes of different sizes: Shanghai's
    page draws the link's sent series (and Jiangsu's received, from Jiangsu's feed) rising and
    falling, not flat; past the due time the case is listed overdue with its matter, never its
    applicant; a probe parked while Jiangsu is stopped is listed with the command that
    retries it, and that command, run as printed, puts it back in line."""
    mesh = make_mesh(tmp_path)
    tables = weekends_only_tables(tmp_path)
    clock = ShiftedClock()
    matter = matter_of("jiangsu", 3)  # one promised working day
    async with AsyncExitStack() as stack:
        sh, sh_client = await stack.enter_async_context(
            serving(config_for(mesh, "shanghai", holiday_tables=tables), clock=clock)
        )
        js_stack = await stack.enter_async_context(AsyncExitStack())
        js, js_client = await js_stack.enter_async_context(
            serving(config_for(mesh, "jiangsu", holiday_tables=tables), clock=clock)
        )
        await eventually(lambda: settled(sh, js), timeout=BUDGET)
        assert "history" in {task.get_name() for task in asyncio.all_tasks()}

        async def burst(count: int) -> None:
            response = await sh_client.post("/v1/probes", json={"peer": "jiangsu", "count": count})
            assert response.status == 202
            await eventually(lambda: settled(sh, js), timeout=BUDGET)
            sh.history.sample()
            js.history.sample()

        submitted = await sh_client.post("/v1/cases", json=case_body(matter, seed=7))
        case_id = (await submitted.json())["case_id"]
        await eventually(lambda: status_of(js, case_id) == "delivered")
        accepted = await js_client.post(f"/v1/cases/{case_id}/events", json={"action": "accept"})
        assert accepted.status == 200
        await eventually(lambda: status_of(sh, case_id) == "accepted")
        sh.history.sample()
        js.history.sample()
        await burst(40)
        await burst(3)
        await burst(20)

        due = (await (await sh_client.get(f"/v1/cases/{case_id}")).json())["due_at"]
        due_at = calendar.timegm(time.strptime(due, "%Y-%m-%dT%H:%M:%SZ"))
        clock.offset = due_at - time.time() + 60
        sh.history.sample()

        await js_stack.aclose()  # Jiangsu stops: the next probe cannot be delivered
        parked = await sh_client.post("/v1/probes", json={"peer": "jiangsu", "count": 1})
        assert parked.status == 202
        clock.offset += 2 * DAY  # past [delivery] dead_letter_after_seconds (a day)
        await eventually(lambda: outbox.dead_count(sh.db.reader(), "jiangsu") == 1)
        [dead] = outbox.list_items(sh.db.reader(), state=outbox.DEAD)

        page_response = await sh_client.get("/")
        assert page_response.status == 200
        page = await page_response.text()

    sent = series_points(page, "shanghai-jiangsu", "sent")
    assert len({y for _, y in sent}) >= 3, f"the sent series is flat: {sent}"
    # Without ?mesh the link from Jiangsu is drawn from what Shanghai received of it.
    assert series_points(page, "jiangsu-shanghai", "received")
    for series in PEER_SERIES:
        assert f'<tr data-series="{series}">' in page

    overdue = re.search(r'<table class="overdue">(.*?)</table>', page, re.S)
    assert overdue is not None
    assert case_id in overdue.group(1)
    assert html.escape(matter.name) in overdue.group(1)
    assert matter.code in overdue.group(1)
    assert "张三" not in page  # the applicant's name never reaches the dashboard

    letters = re.search(r'<table class="dead-letters">(.*?)</table>', page, re.S)
    assert letters is not None
    [command] = re.findall(r"<code>(yrd outbox retry [^<]*)</code>", letters.group(1))
    argv = shlex.split(html.unescape(command))
    assert argv[-1] == str(dead.seq) and "probe" in letters.group(1)
    assert Path(argv[argv.index("--config") + 1]) == (mesh / "shanghai" / "node.toml").resolve()
    assert argv[0] == "yrd"
    assert await asyncio.to_thread(main, argv[1:]) == 0
    with closing(sqlite3.connect(sh.config.paths.store)) as store:
        assert outbox.dead_count(store) == 0
        [retried] = outbox.list_items(store, state=outbox.PENDING, peer="jiangsu")
    assert retried.seq == dead.seq

"""Every metric and label the alert rules and the Grafana dashboard use is exported by live
nodes, so renaming a metric or a label fails here instead of silently muting an alert or
blanking a panel.

Names are compared with the sample names of the exposition, which is what PromQL selects:
a counter is ``…_total``, a histogram is ``…_bucket``/``…_sum``/``…_count``. A rule that used
a histogram's bare family name would select nothing in Prometheus, and fails here too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from adapters.shanghai.platform import build_platform
from node.api.app import build_app
from node.cases.catalog import load_catalog
from node.platform.adapter import PlatformEvent
from node.platform.config import PlatformConfig
from node.protocol.envelope import seal
from node.runtime.node import Node
from node.store import outbox
from node.trust.keys import load_signing_key
from node.trust.manifest import ManifestMalformed
from node.wire import DELIVER_METHOD
from tests.cases import case_body, status_of
from tests.federation import probe_message
from tests.nodes import (
    ScopedClient,
    config_for,
    eventually,
    make_mesh,
    raw_channel,
    running,
    tls_of,
    tokens_of,
)

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "yrd-federation.json"

METRIC = re.compile(r"\byrd_[a-z0-9_]*[a-z0-9]\b")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\{([^{}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
ALERT_LABEL = re.compile(r"\$labels\.(\w+)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
LABEL_VALUES = re.compile(r"label_values\((?:(.+),\s*)?(\w+)\)")


@dataclass(frozen=True)
class Query:
    where: str
    """Which rule or panel, for the failure message."""
    expr: str
    """The PromQL expression."""
    shown_labels: frozenset[str]
    """Labels the rule's annotations or the panel's legend print."""

    def metrics(self) -> set[str]:
        return set(METRIC.findall(self.expr))

    def labels(self) -> set[str]:
        """Every label the query groups, matches or prints by."""
        names = set(self.shown_labels)
        for group in GROUPING.findall(self.expr):
            names.update(n.strip() for n in group.split(",") if n.strip())
        for selector in SELECTOR.findall(self.expr):
            names.update(MATCHER.findall(selector))
        return names


# -- what the monitoring files use ---------------------------------------------------------


def _block_value(lines: list[str], index: int) -> str:
    """The value of the ``key: value`` at ``lines[index]``, following a folded block."""
    key, _, value = lines[index].partition(":")
    value = value.strip()
    if value not in {">", ">-", "|", "|-"}:
        return value
    indent = len(key) - len(key.lstrip())
    body = []
    for line in lines[index + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line.strip())
    return " ".join(part for part in body if part)


def alert_queries() -> list[Query]:
    """Each alerting rule's expression and the labels its annotations print."""
    text = ALERTS.read_text(encoding="utf-8")
    starts = [m.start() for m in re.finditer(r"^[ \t]*- alert: ", text, re.M)]
    queries = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        lines = [line for line in text[start:end].splitlines() if not line.lstrip().startswith("#")]
        name = lines[0].split(":", 1)[1].strip()
        [expr_line] = [i for i, line in enumerate(lines) if line.lstrip().startswith("expr:")]
        expr = _block_value(lines, expr_line)
        assert expr, f"alerts.yml {name}: empty expr"
        [notes] = [i for i, line in enumerate(lines) if line.strip() == "annotations:"]
        prose = " ".join(lines[notes:])
        queries.append(Query(f"alerts.yml {name}", expr, frozenset(ALERT_LABEL.findall(prose))))
        # Runbook hints name metrics too; a renamed one would send an operator nowhere.
        mentioned = " ".join(METRIC.findall(prose))
        queries.append(Query(f"alerts.yml {name} annotations", mentioned, frozenset()))
    return queries


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def dashboard_queries() -> list[Query]:
    """Every panel target's expression and legend, and every query variable's label_values."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            legend = frozenset(LEGEND_LABEL.findall(target.get("legendFormat", "")))
            where = f"dashboard panel {panel['title']!r} {target['refId']}"
            queries.append(Query(where, target["expr"], legend))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = LABEL_VALUES.fullmatch(query.strip())
        assert match, f"variable ${variable['name']}: expected label_values(…), got {query!r}"
        where = f"dashboard variable ${variable['name']}"
        queries.append(Query(where, match[1] or "", frozenset({match[2]})))
    return queries


def target_labels() -> set[str]:
    """Labels Prometheus attaches at scrape time: job, instance and the configured ones."""
    labels = {"job", "instance"}
    lines = SCRAPE_CONFIG.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.strip() != "labels:":
            continue
        indent = len(line) - len(line.lstrip())
        for entry in lines[index + 1 :]:
            if len(entry) - len(entry.lstrip()) <= indent:
                break
            labels.add(entry.split(":", 1)[0].strip())
    return labels


# -- what live nodes export ----------------------------------------------------------------


def _delivered(node: Node, message_ids: list[str]) -> bool:
    items = [outbox.get(node.db.reader(), i) for i in message_ids]
    return all(item is not None and item.state == "delivered" for item in items)


async def exposition_after_traffic(mesh: Path) -> list[str]:
    """Shanghai's and Jiangsu's /metrics after a delivered probe, a refused envelope, a
    re-delivered envelope and a refused manifest reload: every labelled series exists."""
    # Shanghai with its province platform, so the platform link's series exist too.
    platform = TestServer(
        build_platform(mesh / "platform.db", seed=1, officer_delay=3600), host="127.0.0.1"
    )
    await platform.start_server()
    with_platform = PlatformConfig(
        "shanghai", str(platform.make_url("")).rstrip("/"), poll_interval_seconds=0.05
    )
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai", platform=with_platform)) as sh,
        ScopedClient(TestServer(build_app(sh)), tokens_of(sh.config)) as sh_client,
        ScopedClient(TestServer(build_app(js)), tokens_of(js.config)) as js_client,
    ):
        await eventually(lambda: sh.peers.link("jiangsu").up and js.peers.link("shanghai").up)
        response = await sh_client.post("/v1/probes", json={"peer": "jiangsu", "count": 1})
        assert response.status == 202
        ids = (await response.json())["message_ids"]
        await eventually(lambda: _delivered(sh, ids))

        key = load_signing_key(mesh / "shanghai" / "signing.key")
        sealed = seal(probe_message("shanghai", "jiangsu", now=time.time()), key)
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            deliver = ch.unary_unary(DELIVER_METHOD)
            with pytest.raises(grpc.aio.AioRpcError):
                await deliver(b"\xff\x00garbage", timeout=5)
            await deliver(sealed.envelope, timeout=5)
            await deliver(sealed.envelope, timeout=5)

        await cases_and_certificates(sh, sh_client, js, js_client)

        sh.config.paths.manifest.write_bytes(b"not a manifest")
        with pytest.raises(ManifestMalformed):
            await sh.reload()

        for node in (sh, js):
            assert set((await node.checkpoints.checkpoint()).values()) == {"cosigned"}

        await eventually(lambda: sh.platform is not None and sh.platform.state.up)
        texts = []
        for client in (sh_client, js_client):
            # One scrape: every family must be there the first time Prometheus asks.
            response = await client.get("/metrics")
            assert response.status == 200
            texts.append(await response.text())
    await platform.close()
    return texts


async def cases_and_certificates(
    sh: Node, sh_client: TestClient[Any, Any], js: Node, js_client: TestClient[Any, Any]
) -> None:
    """A case concluded, a platform event refused, a certificate verified and presented."""
    matter = load_catalog("jiangsu").matters[3]
    await eventually(lambda: sh.cases.find_matter(matter.code) is not None)
    response = await sh_client.post("/v1/cases", json=case_body(matter))
    case_id = (await response.json())["case_id"]
    await eventually(lambda: status_of(js, case_id) == "delivered")
    await js_client.post(f"/v1/cases/{case_id}/events", json={"action": "reject", "reason": "测试"})
    await eventually(lambda: status_of(sh, case_id) == "rejected")
    assert sh.platform is not None
    stray = PlatformEvent("coverage-1", "310000-20260101-0000", {"action": "accept"})
    await sh.platform._take_event(stray)

    card = next(
        c
        for c in (await sh_platform_fixtures(sh))["certificates"]
        if c["type"] == "resident_id_card" and c["status"] == "valid"
    )
    asked = {
        "certificate_id": card["certificate_id"],
        "holder_code": card["holder_code"],
        "purpose": "hotel_check_in",
    }
    assert (await js_client.post("/v1/certificates/verify", json=asked)).status == 200
    held = {"certificate_id": card["certificate_id"], "holder_code": card["holder_code"]}
    token = (await (await sh_client.post("/v1/presentations", json=held)).json())["token"]
    assert (await js_client.post("/v1/presentations/verify", json={"token": token})).status == 200


async def sh_platform_fixtures(sh: Node) -> dict[str, Any]:
    assert sh.config.platform is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(sh.config.platform.url + "/sim/fixtures") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each sample name the live nodes export, with the label names seen on it."""
    mesh = make_mesh(tmp_path_factory.mktemp("coverage"))
    labels: dict[str, set[str]] = {}
    for text in asyncio.run(exposition_after_traffic(mesh)):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def uncovered(queries: list[Query], exported: dict[str, set[str]]) -> list[str]:
    """One line for each metric or label a query uses that the live nodes do not export."""
    scraped = target_labels()
    problems = []
    for query in queries:
        available = set(scraped)
        for name in sorted(query.metrics()):
            if name not in exported:
                problems.append(f"{query.where}: metric {name} is not exported")
            available |= exported.get(name, set())
        for label in sorted(query.labels() - available):
            problems.append(f"{query.where}: label {label!r} is on none of its metrics")
    return problems


# -- tests ---------------------------------------------------------------------------------


def test_alert_rules_use_only_exported_metrics_and_labels(exported: dict[str, set[str]]) -> None:
    """Every metric in an alert expression, and every label it groups, matches or prints by,
    is exported by a live node."""
    queries = alert_queries()
    assert len(queries) == 2 * ALERTS.read_text(encoding="utf-8").count("- alert: ")
    problems = uncovered(queries, exported)
    assert not problems, "\n".join(problems)


def test_dashboard_uses_only_exported_metrics_and_labels(exported: dict[str, set[str]]) -> None:
    """Every metric in a dashboard panel or variable query, and every label it groups, matches
    or shows in a legend, is exported by a live node."""
    problems = uncovered(dashboard_queries(), exported)
    assert not problems, "\n".join(problems)


def test_coverage_check_catches_a_renamed_metric_and_label(exported: dict[str, set[str]]) -> None:
    """A query naming a metric or a label the nodes do not export is reported, so the checks
    above cannot pass by reading nothing."""
    renamed = Query("renamed", 'sum by (peer) (yrd_outbox_depths{provinc="x"})', frozenset())
    relabelled = Query("relabelled", "yrd_outbox_depth", frozenset({"destination"}))
    assert uncovered([renamed, relabelled], exported) == [
        "renamed: metric yrd_outbox_depths is not exported",
        "renamed: label 'peer' is on none of its metrics",
        "renamed: label 'provinc' is on none of its metrics",
        "relabelled: label 'destination' is on none of its metrics",
    ]
    assert len({name for q in alert_queries() for name in q.metrics()}) >= 10
    assert len({name for q in dashboard_queries() for name in q.metrics()}) >= 20

"""The Prometheus side of monitoring, checked with Prometheus's own tool: the alert rules load
and pass their unit tests, the example scrape config is valid and matches the mesh's ports,
and a live node's exposition passes ``promtool check metrics``.

promtool comes from Debian's ``prometheus`` package, which ``make test`` installs when missing.
Without it these tests skip on a workstation; in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from node.mesh.layout import DEFAULT_PROVINCES, ports_for
from tests.binaries import required_binary
from tests.nodes import BUDGET, make_mesh
from tests.test_metric_coverage import ALERTS, SCRAPE_CONFIG, exposition_after_traffic

PROMETHEUS = ALERTS.parent
ALERT_TESTS = PROMETHEUS / "tests" / "alerts_test.yml"


@pytest.fixture
def promtool() -> str:
    return required_binary("promtool", "prometheus")


def promtool_run(promtool: str, *args: str, stdin: str | None = None) -> str:
    """Run promtool in monitoring/prometheus; return its output, failing the test on non-zero."""
    result = subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=BUDGET,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


@pytest.mark.slow
def test_alert_rules_are_valid(promtool: str) -> None:
    """`promtool check rules` accepts alerts.yml."""
    output = promtool_run(promtool, "check", "rules", ALERTS.name)
    assert "SUCCESS" in output


@pytest.mark.slow
def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    """Every alert fires on the series that should raise it, with the annotations expected, and
    stays silent on look-alikes (`promtool test rules`)."""
    output = promtool_run(promtool, "test", "rules", str(ALERT_TESTS.relative_to(PROMETHEUS)))
    assert "SUCCESS" in output


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    """Each alert in alerts.yml has a promtool test case where it fires and one where it stays
    silent, and the tests name no alert that does not exist."""
    alerts = set(re.findall(r"^[ \t]*- alert: (\w+)", ALERTS.read_text(encoding="utf-8"), re.M))
    firing: set[str] = set()
    silent: set[str] = set()
    current = None
    for line in ALERT_TESTS.read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"\s*- alertname: (\w+)\s*", line):
            current = match[1]
        elif match := re.fullmatch(r"\s*exp_alerts:\s*(\[\])?\s*", line):
            assert current is not None
            (silent if match[1] else firing).add(current)
    assert len(alerts) == 30
    assert firing == alerts
    assert silent == alerts


@pytest.mark.slow
def test_scrape_config_is_valid(promtool: str) -> None:
    """`promtool check config` accepts prometheus.yml and the rule file it loads."""
    output = promtool_run(promtool, "check", "config", SCRAPE_CONFIG.name)
    assert "1 rule files found" in output


def test_scrape_config_labels_each_mesh_node_with_its_province() -> None:
    """The example scrape config targets each province's HTTP port as `yrd mesh init` assigns
    it, labelled with that province."""
    text = SCRAPE_CONFIG.read_text(encoding="utf-8")
    configured = re.findall(
        r'- targets: \["127\.0\.0\.1:(\d+)"\]\s*\n\s*labels:\s*\n\s*province: (\w+)', text
    )
    expected = [
        (str(ports_for(index).http), province) for index, province in enumerate(DEFAULT_PROVINCES)
    ]
    assert configured == expected


def test_node_down_alert_watches_the_scraped_job() -> None:
    """YrdNodeDown selects the job name prometheus.yml scrapes, so it cannot watch nothing."""
    [job] = re.findall(r"job_name: (\S+)", SCRAPE_CONFIG.read_text(encoding="utf-8"))
    assert f'expr: up{{job="{job}"}} == 0' in ALERTS.read_text(encoding="utf-8")


@pytest.mark.slow
def test_live_exposition_passes_promtool_check_metrics(promtool: str, tmp_path: Path) -> None:
    """Both nodes' /metrics, after deliveries, refusals, a re-delivery and a refused reload,
    have no `promtool check metrics` lint problems."""
    shanghai, jiangsu = asyncio.run(exposition_after_traffic(make_mesh(tmp_path)))
    assert "yrd_delivery_latency_seconds_bucket{" in shanghai
    assert 'code="malformed_envelope"' in jiangsu
    for text in (shanghai, jiangsu):
        assert promtool_run(promtool, "check", "metrics", stdin=text) == ""

"""`yrd status --watch`: the tables redrawn with each backlog's rate of change, until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitoring.status import NodeAnswer, backlog_rates, link_rows, with_rates
from tests.nodes import BUDGET, free_base_port

YRD = [sys.executable, "-m", "node.cli.main"]


def answer(province: str, depths: dict[str, int]) -> NodeAnswer:
    status: dict[str, Any] = {
        "province": province,
        "peers": [
            {"peer": peer, "up": True, "outbox_depth": depth, "circuit": "closed"}
            for peer, depth in depths.items()
        ],
    }
    return NodeAnswer(f"http://{province}", status)


def test_rates_are_the_change_of_each_links_backlog_per_second() -> None:
    before = [answer("shanghai", {"jiangsu": 10, "anhui": 4}), NodeAnswer("http://x", None, "down")]
    after = [
        answer("shanghai", {"jiangsu": 30, "anhui": 0, "zhejiang": 5}),
        answer("anhui", {"shanghai": 1}),
    ]
    rates = backlog_rates(before, after, 2.0)
    assert rates == {("shanghai", "jiangsu"): 10.0, ("shanghai", "anhui"): -2.0}
    rows = with_rates(link_rows(after), rates)
    shown = {(row[0], row[1]): row[-1] for row in rows}
    assert shown == {
        ("shanghai", "jiangsu"): "+10.0",
        ("shanghai", "anhui"): "-2.0",
        ("shanghai", "zhejiang"): "",
        ("anhui", "shanghai"): "",
    }
    assert backlog_rates(before, after, 0.0) == {}


@pytest.mark.slow
def test_watch_redraws_until_ctrl_c_and_then_exits_130(tmp_path: Path) -> None:
    """Against a node that is down the frames still come, each saying so; Ctrl-C ends it as
    it ends every command (README's exit table): one line, exit 130. Into a file, frames
    follow each other (no screen clearing)."""
    url = f"http://127.0.0.1:{free_base_port(1) + 1000}"
    out = tmp_path / "watch.out"
    with out.open("wb") as sink:
        watching = subprocess.Popen(
            [*YRD, "status", "--watch", "--interval", "0.2", url],
            stdout=sink,
            stderr=subprocess.PIPE,
            env={**os.environ, "YRD_HTTP_TOKEN": "a-read-token"},
            # As a terminal's Ctrl-C finds it, even when the tests run as a background job.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + BUDGET
        while out.read_text().count("yrd status --watch") < 3:
            assert watching.poll() is None, watching.stderr
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
    finally:
        watching.send_signal(signal.SIGINT)
        _, err = watching.communicate(timeout=BUDGET)
    assert (watching.returncode, err.decode()) == (130, "yrd: interrupted\n")
    text = out.read_text()
    assert "\x1b[2J" not in text
    assert "connection refused" in text
    assert "UNHEALTHY" in text


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--watch", "--json"], "choose one"),
        (["--watch", "--interval", "0.01"], "at least 0.2 seconds"),
    ],
)
def test_watch_refuses_what_it_cannot_do(
    options: list[str], said: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    from node.cli.main import main

    monkeypatch.setenv("YRD_HTTP_TOKEN", "a-read-token")
    assert main(["status", *options, "http://127.0.0.1:9"]) == 2
    assert said in capsys.readouterr().err

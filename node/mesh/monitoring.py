"""A real Prometheus for the mesh on one machine (``yrd mesh up --monitoring``, ``yrd demo
--monitoring``): it scrapes every node with the shipped alert rules.

Rules kept here:
- The server is the Debian ``prometheus`` binary, run as a process of the mesh, its
  configuration and data in ``DIR/prometheus``; it listens on loopback only, on a free port,
  and the mesh writes its URL into ``mesh.json``.
- The configuration is generated from the nodes' configs: job ``yrd-node`` and a
  ``province`` label per target, as the shipped ``monitoring/prometheus/prometheus.yml`` and
  the alert rules expect. The rules are the shipped ``alerts.yml``, copied beside the
  configuration; a test may pass its own copy (shorter ``for:``), never edit the shipped one.
- It is kept like the mesh's other processes: started again, after a back-off, if it exits.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

import monitoring
from node.mesh.processes import MeshError, wait_http
from node.runtime.config import NodeConfig

SHIPPED_RULES = Path(monitoring.__file__).parent / "prometheus" / "alerts.yml"
SCRAPE_INTERVAL = "5s"
"""How often the mesh's Prometheus scrapes and evaluates: a live mesh shows faults within
seconds (the shipped configuration for real deployments says 15s)."""
READY_TIMEOUT = 30.0
STOP_GRACE = 10.0
RESTART_BACKOFF = (1.0, 30.0)
"""First and longest wait before starting an exited Prometheus again."""


class MonitoringError(MeshError):
    """Prometheus cannot be started; the text says what to do."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape_config(configs: Sequence[NodeConfig], rules: Path) -> dict[str, Any]:
    """The Prometheus configuration for ``configs``' nodes (JSON is YAML)."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "yrd-node",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [config.http_listen], "labels": {"province": config.province}}
                    for config in configs
                ],
            }
        ],
    }


class Prometheus:
    def __init__(
        self,
        directory: Path,
        configs: Sequence[NodeConfig],
        *,
        rules: Path = SHIPPED_RULES,
        port: int | None = None,
    ) -> None:
        self.folder = directory / "prometheus"
        self.configs = list(configs)
        self.rules = rules
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running server's process id; None before it starts."""
        return self.process.pid if self.process is not None else None

    @property
    def log_path(self) -> Path:
        return self.folder / "prometheus.log"

    def write_config(self) -> Path:
        """Copy the rules beside a generated configuration; return the configuration."""
        self.folder.mkdir(parents=True, exist_ok=True)
        rules = self.folder / "alerts.yml"
        shutil.copyfile(self.rules, rules)
        path = self.folder / "prometheus.yml"
        path.write_text(json.dumps(scrape_config(self.configs, rules), indent=2) + "\n")
        return path

    def start(self) -> subprocess.Popen[bytes]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise MonitoringError(
                "prometheus is not installed: apt-get install prometheus (make demo and make "
                "test install it when run as root)"
            )
        config = self.write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=2d",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self.process

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self.process is not None
        await wait_http(self.url + "/-/ready", self.process, "prometheus", self.log_path, timeout)

    async def keep(
        self,
        stop: asyncio.Event,
        tell: Callable[[str], None],
        *,
        on_start: Callable[[], object] | None = None,
    ) -> None:
        """Start Prometheus again, after a back-off, whenever it exits, until ``stop``;
        ``on_start`` is told each time (the mesh rewrites mesh.json with the new pid)."""
        wait = RESTART_BACKOFF[0]
        while not stop.is_set():
            process = self.process
            if process is not None and process.poll() is not None:
                tell(
                    f"prometheus exited with code {process.returncode}; starting it again in "
                    f"{wait:.0f} s (see {self.log_path})"
                )
                try:
                    async with asyncio.timeout(wait):
                        await stop.wait()
                    return
                except TimeoutError:
                    pass
                self.start()
                if on_start is not None:
                    on_start()
                wait = min(wait * 2, RESTART_BACKOFF[1])
            try:
                async with asyncio.timeout(1.0):
                    await stop.wait()
            except TimeoutError:
                pass

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """Stop Prometheus (it flushes its data); its exit code, None if it never ran."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode


async def fired_alerts(url: str, since: float) -> list[dict[str, str]]:
    """The alerts that were firing at any time since ``since`` (a Unix time), each with its
    labels, from Prometheus's ALERTS series."""
    window = max(1, int(time.time() - since) + 1)
    query = f'max_over_time(ALERTS{{alertstate="firing"}}[{window}s])'
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            url + "/api/v1/query", params={"query": query}, timeout=aiohttp.ClientTimeout(total=10)
        ) as reply,
    ):
        document = await reply.json()
    return [
        {k: v for k, v in sample["metric"].items() if k not in ("__name__", "alertstate")}
        for sample in document.get("data", {}).get("result", [])
    ]

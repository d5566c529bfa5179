"""A four-province mesh on one machine, each node a separate process (``yrd mesh up``).

Rules kept here:
- Every node runs as its own ``yrd node run`` process with its log in ``DIR/<province>/``;
  the supervisor only starts, watches and stops them.
- A node configured with a province platform gets that province's simulated platform as its
  own process too (``python -m adapters.simulation.run``: its SQLite, seed and log in
  ``DIR/<province>/``), started and ready before the node.
- ``DIR/mesh.json`` is written once every node is ready, and removed on a clean stop.
- Stopping sends SIGTERM (the nodes' graceful shutdown), after SIGCONT to wake a paused
  process, and waits; SIGKILL only after the grace period.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from node.runtime.config import NodeConfig, load_config
from node.trust.layout import DEFAULT_PROVINCES as PROVINCE_ORDER
from node.trust.layout import read_manifest

READY_TIMEOUT = 30.0
STOP_GRACE = 15.0


@dataclass(frozen=True)
class MeshNode:
    province: str
    node_id: str
    grpc: str
    http: str
    platform: str | None
    """The simulated platform's address, when the node has one."""
    pid: int
    platform_pid: int | None = None


class MeshError(Exception):
    pass


def node_run_command(config: Path, *options: str) -> list[str]:
    """The command line that runs one node as its own process (this Python, this package)."""
    return [sys.executable, "-m", "node.cli.main", "node", "run", "--config", str(config), *options]


def platform_run_command(config: NodeConfig, *, seed: int, officer_delay: float) -> list[str]:
    """The command line of the simulated platform of ``config``'s province."""
    platform = config.platform
    assert platform is not None, "a node without a platform has none to run"
    assert config.source is not None
    folder = config.source.parent
    command = [
        sys.executable,
        "-m",
        "adapters.simulation.run",
        "--province",
        platform.adapter,
        "--listen",
        platform.url.removeprefix("http://").rstrip("/"),
        "--db",
        str(folder / "platform.db"),
        "--seed",
        str(seed),
        "--officer-delay",
        str(officer_delay),
    ]
    if platform.credentials_file is not None:
        command += ["--credentials-file", str(platform.credentials_file)]
    return command


def node_configs(directory: Path) -> list[NodeConfig]:
    manifest = read_manifest(directory)
    configs = []
    for member in manifest.members:
        path = directory / member.province / "node.toml"
        configs.append(load_config(path, os.environ))
    return configs


class Mesh:
    def __init__(self, directory: Path, *, seed: int = 1, officer_delay: float = 1.0) -> None:
        self.directory = directory
        self.configs = node_configs(directory)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.platforms: dict[str, subprocess.Popen[bytes]] = {}
        self.seed = seed
        self.officer_delay = officer_delay

    def platform_url(self, province: str) -> str | None:
        config = next(c for c in self.configs if c.province == province)
        return config.platform.url if config.platform else None

    def start_platform(self, config: NodeConfig) -> subprocess.Popen[bytes]:
        assert config.source is not None
        command = platform_run_command(
            config,
            seed=self.seed + PROVINCE_ORDER.index(config.province),
            officer_delay=self.officer_delay,
        )
        with (config.source.parent / "platform.log").open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.platforms[config.province] = process
        return process

    async def wait_platform(self, province: str, timeout: float = READY_TIMEOUT) -> None:
        url = self.platform_url(province)
        assert url is not None
        await self._wait_http(
            url + "/sim/fixtures",
            self.platforms[province],
            f"{province} platform",
            self.directory / province / "platform.log",
            timeout,
        )

    def url(self, province: str) -> str:
        config = next(c for c in self.configs if c.province == province)
        return f"http://{config.http_listen}"

    @property
    def urls(self) -> list[str]:
        return [self.url(c.province) for c in self.configs]

    def start_node(self, config: NodeConfig) -> subprocess.Popen[bytes]:
        assert config.source is not None
        log_path = config.source.parent / "node.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                node_run_command(config.source),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches the supervisor only
            )
        self.processes[config.province] = process
        return process

    async def wait_ready(self, province: str, timeout: float = READY_TIMEOUT) -> None:
        await self._wait_http(
            self.url(province) + "/readyz",
            self.processes[province],
            f"{province} node",
            self.directory / province / "node.log",
            timeout,
        )

    async def _wait_http(
        self,
        url: str,
        process: subprocess.Popen[bytes],
        what: str,
        log: Path,
        timeout: float,
    ) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise MeshError(f"{what} exited with code {process.returncode}; see {log}")
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise MeshError(f"{what} was not ready within {timeout:.0f} s")

    async def up(self) -> list[MeshNode]:
        try:
            with_platform = [c for c in self.configs if c.platform is not None]
            for config in with_platform:
                self.start_platform(config)
            await asyncio.gather(*(self.wait_platform(c.province) for c in with_platform))
            for config in self.configs:
                self.start_node(config)
            await asyncio.gather(*(self.wait_ready(c.province) for c in self.configs))
        except MeshError:
            self.stop()
            raise
        return self.record()

    def record(self) -> list[MeshNode]:
        """Write ``DIR/mesh.json`` for the processes running now (again after a restart)."""
        nodes = [
            MeshNode(
                c.province,
                c.node_id,
                c.grpc_listen,
                c.http_listen,
                c.platform.url.removeprefix("http://") if c.platform else None,
                self.processes[c.province].pid,
                self.platforms[c.province].pid if c.province in self.platforms else None,
            )
            for c in self.configs
        ]
        (self.directory / "mesh.json").write_text(
            json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=2) + "\n"
        )
        return nodes

    def signal_nodes(self, signum: int) -> None:
        """Send ``signum`` to every node (SIGHUP: reload), not to the platforms."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signum)

    def exited(self) -> list[str]:
        """What has stopped on its own: "<province> node" or "<province> platform"."""
        return [
            f"{province} {kind} ({process.returncode})"
            for kind, group in (("node", self.processes), ("platform", self.platforms))
            for province, process in group.items()
            if process.poll() is not None
        ]

    def stop(self, grace: float = STOP_GRACE) -> dict[str, int | None]:
        """Stop the nodes, then their platforms; the nodes' exit codes by province."""
        for group in (self.processes, self.platforms):
            for process in group.values():
                if process.poll() is None:
                    # A paused (SIGSTOPped) process acts on SIGTERM only once it runs again.
                    process.send_signal(signal.SIGCONT)
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for process in group.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        (self.directory / "mesh.json").unlink(missing_ok=True)
        return {p: proc.returncode for p, proc in self.processes.items()}

"""A four-province mesh on one machine, each node a separate process (``yrd mesh up``).

Rules kept here:
- Every node runs as its own ``yrd node run`` process with its log in ``DIR/<province>/``;
  the supervisor only starts, watches and stops them.
- ``DIR/mesh.json`` is written once every node is ready, and removed on a clean stop.
- Stopping sends SIGTERM (the nodes' graceful shutdown) and waits; SIGKILL only after the
  grace period.
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
    """The simulated platform's address (issue 5 adds the platforms)."""
    pid: int


class MeshError(Exception):
    pass


def node_run_command(config: Path, *options: str) -> list[str]:
    """The command line that runs one node as its own process (this Python, this package)."""
    return [sys.executable, "-m", "node.cli.main", "node", "run", "--config", str(config), *options]


def node_configs(directory: Path) -> list[NodeConfig]:
    manifest = read_manifest(directory)
    configs = []
    for member in manifest.members:
        path = directory / member.province / "node.toml"
        configs.append(load_config(path, os.environ))
    return configs


class Mesh:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.configs = node_configs(directory)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

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
        deadline = time.monotonic() + timeout
        url = self.url(province) + "/readyz"
        process = self.processes[province]
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise MeshError(
                        f"{province} node exited with code {process.returncode}; see "
                        f"{self.directory / province / 'node.log'}"
                    )
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise MeshError(f"{province} node was not ready within {timeout:.0f} s")

    async def up(self) -> list[MeshNode]:
        for config in self.configs:
            self.start_node(config)
        try:
            await asyncio.gather(*(self.wait_ready(c.province) for c in self.configs))
        except MeshError:
            self.stop()
            raise
        nodes = [
            MeshNode(
                c.province,
                c.node_id,
                c.grpc_listen,
                c.http_listen,
                None,
                self.processes[c.province].pid,
            )
            for c in self.configs
        ]
        (self.directory / "mesh.json").write_text(
            json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=2) + "\n"
        )
        return nodes

    def signal_all(self, signum: int) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signum)

    def stop(self, grace: float = STOP_GRACE) -> dict[str, int | None]:
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        (self.directory / "mesh.json").unlink(missing_ok=True)
        return {p: proc.returncode for p, proc in self.processes.items()}

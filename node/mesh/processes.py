"""A four-province mesh on one machine, each node a separate process (``yrd mesh up``).

Rules kept here:
- Every node runs as its own ``yrd node run`` process with its log in ``DIR/<province>/``
  (``logs``); ``Mesh`` only starts, waits for and stops them; what starts again a process
  that exits is ``supervisor`` (``yrd mesh up``), or ``yrd chaos`` for the processes it
  disturbs.
- A node configured with a province platform gets that province's simulated platform as its
  own process too (``python -m adapters.simulation.run``: its SQLite, seed and log in
  ``DIR/<province>/``), started and ready before the node.
- Nothing starts while another process listens on one of the mesh's ports.
- ``DIR/mesh.json`` (``record``) is written once every node is ready, again whenever a
  process's pid or state changes, and removed on a clean stop.
- Stopping sends SIGTERM (the nodes' graceful shutdown), after SIGCONT to wake a paused
  process, and waits; SIGKILL only after the grace period.
- A mesh made with ``links`` (``yrd mesh up --links``, ``yrd chaos --network``) dials every
  peer through its directed link's proxy (``routes``), from before any node starts until
  the mesh stops.
- A ``--store postgres`` mesh starts its own PostgreSQL server (``database``) before
  anything else and stops it after everything else. Each province runs every replica its
  folder has a config for (``node.toml``, ``node-2.toml``, …: ``layout.config_name``), each
  its own process with its own log (``node.log``, ``node-2.log``, …); replica 1 is the
  province's node as single-node tools know it (``processes``), replicas 2.. are kept
  beside it (``replica_processes``) and listed with it in mesh.json under ``replicas``.
  What reads the stores once the mesh has stopped (the demo's and chaos's evidence checks)
  runs the server again meanwhile (``stores_readable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import aiohttp

from node.mesh.database import database_port, start_mesh_database
from node.mesh.layout import DEFAULT_PROVINCES as PROVINCE_ORDER
from node.mesh.layout import MAX_REPLICAS, config_name, read_manifest
from node.mesh.logs import log_tail, open_log
from node.mesh.postgres_server import PostgresServer, ServerFailed, ServerMissing
from node.mesh.record import (
    MESH_FILE,
    TOKENS_FILE,
    Kind,
    MeshLink,
    MeshNode,
    MeshRecord,
    MeshReplica,
    ProcessState,
    write_record,
)
from node.mesh.routes import route_peers
from node.runtime.config import NodeConfig, load_config

READY_TIMEOUT = 30.0
STOP_GRACE = 15.0


class MeshError(Exception):
    pass


def _free(address: str) -> bool:
    """Whether nothing listens on ``host:port`` (a socket in TIME_WAIT does not count)."""
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError:
            return False
    return True


class Monitor(Protocol):
    """What the mesh writes into mesh.json of its Prometheus, when it runs one."""

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int | None: ...


class StartupFailed(MeshError):
    """A process of the mesh exited, or never got ready, while the mesh started; ``tail``
    holds the last lines it wrote to its log in this start (what it said before it went)."""

    def __init__(self, message: str, log: Path, tail: Sequence[str]) -> None:
        super().__init__(message)
        self.log = log
        self.tail = list(tail)


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
    """Each province's node (its first replica's config), in the manifest's order."""
    return [replicas[0] for replicas in replica_configs(directory).values()]


def replica_configs(directory: Path) -> dict[str, list[NodeConfig]]:
    """Each province's replicas' configs in order (replica 1 first), by province in the
    manifest's order."""
    found = {}
    for member in read_manifest(directory).members:
        folder = directory / member.province
        configs = [load_config(folder / config_name(1), os.environ)]
        while len(configs) < MAX_REPLICAS and (folder / config_name(len(configs) + 1)).exists():
            configs.append(load_config(folder / config_name(len(configs) + 1), os.environ))
        found[member.province] = configs
    return found


async def wait_http(
    url: str,
    process: subprocess.Popen[bytes],
    what: str,
    log: Path,
    timeout: float,
    since: int = 0,
) -> None:
    """Until ``url`` answers 200; StartupFailed (with the end of what ``process`` wrote to
    ``log`` after byte ``since``) if it exits first or is not ready in time."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StartupFailed(
                    f"{what} (pid {process.pid}) exited with code {process.returncode} "
                    f"while starting; log {log}",
                    log,
                    log_tail(log, since),
                )
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise StartupFailed(
        f"{what} (pid {process.pid}) was not ready within {timeout:.0f} s; log {log}",
        log,
        log_tail(log, since),
    )


class Mesh:
    def __init__(
        self,
        directory: Path,
        *,
        seed: int = 1,
        officer_delay: float = 1.0,
        links: Sequence[MeshLink] = (),
    ) -> None:
        self.directory = directory
        self.links = list(links)
        """The proxies the nodes dial each other through; empty: directly."""
        route_peers(directory, self.links)
        self.replicas = replica_configs(directory)
        """Each province's replicas' configs, replica 1 first."""
        self.configs = [replicas[0] for replicas in self.replicas.values()]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        """Each province's node (replica 1)."""
        self.replica_processes: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        """Replicas 2.. of each province, by (province, replica)."""
        self.replica_states: dict[tuple[str, int], ProcessState] = {}
        self.database: PostgresServer | None = None
        """The mesh's own PostgreSQL server while it runs (``--store postgres``)."""
        self.platforms: dict[str, subprocess.Popen[bytes]] = {}
        self.states: dict[tuple[str, Kind], ProcessState] = {}
        """Each process's state as mesh.json shows it; one not named here is running."""
        self.supervisor_pid: int | None = None
        """Written into mesh.json: the process that restarts this mesh's processes."""
        self.monitor: Monitor | None = None
        """Written into mesh.json: the mesh's Prometheus, when it runs one."""
        self.seed = seed
        self.officer_delay = officer_delay
        self.log_starts: dict[tuple[str, str], int] = {}
        """Where each process's log stood when it was last started: what it wrote since."""

    def config(self, province: str) -> NodeConfig:
        return next(c for c in self.configs if c.province == province)

    def platform_url(self, province: str) -> str | None:
        config = self.config(province)
        return config.platform.url if config.platform else None

    def log_path(self, province: str, kind: Kind, replica: int = 1) -> Path:
        name = kind if replica == 1 else f"{kind}-{replica}"
        return self.directory / province / f"{name}.log"

    def process(self, province: str, kind: Kind, replica: int = 1) -> subprocess.Popen[bytes]:
        if replica > 1:
            return self.replica_processes[(province, replica)]
        return (self.processes if kind == "node" else self.platforms)[province]

    def state(self, province: str, kind: Kind, replica: int = 1) -> ProcessState:
        if replica > 1:
            return self.replica_states.get((province, replica), ProcessState.RUNNING)
        return self.states.get((province, kind), ProcessState.RUNNING)

    def set_state(self, province: str, kind: Kind, state: ProcessState, replica: int = 1) -> None:
        if replica > 1:
            self.replica_states[(province, replica)] = state
        else:
            self.states[(province, kind)] = state

    def start_process(self, province: str, kind: Kind, replica: int = 1) -> subprocess.Popen[bytes]:
        """Start ``province``'s node (replica) or platform (again), with the same files."""
        if kind == "platform":
            return self.start_platform(self.config(province))
        return self.start_node(self.replicas[province][replica - 1], replica)

    async def wait_process(self, province: str, kind: Kind, replica: int = 1) -> None:
        """Until ``province``'s node (replica) or platform is ready; MeshError if it exits
        first or is not ready in time."""
        if kind == "node":
            await self.wait_ready(province, replica=replica)
        else:
            await self.wait_platform(province)

    def start_platform(self, config: NodeConfig) -> subprocess.Popen[bytes]:
        assert config.source is not None
        command = platform_run_command(
            config,
            seed=self.seed + PROVINCE_ORDER.index(config.province),
            officer_delay=self.officer_delay,
        )
        with open_log(self.log_path(config.province, "platform")) as log:
            self.log_starts[(config.province, "platform")] = os.fstat(log.fileno()).st_size
            process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.platforms[config.province] = process
        return process

    async def wait_platform(self, province: str, timeout: float = READY_TIMEOUT) -> None:
        url = self.platform_url(province)
        assert url is not None
        await wait_http(
            url + "/sim/fixtures",
            self.platforms[province],
            f"{province} platform",
            self.log_path(province, "platform"),
            timeout,
            self.log_starts.get((province, "platform"), 0),
        )

    def url(self, province: str, replica: int = 1) -> str:
        return f"http://{self.replicas[province][replica - 1].http_listen}"

    @property
    def urls(self) -> list[str]:
        return [self.url(c.province) for c in self.configs]

    def name(self, province: str, replica: int = 1) -> str:
        """How ``yrd demo`` and ``yrd chaos`` name a node process: its province, or
        ``<province>#<r>`` for each replica (the first too) of a province that runs several
        (``jiangsu#1``, ``jiangsu#2``), so that a replica is never taken for its province."""
        return province if len(self.replicas[province]) == 1 else f"{province}#{replica}"

    @property
    def named_urls(self) -> dict[str, str]:
        """Every node process's URL (a province's replicas in order) and its ``name``."""
        return {self.url(p, r): self.name(p, r) for p, r in self.numbered()}

    def numbered(self) -> list[tuple[str, int]]:
        """Every node process of the mesh as (province, replica), replica 1 first."""
        return [(p, r) for p, configs in self.replicas.items() for r in range(1, len(configs) + 1)]

    def start_node(self, config: NodeConfig, replica: int = 1) -> subprocess.Popen[bytes]:
        assert config.source is not None
        log_path = self.log_path(config.province, "node", replica)
        with open_log(log_path) as log:
            self.log_starts[(config.province, log_path.stem)] = os.fstat(log.fileno()).st_size
            process = subprocess.Popen(
                node_run_command(config.source),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches the supervisor only
            )
        if replica == 1:
            self.processes[config.province] = process
        else:
            self.replica_processes[(config.province, replica)] = process
        return process

    async def wait_ready(
        self, province: str, timeout: float = READY_TIMEOUT, *, replica: int = 1
    ) -> None:
        log_path = self.log_path(province, "node", replica)
        what = f"{province} node" if replica == 1 else f"{province} replica {replica}"
        await wait_http(
            self.url(province, replica) + "/readyz",
            self.process(province, "node", replica),
            what,
            log_path,
            timeout,
            self.log_starts.get((province, log_path.stem), 0),
        )

    def ports_in_use(self) -> list[str]:
        """The ports this mesh's processes would listen on that another process holds, each
        as "<province> <what> <host:port>"; the mesh cannot start while any is listed."""
        wanted = []
        for c in [c for configs in self.replicas.values() for c in configs]:
            wanted += [(c.province, "gRPC", c.grpc_listen), (c.province, "HTTP", c.http_listen)]
        port = database_port(self.configs)
        if port is not None:
            wanted.append(("", "PostgreSQL", f"127.0.0.1:{port}"))
        for c in self.configs:
            if c.platform is not None:
                address = c.platform.url.removeprefix("http://").rstrip("/")
                wanted.append((c.province, "platform", address))
        return [
            f"{p} {what} {address}".lstrip() for p, what, address in wanted if not _free(address)
        ]

    async def up(self) -> list[MeshNode]:
        taken = self.ports_in_use()
        if taken:
            raise MeshError(
                f"another process already listens on {len(taken)} of this mesh's ports ("
                + ", ".join(taken)
                + "); nothing was started. Stop what holds them, or make a mesh on other "
                "ports: yrd mesh init NEWDIR --base-port N"
            )
        try:
            try:
                self.database = await asyncio.to_thread(
                    start_mesh_database, self.directory, self.configs
                )
            except (ServerMissing, ServerFailed) as exc:
                raise MeshError(f"the mesh's PostgreSQL server did not start: {exc}") from None
            with_platform = [c for c in self.configs if c.platform is not None]
            for config in with_platform:
                self.start_platform(config)
            await asyncio.gather(*(self.wait_platform(c.province) for c in with_platform))
            for province, replica in self.numbered():
                self.start_node(self.replicas[province][replica - 1], replica)
            await asyncio.gather(*(self.wait_ready(p, replica=r) for p, r in self.numbered()))
        except MeshError:
            self.stop()
            raise
        return self.record()

    def record(self) -> list[MeshNode]:
        """Write ``DIR/mesh.json`` for the processes as they are now (again after a restart)."""
        nodes = [
            MeshNode(
                c.province,
                c.node_id,
                c.grpc_listen,
                c.http_listen,
                c.platform.url.removeprefix("http://") if c.platform else None,
                self._pid(c.province, "node"),
                self._pid(c.province, "platform"),
                self.state(c.province, "node"),
                self.state(c.province, "platform") if c.province in self.platforms else None,
                str(self.directory.absolute() / c.province / TOKENS_FILE),
                [
                    MeshReplica(
                        r.grpc_listen,
                        r.http_listen,
                        self._pid(c.province, "node", number),
                        self.state(c.province, "node", number),
                    )
                    for number, r in enumerate(self.replicas[c.province], start=1)
                ],
            )
            for c in self.configs
        ]
        monitor = self.monitor
        record = MeshRecord(
            nodes,
            self.supervisor_pid,
            self.links,
            monitor.url if monitor else None,
            monitor.pid if monitor else None,
        )
        write_record(self.directory, record)
        return nodes

    def _pid(self, province: str, kind: Kind, replica: int = 1) -> int | None:
        try:
            process = self.process(province, kind, replica)
        except KeyError:
            return None
        if self.state(province, kind, replica) in (ProcessState.RESTARTING, ProcessState.STOPPED):
            return None
        return process.pid

    def node_processes(self) -> list[subprocess.Popen[bytes]]:
        """Every replica's process of every province."""
        return [*self.processes.values(), *self.replica_processes.values()]

    def signal_nodes(self, signum: int) -> list[int]:
        """Send ``signum`` to every node (SIGHUP: reload), not to the platforms; the pids
        it was sent to."""
        sent = []
        for process in self.node_processes():
            if process.poll() is None:
                process.send_signal(signum)
                sent.append(process.pid)
        return sent

    def stop(self, grace: float = STOP_GRACE) -> dict[str, int | None]:
        """Stop the nodes, then their platforms, then the database server; the nodes' exit
        codes by process name (``name``: the province, or each replica's)."""
        for group in (self.node_processes(), list(self.platforms.values())):
            for process in group:
                if process.poll() is None:
                    # A paused (SIGSTOPped) process acts on SIGTERM only once it runs again.
                    process.send_signal(signal.SIGCONT)
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for process in group:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.database is not None:
            self.database.stop(grace)
            self.database = None
        (self.directory / MESH_FILE).unlink(missing_ok=True)
        if self.links:
            route_peers(self.directory, ())
        started = {**{(p, 1): proc for p, proc in self.processes.items()}, **self.replica_processes}
        return {
            self.name(p, r): started[(p, r)].returncode
            for p, r in self.numbered()
            if (p, r) in started
        }

    @contextlib.contextmanager
    def stores_readable(self) -> Iterator[None]:
        """The provinces' stores readable once the mesh has stopped (``yrd demo`` and ``yrd
        chaos`` verify the evidence logs then): a ``--store postgres`` mesh's server runs
        again meanwhile; SQLite files need nothing. ServerMissing or ServerFailed when the
        server does not start."""
        server = None
        if self.database is None:
            server = start_mesh_database(self.directory, self.configs)
        try:
            yield
        finally:
            if server is not None:
                server.stop()

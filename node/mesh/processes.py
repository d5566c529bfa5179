"""A four-province mesh on one machine, each node a separate process (``yrd mesh up``).

Rules kept here:
- Every node runs as its own ``yrd node run`` process with its log in ``DIR/<province>/``;
  ``Mesh`` only starts, waits for and stops them; what starts again a process that exits is
  ``supervisor`` (``yrd mesh up``), or ``yrd chaos`` for the processes it disturbs.
- A node configured with a province platform gets that province's simulated platform as its
  own process too (``python -m adapters.simulation.run``: its SQLite, seed and log in
  ``DIR/<province>/``), started and ready before the node.
- ``DIR/mesh.json`` is written once every node is ready, written again whenever a process's
  pid or state changes (a temporary file renamed over it, so a reader never sees half a
  file), and removed on a clean stop. Each province's entry keeps its keys (``pid`` and
  ``platform_pid`` are null while that process is not running) and adds ``state`` and
  ``platform_state`` (``ProcessState``); ``supervisor_pid`` names the ``yrd mesh up``
  process that keeps the mesh, null when none does (``yrd demo``, ``yrd chaos``).
- Stopping sends SIGTERM (the nodes' graceful shutdown), after SIGCONT to wake a paused
  process, and waits; SIGKILL only after the grace period.
- Log files are owner-only (0600), also when an older mesh left them readable: a log
  names cases and references, and a failing process may print more.
- A mesh made with ``links`` (``yrd mesh up --links``, ``yrd chaos --network``) dials every
  peer through its directed link's proxy: each sender's ``node.toml`` gets a
  ``[peers.<receiver>] address`` block between marker lines (``route_peers``) before any
  node starts, and loses it when the mesh stops or a mesh without links is made on the
  folder, so a hand-started node never dials a proxy that is gone. ``mesh.json`` lists the
  links under ``"links"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, Protocol

import aiohttp

from node.mesh.layout import DEFAULT_PROVINCES as PROVINCE_ORDER
from node.mesh.layout import read_manifest, write_atomically
from node.runtime.config import ConfigError, NodeConfig, load_config

READY_TIMEOUT = 30.0
STOP_GRACE = 15.0
MESH_FILE = "mesh.json"
TOKENS_FILE = "tokens.json"
"""Per province: its platform and operator REST tokens (``access``)."""

LINK_FAULTS_FILE: Final = "link-faults.json"
"""Where a tester orders faults on a running mesh's links (``node.mesh.link_control``)."""
LINK_STATE_FILE: Final = "link-state.json"
"""Where the process that runs the links answers: the faults in force and what crossed."""

Kind = Literal["node", "platform"]
"""The two kinds of process a province has in the mesh."""


class ProcessState(StrEnum):
    """Where one process of the mesh stands, as ``mesh.json`` shows it."""

    RUNNING = "running"
    """Started and ready (a node answers /readyz, a platform /sim/fixtures)."""
    STARTING = "starting"
    """Started again after an exit or a stop by hand, not ready yet."""
    RESTARTING = "restarting"
    """Exited on its own; started again when its back-off is over. No pid meanwhile."""
    STOPPED = "stopped"
    """Stopped by hand (``yrd mesh stop``); only ``yrd mesh start`` starts it again."""


@dataclass(frozen=True)
class MeshNode:
    """One province's entry in ``mesh.json``."""

    province: str
    node_id: str
    grpc: str
    http: str
    platform: str | None
    """The simulated platform's address, when the node has one."""
    pid: int | None
    """The node's process id; None while it is not running (restarting or stopped)."""
    platform_pid: int | None = None
    state: ProcessState = ProcessState.RUNNING
    platform_state: ProcessState | None = None
    tokens_file: str | None = None
    """The province's ``tokens.json`` (its platform and operator REST tokens, 0600)."""


@dataclass(frozen=True)
class MeshLink:
    """One directed link of a mesh whose peers dial each other through proxies."""

    sender: str
    receiver: str
    listen: str
    """The proxy's host:port, which the sender dials for the receiver."""
    target: str
    """The receiver's gRPC host:port, where the proxy relays to."""

    @property
    def name(self) -> str:
        return f"{self.sender}:{self.receiver}"


@dataclass(frozen=True)
class MeshRecord:
    """What ``DIR/mesh.json`` says of a running mesh."""

    nodes: list[MeshNode]
    supervisor_pid: int | None
    """The ``yrd mesh up`` process that keeps the mesh; None when nothing restarts it."""
    links: list[MeshLink] = field(default_factory=list)
    """The proxies between the nodes, one per directed link; empty when peers dial each
    other directly."""
    prometheus: str | None = None
    """The URL of the mesh's Prometheus (``yrd mesh up --monitoring``), when it runs one."""
    prometheus_pid: int | None = None

    def node(self, province: str) -> MeshNode | None:
        return next((n for n in self.nodes if n.province == province), None)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "supervisor_pid": self.supervisor_pid,
            "nodes": [asdict(n) for n in self.nodes],
        }
        if self.links:
            document["links"] = [asdict(link) for link in self.links]
        if self.prometheus is not None:
            document["prometheus"] = self.prometheus
            document["prometheus_pid"] = self.prometheus_pid
        return document


def read_record(directory: Path) -> MeshRecord:
    """``DIR/mesh.json``; FileNotFoundError when no mesh has written one, ValueError when it
    is not what ``Mesh.record`` writes."""
    data = json.loads((directory / MESH_FILE).read_text())
    known = {f.name for f in fields(MeshNode)}
    try:
        nodes = []
        for entry in data["nodes"]:
            node = MeshNode(**{k: v for k, v in entry.items() if k in known})
            platform_state = node.platform_state
            nodes.append(
                replace(
                    node,
                    state=ProcessState(node.state),
                    platform_state=None if platform_state is None else ProcessState(platform_state),
                )
            )
        supervisor_pid = data.get("supervisor_pid")
        links = [MeshLink(**entry) for entry in data.get("links", [])]
        prometheus = data.get("prometheus")
        prometheus_pid = data.get("prometheus_pid")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a mesh record: {exc!r}") from None
    if supervisor_pid is not None and not isinstance(supervisor_pid, int):
        raise ValueError(f"supervisor_pid is {supervisor_pid!r}, not a process id")
    if prometheus is not None and not isinstance(prometheus, str):
        raise ValueError(f"prometheus is {prometheus!r}, not a URL")
    if prometheus_pid is not None and not isinstance(prometheus_pid, int):
        raise ValueError(f"prometheus_pid is {prometheus_pid!r}, not a process id")
    return MeshRecord(nodes, supervisor_pid, links, prometheus, prometheus_pid)


class MeshError(Exception):
    pass


@dataclass(frozen=True)
class Leftover:
    """A process an earlier run left in a mesh folder: still alive, and by its command line
    this folder's node or platform of ``province``."""

    province: str
    """The province, or "" for the mesh's Prometheus."""
    kind: Kind | Literal["prometheus"]
    pid: int

    @property
    def name(self) -> str:
        return f"{self.province} {self.kind}" if self.province else self.kind


def leftovers(directory: Path) -> tuple[MeshRecord | None, list[Leftover]]:
    """The processes ``DIR/mesh.json`` names that still run as this folder's nodes and
    platforms, with the record; (None, []) without a readable record. A pid that is gone, a
    zombie, or now another program (the pid reused) is not one."""
    try:
        record = read_record(directory)
    except (OSError, ValueError):
        return None, []
    found = []
    for node in record.nodes:
        held: tuple[tuple[Kind, int | None], ...] = (
            ("node", node.pid),
            ("platform", node.platform_pid),
        )
        for kind, pid in held:
            if isinstance(pid, int) and pid > 0 and _runs_as(pid, directory, node.province, kind):
                found.append(Leftover(node.province, kind, pid))
    pid = record.prometheus_pid
    if pid is not None and pid > 0 and _runs_prometheus(pid, directory):
        found.append(Leftover("", "prometheus", pid))
    return record, found


def stop_leftovers(found: Sequence[Leftover], grace: float = STOP_GRACE) -> dict[int, str]:
    """SIGTERM each (after SIGCONT, for a paused one), SIGKILL what is left after ``grace``;
    how each ended by pid (``stopped`` or ``killed``)."""
    for leftover in found:
        for signum in (signal.SIGCONT, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signum)
    deadline = time.monotonic() + grace
    ended: dict[int, str] = {}
    while len(ended) < len(found):
        for leftover in found:
            if leftover.pid not in ended and not process_alive(leftover.pid):
                ended[leftover.pid] = "stopped"
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for leftover in found:
        if leftover.pid not in ended:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)
            ended[leftover.pid] = "killed"
    settled = time.monotonic() + 5.0
    while any(process_alive(leftover.pid) for leftover in found) and time.monotonic() < settled:
        time.sleep(0.05)
    return ended


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, which only waits to be reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _runs_as(pid: int, directory: Path, province: str, kind: Kind) -> bool:
    """Whether ``pid`` is alive and its command line is ``yrd node run`` on this folder's
    ``province/node.toml`` (kind node) or the simulated platform on its ``platform.db``."""
    if not process_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        cwd = Path.cwd()
    if kind == "node":
        marker, option, file = "node.cli.main", "--config", "node.toml"
    else:
        marker, option, file = "adapters.simulation.run", "--db", "platform.db"
    if marker not in argv or option not in argv[:-1]:
        return False
    named = Path(argv[argv.index(option) + 1])
    expected = (directory / province / file).resolve()
    return (cwd / named).resolve() == expected


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


def _runs_prometheus(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is alive and the Prometheus keeping its data in this folder."""
    if not process_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    data = (directory / "prometheus" / "data").resolve()
    return any(
        arg.startswith("--storage.tsdb.path=") and Path(arg.partition("=")[2]).resolve() == data
        for arg in argv
    )


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


TAIL_LINES: Final = 6
TAIL_WIDTH: Final = 240


def log_tail(path: Path, since: int = 0, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines written to ``path`` after byte ``since``, each made short
    enough to read on a terminal: a JSON log line as ``level event key=value…``."""
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    wanted = [line for line in text.splitlines() if line.strip()][-lines:]
    return [_short(_readable(line)) for line in wanted]


def _readable(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    entry.pop("ts", None)
    entry.pop("logger", None)
    head = " ".join(str(entry.pop(k)) for k in ("level", "event") if k in entry)
    rest = " ".join(f"{k}={v}" for k, v in entry.items())
    return f"{head} {rest}".strip()


def _short(line: str) -> str:
    return line if len(line) <= TAIL_WIDTH else line[: TAIL_WIDTH - 1] + "…"


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


ROUTES_BEGIN: Final = "# >>> yrd mesh links: this node dials its peers through the link proxies"
ROUTES_END: Final = "# <<< yrd mesh links (removed when the mesh stops)"


def route_peers(directory: Path, links: Sequence[MeshLink]) -> None:
    """Make each province's ``node.toml`` dial its peers through ``links`` (none: directly).

    A line edit between marker lines, so an operator's own edits survive; the rewritten file
    must load with exactly those peer addresses, or it is left as it was (ValueError).
    """
    for member in read_manifest(directory).members:
        path = directory / member.province / "node.toml"
        text = path.read_text(encoding="utf-8")
        kept = _without_routes(text)
        routes = {link.receiver: link.listen for link in links if link.sender == member.province}
        if routes:
            block = "".join(
                f'[peers.{receiver}]\naddress = "{listen}"\n' for receiver, listen in routes.items()
            )
            kept = f"{kept.rstrip()}\n\n{ROUTES_BEGIN}\n{block}{ROUTES_END}\n"
        if kept == text:
            continue
        check = functools.partial(_routed_as, path, routes, path.stat().st_mode & 0o777)
        write_atomically(path, kept.encode("utf-8"), check=check)


def _routed_as(path: Path, routes: dict[str, str], mode: int, rewritten: Path) -> None:
    """``rewritten`` (path's new text) keeps path's mode and loads with exactly ``routes``."""
    os.chmod(rewritten, mode)
    try:
        found = dict(load_config(rewritten, {}).peer_addresses)
    except ConfigError as exc:
        raise ValueError(f"cannot route {path} through the links: {exc}") from None
    if found != routes:
        raise ValueError(f"{path} names peer addresses of its own ({found}); remove them first")


def _without_routes(text: str) -> str:
    lines = text.splitlines(keepends=True)
    if ROUTES_BEGIN + "\n" not in lines:
        return text
    begin = lines.index(ROUTES_BEGIN + "\n")
    end = lines.index(ROUTES_END + "\n", begin) if ROUTES_END + "\n" in lines else len(lines) - 1
    return "".join(lines[:begin] + lines[end + 1 :]).rstrip() + "\n"


LOG_FILE_MODE = 0o600


def open_log(path: Path) -> BinaryIO:
    """``path`` opened to append, owner-only from its first byte (and made so if it was not)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
    try:
        os.fchmod(fd, LOG_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


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
        self.configs = node_configs(directory)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.platforms: dict[str, subprocess.Popen[bytes]] = {}
        self.states: dict[tuple[str, Kind], ProcessState] = {}
        """Each process's state as mesh.json shows it; one not named here is running."""
        self.supervisor_pid: int | None = None
        """Written into mesh.json: the process that restarts this mesh's processes."""
        self.monitor: Monitor | None = None
        """Written into mesh.json: the mesh's Prometheus, when it runs one."""
        self.seed = seed
        self.officer_delay = officer_delay
        self.log_starts: dict[tuple[str, Kind], int] = {}
        """Where each process's log stood when it was last started: what it wrote since."""

    def config(self, province: str) -> NodeConfig:
        return next(c for c in self.configs if c.province == province)

    def platform_url(self, province: str) -> str | None:
        config = self.config(province)
        return config.platform.url if config.platform else None

    def log_path(self, province: str, kind: Kind) -> Path:
        return self.directory / province / f"{kind}.log"

    def process(self, province: str, kind: Kind) -> subprocess.Popen[bytes]:
        return (self.processes if kind == "node" else self.platforms)[province]

    def state(self, province: str, kind: Kind) -> ProcessState:
        return self.states.get((province, kind), ProcessState.RUNNING)

    def start_process(self, province: str, kind: Kind) -> subprocess.Popen[bytes]:
        """Start ``province``'s node or platform (again), with the same files as before."""
        config = self.config(province)
        return self.start_node(config) if kind == "node" else self.start_platform(config)

    async def wait_process(self, province: str, kind: Kind) -> None:
        """Until ``province``'s node or platform is ready; MeshError if it exits first or is
        not ready in time."""
        if kind == "node":
            await self.wait_ready(province)
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

    def url(self, province: str) -> str:
        return f"http://{self.config(province).http_listen}"

    @property
    def urls(self) -> list[str]:
        return [self.url(c.province) for c in self.configs]

    def start_node(self, config: NodeConfig) -> subprocess.Popen[bytes]:
        assert config.source is not None
        with open_log(self.log_path(config.province, "node")) as log:
            self.log_starts[(config.province, "node")] = os.fstat(log.fileno()).st_size
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
        await wait_http(
            self.url(province) + "/readyz",
            self.processes[province],
            f"{province} node",
            self.log_path(province, "node"),
            timeout,
            self.log_starts.get((province, "node"), 0),
        )

    def ports_in_use(self) -> list[str]:
        """The ports this mesh's processes would listen on that another process holds, each
        as "<province> <what> <host:port>"; the mesh cannot start while any is listed."""
        wanted = []
        for c in self.configs:
            wanted += [(c.province, "gRPC", c.grpc_listen), (c.province, "HTTP", c.http_listen)]
            if c.platform is not None:
                address = c.platform.url.removeprefix("http://").rstrip("/")
                wanted.append((c.province, "platform", address))
        return [f"{p} {what} {address}" for p, what, address in wanted if not _free(address)]

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
        text = json.dumps(record.to_json(), indent=2) + "\n"
        write_atomically(self.directory / MESH_FILE, text.encode())
        return nodes

    def _pid(self, province: str, kind: Kind) -> int | None:
        group = self.processes if kind == "node" else self.platforms
        if province not in group or self.state(province, kind) in (
            ProcessState.RESTARTING,
            ProcessState.STOPPED,
        ):
            return None
        return group[province].pid

    def signal_nodes(self, signum: int) -> list[int]:
        """Send ``signum`` to every node (SIGHUP: reload), not to the platforms; the pids
        it was sent to."""
        sent = []
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signum)
                sent.append(process.pid)
        return sent

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
        (self.directory / MESH_FILE).unlink(missing_ok=True)
        if self.links:
            route_peers(self.directory, ())
        return {p: proc.returncode for p, proc in self.processes.items()}

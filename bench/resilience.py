"""Resilience benchmark: how a node rides out a flooding peer, a full disk and a hostile
platform, and how soon it is itself again, each against the same nodes undisturbed earlier
in the same run.

Run::

    .venv/bin/python bench/resilience.py                        # full run (about 65 s)
    .venv/bin/python bench/resilience.py --quick                # smoke run (about 35 s)
    .venv/bin/python bench/resilience.py --parts flood --seconds 30
    .venv/bin/python bench/resilience.py --json                 # one JSON object

Every node is a real ``yrd node run`` process (``node.mesh.processes.Mesh``) on a fresh mesh in
a temporary folder; this process drives them over HTTP and gRPC.

``flood``
    Shanghai, Jiangsu and Zhejiang of a four-member federation, heartbeats every 0.5 s. Two
    phases of ``--seconds``: first nothing else happens (the baseline), then a separate
    process holding Anhui's credentials keeps 200 streams of random bytes and 200 streams
    that write and never read open against Shanghai (``tests/flood.py``, as
    ``tests/test_flood.py`` does). Every 0.1 s this process reads ``/v1/status`` of the three
    nodes: the links Jiangsu → Shanghai and Zhejiang → Shanghai (heartbeats through the
    flooded port) and Shanghai → Jiangsu and Shanghai → Zhejiang (heartbeats from the
    flooded node). Figures: the largest heartbeat gap on those links (the largest step
    between successive ``last_heartbeat_at`` values, and from the last one to the end of the
    phase; the node writes whole seconds, so a gap is a whole number of seconds and 1 s is
    the floor at this heartbeat rate), samples showing a link down, Shanghai's resident
    memory (at the start, and the peak), the bytes it added to its log, the envelopes the
    attacker wrote, and over the phase Shanghai's refusal counters
    (``yrd_messages_refused_total``, ``yrd_peer_door_refusals_total``) and how often it
    suspended Anhui (``/v1/status``).
``disk``
    Shanghai's store on a tmpfs of 32 MiB (needs root; skipped otherwise, saying why), Jiangsu
    as usual. A client submits cases to Shanghai one after another, each with its own
    Idempotency-Key, sending a 503'd one again after 0.05 s. Baseline (``--seconds``):
    submission latency and hand-off time (the signed submission's time to the handler's
    receipt, from ``GET /v1/cases/{id}``). Then a file fills the tmpfs (unbuffered writes
    until ENOSPC) for ``--hold`` seconds and is deleted. Figures: 503s, time from freeing
    the space to the first 201, to ``/readyz`` answering 200 and to every case accepted
    before the free being delivered; then whether every case exists on both nodes, and
    whether ``yrd audit verify`` passes on both stores after a clean stop (SIGTERM).
``platform``
    Shanghai's node with the real simulated Shanghai platform behind a reverse proxy in this
    process (the node's ``[platform] url`` points at the proxy), Jiangsu handling. Baseline:
    ``--applications`` applications entered at the platform one after another (the citizen's
    side of the Shanghai dialect), each timed until it is a case at the node
    (``GET /v1/cases``). Then for ``--hold`` seconds the proxy answers every request with
    JSON nested 200,000 deep (status 200, ``application/json``; the body that once stopped
    the platform link), an application is entered meanwhile, and the proxy passes requests
    again. Figures: time from "platform behaves again" to that application being a case and
    to ``/readyz`` no longer naming a task, whether the ``tasks`` check named one, and
    ``yrd_task_restarts_total``.

Each part prints a table: the figure under the disturbance, its baseline from the same run,
and their ratio where dividing means something. The load average is printed before and
after; on a shared machine compare runs at similar load. The exit status is non-zero only
when the run itself broke (a process died, a case or an application was lost, a store did
not verify), never for a slow figure: benchmarks print figures; they never assert timing.
"""

from __future__ import annotations

# Before grpc: importing node turns gRPC's fork handlers off (see node/__init__.py); this
# benchmark starts a database server while its nodes run gRPC.
import node as _fork_handlers_off  # noqa: F401

# isort: split
import argparse
import asyncio
import contextlib
import errno
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.registry import citizen  # noqa: E402
from node.mesh.access import create_mesh  # noqa: E402
from node.mesh.applications import fetch_fixtures, plan_applications  # noqa: E402
from node.mesh.auth import MeshAuth  # noqa: E402
from node.mesh.layout import node_id_for  # noqa: E402
from node.mesh.processes import Mesh, MeshError  # noqa: E402
from node.mesh.record import Kind  # noqa: E402
from node.runtime.config import load_config  # noqa: E402
from node.trust.manifest import parse_time  # noqa: E402
from node.wire import pb  # noqa: E402
from tests.cases import case_body, matter_of, unb64  # noqa: E402
from tests.flood import malformed_stream, rss_mb, silent_stream  # noqa: E402
from tests.nodes import free_base_port, make_mesh, raw_channel, tls_of  # noqa: E402

AUTH = MeshAuth()
"""Each request to a node of a mesh this bench started carries that node's token of the
narrowest scope the request needs (the meshes are added as they start)."""

SCRIPT = Path(__file__).resolve()
PARTS = ("flood", "disk", "platform")
PAIR = ("shanghai", "jiangsu")
FLOODED = ("shanghai", "jiangsu", "zhejiang")
FLOOD_LINKS = (
    ("jiangsu", "shanghai"),
    ("zhejiang", "shanghai"),
    ("shanghai", "jiangsu"),
    ("shanghai", "zhejiang"),
)
"""(node, peer): the links whose heartbeats the flood part watches."""
HEARTBEAT_SECONDS = 0.5
SAMPLE_SECONDS = 0.1
STREAMS = 200
"""Streams of each kind the attacker keeps open."""
CHANNELS = 4
"""Connections the attacker spreads each kind of stream over."""
TMPFS_SIZE = "32m"
RETRY_503_SECONDS = 0.05
HOSTILE_BODY = b"[" * 200_000 + b"]" * 200_000
"""JSON nested 200,000 deep: deeper than Python's parser recurses."""
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "te"}
)
SETTLE_TIMEOUT = 60.0
"""Seconds a recovery may take before the run counts as broken (a case lost, a node stuck)."""
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)
SAMPLE_TIMEOUT = aiohttp.ClientTimeout(total=2)


class BenchBroke(Exception):
    """The run itself broke: a process died, a case was lost, a store does not verify."""


# -- figures and tables ------------------------------------------------------------------------

Value = float | int | str | None


@dataclass(frozen=True)
class Figure:
    key: str
    """Its name in ``--json``."""
    label: str
    """Its row in the table, unit included."""
    value: Value
    baseline: Value = None
    divide: bool = False
    """Whether value ÷ baseline means something."""

    @property
    def ratio(self) -> float | None:
        if not self.divide or not isinstance(self.value, int | float):
            return None
        if not isinstance(self.baseline, int | float) or not self.baseline:
            return None
        return self.value / self.baseline


@dataclass
class Part:
    name: str
    heading: str = ""
    column: str = ""
    """What the value column shows (the disturbance)."""
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    skipped: str | None = None
    broke: str | None = None

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {
            "figures": {
                f.key: {"value": f.value, "baseline": f.baseline, "ratio": f.ratio}
                for f in self.figures
            },
            **self.facts,
        }
        if self.skipped is not None:
            shown["skipped"] = self.skipped
        if self.broke is not None:
            shown["broke"] = self.broke
        return shown


def shown(value: Value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def print_part(part: Part) -> None:
    print(f"== {part.name}: {part.heading}" if part.heading else f"== {part.name}")
    if part.skipped is not None:
        print(f"skipped: {part.skipped}")
    if part.figures:
        header = f"{'figure':<44} {part.column:>12} {'baseline':>12} {'ratio':>8}"
        print(header)
        print("-" * len(header))
        for f in part.figures:
            ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "—"
            print(f"{f.label:<44} {shown(f.value):>12} {shown(f.baseline):>12} {ratio:>8}")
    for note in part.notes:
        print(note)
    if part.broke is not None:
        print(f"BROKE: {part.broke}")
    print()


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average: {one:.2f} (1 min), {five:.2f} (5 min)"


# -- processes and HTTP ------------------------------------------------------------------------


def set_option(config: Path, key: str, value: str) -> None:
    """Set ``key = value`` (``value`` already in TOML) on its line of a node.toml."""
    text, count = re.subn(
        rf"^{re.escape(key)} = .*$", f"{key} = {value}", config.read_text(), count=1, flags=re.M
    )
    if count != 1:
        raise RuntimeError(f"{config} has no line {key} = …")
    config.write_text(text)


def drop_section(config: Path, section: str) -> None:
    """Remove ``[section]`` and its lines from a node.toml."""
    text = re.sub(
        rf"^\[{re.escape(section)}\]\n(?:[^\[].*\n?|\n)*", "", config.read_text(), flags=re.M
    )
    config.write_text(text)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_alive(mesh: Mesh) -> None:
    """BenchBroke when any process this run started has exited."""
    kinds: tuple[Kind, ...] = ("node", "platform")
    for kind in kinds:
        for province, process in (mesh.processes if kind == "node" else mesh.platforms).items():
            if process.poll() is not None:
                raise BenchBroke(
                    f"{province} {kind} exited with status {process.returncode}; its log ends:\n"
                    + log_tail(mesh.log_path(province, kind))
                )


@contextlib.asynccontextmanager
async def processes(directory: Path) -> AsyncIterator[Mesh]:
    """The mesh's processes, stopped (SIGTERM, then SIGKILL) however the block ends."""
    mesh = Mesh(directory)
    AUTH.add(directory)
    try:
        yield mesh
    finally:
        # In a thread: the platform part's proxy runs on this loop and must keep answering
        # while the node shuts down.
        await asyncio.to_thread(mesh.stop)


async def start_nodes(mesh: Mesh, provinces: Sequence[str]) -> None:
    for province in provinces:
        mesh.start_node(mesh.config(province))
    try:
        await asyncio.gather(*(mesh.wait_ready(p) for p in provinces))
    except MeshError as error:
        raise BenchBroke(str(error)) from None


async def get_json(
    session: aiohttp.ClientSession, url: str, timeout: aiohttp.ClientTimeout = HTTP_TIMEOUT
) -> tuple[int, Any]:
    """Status and JSON body; (0, None) when the server did not answer in time."""
    try:
        async with session.get(url, timeout=timeout) as response:
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return 0, None


async def get_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url, timeout=HTTP_TIMEOUT) as response:
        return await response.text()


def counter(text: str, name: str, label: str = "") -> dict[str, float]:
    """Counter sample ``name`` of a /metrics page, summed by the value of ``label``."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def counter_total(text: str, name: str) -> float:
    return sum(counter(text, name).values())


async def until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    mesh: Mesh,
    *,
    timeout: float = SETTLE_TIMEOUT,
    every: float = 0.05,
) -> float:
    """The monotonic time at which ``check`` first held; BenchBroke when a process exits
    first or it does not hold within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        check_alive(mesh)
        if time.monotonic() > deadline:
            raise BenchBroke(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(every)
    return time.monotonic()


async def links(
    session: aiohttp.ClientSession, mesh: Mesh, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each wanted link's entry in its node's ``/v1/status``; the links of a node that did
    not answer within 2 s are missing."""
    nodes = sorted({node for node, _ in wanted})
    answers = await asyncio.gather(
        *(get_json(session, mesh.url(n) + "/v1/status", SAMPLE_TIMEOUT) for n in nodes)
    )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for node, (status, body) in zip(nodes, answers, strict=True):
        if status == 200:
            found.update(
                {(node, p["peer"]): p for p in body["peers"] if (node, p["peer"]) in wanted}
            )
    return found


async def until_links_up(
    session: aiohttp.ClientSession, mesh: Mesh, wanted: Sequence[tuple[str, str]]
) -> None:
    async def up() -> bool:
        seen = await links(session, mesh, wanted)
        return len(seen) == len(wanted) and all(p["up"] for p in seen.values())

    await until(up, "links up", mesh, timeout=30, every=0.2)


# -- part 1: a flooding peer -------------------------------------------------------------------


@dataclass
class FloodPhase:
    seconds: float
    gaps: dict[str, float]
    """Largest heartbeat gap per link ("jiangsu→shanghai"), seconds."""
    samples: int
    down: int
    """Samples in which a watched link showed down."""
    unanswered: int
    """Samples in which a node's /v1/status did not answer within 2 s."""
    rss_before: float
    rss_peak: float
    log_bytes: int
    written: int
    refused: float
    door: float
    suspensions: int
    """Times shanghai suspended anhui during the phase."""

    @property
    def gap(self) -> float:
        return max(self.gaps.values())


def largest_gap(stamps: Sequence[float], start: float, end: float) -> float:
    """The largest step between successive heartbeat times and from the last to ``end``,
    in whole seconds as the node writes them (``format_time``); the whole phase when the
    link had no heartbeat at all."""
    if not stamps:
        return end - start
    points = [*stamps, float(math.floor(end))]
    return max(b - a for a, b in itertools.pairwise(points))


class Attacker:
    """The flooding member as a process of its own (``--attack``), so that its work does not
    delay this process's samples."""

    def __init__(self, mesh_dir: Path, seconds: float) -> None:
        self.mesh_dir = mesh_dir
        self.seconds = seconds
        self.log = mesh_dir / "attacker.log"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it and wait until it floods."""
        with self.log.open("ab") as errors:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--attack",
                str(self.mesh_dir),
                "--seconds",
                str(self.seconds),
                stdin=subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                start_new_session=True,  # a Ctrl-C reaches this process, which stops it
            )
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(30):
                line = await self._process.stdout.readline()
        except TimeoutError:
            line = b""
        if not line.startswith(b"flooding"):
            raise BenchBroke(f"the attacker did not start:\n{log_tail(self.log)}")

    async def written(self) -> int:
        """Once it has ended: the envelopes it wrote."""
        assert self._process is not None
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(self.seconds + 30):
                out = await self._process.stdout.read()
                await self._process.wait()
        except TimeoutError:
            raise BenchBroke(f"the attacker did not end:\n{log_tail(self.log)}") from None
        if self._process.returncode != 0:
            raise BenchBroke(f"the attacker failed:\n{log_tail(self.log)}")
        return int(json.loads(out)["written"])

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


async def flood_phase(
    session: aiohttp.ClientSession, mesh: Mesh, seconds: float, attack: Path | None
) -> FloodPhase:
    attacker = Attacker(attack, seconds) if attack is not None else None
    try:
        if attacker is not None:
            await attacker.start()
        return await sampled_phase(session, mesh, seconds, attacker)
    finally:
        if attacker is not None:
            await attacker.stop()


async def sampled_phase(
    session: aiohttp.ClientSession, mesh: Mesh, seconds: float, attacker: Attacker | None
) -> FloodPhase:
    shanghai = mesh.processes["shanghai"]
    url = mesh.url("shanghai")
    log = mesh.log_path("shanghai", "node")
    metrics_before = await get_text(session, url + "/metrics")
    suspensions_before = await suspensions(session, url, "anhui")
    log_before = log.stat().st_size
    rss_before = rss_mb(shanghai.pid)
    peak = rss_before
    stamps: dict[tuple[str, str], list[float]] = {link: [] for link in FLOOD_LINKS}
    samples = down = unanswered = 0
    started, started_wall = time.monotonic(), time.time()
    while (tick := time.monotonic()) < started + seconds:
        seen = await links(session, mesh, FLOOD_LINKS)
        check_alive(mesh)
        peak = max(peak, rss_mb(shanghai.pid))
        samples += 1
        if len(seen) != len(FLOOD_LINKS):
            unanswered += 1
        if not all(p["up"] for p in seen.values()):
            down += 1
        for link, peer in seen.items():
            text = peer["last_heartbeat_at"]
            if text is not None:
                at = parse_time(text, "last_heartbeat_at")
                if not stamps[link] or stamps[link][-1] != at:
                    stamps[link].append(at)
        await asyncio.sleep(max(0.0, tick + SAMPLE_SECONDS - time.monotonic()))
    end = time.time()
    written = await attacker.written() if attacker is not None else 0
    metrics_after = await get_text(session, url + "/metrics")
    suspensions_after = await suspensions(session, url, "anhui")
    check_alive(mesh)
    return FloodPhase(
        seconds=time.monotonic() - started,
        gaps={f"{a}→{b}": largest_gap(s, started_wall, end) for (a, b), s in stamps.items()},
        samples=samples,
        down=down,
        unanswered=unanswered,
        rss_before=rss_before,
        rss_peak=peak,
        log_bytes=log.stat().st_size - log_before,
        written=written,
        refused=counter_total(metrics_after, "yrd_messages_refused_total")
        - counter_total(metrics_before, "yrd_messages_refused_total"),
        door=counter_total(metrics_after, "yrd_peer_door_refusals_total")
        - counter_total(metrics_before, "yrd_peer_door_refusals_total"),
        suspensions=suspensions_after - suspensions_before,
    )


async def suspensions(session: aiohttp.ClientSession, url: str, peer: str) -> int:
    """How often the node at ``url`` has suspended ``peer`` (``/v1/status``)."""
    status, body = await get_json(session, url + "/v1/status")
    if status != 200:
        raise BenchBroke(f"GET /v1/status answered {status}")
    entry = next(p for p in body["peers"] if p["peer"] == peer)
    return int(entry["inbound"]["suspensions"])


async def flood_part(
    args: argparse.Namespace, workdir: Path, session: aiohttp.ClientSession
) -> Part:
    mesh_dir = make_mesh(workdir, ("shanghai", "jiangsu", "zhejiang", "anhui"))
    for province in FLOODED:
        set_option(
            mesh_dir / province / "node.toml", "heartbeat_interval_seconds", str(HEARTBEAT_SECONDS)
        )
    async with processes(mesh_dir) as mesh:
        await start_nodes(mesh, FLOODED)
        await until_links_up(session, mesh, FLOOD_LINKS)
        quiet = await flood_phase(session, mesh, args.seconds, None)
        flood = await flood_phase(session, mesh, args.seconds, mesh_dir)
    part = Part(
        "flood",
        f"{STREAMS} malformed + {STREAMS} never-reading streams from anhui's credentials "
        f"against shanghai, {args.seconds:g} s a phase, heartbeats every {HEARTBEAT_SECONDS} s",
        "flood",
    )
    part.figures = [
        Figure("heartbeat_gap_seconds", "largest heartbeat gap (s)", flood.gap, quiet.gap, True),
        Figure("samples_link_down", "samples with a link down", flood.down, quiet.down),
        Figure(
            "samples_unanswered",
            "samples a /v1/status did not answer",
            flood.unanswered,
            quiet.unanswered,
        ),
        Figure("rss_before_mb", "shanghai RSS before (MB)", flood.rss_before, quiet.rss_before),
        Figure("rss_peak_mb", "shanghai RSS peak (MB)", flood.rss_peak, quiet.rss_peak, True),
        Figure(
            "log_bytes", "shanghai node.log growth (bytes)", flood.log_bytes, quiet.log_bytes, True
        ),
        Figure("envelopes_written", "envelopes the attacker wrote", flood.written, quiet.written),
        Figure(
            "messages_refused",
            "yrd_messages_refused_total (+)",
            round(flood.refused),
            round(quiet.refused),
        ),
        Figure("suspensions", "anhui suspended (times)", flood.suspensions, quiet.suspensions),
        Figure(
            "door_refusals",
            "yrd_peer_door_refusals_total (+)",
            round(flood.door),
            round(quiet.door),
        ),
    ]
    part.notes = [
        "heartbeat gap per link (flood / baseline, s): "
        + ", ".join(f"{link} {flood.gaps[link]:g}/{quiet.gaps[link]:g}" for link in flood.gaps),
        f"samples: {flood.samples} in the flood, {quiet.samples} in the baseline, one every "
        f"{SAMPLE_SECONDS} s at most; last_heartbeat_at has whole seconds, so a gap of 1 s is "
        "the floor and every gap is ±1 s",
    ]
    part.facts = {"flood": vars(flood), "baseline": vars(quiet)}
    return part


async def attack(mesh_dir: Path, seconds: float) -> int:
    """The attacker process: Anhui's credentials flooding Shanghai for ``seconds``."""
    target = load_config(mesh_dir / "shanghai" / "node.toml", {})
    tls = tls_of(mesh_dir, "anhui")
    channels = [raw_channel(target, tls, node_id_for("shanghai")) for _ in range(2 * CHANNELS)]
    print("flooding", flush=True)
    until_at = time.monotonic() + seconds
    try:
        written = await asyncio.gather(
            *(malformed_stream(channels[i % CHANNELS], until_at) for i in range(STREAMS)),
            *(silent_stream(channels[CHANNELS + i % CHANNELS], until_at) for i in range(STREAMS)),
        )
    finally:
        for channel in channels:
            await channel.close()
    return sum(written)


# -- part 2: a full disk -----------------------------------------------------------------------


def mount_small(where: Path) -> str | None:
    """Mount a tmpfs of TMPFS_SIZE at ``where``: None once mounted, else why it was not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (run the benchmark as root for this part)"
    if shutil.which("mount") is None:
        return "mount(8) is not installed"
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if done.returncode == 0 else f"mount -t tmpfs failed: {done.stderr.strip()}"


def fill(path: Path) -> int:
    """Write zeros to ``path`` unbuffered until the filesystem is full; the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as handle:
        for chunk in (1 << 20, 4096, 512, 1):
            block = b"\0" * chunk
            try:
                while True:
                    written += handle.write(block) or 0
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    return written


@dataclass
class Accepted:
    case_id: str
    index: int
    sent: float
    answered: float
    """Monotonic times of the accepted request (not of earlier refused tries)."""
    replayed: bool


class Submitter:
    """A platform submitting cases to a node one after another, each with its own
    Idempotency-Key, sending a 503'd one again after RETRY_503_SECONDS."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.matter = matter_of("jiangsu")
        self.accepted: list[Accepted] = []
        self.refused: list[float] = []
        """Monotonic times of the 503 answers."""
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        index = 0
        while not self.stopping.is_set():
            body = case_body(self.matter, seed=1000 + index)
            headers = {"Idempotency-Key": f"bench-{index}"}
            while True:
                sent = time.monotonic()
                async with self.session.post(
                    self.url + "/v1/cases", json=body, headers=headers, timeout=HTTP_TIMEOUT
                ) as response:
                    if response.status == 201:
                        case_id = (await response.json())["case_id"]
                        replayed = response.headers.get("Idempotent-Replayed") == "true"
                        self.accepted.append(
                            Accepted(case_id, index, sent, time.monotonic(), replayed)
                        )
                        break
                    if response.status != 503:
                        raise BenchBroke(
                            f"POST /v1/cases answered {response.status}: {await response.text()}"
                        )
                    self.refused.append(time.monotonic())
                await asyncio.sleep(RETRY_503_SECONDS)
            index += 1

    def first_accepted_after(self, moment: float) -> float | None:
        return next((a.answered for a in self.accepted if a.answered > moment), None)


async def hold(mesh: Mesh, seconds: float, task: asyncio.Task[None]) -> None:
    """Wait ``seconds`` while checking that the processes and ``task`` keep running."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        check_alive(mesh)
        if task.done():
            task.result()
            raise BenchBroke("the submitting client stopped")
        await asyncio.sleep(min(0.1, left))


def handoff_seconds(view: dict[str, Any]) -> float | None:
    """The signed submission's time to the handler's receipt (update 1), from a case view."""
    envelope = pb.Envelope.FromString(unb64(view["submission"]["envelope"]))
    submitted = pb.Message.FromString(envelope.message).case_submit.submitted_at
    delivered = next((e for e in view["history"] if e["action"] == "deliver"), None)
    if delivered is None:
        return None
    return float(delivered["at_ns"] - submitted.ToNanoseconds()) / 1e9


async def waiting_cases(session: aiohttp.ClientSession, url: str) -> set[str]:
    """Ids of the cases a node accepted that are not delivered yet (status ``submitted``)."""
    waiting: set[str] = set()
    cursor = ""
    while True:
        status, body = await get_json(
            session, f"{url}/v1/cases?role=accepting&status=submitted&limit=200{cursor}"
        )
        if status != 200:
            raise BenchBroke(f"GET /v1/cases answered {status}")
        waiting |= {c["case_id"] for c in body["cases"]}
        if body["next_cursor"] is None:
            return waiting
        cursor = f"&cursor={body['next_cursor']}"


async def audit_verify(store: Path) -> str:
    """``yrd audit verify --store``: "ok (N entries)" or what is wrong."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.cli.main",
        "audit",
        "verify",
        "--store",
        str(store),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    try:
        report = json.loads(out)
    except ValueError:
        return f"failed: {err.decode(errors='replace').strip()[-300:]}"
    return f"ok ({report['entries']} entries)" if report["ok"] else f"failed: {report['reason']}"


async def disk_part(
    args: argparse.Namespace, workdir: Path, session: aiohttp.ClientSession
) -> Part:
    heading = (
        f"shanghai's store on a {TMPFS_SIZE} tmpfs, filled for {args.hold:g} s after "
        f"{args.seconds:g} s of sequential submissions"
    )
    small = workdir / "small"
    reason = mount_small(small)
    if reason is not None:
        return Part("disk", heading, skipped=reason)
    try:
        return await full_disk(args, workdir, small, session, heading)
    finally:
        # Lazily: a process that still holds a file there cannot keep it mounted.
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(small)], check=False)


@dataclass
class DiskRun:
    """What one full-disk run saw; monotonic times."""

    client: Submitter
    filled_at: float
    filler_bytes: int
    freed: float
    ready_at: float
    caught_up_at: float
    """When no case accepted before the space was freed waited to be delivered."""
    waiting_at_free: int
    on_both: int = 0
    held_at_shanghai: int = 0
    handoffs: dict[str, float | None] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    audits: dict[str, str] = field(default_factory=dict)


async def full_disk(
    args: argparse.Namespace,
    workdir: Path,
    small: Path,
    session: aiohttp.ClientSession,
    heading: str,
) -> Part:
    mesh_dir = make_mesh(workdir, PAIR)
    store = small / "node.db"
    # The store `mesh init` made (it holds the node's REST tokens) moves to the small disk.
    shutil.copy(mesh_dir / "shanghai" / "node.db", store)
    set_option(mesh_dir / "shanghai" / "node.toml", "store", json.dumps(str(store)))
    async with processes(mesh_dir) as mesh:
        await start_nodes(mesh, PAIR)
        await until_links_up(session, mesh, (PAIR, PAIR[::-1]))
        run = await through_the_fault(args, session, mesh, small)
        shanghai, jiangsu = mesh.url("shanghai"), mesh.url("jiangsu")
        accepted = run.client.accepted
        submitted = len(accepted)

        async def all_delivered() -> bool:
            return not await waiting_cases(session, shanghai)

        await until(all_delivered, "every submitted case delivered", mesh)
        views = await asyncio.gather(
            *(get_json(session, f"{shanghai}/v1/cases/{a.case_id}") for a in accepted)
        )
        handled = await asyncio.gather(
            *(get_json(session, f"{jiangsu}/v1/cases/{a.case_id}") for a in accepted)
        )
        run.on_both = sum(1 for (a, _), (b, _) in zip(views, handled, strict=True) if a == b == 200)
        run.handoffs = {
            a.case_id: handoff_seconds(view)
            for a, (code, view) in zip(accepted, views, strict=True)
            if code == 200
        }
        _, status = await get_json(session, shanghai + "/v1/status")
        run.held_at_shanghai = sum(status["cases"].get("accepting", {}).values())
        run.exit_codes = await asyncio.to_thread(mesh.stop)
    run.audits = {
        "shanghai": await audit_verify(store),
        "jiangsu": await audit_verify(mesh_dir / "jiangsu" / "node.db"),
    }
    part = disk_report(run, heading)
    problems = [
        *(
            [f"{submitted - run.on_both} cases are not on both nodes"]
            if run.on_both != submitted
            else []
        ),
        *(
            [f"shanghai holds {run.held_at_shanghai} cases, the client was given {submitted}"]
            if run.held_at_shanghai != submitted
            else []
        ),
        *(f"{p} did not stop cleanly (exit {c})" for p, c in run.exit_codes.items() if c != 0),
        *(f"{p}'s store: {r}" for p, r in run.audits.items() if not r.startswith("ok")),
    ]
    if problems:
        part.broke = "; ".join(problems)
    return part


async def through_the_fault(
    args: argparse.Namespace, session: aiohttp.ClientSession, mesh: Mesh, small: Path
) -> DiskRun:
    """Submit for ``--seconds``, fill the disk for ``--hold`` seconds, free it, and time the
    recovery; the client stops a second after the node has taken a case, is ready again
    and has delivered what it accepted before."""
    shanghai = mesh.url("shanghai")
    client = Submitter(session, shanghai)
    submitting = asyncio.create_task(client.run())
    try:
        await hold(mesh, args.seconds, submitting)
        filled_at = time.monotonic()
        filler_bytes = await asyncio.to_thread(fill, small / "filler")
        await hold(mesh, args.hold, submitting)
        (small / "filler").unlink()
        freed = time.monotonic()
        accepted_before = {a.case_id for a in client.accepted}
        waiting_at_free = len(await waiting_cases(session, shanghai) & accepted_before)

        async def ready() -> bool:
            return (await get_json(session, shanghai + "/readyz"))[0] == 200

        async def took_one() -> bool:
            return client.first_accepted_after(freed) is not None

        async def caught_up() -> bool:
            return not await waiting_cases(session, shanghai) & accepted_before

        async with asyncio.TaskGroup() as group:
            readiness = group.create_task(until(ready, "/readyz 200 after the free", mesh))
            backlog = group.create_task(until(caught_up, "cases accepted before the free", mesh))
            group.create_task(until(took_one, "a 201 after the free", mesh))
        # A second more of submissions, so that "after" has a sample of its own.
        await hold(mesh, 1.0, submitting)
        client.stopping.set()
        await asyncio.wait_for(submitting, SETTLE_TIMEOUT)
    finally:
        submitting.cancel()
        await asyncio.gather(submitting, return_exceptions=True)
    return DiskRun(
        client=client,
        filled_at=filled_at,
        filler_bytes=filler_bytes,
        freed=freed,
        ready_at=readiness.result(),
        caught_up_at=backlog.result(),
        waiting_at_free=waiting_at_free,
    )


def median_ms(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) * 1000 if known else None


def disk_report(run: DiskRun, heading: str) -> Part:
    accepted = run.client.accepted
    before = [a for a in accepted if a.answered < run.filled_at]
    while_full = [a for a in accepted if run.filled_at <= a.answered and a.sent <= run.freed]
    after = [a for a in accepted if a.sent > run.freed]
    refused_full = [t for t in run.client.refused if t >= run.filled_at]
    submit_before = median_ms([a.answered - a.sent for a in before])
    handoff_before = median_ms([run.handoffs.get(a.case_id) for a in before])
    first_201 = run.client.first_accepted_after(run.freed)
    assert first_201 is not None
    part = Part("disk", heading, "full disk")
    part.figures = [
        Figure(
            "submit_p50_ms",
            "submission p50 (ms), after vs before",
            median_ms([a.answered - a.sent for a in after]),
            submit_before,
            True,
        ),
        Figure(
            "handoff_p50_ms",
            "hand-off p50 (ms), after vs before",
            median_ms([run.handoffs.get(a.case_id) for a in after]),
            handoff_before,
            True,
        ),
        Figure(
            "refused_503",
            "503 answers",
            len(refused_full),
            len(run.client.refused) - len(refused_full),
        ),
        Figure(
            "freed_to_first_201_ms",
            "freed → first 201 (ms) vs submission p50",
            (first_201 - run.freed) * 1000,
            submit_before,
            True,
        ),
        Figure("freed_to_ready_ms", "freed → /readyz 200 (ms)", (run.ready_at - run.freed) * 1000),
        Figure(
            "freed_to_caught_up_ms",
            "freed → all cases so far delivered (ms)",
            (run.caught_up_at - run.freed) * 1000,
            handoff_before,
            True,
        ),
    ]
    first_503 = min(refused_full, default=None)
    part.notes = [
        *(
            [f"the store filled the {TMPFS_SIZE} tmpfs before the fill did: use fewer --seconds"]
            if len(refused_full) < len(run.client.refused)
            else []
        ),
        f"cases: {len(accepted)} submitted ({len(before)} before the fill, {len(while_full)} "
        f"while full, {len(after)} after the free), {run.on_both} on both nodes, "
        f"{run.held_at_shanghai} held at shanghai, "
        f"{sum(a.replayed for a in accepted)} answered as replays; "
        f"{run.waiting_at_free} not yet delivered when the space was freed",
        f"the fill wrote {run.filler_bytes / 2**20:.1f} MiB; first 503 "
        + (f"{(first_503 - run.filled_at) * 1000:.0f} ms after the fill" if first_503 else "never"),
        "hand-off: the signed submission's time to the handler's signed receipt (update 1)",
        "after a clean stop (SIGTERM): exit codes "
        + ", ".join(f"{p} {c}" for p, c in run.exit_codes.items())
        + "; yrd audit verify: "
        + ", ".join(f"{p} {r}" for p, r in run.audits.items()),
    ]
    part.facts = {
        "cases_submitted": len(accepted),
        "cases_while_full": len(while_full),
        "cases_on_both_nodes": run.on_both,
        "cases_at_shanghai": run.held_at_shanghai,
        "waiting_at_free": run.waiting_at_free,
        "exit_codes": run.exit_codes,
        "audit": run.audits,
    }
    return part


# -- part 3: a hostile platform ----------------------------------------------------------------


class PlatformProxy:
    """Between a node and its platform: passes every request through, or, while ``hostile``,
    answers every one with HOSTILE_BODY (status 200, application/json)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.hostile = False
        self.hostile_answers = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        """Listen on a free loopback port; the proxy's base URL."""
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=HTTP_TIMEOUT)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.hostile:
            self.hostile_answers += 1
            return web.Response(body=HOSTILE_BODY, status=200, content_type="application/json")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
            ) as response:
                body = await response.read()
                passed = {k: v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(body=body, status=response.status, headers=passed)
        except (aiohttp.ClientError, TimeoutError):
            return web.Response(status=502)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


@dataclass
class ReadinessWatch:
    """``/readyz`` of a node every SAMPLE_SECONDS, and what its ``tasks`` check said."""

    session: aiohttp.ClientSession
    url: str
    samples: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, the tasks check: "ok" or the tasks it names)."""

    async def run(self) -> None:
        while True:
            _, body = await get_json(self.session, self.url + "/readyz", SAMPLE_TIMEOUT)
            checks = body.get("checks", {}) if isinstance(body, dict) else {}
            self.samples.append((time.monotonic(), str(checks.get("tasks", "unanswered"))))
            await asyncio.sleep(SAMPLE_SECONDS)

    def named(self, start: float, end: float) -> list[str]:
        """What the tasks check said between ``start`` and ``end`` when it named a task."""
        return [text for t, text in self.samples if start <= t <= end and text != "ok"]

    def settled(self, since: float) -> float | None:
        """The first sample after ``since`` from which on the check said "ok" (None: not yet,
        or not for a second yet)."""
        later = [(t, text) for t, text in self.samples if t >= since]
        named = [i for i, (_, text) in enumerate(later) if text != "ok"]
        first_ok = named[-1] + 1 if named else 0
        if first_ok >= len(later) or later[-1][0] - later[first_ok][0] < 1.0:
            return None
        return later[first_ok][0]


async def case_ids(session: aiohttp.ClientSession, url: str) -> set[str]:
    status, body = await get_json(session, url + "/v1/cases?role=accepting&limit=200")
    if status != 200:
        raise BenchBroke(f"GET /v1/cases answered {status}")
    return {c["case_id"] for c in body["cases"]}


async def platform_part(
    args: argparse.Namespace, workdir: Path, session: aiohttp.ClientSession
) -> Part:
    mesh_dir = workdir / "mesh"
    create_mesh(mesh_dir, now=time.time(), base_port=free_base_port(2), provinces=PAIR)
    # Jiangsu handles the cases through its REST API only: one simulated platform is enough.
    drop_section(mesh_dir / "jiangsu" / "node.toml", "platform")
    platform_config = load_config(mesh_dir / "shanghai" / "node.toml", {}).platform
    assert platform_config is not None
    proxy = PlatformProxy(platform_config.url)
    try:
        async with processes(mesh_dir) as mesh:
            # The platform listens where the mesh put it; the node asks the proxy.
            mesh.start_platform(mesh.config("shanghai"))
            await mesh.wait_platform("shanghai")
            set_option(mesh_dir / "shanghai" / "node.toml", "url", json.dumps(await proxy.start()))
            await start_nodes(mesh, PAIR)
            run = await hostile_platform(args, session, mesh, platform_config.url, proxy)
            return platform_report(run, args)
    finally:
        await proxy.stop()


@dataclass
class PlatformRun:
    """What one hostile-platform run saw; monotonic times."""

    baseline_seconds: list[float]
    """Each baseline application's entry → case."""
    back_to_case: float
    back_to_tasks_ok: float
    named_baseline: list[str]
    named_hostile: list[str]
    restarts_before: float
    restarts: dict[str, float]
    """yrd_task_restarts_total by task at the end."""
    hostile_answers: int
    taken_while_hostile: bool
    applications: int
    lost: list[str]


async def hostile_platform(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    mesh: Mesh,
    platform: str,
    proxy: PlatformProxy,
) -> PlatformRun:
    """Time applications becoming cases, then one entered while the proxy is hostile."""
    node = mesh.url("shanghai")

    async def catalog_known() -> bool:
        _, body = await get_json(session, node + "/v1/catalog")
        provinces = body.get("provinces", []) if isinstance(body, dict) else []
        return any(p["province"] == "jiangsu" for p in provinces)

    await until(catalog_known, "jiangsu's catalog at shanghai", mesh, timeout=30, every=0.2)
    _, catalog = await get_json(session, node + "/v1/catalog")
    fixtures = await fetch_fixtures(session, {"shanghai": platform})
    planned = plan_applications(catalog["matters"], fixtures, [PAIR] * (args.applications + 1))
    shanghai_citizen = citizen("shanghai")
    references: list[str] = []
    known = await case_ids(session, node)

    async def enter(body: dict[str, Any]) -> None:
        references.append(await shanghai_citizen.enter_application(session, platform, body))

    async def new_case() -> bool:
        return bool(await case_ids(session, node) - known)

    watch = ReadinessWatch(session, node)
    watching = asyncio.create_task(watch.run())
    try:
        baseline_started = time.monotonic()
        times = []
        for application in planned[:-1]:
            await enter(application.body)
            entered = time.monotonic()
            times.append(await until(new_case, "an application becoming a case", mesh) - entered)
            known = await case_ids(session, node)
        baseline_ended = time.monotonic()
        restarts_before = counter_total(
            await get_text(session, node + "/metrics"), "yrd_task_restarts_total"
        )

        proxy.hostile = True
        hostile_at = time.monotonic()

        async def answered_hostile() -> bool:
            return proxy.hostile_answers > 0

        # Entered once the node has met the hostile answer, so it cannot slip through.
        await until(answered_hostile, "the node asking the hostile proxy", mesh, timeout=30)
        await enter(planned[-1].body)
        while time.monotonic() < hostile_at + args.hold:
            check_alive(mesh)
            await asyncio.sleep(0.05)
        taken_while_hostile = bool(await case_ids(session, node) - known)
        proxy.hostile = False
        back = time.monotonic()
        case_at = await until(new_case, "the application entered while hostile", mesh)

        async def tasks_ok() -> bool:
            return watch.settled(back) is not None

        await until(tasks_ok, "/readyz no longer naming a task", mesh)
        settled_at = watch.settled(back)
        assert settled_at is not None
        metrics = await get_text(session, node + "/metrics")
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    return PlatformRun(
        baseline_seconds=times,
        back_to_case=case_at - back,
        back_to_tasks_ok=settled_at - back,
        named_baseline=watch.named(baseline_started, baseline_ended),
        named_hostile=watch.named(hostile_at, back),
        restarts_before=restarts_before,
        restarts=counter(metrics, "yrd_task_restarts_total", "task"),
        hostile_answers=proxy.hostile_answers,
        taken_while_hostile=taken_while_hostile,
        applications=len(references),
        lost=await lost_applications(session, mesh, platform, references),
    )


async def lost_applications(
    session: aiohttp.ClientSession, mesh: Mesh, platform: str, references: Sequence[str]
) -> list[str]:
    """The applications the platform does not name a case for (once the node acknowledged
    them), or whose case the node does not hold."""
    shanghai_citizen = citizen("shanghai")
    case_of: dict[str, str | None] = dict.fromkeys(references)

    async def acknowledged() -> bool:
        for reference in references:
            case_of[reference] = await shanghai_citizen.case_of(session, platform, reference)
        return all(case_of.values())

    with contextlib.suppress(BenchBroke):
        await until(acknowledged, "the node acknowledging every application", mesh, timeout=30)
    lost = []
    for reference, case_id in case_of.items():
        status = 0
        if case_id is not None:
            status, _ = await get_json(session, f"{mesh.url('shanghai')}/v1/cases/{case_id}")
        if status != 200:
            lost.append(reference)
    return lost


def platform_report(run: PlatformRun, args: argparse.Namespace) -> Part:
    part = Part(
        "platform",
        f"shanghai's platform answering JSON nested 200,000 deep for {args.hold:g} s; "
        f"{args.applications} applications before",
        "hostile",
    )
    part.figures = [
        Figure(
            "back_to_case_seconds",
            "platform back → case (s) vs entry → case",
            run.back_to_case,
            statistics.median(run.baseline_seconds),
            True,
        ),
        Figure(
            "back_to_tasks_ok_seconds", "platform back → /readyz tasks ok (s)", run.back_to_tasks_ok
        ),
        Figure(
            "tasks_named",
            "readyz named a task",
            "yes" if run.named_hostile else "no",
            "yes" if run.named_baseline else "no",
        ),
        Figure(
            "task_restarts",
            "yrd_task_restarts_total",
            round(sum(run.restarts.values())),
            round(run.restarts_before),
        ),
        Figure("hostile_answers", "hostile answers the proxy gave", run.hostile_answers, 0),
    ]
    part.notes = [
        "entry → case in the baseline (s): " + ", ".join(f"{t:.2f}" for t in run.baseline_seconds),
        "restarts by task: "
        + (", ".join(f"{k} {v:g}" for k, v in sorted(run.restarts.items()) if v) or "none"),
        "first tasks check named while hostile: "
        + (run.named_hostile[0] if run.named_hostile else "none"),
        f"{run.applications} applications entered, {run.applications - len(run.lost)} of them "
        "cases at the node"
        + (
            "; the one entered while hostile became a case before the platform was back"
            if run.taken_while_hostile
            else ""
        ),
    ]
    part.facts = {"restarts_by_task": run.restarts, "baseline_seconds": run.baseline_seconds}
    if run.lost:
        part.broke = f"applications without a case at the node: {', '.join(run.lost)}"
    return part


# -- the run -----------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[argparse.Namespace, Path, aiohttp.ClientSession], Awaitable[Part]]] = {
    "flood": flood_part,
    "disk": disk_part,
    "platform": platform_part,
}


async def benchmark(args: argparse.Namespace, workdir: Path) -> list[Part]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    parts = []
    async with aiohttp.ClientSession(middlewares=(AUTH,)) as session:
        for name in args.parts:
            print(f"{name}: running…", file=sys.stderr, flush=True)
            folder = workdir / name
            folder.mkdir()
            try:
                part = await RUNNERS[name](args, folder, session)
            except (BenchBroke, MeshError) as error:
                part = Part(name, broke=str(error))
            except (aiohttp.ClientError, TimeoutError) as error:
                part = Part(name, broke=f"a node did not answer: {error!r}")
            parts.append(part)
            if not args.json:
                print_part(part)
    return parts


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="flood phases and disk baseline (default 10)"
    )
    parser.add_argument(
        "--hold", type=float, default=3.0, help="seconds the disk stays full / the platform hostile"
    )
    parser.add_argument(
        "--applications", type=int, default=5, help="platform baseline applications (default 5)"
    )
    parser.add_argument("--quick", action="store_true", help="short phases, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--attack", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.hold, args.applications = min(args.seconds, 3.0), min(args.hold, 2.0), 2
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown or not args.parts:
        parser.error(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
    if args.seconds <= 0 or args.hold <= 0 or args.applications < 1:
        parser.error("--seconds and --hold must be positive, --applications at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.attack is not None:
        print(json.dumps({"written": asyncio.run(attack(args.attack, args.seconds))}))
        return 0
    before = os.getloadavg()
    if not args.json:
        print(
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"{load_line()} before the run"
        )
        print(
            f"parameters: seconds={args.seconds:g} hold={args.hold:g} "
            f"applications={args.applications} parts={','.join(args.parts)}\n"
        )
    with tempfile.TemporaryDirectory(prefix="yrd-bench-resilience-") as tmp:
        try:
            parts = asyncio.run(benchmark(args, Path(tmp)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted; processes stopped and temporary files removed", file=sys.stderr)
            return 130
    if args.json:
        print(
            json.dumps(
                {
                    "load_average": {"before": before, "after": os.getloadavg()},
                    "parameters": {
                        "seconds": args.seconds,
                        "hold": args.hold,
                        "applications": args.applications,
                    },
                    "parts": {p.name: p.to_json() for p in parts},
                },
                default=str,
            )
        )
    else:
        print(f"{load_line()} after the run")
    return 1 if any(p.broke for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())

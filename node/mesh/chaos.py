"""``yrd chaos``: a mesh of its own, disturbed on a seeded schedule while a steady stream of
cases comes in, then healed and checked: nothing lost, nothing twice, both sides agree.

Disturbances: SIGKILL a node and start it again after a pause; SIGSTOP a node for a few
seconds and SIGCONT it (to its peers, a partition: connections open, nothing answers);
SIGKILL a simulated platform and start it again. On a mesh whose provinces run as replicas
(``--store postgres --replicas N``) a node is every replica of its province, and the
schedule also SIGKILLs a single replica and starts it again, and SIGSTOPs a single replica
and continues it: its province keeps serving from the others (peers move to another
endpoint, its leases lapse and are taken over). With ``network``, the nodes dial each other
through a fault-injecting proxy per directed link (``node.mesh.links``), and the schedule
also makes one link slow (latency with jitter), lossy, cut one way (partition), a blackhole
(connections hang open) or reset mid-stream, and clears it after its hold.

Rules kept here:
- The schedule is a pure function of seed, duration, provinces and replicas per province
  (``plan_schedule``): the same seed disturbs the same targets the same way at the same
  offsets. How long a restart takes is measured, not scheduled.
- One disturbance at a time, each undone (restarted, continued, the link cleared) before the
  next begins; the heal then makes sure every process runs and every link is clear before
  anything is judged.
- Cases are judged once every one has concluded and every outbox has drained, or the wait
  is over; the evidence logs only after the mesh has stopped cleanly, once per province's
  store (its replicas share one database; the mesh's server runs again for the check).
- On a replica mesh every node process is named ``<province>#<r>`` (``Mesh.name``) in
  what happens and in the exit codes.
- This process owns every child: whatever ends the run (its end, an error, Ctrl-C, SIGTERM),
  ``Mesh.stop`` stops each one, continuing paused ones first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from monitoring.status import fetch_all
from node.mesh import invariants
from node.mesh.access import mesh_token
from node.mesh.faults import CLEAR, LinkFault
from node.mesh.invariants import CaseSides, Verdict
from node.mesh.links import LinkSet, links_refused
from node.mesh.load import (
    CONCLUDED_STATUSES,
    CaseStream,
    LoadCase,
    LoadError,
    LoadReport,
    endpoints_of,
    parse_pairs,
    report,
    session,
)
from node.mesh.postgres_server import ServerFailed, ServerMissing
from node.mesh.processes import Mesh, MeshError, replica_configs
from node.mesh.record import Kind, MeshNode
from node.store.audit import AuditReport, verify_store
from node.store.connection import StoreLocation
from node.store.database import StoreError

KILL_NODE: Final = "kill_node"
PAUSE_NODE: Final = "pause_node"
KILL_PLATFORM: Final = "kill_platform"
KINDS: Final = (KILL_NODE, PAUSE_NODE, KILL_PLATFORM)
KILL_REPLICA: Final = "kill_replica"
PAUSE_REPLICA: Final = "pause_replica"
REPLICA_KINDS: Final = (KILL_REPLICA, PAUSE_REPLICA)
"""Disturbances of one replica of a province (a mesh of several replicas per province)."""
SLOW_LINK: Final = "slow_link"
LOSSY_LINK: Final = "lossy_link"
PARTITION_LINK: Final = "partition_link"
BLACKHOLE_LINK: Final = "blackhole_link"
RESET_LINK: Final = "reset_link"
NETWORK_KINDS: Final = (SLOW_LINK, LOSSY_LINK, PARTITION_LINK, BLACKHOLE_LINK, RESET_LINK)
"""Disturbances of one directed link (``yrd chaos --network``)."""
_LINK_ACTIONS: Final = {
    SLOW_LINK: "latency",
    LOSSY_LINK: "loss",
    PARTITION_LINK: "partition",
    BLACKHOLE_LINK: "blackhole",
    RESET_LINK: "reset",
}
LEAD: Final = 1.0
"""Seconds of undisturbed stream before the first disturbance."""
SLOT: Final = 6.0
"""About one disturbance per this many seconds; never fewer than one of each kind."""
STREAM_CONCURRENCY: Final = 64
"""Submissions in flight: enough that a paused node does not hold up the others' stream."""
POLL: Final = 0.25


@dataclass(frozen=True)
class Disturbance:
    at: float
    """Seconds after the stream starts."""
    kind: str
    province: str
    hold: float
    """Seconds until it is undone: the process restarted or continued, the link cleared."""
    peer: str | None = None
    """For a link's disturbance: the receiving end (``province`` sends)."""
    fault: LinkFault | None = None
    """For a link's disturbance: what the link suffers meanwhile."""
    replica: int | None = None
    """For a replica's disturbance: which of the province's replicas (from 1)."""

    @property
    def target(self) -> str:
        if self.replica is not None:
            return f"{self.province}#{self.replica}"
        return self.province if self.peer is None else f"{self.province}→{self.peer}"

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "at": self.at,
            "kind": self.kind,
            "province": self.province,
            "hold": self.hold,
        }
        if self.peer is not None and self.fault is not None:
            document |= {"peer": self.peer, "fault": self.fault.to_json()}
        if self.replica is not None:
            document["replica"] = self.replica
        return document


def plan_schedule(
    seed: int,
    duration: float,
    provinces: Sequence[str],
    *,
    network: bool = False,
    replicas: int = 1,
) -> list[Disturbance]:
    """About one disturbance per ``SLOT`` seconds after ``LEAD``, at least one of each kind
    (``network``: the links' kinds too; ``replicas`` above 1: the replicas' kinds too),
    kinds and provinces in shuffled rounds, each inside its own slot with a hold of 35-60 %
    of it; the last one holds until ``duration``, so the heal is what ends it and the
    recovery measured after the heal is a real catch-up. A link's disturbance sends from
    the round's province to another drawn at random; a replica's disturbance is of one of
    the round's province's ``replicas`` drawn at random."""
    rng = random.Random(seed)  # noqa: S311  (a test schedule, not a secret)
    pool = KINDS + (NETWORK_KINDS if network else ()) + (REPLICA_KINDS if replicas > 1 else ())
    count = max(len(pool), int(duration // SLOT))
    slot = max(0.0, duration - LEAD) / count
    kinds: list[str] = []
    targets: list[str] = []
    while len(kinds) < count:
        kinds += rng.sample(pool, len(pool))
    while len(targets) < count:
        targets += rng.sample(list(provinces), len(provinces))
    schedule = []
    for index in range(count):
        at = round(LEAD + index * slot + rng.uniform(0.0, slot * 0.2), 1)
        hold = round(slot * rng.uniform(0.35, 0.6), 1)
        if index == count - 1:
            hold = round(duration - at, 1)
        disturbance = Disturbance(at, kinds[index], targets[index], hold)
        if disturbance.kind in NETWORK_KINDS:
            peer = rng.choice([p for p in provinces if p != disturbance.province])
            fault = _link_fault(disturbance.kind, rng)
            disturbance = replace(disturbance, peer=peer, fault=fault)
        if disturbance.kind in REPLICA_KINDS:
            disturbance = replace(disturbance, replica=rng.randint(1, replicas))
        schedule.append(disturbance)
    return schedule


def _link_fault(kind: str, rng: random.Random) -> LinkFault:
    """What a link's disturbance of ``kind`` does, its figures drawn from ``rng``."""
    if kind == SLOW_LINK:
        latency = round(rng.uniform(0.1, 0.3), 2)
        return LinkFault(latency=latency, jitter=round(latency / 4, 3))
    if kind == LOSSY_LINK:
        return LinkFault(latency=0.02, loss=round(rng.uniform(0.05, 0.1), 2))
    if kind == PARTITION_LINK:
        return LinkFault(partition=True)
    if kind == BLACKHOLE_LINK:
        return LinkFault(blackhole=True)
    return LinkFault(reset_after_bytes=rng.randrange(4096, 65536))


@dataclass(frozen=True)
class Happening:
    """Something done to the mesh, when it was done."""

    at: float
    """Seconds after the stream started."""
    action: str
    """SIGKILL, SIGSTOP, SIGCONT, restart or heal."""
    target: str
    """``<province> node`` (on a replica mesh ``<province>#<r> node``, one replica) or
    ``<province> platform``."""
    pid: int | None
    detail: str = ""

    def line(self) -> str:
        pid = f"pid {self.pid}" if self.pid is not None else ""
        return f"  {self.at:7.2f} s  {self.action:<9} {self.target:<22} {pid:<10} {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "target": self.target,
            "pid": self.pid,
            "detail": self.detail,
        }


class Disturber:
    """Carries out a schedule on a mesh it owns (and its links, with ``network``), and heals
    it."""

    def __init__(
        self,
        mesh: Mesh,
        started: float,
        tell: Callable[[Happening], None],
        links: LinkSet | None = None,
    ) -> None:
        self.mesh = mesh
        self.started = started
        self.tell = tell
        self.links = links
        self.happenings: list[Happening] = []
        self._paused: set[subprocess.Popen[bytes]] = set()

    def _happened(self, action: str, target: str, pid: int | None, detail: str = "") -> None:
        at = round(time.monotonic() - self.started, 2)
        happening = Happening(at, action, target, pid, detail)
        self.happenings.append(happening)
        self.tell(happening)

    async def run(self, schedule: Sequence[Disturbance]) -> None:
        for disturbance in schedule:
            await asyncio.sleep(max(0.0, self.started + disturbance.at - time.monotonic()))
            await self.apply(disturbance)

    def _named(self, province: str, kind: Kind, replica: int = 1) -> str:
        return f"{self.mesh.name(province, replica) if kind == 'node' else province} {kind}"

    async def apply(self, disturbance: Disturbance) -> None:
        province = disturbance.province
        if disturbance.kind in NETWORK_KINDS:
            await self._disturb_link(disturbance)
            return
        kind: Kind = "platform" if disturbance.kind == KILL_PLATFORM else "node"
        # A node is every replica of its province; a replica's disturbance, the one named.
        count = len(self.mesh.replicas[province]) if kind == "node" else 1
        replicas = [disturbance.replica] if disturbance.replica else range(1, count + 1)
        targets = [(r, self.mesh.process(province, kind, r)) for r in replicas]
        if disturbance.kind in (PAUSE_NODE, PAUSE_REPLICA):
            for replica, process in targets:
                process.send_signal(signal.SIGSTOP)
                self._paused.add(process)
                self._happened(
                    "SIGSTOP",
                    self._named(province, kind, replica),
                    process.pid,
                    f"paused for {disturbance.hold:.1f} s",
                )
            await asyncio.sleep(disturbance.hold)
            for replica, process in targets:
                process.send_signal(signal.SIGCONT)
                self._paused.discard(process)
                self._happened(
                    "SIGCONT", self._named(province, kind, replica), process.pid, "running again"
                )
            return
        for replica, process in targets:
            process.kill()
            await asyncio.to_thread(process.wait)
            self._happened(
                "SIGKILL",
                self._named(province, kind, replica),
                process.pid,
                f"down for {disturbance.hold:.1f} s",
            )
        await asyncio.sleep(disturbance.hold)
        await asyncio.gather(*(self._restart(province, kind, r) for r, _ in targets))

    async def _disturb_link(self, disturbance: Disturbance) -> None:
        assert self.links is not None, "a link's disturbance needs a mesh with links"
        assert disturbance.peer is not None
        assert disturbance.fault is not None
        link = self.links.link(disturbance.province, disturbance.peer)
        target = f"{disturbance.target} link"
        await link.set_fault(disturbance.fault)
        detail = f"{disturbance.fault.describe()} for {disturbance.hold:.1f} s"
        if disturbance.kind == RESET_LINK:
            cut = await link.reset_connections()
            detail = f"{cut} open connection(s) reset, then each {detail}"
        self._happened(_LINK_ACTIONS[disturbance.kind], target, None, detail)
        await asyncio.sleep(disturbance.hold)
        await link.set_fault(CLEAR)
        self._happened("restore", target, None, "clear")

    async def _restart(self, province: str, kind: Kind, replica: int = 1, why: str = "") -> None:
        begun = time.monotonic()
        process = self.mesh.start_process(province, kind, replica)
        await self.mesh.wait_process(province, kind, replica)
        self.mesh.record()
        self._happened(
            "restart",
            self._named(province, kind, replica),
            process.pid,
            f"ready after {time.monotonic() - begun:.1f} s{why}",
        )

    async def heal(self) -> None:
        """Every process running: paused ones continued, any that is down started again."""
        for process in list(self._paused):
            process.send_signal(signal.SIGCONT)
        self._paused.clear()
        restarted = 0
        every: list[tuple[str, Kind, int]] = [(p, "platform", 1) for p in self.mesh.platforms]
        every += [(p, "node", r) for p, r in self.mesh.numbered()]
        for province, kind, replica in every:
            process = self.mesh.process(province, kind, replica)
            if process.poll() is not None:
                # Not one of ours: the schedule restarts what it kills before moving on.
                why = f" (it had exited on its own with {process.returncode})"
                await self._restart(province, kind, replica, why)
                restarted += 1
        detail = "all running" if not restarted else f"all running, {restarted} started again"
        if self.links is not None:
            await self.links.heal()
            detail += "; every link clear"
        self._happened("heal", "every process", None, detail)


@dataclass
class ChaosResult:
    """What a run did and found; filled in as it goes, so an interrupted run still tells."""

    schedule: list[Disturbance]
    nodes: list[MeshNode] = field(default_factory=list)
    happenings: list[Happening] = field(default_factory=list)
    cases: list[LoadCase] = field(default_factory=list)
    drained_after: float | None = None
    """Seconds from the heal until every outbox (to peers and platforms) was empty."""
    settled_after: float | None = None
    """Seconds from the heal until, besides, every case had concluded equally on both sides."""
    submissions: LoadReport | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    stopped: dict[str, int | None] = field(default_factory=dict)
    error: str = ""
    """Why the run broke down after the mesh was up (a restart that failed, say)."""

    @property
    def ok(self) -> bool:
        return not self.error and len(self.verdicts) == 6 and all(v.ok for v in self.verdicts)


@dataclass(frozen=True)
class ChaosOptions:
    duration: float
    seed: int
    cases: int
    wait: float
    """Seconds after the heal for every case to conclude and every outbox to drain."""
    officer_delay: float
    network: bool = False
    """Nodes dial each other through a proxy per directed link, which the schedule disturbs."""


def run_chaos(
    directory: Path,
    options: ChaosOptions,
    *,
    tell: Callable[[Happening], None],
    show: Callable[[str], None],
    started: Callable[[ChaosResult], None],
) -> ChaosResult:
    """The whole run on the (initialised) mesh in ``directory``: up, stream and disturb,
    heal, settle, judge, stop, verify the evidence logs. ``tell`` hears each happening,
    ``show`` the stream's progress, ``started`` the result once the mesh is up. Raises
    MeshError when the mesh cannot start, KeyboardInterrupt on Ctrl-C or SIGTERM; a breakdown
    after that (a restart that fails) is the result's ``error``. Every child is stopped in
    any case."""
    if options.network:
        refused = links_refused(
            "--network", max(len(r) for r in replica_configs(directory).values())
        )
        if refused:
            raise MeshError(refused)
    links = LinkSet.for_mesh(directory, seed=options.seed) if options.network else None
    try:
        mesh = Mesh(
            directory,
            seed=options.seed,
            officer_delay=options.officer_delay,
            links=links.mesh_links() if links else (),
        )
    except BaseException:
        if links is not None:
            asyncio.run(links.close())
        raise
    provinces = [c.province for c in mesh.configs]
    schedule = plan_schedule(
        options.seed,
        options.duration,
        provinces,
        network=options.network,
        replicas=min(len(replicas) for replicas in mesh.replicas.values()),
    )
    result = ChaosResult(schedule)
    run = _ChaosRun(mesh, options, result, tell, show, links)
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(run.main(started))
    finally:
        # Stopping is bounded by the grace period; a second Ctrl-C must not cut it short.
        held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            result.stopped = mesh.stop()
        finally:
            signal.signal(signal.SIGINT, held[signal.SIGINT])
            signal.signal(signal.SIGTERM, before)
    if len(result.verdicts) == 5:
        result.verdicts.insert(4, invariants.evidence_intact(_evidence(mesh), result.stopped))
    return result


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _evidence(mesh: Mesh) -> dict[str, AuditReport]:
    """``yrd audit verify --store`` on each province's store (one for all its replicas), the
    mesh stopped; a store that cannot be read, a report that names why."""
    try:
        with mesh.stores_readable():
            return {c.province: _verified(c.paths.store) for c in mesh.configs}
    except (ServerMissing, ServerFailed) as exc:
        reason = f"the mesh's database server did not start again: {exc}"
        return {
            c.province: AuditReport(entries=0, ok=False, first_bad_seq=None, reason=reason)
            for c in mesh.configs
        }


def _verified(store: StoreLocation) -> AuditReport:
    """``yrd audit verify --store`` on one node's store."""
    try:
        return verify_store(store)
    except StoreError as exc:
        return AuditReport(entries=0, ok=False, first_bad_seq=None, reason=str(exc))


class _ChaosRun:
    """One run's moving parts: the mesh it owns, the stream, the disturber, the result."""

    def __init__(
        self,
        mesh: Mesh,
        options: ChaosOptions,
        result: ChaosResult,
        tell: Callable[[Happening], None],
        show: Callable[[str], None],
        links: LinkSet | None = None,
    ) -> None:
        self.mesh = mesh
        self.options = options
        self.result = result
        self.tell = tell
        self.show = show
        self.links = links

    async def main(self, started: Callable[[ChaosResult], None]) -> None:
        """Ctrl-C and SIGTERM cancel the run (KeyboardInterrupt); the caller stops the mesh."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt)
        try:
            if self.links is not None:
                await self.links.start()
            self.result.nodes = await self.mesh.up()
            started(self.result)
            await self._stream_disturbed()
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        except LoadError as exc:
            self.result.error = str(exc)
        except MeshError as exc:
            if not self.result.nodes:
                raise  # the mesh never came up: nothing ran
            self.result.error = str(exc)
        finally:
            if self.links is not None:
                await self.links.close()

    async def _stream_disturbed(self) -> None:
        mesh, options, result = self.mesh, self.options, self.result
        provinces = [c.province for c in mesh.configs]
        async with session() as http:
            stream = CaseStream(http, endpoints_of(mesh))
            cases = result.cases = await stream.plan(parse_pairs(None, provinces), options.cases)
            began = time.monotonic()
            disturber = Disturber(mesh, began, self.tell, self.links)
            result.happenings = disturber.happenings
            flowing = asyncio.create_task(
                stream.run(
                    cases,
                    concurrency=STREAM_CONCURRENCY,
                    retry_for=options.duration + options.wait,
                    wait=options.wait,
                    show=self.show,
                    spread_over=options.duration,
                )
            )
            try:
                await disturber.run(result.schedule)
                await asyncio.sleep(max(0.0, began + options.duration - time.monotonic()))
                await disturber.heal()
                healed = time.monotonic()
                deadline = healed + options.wait
                drained = asyncio.create_task(_drained(mesh, deadline))
                await flowing
                drained_at = await drained
            finally:
                flowing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flowing
            if drained_at is not None:
                result.drained_after = drained_at - healed
            sides, statuses, settled_at = await _settle(mesh, stream, cases, deadline)
            if settled_at is not None:
                result.settled_after = settled_at - healed
            result.submissions = report(cases, stream)
        unanswered = sum(c.outcome == "unanswered" for c in cases)
        result.verdicts = [
            invariants.on_both_sides(sides, unanswered=unanswered),
            invariants.same_history(sides),
            invariants.numbered_once(sides),
            invariants.no_dead_letters(statuses),
            invariants.recovered(result.drained_after, result.settled_after, options.wait),
        ]


async def _statuses(mesh: Mesh) -> dict[str, Mapping[str, Any] | None]:
    answers = await fetch_all(mesh.urls, mesh_token(mesh.directory, "", "read"))
    return {c.province: a.status for c, a in zip(mesh.configs, answers, strict=True)}


def _empty(statuses: Mapping[str, Mapping[str, Any] | None]) -> bool:
    """Every node answered and nothing waits in any outbox, to a peer or to its platform."""
    for status in statuses.values():
        if status is None:
            return False
        if any(link.get("outbox_depth", 0) for link in status.get("peers", [])):
            return False
        if (status.get("platform") or {}).get("outbox_depth", 0):
            return False
    return True


async def _drained(mesh: Mesh, deadline: float) -> float | None:
    """When every outbox was first seen empty; None if not before ``deadline``."""
    while time.monotonic() < deadline:
        if _empty(await _statuses(mesh)):
            return time.monotonic()
        await asyncio.sleep(POLL)
    return None


async def _settle(
    mesh: Mesh, stream: CaseStream, cases: Sequence[LoadCase], deadline: float
) -> tuple[list[CaseSides], dict[str, Mapping[str, Any] | None], float | None]:
    """Both sides of every case that was answered 201, and every node's status, once all
    concluded alike on both sides with every outbox empty (and the time), or at ``deadline``."""
    accepted = [c for c in cases if c.accepted]
    gate = asyncio.Semaphore(16)

    async def sides_of(case: LoadCase) -> CaseSides:
        async with gate:
            return CaseSides(
                case.case_id,
                case.accepting,
                case.handling,
                await stream.view(case.accepting, case.case_id),
                await stream.view(case.handling, case.case_id),
            )

    while True:
        sides = list(await asyncio.gather(*(sides_of(c) for c in accepted)))
        statuses = await _statuses(mesh)
        if _empty(statuses) and all(_alike(s) for s in sides):
            return sides, statuses, time.monotonic()
        if time.monotonic() >= deadline:
            return sides, statuses, None
        await asyncio.sleep(POLL * 2)


def _alike(sides: CaseSides) -> bool:
    a, h = sides.at_accepting, sides.at_handling
    return (
        a is not None
        and h is not None
        and a["status"] == h["status"]
        and a["sequence"] == h["sequence"]
        and a["status"] in CONCLUDED_STATUSES
    )

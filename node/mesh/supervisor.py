"""Keeps a mesh of processes alive while ``yrd mesh up`` runs: a node or simulated platform
that exits is started again after a back-off, and a node stopped by hand stays stopped until
it is started by hand.

Rules kept here:
- The supervisor is the only one that starts, signals and reaps the mesh's processes. A
  tester asks for a node's stop or start through the control channel (``node_control``: a
  marker file, read every tick), never by signalling the node.
- An exit on its own (any code, any signal) is told in one line: province, kind, pid, exit
  code or signal, log file, and when the process starts again. The others keep running.
- Back-off (``RestartBackoff``): the first restart after ``initial`` seconds; each exit that
  comes before the process has been ready for ``steady_after`` seconds doubles the delay, up
  to ``cap``; up to a quarter of each delay is taken off at random, so that processes that
  fail together do not restart in step. A process that fails at once every time waits longer
  each time: it never spins.
- A process started again runs the same command on the same files: a node keeps its store
  and finds its platform still running; a platform keeps its SQLite file.
- A process started again counts as up only once it is ready (node: /readyz, platform:
  /sim/fixtures); one not ready within ``READY_TIMEOUT`` is killed and backs off like a crash.
- Every change of a process's state or pid rewrites ``DIR/mesh.json`` (``Mesh.record``).
- Each replica of a province's node is kept on its own (its own back-off, its own line when
  it exits); a stop by hand (``yrd mesh stop PROVINCE``) stops every replica of the
  province, and ``yrd mesh start`` starts them all again.
- Stopping the whole mesh is ``stop``: every process, SIGTERM then SIGKILL after the grace
  period (``Mesh.stop``), ``mesh.json`` and the control markers removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from node.mesh.node_control import clear_stop_requests, stop_requested
from node.mesh.processes import STOP_GRACE, Mesh, MeshError
from node.mesh.record import Kind, MeshNode, ProcessState

TICK: Final = 0.2
"""Seconds between two looks at every process and every marker."""


@dataclass
class RestartBackoff:
    """The seconds to wait before starting again a process that exited. Pure, so a test can
    drive it without processes or sleeps. (tenacity's waits pace the attempts of one call;
    here an attempt is a process's whole life, and what resets the delay is how long it
    stayed ready.)"""

    initial: float = 0.5
    cap: float = 30.0
    steady_after: float = 10.0
    """Seconds a process must have been ready for its next exit to count as a first one."""
    jitter: float = 0.25
    """The share of each delay that may be taken off at random."""
    rng: random.Random = field(default_factory=random.Random)
    quick_exits: int = 0
    """Exits in a row that came before the process had been ready for ``steady_after``."""

    def after_exit(self, ready_for: float) -> float:
        """The delay before the next start of a process that was ready for ``ready_for``
        seconds before it exited (0 when it never got ready)."""
        if ready_for >= self.steady_after:
            self.quick_exits = 0
        nominal = min(self.cap, self.initial * 2.0 ** min(self.quick_exits, 32))
        self.quick_exits += 1
        return nominal * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """Started by hand: the next exit counts as a first one."""
        self.quick_exits = 0


@dataclass
class _Kept:
    """One process the supervisor keeps, and what it knows about it beyond its state."""

    province: str
    kind: Kind
    backoff: RestartBackoff
    ready_since: float | None
    """When it last became ready; None while it is not."""
    started_at: float = 0.0
    restart_at: float = 0.0
    """While restarting: when to start it again."""
    readiness: asyncio.Task[None] | None = None
    """While starting: the wait for it to be ready."""
    terminating_since: float | None = None
    """When SIGTERM was sent to stop it by hand."""
    replica: int = 1
    """Which replica of the province's node (1 for a platform)."""

    @property
    def name(self) -> str:
        if self.replica > 1:
            return f"{self.province} {self.kind} replica {self.replica}"
        return f"{self.province} {self.kind}"


def exit_description(returncode: int) -> str:
    """``code 1`` or ``signal SIGKILL``, from a ``Popen.returncode``."""
    if returncode >= 0:
        return f"code {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


class MeshSupervisor:
    """Starts a mesh, keeps every process of it running until told to stop, then stops it."""

    def __init__(
        self,
        mesh: Mesh,
        *,
        tell: Callable[[str], None],
        backoff: Callable[[], RestartBackoff] = RestartBackoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mesh = mesh
        self.tell = tell
        self._backoff = backoff
        self._clock = clock
        self._kept: list[_Kept] = []
        mesh.supervisor_pid = os.getpid()

    @property
    def _provinces(self) -> list[str]:
        return [c.province for c in self.mesh.configs]

    async def up(self) -> list[MeshNode]:
        """Start every process and wait until all are ready (``Mesh.up``)."""
        clear_stop_requests(self.mesh.directory, self._provinces)
        nodes = await self.mesh.up()
        now = self._clock()
        self._kept = [
            _Kept(province, "platform", self._backoff(), ready_since=now, started_at=now)
            for province in self.mesh.platforms
        ] + [
            _Kept(province, "node", self._backoff(), ready_since=now, started_at=now, replica=r)
            for province, r in self.mesh.numbered()
        ]
        return nodes

    async def keep(self, stop: asyncio.Event) -> None:
        """Look at every process each ``TICK`` until ``stop`` is set."""
        try:
            while not stop.is_set():
                self.tick()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK):
                        await stop.wait()
        finally:
            waits = [k.readiness for k in self._kept if k.readiness is not None]
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def tick(self) -> None:
        """One look at every process: act on exits, stop requests, back-offs that are over and
        processes that got ready; rewrite mesh.json when anything changed."""
        now = self._clock()
        changed = [self._step(kept, now) for kept in self._kept]
        if any(changed):
            self.mesh.record()

    def stop(self, grace: float = STOP_GRACE) -> dict[str, int | None]:
        """Stop every process (``Mesh.stop``); a second Ctrl-C or SIGTERM meanwhile does not
        cut the grace period short. The nodes' exit codes by province."""
        held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self.mesh.stop(grace)
        finally:
            clear_stop_requests(self.mesh.directory, self._provinces)
            for signum, handler in held.items():
                signal.signal(signum, handler)

    def _step(self, kept: _Kept, now: float) -> bool:
        """Act on one process; True when its state or pid changed."""
        mesh = self.mesh
        state = mesh.state(kept.province, kept.kind, kept.replica)
        held = kept.kind == "node" and stop_requested(mesh.directory, kept.province)
        if state is ProcessState.STOPPED:
            if held:
                return False
            kept.backoff.reset()
            self._start(kept, now, "started by hand")
            return True
        if state is ProcessState.RESTARTING:
            if held:
                self._set(kept, ProcessState.STOPPED)
                self.tell(f"{kept.name} stopped by hand before it was started again")
                return True
            if now < kept.restart_at:
                return False
            self._start(kept, now, "started again")
            return True
        process = mesh.process(kept.province, kept.kind, kept.replica)
        if process.poll() is not None:
            self._exited(kept, process.pid, process.returncode, now, held)
            return True
        if held:
            self._terminate(kept, now)
            return False
        if state is ProcessState.STARTING and kept.readiness and kept.readiness.done():
            return self._settle_start(kept, now)
        return False

    def _exited(self, kept: _Kept, pid: int, returncode: int, now: float, held: bool) -> None:
        self._forget_readiness(kept)
        how = exit_description(returncode)
        if held or kept.terminating_since is not None:
            kept.terminating_since = None
            kept.ready_since = None
            self._set(kept, ProcessState.STOPPED)
            self.tell(f"{kept.name} (pid {pid}) stopped by hand ({how})")
            return
        ready_for = 0.0 if kept.ready_since is None else now - kept.ready_since
        kept.ready_since = None
        delay = kept.backoff.after_exit(ready_for)
        kept.restart_at = now + delay
        self._set(kept, ProcessState.RESTARTING)
        self.tell(
            f"{kept.name} (pid {pid}) exited with {how}; log "
            f"{self.mesh.log_path(kept.province, kept.kind, kept.replica)}; starting it again in "
            f"{delay:.1f} s"
        )

    def _start(self, kept: _Kept, now: float, why: str) -> None:
        try:
            process = self.mesh.start_process(kept.province, kept.kind, kept.replica)
        except OSError as exc:
            delay = kept.backoff.after_exit(0.0)
            kept.restart_at = now + delay
            self._set(kept, ProcessState.RESTARTING)
            self.tell(f"{kept.name} could not be started ({exc}); trying again in {delay:.1f} s")
            return
        kept.started_at = now
        kept.terminating_since = None
        kept.readiness = asyncio.create_task(
            self.mesh.wait_process(kept.province, kept.kind, kept.replica)
        )
        self._set(kept, ProcessState.STARTING)
        self.tell(f"{kept.name} {why} (pid {process.pid})")

    def _settle_start(self, kept: _Kept, now: float) -> bool:
        """The wait for a started process is over: running, or killed when it never got
        ready (the next tick sees the exit and backs off)."""
        assert kept.readiness is not None
        error = kept.readiness.exception()
        kept.readiness = None
        if error is None:
            kept.ready_since = now
            self._set(kept, ProcessState.RUNNING)
            pid = self.mesh.process(kept.province, kept.kind, kept.replica).pid
            self.tell(
                f"{kept.name} ready (pid {pid}) {now - kept.started_at:.1f} s after its start"
            )
            return True
        if not isinstance(error, MeshError):
            raise error
        self.tell(f"{error}; killing it")
        self.mesh.process(kept.province, kept.kind, kept.replica).kill()
        return False

    def _terminate(self, kept: _Kept, now: float) -> None:
        """Stop by hand: SIGTERM once (after SIGCONT, for a paused process), SIGKILL once the
        grace period is over."""
        process = self.mesh.process(kept.province, kept.kind, kept.replica)
        if kept.terminating_since is None:
            self._forget_readiness(kept)
            kept.terminating_since = now
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        elif now - kept.terminating_since > STOP_GRACE:
            process.kill()

    def _forget_readiness(self, kept: _Kept) -> None:
        wait, kept.readiness = kept.readiness, None
        if wait is None:
            return
        if wait.done():
            if not wait.cancelled():
                wait.exception()  # retrieved: it only said the process had exited
        else:
            wait.cancel()

    def _set(self, kept: _Kept, state: ProcessState) -> None:
        self.mesh.set_state(kept.province, kept.kind, state, kept.replica)

"""Crash rounds: a two-province mesh of real processes under mixed traffic, one node SIGKILLed
at a seeded random point of each round, started again, drained, and every effect counted
(``tests/effects.py``). ``tests/test_crash.py`` runs a few rounds, ``bench/crash_soak.py``
many.

The mesh: Shanghai and Jiangsu, each a ``yrd node run`` process with its simulated platform
as a process of its own (``node.mesh.processes.Mesh``), whose officer and applicant work every
case (accept or reject, maybe a supplement request and the supplement, complete or deny, the
evaluation). Heartbeats every 0.5 s and back-off capped at 2 s, so a restarted peer is found
again at once; everything else as ``yrd mesh init`` writes it.

A round, all of it a pure function of (seed, round number) but for what timing decides:
1. Applications are entered at both platforms, each province's residents for the other's
   matters, handing in their ID card by its identifier (免于提交: the handler verifies it at
   the issuer, which records the disclosure); probes are queued both ways through the
   REST API; each node keeps asking the other to verify its residents' ID cards.
2. Once Jiangsu holds a random number of this round's probes from Shanghai (or, every
   other pair of rounds, of its case messages from Shanghai), the victim is SIGKILLed:
   Jiangsu (``receiver``: it receives the probes) or Shanghai (``sender``). Probes go in
   one burst of full batches; case messages a few at a time, as the platforms are polled
   and the officers act, so a kill just after one of those batches can catch case messages
   in flight.
3. Messages in flight at the kill are read from the stores: those the receiving node of a
   link holds while its sender's outbox still has them pending were between sent and
   acknowledged (the receiver committed them; the receipt never settled). For a link into
   the dead node, read once its live sender has recorded a failed attempt after the kill,
   so no receipt still on the wire can settle one after the reading.
4. The victim is started again; once everything is quiet (outboxes, platform outboxes,
   requests and certificate checks drained, every case concluded on both sides, every
   application answered), each receiver must have counted a re-delivery
   (``yrd_messages_duplicate_total``) for each message claimed in flight on its link, and
   every effect must be there exactly once.
5. Checkpoints never cover an entry that was not durable (DESIGN §5). Each node checkpoints
   its evidence log every 0.5 s, so the peers cosign heads all through the traffic and the
   kill lands among them. The latest head of the victim's log its peer had cosigned at the
   kill must be a prefix of the restarted victim's tree (``tests/test_crash.py`` also wants
   one cosigned during a round, not only before it: a kill may come a moment after a round
   begins); once quiet, each witness must cosign each log whole again (so no checkpoint after
   the restart was refused), neither node may have counted a refused checkpoint either way
   (``yrd_checkpoints_refused_total``, ``yrd_checkpoints_refused_by_peer_total``), and
   ``verify_store`` (what ``yrd audit verify --store S --mesh DIR`` runs) must pass on both
   stores with the other node's cosigned checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from adapters.registry import citizen
from node.mesh.access import create_mesh
from node.mesh.applications import Application, fetch_fixtures, plan_applications
from node.mesh.auth import mesh_session
from node.mesh.processes import Mesh
from node.store.audit import verify_store
from node.store.checkpoints import cosigned, latest_cosigned, latest_witnessed
from node.store.log_tree import StoredTree, tree_size
from tests.effects import EffectReport, count_effects, read_only
from tests.nodes import free_base_port

SENDER: Final = "shanghai"
RECEIVER: Final = "jiangsu"
PROVINCES: Final = (SENDER, RECEIVER)
LINKS: Final = ((SENDER, RECEIVER), (RECEIVER, SENDER))
Victim = Literal["receiver", "sender"]
VICTIMS: Final[Mapping[Victim, str]] = {"receiver": RECEIVER, "sender": SENDER}
FINAL_STATUSES: Final = frozenset({"evaluated", "rejected", "withdrawn"})
"""Where the simulated officer and applicant leave a case: nothing more will happen to it."""
PATIENCE: Final = 60.0
"""Seconds a step of a round may take on a loaded machine before the round counts as broken;
draining a round gets three times as long."""
OFFICER_DELAY: Final = 0.2
KILL_POLL: Final = 0.005
QUIET_POLL: Final = 0.2
VERIFY_PAUSE: Final = 0.05
"""Between two verifications of one node's stream: steady, without crowding out the rest."""
TUNING: Final = {
    "heartbeat_interval_seconds": "0.5",
    "retry_max_seconds": "2.0",
    "checkpoint_interval_seconds": "0.5",
}
"""node.toml values that let a restarted peer be found again within a second or two, and
that have each log checkpointed and cosigned many times a round, so kills land among
checkpoints."""


Trigger = Literal["probes", "cases"]
TRIGGER_TYPES: Final[Mapping[Trigger, tuple[str, ...]]] = {
    "probes": ("probe",),
    "cases": ("case_submit", "case_update", "case_action"),
}
"""The messages from Shanghai that Jiangsu counts towards the kill point."""


@dataclass(frozen=True)
class RoundPlan:
    number: int
    victim: Victim
    trigger: Trigger
    kill_after: int
    """This round's ``trigger`` messages from Shanghai that Jiangsu holds when the victim is
    killed."""
    probes: int
    """Probes queued each way."""
    applications: int
    """Applications entered at each platform."""


def plan_round(seed: int, number: int, victim: Victim) -> RoundPlan:
    """Round ``number``'s plan: kill points counted in probes (rounds 0, 1, 4, 5, …) or in
    case messages (2, 3, 6, 7, …)."""
    rng = random.Random(f"crash:{seed}:{number}")
    probes = rng.randrange(300, 700)
    applications = rng.randint(3, 5)
    # Two rounds of each in turn, so that alternating victims meet both kinds of kill point.
    trigger: Trigger = ("probes", "cases")[number // 2 % 2]
    # Each case sends Jiangsu at least one message from Shanghai: the submission of a case
    # Shanghai accepted, the acceptance or rejection of one it handles.
    kill_after = (
        rng.randrange(probes // 10, probes * 6 // 10)
        if trigger == "probes"
        else rng.randint(1, 2 * applications)
    )
    return RoundPlan(number, victim, trigger, kill_after, probes, applications)


@dataclass(frozen=True)
class WitnessedAtKill:
    """The latest head of the victim's log that its peer had cosigned when it was killed."""

    tree_size: int
    root_hash: bytes
    before_kill: float
    """Seconds from that cosignature to the kill."""
    this_round: bool
    """Cosigned after the round began: checkpoints were being made among the traffic."""


@dataclass
class RoundResult:
    plan: RoundPlan
    held_at_kill: int
    """This round's ``trigger`` messages Jiangsu held just after the kill."""
    in_flight: dict[str, dict[str, str]]
    """Link (``a → b``) -> the messages ``b`` had stored and ``a`` held unacknowledged at the
    kill: id -> payload type."""
    redelivered: dict[str, int]
    """Link -> re-deliveries its receiver answered with the original receipt after the kill."""
    lost: dict[str, list[str]]
    """Link -> probes its sender accepted (202) that its receiver does not hold."""
    report: EffectReport
    verifications: int
    """Verifications answered during the round (each a disclosure, unless cached)."""
    seconds: float
    witnessed_at_kill: WitnessedAtKill | None
    checkpoint_problems: list[str]
    """Everything wrong with the checkpoints (step 5 of the module docstring)."""

    @property
    def claims_in_flight(self) -> bool:
        return any(self.in_flight.values())

    def in_flight_types(self) -> Counter[str]:
        """Payload types of the messages in flight at the kill, over both links."""
        return Counter(kind for held in self.in_flight.values() for kind in held.values())

    def failures(self) -> list[str]:
        """Everything wrong with the round: an effect not exactly once, a message lost, a
        claim of a batch in flight that the receiver's re-deliveries do not bear out."""
        return (
            self.report.violations
            + [f"{link}: {len(ids)} accepted probes lost" for link, ids in self.lost.items() if ids]
            + self.unconfirmed()
            + self.checkpoint_problems
        )

    def unconfirmed(self) -> list[str]:
        """Links whose receiver counted fewer re-deliveries than messages claimed in flight."""
        return [
            f"{link}: {len(ids)} in flight at the kill, {self.redelivered.get(link, 0)} "
            "re-delivered"
            for link, ids in self.in_flight.items()
            if self.redelivered.get(link, 0) < len(ids)
        ]


def link(sender: str, receiver: str) -> str:
    return f"{sender} → {receiver}"


class RoundBroke(Exception):
    """A round could not run to its end: a process did not start, the mesh never went quiet."""


def tune(directory: Path) -> None:
    for province in PROVINCES:
        path = directory / province / "node.toml"
        text = path.read_text()
        for key, value in TUNING.items():
            text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        path.write_text(text)


@contextlib.asynccontextmanager
async def crash_mesh(tmp: Path) -> AsyncIterator[CrashMesh]:
    """A fresh two-province mesh with platforms in ``tmp/mesh``, up until the block ends."""
    directory = tmp / "mesh"
    create_mesh(directory, now=time.time(), base_port=free_base_port(2), provinces=PROVINCES)
    tune(directory)
    mesh = Mesh(directory, officer_delay=OFFICER_DELAY)
    try:
        await mesh.up()
        async with mesh_session(directory, timeout=aiohttp.ClientTimeout(total=30)) as session:
            crash = CrashMesh(mesh, session)
            # Each log cosigned before the first round, as after every round: a kill never
            # comes before the checkpoint it is to be judged against.
            unwitnessed = await crash.witnessed_whole()
            if unwitnessed:
                raise RoundBroke("; ".join(unwitnessed))
            yield crash
    finally:
        mesh.stop()


class CrashMesh:
    def __init__(self, mesh: Mesh, session: aiohttp.ClientSession) -> None:
        self.mesh = mesh
        self.session = session
        self.directory = mesh.directory
        self._fixtures: dict[str, dict[str, Any]] = {}
        self._catalog: list[dict[str, Any]] = []
        self._entered = 0
        self._asked = dict.fromkeys(PROVINCES, 0)

    def store(self, province: str) -> Path:
        return self.directory / province / "node.db"

    async def run_round(self, plan: RoundPlan) -> RoundResult:
        started = time.monotonic()
        round_began = time.time()
        victim = VICTIMS[plan.victim]
        survivor = next(p for p in PROVINCES if p != victim)
        sender_id = self.mesh.config(SENDER).node_id
        with read_only(self.store(RECEIVER)) as receiver:
            # One connection for the whole wait: each poll is then a query, not an open.
            counted = TRIGGER_TYPES[plan.trigger]
            before = _held(receiver, sender_id, counted)
            await self._enter_applications(plan.applications)
            accepted: dict[tuple[str, str], list[str]] = {}
            for source, target in LINKS:
                url = self.mesh.url(source) + "/v1/probes"
                answer = await self._post(url, {"peer": target, "count": plan.probes})
                # A 202 means committed: whatever happens next, each must arrive.
                accepted[source, target] = answer["message_ids"]
            stop_asking = asyncio.Event()
            asking = [
                asyncio.ensure_future(self._keep_verifying(p, stop_asking)) for p in PROVINCES
            ]
            try:
                await _until(
                    lambda: _held(receiver, sender_id, counted) >= before + plan.kill_after,
                    PATIENCE,
                    "the receiver never got to the kill point",
                    interval=KILL_POLL,
                )
                process = self.mesh.process(victim, "node")
                process.send_signal(signal.SIGKILL)
                killed_at = time.time()
                process.wait(timeout=PATIENCE)
                held = _held(receiver, sender_id, counted) - before
                in_flight = await self._in_flight(victim, survivor, killed_at)
                survivor_seen = await self._redeliveries(survivor, victim)
                at_kill = self._witnessed_at(victim, survivor, killed_at, round_began)
                self.mesh.start_process(victim, "node")
                await self.mesh.wait_ready(victim, timeout=PATIENCE)
            finally:
                stop_asking.set()
                answered = sum(await asyncio.gather(*asking))
        await _until(self._quiet, 3 * PATIENCE, "the mesh never went quiet", interval=QUIET_POLL)
        checkpoint_problems = [
            *await self.witnessed_whole(),
            *self._not_extended(victim, survivor, at_kill),
            *await self._refused_checkpoints(),
            *self._unverified(),
        ]
        redelivered = {
            link(survivor, victim): await self._redeliveries(victim, survivor),
            link(victim, survivor): await self._redeliveries(survivor, victim) - survivor_seen,
        }
        lost = {
            link(a, b): _missing(self.store(b), self.mesh.config(a).node_id, ids)
            for (a, b), ids in accepted.items()
        }
        return RoundResult(
            plan,
            held,
            in_flight,
            redelivered,
            lost,
            count_effects(self.directory),
            answered,
            time.monotonic() - started,
            at_kill,
            checkpoint_problems,
        )

    # -- traffic -------------------------------------------------------------------------------

    async def _enter_applications(self, each: int) -> None:
        """``each`` applications at each platform, for the other province's matters."""
        if not self._fixtures:
            self._fixtures = await fetch_fixtures(
                self.session, {p: self.mesh.platform_url(p) for p in PROVINCES}
            )
            # Each node must hold the other's signed catalog, or it refuses the applications.
            for province in PROVINCES:
                await _until_async(
                    partial(self._knows_other_matters, province),
                    PATIENCE,
                    f"{province} never held the other province's catalog",
                )
        pairs = [(SENDER, RECEIVER), (RECEIVER, SENDER)] * (self._entered + each)
        planned: list[Application] = plan_applications(self._catalog, self._fixtures, pairs)
        for application in planned[2 * self._entered :]:
            url = self.mesh.platform_url(application.accepting)
            assert url is not None
            await citizen(application.accepting).enter_application(
                self.session, url, application.body
            )
        self._entered += each

    async def _knows_other_matters(self, province: str) -> bool:
        matters = (await self._get(self.mesh.url(province) + "/v1/catalog"))["matters"]
        if {m["handler"] for m in matters} != set(PROVINCES):
            return False
        self._catalog = matters
        return True

    async def _keep_verifying(self, requester: str, stop: asyncio.Event) -> int:
        """Ask ``requester`` to verify the other province's ID cards, one after another, until
        ``stop``; the number answered. A node killed or starting answers nothing: skipped."""
        issuer = next(p for p in PROVINCES if p != requester)
        cards = [
            c for c in self._fixtures[issuer]["certificates"] if c["type"] == "resident_id_card"
        ]
        answered = 0
        while not stop.is_set():
            card = cards[self._asked[requester] % len(cards)]
            self._asked[requester] += 1
            body = {
                "certificate_id": card["certificate_id"],
                "holder_code": card["holder_code"],
                "purpose": "hotel_check_in",
            }
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                url = self.mesh.url(requester) + "/v1/certificates/verify"
                async with self.session.post(url, json=body) as response:
                    answered += response.status == 200
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), VERIFY_PAUSE)
        return answered

    async def _post(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        async with self.session.post(url, json=body) as response:
            answer: dict[str, Any] = await response.json()
            if response.status >= 300:
                raise RoundBroke(f"POST {url}: {response.status} {answer}")
            return answer

    async def _get(self, url: str) -> dict[str, Any]:
        async with self.session.get(url) as response:
            answer: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RoundBroke(f"GET {url}: {response.status} {answer}")
            return answer

    # -- what the kill caught ------------------------------------------------------------------

    async def _in_flight(
        self, victim: str, survivor: str, killed_at: float
    ) -> dict[str, dict[str, str]]:
        """Per link, the messages its receiver had stored while its sender had no receipt."""
        # Into the dead node: its live sender may still settle receipts already on the wire,
        # until its stream fails; after that failure is recorded, nothing more can settle.
        await _until(
            lambda: _failed_since(self.store(survivor), victim, killed_at),
            PATIENCE,
            f"{survivor} never noticed {victim} was gone",
        )
        return {
            link(a, b): _unacknowledged(
                self.store(a), self.store(b), b, self.mesh.config(a).node_id
            )
            for a, b in ((survivor, victim), (victim, survivor))
        }

    async def _redeliveries(self, receiver: str, sender: str) -> int:
        """Re-deliveries from ``sender`` that ``receiver`` answered with the original receipt
        since it started."""
        counted = await self._counters(receiver, "yrd_messages_duplicate_total")
        return int(counted.get(sender, 0))

    async def _counters(self, province: str, name: str) -> Counter[str]:
        """The samples ``name`` of ``province``'s /metrics, summed by peer."""
        async with self.session.get(self.mesh.url(province) + "/metrics") as response:
            text = await response.text()
        counted: Counter[str] = Counter()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    counted[sample.labels.get("peer", "")] += int(sample.value)
        return counted

    # -- checkpoints ---------------------------------------------------------------------------

    def _witnessed_at(
        self, victim: str, survivor: str, killed_at: float, round_began: float
    ) -> WitnessedAtKill | None:
        """The latest head of the dead victim's log that the survivor cosigned (nothing can
        be cosigned after the kill)."""
        with read_only(self.store(survivor)) as conn:
            held = latest_witnessed(conn, victim, survivor)
        if held is None:
            return None
        return WitnessedAtKill(
            held.tree_size,
            held.root_hash,
            killed_at - held.cosigned_at,
            held.cosigned_at >= round_began,
        )

    async def witnessed_whole(self) -> list[str]:
        """Wait until each node has cosigned the other's log as it is now: after a restart,
        every checkpoint since was taken, and none covers less than the log. What is still
        not cosigned after ``PATIENCE``, one line per log."""
        deadline = time.monotonic() + PATIENCE
        while unwitnessed := self._unwitnessed():
            if time.monotonic() > deadline:
                return unwitnessed
            await asyncio.sleep(QUIET_POLL)
        return []

    def _unwitnessed(self) -> list[str]:
        lines = []
        for origin in PROVINCES:
            with read_only(self.store(origin)) as conn:
                size = tree_size(conn)
            for witness in PROVINCES:
                if witness == origin:
                    continue
                with read_only(self.store(witness)) as conn:
                    held = latest_cosigned(conn, origin, witness)
                if held is None or held.tree_size != size:
                    cosigned = "none" if held is None else f"{held.tree_size} entries"
                    lines.append(
                        f"{witness} cosigned {cosigned} of {origin}'s log of {size} entries "
                        f"within {PATIENCE:.0f} s"
                    )
        return lines

    def _not_extended(
        self, victim: str, survivor: str, at_kill: WitnessedAtKill | None
    ) -> list[str]:
        """Why the head cosigned before the kill does not show that checkpoints cover only
        durable entries: there was none, or the restarted log does not extend it."""
        if at_kill is None:
            return [f"{survivor} had cosigned no checkpoint of {victim}'s log at the kill"]
        with read_only(self.store(victim)) as conn:
            tree = StoredTree(conn)
            if at_kill.tree_size <= tree.size and tree.root(at_kill.tree_size) == at_kill.root_hash:
                return []
            size = tree.size
        return [
            f"{survivor} cosigned {victim}'s log at {at_kill.tree_size} entries before the kill; "
            f"the restarted log ({size} entries) does not extend that head: the checkpoint "
            "covered entries that were not durable"
        ]

    async def _refused_checkpoints(self) -> list[str]:
        """Checkpoints refused either way, as each node counted them since it started."""
        problems = []
        for province in PROVINCES:
            for name, what in (
                ("yrd_checkpoints_refused_total", "{p} refused {n} checkpoints of {peer}'s log"),
                (
                    "yrd_checkpoints_refused_by_peer_total",
                    "{peer} refused {n} checkpoints of {p}'s log",
                ),
            ):
                counted = await self._counters(province, name)
                other = next(p for p in PROVINCES if p != province)
                if other not in counted:  # every peer's series exists from the start
                    problems.append(f"{province} exports no {name} for {other}")
                for peer, n in sorted(counted.items()):
                    if n:
                        problems.append(what.format(p=province, peer=peer, n=n))
        return problems

    def _unverified(self) -> list[str]:
        """``yrd audit verify --store S --mesh DIR`` on each node's store: the chain, the tree,
        every signature, and every checkpoint of the log that either node holds cosigned."""
        problems = []
        for origin in PROVINCES:
            witnessed = []
            for witness in PROVINCES:
                if witness != origin:
                    with read_only(self.store(witness)) as conn:
                        witnessed += cosigned(conn, origin=origin)
            report = verify_store(self.store(origin), witnessed=witnessed)
            peers = sorted(set(PROVINCES) - {origin})
            if not report.ok:
                problems.append(
                    f"yrd audit verify {origin}: entry {report.first_bad_seq}: {report.reason}"
                )
            elif sorted(report.witnesses) != peers or not report.checkpoints:
                problems.append(
                    f"yrd audit verify {origin}: checked {report.checkpoints} checkpoints of "
                    f"witnesses {list(report.witnesses)}, not {peers}'s"
                )
        return problems

    # -- quiet -------------------------------------------------------------------------------

    def _quiet(self) -> bool:
        """Nothing pending anywhere, every application a case or refused, every case
        concluded on both sides."""
        cases: list[dict[str, str]] = []
        for province in PROVINCES:
            with read_only(self.store(province)) as conn:
                if _moving(conn):
                    return False
                cases.append(dict(conn.execute("SELECT case_id, status FROM cases").fetchall()))
            with read_only(self.directory / province / "platform.db") as conn:
                if conn.execute(
                    "SELECT count(*) FROM applications WHERE case_id IS NULL "
                    "AND reference NOT IN (SELECT reference FROM refusals)"
                ).fetchone()[0]:
                    return False
        first, second = cases
        return first.keys() == second.keys() and all(
            first[c] == second[c] and first[c] in FINAL_STATUSES for c in first
        )


def _moving(conn: sqlite3.Connection) -> bool:
    return any(
        conn.execute(query).fetchone()[0]
        for query in (
            "SELECT count(*) FROM outbox WHERE state = 'pending'",
            "SELECT count(*) FROM platform_outbox WHERE state = 'pending'",
            "SELECT count(*) FROM case_requests WHERE state = 'pending'",
            "SELECT count(*) FROM case_certificates WHERE state = 'pending'",
        )
    )


def _held(conn: sqlite3.Connection, sender_id: str, types: Sequence[str]) -> int:
    marks = ", ".join("?" * len(types))
    row = conn.execute(
        f"SELECT count(*) FROM inbox WHERE sender = ? AND payload_type IN ({marks})",
        (sender_id, *types),
    ).fetchone()
    return int(row[0])


def _missing(receiver: Path, sender_id: str, ids: Sequence[str]) -> list[str]:
    with read_only(receiver) as conn:
        held = {
            row[0]
            for row in conn.execute("SELECT message_id FROM inbox WHERE sender = ?", (sender_id,))
        }
    return [i for i in ids if i not in held]


def _failed_since(store: Path, peer: str, since: float) -> bool:
    """Whether the node has nothing pending for ``peer`` or has recorded a failed attempt to
    reach it since ``since``."""
    with read_only(store) as conn:
        pending, failed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE last_attempt_at >= ?) FROM outbox "
            "WHERE peer = ? AND state = 'pending'",
            (since, peer),
        ).fetchone()
    return not pending or bool(failed)


def _unacknowledged(sender: Path, receiver: Path, peer: str, sender_id: str) -> dict[str, str]:
    """The messages the receiver has stored from ``sender_id`` whose outbox row at the sender
    is still pending: id -> payload type."""
    with read_only(sender) as conn:
        pending = dict(
            conn.execute(
                "SELECT message_id, payload_type FROM outbox WHERE peer = ? AND state = 'pending'",
                (peer,),
            ).fetchall()
        )
    with read_only(receiver) as conn:
        stored = {
            row[0]
            for row in conn.execute("SELECT message_id FROM inbox WHERE sender = ?", (sender_id,))
        }
    return {message_id: kind for message_id, kind in pending.items() if message_id in stored}


async def _until_async(
    condition: Callable[[], Awaitable[bool]], patience: float, what: str
) -> None:
    deadline = time.monotonic() + patience
    while not await condition():
        if time.monotonic() > deadline:
            raise RoundBroke(f"{what} within {patience:.0f} s")
        await asyncio.sleep(QUIET_POLL)


async def _until(
    condition: Callable[[], bool], patience: float, what: str, *, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise RoundBroke(f"{what} within {patience:.0f} s")
        await asyncio.sleep(interval)

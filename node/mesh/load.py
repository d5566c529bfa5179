"""The case stream of ``yrd load`` and ``yrd chaos``: realistic applications submitted at the
accepting nodes' REST API, then followed at the accepting node until they conclude.

Rules kept here:
- Every application has its own Idempotency-Key, so a submission whose answer was lost (the
  node killed or paused mid-request, a connection refused) is sent again with the same key
  until ``retry_for`` runs out: it creates its case once, or answers with the case the lost
  attempt created. So is one answered 5xx (the node could not decide now). A refusal (a
  4xx problem document) is final and counted by its code.
- A submission still answered 5xx when ``retry_for`` runs out (a full disk's 503
  ``store_unavailable``) is *refused for now*, counted by its code: the node answered and
  created nothing. Only one whose last attempt got no answer at all is *unanswered*, where the
  case may exist unseen. The two are never reported as each other.
- A province of several replicas (``yrd mesh init --store postgres --replicas N``) is asked
  at every replica: each request goes to the next replica in turn, and one that gets no
  answer (connection refused or reset, no answer in time) is asked at the next replica at
  once, with the same Idempotency-Key. A replica that failed so is asked last for
  ``SHUNNED_FOR`` seconds. Any replica answers any case (they share one store), so a case is
  followed wherever a replica answers. An answer, a refusal or a 5xx, is the province's.
- This tool is the accepting platform of the cases it submits: it answers a supplement
  request (补正) as the applicant would, so the handler's simulated officer can conclude.
- Figures come from the nodes' signed records: the submission time is the one the accepting
  node signed into the case submission, the hand-off that of update 1 (``deliver``: the
  handler's signed receipt), the conclusion that of the update that gave the outcome.
- What it prints names cases by id, pair, status and problem code only: the bodies carry
  names and ID numbers, which go to the nodes and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from yarl import URL

from node.cases.lifecycle import CONCLUDED
from node.cases.wire import instant
from node.mesh.access import NoToken, mesh_token, tool_token
from node.mesh.applications import Pair, fetch_fixtures, plan_applications
from node.mesh.folder import NotAMeshFolder, check_mesh_folder, start_command
from node.mesh.node_api import Answer, NodeApi, NodeRefused, NodeUnreachable
from node.mesh.processes import Mesh, MeshError
from node.wire import pb

POLL: Final = 0.5
"""Seconds between two looks at the open cases."""
RETRY_PAUSE: Final = 0.5
"""Seconds before a submission whose answer was lost is sent again."""
CATALOG_WAIT: Final = 30.0
"""How long an accepting node may take to hold every handler's signed catalog."""
SHUNNED_FOR: Final = 15.0
"""Seconds a replica that got no answer is asked only after its province's other replicas:
longer than a request's deadline (``node_api.TIMEOUT``), so a frozen replica holds up the
requests in its turn once a while, not all the time; short enough that a restarted one is
soon asked in turn again."""
LOOKS_IN_FLIGHT: Final = 16
SUPPLEMENT_NOTE: Final = "已按补正告知补交材料"
CONCLUDED_STATUSES: Final = frozenset(s.value for s in CONCLUDED)
OUTCOME_OF_ACTION: Final = {
    "complete": "completed",
    "deny": "denied",
    "reject": "rejected",
    "withdraw": "withdrawn",
}
"""The update that gives a case its outcome, and the outcome's name (an evaluation may
follow a completion or a denial; the outcome stays what it was)."""
OUTCOME_ACTIONS: Final = frozenset(OUTCOME_OF_ACTION)
OUTCOMES: Final = tuple(OUTCOME_OF_ACTION.values())


class LoadError(Exception):
    """The stream cannot start: no mesh, a node that does not answer, a bad pair."""


@dataclass(frozen=True)
class Endpoint:
    province: str
    urls: tuple[str, ...]
    """The REST base URL of each of the province's node replicas, replica 1 first (one for a
    province of one node)."""
    platform: str | None
    """The simulated platform's base URL."""
    token: str | None = None
    """The province platform's REST token: what submits and follows its cases."""

    @property
    def url(self) -> str:
        """Replica 1's REST base URL: the province's node as single-node tools know it."""
        return self.urls[0]


def read_mesh(directory: Path) -> dict[str, Endpoint]:
    """The running mesh that ``yrd mesh up --dir DIR`` described in ``DIR/mesh.json``."""
    path = directory / "mesh.json"
    try:
        nodes = json.loads(path.read_text())["nodes"]
        return {
            n["province"]: Endpoint(
                n["province"],
                tuple("http://" + r["http"] for r in n.get("replicas") or [n]),
                "http://" + n["platform"] if n.get("platform") else None,
                tool_token(os.environ, directory, n["province"], "platform"),
            )
            for n in nodes
        }
    except (FileNotFoundError, NotADirectoryError):
        try:
            check_mesh_folder(directory)
        except NotAMeshFolder as exc:
            raise LoadError(
                f"no mesh is up in {directory}: {exc}, then start it: yrd mesh up --dir {directory}"
            ) from None
        raise LoadError(
            f"no mesh is up in {directory} (start one with: yrd mesh up --dir {directory})"
        ) from None
    except NoToken as exc:
        raise LoadError(f"{exc}; or set YRD_HTTP_TOKEN") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"{path} cannot be read: {exc}") from None


def endpoints_of(mesh: Mesh) -> dict[str, Endpoint]:
    return {
        c.province: Endpoint(
            c.province,
            tuple(mesh.url(c.province, r) for r in range(1, len(mesh.replicas[c.province]) + 1)),
            mesh.platform_url(c.province),
            mesh_token(mesh.directory, c.province, "platform"),
        )
        for c in mesh.configs
    }


class ProvinceApi:
    """A province's node replicas' REST APIs, asked in turn (round robin); a request that
    gets no answer at one replica is asked at the next."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replicas = [NodeApi(session, url, endpoint.token) for url in endpoint.urls]
        self._clock = clock
        self._turn = 0
        self._failed_at = [-math.inf] * len(self.replicas)
        """When each replica last got no answer (the clock's time)."""
        self.failovers = 0
        """Requests that got no answer at a replica and were answered at another."""

    def order(self) -> list[int]:
        """The replicas (by index) in the order the next request asks them: from the next in
        turn, the ones that got no answer within ``SHUNNED_FOR`` seconds last."""
        start, self._turn = self._turn, (self._turn + 1) % len(self.replicas)
        turn = [*range(start, len(self.replicas)), *range(start)]
        recent = self._clock() - SHUNNED_FOR
        return sorted(turn, key=lambda i: self._failed_at[i] > recent)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """The first answer of the replicas in ``order``; ``NodeUnreachable`` (the last
        replica's) when none answers. A refusal is an answer: it is raised at once."""
        unreachable: NodeUnreachable | None = None
        for index in self.order():
            try:
                answer = await self.replicas[index].call(method, path, body=body, headers=headers)
            except NodeUnreachable as error:
                self._failed_at[index] = self._clock()
                unreachable = error
                continue
            if unreachable is not None:
                self.failovers += 1
            return answer
        assert unreachable is not None  # an Endpoint has at least one URL
        raise unreachable


def parse_pairs(text: str | None, provinces: Sequence[str]) -> list[Pair]:
    """``None`` or ``all``: all directed pairs; else ``a:h,a:h`` (accepting:handling)."""
    if text is None or text.strip() == "all":
        return [(a, h) for a in provinces for h in provinces if a != h]
    pairs: list[Pair] = []
    for part in text.split(","):
        accepting, colon, handling = part.strip().partition(":")
        if not colon:
            raise LoadError(f"--pairs: {part.strip()!r} is not ACCEPTING:HANDLING")
        for province in (accepting, handling):
            if province not in provinces:
                raise LoadError(
                    f"--pairs: {province!r} is not a province of this mesh ({', '.join(provinces)})"
                )
        if accepting == handling:
            raise LoadError(f"--pairs: {part.strip()!r}: a case crosses provinces")
        if (accepting, handling) not in pairs:
            pairs.append((accepting, handling))
    return pairs


@dataclass
class LoadCase:
    """One application of the stream and what became of it."""

    accepting: str
    handling: str
    body: dict[str, Any]
    key: str
    """Its Idempotency-Key."""
    case_id: str = ""
    outcome: str = "waiting"
    """waiting, created, replayed (a lost answer: the retry found the case), refused,
    refused_for_now (still answered 5xx when ``retry_for`` ran out), unanswered (no answer
    to the last attempt before ``retry_for`` ran out)."""
    refusal: str = ""
    """The problem code of a refusal, final or for now."""
    attempts: int = 0
    status: str = ""
    """The case's status at the accepting node, when last seen."""
    missing: bool = False
    """The accepting node answered 404 for a case it had created."""
    submitted_at: float | None = None
    delivered_at: float | None = None
    concluded_at: float | None = None
    result: str = ""
    """Its outcome once concluded: completed, denied, rejected or withdrawn (``OUTCOMES``)."""
    supplements: int = 0
    """Supplement requests this tool answered as the applicant."""

    @property
    def pair(self) -> Pair:
        return (self.accepting, self.handling)

    @property
    def accepted(self) -> bool:
        """The node answered 201: the case exists."""
        return self.outcome in ("created", "replayed")

    @property
    def handed_off(self) -> bool:
        return self.delivered_at is not None

    @property
    def concluded(self) -> bool:
        return self.status in CONCLUDED_STATUSES

    @property
    def handoff_seconds(self) -> float | None:
        if self.submitted_at is None or self.delivered_at is None:
            return None
        return max(0.0, self.delivered_at - self.submitted_at)

    @property
    def end_to_end_seconds(self) -> float | None:
        if self.submitted_at is None or self.concluded_at is None:
            return None
        return max(0.0, self.concluded_at - self.submitted_at)


class CaseStream:
    """Submits and follows cases on a mesh over one HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, endpoints: Mapping[str, Endpoint]) -> None:
        self.endpoints = dict(endpoints)
        self.apis = {p: ProvinceApi(session, e) for p, e in endpoints.items()}
        self._session = session
        self.run_id = secrets.token_hex(4)
        self.first_submission: float | None = None
        self.last_answer: float | None = None

    async def check_nodes(self, directory: Path | None = None) -> None:
        """Every province has a replica that answers and is ready; LoadError naming the first
        province without one (and, given the mesh folder, the command that starts it)."""
        for province, apis in self.apis.items():
            problem = ""
            for api in apis.replicas:
                try:
                    await api.call("GET", "/readyz")
                    break
                except NodeUnreachable as exc:
                    where = URL(api.url).authority
                    hint = f"; start it: {start_command(directory, province)}" if directory else ""
                    problem = problem or (
                        f"the {province} node does not answer at {where} ({exc.reason}){hint}"
                    )
                except NodeRefused:
                    problem = problem or (
                        f"the {province} node at {api.url} is not ready (see {api.url}/readyz)"
                    )
            else:
                raise LoadError(problem)

    async def plan(self, pairs: Sequence[Pair], count: int) -> list[LoadCase]:
        """``count`` applications spread over ``pairs`` in turn, from the accepting platforms'
        residents and the federated catalog (waited for until it covers every handler)."""
        accepting = sorted({a for a, _ in pairs})
        catalog: dict[str, dict[str, Any]] = {}
        for province in accepting:
            needed = {h for a, h in pairs if a == province}
            for matter in await self._catalog(province, needed):
                catalog.setdefault(matter["code"], matter)
        try:
            fixtures = await fetch_fixtures(
                self._session, {p: self.endpoints[p].platform for p in accepting}
            )
            planned = plan_applications(
                list(catalog.values()), fixtures, [pairs[i % len(pairs)] for i in range(count)]
            )
        except MeshError as exc:
            raise LoadError(str(exc)) from None
        return [
            LoadCase(a.accepting, a.handling, a.body, f"load-{self.run_id}-{index:06d}")
            for index, a in enumerate(planned)
        ]

    async def _catalog(self, province: str, handlers: set[str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + CATALOG_WAIT
        while True:
            try:
                answer = await self.apis[province].call("GET", "/v1/catalog")
            except (NodeUnreachable, NodeRefused) as exc:
                raise LoadError(f"the {province} node gave no catalog: {exc}") from None
            matters: list[dict[str, Any]] = answer.body.get("matters", [])
            missing = handlers - {m["handler"] for m in matters}
            if not missing:
                return matters
            if time.monotonic() > deadline:
                raise LoadError(
                    f"the {province} node's federated catalog holds no matter of "
                    f"{', '.join(sorted(missing))} after {CATALOG_WAIT:.0f} s"
                )
            await asyncio.sleep(0.2)

    async def submit(self, case: LoadCase, *, retry_for: float) -> None:
        api = self.apis[case.accepting]
        give_up = time.monotonic() + retry_for
        lost = False
        while True:
            case.attempts += 1
            try:
                answer = await api.call(
                    "POST", "/v1/cases", body=case.body, headers={"Idempotency-Key": case.key}
                )
            except (NodeUnreachable, NodeRefused) as error:
                if isinstance(error, NodeRefused) and not error.transient:
                    case.outcome, case.refusal = "refused", error.code
                    break
                # No answer, or a 5xx (the node could not decide now): the same key again.
                lost = True
                if time.monotonic() >= give_up:
                    if isinstance(error, NodeRefused):
                        case.outcome, case.refusal = "refused_for_now", error.code
                    else:
                        case.outcome = "unanswered"
                    break
                await asyncio.sleep(RETRY_PAUSE)
                continue
            case.case_id = str(answer.body["case_id"])
            case.status = str(answer.body.get("status", "submitted"))
            replayed = answer.headers.get("Idempotent-Replayed") == "true"
            case.outcome = "replayed" if replayed and lost else "created"
            break
        self.last_answer = time.monotonic()

    async def submit_all(
        self,
        cases: Sequence[LoadCase],
        *,
        concurrency: int,
        retry_for: float,
        spread_over: float = 0.0,
    ) -> None:
        """Submit every case, ``concurrency`` at a time; with ``spread_over``, the ``i``-th
        not before ``i * spread_over / len(cases)`` seconds (a steady stream)."""
        gate = asyncio.Semaphore(concurrency)
        started = self.first_submission = time.monotonic()
        interval = spread_over / len(cases) if cases else 0.0

        async def one(index: int, case: LoadCase) -> None:
            await asyncio.sleep(max(0.0, started + index * interval - time.monotonic()))
            async with gate:
                await self.submit(case, retry_for=retry_for)

        await asyncio.gather(*(one(i, c) for i, c in enumerate(cases)))

    async def follow(
        self,
        cases: Sequence[LoadCase],
        *,
        submitted: asyncio.Event,
        wait: float,
        show: Callable[[str], None],
    ) -> None:
        """Look at every open case until all have concluded or ``wait`` seconds have passed
        since the submissions ended (``submitted``), answering supplement requests."""
        gate = asyncio.Semaphore(LOOKS_IN_FLIGHT)
        until = math.inf

        async def look(case: LoadCase) -> None:
            async with gate:
                await self._look(case)

        while True:
            if submitted.is_set() and until == math.inf:
                until = time.monotonic() + wait
            open_cases = [c for c in cases if c.case_id and not c.concluded and not c.missing]
            await asyncio.gather(*(look(c) for c in open_cases))
            show(progress_line(cases))
            if submitted.is_set():
                if all(c.concluded or c.missing for c in cases if c.case_id):
                    return
                if time.monotonic() >= until:
                    return
            await asyncio.sleep(POLL)

    async def run(
        self,
        cases: Sequence[LoadCase],
        *,
        concurrency: int,
        retry_for: float,
        wait: float,
        show: Callable[[str], None],
        spread_over: float = 0.0,
    ) -> None:
        """Submit ``cases`` while following those already submitted; return when every
        case has concluded or ``wait`` seconds after the last submission."""
        submitted = asyncio.Event()

        async def submit() -> None:
            try:
                await self.submit_all(
                    cases, concurrency=concurrency, retry_for=retry_for, spread_over=spread_over
                )
            finally:
                submitted.set()

        await asyncio.gather(
            submit(), self.follow(cases, submitted=submitted, wait=wait, show=show)
        )

    async def view(self, province: str, case_id: str) -> dict[str, Any] | None:
        """The case with its signed history as ``province``'s node shows it; None when that
        node does not know it or does not answer."""
        try:
            return (await self.apis[province].call("GET", f"/v1/cases/{case_id}")).body
        except (NodeUnreachable, NodeRefused):
            return None

    async def _look(self, case: LoadCase) -> None:
        api = self.apis[case.accepting]
        try:
            view = (await api.call("GET", f"/v1/cases/{case.case_id}")).body
        except NodeUnreachable:
            return
        except NodeRefused as refusal:
            if refusal.code == "unknown_case":
                case.missing = True
            return
        read_view(case, view)
        pending = any(r.get("state") == "pending" for r in view.get("requests", []))
        if case.status == "supplement_requested" and not pending:
            try:
                await api.call(
                    "POST",
                    f"/v1/cases/{case.case_id}/events",
                    body={"action": "supplement", "reason": SUPPLEMENT_NOTE},
                )
                case.supplements += 1
            except (NodeUnreachable, NodeRefused):
                pass  # looked at again next round; a refusal means it moved on meanwhile


def read_view(case: LoadCase, view: Mapping[str, Any]) -> None:
    """Take status and signed times from the accepting node's view of the case."""
    case.status = str(view["status"])
    if case.submitted_at is None:
        case.submitted_at = signed_submission_time(view)
    for entry in view.get("history", []):
        at = entry["at_ns"] / 1e9
        if entry["action"] == "deliver" and case.delivered_at is None:
            case.delivered_at = at
        if entry["action"] in OUTCOME_ACTIONS and case.concluded_at is None:
            case.concluded_at = at
            case.result = OUTCOME_OF_ACTION[entry["action"]]


def signed_submission_time(view: Mapping[str, Any]) -> float | None:
    """The submission time the accepting node signed into the case's CaseSubmit."""
    try:
        text = view["submission"]["envelope"]
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        message = pb.Message.FromString(pb.Envelope.FromString(raw).message)
    except (KeyError, TypeError, ValueError):
        return None
    return instant(message.case_submit.submitted_at)


def progress_line(cases: Sequence[LoadCase]) -> str:
    answered = sum(c.outcome != "waiting" for c in cases)
    refused = sum(c.outcome == "refused" for c in cases)
    return (
        f"submitted {answered}/{len(cases)}"
        + (f" ({refused} refused)" if refused else "")
        + f", handed off {sum(c.handed_off for c in cases)}"
        + f", concluded {sum(c.concluded for c in cases)}"
    )


# --- the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PairFigures:
    pair: str
    """``accepting → handling``, or ``total``."""
    cases: int
    handed_off: int
    concluded: int
    completed: int
    denied: int
    rejected: int
    withdrawn: int
    open: int
    """Not concluded (yet): cases = completed + denied + rejected + withdrawn + open."""
    handoff_p50: float | None
    handoff_p95: float | None
    end_to_end_p50: float | None
    end_to_end_p95: float | None

    @classmethod
    def of(cls, pair: str, cases: Sequence[LoadCase]) -> PairFigures:
        handoffs = [s for c in cases if (s := c.handoff_seconds) is not None]
        ends = [s for c in cases if (s := c.end_to_end_seconds) is not None]
        concluded = [c for c in cases if c.concluded]
        by_outcome = {o: sum(c.result == o for c in concluded) for o in OUTCOMES}
        return cls(
            pair,
            len(cases),
            sum(c.handed_off for c in cases),
            len(concluded),
            by_outcome["completed"],
            by_outcome["denied"],
            by_outcome["rejected"],
            by_outcome["withdrawn"],
            len(cases) - len(concluded),
            percentile(handoffs, 0.5),
            percentile(handoffs, 0.95),
            percentile(ends, 0.5),
            percentile(ends, 0.95),
        )


@dataclass(frozen=True)
class LoadReport:
    planned: int
    accepted: int
    """Submissions the node answered with 201 (cases that exist)."""
    replayed: int
    """Of those, answers lost and found again by the retry with the same Idempotency-Key."""
    refused: dict[str, int]
    """Refused submissions by problem code."""
    unanswered: int
    submit_seconds: float
    pairs: list[PairFigures]
    total: PairFigures
    failures: list[str] = field(default_factory=list)
    """Each case lost or stuck (not handed off), or submission unanswered, in a sentence."""
    still_open: dict[str, int] = field(default_factory=dict)
    """Handed-off cases not concluded when the wait ended, by status."""
    refused_for_now: dict[str, int] = field(default_factory=dict)
    """Submissions the node still answered 5xx when the retries ended, by problem code
    (``store_unavailable``: its disk is full): answered, and nothing created."""
    failovers: int = 0
    """Requests (submissions and looks) that got no answer at one replica of a province and
    were answered at another."""

    @property
    def submissions_per_second(self) -> float:
        answered = self.accepted + sum(self.refused.values())
        return answered / self.submit_seconds if self.submit_seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and self.accepted > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "planned": self.planned,
            "accepted": self.accepted,
            "replayed": self.replayed,
            "refused": self.refused,
            "refused_for_now": self.refused_for_now,
            "unanswered": self.unanswered,
            "failovers": self.failovers,
            "submit_seconds": round(self.submit_seconds, 3),
            "submissions_per_second": round(self.submissions_per_second, 1),
            "pairs": [_figures_json(p) for p in self.pairs],
            "total": _figures_json(self.total),
            "still_open": self.still_open,
            "failures": self.failures,
        }


def _figures_json(figures: PairFigures) -> dict[str, Any]:
    shown = asdict(figures)
    for key in ("handoff_p50", "handoff_p95", "end_to_end_p50", "end_to_end_p95"):
        value = shown.pop(key)
        shown[key + "_seconds"] = None if value is None else round(value, 3)
    return shown


def report(cases: Sequence[LoadCase], stream: CaseStream) -> LoadReport:
    accepted = [c for c in cases if c.accepted]
    refused: dict[str, int] = {}
    refused_for_now: dict[str, int] = {}
    for case in cases:
        if case.outcome == "refused":
            refused[case.refusal] = refused.get(case.refusal, 0) + 1
        elif case.outcome == "refused_for_now":
            refused_for_now[case.refusal] = refused_for_now.get(case.refusal, 0) + 1
    by_pair: dict[Pair, list[LoadCase]] = {}
    for case in accepted:
        by_pair.setdefault(case.pair, []).append(case)
    failures = [
        f"{c.case_id} {c.accepting} → {c.handling}: "
        + ("LOST: the accepting node no longer knows it" if c.missing else f"stuck in {c.status}")
        for c in accepted
        if not c.handed_off
    ]
    unanswered = [c for c in cases if c.outcome == "unanswered"]
    failures += [
        f"submission {c.key} {c.accepting} → {c.handling}: no answer after {c.attempts} "
        "attempts (the case may exist unseen)"
        for c in unanswered
    ]
    failures += [
        f"submission {c.key} {c.accepting} → {c.handling}: refused for now ({c.refusal}) "
        f"on each of {c.attempts} attempts; nothing was created"
        for c in cases
        if c.outcome == "refused_for_now"
    ]
    still_open: dict[str, int] = {}
    for case in accepted:
        if case.handed_off and not case.concluded:
            still_open[case.status] = still_open.get(case.status, 0) + 1
    started = stream.first_submission or 0.0
    return LoadReport(
        planned=len(cases),
        accepted=len(accepted),
        replayed=sum(c.outcome == "replayed" for c in cases),
        refused=dict(sorted(refused.items())),
        refused_for_now=dict(sorted(refused_for_now.items())),
        unanswered=len(unanswered),
        submit_seconds=max(0.0, (stream.last_answer or started) - started),
        pairs=[PairFigures.of(f"{a} → {h}", by_pair[(a, h)]) for a, h in sorted(by_pair)],
        total=PairFigures.of("total", accepted),
        failures=failures,
        still_open=dict(sorted(still_open.items())),
        failovers=sum(api.failovers for api in stream.apis.values()),
    )


def session(timeout: float = 30.0) -> aiohttp.ClientSession:
    """The HTTP session of a stream (each node's token goes with each request)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))


def percentile(values: Iterable[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` 0.95 for p95) of the figures a command prints;
    None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

"""The simulated people of a platform: the handling officer and the applicant.

- The **officer** (办理地) works each inbound case the node delivered: after a delay it
  accepts (受理) or rejects (不予受理) it; an accepted case may get one supplement request
  (补正告知), and after the applicant's supplement arrives (as an update notice) or straight
  away it is completed (办结, with the SHA-256 of a result document) or denied (不予许可).
- The **applicant** (收件地 side) answers each supplement request the node notifies, after a
  delay, and evaluates (好差评) the case once it is completed or denied: level 1-5, mostly 4
  or 5, with a short comment.

Rules kept:

1. Everything they do is appended to the platform's event feed in the ``POST
   /v1/cases/{id}/events`` shape; the adapter hands it to the node.
2. Decisions are deterministic: a function of the seed, the case id and the step
   (``plan_for``), never of timing or the order cases arrive in.
3. What to do next is derived from the store alone (inbound cases, notices, the feed), and
   each step has a fixed event id (``<case id>:<step>``), so a restarted platform neither
   repeats nor skips a step, and two passes racing on the same step store it once.
4. Each step waits ``delay`` seconds (scaled by a deterministic factor of 0.5-1.5, so that
   cases do not move in lock step) after what it answers; ``delay=0`` acts at once. Time is
   read from the injected ``clock``; ``work()`` is synchronous so tests drive it directly.
5. A case the node reports concluded (rejected, withdrawn, completed, denied, evaluated) gets
   nothing more from the officer; a case is settled once nobody here has more to do. The
   applicant follows only applications that became cases: one the federation refused has
   none, and is not followed.
6. Logs carry case ids and actions, never names or ID numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from adapters.simulation.store import FeedEvent, PlatformStore, StoredNotice

log = logging.getLogger(__name__)

Clock = Callable[[], float]

REJECT_SHARE: Final = 0.10
SUPPLEMENT_SHARE: Final = 0.25
DENY_SHARE: Final = 0.10
IDLE_WAIT: Final = 1.0
"""Longest the background task sleeps without being woken (a safety net, not the trigger)."""

_CONCLUDED: Final = frozenset({"rejected", "withdrawn", "completed", "denied", "evaluated"})
_ACCEPT_REASONS: Final = ("材料齐全，符合法定形式，予以受理", "经审查，申请材料齐全，予以受理")
_REJECT_REASONS: Final = (
    "申请事项不属于本机关职权范围，不予受理",
    "申请人不符合该事项的申请条件，不予受理",
)
_SUPPLEMENT_REASONS: Final = (
    "请补充提交近期免冠照片电子版",
    "申请表未签名，请补正后重新提交",
    "证明用途说明材料不完整，请补充",
)
_DENY_REASONS: Final = (
    "经核查，申请人不符合办理条件，不予许可",
    "档案信息与申请内容不一致，不予许可",
)
_SUPPLEMENT_NOTE: Final = "已按补正告知补交材料"
_LEVELS: Final = (5, 4, 3, 2, 1)
_LEVEL_WEIGHTS: Final = (60, 25, 10, 4, 1)
_COMMENTS: Final[Mapping[int, tuple[str, ...]]] = {
    5: ("办理很快，不用跑腿，非常满意", "跨省通办太方便了", ""),
    4: ("整体顺利，补正提示可以更清楚", "速度不错", ""),
    3: ("等待时间有点长", ""),
    2: ("补正要求说明不清楚，来回多次",),
    1: ("办理时间远超预期",),
}


@dataclass(frozen=True)
class CasePlan:
    """What the officer will decide on one case (rule 2)."""

    accept: bool
    supplement: bool
    complete: bool


def plan_for(seed: int, case_id: str) -> CasePlan:
    """The officer's decisions on ``case_id``: mostly accept and complete."""
    rng = random.Random(f"plan:{seed}:{case_id}")  # noqa: S311  (simulated decisions)
    return CasePlan(
        accept=rng.random() >= REJECT_SHARE,
        supplement=rng.random() < SUPPLEMENT_SHARE,
        complete=rng.random() >= DENY_SHARE,
    )


@dataclass(frozen=True)
class WorkDone:
    appended: tuple[str, ...]
    """Event ids appended by this pass."""
    next_due: float | None
    """When the earliest waiting step falls due; None when nothing is waiting on time."""


class SimulatedPeople:
    """The officer and the applicant of one platform (rules in the module docstring)."""

    def __init__(
        self,
        store: PlatformStore,
        *,
        province: str,
        seed: int,
        delay: float,
        clock: Clock,
    ) -> None:
        if delay < 0:
            raise ValueError("the officer's delay must not be negative")
        self._store = store
        self._province = province
        self._seed = seed
        self._delay = delay
        self._clock = clock
        self._wake = asyncio.Event()
        self._pass = _Pass(0.0, [], [])

    def wake(self) -> None:
        """Something arrived (a case, a notice): look for work now rather than later."""
        self._wake.set()

    async def run(self) -> None:
        """Work cases until cancelled (the platform app's background task)."""
        while True:
            self._wake.clear()
            try:
                next_due = self.work().next_due
            except Exception:
                log.exception("simulated officer pass failed")
                next_due = None
            wait = IDLE_WAIT
            if next_due is not None:
                wait = min(IDLE_WAIT, max(0.0, next_due - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def work(self) -> WorkDone:
        """Take every step that is due now; say when the next one falls due."""
        now = self._clock()
        appended: list[str] = []
        while True:
            # A step can make the next one due at once (delay 0): pass again until quiet.
            before = len(appended)
            self._pass = _Pass(now, appended, [])
            handling, accepting = self._store.open_work()
            for case_id in handling:
                self._handle(case_id)
            for case_id in accepting:
                self._answer(case_id)
            if len(appended) == before:
                due = self._pass.due
                return WorkDone(tuple(appended), min(due) if due else None)

    # -- the officer (办理地) ------------------------------------------------------------------

    def _handle(self, case_id: str) -> None:
        stored = self._store.inbound_case(case_id)
        assert stored is not None
        notices = self._store.notices(case_id)
        if any(n.notice.status in _CONCLUDED for n in notices):
            self._store.settle(case_id, "handling")
            return
        events = {event.event_id: event for event in self._store.events_of(case_id)}
        plan = plan_for(self._seed, case_id)

        decision = events.get(f"{case_id}:accept") or events.get(f"{case_id}:reject")
        if decision is None:
            if plan.accept:
                self._take(
                    case_id,
                    "accept",
                    after=stored.received_at,
                    body=self._reasoned(case_id, "accept"),
                )
            else:
                self._take(
                    case_id,
                    "reject",
                    after=stored.received_at,
                    body=self._reasoned(case_id, "reject"),
                )
            return
        if decision.body["action"] == "reject":
            self._store.settle(case_id, "handling")
            return
        if f"{case_id}:complete" in events or f"{case_id}:deny" in events:
            self._store.settle(case_id, "handling")
            return
        conclude_after = decision.created
        if plan.supplement:
            request = events.get(f"{case_id}:request_supplement")
            if request is None:
                self._take(
                    case_id,
                    "request_supplement",
                    after=decision.created,
                    body=self._reasoned(case_id, "request_supplement"),
                )
                return
            answer = _first(notices, "supplement", after_sequence=0)
            if answer is None:
                return  # waiting for the applicant, not for time
            conclude_after = answer.received_at
        if plan.complete:
            self._take(case_id, "complete", after=conclude_after, body=self._completion(case_id))
        else:
            self._take(case_id, "deny", after=conclude_after, body=self._reasoned(case_id, "deny"))

    def _reasoned(self, case_id: str, action: str) -> dict[str, Any]:
        reasons = {
            "accept": _ACCEPT_REASONS,
            "reject": _REJECT_REASONS,
            "request_supplement": _SUPPLEMENT_REASONS,
            "deny": _DENY_REASONS,
        }[action]
        rng = random.Random(f"reason:{self._seed}:{case_id}:{action}")  # noqa: S311  (simulated)
        return {"action": action, "reason": rng.choice(reasons)}

    def _completion(self, case_id: str) -> dict[str, Any]:
        document = f"{self._province}|{case_id}|办结文书|{self._seed}".encode()
        digest = hashlib.sha256(document).hexdigest()
        return {"action": "complete", "result": {"kind": "document", "document_sha256": digest}}

    # -- the applicant (收件地) ----------------------------------------------------------------

    def _answer(self, case_id: str) -> None:
        notices = self._store.notices(case_id)
        if any(n.notice.status in ("rejected", "withdrawn", "evaluated") for n in notices):
            self._store.settle(case_id, "accepting")
            return
        events = {event.event_id for event in self._store.events_of(case_id)}
        concluded = next((n for n in notices if n.notice.action in ("complete", "deny")), None)
        if concluded is not None:
            if f"{case_id}:evaluate" in events:
                self._store.settle(case_id, "accepting")
                return
            self._take(
                case_id, "evaluate", after=concluded.received_at, body=self._evaluation(case_id)
            )
            return
        for stored in notices:
            notice = stored.notice
            if notice.action != "request_supplement":
                continue
            answered = _first(notices, "supplement", after_sequence=notice.sequence)
            if answered is None and f"{case_id}:supplement:{notice.sequence}" not in events:
                self._take(
                    case_id,
                    f"supplement:{notice.sequence}",
                    after=stored.received_at,
                    body={"action": "supplement", "reason": _SUPPLEMENT_NOTE},
                )

    def _evaluation(self, case_id: str) -> dict[str, Any]:
        rng = random.Random(f"evaluate:{self._seed}:{case_id}")  # noqa: S311  (simulated)
        level = rng.choices(_LEVELS, weights=_LEVEL_WEIGHTS)[0]
        comment = rng.choice(_COMMENTS[level])
        body: dict[str, Any] = {"action": "evaluate", "level": level}
        if comment:
            body["comment"] = comment
        return body

    # -- shared ------------------------------------------------------------------------------

    def _take(self, case_id: str, step: str, *, after: float, body: Mapping[str, Any]) -> None:
        """Append the step's event if it is due now; otherwise note when it will be."""
        current = self._pass
        at = after + self._wait(case_id, step)
        if at > current.now:
            current.due.append(at)
            return
        event_id = f"{case_id}:{step}"
        if self._store.append_event(event_id, case_id, body, current.now):
            current.appended.append(event_id)
            log.info(
                "simulated step",
                extra={"case_id": case_id, "action": body["action"], "event_id": event_id},
            )

    def _wait(self, case_id: str, step: str) -> float:
        if self._delay == 0:
            return 0.0
        rng = random.Random(f"delay:{self._seed}:{case_id}:{step}")  # noqa: S311  (simulated)
        return self._delay * rng.uniform(0.5, 1.5)


@dataclass
class _Pass:
    now: float
    appended: list[str]
    due: list[float]


def _first(notices: list[StoredNotice], action: str, *, after_sequence: int) -> StoredNotice | None:
    return next(
        (n for n in notices if n.notice.action == action and n.notice.sequence > after_sequence),
        None,
    )


__all__ = ["CasePlan", "Clock", "FeedEvent", "SimulatedPeople", "WorkDone", "plan_for"]

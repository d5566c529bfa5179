"""The case ledger: the state this node records of each case, written inside the store
transaction that records the message or event causing it (DESIGN.md §6).

Rules kept here:
- The handling side applies the updates it numbers itself (``apply``); its own, it sends to
  the accepting side through the courier in the same transaction.
- The accepting side takes the handler's updates in sequence order (``offer``): an early one
  is stored and held until the ones before it arrive, an exact duplicate changes nothing, a
  different update under a known number is refused (``CaseSequencer``). An update that
  answers one of our requests settles that request as applied.
- This node's platform hears of every applied update, in order, even when several became
  applicable at once; the case row is written once, for the last. Nothing is queued for a
  platform when the node has none.
- The handling side derives the due time from the history (acceptance starts the clock,
  supplement requests pause it), and every update carries the due time after it; unknown
  when the calendar cannot tell (a year without a holiday table).
- The accepting side observes a case's duration once, when it concludes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from node.cases.calendar import CalendarError, Deadline, WorkingCalendar
from node.cases.events import notice
from node.cases.lifecycle import (
    CONCLUDED,
    Action,
    CaseSequencer,
    CaseUpdate,
    Role,
    Status,
    apply_update,
)
from node.cases.wire import detail_of, to_update, update_of
from node.peers.courier import Courier
from node.store import cases, outbox
from node.store import platform as platform_store
from node.store.cases import CaseRow, UpdateRow
from node.store.connection import Connection
from node.store.database import Database

if TYPE_CHECKING:
    from prometheus_client import Histogram

log = logging.getLogger(__name__)


class CaseMetrics(Protocol):
    """The metric the ledger observes."""

    @property
    def case_duration(self) -> Histogram:
        """Submission to outcome, by handling province and outcome (accepting side)."""


class CaseLedger:
    def __init__(
        self,
        *,
        db: Callable[[], Database],
        courier: Courier,
        calendar: WorkingCalendar,
        metrics: CaseMetrics,
        platform_wake: Callable[[], None] | None,
    ) -> None:
        self._db = db
        self._courier = courier
        self._calendar = calendar
        self._metrics = metrics
        self._platform_wake = platform_wake
        """Wakes the delivery to this node's platform; None when the node has no platform."""

    def offer(
        self,
        conn: Connection,
        case: CaseRow,
        update: CaseUpdate,
        request_id: str,
        due_at: float | None,
        evidence: bytes,
    ) -> None:
        """Accepting side: take an update from the handler, holding it until its turn."""
        history = cases.updates(conn, case.case_id)
        sequencer = CaseSequencer(case_id=case.case_id)
        for row in history:
            sequencer.offer(_update_of(row))
        before = sequencer.applied
        ready = sequencer.offer(update)
        for refusal in sequencer.take_refused():
            log.error(
                "held case update is illegal in its turn",
                extra={"case_id": case.case_id, "code": refusal.code, "detail": refusal.detail},
            )
        known = {row.sequence for row in history}
        if update.sequence not in known:
            request = _sent_envelope(conn, request_id)
            cases.add_update(
                conn, _row(update, request_id, due_at, evidence, request, applied=False)
            )
        if not ready or sequencer.applied == before:
            return
        newly = [u.sequence for u, _ in ready]
        cases.mark_applied(conn, case.case_id, newly)
        rows = {row.sequence: row for row in cases.updates(conn, case.case_id)}
        for sequence in newly:
            row = rows[sequence]
            if row.detail.get("request_id"):
                cases.answer_request(conn, row.detail["request_id"], state="applied", at=row.at)
        # The platform hears of every update, in order, even when several became applicable
        # at once (an early one held until the one before it arrived); the case row is
        # written once, for the last.
        for update_applied, status in ready[:-1]:
            row = rows[update_applied.sequence]
            self.tell_platform(conn, "notice", case.case_id, notice(case, status, row), row.at)
        last = rows[sequencer.applied]
        self._set_state(conn, case, sequencer.status, sequencer.applied, last)

    def apply(
        self,
        conn: Connection,
        case: CaseRow,
        update: CaseUpdate,
        *,
        send: bool = False,
        evidence: bytes = b"",
        request: bytes | None = None,
        request_id: str = "",
    ) -> None:
        """Handling side: apply an update it numbered itself and, if ``send``, send it."""
        history = [_update_of(row) for row in cases.updates(conn, case.case_id)]
        status = apply_update(Status(case.status), update)
        due_at = self._due_at(case, [*history, update])
        if send:
            message = to_update(update, request_id=request_id, due_at=due_at)
            sealed = self._courier.seal(
                case.accepting, [("case_update", message)], correlation_id=case.case_id
            )
            self._courier.enqueue(conn, case.accepting, sealed, correlation_id=case.case_id)
            evidence = sealed[0].envelope
        row = _row(update, request_id, due_at, evidence, request, applied=True)
        cases.add_update(conn, row)
        self._set_state(conn, case, status, update.sequence, row)

    def tell_platform(
        self, conn: Connection, kind: str, case_id: str, payload: dict[str, Any], at: float
    ) -> None:
        """Queue what this node's platform must learn, in the transaction that caused it."""
        if self._platform_wake is None:
            return
        platform_store.enqueue(conn, kind=kind, case_id=case_id, payload=payload, at=at)
        self._db().after_commit(self._platform_wake)

    def _set_state(
        self,
        conn: Connection,
        case: CaseRow,
        status: Status,
        applied: int,
        last: UpdateRow,
    ) -> None:
        evaluation = last.detail.get("evaluation")
        level = evaluation["level"] if evaluation else case.evaluation_level
        concluded_at = case.concluded_at
        if status in CONCLUDED and concluded_at is None:
            concluded_at = last.at
            if case.role == Role.ACCEPTING.value:
                self._metrics.case_duration.labels(case.handling, status.value).observe(
                    max(0.0, last.at - case.submitted_at)
                )
        self.tell_platform(conn, "notice", case.case_id, notice(case, status, last), last.at)
        cases.set_state(
            conn,
            case.case_id,
            status=status.value,
            applied=applied,
            due_at=last.detail.get("due_at"),
            updated_at=last.at,
            concluded_at=concluded_at,
            evaluation_level=level,
        )

    def _due_at(self, case: CaseRow, history: Sequence[CaseUpdate]) -> float | None:
        """The due time after ``history`` (the module's rules), None before acceptance,
        while paused, or when the calendar cannot tell (a year without a holiday table)."""
        deadline: Deadline | None = None
        for update in history:
            if update.action is Action.ACCEPT:
                deadline = Deadline(update.at, case.promised_days)
            elif deadline is None:
                continue
            elif update.action is Action.REQUEST_SUPPLEMENT and not deadline.is_paused:
                deadline = deadline.pause(update.at)
            elif update.action is Action.SUPPLEMENT and deadline.is_paused:
                deadline = deadline.resume(update.at)
        if deadline is None:
            return None
        try:
            return deadline.due_at(self._calendar)
        except CalendarError as error:
            log.warning(
                "case due time unknown", extra={"case_id": case.case_id, "reason": str(error)}
            )
            return None


def _row(
    update: CaseUpdate,
    request_id: str,
    due_at: float | None,
    evidence: bytes,
    request: bytes | None,
    *,
    applied: bool,
) -> UpdateRow:
    return UpdateRow(
        case_id=update.case_id,
        sequence=update.sequence,
        action=update.action.value,
        by_role=update.by.value,
        at=update.at,
        detail=detail_of(update, request_id=request_id, due_at=due_at),
        evidence=evidence,
        request=request,
        applied=applied,
    )


def _update_of(row: UpdateRow) -> CaseUpdate:
    return update_of(row.case_id, row.sequence, row.action, row.by_role, row.at, row.detail)


def _sent_envelope(conn: Connection, message_id: str) -> bytes | None:
    """Our own signed request that an update applies, as we sent it."""
    if not message_id:
        return None
    item = outbox.get(conn, message_id)
    return item.envelope if item is not None else None

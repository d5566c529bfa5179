"""Cases as the REST API and the status view show them: one case with its history, its
certificate checks and its requests; overdue counts; satisfaction per handling province."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from node.cases.events import PLATFORM_ACTIONS
from node.cases.exchange import CaseNotFound
from node.cases.lifecycle import Role, Status, allowed_actions
from node.cases.wire import submission_json, submitted
from node.store import cases
from node.store.cases import CaseRow, UpdateRow
from node.store.database import Database
from node.trust.manifest import format_time
from node.wire import pb


class CaseViews:
    def __init__(self, db: Callable[[], Database], clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    def get(self, case_id: str) -> CaseRow:
        case = cases.get(self._db().reader(), case_id)
        if case is None:
            raise CaseNotFound(case_id)
        return case

    def view(self, case: CaseRow, *, history: bool = True) -> dict[str, Any]:
        """A case as the REST API shows it."""
        now = self._clock()
        status = Status(case.status)
        role = Role(case.role)
        shown: dict[str, Any] = {
            "case_id": case.case_id,
            "status": case.status,
            "role": case.role,
            "accepting": case.accepting,
            "handling": case.handling,
            "peer": case.peer,
            "matter_code": case.matter_code,
            "mode": case.mode,
            "promised_days": case.promised_days,
            "submitted_at": format_time(case.submitted_at),
            "updated_at": format_time(case.updated_at),
            "due_at": format_time(case.due_at) if case.due_at is not None else None,
            "overdue": case.overdue(now),
            "concluded_at": format_time(case.concluded_at) if case.concluded_at else None,
            "sequence": case.applied,
            "allowed_actions": [
                a.value for a in allowed_actions(status, role) if a in PLATFORM_ACTIONS
            ],
            "evaluation_level": case.evaluation_level,
        }
        if case.problem:
            shown["problem"] = case.problem
        if not history:
            return shown
        conn = self._db().reader()
        submit = pb.Envelope.FromString(case.submission)
        shown.update(submission_json(submitted(case)))
        checks = {c.material: c for c in cases.certificate_checks(conn, case.case_id)}
        for material in shown["materials"]:
            check = checks.get(material["name"])
            if check is not None:
                material["verification"] = {
                    "state": check.state,
                    "status": check.status,
                    "reason": check.reason,
                    "checked_at": format_time(check.checked_at) if check.checked_at else None,
                    "attestation": check.attestation,
                }
        shown["submission"] = {"envelope": _b64(case.submission), "key_id": submit.key_id}
        shown["history"] = [_history_entry(row) for row in cases.updates(conn, case.case_id)]
        shown["requests"] = [
            {
                "message_id": r.message_id,
                "action": r.action,
                "state": r.state,
                "requested_at": format_time(r.requested_at),
                "answered_at": format_time(r.answered_at) if r.answered_at else None,
                **({"fault": {"code": r.fault_code, "text": r.fault_text}} if r.fault_code else {}),
            }
            for r in cases.requests(conn, case.case_id)
        ]
        return shown

    def overdue_count(self) -> int:
        return sum(cases.overdue_counts(self._db().reader(), self._clock()).values())

    def satisfaction(self) -> dict[str, dict[str, Any]]:
        """Evaluations per handling province: count per level, mean and share satisfied."""
        per: dict[str, dict[int, int]] = {}
        for (handling, level), n in cases.evaluation_counts(self._db().reader()).items():
            per.setdefault(handling, {})[level] = n
        shown: dict[str, dict[str, Any]] = {}
        for handling, levels in sorted(per.items()):
            total = sum(levels.values())
            shown[handling] = {
                "evaluations": total,
                "levels": {str(level): levels.get(level, 0) for level in range(5, 0, -1)},
                "mean_level": round(sum(k * v for k, v in levels.items()) / total, 2),
                # 满意率 as provincial reports count it: 基本满意 and better.
                "satisfied_share": round(sum(v for k, v in levels.items() if k >= 3) / total, 4),
            }
        return shown


# --- helpers --------------------------------------------------------------------------------


def _history_entry(row: UpdateRow) -> dict[str, Any]:
    detail = dict(row.detail)
    if "due_at" in detail:
        detail["due_at"] = format_time(detail["due_at"])
    evidence = pb.Envelope.FromString(row.evidence)
    entry: dict[str, Any] = {
        "sequence": row.sequence,
        "action": row.action,
        "by": row.by_role,
        "at": format_time(row.at),
        "at_ns": _signed_at_ns(evidence) or round(row.at * 1e9),
        **detail,
        "evidence": _b64(row.evidence),
        "signed_by": evidence.key_id,
        "applied": row.applied,
    }
    if row.request is not None:
        entry["request"] = _b64(row.request)
        entry["request_signed_by"] = pb.Envelope.FromString(row.request).key_id
    return entry


def _signed_at_ns(evidence: pb.Envelope) -> int | None:
    """The update's time exactly as signed (a float of epoch seconds keeps only about a
    quarter of a microsecond): the CaseUpdate's ``at``, or for update 1 the handler's
    receipt time."""
    message = pb.Message.FromString(evidence.message)
    kind = message.WhichOneof("body")
    if kind == "case_update" and message.case_update.HasField("at"):
        return int(message.case_update.at.ToNanoseconds())
    if kind == "receipt" and message.receipt.HasField("received_at"):
        return int(message.receipt.received_at.ToNanoseconds())
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

"""What this node's platform says about a case and what it is told: the platform's events
(an officer's or applicant's action, with its reason, result or evaluation) parsed into
lifecycle terms, and the payloads queued for the platform (a case that arrived, a notice of
each applied update).

Rules kept here:
- A platform posts only the actions in ``PLATFORM_ACTIONS``; submit and deliver happen
  through the exchange.
- An event's free text (reason, comment) is judged by ``node.text.clean_text`` and kept in
  Unicode normal form C here, where it comes in, not in ``CaseUpdate``: an update stored
  before the rule must still replay.
- A bad event raises ``CaseInputError`` naming the field at fault, before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.cases.lifecycle import (
    MAX_COMMENT_LENGTH,
    MAX_REASON_LENGTH,
    Action,
    CaseUpdate,
    Evaluation,
    InvalidCaseField,
    Result,
    Role,
    Status,
)
from node.cases.submission import CaseInputError
from node.cases.wire import submission_json
from node.identifiers import IdentifierError
from node.store.cases import CaseRow, UpdateRow
from node.text import TextError, clean_text
from node.wire import pb

PLATFORM_ACTIONS = frozenset(Action) - {Action.SUBMIT, Action.DELIVER}
"""Actions a platform may post as events; submit and deliver happen through the exchange."""


def parse_event(
    body: Mapping[str, Any],
) -> tuple[Action, str, Result | None, Evaluation | None]:
    """A platform event's action, reason, result and evaluation; ``CaseInputError`` naming
    the field at fault."""
    allowed = {"action", "reason", "result", "level", "comment"}
    for key in body:
        if key not in allowed:
            raise CaseInputError(
                "unknown_field", key, f"not a field here; known: {sorted(allowed)}"
            )
    name = body.get("action")
    try:
        action = Action(name)
    except ValueError:
        action = None
    if action is None or action not in PLATFORM_ACTIONS:
        names = sorted(a.value for a in PLATFORM_ACTIONS)
        raise CaseInputError("invalid_action", "action", f"action must be one of {names}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise CaseInputError("invalid_update", "reason", "reason must be text")
    reason = _free_text(reason, "reason", MAX_REASON_LENGTH)
    result: Result | None = None
    if "result" in body:
        data = body["result"]
        if not isinstance(data, Mapping):
            raise CaseInputError("invalid_result", "result", "result must be an object")
        try:
            result = Result(
                data.get("kind"),  # type: ignore[arg-type]  # Result checks it
                document_sha256=data.get("document_sha256"),
                certificate_id=data.get("certificate_id"),
            )
        except (InvalidCaseField, IdentifierError) as error:
            raise CaseInputError(error.code, error.field, str(error)) from None
    evaluation: Evaluation | None = None
    if "level" in body or "comment" in body:
        comment = body.get("comment", "")
        if isinstance(comment, str):
            comment = _free_text(comment, "comment", MAX_COMMENT_LENGTH)
        try:
            evaluation = Evaluation(body.get("level"), comment)  # type: ignore[arg-type]
        except InvalidCaseField as error:
            field = error.field.removeprefix("evaluation.")
            raise CaseInputError(error.code, field, str(error)) from None
    try:
        CaseUpdate("x", 1, action, Role.ACCEPTING, 0.0, reason=reason)
    except InvalidCaseField as error:
        raise CaseInputError(error.code, error.field, str(error)) from None
    return action, reason, result, evaluation


def _free_text(value: str, field: str, max_length: int) -> str:
    """An event's reason or comment in normal form C, or ``invalid_text`` naming it."""
    try:
        return clean_text(value, field=field, max_length=max_length)
    except TextError as error:
        raise CaseInputError(error.code, field, error.sentence) from None


def inbound_case(row: CaseRow, submit: pb.CaseSubmit) -> dict[str, Any]:
    """What the platform is told of a case that arrived for it to handle."""
    shown = submission_json(submit)
    return {
        "case_id": row.case_id,
        "accepting": row.accepting,
        "matter_code": row.matter_code,
        "mode": row.mode,
        "applicant": shown["applicant"],
        "materials": shown["materials"],
        "submitted_at": row.submitted_at,
    }


def notice(case: CaseRow, status: Status, row: UpdateRow) -> dict[str, Any]:
    """What the platform is told of one applied update: the status it led to and its fields."""
    return {
        "case_id": case.case_id,
        "sequence": row.sequence,
        "action": row.action,
        "by": row.by_role,
        "status": status.value,
        "at": row.at,
        "reason": row.detail.get("reason", ""),
        "result": row.detail.get("result"),
        "evaluation": _evaluation_notice(row.detail.get("evaluation")),
        "due_at": row.detail.get("due_at"),
    }


def _evaluation_notice(evaluation: Any) -> dict[str, Any] | None:
    if not evaluation:
        return None
    return {"level": evaluation["level"], "comment": evaluation.get("comment", "")}

"""Cases on the wire: CaseSubmit, CaseUpdate and CaseAction to and from the lifecycle types.

Rules kept here:
- An instant travels as a protobuf Timestamp in whole nanoseconds, and the side that makes
  it stores the value read back from that Timestamp, so both sides hold equal histories.
- A field that does not decode (an unknown action or side, a malformed result or
  evaluation, a request id that is not a message id) raises ``InvalidCaseField`` naming
  it; the receiver turns that into an ``invalid_payload`` refusal before anything is stored.
"""

from __future__ import annotations

from typing import Any

from node.cases.lifecycle import Action, CaseUpdate, Evaluation, InvalidCaseField, Result, Role
from node.cases.submission import NewCase
from node.protocol.envelope import MAX_WIRE_ID_LENGTH, is_wire_id
from node.store.cases import CaseRow
from node.wire import pb

# Instants are the ground floor's (node.wire.instants); cases.wire's callers find them here too.
from node.wire.instants import exact as exact
from node.wire.instants import instant as instant
from node.wire.instants import stamp as stamp

# --- submissions ----------------------------------------------------------------------------


def to_submit(case_id: str, case: NewCase, submitted_at: float) -> pb.CaseSubmit:
    return pb.CaseSubmit(
        case_id=case_id,
        matter_code=case.matter.code,
        mode=case.mode,
        applicant=pb.Applicant(
            name=case.applicant.name, code_type=case.applicant.code_type, code=case.applicant.code
        ),
        materials=[
            pb.CaseMaterial(name=m.name, sha256=m.sha256)
            if m.sha256 is not None
            else pb.CaseMaterial(
                name=m.name, certificate_id=m.certificate_id or "", holder_code=m.holder_code or ""
            )
            for m in case.materials
        ],
        submitted_at=stamp(submitted_at),
    )


def submit_body(submit: pb.CaseSubmit, handler: str) -> dict[str, Any]:
    """The submission in the REST API's shape, for the same checks the accepting side ran."""
    materials: list[dict[str, str]] = []
    for material in submit.materials:
        source = material.WhichOneof("source")
        entry = {"name": material.name}
        if source is not None:
            entry[source] = getattr(material, source)
        if material.holder_code:
            entry["holder_code"] = material.holder_code
        materials.append(entry)
    return {
        "matter_code": submit.matter_code,
        "handler": handler,
        "mode": submit.mode,
        "applicant": {
            "name": submit.applicant.name,
            "code_type": submit.applicant.code_type,
            "code": submit.applicant.code,
        },
        "materials": materials,
    }


def submission_json(submit: pb.CaseSubmit) -> dict[str, Any]:
    """What the case view shows of a submission: applicant and materials."""
    body = submit_body(submit, "")
    return {"applicant": body["applicant"], "materials": body["materials"]}


# --- updates and actions --------------------------------------------------------------------


def to_update(update: CaseUpdate, *, request_id: str, due_at: float | None) -> pb.CaseUpdate:
    message = pb.CaseUpdate(
        case_id=update.case_id,
        sequence=update.sequence,
        action=update.action.value,
        by=update.by.value,
        at=stamp(update.at),
        reason=update.reason,
        request_id=request_id,
    )
    if update.result is not None:
        message.result.CopyFrom(_result_to_pb(update.result))
    if update.evaluation is not None:
        message.evaluation.CopyFrom(_evaluation_to_pb(update.evaluation))
    if due_at is not None:
        message.due_at.CopyFrom(stamp(due_at))
    return message


def from_update(message: pb.CaseUpdate) -> tuple[CaseUpdate, str, float | None]:
    """The update, the request it applies (or ""), and the case's due time after it."""
    update = CaseUpdate(
        case_id=message.case_id,
        sequence=message.sequence,
        action=_action(message.action, "action"),
        by=_role(message.by),
        at=instant(message.at),
        reason=message.reason,
        result=_result(message.result) if message.HasField("result") else None,
        evaluation=_evaluation(message.evaluation) if message.HasField("evaluation") else None,
    )
    if message.request_id and not is_wire_id(message.request_id):
        raise InvalidCaseField(
            "invalid_update",
            f"request_id must be a message id (1 to {MAX_WIRE_ID_LENGTH} ASCII letters, "
            "digits, '.', '_', ':' or '-')",
            field="request_id",
        )
    due_at = instant(message.due_at) if message.HasField("due_at") else None
    return update, message.request_id, due_at


def delivered(case_id: str, receipt_envelope: bytes) -> CaseUpdate:
    """Update 1 of every case: its delivery, at the instant the handler's receipt names."""
    receipt = pb.Message.FromString(pb.Envelope.FromString(receipt_envelope).message).receipt
    return CaseUpdate(
        case_id=case_id,
        sequence=1,
        action=Action.DELIVER,
        by=Role.ACCEPTING,
        at=instant(receipt.received_at),
    )


def to_action(
    case_id: str, action: Action, at: float, reason: str, evaluation: Evaluation | None
) -> pb.CaseAction:
    message = pb.CaseAction(case_id=case_id, action=action.value, at=stamp(at), reason=reason)
    if evaluation is not None:
        message.evaluation.CopyFrom(_evaluation_to_pb(evaluation))
    return message


def from_action(message: pb.CaseAction, sequence: int) -> CaseUpdate:
    """The accepting side's action as the update numbered ``sequence`` that would apply it."""
    return CaseUpdate(
        case_id=message.case_id,
        sequence=sequence,
        action=_action(message.action, "action"),
        by=Role.ACCEPTING,
        at=instant(message.at),
        reason=message.reason,
        evaluation=_evaluation(message.evaluation) if message.HasField("evaluation") else None,
    )


# --- stored detail --------------------------------------------------------------------------


def detail_of(update: CaseUpdate, *, request_id: str, due_at: float | None) -> dict[str, Any]:
    """What an update carried besides its action, side and time, as stored and shown."""
    detail: dict[str, Any] = {}
    if update.reason:
        detail["reason"] = update.reason
    if update.result is not None:
        detail["result"] = result_json(update.result)
    if update.evaluation is not None:
        detail["evaluation"] = {
            "level": update.evaluation.level,
            "label": update.evaluation.label,
            "comment": update.evaluation.comment,
        }
    if request_id:
        detail["request_id"] = request_id
    if due_at is not None:
        detail["due_at"] = due_at
    return detail


def update_of(
    case_id: str, sequence: int, action: str, by: str, at: float, detail: Any
) -> CaseUpdate:
    """The lifecycle update a stored row holds."""
    result = detail.get("result")
    evaluation = detail.get("evaluation")
    return CaseUpdate(
        case_id=case_id,
        sequence=sequence,
        action=Action(action),
        by=Role(by),
        at=at,
        reason=detail.get("reason", ""),
        result=Result(
            result["kind"],
            document_sha256=result.get("document_sha256"),
            certificate_id=result.get("certificate_id"),
        )
        if result
        else None,
        evaluation=Evaluation(evaluation["level"], evaluation.get("comment", ""))
        if evaluation
        else None,
    )


def result_json(result: Result) -> dict[str, str]:
    if result.kind == "document":
        return {"kind": "document", "document_sha256": result.document_sha256 or ""}
    return {"kind": "certificate", "certificate_id": result.certificate_id or ""}


def _result_to_pb(result: Result) -> pb.CaseResult:
    return pb.CaseResult(
        kind=result.kind,
        document_sha256=result.document_sha256 or "",
        certificate_id=result.certificate_id or "",
    )


def _result(message: pb.CaseResult) -> Result:
    if message.kind not in ("document", "certificate"):
        raise InvalidCaseField(
            "invalid_result", "result.kind must be 'document' or 'certificate'", field="result.kind"
        )
    return Result(
        message.kind,  # type: ignore[arg-type]  # checked just above
        document_sha256=message.document_sha256 or None,
        certificate_id=message.certificate_id or None,
    )


def _evaluation_to_pb(evaluation: Evaluation) -> pb.CaseEvaluation:
    return pb.CaseEvaluation(level=evaluation.level, comment=evaluation.comment)


def _evaluation(message: pb.CaseEvaluation) -> Evaluation:
    return Evaluation(message.level, message.comment)


def _action(value: str, field: str) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise InvalidCaseField(
            "invalid_update", f"{field} {value!r} is not a case action", field=field
        ) from None


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidCaseField(
            "invalid_update", f"by {value!r} is not 'accepting' or 'handling'", field="by"
        ) from None


def submitted(case: CaseRow) -> pb.CaseSubmit:
    """The case's submission, as signed by the accepting node."""
    envelope = pb.Envelope.FromString(case.submission)
    return pb.Message.FromString(envelope.message).case_submit

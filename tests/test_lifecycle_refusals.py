"""What a refused case update says: code, field and sentence, exactly, and the sequencer's own
limits. (Which moves are legal is tests/test_lifecycle.py's oracle; this file pins down the
content of each refusal, which reaches the platform as problem+json ``code``, ``field`` and
``detail``, and which make mutation checks is fully asserted.)

The limits are written out here (2,000-character reasons, 500-character comments, 64-character
case ids, 64 updates held ahead), not imported, so that changing one is a visible decision.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from node.cases.lifecycle import (
    Action,
    CaseSequencer,
    CaseUpdate,
    Evaluation,
    InvalidCaseField,
    Result,
    Role,
    Status,
    TransitionRefused,
    apply_update,
    check_fields,
)

A, H = Role.ACCEPTING, Role.HANDLING
CASE = "310000-20260302-00000000000000aa"
DIGEST = "ab" * 32
CERTIFICATE = "91340104MA2N0A0B1X-340104-AH0001"


def update(**changes: Any) -> CaseUpdate:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "sequence": 1,
        "action": Action.ACCEPT,
        "by": H,
        "at": 1_800_000_000.0,
    }
    fields.update(changes)
    return CaseUpdate(**fields)


def invalid(make: Any) -> InvalidCaseField:
    with pytest.raises(InvalidCaseField) as caught:
        make()
    return caught.value


def assert_invalid(error: InvalidCaseField, code: str, field: str, detail: str) -> None:
    assert (error.code, error.field, error.detail) == (code, field, detail)
    assert str(error) == detail


# --- malformed updates, results and evaluations ---------------------------------------------

CASE_ID_RULE = (
    "case_id must be 1 to 64 ASCII letters, digits and hyphens, starting with a letter or digit"
)
UPDATE_REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    "empty case id": ({"case_id": ""}, "case_id", CASE_ID_RULE),
    "case id of 65": ({"case_id": "c" * 65}, "case_id", CASE_ID_RULE),
    "case id not text": ({"case_id": 7}, "case_id", CASE_ID_RULE),
    "sequence 0": ({"sequence": 0}, "sequence", "sequence must be a whole number from 1"),
    "sequence True": ({"sequence": True}, "sequence", "sequence must be a whole number from 1"),
    "action by name": ({"action": "accept"}, "action", "action must be an Action"),
    "side by name": ({"by": "handling"}, "by", "by must be a Role"),
    "time as text": ({"at": "now"}, "at", "at must be a finite number of seconds"),
    "time True": ({"at": True}, "at", "at must be a finite number of seconds"),
    "time NaN": ({"at": math.nan}, "at", "at must be a finite number of seconds"),
    "time infinite": ({"at": math.inf}, "at", "at must be a finite number of seconds"),
    "reason of 2001": (
        {"reason": "r" * 2001},
        "reason",
        "reason must be text of at most 2000 characters",
    ),
    "reason not text": ({"reason": 3}, "reason", "reason must be text of at most 2000 characters"),
    "result as a dict": (
        {"result": {"kind": "document"}},
        "result",
        "result must be a Result",
    ),
    "evaluation as a number": (
        {"evaluation": 5},
        "evaluation",
        "evaluation must be an Evaluation",
    ),
}


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    UPDATE_REFUSALS.values(),
    ids=UPDATE_REFUSALS,
)
def test_a_malformed_update_is_refused_naming_the_field(
    changes: dict[str, Any], field: str, detail: str
) -> None:
    assert_invalid(invalid(lambda: update(**changes)), "invalid_update", field, detail)


def test_the_limits_themselves_are_allowed() -> None:
    made = update(case_id="c" * 64, reason="r" * 2000, at=0)
    assert (len(made.case_id), len(made.reason), made.at) == (64, 2000, 0)
    assert Evaluation(1, "c" * 500).comment == "c" * 500


RESULT_REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    "document with a certificate id": (
        {"kind": "document", "document_sha256": DIGEST, "certificate_id": CERTIFICATE},
        "result.certificate_id",
        "a document result has no certificate_id",
    ),
    "document without a digest": (
        {"kind": "document"},
        "result.document_sha256",
        "result.document_sha256 must be 64 lower-case hexadecimal characters",
    ),
    "document with an upper-case digest": (
        {"kind": "document", "document_sha256": DIGEST.upper()},
        "result.document_sha256",
        "result.document_sha256 must be 64 lower-case hexadecimal characters",
    ),
    "certificate with a digest": (
        {"kind": "certificate", "document_sha256": DIGEST, "certificate_id": CERTIFICATE},
        "result.document_sha256",
        "a certificate result has no document_sha256",
    ),
    "certificate without an id": (
        {"kind": "certificate"},
        "result.certificate_id",
        "a certificate result needs result.certificate_id",
    ),
    "another kind": (
        {"kind": "licence"},
        "result.kind",
        "result.kind must be 'document' or 'certificate'",
    ),
}


@pytest.mark.parametrize(
    ("fields", "field", "detail"),
    RESULT_REFUSALS.values(),
    ids=RESULT_REFUSALS,
)
def test_a_malformed_result_is_refused_naming_the_field(
    fields: dict[str, Any], field: str, detail: str
) -> None:
    assert_invalid(invalid(lambda: Result(**fields)), "invalid_result", field, detail)


@pytest.mark.parametrize("level", [0, 6, True, 4.0, "5"])
def test_an_evaluation_level_off_the_scale_is_refused(level: Any) -> None:
    assert_invalid(
        invalid(lambda: Evaluation(level)),
        "invalid_evaluation",
        "evaluation.level",
        "evaluation.level must be a whole number from 1 (非常不满意) to 5 (非常满意)",
    )


@pytest.mark.parametrize("comment", ["c" * 501, None, 5])
def test_an_evaluation_comment_too_long_or_not_text_is_refused(comment: Any) -> None:
    assert_invalid(
        invalid(lambda: Evaluation(4, comment)),
        "invalid_evaluation",
        "evaluation.comment",
        "evaluation.comment must be text of at most 500 characters",
    )


# --- refused moves: what the refusal carries -------------------------------------------------


def refusal(make: Any) -> TransitionRefused:
    with pytest.raises(TransitionRefused) as caught:
        make()
    return caught.value


def test_a_refused_move_names_status_action_and_sentence() -> None:
    error = refusal(lambda: apply_update(Status.SUBMITTED, update(action=Action.COMPLETE)))
    assert error.code == "illegal_transition"
    assert (error.current, error.action) == (Status.SUBMITTED, Action.COMPLETE)
    assert error.field == "action"
    assert error.detail == str(error) == "case is submitted; cannot complete"
    assert error.update is None


def test_a_move_by_the_other_side_names_the_owner() -> None:
    error = refusal(lambda: apply_update(Status.DELIVERED, update(by=A)))
    assert (error.code, error.field) == ("wrong_side", "by")
    assert error.detail == (
        "case is delivered; the accepting side (收件地) cannot accept: "
        "accept belongs to the handling side (办理地)"
    )


@pytest.mark.parametrize(
    ("current", "changes", "code", "field", "detail"),
    [
        (
            Status.ACCEPTED,
            {"action": Action.DENY},
            "missing_field",
            "reason",
            "case is accepted; deny needs a reason",
        ),
        (
            Status.ACCEPTED,
            {"action": Action.DENY, "reason": "   "},
            "missing_field",
            "reason",
            "case is accepted; deny needs a reason",
        ),
        (
            Status.ACCEPTED,
            {"action": Action.COMPLETE},
            "missing_field",
            "result",
            "case is accepted; complete needs a result",
        ),
        (
            Status.COMPLETED,
            {"action": Action.EVALUATE, "by": A},
            "missing_field",
            "evaluation",
            "case is completed; evaluate needs an evaluation",
        ),
        (
            Status.ACCEPTED,
            {"action": Action.DENY, "reason": "r", "result": Result.document(DIGEST)},
            "unexpected_field",
            "result",
            "case is accepted; deny cannot carry a result (only complete does)",
        ),
        (
            Status.DELIVERED,
            {"evaluation": Evaluation(5)},
            "unexpected_field",
            "evaluation",
            "case is delivered; accept cannot carry an evaluation (only evaluate does)",
        ),
    ],
)
def test_a_missing_or_unexpected_field_is_named(
    current: Status, changes: dict[str, Any], code: str, field: str, detail: str
) -> None:
    made = update(**changes)
    error = refusal(lambda: check_fields(current, made))
    assert (error.code, error.field, error.detail) == (code, field, detail)
    assert (error.current, error.action) == (current, made.action)


# --- the sequencer's own limits and refusals -------------------------------------------------


def test_a_sequencer_needs_a_window_and_no_negative_count() -> None:
    with pytest.raises(ValueError, match=r"^applied must not be negative$"):
        CaseSequencer(applied=-1)
    with pytest.raises(ValueError, match=r"^window must be at least 1$"):
        CaseSequencer(window=0)
    one = CaseSequencer(Status.DELIVERED, applied=1, window=1)
    assert one.offer(update(sequence=2)) == [(update(sequence=2), Status.ACCEPTED)]
    held = refusal(lambda: one.offer(update(sequence=4, action=Action.COMPLETE)))
    assert held.code == "sequence_too_far_ahead"
    assert held.detail == (
        "case is accepted; cannot complete as update 4: only 1 updates past 2 are held"
    )


def test_a_sequencer_holds_64_updates_ahead_by_default() -> None:
    sequencer = CaseSequencer(Status.DELIVERED, applied=1)
    far = update(sequence=66, action=Action.DENY, reason="r")
    assert sequencer.offer(update(sequence=65, action=Action.DENY, reason="r")) == []
    error = refusal(lambda: sequencer.offer(far))
    assert (error.code, error.field, error.update) == ("sequence_too_far_ahead", "sequence", far)
    assert (error.current, error.action) == (Status.DELIVERED, Action.DENY)


def test_a_sequencer_for_one_case_refuses_another_cases_update() -> None:
    sequencer = CaseSequencer(Status.DELIVERED, applied=1, case_id=CASE)
    assert sequencer.case_id == CASE
    stranger = update(case_id="320000-20260302-00000000000000bb", sequence=2)
    error = refusal(lambda: sequencer.offer(stranger))
    assert (error.code, error.field, error.update) == ("wrong_case", "case_id", stranger)
    assert (error.current, error.action) == (Status.DELIVERED, Action.ACCEPT)
    assert error.detail == ("case is delivered; cannot accept: the update belongs to another case")
    assert (sequencer.status, sequencer.applied) == (Status.DELIVERED, 1)


def test_a_replayed_history_knows_its_case_and_checks_its_numbers() -> None:
    history = [update(sequence=1, action=Action.DELIVER, by=A), update(sequence=2)]
    sequencer = CaseSequencer.replay(reversed(history), case_id=CASE)
    assert (sequencer.status, sequencer.applied, sequencer.case_id) == (Status.ACCEPTED, 2, CASE)
    other = update(sequence=2, action=Action.REJECT, reason="r")
    error = refusal(lambda: sequencer.offer(other))
    assert (error.code, error.field) == ("sequence_conflict", "sequence")
    assert (error.current, error.action) == (Status.ACCEPTED, Action.REJECT)
    assert error.detail == (
        "case is accepted; cannot reject as update 2: a different update already has that number"
    )
    assert CaseSequencer.replay(history).case_id == CASE
    assert CaseSequencer.replay([], case_id=CASE).case_id == CASE
    with pytest.raises(ValueError, match=r"^case history has no update numbered 2$"):
        CaseSequencer.replay([history[0], update(sequence=3, action=Action.DENY, reason="r")])


def test_a_sequencer_learns_its_case_from_the_first_update_it_applies() -> None:
    sequencer = CaseSequencer(Status.DELIVERED, applied=1)
    assert sequencer.case_id is None
    sequencer.offer(update(sequence=2))
    assert sequencer.case_id == CASE
    stranger = update(case_id="320000-20260302-00000000000000bb", sequence=3, action=Action.DENY)
    assert refusal(lambda: sequencer.offer(stranger)).code == "wrong_case"


def test_submit_is_never_an_update_even_when_held() -> None:
    """A later-numbered submit cannot be held: it is illegal whatever comes before it."""
    sequencer = CaseSequencer(Status.DELIVERED, applied=1)
    error = refusal(lambda: sequencer.offer(update(sequence=3, action=Action.SUBMIT, by=A)))
    assert (error.code, error.field) == ("illegal_transition", "action")
    assert error.detail == "case is delivered; cannot submit"
    assert sequencer.held == 0

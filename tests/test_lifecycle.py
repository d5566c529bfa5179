"""The case lifecycle: the transition table, field rules and the per-case sequencer.

Expected moves come from ``tests.lifecycle_oracle`` (DESIGN.md §6 written out by hand),
never from the product's own table: the product is only ever the thing under test.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.cases.lifecycle import (
    CONCLUDED,
    EVALUATION_LEVELS,
    OWNERS,
    Action,
    CaseSequencer,
    CaseUpdate,
    Evaluation,
    InvalidCaseField,
    Result,
    Role,
    Status,
    TransitionRefused,
    allowed_actions,
    apply_update,
    is_concluded,
    is_terminal,
    next_status,
    open_case,
)
from node.identifiers import IdentifierError, make_certificate_id, make_credit_code
from tests import lifecycle_oracle as oracle
from tests.lifecycle_oracle import Refused

A, H = Role.ACCEPTING, Role.HANDLING
S = Status
DIGEST = "ab" * 32
CERT = make_certificate_id(
    make_credit_code(random.Random(7), division="110000") + "001", "340104", "AH0001"
)


def update(
    action: Action,
    sequence: int,
    *,
    by: Role | None = None,
    case_id: str = "C-1",
    **fields: Any,
) -> CaseUpdate:
    """A well-formed update: the side the oracle says owns it and whatever field it needs."""
    by_action: dict[Action, dict[str, Any]] = {
        Action.REJECT: {"reason": "materials are for another matter"},
        Action.DENY: {"reason": "conditions not met"},
        Action.REQUEST_SUPPLEMENT: {"reason": "household register page missing"},
        Action.COMPLETE: {"result": Result.document(DIGEST)},
        Action.EVALUATE: {"evaluation": Evaluation(5)},
    }
    needed = by_action.get(action, {})
    return CaseUpdate(
        case_id=case_id,
        sequence=sequence,
        action=action,
        by=by if by is not None else Role(oracle.SIDE_OF[action.value]),
        at=1_700_000_000.0 + sequence,
        **(needed | fields),
    )


def updates(*actions: Action, case_id: str = "C-1") -> list[CaseUpdate]:
    return [update(action, n, case_id=case_id) for n, action in enumerate(actions, start=1)]


def run(*actions: Action) -> CaseSequencer:
    sequencer = CaseSequencer()
    for item in updates(*actions):
        sequencer.offer(item)
    return sequencer


# Shortest update paths from a new case to each status.
PATHS: dict[Status, tuple[Action, ...]] = {
    S.SUBMITTED: (),
    S.DELIVERED: (Action.DELIVER,),
    S.ACCEPTED: (Action.DELIVER, Action.ACCEPT),
    S.REJECTED: (Action.DELIVER, Action.REJECT),
    S.SUPPLEMENT_REQUESTED: (Action.DELIVER, Action.ACCEPT, Action.REQUEST_SUPPLEMENT),
    S.SUPPLEMENTED: (
        Action.DELIVER,
        Action.ACCEPT,
        Action.REQUEST_SUPPLEMENT,
        Action.SUPPLEMENT,
    ),
    S.COMPLETED: (Action.DELIVER, Action.ACCEPT, Action.COMPLETE),
    S.DENIED: (Action.DELIVER, Action.ACCEPT, Action.DENY),
    S.EVALUATED: (Action.DELIVER, Action.ACCEPT, Action.COMPLETE, Action.EVALUATE),
    S.WITHDRAWN: (Action.WITHDRAW,),
}


# --- the table ------------------------------------------------------------------------------


def test_the_oracle_is_whole_and_consistent() -> None:
    """The hand-written table has a row for every status and action, a legal move only for
    the side that owns the action with its other side WRONG_SIDE, and its terminal statuses
    are exactly those with no move out (this checks the oracle's own typing, not the product)."""
    assert set(oracle.EXPECTED) == set(oracle.STATUSES)
    for status, row in oracle.EXPECTED.items():
        assert tuple(row) == oracle.ACTIONS, status
        for action, (accepting, handling) in row.items():
            owner = oracle.SIDE_OF[action]
            mine, other = (accepting, handling) if owner == "accepting" else (handling, accepting)
            if isinstance(mine, Refused):
                assert (mine, other) == (oracle.ILLEGAL, oracle.ILLEGAL), (status, action)
            else:
                assert mine in oracle.STATUSES and other == oracle.WRONG_SIDE, (status, action)
    stuck = {
        s
        for s in oracle.STATUSES
        if not any(oracle.legal_actions(s, side) for side in oracle.SIDES)
    }
    assert stuck == oracle.TERMINAL
    assert oracle.TERMINAL <= oracle.CONCLUDED


def test_product_names_the_contracts_statuses_actions_and_sides() -> None:
    """The product's statuses, actions and sides are the strings DESIGN.md §9 names."""
    assert [s.value for s in Status] == list(oracle.STATUSES)
    assert [a.value for a in Action] == list(oracle.ACTIONS)
    assert {r.value for r in Role} == set(oracle.SIDES)


def test_paths_reach_each_status_in_oracle_and_product() -> None:
    """Each status is reachable from a new case, and the product gets there by the same path."""
    for status, path in PATHS.items():
        reached = "submitted"
        for action in path:
            outcome = oracle.expected(reached, action.value, oracle.SIDE_OF[action.value])
            assert isinstance(outcome, str), (status, path)
            reached = outcome
        assert reached == status.value
        assert run(*path).status is status


def test_each_action_belongs_to_the_side_the_oracle_names() -> None:
    """Each action has the one owning side DESIGN.md gives it (deliver: the product's rule)."""
    assert {a.value: r.value for a, r in OWNERS.items()} == oracle.SIDE_OF


@pytest.mark.parametrize(
    ("current", "action", "side"),
    list(itertools.product(oracle.STATUSES, oracle.ACTIONS, oracle.SIDES)),
)
def test_every_triple_moves_as_the_oracle_says_or_is_refused_unchanged(
    current: str, action: str, side: str
) -> None:
    """Each (status, action, side) moves where the oracle says, or is refused with the
    oracle's code and changes nothing."""
    outcome = oracle.expected(current, action, side)
    status, act, role = Status(current), Action(action), Role(side)
    sequencer = run(*PATHS[status])
    before = (sequencer.status, sequencer.applied, sequencer.held)
    offered = update(act, sequencer.applied + 1, by=role)
    if not isinstance(outcome, Refused):
        assert next_status(status, act, by=role) is Status(outcome)
        assert apply_update(status, offered) is Status(outcome)
        assert sequencer.offer(offered) == [(offered, Status(outcome))]
        assert sequencer.status is Status(outcome)
        return
    with pytest.raises(TransitionRefused) as caught:
        next_status(status, act, by=role)
    assert caught.value.code == outcome.code
    assert (caught.value.current, caught.value.action) == (status, act)
    assert str(caught.value).startswith(f"case is {current}; ")
    with pytest.raises(TransitionRefused) as caught:
        apply_update(status, offered)
    assert caught.value.code == outcome.code
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(offered)
    assert caught.value.code == outcome.code
    assert caught.value.update == offered
    assert (sequencer.status, sequencer.applied, sequencer.held) == before


@pytest.mark.parametrize(
    ("current", "side"), list(itertools.product(oracle.STATUSES, oracle.SIDES))
)
def test_allowed_actions_are_the_oracles(current: str, side: str) -> None:
    """allowed_actions lists exactly what the oracle lets that side do now, in Action order."""
    assert [a.value for a in allowed_actions(Status(current), Role(side))] == (
        oracle.legal_actions(current, side)
    )


def test_refusal_message_names_status_and_action() -> None:
    """An illegal move reads 'case is <status>; cannot <action>'."""
    with pytest.raises(TransitionRefused, match=r"^case is completed; cannot accept$"):
        next_status(S.COMPLETED, Action.ACCEPT, by=H)


def test_wrong_side_names_both_sides() -> None:
    """A move by the wrong side says which side owns it."""
    with pytest.raises(TransitionRefused) as caught:
        next_status(S.ACCEPTED, Action.WITHDRAW, by=H)
    assert caught.value.field == "by"
    assert "belongs to the accepting side (收件地)" in str(caught.value)


def test_only_the_accepting_side_opens_a_case() -> None:
    """submit opens a case in submitted for the accepting side and is refused for the handler."""
    assert open_case(by=A) is S.SUBMITTED
    with pytest.raises(TransitionRefused) as caught:
        open_case(by=H)
    assert caught.value.code == "wrong_side"


def test_concluded_and_terminal_statuses() -> None:
    """Concluded means an outcome exists; terminal means nothing more can happen."""
    assert {s.value for s in Status if is_concluded(s)} == oracle.CONCLUDED
    assert {s.value for s in CONCLUDED} == oracle.CONCLUDED
    assert {s.value for s in Status if is_terminal(s)} == oracle.TERMINAL


# --- paths --------------------------------------------------------------------------------------


def test_happy_path() -> None:
    """deliver → accept → complete → evaluate ends evaluated, each step reporting its status."""
    sequencer = CaseSequencer()
    seen = [
        status
        for item in updates(Action.DELIVER, Action.ACCEPT, Action.COMPLETE, Action.EVALUATE)
        for _, status in sequencer.offer(item)
    ]
    assert seen == [S.DELIVERED, S.ACCEPTED, S.COMPLETED, S.EVALUATED]
    assert (sequencer.status, sequencer.applied) == (S.EVALUATED, 4)


def test_supplement_loop_twice_then_complete() -> None:
    """The handler may ask for supplements twice before completing."""
    sequencer = run(
        Action.DELIVER,
        Action.ACCEPT,
        Action.REQUEST_SUPPLEMENT,
        Action.SUPPLEMENT,
        Action.REQUEST_SUPPLEMENT,
        Action.SUPPLEMENT,
        Action.COMPLETE,
    )
    assert sequencer.status is S.COMPLETED


def test_unanswered_supplement_request_can_be_denied() -> None:
    """A handler may deny a case whose supplement request went unanswered."""
    assert run(*PATHS[S.SUPPLEMENT_REQUESTED], Action.DENY).status is S.DENIED


@pytest.mark.parametrize(
    "status", [Status(s) for s in oracle.STATUSES if s not in oracle.CONCLUDED]
)
def test_withdraw_before_conclusion_is_allowed(status: Status) -> None:
    """The applicant may withdraw at any point before a conclusion."""
    assert next_status(status, Action.WITHDRAW, by=A) is S.WITHDRAWN


@pytest.mark.parametrize("status", [Status(s) for s in sorted(oracle.CONCLUDED)])
def test_withdraw_after_conclusion_is_refused(status: Status) -> None:
    """Once concluded, a case cannot be withdrawn."""
    with pytest.raises(TransitionRefused) as caught:
        next_status(status, Action.WITHDRAW, by=A)
    assert caught.value.code == "illegal_transition"


def test_second_evaluation_is_refused() -> None:
    """One evaluation per case: evaluating an evaluated case is refused and changes nothing."""
    sequencer = run(*PATHS[S.EVALUATED])
    with pytest.raises(TransitionRefused, match="case is evaluated; cannot evaluate"):
        sequencer.offer(update(Action.EVALUATE, 5, evaluation=Evaluation(1)))
    assert (sequencer.status, sequencer.applied) == (S.EVALUATED, 4)


@pytest.mark.parametrize(
    "status", [Status(s) for s in oracle.STATUSES if s not in oracle.CONCLUDED]
)
def test_evaluation_before_conclusion_is_refused(status: Status) -> None:
    """A case cannot be evaluated before it is completed or denied."""
    with pytest.raises(TransitionRefused) as caught:
        apply_update(status, update(Action.EVALUATE, 9))
    assert caught.value.code == "illegal_transition"


def test_denied_case_can_be_evaluated() -> None:
    """A denied case is evaluated like a completed one."""
    assert run(*PATHS[S.DENIED], Action.EVALUATE).status is S.EVALUATED


# --- fields -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "blank", "field"),
    [
        (S.DELIVERED, Action.REJECT, {"reason": ""}, "reason"),
        (S.ACCEPTED, Action.DENY, {"reason": "   "}, "reason"),
        (S.ACCEPTED, Action.REQUEST_SUPPLEMENT, {"reason": ""}, "reason"),
        (S.ACCEPTED, Action.COMPLETE, {"result": None}, "result"),
        (S.COMPLETED, Action.EVALUATE, {"evaluation": None}, "evaluation"),
    ],
)
def test_missing_required_field_is_refused(
    status: Status, action: Action, blank: dict[str, Any], field: str
) -> None:
    """reject, deny, request_supplement need a reason; complete a result; evaluate an evaluation."""
    with pytest.raises(TransitionRefused) as caught:
        apply_update(status, update(action, 1, **blank))
    assert (caught.value.code, caught.value.field) == ("missing_field", field)
    article = "an" if field == "evaluation" else "a"
    assert str(caught.value) == f"case is {status.value}; {action.value} needs {article} {field}"


@pytest.mark.parametrize(
    ("status", "action", "extra", "field"),
    [
        (S.DELIVERED, Action.REJECT, {"result": Result.document(DIGEST)}, "result"),
        (S.ACCEPTED, Action.COMPLETE, {"evaluation": Evaluation(3)}, "evaluation"),
        (S.SUBMITTED, Action.WITHDRAW, {"evaluation": Evaluation(3)}, "evaluation"),
    ],
)
def test_field_on_the_wrong_action_is_refused(
    status: Status, action: Action, extra: dict[str, Any], field: str
) -> None:
    """A result travels only with complete and an evaluation only with evaluate."""
    with pytest.raises(TransitionRefused) as caught:
        apply_update(status, update(action, 1, **extra))
    assert (caught.value.code, caught.value.field) == ("unexpected_field", field)


def test_withdraw_and_supplement_may_carry_a_reason() -> None:
    """A reason is optional on actions that do not need one."""
    assert apply_update(S.ACCEPTED, update(Action.WITHDRAW, 1, reason="moved away")) is S.WITHDRAWN


@pytest.mark.parametrize("level", [0, 6, -1, True])
def test_evaluation_level_must_be_one_to_five(level: int) -> None:
    """An evaluation level outside 1..5 (or a bool) is refused as invalid_evaluation."""
    with pytest.raises(InvalidCaseField) as caught:
        Evaluation(level)
    assert (caught.value.code, caught.value.field) == ("invalid_evaluation", "evaluation.level")


def test_evaluation_labels_and_comment_bound() -> None:
    """Levels carry their national labels; 1 and 2 are negative; comments are bounded."""
    assert [Evaluation(n).label for n in (5, 4, 3, 2, 1)] == list(EVALUATION_LEVELS.values())
    assert [Evaluation(n).is_negative for n in (1, 2, 3)] == [True, True, False]
    assert Evaluation(3, "x" * 500).comment
    with pytest.raises(InvalidCaseField) as caught:
        Evaluation(3, "x" * 501)
    assert caught.value.field == "evaluation.comment"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "document", "document_sha256": DIGEST.upper()}, "result.document_sha256"),
        ({"kind": "document", "document_sha256": DIGEST[:-1]}, "result.document_sha256"),
        ({"kind": "document"}, "result.document_sha256"),
        (
            {"kind": "document", "document_sha256": DIGEST, "certificate_id": str(CERT)},
            "result.certificate_id",
        ),
        ({"kind": "certificate"}, "result.certificate_id"),
        ({"kind": "parcel"}, "result.kind"),
    ],
)
def test_malformed_results_are_refused(kwargs: dict[str, Any], field: str) -> None:
    """A result is a lower-case SHA-256 hex digest or a certificate id, never both or neither."""
    with pytest.raises(InvalidCaseField) as caught:
        Result(**kwargs)
    assert (caught.value.code, caught.value.field) == ("invalid_result", field)


def test_certificate_result_is_checked_and_canonical() -> None:
    """A certificate result is validated as an identifier and stored in canonical form."""
    assert Result.certificate(str(CERT).lower()) == Result.certificate(CERT)
    assert Result.certificate(CERT).certificate_id == str(CERT)
    with pytest.raises(IdentifierError) as caught:
        Result.certificate(str(CERT)[:-1] + ("0" if CERT.check != "0" else "1"))
    assert caught.value.field == "result.certificate_id"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sequence": 0}, "sequence"),
        ({"case_id": ""}, "case_id"),
        ({"at": float("nan")}, "at"),
        ({"reason": "x" * 2001}, "reason"),
    ],
)
def test_malformed_updates_are_refused(changes: dict[str, Any], field: str) -> None:
    """An update with no case, a sequence below 1, a non-finite time or a huge reason is invalid."""
    base: dict[str, Any] = {
        "case_id": "C-1",
        "sequence": 1,
        "action": Action.DELIVER,
        "by": A,
        "at": 0.0,
    }
    with pytest.raises(InvalidCaseField) as caught:
        CaseUpdate(**(base | changes))
    assert (caught.value.code, caught.value.field) == ("invalid_update", field)


# --- the sequencer ------------------------------------------------------------------------------


@st.composite
def legal_histories(draw: st.DrawFn) -> list[CaseUpdate]:
    """A random legal history of one case, numbered from 1."""
    status, actions = "submitted", list[Action]()
    while status not in oracle.TERMINAL and len(actions) < 12:
        stop = draw(st.booleans()) if actions else False
        if stop:
            break
        action, _, status = draw(st.sampled_from(oracle.legal_moves(status)))
        actions.append(Action(action))
    return updates(*actions)


@given(st.data())
def test_shuffled_delivery_ends_where_in_order_delivery_does(data: st.DataObject) -> None:
    """Whatever order a case's updates arrive in, they are applied in sequence order."""
    history = data.draw(legal_histories())
    in_order = CaseSequencer.replay(history)
    shuffled = data.draw(st.permutations(history))
    sequencer = CaseSequencer()
    applied = [pair for item in shuffled for pair in sequencer.offer(item)]
    assert [u for u, _ in applied] == history
    assert (sequencer.status, sequencer.applied, sequencer.held) == (
        in_order.status,
        len(history),
        0,
    )
    assert sequencer.take_refused() == []


@given(st.data())
def test_duplicates_change_nothing(data: st.DataObject) -> None:
    """Exact duplicates, applied or held, are ignored wherever they arrive."""
    history = data.draw(legal_histories())
    deliveries = data.draw(
        st.lists(st.sampled_from(history), min_size=len(history)).flatmap(
            lambda extra: st.permutations(history + extra)
        )
    )
    sequencer = CaseSequencer()
    applied = [pair for item in deliveries for pair in sequencer.offer(item)]
    assert [u for u, _ in applied] == history
    assert sequencer.status is CaseSequencer.replay(history).status


def test_conflicting_update_under_an_applied_number_is_refused() -> None:
    """A different update under an applied number is a sequence_conflict and changes nothing."""
    sequencer = run(Action.DELIVER, Action.ACCEPT)
    rival = update(Action.REJECT, 2)
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(rival)
    assert (caught.value.code, caught.value.field) == ("sequence_conflict", "sequence")
    assert (sequencer.status, sequencer.applied) == (S.ACCEPTED, 2)


def test_conflicting_update_under_a_held_number_is_refused() -> None:
    """The first update held under a number wins; a different one with that number is refused."""
    sequencer = CaseSequencer()
    first = update(Action.ACCEPT, 2)
    assert sequencer.offer(first) == []
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(update(Action.REJECT, 2))
    assert caught.value.code == "sequence_conflict"
    assert sequencer.offer(update(Action.DELIVER, 1))[-1] == (first, S.ACCEPTED)


def test_update_for_another_case_is_refused() -> None:
    """A sequencer serves one case; another case's update is wrong_case."""
    sequencer = run(Action.DELIVER)
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(update(Action.ACCEPT, 2, case_id="C-2"))
    assert (caught.value.code, caught.value.field) == ("wrong_case", "case_id")


def test_update_too_far_ahead_is_refused() -> None:
    """Updates are held only within a window past the last applied one, which bounds memory."""
    sequencer = CaseSequencer(window=4)
    assert sequencer.offer(update(Action.WITHDRAW, 4)) == []
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(update(Action.WITHDRAW, 5))
    assert caught.value.code == "sequence_too_far_ahead"
    assert sequencer.held == 1


def test_held_update_is_checked_for_side_and_fields_at_once() -> None:
    """An early update from the wrong side, without its field, or a submit is refused on arrival."""
    sequencer = CaseSequencer()
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(update(Action.ACCEPT, 3, by=A))
    assert caught.value.code == "wrong_side"
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(update(Action.COMPLETE, 3, result=None))
    assert caught.value.code == "missing_field"
    with pytest.raises(TransitionRefused) as caught:
        sequencer.offer(update(Action.SUBMIT, 3))
    assert caught.value.code == "illegal_transition"
    assert sequencer.held == 0


def test_held_update_found_illegal_is_dropped_and_reported() -> None:
    """A held update illegal when its turn comes is dropped, reported, and its number freed."""
    sequencer = CaseSequencer()
    bad = update(Action.COMPLETE, 2)  # a delivered case must be accepted first
    assert sequencer.offer(bad) == []
    assert sequencer.offer(update(Action.DELIVER, 1)) == [(update(Action.DELIVER, 1), S.DELIVERED)]
    [refusal] = sequencer.take_refused()
    assert (refusal.code, refusal.update) == ("illegal_transition", bad)
    assert sequencer.take_refused() == []
    assert (sequencer.status, sequencer.applied, sequencer.held) == (S.DELIVERED, 1, 0)
    assert sequencer.offer(update(Action.ACCEPT, 2))[0][1] is S.ACCEPTED


def test_replay_rebuilds_and_checks_history() -> None:
    """replay applies a stored history, after which its duplicates and conflicts are recognised."""
    history = updates(Action.DELIVER, Action.ACCEPT, Action.COMPLETE)
    sequencer = CaseSequencer.replay(reversed(history))
    assert (sequencer.status, sequencer.applied, sequencer.case_id) == (S.COMPLETED, 3, "C-1")
    assert sequencer.offer(history[1]) == []
    with pytest.raises(TransitionRefused):
        sequencer.offer(update(Action.REJECT, 2))
    with pytest.raises(ValueError, match="no update numbered 2"):
        CaseSequencer.replay([history[0], history[2]])
    with pytest.raises(TransitionRefused):
        CaseSequencer.replay(updates(Action.ACCEPT))


def test_bare_sequencer_ignores_numbers_it_never_saw() -> None:
    """A sequencer built from a status and count treats older numbers as redeliveries."""
    sequencer = CaseSequencer(S.ACCEPTED, 2)
    assert sequencer.offer(update(Action.REJECT, 1)) == []
    assert sequencer.offer(update(Action.COMPLETE, 3))[0][1] is S.COMPLETED


def test_a_history_stored_before_the_text_rule_replays() -> None:
    """A reason with a line break, taken before text was judged where it comes in, still
    replays: the lifecycle checks lengths, not characters (those are judged at the edge)."""
    stored = [
        update(Action.DELIVER, 1),
        update(Action.REJECT, 2, reason="材料不全\n请补充户口簿"),
    ]
    assert CaseSequencer.replay(stored).status is Status.REJECTED


@pytest.mark.parametrize("case_id", ["C 1", "C-1\x00", "案-1", "-C1", "C" * 65, ""])
def test_a_case_id_outside_its_charset_or_length_is_refused(case_id: str) -> None:
    """A case id is 1 to 64 ASCII letters, digits and hyphens, starting with either."""
    with pytest.raises(InvalidCaseField) as caught:
        update(Action.DELIVER, 1, case_id=case_id)
    assert (caught.value.code, caught.value.field) == ("invalid_update", "case_id")

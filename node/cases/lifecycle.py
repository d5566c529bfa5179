"""The case lifecycle: one transition table that both sides of a cross-province case obey.

A case is opened by ``submit`` at the accepting side (收件地) and is then moved only by case
updates, each numbered 1, 2, 3 … per case and signed by the side that made it. Rules kept:

1. Every move is in ``TRANSITIONS``: ``{status: {action: (next status, owning role)}}``.
   An action not listed for the current status is ``illegal_transition``; a listed action
   made by the other side is ``wrong_side``. A refusal changes nothing.
2. The accepting side (收件地) owns ``submit``, ``supplement``, ``withdraw`` and ``evaluate``
   (it faces the applicant) and ``deliver``: a case is delivered when the handling node's
   signed receipt reaches the accepting node, so the accepting node's transport records
   it. The handling side (办理地) owns ``accept``, ``reject``, ``request_supplement``,
   ``complete`` and ``deny`` (it decides).
3. ``submit`` opens a case in ``submitted`` and is never a later update: the case is
   created with the submission, and updates number from 1 after it.
4. ``reject`` (不予受理) only answers a delivered case. Once accepted (受理) the handler
   concludes with ``complete`` (办结, with a result) or ``deny`` (不予许可).
5. Supplements (补正) loop as often as the handler needs: from ``supplemented`` the handler
   may request again, complete or deny. It may also deny while a request is still open,
   which is how a case ends when the applicant never answers within the time limit;
   without it, only the applicant could close such a case.
6. The applicant may ``withdraw`` (撤回) at any point before a conclusion: from submitted,
   delivered, accepted, supplement_requested and supplemented.
7. ``evaluate`` (好差评) follows ``completed`` or ``denied``, once ("一次一评"):
   ``evaluated`` is terminal, so a second evaluation is an illegal transition.
8. ``reject``, ``deny`` and ``request_supplement`` need a reason, ``complete`` a result,
   ``evaluate`` an evaluation; a result or evaluation on any other action is refused.
9. A case id is 1 to ``MAX_CASE_ID_LENGTH`` ASCII letters, digits and hyphens, starting
   with a letter or digit (``CASE_ID``; the node makes ``310000-20260302-<16 hex>``). A
   reason's and a comment's characters are judged where they come in (``node.text``, by
   the case exchange and the receiver's checks), not here: a history stored before that
   rule replays as it was signed.
10. ``CaseSequencer`` applies one case's updates in sequence order, whatever order they
   arrive in: it holds early ones, ignores exact duplicates and refuses a different update
   under a number it already has (first one wins).

Everything here is synchronous and pure: no clock, storage or network.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from node.identifiers import CertificateId, parse_certificate_id


class Status(enum.Enum):
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SUPPLEMENT_REQUESTED = "supplement_requested"
    SUPPLEMENTED = "supplemented"
    COMPLETED = "completed"
    DENIED = "denied"
    EVALUATED = "evaluated"
    WITHDRAWN = "withdrawn"


class Action(enum.Enum):
    SUBMIT = "submit"
    DELIVER = "deliver"
    ACCEPT = "accept"
    REJECT = "reject"
    REQUEST_SUPPLEMENT = "request_supplement"
    SUPPLEMENT = "supplement"
    COMPLETE = "complete"
    DENY = "deny"
    WITHDRAW = "withdraw"
    EVALUATE = "evaluate"


class Role(enum.Enum):
    ACCEPTING = "accepting"
    """收件地: takes the application, checks identity and materials, faces the applicant."""
    HANDLING = "handling"
    """办理地: decides the matter and returns the result."""


_LABELS: Final = {
    Role.ACCEPTING: "accepting side (收件地)",
    Role.HANDLING: "handling side (办理地)",
}

_A, _H = Role.ACCEPTING, Role.HANDLING

INITIAL_STATUS: Final = Status.SUBMITTED
"""The status ``submit`` opens a case in (rule 3)."""

TRANSITIONS: Final[Mapping[Status, Mapping[Action, tuple[Status, Role]]]] = {
    Status.SUBMITTED: {
        Action.DELIVER: (Status.DELIVERED, _A),
        Action.WITHDRAW: (Status.WITHDRAWN, _A),
    },
    Status.DELIVERED: {
        Action.ACCEPT: (Status.ACCEPTED, _H),
        Action.REJECT: (Status.REJECTED, _H),
        Action.WITHDRAW: (Status.WITHDRAWN, _A),
    },
    Status.ACCEPTED: {
        Action.REQUEST_SUPPLEMENT: (Status.SUPPLEMENT_REQUESTED, _H),
        Action.COMPLETE: (Status.COMPLETED, _H),
        Action.DENY: (Status.DENIED, _H),
        Action.WITHDRAW: (Status.WITHDRAWN, _A),
    },
    Status.SUPPLEMENT_REQUESTED: {
        Action.SUPPLEMENT: (Status.SUPPLEMENTED, _A),
        Action.DENY: (Status.DENIED, _H),
        Action.WITHDRAW: (Status.WITHDRAWN, _A),
    },
    Status.SUPPLEMENTED: {
        Action.REQUEST_SUPPLEMENT: (Status.SUPPLEMENT_REQUESTED, _H),
        Action.COMPLETE: (Status.COMPLETED, _H),
        Action.DENY: (Status.DENIED, _H),
        Action.WITHDRAW: (Status.WITHDRAWN, _A),
    },
    Status.COMPLETED: {Action.EVALUATE: (Status.EVALUATED, _A)},
    Status.DENIED: {Action.EVALUATE: (Status.EVALUATED, _A)},
    Status.REJECTED: {},
    Status.WITHDRAWN: {},
    Status.EVALUATED: {},
}

OWNERS: Final[Mapping[Action, Role]] = {
    Action.SUBMIT: _A,
    **{action: role for moves in TRANSITIONS.values() for action, (_, role) in moves.items()},
}
"""The one side that may take each action (rule 2)."""

_UPDATE_ACTIONS: Final[frozenset[Action]] = frozenset(
    action for moves in TRANSITIONS.values() for action in moves
)

CONCLUDED: Final[frozenset[Status]] = frozenset(
    {Status.COMPLETED, Status.DENIED, Status.REJECTED, Status.WITHDRAWN, Status.EVALUATED}
)

REQUIRED_FIELD: Final[Mapping[Action, Literal["reason", "result", "evaluation"]]] = {
    Action.REJECT: "reason",
    Action.DENY: "reason",
    Action.REQUEST_SUPPLEMENT: "reason",
    Action.COMPLETE: "result",
    Action.EVALUATE: "evaluation",
}

EVALUATION_LEVELS: Final = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}

MAX_REASON_LENGTH: Final = 2000
MAX_COMMENT_LENGTH: Final = 500
MAX_CASE_ID_LENGTH: Final = 64
CASE_ID: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9-]{{0,{MAX_CASE_ID_LENGTH - 1}}}")
"""What a case id may be (rule 9); ``is_case_id`` asks."""
DEFAULT_WINDOW: Final = 64
"""How far ahead of the last applied update a sequencer holds updates (bounds memory)."""

_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")

RefusalCode = Literal[
    "illegal_transition",
    "wrong_side",
    "missing_field",
    "unexpected_field",
    "sequence_conflict",
    "sequence_too_far_ahead",
    "wrong_case",
]
InvalidFieldCode = Literal["invalid_update", "invalid_result", "invalid_evaluation"]


class TransitionRefused(Exception):
    """A case update was refused; the case is unchanged.

    ``code`` is stable and machine-readable, ``field`` names the part of the update at
    fault, and ``str(error)`` names the current status and the attempted action.
    """

    def __init__(
        self,
        code: RefusalCode,
        current: Status,
        action: Action,
        detail: str,
        *,
        field: str = "action",
    ) -> None:
        super().__init__(detail)
        self.code: RefusalCode = code
        self.current = current
        self.action = action
        self.detail = detail
        self.field = field
        self.update: CaseUpdate | None = None
        """The refused update, once a sequencer has judged it (set by ``offer``)."""


class InvalidCaseField(ValueError):
    """A case update, result or evaluation is malformed, whatever the case's status."""

    def __init__(self, code: InvalidFieldCode, detail: str, *, field: str) -> None:
        super().__init__(detail)
        self.code: InvalidFieldCode = code
        self.field = field
        self.detail = detail


def is_case_id(text: str) -> bool:
    return CASE_ID.fullmatch(text) is not None


# --- the table's questions ------------------------------------------------------------------


def next_status(current: Status, action: Action, *, by: Role) -> Status:
    """The status after ``by`` takes ``action`` on a case in ``current``, or a refusal."""
    moves = TRANSITIONS[current]
    if action not in moves:
        raise _illegal(current, action)
    after, owner = moves[action]
    if by is not owner:
        raise _wrong_side(current, action, by)
    return after


def allowed_actions(current: Status, role: Role) -> list[Action]:
    """The actions ``role`` may take on a case in ``current``, in ``Action`` order."""
    moves = TRANSITIONS[current]
    return [action for action in Action if action in moves and moves[action][1] is role]


def is_concluded(status: Status) -> bool:
    """Whether the case has an outcome (completed, denied, rejected, withdrawn, evaluated)."""
    return status in CONCLUDED


def is_terminal(status: Status) -> bool:
    """Whether nothing can happen to the case any more."""
    return not TRANSITIONS[status]


def open_case(*, by: Role) -> Status:
    """The status of a new case; only the accepting side submits (rule 3)."""
    if by is not OWNERS[Action.SUBMIT]:
        raise _wrong_side(INITIAL_STATUS, Action.SUBMIT, by)
    return INITIAL_STATUS


def _illegal(current: Status, action: Action) -> TransitionRefused:
    return TransitionRefused(
        "illegal_transition", current, action, f"case is {current.value}; cannot {action.value}"
    )


def _wrong_side(current: Status, action: Action, by: Role) -> TransitionRefused:
    return TransitionRefused(
        "wrong_side",
        current,
        action,
        f"case is {current.value}; the {_LABELS[by]} cannot {action.value}: "
        f"{action.value} belongs to the {_LABELS[OWNERS[action]]}",
        field="by",
    )


# --- what an update carries -----------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The applicant's rating of a case (好差评), one per case."""

    level: int
    """1 (非常不满意) … 5 (非常满意), as provincial reports carry it."""
    comment: str = ""
    """Optional free text, at most ``MAX_COMMENT_LENGTH`` characters."""

    def __post_init__(self) -> None:
        # bool is an int subclass; True is not a rating.
        if type(self.level) is not int or self.level not in EVALUATION_LEVELS:
            raise InvalidCaseField(
                "invalid_evaluation",
                "evaluation.level must be a whole number from 1 (非常不满意) to 5 (非常满意)",
                field="evaluation.level",
            )
        if not isinstance(self.comment, str) or len(self.comment) > MAX_COMMENT_LENGTH:
            raise InvalidCaseField(
                "invalid_evaluation",
                f"evaluation.comment must be text of at most {MAX_COMMENT_LENGTH} characters",
                field="evaluation.comment",
            )

    @property
    def label(self) -> str:
        return EVALUATION_LEVELS[self.level]

    @property
    def is_negative(self) -> bool:
        """不满意 and 非常不满意 must be answered and rectified (国办发〔2019〕51号)."""
        return self.level <= 2


@dataclass(frozen=True)
class Result:
    """What a completed case produced: a document (by digest) or an issued certificate."""

    kind: Literal["document", "certificate"]
    document_sha256: str | None = None
    """Lower-case hex SHA-256 of the result document, for ``kind="document"``."""
    certificate_id: str | None = None
    """The issued certificate's identifier (canonical form), for ``kind="certificate"``."""

    def __post_init__(self) -> None:
        if self.kind == "document":
            if self.certificate_id is not None:
                raise _result_error(
                    "result.certificate_id", "a document result has no certificate_id"
                )
            if not isinstance(self.document_sha256, str) or not _SHA256_HEX.fullmatch(
                self.document_sha256
            ):
                raise _result_error(
                    "result.document_sha256",
                    "result.document_sha256 must be 64 lower-case hexadecimal characters",
                )
        elif self.kind == "certificate":
            if self.document_sha256 is not None:
                raise _result_error(
                    "result.document_sha256", "a certificate result has no document_sha256"
                )
            if self.certificate_id is None:
                raise _result_error(
                    "result.certificate_id", "a certificate result needs result.certificate_id"
                )
            # Raises IdentifierError (code invalid_certificate_id) naming the field.
            parsed = parse_certificate_id(self.certificate_id, field="result.certificate_id")
            # Stored canonical so that equal results compare equal.
            object.__setattr__(self, "certificate_id", str(parsed))
        else:
            raise _result_error("result.kind", "result.kind must be 'document' or 'certificate'")

    @classmethod
    def document(cls, sha256: str) -> Result:
        return cls("document", document_sha256=sha256)

    @classmethod
    def certificate(cls, certificate_id: str | CertificateId) -> Result:
        return cls("certificate", certificate_id=str(certificate_id))


def _result_error(field: str, detail: str) -> InvalidCaseField:
    return InvalidCaseField("invalid_result", detail, field=field)


@dataclass(frozen=True)
class CaseUpdate:
    """One signed status change of one case; both sides number them 1, 2, 3 … per case."""

    case_id: str
    sequence: int
    """1-based position in the case's history."""
    action: Action
    by: Role
    """The side that made the update."""
    at: float
    """When the side made it, seconds since the epoch (its own clock)."""
    reason: str = ""
    """Why: needed for reject, deny and request_supplement; allowed on any action."""
    result: Result | None = None
    """Only on complete, and required there."""
    evaluation: Evaluation | None = None
    """Only on evaluate, and required there."""

    def __post_init__(self) -> None:
        if not isinstance(self.case_id, str) or not is_case_id(self.case_id):
            raise _update_error(
                "case_id",
                f"case_id must be 1 to {MAX_CASE_ID_LENGTH} ASCII letters, digits and hyphens, "
                "starting with a letter or digit",
            )
        if type(self.sequence) is not int or self.sequence < 1:
            raise _update_error("sequence", "sequence must be a whole number from 1")
        if not isinstance(self.action, Action):
            raise _update_error("action", "action must be an Action")
        if not isinstance(self.by, Role):
            raise _update_error("by", "by must be a Role")
        if (
            isinstance(self.at, bool)
            or not isinstance(self.at, int | float)
            or not math.isfinite(self.at)
        ):
            raise _update_error("at", "at must be a finite number of seconds")
        if not isinstance(self.reason, str) or len(self.reason) > MAX_REASON_LENGTH:
            raise _update_error(
                "reason", f"reason must be text of at most {MAX_REASON_LENGTH} characters"
            )
        if self.result is not None and not isinstance(self.result, Result):
            raise _update_error("result", "result must be a Result")
        if self.evaluation is not None and not isinstance(self.evaluation, Evaluation):
            raise _update_error("evaluation", "evaluation must be an Evaluation")


def _update_error(field: str, detail: str) -> InvalidCaseField:
    return InvalidCaseField("invalid_update", detail, field=field)


_A_FIELD: Final = {"reason": "a reason", "result": "a result", "evaluation": "an evaluation"}


def check_fields(current: Status, update: CaseUpdate) -> None:
    """Refuse an update that lacks the field its action needs or carries one it may not (rule 8).

    ``current`` only words the refusal; the rule does not depend on it.
    """
    action = update.action
    needed = REQUIRED_FIELD.get(action)
    present = {
        "reason": bool(update.reason.strip()),
        "result": update.result is not None,
        "evaluation": update.evaluation is not None,
    }
    if needed is not None and not present[needed]:
        raise TransitionRefused(
            "missing_field",
            current,
            action,
            f"case is {current.value}; {action.value} needs {_A_FIELD[needed]}",
            field=needed,
        )
    for name, owner in (("result", Action.COMPLETE), ("evaluation", Action.EVALUATE)):
        if present[name] and action is not owner:
            raise TransitionRefused(
                "unexpected_field",
                current,
                action,
                f"case is {current.value}; {action.value} cannot carry {_A_FIELD[name]} "
                f"(only {owner.value} does)",
                field=name,
            )


def apply_update(current: Status, update: CaseUpdate) -> Status:
    """The status after ``update`` on a case in ``current``: table, side, then fields."""
    after = next_status(current, update.action, by=update.by)
    check_fields(current, update)
    return after


# --- ordering -------------------------------------------------------------------------------


class CaseSequencer:
    """Applies one case's updates in sequence order, whatever order they arrive in.

    ``offer`` returns the updates that became applicable, each with the status it led to:
    nothing for an update that must wait for an earlier one (it is held) or for an exact
    duplicate. It raises ``TransitionRefused`` for an update that can be judged now and is
    wrong, leaving the sequencer unchanged: another case's update (``wrong_case``), a
    different update under a number already applied or held (``sequence_conflict``, first
    one wins), one too far ahead (``sequence_too_far_ahead``), and one that is next in line
    and illegal. A held update is checked for its side and fields when offered; whether its
    transition is legal can only be known when its turn comes. If it then is not, it is
    dropped (so a correct update may still take its number), draining stops there, and the
    refusal waits in ``take_refused()``.

    A sequencer built from a bare ``status`` and ``applied`` count cannot compare updates
    numbered up to ``applied`` with what was applied, and ignores them as redeliveries;
    build it with ``CaseSequencer.replay(history)`` to have those checked too.
    """

    def __init__(
        self,
        status: Status = INITIAL_STATUS,
        applied: int = 0,
        *,
        case_id: str | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if applied < 0:
            raise ValueError("applied must not be negative")
        if window < 1:
            raise ValueError("window must be at least 1")
        self._status = status
        self._applied = applied
        self._case_id = case_id
        self._window = window
        self._seen: dict[int, CaseUpdate] = {}
        self._held: dict[int, CaseUpdate] = {}
        self._refused: list[TransitionRefused] = []

    @classmethod
    def replay(cls, history: Iterable[CaseUpdate], *, case_id: str | None = None) -> CaseSequencer:
        """A sequencer that has applied ``history`` (numbered 1…n without gaps), checked again."""
        sequencer = cls(case_id=case_id)
        for update in sorted(history, key=lambda u: u.sequence):
            sequencer.offer(update)
        for refusal in sequencer.take_refused():
            raise refusal
        if sequencer.held:
            missing = sequencer.applied + 1
            raise ValueError(f"case history has no update numbered {missing}")
        return sequencer

    @property
    def status(self) -> Status:
        return self._status

    @property
    def applied(self) -> int:
        """The sequence number of the last applied update (0 before any)."""
        return self._applied

    @property
    def held(self) -> int:
        """How many updates wait for an earlier one."""
        return len(self._held)

    @property
    def case_id(self) -> str | None:
        return self._case_id

    def take_refused(self) -> list[TransitionRefused]:
        """Refusals of held updates found illegal when their turn came (and forget them)."""
        refused, self._refused = self._refused, []
        return refused

    def offer(self, update: CaseUpdate) -> list[tuple[CaseUpdate, Status]]:
        try:
            return self._offer(update)
        except TransitionRefused as refusal:
            refusal.update = update
            raise

    def _offer(self, update: CaseUpdate) -> list[tuple[CaseUpdate, Status]]:
        # Every check comes before the first change, so a refusal leaves the sequencer as it was.
        if self._case_id is not None and update.case_id != self._case_id:
            raise TransitionRefused(
                "wrong_case",
                self._status,
                update.action,
                f"case is {self._status.value}; cannot {update.action.value}: "
                "the update belongs to another case",
                field="case_id",
            )
        sequence = update.sequence
        if sequence <= self._applied:
            # An update from before this sequencer's history cannot be compared: see class doc.
            self._refuse_if_different(self._seen.get(sequence), update)
            return []
        if sequence in self._held:
            self._refuse_if_different(self._held[sequence], update)
            return []
        if sequence > self._applied + self._window:
            raise TransitionRefused(
                "sequence_too_far_ahead",
                self._status,
                update.action,
                f"case is {self._status.value}; cannot {update.action.value} as update "
                f"{sequence}: only {self._window} updates past {self._applied} are held",
                field="sequence",
            )
        if sequence > self._applied + 1:
            if update.action not in _UPDATE_ACTIONS:
                raise _illegal(self._status, update.action)  # never legal as an update
            if update.by is not OWNERS[update.action]:
                raise _wrong_side(self._status, update.action, update.by)
            check_fields(self._status, update)
            self._held[sequence] = update
            self._case_id = update.case_id
            return []

        applied = [self._commit(update, apply_update(self._status, update))]
        self._case_id = update.case_id
        while (following := self._held.pop(self._applied + 1, None)) is not None:
            try:
                after = apply_update(self._status, following)
            except TransitionRefused as refusal:
                refusal.update = following
                self._refused.append(refusal)
                break
            applied.append(self._commit(following, after))
        return applied

    def _commit(self, update: CaseUpdate, after: Status) -> tuple[CaseUpdate, Status]:
        self._seen[update.sequence] = update
        self._applied = update.sequence
        self._status = after
        return update, after

    def _refuse_if_different(self, known: CaseUpdate | None, update: CaseUpdate) -> None:
        if known is None or known == update:
            return
        raise TransitionRefused(
            "sequence_conflict",
            self._status,
            update.action,
            f"case is {self._status.value}; cannot {update.action.value} as update "
            f"{update.sequence}: a different update already has that number",
            field="sequence",
        )

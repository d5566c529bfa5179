"""The case lifecycle as DESIGN.md says it, written out by hand: the tests' answer key.

The product keeps its rules in ``node.cases.lifecycle.TRANSITIONS``. A test that reads its
expectations from there grades the product with its own answer key: a wrong move planted in
that table moves the expectation with it, and every test stays green. So this module imports
nothing from ``node`` and derives nothing from it. Statuses, actions and sides are the plain
strings of the REST contract (DESIGN.md §9), so a renamed status fails the tests too.

``EXPECTED`` holds, for every status and every action, what happens when each side takes it:
the status the case moves to, or the refusal (``ILLEGAL``: no side may do this now;
``WRONG_SIDE``: only the other side may). Where DESIGN.md §6 is silent and the product has a
rule, the row says "DESIGN is silent" and names the rule of ``node/cases/lifecycle.py`` it
writes down, so a reader can tell the contract from the product's choice.

Sources quoted below:
- §1: "The case travels to the handler; every status change (accepted 受理, supplement
  requested 补正, completed 办结 with its result, rejected) travels back; the applicant's
  evaluation (好差评, "one rating per case") travels to the handler at the end."
- §6: "submitted → delivered → accepted | rejected; accepted → supplement_requested ⇄
  supplemented; accepted → completed (with a result …) | denied; completed/denied →
  evaluated; withdrawn before conclusion. … one [evaluation] per case. … illegal transitions
  are refused with a fault."
- §9: the ten statuses, and the actions ``POST /v1/cases/{id}/events`` takes: "accept",
  "reject", "request_supplement", "supplement", "complete", "deny", "withdraw", "evaluate".
- DOMAIN.md, 异地代收代办: "the accepting window (收件地) does the formal review and identity
  check and forwards the materials; the handling department (办理地) decides and returns the
  result".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Refused:
    """A move the case refuses; it changes nothing. ``code`` is the fault's code."""

    code: str


ILLEGAL: Final = Refused("illegal_transition")
"""§6 "illegal transitions are refused with a fault": no side may take this action now."""
WRONG_SIDE: Final = Refused("wrong_side")
"""The action is legal now, but only for the other side (see ``SIDE_OF``)."""

Outcome = str | Refused
"""A status (the case moves there) or a refusal."""

STATUSES: Final = (
    "submitted",
    "delivered",
    "accepted",
    "rejected",
    "supplement_requested",
    "supplemented",
    "completed",
    "denied",
    "evaluated",
    "withdrawn",
)
"""§9 "Statuses of a case", in its order."""

ACTIONS: Final = (
    "submit",
    "deliver",
    "accept",
    "reject",
    "request_supplement",
    "supplement",
    "complete",
    "deny",
    "withdraw",
    "evaluate",
)
"""Every action a case history may name: the eight of §9's events, after ``submit`` (which
opens a case, §9 ``POST /v1/cases``) and ``deliver`` (§6 "submitted → delivered")."""

REST_ACTIONS: Final = ACTIONS[2:]
"""§9: the actions ``POST /v1/cases/{id}/events`` takes; the others are not a platform's to
send (a case is submitted by ``POST /v1/cases`` and delivered by the handler's receipt)."""

SIDES: Final = ("accepting", "handling")
"""§6 "the accepting province is 收件地, the handling province 办理地"; the ``role`` of §9."""

SIDE_OF: Final = {
    # §9 POST /v1/cases at the accepting node; README: "submitted at the accepting node".
    "submit": "accepting",
    # DESIGN is silent on who records delivery. Product rule 2: the handler's signed
    # receipt reaching the accepting node is the delivery, so the accepting side owns it.
    "deliver": "accepting",
    # §1 "every status change (accepted, supplement requested, completed, rejected) travels
    # back"; DOMAIN "the handling department decides and returns the result": the handler.
    "accept": "handling",
    "reject": "handling",
    "request_supplement": "handling",
    "complete": "handling",
    # §6 "accepted → completed | denied": denial is the handler's decision like completion.
    "deny": "handling",
    # The applicant's own moves, made where the applicant applied (收件地 faces the
    # applicant; §1 "the applicant's evaluation travels to the handler").
    "supplement": "accepting",
    "withdraw": "accepting",
    "evaluate": "accepting",
}
"""The one side that may take each action, where the table allows it at all."""

CONCLUDED: Final = frozenset({"completed", "denied", "rejected", "withdrawn", "evaluated"})
"""§6 "withdrawn before conclusion": the outcomes a case can have (and evaluation after)."""

TERMINAL: Final = frozenset({"rejected", "withdrawn", "evaluated"})
"""Nothing can happen to the case any more: §6 gives no move out of these."""

# Short names for the table's cells, so each row reads as one line.
X = ILLEGAL
W = WRONG_SIDE

# (status, action) -> (outcome when the accepting side takes it, when the handling side does)
NO_MOVE: Final[dict[str, tuple[Outcome, Outcome]]] = {action: (X, X) for action in ACTIONS}
"""A status nothing leaves: every action illegal for either side."""

EXPECTED: Final[dict[str, dict[str, tuple[Outcome, Outcome]]]] = {
    "submitted": {
        # DESIGN is silent on a second submit; product rule 3: submit opens the case and is
        # never a later update, so it is illegal in every status, for either side.
        "submit": (X, X),
        # §6 "submitted → delivered".
        "deliver": ("delivered", W),
        # §6 "delivered → accepted | rejected": not before the handler has the case.
        "accept": (X, X),
        "reject": (X, X),
        "request_supplement": (X, X),
        "supplement": (X, X),
        "complete": (X, X),
        "deny": (X, X),
        # §6 "withdrawn before conclusion".
        "withdraw": ("withdrawn", W),
        # §6 "completed/denied → evaluated" only.
        "evaluate": (X, X),
    },
    "delivered": {
        "submit": (X, X),
        "deliver": (X, X),
        # §6 "delivered → accepted | rejected".
        "accept": (W, "accepted"),
        "reject": (W, "rejected"),
        # §6: supplements, completion and denial come after acceptance.
        "request_supplement": (X, X),
        "supplement": (X, X),
        "complete": (X, X),
        "deny": (X, X),
        # §6 "withdrawn before conclusion".
        "withdraw": ("withdrawn", W),
        "evaluate": (X, X),
    },
    "accepted": {
        "submit": (X, X),
        "deliver": (X, X),
        "accept": (X, X),
        # §6: rejection (不予受理) answers a delivered case only; once accepted it is denied.
        "reject": (X, X),
        # §6 "accepted → supplement_requested".
        "request_supplement": (W, "supplement_requested"),
        # §6: a supplement answers a request; none is open.
        "supplement": (X, X),
        # §6 "accepted → completed | denied".
        "complete": (W, "completed"),
        "deny": (W, "denied"),
        # §6 "withdrawn before conclusion".
        "withdraw": ("withdrawn", W),
        "evaluate": (X, X),
    },
    "supplement_requested": {
        "submit": (X, X),
        "deliver": (X, X),
        "accept": (X, X),
        "reject": (X, X),
        # §6 ⇄: one request is open; the next comes after the supplement.
        "request_supplement": (X, X),
        # §6 "supplement_requested ⇄ supplemented".
        "supplement": ("supplemented", W),
        # §6 gives no completion while a request is open (the planted bug is here).
        "complete": (X, X),
        # DESIGN is silent. Product rule 5: the handler may deny while a request is open,
        # which is how a case ends when the applicant never answers in time.
        "deny": (W, "denied"),
        # §6 "withdrawn before conclusion".
        "withdraw": ("withdrawn", W),
        "evaluate": (X, X),
    },
    "supplemented": {
        "submit": (X, X),
        "deliver": (X, X),
        "accept": (X, X),
        "reject": (X, X),
        # §6 "supplement_requested ⇄ supplemented": the handler may ask again.
        "request_supplement": (W, "supplement_requested"),
        # A supplement answers one request; the next needs a new request.
        "supplement": (X, X),
        # DESIGN is silent on concluding from supplemented (it says "accepted → completed |
        # denied"). Product rule 5: a supplemented case is still an accepted one, and the
        # handler concludes it; without this a supplement loop could never end in a result.
        "complete": (W, "completed"),
        "deny": (W, "denied"),
        # §6 "withdrawn before conclusion".
        "withdraw": ("withdrawn", W),
        "evaluate": (X, X),
    },
    "completed": {
        "submit": (X, X),
        "deliver": (X, X),
        "accept": (X, X),
        "reject": (X, X),
        "request_supplement": (X, X),
        "supplement": (X, X),
        # Concluded: no second conclusion.
        "complete": (X, X),
        "deny": (X, X),
        # §6 "withdrawn before conclusion": not after it.
        "withdraw": (X, X),
        # §6 "completed/denied → evaluated".
        "evaluate": ("evaluated", W),
    },
    "denied": {
        "submit": (X, X),
        "deliver": (X, X),
        "accept": (X, X),
        "reject": (X, X),
        "request_supplement": (X, X),
        "supplement": (X, X),
        "complete": (X, X),
        "deny": (X, X),
        "withdraw": (X, X),
        # §6 "completed/denied → evaluated".
        "evaluate": ("evaluated", W),
    },
    "rejected": {
        # Terminal: §6 gives no move out of rejected, not even an evaluation
        # ("completed/denied → evaluated" names only those two).
        **NO_MOVE,
    },
    "evaluated": {
        # Terminal: §6 "one per case" (一次一评), so a second evaluation is illegal.
        **NO_MOVE,
    },
    "withdrawn": {
        # Terminal: the applicant took the case back.
        **NO_MOVE,
    },
}


def expected(status: str, action: str, side: str) -> Outcome:
    """What happens when ``side`` takes ``action`` on a case in ``status``."""
    accepting, handling = EXPECTED[status][action]
    return accepting if side == "accepting" else handling


def legal_actions(status: str, side: str, among: tuple[str, ...] = ACTIONS) -> list[str]:
    """The actions of ``among`` that ``side`` may take in ``status``, in ``among``'s order."""
    return [a for a in among if not isinstance(expected(status, a, side), Refused)]


def legal_moves(status: str, among: tuple[str, ...] = ACTIONS) -> list[tuple[str, str, str]]:
    """Every ``(action, side, next status)`` the table allows in ``status``."""
    return [
        (action, side, outcome)
        for action in among
        for side in SIDES
        if isinstance(outcome := expected(status, action, side), str)
    ]

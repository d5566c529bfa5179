"""Random action sequences against two real nodes, checked step by step against the oracle.

Two ``yrd node run`` processes, Shanghai accepting (收件地) and Jiangsu handling (办理地),
talk real mutual-TLS gRPC; the test is their province platforms, on each node's REST API.
Hypothesis drives a ``RuleBasedStateMachine`` whose model is nothing but
``tests.lifecycle_oracle`` (DESIGN.md §6 written out by hand): each example submits a new
case, then takes moves, some drawn from what the oracle allows now and some from every
action either side might send. After each move both nodes must show what the oracle says:
the same status, the same signed history, the actions each side may still take; and a
refused move must have changed nothing at either node.

The nodes are started once for the test and serve every example (a new case each), so the
run is not dominated by start-up. Waiting for the other side is polling its state, never a
sleep.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests import lifecycle_oracle as oracle
from tests.cases import case_body, matter_of
from tests.lifecycle_oracle import Refused
from tests.nodes import make_mesh
from tests.processes import authorized, http, process

pytestmark = pytest.mark.slow

BUDGET_SECONDS = 60.0
"""How long a change may take to reach the other node. Generous on purpose: the machine has
two cores and other suites run beside this one; a healthy link takes milliseconds."""

REFUSAL_STATUS = {"illegal_transition": 409, "wrong_side": 403}
"""The HTTP status of each refusal. DESIGN §9 asks for a problem document naming the field
but gives no status; these are the API's rule (``node/api/cases.py``): 409 for what the
case's status does not allow, 403 for an action that belongs to the other side."""

SHOWN = ("status", "sequence", "history", "requests", "evaluation_level", "concluded_at")
"""What a move changes in a case's view, and a refused move must leave as it was."""

DOCUMENT = "cd" * 32
SEEDS = itertools.count(1)


@dataclass(frozen=True)
class TwoNodes:
    """The running pair: the mesh folder (for tokens) and each side's REST base URL."""

    mesh: Path
    url: dict[str, str]
    """Side (``accepting`` / ``handling``) -> base URL."""
    matter_code: str


def call(nodes: TwoNodes, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """One REST call with the narrowest token the route admits; the status and JSON body."""
    data = None if body is None else json.dumps(body).encode()
    request = authorized(nodes.mesh, url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    """Poll another process's state until ``condition`` holds (within ``BUDGET_SECONDS``)."""
    deadline = time.monotonic() + BUDGET_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {BUDGET_SECONDS:.0f} s: {what}")
        time.sleep(0.02)


def event_body(action: str, level: int) -> dict[str, Any]:
    """A well-formed event for ``action``: the reason, result or evaluation it needs."""
    needs: dict[str, dict[str, Any]] = {
        "reject": {"reason": "不属于本地受理范围"},
        "deny": {"reason": "不符合办理条件"},
        "request_supplement": {"reason": "缺少户口簿本人页"},
        "complete": {"result": {"kind": "document", "document_sha256": DOCUMENT}},
        "evaluate": {"level": level, "comment": "办事快"},
    }
    return {"action": action, **needs.get(action, {})}


class CaseAcrossTwoNodes(RuleBasedStateMachine):
    """One case, moved by both sides' platforms; the model is the oracle's status."""

    nodes: ClassVar[TwoNodes]

    def __init__(self) -> None:
        super().__init__()
        self.case_id = ""
        self.status = "submitted"
        self.history: list[tuple[str, str]] = []
        """The oracle's history: ``(action, side)`` per applied update, in order."""
        self.requests = 0
        """Moves the accepting side asked the handler for (each must end ``applied``)."""
        self.level: int | None = None
        self.probed: set[str] = set()
        """Statuses in which every refused move has been tried (once per status and case)."""

    # -- helpers -------------------------------------------------------------------------

    def view(self, side: str) -> dict[str, Any]:
        status, shown = call(self.nodes, "GET", f"{self.nodes.url[side]}/v1/cases/{self.case_id}")
        assert status == 200, shown
        assert isinstance(shown, dict)
        return shown

    def views(self) -> dict[str, dict[str, Any]]:
        return {side: self.view(side) for side in oracle.SIDES}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Both nodes' ``SHOWN`` parts of the case."""
        return {side: {k: view[k] for k in SHOWN} for side, view in self.views().items()}

    def settled(self) -> bool:
        """Both nodes hold as many updates as the model, and no request awaits its answer."""
        held: dict[str, Any] = {}
        for side in oracle.SIDES:
            url = f"{self.nodes.url[side]}/v1/cases/{self.case_id}"
            status, held[side] = call(self.nodes, "GET", url)
            if status == 404:  # the submission is still on its way to the handler
                return False
            assert status == 200, held[side]
        return all(v["sequence"] == len(self.history) for v in held.values()) and not any(
            r["state"] == "pending" for r in held["accepting"]["requests"]
        )

    def open_moves(self) -> list[tuple[str, str, str]]:
        moves = oracle.legal_moves(self.status, oracle.REST_ACTIONS)
        return [m for m in moves if m[2] not in oracle.TERMINAL]

    def post(self, side: str, body: dict[str, Any]) -> tuple[int, Any]:
        url = f"{self.nodes.url[side]}/v1/cases/{self.case_id}/events"
        return call(self.nodes, "POST", url, body)

    def refuse(self, action: str, side: str, level: int, outcome: Refused) -> None:
        """``side`` sends ``action``, which the oracle refuses: the answer names the refusal."""
        status, answer = self.post(side, event_body(action, level))
        assert (status, answer.get("code")) == (REFUSAL_STATUS[outcome.code], outcome.code), (
            f"{side} {action} on a {self.status} case: expected {outcome.code}, got "
            f"{status} {answer}"
        )

    def move(self, action: str, side: str, level: int) -> None:
        """``side``'s platform sends ``action``; the answer and both nodes must be the oracle's."""
        outcome = oracle.expected(self.status, action, side)
        if isinstance(outcome, Refused):
            before = self.snapshot()
            self.refuse(action, side, level, outcome)
            # The refusal is judged in the transaction that would have stored the update
            # (handler) or the request (accepting side) and queued its message: an unchanged
            # case at the acting node means nothing was sent, so the other stays as it was.
            assert self.snapshot() == before, f"refused {side} {action} changed the case"
            return
        status, answer = self.post(side, event_body(action, level))
        # The handler's own events apply at once; the accepting side's are requests to the
        # handler (README "Cases and certificates"), answered later.
        assert status == (202 if side == "accepting" else 200), (
            f"{side} {action} on a {self.status} case: expected it to move to {outcome}, got "
            f"{status} {answer}"
        )
        if side == "handling":
            assert answer["status"] == outcome, answer
        else:
            assert answer["status"] == self.status and answer["request_id"], answer
            self.requests += 1
        self.status = outcome
        self.history.append((action, side))
        if action == "evaluate":
            self.level = level
        wait_for(f"both nodes hold {self.case_id} after {side} {action}", self.settled)
        self.refuse_the_rest()

    def refuse_the_rest(self) -> None:
        """On reaching a status, try every move the oracle refuses there, once: random draws
        alone seldom hit the one wrong move a bad table lets through (the issue's planted
        supplement_requested → complete was missed that way)."""
        if self.status in self.probed:
            return
        self.probed.add(self.status)
        before = self.snapshot()
        for action in oracle.REST_ACTIONS:
            for side in oracle.SIDES:
                outcome = oracle.expected(self.status, action, side)
                if isinstance(outcome, Refused):
                    self.refuse(action, side, 3, outcome)
        assert self.snapshot() == before, f"a refused move changed the {self.status} case"

    # -- the machine ---------------------------------------------------------------------

    @initialize()
    def submit(self) -> None:
        """The accepting platform submits; the handler's receipt delivers it (§6)."""
        body = case_body(matter_of("jiangsu"), seed=next(SEEDS))
        status, created = call(self.nodes, "POST", f"{self.nodes.url['accepting']}/v1/cases", body)
        assert status == 201, created
        assert created["status"] == self.status == "submitted"
        self.case_id = created["case_id"]
        delivered = oracle.expected("submitted", "deliver", "accepting")
        assert isinstance(delivered, str)
        self.status = delivered
        self.history.append(("deliver", "accepting"))
        wait_for(f"{self.case_id} delivered at both nodes", self.settled)
        self.refuse_the_rest()

    @precondition(lambda self: self.status not in oracle.TERMINAL)
    @rule(data=st.data(), level=st.integers(1, 5))
    def legal_move(self, data: st.DataObject, level: int) -> None:
        """Any move the oracle allows now, ending the case included."""
        action, side, _ = data.draw(
            st.sampled_from(oracle.legal_moves(self.status, oracle.REST_ACTIONS)), label="move"
        )
        self.move(action, side, level)

    @precondition(lambda self: bool(self.open_moves()))
    @rule(data=st.data(), level=st.integers(1, 5))
    def move_that_keeps_the_case_open(self, data: st.DataObject, level: int) -> None:
        """A legal move to a status that is not terminal: without it most runs end at once in
        a rejection or withdrawal and never reach the supplement loop or a conclusion."""
        action, side, _ = data.draw(st.sampled_from(self.open_moves()), label="move")
        self.move(action, side, level)

    @rule(
        action=st.sampled_from(oracle.REST_ACTIONS),
        side=st.sampled_from(oracle.SIDES),
        level=st.integers(1, 5),
    )
    def any_move(self, action: str, side: str, level: int) -> None:
        """Any event either platform may send; mostly refusals, which must change nothing."""
        self.move(action, side, level)

    @rule(action=st.sampled_from(("submit", "deliver")), side=st.sampled_from(oracle.SIDES))
    def not_a_platform_event(self, action: str, side: str) -> None:
        """§9's events never include submit or deliver: 422, and nothing changes."""
        before = self.snapshot()
        status, answer = self.post(side, {"action": action})
        assert (status, answer.get("code"), answer.get("field")) == (
            422,
            "invalid_action",
            "action",
        )
        assert self.snapshot() == before

    @invariant()
    def both_nodes_agree_with_the_oracle(self) -> None:
        if not self.case_id:
            return
        views = self.views()
        for side, view in views.items():
            assert (view["role"], view["status"]) == (side, self.status), (side, view["status"])
            assert view["sequence"] == len(self.history), side
            assert view["allowed_actions"] == oracle.legal_actions(
                self.status, side, oracle.REST_ACTIONS
            ), (side, self.status, view["allowed_actions"])
            assert view["evaluation_level"] == self.level, side
            assert (view["concluded_at"] is not None) == (self.status in oracle.CONCLUDED), side
        history = views["accepting"]["history"]
        assert history == views["handling"]["history"]
        assert [(h["sequence"], h["action"], h["by"]) for h in history] == [
            (n, action, side) for n, (action, side) in enumerate(self.history, start=1)
        ]
        assert [r["state"] for r in views["accepting"]["requests"]] == ["applied"] * self.requests


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[TwoNodes]:
    """Shanghai (accepting) and Jiangsu (handling) as real processes, each knowing the
    other's catalog, so that the link carries traffic both ways before the first case."""
    mesh = make_mesh(tmp_path)
    nodes = TwoNodes(
        mesh=mesh,
        url={"accepting": http(mesh, "shanghai"), "handling": http(mesh, "jiangsu")},
        matter_code=matter_of("jiangsu").code,
    )
    with ExitStack() as stack:
        stack.enter_context(process(mesh, "jiangsu"))
        stack.enter_context(process(mesh, "shanghai"))
        for side, other in (("accepting", "jiangsu"), ("handling", "shanghai")):

            def knows_peer(side: str = side, other: str = other) -> bool:
                status, catalog = call(nodes, "GET", f"{nodes.url[side]}/v1/catalog")
                return status == 200 and any(m["handler"] == other for m in catalog["matters"])

            wait_for(f"the {side} node holds {other}'s catalog", knows_peer)
        yield nodes


def test_random_action_sequences_agree_with_the_oracle_on_both_nodes(two_nodes: TwoNodes) -> None:
    """Random moves by both platforms: each is taken or refused as DESIGN §6 says, and both
    nodes then show the oracle's status, one signed history, and what each side may do."""
    CaseAcrossTwoNodes.nodes = two_nodes
    run_state_machine_as_test(
        CaseAcrossTwoNodes,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            # No shrinking: each replay drives real nodes, and shrinking a failure found here
            # would outlast the test's timeout. The failing run is reported as it happened
            # (at most stateful_step_count moves), which is short enough to read.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )

"""``yrd chaos``: the seeded schedule, the invariant checks on their own, and one real run
that kills, pauses and restarts processes of its own mesh and finds every invariant holding."""

from __future__ import annotations

import base64
import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.mesh.chaos import KINDS, plan_schedule
from node.mesh.invariants import CaseSides, numbered_once, on_both_sides, same_history
from node.mesh.node_control import alive
from node.wire import pb
from tests.nodes import BUDGET, free_base_port

YRD = [sys.executable, "-m", "node.cli.main"]
PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")


def test_same_seed_same_schedule() -> None:
    """The schedule is a function of seed, duration and provinces alone; another seed gives
    another one."""
    assert plan_schedule(7, 30, PROVINCES) == plan_schedule(7, 30, PROVINCES)
    assert plan_schedule(7, 30, PROVINCES) != plan_schedule(8, 30, PROVINCES)


@pytest.mark.parametrize("duration", [5.0, 10.0, 30.0, 120.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_schedule_has_every_kind_one_at_a_time(duration: float, seed: int) -> None:
    """Every kind of disturbance happens at least once, on provinces of the mesh, each undone
    before the next starts; the last lasts until the end of the duration (the heal ends it)."""
    schedule = plan_schedule(seed, duration, PROVINCES)
    assert {d.kind for d in schedule} == set(KINDS)
    assert all(d.province in PROVINCES and d.hold > 0 for d in schedule)
    for earlier, later in itertools.pairwise(schedule):
        assert earlier.at + earlier.hold < later.at
    assert schedule[-1].at + schedule[-1].hold == pytest.approx(duration, abs=0.051)


def signed(message: str, signature: bytes = b"sig") -> str:
    """A history entry's envelope as the REST view shows it (URL-safe base64)."""
    raw = pb.Envelope(message=message.encode(), signature=signature, key_id="ed25519:k")
    return base64.urlsafe_b64encode(raw.SerializeToString()).rstrip(b"=").decode()


def view(
    status: str, sequences: list[int], *, envelope: str = "e", signature: bytes = b"sig"
) -> Any:
    return {
        "status": status,
        "sequence": len(sequences),
        "submission": {"envelope": signed("s", signature), "key_id": "ed25519:k"},
        "history": [
            {
                "sequence": n,
                "action": "x",
                "evidence": signed(f"{envelope}{n}", signature),
                "applied": True,
            }
            for n in sequences
        ],
    }


def test_invariants_catch_a_duplicate_a_gap_and_a_differing_envelope() -> None:
    """Update numbers twice or missing, and a side holding another signed envelope, fail
    their invariants naming the case; equal sides pass."""
    good = CaseSides("c-good", "shanghai", "anhui", view("completed", [1, 2, 3]),
                     view("completed", [1, 2, 3]))  # fmt: skip
    twice = CaseSides("c-twice", "shanghai", "anhui", view("completed", [1, 2, 2]),
                      view("completed", [1, 2, 3]))  # fmt: skip
    gap = CaseSides("c-gap", "jiangsu", "zhejiang", view("completed", [1, 3]),
                    view("completed", [1, 2, 3]))  # fmt: skip
    forged = CaseSides("c-forged", "anhui", "jiangsu", view("denied", [1, 2]),
                       view("denied", [1, 2], envelope="other"))  # fmt: skip
    # The same messages under other signatures (a message re-sent in another batch after a
    # lost reply): the same signed record. Signatures are evidence_intact's to check.
    resent = CaseSides("c-resent", "shanghai", "anhui", view("completed", [1, 2, 3]),
                       view("completed", [1, 2, 3], signature=b"another batch"))  # fmt: skip
    assert numbered_once([good]).ok and same_history([good, resent]).ok
    numbers = numbered_once([good, twice, gap])
    assert not numbers.ok
    assert any("c-twice at shanghai" in f and "[2] twice" in f for f in numbers.failures)
    assert any("c-gap at jiangsu" in f and "[2] missing" in f for f in numbers.failures)
    history = same_history([good, forged])
    assert not history.ok
    assert history.failures == ("c-forged: update 1 differs (evidence)",)


def test_invariants_catch_a_lost_and_an_unfinished_case() -> None:
    """A case one side does not know, or has not concluded, fails invariant 1, as does a
    submission that was never answered."""
    lost = CaseSides("c-lost", "shanghai", "anhui", view("delivered", [1]), None)
    assert not on_both_sides([lost], unanswered=0).ok
    assert "c-lost shanghai → anhui: MISSING at its handling node" in (
        on_both_sides([lost], unanswered=0).failures
    )
    done = CaseSides("c-done", "shanghai", "anhui", view("rejected", [1, 2]),
                     view("rejected", [1, 2]))  # fmt: skip
    assert on_both_sides([done], unanswered=0).ok
    assert not on_both_sides([done], unanswered=1).ok


@pytest.mark.slow
def test_chaos_run_kills_pauses_restarts_and_every_invariant_holds(tmp_path: Path) -> None:
    """A 10-second seeded run: the printed schedule is the seed's, a node is SIGKILLed and
    comes back with a new pid, a node is SIGSTOPped and continued, a platform is SIGKILLed
    and restarted; after the heal all six invariants PASS, the exit is 0, and no process of
    the mesh is left."""
    directory = tmp_path / "mesh"
    result = subprocess.run(
        [*YRD, "chaos", "--dir", str(directory), "--base-port", str(free_base_port()),
         "--duration", "10", "--seed", "7", "--cases", "24", "--officer-delay", "0.1"],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET,
        check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    printed = re.findall(r"^ +([\d.]+) s  (\w+) +(\w+) +for ([\d.]+) s$", out, re.M)
    expected = plan_schedule(7, 10, PROVINCES)
    assert printed == [(f"{d.at:.1f}", d.kind, d.province, f"{d.hold:.1f}") for d in expected]

    happened = re.findall(r"^ +[\d.]+ s  (\w+) +(\w+ \w+) +pid (\d+)", out, re.M)
    killed_nodes = [(t, int(p)) for a, t, p in happened if a == "SIGKILL" and t.endswith("node")]
    assert killed_nodes, out
    for target, pid in killed_nodes:
        restarted = [int(p) for a, t, p in happened if a == "restart" and t == target]
        assert restarted and all(new != pid for new in restarted)
    assert any(a == "SIGSTOP" for a, _, _ in happened)
    assert any(a == "SIGCONT" for a, _, _ in happened)
    assert any(a == "SIGKILL" and t.endswith("platform") for a, t, _ in happened)
    assert any(a == "restart" and t.endswith("platform") for a, t, _ in happened)
    assert re.search(r"^ +[\d.]+ s  heal ", out, re.M)

    verdicts = re.findall(r"^  (PASS|FAIL)  \((\d)\) ", out, re.M)
    assert verdicts == [("PASS", str(n)) for n in range(1, 7)], out
    assert re.search(r"\(1\) cases on both sides: 24 of 24 cases answered 201", out)
    assert re.search(r"\(4\) no dead letters: 0 dead letters in 12 peer outboxes", out)
    assert re.search(r"\(5\) evidence logs: 4 of 4 evidence logs verify", out)
    assert re.search(r"\(6\) recovery: outboxes drained [\d.]+ s after the heal", out)
    assert "chaos: every invariant holds" in out

    assert not (directory / "mesh.json").exists()
    table_row = r"^(?:shanghai|jiangsu|zhejiang|anhui) +node-\d+ +\S+ +\S+ +(\d+) +\S+ +(\d+)"
    started = re.findall(table_row, out, re.M)
    assert len(started) == 4, out
    pids = [int(p) for _, _, p in happened] + [int(p) for row in started for p in row]
    assert not any(alive(pid) for pid in pids)

"""SIGKILL at any moment loses and duplicates nothing (DESIGN.md §5), with real processes: at
seeded random points of a mixed stream (probes both ways, cases worked by both platforms'
simulated people, certificate verifications both ways), one node is killed, started again
and drained, and then every effect is counted, each exactly once (``tests/effects.py``).
Both logs are checkpointed every 0.5 s all the while, and a checkpoint never covers an
entry that was not durable: what the peer cosigned before the kill is a prefix of the
restarted log, no checkpoint is refused, and ``yrd audit verify`` passes with the peers'
checkpoints. The rounds are ``tests/crash_rounds.py``; ``bench/crash_soak.py`` runs many
more."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash_rounds import RoundResult, Victim, crash_mesh, plan_round

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROUNDS = 3
"""Rounds per test in ``make test``; ``bench/crash_soak.py --rounds`` for more."""
SEED = 20


async def rounds_killing(tmp_path: Path, victim: Victim) -> list[RoundResult]:
    async with crash_mesh(tmp_path) as mesh:
        return [await mesh.run_round(plan_round(SEED, n, victim)) for n in range(ROUNDS)]


def assert_exactly_once(results: list[RoundResult]) -> None:
    for result in results:
        # Effects exactly once, and the checkpoints (crash_rounds step 5): the one cosigned
        # last before the kill extended by the restarted log, none refused, all verified.
        failures = result.failures()
        assert not failures, f"round {result.plan}:\n" + "\n".join(failures[:12])
        for effect, counted in result.report.counted.items():
            assert counted > 0, f"round {result.plan.number} counted no {effect}"
    # The rounds claiming a batch in flight had their claims borne out by the receivers'
    # re-deliveries (failures() above); at least one must make the claim, or the kills all
    # fell between batches and tested nothing.
    assert any(r.claims_in_flight for r in results), [r.in_flight for r in results]
    # And at least one kill must come after a checkpoint of the round's own traffic was
    # cosigned, or the kills all fell before any checkpoint of what they interrupted.
    witnessed = [r.witnessed_at_kill for r in results]
    assert any(w is not None and w.this_round for w in witnessed), witnessed


async def test_receiver_killed_at_random_points_every_effect_once(tmp_path: Path) -> None:
    """The receiver of the probe stream (Jiangsu, also the handler of Shanghai's cases) is
    SIGKILLed at a random point of each round and started again: afterwards each message has
    one receipt and one pair of evidence entries on each side, each case one update per
    number on both sides, each update one platform delivery, each disclosure one usage
    record, and every message claimed in flight at the kill was delivered again and
    answered with its original receipt; the head of Jiangsu's log Shanghai cosigned last
    before the kill is a prefix of the restarted log, and every checkpoint verifies."""
    assert_exactly_once(await rounds_killing(tmp_path, "receiver"))


async def test_sender_killed_at_random_points_every_effect_once(tmp_path: Path) -> None:
    """The same with the sender of the probe stream (Shanghai) killed: what it had accepted
    and not yet delivered goes after the restart, what it had delivered without recording
    the receipt goes again and is answered with the original receipt, every effect is there
    exactly once, and Shanghai's checkpoints cosigned before the kill are all extended by
    its restarted log."""
    assert_exactly_once(await rounds_killing(tmp_path, "sender"))

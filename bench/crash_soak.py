"""Crash soak: many rounds of SIGKILL at seeded random points of a mixed stream, each followed
by a restart, a drain and a count of every effect, each of which must be there exactly once.

Run::

    .venv/bin/python bench/crash_soak.py                      # 20 rounds (about 3-4 min on 2 cores)
    .venv/bin/python bench/crash_soak.py --quick              # smoke run: two rounds
    .venv/bin/python bench/crash_soak.py --rounds 5 --seed 7
    .venv/bin/python bench/crash_soak.py --victims sender     # kill only the sender
    .venv/bin/python bench/crash_soak.py --json               # one JSON object

One two-province mesh of real processes (Shanghai and Jiangsu nodes, each with its simulated
platform) in a temporary folder, for the whole run; the rounds are ``tests/crash_rounds.py``,
the same ones ``tests/test_crash.py`` runs a few of, and the count is ``tests/effects.py``.
Each round queues probes both ways, enters applications at both platforms (worked to their
evaluation by the platforms' simulated officer and applicant, their ID cards verified at the
issuer), keeps both nodes verifying the other's ID cards, and SIGKILLs the victim once
Jiangsu holds a random number of the round's probes: the receiver (Jiangsu) and the sender
(Shanghai) in turn, or only the one ``--victims`` names. The seed fixes every round's plan
(probes, kill point, applications); what timing decides (which messages were in flight) is
measured, not planned.

Figures per round: the victim, the kill point and what Jiangsu held at the kill, the
messages in flight at the kill by type (stored by their receiver, unacknowledged at their
sender), the re-deliveries their receivers answered with the original receipt afterwards,
the last checkpoint of the victim's log its peer cosigned before the kill (entries, and
seconds before the kill), verifications answered, seconds, and violations. At the end:
rounds, kills with a batch in flight, every effect counted after the last round (cumulative
over the run), attestations signed whose answer never reached the requester (its call died
with the kill; the issuer recorded the disclosure once), and every violation.

Both nodes checkpoint their evidence logs every 0.5 s, and the rounds check the checkpoints
as ``tests/test_crash.py`` does (``tests/crash_rounds.py`` step 5).

The exit status is non-zero when a round found a violation (an effect not exactly once, a
probe lost, a claim of a batch in flight that re-deliveries do not bear out, a checkpoint
that the restarted log does not extend, a refused checkpoint, a log that does not verify
with its peer's checkpoints, no checkpoint cosigned before the kill) or could not
run (a process that would not start, a mesh that never went quiet); never for a slow round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.mesh.processes import MeshError  # noqa: E402
from tests.crash_rounds import (  # noqa: E402
    VICTIMS,
    RoundBroke,
    RoundResult,
    Victim,
    crash_mesh,
    plan_round,
)
from tests.effects import EFFECTS  # noqa: E402

SHOWN = 20
"""Violations printed; ``--json`` has them all."""


def in_flight_text(result: RoundResult) -> str:
    kinds = result.in_flight_types()
    return ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) or "none"


def cosigned_text(result: RoundResult) -> str:
    """The last checkpoint of the victim's log cosigned before the kill: entries, and how
    long before the kill."""
    held = result.witnessed_at_kill
    return "none" if held is None else f"{held.tree_size} -{held.before_kill:.1f}s"


def round_line(result: RoundResult) -> str:
    plan = result.plan
    return (
        f"{plan.number:>5}  {plan.victim:<8}  {plan.probes:>6}  {plan.applications:>5}  "
        f"{plan.kill_after:>4} {plan.trigger:<6}  {result.held_at_kill:>5}  "
        f"{in_flight_text(result):<34}  "
        f"{sum(result.redelivered.values()):>11}  {cosigned_text(result):>13}  "
        f"{result.verifications:>8}  {result.seconds:>7.1f}  {len(result.failures()):>10}"
    )


HEADER = (
    f"{'round':>5}  {'victim':<8}  {'probes':>6}  {'cases':>5}  {'kill at':<11}  {'held':>5}  "
    f"{'in flight at the kill':<34}  {'redelivered':>11}  {'cosigned':>13}  {'verified':>8}  "
    f"{'seconds':>7}  {'violations':>10}"
)


async def soak(args: argparse.Namespace, tmp: Path) -> tuple[list[RoundResult], str | None]:
    """The rounds run, and why the run stopped early (None if it did not)."""
    results: list[RoundResult] = []
    victims: Sequence[Victim] = args.victims
    try:
        async with crash_mesh(tmp) as mesh:
            if not args.json:
                print(HEADER, flush=True)
            for number in range(args.rounds):
                victim = victims[number % len(victims)]
                result = await mesh.run_round(plan_round(args.seed, number, victim))
                results.append(result)
                if not args.json:
                    print(round_line(result), flush=True)
    except (RoundBroke, MeshError) as error:
        return results, str(error)
    return results, None


def summary(results: Sequence[RoundResult]) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    for result in results:
        kinds.update(result.in_flight_types())
    last = results[-1].report if results else None
    return {
        "rounds": len(results),
        "kills_with_batch_in_flight": sum(r.claims_in_flight for r in results),
        "messages_in_flight": dict(kinds.most_common()),
        "redelivered": sum(sum(r.redelivered.values()) for r in results),
        "verifications_answered": sum(r.verifications for r in results),
        "effects_counted": {e: last.counted[e] for e in EFFECTS} if last else {},
        "unreceived_disclosures": last.unreceived_disclosures if last else 0,
        "violations": [f"round {r.plan.number}: {f}" for r in results for f in r.failures()],
    }


def print_summary(figures: dict[str, Any], broke: str | None) -> None:
    in_flight = ", ".join(f"{n} {k}" for k, n in figures["messages_in_flight"].items())
    print()
    print(f"rounds: {figures['rounds']}")
    print(
        f"kills with a batch in flight: {figures['kills_with_batch_in_flight']} "
        f"({in_flight or 'no message'} in flight; {figures['redelivered']} re-deliveries "
        "answered with the original receipt)"
    )
    counted = ", ".join(f"{n} {e}" for e, n in figures["effects_counted"].items())
    print(f"effects counted after the last round, each exactly once: {counted or 'none'}")
    print(
        f"verifications answered: {figures['verifications_answered']}; attestations signed "
        f"whose answer never reached the requester: {figures['unreceived_disclosures']}"
    )
    violations = figures["violations"]
    print(f"violations: {len(violations) or 'none'}")
    for violation in violations[:SHOWN]:
        print(f"  {violation}")
    if len(violations) > SHOWN:
        print(f"  … and {len(violations) - SHOWN} more (--json lists them all)")
    if broke is not None:
        print(f"BROKE: {broke}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds to run (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="fixes every round's plan")
    parser.add_argument(
        "--victims",
        default="receiver,sender",
        help="who is killed, in turn: receiver, sender or both (default receiver,sender)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: two rounds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = min(args.rounds, 2)
    args.victims = [v.strip() for v in args.victims.split(",") if v.strip()]
    if not args.victims or any(v not in VICTIMS for v in args.victims):
        parser.error(f"--victims: choose from {', '.join(VICTIMS)}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    before = os.getloadavg()
    if not args.json:
        print(
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"load average {before[0]:.2f} before the run"
        )
        print(
            f"parameters: rounds={args.rounds} seed={args.seed} victims={','.join(args.victims)}\n"
        )
    with tempfile.TemporaryDirectory(prefix="yrd-bench-crash-") as tmp:
        try:
            results, broke = asyncio.run(soak(args, Path(tmp)))
        except KeyboardInterrupt:
            print("interrupted; processes stopped and temporary files removed", file=sys.stderr)
            return 130
    figures = summary(results)
    if args.json:
        print(
            json.dumps(
                {
                    "load_average": {"before": before, "after": os.getloadavg()},
                    "parameters": {
                        "rounds": args.rounds,
                        "seed": args.seed,
                        "victims": args.victims,
                    },
                    "per_round": [round_json(r) for r in results],
                    **figures,
                    "broke": broke,
                }
            )
        )
    else:
        print_summary(figures, broke)
        print(f"load average {os.getloadavg()[0]:.2f} after the run")
    return 1 if figures["violations"] or broke is not None else 0


def round_json(result: RoundResult) -> dict[str, Any]:
    return {
        "round": result.plan.number,
        "victim": result.plan.victim,
        "probes": result.plan.probes,
        "kill_after": result.plan.kill_after,
        "kill_counted_in": result.plan.trigger,
        "held_at_kill": result.held_at_kill,
        "applications": result.plan.applications,
        "in_flight": {
            link: dict(Counter(held.values())) for link, held in result.in_flight.items()
        },
        "redelivered": result.redelivered,
        "cosigned_before_kill": None
        if result.witnessed_at_kill is None
        else {
            "tree_size": result.witnessed_at_kill.tree_size,
            "seconds_before_kill": round(result.witnessed_at_kill.before_kill, 2),
        },
        "verifications_answered": result.verifications,
        "seconds": round(result.seconds, 2),
        "effects_counted": dict(result.report.counted),
        "violations": result.failures(),
    }


if __name__ == "__main__":
    sys.exit(main())

"""The kill rate of a finished `mutmut run`, per module and overall (what `make mutation` prints).

A mutant counts as caught when a test failed on it (killed), it hung past mutmut's timeout, or
mypy refused it; it counts against the score when every test passed (survived) or no test ran
it. Exit 1 when the overall rate is under ``--min`` percent, so the target can be scripted.

    .venv/bin/python bench/mutation_score.py              # after make mutation
    .venv/bin/python bench/mutation_score.py --survivors  # also list each survivor's name
    .venv/bin/python bench/mutation_score.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CAUGHT = frozenset({"killed", "timeout", "caught by type check"})
MISSED = frozenset({"survived", "no tests"})


def module_of(meta: Path, root: Path) -> str:
    return ".".join(meta.relative_to(root).with_suffix("").with_suffix("").parts)


def tally(root: Path) -> tuple[dict[str, Counter[str]], list[str]]:
    """Outcomes per module, and the names of the mutants no test caught."""
    per_module: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = per_module.setdefault(module_of(meta, root), Counter())
        for name, code in codes.items():
            status = status_by_exit_code[code]
            counts[status] += 1
            if status in MISSED:
                survivors.append(name)
    return per_module, survivors


def rate(counts: Counter[str]) -> float:
    caught = sum(counts[s] for s in CAUGHT)
    judged = caught + sum(counts[s] for s in MISSED)
    return 100.0 * caught / judged if judged else 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--min", type=float, default=90.0, help="target kill rate, percent")
    parser.add_argument("--survivors", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.mutants.is_dir():
        print(f"no {args.mutants}/: run `make mutation` first", file=sys.stderr)
        return 2
    per_module, survivors = tally(args.mutants)
    total: Counter[str] = sum(per_module.values(), Counter())
    overall = rate(total)
    if args.json:
        print(
            json.dumps(
                {
                    "kill_rate": round(overall, 1),
                    "target": args.min,
                    "modules": {
                        m: dict(c) | {"kill_rate": round(rate(c), 1)} for m, c in per_module.items()
                    },
                    "survivors": survivors,
                },
                indent=2,
            )
        )
    else:
        print(f"{'module':40} {'mutants':>8} {'caught':>7} {'missed':>7} {'rate':>7}")
        for module, counts in per_module.items():
            caught = sum(counts[s] for s in CAUGHT)
            missed = sum(counts[s] for s in MISSED)
            mutants = sum(counts.values())
            print(f"{module:40} {mutants:8} {caught:7} {missed:7} {rate(counts):6.1f}%")
        print(f"{'all':40} {sum(total.values()):8} {'':7} {len(survivors):7} {overall:6.1f}%")
        print(f"target {args.min:.0f}%: {'met' if overall >= args.min else 'NOT met'}")
        if args.survivors:
            print("\n".join(survivors))
    return 0 if overall >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())

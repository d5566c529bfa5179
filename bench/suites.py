"""Suite benchmark: signatures and verifications per second for each algorithm suite, and the
SM2 figures as a fraction of Ed25519's, in one run on this machine.

Run::

    .venv/bin/python bench/suites.py            # full run (about 10 s)
    .venv/bin/python bench/suites.py --quick    # smoke run (about 1 s)
    .venv/bin/python bench/suites.py --json     # one JSON object, for machines

Each row calls ``node.trust.suites`` the way the node does: ``sign(secret, statement)`` and
``verify(public, signature, statement)`` over a statement as large as a batch statement
(``--size`` bytes, 51 by default: the prefix, the tree size and a 32-byte root), and
``hash`` over a Merkle leaf of a typical message (``--leaf`` bytes). Each row runs for
``--seconds`` after a short warm-up that is not counted. With ``--independent`` the run also
times snowland-smx (pure Python, the tests' independent SM2), so the choice of library can be
re-checked here.

Rates are per second; the ratio column is SM2 over Ed25519. The load average is printed before
and after: on a busy shared machine compare the ratios rather than the absolute rates.

Benchmarks print figures; they never assert timing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.trust.suites import SM2_DEFAULT_UID, SM2_N, SUITES


def rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``call`` over about ``seconds``, after a warm-up."""
    warm_until = time.perf_counter() + min(0.2, seconds / 5)
    while time.perf_counter() < warm_until:
        call()
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            call()
        count += 10
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    statement = os.urandom(args.size)
    leaf = os.urandom(args.leaf)
    figures: dict[str, dict[str, float]] = {}
    for name, suite in SUITES.items():
        secret = suite.generate()
        public = suite.public_of(secret)
        signature = suite.sign(secret, statement)
        assert suite.verify(public, signature, statement)
        figures[name] = {
            "sign": rate(lambda s=suite, k=secret: s.sign(k, statement), args.seconds),
            "verify": rate(
                lambda s=suite, p=public, g=signature: s.verify(p, g, statement), args.seconds
            ),
            "hash": rate(lambda s=suite: s.hash(leaf), args.seconds),
        }
    if args.independent:
        figures["sm2 (snowland-smx)"] = independent(statement, args.seconds)
    return figures


def independent(statement: bytes, seconds: float) -> dict[str, float]:
    from pysmx.SM2 import Sign, Verify, generate_keypair  # type: ignore[import-untyped]
    from pysmx.SM3 import digest as sm3_digest  # type: ignore[import-untyped]

    pair = generate_keypair()
    nonce = f"{secrets.randbelow(SM2_N - 1) + 1:064x}"
    raw = Sign(statement, pair.privateKey, nonce, 64, uid=SM2_DEFAULT_UID)
    assert Verify(raw, statement, pair.publicKey, 64, uid=SM2_DEFAULT_UID)
    return {
        "sign": rate(
            lambda: Sign(statement, pair.privateKey, nonce, 64, uid=SM2_DEFAULT_UID), seconds
        ),
        "verify": rate(
            lambda: Verify(raw, statement, pair.publicKey, 64, uid=SM2_DEFAULT_UID), seconds
        ),
        "hash": rate(lambda: sm3_digest(statement), seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a second")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each row runs")
    parser.add_argument("--size", type=int, default=51, help="bytes of the signed statement")
    parser.add_argument("--leaf", type=int, default=600, help="bytes of a hashed Merkle leaf")
    parser.add_argument("--independent", action="store_true", help="also time snowland-smx")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 0.05
    load_before = os.getloadavg()
    figures = measure(args)
    load_after = os.getloadavg()
    base = figures["ed25519"]
    ratios = {op: figures["sm2"][op] / base[op] for op in ("sign", "verify", "hash")}
    if args.json:
        print(
            json.dumps(
                {
                    "per_second": figures,
                    "ratio_sm2_over_ed25519": ratios,
                    "load_average": {"before": load_before, "after": load_after},
                    "seconds_per_row": args.seconds,
                },
                indent=2,
            )
        )
        return
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    print(
        f"{'suite':<20} {'sign/s':>10} {'verify/s':>10} {'hash/s':>10} {'sign µs':>9} "
        f"{'verify µs':>10}"
    )
    for name, row in figures.items():
        print(
            f"{name:<20} {row['sign']:>10.0f} {row['verify']:>10.0f} {row['hash']:>10.0f} "
            f"{1e6 / row['sign']:>9.1f} {1e6 / row['verify']:>10.1f}"
        )
    print(
        f"{'sm2 / ed25519':<20} {ratios['sign']:>9.3f}× {ratios['verify']:>9.3f}× "
        f"{ratios['hash']:>9.3f}×"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")


if __name__ == "__main__":
    main()

"""``yrd load --dir DIR``: a stream of realistic cases against a running mesh, and what became
of them (submissions/s, refusals by problem code, hand-off and end-to-end times per pair).

Exit 0 when every submitted case was handed off (its handler's signed receipt is back at the
accepting node); 1 when a case is lost or stuck, or a submission went unanswered or was
still refused for now when its retries ended (a full disk's 503 ``store_unavailable``), each
named; 2 when the stream cannot start (no mesh, a node that does not answer, bad options),
and then nothing was submitted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from node.cli.folder_arg import add_folder
from node.cli.output import emit_json, fail, table
from node.cli.progress import Progress, say
from node.mesh.load import (
    CaseStream,
    LoadError,
    LoadReport,
    PairFigures,
    parse_pairs,
    read_mesh,
    report,
    session,
)

RETRY_FOR = 15.0
"""Seconds a submission whose answer was lost is retried with its Idempotency-Key."""
SHOWN_FAILURES = 20


def register(commands: Any) -> None:
    load = commands.add_parser(
        "load",
        help="submit a stream of cases to a running mesh and follow them",
        description="Submit realistic cases (from the platforms' seeded residents and the "
        "federated catalog) at the accepting nodes' REST API, spread over directed pairs, "
        "then follow each at its accepting node until it concludes or the wait ends.",
    )
    add_folder(load, help="the folder of a running `yrd mesh up`")
    load.add_argument("--cases", type=_positive, default=200, help="cases to submit (200)")
    load.add_argument(
        "--concurrency", type=_positive, default=16, help="submissions in flight at once (16)"
    )
    load.add_argument(
        "--pairs",
        metavar="A:H,…",
        help="accepting:handling pairs, e.g. shanghai:anhui,jiangsu:zhejiang "
        "(default: all twelve directed pairs)",
    )
    load.add_argument(
        "--spread",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="submit the cases evenly over this long, a steady stream (default: as fast as "
        "--concurrency allows)",
    )
    load.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to follow the cases after the last submission (60)",
    )
    load.add_argument("--json", action="store_true", help="machine-readable report")
    load.set_defaults(run=run_load)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of at least 1")
    return value


def run_load(args: argparse.Namespace) -> int:
    try:
        endpoints = read_mesh(args.dir)
        pairs = parse_pairs(args.pairs, list(endpoints))
    except LoadError as exc:
        return fail(str(exc))
    if args.wait < 0:
        return fail("--wait must not be negative")
    if args.spread < 0:
        return fail("--spread must not be negative")
    progress = Progress(sys.stderr if args.json else sys.stdout)

    async def go() -> LoadReport:
        async with session() as http:
            stream = CaseStream(http, endpoints)
            await stream.check_nodes(args.dir)
            cases = await stream.plan(pairs, args.cases)
            if not args.json:
                say(
                    f"yrd load: {len(cases)} cases on {len(pairs)} directed pair(s), "
                    f"{args.concurrency} in flight, against the mesh in {args.dir}"
                )
            await stream.run(
                cases,
                concurrency=args.concurrency,
                retry_for=RETRY_FOR,
                wait=args.wait,
                show=progress.show,
                spread_over=args.spread,
            )
            progress.done()
            return report(cases, stream)

    try:
        result = asyncio.run(go())
    except LoadError as exc:
        return fail(str(exc))
    if args.json:
        emit_json(result.to_json())
    else:
        sys.stdout.write(render(result))
    return 0 if result.ok else 1


def render(result: LoadReport) -> str:
    lines = [
        f"submitted {result.accepted + sum(result.refused.values())} in "
        f"{result.submit_seconds:.1f} s ({result.submissions_per_second:.1f} submissions/s): "
        f"{result.accepted} created"
        + (f" ({result.replayed} found again after a lost answer)" if result.replayed else "")
        + f", {sum(result.refused.values())} refused"
        + (
            f", {sum(result.refused_for_now.values())} refused for now"
            if result.refused_for_now
            else ""
        )
        + (f", {result.unanswered} unanswered" if result.unanswered else ""),
    ]
    if result.failovers:
        lines.append(
            f"{result.failovers} request(s) got no answer at a replica and were answered at another"
        )
    if result.refused:
        lines.append(
            "refused by problem: " + ", ".join(f"{k} {n}" for k, n in result.refused.items())
        )
    if result.refused_for_now:
        lines.append(
            "refused for now (the node answered that it cannot take cases now, "
            f"still so after {RETRY_FOR:.0f} s of retries): "
            + ", ".join(f"{_spoken(k)} {n}" for k, n in result.refused_for_now.items())
        )
    lines.append("")
    figures = [*result.pairs, result.total]
    lines.append(
        table(
            ["accepting → handling", "cases", "handed off", "concluded", "completed", "denied",
             "rejected", "withdrawn", "open"],
            [_outcome_row(p) for p in figures],
        )
        + "(cases = completed + denied + rejected + withdrawn + open; concluded = all but "
        "open)\n"
    )  # fmt: skip
    lines.append(
        table(
            ["accepting → handling", "hand-off p50 s", "p95 s", "end-to-end p50 s", "p95 s"],
            [_time_row(p) for p in figures],
        )
    )
    total = result.total
    if result.ok:
        open_cases = sum(result.still_open.values())
        lines.append(
            f"every submitted case was handed off ({total.handed_off} of {total.cases}); "
            f"{total.concluded} concluded"
            + (
                f", {open_cases} still open when the wait ended ("
                + ", ".join(f"{s} {n}" for s, n in result.still_open.items())
                + ")"
                if open_cases
                else ""
            )
        )
    elif result.accepted == 0 and not result.failures:
        lines.append("FAILED: no case was created")
    else:
        lines.append(
            f"FAILED: {len(result.failures)} case(s) lost, stuck, unanswered or refused for now "
            f"({total.handed_off} of {total.cases} handed off):"
        )
        lines += [f"  {f}" for f in result.failures[:SHOWN_FAILURES]]
        if len(result.failures) > SHOWN_FAILURES:
            lines.append(f"  … and {len(result.failures) - SHOWN_FAILURES} more")
    return "\n".join(lines) + "\n"


def _outcome_row(figures: PairFigures) -> Sequence[Any]:
    return [
        figures.pair,
        figures.cases,
        figures.handed_off,
        figures.concluded,
        figures.completed,
        figures.denied,
        figures.rejected,
        figures.withdrawn,
        figures.open,
    ]


def _time_row(figures: PairFigures) -> Sequence[Any]:
    return [
        figures.pair,
        _seconds(figures.handoff_p50, 3),
        _seconds(figures.handoff_p95, 3),
        _seconds(figures.end_to_end_p50, 1),
        _seconds(figures.end_to_end_p95, 1),
    ]


def _seconds(value: float | None, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def _spoken(code: str) -> str:
    """A problem code as a reader says it: ``store_unavailable`` → ``store unavailable``."""
    return code.replace("_", " ")

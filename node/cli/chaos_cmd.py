"""``yrd chaos``: init and start a mesh of its own, disturb it on a seeded schedule while a
stream of cases comes in, heal it, and judge it (each invariant PASS or FAIL with numbers).

Exit 0 only when every invariant holds; 1 when one fails or the run breaks down (a restart
that fails, say); 2 when the mesh cannot be set up or started; 130 when interrupted (Ctrl-C,
SIGTERM). Every child process is stopped in every case.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.folder_arg import add_folder
from node.cli.mesh_cmd import (
    add_shape_options,
    endpoints_table,
    shaped,
    temporary_mesh_folder,
)
from node.cli.output import emit_json, fail
from node.cli.progress import Progress
from node.mesh.access import create_mesh
from node.mesh.chaos import ChaosOptions, ChaosResult, Happening, run_chaos
from node.mesh.layout import StoreChoice
from node.mesh.links import links_refused
from node.mesh.postgres_server import ServerFailed, ServerMissing
from node.mesh.processes import MeshError


def register(commands: Any) -> None:
    chaos = commands.add_parser(
        "chaos",
        help="a mesh of its own, disturbed while cases stream in, then healed and checked",
        description="Init and start a four-province mesh, submit a steady stream of cases "
        "while a seeded schedule SIGKILLs and restarts nodes, SIGSTOPs and continues nodes "
        "and SIGKILLs and restarts simulated platforms (with --network, also slows, loses "
        "on, cuts one way, blackholes and resets single links; with --replicas, also kills "
        "and pauses single replicas); then heal, wait until every case has concluded and "
        "every outbox drained, and check that nothing was lost, duplicated or told "
        "differently on the two sides.",
    )
    add_folder(chaos, help="mesh folder (default: a fresh temporary one)", required=False)
    chaos.add_argument("--base-port", type=int, default=7101)
    chaos.add_argument(
        "--duration", type=float, default=30.0, metavar="SECONDS", help="disturbed stream (30)"
    )
    chaos.add_argument("--seed", type=int, default=1, help="seed of the schedule and the data")
    chaos.add_argument("--cases", type=int, default=100, help="cases in the stream (100)")
    chaos.add_argument(
        "--wait",
        type=float,
        default=90.0,
        metavar="SECONDS",
        help="after the heal, how long every case may take to conclude and every outbox "
        "to drain (90)",
    )
    chaos.add_argument(
        "--officer-delay",
        type=float,
        default=0.3,
        help="seconds the simulated officers wait before each step (0.3)",
    )
    chaos.add_argument(
        "--network",
        action="store_true",
        help="nodes dial each other through a fault proxy per directed link, and the schedule "
        "adds link faults: latency with jitter, loss, one-way partition, blackhole, reset",
    )
    add_shape_options(chaos, "started and stopped by the run (for a new mesh)")
    chaos.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    chaos.set_defaults(run=run_chaos_command)


def run_chaos_command(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.cases < 1 or args.wait < 0 or args.officer_delay < 0:
        return fail(
            "--duration and --cases must be positive, --wait and --officer-delay not negative"
        )
    try:
        store = shaped(args)
    except ValueError as exc:
        return fail(str(exc))
    refused = links_refused("--network", store.replicas) if args.network else None
    if refused:
        return fail(refused)
    with temporary_mesh_folder("yrd-chaos-", store) as tmp:
        return _chaos(args, store, args.dir or tmp / "mesh")


def _chaos(args: argparse.Namespace, store: StoreChoice, root: Path) -> int:
    out = sys.stderr if args.json else sys.stdout
    progress = Progress(out)

    say = progress.note
    if not (root / "manifest.json").exists():
        try:
            create_mesh(
                root,
                now=time.time(),
                base_port=args.base_port,
                store=store,
                provinces=args.provinces,
            )
        except (OSError, ValueError, ServerMissing, ServerFailed) as exc:
            return fail(str(exc))
    options = ChaosOptions(
        args.duration, args.seed, args.cases, args.wait, args.officer_delay, args.network
    )
    say(
        f"yrd chaos: seed {args.seed}, {args.duration:g} s of disturbances"
        + (" (processes and links)" if args.network else "")
        + f" while {args.cases} cases stream in; mesh in {root}"
    )

    def started(result: ChaosResult) -> None:
        provinces = len(result.nodes)
        replicas = min(len(n.replicas) for n in result.nodes)
        say(
            f"{provinces} provinces"
            + (f", each {replicas} replicas sharing a database" if replicas > 1 else "")
            + f"; cases on all {provinces * (provinces - 1)} directed pairs"
        )
        say(endpoints_table(result.nodes))
        say(f"schedule (seed {args.seed}, seconds after the stream begins):")
        for d in result.schedule:
            line = f"  {d.at:7.1f} s  {d.kind:<14} {d.target:<17} for {d.hold:.1f} s"
            say(line + (f" ({d.fault.describe()})" if d.fault is not None else ""))
        say("stream and disturbances, as they happen:")

    def tell(happening: Happening) -> None:
        say(happening.line())

    try:
        result = run_chaos(root, options, tell=tell, show=progress.show, started=started)
    except KeyboardInterrupt:
        progress.done()
        say("interrupted: every process of the mesh stopped")
        return 130
    except (MeshError, OSError, ValueError) as exc:
        progress.done()
        return fail(f"chaos could not start the mesh: {exc}")
    progress.done()
    if args.json:
        emit_json(_as_json(args, result))
    else:
        sys.stdout.write(render(result))
    return 0 if result.ok else 1


def render(result: ChaosResult) -> str:
    lines = []
    if result.submissions is not None:
        s = result.submissions
        refused = ", ".join(f"{code} {n}" for code, n in s.refused.items())
        lines.append(
            f"stream: {s.accepted} cases created"
            + (f" ({s.replayed} found again after a lost answer)" if s.replayed else "")
            + f", {sum(s.refused.values())} refused"
            + (f" ({refused})" if refused else "")
            + (f", {sum(s.refused_for_now.values())} refused for now" if s.refused_for_now else "")
            + f", {s.unanswered} unanswered; {s.total.handed_off} handed off, "
            f"{s.total.concluded} concluded"
        )
    lines.append("stopped: " + ", ".join(f"{p} exit {c}" for p, c in result.stopped.items()))
    lines.append("invariants:")
    for verdict in result.verdicts:
        lines.append(
            f"  {'PASS' if verdict.ok else 'FAIL'}  ({verdict.number}) {verdict.name}: "
            f"{verdict.detail}"
        )
        lines += [f"          {failure}" for failure in verdict.failures]
    if result.error:
        lines.append(f"  the run broke down: {result.error}")
    if len(result.verdicts) < 6:
        lines.append("  the run ended before every invariant could be checked")
    failed = sum(not v.ok for v in result.verdicts)
    lines.append(
        "chaos: every invariant holds"
        if result.ok
        else f"chaos: FAILED ({failed} invariant(s) failed)"
    )
    return "\n".join(lines) + "\n"


def _as_json(args: argparse.Namespace, result: ChaosResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "seed": args.seed,
        "duration": args.duration,
        "network": args.network,
        "replicas": min((len(n.replicas) for n in result.nodes), default=None),
        "schedule": [d.to_json() for d in result.schedule],
        "happenings": [h.to_json() for h in result.happenings],
        "submissions": result.submissions.to_json() if result.submissions else None,
        "drained_after_seconds": _rounded(result.drained_after),
        "settled_after_seconds": _rounded(result.settled_after),
        "invariants": [v.to_json() for v in result.verdicts],
        "stopped": result.stopped,
        "error": result.error or None,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)

"""``yrd mesh init|up|stop|start`` and ``yrd demo``.

``mesh up`` wires the terminal to a ``MeshSupervisor`` (Ctrl-C and SIGTERM stop the mesh,
SIGHUP goes on to the nodes, what the supervisor tells goes to stderr); ``mesh stop`` and
``mesh start`` are the tester's end of its control channel (``node.runtime.mesh_control``).
Exit codes: 0 done, 1 the node did not get where it was asked to go in time, 2 a usage error
or no mesh up in DIR (then nothing was changed).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.cli.output import fail, table
from node.runtime.mesh import Mesh, MeshError, MeshNode
from node.runtime.mesh_access import create_mesh
from node.runtime.mesh_control import Change, MeshControlError, NotDone, start_node, stop_node
from node.runtime.mesh_supervisor import MeshSupervisor
from node.store.lock import StoreInUse, StoreLock


def register(commands: Any) -> None:
    mesh = commands.add_parser("mesh", help="a four-province mesh on this machine")
    sub = mesh.add_subparsers(dest="mesh_command", required=True, metavar="ACTION")
    init = sub.add_parser("init", help="create CA, keys, certificates, configs and manifest")
    init.add_argument("dir", type=Path)
    init.add_argument(
        "--base-port",
        type=int,
        default=7101,
        help="gRPC ports start here; HTTP at +1000, platforms at +2000",
    )
    init.set_defaults(run=run_init)
    up = sub.add_parser(
        "up", help="start the four nodes and their simulated platforms as processes until Ctrl-C"
    )
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument(
        "--base-port",
        type=int,
        default=7101,
        help="used when DIR does not exist yet and is initialised first",
    )
    up.add_argument("--seed", type=int, default=1, help="seed of the platforms' simulated data")
    up.add_argument(
        "--officer-delay",
        type=float,
        default=1.0,
        help="seconds the simulated officers and applicants wait before each step",
    )
    up.set_defaults(run=run_up)
    stop = sub.add_parser(
        "stop",
        help="stop one province's node of a running `yrd mesh up`; it stays stopped until "
        "`yrd mesh start`",
    )
    start = sub.add_parser(
        "start", help="start again a node stopped with `yrd mesh stop`, and wait until it is ready"
    )
    for parser, run in ((stop, run_stop), (start, run_start)):
        parser.add_argument(
            "--dir", type=Path, required=True, help="the folder of a running `yrd mesh up`"
        )
        parser.add_argument("province", help="whose node, e.g. shanghai")
        parser.set_defaults(run=run)

    demo = commands.add_parser("demo", help="init, up, a scenario across all pairs, stop")
    demo.add_argument("--dir", type=Path, help="mesh folder (default: a fresh temporary one)")
    demo.add_argument("--base-port", type=int, default=7101)
    demo.add_argument(
        "--probes", type=int, default=200, help="test messages per directed pair in the burst"
    )
    demo.set_defaults(run=run_demo)


def run_init(args: argparse.Namespace) -> int:
    try:
        manifest = create_mesh(args.dir, now=time.time(), base_port=args.base_port)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    sys.stdout.write(
        f"mesh initialised in {args.dir}: manifest version {manifest.version}, "
        f"{len(manifest.members)} provinces\n"
    )
    return 0


def endpoints_table(nodes: list[MeshNode]) -> str:
    return table(
        ["province", "node", "grpc", "http", "pid", "platform", "platform pid"],
        [[n.province, n.node_id, n.grpc, n.http, n.pid, n.platform, n.platform_pid] for n in nodes],
    )


def run_up(args: argparse.Namespace) -> int:
    if not (args.dir / "manifest.json").exists():
        code = run_init(argparse.Namespace(dir=args.dir, base_port=args.base_port))
        if code:
            return code
    # One supervisor per folder: a second one would start processes that cannot bind their
    # ports or stores, take them for the first one's, and remove mesh.json when it stops.
    lock = StoreLock(args.dir / "mesh")
    try:
        lock.acquire()
    except StoreInUse as busy:
        return fail(
            f"a mesh is already running in {args.dir} (yrd mesh up, pid {busy.holder}); "
            f"nothing was started or changed. Stop it first: Ctrl-C in its terminal, or "
            f"kill -TERM {busy.holder}"
        )
    try:
        return _run_up(args)
    finally:
        lock.release()


def _run_up(args: argparse.Namespace) -> int:
    try:
        mesh = Mesh(args.dir, seed=args.seed, officer_delay=args.officer_delay)
    except (OSError, ValueError) as exc:
        return fail(f"cannot read mesh {args.dir}: {exc}")

    supervisor = MeshSupervisor(mesh, tell=_tell)

    async def supervise() -> None:
        nodes = await supervisor.up()
        sys.stdout.write(endpoints_table(nodes))
        sys.stdout.write(
            f"\nmesh up; {args.dir / 'mesh.json'} written. A process that exits is started "
            "again; Ctrl-C stops the mesh.\n"
        )
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: mesh.signal_nodes(signal.SIGHUP))
        await supervisor.keep(stop)

    try:
        asyncio.run(supervise())
    except MeshError as exc:
        return fail(str(exc))
    finally:
        codes = supervisor.stop()
    sys.stdout.write("mesh stopped: " + ", ".join(f"{p} exit {c}" for p, c in codes.items()) + "\n")
    return 0


def _tell(line: str) -> None:
    sys.stderr.write(f"yrd: {line}\n")
    sys.stderr.flush()


def run_stop(args: argparse.Namespace) -> int:
    def said(change: Change) -> str:
        if not change.changed:
            return f"the {args.province} node is already stopped"
        pid = change.before.pid
        return (
            f"the {args.province} node is stopped"
            + (f" (pid {pid} has exited)" if pid is not None else "")
            + f"; it stays stopped until yrd mesh start --dir {args.dir} {args.province}"
        )

    return _by_hand(args, stop_node, said)


def run_start(args: argparse.Namespace) -> int:
    def said(change: Change) -> str:
        how = "ready" if change.changed else "already running"
        return f"the {args.province} node is {how} (pid {change.after.pid})"

    return _by_hand(args, start_node, said)


def _by_hand(
    args: argparse.Namespace,
    action: Callable[[Path, str], Change],
    said: Callable[[Change], str],
) -> int:
    try:
        change = action(args.dir, args.province)
    except NotDone as exc:
        return fail(str(exc), 1)
    except MeshControlError as exc:
        return fail(str(exc))
    sys.stdout.write(said(change) + "\n")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from node.cli.demo import demo

    return demo(args.dir, base_port=args.base_port, probes=args.probes)

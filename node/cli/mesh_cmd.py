"""``yrd mesh init|up`` and ``yrd demo``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.output import fail, table
from node.runtime.mesh import Mesh, MeshError, MeshNode
from node.trust.layout import init_mesh


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

    demo = commands.add_parser("demo", help="init, up, a scenario across all pairs, stop")
    demo.add_argument("--dir", type=Path, help="mesh folder (default: a fresh temporary one)")
    demo.add_argument("--base-port", type=int, default=7101)
    demo.add_argument(
        "--probes", type=int, default=200, help="test messages per directed pair in the burst"
    )
    demo.set_defaults(run=run_demo)


def run_init(args: argparse.Namespace) -> int:
    try:
        manifest = init_mesh(args.dir, now=time.time(), base_port=args.base_port)
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
    try:
        mesh = Mesh(args.dir, seed=args.seed, officer_delay=args.officer_delay)
    except (OSError, ValueError) as exc:
        return fail(f"cannot read mesh {args.dir}: {exc}")

    async def supervise() -> None:
        nodes = await mesh.up()
        sys.stdout.write(endpoints_table(nodes))
        sys.stdout.write(f"\nmesh up; {args.dir / 'mesh.json'} written. Ctrl-C stops it.\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: mesh.signal_nodes(signal.SIGHUP))
        while not stop.is_set():
            for gone in mesh.exited():
                sys.stderr.write(f"yrd: {gone} exited; stopping the mesh\n")
                stop.set()
            try:
                async with asyncio.timeout(1.0):
                    await stop.wait()
            except TimeoutError:
                pass

    try:
        asyncio.run(supervise())
    except MeshError as exc:
        return fail(str(exc))
    finally:
        codes = mesh.stop()
    sys.stdout.write("mesh stopped: " + ", ".join(f"{p} exit {c}" for p, c in codes.items()) + "\n")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from node.cli.demo import demo

    return demo(args.dir, base_port=args.base_port, probes=args.probes)

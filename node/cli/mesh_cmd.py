"""``yrd mesh init|up|stop|start|link`` and ``yrd demo``.

``mesh up`` wires the terminal to a ``MeshSupervisor`` (Ctrl-C and SIGTERM stop the mesh,
SIGHUP goes on to the nodes, what the supervisor tells goes to stderr); with ``--links`` it
also runs a fault-injecting proxy per directed link (``node.mesh.links``) in the same
process, routes every node through them and applies the tester's orders for them
(``node.mesh.link_control``). ``mesh stop``, ``mesh start`` and ``mesh link`` are the
tester's end of the control channels (``node.mesh.node_control``, ``link_control``).
Exit codes: 0 done, 1 the node or link did not get where it was asked to go in time (for
``mesh up``: a process of the mesh could not start; its last log lines are shown), 2 a usage
error, a folder ``mesh init`` did not make (``mesh up`` without ``--init``) or no mesh up in
DIR (then nothing was changed).

``mesh up`` on a folder whose last ``mesh up`` was killed (SIGKILL: its children run on in
sessions of their own) stops the nodes and platforms it left, found from the stale
``mesh.json`` and checked by their command lines (``node.mesh.leftovers``), one
line each, before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from node.cli.folder_arg import add_folder
from node.cli.output import emit_json, fail, table
from node.cli.suite_arg import KNOWN, suite_choice
from node.mesh.access import VIEWER_FILE, create_mesh
from node.mesh.faults import CLEAR, LinkFault
from node.mesh.folder import NotAMeshFolder, mesh_configs
from node.mesh.layout import (
    DEFAULT_PROVINCES,
    MANIFEST_FILE,
    MAX_REPLICAS,
    ONE_SQLITE_NODE,
    REPLICA_PORT_STEP,
    StoreChoice,
)
from node.mesh.leftovers import leftovers, process_alive, stop_leftovers
from node.mesh.link_control import LinkKeeper, LinkOrders, order, read_state, running_links
from node.mesh.links import LinkSet, links_refused
from node.mesh.monitoring import SHIPPED_RULES, Prometheus
from node.mesh.node_control import Change, MeshControlError, NotDone, start_node, stop_node
from node.mesh.postgres_server import ServerFailed, ServerMissing
from node.mesh.processes import Mesh, MeshError, StartupFailed, replica_configs
from node.mesh.record import MeshLink, MeshNode
from node.mesh.suite_choice import ED25519_THROUGHOUT, SuiteChoice
from node.mesh.supervisor import MeshSupervisor
from node.runtime.config import ConfigError, NodeConfig
from node.store.lock import StoreInUse, StoreLock
from node.trust.manifest import Manifest

DEFAULT_BASE_PORT = 7101
"""Where a new mesh's gRPC ports start; HTTP at +1000, platforms at +2000."""


def register(commands: Any) -> None:
    mesh = commands.add_parser("mesh", help="a four-province mesh on this machine")
    sub = mesh.add_subparsers(dest="mesh_command", required=True, metavar="ACTION")
    init = sub.add_parser("init", help="create CA, keys, certificates, configs and manifest")
    add_folder(init, help="the folder to create (must not exist, or be empty)")
    init.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help="gRPC ports start here; HTTP at +1000, platforms at +2000",
    )
    init.add_argument(
        "--suite",
        type=suite_choice,
        default=ED25519_THROUGHOUT,
        metavar="SPEC",
        help=f"signature suites ({KNOWN}): one for every member and the governance key "
        "(--suite sm2), or per member (--suite shanghai=sm2,jiangsu=ed25519; others ed25519; "
        "governance=sm2 for the governance key); default ed25519",
    )
    add_shape_options(init, "started and stopped by yrd mesh up")
    init.set_defaults(run=run_init)
    up = sub.add_parser(
        "up", help="start the four nodes and their simulated platforms as processes until Ctrl-C"
    )
    add_folder(up)
    up.add_argument(
        "--init",
        action="store_true",
        help="when DIR is not a mesh folder yet, create it first (yrd mesh init DIR); without "
        "--init such a folder is refused and nothing is created",
    )
    up.add_argument(
        "--base-port",
        type=int,
        help="with --init on a new folder: gRPC ports start here (default 7101); HTTP at "
        "+1000, platforms at +2000. An existing mesh keeps the ports it was made with",
    )
    up.add_argument("--seed", type=int, default=1, help="seed of the platforms' simulated data")
    up.add_argument(
        "--officer-delay",
        type=float,
        default=1.0,
        help="seconds the simulated officers and applicants wait before each step",
    )
    up.add_argument(
        "--links",
        action="store_true",
        help="route every directed link through a fault-injecting proxy (yrd mesh link)",
    )
    up.add_argument(
        "--monitoring",
        action="store_true",
        help="also run Prometheus (Debian package prometheus) scraping every node with the "
        "shipped alert rules; its URL is printed and written into mesh.json",
    )
    up.add_argument(
        "--alert-rules",
        type=Path,
        metavar="FILE",
        help="with --monitoring: these alert rules instead of the shipped ones",
    )
    up.set_defaults(run=run_up)
    link = sub.add_parser(
        "link",
        help="show or change the faults of a `yrd mesh up --links` mesh's links",
        description="Without LINK: every link's fault and traffic. With LINK "
        "(sender:receiver): give it exactly the fault the options describe (none: clear).",
    )
    add_folder(link, help="the folder of the running mesh", shift_to="link")
    link.add_argument("link", nargs="?", help="sender:receiver, e.g. shanghai:jiangsu")
    link.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="each way")
    link.add_argument("--jitter", type=float, default=0.0, metavar="SECONDS")
    link.add_argument("--loss", type=float, default=0.0, help="share of segments lost (0-0.5)")
    link.add_argument("--bandwidth", type=float, metavar="BYTES_PER_SECOND")
    link.add_argument("--blackhole", action="store_true", help="hold connections, pass nothing")
    link.add_argument("--partition", action="store_true", help="reset every connection")
    link.add_argument("--reset-after", type=int, metavar="BYTES", help="reset each connection")
    link.add_argument("--reset", action="store_true", help="reset its open connections now")
    link.add_argument("--heal", action="store_true", help="every link clear")
    link.add_argument("--json", action="store_true", help="the supervisor's answer as JSON")
    link.set_defaults(run=run_link)
    stop = sub.add_parser(
        "stop",
        help="stop one province's node of a running `yrd mesh up`; it stays stopped until "
        "`yrd mesh start`",
    )
    start = sub.add_parser(
        "start", help="start again a node stopped with `yrd mesh stop`, and wait until it is ready"
    )
    for parser, run in ((stop, run_stop), (start, run_start)):
        add_folder(parser, help="the folder of a running `yrd mesh up`")
        parser.add_argument("province", help="whose node, e.g. shanghai")
        parser.set_defaults(run=run)

    demo = commands.add_parser("demo", help="init, up, a scenario across all pairs, stop")
    add_folder(demo, help="mesh folder to keep (default: a fresh temporary one)", required=False)
    demo.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    demo.add_argument(
        "--probes", type=int, default=200, help="test messages per directed pair in the burst"
    )
    demo.add_argument(
        "--monitoring",
        action="store_true",
        help="also run Prometheus with the shipped alert rules; print its URL and the alerts "
        "that fired during the demo",
    )
    demo.add_argument(
        "--suite",
        type=suite_choice,
        default=ED25519_THROUGHOUT,
        metavar="SPEC",
        help="signature suites, as for yrd mesh init: sm2, or shanghai=sm2,jiangsu=ed25519",
    )
    add_shape_options(demo, "started and stopped by the demo")
    demo.set_defaults(run=run_demo)


def add_shape_options(parser: argparse.ArgumentParser, server_runs: str) -> None:
    """``--store``, ``--replicas`` and ``--provinces``: the shape of a new mesh, the same for
    ``yrd mesh init``, ``yrd demo`` and ``yrd chaos`` (``StoreChoice`` judges the first two
    together: ``shaped``). ``server_runs``: who starts and stops a PostgreSQL mesh's server."""
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite (default): a store file per node; postgres: a database per province on "
        "the mesh's own PostgreSQL server (Debian package postgresql), data in DIR/postgres, "
        + server_runs,
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help=f"node processes per province (1-{MAX_REPLICAS}), sharing its database and "
        f"identity, each on its own ports (replica r: +{REPLICA_PORT_STEP}×(r-1)); above 1 "
        "needs --store postgres",
    )
    parser.add_argument(
        "--provinces",
        type=_province_list,
        default=DEFAULT_PROVINCES,
        metavar="LIST",
        help="the members, comma-separated (default: all four), e.g. shanghai,jiangsu",
    )


def shaped(args: argparse.Namespace) -> StoreChoice:
    """The store and replicas ``add_shape_options`` read; ValueError saying what is wrong."""
    return StoreChoice(args.store, args.replicas)


@contextlib.contextmanager
def temporary_mesh_folder(prefix: str, store: StoreChoice) -> Iterator[Path]:
    """A new temporary folder for a mesh of its own (``yrd demo``, ``yrd chaos``), removed
    at the end. For a PostgreSQL mesh it is open for traversal (``o+x``: not for listing),
    since the database server runs as another user when this is root."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        if store.backend == "postgres":
            Path(tmp).chmod(0o711)
        yield Path(tmp)


def _province_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in DEFAULT_PROVINCES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unknown) or 'none'}: name provinces among {', '.join(DEFAULT_PROVINCES)}"
        )
    return names


def run_init(args: argparse.Namespace) -> int:
    try:
        store = shaped(args)
    except ValueError as exc:
        return fail(str(exc))
    return _initialise(
        args.dir,
        args.base_port,
        told=True,
        suites=args.suite,
        store=store,
        provinces=args.provinces,
    )


def _initialise(
    directory: Path,
    base_port: int,
    *,
    told: bool,
    suites: SuiteChoice = ED25519_THROUGHOUT,
    store: StoreChoice = ONE_SQLITE_NODE,
    provinces: Sequence[str] = DEFAULT_PROVINCES,
) -> int:
    """``yrd mesh init``; ``told``: also print the ports, the dashboard URL and the curl
    lines (``mesh up --init`` prints them once the mesh runs)."""
    try:
        manifest = create_mesh(
            directory,
            now=time.time(),
            base_port=base_port,
            suites=suites,
            store=store,
            provinces=provinces,
        )
        replicas = replica_configs(directory)
        configs = [c for numbered in replicas.values() for c in numbered]
    except (OSError, ValueError, MeshError, ConfigError, ServerMissing, ServerFailed) as exc:
        return fail(str(exc))
    sys.stdout.write(
        f"mesh initialised in {directory}: manifest version {manifest.version}, "
        f"{len(manifest.members)} provinces\n"
        f"signing suites: {suites_said(manifest)}; governance key {suites.governance.name}\n"
        + (
            f"stores: a PostgreSQL database per province (server data in {directory}/postgres, "
            f"run by yrd mesh up); {store.replicas} replica(s) per province\n"
            if store.backend == "postgres"
            else ""
        )
    )
    if not told:
        return 0
    sys.stdout.write("\n")
    sys.stdout.write(
        table(
            ["province", "replica", "node", "grpc", "http", "platform"],
            [
                [
                    c.province,
                    number,
                    c.node_id,
                    c.grpc_listen,
                    c.http_listen,
                    c.platform.url.removeprefix("http://") if c.platform else None,
                ]
                for numbered in replicas.values()
                for number, c in enumerate(numbered, start=1)
            ],
        )
    )
    sys.stdout.write(
        f"(ports: gRPC {base_port}.., HTTP {base_port + 1000}.., platforms "
        f"{base_port + 2000}..; --base-port moves them)\n"
    )
    sys.stdout.write(how_to_reach(directory, configs))
    sys.stdout.write(f"start it: yrd mesh up --dir {directory}\n")
    return 0


def suites_said(manifest: Manifest) -> str:
    """``shanghai sm2, jiangsu ed25519, …``: each member's suite, from its current keys."""
    return ", ".join(
        f"{m.province} {'+'.join(sorted({k.verify_key.suite.name for k in m.keys}))}"
        for m in manifest.members
    )


def how_to_reach(directory: Path, configs: Sequence[NodeConfig]) -> str:
    """The dashboard URL showing every node, and commands to paste, with the mesh's ports."""
    urls = [f"http://{c.http_listen}" for c in configs]
    viewer = directory / VIEWER_FILE
    return (
        f"\ndashboard of every node (user: any; password: the viewer token, cat {viewer}):\n"
        f"  {urls[0]}/?mesh={','.join(urls)}\n"
        "ask a node yourself:\n"
        f"  VIEWER=$(cat {viewer})\n"
        f'  curl -s -H "Authorization: Bearer $VIEWER" {urls[0]}/v1/status\n'
        f"  curl -s {urls[0]}/readyz\n"
    )


def endpoints_table(nodes: list[MeshNode]) -> str:
    """A row per node process: a province's replicas one under another."""
    rows = []
    for n in nodes:
        rows.append([n.province, n.node_id, n.grpc, n.http, n.pid, n.platform, n.platform_pid])
        rows += [
            [f"  replica {number}", "", r.grpc, r.http, r.pid, "", ""]
            for number, r in enumerate(n.replicas[1:], start=2)
        ]
    return table(["province", "node", "grpc", "http", "pid", "platform", "platform pid"], rows)


def links_table(links: list[MeshLink]) -> str:
    return table(
        ["link", "proxy", "relays to"], [[link.name, link.listen, link.target] for link in links]
    )


def _base_port_of(directory: Path) -> int | None:
    """The base port a mesh folder was made with (its first node's gRPC port)."""
    try:
        configs = mesh_configs(directory)
    except NotAMeshFolder:
        return None
    first = min(int(c.grpc_listen.rpartition(":")[2]) for c in configs)
    return first


def run_up(args: argparse.Namespace) -> int:
    if not (args.dir / MANIFEST_FILE).exists():
        if not args.init:
            return fail(
                f"{args.dir} is not a mesh folder (no {MANIFEST_FILE}); nothing was created or "
                f"started. Create one: yrd mesh init {args.dir}; or create and start it in one "
                f"step: yrd mesh up --dir {args.dir} --init"
            )
        code = _initialise(args.dir, args.base_port or DEFAULT_BASE_PORT, told=False)
        if code:
            return code
    elif args.base_port is not None:
        made_with = _base_port_of(args.dir)
        if made_with != args.base_port:
            return fail(
                f"the mesh in {args.dir} was made with base port {made_with}; --base-port "
                f"{args.base_port} applies only when --init creates a new folder. Nothing was "
                f"started. For other ports: yrd mesh init NEWDIR --base-port {args.base_port}"
            )
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
        refused = _clear_leftovers(args.dir)
        return refused if refused is not None else _run_up(args)
    finally:
        lock.release()


def _clear_leftovers(directory: Path) -> int | None:
    """Stop the nodes and platforms an earlier ``yrd mesh up`` of this folder left running
    (killed with SIGKILL, its children live on in their own sessions), one line each; None
    when the way is clear, else the exit code of a refusal (a mesh another tool keeps)."""
    record, found = leftovers(directory)
    if record is None or not found:
        return None
    named = ", ".join(f"{x.name} pid {x.pid}" for x in found)
    keeper = record.supervisor_pid
    if keeper is None or (keeper != os.getpid() and process_alive(keeper)):
        who = "yrd demo or yrd chaos" if keeper is None else f"pid {keeper}"
        pids = " ".join(str(x.pid) for x in found)
        return fail(
            f"the mesh in {directory} is running, kept by {who}: {named}; nothing was started. "
            f"Stop it first (kill -TERM {keeper or pids})"
        )
    ended = stop_leftovers(found)
    for leftover in found:
        _tell(
            f"{ended[leftover.pid]} the {leftover.name} (pid {leftover.pid}) that an earlier "
            f"yrd mesh up (pid {keeper}, gone) left running"
        )
    return None


def _run_up(args: argparse.Namespace) -> int:
    links: LinkSet | None = None
    try:
        if args.links:
            replicas = max(len(r) for r in replica_configs(args.dir).values())
            refused = links_refused("--links", replicas)
            if refused is not None:
                return fail(refused + "; nothing was started")
        links = LinkSet.for_mesh(args.dir, seed=args.seed) if args.links else None
        mesh = Mesh(
            args.dir,
            seed=args.seed,
            officer_delay=args.officer_delay,
            links=links.mesh_links() if links else (),
        )
    except (OSError, ValueError) as exc:
        if links is not None:
            asyncio.run(links.close())
        return fail(f"cannot read mesh {args.dir}: {exc}")

    supervisor = MeshSupervisor(mesh, tell=_tell)
    prometheus = (
        Prometheus(
            args.dir,
            [c for replicas in mesh.replicas.values() for c in replicas],  # each a target
            rules=args.alert_rules or SHIPPED_RULES,
        )
        if args.monitoring
        else None
    )

    async def supervise() -> None:
        # Until everything is up (keep_mesh then sets its own handlers), Ctrl-C or SIGTERM
        # cancels the start at its next await: never between starting a process and keeping
        # its handle, so the finally below stops every process started so far.
        starting = asyncio.current_task()
        assert starting is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, starting.cancel)
        if links is not None:
            await links.start()
        try:
            await keep_mesh()
        finally:
            if links is not None:
                await links.close()

    def forward_hangup() -> None:
        pids = mesh.signal_nodes(signal.SIGHUP)
        _tell(
            f"SIGHUP passed on to {len(pids)} nodes (pids {', '.join(map(str, pids))}): "
            "each reloads its manifest and signing key"
        )

    async def keep_mesh() -> None:
        nodes = await supervisor.up()
        if prometheus is not None:
            prometheus.start()
            await prometheus.wait_ready()
            mesh.monitor = prometheus
            mesh.record()
        sys.stdout.write(endpoints_table(nodes))
        sys.stdout.write(
            how_to_reach(args.dir, [c for replicas in mesh.replicas.values() for c in replicas])
        )
        if mesh.links:
            sys.stdout.write("\n" + links_table(mesh.links))
        if prometheus is not None:
            sys.stdout.write(
                f"\nprometheus  {prometheus.url}  (alerts: {prometheus.url}/alerts; data in "
                f"{prometheus.folder})\n"
            )
        sys.stdout.write(
            f"\nlogs: {args.dir}/<province>/node.log and platform.log\n"
            f"mesh up; {args.dir / 'mesh.json'} written. A process that exits is started "
            f"again; Ctrl-C stops the mesh; kill -HUP {os.getpid()} makes every node reload "
            "its manifest and signing key.\n"
        )
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGHUP, forward_hangup)
        keeping = [supervisor.keep(stop)]
        if links is not None:
            keeping.append(LinkKeeper(args.dir, links, tell=_tell).keep(stop))
        if prometheus is not None:
            keeping.append(prometheus.keep(stop, _tell, on_start=mesh.record))
        await asyncio.gather(*keeping)

    try:
        asyncio.run(supervise())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None  # after the finally below: "interrupted", 130
    except StartupFailed as exc:
        _tell(str(exc))
        if exc.tail:
            _tell("its last lines:")
            for line in exc.tail:
                sys.stderr.write(f"    {line}\n")
        _tell("the mesh could not start; every process it started is stopped")
        return 1
    except MeshError as exc:
        return fail(str(exc), 1)
    finally:
        if prometheus is not None:
            prometheus.stop()
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


def run_link(args: argparse.Namespace) -> int:
    faulty = (
        args.latency
        or args.jitter
        or args.loss
        or args.bandwidth is not None
        or args.blackhole
        or args.partition
        or args.reset_after is not None
    )
    if args.link is None and (faulty or args.reset):
        return fail("name the link to change: SENDER:RECEIVER")
    if args.link is not None and args.heal:
        return fail("--heal clears every link; name no link with it")
    try:
        if args.link is None and not args.heal:
            running_links(args.dir)
            state = read_state(args.dir)
            if state is None:
                return fail(f"the supervisor of {args.dir} has not answered yet", 1)
        else:
            fault = (
                LinkFault(
                    latency=args.latency,
                    jitter=args.jitter,
                    loss=args.loss,
                    bandwidth=args.bandwidth,
                    blackhole=args.blackhole,
                    partition=args.partition,
                    reset_after_bytes=args.reset_after,
                )
                if faulty
                else CLEAR
            )
            state = order(args.dir, lambda orders: _ordered(orders, args.link, fault, args.reset))
    except NotDone as exc:
        return fail(str(exc), 1)
    except (MeshControlError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        emit_json(state)
    else:
        rows = [
            [
                entry["link"],
                entry["described"],
                entry["open"],
                entry["connections"],
                entry["resets"],
                entry["bytes_forward"],
                entry["bytes_back"],
            ]
            for entry in state["links"]
            if args.link in (None, entry["link"])
        ]
        sys.stdout.write(
            table(["link", "fault", "open", "connections", "resets", "bytes →", "bytes ←"], rows)
        )
    return 0


def _ordered(orders: LinkOrders, link: str | None, fault: LinkFault, reset: bool) -> LinkOrders:
    """The orders with ``link`` given ``fault`` (and reset once when ``reset``); every
    link clear when no link is named (``--heal``)."""
    if link is None:
        return LinkOrders(orders.generation)
    faults = {name: f for name, f in orders.faults.items() if name != link}
    if not fault.is_clear:
        faults[link] = fault
    return LinkOrders(orders.generation, faults, (link,) if reset else ())


def run_demo(args: argparse.Namespace) -> int:
    from node.cli.demo import demo

    try:
        store = shaped(args)
    except ValueError as exc:
        return fail(str(exc))
    return demo(
        args.dir,
        base_port=args.base_port,
        probes=args.probes,
        monitoring=args.monitoring,
        suites=args.suite,
        store=store,
        provinces=args.provinces,
    )

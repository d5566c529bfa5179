"""``yrd demo`` (``make demo``): the whole federation on this machine, in one command.

Creates a mesh, starts the four simulated platforms and the four nodes as processes, waits for
signed heartbeats on all twelve directed links, sends a burst of signed probes on every link,
waits until each one is receipted, runs cross-province cases on every directed pair through
the platforms (``node.mesh.scenario``) and certificate checks across provinces, prints the
federation status, stops, and verifies every node's evidence log.

With ``--provinces`` fewer members take part; with ``--store postgres --replicas N`` each
province's node is N processes sharing the province's database on the mesh's own
PostgreSQL server: the burst enters at every replica in turn, one replica (the first
province's last) is SIGKILLed before the cases and started again after the certificates, so
the cases run while its peers fail over to the others and its leases are taken over; the
status shows every replica, and each province's evidence log is verified once (the
replicas write one log), with the mesh's server started again for the check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitoring.status import fetch_all, problems
from node.cli.mesh_cmd import endpoints_table, suites_said, temporary_mesh_folder
from node.cli.output import fail, purpose_label, table
from node.cli.progress import Progress, say
from node.cli.status_cmd import render
from node.mesh.access import create_mesh, mesh_token
from node.mesh.auth import mesh_session
from node.mesh.layout import DEFAULT_PROVINCES, ONE_SQLITE_NODE, StoreChoice
from node.mesh.monitoring import Prometheus, fired_alerts
from node.mesh.postgres_server import ServerFailed, ServerMissing
from node.mesh.processes import Mesh, MeshError
from node.mesh.scenario import (
    PAIR_HEADERS,
    SCENE_OF_TYPE,
    check_certificates,
    outcome,
    pair_rows,
    run_cases,
)
from node.mesh.suite_choice import ED25519_THROUGHOUT, SuiteChoice
from node.store.audit import read_only, verify_store
from node.store.checkpoints import last_cosigned_by_witness
from node.store.connection import StoreLocation

HEARTBEAT_WAIT = 30.0
OFFICER_DELAY = 0.3
"""Seconds the platforms' simulated officers and applicants wait before each step."""
DRAIN_WAIT = 120.0


def _in_words(count: int) -> str:
    """``two``, ``three``, ``four``: how many provinces a mesh has, as the demo says it."""
    return {2: "two", 3: "three", 4: "four"}.get(count, str(count))


def _pairs(mesh: Mesh) -> int:
    """The mesh's directed province pairs (twelve among four)."""
    return len(mesh.configs) * (len(mesh.configs) - 1)


async def _wait_links_up(mesh: Mesh) -> None:
    """Until every node process (every replica) has its links to every peer up."""
    deadline = time.monotonic() + HEARTBEAT_WAIT
    progress = Progress()
    while True:
        answers = await fetch_all(list(mesh.named_urls), mesh_token(mesh.directory, "", "read"))
        links = [(a.status or {}).get("peers", []) for a in answers]
        up = sum(1 for peers in links for link in peers if link.get("up"))
        total = sum(len(peers) for peers in links)
        progress.show(f"heartbeats: {up}/{total} directed links up")
        if total and up == total:
            progress.done()
            return
        if time.monotonic() > deadline:
            raise MeshError(f"only {up} of {total} links came up within {HEARTBEAT_WAIT:.0f} s")
        await asyncio.sleep(0.5)


def probe_shares(probes: int, replicas: int) -> list[int]:
    """How a link's ``probes`` are entered at a province's ``replicas`` in turn: as evenly
    as they go, the first ones taking the remainder, none given zero."""
    shares = [probes // replicas + (1 if r < probes % replicas else 0) for r in range(replicas)]
    return [share for share in shares if share]


async def _burst(mesh: Mesh, probes: int) -> int:
    sent = 0
    async with mesh_session(mesh.directory) as session:
        for config in mesh.configs:
            replicas = len(mesh.replicas[config.province])
            for other in mesh.configs:
                if other.province == config.province:
                    continue
                for replica, share in enumerate(probe_shares(probes, replicas), start=1):
                    async with session.post(
                        mesh.url(config.province, replica) + "/v1/probes",
                        json={"peer": other.province, "count": share, "payload_bytes": 256},
                    ) as response:
                        body: dict[str, Any] = await response.json()
                        if response.status != 202:
                            raise MeshError(
                                f"{mesh.name(config.province, replica)} refused the burst: {body}"
                            )
                        sent += len(body["message_ids"])
    return sent


def burst_progress(received: int, expected: int) -> str:
    """Probes stored and receipted by their receivers, and the rest: two parts of one whole.

    (The outboxes' backlog is no part of it: a probe leaves its sender's outbox only once
    the receipt is back, and other messages wait there too.)"""
    on_the_way = max(0, expected - received)
    return f"probes receipted {received} of {expected}, {on_the_way} on their way"


async def _wait_drained(mesh: Mesh, expected: int) -> list[Any]:
    deadline = time.monotonic() + DRAIN_WAIT
    progress = Progress()
    while True:
        answers = await fetch_all(mesh.urls, mesh_token(mesh.directory, "", "read"))
        received = sum((a.status or {}).get("inbox_by_type", {}).get("probe", 0) for a in answers)
        backlog = sum(
            link.get("outbox_depth", 0)
            for a in answers
            for link in (a.status or {}).get("peers", [])
        )
        progress.show(burst_progress(received, expected))
        if received >= expected and backlog == 0:
            progress.done()
            return answers
        if time.monotonic() > deadline:
            raise MeshError(f"burst not drained within {DRAIN_WAIT:.0f} s")
        await asyncio.sleep(0.2)


async def _show_catalog(mesh: Mesh) -> list[dict[str, Any]]:
    """The federated catalog as the first node sees it, once every province announced."""
    url = mesh.urls[0] + "/v1/catalog"
    deadline = time.monotonic() + HEARTBEAT_WAIT
    async with mesh_session(mesh.directory) as session:
        while True:
            async with session.get(url) as response:
                body: dict[str, Any] = await response.json()
            if len(body["provinces"]) == len(mesh.configs) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    per_province: dict[str, int] = {}
    for matter in body["matters"]:
        per_province[matter["handler"]] = per_province.get(matter["handler"], 0) + 1
    say(
        f"federated catalog (signed announcements): {len(body['matters'])} cross-province "
        "matters — " + ", ".join(f"{p} {n}" for p, n in sorted(per_province.items())) + "\n"
    )
    matters: list[dict[str, Any]] = body["matters"]
    return matters


_STEP = {
    "deliver": "delivered",
    "accept": "accepted",
    "reject": "rejected",
    "request_supplement": "补正",
    "supplement": "supplied",
    "complete": "completed",
    "deny": "denied",
    "withdraw": "withdrawn",
    "evaluate": "evaluated",
}


async def _cases(mesh: Mesh, catalog: list[dict[str, Any]], per_pair: int) -> None:
    say(
        f"cases (跨省通办): {per_pair * _pairs(mesh)} applications entered at the "
        f"{len(mesh.configs)} platforms, each in its own dialect, for matters of the other "
        "provinces; officers and applicants are the platforms' simulated people, the nodes "
        "carry everything between them…"
    )
    started = time.monotonic()
    progress = Progress()
    done = await run_cases(mesh, catalog, per_pair=per_pair, show=progress.show)
    progress.done()
    elapsed = time.monotonic() - started
    say(table(PAIR_HEADERS, pair_rows(done)))
    rows = [
        [
            case.case_id,
            f"{case.accepting} → {case.handling}",
            " → ".join(_STEP.get(step, step) for step in case.path),
            f"{case.seconds or 0:.1f}",
        ]
        for case in done
    ]
    say(table(["case", "accepting → handling", "path (signed updates)", "s"], rows))
    updates = sum(len(case.path) for case in done)
    equal = sum(case.equal for case in done)
    outcomes: dict[str, int] = {}
    for case in done:
        outcomes[outcome(case)] = outcomes.get(outcome(case), 0) + 1
    say(
        f"  {len(done)} cases concluded in {elapsed:.1f} s ("
        + ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
        + f"), {updates} signed case updates; both sides' histories equal for {equal} of "
        f"{len(done)}"
    )
    levels: dict[str, list[int]] = {}
    for case in done:
        if case.level is not None:
            levels.setdefault(case.handling, []).append(case.level)
    say(
        "  satisfaction (好差评) by handling province: "
        + ", ".join(
            f"{p} {sum(v) / len(v):.1f}/5 ({sum(x >= 3 for x in v)}/{len(v)} 满意)"
            for p, v in sorted(levels.items())
        )
        + "\n"
    )
    if equal != len(done):
        raise MeshError("the two sides of a case disagree about its history")


async def _certificates(mesh: Mesh, catalog: list[dict[str, Any]]) -> None:
    say("certificates (电子证照互认): online checks across provinces, offline presentations…")
    checks, presentations = await check_certificates(mesh, catalog)
    say(
        table(
            ["issuer", "checked by", "certificate", "purpose", "result", "fields disclosed"],
            [
                [c.issuer, c.verifier, c.certificate_type, purpose_label(c.purpose, catalog),
                 c.result, ", ".join(c.fields) or "(status only)"]
                for c in checks
            ],
        )
    )  # fmt: skip
    for line in presentations:
        say(f"  {line}")
    say(f"  {await _bulk_check(mesh)}")
    say("")


async def _bulk_check(mesh: Mesh) -> str:
    """Every ID card the platforms hold, checked for status in one bulk request at the
    first node (``POST /v1/certificates/verify-batch``): its one line of the demo."""
    verifier = mesh.configs[0].province
    items: list[dict[str, Any]] = []
    async with mesh_session(mesh.directory) as session:
        for config in mesh.configs:
            platform = mesh.platform_url(config.province)
            if platform is None:
                continue
            async with session.get(platform + "/sim/fixtures") as response:
                fixtures = await response.json()
            items += [
                {"certificate_id": c["certificate_id"], "holder_code": c["holder_code"],
                 "purpose": SCENE_OF_TYPE["resident_id_card"], "requester": "演示连锁酒店"}
                for c in fixtures["certificates"]
                if c["type"] == "resident_id_card"
            ]  # fmt: skip
        started = time.monotonic()
        url = mesh.url(verifier) + "/v1/certificates/verify-batch"
        async with session.post(url, json={"items": items}) as response:
            answer = await response.json()
            if response.status != 200:
                raise MeshError(f"{verifier} refused the bulk check: {answer}")
    elapsed = time.monotonic() - started
    statuses = [r["result"]["status"] if "result" in r else "refused" for r in answer["results"]]
    counted = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    return (
        f"bulk check at {verifier}: {len(items)} ID cards of every province in one request "
        f"(POST /v1/certificates/verify-batch), {elapsed:.2f} s: {counted}"
    )


def _replicas_said(mesh: Mesh) -> str:
    """``2 replicas each`` on a mesh of replicas; nothing on one of single nodes."""
    counts = {len(replicas) for replicas in mesh.replicas.values()}
    if counts == {1}:
        return ""
    each = "/".join(str(n) for n in sorted(counts))
    return f", {each} replicas each sharing its province's PostgreSQL database"


async def _replica_down(mesh: Mesh) -> tuple[str, int] | None:
    """On a mesh of replicas, SIGKILL the first province's last replica (the REST calls
    of the demo go to the first replicas): the replica it was, or None on single nodes."""
    province = mesh.configs[0].province
    replica = len(mesh.replicas[province])
    if replica == 1:
        return None
    process = mesh.process(province, "node", replica)
    process.kill()
    await asyncio.to_thread(process.wait)
    say(
        f"SIGKILL {mesh.name(province, replica)} (pid {process.pid}): the cases below run "
        f"without it; its peers move to another of {province}'s endpoints and the leases it "
        "held lapse and are taken over by another replica\n"
    )
    return province, replica


async def _replica_back(mesh: Mesh, down: tuple[str, int]) -> None:
    province, replica = down
    started = time.monotonic()
    process = mesh.start_process(province, "node", replica)
    await mesh.wait_process(province, "node", replica)
    mesh.record()
    say(
        f"{mesh.name(province, replica)} started again (pid {process.pid}), ready after "
        f"{time.monotonic() - started:.1f} s\n"
    )


async def _scenario(mesh: Mesh, probes: int, per_pair: int, prometheus: Prometheus | None) -> bool:
    provinces = _in_words(len(mesh.configs))
    say(
        f"starting {provinces} simulated platforms and {provinces} nodes{_replicas_said(mesh)} "
        "(separate processes)…"
    )
    nodes = await mesh.up()
    say(endpoints_table(nodes))
    started_at = time.time()
    if prometheus is not None:
        prometheus.start()
        await prometheus.wait_ready()
        mesh.monitor = prometheus
        mesh.record()
        say(f"prometheus scrapes every node with the shipped alert rules: {prometheus.url}")
    say(f"waiting for signed heartbeats on all {_pairs(mesh)} directed links…")
    await _wait_links_up(mesh)
    say(
        f"burst: {probes} signed probes on each directed link"
        + (", entered at each replica of the sender in turn" if _replicas_said(mesh) else "")
        + "…"
    )
    started = time.monotonic()
    sent = await _burst(mesh, probes)
    await _wait_drained(mesh, sent)
    elapsed = time.monotonic() - started
    say(
        f"  {sent} messages signed, stored, delivered and receipted in {elapsed:.2f} s "
        f"({sent / elapsed:.0f} msg/s across the mesh)\n"
    )
    catalog = await _show_catalog(mesh)
    down = await _replica_down(mesh)
    await _cases(mesh, catalog, per_pair)
    await _certificates(mesh, catalog)
    if down is not None:
        await _replica_back(mesh, down)
        await _wait_links_up(mesh)
    say("federation status:")
    named = mesh.named_urls
    answers = await fetch_all(list(named), mesh_token(mesh.directory, "", "read"), named)
    say(render(answers))
    found = problems(answers)
    say("healthy" if not found else "UNHEALTHY:\n" + "\n".join(f"  - {p}" for p in found))
    if prometheus is not None:
        fired = await fired_alerts(prometheus.url, started_at)
        say(
            "alerts that fired during the demo: "
            + (
                ", ".join(sorted(f"{a.get('alertname')} ({a.get('province', '?')})" for a in fired))
                or "none"
            )
        )
    return not found


def demo(
    directory: Path | None,
    *,
    base_port: int,
    probes: int,
    per_pair: int = 2,
    monitoring: bool = False,
    suites: SuiteChoice = ED25519_THROUGHOUT,
    store: StoreChoice = ONE_SQLITE_NODE,
    provinces: Sequence[str] = DEFAULT_PROVINCES,
) -> int:
    with temporary_mesh_folder("yrd-demo-", store) as tmp:
        root = directory or tmp / "mesh"
        say(
            f"yrd demo: a {_in_words(len(provinces))}-province federation in {root}"
            + ("" if directory else " (a temporary folder, deleted at the end; --dir DIR keeps it)")
        )
        try:
            manifest = create_mesh(
                root,
                now=time.time(),
                base_port=base_port,
                suites=suites,
                store=store,
                provinces=provinces,
            )
        except (OSError, ValueError, ServerMissing, ServerFailed) as exc:
            return fail(str(exc))
        say(
            "  created CA, governance key, manifest v1, and per province: TLS certificate, "
            "signing key, node.toml"
        )
        say(f"  signing suites: {suites_said(manifest)}; governance key {suites.governance.name}")
        mesh = Mesh(root, officer_delay=OFFICER_DELAY)
        prometheus = Prometheus(root, mesh.configs) if monitoring else None
        healthy = False
        try:
            healthy = asyncio.run(_scenario(mesh, probes, per_pair, prometheus))
        except MeshError as exc:
            say(f"demo failed: {exc}")
        finally:
            if prometheus is not None:
                prometheus.stop()
            codes = mesh.stop()
            say("stopped: " + ", ".join(f"{p} exit {c}" for p, c in codes.items()))
        say("evidence logs:")
        intact = _evidence_intact(mesh)
        say(
            f"the mesh stays in {root} (yrd mesh up --dir {root} starts it again)"
            if directory is not None
            else f"deleting the temporary folder {root.parent} with the mesh, its stores and "
            "logs (yrd demo --dir DIR keeps them)"
        )
        return 0 if healthy and intact else 1


def _evidence_intact(mesh: Mesh) -> bool:
    """``yrd audit verify`` on each province's store, said line by line: once per province,
    however many replicas wrote it (they share one database, running again meanwhile)."""
    intact = True
    try:
        with mesh.stores_readable():
            for config in mesh.configs:
                report = verify_store(config.paths.store)
                intact &= report.ok
                writers = len(mesh.replicas[config.province])
                say(
                    f"  {config.province:<9} {report.entries:>6} entries"
                    + (f" (one log, {writers} replicas wrote it)" if writers > 1 else "")
                    + ", "
                    + (
                        f"chain and signatures verified; {_witnesses_of(config.paths.store)}"
                        if report.ok
                        else f"BROKEN at {report.first_bad_seq}: {report.reason}"
                    )
                )
    except (ServerMissing, ServerFailed) as exc:
        say(f"  not verified: the mesh's database server did not start again: {exc}")
        return False
    return intact


def _witnesses_of(store: StoreLocation) -> str:
    """Which peers cosigned the log, each with the size of the last checkpoint it cosigned
    (the whole log when the shutdown checkpoint was witnessed)."""
    with read_only(store) as conn:
        last = last_cosigned_by_witness(conn)
    if not last:
        return "no checkpoint cosigned by any witness"
    return "cosigned by " + ", ".join(
        f"{witness} (at {size})" for witness, (size, _) in sorted(last.items())
    )

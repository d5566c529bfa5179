"""A store that cannot take writes is a state, not a crash.

While a node's store refuses writes (disk full): REST writes answer 503 ``store_unavailable``
with ``Retry-After``; a peer's message gets a signed ``store_unavailable`` fault with gRPC
UNAVAILABLE; readiness names the store; reads still work. Once space returns, without a
restart, every case accepted before, during and after is handed off and concluded on both
sides, the evidence logs verify, and no case exists on one side only.

The fault comes two ways: SQLite's own ``max_page_count`` limit on the node's writer (always
runs; SQLite then fails exactly as on a full disk, SQLITE_FULL), and a real small tmpfs the
test fills with a file (where the test may mount one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient

from node.mesh.layout import node_id_for
from node.protocol.envelope import seal, statement_of
from node.runtime.node import Node
from node.store.audit import verify_store
from node.store.database import StoreUnavailable
from node.transport.errors import FAULT_TRAILER
from node.trust.keys import load_signing_key
from node.wire import DELIVER_METHOD, pb
from tests.cases import case_body, matter_of, status_of
from tests.federation import probe_message
from tests.nodes import (
    BUDGET,
    config_for,
    eventually,
    eventually_async,
    make_mesh,
    raw_channel,
    serving,
    settled,
    tls_of,
)

Client = TestClient[Any, Any]
MATTER = matter_of("jiangsu")
CASES = 24
LAST_PROBE: list[str] = []
CONCLUDED = {"completed", "evaluated"}


@contextlib.asynccontextmanager
async def pair(mesh: Path, **changes: object) -> AsyncIterator[tuple[Node, Client, Node, Client]]:
    async with (
        serving(config_for(mesh, "shanghai", **changes)) as (sh, sh_client),
        serving(config_for(mesh, "jiangsu")) as (js, js_client),
    ):
        await eventually(lambda: settled(sh, js))
        yield sh, sh_client, js, js_client


async def page_limit(node: Node, pages: int | None) -> None:
    """Cap the store at its current size (None: lift the cap), as a full disk would."""

    def cap(conn: Any) -> None:
        count = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {count if pages is None else pages}")

    # The limit is the connection's, not the transaction's: it holds even when the writes
    # that share the cap's transaction overrun it and the transaction is lost with them.
    with contextlib.suppress(StoreUnavailable):
        await node.db.write(cap)


class Load:
    """A platform submitting cases one after another, each with its own Idempotency-Key,
    sending a refused one again after a pause, as a real platform would after a 503."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.case_ids: list[str] = []
        self.unavailable: list[dict[str, Any]] = []
        self.retry_after: set[str] = set()

    async def run(self, count: int) -> None:
        for index in range(count):
            body = case_body(MATTER, seed=1000 + index)
            while True:
                response = await self.client.post(
                    "/v1/cases", json=body, headers={"Idempotency-Key": f"load-{index}"}
                )
                if response.status == 201:
                    self.case_ids.append((await response.json())["case_id"])
                    break
                assert response.status == 503, await response.text()
                assert response.content_type == "application/problem+json"
                self.unavailable.append(await response.json())
                self.retry_after.add(response.headers.get("Retry-After", ""))
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)


async def deliver_probe(sender_mesh: Path, receiver: Node) -> tuple[grpc.StatusCode, bytes]:
    """Jiangsu's signed probe to ``receiver`` over mutual TLS: the status and signed reply
    (``LAST_PROBE`` holds the probe's message id)."""
    key = load_signing_key(sender_mesh / "jiangsu" / "signing.key")
    message = probe_message("jiangsu", "shanghai", now=receiver.clock())
    # Large enough to need fresh pages, as most real writes do.
    message.probe.payload = os.urandom(32 * 1024)
    message.header.sender = node_id_for("jiangsu")
    message.header.recipient = receiver.config.node_id
    message.header.manifest_version = receiver.credentials.manifest.version
    envelope = seal(message, key).envelope
    LAST_PROBE[:] = [message.header.message_id]
    async with raw_channel(
        receiver.config, tls_of(sender_mesh, "jiangsu"), receiver.config.node_id
    ) as channel:
        try:
            reply = await channel.unary_unary(DELIVER_METHOD)(envelope, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code(), dict(error.trailing_metadata() or ()).get(FAULT_TRAILER, b"")
    return grpc.StatusCode.OK, reply


async def store_named_not_ready(client: Client) -> bool:
    """/readyz fails naming the store; /v1/status says why."""
    ready = await client.get("/readyz")
    if ready.status != 503 or (await ready.json())["checks"]["store"] != "failing":
        return False
    status = await (await client.get("/v1/status")).json()
    return "full" in status["checks"]["store"]


def signed_by_node(reply: bytes, node: Node) -> bool:
    envelope = pb.Envelope.FromString(reply)
    key = node.credentials.manifest.all_keys().get(envelope.key_id)
    return key is not None and key.verify(envelope.signature, statement_of(envelope) or b"")


def reply_body(reply: bytes) -> pb.Message:
    return pb.Message.FromString(pb.Envelope.FromString(reply).message)


async def conclude_all(js_client: Client, case_ids: list[str], sh: Node, js: Node) -> None:
    """The handler accepts and completes every case; both sides then show it completed."""
    for case_id in case_ids:
        await eventually(lambda c=case_id: status_of(js, c) is not None)
        for event in (
            {"action": "accept"},
            {"action": "complete", "result": {"kind": "document", "document_sha256": "ab" * 32}},
        ):
            response = await js_client.post(f"/v1/cases/{case_id}/events", json=event)
            assert response.status in (200, 202), await response.text()
    await eventually(
        lambda: (
            all(status_of(sh, c) in CONCLUDED for c in case_ids)
            and all(status_of(js, c) in CONCLUDED for c in case_ids)
        ),
        timeout=BUDGET,
    )


def case_ids_of(node: Node) -> set[str]:
    return {str(r[0]) for r in node.db.reader().execute("SELECT case_id FROM cases")}


async def run_through_full_store(
    mesh: Path,
    *,
    fill: Callable[[Node], Awaitable[None]],
    free: Callable[[Node], Awaitable[None]],
    **changes: object,
) -> None:
    async with pair(mesh, **changes) as (sh, sh_client, js, js_client):
        stores = [sh.config.paths.store, js.config.paths.store]
        load = Load(sh_client)
        submitting = asyncio.create_task(load.run(CASES))
        try:
            await through_the_fault(
                mesh, sh, sh_client, js, js_client, load, submitting, fill, free
            )
        finally:
            submitting.cancel()
    for store in stores:
        report = verify_store(store)
        assert report.ok, report.reason


async def through_the_fault(
    mesh: Path,
    sh: Node,
    sh_client: Client,
    js: Node,
    js_client: Client,
    load: Load,
    submitting: asyncio.Task[None],
    fill: Callable[[Node], Awaitable[None]],
    free: Callable[[Node], Awaitable[None]],
) -> None:
    await eventually(lambda: len(load.case_ids) >= 4)
    await fill(sh)
    await eventually(lambda: bool(load.unavailable))

    problem = load.unavailable[0]
    assert problem["code"] == "store_unavailable"
    assert problem["status"] == 503
    assert load.retry_after == {"5"}
    # Readiness names the store while writes fail. (A full disk may still take a small
    # write now and then, in room left inside pages or the write-ahead log; so "while".)
    await eventually_async(lambda: store_named_not_ready(sh_client))
    # Reads keep working.
    listed = await sh_client.get("/v1/cases")
    assert listed.status == 200
    shown = await sh_client.get(f"/v1/cases/{load.case_ids[0]}")
    assert shown.status == 200
    # A peer's message gets a signed fault that says to try again later.
    replies = []
    for _ in range(50):
        status, reply = await deliver_probe(mesh, sh)
        replies.append(status)
        if status != grpc.StatusCode.OK:
            break
    assert status == grpc.StatusCode.UNAVAILABLE, replies
    fault = reply_body(reply)
    assert fault.WhichOneof("body") == "fault"
    assert fault.fault.code == "store_unavailable"
    assert signed_by_node(reply, sh)
    # About that very message, so its sender can tell the fault answers it.
    assert fault.header.in_reply_to == fault.fault.message_id == LAST_PROBE[0]

    await free(sh)
    await asyncio.wait_for(submitting, timeout=BUDGET)
    assert len(load.case_ids) == CASES
    await eventually(lambda: sh.health.readiness()["store"] == "ok")
    await conclude_all(js_client, load.case_ids, sh, js)
    await eventually(lambda: all(v == "ok" for v in sh.health.readiness().values()))
    assert case_ids_of(sh) == case_ids_of(js) == set(load.case_ids)
    # Each case was submitted exactly once, though many submissions were refused.
    assert len(set(load.case_ids)) == CASES
    status, reply = await deliver_probe(mesh, sh)
    assert status == grpc.StatusCode.OK
    assert reply_body(reply).WhichOneof("body") == "receipt"


async def test_store_at_its_page_limit_refuses_writes_then_resumes(tmp_path: Path) -> None:
    """With SQLite's page limit reached (SQLITE_FULL, as on a full disk) under load: 503s,
    signed UNAVAILABLE faults, readiness naming the store; lifted, everything resumes."""
    mesh = make_mesh(tmp_path)

    async def fill(node: Node) -> None:
        await page_limit(node, None)

    async def free(node: Node) -> None:
        await page_limit(node, 1 << 30)

    await run_through_full_store(mesh, fill=fill, free=free)


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "32m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``; skips the test where mounting is not allowed."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.slow
async def test_store_on_a_full_filesystem_refuses_writes_then_resumes(tmp_path: Path) -> None:
    """A node whose store sits on a real small filesystem that fills up under load refuses
    writes cleanly and, once space is freed, finishes every case without a restart."""
    mesh = make_mesh(tmp_path)
    with small_filesystem(tmp_path / "small") as small:
        filler = small / "filler"

        async def fill(node: Node) -> None:
            # Take every free byte but a few pages, so the next writes find the disk full.
            free = shutil.disk_usage(small).free
            with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
                handle.write(b"\0" * max(0, free - 8192))
                while True:
                    handle.write(b"\0" * 4096)

        async def free(node: Node) -> None:
            filler.unlink()

        config = config_for(mesh, "shanghai")
        # The node's store, with the REST tokens `mesh init` put in it, moves to the small disk.
        shutil.copy(config.paths.store, small / "node.db")
        await run_through_full_store(
            mesh,
            fill=fill,
            free=free,
            paths=replace(config.paths, store=small / "node.db"),
        )

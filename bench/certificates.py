"""Certificate benchmark: online verification (cache cold and warm), offline presentation
checks and the presentation's size, measured against bare Ed25519 verification, in one run
on this machine.

Run::

    .venv/bin/python bench/certificates.py                # full run (about 45 s)
    .venv/bin/python bench/certificates.py --quick        # smoke run (about 10 s)
    .venv/bin/python bench/certificates.py --revoked 1000 # a longer revocation list
    .venv/bin/python bench/certificates.py --json         # one JSON object: {"rows": [...]}

Two real node processes (Shanghai issuing, Jiangsu requesting; ``yrd node run``) on a fresh
two-province mesh without platforms, so Shanghai's library is its store. This process loads
``--cards`` valid resident ID cards and ``--revoked`` revoked ones into it
(``POST /v1/certificates``), then restarts Shanghai so that it publishes a revocation list
naming the revoked ones at start instead of at its next refresh (30 s), and waits until
Jiangsu holds that list: its ``POST /v1/presentations/verify`` answers with an age and the
version Shanghai's own answer names. Each row then runs for ``--seconds``, after a short
warm-up that is not counted.

``bare aiohttp`` (``bare-aiohttp``: the ceiling of the HTTP rows)
    A JSON POST echo served by aiohttp in a process of its own (this file with
    ``--echo-port``), asked at the same concurrency with a body like the cold row's question:
    what the HTTP stack alone costs on this machine, in this run.
``bare Ed25519 verify`` (``bare-ed25519``: the ceiling of the in-process rows)
    ``node.trust.keys.VerifyKey.verify`` in a tight loop in this process, over a message as
    large as the signed part of a real attestation envelope of this run.
``online verify, cache cold``
    ``POST /v1/certificates/verify`` at Jiangsu, ``--concurrency`` in flight, each a question
    Jiangsu has not been asked: the hotel check-in scene asking ``name`` under a consent grant
    id used once. ``VerifyRequest.cache_key`` holds the consent (``requester`` is not in it),
    so every one goes to Shanghai and back: sealed, delivered over mutual TLS, checked,
    answered with a signed attestation that Jiangsu checks, both sides recording it durably.
    The run prints how many were answered from the cache (0) and how many usage records
    Shanghai added (one each).
``online verify, cache warm``
    One question repeated, answered from Jiangsu's cache without asking Shanghai.
``offline presentation, HTTP``
    ``POST /v1/presentations/verify`` at Jiangsu, cycling over presentations Shanghai issued,
    checked against Shanghai's key in the manifest and the list Jiangsu holds.
``offline presentation, in-process``
    ``read_presentation`` + ``check_offline`` over the same tokens and list in this process
    (after the nodes stopped): the crypto and parsing without HTTP.
``offline, the route's work`` (``offline-inprocess``)
    What the route does per request besides HTTP and metrics: the issuer-key lookup, the
    held list from memory (``HeldLists``: read from Jiangsu's store, verified and parsed at
    the first look only), then the two functions above.
``bulk verify, cold, N a request`` (``bulk-cold-1``, ``-16``, ``-128``)
    ``POST /v1/certificates/verify-batch`` at Jiangsu with N cold questions each, enough
    requests in flight for ``--concurrency`` questions (at least two); items per second.
``presentation token``
    Characters of a token; the ceiling here is what a QR code holds (version 40, level L).

Rates are per second; the ratio is the figure over the ceiling. A cold online verification
takes four Ed25519 operations (Jiangsu signs the request and verifies the attestation,
Shanghai verifies the request and signs the answer; a frame of questions shares those
signatures, but each grant's signature is checked on both sides), an offline check one for
the token: a ratio near 1/4 or 1 would mean signatures are all the work. Every cold question
carries a grant of its own, signed by this process. The CPU columns are each
process's user + system time per item over the row (the client is this process): on 2
shared cores, a process near 1 / rate is the bottleneck. The load average is printed
before and after.

Benchmarks print figures; they never assert timing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.certificates.consent import ConsentGrant, sign_grant  # noqa: E402
from node.certificates.held_lists import HeldLists  # noqa: E402
from node.certificates.issuers import manifest_issuer_keys  # noqa: E402
from node.certificates.model import TYPES  # noqa: E402
from node.certificates.presentation import (  # noqa: E402
    QR_BYTE_CAPACITY,
    check_offline,
    read_presentation,
)
from node.certificates.revocation import read_revocation_list  # noqa: E402
from node.identifiers import make_certificate_id, make_credit_code, make_id_number  # noqa: E402
from node.mesh.access import create_mesh  # noqa: E402
from node.mesh.auth import mesh_session  # noqa: E402
from node.mesh.layout import ports_for, read_manifest  # noqa: E402
from node.mesh.processes import node_run_command  # noqa: E402
from node.protocol.envelope import DOMAIN_PREFIX  # noqa: E402
from node.runtime.config import load_config  # noqa: E402
from node.store import certificates as store  # noqa: E402
from node.trust.keys import SigningKey, load_signing_key  # noqa: E402
from node.wire import pb  # noqa: E402

PROVINCES = ("shanghai", "jiangsu")
DIVISION = "310104"  # Xuhui, Shanghai: the issuing authority's and the holders' division
SCENE = "hotel_check_in"
TOKENS = 16
BULK_SIZES = (1, 16, 128)
"""Items a bulk request asks, one row each."""
"""Presentations issued for the offline rows, cycled over (one per card)."""
SURNAMES = "李王张刘陈杨赵黄周吴"
GIVEN = "明华静伟芳娜敏强磊军"


@dataclass
class Side:
    province: str
    url: str
    process: subprocess.Popen[bytes]

    def cpu(self) -> float:
        """User + system seconds the process has used, all threads (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    path: str
    """The row's name in ``--json`` (``bare-aiohttp``, ``online-cold``, …)."""
    name: str
    figure: float
    ceiling: float
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per request by process: ``shanghai``, ``jiangsu``, ``client``."""
    count: int = 0
    """Requests or iterations the figure was measured over."""


@dataclass
class Card:
    certificate_id: str
    holder_code: str
    document: dict[str, Any]


def make_cards(valid: int, revoked: int) -> list[Card]:
    """Resident ID cards issued in Xuhui, deterministic, ``revoked`` of them revoked."""
    rng = random.Random(2025)
    authority = make_credit_code(rng, division=DIVISION)
    cards = []
    for i in range(valid + revoked):
        sex: Literal["male", "female"] = "male" if i % 2 == 0 else "female"
        birth = date(1960 + i % 40, 1 + i % 12, 1 + i % 28)
        code = make_id_number(rng, division=DIVISION, birth=birth, sex=sex)
        name = SURNAMES[i % 10] + GIVEN[i // 10 % 10] + GIVEN[i % 7]
        cert_id = str(
            make_certificate_id(TYPES["resident_id_card"].type_code, authority, f"BENCH{i:06d}")
        )
        document = {
            "certificate_id": cert_id,
            "type": "resident_id_card",
            "issuing_authority": "上海市公安局徐汇分局",
            "issuing_authority_code": authority,
            "holder_name": name,
            "holder_code_type": "111",
            "holder_code": code,
            "issued_on": "2016-03-02",
            "valid_from": "2016-03-02",
            "valid_until": "2036-03-02",
            "status": "valid" if i < valid else "revoked",
            "fields": {
                "name": name,
                "sex": sex,
                "ethnicity": "汉",
                "birth_date": birth.isoformat(),
                "address": f"上海市徐汇区漕溪北路{i + 1}号",
                "id_number": code,
            },
        }
        cards.append(Card(cert_id, code, document))
    return cards


class Bench:
    def __init__(
        self, session: aiohttp.ClientSession, sh: Side, js: Side, grantor: Grantor
    ) -> None:
        self.session = session
        self.sh = sh
        self.js = js
        self.grantor = grantor
        self.others: dict[str, Side] = {}
        """Other processes whose CPU the rows count (the echo server)."""
        self.run_id = f"{time.time_ns():x}"

    async def call(
        self, method: str, url: str, body: Any = None, *, expect: int = 200
    ) -> dict[str, Any]:
        async with self.session.request(method, url, json=body) as response:
            data: dict[str, Any] = await response.json(content_type=None)
            if response.status != expect:
                raise RuntimeError(f"{method} {url}: {response.status} {data}")
            return data

    async def bounded(
        self, n: int, concurrency: int, make: Callable[[int], Awaitable[Any]]
    ) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await make(i)

        await asyncio.gather(*(one(i) for i in range(n)))

    async def measured(
        self,
        path: str,
        name: str,
        seconds: float,
        concurrency: int,
        make: Callable[[int], Awaitable[Any]],
        *,
        per_call: int = 1,
    ) -> Row:
        """Call ``make(0)``, ``make(1)``, … with ``concurrency`` in flight for ``seconds``; the
        rate (of ``per_call`` items a call) and each process's CPU time per item."""
        sides = {"shanghai": self.sh, "jiangsu": self.js, **self.others}
        before = {name: side.cpu() for name, side in sides.items()}
        client = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        count = itertools.count()
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await make(next(count))
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        items = done * per_call
        cpu = {name: (side.cpu() - before[name]) / items for name, side in sides.items()}
        cpu["client"] = (time.process_time() - client) / items
        return Row(path, name, items / elapsed, 0.0, cpu, items)

    async def load(self, cards: list[Card], concurrency: int) -> None:
        await self.bounded(
            len(cards),
            concurrency,
            lambda i: self.call(
                "POST", self.sh.url + "/v1/certificates", cards[i].document, expect=201
            ),
        )

    async def present(self, card: Card) -> str:
        body = {"certificate_id": card.certificate_id, "holder_code": card.holder_code}
        issued = await self.call("POST", self.sh.url + "/v1/presentations", body, expect=201)
        return str(issued["token"])

    async def check_token(self, side: Side, token: str) -> dict[str, Any]:
        return await self.call("POST", side.url + "/v1/presentations/verify", {"token": token})

    async def wait_for_list(self, token: str) -> int:
        """Wait until Jiangsu holds Shanghai's current revocation list; return its version."""
        version = (await self.check_token(self.sh, token))["revocation_list_version"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            checked = await self.check_token(self.js, token)
            if (
                checked["revocation_list_age_seconds"] is not None
                and checked["revocation_list_version"] == version
            ):
                return int(version)
            await asyncio.sleep(0.1)
        raise RuntimeError(f"jiangsu did not receive shanghai's revocation list {version}")

    def question(self, card: Card, grant_id: str) -> dict[str, Any]:
        """A hotel check-in asking ``name``, under a grant of its own (signed here, as
        Jiangsu's node would: ``POST /v1/consents`` per question would time that too)."""
        return {
            "certificate_id": card.certificate_id,
            "holder_code": card.holder_code,
            "purpose": SCENE,
            "fields": ["name"],
            "consent": {"grant": self.grantor.grant(card.holder_code, grant_id)},
            "requester": "南京市某酒店",
        }

    def cold_question(self, card: Card, n: int) -> dict[str, Any]:
        """A question never asked before, under a grant of its own signed here (the client
        pays for that signature): both nodes verify each grant once (a grant read again is
        not verified again, consent.py rule 6), so a grant shared by questions would time a
        dict lookup instead of the signature check a real first question costs."""
        return {**self.question(card, f"{self.run_id}-c{n}"), "requester": f"南京市某酒店{n:07d}"}

    async def verify(self, body: dict[str, Any], cached: list[bool]) -> None:
        answer = await self.call("POST", self.js.url + "/v1/certificates/verify", body)
        _check_answer(answer)
        cached.append(bool(answer["cached"]))

    async def verify_batch(self, bodies: list[dict[str, Any]], cached: list[bool]) -> None:
        url = self.js.url + "/v1/certificates/verify-batch"
        results = (await self.call("POST", url, {"items": bodies}))["results"]
        for result in results:
            if "result" not in result:
                raise RuntimeError(f"an item was refused: {result}")
            _check_answer(result["result"])
            cached.append(bool(result["result"]["cached"]))


def _check_answer(answer: dict[str, Any]) -> None:
    if answer["status"] != "valid" or set(answer["fields"]) != {"name"}:
        raise RuntimeError(f"unexpected attestation: {answer}")


@dataclass(frozen=True)
class Grantor:
    """The holders' province node's id and signing key, to sign consent grants here."""

    node_id: str
    key: SigningKey
    not_before: float

    def grant(self, holder_code: str, grant_id: str) -> str:
        grant = ConsentGrant(
            grant_id=f"cg-bench-{grant_id}",
            grantor=self.node_id,
            holder_code=holder_code,
            purpose=SCENE,
            fields=("name",),
            issued_at=self.not_before,
            expires_at=time.time() + 3600,
        )
        return sign_grant(grant, self.key)


def grantor_of(mesh: Path, province: str) -> Grantor:
    config = load_config(mesh / province / "node.toml", {})
    key = load_signing_key(config.paths.signing_key)
    member = read_manifest(mesh).member(config.node_id)
    entry = member.key(key.key_id) if member else None
    assert entry is not None
    return Grantor(config.node_id, key, entry.not_before)


def free_base_port(count: int) -> int:
    """A base port whose gRPC and HTTP ports for ``count`` provinces are free now."""
    for _ in range(200):
        base = random.randrange(20000, 28000)
        ports = [
            p for i in range(count) for p in (ports_for(i, base).grpc, ports_for(i, base).http)
        ]
        if all(_free(port) for port in ports):
            return base
    raise RuntimeError("no free port range found")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start(mesh: Path, province: str) -> Side:
    path = mesh / province / "node.toml"
    config = load_config(path, {})
    log = (mesh / province / "node.log").open("ab")
    process = subprocess.Popen(node_run_command(path), stdout=log, stderr=log)
    return Side(province, f"http://{config.http_listen}", process)


def stop(side: Side) -> None:
    if side.process.poll() is None:
        side.process.terminate()
        side.process.wait(timeout=20)


async def wait_ready(session: aiohttp.ClientSession, side: Side) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if side.process.poll() is not None:
            raise RuntimeError(f"{side.province} exited with {side.process.returncode}")
        try:
            async with session.get(side.url + "/v1/status") as response:
                body = await response.json()
                peers = body.get("peers", [])
                settled = peers and all(p["up"] and p["outbox_depth"] == 0 for p in peers)
                if response.status == 200 and settled:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{side.province} did not come up")


def attestation_size(attestation: str) -> int:
    """Bytes an attestation envelope's signature covers (domain prefix + message)."""
    raw = base64.urlsafe_b64decode(attestation + "=" * (-len(attestation) % 4))
    return len(DOMAIN_PREFIX + pb.Envelope.FromString(raw).message)


def usage_records(mesh: Path) -> int:
    """Usage records Shanghai holds (read from its store: there may be more per card than
    ``GET …/usage`` lists)."""
    path = load_config(mesh / "shanghai" / "node.toml", {}).paths.store
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return store.usage_count(conn)
    finally:
        conn.close()


def in_process(path: str, name: str, seconds: float, step: Callable[[int], object]) -> Row:
    """Call ``step(0)``, ``step(1)``, … in a tight loop for ``seconds``; the rate."""
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        step(done)
        done += 1
    return Row(path, name, done / (time.perf_counter() - started), 0.0, count=done)


def ed25519_row(size: int, seconds: float) -> Row:
    key = SigningKey.generate()
    message = os.urandom(size)
    signature = key.sign(message)
    verify_key = key.verify_key

    def step(_: int) -> None:
        if not verify_key.verify(signature, message):
            raise RuntimeError("the signature did not verify")

    return in_process("bare-ed25519", "bare Ed25519 verify (/s)", seconds, step)


def offline_rows(mesh: Path, tokens: list[str], seconds: float) -> list[Row]:
    """read_presentation + check_offline alone, then with the rest of the route's work: the
    issuer-key lookup and the held list from ``HeldLists`` over Jiangsu's store, as
    ``held_list`` does (read from the store and checked at the first look, then kept)."""
    manifest = read_manifest(mesh)
    js_store = load_config(mesh / "jiangsu" / "node.toml", {}).paths.store
    conn = sqlite3.connect(f"file:{js_store}?mode=ro", uri=True)
    try:
        now = time.time()
        keys = manifest_issuer_keys(manifest, now)
        held = store.held_list(conn, "shanghai")
        assert held is not None, "jiangsu held shanghai's list when the HTTP rows ran"
        revocations = read_revocation_list(held.signed, keys)

        def pure(i: int) -> None:
            presentation = read_presentation(tokens[i % len(tokens)], keys, now=now)
            if not check_offline(presentation, revocations, now=now).valid:
                raise RuntimeError("a presentation was not valid offline")

        lists = HeldLists(lambda: conn)

        def route(i: int) -> None:
            lookup = manifest_issuer_keys(manifest, now)
            presentation = read_presentation(tokens[i % len(tokens)], lookup, now=now)
            listed = lists.checked(presentation.issuer_province, manifest, now)
            if not check_offline(presentation, listed, now=now).valid:
                raise RuntimeError("a presentation was not valid offline")

        return [
            in_process("offline-pure", "offline presentation, in-process (/s)", seconds, pure),
            in_process("offline-inprocess", "offline, the route's work (/s)", seconds, route),
        ]
    finally:
        conn.close()


def echo_app() -> web.Application:
    """The bare aiohttp row's server: a JSON POST body read and sent back."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await request.json())

    app = web.Application()
    app.router.add_post("/echo", echo)
    return app


def start_echo() -> Side:
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--echo-port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Side("echo", f"http://127.0.0.1:{port}", process)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def wait_echo(session: aiohttp.ClientSession, side: Side) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with session.post(side.url + "/echo", json={}) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the echo server did not come up")


async def run(args: argparse.Namespace, mesh: Path) -> None:
    cards = make_cards(args.cards, args.revoked)
    valid = cards[: args.cards]
    sh, js, echo = start(mesh, "shanghai"), start(mesh, "jiangsu"), start_echo()
    try:
        async with mesh_session(mesh) as session:
            for side in (sh, js):
                await wait_ready(session, side)
            await wait_echo(session, echo)
            bench = Bench(session, sh, js, grantor_of(mesh, "shanghai"))
            await bench.load(cards, 8)
            # Shanghai publishes a changed list at start or at its next refresh (30 s by
            # default): a restart publishes the revoked cards now.
            stop(sh)
            sh = bench.sh = start(mesh, "shanghai")
            for side in (sh, js):
                await wait_ready(session, side)
            tokens = [await bench.present(card) for card in valid[:TOKENS]]
            list_version = await bench.wait_for_list(tokens[0])

            # Warm-up (not counted): connections, both nodes' code paths, and the cache entry
            # of the question the warm row repeats.
            run_id = bench.run_id
            await bench.bounded(
                40,
                4,
                lambda i: bench.verify(bench.question(valid[i % len(valid)], f"w{i}-{run_id}"), []),
            )
            await bench.bounded(40, 4, lambda i: bench.check_token(js, tokens[i % TOKENS]))
            warm_question = bench.question(valid[0], f"warm-{run_id}")
            first = await bench.call("POST", js.url + "/v1/certificates/verify", warm_question)
            size = attestation_size(first["attestation"])
            records_before = usage_records(mesh)

            bench.others = {"echo": echo}
            echoed = bench.question(valid[0], f"echo-{run_id}")
            aiohttp_row = await bench.measured(
                "bare-aiohttp",
                "bare aiohttp JSON echo (/s)",
                args.seconds,
                args.concurrency,
                lambda i: bench.call("POST", echo.url + "/echo", echoed),
            )
            bench.others = {}
            cold: list[bool] = []
            warm: list[bool] = []
            http_rows = [
                await bench.measured(
                    "online-cold",
                    "online verify, cache cold (/s)",
                    args.seconds,
                    args.concurrency,
                    lambda i: bench.verify(bench.cold_question(valid[i % len(valid)], i), cold),
                ),
                await bench.measured(
                    "online-warm",
                    "online verify, cache warm (/s)",
                    args.seconds,
                    args.concurrency,
                    lambda i: bench.verify(warm_question, warm),
                ),
                await bench.measured(
                    "offline-http",
                    "offline presentation, HTTP (/s)",
                    args.seconds,
                    args.concurrency,
                    lambda i: bench.check_token(js, tokens[i % TOKENS]),
                ),
            ]
            asked = itertools.count(10_000_000)
            for size in BULK_SIZES:
                http_rows.append(
                    await bench.measured(
                        f"bulk-cold-{size}",
                        f"bulk verify, cold, {size} a request (/s)",
                        args.seconds,
                        max(2, args.concurrency // size),
                        lambda i, size=size: bench.verify_batch(
                            [
                                bench.cold_question(valid[n % len(valid)], n)
                                for n in itertools.islice(asked, size)
                            ],
                            cold,
                        ),
                        per_call=size,
                    )
                )
    finally:
        for side in (sh, js, echo):
            stop(side)

    records_added = usage_records(mesh) - records_before
    ceiling = ed25519_row(size, args.seconds)
    token = Row("token-size", "presentation token (characters)", len(tokens[0]), QR_BYTE_CAPACITY)
    aiohttp_row.ceiling = aiohttp_row.figure
    for row in http_rows:
        row.ceiling = aiohttp_row.figure
    in_process_rows = [ceiling, *offline_rows(mesh, tokens, args.seconds)]
    for row in in_process_rows:
        row.ceiling = ceiling.figure
    rows = [aiohttp_row, *http_rows, *in_process_rows, token]
    notes = {
        "seconds_per_row": args.seconds,
        "concurrency": args.concurrency,
        "ed25519_message_bytes": size,
        "cold_cached": sum(cold),
        "cold_count": len(cold),
        "warm_cached": sum(warm),
        "warm_count": len(warm),
        "usage_records_added": records_added,
        "cards_valid": args.cards,
        "cards_revoked": args.revoked,
        "revocation_list_version": list_version,
        "load_before": args.load_before,
        "load_after": os.getloadavg(),
    }
    if args.json:
        print(json.dumps({"rows": [row_json(row) for row in rows], "notes": notes}))
        return
    print_table(rows, notes)


def row_json(row: Row) -> dict[str, Any]:
    return {
        "path": row.path,
        "name": row.name,
        "per_s": round(row.figure, 1),
        "ceiling": round(row.ceiling, 1),
        "ratio": round(row.figure / row.ceiling, 4),
        "count": row.count,
        "cpu_us": {name: round(seconds * 1e6, 1) for name, seconds in row.cpu.items()},
    }


def print_table(rows: list[Row], notes: dict[str, Any]) -> None:
    print(f"load average before: {notes['load_before']}, after: {notes['load_after']}")
    print(
        f"{'row':<40} {'figure':>9} {'ceiling':>9} {'ratio':>8} {'count':>7}   "
        f"{'CPU µs/item: shanghai':>21} {'jiangsu':>8} {'client':>8}"
    )
    for row in rows:
        cpu = "".join(
            f"{row.cpu.get(name, 0.0) * 1e6:>{width}.0f}"
            for name, width in (("shanghai", 24), ("jiangsu", 9), ("client", 9))
            if row.cpu
        )
        echo = f"   echo {row.cpu['echo'] * 1e6:.0f}" if "echo" in row.cpu else ""
        print(
            f"{row.name:<40} {row.figure:>9.0f} {row.ceiling:>9.0f} "
            f"{row.figure / row.ceiling:>7.3f}× {row.count or '':>7}{cpu}{echo}"
        )
    print(
        f"({notes['seconds_per_row']:g} s per row, HTTP rows at concurrency "
        f"{notes['concurrency']} over the bare aiohttp row; in-process rows over Ed25519 verify "
        f"of {notes['ed25519_message_bytes']}-byte messages, the signed part of an attestation "
        "envelope; token ceiling: what a version-40 QR code holds)"
    )
    print(
        f"cache: cold {notes['cold_cached']} of {notes['cold_count']} answered from Jiangsu's "
        f"cache (expected 0), warm {notes['warm_cached']} of {notes['warm_count']} "
        f"(expected {notes['warm_count']})"
    )
    print(
        f"issuer usage records added: {notes['usage_records_added']} (expected "
        f"{notes['cold_count']}); library: {notes['cards_valid']} valid + "
        f"{notes['cards_revoked']} revoked cards; Jiangsu held Shanghai's revocation list "
        f"version {notes['revocation_list_version']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each row runs")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cards", type=int, default=200, help="valid cards in the library")
    parser.add_argument("--revoked", type=int, default=100, help="revoked cards in the library")
    parser.add_argument(
        "--json", action="store_true", help='print one JSON object {"rows": [...]} instead'
    )
    parser.add_argument("--echo-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_port:
        web.run_app(echo_app(), host="127.0.0.1", port=args.echo_port, print=None)
        return
    if args.quick:
        args.seconds, args.cards, args.revoked = 0.5, TOKENS, 10
    if args.cards < TOKENS:
        parser.error(f"--cards must be at least {TOKENS}")
    args.load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="yrd-bench-certificates-") as tmp:
        mesh = Path(tmp) / "mesh"
        base = free_base_port(len(PROVINCES))
        create_mesh(mesh, now=time.time(), base_port=base, provinces=PROVINCES, platforms=False)
        asyncio.run(run(args, mesh))


if __name__ == "__main__":
    main()

"""How a tester changes the links of a running ``yrd mesh up --links``: an orders file the
tester writes, and a state file the mesh's supervisor answers in.

``DIR/link-faults.json`` (the orders)::

    {"generation": 3,
     "links": {"shanghai:jiangsu": {"latency": 0.2, "jitter": 0.05, "loss": 0.05},
               "jiangsu:anhui": {"partition": true}},
     "reset": ["zhejiang:shanghai"]}

Each link named gets that fault (``LinkFault``'s fields, seconds and bytes); every link not
named is clear. ``reset`` names links whose open connections are reset once, when that
generation is applied. ``DIR/link-state.json`` (the answer) holds the generation in force,
the error of an orders file that could not be used (null otherwise), and per link its
proxy and target addresses, its fault and what has crossed it.

Rules kept here:
- Both files are replaced whole (a temporary file renamed over), so neither side reads half
  of one. ``yrd mesh link`` writes the orders with the next generation and waits until the
  state shows it.
- The supervisor looks at the orders every ``TICK``; orders it cannot use (not JSON, an
  unknown link, a bad value) change nothing, and the state names why.
- The answer is rewritten when orders are applied and at most every ``STATE_EVERY`` seconds
  while traffic moves, so its counters stay fresh without a write per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from node.mesh.faults import LinkFault
from node.mesh.layout import write_atomically
from node.mesh.links import LinkSet
from node.mesh.node_control import NoMeshUp, NotDone, alive
from node.mesh.record import LINK_FAULTS_FILE, LINK_STATE_FILE, MeshLink, read_record

TICK: Final = 0.2
STATE_EVERY: Final = 1.0
MAX_ORDERS_BYTES: Final = 64 * 1024
ORDER_WAIT: Final = 15.0
"""Seconds ``order`` waits for the supervisor to answer: many ticks, on a busy machine."""


@dataclass(frozen=True)
class LinkOrders:
    """What the tester wants of the links now."""

    generation: int = 0
    faults: Mapping[str, LinkFault] = field(default_factory=dict)
    """By ``sender:receiver``; a link not named is clear."""
    reset: tuple[str, ...] = ()
    """Links whose open connections are reset when this generation is applied."""

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "links": {name: fault.to_json() for name, fault in self.faults.items()},
            "reset": list(self.reset),
        }

    @classmethod
    def from_json(cls, data: Any, known: set[str]) -> LinkOrders:
        """Orders from their JSON; ValueError naming what is wrong (``known``: the links)."""
        if not isinstance(data, dict):
            raise ValueError("the orders must be a JSON object")
        generation = data.get("generation", 0)
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
            raise ValueError(f"generation must be a whole number, not {generation!r}")
        links = data.get("links", {})
        reset = data.get("reset", [])
        if not isinstance(links, dict) or not isinstance(reset, list):
            raise ValueError("links must be an object and reset a list")
        for name in [*links, *reset]:
            if name not in known:
                raise ValueError(f"no link {name!r}; links are sender:receiver, e.g. {min(known)}")
        faults = {}
        for name, fault in links.items():
            try:
                faults[name] = LinkFault.from_json(fault)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return cls(generation, faults, tuple(reset))


def read_orders(directory: Path, known: set[str]) -> LinkOrders:
    """The orders in ``directory`` (none written: every link clear)."""
    path = directory / LINK_FAULTS_FILE
    try:
        text = path.read_bytes()[:MAX_ORDERS_BYTES]
    except FileNotFoundError:
        return LinkOrders()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    return LinkOrders.from_json(data, known)


def write_orders(directory: Path, orders: LinkOrders) -> None:
    text = json.dumps(orders.to_json(), indent=2) + "\n"
    write_atomically(directory / LINK_FAULTS_FILE, text.encode())


def read_state(directory: Path) -> dict[str, Any] | None:
    """The supervisor's last answer; None before it has written one."""
    try:
        state: dict[str, Any] = json.loads((directory / LINK_STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state


def running_links(directory: Path) -> list[MeshLink]:
    """The links of the ``yrd mesh up --links`` running in ``directory``; NoMeshUp when no
    supervisor runs there or its mesh has no links."""
    try:
        record = read_record(directory)
    except FileNotFoundError:
        raise NoMeshUp(f"no mesh is up in {directory} (start one: yrd mesh up --links)") from None
    except (OSError, ValueError) as exc:
        raise NoMeshUp(f"{directory}/mesh.json cannot be read: {exc}") from None
    if record.supervisor_pid is None or not alive(record.supervisor_pid):
        raise NoMeshUp(f"no `yrd mesh up` keeps the mesh in {directory}")
    if not record.links:
        raise NoMeshUp(
            f"the mesh in {directory} runs without link proxies; start it with "
            f"yrd mesh up --dir {directory} --links"
        )
    return record.links


def order(
    directory: Path,
    change: Callable[[LinkOrders], LinkOrders],
    *,
    timeout: float = ORDER_WAIT,
) -> dict[str, Any]:
    """Write the orders ``change`` makes of the current ones, under the next generation,
    and return the supervisor's answer once it shows that generation applied. NoMeshUp
    when no mesh with links runs in ``directory``; ValueError for orders it cannot take;
    NotDone when no answer came in time."""
    known = {link.name for link in running_links(directory)}
    current = read_orders(directory, known)
    state = read_state(directory) or {}
    wanted = change(current)
    generation = max(current.generation, int(state.get("generation") or 0)) + 1
    LinkOrders.from_json(wanted.to_json(), known)  # refused here, not by the supervisor
    write_orders(directory, LinkOrders(generation, wanted.faults, wanted.reset))
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(directory) or {}
        if int(state.get("generation") or 0) >= generation:
            return state
        if time.monotonic() >= deadline:
            raise NotDone(f"the supervisor did not answer within {timeout:.0f} s")
        time.sleep(TICK / 2)


class LinkKeeper:
    """Applies a mesh folder's orders to its links and answers with their state."""

    def __init__(
        self,
        directory: Path,
        links: LinkSet,
        *,
        tell: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.links = links
        self.tell = tell
        self._clock = clock
        self._seen: bytes | None = None
        self._generation = 0
        self._error: str | None = None
        self._written_at = -float("inf")
        self._counted: tuple[int, ...] = ()

    async def keep(self, stop: asyncio.Event) -> None:
        """Look at the orders every ``TICK`` until ``stop`` is set. Orders and answer belong
        to one run: stale ones are removed at the start, these at the end."""
        (self.directory / LINK_FAULTS_FILE).unlink(missing_ok=True)
        self._write_state()
        try:
            while not stop.is_set():
                await self.look()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK):
                        await stop.wait()
        finally:
            for name in (LINK_FAULTS_FILE, LINK_STATE_FILE):
                (self.directory / name).unlink(missing_ok=True)

    async def look(self) -> None:
        """One look: apply orders that changed, refresh the answer when due."""
        path = self.directory / LINK_FAULTS_FILE
        try:
            raw: bytes | None = path.read_bytes()
        except FileNotFoundError:
            raw = None
        if raw != self._seen:
            self._seen = raw
            await self._apply()
            self._write_state()
        elif self._clock() - self._written_at >= STATE_EVERY and self._moved():
            self._write_state()

    async def _apply(self) -> None:
        try:
            orders = read_orders(self.directory, set(self.links.proxies))
        except ValueError as exc:
            self._error = str(exc)
            self.tell(f"link orders not applied ({exc}); generation {self._generation} stays")
            return
        self._error = None
        before = {n: p.fault for n, p in self.links.proxies.items()}
        await self.links.apply(orders.faults, orders.reset)
        self._generation = orders.generation
        for name, proxy in self.links.proxies.items():
            if proxy.fault != before[name]:
                self.tell(f"link {name}: {proxy.fault.describe()}")
        for name in orders.reset:
            self.tell(f"link {name}: open connections reset")

    def _moved(self) -> bool:
        counted = tuple(
            p.stats.bytes_forward + p.stats.bytes_back + p.stats.connections
            for p in self.links.proxies.values()
        )
        moved, self._counted = counted != self._counted, counted
        return moved

    def _write_state(self) -> None:
        state = {
            "generation": self._generation,
            "error": self._error,
            "links": [
                {
                    "link": name,
                    "listen": proxy.address,
                    "target": proxy.target,
                    "fault": proxy.fault.to_json(),
                    "described": proxy.fault.describe(),
                    "connections": proxy.stats.connections,
                    "open": proxy.stats.open,
                    "resets": proxy.stats.resets,
                    "bytes_forward": proxy.stats.bytes_forward,
                    "bytes_back": proxy.stats.bytes_back,
                }
                for name, proxy in self.links.proxies.items()
            ],
        }
        write_atomically(
            self.directory / LINK_STATE_FILE, (json.dumps(state, indent=2) + "\n").encode()
        )
        self._written_at = self._clock()

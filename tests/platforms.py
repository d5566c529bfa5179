"""What the adapter tests (``tests/test_adapter_contract.py``, ``tests/dialects.py`` and the
per-province ``tests/test_adapter_<province>.py``) and the platform tests share: a fake
clock, a seeded application and an inbound case, a simulated platform on 127.0.0.1 with the
node's adapter and a plain HTTP client (``Platform.serve``), a stub server for broken
replies (``stub``), and hypothesis strategies for the values every dialect carries both
ways.

``tests/dialects.py`` describes each platform once, as a ``Platform`` inside its
``Dialect``; what the tests assert stays in the test files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import strategies as st

from adapters.simulation.platform import SIMULATION, SimulatedPlatform
from adapters.strict_json import MAX_NUMBER_DIGITS
from node.cases.catalog import MODES, PROVINCES, load_catalog
from node.cases.lifecycle import Action, Status
from node.platform.adapter import ApplicationRefusal, CaseNotice, InboundCase, ProvinceAdapter
from tests.nodes import BUDGET

T0: Final = 1_772_416_800.0
"""2026-03-02 10:00 Beijing time."""
FEDERATED: Final = {m.code: m for p in PROVINCES for m in load_catalog(p).matters}
"""Every member's matters by code, as the node finds them."""
STUB_TIMEOUT: Final = BUDGET / 6
"""Seconds an adapter waits for a stub's reply: ample for a reply on a loaded machine; a
test of the timeout itself passes its own, short one to a stub that never answers."""
WANG_JING: Final = {"name": "王静", "code_type": "111", "code": "320506199211030025"}


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def application_body(fixtures: dict[str, Any], handler: str = "anhui") -> dict[str, Any]:
    """A ``POST /v1/cases`` body for a seeded person, for a matter of ``handler``."""
    card = next(
        c
        for c in fixtures["certificates"]
        if c["type"] == "resident_id_card" and c["status"] == "valid"
    )
    person = next(p for p in fixtures["persons"] if p["id_number"] == card["holder_code"])
    matter = load_catalog(handler).matters[0]
    return {
        "matter_code": matter.code,
        "handler": handler,
        "mode": matter.modes[-1],
        "applicant": {"name": person["name"], "code_type": "111", "code": person["id_number"]},
        "materials": [
            {"name": m.name, "certificate_id": card["certificate_id"]}
            if m.certificate_type == "resident_id_card"
            else {"name": m.name, "sha256": "0f" * 32}
            for m in matter.materials
        ],
    }


def mistyped(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the applicant's ID number's check digit wrong: what a platform whose own
    checks are laxer than the federation's lets through (``submit_application(...,
    checked=False)``), and the node refuses as ``invalid_id_number``."""
    code = body["applicant"]["code"]
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    return {**body, "applicant": {**body["applicant"], "code": wrong}}


REFUSAL: Final = ApplicationRefusal(
    "invalid_id_number", "applicant.code", "公民身份号码校验位错误，请核对后重新申请"
)
"""The node's refusal of a ``mistyped`` application, its field in the REST API's names."""


def inbound_case(
    province: str,
    case_id: str,
    matter: int = 0,
    *,
    accepting: str = "jiangsu",
    applicant: Mapping[str, str] = WANG_JING,
    submitted_at: float = T0 - 30.5,
) -> InboundCase:
    """A case ``accepting`` took for ``province``'s matter number ``matter``, as the node
    delivers it (every material an upload)."""
    chosen = load_catalog(province).matters[matter]
    return InboundCase(
        case_id=case_id,
        accepting=accepting,
        matter_code=chosen.code,
        mode=chosen.modes[0],
        applicant=dict(applicant),
        materials=[{"name": m.name, "sha256": "1a" * 32} for m in chosen.materials],
        submitted_at=submitted_at,
    )


# --- a platform on loopback, its adapter and a plain client ---------------------------------


class Running:
    """A simulated platform on 127.0.0.1, the node's adapter to it and a plain HTTP client
    that speaks as ``Platform`` says (its token, its content type, its replies)."""

    def __init__(
        self,
        server: TestServer,
        clock: FakeClock,
        session: aiohttp.ClientSession,
        adapter: Callable[[str, FakeClock], ProvinceAdapter],
        spec: Platform,
    ) -> None:
        self.server = server
        self.clock = clock
        self.session = session
        self.url = str(server.make_url("")).rstrip("/")
        self.adapter = adapter(self.url, clock)
        self._spec = spec

    @property
    def platform(self) -> SimulatedPlatform:
        assert self.server.app is not None
        return self.server.app[SIMULATION]

    async def post(
        self, path: str, data: bytes, *, token: bool = True, content_type: str | None = None
    ) -> tuple[int, Any]:
        """The status and the decoded reply of posting ``data`` (with the token unless not)."""
        headers = {"Content-Type": content_type or self._spec.content_type, **self._token(token)}
        async with self.session.post(self.url + path, data=data, headers=headers) as response:
            return response.status, await self._spec.decode(response)

    async def get(self, path: str, *, token: bool = True, **query: str) -> tuple[int, Any]:
        """The status and the decoded reply of a GET (with the token unless not)."""
        async with self.session.get(
            self.url + path, params=query, headers=self._token(token)
        ) as response:
            return response.status, await self._spec.decode(response)

    async def fixtures(self) -> dict[str, Any]:
        async with self.session.get(self.url + "/sim/fixtures") as response:
            data: dict[str, Any] = await response.json()
            return data

    def _token(self, send: bool) -> dict[str, str]:
        return dict([self._spec.token]) if send and self._spec.token else {}


@dataclass(frozen=True)
class Platform:
    """One dialect's platform as its tests run it."""

    build_platform: Callable[..., web.Application]
    credentials: Mapping[str, str]
    adapter: Callable[[str, FakeClock], ProvinceAdapter]
    """The node's adapter to the platform at a URL (on the platform's clock, if it wants one)."""
    token: tuple[str, str] | None = None
    """The header and token a plain client sends to the node's endpoints."""
    content_type: str = "application/json"
    decode: Callable[[aiohttp.ClientResponse], Awaitable[Any]] = field(
        default=aiohttp.ClientResponse.json
    )
    """How a plain client reads a reply."""
    seed: int = 11
    running: type[Running] = Running
    """The kind of ``Running`` it is served as: how its plain client speaks."""

    @asynccontextmanager
    async def serve(
        self,
        tmp_path: Path,
        *,
        delay: float = 3600,
        clock: FakeClock | None = None,
        adapter: Callable[[str, FakeClock], ProvinceAdapter] | None = None,
    ) -> AsyncIterator[Running]:
        """The platform (its store in ``tmp_path``) served on 127.0.0.1 until the block ends."""
        clock = clock or FakeClock()
        app = self.build_platform(
            tmp_path / "platform.db",
            seed=self.seed,
            officer_delay=delay,
            clock=clock,
            credentials=self.credentials,
        )
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
            served = self.running(server, clock, session, adapter or self.adapter, self)
            try:
                yield served
            finally:
                await served.adapter.close()


# --- a stub that answers in broken dialect --------------------------------------------------

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Closing(Protocol):
    async def close(self) -> None: ...


A = TypeVar("A", bound=Closing)


@asynccontextmanager
async def stub(handler: Reply, adapter: Callable[[str], A]) -> AsyncIterator[A]:
    """``adapter`` to a server on 127.0.0.1 where ``handler`` answers every request."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        made = adapter(str(server.make_url("")))
        try:
            yield made
        finally:
            await made.close()


# --- what every dialect carries both ways (property-based) ----------------------------------

TEXT: Final = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30
)
"""Any text a JSON or form dialect carries."""
SHA256: Final = st.text("0123456789abcdef", min_size=64, max_size=64)
NOT_NUMBERS: Final = {
    "superscript two": "²",
    "Arabic-Indic one": "١",
    "fullwidth five": "５",
    "Devanagari two": "२",
    "minus": "-1",
    "plus": "+5",
    "space": " 5",
    "exponent": "1e2",
    "19 digits": "9" * 19,
}
"""Paging values that are no number in any dialect: ``str.isdigit`` takes some, ``int`` others
(issue 11); each simulated platform answers them with its 400, never a 500."""
NUMBERS: Final = st.integers(-(10**MAX_NUMBER_DIGITS) + 1, 10**MAX_NUMBER_DIGITS - 1)
"""Any whole number a dialect carries: at most ``MAX_NUMBER_DIGITS`` digits."""


def materials(text: st.SearchStrategy[str] = TEXT) -> st.SearchStrategy[list[dict[str, str]]]:
    """Up to four materials, uploads and certificates."""
    material = st.one_of(
        st.fixed_dictionaries({"name": text, "sha256": SHA256}),
        st.fixed_dictionaries({"name": text, "certificate_id": text}),
    )
    return st.lists(material, max_size=4)


def inbound_cases(
    instants: st.SearchStrategy[float],
    text: st.SearchStrategy[str] = TEXT,
    names: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[InboundCase]:
    """Inbound cases from every province, in every mode, for either kind of applicant
    (named ``n`` unless ``names`` says otherwise)."""
    return st.builds(
        InboundCase,
        case_id=text,
        accepting=st.sampled_from(tuple(PROVINCES)),
        matter_code=st.just("M" * 31),
        mode=st.sampled_from(MODES),
        applicant=st.fixed_dictionaries(
            {
                "name": st.just("n") if names is None else names,
                "code_type": st.sampled_from(["111", "001"]),
                "code": st.just("c"),
            }
        ),
        materials=materials(text),
        submitted_at=instants,
    )


def notices(
    instants: st.SearchStrategy[float],
    text: st.SearchStrategy[str] = TEXT,
    extra_values: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[CaseNotice]:
    """Update notices of case ``c-1`` with every action, side and status, with and without a
    reason, result, evaluation, deadline and extra data (of ``NUMBERS`` unless
    ``extra_values`` says otherwise)."""
    return st.builds(
        CaseNotice,
        case_id=st.just("c-1"),
        sequence=st.integers(min_value=1, max_value=10**6),
        action=st.sampled_from([a.value for a in Action if a.value != "submit"]),
        by=st.sampled_from(["accepting", "handling"]),
        status=st.sampled_from([s.value for s in Status]),
        at=instants,
        reason=st.one_of(st.just(""), text),
        result=st.one_of(
            st.none(),
            st.fixed_dictionaries({"kind": st.just("document"), "document_sha256": SHA256}),
            st.fixed_dictionaries({"kind": st.just("certificate"), "certificate_id": text}),
        ),
        evaluation=st.one_of(
            st.none(),
            st.fixed_dictionaries({"level": st.integers(1, 5)}),
            st.fixed_dictionaries({"level": st.integers(1, 5), "comment": text}),
        ),
        due_at=st.one_of(st.none(), instants),
        extra=st.dictionaries(
            st.text(max_size=5),
            NUMBERS if extra_values is None else extra_values,
            max_size=2,
        ),
    )


def json_body(value: Any) -> bytes:
    """``value`` as a JSON dialect sends it (UTF-8, not ASCII-escaped)."""
    return json.dumps(value, ensure_ascii=False).encode()


# --- a hostile platform's reply -------------------------------------------------------------

DEEP: Final = 200_000
"""How deep a hostile reply nests: far past Python's recursion limit (issue 10)."""


BEYOND_RECURSION: Final = 2000
"""Deep enough for ``RecursionError`` in Python's JSON parser, small enough for a request."""


def nested(province: str, depth: int = DEEP) -> tuple[bytes, str]:
    """A body nested ``depth`` levels in ``province``'s syntax, and its content type: JSON
    arrays, or XML elements for Jiangsu."""
    if province == "jiangsu":
        body = "<sqlb>" + "<a>" * depth + "</a>" * depth + "</sqlb>"
        return body.encode(), "application/xml; charset=utf-8"
    return ("[" * depth + "]" * depth).encode(), "application/json"

"""Which package speaks each province's dialect: province → (build_platform, make_adapter).

Each province package (``adapters.<province>``) exposes two callables:

- ``build_platform(store_path, *, seed, officer_delay, clock=time.time, credentials=None)``
  returning the simulated platform's ``aiohttp.web.Application``;
- ``make_adapter(base_url, *, credentials)`` returning the node's ``ProvinceAdapter``.

``credentials`` is one mapping for both: what the platform demands is what the adapter sends
(an access token, an app key and secret …), so a mesh hands the same dict to both sides.

The packages are imported on first use, so a province whose dialect is not written yet
fails with ``DialectNotAvailable`` only when it is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import aiohttp
from aiohttp import web

from node.platform.adapter import ProvinceAdapter

PACKAGES: Final[Mapping[str, str]] = {
    "shanghai": "adapters.shanghai",
    "jiangsu": "adapters.jiangsu",
    "zhejiang": "adapters.zhejiang",
    "anhui": "adapters.anhui",
}


class BuildPlatform(Protocol):
    def __call__(
        self,
        store_path: str | Path,
        *,
        seed: int,
        officer_delay: float,
        clock: Callable[[], float] = ...,
        credentials: Mapping[str, str] | None = ...,
    ) -> web.Application: ...


class MakeAdapter(Protocol):
    def __call__(self, base_url: str, *, credentials: Mapping[str, str]) -> ProvinceAdapter: ...


class Citizen(Protocol):
    """How a citizen (a tester, the demo) uses the platform: ``adapters.<province>.citizen``."""

    async def enter_application(
        self, session: aiohttp.ClientSession, base_url: str, body: Mapping[str, Any]
    ) -> str:
        """Enter a ``POST /v1/cases``-shaped application in the dialect; its reference."""
        ...

    async def case_of(
        self, session: aiohttp.ClientSession, base_url: str, reference: str
    ) -> str | None:
        """The federation case id the application became, once acknowledged."""
        ...


class DialectNotAvailable(LookupError):
    """No province of that name, or its package does not provide both callables."""


@dataclass(frozen=True)
class Dialect:
    province: str
    build_platform: BuildPlatform
    make_adapter: MakeAdapter


def citizen(province: str) -> Citizen:
    """The citizen's side of ``province``'s platform (``adapters.<province>.citizen``)."""
    package = PACKAGES.get(province)
    if package is None:
        raise DialectNotAvailable(f"unknown province {province!r}; one of {', '.join(PACKAGES)}")
    try:
        module: Any = importlib.import_module(f"{package}.citizen")
    except ModuleNotFoundError:
        raise DialectNotAvailable(f"{package} has no citizen module") from None
    return module  # type: ignore[no-any-return]


def dialect(province: str) -> Dialect:
    """The two callables of ``province``'s package."""
    package = PACKAGES.get(province)
    if package is None:
        raise DialectNotAvailable(f"unknown province {province!r}; one of {', '.join(PACKAGES)}")
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as error:
        if error.name != package:
            raise  # the package exists but something it imports does not
        raise DialectNotAvailable(f"the {province} dialect is not written yet") from None
    build = getattr(module, "build_platform", None)
    make = getattr(module, "make_adapter", None)
    if build is None or make is None:
        raise DialectNotAvailable(f"{package} must expose build_platform and make_adapter")
    return Dialect(province, build, make)

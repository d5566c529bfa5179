"""Shanghai (一网通办): the adapter and the simulated platform, in the Shanghai dialect.

JSON in camelCase, epoch-millisecond times, numeric status and action codes; README.md
documents the dialect for integrators. ``build_platform`` and ``make_adapter`` are what
``adapters.registry`` looks up.
"""

from adapters.shanghai.adapter import ShanghaiAdapter, make_adapter
from adapters.shanghai.platform import build_platform

__all__ = ["ShanghaiAdapter", "build_platform", "make_adapter"]

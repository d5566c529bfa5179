"""Jiangsu (江苏政务服务网): the adapter and the simulated platform, in the Jiangsu dialect.

XML with pinyin-initial element names, ``yyyyMMddHHmmss`` Beijing times, pinyin-initial
status and action codes, parsed safely (no DTD, no entities); README.md documents the
dialect for integrators. ``build_platform`` and ``make_adapter`` are what
``adapters.registry`` looks up.
"""

from adapters.jiangsu.adapter import JiangsuAdapter, make_adapter
from adapters.jiangsu.platform import build_platform

__all__ = ["JiangsuAdapter", "build_platform", "make_adapter"]

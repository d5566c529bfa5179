"""Anhui (安徽政务服务网 / 皖事通): the adapter and the simulated platform, in the Anhui dialect.

Form-encoded requests (nested values as ``cl[0].mc`` keys), JSON replies in a ``{flag,
message, result}`` envelope, Chinese status and action labels (已受理, 办结 …), Beijing
local times ``yyyy-MM-dd HH:mm:ss``; README.md documents the dialect for integrators.
``build_platform`` and ``make_adapter`` are what ``adapters.registry`` looks up.
"""

from adapters.anhui.adapter import AnhuiAdapter, make_adapter
from adapters.anhui.platform import build_platform

__all__ = ["AnhuiAdapter", "build_platform", "make_adapter"]

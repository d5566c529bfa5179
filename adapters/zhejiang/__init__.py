"""Zhejiang (浙里办 open platform): the adapter and the simulated platform, in the Zhejiang
dialect.

JSON in snake_case inside a ``{code, msg, data}`` envelope, token-paged lists, Beijing-time
ISO instants, snake_case English status words, and every request to the open platform
signed with an app key (HMAC-SHA256; ``signing``). README.md documents the dialect for
integrators. ``build_platform`` and ``make_adapter`` are what ``adapters.registry`` looks up;
both take the same ``credentials``: ``{"app_key", "app_secret"}``. ``citizen`` is the
citizen's side (the unsigned 浙里办 app front end) for testers and the demo.
"""

from adapters.zhejiang.adapter import ZhejiangAdapter, make_adapter
from adapters.zhejiang.platform import build_platform

__all__ = ["ZhejiangAdapter", "build_platform", "make_adapter"]

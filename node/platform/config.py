"""The ``[platform]`` section of ``node.toml``: which adapter speaks to this node's own
province platform, where, and with which credentials."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from node.trust.keys import KeyFileError, read_private_file


class PlatformConfigError(ValueError):
    """The platform's credentials file is unreadable, unsafe or not a JSON object of strings."""


@dataclass(frozen=True)
class PlatformConfig:
    """This node's own province platform (``[platform]``), reached through an adapter."""

    adapter: str
    """The dialect's package in ``adapters.registry``: shanghai, jiangsu, zhejiang, anhui."""
    url: str
    """The platform's base URL."""
    credentials_file: Path | None = None
    """A JSON object of strings the adapter sends (a token, an app key and secret); a
    private file (0600), like a key."""
    poll_interval_seconds: float = 0.5
    retry_max_seconds: float = 60.0

    def credentials(self) -> dict[str, str]:
        if self.credentials_file is None:
            return {}
        try:
            data = json.loads(read_private_file(self.credentials_file))
        except (KeyFileError, ValueError) as exc:
            raise PlatformConfigError(f"platform credentials: {exc}") from exc
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise PlatformConfigError(f"{self.credentials_file} must hold a JSON object of strings")
        return data

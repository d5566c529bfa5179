"""How the delivery workers pace themselves: the ``[delivery]`` section of ``node.toml``.

``node.runtime.config`` reads the file and builds this; the workers only take it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryConfig:
    batch_size: int = 64
    """Envelopes in flight on a peer's stream at once."""
    retry_initial_seconds: float = 0.5
    """First back-off after a failed attempt."""
    retry_max_seconds: float = 120.0
    """Back-off ceiling: minutes, not days, so a returning peer is found soon."""
    dead_letter_after_seconds: float = 86400.0
    """A message still undelivered after this long is parked for an operator."""

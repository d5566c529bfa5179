"""Instants on the wire: epoch seconds to and from a protobuf ``Timestamp``.

An instant travels in whole nanoseconds, and the side that makes it stores the value read
back from that Timestamp (``exact``), so both sides hold equal histories. Ground floor:
imports nothing of ``node``.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp


def stamp(at: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(at * 1e9))
    return ts


def instant(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


def exact(at: float) -> float:
    """``at`` as it reads back from the wire."""
    return instant(stamp(at))

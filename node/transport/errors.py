"""The transport's own errors, and the one place gRPC exceptions are translated into them.

Domain code (delivery workers, heartbeats, tools) never sees ``grpc.aio.AioRpcError``: a
refusal comes back as the peer's signed Fault bytes, anything else as ``PeerUnavailable``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

FAULT_TRAILER = "yrd-fault-bin"
"""Trailing-metadata key carrying the signed Fault envelope of a refused unary call."""


class TransportError(Exception):
    """A call to a peer did not produce a signed reply."""

    def __init__(self, peer: str, detail: str, status: grpc.StatusCode | None = None) -> None:
        super().__init__(f"{peer}: {detail}")
        self.peer = peer
        self.detail = detail
        self.status = status


class PeerUnavailable(TransportError):
    """The peer could not be reached or did not answer in time; worth retrying later."""


class SignedRefusal(Exception):
    """The peer refused with a signed Fault (the bytes are in ``envelope``)."""

    def __init__(self, envelope: bytes, status: grpc.StatusCode) -> None:
        super().__init__(f"refused with {status.name}")
        self.envelope = envelope
        self.status = status


def fault_trailer(error: grpc.aio.AioRpcError) -> bytes | None:
    for key, value in error.trailing_metadata() or ():
        if key == FAULT_TRAILER and isinstance(value, bytes):
            return value
    return None


@contextmanager
def translate_rpc_errors(peer: str) -> Iterator[None]:
    """Map gRPC failures of a call to ``peer`` onto SignedRefusal / PeerUnavailable."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        fault = fault_trailer(error)
        if fault is not None:
            raise SignedRefusal(fault, error.code()) from error
        raise PeerUnavailable(peer, f"{error.code().name}: {error.details()}", error.code()) from (
            error
        )
    except TimeoutError as error:
        raise PeerUnavailable(peer, "no reply before the deadline") from error

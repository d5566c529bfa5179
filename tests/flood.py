"""A member flooding a node's federation port, for tests/test_flood.py and
bench/resilience.py: streams of malformed envelopes, streams that write and never read, and
the target's resident memory."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import grpc

from node.wire import DELIVER_STREAM_METHOD


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def malformed_stream(channel: grpc.aio.Channel, until: float) -> int:
    """Keep a stream open writing random bytes (and reading what comes back); reopen it when
    it is refused or ended. Returns how many envelopes were written."""
    written = 0
    while time.monotonic() < until:
        call = channel.stream_stream(DELIVER_STREAM_METHOD)(wait_for_ready=False)

        async def drain(c: grpc.aio.StreamStreamCall = call) -> None:
            while await c.read() is not grpc.aio.EOF:
                pass

        reader = asyncio.ensure_future(drain())
        try:
            while time.monotonic() < until and not reader.done():
                await call.write(os.urandom(200))
                written += 1
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            pass
        finally:
            call.cancel()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await asyncio.sleep(0.5)
    return written


async def silent_stream(channel: grpc.aio.Channel, until: float) -> int:
    """Keep a stream open that writes and never reads; reopen it when it is refused."""
    written = 0
    while time.monotonic() < until:
        call = channel.stream_stream(DELIVER_STREAM_METHOD)(wait_for_ready=False)
        try:
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                while True:
                    await call.write(os.urandom(200))
                    written += 1
        except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass
        finally:
            call.cancel()
        await asyncio.sleep(0.5)
    return written

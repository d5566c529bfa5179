"""The process entry point of every simulated platform.

    python -m adapters.simulation.run --province shanghai --listen 127.0.0.1:9101 \\
        --db /tmp/shanghai-platform.db --seed 1 --officer-delay 0.5

Builds the province's platform (``adapters.registry``), serves it until SIGTERM or SIGINT,
then stops cleanly: the listener closes, the simulated people's task is cancelled and the
SQLite file is closed. Once listening it prints one line, ``listening on HOST:PORT``, to
stdout (with the real port when ``--listen`` asked for port 0), so a parent process can wait
for it. Logs go to stderr and never carry names or ID numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from adapters.registry import PACKAGES, DialectNotAvailable, dialect
from node.runtime.logs import configure_logging
from node.text import ascii_integer

log = logging.getLogger(__name__)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    number = ascii_integer(port, high=65535)
    if not sep or not host or number is None:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {value!r}")
    return host.strip("[]"), number


def _delay(value: str) -> float:
    try:
        delay = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {value!r}") from None
    if not delay >= 0:
        raise argparse.ArgumentTypeError("the officer delay must be 0 or more seconds")
    return delay


def _credentials(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path} must hold a JSON object of strings")
    return data


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.simulation.run",
        description="Serve one province's simulated government-service platform.",
    )
    parser.add_argument("--province", required=True, choices=sorted(PACKAGES))
    parser.add_argument("--listen", required=True, type=parse_listen, help="HOST:PORT")
    parser.add_argument("--db", required=True, help="the platform's own SQLite file")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated data")
    parser.add_argument(
        "--officer-delay",
        type=_delay,
        default=1.0,
        help="seconds the simulated officer and applicant wait before each step",
    )
    parser.add_argument(
        "--credentials-file",
        type=Path,
        help="JSON object of credentials the platform demands (the adapter's, e.g. a token)",
    )
    parser.add_argument("--log-format", choices=("json", "console"), default="json")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    credentials = _credentials(args.credentials_file)
    app = dialect(args.province).build_platform(
        args.db, seed=args.seed, officer_delay=args.officer_delay, credentials=credentials
    )
    host, port = args.listen
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        print(f"listening on {host}:{bound}", flush=True)
        log.info(
            "simulated platform serving",
            extra={"province": args.province, "listen": f"{host}:{bound}"},
        )
        await stop.wait()
    finally:
        await runner.cleanup()
        log.info("simulated platform stopped", extra={"province": args.province})


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    configure_logging(args.log_format, args.log_level)
    try:
        asyncio.run(serve(args))
    except DialectNotAvailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

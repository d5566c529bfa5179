"""Entry point of the ``yrd`` command.

Rules kept here:
- Expected conditions never end in a traceback, for every command, here and only here: a
  closed pipe (``yrd manifest show | head -1``) ends quietly with 141 (as SIGPIPE would);
  Ctrl-C ends with one line and 130; a node that could not be reached and that a command did
  not handle itself ends with one line and 2. A bug still shows its traceback.
- ``yrd --version`` is the installed package's version (its metadata), never a copy.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Final

import aiohttp

from monitoring.status import unreachable_reason
from node.cli import (
    audit_cmd,
    case_cmd,
    catalog_cmd,
    cert_cmd,
    chaos_cmd,
    load_cmd,
    manifest_cmd,
    mesh_cmd,
    node_cmd,
    outbox_cmd,
    status_cmd,
    token_cmd,
)
from node.cli.folder_arg import resolve_folder
from node.cli.output import fail


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yrd",
        description="Yangtze River Delta federation node: cross-province cases and "
        "certificate mutual recognition over signed peer-to-peer gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        mesh_cmd,
        node_cmd,
        status_cmd,
        catalog_cmd,
        case_cmd,
        cert_cmd,
        manifest_cmd,
        outbox_cmd,
        token_cmd,
        audit_cmd,
        load_cmd,
        chaos_cmd,
    ):
        module.register(commands)
    return parser


DISTRIBUTION: Final = "yrd-node"
EXIT_BROKEN_PIPE: Final = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader went away."""
EXIT_INTERRUPTED: Final = 130
"""128 + SIGINT."""


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_folder(args)
    try:
        result: int = args.run(args)
        # Flushed here, so a reader that has gone is met inside the try, not at exit.
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        sys.stderr.write("yrd: interrupted\n")
        return EXIT_INTERRUPTED
    except (aiohttp.ClientError, ConnectionError) as exc:
        return fail(f"a node did not answer ({unreachable_reason(exc)})", 2)
    return result


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush at exit does not meet the
    closed pipe again and print what it could not write."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a real file (a test's capture): nothing will flush into the pipe
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())

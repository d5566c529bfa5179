"""Entry point of the ``yrd`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yrd",
        description="Yangtze River Delta federation node: cross-province cases and "
        "certificate mutual recognition over signed peer-to-peer gRPC.",
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

"""How commands print: aligned tables for people, JSON for machines."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

# The exit codes of every verification command (cert verify, presentation verify, audit
# verify): one table, shown in each one's --help and in README.md.
EXIT_VERIFIED: Final = 0
"""Genuine and valid."""
EXIT_REFUSED: Final = 1
"""Not genuine, or refused: a broken evidence chain, a token or request the node refuses."""
EXIT_NOT_CHECKED: Final = 2
"""Nothing was checked: a wrong command line, a missing file, a node that does not answer."""
EXIT_NOT_VALID: Final = 3
"""Genuine, but not valid: the certificate is revoked, suspended or expired."""
VERIFY_EXIT_CODES: Final = (
    "exit codes (every verify command):\n"
    "  0  genuine and valid\n"
    "  1  not genuine, or refused (a broken chain, a token or request the node refuses)\n"
    "  2  not checked (a wrong command line, a missing file, a node that does not answer)\n"
    "  3  genuine, but not valid: the certificate is revoked, suspended or expired"
)


def _width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])]).rstrip() + "\n"


def purpose_label(purpose: str, catalog: Sequence[Mapping[str, Any]]) -> str:
    """A scene as it is (``hotel_check_in``); a matter code with the matter's name beside
    it (from ``catalog``, the matters of ``GET /v1/catalog``), so a 31-digit code is not all
    a reader gets."""
    name = next((m["name"] for m in catalog if m["code"] == purpose), None)
    return f"{name}({purpose})" if name else purpose


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"yrd: {message}\n")
    return code


def zoned_time(text: str) -> datetime:
    """An argparse type: an RFC 3339 time with a zone (``2026-12-01T18:00:00+08:00``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time like 2026-12-01T18:00:00+08:00"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a zone: Z or an offset such as +08:00")
    return moment

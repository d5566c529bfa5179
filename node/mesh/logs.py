"""The log files of a mesh's processes (``DIR/<province>/node.log``, ``platform.log``).

Rules kept here:
- Log files are owner-only (0600) from their first byte, also when an older mesh left them
  readable: a log names cases and references, and a failing process may print more.
- What a user is shown of a log is its last few lines, each short enough for a terminal: a
  JSON log line as ``level event key=value…``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, Final

LOG_FILE_MODE = 0o600


def open_log(path: Path) -> BinaryIO:
    """``path`` opened to append, owner-only from its first byte (and made so if it was not)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
    try:
        os.fchmod(fd, LOG_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


TAIL_LINES: Final = 6
TAIL_WIDTH: Final = 240


def log_tail(path: Path, since: int = 0, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines written to ``path`` after byte ``since``, each made short
    enough to read on a terminal: a JSON log line as ``level event key=value…``."""
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    wanted = [line for line in text.splitlines() if line.strip()][-lines:]
    return [_short(_readable(line)) for line in wanted]


def _readable(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    entry.pop("ts", None)
    entry.pop("logger", None)
    head = " ".join(str(entry.pop(k)) for k in ("level", "event") if k in entry)
    rest = " ".join(f"{k}={v}" for k, v in entry.items())
    return f"{head} {rest}".strip()


def _short(line: str) -> str:
    return line if len(line) <= TAIL_WIDTH else line[: TAIL_WIDTH - 1] + "…"

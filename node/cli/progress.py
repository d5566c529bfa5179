"""How long-running commands (``yrd demo``, ``load``, ``chaos``) tell a person what is going on.

One progress line, rewritten in place on a terminal and printed only when it changes
otherwise (a log file or a pipe then holds each state once).
"""

from __future__ import annotations

import sys
from typing import TextIO


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Progress:
    """One progress line: rewritten in place on a terminal, printed when it changes otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._tty = self._stream.isatty()
        self._last = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        self._stream.write(f"\r  {text} " if self._tty else f"  {text}\n")
        self._stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (something that happened), kept above the progress line."""
        if self._tty and self._last:
            self._stream.write("\r\x1b[K")
        self._stream.write(text + "\n")
        if self._tty and self._last:
            self._stream.write(f"\r  {self._last} ")
        self._stream.flush()

    def done(self) -> None:
        if self._tty:
            self._stream.write("\n")

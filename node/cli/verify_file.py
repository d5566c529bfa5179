"""The questions of ``yrd cert verify --file``: a CSV file with a header row, or JSON lines.

Rules kept here: the whole file is read and checked before anything is sent, and a mistake
names its line. JSON lines hold one ``POST /v1/certificates/verify`` body a line (blank
lines skipped). A CSV file's header names its columns, each a field of that body:
``certificate_id``, ``holder_code`` and ``purpose`` are required; ``fields`` (names
separated by ``;`` or spaces), ``consent`` (a grant token), ``requester`` and
``holder_name`` may be given; an empty cell leaves the field out. Which of the two a file is
follows from its name (``.csv``; ``.jsonl``, ``.ndjson``, ``.json``), else from its first
character (``{``: JSON lines).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from node.cli.node_client import UsageProblem

CSV_COLUMNS: Final = (
    "certificate_id",
    "holder_code",
    "purpose",
    "fields",
    "consent",
    "requester",
    "holder_name",
)
_REQUIRED: Final = ("certificate_id", "holder_code", "purpose")
_FIELD_SEPARATORS: Final = re.compile(r"[;\s]+")


@dataclass(frozen=True)
class Question:
    line: int
    """Where in the file it was (1 is the first line)."""
    body: dict[str, Any]


def read_questions(source: str) -> list[Question]:
    """The questions in ``source`` (a path, or - for stdin); raises UsageProblem."""
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"cannot read questions from {where}: {exc}") from None
    suffix = Path(source).suffix.lower()
    if suffix == ".csv":
        questions = _csv(text, where)
    elif suffix in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
        questions = _json_lines(text, where)
    else:
        questions = _csv(text, where)
    if not questions:
        raise UsageProblem(f"{where} holds no question")
    return questions


def _json_lines(text: str, where: str) -> list[Question]:
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except ValueError as exc:
            raise UsageProblem(f"{where}:{number}: not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise UsageProblem(f"{where}:{number}: a line must hold one JSON object")
        questions.append(Question(number, body))
    return questions


def _csv(text: str, where: str) -> list[Question]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return []
    except csv.Error as exc:
        raise UsageProblem(f"{where}:1: {exc}") from None
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise UsageProblem(
            f"{where}:1: unknown column {unknown[0]!r}; columns: {', '.join(CSV_COLUMNS)}"
        )
    missing = [name for name in _REQUIRED if name not in header]
    if missing:
        raise UsageProblem(f"{where}:1: the header needs a {missing[0]} column")
    questions = []
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UsageProblem(
                    f"{where}:{number}: {len(row)} cells where the header has {len(header)}"
                )
            questions.append(Question(number, _body(dict(zip(header, row, strict=True)))))
    except csv.Error as exc:
        raise UsageProblem(f"{where}:{reader.line_num}: {exc}") from None
    return questions


def _body(cells: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, cell in cells.items():
        value = cell.strip()
        if not value:
            continue
        if name == "fields":
            body["fields"] = [f for f in _FIELD_SEPARATORS.split(value) if f]
        elif name == "consent":
            body["consent"] = {"grant": value}
        else:
            body[name] = value
    return body

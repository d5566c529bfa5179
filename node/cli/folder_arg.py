"""How every ``yrd`` command names a mesh folder: one rule, one helper.

Rules kept here:
- A command that takes a mesh folder takes it as ``DIR`` (positional, first), ``--dir DIR``
  or ``--mesh DIR`` (the spelling ``status``, ``case`` and ``cert`` teach): ``yrd mesh up
  mesh/``, ``yrd mesh up --dir mesh/`` and ``yrd mesh up --mesh mesh/`` are one command.
  Both forms naming the same folder is fine; naming two different folders is a usage error
  (exit 2), as is naming none where one is needed.
- The commands whose other positional arguments would be mistaken for a folder (``case``,
  ``cert``, ``presentation``: ``ID``, ``CODE``…) take only ``--mesh DIR`` / ``--dir DIR``.
- The folder lands in the namespace attribute the command reads (``dir``, or ``mesh``),
  resolved by ``resolve_folder`` right after parsing (``node.cli.main``), so no command
  sees the two raw forms.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_POSITIONAL = "_folder_positional"
_OPTION = "_folder_option"
_RULE = "_folder_rule"


@dataclass(frozen=True)
class _FolderRule:
    parser: argparse.ArgumentParser
    dest: str
    required: bool
    shift_to: str | None
    """With ``--dir``, a positional value that is not a folder belongs to this (optional
    positional) argument: ``yrd mesh link --dir mesh/ shanghai:jiangsu``."""


def add_folder(
    parser: argparse.ArgumentParser,
    *,
    help: str = "the mesh folder",
    required: bool = True,
    dest: str = "dir",
    shift_to: str | None = None,
    group: Any = None,
) -> None:
    """Give ``parser`` the mesh folder as ``DIR``, ``--dir DIR`` and ``--mesh DIR``, landing
    in ``args.<dest>``; add it before the command's other positionals.
    ``group``: a mutually exclusive group the option joins (``--url`` or a folder)."""
    parser.add_argument(
        _POSITIONAL, nargs="?", type=Path, metavar="DIR", help=f"{help} (or --dir DIR)"
    )
    (group or parser).add_argument(
        "--dir", "--mesh", dest=_OPTION, type=Path, metavar="DIR", help=f"{help} (same as DIR)"
    )
    parser.set_defaults(**{_RULE: _FolderRule(parser, dest, required, shift_to)})


def resolve_folder(args: argparse.Namespace) -> None:
    """Put the folder ``args`` name into its attribute; a usage error (exit 2) when the two
    forms name different folders, or none is named where one is needed."""
    rule: _FolderRule | None = getattr(args, _RULE, None)
    if rule is None:
        return
    positional: Path | None = getattr(args, _POSITIONAL)
    option: Path | None = getattr(args, _OPTION)
    if (
        option is not None
        and positional is not None
        and rule.shift_to is not None
        and getattr(args, rule.shift_to) is None
        and not positional.is_dir()
    ):
        setattr(args, rule.shift_to, str(positional))
        positional = None
    if option is not None and positional is not None and not _same(option, positional):
        rule.parser.error(
            f"two mesh folders named: {positional} and --dir {option}; name one (DIR or --dir DIR)"
        )
    folder = option if option is not None else positional
    if folder is None and rule.required:
        rule.parser.error("name the mesh folder: DIR or --dir DIR")
    for name in (_POSITIONAL, _OPTION, _RULE):
        delattr(args, name)
    setattr(args, rule.dest, folder)


def _same(a: Path, b: Path) -> bool:
    return a.absolute() == b.absolute() or a.resolve() == b.resolve()

"""A mesh's nodes routed through its link proxies: each sender's ``node.toml`` gets a
``[peers.<receiver>] address`` block between marker lines (``route_peers``).

Rules kept here:
- The block is written before any node starts, and removed when the mesh stops or a mesh
  without links is made on the folder, so a hand-started node never dials a proxy that is
  gone.
- Only the lines between the markers change, so an operator's own edits survive; the
  rewritten file must load with exactly those peer addresses and keep its mode, or it is
  left as it was (ValueError).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from node.mesh.layout import read_manifest, write_atomically
from node.mesh.record import MeshLink
from node.runtime.config import ConfigError, load_config

ROUTES_BEGIN: Final = "# >>> yrd mesh links: this node dials its peers through the link proxies"
ROUTES_END: Final = "# <<< yrd mesh links (removed when the mesh stops)"


def route_peers(directory: Path, links: Sequence[MeshLink]) -> None:
    """Make each province's ``node.toml`` dial its peers through ``links`` (none: directly).

    A line edit between marker lines, so an operator's own edits survive; the rewritten file
    must load with exactly those peer addresses, or it is left as it was (ValueError).
    """
    for member in read_manifest(directory).members:
        path = directory / member.province / "node.toml"
        text = path.read_text(encoding="utf-8")
        kept = _without_routes(text)
        routes = {link.receiver: link.listen for link in links if link.sender == member.province}
        if routes:
            block = "".join(
                f'[peers.{receiver}]\naddress = "{listen}"\n' for receiver, listen in routes.items()
            )
            kept = f"{kept.rstrip()}\n\n{ROUTES_BEGIN}\n{block}{ROUTES_END}\n"
        if kept == text:
            continue
        check = functools.partial(_routed_as, path, routes, path.stat().st_mode & 0o777)
        write_atomically(path, kept.encode("utf-8"), check=check)


def _routed_as(path: Path, routes: dict[str, str], mode: int, rewritten: Path) -> None:
    """``rewritten`` (path's new text) keeps path's mode and loads with exactly ``routes``."""
    os.chmod(rewritten, mode)
    try:
        found = dict(load_config(rewritten, {}).peer_addresses)
    except ConfigError as exc:
        raise ValueError(f"cannot route {path} through the links: {exc}") from None
    if found != routes:
        raise ValueError(f"{path} names peer addresses of its own ({found}); remove them first")


def _without_routes(text: str) -> str:
    lines = text.splitlines(keepends=True)
    if ROUTES_BEGIN + "\n" not in lines:
        return text
    begin = lines.index(ROUTES_BEGIN + "\n")
    end = lines.index(ROUTES_END + "\n", begin) if ROUTES_END + "\n" in lines else len(lines) - 1
    return "".join(lines[:begin] + lines[end + 1 :]).rstrip() + "\n"

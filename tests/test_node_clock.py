"""The node's wall clock: the machine's time, or a test clock moved on through a file."""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path

from node.runtime.clock import ShiftedClock, node_clock
from node.runtime.config import parse_config
from tests.nodes import make_mesh

NOW = 1_767_225_600.0


def write(path: Path, text: str) -> None:
    """Replace ``path`` whole, as a test moving a mesh's clock does."""
    draft = path.with_suffix(".new")
    draft.write_text(text)
    os.replace(draft, path)


def test_the_clock_follows_the_file_and_keeps_its_shift_through_a_bad_one(tmp_path: Path) -> None:
    """No file: the machine's time; each new content of the file shifts it; a file that holds
    no finite number leaves the shift as it was; removing the file ends the shift."""
    shift = tmp_path / "clock-shift"
    clock = ShiftedClock(shift, now=lambda: NOW)
    assert clock() == NOW
    write(shift, "86400")
    assert clock() == NOW + 86400
    write(shift, "-30.5")
    assert clock() == NOW - 30.5
    for bad in ("", "tomorrow", "inf"):
        write(shift, bad)
        assert clock() == NOW - 30.5
    shift.unlink()
    assert clock() == NOW


def test_only_a_config_naming_a_clock_file_gets_a_test_clock(tmp_path: Path) -> None:
    """``test_clock_file`` in node.toml, relative to its folder, makes the node's clock a
    ShiftedClock on that file; without it the node runs on the machine's time."""
    path = make_mesh(tmp_path) / "shanghai" / "node.toml"
    data = tomllib.loads(path.read_text())
    assert node_clock(parse_config(data, base=path.parent, env={})) is time.time
    config = parse_config({**data, "test_clock_file": "../shift"}, base=path.parent, env={})
    assert config.test_clock_file == path.parent / "../shift"
    write(path.parent.parent / "shift", "3600")
    assert abs(node_clock(config)() - (time.time() + 3600)) < 60

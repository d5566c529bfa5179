"""The README's walkthrough, run as a newcomer pastes it: the shell blocks marked
``<!-- walkthrough -->`` in README.md, in order, in one shell, on a fresh mesh in a temporary
folder. So the README cannot drift from the CLI.

How the commands are taken:
- a block is the ```` ```sh ```` block right after a ``<!-- walkthrough -->`` line; every
  line of it that is not blank or a comment is one command (a trailing ``\\`` joins lines);
- a command exits 0 unless its comment says ``(exit N)`` (or ``(exit N or M)``);
- a command ending in ``&`` (``yrd mesh up mesh/ &``) runs in the background; the next one
  waits for ``mesh/mesh.json``, and the test ends it with SIGINT as Ctrl-C would;
- the test runs in a temporary folder holding a link to this repository's ``.venv``, so
  ``.venv/bin/yrd`` and ``mesh/`` are as written; only ports are rewritten, to a free base
  port (``mesh init`` gets ``--base-port``, literal 71xx/81xx/91xx ports follow it).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.mesh.leftovers import leftovers, process_alive, stop_leftovers
from tests.nodes import BUDGET, free_base_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARK = "<!-- walkthrough -->"
STEPS = ".walkthrough-steps"


@dataclass(frozen=True)
class Step:
    command: str
    exits: frozenset[int]
    background: bool


def walkthrough(readme: str) -> list[Step]:
    """The commands of the marked blocks, in order (rules in the module docstring)."""
    lines = readme.splitlines()
    steps: list[Step] = []
    for index, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        fence = index + 1
        assert lines[fence].strip() == "```sh", (
            f"README line {fence + 1}: a ```sh block after {MARK}"
        )
        end = lines.index("```", fence + 1)
        pending = ""
        for text in lines[fence + 1 : end]:
            if text.rstrip().endswith("\\"):
                pending += text.rstrip()[:-1] + " "
                continue
            command = (pending + text).strip()
            pending = ""
            if command and not command.startswith("#"):
                steps.append(_step(command))
    return steps


def _step(command: str) -> Step:
    said = re.search(r"#.*\(exit ([^)]*)\)", command)
    exits = frozenset(int(code) for code in re.findall(r"\d+", said[1])) if said else {0}
    background = re.search(r"(?<!&)&\s*(#.*)?$", command) is not None
    return Step(command, frozenset(exits), background)


def with_ports(command: str, base: int) -> str:
    """The command with the default base port's ports moved to ``base``."""
    command = re.sub(r"(yrd mesh init \S+)", rf"\1 --base-port {base}", command)
    offsets = {"7": 0, "8": 1000, "9": 2000}
    return re.sub(
        r"\b([789])10([1-4])\b",
        lambda m: str(base + offsets[m[1]] + int(m[2]) - 1),
        command,
    )


def script(steps: list[Step], base: int) -> str:
    """One shell script: each step, then its exit code into ``STEPS``."""
    out = ["WALK_BG=", "trap '[ -n \"$WALK_BG\" ] && kill -INT $WALK_BG 2>/dev/null; wait' EXIT"]
    for number, step in enumerate(steps):
        out.append(f"echo '>>> step {number}: '{shlex.quote(step.command)} >&2")
        out.append(with_ports(step.command, base))
        if step.background:
            out.append("WALK_BG=$!")
            out.append(f"echo '{number} 0' >> {STEPS}")
            out.append(
                "for _ in $(seq 1200); do [ -f mesh/mesh.json ] && break; "
                'kill -0 "$WALK_BG" 2>/dev/null || break; sleep 0.1; done'
            )
        else:
            out.append(f'echo "{number} $?" >> {STEPS}')
    out.append('kill -INT "$WALK_BG"; wait "$WALK_BG"; echo "up $?" >> ' + STEPS)
    out.append("WALK_BG=")
    return "\n".join(out) + "\n"


def test_the_walkthrough_blocks_are_found() -> None:
    """The marks are where a newcomer starts: init, then up in the background, before any
    command that asks the mesh."""
    steps = walkthrough(README.read_text(encoding="utf-8"))
    assert steps[0].command.startswith(".venv/bin/yrd mesh init mesh/")
    assert steps[1].background and " mesh up " in steps[1].command
    assert sum(step.background for step in steps) == 1
    assert any("case submit" in s.command for s in steps)
    assert any("presentation verify" in s.command for s in steps)
    assert any("--consent" in s.command for s in steps)
    assert any("manifest sign" in s.command for s in steps)


@pytest.mark.timeout(BUDGET * 8)
def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    steps = walkthrough(README.read_text(encoding="utf-8"))
    base = free_base_port()
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "walkthrough.sh").write_text(script(steps, base))
    env = {k: v for k, v in os.environ.items() if k != "YRD_HTTP_TOKEN"}
    try:
        ran = subprocess.run(
            ["bash", "walkthrough.sh"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=BUDGET * 6,
            env=env,
        )
    finally:
        _stop_what_is_left(tmp_path / "mesh")
    told = f"stdout:\n{ran.stdout[-4000:]}\nstderr:\n{ran.stderr[-6000:]}"
    codes = dict(line.split() for line in (tmp_path / STEPS).read_text().splitlines())
    for number, step in enumerate(steps):
        assert str(number) in codes, f"step {number} never ran: {step.command}\n{told}"
        assert int(codes[str(number)]) in step.exits, (
            f"step {number} exited {codes[str(number)]}, README implies {sorted(step.exits)}: "
            f"{step.command}\n{told}"
        )
    assert codes.get("up") == "0", told
    assert "SIGHUP passed on to 4 nodes" in ran.stderr, told
    assert not (tmp_path / "mesh" / "mesh.json").exists()


def _stop_what_is_left(directory: Path) -> None:
    """Should the script have died with the mesh up: its supervisor, then its processes."""
    record, found = leftovers(directory)
    supervisor = record.supervisor_pid if record is not None else None
    if supervisor is not None and process_alive(supervisor):
        os.kill(supervisor, signal.SIGINT)
        deadline = time.monotonic() + BUDGET
        while process_alive(supervisor) and time.monotonic() < deadline:
            time.sleep(0.1)
        record, found = leftovers(directory)
    stop_leftovers(found)

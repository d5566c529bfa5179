"""node's layers import only downward, and the contract that says so bites.

The contract is ``[tool.importlinter]`` in pyproject.toml, run by ``make lint`` as
``lint-imports``. Here it runs on the real tree (it holds), on a copy of it (the copy holds
too, so what breaks below is the planted line and nothing else), and on copies with one
upward import planted, inside a function or under ``TYPE_CHECKING``: both break it, and the
report names the importing module, the imported one and the line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.slow  # each test runs lint-imports as a process (under a second)

FUNCTION_LEVEL = """

def _planted() -> None:
    import node.api.app  # noqa: F401
"""

TYPE_CHECKING_ONLY = """

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import node.api.app  # noqa: F401
"""


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``tree`` as the working folder (its pyproject.toml) and first on
    the path (its ``node`` package, not the installed one)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "node", tmp_path / "node", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node's layers import only downward KEPT" in result.stdout


def test_a_copy_of_the_tree_holds(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("planted", [FUNCTION_LEVEL, TYPE_CHECKING_ONLY], ids=["function", "tc"])
def test_an_upward_import_breaks_the_contract(tree: Path, planted: str) -> None:
    keys = tree / "node" / "trust" / "keys.py"
    line = len(keys.read_text().splitlines()) + planted.count("\n")
    keys.write_text(keys.read_text() + planted)

    result = lint_imports(tree)

    assert result.returncode != 0
    assert "node's layers import only downward BROKEN" in result.stdout
    assert "node.trust is not allowed to import node.api" in result.stdout
    assert f"node.trust.keys -> node.api.app (l.{line})" in result.stdout

"""Programs the tests run that come from Debian packages (promtool, prometheus, chromium)."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def required_binary(name: str, package: str) -> str:
    """The path of program ``name``. Missing, it fails the test in CI, where `make test`
    installs Debian's ``package``, and skips it elsewhere."""
    found = shutil.which(name)
    if found:
        return found
    if in_ci():
        pytest.fail(f"{name} is missing in CI: `make test` installs Debian's {package} package")
    pytest.skip(f"{name} is missing (Debian package {package}; `make test` installs it as root)")

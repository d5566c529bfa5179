"""How ``yrd`` commands take a signature suite: ``--suite`` on ``mesh init``, ``demo`` and
``manifest rotate-key``. A suite or a spec that names something unknown is a usage error
(exit 2) that says which, before anything is created or changed."""

from __future__ import annotations

import argparse

from node.mesh.suite_choice import SuiteChoice, parse_suite_choice
from node.trust.suites import SUITES, Suite, suite_named

KNOWN = ", ".join(sorted(SUITES))


def suite_choice(text: str) -> SuiteChoice:
    """``--suite sm2`` or ``--suite shanghai=sm2,jiangsu=ed25519[,governance=sm2]``."""
    try:
        return parse_suite_choice(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def suite(text: str) -> Suite:
    """``--suite sm2``: one suite by name."""
    try:
        return suite_named(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

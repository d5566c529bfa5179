"""Which signature suite each member of a new mesh, and its governance key, signs with.

``yrd mesh init DIR --suite SPEC`` (DESIGN §10), SPEC one of:

- ``sm2``: every member and the governance key sign with SM2 (a national-suite federation);
- ``shanghai=sm2,jiangsu=ed25519``: the named members with those suites, every other member
  Ed25519; ``governance=sm2`` among them names the governance key's suite (Ed25519 unless
  named, the key every node already trusts);
- nothing: Ed25519 throughout, as a mesh has always been made.

A SPEC naming an unknown suite or province, or one province twice, is refused with a
sentence that says which; nothing is created then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from node.trust.manifest import PROVINCES
from node.trust.suites import ED25519_SUITE, Suite, suite_named

GOVERNANCE = "governance"


@dataclass(frozen=True)
class SuiteChoice:
    default: Suite = ED25519_SUITE
    """The suite of every member not named in ``members``."""
    members: Mapping[str, Suite] = field(default_factory=dict)
    """Province → suite, for the members named one by one."""
    governance: Suite = ED25519_SUITE
    """The suite of the key that signs the manifest."""

    def of(self, province: str) -> Suite:
        return self.members.get(province, self.default)


def parse_suite_choice(spec: str) -> SuiteChoice:
    """The ``--suite`` SPEC as a ``SuiteChoice`` (module docstring); ValueError otherwise."""
    text = spec.strip()
    if not text:
        raise ValueError("--suite is empty; give a suite (sm2, ed25519) or PROVINCE=SUITE,…")
    if "=" not in text:
        suite = suite_named(text)
        return SuiteChoice(default=suite, governance=suite)
    named: dict[str, Suite] = {}
    for part in text.split(","):
        who, equals, name = (piece.strip() for piece in part.partition("="))
        if not equals or not who or not name:
            raise ValueError(f"--suite part {part.strip()!r} is not PROVINCE=SUITE")
        if who != GOVERNANCE and who not in PROVINCES:
            raise ValueError(
                f"--suite names {who!r}, which is neither a province "
                f"({', '.join(PROVINCES)}) nor {GOVERNANCE}"
            )
        if who in named:
            raise ValueError(f"--suite names {who} twice")
        named[who] = suite_named(name)
    governance = named.pop(GOVERNANCE, ED25519_SUITE)
    return SuiteChoice(members=named, governance=governance)


ED25519_THROUGHOUT: Final = SuiteChoice()
"""What a mesh is made with when no ``--suite`` is given."""

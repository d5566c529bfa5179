"""Which keys speak for an issuing province, as the federation manifest says.

Presentations and revocation lists are signed by the node of the province that issued the
certificate (DESIGN.md §7). A verifier asks an ``IssuerKeys`` lookup for the key a token
names, giving the province the token's certificate identifier names; rules kept:

1. A key answers only for its own member's province: a key of Jiangsu never verifies a
   presentation of a Shanghai certificate, however valid its signature.
2. A key outside its validity window, or marked revoked in the manifest, answers None, as
   does a key id the manifest does not list: to the verifier all three are an unknown key.
3. The lookup is a plain function of (province, key id), so tests and tools can supply one
   without a manifest.
"""

from __future__ import annotations

from collections.abc import Callable

from node.trust.keys import VerifyKey
from node.trust.manifest import Manifest

__all__ = ["IssuerKeys", "manifest_issuer_keys"]

IssuerKeys = Callable[[str, str], VerifyKey | None]
"""(issuer province, key id) → the key, or None if it does not speak for that province."""


def manifest_issuer_keys(manifest: Manifest, now: float) -> IssuerKeys:
    """A lookup over ``manifest``'s members' signing keys usable at ``now`` (rules 1-2)."""

    def lookup(province: str, key_id: str) -> VerifyKey | None:
        member = manifest.member_for_province(province)
        entry = None if member is None else member.key(key_id)
        if entry is None or not entry.usable_at(now):
            return None
        return entry.verify_key

    return lookup

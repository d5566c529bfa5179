"""The issuers' revocation lists held here, kept in memory, each verified and parsed once.

Rules kept here: the store is the truth at start-up (every held list is read from it at the
first look); from then on a list enters memory when it is committed (``kept``), and only a
newer version replaces the one held. A held list is verified against the manifest in force
and parsed once per (list version, manifest version): a manifest that revokes the key a list
was signed with voids the list the moment it is loaded. So an offline check costs a dict
lookup here, not a store read and a signature.

Replicas sharing one store: a list another replica took is committed there, not told here,
so the versions held in the store are looked at again (one small read) at most every
``RECHECK_SECONDS``, and a newer list read in. Every replica answers with the same list
within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from node.certificates.issuers import manifest_issuer_keys
from node.certificates.revocation import RevocationList, read_revocation_list
from node.store import certificates as store
from node.store.certificates import HeldList
from node.store.connection import Connection
from node.trust.manifest import Manifest

RECHECK_SECONDS = 1.0
"""How long a list committed by another replica sharing the store may go unseen here."""


class HeldLists:
    """The newest list of each issuing province held here."""

    def __init__(
        self, reader: Callable[[], Connection], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._reader = reader
        self._clock = clock
        self._held: dict[str, HeldList] | None = None
        self._looked_at = float("-inf")
        """When the store's versions were last looked at (``clock``)."""
        self._parsed: dict[str, tuple[int, int, RevocationList]] = {}
        """Per province: the list version and manifest version it was checked under."""

    def held(self, province: str) -> HeldList | None:
        """The newest list of ``province`` held, as signed (not checked here)."""
        now = self._clock()
        if self._held is None:
            self._held = {h.province: h for h in store.held_lists(self._reader())}
            self._looked_at = now
        elif now - self._looked_at >= RECHECK_SECONDS:
            self._looked_at = now
            self._read_newer()
        return self._held.get(province)

    def _read_newer(self) -> None:
        """Read in the lists the store holds in newer versions (another replica's)."""
        assert self._held is not None
        conn = self._reader()
        for province, version in store.held_versions(conn).items():
            current = self._held.get(province)
            if current is None or version > current.version:
                fresh = store.held_list(conn, province)
                if fresh is not None:
                    self._held[province] = fresh

    def kept(self, held: HeldList) -> None:
        """A list now in the store (committed, or found there by a pull): held from now on
        unless a newer one is."""
        current = self.held(held.province)
        if current is None or held.version > current.version:
            assert self._held is not None
            self._held[held.province] = held

    def checked(self, province: str, manifest: Manifest, now: float) -> RevocationList | None:
        """The newest list of ``province``, verified under ``manifest`` and parsed; raises
        ``RevocationError`` when it no longer verifies."""
        held = self.held(province)
        if held is None:
            return None
        parsed = self._parsed.get(province)
        if parsed is not None and parsed[:2] == (held.version, manifest.version):
            return parsed[2]
        revocations = read_revocation_list(held.signed, manifest_issuer_keys(manifest, now))
        self._parsed[province] = (held.version, manifest.version, revocations)
        return revocations

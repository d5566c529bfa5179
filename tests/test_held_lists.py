"""Revocation lists held in memory (``HeldLists``) over a real SQLite store: read from the
store at the first look, replaced only by a newer version once committed, verified and
parsed once per list and manifest version, voided by a manifest that revokes their key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node.certificates.held_lists import RECHECK_SECONDS, HeldLists
from node.certificates.model import CertificateStatus
from node.certificates.revocation import (
    RevocationEntry,
    RevocationError,
    RevocationList,
    sign_revocation_list,
)
from node.identifiers import CertificateId
from node.store import certificates as store
from node.store.certificates import HeldList
from node.store.connection import StoreLocation
from node.store.database import Database
from node.trust.keys import SigningKey
from tests.certificate_samples import NOW, manifest_for, sample

SHANGHAI_KEY = SigningKey.generate()
MANIFEST = manifest_for({"shanghai": SHANGHAI_KEY})
CARD = sample("resident_id_card").certificate_id


def signed_list(version: int, *revoked: CertificateId) -> HeldList:
    entries = tuple(
        RevocationEntry(c, CertificateStatus.REVOKED, int(NOW) - 60, "lost") for c in revoked
    )
    listed = RevocationList("shanghai", version, int(NOW), entries)
    return HeldList("shanghai", version, sign_revocation_list(listed, SHANGHAI_KEY), NOW, NOW)


async def test_the_store_is_the_truth_at_start_and_only_newer_lists_replace(
    tmp_path: Path,
) -> None:
    """A list stored before start is held at the first look; a committed newer one replaces
    it at once, an older one never does."""
    db = await Database.open(tmp_path / "node.db")
    try:
        first = signed_list(3)
        await db.write(
            lambda conn: store.keep_list(
                conn,
                province="shanghai",
                version=3,
                signed=first.signed,
                issued_at=NOW,
                received_at=NOW,
            )
        )
        lists = HeldLists(db.reader)
        checked = lists.checked("shanghai", MANIFEST, NOW)
        assert checked is not None and checked.version == 3
        assert checked.status_of(CARD) is None
        assert lists.checked("jiangsu", MANIFEST, NOW) is None

        lists.kept(signed_list(2, CARD))
        assert lists.checked("shanghai", MANIFEST, NOW) is checked
        lists.kept(signed_list(4, CARD))
        newer = lists.checked("shanghai", MANIFEST, NOW)
        assert newer is not None and newer.version == 4
        assert newer.status_of(CARD) is not None
        assert lists.checked("shanghai", MANIFEST, NOW) is newer  # parsed once
    finally:
        await db.close()


async def test_a_manifest_revoking_the_lists_key_voids_it_at_once(tmp_path: Path) -> None:
    """The held list verified under manifest 1 no longer verifies under a manifest 2 that
    revokes the key it was signed with."""
    db = await Database.open(tmp_path / "node.db")
    try:
        lists = HeldLists(db.reader)
        lists.kept(signed_list(1, CARD))
        assert lists.checked("shanghai", MANIFEST, NOW) is not None
        revoking = manifest_for(
            {"shanghai": SHANGHAI_KEY}, revoked=frozenset({SHANGHAI_KEY.key_id})
        )
        with pytest.raises(RevocationError):
            lists.checked("shanghai", dataclasses.replace(revoking, version=2), NOW)
    finally:
        await db.close()


async def test_a_list_another_replica_took_is_seen_within_the_recheck_time(
    store_location: StoreLocation,
) -> None:
    """Two replicas on one store: a newer list committed by one is held by the other once
    ``RECHECK_SECONDS`` have passed since it last looked, never older."""
    first = await Database.open(store_location)
    second = await Database.open(store_location)
    clock = [0.0]

    async def keep(db: Database, held: HeldList) -> None:
        await db.write(
            lambda conn: store.keep_list(
                conn,
                province="shanghai",
                version=held.version,
                signed=held.signed,
                issued_at=NOW,
                received_at=NOW,
            )
        )

    try:
        await keep(first, signed_list(1))
        lists = HeldLists(second.reader, clock=lambda: clock[0])
        assert lists.checked("shanghai", MANIFEST, NOW).version == 1  # type: ignore[union-attr]
        await keep(first, signed_list(2, CARD))
        clock[0] += RECHECK_SECONDS / 2
        assert lists.checked("shanghai", MANIFEST, NOW).version == 1  # type: ignore[union-attr]
        clock[0] += RECHECK_SECONDS / 2
        newer = lists.checked("shanghai", MANIFEST, NOW)
        assert newer is not None and newer.version == 2 and newer.status_of(CARD) is not None
        lists.kept(signed_list(3))
        clock[0] += RECHECK_SECONDS
        held = lists.held("shanghai")
        assert held is not None and held.version == 3  # the store's 2 is older
    finally:
        await first.close()
        await second.close()

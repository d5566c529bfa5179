"""The node's own certificate library over a real SQLite store: a certificate is parsed
once while its stored document is unchanged, and a changed one (a revocation) is read
anew at once."""

from __future__ import annotations

from pathlib import Path

from node.certificates.library import StoreLibrary
from node.certificates.model import CertificateStatus, parse_certificate
from node.store.database import Database
from tests.certificate_samples import NOW, sample_json

CARD = sample_json("resident_id_card")


async def test_parsed_once_until_the_stored_document_changes(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "node.db")
    try:
        library = StoreLibrary(lambda: db)
        await library.put(parse_certificate(CARD), NOW)
        first = await library.get(CARD["certificate_id"])
        assert first is not None and first.status is CertificateStatus.VALID
        assert await library.get(CARD["certificate_id"]) is first
        await library.put(parse_certificate({**CARD, "status": "revoked"}), NOW + 1)
        revoked = await library.get(CARD["certificate_id"])
        assert revoked is not None and revoked.status is CertificateStatus.REVOKED
        assert await library.get("1.2.156.3005.2.none") is None
    finally:
        await db.close()

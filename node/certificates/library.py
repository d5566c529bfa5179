"""Where an issuing node reads its province's certificates.

With a platform adapter configured, the province platform's own library is read through it
(DESIGN.md §8). Without one, the node keeps a library in its store, loaded by operators
with ``yrd cert import``: the same questions, answered from SQLite.

The adapter is seen here as a ``CertificateSource`` whose failures are
``CertificateSourceError`` (the platform's errors subclass it), so that ``certificates``
imports nothing of ``platform``, the layer above it.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from node.certificates.model import (
    Certificate,
    CertificateStatus,
    parse_certificate,
    to_json,
)
from node.certificates.revocation import RevocationEntry
from node.identifiers import parse_certificate_id
from node.store import certificates as store
from node.store.database import Database

PARSED_KEPT = 10_000
"""Most parsed certificates the node's own library keeps in memory."""

_DEFAULT_REASON = {
    CertificateStatus.REVOKED: "withdrawn_by_authority",
    CertificateStatus.SUSPENDED: "under_review",
}


class LibraryUnavailable(Exception):
    """The province's library did not answer; ask again later."""


class CertificateSourceError(Exception):
    """A certificate source could not answer: down, or its answer made no sense.

    ``node.platform.adapter``'s ``PlatformUnavailable`` and ``DialectError`` are these."""


class CertificateSource(Protocol):
    """Where a ``PlatformLibrary`` reads certificates: a province platform's adapter
    (``node.platform.adapter.ProvinceAdapter`` is one). Both calls raise only
    ``CertificateSourceError`` when the source cannot answer."""

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None: ...

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]: ...


class CertificateLibrary(Protocol):
    async def get(self, certificate_id: str) -> Certificate | None:
        """The certificate, or None if the library holds no such identifier."""
        ...

    async def revocations(self) -> list[RevocationEntry]:
        """Every certificate of the library that is revoked or suspended now."""
        ...


class StoreLibrary:
    """The node's own library (no platform adapter): certificates imported into the store."""

    def __init__(self, db: Callable[[], Database]) -> None:
        self._store = db
        self._parsed: OrderedDict[str, Certificate] = OrderedDict()
        """Certificates parsed, by their stored text: a changed row is parsed again, an
        unchanged one (most checks) is not."""

    @property
    def _db(self) -> Database:
        return self._store()

    async def put(self, certificate: Certificate, at: float) -> None:
        document = to_json(certificate)
        await self._db.write(
            lambda conn: store.put_certificate(conn, document["certificate_id"], document, at)
        )

    async def get(self, certificate_id: str) -> Certificate | None:
        document = store.certificate_document(self._db.reader(), certificate_id)
        if document is None:
            return None
        certificate = self._parsed.get(document)
        if certificate is None:
            certificate = self._parsed[document] = parse_certificate(json.loads(document))
            while len(self._parsed) > PARSED_KEPT:
                self._parsed.popitem(last=False)
        return certificate

    async def revocations(self) -> list[RevocationEntry]:
        entries = []
        for document, updated_at in store.listed_certificates(self._db.reader()):
            certificate = parse_certificate(document)
            entries.append(
                RevocationEntry(
                    certificate.certificate_id,
                    certificate.status,
                    # The library knows no effective date: the import that set the status.
                    math.floor(updated_at),
                    _DEFAULT_REASON[certificate.status],  # type: ignore[arg-type]
                )
            )
        return entries


class PlatformLibrary:
    """The province platform's library, through its adapter."""

    def __init__(self, adapter: CertificateSource) -> None:
        self._adapter = adapter

    async def get(self, certificate_id: str) -> Certificate | None:
        try:
            document = await self._adapter.fetch_certificate(certificate_id)
        except CertificateSourceError as error:
            raise LibraryUnavailable(str(error)) from error
        return None if document is None else parse_certificate(document)

    async def revocations(self) -> list[RevocationEntry]:
        try:
            listed = await self._adapter.list_revocations()
        except CertificateSourceError as error:
            raise LibraryUnavailable(str(error)) from error
        return [_entry(item) for item in listed]


def _entry(item: Mapping[str, Any]) -> RevocationEntry:
    status = CertificateStatus(item["status"])
    reason = item.get("reason") or _DEFAULT_REASON[status]
    return RevocationEntry(
        parse_certificate_id(str(item["certificate_id"])),
        status,
        math.floor(float(item["since"])),
        reason,  # type: ignore[arg-type]  # RevocationEntry refuses an unknown reason
    )

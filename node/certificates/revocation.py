"""Signed, versioned revocation lists: what an issuer has revoked or suspended, and since when.

Each issuing province's node publishes one list of its certificates that are not valid
(DESIGN.md §7). A verifier of an offline presentation checks it against the issuer's
latest list and says how old that list is. Rules kept:

1. A list belongs to one issuer province and holds only certificates issued there (by the
   identifier's issuer division); each entry is ``revoked`` or ``suspended``, with the
   instant it took effect (not after the list was issued) and a reason from ``REASONS``.
   One entry per certificate identifier; entries are kept sorted by identifier.
2. The encoding is canonical JSON (sorted keys, no spaces, UTF-8, whole seconds as UTC
   times), the manifest's encoding: ``{"revocation_list": {...}, "signature": {"key_id",
   "value"}}``. The signature is Ed25519 over ``REVOCATION_LIST_PREFIX`` + the canonical
   JSON of the ``revocation_list`` object, by a key that speaks for that province
   (``issuers``). A reader checks the signature before it reads the entries.
3. Versions increase with every change. A receiver keeps a list only if it is newer
   (``is_newer_than``, ``keep_newer``): an older version is ``stale_version``, the same
   version with other content is ``version_conflict``, the same version and content is the
   list already held. Lists of two provinces are never compared (``issuer_mismatch``).
4. Revocation is final; a suspension is lifted by a later version without the entry.
5. Every refusal is a ``RevocationError`` with a stable ``code``, the ``field`` at fault
   and a sentence starting with it. Nothing here reads a clock.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeGuard

from node.certificates.issuers import IssuerKeys
from node.certificates.model import CertificateStatus
from node.identifiers import CertificateId, IdentifierError, parse_certificate_id
from node.trust.keys import SigningKey
from node.trust.manifest import (
    PROVINCES,
    ManifestMalformed,
    canonical_json,
    format_time,
    parse_time,
)
from node.vocabulary import Refused

__all__ = [
    "REASONS",
    "REVOCATION_LIST_PREFIX",
    "RevocationEntry",
    "RevocationError",
    "RevocationList",
    "keep_newer",
    "read_revocation_list",
    "sign_revocation_list",
]

REVOCATION_LIST_PREFIX: Final = b"yrd.federation.v1/revocation-list\x00"
MAX_ENTRIES: Final = 200_000
MAX_DOCUMENT_BYTES: Final = 64 * 1024 * 1024
"""Bounds what a reader will parse; a full list of MAX_ENTRIES is about 40 MB."""

ReasonCode = Literal[
    "superseded",
    "lost",
    "holder_request",
    "withdrawn_by_authority",
    "holder_deceased",
    "entity_deregistered",
    "under_review",
]
RevocationErrorCode = Literal[
    "malformed",
    "too_large",
    "unknown_key",
    "bad_signature",
    "invalid_entry",
    "issuer_mismatch",
    "stale_version",
    "version_conflict",
]

REASONS: Final[Mapping[ReasonCode, str]] = MappingProxyType(
    {
        "superseded": "换发、补发，原证作废",
        "lost": "遗失、被盗（挂失）",
        "holder_request": "持证人申请注销",
        "withdrawn_by_authority": "依法撤销、吊销",
        "holder_deceased": "持证人死亡",
        "entity_deregistered": "主体注销登记",
        "under_review": "核查中，暂停使用",
    }
)
"""Reason codes with what they mean in the issuers' own words."""

_LISTED: Final = (CertificateStatus.REVOKED, CertificateStatus.SUSPENDED)
_BODY_KEYS: Final = frozenset({"issuer_province", "version", "issued_at", "entries"})
_ENTRY_KEYS: Final = frozenset({"certificate_id", "status", "since", "reason"})


class RevocationError(Refused, ValueError):
    """A revocation list, or an entry of one, was refused; nothing held was changed."""

    def __init__(self, code: RevocationErrorCode, field: str, sentence: str) -> None:
        super().__init__(code, f"{field}: {sentence}", field=field)
        self.code: RevocationErrorCode = code


@dataclass(frozen=True)
class RevocationEntry:
    """One certificate that is not valid: revoked or suspended since ``since``."""

    certificate_id: CertificateId
    status: CertificateStatus
    """``REVOKED`` or ``SUSPENDED``."""
    since: int
    """Epoch seconds when the status took effect."""
    reason: ReasonCode

    def __post_init__(self) -> None:
        if not isinstance(self.certificate_id, CertificateId):
            raise RevocationError("invalid_entry", "certificate_id", "must be a CertificateId")
        if self.status not in _LISTED:
            raise RevocationError(
                "invalid_entry", "status", "a listed certificate is revoked or suspended"
            )
        if not _is_seconds(self.since):
            raise RevocationError("invalid_entry", "since", "must be whole epoch seconds")
        if not _is_reason(self.reason):
            raise RevocationError("invalid_entry", "reason", f"must be one of {', '.join(REASONS)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "certificate_id": str(self.certificate_id),
            "status": self.status.value,
            "since": format_time(self.since),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RevocationList:
    """One version of an issuer province's revocation list (rules 1, 3, 4)."""

    issuer_province: str
    version: int
    issued_at: int
    """Epoch seconds, whole."""
    entries: tuple[RevocationEntry, ...]
    """Sorted by identifier at construction; one per identifier."""
    _index: Mapping[str, RevocationEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer_province, str) or self.issuer_province not in PROVINCES:
            raise RevocationError(
                "malformed", "issuer_province", f"must be one of {', '.join(PROVINCES)}"
            )
        if not _is_seconds(self.version) or self.version < 1:
            raise RevocationError("malformed", "version", "must be a whole number from 1")
        if not _is_seconds(self.issued_at):
            raise RevocationError("malformed", "issued_at", "must be whole epoch seconds")
        if len(self.entries) > MAX_ENTRIES:
            raise RevocationError(
                "too_large", "entries", f"lists {len(self.entries)}; at most {MAX_ENTRIES}"
            )
        index: dict[str, RevocationEntry] = {}
        for position, entry in enumerate(self.entries):
            path = f"entries[{position}]"
            if not isinstance(entry, RevocationEntry):
                raise RevocationError("invalid_entry", path, "must be a RevocationEntry")
            key = str(entry.certificate_id)
            if entry.certificate_id.issuer_province != self.issuer_province:
                raise RevocationError(
                    "invalid_entry",
                    f"{path}.certificate_id",
                    f"was not issued in {self.issuer_province}; a list holds only its "
                    "issuer's certificates",
                )
            if entry.since > self.issued_at:
                raise RevocationError(
                    "invalid_entry", f"{path}.since", "is after the list's issued_at"
                )
            if key in index:
                raise RevocationError("invalid_entry", f"{path}.certificate_id", "is listed twice")
            index[key] = entry
        object.__setattr__(self, "entries", tuple(index[key] for key in sorted(index)))
        object.__setattr__(self, "_index", MappingProxyType(index))

    def entry(self, certificate_id: CertificateId) -> RevocationEntry | None:
        return self._index.get(str(certificate_id))

    def status_of(self, certificate_id: CertificateId) -> CertificateStatus | None:
        """``REVOKED`` or ``SUSPENDED`` if listed; None if this list says nothing against it."""
        listed = self._index.get(str(certificate_id))
        return None if listed is None else listed.status

    def is_newer_than(self, other: RevocationList) -> bool:
        """Whether this list supersedes ``other`` (a higher version of the same issuer's)."""
        if other.issuer_province != self.issuer_province:
            raise RevocationError(
                "issuer_mismatch",
                "issuer_province",
                f"a list of {self.issuer_province} is not comparable with one of "
                f"{other.issuer_province}",
            )
        return self.version > other.version

    def age_seconds(self, now: float) -> float:
        """How long ago the list was issued (0 if the issuer's clock is ahead of ours)."""
        return max(0.0, now - self.issued_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer_province": self.issuer_province,
            "version": self.version,
            "issued_at": format_time(self.issued_at),
            "entries": [entry.to_json() for entry in self.entries],
        }


def keep_newer(current: RevocationList | None, incoming: RevocationList) -> RevocationList:
    """The list a receiver should hold after ``incoming`` arrives, or a refusal (rule 3)."""
    if current is None or incoming.is_newer_than(current):
        return incoming
    if incoming.version < current.version:
        raise RevocationError(
            "stale_version",
            "version",
            f"version {incoming.version} of {incoming.issuer_province}'s list is older than "
            f"the held version {current.version}",
        )
    if incoming != current:
        raise RevocationError(
            "version_conflict",
            "version",
            f"version {incoming.version} of {incoming.issuer_province}'s list differs from the "
            "held list of the same version; a change must raise the version",
        )
    return current


def sign_revocation_list(revocations: RevocationList, key: SigningKey) -> bytes:
    """The signed document (rule 2), ready to announce."""
    body = revocations.to_json()
    signature = key.sign(REVOCATION_LIST_PREFIX + canonical_json(body))
    return canonical_json(
        {
            "revocation_list": body,
            "signature": {
                "key_id": key.key_id,
                "value": base64.b64encode(signature).decode("ascii"),
            },
        }
    )


def read_revocation_list(data: bytes, issuer_keys: IssuerKeys) -> RevocationList:
    """Check a signed document's signature, then parse it (rule 2)."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise RevocationError("too_large", "revocation_list", f"is over {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RevocationError("malformed", "revocation_list", "is not UTF-8 JSON") from None
    if not isinstance(document, dict) or set(document) != {"revocation_list", "signature"}:
        raise RevocationError(
            "malformed", "revocation_list", 'must be {"revocation_list": …, "signature": …}'
        )
    body, signature = document["revocation_list"], document["signature"]
    if not isinstance(body, dict):
        raise RevocationError("malformed", "revocation_list", "must be a JSON object")
    if not isinstance(signature, dict) or set(signature) != {"key_id", "value"}:
        raise RevocationError("malformed", "signature", 'must be {"key_id", "value"}')
    province, key_id = body.get("issuer_province"), signature["key_id"]
    if not isinstance(province, str) or province not in PROVINCES:
        raise RevocationError(
            "malformed", "issuer_province", f"must be one of {', '.join(PROVINCES)}"
        )
    if not isinstance(key_id, str):
        raise RevocationError("malformed", "signature.key_id", "must be a string")
    key = issuer_keys(province, key_id)
    if key is None:
        raise RevocationError(
            "unknown_key",
            "signature.key_id",
            f"{key_id[:80]} is not a current signing key of {province} in the manifest",
        )
    try:
        value = base64.b64decode(str(signature["value"]), validate=True)
        signed = REVOCATION_LIST_PREFIX + canonical_json(body)
    except (binascii.Error, ValueError):
        raise RevocationError("malformed", "signature.value", "is not base64") from None
    if not key.verify(value, signed):
        raise RevocationError(
            "bad_signature", "signature.value", "does not verify: the list was altered"
        )
    return _parse_body(body)


def _parse_body(body: Mapping[str, object]) -> RevocationList:
    _keys(body, _BODY_KEYS, "revocation_list")
    entries = body["entries"]
    if not isinstance(entries, list):
        raise RevocationError("malformed", "entries", "must be a JSON array")
    if len(entries) > MAX_ENTRIES:
        raise RevocationError(
            "too_large", "entries", f"lists {len(entries)}; at most {MAX_ENTRIES}"
        )
    return RevocationList(
        issuer_province=str(body["issuer_province"]),
        version=body["version"],  # type: ignore[arg-type]  # checked at construction
        issued_at=_time(body["issued_at"], "issued_at"),
        entries=tuple(_parse_entry(entry, f"entries[{i}]") for i, entry in enumerate(entries)),
    )


def _parse_entry(data: object, path: str) -> RevocationEntry:
    entry = _keys(data, _ENTRY_KEYS, path)
    try:
        cert_id = parse_certificate_id(entry["certificate_id"], field=f"{path}.certificate_id")
    except IdentifierError as error:
        sentence = error.detail.removeprefix(f"{error.field}: ")
        raise RevocationError("invalid_entry", error.field, sentence) from None
    status = entry["status"]
    if status not in ("revoked", "suspended"):
        raise RevocationError("invalid_entry", f"{path}.status", "must be revoked or suspended")
    reason = entry["reason"]
    if not _is_reason(reason):
        raise RevocationError(
            "invalid_entry", f"{path}.reason", f"must be one of {', '.join(REASONS)}"
        )
    since = _time(entry["since"], f"{path}.since")
    try:
        return RevocationEntry(cert_id, CertificateStatus(status), since, reason)
    except RevocationError as error:
        sentence = error.detail.removeprefix(f"{error.field}: ")
        raise RevocationError(error.code, f"{path}.{error.field}", sentence) from None


def _keys(data: object, expected: frozenset[str], path: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise RevocationError("malformed", path, "must be a JSON object")
    if set(data) != expected:
        extra, missing = sorted(set(data) - expected), sorted(expected - set(data))
        what = f"unknown field {extra[0][:40]!r}" if extra else f"missing field {missing[0]!r}"
        raise RevocationError("malformed", path, what)
    return data


def _time(value: object, path: str) -> int:
    if not isinstance(value, str):
        raise RevocationError("malformed", path, "must be a UTC time like 2026-01-31T08:00:00Z")
    try:
        return int(parse_time(value, path))
    except ManifestMalformed:
        raise RevocationError(
            "malformed", path, "must be a UTC time like 2026-01-31T08:00:00Z"
        ) from None


def _is_reason(value: object) -> TypeGuard[ReasonCode]:
    return isinstance(value, str) and value in REASONS


def _is_seconds(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

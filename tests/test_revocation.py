"""Revocation lists: canonical signed encoding, status lookups and the newer-version rule."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from node.certificates.issuers import manifest_issuer_keys
from node.certificates.model import CertificateStatus
from node.certificates.revocation import (
    REVOCATION_LIST_PREFIX,
    RevocationEntry,
    RevocationError,
    RevocationList,
    keep_newer,
    read_revocation_list,
    sign_revocation_list,
)
from node.trust.keys import SigningKey
from node.trust.manifest import canonical_json
from tests.certificate_samples import NOW, manifest_for, sample

SHANGHAI_KEY = SigningKey.generate()
JIANGSU_KEY = SigningKey.generate()
KEYS = manifest_issuer_keys(manifest_for({"shanghai": SHANGHAI_KEY, "jiangsu": JIANGSU_KEY}), NOW)
ISSUED = int(NOW) - 3600
CARD = sample("resident_id_card").certificate_id
LICENCE = sample("driving_licence").certificate_id
VEHICLE = sample("vehicle_licence").certificate_id
PERMIT_IN_SUZHOU = sample("residence_permit").certificate_id


def shanghai_list(version: int = 2, *entries: RevocationEntry) -> RevocationList:
    if not entries:
        entries = (
            RevocationEntry(LICENCE, CertificateStatus.SUSPENDED, ISSUED - 60, "under_review"),
            RevocationEntry(CARD, CertificateStatus.REVOKED, ISSUED - 86_400, "lost"),
        )
    return RevocationList("shanghai", version, ISSUED, entries)


def refusal(data: bytes) -> RevocationError:
    with pytest.raises(RevocationError) as caught:
        read_revocation_list(data, KEYS)
    return caught.value


def resign(document: dict[str, Any], key: SigningKey = SHANGHAI_KEY) -> bytes:
    """Sign an edited body as the issuer would, to test what a validly signed list may hold."""
    body = document["revocation_list"]
    signature = key.sign(REVOCATION_LIST_PREFIX + canonical_json(body))
    document["signature"] = {
        "key_id": key.key_id,
        "value": base64.b64encode(signature).decode("ascii"),
    }
    return canonical_json(document)


# --- round trip and lookups -----------------------------------------------------------------


def test_signed_list_reads_back_equal() -> None:
    """A signed list read with the issuer's manifest key is the list that was signed."""
    revocations = shanghai_list()
    assert read_revocation_list(sign_revocation_list(revocations, SHANGHAI_KEY), KEYS) == (
        revocations
    )


def test_encoding_is_canonical_json() -> None:
    """The document is canonical JSON, entries sorted by identifier, identical on each signing."""
    data = sign_revocation_list(shanghai_list(), SHANGHAI_KEY)
    document = json.loads(data)
    assert canonical_json(document) == data
    ids = [entry["certificate_id"] for entry in document["revocation_list"]["entries"]]
    assert ids == sorted(ids)
    assert document["revocation_list"]["issued_at"].endswith("Z")
    assert sign_revocation_list(shanghai_list(), SHANGHAI_KEY) == data


def test_status_of_answers_revoked_suspended_or_nothing() -> None:
    """A listed certificate has its listed status; an unlisted one has None."""
    revocations = shanghai_list()
    assert revocations.status_of(CARD) is CertificateStatus.REVOKED
    assert revocations.status_of(LICENCE) is CertificateStatus.SUSPENDED
    assert revocations.status_of(VEHICLE) is None
    entry = revocations.entry(CARD)
    assert entry is not None
    assert entry.reason == "lost"


def test_age_is_seconds_since_issue_and_never_negative() -> None:
    """A list's age counts from issued_at; a list from an issuer whose clock is ahead is 0 s."""
    revocations = shanghai_list()
    assert revocations.age_seconds(NOW) == 3600
    assert revocations.age_seconds(ISSUED - 5) == 0


# --- newer versions only --------------------------------------------------------------------


def test_older_list_is_refused() -> None:
    """A receiver holding version 2 refuses version 1 as stale_version."""
    with pytest.raises(RevocationError) as caught:
        keep_newer(shanghai_list(2), shanghai_list(1))
    assert (caught.value.code, caught.value.field) == ("stale_version", "version")


def test_newer_list_replaces_the_held_one() -> None:
    """A higher version is kept; the first list is kept whatever its version."""
    held, incoming = shanghai_list(2), shanghai_list(3)
    assert incoming.is_newer_than(held)
    assert not held.is_newer_than(incoming)
    assert keep_newer(held, incoming) is incoming
    assert keep_newer(None, held) is held


def test_same_version_same_content_is_the_held_list() -> None:
    """Receiving the held version again changes nothing."""
    held = shanghai_list(2)
    assert keep_newer(held, shanghai_list(2)) is held


def test_same_version_with_other_content_is_a_conflict() -> None:
    """A change under the same version number is version_conflict."""
    changed = shanghai_list(
        2, RevocationEntry(CARD, CertificateStatus.REVOKED, ISSUED, "superseded")
    )
    with pytest.raises(RevocationError) as caught:
        keep_newer(shanghai_list(2), changed)
    assert caught.value.code == "version_conflict"


def test_lists_of_two_provinces_are_not_compared() -> None:
    """Comparing Shanghai's list with Jiangsu's is issuer_mismatch."""
    jiangsu = RevocationList("jiangsu", 9, ISSUED, ())
    with pytest.raises(RevocationError) as caught:
        jiangsu.is_newer_than(shanghai_list())
    assert caught.value.code == "issuer_mismatch"


# --- signatures and keys --------------------------------------------------------------------


def test_tampered_list_is_refused() -> None:
    """Lifting a revocation in transit breaks the signature."""
    document = json.loads(sign_revocation_list(shanghai_list(), SHANGHAI_KEY))
    document["revocation_list"]["entries"] = document["revocation_list"]["entries"][:1]
    error = refusal(canonical_json(document))
    assert (error.code, error.field) == ("bad_signature", "signature.value")


def test_list_signed_by_another_provinces_key_is_refused() -> None:
    """Jiangsu's key does not speak for Shanghai's list, however valid its signature."""
    error = refusal(sign_revocation_list(shanghai_list(), JIANGSU_KEY))
    assert (error.code, error.field) == ("unknown_key", "signature.key_id")


def test_list_signed_by_a_key_outside_the_manifest_is_refused() -> None:
    """A key the manifest does not list is unknown_key."""
    error = refusal(sign_revocation_list(shanghai_list(), SigningKey.generate()))
    assert error.code == "unknown_key"


def test_list_signed_by_a_revoked_key_is_refused() -> None:
    """A key the manifest marks revoked verifies nothing."""
    keys = manifest_issuer_keys(
        manifest_for({"shanghai": SHANGHAI_KEY}, revoked=frozenset({SHANGHAI_KEY.key_id})), NOW
    )
    with pytest.raises(RevocationError) as caught:
        read_revocation_list(sign_revocation_list(shanghai_list(), SHANGHAI_KEY), keys)
    assert caught.value.code == "unknown_key"


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"revocation_list": {}}', b"\xff\xfe"],
    ids=["text", "array", "unsigned", "not-utf8"],
)
def test_malformed_documents_are_refused(data: bytes) -> None:
    """Anything that is not a signed list document is malformed."""
    assert refusal(data).code == "malformed"


# --- what a list may hold -------------------------------------------------------------------


def test_entry_for_another_provinces_certificate_is_refused() -> None:
    """Shanghai's list cannot list a residence permit issued in Suzhou."""
    entry = RevocationEntry(PERMIT_IN_SUZHOU, CertificateStatus.REVOKED, ISSUED, "lost")
    with pytest.raises(RevocationError) as caught:
        shanghai_list(2, entry)
    assert (caught.value.code, caught.value.field) == (
        "invalid_entry",
        "entries[0].certificate_id",
    )


def test_duplicate_entry_is_refused() -> None:
    """One certificate is listed once."""
    first = RevocationEntry(CARD, CertificateStatus.REVOKED, ISSUED, "lost")
    second = RevocationEntry(CARD, CertificateStatus.SUSPENDED, ISSUED, "under_review")
    with pytest.raises(RevocationError) as caught:
        shanghai_list(2, first, second)
    assert (caught.value.code, caught.value.field) == ("invalid_entry", "entries[1].certificate_id")


def test_entry_taking_effect_after_the_list_is_refused() -> None:
    """An entry whose since is after the list's issued_at is invalid_entry."""
    entry = RevocationEntry(CARD, CertificateStatus.REVOKED, ISSUED + 1, "lost")
    with pytest.raises(RevocationError) as caught:
        shanghai_list(2, entry)
    assert (caught.value.code, caught.value.field) == ("invalid_entry", "entries[0].since")


@pytest.mark.parametrize(
    ("status", "reason", "field"),
    [
        (CertificateStatus.VALID, "lost", "status"),
        (CertificateStatus.EXPIRED, "lost", "status"),
        (CertificateStatus.REVOKED, "stolen", "reason"),
    ],
)
def test_entry_status_and_reason_are_checked(
    status: CertificateStatus, reason: Any, field: str
) -> None:
    """Only revoked and suspended are listed, each with a known reason code."""
    with pytest.raises(RevocationError) as caught:
        RevocationEntry(CARD, status, ISSUED, reason)
    assert (caught.value.code, caught.value.field) == ("invalid_entry", field)


def test_signed_entry_with_bad_fields_is_refused_by_path() -> None:
    """A validly signed list with a malformed entry is refused naming the entry's field."""
    document = json.loads(sign_revocation_list(shanghai_list(), SHANGHAI_KEY))
    document["revocation_list"]["entries"][0]["since"] = "yesterday"
    error = refusal(resign(document))
    assert (error.code, error.field) == ("malformed", "entries[0].since")
    document["revocation_list"]["entries"][0]["since"] = "2025-05-01T00:00:00Z"
    document["revocation_list"]["entries"][0]["certificate_id"] = "1.2.156.3005.2.X"
    error = refusal(resign(document))
    assert (error.code, error.field) == ("invalid_entry", "entries[0].certificate_id")
    document["revocation_list"]["entries"][0]["certificate_id"] = str(CARD)
    document["revocation_list"]["extra"] = 1
    error = refusal(resign(document))
    assert (error.code, error.field) == ("malformed", "revocation_list")


def test_issuer_province_of_the_wrong_type_is_malformed() -> None:
    """A list whose issuer_province is not a province name is malformed, not a crash."""
    document = json.loads(sign_revocation_list(shanghai_list(), SHANGHAI_KEY))
    document["revocation_list"]["issuer_province"] = ["shanghai"]
    error = refusal(canonical_json(document))
    assert (error.code, error.field) == ("malformed", "issuer_province")

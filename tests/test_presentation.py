"""Offline presentations (亮证): issue, size, verification and judging against revocations."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable

import pytest

from node.certificates.issuers import manifest_issuer_keys
from node.certificates.model import TYPES, CertificateStatus, CertificateType
from node.certificates.policy import PRESENTATION_FIELDS
from node.certificates.presentation import (
    DEFAULT_LIFETIME,
    PRESENTATION_PREFIX,
    QR_BYTE_CAPACITY,
    PresentationError,
    check_offline,
    issue_presentation,
    read_presentation,
)
from node.certificates.revocation import RevocationEntry, RevocationList
from node.trust.keys import SigningKey, VerifyKey
from tests.certificate_samples import LI_MINGHUA, NOW, OTHER_PERSON, manifest_for, sample

SHANGHAI_KEY = SigningKey.generate()
JIANGSU_KEY = SigningKey.generate()
ISSUER_KEYS = {"shanghai": SHANGHAI_KEY, "jiangsu": JIANGSU_KEY, "zhejiang": SigningKey.generate()}
KEYS = manifest_issuer_keys(manifest_for(ISSUER_KEYS), NOW)
NONCE = bytes.fromhex("0011223344556677")
CARD = sample("resident_id_card")
TYPICAL_TOKEN_LENGTH = 254
"""Measured: a resident ID card with a three-character name and an 8-character serial."""


def issue(certificate_type: CertificateType = "resident_id_card", **changes: str) -> str:
    """A presentation signed by the issuing province's key, with a fixed nonce."""
    certificate = sample(certificate_type, **changes)
    key = ISSUER_KEYS[certificate.issuer_province]
    return issue_presentation(certificate, key, now=NOW, nonce=NONCE)


def refusal(token: str, *, now: float = NOW, keys: Callable[..., VerifyKey | None] = KEYS) -> str:
    with pytest.raises(PresentationError) as caught:
        read_presentation(token, keys, now=now)
    return caught.value.code


def raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def resigned(payload: bytes, key: SigningKey = SHANGHAI_KEY) -> str:
    """A token the issuer really signed, around a payload the test wrote."""
    return encode(payload + key.sign(PRESENTATION_PREFIX + payload))


# --- issue and read -------------------------------------------------------------------------


def test_presentation_reads_back_what_was_issued() -> None:
    """A fresh presentation verifies and carries the identifier, status, fields and expiry."""
    presentation = read_presentation(issue(), KEYS, now=NOW + 10)
    assert presentation.certificate_id == CARD.certificate_id
    assert presentation.certificate_type == "resident_id_card"
    assert presentation.issuer_province == "shanghai"
    assert presentation.status is CertificateStatus.VALID
    assert dict(presentation.fields) == {"name": "李明华", "sex": "male"}
    assert presentation.issued_at == int(NOW)
    assert presentation.expires_at == int(NOW) + DEFAULT_LIFETIME == int(NOW) + 300
    assert presentation.key_id == SHANGHAI_KEY.key_id


@pytest.mark.parametrize("certificate_type", list(TYPES))
def test_every_type_can_be_presented_with_its_offline_fields(
    certificate_type: CertificateType,
) -> None:
    """Each type's presentation carries exactly its PRESENTATION_FIELDS and fits a QR code."""
    certificate = sample(certificate_type)
    token = issue(certificate_type)
    presentation = read_presentation(token, KEYS, now=NOW)
    assert tuple(presentation.fields) == PRESENTATION_FIELDS[certificate_type]
    expected = certificate.disclosable_values()
    assert dict(presentation.fields) == {name: expected[name] for name in presentation.fields}
    assert len(token) <= 600


def test_typical_resident_id_token_fits_a_qr_code() -> None:
    """A resident ID card presentation is well under 600 characters and a QR code's capacity."""
    token = issue()
    print(f"resident ID card presentation: {len(token)} characters")
    assert len(token) == TYPICAL_TOKEN_LENGTH
    assert len(token) <= 600
    assert len(token.encode("ascii")) <= QR_BYTE_CAPACITY == 2953


def test_holder_is_bound_by_digest_not_shown() -> None:
    """The token does not carry the ID number, yet the holder's number (in any case) matches."""
    token = issue()
    assert LI_MINGHUA.encode() not in raw(token)
    presentation = read_presentation(token, KEYS, now=NOW)
    assert presentation.holder_matches(LI_MINGHUA)
    assert presentation.holder_matches(LI_MINGHUA.lower())
    assert not presentation.holder_matches(OTHER_PERSON)


def test_random_nonce_makes_each_token_different() -> None:
    """Two presentations of one certificate at one instant differ (each has its own nonce)."""
    first = issue_presentation(CARD, SHANGHAI_KEY, now=NOW)
    second = issue_presentation(CARD, SHANGHAI_KEY, now=NOW)
    assert first != second
    assert read_presentation(first, KEYS, now=NOW).holder_matches(LI_MINGHUA)


def test_long_term_validity_is_carried_as_no_value() -> None:
    """A long-term certificate's valid_until is carried and read back as None."""
    certificate = sample("driving_licence", valid_until=None)
    token = issue_presentation(certificate, SHANGHAI_KEY, now=NOW)
    assert read_presentation(token, KEYS, now=NOW).fields["valid_until"] is None


@pytest.mark.parametrize("lifetime", [0, 3601, -5])
def test_lifetime_outside_bounds_is_refused_at_issue(lifetime: int) -> None:
    """A presentation lives 1 s to an hour."""
    with pytest.raises(PresentationError) as caught:
        issue_presentation(CARD, SHANGHAI_KEY, now=NOW, lifetime=lifetime)
    assert (caught.value.code, caught.value.field) == ("invalid_lifetime", "lifetime")


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["field value", "nonce", "signature", "issued_at"])
def test_tampered_presentation_is_refused(where: str) -> None:
    """Changing any signed byte, or the signature, is bad_signature."""
    data = raw(issue())
    offsets = {"field value": len(data) - 64 - 2, "nonce": 26, "signature": len(data) - 1}
    if where == "issued_at":
        struct.pack_into(">I", data, 3, int(NOW) + 60)
    else:
        data[offsets[where]] ^= 0x01
    assert refusal(encode(bytes(data))) == "bad_signature"


def test_presentation_signed_by_a_key_not_in_the_manifest_is_refused() -> None:
    """A key the lookup does not know is unknown_key."""
    token = issue_presentation(CARD, SigningKey.generate(), now=NOW, nonce=NONCE)
    assert refusal(token) == "unknown_key"
    assert refusal(issue(), keys=lambda province, key_id: None) == "unknown_key"


def test_presentation_signed_by_another_provinces_key_is_refused() -> None:
    """Jiangsu's node cannot present a certificate Shanghai issued."""
    token = issue_presentation(CARD, JIANGSU_KEY, now=NOW, nonce=NONCE)
    assert refusal(token) == "unknown_key"


def test_presentation_signed_by_a_revoked_key_is_refused() -> None:
    """Once the manifest revokes the issuer's key, its presentations are unknown_key."""
    keys = manifest_issuer_keys(
        manifest_for({"shanghai": SHANGHAI_KEY}, revoked=frozenset({SHANGHAI_KEY.key_id})), NOW
    )
    assert refusal(issue(), keys=keys) == "unknown_key"


def test_expired_presentation_is_refused() -> None:
    """A presentation is refused from its expiry instant on, with no grace."""
    token = issue()
    read_presentation(token, KEYS, now=int(NOW) + DEFAULT_LIFETIME - 1)
    assert refusal(token, now=int(NOW) + DEFAULT_LIFETIME) == "expired"


def test_presentation_from_the_future_is_refused_beyond_the_clock_skew() -> None:
    """A token issued up to 60 s ahead of the reader's clock is read; further ahead is not."""
    token = issue()
    read_presentation(token, KEYS, now=NOW - 60)
    assert refusal(token, now=NOW - 61) == "not_yet_valid"


@pytest.mark.parametrize(
    "token",
    ["", "!!!!", "AAAA=", "A", "AAAA", "B" * 3000],
    ids=["empty", "alphabet", "padding", "one-char", "too-short", "too-long"],
)
def test_malformed_text_is_refused(token: str) -> None:
    """Text that cannot be a presentation is malformed."""
    assert refusal(token) == "malformed"


def test_truncated_and_extended_tokens_are_malformed() -> None:
    """A token cut short or with bytes appended no longer parses."""
    data = raw(issue())
    assert refusal(encode(bytes(data[:-70]))) == "malformed"
    payload = bytes(data[:-64])
    assert refusal(resigned(payload + b"\x00")) == "malformed"


def test_non_canonical_base64_is_malformed() -> None:
    """Non-zero unused bits in the last character are refused: one payload, one token."""
    token = issue()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    assert len(token) % 4 != 0
    assert refusal(token[:-1] + alphabet[last | 1]) == "malformed"


@pytest.mark.parametrize(
    ("offset", "value"), [(0, 2), (1, 99), (2, 9), (9, 7)], ids=["version", "type", "status", "alg"]
)
def test_signed_nonsense_is_malformed(offset: int, value: int) -> None:
    """A signed token with an unknown version, type, status or algorithm is malformed."""
    payload = bytearray(raw(issue())[:-64])
    payload[offset] = value
    assert refusal(resigned(bytes(payload))) == "malformed"


def test_signed_token_with_fields_out_of_order_is_malformed() -> None:
    """Field positions must increase; a repeated field is refused even when signed."""
    payload = bytearray(raw(issue())[:-64])
    # The resident ID card carries name (position 0) then sex (position 1): make both 0.
    sex_position = len(payload) - (2 + len(b"male")) - 1
    assert payload[sex_position] == 1
    payload[sex_position] = 0
    assert refusal(resigned(bytes(payload))) == "malformed"


# --- status at issue and offline judgement --------------------------------------------------


def test_expired_certificate_is_presented_as_expired() -> None:
    """A certificate past its validity is presented with status expired and is not valid."""
    token = issue_presentation(
        sample("residence_permit"), JIANGSU_KEY, now=NOW + 400 * 86_400, nonce=NONCE
    )
    presentation = read_presentation(token, KEYS, now=NOW + 400 * 86_400)
    assert presentation.status is CertificateStatus.EXPIRED
    assert check_offline(presentation, None, now=NOW).valid is False


@pytest.mark.parametrize("status", ["revoked", "suspended"])
def test_stored_status_is_presented(status: str) -> None:
    """A revoked or suspended certificate's presentation says so and is not valid."""
    presentation = read_presentation(issue(status=status), KEYS, now=NOW)
    assert presentation.status.value == status
    check = check_offline(presentation, None, now=NOW)
    assert (check.valid, check.status.value) == (False, status)


def _list(status: CertificateStatus, issued_at: float) -> RevocationList:
    entry = RevocationEntry(CARD.certificate_id, status, int(issued_at) - 10, "lost")
    return RevocationList("shanghai", 4, int(issued_at), (entry,))


def test_revocation_list_overrides_a_valid_presentation() -> None:
    """A certificate revoked after the presentation was issued is revoked offline."""
    presentation = read_presentation(issue(), KEYS, now=NOW)
    check = check_offline(presentation, _list(CertificateStatus.REVOKED, NOW - 100), now=NOW + 20)
    assert (check.valid, check.status) == (False, CertificateStatus.REVOKED)
    assert check.revocation_list_age_seconds == 120
    assert check.issuer_province == "shanghai"


def test_suspension_older_than_the_presentation_is_lifted() -> None:
    """A suspension in a list older than the presentation yields to the issuer's newer word."""
    presentation = read_presentation(issue(), KEYS, now=NOW)
    older = check_offline(presentation, _list(CertificateStatus.SUSPENDED, NOW - 100), now=NOW)
    assert older.status is CertificateStatus.VALID and older.valid
    newer = check_offline(presentation, _list(CertificateStatus.SUSPENDED, NOW + 5), now=NOW)
    assert newer.status is CertificateStatus.SUSPENDED


def test_no_revocation_list_reports_no_age() -> None:
    """Without the issuer's list the status at issue stands and the age is unknown."""
    presentation = read_presentation(issue(), KEYS, now=NOW)
    check = check_offline(presentation, None, now=NOW)
    assert check.valid and check.revocation_list_age_seconds is None
    assert dict(check.fields) == {"name": "李明华", "sex": "male"}


def test_another_provinces_revocation_list_is_refused() -> None:
    """Judging a Shanghai certificate by Jiangsu's list is issuer_mismatch."""
    presentation = read_presentation(issue(), KEYS, now=NOW)
    with pytest.raises(PresentationError) as caught:
        check_offline(presentation, RevocationList("jiangsu", 1, int(NOW), ()), now=NOW)
    assert caught.value.code == "issuer_mismatch"

"""Certificate documents signed with SM2: offline presentations (the QR token stays the
Ed25519 token's size, SM2's (r, s) carried in 64 bytes), revocation lists and consent
grants, each read back, verified by an independent SM2 implementation (snowland-smx) where
the bytes allow, and refused when altered or signed under the wrong suite."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from pysmx.SM2 import Verify as smx_verify

from node.certificates.consent import (
    ConsentGrant,
    ConsentRefused,
    grant_bytes,
    grant_token,
    read_grant,
    sign_grant,
)
from node.certificates.issuers import manifest_issuer_keys
from node.certificates.model import CertificateStatus
from node.certificates.presentation import (
    PRESENTATION_PREFIX,
    PresentationError,
    issue_presentation,
    read_presentation,
)
from node.certificates.revocation import (
    RevocationEntry,
    RevocationError,
    RevocationList,
    read_revocation_list,
    sign_revocation_list,
)
from node.trust.keys import SigningKey
from node.trust.suites import SM2_DEFAULT_UID, SM2_SUITE
from node.wire import pb
from tests.certificate_samples import LI_MINGHUA, NOW, manifest_for, sample

SHANGHAI = SigningKey.generate(SM2_SUITE)
JIANGSU = SigningKey.generate()
MANIFEST = manifest_for({"shanghai": SHANGHAI, "jiangsu": JIANGSU})
KEYS = manifest_issuer_keys(MANIFEST, NOW)
NONCE = bytes.fromhex("0011223344556677")
CARD = sample("resident_id_card")
ED25519_TOKEN_LENGTH = len(
    issue_presentation(
        CARD,
        SigningKey.generate(),
        now=NOW,
        nonce=NONCE,
    )
)


def token_bytes(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def as_token(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_an_sm2_presentation_reads_back_and_verifies_under_snowland_smx() -> None:
    token = issue_presentation(CARD, SHANGHAI, now=NOW, nonce=NONCE)
    assert len(token) == ED25519_TOKEN_LENGTH
    presentation = read_presentation(token, KEYS, now=NOW)
    assert presentation.key_id == SHANGHAI.key_id
    assert presentation.certificate_id == CARD.certificate_id
    assert presentation.holder_matches(LI_MINGHUA)
    raw = bytes(token_bytes(token))
    payload, signature = raw[:-64], raw[-64:]
    point = SHANGHAI.verify_key.public_bytes
    assert smx_verify(signature, PRESENTATION_PREFIX + payload, point[1:], 64, uid=SM2_DEFAULT_UID)


@pytest.mark.parametrize("where", [-1, -40, -64, 5, 40])
def test_an_altered_sm2_presentation_is_refused(where: int) -> None:
    raw = token_bytes(issue_presentation(CARD, SHANGHAI, now=NOW, nonce=NONCE))
    raw[where] ^= 0x01
    with pytest.raises(PresentationError) as caught:
        read_presentation(as_token(bytes(raw)), KEYS, now=NOW)
    assert caught.value.code in {"bad_signature", "malformed", "unknown_key"}


@pytest.mark.parametrize("rs", [bytes(64), b"\xff" * 64, bytes(32) + b"\x01" * 32])
def test_an_sm2_presentation_with_r_or_s_out_of_range_is_a_bad_signature(rs: bytes) -> None:
    raw = token_bytes(issue_presentation(CARD, SHANGHAI, now=NOW, nonce=NONCE))
    with pytest.raises(PresentationError) as caught:
        read_presentation(as_token(bytes(raw[:-64]) + rs), KEYS, now=NOW)
    assert caught.value.code == "bad_signature"


def test_a_presentation_naming_the_sm2_algorithm_for_an_ed25519_key_is_an_unknown_key() -> None:
    """Jiangsu signs with Ed25519; a token whose algorithm byte says SM2 over Jiangsu's
    fingerprint names no key of Jiangsu's."""
    certificate = sample("resident_id_card")
    keys = manifest_issuer_keys(manifest_for({"shanghai": JIANGSU}), NOW)
    raw = token_bytes(issue_presentation(certificate, JIANGSU, now=NOW, nonce=NONCE))
    raw[9] = 2
    with pytest.raises(PresentationError) as caught:
        read_presentation(as_token(bytes(raw)), keys, now=NOW)
    assert caught.value.code == "unknown_key"


def test_an_sm2_revocation_list_reads_back_and_verifies_under_snowland_smx() -> None:
    revocations = RevocationList(
        "shanghai",
        3,
        int(NOW),
        (RevocationEntry(CARD.certificate_id, CertificateStatus.REVOKED, int(NOW) - 5, "lost"),),
    )
    document = sign_revocation_list(revocations, SHANGHAI)
    assert read_revocation_list(document, KEYS) == revocations
    parsed = json.loads(document)
    assert parsed["signature"]["key_id"] == SHANGHAI.key_id
    altered = document.replace(b'"version":3', b'"version":4')
    with pytest.raises(RevocationError) as caught:
        read_revocation_list(altered, KEYS)
    assert caught.value.code == "bad_signature"


def test_an_sm2_consent_grant_reads_back_and_an_altered_one_is_refused() -> None:
    grant = ConsentGrant(
        grant_id="cg-0123456789abcdef01234567",
        grantor="shanghai-node",
        holder_code=LI_MINGHUA,
        purpose="hotel_check_in",
        fields=("name", "address"),
        issued_at=NOW - 60,
        expires_at=NOW + 3600,
    )
    token = sign_grant(grant, SHANGHAI)
    assert dataclasses.replace(read_grant(token, manifest=MANIFEST, now=NOW), token="") == grant
    signed = pb.SignedConsent.FromString(grant_bytes(token))
    assert signed.key_id == SHANGHAI.key_id
    narrower = pb.SignedConsent.FromString(
        grant_bytes(sign_grant(dataclasses.replace(grant, fields=("name",)), SHANGHAI))
    )
    for forged in (
        pb.SignedConsent(grant=narrower.grant, signature=signed.signature, key_id=signed.key_id),
        pb.SignedConsent(grant=signed.grant, signature=signed.signature[:-1], key_id=signed.key_id),
    ):
        with pytest.raises(ConsentRefused, match="signature does not verify"):
            read_grant(grant_token(forged.SerializeToString()), manifest=MANIFEST, now=NOW)

"""X.509 material for mutual TLS between nodes: a federation CA, one certificate per node,
and the peer identity a TLS handshake proves.

Rules kept here:
- Keys are ECDSA P-256, which gRPC's BoringSSL accepts on every platform.
- A node certificate names its node id twice, as subject CN and as the single DNS subject
  alternative name; the SAN is the identity. It may serve and it may connect (serverAuth and
  clientAuth), and it cannot sign other certificates.
- Certificates start five minutes in the past so a peer whose clock runs a little behind
  still accepts a freshly issued one.
- A peer's identity comes only from a certificate presented in a TLS handshake; an
  insecure or certificate-less connection has no identity (``None``), never a default one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.trust.keys import KeyFileError, read_private_file

CLOCK_TOLERANCE = timedelta(minutes=5)

# One DNS label, lower case: what gRPC hostname verification compares against the SAN.
_NODE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

_SAN_PROPERTY = "x509_subject_alternative_name"
_TRANSPORT_PROPERTY = "transport_security_type"


class TlsMaterialError(Exception):
    """A certificate is missing, malformed, or does not belong with its key or CA."""


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_ca(
    common_name: str, *, now: float, valid_days: int = 3650
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed federation CA that can sign node certificates and nothing below them."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = _at(now)
    subject = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_TOLERANCE)
        .not_valid_after(start + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_node_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    node_id: str,
    *,
    now: float,
    valid_days: int = 825,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and a certificate for ``node_id``, signed by the CA, usable both ways."""
    if not _NODE_ID.match(node_id):
        raise ValueError(
            f"node id {node_id!r} is not a lower-case DNS label (like node-310000), so it "
            "cannot be a certificate's DNS name"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    start = _at(now)
    # A certificate that outlives its CA would fail verification anyway; say so in the cert.
    end = min(start + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(node_id))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_TOLERANCE)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_id)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM without encryption: file mode 0600 is what protects it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_certificate(pem: bytes, what: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TlsMaterialError(f"{what} is not a PEM X.509 certificate: {exc}") from exc


def certificate_not_after(pem: bytes) -> float:
    """When the certificate stops being valid, in epoch seconds."""
    return _load_certificate(pem).not_valid_after_utc.timestamp()


def certificate_node_id(pem: bytes, what: str = "certificate") -> str:
    """The node id a certificate speaks for: its one DNS subject alternative name."""
    cert = _load_certificate(pem, what)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise TlsMaterialError(f"{what} has no subject alternative name") from exc
    names = san.get_values_for_type(x509.DNSName)
    if len(names) != 1:
        raise TlsMaterialError(f"{what} must name exactly one DNS name, not {names!r}")
    return names[0]


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The node id proved by the peer's TLS certificate, from a grpc ``auth_context()``.

    ``None`` unless the transport is TLS and the certificate names exactly one subject
    alternative name: with several there is no single identity to check the sender against.
    """
    if b"ssl" not in tuple(auth_context.get(_TRANSPORT_PROPERTY, ())):
        return None
    names = tuple(auth_context.get(_SAN_PROPERTY, ()))
    if len(names) != 1:
        return None
    try:
        return names[0].decode("ascii")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes a node hands to gRPC: the CA it trusts, its certificate, and its key."""

    ca_pem: bytes
    cert_pem: bytes
    # Kept out of repr so that logging this object never prints the private key.
    key_pem: bytes = field(repr=False)

    @classmethod
    def load(cls, ca_path: Path, cert_path: Path, key_path: Path) -> TlsMaterial:
        """Read the three files and check that they belong together.

        Raises ``KeyFileError`` if the key file is missing, group/other-readable or not a
        P-256 key, and ``TlsMaterialError`` if a certificate is missing, malformed, not
        issued by the CA, or not for this key. A node should fail at start, not at the
        first handshake.
        """
        ca_pem = _read(ca_path)
        cert_pem = _read(cert_path)
        key_pem = read_private_file(key_path)
        ca = _load_certificate(ca_pem, str(ca_path))
        cert = _load_certificate(cert_pem, str(cert_path))
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError as exc:
            raise KeyFileError(f"{key_path} is not a PEM private key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise KeyFileError(f"{key_path} is not an ECDSA P-256 key")
        if key.public_key() != cert.public_key():
            raise TlsMaterialError(f"{cert_path} is not the certificate of the key {key_path}")
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise TlsMaterialError(f"{cert_path} was not issued by the CA in {ca_path}") from exc
        certificate_node_id(cert_pem, str(cert_path))
        return cls(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsMaterialError(f"cannot read {path}: {exc.strerror}") from exc

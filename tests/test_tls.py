from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.trust.keys import KeyFileError, write_private_file
from node.trust.tls import (
    TlsMaterial,
    TlsMaterialError,
    certificate_node_id,
    certificate_not_after,
    certificate_pem,
    create_ca,
    issue_node_certificate,
    peer_identity,
    private_key_pem,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return create_ca("Test Federation CA", now=NOW)


@pytest.fixture(scope="module")
def node(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return issue_node_certificate(*ca, "node-310000", now=NOW)


def write_material(
    folder: Path,
    ca_cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
) -> tuple[Path, Path, Path]:
    (folder / "ca.crt").write_bytes(certificate_pem(ca_cert))
    (folder / "tls.crt").write_bytes(certificate_pem(cert))
    write_private_file(folder / "tls.key", private_key_pem(key))
    return folder / "ca.crt", folder / "tls.crt", folder / "tls.key"


def test_ca_may_sign_certificates_and_nothing_below_them(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """The CA is self-signed P-256 with path length 0 and may sign certificates and CRLs."""
    _, cert = ca
    cert.verify_directly_issued_by(cert)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert not usage.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_node_certificate_chains_to_the_ca(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """A node certificate's signature verifies with the CA's public key."""
    ca_key, ca_cert = ca
    _, cert = node
    assert cert.signature_hash_algorithm is not None
    ca_key.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )
    assert cert.issuer == ca_cert.subject
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_node_certificate_names_the_node_and_may_serve_and_connect(
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """The single DNS SAN and the CN are the node id; EKUs are serverAuth and clientAuth."""
    _, cert = node
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-310000"]
    assert len(list(san)) == 1
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["node-310000"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert certificate_node_id(certificate_pem(cert)) == "node-310000"


def test_node_certificate_starts_five_minutes_early_with_a_random_serial(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """Validity begins five minutes before issue and runs 825 days; serials differ."""
    _, cert = node
    assert cert.not_valid_before_utc.timestamp() == NOW - 300
    assert certificate_not_after(certificate_pem(cert)) == NOW + 825 * DAY
    _, other = issue_node_certificate(*ca, "node-310000", now=NOW)
    assert other.serial_number != cert.serial_number


def test_node_certificate_never_outlives_its_ca() -> None:
    """A node certificate asked to outlast the CA ends when the CA ends."""
    ca_key, ca_cert = create_ca("Short CA", now=NOW, valid_days=30)
    _, cert = issue_node_certificate(ca_key, ca_cert, "node-320000", now=NOW)
    assert cert.not_valid_after_utc == ca_cert.not_valid_after_utc


@pytest.mark.parametrize("bad", ["", "Node-310000", "node_310000", "node.310000", "-node", "节点"])
def test_node_id_must_be_a_dns_label(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], bad: str
) -> None:
    """A node id that cannot be a lower-case DNS name is refused before any key is made."""
    with pytest.raises(ValueError, match="DNS label"):
        issue_node_certificate(*ca, bad, now=NOW)


def test_private_key_pem_is_unencrypted_pkcs8(
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """Private keys are written as unencrypted PKCS#8 PEM."""
    assert private_key_pem(node[0]).startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_tls_material_loads_matching_files(
    tmp_path: Path,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """Files that belong together load as they are, and the key stays out of repr."""
    paths = write_material(tmp_path, ca[1], *node)
    assert os.stat(paths[2]).st_mode & 0o777 == 0o600
    material = TlsMaterial.load(*paths)
    assert material.ca_pem == paths[0].read_bytes()
    assert material.cert_pem == paths[1].read_bytes()
    assert material.key_pem == private_key_pem(node[0])
    assert b"PRIVATE" not in repr(material).encode()


def test_tls_material_refuses_a_key_others_can_read(
    tmp_path: Path,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """A TLS key file with mode 0644 is refused with the chmod that fixes it."""
    ca_path, cert_path, key_path = write_material(tmp_path, ca[1], *node)
    key_path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        TlsMaterial.load(ca_path, cert_path, key_path)


def test_tls_material_refuses_a_certificate_of_another_key(
    tmp_path: Path,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """A key that is not the certificate's key is refused at load, not at the handshake."""
    _, other_cert = issue_node_certificate(*ca, "node-320000", now=NOW)
    paths = write_material(tmp_path, ca[1], node[0], other_cert)
    with pytest.raises(TlsMaterialError, match="not the certificate of the key"):
        TlsMaterial.load(*paths)


def test_tls_material_refuses_a_certificate_from_another_ca(
    tmp_path: Path,
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """A certificate not issued by the configured CA is refused."""
    _, stranger = create_ca("Test Federation CA", now=NOW)
    paths = write_material(tmp_path, stranger, *node)
    with pytest.raises(TlsMaterialError, match="not issued by the CA"):
        TlsMaterial.load(*paths)


def test_tls_material_refuses_a_missing_certificate(
    tmp_path: Path,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    node: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """A missing certificate file is named in the error."""
    ca_path, cert_path, key_path = write_material(tmp_path, ca[1], *node)
    cert_path.unlink()
    with pytest.raises(TlsMaterialError, match=r"tls\.crt"):
        TlsMaterial.load(ca_path, cert_path, key_path)


def test_certificate_node_id_refuses_a_certificate_without_one_dns_name(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """A certificate naming two DNS names has no single node id."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(ca_cert.not_valid_before_utc)
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("a"), x509.DNSName("b")]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    with pytest.raises(TlsMaterialError, match="exactly one DNS name"):
        certificate_node_id(certificate_pem(cert))


def test_peer_identity_is_the_san_of_a_tls_peer() -> None:
    """A TLS auth context with one SAN gives that SAN as the peer's node id."""
    context = {
        "x509_subject_alternative_name": [b"node-310000"],
        "transport_security_type": [b"ssl"],
    }
    assert peer_identity(context) == "node-310000"


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"transport_security_type": [b"ssl"]},
        {"transport_security_type": [b"insecure"]},
        {"x509_subject_alternative_name": [b"node-310000"]},
        {
            "x509_subject_alternative_name": [b"node-310000", b"node-320000"],
            "transport_security_type": [b"ssl"],
        },
        {"x509_subject_alternative_name": [b"\xff"], "transport_security_type": [b"ssl"]},
    ],
    ids=["empty", "no-certificate", "insecure", "not-tls", "two-sans", "not-ascii"],
)
def test_peer_identity_is_none_without_one_tls_certificate_name(
    context: dict[str, list[bytes]],
) -> None:
    """No TLS, no peer certificate, or an ambiguous one: the peer has no identity."""
    assert peer_identity(context) is None


@pytest.mark.timeout(30)
async def test_peer_identity_from_a_real_mutual_tls_call() -> None:
    """Over real gRPC mutual TLS the server sees the client's node id, and the client
    reaches the server by its node id."""
    # BoringSSL checks validity against the real clock, so this material is issued now.
    now = time.time()
    ca_key, ca_cert = create_ca("Test Federation CA", now=now)
    server_key, server_cert = issue_node_certificate(ca_key, ca_cert, "node-320000", now=now)
    client_key, client_cert = issue_node_certificate(ca_key, ca_cert, "node-310000", now=now)
    seen: list[str | None] = []

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        seen.append(peer_identity(context.auth_context()))
        return request

    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [(private_key_pem(server_key), certificate_pem(server_cert))],
        root_certificates=certificate_pem(ca_cert),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=certificate_pem(ca_cert),
            private_key=private_key_pem(client_key),
            certificate_chain=certificate_pem(client_cert),
        )
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}",
            channel_credentials,
            options=[("grpc.ssl_target_name_override", "node-320000")],
        ) as channel:
            call = channel.unary_unary("/test.Echo/Who", None, None)
            assert await call(b"hi", timeout=10) == b"hi"
    finally:
        await server.stop(None)
    assert seen == ["node-310000"]

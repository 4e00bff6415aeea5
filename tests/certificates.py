"""A throw-away CA (and a wrong one), a server certificate for "localhost" only,
and a client certificate, for the TLS server tests; a self-signed client certificate
with an encrypted key (test_no_leaks.py). The `cryptography` package."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Certificates:
    ca: Path
    wrong_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path, client_user: str) -> Certificates:
    """A CA, a server certificate for DNS:localhost only, a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        return path

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def certificate(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
        **extra: object,
    ) -> x509.Certificate:
        issuer_name, issuer_key = issuer or (subject, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True
            )
        )
        if issuer is None:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        if extra.get("dns"):
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(str(extra["dns"]))]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    ca_key, wrong_key, server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
    )
    ca = ("Test CA", ca_key)
    return Certificates(
        ca=write("ca.crt", pem(certificate("Test CA", ca_key, None))),
        wrong_ca=write("wrong-ca.crt", pem(certificate("Wrong CA", wrong_key, None))),
        server_cert=write(
            "server.crt", pem(certificate("localhost", server_key, ca, dns="localhost"))
        ),
        server_key=write("server.key", key_pem(server_key)),
        client_cert=write("client.crt", pem(certificate(client_user, client_key, ca))),
        client_key=write("client.key", key_pem(client_key)),
    )


def encrypted_client_certificate(directory: Path, key_password: str) -> tuple[Path, Path]:
    """A self-signed client certificate for "app" and its key, encrypted with the password."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "client.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(key_password.encode()),
        )
    )
    return directory / "client.crt", directory / "client.key"

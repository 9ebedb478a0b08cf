"""A throwaway PKI for the TLS tests: a CA, server and client certificates, bad ones too.

Everything is generated with ``cryptography`` at test time (nothing checked in). ``make_pki``
writes PEM files into a directory and returns their paths: a CA, a server certificate for
``127.0.0.1``/``localhost``, a client certificate (mutual TLS), an expired server certificate,
a server certificate for another host name, and a second CA that signed none of them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki"]

_KEY_PASSWORD = b"client-key-secret"


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files of one throwaway PKI."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    server_pem: Path
    """Certificate and key in one file (stunnel's ``cert=``)."""
    expired_pem: Path
    wrong_host_pem: Path
    client_cert: Path
    client_key: Path
    """Encrypted with ``client_key_password``."""
    client_key_password: str = _KEY_PASSWORD.decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common_name: str,
    *,
    hosts: list[str],
    client: bool = False,
    expired: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
        if expired
        else (now - dt.timedelta(hours=1), now + dt.timedelta(days=30))
    )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def make_pki(directory: Path) -> Pki:
    """Generate the PKI's files into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("ragstream test CA")
    other = _ca("some other CA")
    local = ["127.0.0.1", "localhost"]
    server = _leaf(ca, "localhost", hosts=local)
    expired = _leaf(ca, "localhost", hosts=local, expired=True)
    wrong_host = _leaf(ca, "kafka.example.com", hosts=["kafka.example.com"])
    client = _leaf(ca, "ragstream-client", hosts=[], client=True)

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    return Pki(
        ca=write("ca.pem", _cert_pem(ca[0])),
        other_ca=write("other-ca.pem", _cert_pem(other[0])),
        server_cert=write("server.crt", _cert_pem(server[0])),
        server_key=write("server.key", _key_pem(server[1])),
        server_pem=write("server.pem", _cert_pem(server[0]) + _key_pem(server[1])),
        expired_pem=write("expired.pem", _cert_pem(expired[0]) + _key_pem(expired[1])),
        wrong_host_pem=write("wrong-host.pem", _cert_pem(wrong_host[0]) + _key_pem(wrong_host[1])),
        client_cert=write("client.crt", _cert_pem(client[0])),
        client_key=write("client.key", _key_pem(client[1], _KEY_PASSWORD)),
    )

"""A throwaway test certificate authority, generated with ``cryptography`` at start-up.

The emulator serves real TLS so that msal (``requests``) and httpx verify a real chain, the way
they would against login.microsoftonline.com and graph.microsoft.com.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TestCertificates:
    """Files of one generated CA and a server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smtpmatch tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key(rsa_keys: bool) -> Any:
    if rsa_keys:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # EC keys: generating them is instant, unlike RSA, so fixtures start fast.
    return ec.generate_private_key(ec.SECP256R1())


def generate_test_ca(
    folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), *, rsa_keys: bool = False
) -> TestCertificates:
    """Write a CA certificate and a server certificate + key for ``hosts`` into ``folder``.

    Args:
        folder: where ``ca.pem``, ``server.pem`` and ``server.key`` (mode 0600) go.
        hosts: the server certificate's names; IP addresses become IP SANs.
        rsa_keys: RSA keys in the traditional PEM format, for servers (Samba's GnuTLS set-up)
            that want them; EC keys otherwise.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = _new_key(rsa_keys)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("smtpmatch test CA"))
        .issuer_name(_name("smtpmatch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _new_key(rsa_keys)
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    cert_file = folder / "server.pem"
    key_file = folder / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL
            if rsa_keys
            else serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    # Samba refuses a private key that others can read.
    key_file.chmod(0o600)
    return TestCertificates(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


def generate_client_certificate(path: Path, common_name: str = "smtpmatch app") -> bytes:
    """Write a self-signed RSA certificate + private key PEM (what Entra ID app credentials use).

    Returns:
        The certificate alone, PEM-encoded, to register with the emulator.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(key_pem + cert_pem)
    return cert_pem

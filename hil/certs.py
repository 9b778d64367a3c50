"""Test PKI for the uplink: a CA, a server and a device certificate, and the bad ones.

Generated at test time with ``cryptography`` (EC P-256, fast), never checked in. Besides the good
set, it makes what the flaky-server tests need: an expired server certificate, a server
certificate from a foreign CA, one for the wrong host name, and a device certificate from a
foreign CA.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class TestPki:
    __test__ = False  # not a pytest class

    ca: Path  # the agency CA the device pins
    server: CertPair  # valid for 127.0.0.1 and localhost, signed by ``ca``
    client: CertPair  # the device certificate, signed by ``ca``
    server_expired: CertPair
    server_foreign: CertPair  # right names, foreign CA
    server_wrong_host: CertPair  # signed by ``ca`` but for another host name
    client_foreign: CertPair  # device certificate from a foreign CA
    device_id: str
    consumer: CertPair  # the agency's own MQTT consumer (hil/mqtt_consumer.py), signed by ``ca``


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigil test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca(cn: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cn: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
    hosts: tuple[str, ...] = (),
    not_before: datetime,
    not_after: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
           ) -> CertPair:
    cp = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    cp.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cp.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cp.key.chmod(0o600)
    return cp


def make_test_pki(directory: Path, device_id: str = "vigil-test-0001") -> TestPki:
    """Write a complete test PKI under ``directory`` (created if missing) and return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca = _ca("Vigil test agency CA", now)
    foreign = _ca("Somebody else's CA", now)
    hosts = ("127.0.0.1", "localhost")
    live: dict[str, Any] = {
        "not_before": now - timedelta(hours=1), "not_after": now + timedelta(days=30)
    }
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    return TestPki(
        ca=ca_path,
        server=_write(directory, "server", *_leaf("ingest", ca, server=True, hosts=hosts, **live)),
        client=_write(directory, "client", *_leaf(device_id, ca, server=False, **live)),
        server_expired=_write(
            directory,
            "server-expired",
            *_leaf(
                "ingest", ca, server=True, hosts=hosts,
                not_before=now - timedelta(days=60), not_after=now - timedelta(days=1),
            ),
        ),
        server_foreign=_write(
            directory, "server-foreign",
            *_leaf("ingest", foreign, server=True, hosts=hosts, **live),
        ),
        server_wrong_host=_write(
            directory, "server-wrong-host",
            *_leaf("elsewhere", ca, server=True, hosts=("ingest.example.org",), **live),
        ),
        client_foreign=_write(
            directory, "client-foreign", *_leaf(device_id, foreign, server=False, **live)
        ),
        device_id=device_id,
        consumer=_write(directory, "consumer",
                        *_leaf("agency-consumer", ca, server=False, **live)),
    )

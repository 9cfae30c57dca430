"""The applicant's certificate before registration (R-GW-1, R-HAB-4)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ensu.habilitations.certificates import check_certificate, check_csr
from ensu.habilitations.errors import InvalidRequestData
from tests.support.habilitations import ca_and_leaf

NOW = dt.datetime.now(dt.UTC)


def _self_signed(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    start: dt.datetime = NOW - dt.timedelta(days=1),
    end: dt.datetime = NOW + dt.timedelta(days=30),
) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _message(pem: str, trusted: list[x509.Certificate] | None = None) -> str:
    with pytest.raises(InvalidRequestData) as refused:
        check_certificate(pem, now=NOW, trusted=trusted)
    return refused.value.errors["acces_technique.certificat_pem"]


def test_key_types_and_sizes() -> None:
    check_certificate(_self_signed(rsa.generate_private_key(65537, 2048)), now=NOW)
    check_certificate(_self_signed(ec.generate_private_key(ec.SECP384R1())), now=NOW)
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the key the check refuses
    assert "2048" in _message(_self_signed(weak))
    assert "P-256" in _message(_self_signed(ec.generate_private_key(ec.SECP521R1())))


def test_dates_and_ca() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    expired = _self_signed(key, start=NOW - dt.timedelta(days=10), end=NOW - dt.timedelta(days=1))
    assert "validité" in _message(expired)
    assert "autorité (CA)" in _message(_self_signed(key, ca=True))
    assert "illisible" in _message("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n")


def test_production_needs_a_trusted_issuer() -> None:
    ca, _, leaf = ca_and_leaf()
    other_ca, _, _ = ca_and_leaf()
    assert check_certificate(leaf, now=NOW, trusted=[other_ca, ca]).thumbprint
    assert "autorité reconnue" in _message(leaf, trusted=[other_ca])
    assert "autorité reconnue" in _message(leaf, trusted=[])


def test_csr_signature_and_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")]))
        .sign(key, hashes.SHA256())
    )
    assert check_csr(csr.public_bytes(serialization.Encoding.PEM).decode()).is_signature_valid
    weak = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")]))
        .sign(rsa.generate_private_key(65537, 1024), hashes.SHA256())  # noqa: S505 - refused
    )
    with pytest.raises(InvalidRequestData, match="2048"):
        check_csr(weak.public_bytes(serialization.Encoding.PEM).decode())

"""The development PKI (R-GW-1): files and modes, a chain that verifies, idempotence."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from ensu import development
from ensu.certificates import thumbprint_s256
from ensu.config import Environment, Settings
from ensu.pki import service
from ensu.pki.service import PkiError, PkiLayout

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
FILES = {
    "DEVELOPMENT",
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "consumer-a.pem",
    "consumer-a.key",
    "consumer-b.pem",
    "consumer-b.key",
    "crl.pem",
}


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "var" / "pki"
    assert service.init(directory=directory, now=NOW) is True
    return directory


def cert(directory: Path, name: str) -> x509.Certificate:
    return service.load_certificate(path=directory / f"{name}.pem")


def store(directory: Path) -> verification.Store:
    return verification.Store([cert(directory, "ca")])


def test_init_writes_the_documented_files(pki_dir: Path) -> None:
    assert {path.name for path in pki_dir.iterdir()} == FILES
    assert set(PkiLayout(pki_dir).client_names()) == set(service.DEFAULT_CONSUMERS)


def test_keys_are_0600_in_a_0700_directory(pki_dir: Path) -> None:
    assert stat.S_IMODE(pki_dir.stat().st_mode) == 0o700
    keys = sorted(pki_dir.glob("*.key"))
    assert len(keys) == 4
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key.name


def test_existing_directory_is_tightened_to_0700(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    directory.mkdir(mode=0o755)
    service.init(directory=directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_marker_makes_production_settings_refuse_to_start(pki_dir: Path) -> None:
    """config.Settings refuses production while the development PKI is in its pki_dir."""
    with pytest.raises(ValidationError, match="development PKI"):
        Settings(
            environment=Environment.PRODUCTION, secret_key=secrets.token_hex(32), pki_dir=pki_dir
        )


def test_ca_is_a_p256_ca_valid_two_years(pki_dir: Path) -> None:
    ca = cert(pki_dir, "ca")
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "ENSU Documents — AC de développement"
    )
    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    assert ca.not_valid_after_utc - NOW == dt.timedelta(days=730)


def test_server_certificate_verifies_for_every_loopback_name(pki_dir: Path) -> None:
    server = cert(pki_dir, "server")
    names: list[verification.Subject] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    for name in names:
        verifier = verification.PolicyBuilder().store(store(pki_dir)).time(NOW)
        chain = verifier.build_server_verifier(name).verify(server, [])
        assert chain[-1] == cert(pki_dir, "ca")
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.not_valid_after_utc - NOW == dt.timedelta(days=365)


@pytest.mark.parametrize("name", ["consumer-a", "consumer-b"])
def test_consumer_certificates_verify_as_clients_only(pki_dir: Path, name: str) -> None:
    consumer = cert(pki_dir, name)
    builder = verification.PolicyBuilder().store(store(pki_dir)).time(NOW)
    verified = builder.build_client_verifier().verify(consumer, [])
    assert verified.subjects == [x509.UniformResourceIdentifier(service.consumer_uri(name=name))]
    eku = consumer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(verification.VerificationError):
        builder.build_server_verifier(x509.DNSName("localhost")).verify(consumer, [])
    organisation = consumer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert organisation == service.DEFAULT_CONSUMERS[name]
    assert consumer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name


def test_consumers_are_distinct_organisations(pki_dir: Path) -> None:
    subjects = {cert(pki_dir, name).subject for name in service.DEFAULT_CONSUMERS}
    keys = {(pki_dir / f"{name}.key").read_bytes() for name in service.DEFAULT_CONSUMERS}
    assert len(subjects) == len(keys) == len(service.DEFAULT_CONSUMERS)


def test_init_is_idempotent(pki_dir: Path) -> None:
    before = {path.name: path.read_bytes() for path in pki_dir.iterdir()}
    assert service.init(directory=pki_dir) is False
    assert {path.name: path.read_bytes() for path in pki_dir.iterdir()} == before


def test_partial_pki_is_refused_unless_forced(pki_dir: Path) -> None:
    (pki_dir / "server.key").unlink()
    with pytest.raises(PkiError, match=r"missing: server\.key"):
        service.init(directory=pki_dir)
    assert service.init(directory=pki_dir, force=True) is True
    assert (pki_dir / "server.key").is_file()


def test_force_regenerates_and_reissues_extra_consumers(pki_dir: Path) -> None:
    old_ca = cert(pki_dir, "ca")
    service.issue_client(directory=pki_dir, name="consumer-c", organisation="Mutuelle Fictive C")
    old_extra = cert(pki_dir, "consumer-c")
    assert service.init(directory=pki_dir, force=True) is True
    new_ca = cert(pki_dir, "ca")
    assert new_ca != old_ca
    for name in ["server", "consumer-a", "consumer-b", "consumer-c"]:
        cert(pki_dir, name).verify_directly_issued_by(new_ca)
    extra = cert(pki_dir, "consumer-c")
    assert extra != old_extra
    assert extra.subject == old_extra.subject
    assert not list(pki_dir.glob(".*.tmp"))


def test_issue_client_signs_with_the_ca(pki_dir: Path) -> None:
    path = service.issue_client(directory=pki_dir, name="consumer-c", now=NOW)
    assert path == pki_dir / "consumer-c.pem"
    issued = cert(pki_dir, "consumer-c")
    issued.verify_directly_issued_by(cert(pki_dir, "ca"))
    organisation = issued.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert organisation == "Organisation fictive consumer-c"
    assert stat.S_IMODE((pki_dir / "consumer-c.key").stat().st_mode) == 0o600


def test_issue_client_refuses_to_overwrite_unless_forced(pki_dir: Path) -> None:
    before = (pki_dir / "consumer-a.pem").read_bytes()
    with pytest.raises(PkiError, match="already exists"):
        service.issue_client(directory=pki_dir, name="consumer-a")
    assert (pki_dir / "consumer-a.pem").read_bytes() == before
    service.issue_client(directory=pki_dir, name="consumer-a", force=True)
    assert (pki_dir / "consumer-a.pem").read_bytes() != before


@pytest.mark.parametrize("name", ["ca", "server", "Consumer", "-a", "a/b", "../a", "a" * 64, ""])
def test_issue_client_refuses_bad_names(pki_dir: Path, name: str) -> None:
    with pytest.raises(PkiError, match="invalid consumer name"):
        service.issue_client(directory=pki_dir, name=name)


def test_issue_client_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="ensu pki init"):
        service.issue_client(directory=tmp_path, name="consumer-c")


def test_leaf_never_outlives_its_ca(pki_dir: Path) -> None:
    late = NOW + dt.timedelta(days=700)
    service.issue_client(directory=pki_dir, name="late", now=late)
    assert cert(pki_dir, "late").not_valid_after_utc == cert(pki_dir, "ca").not_valid_after_utc


def test_thumbprint_s256_is_unpadded_base64url_sha256(pki_dir: Path) -> None:
    """RFC 8705 §3.1: x5t#S256 is the base64url SHA-256 of the DER certificate."""
    consumer = cert(pki_dir, "consumer-a")
    der = consumer.public_bytes(serialization.Encoding.DER)
    thumbprint = thumbprint_s256(der)
    assert "=" not in thumbprint
    assert len(thumbprint) == 43
    assert base64.urlsafe_b64decode(thumbprint + "=") == consumer.fingerprint(hashes.SHA256())


def test_describe_lists_every_certificate_with_its_thumbprints(pki_dir: Path) -> None:
    service.issue_client(directory=pki_dir, name="consumer-c")
    infos = service.describe(directory=pki_dir)
    assert [(info.name, info.role) for info in infos] == [
        ("ca", "CA"),
        ("server", "server"),
        ("consumer-a", "consumer"),
        ("consumer-b", "consumer"),
        ("consumer-c", "consumer"),
    ]
    for info in infos:
        certificate = service.load_certificate(path=info.path)
        assert info.sha256_hex == certificate.fingerprint(hashes.SHA256()).hex()
        assert base64.urlsafe_b64decode(info.thumbprint_s256 + "=").hex() == info.sha256_hex
        assert info.subject == certificate.subject.rfc4514_string()
        assert info.not_after == certificate.not_valid_after_utc


def test_describe_of_an_empty_directory_is_empty(tmp_path: Path) -> None:
    assert service.describe(directory=tmp_path) == []


def test_sign_csr_certifies_the_applicant_s_key_for_client_auth(pki_dir: Path) -> None:
    """A sandbox habilitation's certificate from the applicant's CSR (R-HAB-4): the
    development CA signs the CSR's key, the private key never comes here."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "applicant")]))
        .sign(key, hashes.SHA256())
    )
    issued = service.sign_csr(
        directory=pki_dir, csr=csr, name="demande-7", organisation="Région", now=NOW
    )
    issued.verify_directly_issued_by(cert(pki_dir, "ca"))
    assert issued.public_key() == key.public_key()
    usage = issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not (pki_dir / "demande-7.pem").exists()
    with pytest.raises(PkiError, match="no development CA"):
        service.sign_csr(directory=pki_dir.parent / "empty", csr=csr, name="x1", organisation="R")


def crl(directory: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((directory / "crl.pem").read_bytes())


def test_init_writes_an_empty_crl_signed_by_the_ca(pki_dir: Path) -> None:
    """R-GW-1: nginx's ssl_crl and the handshake need a CRL from the start; valid until
    the CA expires (nothing republishes a development CRL)."""
    revocations = crl(pki_dir)
    ca = cert(pki_dir, "ca")
    assert len(revocations) == 0
    assert revocations.issuer == ca.subject
    assert revocations.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert revocations.next_update_utc == ca.not_valid_after_utc


def test_revoke_adds_the_serial_and_bumps_the_crl_number(pki_dir: Path) -> None:
    before = crl(pki_dir).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    serial = service.revoke(directory=pki_dir, name="consumer-b", now=NOW)
    assert serial == cert(pki_dir, "consumer-b").serial_number
    after = crl(pki_dir)
    assert [entry.serial_number for entry in after] == [serial]
    assert after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == before + 1
    assert after.is_signature_valid(cert(pki_dir, "ca").public_key())  # type: ignore[arg-type]
    assert service.revoked_serials(directory=pki_dir) == {serial: NOW.replace(microsecond=0)}
    assert service.revoke(directory=pki_dir, name="consumer-b") is None  # once only
    assert len(crl(pki_dir)) == 1
    other = service.revoke(directory=pki_dir, name="consumer-a")
    assert {entry.serial_number for entry in crl(pki_dir)} == {serial, other}


@pytest.mark.parametrize("name", ["ca", "server", "crl", "nobody"])
def test_revoke_names_a_consumer_certificate(pki_dir: Path, name: str) -> None:
    with pytest.raises(PkiError, match="no consumer certificate"):
        service.revoke(directory=pki_dir, name=name)


def test_init_adds_the_crl_to_a_pki_made_without_one(pki_dir: Path) -> None:
    (pki_dir / "crl.pem").unlink()
    assert service.init(directory=pki_dir) is False
    assert len(crl(pki_dir)) == 0
    assert set(PkiLayout(pki_dir).client_names()) == set(service.DEFAULT_CONSUMERS)


def test_a_pki_of_another_ca_name_is_neither_marked_nor_recorded(tmp_path: Path) -> None:
    """A rehearsal of production's own PKI (``ca_name``): the production guards accept it,
    where they refuse the development CA by its name or its fingerprints (R-GW-1)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC de recette")])
    directory = tmp_path / "pki"
    assert service.init(directory=directory, ca_name=name, now=NOW)
    layout = service.PkiLayout(directory)
    assert cert(directory, "ca").subject == name
    assert not layout.marker.exists()
    registry = tmp_path / development.REGISTRY_NAME
    assert not registry.exists()
    reason = development.development_ca_reason(
        ca_file=layout.ca_cert, server_file=layout.server_cert, registries=[registry]
    )
    assert reason is None
    service.init(directory=tmp_path / "dev", now=NOW)  # the development one, for contrast
    dev = service.PkiLayout(tmp_path / "dev")
    assert development.development_ca_reason(
        ca_file=dev.ca_cert, server_file=dev.server_cert, registries=[registry]
    )

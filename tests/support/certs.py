"""Throwaway client certificates and téléservices for the consumers and OAuth tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.certificates import thumbprint_s256
from ensu.config import Environment
from ensu.consumers import service as consumers
from ensu.consumers.models import AuthMethod
from ensu.consumers.schemas import CertificateRef, CreatedTeleservice

SIRET = "13000000000005"  # Luhn-valid, fictive


@dataclass(frozen=True)
class ThrowawayCertificate:
    pem: str
    thumbprint: str
    subject: str

    @property
    def ref(self) -> CertificateRef:
        return CertificateRef(thumbprint=self.thumbprint, subject=self.subject)


def make_certificate(common_name: str) -> ThrowawayCertificate:
    """A self-signed P-256 client certificate, valid from yesterday for a year."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return ThrowawayCertificate(
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        thumbprint=thumbprint_s256(certificate.public_bytes(serialization.Encoding.DER)),
        subject=certificate.subject.rfc4514_string(),
    )


async def create_client(
    session: AsyncSession,
    certificate: ThrowawayCertificate,
    *,
    client_id: str,
    environment: Environment = Environment.SANDBOX,
    auth_method: AuthMethod = AuthMethod.TLS_CLIENT_AUTH,
    families: tuple[str, ...] = ("declaratives",),
) -> CreatedTeleservice:
    """A téléservice of the test organisation (created if needed) for ``certificate``."""
    await consumers.ensure_organisation(
        session=session, siret=SIRET, name="Organisation de test", actor="test"
    )
    return await consumers.create_teleservice(
        session=session,
        organisation_siret=SIRET,
        name=f"Téléservice {client_id}",
        environment=environment,
        certificates=[certificate.ref],
        families=families,
        period_start=dt.date(2020, 1, 1),
        period_end=dt.date(2030, 12, 31),
        auth_method=auth_method,
        valid_from=dt.date(2020, 1, 1),
        client_id=client_id,
        id_teleservice=f"TS-{client_id.upper()}",
        actor="test",
    )

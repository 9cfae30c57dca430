"""The applicant's client certificate, checked before it is registered (R-GW-1, R-HAB-4).

A certificate (PEM) is accepted when its key is RSA of at least 2048 bits or EC on P-256
or P-384 (ANSSI RGS B1 sizes), it is in date, it is not a CA (basic constraints), and, in
production, it is signed by one of the CAs the edge trusts for mutual TLS (the same file
uvicorn or nginx verifies clients against: ``{pki_dir}/ca.pem``). A certificate signing
request (CSR) is accepted in the sandbox only, with the same key rules and a valid
signature: the development CA signs it at validation (:mod:`ensu.pki.service`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ensu.consumers.schemas import CertificateRef
from ensu.habilitations.errors import InvalidRequestData
from ensu.pki.service import PkiLayout

MIN_RSA_BITS = 2048
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
FIELD = "acces_technique.certificat_pem"


def _refuse(message: str, field: str = FIELD) -> InvalidRequestData:
    return InvalidRequestData({field: message})


def check_key(key: object, *, field: str = FIELD) -> None:
    """RSA ≥ 2048 bits, or EC P-256 / P-384."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _refuse(f"clé RSA de {key.key_size} bits : 2048 au moins", field)
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise _refuse(f"courbe {key.curve.name} refusée : P-256 ou P-384", field)
        return
    raise _refuse("type de clé refusé : RSA (2048 bits ou plus) ou EC P-256/P-384", field)


def load_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise _refuse("certificat illisible (PEM attendu)") from None


def check_certificate(
    pem: str, *, now: dt.datetime, trusted: list[x509.Certificate] | None = None
) -> CertificateRef:
    """The certificate's reference if it passes the checks above; ``trusted``: the CAs
    it must be signed by (production), ``None`` to skip that check (sandbox)."""
    certificate = load_certificate(pem)
    check_key(certificate.public_key())
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise _refuse("le certificat n'est pas en cours de validité")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.value.ca:
        raise _refuse("un certificat d'autorité (CA) ne peut pas servir de certificat client")
    if trusted is not None and not any(_issued_by(certificate, ca) for ca in trusted):
        raise _refuse("le certificat n'est pas émis par une autorité reconnue")
    return CertificateRef.from_pem(certificate.public_bytes(Encoding.PEM))


def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_csr(pem: str) -> x509.CertificateSigningRequest:
    """A CSR with an allowed key and a valid self-signature."""
    field = "acces_technique.csr_pem"
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise _refuse("demande de certificat illisible (PEM attendu)", field) from None
    check_key(csr.public_key(), field=field)
    if not csr.is_signature_valid:
        raise _refuse("la signature de la demande de certificat est invalide", field)
    return csr


def trusted_cas(pki_dir: Path) -> list[x509.Certificate]:
    """The CAs the edge trusts for client certificates (empty when there is none): the
    file ``ensu serve`` hands uvicorn as ``ssl_ca_certs`` (:class:`PkiLayout`)."""
    path = PkiLayout(pki_dir).ca_cert
    if not path.exists():
        return []
    return x509.load_pem_x509_certificates(path.read_bytes())

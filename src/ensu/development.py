"""Recognising development material, which production refuses to start with (R-GW-1,
R-SEC-1; OWASP API Security Top 10 2023, API8 "Security Misconfiguration").

**The development CA** of ``ensu pki init`` is recognised by what it *is*, not by a file
beside it: a PKI directory copied elsewhere without its ``DEVELOPMENT`` marker, or with
the marker deleted, is still refused. Two independent signs, either one enough:

1. its **subject**, ``CN=ENSU Documents — AC de développement, O=ENSU Documents
   (développement), C=FR``, which every generation shares and which travels with the
   certificate wherever it is copied (and with every certificate it issued, as their
   issuer). A real CA has no reason to bear it; one that did would be refused, which is
   the safe side;
2. its **fingerprints**, recorded at each generation in a registry kept *outside* the PKI
   directory, beside it (``var/dev-ca-fingerprints``, :data:`REGISTRY_NAME`): the SHA-256
   of the certificate and the SHA-256 of its public key (SPKI). The key's fingerprint
   also catches a certificate re-made from the development key under another subject.
   The registry survives ``rm var/pki/DEVELOPMENT`` and a copy of ``var/pki`` elsewhere,
   as long as the deployment's ``ENSU_VAR_DIR`` (or the PKI's parent folder) is the
   machine's ``var/``; the subject covers the rest.

What production trusts is checked: every certificate of ``ca.pem`` (the CA the client
certificates must chain to, and nginx's ``ssl_client_certificate``) and the issuer of
``server.pem``.

**The secret** (``ENSU_SECRET_KEY``, which encrypts the signing keys at rest) must carry at
least 256 bits (32 bytes) of entropy: :func:`secret_bits` counts its characters times the
bits each can carry in the smallest usual alphabet that holds them all (hex 4, base64 6,
printable ASCII log2 95, anything else log2 95 per character too, conservatively), and
refuses a secret of fewer than :data:`MIN_DISTINCT` distinct characters (``aaaa…``,
``abab…``). ``openssl rand -hex 32`` and ``python3 -c 'import secrets;
print(secrets.token_urlsafe(32))'`` both pass.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ensu import files

CA_COMMON_NAME = "ENSU Documents — AC de développement"
CA_ORGANISATION = "ENSU Documents (développement)"
#: The registry of development CA fingerprints, beside the PKI directory.
REGISTRY_NAME = "dev-ca-fingerprints"
MIN_SECRET_BITS = 256
MIN_DISTINCT = 10
_HEX = frozenset(string.hexdigits)
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/-_")


def development_name() -> x509.Name:
    """The development CA's subject (and its certificates' issuer)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )


def fingerprints(certificate: x509.Certificate) -> tuple[str, str]:
    """``sha256:`` of the certificate's DER and ``spki-sha256:`` of its public key."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        f"sha256:{hashlib.sha256(der).hexdigest()}",
        f"spki-sha256:{hashlib.sha256(spki).hexdigest()}",
    )


def record(certificate: x509.Certificate, *, registry: Path) -> None:
    """Add a freshly generated development CA to ``registry`` (one line per print)."""
    files.private_file(registry)
    known = registered(registry)
    with registry.open("a", encoding="ascii") as file:
        for line in fingerprints(certificate):
            if line not in known:
                file.write(f"{line}\n")


def registered(registry: Path) -> frozenset[str]:
    try:
        text = registry.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return frozenset()
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def development_ca_reason(
    *, ca_file: Path, server_file: Path, registries: Iterable[Path]
) -> str | None:
    """Why the PKI of ``ca_file`` and ``server_file`` is development material, or None."""
    known = frozenset().union(*(registered(path) for path in registries))
    for certificate in _certificates(ca_file):
        if certificate.subject == development_name():
            return f"{ca_file} is the development CA (its subject)"
        if known.intersection(fingerprints(certificate)):
            return f"{ca_file} is a development CA (its fingerprint is in the registry)"
    for certificate in _certificates(server_file)[:1]:
        if certificate.issuer == development_name():
            return f"{server_file} was issued by the development CA"
    return None


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return []


def secret_bits(secret: str) -> float:
    """An estimate of the entropy ``secret`` can carry, in bits (see the module docstring)."""
    characters = set(secret.rstrip("="))
    if len(characters) < MIN_DISTINCT:
        return 0.0
    if characters <= _HEX:
        per_character = 4.0
    elif characters <= _BASE64:
        per_character = 6.0
    else:
        per_character = math.log2(95)  # printable ASCII; counted so for any character
    return len(secret.rstrip("=")) * per_character

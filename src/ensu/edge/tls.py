"""The TLS profile of both edges, uvicorn's (direct mode) and nginx's (proxy mode).

RFC 9325 (BCP 195) and the FAPI 2.0 security profile's TLS section: TLS 1.2 and 1.3
only; in TLS 1.2 only the ECDHE suites with an AEAD cipher (AES-GCM, ChaCha20-Poly1305),
so every connection has forward secrecy and no CBC, SHA-1 MAC, CCM_8, CAMELLIA or ARIA
suite is ever negotiated. TLS 1.3 keeps OpenSSL's default suites (AES-GCM and
ChaCha20-Poly1305). ``deploy/nginx/ensu.conf.template`` receives the same list
(:func:`ensu.edge.nginx.render`), and ``tests/functional/test_tls_profile.py`` scans
both edges for anything else.

Certificate revocation (R-GW-1, "not revoked"): when the CA directory holds a CRL
(``crl.pem``, written by ``ensu pki revoke`` for the development CA, by the real CA's
publication otherwise), the handshake checks the leaf against it. OpenSSL reads it once,
when the context is made; the app checks every presented certificate against the same
file reloaded on change (:class:`ensu.certificates.RevocationList`), so a CRL updated
while the server runs takes effect at the next call without a restart.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from ensu.certificates import CRL_NAME

MINIMUM_TLS = ssl.TLSVersion.TLSv1_2
#: TLS 1.2: ECDHE key exchange and AEAD ciphers only (RFC 9325 §4.2), OpenSSL names.
#: The ECDSA ones serve the development PKI's P-256 key, the RSA ones a real CA's RSA key.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
#: TLS 1.3: OpenSSL's default suites, named so that a test can check that nothing else
#: (TLS_AES_128_CCM_8_SHA256, TLS_AES_128_CCM_SHA256) is offered.
TLS13_SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)


def cipher_string() -> str:
    """:data:`TLS12_CIPHERS` as OpenSSL's (and nginx's ``ssl_ciphers``) cipher string."""
    return ":".join(TLS12_CIPHERS)


def crl_beside(ca_file: str | os.PathLike[str] | None) -> Path | None:
    """The CRL that goes with ``ca_file``: ``crl.pem`` in its directory, if it exists."""
    if not ca_file:
        return None
    crl = Path(ca_file).parent / CRL_NAME
    return crl if crl.is_file() else None


def apply_profile(context: ssl.SSLContext, *, crl: Path | None = None) -> ssl.SSLContext:
    """Restrict a server context to the profile; with ``crl``, check the leaf against it.

    ``VERIFY_CRL_CHECK_LEAF`` makes OpenSSL refuse a leaf for which it has no CRL, so it is
    set only when there is one to load.
    """
    context.minimum_version = MINIMUM_TLS
    context.set_ciphers(cipher_string())
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if crl is not None:
        context.load_verify_locations(cafile=str(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context

"""The presented client certificate, whichever edge terminated mutual TLS (R-GW-1).

- Direct mode: uvicorn verified the chain during the handshake and our protocol subclass
  (``ensu.edge.uvicorn_tls``) put the leaf in the ASGI ``tls`` extension.
- Proxy mode: nginx verified it and forwarded it, URL-escaped PEM, in
  ``X-SSL-Client-Cert``, a header it always overwrites. The header is believed only when
  the immediate peer is a configured trusted proxy; from anyone else it is ignored.

Parsing and hashing cost tens of microseconds, so results are cached by PEM text.

:class:`RevocationList` is the app's own revocation check (R-GW-1, "not revoked"): the
CA's CRL (``crl.pem`` in ``ENSU_PKI_DIR``), reloaded when the file changes, so that a
certificate revoked while the server runs is refused at its next call, whatever the edge
read at its start.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ensu.config import Settings, TLSMode

logger = logging.getLogger("ensu.certificates")

#: The CA's certificate revocation list, beside its certificate (``ENSU_PKI_DIR``).
CRL_NAME = "crl.pem"
CA_NAME = "ca.pem"
#: How often the app looks at the CRL file's metadata (seconds).
CRL_CHECK_SECONDS = 0.5
CERT_HEADER = b"x-ssl-client-cert"
FORWARDED_FOR_HEADER = b"x-forwarded-for"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A verified client certificate as the app sees it."""

    der: bytes
    #: ``x5t#S256`` (RFC 8705 §3.1): base64url SHA-256 of the DER, no padding.
    thumbprint: str
    subject: str
    not_valid_after: float
    #: The issuer (RFC 4514) and serial number: what a CRL names (RFC 5280 §5.3.3).
    issuer: str = ""
    serial: int = 0


@lru_cache(maxsize=4096)
def parse_pem(pem: str) -> ClientCertificate | None:
    """The certificate in ``pem``, or ``None`` when it does not parse."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    der = cert.public_bytes(Encoding.DER)
    return ClientCertificate(
        der=der,
        thumbprint=thumbprint_s256(der),
        subject=cert.subject.rfc4514_string(),
        not_valid_after=cert.not_valid_after_utc.timestamp(),
        issuer=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
    )


def thumbprint_s256(der: bytes) -> str:
    """RFC 8705 §3.1 ``x5t#S256`` of a DER certificate."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@lru_cache(maxsize=4096)
def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``text`` names, or None; cached (a peer or client address recurs on
    every call of its connection, and parsing it costs microseconds)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _within(host: str, trusted: tuple[Network, ...]) -> bool:
    address = parse_address(host)
    return address is not None and any(address in network for network in trusted)


def is_trusted_peer(host: str | None, trusted: Sequence[Network]) -> bool:
    """True when the immediate peer is a configured trusted proxy (or a unix socket)."""
    if host is None or host == "":
        return True  # unix socket: only the local proxy can connect
    return _within(host, tuple(trusted))


def _header(scope: Mapping[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def presented_certificate(scope: Mapping[str, Any], settings: Settings) -> ClientCertificate | None:
    """The client certificate of this request, or ``None`` when there is none to believe."""
    if settings.tls_mode is TLSMode.DIRECT:
        tls = scope.get("extensions", {}).get("tls")
        chain = tls.get("client_cert_chain") if tls else None
        return parse_pem(chain[0]) if chain else None
    client = scope.get("client")
    if not is_trusted_peer(client[0] if client else None, settings.trusted_proxies):
        return None
    raw = _header(scope, CERT_HEADER)
    return forwarded_certificate(raw) if raw else None


@lru_cache(maxsize=4096)
def forwarded_certificate(raw: bytes) -> ClientCertificate | None:
    """The certificate of nginx's URL-escaped PEM header, cached by the header's bytes:
    unescaping a PEM costs tens of microseconds, and it comes again on every call."""
    return parse_pem(unquote(raw.decode("latin-1")))


def client_ip(scope: Mapping[str, Any], settings: Settings) -> str | None:
    """The caller's IP: the TCP peer, or, behind a trusted proxy, what the proxy says.

    The proxy sets ``X-Forwarded-For`` to ``$remote_addr`` (overwriting, not appending), so
    exactly one address is expected; anything else is not believed.
    """
    client = scope.get("client")
    peer = client[0] if client else None
    if settings.tls_mode is TLSMode.DIRECT or not is_trusted_peer(peer, settings.trusted_proxies):
        return peer
    raw = _header(scope, FORWARDED_FOR_HEADER)
    if raw is None or b"," in raw:
        return None
    return raw.decode("latin-1").strip()


class RevocationList:
    """The CA's CRL as the app checks it (R-GW-1), reloaded when the file changes.

    At most every :data:`CRL_CHECK_SECONDS` the file's metadata is read (one ``stat``);
    when its identity, size or time changed, the CRL is parsed again and, when the CA
    certificate is beside it, its signature verified. No file: nothing is revoked (the
    handshake's own checks stand alone). A file that cannot be read, parsed or verified
    fails closed: every certificate counts as revoked until it is fixed, and the error
    is logged once per version of the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next_check = 0.0
        self._version: tuple[int, int, int, int] | None = None
        self._revoked: frozenset[tuple[str, int]] = frozenset()
        self._usable = True

    def is_revoked(self, certificate: ClientCertificate, now: float) -> bool:
        """True when ``certificate`` is in the CRL (or the CRL is unusable)."""
        if now >= self._next_check:
            self._next_check = now + CRL_CHECK_SECONDS
            self._refresh()
        return not self._usable or (certificate.issuer, certificate.serial) in self._revoked

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._version, self._revoked, self._usable = None, frozenset(), True
            return
        except OSError as error:
            self._fail(None, f"cannot read {self.path}: {error}")
            return
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if version == self._version:
            return
        try:
            self._revoked = _load_crl(self.path)
        except (OSError, ValueError) as error:
            self._fail(version, f"unusable CRL {self.path}: {error}")
            return
        self._version, self._usable = version, True
        logger.info("CRL %s loaded: %d revoked certificates", self.path, len(self._revoked))

    def _fail(self, version: tuple[int, int, int, int] | None, message: str) -> None:
        if self._usable or version != self._version:
            logger.error("%s: every client certificate is refused until it is fixed", message)
        self._version, self._usable = version, False


def _load_crl(path: Path) -> frozenset[tuple[str, int]]:
    """``(issuer, serial)`` of every entry of the CRL at ``path``, its signature checked
    against the CA beside it when there is one."""
    crl = x509.load_pem_x509_crl(path.read_bytes())
    ca_path = path.with_name(CA_NAME)
    if ca_path.is_file():
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        public_key = ca.public_key()
        if crl.issuer != ca.subject or not crl.is_signature_valid(public_key):  # type: ignore[arg-type]
            raise ValueError(f"not signed by the CA of {ca_path}")
    issuer = crl.issuer.rfc4514_string()
    return frozenset((issuer, entry.serial_number) for entry in crl)

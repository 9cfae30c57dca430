"""The ASGI ``tls`` extension for uvicorn (R-GW-1): the client certificate reaches the app.

Released uvicorn does not fill ``scope["extensions"]["tls"]``. These protocol subclasses
build the extension once per connection, when the TLS handshake is done
(``connection_made``), and attach it to the scope of every request on that connection.
Select one with ``--http ensu.edge.uvicorn_tls:HttpToolsTLSProtocol`` (or
``H11TLSProtocol``); ``ensu serve`` does.

The extension follows the ASGI TLS extension 0.2
(https://github.com/django/asgiref/blob/main/specs/tls.rst):

- only on TLS connections; plain HTTP (behind a proxy) gets no ``tls`` key;
- ``client_cert_chain`` holds the leaf only: Python 3.11's ``ssl`` exposes the peer's
  leaf certificate, not the intermediates it sent;
- ``client_cert_error`` is always ``None``: the server context requires a verified
  certificate, so a failed verification ends the handshake before any request exists.

The subclasses rely on uvicorn internals (``on_message_begin`` for httptools, the
``cycle`` attribute for h11), hence the pin of uvicorn's minor version in
``pyproject.toml`` and the check below at import.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11Cycle
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ensu.edge import tls

#: The uvicorn minor version whose protocol internals these subclasses were written for.
SUPPORTED_UVICORN = "0.54"
#: ``SSLObject.version()`` to the TLS protocol number (RFC 5246, RFC 8446).
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

TLSExtension = dict[object, object]


def check_uvicorn_version(*, version: str) -> None:
    """Refuse a uvicorn whose minor version differs from the one these hooks target."""
    if ".".join(version.split(".")[:2]) != SUPPORTED_UVICORN:
        raise RuntimeError(
            f"ensu.edge.uvicorn_tls targets uvicorn {SUPPORTED_UVICORN}.x and relies on its"
            f" protocol internals; uvicorn {version} is installed. Review the hooks"
            " (connection_made, on_message_begin, cycle) against the new version, then"
            " update SUPPORTED_UVICORN and the pin in pyproject.toml."
        )


check_uvicorn_version(version=uvicorn.__version__)


def tls_extension(*, ssl_object: ssl.SSLObject, server_cert: str | None) -> TLSExtension:
    """The ``tls`` extension of one connection, from its completed handshake."""
    der = ssl_object.getpeercert(binary_form=True)
    chain, name = ([], None) if der is None else _client_certificate(der)
    version = ssl_object.version()
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_suite(ssl_object),
    }


def minimum_tls12_context(
    config: Config, default_factory: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory``: its context restricted to the edges' TLS profile
    (TLS 1.2+, ECDHE AEAD suites; CONTRACT: Transport) and checking the CRL beside the CA
    when there is one (R-GW-1; :mod:`ensu.edge.tls`)."""
    return tls.apply_profile(default_factory(), crl=tls.crl_beside(config.ssl_ca_certs))


@lru_cache(maxsize=1024)
def _client_certificate(der: bytes) -> tuple[list[str], str]:
    """PEM and RFC 4514 subject of a client certificate, cached: consumers reconnect."""
    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return [ssl.DER_cert_to_PEM_cert(der)], subject


#: OpenSSL cipher names to IANA numbers, filled from the server context on first use.
_CIPHER_SUITES: dict[str, int] = {}


def _cipher_suite(ssl_object: ssl.SSLObject) -> int | None:
    cipher = ssl_object.cipher()
    if cipher is None:
        return None
    if cipher[0] not in _CIPHER_SUITES:
        # OpenSSL's id is 0x0300XXXX; the low 16 bits are the IANA code point.
        ciphers = ssl_object.context.get_ciphers()
        _CIPHER_SUITES.update({entry["name"]: entry["id"] & 0xFFFF for entry in ciphers})
    return _CIPHER_SUITES.get(cipher[0])


@lru_cache(maxsize=8)
def _server_cert_pem(certfile: str) -> str | None:
    """The first certificate of the server's certificate file: the one it sends."""
    try:
        first = x509.load_pem_x509_certificates(Path(certfile).read_bytes())[0]
    except (OSError, ValueError):
        return None
    return first.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _connection_tls(transport: asyncio.Transport, config: Config) -> TLSExtension | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None  # plain HTTP: the spec forbids the extension
    certfile = config.ssl_certfile
    server_cert = _server_cert_pem(str(certfile)) if certfile else None
    return tls_extension(ssl_object=ssl_object, server_cert=server_cert)


class HttpToolsTLSProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with ``scope["extensions"]["tls"]`` (R-GW-1)."""

    tls: TLSExtension | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.tls = _connection_tls(transport, self.config)

    def on_message_begin(self) -> None:
        super().on_message_begin()  # a new request: uvicorn has just built its scope
        if self.tls is not None:
            self.scope["extensions"] = {"tls": self.tls}


class H11TLSProtocol(H11Protocol):
    """uvicorn's h11 protocol, with ``scope["extensions"]["tls"]`` (R-GW-1).

    h11's ``handle_events`` builds the scope and starts the request in one method; the only
    seam between the two is the assignment of ``self.cycle``, hence the property.
    """

    tls: TLSExtension | None = None
    _cycle: H11Cycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.tls = _connection_tls(transport, self.config)

    @property
    def cycle(self) -> H11Cycle:
        # None before the first request: uvicorn's own annotation ignores that case too.
        return self._cycle  # type: ignore[return-value]

    @cycle.setter
    def cycle(self, cycle: H11Cycle | None) -> None:
        if cycle is not None and self.tls is not None:
            cycle.scope["extensions"] = {"tls": self.tls}
        self._cycle = cycle

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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11Cycle
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttpToolsCycle

from ensu.bounds import OVERSIZE_KEY, HeadLimits
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
    """uvicorn's httptools protocol, with ``scope["extensions"]["tls"]`` (R-GW-1), that
    reads at most ``limits.head_bytes`` of a request head (R-GW-6, :mod:`ensu.bounds`).

    httptools buffers a header field until its end, whatever its length, and counts no
    fields: a 10 MB header or 100,000 headers were read into memory and handed to the app.
    Here the bytes of each head are counted as they arrive; past the bound the parser is
    fed no more, the request goes to the app with what was read, marked with
    :data:`~ensu.bounds.OVERSIZE_KEY` (the gateway answers 414 or 431 and journals it),
    and the rest of the connection is read and dropped until the answer closes it.
    ``limits`` is given by ``ensu serve`` (:class:`BoundedProtocol`).
    """

    tls: TLSExtension | None = None

    def __init__(self, *args: Any, limits: HeadLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or HeadLimits()
        #: Bytes of the current head read so far (reset when a head is complete).
        self._head_seen = 0
        self._heads = 0
        self._in_body = False
        self._refusing = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.tls = _connection_tls(transport, self.config)

    def on_message_begin(self) -> None:
        super().on_message_begin()  # a new request: uvicorn has just built its scope
        self.scope["extensions"] = {"tls": self.tls} if self.tls is not None else {}

    def on_headers_complete(self) -> None:
        self._head_seen, self._heads, self._in_body = 0, self._heads + 1, True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return  # the rest of a refused head: read and dropped, never kept
        if self._in_body:
            super().data_received(data)
            return
        room = self.limits.head_bytes - self._head_seen
        if len(data) <= room:
            self._head_seen += len(data)
            super().data_received(data)
            return
        heads = self._heads
        self._head_seen += room
        super().data_received(data[:room])
        if self.parser is None or self.transport.is_closing():
            return  # a parse error was answered, or the peer left
        if self._heads != heads:  # the head ended within the room: go on with the rest
            self.data_received(data[room:])
        else:
            self._refuse_head()

    def _refuse_head(self) -> None:
        """Hand the app what was read of an oversized head, marked, with no body; the
        answer closes the connection."""
        self._refusing = True
        if self.scope is None:  # no request line was even begun: nothing to journal
            self.send_400_response("Request head too large.")
            return
        try:
            method = self.parser.get_method().decode("ascii")
        except Exception:  # the parser's own errors, mid-head: the method is not known
            method = "GET"
        url = bytes(self.url[: self.limits.url_bytes])
        kind = "url" if len(self.url) > self.limits.url_bytes else "headers"
        raw_path, _, query = url.partition(b"#")[0].partition(b"?")
        scope = self.scope
        scope["method"] = method
        scope["path"] = unquote(raw_path.decode("latin-1"))
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        extensions: dict[str, object] = scope["extensions"]  # type: ignore[assignment]
        extensions[OVERSIZE_KEY] = kind
        self._launch_refused()

    def _launch_refused(self) -> None:
        existing = self.cycle
        self.cycle = HttpToolsCycle(
            scope=self.scope,
            transport=_Lingering(self.transport, self.loop),  # type: ignore[arg-type]
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=False,
            on_response=self.on_response_complete,
        )
        self.cycle.more_body = False  # no body is read after a refused head
        self.cycle.message_event.set()
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, self.app)
        else:
            self.pipeline.appendleft((self.cycle, self.app))


#: How long the rest of a refused head is still read (and dropped) after the answer.
LINGER_SECONDS = 2.0


class _Lingering:
    """The transport of a refused head's answer, whose ``close()`` is put off: closed at
    once, with the peer's bytes still unread, the kernel resets the connection and the
    client loses the answer (nginx's ``lingering_close`` for the same reason). Plain TCP
    ends its side at once (``write_eof``); TLS sends its close_notify on close."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        if self._transport.is_closing():
            return
        if self._transport.can_write_eof():
            self._transport.write_eof()
        self._loop.call_later(LINGER_SECONDS, self._transport.close)


@dataclass(frozen=True, slots=True)
class BoundedProtocol:
    """uvicorn's ``http`` option: makes :class:`HttpToolsTLSProtocol` with ``limits``. A
    frozen dataclass rather than a ``functools.partial``: it pickles to the ``--workers``
    processes and compares by value."""

    limits: HeadLimits

    def __call__(self, *args: Any, **kwargs: Any) -> HttpToolsTLSProtocol:
        return HttpToolsTLSProtocol(*args, limits=self.limits, **kwargs)


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

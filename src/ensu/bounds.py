"""Bounds on what a request may carry before any work is done for it (R-GW-6, R-TR-1;
OWASP API Security Top 10 2023, API4 "Unrestricted Resource Consumption").

Two places enforce the same numbers, read from the settings:

- the edge (:mod:`ensu.edge.uvicorn_tls`, direct mode; nginx in proxy mode) stops
  reading a request head that grows past :attr:`HeadLimits.head_bytes`, so that memory
  stays bounded whatever is sent; the request then reaches the app with what was read
  and the scope extension :data:`OVERSIZE_KEY` naming the bound it went past;
- the gateway (:mod:`ensu.gateway.layer`) refuses any request whose head is past a bound
  (:func:`head_refusal`), whichever edge it came through, with a problem document and a
  journal record like any other refusal under the API prefix.

The figures: nginx's default ``large_client_header_buffers 4 8k`` admits a request line
or a header line of 8 KiB and 32 KiB of headers; a legitimate call of the contract sends
six headers (certificate forwarded by nginx included, ~3 KiB) and a URL under 300 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ensu.errors import BodyTooLarge, EnsuError, HeadersTooLarge, UriTooLong

#: The scope extension set by the edge when it stopped reading a head: "url" or "headers".
OVERSIZE_KEY = "ensu.oversize"
#: The API's routes take no body; its requests are GETs. A declared body beyond this is
#: refused before it is read (413 920413).
MAX_API_BODY_BYTES = 8192


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """The bounds of one request head (settings ``ENSU_MAX_URL_BYTES``,
    ``ENSU_MAX_HEADER_BYTES``, ``ENSU_MAX_HEADER_COUNT``)."""

    #: Path and query string, as sent (percent-encoded).
    url_bytes: int = 8192
    #: Names and values of all the header fields together.
    header_bytes: int = 32768
    #: Number of header fields.
    header_count: int = 100

    @property
    def head_bytes(self) -> int:
        """The most the edge reads of a head before refusing it: the URL and the header
        bounds, plus the request line's and each field's syntax (``: ``, CRLF)."""
        return self.url_bytes + self.header_bytes + 4 * self.header_count + 64


def head_refusal(
    scope: Mapping[str, Any], limits: HeadLimits, *, api: bool = False
) -> EnsuError | None:
    """The refusal ``scope``'s head deserves, or None when it is within ``limits``.

    ``api``: the request is under the API prefix, whose routes take no body, so that a
    declared ``Content-Length`` beyond :data:`MAX_API_BODY_BYTES` is refused too.
    """
    oversize = scope.get("extensions", {}).get(OVERSIZE_KEY)
    if oversize is not None:
        return UriTooLong(reason="url_too_long") if oversize == "url" else HeadersTooLarge()
    url = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
    if url > limits.url_bytes:
        return UriTooLong(reason="url_too_long")
    return _fields_refusal(scope["headers"], limits, api=api)


def _fields_refusal(
    headers: Iterable[tuple[bytes, bytes]], limits: HeadLimits, *, api: bool
) -> EnsuError | None:
    count = total = 0
    declared = b""
    for name, value in headers:
        count += 1
        total += len(name) + len(value)
        if name == b"content-length":
            declared = value
    if count > limits.header_count:
        return HeadersTooLarge(reason="too_many_headers")
    if total > limits.header_bytes:
        return HeadersTooLarge(reason="headers_too_large")
    if api and declared and not length_within(declared, MAX_API_BODY_BYTES):
        return BodyTooLarge(reason="body_too_large")
    return None


def length_within(declared: bytes, top: int) -> bool:
    """A ``Content-Length`` value from 0 to ``top``; checked by its length before
    ``int()`` (a 5,000-digit value must not reach Python's int-string limit)."""
    text = declared.strip().lstrip(b"0") or b"0"
    return text.isdigit() and len(text) <= len(str(top)) and int(text) <= top


def digits_within(raw: str, top: int) -> int | None:
    """``raw`` as an integer from 1 to ``top``, or None: ASCII digits only, and checked
    by its length before conversion, so that no length of input reaches ``int()``'s
    4,300-digit limit (a ``ValueError`` there was a 500)."""
    significant = raw.lstrip("0") or "0"
    if len(significant) > len(str(top)) or not raw.isascii() or not raw.isdigit():
        return None
    value = int(significant)
    return value if 1 <= value <= top else None

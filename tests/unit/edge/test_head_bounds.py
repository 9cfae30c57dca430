"""The bounded head of our httptools protocol (R-GW-6, OWASP API4:2023; ensu.bounds).

httptools buffers a header field whatever its length and counts no fields: without a
bound, a 10 MB header or 100,000 headers were read into memory and handed to the app. A
real uvicorn server (plain HTTP: the bound does not depend on TLS) with small limits and
an app that keeps what it was handed; raw sockets send what no client library would.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, cast

import pytest
import uvicorn

from ensu.bounds import OVERSIZE_KEY, HeadLimits
from ensu.edge import uvicorn_tls
from ensu.edge.testing import serving

LIMITS = HeadLimits(url_bytes=512, header_bytes=4096, header_count=16)


class Keeper:
    """Answers 200 and keeps, per request, its method, path, headers, marker and body."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.seen.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": list(scope["headers"]),
                "oversize": scope.get("extensions", {}).get(OVERSIZE_KEY),
                "body": body,
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def keeper() -> Keeper:
    return Keeper()


@pytest.fixture
def port(keeper: Keeper) -> Iterator[int]:
    config = uvicorn.Config(
        keeper,
        http=cast(Any, uvicorn_tls.BoundedProtocol(LIMITS)),
        lifespan="off",
        log_level="warning",
    )
    with serving(config) as bound:
        yield bound


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes (or 10 s of silence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        with suppress(OSError):  # the server stops reading an oversized head
            connection.sendall(data)
        received = bytearray()
        with suppress(TimeoutError):
            while chunk := connection.recv(65536):
                received += chunk
    return bytes(received)


def test_a_10_mb_header_is_not_read_and_reaches_the_app_marked(port: int, keeper: Keeper) -> None:
    answer = exchange(
        port, b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 ")  # the app's answer, not lost in a reset
    assert b"connection: close" in answer.lower()
    (seen,) = keeper.seen
    assert (seen["method"], seen["path"], seen["oversize"]) == ("GET", "/x", "headers")
    assert sum(len(n) + len(v) for n, v in seen["headers"]) <= LIMITS.head_bytes


def test_100000_headers_are_not_read(port: int, keeper: Keeper) -> None:
    fields = b"".join(b"h%d: v\r\n" % index for index in range(100_000))
    answer = exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    (seen,) = keeper.seen
    assert seen["oversize"] == "headers"
    assert len(seen["headers"]) < LIMITS.head_bytes // 5  # what fits, far from 100,000


def test_a_url_beyond_the_bound_is_marked_url(port: int, keeper: Keeper) -> None:
    exchange(port, b"GET /x?q=" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    (seen,) = keeper.seen
    assert (seen["path"], seen["oversize"]) == ("/x", "url")


def test_heads_within_the_bound_and_bodies_of_any_size_pass_unmarked(
    port: int, keeper: Keeper
) -> None:
    """The bound is the head's: a body is not counted, keep-alive and pipelining work."""
    fields = b"".join(b"h%d: %s\r\n" % (index, b"v" * 200) for index in range(14))
    body = b"b" * 100_000
    answer = exchange(
        port,
        b"POST /1 HTTP/1.1\r\nHost: a\r\n"
        + fields
        + b"Content-Length: 100000\r\n\r\n"
        + body
        + b"GET /2 HTTP/1.1\r\nHost: a\r\n"
        + fields
        + b"\r\n"
        + b"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    assert answer.count(b"HTTP/1.1 200 ") == 3
    assert [(s["path"], s["oversize"]) for s in keeper.seen] == [
        ("/1", None),
        ("/2", None),
        ("/3", None),
    ]
    assert keeper.seen[0]["body"] == body

"""An intruder's oversized requests get a structured refusal at both edges, never a 500
nor unbounded memory (R-GW-6, R-TR-1; OWASP API Security Top 10 2023, API4).

Each attack runs against uvicorn's own mutual TLS (``direct``) and nginx's (``nginx``),
over real TLS with a registered certificate and a valid token. A head a little beyond the
app's bounds reaches the app through either edge and is refused and journaled there; a
grossly larger one (10 MB of header, 100,000 headers) is cut at the edge: uvicorn stops
reading it and hands the app what it read, so that it is journaled too; nginx answers it
itself, in the same problem form.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from contextlib import suppress
from typing import Any

import httpx
import orjson
import pytest

from ensu.bounds import HeadLimits
from tests.functional.conftest import SIREN, A, Stack, api_headers, call_records

DOCUMENTS = "/ensudocuments/v1/documents"
LIMITS = HeadLimits()  # the defaults, which the stack runs with


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def journaled(stack: Stack, correlation_id: str) -> list[int]:
    records = asyncio.run(call_records(stack.var))
    return [r.status for r in records if r.correlation_id == correlation_id]


def send_headers(
    stack: Stack, route: str, fields: list[tuple[str, str]], params: Any = None
) -> httpx.Response:
    """A list call with every credential right, plus ``fields`` (repeated names kept)."""
    headers = [*api_headers(stack.token(route, A), A).items(), *fields]
    with stack.client(route, A) as client:
        return client.get(DOCUMENTS, params=params or {"siren": SIREN}, headers=headers)


def test_a_page_of_5000_digits_is_a_400_not_a_500(stack: Stack, route: str) -> None:
    """``int()`` of more than 4,300 digits raises: checked by length first (920400)."""
    for name in ("page", "taille"):
        response = send_headers(stack, route, [], params={"siren": SIREN, name: "9" * 5000})
        body = problem(response, 400, "920400")
        assert body["erreurs"][0]["parametre"] == name


def test_a_url_beyond_the_bound_is_414_and_journaled(stack: Stack, route: str) -> None:
    """A query a little beyond ENSU_MAX_URL_BYTES reaches the app through both edges."""
    correlation_id = str(uuid.uuid4())
    params = {"siren": SIREN, "referenceDemande": "R" * (LIMITS.url_bytes + 100)}
    response = send_headers(stack, route, [("X-Correlation-ID", correlation_id)], params)
    assert problem(response, 414, "920414")["correlationId"] == correlation_id
    assert journaled(stack, correlation_id) == [414]


def test_too_many_headers_are_431_and_journaled(stack: Stack, route: str) -> None:
    correlation_id = str(uuid.uuid4())
    fields = [(f"X-Filler-{index}", "v") for index in range(LIMITS.header_count)]
    response = send_headers(stack, route, [("X-Correlation-ID", correlation_id), *fields])
    problem(response, 431, "920431")
    assert journaled(stack, correlation_id) == [431]


def test_header_bytes_beyond_the_bound_are_431_and_journaled(stack: Stack, route: str) -> None:
    """Five headers of 8,000 bytes: each within nginx's line buffer, together beyond
    ENSU_MAX_HEADER_BYTES."""
    correlation_id = str(uuid.uuid4())
    fields = [(f"X-Filler-{index}", "v" * 8000) for index in range(5)]
    response = send_headers(stack, route, [("X-Correlation-ID", correlation_id), *fields])
    problem(response, 431, "920431")
    assert journaled(stack, correlation_id) == [431]


def raw_call(stack: Stack, route: str, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (a request head, as bytes) over mutual TLS as A and read the answer
    until the server closes: httpx takes minutes to build 100,000 headers."""
    url = httpx.URL(stack.urls[route])
    context = stack.var.context(A)
    with (
        socket.create_connection((url.host, url.port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname=url.host) as tls,
    ):
        with suppress(OSError):  # the server may stop reading once it has answered
            tls.sendall(head)
        received = bytearray()
        with suppress(OSError):
            while chunk := tls.recv(65536):
                received += chunk
    status_line, _, rest = bytes(received).partition(b"\r\n")
    fields, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(
        (name.strip().lower().decode(), value.strip().decode())
        for name, _, value in (line.partition(b":") for line in fields.split(b"\r\n"))
    )
    assert status_line.startswith(b"HTTP/1.1 "), bytes(received[:200])
    return int(status_line.split()[1]), headers, body[: int(headers.get("content-length", 0))]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(b"X-Big: " + b"a" * 10_000_000 + b"\r\n", id="one header of 10 MB"),
        pytest.param(
            b"".join(b"h%d: v\r\n" % index for index in range(100_000)), id="100,000 headers"
        ),
    ],
)
def test_a_gross_head_is_cut_at_the_edge_with_a_problem_document(
    stack: Stack, route: str, fields: bytes
) -> None:
    """uvicorn reads a bounded part and the app refuses it (journaled); nginx refuses it
    itself. The connection is closed after the answer, which is not lost in a reset."""
    correlation_id = str(uuid.uuid4())
    credentials = api_headers(stack.token(route, A), A) | {"X-Correlation-ID": correlation_id}
    head = (
        f"GET {DOCUMENTS}?siren={SIREN} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + b"".join(f"{name}: {value}\r\n".encode() for name, value in credentials.items())
        + fields
        + b"\r\n"
    )
    status, headers, body = raw_call(stack, route, head)
    assert (status, headers["content-type"]) == (431, "application/problem+json"), body[:300]
    assert orjson.loads(body)["code"] == "920431"
    if route == "direct":
        assert journaled(stack, correlation_id) == [431]


def test_a_declared_body_on_the_api_is_413(stack: Stack, route: str) -> None:
    """The API's routes take no body: a declared one beyond 8 KiB is refused unread."""
    headers = api_headers(stack.token(route, A), A)
    with stack.client(route, A) as client:
        response = client.request(
            "GET", DOCUMENTS, params={"siren": SIREN}, headers=headers, content=b"x" * 20_000
        )
    problem(response, 413, "920413")


def test_an_oversized_token_request_is_413_in_oauth_form(stack: Stack, route: str) -> None:
    """RFC 6749 §5.2 form on the OAuth endpoints; nginx's own bound (16 KiB) answers a
    larger body, the app's (8 KiB) a body between the two."""
    with stack.client(route, A) as client:
        response = client.post(
            "/token",
            content=b"grant_type=client_credentials&client_id=client-a&x=" + b"y" * 12_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "invalid_request"

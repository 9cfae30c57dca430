"""Requests beyond their bounds are refused with problem documents and journaled, never
answered 500 (R-GW-6, R-TR-1; OWASP API Security Top 10 2023, API4; ensu.bounds).

Behind the app in proxy mode, as nginx forwards (nginx's own, larger bounds are tested
in tests/functional/test_hostile_requests.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from ensu.audit import store
from ensu.audit.service import Journal
from ensu.bounds import MAX_API_BODY_BYTES, OVERSIZE_KEY, HeadLimits, digits_within, head_refusal
from tests.unit.gateway.conftest import SIREN, World, cert_header

pytestmark = pytest.mark.anyio
PREFIX = "/ensudocuments/v1"
LIMITS = HeadLimits()


async def _records(world: World, correlation_id: str) -> list[dict[str, Any]]:
    journal: Journal = world.app.state.journal
    async with journal.store.read() as connection:
        rows = await store.leaves(connection, 0, 10_000)
    records = [orjson.loads(row.record) for row in rows if row.kind == "call"]
    fields = [record.get("fields", record) for record in records]
    return [f for f in fields if f.get("correlation_id") == correlation_id]


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = orjson.loads(response.content)
    assert (body["status"], body["code"]) == (status, code)
    return body


@pytest.mark.parametrize("name", ["page", "taille"])
@pytest.mark.parametrize("digits", [5, 4301, 5000, 8000])
async def test_an_integer_of_any_length_is_a_400_not_a_500(
    world: World, name: str, digits: int
) -> None:
    """``int()`` of more than 4,300 digits raises ValueError: it was a 500 999999."""
    response = await world.get(
        f"{PREFIX}/documents", "A", params={"siren": SIREN, name: "9" * digits}
    )
    body = _problem(response, 400, "920400")
    assert [e["parametre"] for e in body["erreurs"]] == [name]


async def test_leading_zeros_are_still_a_number(world: World) -> None:
    response = await world.get(
        f"{PREFIX}/documents", "A", params={"siren": SIREN, "taille": "0" * 50 + "3"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["taille"] == 3


async def test_too_many_headers_are_431_and_journaled_with_the_certificate(
    world: World,
) -> None:
    correlation_id = str(uuid.uuid4())
    fillers = {f"X-Filler-{index}": "v" for index in range(LIMITS.header_count)}
    response = await world.get(
        f"{PREFIX}/documents",
        "A",
        params={"siren": SIREN},
        headers={"X-Correlation-ID": correlation_id, **fillers},
    )
    assert _problem(response, 431, "920431")["correlationId"] == correlation_id
    (record,) = await _records(world, correlation_id)
    assert (record["status"], record["error_code"]) == (431, "920431")
    assert record["reason"] == "too_many_headers"
    assert record["thumbprint"] == world.consumers["A"].certificate.thumbprint


async def test_header_bytes_beyond_the_bound_are_431(world: World) -> None:
    correlation_id = str(uuid.uuid4())
    response = await world.get(
        f"{PREFIX}/codesDocuments",
        "A",
        headers={"X-Correlation-ID": correlation_id, "X-Big": "b" * LIMITS.header_bytes},
    )
    _problem(response, 431, "920431")
    assert [r["status"] for r in await _records(world, correlation_id)] == [431]


async def test_a_url_beyond_the_bound_is_414_and_journaled(world: World) -> None:
    correlation_id = str(uuid.uuid4())
    response = await world.get(
        f"{PREFIX}/documents",
        "A",
        params={"siren": SIREN, "codeDocument": ["TVA-CA3"] * 1000},
        headers={"X-Correlation-ID": correlation_id},
    )
    _problem(response, 414, "920414")
    assert [r["status"] for r in await _records(world, correlation_id)] == [414]


async def test_a_declared_body_on_the_api_is_413(world: World) -> None:
    consumer = world.consumers["A"]
    correlation_id = str(uuid.uuid4())
    response = await world.http.request(
        "GET",
        f"{PREFIX}/documents",
        params={"siren": SIREN},
        content=b"x" * (MAX_API_BODY_BYTES + 1),
        headers={
            **cert_header(consumer.certificate),
            "Authorization": f"Bearer {await world.token('A')}",
            "ID_Teleservice": consumer.id_teleservice,
            "X-Correlation-ID": correlation_id,
        },
    )
    _problem(response, 413, "920413")
    assert [r["status"] for r in await _records(world, correlation_id)] == [413]


@pytest.mark.parametrize("path", [f"{PREFIX}/etatSante", "/token", "/jwks"])
async def test_outside_the_chain_too_many_headers_are_431(world: World, path: str) -> None:
    """etatSante and the OAuth endpoints, served without the chain, have the same bound."""
    fillers = {f"X-Filler-{index}": "v" for index in range(LIMITS.header_count)}
    response = await world.http.get(path, headers=fillers)
    _problem(response, 431, "920431")


def test_the_edge_marker_decides_whatever_the_scope_holds() -> None:
    """A head the edge stopped reading is refused even though what was read is small."""
    scope: dict[str, Any] = {"path": "/", "headers": [], "query_string": b""}
    assert head_refusal(scope, LIMITS) is None
    for marker, status in (("url", 414), ("headers", 431)):
        refusal = head_refusal({**scope, "extensions": {OVERSIZE_KEY: marker}}, LIMITS)
        assert refusal is not None
        assert refusal.status == status


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        ("100", 100),
        ("0100", 100),
        ("101", None),
        ("0", None),
        ("", None),
        ("-1", None),
        ("+5", None),
        (" 5", None),
        ("١٢", None),  # Arabic-Indic digits: str.isdigit() says yes, the contract no
        ("9" * 5000, None),
    ],
)
def test_digits_within(raw: str, expected: int | None) -> None:
    assert digits_within(raw, 100) == expected

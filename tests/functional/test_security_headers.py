"""Security headers on every answer, through both edges (the gateway's pre-encoded
stamps, ``ensu.gateway.stamps``; nginx copies them across ``X-Accel-Redirect``).

- ``Strict-Transport-Security`` and ``X-Content-Type-Options: nosniff``, exactly once,
  on every answer: data, refusals, health, ``/token``, the OAuth metadata;
- ``Cache-Control`` with ``no-store``, exactly once, on every answer that carries data
  (list, metadata, PDF, token) and on the refusals.
"""

from __future__ import annotations

import httpx

from tests.functional.conftest import SIREN, A, Stack, api_headers, request_token

API = "/ensudocuments/v1"
HSTS = "max-age=31536000"


def once(response: httpx.Response, name: str) -> str:
    values = response.headers.get_list(name)
    assert len(values) == 1, (response.request.url, name, values)
    return values[0]


def test_every_answer_has_hsts_nosniff_and_data_is_never_stored(stack: Stack, route: str) -> None:
    document = stack.var.of(SIREN)[0]
    token = stack.token(route, A)
    with stack.client(route, A) as client:
        data = {
            "list": client.get(
                f"{API}/documents", params={"siren": SIREN}, headers=api_headers(token, A)
            ),
            "metadata": client.get(
                f"{API}/documents/IDENSUA/{document.idensua}", headers=api_headers(token, A)
            ),
            "pdf": client.get(
                f"{API}/documents/IDENSUA/{document.idensua}/contenu", headers=api_headers(token, A)
            ),
            "codes": client.get(f"{API}/codesDocuments", headers=api_headers(token, A)),
            "token": request_token(client, A.client_id),
            "refusal": client.get(f"{API}/documents", headers=api_headers("not-a-token", A)),
            "unknown path": client.get(f"{API}/nulle-part", headers=api_headers(token, A)),
        }
        other = {
            "health": client.get(f"{API}/etatSante"),
            "metadata of the server": client.get("/.well-known/oauth-authorization-server"),
        }
    assert [data[name].status_code for name in ("list", "metadata", "pdf", "codes", "token")] == [
        200
    ] * 5
    assert data["pdf"].content == document.content
    for name, response in {**data, **other}.items():
        assert once(response, "strict-transport-security") == HSTS, name
        assert once(response, "x-content-type-options") == "nosniff", name
    for name, response in data.items():
        assert "no-store" in once(response, "cache-control").split(", "), name

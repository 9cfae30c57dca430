"""Forged headers get nowhere, through nginx or straight to the app (R-GW-1 to R-GW-4).

nginx always overwrites ``X-SSL-Client-Cert`` and ``X-Forwarded-For``, and the app in
direct mode never reads them; in proxy mode the app believes them from its trusted proxy
only. Each attack runs against both edges (``nginx`` and ``direct``, over real mutual
TLS). The controls at the end send the same forged headers to the app behind nginx from
its trusted address, where they are believed: that is what the edge must prevent, and
what proves these tests would fail if it did not.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from tests.functional.conftest import (
    FAR,
    FAR_ADDRESS,
    SIREN,
    A,
    B,
    Party,
    Stack,
    api_headers,
    claims_of,
    request_token,
)

DOCUMENTS = "/ensudocuments/v1/documents"
PARAMS = {"siren": SIREN}
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "correlationId", "horodatage"}


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's problem document (RFC 9457), with ``status`` and ``code``."""
    assert (response.status_code, response.headers["content-type"]) == (
        status,
        "application/problem+json",
    ), response.text
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def forged_address() -> dict[str, str]:
    """Every usual way of claiming another client address, naming FAR's allowed one."""
    return {"X-Forwarded-For": FAR_ADDRESS, "X-Real-IP": FAR_ADDRESS, "Forwarded": "for=192.0.2.10"}


def list_documents(
    stack: Stack, route: str, party: Party, headers: dict[str, str]
) -> httpx.Response:
    with stack.client(route, party) as client:
        return client.get(DOCUMENTS, params=PARAMS, headers=headers)


def test_forged_certificate_header_gets_no_token_for_another_client(
    stack: Stack, route: str
) -> None:
    """R-GW-1: presenting A while claiming B in ``X-SSL-Client-Cert`` is still A."""
    forged = stack.var.forged_cert_header(B)
    with stack.client(route, A) as client:
        as_b = request_token(client, B.client_id, forged)
        as_a = request_token(client, A.client_id, forged)
    assert (as_b.status_code, as_b.json()["error"]) == (401, "invalid_client")
    assert as_a.status_code == 200, as_a.text
    bound_to = claims_of(as_a.json()["access_token"])["cnf"]["x5t#S256"]
    assert bound_to == stack.var.thumbprint(A) != stack.var.thumbprint(B)


def test_forged_certificate_header_does_not_make_another_token_usable(
    stack: Stack, route: str
) -> None:
    """R-GW-4: B's token, sent by A with B's certificate in a header: bound to B, refused."""
    b_token = stack.token(route, B)
    forged = {**api_headers(b_token, A), **stack.var.forged_cert_header(B)}
    problem(list_documents(stack, route, A, forged), 401, "900901")
    assert list_documents(stack, route, B, api_headers(b_token, B)).status_code == 200


def test_forged_forwarded_for_does_not_widen_the_allowlist(stack: Stack, route: str) -> None:
    """R-GW-2: FAR is allowed from 192.0.2.0/24 only; claiming 192.0.2.10 in headers from
    127.0.0.1 gets no token (401 invalid_client: the token endpoint checks the allowlist
    too), and on the data route 403 910002, a complete problem document that names no
    address (the IP is checked before the token, so any bearer shows it)."""
    with stack.client(route, FAR) as client:
        token = request_token(client, FAR.client_id, forged_address())
    assert (token.status_code, token.json()["error"]) == (401, "invalid_client")
    sent = {**api_headers("not-a-token", FAR), **forged_address()}
    response = list_documents(stack, route, FAR, sent)
    body = problem(response, 403, "910002")
    assert set(body) >= PROBLEM_MEMBERS
    assert body["type"] == "urn:ensu:erreur:910002"
    assert body["correlationId"] == response.headers["x-correlation-id"]
    assert body["correlationId"] == sent["X-Correlation-ID"]
    assert dt.datetime.fromisoformat(body["horodatage"]).tzinfo is not None
    assert FAR_ADDRESS not in response.text
    assert "127.0.0.1" not in response.text


def test_id_teleservice_reaches_the_app_and_must_be_the_callers(stack: Stack, route: str) -> None:
    """R-GW-3: ``ID_Teleservice`` (an underscore: nginx must let it through) is read, and
    another téléservice's identifier, or none, is 403 910003."""
    headers = api_headers(stack.token(route, A), A)
    assert list_documents(stack, route, A, headers).status_code == 200
    other = {**headers, "ID_Teleservice": B.id_teleservice}
    problem(list_documents(stack, route, A, other), 403, "910003")
    absent = {name: value for name, value in headers.items() if name != "ID_Teleservice"}
    problem(list_documents(stack, route, A, absent), 403, "910003")


def test_underscore_spellings_of_the_proxy_headers_are_not_believed(
    stack: Stack, route: str
) -> None:
    """nginx lets underscored names through (``underscores_in_headers on``) and overwrites
    the exact names only: the app must not read ``X_SSL_Client_Cert`` or
    ``X_Forwarded_For`` as the real headers, as CGI-style header maps do."""
    pem = stack.var.forged_cert_header(B)["X-SSL-Client-Cert"]
    with stack.client(route, A) as client:
        response = request_token(client, B.client_id, {"X_SSL_Client_Cert": pem})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    with stack.client(route, FAR) as client:  # FAR gets no token from 127.0.0.1 either
        token = request_token(client, FAR.client_id, {"X_Forwarded_For": FAR_ADDRESS})
    assert (token.status_code, token.json()["error"]) == (401, "invalid_client")
    sent = {**api_headers("not-a-token", FAR), "X_Forwarded_For": FAR_ADDRESS}
    problem(list_documents(stack, route, FAR, sent), 403, "910002")


def test_a_peer_that_is_not_the_trusted_proxy_cannot_forge_the_proxy_headers(
    stack: Stack,
) -> None:
    """R-GW-1: the app in proxy mode, trusting another address than the caller's, ignores
    the forged certificate and address: 401 910001, and no token."""
    forged = {**stack.var.forged_cert_header(A), "X-Forwarded-For": "127.0.0.1"}
    sent = {**api_headers(stack.token("direct", A), A), **forged}
    problem(list_documents(stack, "untrusted", A, sent), 401, "910001")
    with stack.client("untrusted", A) as client:
        response = request_token(client, A.client_id, forged)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_control_the_app_believes_its_trusted_proxy(stack: Stack) -> None:
    """The control: the same forged headers, from the address the app trusts, are
    believed. The edge is what keeps them from a client; the tests above prove it does."""
    forged_a = {**stack.var.forged_cert_header(A), "X-Forwarded-For": "127.0.0.1"}
    sent = {**api_headers(stack.token("direct", A), A), **forged_a}
    assert list_documents(stack, "upstream", A, sent).status_code == 200
    with stack.client("upstream", A) as client:
        assert request_token(client, A.client_id, forged_a).status_code == 200
    forged_far = {**stack.var.forged_cert_header(FAR), "X-Forwarded-For": FAR_ADDRESS}
    with stack.client("upstream", FAR) as client:  # the allowlist at the token endpoint too
        far_token = request_token(client, FAR.client_id, forged_far)
    assert far_token.status_code == 200, far_token.text
    sent = {**api_headers(far_token.json()["access_token"], FAR), **forged_far}
    assert list_documents(stack, "upstream", FAR, sent).status_code == 200

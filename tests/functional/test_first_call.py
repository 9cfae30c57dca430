"""A consumer's first call, over a real mutual-TLS connection, in both edge modes.

From the certificate to the PDF: ``POST /token`` with the certificate (RFC 8705), then
the list of a company's documents, each document's metadata and its content, whose
SHA-256 matches ``Repr-Digest`` (RFC 9530) and ``empreinteSha256``. Run against uvicorn
terminating TLS itself (``direct``) and against nginx in front of the app in proxy mode
(``nginx``), so the proxy's header contract (certificate, peer address, ``ID_Teleservice``
with its underscore) is exercised end to end (R-GW-1 to R-GW-5, R-DATA-3, R-DATA-4).
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import uuid

import httpx
from pypdf import PdfReader

from tests.functional.conftest import (
    LARGE,
    SIREN,
    A,
    Stack,
    api_headers,
    claims_of,
    request_token,
)

API = "/ensudocuments/v1"
#: How long the slow reader reads nothing: ages, next to loopback speed.
PAUSE = 0.5


def checked(response: httpx.Response, sent: dict[str, str]) -> httpx.Response:
    """A 200 that echoes the correlation id it was sent."""
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"] == sent["X-Correlation-ID"]
    return response


def test_token_is_bound_to_the_presented_certificate(stack: Stack, route: str) -> None:
    """R-GW-4: the token answers ``client_credentials`` and carries ``cnf.x5t#S256``."""
    with stack.client(route, A) as client:
        response = request_token(client, A.client_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    claims = claims_of(body["access_token"])
    assert claims["client_id"] == A.client_id
    assert claims["cnf"] == {"x5t#S256": stack.var.thumbprint(A)}


def test_first_call_from_the_token_to_the_pdf(stack: Stack, route: str) -> None:
    """The whole journey; every document of the company, each byte of each PDF."""
    expected = {document.idensua: document for document in stack.var.of(SIREN)}
    with stack.client(route, A) as client:
        token = request_token(client, A.client_id).json()["access_token"]
        sent = api_headers(token, A)
        page = checked(client.get(f"{API}/documents", params={"siren": SIREN}, headers=sent), sent)
        listed = page.json()["documents"]
        assert page.json()["total"] == len(expected)
        assert {entry["identifiants"]["IDENSUA"] for entry in listed} == set(expected)
        for entry in listed:
            seeded = expected[entry["identifiants"]["IDENSUA"]]
            assert (entry["siren"], entry["codeDocument"]) == (SIREN, seeded.code)
            for kind, value in (("IDENSUA", seeded.idensua), ("DOCDISTRIB", seeded.docdistrib)):
                sent = api_headers(token, A)
                one = checked(client.get(f"{API}/documents/{kind}/{value}", headers=sent), sent)
                assert one.json() == entry
            sent = api_headers(token, A)
            content = checked(client.get(entry["contenu"], headers=sent), sent)
            assert content.content == seeded.content
            assert_digests(content, entry)


def assert_digests(content: httpx.Response, entry: dict[str, object]) -> None:
    """RFC 9530 ``Repr-Digest``, the metadata's hash and size, and a PDF that parses."""
    sha256 = hashlib.sha256(content.content).digest()
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["repr-digest"] == f"sha-256=:{base64.b64encode(sha256).decode()}:"
    assert entry["empreinteSha256"] == sha256.hex()
    assert entry["taille"] == len(content.content)
    first_page = PdfReader(io.BytesIO(content.content)).pages[0].extract_text()
    assert first_page.startswith(f"{entry['siren']} {entry['codeDocument']}")


def test_correlation_id_is_echoed_in_any_spelling_of_a_uuid(stack: Stack, route: str) -> None:
    """X-Correlation-ID comes back exactly as sent (CONTRACT: every response)."""
    token = stack.token(route, A)
    spelling = str(uuid.uuid4()).upper()
    with stack.client(route, A) as client:
        sent = {**api_headers(token, A), "X-Correlation-ID": spelling}
        response = client.get(f"{API}/codesDocuments", headers=sent)
    checked(response, sent)
    assert response.json()["codesDocuments"]


def test_every_answer_has_one_date_and_the_contract_headers(stack: Stack, route: str) -> None:
    """CONTRACT.md through both edges: one ``Date`` (the app's, or nginx's in front of
    it: never two), the correlation id and the ``RateLimit-*`` fields, on an answer, on
    a refusal before the quota check and on the health route; ``Date`` on ``/token``."""
    token = stack.token(route, A)
    with stack.client(route, A) as client:
        answered = client.get(f"{API}/codesDocuments", headers=api_headers(token, A))
        refused = client.get(f"{API}/codesDocuments", headers=api_headers("x", A))
        health = client.get(f"{API}/etatSante")
        oauth = request_token(client, A.client_id)
    assert [r.status_code for r in (answered, refused, health)] == [200, 401, 200]
    for response in (answered, refused, health, oauth):
        assert len(response.headers.get_list("date")) == 1, response.headers
    for response in (answered, refused, health):
        for name in ("x-correlation-id", "ratelimit-limit", "ratelimit-remaining"):
            assert len(response.headers.get_list(name)) == 1, (name, response.headers)


def test_a_large_pdf_reaches_a_slow_reader_whole(stack: Stack, route: str) -> None:
    """R-DATA-4: a document larger than nginx's memory buffers, read by a client that
    pauses, arrives whole (nginx used to spool it to a temp folder its workers could not
    write when started as root, and cut the body short)."""
    (large,) = [document for document in stack.var.documents if len(document.content) > LARGE]
    path = f"{API}/documents/IDENSUA/{large.idensua}/contenu"
    headers = api_headers(stack.token(route, A), A)
    with stack.client(route, A) as client, client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        time.sleep(PAUSE)  # reads nothing while the proxy's buffers fill
        content = response.read()
    assert content == large.content


def test_behind_nginx_the_pdf_is_sent_by_nginx_and_checked_by_the_app(stack: Stack) -> None:
    """Issue 5 (ENSU_ACCEL_REDIRECT): the app behind nginx answers the content route with
    no body and ``X-Accel-Redirect`` to the verified blob; nginx sends the file with the
    contract's headers and never shows the redirect. A blob altered on disk is refused
    (the same integrity rule as a read by the app)."""
    document = stack.var.of(SIREN)[0]
    path = f"{API}/documents/IDENSUA/{document.idensua}/contenu"
    trusted = {**stack.var.forged_cert_header(A), "X-Forwarded-For": "127.0.0.1"}
    sent = {**api_headers(stack.token("direct", A), A), **trusted}
    with stack.client("upstream", A) as client:  # the app itself, as nginx reaches it
        raw = checked(client.get(path, headers=sent), sent)
    assert raw.content == b""
    accel = raw.headers["x-accel-redirect"]
    assert accel.startswith("/_blobs/")
    assert accel.endswith(hashlib.sha256(document.content).hexdigest())
    blob = stack.var.directory / "blobs" / accel.removeprefix("/_blobs/")
    assert blob.read_bytes() == document.content
    original = blob.read_bytes()
    try:
        blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        sent = {**api_headers(stack.token("direct", A), A), **trusted}
        with stack.client("upstream", A) as client:
            refused = client.get(path, headers=sent)
        assert refused.status_code == 500
        assert "x-accel-redirect" not in refused.headers
    finally:
        blob.write_bytes(original)


def test_through_nginx_the_accelerated_pdf_keeps_the_contract_headers(
    stack: Stack, nginx_edge: object
) -> None:
    document = stack.var.of(SIREN)[1]
    path = f"{API}/documents/IDENSUA/{document.idensua}/contenu"
    with stack.client("nginx", A) as client:
        sent = api_headers(request_token(client, A.client_id).json()["access_token"], A)
        response = checked(client.get(path, headers=sent), sent)
    assert response.content == document.content
    assert "x-accel-redirect" not in response.headers
    assert response.headers["content-type"] == "application/pdf"
    digest = base64.b64encode(hashlib.sha256(document.content).digest()).decode()
    assert response.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert response.headers["etag"] == f'"{hashlib.sha256(document.content).hexdigest()}"'
    assert response.headers["content-disposition"] == f'inline; filename="{document.idensua}.pdf"'
    assert response.headers["cache-control"] == "private, no-store"
    assert int(response.headers["ratelimit-limit"]) > 0
    with stack.client("nginx", A) as client:  # no partial content: the journal says 200
        sent = api_headers(request_token(client, A.client_id).json()["access_token"], A)
        ranged = checked(client.get(path, headers={**sent, "Range": "bytes=0-99"}), sent)
    assert ranged.status_code == 200
    assert ranged.content == document.content

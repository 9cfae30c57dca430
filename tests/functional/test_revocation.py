"""Revoked, expired and unregistered certificates, at both edges (R-GW-1, "not revoked").

The module's own stack: the development PKI with consumer-b revoked and an expired
certificate issued before the servers start, then uvicorn's mutual TLS (``direct``) and
nginx in front of the app in proxy mode (``nginx``, with ``ssl_crl``), both reading the
one PKI directory. What each edge does:

- a certificate revoked or expired when the edge starts fails there: uvicorn's handshake
  (OpenSSL checks the CRL and the dates), nginx's verification (its 400 "SSL certificate
  error" page): no request reaches the app, nothing is journaled;
- a certificate revoked while they run (``ensu pki revoke``) passes the handshake (each
  edge read the CRL at its start) and the app refuses it at its next call, 401 910001,
  journaled with the reason ``certificate_revoked``; ``/token`` refuses it too; after
  ``nginx -s reload`` (SIGHUP) nginx refuses it itself;
- the app refuses and journals an expired certificate it is shown (by its trusted proxy);
- a certificate unregistered from its téléservice (``replace_certificates``) is refused at
  the next call once the gateway's cache of views has turned (``VIEW_TTL_SECONDS``).
"""

from __future__ import annotations

import datetime as dt
import signal
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack

import anyio
import httpx
import pytest

from ensu import db
from ensu.certificates import CRL_CHECK_SECONDS
from ensu.config import TLSMode
from ensu.consumers import service as consumers
from ensu.consumers.schemas import CertificateRef
from ensu.gateway.layer import VIEW_TTL_SECONDS
from ensu.pki import service as pki
from tests.functional.conftest import (
    NGINX_PEER,
    QUOTA,
    A,
    B,
    Nginx,
    Party,
    Stack,
    Var,
    api_headers,
    app_server,
    call_records,
    prepare,
    register_parties,
    request_token,
    running_nginx,
)

DOCUMENTS = "/ensudocuments/v1/documents"
LOOPBACK = ("127.0.0.0/8", "::1/128")
#: A certificate that expired a year ago, registered as if it were still in use.
OLD = Party("consumer-old", "client-old", "TS-OLD", LOOPBACK)
#: The téléservice whose certificate is replaced while the servers run.
RENEWED = Party("consumer-renewed", "client-renewed", "TS-RENEWED", LOOPBACK)
ROUTES = ("direct", "nginx")
#: Bounds a broken nginx reload only.
RELOAD_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Nginx]]:
    root = tmp_path_factory.mktemp("revocation")
    var = prepare(root / "var")
    directory = var.pki.directory
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=730)
    pki.issue_client(directory=directory, name=OLD.stem, now=long_ago)
    pki.issue_client(directory=directory, name=RENEWED.stem)
    anyio.run(_register, var, (OLD, RENEWED))
    assert pki.revoke(directory=directory, name=B.stem) is not None
    with ExitStack() as running:
        direct = running.enter_context(app_server(var.settings()))
        proxied = var.settings(tls_mode=TLSMode.PROXY, trusted=(NGINX_PEER,))
        upstream = running.enter_context(app_server(proxied))
        edge = running.enter_context(
            running_nginx(var=var, prefix=root / "nginx", upstream_port=upstream)
        )
        urls = {
            "direct": f"https://127.0.0.1:{direct}",
            "upstream": f"http://127.0.0.1:{upstream}",
            "nginx": edge.base_url,
        }
        yield Stack(var, urls, root), edge


async def _register(var: Var, parties: tuple[Party, ...]) -> None:
    engine = db.make_engine(var.settings().database_url)
    try:
        async with db.make_sessionmaker(engine)() as session, session.begin():
            await register_parties(session, var, [(party, QUOTA) for party in parties])
    finally:
        await engine.dispose()


def refused_at_the_edge(stack: Stack, route: str, party: Party) -> None:
    """The edge refuses ``party``'s certificate before any request reaches the app:
    uvicorn's handshake fails, nginx answers its own 400 (it verifies after the
    handshake, ``ssl_verify_client on``)."""
    if route == "direct":
        with pytest.raises(httpx.TransportError), stack.client(route, party) as client:
            client.get("/ensudocuments/v1/etatSante")
        return
    with stack.client(route, party) as client:
        response = client.get("/ensudocuments/v1/etatSante")
    assert response.status_code == 400
    assert "SSL certificate error" in response.text
    assert response.headers.get_list("strict-transport-security") == ["max-age=31536000"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


def thumbprints_journaled(stack: Stack) -> set[str | None]:
    return {record.thumbprint for record in anyio.run(call_records, stack.var)}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("party", [B, OLD], ids=["revoked", "expired"])
def test_a_certificate_revoked_or_expired_before_start_fails_at_the_edge(
    edges: tuple[Stack, Nginx], route: str, party: Party
) -> None:
    stack, _ = edges
    refused_at_the_edge(stack, route, party)
    with stack.client(route, A) as client:  # the control: the edge lets A through
        assert client.get("/ensudocuments/v1/etatSante").status_code == 200
    assert stack.var.thumbprint(party) not in thumbprints_journaled(stack)


def test_the_app_refuses_and_journals_an_expired_certificate_it_is_shown(
    edges: tuple[Stack, Nginx],
) -> None:
    """Behind a trusted proxy that would let it through, the app's own date check: 401
    910001, journaled as ``certificate_expired``."""
    stack, _ = edges
    headers = {**api_headers("a-token", OLD), **stack.var.forged_cert_header(OLD)}
    with stack.client("upstream", OLD) as client:
        response = client.get(DOCUMENTS, params={"siren": "732829320"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "910001")
    records = anyio.run(call_records, stack.var)
    (record,) = [r for r in records if r.correlation_id == headers["X-Correlation-ID"]]
    assert (record.reason, record.error_code) == ("certificate_expired", "910001")


def test_a_certificate_unregistered_from_its_teleservice_is_refused(
    edges: tuple[Stack, Nginx],
) -> None:
    """``replace_certificates`` (a renewal): the old certificate's token and the old
    certificate itself are refused once the gateway's views turn (one second)."""
    stack, _ = edges
    tokens = {route: stack.token(route, RENEWED) for route in ROUTES}
    for route in ROUTES:
        with stack.client(route, RENEWED) as client:
            answer = client.get(
                DOCUMENTS,
                params={"siren": "732829320"},
                headers=api_headers(tokens[route], RENEWED),
            )
        assert answer.status_code == 200, answer.text
    anyio.run(_replace_with, stack.var, A)
    time.sleep(VIEW_TTL_SECONDS + 0.2)
    for route in ROUTES:
        headers = api_headers(tokens[route], RENEWED)
        with stack.client(route, RENEWED) as client:
            answer = client.get(DOCUMENTS, params={"siren": "732829320"}, headers=headers)
            token = request_token(client, RENEWED.client_id)
        assert (answer.status_code, answer.json()["code"]) == (401, "910001"), route
        assert (token.status_code, token.json()["error"]) == (401, "invalid_client"), route


async def _replace_with(var: Var, party: Party) -> None:
    engine = db.make_engine(var.settings().database_url)
    try:
        async with db.make_sessionmaker(engine)() as session, session.begin():
            await consumers.replace_certificates(
                session=session,
                id_teleservice=RENEWED.id_teleservice,
                certificates=[CertificateRef.from_pem(var.pem(party))],
                actor="test",
            )
    finally:
        await engine.dispose()


def test_a_certificate_revoked_while_serving_is_refused_at_its_next_call(
    edges: tuple[Stack, Nginx],
) -> None:
    """``ensu pki revoke`` while both edges run: the app refuses A at its next call (the
    CRL reloaded on change), 401 910001 journaled as ``certificate_revoked``, and gives
    it no token; after a reload nginx refuses it at the edge. Last in the module: A is
    revoked for good."""
    stack, edge = edges
    tokens = {route: stack.token(route, A) for route in ROUTES}
    pki.revoke(directory=stack.var.pki.directory, name=A.stem)
    time.sleep(CRL_CHECK_SECONDS + 0.2)
    sent: list[str] = []
    for route in ROUTES:
        headers = api_headers(tokens[route], A)
        sent.append(headers["X-Correlation-ID"])
        with stack.client(route, A) as client:
            answer = client.get(DOCUMENTS, params={"siren": "732829320"}, headers=headers)
            token = request_token(client, A.client_id)
        assert (answer.status_code, answer.json()["code"]) == (401, "910001"), route
        assert (token.status_code, token.json()["error"]) == (401, "invalid_client"), route
    records = anyio.run(call_records, stack.var)
    refused = [r for r in records if r.correlation_id in sent]
    assert [(r.reason, r.error_code) for r in refused] == [("certificate_revoked", "910001")] * 2
    edge.process.send_signal(signal.SIGHUP)  # nginx -s reload: ssl_crl is read again
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while True:
        try:
            refused_at_the_edge(stack, "nginx", A)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_handshake_reads_the_crl_at_start(edges: tuple[Stack, Nginx]) -> None:
    """A uvicorn started after the revocation refuses A in the handshake itself."""
    stack, _ = edges
    with app_server(stack.var.settings()) as port:
        context = stack.var.context(A)
        with (
            pytest.raises((httpx.TransportError, ssl.SSLError)),
            httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context) as client,
        ):
            client.get("/ensudocuments/v1/etatSante")

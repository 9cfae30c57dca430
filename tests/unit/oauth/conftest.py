"""The app behind a trusted proxy (the certificate travels in ``X-SSL-Client-Cert``, as
nginx forwards it), two clients with their own throwaway certificates."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.app import create_app
from ensu.config import Settings, TLSMode
from tests.support.certs import ThrowawayCertificate, create_client, make_certificate

PEER = ("127.0.0.1", 50_000)


@dataclass
class Api:
    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]

    async def post(
        self,
        path: str,
        data: dict[str, str],
        certificate: ThrowawayCertificate | None,
        auth: tuple[str | bytes, str | bytes] | None = None,
    ) -> httpx.Response:
        # What nginx forwards: the verified certificate, if any, and the peer's address.
        headers = {"X-Forwarded-For": PEER[0]}
        if certificate is not None:
            headers["X-SSL-Client-Cert"] = quote(certificate.pem)
        return await self.http.post(
            path, data=data, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT
        )

    async def token(
        self, client_id: str, certificate: ThrowawayCertificate | None, **extra: str
    ) -> httpx.Response:
        data = {"grant_type": "client_credentials", "client_id": client_id, **extra}
        return await self.post("/token", data, certificate)


@pytest.fixture(scope="session")
def cert_one() -> ThrowawayCertificate:
    return make_certificate("client-one")


@pytest.fixture(scope="session")
def cert_two() -> ThrowawayCertificate:
    return make_certificate("client-two")


@pytest.fixture
def proxy_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "tls_mode": TLSMode.PROXY,
            "trusted_proxies": [ipaddress.ip_network("127.0.0.1/32")],
        }
    )


@pytest.fixture
async def api(
    proxy_settings: Settings, cert_one: ThrowawayCertificate, cert_two: ThrowawayCertificate
) -> AsyncIterator[Api]:
    """The app with clients ``client-1`` (cert_one) and ``client-2`` (cert_two)."""
    app = create_app(proxy_settings)
    async with app.router.lifespan_context(app):
        sessionmaker = app.state.sessionmaker
        async with sessionmaker() as session, session.begin():
            await create_client(session, cert_one, client_id="client-1")
            await create_client(session, cert_two, client_id="client-2")
        transport = httpx.ASGITransport(app=app, client=PEER)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield Api(app=app, http=http, settings=proxy_settings, sessionmaker=sessionmaker)

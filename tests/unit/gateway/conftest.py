"""A small world for the access chain: documents of every code in two periods, and three
téléservices with different perimeters, behind the app in proxy mode (the certificate and
the peer address as nginx forwards them) or in direct mode (the ASGI ``tls`` extension).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.app import create_app
from ensu.config import Environment, Settings, TLSMode
from ensu.consumers import service as consumers
from ensu.documents import catalogue
from ensu.documents import service as documents
from ensu.documents.identifiers import new_idensua
from ensu.documents.storage import digest
from tests.support.certs import SIRET, ThrowawayCertificate, make_certificate
from tests.support.quota import TEST_GRANT

PEER = ("127.0.0.1", 50_000)
SIREN = "732829320"
OTHER_SIREN = "552100554"
IN_PERIOD = dt.date(2023, 1, 1)  # inside every perimeter below
OUT_PERIOD = dt.date(2021, 1, 1)  # inside A's perimeter only
STRADDLE = dt.date(2022, 5, 15)  # ends inside B's perimeter but starts before it


@dataclass(frozen=True)
class Consumer:
    name: str
    certificate: ThrowawayCertificate
    client_id: str
    id_teleservice: str
    families: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    period: tuple[dt.date, dt.date] = (dt.date(2020, 1, 1), dt.date(2030, 12, 31))
    networks: tuple[str, ...] = ("127.0.0.0/8",)

    def allowed_codes(self) -> frozenset[str]:
        by_family = {e.code for e in catalogue.CATALOGUE if e.famille.value in self.families}
        return frozenset(by_family | set(self.codes))

    def allows(self, code: str, start: dt.date, end: dt.date) -> bool:
        return code in self.allowed_codes() and self.period[0] <= start and end <= self.period[1]


@dataclass(frozen=True)
class Doc:
    idensua: str
    docdistrib: str
    code: str
    start: dt.date
    end: dt.date
    content: bytes


@dataclass
class World:
    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    consumers: dict[str, Consumer]
    docs: list[Doc]
    tokens: dict[str, str] = field(default_factory=dict)

    async def token(self, name: str) -> str:
        if name not in self.tokens:
            consumer = self.consumers[name]
            response = await self.http.post(
                "/token",
                data={"grant_type": "client_credentials", "client_id": consumer.client_id},
                headers=cert_header(consumer.certificate),
            )
            assert response.status_code == 200, response.text
            self.tokens[name] = response.json()["access_token"]
        return self.tokens[name]

    async def get(
        self, path: str, name: str, *, params: Any = None, headers: Mapping[str, str] = {}
    ) -> httpx.Response:
        """GET ``path`` as consumer ``name`` with every credential right, unless overridden."""
        consumer = self.consumers[name]
        sent = {
            **cert_header(consumer.certificate),
            "Authorization": f"Bearer {await self.token(name)}",
            "ID_Teleservice": consumer.id_teleservice,
            "X-Correlation-ID": str(uuid.uuid4()),
            **headers,
        }
        return await self.http.get(path, params=params, headers=sent)


def cert_header(certificate: ThrowawayCertificate, ip: str = "127.0.0.1") -> dict[str, str]:
    """What nginx forwards: the verified certificate and the peer address."""
    return {"X-SSL-Client-Cert": quote(certificate.pem), "X-Forwarded-For": ip}


def pdf(code: str, start: dt.date) -> bytes:
    return f"%PDF-1.4\n% test {code} {start}\n%%EOF\n".encode()


CONSUMERS = (
    Consumer(
        "A",
        make_certificate("consumer-a"),
        "client-a",
        "TS-A",
        families=tuple(sorted({e.famille.value for e in catalogue.CATALOGUE})),
    ),
    Consumer(
        "B",
        make_certificate("consumer-b"),
        "client-b",
        "TS-B",
        families=("declaratives", "paiements"),
        period=(dt.date(2022, 6, 1), dt.date(2024, 12, 31)),
    ),
    Consumer(
        "C",
        make_certificate("consumer-c"),
        "client-c",
        "TS-C",
        codes=("TVA-CA3", "RIB-PRO", "AMR"),
        period=(dt.date(2022, 1, 1), dt.date(2025, 12, 31)),
        networks=("127.0.0.1/32",),
    ),
)


async def _seed_documents(settings: Settings, sm: async_sessionmaker[AsyncSession]) -> list[Doc]:
    store = documents.make_blob_store(settings=settings, sessionmaker=sm)
    docs: list[Doc] = []
    async with sm() as session, session.begin():
        await catalogue.seed(session=session)
        subject = await documents.ensure_subject(
            session=session, siren=SIREN, idsp=None, denomination="Fictive SA"
        )
        for index, entry in enumerate(catalogue.CATALOGUE):
            for start in (IN_PERIOD, OUT_PERIOD, STRADDLE):
                content = pdf(entry.code, start)
                doc = Doc(
                    new_idensua(),
                    f"DD{index:03d}{start.year}",
                    entry.code,
                    start,
                    start + dt.timedelta(days=27),
                    content,
                )
                await store.put(content)
                await documents.add_document(
                    session=session,
                    subject=subject,
                    document=documents.NewDocument(
                        code=doc.code,
                        periode_debut=doc.start,
                        periode_fin=doc.end,
                        date_emission=doc.end + dt.timedelta(days=10),
                        sha256=digest(content),
                        taille=len(content),
                        idensua=doc.idensua,
                        docdistrib=doc.docdistrib,
                    ),
                )
                docs.append(doc)
    return docs


async def _seed_consumers(sm: async_sessionmaker[AsyncSession]) -> None:
    async with sm() as session, session.begin():
        await consumers.ensure_organisation(
            session=session, siret=SIRET, name="Organisation de test", actor="test"
        )
        for consumer in CONSUMERS:
            await consumers.create_teleservice(
                session=session,
                organisation_siret=SIRET,
                name=f"Téléservice {consumer.name}",
                environment=Environment.SANDBOX,
                certificates=[consumer.certificate.ref],
                families=consumer.families,
                codes=consumer.codes,
                period_start=consumer.period[0],
                period_end=consumer.period[1],
                networks=list(consumer.networks),
                valid_from=dt.date(2020, 1, 1),
                client_id=consumer.client_id,
                id_teleservice=consumer.id_teleservice,
                quota_per_minute=100_000,  # the matrix makes hundreds of calls a minute
                quota_decision=TEST_GRANT,
                actor="test",
            )


@pytest.fixture
def proxy_settings(sqlite_settings: Settings) -> Settings:
    return sqlite_settings.model_copy(
        update={
            "tls_mode": TLSMode.PROXY,
            "trusted_proxies": [ipaddress.ip_network("127.0.0.1/32")],
        }
    )


@pytest.fixture
async def world(proxy_settings: Settings) -> AsyncIterator[World]:
    """The app behind a trusted proxy at 127.0.0.1, three consumers, 2 documents a code."""
    app = create_app(proxy_settings)
    async with app.router.lifespan_context(app):
        sm = app.state.sessionmaker
        docs = await _seed_documents(proxy_settings, sm)
        await _seed_consumers(sm)
        transport = httpx.ASGITransport(app=app, client=PEER)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield World(app, http, proxy_settings, sm, {c.name: c for c in CONSUMERS}, docs)

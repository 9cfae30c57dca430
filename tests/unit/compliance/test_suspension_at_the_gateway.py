"""The clock's suspension as a consumer meets it (R-SEC-2, R-GW-3): on the day after its
security deadline a production téléservice's next API call is refused 403 910004, and a
validated new attestation restores it. The app is the production app behind a trusted
proxy, as in the gateway's tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from ensu import db
from ensu.accounts.principal import Actor
from ensu.app import create_app
from ensu.compliance import jobs
from ensu.compliance import service as compliance
from ensu.compliance.models import CommitmentKind
from ensu.config import Environment, Settings, TLSMode
from ensu.consumers import service as consumers
from ensu.consumers.models import ContactRole
from ensu.consumers.schemas import Contact
from tests.support.certs import SIRET, make_certificate
from tests.support.smtp import smtp_server
from tests.unit.compliance.conftest import at
from tests.unit.gateway.conftest import PEER, cert_header

pytestmark = pytest.mark.anyio

CERTIFICATE = make_certificate("production-consumer")
TS = "TS-PROD"


@pytest.fixture
async def production(var_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings, FastAPI]]:
    settings = Settings(
        var_dir=var_dir,
        environment=Environment.PRODUCTION,
        secret_key=SecretStr("4c1d9a7e2b8f0e6d3a5c9b1f7e2d8a4c6b0f3e9d1a7c5b2e8f4d0a6c3b9e1f7d"),
        tls_mode=TLSMode.PROXY,
        trusted_proxies=[ipaddress.ip_network("127.0.0.1/32")],
    )
    db.upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session, session.begin():
            await consumers.ensure_organisation(
                session=session, siret=SIRET, name="Organisation", actor="test"
            )
            await consumers.create_teleservice(
                session=session,
                organisation_siret=SIRET,
                name="Téléservice de production",
                environment=Environment.PRODUCTION,
                certificates=[CERTIFICATE.ref],
                families=("declaratives",),
                period_start=dt.date(2020, 1, 1),
                period_end=dt.date(2030, 12, 31),
                valid_from=dt.date(2020, 1, 1),
                client_id="client-prod",
                id_teleservice=TS,
                actor="test",
            )
            await consumers.set_contacts(
                session=session,
                id_teleservice=TS,
                contacts=[Contact(ContactRole.TECHNIQUE, "Tech", "tech@conso.example.fr")],
                actor="test",
            )
        transport = httpx.ASGITransport(app=app, client=PEER)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield http, settings, app


async def _call(http: httpx.AsyncClient, token: str) -> tuple[int, str | None]:
    response = await http.get(
        "/ensudocuments/v1/documents",
        params={"siren": "732829320"},
        headers={
            **cert_header(CERTIFICATE),
            "Authorization": f"Bearer {token}",
            "ID_Teleservice": TS,
            "X-Correlation-ID": str(uuid.uuid4()),
        },
    )
    code = response.json().get("code") if response.status_code != 200 else None
    return response.status_code, code


async def test_suspended_the_day_after_its_deadline_restored_by_a_new_attestation(
    production: tuple[httpx.AsyncClient, Settings, FastAPI],
) -> None:
    http, settings, app = production
    sessionmaker = app.state.sessionmaker
    token_answer = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "client-prod"},
        headers=cert_header(CERTIFICATE),
    )
    assert token_answer.status_code == 200, token_answer.text
    token = token_answer.json()["access_token"]
    assert await _call(http, token) == (200, None)

    today = dt.date(2026, 3, 2)
    operator = Actor.system("cli:test")
    async with sessionmaker() as session, session.begin():
        view = await compliance.record_commitment(
            session=session,
            id_teleservice=TS,
            kind=CommitmentKind.HOMOLOGATION,
            reference_date=today + dt.timedelta(days=200),
            actor=operator,
            now=at(today),
        )
    with smtp_server() as (inbox, port):
        mailing = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
        await jobs.run_due(sessionmaker=sessionmaker, settings=mailing, now=at(view.deadline))
        app.state.authority.forget()
        assert await _call(http, token) == (200, None)  # the deadline day still serves
        day_after = view.deadline + dt.timedelta(days=1)
        await jobs.run_due(sessionmaker=sessionmaker, settings=mailing, now=at(day_after, 0))
        app.state.authority.forget()
        assert await _call(http, token) == (403, "910004")
        assert inbox.subjects()[-1] == "Suspension de l'échange — Téléservice de production"

    async with sessionmaker() as session, session.begin():
        await compliance.record_commitment(
            session=session,
            id_teleservice=TS,
            kind=CommitmentKind.HOMOLOGATION,
            reference_date=day_after + dt.timedelta(days=3 * 365),
            actor=operator,
            now=at(day_after, 10),
        )
    app.state.authority.forget()
    assert await _call(http, token) == (200, None)

"""The compliance clock's test world: a migrated database, a real SMTP server, and
production téléservices with their contacts; the clock is injected (``at``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import clock, db
from ensu.compliance import jobs, notices
from ensu.config import Environment, Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import ContactRole
from ensu.consumers.schemas import Contact
from tests.support.certs import SIRET, make_certificate
from tests.support.smtp import Inbox, smtp_server

OTHER_SIRET = "35600000000048"  # Luhn-valid, fictive
TECH = "tech@conso.example.fr"
RT = "rt@conso.example.fr"
DPO = "dpo@conso.example.fr"


def at(day: dt.date, hour: int = 8) -> dt.datetime:
    """``hour`` o'clock in Paris on ``day``, as an aware UTC datetime."""
    return dt.datetime.combine(day, dt.time(hour), clock.PARIS).astimezone(dt.UTC)


@dataclass
class World:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    inbox: Inbox

    async def run_due(
        self, day: dt.date, hour: int = 8
    ) -> tuple[list[jobs.RunResult], notices.DispatchReport]:
        return await jobs.run_due(
            sessionmaker=self.sessionmaker, settings=self.settings, now=at(day, hour)
        )

    async def teleservice(
        self,
        name: str,
        *,
        siret: str = SIRET,
        environment: Environment = Environment.PRODUCTION,
        tech: str = TECH,
        rt: str = RT,
    ) -> str:
        """A téléservice with its three contacts; its ID_Teleservice."""
        async with self.sessionmaker() as session, session.begin():
            await consumers.ensure_organisation(
                session=session, siret=siret, name=f"Organisation {siret}", actor="test"
            )
            created = await consumers.create_teleservice(
                session=session,
                organisation_siret=siret,
                name=f"Téléservice {name}",
                environment=environment,
                certificates=[make_certificate(name).ref],
                families=("declaratives",),
                period_start=dt.date(2020, 1, 1),
                period_end=dt.date(2030, 12, 31),
                valid_from=dt.date(2020, 1, 1),
                id_teleservice=f"TS-{name.upper()}",
                client_id=f"client-{name}",
                actor="test",
            )
            await consumers.set_contacts(
                session=session,
                id_teleservice=created.id_teleservice,
                contacts=[
                    Contact(role=ContactRole.TECHNIQUE, name="Tech", email=tech),
                    Contact(role=ContactRole.RESPONSABLE_TRAITEMENT, name="RT", email=rt),
                    Contact(role=ContactRole.DPO, name="DPO", email=DPO),
                ],
                actor="test",
            )
        return created.id_teleservice

    async def status(self, id_teleservice: str) -> str:
        async with self.sessionmaker() as session:
            view = await consumers.get_by_id_teleservice(
                session=session, id_teleservice=id_teleservice
            )
        assert view is not None
        return view.status.value


@pytest.fixture
def inbox_port() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


def _world(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    inbox_port: tuple[Inbox, int],
) -> World:
    inbox, port = inbox_port
    mailing = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "mail_sender": "dgfip@example.fr"}
    )
    return World(mailing, sessionmaker, inbox)


@pytest.fixture
def world(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    inbox_port: tuple[Inbox, int],
) -> World:
    """On SQLite and on PostgreSQL."""
    return _world(settings, sessionmaker, inbox_port)


@pytest.fixture
async def sqlite_world(
    sqlite_settings: Settings, inbox_port: tuple[Inbox, int]
) -> AsyncIterator[World]:
    """On SQLite only: for the long runs of the clock (months of days), whose storage
    behaviour the tests on both databases already cover."""
    engine = db.make_engine(sqlite_settings.database_url)
    try:
        yield _world(sqlite_settings, db.make_sessionmaker(engine), inbox_port)
    finally:
        await engine.dispose()

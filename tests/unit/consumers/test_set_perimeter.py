"""``set_perimeter``: families, codes and the data period of a téléservice, checked
against the catalogue and journaled; a default mention follows (R-GW-5, R-CON-1)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.config import Environment
from ensu.consumers import service as consumers
from ensu.consumers.schemas import codes_of_families
from ensu.db import session_scope
from tests.support.certs import SIRET, make_certificate

CERT = make_certificate("perimeter-set")


async def _create(session: AsyncSession, mention: str | None = None) -> str:
    await consumers.ensure_organisation(session=session, siret=SIRET, name="Org", actor="t")
    created = await consumers.create_teleservice(
        session=session,
        organisation_siret=SIRET,
        name="Service",
        environment=Environment.SANDBOX,
        certificates=[CERT.ref],
        families=["declaratives"],
        period_start=dt.date(2020, 1, 1),
        period_end=dt.date(2024, 12, 31),
        mention_information=mention,
        actor="t",
    )
    return created.id_teleservice


@pytest.mark.anyio
async def test_the_perimeter_changes_on_the_record(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with session_scope(sessionmaker) as session:
        identifier = await _create(session)
        view = await consumers.set_perimeter(
            session=session,
            id_teleservice=identifier,
            families=["paiements"],
            codes=[],
            period_start=dt.date(2023, 1, 1),
            period_end=dt.date(2025, 12, 31),
            actor="staff:agent@dgfip.example",
        )
        event = await session.scalar(
            select(Event).where(Event.tag == EventTag.CONSUMERS_TELESERVICE_PERIMETER_SET)
        )
    assert view.families == frozenset({"paiements"})
    assert not view.covers_code(next(iter(codes_of_families(frozenset({"declaratives"})))))
    assert (view.period_start, view.period_end) == (dt.date(2023, 1, 1), dt.date(2025, 12, 31))
    assert "paiements" in view.mention_information
    assert "2023" in view.mention_information
    assert event is not None
    assert event.actor == "staff:agent@dgfip.example"
    before, after = event.details["before"], event.details["after"]
    assert isinstance(before, dict)
    assert isinstance(after, dict)
    assert before["families"] == ["declaratives"]
    assert after["families"] == ["paiements"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("perimeter", "message"),
    [
        (([], [], dt.date(2020, 1, 1), dt.date(2021, 1, 1)), "au moins une famille"),
        ((["inconnue"], [], dt.date(2020, 1, 1), dt.date(2021, 1, 1)), "familles inconnues"),
        (([], ["ZZZ999"], dt.date(2020, 1, 1), dt.date(2021, 1, 1)), "absents du catalogue"),
        ((["paiements"], [], dt.date(2022, 1, 1), dt.date(2021, 1, 1)), "commence après"),
    ],
)
async def test_a_perimeter_outside_the_catalogue_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
    perimeter: tuple[list[str], list[str], dt.date, dt.date],
    message: str,
) -> None:
    families, codes, start, end = perimeter
    async with session_scope(sessionmaker) as session:
        identifier = await _create(session)
        with pytest.raises(consumers.InvalidConsumerData, match=message):
            await consumers.set_perimeter(
                session=session,
                id_teleservice=identifier,
                families=families,
                codes=codes,
                period_start=start,
                period_end=end,
                actor="t",
            )


@pytest.mark.anyio
async def test_a_mention_written_by_hand_is_kept(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with session_scope(sessionmaker) as session:
        identifier = await _create(session, mention="Texte rédigé par le partenaire.")
        view = await consumers.set_perimeter(
            session=session,
            id_teleservice=identifier,
            families=["paiements"],
            codes=[],
            period_start=dt.date(2023, 1, 1),
            period_end=dt.date(2025, 12, 31),
            actor="t",
        )
    assert view.mention_information == "Texte rédigé par le partenaire."
